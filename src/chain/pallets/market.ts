import { AilinkError } from '../../shared/errors.ts';
import type { CallArgs } from '../calls.ts';
import { type StateReader, type StateValue, type StateWriter, scanBelow } from '../state.ts';
import { type BlockContext, paidTo, type Rule, reject } from './context.ts';
import { type FileInfo, getFile } from './file-bank.ts';
import { authorised } from './oss.ts';
import { openDebt } from './pot.ts';

/**
 * The data marketplace (issue 7): access terms of a stored object, requests to read it, and the data key released
 * to a reader. Objects are encrypted with a random data key (src/storage/object/envelope.ts); whoever holds a wrap of that
 * key for their X25519 reader key can read. These rules decide who may ask for a wrap and record every retrieval:
 *
 * - `setTerms` (owner or its oss operator): the access list (SS58 accounts that read for free) and the price for
 *   everyone else — a decimal planck amount, "0" for free to anyone, null for "not for sale".
 * - `request` (a reader): accepted for the owner (or its operator), a listed reader, or a reader who paid at least
 *   the price to the owner by native transfers placed directly before the remark in the same extrinsic
 *   (`CallContext.payments`: a transfer pays for the next remark only, so one payment never buys two requests).
 *   An accepted request is the retrieval record; when the reader cannot unwrap the key yet it also opens a request
 *   for the key, which `grant` closes.
 * - `grant` (owner or its operator): posts the data key wrapped for the reader key of an open request (or, unasked,
 *   for a listed reader). The chain cannot check that the wrap holds the right key — only the key holder can — but
 *   it checks who posts it, for whom, and that it answers what was asked.
 *
 * A price is paid per request ("per download"): a reader who kept the key can of course decrypt again without
 * asking, which no access scheme over public ciphertext can prevent; what the protocol guarantees is that no key is
 * released without an accepted (paid, where priced) request, and that each one is on record.
 */

/** The access terms of an object. */
export interface MarketTerms {
  [key: string]: StateValue;
  /** Accounts (SS58) that read for free. */
  readers: string[];
  /** Planck everyone else pays per request, as a decimal string; null: not for sale. */
  price: string | null;
  setAt: number;
}

/** One accepted request: a retrieval. */
export interface Retrieval {
  [key: string]: StateValue;
  reader: string;
  /** The X25519 key the reader asked the data key to be wrapped for. */
  readerKey: string;
  block: number;
  /** The block's timestamp (ms). */
  time: number;
  /** Planck paid to the owner with this request, decimal. */
  paid: string;
}

/** An accepted request whose reader cannot unwrap the data key yet: the owner's key service answers it. */
export interface OpenRequest {
  [key: string]: StateValue;
  readerKey: string;
  requestedAt: number;
  /** The retrieval it belongs to. */
  seq: number;
  /**
   * Planck of the price held in escrow at the pot until the owner releases the key: owed to the owner by the grant,
   * back to the reader when the request expires, is replaced or its file deleted. "0" when nothing is held (free,
   * or paid to the owner directly).
   */
  held: string;
  /** Last block in which the owner may release the key (`ProtocolConfig.requestExpiryBlocks` after the request). */
  expiresAt: number;
}

/** The data key of an object wrapped for a reader (src/storage/object/envelope.ts `KeyWrap`). */
export interface Grant {
  [key: string]: StateValue;
  wrap: { recipient: string; ephemeral: string; sealed: string };
  grantedAt: number;
  /** Who posted it: the owner or its operator. */
  by: string;
}

export const termsKey = (fid: string) => `market/terms/${fid}`;
const seqKey = (fid: string) => `market/seq/${fid}`;
export const retrievalsPrefix = (fid: string) => `market/retrievals/${fid}/`;
export const retrievalKey = (fid: string, seq: number) =>
  `${retrievalsPrefix(fid)}${String(seq).padStart(10, '0')}`;
export const OPEN_REQUESTS_PREFIX = 'market/requests/';
export const openRequestsPrefix = (fid: string) => `${OPEN_REQUESTS_PREFIX}${fid}/`;
export const openRequestKey = (fid: string, reader: string) => `${openRequestsPrefix(fid)}${reader}`;
export const grantsPrefix = (fid: string) => `market/grants/${fid}/`;
export const grantKey = (fid: string, reader: string) => `${grantsPrefix(fid)}${reader}`;

function existingFile(state: StateReader, fid: string): FileInfo {
  const file = getFile(state, fid);
  if (file === undefined) reject(`no file ${fid} is declared`);
  return file;
}

/** The owner or an operator it authorised (oss.authorize) manages the object's terms and releases its key. */
const managesFile = (state: StateReader, file: FileInfo, account: string): boolean =>
  account === file.owner || authorised(state, file.owner, account);

const setTerms: Rule<CallArgs<'market.setTerms'>> = (state, ctx, args) => {
  const file = existingFile(state, args.fid);
  if (!managesFile(state, file, ctx.caller)) {
    reject(
      `${ctx.caller} may not set the terms of ${args.fid}: only its owner ${file.owner} or an operator it authorised`,
    );
  }
  if (file.encryption === null) {
    reject(
      `${args.fid} is stored unencrypted: anyone who fetches its fragments can read it, so access to it cannot be controlled; store it encrypted`,
    );
  }
  const readers = [...new Set(args.readers)];
  const before = state.get<MarketTerms>(termsKey(args.fid));
  if (
    before !== undefined &&
    before.price === args.price &&
    before.readers.length === readers.length &&
    before.readers.every((r, i) => r === readers[i])
  ) {
    reject(`the terms of ${args.fid} are already these (set in block ${before.setAt}): nothing to change`);
  }
  state.put(termsKey(args.fid), {
    readers,
    price: args.price,
    setAt: ctx.block.number,
  } satisfies MarketTerms);
  // A reader taken off the list loses what it asked for free and was not given yet; a paid request stays open: it
  // was paid under the terms in force.
  for (const [key, value] of state.scan(openRequestsPrefix(args.fid))) {
    const reader = key.slice(openRequestsPrefix(args.fid).length);
    const open = value as OpenRequest;
    const paid = BigInt(state.get<Retrieval>(retrievalKey(args.fid, open.seq))?.paid ?? '0');
    const stillFree = readers.includes(reader) || args.price === '0' || managesFile(state, file, reader);
    if (paid === 0n && !stillFree) state.delete(key);
  }
};

const request: Rule<CallArgs<'market.request'>> = (state, ctx, args) => {
  const file = existingFile(state, args.fid);
  if (file.encryption === null) {
    reject(`${args.fid} is stored unencrypted: there is no key to ask for; read it directly`);
  }
  const terms = state.get<MarketTerms>(termsKey(args.fid));
  // Paid to the owner directly (the old way: kept if the request is rejected), or into escrow at the pot: the rules
  // then owe the owner its price on acceptance, and the reader the rest — all of it when the request is rejected.
  const direct = paidTo(ctx, file.owner);
  const escrow = file.owner === ctx.config.pot ? 0n : paidTo(ctx, ctx.config.pot);
  const paid = direct + escrow;
  const free = managesFile(state, file, ctx.caller) || (terms?.readers.includes(ctx.caller) ?? false);
  let price = 0n;
  if (!free) {
    const paidText = paid === 0n ? 'paid nothing' : `paid ${paid}`;
    if (terms === undefined) {
      reject(
        `${args.fid} has no market terms (market.setTerms): only readers its owner ${file.owner} wrapped the key for can read it; ${ctx.caller} ${paidText}`,
      );
    }
    if (terms.price === null) {
      reject(
        `${ctx.caller} is not on the access list of ${args.fid}, which is not for sale; it ${paidText} to the owner ${file.owner}`,
      );
    }
    price = BigInt(terms.price);
    if (paid < price) {
      reject(
        `${ctx.caller} is not on the access list of ${args.fid} and ${paidText} to the owner ${file.owner} or into escrow at the pot (price ${price})`,
      );
    }
  }
  const seq = state.get<number>(seqKey(args.fid)) ?? 0;
  state.put(seqKey(args.fid), seq + 1);
  const ownersShare = escrow < price - direct ? escrow : price > direct ? price - direct : 0n;
  openDebt(
    state,
    ctx,
    ctx.caller,
    escrow - ownersShare,
    `market.request ${args.fid}/${seq}: paid over the price`,
  );
  state.put(retrievalKey(args.fid, seq), {
    reader: ctx.caller,
    readerKey: args.readerKey,
    block: ctx.block.number,
    time: ctx.block.timestamp,
    paid: paid.toString(),
  } satisfies Retrieval);
  // Who can unwrap the key already (a wrap in the declaration, or an earlier grant for this reader key) needs no
  // grant; otherwise the request stays open until the owner's key service answers it. One open request per reader:
  // the latest reader key wins.
  const canRead =
    file.encryption.wraps.some((w) => w.recipient === args.readerKey) ||
    state.get<Grant>(grantKey(args.fid, ctx.caller))?.wrap.recipient === args.readerKey;
  // The reader's earlier request, if still open, is superseded: what it held goes back.
  closeRequest(state, ctx, args.fid, ctx.caller, 'refund', 'superseded by a newer request');
  if (canRead) {
    openDebt(state, ctx, file.owner, ownersShare, `market.request ${args.fid}/${seq}: the owner's price`);
  } else {
    // The owner's price waits in escrow until its key service releases the key.
    state.put(openRequestKey(args.fid, ctx.caller), {
      readerKey: args.readerKey,
      requestedAt: ctx.block.number,
      seq,
      held: ownersShare.toString(),
      expiresAt: ctx.block.number + ctx.config.requestExpiryBlocks,
    } satisfies OpenRequest);
  }
};

/**
 * Closes `reader`'s open request for `fid`, if any: what it held in escrow is owed to the owner (`release`) or back to
 * the reader (`refund`).
 */
function closeRequest(
  state: StateWriter,
  ctx: BlockContext,
  fid: string,
  reader: string,
  outcome: 'release' | 'refund',
  why: string,
): void {
  const key = openRequestKey(fid, reader);
  const open = state.get<OpenRequest>(key);
  if (open === undefined) return;
  state.delete(key);
  const to = outcome === 'release' ? getFile(state, fid)?.owner : reader;
  if (to === undefined)
    throw new AilinkError(
      'INTERNAL',
      `expected file ${fid} to outlive the open request of ${reader} on it, found it gone (a bug in the market module: its state is inconsistent)`,
    );
  const label = outcome === 'release' ? "the owner's price" : 'refund';
  openDebt(state, ctx, to, BigInt(open.held ?? '0'), `market.request ${fid}/${open.seq}: ${label}, ${why}`);
}

/**
 * What the market does at the start of every block: requests whose owner let `requestExpiryBlocks` pass without
 * releasing the key expire, and what they held goes back to their readers.
 */
export function marketOnBlock(state: StateWriter, ctx: BlockContext): void {
  // Only the requests past their expiry are read (an index in the indexer's store), not every open one. Requests
  // recorded before requests expired carry no expiry and are never among them: they stay open, as they were promised.
  for (const [key, value] of scanBelow(state, OPEN_REQUESTS_PREFIX, 'expiresAt', ctx.block.number)) {
    const open = value as OpenRequest;
    const [fid, reader] = key.slice(OPEN_REQUESTS_PREFIX.length).split('/') as [string, string];
    closeRequest(
      state,
      ctx,
      fid,
      reader,
      'refund',
      `expired: the key was not released by block ${open.expiresAt}`,
    );
  }
}

const grant: Rule<CallArgs<'market.grant'>> = (state, ctx, args) => {
  const file = existingFile(state, args.fid);
  if (!managesFile(state, file, ctx.caller)) {
    reject(
      `${ctx.caller} may not release the key of ${args.fid}: only its owner ${file.owner} or an operator it authorised`,
    );
  }
  const open = state.get<OpenRequest>(openRequestKey(args.fid, args.reader));
  if (open !== undefined) {
    if (open.readerKey !== args.wrap.recipient) {
      reject(
        `the wrap is for reader key ${args.wrap.recipient}, but ${args.reader} asked for ${open.readerKey} (block ${open.requestedAt})`,
      );
    }
  } else {
    const held = state.get<Grant>(grantKey(args.fid, args.reader));
    if (held !== undefined && held.wrap.recipient === args.wrap.recipient) {
      reject(
        `${args.reader} already holds the key of ${args.fid} for reader key ${args.wrap.recipient} (granted in block ${held.grantedAt}): replayed grant`,
      );
    }
    const terms = state.get<MarketTerms>(termsKey(args.fid));
    if (!(terms?.readers.includes(args.reader) ?? false)) {
      reject(
        `${args.reader} has no open request for ${args.fid} (market.request) and is not on its access list`,
      );
    }
  }
  state.put(grantKey(args.fid, args.reader), {
    wrap: args.wrap,
    grantedAt: ctx.block.number,
    by: ctx.caller,
  } satisfies Grant);
  closeRequest(state, ctx, args.fid, args.reader, 'release', 'the key was released');
};

/**
 * What deleting a file does to its market state: terms, retrievals, open requests and grants go with it, so that a
 * later declaration of the same fid (by anyone, with a new data key) starts with none of them.
 */
export function marketOnDelete(state: StateWriter, ctx: BlockContext, fid: string): void {
  // Open requests first, while the file is still there to name: what they held goes back to their readers.
  for (const [key] of state.scan(openRequestsPrefix(fid))) {
    closeRequest(
      state,
      ctx,
      fid,
      key.slice(openRequestsPrefix(fid).length),
      'refund',
      'the file was deleted',
    );
  }
  // Only keys that exist: a file that never had market state deletes exactly what it deleted before this module.
  for (const key of [termsKey(fid), seqKey(fid)]) if (state.get(key) !== undefined) state.delete(key);
  for (const prefix of [retrievalsPrefix(fid), grantsPrefix(fid)]) {
    for (const [key] of state.scan(prefix)) state.delete(key);
  }
}

export const market = { setTerms, request, grant };
