import { createHash } from 'node:crypto';
import { signingKeyPair } from '../../src/aggregation/index.ts';
import { signed } from '../../src/aggregation/secagg.ts';
import { admissionMessage, type StateStore } from '../../src/chain/index.ts';
import type { Account } from '../../src/shared/account.ts';
import { toHex } from '../../src/shared/bytes.ts';
import {
  cohortDigest,
  encodeModelBytes,
  type Manifest,
  manifestBytes,
  manifestDigest,
  parseTaskSpec,
  privacyRecord,
  roundContext,
  signCommitment,
  type TaskSpec,
  taskDigest,
  taskIdOf,
  taskSpecBytes,
} from '../../src/task/index.ts';
import {
  buySpace,
  call,
  createHarness,
  GENESIS_HASH,
  type Harness,
  makeAccounts,
  makeDeclaration,
  makeReceipt,
  registerMiner,
} from '../chain/helpers.ts';
import { UNIT_DATA, UNIT_MODEL_BYTES } from '../coordinator/harness.ts';

/**
 * A task's whole lineage built through the real protocol rules on an in-memory chain state: 12 miners registered,
 * every object (spec, models, manifests, participants' updates) declared and reported by its miners, the task
 * created, participants admitted with their own signatures, each round's manifest anchored. The objects' bytes are
 * kept by fid, as a storage network would serve them. Model vectors are tiny unless `model` says otherwise (the audit
 * checks hashes and headers, not training; bench:audit gives the real models' sizes).
 */

const sha256Hex = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

export interface LineageFixture {
  readonly h: Harness;
  readonly state: StateStore;
  readonly task: string;
  readonly spec: TaskSpec;
  readonly objects: Map<string, Uint8Array>;
  readonly coordinator: Account;
  readonly participants: readonly {
    account: Account;
    identity: { privateKey: Uint8Array; publicKey: Uint8Array };
  }[];
  readonly miners: readonly Account[];
  /** The task spec object's fid. */
  readonly specFid: string;
  /** The initial model as stored (round 0's start model). */
  readonly initial: { readonly fid: string; readonly hash: string };
  /** Manifests as anchored, by round. */
  readonly manifests: Manifest[];
  readonly anchors: { round: number; fid: string; digest: string }[];
  /** Declares and reports `bytes` as an object of `owner`; returns its fid. */
  store(bytes: Uint8Array, owner: Account, label: string): string;
}

let shared: { miners: Account[]; users: Account[] } | undefined;

export interface LineageOptions {
  readonly rounds: number;
  readonly participants?: number;
  readonly label?: string;
  /** Records the task on chain as another account than the one the spec names (a spec/chain mismatch). */
  readonly impostor?: boolean;
  /** The task's DP settings (default: none); honest manifests then state the ε spent. */
  readonly dp?: TaskSpec['dp'];
  /** The model's name and weight count (default: 'mlp' with 8 weights). */
  readonly model?: { readonly name: string; readonly parameters: number };
  /** Where the chain state lives (default: in memory; the benchmark uses SQLite, as the indexer does). */
  readonly state?: StateStore;
  /** The harness the calls go through (default: `createHarness(state)`); bench:audit's bundle seals each in a block. */
  readonly harness?: Harness;
  /** The spec's SecAgg+ graph degree and threshold (default 2 and 2). */
  readonly secagg?: { readonly neighbours: number; readonly threshold: number };
  /**
   * How many of the task's rounds are built and anchored here (default: all); the caller may run the rest itself
   * (bench:audit runs a real SecAgg round on the task).
   */
  readonly anchored?: number;
  /**
   * A dishonest coordinator: rewrites a round's manifest before it is stored and anchored (the anchor then matches
   * the bad manifest, so only the audit's own checks can catch it).
   */
  readonly tamper?: (manifest: Manifest, ctx: TamperContext) => Manifest;
}

export interface TamperContext {
  readonly participants: LineageFixture['participants'];
  /** An account with an identity key that was never admitted to the task. */
  readonly outsider: { account: Account; identity: { privateKey: Uint8Array; publicKey: Uint8Array } };
  readonly anchors: readonly { round: number; fid: string; digest: string }[];
  store(bytes: Uint8Array, owner: Account, label: string): string;
}

export function buildLineage(options: LineageOptions): LineageFixture {
  const n = options.participants ?? 4;
  const label = options.label ?? 'audit';
  const PARAMETERS = options.model?.parameters ?? 8;
  const MODEL = options.model?.name ?? 'mlp';
  shared ??= { miners: makeAccounts('audit/miner', 12), users: makeAccounts('audit/user', 17) };
  const miners = shared.miners;
  const [coordinator, ...rest] = shared.users as [Account, ...Account[]];
  const participants = rest.slice(0, n).map((account, i) => ({
    account,
    identity: signingKeyPair((len) =>
      new Uint8Array(createHash('sha256').update(`${label}/identity/${i}`).digest()).slice(0, len),
    ),
  }));
  const outsiderAccount = shared.users[16]!;
  const outsider = {
    account: outsiderAccount,
    identity: signingKeyPair((len) =>
      new Uint8Array(createHash('sha256').update(`${label}/outsider`).digest()).slice(0, len),
    ),
  };
  const h = options.harness ?? createHarness(options.state);
  const objects = new Map<string, Uint8Array>();
  const apply = (caller: Account, c: ReturnType<typeof call>, paidToPot?: bigint) => {
    const outcome = h.submit(caller.address, c, paidToPot === undefined ? {} : { paidToPot });
    if (outcome.kind !== 'applied')
      throw new Error(`fixture: ${c.name} was rejected: ${JSON.stringify(outcome)}`);
  };
  for (const m of miners) apply(m, registerMiner(m), 1000n);
  // Every account that stores holds space: declarations debit it. A round stores a model (or an update) of this many
  // 1 MiB segments, and the coordinator a manifest and material too: enough GiB for every round (1 for short tasks).
  const modelSegments = Math.max(1, Math.ceil((PARAMETERS * 4) / (1 << 20)));
  const gib = Math.max(1, Math.ceil((options.rounds * (modelSegments + 3)) / 1024));
  for (const account of new Set([coordinator, ...participants.map((p) => p.account), outsiderAccount]))
    buySpace(h, account.address, gib);
  let objectCount = 0;
  const store = (bytes: Uint8Array, owner: Account, name: string) => {
    const d = makeDeclaration(`${label}/${name}/${objectCount++}`, owner.address, {
      data: 4,
      parity: 8,
      segments: Math.max(1, Math.ceil(bytes.byteLength / (1 << 20))),
      segmentSize: 1 << 20,
      size: Math.max(1, bytes.byteLength),
    });
    apply(owner, call('fileBank.uploadDeclaration', d));
    apply(
      owner,
      call('fileBank.transferReport', { fid: d.fid, receipts: miners.map((m, i) => makeReceipt(m, d, i)) }),
    );
    objects.set(d.fid, bytes);
    return d.fid;
  };

  const initial = new Float32Array(PARAMETERS);
  const modelFid = store(UNIT_MODEL_BYTES, coordinator, 'model');
  const spec = parseTaskSpec({
    version: 2,
    name: `${label} task`,
    coordinator: {
      account: coordinator.address,
      serverKey: 'ab'.repeat(32),
      readerKey: coordinator.readerKey,
    },
    model: {
      name: MODEL,
      fid: modelFid,
      digest: sha256Hex(UNIT_MODEL_BYTES),
      parameters: PARAMETERS,
      initialSeed: 'fixture',
      initialHash: sha256Hex(encodeModelBytes(MODEL, initial)),
    },
    data: { ...UNIT_DATA, holdout: 0.2 },
    dataset: { name: 'fashion-mnist', description: 'fixture' },
    training: {
      loss: 'categorical_crossentropy',
      optimizer: { name: 'sgd', learningRate: 0.05 },
      metrics: ['accuracy', 'loss'],
      proximalMu: 0,
    },
    strategy: { name: 'fedavg' },
    local: { epochs: 1, batchSize: 10 },
    rounds: options.rounds,
    cohort: { size: n, min: Math.max(1, n - 1) },
    deadlines: {
      joinMs: 1000,
      advertiseMs: 1000,
      sharesMs: 1000,
      trainMs: 1000,
      consistencyMs: 1000,
      unmaskMs: 1000,
    },
    secagg: {
      enabled: true,
      neighbours: options.secagg?.neighbours ?? 2,
      threshold: options.secagg?.threshold ?? 2,
      range: 1,
      bits: 24,
      maxWeight: 65535,
    },
    dp: options.dp ?? null,
    admitted: participants.map((p) => p.account.address),
  });
  const task = taskIdOf(spec);
  const onChain = options.impostor ? outsider.account : coordinator;
  const specFid = store(taskSpecBytes(spec), coordinator, 'spec');
  const initialFid = store(encodeModelBytes(MODEL, initial), coordinator, 'initial');
  apply(onChain, call('provenance.createTask', { task, spec: taskDigest(spec), admitted: spec.admitted }));
  for (const p of participants) {
    const identityKey = toHex(p.identity.publicKey);
    apply(
      onChain,
      call('provenance.admit', {
        task,
        account: p.account.address,
        identityKey,
        signature: toHex(p.account.sign(admissionMessage(GENESIS_HASH, task, identityKey))),
      }),
    );
  }

  const manifests: Manifest[] = [];
  const anchors: { round: number; fid: string; digest: string }[] = [];
  const initialRef = { fid: initialFid, hash: sha256Hex(encodeModelBytes(MODEL, initial)) };
  let start = initialRef;
  // Survivors of each round so far: distributed DP's ε depends on them.
  const trained: number[] = [];
  for (let round = 0; round < (options.anchored ?? options.rounds); round++) {
    const cohort = participants.map((p) => p.account.address);
    // Every third round the last participant drops out before its update.
    const dropped = round % 3 === 1 ? [participants[n - 1]!.account.address] : [];
    const survivors = cohort.filter((a) => !dropped.includes(a));
    trained.push(survivors.length);
    const context = roundContext(task, round, 0);
    const updates = participants
      .filter((p) => survivors.includes(p.account.address))
      .map((p, i) => {
        const bytes = new TextEncoder().encode(`${label}/update/${round}/${i}`);
        const fid = store(bytes, p.account, `update-${round}-${i}`);
        const dataset = sha256Hex(new TextEncoder().encode(`${label}/dataset/${i}`));
        const c = signCommitment(p.identity.privateKey, context, { fid, digest: sha256Hex(bytes), dataset });
        return { account: p.account.address, fid, digest: c.digest, dataset, signature: toHex(c.signature) };
      });
    const weights = new Float32Array(PARAMETERS);
    for (let i = 0; i < PARAMETERS; i++) weights[i] = (round + 1) * 0.01 * (i + 1);
    const modelBytes = encodeModelBytes(MODEL, weights);
    const model = { fid: store(modelBytes, coordinator, `model-${round}`), hash: sha256Hex(modelBytes) };
    // Every survivor confirmed the survivor list (SecAgg's consistency stage).
    const consistency = participants
      .filter((p) => survivors.includes(p.account.address))
      .map((p) => ({
        account: p.account.address,
        signature: toHex(
          signed('consistency', context, p.account.address, p.identity.privateKey, { survivors }).signature,
        ),
      }));
    const honest: Manifest = {
      version: 3,
      kind: 'train',
      task,
      spec: taskDigest(spec),
      specFid,
      round,
      attempt: 0,
      parent: round === 0 ? null : { fid: anchors[round - 1]!.fid, digest: anchors[round - 1]!.digest },
      startModel: start,
      model: { ...model, name: MODEL, parameters: PARAMETERS },
      cohort,
      survivors,
      dropouts: dropped.map((account) => ({ account, stage: 'masked' })),
      updates,
      consistency,
      strategy: { name: 'fedavg' },
      secagg: { enabled: true, k: 2, t: 2, range: 1, bits: 24, maxWeight: 65535 },
      privacy: privacyRecord(spec, round, trained),
      metrics: {
        accuracy: 0.5 + round / (2 * options.rounds),
        loss: 1 / (round + 1),
        testExamples: 100,
        examples: 600,
      },
      preprocessing: null,
      // The fixture's data holds rows out: every round reports how they scored its start model.
      evaluation: { examples: 120, accuracy: 0.4 + round / (2 * options.rounds), loss: 1.5 / (round + 1) },
      code: { package: 'ailink', version: '0.0.0', lockfile: 'cd'.repeat(32) },
      startedAt: 1_700_000_000_000 + round * 60_000,
      finishedAt: 1_700_000_000_000 + round * 60_000 + 30_000,
    };
    // Before the round ran, its coordinator committed to the cohort and the chain drew the graph seed.
    apply(
      onChain,
      call('provenance.drawSeed', {
        task,
        round,
        attempt: 0,
        cohort: cohortDigest(
          participants.map((p) => ({ account: p.account.address, identityKey: toHex(p.identity.publicKey) })),
        ),
      }),
    );
    const manifest = options.tamper?.(honest, { participants, outsider, anchors, store }) ?? honest;
    const fid = store(manifestBytes(manifest), onChain, `manifest-${round}`);
    const digest = manifestDigest(manifest);
    apply(onChain, call('provenance.recordRound', { task, round, manifest: fid, digest }));
    manifests.push(manifest);
    anchors.push({ round, fid, digest });
    start = model;
  }
  return {
    h,
    state: h.state,
    task,
    spec,
    objects,
    coordinator,
    participants,
    miners,
    specFid,
    initial: initialRef,
    manifests,
    anchors,
    store,
  };
}
