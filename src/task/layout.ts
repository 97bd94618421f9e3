import type { TabularSchema } from './data-schema.ts';
import { EVALUATION_WORDS } from './evaluation.ts';
import type { TaskSpec } from './spec.ts';
import { statisticsLength } from './statistics.ts';

/**
 * What a masked vector carries, by the kind of round. Everything a task learns from its organisations goes through
 * the one secure sum, so each kind is a layout of the same Uint32 vector:
 *
 * - `statistics` (once, before round 0, when the data schema needs federated statistics): the statistics words.
 * - `train`: the quantized update (one word per parameter), its weight word, then — when organisations hold rows
 *   out — the evaluation words of the model the round started from.
 * - `evaluation` (once, after the last training round, when organisations hold rows out): the evaluation words of
 *   the final model.
 */
export type RoundKind = 'statistics' | 'train' | 'evaluation';

export interface VectorLayout {
  readonly kind: RoundKind;
  /** Words of the quantized update (0 outside training rounds). */
  readonly update: number;
  /** 1 in training rounds: the weight word follows the update. */
  readonly weight: 0 | 1;
  /** Words of the start model's evaluation, after the update and weight (0 when nothing is held out). */
  readonly evaluation: number;
  /** Words of the federated statistics (statistics rounds only). */
  readonly statistics: number;
  /** The whole vector. */
  readonly dimension: number;
}

/** Whether the task's organisations hold rows out, and so score every model. */
export const evaluatesClientSide = (spec: TaskSpec): boolean => spec.data.holdout > 0;

export function vectorLayout(spec: TaskSpec, kind: RoundKind): VectorLayout {
  const update = kind === 'train' ? spec.model.parameters : 0;
  const weight = kind === 'train' ? 1 : 0;
  const evaluation = kind !== 'statistics' && evaluatesClientSide(spec) ? EVALUATION_WORDS : 0;
  const statistics = kind === 'statistics' ? statisticsLength(spec.data as TabularSchema) : 0;
  return {
    kind,
    update,
    weight,
    evaluation,
    statistics,
    dimension: update + weight + evaluation + statistics,
  };
}
