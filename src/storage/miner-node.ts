import { existsSync, mkdirSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type ChainClient,
  connectChain,
  type Indexer,
  openIndexer,
  type ProtocolConfig,
} from '../chain/index.ts';
import { createHost, newPeerKey } from '../p2p/index.ts';
import { accountsReady, createKeyFile, loadKeyFile } from '../shared/account.ts';
import type { Clock, Random } from '../shared/clock.ts';
import { openFragmentStore } from './fragment-store.ts';
import { joinChain, minerChainActions } from './miner-chain.ts';
import { type MinerLog, startMinerService } from './miner-service.ts';
import { createRequestGuard } from './request-auth.ts';

export interface MinerNodeOptions {
  readonly dataDir: string;
  readonly listen: readonly string[];
  /** Accounts (SS58) allowed to store, read and delete. */
  readonly allow: readonly string[];
  readonly capacity: number;
  readonly maxFragmentSize: number;
  /** Longest signature lifetime accepted. */
  readonly maxSignatureTtlMs: number;
  readonly requestDeadlineMs: number;
  /** Join a chain: register in sminer (or update addresses), sign receipts, take restoral orders. */
  readonly chain?: {
    readonly endpoint: string;
    readonly config: ProtocolConfig;
    readonly collateral: bigint;
  };
}

export interface MinerNode {
  readonly peerId: string;
  /** The miner's chain account (SS58), kept in `<data-dir>/account.json`. */
  readonly account: string;
  /** What joining the chain did, when it joined one. */
  readonly registration: 'registered' | 'updated' | 'unchanged' | null;
  addrs(): string[];
  stop(): Promise<void>;
}

/**
 * A storage miner: a libp2p host whose identity is kept in the data dir (so it comes back as the same peer), a
 * fragment store on disk, and the fragment protocol guarded by fresh signatures of allowed accounts.
 */
export async function startMinerNode(
  deps: { clock: Clock; random: Random; log: MinerLog },
  options: MinerNodeOptions,
): Promise<MinerNode> {
  mkdirSync(options.dataDir, { recursive: true });
  await accountsReady();
  const keyPath = join(options.dataDir, 'peer.key');
  if (!existsSync(keyPath)) await writeFile(keyPath, await newPeerKey(), { mode: 0o600, flag: 'wx' });
  const privateKey = new Uint8Array(await readFile(keyPath));
  const accountPath = join(options.dataDir, 'account.json');
  const account = existsSync(accountPath)
    ? await loadKeyFile(accountPath)
    : await createKeyFile(accountPath, deps.random);
  const store = openFragmentStore(deps, {
    dir: options.dataDir,
    capacity: options.capacity,
    maxFragmentSize: options.maxFragmentSize,
  });
  const host = await createHost({
    privateKey,
    listen: options.listen,
    // A put body is at most one fragment; buffer that much so a fast sender is never reset.
    maxBufferSize: options.maxFragmentSize + 1024 * 1024,
  });
  const guard = createRequestGuard(
    { clock: deps.clock, nonces: store.nonces },
    { audience: host.peerId, authorised: new Set(options.allow), maxTtlMs: options.maxSignatureTtlMs },
  );
  let onChain: { chain: ChainClient; indexer: Indexer } | undefined;
  let registration: MinerNode['registration'] = null;
  try {
    if (options.chain !== undefined) {
      const chain = await connectChain(options.chain.endpoint);
      const indexer = openIndexer(chain, {
        path: join(options.dataDir, 'index.sqlite'),
        config: options.chain.config,
      });
      onChain = { chain, indexer };
      registration = await joinChain(
        { chain, indexer, account, config: options.chain.config },
        {
          peerId: host.peerId,
          addrs: host.addrs(),
          capacity: options.capacity,
          collateral: options.chain.collateral,
        },
      );
    }
    await startMinerService(
      {
        host,
        store,
        guard,
        log: deps.log,
        chain: onChain === undefined ? { account } : minerChainActions({ ...onChain, account }),
      },
      { requestDeadlineMs: options.requestDeadlineMs },
    );
  } catch (err) {
    await host.stop();
    store.close();
    onChain?.indexer.close();
    await onChain?.chain.close();
    throw err;
  }
  return {
    peerId: host.peerId,
    account: account.address,
    registration,
    addrs: () => host.addrs(),
    async stop() {
      await host.stop();
      store.close();
      onChain?.indexer.close();
      await onChain?.chain.close();
    },
  };
}
