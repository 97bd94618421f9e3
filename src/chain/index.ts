/**
 * Chain: a client for any Substrate endpoint, the embedded dev chain, and CESS's protocol modules (sminer, oss,
 * fileBank, teeWorker, provenance) as deterministic rules over remarks, folded by an indexer anyone can run.
 */

export { CALL_SCHEMAS, type CallArgs, type CallName, type ProtocolCall } from './calls.ts';
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
export { DEV_PROTOCOL_CONFIG, potAddress, protocolCall, ROC } from './config.ts';
export { DEV_ACCOUNTS, type DevChain, devSigner, startDevChain } from './devchain.ts';
export { type CallRecord, type ChainSource, type Indexer, openIndexer } from './indexer.ts';
export type { CallContext, ProtocolConfig } from './pallets/context.ts';
export {
  columnHashes,
  type FileInfo,
  type RestoralOrder,
  transferReceiptMessage,
} from './pallets/file-bank.ts';
export type { MinerInfo } from './pallets/sminer.ts';
export { applyCall, applyRemark, type RemarkOutcome } from './protocol.ts';
export {
  type FileView,
  fileOf,
  filesOfMiner,
  filesOfOwner,
  type MinerView,
  minerOf,
  minersOf,
  roundsOf,
  taskOf,
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
export { submitProtocol } from './submit.ts';
