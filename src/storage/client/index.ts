/**
 * client/: the storage client (put, get, repair), object registries (memory, SQLite, chain), the market, network.json.
 */

export { createChainRegistry } from './chain-registry.ts';
export {
  chunks,
  createStorageClient,
  type DeclarationBatch,
  declarationBatch,
  type ProgressEvent,
  type PutOptions,
  type PutResult,
  type RepairReport,
  type StorageClient,
  type StorageClientDeps,
  type StorageClientOptions,
} from './client.ts';
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
  type ShareResult,
  termsWithReader,
} from './market.ts';
export {
  type LoadedNetwork,
  loadNetworkFile,
  type NetworkFile,
  NetworkFileSchema,
  writeNetworkFile,
} from './network.ts';
export { createMemoryRegistry, openSqliteRegistry } from './registry.ts';
