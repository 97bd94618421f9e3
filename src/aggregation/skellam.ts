/**
 * Distributed differential privacy with the Skellam mechanism (Agarwal, Kairouz, Liu, "The Skellam Mechanism for
 * Differentially Private Federated Learning", NeurIPS 2021), in the Z_2^32 ring SecAgg already sums in.
 *
 * Why Skellam: the noise is integer-valued and closed under addition — the sum of independent Skellam variables of
 * variances v₁, v₂, … is Skellam of variance Σvᵢ — so each organisation adds its share to its QUANTIZED update before
 * masking, and the exact unmasked sum carries the whole noise. Nobody, the coordinator included, ever sees a sum
 * without noise, and an auditor who replays the unmasking gets the noisy sum bit for bit (the noise is in the masked
 * updates, not in a secret the coordinator keeps).
 *
 * Units: everything here is in the integer units of the quantizer. With the task's quantization (range R per
 * coordinate, `bits`), a real value x becomes (x + R)·s rounded stochastically, s = (2^bits − 1)/(2R) — so a client
 * update of L2 norm ≤ C has integer L2 norm ≤ C·s plus what rounding adds.
 *
 * Pure code (DESIGN §2, §10): no I/O, no clock, no Math.random — randomness arrives as `RandomBytes`.
 */
import { epsilonFromRdp } from './dp.ts';
import { AggregationError, type RandomBytes } from './errors.ts';
import { checkQuantization, intoOf, type QuantizationParams } from './quantize.ts';

const TWO_POW_32 = 4_294_967_296;
const TWO_POW_31 = 2_147_483_648;
const TWO_POW_53 = 9_007_199_254_740_992;
/** 53-bit uniforms drawn per call of the random source: 8 bytes each, 64 KiB per call. */
const UNIFORMS_PER_CHUNK = 8192;

/** Uniforms in [0, 1) with 53 random bits each, read from the injected bytes in fixed chunks (so deterministic). */
class Uniforms {
  private view: DataView | null = null;
  private at = 0;
  constructor(private readonly random: RandomBytes) {}

  next(): number {
    if (this.view === null || this.at >= UNIFORMS_PER_CHUNK) {
      const bytes = this.random(8 * UNIFORMS_PER_CHUNK);
      if (bytes.length < 8 * UNIFORMS_PER_CHUNK)
        throw new AggregationError(
          'AGG_INVALID_INPUT',
          `expected ${8 * UNIFORMS_PER_CHUNK} random bytes, the random source returned ${bytes.length}`,
        );
      this.view = new DataView(bytes.buffer, bytes.byteOffset, 8 * UNIFORMS_PER_CHUNK);
      this.at = 0;
    }
    const o = 8 * this.at++;
    const hi = this.view.getUint32(o) >>> 11; // 21 bits
    const lo = this.view.getUint32(o + 4); // 32 bits
    return (hi * TWO_POW_32 + lo) / TWO_POW_53;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Poisson and Skellam sampling
// ---------------------------------------------------------------------------------------------------------------

/** ln k! for k < 64, summed exactly once; Stirling's series is within 1e-16 relative beyond. */
const LOG_FACTORIAL: readonly number[] = (() => {
  const t = [0];
  for (let k = 1; k < 64; k++) t.push(t[k - 1]! + Math.log(k));
  return t;
})();

/** ln k! (Stirling's series with four correction terms for k ≥ 64: the first neglected one is < 1e-15). */
export function logFactorial(k: number): number {
  if (k < 64) return LOG_FACTORIAL[k]!;
  const inv = 1 / k;
  const inv2 = inv * inv;
  return (
    k * Math.log(k) -
    k +
    0.5 * Math.log(2 * Math.PI * k) +
    inv * (1 / 12 - inv2 * (1 / 360 - inv2 * (1 / 1260 - inv2 / 1680)))
  );
}

/**
 * ln P(K = k) for K ~ Poisson(λ), accurate for any λ a sampler takes: −λ + k·ln λ − ln k! computed term by term
 * loses everything to cancellation when λ is large (each term ~ λ ln λ, ≈ 3e13 at λ = 1e12, whose last bit is worth
 * ≈ 0.004), so for k ≥ 64 it is rearranged with Stirling's series into (k − λ) − k·log1p((k − λ)/λ) − ½ln(2πk) −
 * (the series' tail), every term of the size of the result.
 */
export function logPoissonPmf(k: number, lambda: number): number {
  if (k < 64) return -lambda + k * Math.log(lambda) - LOG_FACTORIAL[k]!;
  const inv = 1 / k;
  const inv2 = inv * inv;
  const tail = inv * (1 / 12 - inv2 * (1 / 360 - inv2 * (1 / 1260 - inv2 / 1680)));
  const d = k - lambda;
  return d - k * Math.log1p(d / lambda) - 0.5 * Math.log(2 * Math.PI * k) - tail;
}

/**
 * Largest Poisson mean the samplers take: their integers stay exact (k stays far below 2^53) and the proposal's
 * arithmetic keeps its resolution. A task whose per-organisation share would need more is refused at creation.
 */
export const MAX_POISSON_MEAN = 2 ** 50;

/** Where the sampler switches from inversion (cost ∝ λ) to transformed rejection (cost O(1)). */
const PTRS_FROM = 10;

function poissonSmall(lambda: number, u: Uniforms): number {
  // Inversion: walk the CDF until it passes one uniform. The guard ends the walk where rounding could keep the
  // partial sum below u forever (u within 2^-50 of 1, k past λ + 40σ): the mass beyond is below 10^-300.
  const target = u.next();
  let k = 0;
  let p = Math.exp(-lambda);
  let cdf = p;
  while (target > cdf && k < 200) {
    k++;
    p *= lambda / k;
    cdf += p;
  }
  return k;
}

/**
 * Hörmann's PTRS ("The transformed rejection method for generating Poisson random variables", Insurance: Mathematics
 * and Economics 12, 1993), for λ ≥ 10: a transformed-uniform proposal k, accepted at once in its central region or
 * else by comparing against the exact log-probability −λ + k·ln λ − ln k!. Expected ≈ 1.1 proposals per sample.
 */
function poissonPtrs(lambda: number, u: Uniforms): number {
  const sqrtLambda = Math.sqrt(lambda);
  const b = 0.931 + 2.53 * sqrtLambda;
  const a = -0.059 + 0.02483 * b;
  const logInvAlpha = Math.log(1.1239 + 1.1328 / (b - 3.4));
  const vr = 0.9277 - 3.6224 / (b - 2);
  for (;;) {
    const uu = u.next() - 0.5;
    const v = u.next();
    const us = 0.5 - Math.abs(uu);
    const k = Math.floor(((2 * a) / us + b) * uu + lambda + 0.43);
    if (us >= 0.07 && v <= vr) return k;
    if (k < 0 || (us < 0.013 && v > us)) continue;
    // v = 0 gives log 0 = −∞: accepted, as the algorithm's real-valued v would be.
    if (Math.log(v) + logInvAlpha - Math.log(a / (us * us) + b) <= logPoissonPmf(k, lambda)) return k;
  }
}

/**
 * `length` independent Poisson(λ) samples (exact integers). λ = 0 gives zeros.
 *
 * Floating-point caveat: the samples are integers and the algorithms are exact in real arithmetic, but their
 * acceptance tests run in float64, so the distribution matches Poisson(λ) up to rounding of probabilities (relative
 * errors near 1e-15) — like TensorFlow's and numpy's samplers that the Skellam paper's experiments used. Unlike float
 * noise (Mironov 2012) the released value is an integer, so no low-order bits of the noise leak.
 *
 * @throws AggregationError DP_INVALID_PARAMETERS when λ is not in [0, MAX_POISSON_MEAN]
 * @throws AggregationError AGG_INVALID_INPUT when the random source returns fewer bytes than asked for
 */
export function poissonSamples(length: number, lambda: number, random: RandomBytes): Float64Array {
  checkLength(length);
  checkMean(lambda);
  const out = new Float64Array(length);
  if (lambda === 0) return out;
  const u = new Uniforms(random);
  const sample = lambda < PTRS_FROM ? poissonSmall : poissonPtrs;
  for (let i = 0; i < length; i++) out[i] = sample(lambda, u);
  return out;
}

/**
 * `length` independent samples of the symmetric Skellam distribution of variance `variance`: Poisson(v/2) −
 * Poisson(v/2), integer-valued, mean 0. Deterministic for a deterministic byte source.
 *
 * @throws AggregationError DP_INVALID_PARAMETERS when the variance is not finite and ≥ 0, or over 2·MAX_POISSON_MEAN
 * @throws AggregationError AGG_INVALID_INPUT when the random source is short
 */
export function skellamNoise(length: number, variance: number, random: RandomBytes): Float64Array {
  checkLength(length);
  const next = skellamSampler(variance, random);
  const out = new Float64Array(length);
  if (next !== null) for (let i = 0; i < length; i++) out[i] = next();
  return out;
}

/** Successive draws of skellamNoise's sequence, one at a time; null for variance 0 (all zeros, no randomness used). */
function skellamSampler(variance: number, random: RandomBytes): (() => number) | null {
  if (!Number.isFinite(variance) || variance < 0)
    throw new AggregationError('DP_INVALID_PARAMETERS', `expected a finite variance ≥ 0, got ${variance}`);
  const lambda = variance / 2;
  checkMean(lambda);
  if (variance === 0) return null;
  const u = new Uniforms(random);
  const sample = lambda < PTRS_FROM ? poissonSmall : poissonPtrs;
  return () => sample(lambda, u) - sample(lambda, u);
}

/**
 * Adds a client's Skellam share of variance `variance` to the first `count` words of its quantized vector, in
 * Z_2^32 (in place; returns `words`). The words after `count` (the weight word, evaluation words) get none: they are
 * not what the mechanism protects.
 *
 * @throws AggregationError AGG_INVALID_INPUT when count exceeds the vector; as {@link skellamNoise} otherwise
 */
export function addSkellamShare(
  words: Uint32Array,
  count: number,
  variance: number,
  random: RandomBytes,
): Uint32Array {
  if (!Number.isSafeInteger(count) || count < 0 || count > words.length)
    throw new AggregationError(
      'AGG_INVALID_INPUT',
      `expected to noise 0..${words.length} words, got ${count}`,
    );
  // Drawn one coordinate at a time, the same sequence as skellamNoise(count): no vector of 8 bytes a weight (800 MB
  // at 100M weights) beside the update.
  const next = skellamSampler(variance, random);
  if (next === null) return words;
  for (let i = 0; i < count; i++) {
    // A noise value is an integer of magnitude far below 2^53, so the remainder is exact.
    const r = (words[i]! + next()) % TWO_POW_32;
    words[i] = (r < 0 ? r + TWO_POW_32 : r) >>> 0;
  }
  return words;
}

// ---------------------------------------------------------------------------------------------------------------
// Decoding the noisy sum
// ---------------------------------------------------------------------------------------------------------------

/** Integer units per real unit of a quantizer: s = (2^bits − 1)/(2·range). */
export function quantizationScale(params: QuantizationParams): number {
  checkQuantization(params, 1);
  return (2 ** params.bits - 1) / (2 * params.range);
}

/** The integer the window of {@link decodeNoisySum} is centred on: the midpoint of the noise-free sums of `count`. */
const centreOf = (params: QuantizationParams, count: number) =>
  Math.floor((count * (2 ** params.bits - 1)) / 2);

/**
 * The (unmasked) sum of `count` quantized vectors that carry integer noise → the sum of the original values plus the
 * noise in real units (noise/s). Noise can take the integer sum below 0 or above count·(2^bits − 1), so the ring value
 * is read in the window of 2^32 integers centred on the noise-free midpoint: exact whenever |noise| < 2^31 −
 * ⌈count·(2^bits − 1)/2⌉, which {@link skellamWrapProbability} bounds. Without noise it equals `dequantizeSum`, and
 * as it may decode into the sum's own bytes (`into`).
 *
 * @throws QUANT_INVALID_PARAMETERS for bad parameters or a count whose sums overflow 32 bits
 */
export function decodeNoisySum(
  sum: Uint32Array,
  params: QuantizationParams,
  count: number,
  into?: Float32Array,
): Float32Array {
  checkQuantization(params, count);
  const step = (2 * params.range) / (2 ** params.bits - 1);
  const centre = centreOf(params, count);
  const out = intoOf(into, sum.length);
  for (let i = 0; i < sum.length; i++) {
    const offset = (sum[i]! - centre) | 0; // (w − centre) mod 2^32, read as a signed 32-bit integer
    out[i] = (centre + offset) * step - count * params.range;
  }
  return out;
}

/**
 * An upper bound on the probability that any of `dimension` coordinates of a sum of `count` clients' quantized
 * values plus Skellam noise of total variance `variance` leaves the window {@link decodeNoisySum} reads (modular
 * clipping: the decoded value would be off by 2^32).
 *
 * Bound: the noise must stay below t = 2^31 − ⌈count·(2^bits − 1)/2⌉ in magnitude. For N ~ Skellam of variance v,
 * E[e^(θN)] = exp(v(cosh θ − 1)), and Chernoff's bound at θ = asinh(t/v) gives
 * P(|N| ≥ t) ≤ 2·exp(√(t² + v²) − v − t·asinh(t/v)); a union over the coordinates multiplies by `dimension`.
 * Returns 1 when t ≤ 0 (no room at all).
 */
export function skellamWrapProbability(options: {
  readonly quantization: QuantizationParams;
  readonly count: number;
  readonly dimension: number;
  readonly variance: number;
}): number {
  const { quantization, count, dimension, variance } = options;
  const t = TWO_POW_31 - Math.ceil((count * (2 ** quantization.bits - 1)) / 2);
  if (t <= 0) return 1;
  if (variance === 0) return 0;
  const logTail = Math.sqrt(t * t + variance * variance) - variance - t * Math.asinh(t / variance);
  return Math.min(1, 2 * dimension * Math.exp(logTail));
}

// ---------------------------------------------------------------------------------------------------------------
// Privacy accounting
// ---------------------------------------------------------------------------------------------------------------

/**
 * Integer Rényi orders: the Skellam bound below holds for integer α > 1 only. 2…64 densely, then sparser up to 1024
 * for tasks with very large noise.
 */
export const SKELLAM_RDP_ORDERS: readonly number[] = Object.freeze([
  ...Array.from({ length: 63 }, (_, k) => 2 + k),
  ...[72, 80, 96, 112, 128, 160, 192, 256, 384, 512, 768, 1024],
]);

/** L1 and L2 sensitivities of one client's contribution in integer units. */
export interface IntegerSensitivity {
  readonly l1: number;
  readonly l2: number;
}

/**
 * The sensitivity of the sum to one client whose update (L2 ≤ `clipNorm`, `dimension` coordinates) is scaled by
 * `scale` and rounded to integers. Stochastic rounding moves each coordinate by less than 1, so, whatever the coins,
 * the rounded vector's L2 norm is < C·s + √d (triangle inequality; the deterministic worst case — the paper's
 * conditional rounding would tighten it, at the price of a rejection loop in every client). L1 ≤ √d·L2
 * (Cauchy–Schwarz); the integer bound L1 ≤ L2² never beats it here, since L2 > √d.
 *
 * Adjacency: one organisation's update is there or replaced by nothing, with the number of survivors public (the
 * manifest lists them), as for central DP here: the known offset count·(2^bits − 1)/2 is subtracted by everyone.
 */
export function skellamSensitivity(options: {
  readonly clipNorm: number;
  readonly scale: number;
  readonly dimension: number;
}): IntegerSensitivity {
  const { clipNorm, scale, dimension } = options;
  if (!(Number.isFinite(clipNorm) && clipNorm > 0) || !(Number.isFinite(scale) && scale > 0))
    throw new AggregationError(
      'DP_INVALID_PARAMETERS',
      `expected a finite clipNorm > 0 and scale > 0, got ${clipNorm} and ${scale}`,
    );
  checkLength(dimension);
  const root = Math.sqrt(dimension);
  const l2 = clipNorm * scale + root;
  return { l1: root * l2, l2 };
}

/**
 * RDP of one release of the multi-dimensional Skellam mechanism at each (integer) order α: integer sum with L1, L2
 * sensitivities Δ₁, Δ₂, plus i.i.d. symmetric Skellam noise of variance v per coordinate.
 *
 *   ε(α) ≤ α·Δ₂²/(2v) + min( ((2α − 1)·Δ₂² + 6·Δ₁)/(4v²), 3·Δ₁/(2v) )
 *
 * Agarwal, Kairouz, Liu 2021, Theorem 3.5, stated there for Sk(μ, μ) = Poisson(μ) − Poisson(μ) (variance 2μ) as
 * αΔ₂²/(4μ) + min(((2α − 1)Δ₂² + 6Δ₁)/(16μ²), 3Δ₁/(4μ)); with v = 2μ it is the line above. The first term is the
 * Gaussian mechanism's α·Δ₂²/(2σ²); the second is what discreteness costs, vanishing as v grows.
 *
 * @throws AggregationError DP_INVALID_PARAMETERS for a non-integer order ≤ 1, a variance ≤ 0 or negative sensitivity
 */
export function skellamRdp(
  sensitivity: IntegerSensitivity,
  variance: number,
  orders: readonly number[] = SKELLAM_RDP_ORDERS,
): number[] {
  const { l1, l2 } = sensitivity;
  if (!(Number.isFinite(variance) && variance > 0))
    throw new AggregationError('DP_INVALID_PARAMETERS', `expected a finite variance > 0, got ${variance}`);
  if (!(l1 >= 0 && l2 >= 0 && Number.isFinite(l1) && Number.isFinite(l2)))
    throw new AggregationError(
      'DP_INVALID_PARAMETERS',
      `expected finite sensitivities ≥ 0, got L1 ${l1} and L2 ${l2}`,
    );
  return orders.map((a) => {
    if (!Number.isInteger(a) || a < 2)
      throw new AggregationError(
        'DP_INVALID_PARAMETERS',
        `expected integer RDP orders ≥ 2 (the Skellam bound holds at integer orders), got ${a}`,
      );
    const l2sq = l2 * l2;
    return (
      (a * l2sq) / (2 * variance) +
      Math.min(((2 * a - 1) * l2sq + 6 * l1) / (4 * variance * variance), (3 * l1) / (2 * variance))
    );
  });
}

/**
 * (ε, δ) after a sequence of Skellam releases (RDP adds up over rounds; converted as the central accountant does,
 * Balle et al. 2020), each with its own total noise variance — e.g. what the survivors of each round added.
 *
 * @returns ε (0 for no release)
 * @throws AggregationError DP_INVALID_PARAMETERS as {@link skellamRdp} and for δ ∉ (0, 1)
 */
export function skellamEpsilon(
  sensitivity: IntegerSensitivity,
  variances: readonly number[],
  delta: number,
  orders: readonly number[] = SKELLAM_RDP_ORDERS,
): number {
  if (variances.length === 0) return 0;
  const total = orders.map(() => 0);
  for (const v of variances) {
    const rdp = skellamRdp(sensitivity, v, orders);
    for (let k = 0; k < total.length; k++) total[k] = total[k]! + rdp[k]!;
  }
  return epsilonFromRdp(orders, total, delta).epsilon;
}

function checkMean(lambda: number): void {
  if (!Number.isFinite(lambda) || lambda < 0 || lambda > MAX_POISSON_MEAN)
    throw new AggregationError(
      'DP_INVALID_PARAMETERS',
      `expected a Poisson mean in [0, 2^50], got ${lambda}: lower the noise (dp.noiseMultiplier) or the quantization bits`,
    );
}

function checkLength(length: number): void {
  if (!Number.isSafeInteger(length) || length < 0)
    throw new AggregationError(
      'DP_INVALID_PARAMETERS',
      `expected a non-negative integer length, got ${length}`,
    );
}
