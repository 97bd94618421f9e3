/**
 * Byzantine-robust aggregators for tasks WITHOUT secure aggregation: Krum and Multi-Krum (Blanchard et al. 2017),
 * coordinate-wise median and trimmed mean (Yin et al. 2018), and Bulyan (El Mhamdi et al. 2018).
 *
 * Every one of them needs each client's plaintext update, which SecAgg exists to hide: under SecAgg the server sees
 * only the sum. Flower silently degrades these strategies to no-ops there; we refuse instead (DESIGN §6), both in the
 * task-level guard `assertPlaintextAllowed` and inside every aggregator (`secureAggregation` option), so that a
 * misconfigured task fails closed rather than training with no protection.
 *
 * Example counts (`weight`) are validated but ignored on purpose: a byzantine client can claim any count, and the
 * robustness guarantees of these rules are stated for unweighted inputs. (Flower's MultiKrum weights the kept updates
 * by example count; we follow the paper's unweighted average.)
 *
 * Arithmetic runs in Float64 (distances, sums, medians); results are rounded once to Float32. Every rule is
 * deterministic: ties are broken by the lowest client index, or, in Bulyan's coordinate step, towards the smaller value.
 * Pure code: no I/O, no clock, no randomness, no imports from outside src/aggregation (DESIGN §2); the only import
 * besides the errors is the Strategy shape from ./strategies.ts, type-only.
 */
import { AggregationError } from './errors.ts';
import type { AggregateInput, AggregateResult, ClientResult, Strategy, StrategyState } from './strategies.ts';

/** Every robust aggregator takes this; `true` (or anything but `false`/absent) makes it refuse to run. */
export interface SecureAggregationOption {
  readonly secureAggregation?: boolean;
}

export interface KrumOptions extends SecureAggregationOption {
  /** The number of byzantine updates to tolerate (a non-negative integer). */
  readonly f: number;
}

export interface MultiKrumOptions extends KrumOptions {
  /** How many of the best-scored updates to average (1 ≤ m ≤ n − f). */
  readonly m: number;
}

export interface TrimmedMeanOptions extends SecureAggregationOption {
  /** The fraction trimmed from each end per coordinate, in [0, 0.5): ⌊beta·n⌋ values are dropped on each side. */
  readonly beta: number;
}

export interface BulyanOptions extends SecureAggregationOption {
  /** The number of byzantine updates to tolerate (a non-negative integer). */
  readonly f: number;
}

/** Krum's choice: a copy of the chosen update and its index in the input. */
export interface KrumResult {
  readonly update: Float32Array;
  readonly index: number;
}

/** The aggregate and the indices of the updates that were selected, in the order they were selected. */
export interface SelectionResult {
  readonly update: Float32Array;
  readonly indices: readonly number[];
}

/** The display names used in messages and reports. */
export const ROBUST_AGGREGATOR_NAMES = {
  krum: 'Krum',
  'multi-krum': 'Multi-Krum',
  'coordinate-median': 'coordinate median',
  'trimmed-mean': 'trimmed mean',
  bulyan: 'Bulyan',
} as const;

export type RobustAggregatorKind = keyof typeof ROBUST_AGGREGATOR_NAMES;

/** Which robust aggregator a task uses, with its parameters (plain data, so it can live in a task config). */
export type RobustAggregatorSpec =
  | { readonly kind: 'krum'; readonly f: number }
  | { readonly kind: 'multi-krum'; readonly f: number; readonly m: number }
  | { readonly kind: 'coordinate-median' }
  | { readonly kind: 'trimmed-mean'; readonly beta: number }
  | { readonly kind: 'bulyan'; readonly f: number };

/** The task facts a robust aggregator needs to know before it may see updates. */
export interface PlaintextContext {
  readonly secureAggregation: boolean;
}

/**
 * A robust aggregator as a {@link Strategy}: global' = global + robust aggregate of the deltas. Its `name` is the
 * aggregator's kind (`'krum'`, `'multi-krum'`, `'coordinate-median'`, `'trimmed-mean'`, `'bulyan'`).
 */
export interface RobustStrategy extends Strategy {
  readonly kind: RobustAggregatorKind;
  /** The aggregator's display name, as used in messages (`'Krum'`, `'coordinate median'`, …). */
  readonly displayName: string;
  readonly spec: RobustAggregatorSpec;
  /** Always true: the coordinator must not combine this strategy with secure aggregation. */
  readonly needsPlaintextUpdates: true;
  /** Throws AGG_REFUSED_UNDER_SECAGG when the task uses secure aggregation (call it when the task is created). */
  assertAllowed(task: PlaintextContext): void;
}

/**
 * Refuses a robust aggregator (or any strategy with `needsPlaintextUpdates`) for a task that uses secure
 * aggregation. Fails closed: only an explicit `secureAggregation: false` lets it pass.
 *
 * @throws AggregationError AGG_REFUSED_UNDER_SECAGG when `task.secureAggregation` is not `false`.
 */
export function assertPlaintextAllowed(aggregatorName: string, task: PlaintextContext): void {
  if (task?.secureAggregation !== false) {
    // Accept a strategy's kind (`robustStrategy(...).name`) as well as a display name.
    const known = Object.hasOwn(ROBUST_AGGREGATOR_NAMES, aggregatorName)
      ? ROBUST_AGGREGATOR_NAMES[aggregatorName as RobustAggregatorKind]
      : aggregatorName;
    throw refusal(known);
  }
}

/**
 * Krum (Blanchard et al. 2017): each update's score is the sum of squared distances to its n − f − 2 closest other
 * updates; the update with the lowest score wins, the lowest index on a tie.
 *
 * @returns a copy of the chosen update and its index.
 * @throws AggregationError AGG_REFUSED_UNDER_SECAGG under secure aggregation; AGG_INVALID_INPUT for a bad `f` or a
 *   malformed update or weight; AGG_EMPTY for no updates; AGG_TOO_FEW_UPDATES unless n > 2f + 2.
 */
export function krum(updates: readonly ClientResult[], options: KrumOptions): KrumResult {
  const name = ROBUST_AGGREGATOR_NAMES.krum;
  refuseUnderSecAgg(name, options);
  const f = checkF(name, options.f);
  const { vectors, n, d } = checkUpdates(name, updates);
  requireKrumCount(name, n, f);
  const distances = pairwiseSquaredDistances(vectors, d);
  const index = krumSelect(distances, n, allIndices(n), f);
  return { update: Float32Array.from(vectors[index]!), index };
}

/**
 * Multi-Krum (Blanchard et al. 2017): scores every update once as Krum does, keeps the m best-scored ones (lowest
 * index on a tie) and returns their unweighted average. m = 1 is Krum; m = n − f is the usual choice.
 * Flower's `aggregate_krum(num_to_keep)` selects the same way but weights the average by example counts; we do not.
 *
 * @returns the average and the kept indices, best score first.
 * @throws AggregationError AGG_REFUSED_UNDER_SECAGG under secure aggregation; AGG_INVALID_INPUT for a bad `f` or `m`
 *   or a malformed update or weight; AGG_EMPTY for no updates; AGG_TOO_FEW_UPDATES unless n > 2f + 2 and n ≥ m + f.
 */
export function multiKrum(updates: readonly ClientResult[], options: MultiKrumOptions): SelectionResult {
  const name = ROBUST_AGGREGATOR_NAMES['multi-krum'];
  refuseUnderSecAgg(name, options);
  const f = checkF(name, options.f);
  const m = checkM(name, options.m);
  const { vectors, n, d } = checkUpdates(name, updates);
  requireKrumCount(name, n, f);
  if (m > n - f) {
    // More than n − f kept means at least one update the rule tolerates as byzantine could be averaged in.
    throw new AggregationError(
      'AGG_TOO_FEW_UPDATES',
      `${name} keeping m = ${m} with f = ${f} expects at least m + f = ${m + f} updates, got ${n}`,
      { aggregator: name, m, f, n },
    );
  }
  const distances = pairwiseSquaredDistances(vectors, d);
  const candidates = allIndices(n);
  const scores = krumScores(distances, n, candidates, f);
  const indices = candidates
    .slice()
    .sort((a, b) => scores[a]! - scores[b]! || a - b)
    .slice(0, m);
  return { update: meanOf(vectors, indices, d), indices };
}

/**
 * Coordinate-wise median: for each coordinate the median of the n values (the mean of the two middle ones when n is
 * even). Stays within the honest values' range per coordinate as long as fewer than half the updates are byzantine.
 *
 * @throws AggregationError AGG_REFUSED_UNDER_SECAGG under secure aggregation; AGG_INVALID_INPUT for a malformed update
 *   or weight; AGG_EMPTY for no updates.
 */
export function coordinateMedian(
  updates: readonly ClientResult[],
  options: SecureAggregationOption = {},
): Float32Array {
  const name = ROBUST_AGGREGATOR_NAMES['coordinate-median'];
  refuseUnderSecAgg(name, options);
  const { vectors, n, d } = checkUpdates(name, updates);
  const column = new Float64Array(n);
  const out = new Float32Array(d);
  for (let k = 0; k < d; k++) {
    for (let i = 0; i < n; i++) column[i] = vectors[i]![k]!;
    column.sort();
    out[k] = medianOfSorted(column);
  }
  return out;
}

/**
 * Coordinate-wise trimmed mean: for each coordinate drop the ⌊beta·n⌋ smallest and the ⌊beta·n⌋ largest values and
 * average the rest. With ⌊beta·n⌋ ≥ f it stays within the honest values' range per coordinate. Note that a small n
 * can make ⌊beta·n⌋ = 0, which is a plain mean.
 *
 * @throws AggregationError AGG_REFUSED_UNDER_SECAGG under secure aggregation; AGG_INVALID_INPUT unless 0 ≤ beta < 0.5,
 *   or for a malformed update or weight; AGG_EMPTY for no updates; AGG_TOO_FEW_UPDATES if no value would remain
 *   (a guard only: beta < 0.5 always leaves at least one).
 */
export function trimmedMean(updates: readonly ClientResult[], options: TrimmedMeanOptions): Float32Array {
  const name = ROBUST_AGGREGATOR_NAMES['trimmed-mean'];
  refuseUnderSecAgg(name, options);
  const beta = checkBeta(name, options.beta);
  const { vectors, n, d } = checkUpdates(name, updates);
  const trim = Math.floor(beta * n);
  const kept = n - 2 * trim;
  if (kept < 1) {
    throw new AggregationError(
      'AGG_TOO_FEW_UPDATES',
      `${name} with beta = ${beta} trims ${trim} of ${n} values from each end, expected at least 1 to remain, got ${kept}`,
      { aggregator: name, beta, n },
    );
  }
  const column = new Float64Array(n);
  const out = new Float32Array(d);
  for (let k = 0; k < d; k++) {
    for (let i = 0; i < n; i++) column[i] = vectors[i]![k]!;
    column.sort();
    let sum = 0;
    for (let i = trim; i < n - trim; i++) sum += column[i]!;
    out[k] = sum / kept;
  }
  return out;
}

/**
 * Bulyan (El Mhamdi et al. 2018) over Krum: select θ = n − 2f updates by repeated Krum (each round removes the
 * winner and re-scores the rest with the same f; once fewer than f + 3 remain a score uses the single closest
 * neighbour, as Flower does), then per coordinate average the β = θ − 2f selected values closest to their median
 * (on equal distance the smaller value goes first, so this step does not depend on the order of the updates).
 * The last Krum rounds run on so few updates that colluding byzantine ones can be selected (at most f of the θ);
 * that is by design: the coordinate step drops the 2f values farthest from the median.
 *
 * @returns the aggregate and the θ selected indices in the order Krum picked them.
 * @throws AggregationError AGG_REFUSED_UNDER_SECAGG under secure aggregation; AGG_INVALID_INPUT for a bad `f` or a
 *   malformed update or weight; AGG_EMPTY for no updates; AGG_TOO_FEW_UPDATES unless n ≥ 4f + 3.
 */
export function bulyan(updates: readonly ClientResult[], options: BulyanOptions): SelectionResult {
  const name = ROBUST_AGGREGATOR_NAMES.bulyan;
  refuseUnderSecAgg(name, options);
  const f = checkF(name, options.f);
  const { vectors, n, d } = checkUpdates(name, updates);
  if (n < 4 * f + 3) {
    throw new AggregationError(
      'AGG_TOO_FEW_UPDATES',
      `${name} with f = ${f} expects at least 4f + 3 = ${4 * f + 3} updates, got ${n}`,
      { aggregator: name, f, n },
    );
  }
  const theta = n - 2 * f;
  const beta = theta - 2 * f;
  const distances = pairwiseSquaredDistances(vectors, d);
  let candidates = allIndices(n);
  const indices: number[] = [];
  for (let round = 0; round < theta; round++) {
    const winner = krumSelect(distances, n, candidates, f);
    indices.push(winner);
    candidates = candidates.filter((i) => i !== winner);
  }

  const column = new Float64Array(theta);
  const out = new Float32Array(d);
  for (let k = 0; k < d; k++) {
    for (let j = 0; j < theta; j++) column[j] = vectors[indices[j]!]![k]!;
    column.sort();
    const median = medianOfSorted(column);
    // The β values closest to the median form a contiguous run of the sorted column: grow it outwards from the
    // median, taking the nearer neighbour each time (the lower one on a tie).
    let lo = (theta - 1) >> 1;
    while (lo + 1 < theta && column[lo + 1]! <= median) lo++;
    let hi = lo + 1;
    let sum = 0;
    for (let taken = 0; taken < beta; taken++) {
      if (lo >= 0 && (hi >= theta || median - column[lo]! <= column[hi]! - median)) {
        sum += column[lo--]!;
      } else {
        sum += column[hi++]!;
      }
    }
    out[k] = sum / beta;
  }
  return { update: out, indices };
}

/**
 * The fewest updates the rule can aggregate with its parameters: Krum 2f + 3, Multi-Krum max(2f + 3, m + f),
 * Bulyan 4f + 3, the median and the trimmed mean 1 (beta < 0.5 always leaves a value). A task whose cohort may
 * shrink below this would fail its rounds with AGG_TOO_FEW_UPDATES, so it is refused when it is declared instead.
 */
export function minimumUpdates(spec: RobustAggregatorSpec): number {
  switch (spec.kind) {
    case 'krum':
      return 2 * spec.f + 3;
    case 'multi-krum':
      return Math.max(2 * spec.f + 3, spec.m + spec.f);
    case 'bulyan':
      return 4 * spec.f + 3;
    case 'coordinate-median':
    case 'trimmed-mean':
      return 1;
  }
}

/**
 * Wraps a robust aggregator as a {@link Strategy}: `aggregate(state, results)` returns global + the robust aggregate
 * of the deltas (no server learning rate: wrap it if needed). The parameters are checked here, once, so a bad task
 * config fails when the task is created rather than at its first round. The strategy fails closed twice over:
 * `assertAllowed(task)` refuses a SecAgg task up front, and `aggregate` refuses a weighted sum (`WeightedSum`),
 * which is all that secure aggregation can hand it. Its report says how many updates the rule kept whole (`kept`,
 * selection rules only); the indices themselves come from the functions this wraps.
 *
 * @throws AggregationError AGG_INVALID_INPUT (at creation) for an unknown kind or a bad `f`, `m` or `beta`.
 * @throws AggregationError from `aggregate`: AGG_REFUSED_UNDER_SECAGG for a weighted sum instead of the results;
 *   AGG_INVALID_INPUT for a state of another strategy, updates of another length than the global model, or a new
 *   model that overflows float32; otherwise as the wrapped function (AGG_EMPTY, AGG_INVALID_INPUT,
 *   AGG_TOO_FEW_UPDATES).
 */
export function robustStrategy(spec: RobustAggregatorSpec): RobustStrategy {
  const kind = spec?.kind;
  if (typeof kind !== 'string' || !Object.hasOwn(ROBUST_AGGREGATOR_NAMES, kind)) {
    throw new AggregationError(
      'AGG_INVALID_INPUT',
      `expected a robust aggregator kind (${Object.keys(ROBUST_AGGREGATOR_NAMES).join(', ')}), got ${String(kind)}`,
    );
  }
  const displayName = ROBUST_AGGREGATOR_NAMES[kind];
  let frozenSpec: RobustAggregatorSpec;
  let run: (updates: readonly ClientResult[]) => { update: Float32Array; kept: number | undefined };
  switch (spec.kind) {
    case 'krum': {
      const f = checkF(displayName, spec.f);
      frozenSpec = Object.freeze({ kind: spec.kind, f });
      run = (updates) => ({ update: krum(updates, { f }).update, kept: 1 });
      break;
    }
    case 'multi-krum': {
      const f = checkF(displayName, spec.f);
      const m = checkM(displayName, spec.m);
      frozenSpec = Object.freeze({ kind: spec.kind, f, m });
      run = (updates) => ({ update: multiKrum(updates, { f, m }).update, kept: m });
      break;
    }
    case 'coordinate-median':
      frozenSpec = Object.freeze({ kind: spec.kind });
      run = (updates) => ({ update: coordinateMedian(updates), kept: undefined });
      break;
    case 'trimmed-mean': {
      const beta = checkBeta(displayName, spec.beta);
      frozenSpec = Object.freeze({ kind: spec.kind, beta });
      run = (updates) => ({ update: trimmedMean(updates, { beta }), kept: undefined });
      break;
    }
    case 'bulyan': {
      const f = checkF(displayName, spec.f);
      frozenSpec = Object.freeze({ kind: spec.kind, f });
      run = (updates) => {
        const result = bulyan(updates, { f });
        return { update: result.update, kept: result.indices.length };
      };
      break;
    }
  }
  const name: string = kind;

  function checkState(state: StrategyState): Float32Array {
    if (typeof state !== 'object' || state === null || state.strategy !== name) {
      throw new AggregationError(
        'AGG_INVALID_INPUT',
        `expected a state of strategy ${name}, got ${state === null || typeof state !== 'object' ? describe(state) : `one of ${String(state.strategy)}`}`,
      );
    }
    const global = state.global;
    if (!(global instanceof Float32Array) || global.length === 0) {
      throw new AggregationError(
        'AGG_INVALID_INPUT',
        `expected the state's global model to be a non-empty Float32Array, got ${describe(global)}`,
      );
    }
    return global;
  }

  return Object.freeze({
    name,
    kind,
    displayName,
    spec: frozenSpec,
    needsPlaintextUpdates: true as const,
    assertAllowed(task: PlaintextContext): void {
      assertPlaintextAllowed(displayName, task);
    },
    init(global: Float32Array): StrategyState {
      if (!(global instanceof Float32Array) || global.length === 0) {
        throw new AggregationError(
          'AGG_INVALID_INPUT',
          `expected the global model to be a non-empty Float32Array, got ${describe(global)}`,
        );
      }
      const bad = global.findIndex((x) => !Number.isFinite(x));
      if (bad >= 0) {
        throw new AggregationError(
          'AGG_INVALID_INPUT',
          `expected finite values in the global model, got ${global[bad]} at index ${bad}`,
        );
      }
      return { strategy: name, round: 0, global: global.slice(), buffers: {} };
    },
    aggregate(state: StrategyState, input: AggregateInput): AggregateResult {
      if (!Array.isArray(input)) {
        // Secure aggregation hands a strategy only the weighted sum: a robust rule has nothing it could work on.
        if (typeof input === 'object' && input !== null && 'sum' in input) throw refusal(displayName);
        throw new AggregationError(
          'AGG_INVALID_INPUT',
          `${displayName} expected an array of client results, got ${describe(input)}`,
        );
      }
      const global = checkState(state);
      const results = input as readonly ClientResult[];
      const first = results[0]?.update;
      if (first instanceof Float32Array && first.length !== global.length) {
        throw new AggregationError(
          'AGG_INVALID_INPUT',
          `${displayName} expected update 0 to have ${global.length} coordinates like the global model, got ${first.length}`,
        );
      }
      const { update, kept } = run(results);
      const next = new Float32Array(global.length);
      for (let k = 0; k < global.length; k++) {
        next[k] = global[k]! + update[k]!;
        if (!Number.isFinite(next[k]!)) {
          throw new AggregationError(
            'AGG_INVALID_INPUT',
            `expected a finite new global model, got ${next[k]} at index ${k} (float32 overflow)`,
          );
        }
      }
      return {
        global: next,
        state: { strategy: name, round: state.round + 1, global: next.slice(), buffers: {} },
        ...(kept === undefined ? {} : { report: { kept } }),
      };
    },
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Validation

function refusal(aggregatorName: string): AggregationError {
  return new AggregationError(
    'AGG_REFUSED_UNDER_SECAGG',
    `${aggregatorName} needs each client's plaintext update, but this task uses secure aggregation, which reveals ` +
      'only the sum; choose a FedAvg-family strategy or disable secure aggregation',
    { aggregator: aggregatorName },
  );
}

function refuseUnderSecAgg(aggregatorName: string, options: SecureAggregationOption | undefined): void {
  // Fail closed: anything other than an explicit false or an absent flag counts as "secure aggregation on".
  const flag = options?.secureAggregation;
  if (flag !== undefined && flag !== false) throw refusal(aggregatorName);
}

function checkF(aggregatorName: string, f: unknown): number {
  if (typeof f !== 'number' || !Number.isSafeInteger(f) || f < 0) {
    throw new AggregationError(
      'AGG_INVALID_INPUT',
      `${aggregatorName} expected f (the number of byzantine updates tolerated) to be a non-negative integer, got ${String(f)}`,
      { aggregator: aggregatorName },
    );
  }
  return f;
}

function checkM(aggregatorName: string, m: unknown): number {
  if (typeof m !== 'number' || !Number.isSafeInteger(m) || m < 1) {
    throw new AggregationError(
      'AGG_INVALID_INPUT',
      `${aggregatorName} expected m (the number of updates to keep) to be an integer ≥ 1, got ${String(m)}`,
      { aggregator: aggregatorName },
    );
  }
  return m;
}

function checkBeta(aggregatorName: string, beta: unknown): number {
  if (typeof beta !== 'number' || !(beta >= 0 && beta < 0.5)) {
    throw new AggregationError(
      'AGG_INVALID_INPUT',
      `${aggregatorName} expected beta (the fraction trimmed from each end) in [0, 0.5), got ${String(beta)}`,
      { aggregator: aggregatorName },
    );
  }
  return beta;
}

function requireKrumCount(aggregatorName: string, n: number, f: number): void {
  if (n <= 2 * f + 2) {
    throw new AggregationError(
      'AGG_TOO_FEW_UPDATES',
      `${aggregatorName} with f = ${f} expects more than 2f + 2 = ${2 * f + 2} updates, got ${n}`,
      { aggregator: aggregatorName, f, n },
    );
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'object') return value.constructor?.name ?? 'an object';
  return typeof value;
}

interface CheckedUpdates {
  readonly vectors: readonly Float32Array[];
  readonly n: number;
  readonly d: number;
}

function checkUpdates(aggregatorName: string, updates: readonly ClientResult[]): CheckedUpdates {
  if (!Array.isArray(updates)) {
    throw new AggregationError(
      'AGG_INVALID_INPUT',
      `${aggregatorName} expected an array of client updates, got ${describe(updates)}`,
    );
  }
  const n = updates.length;
  if (n === 0) {
    throw new AggregationError('AGG_EMPTY', `${aggregatorName} expected at least 1 client update, got 0`);
  }
  const vectors: Float32Array[] = [];
  let d = 0;
  for (let i = 0; i < n; i++) {
    const entry: unknown = updates[i];
    if (entry === null || typeof entry !== 'object') {
      throw new AggregationError(
        'AGG_INVALID_INPUT',
        `${aggregatorName} expected client update ${i} to be an object { update, weight }, got ${describe(entry)}`,
      );
    }
    const { update, weight } = entry as { update?: unknown; weight?: unknown };
    if (!(update instanceof Float32Array)) {
      throw new AggregationError(
        'AGG_INVALID_INPUT',
        `${aggregatorName} expected update ${i} to be a Float32Array, got ${describe(update)}`,
      );
    }
    if (i === 0) {
      d = update.length;
      if (d === 0) {
        throw new AggregationError(
          'AGG_INVALID_INPUT',
          `${aggregatorName} expected update 0 to have at least 1 coordinate, got 0`,
        );
      }
    } else if (update.length !== d) {
      throw new AggregationError(
        'AGG_INVALID_INPUT',
        `${aggregatorName} expected update ${i} to have ${d} coordinates like update 0, got ${update.length}`,
      );
    }
    for (let k = 0; k < d; k++) {
      const x = update[k]!;
      if (!Number.isFinite(x)) {
        throw new AggregationError(
          'AGG_INVALID_INPUT',
          `${aggregatorName} expected finite coordinates, got ${x} at coordinate ${k} of update ${i}`,
        );
      }
    }
    if (typeof weight !== 'number' || !Number.isFinite(weight) || weight <= 0) {
      throw new AggregationError(
        'AGG_INVALID_INPUT',
        `${aggregatorName} expected the weight of update ${i} to be a finite number > 0, got ${String(weight)}`,
      );
    }
    vectors.push(update);
  }
  return { vectors, n, d };
}

// ---------------------------------------------------------------------------------------------------------------
// Math

function allIndices(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/** The n×n matrix (row-major) of squared Euclidean distances, accumulated in Float64. */
function pairwiseSquaredDistances(vectors: readonly Float32Array[], d: number): Float64Array {
  const n = vectors.length;
  const distances = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const a = vectors[i]!;
    for (let j = i + 1; j < n; j++) {
      const b = vectors[j]!;
      let sum = 0;
      for (let k = 0; k < d; k++) {
        const diff = a[k]! - b[k]!;
        sum += diff * diff;
      }
      distances[i * n + j] = sum;
      distances[j * n + i] = sum;
    }
  }
  return distances;
}

/**
 * Krum scores over a candidate subset: for each candidate, the sum of its squared distances to its
 * max(1, |candidates| − f − 2) closest other candidates. Indexed by client index (entries outside the subset are 0).
 */
function krumScores(
  distances: Float64Array,
  n: number,
  candidates: readonly number[],
  f: number,
): Float64Array {
  const size = candidates.length;
  const neighbours = Math.min(Math.max(1, size - f - 2), size - 1);
  const scores = new Float64Array(n);
  const row = new Float64Array(Math.max(0, size - 1));
  for (const a of candidates) {
    let filled = 0;
    for (const b of candidates) if (b !== a) row[filled++] = distances[a * n + b]!;
    row.sort();
    let score = 0;
    for (let j = 0; j < neighbours; j++) score += row[j]!;
    scores[a] = score;
  }
  return scores;
}

/** The candidate with the lowest Krum score; candidates are in ascending order, so a strict `<` keeps the lowest index. */
function krumSelect(distances: Float64Array, n: number, candidates: readonly number[], f: number): number {
  const scores = krumScores(distances, n, candidates, f);
  let best = candidates[0]!;
  for (const i of candidates) if (scores[i]! < scores[best]!) best = i;
  return best;
}

function meanOf(vectors: readonly Float32Array[], indices: readonly number[], d: number): Float32Array {
  const sum = new Float64Array(d);
  for (const i of indices) {
    const v = vectors[i]!;
    for (let k = 0; k < d; k++) sum[k] = sum[k]! + v[k]!;
  }
  const out = new Float32Array(d);
  for (let k = 0; k < d; k++) out[k] = sum[k]! / indices.length;
  return out;
}

function medianOfSorted(sorted: Float64Array): number {
  const n = sorted.length;
  const mid = n >> 1;
  return n % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
