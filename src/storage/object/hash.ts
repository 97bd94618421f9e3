import { createHash } from 'node:crypto';

/** CESS fragment hash: hex(SHA-256(fragment)). */
export function fragmentHash(fragment: Uint8Array): string {
  return createHash('sha256').update(fragment).digest('hex');
}

/** CESS segment hash: hex(SHA-256(segment as stored)), i.e. after encryption and padding. */
export const segmentHash = fragmentHash;

export { fidOf, HASH_RE } from '../../shared/fid.ts';

const zeroHashes = new Map<number, string>();

/** Hash of an all-zero fragment of `size` bytes: such fragments are never sent, the miner writes the zeros itself. */
export function zeroFragmentHash(size: number): string {
  let h = zeroHashes.get(size);
  if (h === undefined) {
    h = fragmentHash(new Uint8Array(size));
    zeroHashes.set(size, h);
  }
  return h;
}
