import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type * as Tfjs from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  buildModel,
  flattenWeights,
  loadFlatWeights,
  MODEL_NAMES,
  modelSpec,
  type Tf,
} from '../../models/index.ts';
import { DEBIAN_FASHION_MNIST_DIR } from '../../src/participant/dataset.ts';
import { loadIdxDataset } from '../../src/participant/idx.ts';
import { seededRng } from '../../src/participant/partition.ts';
import { loadTf } from '../../src/participant/tf.ts';
import { evaluate, type TrainingData, trainLocal } from '../../src/participant/train.ts';
import { AilinkError } from '../../src/shared/errors.ts';
import { expectCode } from '../storage/helpers.ts';

let tf: Tf;
beforeAll(async () => {
  ({ tf } = await loadTf({ prefer: 'wasm' }));
  expect(tf.getBackend()).toBe('wasm');
});

/** Uniform values in [-1, 1) from a seed. */
function randomValues(seed: string, n: number): Float32Array {
  const rng = seededRng(seed);
  return Float32Array.from({ length: n }, () => rng() * 2 - 1);
}

/** Random images and labels: enough to exercise training without reading files. */
function syntheticData(seed: string, n: number): TrainingData {
  const rng = seededRng(seed);
  return {
    images: Uint8Array.from({ length: n * 784 }, () => Math.floor(rng() * 256)),
    labels: Uint8Array.from({ length: n }, () => Math.floor(rng() * 10)),
  };
}

const bytesOf = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

describe('models', () => {
  it('have the parameter counts of McMahan et al.', () => {
    expect(modelSpec('cnn').parameters).toBe(1_663_370);
    expect(modelSpec('mlp').parameters).toBe(199_210);
    expect(modelSpec('cnn').tensors).toEqual([
      { name: 'conv1/kernel', shape: [5, 5, 1, 32] },
      { name: 'conv1/bias', shape: [32] },
      { name: 'conv2/kernel', shape: [5, 5, 32, 64] },
      { name: 'conv2/bias', shape: [64] },
      { name: 'dense1/kernel', shape: [3136, 512] },
      { name: 'dense1/bias', shape: [512] },
      { name: 'logits/kernel', shape: [512, 10] },
      { name: 'logits/bias', shape: [10] },
    ]);
    expect(modelSpec('mlp')).toMatchObject({ inputShape: [28, 28, 1], classes: 10 });
  });

  it('an unknown name is refused with the known ones listed', () => {
    const err = expectCode(() => modelSpec('resnet'), 'MODEL_UNKNOWN');
    expect(err.message).toContain('cnn, mlp');
  });

  it.each(MODEL_NAMES)('%s: tf.layers builds the weights in the spec order, with the spec shapes', (name) => {
    const model = buildModel(tf, name, 'order');
    try {
      expect(model.countParams()).toBe(modelSpec(name).parameters);
      expect(model.weights.map((w) => ({ name: w.originalName, shape: w.shape }))).toEqual(
        modelSpec(name).tensors.map((t) => ({ name: t.name, shape: t.shape })),
      );
    } finally {
      model.dispose();
    }
  });

  it.each(MODEL_NAMES)(
    '%s: the same seed gives bit-identical initial weights, another seed others',
    (name) => {
      const [a, b, c] = ['s', 's', 't'].map((seed) => buildModel(tf, name, seed));
      try {
        const [wa, wb, wc] = [a!, b!, c!].map(flattenWeights);
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

  it('flat weights round-trip through a model in the canonical order', () => {
    const model = buildModel(tf, 'mlp', 'roundtrip');
    try {
      const flat = randomValues('flat', modelSpec('mlp').parameters);
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
    const model = buildModel(tf, 'cnn', 'export');
    try {
      let saved: Tfjs.io.ModelArtifacts | undefined;
      await model.save(
        tf.io.withSaveHandler(async (artifacts) => {
          saved = artifacts;
          return { modelArtifactsInfo: { dateSaved: new Date(0), modelTopologyType: 'JSON' } };
        }),
      );
      expect(saved!.weightSpecs!.map((s) => s.name)).toEqual(modelSpec('cnn').tensors.map((t) => t.name));
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

  it('a vector of the wrong length or with NaN/∞ is refused, and the weights stay as they were', () => {
    const model = buildModel(tf, 'mlp', 'refuse');
    try {
      const before = flattenWeights(model);
      const short = expectCode(() => loadFlatWeights(model, new Float32Array(12)), 'MODEL_SHAPE_MISMATCH');
      expect(short.message).toBe('expected 199210 weights for mlp, got 12');
      for (const bad of [Number.NaN, Number.POSITIVE_INFINITY]) {
        const flat = new Float32Array(modelSpec('mlp').parameters);
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
      const model = buildModel(tf, 'mlp', 'same-loss');
      losses.push(trainLocal(tf, model, data, { epochs: 1, seed: 's' }).loss);
      model.dispose();
    }
    await tf.setBackend('wasm');
    expect(Math.abs(losses[0]! - losses[1]!)).toBeLessThan(1e-5);
  });
});

describe('local training', () => {
  it('same seeds, same weights: two runs give bit-identical trained weights (MLP and CNN)', () => {
    for (const [name, n] of [
      ['mlp', 300],
      ['cnn', 60],
    ] as const) {
      const data = syntheticData(`repeat-${name}`, n);
      const runs = [0, 1, 2].map((run) => {
        const model = buildModel(tf, name, 'repeat');
        trainLocal(tf, model, data, { epochs: 1, batchSize: 20, seed: run < 2 ? 'same' : 'other' });
        const weights = flattenWeights(model);
        model.dispose();
        return weights;
      });
      expect(bytesOf(runs[0]!).equals(bytesOf(runs[1]!))).toBe(true);
      // Another shuffle seed visits the batches in another order.
      expect(bytesOf(runs[0]!).equals(bytesOf(runs[2]!))).toBe(false);
    }
  });

  it('leaves no tensors behind (training with and without the proximal term, evaluation)', () => {
    const model = buildModel(tf, 'mlp', 'leak');
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

  it('FedProx: μ > 0 keeps the local weights closer to the global ones; μ = 0 changes nothing', () => {
    const data = syntheticData('prox', 200);
    const start = buildModel(tf, 'mlp', 'prox');
    const global = flattenWeights(start);
    start.dispose();
    const trainWith = (proximal?: { mu: number; global: Float32Array }) => {
      const model = buildModel(tf, 'mlp', 'prox');
      trainLocal(tf, model, data, {
        epochs: 3,
        learningRate: 0.1,
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
    const plain = trainWith();
    const zero = trainWith({ mu: 0, global });
    const pulled = trainWith({ mu: 1, global });
    expect(bytesOf(zero).equals(bytesOf(plain))).toBe(true);
    expect(distance(pulled)).toBeLessThan(0.9 * distance(plain));
  });

  it('refuses data and options that do not fit, and stops on a diverging loss', () => {
    const model = buildModel(tf, 'mlp', 'checks');
    try {
      const data = syntheticData('checks', 20);
      const train =
        (d: TrainingData, options: Partial<Parameters<typeof trainLocal>[3]> = {}) =>
        () =>
          trainLocal(tf, model, d, { epochs: 1, seed: 's', ...options });
      expectCode(train({ images: data.images.subarray(1), labels: data.labels }), 'INVALID_INPUT');
      expectCode(train({ images: data.images, labels: data.labels.map(() => 10) }), 'INVALID_INPUT');
      expectCode(train({ images: new Uint8Array(0), labels: new Uint8Array(0) }), 'INVALID_INPUT');
      expectCode(train(data, { epochs: 0 }), 'INVALID_INPUT');
      expectCode(train(data, { batchSize: 2.5 }), 'INVALID_INPUT');
      expectCode(train(data, { learningRate: -1 }), 'INVALID_INPUT');
      const global = new Float32Array(modelSpec('mlp').parameters);
      expectCode(train(data, { proximal: { mu: -1, global } }), 'INVALID_INPUT');
      global[0] = Number.NaN;
      expectCode(train(data, { proximal: { mu: 1, global } }), 'MODEL_WEIGHTS_INVALID');
      const diverged = expectCode(train(data, { learningRate: 1e30, batchSize: 5 }), 'TRAINING_DIVERGED');
      expect(diverged.message).toContain('lower the learning rate');
    } finally {
      model.dispose();
    }
  });
});

describe.skipIf(!existsSync(join(DEBIAN_FASHION_MNIST_DIR, 'train-images-idx3-ubyte.gz')))(
  'on real Fashion-MNIST (Debian dataset-fashion-mnist)',
  () => {
    let train: TrainingData;
    let test: TrainingData;
    beforeAll(async () => {
      const file = (name: string) => join(DEBIAN_FASHION_MNIST_DIR, `${name}.gz`);
      const all = await loadIdxDataset(file('train-images-idx3-ubyte'), file('train-labels-idx1-ubyte'));
      const held = await loadIdxDataset(file('t10k-images-idx3-ubyte'), file('t10k-labels-idx1-ubyte'));
      // The files are already in random class order: the first n images are a fair sample.
      train = { images: all.images.slice(0, 2000 * 784), labels: all.labels.slice(0, 2000) };
      test = { images: held.images.slice(0, 1000 * 784), labels: held.labels.slice(0, 1000) };
    });

    it('the MLP learns: one epoch over 2,000 images scores > 65 % on 1,000 test images', () => {
      const model = buildModel(tf, 'mlp', 'fashion');
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

    it('the CNN trains on wasm: its loss on the batches it saw falls after a few steps', () => {
      const model = buildModel(tf, 'cnn', 'fashion');
      try {
        const few = { images: train.images.subarray(0, 150 * 784), labels: train.labels.subarray(0, 150) };
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
  },
);
