import { AilinkError } from '../shared/errors.ts';
import { openSegment, sealedCapacity, sealSegment } from './envelope.ts';
import type { StorageProfile } from './profile.ts';
import type { ObjectRecord } from './record.ts';

/**
 * How an object's bytes map onto segments. Plain objects fill each segment completely and zero-pad the last
 * (CESS); encrypted ones carry `segmentSize − 16` plaintext bytes per segment plus the GCM tag.
 */
export const segmentCapacity = (profile: StorageProfile, encrypted: boolean): number =>
  encrypted ? sealedCapacity(profile.segmentSize) : profile.segmentSize;

/** Turns one segment's plaintext into the bytes stored for it (sealed when a key is given, then zero-padded). */
export function storedSegment(
  profile: StorageProfile,
  plaintext: Uint8Array,
  at: { index: number; last: boolean; key: Uint8Array | null },
): Uint8Array {
  if (at.key !== null) return sealSegment(at.key, at.index, at.last, plaintext, profile.segmentSize);
  if (plaintext.byteLength > profile.segmentSize) {
    throw new RangeError(
      `segment ${at.index}: expected ≤ ${profile.segmentSize} bytes, got ${plaintext.byteLength}`,
    );
  }
  if (plaintext.byteLength === profile.segmentSize) return plaintext;
  const padded = new Uint8Array(profile.segmentSize);
  padded.set(plaintext);
  return padded;
}

/** Number of original bytes carried by segment `index` of `record`. */
export function plaintextLength(
  record: Pick<ObjectRecord, 'size' | 'profile' | 'segments' | 'encryption'>,
  index: number,
): number {
  const capacity = segmentCapacity(record.profile, record.encryption !== null);
  const count = record.segments.length;
  const expectedCount = Math.max(1, Math.ceil(record.size / capacity));
  if (count !== expectedCount) {
    throw new AilinkError(
      'CODEC_HASH_MISMATCH',
      `record of ${record.size} bytes should have ${expectedCount} segments, has ${count}`,
    );
  }
  return index < count - 1 ? capacity : record.size - capacity * (count - 1);
}

/** How to turn a decoded segment back into original bytes: how many there are, and the key if it is sealed. */
export interface OpenSpec {
  readonly length: number;
  readonly last: boolean;
  readonly key: Uint8Array | null;
}

/** Recovers segment `index`'s original bytes from its stored (decoded) bytes. @throws CRYPTO_DECRYPT_FAILED */
export function openStored(stored: Uint8Array, index: number, spec: OpenSpec): Uint8Array {
  if (spec.key === null) return stored.subarray(0, spec.length);
  return openSegment(spec.key, index, spec.last, stored, spec.length);
}
