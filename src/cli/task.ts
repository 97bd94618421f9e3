import { parseArgs } from 'node:util';
import { encodeModelPackage } from '../../models/index.ts';
import {
  participantsOf,
  protocolCall,
  roundsOf,
  stopReasonOf,
  type TaskInfo,
  taskOf,
  tasksOf,
} from '../chain/index.ts';
import { CREATE_TASK_OP, signCoordinatorRequest } from '../coordinator/index.ts';
import { openSession, ROUND_OBJECT_PROFILE } from '../node/index.ts';
import { type Account, isAddress } from '../shared/account.ts';
import { systemClock, systemRandom } from '../shared/clock.ts';
import { AilinkError, isErrorCode } from '../shared/errors.ts';
import { NETWORK_OPTIONS, type NetworkValues, networkAndKey } from './network-flags.ts';
import { readTaskFile, withModelFid } from './task-file.ts';

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
 *   ailink task create FILE.json --coordinator URL [--json]
 *                                                the coordinator's owner has a running coordinator create a task
 *
 * Creating a task is the one that goes through the coordinator (its HTTP API): the coordinator reads the model
 * package and fills in its keys and the initial model's hash before it records the spec with its own account, so the
 * request must be signed with that account's key (`--key`, as for admit/remove/stop). `ailink coordinator
 * --create-task FILE` does the same inside the coordinator's process when it starts.
 */

const USAGE =
  'expected `ailink task list | show ID | admit ID ADDRESS… | remove ID ADDRESS… | stop ID | create FILE.json --coordinator URL`';

/** Deadlines of the steps of `task create` that wait on others. */
const CREATE_DEADLINES = Object.freeze({
  /** GET /v1/info: the coordinator answers at once if it runs. */
  infoMs: 10_000,
  /** Storing the model package (a model.json's topology and weights, a few MB at most). */
  storeMs: 300_000,
  /** POST /v1/tasks: the coordinator reads the package, derives the initial model and waits for its chain call. */
  createMs: 180_000,
});

export async function taskCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { ...NETWORK_OPTIONS, json: { type: 'boolean' }, coordinator: { type: 'string' } },
    allowPositionals: true,
  });
  const [sub, id, ...accounts] = positionals;
  // Arguments first: a usage error must not need a running network.
  if (sub === undefined || !['list', 'show', 'admit', 'remove', 'stop', 'create'].includes(sub))
    throw new AilinkError('INVALID_INPUT', `${USAGE}, got ${JSON.stringify(sub ?? '')}`);
  if (sub === 'create') {
    if (accounts.length > 0)
      throw new AilinkError(
        'INVALID_INPUT',
        `task create: expected one task FILE.json, got also ${accounts.join(' ')}`,
      );
    return createTaskOnCoordinator(id, values);
  }
  if (values.coordinator !== undefined)
    throw new AilinkError('INVALID_INPUT', `task ${sub}: --coordinator is only for task create`);
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
              `${t.id}  ${t.rounds} rounds  ${t.admitted.length} may join  ${t.stoppedAt === null ? (t.endpoint?.url ?? 'no endpoint') : `stopped at block ${t.stoppedAt}${t.stopReason === null ? '' : `: ${t.stopReason}`}`}`,
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
            `  reached at ${task.endpoint?.url ?? '(no endpoint recorded)'}${task.stoppedAt === null ? '' : `, stopped at block ${task.stoppedAt}${task.stopReason === null ? '' : `: ${task.stopReason}`}`}`,
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

/**
 * A task record as shown: fields from before `endpoint` and `stoppedAt` existed read as null; `stopReason` is why the
 * task was stopped when the stop said (its coordinator ending a round that used up its attempts), else null.
 */
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
    stopReason: stopReasonOf(t),
  };
}

/**
 * `ailink task create FILE.json --coordinator URL`: the task file is what `ailink coordinator --create-task` takes (a
 * TaskInput; `model.path` names a model.json beside it, or absolute, stored here as the task's package). Only the
 * coordinator's own account may create tasks on it, so `--key` must be that account's: checked against the
 * coordinator's GET /v1/info before anything is stored, and by the coordinator itself on the signed request.
 */
async function createTaskOnCoordinator(
  file: string | undefined,
  values: NetworkValues & { json?: boolean | undefined; coordinator?: string | undefined },
): Promise<void> {
  if (file === undefined) throw new AilinkError('INVALID_INPUT', 'task create: expected a task FILE.json');
  const base = coordinatorUrl(values.coordinator);
  const { input, model } = await readTaskFile(file);
  const { session: config, account } = await networkAndKey(values, ROUND_OBJECT_PROFILE);
  const info = await coordinatorRequest<{ peerId: string; account: string }>(
    new URL('v1/info', base),
    {},
    CREATE_DEADLINES.infoMs,
  );
  refuseUnlessOwner(info.account, account, base);
  let task = input;
  if (model !== undefined) {
    const session = await openSession(config, account, 'client', {
      clock: systemClock,
      random: systemRandom,
    });
    try {
      const fid = await session.put(encodeModelPackage(model.package), {
        name: model.name,
        encrypt: false,
        signal: AbortSignal.timeout(CREATE_DEADLINES.storeMs),
      });
      console.error(`stored the model package ${model.name} as ${fid}`);
      task = withModelFid(input, fid);
    } finally {
      await session.close();
    }
  }
  // Signed last, over the bytes sent: the signature lives minutes, and the body must not change after it.
  const body = new TextEncoder().encode(JSON.stringify(task));
  const headers = signCoordinatorRequest(
    account,
    { op: CREATE_TASK_OP, body, audience: info.peerId },
    { clock: systemClock, random: systemRandom },
  );
  const created = await coordinatorRequest<{ id: string; digest: string; spec: unknown }>(
    new URL('v1/tasks', base),
    { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body },
    CREATE_DEADLINES.createMs,
  );
  console.error(`task ${created.id} created by ${base.href} (spec digest ${created.digest} on chain)`);
  console.log(values.json ? JSON.stringify({ ...created, coordinator: base.href }, null, 2) : created.id);
}

/** `--coordinator URL` as a base for the API's paths (a path prefix, if any, kept). */
function coordinatorUrl(value: string | undefined): URL {
  if (value === undefined)
    throw new AilinkError(
      'INVALID_INPUT',
      'task create: expected --coordinator URL (the HTTP API of a running `ailink coordinator`; a task has no endpoint on chain before it exists)',
    );
  let url: URL;
  try {
    url = new URL(value.endsWith('/') ? value : `${value}/`);
  } catch {
    throw new AilinkError(
      'INVALID_INPUT',
      `--coordinator: expected an http(s) URL, got ${JSON.stringify(value)}`,
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new AilinkError(
      'INVALID_INPUT',
      `--coordinator: expected an http(s) URL, got ${JSON.stringify(value)}`,
    );
  return url;
}

/** Only the coordinator's own account may create tasks there: say so before storing anything for nothing. */
function refuseUnlessOwner(coordinatorAccount: string, account: Account, base: URL): void {
  if (coordinatorAccount !== account.address)
    throw new AilinkError(
      'AUTH_NOT_AUTHORISED',
      `the coordinator at ${base.href} creates tasks as ${coordinatorAccount}, and only that account may ask it to; --key is ${account.address}`,
    );
}

/**
 * A JSON request to the coordinator within `deadlineMs`, body included. Its refusals keep their AI-LINK code.
 * @throws COORDINATOR_UNREACHABLE when nothing answers at the URL; TIMEOUT when the answer does not come in time
 */
async function coordinatorRequest<T>(url: URL, init: RequestInit, deadlineMs: number): Promise<T> {
  const what = `${init.method ?? 'GET'} ${url.href}`;
  let status: number;
  let body: { error?: { code?: unknown; message?: unknown } } & T;
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(deadlineMs) });
    status = res.status;
    body = (await res.json().catch(() => ({}))) as typeof body;
  } catch (cause) {
    if ((cause as Error).name === 'TimeoutError')
      throw new AilinkError(
        'TIMEOUT',
        `${what}: no answer from the coordinator within ${deadlineMs} ms${init.method === 'POST' ? ' (it may still act on the request: see `ailink task list`)' : ''}`,
        { cause },
      );
    const reason = ((cause as Error).cause as Error | undefined)?.message ?? (cause as Error).message;
    throw new AilinkError(
      'COORDINATOR_UNREACHABLE',
      `${what}: cannot reach the coordinator (${reason}); is \`ailink coordinator\` running there?`,
      { cause },
    );
  }
  if (status >= 200 && status < 300) return body;
  const code = body.error?.code;
  throw new AilinkError(
    isErrorCode(code) ? code : 'INVALID_INPUT',
    `${what}: ${status} ${typeof body.error?.message === 'string' ? body.error.message : '(no error message)'}`,
  );
}
