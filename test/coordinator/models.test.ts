import { afterEach, describe, expect, it } from 'vitest';
import { accountsReady } from '../../src/shared/account.ts';
import { hasCode } from '../../src/shared/errors.ts';
import type { Manifest } from '../../src/task/index.ts';
import {
  baseTask,
  type Member,
  makeAccount,
  makeParticipant,
  makeWorld,
  manifestsOf,
  type World,
} from './harness.ts';

await accountsReady();

const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(stops.splice(0).map((s) => s()));
});

function run(members: Member[]) {
  const controller = new AbortController();
  const runs = members.map((m) => m.participant.run(controller.signal));
  stops.push(async () => {
    controller.abort();
    await Promise.allSettled(runs);
  });
}

function stopWorldAfter(world: World) {
  stops.push(async () => {
    await world.coordinator.stop();
    world.store.close();
  });
}

const researcher = makeAccount('researcher').address;
const TERMS = { readers: [researcher], price: '1000000' };

describe('private global models (spec `models`)', () => {
  it('each model (and the initial one) is stored for the coordinator and the joined participants, under the spec terms; everyone trains', async () => {
    const world = makeWorld();
    stopWorldAfter(world);
    const labels = ['a', 'b', 'c', 'd'];
    const accounts = labels.map((l) => makeAccount(l));
    const task = await world.coordinator.createTask(
      baseTask(
        accounts.map((a) => a.address),
        { models: TERMS, cohort: { size: 3, min: 3 } },
      ),
    );
    expect(task.spec.models).toEqual(TERMS);
    // Nobody has joined yet: the initial model is not stored before round 0 opens.
    expect(world.coordinator.initialModel(task.id)).toBeUndefined();
    const members = labels.map((l) => makeParticipant(world, task.id, l));
    world.coordinator.start();
    run(members);
    await world.coordinator.finished(task.id);

    const keyOf = new Map(accounts.map((a) => [a.address, a.readerKey]));
    const manifests = await manifestsOf(world, task.id);
    expect(manifests.map((m) => m.round)).toEqual([0, 1, 2]);
    const stored = new Map(world.objects.models.map((m) => [m.fid, m]));
    // initial + one per round, each under the task's terms; and each round's recompute material, sealed and put under
    // the same terms (whoever reads it re-derives the model)
    expect(world.objects.models.filter((m) => m.name.endsWith('.ailm'))).toHaveLength(4);
    expect(world.objects.models).toHaveLength(7);
    for (const m of manifests) expect(stored.get(m.aggregation!.fid)?.name).toMatch(/aggregation\.json$/);
    expect(world.objects.models[0]!.name).toBe(`${task.id}/initial-model.ailm`);
    for (const m of world.objects.models) expect(world.ledger.terms.get(m.fid)).toEqual(TERMS);
    for (const m of manifests) {
      // Everyone in the cohort could read its start model, and trained: no dropouts.
      const start = stored.get(m.startModel.fid);
      expect(start, `round ${m.round} start model`).toBeDefined();
      for (const a of m.cohort) expect(start!.readerKeys).toContain(keyOf.get(a));
      expect(m.dropouts).toEqual([]);
      expect(m.survivors).toHaveLength(3);
      // Its own model is wrapped for (at least) its cohort: the next round's cohort is drawn among those it is for.
      const own = stored.get(m.model.fid)!;
      for (const a of m.cohort) expect(own.readerKeys).toContain(keyOf.get(a));
    }
    expect(manifests[1]!.startModel).toEqual({
      fid: manifests[0]!.model.fid,
      hash: manifests[0]!.model.hash,
    });
    expect(world.coordinator.initialModel(task.id)?.fid).toBe(manifests[0]!.startModel.fid);
    // A participant cannot read a model that is not wrapped for it (the twin refuses like the storage client).
    await expect(world.objects.get(manifests[2]!.model.fid, makeAccount('z').readerKey)).rejects.toSatisfy(
      (e) => hasCode(e, 'ACCESS_DENIED'),
    );
  });

  it('a participant joining after round 0 opened is kept out of it (it cannot read the initial model) and trains from round 1 on', async () => {
    const world = makeWorld();
    stopWorldAfter(world);
    const labels = ['a', 'b', 'c', 'late'];
    const accounts = labels.map((l) => makeAccount(l));
    const task = await world.coordinator.createTask(
      baseTask(
        accounts.map((a) => a.address),
        // Round 0 runs with three of a cohort of four: without SecAgg, since SecAgg+ in a cohort of 4 (k = t = 2)
        // survives no dropout, which task creation refuses for a floor of 3.
        {
          models: TERMS,
          rounds: 2,
          cohort: { size: 4, min: 3 },
          secagg: { ...baseTask([]).secagg, enabled: false },
        },
      ),
    );
    const early = labels.slice(0, 3).map((l) => makeParticipant(world, task.id, l));
    const late = makeParticipant(world, task.id, 'late');
    const opened = new Promise<void>((resolve) => {
      const off = world.coordinator.onEvent((e) => {
        if (e.kind === 'attempt' && e.round === 0) {
          off();
          resolve();
        }
      });
    });
    world.coordinator.start();
    run(early);
    await opened;
    run([late]);
    await world.coordinator.finished(task.id);

    const [m0, m1] = (await manifestsOf(world, task.id)) as [Manifest, Manifest];
    const lateAccount = late.account.address;
    expect(m0.cohort).not.toContain(lateAccount);
    expect(m0.dropouts).toEqual([]);
    const initial = world.objects.models.find((m) => m.fid === m0.startModel.fid)!;
    expect(initial.readerKeys).not.toContain(late.account.readerKey);
    // Round 0's model was stored after it joined: wrapped for it, so round 1's cohort includes it.
    const model0 = world.objects.models.find((m) => m.fid === m0.model.fid)!;
    expect(model0.readerKeys).toContain(late.account.readerKey);
    expect(m1.cohort).toContain(lateAccount);
    expect(m1.survivors).toContain(lateAccount);
    expect(m1.dropouts).toEqual([]);
  });

  it('a public task stores its models public and sets no terms', async () => {
    const world = makeWorld();
    stopWorldAfter(world);
    const labels = ['a', 'b', 'c'];
    const task = await world.coordinator.createTask(
      baseTask(
        labels.map((l) => makeAccount(l).address),
        { rounds: 1 },
      ),
    );
    expect(task.spec.models).toBeUndefined();
    world.coordinator.start();
    run(labels.map((l) => makeParticipant(world, task.id, l)));
    await world.coordinator.finished(task.id);
    expect(world.objects.models).toEqual([]);
    expect(world.ledger.terms.size).toBe(0);
  });

  it('a join without a well-formed reader key is INVALID_INPUT and records nothing', async () => {
    const world = makeWorld();
    stopWorldAfter(world);
    const member = makeAccount('a');
    const task = await world.coordinator.createTask(
      baseTask([member.address, makeAccount('b').address, makeAccount('c').address]),
    );
    const base = {
      account: member.address,
      identityKey: 'ab'.repeat(32),
      signature: 'cd'.repeat(64),
      peer: { peerId: 'x', addrs: [] },
    };
    for (const readerKey of [undefined, '', 'ab'.repeat(31), 'AB'.repeat(32), 'zz'.repeat(32), 42]) {
      await expect(
        world.coordinator.join(task.id, { ...base, readerKey } as never),
        String(readerKey),
      ).rejects.toSatisfy((e) => hasCode(e, 'INVALID_INPUT') && /readerKey/.test((e as Error).message));
    }
    expect(world.coordinator.participants(task.id)).toEqual([]);
  });
});
