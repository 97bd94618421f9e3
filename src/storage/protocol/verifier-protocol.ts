import { z } from 'zod';
import type { AuditConfig } from '../../chain/index.ts';
import { fragmentHash } from '../object/index.ts';
import { type Podr2Params, type PoisParams, podr2Params, poisParams } from '../proofs/index.ts';
import { RequestAuthSchema } from './request-auth.ts';

/**
 * The verifier's protocol (CESS: the TEE worker's gRPC API), one libp2p stream per request:
 *
 *   miner → frame(request JSON) [→ `size` raw bytes for tag and verify]
 *   tag:     verifier → frame({ok, keyId, tags})      PoDR2 tags of one fragment of a column the miner holds or restores
 *   certify: verifier → frame({ok, verifier, signature})  a tag report for `fileBank.calculateReport`
 *   verify:  verifier → frame({ok, verifier, signature})  a signed passing result for `audit.submitResult`
 *
 * Every request is signed by a registered, positive miner (the same fresh, single-use signatures miners demand);
 * `fragment` is the digest the signature covers: the fragment's hash for tag, else the digest of the request fields.
 */
export const VERIFIER_PROTOCOL = '/ailink/verifier/1.0.0';

const hash = z.string().regex(/^[0-9a-f]{64}$/, 'expected a 64-char lowercase hex hash');
const base = { fragment: hash, audience: z.string().min(1).max(128), auth: RequestAuthSchema.optional() };
const column = z.number().int().min(0).max(255);

export const VerifierRequestSchema = z.discriminatedUnion('op', [
  z
    .object({
      op: z.literal('tag'),
      fid: hash,
      index: column,
      size: z
        .number()
        .int()
        .positive()
        .max(2 ** 31),
      ...base,
    })
    .strict(),
  z.object({ op: z.literal('certify'), fid: hash, index: column, ...base }).strict(),
  z
    .object({
      op: z.literal('verify'),
      challenge: z.number().int().nonnegative(),
      size: z
        .number()
        .int()
        .positive()
        .max(8 * 1024 * 1024),
      ...base,
    })
    .strict(),
]);
export type VerifierRequest = z.infer<typeof VerifierRequestSchema>;

export const TagReplySchema = z.object({
  ok: z.literal(true),
  keyId: hash,
  tags: z.string().regex(/^([0-9a-f]{2})+$/),
});
export const SignedReplySchema = z.object({
  ok: z.literal(true),
  verifier: z.string(),
  signature: z.string().regex(/^[0-9a-f]{128}$/),
});

/** The digest of a proof's bytes, as results on chain name it. */
export const proofDigest = fragmentHash;

/** The proof parameters of the network, as the PoDR2 and PoIS cores take them. */
export function proofParams(audit: AuditConfig): { podr2: Podr2Params; pois: PoisParams } {
  const p = audit.proofs;
  return {
    podr2: podr2Params({ blockSize: p.blockSize, challengeBlocks: p.challengeBlocks }),
    pois: poisParams({
      nodes: p.idleNodes,
      parents: p.idleParents,
      openings: p.idleOpenings,
      rounds: p.idleRounds,
    }),
  };
}
