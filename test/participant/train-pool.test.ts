import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildModel, builtinModel, flattenWeights, modelPackageDigest, type Tf } from '../../models/index.ts';
import { seededRng } from '../../src/participant/partition.ts';
import { loadTf } from '../../src/participant/tf.ts';
import { type TrainingData, trainLocal } from '../../src/participant/train.ts';
import {
  createTrainingPool,
  type ModelRef,
  poolTestHooks,
  type TrainingPool,
} from '../../src/participant/train-pool.ts';
import { AilinkError } from '../../src/shared/errors.ts';

function syntheticData(seed: string, n: number): TrainingData {
  const rng = seededRng(seed);
  return {
    count: n,
    shape: [28, 28, 1],
    x: Uint8Array.from({ length: n * 784 }, () => Math.floor(rng() * 256)),
    y: Uint16Array.from({ length: n }, () => Math.floor(rng() * 10)),
  };
}

/** A topology with a layer the backends cannot train (recurrent layers are not on the list). */
const UNSUPPORTED: ModelRef = {
  key: 'lstm',
  topology: {
    class_name: 'Sequential',
    config: {
      layers: [{ class_name: 'LSTM', config: { name: 'memory', units: 4, batch_input_shape: [null, 3, 2] } }],
    },
  },
};

const bytesOf = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

let tf: Tf;
let initial: { cnn: Float32Array; mlp: Float32Array };
let refs: { cnn: ModelRef; mlp: ModelRef };
let pool: TrainingPool;

beforeAll(async () => {
  ({ tf } = await loadTf({ prefer: 'wasm' }));
  const packages = { cnn: await builtinModel('cnn'), mlp: await builtinModel('mlp') };
  refs = {
    cnn: { key: modelPackageDigest(packages.cnn), topology: packages.cnn.topology },
    mlp: { key: modelPackageDigest(packages.mlp), topology: packages.mlp.topology },
  };
  pool = createTrainingPool({ threads: 2 });
  // The pool's own initial weights, from the seed: the same as building the model here with that seed.
  initial = {
    cnn: (await pool.describe(packages.cnn, 'pool')).initial,
    mlp: (await pool.describe(packages.mlp, 'pool')).initial,
  };
  const here = await buildModel(tf, packages.mlp.topology, 'pool');
  expect(bytesOf(flattenWeights(here)).equals(bytesOf(initial.mlp))).toBe(true);
  here.dispose();
});
afterAll(() => pool.close());

describe('training pool (real worker threads)', () => {
  it('trains the CNN on a worker while the event loop keeps running', async () => {
    expect(await pool.backend()).toBe('wasm');
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    try {
      const weights = initial.cnn.slice();
      const job = pool.train({
        model: refs.cnn,
        weights,
        data: syntheticData('cnn', 200),
        options: { epochs: 1, seed: 'cnn' },
      });
      expect(weights.byteLength).toBe(0); // its buffer moved to the worker
      const result = await job;
      expect(result.backend).toBe('wasm');
      expect(result.examples).toBe(200);
      expect(result.weights).toHaveLength(1_663_370);
      expect(Number.isFinite(result.loss)).toBe(true);
      expect(bytesOf(result.weights).equals(bytesOf(initial.cnn))).toBe(false);
      // Had training run on this thread, not one tick could have fired while it ran.
      expect(ticks).toBeGreaterThan(2);
    } finally {
      clearInterval(timer);
    }
  });

  it('a worker gives bit-for-bit the weights trainLocal gives on this thread (same backend, same seed)', async () => {
    const data = syntheticData('same', 300);
    const [fromPool, evaluation] = await Promise.all([
      pool.train({
        model: refs.mlp,
        weights: initial.mlp.slice(),
        data,
        options: { epochs: 2, seed: 'same' },
      }),
      pool.evaluate({ model: refs.mlp, weights: initial.mlp.slice(), data, batchSize: 128 }),
    ]);
    const model = await buildModel(tf, refs.mlp.topology, 'pool');
    try {
      const local = trainLocal(tf, model, data, { epochs: 2, seed: 'same' });
      expect(bytesOf(fromPool.weights).equals(bytesOf(flattenWeights(model)))).toBe(true);
      expect(fromPool.loss).toBe(local.loss);
    } finally {
      model.dispose();
    }
    expect(evaluation).toMatchObject({ examples: 300, backend: 'wasm' });
    expect(evaluation.accuracy).toBeGreaterThanOrEqual(0);
  });

  it('errors from a worker arrive with their codes', async () => {
    const data = syntheticData('errors', 10);
    await expect(
      pool.train({
        model: UNSUPPORTED,
        weights: initial.mlp.slice(),
        data,
        options: { epochs: 1, seed: 's' },
      }),
    ).rejects.toMatchObject({ code: 'MODEL_LAYER_UNSUPPORTED' });
    await expect(
      pool.train({ model: refs.mlp, weights: new Float32Array(12), data, options: { epochs: 1, seed: 's' } }),
    ).rejects.toMatchObject({
      code: 'MODEL_SHAPE_MISMATCH',
      message: 'expected 199210 weights for mlp, got 12',
    });
    const err = await pool
      .evaluate({
        model: refs.mlp,
        weights: initial.mlp.slice(),
        data: { ...data, y: data.y.slice(1) },
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AilinkError);
    expect(err).toMatchObject({ code: 'INVALID_INPUT' });
  });

  it('a crashed worker fails only its own job; the other worker and later jobs carry on', async () => {
    const data = syntheticData('crash', 100);
    const [crashed, survivor] = await Promise.allSettled([
      poolTestHooks(pool).crash(),
      pool.train({ model: refs.mlp, weights: initial.mlp.slice(), data, options: { epochs: 1, seed: 's' } }),
    ]);
    expect(crashed).toMatchObject({ status: 'rejected', reason: { code: 'TRAINING_WORKER_FAILED' } });
    expect((crashed as PromiseRejectedResult).reason.message).toContain('exited with code 70');
    expect(survivor.status).toBe('fulfilled');
    // A replacement worker takes the next jobs.
    const after = await Promise.all(
      [0, 1].map(() =>
        pool.train({
          model: refs.mlp,
          weights: initial.mlp.slice(),
          data,
          options: { epochs: 1, seed: 's' },
        }),
      ),
    );
    expect(after.map((r) => r.examples)).toEqual([100, 100]);
  });

  it('aborting a running job rejects it with ABORTED and leaves the pool usable', async () => {
    const controller = new AbortController();
    const running = pool.train(
      {
        model: refs.cnn,
        weights: initial.cnn.slice(),
        data: syntheticData('abort', 2000),
        options: { epochs: 5, seed: 's' },
      },
      { signal: controller.signal },
    );
    // Let it reach the worker and start, then abort.
    await new Promise((resolve) => setTimeout(resolve, 300));
    controller.abort();
    await expect(running).rejects.toMatchObject({ code: 'ABORTED' });
    const next = await pool.train({
      model: refs.mlp,
      weights: initial.mlp.slice(),
      data: syntheticData('after-abort', 50),
      options: { epochs: 1, seed: 's' },
    });
    expect(next.examples).toBe(50);
  });

  it('an already aborted signal, or one aborted while the job waits in the queue, rejects without running it', async () => {
    const single = createTrainingPool({ threads: 1 });
    try {
      await expect(
        single.train(
          {
            model: refs.mlp,
            weights: initial.mlp.slice(),
            data: syntheticData('q', 10),
            options: { epochs: 1, seed: 's' },
          },
          { signal: AbortSignal.abort() },
        ),
      ).rejects.toMatchObject({ code: 'ABORTED' });
      const first = single.train({
        model: refs.mlp,
        weights: initial.mlp.slice(),
        data: syntheticData('q1', 500),
        options: { epochs: 2, seed: 's' },
      });
      const controller = new AbortController();
      const queued = single.train(
        {
          model: refs.mlp,
          weights: initial.mlp.slice(),
          data: syntheticData('q2', 10),
          options: { epochs: 1, seed: 's' },
        },
        { signal: controller.signal },
      );
      controller.abort();
      await expect(queued).rejects.toMatchObject({ code: 'ABORTED' });
      // The job in front was not touched.
      expect((await first).examples).toBe(500);
    } finally {
      await single.close();
    }
  });

  it('leaves no tensors behind in a worker across jobs', async () => {
    const single = createTrainingPool({ threads: 1 });
    try {
      const job = (name: 'cnn' | 'mlp') =>
        single.train({
          model: refs[name],
          weights: initial[name].slice(),
          data: syntheticData(`leak-${name}`, 60),
          options: { epochs: 1, batchSize: 25, seed: 's', proximal: { mu: 0.01, global: initial[name] } },
        });
      await job('mlp');
      await job('cnn');
      const before = await poolTestHooks(single).tensors();
      await job('mlp');
      await job('cnn');
      await single.evaluate({
        model: refs.cnn,
        weights: initial.cnn.slice(),
        data: syntheticData('leak-eval', 30),
      });
      expect(await poolTestHooks(single).tensors()).toBe(before);
    } finally {
      await single.close();
    }
  });

  it('ends a worker after a job on a model above recycleAboveParameters (its memory goes back), keeps it below', async () => {
    const job = (pool: ReturnType<typeof createTrainingPool>) =>
      pool.train({
        model: refs.mlp,
        weights: initial.mlp.slice(),
        data: syntheticData('recycle', 30),
        options: { epochs: 1, batchSize: 15, seed: 's' },
      });
    const kept = createTrainingPool({ threads: 1, recycleAboveParameters: initial.mlp.length });
    const recycled = createTrainingPool({ threads: 1, recycleAboveParameters: initial.mlp.length - 1 });
    try {
      await job(kept);
      await job(recycled);
      // The kept worker still holds the built model's variables; the recycled one was replaced by a fresh worker.
      expect(await poolTestHooks(kept).tensors()).toBeGreaterThan(0);
      expect(await poolTestHooks(recycled).tensors()).toBe(0);
      // And the pool goes on: the next job runs on a new worker.
      expect((await job(recycled)).weights).toHaveLength(initial.mlp.length);
    } finally {
      await Promise.all([kept.close(), recycled.close()]);
    }
  });

  it("a wide dense model's training grows the wasm heap by less than 5 copies of the model", async () => {
    // 64 → 3000 → 3000 → 2: 9.2M weights (35 MiB), almost all in one kernel. The heap only grows, so its size after
    // one job on a fresh worker is that job's high-water mark: the built model, its loaded weights and a training
    // step. With tfjs's SGD (gradient, scaled step and new value at once) and g·Wᵀ for a dense layer's input
    // gradient (the transposed kernel and its packed copy) it grew by 5.47 copies; now by 4.48 (the allocator is
    // deterministic: the same jobs grow the heap by the same bytes).
    const dense = (name: string, units: number, extra = {}) => ({
      class_name: 'Dense',
      config: { name, units, activation: 'relu', ...extra },
    });
    const topology = {
      class_name: 'Sequential',
      config: {
        name: 'wide',
        layers: [dense('h1', 3000, { batch_input_shape: [null, 64] }), dense('h2', 3000), dense('out', 2)],
      },
    };
    const { initial: weights } = await pool.describe({ topology, weights: null }, 'heap');
    const rng = seededRng('heap');
    const x = Float32Array.from({ length: 100 * 64 }, () => rng() * 2 - 1);
    const y = Uint16Array.from({ length: 100 }, (_, i) => (x[i * 64]! > 0 ? 1 : 0));
    const modelBytes = weights.byteLength;
    const fresh = createTrainingPool({ threads: 1, backend: 'wasm' });
    try {
      const before = (await poolTestHooks(fresh).heapBytes())!;
      await fresh.train({
        model: { key: 'wide', topology },
        weights,
        data: { count: 100, shape: [64], x, y },
        options: { epochs: 1, batchSize: 50, seed: 'heap' },
      });
      const grown = (await poolTestHooks(fresh).heapBytes())! - before;
      expect(grown / modelBytes).toBeLessThan(5);
    } finally {
      await fresh.close();
    }
  });

  it('closing rejects waiting jobs with ABORTED, and later calls too', async () => {
    const single = createTrainingPool({ threads: 1 });
    const data = syntheticData('close', 200);
    const jobs = [0, 1].map(() =>
      single.train({
        model: refs.mlp,
        weights: initial.mlp.slice(),
        data,
        options: { epochs: 1, seed: 's' },
      }),
    );
    const outcomes = Promise.allSettled(jobs);
    await single.close();
    for (const outcome of await outcomes) {
      expect(outcome).toMatchObject({ status: 'rejected', reason: { code: 'ABORTED' } });
    }
    await expect(single.backend()).rejects.toMatchObject({ code: 'ABORTED' });
  });
});
