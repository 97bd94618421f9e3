import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { ReedSolomonErasure } from '@digitaldefiance/reed-solomon-erasure.wasm';
import { AilinkError } from '../shared/errors.ts';

/**
 * Reed-Solomon over GF(2^8), byte-compatible with klauspost/reedsolomon (what CESS uses). The wasm library is
 * synchronous: callers with large segments run it in the codec worker, never on the event loop.
 */
let compiled: WebAssembly.Module | undefined;

// The package's JS wrapper frees buffers the Rust side already owns, which corrupts the wasm heap of a long-lived
// instance (seen: reconstruct refusing valid sets, then out-of-bounds traps). So the module is compiled once and every
// call gets a fresh instance — a few hundred microseconds against tens of milliseconds of coding.
function rs(): ReedSolomonErasure {
  // Under ESM the package's own loader needs __dirname, so load the wasm bytes ourselves.
  compiled ??= new WebAssembly.Module(
    readFileSync(createRequire(import.meta.url).resolve('@digitaldefiance/reed-solomon-erasure.wasm/wasm')),
  );
  const Wrapper = ReedSolomonErasure as unknown as new (exports: WebAssembly.Exports) => ReedSolomonErasure;
  return new Wrapper(new WebAssembly.Instance(compiled).exports);
}

/** Fills the parity shards of `shards` (data shards first, contiguous, equal size) in place. */
export function rsEncode(shards: Uint8Array, dataShards: number, parityShards: number): void {
  const code = rs().encode(shards, dataShards, parityShards);
  if (code !== ReedSolomonErasure.RESULT_OK) {
    throw new AilinkError(
      'CODEC_RS_FAILED',
      `RS encode failed: ${ReedSolomonErasure.getResultMessage(code)}`,
    );
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
  const code = rs().reconstruct(shards, dataShards, parityShards, present);
  if (code !== ReedSolomonErasure.RESULT_OK) {
    throw new AilinkError(
      'CODEC_RS_FAILED',
      `RS reconstruct failed: ${ReedSolomonErasure.getResultMessage(code)}`,
    );
  }
}
