import { z } from 'zod';
import { AilinkError } from '../shared/errors.ts';

/**
 * What a task's data looks like, declared in its spec so that every organisation reads, checks and preprocesses its
 * own files identically, and an auditor can see what the model was trained on without seeing the data.
 *
 * Two kinds:
 * - `tabular`: CSV or TSV files with a header row. Each declared column is numeric or categorical (or ignored); one
 *   column is the label. Columns become one flat feature vector, in the declared order: a numeric column gives one
 *   feature, a categorical one a one-hot block of `width` features (the last slot takes unknown and missing values).
 * - `images`: labelled images (image folders with one sub-folder per class, or IDX files), resized to `inputShape`,
 *   pixels scaled to [0, 1].
 *
 * Statistics that need everyone's data — the mean and standard deviation of a standardised column, the vocabulary of a
 * categorical column declared without categories — are computed through the task's secure sum before round 0
 * (a statistics round; the format is src/task/statistics.ts): no organisation reveals its own.
 */

const columnName = z.string().min(1).max(128);
const className = z.string().min(1).max(128);

export const NumericColumnSchema = z
  .object({
    name: columnName,
    type: z.literal('numeric'),
    /**
     * standardize: (x − μ) / σ with μ and σ over every organisation's rows (federated);
     * range: (x − min) / (max − min) with the declared range; none: x as it is.
     */
    transform: z.enum(['standardize', 'range', 'none']),
    /** Required with transform 'range'. */
    range: z.tuple([z.number(), z.number()]).optional(),
    /** An empty cell (or NA, NaN, ?): replaced by the federated mean ('mean'), or refused as a schema mismatch. */
    missing: z.enum(['mean', 'refuse']),
  })
  .strict();

export const CategoricalColumnSchema = z
  .object({
    name: columnName,
    type: z.literal('categorical'),
    /**
     * The categories in one-hot order, or null: the vocabulary is the `maxCategories` most frequent values over every
     * organisation's rows, found through the secure sum of hashed counts.
     */
    categories: z.array(z.string().max(256)).min(1).max(1024).nullable(),
    maxCategories: z.number().int().min(1).max(1024),
    /** An empty cell: the 'other' slot ('other'), or refused ('refuse'). */
    missing: z.enum(['other', 'refuse']),
  })
  .strict();

export const IgnoredColumnSchema = z.object({ name: columnName, type: z.literal('ignore') }).strict();

export const ColumnSchema = z.discriminatedUnion('type', [
  NumericColumnSchema,
  CategoricalColumnSchema,
  IgnoredColumnSchema,
]);

/** The fraction of each organisation's rows held out for client-side evaluation. */
const holdout = z.number().min(0).max(0.9);

export const TabularSchemaSchema = z
  .object({
    kind: z.literal('tabular'),
    /** Every column a file must have (extra columns in a file are refused: they may be data nobody agreed to use). */
    columns: z.array(ColumnSchema).min(1).max(4096),
    /** The label column (also listed in `columns`, as type 'ignore') and its classes, in output order. */
    label: z.object({ column: columnName, classes: z.array(className).min(2).max(1024) }).strict(),
    holdout,
  })
  .strict();

export const ImageSchemaSchema = z
  .object({
    kind: z.literal('images'),
    /** [height, width, channels]; channels 1 (grey) or 3 (RGB). */
    inputShape: z.tuple([
      z.number().int().min(1).max(4096),
      z.number().int().min(1).max(4096),
      z.union([z.literal(1), z.literal(3)]),
    ]),
    /** Class names in output order: image folders name their sub-folders so, IDX labels are indices into it. */
    classes: z.array(className).min(2).max(1024),
    holdout,
  })
  .strict();

export const DataSchemaSchema = z.discriminatedUnion('kind', [TabularSchemaSchema, ImageSchemaSchema]);

export type NumericColumn = z.infer<typeof NumericColumnSchema>;
export type CategoricalColumn = z.infer<typeof CategoricalColumnSchema>;
export type Column = z.infer<typeof ColumnSchema>;
export type TabularSchema = z.infer<typeof TabularSchemaSchema>;
export type ImageSchema = z.infer<typeof ImageSchemaSchema>;
export type DataSchema = z.infer<typeof DataSchemaSchema>;

/** Slots of a categorical column's one-hot block: its categories (declared or federated) plus 'other'. */
export const categoricalWidth = (c: CategoricalColumn): number =>
  (c.categories?.length ?? c.maxCategories) + 1;

/** The shape of one example as the model takes it (without the batch dimension). */
export function featureShape(schema: DataSchema): number[] {
  if (schema.kind === 'images') return [...schema.inputShape];
  let width = 0;
  for (const c of schema.columns) {
    if (c.name === schema.label.column || c.type === 'ignore') continue;
    width += c.type === 'numeric' ? 1 : categoricalWidth(c);
  }
  return [width];
}

export const classesOf = (schema: DataSchema): readonly string[] =>
  schema.kind === 'images' ? schema.classes : schema.label.classes;

/**
 * Rules zod cannot say: unique names, the label among the columns and not a feature, a range for 'range'.
 * @throws INVALID_INPUT naming the column
 */
export function checkDataSchema(schema: DataSchema, where = 'data schema'): DataSchema {
  const bad = (why: string): never => {
    throw new AilinkError('INVALID_INPUT', `${where}: ${why}`);
  };
  const classes = classesOf(schema);
  if (new Set(classes).size !== classes.length) bad('a class is listed twice');
  if (schema.kind === 'images') return schema;
  const names = schema.columns.map((c) => c.name);
  if (new Set(names).size !== names.length) bad('a column is listed twice');
  const label = schema.columns.find((c) => c.name === schema.label.column);
  if (label === undefined) bad(`the label column "${schema.label.column}" is not among the columns`);
  if (label!.type !== 'ignore') bad(`the label column "${schema.label.column}" must have type 'ignore'`);
  for (const c of schema.columns) {
    if (c.type === 'numeric' && c.transform === 'range') {
      if (c.range === undefined) bad(`column "${c.name}": transform 'range' needs range [min, max]`);
      if (!(c.range![1] > c.range![0])) bad(`column "${c.name}": range must have max > min`);
    }
    if (
      c.type === 'categorical' &&
      c.categories !== null &&
      new Set(c.categories).size !== c.categories.length
    )
      bad(`column "${c.name}": a category is listed twice`);
  }
  if (featureShape(schema)[0] === 0) bad('no feature column');
  return schema;
}
