/**
 * What `ailink audit verify` reports: per round, what the chain anchored, what the manifest says, and every check that
 * failed, each pinned to where it broke. Plain data (JSON-ready), so the CLI, the model card and the explorer all
 * render the same result.
 */

/** Every kind of break the audit can find. */
export const AUDIT_CODES = [
  /** The task is not recorded on chain. */
  'TASK_NOT_ON_CHAIN',
  /** The task spec object is missing, malformed, or does not hash to the digest the chain recorded. */
  'SPEC_MISMATCH',
  /** The chain has fewer anchored rounds than asked for, or a gap. */
  'ROUND_MISSING',
  /** A stored object (manifest, model, spec) could not be fetched, or its bytes were not what storage promised. */
  'OBJECT_UNAVAILABLE',
  /** The manifest is not a valid manifest, or names another task or round. */
  'MANIFEST_MALFORMED',
  /** The manifest's bytes do not hash to the digest anchored on chain. */
  'MANIFEST_DIGEST',
  /** The manifest's parent is not the previous round's anchored manifest. */
  'PARENT_LINK',
  /** The round did not start from the previous round's model (or, for round 0, the spec's initial model). */
  'START_MODEL',
  /** The model bytes do not hash to what the manifest says, or are not a model of the spec's shape. */
  'MODEL_HASH',
  /** A cohort member is not admitted to the task on chain. */
  'NOT_ADMITTED',
  /** The cohort, survivors, dropouts and update commitments do not add up. */
  'COHORT_INCONSISTENT',
  /**
   * With SecAgg, the round's cohort is not the one its coordinator committed to on chain (`provenance.drawSeed`)
   * before the graph seed was drawn, or no seed was drawn for the round's attempt.
   */
  'COHORT_COMMITMENT',
  /**
   * With SecAgg, the survivor list is not confirmed by the survivors themselves: a consistency signature is invalid,
   * from outside the survivors, or fewer than the threshold t signed exactly the list the manifest reports.
   */
  'CONSISTENCY_SIGNATURE',
  /** An update commitment's signature is not valid for the participant's admitted identity key. */
  'COMMITMENT_SIGNATURE',
  /** A committed update is not recorded on chain as stored by that participant. */
  'UPDATE_NOT_ON_CHAIN',
  /** The manifest's settings (model, strategy, SecAgg, privacy) are not the ones the task spec fixed. */
  'SETTINGS_MISMATCH',
  /** The privacy budget spent exceeds the task's budget. */
  'PRIVACY_BUDGET',
  /** A stored object is no longer active on chain, or fewer than the needed columns are held by miners in good standing. */
  'OBJECT_UNRETRIEVABLE',
  /** A miner holding a column of a lineage object is not in good standing (exited, or penalised by audits). */
  'MINER_STANDING',
  /**
   * The recompute material is missing (where the task must record it), unreadable, not what the manifest's digest
   * says, malformed, for another attempt, or holds a message its sender did not sign.
   */
  'AGGREGATE_MATERIAL',
  /** A masked update in the material is not the one its sender committed to and signed: a tampered update. */
  'AGGREGATE_UPDATE',
  /** The survivors the material unmasks for are not the manifest's: one left out, or one nobody committed made up. */
  'AGGREGATE_SURVIVORS',
  /** The dropouts (or the stages they left in) the manifest reports are not what the material shows. */
  'AGGREGATE_DROPOUTS',
  /** The material does not unmask to a sum (shares missing or wrong): the reported round cannot have produced it. */
  'AGGREGATE_UNMASK',
  /** The model, evaluation or weight re-derived from the committed updates is not what the manifest says. */
  'AGGREGATE_MISMATCH',
] as const;
export type AuditCode = (typeof AUDIT_CODES)[number];

/**
 * Findings about storage health, not about the lineage: a column under repair or on a miner in bad standing is
 * reported, but the lineage still verifies while its object keeps enough good columns (OBJECT_UNRETRIEVABLE when it
 * does not). Without this, every network repairing a column after a miner failed would fail every audit.
 */
const ADVISORY: ReadonlySet<AuditCode> = new Set<AuditCode>(['MINER_STANDING']);

/** Whether a finding breaks the lineage (fails the audit), rather than reporting storage health. */
export const breaksLineage = (f: Pick<AuditFinding, 'code'>): boolean => !ADVISORY.has(f.code);

/** One break: what, where (round and field), and a sentence that says expected vs found. */
export interface AuditFinding {
  readonly code: AuditCode;
  /** null for task-level findings. */
  readonly round: number | null;
  /** A path a reader can follow, e.g. `round 2 · updates[1] (5F3o76oZ…)` or `task spec`. */
  readonly where: string;
  readonly message: string;
}

export interface AuditRound {
  readonly round: number;
  /** As anchored on chain. */
  readonly manifest: { readonly fid: string; readonly digest: string; readonly recordedAt: number };
  /** null when the manifest could not be read. */
  readonly model: { readonly fid: string; readonly hash: string; readonly name: string } | null;
  readonly parent: { readonly fid: string; readonly digest: string } | null;
  readonly cohort: readonly string[];
  readonly survivors: readonly string[];
  readonly dropouts: readonly { readonly account: string; readonly stage: string }[];
  /** Each survivor's commitment to its update; `valid` is the signature check against its admitted key. */
  readonly updates: readonly {
    readonly account: string;
    readonly fid: string;
    readonly digest: string;
    readonly valid: boolean;
  }[];
  /** 'evaluation': the closing round in which the organisations only scored the final model. */
  readonly kind: 'train' | 'evaluation';
  /** The round's model on the coordinator's own test set (its fields null without one); null without a manifest. */
  readonly metrics: {
    readonly accuracy: number | null;
    readonly loss: number | null;
    readonly testExamples: number | null;
  } | null;
  /** The organisations' held-out rows scoring the round's start model (client-side, through the secure sum). */
  readonly evaluation: { readonly examples: number; readonly accuracy: number; readonly loss: number } | null;
  readonly privacy: {
    readonly mechanism: string;
    readonly epsilonSpent: number | null;
    readonly delta: number | null;
  } | null;
  readonly secagg: { readonly enabled: boolean; readonly k: number; readonly t: number } | null;
  readonly startedAt: number | null;
  readonly finishedAt: number | null;
  /**
   * True when the audit re-derived the round's sum from the committed updates and the unmasking material, applied the
   * spec's strategy, and got the manifest's model, evaluation and weight bit for bit. (snake_case: the name the
   * `--json` output promises.)
   */
  readonly aggregate_recomputed: boolean;
  /** Why the aggregate was not recomputed although that is no finding (central DP, no SecAgg, a private model). */
  readonly aggregateNote: string | null;
  /** Empty when the round verifies. */
  readonly findings: readonly AuditFinding[];
  readonly ok: boolean;
  /** With `--eval`: the round's model scored on the auditor's own data, beside what the manifests claim for it. */
  readonly eval?: RoundEvaluation | null;
}

/** One figure a manifest claims for a round's model, and how the auditor's measurement differs from it. */
export interface ClaimedFigure {
  /** 'coordinator': its own test set (`metrics`); 'organisations': their held-out rows (client-side `evaluation`). */
  readonly by: 'coordinator' | 'organisations';
  /** The round whose manifest records the figure (the organisations score a model in the round that starts from it). */
  readonly round: number;
  readonly accuracy: number | null;
  readonly loss: number | null;
  readonly examples: number | null;
  /** measured − claimed, per metric; null when nothing was measured. */
  readonly difference: { readonly accuracy: number | null; readonly loss: number | null } | null;
  /**
   * Organisations' figures: true when the audit re-derived it as the example-weighted aggregate of their recorded
   * evaluations, false when it is not that aggregate (an AGGREGATE_MISMATCH finding), null when it could not be
   * re-derived (central DP, no SecAgg; see `note`). Always null for the coordinator's own test set.
   */
  readonly aggregate: boolean | null;
  readonly note: string;
}

/** `audit verify --eval`: one round's model on the auditor's data. A comparison, not a check (other data). */
export interface RoundEvaluation {
  /** The data spec the auditor scored with. */
  readonly data: string;
  /** Accuracy and mean loss over the auditor's examples; null when the model could not be read or scored. */
  readonly measured: { readonly accuracy: number; readonly loss: number; readonly examples: number } | null;
  /** Why nothing was measured, else null. */
  readonly note: string | null;
  /** The figure the model card shows for this model (the coordinator's when it has one), null when none is claimed. */
  readonly claimed: ClaimedFigure | null;
  /** Every figure claimed for this model. */
  readonly claims: readonly ClaimedFigure[];
}

export interface AuditReport {
  readonly task: string;
  /** The task as the chain recorded it (null when it is not on chain). */
  readonly chain: {
    readonly coordinator: string;
    readonly specDigest: string;
    readonly createdAt: number;
    readonly rounds: number;
    /** The block that stopped the task and why, when the stop said (a round out of attempts); null while it runs. */
    readonly stoppedAt?: number | null;
    readonly stopReason?: string | null;
    readonly admitted: readonly {
      readonly account: string;
      readonly identityKey: string;
      readonly admittedAt: number;
    }[];
  } | null;
  /** The task spec (parsed, verified against the chain digest), null when it could not be read. */
  readonly spec: Record<string, unknown> | null;
  readonly code: { readonly package: string; readonly version: string; readonly lockfile: string } | null;
  readonly rounds: readonly AuditRound[];
  /** Task-level findings (spec, missing rounds); round findings are in each round. */
  readonly findings: readonly AuditFinding[];
  /** True only when no finding anywhere. */
  readonly ok: boolean;
  /** Block height of the chain state the audit read. */
  readonly atBlock: number;
  /**
   * The evidence bundle this report was re-derived from offline (`audit verify|report --bundle`): its SHA-256 and the
   * chain tip it ends at. Absent for an audit of the live chain.
   */
  readonly evidence?: {
    readonly digest: string;
    readonly tip: { readonly number: number; readonly hash: string };
  } | null;
}
