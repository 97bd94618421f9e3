/**
 * npm run fuzz — every edge gets generated bad input (bench/fuzz/harness.ts): malformed, truncated, oversized,
 * replayed, unsigned, wrongly signed, out-of-order, duplicated, from the wrong caller. Each must be refused with a
 * registered error code, the process must survive, and the edge's stored state must not change.
 *
 *   npm run fuzz                       the short profile (CI's: 40 inputs per edge, seed 18)
 *   npm run fuzz -- --runs 2000        a longer run
 *   npm run fuzz -- --seed 7 --only chain   another seed; only edges whose name contains "chain"
 *   npm run fuzz -- --devchain --only devchain --runs 40   the remark edges through the real dev chain too (slow)
 *   npm run fuzz -- --no-shrink        report failures without looking for the smallest failing input
 *
 * Prints a table per edge, the failures (if any) and each failing edge's smallest failing input (fast-check's
 * shrinking), then one JSON line; exits 1 when anything failed.
 */
import { parseArgs } from 'node:util';
import { devChainEdge } from './chain.ts';
import { allEdges, DEFAULT_RUNS, DEFAULT_SEED } from './edges.ts';
import { type Edge, formatTable, jsonLine, runFuzz } from './harness.ts';

const { values } = parseArgs({
  options: {
    runs: { type: 'string' },
    seed: { type: 'string' },
    only: { type: 'string' },
    devchain: { type: 'boolean' },
    'no-shrink': { type: 'boolean' },
  },
});
const runs = values.runs === undefined ? DEFAULT_RUNS : Number(values.runs);
const seed = values.seed === undefined ? DEFAULT_SEED : Number(values.seed);
if (!Number.isSafeInteger(runs) || runs < 1)
  throw new Error(`--runs: expected a positive integer, got ${values.runs}`);
if (!Number.isSafeInteger(seed)) throw new Error(`--seed: expected an integer, got ${values.seed}`);

const edges = [...allEdges(), ...(values.devchain ? [devChainEdge() as Edge<never>] : [])].filter(
  (e) => values.only === undefined || e.name.includes(values.only),
);
const report = await runFuzz(edges, {
  runs,
  seed,
  shrink: values['no-shrink'] !== true,
  onEdge: (r) => process.stderr.write(`${r.edge}: ${r.inputs} inputs in ${r.ms} ms\n`),
});
console.log(`fuzz: ${report.edges} edges × ${runs} inputs, seed ${seed}`);
console.log(formatTable(report));
for (const f of report.failures.slice(0, 50))
  console.log(`FAIL ${f.edge} [${f.variant}] ${f.label}: ${f.kind} — ${f.detail}`);
if (report.failures.length > 50) console.log(`… and ${report.failures.length - 50} more failures`);
for (const r of report.per_edge)
  if (r.smallest !== undefined)
    console.log(
      `SMALLEST ${r.edge} [${r.smallest.variant}] ${r.smallest.label}: ${r.smallest.kind} — ${r.smallest.detail} (${r.smallest.shrinks} shrinks)`,
    );
console.log(jsonLine(report));
// Exit now: a dev chain's or a server's handles may keep the event loop alive after their close.
process.exit(report.failures.length === 0 ? 0 : 1);
