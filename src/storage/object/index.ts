/**
 * object/: the object codec (profile, segments, Reed-Solomon, hashes, the codec's worker pool), the envelope and the
 * object record. Imports nothing else of src/storage.
 */

export { decodeSegment, type EncodedSegment, encodeSegment, rebuildColumns } from './codec.ts';
export { type CodecPool, createCodecPool } from './codec-pool.ts';
export {
  decryptSegmentPart,
  generateX25519,
  type KeyWrap,
  newDataKey,
  openSegment,
  type SealedSegment,
  sealSegment,
  unwrapDataKey,
  wrapDataKey,
  x25519PublicOf,
} from './envelope.ts';
export {
  MAX_GROUP_MEMBERS,
  openReaderGroup,
  READER_GROUP_FORMAT,
  sealReaderGroup,
} from './group-key.ts';
export { fidOf, fragmentHash, HASH_RE, segmentHash, zeroFragmentHash } from './hash.ts';
export {
  checkProfile,
  columnsOf,
  fragmentSizeOf,
  PRODUCTION_PROFILE,
  profileForSize,
  type StorageProfile,
  TEST_PROFILE,
} from './profile.ts';
export {
  checkNotTaken,
  type DrawReserve,
  type ObjectRecord,
  ObjectRecordSchema,
  type ObjectRegistry,
  type ObjectSummary,
  type PlacedColumn,
  type Placement,
  type PlacementWant,
  type PreparedDeclaration,
  summaryOf,
} from './record.ts';
export {
  type EncodedShards,
  encodeForStorage,
  type FragmentBody,
  fragmentBody,
  type OpenSpec,
  openStored,
  plaintextLength,
  type StoredSegment,
  storedSegment,
} from './segments.ts';
