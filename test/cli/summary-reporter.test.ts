import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

// The closing line CI reads (`N passed, N failed, N skipped`, test/summary-reporter.ts), checked on a real vitest run
// of the fixtures in test/fixtures/summary-reporter: a file whose beforeAll throws (2 tests, skipped), a file whose
// describe-level beforeAll throws (1 test passes, 1 skipped), a file with one passing and one failing test, and a
// passing file. Each failed file counts as at least one failure, and the failing test's file only once.

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CONFIG = join(ROOT, 'test/fixtures/summary-reporter/vitest.config.ts');
const VITEST = join(createRequire(import.meta.url).resolve('vitest/package.json'), '..', 'vitest.mjs');

function runFixtures(): Promise<{ code: number | null; stdout: string; stderr: string }> {
  // The parent run's VITEST_* variables would make the child think it is a worker of this run.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('VITEST')));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [VITEST, 'run', '--config', CONFIG], {
      cwd: ROOT,
      env: { ...env, NO_COLOR: '1', CI: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

it('counts a file whose beforeAll threw as failed, and a file with a failed test once', async () => {
  const run = await runFixtures();
  const lines = run.stdout.trimEnd().split('\n');
  expect(lines.at(-1), run.stdout + run.stderr).toBe('3 passed, 3 failed, 3 skipped');
  expect(run.code).not.toBe(0);
});
