/** miner/: the miner's fragment store, its fragment-protocol service, its chain actions and its audit agent. */

export {
  type FragmentStore,
  type FragmentStoreOptions,
  type FragmentWriter,
  openFragmentStore,
  type StoreUsage,
} from './fragment-store.ts';
export { type AuditAgent, type AuditAgentOptions, startAuditAgent } from './miner-audit.ts';
export { joinChain, minerChainActions } from './miner-chain.ts';
export { type MinerServiceOptions, startMinerService } from './miner-service.ts';
