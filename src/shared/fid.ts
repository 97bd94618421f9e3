import { createHash } from 'node:crypto';
import { fromHex, toHex } from './bytes.ts';

/** An id as it travels: 64 lowercase hex characters. */
export const HASH_RE = /^[0-9a-f]{64}$/;

/**
 * CESS file id: a Merkle root over the raw 32-byte segment digests. Pairs hash as SHA-256(a‖b); an odd last node is
 * paired with itself; a single segment therefore gives SHA-256(h‖h). Shared by the storage codec and the chain's
 * fileBank rules, which recompute it from a declaration.
 */
export function fidOf(segmentHashes: readonly string[]): string {
  if (segmentHashes.length === 0) throw new RangeError('fidOf: expected at least one segment hash, got none');
  let level = segmentHashes.map((h) => {
    if (!HASH_RE.test(h))
      throw new RangeError(`fidOf: expected 64-char lowercase hex hashes, got ${JSON.stringify(h)}`);
    return fromHex(h);
  });
  do {
    const next: Uint8Array[] = [];
    for (let i = 0; i < level.length; i += 2) {
      const left = level[i]!;
      const right = level[i + 1] ?? left;
      next.push(new Uint8Array(createHash('sha256').update(left).update(right).digest()));
    }
    level = next;
  } while (level.length > 1);
  return toHex(level[0]!);
}
