// `ailink dev`: a local network (chain, verifier, miners) until a signal.
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { startDevNetwork } from '../node/index.ts';
import { systemRandom } from '../shared/clock.ts';
import { positiveInt, untilSignal, usageError } from './args.ts';

export async function devCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      miners: { type: 'string' },
      'data-dir': { type: 'string' },
      profile: { type: 'string' },
      allow: { type: 'string', multiple: true },
      host: { type: 'string' },
    },
  });
  const count = positiveInt(values.miners, 'miners', 12);
  const profile =
    values.profile === 'test'
      ? 'test'
      : values.profile === undefined
        ? 'production'
        : usageError('--profile: production or test');
  const dataDir = values['data-dir'] ?? './ailink-data';
  console.error(`starting the dev chain, a verifier and ${count} miners in ${resolve(dataDir)} …`);
  const network = await startDevNetwork(
    { random: systemRandom },
    {
      dataDir,
      miners: count,
      profile,
      allow: values.allow ?? [],
      ...(values.host === undefined ? {} : { host: values.host }),
    },
  );
  for (const m of [...network.miners, ...(network.verifier ? [network.verifier] : [])]) {
    console.error(`  ${m.name}  pid ${m.pid}  ${m.addrs[0]}`);
  }
  console.error(
    `chain: ${network.chainEndpoint}\nnetwork ready: ${network.path}\noperator key: ${network.operatorKeyPath}\nCtrl-C stops every process.`,
  );
  await untilSignal();
  console.error('stopping …');
  await network.stop();
}
