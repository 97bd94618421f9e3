/**
 * npm run bench:large — issue 17 "Large models": does a SecAgg round of a 100M-parameter model complete, and how much
 * memory does each role take? Every role is a process of its own, started by the `ailink` CLI as a deployment starts
 * it: `ailink dev` (the chain, the verifier and 12 miner processes), `ailink coordinator --create-task`, and one
 * `ailink participant` per organisation, each on its own slice of a synthetic table (LARGE_ROWS rows of 64 features,
 * a label that two of them decide). The model: 64 inputs → Dense(H) → Dense(H) → 2, so H² + 68·H + 2 weights
 * (H = LARGE_HIDDEN, 10,000: 100,680,002 weights, a 403 MB update).
 *
 * In the same run, first, the baseline: the same round of the same organisations with H = LARGE_SMALL_HIDDEN (100:
 * 17,002 weights), so that what the large model adds to each role is the difference. For each model: every role's
 * peak RSS (VmHWM, read from /proc every half second until it exits), the round's seconds (task created → round
 * anchored), and whether the global model's round anchored at all. Prints a table, then one JSON line.
 *
 * Flags (environment): LARGE_ORGS (3), LARGE_HIDDEN (10000), LARGE_SMALL_HIDDEN (100; 0 skips the baseline),
 * LARGE_ROWS (300), LARGE_DEADLINE_S (3600 per model).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createKeyFile } from '../src/shared/account.ts';
import { systemRandom } from '../src/shared/clock.ts';
import { freePort } from './ports.ts';
import { FEATURES, parametersOf, wideTopology } from './wide-model.ts';

const flag = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const ORGS = flag('LARGE_ORGS', 3);
const HIDDEN = flag('LARGE_HIDDEN', 10_000);
const SMALL_HIDDEN = flag('LARGE_SMALL_HIDDEN', 100);
const ROWS = flag('LARGE_ROWS', 300);
const DEADLINE_S = flag('LARGE_DEADLINE_S', 3600);
const BIN = fileURLToPath(new URL('../bin/ailink.mjs', import.meta.url));

const t0 = Date.now();
const log = (s: string) =>
  process.stderr.write(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(7)} s] ${s}\n`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly stdout: () => string;
  readonly stderr: () => string;
  readonly exited: Promise<number | null>;
  /** The highest VmHWM (MiB) read so far; read until the process exits. */
  peakMiB: number;
}

const everyChild = new Set<ChildProcess>();
function killAll(): void {
  for (const child of everyChild)
    try {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
}
process.on('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.on(signal, () => {
    killAll();
    process.exit(130);
  });

/** The peak resident set (VmHWM) of PID in MiB, or undefined once it is gone. */
function highWaterMiB(pid: number): number | undefined {
  try {
    const kb = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb === undefined ? undefined : Number(kb) / 1024;
  } catch {
    return undefined;
  }
}

/** `ailink ARGS` as its own process group (a SIGKILL of the group takes `dev`'s miners with it), logged to LOGS. */
function ailink(name: string, args: readonly string[], logs: string): Proc {
  const child = spawn(process.execPath, [BIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  everyChild.add(child);
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => {
    out += s;
  });
  child.stderr!.setEncoding('utf8').on('data', (s: string) => {
    err += s;
    writeFileSync(join(logs, `${name}.log`), s, { flag: 'a' });
  });
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  const proc: Proc = { name, child, stdout: () => out, stderr: () => err, exited, peakMiB: 0 };
  const timer = setInterval(() => {
    const mib = child.pid === undefined ? undefined : highWaterMiB(child.pid);
    if (mib !== undefined) proc.peakMiB = Math.max(proc.peakMiB, mib);
  }, 500);
  void exited.then(() => {
    clearInterval(timer);
    everyChild.delete(child);
  });
  return proc;
}

async function waitFor(probe: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > until) throw new Error(`waited ${timeoutMs / 1000} s for ${what}`);
    await sleep(250);
  }
}

/** ROWS rows of FEATURES features in [−1, 1] from a fixed LCG; the label is whether f0 + f1 > 0. */
function syntheticRows(): string[] {
  let s = 1;
  const next = () => {
    s = (s * 1_103_515_245 + 12_345) % 2_147_483_648;
    return (s / 2_147_483_648) * 2 - 1;
  };
  return Array.from({ length: ROWS }, () => {
    const x = Array.from({ length: FEATURES }, next);
    return `${x[0]! + x[1]! > 0 ? 'yes' : 'no'},${x.map((v) => v.toFixed(4)).join(',')}`;
  });
}

function writeTask(dir: string, hidden: number, admitted: readonly string[]): string {
  writeFileSync(
    join(dir, 'model.json'),
    JSON.stringify({ format: 'layers-model', modelTopology: wideTopology(hidden) }),
  );
  const minutes = (m: number) => m * 60_000;
  const task = {
    name: `large model: ${parametersOf(hidden)} weights`,
    model: { path: 'model.json', initialSeed: 'bench-large' },
    data: {
      kind: 'tabular',
      columns: [
        { name: 'label', type: 'ignore' },
        ...Array.from({ length: FEATURES }, (_, i) => ({
          name: `f${i}`,
          type: 'numeric',
          transform: 'none',
          missing: 'mean',
        })),
      ],
      label: { column: 'label', classes: ['no', 'yes'] },
      holdout: 0.2,
    },
    dataset: { name: 'synthetic', description: 'bench/large-round.ts' },
    training: {
      loss: 'categorical_crossentropy',
      optimizer: { name: 'sgd', learningRate: 0.01 },
      metrics: ['accuracy', 'loss'],
      proximalMu: 0,
    },
    strategy: { name: 'fedavg' },
    local: { epochs: 1, batchSize: 32 },
    rounds: 1,
    cohort: { size: ORGS, min: ORGS },
    deadlines: {
      joinMs: minutes(10),
      advertiseMs: minutes(20),
      sharesMs: minutes(5),
      trainMs: minutes(30),
      consistencyMs: minutes(5),
      unmaskMs: minutes(20),
    },
    secagg: { enabled: true, neighbours: ORGS - 1, threshold: 2, range: 1, bits: 24, maxWeight: 1000 },
    dp: null,
    admitted: [...admitted],
  };
  const file = join(dir, 'task.json');
  writeFileSync(file, JSON.stringify(task, null, 2));
  return file;
}

interface Outcome {
  hidden: number;
  parameters: number;
  completed: boolean;
  roundSeconds: number | null;
  coordinatorPeakMiB: number;
  participantPeakMiB: number;
  minerPeakMiB: number;
  error?: string;
}

async function runRound(work: string, hidden: number): Promise<Outcome> {
  const logs = join(work, 'logs');
  mkdirSync(logs, { recursive: true });
  const keyOf = async (name: string) => {
    const dir = join(work, name);
    mkdirSync(dir, { recursive: true });
    const file = join(dir, 'key.json');
    return { name, dir, file, address: (await createKeyFile(file, systemRandom)).address };
  };
  const coordKey = await keyOf('coordinator');
  const orgs = await Promise.all(Array.from({ length: ORGS }, (_, i) => keyOf(`org-${i + 1}`)));
  const netDir = join(work, 'network');
  const dev = ailink(
    'dev',
    [
      'dev',
      '--data-dir',
      netDir,
      // A 1.2 GB recompute material takes minutes to store on 2 cores: more than the dev miners' 10-minute grace
      // for fragments no file places yet, once the machine is busy (a run aborted so, 2026-12-07).
      '--collect-grace',
      '10800',
      ...[coordKey, ...orgs].flatMap((p) => ['--allow', p.address]),
    ],
    logs,
  );
  const procs: Proc[] = [dev];
  const outcome = (completed: boolean, roundSeconds: number | null, error?: string): Outcome => ({
    hidden,
    parameters: parametersOf(hidden),
    completed,
    roundSeconds,
    coordinatorPeakMiB: procs.find((p) => p.name === 'coordinator')?.peakMiB ?? 0,
    participantPeakMiB: Math.max(0, ...procs.filter((p) => p.name.startsWith('org-')).map((p) => p.peakMiB)),
    minerPeakMiB: Math.max(0, ...minerPeaks.values()),
    ...(error === undefined ? {} : { error }),
  });
  // The miners are `dev`'s children: their pids are in network.json once the network is up.
  const minerPeaks = new Map<number, number>();
  let minerTimer: NodeJS.Timeout | undefined;
  try {
    await waitFor(
      () => dev.stderr().includes('network ready') || dev.child.exitCode !== null,
      300_000,
      'ailink dev',
    );
    if (dev.child.exitCode !== null) throw new Error(`ailink dev exited:\n${dev.stderr().slice(-2000)}`);
    const network = JSON.parse(readFileSync(join(netDir, 'network.json'), 'utf8')) as {
      chain: { endpoint: string };
      processes: { role: string; pid: number }[];
    };
    const miners = network.processes.filter((p) => p.role === 'miner').map((p) => p.pid);
    minerTimer = setInterval(() => {
      for (const pid of miners) {
        const mib = highWaterMiB(pid);
        if (mib !== undefined) minerPeaks.set(pid, Math.max(minerPeaks.get(pid) ?? 0, mib));
      }
    }, 1000);
    log(`network ready: ${network.chain.endpoint}, ${miners.length} miners`);

    const taskFile = writeTask(
      coordKey.dir,
      hidden,
      orgs.map((o) => o.address),
    );
    const coordinator = ailink(
      'coordinator',
      [
        'coordinator',
        '--chain',
        network.chain.endpoint,
        '--key',
        coordKey.file,
        '--state-dir',
        coordKey.dir,
        '--data-dir',
        join(coordKey.dir, 'state'),
        '--http-port',
        String(await freePort()),
        '--p2p-port',
        String(await freePort()),
        '--create-task',
        taskFile,
      ],
      logs,
    );
    procs.push(coordinator);
    await waitFor(
      () => coordinator.stdout().includes('"event":"ready"') || coordinator.child.exitCode !== null,
      1_200_000,
      'the coordinator ready',
    );
    const task = /task (\S+) created/.exec(coordinator.stderr())?.[1];
    if (task === undefined) throw new Error(`no task created:\n${coordinator.stderr().slice(-2000)}`);
    const created = Date.now();
    log(`task ${task} created (${parametersOf(hidden).toLocaleString('en')} weights)`);

    const [header, rows] = [
      `label,${Array.from({ length: FEATURES }, (_, i) => `f${i}`).join(',')}`,
      syntheticRows(),
    ];
    for (const [i, org] of orgs.entries()) {
      const file = join(org.dir, 'data.csv');
      writeFileSync(file, `${[header, ...rows.filter((_, r) => r % ORGS === i)].join('\n')}\n`);
      procs.push(
        ailink(
          org.name,
          [
            'participant',
            '--chain',
            network.chain.endpoint,
            '--task',
            task,
            '--key',
            org.file,
            '--state-dir',
            org.dir,
            '--data',
            `csv:${file}`,
          ],
          logs,
        ),
      );
    }
    const anchored = new RegExp(`${task} round 0: `);
    const participants = procs.filter((p) => p.name.startsWith('org-'));
    let seen = 0;
    await waitFor(
      () => {
        // Progress: the coordinator's new lines.
        const lines = coordinator.stderr().split('\n');
        for (const line of lines.slice(seen, -1))
          if (line.trim() !== '') log(`  coordinator: ${line.slice(0, 150)}`);
        seen = Math.max(seen, lines.length - 1);
        return (
          anchored.test(coordinator.stderr()) ||
          /ends: /.test(coordinator.stderr()) ||
          coordinator.child.exitCode !== null
        );
      },
      DEADLINE_S * 1000,
      'round 0 anchored',
    );
    const roundSeconds = (Date.now() - created) / 1000;
    if (!anchored.test(coordinator.stderr()))
      return outcome(false, null, coordinator.stderr().trim().split('\n').at(-1)?.slice(0, 200));
    log(`round 0 anchored after ${roundSeconds.toFixed(1)} s`);
    // The organisations leave after the last round; their peaks are final once they have.
    await Promise.race([Promise.all(participants.map((p) => p.exited)), sleep(120_000)]);
    return outcome(true, roundSeconds);
  } catch (err) {
    return outcome(false, null, (err as Error).message.slice(0, 300));
  } finally {
    if (minerTimer !== undefined) clearInterval(minerTimer);
    for (const p of procs.reverse())
      try {
        if (p.child.pid !== undefined && p.child.exitCode === null) process.kill(-p.child.pid, 'SIGKILL');
      } catch {
        // gone
      }
    await Promise.all(procs.map((p) => Promise.race([p.exited, sleep(10_000)])));
  }
}

const work = mkdtempSync(join(tmpdir(), 'ailink-large-'));
log(`work in ${work}; ${ORGS} organisations`);
const outcomes: Outcome[] = [];
for (const hidden of SMALL_HIDDEN > 0 ? [SMALL_HIDDEN, HIDDEN] : [HIDDEN]) {
  log(`round with hidden width ${hidden}: ${parametersOf(hidden).toLocaleString('en')} weights`);
  const outcome = await runRound(join(work, `h${hidden}`), hidden);
  log(outcome.completed ? 'completed' : `did not complete: ${outcome.error}`);
  outcomes.push(outcome);
}

const mib = (x: number) => x.toFixed(0).padStart(9);
process.stdout.write(
  `\n${'weights'.padStart(13)} ${'update MB'.padStart(9)} ${'completed'.padStart(9)} ${'round s'.padStart(8)} ${'coordinator MiB'.padStart(15)} ${'participant MiB'.padStart(15)} ${'miner MiB'.padStart(9)}\n`,
);
for (const o of outcomes)
  process.stdout.write(
    `${o.parameters.toLocaleString('en').padStart(13)} ${((o.parameters * 4) / 1e6).toFixed(1).padStart(9)} ${String(o.completed).padStart(9)} ${(o.roundSeconds?.toFixed(1) ?? '—').padStart(8)} ${mib(o.coordinatorPeakMiB).padStart(15)} ${mib(o.participantPeakMiB).padStart(15)} ${mib(o.minerPeakMiB)}\n`,
  );
process.stdout.write(`${JSON.stringify({ organisations: ORGS, rounds: outcomes })}\n`);
process.exit(outcomes.every((o) => o.completed) ? 0 : 1);
