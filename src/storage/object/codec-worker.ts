import { parentPort } from 'node:worker_threads';
import { hasCode } from '../../shared/errors.ts';
import { decodeSegment, rebuildColumns } from './codec.ts';
import type { CodecTask } from './codec-pool.ts';
import { encodeForStorage, openStored } from './segments.ts';

/** The codec's CPU work (sealing, Reed-Solomon, hashing), off the event loop. Pure functions, one message per task. */
parentPort!.on('message', (task: CodecTask & { id: number }) => {
  try {
    if (task.op === 'encode') {
      const encoded = encodeForStorage(task.profile, task.plaintext, task);
      parentPort!.postMessage({ id: task.id, ok: true, value: encoded }, [
        encoded.stored.buffer as ArrayBuffer,
      ]);
    } else if (task.op === 'decode') {
      const segment = decodeSegment(task.profile, task.fragments, task.expected, task.index);
      const original = openStored(segment, task.index, task.open);
      parentPort!.postMessage({ id: task.id, ok: true, value: original }, [original.buffer as ArrayBuffer]);
    } else {
      const segment = decodeSegment(task.profile, task.fragments, task.expected, task.index);
      const rebuilt = rebuildColumns(task.profile, segment, task.columns, task.expected.fragmentHashes);
      parentPort!.postMessage({ id: task.id, ok: true, value: rebuilt });
    }
  } catch (err) {
    const e = err as Error;
    parentPort!.postMessage({
      id: task.id,
      ok: false,
      error: {
        code: hasCode(err) ? err.code : undefined,
        message: e.message,
        details: hasCode(err) ? err.details : undefined,
      },
    });
  }
});
