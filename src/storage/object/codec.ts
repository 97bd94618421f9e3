import { AilinkError } from '../../shared/errors.ts';
import { fragmentHash, segmentHash } from './hash.ts';
import { columnsOf, fragmentSizeOf, type StorageProfile } from './profile.ts';
import { rsEncode, rsReconstruct } from './rs.ts';

/** One coded segment: its hash and its data + parity fragments with their hashes, in column order. */
export interface EncodedSegment {
  readonly hash: string;
  readonly fragments: Uint8Array[];
  readonly fragmentHashes: string[];
}

/**
 * Splits one stored segment (exactly `segmentSize` bytes, already encrypted and padded) into data fragments and
 * computes the parity fragments. Fragments are views into one buffer of `columns × fragmentSize` bytes.
 */
export function encodeSegment(profile: StorageProfile, segment: Uint8Array): EncodedSegment {
  if (segment.byteLength !== profile.segmentSize) {
    throw new RangeError(`encodeSegment: expected ${profile.segmentSize} bytes, got ${segment.byteLength}`);
  }
  const size = fragmentSizeOf(profile);
  const columns = columnsOf(profile);
  const shards = new Uint8Array(size * columns);
  shards.set(segment, 0);
  rsEncode(shards, profile.dataFragments, profile.parityFragments);
  const fragments = Array.from({ length: columns }, (_, i) => shards.subarray(i * size, (i + 1) * size));
  return { hash: segmentHash(segment), fragments, fragmentHashes: fragments.map(fragmentHash) };
}

/**
 * Rebuilds a segment from any `dataFragments` of its fragments (null = missing), after checking each given fragment
 * against its recorded hash, and checks the result against the segment hash.
 * @throws CODEC_HASH_MISMATCH when a fragment or the rebuilt segment does not match its hash.
 * @throws CODEC_TOO_FEW_FRAGMENTS when fewer than `dataFragments` fragments are given.
 */
export function decodeSegment(
  profile: StorageProfile,
  fragments: ReadonlyArray<Uint8Array | null>,
  expected: { hash: string; fragmentHashes: readonly string[] },
  segmentIndex = 0,
): Uint8Array {
  const size = fragmentSizeOf(profile);
  const columns = columnsOf(profile);
  if (fragments.length !== columns) {
    throw new RangeError(`decodeSegment: expected ${columns} fragment slots, got ${fragments.length}`);
  }
  const present = fragments.map((f) => f !== null);
  const have = present.filter(Boolean).length;
  if (have < profile.dataFragments) {
    const missing = present.flatMap((p, i) => (p ? [] : [i]));
    throw new AilinkError(
      'CODEC_TOO_FEW_FRAGMENTS',
      `expected ≥ ${profile.dataFragments} of ${columns} fragments of segment ${segmentIndex}, got ${have} (missing columns ${missing.join(', ')})`,
      { details: { segment: segmentIndex, missing } },
    );
  }
  fragments.forEach((f, i) => {
    if (f === null) return;
    if (f.byteLength !== size) {
      throw new AilinkError(
        'CODEC_HASH_MISMATCH',
        `fragment ${i} of segment ${segmentIndex}: expected ${size} bytes, got ${f.byteLength}`,
      );
    }
    const got = fragmentHash(f);
    if (got !== expected.fragmentHashes[i]) {
      throw new AilinkError(
        'CODEC_HASH_MISMATCH',
        `fragment ${i} of segment ${segmentIndex}: expected hash ${expected.fragmentHashes[i]}, got ${got}`,
        { details: { segment: segmentIndex, column: i } },
      );
    }
  });
  const segment = new Uint8Array(profile.segmentSize);
  const dataPresent = present.slice(0, profile.dataFragments).every(Boolean);
  if (dataPresent) {
    // The common case: the data fragments are the segment; no coding work at all.
    for (let i = 0; i < profile.dataFragments; i++) segment.set(fragments[i]!, i * size);
  } else {
    const shards = new Uint8Array(size * columns);
    fragments.forEach((f, i) => {
      if (f !== null) shards.set(f, i * size);
    });
    rsReconstruct(shards, profile.dataFragments, profile.parityFragments, present);
    segment.set(shards.subarray(0, profile.segmentSize));
  }
  const got = segmentHash(segment);
  if (got !== expected.hash) {
    throw new AilinkError(
      'CODEC_HASH_MISMATCH',
      `segment ${segmentIndex}: expected hash ${expected.hash}, got ${got} after rebuilding`,
      { details: { segment: segmentIndex } },
    );
  }
  return segment;
}

/**
 * Rebuilds the fragments of the given columns (e.g. those of a lost miner) from a decoded segment.
 * Re-encoding is the only way to get parity columns, and it proves the rebuilt fragment matches its hash.
 */
export function rebuildColumns(
  profile: StorageProfile,
  segment: Uint8Array,
  columns: readonly number[],
  fragmentHashes: readonly string[],
): Uint8Array[] {
  const width = columnsOf(profile);
  for (const c of columns) {
    if (!Number.isInteger(c) || c < 0 || c >= width) {
      throw new RangeError(`rebuildColumns: expected columns in 0..${width - 1}, got ${c}`);
    }
  }
  const encoded = encodeSegment(profile, segment);
  return columns.map((c) => {
    if (encoded.fragmentHashes[c] !== fragmentHashes[c]) {
      throw new AilinkError(
        'CODEC_HASH_MISMATCH',
        `rebuilt column ${c}: expected ${fragmentHashes[c]}, got ${encoded.fragmentHashes[c]}`,
      );
    }
    return encoded.fragments[c]!;
  });
}
