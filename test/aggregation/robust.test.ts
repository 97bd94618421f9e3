/**
 * Robust aggregators against hand-computed fixtures, the byzantine property (fast-check), refusal under secure
 * aggregation, and bad input. Every expected value is worked out in the comments from the definitions (Blanchard
 * et al. 2017; Yin et al. 2018; El Mhamdi et al. 2018), never from the implementation.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  assertPlaintextAllowed,
  bulyan,
  coordinateMedian,
  krum,
  minimumUpdates,
  multiKrum,
  type RobustAggregatorSpec,
  robustStrategy,
  trimmedMean,
} from '../../src/aggregation/robust.ts';
import type { ClientResult } from '../../src/aggregation/strategies.ts';
import { expectCode } from './helpers.ts';

/** A client result with example count `weight` (ignored by every robust rule). */
const u = (values: readonly number[], weight = 1): ClientResult => ({
  update: Float32Array.from(values),
  weight,
});
const f32 = (values: readonly number[]) => Float32Array.from(values);

// ---------------------------------------------------------------------------------------------------------------
// Fixture K: 6 clients, 3 coordinates, client 5 an outlier. With f = 1 a Krum score sums the n − f − 2 = 3 smallest
// squared distances to the others.
//   u0 = (1, 2, 0)  u1 = (2, 2, 1)  u2 = (1, 3, 1)  u3 = (2, 3, 0)  u4 = (1, 2, 1)  u5 = (40, −30, 50)
// Squared distances between the honest ones (differences per coordinate, squared and summed):
//   d01 = 1+0+1 = 2   d02 = 0+1+1 = 2   d03 = 1+1+0 = 2   d04 = 0+0+1 = 1
//   d12 = 1+1+0 = 2   d13 = 0+1+1 = 2   d14 = 1+0+0 = 1
//   d23 = 1+0+1 = 2   d24 = 0+1+0 = 1   d34 = 1+1+1 = 3
// To the outlier:
//   d05 = 39²+32²+50² = 1521+1024+2500 = 5045    d15 = 38²+32²+49² = 1444+1024+2401 = 4869
//   d25 = 39²+33²+49² = 1521+1089+2401 = 5011    d35 = 38²+33²+50² = 1444+1089+2500 = 5033
//   d45 = 39²+32²+49² = 1521+1024+2401 = 4946
// Scores (3 smallest):
//   s0 = {2,2,2,1,5045} → 1+2+2 = 5     s1 = {2,2,2,1,4869} → 5     s2 = {2,2,2,1,5011} → 5
//   s3 = {2,2,2,3,5033} → 2+2+2 = 6     s4 = {1,1,1,3,4946} → 1+1+1 = 3
//   s5 = {5045,4869,5011,5033,4946} → 4869+4946+5011 = 14826
// Ranking by (score, index): 4 (3), 0 (5), 1 (5), 2 (5), 3 (6), 5 (14826).
const FIXTURE_K: readonly ClientResult[] = [
  u([1, 2, 0]),
  u([2, 2, 1]),
  u([1, 3, 1]),
  u([2, 3, 0]),
  u([1, 2, 1]),
  u([40, -30, 50]),
];

// Fixture B: 7 clients, 2 coordinates, client 6 an outlier; Bulyan with f = 1 keeps θ = n − 2f = 5 by repeated Krum
// and then averages, per coordinate, the β = θ − 2f = 3 kept values closest to their median.
//   u0 = (5, 2)  u1 = (5, 9)  u2 = (6, 5)  u3 = (8, 9)  u4 = (0, 9)  u5 = (2, 1)  u6 = (60, −40)
// Squared distances:
//   d01 = 0+49 = 49   d02 = 1+9 = 10    d03 = 9+49 = 58   d04 = 25+49 = 74   d05 = 9+1 = 10
//   d12 = 1+16 = 17   d13 = 9+0 = 9     d14 = 25+0 = 25   d15 = 9+64 = 73
//   d23 = 4+16 = 20   d24 = 36+16 = 52  d25 = 16+16 = 32
//   d34 = 64+0 = 64   d35 = 36+64 = 100 d45 = 4+64 = 68
//   d06 = 55²+42² = 3025+1764 = 4789   d16 = 55²+49² = 3025+2401 = 5426   d26 = 54²+45² = 2916+2025 = 4941
//   d36 = 52²+49² = 2704+2401 = 5105   d46 = 60²+49² = 3600+2401 = 6001   d56 = 58²+41² = 3364+1681 = 5045
const FIXTURE_B: readonly ClientResult[] = [
  u([5, 2]),
  u([5, 9]),
  u([6, 5]),
  u([8, 9]),
  u([0, 9]),
  u([2, 1]),
  u([60, -40]),
];

describe('krum', () => {
  it('picks the update with the lowest score (fixture K)', () => {
    // s4 = 3 is the unique minimum (see fixture K).
    const result = krum(FIXTURE_K, { f: 1 });
    expect(result.index).toBe(4);
    expect(result.update).toEqual(f32([1, 2, 1]));
    // A copy: changing the result leaves the input alone.
    expect(result.update).not.toBe(FIXTURE_K[4]!.update);
    result.update[0] = 99;
    expect(FIXTURE_K[4]!.update[0]).toBe(1);
  });

  it('breaks ties by the lowest index', () => {
    // Unit square plus an outlier, f = 1, n − f − 2 = 2 neighbours:
    //   a = (0,0) b = (1,0) c = (0,1) e = (1,1) o = (10,10)
    //   d(a,b) = d(a,c) = d(b,e) = d(c,e) = 1, d(a,e) = d(b,c) = 2
    //   each square corner: two neighbours at 1 → score 2; o: 9²+9² = 162 and 9²+10² = 181 → 162+181 = 343.
    // All four corners tie at 2: the first one listed wins.
    const square = [
      [0, 0],
      [1, 0],
      [0, 1],
      [1, 1],
      [10, 10],
    ] as const;
    const inOrder = krum(
      square.map((v) => u(v)),
      { f: 1 },
    );
    expect(inOrder.index).toBe(0);
    expect(inOrder.update).toEqual(f32([0, 0]));
    // Reversed: [o, e, c, b, a] — scores [343, 2, 2, 2, 2] → index 1, which is e = (1, 1).
    const reversed = krum(square.map((v) => u(v)).reverse(), { f: 1 });
    expect(reversed.index).toBe(1);
    expect(reversed.update).toEqual(f32([1, 1]));
  });

  it('with f = 0 scores by the n − 2 closest', () => {
    // (0), (1), (3): n − 2 = 1 neighbour. s0 = d(0,1) = 1, s1 = min(1, 4) = 1, s2 = min(9, 4) = 4 → tie 0/1 → 0.
    expect(krum([u([0]), u([1]), u([3])], { f: 0 }).index).toBe(0);
  });
});

describe('multiKrum', () => {
  it('averages the m best-scored updates, unweighted (fixture K)', () => {
    // m = 3 keeps 4, 0, 1 (scores 3, 5, 5; the tie 0/1/2 at 5 goes to the lowest indices).
    //   x: (1 + 1 + 2) / 3 = 4/3   y: (2 + 2 + 2) / 3 = 2   z: (1 + 0 + 1) / 3 = 2/3
    const three = multiKrum(FIXTURE_K, { f: 1, m: 3 });
    expect(three.indices).toEqual([4, 0, 1]);
    expect(three.update).toEqual(f32([4 / 3, 2, 2 / 3]));
    // m = n − f = 5 keeps every honest update: 4, 0, 1, 2, 3.
    //   x: (1+1+2+1+2)/5 = 7/5   y: (2+2+2+3+3)/5 = 12/5   z: (1+0+1+1+0)/5 = 3/5
    const five = multiKrum(FIXTURE_K, { f: 1, m: 5 });
    expect(five.indices).toEqual([4, 0, 1, 2, 3]);
    expect(five.update).toEqual(f32([7 / 5, 12 / 5, 3 / 5]));
  });

  it('ignores example counts (a byzantine client can claim any)', () => {
    const weighted = FIXTURE_K.map((r, i) => ({ update: r.update, weight: [1000, 1, 7, 3, 2, 1e9][i]! }));
    expect(multiKrum(weighted, { f: 1, m: 3 }).update).toEqual(f32([4 / 3, 2, 2 / 3]));
  });

  it('with m = 1 is Krum', () => {
    const one = multiKrum(FIXTURE_K, { f: 1, m: 1 });
    expect(one.indices).toEqual([4]);
    expect(one.update).toEqual(krum(FIXTURE_K, { f: 1 }).update);
  });

  it('refuses m beyond n − f and a malformed m', () => {
    // n = 6, f = 1: at most 5 can be kept.
    const err = expectCode(() => multiKrum(FIXTURE_K, { f: 1, m: 6 }), 'AGG_TOO_FEW_UPDATES');
    expect(err.message).toContain('expects at least m + f = 7 updates, got 6');
    expectCode(() => multiKrum(FIXTURE_K, { f: 1, m: 0 }), 'AGG_INVALID_INPUT');
    expectCode(() => multiKrum(FIXTURE_K, { f: 1, m: 1.5 }), 'AGG_INVALID_INPUT');
    expectCode(() => multiKrum(FIXTURE_K, { f: 1, m: Number.NaN }), 'AGG_INVALID_INPUT');
  });
});

describe('coordinateMedian', () => {
  it('takes the middle value per coordinate for odd n', () => {
    // coordinate 0: {1, 3, 2, 100, 0}        sorted 0, 1, 2, 3, 100       → 2
    // coordinate 1: {−2, 0, 4, −50, 1}       sorted −50, −2, 0, 1, 4      → 0
    // coordinate 2: {0.5, 0.25, −1, 8, 0}    sorted −1, 0, 0.25, 0.5, 8   → 0.25
    const updates = [u([1, -2, 0.5]), u([3, 0, 0.25]), u([2, 4, -1]), u([100, -50, 8]), u([0, 1, 0])];
    expect(coordinateMedian(updates)).toEqual(f32([2, 0, 0.25]));
  });

  it('averages the two middle values for even n', () => {
    // coordinate 0: sorted 1, 2, 4, 1000   → (2 + 4) / 2 = 3
    // coordinate 1: sorted −5, 0, 10, 20   → (0 + 10) / 2 = 5
    const updates = [u([1, 10]), u([2, 20]), u([4, -5]), u([1000, 0])];
    expect(coordinateMedian(updates)).toEqual(f32([3, 5]));
  });

  it('of one update is that update', () => {
    expect(coordinateMedian([u([0.1, -7])])).toEqual(f32([0.1, -7]));
  });
});

describe('trimmedMean', () => {
  // coordinate 0: {1, 2, 3, 4, −100, 100}   coordinate 1: {5, 6, 7, 8, 9, 1000}
  const updates = [u([1, 5]), u([2, 6]), u([3, 7]), u([4, 8]), u([-100, 9]), u([100, 1000])];

  it('drops ⌊beta·n⌋ values from each end per coordinate', () => {
    // beta = 0.2, n = 6 → ⌊1.2⌋ = 1 dropped each side, 4 kept.
    //   coordinate 0: sorted −100, 1, 2, 3, 4, 100 → (1 + 2 + 3 + 4) / 4 = 2.5
    //   coordinate 1: sorted 5, 6, 7, 8, 9, 1000   → (6 + 7 + 8 + 9) / 4 = 7.5
    expect(trimmedMean(updates, { beta: 0.2 })).toEqual(f32([2.5, 7.5]));
    // beta = 0.49 → ⌊2.94⌋ = 2 each side, 2 kept: (2 + 3) / 2 = 2.5 and (7 + 8) / 2 = 7.5.
    expect(trimmedMean(updates, { beta: 0.49 })).toEqual(f32([2.5, 7.5]));
  });

  it('with beta = 0 is the plain mean', () => {
    // coordinate 0: (1 + 2 + 3 + 4 − 100 + 100) / 6 = 10/6 = 5/3; coordinate 1: 1035 / 6 = 172.5
    expect(trimmedMean(updates, { beta: 0 })).toEqual(f32([5 / 3, 172.5]));
  });

  it('rejects beta outside [0, 0.5)', () => {
    for (const beta of [0.5, 0.75, -0.1, Number.NaN, Number.POSITIVE_INFINITY]) {
      const err = expectCode(() => trimmedMean(updates, { beta }), 'AGG_INVALID_INPUT');
      expect(err.message).toContain(`in [0, 0.5), got ${beta}`);
    }
  });
});

describe('bulyan', () => {
  it('selects θ = n − 2f by repeated Krum, then averages the β closest to the median (fixture B)', () => {
    // Round 1, all 7, max(1, 7 − 1 − 2) = 4 neighbours:
    //   s0 = 10+10+49+58 = 127   s1 = 9+17+25+49 = 100   s2 = 10+17+20+32 = 79   s3 = 9+20+58+64 = 151
    //   s4 = 25+52+64+68 = 209   s5 = 10+32+68+73 = 183  s6 = 4789+4941+5045+5105 = 19880        → 2
    // Round 2, {0,1,3,4,5,6}, 3 neighbours:
    //   s0 = 10+49+58 = 117   s1 = 9+25+49 = 83   s3 = 9+58+64 = 131   s4 = 25+64+68 = 157
    //   s5 = 10+68+73 = 151   s6 = 4789+5045+5105 = 14939                                        → 1
    // Round 3, {0,3,4,5,6}, 2 neighbours:
    //   s0 = 10+58 = 68   s3 = 58+64 = 122   s4 = 64+68 = 132   s5 = 10+68 = 78   s6 = 4789+5045 = 9834 → 0
    // Round 4, {3,4,5,6}, max(1, 4 − 3) = 1 neighbour:
    //   s3 = 64   s4 = 64   s5 = 68   s6 = 5045                                  → tie 3/4 → 3
    // Round 5, {4,5,6}, 1 neighbour: s4 = 68   s5 = 68   s6 = 5045               → tie 4/5 → 4
    // Kept: 2, 1, 0, 3, 4 (the outlier 6 and the far-off 5 are out).
    // coordinate 0: {6, 5, 5, 8, 0} sorted 0, 5, 5, 6, 8, median 5; closest 3: 5, 5, 6 → 16/3
    // coordinate 1: {5, 9, 2, 9, 9} sorted 2, 5, 9, 9, 9, median 9; closest 3: 9, 9, 9 → 9
    const result = bulyan(FIXTURE_B, { f: 1 });
    expect(result.indices).toEqual([2, 1, 0, 3, 4]);
    expect(result.update).toEqual(f32([16 / 3, 9]));
  });

  it('breaks ties by the lowest index in Krum and towards the smaller value around the median', () => {
    //   u0 = (0, 1)  u1 = (1, 0)  u2 = (2, 3)  u3 = (3, 2)  u4 = (1, 2)  u5 = (4, 4)  u6 = (60, −40)
    // Squared distances:
    //   d01 = 1+1 = 2    d02 = 4+4 = 8    d03 = 9+1 = 10   d04 = 1+1 = 2    d05 = 16+9 = 25
    //   d12 = 1+9 = 10   d13 = 4+4 = 8    d14 = 0+4 = 4    d15 = 9+16 = 25
    //   d23 = 1+1 = 2    d24 = 1+1 = 2    d25 = 4+1 = 5    d34 = 4+0 = 4    d35 = 1+4 = 5    d45 = 9+4 = 13
    //   d06 = 60²+41² = 5281   d16 = 59²+40² = 5081   d26 = 58²+43² = 5213
    //   d36 = 57²+42² = 5013   d46 = 59²+42² = 5245   d56 = 56²+44² = 5072
    // Round 1 (4 neighbours): s0 = 2+2+8+10 = 22  s1 = 2+4+8+10 = 24  s2 = 2+2+5+8 = 17  s3 = 2+4+5+8 = 19
    //   s4 = 2+2+4+4 = 12  s5 = 5+5+13+25 = 48  s6 = 5013+5072+5081+5213 = 20379                  → 4
    // Round 2 (3 neighbours, without 4): s0 = 2+8+10 = 20  s1 = 2+8+10 = 20  s2 = 2+5+8 = 15  s3 = 2+5+8 = 15
    //   s5 = 5+5+25 = 35  s6 = 5013+5072+5081 = 15166                                  → tie 2/3 → 2
    // Round 3 (2 neighbours, {0,1,3,5,6}): s0 = 2+10 = 12  s1 = 2+8 = 10  s3 = 5+8 = 13  s5 = 5+25 = 30
    //   s6 = 5013+5072 = 10085                                                                      → 1
    // Round 4 (1 neighbour, {0,3,5,6}): s0 = 10  s3 = 5  s5 = 5  s6 = 5013           → tie 3/5 → 3
    // Round 5 (1 neighbour, {0,5,6}): s0 = 25  s5 = 25  s6 = 5072                     → tie 0/5 → 0
    // Kept: 4, 2, 1, 3, 0.
    // coordinate 0: {1, 2, 1, 3, 0} sorted 0, 1, 1, 2, 3, median 1: take 1, 1, then 0 and 2 are both 1 away → the
    //   smaller, 0 → (1 + 1 + 0) / 3 = 2/3
    // coordinate 1: {2, 3, 0, 2, 1} sorted 0, 1, 2, 2, 3, median 2: take 2, 2, then 1 and 3 tie → 1 → 5/3
    const updates = [u([0, 1]), u([1, 0]), u([2, 3]), u([3, 2]), u([1, 2]), u([4, 4]), u([60, -40])];
    const result = bulyan(updates, { f: 1 });
    expect(result.indices).toEqual([4, 2, 1, 3, 0]);
    expect(result.update).toEqual(f32([2 / 3, 5 / 3]));
  });

  it('with f = 0 keeps everything and is the plain mean', () => {
    // θ = β = n = 3: (1 + 2 + 6) / 3 = 3 and (0 + 0 + 3) / 3 = 1.
    const result = bulyan([u([1, 0]), u([2, 0]), u([6, 3])], { f: 0 });
    expect([...result.indices].sort()).toEqual([0, 1, 2]);
    expect(result.update).toEqual(f32([3, 1]));
  });
});

// ---------------------------------------------------------------------------------------------------------------
// The byzantine property

const HONEST = fc.float({ min: -1, max: 1, noNaN: true });
/** Every coordinate of a "huge" attacker is at least 10⁶ away from zero, up to 10³⁰, either sign. */
const HUGE = fc
  .tuple(fc.boolean(), fc.float({ min: 1e6, max: Math.fround(1e30), noNaN: true }))
  .map(([negative, magnitude]) => (negative ? -magnitude : magnitude));
/** Any finite float32 at all, ±3.4e38 included. */
const ANY = fc.float({ noNaN: true, noDefaultInfinity: true });

interface Scenario {
  readonly f: number;
  readonly d: number;
  readonly updates: ClientResult[];
  /** honest[i] is true when updates[i] came from an honest client. */
  readonly honest: boolean[];
}

/**
 * n = minN(f) + extra clients, f of them attackers at random positions, sending `attacker` values (all the same
 * vector when they collude). Honest coordinates lie in [−1, 1].
 */
function scenario(
  minN: (f: number) => number,
  attacker: fc.Arbitrary<number>,
  maxF = 3,
): fc.Arbitrary<Scenario> {
  return fc
    .record({
      f: fc.integer({ min: 0, max: maxF }),
      extra: fc.integer({ min: 0, max: 4 }),
      d: fc.integer({ min: 1, max: 4 }),
    })
    .chain(({ f, extra, d }) => {
      const n = minN(f) + extra;
      const vector = (values: fc.Arbitrary<number>) => fc.array(values, { minLength: d, maxLength: d });
      return fc
        .record({
          honest: fc.array(vector(HONEST), { minLength: n - f, maxLength: n - f }),
          attackers: fc.array(vector(attacker), { minLength: f, maxLength: f }),
          collude: fc.boolean(),
          order: fc.shuffledSubarray(
            Array.from({ length: n }, (_, i) => i),
            { minLength: n, maxLength: n },
          ),
          weights: fc.array(fc.integer({ min: 1, max: 10_000 }), { minLength: n, maxLength: n }),
        })
        .map(({ honest, attackers, collude, order, weights }) => {
          const bad = collude && attackers.length > 0 ? attackers.map(() => attackers[0]!) : attackers;
          const all = [...honest, ...bad];
          return {
            f,
            d,
            updates: order.map((k, i) => u(all[k]!, weights[i]!)),
            honest: order.map((k) => k < honest.length),
          };
        });
    });
}

/** Per coordinate, min ≤ value ≤ max over the honest updates. */
function expectWithinHonestRange(out: Float32Array, s: Scenario): void {
  expect(out.length).toBe(s.d);
  for (let k = 0; k < s.d; k++) {
    const values = s.updates.filter((_, i) => s.honest[i]).map((r) => r.update[k]!);
    expect(out[k]).toBeGreaterThanOrEqual(Math.min(...values));
    expect(out[k]).toBeLessThanOrEqual(Math.max(...values));
  }
}

describe('byzantine property: f attackers cannot drag the aggregate out of the honest values', () => {
  it('Krum returns an honest update (n ≥ 2f + 3, huge attackers)', () => {
    fc.assert(
      fc.property(
        scenario((f) => 2 * f + 3, HUGE),
        (s) => {
          const { index, update } = krum(s.updates, { f: s.f });
          expect(s.honest[index]).toBe(true);
          expect(update).toEqual(s.updates[index]!.update);
        },
      ),
    );
  });

  it('Multi-Krum keeps only honest updates, so their mean is in their convex hull', () => {
    fc.assert(
      fc.property(
        scenario((f) => 2 * f + 3, HUGE),
        fc.integer({ min: 1, max: 1000 }),
        (s, pick) => {
          const m = 1 + (pick % (s.updates.length - s.f));
          const { indices, update } = multiKrum(s.updates, { f: s.f, m });
          expect(indices).toHaveLength(m);
          for (const i of indices) expect(s.honest[i]).toBe(true);
          expectWithinHonestRange(update, s);
        },
      ),
    );
  });

  it('Bulyan stays in the honest range per coordinate (n ≥ 4f + 3, huge attackers)', () => {
    fc.assert(
      fc.property(
        scenario((f) => 4 * f + 3, HUGE, 2),
        (s) => {
          expectWithinHonestRange(bulyan(s.updates, { f: s.f }).update, s);
        },
      ),
    );
  });

  it('the coordinate median stays in the honest range for any finite attackers (f < n/2)', () => {
    fc.assert(
      fc.property(
        scenario((f) => 2 * f + 1, ANY),
        (s) => {
          expectWithinHonestRange(coordinateMedian(s.updates), s);
        },
      ),
    );
    fc.assert(
      fc.property(
        scenario((f) => 2 * f + 1, HUGE),
        (s) => {
          expectWithinHonestRange(coordinateMedian(s.updates), s);
        },
      ),
    );
  });

  it('the trimmed mean with ⌊beta·n⌋ ≥ f stays in the honest range for any finite attackers', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          scenario((f) => 2 * f + 2, ANY),
          scenario((f) => 2 * f + 2, HUGE),
        ),
        (s) => {
          // beta = (f + ½)/n < ½ since n ≥ 2f + 2, and ⌊beta·n⌋ = f.
          const beta = (s.f + 0.5) / s.updates.length;
          expect(Math.floor(beta * s.updates.length)).toBe(s.f);
          expectWithinHonestRange(trimmedMean(s.updates, { beta }), s);
        },
      ),
    );
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Secure aggregation: refuse, never degrade

const SECAGG_MESSAGE =
  "Krum needs each client's plaintext update, but this task uses secure aggregation, which reveals only the sum; " +
  'choose a FedAvg-family strategy or disable secure aggregation';

const ALL: ReadonlyArray<
  readonly [string, (updates: readonly ClientResult[], secureAggregation?: boolean) => unknown]
> = [
  ['Krum', (r, secureAggregation) => krum(r, { f: 1, secureAggregation })],
  ['Multi-Krum', (r, secureAggregation) => multiKrum(r, { f: 1, m: 2, secureAggregation })],
  ['coordinate median', (r, secureAggregation) => coordinateMedian(r, { secureAggregation })],
  ['trimmed mean', (r, secureAggregation) => trimmedMean(r, { beta: 0.2, secureAggregation })],
  ['Bulyan', (r, secureAggregation) => bulyan(r, { f: 1, secureAggregation })],
];

describe('refusal under secure aggregation', () => {
  it.each(ALL)('%s refuses with AGG_REFUSED_UNDER_SECAGG before looking at its input', (name, run) => {
    const err = expectCode(() => run(FIXTURE_B, true), 'AGG_REFUSED_UNDER_SECAGG');
    expect(err.message).toBe(SECAGG_MESSAGE.replace('Krum', name));
    // Even with nothing to aggregate: the refusal comes first.
    expectCode(() => run([], true), 'AGG_REFUSED_UNDER_SECAGG');
    // Fails closed on a flag that is not a boolean (e.g. from untyped config).
    expectCode(() => run(FIXTURE_B, 'yes' as unknown as boolean), 'AGG_REFUSED_UNDER_SECAGG');
    // An explicit false runs.
    expect(run(FIXTURE_B, false)).toBeDefined();
  });

  it('assertPlaintextAllowed refuses SecAgg tasks and fails closed', () => {
    const err = expectCode(
      () => assertPlaintextAllowed('Krum', { secureAggregation: true }),
      'AGG_REFUSED_UNDER_SECAGG',
    );
    expect(err.message).toBe(SECAGG_MESSAGE);
    expect(err.details).toEqual({ aggregator: 'Krum' });
    // A strategy's kind is shown by its display name.
    expect(
      expectCode(
        () => assertPlaintextAllowed('multi-krum', { secureAggregation: true }),
        'AGG_REFUSED_UNDER_SECAGG',
      ).message,
    ).toMatch(/^Multi-Krum needs/);
    expectCode(
      () => assertPlaintextAllowed('Krum', {} as unknown as { secureAggregation: boolean }),
      'AGG_REFUSED_UNDER_SECAGG',
    );
    expect(() => assertPlaintextAllowed('Krum', { secureAggregation: false })).not.toThrow();
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Too few updates, bad input

describe('too few updates', () => {
  it('Krum and Multi-Krum need n > 2f + 2', () => {
    const four = FIXTURE_K.slice(0, 4);
    const err = expectCode(() => krum(four, { f: 1 }), 'AGG_TOO_FEW_UPDATES');
    expect(err.message).toBe('Krum with f = 1 expects more than 2f + 2 = 4 updates, got 4');
    expectCode(() => multiKrum(four, { f: 1, m: 1 }), 'AGG_TOO_FEW_UPDATES');
    expectCode(() => krum(FIXTURE_K.slice(0, 2), { f: 0 }), 'AGG_TOO_FEW_UPDATES');
    expectCode(() => krum(FIXTURE_K, { f: 2 }), 'AGG_TOO_FEW_UPDATES');
    expect(krum(FIXTURE_K.slice(0, 5), { f: 1 }).index).toBeGreaterThanOrEqual(0);
  });

  it('Bulyan needs n ≥ 4f + 3', () => {
    const err = expectCode(() => bulyan(FIXTURE_B.slice(0, 6), { f: 1 }), 'AGG_TOO_FEW_UPDATES');
    expect(err.message).toBe('Bulyan with f = 1 expects at least 4f + 3 = 7 updates, got 6');
    expectCode(() => bulyan(FIXTURE_B, { f: 2 }), 'AGG_TOO_FEW_UPDATES');
    expectCode(() => bulyan(FIXTURE_B.slice(0, 2), { f: 0 }), 'AGG_TOO_FEW_UPDATES');
  });

  it('minimumUpdates is exactly the fewest updates each rule aggregates (property)', () => {
    const specs = fc.oneof(
      fc.record({ kind: fc.constant('krum' as const), f: fc.integer({ min: 0, max: 4 }) }),
      fc.record({
        kind: fc.constant('multi-krum' as const),
        f: fc.integer({ min: 0, max: 4 }),
        m: fc.integer({ min: 1, max: 12 }),
      }),
      fc.record({ kind: fc.constant('bulyan' as const), f: fc.integer({ min: 0, max: 3 }) }),
      fc.record({
        kind: fc.constant('trimmed-mean' as const),
        beta: fc.double({ min: 0, max: 0.49, noNaN: true }),
      }),
      fc.constant({ kind: 'coordinate-median' as const }),
    );
    fc.assert(
      fc.property(specs, (spec: RobustAggregatorSpec) => {
        const strategy = robustStrategy(spec);
        const state = strategy.init(f32([0, 0]));
        const updates = (n: number) => Array.from({ length: n }, (_, i) => u([i, -i]));
        const n = minimumUpdates(spec);
        expect(strategy.aggregate(state, updates(n)).global).toHaveLength(2);
        if (n > 1) expectCode(() => strategy.aggregate(state, updates(n - 1)), 'AGG_TOO_FEW_UPDATES');
      }),
    );
  });
});

describe('bad input', () => {
  it.each(ALL)('%s: no updates → AGG_EMPTY', (_name, run) => {
    expectCode(() => run([]), 'AGG_EMPTY');
  });

  it.each(ALL)('%s: malformed updates and weights → AGG_INVALID_INPUT', (name, run) => {
    const good = FIXTURE_B.slice();
    const replace = (i: number, entry: unknown) =>
      good.map((r, j) => (j === i ? entry : r)) as unknown as ClientResult[];
    let err = expectCode(() => run(replace(2, u([1]))), 'AGG_INVALID_INPUT');
    expect(err.message).toBe(`${name} expected update 2 to have 2 coordinates like update 0, got 1`);
    err = expectCode(() => run(replace(3, u([1, Number.NaN]))), 'AGG_INVALID_INPUT');
    expect(err.message).toBe(`${name} expected finite coordinates, got NaN at coordinate 1 of update 3`);
    expectCode(() => run(replace(0, u([Number.POSITIVE_INFINITY, 0]))), 'AGG_INVALID_INPUT');
    err = expectCode(
      () => run(replace(1, { update: Float64Array.from([1, 2]), weight: 1 })),
      'AGG_INVALID_INPUT',
    );
    expect(err.message).toBe(`${name} expected update 1 to be a Float32Array, got Float64Array`);
    err = expectCode(() => run(replace(4, u([1, 2], -1))), 'AGG_INVALID_INPUT');
    expect(err.message).toBe(`${name} expected the weight of update 4 to be a finite number > 0, got -1`);
    expectCode(() => run(replace(4, u([1, 2], 0))), 'AGG_INVALID_INPUT');
    expectCode(() => run(replace(4, u([1, 2], Number.NaN))), 'AGG_INVALID_INPUT');
    expectCode(() => run(replace(5, null)), 'AGG_INVALID_INPUT');
    expectCode(() => run(good.map(() => u([]))), 'AGG_INVALID_INPUT');
    expectCode(() => run('updates' as unknown as ClientResult[]), 'AGG_INVALID_INPUT');
  });

  it('rejects a malformed f', () => {
    for (const f of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '1' as unknown as number]) {
      const err = expectCode(() => krum(FIXTURE_K, { f }), 'AGG_INVALID_INPUT');
      expect(err.message).toContain(`to be a non-negative integer, got ${String(f)}`);
      expectCode(() => multiKrum(FIXTURE_K, { f, m: 1 }), 'AGG_INVALID_INPUT');
      expectCode(() => bulyan(FIXTURE_B, { f }), 'AGG_INVALID_INPUT');
    }
  });

  it('never mutates its input', () => {
    const inputs = [FIXTURE_K, FIXTURE_B].map((fixture) =>
      fixture.map((r) => u([...r.update], r.weight + 1)),
    );
    const snapshot = () => inputs.map((rs) => rs.map((r) => ({ update: [...r.update], weight: r.weight })));
    const before = snapshot();
    for (const rs of inputs) {
      krum(rs, { f: 1 });
      multiKrum(rs, { f: 1, m: 3 });
      coordinateMedian(rs);
      trimmedMean(rs, { beta: 0.3 });
    }
    bulyan(inputs[1]!, { f: 1 });
    const strategy = robustStrategy({ kind: 'bulyan', f: 1 });
    strategy.aggregate(strategy.init(new Float32Array(2)), inputs[1]!);
    expect(snapshot()).toEqual(before);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// The strategy adapter

describe('robustStrategy', () => {
  const global = f32([10, 20, 30]);

  it.each<[RobustAggregatorSpec, string, readonly number[], number | undefined]>([
    // Deltas from fixture K; global + aggregate.
    [{ kind: 'krum', f: 1 }, 'Krum', [1, 2, 1], 1],
    [{ kind: 'multi-krum', f: 1, m: 3 }, 'Multi-Krum', [4 / 3, 2, 2 / 3], 3],
    // Median of fixture K per coordinate, n = 6:
    //   x sorted 1, 1, 1, 2, 2, 40 → (1 + 2)/2 = 1.5   y sorted −30, 2, 2, 2, 3, 3 → (2 + 2)/2 = 2
    //   z sorted 0, 0, 1, 1, 1, 50 → (1 + 1)/2 = 1
    [{ kind: 'coordinate-median' }, 'coordinate median', [1.5, 2, 1], undefined],
    // beta = 0.2 → ⌊1.2⌋ = 1 each side: x (1+1+2+2)/4 = 1.5, y (2+2+2+3)/4 = 2.25, z (0+1+1+1)/4 = 0.75
    [{ kind: 'trimmed-mean', beta: 0.2 }, 'trimmed mean', [1.5, 2.25, 0.75], undefined],
  ])('%o wraps %s as a Strategy: global + robust aggregate', (spec, displayName, delta, kept) => {
    const strategy = robustStrategy(spec);
    expect(strategy.name).toBe(spec.kind);
    expect(strategy.displayName).toBe(displayName);
    expect(strategy.needsPlaintextUpdates).toBe(true);
    expect(strategy.spec).toEqual(spec);
    const state = strategy.init(global);
    expect(state).toEqual({ strategy: spec.kind, round: 0, global, buffers: {} });
    const result = strategy.aggregate(state, FIXTURE_K);
    const expected = f32(delta.map((x, k) => Math.fround(x) + global[k]!));
    expect(result.global).toEqual(expected);
    expect(result.state.round).toBe(1);
    expect(result.state.global).toEqual(expected);
    expect(result.report).toEqual(kept === undefined ? undefined : { kept });
  });

  it('wraps Bulyan (fixture B)', () => {
    const strategy = robustStrategy({ kind: 'bulyan', f: 1 });
    const result = strategy.aggregate(strategy.init(f32([1, 1])), FIXTURE_B);
    expect(result.global).toEqual(f32([Math.fround(16 / 3) + 1, 10]));
    expect(result.report).toEqual({ kept: 5 });
  });

  it('refuses a SecAgg task up front and a weighted sum in aggregate', () => {
    const strategy = robustStrategy({ kind: 'trimmed-mean', beta: 0.1 });
    const err = expectCode(
      () => strategy.assertAllowed({ secureAggregation: true }),
      'AGG_REFUSED_UNDER_SECAGG',
    );
    expect(err.message).toMatch(/^trimmed mean needs each client's plaintext update/);
    expect(() => strategy.assertAllowed({ secureAggregation: false })).not.toThrow();
    // The only thing secure aggregation can hand a strategy is Σ wᵢΔᵢ and Σ wᵢ.
    expectCode(
      () => strategy.aggregate(strategy.init(global), { sum: f32([1, 2, 3]), totalWeight: 3 }),
      'AGG_REFUSED_UNDER_SECAGG',
    );
    expectCode(
      () => strategy.aggregate(strategy.init(global), null as unknown as ClientResult[]),
      'AGG_INVALID_INPUT',
    );
  });

  it('checks its parameters at creation', () => {
    const bad: unknown[] = [
      { kind: 'geometric-median' },
      { kind: 'krum', f: -1 },
      { kind: 'krum' },
      { kind: 'multi-krum', f: 1, m: 0 },
      { kind: 'trimmed-mean', beta: 0.5 },
      { kind: 'bulyan', f: 1.5 },
      null,
    ];
    for (const spec of bad)
      expectCode(() => robustStrategy(spec as RobustAggregatorSpec), 'AGG_INVALID_INPUT');
  });

  it('rejects a foreign state, a wrong length and too few updates', () => {
    const strategy = robustStrategy({ kind: 'krum', f: 1 });
    const state = strategy.init(global);
    expectCode(() => strategy.aggregate({ ...state, strategy: 'fedavg' }, FIXTURE_K), 'AGG_INVALID_INPUT');
    expectCode(() => strategy.aggregate(strategy.init(f32([0, 0])), FIXTURE_K), 'AGG_INVALID_INPUT');
    expectCode(() => strategy.aggregate(state, FIXTURE_K.slice(0, 4)), 'AGG_TOO_FEW_UPDATES');
    expectCode(() => strategy.aggregate(state, []), 'AGG_EMPTY');
    expectCode(() => strategy.init(f32([])), 'AGG_INVALID_INPUT');
    expectCode(() => strategy.init(f32([Number.NaN])), 'AGG_INVALID_INPUT');
    // A new model that overflows float32 fails closed.
    const huge = robustStrategy({ kind: 'coordinate-median' });
    expectCode(
      () => huge.aggregate(huge.init(f32([3e38])), [u([3e38]), u([3e38]), u([3e38])]),
      'AGG_INVALID_INPUT',
    );
  });
});
