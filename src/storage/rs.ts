import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { ReedSolomonErasure } from '@digitaldefiance/reed-solomon-erasure.wasm';
import { AilinkError } from '../shared/errors.ts';

/**
 * Reed-Solomon over GF(2^8), byte-compatible with klauspost/reedsolomon (what CESS uses). The wasm library is
 * synchronous: callers with large segments run it in the codec worker, never on the event loop.
 */
let instance: ReedSolomonErasure | undefined;

function rs(): ReedSolomonErasure {
  // Under ESM the package's own loader needs __dirname, so load the wasm bytes ourselves.
  instance ??= ReedSolomonErasure.fromBytes(
    readFileSync(createRequire(import.meta.url).resolve('@digitaldefiance/reed-solomon-erasure.wasm/wasm')),
  );
  return instance;
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
 * Rebuilds, in place, every shard whose `present` flag is false (data and parity).
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
