/**
 * Aggregation strategies against hand-computed fixtures. Every expected value below is worked out in the comments
 * from the formulas (Reddi et al. 2021, Algorithm 2; Hsu et al. 2019), never from the implementation.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type AggregateInput,
  type ClientResult,
  clipToNorm,
  fedAdagrad,
  fedAdam,
  fedAvg,
  fedAvgM,
  fedProx,
  fedYogi,
  proximalTerm,
  type Strategy,
  type StrategyState,
  weightedMean,
  withNormClipping,
} from '../../src/aggregation/strategies.ts';
import { expectCode } from './helpers.ts';

function expectClose(actual: Float32Array, expected: readonly number[], digits = 5): void {
  expect(actual).toBeInstanceOf(Float32Array);
  expect(actual.length).toBe(expected.length);
  expected.forEach((e, i) => {
    expect(actual[i], `index ${i}`).toBeCloseTo(e, digits);
  });
}

const f32 = (values: readonly number[]) => Float32Array.from(values);
const result = (update: readonly number[], weight: number): ClientResult => ({ update: f32(update), weight });

/** The starting global model of every fixture. */
const G0 = [1, 2, 3];

/*
 * Round 1: three clients, weights 1, 2, 1 (total 4).
 *   Σ wΔ = [1,-2,2] + 2·[4,-3,-1] + [3,-8,0] = [1+8+3, -2-6-8, 2-2+0] = [12, -16, 0]
 *   Δ̄₁  = [12, -16, 0] / 4 = [3, -4, 0]
 */
const round1 = (): ClientResult[] => [result([1, -2, 2], 1), result([4, -3, -1], 2), result([3, -8, 0], 1)];
const SUM1 = [12, -16, 0];
const W1 = 4;

/*
 * Round 2: weights 3, 1, 4 (total 8).
 *   Σ wΔ = 3·[2,1,0] + [2,-7,0] + 4·[6,3,-6] = [6+2+24, 3-7+12, 0+0-24] = [32, 8, -24]
 *   Δ̄₂  = [32, 8, -24] / 8 = [4, 1, -3]
 */
const round2 = (): ClientResult[] => [result([2, 1, 0], 3), result([2, -7, 0], 1), result([6, 3, -6], 4)];
const SUM2 = [32, 8, -24];
const W2 = 8;

/** Runs two rounds from G0 and returns both results. */
function twoRounds(strategy: Strategy) {
  const s0 = strategy.init(f32(G0));
  const r1 = strategy.aggregate(s0, round1());
  const r2 = strategy.aggregate(r1.state, round2());
  return { s0, r1, r2 };
}

describe('weightedMean', () => {
  it('is Σ wᵢΔᵢ / Σ wᵢ (hand-computed)', () => {
    expectClose(weightedMean(round1()), [3, -4, 0], 6);
    expectClose(weightedMean(round2()), [4, 1, -3], 6);
  });

  it('accumulates in Float64: 1e8 + 1 − 1e8 in float32 would lose the 1', () => {
    // float32 has 24 bits of mantissa: Math.fround(1e8 + 1) === 1e8. Weights 1 each, total 3:
    // (1e8 + 1 + (−1e8)) / 3 = 1/3 — a float32 accumulator would give 0.
    const mean = weightedMean([result([1e8], 1), result([1], 1), result([-1e8], 1)]);
    expect(mean[0]).toBeCloseTo(1 / 3, 6);
  });

  it('rejects empty input and malformed updates or weights by code', () => {
    expectCode(() => weightedMean([]), 'AGG_EMPTY');
    const err = expectCode(
      () => weightedMean([result([1, 2], 1), result([1, 2, 3], 1)]),
      'AGG_INVALID_INPUT',
    );
    expect(err.message).toMatch(/expected update 1 to have 2 values.*got 3/);
    expectCode(() => weightedMean([result([1, Number.NaN], 1)]), 'AGG_INVALID_INPUT');
    expectCode(() => weightedMean([result([1, Number.POSITIVE_INFINITY], 1)]), 'AGG_INVALID_INPUT');
    for (const weight of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      const e = expectCode(
        () => weightedMean([result([1, 2], 1), result([1, 2], weight)]),
        'AGG_INVALID_INPUT',
      );
      expect(e.message).toMatch(/weight of update 1.*> 0, got/);
    }
    const notF32 = [{ update: [1, 2] as unknown as Float32Array, weight: 1 }];
    expectCode(() => weightedMean(notF32), 'AGG_INVALID_INPUT');
    expectCode(
      () => weightedMean([{ update: new Float64Array([1]) as unknown as Float32Array, weight: 1 }]),
      'AGG_INVALID_INPUT',
    );
  });

  it('property: invariant to scaling all weights by the same factor', () => {
    const arb = fc.record({
      dim: fc.integer({ min: 1, max: 8 }),
      scale: fc.double({ min: 1e-3, max: 1e3, noNaN: true }),
      clients: fc.array(
        fc.record({
          values: fc.array(fc.float({ min: -1e3, max: 1e3, noNaN: true }), { minLength: 8, maxLength: 8 }),
          weight: fc.double({ min: 1e-3, max: 1e6, noNaN: true }),
        }),
        { minLength: 1, maxLength: 6 },
      ),
    });
    fc.assert(
      fc.property(arb, ({ dim, scale, clients }) => {
        const results = clients.map((c) => result(c.values.slice(0, dim), c.weight));
        const scaled = clients.map((c) => result(c.values.slice(0, dim), c.weight * scale));
        const a = weightedMean(results);
        const b = weightedMean(scaled);
        for (let i = 0; i < dim; i++) {
          // Both are the same double up to a few ulps, then rounded to float32: at most one float32 ulp apart.
          expect(Math.abs(a[i]! - b[i]!)).toBeLessThanOrEqual(1e-6 * (1 + Math.abs(a[i]!)));
        }
      }),
    );
  });
});

describe('fedAvg', () => {
  it('adds the weighted mean delta to the global model (hand-computed)', () => {
    const { r1, r2 } = twoRounds(fedAvg());
    // G0 + Δ̄₁ = [1+3, 2-4, 3+0] = [4, -2, 3]
    expectClose(r1.global, [4, -2, 3], 6);
    // + Δ̄₂ = [4+4, -2+1, 3-3] = [8, -1, 0]
    expectClose(r2.global, [8, -1, 0], 6);
    expect(r1.state.round).toBe(1);
    expect(r2.state.round).toBe(2);
    expect(r1.report).toBeUndefined();
  });

  it('scales the step by the server learning rate', () => {
    const s = fedAvg({ serverLr: 0.5 });
    // G0 + 0.5·Δ̄₁ = [1+1.5, 2-2, 3+0] = [2.5, 0, 3]
    expectClose(s.aggregate(s.init(f32(G0)), round1()).global, [2.5, 0, 3], 6);
  });

  it('property: fedAvg of identical updates from zero is exactly that update (−0 and +0 alike)', () => {
    const arb = fc.record({
      update: fc.array(fc.float({ min: -1e6, max: 1e6, noNaN: true }), { minLength: 1, maxLength: 16 }),
      weights: fc.array(fc.double({ min: 1e-3, max: 1e6, noNaN: true }), { minLength: 1, maxLength: 8 }),
    });
    fc.assert(
      fc.property(arb, ({ update, weights }) => {
        const s = fedAvg();
        const out = s.aggregate(
          s.init(new Float32Array(update.length)),
          weights.map((w) => result(update, w)),
        ).global;
        // 0 + (−0) is +0, so compare numerically: x + 0 maps −0 to +0.
        expect(Array.from(out, (x) => x + 0)).toEqual(Array.from(f32(update), (x) => x + 0));
      }),
    );
  });
});

describe('fedProx', () => {
  it('aggregates exactly like FedAvg and exposes μ for the clients', () => {
    const s = fedProx({ mu: 0.01 });
    expect(s.name).toBe('fedprox');
    expect(s.mu).toBe(0.01);
    expect(s.needsPlaintextUpdates).toBe(false);
    const { r1, r2 } = twoRounds(s);
    expectClose(r1.global, [4, -2, 3], 6);
    expectClose(r2.global, [8, -1, 0], 6);
  });

  it('proximalTerm is μ·(w − w_global) (hand-computed)', () => {
    // 0.1·([1, 2, 3] − [0.5, 2, 4]) = 0.1·[0.5, 0, -1] = [0.05, 0, -0.1]
    expectClose(proximalTerm(0.1, f32([1, 2, 3]), f32([0.5, 2, 4])), [0.05, 0, -0.1], 7);
    expectClose(proximalTerm(0, f32([1, 2]), f32([5, 6])), [0, 0], 7);
  });

  it('proximalTerm rejects a bad μ, mismatched lengths and a diverged model', () => {
    expectCode(() => proximalTerm(-0.1, f32([1]), f32([1])), 'AGG_INVALID_INPUT');
    expectCode(() => proximalTerm(Number.NaN, f32([1]), f32([1])), 'AGG_INVALID_INPUT');
    const e = expectCode(() => proximalTerm(0.1, f32([1, 2]), f32([1])), 'AGG_INVALID_INPUT');
    expect(e.message).toMatch(/2 values.*got 1 values/);
    expectCode(() => proximalTerm(0.1, f32([Number.NaN]), f32([1])), 'AGG_INVALID_INPUT');
    expectCode(() => fedProx({ mu: -1 }), 'AGG_INVALID_INPUT');
  });
});

describe('fedAvgM', () => {
  it('carries the momentum across two rounds (hand-computed, η = 0.5, β = 0.5)', () => {
    const { r1, r2 } = twoRounds(fedAvgM({ serverLr: 0.5, momentum: 0.5 }));
    // v₁ = 0.5·0 + Δ̄₁ = [3, -4, 0];  x₁ = G0 + 0.5·v₁ = [1+1.5, 2-2, 3+0] = [2.5, 0, 3]
    expectClose(r1.global, [2.5, 0, 3], 6);
    expectClose(Float32Array.from(r1.state.buffers.momentum!), [3, -4, 0], 6);
    // v₂ = 0.5·[3,-4,0] + [4,1,-3] = [5.5, -1, -3];  x₂ = [2.5+2.75, 0-0.5, 3-1.5] = [5.25, -0.5, 1.5]
    expectClose(r2.global, [5.25, -0.5, 1.5], 6);
    expectClose(Float32Array.from(r2.state.buffers.momentum!), [5.5, -1, -3], 6);
  });

  it('with β = 0 and η = 1 is FedAvg', () => {
    const { r2 } = twoRounds(fedAvgM({ serverLr: 1, momentum: 0 }));
    expectClose(r2.global, [8, -1, 0], 6);
  });

  it('defaults to η = 1, β = 0.9', () => {
    const { r2 } = twoRounds(fedAvgM());
    // v₁ = [3,-4,0], x₁ = [4,-2,3]; v₂ = 0.9·[3,-4,0] + [4,1,-3] = [6.7, -2.6, -3]; x₂ = [10.7, -4.6, 0]
    expectClose(r2.global, [10.7, -4.6, 0], 5);
  });
});

describe('fedAdagrad', () => {
  it('two rounds by Algorithm 2 (hand-computed, η = 1, β₁ = 0.5, τ = 1)', () => {
    const { r1, r2 } = twoRounds(fedAdagrad({ eta: 1, beta1: 0.5, tau: 1 }));
    // m₁ = 0.5·0 + 0.5·[3,-4,0] = [1.5, -2, 0];  v₁ = 0 + [9, 16, 0];  √v₁ = [3, 4, 0]
    // x₁ = G0 + m₁/(√v₁+1) = [1 + 1.5/4, 2 - 2/5, 3 + 0/1] = [1.375, 1.6, 3]
    expectClose(r1.global, [1.375, 1.6, 3], 6);
    // m₂ = 0.5·[1.5,-2,0] + 0.5·[4,1,-3] = [2.75, -0.5, -1.5];  v₂ = [9+16, 16+1, 0+9] = [25, 17, 9]
    // x₂ = [1.375 + 2.75/(5+1), 1.6 − 0.5/(√17+1), 3 − 1.5/(3+1)] = [1.833333, 1.502403, 2.625]
    expectClose(r2.global, [1.375 + 2.75 / 6, 1.6 - 0.5 / (Math.sqrt(17) + 1), 2.625], 6);
    expectClose(Float32Array.from(r2.state.buffers.m!), [2.75, -0.5, -1.5], 6);
    expectClose(Float32Array.from(r2.state.buffers.v!), [25, 17, 9], 6);
  });

  it("uses Flower's defaults: η = 0.1, β₁ = 0, τ = 1e-9", () => {
    const { r1, r2 } = twoRounds(fedAdagrad());
    // m₁ = Δ̄₁ = [3,-4,0]; v₁ = [9,16,0]; x₁ = G0 + 0.1·[3/3, -4/4, 0/1e-9] ≈ [1.1, 1.9, 3]
    expectClose(r1.global, [1.1, 1.9, 3], 6);
    // m₂ = Δ̄₂ = [4,1,-3]; v₂ = [25,17,9]; x₂ = x₁ + 0.1·[4/5, 1/√17, -3/3] = [1.18, 1.9 + 0.1/√17, 2.9]
    expectClose(r2.global, [1.18, 1.9 + 0.1 / Math.sqrt(17), 2.9], 6);
  });
});

describe('fedAdam', () => {
  it('two rounds by Algorithm 2 (hand-computed, η = 1, β₁ = 0.5, β₂ = 0.75, τ = 1)', () => {
    const { r1, r2 } = twoRounds(fedAdam({ eta: 1, beta1: 0.5, beta2: 0.75, tau: 1 }));
    // m₁ = [1.5, -2, 0];  v₁ = 0.75·0 + 0.25·[9,16,0] = [2.25, 4, 0];  √v₁ = [1.5, 2, 0]
    // x₁ = [1 + 1.5/2.5, 2 − 2/3, 3 + 0] = [1.6, 1.333333, 3]
    expectClose(r1.global, [1.6, 2 - 2 / 3, 3], 6);
    // m₂ = [2.75, -0.5, -1.5];  v₂ = 0.75·[2.25,4,0] + 0.25·[16,1,9] = [1.6875+4, 3+0.25, 0+2.25] = [5.6875, 3.25, 2.25]
    // x₂ = [1.6 + 2.75/(√5.6875+1), 1.333333 − 0.5/(√3.25+1), 3 − 1.5/(1.5+1)] ≈ [2.412444, 1.154939, 2.4]
    expectClose(
      r2.global,
      [1.6 + 2.75 / (Math.sqrt(5.6875) + 1), 2 - 2 / 3 - 0.5 / (Math.sqrt(3.25) + 1), 2.4],
      6,
    );
    expectClose(Float32Array.from(r2.state.buffers.v!), [5.6875, 3.25, 2.25], 6);
  });

  it("uses Flower's defaults: η = 0.1, β₁ = 0.9, β₂ = 0.99, τ = 1e-9", () => {
    const s = fedAdam();
    const r1 = s.aggregate(s.init(f32(G0)), round1());
    // m₁ = 0.1·[3,-4,0] = [0.3,-0.4,0]; v₁ = 0.01·[9,16,0] = [0.09,0.16,0]; √v₁ = [0.3,0.4,0]
    // x₁ = G0 + 0.1·[0.3/0.3, -0.4/0.4, 0] = [1.1, 1.9, 3]
    expectClose(r1.global, [1.1, 1.9, 3], 6);
  });
});

describe('fedYogi', () => {
  it('two rounds by Algorithm 2 (hand-computed, η = 1, β₁ = 0.5, β₂ = 0.75, τ = 1)', () => {
    const { r1, r2 } = twoRounds(fedYogi({ eta: 1, beta1: 0.5, beta2: 0.75, tau: 1 }));
    // v₁ = 0 − 0.25·[9,16,0]·sign(0 − [9,16,0]) = −0.25·[9,16,0]·[-1,-1,0] = [2.25, 4, 0]  (as Adam in round 1)
    // x₁ = [1.6, 1.333333, 3]
    expectClose(r1.global, [1.6, 2 - 2 / 3, 3], 6);
    expectClose(Float32Array.from(r1.state.buffers.v!), [2.25, 4, 0], 6);
    // Δ̄₂² = [16, 1, 9]; sign(v₁ − Δ̄₂²) = sign([-13.75, 3, -9]) = [-1, +1, -1]
    // v₂ = [2.25 + 0.25·16, 4 − 0.25·1, 0 + 0.25·9] = [6.25, 3.75, 2.25];  √v₂ = [2.5, 1.936492, 1.5]
    // m₂ = [2.75, -0.5, -1.5]; x₂ = [1.6 + 2.75/3.5, 1.333333 − 0.5/(√3.75+1), 3 − 1.5/2.5] ≈ [2.385714, 1.163062, 2.4]
    expectClose(Float32Array.from(r2.state.buffers.v!), [6.25, 3.75, 2.25], 6);
    expectClose(r2.global, [1.6 + 2.75 / 3.5, 2 - 2 / 3 - 0.5 / (Math.sqrt(3.75) + 1), 2.4], 6);
  });

  it('differs from Adam exactly where v > Δ² (coordinate 1 of round 2)', () => {
    const opts = { eta: 1, beta1: 0.5, beta2: 0.75, tau: 1 };
    const adam = twoRounds(fedAdam(opts)).r2.state.buffers.v!;
    const yogi = twoRounds(fedYogi(opts)).r2.state.buffers.v!;
    expect(adam[1]).toBeCloseTo(3.25, 12);
    expect(yogi[1]).toBeCloseTo(3.75, 12);
  });

  it("uses Flower's defaults: η = 0.01, β₁ = 0.9, β₂ = 0.99, τ = 1e-3", () => {
    const s = fedYogi();
    const r1 = s.aggregate(s.init(f32(G0)), round1());
    // m₁ = [0.3,-0.4,0]; v₁ = 0.01·[9,16,0]; √v₁ = [0.3,0.4,0]
    // x₁ = G0 + 0.01·[0.3/0.301, -0.4/0.401, 0] = [1 + 0.003/0.301, 2 − 0.004/0.401, 3]
    expectClose(r1.global, [1 + 0.003 / 0.301, 2 - 0.004 / 0.401, 3], 6);
  });
});

describe('withNormClipping', () => {
  /*
   * maxNorm 5, global 0, weights 1, 1, 2 (total 4):
   *   [3, 4, 0]  norm 5   → not clipped (only a norm above maxNorm is)
   *   [0, 6, 8]  norm 10  → ·5/10 = [0, 3, 4]
   *   [1, 0, 0]  norm 1   → not clipped
   *   mean = ([3,4,0] + [0,3,4] + 2·[1,0,0]) / 4 = [5, 7, 4] / 4 = [1.25, 1.75, 1]
   */
  const clipInput = () => [result([3, 4, 0], 1), result([0, 6, 8], 1), result([1, 0, 0], 2)];

  it('scales long updates to maxNorm and reports how many (hand-computed)', () => {
    const s = withNormClipping(fedAvg(), { maxNorm: 5 });
    expect(s.name).toBe('fedavg+clip');
    expect(s.needsPlaintextUpdates).toBe(true);
    const input = clipInput();
    const out = s.aggregate(s.init(new Float32Array(3)), input);
    expectClose(out.global, [1.25, 1.75, 1], 6);
    expect(out.report).toEqual({ clipped: 1 });
    expect(Array.from(input[1]!.update)).toEqual([0, 6, 8]);
  });

  it('wraps a stateful strategy and its state unchanged', () => {
    const s = withNormClipping(fedAvgM({ serverLr: 0.5, momentum: 0.5 }), { maxNorm: 100 });
    const { r1, r2 } = twoRounds(s);
    expect(r1.state.strategy).toBe('fedavgm');
    expectClose(r2.global, [5.25, -0.5, 1.5], 6);
    expect(r2.report).toEqual({ clipped: 0 });
  });

  it('nested wrappers keep the inner report', () => {
    const s = withNormClipping(withNormClipping(fedAvg(), { maxNorm: 5 }), { maxNorm: 100 });
    const out = s.aggregate(s.init(new Float32Array(3)), clipInput());
    expect(out.report).toEqual({ clipped: 0 });
    expectClose(out.global, [1.25, 1.75, 1], 6);
  });

  it('refuses a secure sum instead of silently not clipping', () => {
    const s = withNormClipping(fedAvg(), { maxNorm: 5 });
    const e = expectCode(
      () => s.aggregate(s.init(new Float32Array(3)), { sum: f32([1, 2, 3]), totalWeight: 2 }),
      'AGG_REFUSED_UNDER_SECAGG',
    );
    expect(e.message).toMatch(/clip on the participants/);
  });

  it('rejects a bad maxNorm and reports invalid updates as given', () => {
    for (const maxNorm of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expectCode(() => withNormClipping(fedAvg(), { maxNorm }), 'AGG_INVALID_INPUT');
    }
    const s = withNormClipping(fedAvg(), { maxNorm: 5 });
    const e = expectCode(
      () => s.aggregate(s.init(new Float32Array(2)), [result([Number.POSITIVE_INFINITY, 0], 1)]),
      'AGG_INVALID_INPUT',
    );
    expect(e.message).toMatch(/Infinity at index 0/);
    expectCode(() => s.aggregate(s.init(new Float32Array(2)), []), 'AGG_EMPTY');
  });

  it('clipToNorm is the same clipping for the participant side', () => {
    expectClose(clipToNorm(f32([0, 6, 8]), 5), [0, 3, 4], 6);
    const short = f32([3, 4]);
    const copy = clipToNorm(short, 5);
    expectClose(copy, [3, 4], 6);
    expect(copy).not.toBe(short);
    expectCode(() => clipToNorm(f32([1]), 0), 'AGG_INVALID_INPUT');
  });

  it('clipToNorm in place scales the update itself, to the same values', () => {
    const long = f32([0, 6, 8]);
    const clipped = clipToNorm(long, 5, { inPlace: true });
    expect(clipped).toBe(long);
    expectClose(long, [0, 3, 4], 6);
    const short = f32([3, 4]);
    expect(clipToNorm(short, 5, { inPlace: true })).toBe(short);
    expectClose(short, [3, 4], 6);
  });
});

const ALL: [string, () => Strategy][] = [
  ['fedavg', () => fedAvg({ serverLr: 0.5 })],
  ['fedprox', () => fedProx({ mu: 0.1 })],
  ['fedavgm', () => fedAvgM({ serverLr: 0.5, momentum: 0.5 })],
  ['fedadagrad', () => fedAdagrad({ eta: 1, beta1: 0.5, tau: 1 })],
  ['fedadam', () => fedAdam({ eta: 1, beta1: 0.5, beta2: 0.75, tau: 1 })],
  ['fedyogi', () => fedYogi({ eta: 1, beta1: 0.5, beta2: 0.75, tau: 1 })],
];

describe.each(ALL)('%s: common contract', (name, make) => {
  it('needs no plaintext updates and names its state', () => {
    const s = make();
    expect(s.name).toBe(name);
    expect(s.needsPlaintextUpdates).toBe(false);
    expect(s.init(f32(G0)).strategy).toBe(name);
  });

  it('gives the same model from the secure sum Σ wΔ, Σ w as from the plaintext results', () => {
    const s = make();
    const plain = twoRounds(s).r2;
    const s0 = s.init(f32(G0));
    const r1 = s.aggregate(s0, { sum: f32(SUM1), totalWeight: W1 });
    const r2 = s.aggregate(r1.state, { sum: new Float64Array(SUM2), totalWeight: W2 });
    expectClose(r2.global, Array.from(plain.global), 6);
  });

  it('does not mutate its inputs or the previous state, and is deterministic', () => {
    const s = make();
    const g = f32(G0);
    const s0 = s.init(g);
    g[0] = 99; // init copied the model
    expectClose(s0.global, G0, 7);
    const input = round1();
    const snapshot = input.map((r) => Array.from(r.update));
    const r1 = s.aggregate(s0, input);
    expect(input.map((r) => Array.from(r.update))).toEqual(snapshot);
    expectClose(s0.global, G0, 7);
    for (const b of Object.values(s0.buffers)) expect(Array.from(b).every((x) => x === 0)).toBe(true);
    const again = s.aggregate(s0, round1());
    expect(Array.from(again.global)).toEqual(Array.from(r1.global));
    // The returned model is not the state's: a caller that edits it cannot corrupt the next round.
    r1.global[0] = 1234;
    expect(r1.state.global[0]).not.toBe(1234);
    const r1State = JSON.stringify(Object.values(r1.state.buffers).map((b) => Array.from(b)));
    s.aggregate(r1.state, round2());
    expect(JSON.stringify(Object.values(r1.state.buffers).map((b) => Array.from(b)))).toBe(r1State);
  });

  it('rejects bad input by code, saying what was expected', () => {
    const s = make();
    const s0 = s.init(f32(G0));
    expectCode(() => s.aggregate(s0, []), 'AGG_EMPTY');
    const e = expectCode(() => s.aggregate(s0, [result([1, 2], 1)]), 'AGG_INVALID_INPUT');
    expect(e.message).toMatch(/expected update 0 to have 3 values \(as the global model\), got 2/);
    expectCode(() => s.aggregate(s0, [result([1, 2, Number.NaN], 1)]), 'AGG_INVALID_INPUT');
    expectCode(() => s.aggregate(s0, [result([1, 2, 3], 0)]), 'AGG_INVALID_INPUT');
    expectCode(() => s.aggregate(s0, { sum: f32([1, 2]), totalWeight: 1 }), 'AGG_INVALID_INPUT');
    expectCode(() => s.aggregate(s0, { sum: f32([1, 2, 3]), totalWeight: 0 }), 'AGG_INVALID_INPUT');
    expectCode(() => s.aggregate(s0, { sum: f32([1, 2, Number.NaN]), totalWeight: 1 }), 'AGG_INVALID_INPUT');
    expectCode(() => s.init(new Float32Array(0)), 'AGG_INVALID_INPUT');
    expectCode(() => s.init(f32([1, Number.NaN])), 'AGG_INVALID_INPUT');
    const foreign: StrategyState = { ...s0, strategy: 'other' };
    expectCode(() => s.aggregate(foreign, round1()), 'AGG_INVALID_INPUT');
  });

  it('fails closed when the new model overflows float32', () => {
    const s = make();
    const s0 = s.init(f32([3e38]));
    const input: AggregateInput = [result([3e38], 1)];
    if (name === 'fedavg' || name === 'fedprox' || name === 'fedavgm') {
      // 3e38 + η·3e38 with η ≥ 0.5 exceeds float32's largest value (≈ 3.4e38).
      const e = expectCode(() => s.aggregate(s0, input), 'AGG_INVALID_INPUT');
      expect(e.message).toMatch(/expected a finite aggregate, got Infinity/);
    } else {
      // Adaptive steps are normalised by √v, so the same delta moves the model by about η only.
      expect(Number.isFinite(s.aggregate(s0, input).global[0])).toBe(true);
    }
  });
});

describe('options are validated at creation', () => {
  it('rejects out-of-range hyperparameters with AGG_INVALID_INPUT', () => {
    const bad: (() => unknown)[] = [
      () => fedAvg({ serverLr: 0 }),
      () => fedAvg({ serverLr: Number.NaN }),
      () => fedAvgM({ momentum: 1 }),
      () => fedAvgM({ momentum: -0.1 }),
      () => fedAdagrad({ tau: 0 }),
      () => fedAdam({ beta1: 1 }),
      () => fedAdam({ beta2: -0.5 }),
      () => fedYogi({ eta: -1 }),
      () => fedYogi({ tau: Number.POSITIVE_INFINITY }),
    ];
    for (const make of bad) expectCode(make, 'AGG_INVALID_INPUT');
  });
});
