import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { neighbourGraph } from '../../src/aggregation/index.ts';
import { hasCode } from '../../src/shared/errors.ts';
import {
  checkSecAggSurvives,
  DEFAULT_MAX_ATTEMPTS,
  maxAttemptsOf,
  secAggShape,
  survivableMin,
} from '../../src/task/index.ts';

type Shape = Parameters<typeof checkSecAggSurvives>[0];

const shape = (size: number, min: number, neighbours: number, threshold: number, enabled = true): Shape => ({
  cohort: { size, min },
  secagg: { enabled, neighbours, threshold },
});

const refusal = (s: Shape) => {
  try {
    checkSecAggSurvives(s);
    return null;
  } catch (err) {
    if (!hasCode(err)) throw err;
    return err;
  }
};

/** The live neighbours a member keeps when `dropped` go silent, in the real SecAgg+ graph of `n` members. */
function fewestLive(
  n: number,
  k: number,
  seed: Uint8Array,
  dropped: (graph: Map<string, string[]>) => Set<string>,
) {
  const ids = Array.from({ length: n }, (_, i) => `m${String(i).padStart(3, '0')}`);
  const graph = neighbourGraph(ids, k, seed);
  const gone = dropped(graph);
  let fewest = Number.POSITIVE_INFINITY;
  for (const [id, neighbours] of graph) {
    if (gone.has(id)) continue;
    fewest = Math.min(fewest, neighbours.filter((x) => !gone.has(x)).length);
  }
  return fewest;
}

describe('SecAgg settings that must survive the dropouts a task plans for (refused at creation)', () => {
  it('refuses 4 organisations with cohort.min 3 (k = t = 2: one dropout aborts every attempt), saying what to set', () => {
    const err = refusal(shape(4, 3, 4, 3));
    expect(err?.code).toBe('TASK_SECAGG_FRAGILE');
    expect(err?.message).toMatch(/cohort of 4/);
    expect(err?.message).toMatch(/k = 2 neighbours and threshold t = 2/);
    expect(err?.message).toMatch(/survives 0 dropouts/);
    expect(err?.message).toMatch(/plans for 1/);
    expect(err?.message).toMatch(/raise cohort\.min to 4/);
    expect(survivableMin(shape(4, 3, 4, 3))).toBe(4);
    // No planned dropout: nothing to survive.
    expect(refusal(shape(4, 4, 4, 3))).toBeNull();
    // 5 with k = 4, t = 3 survive one; min 3 plans for two.
    expect(refusal(shape(5, 3, 4, 3))?.code).toBe('TASK_SECAGG_FRAGILE');
    expect(refusal(shape(5, 4, 4, 3))).toBeNull();
    // Without SecAgg there is no neighbourhood to fall below a threshold.
    expect(refusal(shape(4, 3, 4, 3, false))).toBeNull();
  });

  /** A task's cohort size, how far below it cohort.min is, k/2, t, and a graph seed. */
  const settings = [
    fc.integer({ min: 3, max: 16 }),
    fc.integer({ min: 0, max: 13 }),
    fc.integer({ min: 1, max: 8 }),
    fc.integer({ min: 2, max: 16 }),
    fc.uint8Array({ minLength: 32, maxLength: 32 }),
  ] as const;

  it('accepted settings: any dropouts down to cohort.min leave every survivor at least t live neighbours, at every cohort size the round may be drawn with', () => {
    fc.assert(
      fc.property(
        ...settings,
        fc.array(fc.nat(), { maxLength: 16 }),
        (size, below, half, threshold, seed, picks) => {
          const min = Math.max(3, size - below);
          const s = shape(size, min, 2 * half, threshold);
          fc.pre(refusal(s) === null);
          for (let n = min; n <= size; n++) {
            const { k, t } = secAggShape(s, n);
            // Random dropouts, as many as the floor allows.
            const random = fewestLive(n, k, seed, (graph) => {
              const ids = [...graph.keys()];
              return new Set(picks.slice(0, n - min).map((p) => ids[p % ids.length]!));
            });
            // The worst: all of them among one member's neighbours.
            const worst = fewestLive(n, k, seed, (graph) => {
              const [, neighbours] = [...graph][0]!;
              return new Set(neighbours.slice(0, n - min));
            });
            if (Math.min(random, worst) < t) return false;
          }
          return true;
        },
      ),
      { seed: 18, numRuns: 300 },
    );
  });

  it('refused settings: some cohort size the round may be drawn with has dropouts within cohort.min that leave a survivor below t', () => {
    fc.assert(
      fc.property(...settings, (size, below, half, threshold, seed) => {
        const min = Math.max(3, size - below);
        const s = shape(size, min, 2 * half, threshold);
        const err = refusal(s);
        fc.pre(err !== null);
        if (err.code !== 'TASK_SECAGG_FRAGILE') return false;
        // A raised floor it names is accepted.
        const fixed = survivableMin(s);
        if (!(fixed > min && fixed <= size) || refusal(shape(size, fixed, 2 * half, threshold)) !== null)
          return false;
        for (let n = min; n <= size; n++) {
          const { k, t } = secAggShape(s, n);
          // Drop the first member's neighbours (then anyone else), as many as the floor allows.
          const worst = fewestLive(n, k, seed, (graph) => {
            const [first, neighbours] = [...graph][0]!;
            const others = [...graph.keys()].filter((x) => x !== first && !neighbours.includes(x));
            return new Set([...neighbours, ...others].slice(0, n - min));
          });
          if (worst < t) return true;
        }
        return false;
      }),
      { seed: 18, numRuns: 300 },
    );
  });
});

describe('attempts per round', () => {
  it('maxAttempts defaults when a spec (from before the setting) has none', () => {
    expect(maxAttemptsOf({})).toBe(DEFAULT_MAX_ATTEMPTS);
    expect(maxAttemptsOf({ maxAttempts: 2 })).toBe(2);
    expect(DEFAULT_MAX_ATTEMPTS).toBeGreaterThanOrEqual(2);
  });
});
