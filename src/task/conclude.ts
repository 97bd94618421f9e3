import { z } from 'zod';
import {
  type AggregateResult,
  addInto,
  type ClientResult,
  checkWeightedEncoding,
  createSecAggServer,
  decodeNoisySum,
  decodeWeightedSum,
  type MaskedBody,
  privatizeSum,
  type RandomBytes,
  type SecAggParams,
  type Signed,
  type StrategyState,
  type WeightedSum,
} from '../aggregation/index.ts';
import { isAddress } from '../shared/account.ts';
import { canonicalJson } from '../shared/canonical.ts';
import { AilinkError } from '../shared/errors.ts';
import { decodeEvaluationSum, type EvaluationSummary } from './evaluation.ts';
import { type RoundKind, type VectorLayout, vectorLayout } from './layout.ts';
import {
  AdvertSchema,
  ConsistencySchema,
  decodeStoredUpdate,
  SharesSchema,
  UnmaskSchema,
} from './messages.ts';
import { modelHashOf } from './model-bytes.ts';
import { isCentralDp, isDistributedDp } from './privacy.ts';
import { encodingOf, strategyOf, type TaskSpec } from './spec.ts';

/**
 * How an attempt's inputs become its outputs — the unmasked sum, the decoded update, the strategy's new model and the
 * manifest fields they fix — as one pure function that the coordinator runs to finish a round and an auditor runs to
 * re-derive it. It lives in src/task because both may import src/task (DESIGN §2: src/audit must not import
 * src/coordinator) and because it needs the spec, the vector layout and the model format, which src/aggregation (pure
 * math, importing nothing else of ours) must not know.
 *
 * The recompute material: with SecAgg, the attempt's protocol messages exactly as the coordinator received them — every
 * member's signed advert and shares, the survivors' stored (masked) updates, their signed consistency confirmations and
 * their signed unmask reveals (the self-mask shares of survivors, the mask-secret shares of dropouts). Replaying the
 * SecAgg server over them gives the sum bit for bit. Each message carries its sender's signature by the identity key
 * the chain admitted, and each stored update hashes to the digest its sender signed in its commitment, so the
 * coordinator can leave messages out but cannot alter or invent any.
 */

const account = z.string().max(64).refine(isAddress, 'expected an SS58 address');

/**
 * Whether `s` is in the language of /^[A-Za-z0-9+/]*={0,2}$/, checked as one negated character class plus the place
 * of the padding: an update is megabytes of base64 (8.9 MB for the CNN), and that anchored pattern ran ≈ 10× slower
 * (≈ 0.1 s per update here, bench:audit), the largest single cost of an audit's recomputation.
 */
function isBase64Text(s: string): boolean {
  if (/[^A-Za-z0-9+/=]/.test(s)) return false;
  const pad = s.indexOf('=');
  return pad === -1 || pad === s.length - 1 || (pad === s.length - 2 && s[s.length - 1] === '=');
}

const messages = z.array(z.unknown()).max(1000);

/** Format 1 (rounds anchored before streaming sums): one JSON object, each survivor's stored update in base64. */
export const AggregationMaterialV1Schema = z
  .object({
    version: z.literal(1),
    /** The attempt's context (roundContext): what every message is signed for. */
    context: z.string().max(256),
    adverts: messages,
    shares: messages,
    /** Each survivor's stored update, byte for byte as it stored it (base64): it hashes to its commitment's digest. */
    masked: z
      .array(z.object({ account, update: z.string().refine(isBase64Text, 'expected base64') }).strict())
      .max(1000),
    consistency: messages,
    unmask: messages,
  })
  .strict();

/**
 * Format 2: 'AILKMAT2' ‖ u32 (big-endian) header length ‖ header JSON ‖ each survivor's stored update, raw, in the
 * header's order. The updates are not inside the JSON so that a coordinator writes the material from its spool one
 * update at a time and a reader takes each as a view of the bytes: no process holds them twice or as base64 text.
 */
const MATERIAL_MAGIC = 'AILKMAT2';
/** The messages of 1,000 members with their signed survivor lists stay well under this. */
const MAX_MATERIAL_HEADER_BYTES = 256 * 1024 * 1024;
const MaterialHeaderSchema = z
  .object({
    version: z.literal(2),
    context: z.string().max(256),
    adverts: messages,
    shares: messages,
    consistency: messages,
    unmask: messages,
    masked: z
      .array(
        z
          .object({
            account,
            bytes: z
              .number()
              .int()
              .min(0)
              .max(2 ** 32),
          })
          .strict(),
      )
      .max(1000),
    /** Central DP: the seed the round's Gaussian noise was drawn from (the material is then sealed for auditors). */
    noiseSeed: z
      .string()
      .regex(/^[0-9a-f]{64}$/)
      .optional(),
  })
  .strict();

/** The attempt's messages, everything in the material but the updates. */
export interface MaterialHead {
  /** The attempt's context (roundContext): what every message is signed for. */
  readonly context: string;
  readonly adverts: readonly unknown[];
  readonly shares: readonly unknown[];
  readonly consistency: readonly unknown[];
  readonly unmask: readonly unknown[];
  /** Central DP only: the seed of the round's noise, hex (`materialAuditorsOf`). */
  readonly noiseSeed?: string;
}

/** The recompute material: the messages, and each survivor's stored update byte for byte (it hashes to its commitment). */
export interface AggregationMaterial extends MaterialHead {
  readonly masked: readonly { readonly account: string; readonly update: Uint8Array }[];
}

/** A survivor's stored update the material is written from: its length, and its bytes read when their turn comes. */
export interface MaterialUpdateSource {
  readonly account: string;
  readonly bytes: number;
  read(): AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
}

function materialPrefix(head: MaterialHead, updates: readonly { account: string; bytes: number }[]) {
  const header = new TextEncoder().encode(
    canonicalJson({
      version: 2,
      context: head.context,
      adverts: head.adverts,
      shares: head.shares,
      consistency: head.consistency,
      unmask: head.unmask,
      masked: updates.map((u) => ({ account: u.account, bytes: u.bytes })),
      ...(head.noiseSeed === undefined ? {} : { noiseSeed: head.noiseSeed }),
    }),
  );
  const prefix = new Uint8Array(12 + header.byteLength);
  prefix.set(new TextEncoder().encode(MATERIAL_MAGIC), 0);
  new DataView(prefix.buffer).setUint32(8, header.byteLength, false);
  prefix.set(header, 12);
  return prefix;
}

/**
 * The material's bytes (format 2) as a stream of known size, each update read only when it is written: the coordinator
 * stores it so from its spool. A source that yields another length than it declared fails the stream (INTERNAL)
 * rather than storing a corrupt object.
 */
export function aggregationMaterialStream(
  head: MaterialHead,
  updates: readonly MaterialUpdateSource[],
): { readonly size: number; readonly chunks: AsyncIterable<Uint8Array> } {
  const prefix = materialPrefix(head, updates);
  async function* chunks() {
    yield prefix;
    for (const u of updates) {
      let n = 0;
      for await (const chunk of u.read()) {
        n += chunk.byteLength;
        yield chunk;
      }
      if (n !== u.bytes)
        throw new AilinkError(
          'INTERNAL',
          `expected the spooled update of ${u.account} to be ${u.bytes} bytes, read ${n} (the spool changed under the coordinator)`,
        );
    }
  }
  return { size: updates.reduce((a, u) => a + u.bytes, prefix.byteLength), chunks: chunks() };
}

/** The stored object's bytes (format 2), whose SHA-256 the manifest names: the stream's, whole. */
export function aggregationMaterialBytes(m: AggregationMaterial): Uint8Array {
  const prefix = materialPrefix(
    m,
    m.masked.map((e) => ({ account: e.account, bytes: e.update.byteLength })),
  );
  const out = new Uint8Array(prefix.byteLength + m.masked.reduce((a, e) => a + e.update.byteLength, 0));
  out.set(prefix, 0);
  let at = prefix.byteLength;
  for (const e of m.masked) {
    out.set(e.update, at);
    at += e.update.byteLength;
  }
  return out;
}

const malformed = (why: string) =>
  new AilinkError('ROUND_MESSAGE_INVALID', `malformed recompute material: ${why}`);
const issuesOf = (error: z.ZodError) =>
  error.issues
    .slice(0, 3)
    .map((i) => `${i.path.join('.')}: ${i.message}`)
    .join('; ');

/**
 * Reads either format. In format 2 each update is a view into `bytes` (no copy); format 1's base64 is decoded.
 * @throws ROUND_MESSAGE_INVALID when the bytes are not recompute material
 */
export function parseAggregationMaterial(bytes: Uint8Array): AggregationMaterial {
  const magic = new TextEncoder().encode(MATERIAL_MAGIC);
  if (bytes.byteLength >= 12 && magic.every((b, i) => bytes[i] === b)) {
    const length = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(8, false);
    if (length > MAX_MATERIAL_HEADER_BYTES || 12 + length > bytes.byteLength)
      throw malformed(`header length ${length} out of range (the object has ${bytes.byteLength} bytes)`);
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + length)));
    } catch {
      throw malformed('its header must be JSON');
    }
    const parsed = MaterialHeaderSchema.safeParse(json);
    if (!parsed.success) throw malformed(issuesOf(parsed.error));
    const { version: _, masked: sizes, ...head } = parsed.data;
    let at = 12 + length;
    const masked = sizes.map((e) => {
      if (at + e.bytes > bytes.byteLength)
        throw malformed(`the update of ${e.account} runs past the end of the object`);
      const update = bytes.subarray(at, at + e.bytes);
      at += e.bytes;
      return { account: e.account, update };
    });
    if (at !== bytes.byteLength)
      throw malformed(`${bytes.byteLength - at} bytes follow the last update the header lists`);
    return { ...head, masked };
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new AilinkError(
      'ROUND_MESSAGE_INVALID',
      `recompute material must begin with ${MATERIAL_MAGIC} (format 2) or be JSON (format 1)`,
    );
  }
  const parsed = AggregationMaterialV1Schema.safeParse(json);
  if (!parsed.success) throw malformed(issuesOf(parsed.error));
  const { version: _, masked, ...head } = parsed.data;
  return {
    ...head,
    masked: masked.map((e) => ({
      account: e.account,
      update: new Uint8Array(Buffer.from(e.update, 'base64')),
    })),
  };
}

/**
 * Whether a round of `spec` records recompute material: with SecAgg and without central DP. Without SecAgg the
 * updates are each organisation's plaintext; with central DP the exact sum is what the noise must hide: publishing
 * either would give auditors more than the coordinator may show anyone. With distributed DP the exact sum already
 * carries the survivors' noise, so it is what the round releases anyway: its material is recorded.
 */
export const recordsAggregationMaterial = (spec: TaskSpec): boolean =>
  spec.secagg.enabled && (!isCentralDp(spec) || materialAuditorsOf(spec) !== null);

/**
 * With central DP and named auditors (`dp.auditors`), the material — and the seed of the round's noise in it — is
 * sealed for those auditors only: they re-derive the model, nobody else sees the pre-noise sum. Null otherwise (the
 * material, if any, is as readable as the model).
 */
export const materialAuditorsOf = (spec: TaskSpec): readonly string[] | null =>
  isCentralDp(spec) ? (spec.dp?.auditors ?? null) : null;

export interface ConcludeInput {
  readonly spec: TaskSpec;
  readonly kind: RoundKind;
  /** The strategy's state the round started from (its global model is the round's start model). */
  readonly start: StrategyState;
  /**
   * SecAgg, as an auditor has it: the attempt's parameters and messages, replayed to unmask the sum; `onRefused` is
   * told of each masked update the replayed server refuses (`unmaskMaterial`).
   */
  readonly secagg?: {
    readonly params: SecAggParams;
    readonly material: AggregationMaterial;
    readonly onRefused?: RefusedUpdate;
  };
  /**
   * SecAgg, as the coordinator has it: the sum its own server unmasked, having added each update as it arrived (it
   * never holds them all). It stores the material it did so from, which an auditor replays through `secagg`. The sum
   * is the conclusion's: a training round decodes it in place (`Conclusion.sum`).
   */
  readonly unmasked?: { readonly sum: Uint32Array; readonly survivors: readonly string[] };
  /** Without SecAgg: each valid update's words (the coordinator's own view; never published). */
  readonly plain?: ReadonlyMap<string, Uint32Array>;
  /**
   * Central DP only: the noise source (secret to the coordinator, so no auditor can re-derive such a round). Distributed
   * DP needs none: the organisations' noise is in the sum.
   */
  readonly noise?: RandomBytes;
}

export interface Conclusion {
  /**
   * The unmasked sum. In a training round its update words are decoded in place (`decoded.sum` is a view of the same
   * bytes), so only the words after them (the weight, the evaluation's) are still words.
   */
  readonly sum: Uint32Array;
  readonly survivors: string[];
  /** Messages the replayed SecAgg server refused (forged, altered, unexpected), as its reasons. */
  readonly rejected: string[];
  readonly evaluation: EvaluationSummary | null;
  /**
   * Training rounds: Σ wᵢΔᵢ and Σ wᵢ as decoded (before central DP noise; distributed DP's is in it), the strategy's
   * result and the hash of the model's bytes (`modelBytesStream` of `next.global` gives them, for storing).
   */
  readonly decoded: WeightedSum | null;
  readonly next: AggregateResult | null;
  readonly modelHash: string | null;
  /** `metrics.examples` of the manifest: what the survivors' updates weigh together (0 outside training). */
  readonly examples: number;
}

/**
 * Told of each masked update in the material that the replayed server refused (`index` in `material.masked`), with the
 * message as decoded, when it is refused: an auditor names the update even when the refusal then makes the unmasking
 * fail. Its words are the server's input: a callback must not alter them.
 */
export type RefusedUpdate = (index: number, message: Signed<MaskedBody>) => void;

/**
 * Replays the SecAgg server over the material: Σ of the survivors' inputs in Z_2^32.
 * @throws SECAGG_ABORTED / SECAGG_SHARE_INVALID (AggregationError) when the material cannot unmask a sum;
 *   ROUND_MESSAGE_INVALID for a malformed message or stored update
 */
export async function unmaskMaterial(
  params: SecAggParams,
  material: AggregationMaterial,
  onRefused?: RefusedUpdate,
): Promise<{ sum: Uint32Array; survivors: string[]; rejected: string[] }> {
  const parse = <T>(
    schema: { safeParse(v: unknown): { success: boolean; data?: T } },
    v: unknown,
    what: string,
  ) => {
    const r = schema.safeParse(v);
    if (!r.success)
      throw new AilinkError('ROUND_MESSAGE_INVALID', `malformed ${what} message in the material`);
    return r.data as T;
  };
  const server = createSecAggServer(params);
  server.collectAdverts(material.adverts.map((m) => parse(AdvertSchema, m, 'advertise')));
  server.collectShares(material.shares.map((m) => parse(SharesSchema, m, 'shares')));
  // One update decoded at a time and added into the server's running sum: O(d) beside the material itself.
  for (const [index, entry] of material.masked.entries()) {
    const u = decodeStoredUpdate(entry.update, params.dimension);
    if (u.from !== entry.account || u.context !== params.context)
      throw new AilinkError(
        'ROUND_MESSAGE_INVALID',
        `the update listed for ${entry.account} was made by ${u.from} for ${u.context}`,
      );
    const message: Signed<MaskedBody> = {
      stage: 'masked',
      context: u.context,
      from: u.from,
      body: { masked: u.words },
      // An update without its SecAgg signature is refused by the server like a forged one.
      signature: u.signature ?? new Uint8Array(64),
    };
    if (!server.addMasked(message)) onRefused?.(index, message);
  }
  const survivors = server.closeMasked();
  // Format 2 keeps each confirmation as {from, signature}: what it confirms is the survivor list just fixed, so a
  // signature on any other list fails here as it would have at the coordinator. (Format 1 carried the list in each,
  // n² bytes at n organisations.)
  const confirmation = (m: unknown) =>
    m !== null && typeof m === 'object' && !('body' in m)
      ? { ...m, stage: 'consistency', context: params.context, body: { survivors } }
      : m;
  server.collectConsistency(
    material.consistency.map((m) => parse(ConsistencySchema, confirmation(m), 'consistency')),
  );
  const out = await server.unmask(material.unmask.map((m) => parse(UnmaskSchema, m, 'unmask')));
  return { ...out, rejected: server.rejected.map((e) => e.message) };
}

/**
 * Each survivor's update decoded on its own, for a robust rule (the spec allows one only without SecAgg, so the
 * coordinator holds every vector): Δᵢ = (wᵢΔᵢ)/wᵢ. The quantization step of wᵢΔᵢ is sized for the largest weight,
 * so a small weight costs its own update precision, never another's.
 */
function plainResults(
  plain: ReadonlyMap<string, Uint32Array> | undefined,
  survivors: readonly string[],
  layout: VectorLayout,
  encoding: ReturnType<typeof encodingOf>,
): ClientResult[] {
  if (plain === undefined)
    throw new AilinkError(
      'AGG_REFUSED_UNDER_SECAGG',
      'expected the plain updates for a robust strategy, got only SecAgg material, which hides them: choose fedavg with SecAgg, or turn SecAgg off',
    );
  return survivors.map((a) => {
    const one = decodeWeightedSum(plain.get(a)!.subarray(0, layout.update + layout.weight), encoding, 1);
    const update = new Float32Array(one.sum.length);
    for (let i = 0; i < update.length; i++) update[i] = one.sum[i]! / one.totalWeight;
    return { update, weight: one.totalWeight };
  });
}

/**
 * The noisy sum of a distributed-DP round → Σ clip(Δᵢ) + noise/s and Σ wᵢ: the update words are read in the window
 * centred on their noise-free midpoint (noise may take them below 0), the weight word, which carries no noise, as is.
 */
function decodeNoisyWeightedSum(
  sum: Uint32Array,
  encoding: ReturnType<typeof encodingOf>,
  count: number,
  into: Float32Array,
): { sum: Float32Array; totalWeight: number } {
  checkWeightedEncoding(encoding, count);
  const quantization = {
    range: encoding.quantization.range * encoding.maxWeight,
    bits: encoding.quantization.bits,
  };
  return {
    sum: decodeNoisySum(sum.subarray(0, sum.length - 1), quantization, count, into),
    totalWeight: sum[sum.length - 1]!,
  };
}

/**
 * Concludes an attempt: unmasks (or sums) the inputs and applies what the round's kind asks of the sum — the
 * client-side evaluation, and in a training round the spec's strategy (wrapped in central DP when the spec has it;
 * under distributed DP the noise is already in the sum).
 * Statistics rounds return the sum only (the caller turns it into the preprocessing).
 * @throws ROUND_UPDATE_REFUSED with fewer survivors than the spec's minimum; SECAGG_ABORTED / SECAGG_SHARE_INVALID
 *   when the material cannot unmask; AGG_* from decoding and the strategy
 */
export async function concludeAttempt(input: ConcludeInput): Promise<Conclusion> {
  const { spec } = input;
  const layout = vectorLayout(spec, input.kind);
  let sum: Uint32Array;
  let survivors: string[];
  let rejected: string[] = [];
  if (input.unmasked !== undefined) {
    sum = input.unmasked.sum;
    survivors = [...input.unmasked.survivors];
  } else if (input.secagg !== undefined) {
    ({ sum, survivors, rejected } = await unmaskMaterial(
      input.secagg.params,
      input.secagg.material,
      input.secagg.onRefused,
    ));
  } else {
    if (input.plain === undefined)
      throw new AilinkError(
        'INTERNAL',
        'expected concludeAttempt to get the SecAgg material or the plain updates, got neither (a bug in the caller)',
      );
    survivors = [...input.plain.keys()].sort();
    sum = new Uint32Array(layout.dimension);
    for (const a of survivors) addInto(sum, input.plain.get(a)!);
  }
  // SecAgg+ only needs each survivor's neighbourhood alive, which an empty or tiny set satisfies trivially: the
  // task's floor on survivors keeps a sum of too few inputs from revealing too much of each.
  if (survivors.length < spec.cohort.min)
    throw new AilinkError(
      'ROUND_UPDATE_REFUSED',
      `expected at least ${spec.cohort.min} survivors, got ${survivors.length}`,
    );
  const base = {
    sum,
    survivors,
    rejected,
    decoded: null,
    next: null,
    modelHash: null,
    examples: 0,
  };
  if (layout.kind === 'statistics') return { ...base, evaluation: null };
  const evaluation =
    layout.evaluation === 0
      ? null
      : decodeEvaluationSum(sum.subarray(layout.update + layout.weight), survivors.length);
  if (layout.kind === 'evaluation') return { ...base, evaluation };
  const encoding = encodingOf(spec);
  checkWeightedEncoding(encoding, survivors.length);
  // The update's words are decoded into their own bytes (nothing reads them after): a second vector of the model's
  // size would be 400 MB at 100M weights. The weight and evaluation words after them stay words.
  const inPlace = new Float32Array(sum.buffer, sum.byteOffset, layout.update);
  const words = sum.subarray(0, layout.update + layout.weight);
  const decoded = isDistributedDp(spec)
    ? decodeNoisyWeightedSum(words, encoding, survivors.length, inPlace)
    : decodeWeightedSum(words, encoding, survivors.length, inPlace);
  let weighted: WeightedSum = decoded;
  if (isDistributedDp(spec)) {
    // The noise is already in the sum. As central DP does, average over the cohort the task planned, not over the
    // survivors (their count is public, but DP-FedAvg's fixed denominator keeps the estimator's scale data-free).
    if (decoded.totalWeight !== survivors.length)
      throw new AilinkError(
        'AGG_INVALID_INPUT',
        `expected a total weight of ${survivors.length} (every update of a distributed-DP task weighs 1), got ${decoded.totalWeight}`,
      );
    weighted = { sum: decoded.sum, totalWeight: spec.cohort.size };
  } else if (spec.dp !== null) {
    if (input.noise === undefined)
      throw new AilinkError(
        'INTERNAL',
        'expected a noise source for a task with central DP, got none (a bug in the caller: pass `noise`)',
      );
    weighted = privatizeSum(decoded, {
      clipNorm: spec.dp.clipNorm,
      noiseMultiplier: spec.dp.noiseMultiplier,
      clients: survivors.length,
      plannedClients: spec.cohort.size,
      random: input.noise,
    });
  }
  const strategy = strategyOf(spec);
  const next = strategy.aggregate(
    input.start,
    strategy.needsPlaintextUpdates ? plainResults(input.plain, survivors, layout, encoding) : weighted,
  );
  return {
    ...base,
    evaluation,
    decoded,
    next,
    modelHash: modelHashOf(spec.model.name, next.global),
    // Under DP every update weighs 1: the clients that contributed.
    examples: decoded.totalWeight,
  };
}
