import type * as Tfjs from '@tensorflow/tfjs';
import { checkFlatWeights, type ModelSpec, specOf, type Tf } from '../../models/index.ts';
import { AilinkError } from '../shared/errors.ts';
import { seededRng } from './partition.ts';

/**
 * Local training and evaluation over a given tf instance (tf.ts loads one; train-pool.ts runs this on worker
 * threads). Plain minibatch SGD on softmax cross-entropy, as FedAvg's clients do, with FedProx's proximal term when
 * asked. Reproducible: the only randomness is the per-epoch shuffle, drawn from the seed, so the same starting
 * weights, data, options and backend give bit-identical weights.
 */

/** Labelled images as Fashion-MNIST ships them: n × 784 pixels (0..255, row-major) and n labels. */
export interface TrainingData {
  readonly images: Uint8Array;
  readonly labels: Uint8Array;
}

export interface TrainOptions {
  /** Passes over the data (E in the FedAvg paper). */
  readonly epochs: number;
  /** Minibatch size (B), default 50. The last batch of an epoch may be smaller. */
  readonly batchSize?: number;
  /** SGD step size (η), default 0.05. */
  readonly learningRate?: number;
  /** Seeds the per-epoch shuffles. */
  readonly seed: string;
  /** FedProx (Li et al. 2020): adds μ/2‖w − w_global‖² to the loss, pulling local weights towards the global model. */
  readonly proximal?: { readonly mu: number; readonly global: Float32Array };
}

export interface TrainResult {
  /** Mean cross-entropy over the last epoch's examples, as measured on each batch before its step (no proximal term). */
  readonly loss: number;
  /** The number of local examples (the weight FedAvg gives this client), not multiplied by the epochs. */
  readonly examples: number;
  readonly seconds: number;
  /** Examples processed per second: examples × epochs ÷ seconds. */
  readonly samplesPerSecond: number;
}

export interface EvaluationResult {
  readonly accuracy: number;
  /** Mean cross-entropy. */
  readonly loss: number;
  readonly examples: number;
}

export const DEFAULT_BATCH_SIZE = 50;
export const DEFAULT_LEARNING_RATE = 0.05;
export const DEFAULT_EVAL_BATCH_SIZE = 500;

/** Pixel value → model input. The one place images are normalised (to [0, 1]); a table, so every value rounds once. */
const PIXEL_SCALE = Float32Array.from({ length: 256 }, (_, v) => v / 255);

/** A batch of images as the model's input tensor, normalised. */
function inputBatch(tf: Tf, spec: ModelSpec, images: Uint8Array, indices: ArrayLike<number>): Tfjs.Tensor {
  const pixels = pixelsOf(spec);
  const out = new Float32Array(indices.length * pixels);
  for (let k = 0; k < indices.length; k++) {
    const from = indices[k]! * pixels;
    const to = k * pixels;
    for (let p = 0; p < pixels; p++) out[to + p] = PIXEL_SCALE[images[from + p]!]!;
  }
  return tf.tensor(out, [indices.length, ...spec.inputShape], 'float32');
}

/** One-hot labels, built in JavaScript: a float tensor straight away, no int → float cast on the backend. */
function labelBatch(tf: Tf, spec: ModelSpec, labels: Uint8Array, indices: ArrayLike<number>): Tfjs.Tensor2D {
  const out = new Float32Array(indices.length * spec.classes);
  for (let k = 0; k < indices.length; k++) out[k * spec.classes + labels[indices[k]!]!] = 1;
  return tf.tensor2d(out, [indices.length, spec.classes], 'float32');
}

const pixelsOf = (spec: ModelSpec) => spec.inputShape.reduce((a, d) => a * d, 1);

/** @throws INVALID_INPUT when images and labels do not fit the model or each other */
function checkData(spec: ModelSpec, data: TrainingData): number {
  const n = data.labels.length;
  const pixels = pixelsOf(spec);
  if (n === 0) throw new AilinkError('INVALID_INPUT', 'expected at least one example, got none');
  if (data.images.length !== n * pixels) {
    throw new AilinkError(
      'INVALID_INPUT',
      `expected ${n} × ${pixels} = ${n * pixels} pixels for ${n} labels, got ${data.images.length}`,
    );
  }
  for (let i = 0; i < n; i++) {
    if (data.labels[i]! >= spec.classes) {
      throw new AilinkError(
        'INVALID_INPUT',
        `label ${i} is ${data.labels[i]}; ${spec.name} has classes 0..${spec.classes - 1}`,
      );
    }
  }
  return n;
}

function positiveInteger(what: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new AilinkError('INVALID_INPUT', `expected ${what} to be a positive integer, got ${value}`);
  }
  return value;
}

/**
 * Trains `model` in place for `options.epochs` epochs of minibatch SGD and leaves the trained weights in it.
 * Every tensor it makes is disposed before it returns, also when it throws.
 * @throws INVALID_INPUT for data that does not fit the model, or epochs/batch size/learning rate/μ out of range
 * @throws MODEL_SHAPE_MISMATCH, MODEL_WEIGHTS_INVALID for a proximal global model of the wrong length or non-finite
 * @throws TRAINING_DIVERGED when a batch's loss is NaN or infinite (the model's weights are then unusable)
 * @throws MODEL_UNKNOWN when the model was not built by buildModel
 */
export function trainLocal(
  tf: Tf,
  model: Tfjs.LayersModel,
  data: TrainingData,
  options: TrainOptions,
): TrainResult {
  const spec = specOf(model);
  const n = checkData(spec, data);
  const epochs = positiveInteger('epochs', options.epochs);
  const batchSize = positiveInteger('the batch size', options.batchSize ?? DEFAULT_BATCH_SIZE);
  const learningRate = options.learningRate ?? DEFAULT_LEARNING_RATE;
  if (!(learningRate > 0) || !Number.isFinite(learningRate)) {
    throw new AilinkError('INVALID_INPUT', `expected a learning rate > 0, got ${learningRate}`);
  }
  const proximal = options.proximal;
  if (proximal !== undefined) {
    if (!(proximal.mu >= 0) || !Number.isFinite(proximal.mu)) {
      throw new AilinkError('INVALID_INPUT', `expected the proximal μ ≥ 0, got ${proximal.mu}`);
    }
    checkFlatWeights(spec, proximal.global);
  }

  const started = performance.now();
  const variables = model.trainableWeights.map((w) => w.read() as Tfjs.Variable);
  const optimizer = tf.train.sgd(learningRate);
  // The global model as constants, one per variable, made once per call rather than once per step.
  const globals =
    proximal === undefined || proximal.mu === 0
      ? null
      : tf.tidy(() => {
          let at = 0;
          return spec.tensors.map((t) => {
            const size = t.shape.reduce((a, d) => a * d, 1);
            const tensor = tf.tensor(proximal.global.slice(at, at + size), [...t.shape], 'float32');
            at += size;
            return tensor;
          });
        });
  const mu = proximal?.mu ?? 0;
  const rng = seededRng(`train/${options.seed}`);
  const order = Int32Array.from({ length: n }, (_, i) => i);
  let epochLoss = Number.NaN;
  try {
    for (let epoch = 0; epoch < epochs; epoch++) {
      shuffle(order, rng);
      let lossSum = 0;
      for (let start = 0; start < n; start += batchSize) {
        const indices = order.subarray(start, Math.min(n, start + batchSize));
        const batchLoss = tf.tidy(() => {
          const x = inputBatch(tf, spec, data.images, indices);
          const y = labelBatch(tf, spec, data.labels, indices);
          let crossEntropy: Tfjs.Scalar | undefined;
          const cost = optimizer.minimize(
            () => {
              const logits = model.apply(x, { training: true }) as Tfjs.Tensor;
              // Mean over the batch; the softmax is inside the loss (the models output logits).
              crossEntropy = tf.keep(tf.losses.softmaxCrossEntropy(y, logits) as Tfjs.Scalar);
              if (globals === null) return crossEntropy;
              const distance = tf.addN(variables.map((v, i) => tf.sum(tf.squaredDifference(v, globals[i]!))));
              return tf.add(crossEntropy, tf.mul(mu / 2, distance)) as Tfjs.Scalar;
            },
            true,
            variables,
          );
          // A scalar read back per batch: cheap, and it lets a diverging run stop at once. (Without the proximal
          // term the cost is the cross-entropy tensor itself, so read before disposing.)
          const value = crossEntropy!.dataSync()[0]!;
          tf.dispose([crossEntropy!, cost!]);
          return value;
        });
        if (!Number.isFinite(batchLoss)) {
          throw new AilinkError(
            'TRAINING_DIVERGED',
            `the loss became ${batchLoss} in epoch ${epoch + 1} at example ${start}; lower the learning rate`,
            { details: { epoch: epoch + 1, example: start, learningRate } },
          );
        }
        lossSum += batchLoss * indices.length;
      }
      epochLoss = lossSum / n;
    }
  } finally {
    optimizer.dispose();
    if (globals !== null) tf.dispose(globals);
  }
  const seconds = (performance.now() - started) / 1000;
  return { loss: epochLoss, examples: n, seconds, samplesPerSecond: (n * epochs) / seconds };
}

/** Fisher–Yates, in place. */
function shuffle(items: Int32Array, rng: () => number): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    const t = items[i]!;
    items[i] = items[j]!;
    items[j] = t;
  }
}

/**
 * Accuracy and mean cross-entropy of `model` on `data`, batch by batch. Only two numbers per batch are read back
 * (reading big tensors is slow on wasm).
 * @throws INVALID_INPUT for data that does not fit the model, or a batch size that is not a positive integer
 * @throws MODEL_UNKNOWN when the model was not built by buildModel
 */
export function evaluate(
  tf: Tf,
  model: Tfjs.LayersModel,
  data: TrainingData,
  options: { batchSize?: number } = {},
): EvaluationResult {
  const spec = specOf(model);
  const n = checkData(spec, data);
  const batchSize = positiveInteger('the batch size', options.batchSize ?? DEFAULT_EVAL_BATCH_SIZE);
  let correct = 0;
  let lossSum = 0;
  for (let start = 0; start < n; start += batchSize) {
    const indices = Int32Array.from({ length: Math.min(batchSize, n - start) }, (_, k) => start + k);
    const [loss, hits] = tf.tidy(() => {
      const logits = model.apply(inputBatch(tf, spec, data.images, indices), {
        training: false,
      }) as Tfjs.Tensor2D;
      const y = labelBatch(tf, spec, data.labels, indices);
      const loss = tf.losses.softmaxCrossEntropy(y, logits, undefined, undefined, tf.Reduction.SUM);
      const hits = tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), tf.argMax(y, 1)), 'float32'));
      return tf.stack([loss, hits]).dataSync();
    });
    lossSum += loss!;
    correct += hits!;
  }
  return { accuracy: correct / n, loss: lossSum / n, examples: n };
}
