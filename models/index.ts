import { createHash } from 'node:crypto';
import type * as Tfjs from '@tensorflow/tfjs';
import { AilinkError } from '../src/shared/errors.ts';
import { CNN } from './cnn.ts';
import { MLP } from './mlp.ts';

/**
 * The models AI-LINK trains, each defined once (models/cnn.ts, models/mlp.ts) as a list of layers. From that one
 * definition come both the pure description every party agrees on (`modelSpec`: tensor names and shapes in the
 * canonical order, which is also the order of a flat weight vector, the unit that is masked, aggregated and stored)
 * and the TensorFlow.js model that trains (`buildModel`, with the tf.layers API so that `model.save` writes the
 * model.json + weights that leave the system).
 */

/** The TensorFlow.js namespace (tfjs, or tfjs-node when installed); passed in, never imported here at run time. */
export type Tf = typeof Tfjs;

export const MODEL_NAMES = ['cnn', 'mlp'] as const;
export type ModelName = (typeof MODEL_NAMES)[number];

/** Fashion-MNIST (and MNIST): 28×28 grey images, 10 classes. Both models take the image unflattened. */
const INPUT_SHAPE = [28, 28, 1] as const;
const CLASSES = 10;

export type Activation = 'relu' | 'linear';

/** One layer of a model definition; weights are named `<layer>/kernel` and `<layer>/bias`, as tf.layers names them. */
export type LayerDefinition =
  | {
      readonly kind: 'conv2d';
      readonly name: string;
      readonly filters: number;
      readonly kernelSize: number;
      readonly activation: Activation;
    }
  | { readonly kind: 'maxPool2d'; readonly name: string; readonly poolSize: number }
  | { readonly kind: 'flatten'; readonly name: string }
  | {
      readonly kind: 'dense';
      readonly name: string;
      readonly units: number;
      readonly activation: Activation;
    };

export interface ModelDefinition {
  readonly name: string;
  readonly layers: readonly LayerDefinition[];
}

export interface TensorSpec {
  readonly name: string;
  readonly shape: readonly number[];
}

/** What a model is, without TensorFlow.js: enough to size, check and lay out a flat weight vector. */
export interface ModelSpec {
  readonly name: ModelName;
  readonly inputShape: readonly number[];
  readonly classes: number;
  /** The total number of weights, the length of a flat weight vector. */
  readonly parameters: number;
  /** Every weight tensor in the canonical order (layer by layer, kernel before bias). */
  readonly tensors: readonly TensorSpec[];
}

const DEFINITIONS: Record<ModelName, ModelDefinition> = { cnn: CNN, mlp: MLP };

const isModelName = (name: string): name is ModelName => (MODEL_NAMES as readonly string[]).includes(name);

/** Walks the layers from the input shape; convolutions keep the size ('same'), pooling halves it (floor). */
function describe(name: ModelName): ModelSpec {
  const definition = DEFINITIONS[name];
  let shape: number[] = [...INPUT_SHAPE];
  const tensors: TensorSpec[] = [];
  for (const layer of definition.layers) {
    if (layer.kind === 'conv2d') {
      const [h, w, channels] = shape as [number, number, number];
      tensors.push(
        {
          name: `${layer.name}/kernel`,
          shape: [layer.kernelSize, layer.kernelSize, channels, layer.filters],
        },
        { name: `${layer.name}/bias`, shape: [layer.filters] },
      );
      shape = [h, w, layer.filters];
    } else if (layer.kind === 'maxPool2d') {
      const [h, w, channels] = shape as [number, number, number];
      shape = [Math.floor(h / layer.poolSize), Math.floor(w / layer.poolSize), channels];
    } else if (layer.kind === 'flatten') {
      shape = [shape.reduce((a, d) => a * d, 1)];
    } else {
      tensors.push(
        { name: `${layer.name}/kernel`, shape: [shape[0]!, layer.units] },
        { name: `${layer.name}/bias`, shape: [layer.units] },
      );
      shape = [layer.units];
    }
  }
  return {
    name,
    inputShape: INPUT_SHAPE,
    classes: CLASSES,
    parameters: tensors.reduce((a, t) => a + sizeOf(t.shape), 0),
    tensors,
  };
}

const sizeOf = (shape: readonly number[]) => shape.reduce((a, d) => a * d, 1);

const specs = new Map<ModelName, ModelSpec>();

/**
 * The pure description of a model: input shape, classes, parameter count, weight tensors in the canonical order.
 * @throws MODEL_UNKNOWN for a name that is not in MODEL_NAMES
 */
export function modelSpec(name: string): ModelSpec {
  if (!isModelName(name)) {
    throw new AilinkError(
      'MODEL_UNKNOWN',
      `unknown model "${name}"; known models: ${MODEL_NAMES.join(', ')}`,
    );
  }
  let spec = specs.get(name);
  if (spec === undefined) {
    spec = describe(name);
    specs.set(name, spec);
  }
  return spec;
}

/** A 32-bit initializer seed per layer, from the model seed: layers must not share a random stream. */
function layerSeed(seed: string, model: ModelName, layer: string): number {
  return createHash('sha256').update(`ailink/model/${model}/${layer}/${seed}`).digest().readUInt32LE(0);
}

/** Models built here, with the tf instance that built them (loading weights needs its tensor constructor). */
const built = new WeakMap<Tfjs.LayersModel, { tf: Tf; spec: ModelSpec }>();

/**
 * Builds a model with tf.layers. Kernels are Glorot-uniform from a per-layer seed derived from `seed`, biases zero, so
 * the initial weights depend only on the seed: the same seed gives bit-identical weights on every backend (tfjs draws
 * seeded random numbers in JavaScript, not on the backend).
 * @throws MODEL_UNKNOWN for a name that is not in MODEL_NAMES
 */
export function buildModel(tf: Tf, name: string, seed: string): Tfjs.LayersModel {
  const spec = modelSpec(name);
  const model = tf.sequential({ name: spec.name });
  for (const [i, layer] of DEFINITIONS[spec.name].layers.entries()) {
    const first = i === 0 ? { inputShape: [...spec.inputShape] } : {};
    const kernelInitializer = () =>
      tf.initializers.glorotUniform({ seed: layerSeed(seed, spec.name, layer.name) });
    if (layer.kind === 'conv2d') {
      model.add(
        tf.layers.conv2d({
          ...first,
          name: layer.name,
          filters: layer.filters,
          kernelSize: layer.kernelSize,
          padding: 'same',
          activation: layer.activation,
          kernelInitializer: kernelInitializer(),
          biasInitializer: 'zeros',
        }),
      );
    } else if (layer.kind === 'maxPool2d') {
      model.add(tf.layers.maxPooling2d({ ...first, name: layer.name, poolSize: layer.poolSize }));
    } else if (layer.kind === 'flatten') {
      model.add(tf.layers.flatten({ ...first, name: layer.name }));
    } else {
      model.add(
        tf.layers.dense({
          ...first,
          name: layer.name,
          units: layer.units,
          activation: layer.activation,
          kernelInitializer: kernelInitializer(),
          biasInitializer: 'zeros',
        }),
      );
    }
  }
  // The spec is derived from the same definition; if tf.layers ever orders or shapes weights differently, flat
  // vectors would silently scramble, so check once here.
  const actual = model.weights.map((w) => ({ name: w.originalName, shape: w.shape }));
  const expected = spec.tensors.map((t) => ({ name: t.name, shape: [...t.shape] }));
  if (JSON.stringify(actual) !== JSON.stringify(expected)) {
    model.dispose();
    throw new Error(
      `tf.layers built ${name} with weights ${JSON.stringify(actual)}, the spec says ${JSON.stringify(expected)}`,
    );
  }
  built.set(model, { tf, spec });
  return model;
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
  if (entry === undefined) {
    throw new AilinkError('MODEL_UNKNOWN', `model "${model.name}" was not built by buildModel`);
  }
  return entry;
}

/**
 * The model's weights as one vector in the canonical order (`modelSpec(name).tensors`).
 * @throws MODEL_UNKNOWN when the model was not built by buildModel
 */
export function flattenWeights(model: Tfjs.LayersModel): Float32Array {
  const { spec } = entryOf(model);
  const out = new Float32Array(spec.parameters);
  let at = 0;
  for (const w of model.weights) {
    // The variable itself, no new tensor: nothing to dispose.
    const values = w.read().dataSync() as Float32Array;
    out.set(values, at);
    at += values.length;
  }
  return out;
}

/**
 * Replaces the model's weights with a flat vector in the canonical order. The values are copied.
 * @throws MODEL_SHAPE_MISMATCH when the length is not the model's parameter count
 * @throws MODEL_WEIGHTS_INVALID when a value is NaN or infinite
 * @throws MODEL_UNKNOWN when the model was not built by buildModel
 */
export function loadFlatWeights(model: Tfjs.LayersModel, flat: Float32Array): void {
  const { tf, spec } = entryOf(model);
  checkFlatWeights(spec, flat);
  tf.tidy(() => {
    let at = 0;
    for (const [i, w] of model.weights.entries()) {
      const shape = [...spec.tensors[i]!.shape];
      const size = sizeOf(shape);
      // A copy: the cpu backend would otherwise keep a view of the caller's array as the variable's storage.
      w.write(tf.tensor(flat.slice(at, at + size), shape, 'float32'));
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
 * The files `tf.loadLayersModel` reads, for a flat weight vector: the model is rebuilt from its definition, given the
 * weights, and saved through tfjs's own serialiser, so the topology and weight names are exactly what tfjs expects.
 * @throws MODEL_SHAPE_MISMATCH, MODEL_WEIGHTS_INVALID, MODEL_UNKNOWN as loadFlatWeights and buildModel do
 */
export async function tfjsModelFiles(tf: Tf, name: string, flat: Float32Array): Promise<TfjsModelFiles> {
  const model = buildModel(tf, name, 'export');
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
