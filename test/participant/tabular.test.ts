import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { parseDelimited, type Table } from '../../src/participant/delimited.ts';
import { loadTable } from '../../src/participant/sources.ts';
import {
  featurize,
  holdoutSplit,
  localStatistics,
  type ValidatedTable,
  validateTable,
} from '../../src/participant/tabular.ts';
import { AilinkError } from '../../src/shared/errors.ts';
import { featureShape, type TabularSchema } from '../../src/task/data-schema.ts';
import {
  CATEGORY_BUCKETS,
  categoryBucket,
  type Preprocessing,
  PreprocessingSchema,
  preprocessingFromSum,
  statisticsLength,
} from '../../src/task/statistics.ts';
import { expectCode } from '../storage/helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'ailink-tabular-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const schema: TabularSchema = {
  kind: 'tabular',
  columns: [
    { name: 'id', type: 'ignore' },
    { name: 'age', type: 'numeric', transform: 'standardize', missing: 'mean' },
    { name: 'weight', type: 'numeric', transform: 'range', range: [0, 200], missing: 'refuse' },
    { name: 'dose', type: 'numeric', transform: 'none', missing: 'mean' },
    { name: 'city', type: 'categorical', categories: null, maxCategories: 2, missing: 'other' },
    { name: 'sex', type: 'categorical', categories: ['F', 'M'], maxCategories: 2, missing: 'refuse' },
    { name: 'outcome', type: 'ignore' },
  ],
  label: { column: 'outcome', classes: ['no', 'yes'] },
  holdout: 0.2,
};

const csv = (lines: string[]) => parseDelimited(`${lines.join('\n')}\n`, { delimiter: ',' });
const good = csv([
  'outcome,id,age,weight,dose,city,sex',
  'yes,1,30,70,1.5,Paris,F',
  'no,2,NA,80,,Lyon,M',
  'no,3,50,250,2.5,,F',
  'yes,4,40,60,?,Paris,M',
]);

/** Sums organisations' statistics word by word, mod 2^32, as the secure sum does. */
const sumWords = (vectors: Uint32Array[], length: number) => {
  const out = new Uint32Array(length);
  for (const v of vectors) for (let i = 0; i < length; i++) out[i] = (out[i]! + v[i]!) >>> 0;
  return out;
};
const thrown = (fn: () => unknown): AilinkError => {
  try {
    fn();
  } catch (err) {
    if (err instanceof AilinkError) return err;
    throw err;
  }
  throw new Error('expected an AilinkError');
};

describe('validateTable', () => {
  it('parses cells by type: numbers (NA, empty, ? missing), categories (empty → null), labels → indices', () => {
    const t = validateTable('p.csv', good, schema);
    expect(t.count).toBe(4);
    expect([...t.numeric.get('age')!]).toEqual([30, Number.NaN, 50, 40]);
    expect([...t.numeric.get('dose')!]).toEqual([1.5, Number.NaN, 2.5, Number.NaN]);
    expect(t.categorical.get('city')).toEqual(['Paris', 'Lyon', null, 'Paris']);
    expect([...t.labels]).toEqual([1, 0, 0, 1]);
    expect(t.numeric.has('id')).toBe(false);
  });

  it('accepts decimal notation only: signs, exponents, surrounding spaces; not hex, Infinity or 2^53', () => {
    const one = (age: string) => csv(['outcome,id,age,weight,dose,city,sex', `yes,1,${age},70,1,Paris,F`]);
    for (const ok of ['-.5', '+3.', '1e3', ' 7 ', '2.5E-3', '9007199254740991'])
      expect(validateTable('p.csv', one(ok), schema).numeric.get('age')![0]).toBe(Number(ok));
    for (const bad of ['0x10', 'Infinity', '1e400', '9007199254740992', '1,5', 'abc', '--1', 'e5'])
      expectCode(() => validateTable('p.csv', one(`"${bad}"`), schema), 'DATA_SCHEMA_MISMATCH');
  });

  it('names file, line (as an editor counts, after multi-line cells) and column', () => {
    const table = csv([
      'outcome,id,age,weight,dose,city,sex',
      'yes,"a',
      'two-line id",30,70,1,Paris,F',
      'no,2,abc,80,1,Lyon,M',
    ]);
    const err = expectCode(() => validateTable('patients.csv', table, schema), 'DATA_SCHEMA_MISMATCH');
    expect(err.message).toBe(
      'patients.csv line 4, column "age": expected a number (decimal, below 2^53 in magnitude), got "abc"',
    );
    expect(err.details).toEqual({
      file: 'patients.csv',
      problems: [
        {
          line: 4,
          column: 'age',
          expected: 'a number (decimal, below 2^53 in magnitude)',
          got: '"abc"',
        },
      ],
    });
  });

  it('collects up to 10 problems: refused missing values, unknown labels, long categories', () => {
    const rows = ['outcome,id,age,weight,dose,city,sex'];
    rows.push(`maybe,1,30,,1,${'x'.repeat(257)},`);
    for (let i = 0; i < 20; i++) rows.push('yes,1,x,70,1,Paris,F');
    const err = expectCode(() => validateTable('p.csv', csv(rows), schema), 'DATA_SCHEMA_MISMATCH');
    const problems = (err.details as { problems: { line: number; column: string }[] }).problems;
    expect(problems.length).toBe(10);
    expect(problems.map((p) => `${p.line}:${p.column}`).slice(0, 6)).toEqual([
      '2:outcome',
      '2:weight',
      '2:city',
      '2:sex',
      '3:age',
      '4:age',
    ]);
    expect(err.message).toMatch(
      /^p\.csv line 2, column "outcome": expected one of "no", "yes", got "maybe"; /,
    );
    expect(err.message).toMatch(/; and more$/);
  });

  it('requires exactly the declared columns, in any order', () => {
    const header = (h: string) => csv([h, h.replace(/[^,]+/g, '1')]);
    const missing = thrown(() => validateTable('p.csv', header('outcome,id,age,weight,dose,city'), schema));
    expect(missing.code).toBe('DATA_SCHEMA_MISMATCH');
    expect(missing.message).toBe(
      'p.csv line 1, column "sex": expected the column (the schema declares it), got a header without it',
    );
    const extra = thrown(() =>
      validateTable('p.csv', header('outcome,id,age,weight,dose,city,sex,ssn'), schema),
    );
    expect(extra.message).toMatch(
      /^p\.csv line 1, column "ssn": expected only the columns the schema declares/,
    );
    const twice = thrown(() =>
      validateTable('p.csv', header('outcome,id,age,weight,dose,city,sex,age'), schema),
    );
    expect(twice.message).toMatch(/column "age": expected each column once/);
    // A hand-made ragged table is refused rather than read past its end.
    const ragged: Table = { header: good.header, rows: [['yes']], lines: [2] };
    expectCode(() => validateTable('p.csv', ragged, schema), 'DATA_SCHEMA_MISMATCH');
  });

  it('checks the schema itself', () => {
    const broken = { ...schema, label: { column: 'nope', classes: ['a', 'b'] } };
    expectCode(() => validateTable('p.csv', good, broken), 'INVALID_INPUT');
  });
});

describe('federated statistics', () => {
  it('layout: 28 words per numeric column that needs its mean, 4096 per federated categorical', () => {
    expect(statisticsLength(schema)).toBe(2 * 28 + CATEGORY_BUCKETS);
    const stats = localStatistics(validateTable('p.csv', good, schema), schema);
    expect(stats.length).toBe(statisticsLength(schema));
    // Every word is a 16-bit limb or a bucket count.
    expect(stats.every((w) => w <= 0xffff)).toBe(true);
    expect(stats[0]).toBe(3); // three ages present
    expect(stats[56 + categoryBucket('city', 'Paris')]).toBe(2);
    expect(stats[56 + categoryBucket('city', 'Lyon')]).toBe(1);
    expect(stats.subarray(56).reduce((a, b) => a + b, 0)).toBe(3);
  });

  it('hashes a value with its column: first 4 bytes of SHA-256(column ‖ 0 ‖ value), big-endian, mod 4096', () => {
    // sha256("city\0Paris") starts 2d b1 79 68: 0x2db17968 mod 4096 = 0x968 = 2408.
    expect(categoryBucket('city', 'Paris')).toBe(2408);
    // UTF-8: sha256("city\0Zürich") starts d7 cb 8a b4.
    expect(categoryBucket('city', 'Zürich')).toBe(0xab4);
    const b = (column: string, value: string) =>
      createHash('sha256')
        .update(Buffer.from(`${column}\0${value}`, 'utf8'))
        .digest()
        .readUInt32BE(0) % 4096;
    fc.assert(
      fc.property(fc.string(), fc.string({ unit: 'binary' }), (column, value) => {
        expect(categoryBucket(column, value)).toBe(b(column, value));
      }),
      { seed: 22, numRuns: 100 },
    );
  });

  it('means and population σ of a small table, σ = 0 → 1, an all-missing column → μ 0, σ 1', () => {
    const t = validateTable('p.csv', good, schema);
    const prep = preprocessingFromSum(localStatistics(t, schema), schema, 1);
    expect(prep.numeric).toEqual([
      { column: 'age', count: 3, mean: 40, std: Math.sqrt(200 / 3) },
      { column: 'dose', count: 2, mean: 2, std: 0.5 },
    ]);
    expect(prep.categorical).toEqual([
      {
        column: 'city',
        buckets: [categoryBucket('city', 'Paris'), categoryBucket('city', 'Lyon')],
      },
    ]);
    const flat = csv(['outcome,id,age,weight,dose,city,sex', 'yes,1,5,1,,a,F', 'no,1,5,1,,a,F']);
    const p2 = preprocessingFromSum(localStatistics(validateTable('f.csv', flat, schema), schema), schema);
    expect(p2.numeric).toEqual([
      { column: 'age', count: 2, mean: 5, std: 1 },
      { column: 'dose', count: 0, mean: 0, std: 1 },
    ]);
  });

  it('vocabulary: the maxCategories buckets with the highest counts, ties by bucket number, never a count of 0', () => {
    const wide: TabularSchema = {
      ...schema,
      columns: schema.columns.map((c) => (c.name === 'city' ? { ...c, maxCategories: 3 } : c)),
    };
    const cities = ['Lyon', 'Nice', 'Paris', 'Oslo'];
    const rows = ['outcome,id,age,weight,dose,city,sex'];
    // Paris ×3, then Lyon, Nice, Oslo once each: the tie among the three is broken by bucket number.
    for (const city of ['Paris', 'Paris', 'Paris', ...cities.filter((c) => c !== 'Paris')])
      rows.push(`yes,1,1,1,1,${city},F`);
    const t = validateTable('p.csv', csv(rows), wide);
    const prep = preprocessingFromSum(localStatistics(t, wide), wide);
    const ties = ['Lyon', 'Nice', 'Oslo'].map((c) => categoryBucket('city', c)).sort((a, b) => a - b);
    expect(prep.categorical[0]!.buckets).toEqual([categoryBucket('city', 'Paris'), ties[0], ties[1]]);
    const few = validateTable('p.csv', csv(rows.slice(0, 2)), wide);
    expect(preprocessingFromSum(localStatistics(few, wide), wide).categorical[0]!.buckets).toEqual([
      categoryBucket('city', 'Paris'),
    ]);
  });

  it('values at ±(2^53 − 1) over 65,536 organisations do not overflow', () => {
    const big: TabularSchema = {
      kind: 'tabular',
      columns: [
        { name: 'x', type: 'numeric', transform: 'standardize', missing: 'refuse' },
        { name: 'y', type: 'ignore' },
      ],
      label: { column: 'y', classes: ['a', 'b'] },
      holdout: 0,
    };
    const m = 2 ** 53 - 1;
    const t = validateTable('b.csv', csv(['x,y', `${m},a`, `-${m},b`, `${m},a`]), big);
    const one = localStatistics(t, big);
    const sum = one.map((w) => (w * 65_536) >>> 0);
    const prep = preprocessingFromSum(sum, big, 65_536);
    const s = prep.numeric[0]!;
    expect(s.count).toBe(3 * 65_536);
    expect(s.mean).toBe(m / 3);
    // Population σ of {m, −m, m}: m·√(8/9).
    expect(Math.abs(s.std - m * Math.sqrt(8 / 9)) / s.std).toBeLessThan(1e-15);
  });

  it('refuses a sum of the wrong length, an impossible word or organisation count, an inconsistent spread', () => {
    const stats = localStatistics(validateTable('p.csv', good, schema), schema);
    expectCode(() => preprocessingFromSum(stats.subarray(1), schema), 'INVALID_INPUT');
    expectCode(() => preprocessingFromSum(stats, schema, 0), 'INVALID_INPUT');
    expectCode(() => preprocessingFromSum(stats, schema, 65_537), 'INVALID_INPUT');
    const over = stats.slice();
    over[5] = 0x10000;
    expectCode(() => preprocessingFromSum(over, schema, 1), 'INVALID_INPUT');
    expect(() => preprocessingFromSum(over, schema, 2)).not.toThrow();
    // Σq² = 0 with Σq ≠ 0 is no real data.
    const spread = stats.slice();
    spread.fill(0, 12, 28);
    expectCode(() => preprocessingFromSum(spread, schema), 'INVALID_INPUT');
  });

  it('property: any split of a table among 2–5 organisations sums to exactly the preprocessing of one holding all', () => {
    const numberCell = fc.oneof(
      { weight: 5, arbitrary: fc.double({ min: -1e6, max: 1e6, noNaN: true }).map(String) },
      { weight: 1, arbitrary: fc.integer({ min: -1e12, max: 1e12 }).map(String) },
      { weight: 1, arbitrary: fc.constantFrom('', 'NA', 'NaN', '?') },
    );
    const row = fc.record({
      age: numberCell,
      dose: numberCell,
      city: fc.constantFrom('', 'a', 'b', 'c', 'd', 'e'),
      org: fc.nat(4),
      label: fc.constantFrom('no', 'yes'),
    });
    fc.assert(
      fc.property(
        fc.array(row, { minLength: 1, maxLength: 40 }),
        fc.integer({ min: 2, max: 5 }),
        (rows, orgs) => {
          const tableOf = (part: typeof rows) =>
            csv([
              'outcome,id,age,weight,dose,city,sex',
              ...part.map((r) => `${r.label},0,${r.age},1,${r.dose},${r.city},F`),
            ]);
          const all = validateTable('all.csv', tableOf(rows), schema);
          const whole = preprocessingFromSum(localStatistics(all, schema), schema, 1);
          const parts = Array.from({ length: orgs }, (_, o) => rows.filter((r) => r.org % orgs === o));
          const local = parts.map((p) => localStatistics(validateTable('o.csv', tableOf(p), schema), schema));
          const federated = preprocessingFromSum(sumWords(local, statisticsLength(schema)), schema, orgs);
          // Bit for bit: the sums are exact integers, whatever the split.
          expect(federated).toEqual(whole);
          // And close to the plain float computation: the mean within 1e-9 of the largest magnitude (or 1), the std
          // likewise of the values rounded to the 2^-32 grid (a spread below the grid is a constant column: σ = 1).
          for (const s of whole.numeric) {
            const xs = [...all.numeric.get(s.column)!].filter((x) => !Number.isNaN(x));
            if (xs.length === 0) continue;
            const scale = Math.max(1, ...xs.map(Math.abs));
            const meanOf = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
            expect(Math.abs(s.mean - meanOf(xs))).toBeLessThanOrEqual(1e-9 * scale);
            const qs = xs.map((x) => Math.round(x * 2 ** 32) / 2 ** 32);
            const qm = meanOf(qs);
            const std = Math.sqrt(meanOf(qs.map((q) => (q - qm) ** 2)));
            expect(Math.abs(s.std - (std > 0 ? std : 1))).toBeLessThanOrEqual(1e-9 * scale);
          }
          expect(PreprocessingSchema.parse(JSON.parse(JSON.stringify(whole)))).toEqual(whole);
        },
      ),
      { seed: 21, numRuns: 150 },
    );
  });
});

describe('featurize', () => {
  const t = validateTable('p.csv', good, schema);
  const prep = preprocessingFromSum(localStatistics(t, schema), schema);

  it('standardizes, scales to the declared range without clipping, fills the mean, one-hots categories', () => {
    const ex = featurize(t, schema, prep);
    // age (1) + weight (1) + dose (1) + city (2 + other) + sex (2 + other)
    expect(ex.shape).toEqual([9]);
    expect(featureShape(schema)).toEqual([9]);
    expect(ex.count).toBe(4);
    expect(ex.x).toBeInstanceOf(Float32Array);
    const sd = Math.sqrt(200 / 3);
    const row = (r: number) => [...ex.x.subarray(r * 9, (r + 1) * 9)];
    const f = Math.fround;
    // city vocabulary: Paris (2), Lyon (1); sex: F, M.
    expect(row(0)).toEqual([f(-10 / sd), f(0.35), f(1.5), 1, 0, 0, 1, 0, 0]);
    expect(row(1)).toEqual([0, f(0.4), 2, 0, 1, 0, 0, 1, 0]);
    expect(row(2)).toEqual([f(10 / sd), 1.25, f(2.5), 0, 0, 1, 1, 0, 0]);
    expect(row(3)).toEqual([0, f(0.3), 2, 1, 0, 0, 0, 1, 0]);
    expect([...ex.y]).toEqual([1, 0, 0, 1]);
  });

  it('an unseen or undeclared value takes the last slot; a missing statistic is refused', () => {
    const other = validateTable(
      'q.csv',
      csv(['outcome,id,age,weight,dose,city,sex', 'no,9,1,1,1,Rome,X']),
      schema,
    );
    const row = [...featurize(other, schema, prep).x];
    expect(row.slice(3)).toEqual([0, 0, 1, 0, 0, 1]);
    const lacking: Preprocessing = { numeric: prep.numeric.slice(1), categorical: prep.categorical };
    expectCode(() => featurize(t, schema, lacking), 'INVALID_INPUT');
    expectCode(() => featurize(t, schema, { ...prep, categorical: [] }), 'INVALID_INPUT');
    const empty: ValidatedTable = { ...t, numeric: new Map() };
    expectCode(() => featurize(empty, schema, prep), 'INVALID_INPUT');
  });

  it('property: count × featureShape values, every one-hot block sums to 1', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: -100, max: 100 }), fc.constantFrom('', 'a', 'b', 'c')), {
          maxLength: 30,
        }),
        fc.integer({ min: 1, max: 4 }),
        (rows, maxCategories) => {
          const s: TabularSchema = {
            ...schema,
            columns: schema.columns.map((c) => (c.name === 'city' ? { ...c, maxCategories } : c)),
          };
          const table = validateTable(
            'p.csv',
            csv([
              'outcome,id,age,weight,dose,city,sex',
              ...rows.map(([n, c]) => `no,1,${n},${n},${n},${c},M`),
            ]),
            s,
          );
          const ex = featurize(table, s, preprocessingFromSum(localStatistics(table, s), s));
          const x = ex.x as Float32Array;
          const width = featureShape(s)[0]!;
          expect(ex.x.length).toBe(rows.length * width);
          for (let r = 0; r < rows.length; r++) {
            const city = x.subarray(r * width + 3, r * width + 4 + maxCategories);
            expect(city.reduce((a, b) => a + b, 0)).toBe(1);
            expect(
              x.subarray(r * width + 4 + maxCategories, (r + 1) * width).reduce((a, b) => a + b, 0),
            ).toBe(1);
          }
        },
      ),
      { seed: 31, numRuns: 100 },
    );
  });
});

describe('holdoutSplit', () => {
  it('property: a deterministic partition with round(count × fraction) held out (≥ 1, never all)', () => {
    fc.assert(
      fc.property(
        fc.nat(300),
        fc.double({ min: 0, max: 0.9, noNaN: true }),
        fc.string(),
        (count, fraction, seed) => {
          const split = holdoutSplit(count, fraction, seed);
          expect(holdoutSplit(count, fraction, seed)).toEqual(split);
          expect([...split.train, ...split.holdout].sort((a, b) => a - b)).toEqual([...Array(count).keys()]);
          let k = Math.round(count * fraction);
          if (fraction > 0 && count >= 2) k = Math.max(k, 1);
          expect(split.holdout.length).toBe(Math.min(k, Math.max(count - 1, 0)));
          expect(split.train).toEqual([...split.train].sort((a, b) => a - b));
        },
      ),
      { seed: 41, numRuns: 300 },
    );
  });

  it('examples', () => {
    expect(holdoutSplit(10, 0.2, 's').holdout.length).toBe(2);
    expect(holdoutSplit(2, 0.01, 's').holdout.length).toBe(1);
    expect(holdoutSplit(5, 0.9, 's')).toMatchObject({ train: [expect.any(Number)] });
    expect(holdoutSplit(1, 0.5, 's')).toEqual({ train: [0], holdout: [] });
    expect(holdoutSplit(100, 0.3, 'a').holdout).not.toEqual(holdoutSplit(100, 0.3, 'b').holdout);
    expectCode(() => holdoutSplit(10, 1, 's'), 'INVALID_INPUT');
    expectCode(() => holdoutSplit(10, -0.1, 's'), 'INVALID_INPUT');
    expectCode(() => holdoutSplit(1.5, 0.1, 's'), 'INVALID_INPUT');
  });
});

describe('loadTable', () => {
  it('reads and validates a CSV or TSV file in one call', async () => {
    writeFileSync(
      join(dir, 'patients.csv'),
      '\uFEFFoutcome,id,age,weight,dose,city,sex\r\nyes,1,30,70,1,Paris,F\r\n',
    );
    writeFileSync(
      join(dir, 'patients.tsv'),
      'outcome\tid\tage\tweight\tdose\tcity\tsex\nno\t1\tx\t70\t1\tParis\tF\n',
    );
    const t = await loadTable(join(dir, 'patients.csv'), schema);
    expect(t).toMatchObject({ count: 1, file: join(dir, 'patients.csv') });
    await expect(loadTable(join(dir, 'patients.tsv'), schema)).rejects.toMatchObject({
      code: 'DATA_SCHEMA_MISMATCH',
      message: `${join(dir, 'patients.tsv')} line 2, column "age": expected a number (decimal, below 2^53 in magnitude), got "x"`,
    });
    await expect(loadTable(join(dir, 'patients.csv'), schema, { maxBytes: 10 })).rejects.toMatchObject({
      code: 'DATA_TOO_LARGE',
    });
  });
});
