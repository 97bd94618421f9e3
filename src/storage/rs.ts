import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { AilinkError } from '../shared/errors.ts';

/**
 * Reed-Solomon over GF(2^8), byte-compatible with klauspost/reedsolomon (what CESS uses), from the wasm build in
 * `@digitaldefiance/reed-solomon-erasure.wasm`. Synchronous: callers with large segments run it in the codec worker.
 *
 * We call the wasm exports directly instead of the package's JS wrapper: the Rust `reconstruct` takes ownership of the
 * present-flags buffer and frees it, and the wrapper frees it a second time, which corrupts the allocator (measured:
 * 299 of 300 later reconstructs wrong; with the flags left to Rust, 0 of 300 and a stable 1.4 MiB heap).
 */
interface RsExports {
  readonly memory: WebAssembly.Memory;
  encode(ptr: number, len: number, data: number, parity: number): number;
  reconstruct(
    ptr: number,
    len: number,
    data: number,
    parity: number,
    flagsPtr: number,
    flagsLen: number,
  ): number;
  __wbindgen_malloc(len: number): number;
  __wbindgen_free(ptr: number, len: number): void;
}

const RESULT_MESSAGES: Record<number, string> = {
  1: 'too few shards',
  2: 'too many shards',
  3: 'too few data shards',
  4: 'too many data shards',
  5: 'too few parity shards',
  6: 'too many parity shards',
  7: 'too few buffer shards',
  8: 'too many buffer shards',
  9: 'incorrect shard size',
  10: 'too few shards present for reconstruction',
  11: 'empty shard',
  12: 'invalid shard flags',
  13: 'invalid index',
};

let wasm: RsExports | undefined;

function rs(): RsExports {
  // Under ESM the package's own loader needs __dirname, so load the wasm bytes ourselves.
  wasm ??= new WebAssembly.Instance(
    new WebAssembly.Module(
      readFileSync(createRequire(import.meta.url).resolve('@digitaldefiance/reed-solomon-erasure.wasm/wasm')),
    ),
  ).exports as unknown as RsExports;
  return wasm;
}

function check(code: number, what: string): void {
  if (code !== 0) {
    throw new AilinkError('CODEC_RS_FAILED', `RS ${what} failed: ${RESULT_MESSAGES[code] ?? `code ${code}`}`);
  }
}

/** Fills the parity shards of `shards` (data shards first, contiguous, equal size) in place. */
export function rsEncode(shards: Uint8Array, dataShards: number, parityShards: number): void {
  const w = rs();
  const ptr = w.__wbindgen_malloc(shards.byteLength);
  try {
    new Uint8Array(w.memory.buffer).set(shards, ptr);
    const code = w.encode(ptr, shards.byteLength, dataShards, parityShards);
    check(code, 'encode');
    const shard = shards.byteLength / (dataShards + parityShards);
    shards.set(
      new Uint8Array(w.memory.buffer, ptr + shard * dataShards, shard * parityShards),
      shard * dataShards,
    );
  } finally {
    w.__wbindgen_free(ptr, shards.byteLength);
  }
}

/**
 * Rebuilds, in place, every data shard whose `present` flag is false (parity shards are left as they are).
 * @throws CODEC_TOO_FEW_FRAGMENTS when fewer than `dataShards` are present.
 */
export function rsReconstruct(
  shards: Uint8Array,
  dataShards: number,
  parityShards: number,
  present: boolean[],
): void {
  const have = present.filter(Boolean).length;
  if (have < dataShards) {
    throw new AilinkError('CODEC_TOO_FEW_FRAGMENTS', `expected ≥ ${dataShards} fragments, got ${have}`);
  }
  const w = rs();
  const ptr = w.__wbindgen_malloc(shards.byteLength);
  try {
    new Uint8Array(w.memory.buffer).set(shards, ptr);
    // Ownership of the flags buffer passes to Rust, which frees it: we must not.
    const flags = w.__wbindgen_malloc(present.length);
    new Uint8Array(w.memory.buffer).set(
      present.map((p) => (p ? 1 : 0)),
      flags,
    );
    const code = w.reconstruct(ptr, shards.byteLength, dataShards, parityShards, flags, present.length);
    check(code, 'reconstruct');
    const shard = shards.byteLength / (dataShards + parityShards);
    shards.set(new Uint8Array(w.memory.buffer, ptr, shard * dataShards));
  } finally {
    w.__wbindgen_free(ptr, shards.byteLength);
  }
}
