import { createHash } from 'node:crypto';
import type { Database } from 'better-sqlite3';
import {
  auditResultMessage,
  type Challenge,
  challengeKey,
  columnDigest,
  columnHashes,
  fileOf,
  type Indexer,
  minerOf,
  tagReportMessage,
} from '../../chain/index.ts';
import type { ByteChannel, Host } from '../../p2p/index.ts';
import type { Account } from '../../shared/account.ts';
import { toHex } from '../../shared/bytes.ts';
import type { Clock } from '../../shared/clock.ts';
import { AilinkError } from '../../shared/errors.ts';
import { fragmentHash } from '../object/index.ts';
import { checkAuditProof, type Podr2Key, type ProofParams, tagFragment } from '../proofs/index.ts';
import {
  bodyDigest,
  createRequestGuard,
  createSqliteNonceLedger,
  encodeJson,
  MAX_FRAME_BYTES,
  type MinerLog,
  parseRequestFrame,
  proofDigest,
  toAilinkError,
  VERIFIER_PROTOCOL,
  type VerifierRequest,
  VerifierRequestSchema,
  writeErrorReply,
} from '../protocol/index.ts';

/**
 * The verifier's service (CESS's TEE-worker role): the verifier protocol's request handler, which tags the fragments
 * miners hold, certifies tagged columns and checks audit proofs, signing what the chain accepts from registered
 * verifiers only — and audit results only from the verifier a challenge was assigned to, so it checks only proofs
 * for challenges assigned to it. Keys, host, chain connection and registration are the starter's
 * (src/node/verifier.ts).
 */

/** The public commitment to a PoDR2 secret: registered on chain, stored beside every tag. */
export const podr2KeyId = (secret: Uint8Array): string =>
  createHash('sha256').update('ailink/podr2-key-id/v1').update(secret).digest('hex');

export interface VerifierServiceDeps {
  readonly host: Host;
  /** Signs tag reports and audit results: the account registered in teeWorker. */
  readonly account: Account;
  /** This verifier's index of the chain: which miners are in good standing, which columns they hold, open challenges. */
  readonly indexer: Indexer;
  /** The PoDR2 key tags are made and proofs checked with, and its commitment (`podr2KeyId`) sent with every tag. */
  readonly key: Podr2Key;
  readonly keyId: string;
  /** Where the service keeps what it tagged for whom and the nonces it has seen (its tables are created here). */
  readonly db: Database;
  readonly clock: Clock;
  readonly log: MinerLog;
}

export interface VerifierServiceOptions {
  /** The proof parameters of the chain's audit config (`proofParams`). */
  readonly params: ProofParams;
  readonly maxFragmentSize: number;
  /** Longest signature lifetime accepted. */
  readonly maxSignatureTtlMs: number;
  readonly requestDeadlineMs: number;
}

/**
 * Serves the verifier protocol on `host`. Only miners in good standing on chain may ask; every request is checked
 * against the chain as indexed (synced before each answer) and refused with a clear code otherwise.
 */
export async function startVerifierService(
  deps: VerifierServiceDeps,
  options: VerifierServiceOptions,
): Promise<void> {
  const { host, account, indexer, key, keyId, db, log } = deps;
  const { params } = options;
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
  const guard = createRequestGuard(
    { clock: deps.clock, nonces },
    {
      audience: host.peerId,
      // Only miners in good standing may ask for tags, certificates or verdicts.
      authorised: { has: (a: string) => minerOf(indexer.state, a)?.state === 'positive' },
      maxTtlMs: options.maxSignatureTtlMs,
    },
  );

  /** The column must be the miner's on chain: held, or under a restoral order it claimed. */
  function columnOf(miner: string, fid: string, index: number): string[] {
    const file = fileOf(indexer.state, fid);
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
      await indexer.sync();
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
          log.info('tagged', { miner, fragment: request.fragment, bytes: bytes.byteLength });
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
          const challenge = indexer.state.get<Challenge>(challengeKey(miner));
          if (challenge === undefined || challenge.issuedAt !== request.challenge) {
            throw new AilinkError(
              'NOT_FOUND',
              `miner ${miner} has no open challenge issued at block ${request.challenge} (indexed to ${indexer.height()})`,
            );
          }
          // The chain takes a result only from the verifier it assigned: a verdict from any other would be refused.
          if (challenge.verifier !== account.address) {
            throw new AilinkError(
              'AUTH_NOT_AUTHORISED',
              `challenge ${challenge.issuedAt} of ${miner} is assigned to verifier ${challenge.verifier}, not to this one (${account.address}): prove to the assigned verifier`,
            );
          }
          checkAuditProof(key, miner, challenge, proof, params);
          const message = auditResultMessage(miner, challenge.issuedAt, challenge.seed, digest);
          log.info('proof-verified', {
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
      log.warn('request-refused', {
        op: request?.op,
        peer: channel.remotePeer,
        code: e.code,
        message: e.message,
      });
      await writeErrorReply(channel, e);
    }
  }

  await host.handle(VERIFIER_PROTOCOL, serve, { maxInboundStreams: 64 });
}

function checkDigest(got: string, expected: string): void {
  if (got !== expected) {
    throw new AilinkError(
      'INVALID_INPUT',
      `expected fragment = ${expected} (the digest of the request), got ${got}`,
    );
  }
}
