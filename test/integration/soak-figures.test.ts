import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { growthOf, percentile, sampleProcess, slope } from '../../bench/soak.ts';

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
      { at: 0, rssMiB: 20, fds: 5 },
      { at: 30, rssMiB: 200, fds: 40 },
      { at: 60, rssMiB: 240, fds: 49 },
      { at: 90, rssMiB: 240, fds: 49 },
      { at: 120, rssMiB: 240, fds: 49 },
    ];
    expect(growthOf(samples, 60)).toEqual({
      samples: 3,
      rssStartMiB: 240,
      rssEndMiB: 240,
      rssMaxMiB: 240,
      rssMiBPerH: 0,
      fdsStart: 49,
      fdsEnd: 49,
      fdsMax: 49,
      fdsPerH: 0,
    });
    expect(growthOf(samples, 0)!.rssMiBPerH).toBeGreaterThan(0);
    expect(growthOf(samples, 500)).toBeUndefined();
  });

  it('a leak of 1 MiB a minute is 60 MiB an hour', () => {
    const samples = Array.from({ length: 10 }, (_, i) => ({ at: i * 60, rssMiB: 100 + i, fds: 10 + 2 * i }));
    const g = growthOf(samples, 0)!;
    expect(g.rssMiBPerH).toBeCloseTo(60, 9);
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
    expect(sampleProcess(2 ** 22 + 1, 1)).toBeUndefined();
  });
});
