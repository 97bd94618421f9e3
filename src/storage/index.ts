/**
 * Storage: CESS-style objects (segments → Reed-Solomon 4+8 fragments → one column per miner), client-side
 * encryption, the miner's pieces (on-disk fragment store, signed fragment protocol service, audit agent), the
 * verifier's service, proofs, and the storage client. The miner and verifier starters are in src/node.
 */

export { buildAuditProof, checkAuditProof, type ProofParams, type ProofSource } from './audit-proof.ts';
export { createChainRegistry } from './chain-registry.ts';
export {
  chunks,
  createStorageClient,
  type ProgressEvent,
  type PutOptions,
  type PutResult,
  type RepairReport,
  type StorageClient,
  type StorageClientDeps,
  type StorageClientOptions,
} from './client.ts';
export { decodeSegment, type EncodedSegment, encodeSegment, rebuildColumns } from './codec.ts';
export { type CodecPool, createCodecPool } from './codec-pool.ts';
export {
  generateX25519,
  type KeyWrap,
  openSegment,
  type SealedSegment,
  sealSegment,
  unwrapDataKey,
  wrapDataKey,
  x25519PublicOf,
} from './envelope.ts';
export { FRAGMENT_PROTOCOL, type FragmentRequest, FragmentRequestSchema } from './fragment-protocol.ts';
export {
  type FragmentStore,
  type FragmentStoreOptions,
  type FragmentWriter,
  openFragmentStore,
  type StoreUsage,
} from './fragment-store.ts';
export { fidOf, fragmentHash, HASH_RE, segmentHash, zeroFragmentHash } from './hash.ts';
export {
  type AccessLogEntry,
  type AccessOptions,
  type AccessTicket,
  createGrantService,
  createMarketClient,
  type GrantPass,
  type GrantService,
  type GrantServiceOptions,
  type MarketClient,
  type MarketDeps,
} from './market.ts';
export { type AuditAgent, type AuditAgentOptions, startAuditAgent } from './miner-audit.ts';
export { joinChain, minerChainActions } from './miner-chain.ts';
export {
  type CallOptions,
  createMinerClient,
  type MinerClient,
  type MinerClientOptions,
} from './miner-client.ts';
export { type MinerLog, type MinerServiceOptions, startMinerService } from './miner-service.ts';
export {
  type LoadedNetwork,
  loadNetworkFile,
  type NetworkFile,
  NetworkFileSchema,
  writeNetworkFile,
} from './network.ts';
export {
  blocksOf,
  decodeProof,
  deriveChallenge,
  derivePodr2Key,
  encodeProof,
  PODR2_LANES,
  PODR2_PRIME,
  type Podr2Challenge,
  type Podr2Key,
  type Podr2Params,
  type Podr2Proof,
  podr2Params,
  proveChallenge,
  tagFragment,
  verifyProof,
} from './podr2.ts';
export {
  decodeIdleProof,
  deriveIdleChallenge,
  encodeIdleProof,
  type IdleOpening,
  type IdleProof,
  idleFileBytes,
  idleRoot,
  labelIdleFile,
  type PoisParams,
  poisParams,
  proveIdle,
  verifyIdle,
} from './pois.ts';
export {
  checkProfile,
  columnsOf,
  fragmentSizeOf,
  PRODUCTION_PROFILE,
  type StorageProfile,
  TEST_PROFILE,
} from './profile.ts';
export {
  type ObjectRecord,
  ObjectRecordSchema,
  type ObjectRegistry,
  type ObjectSummary,
  type PlacedColumn,
  type Placement,
} from './record.ts';
export { createMemoryRegistry, openSqliteRegistry } from './registry.ts';
export {
  createRequestGuard,
  type NonceLedger,
  type RequestAuth,
  type RequestGuard,
  type SignedFields,
  signRequest,
} from './request-auth.ts';
export {
  type EncodedShards,
  encodeForStorage,
  type OpenSpec,
  openStored,
  plaintextLength,
  type StoredSegment,
  storedSegment,
} from './segments.ts';
export { createVerifierClient, type VerifierClient } from './verifier-client.ts';
export { proofParams, VERIFIER_PROTOCOL } from './verifier-protocol.ts';
export {
  podr2KeyId,
  startVerifierService,
  type VerifierServiceDeps,
  type VerifierServiceOptions,
} from './verifier-service.ts';
