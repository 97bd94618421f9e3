// `ailink simulate`: N virtual organisations through the real round protocol and SecAgg, in one process.
import { parseArgs } from 'node:util';
import {
  SIMULATE_MAX_ORGANISATIONS,
  SIMULATE_MIN_ORGANISATIONS,
  type SimulationProgress,
  simulate,
} from '../node/simulate.ts';
import { accountsReady } from '../shared/account.ts';
import { positiveInt, usageError } from './args.ts';

/** `stand-in[:D]` → D (default 10,000): the only model a simulation trains. */
function dimensionOf(model: string | undefined): number {
  const m = /^stand-in(?::(.+))?$/.exec(model ?? 'stand-in');
  if (m === null)
    usageError(
      `--model: expected stand-in[:WEIGHTS] (the deterministic stand-in; real models train in \`ailink demo\`), got ${JSON.stringify(model)}`,
    );
  return positiveInt(m[1], 'model stand-in:WEIGHTS', 10_000);
}

/** `synthetic[:E]` → E examples per organisation (default 100): its FedAvg weight. */
function examplesOf(data: string | undefined): number {
  const m = /^synthetic(?::(.+))?$/.exec(data ?? 'synthetic');
  if (m === null)
    usageError(`--data: expected synthetic[:EXAMPLES] (per organisation), got ${JSON.stringify(data)}`);
  return positiveInt(m[1], 'data synthetic:EXAMPLES', 100);
}

/**
 * Parses `ailink simulate`'s flags.
 * @throws INVALID_INPUT (with the usage) for a missing or malformed flag, or organisations outside 3..1000
 */
export function simulateOptions(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      organisations: { type: 'string' },
      rounds: { type: 'string' },
      model: { type: 'string' },
      data: { type: 'string' },
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
  return {
    organisations,
    rounds: positiveInt(values.rounds, 'rounds', 3),
    dimension: dimensionOf(values.model),
    examples: examplesOf(values.data),
    ...(values.seed === undefined ? {} : { seed: values.seed }),
    json: values.json ?? false,
  };
}

const line = (p: SimulationProgress): string => {
  switch (p.kind) {
    case 'joined':
      return `all ${p.organisations} organisations joined`;
    case 'phase':
      return `round ${p.round} (attempt ${p.attempt}): ${p.phase}`;
    case 'round':
      return `round ${p.round} done in ${p.seconds.toFixed(1)} s (${p.cpuSeconds.toFixed(1)} CPU s), ${p.survivors} survivors, RSS ${p.rssMib.toFixed(0)} MiB`;
    case 'aborted':
      return `round ${p.round} attempt ${p.attempt} aborted: ${p.reason}`;
  }
};

export async function simulateCommand(argv: string[]): Promise<void> {
  const { json, ...options } = simulateOptions(argv);
  await accountsReady();
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  process.stderr.write(
    `simulating ${options.organisations} organisations × ${options.rounds} rounds (stand-in model of ${options.dimension} weights, ${options.examples} examples each; chain and storage are in-memory twins)\n`,
  );
  const r = await simulate({ ...options, signal: controller.signal }, (p) =>
    process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line(p)}\n`),
  );
  const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const summary = {
    organisations: r.organisations,
    rounds: r.rounds,
    dimension: r.dimension,
    join_s: Number(r.joinSeconds.toFixed(2)),
    round_s: r.roundSeconds.map((s) => Number(s.toFixed(2))),
    round_cpu_s: r.roundCpuSeconds.map((s) => Number(s.toFixed(2))),
    mean_round_s: Number(mean(r.roundSeconds).toFixed(2)),
    peak_mib: Math.round(r.peakRssMib),
    attempts: r.attempts,
    model_sha256: r.modelDigest,
  };
  if (!json) {
    const rows: [string, string][] = [
      ['organisations', String(r.organisations)],
      ['rounds', String(r.rounds)],
      ['model weights', String(r.dimension)],
      ['join (s)', r.joinSeconds.toFixed(1)],
      ...r.roundSeconds.map((s, i): [string, string] => [
        `round ${i} (s)`,
        `${s.toFixed(1)} wall, ${r.roundCpuSeconds[i]!.toFixed(1)} CPU, ${r.survivors[i]} survivors`,
      ]),
      ['mean round (s)', mean(r.roundSeconds).toFixed(1)],
      ['peak RSS (MiB)', r.peakRssMib.toFixed(0)],
      ['attempts', String(r.attempts)],
      ['final model sha256', r.modelDigest],
    ];
    const w = Math.max(...rows.map(([k]) => k.length));
    for (const [k, v] of rows) console.log(`${k.padEnd(w)}  ${v}`);
  }
  console.log(JSON.stringify(summary));
}
