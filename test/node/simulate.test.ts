import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import {
  organisationLabel,
  simulate,
  simulationCoordinator,
  simulationTask,
} from '../../src/node/simulate.ts';
import { seededRandom, standInTrainer } from '../../src/node/twins.ts';
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
      ['--organisations', '5', '--model', 'cnn'],
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
