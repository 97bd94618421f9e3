import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { builtinModel } from '../../models/index.ts';
import {
  DEMO_HOLDOUT,
  inferTabularSchema,
  loadDemoData,
  localBySteps,
  logisticRegression,
} from '../../src/cli/demo-data.ts';
import { parseDelimited } from '../../src/participant/delimited.ts';
import { createTrainingPool } from '../../src/participant/train-pool.ts';
import { featureShape } from '../../src/task/index.ts';

const pool = createTrainingPool({ threads: 1, backend: 'cpu' });
afterAll(() => pool.close());
const dir = mkdtempSync(join(tmpdir(), 'ailink-demo-data-'));

const CSV = [
  'age,city,smoker,visits,outcome',
  '34,Paris,yes,3,2',
  '51,Lyon,no,,10',
  'NA,Paris,,1,2',
  '47,Nice,no,7,10',
  '29,,yes,2,1',
].join('\n');

describe('demo data: a person’s own table', () => {
  it('infers numeric and categorical columns, and orders numeric classes numerically', () => {
    const schema = inferTabularSchema('t.csv', parseDelimited(CSV, { delimiter: ',' }), 'outcome', 0.2);
    expect(schema.columns).toEqual([
      { name: 'age', type: 'numeric', transform: 'standardize', missing: 'mean' },
      { name: 'city', type: 'categorical', categories: null, maxCategories: 3, missing: 'other' },
      { name: 'smoker', type: 'categorical', categories: null, maxCategories: 2, missing: 'other' },
      { name: 'visits', type: 'numeric', transform: 'standardize', missing: 'mean' },
      { name: 'outcome', type: 'ignore' },
    ]);
    // 2 numeric + (3 + 1) + (2 + 1) one-hot slots.
    expect(featureShape(schema)).toEqual([9]);
    expect(schema.label.classes).toEqual(['1', '2', '10']);
  });

  it('refuses a label column that is not there, or holds a single class, naming the columns', () => {
    const table = parseDelimited(CSV, { delimiter: ',' });
    expect(() => inferTabularSchema('t.csv', table, 'result', 0.2)).toThrow(/no column "result".*age, city/);
    const single = parseDelimited('a,b\n1,x\n2,x', { delimiter: ',' });
    expect(() => inferTabularSchema('s.csv', single, 'b', 0.2)).toThrow(/expected 2 to 1,024 classes/);
  });

  it('defaults to logistic regression sized to the data; resizes a weightless model.json’s input, refuses a wrong output', async () => {
    const file = join(dir, 'patients.csv');
    writeFileSync(file, CSV);
    const plain = await loadDemoData(pool, { kind: 'csv', file, label: 'outcome' });
    expect(plain.model.spec).toMatchObject({ inputShape: [9], outputUnits: 3, output: 'probabilities' });
    expect(plain.training.loss).toBe('categorical_crossentropy');

    // A model written for 4 features and 3 classes: its input follows the data, and the demo says so.
    const own = join(dir, 'own');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(own);
    writeFileSync(
      join(own, 'model.json'),
      JSON.stringify({ modelTopology: logisticRegression(4, 3).topology }),
    );
    const resized = await loadDemoData(pool, {
      kind: 'csv',
      file,
      label: 'outcome',
      model: join(own, 'model.json'),
    });
    expect(resized.model.spec.inputShape).toEqual([9]);
    expect(resized.notes.join('\n')).toContain('declared for 4 features; the data gives 9: resized');

    // The built-in MLP answers 10 classes, the table has 3.
    const mlp = join(dir, 'mlp');
    mkdirSync(mlp);
    writeFileSync(
      join(mlp, 'model.json'),
      JSON.stringify({ modelTopology: (await builtinModel('mlp')).topology }),
    );
    await expect(
      loadDemoData(pool, { kind: 'csv', file, label: 'outcome', model: join(mlp, 'model.json') }),
    ).rejects.toMatchObject({ code: 'INVALID_INPUT', message: expect.stringContaining('outputs 10 units') });
  });

  it('sizes local work by steps: every organisation takes about 20 optimizer steps a round, however few its rows (property)', () => {
    // Penguins among 10 organisations (27 training rows each) took 1 step an epoch with batches of 32.
    expect(localBySteps(344, 10)).toEqual({ epochs: 3, batchSize: 4 });
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1_000_000 }), fc.integer({ min: 1, max: 1000 }), (rows, orgs) => {
        const { epochs, batchSize } = localBySteps(rows, orgs);
        const trainRows = Math.max(1, Math.floor((rows * (1 - DEMO_HOLDOUT)) / orgs));
        expect(batchSize).toBeGreaterThanOrEqual(4);
        expect(batchSize).toBeLessThanOrEqual(32);
        expect(epochs).toBeGreaterThanOrEqual(1);
        const steps = epochs * Math.ceil(trainRows / batchSize);
        if (epochs < 20) expect(steps).toBeGreaterThanOrEqual(20);
        if (epochs > 1) expect(steps).toBeLessThan(40 + Math.ceil(trainRows / batchSize));
      }),
    );
  });

  it('splits rows among organisations (IID or Dirichlet), each checked against the task schema with its holdout', async () => {
    const rows = [
      'x,y,label',
      ...Array.from({ length: 200 }, (_, i) => `${i % 17},${(i * 7) % 11},${i % 2 ? 'a' : 'b'}`),
    ];
    const file = join(dir, 'split.csv');
    writeFileSync(file, rows.join('\n'));
    const data = await loadDemoData(pool, { kind: 'csv', file, label: 'label' });
    const spec = { data: data.schema } as never;
    for (const alpha of [null, 0.5]) {
      const orgs = await Promise.all(data.organisations(4, alpha).map((load) => load(spec)));
      expect(orgs.reduce((a, o) => a + o.rows, 0)).toBe(200);
      for (const o of orgs) {
        expect(o.needsStatistics).toBe(true);
        expect(o.statistics().length).toBeGreaterThan(0);
      }
    }
  });
});
