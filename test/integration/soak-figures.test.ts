import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  brkResidentKiB,
  growthOf,
  percentile,
  processInGroup,
  sampleProcess,
  slope,
} from '../../bench/soak.ts';

// The figures a soak reports (bench/soak.ts): growth is a least-squares slope after warm-up, latencies are
// nearest-rank percentiles, samples come from /proc.

describe('soak figures', () => {
  it('the slope of points on a line is the line’s, whatever its offset and spacing', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 0, max: 100_000 }), { minLength: 2, maxLength: 50 }),
        fc.double({ min: -1000, max: 1000, noNaN: true }),
        fc.double({ min: -1e6, max: 1e6, noNaN: true }),
        (xs, m, b) => {
          const s = slope(xs.map((x) => [x, m * x + b] as const));
          expect(s).not.toBeNull();
          expect(s!).toBeCloseTo(m, 6);
        },
      ),
      { seed: 18 },
    );
  });

  it('has no slope with fewer than two distinct times', () => {
    expect(slope([])).toBeNull();
    expect(slope([[5, 1]])).toBeNull();
    expect(
      slope([
        [5, 1],
        [5, 9],
      ]),
    ).toBeNull();
  });

  it('growth leaves out warm-up: a process that grew only while warming up is flat after', () => {
    const samples = [
      { at: 0, rssMiB: 20, brkMiB: 1, fds: 5 },
      { at: 30, rssMiB: 200, brkMiB: 9, fds: 40 },
      { at: 60, rssMiB: 240, brkMiB: 12, fds: 49 },
      { at: 90, rssMiB: 240, brkMiB: 12, fds: 49 },
      { at: 120, rssMiB: 240, brkMiB: 12, fds: 49 },
    ];
    expect(growthOf(samples, 60)).toEqual({
      samples: 3,
      rssStartMiB: 240,
      rssEndMiB: 240,
      rssMaxMiB: 240,
      rssMiBPerH: 0,
      brkMiBPerH: 0,
      fdsStart: 49,
      fdsEnd: 49,
      fdsMax: 49,
      fdsPerH: 0,
    });
    expect(growthOf(samples, 0)!.rssMiBPerH).toBeGreaterThan(0);
    expect(growthOf(samples, 500)).toBeUndefined();
  });

  it('a leak of 1 MiB a minute is 60 MiB an hour', () => {
    const samples = Array.from({ length: 10 }, (_, i) => ({
      at: i * 60,
      rssMiB: 100 + i,
      brkMiB: 10 + i / 2,
      fds: 10 + 2 * i,
    }));
    const g = growthOf(samples, 0)!;
    expect(g.rssMiBPerH).toBeCloseTo(60, 9);
    expect(g.brkMiBPerH).toBeCloseTo(30, 9);
    expect(g.fdsPerH).toBeCloseTo(120, 9);
  });

  it('percentiles are nearest-rank: an element of the input, monotone in p', () => {
    expect(percentile([], 99)).toBeNull();
    expect(percentile([7], 1)).toBe(7);
    const hundred = Array.from({ length: 100 }, (_, i) => 100 - i);
    expect(percentile(hundred, 50)).toBe(50);
    expect(percentile(hundred, 99)).toBe(99);
    expect(percentile(hundred, 100)).toBe(100);
    fc.assert(
      fc.property(
        fc.array(fc.integer(), { minLength: 1, maxLength: 200 }),
        fc.integer({ min: 1, max: 100 }),
        fc.integer({ min: 1, max: 100 }),
        (xs, p, q) => {
          const [lo, hi] = p <= q ? [p, q] : [q, p];
          expect(xs).toContain(percentile(xs, lo));
          expect(percentile(xs, lo)!).toBeLessThanOrEqual(percentile(xs, hi)!);
        },
      ),
      { seed: 18 },
    );
  });

  it('samples a live process from /proc, and nothing of one that is gone', () => {
    const s = sampleProcess(process.pid, 1);
    expect(s?.at).toBe(1);
    expect(s!.rssMiB).toBeGreaterThan(1);
    expect(s!.fds).toBeGreaterThan(2);
    // Node's main thread mallocs through glibc's main arena: a resident [heap] mapping, smaller than the whole.
    expect(s!.brkMiB).toBeGreaterThan(0);
    expect(s!.brkMiB).toBeLessThan(s!.rssMiB);
    expect(sampleProcess(2 ** 22 + 1, 1)).toBeUndefined();
  });

  it('reads the [heap] mapping’s resident size out of smaps, and 0 when there is none', () => {
    const mapping = (range: string, name: string, rss: number) =>
      `${range} rw-p 00000000 00:00 0                          ${name}\nSize:               2048 kB\nRss:                ${rss} kB\nPss:                ${rss} kB\n`;
    const smaps =
      mapping('55d0c8a00000-55d0c8c00000', '', 7) +
      mapping('55d0c9000000-55d0ce000000', '[heap]', 81_920) +
      mapping('7f0000000000-7f0000200000', '[stack]', 12);
    expect(brkResidentKiB(smaps)).toBe(81_920);
    expect(brkResidentKiB(mapping('55d0c8a00000-55d0c8c00000', '[stack]', 12))).toBe(0);
  });

  it('finds the node process a wrapper started in the group it leads, and nothing in a group without one', async () => {
    // A shell leads the group (as heaptrack's script does) and runs node, which is what the soak must sample.
    const shell = spawn('sh', ['-c', `"${process.execPath}" -e 'setTimeout(() => {}, 20000)'; true`], {
      detached: true,
      stdio: 'ignore',
    });
    try {
      let found: number | undefined;
      for (let i = 0; i < 100 && found === undefined; i++) {
        found = processInGroup(shell.pid!, process.execPath);
        if (found === undefined) await new Promise((r) => setTimeout(r, 50));
      }
      expect(found).toBeDefined();
      expect(found).not.toBe(shell.pid);
      expect(readFileSync(`/proc/${found}/cmdline`, 'utf8')).toContain('setTimeout');
      expect(processInGroup(shell.pid!, '/bin/true')).toBeUndefined();
    } finally {
      process.kill(-shell.pid!, 'SIGKILL');
    }
  });
});
