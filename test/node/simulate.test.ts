import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { loadDemoData } from '../../src/cli/demo-data.ts';
import {
  organisationLabel,
  type SimulationData,
  simulate,
  simulationCoordinator,
  simulationTask,
} from '../../src/node/simulate.ts';
import { seededRandom, standInTrainer } from '../../src/node/twins.ts';
import { TABLES_DIR } from '../../src/participant/dataset.ts';
import { createTrainingPool, type TrainingPool } from '../../src/participant/train-pool.ts';
import { accountsReady } from '../../src/shared/account.ts';
import { hasCode } from '../../src/shared/errors.ts';
import { decodeModelBytes } from '../../src/task/index.ts';
import { DIMENSION, makeParticipant, makeWorld, manifestsOf, startAll } from '../coordinator/harness.ts';

await accountsReady();

const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(stops.splice(0).map((s) => s()));
});

/**
 * The same organisations and seeds through the coordinator tests' harness (its own wiring of the coordinator and
 * participants over the twins): the global model after `rounds`.
 */
async function harnessModel(seed: string, organisations: number, rounds: number, examples: number) {
  const coordinator = simulationCoordinator(seed);
  const world = makeWorld(undefined, {}, { account: coordinator.account, server: coordinator.server });
  const labels = Array.from({ length: organisations }, (_, i) => organisationLabel(i));
  const accounts = labels.map((l) => makeParticipant(world, 'x', l).account.address);
  const task = await world.coordinator.createTask(simulationTask(accounts, rounds));
  const members = labels.map((l) =>
    makeParticipant(world, task.id, l, {
      random: seededRandom(seed, l),
      trainer: standInTrainer(examples, 20),
    }),
  );
  world.coordinator.start();
  startAll(world, members, stops);
  await world.coordinator.finished(task.id);
  const manifests = await manifestsOf(world, task.id);
  expect(manifests.map((m) => m.survivors.length)).toEqual(Array(rounds).fill(organisations));
  return {
    task: task.id,
    model: decodeModelBytes(await world.objects.get(manifests.at(-1)!.model.fid)).weights,
  };
}

describe('ailink simulate', () => {
  it('5 organisations × 2 rounds: the simulation reaches the same task and, bit for bit, the same aggregate as the harness with the same seeds; another seed another aggregate', async () => {
    const run = (seed: string) =>
      simulate({ organisations: 5, rounds: 2, seed, dimension: DIMENSION, examples: 70 });
    const [simulated, other, reference] = await Promise.all([
      run('same'),
      run('other'),
      harnessModel('same', 5, 2, 70),
    ]);
    expect(simulated.task).toBe(reference.task);
    expect(simulated.roundSeconds).toHaveLength(2);
    expect(simulated.survivors).toEqual([5, 5]);
    expect(simulated.peakRssMib).toBeGreaterThan(0);
    expect(Buffer.from(simulated.model.buffer).equals(Buffer.from(reference.model.buffer))).toBe(true);
    // Not a constant: the stochastic rounding (and the task's keys) follow the seed.
    expect(other.modelDigest).not.toBe(simulated.modelDigest);
  }, 60_000);

  it('refuses counts SecAgg or the cohort cannot take, with INVALID_INPUT', async () => {
    for (const organisations of [0, 2, 1001, 2.5, Number.NaN])
      await expect(simulate({ organisations, rounds: 1 })).rejects.toSatisfy(
        (e) => hasCode(e) && e.code === 'INVALID_INPUT',
      );
    await expect(simulate({ organisations: 3, rounds: 0 })).rejects.toSatisfy(
      (e) => hasCode(e) && e.code === 'INVALID_INPUT',
    );
  });

  it('`ailink simulate` with a zero, non-numeric or too large count, or a model it cannot train: exit 2, INVALID_INPUT and the usage', () => {
    const bin = fileURLToPath(new URL('../../bin/ailink.mjs', import.meta.url));
    for (const argv of [
      ['--organisations', '0'],
      ['--organisations', 'ten'],
      ['--organisations', '1001'],
      ['--organisations', '5', '--model', 'resnet'],
    ]) {
      const run = spawnSync(process.execPath, [bin, 'simulate', ...argv], {
        encoding: 'utf8',
        timeout: 30_000,
      });
      expect(run.status).toBe(2);
      expect(run.stderr).toContain('error INVALID_INPUT');
      expect(run.stderr).toContain('ailink simulate --organisations N');
    }
  }, 60_000);
});

describe('ailink simulate with a real model and data', () => {
  it('logistic regression on penguins, 4 organisations × 2 rounds on one training pool: the statistics round, the held-out scores rise to > 85 %, and the same seed gives the same model', async () => {
    // One worker: the organisations train one after another, and one model is ever built.
    const pool = createTrainingPool({ threads: 1, backend: 'cpu' });
    try {
      const data = await loadDemoData(pool, {
        kind: 'csv',
        file: join(TABLES_DIR, 'penguins.csv'),
        label: 'species',
      });
      const rounds: number[] = [];
      const run = () =>
        simulate({ organisations: 4, rounds: 2, seed: 'penguins', real: { data, pool } }, (p) => {
          if (p.kind === 'round') rounds.push(p.round);
        });
      const [a, b] = await Promise.all([run(), run()]);
      expect(a.modelName).toBe('logistic-regression');
      expect(a.dimension).toBe(data.model.spec.parameters);
      expect(a.model).toHaveLength(a.dimension);
      expect(a.survivors).toEqual([4, 4]);
      expect(rounds.sort()).toEqual([0, 0, 1, 1]);
      // No test set of the coordinator's: the organisations' held-out rows score each round's start model, and the
      // closing round the final one.
      expect(a.scores.map((s) => s.accuracy)).toEqual([null, null]);
      const [before, after] = a.scores.map((s) => s.heldOutAccuracy!);
      expect(after).toBeGreaterThan(before!);
      expect(a.final?.on).toBe('held-out');
      expect(a.final!.accuracy).toBeGreaterThan(0.85);
      expect(b.modelDigest).toBe(a.modelDigest);
      expect(b.final).toEqual(a.final);
    } finally {
      await pool.close();
    }
  }, 60_000);

  it('refuses more organisations than a dataset has rows for (2 each), before anything runs', async () => {
    const data = { title: 'tiny.csv', rows: 11 } as SimulationData;
    const pool = {} as TrainingPool;
    await expect(simulate({ organisations: 6, rounds: 1, real: { data, pool } })).rejects.toSatisfy(
      (e) => hasCode(e) && e.code === 'INVALID_INPUT' && /tiny\.csv has 11 rows.*at most 5/.test(e.message),
    );
  });

  it('the MLP on the Fashion-MNIST subset, 3 organisations × 1 round: the coordinator scores the global model on the test set', async () => {
    const pool = createTrainingPool({ threads: 1 });
    try {
      const data = await loadDemoData(pool, { kind: 'fashion-mnist', small: true, model: 'mlp' });
      const r = await simulate({ organisations: 3, rounds: 1, seed: 'mlp', real: { data, pool } });
      expect(r.modelName).toBe('mlp');
      expect(r.dimension).toBe(199_210);
      expect(r.scores[0]!.heldOutAccuracy).toBeNull();
      // One epoch over 6,000 images from random weights: far above chance (10 %).
      expect(r.scores[0]!.accuracy).toBeGreaterThan(0.6);
      expect(r.final).toEqual({ accuracy: r.scores[0]!.accuracy, loss: r.scores[0]!.loss, on: 'test' });
    } finally {
      await pool.close();
    }
  }, 60_000);
});
