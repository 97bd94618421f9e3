// `ailink miner`: a storage miner until a signal.
import { parseArgs } from 'node:util';
import { readProtocolConfig, startMinerNode, withConfigFile } from '../node/index.ts';
import { isAddress } from '../shared/account.ts';
import { systemClock, systemRandom } from '../shared/clock.ts';
import { jsonLog, MiB, nonNegativeInt, positiveInt, untilSignal, usageError } from './args.ts';

export async function minerCommand(argv: string[]): Promise<void> {
  const { values: flags } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string' },
      'data-dir': { type: 'string' },
      listen: { type: 'string', multiple: true },
      announce: { type: 'string', multiple: true },
      allow: { type: 'string', multiple: true },
      capacity: { type: 'string' },
      'max-fragment': { type: 'string' },
      chain: { type: 'string' },
      collateral: { type: 'string' },
      protocol: { type: 'string' },
      'idle-space': { type: 'string' },
      'collect-grace': { type: 'string' },
    },
  });
  const values = withConfigFile('miner', flags.config, flags);
  if (!values['data-dir']) usageError('miner: --data-dir DIR is required');
  const protocol = readProtocolConfig(values.protocol);
  const allow = values.allow ?? [];
  for (const a of allow)
    if (!isAddress(a)) usageError(`--allow: expected an SS58 address, got ${JSON.stringify(a)}`);
  const node = await startMinerNode(
    { clock: systemClock, random: systemRandom, log: jsonLog },
    {
      dataDir: values['data-dir'],
      listen: values.listen ?? ['/ip4/127.0.0.1/tcp/0'],
      ...(values.announce === undefined ? {} : { announce: values.announce }),
      allow,
      capacity: positiveInt(values.capacity, 'capacity', 64 * 1024 * MiB),
      maxFragmentSize: positiveInt(values['max-fragment'], 'max-fragment', 8 * MiB),
      maxSignatureTtlMs: 5 * 60_000,
      requestDeadlineMs: 120_000,
      ...(values.chain === undefined
        ? {}
        : {
            chain: {
              endpoint: values.chain,
              config: protocol,
              collateral: BigInt(
                positiveInt(values.collateral, 'collateral', Number(protocol.minCollateral)),
              ),
              idleSpace: nonNegativeInt(values['idle-space'], 'idle-space', 0),
              ...(values['collect-grace'] === undefined
                ? {}
                : { collectGraceMs: 1000 * nonNegativeInt(values['collect-grace'], 'collect-grace', 0) }),
            },
          }),
    },
  );
  process.stdout.write(
    `${JSON.stringify({ event: 'ready', peerId: node.peerId, addrs: node.addrs(), account: node.account, chain: node.registration })}\n`,
  );
  await untilSignal();
  await node.stop();
  jsonLog.info('stopped');
}
