import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type Admission,
  type AdmissionOutcome,
  createAdmissionQueue,
} from '../../src/coordinator/admissions.ts';
import { AilinkError } from '../../src/shared/errors.ts';
import { baseTask, makeAccount, makeParticipant, makeWorld, startAll } from './harness.ts';

const admission = (i: number, key = 'k'): Admission => ({
  task: 't',
  account: `acct-${i}`,
  identityKey: `${key}-${i}`,
  signature: `sig-${i}`,
});

/** Lets every pending promise callback and the queue's loop run. */
const settleAll = async () => {
  for (let i = 0; i < 50; i++) await Promise.resolve();
};

/**
 * A ledger under test control: each submission waits until the test releases it. Admissions whose account is in
 * `refused` are rejected by the rules (each on its own), and those in `poison` make the whole extrinsic fail, as a
 * call the chain itself refuses sinks a `utility.batchAll`.
 */
function controlledLedger(refused: ReadonlySet<string>, poison: ReadonlySet<string>) {
  const batches: Admission[][] = [];
  const waiting: (() => void)[] = [];
  const recorded = new Map<string, number>();
  const submit = (batch: readonly Admission[]): Promise<readonly AdmissionOutcome[]> => {
    batches.push([...batch]);
    return new Promise((resolve, reject) => {
      waiting.push(() => {
        if (batch.some((a) => poison.has(a.account)))
          return reject(new AilinkError('CHAIN_CALL_FAILED', 'utility.batchAll: a call failed'));
        resolve(
          batch.map((a) => {
            if (refused.has(a.account)) return { admitted: false, reason: `${a.account} is refused` };
            recorded.set(a.account, (recorded.get(a.account) ?? 0) + 1);
            return { admitted: true };
          }),
        );
      });
    });
  };
  return {
    submit,
    batches,
    recorded,
    inFlight: () => waiting.length,
    /** Releases the oldest submission in flight; false when none is. */
    release() {
      const next = waiting.shift();
      next?.();
      return next !== undefined;
    },
  };
}

describe('the admission queue', () => {
  it('sends the first admission at once and the ones arriving meanwhile together, in order', async () => {
    const ledger = controlledLedger(new Set(), new Set());
    const queue = createAdmissionQueue({ submit: ledger.submit, maxBatch: 4 });
    const first = queue.admit(admission(0));
    await settleAll();
    expect(ledger.batches.map((b) => b.length)).toEqual([1]);
    const rest = Array.from({ length: 9 }, (_, i) => queue.admit(admission(i + 1)));
    expect(queue.load()).toEqual({ queued: 9, inFlight: 1, batch: 4 });
    while (ledger.release()) await settleAll();
    await Promise.all([first, ...rest]);
    expect(ledger.batches.map((b) => b.map((a) => a.account))).toEqual([
      ['acct-0'],
      ['acct-1', 'acct-2', 'acct-3', 'acct-4'],
      ['acct-5', 'acct-6', 'acct-7', 'acct-8'],
      ['acct-9'],
    ]);
    expect(queue.load()).toEqual({ queued: 0, inFlight: 0, batch: 4 });
  });

  it('refuses a join beyond the bound with JOIN_QUEUE_FULL and still admits the queued ones', async () => {
    const ledger = controlledLedger(new Set(), new Set());
    const queue = createAdmissionQueue({ submit: ledger.submit, maxBatch: 2, maxQueued: 3 });
    const inFlight = queue.admit(admission(0));
    await settleAll();
    const queued = [1, 2, 3].map((i) => queue.admit(admission(i)));
    await expect(queue.admit(admission(4))).rejects.toMatchObject({
      code: 'JOIN_QUEUE_FULL',
      details: { queued: 3, batch: 2 },
    });
    while (ledger.release()) await settleAll();
    await Promise.all([inFlight, ...queued]);
    expect([...ledger.recorded.keys()].sort()).toEqual(['acct-0', 'acct-1', 'acct-2', 'acct-3']);
    // Room again: the refused one may come back.
    const again = queue.admit(admission(4));
    await settleAll();
    ledger.release();
    await again;
  });

  it('answers a repeated join from the waiting one, and refuses another key for the same account', async () => {
    const ledger = controlledLedger(new Set(), new Set());
    const queue = createAdmissionQueue({ submit: ledger.submit });
    const blocker = queue.admit(admission(9));
    await settleAll();
    const a = queue.admit(admission(1));
    const retry = queue.admit(admission(1));
    await expect(queue.admit(admission(1, 'other'))).rejects.toMatchObject({ code: 'ROUND_NOT_ADMITTED' });
    while (ledger.release()) await settleAll();
    await Promise.all([blocker, a, retry]);
    expect(ledger.recorded.get('acct-1')).toBe(1);
  });

  it('fails every admission of a batch with the chain being down, without splitting it', async () => {
    let calls = 0;
    const queue = createAdmissionQueue({
      submit: async () => {
        calls++;
        throw new AilinkError('CHAIN_UNREACHABLE', 'no chain at ws://127.0.0.1:1');
      },
    });
    const all = Array.from({ length: 5 }, (_, i) =>
      queue.admit(admission(i)).catch((e: AilinkError) => e.code),
    );
    expect(await Promise.all(all)).toEqual(Array(5).fill('CHAIN_UNREACHABLE'));
    // All five came in one tick, so they went out in one submission, and it was not split for an unreachable chain.
    expect(calls).toBe(1);
  });

  it('holds, for any arrivals and bad joins: each admission answered once, good ones recorded once, batches capped', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          n: fc.integer({ min: 1, max: 60 }),
          maxBatch: fc.integer({ min: 1, max: 9 }),
          maxQueued: fc.integer({ min: 1, max: 40 }),
          /** How many arrive before each release of the oldest submission. */
          waves: fc.array(fc.integer({ min: 0, max: 12 }), { minLength: 1, maxLength: 20 }),
          refused: fc.uniqueArray(fc.integer({ min: 0, max: 59 }), { maxLength: 8 }),
          poison: fc.uniqueArray(fc.integer({ min: 0, max: 59 }), { maxLength: 4 }),
        }),
        async ({ n, maxBatch, maxQueued, waves, refused, poison }) => {
          const refusedSet = new Set(refused.map((i) => `acct-${i}`));
          const poisonSet = new Set(poison.map((i) => `acct-${i}`));
          const ledger = controlledLedger(refusedSet, poisonSet);
          const queue = createAdmissionQueue({ submit: ledger.submit, maxBatch, maxQueued });
          const answers = new Map<string, string[]>();
          const answer = (account: string, what: string) => {
            answers.set(account, [...(answers.get(account) ?? []), what]);
          };
          const all: Promise<void>[] = [];
          let next = 0;
          for (let w = 0; next < n || ledger.inFlight() > 0 || queue.load().queued > 0; w++) {
            // Arrivals of this wave (at least one when nothing is in flight, so the run always moves on).
            const count = Math.max(waves[w % waves.length]!, ledger.inFlight() === 0 ? 1 : 0);
            for (let k = 0; k < count && next < n; k++) {
              const a = admission(next++);
              all.push(
                queue.admit(a).then(
                  () => answer(a.account, 'admitted'),
                  (err: AilinkError) => answer(a.account, err.code),
                ),
              );
            }
            await settleAll();
            ledger.release();
            await settleAll();
          }
          await Promise.all(all);
          for (const b of ledger.batches) expect(b.length).toBeLessThanOrEqual(maxBatch);
          for (let i = 0; i < next; i++) {
            const account = `acct-${i}`;
            const got = answers.get(account) ?? [];
            expect(got, account).toHaveLength(1);
            const [what] = got;
            if (what === 'JOIN_QUEUE_FULL') continue;
            if (poisonSet.has(account)) expect(what, account).toBe('CHAIN_CALL_FAILED');
            else if (refusedSet.has(account)) expect(what, account).toBe('CHAIN_CALL_REJECTED');
            else {
              expect(what, account).toBe('admitted');
              expect(ledger.recorded.get(account), account).toBe(1);
            }
          }
          expect(queue.load().queued).toBe(0);
        },
      ),
      { numRuns: 150 },
    );
  });
});

describe('organisations joining a coordinator whose admission queue is full', () => {
  const stops: (() => Promise<void>)[] = [];
  afterEach(async () => {
    await Promise.all(stops.splice(0).map((s) => s()));
  });

  it('are refused with JOIN_QUEUE_FULL, join again after a block or two, and all get in', async () => {
    const world = makeWorld(undefined, { admissions: { maxBatch: 1, maxQueued: 1 } });
    const labels = ['q1', 'q2', 'q3', 'q4', 'q5'];
    const task = await world.coordinator.createTask(
      baseTask(
        labels.map((l) => makeAccount(l).address),
        { rounds: 1 },
      ),
    );
    // Each admission takes a while, as a block does: the joins pile up behind it.
    const admitMany = world.ledger.admitMany;
    world.ledger.admitMany = async (batch) => {
      await new Promise((r) => setTimeout(r, 60));
      return admitMany(batch);
    };
    const refusals: string[] = [];
    const join = world.coordinator.join;
    world.coordinator.join = async (id, request) =>
      join(id, request).catch((err: AilinkError) => {
        refusals.push(err.code);
        throw err;
      });
    world.coordinator.start();
    startAll(
      world,
      labels.map((l) => makeParticipant(world, task.id, l)),
      stops,
    );
    for (let i = 0; world.coordinator.participants(task.id).length < labels.length; i++) {
      if (i > 500) throw new Error(`only ${world.coordinator.participants(task.id).length} joined`);
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(refusals.length).toBeGreaterThan(0);
    expect(new Set(refusals)).toEqual(new Set(['JOIN_QUEUE_FULL']));
    expect(world.ledger.admitBatches.every((n) => n === 1)).toBe(true);
    expect(world.ledger.admitted(task.id)).toHaveLength(labels.length);
  }, 30_000);
});
