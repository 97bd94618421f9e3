/**
 * npm run bench:fl — federated training of the FedAvg CNN on Fashion-MNIST with 10 organisations: IID and
 * Dirichlet(0.5) slices, SecAgg on (quantize → SecAgg+ client and server state machines → unmask → FedAvg) and off
 * (plain FedAvg of the float updates), and in the same run the same model trained centrally on the union of the data
 * for the same total epochs (the baseline). Per round: test accuracy, seconds split into local training and everything
 * else (quantization, SecAgg, aggregation, evaluation). Training runs in the worker pool (wasm backend, one worker per
 * core); the storage and chain legs of a round are measured by `ailink demo` instead.
 *
 * Tabular rows: the shipped tables (models/data/tables) through the whole stack — `runFederatedDemo`: dev chain, 12
 * miners, libp2p, federated statistics, SecAgg, client-side evaluation, lineage verified — against a logistic
 * regression trained centrally on the same rows and scored on the same held-out rows, in the same run; seconds per
 * round are wall-clock rounds of the real network (no dropout, so they measure the protocol, not a deadline).
 *
 * Training-speed baseline: PyTorch training the same CNN (bench/torch_cnn.py: same layers, batch, optimizer and
 * images), run in this run on one thread and on as many threads as the pool has workers, when a python3 that imports
 * torch is found (FL_PYTHON, else python3, else /usr/bin/python3 — Debian's python3-torch installs there). Otherwise
 * the table prints PyTorch's figure as an ANCHOR measured elsewhere, with its provenance, never as measured.
 *
 * Flags (environment): FL_ROUNDS (30), FL_TORCH_SAMPLES (3000), FL_DATA (full | small), FL_MODEL (cnn | mlp), FL_PARTICIPANTS (10),
 * FL_EPOCHS (1), FL_SETTINGS (comma list of iid-secagg, iid-plain, dir-secagg, dir-plain; default all; 'none' skips
 * the image rows), FL_TABLES (comma list of penguins, seattle-weather; default both; 'none' skips them),
 * FL_TABLE_ROUNDS (10), FL_TABLE_PARTICIPANTS (5).
 *
 * Differential privacy at equal ε (issue 19 §2), IID slices, SecAgg on, every update clipped to L2 ≤ FL_DP_CLIP and
 * weighing 1, averaged over the cohort (DP-FedAvg): no noise, central DP (the coordinator's Gaussian noise on the
 * unmasked sum) and distributed DP (each organisation's Skellam share in its quantized update before masking), each
 * with the noise multiplier that makes ε after FL_ROUNDS rounds exactly FL_DP_EPSILON at δ = 1e-5 — the same training
 * seeds for the three. FL_DP (comma list of none, central, skellam; default all three; off skips them),
 * FL_DP_EPSILON (50), FL_DP_CLIP (1).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { builtinModel, modelPackageDigest } from '../models/index.ts';
import {
  addSkellamShare,
  clipToNorm,
  createRdpAccountant,
  createSecAggClient,
  createSecAggServer,
  decodeNoisySum,
  decodeWeightedSum,
  encodeWeightedUpdate,
  fedAvg,
  privacySpent,
  privatizeSum,
  quantizationScale,
  type SecAggParams,
  type Signed,
  type StrategyState,
  signingKeyPair,
  skellamEpsilon,
  skellamSensitivity,
  type WeightedEncoding,
} from '../src/aggregation/index.ts';
import { runFederatedDemo } from '../src/cli/fl-demo.ts';
import { loadSource, partitionIndices } from '../src/participant/dataset.ts';
import { type Examples, selectExamples } from '../src/participant/examples.ts';
import { createTrainingPool } from '../src/participant/train-pool.ts';
import { systemRandom } from '../src/shared/clock.ts';

const random = (n: number) => new Uint8Array(randomBytes(n));
const log = (s: string) => process.stderr.write(`${s}\n`);
const env = (name: string, fallback: string) => process.env[name] ?? fallback;

const ROUNDS = Number(env('FL_ROUNDS', '30'));
const MODEL = env('FL_MODEL', 'cnn');
const N = Number(env('FL_PARTICIPANTS', '10'));
const EPOCHS = Number(env('FL_EPOCHS', '1'));
const SOURCE = env('FL_DATA', 'full') === 'small' ? 'fashion-mnist-small' : 'fashion-mnist';
const list = (value: string) => (value === 'none' ? [] : value.split(','));
const SETTINGS = list(env('FL_SETTINGS', 'iid-secagg,iid-plain,dir-secagg,dir-plain'));
const TABLES = list(env('FL_TABLES', 'penguins,seattle-weather'));
const TABLE_ROUNDS = Number(env('FL_TABLE_ROUNDS', '10'));
const TABLE_PARTICIPANTS = Number(env('FL_TABLE_PARTICIPANTS', '5'));
const DP_MODES = (
  env('FL_DP', 'none,central,skellam') === 'off' ? [] : env('FL_DP', 'none,central,skellam').split(',')
) as DpMode[];
for (const m of DP_MODES)
  if (!['none', 'central', 'skellam'].includes(m))
    throw new Error(`FL_DP: expected a comma list of none, central, skellam (or off), got ${m}`);
const DP_EPSILON = Number(env('FL_DP_EPSILON', '50'));
const DP_CLIP = Number(env('FL_DP_CLIP', '1'));
const DP_DELTA = 1e-5;
/** Updates weigh 1 under DP, so maxWeight 1: every level of the 20-bit grid is the update's. */
const DP_ENCODING: WeightedEncoding = { quantization: { range: 1, bits: 20 }, maxWeight: 1 };
type DpMode = 'none' | 'central' | 'skellam';
/** Each shipped table and the column it predicts. */
const TABLE_LABELS: Record<string, string> = { penguins: 'species', 'seattle-weather': 'weather' };
const BATCH = 50;
const LR = 0.05;
const ENCODING: WeightedEncoding = { quantization: { range: 1, bits: 24 }, maxWeight: 65_535 };
const threads = Math.min(2, availableParallelism());

const TORCH_SAMPLES = Number(env('FL_TORCH_SAMPLES', '3000'));
/** PyTorch's figure when it cannot run here: measured separately, never in this run. */
const TORCH_ANCHOR = {
  samples_per_s_per_core: 310,
  provenance:
    'anchor, not measured in this run: PyTorch 1.13 (Debian python3-torch) on one core of a 2-core machine of this workplace, shared/anchors/torch_fedavg_cnn.py, the same CNN on Fashion-MNIST (shared/DESIGN.md §7)',
};

interface TorchRun {
  torch: string;
  threads: number;
  samples: number;
  parameters: number;
  samples_per_s: number;
}

/** The same CNN in PyTorch, in this run, when some python3 imports torch; null (with the reason) otherwise. */
function measureTorch(dataDir: string, threadCounts: number[]): { runs: TorchRun[] } | { missing: string } {
  const script = fileURLToPath(new URL('./torch_cnn.py', import.meta.url));
  const candidates = process.env.FL_PYTHON ? [process.env.FL_PYTHON] : ['python3', '/usr/bin/python3'];
  const python = candidates.find(
    (p) => spawnSync(p, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0,
  );
  if (python === undefined) return { missing: `no python3 imports torch (tried ${candidates.join(', ')})` };
  const runs: TorchRun[] = [];
  for (const t of threadCounts) {
    log(`  PyTorch baseline: ${python}, ${t} thread(s), ${TORCH_SAMPLES} images …`);
    const r = spawnSync(python, [script, dataDir, String(t), String(TORCH_SAMPLES)], { encoding: 'utf8' });
    if (r.status !== 0)
      return { missing: `${python} ${script} failed: ${r.stderr.trim().split('\n').at(-1)}` };
    runs.push(JSON.parse(r.stdout.trim().split('\n').at(-1)!) as TorchRun);
  }
  return { runs };
}

const pool = createTrainingPool({ threads });
const data = await loadSource({ kind: SOURCE });
const backend = await pool.backend();
log(
  `bench:fl — ${MODEL}, ${N} organisations, ${ROUNDS} rounds × ${EPOCHS} epoch(s), ${data.train.count} train / ${data.test.count} test images (${data.dir}), backend ${backend}, ${threads} workers`,
);
const pkg = await builtinModel(MODEL);
const model = { key: modelPackageDigest(pkg), topology: pkg.topology };
const initial = (await pool.describe(pkg, 'bench-fl')).initial;
// Before any training, while the pool's workers are idle: the baseline gets the cores to itself.
const torch =
  MODEL === 'cnn' && SETTINGS.length > 0
    ? measureTorch(data.dir, [...new Set([1, threads])])
    : {
        missing: `the PyTorch baseline is the CNN's (FL_MODEL=${MODEL}, FL_SETTINGS=${SETTINGS.join(',') || 'none'})`,
      };
const torchPerCore = 'runs' in torch ? Math.max(...torch.runs.map((r) => r.samples_per_s / r.threads)) : null;
const optimizer = { name: 'sgd', learningRate: LR } as const;

interface RoundRow {
  round: number;
  accuracy: number;
  train_s: number;
  other_s: number;
}

const evaluate = async (weights: Float32Array) =>
  (await pool.evaluate({ model, weights: weights.slice(), data: data.test })).accuracy;

/** One SecAgg+ round over the clients' encoded updates, every client and the server in this process. */
async function secureSum(encoded: Uint32Array[]): Promise<Uint32Array> {
  const ids = encoded.map((_, i) => `org-${String(i).padStart(2, '0')}`);
  const keys = ids.map(() => signingKeyPair(random));
  const k = Math.min(8, N - 1 - ((N - 1) % 2));
  const params: SecAggParams = {
    context: 'bench/fl',
    identities: new Map(ids.map((id, i) => [id, keys[i]!.publicKey])),
    k,
    t: Math.floor(k / 2) + 1,
    graphSeed: random(32),
    dimension: encoded[0]!.length,
  };
  const clients = ids.map((id, i) =>
    createSecAggClient(id, { identityKey: keys[i]!.privateKey, random }, params),
  );
  const server = createSecAggServer(params);
  const adverts = server.collectAdverts(clients.map((c) => c.advertise()));
  const shares = server.collectShares(
    await Promise.all(clients.map((c, i) => c.shareKeys(adverts.get(ids[i]!) ?? []))),
  );
  const survivors = server.collectMasked(
    clients.map((c, i) => c.maskedInput(shares.get(ids[i]!) ?? [], encoded[i]!)),
  );
  const signatures = server.collectConsistency(clients.map((c) => c.consistency(survivors)));
  const unmasks: Signed<never>[] = clients.map((c) => c.unmask(signatures) as Signed<never>);
  return (await server.unmask(unmasks)).sum;
}

/** ε after `rounds` rounds of each mechanism at noise multiplier z (all N organisations surviving). */
function epsilonOf(mode: 'central' | 'skellam', z: number, dimension: number, rounds: number): number {
  if (mode === 'central')
    return privacySpent(
      createRdpAccountant().step({ noiseMultiplier: z, samplingRate: 1, steps: rounds }),
      DP_DELTA,
    ).epsilon;
  const scale = quantizationScale(DP_ENCODING.quantization);
  const sensitivity = skellamSensitivity({ clipNorm: DP_CLIP, scale, dimension });
  const variance = (z * DP_CLIP * scale) ** 2;
  return skellamEpsilon(
    sensitivity,
    Array.from({ length: rounds }, () => variance),
    DP_DELTA,
  );
}

/** The noise multiplier at which ε after ROUNDS rounds is FL_DP_EPSILON (bisection: ε falls as z grows). */
function multiplierFor(mode: 'central' | 'skellam', dimension: number): number {
  let lo = 1e-3;
  let hi = 1e3;
  for (let i = 0; i < 100; i++) {
    const mid = Math.sqrt(lo * hi);
    if (epsilonOf(mode, mid, dimension, ROUNDS) > DP_EPSILON) lo = mid;
    else hi = mid;
  }
  return hi;
}

type Mode = 'secagg' | 'plain' | { readonly dp: DpMode; readonly z: number };

async function federated(name: string, parts: Examples[], mode: Mode): Promise<RoundRow[]> {
  const strategy = fedAvg();
  let state: StrategyState = strategy.init(initial);
  const rows: RoundRow[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const t0 = performance.now();
    const results = await Promise.all(
      parts.map((slice, i) =>
        pool.train({
          model,
          weights: state.global.slice(),
          data: slice,
          // The same shuffling seed with SecAgg on and off: the settings then differ only by quantization.
          options: {
            epochs: EPOCHS,
            batchSize: BATCH,
            optimizer,
            seed: `${name.split('-')[0]}/${round}/${i}`,
          },
        }),
      ),
    );
    const t1 = performance.now();
    const updates = results.map((r) => {
      const delta = new Float32Array(r.weights.length);
      for (let j = 0; j < delta.length; j++) delta[j] = r.weights[j]! - state.global[j]!;
      return { update: delta, weight: r.examples };
    });
    if (typeof mode === 'object') {
      // DP-FedAvg: clipped, weight 1; Skellam shares go in before masking, central noise after unmasking.
      const d = state.global.length;
      const encoded = updates.map((u) => {
        const words = encodeWeightedUpdate(clipToNorm(u.update, DP_CLIP), 1, DP_ENCODING, random);
        if (mode.dp === 'skellam') {
          const variance = (mode.z * DP_CLIP * quantizationScale(DP_ENCODING.quantization)) ** 2;
          addSkellamShare(words, d, variance / updates.length, random);
        }
        return words;
      });
      const sum = await secureSum(encoded);
      const input =
        mode.dp === 'skellam'
          ? {
              sum: decodeNoisySum(sum.subarray(0, d), DP_ENCODING.quantization, encoded.length),
              totalWeight: N,
            }
          : mode.dp === 'central'
            ? privatizeSum(decodeWeightedSum(sum, DP_ENCODING, encoded.length), {
                clipNorm: DP_CLIP,
                noiseMultiplier: mode.z,
                clients: encoded.length,
                plannedClients: N,
                random,
              })
            : { sum: decodeWeightedSum(sum, DP_ENCODING, encoded.length).sum, totalWeight: N };
      state = strategy.aggregate(state, input).state;
    } else if (mode === 'secagg') {
      const encoded = updates.map((u) => encodeWeightedUpdate(u.update, u.weight, ENCODING, random));
      const sum = await secureSum(encoded);
      state = strategy.aggregate(state, decodeWeightedSum(sum, ENCODING, encoded.length)).state;
    } else {
      state = strategy.aggregate(state, updates).state;
    }
    const accuracy = await evaluate(state.global);
    const t2 = performance.now();
    rows.push({ round, accuracy, train_s: (t1 - t0) / 1000, other_s: (t2 - t1) / 1000 });
    log(
      `  ${name.padEnd(11)} round ${String(round + 1).padStart(2)}  accuracy ${(accuracy * 100).toFixed(2)} %  train ${((t1 - t0) / 1000).toFixed(1)} s  other ${((t2 - t1) / 1000).toFixed(2)} s`,
    );
  }
  return rows;
}

async function central(): Promise<RoundRow[]> {
  let weights: Float32Array = initial.slice();
  const rows: RoundRow[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const t0 = performance.now();
    const r = await pool.train({
      model,
      weights,
      data: data.train,
      options: { epochs: EPOCHS, batchSize: BATCH, optimizer, seed: `central/${round}` },
    });
    weights = r.weights;
    const t1 = performance.now();
    const accuracy = await evaluate(weights);
    rows.push({ round, accuracy, train_s: (t1 - t0) / 1000, other_s: (performance.now() - t1) / 1000 });
    log(`  central     epoch ${String(round + 1).padStart(2)}  accuracy ${(accuracy * 100).toFixed(2)} %`);
  }
  return rows;
}

const slices = (kind: 'iid' | 'dirichlet') =>
  Array.from({ length: N }, (_, index) =>
    selectExamples(
      data.train,
      partitionIndices(
        data.train.y,
        kind === 'iid' ? { kind, index, clients: N } : { kind, alpha: 0.5, index, clients: N },
        'bench-fl',
      ),
    ),
  );

const results: Record<string, RoundRow[]> = {};
if (SETTINGS.length > 0) {
  for (const setting of SETTINGS) {
    const [split, mode] = setting.split('-') as ['iid' | 'dir', 'secagg' | 'plain'];
    results[setting] = await federated(setting, slices(split === 'iid' ? 'iid' : 'dirichlet'), mode);
  }
  results.central = await central();
}
/** Per DP mode: the noise multiplier that gives FL_DP_EPSILON, and the rounds' accuracy. */
const dpRuns: { mode: DpMode; z: number | null; epsilon: number | null; rows: RoundRow[] }[] = [];
for (const dp of DP_MODES) {
  const z = dp === 'none' ? null : multiplierFor(dp, initial.length);
  log(`  DP ${dp}: ${z === null ? 'no noise' : `noise multiplier ${z.toFixed(4)} for ε ${DP_EPSILON}`} …`);
  const rows = await federated(`dp-${dp}`, slices('iid'), { dp, z: z ?? 0 });
  dpRuns.push({
    mode: dp,
    z,
    epsilon: z === null ? null : epsilonOf(dp as 'central' | 'skellam', z, initial.length, ROUNDS),
    rows,
  });
}
await pool.close();

interface TableRow {
  table: string;
  federated: number | null;
  central: number | null;
  seconds_per_round: number;
  lineage_verified: boolean;
}

/** One shipped table through the whole stack, IID among the organisations, SecAgg on, nobody dropping out. */
async function tabular(table: string): Promise<TableRow> {
  const label = TABLE_LABELS[table];
  if (label === undefined)
    throw new Error(`FL_TABLES: expected ${Object.keys(TABLE_LABELS).join(', ')}, got ${table}`);
  const file = fileURLToPath(new URL(`../models/data/tables/${table}.csv`, import.meta.url));
  log(`  ${table}: ${TABLE_PARTICIPANTS} organisations, ${TABLE_ROUNDS} rounds, the whole stack …`);
  const result = await runFederatedDemo(
    { random: systemRandom },
    {
      dataDir: mkdtempSync(join(tmpdir(), `ailink-bench-${table}-`)),
      participants: TABLE_PARTICIPANTS,
      rounds: TABLE_ROUNDS,
      alpha: null,
      secagg: true,
      source: { kind: 'csv', file, label },
      drops: [],
      say: (line) => log(`    ${line}`),
    },
  );
  const train = result.rounds.filter((r) => r.kind === 'train');
  return {
    table,
    federated: result.final_accuracy,
    central: result.central_accuracy,
    seconds_per_round: train.reduce((a, r) => a + r.seconds, 0) / Math.max(1, train.length),
    lineage_verified: result.lineage_verified,
  };
}
const tables: TableRow[] = [];
for (const table of TABLES) tables.push(await tabular(table));

// --- summary --------------------------------------------------------------------------------------------------------
const pct = (x: number | null) => (x === null ? '—' : `${(x * 100).toFixed(2)} %`);
const final = (s: string) => results[s]?.at(-1)?.accuracy ?? Number.NaN;
const maxGap = (a: string, b: string) =>
  results[a] && results[b]
    ? Math.max(...results[a]!.map((r, i) => Math.abs(r.accuracy - results[b]![i]!.accuracy))) * 100
    : Number.NaN;
const fedRows = SETTINGS.flatMap((s) => results[s]!);
const trainS = fedRows.reduce((a, r) => a + r.train_s, 0);
const otherS = fedRows.reduce((a, r) => a + r.other_s, 0);
const samplesPerSPerCore = (data.train.count * EPOCHS * fedRows.length) / trainS / threads;

if (SETTINGS.length > 0) {
  console.log(`\n| setting | accuracy after ${ROUNDS} rounds | vs central | train s/round | other s/round |`);
  console.log('|---|---|---|---|---|');
  for (const s of [...SETTINGS, 'central']) {
    const rows = results[s]!;
    const tr = rows.reduce((a, r) => a + r.train_s, 0) / rows.length;
    const ot = rows.reduce((a, r) => a + r.other_s, 0) / rows.length;
    console.log(
      `| ${s} | ${pct(final(s))} | ${s === 'central' ? '—' : `${((final(s) - final('central')) * 100).toFixed(2)} pp`} | ${tr.toFixed(1)} | ${ot.toFixed(2)} |`,
    );
  }
  console.log(
    `\nSecAgg on vs off, largest gap at any round: IID ${maxGap('iid-secagg', 'iid-plain').toFixed(2)} pp, Dirichlet(0.5) ${maxGap('dir-secagg', 'dir-plain').toFixed(2)} pp`,
  );
  console.log(`\n| training the CNN | samples/s per core | vs PyTorch |\n|---|---|---|`);
  const vs = torchPerCore ?? TORCH_ANCHOR.samples_per_s_per_core;
  console.log(
    `| AI-LINK, ${backend} backend, ${threads} workers (this run) | ${samplesPerSPerCore.toFixed(0)} | ${(samplesPerSPerCore / vs).toFixed(2)} × |`,
  );
  if ('runs' in torch) {
    for (const r of torch.runs) {
      console.log(
        `| PyTorch ${r.torch}, ${r.threads} thread(s), ${r.samples} images (this run) | ${(r.samples_per_s / r.threads).toFixed(0)} | ${r.samples_per_s / r.threads === torchPerCore ? 'baseline' : ''} |`,
      );
    }
  } else {
    console.log(
      `| PyTorch — ${TORCH_ANCHOR.provenance} (${torch.missing}) | ${TORCH_ANCHOR.samples_per_s_per_core} (anchor) | baseline (anchor) |`,
    );
  }
  console.log(`\nnon-training share of a round ${((otherS / (trainS + otherS)) * 100).toFixed(1)} %`);
}
if (dpRuns.length > 0) {
  console.log(
    `\n| DP (IID, clip ${DP_CLIP}, δ ${DP_DELTA}) | noise multiplier | ε after ${ROUNDS} rounds | accuracy after ${ROUNDS} rounds |`,
  );
  console.log('|---|---|---|---|');
  for (const r of dpRuns)
    console.log(
      `| ${r.mode === 'none' ? 'no noise (clipped)' : r.mode === 'central' ? 'central Gaussian' : 'distributed Skellam'} | ${r.z?.toFixed(4) ?? '—'} | ${r.epsilon?.toFixed(3) ?? '∞'} | ${pct(r.rows.at(-1)?.accuracy ?? null)} |`,
    );
}
if (tables.length > 0) {
  console.log(
    `\n| table | organisations | rounds | federated (held-out rows) | central logistic regression | gap | s/round, whole stack | lineage |`,
  );
  console.log('|---|---|---|---|---|---|---|---|');
  for (const t of tables) {
    const gap =
      t.federated === null || t.central === null ? '—' : `${((t.federated - t.central) * 100).toFixed(2)} pp`;
    console.log(
      `| ${t.table} | ${TABLE_PARTICIPANTS} | ${TABLE_ROUNDS} | ${pct(t.federated)} | ${pct(t.central)} | ${gap} | ${t.seconds_per_round.toFixed(1)} | ${t.lineage_verified ? 'verified' : 'NOT verified'} |`,
    );
  }
}
console.log(
  JSON.stringify({
    bench: 'fl',
    backend,
    workers: threads,
    // The image settings' figures only when they ran (FL_SETTINGS=none runs the tables alone).
    ...(SETTINGS.length === 0
      ? {}
      : {
          model: MODEL,
          participants: N,
          rounds: ROUNDS,
          epochs: EPOCHS,
          data: data.dir,
          samples_per_s_per_core: Math.round(samplesPerSPerCore),
          pytorch:
            'runs' in torch
              ? { measured_in_this_run: true, samples_per_s_per_core: torchPerCore, runs: torch.runs }
              : { measured_in_this_run: false, ...TORCH_ANCHOR, reason: torch.missing },
          non_training_share: Number((otherS / (trainS + otherS)).toFixed(4)),
          secagg_gap_pp: {
            iid: maxGap('iid-secagg', 'iid-plain'),
            dirichlet: maxGap('dir-secagg', 'dir-plain'),
          },
          accuracy: Object.fromEntries(
            Object.entries(results).map(([s, rows]) => [s, rows.map((r) => Number(r.accuracy.toFixed(4)))]),
          ),
        }),
    tables: tables.map((t) => ({ ...t, participants: TABLE_PARTICIPANTS, rounds: TABLE_ROUNDS })),
    dp: dpRuns.map((r) => ({
      mechanism: r.mode,
      noise_multiplier: r.z,
      epsilon: r.epsilon,
      delta: DP_DELTA,
      clip: DP_CLIP,
      accuracy: r.rows.map((x) => Number(x.accuracy.toFixed(4))),
    })),
  }),
);
