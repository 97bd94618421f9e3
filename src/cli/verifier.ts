// `ailink verifier`: the verifier (TEE-worker role) until a signal.
import { parseArgs } from 'node:util';
import { readProtocolConfig, startVerifierNode, withConfigFile } from '../node/index.ts';
import { systemClock, systemRandom } from '../shared/clock.ts';
import { jsonLog, MiB, positiveInt, untilSignal, usageError } from './args.ts';

/** The verifier (TEE-worker role): registers in teeWorker, tags fragments and checks proofs until a signal. */
export async function verifierCommand(argv: string[]): Promise<void> {
  const { values: flags } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string' },
      'data-dir': { type: 'string' },
      listen: { type: 'string', multiple: true },
      announce: { type: 'string', multiple: true },
      chain: { type: 'string' },
      protocol: { type: 'string' },
      'max-fragment': { type: 'string' },
    },
  });
  const values = withConfigFile('verifier', flags.config, flags);
  if (!values['data-dir']) usageError('verifier: --data-dir DIR is required');
  if (!values.chain) usageError('verifier: --chain ENDPOINT is required (a verifier registers on chain)');
  const node = await startVerifierNode(
    { clock: systemClock, random: systemRandom, log: jsonLog },
    {
      dataDir: values['data-dir'],
      listen: values.listen ?? ['/ip4/127.0.0.1/tcp/0'],
      ...(values.announce === undefined ? {} : { announce: values.announce }),
      chain: { endpoint: values.chain, config: readProtocolConfig(values.protocol) },
      maxFragmentSize: positiveInt(values['max-fragment'], 'max-fragment', 8 * MiB),
      maxSignatureTtlMs: 5 * 60_000,
      requestDeadlineMs: 120_000,
    },
  );
  process.stdout.write(
    `${JSON.stringify({ event: 'ready', peerId: node.peerId, addrs: node.addrs(), account: node.account, keyId: node.keyId, chain: node.registration })}\n`,
  );
  await untilSignal();
  await node.stop();
  jsonLog.info('stopped');
}
