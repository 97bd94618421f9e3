// `ailink coordinator`: tasks and rounds over HTTP and libp2p until a signal.
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { encodeModelPackage } from '../../models/index.ts';
import {
  hostInUrl,
  ROUND_OBJECT_PROFILE,
  startCoordinatorNode,
  tcpMultiaddr,
  withConfigFile,
} from '../node/index.ts';
import { loadDataSpec, parseDataSpec } from '../participant/dataset.ts';
import { createTrainingPool } from '../participant/train-pool.ts';
import { systemRandom } from '../shared/clock.ts';
import { createCodecPool } from '../storage/index.ts';
import { portNumber, untilSignal } from './args.ts';
import { describeRound } from './fl.ts';
import { NETWORK_OPTIONS, networkAndKey } from './network-flags.ts';
import { readTaskFile, withModelFid } from './task-file.ts';

export async function coordinatorCommand(argv: string[]): Promise<void> {
  const { values: flags } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string' },
      ...NETWORK_OPTIONS,
      'data-dir': { type: 'string' },
      listen: { type: 'string' },
      announce: { type: 'string' },
      'http-port': { type: 'string' },
      'p2p-port': { type: 'string' },
      'test-data': { type: 'string' },
      'create-task': { type: 'string' },
    },
  });
  const values = withConfigFile('coordinator', flags.config, flags);
  // Read first: a task file that does not read is an error before anything starts.
  const taskFile =
    values['create-task'] === undefined ? undefined : await readTaskFile(values['create-task']);
  const { session, account } = await networkAndKey(values, ROUND_OBJECT_PROFILE);
  // Bound to --listen (an address of this host; default loopback), reached at --announce (default: the same).
  const bind = values.listen ?? '127.0.0.1';
  const announce = values.announce ?? bind;
  const httpPort = portNumber(values['http-port'], 8700);
  const p2pPort = portNumber(values['p2p-port'], 8701);
  // Optional: organisations score every model on their held-out rows; a test set of the coordinator's own adds a figure.
  const testData =
    values['test-data'] === undefined
      ? undefined
      : (await loadDataSpec(parseDataSpec(values['test-data']))).test;
  const pool = createTrainingPool();
  const codec = createCodecPool();
  const stopped = untilSignal();
  const node = await startCoordinatorNode(
    { random: systemRandom, pool, codec },
    {
      session: {
        ...session,
        listen: [tcpMultiaddr(bind, p2pPort)],
        ...(values.announce === undefined ? {} : { announce: [tcpMultiaddr(announce, p2pPort)] }),
      },
      dir: values['data-dir'] ?? join(session.stateDir, 'coordinator'),
      account,
      http: {
        host: bind,
        port: httpPort,
        ...(values.announce === undefined ? {} : { announce: `http://${hostInUrl(announce)}:${httpPort}` }),
      },
      ...(testData === undefined ? {} : { testData }),
      log: (line) => console.error(line),
    },
  );
  // An aborted attempt is in the coordinator's own log line (with its reason): only results are printed here.
  node.coordinator.onEvent((e) => {
    if (e.kind !== 'outcome' || e.outcome.kind === 'aborted') return;
    const o = e.outcome;
    console.error(
      o.kind === 'done'
        ? `${e.task} round ${o.row.round}: ${describeRound(o.row)}, ${o.row.survivors}/${o.row.cohort} survivors, manifest ${o.row.manifestFid}`
        : `${e.task} federated statistics from ${o.row.survivors} organisations: preprocessing ${o.row.fid}`,
    );
  });
  if (taskFile !== undefined) {
    const { input, model } = taskFile;
    const task = await node.coordinator.createTask(
      model === undefined
        ? input
        : withModelFid(input, await node.put(encodeModelPackage(model.package), model.name)),
    );
    console.error(`task ${task.id} created (spec digest ${task.digest} on chain)`);
  }
  process.stdout.write(
    `${JSON.stringify({ event: 'ready', url: node.url, peerId: node.peer.peerId, account: account.address })}\n`,
  );
  await stopped;
  await node.stop();
  await pool.close();
  await codec.close();
}
