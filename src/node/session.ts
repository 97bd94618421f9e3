import { join } from 'node:path';
import {
  type CallOutcome,
  type ChainClient,
  connectChain,
  fileOf,
  filesOfOwner,
  type Indexer,
  openIndexer,
  type ProtocolConfig,
  participantsOf,
  protocolCall,
  roundsOf,
  submitProtocol,
  submitProtocolEach,
} from '../chain/index.ts';
import { createHost, type Host } from '../p2p/index.ts';
import type { Account } from '../shared/account.ts';
import { concatBytes } from '../shared/bytes.ts';
import type { Clock, Random } from '../shared/clock.ts';
import { hasCode } from '../shared/errors.ts';
import { makePrivateDir } from '../shared/private-files.ts';
import {
  type CodecPool,
  createChainRegistry,
  createCodecPool,
  createMarketClient,
  createMinerClient,
  createStorageClient,
  type MarketClient,
  type MinerClient,
  type ObjectRegistry,
  type PutOptions,
  type StorageClient,
  type StorageProfile,
} from '../storage/index.ts';

/**
 * One account's connection to the network, built once per process role: the chain client, this account's index of
 * the chain, a libp2p host, the miner client and the storage client over them, and the marketplace client. Every
 * command and role opens exactly this (src/cli used to build it by hand in five places, whose deadlines and index
 * file names had drifted apart).
 */

const MiB = 1024 * 1024;

/** The deadlines every session uses: one place, so that no command waits longer or shorter than another. */
export const SESSION_DEADLINES = Object.freeze({
  /** One request to a miner (a fragment up to 8 MiB each way). */
  minerRequestMs: 60_000,
  /** A miner's signature on a request stays valid this long. */
  signatureTtlMs: 60_000,
  /** A fragment transfer slower than this moves its column to another miner. */
  fragmentMs: 30_000,
  /** A protocol call, from submission to its inclusion in the index. */
  chainCallMs: 60_000,
});

/**
 * The largest object a session reads whole into memory when its caller names no smaller bound: a record declaring
 * more (its owner says what it likes) is refused before a byte moves. Streams (`storage.get`) are not bounded.
 */
export const SESSION_MAX_OBJECT_BYTES = 1024 * 1024 * 1024;

/** An object as the storage client takes it: whole, or a stream with its size (so that it is coded for that size). */
export const putArgs = (
  source: Uint8Array | { readonly size: number; readonly chunks: AsyncIterable<Uint8Array> },
  options: PutOptions,
): [Uint8Array | AsyncIterable<Uint8Array>, PutOptions] =>
  source instanceof Uint8Array ? [source, options] : [source.chunks, { ...options, size: source.size }];

/** Where the network is and how this session takes part in it. */
export interface SessionConfig {
  /** The chain's WebSocket endpoint (ws:// or wss://). */
  readonly chain: string;
  /** The protocol parameters every index of this network uses. */
  readonly protocol: ProtocolConfig;
  /** Where this session keeps its index of the chain: `<stateDir>/indexes/<account>.<role>.sqlite`. */
  readonly stateDir: string;
  /** How this session stores objects (segment size, 4 + 8 fragments). */
  readonly profile: StorageProfile;
  /** libp2p: the addresses to listen on (default: an ephemeral loopback port), and those to announce instead. */
  readonly listen?: readonly string[];
  readonly announce?: readonly string[];
  /** libp2p identity (protobuf bytes); a fresh one when absent. */
  readonly peerKey?: Uint8Array;
  /**
   * How long a chain that refuses connections is waited for at start (default 15 s: a command run by hand should
   * fail fast). The long-lived roles wait ROLE_CHAIN_WAIT_MS, so that one (re)started with its chain's node, or
   * while the node restarts, does not give up (bench:chaos: a chain restart took 27 s on a loaded machine).
   */
  readonly chainWaitMs?: number;
}

/** How long a long-lived role (coordinator, participant, gateway, miner, verifier, payouts) waits for its chain. */
export const ROLE_CHAIN_WAIT_MS = 120_000;

export interface SessionDeps {
  readonly clock: Clock;
  readonly random: Random;
  /** The erasure-coding workers; the session makes (and closes) its own when absent. */
  readonly codec?: CodecPool;
}

export interface Session {
  readonly account: Account;
  readonly role: string;
  readonly chain: ChainClient;
  readonly indexer: Indexer;
  readonly host: Host;
  readonly miners: MinerClient;
  readonly registry: ObjectRegistry;
  readonly storage: StorageClient;
  readonly market: MarketClient;
  /**
   * An object's bytes, whole (decrypted when this account may read it): at most `maxBytes` (default
   * SESSION_MAX_OBJECT_BYTES), refused as OBJECT_TOO_LARGE before anything is fetched.
   */
  get(fid: string, options?: { signal?: AbortSignal; maxBytes?: number }): Promise<Uint8Array>;
  /**
   * Stores `bytes` (whole, or a stream read once) and returns the fid (encrypted for this account and `readers` unless
   * `encrypt` is false).
   */
  put(bytes: Uint8Array | AsyncIterable<Uint8Array>, options: PutOptions): Promise<string>;
  /** Submits protocol calls as this account and waits until the index has applied them. */
  submit(calls: readonly ReturnType<typeof protocolCall>[]): Promise<void>;
  /**
   * Submits protocol calls that stand on their own as one extrinsic; says, in order, whether the rules applied each
   * (a rejected one is its own answer, not an error). @throws when the extrinsic as a whole failed
   */
  submitEach(calls: readonly ReturnType<typeof protocolCall>[]): Promise<CallOutcome[]>;
  /** This account's files on chain whose name begins with `prefix` (the index synced first), with their names. */
  owned(prefix: string): Promise<{ fid: string; name: string | null }[]>;
  /**
   * Deletes this account's files for good (`fileBank.deleteFile`, one transaction; miners then collect the
   * fragments). Idempotent: a file the chain no longer records is skipped, and a call rejected because another
   * deletion got there first is no error — a sweep interrupted by a restart is simply run again.
   * @throws CHAIN_CALL_REJECTED when a file is still recorded after the call (not this account's, or retained)
   */
  deleteObjects(fids: readonly string[]): Promise<void>;
  /** Task and round records as this session's index of the chain has them (sync first for the newest). */
  readonly tasks: TaskRecords;
  close(): Promise<void>;
}

/** What the chain says about tasks, read from the session's index. */
export interface TaskRecords {
  anchored(task: string): { round: number; manifest: string; digest: string }[];
  admitted(task: string): { account: string; identityKey: string }[];
}

/**
 * Connects `account` to the network as `role` (which names its index file: two roles of one account, say an
 * organisation's participant and its auditor, keep separate indexes and never write one file from two processes).
 * @throws CHAIN_UNREACHABLE naming the endpoint when the chain does not answer in time
 */
export async function openSession(
  config: SessionConfig,
  account: Account,
  role: string,
  deps: SessionDeps,
): Promise<Session> {
  const closers: (() => Promise<void>)[] = [];
  const closeAll = async () => {
    for (const close of closers.splice(0).reverse()) await close().catch(() => {});
  };
  try {
    const codec = deps.codec ?? createCodecPool();
    if (deps.codec === undefined) closers.push(() => codec.close());
    const chain = await connectChain(config.chain, { connectTimeoutMs: config.chainWaitMs ?? 15_000 });
    closers.push(() => chain.close());
    makePrivateDir(join(config.stateDir, 'indexes'));
    const index = openIndexer(chain, {
      path: join(config.stateDir, 'indexes', `${account.address}.${role}.sqlite`),
      config: config.protocol,
    });
    closers.push(async () => index.close());
    const host = await createHost({
      ...(config.peerKey === undefined ? {} : { privateKey: config.peerKey }),
      ...(config.listen === undefined ? {} : { listen: config.listen }),
      ...(config.announce === undefined ? {} : { announce: config.announce }),
    });
    closers.push(() => host.stop());
    const miners = createMinerClient(
      { host, account, clock: deps.clock, random: deps.random },
      {
        requestTimeoutMs: SESSION_DEADLINES.minerRequestMs,
        signatureTtlMs: SESSION_DEADLINES.signatureTtlMs,
        // What a miner of any profile may send back: the production profile's fragments are the largest.
        maxFragmentSize: Math.max(8 * MiB, config.profile.segmentSize / config.profile.dataFragments),
      },
    );
    // Not closed itself: its close would close the index and the chain connection, which the closers above do.
    const registry = createChainRegistry({ chain, indexer: index, account, miners });
    await index.sync();
    const follow = await index.follow();
    closers.push(() => follow.stop());
    const storage = createStorageClient(
      { miners, registry, account, codec, clock: deps.clock, random: deps.random },
      { profile: config.profile, fragmentDeadlineMs: SESSION_DEADLINES.fragmentMs },
    );
    const market = createMarketClient({ chain, indexer: index, account, clock: deps.clock, storage });
    return {
      account,
      role,
      chain,
      indexer: index,
      host,
      miners,
      registry,
      storage,
      market,
      async get(fid, options = {}) {
        const parts: Uint8Array[] = [];
        const maxBytes = options.maxBytes ?? SESSION_MAX_OBJECT_BYTES;
        for await (const chunk of storage.get(fid, { ...options, maxBytes })) parts.push(chunk);
        return concatBytes(parts);
      },
      put: async (bytes, options) => (await storage.put(bytes, options)).fid,
      async submit(calls) {
        await submitProtocol({ chain, indexer: index }, account, [...calls], {
          deadlineMs: SESSION_DEADLINES.chainCallMs,
        });
      },
      async submitEach(calls) {
        const { outcomes } = await submitProtocolEach({ chain, indexer: index }, account, [...calls], {
          deadlineMs: SESSION_DEADLINES.chainCallMs,
        });
        return outcomes;
      },
      async owned(prefix) {
        await index.sync();
        return filesOfOwner(index.state, account.address).flatMap((fid) => {
          const name = fileOf(index.state, fid)?.name;
          return typeof name === 'string' && name.startsWith(prefix) ? [{ fid, name }] : [];
        });
      },
      async deleteObjects(fids) {
        await index.sync();
        const present = () => [...new Set(fids)].filter((fid) => fileOf(index.state, fid) !== undefined);
        const calls = present().map((fid) => protocolCall('fileBank.deleteFile', { fid }));
        if (calls.length === 0) return;
        try {
          await submitProtocol({ chain, indexer: index }, account, calls, {
            deadlineMs: SESSION_DEADLINES.chainCallMs,
          });
        } catch (err) {
          // Each call in the batch is applied on its own: what matters is whether every file is gone now.
          if (!hasCode(err, 'CHAIN_CALL_REJECTED')) throw err;
          await index.sync();
          if (present().length > 0) throw err;
        }
      },
      tasks: {
        anchored: (task) =>
          roundsOf(index.state, task).map((r) => ({
            round: r.round,
            manifest: r.manifest,
            digest: r.digest,
          })),
        admitted: (task) =>
          participantsOf(index.state, task).map((p) => ({ account: p.account, identityKey: p.identityKey })),
      },
      close: closeAll,
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
