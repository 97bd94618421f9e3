import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  type ChainClient,
  connectChain,
  type Indexer,
  mayStore,
  openIndexer,
  type ProtocolConfig,
} from '../chain/index.ts';
import { createHost, signWithPeerKey } from '../p2p/index.ts';
import { accountsReady, createKeyFile, loadKeyFile } from '../shared/account.ts';
import type { Clock, Random } from '../shared/clock.ts';
import { hasCode } from '../shared/errors.ts';
import { makePrivateDir } from '../shared/private-files.ts';
import {
  type AuditAgent,
  createMinerClient,
  createRequestGuard,
  joinChain,
  type MinerLog,
  minerChainActions,
  openFragmentStore,
  type RequestGuard,
  startAuditAgent,
  startMinerService,
} from '../storage/index.ts';
import { peerKeyIn } from './keys.ts';
import { ROLE_CHAIN_WAIT_MS } from './session.ts';

/**
 * The miner role's starter (`ailink miner`): its keys and data dir, a libp2p host, the chain connection and index, and
 * the storage pieces it wires together (fragment store, fragment protocol service, request guard, audit agent).
 */

export interface MinerNodeOptions {
  readonly dataDir: string;
  readonly listen: readonly string[];
  /** Multiaddrs to announce (on chain and to peers) instead of the bound ones: a public address, a NAT mapping. */
  readonly announce?: readonly string[];
  /**
   * Accounts (SS58) served whatever the chain says; on a chain, every account the chain lets store
   * (`storageHandler.buySpace`, or an `oss.authorize`d operator of such an account) is served too. Empty by default.
   */
  readonly allow?: readonly string[];
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
    /** Bytes of idle space to commit as labelled idle files (PoIS); 0 for none. */
    readonly idleSpace?: number;
    /** How often the audit agent looks for challenges, orders and untagged columns. */
    readonly auditPollMs?: number;
    /**
     * How long a fragment no file on chain places here is kept after it was stored (default 24 h): the time a client
     * has from an upload's first fragment to its declaration. Past it, the fragment is collected.
     */
    readonly collectGraceMs?: number;
  };
}

/** A day from an upload's first fragment to its declaration, by default. */
export const DEFAULT_COLLECT_GRACE_MS = 24 * 3600_000;

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
 * fragment store on disk, and the fragment protocol guarded by fresh signatures of accounts the chain lets store.
 */
export async function startMinerNode(
  deps: { clock: Clock; random: Random; log: MinerLog },
  options: MinerNodeOptions,
): Promise<MinerNode> {
  makePrivateDir(options.dataDir);
  await accountsReady();
  const keyPath = join(options.dataDir, 'peer.key');
  const privateKey = await peerKeyIn(keyPath);
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
    ...(options.announce === undefined ? {} : { announce: options.announce }),
    // A put body is at most one fragment; buffer that much so a fast sender is never reset.
    maxBufferSize: options.maxFragmentSize + 1024 * 1024,
  });
  let onChain: { chain: ChainClient; indexer: Indexer } | undefined;
  const allowed = new Set(options.allow ?? []);
  const check = createRequestGuard(
    { clock: deps.clock, nonces: store.nonces },
    {
      audience: host.peerId,
      authorised: {
        has: (account: string, op: string) =>
          // Anyone who signs may read: a plain object is public, and an encrypted one is useless without its key.
          op === 'get' ||
          op === 'has' ||
          allowed.has(account) ||
          (onChain !== undefined && mayStore(onChain.indexer.state, account)),
      },
      maxTtlMs: options.maxSignatureTtlMs,
    },
  );
  // The audit agent keeps the index about a second behind the chain; space bought since then is found by syncing
  // once more before refusing. A refusal claims no nonce, so asking again is safe.
  // At most one such sync a second: anyone can make keys and send signed requests that are refused.
  let lastRefresh = Number.NEGATIVE_INFINITY;
  const guard: RequestGuard = async (fields, auth) => {
    try {
      return check(fields, auth);
    } catch (err) {
      const now = deps.clock.now();
      if (onChain === undefined || !hasCode(err, 'AUTH_NOT_AUTHORISED') || now - lastRefresh < 1000)
        throw err;
      lastRefresh = now;
      await onChain.indexer.sync(undefined, { signal: AbortSignal.timeout(options.requestDeadlineMs) });
      return check(fields, auth);
    }
  };
  let agent: AuditAgent | undefined;
  let registration: MinerNode['registration'] = null;
  try {
    if (options.chain !== undefined) {
      const chain = await connectChain(options.chain.endpoint, { connectTimeoutMs: ROLE_CHAIN_WAIT_MS });
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
          signWithPeerKey: (message) => signWithPeerKey(privateKey, message),
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
    if (onChain !== undefined && options.chain !== undefined) {
      const miners = createMinerClient(
        { host, account, clock: deps.clock, random: deps.random },
        {
          requestTimeoutMs: options.requestDeadlineMs,
          signatureTtlMs: Math.min(60_000, options.maxSignatureTtlMs),
          maxFragmentSize: options.maxFragmentSize,
        },
      );
      agent = startAuditAgent(
        { ...onChain, account, store, host, miners, log: deps.log, clock: deps.clock, random: deps.random },
        {
          idleDir: join(options.dataDir, 'idle'),
          config: options.chain.config,
          capacity: options.capacity,
          idleSpace: options.chain.idleSpace ?? 0,
          pollMs: options.chain.auditPollMs ?? 1000,
          collect: {
            // Often enough that a short grace (a test network's) is kept to within a tenth.
            everyMs: Math.min(60_000, (options.chain.collectGraceMs ?? DEFAULT_COLLECT_GRACE_MS) / 10),
            graceMs: options.chain.collectGraceMs ?? DEFAULT_COLLECT_GRACE_MS,
            keepOwners: options.allow ?? [],
          },
          requestTimeoutMs: options.requestDeadlineMs,
          signatureTtlMs: Math.min(60_000, options.maxSignatureTtlMs),
        },
      );
    }
  } catch (err) {
    await agent?.stop();
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
      // The chain client's close first: an audit pass waiting for a chain that is gone then ends at once, rather than
      // holding the stop for the client's reconnectMs at every read.
      const chainClosed = onChain?.chain.close();
      await agent?.stop();
      await host.stop();
      store.close();
      onChain?.indexer.close();
      await chainClosed;
    },
  };
}
