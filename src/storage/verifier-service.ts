import { createHash } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import {
  auditResultMessage,
  type ChainClient,
  type Challenge,
  challengeKey,
  columnDigest,
  columnHashes,
  connectChain,
  fileOf,
  type Indexer,
  minerOf,
  openIndexer,
  type ProtocolConfig,
  protocolCall,
  submitProtocol,
  tagReportMessage,
} from '../chain/index.ts';
import { type ByteChannel, createHost, newPeerKey } from '../p2p/index.ts';
import { type Account, accountsReady, createKeyFile, loadKeyFile } from '../shared/account.ts';
import { toHex } from '../shared/bytes.ts';
import type { Clock, Random } from '../shared/clock.ts';
import { AilinkError } from '../shared/errors.ts';
import { checkAuditProof } from './audit-proof.ts';
import {
  bodyDigest,
  encodeJson,
  MAX_FRAME_BYTES,
  parseRequestFrame,
  writeErrorReply,
} from './fragment-protocol.ts';
import { fragmentHash } from './hash.ts';
import { type MinerLog, toAilinkError } from './miner-service.ts';
import { derivePodr2Key, tagFragment } from './podr2.ts';
import { createRequestGuard, createSqliteNonceLedger } from './request-auth.ts';
import {
  proofDigest,
  proofParams,
  VERIFIER_PROTOCOL,
  type VerifierRequest,
  VerifierRequestSchema,
} from './verifier-protocol.ts';

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

/** The public commitment to a PoDR2 secret: registered on chain, stored beside every tag. */
export const podr2KeyId = (secret: Uint8Array): string =>
  createHash('sha256').update('ailink/podr2-key-id/v1').update(secret).digest('hex');

/**
 * The verifier (CESS's TEE-worker role): holds the PoDR2 key, tags the fragments miners hold, checks their proofs
 * and signs the results the chain accepts from registered verifiers only. Its peer key, chain account and PoDR2 secret
 * live in its data dir, so a restart keeps its identity and every tag it issued stays valid.
 */
export async function startVerifierNode(
  deps: { clock: Clock; random: Random; log: MinerLog },
  options: VerifierNodeOptions,
): Promise<VerifierNode> {
  mkdirSync(options.dataDir, { recursive: true });
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
  db.exec(
    'CREATE TABLE IF NOT EXISTS tagged (miner TEXT NOT NULL, name TEXT NOT NULL, PRIMARY KEY (miner, name)) WITHOUT ROWID',
  );
  const q = {
    tagged: db.prepare<[string, string], { n: number }>(
      'SELECT 1 AS n FROM tagged WHERE miner = ? AND name = ?',
    ),
    markTagged: db.prepare('INSERT OR IGNORE INTO tagged (miner, name) VALUES (?, ?)'),
  };
  const nonces = createSqliteNonceLedger(db, deps.clock);

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
    await host.stop();
    await following?.stop();
    indexer?.close();
    await chain?.close();
    db.close();
  };
  let registration: VerifierNode['registration'];
  try {
    chain = await connectChain(options.chain.endpoint);
    indexer = openIndexer(chain, {
      path: join(options.dataDir, 'index.sqlite'),
      config: options.chain.config,
    });
    registration = await joinAsVerifier({ chain, indexer, account }, host.peerId, host.addrs(), keyId);
    following = await indexer.follow();
  } catch (err) {
    await shutdown();
    throw err;
  }
  const onChain = { chain, indexer };
  const guard = createRequestGuard(
    { clock: deps.clock, nonces },
    {
      audience: host.peerId,
      // Only miners in good standing may ask for tags, certificates or verdicts.
      authorised: { has: (a: string) => minerOf(onChain.indexer.state, a)?.state === 'positive' },
      maxTtlMs: options.maxSignatureTtlMs,
    },
  );

  /** The column must be the miner's on chain: held, or under a restoral order it claimed. */
  function columnOf(miner: string, fid: string, index: number): string[] {
    const file = fileOf(onChain.indexer.state, fid);
    if (file === undefined || index >= file.placements.length) {
      throw new AilinkError('NOT_FOUND', `no column ${index} of ${fid} is recorded on chain`);
    }
    const claimed = file.orders[index]?.claimer === miner;
    if (file.placements[index] !== miner && !claimed) {
      throw new AilinkError(
        'AUTH_NOT_AUTHORISED',
        `column ${index} of ${fid} is held by ${file.placements[index] ?? 'nobody'} and not claimed by ${miner}`,
      );
    }
    return columnHashes(file.segments, index);
  }

  async function serve(channel: ByteChannel): Promise<void> {
    const signal = AbortSignal.timeout(options.requestDeadlineMs);
    let request: VerifierRequest | undefined;
    try {
      request = parseRequestFrame(
        await channel.readFrame(MAX_FRAME_BYTES, { signal }),
        VerifierRequestSchema,
      );
      // The signature covers `fragment`: for certify it must be the digest of the fields (for verify, of the body,
      // checked once the body has arrived).
      if (request.op === 'certify')
        checkDigest(request.fragment, bodyDigest(['certify', request.fid, request.index]));
      const size = request.op === 'certify' ? 0 : request.size;
      const miner = guard(
        { op: request.op, fragment: request.fragment, size, audience: request.audience },
        request.auth,
      );
      await onChain.indexer.sync();
      switch (request.op) {
        case 'tag': {
          if (!columnOf(miner, request.fid, request.index).includes(request.fragment)) {
            throw new AilinkError(
              'INVALID_INPUT',
              `fragment ${request.fragment} is not in column ${request.index} of ${request.fid}`,
            );
          }
          if (request.size > options.maxFragmentSize) {
            throw new AilinkError(
              'FRAGMENT_TOO_LARGE',
              `expected ≤ ${options.maxFragmentSize} bytes, got ${request.size}`,
            );
          }
          const bytes = await channel.readExactly(request.size, { signal });
          const got = fragmentHash(bytes);
          if (got !== request.fragment) {
            throw new AilinkError(
              'FRAGMENT_HASH_MISMATCH',
              `expected fragment ${request.fragment}, the bytes hash to ${got}`,
            );
          }
          const tags = tagFragment(key, request.fragment, bytes, params.podr2);
          q.markTagged.run(miner, request.fragment);
          deps.log.info('tagged', { miner, fragment: request.fragment, bytes: bytes.byteLength });
          await channel.writeFrame(encodeJson({ ok: true, keyId, tags: toHex(tags) }), { signal });
          break;
        }
        case 'certify': {
          const fragments = columnOf(miner, request.fid, request.index);
          const untagged = fragments.filter((f) => q.tagged.get(miner, f) === undefined);
          if (untagged.length > 0) {
            throw new AilinkError(
              'NOT_FOUND',
              `${untagged.length} of ${fragments.length} fragments of column ${request.index} were not tagged for ${miner}; tag them first`,
            );
          }
          const message = tagReportMessage(miner, request.fid, request.index, columnDigest(fragments));
          await channel.writeFrame(
            encodeJson({ ok: true, verifier: account.address, signature: toHex(account.sign(message)) }),
            { signal },
          );
          break;
        }
        case 'verify': {
          const proof = await channel.readExactly(request.size, { signal });
          const digest = proofDigest(proof);
          const expected = bodyDigest(['verify', request.challenge, digest]);
          if (request.fragment !== expected) {
            throw new AilinkError(
              'INVALID_INPUT',
              `expected fragment = ${expected}, got ${request.fragment}`,
            );
          }
          const challenge = onChain.indexer.state.get<Challenge>(challengeKey(miner));
          if (challenge === undefined || challenge.issuedAt !== request.challenge) {
            throw new AilinkError(
              'NOT_FOUND',
              `miner ${miner} has no open challenge issued at block ${request.challenge} (indexed to ${onChain.indexer.height()})`,
            );
          }
          checkAuditProof(key, miner, challenge, proof, params);
          const message = auditResultMessage(miner, challenge.issuedAt, challenge.seed, digest);
          deps.log.info('proof-verified', {
            miner,
            challenge: challenge.issuedAt,
            fragments: challenge.fragments.length,
            idle: challenge.idle.length,
          });
          await channel.writeFrame(
            encodeJson({ ok: true, verifier: account.address, signature: toHex(account.sign(message)) }),
            { signal },
          );
          break;
        }
      }
      await channel.closeWrite({ signal });
    } catch (err) {
      const e = toAilinkError(err, signal);
      deps.log.warn('request-refused', {
        op: request?.op,
        peer: channel.remotePeer,
        code: e.code,
        message: e.message,
      });
      await writeErrorReply(channel, e);
    }
  }

  await host.handle(VERIFIER_PROTOCOL, serve, { maxInboundStreams: 64 });
  return {
    peerId: host.peerId,
    account: account.address,
    keyId,
    registration,
    addrs: () => host.addrs(),
    stop: shutdown,
  };
}

/** Registers the verifier in teeWorker the first time, and updates its addresses after a restart on new ports. */
async function joinAsVerifier(
  deps: { chain: ChainClient; indexer: Indexer; account: Account },
  peerId: string,
  addrs: string[],
  keyId: string,
): Promise<VerifierNode['registration']> {
  await deps.indexer.sync();
  const known = deps.indexer.state.get<{ peerId: string; addrs: string[]; podr2Key: string }>(
    `teeWorker/workers/${deps.account.address}`,
  );
  if (known === undefined) {
    await submitProtocol(deps, deps.account, [
      protocolCall('teeWorker.register', { peerId, addrs, podr2Key: keyId }),
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

/** A secret kept in a 0600 file, created on first start. */
async function keyFile(path: string, create: () => Promise<Uint8Array>): Promise<Uint8Array> {
  if (!existsSync(path)) await writeFile(path, await create(), { mode: 0o600, flag: 'wx' });
  return new Uint8Array(await readFile(path));
}

function checkDigest(got: string, expected: string): void {
  if (got !== expected) {
    throw new AilinkError(
      'INVALID_INPUT',
      `expected fragment = ${expected} (the digest of the request), got ${got}`,
    );
  }
}
