import { createHash } from 'node:crypto';
import { z } from 'zod';
import { signMessage, verifyMessage } from '../aggregation/index.ts';
import type {
  AdvertiseBody,
  ConsistencyBody,
  SharesBody,
  Signed,
  UnmaskBody,
} from '../aggregation/secagg.ts';
import { isAddress } from '../shared/account.ts';
import {
  concatBytes,
  framedValueStream,
  fromHex,
  fromLE32InPlace,
  readLE32,
  toHex,
} from '../shared/bytes.ts';
import { canonicalJson } from '../shared/canonical.ts';
import { AilinkError } from '../shared/errors.ts';

/**
 * The round protocol between a coordinator and its participants, shared by both (and by auditors):
 * - the coordinator announces each stage, signed with the task's server key — the cohort and model at the start, then
 *   the SecAgg material each participant needs (adverts, sealed shares, survivors, consistency signatures), then the
 *   outcome; gossip carries its header, a participant fetches its own view over a direct stream (`view`;
 *   announcement.ts);
 * - a participant answers each stage over a direct stream (`submit`), with the SecAgg state machines' signed messages,
 *   except the masked update itself, which travels through storage: the participant submits a signed commitment to
 *   its fid and digest.
 * Everything is JSON with bytes as lowercase hex; every inbound message is validated here, once.
 */

export const ROUND_PROTOCOL = '/ailink/round/1.0.0';
export const taskTopic = (task: string) => `/ailink/task/${task}/1`;
/** Largest request or reply on the round protocol (the masked update is not among them: it goes to storage). */
export const MAX_ROUND_MESSAGE = 1024 * 1024;

export const STAGES = ['advertise', 'shares', 'masked', 'consistency', 'unmask'] as const;
export type RoundStage = (typeof STAGES)[number];
export type Phase = RoundStage | 'done' | 'aborted';

export const hexOf = (bytes: number) =>
  z
    .string()
    .regex(new RegExp(`^[0-9a-f]{${bytes * 2}}$`), `expected ${bytes} bytes as hex`)
    .transform((h) => fromHex(h));
export const hexUpTo = (bytes: number) =>
  z
    .string()
    .max(bytes * 2)
    .regex(/^(?:[0-9a-f]{2})*$/, 'expected bytes as lowercase hex')
    .transform((h) => fromHex(h));
export const hash = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex characters');
export const account = z.string().max(64).refine(isAddress, 'expected an SS58 address');
export const taskId = z.string().regex(/^[A-Za-z0-9._-]{1,64}$/);
export const nat = z.number().int().nonnegative();
/** A round number: -1 is a task's statistics round (before round 0, never anchored). */
export const roundNumber = z.number().int().min(-1);
export const MAX_COHORT = 1000;

function signedSchema<S extends RoundStage, B extends z.ZodType>(stage: S, body: B) {
  return z
    .object({
      stage: z.literal(stage),
      context: z.string().max(256),
      from: account,
      body,
      signature: hexOf(64),
    })
    .strict();
}

export const AdvertSchema = signedSchema('advertise', z.object({ cPk: hexOf(32), sPk: hexOf(32) }).strict());
export const SharesSchema = signedSchema(
  'shares',
  z
    .object({
      sealed: z.array(z.object({ to: account, ciphertext: hexUpTo(4096) }).strict()).max(MAX_COHORT),
    })
    .strict(),
);
export const ConsistencySchema = signedSchema(
  'consistency',
  z.object({ survivors: z.array(account).max(MAX_COHORT) }).strict(),
);
export const UnmaskSchema = signedSchema(
  'unmask',
  z
    .object({
      revealed: z
        .array(z.object({ of: account, kind: z.enum(['self', 'secret']), share: hexUpTo(4096) }).strict())
        .max(MAX_COHORT),
    })
    .strict(),
);

/**
 * A participant's signed commitment to its stored (masked) update: the fid and the SHA-256 of the object's bytes, and
 * the fingerprint of the data it trained on (`examplesFingerprint`, src/participant/examples.ts), so an auditor can hold it to its declared data.
 */
export const CommitmentSchema = z
  .object({ fid: hash, digest: hash, dataset: hash, signature: hexOf(64) })
  .strict();
export type Commitment = z.infer<typeof CommitmentSchema>;

const submitBase = {
  kind: z.literal('submit'),
  task: taskId,
  round: roundNumber,
  attempt: nat,
  from: account,
};
const SubmitSchema = z.discriminatedUnion('stage', [
  z.object({ ...submitBase, stage: z.literal('advertise'), message: AdvertSchema }).strict(),
  z.object({ ...submitBase, stage: z.literal('shares'), message: SharesSchema }).strict(),
  z.object({ ...submitBase, stage: z.literal('masked'), message: CommitmentSchema }).strict(),
  z.object({ ...submitBase, stage: z.literal('consistency'), message: ConsistencySchema }).strict(),
  z.object({ ...submitBase, stage: z.literal('unmask'), message: UnmaskSchema }).strict(),
]);
export const RequestSchema = z.union([
  SubmitSchema,
  z
    .object({
      kind: z.literal('view'),
      task: taskId,
      from: account,
      /** The newest announcement the participant holds (`announcementKey`): unchanged, the reply carries none. */
      have: z.string().max(64).optional(),
    })
    .strict(),
]);
export type RoundRequest = z.infer<typeof RequestSchema>;
export type Submission = Extract<RoundRequest, { kind: 'submit' }>;

/** @throws ROUND_MESSAGE_INVALID naming the first problems */
export function parseRequest(raw: unknown): RoundRequest {
  const parsed = RequestSchema.safeParse(raw);
  if (!parsed.success) throw invalid('round request', parsed.error);
  return parsed.data;
}

/** The error for a message that does not parse: names its first problems. */
export function invalid(what: string, error: z.ZodError): AilinkError {
  const problems = error.issues.slice(0, 5).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
  return new AilinkError('ROUND_MESSAGE_INVALID', `malformed ${what}: ${problems.join('; ')}`);
}

/** Bytes become lowercase hex, everything else stays: the JSON form of SecAgg messages and announcement bodies. */
export function toWire(value: unknown): unknown {
  if (value instanceof Uint8Array) return toHex(value);
  if (Array.isArray(value)) return value.map(toWire);
  if (value !== null && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toWire(v)]));
  return value;
}

/** The parsed forms are exactly the state machines' message types. */
export type Advert = Signed<AdvertiseBody>;
export type SharesMessage = Signed<SharesBody>;
export type ConsistencyMessage = Signed<ConsistencyBody>;
export type UnmaskMessage = Signed<UnmaskBody>;

// --- joining -------------------------------------------------------------------------------------------------------

/** How far the time a join was signed may lie from the coordinator's clock. */
export const JOIN_WINDOW_MS = 5 * 60_000;

/**
 * Blocks one admission batch takes from its submission to the coordinator's answer: included in the next block or
 * the one after, then finalized (GRANDPA finalises within two or three blocks when the network is healthy) and applied
 * by the coordinator's index.
 */
export const BLOCKS_PER_ADMISSION = 5;
/**
 * The bounds of a join deadline. The floor covers a coordinator and chain on a loaded machine (a dev chain has taken
 * over 15 s to answer one submission), whatever block time the chain states. The ceiling is what a participant grants
 * a coordinator at most, whatever queue it reports: a coordinator that is gone or lying must not hold a join forever.
 * 15 min fits a full queue (MAX_QUEUED_ADMISSIONS, 8 batches) behind one in flight at 12 s blocks (≈ 10 min).
 */
export const JOIN_DEADLINE_MIN_MS = 60_000;
export const JOIN_DEADLINE_MAX_MS = 15 * 60_000;

/** What a join now waits behind at the coordinator (its `GET /v1/info` `admissions`). */
export interface AdmissionLoad {
  readonly queued: number;
  readonly inFlight: number;
  readonly batch: number;
}

/**
 * How long a participant waits for the answer to its join: BLOCKS_PER_ADMISSION blocks for each batch ahead of its
 * own (the one in flight, the queued ones at `batch` per extrinsic) and for its own, at the chain's block time, kept
 * within JOIN_DEADLINE_MIN_MS..JOIN_DEADLINE_MAX_MS. The block time comes from the participant's own chain connection;
 * the load from the coordinator, so it is only believed within those bounds, and a load that is not numbers counts as
 * one batch in flight.
 */
export function joinDeadlineMs(blockTimeMs: number, load: AdmissionLoad | undefined): number {
  const whole = (n: unknown) =>
    typeof n === 'number' && Number.isFinite(n) && n >= 0 ? Math.floor(n) : undefined;
  const queued = whole(load?.queued);
  const inFlight = whole(load?.inFlight);
  const batch = whole(load?.batch);
  const batches =
    queued === undefined || inFlight === undefined || batch === undefined || batch === 0
      ? 2
      : (inFlight > 0 ? 1 : 0) + Math.ceil((queued + 1) / batch);
  const block = Number.isFinite(blockTimeMs) && blockTimeMs > 0 ? blockTimeMs : 0;
  return Math.min(
    JOIN_DEADLINE_MAX_MS,
    Math.max(JOIN_DEADLINE_MIN_MS, batches * BLOCKS_PER_ADMISSION * block),
  );
}

export interface JoinClaim {
  readonly task: string;
  readonly account: string;
  readonly identityKey: string;
  readonly readerKey: string;
  /** Milliseconds since the epoch, by the participant's clock. */
  readonly signedAt: number;
  /** The libp2p peer id its round traffic comes from: the coordinator counts only that peer's requests. */
  readonly peerId: string;
}

/**
 * What a participant signs with its account to join, besides its admission. The admission goes on chain, so anyone can
 * read it and send it again; this signature binds the reader key that private models are wrapped for, the peer its
 * round traffic comes from, and the time, so neither someone else's reader key or peer nor an older join (bringing
 * back a key the participant replaced) gets in.
 */
export const joinMessage = (j: JoinClaim) =>
  new TextEncoder().encode(
    `ailink/join/v2\n${j.task}\n${j.account}\n${j.identityKey}\n${j.readerKey}\n${j.signedAt}\n${j.peerId}`,
  );

// --- the attempt's graph seed, drawn by the chain ---------------------------------------------------------------

/** One cohort member as an attempt lists it: its account and the round key the chain admitted it with. */
export interface CohortMember {
  readonly account: string;
  readonly identityKey: string;
}

/**
 * What the coordinator commits to on chain (`provenance.drawSeed`) before the attempt's graph seed exists: SHA-256
 * of the cohort's canonical JSON, members sorted by account, so that the seed cannot be drawn first and the cohort
 * picked to suit it.
 */
export const cohortDigest = (cohort: readonly CohortMember[]): string =>
  sha256Hex(
    new TextEncoder().encode(
      canonicalJson(
        [...cohort]
          .map((c) => ({ account: c.account, identityKey: c.identityKey }))
          .sort((a, b) => (a.account < b.account ? -1 : a.account > b.account ? 1 : 0)),
      ),
    ),
  );

/**
 * The SecAgg neighbour graph's seed for one attempt: derived from the hash of the block that recorded the cohort
 * commitment (hex, no 0x), bound to the attempt so that one block's hash seeds no two graphs alike. Nobody chooses
 * it: the coordinator had to fix the cohort before the block existed.
 */
export const graphSeedOf = (blockHash: string, task: string, round: number, attempt: number): string =>
  sha256Hex(
    new TextEncoder().encode(
      `ailink/secagg/graph-seed/v1\n${blockHash}\n${roundContext(task, round, attempt)}`,
    ),
  );

// --- commitments and the stored update --------------------------------------------------------------------------

/** The SecAgg context of one attempt of one round: binds every key, share and signature to it. */
export const roundContext = (task: string, round: number, attempt: number) => `${task}/${round}/${attempt}`;

type Committed = Omit<Commitment, 'signature'>;

const commitmentBytes = (context: string, c: Committed) =>
  new TextEncoder().encode(`ailink/round/commitment/v2\n${context}\n${c.fid}\n${c.digest}\n${c.dataset}`);

export function signCommitment(identityKey: Uint8Array, context: string, c: Committed): Commitment {
  const { fid, digest, dataset } = c;
  return { fid, digest, dataset, signature: signMessage(identityKey, commitmentBytes(context, c)) };
}

export function verifyCommitment(publicKey: Uint8Array, context: string, c: Commitment): boolean {
  return verifyMessage(publicKey, commitmentBytes(context, c), c.signature);
}

const UPDATE_MAGIC = 'AILU';
const UpdateHeaderSchema = z
  .object({
    context: z.string().max(256),
    from: account,
    /** The SecAgg state machine's signature over its masked message; null when the task runs without SecAgg. */
    signature: z
      .string()
      .regex(/^[0-9a-f]{128}$/)
      .nullable(),
    words: nat,
  })
  .strict();

export interface StoredUpdate {
  readonly context: string;
  readonly from: string;
  readonly signature: Uint8Array | null;
  /** The masked (or, without SecAgg, plainly quantized) weighted update, one more word for the weight. */
  readonly words: Uint32Array;
}

/** 'AILU' ‖ u32 header length ‖ header JSON ‖ the words, little-endian: 1.0× the size of a float32 update. */
export function encodeStoredUpdate(u: StoredUpdate): Uint8Array {
  return concatBytes([...storedUpdateStream(u).chunks]);
}

/**
 * The bytes of `encodeStoredUpdate` and their size, as chunks of at most 4 MiB after the header that view the words
 * (`framedValueStream`), for a streamed put: a 400 MB update is stored without a copy of it. The words must not change
 * until the chunks are consumed.
 */
export const storedUpdateStream = (u: StoredUpdate) =>
  framedValueStream(
    UPDATE_MAGIC,
    new TextEncoder().encode(
      JSON.stringify({
        context: u.context,
        from: u.from,
        signature: u.signature === null ? null : toHex(u.signature),
        words: u.words.length,
      }),
    ),
    u.words,
  );

/** Longest header a stored update may carry (a context, an address, a signature: a few hundred bytes in practice). */
const MAX_UPDATE_HEADER_BYTES = 4096;

/** The most bytes a stored update of `words` words can take: what a reader fetches at most. */
export const storedUpdateMaxBytes = (words: number): number => 8 + MAX_UPDATE_HEADER_BYTES + 4 * words;

/** A stored update's header, checked against the bytes that follow it; `at` is where its words start. */
export interface StoredUpdateHeader {
  readonly context: string;
  readonly from: string;
  readonly signature: Uint8Array | null;
  readonly at: number;
}

/**
 * Reads and checks a stored update's frame and header — magic, header, the word count declared and present — without
 * copying its words: what a reader that only needs who made it for which round pays. `bytes` may be only the update's
 * beginning (at least its frame and header) when `total` says how long the whole is.
 * @throws ROUND_MESSAGE_INVALID unless the bytes are a well-formed update of exactly `words` words
 */
export function readStoredUpdateHeader(
  bytes: Uint8Array,
  words: number,
  total = bytes.byteLength,
): StoredUpdateHeader {
  const bad = (why: string) => new AilinkError('ROUND_MESSAGE_INVALID', `stored update: ${why}`);
  if (bytes.byteLength < 8 || new TextDecoder().decode(bytes.subarray(0, 4)) !== UPDATE_MAGIC)
    throw bad('expected the AILU magic');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getUint32(4, true);
  if (headerLength > MAX_UPDATE_HEADER_BYTES || 8 + headerLength > bytes.byteLength)
    throw bad(`header length ${headerLength} out of range`);
  let header: z.infer<typeof UpdateHeaderSchema>;
  try {
    header = UpdateHeaderSchema.parse(
      JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength))),
    );
  } catch (cause) {
    throw bad(`malformed header (${(cause as Error).message.slice(0, 200)})`);
  }
  const base = 8 + headerLength;
  if (header.words !== words || total !== base + 4 * words)
    throw bad(`expected ${words} words, got ${header.words} declared and ${(total - base) / 4} present`);
  return {
    context: header.context,
    from: header.from,
    signature: header.signature === null ? null : fromHex(header.signature),
    at: base,
  };
}

/** @throws ROUND_MESSAGE_INVALID unless the bytes are a well-formed update of exactly `words` words */
export function decodeStoredUpdate(bytes: Uint8Array, words: number): StoredUpdate {
  const { at, ...header } = readStoredUpdateHeader(bytes, words);
  return { ...header, words: readLE32(Uint32Array, bytes, at, words) };
}

/**
 * A stored update read as it streams: its header checked, its words copied into `into` (made native), no copy of the
 * update whole and nothing written anywhere. The stream is always read to its end, so a caller hashing it on the way
 * has the whole digest even when the update is refused. `into.length` is the word count expected.
 * @throws ROUND_MESSAGE_INVALID where decodeStoredUpdate would
 */
export async function readStoredUpdateStream(
  chunks: AsyncIterable<Uint8Array>,
  into: Uint32Array,
): Promise<StoredUpdate> {
  const head = new Uint8Array(8 + MAX_UPDATE_HEADER_BYTES);
  const frame = new DataView(head.buffer);
  const body = new Uint8Array(into.buffer, into.byteOffset, into.byteLength);
  let headFilled = 0;
  let header: StoredUpdateHeader | undefined;
  let failure: unknown;
  /** readStoredUpdateHeader over what the head holds: the header, or why not. */
  const parse = (total: number) => {
    try {
      header = readStoredUpdateHeader(head.subarray(0, headFilled), into.length, total);
    } catch (err) {
      failure = err;
    }
  };
  let position = 0;
  for await (const chunk of chunks) {
    let off = 0;
    while (header === undefined && failure === undefined) {
      // The frame's 8 bytes first; they say how long the header after them is.
      const want = headFilled < 8 ? 8 : 8 + frame.getUint32(4, true);
      // The words' total is checked at the end, against what actually came.
      if (headFilled >= 8 && (headFilled === want || want > head.byteLength)) parse(want + body.byteLength);
      else if (off === chunk.byteLength) break;
      else {
        const n = Math.min(chunk.byteLength - off, want - headFilled);
        head.set(chunk.subarray(off, off + n), headFilled);
        headFilled += n;
        off += n;
      }
    }
    if (header !== undefined && failure === undefined) {
      const at = position + off - header.at;
      const n = Math.min(chunk.byteLength - off, body.byteLength - at);
      if (n > 0) body.set(chunk.subarray(off, off + n), at);
    }
    position += chunk.byteLength;
  }
  if (header === undefined && failure === undefined) parse(position);
  if (failure !== undefined) throw failure;
  const h = header!;
  if (position !== h.at + body.byteLength)
    throw new AilinkError(
      'ROUND_MESSAGE_INVALID',
      `stored update: expected ${into.length} words, got ${(position - h.at) / 4} present`,
    );
  return { context: h.context, from: h.from, signature: h.signature, words: fromLE32InPlace(into) };
}

export const sha256Hex = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
