import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { type AttemptRow, openCoordinatorStore } from '../../src/coordinator/store.ts';
import type { TaskSpec } from '../../src/task/index.ts';
import { placeholderSetup } from './harness.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const freshStore = () => {
  const dir = mkdtempSync(join(tmpdir(), 'ailink-store-'));
  dirs.push(dir);
  return openCoordinatorStore(join(dir, 'coordinator.sqlite'));
};

const attempt = (round: number, n: number, phase: string): AttemptRow => ({
  task: 't',
  round,
  attempt: n,
  phase,
  deadline: 1000 * round + n,
  setup: placeholderSetup(['a']),
  startedAt: 0,
  reason: null,
});

/** The reads a participant's poll makes (coordinator.ts `viewFor`, `expecting`): the same answers, without parsing. */
describe('coordinator store: the reads behind every poll', () => {
  it('attemptHead is the open attempt, else the latest: what openAttempt ?? attempts().at(-1) gave', () => {
    // Attempts as a task makes them: rounds in order, attempts in order, every one closed but possibly the last.
    const history = fc
      .array(fc.integer({ min: 1, max: 3 }), { minLength: 0, maxLength: 4 })
      .chain((perRound) =>
        fc.tuple(
          fc.constant(perRound),
          fc.array(fc.constantFrom('done', 'aborted'), {
            minLength: perRound.reduce((a, b) => a + b, 0),
            maxLength: perRound.reduce((a, b) => a + b, 0),
          }),
          fc.constantFrom('advertise', 'masked', 'unmask', null),
        ),
      );
    fc.assert(
      fc.property(history, ([perRound, closed, lastOpen]) => {
        const store = freshStore();
        try {
          let i = 0;
          perRound.forEach((count, round) => {
            for (let n = 0; n < count; n++) {
              const last = round === perRound.length - 1 && n === count - 1;
              store.addAttempt(attempt(round, n, last && lastOpen !== null ? lastOpen : closed[i]!));
              i++;
            }
          });
          const before = store.openAttempt('t') ?? store.attempts('t').at(-1);
          const head = store.attemptHead('t');
          expect(head).toEqual(
            before && {
              round: before.round,
              attempt: before.attempt,
              phase: before.phase,
              deadline: before.deadline,
            },
          );
        } finally {
          store.close();
        }
      }),
      { numRuns: 60 },
    );
  });

  it('senders lists who answered a stage, sorted, as messages() does, and nothing of other stages or attempts', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.stringMatching(/^[a-z]{1,8}$/), { maxLength: 12 }),
        fc.uniqueArray(fc.stringMatching(/^[a-z]{1,8}$/), { maxLength: 6 }),
        (answered, elsewhere) => {
          const store = freshStore();
          try {
            for (const s of answered) store.addMessage('t', 0, 1, 'shares', s, { from: s });
            for (const s of elsewhere) {
              store.addMessage('t', 0, 1, 'advertise', s, {});
              store.addMessage('t', 0, 0, 'shares', s, {});
            }
            const senders = store.senders('t', 0, 1, 'shares');
            expect(senders).toEqual(store.messages('t', 0, 1, 'shares').map((m) => m.sender));
            expect(senders).toEqual([...answered].sort());
          } finally {
            store.close();
          }
        },
      ),
      { numRuns: 40 },
    );
  });

  it("parses a task's spec once: every read of the task hands out the same spec", () => {
    const store = freshStore();
    const spec = { name: 'unit', rounds: 2 } as unknown as TaskSpec;
    store.addTask({ id: 't', spec, digest: 'd'.repeat(64), specFid: 'f', createdAt: 0, status: 'running' });
    const first = store.task('t')!;
    expect(first.spec).toEqual(spec);
    expect(store.task('t')!.spec).toBe(first.spec);
    expect(store.tasks()[0]!.spec).toBe(first.spec);
    store.finishTask('t');
    expect(store.task('t')).toMatchObject({ status: 'finished', spec: first.spec });
    store.close();
  });
});
