/**
 * One real SecAgg+ attempt on a task of `buildLineage` (./fixture.ts), run and anchored as the coordinator does it:
 * every member a real SecAgg client (X25519 adverts, Shamir shares, masked input signed by its admitted identity key,
 * consistency, unmask) driven by a real SecAgg server, the graph seed drawn on chain, each survivor's masked update
 * stored and committed to as a participant does, the material assembled as the coordinator's `conclusionInput` does,
 * `concludeAttempt`, the round's manifest (version 4) stored and anchored. bench:audit times it; tests lie with it.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  createSecAggClient,
  createSecAggServer,
  encodeWeightedUpdate,
  type SecAggParams,
  type Signed,
  type StrategyState,
  type UnmaskBody,
} from '../../src/aggregation/index.ts';
import { seedOf } from '../../src/chain/index.ts';
import { fromHex, toHex } from '../../src/shared/bytes.ts';
import {
  type AggregationMaterial,
  aggregationMaterialBytes,
  cohortDigest,
  concludeAttempt,
  encodeEvaluation,
  encodeModelBytes,
  encodeStoredUpdate,
  encodingOf,
  graphSeedOf,
  type Manifest,
  manifestBytes,
  manifestDigest,
  privacyRecord,
  roundContext,
  secAggShape,
  signCommitment,
  taskDigest,
  toWire,
  vectorLayout,
} from '../../src/task/index.ts';
import { call } from '../chain/helpers.ts';
import type { LineageFixture } from './fixture.ts';

const random = (n: number) => new Uint8Array(randomBytes(n));
const sha256Hex = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

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
    /**
     * A lying coordinator: rewrites the material and the manifest after concluding honestly, before storing and
     * anchoring them (the anchor then matches the lie, so only the audit's own checks can catch it).
     */
    readonly lie?: (
      material: AggregationMaterial,
      manifest: Manifest,
    ) => { material: AggregationMaterial; manifest: Manifest };
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

  // The round as the coordinator stores and anchors it (or as a lying one rewrites it first).
  const modelFid = f.store(
    encodeModelBytes(spec.model.name, c.next!.global),
    f.coordinator,
    `model-${round}`,
  );
  const live_ = new Set(survivors);
  const honest: Manifest = {
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
    aggregation: null,
    code: { package: 'ailink', version: '0.0.0', lockfile: 'cd'.repeat(32) },
    startedAt: 1_700_000_000_000 + round * 60_000,
    finishedAt: 1_700_000_030_000 + round * 60_000,
  };
  const lied = options.lie?.(materialOf(), honest);
  const materialBytes = lied === undefined ? first.bytes : aggregationMaterialBytes(lied.material);
  const materialFid = f.store(materialBytes, f.coordinator, `aggregation-${round}`);
  const manifest: Manifest = {
    ...(lied?.manifest ?? honest),
    aggregation: { fid: materialFid, digest: sha256Hex(materialBytes) },
  };
  const manifestFid = f.store(manifestBytes(manifest), f.coordinator, `manifest-${round}`);
  const digest = manifestDigest(manifest);
  apply(call('provenance.recordRound', { task, round, manifest: manifestFid, digest }));
  return {
    n: staying.length,
    k,
    t,
    materialBytes,
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
