import { createHash } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { builtinModel, encodeModelPackage } from '../../models/index.ts';
import type { AuditReport } from '../audit/index.ts';
import { FASHION_MNIST_CLASSES, loadSource, partitionIndices } from '../participant/dataset.ts';
import { selectExamples } from '../participant/examples.ts';
import { exampleData } from '../participant/local-data.ts';
import { createTrainingPool } from '../participant/train-pool.ts';
import { accountsReady, createKeyFile, loadKeyFile } from '../shared/account.ts';
import type { Random } from '../shared/clock.ts';
import { createCodecPool, type LoadedNetwork, loadNetworkFile } from '../storage/index.ts';
import type { RoundStage, TaskSpec } from '../task/index.ts';
import { openAuditor, type PulledModel } from './audit.ts';
import { startDevNetwork } from './devnet.ts';
import { describeRound, startCoordinatorNode, startParticipantNode } from './fl.ts';

const percentCell = (x: number | null) =>
  x === null ? '—'.padStart(8) : `${(x * 100).toFixed(2).padStart(7)}%`;

export interface FederatedDemoOptions {
  readonly dataDir?: string;
  readonly participants: number;
  readonly rounds: number;
  readonly model: 'cnn' | 'mlp';
  readonly alpha: number;
  readonly secagg: boolean;
  readonly epochs: number;
  /** Participant i goes silent at a stage of a round (default: the last one, at `masked` of round 1). */
  readonly drops: readonly { participant: number; round: number; stage: RoundStage }[];
  /** Data source: the full Fashion-MNIST when Debian's package is installed, else the shipped subset. */
  readonly source: 'fashion-mnist' | 'fashion-mnist-small';
  /** Restart the coordinator once when this round enters this stage (the restart test). */
  readonly restartAt?: { round: number; stage: RoundStage };
  /** Central differential privacy (spec `dp`); absent: no noise. */
  readonly dp?: TaskSpec['dp'];
  /** The task's model access terms (spec `models`); absent: public models. */
  readonly models?: TaskSpec['models'];
  /** Further accounts (SS58) the dev network funds and its miners serve: researchers, buyers. */
  readonly fundedAccounts?: readonly string[];
  readonly onEncodedUpdate?: (participant: string, round: number, words: Uint32Array) => void;
  /** Runs before the network stops, with the coordinator's view of storage and chain (tests check the result here). */
  readonly inspect?: (view: {
    task: string;
    spec: TaskSpec;
    get(fid: string): Promise<Uint8Array>;
    anchored(task: string): { round: number; manifest: string; digest: string }[];
    /** The running network, for checks from an independent connection. */
    network: LoadedNetwork;
  }) => Promise<void>;
  readonly say: (line: string) => void;
  /** A one-line progress indicator, redrawn in place (a terminal); '' clears it. */
  readonly progress?: (line: string) => void;
}

const STAGE_STEPS = ['advertise', 'shares', 'masked', 'consistency', 'unmask'];

/** `round 3/10 ▕██████░░░░▏ masked`: the round's place among its stages. */
function progressBar(round: number, rounds: number, phase: string): string {
  const step = STAGE_STEPS.indexOf(phase) + 1;
  const filled = Math.round((10 * step) / STAGE_STEPS.length);
  return `   round ${round + 1}/${rounds} ▕${'█'.repeat(filled)}${'░'.repeat(10 - filled)}▏ ${phase}`;
}

export interface FederatedDemoResult {
  task_id: string;
  model: string;
  rounds: {
    round: number;
    /** 'evaluation': the closing round in which the organisations only scored the final model. */
    kind: 'train' | 'evaluation';
    /** The round's model on the coordinator's test set; null when the task has none. */
    accuracy: number | null;
    loss: number | null;
    /** The organisations' held-out rows scoring the round's start model; null when nothing is held out. */
    held_out_accuracy: number | null;
    survivors: number;
    cohort: number;
    seconds: number;
    bytes: number;
  }[];
  /** The final model's accuracy: on the organisations' held-out rows when they hold rows out, else the test set. */
  final_accuracy: number | null;
  global_model_fid: string;
  /** model.json of the final global model in TensorFlow.js format (null when the lineage did not verify). */
  model_files: string | null;
  lineage_verified: boolean;
  /** ε spent by the task (at the spec's δ), as its last manifest states and the audit recomputed; null without DP. */
  epsilon_spent: number | null;
  data_dir: string;
  backend: string;
  seconds: number;
}

/**
 * `ailink demo`: a dev chain, 12 miners and a verifier, a coordinator, and N organisations on Dirichlet(α) slices of
 * Fashion-MNIST, all on loopback; trains the task's rounds with SecAgg and a dropout, then checks the lineage against
 * the chain. Everything stays in the data dir, so `ailink dev --data-dir` brings the network back afterwards.
 */
export async function runFederatedDemo(
  deps: { random: Random },
  options: FederatedDemoOptions,
): Promise<FederatedDemoResult> {
  const started = performance.now();
  const say = options.say;
  await accountsReady();
  const dataDir = resolve(options.dataDir ?? mkdtempSync(join(tmpdir(), 'ailink-fl-')));
  mkdirSync(join(dataDir, 'keys'), { recursive: true });
  const keyOf = async (name: string) => {
    const path = join(dataDir, 'keys', `${name}.json`);
    return existsSync(path) ? loadKeyFile(path) : createKeyFile(path, deps.random);
  };
  const coordinatorAccount = await keyOf('coordinator');
  const names = Array.from(
    { length: options.participants },
    (_, i) => `org-${String(i + 1).padStart(2, '0')}`,
  );
  const accounts = await Promise.all(names.map(keyOf));

  say(
    `1. data: ${options.source}, Dirichlet(α = ${options.alpha}) over ${options.participants} organisations`,
  );
  const data = await loadSource({ kind: options.source });
  say(`   ${data.train.count} training and ${data.test.count} test images from ${data.dir}`);

  say('2. starting the dev chain, a verifier and 12 miners on loopback');
  const network = await startDevNetwork(
    { random: deps.random },
    {
      dataDir,
      miners: 12,
      profile: 'test',
      allow: [
        coordinatorAccount.address,
        ...accounts.map((a) => a.address),
        ...(options.fundedAccounts ?? []),
      ],
    },
  );
  const loaded = loadNetworkFile(network.path);
  const pool = createTrainingPool({ threads: 2 });
  const codec = createCodecPool();
  const nodeDeps = { random: deps.random, pool, codec };
  const log = (line: string) => say(`   ${line}`);
  const coordinatorDir = join(dataDir, 'coordinator');
  let node = await startCoordinatorNode(nodeDeps, {
    network: loaded,
    dir: coordinatorDir,
    account: coordinatorAccount,
    testData: data.test,
    log,
  });
  const stops: (() => Promise<void>)[] = [];
  try {
    const backend = await pool.backend();
    say(`3. coordinator at ${node.url} (training backend: ${backend})`);
    const cohortMin = Math.max(3, options.participants - 2);
    // The owner stores the agreed model first; the task names it by fid (the coordinator reads the rest from it).
    const modelFid = await node.put(
      encodeModelPackage(await builtinModel(options.model)),
      `${options.model}.ailp`,
    );
    const task = await node.coordinator.createTask({
      name: `fashion-mnist ${options.model}`,
      model: { fid: modelFid, initialSeed: 'ailink-demo' },
      data: {
        kind: 'images',
        inputShape: [28, 28, 1],
        classes: FASHION_MNIST_CLASSES,
        holdout: 0,
      },
      dataset: { name: 'fashion-mnist', description: `Dirichlet(${options.alpha}) slices of ${data.dir}` },
      training: {
        loss: 'categorical_crossentropy',
        optimizer: { name: 'sgd', learningRate: 0.05 },
        metrics: ['accuracy', 'loss'],
        proximalMu: 0,
      },
      strategy: { name: 'fedavg' },
      local: { epochs: options.epochs, batchSize: options.model === 'mlp' ? 10 : 50 },
      rounds: options.rounds,
      cohort: { size: options.participants, min: cohortMin },
      deadlines: {
        joinMs: 60_000,
        advertiseMs: 20_000,
        sharesMs: 20_000,
        // Every organisation's training (and storing its update) shares this machine's 2 workers: allow 3× the expected
        // time, at least 30 s (measured ≈ 17 s for the MLP round 0 on 2 cores, worker warm-up included). It is also
        // what a silent organisation costs the round.
        trainMs: Math.max(
          30_000,
          Math.round((3000 * data.train.count * options.epochs) / (options.model === 'mlp' ? 15_000 : 500)),
        ),
        consistencyMs: 20_000,
        unmaskMs: 20_000,
      },
      secagg: {
        enabled: options.secagg,
        neighbours: Math.min(8, options.participants - 1 - ((options.participants - 1) % 2)),
        threshold: Math.max(2, Math.floor(Math.min(8, options.participants - 1) / 2) + 1),
        range: 1,
        bits: 24,
        // Under DP every update weighs 1: a weight range of 1 keeps the quantization grid fine.
        maxWeight: options.dp ? 1 : 65_535,
      },
      dp: options.dp ?? null,
      admitted: accounts.map((a) => a.address),
      ...(options.models === undefined ? {} : { models: options.models }),
    });
    say(`   task ${task.id} recorded on chain (spec ${task.digest.slice(0, 16)}…)`);

    const nodes = await Promise.all(
      accounts.map(async (account, i) => {
        const slice = selectExamples(
          data.train,
          partitionIndices(
            data.train.y,
            { kind: 'dirichlet', alpha: options.alpha, index: i, clients: options.participants },
            'demo',
          ),
        );
        const drop = options.drops.find((d) => d.participant === i);
        const identityKey = new Uint8Array(
          createHash('sha256').update(`identity/${dataDir}/${account.address}`).digest(),
        );
        return startParticipantNode(nodeDeps, {
          network: loaded,
          coordinatorUrl: node.url,
          account,
          identityKey,
          // Each organisation holds out the task's fraction of its own slice, chosen by its own seed.
          loadData: async (spec: TaskSpec) =>
            exampleData(slice, spec.data.holdout, `${account.address}/${task.id}`),
          log: (line: string) => log(`${account.address.slice(0, 6)} ${line}`),
          task: task.id,
          ...(drop ? { dropAt: { round: drop.round, stage: drop.stage } } : {}),
          ...(options.onEncodedUpdate
            ? {
                onEncodedUpdate: (round: number, words: Uint32Array) =>
                  options.onEncodedUpdate?.(account.address, round, words),
              }
            : {}),
        });
      }),
    );
    for (const n of nodes) stops.push(() => n.stop());
    say(
      `4. ${nodes.length} organisations joined (admissions recorded on chain); training ${options.rounds} rounds of the ${options.model}`,
    );
    say('   round  accuracy  loss    survivors  seconds  MB moved');
    const controller = new AbortController();
    setMaxListeners(0, controller.signal); // shared by every organisation's waits
    const runs = nodes.map((n) =>
      n.run(controller.signal).catch((err: Error) => log(`participant stopped: ${err.message}`)),
    );
    const watch = (c: typeof node.coordinator) =>
      c.onEvent((e) => {
        if (e.kind === 'phase' && restartAt && e.round === restartAt.round && e.phase === restartAt.stage) {
          restartAt = undefined;
          restart = true;
        }
        if (e.kind === 'attempt' || e.kind === 'phase')
          options.progress?.(
            progressBar(e.round, options.rounds, e.kind === 'phase' ? e.phase : 'advertise'),
          );
        if (e.kind === 'outcome') {
          options.progress?.('');
          if (e.outcome.kind === 'done') {
            const r = e.outcome.row;
            say(
              `   ${String(r.round).padStart(5)}  ${percentCell(r.accuracy)}  ${(r.loss?.toFixed(3) ?? '—').padStart(6)}  ${`${r.survivors}/${r.cohort}`.padStart(9)}  ${r.seconds.toFixed(1).padStart(7)}  ${(r.bytes / 1e6).toFixed(1).padStart(8)}`,
            );
          } else if (e.outcome.kind === 'aborted')
            say(`   round ${e.round} attempt ${e.attempt} aborted: ${e.outcome.reason}`);
        }
      });
    let restart = false;
    let restartAt = options.restartAt;
    watch(node.coordinator);
    for (;;) {
      const done = node.coordinator.finished(task.id);
      while (!restart) {
        const finished = await Promise.race([
          done.then(() => true),
          new Promise<boolean>((r) => setTimeout(() => r(false), 100)),
        ]);
        if (finished) break;
      }
      if (!restart) break;
      restart = false;
      say('   restarting the coordinator mid-round (killed, then started again from its SQLite state)');
      await node.stop();
      node = await startCoordinatorNode(nodeDeps, {
        network: loaded,
        dir: coordinatorDir,
        account: coordinatorAccount,
        httpPort: Number(new URL(node.url).port),
        testData: data.test,
        log,
      });
      watch(node.coordinator);
    }
    controller.abort();
    await Promise.allSettled(runs);

    const rounds = node.coordinator.rounds(task.id);
    const last = rounds.at(-1)!;
    await options.inspect?.({
      task: task.id,
      spec: task.spec,
      get: node.get,
      anchored: node.anchored,
      network: loaded,
    });
    say(`5. global model ${last.modelFid} (${describeRound(last)})`);
    // The same check a compliance officer runs, from its own chain connection and index: `ailink audit verify`.
    const auditor = await openAuditor(loaded, coordinatorAccount);
    let audit: AuditReport;
    let pulled: PulledModel | null = null;
    try {
      audit = await auditor.run(task.id, undefined, true);
      if (audit.ok)
        pulled = await auditor.pull(audit, join(dataDir, 'models', task.id, `round-${last.round}`));
    } finally {
      await auditor.close();
    }
    const broken = [...audit.findings, ...audit.rounds.flatMap((r) => r.findings)];
    say(
      `   lineage against the chain: ${audit.ok ? 'verified' : `BROKEN — ${broken.map((f) => `${f.code} at ${f.where}`).join('; ')}`} (${audit.rounds.length} manifests, block ${audit.atBlock})`,
    );
    const privacy = audit.rounds.at(-1)?.privacy ?? null;
    if (options.dp)
      say(
        `   differential privacy: ε ${privacy?.epsilonSpent?.toFixed(2) ?? '?'} spent at δ ${options.dp.delta} (budget ${options.dp.epsilonBudget}; noise multiplier ${options.dp.noiseMultiplier}, clip ${options.dp.clipNorm})`,
      );
    if (pulled !== null) say(`   TensorFlow.js model (pulled and verified): ${pulled.files} (+ weights.bin)`);
    say(`   data dir ${dataDir}: \`ailink dev --data-dir ${dataDir}\` brings the network back`);
    return {
      task_id: task.id,
      model: options.model,
      rounds: rounds.map((r) => ({
        round: r.round,
        kind: r.kind ?? 'train',
        accuracy: r.accuracy,
        loss: r.loss,
        held_out_accuracy: r.evaluation?.accuracy ?? null,
        survivors: r.survivors,
        cohort: r.cohort,
        seconds: r.seconds,
        bytes: r.bytes,
      })),
      // The final model's accuracy: the organisations' held-out rows when they hold rows out, else the test set.
      final_accuracy: last.evaluation?.accuracy ?? last.accuracy,
      global_model_fid: last.modelFid,
      model_files: pulled?.files ?? null,
      lineage_verified: audit.ok,
      epsilon_spent: privacy?.epsilonSpent ?? null,
      data_dir: dataDir,
      backend,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    await Promise.allSettled(stops.map((s) => s()));
    await node.stop().catch(() => {});
    await pool.close();
    await codec.close();
    await network.stop();
  }
}
