import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { ModelPackage, ModelSpec } from '../../models/index.ts';
import { AilinkError, isErrorCode } from '../shared/errors.ts';
import type { ParticipantDeps } from './runtime.ts';
import type { BackendName } from './tf.ts';
import type { EvaluationResult, LossName, TrainingData, TrainOptions, TrainResult } from './train.ts';

/**
 * Training off the event loop. The wasm backend is synchronous and single-threaded in Node, and one CNN epoch over a
 * participant's data takes seconds to minutes, so it runs on worker threads: one tfjs instance per worker (wasm's own
 * threads do not work in Node), models built once per worker and reused by name, one job per worker at a time. Jobs
 * wait in the pool's queue until a worker is free, so that aborting or losing a worker touches only the job on it.
 */

/** A model as jobs name it: its topology, and a key (the package digest) under which workers cache it built. */
export interface ModelRef {
  readonly key: string;
  readonly topology: Record<string, unknown>;
}

export interface TrainJob {
  readonly model: ModelRef;
  /** Starting weights in the canonical order. Their buffer is transferred: the caller must not use them afterwards. */
  readonly weights: Float32Array;
  readonly data: TrainingData;
  readonly options: TrainOptions;
}

export interface EvaluateJob {
  readonly model: ModelRef;
  /** As for TrainJob, transferred. */
  readonly weights: Float32Array;
  readonly data: TrainingData;
  readonly batchSize?: number;
  readonly loss?: LossName;
}

export interface PoolTrainResult extends TrainResult {
  /** The trained weights in the canonical order. */
  readonly weights: Float32Array;
  readonly backend: BackendName;
}

export interface PoolEvaluationResult extends EvaluationResult {
  readonly backend: BackendName;
}

export interface TrainingPool {
  /**
   * Trains on a worker and resolves with the trained weights.
   * @throws ABORTED when the signal aborts (a running job's worker is terminated and replaced) or the pool closes
   * @throws TRAINING_WORKER_FAILED when the worker crashes; other codes as trainLocal throws them
   */
  train(job: TrainJob, options?: { signal?: AbortSignal }): Promise<PoolTrainResult>;
  /**
   * Builds a model package on a worker, checks that it trains there (one step on zeros through every layer), and
   * gives its spec and initial weights: the package's own, else its initializers seeded by `seed` (the same on every
   * run, so round 0's model is reproducible).
   * @throws MODEL_INVALID, MODEL_LAYER_UNSUPPORTED, MODEL_SHAPE_MISMATCH for a model that cannot be trained as given
   */
  describe(
    pkg: ModelPackage,
    seed: string | null,
    options?: { signal?: AbortSignal },
  ): Promise<{ spec: ModelSpec; initial: Float32Array }>;
  /** Evaluates weights on a worker. @throws as train */
  evaluate(job: EvaluateJob, options?: { signal?: AbortSignal }): Promise<PoolEvaluationResult>;
  /** The backend the workers use (starts one worker if none runs). @throws TRAINING_BACKEND_UNAVAILABLE */
  backend(): Promise<BackendName>;
  /** Terminates the workers; queued and running jobs reject with ABORTED. */
  close(): Promise<void>;
}

/**
 * A participant's trainer over a pool: what an organisation trains and scores with, the same for `ailink participant`
 * and each of `ailink simulate`'s virtual organisations (whose pool's threads bound how many train at once).
 */
export function poolTrainer(pool: TrainingPool): ParticipantDeps['trainer'] {
  return {
    async train(job) {
      const r = await pool.train(job);
      return { weights: r.weights, loss: r.loss, examples: r.examples, seconds: r.seconds };
    },
    async evaluate(job) {
      const r = await pool.evaluate(job);
      return { examples: r.examples, correct: r.correct, lossSum: r.lossSum };
    },
  };
}

/**
 * Test hooks, kept off the public interface: crash a worker on purpose, count a worker's live tensors, the size its
 * WebAssembly heap has grown to (null off wasm).
 */
export const POOL_TEST_HOOKS = Symbol('ailink.trainingPool.testHooks');
export interface PoolTestHooks {
  crash(): Promise<never>;
  tensors(): Promise<number>;
  heapBytes(): Promise<number | null>;
}

/** What the worker receives (train-worker.ts). */
export type WorkerRequest =
  | {
      readonly id: number;
      readonly op: 'train';
      readonly model: ModelRef;
      readonly weights: Float32Array;
      readonly data: TrainingData;
      readonly options: TrainOptions;
    }
  | {
      readonly id: number;
      readonly op: 'evaluate';
      readonly model: ModelRef;
      readonly weights: Float32Array;
      readonly data: TrainingData;
      readonly batchSize?: number;
      readonly loss?: LossName;
    }
  | { readonly id: number; readonly op: 'describe'; readonly pkg: ModelPackage; readonly seed: string | null }
  | { readonly id: number; readonly op: 'crash' | 'tensors' | 'heap' };

export type WorkerMessage =
  | { readonly type: 'ready'; readonly backend?: BackendName; readonly error?: WireError }
  /** `recycle`: the job's model was large; the worker is ended after it (see RECYCLE_ABOVE_PARAMETERS). */
  | {
      readonly type: 'result';
      readonly id: number;
      readonly ok: true;
      readonly value: unknown;
      readonly recycle?: boolean;
    }
  | { readonly type: 'result'; readonly id: number; readonly ok: false; readonly error: WireError };

export interface WireError {
  readonly code?: string;
  readonly message: string;
  readonly details?: Record<string, unknown>;
}

type Request = WorkerRequest extends infer R ? (R extends unknown ? Omit<R, 'id'> : never) : never;

interface Job {
  readonly id: number;
  readonly request: Request;
  readonly transfer: ArrayBuffer[];
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: Error) => void;
  readonly signal: AbortSignal | undefined;
  readonly onAbort: () => void;
  slot: Slot | null;
  settled: boolean;
}

interface Slot {
  readonly worker: Worker;
  readonly ready: Promise<BackendName>;
  /** Rejects `ready` if the worker never announced itself. */
  readonly failReady: (error: AilinkError) => void;
  job: Job | null;
  /** Set once the slot is out of service (exited, crashed or terminated): nothing more is sent to it. */
  retired: boolean;
  /** Callers waiting on this worker (its job, backend() calls): while any wait, the worker keeps the process alive. */
  holds: number;
}

/**
 * Weights above which a worker is ended after its job rather than kept with the model built. A WebAssembly memory
 * only grows: a worker that trained a 100M-weight model holds ≈ 1.5 GB of it until it exits, which the participant
 * then needs for masking and storing the update (bench/large-round.ts). Rebuilding such a model for the next job
 * takes seconds (11 s at 100M weights), little beside training it. 16M weights (64 MB) keep every built-in model
 * (the CNN has 1.7M) cached as before.
 */
export const RECYCLE_ABOVE_PARAMETERS = 16_000_000;

/**
 * Creates a pool of up to `threads` training workers (default: 2, or fewer cores), started on demand, each loading
 * tfjs with `backend` as its preferred backend (see loadTf). A worker whose job was on a model of more than
 * `recycleAboveParameters` weights (default RECYCLE_ABOVE_PARAMETERS) is ended once the job is done, so that its
 * memory goes back to the system.
 */
export function createTrainingPool(
  options: { threads?: number; backend?: BackendName; recycleAboveParameters?: number } = {},
): TrainingPool {
  const size = Math.max(1, options.threads ?? Math.min(2, availableParallelism()));
  const slots: Slot[] = [];
  const queue: Job[] = [];
  let nextId = 0;
  let closed = false;

  const settle = (job: Job, outcome: { value: unknown } | { error: Error }) => {
    if (job.settled) return;
    job.settled = true;
    job.signal?.removeEventListener('abort', job.onAbort);
    if ('error' in outcome) job.reject(outcome.error);
    else job.resolve(outcome.value);
  };

  const spawn = (): Slot => {
    const worker = new Worker(new URL('../shared/ts-worker.mjs', import.meta.url), {
      workerData: {
        entry: new URL('./train-worker.ts', import.meta.url).href,
        backend: options.backend,
        recycleAboveParameters: options.recycleAboveParameters ?? RECYCLE_ABOVE_PARAMETERS,
      },
    });
    // An idle worker must not keep the process alive; one that someone waits on must (see hold).
    worker.unref();
    let announce: (message: WorkerMessage & { type: 'ready' }) => void = () => {};
    const ready = new Promise<BackendName>((resolve, reject) => {
      announce = (m) => (m.backend ? resolve(m.backend) : reject(errorFromWorker(m.error)));
    });
    ready.catch(() => {}); // observed by backend() callers, if any
    const slot: Slot = {
      worker,
      ready,
      failReady: (error) => announce({ type: 'ready', error: error.toJSON() }),
      job: null,
      retired: false,
      holds: 0,
    };
    worker.on('message', (message: WorkerMessage) => {
      if (message.type === 'ready') {
        announce(message);
        return;
      }
      const job = slot.job;
      if (job === null || job.id !== message.id) return;
      slot.job = null;
      release(slot);
      if (message.ok && message.recycle === true) {
        retire(slot, new AilinkError('ABORTED', 'the training worker was recycled'));
        void slot.worker.terminate();
      }
      settle(job, message.ok ? { value: message.value } : { error: errorFromWorker(message.error) });
      pump();
    });
    // A worker that dies takes only its own job with it; the queue moves on to a fresh worker.
    const died = (cause: string) => {
      if (slot.retired) return;
      const failure = new AilinkError('TRAINING_WORKER_FAILED', `training worker failed: ${cause}`);
      const job = retire(slot, failure);
      if (job !== null) settle(job, { error: failure });
      pump();
    };
    worker.on('error', (err) => died(err.message));
    worker.on('exit', (code) => died(`exited with code ${code}`));
    slots.push(slot);
    return slot;
  };

  /** Takes a slot out of service and returns the job it was running, if any. */
  const retire = (slot: Slot, error: AilinkError): Job | null => {
    slot.retired = true;
    const at = slots.indexOf(slot);
    if (at >= 0) slots.splice(at, 1);
    slot.failReady(error);
    const job = slot.job;
    slot.job = null;
    return job;
  };

  const hold = (slot: Slot) => {
    if (slot.holds++ === 0) slot.worker.ref();
  };
  const release = (slot: Slot) => {
    if (--slot.holds === 0) slot.worker.unref();
  };

  const run = (slot: Slot, job: Job) => {
    slot.job = job;
    job.slot = slot;
    hold(slot);
    slot.worker.postMessage({ ...job.request, id: job.id }, job.transfer);
  };

  /** Starts queued jobs on idle workers, spawning workers up to the pool size. */
  const pump = () => {
    while (!closed && queue.length > 0) {
      const idle = slots.find((s) => s.job === null && !s.retired) ?? (slots.length < size ? spawn() : null);
      if (idle === null) return;
      run(idle, queue.shift()!);
    }
  };

  const submit = <T>(request: Request, transfer: ArrayBuffer[], signal: AbortSignal | undefined) =>
    new Promise<T>((resolve, reject) => {
      if (closed) {
        reject(new AilinkError('ABORTED', 'the training pool is closed'));
        return;
      }
      if (signal?.aborted) {
        reject(abortError(signal));
        return;
      }
      const job: Job = {
        id: nextId++,
        request,
        transfer,
        resolve: resolve as (value: unknown) => void,
        reject,
        signal,
        slot: null,
        settled: false,
        onAbort: () => {
          const at = queue.indexOf(job);
          if (at >= 0) queue.splice(at, 1);
          // Training is one synchronous call inside the worker: the only way to stop it is to end the worker.
          const error = abortError(signal!);
          if (job.slot !== null && job.slot.job === job) {
            retire(job.slot, error);
            void job.slot.worker.terminate();
          }
          settle(job, { error });
          pump();
        },
      };
      signal?.addEventListener('abort', job.onAbort, { once: true });
      queue.push(job);
      pump();
    });

  const hooks: PoolTestHooks = {
    crash: () => submit<never>({ op: 'crash' }, [], undefined),
    tensors: () => submit<number>({ op: 'tensors' }, [], undefined),
    heapBytes: () => submit<number | null>({ op: 'heap' }, [], undefined),
  };

  return {
    train(job, { signal } = {}) {
      const weights = movable(job.weights);
      return submit<PoolTrainResult>(
        {
          op: 'train',
          model: job.model,
          weights,
          data: compactData(job.data),
          options: job.options.proximal
            ? {
                ...job.options,
                proximal: { mu: job.options.proximal.mu, global: compact(job.options.proximal.global) },
              }
            : job.options,
        },
        [weights.buffer as ArrayBuffer],
        signal,
      );
    },
    describe(pkg, seed, { signal } = {}) {
      return submit<{ spec: ModelSpec; initial: Float32Array }>({ op: 'describe', pkg, seed }, [], signal);
    },
    evaluate(job, { signal } = {}) {
      const weights = movable(job.weights);
      return submit<PoolEvaluationResult>(
        {
          op: 'evaluate',
          model: job.model,
          weights,
          data: compactData(job.data),
          ...(job.batchSize === undefined ? {} : { batchSize: job.batchSize }),
          ...(job.loss === undefined ? {} : { loss: job.loss }),
        },
        [weights.buffer as ArrayBuffer],
        signal,
      );
    },
    async backend() {
      if (closed) throw new AilinkError('ABORTED', 'the training pool is closed');
      const slot = slots[0] ?? spawn();
      hold(slot);
      try {
        return await slot.ready;
      } finally {
        release(slot);
      }
    },
    async close() {
      closed = true;
      const closing = new AilinkError('ABORTED', 'the training pool closed');
      for (const job of queue.splice(0)) settle(job, { error: closing });
      const running = [...slots];
      for (const slot of running) {
        const job = retire(slot, closing);
        if (job !== null) settle(job, { error: closing });
      }
      await Promise.all(running.map((s) => s.worker.terminate()));
    },
    [POOL_TEST_HOOKS]: hooks,
  } as TrainingPool;
}

/** The hooks of a pool made by createTrainingPool (tests only). */
export function poolTestHooks(pool: TrainingPool): PoolTestHooks {
  return (pool as TrainingPool & { [POOL_TEST_HOOKS]: PoolTestHooks })[POOL_TEST_HOOKS];
}

const abortError = (signal: AbortSignal) =>
  new AilinkError('ABORTED', 'the training job was aborted', {
    ...(signal.reason === undefined ? {} : { cause: signal.reason }),
  });

/**
 * A weight vector whose buffer can move to the worker: the vector itself when it owns its whole buffer (the usual
 * case), else a copy (transferring would take the rest of someone else's buffer along).
 */
function movable(weights: Float32Array): Float32Array {
  return weights.byteOffset === 0 &&
    weights.byteLength === weights.buffer.byteLength &&
    weights.buffer instanceof ArrayBuffer
    ? weights
    : weights.slice();
}

/**
 * Structured clone copies a view's whole underlying buffer: a 2,000-image view of the 47 MB training set would send
 * all 47 MB. Views that do not span their buffer are sliced first. (Data is cloned, not transferred: callers keep it
 * for the next round.)
 */
function compact<T extends Uint8Array | Uint16Array | Float32Array>(view: T): T {
  if (view.byteOffset === 0 && view.byteLength === view.buffer.byteLength) return view;
  // A fresh plain array (Buffer#slice would return another view of the same pool).
  const Kind = view.constructor as new (from: T) => T;
  return new Kind(view);
}

function compactData(data: TrainingData): TrainingData {
  return { count: data.count, shape: data.shape, x: compact(data.x), y: compact(data.y) };
}

function errorFromWorker(error: WireError | undefined): AilinkError {
  const code = error?.code;
  return new AilinkError(
    isErrorCode(code) ? code : 'TRAINING_WORKER_FAILED',
    error?.message ?? 'training worker failed',
    error?.details ? { details: error.details } : {},
  );
}
