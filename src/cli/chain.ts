// `ailink chain`: the dev chain on its own until a signal.
import { parseArgs } from 'node:util';
import { startDevChain } from '../chain/index.ts';
import { nonNegativeInt, portNumber, untilSignal } from './args.ts';

/** The dev chain on its own: one JSON ready line on stdout, then blocks until a signal, then a clean close. */
export async function chainCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      'data-dir': { type: 'string' },
      'heartbeat-ms': { type: 'string' },
    },
  });
  const port = portNumber(values.port, 9944);
  // The same slot time as `ailink dev`'s chain: without it, block-timed rules (audit deadlines, restorals) stand still.
  const heartbeatMs = nonNegativeInt(values['heartbeat-ms'], 'heartbeat-ms', 3000);
  // Listen first: a signal during the start-up still ends in a clean close rather than a killed write.
  const stopped = untilSignal();
  const devChain = await startDevChain({
    port,
    ...(values.host === undefined ? {} : { host: values.host }),
    dataDir: values['data-dir'] ?? './ailink-data/chain',
    ...(heartbeatMs === 0 ? {} : { heartbeatMs }),
  });
  process.stdout.write(
    `${JSON.stringify({ event: 'ready', endpoint: devChain.endpoint, height: devChain.startHeight, resumed: devChain.resumed })}\n`,
  );
  await stopped;
  // Waits for the block being built and its write to the data dir.
  await devChain.close();
}
