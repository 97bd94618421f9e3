import { createHash, createHmac } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  byteStreamFromSeed,
  createSecAggServer,
  type SecAggServer,
  type StrategyState,
  verifySigned,
} from '../aggregation/index.ts';
import { fromHex, fromLE32InPlace, toHex } from '../shared/bytes.ts';
import { canonicalJson } from '../shared/canonical.ts';
import type { Clock, Random } from '../shared/clock.ts';
import { AilinkError, hasCode } from '../shared/errors.ts';
import { failpoint } from '../shared/failpoint.ts';
import { createLimiter, settledAll } from '../shared/limit.ts';
import { type DeclarationBatch, declarationBatch } from '../storage/client/index.ts';
import type { TabularSchema } from '../task/data-schema.ts';
import {
  type AnnouncementHeader,
  type AnnouncementView,
  aggregationMaterialStream,
  type Commitment,
  type ConcludeInput,
  type ConsistencyMessage,
  cohortDigest,
  concludeAttempt,
  type EvaluationSummary,
  gossipOf,
  graphSeedOf,
  isCentralDp,
  type Manifest,
  type MaterialHead,
  type MaterialUpdateSource,
  manifestBytes,
  materialAuditorsOf,
  materialObjectName,
  maxAttemptsOf,
  modelAccessOf,
  modelBytesStream,
  type Phase,
  parseManifest,
  preprocessingFromSum,
  privacyRecord,
  type RoundKind,
  type RoundStage,
  readStoredUpdateHeader,
  readStoredUpdateStream,
  recordsAggregationMaterial,
  roundContext,
  STAGES,
  type StoredUpdate,
  secAggShape,
  sha256Hex,
  signAnnouncement,
  storedUpdateMaxBytes,
  type TaskSpec,
  toWire,
  type VectorLayout,
  vectorLayout,
  verifyCommitment,
  type WireAnnouncement,
} from '../task/index.ts';
import {
  AdvertSchema,
  CommitmentSchema,
  ConsistencySchema,
  SharesSchema,
  UnmaskSchema,
} from '../task/messages.ts';
import { createUpdateSpool, type UpdateSpool } from './spool.ts';
import {
  type AttemptRow,
  type AttemptSetup,
  type CoordinatorStore,
  type ParticipantRow,
  type RoundRow,
  STATISTICS_ROUND,
  type StatisticsRow,
  type TaskRow,
} from './store.ts';

/**
 * The unmask announcement's body: each confirming survivor gets its neighbours' signatures, without the list they
 * signed (its own, by then): k entries a member, where relaying every signature with its list grew as n².
 */
export function unmaskBody(
  server: Pick<SecAggServer, 'neighbours'>,
  confirmations: readonly ConsistencyMessage[],
): { signatures: Record<string, { from: string; signature: string }[]> } {
  const signatures: Record<string, { from: string; signature: string }[]> = {};
  for (const { from: to } of confirmations) {
    const near = new Set(server.neighbours(to));
    signatures[to] = confirmations
      .filter((m) => near.has(m.from))
      .map((m) => ({ from: m.from, signature: toHex(m.signature) }));
  }
  return { signatures };
}

/**
 * Why a task ends when a round used up its attempts: said in the last attempt's signed announcement to the
 * organisations and recorded on chain with the stop (at most 1000 characters, the chain's bound).
 */
export function roundEndedReason(
  round: number,
  attempts: number,
  max: number,
  last: string | null | undefined,
): string {
  const which = round === STATISTICS_ROUND ? 'the statistics round' : `round ${round}`;
  const text = `${which} ended after ${attempts} attempts (maxAttempts ${max}); the last: ${last ?? 'aborted'}`;
  return text.length <= 1000 ? text : `${text.slice(0, 999)}…`;
}

/** Where round outputs go and inputs come from: storage objects, the chain, evaluation, gossip. */
export interface RoundDeps {
  readonly store: CoordinatorStore;
  readonly objects: {
    /**
     * Stores public bytes (specs, manifests, models of tasks without model terms) and returns the fid. A stream is
     * read once, as it is stored (the recompute material, written from the spool). Given a batch, the object is
     * declared later, with the round's anchor (`ledger.recordRound`).
     */
    put(bytes: ObjectSource, name: string, batch?: DeclarationBatch): Promise<string>;
    /**
     * Stores a private model: encrypted, its data key wrapped for the coordinator and for `readerKeys` (X25519, hex).
     * Given a batch, declared later with it, as `put`.
     */
    putModel(
      bytes: ObjectSource,
      name: string,
      readerKeys: readonly string[],
      batch?: DeclarationBatch,
    ): Promise<string>;
    /**
     * Reads an object (a participant's update, encrypted for the coordinator) within the deadline; one recorded as
     * larger than `maxBytes` is OBJECT_TOO_LARGE without being fetched.
     */
    get(fid: string, options: { signal: AbortSignal; maxBytes?: number }): Promise<Uint8Array>;
    /** `get` as a stream of chunks, for an object too large to hold whole and its pieces (an update). */
    read(fid: string, options: { signal: AbortSignal; maxBytes?: number }): AsyncIterable<Uint8Array>;
    /** The objects the coordinator's account owns on chain whose name begins with `prefix`, with their names. */
    owned(prefix: string): Promise<{ fid: string; name: string | null }[]>;
    /** Deletes the coordinator's own objects for good (one transaction); one already gone is no error. */
    delete(fids: readonly string[]): Promise<void>;
  };
  readonly ledger: {
    /**
     * Anchors the round's manifest (`provenance.recordRound`), in one extrinsic with the declarations of `batch`'s
     * objects (the round's model, material and manifest) and, given `next`, the next attempt's seed draw
     * (`provenance.drawSeed` of that cohort digest): one block for the round's close and the next round's draw.
     */
    recordRound(
      task: string,
      round: number,
      manifestFid: string,
      digest: string,
      batch?: DeclarationBatch,
      next?: { round: number; attempt: number; cohort: string },
    ): Promise<void>;
    /** Rounds already anchored for the task, from the chain's index. */
    anchored(task: string): { round: number; manifest: string; digest: string }[];
    /**
     * Puts a stored object under market terms (`market.setTerms`): readers read free, others pay `price` planck. Given
     * a batch, the terms go on chain with it, after the object's declaration.
     */
    setTerms(
      fid: string,
      readers: readonly string[],
      price: string | null,
      batch?: DeclarationBatch,
    ): Promise<void>;
    /**
     * Commits an attempt's cohort (its digest) on chain (`provenance.drawSeed`) and returns the hash of the block
     * that recorded it: the randomness of the attempt's SecAgg graph.
     */
    drawSeed(task: string, round: number, attempt: number, cohort: string): Promise<string>;
    /**
     * The seed the chain drew for this attempt, if any (a draw that landed before a crash, or one drawn ahead with the
     * previous round's close): the cohort's digest and the recording block's hash.
     */
    seedOf(task: string, round: number, attempt: number): { cohort: string; blockHash: string } | undefined;
  };
  /** The global model's metrics on the coordinator's own test set; null without one (organisations score it). */
  evaluate(
    spec: TaskSpec,
    weights: Float32Array,
  ): Promise<{ accuracy: number; loss: number; examples: number } | null>;
  /** Gossips an announcement (`gossipOf`): members fetch their view of what it leaves out (`view`). */
  publish(message: AnnouncementHeader | AnnouncementView): Promise<void>;
  /**
   * Where attempts spool the survivors' updates until the recompute material is stored (spool.ts): the node's data
   * dir; by default a directory under the OS's temporary one.
   */
  readonly spoolDir?: string;
  /** How many bytes of updates may be fetched at once (`fetchConcurrency`); by default 256 MiB. */
  readonly fetchBudgetBytes?: number;
  readonly clock: Clock;
  readonly random: Random;
  readonly serverKey: Uint8Array;
  readonly code: Manifest['code'];
  log(line: string): void;
  /** Told of every stage an attempt enters (progress bars, tests). */
  onPhase?(key: { task: string; round: number; attempt: number }, phase: Phase): void;
  /**
   * The next round's cohort, drawn as a round closes so that its graph seed is drawn in the close's own extrinsic (a
   * block fewer each round); null when none is to be drawn now (no next round, too few online, a private model whose
   * readers the next round's start model fixes). The caller keeps it for the attempt it opens next (`openAttempt`).
   */
  nextCohort?(closing: {
    task: string;
    round: number;
    kind: RoundKind;
    survivors: number;
  }): PredrawnCohort | null;
}

/** An object's bytes, whole or as a stream of known size read once. */
export type ObjectSource = Uint8Array | { readonly size: number; readonly chunks: AsyncIterable<Uint8Array> };

/** The reader keys of the task's joined participants (rows from before reader keys have none), deduplicated. */
export function readerKeysOf(participants: readonly Pick<ParticipantRow, 'readerKey'>[]): string[] {
  return [...new Set(participants.map((p) => p.readerKey).filter((k) => k !== ''))].sort();
}

/** A model as an object to store: its bytes streamed as views of the weights (`modelBytesStream`), never copied whole. */
export function modelObject(
  name: string,
  weights: Float32Array,
): { readonly size: number; readonly chunks: AsyncIterable<Uint8Array> } {
  const { size, chunks } = modelBytesStream(name, weights);
  return {
    size,
    chunks: (async function* () {
      yield* chunks;
    })(),
  };
}

/**
 * Stores a global model (or the initial one) as the task says: public when the task has no model terms, else
 * encrypted for the coordinator and `readerKeys` and put under the task's terms. Returns the fid and, for a private
 * model, the reader keys it is wrapped for.
 */
export async function storeModel(
  deps: Pick<RoundDeps, 'objects' | 'ledger'>,
  spec: TaskSpec,
  bytes: ObjectSource,
  name: string,
  readerKeys: readonly string[],
  /** Declares the model later with this batch (and a private model's terms after it). */
  batch?: DeclarationBatch,
): Promise<{ fid: string; readers?: string[] }> {
  const access = modelAccessOf(spec);
  if (access === null) return { fid: await deps.objects.put(bytes, name, batch) };
  const readers = [...new Set(readerKeys)].sort();
  const fid = await deps.objects.putModel(bytes, name, readers, batch);
  await deps.ledger.setTerms(fid, access.readers, access.price, batch);
  return { fid, readers };
}

/** What a round produced, for the caller's table and the HTTP API. */
export type AttemptOutcome =
  | { readonly kind: 'done'; readonly row: RoundRow }
  | { readonly kind: 'statistics'; readonly row: StatisticsRow }
  | { readonly kind: 'aborted'; readonly reason: string };

/**
 * The seed of one attempt's central DP noise: secret (keyed by the coordinator's server key) yet the same after a
 * restart, so a `finish` run again reproduces the model it may already have anchored. Only the task's named auditors
 * get it, inside the sealed recompute material.
 */
const dpNoiseSeed = (serverKey: Uint8Array, context: string): Uint8Array =>
  new Uint8Array(createHmac('sha256', serverKey).update(`ailink/dp-noise/v1\n${context}`).digest());

const STAGE_DEADLINE: Record<RoundStage, keyof TaskSpec['deadlines']> = {
  advertise: 'advertiseMs',
  shares: 'sharesMs',
  masked: 'trainMs',
  consistency: 'consistencyMs',
  unmask: 'unmaskMs',
};

/**
 * One attempt of one round, driven through its stages. Every stage: announce (signed, gossiped), accept answers until
 * everyone expected has answered or the deadline passes (the silent become dropouts), then feed the SecAgg server.
 * `accept` is called by the transport for each inbound submission; it validates and persists before acknowledging.
 * Built from the store, so a coordinator restarted mid-attempt resumes it: completed stages are replayed from their
 * stored messages (the server is deterministic), the open stage keeps its answers and its deadline.
 */
export class AttemptRunner {
  private server: ReturnType<typeof createSecAggServer> | undefined;
  private wake: (() => void) | undefined;
  /** Each committed update's fetch: settled once it was added to the sum (or spooled), refused or timed out. */
  private readonly fetches = new Map<string, Promise<void>>();
  /** Without SecAgg: each valid update's words (a robust strategy needs every vector; no masks hide them). */
  private readonly plain = new Map<string, Uint32Array>();
  /** Members whose committed update could not be fetched or was refused: dropouts the store's messages do not show. */
  private readonly refused = new Set<string>();
  private spool: UpdateSpool | undefined;
  /**
   * SecAgg: vectors that updates are read into, each back here once its words are in the sum. A fresh vector per
   * update left each one garbage until V8 collected it, which it did not between fetches: at 100M weights, with one
   * fetch slot, the coordinator held 2.2 GiB after three updates (bench:large), where the sum and a slot take 0.8.
   */
  private readonly wordBuffers: Uint32Array[] = [];
  private readonly fetchSlot: <T>(task: () => Promise<T>) => Promise<T>;
  private bytesMoved = 0;

  constructor(
    private readonly deps: RoundDeps,
    private readonly task: TaskRow,
    private attempt: AttemptRow,
    private readonly start: StrategyState,
    private readonly parent: { fid: string; digest: string } | null,
  ) {
    this.fetchSlot = createLimiter(fetchConcurrency(this.setup.dimension, deps.fetchBudgetBytes));
  }

  get phase(): string {
    return this.attempt.phase;
  }
  get key() {
    return { task: this.task.id, round: this.attempt.round, attempt: this.attempt.attempt };
  }
  get setup(): AttemptSetup {
    return this.attempt.setup;
  }
  get context(): string {
    return roundContext(this.task.id, this.attempt.round, this.attempt.attempt);
  }
  private get spec(): TaskSpec {
    return this.task.spec;
  }
  private get secagg(): boolean {
    return this.spec.secagg.enabled;
  }
  private get layout(): VectorLayout {
    return vectorLayout(this.spec, this.setup.kind ?? 'train');
  }
  /** The stages this task runs: without SecAgg only the round start and the update. */
  private get stages(): readonly RoundStage[] {
    return this.secagg ? STAGES : ['advertise', 'masked'];
  }

  /** Who must still answer the open stage. */
  expecting(): string[] {
    const stage = this.attempt.phase as RoundStage;
    const answered = new Set(this.deps.store.senders(this.key.task, this.key.round, this.key.attempt, stage));
    return this.expectedIn(stage).filter((a) => !answered.has(a));
  }

  private expectedIn(stage: RoundStage): string[] {
    if (this.server !== undefined) return this.server.expecting();
    // Without SecAgg: everyone in the cohort sends an update; nobody answers the round start.
    return stage === 'masked' ? this.setup.cohort.map((c) => c.account) : [];
  }

  /**
   * Validates and stores one submission. The same message twice is fine (a retry); a different one for a stage
   * already answered is ROUND_DUPLICATE; anything for another round, attempt or stage is ROUND_STALE.
   * @throws ROUND_STALE, ROUND_NOT_IN_COHORT, ROUND_DUPLICATE, ROUND_MESSAGE_INVALID, ROUND_SIGNATURE_INVALID
   */
  accept(stage: RoundStage, from: string, round: number, attempt: number, message: unknown): void {
    const k = this.key;
    if (round !== k.round || attempt !== k.attempt || stage !== this.attempt.phase) {
      throw new AilinkError(
        'ROUND_STALE',
        `expected a ${this.attempt.phase} message for round ${k.round} attempt ${k.attempt}, got ${stage} for round ${round} attempt ${attempt}`,
      );
    }
    const member = this.setup.cohort.find((c) => c.account === from);
    if (member === undefined)
      throw new AilinkError('ROUND_NOT_IN_COHORT', `${from} is not in the cohort of round ${k.round}`);
    if (!this.expectedIn(stage).includes(from)) {
      throw new AilinkError(
        'ROUND_STALE',
        `${from} is no longer expected in ${stage} (it dropped out earlier)`,
      );
    }
    const wire = toWire(message);
    if (stage === 'masked') {
      const c = CommitmentSchema.parse(wire);
      if (!verifyCommitment(fromHex(member.identityKey), this.context, c)) {
        throw new AilinkError(
          'ROUND_SIGNATURE_INVALID',
          `the commitment of ${from} is not signed by its admitted key`,
        );
      }
    } else {
      const schema = {
        advertise: AdvertSchema,
        shares: SharesSchema,
        consistency: ConsistencySchema,
        unmask: UnmaskSchema,
      }[stage];
      const parsed = schema.safeParse(wire);
      if (!parsed.success)
        throw new AilinkError('ROUND_MESSAGE_INVALID', `malformed ${stage} message from ${from}`);
      if (parsed.data.from !== from)
        throw new AilinkError(
          'ROUND_MESSAGE_INVALID',
          `a ${stage} message from ${from} names ${parsed.data.from}`,
        );
      try {
        verifySigned<unknown>(this.secAggParams(), stage, parsed.data);
      } catch (err) {
        throw new AilinkError('ROUND_SIGNATURE_INVALID', (err as Error).message);
      }
    }
    const stored = this.deps.store.message(k.task, k.round, k.attempt, stage, from);
    if (stored !== undefined) {
      if (JSON.stringify(stored) === JSON.stringify(wire)) return;
      throw new AilinkError('ROUND_DUPLICATE', `${from} already answered ${stage} with a different message`);
    }
    this.deps.store.addMessage(k.task, k.round, k.attempt, stage, from, wire);
    if (stage === 'masked') this.startFetch(from, CommitmentSchema.parse(wire));
    this.wake?.();
  }

  /** Runs the attempt from wherever it stands to done or aborted. */
  async run(signal: AbortSignal): Promise<AttemptOutcome> {
    try {
      await this.replay();
      for (;;) {
        const phase = this.attempt.phase as Phase;
        if (phase === 'done' || phase === 'aborted') break;
        await this.announceCurrent();
        await this.waitForAnswers(signal);
        await this.closeStage(phase);
      }
    } catch (err) {
      if (signal.aborted) throw err;
      const reason = hasCode(err) ? `${err.code}: ${err.message}` : (err as Error).message;
      await this.abort(reason);
      return { kind: 'aborted', reason };
    } finally {
      await this.spool?.close().catch(() => {});
    }
    if (this.attempt.phase === 'aborted')
      return { kind: 'aborted', reason: this.attempt.reason ?? 'aborted' };
    if (this.layout.kind === 'statistics') {
      const statistics = this.deps.store.statistics(this.key.task);
      if (statistics === undefined)
        throw new AilinkError(
          'INTERNAL',
          `expected a statistics record for task ${this.key.task} after its attempt finished, found none (a bug: report it with the coordinator log)`,
        );
      return { kind: 'statistics', row: statistics };
    }
    const row = this.deps.store.rounds(this.key.task).find((r) => r.round === this.key.round);
    if (row === undefined)
      throw new AilinkError(
        'INTERNAL',
        `expected a record of round ${this.key.round} of task ${this.key.task} after its attempt finished, found none (a bug: report it with the coordinator log)`,
      );
    return { kind: 'done', row };
  }

  private secAggParams() {
    return {
      context: this.context,
      identities: new Map(this.setup.cohort.map((c) => [c.account, fromHex(c.identityKey)])),
      k: this.setup.k,
      t: this.setup.t,
      graphSeed: fromHex(this.setup.graphSeed),
      dimension: this.setup.dimension,
    };
  }

  /** Rebuilds the SecAgg server's state from the stages this attempt has completed. */
  private async replay(): Promise<void> {
    if (!this.secagg) return;
    this.server = createSecAggServer(this.secAggParams(), { identityKey: this.deps.serverKey });
    const phaseAt = STAGES.indexOf(this.attempt.phase as RoundStage);
    const finished = phaseAt === -1 ? STAGES.length : phaseAt;
    // Updates whose commitments arrived before a restart are fetched again; once the survivors were announced, only
    // theirs, so the replayed server reaches exactly the state the participants saw.
    const k = this.key;
    const announced = this.deps.store.announcement(k.task, k.round, k.attempt, 'consistency') as
      | { body: { survivors: string[] } }
      | undefined;
    // Unmasking is the last step: closing it again is what finishing does.
    const fed = STAGES.slice(0, finished).filter((stage) => stage !== 'unmask');
    const beforeMasked = (stage: RoundStage) => STAGES.indexOf(stage) < STAGES.indexOf('masked');
    for (const stage of fed.filter(beforeMasked)) await this.feed(stage);
    // The fetches add into the server's sum, so they start once the shares that say who may send one are fed.
    for (const m of this.stored('masked')) {
      if (announced === undefined || announced.body.survivors.includes(m.sender))
        this.startFetch(m.sender, CommitmentSchema.parse(m.body));
    }
    for (const stage of fed.filter((stage) => !beforeMasked(stage))) await this.feed(stage);
  }

  private stored(stage: RoundStage) {
    return this.deps.store.messages(this.key.task, this.key.round, this.key.attempt, stage);
  }

  private async announceCurrent(): Promise<void> {
    const phase = this.attempt.phase as Phase;
    const k = this.key;
    const wire = this.deps.store.announcement(k.task, k.round, k.attempt, phase) as
      | WireAnnouncement
      | undefined;
    if (wire === undefined)
      throw new AilinkError(
        'INTERNAL',
        `expected a stored announcement of ${phase} for round ${k.round} attempt ${k.attempt} of task ${k.task}, found none (a bug: report it with the coordinator log)`,
      );
    // Gossip is best effort: a participant that missed it fetches the same announcement with `view`.
    await this.deps
      .publish(gossipOf(wire))
      .catch((err: Error) => this.deps.log(`gossip failed: ${err.message}`));
  }

  private waitForAnswers(signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (signal.aborted) return done(() => reject(signal.reason));
        if (this.expecting().length === 0 && this.fetchesSettledForPhase()) return done(resolve);
        if (this.deps.clock.now() >= this.attempt.deadline) return done(resolve);
      };
      const timer = setInterval(check, 250);
      const done = (f: () => void) => {
        clearInterval(timer);
        this.wake = undefined;
        signal.removeEventListener('abort', check);
        f();
      };
      this.wake = check;
      signal.addEventListener('abort', check);
      check();
    });
  }

  private fetchesSettledForPhase(): boolean {
    return this.attempt.phase !== 'masked' || [...this.fetches.values()].every((p) => settled.has(p));
  }

  /**
   * Fetches a committed update (at most `fetchConcurrency` at once) and takes it in as soon as it is checked: with
   * SecAgg it is spooled for the recompute material and added into the server's running sum, then dropped, so the
   * coordinator's memory holds the sum and the fetches in flight rather than every update.
   */
  private startFetch(from: string, c: Commitment): void {
    if (this.fetches.has(from)) return;
    const controller = new AbortController();
    // The fetch may take until the stage's deadline plus the next stage's length; after that the sender is a dropout.
    const budget =
      Math.max(1000, this.attempt.deadline - this.deps.clock.now()) + this.spec.deadlines.consistencyMs;
    const timer = setTimeout(
      () =>
        controller.abort(new AilinkError('TIMEOUT', `fetching the update of ${from} took over ${budget} ms`)),
      budget,
    );
    const p = this.fetchSlot(async () => {
      // Without SecAgg the words are kept (this.plain): a vector of their own.
      const words = (this.secagg && this.wordBuffers.pop()) || new Uint32Array(this.setup.dimension);
      try {
        await this.takeUpdate(from, c, controller.signal, words);
      } finally {
        if (this.secagg) this.wordBuffers.push(words);
      }
    }).finally(() => {
      clearTimeout(timer);
      settled.add(p);
      this.wake?.();
    });
    p.catch(() => {}); // failures are read at the stage's close
    this.fetches.set(from, p);
  }

  /** A committed update fetched (`receiveUpdate`) into `words`, checked, and added to the sum (or kept, without SecAgg). */
  private async takeUpdate(
    from: string,
    c: Commitment,
    signal: AbortSignal,
    words: Uint32Array,
  ): Promise<void> {
    const u = await this.receiveUpdate(from, c, signal, words);
    if (u.from !== from || u.context !== this.context)
      throw new AilinkError(
        'ROUND_UPDATE_REFUSED',
        `the update of ${from} was made for ${u.from} in ${u.context}`,
      );
    if (!this.secagg) {
      this.checkPlainUpdate(from, u.words);
      this.plain.set(from, u.words);
      return;
    }
    if (u.signature === null)
      throw new AilinkError('ROUND_UPDATE_REFUSED', `the update of ${from} carries no SecAgg signature`);
    const server = this.secAggServer('masked');
    // It was spooled first: an update in the sum is in the material; one in the material but not the sum is left
    // out of it (`taken`).
    const message = {
      stage: 'masked' as const,
      context: u.context,
      from,
      body: { masked: u.words },
      signature: u.signature,
    };
    if (!server.addMasked(message))
      throw new AilinkError(
        'ROUND_UPDATE_REFUSED',
        server.rejected.at(-1)?.message ?? `the SecAgg server refused the update of ${from}`,
      );
    failpoint('coordinator.update-summed');
  }

  /**
   * Fetches a committed update, hashed as it streams, into `words`: through the attempt's spool when the round's
   * recompute material will hold it (its header, then its words read back), else straight from the stream. The
   * coordinator holds one update per fetch slot, not the fetched object, its pieces and their copies (4 × the update
   * before: 1.6 GB at 100M weights). A participant commits to any fid it likes: the size its record declares is
   * checked before anything moves.
   */
  private async receiveUpdate(
    from: string,
    commitment: { fid: string; digest: string },
    signal: AbortSignal,
    words: Uint32Array,
  ): Promise<StoredUpdate> {
    const dimension = this.setup.dimension;
    const hash = createHash('sha256');
    const chunks = this.deps.objects.read(commitment.fid, {
      signal,
      maxBytes: storedUpdateMaxBytes(dimension),
    });
    let size = 0;
    const hashed = (async function* () {
      for await (const chunk of chunks) {
        hash.update(chunk);
        size += chunk.byteLength;
        yield chunk;
      }
    })();
    const unmatched = () =>
      new AilinkError('ROUND_UPDATE_REFUSED', `the update of ${from} does not hash to its commitment`);
    if (!recordsAggregationMaterial(this.spec)) {
      // Nothing will publish it (central DP without auditors, or no SecAgg): no masked update of a round whose exact
      // sum is secret is ever written to disk.
      let update: StoredUpdate | undefined;
      let refused: unknown;
      try {
        update = await readStoredUpdateStream(hashed, words);
      } catch (err) {
        refused = err;
      }
      this.bytesMoved += size;
      // A stream that failed is a failed fetch; a malformed update is refused after its digest, as from the spool.
      if (refused !== undefined && !hasCode(refused, 'ROUND_MESSAGE_INVALID')) throw refused;
      if (hash.digest('hex') !== commitment.digest) throw unmatched();
      if (refused !== undefined) throw refused;
      return update!;
    }
    this.spool ??= createUpdateSpool(this.deps.spoolDir ?? DEFAULT_SPOOL_DIR, this.context);
    const spool = this.spool;
    await spool.write(from, hashed);
    this.bytesMoved += size;
    if (hash.digest('hex') !== commitment.digest) {
      await spool.remove(from);
      throw unmatched();
    }
    const head = new Uint8Array(Math.min(size, storedUpdateMaxBytes(0)));
    await spool.read(from, 0, head);
    const { at, ...header } = readStoredUpdateHeader(head, dimension, size);
    await spool.read(from, at, new Uint8Array(words.buffer, words.byteOffset, words.byteLength));
    return { ...header, words: fromLE32InPlace(words) };
  }

  /** The stored confirmations of the announced survivor list, each as {from, signature} (recompute material). */
  private confirmations(): { from: string; signature: string }[] {
    const announced = this.deps.store.announcement(
      this.key.task,
      this.key.round,
      this.key.attempt,
      'consistency',
    ) as { body: { survivors: string[] } } | undefined;
    const list = announced?.body.survivors.join('\n');
    return this.stored('consistency')
      .map((m) => m.body as { from: string; body: { survivors: string[] }; signature: string })
      .filter((m) => m.body.survivors.join('\n') === list)
      .map((m) => ({ from: m.from, signature: m.signature }));
  }

  private secAggServer(stage: RoundStage): ReturnType<typeof createSecAggServer> {
    const server = this.server;
    if (server === undefined)
      throw new AilinkError(
        'INTERNAL',
        `expected a SecAgg server state at the ${stage} stage, found none (a bug: only SecAgg rounds have one)`,
      );
    return server;
  }

  /**
   * Without SecAgg the coordinator sees each vector: every update word must be a valid quantized value, the weight
   * within the task's range, and every evaluation word a 16-bit limb. (Statistics words are counts and limbs whose
   * validity only the sum can show: preprocessingFromSum checks it.)
   */
  private checkPlainUpdate(from: string, words: Uint32Array): void {
    const layout = this.layout;
    const top = 2 ** this.spec.secagg.bits - 1;
    for (let i = 0; i < layout.update; i++) {
      if (words[i]! > top)
        throw new AilinkError(
          'ROUND_UPDATE_REFUSED',
          `the update of ${from} has ${words[i]} at ${i}, above ${top}`,
        );
    }
    if (layout.weight === 1) {
      const weight = words[layout.update]!;
      if (weight < 1 || weight > this.spec.secagg.maxWeight)
        throw new AilinkError(
          'ROUND_UPDATE_REFUSED',
          `the update of ${from} claims weight ${weight}, outside 1..${this.spec.secagg.maxWeight}`,
        );
    }
    const evaluationAt = layout.update + layout.weight;
    for (let i = evaluationAt; i < evaluationAt + layout.evaluation; i++) {
      if (words[i]! > 0xffff)
        throw new AilinkError(
          'ROUND_UPDATE_REFUSED',
          `the evaluation of ${from} has ${words[i]} at ${i}, above 0xffff`,
        );
    }
  }

  /** Waits for every fetch; those that failed are dropouts (said once). Returns who was taken in. */
  private async settleFetches(): Promise<Set<string>> {
    const taken = new Set<string>();
    for (const [from, p] of this.fetches) {
      try {
        await p;
        taken.add(from);
      } catch (err) {
        if (!this.refused.has(from))
          this.deps.log(`  update of ${from.slice(0, 8)}… refused: ${(err as Error).message}`);
        this.refused.add(from);
      }
    }
    return taken;
  }

  /** Feeds a completed stage's stored messages to the server; returns the next announcement's body. */
  private async feed(stage: RoundStage): Promise<unknown> {
    const server = this.secAggServer(stage);
    const msgs = this.stored(stage).map((m) => m.body);
    switch (stage) {
      case 'advertise': {
        const out = server.collectAdverts(msgs.map((m) => AdvertSchema.parse(m)));
        return { adverts: Object.fromEntries([...out].map(([id, list]) => [id, list.map(toWire)])) };
      }
      case 'shares': {
        const out = server.collectShares(msgs.map((m) => SharesSchema.parse(m)));
        return { inbox: Object.fromEntries([...out].map(([id, list]) => [id, list.map(toWire)])) };
      }
      case 'masked':
        // Each update was added into the sum as it arrived: closing the stage only fixes who survived.
        await this.settleFetches();
        return { survivors: server.closeMasked() };
      case 'consistency':
        return unmaskBody(server, server.collectConsistency(msgs.map((m) => ConsistencySchema.parse(m))));
      case 'unmask':
        throw new AilinkError(
          'INTERNAL',
          'expected the unmask stage to be closed by finish(), got it fed as a stage (a bug in the round state machine)',
        );
    }
  }

  private async closeStage(phase: RoundStage): Promise<void> {
    const missing = this.expecting();
    if (missing.length > 0)
      this.deps.log(
        `  ${phase}: ${missing.length} dropped (${missing.map((m) => m.slice(0, 8)).join(', ')})`,
      );
    if (phase === 'unmask' || (!this.secagg && phase === 'masked')) {
      await this.finish();
      return;
    }
    if (!this.secagg) {
      // advertise → masked: the round start needs no answers without SecAgg.
      await this.advance('masked', { inbox: {} });
      return;
    }
    const body = await this.feed(phase);
    await this.advance(this.stages[this.stages.indexOf(phase) + 1]!, body);
  }

  private async advance(phase: RoundStage, body: unknown): Promise<void> {
    const deadline = this.deps.clock.now() + this.spec.deadlines[STAGE_DEADLINE[phase]];
    const k = this.key;
    const wire = signAnnouncement(
      { task: k.task, round: k.round, attempt: k.attempt, phase, deadline, body },
      this.deps.serverKey,
    );
    this.deps.store.addAnnouncement(k.task, k.round, k.attempt, phase, wire);
    this.deps.store.setPhase(k.task, k.round, k.attempt, phase, deadline);
    this.attempt = { ...this.attempt, phase, deadline };
    this.deps.onPhase?.(k, phase);
  }

  /**
   * Ends the attempt with its signed reason. The round's last allowed attempt (the task's maxAttempts) says so: the
   * task ends, and the organisations stop with the same reason the coordinator records on chain with the stop.
   */
  private async abort(reason: string): Promise<void> {
    const k = this.key;
    const max = maxAttemptsOf(this.spec);
    const tried = this.deps.store.attempts(k.task, k.round).length;
    const dropouts = [
      ...new Set([...silentIn(this.deps.store, this.task, this.attempt), ...this.refused]),
    ].sort();
    const body = {
      ...(tried >= max
        ? { reason: roundEndedReason(k.round, tried, max, reason), final: true as const }
        : { reason: reason.slice(0, 2000) }),
      dropouts,
    };
    const wire = signAnnouncement(
      {
        task: k.task,
        round: k.round,
        attempt: k.attempt,
        phase: 'aborted',
        deadline: this.deps.clock.now(),
        body,
      },
      this.deps.serverKey,
    );
    this.deps.store.addAnnouncement(k.task, k.round, k.attempt, 'aborted', wire);
    this.deps.store.setPhase(k.task, k.round, k.attempt, 'aborted', this.deps.clock.now(), reason);
    this.attempt = { ...this.attempt, phase: 'aborted', reason };
    await this.deps.publish(gossipOf(wire)).catch(() => {});
  }

  /**
   * The stage a non-survivor dropped in, read from the store (not from memory, so a restart keeps it): the first
   * stage it left unanswered, or `masked` when its update was committed but never fetched whole.
   */
  private dropoutStage(account: string): RoundStage {
    const answered: readonly RoundStage[] = this.secagg ? ['advertise', 'shares'] : [];
    for (const stage of answered) {
      if (
        this.deps.store.message(this.key.task, this.key.round, this.key.attempt, stage, account) === undefined
      )
        return stage;
    }
    return 'masked';
  }

  /**
   * The attempt's inputs for `concludeAttempt`: with SecAgg, the sum this coordinator's server unmasks (each update was
   * added as it arrived) and the recompute material it did so from — the stored messages of every stage and the
   * announced survivors' spooled updates, byte for byte — which an auditor replays to the same sum; without SecAgg,
   * the valid plain updates.
   */
  private async conclusionInput(): Promise<{
    input: Pick<ConcludeInput, 'unmasked' | 'plain'>;
    material?: { head: MaterialHead; updates: MaterialUpdateSource[] };
  }> {
    if (!this.secagg) {
      await this.settleFetches();
      return { input: { plain: this.plain } };
    }
    const k = this.key;
    const announced = this.deps.store.announcement(k.task, k.round, k.attempt, 'consistency') as
      | { body: { survivors: string[] } }
      | undefined;
    if (announced === undefined)
      throw new AilinkError(
        'INTERNAL',
        `expected the consistency announcement of round ${k.round} attempt ${k.attempt} to list the survivors, found none stored (a bug: report it with the coordinator log)`,
      );
    const taken = await this.settleFetches();
    const unmask = this.stored('unmask').map((m) => m.body);
    const unmasked = await this.secAggServer('unmask').unmask(unmask.map((m) => UnmaskSchema.parse(m)));
    const spool = this.spool;
    const material =
      spool === undefined
        ? undefined
        : {
            head: {
              context: this.context,
              adverts: this.stored('advertise').map((m) => m.body),
              shares: this.stored('shares').map((m) => m.body),
              // Only the confirmations of the survivor list the server fixed, without the list (the auditor's
              // replay fixes the same one): k-independent bytes per survivor instead of n.
              consistency: this.confirmations(),
              unmask,
              ...(isCentralDp(this.spec)
                ? { noiseSeed: toHex(dpNoiseSeed(this.deps.serverKey, this.context)) }
                : {}),
            },
            updates: announced.body.survivors
              .filter((a) => taken.has(a) && spool.has(a))
              .map((a) => spool.source(a)),
          };
    return { input: { unmasked }, ...(material === undefined ? {} : { material }) };
  }

  /** How many survived each training round anchored before this one, in round order (distributed DP's ε needs them). */
  private trainedSurvivors(): number[] {
    return this.deps.store
      .rounds(this.key.task)
      .filter((r) => (r.kind ?? 'train') === 'train' && r.round < this.key.round)
      .sort((a, b) => a.round - b.round)
      .map((r) => r.survivors);
  }

  /**
   * `concludeAttempt` over the attempt's inputs, keeping the sum only for a statistics round: a training round's next
   * model is all the rest of `finish` needs, so the sum (and its decoding, in the same bytes) is garbage before the
   * model is evaluated and stored — a vector of the model's size less in the close (400 MB at 100M weights).
   */
  private async concluded() {
    const { input, material } = await this.conclusionInput();
    const {
      sum,
      decoded: _,
      ...c
    } = await concludeAttempt({
      spec: this.spec,
      kind: this.layout.kind,
      start: this.start,
      ...input,
      // Central DP only: distributed DP's noise came inside the organisations' masked updates.
      ...(isCentralDp(this.spec)
        ? { noise: byteStreamFromSeed(dpNoiseSeed(this.deps.serverKey, this.context)) }
        : {}),
    });
    return { ...c, statistics: this.layout.kind === 'statistics' ? sum : null, material };
  }

  /**
   * Closes the attempt with what its kind asks of the sum: the federated preprocessing (statistics), or a manifest
   * anchored on chain — with a new global model (train) or the final model scored (evaluation). The arithmetic is
   * `concludeAttempt`'s, the same an auditor runs; this method does the I/O around it.
   */
  private async finish(): Promise<void> {
    const { material, ...c } = await this.concluded();
    const spec = this.spec;
    const k = this.key;
    const layout = this.layout;
    const { survivors, evaluation } = c;
    if (c.statistics !== null) return this.finishStatistics(c.statistics, survivors);
    // A restart between anchoring and recording must not anchor twice: the chain says whether it already happened.
    const already = this.deps.ledger.anchored(k.task).find((r) => r.round === k.round);
    // The round's objects (and a private model's terms) go on chain with its anchor, in one extrinsic: every block
    // costs every node of the network its indexing, and a close of four blocks one after another was most of a small
    // model's round.
    const batch = already === undefined ? declarationBatch() : undefined;
    if (layout.kind === 'evaluation') {
      return this.record(survivors, evaluation, batch, {
        model: this.setup.startModel,
        state: this.start,
        metrics: { accuracy: null, loss: null, testExamples: null, examples: 0 },
        modelBytes: 0,
        aggregation: await this.storeMaterial(material, batch),
      });
    }
    const next = c.next!;
    const modelHash = c.modelHash!;
    // Stored as views of the weights, 4 MiB at a time: never a copy of the model's size.
    const model = modelObject(spec.model.name, next.global);
    // The material, the model and the model's score do not wait for one another.
    const [aggregation, measured, stored] = await settledAll([
      this.storeMaterial(material, batch),
      this.deps.evaluate(spec, next.global),
      this.storeRoundModel(model, already, batch),
    ]);
    await this.record(survivors, evaluation, batch, {
      model: { fid: stored.fid, hash: modelHash },
      state: next.state,
      metrics: {
        accuracy: measured?.accuracy ?? null,
        loss: measured?.loss ?? null,
        testExamples: measured?.examples ?? null,
        examples: c.examples,
      },
      modelBytes: model.size,
      aggregation,
      ...(stored.readers === undefined ? {} : { readers: stored.readers }),
    });
  }

  /** Stores the round's new global model; after a restart past its anchor, names the private model it anchored. */
  private async storeRoundModel(
    model: ObjectSource,
    already: { manifest: string } | undefined,
    batch: DeclarationBatch | undefined,
  ): Promise<{ fid: string; readers?: string[] }> {
    const k = this.key;
    if (already !== undefined && modelAccessOf(this.spec) !== null) {
      // A private model stored again would get a new fid (a new data key): keep the one the anchored manifest names.
      // It was wrapped for at least this attempt's cohort (all had joined before it was stored).
      const anchoredManifest = parseManifest(
        await this.deps.objects.get(already.manifest, { signal: AbortSignal.timeout(60_000) }),
      );
      const byAccount = new Map(this.deps.store.participants(k.task).map((p) => [p.account, p.readerKey]));
      return {
        fid: anchoredManifest.model.fid,
        readers: readerKeysOf(this.setup.cohort.map((c) => ({ readerKey: byAccount.get(c.account) ?? '' }))),
      };
    }
    // A private model is wrapped for every participant joined now, not only this cohort: the next round's cohort is
    // drawn among them and must read it as its start model.
    return storeModel(
      this.deps,
      this.spec,
      model,
      `${k.task}/round-${k.round}/model.ailm`,
      readerKeysOf(this.deps.store.participants(k.task)),
      batch,
    );
  }

  /**
   * Stores the recompute material (public, under the model's terms, or with central DP sealed for the named
   * auditors) when the task records it; returns what the manifest names. A round already anchored keeps what its
   * manifest names.
   */
  private async storeMaterial(
    material: { head: MaterialHead; updates: MaterialUpdateSource[] } | undefined,
    batch: DeclarationBatch | undefined,
  ): Promise<{ fid: string; digest: string } | null> {
    if (material === undefined || !recordsAggregationMaterial(this.spec)) return null;
    const k = this.key;
    if (this.deps.ledger.anchored(k.task).some((r) => r.round === k.round)) return null;
    // Streamed from the spool and hashed on the way: the material is never whole in memory.
    const hash = createHash('sha256');
    const { size, chunks } = aggregationMaterialStream(material.head, material.updates);
    const hashed = async function* () {
      for await (const chunk of chunks) {
        hash.update(chunk);
        yield chunk;
      }
    };
    const name = materialObjectName(k.task, k.round);
    const auditors = materialAuditorsOf(this.spec);
    // Central DP: sealed for the named auditors alone, under no market terms (nobody may buy the pre-noise sum).
    // Otherwise whoever holds the material re-derives the model: under model terms it is sealed for the same readers
    // and put under the same terms as the model, else it would hand out for free what the terms sell.
    const fid =
      auditors !== null
        ? await this.deps.objects.putModel({ size, chunks: hashed() }, name, auditors, batch)
        : (
            await storeModel(
              this.deps,
              this.spec,
              { size, chunks: hashed() },
              name,
              readerKeysOf(this.deps.store.participants(k.task)),
              batch,
            )
          ).fid;
    return { fid, digest: hash.digest('hex') };
  }

  /** Stores and anchors the round's manifest (once, even across restarts), records the round, announces it done. */
  private async record(
    survivors: string[],
    evaluation: EvaluationSummary | null,
    batch: DeclarationBatch | undefined,
    out: {
      model: { fid: string; hash: string };
      state: StrategyState;
      metrics: Manifest['metrics'];
      modelBytes: number;
      readers?: string[];
      aggregation: { fid: string; digest: string } | null;
    },
  ): Promise<void> {
    failpoint('coordinator.model-stored');
    const spec = this.spec;
    const k = this.key;
    const kind = this.layout.kind === 'evaluation' ? 'evaluation' : 'train';
    const commitments = this.stored('masked')
      .filter((m) => survivors.includes(m.sender))
      // Stored as it came on the wire (hex signature), validated when it was accepted.
      .map((m) => ({
        account: m.sender,
        ...(m.body as { fid: string; digest: string; dataset: string; signature: string }),
      }));
    // The survivors' signatures on exactly this survivor list (stored as they came, checked when accepted): the
    // manifest carries them so that an auditor need not take the survivor list on the coordinator's word.
    const consistency = this.stored('consistency')
      .map((m) => ConsistencySchema.parse(m.body))
      .filter((m) => m.body.survivors.join('\n') === survivors.join('\n'))
      .map((m) => ({ account: m.from, signature: toHex(m.signature) }))
      .sort((a, b) => (a.account < b.account ? -1 : 1));
    const now = this.deps.clock.now();
    const manifest: Manifest = {
      version: 4,
      kind,
      task: k.task,
      spec: this.task.digest,
      specFid: this.task.specFid,
      round: k.round,
      attempt: k.attempt,
      parent: this.parent,
      startModel: this.setup.startModel,
      model: { ...out.model, name: spec.model.name, parameters: spec.model.parameters },
      cohort: this.setup.cohort.map((c) => c.account),
      survivors,
      dropouts: this.setup.cohort
        .map((c) => c.account)
        .filter((a) => !survivors.includes(a))
        .map((account) => ({ account, stage: this.dropoutStage(account) })),
      updates: commitments,
      consistency,
      strategy: { ...spec.strategy },
      secagg: {
        enabled: this.secagg,
        k: this.setup.k,
        t: this.setup.t,
        range: spec.secagg.range,
        bits: spec.secagg.bits,
        maxWeight: spec.secagg.maxWeight,
      },
      // An evaluation round spends no privacy: it states what the training rounds before it spent. Distributed DP's
      // ε depends on how many survived each round (only their noise shares are in the sum).
      privacy:
        kind === 'evaluation'
          ? privacyRecord(spec, k.round - 1, this.trainedSurvivors())
          : privacyRecord(spec, k.round, [...this.trainedSurvivors(), survivors.length]),
      preprocessing: this.setup.preprocessing ?? null,
      metrics: out.metrics,
      evaluation,
      aggregation: out.aggregation,
      code: this.deps.code,
      startedAt: this.attempt.startedAt,
      finishedAt: now,
    };
    const bytes = manifestBytes(manifest);
    const already = this.deps.ledger.anchored(k.task).find((r) => r.round === k.round);
    let manifestFid: string;
    let manifestDigest: string;
    if (already !== undefined) {
      manifestFid = already.manifest;
      manifestDigest = already.digest;
    } else {
      manifestFid = await this.deps.objects.put(bytes, `${k.task}/round-${k.round}/manifest.json`, batch);
      manifestDigest = sha256Hex(bytes);
      failpoint('coordinator.manifest-stored');
      // With a batch (not after a restart), the next round's seed draw goes in the same extrinsic.
      const next =
        batch === undefined
          ? null
          : (this.deps.nextCohort?.({ ...k, kind: this.layout.kind, survivors: survivors.length }) ?? null);
      await this.deps.ledger.recordRound(
        k.task,
        k.round,
        manifestFid,
        manifestDigest,
        batch,
        next === null
          ? undefined
          : { round: next.round, attempt: next.attempt, cohort: cohortDigest([...next.cohort]) },
      );
    }
    const row: RoundRow = {
      task: k.task,
      round: k.round,
      attempt: k.attempt,
      kind,
      modelFid: out.model.fid,
      modelHash: out.model.hash,
      manifestFid,
      manifestDigest,
      accuracy: out.metrics.accuracy,
      loss: out.metrics.loss,
      evaluation,
      survivors: survivors.length,
      cohort: this.setup.cohort.length,
      seconds: (now - this.attempt.startedAt) / 1000,
      bytes: this.bytesMoved + out.modelBytes + bytes.byteLength,
      finishedAt: now,
      ...(out.readers === undefined ? {} : { modelReaders: out.readers }),
    };
    this.deps.store.finishRound(row, out.state);
    await this.announceDone({
      model: out.model,
      manifest: { fid: manifestFid, digest: manifestDigest },
      accuracy: out.metrics.accuracy,
      loss: out.metrics.loss,
    });
  }

  /**
   * The statistics round's sum becomes the task's preprocessing: stored as a public object (content-addressed, so a
   * restart stores the same one), named by every training round's announcement and manifest.
   */
  private async finishStatistics(sum: Uint32Array, survivors: string[]): Promise<void> {
    const k = this.key;
    const preprocessing = preprocessingFromSum(sum, this.spec.data as TabularSchema, survivors.length);
    const bytes = new TextEncoder().encode(canonicalJson(preprocessing));
    const fid = await this.deps.objects.put(bytes, `${k.task}/preprocessing.json`);
    const now = this.deps.clock.now();
    this.deps.store.finishStatistics({
      task: k.task,
      attempt: k.attempt,
      fid,
      digest: sha256Hex(bytes),
      preprocessing,
      survivors: survivors.length,
      finishedAt: now,
    });
    await this.announceDone({ model: this.setup.startModel, manifest: null, accuracy: null, loss: null });
  }

  private async announceDone(body: {
    model: { fid: string; hash: string };
    manifest: { fid: string; digest: string } | null;
    accuracy: number | null;
    loss: number | null;
  }): Promise<void> {
    const k = this.key;
    const wire = signAnnouncement(
      {
        task: k.task,
        round: k.round,
        attempt: k.attempt,
        phase: 'done',
        deadline: this.deps.clock.now(),
        body,
      },
      this.deps.serverKey,
    );
    this.deps.store.addAnnouncement(k.task, k.round, k.attempt, 'done', wire);
    this.attempt = { ...this.attempt, phase: 'done' };
    await this.deps.publish(gossipOf(wire)).catch(() => {});
  }
}

const settled = new WeakSet<Promise<unknown>>();

/** Where attempts spool updates when the coordinator's deps name no directory (tests, embedders). */
const DEFAULT_SPOOL_DIR = join(tmpdir(), 'ailink-coordinator-spool');

/**
 * How many updates are fetched at once: as many as fit in `budget` bytes (the updates in flight are what the
 * coordinator holds beside the sum), at least one, at most 16 (more buys little against 12 miners per object).
 */
export const fetchConcurrency = (dimension: number, budget = 256 * 1024 * 1024): number =>
  Math.max(1, Math.min(16, Math.floor(budget / storedUpdateMaxBytes(dimension))));

/**
 * Everyone who dropped out of an earlier (aborted) attempt of this round, with the number of attempts each dropped out
 * of: the members of each attempt's cohort who did not answer the last stage announced to them, and those the abort
 * names. Read from the store (announcements and messages), so a restarted coordinator excludes the same ones. Empty
 * when the round has no earlier attempt.
 */
export function droppedThisRound(store: CoordinatorStore, task: TaskRow, round: number): Map<string, number> {
  const dropped = new Map<string, number>();
  for (const attempt of store.attempts(task.id, round)) {
    if (attempt.phase !== 'aborted') continue;
    const these = new Set(silentIn(store, task, attempt));
    // The abort names, besides, those whose update never arrived whole (they answered, so the store shows no gap).
    const wire = store.announcement(task.id, round, attempt.attempt, 'aborted') as
      | { body?: { dropouts?: unknown } }
      | undefined;
    const named = wire?.body?.dropouts;
    if (Array.isArray(named)) for (const a of named) if (typeof a === 'string') these.add(a);
    for (const a of these) dropped.set(a, (dropped.get(a) ?? 0) + 1);
  }
  return dropped;
}

/** The members of an attempt's cohort that did not answer the last stage announced to them (from the store). */
function silentIn(store: CoordinatorStore, task: TaskRow, attempt: AttemptRow): string[] {
  // Without SecAgg nobody answers the round start: only the update counts.
  const answering: readonly RoundStage[] = task.spec.secagg.enabled ? STAGES : ['masked'];
  const stage = answering
    .filter((s) => store.announcement(task.id, attempt.round, attempt.attempt, s) !== undefined)
    .at(-1);
  if (stage === undefined) return [];
  const answered = new Set(store.senders(task.id, attempt.round, attempt.attempt, stage));
  return attempt.setup.cohort.map((c) => c.account).filter((a) => !answered.has(a));
}

/** Fisher–Yates on `bytes` (4 per element, injected randomness), in place. */
function shuffleWith<T>(items: T[], bytes: Uint8Array): T[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = items.length - 1; i > 0; i--) {
    const j = view.getUint32(4 * i, true) % (i + 1);
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

/** A cohort whose graph seed was drawn ahead, in the previous round's closing extrinsic (`RoundDeps.nextCohort`). */
export interface PredrawnCohort {
  readonly round: number;
  readonly attempt: number;
  readonly cohort: readonly { account: string; identityKey: string }[];
}

/**
 * Samples an attempt's cohort from the participants seen recently. `canRead` (private models) keeps out of the cohort
 * whoever cannot read the start model: a participant that joined after it was stored trains from the next one.
 * @throws ROUND_NOT_ADMITTED when fewer than cohort.min participants are online (and can read the start model)
 */
export function drawCohort(
  deps: Pick<RoundDeps, 'store' | 'clock' | 'random'>,
  task: TaskRow,
  round: number,
  onlineWithinMs: number,
  canRead: (p: ParticipantRow) => boolean = () => true,
  /** Until then, wait for the whole cohort rather than start with its minimum (the task's first round). */
  fillUntil = 0,
): { account: string; identityKey: string }[] {
  const now = deps.clock.now();
  const present = deps.store.participants(task.id).filter((p) => now - p.lastSeen <= onlineWithinMs);
  const online = present.filter(canRead);
  const spec = task.spec;
  if (online.length < spec.cohort.size && now < fillUntil)
    throw new AilinkError(
      'ROUND_NOT_ADMITTED',
      `round ${round} waits up to ${fillUntil - now} ms more for ${spec.cohort.size} participants, ${online.length} are online`,
    );
  if (online.length < spec.cohort.min) {
    throw new AilinkError(
      'ROUND_NOT_ADMITTED',
      online.length === present.length
        ? `round ${round} needs at least ${spec.cohort.min} participants online, ${online.length} are`
        : `round ${round} needs at least ${spec.cohort.min} participants online that can read its start model, ${online.length} are (${present.length} online; those who joined after it was stored train from the next model)`,
    );
  }
  // Whoever dropped out of an attempt of this round sits out the rest of the round — else a participant that keeps
  // dropping (a crashed process, a broken network, training slower than the deadline) is drawn again and aborts
  // every attempt. When too few others are online, only as many of them come back as cohort.min needs: those who
  // dropped out of fewer attempts first (ties drawn at random), so that one which keeps dropping is not drawn back
  // attempt after attempt while one that missed a single stage (its coordinator restarting, say) waits. Everyone is
  // back in the draw for the next round.
  const dropped = droppedThisRound(deps.store, task, round);
  const willing = online.filter((p) => !dropped.has(p.account));
  const returning = online.filter((p) => dropped.has(p.account));
  const bytes = deps.random(4 * online.length);
  const drawn = shuffleWith(willing, bytes.subarray(0, 4 * willing.length)).slice(0, spec.cohort.size);
  const back = shuffleWith(returning, bytes.subarray(4 * willing.length))
    .sort((a, b) => dropped.get(a.account)! - dropped.get(b.account)!) // stable: the shuffle breaks ties
    .slice(0, Math.max(0, spec.cohort.min - drawn.length));
  return [...drawn, ...back]
    .map((p) => ({ account: p.account, identityKey: p.identityKey }))
    .sort((a, b) => (a.account < b.account ? -1 : 1));
}

/** The attempt number after every attempt of the round the store holds. */
function afterStoredAttempts(store: CoordinatorStore, task: TaskRow, round: number): number {
  const previous = store.attempts(task.id, round);
  return previous.length === 0 ? 0 : Math.max(...previous.map((a) => a.attempt)) + 1;
}

/** The number the round's next attempt takes: after every stored one and every one the chain drew a seed for. */
export function nextAttemptNumber(
  deps: Pick<RoundDeps, 'store'> & { ledger: Pick<RoundDeps['ledger'], 'seedOf'> },
  task: TaskRow,
  round: number,
): number {
  let attempt = afterStoredAttempts(deps.store, task, round);
  // A draw that landed on chain just before a crash took its attempt number: the chain keeps one seed per attempt.
  while (task.spec.secagg.enabled && deps.ledger.seedOf(task.id, round, attempt) !== undefined) attempt++;
  return attempt;
}

/**
 * The pre-drawn cohort and its seed's block, when they still hold for the attempt about to open: the chain recorded
 * exactly this cohort for it, it is the attempt's number, and every member is online and can read the start model.
 */
function predrawnSeed(
  deps: Pick<RoundDeps, 'store' | 'clock'> & { ledger: Pick<RoundDeps['ledger'], 'seedOf'> },
  task: TaskRow,
  round: number,
  onlineWithinMs: number,
  canRead: (p: ParticipantRow) => boolean,
  predrawn: PredrawnCohort,
): { cohort: { account: string; identityKey: string }[]; attempt: number; blockHash: string } | undefined {
  if (!task.spec.secagg.enabled || predrawn.round !== round) return undefined;
  if (predrawn.attempt !== afterStoredAttempts(deps.store, task, round)) return undefined;
  const recorded = deps.ledger.seedOf(task.id, round, predrawn.attempt);
  const cohort = [...predrawn.cohort];
  if (recorded === undefined || recorded.cohort !== cohortDigest(cohort)) return undefined;
  const now = deps.clock.now();
  const ready = new Map(
    deps.store
      .participants(task.id)
      .filter((p) => now - p.lastSeen <= onlineWithinMs && canRead(p))
      .map((p) => [p.account, p.identityKey] as const),
  );
  if (!cohort.every((m) => ready.get(m.account) === m.identityKey)) return undefined;
  return { cohort, attempt: predrawn.attempt, blockHash: recorded.blockHash };
}

/**
 * Opens a new attempt: draws the cohort (`drawCohort`), commits to it on chain to draw the graph seed from the
 * recording block's hash (with SecAgg), and stores and signs the round-start announcement. A cohort `predrawn` with
 * the previous round's close is taken when the chain holds its seed for this very attempt and every member of it is
 * still online and can read the start model: no block to wait for.
 * @throws ROUND_NOT_ADMITTED when fewer than cohort.min participants are online (and can read the start model)
 */
export async function openAttempt(
  deps: Pick<RoundDeps, 'store' | 'clock' | 'random' | 'serverKey'> & {
    ledger: Pick<RoundDeps['ledger'], 'drawSeed' | 'seedOf'>;
  },
  task: TaskRow,
  round: number,
  opening: {
    kind: RoundKind;
    startModel: { fid: string; hash: string };
    preprocessing: { fid: string; digest: string } | null;
  },
  onlineWithinMs: number,
  canRead: (p: ParticipantRow) => boolean = () => true,
  /** Until then, wait for the whole cohort rather than start with its minimum (the task's first round). */
  fillUntil = 0,
  predrawn?: PredrawnCohort,
): Promise<AttemptRow> {
  const spec = task.spec;
  const seed =
    predrawn === undefined ? undefined : predrawnSeed(deps, task, round, onlineWithinMs, canRead, predrawn);
  const cohort = seed?.cohort ?? drawCohort(deps, task, round, onlineWithinMs, canRead, fillUntil);
  const attempt = seed?.attempt ?? nextAttemptNumber(deps, task, round);
  const { k, t } = secAggShape(spec, cohort.length);
  // Without SecAgg there is no neighbour graph, so nothing to draw (the field stays for the stored row's shape).
  const graphSeed = spec.secagg.enabled
    ? graphSeedOf(
        seed?.blockHash ?? (await deps.ledger.drawSeed(task.id, round, attempt, cohortDigest(cohort))),
        task.id,
        round,
        attempt,
      )
    : '00'.repeat(32);
  const setup: AttemptSetup = {
    kind: opening.kind,
    cohort,
    graphSeed,
    k,
    t,
    dimension: vectorLayout(spec, opening.kind).dimension,
    startModel: opening.startModel,
    preprocessing: opening.preprocessing,
  };
  // The draw waited for a block: the organisations get the whole advertise window from now.
  const opened = deps.clock.now();
  const deadline = opened + spec.deadlines.advertiseMs;
  const row: AttemptRow = {
    task: task.id,
    round,
    attempt,
    phase: 'advertise',
    deadline,
    setup,
    startedAt: opened,
    reason: null,
  };
  deps.store.addAttempt(row);
  const wire = signAnnouncement(
    {
      task: task.id,
      round,
      attempt,
      phase: 'advertise',
      deadline,
      body: {
        cohort,
        secagg: spec.secagg.enabled,
        graphSeed: setup.graphSeed,
        k,
        t,
        kind: opening.kind,
        dimension: setup.dimension,
        model: opening.startModel,
        preprocessing: opening.preprocessing,
      },
    },
    deps.serverKey,
  );
  deps.store.addAnnouncement(task.id, round, attempt, 'advertise', wire);
  return row;
}
