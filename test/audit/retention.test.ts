/**
 * Issue 17 item 9, retention: a task that keeps a round's updates and recompute material for N anchored rounds. The
 * real coordinator and participants run the task (harness twins for transport and storage; the storage twin lets
 * only an object's owner delete it, as fileBank's rule does) over the real protocol rules (the chain twin); each owner
 * deletes its own expired objects, and the audit reports those rounds as not re-derivable under retention rather
 * than as a finding. Objects gone without the retention allowing it stay findings. The same deletion on the real
 * network, by fileBank.deleteFile with real miners, is test/integration/retention.test.ts.
 */
import { setMaxListeners } from 'node:events';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type AuditReport, auditTask } from '../../src/audit/index.ts';
import { accountsReady } from '../../src/shared/account.ts';
import { AilinkError } from '../../src/shared/errors.ts';
import { type Manifest, parseManifest } from '../../src/task/index.ts';
import { attachChainTwin } from '../coordinator/chain-twin.ts';
import { baseTask, makeAccount, makeParticipant, makeWorld, type World } from '../coordinator/harness.ts';

beforeAll(async () => {
  await accountsReady();
});

const worlds: World[] = [];
afterEach(async () => {
  for (const w of worlds.splice(0)) {
    await w.coordinator.stop();
    w.store.close();
  }
});

const findingsOf = (r: AuditReport) =>
  [...r.findings, ...r.rounds.flatMap((x) => x.findings)].map((f) => `${f.code} @ ${f.where}`);

/**
 * Runs a 3-round task of 5 organisations to its end (every organisation's run returns, after its last sweep), with
 * `before` applied to the world first. `after` runs before the chain twin sees what changed in storage since the
 * last anchor.
 */
async function run(
  overrides: Partial<Record<string, unknown>>,
  hooks: {
    before?(world: World): void;
    /** `rejoin(label)`: that organisation started again (a fresh runtime), run until it stops by itself. */
    after?(world: World, manifests: Manifest[], rejoin: (label: string) => Promise<void>): Promise<void>;
  } = {},
) {
  const world = makeWorld();
  worlds.push(world);
  const twin = attachChainTwin(world);
  hooks.before?.(world);
  const labels = ['a', 'b', 'c', 'd', 'e'];
  const accounts = labels.map((l) => makeAccount(l).address);
  const created = await world.coordinator.createTask(baseTask(accounts, { rounds: 3, ...overrides }));
  const stop = new AbortController();
  setMaxListeners(0, stop.signal);
  const members = labels.map((l, i) =>
    makeParticipant(twin.storingAs(accounts[i]!), created.id, l, { examples: 40 + 7 * i }),
  );
  world.coordinator.start();
  const runs = members.map((m) => m.participant.run(stop.signal));
  await world.coordinator.finished(created.id);
  // Each organisation returns once it saw the last round done and swept after it.
  await Promise.all(runs);
  const manifests = await Promise.all(
    world.ledger.anchored(created.id).map(async (r) => parseManifest(await world.objects.get(r.manifest))),
  );
  const rejoin = async (label: string) => {
    const i = labels.indexOf(label);
    await makeParticipant(twin.storingAs(accounts[i]!), created.id, label, {
      examples: 40 + 7 * i,
    }).participant.run(stop.signal);
  };
  await hooks.after?.(world, manifests, rejoin);
  twin.recordObjects();
  const audit = () =>
    auditTask(
      { state: twin.state, atBlock: twin.atBlock(), fetch: (fid) => world.objects.get(fid) },
      created.id,
    );
  return { world, manifests, accounts, audit, coordinator: world.account.address };
}

describe('retention of round updates and recompute material', () => {
  it('kept 1 round: rounds 0 and 1 are deleted by their owners (the coordinator and one organisation after a restart), round 2 and every model and manifest kept; the audit says retention, no finding', async () => {
    let failing = true;
    const a = makeAccount('a').address;
    const { world, manifests, accounts, audit, coordinator } = await run(
      { retention: { updateRounds: 1 } },
      {
        // The coordinator's deletions fail until it restarts (a chain that did not answer), and so do organisation
        // a's until it is started again: each sweep must catch up.
        before(world) {
          const honest = world.objects.delete;
          world.objects.delete = async (owner, fids) => {
            if ((owner === world.account.address || owner === a) && failing)
              throw new AilinkError('CHAIN_UNREACHABLE', 'the chain did not answer');
            return honest(owner, fids);
          };
        },
        async after(world, anchored, rejoin) {
          expect(world.logs.some((l) => l.includes('could not delete expired recompute material'))).toBe(
            true,
          );
          expect(world.objects.deleted.some((d) => d.by === a)).toBe(false);
          failing = false;
          await rejoin('a');
          expect(world.objects.deleted.filter((d) => d.by === a).length).toBe(2);
          await world.restart();
          const want = (m: Manifest) => m.aggregation!.fid;
          for (let i = 0; i < 100 && !world.objects.deleted.some((d) => d.fid === want(anchored[1]!)); i++)
            await new Promise((r) => setTimeout(r, 50));
        },
      },
    );
    expect(manifests.map((m) => m.round)).toEqual([0, 1, 2]);
    const deleted = new Map(world.objects.deleted.map((d) => [d.fid, d.by]));
    for (const m of manifests) {
      const expired = m.round <= 1;
      // Each update by the organisation that stored it; the material by the coordinator.
      for (const u of m.updates)
        expect([m.round, deleted.get(u.fid)]).toEqual([m.round, expired ? u.account : undefined]);
      expect([m.round, deleted.get(m.aggregation!.fid)]).toEqual([
        m.round,
        expired ? coordinator : undefined,
      ]);
      expect(world.objects.objects.has(m.aggregation!.fid)).toBe(!expired);
      // Lineage stays: the models and the start models they name.
      expect(world.objects.objects.has(m.model.fid)).toBe(true);
    }
    for (const r of world.ledger.anchored(manifests[0]!.task))
      expect(world.objects.objects.has(r.manifest)).toBe(true);
    // Nothing else was deleted, and nobody deleted what another stored.
    expect(world.objects.deleted.length).toBe(
      manifests.filter((m) => m.round <= 1).reduce((n, m) => n + m.updates.length + 1, 0),
    );
    expect(accounts.length).toBe(5);

    const report = await audit();
    expect(findingsOf(report)).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.rounds.map((r) => r.aggregate_recomputed)).toEqual([false, false, true]);
    expect(report.rounds[0]!.aggregateNote).toMatch(/^retention: .*1 anchored round.*round 1 is anchored/);
    expect(report.rounds[1]!.aggregateNote).toMatch(/^retention: .*round 2 is anchored/);
    expect(report.rounds[2]!.aggregateNote).toBeNull();
  }, 180_000);

  it('kept 5 rounds (not yet past): nothing is deleted, and a round whose material and update are gone anyway is a finding', async () => {
    const { world, manifests, audit } = await run(
      { retention: { updateRounds: 5 } },
      {
        // A coordinator and an organisation that delete early, which the task's retention does not allow.
        async after(world, manifests) {
          expect(world.objects.deleted).toEqual([]);
          world.objects.objects.delete(manifests[0]!.aggregation!.fid);
          world.objects.objects.delete(manifests[0]!.updates[0]!.fid);
        },
      },
    );
    expect(world.objects.deleted).toEqual([]);
    const report = await audit();
    expect(report.ok).toBe(false);
    expect(report.rounds.map((r) => r.aggregate_recomputed)).toEqual([false, true, true]);
    const codes = findingsOf(report).map((f) => f.split(' @ ')[0]);
    expect(codes.sort()).toEqual(['AGGREGATE_MATERIAL', 'UPDATE_NOT_ON_CHAIN']);
    expect(report.rounds[0]!.findings.map((f) => f.where)).toContain(
      `round 0 · updates[0] (${manifests[0]!.updates[0]!.account.slice(0, 8)}…)`,
    );
  }, 180_000);

  it('no retention: nothing is deleted, and missing updates stay findings as before', async () => {
    const { world, audit } = await run(
      {},
      {
        async after(world, manifests) {
          world.objects.objects.delete(manifests[0]!.aggregation!.fid);
          for (const u of manifests[0]!.updates) world.objects.objects.delete(u.fid);
        },
      },
    );
    expect(world.objects.deleted).toEqual([]);
    const report = await audit();
    const codes = new Set(findingsOf(report).map((f) => f.split(' @ ')[0]));
    expect([...codes].sort()).toEqual(['AGGREGATE_MATERIAL', 'UPDATE_NOT_ON_CHAIN']);
    expect(report.rounds[0]!.aggregateNote).toBeNull();
  }, 180_000);
});
