/**
 * Chain: a client for any Substrate endpoint, the embedded dev chain, and CESS's protocol modules (sminer, oss,
 * storageHandler, fileBank, teeWorker, provenance, market) as deterministic rules over remarks, folded by an
 * indexer anyone can run.
 */

export {
  BucketNameSchema,
  CALL_SCHEMAS,
  type CallArgs,
  type CallName,
  EntrySchema,
  MAX_GIB_PER_PURCHASE,
  MAX_KEY_BYTES,
  MAX_SEGMENTS,
  MAX_TERMS_READERS,
  type ObjectEntry,
  ObjectKeySchema,
  type ProtocolCall,
  type Retention,
  RetentionSchema,
} from './calls.ts';
export {
  type BlockExtrinsic,
  type ChainBlock,
  type ChainCall,
  type ChainClient,
  type ChainSigner,
  connectChain,
  type Inclusion,
  type SubmitOptions,
} from './client.ts';
export {
  CESS_AUDIT,
  DEV_POT,
  DEV_PROTOCOL_CONFIG,
  DEV_VERIFIER,
  DEV_VERIFIER_SEED,
  type ProtocolConfigJson,
  ProtocolConfigSchema,
  parseProtocolConfig,
  potAddress,
  protocolCall,
  protocolConfigToJson,
  ROC,
  spacePurchase,
} from './config.ts';
export { declarationCalls, MAX_DECLARATION_BYTES, MAX_DECLARED_SEGMENTS, remarkBytes } from './declare.ts';
export { DEV_ACCOUNTS, type DevChain, devSigner, startDevChain } from './devchain.ts';
export {
  blockHashOf,
  checkBlockEvidence,
  compact as scaleCompact,
  type DecodedHeader,
  decodeHeader,
  type EvidenceProblem,
  extrinsicsCommitment,
  orderedTrieRoot,
  type RawBlock,
} from './evidence.ts';
export { type CallRecord, type ChainSource, type Indexer, openIndexer } from './indexer.ts';
export {
  type AuditRecord,
  auditResultMessage,
  type Challenge,
  type ChallengedFragment,
  challengeKey,
  type IdleFile,
  recordOf as auditRecordOf,
  serviceBytesOf,
} from './pallets/audit.ts';
export type { AuditConfig, BlockContext, CallContext, Payment, ProtocolConfig } from './pallets/context.ts';
export {
  columnDigest,
  columnHashes,
  deferrableColumns,
  type FileInfo,
  type RestoralOrder,
  restoralClaimers,
  restoralRanking,
  tagReportMessage,
  transferReceiptMessage,
  type VersioningStatus,
  versioningOf,
} from './pallets/file-bank.ts';
export type { Grant, MarketTerms, OpenRequest, Retrieval } from './pallets/market.ts';
export {
  ed25519KeyOfPeerId,
  isPeerSignature,
  type PeerRegistrationCall,
  peerRegistrationMessage,
} from './pallets/peer-key.ts';
export {
  epochOf,
  heldSpaceOf,
  holdAllowance,
  holdBlocks,
  liveHold,
  type PlacementEpoch,
  type PlacementTicket,
  placementEpoch,
  SLOT_TAKEN,
  ticketDraw,
  usedBytesOf,
  usedSlots,
} from './pallets/placement.ts';
export {
  type Debt,
  debtsOf,
  type PaidDebt,
  type PotFlag,
  potFlagsOf,
} from './pallets/pot.ts';
export {
  admissionMessage,
  type ParticipantInfo,
  type RoundInfo,
  type SeedInfo,
  stopReasonOf,
  type TaskInfo,
} from './pallets/provenance.ts';
export type { MinerInfo } from './pallets/sminer.ts';
export {
  formatBytes,
  mayStore,
  QUOTA_EXCEEDED,
  type SpaceInfo,
  type SpaceUse,
  spaceOf,
  spaceTakenBy,
  spaceUseOf,
} from './pallets/storage-handler.ts';
export { MAX_DEBTS_PER_PAYOUT, payDebts } from './payout.ts';
export {
  drawPlacement,
  type PlacementCandidate,
  type PlacementOptions,
  placementSeed,
  type RestorerOptions,
  rankRestorers,
} from './placement.ts';
export { applyBlockHooks, applyCall, applyRemark, type RemarkOutcome } from './protocol.ts';
export {
  bucketsOf,
  challengeOf,
  entriesOf,
  entryOf,
  type FileView,
  fileOf,
  filesOfMiner,
  filesOfOwner,
  grantOf,
  grantsOf,
  isOperatorOf,
  type KeyVersion,
  type MinerView,
  minerOf,
  minersOf,
  type OpenRequestView,
  openRequestsOf,
  participantsOf,
  restoralOrdersOf,
  retrievalsOf,
  roundsOf,
  seedOf,
  taggedFor,
  taskOf,
  tasksOf,
  termsOf,
  type VerifierView,
  verifiersOf,
  versionsOf,
} from './queries.ts';
export { decodeRemark, encodeRemark, MAX_REMARK_BYTES, REMARK_MAGIC, REMARK_VERSION } from './remark.ts';
export {
  createMemoryState,
  createSqliteState,
  nextDigest,
  Overlay,
  type StateReader,
  type StateStore,
} from './state.ts';
export { type CallOutcome, submitProtocol, submitProtocolEach } from './submit.ts';
