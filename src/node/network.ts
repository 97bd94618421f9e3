import { readFileSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { join, resolve } from 'node:path';
import {
  connectChain,
  DEV_PROTOCOL_CONFIG,
  openIndexer,
  type ProtocolConfig,
  parseProtocolConfig,
} from '../chain/index.ts';
import type { Account } from '../shared/account.ts';
import { AilinkError } from '../shared/errors.ts';
import { makePrivateDir } from '../shared/private-files.ts';
import {
  createChainRegistry,
  type LoadedNetwork,
  loadNetworkFile,
  type MinerClient,
  type ObjectRegistry,
  PRODUCTION_PROFILE,
  type StorageProfile,
  TEST_PROFILE,
} from '../storage/index.ts';
import type { SessionConfig } from './session.ts';

/**
 * Where a command finds the network: a chain endpoint alone (`--chain ws://HOST:PORT`, with the network's protocol
 * parameters from `--protocol FILE` or the dev defaults), or the `network.json` that `ailink dev` writes, a
 * convenience on the machine that runs it.
 */

const MiB = 1024 * 1024;

/**
 * Round objects (updates of 0.8–6.7 MB, models, manifests) use 1 MiB segments — 4 + 8 fragments of 256 KiB, which
 * every miner accepts — rather than the network's default: 32 MiB segments would pad an MLP update 40×, and the test
 * profile's 64 KiB segments would turn it into 13 × 12 fragment transfers. The profile is recorded per object.
 */
export const ROUND_OBJECT_PROFILE: StorageProfile = Object.freeze({
  segmentSize: MiB,
  dataFragments: 4,
  parityFragments: 8,
});

/** A libp2p TCP address for a host (IPv4, IPv6 or a DNS name) and port. */
export function tcpMultiaddr(host: string, port: number): string {
  const kind = isIPv4(host) ? 'ip4' : isIPv6(host) ? 'ip6' : 'dns';
  return `/${kind}/${host}/tcp/${port}`;
}

/** An IPv6 address goes in brackets in a URL. */
export const hostInUrl = (host: string) => (host.includes(':') ? `[${host}]` : host);

export const DEFAULT_NETWORK_FILE = './ailink-data/network.json';
export const DEFAULT_STATE_DIR = './ailink-data';

/**
 * A JSON file a flag names.
 * @throws INVALID_INPUT naming the flag and the file, and what was expected there
 */
export function readJsonFile(flag: string, path: string, expected: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (cause) {
    throw new AilinkError(
      'INVALID_INPUT',
      `${flag}: cannot read ${path} as JSON (${(cause as Error).message}); expected ${expected}`,
      { cause },
    );
  }
}

/** The network's protocol parameters from a JSON file (`ailink dev` writes one as protocol.json), or the dev ones. */
export function readProtocolConfig(path: string | undefined): ProtocolConfig {
  if (path === undefined) return DEV_PROTOCOL_CONFIG;
  return parseProtocolConfig(readJsonFile('--protocol', path, "the network's protocol.json"), path);
}

/** What a command was told about the network. */
export interface NetworkFlags {
  readonly network?: string | undefined;
  readonly chain?: string | undefined;
  readonly protocol?: string | undefined;
  /** Where this command keeps its indexes and keys (with --chain; default ./ailink-data). */
  readonly stateDir?: string | undefined;
}

export interface ResolvedNetwork {
  readonly session: SessionConfig;
  /** The network's operator key (network.json only): the default `--key` of client commands. */
  readonly operatorKeyPath: string | undefined;
}

/**
 * `--chain WS` if given, else the network file (`--network`, default ./ailink-data/network.json).
 * @throws INVALID_INPUT for a chain endpoint that is not ws:// or wss://, or an unreadable --protocol file;
 *   NETWORK_FILE_INVALID for a missing or malformed network file, or one that names no chain
 */
export function resolveNetwork(flags: NetworkFlags, profile?: StorageProfile): ResolvedNetwork {
  if (flags.chain !== undefined) {
    if (!/^wss?:\/\/[^\s/]+/.test(flags.chain))
      throw new AilinkError(
        'INVALID_INPUT',
        `--chain: expected a WebSocket endpoint such as ws://10.0.0.1:9944, got ${JSON.stringify(flags.chain)}`,
      );
    return {
      session: {
        chain: flags.chain,
        protocol: readProtocolConfig(flags.protocol),
        stateDir: resolve(flags.stateDir ?? DEFAULT_STATE_DIR),
        profile: profile ?? PRODUCTION_PROFILE,
      },
      operatorKeyPath: undefined,
    };
  }
  const network = loadNetworkFile(flags.network ?? DEFAULT_NETWORK_FILE);
  return {
    session: sessionOf(network, profile, flags.stateDir === undefined ? undefined : resolve(flags.stateDir)),
    operatorKeyPath: network.operatorKeyPath,
  };
}

/**
 * A session on the network of a network.json: its chain and protocol parameters, its profile (unless the role stores
 * with its own), and its folder for the indexes.
 */
export function sessionOf(
  network: LoadedNetwork,
  profile?: StorageProfile,
  stateDir?: string,
): SessionConfig {
  const info = network.file.chain;
  return {
    chain: info.endpoint,
    protocol: parseProtocolConfig(info.protocol, `${network.dir}/network.json chain.protocol`),
    stateDir: stateDir ?? network.dir,
    profile: profile ?? (network.file.profile === 'test' ? TEST_PROFILE : PRODUCTION_PROFILE),
  };
}

/**
 * The chain as an object registry for a miner client of the caller's own (tests and benches that tune its
 * deadlines), with its index beside the network's other indexes.
 */
export async function openChainRegistry(
  network: LoadedNetwork,
  account: Account,
  miners: MinerClient,
): Promise<ObjectRegistry> {
  const session = sessionOf(network);
  const chain = await connectChain(session.chain);
  try {
    makePrivateDir(join(session.stateDir, 'indexes'));
    const indexer = openIndexer(chain, {
      path: join(session.stateDir, 'indexes', `${account.address}.registry.sqlite`),
      config: session.protocol,
    });
    return createChainRegistry({ chain, indexer, account, miners });
  } catch (err) {
    await chain.close();
    throw err;
  }
}
