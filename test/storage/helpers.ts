import { createCipheriv, createHash } from 'node:crypto';
import { expect } from 'vitest';
import { AilinkError, type ErrorCode } from '../../src/shared/errors.ts';

/** Runs `fn` and returns what it threw; fails the test if it returned normally. */
export function thrownBy(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected the call to throw, but it returned');
}

/** Asserts that `fn` throws an AilinkError with `code`, and returns it for further checks. */
export function expectCode(fn: () => unknown, code: ErrorCode): AilinkError {
  const err = thrownBy(fn);
  expect(err).toBeInstanceOf(AilinkError);
  expect((err as AilinkError).code).toBe(code);
  return err as AilinkError;
}

export const sha256Hex = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** Reproducible pseudo-random bytes: the AES-256-CTR keystream under SHA-256(seed). */
export function seededBytes(seed: string | number, length: number): Uint8Array {
  const key = createHash('sha256').update(`ailink-test-seed:${seed}`).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  return new Uint8Array(Buffer.concat([cipher.update(Buffer.alloc(length)), cipher.final()]));
}

/** A copy of `bytes` with bit `bit` (0 = least significant bit of byte 0) flipped. */
export function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const out = bytes.slice();
  out[bit >> 3] = out[bit >> 3]! ^ (1 << (bit & 7));
  return out;
}

/** Every k-element subset of 0..n-1, in lexicographic order. */
export function combinations(n: number, k: number): number[][] {
  const out: number[][] = [];
  const pick = (start: number, acc: number[]): void => {
    if (acc.length === k) {
      out.push([...acc]);
      return;
    }
    for (let i = start; i <= n - (k - acc.length); i++) pick(i + 1, [...acc, i]);
  };
  pick(0, []);
  return out;
}

/** Awaits `promise`, expecting it to reject with an AilinkError of `code`; returns that error. */
export async function rejectsWith(promise: Promise<unknown>, code: ErrorCode): Promise<AilinkError> {
  const err = await promise.then(
    () => {
      throw new Error(`expected ${code}, but the call succeeded`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AilinkError);
  expect((err as AilinkError).code).toBe(code);
  return err as AilinkError;
}
