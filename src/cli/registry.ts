import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { connectChain, openIndexer, parseProtocolConfig } from '../chain/index.ts';
import type { Account } from '../shared/account.ts';
import { AilinkError } from '../shared/errors.ts';
import {
  createChainRegistry,
  type LoadedNetwork,
  type MinerClient,
  type ObjectRegistry,
  openSqliteRegistry,
} from '../storage/index.ts';

/**
 * The registry a network file names: its chain (each account keeps its own index of it under `indexes/`), or the
 * local SQLite file of an offline network.
 */
export async function openRegistry(
  network: LoadedNetwork,
  account: Account,
  miners: MinerClient,
): Promise<ObjectRegistry> {
  const chainInfo = network.file.chain;
  if (chainInfo !== undefined) {
    const chain = await connectChain(chainInfo.endpoint);
    mkdirSync(join(network.dir, 'indexes'), { recursive: true });
    const indexer = openIndexer(chain, {
      path: join(network.dir, 'indexes', `${account.address}.sqlite`),
      config: parseProtocolConfig(chainInfo.protocol, `${network.dir}/network.json chain.protocol`),
    });
    return createChainRegistry({ chain, indexer, account, miners });
  }
  if (network.registryPath === undefined) {
    throw new AilinkError(
      'NETWORK_FILE_INVALID',
      'the network file names neither a chain nor a registry file',
    );
  }
  return openSqliteRegistry(network.registryPath, () => network.miners);
}
