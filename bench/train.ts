/**
 * node --import tsx bench/train.ts — local training throughput (training samples per second, minibatch 50, plain SGD)
 * for the FedAvg CNN and the MLP: on the wasm backend with one worker (one core), the cpu backend on a few samples as
 * the in-run baseline, and two wasm workers in parallel (aggregate). Every run happens on a training worker
 * (src/participant/train-pool.ts), as participants train; each measured run follows a short warm-up on the same worker
 * (XNNPACK builds its operators on first use). Data: the full Fashion-MNIST shipped in models/data.
 * Baselines outside this run: PyTorch 1.13 trains the same CNN at ≈310 samples/s on one core of this machine;
 * research/deps.md measured ≈205 on wasm with a custom-gradient training loop.
 * BENCH_QUICK=1 skips the cpu rows (the cpu backend trains the CNN at about one sample per second).
 */
import { type BuiltinModel, builtinModel, type ModelPackage, modelPackageDigest } from '../models/index.ts';
import { loadSource } from '../src/participant/dataset.ts';
import { selectExamples } from '../src/participant/examples.ts';
import { createTrainingPool } from '../src/participant/train-pool.ts';

type ModelName = BuiltinModel;

const log = (s: string) => process.stderr.write(`${s}\n`);

interface Row {
  model: ModelName;
  backend: string;
  workers: number;
  samples: number;
  seconds: number;
  samples_per_s: number;
  per_core: number;
}

const { train } = await loadSource({ kind: 'fashion-mnist' });
const slice = (from: number, n: number) =>
  selectExamples(
    train,
    Array.from({ length: n }, (_, i) => from + i),
  );

// The built-in models' packages and initial weights (built once, on a cpu worker).
const packages = {} as Record<ModelName, ModelPackage>;
const initial = {} as Record<ModelName, Float32Array>;
{
  const pool = createTrainingPool({ threads: 1, backend: 'cpu' });
  for (const name of ['cnn', 'mlp'] as const) {
    packages[name] = await builtinModel(name);
    initial[name] = (await pool.describe(packages[name], 'bench')).initial;
  }
  await pool.close();
}
const refOf = (name: ModelName) => ({
  key: modelPackageDigest(packages[name]),
  topology: packages[name].topology,
});

async function measure(
  model: ModelName,
  backend: 'wasm' | 'cpu',
  workers: number,
  samples: number,
  warmup: number,
): Promise<Row> {
  log(`${model} on ${backend}, ${workers} worker(s), ${samples} samples each …`);
  const pool = createTrainingPool({ threads: workers, backend });
  try {
    const job = (from: number, n: number) =>
      pool.train({
        model: refOf(model),
        weights: initial[model].slice(),
        data: slice(from, n),
        options: { epochs: 1, seed: 'bench' },
      });
    // Warm every worker up (one job each, at the same time, so that each lands on its own worker).
    await Promise.all(Array.from({ length: workers }, (_, w) => job(w * warmup, warmup)));
    const started = performance.now();
    const results = await Promise.all(Array.from({ length: workers }, (_, w) => job(w * samples, samples)));
    const wall = (performance.now() - started) / 1000;
    const actual = results[0]!.backend;
    if (actual !== backend) throw new Error(`asked for ${backend}, the workers run ${actual}`);
    // Per core: what each worker measured for its own training loop; aggregate: all samples over the wall time.
    const perCore = results.reduce((a, r) => a + r.samplesPerSecond, 0) / workers;
    return {
      model,
      backend,
      workers,
      samples: samples * workers,
      seconds: round(wall, 2),
      samples_per_s: rate((samples * workers) / wall),
      per_core: rate(perCore),
    };
  } finally {
    await pool.close();
  }
}

const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;
/** Three significant figures at least: the cpu backend's CNN rate is about one sample per second. */
const rate = (x: number) => round(x, x < 10 ? 2 : 1);

const rows: Row[] = [];
rows.push(await measure('cnn', 'wasm', 1, 2000, 100));
rows.push(await measure('cnn', 'wasm', 2, 2000, 100));
rows.push(await measure('mlp', 'wasm', 1, 12_000, 500));
rows.push(await measure('mlp', 'wasm', 2, 12_000, 500));
if (!process.env.BENCH_QUICK) {
  rows.push(await measure('cnn', 'cpu', 1, 100, 50));
  rows.push(await measure('mlp', 'cpu', 1, 500, 100));
}

console.log(
  '| model | backend | workers | samples | wall s | samples/s (all workers) | samples/s per core |',
);
console.log('|---|---|---|---|---|---|---|');
for (const r of rows) {
  console.log(
    `| ${r.model} | ${r.backend} | ${r.workers} | ${r.samples} | ${r.seconds} | ${r.samples_per_s} | ${r.per_core} |`,
  );
}
console.log('| cnn | PyTorch 1.13 (same machine) | 1 | | | | ≈310 |');
console.log('| cnn | wasm, custom loop (research/deps.md) | 1 | | | | ≈205 |');
console.log(JSON.stringify({ bench: 'train', rows }));
