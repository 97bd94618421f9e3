import { spawn } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { netnsUnavailable } from '../../bench/netns.ts';
import { AWS_CLI } from '../gateway/awscli.ts';

// issue 18 §1: `npm run chaos`'s short profile, as part of `npm test`. Real processes (`ailink chain`, `ailink dev`
// with 11 miners and the verifier, `ailink miner`, `ailink gateway`, `ailink coordinator`, 5 × `ailink participant`,
// `ailink store` and `aws s3api`) run a SecAgg task of 2 rounds while the harness SIGKILLs the chain, the
// coordinator, an organisation and a miner, and (as root) cuts or slows an organisation's or a miner's link on hosts
// of their own; then the audit and every object put must hold. The harness keeps its own deadlines and kills every
// process group it started.

const CHAOS = fileURLToPath(new URL('../../bench/chaos.ts', import.meta.url));

interface ChaosReport {
  readonly rounds_planned: number;
  readonly rounds_completed: number;
  readonly rounds_lost: number;
  readonly hangs: number;
  readonly audit_ok: boolean | null;
  readonly objects_put: number;
  readonly objects_put_by_way: Record<string, number>;
  readonly objects_lost: number;
  readonly bytes_verified: number;
  readonly faults_injected: Record<string, number>;
}

describe('npm run chaos (the ci profile)', () => {
  it('completes every round, passes the audit and loses no object through kills of every kind', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHAOS], {
      env: { ...process.env, CHAOS_PROFILE: 'ci', CHAOS_SEED: '7' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      stdout += s;
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      stderr += s;
    });
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    const line = stdout.trim().split('\n').at(-1) ?? '';
    const explain = `exit ${code}\n${stdout}\n--- the harness's log (tail) ---\n${stderr.slice(-6000)}`;
    expect(line.startsWith('{'), explain).toBe(true);
    const report = JSON.parse(line) as ChaosReport;
    expect(report, explain).toMatchObject({ rounds_lost: 0, hangs: 0, audit_ok: true, objects_lost: 0 });
    expect(report.rounds_completed, explain).toBe(report.rounds_planned);
    expect(report.objects_put, explain).toBeGreaterThan(0);
    expect(report.bytes_verified, explain).toBeGreaterThan(0);
    // Objects went in both ways: `ailink store put`, and an ordinary S3 tool through the gateway (.ci/run installs it).
    expect(report.objects_put_by_way['ailink store'], explain).toBeGreaterThan(0);
    if (existsSync(AWS_CLI)) expect(report.objects_put_by_way['aws s3api'], explain).toBeGreaterThan(0);
    // Every kind of fault landed at least once (the harness injects each kind before repeating one); links are cut
    // or slowed where namespaces can be made.
    const kinds = [
      'chain',
      'coordinator',
      'organisation',
      'miners',
      ...(netnsUnavailable() === null ? ['network'] : []),
    ];
    for (const kind of kinds)
      expect(report.faults_injected[kind], `${kind} faults\n${explain}`).toBeGreaterThan(0);
    expect(code, explain).toBe(0);
    // Passed: its work dir (≈ 100 MB of chain, miners and logs) is of no more use; a failed run's is kept to read.
    const work = /work in (\S+)/.exec(stderr)?.[1];
    if (work !== undefined) rmSync(work, { recursive: true, force: true });
  }, 600_000);
});
