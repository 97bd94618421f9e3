import { setMaxListeners } from 'node:events';
import {
  decodeModelPackage,
  type ModelPackage,
  type ModelSpec,
  modelPackageDigest,
} from '../../models/index.ts';
import { admissionMessage } from '../chain/index.ts';
import { type Account, verifySignature } from '../shared/account.ts';
import { fromHex } from '../shared/bytes.ts';
import { sleep } from '../shared/clock.ts';
import { AilinkError, hasCode } from '../shared/errors.ts';
import {
  type AnnouncementHeader,
  type AnnouncementView,
  announcementKey,
  checkSecAggSurvives,
  classesOf,
  evaluatesClientSide,
  expiredRoundObjects,
  featureShape,
  isDistributedDp,
  JOIN_WINDOW_MS,
  joinMessage,
  latestAnchoredRound,
  MATERIAL_OBJECT_LEAF,
  maxAttemptsOf,
  modelAccessOf,
  modelHashOf,
  needsStatistics,
  type Phase,
  parseRequest,
  parseTaskSpec,
  projectedEpsilon,
  type RoundKind,
  retentionOf,
  roundObjectsPrefix,
  sha256Hex,
  strategyOf,
  type TaskSpec,
  taskDigest,
  taskIdOf,
  taskSpecBytes,
  viewsOf,
  type WireAnnouncement,
  withinBudget,
} from '../task/index.ts';
import { type Admission, type AdmissionOutcome, createAdmissionQueue } from './admissions.ts';
import {
  type AttemptOutcome,
  AttemptRunner,
  drawCohort,
  modelObject,
  nextAttemptNumber,
  openAttempt,
  type PredrawnCohort,
  type RoundDeps,
  readerKeysOf,
  roundEndedReason,
  storeModel,
} from './round.ts';
import { type ParticipantRow, type RoundRow, STATISTICS_ROUND, type TaskRow } from './store.ts';

/** The chain operations a coordinator needs, beyond recording rounds. */
export interface CoordinatorLedger
  extends Pick<RoundDeps['ledger'], 'recordRound' | 'anchored' | 'setTerms' | 'drawSeed' | 'seedOf'> {
  /** The chain's genesis hash (0x-hex): admissions are signed for one network. */
  readonly genesisHash: string;
  createTask(task: string, digest: string, admitted: readonly string[]): Promise<void>;
  /**
   * Records admissions as one extrinsic (`provenance.admit` each) and says, in order, what the chain's rules made of
   * each: one refused admission leaves the others recorded. Throws only when the extrinsic as a whole failed.
   */
  admitMany(admissions: readonly Admission[]): Promise<readonly AdmissionOutcome[]>;
  /** The admitted participants recorded on chain for the task. */
  admitted(task: string): { account: string; identityKey: string }[];
  /**
   * Who may join the task now (its owner changes the list on chain after creation) and whether the owner stopped it;
   * undefined while the chain has no record of the task.
   */
  membership(task: string): { allowed: readonly string[]; stopped: boolean } | undefined;
  /**
   * Stops the task on chain with the reason recorded (`provenance.stopTask`): the coordinator ends a task whose round
   * used up its attempts.
   */
  stopTask(task: string, reason: string): Promise<void>;
}

export interface CoordinatorDeps extends Omit<RoundDeps, 'ledger' | 'publish'> {
  readonly account: Account;
  /** The Ed25519 public key matching `serverKey` (hex). */
  readonly serverPublicKey: string;
  readonly ledger: CoordinatorLedger;
  /**
   * Builds a model package on the training backend: its spec and initial weights (the package's own, else its
   * initializers seeded by `seed`; deterministic, so a restart recomputes the same ones).
   */
  describeModel(pkg: ModelPackage, seed: string | null): Promise<{ spec: ModelSpec; initial: Float32Array }>;
  publish(topic: string, message: AnnouncementHeader | AnnouncementView): Promise<void>;
}

export interface CoordinatorOptions {
  /** A participant counts as online when it was heard from within this window (default 15 s). */
  readonly onlineWithinMs?: number;
  /** How often a task waiting for participants looks again (default 500 ms). */
  readonly pollMs?: number;
  /** Admissions per extrinsic and waiting at most (defaults ADMISSION_BATCH and MAX_QUEUED_ADMISSIONS). */
  readonly admissions?: { readonly maxBatch?: number; readonly maxQueued?: number };
}

/**
 * What an owner submits: the spec without the parts the coordinator fills in (its keys, and what it reads from the
 * model package the owner stored: name, digest, parameters, the initial model's hash).
 */
export type TaskInput = Omit<TaskSpec, 'coordinator' | 'model' | 'version'> & {
  model: { fid: string; name?: string; initialSeed: string | null };
};

export interface JoinRequest {
  readonly account: string;
  /** The participant's Ed25519 round-signing key (hex). */
  readonly identityKey: string;
  /** sr25519 signature of `admissionMessage(genesisHash, task, identityKey)` by the account (hex). */
  readonly signature: string;
  /** The participant's X25519 reader key (hex): a task's private models are wrapped for it. */
  readonly readerKey: string;
  /** When the participant signed `joinMessage` (ms since the epoch), and that signature by the account (hex). */
  readonly signedAt: number;
  readonly joinSignature: string;
  /** Where the participant listens; for operators only (round traffic is dialled by the participant). */
  readonly peer: { peerId: string; addrs: string[] };
}

export type RoundEvent =
  | { kind: 'attempt'; task: string; round: number; attempt: number; cohort: number }
  | { kind: 'phase'; task: string; round: number; attempt: number; phase: string }
  | { kind: 'outcome'; task: string; round: number; attempt: number; outcome: AttemptOutcome }
  | { kind: 'finished'; task: string };

export interface Coordinator {
  /**
   * Validates, stores and records a task (HTTP `POST /v1/tasks`, `ailink coordinator --create-task`, the demo).
   * @throws INVALID_INPUT for a bad spec, TASK_SECAGG_FRAGILE for SecAgg settings that cannot survive the dropouts
   *   cohort.min plans for
   */
  createTask(input: unknown): Promise<TaskRow>;
  task(id: string): TaskRow | undefined;
  tasks(): TaskRow[];
  rounds(id: string): RoundRow[];
  participants(id: string): ParticipantRow[];
  /** The open attempt's state, for the API and progress bars. */
  status(
    id: string,
  ): { round: number; attempt: number; phase: string; expecting: string[]; deadline: number } | null;
  /** The initial model's fid (round 0 starts from it). */
  initialModel(id: string): { fid: string; hash: string } | undefined;
  /**
   * Admits an account on chain (batched with the other joins that arrive meanwhile) and registers it.
   * @throws ROUND_NOT_ADMITTED, TASK_STOPPED, AUTH_BAD_SIGNATURE, INVALID_INPUT for a join the chain would refuse (none
   *   of them is queued); JOIN_QUEUE_FULL when too many admissions wait already; CHAIN_* when the chain failed it
   */
  join(task: string, request: JoinRequest): Promise<ParticipantRow>;
  /** Admissions waiting and in flight, and how many go out per extrinsic: what a new join waits behind. */
  admissionLoad(): { queued: number; inFlight: number; batch: number };
  /**
   * One request on the round protocol (already decoded from JSON) from `remotePeer` (the connection's authenticated
   * peer id); returns the reply body.
   */
  handle(raw: unknown, remotePeer: string): Promise<unknown>;
  /** Runs every unfinished task (resuming open attempts) until `stop`. */
  start(): void;
  onEvent(listener: (e: RoundEvent) => void): () => void;
  /** Resolves when the task has run all its rounds. */
  finished(id: string, options?: { signal?: AbortSignal }): Promise<void>;
  stop(): Promise<void>;
}

export const topicOf = (task: string) => `/ailink/task/${task}/1`;

/**
 * The model must take the data as the schema shapes it and answer with one output per class (or one unit for two
 * classes and a binary loss).
 * @throws INVALID_INPUT saying which side to change
 */
export function checkModelFitsTask(model: ModelSpec, spec: TaskSpec): void {
  const expected = featureShape(spec.data);
  if (model.inputShape.join('x') !== expected.join('x'))
    throw new AilinkError(
      'INVALID_INPUT',
      `the model takes input [${model.inputShape.join(', ')}], the data schema gives [${expected.join(', ')}]: change the model's input shape or the schema`,
    );
  const classes = classesOf(spec.data).length;
  const binary = spec.training.loss === 'binary_crossentropy';
  if (binary ? model.outputUnits !== 1 : model.outputUnits !== classes)
    throw new AilinkError(
      'INVALID_INPUT',
      `the model outputs ${model.outputUnits} units; ${binary ? 'binary_crossentropy needs 1' : `the data has ${classes} classes`}`,
    );
}

/**
 * The coordinator service: tasks, admissions, and one loop per task that runs its rounds (round.ts) until all are
 * done. Transport-agnostic: the CLI wires `handle` to the p2p round protocol, `publish` to gossip and the rest to
 * HTTP.
 */
export function createCoordinator(deps: CoordinatorDeps, options: CoordinatorOptions = {}): Coordinator {
  const onlineWithinMs = options.onlineWithinMs ?? 15_000;
  const pollMs = options.pollMs ?? 500;
  const { store } = deps;
  const runners = new Map<string, AttemptRunner>();
  /** Per task, the views of its latest announcement (see `viewFor`). */
  const views = new Map<string, { version: string; view: (member: string) => AnnouncementView }>();
  /**
   * Round 0's model per task; `fid` is null until stored, `readers` set when it is private. Its bytes are not kept:
   * they are the weights again (a second copy of a model's size, 403 MB at 100M weights), encoded when stored.
   */
  const initials = new Map<
    string,
    { fid: string | null; hash: string; name: string; weights: Float32Array; readers?: Set<string> }
  >();
  const listeners = new Set<(e: RoundEvent) => void>();
  const emit = (e: RoundEvent) => {
    for (const l of listeners) l(e);
  };
  const controller = new AbortController();
  // Every task loop and stage wait listens on this one signal.
  setMaxListeners(0, controller.signal);
  const loops: Promise<void>[] = [];
  let started = false;
  const admissions = createAdmissionQueue({
    ...options.admissions,
    async submit(batch) {
      const outcomes = await deps.ledger.admitMany(batch);
      // A refusal for an account the chain holds with this very key is an answer, not an error: an earlier
      // submission that timed out here landed after all, or a retried join raced its first one.
      return outcomes.map((o, i) => {
        if (o.admitted) return o;
        const a = batch[i]!;
        const held = deps.ledger.admitted(a.task).find((p) => p.account === a.account);
        return held?.identityKey === a.identityKey ? { admitted: true as const } : o;
      });
    },
  });

  const requireTask = (id: string): TaskRow => {
    const task = store.task(id);
    if (task === undefined) throw new AilinkError('TASK_NOT_FOUND', `no task ${id} on this coordinator`);
    return task;
  };

  /**
   * Round 0's model: recomputed from the seed, checked against the spec. A public one is stored at once
   * (content-addressed, so a restart stores the same object); a private one when round 0's attempt opens (below).
   */
  async function initialOf(task: TaskRow) {
    const cached = initials.get(task.id);
    if (cached) return cached;
    const { initial: weights } = await modelOf(
      task.spec.model.fid,
      task.spec.model.digest,
      task.spec.model.initialSeed,
    );
    const hash = modelHashOf(task.spec.model.name, weights);
    if (hash !== task.spec.model.initialHash) {
      throw new AilinkError(
        'MODEL_UNVERIFIED',
        `the initial weights of ${task.spec.model.name} hash to ${hash}, the task says ${task.spec.model.initialHash}`,
      );
    }
    const fid =
      modelAccessOf(task.spec) === null
        ? await deps.objects.put(modelObject(task.spec.model.name, weights), `${task.id}/initial-model.ailm`)
        : null;
    const entry: typeof initials extends Map<string, infer E> ? E : never = {
      fid,
      hash,
      name: task.spec.model.name,
      weights,
    };
    initials.set(task.id, entry);
    return entry;
  }

  /**
   * The start model of a new attempt, and who may be in its cohort. Public models: anyone. A private model is read
   * only by the reader keys it is wrapped for (its round's `modelReaders`: everyone joined when it was stored).
   * Round 0's private model is stored here, not when the task starts (nobody has joined then): wrapped for everyone
   * joined, and stored again — a new fid, same hash, which is all round 0's lineage checks — when too few of those
   * it is wrapped for are online while enough participants are (late joiners after an aborted attempt).
   */
  async function startOf(task: TaskRow, last: ReturnType<typeof store.rounds>[number] | undefined) {
    const yes = () => true;
    if (modelAccessOf(task.spec) === null) {
      const initial = await initialOf(task);
      return {
        model: last
          ? { fid: last.modelFid, hash: last.modelHash }
          : { fid: initial.fid!, hash: initial.hash },
        canRead: yes,
      };
    }
    if (last) {
      // Rounds recorded before the task had model readers (none): nobody is kept out.
      const readers = last.modelReaders === undefined ? null : new Set(last.modelReaders);
      return {
        model: { fid: last.modelFid, hash: last.modelHash },
        canRead: readers === null ? yes : (p: ParticipantRow) => readers.has(p.readerKey),
      };
    }
    const initial = await initialOf(task);
    const now = deps.clock.now();
    const online = store.participants(task.id).filter((p) => now - p.lastSeen <= onlineWithinMs);
    const covered = (p: ParticipantRow) => initial.readers?.has(p.readerKey) ?? false;
    const enough = online.filter((p) => p.readerKey !== '').length >= task.spec.cohort.min;
    if (enough && (initial.fid === null || online.filter(covered).length < task.spec.cohort.min)) {
      const stored = await storeModel(
        deps,
        task.spec,
        modelObject(initial.name, initial.weights),
        `${task.id}/initial-model.ailm`,
        readerKeysOf(store.participants(task.id)),
      );
      initial.fid = stored.fid;
      initial.readers = new Set(stored.readers);
    }
    // Before it is stored (too few online) the attempt cannot open anyway: openAttempt refuses with too few.
    return { model: { fid: initial.fid ?? '', hash: initial.hash }, canRead: covered };
  }

  /**
   * What the task runs next: its statistics round (once, before round 0, when its data needs federated statistics),
   * its training rounds, then a closing evaluation round when organisations hold rows out; null when it is done.
   * `closing`: as if this training round, closing now, were recorded already.
   */
  function nextRound(
    task: TaskRow,
    closing?: { round: number; survivors: number },
  ): { kind: RoundKind; round: number } | null {
    const spec = task.spec;
    if (needsStatistics(spec.data) && store.statistics(task.id) === undefined)
      return { kind: 'statistics', round: STATISTICS_ROUND };
    const done = [
      ...store.rounds(task.id),
      ...(closing === undefined ? [] : [{ ...closing, kind: 'train' as const }]),
    ];
    const survivors = done
      .filter((r) => (r.kind ?? 'train') === 'train')
      .sort((a, b) => a.round - b.round)
      .map((r) => r.survivors);
    const trained = survivors.length;
    // Distributed DP plans the next round at cohort.min survivors, the least noise it can carry.
    if (trained < spec.rounds && withinBudget(spec, trained, survivors))
      return { kind: 'train', round: done.length };
    if (trained < spec.rounds)
      deps.log(
        `task ${task.id} ends after ${trained} of ${spec.rounds} rounds: one more would take ε to ${projectedEpsilon(spec, trained, survivors).toFixed(3)}, over its budget ${spec.dp!.epsilonBudget}`,
      );
    if (evaluatesClientSide(spec) && trained > 0 && !done.some((r) => r.kind === 'evaluation'))
      return { kind: 'evaluation', round: done.length };
    return null;
  }

  /**
   * The task's retention (issue 17 item 9): deletes the recompute material of every round the chain says is past it.
   * The coordinator owns the material, and only an object's owner may delete it on chain; each organisation deletes
   * its own updates (src/participant/runtime.ts). Names are the coordinator's own, so a material stored twice (a
   * restart between storing and anchoring) goes too. Run when the task loop starts (a restart catches up) and after
   * each round; a failure is logged and tried again after the next round.
   */
  async function collectExpired(task: TaskRow): Promise<void> {
    const retention = retentionOf(task.spec);
    if (retention === null) return;
    try {
      const latest = latestAnchoredRound(deps.ledger.anchored(task.id));
      const expired = expiredRoundObjects(
        await deps.objects.owned(roundObjectsPrefix(task.id)),
        task.id,
        MATERIAL_OBJECT_LEAF,
        retention,
        latest,
      );
      if (expired.length === 0) return;
      await deps.objects.delete(expired);
      deps.log(
        `task ${task.id}: deleted the recompute material of ${expired.length} round(s) up to ${latest! - retention.updateRounds} (retention: ${retention.updateRounds} rounds)`,
      );
    } catch (err) {
      deps.log(
        `task ${task.id}: could not delete expired recompute material (tried again after the next round): ${(err as Error).message}`,
      );
    }
  }

  async function runTask(task: TaskRow, signal: AbortSignal): Promise<void> {
    const publish = (m: AnnouncementHeader | AnnouncementView) => deps.publish(topicOf(task.id), m);
    const initial = await initialOf(task);
    await collectExpired(task);
    /** The next attempt's cohort, drawn with the last round's close (its seed in the close's extrinsic). */
    let predrawn: PredrawnCohort | undefined;
    const nextCohort: RoundDeps['nextCohort'] = (closing) => {
      predrawn = undefined;
      // A private model's readers are fixed when the next round's start model is stored (this close): who may be
      // drawn is known only then, so its draw waits for the next attempt.
      if (!task.spec.secagg.enabled || modelAccessOf(task.spec) !== null || closing.kind !== 'train')
        return null;
      const membership = deps.ledger.membership(task.id);
      if (membership?.stopped) return null;
      const next = nextRound(task, closing);
      if (next === null || next.kind === 'statistics') return null;
      try {
        const cohort = drawCohort(deps, task, next.round, onlineWithinMs, (p) =>
          membership === undefined ? true : membership.allowed.includes(p.account),
        );
        predrawn = { round: next.round, attempt: nextAttemptNumber(deps, task, next.round), cohort };
        return predrawn;
      } catch (err) {
        // Too few online now: the next attempt draws when it opens, as without this.
        if (hasCode(err, 'ROUND_NOT_ADMITTED')) return null;
        throw err;
      }
    };
    for (;;) {
      if (signal.aborted) return;
      const membership = deps.ledger.membership(task.id);
      if (membership?.stopped) {
        // The owner stopped it on chain: no further round (an open attempt is abandoned; the chain would refuse it).
        deps.log(`task ${task.id} was stopped by its owner`);
        store.finishTask(task.id);
        emit({ kind: 'finished', task: task.id });
        return;
      }
      let attempt = store.openAttempt(task.id);
      if (attempt === undefined) {
        const next = nextRound(task);
        if (next === null) {
          store.finishTask(task.id);
          emit({ kind: 'finished', task: task.id });
          return;
        }
        // A round whose attempts all aborted ends the task (checked here, from the store, so a coordinator restarted
        // after the last attempt ends it too): its last attempt's signed announcement told the organisations why, and
        // the chain records the same reason with the stop.
        const tried = store.attempts(task.id, next.round);
        if (tried.length >= maxAttemptsOf(task.spec)) {
          const reason = roundEndedReason(
            next.round,
            tried.length,
            maxAttemptsOf(task.spec),
            tried.at(-1)?.reason,
          );
          try {
            await deps.ledger.stopTask(task.id, reason);
          } catch (err) {
            // Not recorded (the chain is unreachable, or it was stopped meanwhile): look again after a pause.
            if (signal.aborted) return;
            deps.log(
              `task ${task.id}: could not record its stop on chain (${(err as Error).message}); retrying`,
            );
            await sleep(10 * pollMs, signal);
            continue;
          }
          deps.log(`task ${task.id} ends: ${reason}`);
          store.finishTask(task.id);
          emit({ kind: 'finished', task: task.id });
          return;
        }
        let start: Awaited<ReturnType<typeof startOf>>;
        try {
          start = await startOf(task, store.rounds(task.id).at(-1));
        } catch (err) {
          // Storing a private initial model failed (storage or chain): the round waits and tries again.
          if (signal.aborted) return;
          deps.log(
            `round ${next.round}: could not store its start model (${(err as Error).message}); retrying`,
          );
          await sleep(10 * pollMs, signal);
          continue;
        }
        const statistics = store.statistics(task.id);
        try {
          attempt = await openAttempt(
            deps,
            task,
            next.round,
            {
              kind: next.kind,
              startModel: start.model,
              preprocessing: statistics ? { fid: statistics.fid, digest: statistics.digest } : null,
            },
            onlineWithinMs,
            // Only those the owner still admits (it may have removed some since they joined) and who can read the
            // round's start model.
            (p) => (membership?.allowed.includes(p.account) ?? true) && start.canRead(p),
            // The task's first round waits up to joinMs from its creation for every organisation to join: they
            // start together, and one that is a few blocks late should not sit the first round out.
            store.rounds(task.id).length === 0 && statistics === undefined
              ? task.createdAt + task.spec.deadlines.joinMs
              : 0,
            predrawn,
          );
          predrawn = undefined;
        } catch (err) {
          if (signal.aborted) return;
          // Too few online: look again soon. The chain did not record the cohort (drawing the graph seed): the
          // attempt was never announced, so it opens again, with a fresh draw, after a pause.
          if (!hasCode(err, 'ROUND_NOT_ADMITTED'))
            deps.log(
              `round ${next.round}: could not draw its graph seed on chain (${(err as Error).message}); retrying`,
            );
          await sleep(hasCode(err, 'ROUND_NOT_ADMITTED') ? pollMs : 10 * pollMs, signal);
          continue;
        }
      }
      const round = attempt.round;
      emit({
        kind: 'attempt',
        task: task.id,
        round,
        attempt: attempt.attempt,
        cohort: attempt.setup.cohort.length,
      });
      const last = store.rounds(task.id).at(-1);
      const state = store.strategyState(task.id) ?? strategyOf(task.spec).init(initial.weights);
      const parent = last ? { fid: last.manifestFid, digest: last.manifestDigest } : null;
      const onPhase = (key: { task: string; round: number; attempt: number }, phase: string) =>
        emit({ kind: 'phase', ...key, phase });
      const runner = new AttemptRunner(
        { ...deps, publish, onPhase, nextCohort },
        task,
        attempt,
        state,
        parent,
      );
      runners.set(task.id, runner);
      const outcome = await runner.run(signal).finally(() => runners.delete(task.id));
      if (outcome.kind === 'done') await collectExpired(task);
      emit({ kind: 'outcome', task: task.id, round, attempt: attempt.attempt, outcome });
      if (outcome.kind === 'aborted')
        deps.log(`round ${round} attempt ${attempt.attempt} aborted: ${outcome.reason}`);
    }
  }

  /**
   * The model package stored as `fid`, checked against its digest when one is known, built on the training backend.
   * @throws MODEL_UNVERIFIED when the bytes do not hash to `digest`; MODEL_INVALID and the like for a bad model
   */
  async function modelOf(fid: string, digest: string | null, seed: string | null) {
    const bytes = await deps.objects.get(fid, { signal: AbortSignal.timeout(60_000) });
    if (digest !== null && sha256Hex(bytes) !== digest)
      throw new AilinkError(
        'MODEL_UNVERIFIED',
        `the model package ${fid.slice(0, 16)}… does not hash to ${digest}`,
      );
    const pkg = decodeModelPackage(bytes);
    if (seed === null && pkg.weights === null)
      throw new AilinkError(
        'INVALID_INPUT',
        'model.initialSeed: the model carries no weights, so a seed is needed',
      );
    return { pkg, ...(await deps.describeModel(pkg, pkg.weights === null ? seed : null)) };
  }

  const startLoop = (task: TaskRow) => {
    const loop = runTask(task, controller.signal).catch((err: Error) => {
      if (!controller.signal.aborted) deps.log(`task ${task.id} stopped: ${err.message}`);
    });
    loops.push(loop);
  };

  return {
    async createTask(input) {
      const partial = input as TaskInput;
      const fid = partial?.model?.fid;
      const seed = partial?.model?.initialSeed ?? null;
      if (
        typeof fid !== 'string' ||
        !/^[0-9a-f]{64}$/.test(fid) ||
        (seed !== null && typeof seed !== 'string')
      )
        throw new AilinkError(
          'INVALID_INPUT',
          'expected model: { fid: <the stored model package, 64 hex>, initialSeed: string | null, name?: string }',
        );
      const model = await modelOf(fid, null, seed);
      const name = partial.model.name ?? model.spec.name;
      const spec = parseTaskSpec({
        ...partial,
        version: 2,
        coordinator: {
          account: deps.account.address,
          serverKey: deps.serverPublicKey,
          readerKey: deps.account.readerKey,
        },
        model: {
          name,
          fid,
          digest: modelPackageDigest(model.pkg),
          parameters: model.spec.parameters,
          initialSeed: model.pkg.weights === null ? seed : null,
          initialHash: modelHashOf(name, model.initial),
        },
      });
      checkModelFitsTask(model.spec, spec);
      // Only at creation (specs recorded before the rule still parse and run).
      checkSecAggSurvives(spec);
      strategyOf(spec); // refuses bad strategy options before anything is recorded
      if (spec.dp !== null && !withinBudget(spec, 0)) {
        throw new AilinkError(
          'INVALID_INPUT',
          `dp: one round at noise multiplier ${spec.dp.noiseMultiplier} spends ε ${projectedEpsilon(spec, 0).toFixed(3)} at δ ${spec.dp.delta}${isDistributedDp(spec) ? ` (distributed, with cohort.min ${spec.cohort.min} survivors)` : ''}, over the budget ${spec.dp.epsilonBudget}: raise noiseMultiplier or epsilonBudget`,
        );
      }
      const id = taskIdOf(spec);
      if (store.task(id) !== undefined)
        throw new AilinkError('INVALID_INPUT', `task ${id} already exists (same spec)`);
      const digest = taskDigest(spec);
      // Stored before it is recorded: the chain never names a spec that cannot be read.
      const specFid = await deps.objects.put(taskSpecBytes(spec), `${id}/spec.json`);
      await deps.ledger.createTask(id, digest, spec.admitted);
      const row: TaskRow = { id, spec, digest, specFid, createdAt: deps.clock.now(), status: 'running' };
      store.addTask(row);
      if (started) startLoop(row);
      return row;
    },
    task: (id) => store.task(id),
    tasks: () => store.tasks(),
    rounds: (id) => store.rounds(requireTask(id).id),
    participants: (id) => store.participants(requireTask(id).id),
    status(id) {
      requireTask(id);
      const runner = runners.get(id);
      const open = store.openAttempt(id);
      if (open === undefined) return null;
      return {
        round: open.round,
        attempt: open.attempt,
        phase: runner?.phase ?? open.phase,
        expecting: runner?.expecting() ?? [],
        deadline: open.deadline,
      };
    },
    initialModel(id) {
      const i = initials.get(id);
      return i?.fid == null ? undefined : { fid: i.fid, hash: i.hash };
    },
    async join(taskId, request) {
      const task = requireTask(taskId);
      const membership = deps.ledger.membership(taskId);
      if (membership?.stopped)
        throw new AilinkError('TASK_STOPPED', `task ${taskId} was stopped by its owner: it takes no joins`);
      if (!(membership?.allowed ?? task.spec.admitted).includes(request.account)) {
        throw new AilinkError(
          'ROUND_NOT_ADMITTED',
          `${request.account} is not on the admission list of ${taskId}`,
        );
      }
      if (!/^[0-9a-f]{64}$/.test(request.identityKey) || !/^[0-9a-f]{128}$/.test(request.signature)) {
        throw new AilinkError(
          'INVALID_INPUT',
          'expected identityKey as 32 bytes and signature as 64 bytes of hex',
        );
      }
      if (typeof request.readerKey !== 'string' || !/^[0-9a-f]{64}$/.test(request.readerKey)) {
        throw new AilinkError(
          'INVALID_INPUT',
          `expected readerKey as the participant's X25519 key, 64 lowercase hex characters, got ${JSON.stringify(request.readerKey)?.slice(0, 80)}`,
        );
      }
      if (
        !verifySignature(
          request.account,
          admissionMessage(deps.ledger.genesisHash, taskId, request.identityKey),
          fromHex(request.signature),
        )
      ) {
        throw new AilinkError(
          'AUTH_BAD_SIGNATURE',
          `the join request is not signed by ${request.account} for ${taskId}`,
        );
      }
      checkJoinSignature(taskId, request, store.participant(taskId, request.account), deps.clock.now());
      const onChain = deps.ledger.admitted(taskId).find((p) => p.account === request.account);
      if (onChain !== undefined && onChain.identityKey !== request.identityKey) {
        throw new AilinkError(
          'ROUND_NOT_ADMITTED',
          `${request.account} was admitted with another round key (${onChain.identityKey.slice(0, 16)}…); keys are not swapped mid-task`,
        );
      }
      // Checked above is everything the chain's admit rule checks, so the batch an admission goes out in is not
      // failed by another's join; a rule that still refuses one (the owner removed the account meanwhile) refuses
      // that one alone.
      if (onChain === undefined)
        await admissions.admit({
          task: taskId,
          account: request.account,
          identityKey: request.identityKey,
          signature: request.signature,
        });
      const now = deps.clock.now();
      const row: ParticipantRow = {
        task: taskId,
        account: request.account,
        identityKey: request.identityKey,
        readerKey: request.readerKey,
        joinSignedAt: request.signedAt,
        peer: request.peer,
        joinedAt: store.participant(taskId, request.account)?.joinedAt ?? now,
        lastSeen: now,
      };
      store.upsertParticipant(row);
      return row;
    },
    admissionLoad: () => ({ ...admissions.load() }),
    async handle(raw, remotePeer) {
      // A stopped coordinator is as good as unreachable: the caller's transport error makes participants retry.
      if (controller.signal.aborted) throw new AilinkError('ABORTED', 'the coordinator is stopping');
      try {
        const request = parseRequest(raw);
        const task = requireTask(request.task);
        const participant = store.participant(task.id, request.from);
        if (participant === undefined) {
          throw new AilinkError('ROUND_NOT_ADMITTED', `${request.from} has not joined ${task.id}`);
        }
        // Only the peer the participant's signed join names speaks for it: anyone can write its address in `from`,
        // and counting that as a sign of life would keep a dead participant in the cohorts.
        if (participant.peer.peerId !== remotePeer) {
          throw new AilinkError(
            'AUTH_NOT_AUTHORISED',
            `${request.from} joined ${task.id} from peer ${participant.peer.peerId}; this request comes from ${remotePeer}: join again from this peer`,
          );
        }
        store.touch(task.id, request.from, deps.clock.now());
        if (request.kind === 'view')
          return { ok: true, announcement: viewFor(task.id, request.from, request.have) };
        const runner = runners.get(task.id);
        if (runner === undefined) {
          throw new AilinkError(
            'ROUND_STALE',
            `no round of ${task.id} is open for ${request.stage} messages`,
          );
        }
        runner.accept(request.stage, request.from, request.round, request.attempt, request.message);
        return { ok: true };
      } catch (err) {
        if (hasCode(err)) return { ok: false, error: err.toJSON() };
        return { ok: false, error: { code: 'INVALID_INPUT', message: (err as Error).message } };
      }
    },
    start() {
      if (started) return;
      started = true;
      for (const task of store.tasks()) {
        if (task.status === 'running') startLoop(task);
        // A finished task's last sweep may have failed (or the coordinator stopped before it): once more.
        else loops.push(collectExpired(task));
      }
    },
    onEvent(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    finished(id, opts = {}) {
      return new Promise((resolve, reject) => {
        if (store.task(id)?.status === 'finished') return resolve();
        const off = this.onEvent((e) => {
          if (e.kind === 'finished' && e.task === id) {
            off();
            resolve();
          }
        });
        opts.signal?.addEventListener('abort', () => {
          off();
          reject(opts.signal?.reason);
        });
      });
    },
    async stop() {
      controller.abort(new AilinkError('ABORTED', 'the coordinator is stopping'));
      await Promise.allSettled(loops);
    },
  };

  /**
   * `member`'s view of the task's latest announcement (the open attempt's current one, else the last round's outcome),
   * or null when there is none or it is the one the member says it has. The views of one announcement are cut from one
   * tree, built on its first request.
   */
  function viewFor(task: string, member: string, have: string | undefined): AnnouncementView | null {
    const open = store.attemptHead(task);
    if (open === undefined) return null;
    const key = announcementKey({ round: open.round, attempt: open.attempt, phase: open.phase as Phase });
    if (key === have) return null;
    // The deadline too: an announcement is signed again (same phase, new deadline) only when it changes.
    const version = `${key}@${open.deadline}`;
    let cached = views.get(task);
    if (cached?.version !== version) {
      const wire = store.announcement(task, open.round, open.attempt, open.phase) as
        | WireAnnouncement
        | undefined;
      if (wire === undefined) return null;
      cached = { version, view: viewsOf(wire) };
      views.set(task, cached);
    }
    return cached.view(member);
  }
}

/**
 * The join's own signature: it binds the reader key, the peer and the signing time, which the admission (public on
 * chain) does not. Signing times must increase strictly: a join signed at or before the last one accepted is a replay
 * (resent by anyone who saw it, it would mark the member as alive or bring back an older peer or key).
 */
function checkJoinSignature(
  task: string,
  request: JoinRequest,
  previous: ParticipantRow | undefined,
  now: number,
): void {
  const { account, identityKey, readerKey, signedAt } = request;
  if (!Number.isSafeInteger(signedAt) || !/^[0-9a-f]{128}$/.test(request.joinSignature ?? '')) {
    throw new AilinkError(
      'INVALID_INPUT',
      'expected signedAt as milliseconds since the epoch and joinSignature as 64 bytes of hex',
    );
  }
  if (
    !verifySignature(
      account,
      joinMessage({ task, account, identityKey, readerKey, signedAt, peerId: request.peer.peerId }),
      fromHex(request.joinSignature),
    )
  ) {
    throw new AilinkError(
      'AUTH_BAD_SIGNATURE',
      `the join's reader key, time and peer are not signed by ${account}: sign joinMessage(task, account, identityKey, readerKey, signedAt, peer.peerId)`,
    );
  }
  if (Math.abs(now - signedAt) > JOIN_WINDOW_MS) {
    throw new AilinkError(
      'AUTH_EXPIRED',
      `the join was signed at ${new Date(signedAt).toISOString()}, the coordinator's clock reads ${new Date(now).toISOString()}; at most ${JOIN_WINDOW_MS / 60_000} minutes apart are accepted: check the clock and join again`,
    );
  }
  if (previous !== undefined && signedAt <= previous.joinSignedAt) {
    throw new AilinkError(
      'AUTH_REPLAYED',
      `${account} joined ${task} with a join signed at ${new Date(previous.joinSignedAt).toISOString()}; this one was signed ${signedAt === previous.joinSignedAt ? 'at the same time (a replay)' : 'earlier'}: sign a new join`,
    );
  }
}
