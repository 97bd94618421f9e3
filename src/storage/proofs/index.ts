/**
 * proofs/: PoDR2 storage proofs, PoIS idle-space proofs, and one audit answer built and checked. Imports nothing else
 * of src/storage.
 */

export { buildAuditProof, checkAuditProof, type ProofParams, type ProofSource } from './audit-proof.ts';
export {
  blocksOf,
  checkTags,
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
  labelIdleFileAsync,
  type PoisParams,
  poisParams,
  proveIdle,
  verifyIdle,
} from './pois.ts';
