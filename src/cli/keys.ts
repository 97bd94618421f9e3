// `ailink keys`: create an account's key file.
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createKeyFile } from '../shared/account.ts';
import { systemRandom } from '../shared/clock.ts';
import { usageError } from './args.ts';

export async function keysCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { out: { type: 'string' } },
    allowPositionals: true,
  });
  if (positionals[0] !== 'new' || !values.out) usageError('expected `ailink keys new --out FILE`');
  const account = await createKeyFile(values.out, systemRandom);
  console.log(
    JSON.stringify(
      { file: resolve(values.out), address: account.address, readerKey: account.readerKey },
      null,
      2,
    ),
  );
}
