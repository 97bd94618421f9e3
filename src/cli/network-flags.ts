import { resolveNetwork, type SessionConfig } from '../node/index.ts';
import { type Account, loadKeyFile } from '../shared/account.ts';
import { AilinkError } from '../shared/errors.ts';
import type { StorageProfile } from '../storage/index.ts';

/**
 * The flags every command that talks to the network takes: `--chain WS` (with `--protocol FILE`, and `--state-dir`
 * for its indexes) or `--network FILE`, and `--key FILE`.
 */
export const NETWORK_OPTIONS = {
  network: { type: 'string' },
  chain: { type: 'string' },
  protocol: { type: 'string' },
  'state-dir': { type: 'string' },
  key: { type: 'string' },
} as const;

export interface NetworkValues {
  network?: string | undefined;
  chain?: string | undefined;
  protocol?: string | undefined;
  'state-dir'?: string | undefined;
  key?: string | undefined;
}

/**
 * The session config these flags name and the account to act as: `--key`, else the operator key of network.json.
 * @throws INVALID_INPUT when --chain is given without --key; as resolveNetwork and loadKeyFile otherwise
 */
export async function networkAndKey(
  values: NetworkValues,
  profile?: StorageProfile,
): Promise<{ session: SessionConfig; account: Account }> {
  const resolved = resolveNetwork(
    {
      network: values.network,
      chain: values.chain,
      protocol: values.protocol,
      stateDir: values['state-dir'],
    },
    profile,
  );
  const keyPath = values.key ?? resolved.operatorKeyPath;
  if (keyPath === undefined)
    throw new AilinkError(
      'INVALID_INPUT',
      '--key FILE is required with --chain (create one with `ailink keys new`)',
    );
  return { session: resolved.session, account: await loadKeyFile(keyPath) };
}
