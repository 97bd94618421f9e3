import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AggregationError } from '../../src/aggregation/errors.ts';
import { neighbourGraph } from '../../src/aggregation/graph.ts';

const ids = (n: number) => Array.from({ length: n }, (_, i) => `client-${String(i).padStart(3, '0')}`);

describe('SecAgg+ neighbour graph', () => {
  it('property: k-regular, symmetric, no self-loops, for any n and even k < n', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 3, max: 120 }),
        fc.integer({ min: 1, max: 30 }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        (n, half, seed) => {
          const k = Math.min(2 * half, n % 2 === 0 ? n - 2 : n - 1);
          fc.pre(k >= 2);
          const g = neighbourGraph(ids(n), k, seed);
          expect(g.size).toBe(n);
          for (const [id, neighbours] of g) {
            expect(new Set(neighbours).size).toBe(k);
            expect(neighbours).not.toContain(id);
            for (const other of neighbours) expect(g.get(other)).toContain(id);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('is a function of the seed alone: same seed and ids in any order give the same graph', () => {
    const seed = new Uint8Array(randomBytes(32));
    const a = neighbourGraph(ids(50), 10, seed);
    const b = neighbourGraph([...ids(50)].reverse(), 10, seed);
    expect([...a.entries()].sort()).toEqual([...b.entries()].sort());
    const c = neighbourGraph(ids(50), 10, new Uint8Array(randomBytes(32)));
    expect([...a.entries()].sort()).not.toEqual([...c.entries()].sort());
  });

  it('spreads neighbourhoods: over many seeds every pair is neighbours about k/(n−1) of the time', () => {
    const n = 12;
    const k = 4;
    let together = 0;
    const runs = 600;
    for (let r = 0; r < runs; r++) {
      if (
        neighbourGraph(ids(n), k, new Uint8Array(randomBytes(32)))
          .get('client-000')!
          .includes('client-001')
      )
        together++;
    }
    // expected 4/11 ≈ 0.364; 600 runs give a standard deviation ≈ 0.02
    expect(together / runs).toBeGreaterThan(0.28);
    expect(together / runs).toBeLessThan(0.45);
  });

  it('refuses odd k, k ≥ n, and repeated ids', () => {
    const seed = new Uint8Array(32);
    for (const [list, k] of [
      [ids(10), 3],
      [ids(10), 10],
      [ids(10), 0],
      [['a', 'a', 'b', 'c'], 2],
    ] as const) {
      expect(() => neighbourGraph(list, k, seed)).toThrow(AggregationError);
    }
  });
});
