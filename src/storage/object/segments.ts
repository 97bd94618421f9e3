import { createHash } from 'node:crypto';
import { toHex } from '../../shared/bytes.ts';
import { AilinkError } from '../../shared/errors.ts';
import { openSegment, sealSegment } from './envelope.ts';
import { segmentHash } from './hash.ts';
import { columnsOf, fragmentSizeOf, type StorageProfile } from './profile.ts';
import type { ObjectRecord } from './record.ts';
import { rsParity } from './rs.ts';

/**
 * How an object's bytes map onto segments: each segment carries `segmentSize` original bytes (sealed or not; the
 * GCM tag lives in the record), and the last one is zero-padded, as CESS does.
 */

/** What is stored for one segment: exactly `segmentSize` bytes, plus the detached tag when it is sealed. */
export interface StoredSegment {
  readonly stored: Uint8Array;
  readonly tag: Uint8Array | null;
}

/**
 * Turns one segment's plaintext into the bytes stored for it (sealed when a key is given, then zero-padded). The
 * plaintext is consumed: when its buffer has room for a whole segment, that buffer becomes the stored segment (sealed
 * in place).
 */
export function storedSegment(
  profile: StorageProfile,
  plaintext: Uint8Array,
  at: { index: number; last: boolean; key: Uint8Array | null },
): StoredSegment {
  if (at.key !== null) return sealSegment(at.key, at.index, at.last, plaintext, profile.segmentSize, true);
  if (plaintext.byteLength > profile.segmentSize) {
    throw new RangeError(
      `segment ${at.index}: expected ≤ ${profile.segmentSize} bytes, got ${plaintext.byteLength}`,
    );
  }
  if (plaintext.byteLength === profile.segmentSize) return { stored: plaintext, tag: null };
  if (plaintext.byteOffset === 0 && plaintext.buffer.byteLength >= profile.segmentSize) {
    const stored = new Uint8Array(plaintext.buffer as ArrayBuffer, 0, profile.segmentSize);
    stored.fill(0, plaintext.byteLength);
    return { stored, tag: null };
  }
  const padded = new Uint8Array(profile.segmentSize);
  padded.set(plaintext);
  return { stored: padded, tag: null };
}

/**
 * One segment ready to place: its hash, its tag if sealed, its fragments' hashes, and the stored segment itself. The
 * data fragments are the stored segment's quarters; the parity fragments are not kept but computed again, a piece at a
 * time, while each is sent (`fragmentBody`). Holding 12 fragments would be 3 × the segment (96 MiB for 32 MiB); this
 * way a put holds the segment and a piece per miner.
 */
export interface EncodedShards {
  readonly hash: string;
  /** The segment's GCM tag (hex) when it was sealed. */
  readonly tag: string | null;
  readonly fragmentHashes: string[];
  /** The segment as stored (sealed if keyed, padded): exactly `segmentSize` bytes. */
  readonly stored: Uint8Array;
}

/** A fragment's bytes produced piece by piece, as many times as it is sent (a column moved to a spare is sent again). */
export interface FragmentBody {
  readonly byteLength: number;
  pieces(): Iterable<Uint8Array>;
}

/** Bytes of a fragment computed at a time: a few milliseconds of Reed-Solomon, so the event loop never stalls. */
const PIECE = 1024 * 1024;

/** Fragment `column` of a stored segment. Data columns are views of it; a parity column is computed piece by piece. */
export function fragmentBody(profile: StorageProfile, stored: Uint8Array, column: number): FragmentBody {
  const size = fragmentSizeOf(profile);
  const data = dataColumns(profile, stored);
  return {
    byteLength: size,
    *pieces() {
      for (let at = 0; at < size; at += PIECE) {
        const end = Math.min(size, at + PIECE);
        if (column < profile.dataFragments) {
          yield data[column]!.subarray(at, end);
          continue;
        }
        // A fresh buffer each time: the transport may still hold the previous piece.
        const piece = new Uint8Array(end - at);
        rsParity(
          data.map((d) => d.subarray(at, end)),
          profile.parityFragments,
          [column - profile.dataFragments],
          [piece],
        );
        yield piece;
      }
    },
  };
}

function dataColumns(profile: StorageProfile, stored: Uint8Array): Uint8Array[] {
  const size = fragmentSizeOf(profile);
  return Array.from({ length: profile.dataFragments }, (_, i) => stored.subarray(i * size, (i + 1) * size));
}

/**
 * Seals (if keyed), pads and Reed-Solomon-codes one segment's plaintext — the whole CPU side of a put — hashing each
 * fragment as its pieces are computed, so that only the stored segment and one piece per parity column are held.
 * The hashes equal `encodeSegment`'s (tests compare them).
 */
export function encodeForStorage(
  profile: StorageProfile,
  plaintext: Uint8Array,
  at: { index: number; last: boolean; key: Uint8Array | null },
): EncodedShards {
  const { stored, tag } = storedSegment(profile, plaintext, at);
  const size = fragmentSizeOf(profile);
  const data = dataColumns(profile, stored);
  const hashers = Array.from({ length: columnsOf(profile) }, () => createHash('sha256'));
  for (const [i, d] of data.entries()) hashers[i]!.update(d);
  const rows = Array.from({ length: profile.parityFragments }, (_, r) => r);
  const pieces = rows.map(() => new Uint8Array(Math.min(PIECE, size)));
  for (let from = 0; from < size; from += PIECE) {
    const len = Math.min(PIECE, size - from);
    const outputs = pieces.map((p) => p.subarray(0, len));
    rsParity(
      data.map((d) => d.subarray(from, from + len)),
      profile.parityFragments,
      rows,
      outputs,
    );
    for (const [r, o] of outputs.entries()) hashers[profile.dataFragments + r]!.update(o);
  }
  return {
    hash: segmentHash(stored),
    tag: tag === null ? null : toHex(tag),
    fragmentHashes: hashers.map((h) => h.digest('hex')),
    stored,
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
