import { createHash, randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeModelPackage, type ModelPackage } from '../../models/index.ts';
import { signingKeyPair } from '../../src/aggregation/index.ts';
import {
  type Coordinator,
  type CoordinatorLedger,
  type CoordinatorOptions,
  createCoordinator,
} from '../../src/coordinator/coordinator.ts';
import type { ObjectSource, RoundDeps } from '../../src/coordinator/round.ts';
import { type CoordinatorStore, openCoordinatorStore } from '../../src/coordinator/store.ts';
import type { LocalData } from '../../src/participant/local-data.ts';
import { createParticipant, type Participant } from '../../src/participant/runtime.ts';
import { type Account, accountFromSeeds } from '../../src/shared/account.ts';
import { toHex } from '../../src/shared/bytes.ts';
import { systemClock } from '../../src/shared/clock.ts';
import { AilinkError } from '../../src/shared/errors.ts';
import {
  type AnnouncementView,
  type Manifest,
  parseManifest,
  type RoundStage,
  signAnnouncement,
  survivableMin,
  type TaskSpec,
  viewsOf,
  type WireAnnouncement,
} from '../../src/task/index.ts';
import { GENESIS_HASH } from '../chain/helpers.ts';

/**
 * In-memory twins of storage, chain and transport for unit tests of the round machinery (the integration test runs
 * the same code on the real dev chain, miners and libp2p). Training is a deterministic stand-in: each participant
 * moves every weight by a small amount derived from its seed, so sums can be checked exactly.
 */

export const DIMENSION = 1000;

/**
 * Objects by fid. A private model (`putModel`) gets a fresh fid (as encryption under a new key does) and remembers
 * the reader keys it is wrapped for; `get` with a `readerKey` refuses it to anyone else, as the storage client does.
 * Each object keeps the name and owner it was stored with (`defaultOwner` when the caller names none), so that
 * `owned` lists an account's objects and `delete` removes only its own, as fileBank's rules do.
 */
async function wholeOf(source: ObjectSource): Promise<Uint8Array> {
  if (source instanceof Uint8Array) return source;
  const chunks: Uint8Array[] = [];
  for await (const chunk of source.chunks) chunks.push(chunk);
  if (Buffer.concat(chunks).byteLength !== source.size)
    throw new Error(`a stream declared ${source.size} bytes and gave another length`);
  return new Uint8Array(Buffer.concat(chunks));
}

export function memoryObjects(defaultOwner = '') {
  const objects = new Map<string, Uint8Array>();
  const readers = new Map<string, string[]>();
  const names = new Map<string, { name: string | null; owner: string }>();
  /** Every fid deleted, in order, with the account that deleted it. */
  const deleted: { fid: string; by: string }[] = [];
  const models: { fid: string; name: string; readerKeys: string[] }[] = [];
  let sealed = 0;
  const put = async (bytes: Uint8Array, name?: string, owner?: string) => {
    const fid = createHash('sha256').update(bytes).digest('hex');
    objects.set(fid, bytes.slice());
    if (!names.has(fid)) names.set(fid, { name: name ?? null, owner: owner ?? defaultOwner });
    return fid;
  };
  return {
    objects,
    /** Every private model stored, in order, with the reader keys it was wrapped for. */
    models,
    deleted,
    put: (bytes: Uint8Array, name?: string, owner?: string) => put(bytes, name, owner),
    putFor: (bytes: Uint8Array, name?: string, owner?: string) => put(bytes, name, owner),
    async putModel(bytes: Uint8Array, name: string, readerKeys: readonly string[], owner?: string) {
      const fid = createHash('sha256').update(bytes).update(`sealed/${sealed++}`).digest('hex');
      objects.set(fid, bytes.slice());
      readers.set(fid, [...readerKeys]);
      names.set(fid, { name, owner: owner ?? defaultOwner });
      models.push({ fid, name, readerKeys: [...readerKeys] });
      return fid;
    },
    async get(fid: string, readerKey?: string) {
      const b = objects.get(fid);
      if (!b) throw new AilinkError('OBJECT_NOT_FOUND', `no object ${fid}`);
      const allowed = readers.get(fid);
      if (readerKey !== undefined && allowed !== undefined && !allowed.includes(readerKey))
        throw new AilinkError('ACCESS_DENIED', `${fid} is not wrapped for ${readerKey}`);
      return b.slice();
    },
    async owned(owner: string, prefix: string) {
      return [...names]
        .filter(([fid, n]) => objects.has(fid) && n.owner === owner && (n.name ?? '').startsWith(prefix))
        .map(([fid, n]) => ({ fid, name: n.name }));
    },
    /** fileBank.deleteFile's rule: only the owner deletes; an object already gone is skipped. */
    async delete(owner: string, fids: readonly string[]) {
      for (const fid of fids) {
        if (!objects.has(fid)) continue;
        if (names.get(fid)?.owner !== owner)
          throw new AilinkError('CHAIN_CALL_REJECTED', `${owner} may not delete ${fid}: not its owner`);
        objects.delete(fid);
        deleted.push({ fid, by: owner });
      }
    },
  };
}

/**
 * The genesis hash of the unit tests' "chain": admissions are signed for it. The protocol rules' test harness uses the
 * same, so a twin that replays the coordinator's calls through the real rules (the explorer's) accepts them.
 */
export const TEST_GENESIS = GENESIS_HASH;

export function memoryLedger(): CoordinatorLedger & {
  /** `coordinator`: the account that recorded the task, when not the world's coordinator (a squatter). */
  tasks: Map<
    string,
    { digest: string; admitted: string[]; stopped?: boolean; stopReason?: string; coordinator?: string }
  >;
  rounds: Map<string, { round: number; manifest: string; digest: string }[]>;
  terms: Map<string, { readers: string[]; price: string | null }>;
  /** The seed the "chain" drew for an attempt, as the participants' chain view reads it. */
  seedOf(task: string, round: number, attempt: number): { cohort: string; blockHash: string } | undefined;
  /** The size of each admission batch, in the order they came. */
  admitBatches: number[];
} {
  const terms = new Map<string, { readers: string[]; price: string | null }>();
  const tasks = new Map<
    string,
    { digest: string; admitted: string[]; stopped?: boolean; stopReason?: string; coordinator?: string }
  >();
  const admitted = new Map<string, { account: string; identityKey: string }[]>();
  const rounds = new Map<string, { round: number; manifest: string; digest: string }[]>();
  const seeds = new Map<string, { cohort: string; blockHash: string }>();
  const admitBatches: number[] = [];
  return {
    genesisHash: TEST_GENESIS,
    tasks,
    rounds,
    terms,
    async setTerms(fid, readers, price) {
      terms.set(fid, { readers: [...readers], price });
    },
    async createTask(task, digest, list) {
      tasks.set(task, { digest, admitted: [...list] });
    },
    admitBatches,
    async admitMany(batch) {
      admitBatches.push(batch.length);
      // Judged one by one, as the chain's rules judge each call of a batch.
      return batch.map(({ task, account, identityKey }) => {
        const list = admitted.get(task) ?? [];
        if (list.some((p) => p.account === account))
          return { admitted: false as const, reason: `${account} is already admitted to ${task}` };
        admitted.set(task, [...list, { account, identityKey }]);
        return { admitted: true as const };
      });
    },
    admitted: (task) => admitted.get(task) ?? [],
    membership(task) {
      const t = tasks.get(task);
      return t === undefined ? undefined : { allowed: t.admitted, stopped: t.stopped ?? false };
    },
    async stopTask(task, reason) {
      const t = tasks.get(task);
      if (t === undefined) throw new AilinkError('CHAIN_CALL_REJECTED', `no task ${task}`);
      if (t.stopped) throw new AilinkError('CHAIN_CALL_REJECTED', `task ${task} was stopped`);
      tasks.set(task, { ...t, stopped: true, stopReason: reason });
    },
    async recordRound(task, round, manifest, digest) {
      const list = rounds.get(task) ?? [];
      if (round !== list.length)
        throw new AilinkError('CHAIN_CALL_REJECTED', `expected round ${list.length}, got ${round}`);
      rounds.set(task, [...list, { round, manifest, digest }]);
    },
    anchored: (task) => rounds.get(task) ?? [],
    async drawSeed(task, round, attempt, cohort) {
      const key = `${task}/${round}/${attempt}`;
      if (seeds.has(key)) throw new AilinkError('CHAIN_CALL_REJECTED', `${key} already has its seed`);
      // A block hash nobody chose: fresh randomness per draw.
      const blockHash = randomBytes(32).toString('hex');
      seeds.set(key, { cohort, blockHash });
      return blockHash;
    },
    seedDrawn: (task, round, attempt) => seeds.has(`${task}/${round}/${attempt}`),
    seedOf: (task, round, attempt) => seeds.get(`${task}/${round}/${attempt}`),
  };
}

/**
 * The unit tests' model package: a real layers topology (one dense layer over 4 features, 2 classes), stored in every
 * world. Its parameter count is stood in for by DIMENSION (`describeModel` below): the twins never build it.
 */
export const UNIT_MODEL: ModelPackage = {
  topology: {
    class_name: 'Sequential',
    config: {
      name: 'unit',
      layers: [{ class_name: 'Dense', config: { name: 'out', units: 2, batch_input_shape: [null, 4] } }],
    },
  },
  weights: null,
};
export const UNIT_MODEL_BYTES = encodeModelPackage(UNIT_MODEL);
export const UNIT_MODEL_FID = createHash('sha256').update(UNIT_MODEL_BYTES).digest('hex');

/** The data schema the unit tasks declare: 4 numeric features, 2 classes (what UNIT_MODEL takes). */
export const UNIT_DATA = {
  kind: 'tabular',
  columns: [
    ...['a', 'b', 'c', 'd'].map((name) => ({ name, type: 'numeric', transform: 'none', missing: 'refuse' })),
    { name: 'label', type: 'ignore' },
  ],
  label: { column: 'label', classes: ['no', 'yes'] },
  // Nothing held out by default (no client-side evaluation, no closing round); tests that want it set a fraction.
  holdout: 0,
};

/**
 * A deterministic stand-in for training (w + 0.01·sin(seeded index)) and for scoring: a participant's held-out rows
 * (their count is its `holdout`) count as correct in proportion to the model's first weight, and each loses 0.5.
 */
export function fakeTrainer(examples: number) {
  return {
    async train(job: { weights: Float32Array; options: { seed: string } }) {
      const h = createHash('sha256').update(job.options.seed).digest();
      const out = new Float32Array(job.weights.length);
      for (let i = 0; i < out.length; i++) out[i] = job.weights[i]! + 0.01 * Math.sin(h[i % 32]! + i);
      await new Promise((r) => setTimeout(r, 20));
      return { weights: out, loss: 1, examples, seconds: 0.02 };
    },
    async evaluate(job: { weights: Float32Array; data: { count: number } }) {
      return fakeScore(job.weights, job.data.count);
    },
  };
}

/** What fakeTrainer's evaluate answers for weights on `examples` held-out rows. */
export const fakeScore = (weights: Float32Array, examples: number) => ({
  examples,
  correct: Math.floor(examples * Math.abs(Math.sin(weights[0]! * 1000))),
  lossSum: examples * 0.5,
});

const emptyExamples = (count: number) => ({
  count,
  shape: [4],
  x: new Float32Array(count * 4),
  y: new Uint16Array(count),
});

/**
 * A participant's data for the unit tasks: `holdout` rows held out (what fakeTrainer scores), and, for tasks that
 * need federated statistics, the given statistics words.
 */
export function fakeLocalData(
  label: string,
  options: { holdout?: number; statistics?: Uint32Array } = {},
): LocalData {
  return {
    fingerprint: createHash('sha256').update(`data/${label}`).digest('hex'),
    rows: 100,
    needsStatistics: options.statistics !== undefined,
    statistics: () => options.statistics ?? new Uint32Array(0),
    examples: () => ({ train: emptyExamples(100), holdout: emptyExamples(options.holdout ?? 0) }),
  };
}

export const initialWeights = async (seed: string | null) => {
  const h = createHash('sha256')
    .update(seed ?? 'package')
    .digest();
  return Float32Array.from({ length: DIMENSION }, (_, i) => (h[i % 32]! - 128) / 1280);
};

/** The coordinator's `describeModel` twin: UNIT_MODEL's shape, DIMENSION weights from the seed. */
export const describeModel = async (_pkg: ModelPackage, seed: string | null) => ({
  spec: {
    name: 'unit',
    inputShape: [4],
    outputUnits: 2,
    output: 'logits' as const,
    parameters: DIMENSION,
    tensors: [{ name: 'out/kernel', shape: [DIMENSION] }],
  },
  initial: await initialWeights(seed),
});

export function makeAccount(label: string): Account {
  const seed = createHash('sha256').update(`sr/${label}`).digest();
  const x = createHash('sha256').update(`x/${label}`).digest();
  return accountFromSeeds(new Uint8Array(seed), new Uint8Array(x));
}

const BASE_SECAGG = { enabled: true, neighbours: 4, threshold: 3, range: 1, bits: 24, maxWeight: 1000 };

/**
 * A unit task for `admitted`. Its cohort is everyone, with the lowest cohort.min (from 3) whose planned dropouts its
 * SecAgg survives (what task creation demands), unless `overrides` sets the cohort.
 */
export function baseTask(admitted: readonly string[], overrides: Partial<Record<string, unknown>> = {}) {
  const secagg = (overrides.secagg ?? BASE_SECAGG) as TaskSpec['secagg'];
  const size = admitted.length;
  const min = size < 3 ? 3 : survivableMin({ cohort: { size, min: 3 }, secagg });
  return {
    name: 'unit',
    model: { fid: UNIT_MODEL_FID, initialSeed: 'seed-1' },
    data: UNIT_DATA,
    dataset: { name: 'synthetic', description: 'unit test' },
    training: {
      loss: 'categorical_crossentropy',
      optimizer: { name: 'sgd', learningRate: 0.1 },
      metrics: ['accuracy', 'loss'],
      proximalMu: 0,
    },
    strategy: { name: 'fedavg' },
    local: { epochs: 1, batchSize: 10 },
    rounds: 3,
    cohort: { size, min },
    deadlines: {
      joinMs: 5000,
      advertiseMs: 1500,
      sharesMs: 1500,
      trainMs: 3000,
      consistencyMs: 1500,
      unmaskMs: 1500,
    },
    secagg: BASE_SECAGG,
    dp: null,
    admitted: [...admitted],
    ...overrides,
  };
}

export interface World {
  coordinator: Coordinator;
  store: CoordinatorStore;
  storePath: string;
  bus: EventEmitter;
  objects: ReturnType<typeof memoryObjects>;
  ledger: ReturnType<typeof memoryLedger>;
  serverKey: Uint8Array;
  /** The coordinator's chain account: the one that records its tasks. */
  account: Account;
  /** Replaces the coordinator by a fresh one on the same SQLite file (a restart). */
  restart(): Promise<void>;
  logs: string[];
}

export function makeWorld(
  dir = mkdtempSync(join(tmpdir(), 'ailink-coord-')),
  options: CoordinatorOptions & Pick<RoundDeps, 'fetchBudgetBytes'> = {},
): World {
  const bus = new EventEmitter();
  bus.setMaxListeners(100);
  const account = makeAccount('coordinator');
  const objects = memoryObjects(account.address);
  objects.objects.set(UNIT_MODEL_FID, UNIT_MODEL_BYTES);
  const ledger = memoryLedger();
  const server = signingKeyPair((n) => new Uint8Array(randomBytes(n)));
  const storePath = join(dir, 'coordinator.sqlite');
  const { fetchBudgetBytes, ...coordinatorOptions } = options;
  const logs: string[] = [];
  const build = () => {
    const store = openCoordinatorStore(storePath);
    const coordinator = createCoordinator(
      {
        account,
        serverKey: server.privateKey,
        serverPublicKey: toHex(server.publicKey),
        store,
        spoolDir: join(dir, 'spool'),
        ...(fetchBudgetBytes === undefined ? {} : { fetchBudgetBytes }),
        // Bound late, so a test can stand in a lying coordinator's storage before `restart`.
        objects: {
          // A stream (the recompute material) is read whole, as the storage client reads it once.
          put: async (b, name) => objects.put(await wholeOf(b), name),
          putModel: async (b, name, readerKeys) => objects.putModel(await wholeOf(b), name, readerKeys),
          get: (fid) => objects.get(fid),
          owned: (prefix) => objects.owned(account.address, prefix),
          delete: (fids) => objects.delete(account.address, fids),
        },
        ledger,
        describeModel,
        evaluate: async (_spec, w) => ({ accuracy: 0.5 + (w[0]! % 0.1), loss: 1, examples: 100 }),
        publish: async (topic, a) => void bus.emit(topic, JSON.parse(JSON.stringify(a))),
        clock: systemClock,
        random: (n) => new Uint8Array(randomBytes(n)),
        code: { package: 'ailink', version: '0.0.0-test', lockfile: '0'.repeat(64) },
        log: (line) => logs.push(line),
      },
      { onlineWithinMs: 10_000, pollMs: 100, ...coordinatorOptions },
    );
    return { store, coordinator };
  };
  const world: World = {
    ...build(),
    storePath,
    bus,
    objects,
    ledger,
    serverKey: server.privateKey,
    account,
    logs,
    async restart() {
      await world.coordinator.stop();
      world.store.close();
      Object.assign(world, build());
      world.coordinator.start();
    },
  };
  return world;
}

export interface Member {
  account: Account;
  participant: Participant;
  encoded: Map<number, Uint32Array>;
}

export function makeParticipant(
  world: World,
  task: string,
  label: string,
  options: {
    dropAt?: { round: number; stage: RoundStage };
    examples?: number;
    /** This participant's data (default: fakeLocalData with nothing held out). */
    data?: (spec: TaskSpec) => Promise<LocalData>;
    /** How it trains (default: fakeTrainer with `examples`). */
    trainer?: ReturnType<typeof fakeTrainer>;
    /**
     * A lying coordinator: rewrites each announcement this participant receives (gossip or `view`), signed again
     * with the task's server key.
     */
    tamper?: (a: WireAnnouncement) => Omit<WireAnnouncement, 'signature'>;
  } = {},
): Member {
  const account = makeAccount(label);
  const identityKey = new Uint8Array(createHash('sha256').update(`id/${label}`).digest());
  const encoded = new Map<number, Uint32Array>();
  // The lie is told in the whole announcement the coordinator stored, signed again; this member gets its view of it.
  const lie = (raw: unknown): unknown => {
    if (options.tamper === undefined || raw === null || typeof raw !== 'object' || !('body' in raw))
      return raw;
    const { task: id, round, attempt, phase } = raw as AnnouncementView;
    const whole = world.store.announcement(id, round, attempt, phase) as WireAnnouncement;
    return viewsOf(signAnnouncement(options.tamper(whole), world.serverKey))(account.address);
  };
  const participant = createParticipant(
    {
      account,
      identityKey,
      link: {
        peerId: label,
        task: async (id) => {
          const row = world.coordinator.task(id);
          if (!row) throw new AilinkError('TASK_NOT_FOUND', id);
          return { spec: JSON.parse(JSON.stringify(row.spec)) as TaskSpec, digest: row.digest };
        },
        admissionLoad: async () => world.coordinator.admissionLoad(),
        join: async (id, r) =>
          void (await world.coordinator.join(id, { ...r, peer: { peerId: label, addrs: [] } })),
        request: async (body) => {
          const reply = JSON.parse(
            JSON.stringify(await world.coordinator.handle(JSON.parse(JSON.stringify(body)), label)),
          );
          return reply.announcement ? { ...reply, announcement: lie(reply.announcement) } : reply;
        },
        subscribe: (topic, handler) => {
          const deliver = (data: unknown) => handler(lie(data));
          world.bus.on(topic, deliver);
          return () => world.bus.off(topic, deliver);
        },
      },
      chain: {
        genesisHash: world.ledger.genesisHash,
        // The twin seals a "block" per call at once: a short block time keeps a refused join's pause short.
        blockTimeMs: 20,
        task: async (id) => {
          const t = world.ledger.tasks.get(id);
          return t && { spec: t.digest, coordinator: t.coordinator ?? world.account.address };
        },
        admitted: async (id) => world.ledger.admitted(id),
        anchored: async (id) => world.ledger.anchored(id),
        seed: async (id, round, attempt) => world.ledger.seedOf(id, round, attempt),
      },
      // Reads as this participant: a private model not wrapped for its reader key is refused.
      objects: {
        get: (fid) => world.objects.get(fid, account.readerKey),
        putFor: (bytes, _reader, name) => world.objects.putFor(bytes, name, account.address),
        owned: (prefix) => world.objects.owned(account.address, prefix),
        delete: (fids) => world.objects.delete(account.address, fids),
      },
      trainer: options.trainer ?? fakeTrainer(options.examples ?? 100),
      loadData: options.data ?? (async () => fakeLocalData(label)),
      clock: systemClock,
      random: (n) => new Uint8Array(randomBytes(n)),
      log: () => {},
    },
    {
      task,
      dropAt: options.dropAt,
      pollMs: 200,
      onEncodedUpdate: (round, words) => encoded.set(round, words.slice()),
    },
  );
  return { account, participant, encoded };
}

/** The task's anchored manifests, in round order, read back from the in-memory storage. */
export async function manifestsOf(world: World, task: string): Promise<Manifest[]> {
  const out: Manifest[] = [];
  for (const r of world.ledger.anchored(task)) out.push(parseManifest(await world.objects.get(r.manifest)));
  return out;
}

/**
 * Runs every member until the test ends: `stops` (the test file's, drained after each test) aborts them and stops
 * the world's coordinator.
 */
export function startAll(world: World, members: Member[], stops: (() => Promise<void>)[]) {
  const controller = new AbortController();
  const runs = members.map((m) => m.participant.run(controller.signal));
  // A run ends with TASK_STOPPED when a round used up its attempts: a test that expects it awaits `runs`.
  for (const r of runs) r.catch(() => {});
  stops.push(async () => {
    controller.abort();
    await Promise.allSettled(runs);
    await world.coordinator.stop();
    world.store.close();
  });
  return runs;
}
