import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BIN } from '../../src/node/index.ts';

const cache = join(BIN, '..', '..', 'node_modules', '.cache', 'ailink');
const run = (env: Record<string, string>) =>
  execFileSync(process.execPath, [BIN, 'help'], { env: { ...process.env, ...env }, encoding: 'utf8' });

describe('the CLI runs a cached bundle of its sources', () => {
  it('says the same from its bundle as through tsx, and the bundle is cached under the sources’ fingerprint', () => {
    const fromBundle = run({});
    expect(fromBundle).toContain('Exit codes');
    expect(run({ AILINK_NO_BUNDLE: '1' })).toBe(fromBundle);
    const bundles = readdirSync(cache).filter((f) => /^main-[0-9a-f]{16}\.mjs$/.test(f));
    expect(bundles.length).toBeGreaterThan(0);
    // A second run builds nothing new.
    run({});
    expect(readdirSync(cache).filter((f) => /^main-[0-9a-f]{16}\.mjs$/.test(f))).toStrictEqual(bundles);
  }, 60_000);
});
