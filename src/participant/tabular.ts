import { AilinkError } from '../shared/errors.ts';
import { categoricalWidth, checkDataSchema, featureShape, type TabularSchema } from '../task/data-schema.ts';
import {
  CATEGORY_BUCKETS,
  COUNT_LIMBS,
  categoryBucket,
  federatedCategoricals,
  MAX_NUMERIC_MAGNITUDE,
  NUMERIC_WORDS,
  type Preprocessing,
  SCALE,
  SQUARES_LIMBS,
  SUM_LIMBS,
  statisticColumns,
  statisticsLength,
  writeLimbs,
} from '../task/statistics.ts';
import type { Table } from './delimited.ts';
import type { Examples } from './examples.ts';
import { seededRng } from './partition.ts';

/**
 * Tabular data against a task's schema: checking a parsed file, the federated statistics that preprocessing needs,
 * and turning rows into feature vectors.
 *
 * The federated statistics' format is src/task/statistics.ts; `localStatistics` writes this organisation's share.
 */

/** A cell of a numeric column holding one of these (after trimming) is missing. */
export const MISSING_TOKENS: ReadonlySet<string> = new Set(['', 'NA', 'N/A', 'NaN', 'nan', '?']);
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const MAX_CATEGORY_LENGTH = 256;
const MAX_PROBLEMS = 10;

/** A file checked against a schema, with its cells parsed: what statistics and featurize take. */
export interface ValidatedTable {
  readonly file: string;
  readonly count: number;
  /** Each row's line in the file (for messages). */
  readonly lines: readonly number[];
  /** Numeric columns by name: the values, NaN where the cell was missing. */
  readonly numeric: ReadonlyMap<string, Float64Array>;
  /** Categorical columns by name: the values, null where the cell was empty. */
  readonly categorical: ReadonlyMap<string, readonly (string | null)[]>;
  /** Each row's class: an index into the schema's label classes. */
  readonly labels: Uint16Array;
}

export interface SchemaProblem {
  readonly line: number;
  readonly column: string;
  readonly expected: string;
  readonly got: string;
}

const shown = (value: string) => JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);

/** The number a cell holds, NaN when it is missing, undefined when it is not a number. */
export function parseNumber(cell: string): number | undefined {
  const text = cell.trim();
  if (MISSING_TOKENS.has(text)) return Number.NaN;
  if (!DECIMAL.test(text)) return undefined;
  const x = Number(text);
  return Math.abs(x) < MAX_NUMERIC_MAGNITUDE ? x : undefined;
}

/**
 * Checks a parsed file against a tabular schema and parses its cells. The header must hold exactly the schema's
 * columns, in any order. Up to 10 problems are collected into one error.
 * @throws DATA_SCHEMA_MISMATCH with details {file, problems: [{line, column, expected, got}]};
 *   INVALID_INPUT for a schema that breaks checkDataSchema
 */
export function validateTable(file: string, table: Table, schema: TabularSchema): ValidatedTable {
  checkDataSchema(schema);
  const problems: SchemaProblem[] = [];
  let more = false;
  const problem = (p: SchemaProblem) => {
    if (problems.length < MAX_PROBLEMS) problems.push(p);
    else more = true;
  };
  const refuse = (): never => {
    const text = problems
      .map((p) => `line ${p.line}, column ${JSON.stringify(p.column)}: expected ${p.expected}, got ${p.got}`)
      .join('; ');
    throw new AilinkError('DATA_SCHEMA_MISMATCH', `${file} ${text}${more ? '; and more' : ''}`, {
      details: { file, problems },
    });
  };

  const at = new Map<string, number>();
  for (const [i, name] of table.header.entries()) {
    if (at.has(name)) problem({ line: 1, column: name, expected: 'each column once', got: 'it twice' });
    at.set(name, i);
  }
  const declared = new Set(schema.columns.map((c) => c.name));
  for (const c of schema.columns) {
    if (!at.has(c.name)) {
      problem({
        line: 1,
        column: c.name,
        expected: 'the column (the schema declares it)',
        got: 'a header without it',
      });
    }
  }
  for (const name of table.header) {
    if (!declared.has(name)) {
      problem({
        line: 1,
        column: name,
        expected: 'only the columns the schema declares',
        got: 'a column it does not declare (remove it from the file)',
      });
    }
  }
  if (problems.length > 0) refuse();
  for (const [r, row] of table.rows.entries()) {
    if (row.length !== table.header.length) {
      problem({
        line: table.lines[r] ?? r + 2,
        column: '(whole row)',
        expected: `${table.header.length} fields as in the header`,
        got: `${row.length}`,
      });
    }
  }
  if (problems.length > 0) refuse();

  const count = table.rows.length;
  const numeric = new Map<string, Float64Array>();
  const categorical = new Map<string, (string | null)[]>();
  const labels = new Uint16Array(count);
  const classIndex = new Map(schema.label.classes.map((k, i) => [k, i]));
  const classList = `${schema.label.classes
    .slice(0, 5)
    .map((k) => JSON.stringify(k))
    .join(', ')}${schema.label.classes.length > 5 ? `, … (${schema.label.classes.length} classes)` : ''}`;

  // One check per column of the file, in the file's order, so that problems are reported as a person reads.
  type Check = (cell: string, r: number) => { expected: string; got: string } | undefined;
  const checks: { at: number; column: string; check: Check }[] = [];
  for (const c of schema.columns) {
    let check: Check | undefined;
    if (c.name === schema.label.column) {
      check = (cell, r) => {
        const k = classIndex.get(cell);
        if (k === undefined) return { expected: `one of ${classList}`, got: shown(cell) };
        labels[r] = k;
        return undefined;
      };
    } else if (c.type === 'numeric') {
      const values = new Float64Array(count);
      numeric.set(c.name, values);
      check = (cell, r) => {
        const x = parseNumber(cell);
        values[r] = x ?? Number.NaN;
        if (x === undefined)
          return { expected: 'a number (decimal, below 2^53 in magnitude)', got: shown(cell) };
        if (Number.isNaN(x) && c.missing === 'refuse') {
          return { expected: 'a number (missing values are refused in this column)', got: shown(cell) };
        }
        return undefined;
      };
    } else if (c.type === 'categorical') {
      const values: (string | null)[] = new Array(count);
      categorical.set(c.name, values);
      check = (cell, r) => {
        values[r] = cell === '' ? null : cell;
        if (cell.length > MAX_CATEGORY_LENGTH) {
          return {
            expected: `a category of at most ${MAX_CATEGORY_LENGTH} characters`,
            got: `${cell.length} characters`,
          };
        }
        if (cell === '' && c.missing === 'refuse') {
          return { expected: 'a category (missing values are refused in this column)', got: '""' };
        }
        return undefined;
      };
    }
    if (check !== undefined) checks.push({ at: at.get(c.name)!, column: c.name, check });
  }
  checks.sort((a, b) => a.at - b.at);
  for (let r = 0; r < count; r++) {
    const row = table.rows[r]!;
    for (const { at: i, column, check } of checks) {
      const p = check(row[i]!, r);
      if (p !== undefined) problem({ line: table.lines[r] ?? r + 2, column, ...p });
    }
  }
  if (problems.length > 0) refuse();
  return { file, count, lines: table.lines, numeric, categorical, labels };
}

/**
 * One organisation's statistics of a validated table: the vector whose word-by-word sum mod 2^32 over the
 * organisations gives the global statistics (see the module comment for the layout).
 * @throws INVALID_INPUT when the table lacks a column of the schema
 */
export function localStatistics(table: ValidatedTable, schema: TabularSchema): Uint32Array {
  const out = new Uint32Array(statisticsLength(schema));
  let offset = 0;
  for (const c of statisticColumns(schema)) {
    const values = columnOf(table.numeric, c.name, table.file);
    let n = 0;
    let sum = 0n;
    let squares = 0n;
    for (const x of values) {
      if (Number.isNaN(x)) continue;
      n++;
      // x · 2^32 is exact in a double (a power-of-two scale); rounding puts it on the fixed-point grid.
      const q = BigInt(Math.round(x * SCALE));
      sum += q;
      squares += q * q;
    }
    writeLimbs(out, offset, COUNT_LIMBS, BigInt(n));
    writeLimbs(out, offset + COUNT_LIMBS, SUM_LIMBS, sum);
    writeLimbs(out, offset + COUNT_LIMBS + SUM_LIMBS, SQUARES_LIMBS, squares);
    offset += NUMERIC_WORDS;
  }
  for (const c of federatedCategoricals(schema)) {
    const values = columnOf(table.categorical, c.name, table.file);
    const buckets = new Map<string, number>();
    for (const v of values) {
      if (v === null) continue;
      let b = buckets.get(v);
      if (b === undefined) {
        b = categoryBucket(c.name, v);
        buckets.set(v, b);
      }
      out[offset + b]!++;
    }
    offset += CATEGORY_BUCKETS;
  }
  return out;
}

function columnOf<T>(columns: ReadonlyMap<string, T>, name: string, file: string): T {
  const values = columns.get(name);
  if (values === undefined) {
    throw new AilinkError(
      'INVALID_INPUT',
      `${file}: the validated table has no column "${name}" (validated against another schema?)`,
    );
  }
  return values;
}

// ---- features -------------------------------------------------------------------------------------------------------

/**
 * The examples of a validated table: float32 features of `featureShape(schema)`, in schema order. Numeric: (x − μ)/σ,
 * (x − min)/(max − min) (not clipped) or x; a missing value becomes the federated mean first (0 once standardised).
 * Categorical: one-hot over the declared categories or the federated buckets, the last slot for other and missing.
 * @throws INVALID_INPUT when `prep` lacks a column the schema needs, or the table lacks one
 */
export function featurize(table: ValidatedTable, schema: TabularSchema, prep: Preprocessing): Examples {
  const shape = featureShape(schema);
  const width = shape[0]!;
  const x = new Float32Array(table.count * width);
  const missingPrep = (name: string): never => {
    throw new AilinkError(
      'INVALID_INPUT',
      `preprocessing has no statistics for column "${name}" (computed for another schema?)`,
    );
  };
  const stats = new Map(prep.numeric.map((s) => [s.column, s]));
  const vocabularies = new Map(prep.categorical.map((s) => [s.column, s.buckets]));
  let at = 0;
  for (const c of schema.columns) {
    if (c.name === schema.label.column || c.type === 'ignore') continue;
    if (c.type === 'numeric') {
      const values = columnOf(table.numeric, c.name, table.file);
      const needsStats = c.transform === 'standardize' || c.missing === 'mean';
      const s = needsStats ? (stats.get(c.name) ?? missingPrep(c.name)) : undefined;
      const [shift, scale] =
        c.transform === 'standardize'
          ? [s!.mean, s!.std]
          : c.transform === 'range'
            ? [c.range![0], c.range![1] - c.range![0]]
            : [0, 1];
      for (let r = 0; r < table.count; r++) {
        const v = values[r]!;
        // Validation let NaN through only where missing is 'mean', and then s exists.
        const value = Number.isNaN(v) ? s!.mean : v;
        x[r * width + at] = (value - shift) / scale;
      }
      at += 1;
    } else {
      const values = columnOf(table.categorical, c.name, table.file);
      const slots = categoricalWidth(c);
      const other = slots - 1;
      let slotOf: (value: string) => number;
      if (c.categories !== null) {
        const index = new Map(c.categories.map((k, i) => [k, i]));
        slotOf = (value) => index.get(value) ?? other;
      } else {
        const buckets = vocabularies.get(c.name) ?? missingPrep(c.name);
        const index = new Map(buckets.slice(0, c.maxCategories).map((b, i) => [b, i]));
        const cache = new Map<string, number>();
        slotOf = (value) => {
          let slot = cache.get(value);
          if (slot === undefined) {
            slot = index.get(categoryBucket(c.name, value)) ?? other;
            cache.set(value, slot);
          }
          return slot;
        };
      }
      for (let r = 0; r < table.count; r++) {
        const v = values[r]!;
        x[r * width + at + (v === null ? other : slotOf(v))] = 1;
      }
      at += slots;
    }
  }
  return { count: table.count, shape, x, y: table.labels.slice(0, table.count) };
}

/**
 * Which rows an organisation holds out for evaluation: round(count × fraction) of them (at least 1 when fraction > 0
 * and count ≥ 2, never all of them), chosen by a shuffle seeded with `seed`; both lists ascending.
 * @throws INVALID_INPUT for a count that is not a natural number or a fraction outside [0, 1)
 */
export function holdoutSplit(
  count: number,
  fraction: number,
  seed: string,
): { train: number[]; holdout: number[] } {
  if (!Number.isSafeInteger(count) || count < 0)
    throw new AilinkError('INVALID_INPUT', `expected a row count ≥ 0, got ${count}`);
  if (!(fraction >= 0 && fraction < 1))
    throw new AilinkError('INVALID_INPUT', `expected a holdout fraction in [0, 1), got ${fraction}`);
  let k = Math.round(count * fraction);
  if (fraction > 0 && count >= 2) k = Math.max(k, 1);
  // Training needs a row: a tiny organisation keeps at least one.
  k = Math.min(k, Math.max(count - 1, 0));
  const order = [...Array(count).keys()];
  const rng = seededRng(`holdout/${seed}`);
  // A partial Fisher–Yates: the first k places are a uniform k-subset.
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(rng() * (count - i));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const byIndex = (a: number, b: number) => a - b;
  return { train: order.slice(k).sort(byIndex), holdout: order.slice(0, k).sort(byIndex) };
}
