import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { GatewayInfo } from '../../src/node/index.ts';

const execFileAsync = promisify(execFile);

/**
 * Debian's awscli (/usr/bin/aws, installed by .ci/run) configured for a gateway from its gateway.json: path-style,
 * its access key and region, parts of 5 MiB, nothing read from the user's own AWS files.
 */
export function awsCli(info: GatewayInfo, home: string) {
  const env = awsEnvironment(info, home);
  return (...args: string[]) =>
    execFileAsync(AWS_CLI, [...args, '--endpoint-url', info.url], { env, timeout: 120_000 });
}

export const AWS_CLI = '/usr/bin/aws';

/** The environment `AWS_CLI` runs in for the gateway `info` describes, its config written under `home`. */
export function awsEnvironment(info: GatewayInfo, home: string): Record<string, string> {
  mkdirSync(home, { recursive: true });
  // Parts of 5 MiB (S3's least) from 5 MiB on: multipart uploads and ranged downloads without objects of many MiB.
  writeFileSync(
    join(home, 'config'),
    '[default]\ns3 =\n    addressing_style = path\n    multipart_threshold = 5MB\n    multipart_chunksize = 5MB\n',
  );
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: home,
    AWS_CONFIG_FILE: join(home, 'config'),
    AWS_SHARED_CREDENTIALS_FILE: join(home, 'none'),
    AWS_ACCESS_KEY_ID: info.s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: info.s3.secretAccessKey,
    AWS_DEFAULT_REGION: info.s3.region,
    AWS_EC2_METADATA_DISABLED: 'true',
  };
}
