/**
 * Distributed DP with the Skellam mechanism: the Poisson/Skellam samplers (moments within statistical bounds for fixed
 * seeds, integers, determinism per seed), the noisy-sum decoding in Z_2^32, the modular-clipping bound, and the RDP
 * bound checked against values computed by hand from Agarwal, Kairouz, Liu 2021 (Theorem 3.5).
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { computeRdp, epsilonFromRdp } from '../../src/aggregation/dp.ts';
import { AggregationError } from '../../src/aggregation/errors.ts';
import { byteStreamFromSeed } from '../../src/aggregation/prg.ts';
import { addInto, dequantizeSum, quantize } from '../../src/aggregation/quantize.ts';
import {
  addSkellamShare,
  decodeNoisySum,
  logFactorial,
  logPoissonPmf,
  MAX_POISSON_MEAN,
  poissonSamples,
  quantizationScale,
  SKELLAM_RDP_ORDERS,
  skellamEpsilon,
  skellamNoise,
  skellamRdp,
  skellamSensitivity,
  skellamWrapProbability,
} from '../../src/aggregation/skellam.ts';

const seeded = (seed: string) => byteStreamFromSeed(createHash('sha256').update(seed).digest());

function moments(xs: Float64Array): { mean: number; variance: number } {
  let mean = 0;
  for (const x of xs) mean += x;
  mean /= xs.length;
  let variance = 0;
  for (const x of xs) variance += (x - mean) ** 2;
  return { mean, variance: variance / (xs.length - 1) };
}

const N = 20_000;

describe('Poisson sampler', () => {
  it.each([0.3, 3, 9.99, 10, 37.5, 1e4, 3e8, 1e12, MAX_POISSON_MEAN])(
    'λ = %d: integer samples whose mean and variance are within 6 standard errors',
    (lambda) => {
      const xs = poissonSamples(N, lambda, seeded(`poisson ${lambda}`));
      expect(xs.every((x) => Number.isInteger(x) && x >= 0)).toBe(true);
      const { mean, variance } = moments(xs);
      expect(Math.abs(mean - lambda)).toBeLessThan(6 * Math.sqrt(lambda / N));
      // Var of the sample variance of Poisson(λ): (λ + 2λ²)/N (fourth central moment λ + 3λ²).
      expect(Math.abs(variance - lambda)).toBeLessThan(6 * Math.sqrt((lambda + 2 * lambda * lambda) / N));
    },
  );

  it('matches the Poisson probabilities on both sides of the switch to transformed rejection', () => {
    for (const lambda of [4, 20]) {
      const xs = poissonSamples(N, lambda, seeded(`pmf ${lambda}`));
      const counts = new Map<number, number>();
      for (const x of xs) counts.set(x, (counts.get(x) ?? 0) + 1);
      for (let k = 0; k <= 3 * lambda; k++) {
        const p = Math.exp(-lambda + k * Math.log(lambda) - logFactorial(k));
        const observed = (counts.get(k) ?? 0) / N;
        expect(Math.abs(observed - p)).toBeLessThan(6 * Math.sqrt((p * (1 - p)) / N) + 1e-4);
      }
    }
  });

  it('ln k! agrees with the exact sum of logs around the switch to Stirling', () => {
    let exact = 0;
    for (let k = 1; k <= 200; k++) {
      exact += Math.log(k);
      expect(Math.abs(logFactorial(k) - exact)).toBeLessThanOrEqual(1e-12 * Math.max(1, exact));
    }
  });

  it('ln P(k) agrees with the direct formula where that is still accurate, and stays finite for huge λ', () => {
    for (const lambda of [20, 1e4, 1e6])
      for (const x of [-3, -1, 0, 1, 3]) {
        const k = Math.round(lambda + x * Math.sqrt(lambda));
        let direct = -lambda + k * Math.log(lambda);
        for (let j = 2; j <= k; j++) direct -= Math.log(j);
        expect(Math.abs(logPoissonPmf(k, lambda) - direct)).toBeLessThan(1e-12 * Math.max(1, lambda));
      }
    // At the mode of Poisson(λ), P ≈ 1/√(2πλ) whatever λ.
    const lambda = 1e15;
    expect(logPoissonPmf(lambda, lambda)).toBeCloseTo(-0.5 * Math.log(2 * Math.PI * lambda), 9);
  });

  it('is deterministic per seed and differs between seeds', () => {
    fc.assert(
      fc.property(fc.string(), fc.double({ min: 0, max: 1e6, noNaN: true }), (seed, lambda) => {
        const a = poissonSamples(50, lambda, seeded(seed));
        const b = poissonSamples(50, lambda, seeded(seed));
        expect(a).toEqual(b);
      }),
      { numRuns: 50 },
    );
    expect(poissonSamples(50, 100, seeded('a'))).not.toEqual(poissonSamples(50, 100, seeded('b')));
  });

  it('refuses a negative or non-finite mean and a short random source', () => {
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY, 2 * MAX_POISSON_MEAN])
      expect(() => poissonSamples(1, bad, seeded('x'))).toThrow(AggregationError);
    expect(() => poissonSamples(1, 5, () => new Uint8Array(3))).toThrow(/random bytes/);
  });
});

describe('Skellam noise', () => {
  it.each([0.5, 7, 1e6, 1.2e9])('variance %d: integers with mean 0 and the variance asked for', (v) => {
    const xs = skellamNoise(N, v, seeded(`skellam ${v}`));
    expect(xs.every(Number.isInteger)).toBe(true);
    const { mean, variance } = moments(xs);
    expect(Math.abs(mean)).toBeLessThan(6 * Math.sqrt(v / N));
    // Skellam's fourth central moment is v + 3v², so Var(sample variance) ≈ (v + 2v²)/N.
    expect(Math.abs(variance - v)).toBeLessThan(6 * Math.sqrt((v + 2 * v * v) / N));
  });

  it('is deterministic per seed; variance 0 is no noise', () => {
    fc.assert(
      fc.property(fc.string(), fc.double({ min: 0, max: 1e9, noNaN: true }), (seed, v) => {
        expect(skellamNoise(20, v, seeded(seed))).toEqual(skellamNoise(20, v, seeded(seed)));
      }),
      { numRuns: 50 },
    );
    expect([...skellamNoise(5, 0, seeded('z'))]).toEqual([0, 0, 0, 0, 0]);
  });
});

describe('noisy sums in Z_2^32', () => {
  const q = { range: 2, bits: 16 };

  it('the decoded sum is the values plus the noise in real units, bit for bit, shares summed in the ring', () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(fc.double({ min: -2, max: 2, noNaN: true }), { minLength: 6, maxLength: 6 }), {
          minLength: 1,
          maxLength: 8,
        }),
        fc.double({ min: 0, max: 1e9, noNaN: true }),
        fc.string(),
        (clients, variance, seed) => {
          const plain = new Uint32Array(6);
          const noisy = new Uint32Array(6);
          const noiseSum = new Float64Array(6);
          clients.forEach((values, c) => {
            const words = quantize(Float32Array.from(values), q, seeded(`${seed} q${c}`));
            addInto(plain, words);
            const noise = skellamNoise(6, variance, seeded(`${seed} n${c}`));
            for (let i = 0; i < 6; i++) noiseSum[i]! += noise[i]!;
            addInto(noisy, addSkellamShare(Uint32Array.from(words), 6, variance, seeded(`${seed} n${c}`)));
          });
          const step = (2 * q.range) / (2 ** q.bits - 1);
          const decoded = decodeNoisySum(noisy, q, clients.length);
          for (let i = 0; i < 6; i++)
            expect(decoded[i]).toBe(
              Math.fround((plain[i]! + noiseSum[i]!) * step - clients.length * q.range),
            );
          // Without noise the window decoding is the plain one.
          expect(decodeNoisySum(plain, q, clients.length)).toEqual(dequantizeSum(plain, q, clients.length));
          // Either decodes into the sum's own bytes (what a coordinator's close does) to the same values.
          const inPlace = (decode: typeof dequantizeSum, words: Uint32Array) => {
            const own = Uint32Array.from(words);
            const into = new Float32Array(own.buffer);
            expect(decode(own, q, clients.length, into)).toBe(into);
            return into;
          };
          expect(inPlace(decodeNoisySum, noisy)).toEqual(decoded);
          expect(inPlace(dequantizeSum, plain)).toEqual(dequantizeSum(plain, q, clients.length));
        },
      ),
      { numRuns: 100 },
    );
  });

  it('noise that takes a sum below zero or past 2^bits·n is read back, not wrapped', () => {
    const words = new Uint32Array([0, 2 ** 16 - 1]);
    const noisy = Uint32Array.from(words);
    noisy[0] = (0 - 1000) >>> 0;
    noisy[1] = 2 ** 16 - 1 + 1000;
    const step = (2 * q.range) / (2 ** q.bits - 1);
    expect([...decodeNoisySum(noisy, q, 1)]).toEqual([
      Math.fround(-1000 * step - 2),
      Math.fround((2 ** 16 - 1 + 1000) * step - 2),
    ]);
  });

  it('only the first `count` words get noise (the weight word stays the count)', () => {
    const words = new Uint32Array([5, 5, 1]);
    addSkellamShare(words, 2, 1e6, seeded('w'));
    expect(words[2]).toBe(1);
    expect(words[0]).not.toBe(5);
    expect(() => addSkellamShare(words, 4, 1, seeded('w'))).toThrow(AggregationError);
  });

  it('a share drawn one coordinate at a time is skellamNoise added mod 2^32, for any words, count and variance', () => {
    fc.assert(
      fc.property(
        fc.uint32Array({ maxLength: 40 }),
        fc.nat(40),
        fc.double({ min: 0, max: 1e7, noNaN: true }),
        fc.string(),
        (words, wanted, variance, seed) => {
          const count = Math.min(wanted, words.length);
          const noise = skellamNoise(count, variance, seeded(seed));
          const expected = Uint32Array.from(words, (w, i) =>
            i < count ? Number((((BigInt(w) + BigInt(noise[i]!)) % 2n ** 32n) + 2n ** 32n) % 2n ** 32n) : w,
          );
          expect([...addSkellamShare(Uint32Array.from(words), count, variance, seeded(seed))]).toEqual([
            ...expected,
          ]);
        },
      ),
    );
  });

  it('bounds modular clipping: 1 with no room, negligible for a roomy ring, growing with the noise', () => {
    const at = (variance: number, bits = 16, count = 10) =>
      skellamWrapProbability({ quantization: { range: 1, bits }, count, dimension: 1e6, variance });
    expect(at(1, 31, 2)).toBe(1);
    expect(at(0)).toBe(0);
    expect(at((4 * 32768) ** 2)).toBeLessThan(1e-300);
    const grows = [1e16, 1e17, 1e18].map((v) => at(v));
    expect(grows[0]!).toBeLessThan(grows[1]!);
    expect(grows[1]!).toBeLessThan(grows[2]!);
    expect(at(1e18)).toBeGreaterThan(1e-3);
    // Hand check of the Chernoff exponent at t = 2^31 − 5·(2^16 − 1)·… with v = 1e17: compare a direct evaluation.
    const t = 2 ** 31 - Math.ceil((10 * (2 ** 16 - 1)) / 2);
    const v = 1e17;
    const direct = 2 * 1e6 * Math.exp(Math.sqrt(t * t + v * v) - v - t * Math.asinh(t / v));
    expect(at(v)).toBeCloseTo(direct, 12);
  });
});

describe('Skellam accounting', () => {
  it('the RDP bound at values computed by hand from Theorem 3.5 (variance v = 2μ)', () => {
    // α = 2, Δ₂ = Δ₁ = 1, v = 100: 2/200 + min(9/40000, 3/200) = 0.010225.
    expect(skellamRdp({ l1: 1, l2: 1 }, 100, [2])[0]).toBeCloseTo(0.010225, 15);
    // α = 2, Δ₂ = 10, Δ₁ = 1000, v = 10: 200/20 + min((300 + 6000)/400, 3000/20) = 10 + 15.75.
    expect(skellamRdp({ l1: 1000, l2: 10 }, 10, [2])[0]).toBeCloseTo(25.75, 12);
    // α = 3, Δ₂ = 10, Δ₁ = 1, v = 1: 300/2 + min(506/4, 3/2) = 151.5 (the second branch of the min).
    expect(skellamRdp({ l1: 1, l2: 10 }, 1, [3])[0]).toBeCloseTo(151.5, 12);
  });

  it('ε at one order by the Balle et al. 2020 conversion, by hand', () => {
    // ε = r + ln(1 − 1/α) − (ln δ + ln α)/(α − 1) at α = 2, r = 0.010225, δ = 1e-5.
    const want = 0.010225 + Math.log(0.5) - (Math.log(1e-5) + Math.log(2));
    expect(skellamEpsilon({ l1: 1, l2: 1 }, [100], 1e-5, [2])).toBeCloseTo(want, 12);
  });

  it('is at least the Gaussian mechanism of the same variance, and close to it for large noise', () => {
    const s = { l1: 1000 * Math.sqrt(1e4), l2: 1000 };
    const z = 1.2;
    const gauss = epsilonFromRdp(SKELLAM_RDP_ORDERS, computeRdp(1, z, SKELLAM_RDP_ORDERS), 1e-5).epsilon;
    const sk = skellamEpsilon(s, [(z * s.l2) ** 2], 1e-5);
    expect(sk).toBeGreaterThanOrEqual(gauss);
    expect(sk).toBeLessThan(gauss * 1.01);
  });

  it('grows with rounds and shrinks with noise (monotone)', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 1e2, max: 1e9, noNaN: true }),
        fc.double({ min: 1.01, max: 10, noNaN: true }),
        fc.integer({ min: 1, max: 20 }),
        (v, factor, rounds) => {
          const s = { l1: 300, l2: 30 };
          const eps = (variance: number, r: number) =>
            skellamEpsilon(
              s,
              Array.from({ length: r }, () => variance),
              1e-5,
            );
          expect(eps(v, rounds + 1)).toBeGreaterThanOrEqual(eps(v, rounds));
          expect(eps(v * factor, rounds)).toBeLessThanOrEqual(eps(v, rounds));
        },
      ),
      { numRuns: 40 },
    );
    expect(skellamEpsilon({ l1: 1, l2: 1 }, [], 1e-5)).toBe(0);
  });

  it('sensitivity: C·s plus the rounding slack √d, and L1 ≤ √d·Δ₂', () => {
    const scale = quantizationScale({ range: 1, bits: 16 });
    expect(scale).toBe(65535 / 2);
    const s = skellamSensitivity({ clipNorm: 0.5, scale, dimension: 100 });
    expect(s.l2).toBe(0.5 * scale + 10);
    expect(s.l1).toBe(10 * s.l2);
  });

  it('refuses fractional orders and a zero variance', () => {
    expect(() => skellamRdp({ l1: 1, l2: 1 }, 1, [1.5])).toThrow(/integer RDP orders/);
    expect(() => skellamRdp({ l1: 1, l2: 1 }, 0, [2])).toThrow(AggregationError);
  });
});
