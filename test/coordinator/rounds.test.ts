import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  addInto,
  decodeNoisySum,
  decodeWeightedSum,
  fedAvg,
  type StrategyState,
} from '../../src/aggregation/index.ts';
import { signingKeyPair } from '../../src/aggregation/keys.ts';
import { admissionMessage } from '../../src/chain/index.ts';
import { accountsReady } from '../../src/shared/account.ts';
import { toHex } from '../../src/shared/bytes.ts';
import { hasCode } from '../../src/shared/errors.ts';
import {
  decodeModelBytes,
  encodingOf,
  epsilonAfter,
  joinMessage,
  type Manifest,
  parseAggregationMaterial,
  parseManifest,
  type RoundStage,
  sha256Hex,
  skellamEpsilonAfter,
  storedUpdateMaxBytes,
  type TaskSpec,
} from '../../src/task/index.ts';
import {
  baseTask,
  DIMENSION,
  fakeTrainer,
  initialWeights,
  type Member,
  makeAccount,
  makeParticipant,
  makeWorld,
  manifestsOf,
  startAll,
  TEST_GENESIS,
  type World,
} from './harness.ts';

await accountsReady();

const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(stops.splice(0).map((s) => s()));
});

/** Replays the task in plaintext from the participants' own quantized updates and the manifests' survivor lists. */
async function expectPlaintextFedAvg(world: World, spec: TaskSpec, task: string, members: Member[]) {
  const manifests: Manifest[] = [];
  for (const r of world.ledger.anchored(task))
    manifests.push(parseManifest(await world.objects.get(r.manifest)));
  const strategy = fedAvg();
  let state: StrategyState = strategy.init(await initialWeights(spec.model.initialSeed));
  for (const m of manifests) {
    const sum = new Uint32Array(state.global.length + 1);
    for (const account of m.survivors) {
      const member = members.find((x) => x.account.address === account)!;
      addInto(sum, member.encoded.get(m.round)!);
    }
    state = strategy.aggregate(state, decodeWeightedSum(sum, encodingOf(spec), m.survivors.length)).state;
    const stored = decodeModelBytes(await world.objects.get(m.model.fid)).weights;
    expect(stored).toEqual(state.global);
  }
  return manifests;
}

/**
 * Runs a one-round task of 5 members with `liar`'s stored update handed out by storage with its last byte flipped;
 * checks that the round completed with `liar` its one dropout, for not hashing to its commitment. Its manifest.
 */
async function runWithAlteredUpdate(
  world: ReturnType<typeof makeWorld>,
  task: string,
  members: Parameters<typeof startAll>[1],
  liar: string,
) {
  const get = world.objects.get.bind(world.objects);
  world.objects.get = async (fid: string, readerKey?: string) => {
    const bytes = await get(fid, readerKey);
    if (Buffer.from(bytes.subarray(0, 4)).toString() !== 'AILU' || !Buffer.from(bytes).includes(liar))
      return bytes;
    const altered = Uint8Array.from(bytes);
    altered[altered.length - 1]! ^= 1;
    return altered;
  };
  world.coordinator.start();
  startAll(world, members, stops);
  await world.coordinator.finished(task);
  const m = parseManifest(await world.objects.get(world.ledger.anchored(task)[0]!.manifest));
  expect(m.survivors).toHaveLength(4);
  expect(m.dropouts.map((d) => d.account)).toEqual([liar]);
  expect(world.logs.join('\n')).toMatch(/does not hash to its commitment/);
  return m;
}

describe('rounds (in-memory storage, chain and transport)', () => {
  it('3 rounds with SecAgg, one dropout at a different stage each round: the model is the plaintext FedAvg of the survivors', async () => {
    const world = makeWorld();
    const labels = ['a', 'b', 'c', 'd', 'e'];
    const drops: { round: number; stage: RoundStage }[] = [
      { round: 0, stage: 'shares' },
      { round: 1, stage: 'masked' },
      { round: 2, stage: 'unmask' },
    ];
    const accounts = labels.map((l) => makeParticipant(world, 'x', l).account.address);
    const task = await world.coordinator.createTask(baseTask(accounts));
    const members = labels.map((l, i) =>
      makeParticipant(world, task.id, l, { dropAt: drops[i], examples: 50 + 10 * i }),
    );
    const draws: string[] = [];
    const { drawSeed, recordRound } = world.ledger;
    world.ledger.drawSeed = (id, round, attempt, cohort) => {
      draws.push(`seed ${round}/${attempt}`);
      return drawSeed(id, round, attempt, cohort);
    };
    world.ledger.recordRound = (id, round, manifest, digest, batch, next) => {
      draws.push(`anchor ${round}${next === undefined ? '' : ` + seed ${next.round}/${next.attempt}`}`);
      return recordRound(id, round, manifest, digest, batch, next);
    };
    world.coordinator.start();
    startAll(world, members, stops);
    await world.coordinator.finished(task.id);

    // Each round after the first opens on the seed its predecessor's close drew with its anchor: no block of its own.
    // The organisations check every attempt's seed and cohort against the chain, so a wrong one would fail the round.
    expect(draws).toEqual(['seed 0/0', 'anchor 0 + seed 1/0', 'anchor 1 + seed 2/0', 'anchor 2']);
    const manifests = await expectPlaintextFedAvg(world, task.spec, task.id, members);
    expect(manifests.map((m) => m.round)).toEqual([0, 1, 2]);
    const [m0, m1, m2] = manifests as [Manifest, Manifest, Manifest];
    // Dropped before sending shares or its masked input: not a survivor. Dropped at unmask: its input still counts.
    expect(m0.survivors).not.toContain(members[0]!.account.address);
    expect(m0.dropouts).toEqual([{ account: members[0]!.account.address, stage: 'shares' }]);
    expect(m1.survivors).not.toContain(members[1]!.account.address);
    expect(m1.dropouts.map((d) => d.stage)).toEqual(['masked']);
    expect(m2.survivors).toHaveLength(5);
    expect(m2.parent).toEqual({
      fid: world.ledger.anchored(task.id)[1]!.manifest,
      digest: world.ledger.anchored(task.id)[1]!.digest,
    });
    expect(m0.parent).toBeNull();
    expect(m1.startModel.hash).toBe(m0.model.hash);
    expect(m0.updates).toHaveLength(4);
  }, 60_000);

  it('the coordinator takes each update in as it arrives: no more in flight than its fetch budget, nothing left in its spool, and the material it streams (format 2) holds every survivor’s update', async () => {
    // A budget of two updates: the five fetches of a round queue behind two slots.
    const dir = mkdtempSync(join(tmpdir(), 'ailink-coord-'));
    const world = makeWorld(dir, { fetchBudgetBytes: 2 * storedUpdateMaxBytes(DIMENSION + 1) });
    const labels = ['a', 'b', 'c', 'd', 'e'];
    const accounts = labels.map((l) => makeParticipant(world, 'x', l).account.address);
    const task = await world.coordinator.createTask(baseTask(accounts, { rounds: 1 }));
    const members = labels.map((l) => makeParticipant(world, task.id, l));
    const get = world.objects.get.bind(world.objects);
    let inFlight = 0;
    let most = 0;
    let updates = 0;
    // Every stored update is slow to fetch (60 ms), and counted while it is fetched.
    world.objects.get = async (fid: string, readerKey?: string) => {
      const bytes = await get(fid, readerKey);
      if (Buffer.from(bytes.subarray(0, 4)).toString() !== 'AILU') return bytes;
      updates++;
      inFlight++;
      most = Math.max(most, inFlight);
      await new Promise((r) => setTimeout(r, 60));
      inFlight--;
      return bytes;
    };
    world.coordinator.start();
    startAll(world, members, stops);
    await world.coordinator.finished(task.id);
    const manifests = await expectPlaintextFedAvg(world, task.spec, task.id, members);
    expect(updates).toBe(5);
    expect(most).toBe(2);
    expect(readdirSync(join(dir, 'spool'))).toEqual([]);
    const m = manifests[0]!;
    const material = parseAggregationMaterial(await world.objects.get(m.aggregation!.fid));
    expect(Buffer.from((await world.objects.get(m.aggregation!.fid)).subarray(0, 8)).toString()).toBe(
      'AILKMAT2',
    );
    expect(material.masked.map((e) => e.account)).toEqual([...m.survivors].sort());
    // Each survivor's confirmation without the list it confirms (the replay fixes that list): O(n), not n².
    expect(material.consistency.map((c) => Object.keys(c as object).sort())).toEqual(
      m.survivors.map(() => ['from', 'signature']),
    );
    for (const e of material.masked)
      expect(sha256Hex(e.update)).toBe(m.updates.find((u) => u.account === e.account)!.digest);
  }, 60_000);

  it('an update whose bytes do not hash to its commitment is refused: its sender drops out, the round completes without it, the material leaves it out', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ailink-coord-'));
    const world = makeWorld(dir);
    const labels = ['a', 'b', 'c', 'd', 'e'];
    const accounts = labels.map((l) => makeParticipant(world, 'x', l).account.address);
    const task = await world.coordinator.createTask(baseTask(accounts, { rounds: 1 }));
    const members = labels.map((l) => makeParticipant(world, task.id, l));
    const liar = members[4]!.account.address;
    // The storage hands out e's update with its last word changed (a miner, or e itself after committing).
    const m = await runWithAlteredUpdate(world, task.id, members, liar);
    expect(m.survivors).not.toContain(liar);
    const material = parseAggregationMaterial(await world.objects.get(m.aggregation!.fid));
    expect(material.masked.map((e) => e.account)).toEqual([...m.survivors].sort());
    expect(readdirSync(join(dir, 'spool'))).toEqual([]);
  }, 60_000);

  it('5 organisations drawn 4 at a time, one silent in every attempt of round 1: the next attempt goes on without it, and the task ends', async () => {
    // A cohort of 4 (k = t = 2, so cohort.min is 4): one silent member aborts the attempt. Drawn again, it aborted
    // every attempt and the round never ended; now it sits out the rest of the round.
    const world = makeWorld();
    const labels = ['a', 'b', 'c', 'd', 'e'];
    const accounts = labels.map((l) => makeParticipant(world, 'x', l).account.address);
    const task = await world.coordinator.createTask(
      baseTask(accounts, { rounds: 3, cohort: { size: 4, min: 4 } }),
    );
    const members = labels.map((l) =>
      makeParticipant(world, task.id, l, l === 'd' ? { dropAt: { round: 1, stage: 'masked' } } : {}),
    );
    world.coordinator.start();
    startAll(world, members, stops);
    await world.coordinator.finished(task.id);
    const manifests = await expectPlaintextFedAvg(world, task.spec, task.id, members);
    expect(manifests).toHaveLength(3);
    const d = members[3]!.account.address;
    expect(manifests[1]!.cohort).not.toContain(d);
    // Whether or not d was drawn into attempt 0, round 1 took at most one more attempt.
    const attempts = world.store.attempts(task.id, 1);
    expect(attempts.length).toBeLessThanOrEqual(2);
    if (attempts.length === 2) expect(attempts[0]!.setup.cohort.map((c) => c.account)).toContain(d);
  }, 60_000);

  it("the task's first round waits (up to joinMs) for the whole cohort: an organisation a few seconds late is in it", async () => {
    const world = makeWorld();
    const labels = ['f1', 'f2', 'f3', 'f4', 'f5'];
    const accounts = labels.map((l) => makeParticipant(world, 'x', l).account.address);
    const task = await world.coordinator.createTask(baseTask(accounts, { rounds: 1 }));
    const members = labels.map((l) => makeParticipant(world, task.id, l));
    world.coordinator.start();
    startAll(world, members.slice(0, 4), stops);
    // Four are enough to start (cohort.min 3); the fifth comes 1.5 s later, well within joinMs (5 s).
    await new Promise((r) => setTimeout(r, 1500));
    startAll(world, members.slice(4), stops);
    await world.coordinator.finished(task.id);
    const [m0] = await manifestsOf(world, task.id);
    expect(m0!.cohort).toHaveLength(5);
    expect(m0!.cohort).toContain(members[4]!.account.address);
  }, 60_000);

  it('the owner admits an organisation after creation (it takes part from a later round) and removes another', async () => {
    const world = makeWorld();
    const labels = ['m1', 'm2', 'm3', 'm4', 'late'];
    const accounts = labels.map((l) => makeParticipant(world, 'x', l).account.address);
    // Created for the first four; cohort size 5, so the late one has a seat once it may join.
    const task = await world.coordinator.createTask(
      baseTask(accounts.slice(0, 4), {
        rounds: 3,
        // A floor of 4: SecAgg+ survives one dropout among 5 (k = 4, t = 3), none among 4.
        cohort: { size: 5, min: 4 },
        deadlines: { ...baseTask([]).deadlines, joinMs: 200 },
      }),
    );
    const members = labels.map((l) => makeParticipant(world, task.id, l));
    const late = members[4]!;
    // Before the owner admits it, its join is refused.
    await expect(
      world.coordinator.join(task.id, {
        account: late.account.address,
        identityKey: '00'.repeat(32),
        signature: '00'.repeat(64),
        readerKey: late.account.readerKey,
        signedAt: Date.now(),
        joinSignature: '00'.repeat(64),
        peer: { peerId: 'late', addrs: [] },
      }),
    ).rejects.toMatchObject({ code: 'ROUND_NOT_ADMITTED' });
    const roundDone = (round: number) =>
      new Promise<void>((resolve) => {
        const off = world.coordinator.onEvent((e) => {
          if (e.kind === 'outcome' && e.round === round && e.outcome.kind === 'done') {
            off();
            resolve();
          }
        });
      });
    const first = roundDone(0);
    world.coordinator.start();
    startAll(world, members.slice(0, 4), stops);
    await first;
    // The owner's changes, as the chain records them: the late one in, m1 out.
    const record = world.ledger.tasks.get(task.id)!;
    record.admitted = [...record.admitted.filter((a) => a !== accounts[0]), accounts[4]!];
    startAll(world, [late], stops);
    await world.coordinator.finished(task.id);
    const manifests = await manifestsOf(world, task.id);
    expect(manifests[0]!.cohort).toContain(accounts[0]);
    expect(manifests[0]!.cohort).not.toContain(accounts[4]);
    // Round 1 may have opened before the change; every round opened after it follows it.
    const after = manifests.slice(2);
    for (const m of after) expect(m.cohort).not.toContain(accounts[0]);
    expect(after.some((m) => m.survivors.includes(accounts[4]!))).toBe(true);
  }, 60_000);

  it('an organisation refuses a task whose id another account recorded on chain with a copy of the spec', async () => {
    const world = makeWorld();
    const accounts = ['s1', 's2', 's3'].map((l) => makeParticipant(world, 'x', l).account.address);
    const task = await world.coordinator.createTask(baseTask(accounts));
    // The attack: the squatter's createTask landed first, with the same id and spec digest. Its record (endpoint,
    // admissions, rounds) is the squatter's to change, while the spec names the honest coordinator.
    world.ledger.tasks.get(task.id)!.coordinator = makeAccount('squatter').address;
    const joined = makeParticipant(world, task.id, 's1');
    await expect(joined.participant.run(AbortSignal.timeout(30_000))).rejects.toMatchObject({
      code: 'TASK_UNVERIFIED',
      message: expect.stringMatching(/squatted/),
    });
    expect(world.store.participants(task.id)).toEqual([]);
  });

  it('a task its owner stopped ends without another round and takes no joins', async () => {
    const world = makeWorld();
    const labels = ['s1', 's2', 's3'];
    const accounts = labels.map((l) => makeParticipant(world, 'x', l).account.address);
    const task = await world.coordinator.createTask(baseTask(accounts, { rounds: 50 }));
    const members = labels.map((l) => makeParticipant(world, task.id, l));
    const firstDone = new Promise<void>((resolve) => {
      const off = world.coordinator.onEvent((e) => {
        if (e.kind === 'outcome' && e.outcome.kind === 'done') {
          off();
          resolve();
        }
      });
    });
    world.coordinator.start();
    startAll(world, members, stops);
    await firstDone;
    world.ledger.tasks.get(task.id)!.stopped = true;
    await world.coordinator.finished(task.id);
    expect(world.coordinator.task(task.id)!.status).toBe('finished');
    expect(world.ledger.anchored(task.id).length).toBeLessThan(50);
    await expect(
      world.coordinator.join(task.id, {
        account: accounts[0]!,
        identityKey: '00'.repeat(32),
        signature: '00'.repeat(64),
        readerKey: members[0]!.account.readerKey,
        signedAt: Date.now(),
        joinSignature: '00'.repeat(64),
        peer: { peerId: 's1', addrs: [] },
      }),
    ).rejects.toMatchObject({ code: 'TASK_STOPPED' });
  }, 60_000);

  it('without SecAgg the coordinator sums the quantized updates directly, with the same result rule', async () => {
    const world = makeWorld();
    const labels = ['p', 'q', 'r'];
    const accounts = labels.map((l) => makeParticipant(world, 'x', l).account.address);
    const task = await world.coordinator.createTask(
      baseTask(accounts, {
        rounds: 2,
        secagg: { enabled: false, neighbours: 2, threshold: 2, range: 1, bits: 24, maxWeight: 1000 },
      }),
    );
    const members = labels.map((l) => makeParticipant(world, task.id, l));
    world.coordinator.start();
    startAll(world, members, stops);
    await world.coordinator.finished(task.id);
    const manifests = await expectPlaintextFedAvg(world, task.spec, task.id, members);
    expect(manifests.map((m) => m.secagg.enabled)).toEqual([false, false]);
  }, 60_000);

  it('a robust rule chosen in the spec outvotes a byzantine organisation that FedAvg follows', async () => {
    // One of 5 organisations returns its start model + 1 in every coordinate (the clipping range), the honest ones
    // move by at most 0.01. FedAvg moves the model by ≈ 1/5 per round towards the attacker; the coordinate median
    // stays within the honest moves.
    const plain = { enabled: false, neighbours: 2, threshold: 2, range: 1, bits: 24, maxWeight: 1000 };
    const byzantine = {
      ...fakeTrainer(100),
      async train(job: { weights: Float32Array }) {
        return { weights: job.weights.map((w) => w + 1), loss: 1, examples: 100, seconds: 0 };
      },
    };
    const drift = async (strategy: Record<string, unknown>) => {
      const world = makeWorld();
      const labels = ['v', 'w', 'x', 'y', 'z'];
      const accounts = labels.map((l) => makeParticipant(world, 'x', l).account.address);
      const task = await world.coordinator.createTask(
        baseTask(accounts, { rounds: 2, strategy, secagg: plain, cohort: { size: 5, min: 5 } }),
      );
      const members = labels.map((l) =>
        makeParticipant(world, task.id, l, l === 'z' ? { trainer: byzantine } : {}),
      );
      world.coordinator.start();
      startAll(world, members, stops);
      await world.coordinator.finished(task.id);
      const manifests = await manifestsOf(world, task.id);
      expect(manifests.map((m) => m.strategy)).toEqual([strategy, strategy]);
      expect(manifests[1]!.survivors).toContain(members[4]!.account.address);
      const initial = await initialWeights(task.spec.model.initialSeed);
      const last = decodeModelBytes(await world.objects.get(manifests[1]!.model.fid)).weights;
      return Math.max(...last.map((w, i) => Math.abs(w - initial[i]!)));
    };
    expect(await drift({ name: 'fedavg' })).toBeGreaterThan(0.35);
    expect(await drift({ name: 'coordinate-median' })).toBeLessThan(0.021);
  }, 60_000);

  it('a robust rule is refused with SecAgg, with central DP, without its parameters, or for a cohort it cannot outvote', async () => {
    const world = makeWorld();
    const accounts = ['a', 'b', 'c', 'd', 'e'].map((l) => makeParticipant(world, 'x', l).account.address);
    const plain = { enabled: false, neighbours: 2, threshold: 2, range: 1, bits: 24, maxWeight: 1000 };
    const dp = { noiseMultiplier: 1, clipNorm: 1, delta: 1e-5, epsilonBudget: 100 };
    const refused = async (overrides: Record<string, unknown>, message: RegExp) => {
      const error = await world.coordinator
        .createTask(baseTask(accounts, overrides))
        .catch((e: unknown) => e);
      expect(hasCode(error, 'INVALID_INPUT')).toBe(true);
      expect((error as Error).message).toMatch(message);
    };
    await refused(
      { strategy: { name: 'krum', f: 1 } },
      /secure aggregation hides: set secagg.enabled to false/,
    );
    await refused({ strategy: { name: 'trimmed-mean', beta: 0.2 }, secagg: plain, dp }, /central DP/);
    await refused({ strategy: { name: 'krum' }, secagg: plain }, /needs f/);
    await refused({ strategy: { name: 'multi-krum', f: 1 }, secagg: plain }, /needs m/);
    await refused({ strategy: { name: 'fedavg', f: 1 }, secagg: plain }, /fedavg takes serverLr, got f/);
    await refused(
      { strategy: { name: 'bulyan', f: 1 }, secagg: plain, cohort: { size: 5, min: 5 } },
      /needs at least 7 updates per round, but cohort.min is 5/,
    );
    expect(world.ledger.tasks.size).toBe(0);
    const ok = await world.coordinator.createTask(
      baseTask(accounts, { strategy: { name: 'krum', f: 1 }, secagg: plain, cohort: { size: 5, min: 5 } }),
    );
    expect(ok.spec.strategy).toEqual({ name: 'krum', f: 1 });
  });

  it.each(['shares', 'masked', 'consistency'] as const)(
    'a coordinator restarted during %s finishes the task: no round lost or repeated',
    async (stage) => {
      const world = makeWorld();
      const labels = ['k', 'l', 'm', 'n'];
      const accounts = labels.map((l) => makeParticipant(world, 'x', l).account.address);
      const task = await world.coordinator.createTask(baseTask(accounts, { rounds: 2 }));
      const members = labels.map((l) => makeParticipant(world, task.id, l));
      world.coordinator.start();
      startAll(world, members, stops);
      // Restart once, as soon as round 1 enters the stage (the event comes before its announcement goes out).
      await new Promise<void>((resolve) => {
        const off = world.coordinator.onEvent((e) => {
          if (e.kind === 'phase' && e.round === 1 && e.phase === stage) {
            off();
            resolve(world.restart());
          }
        });
      });
      await world.coordinator.finished(task.id);
      expect(world.ledger.anchored(task.id).map((r) => r.round)).toEqual([0, 1]);
      expect(world.coordinator.rounds(task.id).map((r) => [r.round, r.attempt])).toEqual([
        [0, 0],
        [1, 0],
      ]);
      await expectPlaintextFedAvg(world, task.spec, task.id, members);
    },
    60_000,
  );
});

describe('central differential privacy', () => {
  it('clipped unit-weight updates, Gaussian noise of std z·C on the sum, ε in every manifest, and a task that stops at its budget', async () => {
    const world = makeWorld();
    const labels = ['f', 'g', 'h'];
    const accounts = labels.map((l) => makeParticipant(world, 'x', l).account.address);
    const dp = { noiseMultiplier: 1, clipNorm: 0.1, delta: 1e-5, epsilonBudget: 0 };
    // A budget that two rounds reach exactly: the third of the planned three would overspend it.
    const budget = { ...dp, epsilonBudget: epsilonAfter(dp, 2) };
    const task = await world.coordinator.createTask(baseTask(accounts, { rounds: 3, dp: budget }));
    const members = labels.map((l, i) => makeParticipant(world, task.id, l, { examples: 40 + i }));
    world.coordinator.start();
    startAll(world, members, stops);
    await world.coordinator.finished(task.id);

    const manifests = await manifestsOf(world, task.id);
    expect(manifests.map((m) => m.round)).toEqual([0, 1]);
    expect(world.logs.join('\n')).toMatch(/ends after 2 of 3 rounds: .* over its budget/);
    expect(manifests.map((m) => m.privacy)).toEqual([
      { mechanism: 'gaussian', epsilonSpent: epsilonAfter(dp, 1), delta: 1e-5 },
      { mechanism: 'gaussian', epsilonSpent: epsilonAfter(dp, 2), delta: 1e-5 },
    ]);

    let start = await initialWeights(task.spec.model.initialSeed);
    for (const m of manifests) {
      const sum = new Uint32Array(start.length + 1);
      for (const account of m.survivors) {
        const words = members.find((x) => x.account.address === account)!.encoded.get(m.round)!;
        // Every update weighs 1 and was clipped to C before it was masked; quantization (a grid of range·maxWeight /
        // 2²³ = 1.2e-4 here) moves each coordinate by less than a step.
        expect(words.at(-1)).toBe(1);
        const own = decodeWeightedSum(words, encodingOf(task.spec), 1).sum;
        expect(Math.hypot(...own)).toBeLessThanOrEqual(dp.clipNorm + 1.2e-4 * Math.sqrt(own.length));
        expect(Math.hypot(...own)).toBeGreaterThan(dp.clipNorm * 0.95);
        addInto(sum, words);
      }
      const clipped = decodeWeightedSum(sum, encodingOf(task.spec), m.survivors.length).sum;
      const model = decodeModelBytes(await world.objects.get(m.model.fid)).weights;
      // What remains after the clipped updates' share is the noise over the planned cohort: std z·C / 3.
      const residual = model.map((w, i) => (w - start[i]! - clipped[i]! / 3) * 3);
      const mean = residual.reduce((a, v) => a + v, 0) / residual.length;
      const std = Math.sqrt(residual.reduce((a, v) => a + (v - mean) ** 2, 0) / residual.length);
      // Over 1,000 coordinates the sample std is within ±2.2 % (one σ) of the true one and the mean within ±0.0032:
      // the bounds below are > 5σ, yet far from what a wrong scale would give (no noise; noise on the average: 1/3).
      expect(Math.abs(mean)).toBeLessThan(0.02);
      expect(Math.abs(std / (dp.noiseMultiplier * dp.clipNorm) - 1)).toBeLessThan(0.12);
      start = model;
    }
  }, 60_000);

  it('updates are read straight into the sum, never spooled to disk; one that does not hash to its commitment is refused', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ailink-coord-'));
    const world = makeWorld(dir);
    const labels = ['p', 'q', 'r', 's', 'u'];
    const accounts = labels.map((l) => makeParticipant(world, 'x', l).account.address);
    const dp = { noiseMultiplier: 1, clipNorm: 0.1, delta: 1e-5, epsilonBudget: 0 };
    const task = await world.coordinator.createTask(
      baseTask(accounts, { rounds: 1, dp: { ...dp, epsilonBudget: epsilonAfter(dp, 1) } }),
    );
    const members = labels.map((l) => makeParticipant(world, task.id, l));
    const liar = members[4]!.account.address;
    const m = await runWithAlteredUpdate(world, task.id, members, liar);
    // Central DP without auditors publishes no material: its masked updates, whose sum is the secret the noise
    // hides, never touch the disk (a SecAgg round's spool directory exists: the test above).
    expect(m.aggregation ?? null).toBeNull();
    expect(existsSync(join(dir, 'spool'))).toBe(false);
  }, 60_000);

  it('refuses a task whose budget does not cover one round', async () => {
    const world = makeWorld();
    stops.push(async () => {
      await world.coordinator.stop();
      world.store.close();
    });
    const accounts = ['i', 'j', 'k'].map((l) => makeParticipant(world, 'x', l).account.address);
    const dp = { noiseMultiplier: 0.5, clipNorm: 1, delta: 1e-5, epsilonBudget: 1 };
    await expect(world.coordinator.createTask(baseTask(accounts, { dp }))).rejects.toThrow(
      /dp: one round .* spends ε \d+\.\d+ .* over the budget 1: raise noiseMultiplier or epsilonBudget/,
    );
    expect(world.coordinator.tasks()).toEqual([]);
  });
});

describe('distributed differential privacy (Skellam)', () => {
  it('each organisation noises its update before masking, the coordinator adds none, and the budget is planned at cohort.min survivors', async () => {
    const world = makeWorld();
    const labels = ['f', 'g', 'h', 'i', 'j'];
    const accounts = labels.map((l) => makeParticipant(world, 'x', l).account.address);
    const dp = {
      noiseMultiplier: 1,
      clipNorm: 0.1,
      delta: 1e-5,
      epsilonBudget: 1e6,
      mechanism: 'skellam' as const,
    };
    // What the accountant reads of the spec (dp, secagg, cohort, the model's size), before the task exists.
    const plan = {
      ...baseTask(accounts, { rounds: 3, dp }),
      model: { parameters: DIMENSION },
    } as unknown as TaskSpec;
    expect(plan.cohort).toEqual({ size: 5, min: 4 });
    // Two rounds of all five fit the budget, but the second is planned at four survivors, which does not.
    const budget = (skellamEpsilonAfter(plan, [5, 5]) + skellamEpsilonAfter(plan, [5, 4])) / 2;
    const task = await world.coordinator.createTask(
      baseTask(accounts, { rounds: 3, dp: { ...dp, epsilonBudget: budget } }),
    );
    const members = labels.map((l, i) => makeParticipant(world, task.id, l, { examples: 40 + i }));
    world.coordinator.start();
    startAll(world, members, stops);
    await world.coordinator.finished(task.id);

    const manifests = await manifestsOf(world, task.id);
    expect(manifests.map((m) => m.round)).toEqual([0]);
    expect(world.logs.join('\n')).toMatch(/ends after 1 of 3 rounds: .* over its budget/);
    expect(manifests[0]!.privacy).toEqual({
      mechanism: 'skellam',
      epsilonSpent: skellamEpsilonAfter(task.spec, [5]),
      delta: 1e-5,
    });
    expect(manifests[0]!.aggregation).not.toBeNull();
    const quantization = { range: 1 * 1000, bits: 24 };
    const sum = new Uint32Array(task.spec.model.parameters + 1);
    for (const account of manifests[0]!.survivors) {
      const words = members.find((x) => x.account.address === account)!.encoded.get(0)!;
      expect(words.at(-1)).toBe(1); // the weight word carries no noise
      // Clipped to C = 0.1, yet its own share of noise (std z·C/√5 per coordinate) is in it before masking.
      const own = decodeNoisySum(words.subarray(0, -1), quantization, 1);
      expect(Math.hypot(...own)).toBeGreaterThan(0.5 * 0.1 * Math.sqrt(own.length / 5));
      addInto(sum, words);
    }
    // The model is the start plus the noisy sum over the planned cohort: nothing added after unmasking.
    const start = await initialWeights(task.spec.model.initialSeed);
    const noisy = decodeNoisySum(sum.subarray(0, -1), quantization, 5);
    const model = decodeModelBytes(await world.objects.get(manifests[0]!.model.fid)).weights;
    for (const [i, w] of model.entries()) expect(w).toBeCloseTo(start[i]! + noisy[i]! / 5, 6);
  }, 60_000);
});

describe('a lying coordinator gets no update', () => {
  /** Runs 5 organisations whose every advertise announcement `lie` rewrites; returns what each refused and encoded. */
  async function underLie(
    lie: (body: Record<string, unknown>, accounts: string[]) => Record<string, unknown>,
  ) {
    const world = makeWorld();
    const labels = ['l1', 'l2', 'l3', 'l4', 'l5'];
    const accounts = labels.map((l) => makeParticipant(world, 'x', l).account.address);
    const task = await world.coordinator.createTask(baseTask(accounts, { rounds: 1 }));
    const members = labels.map((l) =>
      makeParticipant(world, task.id, l, {
        tamper: ({ signature: _signature, ...a }) =>
          a.phase === 'advertise' ? { ...a, body: lie(a.body as Record<string, unknown>, accounts) } : a,
      }),
    );
    const refusals = members.map(() => [] as string[]);
    for (const [i, m] of members.entries())
      m.participant.onEvent((e) => {
        if (e.kind === 'refused') refusals[i]!.push(e.reason);
      });
    world.coordinator.start();
    startAll(world, members, stops);
    const until = Date.now() + 20_000;
    while (refusals.some((r) => r.length === 0) && Date.now() < until)
      await new Promise((r) => setTimeout(r, 50));
    return { refusals, encoded: members.map((m) => m.encoded.size) };
  }

  it('SecAgg announced off for a task whose spec has it on: every organisation refuses, none encodes an update', async () => {
    const { refusals, encoded } = await underLie((body) => ({ ...body, secagg: false }));
    for (const r of refusals) expect(r[0]).toMatch(/SecAgg off, the task's spec has it on/);
    expect(encoded).toEqual([0, 0, 0, 0, 0]);
  });

  it('a smaller threshold than the spec gives, or a member under a round key the chain never admitted: refused', async () => {
    const lowT = await underLie((body) => ({ ...body, t: 2 }));
    for (const r of lowT.refusals) expect(r[0]).toMatch(/the spec gives k=4, t=3/);
    expect(lowT.encoded).toEqual([0, 0, 0, 0, 0]);
    // The coordinator puts a key of its own in place of one member's, to read that member's neighbours' shares.
    const surrounded = await underLie((body, accounts) => ({
      ...body,
      cohort: (body.cohort as { account: string; identityKey: string }[]).map((c) =>
        c.account === accounts[0] ? { ...c, identityKey: 'ee'.repeat(32) } : c,
      ),
    }));
    for (const r of surrounded.refusals.slice(1)) expect(r[0]).toMatch(/the chain admitted it with/);
    expect(surrounded.encoded).toEqual([0, 0, 0, 0, 0]);
  });
  it('a graph seed of its own choosing, or a cohort other than the one committed on chain: refused', async () => {
    // The coordinator picks the seed (it could search for one that puts a victim among members it controls).
    const chosen = await underLie((body) => ({ ...body, graphSeed: 'ab'.repeat(32) }));
    for (const r of chosen.refusals) expect(r[0]).toMatch(/the graph seed is not the one the chain drew/);
    expect(chosen.encoded).toEqual([0, 0, 0, 0, 0]);
    // Or it keeps the drawn seed but changes the cohort after seeing it: one member fewer than it committed to
    // (with the k and t the spec gives 4 members, so that only the commitment can tell).
    const swapped = await underLie((body) => ({
      ...body,
      cohort: (body.cohort as unknown[]).slice(1),
      k: 2,
      t: 2,
    }));
    for (const r of swapped.refusals.slice(1))
      expect(r[0]).toMatch(/the cohort differs from the one its coordinator committed to on chain/);
    expect(swapped.encoded).toEqual([0, 0, 0, 0, 0]);
  });

  it('a survivor list shown to one member only: its neighbours’ confirmations do not verify, it reveals nothing', async () => {
    // The unmask stage relays each confirmation without the list it signed: the member checks it on its own list.
    const world = makeWorld();
    const labels = ['e1', 'e2', 'e3', 'e4', 'e5'];
    const accounts = labels.map((l) => makeParticipant(world, 'x', l).account.address);
    const task = await world.coordinator.createTask(baseTask(accounts, { rounds: 1 }));
    const victim = accounts[0]!;
    const members = labels.map((l, i) =>
      makeParticipant(world, task.id, l, {
        tamper: ({ signature: _signature, ...a }) => {
          if (i !== 0) return a;
          if (a.phase === 'consistency') {
            const survivors = (a.body as { survivors: string[] }).survivors;
            // One other survivor left out: the victim still has enough live neighbours to confirm this list.
            const other = survivors.find((s) => s !== victim)!;
            return { ...a, body: { survivors: survivors.filter((s) => s !== other) } };
          }
          if (a.phase === 'unmask') {
            // The victim's own confirmation did not match the others', so it has no entry: relay it every one.
            const all = Object.values(
              (a.body as { signatures: Record<string, { from: string }[]> }).signatures,
            );
            const relayed = [...new Map(all.flat().map((c) => [c.from, c])).values()];
            return { ...a, body: { signatures: { [victim]: relayed } } };
          }
          return a;
        },
      }),
    );
    const refusals: string[] = [];
    members[0]!.participant.onEvent((e) => {
      if (e.kind === 'refused') refusals.push(e.reason);
    });
    world.coordinator.start();
    startAll(world, members, stops);
    const until = Date.now() + 20_000;
    while (refusals.length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    expect(refusals[0]).toMatch(
      /does not verify on the survivor list .* the server equivocates or forged it/,
    );
    const attempt = world.store.attempts(task.id).at(-1)!;
    expect(world.store.message(task.id, 0, attempt.attempt, 'unmask', victim)).toBeUndefined();
  });
});

describe('bad input is refused with a code and changes nothing', () => {
  it('round requests count only from the peer the participant signed into its join; a join with another peer is refused', async () => {
    const world = makeWorld();
    const members = ['u', 'v', 'w'].map((l) => makeParticipant(world, 'x', l));
    const task = await world.coordinator.createTask(baseTask(members.map((m) => m.account.address)));
    stops.push(async () => {
      await world.coordinator.stop();
      world.store.close();
    });
    const u = members[0]!.account;
    const identityKey = toHex(signingKeyPair((n) => new Uint8Array(randomBytes(n))).publicKey);
    const claim = {
      task: task.id,
      account: u.address,
      identityKey,
      readerKey: u.readerKey,
      signedAt: Date.now() - 60_000,
      peerId: 'u-peer',
    };
    const join = {
      account: u.address,
      identityKey,
      signature: toHex(u.sign(admissionMessage(TEST_GENESIS, task.id, identityKey))),
      readerKey: u.readerKey,
      signedAt: claim.signedAt,
      joinSignature: toHex(u.sign(joinMessage(claim))),
      peer: { peerId: 'u-peer', addrs: [] },
    };
    await world.coordinator.join(task.id, join);
    const seen = () => world.store.participant(task.id, u.address)!.lastSeen;
    const before = seen();
    const view = { kind: 'view', task: task.id, from: u.address };

    // The attack: another peer speaks for u (keeping a dead participant "online" for the cohort draws)…
    const spoofed = (await world.coordinator.handle(view, 'mallory-peer')) as { error?: { code: string } };
    expect(spoofed.error?.code).toBe('AUTH_NOT_AUTHORISED');
    expect(seen()).toBe(before);
    // …or replays u's join with its own peer: the peer is signed.
    await expect(
      world.coordinator.join(task.id, { ...join, peer: { peerId: 'mallory-peer', addrs: [] } }),
    ).rejects.toSatisfy((e) => hasCode(e, 'AUTH_BAD_SIGNATURE'));
    expect(world.store.participant(task.id, u.address)!.peer.peerId).toBe('u-peer');

    await new Promise((r) => setTimeout(r, 5));
    expect(((await world.coordinator.handle(view, 'u-peer')) as { ok: boolean }).ok).toBe(true);
    expect(seen()).toBeGreaterThan(before);
  });

  it('unadmitted joins, malformed, forged, replayed and misaddressed round messages', async () => {
    const world = makeWorld();
    const labels = ['u', 'v', 'w'];
    const members = labels.map((l) => makeParticipant(world, 'x', l));
    const task = await world.coordinator.createTask(
      baseTask(
        members.map((m) => m.account.address),
        { rounds: 1 },
      ),
    );
    stops.push(async () => {
      await world.coordinator.stop();
      world.store.close();
    });
    const outsider = makeParticipant(world, task.id, 'outsider');
    await expect(
      world.coordinator.join(task.id, {
        account: outsider.account.address,
        identityKey: 'ab'.repeat(32),
        signature: 'cd'.repeat(64),
        readerKey: 'ef'.repeat(32),
        signedAt: Date.now(),
        joinSignature: 'cd'.repeat(64),
        peer: { peerId: 'x', addrs: [] },
      }),
    ).rejects.toSatisfy((e) => hasCode(e, 'ROUND_NOT_ADMITTED'));
    await expect(
      world.coordinator.join(task.id, {
        account: members[0]!.account.address,
        identityKey: 'ab'.repeat(32),
        signature: 'cd'.repeat(64),
        readerKey: 'ef'.repeat(32),
        signedAt: Date.now(),
        joinSignature: 'cd'.repeat(64),
        peer: { peerId: 'x', addrs: [] },
      }),
    ).rejects.toSatisfy((e) => hasCode(e, 'AUTH_BAD_SIGNATURE'));

    const reply = async (body: unknown) =>
      (await world.coordinator.handle(body, 'outsider')) as { ok: boolean; error?: { code: string } };
    expect((await reply({ kind: 'view' })).error?.code).toBe('ROUND_MESSAGE_INVALID');
    expect((await reply('x'.repeat(10))).error?.code).toBe('ROUND_MESSAGE_INVALID');
    expect((await reply({ kind: 'view', task: task.id, from: outsider.account.address })).error?.code).toBe(
      'ROUND_NOT_ADMITTED',
    );
    expect((await reply({ kind: 'view', task: 'nope', from: outsider.account.address })).error?.code).toBe(
      'TASK_NOT_FOUND',
    );
    expect(world.ledger.admitted(task.id)).toEqual([]);
  });
});
