import { toHex } from '../../shared/bytes.ts';
import { AilinkError } from '../../shared/errors.ts';
import { encodeSegment } from './codec.ts';
import { openSegment, sealSegment } from './envelope.ts';
import type { StorageProfile } from './profile.ts';
import type { ObjectRecord } from './record.ts';

/**
 * How an object's bytes map onto segments: each segment carries `segmentSize` original bytes (sealed or not; the
 * GCM tag lives in the record), and the last one is zero-padded, as CESS does.
 */

/** What is stored for one segment: exactly `segmentSize` bytes, plus the detached tag when it is sealed. */
export interface StoredSegment {
  readonly stored: Uint8Array;
  readonly tag: Uint8Array | null;
}

/** Turns one segment's plaintext into the bytes stored for it (sealed when a key is given, then zero-padded). */
export function storedSegment(
  profile: StorageProfile,
  plaintext: Uint8Array,
  at: { index: number; last: boolean; key: Uint8Array | null },
): StoredSegment {
  if (at.key !== null) return sealSegment(at.key, at.index, at.last, plaintext, profile.segmentSize);
  if (plaintext.byteLength > profile.segmentSize) {
    throw new RangeError(
      `segment ${at.index}: expected ≤ ${profile.segmentSize} bytes, got ${plaintext.byteLength}`,
    );
  }
  if (plaintext.byteLength === profile.segmentSize) return { stored: plaintext, tag: null };
  const padded = new Uint8Array(profile.segmentSize);
  padded.set(plaintext);
  return { stored: padded, tag: null };
}

/** One segment ready to place: its hash, its tag if sealed, and all fragments in one contiguous buffer. */
export interface EncodedShards {
  readonly hash: string;
  /** The segment's GCM tag (hex) when it was sealed. */
  readonly tag: string | null;
  readonly fragmentHashes: string[];
  /** All fragments, contiguous: fragment i is bytes [i·size, (i+1)·size). */
  readonly shards: Uint8Array;
}

/** Seals (if keyed), pads and Reed-Solomon-codes one segment's plaintext: the whole CPU side of a put. */
export function encodeForStorage(
  profile: StorageProfile,
  plaintext: Uint8Array,
  at: { index: number; last: boolean; key: Uint8Array | null },
): EncodedShards {
  const { stored, tag } = storedSegment(profile, plaintext, at);
  const e = encodeSegment(profile, stored);
  return {
    hash: e.hash,
    tag: tag === null ? null : toHex(tag),
    fragmentHashes: e.fragmentHashes,
    shards: new Uint8Array(e.fragments[0]!.buffer as ArrayBuffer),
  };
}

/**
 * Number of original bytes carried by segment `index` of `record`.
 * @throws CODEC_HASH_MISMATCH when the recorded size and segment count disagree.
 */
export function plaintextLength(
  record: Pick<ObjectRecord, 'size' | 'profile' | 'segments'>,
  index: number,
): number {
  const capacity = record.profile.segmentSize;
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

/** How to turn a decoded segment back into original bytes: how many there are, and key + tag if it is sealed. */
export interface OpenSpec {
  readonly length: number;
  readonly last: boolean;
  readonly key: Uint8Array | null;
  readonly tag: Uint8Array | null;
}

/** Recovers segment `index`'s original bytes from its stored (decoded) bytes. @throws CRYPTO_DECRYPT_FAILED */
export function openStored(stored: Uint8Array, index: number, spec: OpenSpec): Uint8Array {
  if (spec.key === null) return stored.subarray(0, spec.length);
  if (spec.tag === null)
    throw new AilinkError('CRYPTO_DECRYPT_FAILED', `segment ${index}: the record has no tag for it`);
  return openSegment(spec.key, index, spec.last, stored, spec.length, spec.tag);
}
