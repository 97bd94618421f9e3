import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import {
  drawCohort,
  droppedThisRound,
  openAttempt,
  type PredrawnCohort,
} from '../../src/coordinator/round.ts';
import type { TaskRow } from '../../src/coordinator/store.ts';
import { accountsReady } from '../../src/shared/account.ts';
import { fromHex } from '../../src/shared/bytes.ts';
import { systemClock } from '../../src/shared/clock.ts';
import { AilinkError } from '../../src/shared/errors.ts';
import {
  cohortDigest,
  graphSeedOf,
  type Phase,
  parseAnnouncement,
  viewsOf,
  type WireAnnouncement,
} from '../../src/task/index.ts';
import {
  baseTask,
  makeAccount,
  makeParticipant,
  makeWorld,
  placeholderSetup,
  startAll,
  type World,
} from './harness.ts';

await accountsReady();

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((c) => c()));
});

/** A world whose task has `labels` joined and online (nobody runs: attempts are written to the store by hand). */
async function joinedWorld(
  labels: string[],
  cohort: { size: number; min: number },
  overrides: Record<string, unknown> = {},
) {
  const world = makeWorld();
  cleanups.push(async () => {
    await world.coordinator.stop();
    world.store.close();
  });
  const accounts = labels.map((l) => makeAccount(l).address);
  const task = await world.coordinator.createTask(baseTask(accounts, { cohort, ...overrides }));
  const now = Date.now();
  for (const [i, account] of accounts.entries())
    world.store.upsertParticipant({
      task: task.id,
      account,
      identityKey: `${i}`.padStart(64, '0'),
      readerKey: '',
      joinSignedAt: now,
      peer: { peerId: labels[i]!, addrs: [] },
      joinedAt: now,
      lastSeen: now,
    });
  return { world, task, accounts };
}

/**
 * Writes an aborted attempt of `round` into the store as the runner leaves one: its cohort, the stages announced,
 * and an answer to each from everyone but `silent`.
 */
function abortedAttempt(world: World, task: TaskRow, round: number, cohort: string[], silent: string[]) {
  const attempt = world.store.attempts(task.id, round).length;
  world.store.addAttempt({
    task: task.id,
    round,
    attempt,
    phase: 'aborted',
    deadline: 0,
    setup: placeholderSetup(cohort),
    startedAt: 0,
    reason: 'after masked input, someone has 1 live neighbours, below the threshold 2',
  });
  for (const stage of ['advertise', 'shares', 'masked'] as const) {
    world.store.addAnnouncement(task.id, round, attempt, stage, { phase: stage });
    for (const account of cohort.filter((a) => !silent.includes(a)))
      world.store.addMessage(task.id, round, attempt, stage, account, {});
  }
}

/** Makes the coordinator's reads of `account`'s stored updates fail, as an update that never arrives whole. */
function refuseUpdatesOf(world: World, account: string) {
  const get = world.objects.get;
  world.objects.get = async (fid: string, readerKey?: string) => {
    const bytes = await get(fid, readerKey);
    if (readerKey === undefined && new TextDecoder().decode(bytes.subarray(0, 4)) === 'AILU') {
      const length = new DataView(bytes.buffer, bytes.byteOffset).getUint32(4, true);
      const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length))) as { from: string };
      if (header.from === account) throw new AilinkError('OBJECT_NOT_FOUND', `${fid} is unreachable`);
    }
    return bytes;
  };
}

const opening = { kind: 'train' as const, startModel: { fid: '00'.repeat(32), hash: '00'.repeat(32) } };
/** A stored announcement as a member reads it (phases without per-member parts read the same for everyone). */
function storedAnnouncement(world: World, task: TaskRow, round: number, attempt: number, phase: Phase) {
  const wire = world.store.announcement(task.id, round, attempt, phase) as WireAnnouncement;
  const reader = task.spec.admitted[0]!;
  return parseAnnouncement(viewsOf(wire)(reader), fromHex(task.spec.coordinator.serverKey), reader);
}

const open = (world: World, task: TaskRow, round: number, predrawn?: PredrawnCohort) =>
  openAttempt(
    {
      store: world.store,
      clock: systemClock,
      random: (n) => new Uint8Array(randomBytes(n)),
      serverKey: world.serverKey,
      ledger: world.ledger,
    },
    task,
    round,
    { ...opening, preprocessing: null },
    60_000,
    undefined,
    0,
    predrawn,
  );

/** A cohort drawn for `round`'s attempt 0 and its seed recorded on chain, as a round's close draws them. */
async function drawnAhead(world: World, task: TaskRow, round: number): Promise<PredrawnCohort> {
  const deps = {
    store: world.store,
    clock: systemClock,
    random: (n: number) => new Uint8Array(randomBytes(n)),
  };
  const cohort = drawCohort(deps, task, round, 60_000);
  await world.ledger.drawSeed(task.id, round, 0, cohortDigest(cohort));
  return { round, attempt: 0, cohort };
}

describe("an attempt's cohort", () => {
  const stops: (() => Promise<void>)[] = [];
  afterEach(async () => {
    await Promise.all(stops.splice(0).map((s) => s()));
  });

  it('leaves out everyone who dropped out of any earlier attempt of the round, not only the last one', async () => {
    const labels = ['a', 'b', 'c', 'd', 'e', 'f'];
    const { world, task, accounts } = await joinedWorld(labels, { size: 4, min: 4 });
    const [a, b, c, d, e, f] = accounts as [string, string, string, string, string, string];
    // Attempt 0: e went silent. Attempt 1 (without e): f went silent.
    abortedAttempt(world, task, 1, [a, b, c, e], [e]);
    abortedAttempt(world, task, 1, [a, b, d, f], [f]);
    const next = await open(world, task, 1);
    expect(next.attempt).toBe(2);
    expect(next.setup.cohort.map((m) => m.account).sort()).toEqual([a, b, c, d].sort());
    // The next round draws from everyone again.
    const seen = new Set<string>();
    for (let round = 2; round < 12; round++)
      for (const m of (await open(world, task, round)).setup.cohort) seen.add(m.account);
    expect(seen).toContain(e);
    expect(seen).toContain(f);
  });

  it('drawn with the last close, opens on the seed the chain recorded for it, with no draw of its own', async () => {
    const { world, task } = await joinedWorld(['p1', 'p2', 'p3', 'p4', 'p5'], { size: 4, min: 4 });
    const ahead = await drawnAhead(world, task, 1);
    const draw = world.ledger.drawSeed;
    world.ledger.drawSeed = () => expect.fail('no seed is drawn for an attempt drawn ahead');
    const next = await open(world, task, 1, ahead);
    world.ledger.drawSeed = draw;
    expect(next.attempt).toBe(0);
    expect(next.setup.cohort).toEqual(ahead.cohort);
    const seed = world.ledger.seedOf(task.id, 1, 0)!;
    expect(next.setup.graphSeed).toBe(graphSeedOf(seed.blockHash, task.id, 1, 0));
  });

  it('drawn ahead but no longer holding (a member gone, another attempt’s number, a cohort the chain did not record): drawn again as the next attempt', async () => {
    const labels = ['q1', 'q2', 'q3', 'q4', 'q5'];
    const { world, task, accounts } = await joinedWorld(labels, { size: 4, min: 4 });
    const ahead = await drawnAhead(world, task, 1);
    const gone = ahead.cohort[0]!.account;
    const stale: [number, () => Promise<PredrawnCohort>][] = [
      // One of the cohort's members is no longer online: attempt 0's seed is taken, so the draw opens attempt 1.
      [
        1,
        async () => {
          world.store.upsertParticipant({ ...world.store.participant(task.id, gone)!, lastSeen: 0 });
          return ahead;
        },
      ],
      // Not the number of the attempt about to open (2).
      [2, async () => ({ ...ahead, attempt: 1 })],
      // The right number (3), but the chain recorded another cohort for it: drawn again as attempt 4.
      [
        4,
        async () => {
          await world.ledger.drawSeed(task.id, 1, 3, cohortDigest(ahead.cohort));
          return { ...ahead, attempt: 3, cohort: ahead.cohort.slice(1) };
        },
      ],
    ];
    for (const [attempt, make] of stale) {
      const next = await open(world, task, 1, await make());
      expect(next.attempt).toBe(attempt);
      expect(world.ledger.seedOf(task.id, 1, attempt)?.cohort).toBe(cohortDigest(next.setup.cohort));
      expect(next.setup.cohort.map((m) => m.account)).not.toContain(gone);
    }
    expect(accounts).toHaveLength(labels.length);
  });

  it('leaves out a member whose update never arrived whole (it answered, yet dropped out): the abort names it', async () => {
    const labels = ['u1', 'u2', 'u3', 'u4', 'u5'];
    const { world, task, accounts } = await joinedWorld(labels, { size: 4, min: 4 });
    const [u1, u2, u3, u4, u5] = accounts as [string, string, string, string, string];
    // Attempt 0: everyone answered every stage, but u4's update could not be fetched; the abort says so.
    abortedAttempt(world, task, 1, [u1, u2, u3, u4], []);
    world.store.addAnnouncement(task.id, 1, 0, 'aborted', {
      phase: 'aborted',
      body: { reason: 'x', dropouts: [u4] },
    });
    const next = await open(world, task, 1);
    expect(next.setup.cohort.map((m) => m.account).sort()).toEqual([u1, u2, u3, u5].sort());
  });

  it('the runner names in its signed abort a member whose update could not be fetched', async () => {
    const world = makeWorld();
    const labels = ['v1', 'v2', 'v3', 'v4'];
    const accounts = labels.map((l) => makeAccount(l).address);
    const task = await world.coordinator.createTask(
      baseTask(accounts, { rounds: 1, maxAttempts: 1, cohort: { size: 4, min: 4 } }),
    );
    refuseUpdatesOf(world, accounts[3]!);
    const members = labels.map((l) => makeParticipant(world, task.id, l));
    world.coordinator.start();
    startAll(world, members, stops);
    await world.coordinator.finished(task.id);
    const aborted = storedAnnouncement(world, task, 0, 0, 'aborted');
    expect(aborted.phase === 'aborted' && aborted.body.dropouts).toEqual([accounts[3]]);
    expect(droppedThisRound(world.store, task, 0)).toEqual(new Map([[accounts[3], 1]]));
  }, 30_000);

  it('takes back only as many of the dropouts as cohort.min needs, when too few others are online', async () => {
    const labels = ['g', 'h', 'i', 'j', 'k'];
    const { world, task, accounts } = await joinedWorld(labels, { size: 4, min: 4 });
    const [g, h, i, j, k] = accounts as [string, string, string, string, string];
    // Every round: j dropped out of attempt 0, k of attempt 1; only g, h, i never did.
    for (let round = 1; round <= 8; round++) {
      abortedAttempt(world, task, round, [g, h, i, j], [j]);
      abortedAttempt(world, task, round, [g, h, i, k], [k]);
      const cohort = (await open(world, task, round)).setup.cohort.map((m) => m.account);
      expect(cohort).toHaveLength(4);
      expect(cohort).toEqual(expect.arrayContaining([g, h, i]));
    }
  });

  it('takes back first the dropouts that dropped out of fewer attempts: one that keeps dropping comes back last', async () => {
    // The federated demo's round with a coordinator restart: five organisations, cohort.min 4. In attempt 0, p1 went
    // silent (it stays broken all round) and p3 missed a stage while the coordinator restarted. Attempt 1 took p1
    // back (a draw between the two), and p1 went silent again. Attempt 2 must take p3: drawing p1 back at random
    // again could abort attempt after attempt until the round ran out of them.
    const labels = ['p0', 'p1', 'p2', 'p3', 'p4'];
    const { world, task, accounts } = await joinedWorld(labels, { size: 5, min: 4 });
    const [p0, p1, p2, p3, p4] = accounts as [string, string, string, string, string];
    for (let round = 1; round <= 12; round++) {
      abortedAttempt(world, task, round, [p0, p1, p2, p3, p4], [p1, p3]);
      abortedAttempt(world, task, round, [p0, p1, p2, p4], [p1]);
      expect(droppedThisRound(world.store, task, round)).toEqual(
        new Map([
          [p1, 2],
          [p3, 1],
        ]),
      );
      const cohort = (await open(world, task, round)).setup.cohort.map((m) => m.account);
      expect(cohort.sort()).toEqual([p0, p2, p3, p4].sort());
    }
  });
});

describe("a task's attempts per round", () => {
  const stops: (() => Promise<void>)[] = [];
  afterEach(async () => {
    await Promise.all(stops.splice(0).map((s) => s()));
  });

  it('a round that used up maxAttempts ends the task: the reason is signed to the organisations (who stop) and recorded on chain', async () => {
    // A cohort of 4 with min 4: an organisation silent in every attempt of round 1 cannot be left out, so every
    // attempt aborts. Before the cap the round never ended.
    const world = makeWorld();
    const labels = ['p1', 'p2', 'p3', 'p4'];
    const accounts = labels.map((l) => makeAccount(l).address);
    const task = await world.coordinator.createTask(
      baseTask(accounts, { rounds: 3, maxAttempts: 2, cohort: { size: 4, min: 4 } }),
    );
    const members = labels.map((l) =>
      makeParticipant(world, task.id, l, l === 'p4' ? { dropAt: { round: 1, stage: 'masked' } } : {}),
    );
    world.coordinator.start();
    const runs = startAll(world, members, stops);
    await world.coordinator.finished(task.id);
    expect(world.store.attempts(task.id, 1).map((a) => a.phase)).toEqual(['aborted', 'aborted']);
    expect(world.ledger.anchored(task.id)).toHaveLength(1);
    const record = world.ledger.tasks.get(task.id)!;
    expect(record.stopped).toBe(true);
    expect(record.stopReason).toMatch(/round 1 ended after 2 attempts \(maxAttempts 2\)/);
    expect(record.stopReason).toMatch(/live neighbours, below the threshold/);
    const last = storedAnnouncement(world, task, 1, 1, 'aborted');
    expect(last.phase === 'aborted' && last.body.final).toBe(true);
    expect(last.phase === 'aborted' && last.body.reason).toMatch(/round 1 ended after 2 attempts/);
    // Every organisation stops with the reason, rather than waiting for rounds that will never come.
    const ended = await Promise.allSettled(runs);
    for (const r of ended) {
      expect(r.status).toBe('rejected');
      expect((r as PromiseRejectedResult).reason).toMatchObject({ code: 'TASK_STOPPED' });
      expect((r as PromiseRejectedResult).reason.message).toMatch(/round 1 ended after 2 attempts/);
    }
  }, 60_000);

  it('a coordinator restarted after the cap was reached ends the task instead of opening another attempt', async () => {
    const labels = ['r1', 'r2', 'r3', 'r4'];
    const { world, task, accounts } = await joinedWorld(labels, { size: 4, min: 4 }, { maxAttempts: 2 });
    // Both attempts of round 0 aborted; the coordinator stopped before it ended the task.
    abortedAttempt(world, task, 0, accounts, [accounts[3]!]);
    abortedAttempt(world, task, 0, accounts, [accounts[3]!]);
    await world.restart();
    await world.coordinator.finished(task.id);
    expect(world.store.attempts(task.id, 0)).toHaveLength(2);
    expect(world.ledger.tasks.get(task.id)!.stopReason).toMatch(/round 0 ended after 2 attempts/);
  }, 30_000);
});

describe('task creation', () => {
  it('refuses SecAgg settings that cannot survive the dropouts cohort.min plans for, before anything is recorded', async () => {
    const world = makeWorld();
    cleanups.push(async () => {
      await world.coordinator.stop();
      world.store.close();
    });
    const accounts = ['c1', 'c2', 'c3', 'c4'].map((l) => makeAccount(l).address);
    await expect(
      world.coordinator.createTask(baseTask(accounts, { cohort: { size: 4, min: 3 } })),
    ).rejects.toMatchObject({
      code: 'TASK_SECAGG_FRAGILE',
      message: expect.stringMatching(/raise cohort\.min to 4/),
    });
    expect(world.ledger.tasks.size).toBe(0);
    expect(world.coordinator.tasks()).toHaveLength(0);
    // The floor it names is accepted.
    await world.coordinator.createTask(baseTask(accounts, { cohort: { size: 4, min: 4 } }));
    expect(world.ledger.tasks.size).toBe(1);
  });
});
