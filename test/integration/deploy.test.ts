import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createKeyFile } from '../../src/shared/account.ts';
import { systemRandom } from '../../src/shared/clock.ts';
import { createHosts, type Hosts, netnsUnavailable } from './netns.ts';

/**
 * "Deploying across organisations" (README) as a test: the chain with its miners and verifier, the coordinator, five
 * organisations and an auditor each on a host of their own (a network namespace with its own address). What crosses
 * between them is what a real deployment shares: the chain endpoint, the task id, and public keys (addresses). Each
 * organisation holds its own slice of a public table (Palmer penguins) and trains the model.json written below;
 * one organisation's process is killed after round 0 (a real dropout), and a fifth is admitted on chain only then
 * (`ailink task admit`) and joins from a later round; the auditor verifies the lineage from its own host with
 * nothing but the chain.
 */

const unavailable = netnsUnavailable();
const ORGS = ['org-1', 'org-2', 'org-3', 'org-4'];
/** Admitted after the task started. */
const LATE = 'org-5';
const work = mkdtempSync(join(tmpdir(), 'ailink-deploy-'));
let hosts: Hosts | undefined;
afterAll(async () => {
  await hosts?.remove();
});

/** Splits the shipped penguins table into one CSV per organisation (every 4th row), header kept. */
function splitPenguins(dirs: readonly string[]): string[] {
  const [header, ...rows] = readFileSync(
    new URL('../../models/data/tables/penguins.csv', import.meta.url),
    'utf8',
  )
    .trim()
    .split('\n');
  return dirs.map((dir, i) => {
    const file = join(dir, 'penguins.csv');
    writeFileSync(file, `${[header, ...rows.filter((_, r) => r % dirs.length === i)].join('\n')}\n`);
    return file;
  });
}

/** The task the organisations agreed on: their data schema, the model (a model.json beside it), SecAgg. */
function writeTask(dir: string, admitted: readonly string[]): string {
  writeFileSync(
    join(dir, 'model.json'),
    JSON.stringify({
      format: 'layers-model',
      modelTopology: {
        class_name: 'Sequential',
        config: {
          name: 'penguin-mlp',
          layers: [
            {
              class_name: 'Dense',
              config: { name: 'hidden', units: 8, activation: 'relu', batch_input_shape: [null, 11] },
            },
            { class_name: 'Dense', config: { name: 'species', units: 3, activation: 'softmax' } },
          ],
        },
      },
    }),
  );
  const numeric = (name: string) => ({ name, type: 'numeric', transform: 'standardize', missing: 'mean' });
  const task = {
    name: 'penguins across four stations',
    model: { path: 'model.json', initialSeed: 'deploy' },
    data: {
      kind: 'tabular',
      columns: [
        { name: 'species', type: 'ignore' },
        {
          name: 'island',
          type: 'categorical',
          categories: ['Biscoe', 'Dream', 'Torgersen'],
          maxCategories: 3,
          missing: 'other',
        },
        numeric('beak_length_mm'),
        numeric('beak_depth_mm'),
        numeric('flipper_length_mm'),
        numeric('body_mass_g'),
        {
          name: 'sex',
          type: 'categorical',
          categories: ['FEMALE', 'MALE'],
          maxCategories: 2,
          missing: 'other',
        },
      ],
      label: { column: 'species', classes: ['Adelie', 'Chinstrap', 'Gentoo'] },
      holdout: 0.2,
    },
    dataset: { name: 'Palmer penguins', description: 'each organisation holds a quarter of the rows' },
    training: {
      loss: 'categorical_crossentropy',
      optimizer: { name: 'adam', learningRate: 0.02 },
      metrics: ['accuracy', 'loss'],
      proximalMu: 0,
    },
    strategy: { name: 'fedavg' },
    local: { epochs: 3, batchSize: 8 },
    rounds: 3,
    // SecAgg+ in a cohort of 4 (k = t = 2) survives no dropout: the floor is the cohort. The killed organisation's
    // attempt aborts; it sits out the rest of that round, which goes on once the late one has joined.
    cohort: { size: 4, min: 4 },
    deadlines: {
      joinMs: 120_000,
      advertiseMs: 20_000,
      sharesMs: 20_000,
      trainMs: 30_000,
      consistencyMs: 20_000,
      unmaskMs: 20_000,
    },
    secagg: { enabled: true, neighbours: 4, threshold: 3, range: 1, bits: 24, maxWeight: 1000 },
    dp: null,
    admitted: [...admitted],
  };
  const file = join(dir, 'task.json');
  writeFileSync(file, JSON.stringify(task, null, 2));
  return file;
}

describe.skipIf(unavailable !== null)(
  `deploying across organisations: every role on its own host (network namespaces)${unavailable ? ` — skipped: ${unavailable}` : ''}`,
  () => {
    it('a CSV task with its own model.json: SecAgg, a killed organisation, client-side evaluation, the audit from its own host', async () => {
      const logs = join(work, 'logs');
      mkdirSync(logs);
      hosts = createHosts(
        `ail${process.pid % 10_000}`,
        ['chain', 'coordinator', ...ORGS, LATE, 'auditor'],
        logs,
      );
      const h = hosts;

      // Each party makes its own key where it runs; only the addresses are handed around.
      const keyOf = async (name: string) => {
        const dir = join(work, name);
        mkdirSync(dir, { recursive: true });
        const file = join(dir, 'key.json');
        return { dir, file, address: (await createKeyFile(file, systemRandom)).address };
      };
      const coordinator = await keyOf('coordinator');
      const auditor = await keyOf('auditor');
      const orgs = await Promise.all(ORGS.map(keyOf));
      const late = await keyOf(LATE);

      // The storage network's operator: the chain, 12 miners and the verifier on the chain's host. It funds the parties
      // it was told about and buys them storage space on chain, which is all the miners check.
      const chainHost = h.address('chain');
      const network = h.ailink('chain', 'dev', [
        'dev',
        '--host',
        chainHost,
        '--data-dir',
        join(work, 'chain'),
        ...[coordinator, auditor, ...orgs, late].flatMap((p) => ['--allow', p.address]),
      ]);
      const endpoint = await waitFor(
        () => /chain: (ws:\/\/\S+)/.exec(network.stderr())?.[1],
        180_000,
        'the chain',
      );
      expect(endpoint).toBe(`ws://${chainHost}:${new URL(endpoint).port}`);
      await waitFor(() => network.stderr().includes('network ready'), 120_000, 'the miners');

      // The coordinator: binds its own host's address, creates the task, records its endpoint with it on chain.
      const taskFile = writeTask(
        coordinator.dir,
        orgs.map((o) => o.address),
      );
      const coord = h.ailink('coordinator', 'coordinator', [
        'coordinator',
        '--chain',
        endpoint,
        '--key',
        coordinator.file,
        '--state-dir',
        coordinator.dir,
        '--listen',
        h.address('coordinator'),
        '--create-task',
        taskFile,
      ]);
      const ready = await coord.ready(180_000);
      expect(ready.url).toBe(`http://${h.address('coordinator')}:8700`);
      const task = /task (\S+) created/.exec(coord.stderr())?.[1];
      expect(task, coord.stderr()).toBeDefined();

      // The organisations: the chain endpoint, the task id, their key and their own file. Nothing else.
      const files = splitPenguins([...orgs, late].map((o) => o.dir));
      const participant = (name: string, o: { dir: string; file: string }, file: string) =>
        h.ailink(name, name, [
          'participant',
          '--chain',
          endpoint,
          '--task',
          task!,
          '--key',
          o.file,
          '--state-dir',
          o.dir,
          '--data',
          `csv:${file}`,
        ]);
      const running = orgs.map((o, i) => participant(ORGS[i]!, o, files[i]!));
      // org-4 dies for good once round 0 is anchored.
      await waitFor(() => /round 0: /.test(coord.stderr()), 400_000, 'round 0');
      process.kill(-running[3]!.child.pid!, 'SIGKILL');
      // The task's owner admits org-5 on chain from its own host; org-5 then joins and takes part from a later round.
      const admit = h.ailink('coordinator', 'admit', [
        'task',
        'admit',
        task!,
        late.address,
        '--chain',
        endpoint,
        '--key',
        coordinator.file,
        '--state-dir',
        coordinator.dir,
      ]);
      expect(await admit.exited(120_000), admit.stderr()).toBe(0);
      const lateRun = participant(LATE, late, files[4]!);
      const finished = [...running.slice(0, 3), lateRun];
      const codes = await Promise.all(finished.map((p) => p.exited(600_000)));
      expect(codes, finished.map((p) => p.stderr().slice(-2000)).join('\n---\n')).toEqual([0, 0, 0, 0]);

      // The auditor, from its own host: the chain and the miners, nothing the coordinator says.
      const audit = h.ailink('auditor', 'audit', [
        'audit',
        'verify',
        '--chain',
        endpoint,
        '--key',
        auditor.file,
        '--state-dir',
        auditor.dir,
        '--task',
        task!,
        '--json',
      ]);
      expect(await audit.exited(300_000), audit.stderr()).toBe(0);
      const report = JSON.parse(audit.stdout()) as {
        ok: boolean;
        rounds: {
          kind: string;
          cohort: string[];
          survivors: string[];
          evaluation: { examples: number } | null;
        }[];
      };
      expect(report.ok).toBe(true);
      expect(report.rounds.map((r) => r.kind)).toEqual(['train', 'train', 'train', 'evaluation']);
      // The killed organisation survived no later round; the others' held-out rows scored every round's start model.
      for (const r of report.rounds.slice(1)) expect(r.survivors).not.toContain(orgs[3]!.address);
      expect(report.rounds[0]!.cohort).not.toContain(late.address);
      expect(report.rounds.slice(1).some((r) => r.survivors.includes(late.address))).toBe(true);
      for (const r of report.rounds) expect(r.survivors.length).toBeGreaterThanOrEqual(3);
      for (const r of report.rounds) expect(r.evaluation?.examples).toBeGreaterThan(40);
    }, 1_200_000);
  },
);

async function waitFor<T>(probe: () => T | undefined | false, timeoutMs: number, what: string): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > until) throw new Error(`waited ${timeoutMs} ms for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
