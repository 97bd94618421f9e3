import type { Database } from 'better-sqlite3';
import { z } from 'zod';
import type { Account } from '../../shared/account.ts';
import { verifySignature } from '../../shared/account.ts';
import { fromHex, toHex } from '../../shared/bytes.ts';
import type { Clock, Random } from '../../shared/clock.ts';
import { AilinkError } from '../../shared/errors.ts';

/**
 * Every request to a miner is signed by an account, for one miner (the audience), once (a random nonce the miner
 * remembers until expiry) and for a short time (an expiry the miner bounds). CESS miners accept any valid signature
 * forever; ours refuse replays, requests for other miners and stale or far-future signatures.
 */

export const RequestAuthSchema = z
  .object({
    account: z.string().min(1).max(64),
    nonce: z.string().regex(/^[0-9a-f]{32}$/, 'expected 32 lowercase hex characters'),
    expiresAt: z.number().int().nonnegative(),
    signature: z.string().regex(/^[0-9a-f]{128}$/, 'expected 128 lowercase hex characters'),
  })
  .strict();
export type RequestAuth = z.infer<typeof RequestAuthSchema>;

/** What a signature covers besides the auth fields themselves. */
export interface SignedFields {
  readonly op: string;
  readonly fragment: string;
  readonly size: number;
  /** Peer id of the miner the request is meant for. */
  readonly audience: string;
  /**
   * A put's upload (its placement deal), when it names one: miners spare the fragment past their collection grace
   * while its owner holds that deal's ticket. Signed, so nobody else can tie a fragment to another upload.
   */
  readonly deal?: string;
}

const DOMAIN = 'ailink/fragment-request/v1';

function signingBytes(fields: SignedFields, account: string, nonce: string, expiresAt: number): Uint8Array {
  const signed = [fields.op, fields.fragment, fields.size, fields.audience, account, nonce, expiresAt];
  // Appended only when present: requests without a deal sign the same bytes as before deals existed.
  if (fields.deal !== undefined) signed.push(fields.deal);
  return new TextEncoder().encode(`${DOMAIN}\n${JSON.stringify(signed)}`);
}

export function signRequest(
  account: Account,
  fields: SignedFields,
  deps: { clock: Clock; random: Random },
  ttlMs: number,
): RequestAuth {
  const nonce = toHex(deps.random(16));
  const expiresAt = deps.clock.now() + ttlMs;
  const signature = toHex(account.sign(signingBytes(fields, account.address, nonce, expiresAt)));
  return { account: account.address, nonce, expiresAt, signature };
}

/** Remembers nonces until they expire; the miner's is persisted so a restart does not reopen replays. */
export interface NonceLedger {
  /** Records the nonce; false if it was already recorded. */
  claim(account: string, nonce: string, expiresAt: number): boolean;
}

/**
 * A nonce ledger in an SQLite database the caller owns; expired nonces are pruned every 1000 claims. The latest time it
 * pruned at is kept too: a nonce expiring at or before it may have been forgotten, so it is never taken as unused —
 * otherwise a clock set back (an NTP step) would make a captured, pruned request unexpired and new again.
 */
export function createSqliteNonceLedger(db: Database, clock: Clock): NonceLedger {
  db.exec(`
    CREATE TABLE IF NOT EXISTS nonces (account TEXT NOT NULL, nonce TEXT NOT NULL, expires_at INTEGER NOT NULL,
      PRIMARY KEY (account, nonce));
    CREATE INDEX IF NOT EXISTS nonces_expiry ON nonces (expires_at);
    CREATE TABLE IF NOT EXISTS nonces_pruned (one INTEGER PRIMARY KEY CHECK (one = 1), until INTEGER NOT NULL);
  `);
  const claim = db.prepare('INSERT OR IGNORE INTO nonces (account, nonce, expires_at) VALUES (?, ?, ?)');
  const prune = db.prepare('DELETE FROM nonces WHERE expires_at <= ?');
  const markPruned = db.prepare(
    'INSERT INTO nonces_pruned (one, until) VALUES (1, ?) ON CONFLICT (one) DO UPDATE SET until = max(until, excluded.until)',
  );
  const prunedAt = db.prepare('SELECT until FROM nonces_pruned WHERE one = 1');
  let pruned = (prunedAt.get() as { until: number } | undefined)?.until ?? 0;
  const pruneNow = db.transaction((now: number) => {
    markPruned.run(now);
    prune.run(now);
  });
  let claimsSincePrune = 0;
  return {
    claim(account, nonce, expiresAt) {
      if (++claimsSincePrune >= 1000) {
        claimsSincePrune = 0;
        const now = clock.now();
        pruneNow(now);
        pruned = Math.max(pruned, now);
      }
      if (expiresAt <= pruned) return false;
      return claim.run(account, nonce, expiresAt).changes === 1;
    },
  };
}

export interface RequestGuardOptions {
  /** This node's peer id: requests signed for another audience are refused. */
  readonly audience: string;
  /** Accounts allowed to use this node, per operation (a Set allows an account everything). */
  readonly authorised: { has(account: string, op: string): boolean };
  /** Longest accepted time between now and a request's expiry. */
  readonly maxTtlMs: number;
}

/**
 * Checks a request's signature, freshness, audience, authorisation and uniqueness — in that order, so that unsigned
 * or foreign requests never reach the nonce ledger.
 * @throws AUTH_MISSING, AUTH_EXPIRED, AUTH_EXPIRY_TOO_FAR, AUTH_WRONG_AUDIENCE, AUTH_BAD_SIGNATURE,
 *   AUTH_NOT_AUTHORISED, AUTH_REPLAYED
 */
export function createRequestGuard(
  deps: { clock: Clock; nonces: NonceLedger },
  options: RequestGuardOptions,
) {
  return function check(fields: SignedFields, auth: RequestAuth | undefined): string {
    if (auth === undefined) {
      throw new AilinkError('AUTH_MISSING', `expected a signed request for ${fields.op}, got no signature`);
    }
    const now = deps.clock.now();
    if (auth.expiresAt <= now) {
      throw new AilinkError(
        'AUTH_EXPIRED',
        `request expired at ${auth.expiresAt}, now is ${now}; sign it again`,
      );
    }
    if (auth.expiresAt > now + options.maxTtlMs) {
      throw new AilinkError(
        'AUTH_EXPIRY_TOO_FAR',
        `expected an expiry ≤ ${options.maxTtlMs} ms ahead, got ${auth.expiresAt - now} ms`,
      );
    }
    if (fields.audience !== options.audience) {
      throw new AilinkError(
        'AUTH_WRONG_AUDIENCE',
        `request was signed for ${fields.audience}, this node is ${options.audience}`,
      );
    }
    let signature: Uint8Array;
    try {
      signature = fromHex(auth.signature, 'signature');
    } catch {
      throw new AilinkError('AUTH_BAD_SIGNATURE', `signature of ${auth.account} is not lowercase hex`);
    }
    const ok = verifySignature(
      auth.account,
      signingBytes(fields, auth.account, auth.nonce, auth.expiresAt),
      signature,
    );
    if (!ok)
      throw new AilinkError('AUTH_BAD_SIGNATURE', `signature does not verify for account ${auth.account}`);
    if (!options.authorised.has(auth.account, fields.op)) {
      throw new AilinkError('AUTH_NOT_AUTHORISED', `account ${auth.account} is not authorised on this node`);
    }
    if (!deps.nonces.claim(auth.account, auth.nonce, auth.expiresAt)) {
      throw new AilinkError(
        'AUTH_REPLAYED',
        `nonce ${auth.nonce} of ${auth.account} was already used, or expires before this node last forgot expired nonces (its clock was set back): sign a new request`,
      );
    }
    return auth.account;
  };
}

/** A guard as the services take it: the plain check, or one that may consult the chain before refusing. */
export type RequestGuard = (fields: SignedFields, auth: RequestAuth | undefined) => string | Promise<string>;
