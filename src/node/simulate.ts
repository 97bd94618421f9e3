import { createHash } from 'node:crypto';
import { EventEmitter, setMaxListeners } from 'node:events';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeModelPackage, type ModelPackage } from '../../models/index.ts';
import { signingKeyPair } from '../aggregation/index.ts';
import { createCoordinator, openCoordinatorStore, type RoundEvent } from '../coordinator/index.ts';
import type { Examples } from '../participant/examples.ts';
import type { LocalData } from '../participant/local-data.ts';
import { createParticipant } from '../participant/runtime.ts';
import { poolTrainer, type TrainingPool } from '../participant/train-pool.ts';
import { toHex } from '../shared/bytes.ts';
import { type Clock, systemClock, systemRandom } from '../shared/clock.ts';
import { AilinkError } from '../shared/errors.ts';
import {
  type DataSchema,
  decodeModelBytes,
  evaluatesClientSide,
  parseManifest,
  survivableMin,
  type TaskSpec,
} from '../task/index.ts';
import {
  memoryLedger,
  memoryObjects,
  STAND_IN_DATA,
  STAND_IN_MODEL_BYTES,
  STAND_IN_MODEL_FID,
  seededRandom,
  standInDescribe,
  standInLocalData,
  standInTrainer,
  twinAccount,
  twinIdentityKey,
  wholeOf,
} from './twins.ts';

/**
 * `ailink simulate`: N virtual organisations and their coordinator in one process, through the real round protocol.
 * Real: the coordinator (task creation, admissions, the round state machine, its SQLite store and update spool),
 * every participant's runtime (joining, checking signed announcements against the "chain", SecAgg+ keys, shares,
 * double masking, consistency and unmasking, quantization, commitments), the strategy and the stored model and
 * manifest formats. Twinned (src/node/twins.ts): the chain (a ledger in Maps), storage (objects in a Map) and the
 * transport (requests and gossip cross a JSON boundary inside the process, as they cross the wire). Training is the
 * deterministic stand-in of `dimension` weights, so the run costs what the protocol costs — or, with `real`, a real
 * model on each organisation's slice of a real dataset, trained and scored on a training pool exactly as a real
 * participant's node trains (poolTrainer), the coordinator scoring each global model on the data's test set.
 */

/**
 * A real model and dataset, as `ailink demo` reads them (src/cli/demo-data.ts's DemoData extends it): the
 * schema, the model package, the training settings, the coordinator's test set if the data has one, and each
 * organisation's slice.
 */
export interface SimulationData {
  /** For people: what was read. */
  readonly title: string;
  readonly schema: DataSchema;
  readonly model: { readonly pkg: ModelPackage; readonly name: string };
  readonly training: TaskSpec['training'];
  localFor(organisations: number): TaskSpec['local'];
  /** Roughly how fast one core trains this model on this data: sizes the training stage's deadline. */
  readonly samplesPerSecond: number;
  /** Rows (or images) in all. */
  readonly rows: number;
  /** The coordinator's own test set, when the source has one: it scores every global model on it. */
  readonly testData?: Examples;
  /** Organisation i's data: its slice of the rows, IID (alpha null) or Dirichlet(alpha) over the label, from `seed`. */
  organisations(
    count: number,
    alpha: number | null,
    seed?: string,
  ): ((spec: TaskSpec) => Promise<LocalData>)[];
}

/** Real training: the data, and the pool that trains it (its threads bound how many organisations train at once). */
export interface RealWorkload {
  readonly data: SimulationData;
  readonly pool: TrainingPool;
  /** Dirichlet(α) label skew among the organisations; null or absent: IID slices. */
  readonly alpha?: number | null;
}

/** The most organisations a task's cohort takes (the spec's cap). */
export const SIMULATE_MAX_ORGANISATIONS = 1000;
/** SecAgg needs three organisations at least. */
export const SIMULATE_MIN_ORGANISATIONS = 3;

export interface SimulationOptions {
  readonly organisations: number;
  readonly rounds: number;
  /** A real model on real data instead of the stand-in (`dimension` and `examples` then do not apply). */
  readonly real?: RealWorkload;
  /** Weights of the stand-in model (default 10,000). */
  readonly dimension?: number;
  /** Examples each organisation claims (its FedAvg weight; default 100). */
  readonly examples?: number;
  /** Every party's randomness is drawn from this seed: the same seed repeats a run exactly. */
  readonly seed?: string;
  /** Where the coordinator keeps its SQLite store and spool (default: a fresh temporary directory, removed after). */
  readonly dir?: string;
  /** How often each organisation polls the coordinator (default: 200 ms, plus 2 ms per organisation). */
  readonly pollMs?: number;
  readonly signal?: AbortSignal;
}

export type SimulationProgress =
  | { readonly kind: 'joined'; readonly organisations: number }
  | { readonly kind: 'phase'; readonly round: number; readonly attempt: number; readonly phase: string }
  | {
      readonly kind: 'round';
      readonly round: number;
      readonly seconds: number;
      /** CPU seconds the process spent in the round (user + system): the figure a busy machine distorts least. */
      readonly cpuSeconds: number;
      readonly survivors: number;
      readonly rssMib: number;
      /** The round's global model on the coordinator's test set (null without one: the stand-in, a table). */
      readonly accuracy: number | null;
      readonly loss: number | null;
      /** The organisations' held-out rows scoring the round's start model (null when they hold none out). */
      readonly heldOutAccuracy: number | null;
    }
  | {
      /** The closing round in which the organisations only scored the final model on their held-out rows. */
      readonly kind: 'final';
      readonly accuracy: number;
      readonly loss: number;
      readonly examples: number;
    }
  | { readonly kind: 'aborted'; readonly round: number; readonly attempt: number; readonly reason: string };

export interface RoundScore {
  /** The round's global model on the coordinator's test set (null without one). */
  readonly accuracy: number | null;
  readonly loss: number | null;
  /** The organisations' held-out rows scoring the model the round started from (null when none are held out). */
  readonly heldOutAccuracy: number | null;
  readonly heldOutLoss: number | null;
}

export interface SimulationResult {
  readonly organisations: number;
  readonly rounds: number;
  readonly dimension: number;
  readonly task: string;
  /** Seconds each round took, from its first attempt's start to its model being anchored. */
  readonly roundSeconds: readonly number[];
  /** CPU seconds (user + system, all threads) the process spent in each round. */
  readonly roundCpuSeconds: readonly number[];
  /** Seconds from the start to every organisation having joined. */
  readonly joinSeconds: number;
  readonly totalSeconds: number;
  /** The process's peak resident set (MiB) when the run ended: the simulation's, if it ran alone. */
  readonly peakRssMib: number;
  readonly survivors: readonly number[];
  readonly attempts: number;
  /** The model trained: 'stand-in', or the real model's name (mlp, cnn, logistic-regression). */
  readonly modelName: string;
  /** What each training round's model scored (all null for the stand-in). */
  readonly scores: readonly RoundScore[];
  /**
   * The final model's accuracy and loss: on the organisations' held-out rows when they hold rows out (the closing
   * evaluation round, summed securely), else on the coordinator's test set; null for the stand-in.
   */
  readonly final: {
    readonly accuracy: number;
    readonly loss: number;
    readonly on: 'test' | 'held-out';
  } | null;
  /** The last round's global model, as stored. */
  readonly model: Float32Array;
  /** SHA-256 (hex) of the last model's weights as float32 bytes. */
  readonly modelDigest: string;
}

/**
 * The task every simulation runs: all `accounts` in the cohort, SecAgg+ with k ≈ 2·log2 n neighbours and the
 * largest quantization that cannot overflow at n, deadlines that grow with n (one process does every party's work,
 * and no dropout is simulated, so a deadline only guards against a stall: 60 s + 0.6 s per organisation), and
 * cohort.min the lowest whose planned dropouts SecAgg survives.
 */
export function simulationTask(accounts: readonly string[], rounds: number, real?: RealTask) {
  const n = accounts.length;
  const neighbours = Math.max(2, 2 * Math.ceil(Math.log2(n)));
  const secagg = {
    enabled: true,
    neighbours,
    threshold: 2,
    range: 1,
    // n × (2^bits − 1) must fit 32 bits.
    bits: Math.min(24, Math.floor(Math.log2((2 ** 32 - 1) / n))),
    // A FedAvg weight is an organisation's example count, capped here: twice an even slice of a real dataset (at
    // least 1,000, the stand-in's) keeps the weights of skewed slices apart and the quantization grid fine.
    maxWeight: real ? Math.min(65_535, Math.max(1000, 2 * Math.ceil(real.data.rows / n))) : 1000,
  };
  const stageMs = Math.min(3_600_000, 60_000 + 600 * n);
  return {
    name: real
      ? `simulation of ${n} organisations: ${real.data.model.name} on ${real.data.title}`
      : `simulation of ${n} organisations`,
    model: real
      ? { fid: real.modelFid, initialSeed: real.data.model.pkg.weights === null ? 'simulate' : null }
      : { fid: STAND_IN_MODEL_FID, initialSeed: 'simulate' },
    data: real ? real.data.schema : STAND_IN_DATA,
    dataset: real
      ? { name: real.data.title, description: `ailink simulate: ${real.split} of ${real.data.title}` }
      : { name: 'synthetic', description: 'ailink simulate: the deterministic stand-in' },
    training: real
      ? real.data.training
      : {
          loss: 'categorical_crossentropy',
          optimizer: { name: 'sgd', learningRate: 0.1 },
          metrics: ['accuracy', 'loss'],
          proximalMu: 0,
        },
    strategy: { name: 'fedavg' },
    local: real ? real.data.localFor(n) : { epochs: 1, batchSize: 10 },
    rounds,
    cohort: { size: n, min: survivableMin({ cohort: { size: n, min: 3 }, secagg }) },
    deadlines: {
      joinMs: stageMs,
      advertiseMs: stageMs,
      sharesMs: stageMs,
      // Every organisation trains on the one pool: 10× what all of them take at the data's measured rate, at least.
      trainMs: real
        ? Math.min(
            86_400_000,
            Math.max(
              stageMs,
              Math.round(
                (10_000 * real.data.rows * real.data.localFor(n).epochs) / real.data.samplesPerSecond,
              ),
            ),
          )
        : stageMs,
      consistencyMs: stageMs,
      unmaskMs: stageMs,
    },
    secagg,
    dp: null,
    admitted: [...accounts],
  };
}

/** What simulationTask needs to train a real model: the data, the fid the model package is stored under, the split. */
export interface RealTask {
  readonly data: SimulationData;
  readonly modelFid: string;
  /** For people: 'IID slices' or 'Dirichlet(α = A) slices'. */
  readonly split: string;
}

/** The label of simulated organisation i (its account, identity key and randomness derive from it). */
export const organisationLabel = (i: number) => `org-${String(i).padStart(4, '0')}`;

/**
 * The simulated coordinator's chain account and server key, and the randomness it goes on drawing from: all from
 * the run's seed, so the same seed names the same task (its id covers the coordinator's keys).
 */
export function simulationCoordinator(seed: string) {
  const random = seededRandom(seed, 'coordinator');
  return { account: twinAccount('simulate/coordinator'), server: signingKeyPair(random), random };
}

const wire = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;
const peakRssMib = () => process.resourceUsage().maxRSS / 1024;

/**
 * @throws INVALID_INPUT for a count of organisations outside 3..1000 (or above half a real dataset's rows), rounds < 1
 *   or a dimension < 1;
 *   TASK_STOPPED when a round used up its attempts; ABORTED when `signal` aborts
 */
export async function simulate(
  options: SimulationOptions,
  onProgress: (p: SimulationProgress) => void = () => {},
  deps: { clock?: Clock } = {},
): Promise<SimulationResult> {
  const n = options.organisations;
  const dimension = options.dimension ?? 10_000;
  if (!Number.isSafeInteger(n) || n < SIMULATE_MIN_ORGANISATIONS || n > SIMULATE_MAX_ORGANISATIONS)
    throw new AilinkError(
      'INVALID_INPUT',
      `organisations: expected ${SIMULATE_MIN_ORGANISATIONS} to ${SIMULATE_MAX_ORGANISATIONS} (SecAgg needs 3; a cohort takes at most 1000), got ${n}`,
    );
  if (!Number.isSafeInteger(options.rounds) || options.rounds < 1)
    throw new AilinkError('INVALID_INPUT', `rounds: expected a positive integer, got ${options.rounds}`);
  if (!Number.isSafeInteger(dimension) || dimension < 1)
    throw new AilinkError('INVALID_INPUT', `dimension: expected a positive integer, got ${dimension}`);
  const rows = options.real?.data.rows;
  if (rows !== undefined && rows < 2 * n)
    throw new AilinkError(
      'INVALID_INPUT',
      `organisations: ${options.real!.data.title} has ${rows} rows, too few for ${n} organisations to train on at least 2 each: at most ${Math.floor(rows / 2)}`,
    );
  const clock = deps.clock ?? systemClock;
  const seed = options.seed ?? toHex(systemRandom(16));
  const ownDir = options.dir === undefined;
  // The store is real SQLite with a sync per commit; on tmpfs a sync costs nothing, so the run measures the protocol
  // rather than the disk.
  const dir =
    options.dir ?? mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'ailink-simulate-'));
  const started = performance.now();

  const bus = new EventEmitter();
  bus.setMaxListeners(0);
  const { account, server, random: coordinatorRandom } = simulationCoordinator(seed);
  const objects = memoryObjects(account.address);
  objects.objects.set(STAND_IN_MODEL_FID, STAND_IN_MODEL_BYTES);
  const real = options.real;
  const alpha = real?.alpha ?? null;
  // The real model is stored as a task owner stores it before creating the task; the task names it by fid.
  const realTask: RealTask | undefined = real && {
    data: real.data,
    modelFid: await objects.put(encodeModelPackage(real.data.model.pkg)),
    split: alpha === null ? 'IID slices' : `Dirichlet(α = ${alpha}) slices`,
  };
  const testData = real?.data.testData;
  const ledger = memoryLedger(`0x${'51'.repeat(32)}`, seededRandom(seed, 'chain'));
  const store = openCoordinatorStore(join(dir, 'coordinator.sqlite'));
  const coordinator = createCoordinator(
    {
      account,
      serverKey: server.privateKey,
      serverPublicKey: toHex(server.publicKey),
      store,
      spoolDir: join(dir, 'spool'),
      objects: {
        put: async (b, name) => objects.put(await wholeOf(b), name),
        putModel: async (b, name, readerKeys) => objects.putModel(await wholeOf(b), name, readerKeys),
        get: (fid) => objects.get(fid),
        read: (fid) =>
          (async function* () {
            yield await objects.get(fid);
          })(),
        owned: (prefix) => objects.owned(account.address, prefix),
        delete: (fids) => objects.delete(account.address, fids),
      },
      ledger,
      describeModel: real ? (pkg, s) => real.pool.describe(pkg, s) : standInDescribe(dimension),
      // As a coordinator node evaluates: the global model on its own test set, on the pool (none: no figures).
      evaluate: real
        ? async (spec, w) =>
            testData === undefined
              ? null
              : real.pool.evaluate({
                  model: { key: spec.model.digest, topology: real.data.model.pkg.topology },
                  weights: w.slice(),
                  data: testData,
                  loss: spec.training.loss,
                })
        : async (_spec, w) => ({ accuracy: 0, loss: w.length === 0 ? 0 : 1, examples: 0 }),
      publish: async (topic, a) => void bus.emit(topic, wire(a)),
      clock,
      random: coordinatorRandom,
      code: { package: 'ailink', version: 'simulate', lockfile: '0'.repeat(64) },
      log: () => {},
    },
    { onlineWithinMs: 60_000, pollMs: 100 },
  );

  const labels = Array.from({ length: n }, (_, i) => organisationLabel(i));
  const accounts = labels.map(twinAccount);
  const controller = new AbortController();
  // Every organisation listens on the one signal (several times over): no listener limit.
  setMaxListeners(0, controller.signal);
  const onAbort = () => controller.abort();
  options.signal?.addEventListener('abort', onAbort);
  const pollMs = options.pollMs ?? 200 + 2 * n;
  const roundStart = new Map<number, { wall: number; cpu: number }>();
  const roundSeconds: number[] = [];
  const roundCpuSeconds: number[] = [];
  const cpuNow = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  };
  const survivors: number[] = [];
  const scores: RoundScore[] = [];
  let finalHeldOut: { accuracy: number; loss: number } | null = null;
  let attempts = 0;
  let joinSeconds = Number.NaN;
  const off = coordinator.onEvent((e: RoundEvent) => {
    if (e.kind === 'attempt') {
      attempts++;
      if (!roundStart.has(e.round)) roundStart.set(e.round, { wall: performance.now(), cpu: cpuNow() });
      if (Number.isNaN(joinSeconds)) {
        joinSeconds = (performance.now() - started) / 1000;
        onProgress({ kind: 'joined', organisations: coordinator.participants(e.task).length });
      }
    } else if (e.kind === 'phase') {
      onProgress({ kind: 'phase', round: e.round, attempt: e.attempt, phase: e.phase });
    } else if (e.kind === 'outcome') {
      if (e.outcome.kind === 'done' && e.outcome.row.kind === 'evaluation') {
        const ev = e.outcome.row.evaluation;
        if (ev) {
          finalHeldOut = { accuracy: ev.accuracy, loss: ev.loss };
          onProgress({ kind: 'final', accuracy: ev.accuracy, loss: ev.loss, examples: ev.examples });
        }
      } else if (e.outcome.kind === 'done') {
        const row = e.outcome.row;
        // The stand-in's "evaluation" is a placeholder: no figures for it.
        const score: RoundScore = {
          accuracy: real ? row.accuracy : null,
          loss: real ? row.loss : null,
          heldOutAccuracy: row.evaluation?.accuracy ?? null,
          heldOutLoss: row.evaluation?.loss ?? null,
        };
        scores[e.round] = score;
        const start = roundStart.get(e.round)!;
        const seconds = (performance.now() - start.wall) / 1000;
        const cpuSeconds = cpuNow() - start.cpu;
        roundSeconds[e.round] = seconds;
        roundCpuSeconds[e.round] = cpuSeconds;
        survivors[e.round] = e.outcome.row.survivors;
        onProgress({
          kind: 'round',
          round: e.round,
          seconds,
          cpuSeconds,
          survivors: e.outcome.row.survivors,
          rssMib: process.memoryUsage.rss() / 2 ** 20,
          accuracy: score.accuracy,
          loss: score.loss,
          heldOutAccuracy: score.heldOutAccuracy,
        });
      } else if (e.outcome.kind === 'aborted') {
        onProgress({ kind: 'aborted', round: e.round, attempt: e.attempt, reason: e.outcome.reason });
      }
    }
  });

  try {
    const task = await coordinator.createTask(
      simulationTask(
        accounts.map((a) => a.address),
        options.rounds,
        realTask,
      ),
    );
    // Each organisation's slice of the data, split by the run's seed.
    const loaders = real?.data.organisations(n, alpha, `simulate/${seed}`);
    const trainer = real ? poolTrainer(real.pool) : standInTrainer(options.examples ?? 100);
    const participants = labels.map((label, i) => {
      const me = accounts[i]!;
      return createParticipant(
        {
          account: me,
          identityKey: twinIdentityKey(label),
          link: {
            peerId: label,
            task: async (id) => {
              const row = coordinator.task(id);
              if (!row) throw new AilinkError('TASK_NOT_FOUND', `no task ${id}`);
              return { spec: wire(row.spec), digest: row.digest };
            },
            admissionLoad: async () => coordinator.admissionLoad(),
            join: async (id, r) =>
              void (await coordinator.join(id, { ...wire(r), peer: { peerId: label, addrs: [] } })),
            request: async (body) => wire((await coordinator.handle(wire(body), label)) as { ok: boolean }),
            subscribe: (topic, handler) => {
              bus.on(topic, handler);
              return () => bus.off(topic, handler);
            },
          },
          chain: {
            genesisHash: ledger.genesisHash,
            blockTimeMs: 20,
            task: async (id) => {
              const t = ledger.tasks.get(id);
              return t && { spec: t.digest, coordinator: account.address };
            },
            admitted: async (id) => ledger.admitted(id),
            anchored: async (id) => ledger.anchored(id),
            seed: async (id, round, attempt) => ledger.seedOf(id, round, attempt),
          },
          objects: {
            get: (fid) => objects.get(fid, me.readerKey),
            read: (fid) =>
              (async function* () {
                yield await objects.get(fid, me.readerKey);
              })(),
            putFor: (bytes, _reader, name) => objects.putFor(bytes, name, me.address),
            owned: (prefix) => objects.owned(me.address, prefix),
            delete: (fids) => objects.delete(me.address, fids),
          },
          trainer,
          loadData: loaders ? loaders[i]! : async () => standInLocalData(label),
          clock,
          random: seededRandom(seed, label),
          log: () => {},
        },
        { task: task.id, pollMs },
      );
    });
    coordinator.start();
    const runs = participants.map((p) => p.run(controller.signal));
    for (const r of runs) r.catch(() => {});
    const finished = coordinator.finished(task.id, { signal: controller.signal });
    // A participant that fails outright (not a dropout the round absorbs) ends the simulation with its error.
    await Promise.race([finished, Promise.all(runs).then(() => finished)]);
    const anchored = ledger.anchored(task.id);
    // A task whose organisations hold rows out closes with a round that only scores the last model.
    const expected = options.rounds + (evaluatesClientSide(task.spec) ? 1 : 0);
    const last = anchored[options.rounds - 1];
    if (last === undefined || anchored.length !== expected)
      throw new AilinkError(
        'TASK_STOPPED',
        `expected ${expected} rounds anchored, got ${anchored.length}: ${ledger.tasks.get(task.id)?.stopReason ?? 'no reason recorded'}`,
      );
    // Set by the event handler (TypeScript cannot see that assignment here).
    const heldOut = finalHeldOut as { accuracy: number; loss: number } | null;
    const lastScore = scores.at(-1);
    const manifest = parseManifest(await objects.get(last.manifest));
    const model = decodeModelBytes(await objects.get(manifest.model.fid)).weights;
    controller.abort();
    await Promise.allSettled(runs);
    return {
      organisations: n,
      rounds: options.rounds,
      dimension: task.spec.model.parameters,
      task: task.id,
      roundSeconds,
      roundCpuSeconds,
      joinSeconds,
      totalSeconds: (performance.now() - started) / 1000,
      peakRssMib: peakRssMib(),
      survivors,
      attempts,
      modelName: real ? real.data.model.name : 'stand-in',
      scores,
      final:
        heldOut !== null
          ? { ...heldOut, on: 'held-out' }
          : lastScore?.accuracy != null && lastScore.loss !== null
            ? { accuracy: lastScore.accuracy, loss: lastScore.loss, on: 'test' }
            : null,
      model,
      modelDigest: createHash('sha256')
        .update(new Uint8Array(model.buffer, model.byteOffset, model.byteLength))
        .digest('hex'),
    };
  } finally {
    off();
    controller.abort();
    options.signal?.removeEventListener('abort', onAbort);
    await coordinator.stop();
    store.close();
    if (ownDir) rmSync(dir, { recursive: true, force: true });
  }
}
