import { parentPort, workerData } from 'node:worker_threads';
import type * as Tfjs from '@tensorflow/tfjs';
import { buildModel, flattenWeights, loadFlatWeights, packageWeights, specOf } from '../../models/index.ts';
import { AilinkError, hasCode } from '../shared/errors.ts';
import { type BackendName, loadTf } from './tf.ts';
import { evaluate, trainLocal } from './train.ts';
import type { ModelRef, WireError, WorkerMessage, WorkerRequest } from './train-pool.ts';

/**
 * One training worker (train-pool.ts): its own tfjs instance, models built once and reused by key (only their
 * weights change between jobs), one job at a time. Every job loads the weights it carries, so a cached model never
 * leaks one job's state into the next.
 */

const port = parentPort!;
const post = (message: WorkerMessage, transfer: ArrayBuffer[] = []) => port.postMessage(message, transfer);

const loading = loadTf(workerData.backend ? { prefer: workerData.backend as BackendName } : {});
loading.then(
  ({ backend }) => post({ type: 'ready', backend }),
  (err) => post({ type: 'ready', error: wire(err) }),
);

/** Built models by key; a task's model stays for the whole task, so a handful at most. */
const models = new Map<string, Tfjs.LayersModel>();

async function modelFor(
  ref: ModelRef,
): Promise<{ tf: Awaited<typeof loading>['tf']; model: Tfjs.LayersModel }> {
  const { tf } = await loading;
  let model = models.get(ref.key);
  if (model === undefined) {
    // The seed does not matter: every job loads its own starting weights.
    model = await buildModel(tf, ref.topology, 'worker');
    models.set(ref.key, model);
  }
  return { tf, model };
}

/** Whether the pool should end this worker after a job on a model of `parameters` weights (see train-pool.ts). */
const recycle = (parameters: number) => parameters > (workerData.recycleAboveParameters as number);

async function handle(request: WorkerRequest): Promise<void> {
  if (request.op === 'train') {
    const { tf, model } = await modelFor(request.model);
    loadFlatWeights(model, request.weights);
    const result = trainLocal(tf, model, request.data, request.options);
    // Into the starting weights' vector (transferred here, not needed again): no new vector of the model's size.
    const weights = flattenWeights(model, request.weights);
    const { backend } = await loading;
    post(
      {
        type: 'result',
        id: request.id,
        ok: true,
        value: { ...result, weights, backend },
        recycle: recycle(weights.length),
      },
      [weights.buffer as ArrayBuffer],
    );
  } else if (request.op === 'evaluate') {
    const { tf, model } = await modelFor(request.model);
    loadFlatWeights(model, request.weights);
    const result = evaluate(tf, model, request.data, {
      ...(request.batchSize === undefined ? {} : { batchSize: request.batchSize }),
      ...(request.loss === undefined ? {} : { loss: request.loss }),
    });
    const { backend } = await loading;
    post({
      type: 'result',
      id: request.id,
      ok: true,
      value: { ...result, backend },
      recycle: recycle(specOf(model).parameters),
    });
  } else if (request.op === 'describe') {
    const { tf } = await loading;
    const fresh = await buildModel(tf, request.pkg.topology, request.seed ?? 'package');
    try {
      const spec = specOf(fresh);
      const initial = packageWeights(spec, request.pkg) ?? flattenWeights(fresh);
      trialStep(tf, fresh);
      post(
        {
          type: 'result',
          id: request.id,
          ok: true,
          value: { spec, initial },
          recycle: recycle(spec.parameters),
        },
        [initial.buffer as ArrayBuffer],
      );
    } finally {
      fresh.dispose();
    }
  } else if (request.op === 'tensors') {
    const { tf } = await loading;
    post({ type: 'result', id: request.id, ok: true, value: tf.memory().numTensors });
  } else if (request.op === 'heap') {
    const { tf } = await loading;
    const wasm = (tf.backend() as { wasm?: { HEAPU8: Uint8Array } }).wasm;
    post({ type: 'result', id: request.id, ok: true, value: wasm?.HEAPU8.length ?? null });
  } else {
    // Test hook: a worker dying mid-job, as an out-of-memory abort or a native crash would.
    process.exit(70);
  }
}

/**
 * One gradient step on a batch of zeros through every layer: a layer whose forward or backward pass the backend
 * lacks fails here, when the task is created, rather than in every organisation's first round.
 */
function trialStep(tf: Awaited<typeof loading>['tf'], model: Tfjs.LayersModel): void {
  const spec = specOf(model);
  try {
    tf.tidy(() => {
      const x = tf.zeros([2, ...spec.inputShape]);
      const { grads } = tf.variableGrads(
        () => tf.mean(tf.square(model.apply(x, { training: true }) as Tfjs.Tensor)) as Tfjs.Scalar,
        model.trainableWeights.map((w) => w.read() as Tfjs.Variable),
      );
      for (const g of Object.values(grads)) g.dataSync();
    });
  } catch (cause) {
    throw new AilinkError(
      'MODEL_LAYER_UNSUPPORTED',
      `one training step of ${spec.name} failed on the ${tf.getBackend()} backend: ${(cause as Error).message}`,
      { cause },
    );
  }
}

function wire(err: unknown): WireError {
  const e = err as Error;
  return hasCode(err)
    ? { code: err.code, message: err.message, ...(err.details ? { details: { ...err.details } } : {}) }
    : { message: e?.message ?? String(err) };
}

port.on('message', (request: WorkerRequest) => {
  handle(request).catch((err) => post({ type: 'result', id: request.id, ok: false, error: wire(err) }));
});
