import { createRdpAccountant, privacySpent } from '../aggregation/index.ts';
import type { Manifest } from './manifest.ts';
import type { TaskSpec } from './spec.ts';

export type DpSettings = NonNullable<TaskSpec['dp']>;

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

/** Whether the task may run round `round` (0-based) without ε going over its budget. */
export function withinBudget(spec: TaskSpec, round: number): boolean {
  return spec.dp === null || epsilonAfter(spec.dp, round + 1) <= spec.dp.epsilonBudget;
}

/** What the manifest of round `round` (0-based) states about privacy: the mechanism and ε spent up to and with it. */
export function privacyRecord(spec: TaskSpec, round: number): Manifest['privacy'] {
  if (spec.dp === null) return { mechanism: 'none', epsilonSpent: null, delta: null };
  return { mechanism: 'gaussian', epsilonSpent: epsilonAfter(spec.dp, round + 1), delta: spec.dp.delta };
}
