import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { FAILPOINTS, parseFailpoints } from '../../src/shared/failpoint.ts';

const MODULE = fileURLToPath(new URL('../../src/shared/failpoint.ts', import.meta.url));

/** Runs a real Node process that passes `point` and then prints "went on". */
function runThrough(point: string, armed: string | undefined) {
  const script = `const { failpoint } = await import(${JSON.stringify(MODULE)}); failpoint(${JSON.stringify(point)}); console.log('went on');`;
  return spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    encoding: 'utf8',
    env: { ...process.env, AILINK_FAILPOINTS: armed ?? '' },
    timeout: 30_000,
  });
}

describe('failpoints (AILINK_FAILPOINTS)', () => {
  it('a process armed at a point SIGKILLs itself there and says so; unarmed or armed elsewhere it goes on', () => {
    const killed = runThrough(
      'coordinator.model-stored',
      'coordinator.update-summed, coordinator.model-stored',
    );
    expect(killed.signal).toBe('SIGKILL');
    expect(killed.stdout).not.toContain('went on');
    expect(killed.stderr).toContain('failpoint coordinator.model-stored: killing this process');

    for (const armed of [undefined, 'coordinator.manifest-stored']) {
      const passed = runThrough('coordinator.model-stored', armed);
      expect(passed.status).toBe(0);
      expect(passed.stdout).toContain('went on');
    }
  });

  it('a misspelt point is reported with the names there are, and arms nothing', () => {
    const out = runThrough('coordinator.model-stored', 'coordinator.model-stord');
    expect(out.status).toBe(0);
    expect(out.stderr).toContain(
      'AILINK_FAILPOINTS: coordinator.model-stord is not a failpoint (expected one of',
    );
    expect(parseFailpoints(' storage.fragments-placed ,, nope ')).toEqual({
      armed: new Set(['storage.fragments-placed']),
      unknown: ['nope'],
    });
    expect(parseFailpoints(undefined).armed.size).toBe(0);
    expect(new Set(FAILPOINTS).size).toBe(FAILPOINTS.length);
  });
});
