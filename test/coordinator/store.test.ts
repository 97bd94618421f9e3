import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type AttemptRow,
  decodeState,
  encodeState,
  openCoordinatorStore,
  type RoundRow,
  stateParts,
} from '../../src/coordinator/store.ts';
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

describe('coordinator store: the strategy state', () => {
  const stateArb = fc.record({
    strategy: fc.constantFrom('fedavg', 'fedadam', 'fedyogi'),
    round: fc.nat(),
    global: fc.float32Array({ maxLength: 200, noNaN: true }),
    buffers: fc.dictionary(
      fc.constantFrom('m', 'v', 'momentum'),
      fc.float64Array({ maxLength: 200, noNaN: true }),
    ),
  });

  it('round-trips any state as a blob of 4 bytes a weight (8 a buffer value) plus a small header', () => {
    fc.assert(
      fc.property(stateArb, (state) => {
        const blob = encodeState(state);
        const values = Object.values(state.buffers).reduce((a, b) => a + b.length, 0);
        expect(blob.byteLength - 4 * state.global.length - 8 * values).toBeLessThan(200);
        expect(decodeState(blob)).toEqual(state);
      }),
    );
  });

  it('splits any state into parts of at most the part size after its header, read back whatever their boundaries', () => {
    fc.assert(
      fc.property(
        stateArb,
        fc.integer({ min: 8, max: 600 }),
        fc.array(fc.nat(), { maxLength: 6 }),
        (state, partBytes, cuts) => {
          const [first, ...rest] = [...stateParts(state, partBytes)];
          for (const part of rest) expect(part.byteLength).toBeLessThanOrEqual(partBytes);
          expect(decodeState(first!, rest)).toEqual(state);
          // The same bytes cut anywhere else: the reader does not depend on where one part ends.
          const whole = encodeState(state);
          const points = [...new Set(cuts.map((c) => c % (whole.byteLength + 1)))].sort((a, b) => a - b);
          const pieces = [0, ...points].map((from, i) =>
            whole.subarray(from, [...points, whole.byteLength][i]),
          );
          expect(decodeState(pieces[0]!, pieces.slice(1))).toEqual(state);
        },
      ),
    );
  });

  it('stores a state larger than one row as rows of the part size, and a later round replaces them', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ailink-store-'));
    dirs.push(dir);
    const path = join(dir, 'coordinator.sqlite');
    // 64-byte rows stand for 64 MiB ones: a FedAdam state of 100 weights is then 33 rows of arrays, as one of 50M
    // weights (≈ 1e9 bytes, SQLite's cap for one blob) is 15 rows of 64 MiB.
    const store = openCoordinatorStore(path, undefined, { statePartBytes: 64 });
    const stateAt = (round: number): Parameters<typeof store.finishRound>[1] => ({
      strategy: 'fedadam',
      round,
      global: Float32Array.from({ length: 100 }, (_, i) => i + round),
      buffers: {
        m: Float64Array.from({ length: 100 }, (_, i) => i / 3 + round),
        v: Float64Array.from({ length: 100 }, (_, i) => -i / 7 - round),
      },
    });
    const row = (round: number) =>
      ({
        task: 't',
        round,
        attempt: 0,
        modelFid: 'f',
        modelHash: 'h',
        manifestFid: 'm',
        manifestDigest: 'd',
        accuracy: null,
        loss: null,
        survivors: 1,
        cohort: 1,
        seconds: 1,
        bytes: 1,
        finishedAt: round,
      }) satisfies RoundRow;
    try {
      store.addAttempt(attempt(0, 0, 'collect'));
      store.finishRound(row(0), stateAt(0));
      store.addAttempt(attempt(1, 0, 'collect'));
      store.finishRound(row(1), stateAt(1));
      expect(store.strategyState('t')).toEqual(stateAt(1));
    } finally {
      store.close();
    }
    const db = new Database(path);
    const sizes = db
      .prepare<[], number>("SELECT length(bytes) FROM strategy_parts WHERE task = 't' ORDER BY part")
      .pluck()
      .all();
    const rows = (bytes: number) => [...Array<number>(Math.floor(bytes / 64)).fill(64), bytes % 64];
    expect(sizes).toEqual([...rows(4 * 100), ...rows(8 * 100), ...rows(8 * 100)]);
    // A row lost: the state is refused, not read short.
    db.prepare("DELETE FROM strategy_parts WHERE task = 't' AND part = 5").run();
    db.close();
    const reopened = openCoordinatorStore(path);
    try {
      expect(() => reopened.strategyState('t')).toThrow(
        /strategy state is broken: \d+ bytes, its header says \d+/,
      );
    } finally {
      reopened.close();
    }
  });

  it('reads a state stored as JSON with base64 arrays (a database from before the blob), and refuses a broken blob', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ailink-store-'));
    dirs.push(dir);
    const path = join(dir, 'coordinator.sqlite');
    openCoordinatorStore(path).close();
    const b64 = (a: Float32Array | Float64Array) => Buffer.from(a.buffer).toString('base64');
    const legacy = JSON.stringify({
      strategy: 'fedadam',
      round: 3,
      global: b64(Float32Array.of(1, -2.5)),
      buffers: { m: b64(Float64Array.of(0.125)) },
    });
    const db = new Database(path);
    db.prepare('INSERT INTO strategy (task, state) VALUES (?, ?)').run('old', legacy);
    db.prepare('INSERT INTO strategy (task, state) VALUES (?, ?)').run(
      'truncated',
      encodeState({ strategy: 'fedavg', round: 0, global: Float32Array.of(1), buffers: {} }).subarray(0, 60),
    );
    db.prepare('INSERT INTO strategy (task, state) VALUES (?, ?)').run(
      'long',
      Buffer.concat([
        encodeState({ strategy: 'fedavg', round: 0, global: Float32Array.of(1), buffers: {} }),
        Buffer.alloc(4),
      ]),
    );
    db.close();
    const store = openCoordinatorStore(path);
    try {
      expect(store.strategyState('old')).toEqual({
        strategy: 'fedadam',
        round: 3,
        global: Float32Array.of(1, -2.5),
        buffers: { m: Float64Array.of(0.125) },
      });
      expect(() => store.strategyState('truncated')).toThrow(
        /strategy state is broken: its header of \d+ bytes runs past its 60 bytes/,
      );
      expect(() => store.strategyState('long')).toThrow(
        /strategy state is broken: \d+ bytes, its header says \d+/,
      );
    } finally {
      store.close();
    }
  });
});
