/**
 * Issue 19 §1, verifiable aggregation: `audit verify` re-derives every round's sum from the committed updates and the
 * unmasking material, applies the spec's strategy through `concludeAttempt`, and compares the model bytes with the
 * manifest. A real task runs through the real coordinator and participants (SecAgg clients and server, harness twins
 * for transport and storage) over the real protocol rules (the chain twin); a lying coordinator rewrites what it
 * stores and anchors, and the audit names the lie.
 */
import { createHash } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type AuditReport, auditTask, checkLineage, evaluateClaims } from '../../src/audit/index.ts';
import { accountsReady } from '../../src/shared/account.ts';
import {
  type AggregationMaterial,
  aggregationMaterialBytes,
  decodeModelBytes,
  encodeModelBytes,
  type Manifest,
  manifestBytes,
  parseAggregationMaterial,
  parseManifest,
  parseTaskSpec,
  skellamEpsilonAfter,
} from '../../src/task/index.ts';
import { attachChainTwin } from '../coordinator/chain-twin.ts';
import {
  baseTask,
  fakeLocalData,
  fakeScore,
  makeAccount,
  makeParticipant,
  makeWorld,
  UNIT_DATA,
  type World,
} from '../coordinator/harness.ts';

beforeAll(async () => {
  await accountsReady();
});

const sha256Hex = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** What a lying coordinator does to the round it lies about, before storing and anchoring it. */
interface Lie {
  readonly round: number;
  material?(m: AggregationMaterial): AggregationMaterial;
  manifest?(m: Manifest, world: World): Manifest;
}

const worlds: World[] = [];
afterEach(async () => {
  for (const w of worlds.splice(0)) {
    await w.coordinator.stop();
    w.store.close();
  }
});

/**
 * Runs a 2-round task of 5 organisations (e drops out of round 1 after sharing its keys, before its masked update),
 * with the coordinator's storage and anchoring rewritten by `lie`; then audits it as an auditor would. With
 * `holdout`, each organisation holds that many rows out and scores every start model on them (client-side
 * evaluation, and a closing evaluation round).
 */
async function run(
  lie?: Lie,
  overrides: Partial<Record<string, unknown>> = {},
  holdout = 0,
  /** The auditor's reader key: what it may decrypt (sealed objects refuse any other). */
  readerKey?: string,
): Promise<{
  report: AuditReport;
  before: AuditReport;
  manifests: Manifest[];
  accounts: string[];
  objects: Map<string, Uint8Array | Error>;
}> {
  const world = makeWorld();
  worlds.push(world);
  const twin = attachChainTwin(world);
  if (lie !== undefined) {
    const honestPut = world.objects.put;
    let material: { fid: string; digest: string } | null = null;
    world.objects.put = async (bytes: Uint8Array, name?: string) => {
      const round = Number(/round-(\d+)\//.exec(name ?? '')?.[1] ?? -1);
      if (round !== lie.round) return honestPut(bytes);
      if (name?.endsWith('/aggregation.json') && lie.material) {
        const lied = aggregationMaterialBytes(lie.material(parseAggregationMaterial(bytes)));
        const fid = await honestPut(lied);
        material = { fid, digest: sha256Hex(lied) };
        return fid;
      }
      if (name?.endsWith('/manifest.json')) {
        let m = parseManifest(bytes);
        if (material !== null) m = { ...m, aggregation: material };
        if (lie.manifest) m = lie.manifest(m, world);
        return honestPut(manifestBytes(m));
      }
      return honestPut(bytes);
    };
    // It anchors what it stored (else MANIFEST_DIGEST would catch it without any recomputation).
    const anchor = world.ledger.recordRound;
    world.ledger.recordRound = (task, round, fid, _digest) =>
      anchor(task, round, fid, sha256Hex(world.objects.objects.get(fid)!));
    await world.restart();
  }
  const labels = ['a', 'b', 'c', 'd', 'e'];
  const accounts = labels.map((l) => makeAccount(l).address);
  const created = await world.coordinator.createTask(
    baseTask(accounts, {
      rounds: 2,
      ...(holdout > 0 ? { data: { ...UNIT_DATA, holdout: 0.2 } } : {}),
      ...overrides,
    }),
  );
  const stop = new AbortController();
  setMaxListeners(0, stop.signal);
  const members = labels.map((l, i) =>
    makeParticipant(twin.storingAs(accounts[i]!), created.id, l, {
      ...(l === 'e' ? { dropAt: { round: 1, stage: 'masked' as const } } : {}),
      ...(holdout > 0 ? { data: async () => fakeLocalData(l, { holdout: holdout + i }) } : {}),
      examples: 40 + 7 * i,
    }),
  );
  world.coordinator.start();
  const runs = members.map((m) => m.participant.run(stop.signal));
  await world.coordinator.finished(created.id);
  stop.abort();
  await Promise.allSettled(runs);
  twin.recordObjects();
  const manifests = await Promise.all(
    world.ledger.anchored(created.id).map(async (r) => parseManifest(await world.objects.get(r.manifest))),
  );
  const objects = new Map<string, Uint8Array | Error>();
  const report = await auditTask(
    { state: twin.state, atBlock: twin.atBlock(), fetch: (fid) => world.objects.get(fid, readerKey) },
    created.id,
    { objects },
  );
  // The audit as it was before the aggregate was re-derived: the lineage checks alone.
  const before = checkLineage({
    task: created.id,
    state: twin.state,
    atBlock: twin.atBlock(),
    objects: world.objects.objects,
  });
  return { report, before, manifests, accounts, objects };
}

/** A lie: any model of the right shape, stored and named with its true hash, so that every other check holds. */
const underivedModel: NonNullable<Lie['manifest']> = (m, world) => {
  const bytes = encodeModelBytes(m.model.name, new Float32Array(m.model.parameters).fill(0.25));
  const fid = sha256Hex(bytes);
  world.objects.objects.set(fid, bytes);
  return { ...m, model: { ...m.model, fid, hash: sha256Hex(bytes) } };
};

const findingsOf = (r: AuditReport) =>
  [...r.findings, ...r.rounds.flatMap((x) => x.findings)].map((f) => `${f.code} @ ${f.where}`);
const codesOf = (r: AuditReport) => [...new Set(findingsOf(r).map((f) => f.split(' @ ')[0]))].sort();

describe('audit verify re-derives every aggregate from the committed updates', () => {
  it('an honest task: every round recomputed bit for bit (a dropout’s pair masks rebuilt from its revealed secret)', async () => {
    const { report, manifests, accounts } = await run();
    expect(findingsOf(report)).toEqual([]);
    expect(report.rounds.map((r) => r.aggregate_recomputed)).toEqual([true, true]);
    expect(manifests.every((m) => m.version === 4 && m.aggregation != null)).toBe(true);
    expect(manifests[1]!.dropouts).toEqual([{ account: accounts[4], stage: 'masked' }]);
    // The --json output carries the flag per round.
    expect(JSON.parse(JSON.stringify(report)).rounds[1].aggregate_recomputed).toBe(true);
  }, 120_000);

  it('a strategy with server state (FedAvgM): its momentum is carried from round to round, and every round matches', async () => {
    const { report } = await run(undefined, {
      rounds: 3,
      strategy: { name: 'fedavgm', serverLr: 1, momentum: 0.9 },
    });
    expect(findingsOf(report)).toEqual([]);
    expect(report.rounds.map((r) => r.aggregate_recomputed)).toEqual([true, true, true]);
  }, 120_000);

  it('central DP: no material is published (the exact sum is what the noise hides); the round says why', async () => {
    const { report, manifests } = await run(undefined, {
      dp: { clipNorm: 1, noiseMultiplier: 1, delta: 1e-5, epsilonBudget: 1000 },
    });
    expect(manifests.map((m) => m.aggregation)).toEqual([null, null]);
    expect(report.rounds.map((r) => r.aggregate_recomputed)).toEqual([false, false]);
    expect(report.rounds[0]!.aggregateNote).toMatch(/central DP/);
    expect(codesOf(report).filter((c) => c?.startsWith('AGGREGATE'))).toEqual([]);
  }, 120_000);

  it('central DP with named auditors: the material and its noise seed are sealed for them; an auditor re-derives every noisy model bit for bit, anyone else gets a note', async () => {
    const auditor = 'a1'.repeat(32);
    const dp = { clipNorm: 1, noiseMultiplier: 1, delta: 1e-5, epsilonBudget: 1000, auditors: [auditor] };
    const { report, manifests } = await run(undefined, { dp }, 0, auditor);
    expect(findingsOf(report)).toEqual([]);
    expect(report.rounds.map((r) => r.aggregate_recomputed)).toEqual([true, true]);
    expect(manifests.every((m) => m.aggregation != null && m.privacy.mechanism === 'gaussian')).toBe(true);
    const stranger = await run(undefined, { dp }, 0, 'b2'.repeat(32));
    expect(stranger.report.rounds.map((r) => r.aggregate_recomputed)).toEqual([false, false]);
    expect(stranger.report.rounds[0]!.aggregateNote).toMatch(/sealed for the task's 1 named auditor/);
    expect(codesOf(stranger.report).filter((c) => c?.startsWith('AGGREGATE'))).toEqual([]);
  }, 240_000);

  it('central DP with named auditors: a model not derived from the noisy sum is AGGREGATE_MISMATCH for them', async () => {
    const auditor = 'a1'.repeat(32);
    const dp = { clipNorm: 1, noiseMultiplier: 1, delta: 1e-5, epsilonBudget: 1000, auditors: [auditor] };
    const { report } = await run(
      {
        round: 1,
        manifest: underivedModel,
      },
      { dp },
      0,
      auditor,
    );
    expect(findingsOf(report)).toEqual(['AGGREGATE_MISMATCH @ round 1 · model']);
  }, 120_000);

  it('distributed DP (Skellam): the noisy sum is published and recomputed bit for bit; ε counts the survivors’ noise only', async () => {
    const dp = {
      clipNorm: 1,
      noiseMultiplier: 1,
      delta: 1e-5,
      epsilonBudget: 1e6,
      mechanism: 'skellam' as const,
    };
    const { report, manifests, objects } = await run(undefined, { dp });
    expect(findingsOf(report)).toEqual([]);
    expect(manifests.every((m) => m.aggregation != null)).toBe(true);
    expect(report.rounds.map((r) => r.aggregate_recomputed)).toEqual([true, true]);
    const specBytes = objects.get(manifests[0]!.specFid) as Uint8Array;
    const spec = parseTaskSpec(JSON.parse(new TextDecoder().decode(specBytes)));
    // Round 1 lost e before its masked update, and e's noise share with it.
    expect(manifests.map((m) => m.survivors.length)).toEqual([5, 4]);
    expect(manifests.map((m) => m.privacy)).toEqual([
      { mechanism: 'skellam', epsilonSpent: skellamEpsilonAfter(spec, [5]), delta: 1e-5 },
      { mechanism: 'skellam', epsilonSpent: skellamEpsilonAfter(spec, [5, 4]), delta: 1e-5 },
    ]);
  }, 120_000);

  it('a model not derived from the updates: AGGREGATE_MISMATCH on the model', async () => {
    const { report, before } = await run({
      round: 1,
      manifest: underivedModel,
    });
    // The lineage checks alone pass it: the model is stored, hashes to what the manifest says, has the right shape.
    expect(findingsOf(before)).toEqual([]);
    expect(findingsOf(report)).toEqual(['AGGREGATE_MISMATCH @ round 1 · model']);
    expect(report.rounds.map((r) => r.aggregate_recomputed)).toEqual([true, false]);
  }, 120_000);

  it('a survivor left out (its update out of the sum, reported as a dropout): AGGREGATE_UNMASK', async () => {
    let left = '';
    const { report, before } = await run({
      round: 1,
      material: (m) => {
        left = m.masked[0]!.account;
        return { ...m, masked: m.masked.slice(1) };
      },
      manifest: (m) => ({
        ...m,
        survivors: m.survivors.filter((a) => a !== left),
        dropouts: [...m.dropouts, { account: left, stage: 'masked' }],
        updates: m.updates.filter((u) => u.account !== left),
      }),
    });
    // The others revealed its self-mask share, never its mask secret: without its update the sum cannot be unmasked.
    // The survivors' own signatures on the survivor list already catch this lie; the recomputation does too, even
    // were t of them to collude.
    expect(codesOf(before)).toContain('CONSISTENCY_SIGNATURE');
    expect(codesOf(report)).toContain('AGGREGATE_UNMASK');
    expect(report.rounds[1]!.aggregate_recomputed).toBe(false);
  }, 120_000);

  it('a made-up survivor (an update nobody committed): AGGREGATE_SURVIVORS', async () => {
    // e dropped out of round 1; the coordinator lists it as a survivor with another's update bytes.
    const e = makeAccount('e').address;
    const { report, before } = await run({
      round: 1,
      material: (m) => ({ ...m, masked: [...m.masked, { account: e, update: m.masked[0]!.update }] }),
    });
    expect(findingsOf(report)).toContain(
      `AGGREGATE_SURVIVORS @ round 1 · aggregation · masked[4] (${e.slice(0, 8)}…)`,
    );
    expect(report.rounds[1]!.aggregate_recomputed).toBe(false);
    expect(before.ok).toBe(true);
  }, 120_000);

  it('a wrong dropout set (the dropout reported as leaving before it shared its keys): AGGREGATE_DROPOUTS', async () => {
    const { report, before } = await run({
      round: 1,
      manifest: (m) => ({ ...m, dropouts: m.dropouts.map((d) => ({ ...d, stage: 'advertise' })) }),
    });
    expect(findingsOf(before)).toEqual([]);
    expect(findingsOf(report)).toEqual(['AGGREGATE_DROPOUTS @ round 1 · dropouts']);
  }, 120_000);

  it('a tampered masked update: AGGREGATE_UPDATE', async () => {
    let who = '';
    const { report, before } = await run({
      round: 1,
      material: (m) => ({
        ...m,
        masked: m.masked.map((x, i) => {
          if (i !== 0) return x;
          who = x.account;
          const update = x.update.slice();
          update[update.length - 1]! ^= 1;
          return { ...x, update };
        }),
      }),
    });
    expect(findingsOf(report)).toEqual([
      `AGGREGATE_UPDATE @ round 1 · aggregation · masked[0] (${who.slice(0, 8)}…)`,
    ]);
    expect(before.ok).toBe(true);
  }, 120_000);

  it('client-side evaluation: a figure that is not the aggregate of the recorded evaluations is AGGREGATE_MISMATCH, and --eval says so beside it', async () => {
    // In the closing round, the coordinator reports a better held-out accuracy for the final model than the
    // organisations' own sum gives (a lie in the last round: no later manifest's parent link gives it away).
    const { report, before, manifests, objects } = await run(
      {
        round: 2,
        manifest: (m) => ({
          ...m,
          evaluation: { ...m.evaluation!, accuracy: m.evaluation!.accuracy + 0.05 },
        }),
      },
      {},
      20,
    );
    expect(manifests.map((m) => m.kind)).toEqual(['train', 'train', 'evaluation']);
    expect(manifests.every((m) => m.evaluation !== null)).toBe(true);
    // Only the recomputation can tell: the lineage checks alone see a well-formed figure.
    expect(findingsOf(before)).toEqual([]);
    expect(findingsOf(report)).toEqual(['AGGREGATE_MISMATCH @ round 2 · evaluation']);
    // `--eval` (the auditor's data stood in for by the harness's scorer: these models are not tfjs-shaped).
    const evals = await evaluateClaims({
      spec: parseTaskSpec(report.spec),
      rounds: report.rounds,
      objects,
      data: { source: 'synthetic', count: 30, shape: [4], labels: new Uint16Array(30) },
      score: async (weights) => fakeScore(weights, 30),
    });
    const organisations = (round: number) => evals.get(round)!.claims.find((c) => c.by === 'organisations')!;
    // Round 0's model was scored by round 1's cohort: honest. The final model, by the closing round: the lie.
    expect(organisations(0)).toMatchObject({ round: 1, aggregate: true });
    expect(organisations(0).note).toMatch(/re-derived/);
    for (const final of [1, 2]) {
      expect(organisations(final)).toMatchObject({
        round: 2,
        aggregate: false,
        accuracy: manifests[2]!.evaluation!.accuracy,
      });
      expect(organisations(final).note).toMatch(/AGGREGATE_MISMATCH at round 2 · evaluation/);
    }
    const measured = fakeScore(decodeOf(objects, manifests[0]!.model.fid), 30);
    expect(evals.get(0)!.measured).toEqual({
      accuracy: measured.correct / 30,
      loss: measured.lossSum / 30,
      examples: 30,
    });
  }, 120_000);
});

const decodeOf = (objects: ReadonlyMap<string, Uint8Array | Error>, fid: string) =>
  decodeModelBytes(objects.get(fid) as Uint8Array).weights;
