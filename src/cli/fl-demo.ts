import { createHash } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { createWriteStream, existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { encodeModelPackage } from '../../models/index.ts';
import type { AuditReport } from '../audit/index.ts';
import type { CallRecord } from '../chain/index.ts';
import {
  ROUND_OBJECT_PROFILE,
  sessionOf,
  startCoordinatorNode,
  startDevNetwork,
  startParticipantNode,
} from '../node/index.ts';
import { createTrainingPool } from '../participant/train-pool.ts';
import { accountsReady, createKeyFile, loadKeyFile } from '../shared/account.ts';
import type { Random } from '../shared/clock.ts';
import { makePrivateDir } from '../shared/private-files.ts';
import { createCodecPool, type LoadedNetwork, loadNetworkFile } from '../storage/index.ts';
import { type RoundStage, survivableMin, type TaskSpec } from '../task/index.ts';
import { openAuditor, type PulledModel } from './audit.ts';
import { centralBaseline, type DemoSource, loadDemoData } from './demo-data.ts';
import {
  createRoundTracker,
  networkProgressLine,
  PLAIN_STAGES,
  roundProgressLine,
  SECAGG_STAGES,
  withNames,
} from './demo-output.ts';
import { describeRound } from './fl.ts';

const percentCell = (x: number | null) =>
  x === null ? '—'.padStart(8) : `${(x * 100).toFixed(2).padStart(7)}%`;

export interface FederatedDemoOptions {
  readonly dataDir?: string;
  readonly participants: number;
  readonly rounds: number;
  /** What the organisations train on, and the model (demo-data.ts). */
  readonly source: DemoSource;
  /** Dirichlet(α) label skew among the organisations; null: IID slices. */
  readonly alpha: number | null;
  readonly secagg: boolean;
  /** Local epochs per round (default: what the data calls for). */
  readonly epochs?: number;
  /** Participant i goes silent at a stage of a round (default: the last one, at `masked` of round 1). */
  readonly drops: readonly { participant: number; round: number; stage: RoundStage; attempt?: number }[];
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
    /** The protocol calls the coordinator's index met, with their block and extrinsic. */
    calls(): CallRecord[];
    /** The running network, for checks from an independent connection. */
    network: LoadedNetwork;
  }) => Promise<void>;
  /** Lines that stay: steps, the round table, events (a dropout, an aborted attempt). */
  readonly say: (line: string) => void;
  /**
   * The live line (network start-up, the open round), redrawn in place on a terminal; '' clears it. `key` changes
   * when a pipe should get a new line rather than a redraw (demo-output.ts).
   */
  readonly progress?: (line: string, key?: string) => void;
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
  /** Tables: a logistic regression trained centrally on the same rows, scored on the same held-out rows. */
  central_accuracy: number | null;
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
  makePrivateDir(join(dataDir, 'keys'));
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

  const pool = createTrainingPool({ threads: 2 });
  const data = await loadDemoData(pool, options.source).catch(async (err) => {
    await pool.close();
    throw err;
  });
  const split = options.alpha === null ? 'IID slices' : `Dirichlet(α = ${options.alpha}) slices`;
  say(`1. data: ${data.title}, ${split} for ${options.participants} organisations`);
  for (const note of data.notes) say(`   ${note}`);

  // The components' own log lines (the organisations' in full) go to a file: on screen they would bury the table.
  const logPath = join(dataDir, 'demo.log');
  const logFile = createWriteStream(logPath, { flags: 'a' });
  const toFile = (who: string, line: string) => logFile.write(`${new Date().toISOString()} ${who} ${line}\n`);
  const progress = (p: { line: string; key: string }) => options.progress?.(p.line, p.key);

  say('2. starting the dev chain, a verifier and 12 miners on loopback');
  const networkStarted = performance.now();
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
      onProgress: (p) => progress(networkProgressLine(p)),
    },
  ).catch((err) => {
    logFile.end();
    throw err;
  });
  options.progress?.('');
  say(
    `   network up in ${((performance.now() - networkStarted) / 1000).toFixed(1)} s: chain ${network.chainEndpoint}, verifier, ${network.miners.length} miners registered`,
  );
  const loaded = loadNetworkFile(network.path);
  // Round objects are stored with their own profile; the audit reads with the network's.
  const roundSession = sessionOf(loaded, ROUND_OBJECT_PROFILE);
  const codec = createCodecPool();
  const nodeDeps = { random: deps.random, pool, codec };
  const named = names.map((name, i) => ({ name, address: accounts[i]!.address }));
  // The coordinator's lines are events a person wants (a dropout, an aborted attempt, a key released).
  const log = (line: string) => {
    toFile('coordinator', line);
    say(`   ${withNames(line, named)}`);
  };
  const coordinatorDir = join(dataDir, 'coordinator');
  let node = await startCoordinatorNode(nodeDeps, {
    session: roundSession,
    dir: coordinatorDir,
    account: coordinatorAccount,
    ...(data.testData === undefined ? {} : { testData: data.testData }),
    log,
  });
  const stops: (() => Promise<void>)[] = [];
  try {
    const backend = await pool.backend();
    say(`3. coordinator at ${node.url} (training backend: ${backend})`);
    const secagg = {
      enabled: options.secagg,
      neighbours: Math.min(8, options.participants - 1 - ((options.participants - 1) % 2)),
      threshold: Math.max(2, Math.floor(Math.min(8, options.participants - 1) / 2) + 1),
    };
    // Up to two dropouts planned, as far as SecAgg survives them (task creation refuses more): 10 organisations keep
    // 8, while 4 need all 4 (k = t = 2 survives none).
    const cohortMin = survivableMin({
      cohort: { size: options.participants, min: Math.max(3, options.participants - 2) },
      secagg,
    });
    // The owner stores the agreed model first; the task names it by fid (the coordinator reads the rest from it).
    const modelFid = await node.put(encodeModelPackage(data.model.pkg), `${data.model.name}.ailp`);
    const local = data.localFor(options.participants);
    const epochs = options.epochs ?? local.epochs;
    const task = await node.coordinator.createTask({
      name: `${data.title} ${data.model.name}`,
      model: { fid: modelFid, initialSeed: data.model.pkg.weights === null ? 'ailink-demo' : null },
      data: data.schema,
      dataset: { name: data.title, description: `${split} of ${data.title}, played by the demo` },
      training: data.training,
      strategy: { name: 'fedavg' },
      local: { ...local, epochs },
      rounds: options.rounds,
      cohort: { size: options.participants, min: cohortMin },
      deadlines: {
        joinMs: 60_000,
        advertiseMs: 20_000,
        sharesMs: 20_000,
        // Every organisation's training (and storing its update) shares this machine's 2 workers: allow 3× the expected
        // time, at least 30 s (measured ≈ 17 s for the MLP round 0 on 2 cores, worker warm-up included). It is also
        // what a silent organisation costs the round.
        trainMs: Math.max(30_000, Math.round((3000 * data.rows * epochs) / data.samplesPerSecond)),
        consistencyMs: 20_000,
        unmaskMs: 20_000,
      },
      secagg: {
        ...secagg,
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

    const loaders = data.organisations(options.participants, options.alpha);
    const tracker = createRoundTracker(() => performance.now());
    const nodes = await Promise.all(
      accounts.map(async (account, i) => {
        const drop = options.drops.find((d) => d.participant === i);
        const identityKey = new Uint8Array(
          createHash('sha256').update(`identity/${dataDir}/${account.address}`).digest(),
        );
        return startParticipantNode(nodeDeps, {
          session: roundSession,
          // No URL: each organisation finds the coordinator through the task's record on chain.
          account,
          identityKey,
          // Its own slice, checked against the task's schema before it joins.
          loadData: loaders[i]!,
          log: (line: string) => toFile(names[i]!, line),
          task: task.id,
          ...(drop
            ? {
                dropAt: {
                  round: drop.round,
                  stage: drop.stage,
                  ...(drop.attempt === undefined ? {} : { attempt: drop.attempt }),
                },
              }
            : {}),
          onEncodedUpdate: (round: number, words: Uint32Array) => {
            tracker.update(account.address, round, words.byteLength);
            options.onEncodedUpdate?.(account.address, round, words);
          },
        });
      }),
    );
    for (const n of nodes) stops.push(() => n.stop());
    for (const [i, n] of nodes.entries())
      n.participant.onEvent((e) => {
        if (e.kind === 'submitted') tracker.submitted(accounts[i]!.address, e.round, e.stage);
        // With the coordinator's stage lines (below), the log then shows where each round's time went.
        if (e.kind === 'trained')
          toFile(
            names[i]!,
            `round ${e.round}: trained on ${e.examples} examples in ${e.seconds.toFixed(1)} s`,
          );
        if (e.kind === 'submitted') toFile(names[i]!, `round ${e.round}: ${e.stage} answer sent`);
      });
    say(
      `4. ${nodes.length} organisations joined (admissions recorded on chain); training ${options.rounds} rounds of the ${data.model.name}`,
    );
    // Without a test set of the coordinator's, a round's figures are the organisations' own held-out rows scoring
    // the model the round started from (client-side evaluation); the closing round scores the final model.
    const heldOut = data.testData === undefined;
    say(`   round  ${heldOut ? 'held-out' : 'accuracy'}  loss    survivors  seconds  MB moved`);
    if (heldOut)
      say(
        "   (held-out: the organisations' own held-out rows scoring the model a round starts from; 'final' scores the last model)",
      );
    const controller = new AbortController();
    setMaxListeners(0, controller.signal); // shared by every organisation's waits
    const runs = nodes.map((n, i) =>
      n.run(controller.signal).catch((err: Error) => {
        toFile(names[i]!, `stopped: ${err.message}`);
        say(`   ${names[i]} stopped: ${err.message}`);
      }),
    );
    const showRound = () => {
      const open = tracker.progress();
      if (open !== undefined)
        progress(
          roundProgressLine(open, {
            rounds: options.rounds,
            stages: options.secagg ? SECAGG_STAGES : PLAIN_STAGES,
          }),
        );
    };
    const watch = (c: typeof node.coordinator) =>
      c.onEvent((e) => {
        if (e.kind === 'phase' && restartAt && e.round === restartAt.round && e.phase === restartAt.stage) {
          restartAt = undefined;
          restart = true;
        }
        // The round's timeline in the log, a line per stage: where a slow round spent its time.
        if (e.kind === 'attempt' || e.kind === 'phase')
          toFile(
            'coordinator',
            `round ${e.round} attempt ${e.attempt}: ${e.kind === 'attempt' ? `opened, cohort of ${e.cohort}` : e.phase}`,
          );
        if (e.kind === 'attempt') tracker.attempt(e.round, e.attempt, e.cohort);
        if (e.kind === 'phase') {
          tracker.phase(e.round, e.attempt, e.phase);
          for (const d of options.drops)
            if (d.round === e.round && d.stage === e.phase && (d.attempt ?? e.attempt) === e.attempt)
              say(
                `   ${names[d.participant]} goes silent at ${d.stage} of round ${d.round} (the scripted dropout)`,
              );
        }
        if (e.kind === 'attempt' || e.kind === 'phase') showRound();
        if (e.kind === 'outcome') {
          tracker.close();
          options.progress?.('');
          if (e.outcome.kind === 'done') {
            const r = e.outcome.row;
            const score = heldOut ? (r.evaluation ?? null) : r;
            say(
              `   ${(r.kind === 'evaluation' ? 'final' : String(r.round)).padStart(5)}  ${percentCell(score?.accuracy ?? null)}  ${(score?.loss?.toFixed(3) ?? '—').padStart(6)}  ${`${r.survivors}/${r.cohort}`.padStart(9)}  ${r.seconds.toFixed(1).padStart(7)}  ${(r.bytes / 1e6).toFixed(1).padStart(8)}`,
            );
          }
          // An aborted attempt: the coordinator's own log line says so, with its reason (see `log`).
        }
      });
    let restart = false;
    let restartAt = options.restartAt;
    watch(node.coordinator);
    // Answers and stored updates move the live line between the coordinator's events.
    const ticker = options.progress
      ? setInterval(() => {
          try {
            const status = node.coordinator.status(task.id);
            if (status !== null) tracker.status(status);
          } catch {
            // mid-restart: the coordinator's store is closed for a moment
          }
          showRound();
        }, 250)
      : undefined;
    stops.push(async () => clearInterval(ticker));
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
        session: roundSession,
        dir: coordinatorDir,
        account: coordinatorAccount,
        http: { port: Number(new URL(node.url).port) },
        ...(data.testData === undefined ? {} : { testData: data.testData }),
        log,
      });
      watch(node.coordinator);
    }
    controller.abort();
    await Promise.allSettled(runs);

    const rounds = node.coordinator.rounds(task.id);
    const last = rounds.at(-1)!;
    const central = await centralBaseline(pool, data, loaders, task.spec);
    if (central !== null)
      say(
        `   centrally trained logistic regression on the same rows: ${(central.accuracy * 100).toFixed(2)} % on the ${central.examples} held-out rows`,
      );
    await options.inspect?.({
      task: task.id,
      spec: task.spec,
      get: node.get,
      anchored: node.anchored,
      calls: node.calls,
      network: loaded,
    });
    say(`5. global model ${last.modelFid} (${describeRound(last)})`);
    // The same check a compliance officer runs, from its own chain connection and index: `ailink audit verify`.
    const auditor = await openAuditor(sessionOf(loaded), coordinatorAccount);
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
    say(
      `   data dir ${dataDir}: \`ailink dev --data-dir ${dataDir}\` brings the network back; logs in ${logPath}`,
    );
    return {
      task_id: task.id,
      model: data.model.name,
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
      central_accuracy: central?.accuracy ?? null,
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
    logFile.end();
  }
}
