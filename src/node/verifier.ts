import { existsSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import {
  type ChainClient,
  connectChain,
  type Indexer,
  openIndexer,
  type ProtocolConfig,
  peerRegistrationMessage,
  protocolCall,
  submitProtocol,
  verifiersOf,
} from '../chain/index.ts';
import { createHost, newPeerKey, signWithPeerKey } from '../p2p/index.ts';
import { type Account, accountsReady, createKeyFile, loadKeyFile } from '../shared/account.ts';
import { toHex } from '../shared/bytes.ts';
import type { Clock, Random } from '../shared/clock.ts';
import { AilinkError } from '../shared/errors.ts';
import { makePrivateDir, readPrivateFileSync, writePrivateFileSync } from '../shared/private-files.ts';
import {
  derivePodr2Key,
  type MinerLog,
  podr2KeyId,
  proofParams,
  startVerifierService,
} from '../storage/index.ts';
import { ROLE_CHAIN_WAIT_MS } from './session.ts';

/**
 * The verifier role's starter (`ailink verifier`): its keys in the data dir (peer key, chain account, PoDR2 secret),
 * a libp2p host, the chain connection and index, its registration in teeWorker, and the verifier service
 * (src/storage/verifier/verifier-service.ts) on that host.
 */

export interface VerifierNodeOptions {
  readonly dataDir: string;
  readonly listen: readonly string[];
  /** Multiaddrs to announce (on chain and to peers) instead of the bound ones: a public address, a NAT mapping. */
  readonly announce?: readonly string[];
  readonly chain: { readonly endpoint: string; readonly config: ProtocolConfig };
  readonly maxFragmentSize: number;
  readonly maxSignatureTtlMs: number;
  readonly requestDeadlineMs: number;
}

export interface VerifierNode {
  readonly peerId: string;
  /** The verifier's chain account: results and tag reports are signed with it. */
  readonly account: string;
  /** Commitment to the PoDR2 key, as registered in teeWorker: tags carry it so a key change is noticed. */
  readonly keyId: string;
  readonly registration: 'registered' | 'updated' | 'unchanged';
  addrs(): string[];
  stop(): Promise<void>;
}

/**
 * The verifier (CESS's TEE-worker role): holds the PoDR2 key, tags the fragments miners hold, checks their proofs
 * and signs the results the chain accepts from registered verifiers only. Its peer key, chain account and PoDR2 secret
 * live in its data dir, so a restart keeps its identity and every tag it issued stays valid.
 */
export async function startVerifierNode(
  deps: { clock: Clock; random: Random; log: MinerLog },
  options: VerifierNodeOptions,
): Promise<VerifierNode> {
  makePrivateDir(options.dataDir);
  await accountsReady();
  const peerKey = await keyFile(join(options.dataDir, 'peer.key'), () => newPeerKey());
  const secret = await keyFile(join(options.dataDir, 'podr2.key'), async () => deps.random(32));
  const accountPath = join(options.dataDir, 'account.json');
  const account = existsSync(accountPath)
    ? await loadKeyFile(accountPath)
    : await createKeyFile(accountPath, deps.random);
  const params = proofParams(options.chain.config.audit);
  const key = derivePodr2Key(secret, params.podr2);
  const keyId = podr2KeyId(secret);

  const db = new Database(join(options.dataDir, 'verifier.sqlite'));
  db.pragma('journal_mode = WAL');

  const host = await createHost({
    privateKey: peerKey,
    listen: options.listen,
    ...(options.announce === undefined ? {} : { announce: options.announce }),
    maxBufferSize: options.maxFragmentSize + 1024 * 1024,
  });
  let chain: ChainClient | undefined;
  let indexer: Indexer | undefined;
  let following: { stop(): Promise<void> } | undefined;
  const shutdown = async () => {
    // The chain client's close first: an index sync waiting for a chain that is gone then ends at once, rather than
    // holding the stop for the client's reconnectMs.
    const chainClosed = chain?.close();
    await host.stop();
    await following?.stop();
    indexer?.close();
    await chainClosed;
    db.close();
  };
  let registration: VerifierNode['registration'];
  try {
    chain = await connectChain(options.chain.endpoint, { connectTimeoutMs: ROLE_CHAIN_WAIT_MS });
    indexer = openIndexer(chain, {
      path: join(options.dataDir, 'index.sqlite'),
      config: options.chain.config,
    });
    registration = await joinAsVerifier(
      { chain, indexer, account, config: options.chain.config },
      host.peerId,
      host.addrs(),
      keyId,
      (message) => signWithPeerKey(peerKey, message),
    );
    following = await indexer.follow();
    await startVerifierService(
      { host, account, indexer, key, keyId, db, clock: deps.clock, log: deps.log },
      {
        params,
        maxFragmentSize: options.maxFragmentSize,
        maxSignatureTtlMs: options.maxSignatureTtlMs,
        requestDeadlineMs: options.requestDeadlineMs,
      },
    );
  } catch (err) {
    await shutdown();
    throw err;
  }
  return {
    peerId: host.peerId,
    account: account.address,
    keyId,
    registration,
    addrs: () => host.addrs(),
    stop: shutdown,
  };
}

/**
 * Registers the verifier in teeWorker the first time, and updates its addresses after a restart on new ports.
 * @throws AUTH_NOT_AUTHORISED when the account is not in the network's verifier set, or its PoDR2 key is not the one
 *   the set's registered verifiers share (the chain would refuse either)
 */
async function joinAsVerifier(
  deps: { chain: ChainClient; indexer: Indexer; account: Account; config: ProtocolConfig },
  peerId: string,
  addrs: string[],
  keyId: string,
  signPeer: (message: Uint8Array) => Promise<Uint8Array>,
): Promise<VerifierNode['registration']> {
  const me = deps.account.address;
  if (!deps.config.verifiers.includes(me)) {
    throw new AilinkError(
      'AUTH_NOT_AUTHORISED',
      `account ${me} is not in the network's verifier set (${
        deps.config.verifiers.length === 0
          ? 'the protocol configuration names none'
          : `the protocol configuration names ${deps.config.verifiers.join(', ')}`
      }): only accounts named in its \`verifiers\` may register`,
    );
  }
  await deps.indexer.sync();
  const known = deps.indexer.state.get<{ peerId: string; addrs: string[]; podr2Key: string }>(
    `teeWorker/workers/${me}`,
  );
  const shared = verifiersOf(deps.indexer.state).find((v) => v.address !== me)?.podr2Key;
  if (known === undefined && shared !== undefined && shared !== keyId) {
    throw new AilinkError(
      'AUTH_NOT_AUTHORISED',
      `the network's verifiers share the PoDR2 key committed as ${shared}; this node's podr2.key commits to ${keyId}: copy podr2.key from a verifier of the network into the data dir`,
    );
  }
  if (known === undefined) {
    const message = peerRegistrationMessage('teeWorker.register', deps.chain.genesisHash, me, peerId);
    const peerSignature = toHex(await signPeer(message));
    await submitProtocol(deps, deps.account, [
      protocolCall('teeWorker.register', { peerId, addrs, podr2Key: keyId, peerSignature }),
    ]);
    return 'registered';
  }
  if (known.peerId !== peerId || known.podr2Key !== keyId) {
    throw new AilinkError(
      'CHAIN_CALL_REJECTED',
      `account ${deps.account.address} is registered as verifier ${known.peerId} with key ${known.podr2Key}; this node is ${peerId} with key ${keyId}`,
    );
  }
  if (JSON.stringify(known.addrs) === JSON.stringify(addrs)) return 'unchanged';
  await submitProtocol(deps, deps.account, [protocolCall('teeWorker.updateAddrs', { addrs })]);
  return 'updated';
}

/** A secret kept in a 0600 file, created on first start. @throws KEY_FILE_PERMISSIONS when others can read it. */
async function keyFile(path: string, create: () => Promise<Uint8Array>): Promise<Uint8Array> {
  if (!existsSync(path)) writePrivateFileSync(path, await create());
  return new Uint8Array(readPrivateFileSync(path));
}
