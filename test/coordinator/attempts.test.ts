import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { openAttempt } from '../../src/coordinator/round.ts';
import type { TaskRow } from '../../src/coordinator/store.ts';
import { accountsReady } from '../../src/shared/account.ts';
import { systemClock } from '../../src/shared/clock.ts';
import { baseTask, makeAccount, makeWorld, type World } from './harness.ts';

await accountsReady();

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((c) => c()));
});

/** A world whose task has `labels` joined and online (nobody runs: attempts are written to the store by hand). */
async function joinedWorld(labels: string[], cohort: { size: number; min: number }) {
  const world = makeWorld();
  cleanups.push(async () => {
    await world.coordinator.stop();
    world.store.close();
  });
  const accounts = labels.map((l) => makeAccount(l).address);
  const task = await world.coordinator.createTask(baseTask(accounts, { cohort }));
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
    setup: {
      kind: 'train',
      cohort: cohort.map((account) => ({ account, identityKey: '00'.repeat(32) })),
      graphSeed: '00'.repeat(32),
      k: 2,
      t: 2,
      dimension: 1,
      startModel: { fid: '00'.repeat(32), hash: '00'.repeat(32) },
      preprocessing: null,
    },
    startedAt: 0,
    reason: 'after masked input, someone has 1 live neighbours, below the threshold 2',
  });
  for (const stage of ['advertise', 'shares', 'masked'] as const) {
    world.store.addAnnouncement(task.id, round, attempt, stage, { phase: stage });
    for (const account of cohort.filter((a) => !silent.includes(a)))
      world.store.addMessage(task.id, round, attempt, stage, account, {});
  }
}

const opening = { kind: 'train' as const, startModel: { fid: '00'.repeat(32), hash: '00'.repeat(32) } };
const open = (world: World, task: TaskRow, round: number) =>
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
  );

describe("an attempt's cohort", () => {
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
});
