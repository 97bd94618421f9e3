import { join } from 'node:path';
import type * as Tfjs from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  BUILTIN_MODELS,
  buildModel as buildFromTopology,
  builtinModel,
  flattenWeights,
  loadFlatWeights,
  specOf,
  type Tf,
} from '../../models/index.ts';
import { FASHION_MNIST_DIR, imageExamples } from '../../src/participant/dataset.ts';
import { selectExamples } from '../../src/participant/examples.ts';
import { loadIdxDataset } from '../../src/participant/idx.ts';
import { seededRng } from '../../src/participant/partition.ts';
import { loadTf } from '../../src/participant/tf.ts';
import { evaluate, type TrainingData, trainLocal } from '../../src/participant/train.ts';
import { AilinkError } from '../../src/shared/errors.ts';
import { expectCode } from '../storage/helpers.ts';

let tf: Tf;
const topologies: Record<string, Record<string, unknown>> = {};
beforeAll(async () => {
  ({ tf } = await loadTf({ prefer: 'wasm' }));
  expect(tf.getBackend()).toBe('wasm');
  for (const name of MODEL_NAMES) topologies[name] = (await builtinModel(name)).topology;
});

const MODEL_NAMES = Object.keys(BUILTIN_MODELS) as (keyof typeof BUILTIN_MODELS)[];
/** A built-in model built from its model.json, initializers seeded. */
const buildModel = (_tf: Tf, name: string, seed: string) => buildFromTopology(tf, topologies[name]!, seed);
const PARAMETERS = { cnn: 1_663_370, mlp: 199_210 } as const;

/** Uniform values in [-1, 1) from a seed. */
function randomValues(seed: string, n: number): Float32Array {
  const rng = seededRng(seed);
  return Float32Array.from({ length: n }, () => rng() * 2 - 1);
}

/** Random images and labels: enough to exercise training without reading files. */
function syntheticData(seed: string, n: number): TrainingData {
  const rng = seededRng(seed);
  return {
    count: n,
    shape: [28, 28, 1],
    x: Uint8Array.from({ length: n * 784 }, () => Math.floor(rng() * 256)),
    y: Uint16Array.from({ length: n }, () => Math.floor(rng() * 10)),
  };
}

const bytesOf = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

describe('models', () => {
  it('the built-in model.json files have the parameter counts of McMahan et al.', async () => {
    const cnn = await buildModel(tf, 'cnn', 'count');
    const mlp = await buildModel(tf, 'mlp', 'count');
    expect(specOf(cnn).parameters).toBe(PARAMETERS.cnn);
    expect(specOf(mlp).parameters).toBe(PARAMETERS.mlp);
    expect(specOf(cnn).tensors).toEqual([
      { name: 'conv1/kernel', shape: [5, 5, 1, 32] },
      { name: 'conv1/bias', shape: [32] },
      { name: 'conv2/kernel', shape: [5, 5, 32, 64] },
      { name: 'conv2/bias', shape: [64] },
      { name: 'dense1/kernel', shape: [3136, 512] },
      { name: 'dense1/bias', shape: [512] },
      { name: 'logits/kernel', shape: [512, 10] },
      { name: 'logits/bias', shape: [10] },
    ]);
    expect(specOf(mlp)).toMatchObject({ inputShape: [28, 28, 1], outputUnits: 10, output: 'logits' });
    cnn.dispose();
    mlp.dispose();
  });

  it('an unknown built-in name is refused with the known ones listed', async () => {
    const err = await builtinModel('resnet').catch((e: AilinkError) => e);
    expect(err).toMatchObject({ code: 'MODEL_UNKNOWN' });
    expect((err as Error).message).toContain('cnn, mlp');
  });

  it.each(MODEL_NAMES)('%s: the spec lists the weights in tfjs order, with their shapes', async (name) => {
    const model = await buildModel(tf, name, 'order');
    try {
      expect(model.countParams()).toBe(specOf(model).parameters);
      expect(model.weights.map((w) => ({ name: w.originalName, shape: w.shape }))).toEqual(
        specOf(model).tensors.map((t) => ({ name: t.name, shape: t.shape })),
      );
    } finally {
      model.dispose();
    }
  });

  it.each(MODEL_NAMES)(
    '%s: the same seed gives bit-identical initial weights, another seed others',
    async (name) => {
      const [a, b, c] = await Promise.all(['s', 's', 't'].map((seed) => buildModel(tf, name, seed)));
      try {
        const [wa, wb, wc] = [a!, b!, c!].map((m) => flattenWeights(m));
        expect(bytesOf(wa!).equals(bytesOf(wb!))).toBe(true);
        expect(bytesOf(wa!).equals(bytesOf(wc!))).toBe(false);
        // Glorot-uniform kernels (nonzero), zero biases.
        expect(wa!.slice(0, 10).every((v) => v !== 0)).toBe(true);
        expect(wa!.slice(-10).every((v) => v === 0)).toBe(true);
      } finally {
        for (const m of [a, b, c]) m!.dispose();
      }
    },
  );

  it('flat weights round-trip through a model in the canonical order', async () => {
    const model = await buildModel(tf, 'mlp', 'roundtrip');
    try {
      const flat = randomValues('flat', PARAMETERS.mlp);
      loadFlatWeights(model, flat);
      expect(bytesOf(flattenWeights(model)).equals(bytesOf(flat))).toBe(true);
      // Canonical order: the first tensor is dense1/kernel, the last logits/bias.
      expect(model.getWeights()[0]!.dataSync()[0]).toBe(flat[0]);
      expect(model.getWeights()[5]!.dataSync()[9]).toBe(flat[flat.length - 1]);
      // The values were copied: changing the caller's array afterwards does not reach the model.
      flat[0] = 42;
      expect(flattenWeights(model)[0]).not.toBe(42);
    } finally {
      model.dispose();
    }
  });

  it('saves as TensorFlow.js model.json + weights that tf.loadLayersModel reads back (the export format)', async () => {
    const model = await buildModel(tf, 'cnn', 'export');
    try {
      let saved: Tfjs.io.ModelArtifacts | undefined;
      await model.save(
        tf.io.withSaveHandler(async (artifacts) => {
          saved = artifacts;
          return { modelArtifactsInfo: { dateSaved: new Date(0), modelTopologyType: 'JSON' } };
        }),
      );
      expect(saved!.weightSpecs!.map((s) => s.name)).toEqual(specOf(model).tensors.map((t) => t.name));
      const loaded = await tf.loadLayersModel(tf.io.fromMemory(saved!));
      const flat = (m: Tfjs.LayersModel) => {
        const parts = m.getWeights().map((w) => w.dataSync() as Float32Array);
        const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
        let at = 0;
        for (const p of parts) {
          out.set(p, at);
          at += p.length;
        }
        return out;
      };
      expect(bytesOf(flat(loaded)).equals(bytesOf(flattenWeights(model)))).toBe(true);
      loaded.dispose();
    } finally {
      model.dispose();
    }
  });

  it('a vector of the wrong length or with NaN/∞ is refused, and the weights stay as they were', async () => {
    const model = await buildModel(tf, 'mlp', 'refuse');
    try {
      const before = flattenWeights(model);
      const short = expectCode(() => loadFlatWeights(model, new Float32Array(12)), 'MODEL_SHAPE_MISMATCH');
      expect(short.message).toBe('expected 199210 weights for mlp, got 12');
      for (const bad of [Number.NaN, Number.POSITIVE_INFINITY]) {
        const flat = new Float32Array(PARAMETERS.mlp);
        flat[157_000] = bad; // after dense1's 156,800 + 200 values: the first of dense2/kernel
        const err = expectCode(() => loadFlatWeights(model, flat), 'MODEL_WEIGHTS_INVALID');
        expect(err.details).toMatchObject({ index: 157_000, tensor: 'dense2/kernel' });
      }
      expect(bytesOf(flattenWeights(model)).equals(bytesOf(before))).toBe(true);
    } finally {
      model.dispose();
    }
  });
});

describe('wasm gradients equal the cpu backend reference', () => {
  /** max |got − ref| ÷ max |ref|: relative to the gradient's scale, so values near zero do not dominate. */
  function relativeError(got: Float32Array, ref: Float32Array): number {
    let diff = 0;
    let scale = 0;
    for (let i = 0; i < ref.length; i++) {
      diff = Math.max(diff, Math.abs(got[i]! - ref[i]!));
      scale = Math.max(scale, Math.abs(ref[i]!));
    }
    return diff / scale;
  }

  /** Gradients of Σ dy·f(inputs) with respect to every input, on one backend. */
  async function gradientsOn(
    backend: 'cpu' | 'wasm',
    shapes: number[][],
    f: (...inputs: Tfjs.Tensor[]) => Tfjs.Tensor,
  ): Promise<Float32Array[]> {
    await tf.setBackend(backend);
    return tf.tidy(() => {
      const inputs = shapes.map((s, i) => tf.tensor(randomValues(`in${i}`, tf.util.sizeFromShape(s)), s));
      const y = f(...inputs);
      const dy = tf.tensor(randomValues('dy', y.size), y.shape);
      return tf
        .grads((...xs: Tfjs.Tensor[]) => f(...xs))(inputs, dy)
        .map((g) => g.dataSync() as Float32Array);
    });
  }

  async function compare(shapes: number[][], f: (...inputs: Tfjs.Tensor[]) => Tfjs.Tensor): Promise<void> {
    try {
      const ref = await gradientsOn('cpu', shapes, f);
      const got = await gradientsOn('wasm', shapes, f);
      expect(got).toHaveLength(ref.length);
      for (const [i, g] of got.entries()) expect(relativeError(g, ref[i]!)).toBeLessThan(1e-4);
    } finally {
      await tf.setBackend('wasm');
    }
  }

  it('loadTf picks tfjs-node when installed, else wasm; loading again does not wrap the gradients twice', async () => {
    const conv = tf.getGradient('Conv2D');
    const matMul = tf.getGradient('BatchMatMul');
    const again = await loadTf();
    try {
      expect(again.tf).toBe(tf);
      expect(['tensorflow', 'wasm']).toContain(again.backend);
      expect(tf.getGradient('Conv2D')).toBe(conv);
      expect(tf.getGradient('BatchMatMul')).toBe(matMul);
    } finally {
      await tf.setBackend('wasm');
    }
  });

  type Pad = 'same' | 'valid' | [[0, 0], [number, number], [number, number], [0, 0]];
  it.each<[string, number[], number[], Pad]>([
    ['the CNN conv1', [3, 28, 28, 1], [5, 5, 1, 32], 'same'],
    // One image: the cpu backend's Conv2DBackpropFilter takes seconds per image here.
    ['the CNN conv2', [1, 14, 14, 32], [5, 5, 32, 64], 'same'],
    ['an even kernel (uneven same padding)', [2, 9, 9, 3], [4, 4, 3, 5], 'same'],
    ['valid padding', [2, 9, 9, 3], [3, 3, 3, 5], 'valid'],
    [
      'explicit padding wider than the kernel',
      [2, 6, 6, 2],
      [2, 2, 2, 3],
      [
        [0, 0],
        [3, 1],
        [0, 2],
        [0, 0],
      ],
    ],
  ])('conv2d, %s', async (_, xShape, wShape, pad) => {
    await compare([xShape, wShape], (x, w) => tf.conv2d(x as Tfjs.Tensor4D, w as Tfjs.Tensor4D, 1, pad));
  });

  it.each([
    [false, false],
    [false, true],
    [true, false],
    [true, true],
  ])('matMul, transposeA %s, transposeB %s', async (ta, tb) => {
    const a = ta ? [7, 6] : [6, 7];
    const b = tb ? [5, 7] : [7, 5];
    await compare([a, b], (x, y) => tf.matMul(x as Tfjs.Tensor2D, y as Tfjs.Tensor2D, ta, tb));
  });

  it('a dense layer step of the MLP gives the same loss on both backends', async () => {
    const data = syntheticData('same-loss', 50);
    const losses: number[] = [];
    for (const backend of ['cpu', 'wasm'] as const) {
      await tf.setBackend(backend);
      const model = await buildModel(tf, 'mlp', 'same-loss');
      losses.push(trainLocal(tf, model, data, { epochs: 1, seed: 's' }).loss);
      model.dispose();
    }
    await tf.setBackend('wasm');
    expect(Math.abs(losses[0]! - losses[1]!)).toBeLessThan(1e-5);
  });
});

describe('local training', () => {
  it('same seeds, same weights: two runs give bit-identical trained weights (MLP and CNN)', async () => {
    for (const [name, n] of [
      ['mlp', 300],
      ['cnn', 60],
    ] as const) {
      const data = syntheticData(`repeat-${name}`, n);
      const runs: Float32Array[] = [];
      for (const run of [0, 1, 2]) {
        const model = await buildModel(tf, name, 'repeat');
        trainLocal(tf, model, data, { epochs: 1, batchSize: 20, seed: run < 2 ? 'same' : 'other' });
        runs.push(flattenWeights(model));
        model.dispose();
      }
      expect(bytesOf(runs[0]!).equals(bytesOf(runs[1]!))).toBe(true);
      // Another shuffle seed visits the batches in another order.
      expect(bytesOf(runs[0]!).equals(bytesOf(runs[2]!))).toBe(false);
    }
  });

  it('leaves no tensors behind (training with and without the proximal term, evaluation)', async () => {
    const model = await buildModel(tf, 'mlp', 'leak');
    try {
      const data = syntheticData('leak', 120);
      const global = flattenWeights(model);
      const run = () => {
        trainLocal(tf, model, data, { epochs: 2, batchSize: 32, seed: 'leak' });
        trainLocal(tf, model, data, { epochs: 1, seed: 'leak', proximal: { mu: 0.1, global } });
        evaluate(tf, model, data, { batchSize: 50 });
      };
      run(); // the first call may create lasting state inside tfjs (none expected, but do not count it)
      const before = tf.memory().numTensors;
      run();
      run();
      expect(tf.memory().numTensors).toBe(before);
      // And none when a call throws half way.
      expect(() =>
        trainLocal(tf, model, data, {
          epochs: 1,
          seed: 'leak',
          proximal: { mu: 1, global: new Float32Array(3) },
        }),
      ).toThrow(AilinkError);
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      model.dispose();
    }
  });

  it("plain SGD steps as tfjs's optimizer does: the same weights, bit for bit, as momentum 0 (tfjs's own)", async () => {
    // Plain SGD is applied by train.ts itself (one variable at a time, fewer copies); momentum by tfjs, whose update at
    // momentum 0 is the gradient times −lr added to the weights, as tfjs's SGD makes it.
    const data = syntheticData('sgd', 120);
    const trainWith = async (optimizer: {
      name: 'sgd' | 'momentum';
      learningRate: number;
      momentum?: number;
    }) => {
      const model = await buildModel(tf, 'mlp', 'sgd');
      trainLocal(tf, model, data, { epochs: 2, batchSize: 40, optimizer, seed: 'sgd' });
      const w = flattenWeights(model);
      model.dispose();
      return w;
    };
    const start = await buildModel(tf, 'mlp', 'sgd');
    const initial = flattenWeights(start);
    start.dispose();
    const ours = await trainWith({ name: 'sgd', learningRate: 0.1 });
    const tfjs = await trainWith({ name: 'momentum', learningRate: 0.1, momentum: 0 });
    expect(bytesOf(ours).equals(bytesOf(initial))).toBe(false);
    expect(bytesOf(ours).equals(bytesOf(tfjs))).toBe(true);
  });

  it('reads a tensor larger than one read slice back whole, into the vector it is given', async () => {
    // 64 × 70,000 = 4,480,000 kernel weights: more than the 4,194,304 flattenWeights reads from the backend at once.
    const model = await buildFromTopology(
      tf,
      {
        class_name: 'Sequential',
        config: {
          name: 'wide',
          layers: [
            { class_name: 'Dense', config: { name: 'wide', units: 70_000, batch_input_shape: [null, 64] } },
          ],
        },
      },
      'slices',
    );
    try {
      const [kernel, bias] = model.getWeights().map((t) => t.dataSync() as Float32Array);
      const into = new Float32Array(specOf(model).parameters);
      expect(flattenWeights(model, into)).toBe(into);
      expect(bytesOf(into.subarray(0, kernel!.length)).equals(bytesOf(kernel!))).toBe(true);
      expect(bytesOf(into.subarray(kernel!.length)).equals(bytesOf(bias!))).toBe(true);
      expectCode(() => flattenWeights(model, new Float32Array(12)), 'MODEL_SHAPE_MISMATCH');
    } finally {
      model.dispose();
    }
  });

  it('FedProx: μ > 0 keeps the local weights closer to the global ones; μ = 0 changes nothing', async () => {
    const data = syntheticData('prox', 200);
    const start = await buildModel(tf, 'mlp', 'prox');
    const global = flattenWeights(start);
    start.dispose();
    const trainWith = async (proximal?: { mu: number; global: Float32Array }) => {
      const model = await buildModel(tf, 'mlp', 'prox');
      trainLocal(tf, model, data, {
        epochs: 3,
        optimizer: { name: 'sgd', learningRate: 0.1 },
        seed: 'prox',
        ...(proximal ? { proximal } : {}),
      });
      const w = flattenWeights(model);
      model.dispose();
      return w;
    };
    const distance = (w: Float32Array) => {
      let sum = 0;
      for (let i = 0; i < w.length; i++) sum += (w[i]! - global[i]!) ** 2;
      return Math.sqrt(sum);
    };
    const plain = await trainWith();
    const zero = await trainWith({ mu: 0, global });
    const pulled = await trainWith({ mu: 1, global });
    expect(bytesOf(zero).equals(bytesOf(plain))).toBe(true);
    expect(distance(pulled)).toBeLessThan(0.9 * distance(plain));
  });

  it('refuses data and options that do not fit, and stops on a diverging loss', async () => {
    const model = await buildModel(tf, 'mlp', 'checks');
    try {
      const data = syntheticData('checks', 20);
      const train =
        (d: TrainingData, options: Partial<Parameters<typeof trainLocal>[3]> = {}) =>
        () =>
          trainLocal(tf, model, d, { epochs: 1, seed: 's', ...options });
      expectCode(train({ ...data, x: data.x.subarray(1) }), 'INVALID_INPUT');
      expectCode(train({ ...data, y: data.y.map(() => 10) }), 'INVALID_INPUT');
      expectCode(train({ ...data, shape: [784] }), 'INVALID_INPUT');
      expectCode(train({ ...data, count: 0 }), 'INVALID_INPUT');
      expectCode(train(data, { epochs: 0 }), 'INVALID_INPUT');
      expectCode(train(data, { batchSize: 2.5 }), 'INVALID_INPUT');
      expectCode(train(data, { optimizer: { name: 'sgd', learningRate: -1 } }), 'INVALID_INPUT');
      const global = new Float32Array(PARAMETERS.mlp);
      expectCode(train(data, { proximal: { mu: -1, global } }), 'INVALID_INPUT');
      global[0] = Number.NaN;
      expectCode(train(data, { proximal: { mu: 1, global } }), 'MODEL_WEIGHTS_INVALID');
      const diverged = expectCode(
        train(data, { optimizer: { name: 'sgd', learningRate: 1e30 }, batchSize: 5 }),
        'TRAINING_DIVERGED',
      );
      expect(diverged.message).toContain('lower the learning rate');
    } finally {
      model.dispose();
    }
  });
});

describe('on real Fashion-MNIST (the full set shipped in models/data)', () => {
  let train: TrainingData;
  let test: TrainingData;
  beforeAll(async () => {
    const file = (name: string) => join(FASHION_MNIST_DIR, `${name}.gz`);
    const all = await loadIdxDataset(file('train-images-idx3-ubyte'), file('train-labels-idx1-ubyte'));
    const held = await loadIdxDataset(file('t10k-images-idx3-ubyte'), file('t10k-labels-idx1-ubyte'));
    // The files are already in random class order: the first n images are a fair sample.
    const first = (n: number) => Array.from({ length: n }, (_, i) => i);
    train = selectExamples(imageExamples(all), first(2000));
    test = selectExamples(imageExamples(held), first(1000));
  });

  it('the MLP learns: one epoch over 2,000 images scores > 65 % on 1,000 test images', async () => {
    const model = await buildModel(tf, 'mlp', 'fashion');
    try {
      const before = evaluate(tf, model, test);
      expect(before.accuracy).toBeLessThan(0.3);
      // McMahan et al.'s minibatch size for the 2NN (B = 10): 200 SGD steps.
      const result = trainLocal(tf, model, train, { epochs: 1, batchSize: 10, seed: 'fashion' });
      expect(result.examples).toBe(2000);
      expect(result.samplesPerSecond).toBeGreaterThan(0);
      const after = evaluate(tf, model, test);
      expect(after.examples).toBe(1000);
      expect(after.accuracy).toBeGreaterThan(0.65);
      expect(after.loss).toBeLessThan(before.loss);
    } finally {
      model.dispose();
    }
  });

  it('the CNN trains on wasm: its loss on the batches it saw falls after a few steps', async () => {
    const model = await buildModel(tf, 'cnn', 'fashion');
    try {
      const few = selectExamples(
        train,
        Array.from({ length: 150 }, (_, i) => i),
      );
      const before = evaluate(tf, model, few);
      const result = trainLocal(tf, model, few, { epochs: 1, batchSize: 50, seed: 'fashion' });
      expect(Number.isFinite(result.loss)).toBe(true);
      const after = evaluate(tf, model, few);
      expect(after.loss).toBeLessThan(before.loss);
      expect(flattenWeights(model).every(Number.isFinite)).toBe(true);
    } finally {
      model.dispose();
    }
  });
});
