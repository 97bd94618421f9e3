import { createCipheriv, createHash } from 'node:crypto';
import { encodeModelPackage, type ModelPackage } from '../../models/index.ts';
import type { CoordinatorLedger } from '../coordinator/index.ts';
import type { ObjectSource } from '../coordinator/round.ts';
import type { LocalData } from '../participant/local-data.ts';
import { type Account, accountFromSeeds } from '../shared/account.ts';
import type { Random } from '../shared/clock.ts';
import { AilinkError } from '../shared/errors.ts';

/**
 * In-memory twins of the chain and of storage, shared by the coordinator's unit tests (test/coordinator/harness.ts)
 * and `ailink simulate` (simulate.ts). What they stand for, and what they leave out:
 * - storage (`memoryObjects`): objects addressed by SHA-256, kept whole in a Map. No erasure coding, no miners, no
 *   encryption; a private model remembers the reader keys it is wrapped for and refuses anyone else, and only an
 *   object's owner deletes it, as fileBank's rules say.
 * - chain (`memoryLedger`): the coordinator's ledger (tasks, admissions judged one by one in batches, rounds in order,
 *   one seed per attempt, stops) as Maps; each call is "included" at once. No remarks, blocks or signatures.
 * - training (`standInTrainer`): a deterministic stand-in that moves every weight by a small amount derived from the
 *   participant's training seed, so that sums can be checked exactly; `standInDescribe` gives the stand-in model any
 *   dimension.
 * Everything else — the coordinator's round state machine and SQLite store, the participants' runtime, SecAgg+
 * (keys, shares, masks, consistency, unmasking), quantization and the strategy — is the real code.
 */

/** A stream's bytes, whole (the twin keeps objects whole). */
export async function wholeOf(source: ObjectSource): Promise<Uint8Array> {
  if (source instanceof Uint8Array) return source;
  const chunks: Uint8Array[] = [];
  for await (const chunk of source.chunks) chunks.push(chunk);
  const whole = Buffer.concat(chunks);
  if (whole.byteLength !== source.size)
    throw new AilinkError('INTERNAL', `a stream declared ${source.size} bytes and gave ${whole.byteLength}`);
  return new Uint8Array(whole);
}

/**
 * Objects by fid. A private model (`putModel`) gets a fresh fid (as encryption under a new key does) and remembers
 * the reader keys it is wrapped for; `get` with a `readerKey` refuses it to anyone else, as the storage client does.
 * Each object keeps the name and owner it was stored with (`defaultOwner` when the caller names none), so that
 * `owned` lists an account's objects and `delete` removes only its own, as fileBank's rules do.
 */
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
    putFor: async (source: ObjectSource, name?: string, owner?: string) =>
      put(await wholeOf(source), name, owner),
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

export type MemoryObjects = ReturnType<typeof memoryObjects>;

export type MemoryLedger = CoordinatorLedger & {
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
};

/**
 * The coordinator's ledger as Maps. `random` stands for the block hash an attempt's seed is drawn from (nobody
 * chooses it).
 */
export function memoryLedger(genesisHash: string, random: Random): MemoryLedger {
  const terms = new Map<string, { readers: string[]; price: string | null }>();
  const tasks: MemoryLedger['tasks'] = new Map();
  const admitted = new Map<string, { account: string; identityKey: string }[]>();
  const rounds = new Map<string, { round: number; manifest: string; digest: string }[]>();
  const seeds = new Map<string, { cohort: string; blockHash: string }>();
  const admitBatches: number[] = [];
  const drawSeed = async (task: string, round: number, attempt: number, cohort: string) => {
    const key = `${task}/${round}/${attempt}`;
    if (seeds.has(key)) throw new AilinkError('CHAIN_CALL_REJECTED', `${key} already has its seed`);
    const blockHash = Buffer.from(random(32)).toString('hex');
    seeds.set(key, { cohort, blockHash });
    return blockHash;
  };
  return {
    genesisHash,
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
    async recordRound(task, round, manifest, digest, _batch, next) {
      const list = rounds.get(task) ?? [];
      if (round !== list.length)
        throw new AilinkError('CHAIN_CALL_REJECTED', `expected round ${list.length}, got ${round}`);
      rounds.set(task, [...list, { round, manifest, digest }]);
      if (next !== undefined) await drawSeed(task, next.round, next.attempt, next.cohort);
    },
    anchored: (task) => rounds.get(task) ?? [],
    drawSeed,
    seedOf: (task, round, attempt) => seeds.get(`${task}/${round}/${attempt}`),
  };
}

/**
 * Deterministic randomness for a simulated party: ChaCha20's keystream under SHA-256(seed ‖ label). The same seed and
 * label give the same bytes in the same order, so a run can be repeated (and compared) exactly.
 */
export function seededRandom(seed: string, label: string): Random {
  const key = createHash('sha256').update(`ailink/simulate/${seed}/${label}`).digest();
  const stream = createCipheriv('chacha20', key, Buffer.alloc(16));
  return (n) => new Uint8Array(stream.update(Buffer.alloc(n)));
}

/** A simulated (or unit-test) organisation's account, derived from its label. */
export function twinAccount(label: string): Account {
  const seed = createHash('sha256').update(`sr/${label}`).digest();
  const x = createHash('sha256').update(`x/${label}`).digest();
  return accountFromSeeds(new Uint8Array(seed), new Uint8Array(x));
}

/** A twin organisation's Ed25519 round-signing key, derived from its label. */
export const twinIdentityKey = (label: string) =>
  new Uint8Array(createHash('sha256').update(`id/${label}`).digest());

/**
 * The stand-in model package: a real layers topology (one dense layer over 4 features, 2 classes). Its parameter
 * count is whatever `standInDescribe` is given: the twins never build it.
 */
export const STAND_IN_MODEL: ModelPackage = {
  topology: {
    class_name: 'Sequential',
    config: {
      name: 'unit',
      layers: [{ class_name: 'Dense', config: { name: 'out', units: 2, batch_input_shape: [null, 4] } }],
    },
  },
  weights: null,
};
export const STAND_IN_MODEL_BYTES = encodeModelPackage(STAND_IN_MODEL);
export const STAND_IN_MODEL_FID = createHash('sha256').update(STAND_IN_MODEL_BYTES).digest('hex');

/** The data schema stand-in tasks declare: 4 numeric features, 2 classes (what STAND_IN_MODEL takes). */
export const STAND_IN_DATA = {
  kind: 'tabular',
  columns: [
    ...['a', 'b', 'c', 'd'].map((name) => ({ name, type: 'numeric', transform: 'none', missing: 'refuse' })),
    { name: 'label', type: 'ignore' },
  ],
  label: { column: 'label', classes: ['no', 'yes'] },
  // Nothing held out by default (no client-side evaluation, no closing round).
  holdout: 0,
};

/** The stand-in's initial weights: `dimension` values in ±0.1 from the seed. */
export function standInInitial(seed: string | null, dimension: number): Float32Array {
  const h = createHash('sha256')
    .update(seed ?? 'package')
    .digest();
  return Float32Array.from({ length: dimension }, (_, i) => (h[i % 32]! - 128) / 1280);
}

/** The coordinator's `describeModel` for the stand-in: STAND_IN_MODEL's shape, `dimension` weights from the seed. */
export const standInDescribe = (dimension: number) => async (_pkg: ModelPackage, seed: string | null) => ({
  spec: {
    name: 'unit',
    inputShape: [4],
    outputUnits: 2,
    output: 'logits' as const,
    parameters: dimension,
    tensors: [{ name: 'out/kernel', shape: [dimension] }],
  },
  initial: standInInitial(seed, dimension),
});

/** What the stand-in's evaluate answers for weights on `examples` held-out rows. */
export const standInScore = (weights: Float32Array, examples: number) => ({
  examples,
  correct: Math.floor(examples * Math.abs(Math.sin(weights[0]! * 1000))),
  lossSum: examples * 0.5,
});

/**
 * A deterministic stand-in for training (w + 0.01·sin(seeded index)) and for scoring (standInScore). `delayMs` stands
 * for the time training takes (0: none).
 */
export function standInTrainer(examples: number, delayMs = 0) {
  return {
    async train(job: { weights: Float32Array; options: { seed: string } }) {
      const h = createHash('sha256').update(job.options.seed).digest();
      const out = new Float32Array(job.weights.length);
      for (let i = 0; i < out.length; i++) out[i] = job.weights[i]! + 0.01 * Math.sin(h[i % 32]! + i);
      await new Promise((r) => setTimeout(r, delayMs));
      return { weights: out, loss: 1, examples, seconds: delayMs / 1000 };
    },
    async evaluate(job: { weights: Float32Array; data: { count: number } }) {
      return standInScore(job.weights, job.data.count);
    },
  };
}

const emptyExamples = (count: number) => ({
  count,
  shape: [4],
  x: new Float32Array(count * 4),
  y: new Uint16Array(count),
});

/**
 * An organisation's data for stand-in tasks: `holdout` rows held out (what standInTrainer scores), and, for tasks
 * that need federated statistics, the given statistics words.
 */
export function standInLocalData(
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
