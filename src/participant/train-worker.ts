import { parentPort, workerData } from 'node:worker_threads';
import type * as Tfjs from '@tensorflow/tfjs';
import { buildModel, flattenWeights, loadFlatWeights, modelSpec } from '../../models/index.ts';
import { hasCode } from '../shared/errors.ts';
import { type BackendName, loadTf } from './tf.ts';
import { evaluate, trainLocal } from './train.ts';
import type { WireError, WorkerMessage, WorkerRequest } from './train-pool.ts';

/**
 * One training worker (train-pool.ts): its own tfjs instance, models built once and reused by name (only their
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

const models = new Map<string, Tfjs.LayersModel>();

async function modelFor(
  name: string,
): Promise<{ tf: Awaited<typeof loading>['tf']; model: Tfjs.LayersModel }> {
  const { tf } = await loading;
  modelSpec(name); // MODEL_UNKNOWN before anything is built
  let model = models.get(name);
  if (model === undefined) {
    // The seed does not matter: every job loads its own starting weights.
    model = buildModel(tf, name, 'worker');
    models.set(name, model);
  }
  return { tf, model };
}

async function handle(request: WorkerRequest): Promise<void> {
  if (request.op === 'train') {
    const { tf, model } = await modelFor(request.model);
    loadFlatWeights(model, request.weights);
    const result = trainLocal(tf, model, request.data, request.options);
    const weights = flattenWeights(model);
    const { backend } = await loading;
    post({ type: 'result', id: request.id, ok: true, value: { ...result, weights, backend } }, [
      weights.buffer as ArrayBuffer,
    ]);
  } else if (request.op === 'evaluate') {
    const { tf, model } = await modelFor(request.model);
    loadFlatWeights(model, request.weights);
    const result = evaluate(tf, model, request.data, { batchSize: request.batchSize });
    const { backend } = await loading;
    post({ type: 'result', id: request.id, ok: true, value: { ...result, backend } });
  } else if (request.op === 'init') {
    const { tf } = await loading;
    const fresh = buildModel(tf, request.model, request.seed);
    const weights = flattenWeights(fresh);
    fresh.dispose();
    post({ type: 'result', id: request.id, ok: true, value: weights }, [weights.buffer as ArrayBuffer]);
  } else if (request.op === 'tensors') {
    const { tf } = await loading;
    post({ type: 'result', id: request.id, ok: true, value: tf.memory().numTensors });
  } else {
    // Test hook: a worker dying mid-job, as an out-of-memory abort or a native crash would.
    process.exit(70);
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
