import { createCipheriv } from 'node:crypto';
import { AggregationError, type RandomBytes } from './errors.ts';

/**
 * The mask generator: ChaCha20 keyed by a 256-bit seed, its keystream read as little-endian words of Z_2^32.
 * (Flower seeds its masks from a 32-bit Mersenne Twister; a 256-bit key leaves nothing to brute-force.)
 * Domain separation comes from the 96-bit nonce, so one seed can drive several independent streams.
 */
export function maskFromSeed(seed: Uint8Array, length: number, stream = 0): Uint32Array {
  if (seed.byteLength !== 32) {
    throw new AggregationError(
      'SECAGG_INVALID_PARAMETERS',
      `expected a 32-byte seed, got ${seed.byteLength} bytes`,
    );
  }
  if (!Number.isSafeInteger(length) || length < 0) {
    throw new AggregationError('AGG_INVALID_INPUT', `expected a non-negative mask length, got ${length}`);
  }
  // node's chacha20 takes a 16-byte IV: a 32-bit block counter (0) then the 96-bit nonce.
  const iv = Buffer.alloc(16);
  iv.writeUInt32LE(stream >>> 0, 4);
  const cipher = createCipheriv('chacha20', seed, iv);
  const keystream = cipher.update(zeros(length * 4));
  // View the keystream as words instead of copying it, but only when it owns its memory (never a shared pool slab).
  if (keystream.byteOffset === 0 && keystream.buffer.byteLength === keystream.byteLength) {
    return new Uint32Array(keystream.buffer, 0, length);
  }
  const words = new Uint32Array(length);
  new Uint8Array(words.buffer).set(keystream);
  return words;
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

/** A shared all-zero input for the cipher (it is only read), so a mask costs no zero-filled allocation. */
function zeros(bytes: number): Buffer {
  if (zeroBuffer.byteLength < bytes) zeroBuffer = Buffer.alloc(bytes);
  return zeroBuffer.subarray(0, bytes);
}
