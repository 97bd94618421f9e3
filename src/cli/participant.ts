// `ailink participant`: join a task and train on local data until its last round.
import { setMaxListeners } from 'node:events';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ROUND_OBJECT_PROFILE, secretIn, startParticipantNode, withConfigFile } from '../node/index.ts';
import { parseDataSpec } from '../participant/dataset.ts';
import { loadLocalData } from '../participant/local-data.ts';
import { createTrainingPool } from '../participant/train-pool.ts';
import { systemRandom } from '../shared/clock.ts';
import { createCodecPool } from '../storage/index.ts';
import { untilSignal, usageError } from './args.ts';
import { NETWORK_OPTIONS, networkAndKey } from './network-flags.ts';

export async function participantCommand(argv: string[]): Promise<void> {
  const { values: flags } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string' },
      ...NETWORK_OPTIONS,
      coordinator: { type: 'string' },
      'wait-coordinator': { type: 'string' },
      'wait-chain': { type: 'string' },
      task: { type: 'string' },
      data: { type: 'string' },
    },
  });
  const values = withConfigFile('participant', flags.config, flags);
  if (!values.task || !values.key || !values.data)
    usageError('participant needs --task ID --key FILE --data SPEC, and --chain WS (or --network FILE)');
  const wait = values['wait-coordinator'];
  const waitSeconds = wait === undefined ? undefined : Number(wait);
  if (waitSeconds !== undefined && !(Number.isFinite(waitSeconds) && waitSeconds >= 0))
    usageError(`--wait-coordinator: expected seconds ≥ 0, got ${JSON.stringify(wait)}`);
  const chainWait = values['wait-chain'];
  const chainWaitSeconds = chainWait === undefined ? undefined : Number(chainWait);
  if (chainWaitSeconds !== undefined && !(Number.isFinite(chainWaitSeconds) && chainWaitSeconds > 0))
    usageError(`--wait-chain: expected seconds > 0, got ${JSON.stringify(chainWait)}`);
  const network = await networkAndKey(values, ROUND_OBJECT_PROFILE);
  const { account } = network;
  // How long a chain that refuses connections (starting, restarting) is waited for; default 2 minutes.
  const session =
    chainWaitSeconds === undefined
      ? network.session
      : { ...network.session, chainWaitMs: chainWaitSeconds * 1000 };
  const dataSpec = parseDataSpec(values.data);
  // The round-signing key is bound to the account on chain at admission: it must survive restarts of this process.
  const stateDir = join(session.stateDir, 'participants', account.address);
  const identityKey = secretIn(join(stateDir, `${values.task}.identity`), systemRandom);
  const pool = createTrainingPool();
  const codec = createCodecPool();
  const node = await startParticipantNode(
    { random: systemRandom, pool, codec },
    {
      session,
      // Default: where the task's record on chain says its coordinator is reached.
      ...(values.coordinator === undefined ? {} : { coordinatorUrl: values.coordinator }),
      // How long a coordinator that does not answer (restarting, not started yet) is waited for; default 10 min.
      ...(waitSeconds === undefined ? {} : { coordinatorWaitMs: waitSeconds * 1000 }),
      account,
      identityKey,
      // Held-out rows are chosen per organisation and task, the same after a restart.
      loadData: (spec) => loadLocalData(dataSpec, spec.data, `${account.address}/${values.task}`),
      task: values.task,
      log: (line) => console.error(line),
    },
  );
  node.participant.onEvent((e) => console.error(JSON.stringify(e)));
  const controller = new AbortController();
  setMaxListeners(0, controller.signal); // every wait of the round protocol listens on it
  void untilSignal().then(() => controller.abort());
  try {
    await node.run(controller.signal);
  } finally {
    await node.stop();
    await pool.close();
    await codec.close();
  }
}
