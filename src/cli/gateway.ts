// `ailink gateway`: the account's objects over S3 for ordinary tools, until a signal.
import { parseArgs } from 'node:util';
import { startGatewayNode } from '../node/index.ts';
import { systemClock, systemRandom } from '../shared/clock.ts';
import { AilinkError } from '../shared/errors.ts';
import { positiveInt, untilSignal, usageError } from './args.ts';
import { parseByteCount } from './byte-count.ts';
import { NETWORK_OPTIONS, networkAndKey } from './network-flags.ts';

/** `--listen HOST:PORT` (default 127.0.0.1:8900): the address the gateway binds. */
export function parseListen(text: string | undefined): { host: string; port: number } {
  if (text === undefined) return { host: '127.0.0.1', port: 8900 };
  const m = /^(\[[0-9a-fA-F:]+\]|[^:\s]+):(\d{1,5})$/.exec(text);
  const port = m === null ? Number.NaN : Number(m[2]);
  if (m === null || port > 65_535) {
    throw new AilinkError(
      'INVALID_INPUT',
      `--listen: expected HOST:PORT (e.g. 127.0.0.1:8900), got ${JSON.stringify(text)}`,
    );
  }
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

export async function gatewayCommand(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...NETWORK_OPTIONS,
      'data-dir': { type: 'string' },
      listen: { type: 'string' },
      region: { type: 'string' },
      domain: { type: 'string' },
      'altda-put-from': { type: 'string', multiple: true },
      'altda-max-blob-mib': { type: 'string' },
      'multipart-staging-max': { type: 'string' },
      'multipart-expiry-hours': { type: 'string' },
      'multipart-uploads-max': { type: 'string' },
    },
  });
  if (!values['data-dir'])
    usageError('gateway: --data-dir DIR is required (its access key and gateway.json live there)');
  const stagingText = values['multipart-staging-max'];
  const stagingMax = stagingText === undefined ? undefined : parseByteCount(stagingText);
  if (stagingText !== undefined && stagingMax === undefined)
    usageError(
      `--multipart-staging-max: expected a byte count such as 17179869184 or 16G, got ${JSON.stringify(stagingText)}`,
    );
  const expiryHours = values['multipart-expiry-hours'];
  const uploadsMax = values['multipart-uploads-max'];
  const { session, account } = await networkAndKey(values);
  const { host, port } = parseListen(values.listen);
  const node = await startGatewayNode(
    { clock: systemClock, random: systemRandom, log: (line) => process.stderr.write(`${line}\n`) },
    {
      session,
      account,
      dataDir: values['data-dir'],
      host,
      port,
      ...(values.region === undefined ? {} : { region: values.region }),
      ...(values.domain === undefined ? {} : { domain: values.domain }),
      altda: {
        ...(values['altda-put-from'] === undefined ? {} : { putFrom: values['altda-put-from'] }),
        ...(values['altda-max-blob-mib'] === undefined
          ? {}
          : {
              maxBlobBytes: positiveInt(values['altda-max-blob-mib'], 'altda-max-blob-mib', 16) * 1024 * 1024,
            }),
        // From the environment, not argv: a token on the command line is visible to every local user (ps).
        ...(env.AILINK_ALTDA_TOKEN ? { putToken: env.AILINK_ALTDA_TOKEN } : {}),
      },
      multipart: {
        ...(stagingMax === undefined ? {} : { maxStagedBytes: stagingMax }),
        ...(uploadsMax === undefined
          ? {}
          : { maxOpenUploads: positiveInt(uploadsMax, 'multipart-uploads-max', 1000) }),
        ...(expiryHours === undefined
          ? {}
          : { expiryMs: positiveInt(expiryHours, 'multipart-expiry-hours', 168) * 3_600_000 }),
      },
    },
  );
  process.stdout.write(
    `${JSON.stringify({ event: 'ready', url: node.url, altda: node.altda, drive: node.drive, account: account.address, info: node.infoPath })}\n`,
  );
  await untilSignal();
  await node.stop();
}
