import { z } from 'zod';
import {
  fedAdagrad,
  fedAdam,
  fedAvg,
  fedAvgM,
  fedYogi,
  MAX_POISSON_MEAN,
  minimumUpdates,
  quantizationScale,
  ROBUST_AGGREGATOR_NAMES,
  type RobustAggregatorKind,
  type RobustAggregatorSpec,
  robustStrategy,
  type Strategy,
  skellamWrapProbability,
  type WeightedEncoding,
} from '../aggregation/index.ts';
import { isAddress } from '../shared/account.ts';
import { canonicalDigest, canonicalJson } from '../shared/canonical.ts';
import { AilinkError } from '../shared/errors.ts';
import { checkDataSchema, classesOf, DataSchemaSchema } from './data-schema.ts';
import { type Retention, RetentionSchema } from './retention.ts';

/**
 * A training task as its owner declares it. The spec's canonical digest is recorded on chain when the task is created
 * (`provenance.createTask`), so a participant, an auditor or a researcher can check that the settings a coordinator
 * shows are the ones it committed to — including who may join.
 */

const hex32 = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex characters');
const address = z.string().refine(isAddress, 'expected an SS58 address');
const ms = z.number().int().min(200).max(3_600_000);
const planck = z.string().regex(/^(0|[1-9][0-9]{0,38})$/, 'expected a planck amount as a decimal string');

/**
 * Access to a task's global models (and its initial model). Absent or null: models are stored public, as every task
 * before this field. Otherwise each model is stored encrypted — wrapped for the coordinator and the participants who
 * train from it — and put under these market terms (src/chain/pallets/market.ts): `readers` read free, anyone else
 * pays `price` planck per request, or cannot buy it when `price` is null.
 */
export const ModelAccessSchema = z
  .object({
    /** At most what one `market.setTerms` lists (MAX_TERMS_READERS in src/chain/calls.ts; a test keeps them equal). */
    readers: z.array(address).max(256),
    price: planck.nullable(),
  })
  .strict();
export type ModelAccess = z.infer<typeof ModelAccessSchema>;

/** Strategies that need only the weighted sum, so they run under secure aggregation. */
export const STRATEGY_NAMES = ['fedavg', 'fedavgm', 'fedadam', 'fedyogi', 'fedadagrad'] as const;
/** Byzantine-robust rules: they read each update, so a task choosing one must turn secure aggregation off. */
export const ROBUST_STRATEGY_NAMES = Object.keys(ROBUST_AGGREGATOR_NAMES) as RobustAggregatorKind[];
/** Keras's names. Cross-entropies take the model's output as logits or probabilities, whichever it gives. */
export const LOSSES = ['categorical_crossentropy', 'binary_crossentropy', 'mean_squared_error'] as const;
export const METRICS = ['accuracy', 'loss'] as const;

export const TaskSpecSchema = z
  .object({
    version: z.literal(2),
    name: z.string().min(1).max(128),
    coordinator: z
      .object({
        /** The chain account that creates the task and records its rounds. */
        account: address,
        /** Ed25519 key (hex) that signs round announcements and SecAgg abort reasons. */
        serverKey: hex32,
        /** X25519 key (hex) participants encrypt their updates to: only the coordinator can read them. */
        readerKey: hex32,
      })
      .strict(),
    model: z
      .object({
        /** A name for people (the model.json's own name, or the file's). */
        name: z.string().min(1).max(128),
        /** The model package (models/index.ts: topology + optional starting weights), stored as a plain object. */
        fid: hex32,
        /** SHA-256 of the package's bytes: what a participant checks the fetched package against. */
        digest: hex32,
        /** Weights in a flat vector: the length of every update, model and mask. */
        parameters: z
          .number()
          .int()
          .min(1)
          .max(2 ** 31 - 1),
        /** Seeds the initializers of a package without weights; null when round 0 starts from the package's own. */
        initialSeed: z.string().min(1).max(128).nullable(),
        /** Hash of round 0's model bytes (AILM): the initial weights every participant checks. */
        initialHash: hex32,
      })
      .strict(),
    /** What every organisation's data must look like and how it is preprocessed (data-schema.ts). */
    data: DataSchemaSchema,
    dataset: z.object({ name: z.string().min(1).max(128), description: z.string().max(2000) }).strict(),
    /** How organisations train locally: the loss, the optimizer (a fresh one each round) and the metrics reported. */
    training: z
      .object({
        loss: z.enum(LOSSES),
        optimizer: z
          .object({
            name: z.enum(['sgd', 'momentum', 'adam']),
            learningRate: z.number().positive().max(10),
            /** momentum: the momentum (default 0.9). */
            momentum: z.number().min(0).max(0.999).optional(),
            /** adam: β1, β2 (defaults 0.9, 0.999). */
            beta1: z.number().min(0).max(0.9999).optional(),
            beta2: z.number().min(0).max(0.99999).optional(),
          })
          .strict(),
        metrics: z.array(z.enum(METRICS)).min(1).max(METRICS.length),
        /** FedProx's μ (Li et al. 2020): μ/2‖w − w_global‖² added to the local loss; 0 is FedAvg's local step. */
        proximalMu: z.number().min(0).max(100),
      })
      .strict(),
    /**
     * How the coordinator turns a round's updates into the next model. A FedAvg-family name takes serverLr (and
     * momentum for fedavgm); a robust rule takes f (byzantine updates tolerated; krum, multi-krum, bulyan), m (updates
     * kept; multi-krum) or beta (fraction trimmed from each end; trimmed-mean).
     */
    strategy: z
      .object({
        name: z.enum([...STRATEGY_NAMES, ...(ROBUST_STRATEGY_NAMES as [RobustAggregatorKind])]),
        serverLr: z.number().positive().max(100).optional(),
        momentum: z.number().min(0).max(0.999).optional(),
        f: z.number().int().min(0).max(1000).optional(),
        m: z.number().int().min(1).max(1000).optional(),
        beta: z.number().min(0).lt(0.5).optional(),
      })
      .strict(),
    local: z
      .object({
        epochs: z.number().int().min(1).max(1000),
        batchSize: z.number().int().min(1).max(4096),
      })
      .strict(),
    rounds: z.number().int().min(1).max(100_000),
    cohort: z
      .object({ size: z.number().int().min(1).max(1000), min: z.number().int().min(1).max(1000) })
      .strict()
      .refine((c) => c.min <= c.size, 'cohort.min must not exceed cohort.size'),
    /**
     * Attempts per round at most (absent: DEFAULT_MAX_ATTEMPTS; read it with `maxAttemptsOf`). A round whose attempts
     * all aborted ends the task, with the reason signed to the organisations and recorded on chain. Optional rather
     * than defaulted, like `models`: a spec from before keeps its digest.
     */
    maxAttempts: z.number().int().min(1).max(1000).optional(),
    /** Per stage: how long the coordinator waits before treating the silent as dropouts. */
    deadlines: z
      .object({
        /** Waiting for enough admitted participants to be online before a round starts. */
        joinMs: ms,
        advertiseMs: ms,
        sharesMs: ms,
        /** Local training, masking and storing the update. */
        trainMs: ms,
        consistencyMs: ms,
        unmaskMs: ms,
      })
      .strict(),
    secagg: z
      .object({
        enabled: z.boolean(),
        /** Neighbours per client (SecAgg+ graph degree, even) and the share threshold; capped to the cohort. */
        neighbours: z.number().int().min(2).max(1000),
        threshold: z.number().int().min(2).max(1000),
        /** Per-coordinate clipping range of an update, bits per coordinate, largest example count a client may claim. */
        range: z.number().positive().max(1e6),
        bits: z.number().int().min(4).max(31),
        maxWeight: z.number().int().min(1),
      })
      .strict(),
    /**
     * Differential privacy; null when the task does not add noise (ε spent is then reported as none). Every update is
     * clipped to L2 ≤ clipNorm and counts once; the noise has std noiseMultiplier·clipNorm in model units.
     */
    dp: z
      .object({
        noiseMultiplier: z.number().positive(),
        clipNorm: z.number().positive(),
        delta: z.number().positive().max(0.1),
        epsilonBudget: z.number().positive(),
        /**
         * Who adds the noise (privacy.ts). Absent: 'central-gaussian', the coordinator adds Gaussian noise after
         * unmasking. 'skellam': each organisation adds its share of integer Skellam noise to its quantized update
         * before masking (distributed DP), so the sum is never seen without noise and anyone can recompute it.
         * Optional rather than defaulted, like `models`: specs from before keep their canonical JSON and digest.
         */
        mechanism: z.enum(['central-gaussian', 'skellam']).optional(),
        /**
         * Central DP only: the reader keys (X25519, hex) of the auditors the coordinator seals each round's recompute
         * material for, with the seed of its noise, so that they (and nobody else: the pre-noise sum is what the noise
         * hides) re-derive the model. Absent: no material, as before; optional so that older specs keep their digest.
         */
        auditors: z
          .array(z.string().regex(/^[0-9a-f]{64}$/, 'expected an X25519 public key, 64 hex characters'))
          .min(1)
          .max(256)
          .optional(),
      })
      .strict()
      .nullable(),
    /** The accounts the owner admits; nobody else can join. */
    admitted: z.array(address).min(1).max(1024),
    /**
     * Optional rather than defaulted: a spec without it keeps its canonical JSON, hence its digest, so tasks recorded
     * before the field existed still verify. Absent and null mean the same (public models).
     */
    models: ModelAccessSchema.nullable().optional(),
    /**
     * How long a round's participants' updates and its recompute material are kept (retention.ts): absent, for good.
     * Optional for the same reason as `models`: specs from before keep their digest.
     */
    retention: RetentionSchema.optional(),
  })
  .strict();

export type TaskSpec = z.infer<typeof TaskSpecSchema>;

/**
 * Attempts a round gets when the spec does not say: enough for a round to go on without one or two organisations that
 * keep dropping out (each sits out the rest of the round), few enough that a round that cannot succeed ends in minutes.
 */
export const DEFAULT_MAX_ATTEMPTS = 5;

/** How many attempts a round of the task gets before the task ends. */
export function maxAttemptsOf(spec: Pick<TaskSpec, 'maxAttempts'>): number {
  return spec.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
}

/** The task's model access terms, or null when its models are public. */
export function modelAccessOf(spec: TaskSpec): ModelAccess | null {
  return spec.models ?? null;
}

/** The task's retention of round updates and recompute material, or null when they are kept for good. */
export function retentionOf(spec: Pick<TaskSpec, 'retention'>): Retention | null {
  return spec.retention ?? null;
}

/** The digest recorded on chain: SHA-256 of the spec's canonical JSON. */
export function taskDigest(spec: TaskSpec): string {
  return canonicalDigest(spec);
}

/** The spec as stored (canonical JSON): its SHA-256 is `taskDigest`. */
export function taskSpecBytes(spec: TaskSpec): Uint8Array {
  return new TextEncoder().encode(canonicalJson(spec));
}

/** A readable, collision-resistant id: the name made safe, then 12 hex digits of the digest. */
export function taskIdOf(spec: TaskSpec): string {
  const slug = spec.name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '')
    .slice(0, 40);
  return `${slug || 'task'}-${taskDigest(spec).slice(0, 12)}`;
}

/**
 * @throws INVALID_INPUT listing every field that is wrong (with its path), e.g. `cohort.min: must not exceed …`
 */
export function parseTaskSpec(value: unknown, where = 'task spec'): TaskSpec {
  const parsed = TaskSpecSchema.safeParse(value);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new AilinkError('INVALID_INPUT', `${where} is invalid: ${problems.join('; ')}`);
  }
  const spec = parsed.data;
  if (spec.secagg.neighbours % 2 !== 0)
    throw new AilinkError(
      'INVALID_INPUT',
      `${where}: secagg.neighbours must be even, got ${spec.secagg.neighbours}`,
    );
  if (spec.secagg.enabled && spec.cohort.min < 3)
    throw new AilinkError(
      'INVALID_INPUT',
      `${where}: secure aggregation needs cohort.min ≥ 3, got ${spec.cohort.min}`,
    );
  checkDataSchema(spec.data, `${where}: data`);
  const classes = classesOf(spec.data).length;
  if (spec.training.loss === 'binary_crossentropy' && classes !== 2)
    throw new AilinkError(
      'INVALID_INPUT',
      `${where}: training.loss binary_crossentropy needs 2 classes, the data declares ${classes}`,
    );
  checkStrategy(spec, where);
  checkDistributedDp(spec, where);
  if (new Set(spec.admitted).size !== spec.admitted.length)
    throw new AilinkError('INVALID_INPUT', `${where}: admitted lists an account twice`);
  if (spec.models != null && new Set(spec.models.readers).size !== spec.models.readers.length)
    throw new AilinkError('INVALID_INPUT', `${where}: models.readers lists an account twice`);
  return spec;
}

const PARAMETERS_OF: Record<TaskSpec['strategy']['name'], readonly string[]> = {
  fedavg: ['serverLr'],
  fedavgm: ['serverLr', 'momentum'],
  fedadam: ['serverLr'],
  fedyogi: ['serverLr'],
  fedadagrad: ['serverLr'],
  krum: ['f'],
  'multi-krum': ['f', 'm'],
  'coordinate-median': [],
  'trimmed-mean': ['beta'],
  bulyan: ['f'],
};

/** The robust rule a spec chooses, or null for a FedAvg-family strategy. */
export function robustAggregatorOf(spec: TaskSpec): RobustAggregatorSpec | null {
  const s = spec.strategy;
  switch (s.name) {
    case 'krum':
    case 'bulyan':
      return { kind: s.name, f: s.f ?? 0 };
    case 'multi-krum':
      return { kind: s.name, f: s.f ?? 0, m: s.m ?? 1 };
    case 'coordinate-median':
      return { kind: s.name };
    case 'trimmed-mean':
      return { kind: s.name, beta: s.beta ?? 0 };
    default:
      return null;
  }
}

/**
 * A robust rule reads each organisation's update, which secure aggregation exists to hide, and DP's noise is
 * calibrated to a sum's sensitivity, not to a median's: both combinations are refused, as are parameters the rule
 * does not take and a cohort floor below what the rule needs to aggregate at all.
 */
function checkStrategy(spec: TaskSpec, where: string): void {
  const s = spec.strategy;
  const allowed = PARAMETERS_OF[s.name];
  const extra = Object.keys(s).filter((key) => key !== 'name' && !allowed.includes(key));
  if (extra.length > 0)
    throw new AilinkError(
      'INVALID_INPUT',
      `${where}: strategy ${s.name} takes ${allowed.length === 0 ? 'no parameters' : allowed.join(', ')}, got ${extra.join(', ')}`,
    );
  const robust = robustAggregatorOf(spec);
  if (robust === null) return;
  if ((s.name === 'krum' || s.name === 'multi-krum' || s.name === 'bulyan') && s.f === undefined)
    throw new AilinkError(
      'INVALID_INPUT',
      `${where}: strategy ${s.name} needs f, the byzantine updates it tolerates`,
    );
  if (s.name === 'multi-krum' && s.m === undefined)
    throw new AilinkError('INVALID_INPUT', `${where}: strategy multi-krum needs m, the updates it keeps`);
  if (s.name === 'trimmed-mean' && s.beta === undefined)
    throw new AilinkError(
      'INVALID_INPUT',
      `${where}: strategy trimmed-mean needs beta, the fraction trimmed from each end`,
    );
  if (spec.secagg.enabled)
    throw new AilinkError(
      'INVALID_INPUT',
      `${where}: strategy ${s.name} reads each organisation's update, which secure aggregation hides: set secagg.enabled to false or choose ${STRATEGY_NAMES.join(', ')}`,
    );
  if (spec.dp !== null)
    throw new AilinkError(
      'INVALID_INPUT',
      `${where}: strategy ${s.name} cannot be combined with central DP or distributed DP (its noise is calibrated to a sum): set dp to null or choose ${STRATEGY_NAMES.join(', ')}`,
    );
  const needed = minimumUpdates(robust);
  if (spec.cohort.min < needed)
    throw new AilinkError(
      'INVALID_INPUT',
      `${where}: strategy ${s.name} with ${JSON.stringify(robust)} needs at least ${needed} updates per round, but cohort.min is ${spec.cohort.min}`,
    );
}

/**
 * Above this bound on the chance that a round's noisy sum wraps around the ring somewhere (decoding it 2^32 off), a
 * Skellam task is refused. Per round, over every coordinate; the tail falls like exp(−t²/2v), so a task either sits
 * far below it or has no room at all.
 */
export const MAX_WRAP_PROBABILITY = 1e-12;

/**
 * Distributed DP (Skellam) needs its noise to travel inside the secure sum: SecAgg on (without it each update, noise
 * share and all, is the coordinator's plaintext), a strategy that reads the sum only (checkStrategy refuses robust
 * rules with any DP; the FedAvg family only post-processes the noisy average), and a ring with room for the largest
 * noise-free sum plus the noise of a full cohort.
 */
function checkDistributedDp(spec: TaskSpec, where: string): void {
  if (spec.dp?.auditors !== undefined && (spec.dp.mechanism === 'skellam' || !spec.secagg.enabled))
    throw new AilinkError(
      'INVALID_INPUT',
      `${where}: dp.auditors names who may read the material of a round whose exact sum is secret, which only central DP with SecAgg has; got ${spec.dp.mechanism === 'skellam' ? 'dp.mechanism skellam (its material is published to everyone)' : 'secagg.enabled false (no material without SecAgg)'}: remove dp.auditors`,
    );
  if (spec.dp === null || spec.dp === undefined || spec.dp.mechanism !== 'skellam') return;
  if (!spec.secagg.enabled)
    throw new AilinkError(
      'INVALID_INPUT',
      `${where}: dp.mechanism skellam adds each organisation's noise share inside the secure sum, so it needs secagg.enabled true; got false (set it, or use dp.mechanism central-gaussian)`,
    );
  const variance = skellamVarianceOf(spec);
  const top = 2 ** spec.secagg.bits - 1;
  if (Math.ceil((spec.cohort.size * top) / 2) >= 2 ** 31)
    throw new AilinkError(
      'INVALID_INPUT',
      `${where}: dp.mechanism skellam reads the noisy sum in a window of 2^32 around its midpoint, but ${spec.cohort.size} organisations × ${spec.secagg.bits}-bit values fill it without noise: lower secagg.bits or cohort.size`,
    );
  // Each organisation draws Poisson(v / (2·cohort.size)) twice per coordinate: the sampler's range must hold it.
  if (variance / (2 * spec.cohort.size) > MAX_POISSON_MEAN)
    throw new AilinkError(
      'INVALID_INPUT',
      `${where}: dp.mechanism skellam: each organisation's noise share needs Poisson means of ${(variance / (2 * spec.cohort.size)).toExponential(3)} quantization steps, expected ≤ 2^50: lower secagg.bits (or raise secagg.range), or lower dp.noiseMultiplier`,
    );
  const wrap = skellamWrapProbability({
    quantization: { range: spec.secagg.range * spec.secagg.maxWeight, bits: spec.secagg.bits },
    count: spec.cohort.size,
    dimension: spec.model.parameters,
    variance,
  });
  if (wrap > MAX_WRAP_PROBABILITY)
    throw new AilinkError(
      'INVALID_INPUT',
      `${where}: dp.mechanism skellam: the noise of ${spec.cohort.size} organisations (std ${Math.sqrt(variance).toPrecision(4)} quantization steps) could wrap the 32-bit sum of ${spec.cohort.size} × ${spec.secagg.bits}-bit values with probability up to ${wrap.toPrecision(3)} per round, expected ≤ ${MAX_WRAP_PROBABILITY}: lower secagg.bits (or raise secagg.range), or lower dp.noiseMultiplier`,
    );
}

/**
 * The Skellam variance, in quantization steps², of a whole cohort's noise: (z·C·s)², the integer image of central
 * DP's std z·C (s = quantization steps per model unit of the task's encoding, ±range·maxWeight over 2^bits − 1
 * steps). Each organisation adds 1/cohort.size of it, so a round whose survivors are fewer carries less.
 */
export function skellamVarianceOf(spec: Pick<TaskSpec, 'dp' | 'secagg'>): number {
  if (spec.dp === null) return 0;
  const scale = quantizationScale({
    range: spec.secagg.range * spec.secagg.maxWeight,
    bits: spec.secagg.bits,
  });
  return (spec.dp.noiseMultiplier * spec.dp.clipNorm * scale) ** 2;
}

/** The strategy object a spec chooses (pure: the coordinator aggregates with it, an auditor can replay it). */
export function strategyOf(spec: TaskSpec): Strategy {
  const s = spec.strategy;
  switch (s.name) {
    case 'fedavg':
      return fedAvg({ serverLr: s.serverLr });
    case 'fedavgm':
      return fedAvgM({ serverLr: s.serverLr, momentum: s.momentum });
    case 'fedadam':
      return fedAdam({ eta: s.serverLr });
    case 'fedyogi':
      return fedYogi({ eta: s.serverLr });
    case 'fedadagrad':
      return fedAdagrad({ eta: s.serverLr });
    default:
      return robustStrategy(robustAggregatorOf(spec)!);
  }
}

/**
 * The SecAgg+ graph for a cohort of n: degree k = the task's neighbours, lowered to the largest even number below n,
 * and threshold t = the task's, kept within (k/2, k] so two disjoint halves of a neighbourhood can never both pass.
 */
export function secAggShape(
  spec: { readonly secagg: Pick<TaskSpec['secagg'], 'neighbours' | 'threshold'> },
  cohort: number,
): { k: number; t: number } {
  const k = Math.max(2, Math.min(spec.secagg.neighbours, cohort - 1 - ((cohort - 1) % 2)));
  const t = Math.min(k, Math.max(Math.floor(k / 2) + 1, spec.secagg.threshold));
  return { k, t };
}

/** What the survivability rule reads of a spec (a task file before the coordinator completes it has these too). */
export type SecAggPlan = {
  readonly cohort: Pick<TaskSpec['cohort'], 'size' | 'min'>;
  readonly secagg: Pick<TaskSpec['secagg'], 'enabled' | 'neighbours' | 'threshold'>;
};

/**
 * The first cohort size the round may be drawn with (cohort.min … cohort.size) at which the SecAgg+ graph cannot
 * survive the dropouts the floor accepts there (n − cohort.min), or null when there is none. A member keeps its
 * neighbourhood while t of its k neighbours live, so k − t dropouts are survived wherever they fall, and one more
 * among a member's neighbours aborts the attempt.
 */
function fragileCohort(plan: SecAggPlan, min: number) {
  if (!plan.secagg.enabled) return null;
  for (let n = Math.max(min, 3); n <= plan.cohort.size; n++) {
    const { k, t } = secAggShape(plan, n);
    if (n - min > k - t) return { n, k, t, planned: n - min };
  }
  return null;
}

/** The smallest cohort.min (at least the plan's) whose planned dropouts the task's SecAgg survives; cohort.size always does. */
export function survivableMin(plan: SecAggPlan): number {
  let min = plan.cohort.min;
  while (min < plan.cohort.size && fragileCohort(plan, min) !== null) min++;
  return min;
}

/**
 * Refuses, when a task is created, SecAgg settings that cannot survive the dropouts the task plans for: a round runs
 * while cohort.min members survive, so in every cohort the round may be drawn with (n from cohort.min to
 * cohort.size) n − cohort.min dropouts must leave every survivor at least t live neighbours, wherever they fall — at
 * most k − t. Otherwise a dropout the task accepts aborts the attempt instead (4 organisations with min 3 get k = t =
 * 2: any dropout aborts). Only at creation: specs recorded before the rule still parse.
 * @throws TASK_SECAGG_FRAGILE saying at which cohort size, what SecAgg survives there, and the cohort.min that works
 */
export function checkSecAggSurvives(plan: SecAggPlan, where = 'task spec'): void {
  const fragile = fragileCohort(plan, plan.cohort.min);
  if (fragile === null) return;
  const { n, k, t, planned } = fragile;
  const fixed = survivableMin(plan);
  throw new AilinkError(
    'TASK_SECAGG_FRAGILE',
    `${where}: in a cohort of ${n}, SecAgg+ has k = ${k} neighbours and threshold t = ${t}, so it survives ${k - t} dropouts (k − t) in the worst case, but cohort.min ${plan.cohort.min} plans for ${planned}: raise cohort.min to ${fixed}${fixed < plan.cohort.size ? '' : ' (no dropout planned)'}, or give SecAgg more room (more secagg.neighbours, a threshold nearer k/2 + 1, a larger cohort), or set secagg.enabled to false`,
  );
}

/** How a task's updates are quantized: what participants encode and the coordinator (and any replay) decodes. */
export const encodingOf = (spec: TaskSpec): WeightedEncoding => ({
  quantization: { range: spec.secagg.range, bits: spec.secagg.bits },
  maxWeight: spec.secagg.maxWeight,
});
