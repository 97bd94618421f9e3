import type * as Tfjs from '@tensorflow/tfjs';
import { checkFlatWeights, type ModelSpec, specOf, type Tf } from '../../models/index.ts';
import { AilinkError } from '../shared/errors.ts';
import { type Examples, exampleSize } from './examples.ts';
import { seededRng } from './partition.ts';

/**
 * Local training and evaluation over a given tf instance (tf.ts loads one; train-pool.ts runs this on worker
 * threads): minibatch steps of the task's optimizer on the task's loss, with FedProx's proximal term when asked.
 * Reproducible: the only randomness is the per-epoch shuffle, drawn from the seed, so the same starting weights, data,
 * options and backend give bit-identical weights.
 */

/** What local training and evaluation read: labelled examples in the model's input shape (examples.ts). */
export type TrainingData = Examples;

export type LossName = 'categorical_crossentropy' | 'binary_crossentropy' | 'mean_squared_error';

export interface OptimizerOptions {
  readonly name: 'sgd' | 'momentum' | 'adam';
  readonly learningRate: number;
  readonly momentum?: number;
  readonly beta1?: number;
  readonly beta2?: number;
}

export interface TrainOptions {
  /** Passes over the data (E in the FedAvg paper). */
  readonly epochs: number;
  /** Minibatch size (B), default 50. The last batch of an epoch may be smaller. */
  readonly batchSize?: number;
  /** Default: categorical cross-entropy. */
  readonly loss?: LossName;
  /** Default: SGD at DEFAULT_LEARNING_RATE. A fresh optimizer for every call (its state does not cross rounds). */
  readonly optimizer?: OptimizerOptions;
  /** Seeds the per-epoch shuffles. */
  readonly seed: string;
  /** FedProx (Li et al. 2020): adds μ/2‖w − w_global‖² to the loss, pulling local weights towards the global model. */
  readonly proximal?: { readonly mu: number; readonly global: Float32Array };
}

export interface TrainResult {
  /** Mean loss over the last epoch's examples, as measured on each batch before its step (no proximal term). */
  readonly loss: number;
  /** The number of local examples (the weight FedAvg gives this client), not multiplied by the epochs. */
  readonly examples: number;
  readonly seconds: number;
  /** Examples processed per second: examples × epochs ÷ seconds. */
  readonly samplesPerSecond: number;
}

export interface EvaluationResult {
  readonly accuracy: number;
  /** Mean loss. */
  readonly loss: number;
  readonly examples: number;
  /** Correctly classified examples and the summed loss: what a secure sum of evaluations adds up. */
  readonly correct: number;
  readonly lossSum: number;
}

export const DEFAULT_BATCH_SIZE = 50;
export const DEFAULT_LEARNING_RATE = 0.05;
export const DEFAULT_EVAL_BATCH_SIZE = 500;

/** Pixel value → model input. The one place images are normalised (to [0, 1]); a table, so every value rounds once. */
const PIXEL_SCALE = Float32Array.from({ length: 256 }, (_, v) => v / 255);

/** A batch of examples as the model's input tensor (pixels scaled, features as they are). */
function inputBatch(tf: Tf, spec: ModelSpec, data: Examples, indices: ArrayLike<number>): Tfjs.Tensor {
  const size = exampleSize(spec.inputShape);
  const out = new Float32Array(indices.length * size);
  const x = data.x;
  for (let k = 0; k < indices.length; k++) {
    const from = indices[k]! * size;
    if (x instanceof Uint8Array) {
      const to = k * size;
      for (let p = 0; p < size; p++) out[to + p] = PIXEL_SCALE[x[from + p]!]!;
    } else out.set(x.subarray(from, from + size), k * size);
  }
  return tf.tensor(out, [indices.length, ...spec.inputShape], 'float32');
}

/** Targets as the output has them: one-hot over the classes, or 0/1 for a single-unit binary output. */
function labelBatch(tf: Tf, spec: ModelSpec, labels: Uint16Array, indices: ArrayLike<number>): Tfjs.Tensor2D {
  const units = spec.outputUnits;
  const out = new Float32Array(indices.length * units);
  for (let k = 0; k < indices.length; k++) {
    const label = labels[indices[k]!]!;
    if (units === 1) out[k] = label;
    else out[k * units + label] = 1;
  }
  return tf.tensor2d(out, [indices.length, units], 'float32');
}

/** Probabilities are clipped away from 0 and 1 before a log, as Keras does. */
const EPSILON = 1e-7;

/** The loss per example (a vector), from the model's output as it is (logits or probabilities). */
function lossPerExample(
  tf: Tf,
  spec: ModelSpec,
  loss: LossName,
  y: Tfjs.Tensor2D,
  out: Tfjs.Tensor2D,
): Tfjs.Tensor1D {
  const none = tf.Reduction.NONE;
  if (loss === 'mean_squared_error') return tf.mean(tf.squaredDifference(y, out), 1) as Tfjs.Tensor1D;
  if (loss === 'binary_crossentropy') {
    if (spec.output === 'logits')
      return tf.mean(tf.losses.sigmoidCrossEntropy(y, out, undefined, 0, none), 1);
    const p = tf.clipByValue(out, EPSILON, 1 - EPSILON);
    const terms = tf.add(tf.mul(y, tf.log(p)), tf.mul(tf.sub(1, y), tf.log(tf.sub(1, p))));
    return tf.neg(tf.mean(terms, 1)) as Tfjs.Tensor1D;
  }
  if (spec.output === 'logits')
    return tf.losses.softmaxCrossEntropy(y, out, undefined, 0, none) as Tfjs.Tensor1D;
  return tf.neg(tf.sum(tf.mul(y, tf.log(tf.clipByValue(out, EPSILON, 1))), 1)) as Tfjs.Tensor1D;
}

/** Predicted classes: the largest output, or for one unit whether it passes 0.5 (probability) or 0 (logit). */
function predictions(tf: Tf, spec: ModelSpec, out: Tfjs.Tensor2D): Tfjs.Tensor1D {
  if (spec.outputUnits > 1) return tf.argMax(out, 1) as Tfjs.Tensor1D;
  const cut = spec.output === 'logits' ? 0 : 0.5;
  return tf.cast(tf.greater(tf.squeeze(out, [1]), cut), 'int32') as Tfjs.Tensor1D;
}

/** What a training step asks of an optimizer: minimise a loss over the variables, answering the loss. */
interface Optimizer {
  minimize(loss: () => Tfjs.Scalar, variables: Tfjs.Variable[]): Tfjs.Scalar;
  dispose(): void;
}

function optimizerOf(tf: Tf, options: OptimizerOptions): Optimizer {
  const lr = options.learningRate;
  if (!(lr > 0) || !Number.isFinite(lr))
    throw new AilinkError('INVALID_INPUT', `expected a learning rate > 0, got ${lr}`);
  if (options.name === 'sgd') return plainSgd(tf, lr);
  const optimizer =
    options.name === 'momentum'
      ? tf.train.momentum(lr, options.momentum ?? 0.9)
      : tf.train.adam(lr, options.beta1 ?? 0.9, options.beta2 ?? 0.999);
  return {
    minimize: (loss, variables) => optimizer.minimize(loss, true, variables)!,
    dispose: () => optimizer.dispose(),
  };
}

/**
 * Plain SGD with tfjs's arithmetic (w + (−lr)·g, bit for bit the same weights), applied one variable at a time with
 * each gradient disposed as soon as its step is made. tfjs's own optimizer holds the gradient, the scaled step and
 * the new value at once beside the weights: four copies of the largest tensor, and the worker's WebAssembly heap
 * never gives back what it grew to. This holds three (bench:train-memory).
 */
function plainSgd(tf: Tf, lr: number): Optimizer {
  const scale = tf.keep(tf.scalar(-lr));
  return {
    minimize(loss, variables) {
      const { value, grads } = tf.variableGrads(loss, variables);
      for (const variable of variables) {
        const gradient = grads[variable.name];
        if (gradient === undefined) continue;
        const step = tf.mul(scale, gradient);
        gradient.dispose();
        const next = tf.add(step, variable);
        step.dispose();
        variable.assign(next);
        next.dispose(); // the variable holds its data now
      }
      return value;
    },
    dispose: () => scale.dispose(),
  };
}

/** @throws INVALID_INPUT when the examples do not fit the model (shape, label range) or each other */
function checkData(spec: ModelSpec, data: TrainingData): number {
  const n = data.count;
  const size = exampleSize(spec.inputShape);
  if (n === 0 || data.y.length < n)
    throw new AilinkError('INVALID_INPUT', `expected at least one example, got ${n}`);
  if (data.shape.join('x') !== spec.inputShape.join('x'))
    throw new AilinkError(
      'INVALID_INPUT',
      `the examples have shape [${data.shape.join(', ')}], the model takes [${spec.inputShape.join(', ')}]`,
    );
  if (data.x.length < n * size)
    throw new AilinkError(
      'INVALID_INPUT',
      `expected ${n} × ${size} = ${n * size} values, got ${data.x.length}`,
    );
  const classes = Math.max(2, spec.outputUnits);
  for (let i = 0; i < n; i++) {
    if (data.y[i]! >= classes)
      throw new AilinkError(
        'INVALID_INPUT',
        `label ${i} is ${data.y[i]}; ${spec.name} outputs classes 0..${classes - 1}`,
      );
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
  const lossName = options.loss ?? 'categorical_crossentropy';
  const optimizerOptions = options.optimizer ?? { name: 'sgd', learningRate: DEFAULT_LEARNING_RATE };
  const proximal = options.proximal;
  if (proximal !== undefined) {
    if (!(proximal.mu >= 0) || !Number.isFinite(proximal.mu)) {
      throw new AilinkError('INVALID_INPUT', `expected the proximal μ ≥ 0, got ${proximal.mu}`);
    }
    checkFlatWeights(spec, proximal.global);
  }

  const started = performance.now();
  const variables = model.trainableWeights.map((w) => w.read() as Tfjs.Variable);
  const optimizer = optimizerOf(tf, optimizerOptions);
  // The global model as constants, one per variable, made once per call rather than once per step.
  // Only trainable weights are pulled (BatchNormalization's moving statistics are not variables of the step).
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
          const x = inputBatch(tf, spec, data, indices);
          const y = labelBatch(tf, spec, data.y, indices);
          let taskLoss: Tfjs.Scalar | undefined;
          const cost = optimizer.minimize(() => {
            const out = model.apply(x, { training: true }) as Tfjs.Tensor2D;
            // Mean over the batch.
            taskLoss = tf.keep(tf.mean(lossPerExample(tf, spec, lossName, y, out)) as Tfjs.Scalar);
            if (globals === null) return taskLoss;
            const distance = tf.addN(variables.map((v, i) => tf.sum(tf.squaredDifference(v, globals[i]!))));
            return tf.add(taskLoss, tf.mul(mu / 2, distance)) as Tfjs.Scalar;
          }, variables);
          // A scalar read back per batch: cheap, and it lets a diverging run stop at once. (Without the proximal
          // term the cost is the loss tensor itself, so read before disposing.)
          const value = taskLoss!.dataSync()[0]!;
          tf.dispose([taskLoss!, cost]);
          return value;
        });
        if (!Number.isFinite(batchLoss)) {
          throw new AilinkError(
            'TRAINING_DIVERGED',
            `the loss became ${batchLoss} in epoch ${epoch + 1} at example ${start}; lower the learning rate`,
            { details: { epoch: epoch + 1, example: start, learningRate: optimizerOptions.learningRate } },
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
 * Accuracy and mean loss of `model` on `data`, batch by batch. Only two numbers per batch are read back (reading big
 * tensors is slow on wasm).
 * @throws INVALID_INPUT for data that does not fit the model, or a batch size that is not a positive integer
 * @throws MODEL_UNKNOWN when the model was not built by buildModel
 */
export function evaluate(
  tf: Tf,
  model: Tfjs.LayersModel,
  data: TrainingData,
  options: { batchSize?: number; loss?: LossName } = {},
): EvaluationResult {
  const spec = specOf(model);
  const n = checkData(spec, data);
  const batchSize = positiveInteger('the batch size', options.batchSize ?? DEFAULT_EVAL_BATCH_SIZE);
  const lossName = options.loss ?? 'categorical_crossentropy';
  let correct = 0;
  let lossSum = 0;
  for (let start = 0; start < n; start += batchSize) {
    const indices = Int32Array.from({ length: Math.min(batchSize, n - start) }, (_, k) => start + k);
    const [loss, hits] = tf.tidy(() => {
      const out = model.apply(inputBatch(tf, spec, data, indices), { training: false }) as Tfjs.Tensor2D;
      const y = labelBatch(tf, spec, data.y, indices);
      const loss = tf.sum(lossPerExample(tf, spec, lossName, y, out));
      const truth = tf.tensor1d(
        Int32Array.from(indices, (i) => data.y[i]!),
        'int32',
      );
      const hits = tf.sum(tf.cast(tf.equal(predictions(tf, spec, out), truth), 'float32'));
      return tf.stack([loss, hits]).dataSync();
    });
    lossSum += loss!;
    correct += hits!;
  }
  return { accuracy: correct / n, loss: lossSum / n, examples: n, correct, lossSum };
}
