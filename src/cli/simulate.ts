// `ailink simulate`: N virtual organisations through the real round protocol and SecAgg, in one process.

import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  SIMULATE_MAX_ORGANISATIONS,
  SIMULATE_MIN_ORGANISATIONS,
  type SimulationProgress,
  type SimulationResult,
  simulate,
} from '../node/simulate.ts';
import { TABLES_DIR } from '../participant/dataset.ts';
import { createTrainingPool } from '../participant/train-pool.ts';
import { accountsReady } from '../shared/account.ts';
import { type DemoSource, loadDemoData } from './demo-data.ts';
import { positiveInt, usageError } from './flags.ts';

/** The shipped datasets a simulation trains real models on, and the model each takes by default. */
const REAL_DATA: Record<string, { source: (model: string) => DemoSource; models: readonly string[] }> = {
  'fashion-mnist-small': {
    source: (model) => ({ kind: 'fashion-mnist', small: true, model }),
    models: ['mlp', 'cnn'],
  },
  'fashion-mnist': {
    source: (model) => ({ kind: 'fashion-mnist', small: false, model }),
    models: ['mlp', 'cnn'],
  },
  penguins: {
    source: () => ({ kind: 'csv', file: join(TABLES_DIR, 'penguins.csv'), label: 'species' }),
    models: ['logistic'],
  },
  'seattle-weather': {
    source: () => ({ kind: 'csv', file: join(TABLES_DIR, 'seattle-weather.csv'), label: 'weather' }),
    models: ['logistic'],
  },
};
const REAL_MODELS = ['mlp', 'cnn', 'logistic'];
const MODEL_CHOICES = `stand-in[:WEIGHTS], ${REAL_MODELS.join(', ')}`;
const DATA_CHOICES = `synthetic[:EXAMPLES], ${Object.keys(REAL_DATA).join(', ')}`;

export type SimulationWorkloadFlags =
  | { readonly kind: 'stand-in'; readonly dimension: number; readonly examples: number }
  | { readonly kind: 'real'; readonly source: DemoSource; readonly model: string; readonly data: string };

/**
 * `--model` and `--data`: the stand-in (`stand-in[:WEIGHTS]`, default 10,000, on `synthetic[:EXAMPLES]`, default 100
 * per organisation), or a shipped model on a shipped dataset — mlp or cnn on Fashion-MNIST (the 6,000-image subset or
 * the full set), logistic regression on a table. Either flag alone picks the other's default.
 */
export function workloadOf(model: string | undefined, data: string | undefined): SimulationWorkloadFlags {
  const standIn = model === undefined ? null : /^stand-in(?::(.*))?$/.exec(model);
  const synthetic = data === undefined ? null : /^synthetic(?::(.*))?$/.exec(data);
  if (model !== undefined && standIn === null && !REAL_MODELS.includes(model))
    usageError(`--model: expected ${MODEL_CHOICES}, got ${JSON.stringify(model)}`);
  if (data !== undefined && synthetic === null && !Object.hasOwn(REAL_DATA, data))
    usageError(`--data: expected ${DATA_CHOICES}, got ${JSON.stringify(data)}`);
  const realModel = model !== undefined && standIn === null;
  const realData = data !== undefined && synthetic === null;
  if (!realModel && !realData) {
    return {
      kind: 'stand-in',
      dimension: positiveInt(standIn?.[1], 'model stand-in:WEIGHTS', 10_000),
      examples: positiveInt(synthetic?.[1], 'data synthetic:EXAMPLES', 100),
    };
  }
  if (standIn !== null)
    usageError(`--model stand-in trains on --data synthetic only, not ${JSON.stringify(data)}`);
  if (synthetic !== null)
    usageError(
      `--data synthetic is the stand-in's; --model ${model} trains on ${Object.keys(REAL_DATA)
        .filter((d) => REAL_DATA[d]!.models.includes(model!))
        .join(' or ')}`,
    );
  const dataName =
    data ??
    Object.keys(REAL_DATA).find((d) => REAL_DATA[d]!.models.includes(model!)) ??
    'fashion-mnist-small';
  const entry = REAL_DATA[dataName]!;
  const modelName = model ?? entry.models[0]!;
  if (!entry.models.includes(modelName))
    usageError(`--model ${modelName} does not fit --data ${dataName}: it takes ${entry.models.join(' or ')}`);
  return { kind: 'real', source: entry.source(modelName), model: modelName, data: dataName };
}

/**
 * Parses `ailink simulate`'s flags.
 * @throws INVALID_INPUT (with the usage) for a missing or malformed flag, organisations outside 3..1000, a model or
 *   dataset that is not shipped, or a model that does not fit the data
 */
export function simulateOptions(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      organisations: { type: 'string' },
      rounds: { type: 'string' },
      model: { type: 'string' },
      data: { type: 'string' },
      alpha: { type: 'string' },
      seed: { type: 'string' },
      json: { type: 'boolean' },
    },
    allowPositionals: false,
  });
  if (values.organisations === undefined) usageError('--organisations: expected a number of organisations');
  const organisations = positiveInt(values.organisations, 'organisations', 0);
  if (organisations < SIMULATE_MIN_ORGANISATIONS || organisations > SIMULATE_MAX_ORGANISATIONS)
    usageError(
      `--organisations: expected ${SIMULATE_MIN_ORGANISATIONS} to ${SIMULATE_MAX_ORGANISATIONS} (SecAgg needs 3; a task's cohort takes at most 1000), got ${organisations}`,
    );
  const workload = workloadOf(values.model, values.data);
  let alpha: number | null = null;
  if (values.alpha !== undefined) {
    alpha = Number(values.alpha);
    if (workload.kind !== 'real')
      usageError('--alpha (Dirichlet label skew) splits a real dataset: give --data or --model too');
    if (!(alpha > 0) || !Number.isFinite(alpha))
      usageError(`--alpha: expected a number > 0, got ${JSON.stringify(values.alpha)}`);
  }
  return {
    organisations,
    rounds: positiveInt(values.rounds, 'rounds', 3),
    workload,
    alpha,
    ...(values.seed === undefined ? {} : { seed: values.seed }),
    json: values.json ?? false,
  };
}

const pct = (x: number | null) => (x === null ? '—' : `${(x * 100).toFixed(2)} %`);

const line = (p: SimulationProgress): string => {
  switch (p.kind) {
    case 'joined':
      return `all ${p.organisations} organisations joined`;
    case 'phase':
      return `round ${p.round} (attempt ${p.attempt}): ${p.phase}`;
    case 'round': {
      const scores = [
        p.accuracy === null ? '' : `, test accuracy ${pct(p.accuracy)} (loss ${p.loss?.toFixed(3)})`,
        p.heldOutAccuracy === null ? '' : `, held-out accuracy of its start model ${pct(p.heldOutAccuracy)}`,
      ].join('');
      return `round ${p.round} done in ${p.seconds.toFixed(1)} s (${p.cpuSeconds.toFixed(1)} CPU s), ${p.survivors} survivors, RSS ${p.rssMib.toFixed(0)} MiB${scores}`;
    }
    case 'final':
      return `final model on the organisations' ${p.examples} held-out rows: accuracy ${pct(p.accuracy)} (loss ${p.loss.toFixed(3)})`;
    case 'aborted':
      return `round ${p.round} attempt ${p.attempt} aborted: ${p.reason}`;
  }
};

export async function simulateCommand(argv: string[]): Promise<void> {
  const { json, workload, alpha, ...options } = simulateOptions(argv);
  await accountsReady();
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  // Real training: one pool of (at most) two workers for every organisation and the coordinator's evaluation, so
  // organisations train two at a time and no more than two models are ever built.
  const pool = workload.kind === 'real' ? createTrainingPool() : null;
  try {
    const data = pool && workload.kind === 'real' ? await loadDemoData(pool, workload.source) : null;
    const what =
      workload.kind === 'stand-in'
        ? `stand-in model of ${workload.dimension} weights, ${workload.examples} examples each`
        : `${data!.model.name} (${data!.model.spec.parameters} weights) on ${workload.data}, ${alpha === null ? 'IID' : `Dirichlet(α = ${alpha})`} slices, training backend ${await pool!.backend()}`;
    process.stderr.write(
      `simulating ${options.organisations} organisations × ${options.rounds} rounds (${what}; chain and storage are in-memory twins)\n`,
    );
    const r = await simulate(
      {
        ...options,
        ...(workload.kind === 'stand-in'
          ? { dimension: workload.dimension, examples: workload.examples }
          : { real: { data: data!, pool: pool!, alpha } }),
        signal: controller.signal,
      },
      (p) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line(p)}\n`),
    );
    report(r, json);
  } finally {
    await pool?.close();
  }
}

function report(r: SimulationResult, json: boolean): void {
  const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const round4 = (x: number | null) => (x === null ? null : Number(x.toFixed(4)));
  const real = r.modelName !== 'stand-in';
  const summary = {
    organisations: r.organisations,
    rounds: r.rounds,
    model: r.modelName,
    dimension: r.dimension,
    join_s: Number(r.joinSeconds.toFixed(2)),
    round_s: r.roundSeconds.map((s) => Number(s.toFixed(2))),
    round_cpu_s: r.roundCpuSeconds.map((s) => Number(s.toFixed(2))),
    mean_round_s: Number(mean(r.roundSeconds).toFixed(2)),
    peak_mib: Math.round(r.peakRssMib),
    attempts: r.attempts,
    ...(real
      ? {
          round_accuracy: r.scores.map((s) => round4(s.accuracy)),
          round_loss: r.scores.map((s) => round4(s.loss)),
          round_held_out_accuracy: r.scores.map((s) => round4(s.heldOutAccuracy)),
          final_accuracy: round4(r.final?.accuracy ?? null),
          final_loss: round4(r.final?.loss ?? null),
          final_on: r.final?.on ?? null,
        }
      : {}),
    model_sha256: r.modelDigest,
  };
  if (!json) {
    const rows: [string, string][] = [
      ['organisations', String(r.organisations)],
      ['rounds', String(r.rounds)],
      ['model', `${r.modelName}, ${r.dimension} weights`],
      ['join (s)', r.joinSeconds.toFixed(1)],
      ...r.roundSeconds.map((s, i): [string, string] => {
        const score = r.scores[i];
        const figures = [
          score?.accuracy == null ? '' : `, test accuracy ${pct(score.accuracy)}`,
          score?.heldOutAccuracy == null ? '' : `, held-out ${pct(score.heldOutAccuracy)} (start model)`,
        ].join('');
        return [
          `round ${i} (s)`,
          `${s.toFixed(1)} wall, ${r.roundCpuSeconds[i]!.toFixed(1)} CPU, ${r.survivors[i]} survivors${figures}`,
        ];
      }),
      ['mean round (s)', mean(r.roundSeconds).toFixed(1)],
      ...(r.final === null
        ? []
        : [
            [
              `final accuracy (${r.final.on})`,
              `${pct(r.final.accuracy)} (loss ${r.final.loss.toFixed(3)})`,
            ] as [string, string],
          ]),
      ['peak RSS (MiB)', r.peakRssMib.toFixed(0)],
      ['attempts', String(r.attempts)],
      ['final model sha256', r.modelDigest],
    ];
    const w = Math.max(...rows.map(([k]) => k.length));
    for (const [k, v] of rows) console.log(`${k.padEnd(w)}  ${v}`);
  }
  console.log(JSON.stringify(summary));
}
