import { afterEach, describe, expect, it } from 'vitest';
import { addInto } from '../../src/aggregation/index.ts';
import { tableData } from '../../src/participant/local-data.ts';
import type { ValidatedTable } from '../../src/participant/tabular.ts';
import { localStatistics } from '../../src/participant/tabular.ts';
import { accountsReady } from '../../src/shared/account.ts';
import {
  decodeEvaluationSum,
  decodeModelBytes,
  EVALUATION_WORDS,
  encodeEvaluation,
  type Manifest,
  preprocessingFromSum,
  type RoundStage,
  type TabularSchema,
} from '../../src/task/index.ts';
import {
  baseTask,
  fakeLocalData,
  fakeScore,
  makeParticipant,
  makeWorld,
  manifestsOf,
  startAll,
} from './harness.ts';

await accountsReady();

const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(stops.splice(0).map((s) => s()));
});

/**
 * 4 features, as the unit model takes them: two standardised numeric columns (one with missing values that take the
 * mean) and a categorical column whose one-slot vocabulary is federated (+ the 'other' slot).
 */
const SCHEMA: TabularSchema = {
  kind: 'tabular',
  columns: [
    { name: 'age', type: 'numeric', transform: 'standardize', missing: 'mean' },
    { name: 'dose', type: 'numeric', transform: 'standardize', missing: 'refuse' },
    { name: 'site', type: 'categorical', categories: null, maxCategories: 1, missing: 'other' },
    { name: 'label', type: 'ignore' },
  ],
  label: { column: 'label', classes: ['no', 'yes'] },
  holdout: 0.25,
};

/** A participant's table: rows whose values depend on its index, so every organisation's statistics differ. */
function tableOf(p: number, rows: number): ValidatedTable {
  return {
    file: `org-${p}.csv`,
    count: rows,
    lines: Array.from({ length: rows }, (_, i) => i + 2),
    numeric: new Map([
      [
        'age',
        Float64Array.from({ length: rows }, (_, i) => (i % 7 === 3 ? Number.NaN : 20 + p * 11 + i * 1.5)),
      ],
      ['dose', Float64Array.from({ length: rows }, (_, i) => (p + 1) * 0.25 + (i % 5) * 0.1)],
    ]),
    categorical: new Map([
      ['site', Array.from({ length: rows }, (_, i) => (i % 3 === 0 ? 'north' : `s${p}`))],
    ]),
    labels: Uint16Array.from({ length: rows }, (_, i) => (i + p) % 2),
  };
}

describe('federated statistics (a statistics round before round 0)', () => {
  it('the preprocessing is what the survivors’ secure sum says — a dropout’s rows left out — and every round applies it', async () => {
    const world = makeWorld();
    const labels = ['a', 'b', 'c', 'd', 'e'];
    const sizes = [40, 24, 33, 18, 29];
    const accounts = labels.map((l) => makeParticipant(world, 'x', l).account.address);
    const task = await world.coordinator.createTask(
      baseTask(accounts, { rounds: 2, data: { ...SCHEMA, holdout: 0 } }),
    );
    const schema = task.spec.data as TabularSchema;
    const seen = new Map<string, unknown[]>();
    const members = labels.map((l, i) =>
      makeParticipant(world, task.id, l, {
        // 'e' goes silent in the statistics round (round -1), after sharing its keys.
        ...(l === 'e' ? { dropAt: { round: -1, stage: 'masked' as RoundStage } } : {}),
        data: async (spec) => {
          const real = tableData(tableOf(i, sizes[i]!), spec.data as TabularSchema, `${l}/${task.id}`);
          return {
            ...real,
            examples: (prep) => {
              seen.set(l, [...(seen.get(l) ?? []), prep]);
              return real.examples(prep);
            },
          };
        },
      }),
    );
    world.coordinator.start();
    startAll(world, members, stops);
    await world.coordinator.finished(task.id);

    // What the survivors contribute (their training rows: holdout 0 here, so all of them), summed in plaintext.
    const sum = new Uint32Array(members[0]!.encoded.get(-1)!.length);
    for (const i of [0, 1, 2, 3]) addInto(sum, localStatistics(tableOf(i, sizes[i]!), schema));
    const expected = preprocessingFromSum(sum, schema, 4);
    const recorded = world.store.statistics(task.id)!;
    expect(recorded.preprocessing).toEqual(expected);
    expect(recorded.survivors).toBe(4);
    // The stored object is the recorded preprocessing, and every manifest names it.
    expect(JSON.parse(new TextDecoder().decode(await world.objects.get(recorded.fid)))).toEqual(expected);
    const manifests = await manifestsOf(world, task.id);
    expect(manifests.map((m) => m.round)).toEqual([0, 1]);
    for (const m of manifests)
      expect(m.preprocessing).toEqual({ fid: recorded.fid, digest: recorded.digest });
    // Each organisation featurised its rows with exactly that preprocessing (e, back for training, too).
    for (const l of labels)
      expect(seen.get(l)?.every((p) => JSON.stringify(p) === JSON.stringify(expected))).toBe(true);
    // The participants' statistics words went through the secure sum unchanged (what the plaintext sum re-adds).
    expect(members[0]!.encoded.get(-1)).toEqual(localStatistics(tableOf(0, sizes[0]!), schema));
    // The mean of a column is over the survivors' present values only.
    const ages = [0, 1, 2, 3].flatMap((i) =>
      [...tableOf(i, sizes[i]!).numeric.get('age')!].filter((x) => !Number.isNaN(x)),
    );
    expect(expected.numeric[0]!.mean).toBeCloseTo(ages.reduce((a, b) => a + b, 0) / ages.length, 9);
  }, 60_000);

  it('a participant whose data needs statistics refuses a round that names none', async () => {
    const world = makeWorld();
    // Five, so that SecAgg+ (k = 4, t = 3) survives the one who refuses.
    const labels = ['p', 'q', 'r', 's', 't'];
    const accounts = labels.map((l) => makeParticipant(world, 'x', l).account.address);
    // The task needs no statistics, but one organisation's (mis-built) data says it does: it must not train unprepared.
    const task = await world.coordinator.createTask(baseTask(accounts, { rounds: 1 }));
    const refusals: string[] = [];
    const members = labels.map((l) =>
      makeParticipant(world, task.id, l, {
        data: async () => fakeLocalData(l, l === 'p' ? { statistics: new Uint32Array(4) } : {}),
      }),
    );
    members[0]!.participant.onEvent((e) => {
      if (e.kind === 'refused') refusals.push(e.reason);
    });
    world.coordinator.start();
    startAll(world, members, stops);
    await world.coordinator.finished(task.id);
    expect(refusals.some((r) => r.includes('needs federated statistics'))).toBe(true);
    const [m0] = await manifestsOf(world, task.id);
    expect(m0!.survivors).not.toContain(members[0]!.account.address);
  }, 60_000);
});

describe('client-side evaluation (through the secure sum)', () => {
  it('each round records how the survivors’ held-out rows scored its start model; a closing round scores the final model', async () => {
    const world = makeWorld();
    const labels = ['a', 'b', 'c', 'd', 'e'];
    const holdouts = [10, 7, 12, 5, 9];
    const accounts = labels.map((l) => makeParticipant(world, 'x', l).account.address);
    const task = await world.coordinator.createTask(
      baseTask(accounts, { rounds: 2, data: { ...baseTask(accounts).data, holdout: 0.2 } }),
    );
    const members = labels.map((l, i) =>
      makeParticipant(world, task.id, l, {
        data: async () => fakeLocalData(l, { holdout: holdouts[i]! }),
        // 'd' drops out of round 1 before its masked input: its held-out rows do not count there.
        ...(l === 'd' ? { dropAt: { round: 1, stage: 'masked' as RoundStage } } : {}),
      }),
    );
    world.coordinator.start();
    startAll(world, members, stops);
    await world.coordinator.finished(task.id);

    const manifests = await manifestsOf(world, task.id);
    expect(manifests.map((m) => [m.round, m.kind])).toEqual([
      [0, 'train'],
      [1, 'train'],
      [2, 'evaluation'],
    ]);
    for (const m of manifests) {
      const start = decodeModelBytes(await world.objects.get(m.startModel.fid)).weights;
      let examples = 0;
      let correct = 0;
      for (const account of m.survivors) {
        const i = members.findIndex((x) => x.account.address === account);
        const score = fakeScore(start, holdouts[i]!);
        examples += score.examples;
        correct += score.correct;
        // The evaluation words ride at the end of the vector that went through the secure sum.
        expect(members[i]!.encoded.get(m.round)!.length).toBe(
          m.kind === 'evaluation' ? EVALUATION_WORDS : task.spec.model.parameters + 1 + EVALUATION_WORDS,
        );
      }
      expect(m.evaluation).toEqual({ examples, accuracy: correct / examples, loss: 0.5 });
    }
    const [, m1, closing] = manifests as [Manifest, Manifest, Manifest];
    expect(m1.survivors).not.toContain(members[3]!.account.address);
    // The closing round leaves the model as it is, and spends no update.
    expect(closing.model.hash).toBe(closing.startModel.hash);
    expect(closing.startModel).toEqual({ fid: m1.model.fid, hash: m1.model.hash });
    expect(closing.metrics.examples).toBe(0);
    expect(world.store.rounds(task.id).at(-1)).toMatchObject({
      kind: 'evaluation',
      evaluation: closing.evaluation,
    });
  }, 60_000);

  it('evaluation words are 16-bit limbs; a sum no honest set of organisations can make is refused', () => {
    const words = encodeEvaluation({ examples: 70_000, correct: 12, lossSum: 3.5 });
    expect(words.every((w) => w <= 0xffff)).toBe(true);
    expect(decodeEvaluationSum(words, 1)).toEqual({
      examples: 70_000,
      accuracy: 12 / 70_000,
      loss: 3.5 / 70_000,
    });
    const forged = words.slice();
    forged[0] = 0x1_0000;
    expect(() => decodeEvaluationSum(forged, 1)).toThrow(/exceeds what 1 organisations add/);
  });
});
