import { KiB, MiB } from '../../shared/bytes.ts';
import { AilinkError } from '../../shared/errors.ts';

/**
 * The geometry of stored objects. CESS fixes 32 MiB segments and Reed-Solomon 4 data + 8 parity fragments of 8 MiB;
 * every formula here is written against these fields so that tests can run the same code on a small profile.
 */
export interface StorageProfile {
  readonly segmentSize: number;
  readonly dataFragments: number;
  readonly parityFragments: number;
}

/** CESS's production geometry (cess-go-sdk: SegmentSize 32 MiB, DataShards 4, ParShards 8). */
export const PRODUCTION_PROFILE: StorageProfile = Object.freeze({
  segmentSize: 32 * MiB,
  dataFragments: 4,
  parityFragments: 8,
});

/** Same 4+8 coding and formulas, 64 KiB segments: for tests and small demos. */
export const TEST_PROFILE: StorageProfile = Object.freeze({
  segmentSize: 64 * KiB,
  dataFragments: 4,
  parityFragments: 8,
});

export const fragmentSizeOf = (p: StorageProfile): number => p.segmentSize / p.dataFragments;
export const columnsOf = (p: StorageProfile): number => p.dataFragments + p.parityFragments;

/**
 * @throws CODEC_PROFILE_INVALID when the segment does not split evenly or the counts are out of range.
 */
export function checkProfile(p: StorageProfile): StorageProfile {
  const problems: string[] = [];
  if (!Number.isSafeInteger(p.dataFragments) || p.dataFragments < 1) problems.push('dataFragments ≥ 1');
  if (!Number.isSafeInteger(p.parityFragments) || p.parityFragments < 1) problems.push('parityFragments ≥ 1');
  if (p.dataFragments + p.parityFragments > 256) problems.push('data + parity ≤ 256 (GF(2^8))');
  if (
    !Number.isSafeInteger(p.segmentSize) ||
    p.segmentSize < 64 ||
    p.segmentSize % (p.dataFragments * 64) !== 0
  ) {
    problems.push(`segmentSize a multiple of ${p.dataFragments * 64}`);
  }
  if (problems.length > 0) {
    throw new AilinkError(
      'CODEC_PROFILE_INVALID',
      `expected ${problems.join(', ')}; got ${JSON.stringify(p)}`,
    );
  }
  return p;
}

/**
 * The profile an object of `size` bytes is coded with: the network's, or for an object smaller than one segment the
 * same columns with a segment just large enough (a multiple of dataFragments × 64 bytes). A 4 KiB object then moves
 * and stores twelve 1 KiB fragments instead of nine 8 MiB ones (issue 16 §7). Everything keyed to a profile — fragment
 * hashes, zero fragments, tags and audits, repair — reads it from the object's own record.
 */
export function profileForSize(profile: StorageProfile, size: number | undefined): StorageProfile {
  if (size === undefined || size >= profile.segmentSize) return profile;
  const unit = profile.dataFragments * 64;
  return { ...profile, segmentSize: Math.max(unit, Math.ceil(size / unit) * unit) };
}
