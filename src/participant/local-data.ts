import { createHash } from 'node:crypto';
import { AilinkError } from '../shared/errors.ts';
import { classesOf, type DataSchema, type TabularSchema } from '../task/data-schema.ts';
import { needsStatistics, type Preprocessing } from '../task/statistics.ts';
import { type DataSpec, loadSource, partitionIndices } from './dataset.ts';
import { type Examples, exampleSize, examplesFingerprint, selectExamples } from './examples.ts';
import { readImageFolder } from './images.ts';
import { loadTable } from './sources.ts';
import { featurize, holdoutSplit, localStatistics, type ValidatedTable } from './tabular.ts';

/**
 * An organisation's own data for one task, checked against the task's schema before it joins: what it contributes
 * to the federated statistics, and its rows preprocessed and split into training rows and the rows it holds out to
 * evaluate every global model on. Nothing here leaves the organisation but the statistics vector (masked) and the
 * fingerprint.
 */
export interface LocalData {
  /** SHA-256 of the rows as read, before preprocessing: what every commitment declares the updates came from. */
  readonly fingerprint: string;
  /** Rows (or images) this organisation holds, training and held-out together. */
  readonly rows: number;
  /** Whether the schema needs federated statistics before round 0. */
  readonly needsStatistics: boolean;
  /** Its share of the federated statistics, over its training rows (src/task/statistics.ts). */
  statistics(): Uint32Array;
  /**
   * Its training and held-out examples, preprocessed with the federated statistics.
   * @throws INVALID_INPUT when the schema needs statistics and `prep` is null, or `prep` lacks a column
   */
  examples(prep: Preprocessing | null): { train: Examples; holdout: Examples };
}

/** Rows of a validated table, by index (a partition's slice, or a holdout split). */
export function selectRows(table: ValidatedTable, indices: readonly number[]): ValidatedTable {
  const pick = <T>(values: ArrayLike<T>) => indices.map((i) => values[i]!);
  return {
    file: table.file,
    count: indices.length,
    lines: pick(table.lines),
    numeric: new Map([...table.numeric].map(([k, v]) => [k, Float64Array.from(pick(v))])),
    categorical: new Map([...table.categorical].map(([k, v]) => [k, pick(v)])),
    labels: Uint16Array.from(pick(table.labels)),
  };
}

/** A fingerprint of a validated table's cells and labels, in row order. */
function tableFingerprint(table: ValidatedTable): string {
  const h = createHash('sha256');
  h.update(`ailink/table/v1\n${table.count}\n`);
  for (const [name, values] of [...table.numeric].sort(([a], [b]) => (a < b ? -1 : 1))) {
    h.update(`${name}\n`);
    h.update(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  }
  for (const [name, values] of [...table.categorical].sort(([a], [b]) => (a < b ? -1 : 1)))
    h.update(`${name}\n${JSON.stringify(values)}\n`);
  h.update(new Uint8Array(table.labels.buffer, table.labels.byteOffset, table.labels.byteLength));
  return h.digest('hex');
}

/** Local data from a validated table: statistics over the training rows, features once the statistics are known. */
export function tableData(table: ValidatedTable, schema: TabularSchema, seed: string): LocalData {
  const split = holdoutSplit(table.count, schema.holdout, seed);
  const train = selectRows(table, split.train);
  const holdout = selectRows(table, split.holdout);
  const needs = needsStatistics(schema);
  const cache = new Map<string, { train: Examples; holdout: Examples }>();
  return {
    fingerprint: tableFingerprint(table),
    rows: table.count,
    needsStatistics: needs,
    statistics: () => localStatistics(train, schema),
    examples(prep) {
      if (needs && prep === null)
        throw new AilinkError(
          'INVALID_INPUT',
          'this task preprocesses with federated statistics: none given yet',
        );
      const usable = prep ?? { numeric: [], categorical: [] };
      const key = JSON.stringify(usable);
      let out = cache.get(key);
      if (out === undefined) {
        out = { train: featurize(train, schema, usable), holdout: featurize(holdout, schema, usable) };
        cache.set(key, out);
      }
      return out;
    },
  };
}

/** Local data from examples that need no statistics (images): a seeded holdout split. */
export function exampleData(all: Examples, holdoutFraction: number, seed: string): LocalData {
  const split = holdoutSplit(all.count, holdoutFraction, seed);
  const out = { train: selectExamples(all, split.train), holdout: selectExamples(all, split.holdout) };
  return {
    fingerprint: examplesFingerprint(all),
    rows: all.count,
    needsStatistics: false,
    statistics: () => new Uint32Array(0),
    examples: () => out,
  };
}

/**
 * Reads what a data spec names and checks it against the task's schema: a CSV/TSV file, an image folder, or IDX
 * files (Fashion-MNIST included), then this organisation's partition of it (when the spec names one) and its holdout.
 * @throws DATA_SCHEMA_MISMATCH, DATA_DECODE_FAILED, DATA_TOO_LARGE naming the file, row and column; INVALID_INPUT when
 *   the source's kind does not fit the schema's
 */
export async function loadLocalData(spec: DataSpec, schema: DataSchema, seed: string): Promise<LocalData> {
  const source = spec.source;
  const mismatch = (why: string): never => {
    throw new AilinkError('DATA_SCHEMA_MISMATCH', why);
  };
  if (source.kind === 'csv') {
    if (schema.kind !== 'tabular') mismatch(`the task takes ${schema.kind}, not a table (${source.file})`);
    const table = await loadTable(source.file, schema as TabularSchema);
    const mine = selectRows(table, partitionIndices(table.labels, spec.partition, spec.seed));
    return tableData(mine, schema as TabularSchema, seed);
  }
  if (schema.kind !== 'images') return mismatch(`the task takes a table, not images (${describe(spec)})`);
  let all: Examples;
  if (source.kind === 'images') all = await readImageFolder(source.dir, schema);
  else {
    all = (await loadSource(source)).train;
    const classes = classesOf(schema).length;
    if (all.shape.join('x') !== schema.inputShape.join('x'))
      mismatch(
        `${describe(spec)} holds images of [${all.shape.join(', ')}], the task takes [${schema.inputShape.join(', ')}]`,
      );
    const top = all.y.reduce((a, b) => Math.max(a, b), 0);
    if (top >= classes) mismatch(`${describe(spec)} has label ${top}; the task declares ${classes} classes`);
  }
  const mine = selectExamples(all, partitionIndices(all.y, spec.partition, spec.seed));
  if (exampleSize(mine.shape) === 0 || mine.count === 0)
    mismatch(`${describe(spec)}: no examples in this slice`);
  return exampleData(mine, schema.holdout, seed);
}

const describe = (spec: DataSpec) =>
  'file' in spec.source ? spec.source.file : 'dir' in spec.source ? spec.source.dir : spec.source.kind;
