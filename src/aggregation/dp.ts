/**
 * Central differential privacy for federated averaging: Gaussian noise on the aggregate of clipped updates, an RDP
 * accountant for the (Poisson-subsampled) Gaussian mechanism, and a privacy budget that stops a task.
 *
 * What is protected, and from whom. This is DP-FedAvg (McMahan, Ramage, Talwar, Zhang 2018, "Learning Differentially
 * Private Recurrent Language Models"; Flower's `DifferentialPrivacyServerSideFixedClipping`): every client's update is
 * clipped to L2 norm ≤ C, the coordinator adds N(0, (z·C)²) to each coordinate of the SUM of the clipped updates, and
 * only the noised sum (and what is computed from it) leaves the coordinator. The guarantee is client-level, under
 * add/remove-one-client adjacency: adding or removing one client's whole update changes the sum by at most C in L2.
 * It protects against everyone who sees the released model (researchers, storage miners, the chain), not against the
 * coordinator, which sees the un-noised sum after SecAgg unmasking.
 *
 * Pure code (DESIGN §2, §10): no I/O, no clock, no Math.random — randomness arrives as `RandomBytes`.
 */
import { AggregationError, type RandomBytes } from './errors.ts';

// ---------------------------------------------------------------------------------------------------------------
// Gaussian sampling
// ---------------------------------------------------------------------------------------------------------------

const TWO_POW_32 = 4_294_967_296;
const TWO_POW_53 = 9_007_199_254_740_992;
/** Box–Muller pairs drawn per call of the random source: 16 bytes per pair, so 64 KiB per call. */
const PAIRS_PER_CHUNK = 4096;

/**
 * `length` independent samples of N(0, sigma²), by the Box–Muller transform on uniforms built from 53-bit integers
 * of the injected bytes (8 bytes per uniform; the top 53 bits are used). u₁ = (k₁ + 1)/2⁵³ ∈ (0, 1] so log(u₁) is
 * never log(0); u₂ = k₂/2⁵³ ∈ [0, 1). Deterministic for a deterministic byte source. The largest magnitude it can
 * produce is sigma·√(2·53·ln 2) ≈ 8.57·sigma (a tail of probability < 10⁻¹⁷ is cut).
 *
 * Floating-point caveat: like every float Gaussian sampler (Flower's, Opacus' and TF Privacy's included) this is not
 * the exact discrete Gaussian of Canonne, Kamath and Steinke 2020; see Mironov 2012 for attacks on float noise.
 *
 * @param length number of samples (a non-negative safe integer)
 * @param sigma standard deviation (finite, ≥ 0)
 * @param random injected byte source
 * @throws AggregationError DP_INVALID_PARAMETERS when `length` or `sigma` is out of range
 * @throws AggregationError AGG_INVALID_INPUT when the random source returns fewer bytes than asked for
 */
export function gaussianNoise(length: number, sigma: number, random: RandomBytes): Float64Array {
  if (!Number.isSafeInteger(length) || length < 0) {
    throw new AggregationError(
      'DP_INVALID_PARAMETERS',
      `expected a non-negative integer length, got ${length}`,
    );
  }
  if (!Number.isFinite(sigma) || sigma < 0) {
    throw new AggregationError('DP_INVALID_PARAMETERS', `expected a finite sigma ≥ 0, got ${sigma}`);
  }
  const out = new Float64Array(length);
  const pairs = Math.ceil(length / 2);
  let written = 0;
  for (let done = 0; done < pairs; ) {
    const n = Math.min(PAIRS_PER_CHUNK, pairs - done);
    const bytes = random(16 * n);
    if (bytes.length < 16 * n) {
      // The byte source is a dependency, not data: a short answer is a broken source.
      throw new AggregationError(
        'AGG_INVALID_INPUT',
        `expected ${16 * n} random bytes, the random source returned ${bytes.length}`,
      );
    }
    const view = new DataView(bytes.buffer, bytes.byteOffset, 16 * n);
    for (let p = 0; p < n; p++) {
      const k1 = uint53(view, 16 * p);
      const k2 = uint53(view, 16 * p + 8);
      const u1 = (k1 + 1) / TWO_POW_53;
      const u2 = k2 / TWO_POW_53;
      const r = sigma * Math.sqrt(-2 * Math.log(u1));
      const theta = 2 * Math.PI * u2;
      out[written++] = r * Math.cos(theta);
      if (written < length) out[written++] = r * Math.sin(theta);
    }
    done += n;
  }
  return out;
}

/** The top 53 bits of the big-endian 64-bit word at `offset`, as an exact integer in [0, 2⁵³). */
function uint53(view: DataView, offset: number): number {
  const hi = view.getUint32(offset) >>> 11; // 21 bits
  const lo = view.getUint32(offset + 4); // 32 bits
  return hi * TWO_POW_32 + lo;
}

/** Options of {@link addGaussianNoise}. */
export interface GaussianNoiseOptions {
  /** C: the L2 bound every client's contribution to `sum` was clipped to (finite, > 0). */
  readonly clipNorm: number;
  /** z: noise standard deviation in units of C (finite, > 0). The accountant takes the same z. */
  readonly noiseMultiplier: number;
  readonly random: RandomBytes;
}

/**
 * Central DP for one round: returns `sum + N(0, (z·C)²·I)` as a new Float32Array (the input is not modified).
 *
 * Sensitivity assumption — the caller's duty, not checked here because only the sum is visible: `sum` is the plain
 * sum of per-client contributions, each clipped to L2 ≤ `clipNorm` BEFORE summation (e.g. before SecAgg masking).
 * Under add/remove-one-client adjacency the L2 sensitivity of the sum is then exactly C, so one round is the
 * Gaussian mechanism with noise multiplier z (RDP α/(2z²); with client sampling at rate q, the sampled Gaussian
 * mechanism that {@link createRdpAccountant} accounts). If contributions are weighted (e.g. by example counts) the
 * weighted contribution must be what is clipped to C. Dividing the noised sum by a data-independent denominator
 * (the expected cohort size, as DP-FedAvg's fixed-denominator estimator does) is post-processing and costs no
 * privacy; dividing by the actual count or by securely summed weights is NOT covered by this guarantee.
 *
 * Sources: McMahan et al. 2018 (DP-FedAvg, Algorithm 1), Flower `DifferentialPrivacyServerSideFixedClipping`
 * (std = noise_multiplier · clipping_norm added to the aggregate).
 *
 * @throws AggregationError DP_INVALID_PARAMETERS when clipNorm or noiseMultiplier is not finite and > 0
 * @throws AggregationError AGG_INVALID_INPUT when `sum` holds a non-finite value, or the random source is short
 */
export function addGaussianNoise(sum: Float32Array, options: GaussianNoiseOptions): Float32Array {
  const { clipNorm, noiseMultiplier, random } = options;
  if (!Number.isFinite(clipNorm) || clipNorm <= 0) {
    throw new AggregationError('DP_INVALID_PARAMETERS', `expected a finite clipNorm > 0, got ${clipNorm}`);
  }
  checkNoiseMultiplier(noiseMultiplier);
  for (let i = 0; i < sum.length; i++) {
    if (!Number.isFinite(sum[i]!)) {
      throw new AggregationError('AGG_INVALID_INPUT', `expected a finite sum, got ${sum[i]} at index ${i}`);
    }
  }
  const std = noiseMultiplier * clipNorm;
  if (!Number.isFinite(std)) {
    throw new AggregationError(
      'DP_INVALID_PARAMETERS',
      `noise std z·C = ${noiseMultiplier}·${clipNorm} overflows`,
    );
  }
  const noise = gaussianNoise(sum.length, std, random);
  const out = new Float32Array(sum.length);
  for (let i = 0; i < sum.length; i++) out[i] = sum[i]! + noise[i]!;
  return out;
}

/**
 * DP-FedAvg's server step with the fixed-denominator estimator (McMahan et al. 2018, Algorithm 1): the sum of client
 * updates, each clipped to L2 ≤ C and counted once (weight 1), gets N(0, (z·C)²) per coordinate and is then averaged
 * over the cohort size the task planned, not over the number of updates that came, which would depend on who took
 * part. Returns the input a strategy averages (`sum / totalWeight`), so every strategy can run on top of it.
 *
 * @throws AggregationError AGG_INVALID_INPUT when the input's weight is not its client count (weights must be 1) or
 *   exceeds the planned cohort, as {@link addGaussianNoise} otherwise
 */
export function privatizeSum(
  input: { readonly sum: Float32Array; readonly totalWeight: number },
  options: GaussianNoiseOptions & { readonly clients: number; readonly plannedClients: number },
): { sum: Float32Array; totalWeight: number } {
  if (input.totalWeight !== options.clients || options.clients > options.plannedClients) {
    throw new AggregationError(
      'AGG_INVALID_INPUT',
      `expected ${options.clients} clients of weight 1 out of at most ${options.plannedClients} planned, got a total weight of ${input.totalWeight}`,
    );
  }
  return { sum: addGaussianNoise(input.sum, options), totalWeight: options.plannedClients };
}

// ---------------------------------------------------------------------------------------------------------------
// RDP accountant
// ---------------------------------------------------------------------------------------------------------------

/**
 * Opacus' `RDPAccountant.DEFAULT_ALPHAS`: `[1 + x / 10 for x in range(1, 100)] + list(range(12, 64))`, i.e.
 * 1.1, 1.2, …, 10.9 and 12, 13, …, 63 (151 orders).
 */
export const DEFAULT_RDP_ORDERS: readonly number[] = Object.freeze([
  ...Array.from({ length: 99 }, (_, k) => 1 + (k + 1) / 10),
  ...Array.from({ length: 52 }, (_, k) => 12 + k),
]);

/** Largest order accepted: integer orders cost O(α) per evaluation. */
const MAX_ORDER = 100_000;

/** One accounted event: `steps` rounds of the Gaussian mechanism with noise multiplier z and sampling rate q. */
export interface RdpEvent {
  readonly noiseMultiplier: number;
  /** q: probability with which each client takes part in a round (Poisson sampling); 1 = every client, every round. */
  readonly samplingRate: number;
  readonly steps: number;
}

/** Input of {@link RdpAccountant.step}; `steps` defaults to 1. */
export interface RdpStepInput {
  readonly noiseMultiplier: number;
  readonly samplingRate: number;
  readonly steps?: number;
}

/**
 * An immutable accountant state. `step` returns a new state and leaves this one untouched, so a coordinator can
 * compute the state after a round before running it. `history` is small and JSON-friendly: persist it and rebuild
 * the state with `createRdpAccountant({ orders, history })`.
 */
export interface RdpAccountant {
  /** The Rényi orders α at which RDP is tracked. */
  readonly orders: readonly number[];
  /** Cumulative RDP ε(α) of everything accounted so far, one entry per order (may be Infinity). */
  readonly rdp: readonly number[];
  /** Accounted events, consecutive identical (z, q) merged as Opacus does. */
  readonly history: readonly RdpEvent[];
  /** Total number of accounted rounds. */
  readonly totalSteps: number;
  /**
   * Accounts `steps` more rounds and returns the new state.
   * @throws AggregationError DP_INVALID_PARAMETERS when z ≤ 0, q ∉ [0, 1] or steps is not a positive integer
   */
  step(input: RdpStepInput): RdpAccountant;
}

/** Options of {@link createRdpAccountant}. */
export interface RdpAccountantOptions {
  /** Rényi orders, each finite, > 1 and ≤ 100,000; default {@link DEFAULT_RDP_ORDERS}. */
  readonly orders?: readonly number[];
  /** Events to replay (e.g. a persisted `history`). */
  readonly history?: readonly RdpEvent[];
}

/**
 * An RDP accountant for the Poisson-subsampled Gaussian mechanism (client sampling at rate q, noise multiplier z).
 *
 * Per round at order α: for q = 1, RDP(α) = α / (2z²) (Mironov 2017, "Rényi Differential Privacy", Prop. 7); for
 * q = 0, 0; for 0 < q < 1, RDP(α) = log(A_α)/(α − 1) with A_α from Mironov, Talwar and Zhang 2019 ("Rényi
 * Differential Privacy of the Sampled Gaussian Mechanism", §3.3): for integer α the binomial expansion
 * A_α = Σᵢ C(α,i) (1−q)^(α−i) qⁱ exp((i² − i)/(2z²)), for fractional α the two-sided series with erfc terms — both
 * in log space, ported from TensorFlow Privacy's `_compute_log_a_int` / `_compute_log_a_frac` (also Opacus'
 * `_compute_log_a_for_int_alpha` / `_for_frac_alpha`). RDP composes additively over rounds.
 *
 * Poisson sampling is what the bound assumes; a coordinator that samples a fixed-size cohort uses q = m/n as an
 * approximation (as TF Privacy and Opacus do for fixed batches).
 *
 * @throws AggregationError DP_INVALID_PARAMETERS for an empty order list, an order ≤ 1, > 100,000 or not finite, or
 *   an invalid event in `history`
 */
export function createRdpAccountant(options: RdpAccountantOptions = {}): RdpAccountant {
  const orders = Object.freeze([...(options.orders ?? DEFAULT_RDP_ORDERS)]);
  if (orders.length === 0)
    throw new AggregationError('DP_INVALID_PARAMETERS', 'expected at least one RDP order');
  for (const a of orders) {
    if (!Number.isFinite(a) || a <= 1 || a > MAX_ORDER) {
      throw new AggregationError(
        'DP_INVALID_PARAMETERS',
        `expected RDP orders in (1, ${MAX_ORDER}], got ${a}`,
      );
    }
  }
  let state = makeState(orders, Object.freeze(orders.map(() => 0)), Object.freeze([]), 0);
  for (const event of options.history ?? []) state = state.step(event);
  return state;
}

function makeState(
  orders: readonly number[],
  rdp: readonly number[],
  history: readonly RdpEvent[],
  totalSteps: number,
): RdpAccountant {
  const state: RdpAccountant = {
    orders,
    rdp,
    history,
    totalSteps,
    step(input: RdpStepInput): RdpAccountant {
      const steps = input.steps ?? 1;
      checkNoiseMultiplier(input.noiseMultiplier);
      checkSamplingRate(input.samplingRate);
      if (!Number.isSafeInteger(steps) || steps < 1) {
        throw new AggregationError(
          'DP_INVALID_PARAMETERS',
          `expected steps to be a positive integer, got ${steps}`,
        );
      }
      const perStep = rdpPerStep(input.samplingRate, input.noiseMultiplier, orders);
      const nextRdp = Object.freeze(rdp.map((r, k) => r + steps * perStep[k]!));
      const last = history[history.length - 1];
      const merged =
        last !== undefined &&
        last.noiseMultiplier === input.noiseMultiplier &&
        last.samplingRate === input.samplingRate
          ? [...history.slice(0, -1), Object.freeze({ ...last, steps: last.steps + steps })]
          : [
              ...history,
              Object.freeze({
                noiseMultiplier: input.noiseMultiplier,
                samplingRate: input.samplingRate,
                steps,
              }),
            ];
      return makeState(orders, nextRdp, Object.freeze(merged), totalSteps + steps);
    },
  };
  return Object.freeze(state);
}

/** How RDP is converted to (ε, δ)-DP. */
export type RdpConversion =
  /**
   * Balle, Barthe, Gaboardi, Hsu, Sato 2020 ("Hypothesis testing interpretations and Rényi differential privacy",
   * Thm. 21), also Canonne, Kamath, Steinke 2020 Prop. 12 / Asoodeh et al. 2020:
   * ε = RDP(α) + log((α − 1)/α) − (log δ + log α)/(α − 1), minimised over α. What TF Privacy (`_compute_eps`),
   * dp_accounting and Opacus (`get_privacy_spent`) use today. Orders ≤ 1.01 are skipped (numerically unstable,
   * as in TF Privacy); if sqrt(1 − exp(−RDP(α))) ≤ δ the KL bound gives ε = 0.
   */
  | 'balle2020'
  /** Mironov 2017 Prop. 3: ε = RDP(α) + log(1/δ)/(α − 1), minimised over α (the classic, looser conversion). */
  | 'mironov2017';

/** Result of an (ε, δ) conversion: the smallest ε over the orders and the order α that attains it. */
export interface EpsilonResult {
  readonly epsilon: number;
  readonly order: number;
}

/**
 * (ε, δ)-DP of everything an accountant has accounted, minimised over its orders.
 *
 * @param state an accountant state
 * @param delta target δ, in (0, 1)
 * @param options conversion: 'balle2020' (default, as TF Privacy and Opacus) or 'mironov2017'
 * @returns `{ epsilon, order }`; epsilon is 0 before any round and Infinity if RDP is infinite at every order
 * @throws AggregationError DP_INVALID_PARAMETERS when delta ∉ (0, 1)
 */
export function epsilon(
  state: Pick<RdpAccountant, 'orders' | 'rdp'>,
  delta: number,
  options: { readonly conversion?: RdpConversion } = {},
): EpsilonResult {
  return epsilonFromRdp(state.orders, state.rdp, delta, options);
}

/**
 * Converts RDP values at the given orders to (ε, δ)-DP (see {@link RdpConversion} for the formulas and sources).
 *
 * @throws AggregationError DP_INVALID_PARAMETERS when delta ∉ (0, 1), the lists differ in length or are empty, an
 *   order is not > 1, or an RDP value is negative or NaN
 */
export function epsilonFromRdp(
  orders: readonly number[],
  rdp: readonly number[],
  delta: number,
  options: { readonly conversion?: RdpConversion } = {},
): EpsilonResult {
  const conversion = options.conversion ?? 'balle2020';
  checkDelta(delta);
  if (orders.length === 0 || orders.length !== rdp.length) {
    throw new AggregationError(
      'DP_INVALID_PARAMETERS',
      `expected as many RDP values as orders (≥ 1), got ${rdp.length} values for ${orders.length} orders`,
    );
  }
  let best = Number.POSITIVE_INFINITY;
  let bestOrder = orders[0]!;
  for (let k = 0; k < orders.length; k++) {
    const a = orders[k]!;
    const r = rdp[k]!;
    if (!(a > 1)) throw new AggregationError('DP_INVALID_PARAMETERS', `expected RDP orders > 1, got ${a}`);
    if (!(r >= 0)) throw new AggregationError('DP_INVALID_PARAMETERS', `expected RDP values ≥ 0, got ${r}`);
    let eps: number;
    if (conversion === 'mironov2017') {
      eps = r - Math.log(delta) / (a - 1);
    } else if (delta * delta + Math.expm1(-r) >= 0) {
      eps = 0; // δ ≥ sqrt(1 − e^(−KL)) ≥ total variation, and KL ≤ RDP(α): already (0, δ)-DP.
    } else if (a > 1.01) {
      eps = r + Math.log1p(-1 / a) - Math.log(delta * a) / (a - 1);
    } else {
      eps = Number.POSITIVE_INFINITY;
    }
    if (eps < best) {
      best = eps;
      bestOrder = a;
    }
  }
  return Object.freeze({ epsilon: Math.max(0, best), order: bestOrder });
}

/**
 * RDP of one round of the sampled Gaussian mechanism at each order (see {@link createRdpAccountant}).
 *
 * @param samplingRate q ∈ [0, 1]
 * @param noiseMultiplier z > 0
 * @param orders Rényi orders, each > 1
 * @throws AggregationError DP_INVALID_PARAMETERS for out-of-range parameters, or if the fractional-order series
 *   does not converge (never observed; the bound would otherwise be unsound)
 */
export function computeRdp(
  samplingRate: number,
  noiseMultiplier: number,
  orders: readonly number[],
): number[] {
  checkNoiseMultiplier(noiseMultiplier);
  checkSamplingRate(samplingRate);
  for (const a of orders) {
    if (!Number.isFinite(a) || a <= 1 || a > MAX_ORDER) {
      throw new AggregationError(
        'DP_INVALID_PARAMETERS',
        `expected RDP orders in (1, ${MAX_ORDER}], got ${a}`,
      );
    }
  }
  return orders.map((a) => rdpAtOrder(samplingRate, noiseMultiplier, a));
}

/** A few recent (q, z, orders) evaluations: a task steps with the same parameters every round. */
const rdpCache = new Map<string, readonly number[]>();
const RDP_CACHE_SIZE = 32;

function rdpPerStep(q: number, sigma: number, orders: readonly number[]): readonly number[] {
  const key = `${q}|${sigma}|${orders.join(',')}`;
  const hit = rdpCache.get(key);
  if (hit !== undefined) return hit;
  const value = Object.freeze(orders.map((a) => rdpAtOrder(q, sigma, a)));
  if (rdpCache.size >= RDP_CACHE_SIZE) {
    const oldest = rdpCache.keys().next().value;
    if (oldest !== undefined) rdpCache.delete(oldest);
  }
  rdpCache.set(key, value);
  return value;
}

function rdpAtOrder(q: number, sigma: number, alpha: number): number {
  if (q === 0) return 0;
  // A noise multiplier so small that 1/(2z²) overflows gives no privacy worth a number.
  if (!Number.isFinite(1 / (2 * sigma * sigma))) return Number.POSITIVE_INFINITY;
  if (q === 1) return alpha / (2 * sigma * sigma);
  const rdp = logA(q, sigma, alpha) / (alpha - 1);
  // A_α ≥ 1 (Jensen), so RDP ≥ 0; clamp rounding below 0, and claim nothing if the arithmetic broke down.
  return Number.isNaN(rdp) ? Number.POSITIVE_INFINITY : Math.max(0, rdp);
}

function logA(q: number, sigma: number, alpha: number): number {
  return Number.isInteger(alpha) ? logAInt(q, sigma, alpha) : logAFrac(q, sigma, alpha);
}

/** log A_α for integer α, 0 < q < 1 (Mironov–Talwar–Zhang 2019 §3.3; TF Privacy `_compute_log_a_int`). */
function logAInt(q: number, sigma: number, alpha: number): number {
  const logQ = Math.log(q);
  const log1mQ = Math.log1p(-q);
  const twoVar = 2 * sigma * sigma;
  let logA = Number.NEGATIVE_INFINITY;
  let logBinom = 0; // log C(α, 0)
  for (let i = 0; i <= alpha; i++) {
    if (i > 0) logBinom += Math.log((alpha - i + 1) / i);
    const s = logBinom + i * logQ + (alpha - i) * log1mQ + (i * i - i) / twoVar;
    logA = logAdd(logA, s);
  }
  return logA;
}

/** Stop the fractional series once both new terms fall below e^−30, as TF Privacy and Opacus do. */
const FRAC_TERM_FLOOR = -30;
/** A guard, not a tuning knob: the series' terms decay polynomially and stop far earlier for sane parameters. */
const FRAC_MAX_TERMS = 50_000_000;

/** log A_α for fractional α, 0 < q < 1 (Mironov–Talwar–Zhang 2019 §3.3; TF Privacy `_compute_log_a_frac`). */
function logAFrac(q: number, sigma: number, alpha: number): number {
  // The two parts of A_α, integrals over (−∞, z0] and [z0, +∞), start at 0 (−∞ in log space).
  let logA0 = Number.NEGATIVE_INFINITY;
  let logA1 = Number.NEGATIVE_INFINITY;
  const logQ = Math.log(q);
  const log1mQ = Math.log1p(-q);
  const twoVar = 2 * sigma * sigma;
  const z0 = sigma * sigma * Math.log(1 / q - 1) + 0.5;
  const sqrt2Sigma = Math.SQRT2 * sigma;
  let logAbsCoef = 0; // log |C(α, 0)|
  let coefPositive = true;
  for (let i = 0; i < FRAC_MAX_TERMS; i++) {
    if (i > 0) {
      // C(α, i) = C(α, i − 1) · (α − i + 1)/i; the sign flips whenever α − i + 1 < 0.
      const factor = (alpha - i + 1) / i;
      logAbsCoef += Math.log(Math.abs(factor));
      if (factor < 0) coefPositive = !coefPositive;
    }
    const j = alpha - i;
    const logT0 = logAbsCoef + i * logQ + j * log1mQ;
    const logT1 = logAbsCoef + j * logQ + i * log1mQ;
    const logE0 = Math.log(0.5) + logErfc((i - z0) / sqrt2Sigma);
    const logE1 = Math.log(0.5) + logErfc((z0 - j) / sqrt2Sigma);
    const logS0 = logT0 + (i * i - i) / twoVar + logE0;
    const logS1 = logT1 + (j * j - j) / twoVar + logE1;
    if (coefPositive) {
      logA0 = logAdd(logA0, logS0);
      logA1 = logAdd(logA1, logS1);
    } else {
      logA0 = logSub(logA0, logS0);
      logA1 = logSub(logA1, logS1);
    }
    if (Number.isNaN(logS0) || Number.isNaN(logS1)) return Number.NaN;
    if (Math.max(logS0, logS1) < FRAC_TERM_FLOOR) return logAdd(logA0, logA1);
  }
  throw new AggregationError(
    'DP_INVALID_PARAMETERS',
    `the RDP series at order ${alpha} (q = ${q}, z = ${sigma}) did not converge in ${FRAC_MAX_TERMS} terms`,
  );
}

/** log(e^x + e^y). */
function logAdd(x: number, y: number): number {
  const a = Math.min(x, y);
  const b = Math.max(x, y);
  if (a === Number.NEGATIVE_INFINITY) return b;
  return Math.log1p(Math.exp(a - b)) + b;
}

/** log(e^x − e^y) for x ≥ y. */
function logSub(x: number, y: number): number {
  if (x < y) {
    // The alternating series is arranged so that partial sums stay non-negative; this is a numerical failure.
    throw new AggregationError('DP_INVALID_PARAMETERS', 'RDP series lost precision (negative partial sum)');
  }
  if (y === Number.NEGATIVE_INFINITY) return x;
  if (x === y) return Number.NEGATIVE_INFINITY;
  const d = x - y;
  // log(e^d − 1) + y; for large d, e^d − 1 overflows but log(e^d − 1) ≈ d.
  return (d > 700 ? d : Math.log(Math.expm1(d))) + y;
}

const LOG_SQRT_PI = 0.5 * Math.log(Math.PI);
const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);

/**
 * log(erfc(x)) to near double precision for every finite x, including far tails where erfc underflows
 * (stands in for scipy's `log_ndtr` used by TF Privacy and Opacus).
 */
export function logErfc(x: number): number {
  if (Number.isNaN(x)) return Number.NaN;
  if (x < 0) return Math.log(2 - erfcPositive(-x));
  if (x < 2) return Math.log1p(-erfSeries(x));
  return -x * x - LOG_SQRT_PI + Math.log(erfcContinuedFraction(x));
}

/** erfc(x) for x ≥ 0. */
function erfcPositive(x: number): number {
  if (x < 2) return 1 - erfSeries(x);
  return Math.exp(-x * x - LOG_SQRT_PI) * erfcContinuedFraction(x);
}

/** erf(x) = (2/√π) e^(−x²) Σₙ 2ⁿ x^(2n+1) / (1·3·…·(2n+1)): all terms positive, so no cancellation (|x| < 2). */
function erfSeries(x: number): number {
  const x2 = x * x;
  let term = x;
  let sum = x;
  for (let n = 1; n < 200; n++) {
    term *= (2 * x2) / (2 * n + 1);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return TWO_OVER_SQRT_PI * Math.exp(-x2) * sum;
}

/**
 * √π · e^(x²) · erfc(x) for x ≥ 2, by the continued fraction 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))) (Abramowitz
 * and Stegun 7.1.14), evaluated with the modified Lentz method.
 */
function erfcContinuedFraction(x: number): number {
  const tiny = 1e-300;
  let f = x;
  let c = x;
  let d = 0;
  for (let n = 1; n < 5000; n++) {
    const a = n / 2;
    d = x + a * d;
    if (d === 0) d = tiny;
    d = 1 / d;
    c = x + a / c;
    if (c === 0) c = tiny;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return 1 / f;
}

// ---------------------------------------------------------------------------------------------------------------
// Privacy budget
// ---------------------------------------------------------------------------------------------------------------

/** A task's (ε, δ) budget. ε is what rounds spend; δ is the fixed target at which ε is computed. */
export interface PrivacyBudget {
  readonly epsilon: number;
  readonly delta: number;
}

/** What a task has spent of its budget after some rounds. */
export interface BudgetSpend {
  /** ε of everything accounted so far at the budget's δ (δ is the budget's, fixed). */
  readonly spent: { readonly epsilon: number; readonly delta: number };
  /** max(0, budget ε − spent ε), at the same δ. */
  readonly remaining: { readonly epsilon: number; readonly delta: number };
  /** true when spent ε ≥ budget ε: no further round can run. */
  readonly exhausted: boolean;
  /** The Rényi order that attains the spent ε. */
  readonly order: number;
}

/**
 * A privacy budget for a task.
 *
 * @throws AggregationError DP_INVALID_PARAMETERS when epsilon is not finite and > 0 or delta ∉ (0, 1)
 */
export function createPrivacyBudget(budget: { epsilon: number; delta: number }): PrivacyBudget {
  if (!Number.isFinite(budget.epsilon) || budget.epsilon <= 0) {
    throw new AggregationError(
      'DP_INVALID_PARAMETERS',
      `expected a finite budget epsilon > 0, got ${budget.epsilon}`,
    );
  }
  checkDelta(budget.delta);
  return Object.freeze({ epsilon: budget.epsilon, delta: budget.delta });
}

/**
 * How much of `budget` the rounds accounted in `accountant` have spent (ε by the default 'balle2020' conversion,
 * at the budget's δ). Reports; never throws for an overspent budget — see {@link reserveRound} for the gate.
 *
 * @throws AggregationError DP_INVALID_PARAMETERS when the budget is malformed
 */
export function spend(budget: PrivacyBudget, accountant: Pick<RdpAccountant, 'orders' | 'rdp'>): BudgetSpend {
  const b = createPrivacyBudget(budget);
  const { epsilon: spentEps, order } = epsilon(accountant, b.delta);
  return Object.freeze({
    spent: Object.freeze({ epsilon: spentEps, delta: b.delta }),
    remaining: Object.freeze({ epsilon: Math.max(0, b.epsilon - spentEps), delta: b.delta }),
    exhausted: spentEps >= b.epsilon,
    order,
  });
}

/**
 * The gate a coordinator calls BEFORE running a round: accounts the round on a copy of the state and returns the
 * state to keep once the round has run, with what it will have spent. A round that brings ε exactly to the budget
 * is allowed (the budget is then exhausted); one that would exceed it is refused and the task must stop.
 *
 * @param budget the task's budget
 * @param accountant the state after the rounds run so far
 * @param round the round about to run (`steps` defaults to 1)
 * @throws AggregationError DP_BUDGET_EXHAUSTED when the round would take ε above the budget (`details` carries
 *   budget, current and projected ε)
 * @throws AggregationError DP_INVALID_PARAMETERS when the budget or the round's parameters are out of range
 */
export function reserveRound(
  budget: PrivacyBudget,
  accountant: RdpAccountant,
  round: RdpStepInput,
): { readonly accountant: RdpAccountant; readonly spend: BudgetSpend } {
  const next = accountant.step(round);
  const projected = spend(budget, next);
  if (projected.spent.epsilon > budget.epsilon) {
    const current = spend(budget, accountant).spent.epsilon;
    throw new AggregationError(
      'DP_BUDGET_EXHAUSTED',
      `expected the next round to keep ε ≤ ${budget.epsilon} at δ = ${budget.delta}, ` +
        `it would reach ε = ${projected.spent.epsilon} (spent so far ${current})`,
      { budget: { ...budget }, spentEpsilon: current, projectedEpsilon: projected.spent.epsilon },
    );
  }
  return Object.freeze({ accountant: next, spend: projected });
}

// ---------------------------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------------------------

function checkNoiseMultiplier(z: number): void {
  if (!Number.isFinite(z) || z <= 0) {
    throw new AggregationError('DP_INVALID_PARAMETERS', `expected a finite noise multiplier > 0, got ${z}`);
  }
}

function checkSamplingRate(q: number): void {
  if (!Number.isFinite(q) || q < 0 || q > 1) {
    throw new AggregationError('DP_INVALID_PARAMETERS', `expected a sampling rate in [0, 1], got ${q}`);
  }
}

function checkDelta(delta: number): void {
  if (!Number.isFinite(delta) || delta <= 0 || delta >= 1) {
    throw new AggregationError('DP_INVALID_PARAMETERS', `expected delta in (0, 1), got ${delta}`);
  }
}
