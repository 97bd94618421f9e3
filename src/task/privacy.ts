import {
  addSkellamShare,
  clipToNorm,
  createRdpAccountant,
  encodeWeightedUpdate,
  privacySpent,
  quantizationScale,
  type RandomBytes,
  skellamEpsilon,
  skellamSensitivity,
} from '../aggregation/index.ts';
import { AilinkError } from '../shared/errors.ts';
import type { Manifest } from './manifest.ts';
import { encodingOf, skellamVarianceOf, type TaskSpec } from './spec.ts';

export type DpSettings = NonNullable<TaskSpec['dp']>;
export type DpMechanism = NonNullable<DpSettings['mechanism']>;

/** Who adds a task's noise: a spec without `dp.mechanism` is central (all specs before the field). */
export const dpMechanismOf = (dp: DpSettings): DpMechanism => dp.mechanism ?? 'central-gaussian';

/** Whether the task's organisations each add a share of Skellam noise before masking (distributed DP). */
export const isDistributedDp = (spec: Pick<TaskSpec, 'dp'>): boolean =>
  spec.dp !== null && dpMechanismOf(spec.dp) === 'skellam';

/** Whether the coordinator adds Gaussian noise to the unmasked sum (central DP). */
export const isCentralDp = (spec: Pick<TaskSpec, 'dp'>): boolean =>
  spec.dp !== null && dpMechanismOf(spec.dp) === 'central-gaussian';

/**
 * ε (at the task's δ) after `rounds` anchored rounds of a task with central DP. Each round releases one aggregate:
 * client updates clipped to L2 ≤ C, each counted once, plus Gaussian noise of std z·C — the Gaussian mechanism with
 * noise multiplier z, composed over rounds by the RDP accountant. No amplification by sampling is claimed (q = 1):
 * the cohort is drawn among the participants online, not by Poisson sampling, so only the unamplified bound holds.
 * The coordinator (to stop a task before it overspends), its manifests and auditors all compute ε here.
 */
export function epsilonAfter(dp: DpSettings, rounds: number): number {
  if (rounds === 0) return 0;
  const accountant = createRdpAccountant().step({
    noiseMultiplier: dp.noiseMultiplier,
    samplingRate: 1,
    steps: rounds,
  });
  return privacySpent(accountant, dp.delta).epsilon;
}

/**
 * The Skellam noise variance (in quantization steps²) the sum of a round carries when `survivors` organisations
 * survived: each added 1/cohort.size of the task's variance, and a dropout's share is gone with its update.
 */
export function skellamRoundVariance(spec: TaskSpec, survivors: number): number {
  return (skellamVarianceOf(spec) * survivors) / spec.cohort.size;
}

/**
 * ε (at the task's δ) after training rounds of a task with distributed DP, one entry per round: how many
 * organisations survived it. Round r is the Skellam mechanism (Agarwal et al. 2021, Thm 3.5; see
 * src/aggregation/skellam.ts) on the integer sum with sensitivity C·s + √d (clipping to C, scaling by the quantizer's
 * s, stochastic rounding) and variance survivors·(z·C·s)²/cohort.size; RDP adds up over rounds. No amplification by
 * sampling is claimed, as for central DP.
 * @throws INVALID_INPUT for a survivor count that is not an integer in 1..cohort.size
 */
export function skellamEpsilonAfter(spec: TaskSpec, survivors: readonly number[]): number {
  const dp = spec.dp!;
  for (const s of survivors)
    if (!Number.isInteger(s) || s < 1 || s > spec.cohort.size)
      throw new AilinkError(
        'INVALID_INPUT',
        `expected survivor counts in 1..${spec.cohort.size} (the cohort size), got ${s}`,
      );
  const scale = quantizationScale({
    range: spec.secagg.range * spec.secagg.maxWeight,
    bits: spec.secagg.bits,
  });
  const sensitivity = skellamSensitivity({
    clipNorm: dp.clipNorm,
    scale,
    dimension: spec.model.parameters,
  });
  return skellamEpsilon(
    sensitivity,
    survivors.map((s) => skellamRoundVariance(spec, s)),
    dp.delta,
  );
}

/**
 * ε after training rounds with these survivor counts (one per round, in order), whichever the mechanism: central
 * DP's noise does not depend on who survived, distributed DP's does. 0 without DP.
 */
export function epsilonSpent(spec: TaskSpec, survivors: readonly number[]): number {
  if (spec.dp === null) return 0;
  return isDistributedDp(spec)
    ? skellamEpsilonAfter(spec, survivors)
    : epsilonAfter(spec.dp, survivors.length);
}

/**
 * The ε the task would reach if it ran round `round` (0-based) next: the rounds so far with the survivors they had
 * (missing counts, and the round itself, planned at the worst dropout the task accepts: cohort.min survivors, the
 * least noise a distributed-DP round can carry).
 */
export function projectedEpsilon(spec: TaskSpec, round: number, survivors: readonly number[] = []): number {
  const planned = Array.from({ length: round + 1 }, (_, r) =>
    r < round ? (survivors[r] ?? spec.cohort.min) : spec.cohort.min,
  );
  return epsilonSpent(spec, planned);
}

/**
 * Whether the task may run round `round` (0-based) without ε going over its budget, given the survivors of the
 * rounds before it (see {@link projectedEpsilon}: conservative for distributed DP).
 */
export function withinBudget(spec: TaskSpec, round: number, survivors: readonly number[] = []): boolean {
  return spec.dp === null || projectedEpsilon(spec, round, survivors) <= spec.dp.epsilonBudget;
}

/**
 * What the manifest of round `round` (0-based) states about privacy: the mechanism and ε spent up to and with it.
 * `survivors`: how many survived each training round up to and with `round` (distributed DP needs them; central DP
 * only their number of rounds).
 * @throws INTERNAL when a distributed-DP round's survivor counts are missing
 */
export function privacyRecord(
  spec: TaskSpec,
  round: number,
  survivors?: readonly number[],
): Manifest['privacy'] {
  if (spec.dp === null) return { mechanism: 'none', epsilonSpent: null, delta: null };
  if (!isDistributedDp(spec))
    return { mechanism: 'gaussian', epsilonSpent: epsilonAfter(spec.dp, round + 1), delta: spec.dp.delta };
  if (survivors === undefined || survivors.length !== round + 1)
    throw new AilinkError(
      'INTERNAL',
      `expected the survivor counts of ${round + 1} training rounds to account distributed DP, got ${survivors?.length ?? 'none'} (a bug in the caller)`,
    );
  return { mechanism: 'skellam', epsilonSpent: skellamEpsilonAfter(spec, survivors), delta: spec.dp.delta };
}

/**
 * A training round's update as an organisation feeds it into secure aggregation: [quantize(w·clip(Δ)) ‖ w]. Under DP
 * every update counts once (w = 1) and is clipped to L2 ≤ C, so the sum's sensitivity is C; under distributed DP the
 * organisation then adds its share of Skellam noise, variance (z·C·s)²/cohort.size per coordinate, to the update words
 * (not to the weight word, which only counts the survivors, public anyway) — before masking, so the exact sum carries
 * the noise of every survivor and nobody ever sees it without.
 * `into`: written as the head of that vector (the round's whole vector), not into a new one; `consumeDelta`: the
 * caller no longer needs the delta, which may then be clipped in place. Both spare a vector of the model's size.
 * @throws AGG_INVALID_INPUT (AggregationError) for a non-finite update
 */
export function encodeTrainingUpdate(
  spec: TaskSpec,
  update: { readonly delta: Float32Array; readonly examples: number },
  random: RandomBytes,
  options: { readonly into?: Uint32Array; readonly consumeDelta?: boolean } = {},
): Uint32Array {
  const clipped =
    spec.dp === null
      ? update.delta
      : clipToNorm(update.delta, spec.dp.clipNorm, { inPlace: options.consumeDelta === true });
  const weight = spec.dp === null ? Math.min(update.examples, spec.secagg.maxWeight) : 1;
  const words = encodeWeightedUpdate(clipped, weight, encodingOf(spec), random, options.into);
  if (isDistributedDp(spec))
    addSkellamShare(words, update.delta.length, skellamVarianceOf(spec) / spec.cohort.size, random);
  return words;
}
