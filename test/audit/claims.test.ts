/**
 * Issue 19 §3, accuracy claims checked: `audit verify --eval DATA_SPEC` scores every round's model on the auditor's
 * own data and puts the figures beside the manifests' claims. Real models (the unit task's dense layer, scored by
 * TensorFlow.js on a training-pool worker), real data files (a CSV written here, the shipped Fashion-MNIST subset),
 * read by the loaders participants use; data that does not fit the task's schema is DATA_SCHEMA_MISMATCH naming the
 * round and the field.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AuditReport, auditTask, checkLineage, evaluateClaims } from '../../src/audit/index.ts';
import { describeReport, evaluateReport, modelPackageOf } from '../../src/cli/audit.ts';
import { loadEvalExamples, scoreReport } from '../../src/cli/eval-data.ts';
import { createTrainingPool, type TrainingPool } from '../../src/participant/train-pool.ts';
import { accountsReady } from '../../src/shared/account.ts';
import { AilinkError } from '../../src/shared/errors.ts';
import { decodeModelBytes, type TaskSpec } from '../../src/task/index.ts';
import { UNIT_MODEL_BYTES } from '../coordinator/harness.ts';
import { buildLineage, type LineageFixture } from './fixture.ts';

let pool: TrainingPool;
let f: LineageFixture;
let report: AuditReport;
const dir = mkdtempSync(join(tmpdir(), 'ailink-claims-'));

/** 40 rows of the unit task's schema (4 numeric features, labels no/yes), a quarter of them labelled against the rule. */
const ROWS = Array.from({ length: 40 }, (_, k) => {
  const x = [Math.sin(k), Math.cos(3 * k), ((k % 7) - 3) / 2, (k % 5) / 4 - 0.9];
  const rule = x.reduce((a, b) => a + b, 0) + 1 > 0;
  return { x, label: k % 4 === 0 ? !rule : rule };
});
const csv = (header: string, rows: string[]) => {
  const file = join(dir, `${Math.random().toString(36).slice(2)}.csv`);
  writeFileSync(file, `${header}\n${rows.join('\n')}\n`);
  return file;
};
const GOOD = csv(
  'a,b,c,d,label',
  ROWS.map((r) => `${r.x.join(',')},${r.label ? 'yes' : 'no'}`),
);

/** The unit model by hand: logits = x·K + b (K of [4, 2] row-major, then b), softmax cross-entropy. */
function expected(weights: Float32Array) {
  let correct = 0;
  let lossSum = 0;
  for (const r of ROWS) {
    const logits = [0, 1].map((j) => r.x.reduce((s, v, i) => s + v * weights[i * 2 + j]!, weights[8 + j]!));
    const top = Math.max(...logits);
    const lse = top + Math.log(logits.reduce((s, l) => s + Math.exp(l - top), 0));
    const y = r.label ? 1 : 0;
    if (logits[y]! > logits[1 - y]!) correct++;
    lossSum += lse - logits[y]!;
  }
  return { accuracy: correct / ROWS.length, loss: lossSum / ROWS.length };
}

beforeAll(async () => {
  await accountsReady();
  pool = createTrainingPool({ threads: 1 });
  // 3 rounds of the unit task, its 10-weight dense model as stored, every manifest claiming figures.
  f = buildLineage({ rounds: 3, label: 'claims', model: { name: 'unit', parameters: 10 } });
  report = checkLineage({ task: f.task, state: f.state, atBlock: f.h.block, objects: f.objects });
});

afterAll(async () => {
  await pool.close();
  rmSync(dir, { recursive: true, force: true });
});

const score = (
  data: string,
  r: AuditReport = report,
  objects: ReadonlyMap<string, Uint8Array | Error> = f.objects,
) => scoreReport({ report: r, objects, data, pkg: UNIT_MODEL_BYTES, pool });

const failure = async (p: Promise<unknown>) => {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AilinkError);
  return err as AilinkError;
};

describe('audit verify --eval: every round’s model scored on the auditor’s data, beside the claims', () => {
  it('a CSV file: each round measured (as tfjs scores it), each claim beside it with the difference', async () => {
    expect(report.ok).toBe(true);
    const scored = await score(`csv:${GOOD}`);
    expect(scored.rounds.map((r) => r.round)).toEqual([0, 1, 2]);
    for (const [i, r] of scored.rounds.entries()) {
      const weights = decodeModelBytes(f.objects.get(f.manifests[i]!.model.fid)!).weights;
      const want = expected(weights);
      const e = r.eval!;
      expect(e.data).toBe(`csv:${GOOD}`);
      expect(e.measured!.examples).toBe(40);
      expect(e.measured!.accuracy).toBe(want.accuracy);
      expect(e.measured!.loss).toBeCloseTo(want.loss, 5);
      // The model card's figure: the coordinator's own test set, recorded with the model.
      expect(e.claimed).toMatchObject({
        by: 'coordinator',
        round: i,
        accuracy: f.manifests[i]!.metrics.accuracy,
        aggregate: null,
      });
      expect(e.claimed!.difference!.accuracy).toBeCloseTo(
        want.accuracy - f.manifests[i]!.metrics.accuracy!,
        12,
      );
      // The organisations scored this model on their held-out rows in the round that started from it.
      const next = f.manifests[i + 1];
      expect(e.claims.map((c) => `${c.by}@${c.round}`)).toEqual(
        next ? [`coordinator@${i}`, `organisations@${i + 1}`] : [`coordinator@${i}`],
      );
      if (next) {
        expect(e.claims[1]!.accuracy).toBe(next.evaluation!.accuracy);
        expect(e.claims[1]!.examples).toBe(next.evaluation!.examples);
        // checkLineage alone recomputes nothing: the figure is shown, not vouched for.
        expect(e.claims[1]!.aggregate).toBe(null);
      }
    }
    // --json carries the figures per round; the human report prints them under each round.
    const json = JSON.parse(JSON.stringify(scored));
    expect(Object.keys(json.rounds[0].eval)).toEqual(
      expect.arrayContaining(['claimed', 'measured', 'claims', 'data', 'note']),
    );
    const lines = describeReport(scored);
    expect(lines.filter((l) => l.includes('eval: measured'))).toHaveLength(3);
    expect(lines.join('\n')).toMatch(/coordinator \(round 0\) claims 50\.00 % \([+−]\d+\.\d\d pt\)/);
    // Without --eval nothing changes.
    expect(describeReport(report).some((l) => l.includes('eval:'))).toBe(false);
  }, 60_000);

  it('the CLI’s path: auditTask keeps what it fetched, the spec’s model package is read, every model scored from those bytes', async () => {
    const objects = new Map<string, Uint8Array | Error>();
    const fetch = async (fid: string) => {
      const bytes = f.objects.get(fid);
      if (bytes === undefined) throw new Error(`no object ${fid}`);
      return bytes;
    };
    const audited = await auditTask({ state: f.state, atBlock: f.h.block, fetch }, f.task, { objects });
    for (const m of f.manifests) expect(objects.get(m.model.fid)).toBe(f.objects.get(m.model.fid));
    const pkg = await modelPackageOf(audited, fetch);
    expect(pkg).toBe(UNIT_MODEL_BYTES);
    const scored = await evaluateReport(audited, objects, `csv:${GOOD}`, pkg);
    expect(scored.rounds.map((r) => r.eval?.measured?.examples)).toEqual([40, 40, 40]);
    // The lineage verdict is the audit's own: --eval adds figures, never findings.
    expect(scored.ok).toBe(audited.ok);
    expect(scored.rounds.map((r) => r.findings)).toEqual(audited.rounds.map((r) => r.findings));
  }, 60_000);

  it('a round whose model cannot be read: a note on that round, the others still scored', async () => {
    const objects = new Map<string, Uint8Array | Error>(f.objects);
    objects.set(f.manifests[1]!.model.fid, new Error('OBJECT_UNAVAILABLE: no miner answered'));
    const scored = await score(`csv:${GOOD}`, report, objects);
    expect(scored.rounds[1]!.eval!.measured).toBe(null);
    expect(scored.rounds[1]!.eval!.note).toMatch(/could not be read: OBJECT_UNAVAILABLE/);
    expect(scored.rounds[1]!.eval!.claimed!.difference).toBe(null);
    expect(scored.rounds[0]!.eval!.measured).not.toBe(null);
    expect(scored.rounds[2]!.eval!.measured).not.toBe(null);
  }, 60_000);
});

describe('audit verify --eval: data that does not fit the task’s schema is named by code, round and field', () => {
  it('a CSV without a declared column: DATA_SCHEMA_MISMATCH at round 0 · data.columns (naming the column)', async () => {
    const file = csv(
      'a,b,c,label',
      ROWS.map((r) => `${r.x.slice(0, 3).join(',')},${r.label ? 'yes' : 'no'}`),
    );
    const err = await failure(score(`csv:${file}`));
    expect(err.code).toBe('DATA_SCHEMA_MISMATCH');
    expect(err.message).toMatch(/round 0's model: data\.columns: .*"d"/);
    expect(err.details).toEqual({ round: 0, field: 'data.columns' });
  });

  it('a label the task does not declare: DATA_SCHEMA_MISMATCH (the file, line and column named)', async () => {
    const file = csv('a,b,c,d,label', ['0,0,0,0,yes', '1,1,1,1,maybe']);
    const err = await failure(score(`csv:${file}`));
    expect(err.code).toBe('DATA_SCHEMA_MISMATCH');
    expect(err.message).toMatch(/round 0's model: data\.columns: .*maybe/);
  });

  it('IDX images for a tabular task: DATA_SCHEMA_MISMATCH at round 0 · data.columns', async () => {
    const err = await failure(score('fashion-mnist-small'));
    expect(err.code).toBe('DATA_SCHEMA_MISMATCH');
    expect(err.message).toMatch(/round 0's model: data\.columns: the task takes a table/);
  });

  it('an image folder with a class the task does not declare: DATA_SCHEMA_MISMATCH at round 2 · data', async () => {
    const root = join(dir, 'photos');
    const grey = (v: number) =>
      sharp(Buffer.alloc(4, v), { raw: { width: 2, height: 2, channels: 1 } })
        .png()
        .toBuffer();
    for (const [path, v] of [
      ['cat/0.png', 10],
      ['dog/0.png', 200],
      ['bird/0.png', 90],
    ] as const) {
      mkdirSync(join(root, path, '..'), { recursive: true });
      writeFileSync(join(root, path), await grey(v));
    }
    const schema: TaskSpec['data'] = {
      kind: 'images',
      inputShape: [2, 2, 1],
      classes: ['cat', 'dog'],
      holdout: 0,
    };
    const err = await failure(loadEvalExamples(`images:${root}`, schema, null, 2));
    expect(err.code).toBe('DATA_SCHEMA_MISMATCH');
    expect(err.message).toMatch(/round 2's model: data: .*bird/);
    expect(err.details).toEqual({ round: 2, field: 'data' });
    // With the class declared, the same folder is read as the organisations read theirs: every image, resized.
    const ok = await loadEvalExamples(
      `images:${root}`,
      { ...schema, classes: ['bird', 'cat', 'dog'] },
      null,
      2,
    );
    expect([ok.count, ok.shape]).toEqual([3, [2, 2, 1]]);
  });

  it('images of another shape, or more classes than declared: the core names data.inputShape / data.classes', async () => {
    // The shipped Fashion-MNIST subset (IDX, 28×28 grey, 10 classes) against image tasks it does not fit.
    const images = (inputShape: [number, number, 1 | 3], classes: string[]): TaskSpec['data'] => ({
      kind: 'images',
      inputShape,
      classes,
      holdout: 0,
    });
    const examples = await loadEvalExamples('fashion-mnist-small', images([28, 28, 1], ['a', 'b']), null, 0);
    const run = (data: TaskSpec['data']) =>
      evaluateClaims({
        spec: { ...f.spec, data },
        rounds: report.rounds,
        objects: f.objects,
        data: {
          source: 'fashion-mnist-small',
          count: examples.count,
          shape: examples.shape,
          labels: examples.y,
        },
        score: async () => {
          throw new Error('never scored: the data does not fit');
        },
      });
    const shape = await failure(run(images([32, 32, 3], [...'abcdefghij'])));
    expect(shape.code).toBe('DATA_SCHEMA_MISMATCH');
    expect(shape.message).toBe(
      "--eval fashion-mnist-small cannot score round 0's model: data.inputShape: the task's schema makes examples of [32, 32, 3], the data holds [28, 28, 1]",
    );
    const classes = await failure(run(images([28, 28, 1], ['a', 'b'])));
    expect(classes.code).toBe('DATA_SCHEMA_MISMATCH');
    expect(classes.message).toMatch(
      /round 0's model: data\.classes: example \d+ has label \d+; the task declares 2 classes/,
    );
    expect(classes.details).toEqual({ round: 0, field: 'data.classes' });
  });

  it('features of another width for a tabular task: data.columns', async () => {
    const err = await failure(
      evaluateClaims({
        spec: f.spec,
        rounds: report.rounds.slice(1),
        objects: f.objects,
        data: { source: 'x', count: 2, shape: [3], labels: [0, 1] },
        score: async () => ({ examples: 2, correct: 1, lossSum: 1 }),
      }),
    );
    expect(err.message).toBe(
      "--eval x cannot score round 1's model: data.columns: the task's schema makes examples of [4], the data holds [3]",
    );
  });
});
