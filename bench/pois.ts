/**
 * npm run bench:pois — sizes the idle-space proofs (src/storage/proofs/pois.ts) against the audit's response deadline.
 *
 * A miner that deleted its idle files can still answer a challenge if it regenerates, within the deadline, every
 * label the proof opens: each challenged file up to its highest opened node (labels are sequential: label i needs
 * label i−1), assuming it kept the Merkle tree and so needs no label past that node. The strongest such cheater has
 * one core per challenged file, so its time is the slowest file's; on one core it is the sum. This bench measures
 * the per-label cost at the protocol's params, derives the honest labelling time of one idle file and the
 * regeneration time of real challenges (the cheater's luckiest of BENCH_SEEDS seeds, and the median), times the
 * honest answer (a Merkle tree per challenged file) and the verifier's check, and divides regeneration by the
 * deadline: slipBaseBlocks + the idle slip (src/chain/pallets/audit.ts), in seconds at 6-s blocks (CESS), at the
 * dev chain's 3-s heartbeat (src/node/devnet.ts) and at 0.6 s (the dev chain sealing a block per transaction).
 *
 * Baseline in the same run: the same file and challenge with PoIS v1's cost (rounds 1: one hash per label).
 * The honest labelling time is extrapolated from BENCH_LABELS labels (per-label cost is constant; a full default file
 * takes about an hour). Env: BENCH_LABELS (default 4096), BENCH_SEEDS (default 200), BENCH_QUICK=1 (1024, 50).
 */
import { pbkdf2Sync, randomBytes } from 'node:crypto';
import { CESS_AUDIT } from '../src/chain/config.ts';
import { challengeBlocks } from '../src/chain/pallets/audit.ts';
import {
  deriveIdleChallenge,
  labelIdleFile,
  merkleTree,
  type PoisParams,
  poisParams,
} from '../src/storage/proofs/pois.ts';

const QUICK = Boolean(process.env.BENCH_QUICK);
const LABELS = Number(process.env.BENCH_LABELS ?? (QUICK ? 1024 : 4096));
const SEEDS = Number(process.env.BENCH_SEEDS ?? (QUICK ? 50 : 200));
const OWNER = '5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY';
const audit = CESS_AUDIT;
const p = audit.proofs;
const params = poisParams({
  nodes: p.idleNodes,
  parents: p.idleParents,
  openings: p.idleOpenings,
  rounds: p.idleRounds,
});
const v1 = poisParams({ ...params, rounds: 1 });
const fileBytes = params.nodes * 32;
const log = (s: string) => process.stderr.write(`${s}\n`);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const time = (f: () => void): number => {
  const t = performance.now();
  f();
  return performance.now() - t;
};

/**
 * Seconds per label under `pp`: labelling the first LABELS labels of a file, best of 3, less the allocation of the
 * file's buffer (labelIdleFile allocates nodes × 32 bytes whatever `upTo` is).
 */
function secondsPerLabel(pp: PoisParams): number {
  const n = Math.min(LABELS, pp.nodes);
  const best = (upTo: number) =>
    Math.min(...[0, 1, 2].map(() => time(() => labelIdleFile(OWNER, 0, pp, upTo))));
  return Math.max(0, best(n) - best(0)) / 1000 / n;
}

log(`PoIS params: ${JSON.stringify(params)} (${fileBytes / 2 ** 20} MiB idle files); ${LABELS} labels timed`);
const perLabel = secondsPerLabel(params);
const perLabelV1 = secondsPerLabel(v1);
const iterUs = (time(() => pbkdf2Sync(randomBytes(32), 'salt', 1 << 18, 32, 'sha256')) * 1000) / (1 << 18);
const labelFileS = perLabel * params.nodes;
const labelFileV1S = perLabelV1 * params.nodes;

// Regeneration of real challenges, for a miner holding `files` idle files.
function regeneration(files: number): { parallel: number[]; serial: number[] } {
  const committed = Array.from({ length: files }, (_, index) => ({ index, root: '0'.repeat(64) }));
  const parallel: number[] = [];
  const serial: number[] = [];
  for (let s = 0; s < SEEDS; s++) {
    const highest = new Map<number, number>();
    for (const c of deriveIdleChallenge(randomBytes(32), committed, params)) {
      highest.set(c.file, Math.max(highest.get(c.file) ?? 0, c.node));
    }
    const labels = [...highest.values()].map((n) => n + 1);
    parallel.push(Math.max(...labels));
    serial.push(labels.reduce((a, b) => a + b, 0));
  }
  return { parallel, serial };
}

// Honest answer: one Merkle tree per challenged file (at most `openings` files), labels read from disk (excluded).
const treeS = time(() => merkleTree(new Uint8Array(randomBytes(fileBytes)))) / 1000;
// Verifier: recomputes each opened label (rounds PBKDF2 iterations each) and checks 7 Merkle paths per opening.
const verifyS =
  time(() => {
    for (let j = 0; j < params.openings; j++)
      pbkdf2Sync(randomBytes(32), 'salt', params.rounds, 32, 'sha256');
  }) / 1000;

// The audit's rule (src/chain/pallets/audit.ts): the idle slip counts at most idleOpenings files.
const deadlineBlocks = (files: number) => challengeBlocks(audit, 0, files);
const BLOCK_S = [6, 3, 0.6];
const rows: Record<string, unknown>[] = [];
for (const files of [1, 16, 1024]) {
  const r = regeneration(files);
  const minPar = Math.min(...r.parallel) * perLabel;
  const medPar = median(r.parallel) * perLabel;
  const minSer = Math.min(...r.serial) * perLabel;
  const minParV1 = Math.min(...r.parallel) * perLabelV1;
  const honest = Math.min(files, params.openings) * treeS;
  const blocks = deadlineBlocks(files);
  rows.push({
    files,
    idleGiB: +((files * fileBytes) / 2 ** 30).toFixed(3),
    deadlineBlocks: blocks,
    regenParallelMinS: +minPar.toFixed(1),
    regenParallelMedianS: +medPar.toFixed(1),
    regenOneCoreMinS: +minSer.toFixed(1),
    regenV1S: +minParV1.toFixed(3),
    honestAnswerS: +honest.toFixed(2),
    ...Object.fromEntries(
      BLOCK_S.flatMap((b) => [
        [`deadlineS@${b}s`, +(blocks * b).toFixed(1)],
        [`margin@${b}s`, +(minPar / (blocks * b)).toFixed(2)],
      ]),
    ),
    [`marginV1@${BLOCK_S[1]}s`]: +(minParV1 / (blocks * BLOCK_S[1]!)).toFixed(4),
  });
}

log('');
log(
  `PBKDF2-HMAC-SHA256 iteration: ${iterUs.toFixed(3)} µs; label: ${(perLabel * 1e6).toFixed(1)} µs at ${params.rounds} rounds, ${(perLabelV1 * 1e6).toFixed(2)} µs at 1 (v1 cost)`,
);
log(
  `honest labelling of one ${fileBytes / 2 ** 20} MiB idle file: ${(labelFileS / 60).toFixed(1)} min (v1 cost: ${labelFileV1S.toFixed(1)} s); ${((labelFileS * 2 ** 30) / fileBytes / 3600).toFixed(1)} core-hours per GiB`,
);
log(
  `honest answer: Merkle tree of one file ${treeS.toFixed(2)} s (× challenged files, ≤ ${params.openings}); verifier: ${(verifyS * 1000).toFixed(1)} ms of labels`,
);
log("margin = cheater's regeneration (one core per challenged file, luckiest of the seeds) ÷ deadline");
log('');
log(
  'files  GiB      deadline(blocks)  regen ∥ min/med (s)  regen 1 core (s)  v1 regen (s)  honest (s)  margin @6s  @3s    @0.6s  v1 @3s',
);
for (const r of rows) {
  log(
    [
      String(r.files).padEnd(6),
      String(r.idleGiB).padEnd(8),
      String(r.deadlineBlocks).padEnd(17),
      `${r.regenParallelMinS} / ${r.regenParallelMedianS}`.padEnd(20),
      String(r.regenOneCoreMinS).padEnd(17),
      String(r.regenV1S).padEnd(13),
      String(r.honestAnswerS).padEnd(11),
      String(r['margin@6s']).padEnd(11),
      String(r['margin@3s']).padEnd(6),
      String(r['margin@0.6s']).padEnd(6),
      String(r['marginV1@3s']),
    ].join(' '),
  );
}
console.log(
  JSON.stringify({
    bench: 'pois',
    params,
    labelsTimed: LABELS,
    seeds: SEEDS,
    pbkdf2IterationUs: +iterUs.toFixed(3),
    labelUs: +(perLabel * 1e6).toFixed(1),
    labelV1Us: +(perLabelV1 * 1e6).toFixed(2),
    honestLabelFileS: +labelFileS.toFixed(0),
    honestLabelFileV1S: +labelFileV1S.toFixed(1),
    merkleTreeS: +treeS.toFixed(2),
    verifyLabelsMs: +(verifyS * 1000).toFixed(1),
    slipBaseBlocks: audit.slipBaseBlocks,
    idleBytesPerBlock: audit.idleBytesPerBlock,
    rows,
  }),
);
