import { createHash } from 'node:crypto';
import { decodeModelPackage } from '../../models/index.ts';
import { createSecAggClient, type SecAggClient, signingKeyPair } from '../aggregation/index.ts';
import { admissionMessage } from '../chain/index.ts';
import type { Account } from '../shared/account.ts';
import { fromHex, toHex } from '../shared/bytes.ts';
import { type Clock, type Random, sleep } from '../shared/clock.ts';
import { AilinkError, hasCode } from '../shared/errors.ts';
import {
  type AdmissionLoad,
  type Announcement,
  announcementKey,
  cohortDigest,
  encodeEvaluation,
  encodeTrainingUpdate,
  evaluatesClientSide,
  expiredRoundObjects,
  graphSeedOf,
  JOIN_DEADLINE_MAX_MS,
  joinDeadlineMs,
  joinMessage,
  latestAnchoredRound,
  MAX_RECORD_OBJECT_BYTES,
  type Manifest,
  manifestDigest,
  modelBytesMaxBytes,
  type Phase,
  type Preprocessing,
  PreprocessingSchema,
  parseAnnouncement,
  parseHeader,
  parseManifest,
  type RoundStage,
  readModelStream,
  retentionOf,
  roundContext,
  roundObjectsPrefix,
  secAggShape,
  sha256Hex,
  signCommitment,
  storedUpdateStream,
  type TaskSpec,
  taskDigest,
  taskTopic,
  toWire,
  updateObjectLeaf,
  updateObjectName,
  type VectorLayout,
  vectorLayout,
} from '../task/index.ts';
import type { Examples } from './examples.ts';
import type { LocalData } from './local-data.ts';
import type { LossName, TrainOptions } from './train.ts';
import type { ModelRef } from './train-pool.ts';

/** How a participant reaches its coordinator: HTTP for the task and joining, p2p for round traffic. */
export interface CoordinatorLink {
  /** This participant's own peer id: its round requests come from it, and its join signs it. */
  readonly peerId: string;
  task(id: string): Promise<{ spec: TaskSpec; digest: string }>;
  /** What a join now would wait behind at the coordinator; undefined when it does not say. */
  admissionLoad(): Promise<AdmissionLoad | undefined>;
  /**
   * Joins: answered once the admission is recorded on chain, or a failure once `deadlineMs` passed without an answer.
   * @throws JOIN_QUEUE_FULL when the coordinator queues no more admissions now
   */
  join(
    task: string,
    request: {
      account: string;
      identityKey: string;
      signature: string;
      readerKey: string;
      signedAt: number;
      joinSignature: string;
    },
    options: { deadlineMs: number },
  ): Promise<void>;
  /** One request/reply on the round protocol (with its own deadline). */
  request(
    body: unknown,
    options: { signal?: AbortSignal },
  ): Promise<{ ok: boolean; error?: { code: string; message: string }; announcement?: unknown }>;
  subscribe(topic: string, handler: (data: unknown) => void): () => void;
}

/** Deadline of one object read (the starting model, a manifest). */
const FETCH_DEADLINE_MS = 60_000;

/**
 * How long the start model's fetch may take: the rest of the advertise stage, whose deadline the task owner set for
 * the models its task trains, and never less than FETCH_DEADLINE_MS. A fixed minute was too short for a 100M-weight
 * model (403 MB) fetched by three organisations at once on one machine (bench/large-round.ts): one refused the round.
 * Each remote step of the fetch keeps its own deadline in the storage client; this bounds the whole.
 */
export const modelFetchDeadlineMs = (stageDeadline: number, now: number): number =>
  Math.max(FETCH_DEADLINE_MS, stageDeadline - now);

/** How long past a stage's deadline its work may still hold up later announcements. */
const STAGE_GRACE_MS = 5_000;

export interface ParticipantDeps {
  readonly account: Account;
  /** Ed25519 private key that signs this participant's round messages (kept for the whole task). */
  readonly identityKey: Uint8Array;
  readonly link: CoordinatorLink;
  /** What the chain says about the task: its record (spec digest, the account that created it) and anchored rounds. */
  readonly chain: {
    /** The chain's genesis hash (0x-hex): the admission request is signed for this network only. */
    readonly genesisHash: string;
    /** The chain's block time (ms): the join deadline is sized by it (`joinDeadlineMs`), not by the coordinator. */
    readonly blockTimeMs: number;
    task(task: string): Promise<{ spec: string; coordinator: string } | undefined>;
    /** The task's admissions on chain: each account with the round key it registered. */
    admitted(task: string): Promise<{ account: string; identityKey: string }[]>;
    anchored(task: string): Promise<{ round: number; manifest: string; digest: string }[]>;
    /**
     * The seed drawn on chain for an attempt (`provenance.drawSeed`): the cohort digest its coordinator committed to
     * and the hash of the block that recorded it; undefined when none was drawn.
     */
    seed(
      task: string,
      round: number,
      attempt: number,
    ): Promise<{ cohort: string; blockHash: string } | undefined>;
  };
  readonly objects: {
    /** At most `maxBytes`: an object recorded as larger is refused before it is fetched. */
    get(fid: string, options: { signal?: AbortSignal; maxBytes?: number }): Promise<Uint8Array>;
    /** `get` as a stream of chunks, for an object too large to hold whole beside its decoding (a model). */
    read(fid: string, options: { signal?: AbortSignal; maxBytes?: number }): AsyncIterable<Uint8Array>;
    /**
     * Stores bytes (whole, or a stream of exactly `size` bytes, read once to its end before this resolves) encrypted
     * so that only `reader` (an X25519 key, hex) and the owner can read them.
     */
    putFor(
      source: Uint8Array | { readonly size: number; readonly chunks: AsyncIterable<Uint8Array> },
      reader: string,
      name: string,
    ): Promise<string>;
    /** The objects this account owns on chain whose name begins with `prefix`, with the names it gave them. */
    owned(prefix: string): Promise<{ fid: string; name: string | null }[]>;
    /**
     * Deletes this account's objects for good (fileBank.deleteFile, one transaction). An object already gone is no
     * error, so a sweep interrupted by a restart is simply run again.
     */
    delete(fids: readonly string[]): Promise<void>;
  };
  readonly trainer: {
    /**
     * Trains from `weights` (handed over: the trainer may keep or transfer them). The weights it resolves with are
     * the participant's from then on, which overwrites them with the update.
     */
    train(job: {
      model: ModelRef;
      weights: Float32Array;
      data: Examples;
      options: TrainOptions;
    }): Promise<{ weights: Float32Array; loss: number; examples: number; seconds: number }>;
    /** Scores weights on examples: what the secure sum adds up (correct answers, summed loss). */
    evaluate(job: {
      model: ModelRef;
      weights: Float32Array;
      data: Examples;
      loss: LossName;
    }): Promise<{ examples: number; correct: number; lossSum: number }>;
  };
  /**
   * Reads this organisation's data and checks it against the task's schema (local-data.ts): called once the spec is
   * verified against the chain and before joining, so data that does not fit is refused before anything is joined.
   */
  loadData(spec: TaskSpec): Promise<LocalData>;
  readonly clock: Clock;
  readonly random: Random;
  log(line: string): void;
}

export interface ParticipantOptions {
  readonly task: string;
  /** Simulates a participant that goes silent at a stage of a round (demo and tests). */
  /** Without `attempt`, in every attempt of the round (a participant that stays broken); with it, in that one only. */
  readonly dropAt?: { round: number; stage: RoundStage; attempt?: number };
  /**
   * How often to ask the coordinator for the current announcement when gossip is quiet (default 3 s). Gossip carries
   * signed headers, and a new one is fetched at once; the poll is the fallback, and a reply to it is empty while
   * nothing changed.
   */
  readonly pollMs?: number;
  /** Deadline of one request to the coordinator (default 10 s). */
  readonly requestTimeoutMs?: number;
  /** Called with this participant's encoded (quantized, unmasked) update: tests compare sums with it. */
  readonly onEncodedUpdate?: (round: number, words: Uint32Array) => void;
}

export type ParticipantEvent =
  | { kind: 'trained'; round: number; loss: number; examples: number; seconds: number }
  | { kind: 'submitted'; round: number; stage: RoundStage }
  | { kind: 'round'; round: number; phase: 'done' | 'aborted'; accuracy?: number }
  | { kind: 'refused'; round: number; reason: string }
  /** Expired updates of this organisation deleted under the task's retention, of rounds up to `through`. */
  | { kind: 'collected'; objects: number; through: number };

export interface Participant {
  /**
   * Joins, then takes part in every round it is sampled for until the task's last round is done.
   * @throws TASK_STOPPED with the coordinator's signed reason when a round used up its attempts (the task ended)
   */
  run(signal: AbortSignal): Promise<void>;
  onEvent(listener: (e: ParticipantEvent) => void): void;
}

/** What an attempt's vector is made of, once local work is done (layout.ts says in which order). */
interface LocalWork {
  /** Training rounds: the update and the examples it weighs. */
  readonly update: { delta: Float32Array; examples: number } | null;
  /** The start model's evaluation words (empty when nothing is held out). */
  readonly evaluation: Uint32Array;
  /** Statistics rounds: this organisation's statistics words. */
  readonly statistics: Uint32Array;
}

interface AttemptState {
  readonly round: number;
  readonly attempt: number;
  readonly context: string;
  readonly layout: VectorLayout;
  readonly client: SecAggClient | undefined;
  /**
   * Null once the masked stage has encoded it: its delta (a copy of the model's size, clipped and quantized away by
   * then) is not kept through the upload and the stages after it.
   */
  work: Promise<LocalWork> | null;
  readonly done: Set<Phase>;
  dropped: boolean;
  /** The survivor list this member confirmed: its neighbours' confirmations are checked against it. */
  survivors?: readonly string[];
}

/**
 * An organisation's side of a task: verifies the task against the chain, joins, and for each round it is sampled in,
 * verifies the starting model, trains on its own data (in a worker), and answers each SecAgg stage; its update leaves
 * only masked and encrypted for the coordinator. Survives coordinator restarts: announcements are also polled, and
 * every request is retried until the stage's deadline.
 */
export function createParticipant(deps: ParticipantDeps, options: ParticipantOptions): Participant {
  const me = deps.account.address;
  const identityPublic = toHex(signingKeyPair(() => deps.identityKey).publicKey);
  // Declared in every commitment (and so in every manifest): what this organisation trained on, without showing it.
  // Set once the task's spec is verified: this organisation's data, and its fingerprint (declared in every commitment).
  let data: LocalData;
  let dataset: string;
  const listeners = new Set<(e: ParticipantEvent) => void>();
  const emit = (e: ParticipantEvent) => {
    for (const l of listeners) l(e);
  };
  const requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
  let spec: TaskSpec;
  let model: ModelRef;
  let current: AttemptState | undefined;
  let lastDone = -1;
  /** Set when the coordinator announces that a round used up its attempts: the task ends, with this reason. */
  let ended: AilinkError | undefined;

  /**
   * The model a round starts from must be the task's initial model (round 0, and the statistics round before it) or
   * the one the chain anchored last round.
   */
  async function verifiedStartModel(a: Extract<Announcement, { phase: 'advertise' }>): Promise<Float32Array> {
    let expected: string;
    if (a.round <= 0) expected = spec.model.initialHash;
    else {
      const anchored = (await deps.chain.anchored(options.task)).find((r) => r.round === a.round - 1);
      if (anchored === undefined)
        throw new AilinkError(
          'MODEL_UNVERIFIED',
          `round ${a.round - 1} of ${options.task} is not anchored on chain`,
        );
      const bytes = await deps.objects.get(anchored.manifest, {
        signal: AbortSignal.timeout(FETCH_DEADLINE_MS),
        maxBytes: MAX_RECORD_OBJECT_BYTES,
      });
      const manifest: Manifest = parseManifest(bytes);
      if (manifestDigest(manifest) !== anchored.digest)
        throw new AilinkError(
          'MODEL_UNVERIFIED',
          `the manifest of round ${a.round - 1} does not match its anchored digest`,
        );
      expected = manifest.model.hash;
    }
    if (a.body.model.hash !== expected) {
      throw new AilinkError(
        'MODEL_UNVERIFIED',
        `round ${a.round} starts from model ${a.body.model.hash.slice(0, 16)}…, the chain says ${expected.slice(0, 16)}…`,
      );
    }
    const chunks = deps.objects.read(a.body.model.fid, {
      signal: AbortSignal.timeout(modelFetchDeadlineMs(a.deadline, deps.clock.now())),
      maxBytes: modelBytesMaxBytes(spec.model.parameters),
    });
    try {
      return await readModelStream(
        chunks,
        { model: spec.model.name, parameters: spec.model.parameters },
        expected,
      );
    } catch (err) {
      if (!hasCode(err, 'MODEL_UNVERIFIED')) throw err;
      throw new AilinkError(
        'MODEL_UNVERIFIED',
        `the model stored as ${a.body.model.fid.slice(0, 16)}… is not the one the chain names (${expected.slice(0, 16)}…): ${err.message}`,
      );
    }
  }

  /** The task's model package, from the storage network, checked against the digest the chain-verified spec names. */
  async function verifiedModel(spec: TaskSpec): Promise<ModelRef> {
    const bytes = await deps.objects.get(spec.model.fid, { signal: AbortSignal.timeout(FETCH_DEADLINE_MS) });
    if (sha256Hex(bytes) !== spec.model.digest)
      throw new AilinkError(
        'MODEL_UNVERIFIED',
        `the model package ${spec.model.fid.slice(0, 16)}… does not hash to the task's ${spec.model.digest.slice(0, 16)}…`,
      );
    return { key: spec.model.digest, topology: decodeModelPackage(bytes).topology };
  }

  /** The federated preprocessing a round names, checked against the digest its signed announcement gives. */
  const preprocessings = new Map<string, Preprocessing>();
  async function verifiedPreprocessing(
    ref: { fid: string; digest: string } | null,
  ): Promise<Preprocessing | null> {
    if (ref === null) {
      if (data.needsStatistics)
        throw new AilinkError(
          'ROUND_MESSAGE_INVALID',
          'this task needs federated statistics, the round names none',
        );
      return null;
    }
    const known = preprocessings.get(ref.digest);
    if (known) return known;
    const bytes = await deps.objects.get(ref.fid, {
      signal: AbortSignal.timeout(FETCH_DEADLINE_MS),
      maxBytes: MAX_RECORD_OBJECT_BYTES,
    });
    if (sha256Hex(bytes) !== ref.digest)
      throw new AilinkError(
        'MODEL_UNVERIFIED',
        `the preprocessing ${ref.fid.slice(0, 16)}… does not hash to ${ref.digest.slice(0, 16)}…`,
      );
    const parsed = PreprocessingSchema.safeParse(JSON.parse(new TextDecoder().decode(bytes)));
    if (!parsed.success)
      throw new AilinkError('ROUND_MESSAGE_INVALID', 'the preprocessing object is malformed');
    preprocessings.set(ref.digest, parsed.data);
    return parsed.data;
  }

  /**
   * What a round works on, checked before this organisation takes part at all: the start model against the chain,
   * the preprocessing against its digest. Null for a statistics round, which needs neither.
   */
  async function roundInputs(
    a: Extract<Announcement, { phase: 'advertise' }>,
    layout: VectorLayout,
  ): Promise<{ global: Float32Array; train: Examples; holdout: Examples } | null> {
    if (layout.kind === 'statistics') return null;
    const global = await verifiedStartModel(a);
    return { global, ...data.examples(await verifiedPreprocessing(a.body.preprocessing)) };
  }

  /**
   * The coordinator announces the cohort and SecAgg's shape; none of it is taken on its word. SecAgg is on exactly
   * when the spec (verified against the chain) says so — else announcing it off would hand over each plain update —
   * k and t are the spec's for this cohort size, the cohort is at least the spec's minimum, and every member is
   * admitted on chain with the round key the cohort lists, so the coordinator cannot surround an organisation with
   * keys of its own under other members' names. With SecAgg, the neighbour graph's seed must be the one the chain
   * drew for this attempt after the coordinator committed to exactly this cohort, so the coordinator cannot pick a
   * seed (or a cohort after seeing the seed) that puts a victim among members it controls.
   * @throws ROUND_ANNOUNCEMENT_REFUSED naming what does not match
   */
  async function checkCohort(a: Extract<Announcement, { phase: 'advertise' }>): Promise<void> {
    const refuse = (why: string): never => {
      throw new AilinkError('ROUND_ANNOUNCEMENT_REFUSED', why);
    };
    if (a.body.secagg !== spec.secagg.enabled)
      refuse(
        `the announcement has SecAgg ${a.body.secagg ? 'on' : 'off'}, the task's spec has it ${spec.secagg.enabled ? 'on' : 'off'}`,
      );
    if (a.body.cohort.length < spec.cohort.min)
      refuse(`the cohort has ${a.body.cohort.length} members, the spec's minimum is ${spec.cohort.min}`);
    if (spec.secagg.enabled) {
      const { k, t } = secAggShape(spec, a.body.cohort.length);
      if (a.body.k !== k || a.body.t !== t)
        refuse(
          `the announcement has k=${a.body.k}, t=${a.body.t}; the spec gives k=${k}, t=${t} for ${a.body.cohort.length} members`,
        );
    }
    const onChain = new Map((await deps.chain.admitted(options.task)).map((p) => [p.account, p.identityKey]));
    const stranger = a.body.cohort.find((c) => onChain.get(c.account) !== c.identityKey);
    if (stranger !== undefined)
      refuse(
        onChain.has(stranger.account)
          ? `${stranger.account} is in the cohort with round key ${stranger.identityKey.slice(0, 16)}…, the chain admitted it with ${onChain.get(stranger.account)!.slice(0, 16)}…`
          : `${stranger.account} is in the cohort but not admitted to ${options.task} on chain`,
      );
    if (spec.secagg.enabled) {
      const drawn = await deps.chain.seed(options.task, a.round, a.attempt);
      if (drawn === undefined)
        return refuse(`the chain has no graph seed drawn for attempt ${a.attempt} of round ${a.round}`);
      if (drawn.cohort !== cohortDigest(a.body.cohort))
        refuse(
          `the cohort differs from the one its coordinator committed to on chain for attempt ${a.attempt} of round ${a.round}`,
        );
      if (a.body.graphSeed !== graphSeedOf(drawn.blockHash, options.task, a.round, a.attempt))
        refuse(`the graph seed is not the one the chain drew for attempt ${a.attempt} of round ${a.round}`);
    }
  }

  /** What this organisation computes for a round, before any SecAgg stage needs it. */
  async function localWork(
    a: Extract<Announcement, { phase: 'advertise' }>,
    layout: VectorLayout,
    context: string,
    inputs: Awaited<ReturnType<typeof roundInputs>>,
  ): Promise<LocalWork> {
    if (inputs === null)
      return { update: null, evaluation: new Uint32Array(0), statistics: data.statistics() };
    const { global, train, holdout } = inputs;
    // The start model scored on the held-out rows (before training changes anything).
    const evaluation =
      layout.evaluation === 0
        ? new Uint32Array(0)
        : encodeEvaluation(
            holdout.count === 0
              ? { examples: 0, correct: 0, lossSum: 0 }
              : await deps.trainer.evaluate({
                  model,
                  weights: global.slice(),
                  data: holdout,
                  loss: spec.training.loss,
                }),
          );
    if (layout.kind === 'evaluation') return { update: null, evaluation, statistics: new Uint32Array(0) };
    const r = await deps.trainer.train({
      model,
      weights: global.slice(),
      data: train,
      options: {
        epochs: spec.local.epochs,
        batchSize: spec.local.batchSize,
        loss: spec.training.loss,
        optimizer: spec.training.optimizer,
        seed: `${me}/${context}`,
        ...(spec.training.proximalMu > 0 ? { proximal: { mu: spec.training.proximalMu, global } } : {}),
      },
    });
    emit({ kind: 'trained', round: a.round, loss: r.loss, examples: r.examples, seconds: r.seconds });
    // The delta overwrites the trained weights (the pool's own copy, nobody else's): no third vector of the model's size.
    const delta = r.weights;
    if (delta.length !== global.length)
      throw new AilinkError(
        'ROUND_UPDATE_REFUSED',
        `local training produced ${delta.length} weights, the model has ${global.length}`,
      );
    for (let i = 0; i < delta.length; i++) {
      const d = delta[i]! - global[i]!;
      if (!Number.isFinite(d))
        throw new AilinkError('ROUND_UPDATE_REFUSED', `local training produced a non-finite weight at ${i}`);
      delta[i] = d;
    }
    return { update: { delta, examples: r.examples }, evaluation, statistics: new Uint32Array(0) };
  }

  async function submit(
    state: AttemptState,
    stage: RoundStage,
    message: unknown,
    deadline: number,
  ): Promise<void> {
    const body = {
      kind: 'submit',
      task: options.task,
      round: state.round,
      attempt: state.attempt,
      from: me,
      stage,
      message: toWire(message),
    };
    // Retried until the stage's deadline: the coordinator may be restarting.
    for (;;) {
      try {
        const reply = await deps.link.request(body, { signal: AbortSignal.timeout(requestTimeoutMs) });
        if (reply.ok) {
          emit({ kind: 'submitted', round: state.round, stage });
          return;
        }
        throw new AilinkError('ROUND_MESSAGE_INVALID', `${reply.error?.code}: ${reply.error?.message}`, {
          details: { remote: reply.error?.code },
        });
      } catch (err) {
        const remote = hasCode(err) ? (err.details?.remote as string | undefined) : undefined;
        // A refusal by the coordinator is final for this stage; a transport failure is retried.
        if (remote !== undefined || deps.clock.now() >= deadline) throw err;
        await sleep(500);
      }
    }
  }

  /**
   * The task's retention (issue 17 item 9): deletes this organisation's own updates of every round the chain says is
   * past it — any attempt's, since an aborted attempt's update is stored too. Only the owner may delete an object on
   * chain, so each organisation collects its own. The rounds are counted from the chain's anchors, not from the
   * coordinator's word: a 'done' announcement only prompts the sweep, so a lying coordinator cannot hasten it. Run at
   * the start (a restarted participant catches up) and after each round; a failure is logged and tried next time.
   */
  async function collectExpired(): Promise<void> {
    const retention = retentionOf(spec);
    if (retention === null) return;
    try {
      const latest = latestAnchoredRound(await deps.chain.anchored(options.task));
      const mine = await deps.objects.owned(roundObjectsPrefix(options.task));
      const expired = expiredRoundObjects(mine, options.task, updateObjectLeaf(me), retention, latest);
      if (expired.length === 0) return;
      await deps.objects.delete(expired);
      emit({ kind: 'collected', objects: expired.length, through: latest! - retention.updateRounds });
      deps.log(
        `deleted ${expired.length} update(s) of rounds up to ${latest! - retention.updateRounds} (retention: ${retention.updateRounds} rounds)`,
      );
    } catch (err) {
      deps.log(
        `could not delete expired updates (tried again after the next round): ${(err as Error).message}`,
      );
    }
  }
  /** One sweep at a time; a round that ends during one is swept after it. */
  let collecting: Promise<void> = Promise.resolve();
  const collect = () => {
    collecting = collecting.then(collectExpired);
    return collecting;
  };

  async function onAnnouncement(a: Announcement): Promise<void> {
    if (a.task !== options.task) return;
    if (a.phase === 'done' || a.phase === 'aborted') {
      if (a.phase === 'done' && a.round > lastDone) {
        lastDone = a.round;
        emit({ kind: 'round', round: a.round, phase: 'done', accuracy: a.body.accuracy ?? undefined });
        void collect();
      }
      if (current && current.round === a.round && current.attempt === a.attempt) {
        if (a.phase === 'aborted') emit({ kind: 'round', round: a.round, phase: 'aborted' });
        current = undefined;
      }
      // Signed by the task's server key: only its coordinator can end the task this way.
      if (a.phase === 'aborted' && a.body.final === true && ended === undefined) {
        ended = new AilinkError('TASK_STOPPED', `task ${options.task} ended: ${a.body.reason}`);
        deps.log(ended.message);
      }
      return;
    }
    if (a.phase === 'advertise') {
      if (current && current.round === a.round && current.attempt === a.attempt) return;
      const member = a.body.cohort.find((c) => c.account === me);
      current = undefined;
      if (member === undefined) return;
      if (member.identityKey !== identityPublic) {
        emit({
          kind: 'refused',
          round: a.round,
          reason: 'the cohort lists another round key for this account',
        });
        return;
      }
      const context = roundContext(options.task, a.round, a.attempt);
      const layout = vectorLayout(spec, a.body.kind);
      if (layout.dimension !== a.body.dimension) {
        const reason = `a ${a.body.kind} round of this task has ${layout.dimension} words per vector, the announcement says ${a.body.dimension}`;
        emit({ kind: 'refused', round: a.round, reason });
        deps.log(`refusing round ${a.round}: ${reason}`);
        return;
      }
      let inputs: Awaited<ReturnType<typeof roundInputs>>;
      try {
        await checkCohort(a);
        inputs = await roundInputs(a, layout);
      } catch (err) {
        emit({ kind: 'refused', round: a.round, reason: (err as Error).message });
        deps.log(`refusing round ${a.round}: ${(err as Error).message}`);
        return;
      }
      // Started at once, so that training overlaps the key exchange; its failure is read where it is needed.
      const work = localWork(a, layout, context, inputs);
      work.catch((err: Error) => {
        emit({ kind: 'refused', round: a.round, reason: err.message });
        deps.log(`round ${a.round}: ${err.message}`);
      });
      const client = a.body.secagg
        ? createSecAggClient(
            me,
            { identityKey: deps.identityKey, random: deps.random },
            {
              context,
              identities: new Map(a.body.cohort.map((c) => [c.account, fromHex(c.identityKey)])),
              k: a.body.k,
              t: a.body.t,
              graphSeed: fromHex(a.body.graphSeed),
              serverKey: fromHex(spec.coordinator.serverKey),
              dimension: a.body.dimension,
            },
          )
        : undefined;
      current = {
        round: a.round,
        attempt: a.attempt,
        context,
        layout,
        client,
        work,
        done: new Set(),
        dropped: false,
      };
    }
    const state = current;
    if (state === undefined || state.round !== a.round || state.attempt !== a.attempt) return;
    if (state.done.has(a.phase) || state.dropped) return;
    state.done.add(a.phase);
    const drop = options.dropAt;
    if (
      drop &&
      drop.round === a.round &&
      drop.stage === a.phase &&
      (drop.attempt === undefined || drop.attempt === a.attempt)
    ) {
      state.dropped = true;
      deps.log(`dropping out of round ${a.round} at ${a.phase} (as asked)`);
      return;
    }
    await answer(state, a);
  }

  /**
   * The attempt's vector, of the round's length: the update (clipped, weighted, quantized — and under distributed DP
   * noised with this organisation's share) written straight into its head, then evaluation and statistics. The local
   * work is let go of here, in a frame of its own, so that no caller's frame keeps the delta alive through the upload.
   */
  async function encodeWork(state: AttemptState): Promise<Uint32Array | null> {
    const work = state.work;
    if (work === null) return null;
    state.work = null;
    return encodeRoundVector(spec, await work, state.layout.dimension, deps.random);
  }

  async function answer(state: AttemptState, a: Announcement): Promise<void> {
    const client = state.client;
    switch (a.phase) {
      case 'advertise':
        if (client) await submit(state, 'advertise', client.advertise(), a.deadline);
        return;
      case 'shares':
        if (client)
          await submit(state, 'shares', await client.shareKeys(a.body.adverts[me] ?? []), a.deadline);
        return;
      case 'masked': {
        const encoded = await encodeWork(state);
        if (encoded === null) return; // encoded once already
        // The hook gets a copy: `encoded` is masked in place below (a copy there would cost 4 bytes a weight always).
        options.onEncodedUpdate?.(state.round, encoded.slice());
        const masked = client
          ? client.maskedInput(a.body.inbox[me] ?? [], encoded, { inPlace: true })
          : undefined;
        // Streamed to storage as views of the masked words, hashed on the way: no copy of the update's size.
        const digest = createHash('sha256');
        const { size, chunks } = storedUpdateStream({
          context: state.context,
          from: me,
          signature: masked?.signature ?? null,
          words: masked?.body.masked ?? encoded,
        });
        const fid = await deps.objects.putFor(
          {
            size,
            chunks: (async function* () {
              for (const chunk of chunks) {
                digest.update(chunk);
                yield chunk;
              }
            })(),
          },
          spec.coordinator.readerKey,
          updateObjectName(options.task, state.round, me),
        );
        await submit(
          state,
          'masked',
          signCommitment(deps.identityKey, state.context, { fid, digest: digest.digest('hex'), dataset }),
          a.deadline,
        );
        return;
      }
      case 'consistency':
        if (!client) return;
        state.survivors = [...new Set(a.body.survivors)].sort();
        await submit(state, 'consistency', client.consistency(a.body.survivors), a.deadline);
        return;
      case 'unmask': {
        if (!client) return;
        // The coordinator relays each neighbour's signature without the list: it must be on this member's own list.
        const survivors = state.survivors ?? [];
        const confirmations = (a.body.signatures[me] ?? []).map((c) => ({
          stage: 'consistency' as const,
          context: state.context,
          from: c.from,
          body: { survivors },
          signature: c.signature,
        }));
        await submit(state, 'unmask', client.unmask(confirmations), a.deadline);
        return;
      }
    }
  }

  /**
   * Joins, waiting as long as the chain's block time and the coordinator's admission queue say (`joinDeadlineMs`).
   * A join refused because the queue is full, or not answered (the coordinator is down or restarting), is tried again
   * after one or two blocks (drawn, so that the refused ones do not all come back at once), signed anew each time,
   * until JOIN_DEADLINE_MAX_MS has passed since the first.
   */
  async function join(signature: string, signal: AbortSignal): Promise<void> {
    const giveUpAt = deps.clock.now() + JOIN_DEADLINE_MAX_MS;
    for (;;) {
      const load = await deps.link.admissionLoad().catch(() => undefined);
      // The reader key goes with the join, signed: a task with private models wraps each start model for it.
      const claim = {
        task: options.task,
        account: me,
        identityKey: identityPublic,
        readerKey: deps.account.readerKey,
        signedAt: deps.clock.now(),
        peerId: deps.link.peerId,
      };
      try {
        await deps.link.join(
          options.task,
          {
            account: me,
            identityKey: identityPublic,
            signature,
            readerKey: claim.readerKey,
            signedAt: claim.signedAt,
            joinSignature: toHex(deps.account.sign(joinMessage(claim))),
          },
          { deadlineMs: joinDeadlineMs(deps.chain.blockTimeMs, load) },
        );
        return;
      } catch (err) {
        const pause = Math.round(deps.chain.blockTimeMs * (1 + deps.random(1)[0]! / 255));
        // A full queue, or a coordinator that is down or restarting: the join is signed anew and sent again.
        const again = (['JOIN_QUEUE_FULL', 'COORDINATOR_UNREACHABLE', 'TIMEOUT'] as const).some((c) =>
          hasCode(err, c),
        );
        if (!again || deps.clock.now() + pause > giveUpAt) throw err;
        deps.log(
          hasCode(err, 'JOIN_QUEUE_FULL')
            ? `the coordinator's admission queue is full: joining ${options.task} again in ${pause} ms`
            : `${(err as Error).message}: joining ${options.task} again in ${pause} ms`,
        );
        await sleep(pause, signal);
        if (signal.aborted) throw err;
      }
    }
  }

  return {
    onEvent: (l) => void listeners.add(l),
    async run(signal) {
      const task = await deps.link.task(options.task);
      const onChain = await deps.chain.task(options.task);
      if (onChain === undefined || onChain.spec !== taskDigest(task.spec)) {
        throw new AilinkError(
          'TASK_UNVERIFIED',
          onChain === undefined
            ? `task ${options.task} is not recorded on chain`
            : `the coordinator's spec of ${options.task} hashes to ${taskDigest(task.spec).slice(0, 16)}…, the chain recorded ${onChain.spec.slice(0, 16)}…`,
        );
      }
      // The chain keeps only the spec's digest, so anyone can record a copied spec first under the task's id: then
      // its record (endpoint, admissions, rounds) belongs to that account, not to the coordinator the spec names.
      if (onChain.coordinator !== task.spec.coordinator.account) {
        throw new AilinkError(
          'TASK_UNVERIFIED',
          `task ${options.task} was recorded on chain by ${onChain.coordinator}, but its spec names the coordinator ${task.spec.coordinator.account}: the id is squatted; ask the coordinator for a new task`,
        );
      }
      spec = task.spec;
      model = await verifiedModel(spec);
      data = await deps.loadData(spec);
      dataset = data.fingerprint;
      const signature = toHex(
        deps.account.sign(admissionMessage(deps.chain.genesisHash, options.task, identityPublic)),
      );
      await join(signature, signal);
      deps.log(`joined ${options.task} as ${me.slice(0, 8)}…`);
      // A restarted organisation deletes what expired while it was away.
      void collect();

      // Announcements are handled one at a time, in arrival order; older phases of the same attempt are skipped.
      let queue = Promise.resolve();
      const serverKey = fromHex(spec.coordinator.serverKey);
      const seen = new Set<string>();
      /** The newest view received: sent with each poll, so that an unchanged reply carries nothing. */
      let have: string | undefined;
      const enqueue = (raw: unknown) => {
        let a: Announcement;
        try {
          a = parseAnnouncement(raw, serverKey, me);
        } catch (err) {
          deps.log(`ignoring an announcement (${codeOf(err)}): ${(err as Error).message}`);
          return;
        }
        const key = announcementKey(a);
        have = key;
        if (seen.has(key)) return;
        seen.add(key);
        // A stage's work may not hold up the next announcements past the stage's deadline (plus a grace period for
        // the coordinator's clock): a newer attempt must not wait behind a stuck older one.
        queue = queue.then(() => {
          const handled = onAnnouncement(a).catch((err: Error) => {
            emit({ kind: 'refused', round: a.round, reason: err.message });
            deps.log(`round ${a.round} ${a.phase}: ${err.message}`);
          });
          return Promise.race([
            handled,
            sleep(Math.max(0, a.deadline - deps.clock.now()) + STAGE_GRACE_MS, signal),
          ]);
        });
      };
      // Gossip carries a stage's view when it is the same for everyone, else its signed header: then this member's
      // view is fetched at once.
      let nap = new AbortController();
      signal.addEventListener('abort', () => nap.abort(), { once: true });
      const unsubscribe = deps.link.subscribe(taskTopic(options.task), (raw) => {
        if (raw !== null && typeof raw === 'object' && 'body' in raw) return enqueue(raw);
        try {
          const header = parseHeader(raw, serverKey);
          if (header.task === options.task && !seen.has(announcementKey(header))) nap.abort();
        } catch (err) {
          deps.log(`ignoring a gossiped announcement (${codeOf(err)}): ${(err as Error).message}`);
        }
      });
      try {
        // The training rounds, then the closing evaluation round when rows are held out.
        const lastRound = spec.rounds - 1 + (evaluatesClientSide(spec) ? 1 : 0);
        while (!signal.aborted && lastDone < lastRound && ended === undefined) {
          try {
            const reply = await deps.link.request(
              { kind: 'view', task: options.task, from: me, ...(have === undefined ? {} : { have }) },
              { signal: AbortSignal.timeout(requestTimeoutMs) },
            );
            if (reply.ok && reply.announcement) enqueue(reply.announcement);
          } catch {
            // The coordinator may be restarting: keep polling.
          }
          if (!nap.signal.aborted) await sleep(options.pollMs ?? 3000, nap.signal);
          nap = new AbortController();
        }
        await queue;
        await collecting;
        if (ended !== undefined) throw ended;
      } finally {
        unsubscribe();
      }
    },
  };
}

/** An error's registered code for a log line (parse errors are AilinkErrors; anything else is a bug to report). */
const codeOf = (err: unknown): string => (hasCode(err) ? err.code : 'INTERNAL');

/**
 * The round's vector: [encoded update ‖ evaluation ‖ statistics], checked against the length the round's layout
 * gives. The update is encoded in place of its words and its delta clipped in place (the delta is not used again).
 */
function encodeRoundVector(spec: TaskSpec, work: LocalWork, dimension: number, random: Random): Uint32Array {
  const updateWords = work.update === null ? 0 : work.update.delta.length + 1;
  if (updateWords + work.evaluation.length + work.statistics.length !== dimension)
    throw new AilinkError(
      'ROUND_UPDATE_REFUSED',
      `this organisation's vector has the wrong length for the round (${dimension} words expected)`,
    );
  const out = new Uint32Array(dimension);
  if (work.update !== null)
    encodeTrainingUpdate(spec, work.update, random, { into: out, consumeDelta: true });
  out.set(work.evaluation, updateWords);
  out.set(work.statistics, updateWords + work.evaluation.length);
  return out;
}
