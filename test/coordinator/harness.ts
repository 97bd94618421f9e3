import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { signingKeyPair } from '../../src/aggregation/index.ts';
import {
  type Coordinator,
  type CoordinatorOptions,
  createCoordinator,
} from '../../src/coordinator/coordinator.ts';
import type { RoundDeps } from '../../src/coordinator/round.ts';
import {
  type AttemptSetup,
  type CoordinatorStore,
  openCoordinatorStore,
} from '../../src/coordinator/store.ts';
import {
  memoryObjects,
  STAND_IN_DATA,
  STAND_IN_MODEL,
  STAND_IN_MODEL_BYTES,
  STAND_IN_MODEL_FID,
  standInDescribe,
  standInInitial,
  standInLocalData,
  standInScore,
  standInTrainer,
  twinAccount,
  twinIdentityKey,
  memoryLedger as twinLedger,
  wholeOf,
} from '../../src/node/twins.ts';
import type { LocalData } from '../../src/participant/local-data.ts';
import { type CoordinatorLink, createParticipant, type Participant } from '../../src/participant/runtime.ts';
import type { Account } from '../../src/shared/account.ts';
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
 * moves every weight by a small amount derived from its seed, so sums can be checked exactly. The storage and chain
 * twins and the stand-in trainer live in src/node/twins.ts, shared with `ailink simulate`.
 */

export { memoryObjects, wholeOf };

export const DIMENSION = 1000;

/** An attempt's setup as tests write one into the store by hand: its cohort, and placeholders for the rest. */
export const placeholderSetup = (cohort: readonly string[]): AttemptSetup => ({
  kind: 'train',
  cohort: cohort.map((account) => ({ account, identityKey: '00'.repeat(32) })),
  graphSeed: '00'.repeat(32),
  k: 2,
  t: 2,
  dimension: 1,
  startModel: { fid: '00'.repeat(32), hash: '00'.repeat(32) },
  preprocessing: null,
});

/**
 * The genesis hash of the unit tests' "chain": admissions are signed for it. The protocol rules' test harness uses the
 * same, so a twin that replays the coordinator's calls through the real rules (the explorer's) accepts them.
 */
export const TEST_GENESIS = GENESIS_HASH;

export const memoryLedger = () => twinLedger(TEST_GENESIS, (n) => new Uint8Array(randomBytes(n)));

/**
 * The unit tests' model package (the twins' stand-in), stored in every world. Its parameter count is stood in for by
 * DIMENSION (`describeModel` below): the twins never build it.
 */
export const UNIT_MODEL = STAND_IN_MODEL;
export const UNIT_MODEL_BYTES = STAND_IN_MODEL_BYTES;
export const UNIT_MODEL_FID = STAND_IN_MODEL_FID;
/** The data schema the unit tasks declare: 4 numeric features, 2 classes (what UNIT_MODEL takes). */
export const UNIT_DATA = STAND_IN_DATA;
/** The stand-in trainer, taking 20 ms a round. */
export const fakeTrainer = (examples: number) => standInTrainer(examples, 20);
export const fakeScore = standInScore;
export const fakeLocalData = standInLocalData;
export const initialWeights = async (seed: string | null) => standInInitial(seed, DIMENSION);
/** The coordinator's `describeModel` twin: UNIT_MODEL's shape, DIMENSION weights from the seed. */
export const describeModel = standInDescribe(DIMENSION);

export const makeAccount = twinAccount;

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

/** Every world's directory, removed when the test file ends (hundreds of files a run otherwise stay in /tmp). */
const worldDirs: string[] = [];
afterAll(() => {
  for (const dir of worldDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

export function makeWorld(
  dir = mkdtempSync(join(tmpdir(), 'ailink-coord-')),
  options: CoordinatorOptions & Pick<RoundDeps, 'fetchBudgetBytes'> = {},
  /** The coordinator's account and server key (default: the 'coordinator' account, a fresh key). */
  identity: { account?: Account; server?: { publicKey: Uint8Array; privateKey: Uint8Array } } = {},
): World {
  worldDirs.push(dir);
  const bus = new EventEmitter();
  bus.setMaxListeners(100);
  const account = identity.account ?? makeAccount('coordinator');
  const objects = memoryObjects(account.address);
  objects.objects.set(UNIT_MODEL_FID, UNIT_MODEL_BYTES);
  const ledger = memoryLedger();
  const server = identity.server ?? signingKeyPair((n) => new Uint8Array(randomBytes(n)));
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
          // In pieces of an odd size, as storage streams a large object: a stored update's header and words then
          // straddle chunk boundaries.
          read: (fid) =>
            (async function* () {
              const bytes = await objects.get(fid);
              for (let at = 0; at < bytes.byteLength; at += 997) yield bytes.subarray(at, at + 997);
            })(),
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
    /** Its randomness (default: node:crypto's); a seeded one repeats a run exactly. */
    random?: (n: number) => Uint8Array;
    /** The peer id it joins and speaks from (default: its label). */
    peerId?: string;
    /**
     * Sees each round request before the coordinator does: a reply returned is the answer and the coordinator is not
     * asked (the fuzzer keeps a member's message back to send it itself over the wire).
     */
    intercept?: (body: unknown) => { ok: boolean } | undefined;
    /** A real link instead of the in-process one (`connectCoordinator` over libp2p and HTTP). */
    link?: CoordinatorLink;
    /** Its log (default: none). */
    log?: (line: string) => void;
    /** How often it polls the coordinator (default 200 ms). */
    pollMs?: number;
  } = {},
): Member {
  const account = makeAccount(label);
  const identityKey = twinIdentityKey(label);
  const peerId = options.peerId ?? label;
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
      link: options.link ?? {
        peerId,
        task: async (id) => {
          const row = world.coordinator.task(id);
          if (!row) throw new AilinkError('TASK_NOT_FOUND', id);
          return { spec: JSON.parse(JSON.stringify(row.spec)) as TaskSpec, digest: row.digest };
        },
        admissionLoad: async () => world.coordinator.admissionLoad(),
        join: async (id, r) => void (await world.coordinator.join(id, { ...r, peer: { peerId, addrs: [] } })),
        request: async (body) => {
          const kept = options.intercept?.(JSON.parse(JSON.stringify(body)));
          if (kept !== undefined) return kept;
          const reply = JSON.parse(
            JSON.stringify(await world.coordinator.handle(JSON.parse(JSON.stringify(body)), peerId)),
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
        // In odd-sized pieces, as the coordinator's reads (a model's header then straddles chunks).
        read: (fid) =>
          (async function* () {
            const bytes = await world.objects.get(fid, account.readerKey);
            for (let at = 0; at < bytes.byteLength; at += 997) yield bytes.subarray(at, at + 997);
          })(),
        putFor: (bytes, _reader, name) => world.objects.putFor(bytes, name, account.address),
        owned: (prefix) => world.objects.owned(account.address, prefix),
        delete: (fids) => world.objects.delete(account.address, fids),
      },
      trainer: options.trainer ?? fakeTrainer(options.examples ?? 100),
      loadData: options.data ?? (async () => fakeLocalData(label)),
      clock: systemClock,
      random: options.random ?? ((n) => new Uint8Array(randomBytes(n))),
      log: options.log ?? (() => {}),
    },
    {
      task,
      dropAt: options.dropAt,
      pollMs: options.pollMs ?? 200,
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
