import { z } from 'zod';
import { AUDIT_CODES, type AuditReport } from './types.ts';

/**
 * The audit report on the wire (types.ts, as zod): the coordinator's `GET /v1/tasks/:id/audit` and `ailink audit
 * serve` check their replies against it, and the OpenAPI document describes it. The two cannot drift apart
 * unnoticed: `satisfies` checks that what the schema accepts is an AuditReport, and the coordinator's route (a
 * fastify-zod route whose handler returns an AuditReport) and `AuditorAuditSchema` below check that every
 * AuditReport is what the schema accepts.
 */

export const AuditFindingSchema = z
  .object({
    code: z.enum(AUDIT_CODES),
    round: z.number().int().nullable().meta({ description: 'null for a task-level finding' }),
    where: z
      .string()
      .meta({ description: 'a path a reader can follow, e.g. `round 2 · updates[1] (5F3o76oZ…)`' }),
    message: z.string().meta({ description: 'expected vs found' }),
  })
  .meta({ id: 'AuditFinding', description: 'one break in the lineage, pinned to where it broke' });

export const AuditRoundSchema = z
  .object({
    round: z.number().int(),
    manifest: z.object({ fid: z.string(), digest: z.string(), recordedAt: z.number().int() }),
    model: z.object({ fid: z.string(), hash: z.string(), name: z.string() }).nullable(),
    parent: z.object({ fid: z.string(), digest: z.string() }).nullable(),
    cohort: z.array(z.string()).readonly(),
    survivors: z.array(z.string()).readonly(),
    dropouts: z.array(z.object({ account: z.string(), stage: z.string() })).readonly(),
    updates: z
      .array(z.object({ account: z.string(), fid: z.string(), digest: z.string(), valid: z.boolean() }))
      .readonly(),
    kind: z.enum(['train', 'evaluation']),
    metrics: z
      .object({
        accuracy: z.number().nullable(),
        loss: z.number().nullable(),
        testExamples: z.number().nullable(),
      })
      .nullable(),
    evaluation: z.object({ examples: z.number(), accuracy: z.number(), loss: z.number() }).nullable(),
    privacy: z
      .object({ mechanism: z.string(), epsilonSpent: z.number().nullable(), delta: z.number().nullable() })
      .nullable(),
    secagg: z.object({ enabled: z.boolean(), k: z.number(), t: z.number() }).nullable(),
    startedAt: z.number().nullable(),
    finishedAt: z.number().nullable(),
    aggregate_recomputed: z.boolean().meta({
      description:
        'the round’s sum and model were re-derived from the committed updates and matched bit for bit',
    }),
    aggregateNote: z.string().nullable(),
    findings: z.array(AuditFindingSchema).readonly(),
    ok: z.boolean(),
  })
  .meta({ id: 'AuditRound', description: 'one anchored round as the audit read it' });

export const AuditReportSchema = z
  .object({
    task: z.string(),
    chain: z
      .object({
        coordinator: z.string(),
        specDigest: z.string(),
        createdAt: z.number().int(),
        rounds: z.number().int(),
        admitted: z
          .array(z.object({ account: z.string(), identityKey: z.string(), admittedAt: z.number().int() }))
          .readonly(),
      })
      .nullable()
      .meta({ description: 'the task as the chain recorded it; null when it is not on chain' }),
    spec: z.record(z.string(), z.unknown()).nullable(),
    code: z.object({ package: z.string(), version: z.string(), lockfile: z.string() }).nullable(),
    rounds: z.array(AuditRoundSchema).readonly(),
    findings: z.array(AuditFindingSchema).readonly().meta({ description: 'task-level findings' }),
    ok: z.boolean().meta({ description: 'true only when there is no finding anywhere' }),
    atBlock: z.number().int().meta({ description: 'block height of the chain state the audit read' }),
    evidence: z
      .object({
        digest: z.string(),
        tip: z.object({ number: z.number().int(), hash: z.string() }),
      })
      .nullable()
      .optional()
      .meta({
        description: 'the evidence bundle the report was re-derived from offline (its SHA-256 and chain tip)',
      }),
  })
  .meta({
    id: 'AuditReport',
    description: "the task's lineage verified against the chain and storage",
  }) satisfies z.ZodType<AuditReport>;

export const AuditQuerySchema = z.object({
  round: z
    .string()
    .regex(/^\d{1,9}$/, 'expected a round number')
    .transform(Number)
    .optional()
    .meta({ description: 'verify rounds 0..round only (default: every anchored round)' }),
});

// --------------------------------------------------------------------------------------------------------------
// `ailink audit serve`: what the auditor's explorer server answers (src/audit/serve.ts).

/** A task id as the chain's protocol rules accept it (src/chain/calls.ts). */
export const TASK_ID = /^[A-Za-z0-9._-]{1,64}$/;

export const AuditorInfoSchema = z.object({
  role: z.literal('auditor'),
  /** The auditor's own account: the one whose session fetched and checked everything shown. */
  account: z.string(),
  /** The block the auditor's own index has applied. */
  atBlock: z.number().int(),
  /** The one task this server shows (`--task`), or null for every task on chain. */
  task: z.string().nullable(),
  version: z.string(),
});
export type AuditorInfo = z.infer<typeof AuditorInfoSchema>;

/** One task as the chain records it, and its name from a spec that hashes to the chain's digest (else null). */
export const AuditorTaskSchema = z.object({
  id: z.string(),
  name: z.string().nullable(),
  coordinator: z.string(),
  specDigest: z.string(),
  /** Block numbers, not times: the chain's record. */
  createdAt: z.number().int(),
  roundsAnchored: z.number().int(),
  roundsPlanned: z.number().int().nullable(),
  status: z.enum(['running', 'finished', 'stopped']),
});
export type AuditorTask = z.infer<typeof AuditorTaskSchema>;

/** An audit the auditor ran on its own index and fetches, and when (cached briefly; `?fresh=1` re-runs it). */
export const AuditorAuditSchema = z.object({
  report: AuditReportSchema,
  /** The task as the chain records it, with its name and status from the verified spec. */
  task: AuditorTaskSchema,
  /** When this audit finished (ms since the epoch, the server's clock). */
  verifiedAt: z.number(),
  /** The account that ran it. */
  auditor: z.string(),
  /** True when this answer is a cached audit rather than one run for this request. */
  cached: z.boolean(),
});
export type AuditorAudit = z.infer<typeof AuditorAuditSchema>;

// Every AuditReport is what the schema accepts (the other direction is the `satisfies` above).
type _EveryReportFits = AuditReport extends z.input<typeof AuditReportSchema> ? true : never;
const _everyReportFits: _EveryReportFits = true;
void _everyReportFits;
