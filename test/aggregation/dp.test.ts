/**
 * Central DP: the Gaussian sampler, DP-FedAvg noise on the aggregate, the RDP accountant checked against values
 * published by TensorFlow Privacy and Opacus (source beside each value), and the privacy budget gate.
 */
import { createCipheriv, createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  addGaussianNoise,
  computeRdp,
  createPrivacyBudget,
  createRdpAccountant,
  DEFAULT_RDP_ORDERS,
  epsilon,
  epsilonFromRdp,
  gaussianNoise,
  logErfc,
  privatizeSum,
  reserveRound,
  spend,
} from '../../src/aggregation/dp.ts';
import {
  AggregationError,
  type AggregationErrorCode,
  type RandomBytes,
} from '../../src/aggregation/errors.ts';
import { byteStreamFromSeed } from '../../src/aggregation/prg.ts';

/** A deterministic, high-quality byte stream: the ChaCha20 keystream under a key derived from `seed`. */
function chachaBytes(seed: string): RandomBytes {
  const key = createHash('sha256').update(seed).digest();
  const cipher = createCipheriv('chacha20', key, Buffer.alloc(16));
  return (n) => new Uint8Array(cipher.update(Buffer.alloc(n)));
}

function expectCode(fn: () => unknown, code: AggregationErrorCode): void {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(AggregationError);
    expect((e as AggregationError).code).toBe(code);
    return;
  }
  expect.fail(`expected an AggregationError with code ${code}, nothing was thrown`);
}

/** Python's unittest `assertAlmostEqual(a, b)` (places = 7): round(a − b, 7) == 0. */
function expectAlmostEqual(actual: number, expected: number, places = 7): void {
  expect(Math.abs(actual - expected)).toBeLessThan(0.5 * 10 ** -places);
}

/** numpy's `assert_allclose(actual, expected, rtol)`. */
function expectAllClose(actual: readonly number[], expected: readonly number[], rtol: number): void {
  expect(actual.length).toBe(expected.length);
  actual.forEach((a, k) => {
    expect(Math.abs(a - expected[k]!)).toBeLessThanOrEqual(rtol * Math.abs(expected[k]!));
  });
}

/** The orders of TF Privacy's `compute_dp_sgd_privacy` (tensorflow_privacy/privacy/analysis/compute_dp_sgd_privacy_lib.py). */
const TF_DP_SGD_ORDERS = [
  1.25,
  1.5,
  1.75,
  2,
  2.25,
  2.5,
  3,
  3.5,
  4,
  4.5,
  ...Array.from({ length: 59 }, (_, k) => 5 + k),
  128,
  256,
  512,
];

/** TF Privacy's `compute_dp_sgd_privacy(n, batch_size, noise_multiplier, epochs, delta)`. */
function tfDpSgd(
  n: number,
  batchSize: number,
  noiseMultiplier: number,
  epochs: number,
  delta: number,
  conversion: 'balle2020' | 'mironov2017' = 'balle2020',
) {
  const acc = createRdpAccountant({ orders: TF_DP_SGD_ORDERS }).step({
    noiseMultiplier,
    samplingRate: batchSize / n,
    steps: Math.ceil((epochs * n) / batchSize),
  });
  return epsilon(acc, delta, { conversion });
}

describe('gaussianNoise', () => {
  it('has mean ≈ 0 and standard deviation ≈ 1 over 200k samples (CLT tolerances)', () => {
    const n = 200_000;
    const x = gaussianNoise(n, 1, chachaBytes('moments'));
    let sum = 0;
    let sumSq = 0;
    let tail = 0;
    for (const v of x) {
      sum += v;
      sumSq += v * v;
      if (Math.abs(v) > 1.959963984540054) tail++;
    }
    const mean = sum / n;
    const std = Math.sqrt(sumSq / n - mean * mean);
    // Mean of n standard normals: sd 1/√n ≈ 0.00224; 5 sd.
    expect(Math.abs(mean)).toBeLessThan(5 / Math.sqrt(n));
    // Sample variance: sd √(2/n) ≈ 0.00316, so std within 5·√(2/n)/2 ≈ 0.0079 of 1.
    expect(Math.abs(std - 1)).toBeLessThan((5 * Math.sqrt(2 / n)) / 2);
    // P(|Z| > 1.96) = 0.05; binomial sd √(0.05·0.95/n) ≈ 0.00049; 5 sd.
    expect(Math.abs(tail / n - 0.05)).toBeLessThan(5 * Math.sqrt((0.05 * 0.95) / n));
  });

  it('scales by sigma', () => {
    const a = gaussianNoise(1001, 1, chachaBytes('scale'));
    const b = gaussianNoise(1001, 3.5, chachaBytes('scale'));
    a.forEach((v, i) => {
      expect(b[i]).toBeCloseTo(3.5 * v, 12);
    });
    expect(gaussianNoise(10, 0, chachaBytes('zero')).every((v) => v === 0)).toBe(true);
  });

  it('is deterministic for a deterministic byte source, and differs between sources', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 20_000 }), fc.string(), (length, seed) => {
        const a = gaussianNoise(length, 1, chachaBytes(seed));
        const b = gaussianNoise(length, 1, chachaBytes(seed));
        expect(a.length).toBe(length);
        expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
        if (length >= 4) {
          const c = gaussianNoise(length, 1, chachaBytes(`${seed}/other`));
          expect(Buffer.from(a.buffer).equals(Buffer.from(c.buffer))).toBe(false);
        }
      }),
      { numRuns: 30 },
    );
  });

  it('never takes log(0): extreme byte sources give finite samples within 8.58 sigma', () => {
    for (const fill of [0x00, 0xff]) {
      const x = gaussianNoise(9, 2, (n) => new Uint8Array(n).fill(fill));
      for (const v of x) {
        expect(Number.isFinite(v)).toBe(true);
        expect(Math.abs(v)).toBeLessThan(2 * Math.sqrt(2 * 53 * Math.LN2) + 1e-9);
      }
    }
  });

  it('rejects bad parameters and a short byte source by code', () => {
    const random = chachaBytes('bad');
    expectCode(() => gaussianNoise(-1, 1, random), 'DP_INVALID_PARAMETERS');
    expectCode(() => gaussianNoise(1.5, 1, random), 'DP_INVALID_PARAMETERS');
    expectCode(() => gaussianNoise(4, -1, random), 'DP_INVALID_PARAMETERS');
    expectCode(() => gaussianNoise(4, Number.NaN, random), 'DP_INVALID_PARAMETERS');
    expectCode(() => gaussianNoise(4, Number.POSITIVE_INFINITY, random), 'DP_INVALID_PARAMETERS');
    expectCode(() => gaussianNoise(4, 1, (n) => new Uint8Array(n - 1)), 'AGG_INVALID_INPUT');
  });
});

describe('addGaussianNoise', () => {
  it('adds N(0, (z·C)²) per coordinate to the sum and leaves the input untouched', () => {
    const sum = Float32Array.from({ length: 5001 }, (_, i) => (i % 7) - 3);
    const copy = Float32Array.from(sum);
    const noised = addGaussianNoise(sum, { clipNorm: 2, noiseMultiplier: 1.5, random: chachaBytes('agg') });
    expect(sum).toEqual(copy);
    const expected = gaussianNoise(sum.length, 3, chachaBytes('agg'));
    noised.forEach((v, i) => {
      expect(v).toBe(Math.fround(sum[i]! + expected[i]!));
    });
  });

  it('has empirical noise std ≈ z·C', () => {
    const n = 200_000;
    const noised = addGaussianNoise(new Float32Array(n), {
      clipNorm: 0.5,
      noiseMultiplier: 1.1,
      random: chachaBytes('std'),
    });
    let sumSq = 0;
    for (const v of noised) sumSq += v * v;
    const std = Math.sqrt(sumSq / n);
    expect(Math.abs(std / 0.55 - 1)).toBeLessThan((5 * Math.sqrt(2 / n)) / 2);
  });

  it('validates its parameters and input by code', () => {
    const random = chachaBytes('v');
    const sum = new Float32Array(4);
    for (const clipNorm of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expectCode(
        () => addGaussianNoise(sum, { clipNorm, noiseMultiplier: 1, random }),
        'DP_INVALID_PARAMETERS',
      );
    }
    for (const noiseMultiplier of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expectCode(
        () => addGaussianNoise(sum, { clipNorm: 1, noiseMultiplier, random }),
        'DP_INVALID_PARAMETERS',
      );
    }
    expectCode(
      () => addGaussianNoise(Float32Array.of(1, Number.NaN), { clipNorm: 1, noiseMultiplier: 1, random }),
      'AGG_INVALID_INPUT',
    );
    expectCode(
      () =>
        addGaussianNoise(Float32Array.of(Number.POSITIVE_INFINITY), {
          clipNorm: 1,
          noiseMultiplier: 1,
          random,
        }),
      'AGG_INVALID_INPUT',
    );
  });
});

describe('privatizeSum (DP-FedAvg, fixed denominator)', () => {
  it('adds N(0, (z·C)²) to the sum of unit-weight updates and averages over the planned cohort', () => {
    const sum = new Float32Array(20_000).fill(0.5);
    const out = privatizeSum(
      { sum, totalWeight: 7 },
      {
        clipNorm: 0.2,
        noiseMultiplier: 1.5,
        clients: 7,
        plannedClients: 10,
        random: chachaBytes('dpfedavg'),
      },
    );
    expect(out.totalWeight).toBe(10);
    expect(sum[0]).toBe(0.5); // the input is not modified
    const noise = out.sum.map((v) => v - 0.5);
    const std = Math.sqrt(noise.reduce((a, v) => a + v * v, 0) / noise.length);
    expect(std / 0.3).toBeCloseTo(1, 1);
  });

  it('the same seed gives the same noise: a coordinator that finishes a round again reproduces its model', () => {
    const seed = new Uint8Array(32).fill(7);
    const run = () =>
      privatizeSum(
        { sum: new Float32Array(100), totalWeight: 3 },
        { clipNorm: 1, noiseMultiplier: 1, clients: 3, plannedClients: 3, random: byteStreamFromSeed(seed) },
      ).sum;
    expect(run()).toEqual(run());
    const other = privatizeSum(
      { sum: new Float32Array(100), totalWeight: 3 },
      { clipNorm: 1, noiseMultiplier: 1, clients: 3, plannedClients: 3, random: byteStreamFromSeed(seed, 1) },
    ).sum;
    expect(other).not.toEqual(run());
  });

  it('refuses weights other than one per client and more clients than planned', () => {
    const options = { clipNorm: 1, noiseMultiplier: 1, random: chachaBytes('refuse') };
    const sum = new Float32Array(4);
    expectCode(
      () => privatizeSum({ sum, totalWeight: 5 }, { ...options, clients: 3, plannedClients: 3 }),
      'AGG_INVALID_INPUT',
    );
    expectCode(
      () => privatizeSum({ sum, totalWeight: 4 }, { ...options, clients: 4, plannedClients: 3 }),
      'AGG_INVALID_INPUT',
    );
  });
});

describe('byteStreamFromSeed', () => {
  it('is the ChaCha20 keystream of the seed, read on across calls', () => {
    const seed = new Uint8Array(32).map((_, i) => i);
    const whole = byteStreamFromSeed(seed)(48);
    const parts = byteStreamFromSeed(seed);
    expect(Buffer.concat([parts(16), parts(32)])).toEqual(Buffer.from(whole));
    const reference = createCipheriv('chacha20', seed, Buffer.alloc(16)).update(Buffer.alloc(48));
    expect(Buffer.from(whole)).toEqual(reference);
    expectCode(() => byteStreamFromSeed(new Uint8Array(31)), 'SECAGG_INVALID_PARAMETERS');
  });
});

describe('RDP of the sampled Gaussian mechanism — published values', () => {
  it('q = 0.1, z = 2, 10 steps, order 5 → 0.07737', () => {
    // tensorflow/privacy tensorflow_privacy/privacy/analysis/rdp_accountant_test.py test_compute_rdp_scalar:
    // compute_rdp(0.1, 2, 10, 5) ≈ 0.07737 (places=5).
    const acc = createRdpAccountant({ orders: [5] }).step({
      samplingRate: 0.1,
      noiseMultiplier: 2,
      steps: 10,
    });
    expectAlmostEqual(acc.rdp[0]!, 0.07737, 5);
  });

  it('q = 0.01, z = 2.5, 50 steps at orders 1.5, 2.5, 5, 50, 100 (fractional and integer orders)', () => {
    // tensorflow/privacy tensorflow_privacy/privacy/analysis/rdp_accountant_test.py test_compute_rdp_sequence:
    // [6.5007e-04, 1.0854e-03, 2.1808e-03, 2.3846e-02, 1.6742e+02], rtol=1e-4.
    const acc = createRdpAccountant({ orders: [1.5, 2.5, 5, 50, 100] }).step({
      samplingRate: 0.01,
      noiseMultiplier: 2.5,
      steps: 50,
    });
    expectAllClose(acc.rdp, [6.5007e-4, 1.0854e-3, 2.1808e-3, 2.3846e-2, 1.6742e2], 1e-4);
  });

  it('q = 1: RDP is exactly α/(2z²) per step; q = 0: 0', () => {
    // tensorflow/privacy rdp_accountant_test.py test_compute_rdp_no_sampling: compute_rdp(1, 10, 1, 20) == 0.1,
    // and test_compute_rdp_no_data: compute_rdp(0, 10, 1, 20) == 0.
    expect(createRdpAccountant({ orders: [20] }).step({ samplingRate: 1, noiseMultiplier: 10 }).rdp).toEqual([
      0.1,
    ]);
    expect(createRdpAccountant({ orders: [20] }).step({ samplingRate: 0, noiseMultiplier: 10 }).rdp).toEqual([
      0,
    ]);
    // tensorflow/privacy rdp_accountant_test.py test_compute_heterogeneous_rdp_different_sampling_probabilities:
    // (q, z) = (0, 10) then (1, 10) at order 20 → 0.1.
    const het = createRdpAccountant({ orders: [20] })
      .step({ samplingRate: 0, noiseMultiplier: 10 })
      .step({ samplingRate: 1, noiseMultiplier: 10 });
    expect(het.rdp).toEqual([0.1]);
    // The closed form at every default order, composed over T steps.
    fc.assert(
      fc.property(
        fc.double({ min: 0.1, max: 20, noNaN: true }),
        fc.integer({ min: 1, max: 10_000 }),
        (z, steps) => {
          const acc = createRdpAccountant().step({ samplingRate: 1, noiseMultiplier: z, steps });
          acc.rdp.forEach((r, k) => {
            const a = DEFAULT_RDP_ORDERS[k]!;
            const exact = (steps * a) / (2 * z * z);
            expect(Math.abs(r - exact)).toBeLessThanOrEqual(1e-14 * exact);
          });
        },
      ),
      { numRuns: 50 },
    );
  });
});

describe('RDP → (ε, δ) — published values', () => {
  it('constant RDP 1.1 over orders 2..32 at δ = 1e-5 → ε = 1.32783806176 at order 32', () => {
    // tensorflow/privacy rdp_accountant_test.py test_get_privacy_spent_check_target_delta (improved conversion).
    const orders = Array.from({ length: 31 }, (_, k) => 2 + k);
    const { epsilon: eps, order } = epsilonFromRdp(
      orders,
      orders.map(() => 1.1),
      1e-5,
    );
    expect(order).toBe(32);
    expectAlmostEqual(eps, 1.32783806176);
  });

  it('q = 1, z = 4.530877117, orders 1.001…99.999 step 0.001 at δ = 1e-6 → ε = 1', () => {
    // tensorflow/privacy rdp_accountant_test.py test_get_privacy_spent_check_target_delta ("Scale is chosen to
    // obtain exactly (1,1e-6)-DP"; TF's grid starts at 1.0, an order no conversion can use).
    const orders = Array.from({ length: 98_999 }, (_, k) => (1001 + k) * 0.001);
    const acc = createRdpAccountant({ orders }).step({ samplingRate: 1, noiseMultiplier: 4.530877117 });
    expectAlmostEqual(epsilon(acc, 1e-6).epsilon, 1);
  });

  it('q = 1 with the classic conversion matches the closed form T/(2z²) + √(2T·ln(1/δ))/z', () => {
    // Mironov 2017 Prop. 3 minimised over continuous α: α* = 1 + z·√(2 ln(1/δ)/T). A fine grid of orders reaches it.
    const orders = Array.from({ length: 199_000 }, (_, k) => 1 + (k + 1) * 0.001);
    for (const [z, steps, delta] of [
      [4, 1, 1e-5],
      [10, 30, 1e-6],
      [25, 50, 1e-5],
    ] as const) {
      const acc = createRdpAccountant({ orders }).step({ samplingRate: 1, noiseMultiplier: z, steps });
      const closed = steps / (2 * z * z) + Math.sqrt(2 * steps * Math.log(1 / delta)) / z;
      expect(epsilon(acc, delta, { conversion: 'mironov2017' }).epsilon).toBeCloseTo(closed, 6);
      // The improved conversion is never worse.
      expect(epsilon(acc, delta).epsilon).toBeLessThanOrEqual(closed);
    }
  });

  it('TF Privacy compute_dp_sgd_privacy: (60000, 150, 1.3, 15, 1e-5) → ε 0.7242234026109595, order 19', () => {
    // tensorflow/privacy tensorflow_privacy/privacy/analysis/compute_dp_sgd_privacy_test.py Test0 (places=7).
    const r = tfDpSgd(60000, 150, 1.3, 15, 1e-5);
    expectAlmostEqual(r.epsilon, 0.7242234026109595);
    expect(r.order).toBe(19);
  });

  it('TF Privacy compute_dp_sgd_privacy: (100000, 100, 1.0, 30, 1e-7) → ε 1.4154988495444842, order 13', () => {
    // tensorflow/privacy tensorflow_privacy/privacy/analysis/compute_dp_sgd_privacy_test.py Test1 (places=7).
    const r = tfDpSgd(100000, 100, 1.0, 30, 1e-7);
    expectAlmostEqual(r.epsilon, 1.4154988495444842);
    expect(r.order).toBe(13);
  });

  it('TF Privacy compute_dp_sgd_privacy: (1e8, 1024, 0.1, 10, 1e-7) → ε 5907982.3113978775, order 1.25', () => {
    // tensorflow/privacy tensorflow_privacy/privacy/analysis/compute_dp_sgd_privacy_test.py Test2. The source
    // asserts places=7, i.e. 1e-15 relative on this ε — below what two different float64 evaluations of the
    // fractional-order series can agree on; we match to 1e-11 relative (we get …311382, 2.7e-12 off).
    const r = tfDpSgd(100000000, 1024, 0.1, 10, 1e-7);
    expect(Math.abs(r.epsilon / 5907982.3113978775 - 1)).toBeLessThan(1e-11);
    expect(r.order).toBe(1.25);
  });

  it('Opacus RDPAccountant: z = 1.5, q = 0.04, 2250 steps, δ = 1e-5 → ε 7.32911117143', () => {
    // pytorch/opacus opacus/tests/accountants_test.py test_rdp_accountant (default alphas, places=7), stepping
    // once per round as Opacus does.
    let acc = createRdpAccountant();
    for (let i = 0; i < Math.trunc(90 / 0.04); i++)
      acc = acc.step({ noiseMultiplier: 1.5, samplingRate: 0.04 });
    expectAlmostEqual(epsilon(acc, 1e-5).epsilon, 7.32911117143);
    expect(acc.history).toEqual([{ noiseMultiplier: 1.5, samplingRate: 0.04, steps: 2250 }]);
    expect(acc.totalSteps).toBe(2250);
    // The same in one step.
    const once = createRdpAccountant().step({ noiseMultiplier: 1.5, samplingRate: 0.04, steps: 2250 });
    expectAlmostEqual(epsilon(once, 1e-5).epsilon, 7.32911117143);
  });

  it('Opacus analysis/rdp.py docstring: (1e-5, 1.0, 10) then (1e-4, 3.0, 4), orders 2..32, δ 1e-5 → (0.336, 23)', () => {
    // pytorch/opacus opacus/accountants/analysis/rdp.py module docstring (doctest +NUMBER: 3 decimals).
    const acc = createRdpAccountant({ orders: Array.from({ length: 31 }, (_, k) => 2 + k) })
      .step({ samplingRate: 1e-5, noiseMultiplier: 1.0, steps: 10 })
      .step({ samplingRate: 1e-4, noiseMultiplier: 3.0, steps: 4 });
    const r = epsilon(acc, 1e-5);
    expectAlmostEqual(r.epsilon, 0.336, 3);
    expect(r.order).toBe(23);
  });

  it('classic conversion: the MNIST DP-SGD tutorial, q = 256/60000, 60 epochs, δ = 1e-5 → 3.01 (z 1.1), 2.92 (z 1.12)', () => {
    // tensorflow/privacy tutorials/README.md ("compute_dp_sgd_privacy.py --N=60000 --batch_size=256
    // --noise_multiplier=1.1 --epochs=60 --delta=1e-5 … eps = 3.01") and
    // tensorflow_privacy/privacy/analysis/compute_dp_sgd_privacy.py docstring (noise 1.12 → "(2.92, 1e-5)-DP"),
    // both from before TF Privacy switched to the improved conversion; printed with '{:.3g}'.
    expect(tfDpSgd(60000, 256, 1.1, 60, 1e-5, 'mironov2017').epsilon.toPrecision(3)).toBe('3.01');
    expect(tfDpSgd(60000, 256, 1.12, 60, 1e-5, 'mironov2017').epsilon.toPrecision(3)).toBe('2.92');
    // The improved conversion is tighter on the same RDP curve.
    expect(tfDpSgd(60000, 256, 1.1, 60, 1e-5).epsilon).toBeLessThan(3.0);
  });
});

describe('RDP accountant — properties', () => {
  const params = fc.record({
    z: fc.double({ min: 0.5, max: 5, noNaN: true }),
    q: fc.double({ min: 0.001, max: 1, noNaN: true }),
    steps: fc.integer({ min: 1, max: 500 }),
    delta: fc.constantFrom(1e-5, 1e-6, 1e-8),
  });

  it('ε grows with the number of steps', () => {
    fc.assert(
      fc.property(params, fc.integer({ min: 1, max: 500 }), ({ z, q, steps, delta }, more) => {
        const a = createRdpAccountant().step({ noiseMultiplier: z, samplingRate: q, steps });
        const b = a.step({ noiseMultiplier: z, samplingRate: q, steps: more });
        expect(epsilon(b, delta).epsilon).toBeGreaterThan(epsilon(a, delta).epsilon);
      }),
      { numRuns: 40 },
    );
  });

  it('ε grows when σ shrinks (and when q grows)', () => {
    fc.assert(
      fc.property(params, fc.double({ min: 1.05, max: 3, noNaN: true }), ({ z, q, steps, delta }, factor) => {
        const loud = createRdpAccountant().step({ noiseMultiplier: z, samplingRate: q, steps });
        const quiet = createRdpAccountant().step({ noiseMultiplier: z / factor, samplingRate: q, steps });
        expect(epsilon(quiet, delta).epsilon).toBeGreaterThan(epsilon(loud, delta).epsilon);
        const fewer = createRdpAccountant().step({ noiseMultiplier: z, samplingRate: q / factor, steps });
        expect(epsilon(fewer, delta).epsilon).toBeLessThanOrEqual(epsilon(loud, delta).epsilon);
      }),
      { numRuns: 40 },
    );
  });

  it('is immutable and replayable from its history', () => {
    const a = createRdpAccountant();
    const b = a.step({ noiseMultiplier: 1.2, samplingRate: 0.1, steps: 3 });
    const c = b
      .step({ noiseMultiplier: 1.2, samplingRate: 0.1 })
      .step({ noiseMultiplier: 0.9, samplingRate: 0.2 });
    expect(a.rdp.every((r) => r === 0)).toBe(true);
    expect(a.totalSteps).toBe(0);
    expect(epsilon(a, 1e-5)).toEqual({ epsilon: 0, order: DEFAULT_RDP_ORDERS[0] });
    expect(b.totalSteps).toBe(3);
    expect(c.history).toEqual([
      { noiseMultiplier: 1.2, samplingRate: 0.1, steps: 4 },
      { noiseMultiplier: 0.9, samplingRate: 0.2, steps: 1 },
    ]);
    expect(Object.isFrozen(c) && Object.isFrozen(c.rdp) && Object.isFrozen(c.history)).toBe(true);
    const replayed = createRdpAccountant({ history: JSON.parse(JSON.stringify(c.history)) });
    replayed.rdp.forEach((r, k) => {
      expect(r).toBeCloseTo(c.rdp[k]!, 12);
    });
    expect(replayed.totalSteps).toBe(5);
  });

  it('claims no privacy (ε = ∞) rather than failing for a vanishing noise multiplier', () => {
    for (const samplingRate of [0.5, 1]) {
      const acc = createRdpAccountant({ orders: [1.5, 2, 32] }).step({
        noiseMultiplier: 1e-200,
        samplingRate,
      });
      expect(acc.rdp).toEqual([Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY]);
      expect(epsilon(acc, 1e-5).epsilon).toBe(Number.POSITIVE_INFINITY);
    }
  });

  it('computeRdp agrees with one accountant step', () => {
    const orders = [1.5, 2, 7.5, 32];
    const acc = createRdpAccountant({ orders }).step({ noiseMultiplier: 1.1, samplingRate: 0.05 });
    expect(computeRdp(0.05, 1.1, orders)).toEqual([...acc.rdp]);
  });

  it('logErfc is accurate in both tails', () => {
    // Reference values: erfc(0) = 1, erfc(1) = 0.157299207050285…, erfc(−∞) = 2, and the asymptotic tail
    // log erfc(x) ≈ −x² − log(x√π) for large x (relative error O(1/x²)).
    expect(logErfc(0)).toBeCloseTo(0, 15);
    expect(logErfc(1)).toBeCloseTo(Math.log(0.15729920705028513), 14);
    expect(logErfc(-40)).toBe(Math.LN2);
    const x = 1e4;
    expect(logErfc(x) / (-x * x - Math.log(x * Math.sqrt(Math.PI))) - 1).toBeLessThan(1e-12);
    // Continuity across the switch between the series and the continued fraction at x = 2.
    expect(logErfc(2 - 1e-12)).toBeCloseTo(logErfc(2 + 1e-12), 10);
  });

  it('rejects bad parameters by code', () => {
    const acc = createRdpAccountant();
    for (const orders of [[], [1], [0.5], [Number.NaN], [Number.POSITIVE_INFINITY], [1e6]]) {
      expectCode(() => createRdpAccountant({ orders }), 'DP_INVALID_PARAMETERS');
    }
    for (const noiseMultiplier of [0, -1, Number.NaN]) {
      expectCode(() => acc.step({ noiseMultiplier, samplingRate: 0.1 }), 'DP_INVALID_PARAMETERS');
    }
    for (const samplingRate of [-0.1, 1.01, Number.NaN]) {
      expectCode(() => acc.step({ noiseMultiplier: 1, samplingRate }), 'DP_INVALID_PARAMETERS');
    }
    for (const steps of [0, -1, 1.5, Number.POSITIVE_INFINITY]) {
      expectCode(() => acc.step({ noiseMultiplier: 1, samplingRate: 0.1, steps }), 'DP_INVALID_PARAMETERS');
    }
    for (const delta of [0, 1, -1e-5, Number.NaN]) {
      expectCode(() => epsilon(acc, delta), 'DP_INVALID_PARAMETERS');
    }
    expectCode(() => epsilonFromRdp([2, 3], [0.1], 1e-5), 'DP_INVALID_PARAMETERS');
    expectCode(() => epsilonFromRdp([2], [-0.1], 1e-5), 'DP_INVALID_PARAMETERS');
    expectCode(
      () => createRdpAccountant({ history: [{ noiseMultiplier: 1, samplingRate: 2, steps: 1 }] }),
      'DP_INVALID_PARAMETERS',
    );
  });
});

describe('privacy budget', () => {
  const round = { noiseMultiplier: 1.1, samplingRate: 0.1 };

  it('reports spent and remaining ε at the budget δ', () => {
    const budget = createPrivacyBudget({ epsilon: 3, delta: 1e-5 });
    const fresh = spend(budget, createRdpAccountant());
    expect(fresh).toMatchObject({
      spent: { epsilon: 0, delta: 1e-5 },
      remaining: { epsilon: 3 },
      exhausted: false,
    });
    const acc = createRdpAccountant().step({ ...round, steps: 10 });
    const s = spend(budget, acc);
    expect(s.spent.epsilon).toBe(epsilon(acc, 1e-5).epsilon);
    expect(s.spent.epsilon).toBeGreaterThan(0);
    expect(s.remaining.epsilon).toBeCloseTo(3 - s.spent.epsilon, 12);
    expect(s.exhausted).toBe(false);
    const over = spend(budget, acc.step({ ...round, steps: 10_000 }));
    expect(over.exhausted).toBe(true);
    expect(over.remaining.epsilon).toBe(0);
  });

  it('admits rounds while they fit and stops the task with DP_BUDGET_EXHAUSTED before the one that would not', () => {
    // With z = 1.1, q = 0.1 one round costs ε ≈ 1.77 and 20 rounds ≈ 3.50 at δ = 1e-5.
    const budget = createPrivacyBudget({ epsilon: 3, delta: 1e-5 });
    let acc = createRdpAccountant();
    let rounds = 0;
    for (;;) {
      try {
        const r = reserveRound(budget, acc, round);
        expect(r.spend.spent.epsilon).toBeLessThanOrEqual(3);
        expect(r.accountant.totalSteps).toBe(acc.totalSteps + 1);
        acc = r.accountant;
        rounds++;
      } catch (e) {
        expect(e).toBeInstanceOf(AggregationError);
        expect((e as AggregationError).code).toBe('DP_BUDGET_EXHAUSTED');
        expect((e as AggregationError).details?.projectedEpsilon).toBeGreaterThan(3);
        break;
      }
      expect(rounds).toBeLessThan(100_000);
    }
    expect(rounds).toBeGreaterThan(10);
    expect(rounds).toBeLessThan(20);
    expect(epsilon(acc, 1e-5).epsilon).toBeLessThanOrEqual(3);
    expect(epsilon(acc.step(round), 1e-5).epsilon).toBeGreaterThan(3);
    // The refused round changed nothing: the same gate refuses again.
    expectCode(() => reserveRound(budget, acc, round), 'DP_BUDGET_EXHAUSTED');
  });

  it('a round that lands exactly on the budget is admitted and exhausts it', () => {
    const after3 = createRdpAccountant().step({ ...round, steps: 3 });
    const budget = createPrivacyBudget({ epsilon: epsilon(after3, 1e-5).epsilon, delta: 1e-5 });
    const two = createRdpAccountant().step({ ...round, steps: 2 });
    const r = reserveRound(budget, two, round);
    expect(r.spend.exhausted).toBe(true);
    expect(r.spend.remaining.epsilon).toBe(0);
    expectCode(() => reserveRound(budget, r.accountant, round), 'DP_BUDGET_EXHAUSTED');
  });

  it('rejects a malformed budget by code', () => {
    for (const b of [
      { epsilon: 0, delta: 1e-5 },
      { epsilon: -1, delta: 1e-5 },
      { epsilon: Number.POSITIVE_INFINITY, delta: 1e-5 },
      { epsilon: 1, delta: 0 },
      { epsilon: 1, delta: 1 },
      { epsilon: 1, delta: Number.NaN },
    ]) {
      expectCode(() => createPrivacyBudget(b), 'DP_INVALID_PARAMETERS');
    }
    expectCode(() => spend({ epsilon: 1, delta: 2 }, createRdpAccountant()), 'DP_INVALID_PARAMETERS');
    expectCode(
      () =>
        reserveRound(createPrivacyBudget({ epsilon: 1, delta: 1e-5 }), createRdpAccountant(), {
          ...round,
          steps: 0,
        }),
      'DP_INVALID_PARAMETERS',
    );
  });
});
