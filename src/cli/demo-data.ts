import { basename, dirname } from 'node:path';
import { builtinModel, type ModelPackage, type ModelSpec, readModelJson } from '../../models/index.ts';
import { addInto } from '../aggregation/index.ts';
import type { SimulationData } from '../node/simulate.ts';
import { FASHION_MNIST_CLASSES, loadSource, partitionIndices } from '../participant/dataset.ts';
import { readDelimited, type Table } from '../participant/delimited.ts';
import { concatExamples, exampleSize, selectExamples } from '../participant/examples.ts';
import { readImageFolder } from '../participant/images.ts';
import { exampleData, type LocalData, selectRows, tableData } from '../participant/local-data.ts';
import { parseNumber, validateTable } from '../participant/tabular.ts';
import type { TrainingPool } from '../participant/train-pool.ts';
import { AilinkError } from '../shared/errors.ts';
import {
  type Column,
  featureShape,
  type ImageSchema,
  needsStatistics,
  type Preprocessing,
  preprocessingFromSum,
  statisticsLength,
  type TabularSchema,
  type TaskSpec,
} from '../task/index.ts';

/**
 * What `ailink demo` trains on: Fashion-MNIST (shipped), or a person's own CSV/TSV file or image folder with their own
 * model.json. The demo plays every organisation, so it splits the rows among them (IID, or Dirichlet over the label);
 * what a real deployment agrees up front — the schema, the model — the demo derives from the file, once, and says so.
 */

/** Each organisation holds out this fraction of its rows to score every global model (client-side evaluation). */
export const DEMO_HOLDOUT = 0.2;
/** Categorical columns get a federated vocabulary of at most this many values (+ an 'other' slot). */
const MAX_DEMO_CATEGORIES = 32;

export type DemoSource =
  | { readonly kind: 'fashion-mnist'; readonly small: boolean; readonly model: string }
  | { readonly kind: 'csv'; readonly file: string; readonly label: string; readonly model?: string }
  | { readonly kind: 'images'; readonly dir: string; readonly model: string };

/** What `ailink demo` reads: what a simulation trains on (SimulationData), and the model's spec and notes for people. */
export interface DemoData extends SimulationData {
  readonly model: { readonly pkg: ModelPackage; readonly spec: ModelSpec; readonly name: string };
  /** Lines worth telling a person: where the data came from, what was derived from it. */
  readonly notes: readonly string[];
}

/**
 * Reads a demo source and the model, derives the schema, and checks the model fits it (built on the pool's backend).
 * @throws DATA_SCHEMA_MISMATCH, DATA_DECODE_FAILED for data that cannot be read; MODEL_INVALID and the like for a
 *   model that cannot be built; INVALID_INPUT for a model whose output does not fit the data's classes
 */
export async function loadDemoData(pool: TrainingPool, source: DemoSource): Promise<DemoData> {
  if (source.kind === 'fashion-mnist') return fashionMnist(pool, source);
  if (source.kind === 'csv') return tabular(pool, source);
  return images(pool, source);
}

/** Which rows each organisation gets: IID, or label-skewed Dirichlet(alpha) slices (seeded: the same every run). */
function slices(labels: ArrayLike<number>, count: number, alpha: number | null, seed = 'demo'): number[][] {
  return Array.from({ length: count }, (_, index) =>
    partitionIndices(
      labels,
      alpha === null
        ? { kind: 'iid', index, clients: count }
        : { kind: 'dirichlet', alpha, index, clients: count },
      seed,
    ),
  );
}

const seedOf = (i: number) => `demo-org-${i}`;

async function fashionMnist(
  pool: TrainingPool,
  source: Extract<DemoSource, { kind: 'fashion-mnist' }>,
): Promise<DemoData> {
  const data = await loadSource({ kind: source.small ? 'fashion-mnist-small' : 'fashion-mnist' });
  const pkg = await builtinModel(source.model);
  const { spec } = await pool.describe(pkg, 'demo');
  const schema: ImageSchema = {
    kind: 'images',
    inputShape: [28, 28, 1],
    classes: FASHION_MNIST_CLASSES,
    // The coordinator holds Fashion-MNIST's own test set: organisations keep all their rows for training.
    holdout: 0,
  };
  return {
    title: `Fashion-MNIST (${data.dir})`,
    schema,
    model: { pkg, spec, name: source.model },
    training: sgd(0.05),
    localFor: () => ({ epochs: 1, batchSize: source.model === 'mlp' ? 10 : 50 }),
    // Measured (bench:train): ≈ 15,000 samples/s for the MLP and ≈ 500 for the CNN with both cores shared.
    samplesPerSecond: source.model === 'cnn' ? 500 : 15_000,
    rows: data.train.count,
    notes: [`${data.train.count} training and ${data.test.count} test images from ${data.dir}`],
    testData: data.test,
    organisations: (count, alpha, seed) =>
      slices(data.train.y, count, alpha, seed).map((rows, i) => {
        const mine = selectExamples(data.train, rows);
        return async (spec) => exampleData(mine, spec.data.holdout, seedOf(i));
      }),
  };
}

/**
 * Local work sized by optimizer steps, not only by epochs: an organisation holding a few dozen rows would otherwise
 * take one or two steps a round and the federated model would barely move (penguins among 10 organisations, 27
 * training rows each, batches of 32 and 2 epochs: 45.71 % after 10 rounds against 98.57 % for the central logistic
 * regression). Batches of about an eighth of an organisation's training rows (4 to 32), and epochs enough for about
 * 20 steps a round.
 */
export function localBySteps(rows: number, organisations: number): TaskSpec['local'] {
  const trainRows = Math.max(1, Math.floor((rows * (1 - DEMO_HOLDOUT)) / organisations));
  const batchSize = Math.min(32, Math.max(4, Math.floor(trainRows / 8)));
  const stepsPerEpoch = Math.ceil(trainRows / batchSize);
  return { epochs: Math.min(20, Math.max(1, Math.ceil(20 / stepsPerEpoch))), batchSize };
}

const sgd = (learningRate: number): TaskSpec['training'] => ({
  loss: 'categorical_crossentropy',
  optimizer: { name: 'sgd', learningRate },
  metrics: ['accuracy', 'loss'],
  proximalMu: 0,
});

/**
 * A schema for a CSV/TSV file as it stands: every column that holds only numbers (or missing values) is numeric,
 * standardised with the federated mean and deviation, a missing value taking the mean; every other column is
 * categorical with a federated vocabulary of its most frequent values; the label's classes are its distinct values
 * (numeric ones in numeric order). In a real deployment the organisations agree this up front; the demo reads it off
 * the file it plays every organisation with.
 * @throws DATA_SCHEMA_MISMATCH when the label column is missing or has fewer than 2 (or more than 1,024) classes
 */
export function inferTabularSchema(
  file: string,
  table: Table,
  label: string,
  holdout: number,
): TabularSchema {
  const at = table.header.indexOf(label);
  if (at < 0)
    throw new AilinkError(
      'DATA_SCHEMA_MISMATCH',
      `${file} has no column ${JSON.stringify(label)} to predict; its columns: ${table.header.join(', ')}`,
    );
  const values = (i: number) => table.rows.map((row) => (row[i] ?? '').trim());
  const labels = [...new Set(values(at).filter((v) => v !== ''))];
  const numericLabels = labels.every((v) => Number.isFinite(parseNumber(v)));
  labels.sort((a, b) => (numericLabels ? Number(a) - Number(b) : a < b ? -1 : a > b ? 1 : 0));
  if (labels.length < 2 || labels.length > 1024)
    throw new AilinkError(
      'DATA_SCHEMA_MISMATCH',
      `${file} column ${JSON.stringify(label)}: expected 2 to 1,024 classes to predict, got ${labels.length}`,
    );
  const columns: Column[] = table.header.map((name, i): Column => {
    if (i === at) return { name, type: 'ignore' };
    const cells = values(i);
    if (
      cells.every((c) => parseNumber(c) !== undefined) &&
      cells.some((c) => Number.isFinite(parseNumber(c)))
    )
      return { name, type: 'numeric', transform: 'standardize', missing: 'mean' };
    const distinct = new Set(cells.filter((c) => c !== '')).size;
    return {
      name,
      type: 'categorical',
      categories: null,
      maxCategories: Math.max(1, Math.min(MAX_DEMO_CATEGORIES, distinct)),
      missing: 'other',
    };
  });
  return { kind: 'tabular', columns, label: { column: label, classes: labels }, holdout };
}

/** A one-layer softmax model over `features` inputs: multinomial logistic regression, the tabular baseline. */
export function logisticRegression(features: number, classes: number): ModelPackage {
  return {
    topology: {
      class_name: 'Sequential',
      config: {
        name: 'logistic-regression',
        layers: [
          {
            class_name: 'Dense',
            config: {
              name: 'logits',
              units: classes,
              activation: 'softmax',
              batch_input_shape: [null, features],
              kernel_initializer: { class_name: 'GlorotUniform', config: { seed: null } },
              bias_initializer: { class_name: 'Zeros', config: {} },
            },
          },
        ],
      },
    },
    weights: null,
  };
}

/**
 * A person's model.json for a table whose width the schema decides: a Sequential model declared for another number
 * of input features is given the schema's (its first layer's weights follow from it), which the demo says; a model
 * that carries weights must already fit.
 */
function fitInputWidth(pkg: ModelPackage, width: number, notes: string[]): ModelPackage {
  const layers = (pkg.topology.config as { layers?: { config?: { batch_input_shape?: unknown } }[] }).layers;
  const first = layers?.[0]?.config;
  const shape = first?.batch_input_shape;
  if (!Array.isArray(shape) || shape.length !== 2 || shape[1] === width) return pkg;
  if (pkg.weights !== null)
    throw new AilinkError(
      'INVALID_INPUT',
      `the model takes ${shape[1]} input features and carries weights for them; the data gives ${width} (numeric columns, plus one-hot blocks for categorical ones): export it for ${width} inputs`,
    );
  notes.push(`the model's input was declared for ${shape[1]} features; the data gives ${width}: resized`);
  const topology = structuredClone(pkg.topology) as typeof pkg.topology;
  (topology.config as { layers: { config: Record<string, unknown> }[] }).layers[0]!.config.batch_input_shape =
    [null, width];
  return { topology, weights: null };
}

/** The loss an output calls for: one unit is a binary classifier, several are one per class. */
function trainingFor(spec: ModelSpec, classes: number): TaskSpec['training'] {
  if (spec.outputUnits !== classes && !(spec.outputUnits === 1 && classes === 2))
    throw new AilinkError(
      'INVALID_INPUT',
      `the model outputs ${spec.outputUnits} units; the data has ${classes} classes (give it ${classes} outputs${classes === 2 ? ', or 1 for a binary classifier' : ''})`,
    );
  return {
    loss: spec.outputUnits === 1 ? 'binary_crossentropy' : 'categorical_crossentropy',
    optimizer: { name: 'adam', learningRate: 0.01 },
    metrics: ['accuracy', 'loss'],
    proximalMu: 0,
  };
}

async function tabular(pool: TrainingPool, source: Extract<DemoSource, { kind: 'csv' }>): Promise<DemoData> {
  const raw = await readDelimited(source.file);
  const schema = inferTabularSchema(basename(source.file), raw, source.label, DEMO_HOLDOUT);
  const table = validateTable(basename(source.file), raw, schema);
  const width = featureShape(schema)[0]!;
  const classes = schema.label.classes.length;
  const notes = [
    `${table.count} rows of ${source.file}: ${schema.columns.filter((c) => c.type === 'numeric').length} numeric and ${schema.columns.filter((c) => c.type === 'categorical').length} categorical columns → ${width} features; ${classes} classes of ${JSON.stringify(source.label)}`,
  ];
  const given = source.model === undefined ? null : await readModelJson(source.model);
  const pkg = given === null ? logisticRegression(width, classes) : fitInputWidth(given, width, notes);
  if (given === null)
    notes.push('model: logistic regression (one softmax layer); give --model PATH/model.json for another');
  const { spec } = await pool.describe(pkg, 'demo');
  return {
    title: basename(source.file),
    schema,
    model: {
      pkg,
      spec,
      name: source.model === undefined ? 'logistic-regression' : basename(dirname(source.model)),
    },
    training: trainingFor(spec, classes),
    localFor: (organisations) => localBySteps(table.count, organisations),
    samplesPerSecond: 20_000,
    rows: table.count,
    notes,
    organisations: (count, alpha, seed) =>
      slices(table.labels, count, alpha, seed).map((rows, i) => {
        const mine = selectRows(table, rows);
        return async (spec) => tableData(mine, spec.data as TabularSchema, seedOf(i));
      }),
  };
}

async function images(
  pool: TrainingPool,
  source: Extract<DemoSource, { kind: 'images' }>,
): Promise<DemoData> {
  const pkg = await readModelJson(source.model);
  const { spec } = await pool.describe(pkg, 'demo');
  const [h, w, c] = spec.inputShape;
  if (spec.inputShape.length !== 3 || (c !== 1 && c !== 3))
    throw new AilinkError(
      'INVALID_INPUT',
      `an image model takes [height, width, 1 or 3 channels]; this one takes [${spec.inputShape.join(', ')}]`,
    );
  const { readdir } = await import('node:fs/promises');
  const classes = (await readdir(source.dir, { withFileTypes: true }))
    .filter((d) => d.isDirectory() && !d.name.startsWith('.'))
    .map((d) => d.name)
    .sort();
  const schema: ImageSchema = {
    kind: 'images',
    inputShape: [h!, w!, c as 1 | 3],
    classes,
    holdout: DEMO_HOLDOUT,
  };
  const all = await readImageFolder(source.dir, schema);
  if (all.count === 0 || exampleSize(all.shape) === 0)
    throw new AilinkError('DATA_SCHEMA_MISMATCH', `${source.dir} holds no images in its class folders`);
  return {
    title: basename(source.dir),
    schema,
    model: { pkg, spec, name: basename(dirname(source.model)) },
    training: trainingFor(spec, classes.length),
    localFor: (organisations) => localBySteps(all.count, organisations),
    // Unknown convolutions on unknown image sizes: a cautious guess (the deadline is at least 30 s anyway).
    samplesPerSecond: 200,
    rows: all.count,
    notes: [
      `${all.count} images of ${classes.length} classes (${classes.join(', ')}) from ${source.dir}, resized to ${h}×${w}×${c}`,
    ],
    organisations: (count, alpha, seed) =>
      slices(all.y, count, alpha, seed).map((rows, i) => {
        const mine = selectExamples(all, rows);
        return async (spec) => exampleData(mine, spec.data.holdout, seedOf(i));
      }),
  };
}

/**
 * The demo's baseline for a table: multinomial logistic regression trained centrally on the union of the
 * organisations' training rows — preprocessed with the same statistics, which the plain sum of their shares gives
 * exactly as the secure sum did — for as many passes as the federated task made, then scored on the union of their
 * held-out rows: the figure a federated model is compared with. Null for images (no such baseline).
 */
export async function centralBaseline(
  pool: TrainingPool,
  data: DemoData,
  loaders: readonly ((spec: TaskSpec) => Promise<LocalData>)[],
  spec: TaskSpec,
): Promise<{ accuracy: number; loss: number; examples: number } | null> {
  if (spec.data.kind !== 'tabular') return null;
  const schema = spec.data;
  const orgs = await Promise.all(loaders.map((load) => load(spec)));
  let prep: Preprocessing | null = null;
  if (needsStatistics(schema)) {
    const sum = new Uint32Array(statisticsLength(schema));
    for (const o of orgs) addInto(sum, o.statistics());
    prep = preprocessingFromSum(sum, schema);
  }
  const parts = orgs.map((o) => o.examples(prep));
  const train = concatExamples(parts.map((p) => p.train));
  const test = concatExamples(parts.map((p) => p.holdout).filter((p) => p.count > 0));
  const model = logisticRegression(featureShape(schema)[0]!, schema.label.classes.length);
  const { initial } = await pool.describe(model, 'central');
  const ref = { key: 'demo-central-logistic-regression', topology: model.topology };
  const trained = await pool.train({
    model: ref,
    weights: initial,
    data: train,
    options: {
      epochs: spec.rounds * spec.local.epochs,
      batchSize: spec.local.batchSize,
      loss: 'categorical_crossentropy',
      optimizer: data.training.optimizer,
      seed: 'demo-central',
    },
  });
  const scored = await pool.evaluate({ model: ref, weights: trained.weights, data: test });
  return { accuracy: scored.accuracy, loss: scored.loss, examples: scored.examples };
}
