/**
 * npm run bench:audit — `ailink audit verify` on a long task: N rounds (default 1,000) of 4 organisations, every
 * object declared and placed through the real protocol rules, the chain state in SQLite as the indexer keeps it.
 * Times the checks alone (the objects are already fetched: downloads excluded) against a baseline in the same run:
 * hashing every object the audit reads and parsing the manifests, the floor of any verifier that checks content.
 * Flags (environment): AUDIT_ROUNDS (1000). Prints a table, then one JSON line.
 */
import { createHash } from 'node:crypto';
import Database from 'better-sqlite3';
import { checkLineage } from '../src/audit/index.ts';
import { createSqliteState } from '../src/chain/index.ts';
import { accountsReady } from '../src/shared/account.ts';
import { parseManifest } from '../src/task/index.ts';
import { buildLineage } from '../test/audit/fixture.ts';

const ROUNDS = Number(process.env.AUDIT_ROUNDS ?? '1000');

await accountsReady();
const db = new Database(':memory:');
const state = createSqliteState(db);
let t = performance.now();
const f = db.transaction(() => buildLineage({ rounds: ROUNDS, participants: 4, label: 'bench', state }))();
const buildS = (performance.now() - t) / 1000;
const read = [
  ...f.anchors.map((a) => a.fid),
  ...f.manifests.map((m) => m.model.fid),
  f.manifests[0]!.specFid,
];
console.error(`built ${ROUNDS} rounds (${f.objects.size} objects on chain) in ${buildS.toFixed(1)} s`);

const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const time = (fn: () => void, runs = 5) => {
  fn(); // warm-up
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    t = performance.now();
    fn();
    out.push((performance.now() - t) / 1000);
  }
  return median(out);
};

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
  throw new Error(`the generated task did not verify (${findings} findings): the benchmark measures nothing`);

const rows = [
  ['audit verify (all checks)', verifyS],
  ['baseline: hash + parse only', baselineS],
] as const;
console.log(
  `audit verify, ${ROUNDS} rounds × 4 organisations (${read.length} objects read, downloads excluded)\n`,
);
console.log('| what | seconds | per round |');
console.log('|---|---|---|');
for (const [what, s] of rows)
  console.log(`| ${what} | ${s.toFixed(3)} | ${((s / ROUNDS) * 1e6).toFixed(0)} µs |`);
console.log(
  JSON.stringify({
    bench: 'audit',
    rounds: ROUNDS,
    participants: 4,
    verify_s: Number(verifyS.toFixed(4)),
    baseline_hash_parse_s: Number(baselineS.toFixed(4)),
    per_round_us: Math.round((verifyS / ROUNDS) * 1e6),
    findings,
    build_s: Number(buildS.toFixed(1)),
  }),
);
