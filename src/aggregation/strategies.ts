/**
 * Server-side aggregation strategies (DESIGN §2, §6, §10): pure functions of data. A strategy turns the current global
 * model and the round's client results into the next global model, carrying its optimiser state as a value.
 *
 * Semantics follow Flower (FedAvg, FedAvgM, FedProx, FedAdagrad, FedAdam, FedYogi) and Reddi et al. 2021,
 * "Adaptive Federated Optimization", Algorithm 2. Models are flat `Float32Array`s; every sum is accumulated in
 * Float64 and rounded to float32 once, at the end.
 *
 * Secure aggregation: none of these strategies needs an individual update, only the weighted mean of the deltas.
 * So `aggregate` accepts either the plaintext results or a {@link WeightedSum} — the securely summed `Σ wᵢ·Δᵢ` and
 * `Σ wᵢ` that the SecAgg server unmasks — and both inputs give the same model. Wrappers that must see each update
 * (norm clipping on the server) say so with `needsPlaintextUpdates: true` and refuse a sum.
 */
import { AggregationError } from './errors.ts';

/** One client's contribution: its new parameters minus the global ones it started from, and its example count. */
export interface ClientResult {
  readonly update: Float32Array;
  readonly weight: number;
}

/**
 * The secure-aggregation form of a round's results: `sum = Σ wᵢ·Δᵢ` and `totalWeight = Σ wᵢ` over the survivors.
 * Float64Array is accepted too, for a coordinator that dequantizes into doubles.
 */
export interface WeightedSum {
  readonly sum: Float32Array | Float64Array;
  readonly totalWeight: number;
}

/** What `aggregate` takes: the plaintext results, or their weighted sum under SecAgg. */
export type AggregateInput = readonly ClientResult[] | WeightedSum;

/**
 * A strategy's state between rounds, a plain value the coordinator may persist: the strategy it belongs to, how many
 * rounds it has aggregated, the current global model, and the optimiser's buffers (FedAvgM `momentum`; FedOpt `m`
 * and `v`), all of the model's length. Strategies never mutate a state; they return a new one.
 */
export interface StrategyState {
  readonly strategy: string;
  readonly round: number;
  readonly global: Float32Array;
  readonly buffers: Readonly<Record<string, Float64Array>>;
}

/** The outcome of one round. `report` carries counters that wrappers add (e.g. `clipped` from norm clipping). */
export interface AggregateResult {
  readonly global: Float32Array;
  readonly state: StrategyState;
  readonly report?: Readonly<Record<string, number>>;
}

/** A server-side aggregation strategy: pure, so the same state and input always give the same result. */
export interface Strategy {
  readonly name: string;
  /** True when the strategy must see each client's update, so it cannot run under secure aggregation. */
  readonly needsPlaintextUpdates: boolean;
  /** The state for round 1, starting from `global` (copied). */
  init(global: Float32Array): StrategyState;
  /** The next global model and state from this round's results (or their weighted sum). */
  aggregate(state: StrategyState, input: AggregateInput): AggregateResult;
}

// ---------------------------------------------------------------------------------------------------------------
// Validation and the weighted mean

function invalid(message: string, details?: Record<string, unknown>): AggregationError {
  return new AggregationError('AGG_INVALID_INPUT', message, details);
}

function shown(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'object') return (value as object).constructor?.name ?? 'object';
  return `${typeof value} ${String(value)}`;
}

function isWeightedSum(input: AggregateInput): input is WeightedSum {
  return !Array.isArray(input);
}

/** Throws unless `weight` is a finite number > 0. */
function checkWeight(weight: unknown, what: string): asserts weight is number {
  if (typeof weight !== 'number' || !Number.isFinite(weight) || weight <= 0) {
    throw invalid(`expected ${what} to be a finite number > 0, got ${shown(weight)}`);
  }
}

/** Index of the first non-finite value, or -1. */
function firstNonFinite(values: ArrayLike<number>): number {
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) return i;
  }
  return -1;
}

function checkVector(
  vector: unknown,
  expectedLength: number,
  what: string,
  lengthOf: string,
  float64Ok = false,
): asserts vector is Float32Array {
  const typeOk = vector instanceof Float32Array || (float64Ok && vector instanceof Float64Array);
  if (!typeOk) {
    throw invalid(
      `expected ${what} to be a Float32Array${float64Ok ? ' or Float64Array' : ''}, got ${shown(vector)}`,
    );
  }
  const v = vector as Float32Array | Float64Array;
  if (v.length !== expectedLength) {
    throw invalid(`expected ${what} to have ${expectedLength} values (${lengthOf}), got ${v.length}`, {
      expected: expectedLength,
      got: v.length,
    });
  }
  const bad = firstNonFinite(v);
  if (bad >= 0) {
    throw invalid(`expected finite values in ${what}, got ${v[bad]} at index ${bad}`, { index: bad });
  }
}

/**
 * Validates plaintext results against a model of `length` parameters (the first update's length when undefined).
 * @throws AGG_EMPTY when there are no results; AGG_INVALID_INPUT for a wrong type, length, value or weight.
 */
function checkResults(results: readonly ClientResult[], length: number | undefined): number {
  if (results.length === 0)
    throw new AggregationError('AGG_EMPTY', 'expected at least 1 client result, got 0');
  const first = results[0]!;
  const expected = length ?? (first.update instanceof Float32Array ? first.update.length : 0);
  const lengthOf = length === undefined ? 'as update 0' : 'as the global model';
  results.forEach((r, i) => {
    checkVector(r.update, expected, `update ${i}`, lengthOf);
    checkWeight(r.weight, `the weight of update ${i}`);
  });
  return expected;
}

/**
 * The mean update Σ wᵢΔᵢ / Σ wᵢ, as `values[i] / divisor` coordinate by coordinate (in float64): a weighted sum is
 * read where it is instead of copied into a Float64Array of the model's size (800 MB at 100M weights), with the same
 * quotient as before, bit for bit. The input is validated first.
 */
interface MeanDelta {
  readonly values: ArrayLike<number>;
  readonly divisor: number;
}

function meanDelta(input: AggregateInput, length: number | undefined): MeanDelta {
  if (isWeightedSum(input)) {
    if (typeof input !== 'object' || input === null) {
      throw invalid(`expected client results or a weighted sum, got ${shown(input)}`);
    }
    const expected =
      length ??
      (input.sum instanceof Float32Array || input.sum instanceof Float64Array ? input.sum.length : 0);
    checkVector(input.sum, expected, 'the weighted sum', 'as the global model', true);
    checkWeight(input.totalWeight, 'the total weight');
    return { values: input.sum, divisor: input.totalWeight };
  }
  const n = checkResults(input, length);
  const acc = new Float64Array(n);
  let total = 0;
  for (const { update, weight } of input) {
    total += weight;
    for (let i = 0; i < n; i++) acc[i] = acc[i]! + weight * update[i]!;
  }
  // Finite float32 values times finite weights can still overflow a double when weights are absurd.
  if (!Number.isFinite(total) || firstNonFinite(acc) >= 0) {
    throw invalid(`expected a finite weighted sum, got an overflow (total weight ${total})`);
  }
  return { values: acc, divisor: total };
}

/**
 * The weighted mean `Σ wᵢ·Δᵢ / Σ wᵢ` of the clients' updates (FedAvg's aggregate), accumulated in Float64.
 * @throws AGG_EMPTY when `results` is empty.
 * @throws AGG_INVALID_INPUT when an update is not a Float32Array, lengths differ, a value is not finite, or a
 *   weight is not a finite number > 0.
 */
export function weightedMean(results: readonly ClientResult[]): Float32Array {
  const { values, divisor } = meanDelta(results, undefined);
  const out = new Float32Array(values.length);
  for (let i = 0; i < out.length; i++) out[i] = values[i]! / divisor;
  return out;
}

/**
 * Scales `update` down to L2 norm `maxNorm` when its norm exceeds it; otherwise returns a copy, or with `inPlace`
 * scales `update` itself and returns it (a caller that no longer needs the unclipped update: no second vector of its
 * size). The same clipping {@link withNormClipping} applies on the server, for the participant to apply before
 * masking under SecAgg.
 * @throws AGG_INVALID_INPUT when `update` is not a finite Float32Array or `maxNorm` is not a finite number > 0.
 */
export function clipToNorm(
  update: Float32Array,
  maxNorm: number,
  options: { readonly inPlace?: boolean } = {},
): Float32Array {
  checkWeight(maxNorm, 'maxNorm');
  checkVector(update, update instanceof Float32Array ? update.length : 0, 'the update', 'its own length');
  return (
    clipped(update, maxNorm, options.inPlace ? update : undefined) ??
    (options.inPlace ? update : update.slice())
  );
}

/**
 * The update scaled to norm `maxNorm` into `out` (a new vector unless given; it may be `update` itself), or undefined
 * when its norm is within it (norm computed in Float64).
 */
function clipped(update: Float32Array, maxNorm: number, out?: Float32Array): Float32Array | undefined {
  let squares = 0;
  for (let i = 0; i < update.length; i++) squares += update[i]! * update[i]!;
  const norm = Math.sqrt(squares);
  if (!(norm > maxNorm)) return undefined;
  const scale = maxNorm / norm;
  const into = out ?? new Float32Array(update.length);
  for (let i = 0; i < update.length; i++) into[i] = update[i]! * scale;
  return into;
}

// ---------------------------------------------------------------------------------------------------------------
// State and options

function checkState(state: StrategyState, name: string, bufferNames: readonly string[]): Float32Array {
  if (typeof state !== 'object' || state === null)
    throw invalid(`expected a ${name} state, got ${shown(state)}`);
  if (state.strategy !== name) {
    throw invalid(`expected a state of strategy ${name}, got one of ${String(state.strategy)}`);
  }
  if (!(state.global instanceof Float32Array) || state.global.length === 0) {
    throw invalid(
      `expected the state's global model to be a non-empty Float32Array, got ${shown(state.global)}`,
    );
  }
  for (const b of bufferNames) {
    const buffer = state.buffers?.[b];
    if (!(buffer instanceof Float64Array) || buffer.length !== state.global.length) {
      throw invalid(
        `expected state buffer ${b} to be a Float64Array of ${state.global.length} values, got ${shown(buffer)}`,
      );
    }
  }
  return state.global;
}

function checkGlobal(global: Float32Array): void {
  if (!(global instanceof Float32Array) || global.length === 0) {
    throw invalid(`expected the global model to be a non-empty Float32Array, got ${shown(global)}`);
  }
  checkVector(global, global.length, 'the global model', 'its own length');
}

/** The state after a round; fails closed if the new model overflowed float32. */
function nextState(
  state: StrategyState,
  global: Float32Array,
  buffers: Record<string, Float64Array>,
): AggregateResult {
  const bad = firstNonFinite(global);
  if (bad >= 0) {
    throw invalid(`expected a finite aggregate, got ${global[bad]} at index ${bad} (float32 overflow)`, {
      index: bad,
    });
  }
  return {
    global,
    state: { strategy: state.strategy, round: state.round + 1, global: global.slice(), buffers },
  };
}

function initState(name: string, global: Float32Array, bufferNames: readonly string[]): StrategyState {
  checkGlobal(global);
  const buffers: Record<string, Float64Array> = {};
  for (const b of bufferNames) buffers[b] = new Float64Array(global.length);
  return { strategy: name, round: 0, global: global.slice(), buffers };
}

/** Throws unless lo ≤ value < hi (or ≤ hi when `hiInclusive`), value finite. */
function checkRange(
  name: string,
  value: number,
  lo: number,
  hi: number,
  loInclusive: boolean,
  hiInclusive = false,
) {
  const ok =
    typeof value === 'number' &&
    Number.isFinite(value) &&
    (loInclusive ? value >= lo : value > lo) &&
    (hiInclusive ? value <= hi : value < hi);
  if (!ok) {
    const range = `${loInclusive ? '[' : '('}${lo}, ${hi}${hiInclusive ? ']' : ')'}`;
    throw invalid(`expected ${name} in ${range}, got ${shown(value)}`);
  }
}

const positive = (name: string, value: number) => checkRange(name, value, 0, Number.POSITIVE_INFINITY, false);

// ---------------------------------------------------------------------------------------------------------------
// FedAvg, FedProx, FedAvgM

/** Options of {@link fedAvg}. */
export interface FedAvgOptions {
  /** Server learning rate η: global += η·Δ̄. Default 1 (plain FedAvg). */
  readonly serverLr?: number;
}

function averaging(name: string, options: FedAvgOptions): Strategy {
  const serverLr = options.serverLr ?? 1;
  positive('serverLr', serverLr);
  return {
    name,
    needsPlaintextUpdates: false,
    init: (global) => initState(name, global, []),
    aggregate(state, input) {
      const g = checkState(state, name, []);
      const { values, divisor } = meanDelta(input, g.length);
      const out = new Float32Array(g.length);
      for (let i = 0; i < g.length; i++) out[i] = g[i]! + serverLr * (values[i]! / divisor);
      return nextState(state, out, {});
    },
  };
}

/**
 * FedAvg (McMahan et al. 2017): global + η·(Σ wᵢΔᵢ / Σ wᵢ), weights being example counts. Defaults: η = 1.
 * Works on plaintext results or on a SecAgg {@link WeightedSum}.
 * @throws AGG_INVALID_INPUT (at creation) when `serverLr` is not a finite number > 0.
 * @throws AGG_EMPTY / AGG_INVALID_INPUT from `aggregate`, as {@link weightedMean}, and for a state of another
 *   strategy or of another length; AGG_INVALID_INPUT also when the new model overflows float32.
 */
export function fedAvg(options: FedAvgOptions = {}): Strategy {
  return averaging('fedavg', options);
}

/** Options of {@link fedProx}. */
export interface FedProxOptions extends FedAvgOptions {
  /** The proximal coefficient μ ≥ 0 that clients use in {@link proximalTerm} (Flower's `proximal_mu`, required). */
  readonly mu: number;
}

/**
 * FedProx (Li et al. 2020). The server side is exactly FedAvg; the algorithm lives on the clients, which add the
 * proximal gradient {@link proximalTerm} with the returned `mu` to every local step. The coordinator sends `mu` to the
 * participants as a training option.
 * @throws AGG_INVALID_INPUT (at creation) when `mu` is not a finite number ≥ 0 or `serverLr` not one > 0.
 * @throws as {@link fedAvg} from `aggregate`.
 */
export function fedProx(options: FedProxOptions): Strategy & { readonly mu: number } {
  checkRange('mu', options.mu, 0, Number.POSITIVE_INFINITY, true);
  return { ...averaging('fedprox', options), mu: options.mu };
}

/**
 * FedProx's client-side term: the gradient of (μ/2)·‖w − w_global‖², i.e. μ·(w − w_global), which the participant's
 * training adds to its loss gradient at every local step. Pure: returns a new array.
 * @throws AGG_INVALID_INPUT when `mu` is not a finite number ≥ 0, the arrays are not Float32Arrays of one length,
 *   or the result is not finite (a diverged local model).
 */
export function proximalTerm(mu: number, local: Float32Array, global: Float32Array): Float32Array {
  checkRange('mu', mu, 0, Number.POSITIVE_INFINITY, true);
  if (!(local instanceof Float32Array))
    throw invalid(`expected local to be a Float32Array, got ${shown(local)}`);
  if (!(global instanceof Float32Array) || global.length !== local.length) {
    throw invalid(
      `expected global to be a Float32Array of ${local.length} values (as local), got ${
        global instanceof Float32Array ? `${global.length} values` : shown(global)
      }`,
    );
  }
  const out = new Float32Array(local.length);
  for (let i = 0; i < local.length; i++) out[i] = mu * (local[i]! - global[i]!);
  const bad = firstNonFinite(out);
  if (bad >= 0)
    throw invalid(`expected finite parameters, got ${out[bad]} in the proximal term at index ${bad}`);
  return out;
}

/** Options of {@link fedAvgM}. */
export interface FedAvgMOptions {
  /** Server learning rate η > 0. Default 1 (Flower's default). */
  readonly serverLr?: number;
  /**
   * Server momentum β in [0, 1). Default 0.9, the value Hsu et al. 2019 use most; Flower defaults to 0, which makes
   * FedAvgM plain FedAvg.
   */
  readonly momentum?: number;
}

/**
 * FedAvgM (Hsu et al. 2019; Flower's FedAvgM, no Nesterov): v ← β·v + Δ̄ (v₀ = 0), global ← global + η·v, where Δ̄ is
 * the weighted mean delta. Defaults: η = 1, β = 0.9. The state carries `momentum` (v).
 * @throws AGG_INVALID_INPUT (at creation) for `serverLr` not > 0 or `momentum` outside [0, 1).
 * @throws as {@link fedAvg} from `aggregate`.
 */
export function fedAvgM(options: FedAvgMOptions = {}): Strategy {
  const serverLr = options.serverLr ?? 1;
  const momentum = options.momentum ?? 0.9;
  positive('serverLr', serverLr);
  checkRange('momentum', momentum, 0, 1, true);
  const name = 'fedavgm';
  return {
    name,
    needsPlaintextUpdates: false,
    init: (global) => initState(name, global, ['momentum']),
    aggregate(state, input) {
      const g = checkState(state, name, ['momentum']);
      const { values, divisor } = meanDelta(input, g.length);
      const v0 = state.buffers.momentum!;
      const v = new Float64Array(g.length);
      const out = new Float32Array(g.length);
      for (let i = 0; i < g.length; i++) {
        v[i] = momentum * v0[i]! + values[i]! / divisor;
        out[i] = g[i]! + serverLr * v[i]!;
      }
      return nextState(state, out, { momentum: v });
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// FedOpt: FedAdagrad, FedAdam, FedYogi (Reddi et al. 2021, Algorithm 2)

/** Options of the adaptive server optimisers; every field optional, defaults per strategy (see each one). */
export interface FedOptOptions {
  /** Server learning rate η > 0. */
  readonly eta?: number;
  /** First-moment decay β₁ in [0, 1). */
  readonly beta1?: number;
  /** Second-moment decay β₂ in [0, 1); unused by FedAdagrad. */
  readonly beta2?: number;
  /** Adaptivity τ > 0, added to √v in the denominator. */
  readonly tau?: number;
}

type SecondMoment = (v: number, d2: number, beta2: number) => number;

function fedOpt(
  name: string,
  defaults: Required<FedOptOptions>,
  options: FedOptOptions,
  second: SecondMoment,
) {
  const eta = options.eta ?? defaults.eta;
  const beta1 = options.beta1 ?? defaults.beta1;
  const beta2 = options.beta2 ?? defaults.beta2;
  const tau = options.tau ?? defaults.tau;
  positive('eta', eta);
  checkRange('beta1', beta1, 0, 1, true);
  checkRange('beta2', beta2, 0, 1, true);
  positive('tau', tau);
  const strategy: Strategy = {
    name,
    needsPlaintextUpdates: false,
    init: (global) => initState(name, global, ['m', 'v']),
    aggregate(state, input) {
      const g = checkState(state, name, ['m', 'v']);
      const { values, divisor } = meanDelta(input, g.length);
      const m0 = state.buffers.m!;
      const v0 = state.buffers.v!;
      const m = new Float64Array(g.length);
      const v = new Float64Array(g.length);
      const out = new Float32Array(g.length);
      for (let i = 0; i < g.length; i++) {
        const d = values[i]! / divisor;
        m[i] = beta1 * m0[i]! + (1 - beta1) * d;
        v[i] = second(v0[i]!, d * d, beta2);
        out[i] = g[i]! + (eta * m[i]!) / (Math.sqrt(v[i]!) + tau);
      }
      return nextState(state, out, { m, v });
    },
  };
  return strategy;
}

/**
 * FedAdagrad (Reddi et al. 2021, Algorithm 2): m ← β₁m + (1−β₁)Δ̄, v ← v + Δ̄², global ← global + η·m/(√v + τ), with
 * m₀ = v₀ = 0 as in Flower. Defaults are Flower's: η = 0.1, τ = 1e-9, β₁ = 0 (Flower fixes β₁ = 0 for FedAdagrad;
 * the paper allows any β₁, so it is an option here). `beta2` is ignored. The state carries `m` and `v`.
 * @throws AGG_INVALID_INPUT (at creation) for η or τ not > 0, or β₁, β₂ outside [0, 1).
 * @throws as {@link fedAvg} from `aggregate`.
 */
export function fedAdagrad(options: FedOptOptions = {}): Strategy {
  const defaults = { eta: 0.1, beta1: 0, beta2: 0, tau: 1e-9 };
  return fedOpt('fedadagrad', defaults, options, (v, d2) => v + d2);
}

/**
 * FedAdam (Reddi et al. 2021, Algorithm 2): m ← β₁m + (1−β₁)Δ̄, v ← β₂v + (1−β₂)Δ̄², global ← global + η·m/(√v + τ),
 * with m₀ = v₀ = 0. Defaults are Flower's: η = 0.1, β₁ = 0.9, β₂ = 0.99, τ = 1e-9. Unlike recent Flower, no Adam
 * bias correction of η (the paper has none). The state carries `m` and `v`.
 * @throws AGG_INVALID_INPUT (at creation) for η or τ not > 0, or β₁, β₂ outside [0, 1).
 * @throws as {@link fedAvg} from `aggregate`.
 */
export function fedAdam(options: FedOptOptions = {}): Strategy {
  const defaults = { eta: 0.1, beta1: 0.9, beta2: 0.99, tau: 1e-9 };
  return fedOpt('fedadam', defaults, options, (v, d2, beta2) => beta2 * v + (1 - beta2) * d2);
}

/**
 * FedYogi (Reddi et al. 2021, Algorithm 2): m ← β₁m + (1−β₁)Δ̄, v ← v − (1−β₂)·Δ̄²·sign(v − Δ̄²),
 * global ← global + η·m/(√v + τ), with m₀ = v₀ = 0 and sign(0) = 0 as in Flower. Defaults are Flower's FedYogi ones:
 * η = 0.01, β₁ = 0.9, β₂ = 0.99, τ = 1e-3. The state carries `m` and `v`.
 * @throws AGG_INVALID_INPUT (at creation) for η or τ not > 0, or β₁, β₂ outside [0, 1).
 * @throws as {@link fedAvg} from `aggregate`.
 */
export function fedYogi(options: FedOptOptions = {}): Strategy {
  const defaults = { eta: 0.01, beta1: 0.9, beta2: 0.99, tau: 1e-3 };
  return fedOpt('fedyogi', defaults, options, (v, d2, beta2) => v - (1 - beta2) * d2 * Math.sign(v - d2));
}

// ---------------------------------------------------------------------------------------------------------------
// Wrappers

/** Options of {@link withNormClipping}. */
export interface NormClippingOptions {
  /** Largest L2 norm an update may keep; longer ones are scaled down to it. */
  readonly maxNorm: number;
}

/**
 * Wraps `strategy` so that every update whose L2 norm exceeds `maxNorm` is scaled down to norm `maxNorm` (its
 * direction kept) before the wrapped strategy aggregates; inputs are not modified. The result's `report` gains
 * `clipped`, the number of updates that were scaled. The state is the wrapped strategy's.
 *
 * Clipping on the server needs each update, so the wrapper has `needsPlaintextUpdates: true`. Under SecAgg clip on
 * the participants instead ({@link clipToNorm} before masking) and aggregate with the bare strategy.
 * @throws AGG_INVALID_INPUT (at creation) when `maxNorm` is not a finite number > 0.
 * @throws AGG_REFUSED_UNDER_SECAGG from `aggregate` when given a {@link WeightedSum} instead of the updates.
 * @throws everything the wrapped strategy throws; invalid updates are reported as given, before clipping.
 */
export function withNormClipping(strategy: Strategy, options: NormClippingOptions): Strategy {
  const { maxNorm } = options;
  positive('maxNorm', maxNorm);
  return {
    name: `${strategy.name}+clip`,
    needsPlaintextUpdates: true,
    init: (global) => strategy.init(global),
    aggregate(state, input) {
      if (isWeightedSum(input)) {
        throw new AggregationError(
          'AGG_REFUSED_UNDER_SECAGG',
          `expected individual updates to clip to norm ${maxNorm}, got only their secure sum: clip on the participants`,
        );
      }
      const length = state?.global instanceof Float32Array ? state.global.length : undefined;
      checkResults(input, length);
      let count = 0;
      const clippedResults = input.map(({ update, weight }) => {
        const c = clipped(update, maxNorm);
        if (c !== undefined) count++;
        // Unclipped updates pass by reference: the wrapped strategy does not modify them.
        return { update: c ?? update, weight };
      });
      const result = strategy.aggregate(state, clippedResults);
      return { ...result, report: { ...result.report, clipped: count } };
    },
  };
}
