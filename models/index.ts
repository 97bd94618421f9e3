import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as Tfjs from '@tensorflow/tfjs';
import { canonicalJson } from '../src/shared/canonical.ts';
import { AilinkError } from '../src/shared/errors.ts';

/**
 * A task's model is any TensorFlow.js Layers model: a model.json (its topology) and, optionally, the weights it starts
 * from, as `tensorflowjs_converter` writes them from Keras or `model.save` from tfjs. Both travel as one stored object,
 * the model package (`encodeModelPackage`), named in the task spec by fid and digest. The built-in CNN and MLP are two
 * such files (models/cnn/model.json, models/mlp/model.json) and get no special treatment.
 *
 * From a topology come the pure description every party agrees on (`ModelSpec`: input shape, output, and the weight
 * tensors in the canonical order — tfjs's own `model.weights` order, which is also the order of a flat weight vector,
 * the unit that is masked, aggregated and stored) and the TensorFlow.js model that trains (`buildModel`).
 */

/** The TensorFlow.js namespace (tfjs, or tfjs-node when installed); passed in, never imported here at run time. */
export type Tf = typeof Tfjs;

const here = dirname(fileURLToPath(import.meta.url));
/** The built-in models, by name: each a model.json without weights (they start from seeded initializers). */
export const BUILTIN_MODELS = {
  cnn: resolve(here, 'cnn/model.json'),
  mlp: resolve(here, 'mlp/model.json'),
} as const;
export type BuiltinModel = keyof typeof BUILTIN_MODELS;

/** The layers training runs on every backend (wasm included, with src/participant/tf.ts's gradients). */
export const SUPPORTED_LAYERS: ReadonlySet<string> = new Set([
  'InputLayer',
  'Dense',
  'Conv1D',
  'Conv2D',
  'DepthwiseConv2D',
  'SeparableConv2D',
  'MaxPooling1D',
  'MaxPooling2D',
  'AveragePooling1D',
  'AveragePooling2D',
  'GlobalAveragePooling1D',
  'GlobalAveragePooling2D',
  'GlobalMaxPooling1D',
  'GlobalMaxPooling2D',
  'Flatten',
  'Reshape',
  'Dropout',
  'Activation',
  'ReLU',
  'LeakyReLU',
  'Softmax',
  'BatchNormalization',
  'LayerNormalization',
  'ZeroPadding2D',
  'Add',
  'Concatenate',
]);

/** Largest model.json accepted (a topology, not weights: the CNN's is 7 KB). */
const MAX_TOPOLOGY_BYTES = 4 * 1024 * 1024;
/** Largest weights accepted with a model (1 G parameters of float32 would not train here anyway). */
const MAX_WEIGHT_BYTES = 2 * 1024 * 1024 * 1024;

export interface WeightSpec {
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: 'float32';
}

/** A model as it is agreed on: the topology (model.json's `modelTopology`) and optional starting weights. */
export interface ModelPackage {
  readonly topology: Record<string, unknown>;
  readonly weights: { readonly specs: readonly WeightSpec[]; readonly data: Uint8Array } | null;
}

export interface TensorSpec {
  readonly name: string;
  readonly shape: readonly number[];
}

/** What a model is, without TensorFlow.js: enough to size, check and lay out a flat weight vector. */
export interface ModelSpec {
  readonly name: string;
  /** One example's shape, without the batch dimension. */
  readonly inputShape: readonly number[];
  /** Units of the (single) output: the number of classes, or 1 for a binary classifier. */
  readonly outputUnits: number;
  /** What the output means: raw scores (the loss applies softmax or sigmoid) or probabilities. */
  readonly output: 'logits' | 'probabilities';
  /** The total number of weights, the length of a flat weight vector. */
  readonly parameters: number;
  /** Every weight tensor in the canonical order. */
  readonly tensors: readonly TensorSpec[];
}

const invalid = (why: string, details?: Record<string, unknown>): never => {
  throw new AilinkError('MODEL_INVALID', why, details ? { details } : undefined);
};

const sizeOf = (shape: readonly number[]) => shape.reduce((a, d) => a * d, 1);

// ---------------------------------------------------------------------------------------------------------------
// model.json files and the stored package

/**
 * Reads a model.json as a person hands it over, with the weight files its manifest names (paths relative to it).
 * @throws MODEL_INVALID for a file that is not a layers model.json, or weights missing, not float32 or of the wrong size
 */
export async function readModelJson(path: string): Promise<ModelPackage> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    throw new AilinkError('MODEL_INVALID', `cannot read ${path}: ${(cause as Error).message}`, { cause });
  }
  if (text.length > MAX_TOPOLOGY_BYTES)
    invalid(`${path} is ${text.length} bytes; a model.json over ${MAX_TOPOLOGY_BYTES} is refused`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new AilinkError('MODEL_INVALID', `${path} is not JSON: ${(cause as Error).message}`, { cause });
  }
  const file = json as { modelTopology?: unknown; weightsManifest?: unknown; format?: unknown };
  const topology = topologyOf(file?.modelTopology, path);
  if (file.weightsManifest === undefined || file.weightsManifest === null) return { topology, weights: null };
  if (!Array.isArray(file.weightsManifest))
    return invalid(`${path}: weightsManifest must be a list of groups`);
  const specs: WeightSpec[] = [];
  const chunks: Uint8Array[] = [];
  for (const group of file.weightsManifest as { paths?: unknown; weights?: unknown }[]) {
    if (!Array.isArray(group?.paths) || !Array.isArray(group?.weights))
      invalid(`${path}: every weightsManifest group needs paths and weights`);
    for (const p of group.paths as unknown[]) {
      if (typeof p !== 'string' || p.includes('..') || p.startsWith('/'))
        invalid(`${path}: weight path ${JSON.stringify(p)} must be a file name beside model.json`);
      const file = join(dirname(path), p as string);
      try {
        chunks.push(new Uint8Array(await readFile(file)));
      } catch (cause) {
        throw new AilinkError(
          'MODEL_INVALID',
          `cannot read the weights file ${file}: ${(cause as Error).message}`,
        );
      }
    }
    for (const w of group.weights as { name?: unknown; shape?: unknown; dtype?: unknown }[])
      specs.push(weightSpecOf(w, path));
  }
  const total = chunks.reduce((a, c) => a + c.byteLength, 0);
  if (total > MAX_WEIGHT_BYTES)
    invalid(`${path}: ${total} bytes of weights; more than ${MAX_WEIGHT_BYTES} is refused`);
  const data = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    data.set(c, at);
    at += c.byteLength;
  }
  const expected = specs.reduce((a, s) => a + 4 * sizeOf(s.shape), 0);
  if (expected !== total)
    invalid(`${path}: the manifest describes ${expected} bytes of weights, the files hold ${total}`, {
      expected,
      got: total,
    });
  return { topology, weights: { specs, data } };
}

function topologyOf(value: unknown, where: string): Record<string, unknown> {
  const t = value as { class_name?: unknown; config?: unknown } | null;
  if (t === null || typeof t !== 'object' || Array.isArray(t))
    return invalid(`${where}: expected a layers model.json with a modelTopology object`);
  if (t.class_name !== 'Sequential' && t.class_name !== 'Model' && t.class_name !== 'Functional')
    return invalid(
      `${where}: expected a Sequential or functional Model topology, got ${JSON.stringify(t.class_name)}`,
    );
  if (t.config === null || typeof t.config !== 'object' || Array.isArray(t.config))
    return invalid(`${where}: the topology has no config (an object)`);
  return t as Record<string, unknown>;
}

function weightSpecOf(w: { name?: unknown; shape?: unknown; dtype?: unknown }, where: string): WeightSpec {
  if (
    typeof w?.name !== 'string' ||
    !Array.isArray(w.shape) ||
    !w.shape.every((d) => Number.isSafeInteger(d) && d >= 0)
  )
    return invalid(`${where}: a weight entry needs a name and a shape of non-negative integers`);
  if ((w.dtype ?? 'float32') !== 'float32')
    return invalid(`${where}: weight ${w.name} is ${String(w.dtype)}; only float32 weights are supported`);
  return { name: w.name, shape: w.shape as number[], dtype: 'float32' };
}

/** The built-in model's package. @throws MODEL_UNKNOWN for another name */
export async function builtinModel(name: string): Promise<ModelPackage> {
  if (!Object.hasOwn(BUILTIN_MODELS, name))
    throw new AilinkError(
      'MODEL_UNKNOWN',
      `unknown built-in model "${name}"; built in: ${Object.keys(BUILTIN_MODELS).join(', ')}, or give a model.json path`,
    );
  return readModelJson(BUILTIN_MODELS[name as BuiltinModel]);
}

const PACKAGE_MAGIC = 'AILP';

/**
 * The stored form of a model package: 'AILP' ‖ u32 LE header length ‖ canonical JSON {modelTopology, weights: [specs]
 * or null} ‖ the weights (float32 LE, in the specs' order). Canonical, so one model has one digest.
 */
export function encodeModelPackage(pkg: ModelPackage): Uint8Array {
  const header = new TextEncoder().encode(
    canonicalJson({ modelTopology: pkg.topology, weights: pkg.weights?.specs ?? null }),
  );
  const data = pkg.weights?.data ?? new Uint8Array(0);
  const out = new Uint8Array(8 + header.byteLength + data.byteLength);
  out.set(new TextEncoder().encode(PACKAGE_MAGIC), 0);
  new DataView(out.buffer).setUint32(4, header.byteLength, true);
  out.set(header, 8);
  out.set(data, 8 + header.byteLength);
  return out;
}

/** @throws MODEL_INVALID when the bytes are not a model package */
export function decodeModelPackage(bytes: Uint8Array): ModelPackage {
  if (bytes.byteLength < 8 || new TextDecoder().decode(bytes.subarray(0, 4)) !== PACKAGE_MAGIC)
    invalid('model package: expected the AILP magic');
  const length = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(4, true);
  if (length > MAX_TOPOLOGY_BYTES || 8 + length > bytes.byteLength)
    invalid(`model package: header length ${length} out of range`);
  let header: { modelTopology?: unknown; weights?: unknown };
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length)));
  } catch {
    return invalid('model package: malformed header');
  }
  const topology = topologyOf(header.modelTopology, 'model package');
  const data = bytes.slice(8 + length);
  if (header.weights === null || header.weights === undefined) {
    if (data.byteLength !== 0) invalid('model package: weight bytes without weight specs');
    return { topology, weights: null };
  }
  if (!Array.isArray(header.weights)) return invalid('model package: weights must be a list');
  const specs = header.weights.map((w) => weightSpecOf(w, 'model package'));
  const expected = specs.reduce((a, s) => a + 4 * sizeOf(s.shape), 0);
  if (expected !== data.byteLength)
    invalid(`model package: specs describe ${expected} bytes of weights, it holds ${data.byteLength}`);
  return { topology, weights: { specs, data } };
}

export const modelPackageDigest = (pkg: ModelPackage): string =>
  createHash('sha256').update(encodeModelPackage(pkg)).digest('hex');

// ---------------------------------------------------------------------------------------------------------------
// Building and describing

/** A 32-bit initializer seed per layer and initializer, from the model seed: none may share a random stream. */
function initializerSeed(seed: string, layer: string, key: string): number {
  return createHash('sha256').update(`ailink/init/${layer}/${key}/${seed}`).digest().readUInt32LE(0);
}

/**
 * The topology with every random initializer seeded from `seed`: tfjs draws seeded random numbers in JavaScript, not
 * on the backend, so the same seed gives bit-identical initial weights everywhere (a coordinator restart recomputes
 * round 0's model exactly).
 */
function seededTopology(topology: Record<string, unknown>, seed: string): Record<string, unknown> {
  const copy = structuredClone(topology) as { config: { layers?: unknown[] } };
  for (const layer of (copy.config.layers ?? []) as { config?: Record<string, unknown> }[]) {
    const config = layer.config ?? {};
    for (const [key, value] of Object.entries(config)) {
      const init = value as { config?: Record<string, unknown> } | null;
      if (key.endsWith('_initializer') && init?.config && 'seed' in init.config)
        init.config.seed = initializerSeed(seed, String(config.name), key);
    }
  }
  return copy as Record<string, unknown>;
}

/**
 * The topology as tfjs completes it: a model.json may leave out a layer's name (tfjs then takes one from a global
 * counter) or its initializers (tfjs then uses unseeded defaults), and either would make the seeded initial weights
 * differ from one build to the next. Missing names become `<class>_<index>`; one build without weights then writes
 * out every initializer tfjs chose, each with a `seed` field for seededTopology to fill.
 */
async function completeTopology(tf: Tf, topology: Record<string, unknown>): Promise<Record<string, unknown>> {
  const named = structuredClone(topology) as { config: { layers?: unknown[] } };
  for (const [i, layer] of (
    (named.config.layers ?? []) as { class_name?: string; config?: Record<string, unknown> }[]
  ).entries()) {
    layer.config ??= {};
    if (typeof layer.config.name !== 'string')
      layer.config.name = `${String(layer.class_name).toLowerCase()}_${i}`;
  }
  const draft = await tf.models.modelFromJSON({ modelTopology: named } as never);
  try {
    return draft.toJSON(null, false) as unknown as Record<string, unknown>;
  } finally {
    draft.dispose();
  }
}

/** Models built here, with the tf instance and spec (loading weights needs its tensor constructor). */
const built = new WeakMap<Tfjs.LayersModel, { tf: Tf; spec: ModelSpec }>();

/**
 * Builds a model from its topology, initializers seeded from `seed`, and checks that TensorFlow.js can train it.
 * @throws MODEL_LAYER_UNSUPPORTED naming the first layer of a class the training backend cannot run
 * @throws MODEL_INVALID when tfjs cannot build the topology, or it has not exactly one input and one 2-D output
 */
export async function buildModel(
  tf: Tf,
  topology: Record<string, unknown>,
  seed: string,
): Promise<Tfjs.LayersModel> {
  checkLayers(topology);
  let model: Tfjs.LayersModel;
  try {
    model = await tf.models.modelFromJSON({
      modelTopology: seededTopology(await completeTopology(tf, topology), seed),
    } as never);
  } catch (cause) {
    throw new AilinkError(
      'MODEL_INVALID',
      `TensorFlow.js cannot build the model: ${(cause as Error).message}`,
      {
        cause,
      },
    );
  }
  try {
    built.set(model, { tf, spec: describe(model) });
  } catch (err) {
    model.dispose();
    throw err;
  }
  return model;
}

function checkLayers(topology: Record<string, unknown>): void {
  const layers = ((topology.config as { layers?: unknown }).layers ?? []) as {
    class_name?: unknown;
    config?: { name?: unknown };
  }[];
  if (!Array.isArray(layers) || layers.length === 0) invalid('the model has no layers');
  for (const [i, layer] of layers.entries()) {
    const kind = String(layer?.class_name);
    if (!SUPPORTED_LAYERS.has(kind))
      throw new AilinkError(
        'MODEL_LAYER_UNSUPPORTED',
        `layer ${i} ("${String(layer?.config?.name ?? '?')}") is a ${kind}, which AI-LINK cannot train; supported: ${[...SUPPORTED_LAYERS].join(', ')}`,
        { details: { layer: layer?.config?.name ?? null, index: i, className: kind } },
      );
  }
}

function describe(model: Tfjs.LayersModel): ModelSpec {
  if (model.inputs.length !== 1 || model.outputs.length !== 1)
    invalid(
      `expected a model with one input and one output, got ${model.inputs.length} and ${model.outputs.length}`,
    );
  const outShape = model.outputs[0]!.shape;
  if (outShape.length !== 2 || !(outShape[1]! >= 1))
    invalid(`expected the output to be [batch, units], got [${outShape.join(', ')}]`);
  const inputShape = model.inputs[0]!.shape.slice(1);
  if (!inputShape.every((d) => Number.isSafeInteger(d) && d! > 0))
    invalid(`expected a fixed input shape, got [${model.inputs[0]!.shape.join(', ')}]`);
  const last = model.layers[model.layers.length - 1]!;
  const activation = (last.getConfig() as { activation?: string }).activation;
  const probabilities =
    activation === 'softmax' || activation === 'sigmoid' || last.getClassName() === 'Softmax';
  const tensors = model.weights.map((w) => ({ name: w.originalName, shape: [...w.shape] as number[] }));
  return {
    name: model.name,
    inputShape: inputShape as number[],
    outputUnits: outShape[1]!,
    output: probabilities ? 'probabilities' : 'logits',
    parameters: tensors.reduce((a, t) => a + sizeOf(t.shape), 0),
    tensors,
  };
}

/**
 * The spec of a model built by buildModel.
 * @throws MODEL_UNKNOWN when the model was not built by buildModel
 */
export function specOf(model: Tfjs.LayersModel): ModelSpec {
  return entryOf(model).spec;
}

function entryOf(model: Tfjs.LayersModel): { tf: Tf; spec: ModelSpec } {
  const entry = built.get(model);
  if (entry === undefined)
    throw new AilinkError('MODEL_UNKNOWN', `model "${model.name}" was not built by buildModel`);
  return entry;
}

/**
 * The weights a package carries, as a flat vector in the model's canonical order.
 * @throws MODEL_SHAPE_MISMATCH naming the first tensor whose name or shape differs from the topology's
 */
export function packageWeights(spec: ModelSpec, pkg: ModelPackage): Float32Array | null {
  if (pkg.weights === null) return null;
  const { specs, data } = pkg.weights;
  // Weight names in a saved manifest may carry a scope prefix ("sequential_1/dense/kernel"): match on the suffix.
  const byName = new Map<string, { offset: number; shape: readonly number[] }>();
  let offset = 0;
  for (const s of specs) {
    byName.set(s.name, { offset, shape: s.shape });
    offset += 4 * sizeOf(s.shape);
  }
  const out = new Float32Array(spec.parameters);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let at = 0;
  for (const t of spec.tensors) {
    const found =
      byName.get(t.name) ?? [...byName.entries()].find(([n]) => n.endsWith(`/${t.name}`))?.[1] ?? undefined;
    if (found === undefined || found.shape.join('x') !== t.shape.join('x'))
      throw new AilinkError(
        'MODEL_SHAPE_MISMATCH',
        found === undefined
          ? `the weights have no tensor ${t.name} (the topology needs it, shape [${t.shape.join(', ')}])`
          : `weight ${t.name} has shape [${found.shape.join(', ')}], the topology needs [${t.shape.join(', ')}]`,
        { details: { tensor: t.name } },
      );
    for (let i = 0; i < sizeOf(t.shape); i++) out[at + i] = view.getFloat32(found.offset + 4 * i, true);
    at += sizeOf(t.shape);
  }
  if (specs.length !== spec.tensors.length)
    throw new AilinkError(
      'MODEL_SHAPE_MISMATCH',
      `the weights hold ${specs.length} tensors, the topology has ${spec.tensors.length}`,
    );
  checkFlatWeights(spec, out);
  return out;
}

/**
 * Weights read back from the backend at a time. Reading a tensor copies it out of the backend (the wasm heap) whole,
 * so a 100M-weight kernel read at once would cost a second copy of the model beside the result; in slices of this
 * many the transient copies stay at 16 MB, and the slices themselves reuse heap the training step has freed.
 */
const READ_SLICE = 1 << 22;

/**
 * The model's weights as one vector in the canonical order, written into `into` when given (a vector of the model's
 * length the caller no longer needs, such as the weights a job started from).
 * @throws MODEL_UNKNOWN when the model was not built by buildModel
 * @throws MODEL_SHAPE_MISMATCH when `into` is not of the model's length
 */
export function flattenWeights(model: Tfjs.LayersModel, into?: Float32Array): Float32Array {
  const { tf, spec } = entryOf(model);
  const out = into ?? new Float32Array(spec.parameters);
  if (out.length !== spec.parameters)
    throw new AilinkError(
      'MODEL_SHAPE_MISMATCH',
      `expected a vector of ${spec.parameters} weights for ${spec.name}, got ${out.length}`,
    );
  let at = 0;
  for (const w of model.weights) {
    // The variable itself, no new tensor: nothing to dispose.
    const value = w.read();
    if (value.size <= READ_SLICE) out.set(value.dataSync() as Float32Array, at);
    else {
      const flat = tf.reshape(value, [-1]); // shares the variable's data
      for (let from = 0; from < value.size; from += READ_SLICE) {
        const slice = tf.slice(flat, from, Math.min(READ_SLICE, value.size - from));
        out.set(slice.dataSync() as Float32Array, at + from);
        slice.dispose();
      }
      flat.dispose();
    }
    at += value.size;
  }
  return out;
}

/**
 * Replaces the model's weights with a flat vector in the canonical order. The values are copied.
 * @throws MODEL_SHAPE_MISMATCH, MODEL_WEIGHTS_INVALID as checkFlatWeights; MODEL_UNKNOWN for a model not built here
 */
export function loadFlatWeights(model: Tfjs.LayersModel, flat: Float32Array): void {
  const { tf, spec } = entryOf(model);
  checkFlatWeights(spec, flat);
  const wasm = tf.getBackend() === 'wasm';
  tf.tidy(() => {
    let at = 0;
    for (const [i, w] of model.weights.entries()) {
      const shape = [...spec.tensors[i]!.shape];
      const size = sizeOf(shape);
      // The wasm backend copies a new tensor's values into its heap at once; the cpu backend would keep a view of
      // the caller's array as the variable's storage, so it gets a copy (for wasm, one would be a needless transient
      // copy of a large model's biggest tensor).
      const values = wasm ? flat.subarray(at, at + size) : flat.slice(at, at + size);
      w.write(tf.tensor(values, shape, 'float32'));
      at += size;
    }
  });
}

/**
 * Checks a flat weight vector against a spec without TensorFlow.js (for aggregators and loaders).
 * @throws MODEL_SHAPE_MISMATCH when the length is not the model's parameter count
 * @throws MODEL_WEIGHTS_INVALID when a value is NaN or infinite, naming the first one and its tensor
 */
export function checkFlatWeights(spec: ModelSpec, flat: Float32Array): void {
  if (flat.length !== spec.parameters) {
    throw new AilinkError(
      'MODEL_SHAPE_MISMATCH',
      `expected ${spec.parameters} weights for ${spec.name}, got ${flat.length}`,
      { details: { model: spec.name, expected: spec.parameters, got: flat.length } },
    );
  }
  for (let i = 0; i < flat.length; i++) {
    // x - x is 0 for every finite x and NaN for NaN and ±Infinity: one comparison per value.
    if (flat[i]! - flat[i]! !== 0) {
      let start = 0;
      const tensor = spec.tensors.find((t) => {
        start += sizeOf(t.shape);
        return i < start;
      })!;
      throw new AilinkError(
        'MODEL_WEIGHTS_INVALID',
        `weight ${i} of ${spec.name} (in ${tensor.name}) is ${flat[i]}; weights must be finite`,
        { details: { model: spec.name, index: i, tensor: tensor.name } },
      );
    }
  }
}

/** A TensorFlow.js layers model as files: `model.json` (topology + weights manifest) and the one weights file. */
export interface TfjsModelFiles {
  readonly modelJson: Record<string, unknown>;
  readonly weightsPath: string;
  readonly weights: Uint8Array;
}

/**
 * The files `tf.loadLayersModel` reads, for a flat weight vector: the model is built from its topology, given the
 * weights, and saved through tfjs's own serialiser, so the topology and weight names are exactly what tfjs expects.
 * @throws MODEL_SHAPE_MISMATCH, MODEL_WEIGHTS_INVALID, MODEL_INVALID as loadFlatWeights and buildModel do
 */
export async function tfjsModelFiles(
  tf: Tf,
  topology: Record<string, unknown>,
  flat: Float32Array,
): Promise<TfjsModelFiles> {
  const model = await buildModel(tf, topology, 'export');
  try {
    loadFlatWeights(model, flat);
    let saved: Tfjs.io.ModelArtifacts | undefined;
    await model.save(
      tf.io.withSaveHandler(async (artifacts) => {
        saved = artifacts;
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
    );
    const { modelTopology, weightSpecs, weightData } = saved!;
    const weightsPath = 'weights.bin';
    const weights = new Uint8Array(
      weightData instanceof ArrayBuffer ? weightData : tf.io.concatenateArrayBuffers(weightData!),
    );
    return {
      modelJson: {
        format: 'layers-model',
        generatedBy: `TensorFlow.js tfjs-layers v${tf.version['tfjs-layers']}`,
        convertedBy: null,
        modelTopology,
        weightsManifest: [{ paths: [weightsPath], weights: weightSpecs }],
      },
      weightsPath,
      weights,
    };
  } finally {
    model.dispose();
  }
}
