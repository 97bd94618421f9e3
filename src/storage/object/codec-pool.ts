import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { AilinkError, isErrorCode } from '../../shared/errors.ts';
import { decodeSegment, rebuildColumns } from './codec.ts';
import type { StorageProfile } from './profile.ts';
import { type EncodedShards, encodeForStorage, type OpenSpec, openStored } from './segments.ts';

/** A segment's fetched fragments (null where missing) and the hashes they must match. */
interface FetchedSegment {
  profile: StorageProfile;
  fragments: (Uint8Array | null)[];
  expected: { hash: string; fragmentHashes: string[] };
  index: number;
}

export type CodecTask =
  | {
      op: 'encode';
      profile: StorageProfile;
      plaintext: Uint8Array;
      index: number;
      last: boolean;
      key: Uint8Array | null;
    }
  | ({ op: 'decode'; open: OpenSpec } & FetchedSegment)
  | ({ op: 'rebuild'; columns: number[] } & FetchedSegment);

/**
 * Runs codec work on worker threads so that Reed-Solomon over a 32 MiB segment (≈ 300 ms) never stalls the event
 * loop. `inline: true` runs the same functions on the calling thread (tiny objects, tests).
 */
export interface CodecPool {
  /** Seals and codes one segment. The plaintext's buffer is transferred: the caller must not use it afterwards. */
  encode(task: Omit<Extract<CodecTask, { op: 'encode' }>, 'op'>): Promise<EncodedShards>;
  /** Verifies and rebuilds one segment and returns its original bytes. Fragment buffers are transferred. */
  decode(task: Omit<Extract<CodecTask, { op: 'decode' }>, 'op'>): Promise<Uint8Array>;
  rebuild(task: Omit<Extract<CodecTask, { op: 'rebuild' }>, 'op'>): Promise<Uint8Array[]>;
  close(): Promise<void>;
}

export function createCodecPool(options: { threads?: number; inline?: boolean } = {}): CodecPool {
  if (options.inline) return inlinePool();
  const size = Math.max(1, options.threads ?? Math.min(2, availableParallelism()));
  type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void };
  type Slot = { worker: Worker; pending: Map<number, Pending> };
  const slots: Slot[] = [];
  let nextId = 0;

  const spawn = (): Slot => {
    const worker = new Worker(new URL('../../shared/ts-worker.mjs', import.meta.url), {
      workerData: { entry: new URL('./codec-worker.ts', import.meta.url).href },
    });
    worker.unref();
    const slot: Slot = { worker, pending: new Map() };
    worker.on('message', (msg: WorkerReply) => {
      const p = slot.pending.get(msg.id);
      if (!p) return;
      slot.pending.delete(msg.id);
      if (msg.ok) p.resolve(msg.value);
      else p.reject(errorFromWorker(msg.error));
    });
    // A worker that dies takes only its own tasks with it, and is replaced on the next task: nothing waits forever.
    const retire = (err: Error) => {
      const at = slots.indexOf(slot);
      if (at >= 0) slots.splice(at, 1);
      for (const p of slot.pending.values()) p.reject(err);
      slot.pending.clear();
    };
    worker.on('error', retire);
    worker.on('exit', (code) =>
      retire(
        new AilinkError(
          'CODEC_WORKER_FAILED',
          `expected the codec worker to answer, but it exited with code ${code}; the task can be retried`,
          { details: { exitCode: code } },
        ),
      ),
    );
    slots.push(slot);
    return slot;
  };

  const run = <T>(task: CodecTask, transfer: ArrayBuffer[]): Promise<T> => {
    const slot =
      slots.length < size ? spawn() : slots.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
    const id = nextId++;
    return new Promise<T>((resolve, reject) => {
      slot.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      slot.worker.postMessage({ ...task, id }, transfer);
    });
  };

  return {
    // The plaintext buffer moves to the worker (the caller hands it over); cloning 32 MiB would stall the loop.
    encode: (t) => run({ op: 'encode', ...t }, [t.plaintext.buffer as ArrayBuffer]),
    decode: (t) => run({ op: 'decode', ...t }, transferable(t.fragments)),
    rebuild: (t) => run({ op: 'rebuild', ...t }, transferable(t.fragments)),
    async close() {
      await Promise.all(slots.map((s) => s.worker.terminate()));
      slots.length = 0;
    },
  };
}

interface WorkerReply {
  readonly id: number;
  readonly ok: boolean;
  readonly value?: unknown;
  readonly error?: { code?: string; message: string; details?: Record<string, unknown> };
}

function errorFromWorker(error: WorkerReply['error']): Error {
  const code = error?.code;
  return isErrorCode(code)
    ? new AilinkError(code, error!.message, error?.details ? { details: error.details } : {})
    : new AilinkError(
        'CODEC_WORKER_FAILED',
        `the codec worker failed without an AI-LINK error code: ${error?.message ?? 'no message'}`,
      );
}

function inlinePool(): CodecPool {
  return {
    encode: async (t) => encodeForStorage(t.profile, t.plaintext, t),
    decode: async (t) =>
      openStored(decodeSegment(t.profile, t.fragments, t.expected, t.index), t.index, t.open),
    async rebuild(t) {
      const segment = decodeSegment(t.profile, t.fragments, t.expected, t.index);
      return rebuildColumns(t.profile, segment, t.columns, t.expected.fragmentHashes);
    },
    async close() {},
  };
}

/** Buffers that are exactly one fragment each can move to the worker instead of being copied. */
function transferable(fragments: readonly (Uint8Array | null)[]): ArrayBuffer[] {
  const seen = new Set<ArrayBuffer>();
  for (const f of fragments) {
    if (
      f !== null &&
      f.byteOffset === 0 &&
      f.byteLength === f.buffer.byteLength &&
      f.buffer instanceof ArrayBuffer
    ) {
      seen.add(f.buffer);
    }
  }
  return [...seen];
}
