/**
 * The recomputation part of `npm run bench:audit` (issue 19 §6): `audit verify` re-deriving one round's aggregate from
 * its recompute material, against the coordinator's own aggregation of the same attempt from the same inputs, in the
 * same run. Aim: the audit's recomputation ≤ 2× the coordinator's aggregation.
 *
 * Each case is one real SecAgg+ attempt at the model's real size: a task created and its organisations admitted
 * through the real protocol rules (test/audit/fixture.ts), the graph seed drawn on chain, every member a real SecAgg
 * client (X25519 adverts, Shamir shares, masked input signed by its admitted identity key, consistency, unmask)
 * driven by a real SecAgg server, each survivor's masked update stored and committed to as a participant does, the
 * material assembled as the coordinator's `conclusionInput` assembles it, the round's manifest (version 4) anchored.
 * Two cases per model: n organisations all surviving; and n + 1 members of which the last leaves after sharing its
 * keys (stage 'masked'), so its pair masks with every surviving neighbour must be regenerated from its revealed secret
 * — the costly case. With 4 organisations SecAgg+ has k = t = 2 and survives no dropout (src/task/spec.ts
 * secAggShape), hence the extra member: both cases sum n survivors' updates. k and t follow the spec `ailink demo`
 * writes for the cohort (neighbours min(8, largest even < cohort), threshold ⌊k/2⌋ + 1, at least 2).
 *
 * Timed, both sides from objects already in memory (no storage, no downloads), median of `runs`:
 * - coordinator: `concludeAttempt` over the material — the SecAgg server replayed (every signature checked), the sum
 *   unmasked, decoded, the strategy applied, the model encoded and hashed — as the coordinator's `finish` runs it;
 *   beside it, `finish`'s work to publish the material (a JSON header of the messages, the stored updates raw, SHA-256).
 * - audit: `recomputeAggregates` for the task — what `audit verify` runs to recompute: the manifest and spec read and
 *   hashed, the material hashed and parsed, every masked update checked against its commitment and signature, the
 *   start model decoded, `concludeAttempt`, the model hash, evaluation, weight, survivors and dropouts compared.
 * The live stages' work of the coordinator (fetching and checking each update as it arrives, the live server) is not
 * counted on its side: only `finish`'s.
 */
import { createHash, randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import {
  createSecAggClient,
  createSecAggServer,
  encodeWeightedUpdate,
  type SecAggParams,
  type Signed,
  type StrategyState,
  type UnmaskBody,
} from '../src/aggregation/index.ts';
import { checkLineage, recomputeAggregates } from '../src/audit/index.ts';
import { createSqliteState, seedOf } from '../src/chain/index.ts';
import { fromHex, toHex } from '../src/shared/bytes.ts';
import {
  type AggregationMaterial,
  aggregationMaterialBytes,
  cohortDigest,
  concludeAttempt,
  encodeEvaluation,
  encodeStoredUpdate,
  encodingOf,
  graphSeedOf,
  type Manifest,
  manifestBytes,
  manifestDigest,
  parseAggregationMaterial,
  privacyRecord,
  roundContext,
  secAggShape,
  signCommitment,
  strategyOf,
  taskDigest,
  toWire,
  vectorLayout,
} from '../src/task/index.ts';
import { buildLineage, type LineageFixture } from '../test/audit/fixture.ts';
import { call } from '../test/chain/helpers.ts';

export interface RecomputeRow {
  model: string;
  label: string;
  parameters: number;
  case: 'no dropout' | 'one dropout';
  /** Members of the cohort, survivors (organisations whose updates are summed), and the SecAgg+ graph. */
  cohort: number;
  survivors: number;
  k: number;
  t: number;
  material_mb: number;
  coordinator_aggregate_s: number;
  coordinator_finish_s: number;
  recompute_s: number;
  /** Of the audit's time: hashing the material and parsing it (JSON, schema) — work the coordinator has no need of. */
  audit_material_parse_s: number;
  recompute_ratio: number;
}

const random = (n: number) => new Uint8Array(randomBytes(n));
const sha256Hex = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** The SecAgg settings `ailink demo` writes for a cohort of `m` (src/cli/fl-demo.ts), before secAggShape caps them. */
const demoSecAgg = (m: number) => ({
  neighbours: Math.min(8, m - 1 - ((m - 1) % 2)),
  threshold: Math.max(2, Math.floor(Math.min(8, m - 1) / 2) + 1),
});

export interface RecomputeOptions {
  readonly sizes: readonly { model: string; label: string; parameters: number }[];
  /** Organisations whose updates are summed (the dropout case has one member more). */
  readonly organisations: number;
  readonly runs: number;
  readonly log: (s: string) => void;
}

export async function benchRecompute(options: RecomputeOptions): Promise<RecomputeRow[]> {
  const rows: RecomputeRow[] = [];
  for (const size of options.sizes) {
    for (const dropout of [false, true]) {
      rows.push(await runCase(size, options.organisations, dropout, options));
    }
  }
  return rows;
}

/** One SecAgg+ attempt run and anchored on a task of `buildLineage` (bench:audit's recomputation and its bundle). */
export interface SecAggRound {
  readonly n: number;
  readonly k: number;
  readonly t: number;
  readonly materialBytes: Uint8Array;
  readonly manifest: Manifest;
  readonly manifestFid: string;
  readonly manifestDigest: string;
  /** The strategy's state after the round (the next round's start). */
  readonly next: StrategyState;
  readonly model: { readonly fid: string; readonly hash: string };
  /** The coordinator's finish over the same inputs, timed: `concludeAttempt`, then the material's bytes and digest. */
  finish(): Promise<{ aggregateS: number; finishS: number; bytes: Uint8Array; digest: string }>;
}

/**
 * Runs round `round` of the task `f` as one real SecAgg+ attempt of every participant (the last leaves after sharing
 * its keys when `dropout`), from the strategy state `start` (stored as `startModel`), and anchors its manifest.
 */
export async function runSecAggRound(
  f: LineageFixture,
  size: { readonly model: string; readonly parameters: number },
  options: {
    readonly round: number;
    readonly dropout: boolean;
    readonly start: StrategyState;
    readonly startModel: { readonly fid: string; readonly hash: string };
    readonly parent: { readonly fid: string; readonly digest: string } | null;
  },
): Promise<SecAggRound> {
  const { round, dropout, start } = options;
  const { spec, task, state } = f;
  const members = f.participants.length;
  const apply = (c: ReturnType<typeof call>) => {
    const outcome = f.h.submit(f.coordinator.address, c);
    if (outcome.kind !== 'applied') throw new Error(`bench: ${c.name} rejected: ${JSON.stringify(outcome)}`);
  };
  const context = roundContext(task, round, 0);
  apply(
    call('provenance.drawSeed', {
      task,
      round,
      attempt: 0,
      cohort: cohortDigest(
        f.participants.map((p) => ({
          account: p.account.address,
          identityKey: toHex(p.identity.publicKey),
        })),
      ),
    }),
  );
  const seed = seedOf(state, task, round, 0);
  if (seed === undefined) throw new Error('bench: the chain drew no graph seed');
  const { k, t } = secAggShape(spec, members);
  const layout = vectorLayout(spec, 'train');
  const params: SecAggParams = {
    context,
    identities: new Map(f.participants.map((p) => [p.account.address, p.identity.publicKey])),
    k,
    t,
    graphSeed: fromHex(graphSeedOf(seed.blockHash, task, round, 0)),
    dimension: layout.dimension,
  };

  // One attempt, every stage, as the participants and the coordinator's live server run it.
  const clients = f.participants.map((p) => ({
    p,
    id: p.account.address,
    client: createSecAggClient(p.account.address, { identityKey: p.identity.privateKey, random }, params),
  }));
  const live = createSecAggServer(params);
  const adverts = clients.map((c) => c.client.advertise());
  const routed = live.collectAdverts(adverts);
  const shares = await Promise.all(clients.map((c) => c.client.shareKeys(routed.get(c.id) ?? [])));
  const inbox = live.collectShares(shares);
  // The dropout (the last member) shared its keys and then went silent: no masked update.
  const staying = dropout ? clients.slice(0, -1) : clients;
  const stored = new Map<string, Uint8Array>();
  const commitments: Manifest['updates'] = [];
  const masked = staying.map((c, i) => {
    const update = new Float32Array(size.parameters);
    const noise = random(size.parameters);
    for (let j = 0; j < update.length; j++) update[j] = (noise[j]! - 127.5) / 12_750; // |Δ| ≤ 0.01
    const evaluation = encodeEvaluation({ examples: 60 + i, correct: 30 + i, lossSum: 40.5 + i });
    const words = new Uint32Array(layout.dimension);
    words.set(encodeWeightedUpdate(update, 100 + 7 * i, encodingOf(spec), random), 0);
    words.set(evaluation, layout.update + layout.weight);
    const m = c.client.maskedInput(inbox.get(c.id) ?? [], words);
    const bytes = encodeStoredUpdate({ context, from: c.id, signature: m.signature, words: m.body.masked });
    stored.set(c.id, bytes);
    const fid = f.store(bytes, c.p.account, `update-${round}-${i}`);
    const dataset = sha256Hex(new TextEncoder().encode(`${task}/dataset/${i}`));
    const commitment = signCommitment(c.p.identity.privateKey, context, {
      fid,
      digest: sha256Hex(bytes),
      dataset,
    });
    commitments.push({
      account: c.id,
      fid,
      digest: commitment.digest,
      dataset,
      signature: toHex(commitment.signature),
    });
    return m;
  });
  const survivors = live.collectMasked(masked);
  const consistency = staying.map((c) => c.client.consistency(survivors));
  const signatures = live.collectConsistency(consistency);
  const unmask: Signed<UnmaskBody>[] = staying.map((c) => c.client.unmask(signatures));

  // The coordinator's finish: the material as `conclusionInput` assembles it (stored messages in their wire form, the
  // survivors’ stored updates raw), `concludeAttempt`, then the material's bytes and digest for `storeMaterial`.
  const materialOf = (): AggregationMaterial => ({
    context,
    adverts: adverts.map((m) => toWire(m)),
    shares: shares.map((m) => toWire(m)),
    masked: survivors.map((a) => ({ account: a, update: stored.get(a)! })),
    consistency: consistency.map((m) => toWire(m)),
    unmask: unmask.map((m) => toWire(m)),
  });
  const timed = async () => {
    const t0 = performance.now();
    const material = materialOf();
    const t1 = performance.now();
    const c = await concludeAttempt({ spec, kind: 'train', start, secagg: { params, material } });
    const t2 = performance.now();
    const bytes = aggregationMaterialBytes(material);
    const digest = sha256Hex(bytes);
    const t3 = performance.now();
    return { c, bytes, digest, aggregateS: (t2 - t1) / 1000, finishS: (t3 - t0) / 1000 };
  };
  const first = await timed();
  const c = first.c;
  if (c.rejected.length > 0 || c.survivors.length !== staying.length)
    throw new Error(`bench: the attempt did not conclude cleanly: ${c.rejected.join('; ')}`);

  // The round as the coordinator stores and anchors it.
  const materialFid = f.store(first.bytes, f.coordinator, `aggregation-${round}`);
  const modelFid = f.store(c.modelBytes!, f.coordinator, `model-${round}`);
  const live_ = new Set(survivors);
  const manifest: Manifest = {
    version: 4,
    kind: 'train',
    task,
    spec: taskDigest(spec),
    specFid: f.specFid,
    round,
    attempt: 0,
    parent: options.parent,
    startModel: options.startModel,
    model: { fid: modelFid, hash: c.modelHash!, name: size.model, parameters: size.parameters },
    cohort: clients.map((x) => x.id),
    survivors,
    dropouts: clients.filter((x) => !live_.has(x.id)).map((x) => ({ account: x.id, stage: 'masked' })),
    updates: commitments,
    consistency: signatures.map((s) => ({ account: s.from, signature: toHex(s.signature) })),
    strategy: spec.strategy,
    secagg: {
      enabled: true,
      k,
      t,
      range: spec.secagg.range,
      bits: spec.secagg.bits,
      maxWeight: spec.secagg.maxWeight,
    },
    privacy: privacyRecord(spec, round),
    metrics: { accuracy: null, loss: null, testExamples: null, examples: c.examples },
    preprocessing: null,
    evaluation: c.evaluation,
    aggregation: { fid: materialFid, digest: first.digest },
    code: { package: 'ailink', version: '0.0.0', lockfile: 'cd'.repeat(32) },
    startedAt: 1_700_000_000_000 + round * 60_000,
    finishedAt: 1_700_000_030_000 + round * 60_000,
  };
  const manifestFid = f.store(manifestBytes(manifest), f.coordinator, `manifest-${round}`);
  const digest = manifestDigest(manifest);
  apply(call('provenance.recordRound', { task, round, manifest: manifestFid, digest }));
  return {
    n: staying.length,
    k,
    t,
    materialBytes: first.bytes,
    manifest,
    manifestFid,
    manifestDigest: digest,
    next: c.next!.state,
    model: { fid: modelFid, hash: c.modelHash! },
    finish: async () => {
      const { aggregateS, finishS, bytes, digest } = await timed();
      return { aggregateS, finishS, bytes, digest };
    },
  };
}

async function runCase(
  size: RecomputeOptions['sizes'][number],
  n: number,
  dropout: boolean,
  options: RecomputeOptions,
): Promise<RecomputeRow> {
  const built = performance.now();
  const members = dropout ? n + 1 : n;
  const db = new Database(':memory:');
  const state = createSqliteState(db);
  // The task, its spec, the 12 miners and the admissions through the real protocol rules; round 0 is run here.
  const f = buildLineage({
    rounds: 1,
    anchored: 0,
    participants: members,
    label: `recompute-${size.model}-${members}-${dropout ? 'drop' : 'all'}`,
    state,
    model: { name: size.model, parameters: size.parameters },
    secagg: demoSecAgg(members),
  });
  const { task } = f;
  const start = strategyOf(f.spec).init(new Float32Array(size.parameters));
  const r = await runSecAggRound(f, size, {
    round: 0,
    dropout,
    start,
    startModel: f.initial,
    parent: null,
  });
  const { k, t } = r;
  const first = { bytes: r.materialBytes };
  const finish = r.finish;
  const buildS = (performance.now() - built) / 1000;

  // The audit's input: everything already fetched.
  const input = { task, state, atBlock: f.h.block, objects: f.objects as Map<string, Uint8Array | Error> };
  const check = await recomputeAggregates(input); // also the warm-up
  const round = check.get(0);
  if (round?.recomputed !== true) {
    throw new Error(
      `bench: the audit did not recompute the round (${round?.note ?? ''} ${JSON.stringify(round?.findings ?? [])}): the benchmark measures nothing`,
    );
  }
  const lineage = checkLineage({ ...input, recomputed: check });
  if (!lineage.ok)
    throw new Error(
      `bench: the generated round did not verify: ${JSON.stringify([...lineage.findings, ...lineage.rounds.flatMap((r) => r.findings)]).slice(0, 800)}`,
    );

  const coordinatorAggregate: number[] = [];
  const coordinatorFinish: number[] = [];
  const recompute: number[] = [];
  const parse: number[] = [];
  // Interleaved, so load on this shared machine weighs on both sides alike.
  for (let r = 0; r < options.runs; r++) {
    const x = await finish();
    coordinatorAggregate.push(x.aggregateS);
    coordinatorFinish.push(x.finishS);
    const t0 = performance.now();
    await recomputeAggregates(input);
    recompute.push((performance.now() - t0) / 1000);
    const t1 = performance.now();
    sha256Hex(first.bytes);
    parseAggregationMaterial(first.bytes);
    parse.push((performance.now() - t1) / 1000);
  }
  db.close();
  const row: RecomputeRow = {
    model: size.model,
    label: size.label,
    parameters: size.parameters,
    case: dropout ? 'one dropout' : 'no dropout',
    cohort: members,
    survivors: n,
    k,
    t,
    material_mb: Number((first.bytes.byteLength / 1e6).toFixed(1)),
    coordinator_aggregate_s: Number(median(coordinatorAggregate).toFixed(4)),
    coordinator_finish_s: Number(median(coordinatorFinish).toFixed(4)),
    recompute_s: Number(median(recompute).toFixed(4)),
    audit_material_parse_s: Number(median(parse).toFixed(4)),
    recompute_ratio: Number((median(recompute) / median(coordinatorAggregate)).toFixed(2)),
  };
  options.log(
    `${size.label}, ${row.case}: ${members} members (k = ${k}, t = ${t}), material ${row.material_mb} MB, built in ${buildS.toFixed(1)} s; coordinator ${row.coordinator_aggregate_s} s, audit ${row.recompute_s} s (material hash + parse ${row.audit_material_parse_s} s)`,
  );
  return row;
}
