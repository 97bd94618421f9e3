/**
 * protocol/: the wire shared by both ends: request signatures, the fragment and verifier protocols, and their client
 * sides.
 */

export {
  bodyDigest,
  encodeJson,
  FRAGMENT_PROTOCOL,
  type FragmentRequest,
  FragmentRequestSchema,
  MAX_FRAME_BYTES,
  type MinerLog,
  parseRequestFrame,
  toAilinkError,
  writeErrorReply,
} from './fragment-protocol.ts';
export {
  type CallOptions,
  createMinerClient,
  type MinerClient,
  type MinerClientOptions,
} from './miner-client.ts';
export {
  createRequestGuard,
  createSqliteNonceLedger,
  type NonceLedger,
  type RequestAuth,
  RequestAuthSchema,
  type RequestGuard,
  type SignedFields,
  signRequest,
} from './request-auth.ts';
export { createVerifierClient, type VerifierClient } from './verifier-client.ts';
export {
  proofDigest,
  proofParams,
  VERIFIER_PROTOCOL,
  type VerifierRequest,
  VerifierRequestSchema,
} from './verifier-protocol.ts';
