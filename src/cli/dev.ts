// `ailink dev`: a local network (chain, verifier, miners) until a signal.
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { type GatewayNode, sessionOf, startDevNetwork, startGatewayNode } from '../node/index.ts';
import { loadKeyFile } from '../shared/account.ts';
import { systemClock, systemRandom } from '../shared/clock.ts';
import { loadNetworkFile } from '../storage/index.ts';
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
      gateway: { type: 'boolean' },
      chain: { type: 'string' },
      'collect-grace': { type: 'string' },
    },
  });
  const count = positiveInt(values.miners, 'miners', 12);
  // How long miners keep fragments no declaration places (10 minutes here by default): an upload slower than that,
  // of gigabytes on a loaded machine, loses its first fragments before it is declared.
  const collectGrace =
    values['collect-grace'] === undefined
      ? undefined
      : positiveInt(values['collect-grace'], 'collect-grace', 600);
  const profile =
    values.profile === 'test'
      ? 'test'
      : values.profile === undefined
        ? 'production'
        : usageError('--profile: production or test');
  const dataDir = values['data-dir'] ?? './ailink-data';
  console.error(
    values.chain === undefined
      ? `starting the dev chain, a verifier and ${count} miners in ${resolve(dataDir)} …`
      : `starting a verifier and ${count} miners on the chain at ${values.chain} in ${resolve(dataDir)} …`,
  );
  const network = await startDevNetwork(
    { random: systemRandom },
    {
      dataDir,
      miners: count,
      profile,
      allow: values.allow ?? [],
      ...(values.host === undefined ? {} : { host: values.host }),
      ...(values.chain === undefined ? {} : { chainEndpoint: wsEndpoint(values.chain) }),
      ...(collectGrace === undefined ? {} : { collectGraceMs: 1000 * collectGrace }),
    },
  );
  for (const m of [...network.miners, ...(network.verifier ? [network.verifier] : [])]) {
    console.error(`  ${m.name}  pid ${m.pid}  ${m.addrs[0]}`);
  }
  // --gateway: the operator's S3 gateway, in this process, on the network's host.
  let gateway: GatewayNode | undefined;
  if (values.gateway) {
    try {
      gateway = await startGatewayNode(
        { clock: systemClock, random: systemRandom, log: (line) => console.error(`gateway: ${line}`) },
        {
          session: sessionOf(loadNetworkFile(network.path)),
          account: await loadKeyFile(network.operatorKeyPath),
          dataDir: join(dataDir, 'gateway'),
          host: values.host ?? '127.0.0.1',
          port: 0,
        },
      );
    } catch (err) {
      await network.stop();
      throw err;
    }
    console.error(
      `gateway: ${gateway.url} (S3; access key and region in ${gateway.infoPath}); Alt-DA DA server at ${gateway.altda}; DeOSS at ${gateway.url}/deoss; marketplace at ${gateway.url}/market; drive page at ${gateway.drive}`,
    );
  }
  console.error(
    `chain: ${network.chainEndpoint}\nnetwork ready: ${network.path}\noperator key: ${network.operatorKeyPath}\nCtrl-C stops every process.`,
  );
  await untilSignal();
  console.error('stopping …');
  await gateway?.stop();
  await network.stop();
}

/** `--chain` names a WebSocket endpoint, as `ailink chain` prints it. */
function wsEndpoint(value: string): string {
  return /^wss?:\/\/[^/\s]+/.test(value)
    ? value
    : usageError(
        `--chain: a WebSocket endpoint such as ws://127.0.0.1:9944 (as \`ailink chain\` prints it), not ${JSON.stringify(value)}`,
      );
}
