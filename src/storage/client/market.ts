import {
  type ChainCall,
  type ChainClient,
  fileOf,
  grantOf,
  type Indexer,
  isOperatorOf,
  type MarketTerms,
  openRequestsOf,
  protocolCall,
  retrievalsOf,
  submitProtocol,
  termsOf,
} from '../../chain/index.ts';
import { type Account, isAddress } from '../../shared/account.ts';
import { fromHex } from '../../shared/bytes.ts';
import { type Clock, sleep } from '../../shared/clock.ts';
import { AilinkError, hasCode } from '../../shared/errors.ts';
import { unwrapDataKey, wrapDataKey } from '../object/index.ts';
import type { MinerLog } from '../protocol/index.ts';
import type { StorageClient } from './client.ts';

/**
 * The data marketplace from a client's side (the rules are src/chain/pallets/market.ts): an owner sets an object's
 * terms and runs a key service that releases the data key to accepted requests; a reader requests access — paying
 * the price in the same extrinsic when it agreed to — waits for its key and reads. Every accepted request is a
 * retrieval record on chain, which the owner lists as the object's access log.
 */

export interface MarketDeps {
  readonly chain: Pick<ChainClient, 'submit'>;
  /** An index of the chain the object is recorded on; requests and grants are read from it. */
  readonly indexer: Pick<Indexer, 'state' | 'sync' | 'waitFor' | 'calls' | 'config'>;
  readonly account: Account;
  readonly clock: Clock;
}

export interface AccessOptions {
  /** The most this reader agrees to pay the owner for this request, in planck (default 0: pays nothing). */
  readonly maxPrice?: bigint;
  /** How long to wait in all: for the request to be applied and for the owner's key service (default 120 s). */
  readonly deadlineMs?: number;
  /** How often to look for the key meanwhile (default 500 ms). */
  readonly pollMs?: number;
  readonly signal?: AbortSignal;
}

/** How a reader came to hold the data key of an object. */
export interface AccessTicket {
  readonly fid: string;
  /**
   * `wrap`: the owner wrapped it for this reader at put time; `grant`: released after a request; `plain`: the object
   * is stored unencrypted and needs no key.
   */
  readonly via: 'wrap' | 'grant' | 'plain';
  /** The block of the accepted request (the retrieval record), or null when none was needed. */
  readonly block: number | null;
  /** Planck paid to the owner with the request. */
  readonly paid: bigint;
}

export interface AccessLogEntry {
  readonly seq: number;
  readonly reader: string;
  readonly readerKey: string;
  readonly block: number;
  /** The block's time (ms since the epoch). */
  readonly time: number;
  readonly paid: bigint;
  /** Whether the reader can unwrap the key for this reader key now (wrapped at put time, or released). */
  readonly keyReleased: boolean;
}

export interface MarketClient {
  /**
   * Sets the access terms of an object the caller owns (or operates): `readers` read for free, everyone else pays
   * `price` planck per request; `price` null means not for sale.
   * @throws INVALID_INPUT, OBJECT_NOT_FOUND, CHAIN_CALL_REJECTED (not the owner, unencrypted, unchanged)
   */
  setTerms(
    fid: string,
    terms: { readonly readers: readonly string[]; readonly price: bigint | null },
    options?: { deadlineMs?: number; signal?: AbortSignal },
  ): Promise<{ block: number }>;
  /** The terms in force, if any. */
  terms(fid: string): Promise<MarketTerms | undefined>;
  /**
   * Asks for the data key of an object and waits until this account holds it. A request already accepted and still
   * waiting for its key is not submitted (nor paid) again.
   * @throws OBJECT_NOT_FOUND; ACCESS_DENIED with the chain's reason when the terms refuse this reader; TIMEOUT when
   * the key was not released in time (the request stays open: asking again pays nothing more); ABORTED
   */
  requestAccess(fid: string, options?: AccessOptions): Promise<AccessTicket>;
  /** `requestAccess`, then the object's bytes (what `StorageClient.get` yields). */
  pull(fid: string, options?: AccessOptions): AsyncIterable<Uint8Array>;
  /** The object's retrievals, oldest first. */
  accessLog(fid: string): Promise<AccessLogEntry[]>;
  /**
   * Shares an object this account manages with `reader` for free, through the marketplace's access list (as a task
   * shares its models with its participants): the reader is added to the terms' readers (the price for others is
   * kept; an object without terms becomes not for sale), and with `readerKey` the data key is also released to it
   * in the same extrinsic, so it reads without asking. Without `readerKey` the reader asks (`requestAccess`, free)
   * and the owner's key service answers. Nothing is submitted when all of that holds already.
   * @throws INVALID_INPUT, OBJECT_NOT_FOUND, ACCESS_DENIED (this account does not manage the object, or cannot
   *   unwrap its key to release it), CHAIN_CALL_REJECTED, CHAIN_TIMEOUT
   */
  share(
    fid: string,
    reader: { readonly address: string; readonly readerKey?: string },
    options?: { deadlineMs?: number; signal?: AbortSignal },
  ): Promise<ShareResult>;
}

/** What `share` did: the access list now, and the block of its extrinsic (null: nothing was needed). */
export interface ShareResult {
  readonly fid: string;
  readonly readers: readonly string[];
  readonly price: string | null;
  readonly block: number | null;
  /** Whether the reader holds the data key for `readerKey` now (released by this call or before). */
  readonly keyReleased: boolean;
}

/**
 * The access list after sharing with `reader`: the terms' readers plus it (the price kept; none: not for sale), and
 * whether that changes the terms.
 */
export function termsWithReader(
  terms: Pick<MarketTerms, 'readers' | 'price'> | undefined,
  reader: string,
): { readers: string[]; price: string | null; changed: boolean } {
  const readers = terms?.readers ?? [];
  if (terms !== undefined && readers.includes(reader)) return { readers, price: terms.price, changed: false };
  return { readers: [...readers, reader], price: terms?.price ?? null, changed: true };
}

/**
 * How long a paid request whose inclusion timed out may still land: longer than a mortal transaction lives (64 blocks
 * by default, about 6.4 minutes at 6 s blocks). Until then a retry does not pay again.
 */
const UNSETTLED_MS = 10 * 60_000;

/** A market client for `deps.account`; `storage` reads the bytes (its registry must be the same chain). */
export function createMarketClient(deps: MarketDeps & { storage: Pick<StorageClient, 'get'> }): MarketClient {
  const { indexer, account } = deps;

  async function fileOrThrow(fid: string) {
    await indexer.sync();
    const file = fileOf(indexer.state, fid);
    if (file === undefined) {
      throw new AilinkError('OBJECT_NOT_FOUND', `no object ${fid} is recorded on chain; check the fid`);
    }
    return file;
  }

  /**
   * Paid requests of this client whose extrinsic may still land (its inclusion timed out or was cancelled after it
   * was sent), by fid: the chain height before it was sent and when. Until it shows up on chain, or a transaction's
   * lifetime has passed, asking again pays nothing.
   */
  const unsettled = new Map<string, { height: number; at: number }>();

  /** This reader's accepted request for (fid, its reader key) that landed after `height`, if any. */
  const landedSince = (fid: string, height: number) =>
    retrievalsOf(indexer.state, fid).find(
      (r) => r.reader === account.address && r.readerKey === account.readerKey && r.block > height,
    );

  /** Aborts at the caller's signal or when the request's time is up, whichever comes first. */
  const untilDeadline = (options: AccessOptions, remaining: () => number): AbortSignal =>
    options.signal === undefined
      ? AbortSignal.timeout(remaining())
      : AbortSignal.any([options.signal, AbortSignal.timeout(remaining())]);

  async function requestAccess(fid: string, options: AccessOptions = {}): Promise<AccessTicket> {
    const deadlineMs = options.deadlineMs ?? 120_000;
    const started = deps.clock.now();
    const remaining = () => Math.max(1, deadlineMs - (deps.clock.now() - started));
    const file = await fileOrThrow(fid);
    if (file.encryption === null) return { fid, via: 'plain', block: null, paid: 0n };
    const me = account.address;
    const myKey = account.readerKey;
    const wrapped = file.encryption.wraps.some((w) => w.recipient === myKey);
    const manages = me === file.owner || isOperatorOf(indexer.state, file.owner, me);
    const terms = termsOf(indexer.state, fid);
    if (terms === undefined && !manages) {
      // No marketplace for this object: the owner chose its readers at put time.
      if (wrapped) return { fid, via: 'wrap', block: null, paid: 0n };
      throw new AilinkError(
        'ACCESS_DENIED',
        `${me} may not read ${fid}: it has no access terms and its data key is not wrapped for you; ask its owner ${file.owner} to list you (ailink object terms ${fid} --readers ${me})`,
        { details: { fid, owner: file.owner } },
      );
    }

    const pending = unsettled.get(fid);
    if (pending !== undefined) {
      if (deps.clock.now() - pending.at > UNSETTLED_MS) unsettled.delete(fid);
      else await settle(fid, pending, remaining, options);
    }
    // Answered already (the key was released for this reader key, e.g. after this reader stopped waiting): the
    // reader holds the key; asking again would pay for nothing.
    const granted = grantOf(indexer.state, fid, me);
    const openNow = openRequestsOf(indexer.state, fid).some((r) => r.reader === me && r.readerKey === myKey);
    if (!wrapped && !openNow && granted?.wrap.recipient === myKey) {
      const last = retrievalsOf(indexer.state, fid)
        .filter((r) => r.reader === me && r.readerKey === myKey)
        .at(-1);
      return {
        fid,
        via: 'grant',
        block: last?.block ?? granted.grantedAt,
        paid: BigInt(last?.paid ?? '0'),
      };
    }

    let block: number;
    let paid: bigint;
    const open = openRequestsOf(indexer.state, fid).find((r) => r.reader === me && r.readerKey === myKey);
    if (open !== undefined) {
      // Accepted earlier (and paid, when priced), still waiting for the key: wait again, do not pay again.
      block = open.requestedAt;
      paid = BigInt(retrievalsOf(indexer.state, fid).find((r) => r.seq === open.seq)?.paid ?? '0');
    } else {
      const free = manages || (terms?.readers.includes(me) ?? false);
      const price = terms?.price === null || terms === undefined ? null : BigInt(terms.price);
      const maxPrice = options.maxPrice ?? 0n;
      const pay = !free && price !== null && price > 0n && price <= maxPrice ? price : 0n;
      const calls: ChainCall[] = [
        // The transfer directly before the request pays for it (and for nothing else). It goes into escrow at the
        // pot: the owner is owed it once it releases the key, the reader gets it back if the request is refused or
        // expires unanswered (src/chain/pallets/market.ts).
        ...(pay > 0n ? [{ kind: 'transfer' as const, to: indexer.config.pot, amount: pay }] : []),
        protocolCall('market.request', { fid, readerKey: myKey }),
      ];
      const height = await indexer.sync();
      try {
        const result = await submitProtocol(deps, account, calls, {
          deadlineMs: remaining(),
          ...(options.signal === undefined ? {} : { signal: options.signal }),
        });
        block = result.block;
      } catch (err) {
        // Sent, but its fate is unknown: it may still land, and with it the payment.
        if (pay > 0n && (hasCode(err, 'CHAIN_TIMEOUT') || hasCode(err, 'ABORTED'))) {
          unsettled.set(fid, { height, at: deps.clock.now() });
        }
        if (!hasCode(err, 'CHAIN_CALL_REJECTED')) throw err;
        const reason = String(err.details?.reason ?? err.message);
        const hint =
          free || price === null
            ? `; ask its owner ${file.owner} to list you`
            : price > maxPrice
              ? `; it costs ${price} planck per request: agree to pay it with --max-price ${price}`
              : '';
        throw new AilinkError('ACCESS_DENIED', `the chain refused the request: ${reason}${hint}`, {
          cause: err,
          details: { fid, reason, block: err.details?.block, price: price?.toString() ?? null },
        });
      }
      paid = pay;
    }
    if (wrapped) return { fid, via: 'wrap', block, paid };

    const signal = untilDeadline(options, remaining);
    for (;;) {
      await indexer.sync();
      if (grantOf(indexer.state, fid, me)?.wrap.recipient === myKey)
        return { fid, via: 'grant', block, paid };
      if (options.signal?.aborted) throw new AilinkError('ABORTED', `request for ${fid}: cancelled`);
      if (signal.aborted) {
        throw new AilinkError(
          'TIMEOUT',
          `your request for ${fid} was accepted in block ${block}${paid > 0n ? ` (paid ${paid})` : ''}, but its owner ${file.owner} did not release the key within ${deadlineMs} ms — its key service may be offline. The request stays open: \`ailink object request ${fid}\` waits for it again without paying again, and once the key is released \`ailink store get ${fid} --out FILE\` reads the object`,
          { details: { fid, block, paid: paid.toString() } },
        );
      }
      await sleep(options.pollMs ?? 500, signal);
    }
  }

  /**
   * Waits, within the deadline, until the earlier paid request of `fid` whose inclusion timed out shows up on chain.
   * @throws TIMEOUT when it has not (yet): the reader is not made to pay twice; ABORTED
   */
  async function settle(
    fid: string,
    pending: { height: number; at: number },
    remaining: () => number,
    options: AccessOptions,
  ): Promise<void> {
    const signal = untilDeadline(options, remaining);
    for (;;) {
      await indexer.sync();
      if (landedSince(fid, pending.height) !== undefined) {
        unsettled.delete(fid);
        return;
      }
      if (options.signal?.aborted) throw new AilinkError('ABORTED', `request for ${fid}: cancelled`);
      if (signal.aborted) {
        throw new AilinkError(
          'TIMEOUT',
          `an earlier paid request for ${fid} (sent when the chain was at block ${pending.height}) may still land: not paying again until it is included or ${UNSETTLED_MS / 60_000} minutes have passed; ask again later`,
          { details: { fid, since: pending.height } },
        );
      }
      await sleep(options.pollMs ?? 500, signal).catch(() => {});
    }
  }

  return {
    async setTerms(fid, terms, options = {}) {
      for (const r of terms.readers) {
        if (!isAddress(r))
          throw new AilinkError(
            'INVALID_INPUT',
            `readers: expected SS58 addresses, got ${JSON.stringify(r)}`,
          );
      }
      if (terms.price !== null && terms.price < 0n) {
        throw new AilinkError('INVALID_INPUT', `price: expected planck ≥ 0, got ${terms.price}`);
      }
      await fileOrThrow(fid);
      const { block } = await submitProtocol(
        deps,
        account,
        [
          protocolCall('market.setTerms', {
            fid,
            readers: [...terms.readers],
            price: terms.price === null ? null : terms.price.toString(),
          }),
        ],
        {
          deadlineMs: options.deadlineMs ?? 60_000,
          ...(options.signal === undefined ? {} : { signal: options.signal }),
        },
      );
      return { block };
    },
    async terms(fid) {
      await indexer.sync();
      return termsOf(indexer.state, fid);
    },
    requestAccess,
    async *pull(fid, options = {}) {
      await requestAccess(fid, options);
      yield* deps.storage.get(fid, options.signal === undefined ? {} : { signal: options.signal });
    },
    async accessLog(fid) {
      const file = await fileOrThrow(fid);
      const wrapped = new Set(file.encryption?.wraps.map((w) => w.recipient) ?? []);
      return retrievalsOf(indexer.state, fid).map((r) => ({
        seq: r.seq,
        reader: r.reader,
        readerKey: r.readerKey,
        block: r.block,
        time: r.time,
        paid: BigInt(r.paid),
        keyReleased:
          wrapped.has(r.readerKey) || grantOf(indexer.state, fid, r.reader)?.wrap.recipient === r.readerKey,
      }));
    },
    async share(fid, reader, options = {}) {
      if (!isAddress(reader.address))
        throw new AilinkError(
          'INVALID_INPUT',
          `reader: expected an SS58 address, got ${JSON.stringify(reader.address)}`,
        );
      if (reader.readerKey !== undefined && !/^[0-9a-f]{64}$/.test(reader.readerKey))
        throw new AilinkError(
          'INVALID_INPUT',
          `readerKey: expected 64 lowercase hex characters (an X25519 public key), got ${JSON.stringify(reader.readerKey)}`,
        );
      const file = await fileOrThrow(fid);
      const me = account.address;
      if (me !== file.owner && !isOperatorOf(indexer.state, file.owner, me)) {
        throw new AilinkError(
          'ACCESS_DENIED',
          `${me} may not share ${fid}: only its owner ${file.owner} or an operator it authorised`,
          { details: { fid, owner: file.owner, reason: 'not-owner' } },
        );
      }
      if (file.encryption === null) {
        throw new AilinkError(
          'INVALID_INPUT',
          `${fid} is stored unencrypted: anyone who fetches its fragments reads it, there is nothing to share`,
        );
      }
      const next = termsWithReader(termsOf(indexer.state, fid), reader.address);
      const calls: ChainCall[] = [];
      if (next.changed) {
        calls.push(protocolCall('market.setTerms', { fid, readers: next.readers, price: next.price }));
      }
      const held = (key: string) =>
        file.encryption?.wraps.some((w) => w.recipient === key) ||
        grantOf(indexer.state, fid, reader.address)?.wrap.recipient === key;
      const release = reader.readerKey !== undefined && !held(reader.readerKey);
      if (release) {
        let key: Uint8Array;
        try {
          key = unwrapDataKey(file.encryption.wraps, account.x25519PrivateKey, { fid, owner: file.owner });
        } catch (err) {
          throw new AilinkError(
            'ACCESS_DENIED',
            `${me} cannot release the key of ${fid}: it is not wrapped for this account's reader key; share without a reader key and let the key service that holds it answer`,
            { cause: err, details: { fid, reason: 'no-data-key' } },
          );
        }
        const wrap = wrapDataKey(key, fromHex(reader.readerKey!, 'reader key'), { fid, owner: file.owner });
        // After setTerms in the same batch: the grant rule accepts an unasked grant only for a listed reader.
        calls.push(protocolCall('market.grant', { fid, reader: reader.address, wrap }));
      }
      let block: number | null = null;
      if (calls.length > 0) {
        block = (
          await submitProtocol(deps, account, calls, {
            deadlineMs: options.deadlineMs ?? 60_000,
            ...(options.signal === undefined ? {} : { signal: options.signal }),
          })
        ).block;
      }
      return {
        fid,
        readers: next.readers,
        price: next.price,
        block,
        keyReleased: reader.readerKey !== undefined && (release || held(reader.readerKey)),
      };
    },
  };
}

// --- the owner's key service ----------------------------------------------------------------------------------

export interface GrantServiceOptions {
  /** Deadline of one batch of grants: inclusion and indexing (default 60 s). */
  readonly deadlineMs?: number;
  /** Grants per extrinsic (default 32): one `batchAll` answers many requests. */
  readonly maxPerBatch?: number;
  /** Pause between passes of `start()` (default 1000 ms). */
  readonly pollMs?: number;
  /**
   * A request whose grant failed or may still land is not answered again for this long (default 2 × deadline): the
   * chain would refuse a second grant anyway, this saves the fee.
   */
  readonly retryAfterMs?: number;
  /**
   * The owners this service answers for as their operator (default none: only this account's own objects). The
   * owner's `oss.authorize` alone is not enough: an owner cannot enlist somebody's key service without its consent,
   * which is given here, where the service runs.
   */
  readonly actsFor?: readonly string[];
}

export interface GrantPass {
  readonly granted: readonly { fid: string; reader: string; readerKey: string; block: number }[];
  /** Requests this service could not answer: the chain refused the grant, or the request is unusable. */
  readonly failed: readonly { fid: string; reader: string; readerKey: string; reason: string }[];
}

export interface GrantService {
  /** One pass: answers every open request for objects this account manages and can unwrap the key of. */
  pass(options?: { signal?: AbortSignal }): Promise<GrantPass>;
  /** Runs passes until `stop()`; `onPass` sees each pass that did something. */
  start(onPass?: (pass: GrantPass) => void): { stop(): Promise<void> };
}

/**
 * The owner's key service: follows the index of the chain and, for each accepted `market.request` of an object
 * whose owner is this account (or, with `actsFor`, an owner that named it operator with oss.authorize and whom it
 * agreed to serve) and whose data key it can unwrap (wraps are bound to the object and its owner), posts a
 * `market.grant` with the key wrapped for the requester's reader key — many in one extrinsic. It never grants what
 * the chain did not accept: it answers open requests only, which exist only for accepted (paid, where priced) ones.
 */
export function createGrantService(
  deps: MarketDeps & { log?: MinerLog },
  options: GrantServiceOptions = {},
): GrantService {
  const { indexer, account } = deps;
  const deadlineMs = options.deadlineMs ?? 60_000;
  const maxPerBatch = options.maxPerBatch ?? 32;
  const retryAfterMs = options.retryAfterMs ?? 2 * deadlineMs;
  const actsFor = new Set(options.actsFor ?? []);
  const serves = (owner: string) =>
    owner === account.address || (actsFor.has(owner) && isOperatorOf(indexer.state, owner, account.address));
  /** Requests answered (or given up on) recently, until when: no double grant from this process. */
  const blocked = new Map<string, number>();
  /** Data keys by fid and upload (a fid declared again has a new key). */
  const keys = new Map<string, Uint8Array | null>();

  async function pass(passOptions: { signal?: AbortSignal } = {}): Promise<GrantPass> {
    const signal = passOptions.signal;
    await indexer.sync(undefined, signal === undefined ? {} : { signal });
    const now = deps.clock.now();
    for (const [id, until] of blocked) if (until <= now) blocked.delete(id);
    const granted: { fid: string; reader: string; readerKey: string; block: number }[] = [];
    const failed: { fid: string; reader: string; readerKey: string; reason: string }[] = [];
    const todo: { id: string; fid: string; reader: string; readerKey: string; call: ChainCall }[] = [];
    for (const r of openRequestsOf(indexer.state)) {
      const id = `${r.fid}/${r.reader}/${r.readerKey}`;
      if (blocked.has(id)) continue;
      const file = fileOf(indexer.state, r.fid);
      if (file === undefined || file.encryption === null) continue;
      if (!serves(file.owner)) continue;
      const cacheKey = `${r.fid}/${file.deal}`;
      if (!keys.has(cacheKey)) {
        try {
          keys.set(
            cacheKey,
            unwrapDataKey(file.encryption.wraps, account.x25519PrivateKey, { fid: r.fid, owner: file.owner }),
          );
        } catch (err) {
          // We manage the object but were never given its key: another key service must answer.
          keys.set(cacheKey, null);
          deps.log?.warn('grant.no-key', { fid: r.fid, reason: (err as Error).message });
        }
      }
      const key = keys.get(cacheKey);
      if (key === null || key === undefined) continue;
      try {
        const wrap = wrapDataKey(key, fromHex(r.readerKey, 'reader key'), { fid: r.fid, owner: file.owner });
        todo.push({ id, ...r, call: protocolCall('market.grant', { fid: r.fid, reader: r.reader, wrap }) });
      } catch (err) {
        // A reader key no X25519 exchange works with (e.g. a low-order point): not answerable, not retried.
        blocked.set(id, Number.POSITIVE_INFINITY);
        failed.push({ ...pick(r), reason: `unusable reader key: ${(err as Error).message}` });
      }
    }
    for (let i = 0; i < todo.length; i += maxPerBatch) {
      signal?.throwIfAborted();
      const batch = todo.slice(i, i + maxPerBatch);
      for (const t of batch) blocked.set(t.id, deps.clock.now() + retryAfterMs);
      try {
        const inclusion = await deps.chain.submit(
          account,
          batch.map((t) => t.call),
          { deadlineMs, ...(signal === undefined ? {} : { signal }) },
        );
        await indexer.waitFor(inclusion.blockNumber, deadlineMs);
        const records = indexer
          .calls({ fromBlock: inclusion.blockNumber })
          .filter((c) => c.block === inclusion.blockNumber && c.extrinsic === inclusion.extrinsicIndex);
        batch.forEach((t, item) => {
          const record = records.find((c) => c.item === inclusion.firstItem + item);
          // The chain has answered either way: the state now says whether the request is still open.
          blocked.delete(t.id);
          if (record?.outcome === 'applied') granted.push({ ...pick(t), block: inclusion.blockNumber });
          else failed.push({ ...pick(t), reason: record?.reason ?? 'no record of the grant in its block' });
        });
      } catch (err) {
        // Stays blocked until retryAfterMs: a grant that timed out may still land.
        const reason = (err as Error).message;
        for (const t of batch) failed.push({ ...pick(t), reason });
        deps.log?.warn('grant.failed', { requests: batch.length, reason });
        if (hasCode(err, 'ABORTED')) throw err;
      }
    }
    for (const g of granted) deps.log?.info('grant.released', { ...g });
    return { granted, failed };
  }

  return {
    pass,
    start(onPass) {
      const controller = new AbortController();
      const loop = (async () => {
        while (!controller.signal.aborted) {
          try {
            const p = await pass({ signal: controller.signal });
            if (p.granted.length + p.failed.length > 0) onPass?.(p);
          } catch (err) {
            if (!controller.signal.aborted)
              deps.log?.warn('grant.pass-failed', { reason: (err as Error).message });
          }
          await sleep(options.pollMs ?? 1000, controller.signal);
        }
      })();
      return {
        async stop() {
          controller.abort();
          await loop;
        },
      };
    },
  };
}

const pick = (r: { fid: string; reader: string; readerKey: string }) => ({
  fid: r.fid,
  reader: r.reader,
  readerKey: r.readerKey,
});
