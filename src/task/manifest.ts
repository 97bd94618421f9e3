import { z } from 'zod';
import { isAddress } from '../shared/account.ts';
import { canonicalJson } from '../shared/canonical.ts';
import { AilinkError } from '../shared/errors.ts';
import { sha256Hex } from './messages.ts';

/**
 * A round's manifest: everything an auditor needs to trace the round's global model back to its inputs. It is stored
 * as a public object (canonical JSON) and anchored on chain with `provenance.recordRound {manifest: fid, digest}`, and
 * each manifest names its parent, so the chain of manifests is the model's lineage.
 */

const hash = z.string().regex(/^[0-9a-f]{64}$/);
const account = z.string().refine(isAddress, 'expected an SS58 address');
const ref = z.object({ fid: hash, hash }).strict();

export const ManifestSchema = z
  .object({
    /** 3: adds `consistency`; 4: adds `aggregation`. */
    version: z.union([z.literal(3), z.literal(4)]),
    task: z.string(),
    /**
     * 'train': the round trained and aggregated a new model. 'evaluation': the closing round after the last training
     * round, in which the organisations only scored the final model on their held-out rows (model = start model).
     */
    kind: z.enum(['train', 'evaluation']),
    /** Digest of the task spec recorded by `provenance.createTask`. */
    spec: hash,
    /** The task spec as a stored public object (canonical JSON hashing to `spec`), so auditors need no coordinator. */
    specFid: hash,
    round: z.number().int().nonnegative(),
    attempt: z.number().int().nonnegative(),
    /** The previous round's manifest (fid and digest as anchored), null for round 0. */
    parent: z.object({ fid: hash, digest: hash }).strict().nullable(),
    /** The global model the round started from and the one it produced (fid of the stored bytes, SHA-256 of them). */
    startModel: ref,
    model: ref.extend({ name: z.string(), parameters: z.number().int().positive() }).strict(),
    cohort: z.array(account),
    survivors: z.array(account),
    dropouts: z.array(z.object({ account, stage: z.string() }).strict()),
    /**
     * Each survivor's signed commitment (Ed25519 by its admitted identity key) to the update it stored and to the
     * fingerprint of the data it declared it trained on.
     */
    updates: z.array(
      z.object({ account, fid: hash, digest: hash, dataset: hash, signature: z.string() }).strict(),
    ),
    /**
     * With SecAgg, the survivors' own confirmation of the survivor list: each one's consistency-stage signature (by
     * its admitted identity key, over exactly `survivors` in the attempt's context) that the coordinator collected
     * before anyone revealed a share. A coordinator cannot report other survivors than these signed; empty without
     * SecAgg.
     */
    consistency: z.array(z.object({ account, signature: z.string().regex(/^[0-9a-f]{128}$/) }).strict()),
    strategy: z.record(z.string(), z.unknown()),
    secagg: z
      .object({
        enabled: z.boolean(),
        k: z.number().int(),
        t: z.number().int(),
        range: z.number(),
        bits: z.number().int(),
        maxWeight: z.number().int(),
      })
      .strict(),
    privacy: z
      .object({
        /** 'gaussian': central DP (the coordinator's noise); 'skellam': distributed DP (the organisations'). */
        mechanism: z.enum(['none', 'gaussian', 'skellam']),
        epsilonSpent: z.number().nullable(),
        delta: z.number().nullable(),
      })
      .strict(),
    /** The federated preprocessing the organisations applied (a stored object and its SHA-256), null if none. */
    preprocessing: z.object({ fid: hash, digest: hash }).strict().nullable(),
    /**
     * `accuracy`, `loss` and `testExamples`: the round's model on the coordinator's own test set, null without one.
     * `examples`: what the survivors' updates weigh together (their training examples; under DP, their number).
     */
    metrics: z
      .object({
        accuracy: z.number().nullable(),
        loss: z.number().nullable(),
        testExamples: z.number().int().nullable(),
        examples: z.number().int(),
      })
      .strict(),
    /**
     * Client-side evaluation through the secure sum: the survivors' held-out rows scored the round's start model
     * (the previous round's model; in an evaluation round, the final model). Null when no rows are held out.
     */
    evaluation: z
      .object({ examples: z.number().int().positive(), accuracy: z.number(), loss: z.number() })
      .strict()
      .nullable(),
    /**
     * The recompute material (src/task/conclude.ts) as a stored public object and its SHA-256: what an auditor needs
     * to re-derive the round's sum and model. Null where the task records none (no SecAgg, or central DP); absent
     * from version 3 manifests.
     */
    aggregation: z.object({ fid: hash, digest: hash }).strict().nullable().optional(),
    code: z.object({ package: z.string(), version: z.string(), lockfile: hash }).strict(),
    startedAt: z.number().int(),
    finishedAt: z.number().int(),
  })
  .strict();

export type Manifest = z.infer<typeof ManifestSchema>;

/** The bytes that are stored and whose SHA-256 is anchored. */
export function manifestBytes(manifest: Manifest): Uint8Array {
  return new TextEncoder().encode(canonicalJson(manifest));
}

export const manifestDigest = (manifest: Manifest) => sha256Hex(manifestBytes(manifest));

/** @throws ROUND_MESSAGE_INVALID when the bytes are not a manifest */
export function parseManifest(bytes: Uint8Array): Manifest {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new AilinkError('ROUND_MESSAGE_INVALID', 'a manifest must be JSON');
  }
  const parsed = ManifestSchema.safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues.slice(0, 5).map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new AilinkError('ROUND_MESSAGE_INVALID', `malformed manifest: ${problems.join('; ')}`);
  }
  return parsed.data;
}
