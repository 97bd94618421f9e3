/**
 * npm run bench:train-memory — issue 17 "Large models": how many copies of a large model a participant's training
 * takes, without the rest of a round around it (bench:large runs the whole round). The model is bench:large's:
 * 64 inputs → Dense(H) → Dense(H) → 2, H² + 68·H + 2 weights. On a training worker (train-pool.ts), as a participant
 * runs them, two jobs:
 *  - describe: build the model and draw its initial weights (what the coordinator does when it creates a task);
 *  - train: one epoch over TRAIN_MEM_ROWS rows of random features from those weights, the trained weights back on
 *    this thread (what a participant does each round);
 *  - evaluate: the trained weights scored on those rows (what a coordinator with a test set does at every round's
 *    close, and an organisation before training).
 * For each, this process's peak resident set (its worker threads included) from the job's start to its result, over
 * the resident set just before it, in copies of the model (4 bytes a weight). The peak is the kernel's own high-water
 * mark (VmHWM), reset before each job through /proc/self/clear_refs; beside it, how much the worker's WebAssembly
 * heap grew (it never shrinks, so that is the backend's own high-water mark). Baseline in the same run: H = 100, whose
 * peaks are subtracted, so that the copies are what the large model adds.
 *
 * Flags (environment): TRAIN_MEM_HIDDEN (5000: 25,340,002 weights; 10000 for bench:large's 100M), TRAIN_MEM_ROWS
 * (300), TRAIN_MEM_BACKEND (wasm).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { type ModelPackage, modelPackageDigest } from '../models/index.ts';
import type { BackendName } from '../src/participant/tf.ts';
import { createTrainingPool, poolTestHooks } from '../src/participant/train-pool.ts';
import { FEATURES, wideTopology } from './wide-model.ts';

const HIDDEN = Number(process.env.TRAIN_MEM_HIDDEN ?? 5000);
const ROWS = Number(process.env.TRAIN_MEM_ROWS ?? 300);
const BACKEND = (process.env.TRAIN_MEM_BACKEND ?? 'wasm') as BackendName;
const MiB = 1024 * 1024;

const log = (s: string) => process.stderr.write(`${s}\n`);
const gc = (globalThis as { gc?: () => void }).gc;

function statusMiB(field: 'VmRSS' | 'VmHWM'): number {
  const kb = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
  if (kb === undefined) throw new Error(`no ${field} in /proc/self/status`);
  return Number(kb) / 1024;
}

/** Runs `job` and reports this process's peak resident set during it over the resident set before it (MiB). */
async function peakOf<T>(
  job: () => Promise<T>,
): Promise<{ value: T; beforeMiB: number; extraMiB: number; s: number }> {
  // A worker ended after a large job gives its memory back a moment later: wait until the resident set settles.
  let beforeMiB = statusMiB('VmRSS');
  for (let i = 0; i < 50; i++) {
    gc?.();
    await new Promise((r) => setTimeout(r, 200));
    const now = statusMiB('VmRSS');
    const settled = Math.abs(now - beforeMiB) < 2;
    beforeMiB = now;
    if (settled) break;
  }
  writeFileSync('/proc/self/clear_refs', '5'); // resets VmHWM to the current resident set
  const started = performance.now();
  const value = await job();
  const s = (performance.now() - started) / 1000;
  return { value, beforeMiB, extraMiB: statusMiB('VmHWM') - beforeMiB, s };
}

const packageOf = (hidden: number): ModelPackage => ({ topology: wideTopology(hidden), weights: null });

/** Random features in [-1, 1] and the label two of them decide (bench:large's table). */
function rows(n: number) {
  let state = 0x2545f491;
  const next = () => {
    state = (Math.imul(state, 1_103_515_245) + 12_345) >>> 0;
    return (state / 2 ** 32) * 2 - 1;
  };
  const x = Float32Array.from({ length: n * FEATURES }, next);
  const y = Uint16Array.from({ length: n }, (_, i) => (x[i * FEATURES]! + x[i * FEATURES + 1]! > 0 ? 1 : 0));
  return { count: n, shape: [FEATURES], x, y };
}

interface Row {
  hidden: number;
  weights: number;
  model_mib: number;
  job: 'describe' | 'train' | 'evaluate';
  before_mib: number;
  peak_extra_mib: number;
  /** How much the worker's WebAssembly heap grew in the job (it only grows): the backend's share of the peak. */
  wasm_heap_growth_mib: number | null;
  s: number;
}

const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;

async function measure(hidden: number): Promise<Row[]> {
  const pkg = packageOf(hidden);
  const model = { key: modelPackageDigest(pkg), topology: pkg.topology };
  const data = rows(ROWS);
  // A pool of its own for each job, closed after it, so that what a job's worker held is gone before the next is
  // measured (a worker that ran a large job is ended after it, but not at once).
  // The worker is kept after a large job here (as it is not in a participant), so that its heap can be read.
  const onFreshWorker = async <T>(job: (pool: ReturnType<typeof createTrainingPool>) => Promise<T>) => {
    const pool = createTrainingPool({
      threads: 1,
      backend: BACKEND,
      recycleAboveParameters: Number.POSITIVE_INFINITY,
    });
    try {
      const heapBefore = await poolTestHooks(pool).heapBytes(); // starts the worker and its tfjs
      const measured = await peakOf(() => job(pool));
      const heapAfter = await poolTestHooks(pool).heapBytes();
      const heapGrowthMiB = heapBefore === null || heapAfter === null ? null : (heapAfter - heapBefore) / MiB;
      return { ...measured, heapGrowthMiB };
    } finally {
      await pool.close();
    }
  };
  log(`H = ${hidden}: describe …`);
  const described = await onFreshWorker((pool) => pool.describe(pkg, 'bench-train-memory'));
  const weights = described.value.spec.parameters;
  log(`H = ${hidden}: train on ${ROWS} rows …`);
  const trained = await onFreshWorker((pool) =>
    pool.train({ model, weights: described.value.initial, data, options: { epochs: 1, seed: 'bench' } }),
  );
  if (trained.value.weights.length !== weights) throw new Error('the trained model has the wrong size');
  log(`H = ${hidden}: evaluate on ${ROWS} rows …`);
  const evaluated = await onFreshWorker((pool) =>
    pool.evaluate({ model, weights: trained.value.weights, data }),
  );
  if (evaluated.value.examples !== ROWS) throw new Error('the evaluation scored the wrong number of rows');
  const modelMiB = (weights * 4) / MiB;
  const row = (job: Row['job'], m: Omit<typeof described, 'value'>): Row => ({
    hidden,
    weights,
    model_mib: round(modelMiB, 1),
    job,
    before_mib: round(m.beforeMiB, 0),
    peak_extra_mib: round(m.extraMiB, 0),
    wasm_heap_growth_mib: m.heapGrowthMiB === null ? null : round(m.heapGrowthMiB, 0),
    s: round(m.s, 1),
  });
  return [row('describe', described), row('train', trained), row('evaluate', evaluated)];
}

if (gc === undefined) log('(run with --expose-gc for a steadier "before": npm run bench:train-memory does)');
const baseline = await measure(100);
const large = await measure(HIDDEN);
/** What the large model adds to a job's peak over the baseline's, in copies of the large model. */
const copies = (of: (r: Row) => number | null) =>
  large.map((r, i) => {
    const [big, small] = [of(r), of(baseline[i]!)];
    return big === null || small === null ? null : round((big - small) / r.model_mib, 2);
  });
const processCopies = copies((r) => r.peak_extra_mib);
const heapCopies = copies((r) => r.wasm_heap_growth_mib);
console.log(
  '| H | weights | model MiB | job | RSS before MiB | peak over it MiB | copies of the model | of which wasm heap | s |',
);
console.log('|---|---|---|---|---|---|---|---|---|');
for (const [i, r] of [...baseline, ...large].entries()) {
  const k = i - baseline.length;
  console.log(
    `| ${r.hidden} | ${r.weights.toLocaleString('en-US')} | ${r.model_mib} | ${r.job} | ${r.before_mib} | ${r.peak_extra_mib} | ${k < 0 ? 'baseline' : processCopies[k]} | ${k < 0 ? `${r.wasm_heap_growth_mib} MiB` : (heapCopies[k] ?? '—')} | ${r.s} |`,
  );
}
console.log(
  JSON.stringify({
    bench: 'train-memory',
    backend: BACKEND,
    rows: ROWS,
    copies: { describe: processCopies[0], train: processCopies[1], evaluate: processCopies[2] },
    wasm_heap_copies: { describe: heapCopies[0], train: heapCopies[1], evaluate: heapCopies[2] },
    results: [...baseline, ...large],
  }),
);
