import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AilinkError } from '../shared/errors.ts';
import { type Examples, selectExamples } from './examples.ts';
import { type ImageDataset, loadIdxDataset } from './idx.ts';
import { partitionDirichlet, partitionIid, partitionShards, seededRng } from './partition.ts';

/**
 * Where an organisation's training data comes from, and which slice of it is "its own" when one public dataset plays
 * many organisations. A data spec is one string so that it fits a CLI flag and a task's dataset declaration:
 *
 *   <source>[:<partition>][@<seed>]
 *   source     fashion-mnist            the full 60,000 + 10,000 image set shipped in models/data/fashion-mnist
 *              fashion-mnist-small      the 6,000 + 1,000 image subset shipped in models/data (fast: tests)
 *              idx:<dir>                a directory holding the four standard IDX files (plain or .gz)
 *              csv:<file>               a CSV or TSV file with a header row (the task's schema says its columns)
 *              images:<dir>             one sub-folder of PNG/JPEG images per class
 *   partition  iid:<i>/<n> · dirichlet:<α>:<i>/<n> · shards:<per client>:<i>/<n>   (client i of n, 0-based)
 *   seed       the partition's seed (default "ailink"): every organisation of a task uses the same one
 *
 * e.g. `fashion-mnist:dirichlet:0.5:3/10@demo`.
 */

const DATA_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../models/data');
/**
 * The full Fashion-MNIST, shipped with the repo (≈ 30 MB) so that `npm install && npm run demo` reaches the accuracy
 * the README claims with no system package; its README gives the source and checksums.
 */
export const FASHION_MNIST_DIR = join(DATA_DIR, 'fashion-mnist');
/** The balanced subset shipped with the repo (scripts/make-fmnist-subset.ts writes it from the full set). */
export const SUBSET_DIR = join(DATA_DIR, 'fashion-mnist-small');
/** Two public tables shipped for the demo and the simulator (models/data/tables/README.md). */
export const TABLES_DIR = join(DATA_DIR, 'tables');

/** Fashion-MNIST's classes, in label order. */
export const FASHION_MNIST_CLASSES = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
];

export type DataSource =
  | { readonly kind: 'fashion-mnist' }
  | { readonly kind: 'fashion-mnist-small' }
  | { readonly kind: 'idx'; readonly dir: string }
  | { readonly kind: 'csv'; readonly file: string }
  | { readonly kind: 'images'; readonly dir: string };

/** The sources that hold IDX files (train and test splits). */
export type IdxSource = Extract<DataSource, { kind: 'fashion-mnist' | 'fashion-mnist-small' | 'idx' }>;

export type Partition =
  | { readonly kind: 'all' }
  | { readonly kind: 'iid'; readonly index: number; readonly clients: number }
  | { readonly kind: 'dirichlet'; readonly alpha: number; readonly index: number; readonly clients: number }
  | { readonly kind: 'shards'; readonly perClient: number; readonly index: number; readonly clients: number };

export interface DataSpec {
  readonly source: DataSource;
  readonly partition: Partition;
  readonly seed: string;
}

export interface LoadedData {
  readonly train: Examples;
  readonly test: Examples;
  /** The directory the files came from (says whether the full set or the subset is in use). */
  readonly dir: string;
}

const invalid = (spec: string, why: string): never => {
  throw new AilinkError(
    'INVALID_INPUT',
    `data spec "${spec}": ${why}; expected <source>[:<partition>][@seed], e.g. fashion-mnist:dirichlet:0.5:3/10@demo`,
  );
};

/** @throws INVALID_INPUT naming what is wrong with the spec */
export function parseDataSpec(spec: string): DataSpec {
  const at = spec.lastIndexOf('@');
  const seed = at >= 0 ? spec.slice(at + 1) : 'ailink';
  if (seed === '') invalid(spec, 'empty seed after @');
  const body = at >= 0 ? spec.slice(0, at) : spec;
  let source: DataSource;
  let rest: string[];
  const located = /^(idx|csv|images):/.exec(body);
  if (located) {
    // A path may itself contain ':'; the partition, if any, follows the last ':iid:', ':dirichlet:' or ':shards:'.
    const kind = located[1] as 'idx' | 'csv' | 'images';
    const m = /^[a-z]+:(.+?)(?::((?:iid|dirichlet|shards):.*))?$/.exec(body);
    if (!m) return invalid(spec, `${kind}: needs a ${kind === 'csv' ? 'file' : 'directory'}`);
    source = kind === 'csv' ? { kind, file: m[1]! } : { kind, dir: m[1]! };
    rest = m[2] ? m[2].split(':') : [];
  } else {
    const [name, ...tail] = body.split(':');
    if (name !== 'fashion-mnist' && name !== 'fashion-mnist-small')
      return invalid(
        spec,
        `unknown source "${name}" (fashion-mnist, fashion-mnist-small, idx:<dir>, csv:<file> or images:<dir>)`,
      );
    source = { kind: name };
    rest = tail;
  }
  return { source, partition: parsePartition(spec, rest), seed };
}

function parsePartition(spec: string, parts: string[]): Partition {
  if (parts.length === 0) return { kind: 'all' };
  const slot = (text: string | undefined) => {
    const m = /^(\d+)\/(\d+)$/.exec(text ?? '');
    const index = Number(m?.[1]);
    const clients = Number(m?.[2]);
    if (!m || clients < 1 || index >= clients)
      return invalid(spec, `expected <i>/<n> with 0 ≤ i < n, got "${text}"`);
    return { index, clients };
  };
  const [kind, a, b] = parts;
  if (kind === 'iid' && parts.length === 2) return { kind, ...slot(a) };
  if (kind === 'dirichlet' && parts.length === 3) {
    const alpha = Number(a);
    if (!(alpha > 0) || !Number.isFinite(alpha)) invalid(spec, `expected α > 0, got "${a}"`);
    return { kind, alpha, ...slot(b) };
  }
  if (kind === 'shards' && parts.length === 3) {
    const perClient = Number(a);
    if (!Number.isSafeInteger(perClient) || perClient < 1)
      invalid(spec, `expected shards per client ≥ 1, got "${a}"`);
    return { kind, perClient, ...slot(b) };
  }
  return invalid(spec, `unknown partition "${parts.join(':')}" (iid:i/n, dirichlet:α:i/n or shards:k:i/n)`);
}

/**
 * The directory a source reads from. `fashion-mnist` is always the full set: no silent fallback to the subset, which
 * would turn a broken checkout into a quietly worse model instead of an error naming the missing file.
 */
export function sourceDir(source: IdxSource): string {
  if (source.kind === 'idx') return source.dir;
  return source.kind === 'fashion-mnist' ? FASHION_MNIST_DIR : SUBSET_DIR;
}

/** Finds `<split>-<kind>` as plain or .gz in `dir`. */
function idxFile(dir: string, name: string): string {
  for (const candidate of [`${name}.gz`, name])
    if (existsSync(join(dir, candidate))) return join(dir, candidate);
  throw new AilinkError('INVALID_INPUT', `expected ${name}[.gz] in ${dir}, found neither`);
}

/** IDX images as examples: one grey channel, pixels kept as bytes (scaled when batched). */
export const imageExamples = (data: ImageDataset): Examples => ({
  count: data.count,
  shape: [data.rows, data.cols, 1],
  x: data.images,
  y: Uint16Array.from(data.labels),
});

/** Loads the train and test splits of a source (the test split is never partitioned: it is the held-out set). */
export async function loadSource(source: IdxSource): Promise<LoadedData> {
  const dir = sourceDir(source);
  const load = async (split: string) =>
    imageExamples(
      await loadIdxDataset(
        idxFile(dir, `${split}-images-idx3-ubyte`),
        idxFile(dir, `${split}-labels-idx1-ubyte`),
      ),
    );
  return { train: await load('train'), test: await load('t10k'), dir };
}

/** The indices of the training set that belong to the spec's client (all of them without a partition). */
export function partitionIndices(labels: ArrayLike<number>, partition: Partition, seed: string): number[] {
  if (partition.kind === 'all') return Array.from({ length: labels.length }, (_, i) => i);
  const rng = seededRng(`${seed}/${partition.kind}`);
  const parts =
    partition.kind === 'iid'
      ? partitionIid(labels.length, partition.clients, rng)
      : partition.kind === 'dirichlet'
        ? partitionDirichlet(labels, partition.clients, partition.alpha, rng)
        : partitionShards(labels, partition.clients, partition.perClient, rng);
  return parts[partition.index]!;
}

/**
 * Loads what an IDX data spec names: this organisation's training slice and the shared test set.
 * @throws INVALID_INPUT for a CSV or image-folder spec (those need the task's schema: local-data.ts)
 */
export async function loadDataSpec(spec: DataSpec): Promise<LoadedData> {
  const source = spec.source;
  if (source.kind === 'csv' || source.kind === 'images')
    throw new AilinkError(
      'INVALID_INPUT',
      `${source.kind}: sources are read against a task's schema, not alone`,
    );
  const all = await loadSource(source);
  return {
    ...all,
    train: selectExamples(all.train, partitionIndices(all.train.y, spec.partition, spec.seed)),
  };
}
