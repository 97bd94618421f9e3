import { createCipheriv } from 'node:crypto';
import { AggregationError, type RandomBytes } from './errors.ts';

/**
 * The mask generator: ChaCha20 keyed by a 256-bit seed, its keystream read as little-endian words of Z_2^32.
 * (Flower seeds its masks from a 32-bit Mersenne Twister; a 256-bit key leaves nothing to brute-force.)
 * Domain separation comes from the 96-bit nonce, so one seed can drive several independent streams.
 * This is the mask of `seed` (its `stream`), `length` words, whole; masks of a model's size are better applied with
 * `applyMask`, which never holds one.
 */
export function maskFromSeed(seed: Uint8Array, length: number, stream = 0): Uint32Array {
  if (!Number.isSafeInteger(length) || length < 0) {
    throw new AggregationError('AGG_INVALID_INPUT', `expected a non-negative mask length, got ${length}`);
  }
  return applyMask(new Uint32Array(length), seed, 1, stream);
}

/** Words of keystream made at a time by `applyMask`: 1 MiB, small beside a model, large enough to amortise a call. */
const MASK_CHUNK_WORDS = 1 << 18;

/**
 * Adds (`sign` 1) or subtracts (−1) the mask of `seed` (its `stream`) into `target`, in place, coordinate-wise in
 * Z_2^32, one chunk of keystream at a time: the same as `addInto(target, maskFromSeed(seed, target.length))`, without
 * holding a mask of the target's size (400 MB for a 100M-parameter model, several per update before).
 */
export function applyMask(target: Uint32Array, seed: Uint8Array, sign: 1 | -1, stream = 0): Uint32Array {
  if (seed.byteLength !== 32) {
    throw new AggregationError(
      'SECAGG_INVALID_PARAMETERS',
      `expected a 32-byte seed, got ${seed.byteLength} bytes`,
    );
  }
  // node's chacha20 takes a 16-byte IV: a 32-bit block counter (0) then the 96-bit nonce. Successive updates continue
  // one keystream, so chunking changes nothing in the mask.
  const iv = Buffer.alloc(16);
  iv.writeUInt32LE(stream >>> 0, 4);
  const cipher = createCipheriv('chacha20', seed, iv);
  const words = new Uint32Array(Math.min(MASK_CHUNK_WORDS, target.length));
  const bytes = new Uint8Array(words.buffer);
  for (let at = 0; at < target.length; at += words.length) {
    const n = Math.min(words.length, target.length - at);
    bytes.set(cipher.update(zeros(n * 4)));
    if (sign === 1) for (let i = 0; i < n; i++) target[at + i] = (target[at + i]! + words[i]!) >>> 0;
    else for (let i = 0; i < n; i++) target[at + i] = (target[at + i]! - words[i]!) >>> 0;
  }
  return target;
}

/**
 * A deterministic byte source: the ChaCha20 keystream of a 256-bit seed, read on from where the last call stopped.
 * For randomness that must come out the same after a restart (the coordinator's DP noise) yet stay secret.
 */
export function byteStreamFromSeed(seed: Uint8Array, stream = 0): RandomBytes {
  if (seed.byteLength !== 32) {
    throw new AggregationError(
      'SECAGG_INVALID_PARAMETERS',
      `expected a 32-byte seed, got ${seed.byteLength} bytes`,
    );
  }
  const iv = Buffer.alloc(16);
  iv.writeUInt32LE(stream >>> 0, 4);
  const cipher = createCipheriv('chacha20', seed, iv);
  return (length) => new Uint8Array(cipher.update(Buffer.alloc(length)));
}

let zeroBuffer = Buffer.alloc(0);

/** A shared all-zero input for the cipher (it is only read; one mask chunk at most, so it stays small). */
function zeros(bytes: number): Buffer {
  if (zeroBuffer.byteLength < bytes) zeroBuffer = Buffer.alloc(bytes);
  return zeroBuffer.subarray(0, bytes);
}
