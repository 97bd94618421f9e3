import { parseArgs } from 'node:util';
import { participantsOf, protocolCall, roundsOf, type TaskInfo, taskOf, tasksOf } from '../chain/index.ts';
import { openSession } from '../node/index.ts';
import { isAddress } from '../shared/account.ts';
import { systemClock, systemRandom } from '../shared/clock.ts';
import { AilinkError } from '../shared/errors.ts';
import { NETWORK_OPTIONS, networkAndKey } from './network-flags.ts';

/**
 * `ailink task`: what the chain records about tasks, and the owner's changes to them. Everything goes through the
 * chain (the owner's key signs the call; the coordinator follows the record), so none of it needs the coordinator's
 * HTTP API:
 *
 *   ailink task list [--json]                    every task: coordinator, rounds, who may join, endpoint, stopped
 *   ailink task show ID [--json]                 one task: its record, the admissions and the anchored rounds
 *   ailink task admit ID ADDRESS…                the owner lets these accounts join (from the next round on)
 *   ailink task remove ID ADDRESS…               the owner takes them off (drawn into no later cohort)
 *   ailink task stop ID                          the owner ends the task: no join, admission or round after it
 *
 * Creating a task stays `ailink coordinator --create-task FILE`: the coordinator reads the model package and fills in
 * its keys and the initial model's hash before it records the spec.
 */

const USAGE = 'expected `ailink task list | show ID | admit ID ADDRESS… | remove ID ADDRESS… | stop ID`';

export async function taskCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { ...NETWORK_OPTIONS, json: { type: 'boolean' } },
    allowPositionals: true,
  });
  const [sub, id, ...accounts] = positionals;
  // Arguments first: a usage error must not need a running network.
  if (sub === undefined || !['list', 'show', 'admit', 'remove', 'stop'].includes(sub))
    throw new AilinkError('INVALID_INPUT', `${USAGE}, got ${JSON.stringify(sub ?? '')}`);
  if (sub !== 'list' && (id === undefined || !/^[A-Za-z0-9._-]{1,64}$/.test(id)))
    throw new AilinkError(
      'INVALID_INPUT',
      `task ${sub}: expected a task id, got ${JSON.stringify(id ?? '')}`,
    );
  if (sub === 'admit' || sub === 'remove') {
    if (accounts.length === 0)
      throw new AilinkError('INVALID_INPUT', `task ${sub} ${id}: expected at least one account address`);
    const bad = accounts.find((a) => !isAddress(a));
    if (bad !== undefined)
      throw new AilinkError(
        'INVALID_INPUT',
        `task ${sub}: expected SS58 addresses, got ${JSON.stringify(bad)}`,
      );
  }
  const { session: config, account } = await networkAndKey(values);
  const session = await openSession(config, account, 'client', { clock: systemClock, random: systemRandom });
  try {
    await session.indexer.sync();
    const state = session.indexer.state;
    const record = (task: string): TaskInfo => {
      const info = taskOf(state, task);
      if (info === undefined)
        throw new AilinkError(
          'TASK_NOT_FOUND',
          `the chain at ${config.chain} records no task ${task} (block ${session.indexer.height()})`,
        );
      return info;
    };
    switch (sub) {
      case 'list': {
        const tasks = tasksOf(state).map(summary);
        if (values.json) console.log(JSON.stringify(tasks, null, 2));
        else
          for (const t of tasks)
            console.log(
              `${t.id}  ${t.rounds} rounds  ${t.admitted.length} may join  ${t.stoppedAt === null ? (t.endpoint?.url ?? 'no endpoint') : `stopped at block ${t.stoppedAt}`}`,
            );
        return;
      }
      case 'show': {
        const task = {
          ...summary({ ...record(id!), id: id! }),
          admissions: participantsOf(state, id!),
          rounds: roundsOf(state, id!),
        };
        if (values.json) console.log(JSON.stringify(task, null, 2));
        else {
          console.log(
            `${task.id}: coordinator ${task.coordinator}, spec ${task.spec}, created at block ${task.createdAt}`,
          );
          console.log(
            `  reached at ${task.endpoint?.url ?? '(no endpoint recorded)'}${task.stoppedAt === null ? '' : `, stopped at block ${task.stoppedAt}`}`,
          );
          console.log(`  may join (${task.admitted.length}): ${task.admitted.join(', ')}`);
          console.log(
            `  admitted (${task.admissions.length}): ${task.admissions.map((p) => p.account).join(', ')}`,
          );
          for (const r of task.rounds)
            console.log(`  round ${r.round}: manifest ${r.manifest} (block ${r.recordedAt})`);
        }
        return;
      }
      case 'admit':
      case 'remove':
      case 'stop': {
        record(id!); // a clear TASK_NOT_FOUND rather than the chain's rejection
        const call =
          sub === 'stop'
            ? protocolCall('provenance.stopTask', { task: id! })
            : protocolCall('provenance.setAdmitted', {
                task: id!,
                add: sub === 'admit' ? accounts : [],
                remove: sub === 'remove' ? accounts : [],
              });
        await session.submit([call]);
        const after = record(id!);
        console.error(
          sub === 'stop'
            ? `task ${id} stopped at block ${after.stoppedAt}`
            : `task ${id}: ${after.admitted.length} accounts may join`,
        );
        if (values.json) console.log(JSON.stringify(summary({ ...after, id: id! })));
        return;
      }
    }
  } finally {
    await session.close();
  }
}

/** A task record as shown: fields from before `endpoint` and `stoppedAt` existed read as null. */
function summary(t: TaskInfo & { id: string }) {
  return {
    id: t.id,
    coordinator: t.coordinator,
    spec: t.spec,
    createdAt: t.createdAt,
    rounds: t.rounds,
    admitted: t.admitted,
    endpoint: t.endpoint ?? null,
    stoppedAt: t.stoppedAt ?? null,
  };
}
