import { createHash } from 'node:crypto';
import { AilinkError, describeError, hasCode } from '../shared/errors.ts';
import {
  classesOf,
  decodeModelBytes,
  type EvaluationCounts,
  featureShape,
  type Preprocessing,
  PreprocessingSchema,
  parseManifest,
  type TaskSpec,
} from '../task/index.ts';
import type { AuditReport, AuditRound, ClaimedFigure, RoundEvaluation } from './types.ts';

/**
 * Issue 19 §3, accuracy claims checked: `audit verify --eval DATA_SPEC` scores every round's model on the auditor's
 * own data and puts each figure beside what the manifests claim for that model. The auditor's data is not the data
 * the claim was made on, so a difference is a comparison for a reader to weigh, not a finding. What can be checked
 * exactly is the client-side evaluation: the organisations' figure is the sum of their own signed evaluations, which
 * `recomputeAggregates` re-derives from the recompute material with the coordinator's own code (`concludeAttempt` →
 * `decodeEvaluationSum`, example-weighted); a figure that is not that aggregate is an AGGREGATE_MISMATCH finding on
 * the round that records it, and each claim here says whether it was so re-derived.
 *
 * Pure but for the scoring, which the caller passes in (tfjs lives in src/participant, which src/audit must not
 * import): the same inputs always give the same figures.
 */

export interface ClaimsInput {
  /** The task spec the audit verified (its data schema is what the auditor's data must fit). */
  readonly spec: TaskSpec;
  /** The audited rounds: which model each produced, what its manifests claim, what the recompute found. */
  readonly rounds: readonly AuditRound[];
  /** The stored objects the audit fetched, by fid (each round's model among them). */
  readonly objects: ReadonlyMap<string, Uint8Array | Error>;
  /** The auditor's examples as loaded (features and labels), and the data spec they came from (for messages). */
  readonly data: {
    readonly source: string;
    readonly count: number;
    readonly shape: readonly number[];
    readonly labels: ArrayLike<number>;
  };
  /**
   * Scores a model's weights (the canonical flat vector) on the auditor's examples, as a participant scores its
   * held-out rows: examples, examples classified correctly, Σ loss.
   */
  score(weights: Float32Array): Promise<EvaluationCounts>;
}

const sha256Hex = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/**
 * Scores each round's model (once per distinct model: a closing evaluation round's model is the last training
 * round's) and lists every claim made for it. A model that cannot be read or scored is a note on that round, never
 * an exception.
 * @throws DATA_SCHEMA_MISMATCH naming the first round to score and the schema field when the auditor's data does not
 *   fit the task's data schema (example shape, or a label past the declared classes)
 */
export async function evaluateClaims(input: ClaimsInput): Promise<Map<number, RoundEvaluation>> {
  const { spec, rounds, objects } = input;
  checkData(input);
  const scored = new Map<string, Promise<RoundEvaluation['measured'] | string>>();
  const out = new Map<number, RoundEvaluation>();
  for (const [i, r] of rounds.entries()) {
    const claims = claimsOf(rounds, i);
    let measured: RoundEvaluation['measured'] | string;
    if (r.model === null) measured = 'the manifest could not be read, so the model is unknown';
    else {
      const { fid, hash } = r.model;
      let pending = scored.get(hash);
      if (pending === undefined) {
        pending = scoreModel(input, objects.get(fid), hash, spec);
        scored.set(hash, pending);
      }
      measured = await pending;
    }
    const figures = typeof measured === 'string' ? null : measured;
    const withDifference = claims.map((c) => ({ ...c, difference: differenceOf(c, figures) }));
    out.set(r.round, {
      data: input.data.source,
      measured: figures,
      note: typeof measured === 'string' ? measured : null,
      claimed: withDifference[0] ?? null,
      claims: withDifference,
    });
  }
  return out;
}

/**
 * The federated preprocessing the organisations applied (what the auditor's rows must be featurized with to be what
 * the models take), as the newest readable manifest names it and checked against its digest; null when none is named
 * or it cannot be read (the lineage findings say why).
 */
export function preprocessingOf(
  report: AuditReport,
  objects: ReadonlyMap<string, Uint8Array | Error>,
): Preprocessing | null {
  for (const r of [...report.rounds].reverse()) {
    const bytes = objects.get(r.manifest.fid);
    if (!(bytes instanceof Uint8Array) || sha256Hex(bytes) !== r.manifest.digest) continue;
    let ref: { fid: string; digest: string } | null;
    try {
      ref = parseManifest(bytes).preprocessing;
    } catch {
      continue;
    }
    if (ref === null) return null;
    const object = objects.get(ref.fid);
    if (!(object instanceof Uint8Array) || sha256Hex(object) !== ref.digest) return null;
    try {
      const parsed = PreprocessingSchema.safeParse(JSON.parse(new TextDecoder().decode(object)));
      return parsed.success ? parsed.data : null;
    } catch {
      return null;
    }
  }
  return null;
}

/** The report with each round's `eval` filled in from `evaluateClaims`. */
export function withEvaluation(
  report: AuditReport,
  evals: ReadonlyMap<number, RoundEvaluation>,
): AuditReport {
  return { ...report, rounds: report.rounds.map((r) => ({ ...r, eval: evals.get(r.round) ?? null })) };
}

/**
 * The auditor's examples must be what the task's schema makes of a row: the same feature shape, labels among the
 * declared classes. Checked once, before any model is scored (every round's model takes the same input).
 */
function checkData(input: ClaimsInput): void {
  const { spec, data, rounds } = input;
  const first = rounds.find((r) => r.model !== null)?.round ?? 0;
  const schema = spec.data;
  const fail = (field: string, why: string): never => {
    throw new AilinkError(
      'DATA_SCHEMA_MISMATCH',
      `--eval ${data.source} cannot score round ${first}'s model: ${field}: ${why}`,
      { details: { round: first, field } },
    );
  };
  const shapeField = schema.kind === 'images' ? 'data.inputShape' : 'data.columns';
  const classField = schema.kind === 'images' ? 'data.classes' : 'data.label.classes';
  const want = featureShape(schema);
  if (data.shape.join('x') !== want.join('x'))
    fail(
      shapeField,
      `the task's schema makes examples of [${want.join(', ')}], the data holds [${data.shape.join(', ')}]`,
    );
  const classes = classesOf(schema).length;
  for (let k = 0; k < data.labels.length; k++)
    if (!(data.labels[k]! < classes))
      fail(classField, `example ${k} has label ${data.labels[k]}; the task declares ${classes} classes`);
  if (data.count === 0) fail(shapeField, 'the data holds no examples');
}

async function scoreModel(
  input: ClaimsInput,
  bytes: Uint8Array | Error | undefined,
  hash: string,
  spec: TaskSpec,
): Promise<RoundEvaluation['measured'] | string> {
  if (!(bytes instanceof Uint8Array))
    return `the model could not be read: ${bytes?.message ?? 'not fetched'}`;
  if (sha256Hex(bytes) !== hash) return 'the model is not the one the manifest names (MODEL_HASH)';
  let weights: Float32Array;
  try {
    weights = decodeModelBytes(bytes, { model: spec.model.name, parameters: spec.model.parameters }).weights;
  } catch (err) {
    return `the model does not decode: ${describeError(err)}`;
  }
  try {
    const c = await input.score(weights);
    if (c.examples === 0) return 'no example was scored';
    return { accuracy: c.correct / c.examples, loss: c.lossSum / c.examples, examples: c.examples };
  } catch (err) {
    if (hasCode(err, 'ABORTED')) throw err;
    return `scoring failed: ${describeError(err)}`;
  }
}

/**
 * Every figure the manifests claim for round `i`'s model: the coordinator's own test set (recorded with the model),
 * then the organisations' held-out rows (recorded by the round that started from it, or by the closing evaluation
 * round itself). The first is what the model card shows (`modelScores`).
 */
function claimsOf(rounds: readonly AuditRound[], i: number): Omit<ClaimedFigure, 'difference'>[] {
  const r = rounds[i]!;
  const out: Omit<ClaimedFigure, 'difference'>[] = [];
  if (r.kind === 'train' && r.metrics !== null && r.metrics.accuracy !== null)
    out.push({
      by: 'coordinator',
      round: r.round,
      accuracy: r.metrics.accuracy,
      loss: r.metrics.loss,
      examples: r.metrics.testExamples,
      aggregate: null,
      note: "the coordinator's own test set: nothing an auditor can re-derive",
    });
  const scoredBy = r.kind === 'evaluation' ? r : rounds[i + 1];
  if (scoredBy?.evaluation != null) {
    const mismatch = scoredBy.findings.some(
      (f) => f.code === 'AGGREGATE_MISMATCH' && f.where === `round ${scoredBy.round} · evaluation`,
    );
    out.push({
      by: 'organisations',
      round: scoredBy.round,
      accuracy: scoredBy.evaluation.accuracy,
      loss: scoredBy.evaluation.loss,
      examples: scoredBy.evaluation.examples,
      aggregate: mismatch ? false : scoredBy.aggregate_recomputed ? true : null,
      note: mismatch
        ? `not the aggregate of the organisations' recorded evaluations (AGGREGATE_MISMATCH at round ${scoredBy.round} · evaluation)`
        : scoredBy.aggregate_recomputed
          ? "re-derived from the organisations' recorded evaluations"
          : `not re-derived: ${scoredBy.aggregateNote ?? `round ${scoredBy.round} was not recomputed`}`,
    });
  }
  return out;
}

function differenceOf(
  c: Omit<ClaimedFigure, 'difference'>,
  m: RoundEvaluation['measured'],
): ClaimedFigure['difference'] {
  if (m === null) return null;
  return {
    accuracy: c.accuracy === null ? null : m.accuracy - c.accuracy,
    loss: c.loss === null ? null : m.loss - c.loss,
  };
}
