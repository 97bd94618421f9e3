import { createHash } from 'node:crypto';
import { z } from 'zod';
import { AilinkError } from '../shared/errors.ts';
import type { CategoricalColumn, NumericColumn, TabularSchema } from './data-schema.ts';

/**
 * The federated statistics of a tabular task, as every party reads them: organisations write their share
 * (src/participant/tabular.ts `localStatistics`), the secure sum adds the shares word by word mod 2^32, and the
 * coordinator (and any auditor) turns the sum into the preprocessing every organisation applies.
 *
 * - A numeric column that needs its mean (transform 'standardize', or missing: 'mean') contributes the count n of its
 *   present values, Σq and Σq², where q = round(x · 2^32) is the value in fixed point with 32 fraction bits. The
 *   integers are exact, so the global sums do not depend on how rows are split among organisations, and
 *   σ² = (n·Σq² − (Σq)²) / (n² · 2^64) is computed in BigInt without cancellation. Each integer is split into 16-bit
 *   limbs, one limb per uint32 word (little-endian limb order, two's complement for Σq): up to 65,536 organisations'
 *   limbs add without a carry out of a word, and the recombined BigInt is exact. With |x| < 2^53 and fewer than 2^40
 *   rows in all, n fits 64 bits (4 limbs), Σq 128 signed bits (8 limbs), Σq² 256 bits (16 limbs).
 * - A categorical column declared without categories contributes a histogram of its values over 4096 buckets,
 *   bucket = (first 4 bytes of SHA-256(UTF-8 column name ‖ 0x00 ‖ UTF-8 value), big-endian) mod 4096, one word per
 *   bucket (exact while the task has fewer than 2^32 rows). Its vocabulary is the `maxCategories` buckets with the
 *   highest global counts; values sharing a bucket share a slot, and no organisation reveals a value, only counts.
 */

/** Fixed-point fraction bits of a numeric statistic. */
export const FRACTION_BITS = 32;
/** Hashed buckets of a federated categorical column. */
export const CATEGORY_BUCKETS = 4096;
/** The most organisations whose statistics add without a carry leaving a 16-bit limb's word. */
export const MAX_STATISTICS_ORGANISATIONS = 65_536;
/** Numeric values are refused at this magnitude and above (doubles stop being exact integers there). */
export const MAX_NUMERIC_MAGNITUDE = 2 ** 53;

export const COUNT_LIMBS = 4;
export const SUM_LIMBS = 8;
export const SQUARES_LIMBS = 16;
export const NUMERIC_WORDS = COUNT_LIMBS + SUM_LIMBS + SQUARES_LIMBS;
export const SCALE = 2 ** FRACTION_BITS;

/** Numeric columns that need federated statistics: standardised ones and those whose missing values take the mean. */
export const statisticColumns = (schema: TabularSchema): NumericColumn[] =>
  schema.columns.filter(
    (c): c is NumericColumn =>
      c.type === 'numeric' &&
      c.name !== schema.label.column &&
      (c.transform === 'standardize' || c.missing === 'mean'),
  );

/** Categorical columns whose vocabulary comes from the federated histogram. */
export const federatedCategoricals = (schema: TabularSchema): CategoricalColumn[] =>
  schema.columns.filter(
    (c): c is CategoricalColumn =>
      c.type === 'categorical' && c.name !== schema.label.column && c.categories === null,
  );

/** The words of the statistics vector of a schema (every organisation's vector has this length). */
export function statisticsLength(schema: TabularSchema): number {
  return (
    statisticColumns(schema).length * NUMERIC_WORDS + federatedCategoricals(schema).length * CATEGORY_BUCKETS
  );
}

/** The bucket of a categorical value (see the module comment). */
export function categoryBucket(column: string, value: string): number {
  const h = createHash('sha256')
    .update(column, 'utf8')
    .update(new Uint8Array([0]))
    .update(value, 'utf8')
    .digest();
  return h.readUInt32BE(0) % CATEGORY_BUCKETS;
}

/** Writes `value` mod 2^(16·limbs) as 16-bit limbs, least significant first. */
export function writeLimbs(out: Uint32Array, offset: number, limbs: number, value: bigint): void {
  let v = BigInt.asUintN(16 * limbs, value);
  for (let k = 0; k < limbs; k++) {
    out[offset + k] = Number(v & 0xffffn);
    v >>= 16n;
  }
}

/** Σ word_k · 2^(16k) over the limbs' words, mod 2^(16·limbs): the sum of everyone's values, before sign. */
export function readLimbs(sum: Uint32Array, offset: number, limbs: number): bigint {
  let v = 0n;
  for (let k = limbs - 1; k >= 0; k--) v = (v << 16n) + BigInt(sum[offset + k]!);
  return BigInt.asUintN(16 * limbs, v);
}

const columnName = z.string().min(1).max(128);

/**
 * What every organisation applies to its rows, from the global statistics: plain JSON (recorded in a manifest and
 * hashed). `numeric` lists the columns that need statistics, `categorical` the federated vocabularies as bucket
 * numbers in one-hot order; both in schema order.
 */
export const PreprocessingSchema = z
  .object({
    numeric: z.array(
      z
        .object({
          column: columnName,
          /** Present values over every organisation. */
          count: z.number().int().min(0),
          mean: z.number(),
          /** Population standard deviation; 1 where it is 0 (a constant column). */
          std: z.number().positive(),
        })
        .strict(),
    ),
    categorical: z.array(
      z
        .object({
          column: columnName,
          buckets: z
            .array(
              z
                .number()
                .int()
                .min(0)
                .max(CATEGORY_BUCKETS - 1),
            )
            .max(1024),
        })
        .strict(),
    ),
  })
  .strict();
export type Preprocessing = z.infer<typeof PreprocessingSchema>;

/**
 * The preprocessing of a schema from the sum of every organisation's `localStatistics`. Means and population standard
 * deviations come from exact integers, so they are identical however the rows were split. A column with no present
 * value anywhere gets mean 0 and std 1. Passing `organisations` lets the sum be checked for impossible words.
 * @throws INVALID_INPUT for a sum of the wrong length, more organisations than limbs allow, or a sum that no set of
 *   local statistics can add up to
 */
export function preprocessingFromSum(
  sum: Uint32Array,
  schema: TabularSchema,
  organisations?: number,
): Preprocessing {
  const bad = (why: string): never => {
    throw new AilinkError('INVALID_INPUT', `statistics sum: ${why}`);
  };
  const length = statisticsLength(schema);
  if (sum.length !== length) bad(`expected ${length} words for this schema, got ${sum.length}`);
  if (organisations !== undefined) {
    if (
      !Number.isSafeInteger(organisations) ||
      organisations < 1 ||
      organisations > MAX_STATISTICS_ORGANISATIONS
    ) {
      bad(`expected 1 to ${MAX_STATISTICS_ORGANISATIONS} organisations, got ${organisations}`);
    }
  }
  const numeric: Preprocessing['numeric'] = [];
  let offset = 0;
  for (const c of statisticColumns(schema)) {
    if (organisations !== undefined) {
      // Each organisation adds at most 0xffff to a limb's word.
      for (let k = 0; k < NUMERIC_WORDS; k++) {
        if (sum[offset + k]! > organisations * 0xffff)
          bad(`column "${c.name}": a limb exceeds what ${organisations} organisations can add`);
      }
    }
    const n = readLimbs(sum, offset, COUNT_LIMBS);
    const total = BigInt.asIntN(16 * SUM_LIMBS, readLimbs(sum, offset + COUNT_LIMBS, SUM_LIMBS));
    const squares = readLimbs(sum, offset + COUNT_LIMBS + SUM_LIMBS, SQUARES_LIMBS);
    offset += NUMERIC_WORDS;
    if (n === 0n) {
      numeric.push({ column: c.name, count: 0, mean: 0, std: 1 });
      continue;
    }
    // n·Σq² − (Σq)² = n² · variance in fixed point: never negative for real data (Cauchy–Schwarz).
    const spread = n * squares - total * total;
    if (spread < 0n) bad(`column "${c.name}": Σx² is smaller than (Σx)²/n`);
    const count = Number(n);
    const mean = Number(total) / count / SCALE;
    const variance = Number(spread) / (count * count) / (SCALE * SCALE);
    const std = Math.sqrt(variance);
    numeric.push({ column: c.name, count, mean, std: std > 0 && Number.isFinite(std) ? std : 1 });
  }
  const categorical: Preprocessing['categorical'] = [];
  for (const c of federatedCategoricals(schema)) {
    const counts = sum.subarray(offset, offset + CATEGORY_BUCKETS);
    offset += CATEGORY_BUCKETS;
    const buckets = [...counts.keys()]
      .filter((b) => counts[b]! > 0)
      .sort((a, b) => counts[b]! - counts[a]! || a - b)
      .slice(0, c.maxCategories);
    categorical.push({ column: c.name, buckets });
  }
  return { numeric, categorical };
}

/** Whether a task's data needs federated statistics before its first round. */
export const needsStatistics = (schema: { kind: string }): boolean =>
  schema.kind === 'tabular' && statisticsLength(schema as TabularSchema) > 0;
