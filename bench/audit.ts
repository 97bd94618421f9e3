/**
 * npm run bench:audit — `ailink audit verify` on a long task: N rounds of 4 organisations, every object declared and
 * placed through the real protocol rules, the chain state in SQLite as the indexer keeps it, for each model size the
 * tasks use: the tables' logistic regression (seattle-weather: its width and classes, as `ailink demo --data` builds
 * it), the MLP and the CNN of models/ (their real weight counts, from the training pool). Every round's model object
 * is a full float32 vector of that size, which the audit hashes and decodes.
 * Times the checks alone (the objects are already fetched: downloads excluded) against a baseline in the same run:
 * hashing every object the audit reads and parsing the manifests, the floor of any verifier that checks content.
 * Sizes in MB = 10^6 bytes.
 * Flags (environment): AUDIT_ROUNDS (1000) for the logistic regression and the MLP; AUDIT_CNN_ROUNDS (200: every
 * round keeps a 6.65 MB model in memory, 1.3 GB at 200); AUDIT_MODELS (comma list of logistic, mlp, cnn; default all).
 * Then, for the MLP and the CNN (issue 19 §6; bench/audit-recompute.ts says what is timed): `audit verify`'s
 * recomputation of one real SecAgg+ round from its recompute material against the coordinator's own aggregation of
 * the same attempt, with no dropout and with one, median of AUDIT_RECOMPUTE_RUNS (downloads excluded on both sides).
 * Aim: ≤ 2×. Flags: AUDIT_RECOMPUTE=0 skips it; AUDIT_RECOMPUTE_ORGS (4: organisations summed, up to 14);
 * AUDIT_RECOMPUTE_RUNS (21: on an idle machine a median of 5 swung from 1.0× to 2.6× for the same case).
 * Then (issue 19 §6; bench/audit-bundle.ts says what is timed): `ailink audit export` and `audit verify --bundle` of a
 * task of AUDIT_BUNDLE_ROUNDS real SecAgg+ rounds of 4 organisations at the size of AUDIT_BUNDLE_MODEL (mlp;
 * logistic, mlp or cnn), every round recomputed on both sides; AUDIT_BUNDLE_ROUNDS=0 skips it. The default is the
 * issue's 100 rounds: about 2 CPU minutes, every phase linear in the rounds since the block hooks look up what fell due
 * through an index (before, they read every untagged column in every block, and the folds grew with the square of the
 * chain's length; README). Wall and CPU seconds are both printed: on a loaded machine the wall times stretch.
 * Prints a table (a second one for the recomputation, a third for the bundle), then one JSON line.
 */
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { builtinModel } from '../models/index.ts';
import { checkLineage } from '../src/audit/index.ts';
import { createSqliteState } from '../src/chain/index.ts';
import { loadDemoData } from '../src/cli/demo-data.ts';
import { createTrainingPool } from '../src/participant/train-pool.ts';
import { accountsReady } from '../src/shared/account.ts';
import { parseManifest } from '../src/task/index.ts';
import { buildLineage } from '../test/audit/fixture.ts';
import { type BundleRow, benchBundle } from './audit-bundle.ts';
import { benchRecompute, type RecomputeRow } from './audit-recompute.ts';

const ROUNDS = Number(process.env.AUDIT_ROUNDS ?? '1000');
const CNN_ROUNDS = Number(process.env.AUDIT_CNN_ROUNDS ?? '200');
const MODELS = (process.env.AUDIT_MODELS ?? 'logistic,mlp,cnn').split(',');
const RECOMPUTE = process.env.AUDIT_RECOMPUTE !== '0';
const RECOMPUTE_ORGS = Number(process.env.AUDIT_RECOMPUTE_ORGS ?? '4');
const RECOMPUTE_RUNS = Number(process.env.AUDIT_RECOMPUTE_RUNS ?? '21');
const BUNDLE_ROUNDS = Number(process.env.AUDIT_BUNDLE_ROUNDS ?? '100');
const BUNDLE_MODEL = process.env.AUDIT_BUNDLE_MODEL ?? 'mlp';
if (!(Number.isInteger(BUNDLE_ROUNDS) && BUNDLE_ROUNDS >= 0))
  throw new Error(
    `AUDIT_BUNDLE_ROUNDS: expected a non-negative integer, got ${process.env.AUDIT_BUNDLE_ROUNDS}`,
  );
if (BUNDLE_ROUNDS > 0 && !MODELS.includes(BUNDLE_MODEL))
  throw new Error(
    `AUDIT_BUNDLE_MODEL: expected one of the models measured (AUDIT_MODELS: ${MODELS.join(', ')}), got ${BUNDLE_MODEL}`,
  );
// The fixture's accounts hold 15 organisations; the dropout case needs one member more than the organisations summed.
if (!(Number.isInteger(RECOMPUTE_ORGS) && RECOMPUTE_ORGS >= 3 && RECOMPUTE_ORGS <= 14))
  throw new Error(
    `AUDIT_RECOMPUTE_ORGS: expected an integer from 3 to 14, got ${process.env.AUDIT_RECOMPUTE_ORGS}`,
  );
if (!(Number.isInteger(RECOMPUTE_RUNS) && RECOMPUTE_RUNS >= 1))
  throw new Error(
    `AUDIT_RECOMPUTE_RUNS: expected a positive integer, got ${process.env.AUDIT_RECOMPUTE_RUNS}`,
  );
const log = (s: string) => process.stderr.write(`${s}\n`);

await accountsReady();

// The real weight counts: the training pool describes each model as a participant would.
const pool = createTrainingPool({ threads: 1 });
const sizes: { model: string; label: string; parameters: number; rounds: number }[] = [];
for (const model of MODELS) {
  if (model === 'logistic') {
    const file = fileURLToPath(new URL('../models/data/tables/seattle-weather.csv', import.meta.url));
    const demo = await loadDemoData(pool, { kind: 'csv', file, label: 'weather' });
    sizes.push({
      model: 'logistic-regression',
      label: 'logistic regression (seattle-weather)',
      parameters: demo.model.spec.parameters,
      rounds: ROUNDS,
    });
  } else if (model === 'mlp' || model === 'cnn') {
    const { spec } = await pool.describe(await builtinModel(model), 'bench-audit');
    sizes.push({
      model,
      label: model.toUpperCase(),
      parameters: spec.parameters,
      rounds: model === 'cnn' ? CNN_ROUNDS : ROUNDS,
    });
  } else throw new Error(`AUDIT_MODELS: expected logistic, mlp or cnn, got ${model}`);
}
await pool.close();

const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const time = (fn: () => void, runs = 5) => {
  fn(); // warm-up
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    fn();
    out.push((performance.now() - t) / 1000);
  }
  return median(out);
};

interface Result {
  model: string;
  label: string;
  parameters: number;
  model_mb: number;
  rounds: number;
  objects_read: number;
  mb_read: number;
  verify_s: number;
  baseline_hash_parse_s: number;
  findings: number;
  build_s: number;
}
const results: Result[] = [];
for (const size of sizes) {
  const db = new Database(':memory:');
  const state = createSqliteState(db);
  const t = performance.now();
  const f = db.transaction(() =>
    buildLineage({
      rounds: size.rounds,
      participants: 4,
      label: `bench-${size.model}`,
      state,
      model: { name: size.model, parameters: size.parameters },
    }),
  )();
  const buildS = (performance.now() - t) / 1000;
  const read = [
    ...f.anchors.map((a) => a.fid),
    ...f.manifests.map((m) => m.model.fid),
    f.manifests[0]!.specFid,
  ];
  const bytesRead = read.reduce((a, fid) => a + f.objects.get(fid)!.byteLength, 0);
  log(
    `${size.label}: ${size.parameters} parameters, built ${size.rounds} rounds (${f.objects.size} objects on chain, ${(bytesRead / 1e6).toFixed(1)} MB to read) in ${buildS.toFixed(1)} s`,
  );
  let ok = false;
  let findings = -1;
  const verifyS = time(() => {
    const r = checkLineage({ task: f.task, state, atBlock: f.h.block, objects: f.objects });
    ok = r.ok;
    findings = r.findings.length + r.rounds.reduce((n, x) => n + x.findings.length, 0);
  });
  const baselineS = time(() => {
    for (const fid of read) createHash('sha256').update(f.objects.get(fid)!).digest();
    for (const a of f.anchors) parseManifest(f.objects.get(a.fid)!);
  });
  if (!ok)
    throw new Error(
      `the generated ${size.model} task did not verify (${findings} findings): the benchmark measures nothing`,
    );
  results.push({
    model: size.model,
    label: size.label,
    parameters: size.parameters,
    model_mb: Number(((4 * size.parameters) / 1e6).toFixed(3)),
    rounds: size.rounds,
    objects_read: read.length,
    mb_read: Number((bytesRead / 1e6).toFixed(1)),
    verify_s: Number(verifyS.toFixed(4)),
    baseline_hash_parse_s: Number(baselineS.toFixed(4)),
    findings,
    build_s: Number(buildS.toFixed(1)),
  });
  db.close();
}

const recomputed: RecomputeRow[] = RECOMPUTE
  ? await benchRecompute({
      sizes: sizes.filter((s) => s.model === 'mlp' || s.model === 'cnn'),
      organisations: RECOMPUTE_ORGS,
      runs: RECOMPUTE_RUNS,
      log,
    })
  : [];

const bundleSize = sizes.find(
  (s) => s.model === (BUNDLE_MODEL === 'logistic' ? 'logistic-regression' : BUNDLE_MODEL),
);
const bundled: BundleRow | null =
  BUNDLE_ROUNDS > 0 && bundleSize !== undefined
    ? await benchBundle({ size: bundleSize, rounds: BUNDLE_ROUNDS, log })
    : null;

console.log(
  'audit verify, 4 organisations a round, downloads excluded, median of 5 (sizes in MB = 10^6 bytes)\n',
);
console.log(
  '| model | parameters | model MB | rounds | MB read | audit verify s | per round | baseline: hash + parse s | per round | verify ÷ baseline |',
);
console.log('|---|---|---|---|---|---|---|---|---|---|');
for (const r of results) {
  const us = (s: number) => `${((s / r.rounds) * 1e6).toFixed(0)} µs`;
  console.log(
    `| ${r.label} | ${r.parameters.toLocaleString('en-US')} | ${r.model_mb} | ${r.rounds} | ${r.mb_read} | ${r.verify_s.toFixed(3)} | ${us(r.verify_s)} | ${r.baseline_hash_parse_s.toFixed(3)} | ${us(r.baseline_hash_parse_s)} | ${(r.verify_s / r.baseline_hash_parse_s).toFixed(1)} × |`,
  );
}
if (recomputed.length > 0) {
  console.log(
    `\naudit verify with recomputation, one SecAgg+ round, ${RECOMPUTE_ORGS} organisations summed, vs the coordinator's aggregation of the same attempt in this run; downloads excluded on both sides, median of ${RECOMPUTE_RUNS}; aim ≤ 2×\n`,
  );
  console.log(
    '| model | parameters | dropouts | cohort (k, t) | material MB | coordinator aggregate s | coordinator finish s | audit recompute s | of which material hash + parse s | recompute ÷ aggregate |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const r of recomputed) {
    console.log(
      `| ${r.label} | ${r.parameters.toLocaleString('en-US')} | ${r.case === 'one dropout' ? '1 (after its shares)' : '0'} | ${r.cohort} (${r.k}, ${r.t}) | ${r.material_mb} | ${r.coordinator_aggregate_s.toFixed(3)} | ${r.coordinator_finish_s.toFixed(3)} | ${r.recompute_s.toFixed(3)} | ${r.audit_material_parse_s.toFixed(3)} | ${r.recompute_ratio.toFixed(1)} × |`,
    );
  }
}
if (bundled !== null) {
  const b = bundled;
  console.log(
    `\naudit export and audit verify --bundle, ${b.rounds} SecAgg+ rounds of 4 organisations, every round recomputed on both sides; one run each; objects and blocks in memory (downloads excluded), the file on local disk\n`,
  );
  console.log(
    '| model | parameters | rounds | blocks | objects | bundle MB | build s (CPU s) | index sync s (CPU s) | export s (CPU s) | of which audit s | per round | verify --bundle s (CPU s) | per round | rounds recomputed |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  const ms = (s: number) => `${((s / b.rounds) * 1000).toFixed(1)} ms`;
  console.log(
    `| ${b.label} | ${b.parameters.toLocaleString('en-US')} | ${b.rounds} | ${b.blocks} | ${b.objects} | ${b.bundle_mb} | ${b.build_s.toFixed(1)} (${b.build_cpu_s.toFixed(1)}) | ${b.index_sync_s.toFixed(2)} (${b.index_sync_cpu_s.toFixed(2)}) | ${b.export_s.toFixed(2)} (${b.export_cpu_s.toFixed(2)}) | ${b.export_audit_s.toFixed(2)} | ${ms(b.export_s)} | ${b.verify_s.toFixed(2)} (${b.verify_cpu_s.toFixed(2)}) | ${ms(b.verify_s)} | ${b.rounds_recomputed}/${b.rounds} |`,
  );
}
/** Per model, the recomputation's figures by case (absent when skipped or for a model it does not run). */
const byCase = (model: string, field: keyof RecomputeRow) => {
  const rows = recomputed.filter((r) => r.model === model);
  return rows.length === 0
    ? {}
    : {
        [field === 'recompute_ratio' ? field : `${field}_per_round`]: Object.fromEntries(
          rows.map((r) => [r.case === 'one dropout' ? 'one_dropout' : 'no_dropout', r[field]]),
        ),
      };
};
console.log(
  JSON.stringify({
    bench: 'audit',
    participants: 4,
    models: results.map((r) => ({
      ...r,
      per_round_us: Math.round((r.verify_s / r.rounds) * 1e6),
      ...byCase(r.model, 'recompute_s'),
      ...byCase(r.model, 'coordinator_aggregate_s'),
      ...byCase(r.model, 'coordinator_finish_s'),
      ...byCase(r.model, 'audit_material_parse_s'),
      ...byCase(r.model, 'recompute_ratio'),
    })),
    ...(recomputed.length === 0
      ? {}
      : {
          recompute: { organisations: RECOMPUTE_ORGS, runs: RECOMPUTE_RUNS, aim_ratio: 2, rows: recomputed },
        }),
    ...(bundled === null ? {} : { bundle: bundled }),
  }),
);
