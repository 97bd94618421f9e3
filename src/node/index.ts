/**
 * The roles: one session (chain + index + libp2p host + storage) per account and role, and each role's starter.
 * Only src/cli (and tests, benches) import this.
 */

export { type FlagValues, ROLE_CONFIG_SCHEMAS, type Role, withConfigFile } from './config.ts';
export {
  type CoordinatorNode,
  type CoordinatorNodeOptions,
  codeVersion,
  startCoordinatorNode,
} from './coordinator.ts';
export {
  BIN,
  type DevNetwork,
  type DevNetworkOptions,
  type DevNetworkProgress,
  type MinerProcess,
  startDevNetwork,
} from './devnet.ts';
export {
  type GatewayInfo,
  GatewayInfoSchema,
  type GatewayNode,
  type GatewayNodeOptions,
  startGatewayNode,
} from './gateway.ts';
export { peerKeyIn, secretIn } from './keys.ts';
export { type MinerNode, type MinerNodeOptions, startMinerNode } from './miner.ts';
export {
  DEFAULT_NETWORK_FILE,
  DEFAULT_STATE_DIR,
  hostInUrl,
  type NetworkFlags,
  openChainRegistry,
  type ResolvedNetwork,
  ROUND_OBJECT_PROFILE,
  readProtocolConfig,
  resolveNetwork,
  sessionOf,
  tcpMultiaddr,
} from './network.ts';
export { type ParticipantNode, type ParticipantNodeOptions, startParticipantNode } from './participant.ts';
export {
  openSession,
  SESSION_DEADLINES,
  type Session,
  type SessionConfig,
  type SessionDeps,
  type TaskRecords,
} from './session.ts';
export { startVerifierNode, type VerifierNode, type VerifierNodeOptions } from './verifier.ts';
