import { createHash } from 'node:crypto';
import { decodeModelPackage } from '../../models/index.ts';
import {
  type AuditReport,
  evaluateClaims,
  preprocessingOf,
  type RoundEvaluation,
  withEvaluation,
} from '../audit/index.ts';
import { loadSource, parseDataSpec } from '../participant/dataset.ts';
import type { Examples } from '../participant/examples.ts';
import { loadLocalData } from '../participant/local-data.ts';
import type { TrainingPool } from '../participant/train-pool.ts';
import { AilinkError, hasCode } from '../shared/errors.ts';
import { type DataSchema, type Preprocessing, parseTaskSpec, type TaskSpec } from '../task/index.ts';

/**
 * The shell around `evaluateClaims` for `audit verify --eval DATA_SPEC`: reads the auditor's data with the loaders
 * participants use, and scores models on a training-pool worker (as the coordinator scores its test set), so that the
 * audit's core stays free of files and tfjs.
 */

/**
 * The auditor's examples, as a model of the task takes them. CSV/TSV files and image folders are read against the
 * task's schema exactly as an organisation's are (`loadLocalData`, its partition if the spec names one), every row
 * scored (nothing held out) and featurized with the federated preprocessing the manifests name; IDX sources
 * (fashion-mnist, fashion-mnist-small, idx:DIR) give their test split (t10k), as the coordinator's `--test-data` does.
 * @throws DATA_SCHEMA_MISMATCH naming `round` and the schema field when the data does not fit the schema;
 *   INVALID_INPUT for a malformed data spec; DATA_DECODE_FAILED, DATA_TOO_LARGE as the loaders throw them
 */
export async function loadEvalExamples(
  text: string,
  schema: DataSchema,
  preprocessing: Preprocessing | null,
  round: number,
): Promise<Examples> {
  const spec = parseDataSpec(text);
  const field = schema.kind === 'images' ? 'data' : 'data.columns';
  const mismatch = (why: string) =>
    new AilinkError(
      'DATA_SCHEMA_MISMATCH',
      `--eval ${text} cannot score round ${round}'s model: ${field}: ${why}`,
      {
        details: { round, field },
      },
    );
  const source = spec.source;
  if (source.kind !== 'csv' && source.kind !== 'images') {
    if (schema.kind !== 'images') throw mismatch(`the task takes a table (${schema.kind}), not IDX images`);
    return (await loadSource(source)).test;
  }
  try {
    const local = await loadLocalData(spec, { ...schema, holdout: 0 }, 'audit');
    return local.examples(preprocessing).train;
  } catch (err) {
    if (hasCode(err, 'DATA_SCHEMA_MISMATCH')) throw mismatch(err.message);
    // e.g. the task featurizes rows with federated statistics and no readable manifest names them.
    if (hasCode(err, 'INVALID_INPUT'))
      throw new AilinkError('INVALID_INPUT', `--eval ${text}: ${err.message}`);
    throw err;
  }
}

/**
 * Scores every audited round's model on the auditor's data and returns the report with each round's `eval`. The
 * model package is the one the verified spec names (`pkg`, checked against its digest here).
 * @throws DATA_SCHEMA_MISMATCH (round and field) for data that does not fit; MODEL_UNVERIFIED for a package that is
 *   not the spec's; as loadEvalExamples
 */
export async function scoreReport(options: {
  readonly report: AuditReport;
  readonly objects: ReadonlyMap<string, Uint8Array | Error>;
  readonly data: string;
  readonly pkg: Uint8Array;
  readonly pool: TrainingPool;
}): Promise<AuditReport> {
  const { report, objects, pool } = options;
  const spec: TaskSpec = parseTaskSpec(report.spec);
  if (createHash('sha256').update(options.pkg).digest('hex') !== spec.model.digest)
    throw new AilinkError(
      'MODEL_UNVERIFIED',
      `the model package ${spec.model.fid} does not hash to the spec's digest ${spec.model.digest}`,
    );
  const model = { key: spec.model.digest, topology: decodeModelPackage(options.pkg).topology };
  const first = report.rounds.find((r) => r.model !== null)?.round ?? 0;
  const examples = await loadEvalExamples(options.data, spec.data, preprocessingOf(report, objects), first);
  const evals: Map<number, RoundEvaluation> = await evaluateClaims({
    spec,
    rounds: report.rounds,
    objects,
    data: { source: options.data, count: examples.count, shape: examples.shape, labels: examples.y },
    score: async (weights) => {
      // The pool transfers the weights' buffer: hand it a copy, never a view of the fetched bytes.
      const r = await pool.evaluate({
        model,
        weights: weights.slice(),
        data: examples,
        loss: spec.training.loss,
      });
      return { examples: r.examples, correct: r.correct, lossSum: r.lossSum };
    },
  });
  return withEvaluation(report, evals);
}

const pct = (v: number | null) => (v === null ? '—' : `${(v * 100).toFixed(2)} %`);
const points = (v: number | null) =>
  v === null ? '' : ` (${v >= 0 ? '+' : '−'}${Math.abs(v * 100).toFixed(2)} pt)`;

/** One human line per round: the auditor's figure, then each claim beside it. */
export function describeEvaluation(e: RoundEvaluation): string {
  const measured =
    e.measured === null
      ? `not measured: ${e.note}`
      : `measured ${pct(e.measured.accuracy)} (loss ${e.measured.loss.toFixed(4)}, ${e.measured.examples} examples)`;
  const claims = e.claims.map((c) => {
    const check =
      c.aggregate === true ? ', re-derived ✓' : c.aggregate === false ? ', NOT the recorded aggregate ✗' : '';
    return `${c.by} (round ${c.round}) claims ${pct(c.accuracy)}${points(c.difference?.accuracy ?? null)}${check}`;
  });
  return `eval: ${measured}${claims.length === 0 ? ' · no claim recorded' : ` · ${claims.join(' · ')}`}`;
}
