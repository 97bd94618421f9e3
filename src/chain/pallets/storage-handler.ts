import type { CallArgs } from '../calls.ts';
import type { StateReader, StateValue, StateWriter } from '../state.ts';
import { paidTo, type Rule, reject } from './context.ts';
import { ownersOf } from './oss.ts';

/**
 * Who may store, and how much (CESS's storage_handler, simplified): an account buys space in whole GiB, paying the
 * protocol's price to the pot by transfers directly before the purchase in the same `batchAll`, for itself or for
 * another account (a sponsor, the dev network's operator). Miners serve uploads from an account that holds space, or
 * from an operator (`oss.authorize`) of one — CESS's gateway model — and look this up on chain, so a new organisation
 * needs no miner restart.
 *
 * Space is a quota: every declaration debits its owner (whoever signs it, the owner or its operator) by what the file
 * takes (`spaceTakenBy`), a declaration beyond what is left is rejected, and every removal of a file credits it back.
 * Simplified against CESS: space never expires (CESS leases it by days).
 */
export interface SpaceInfo {
  [key: string]: StateValue;
  /** GiB bought for the account, all purchases together. */
  gib: number;
  /** Block of the first purchase. */
  since: number;
}

export const GIB = 1024 ** 3;

const spaceKey = (account: string) => `storageHandler/space/${account}`;
/**
 * Bytes of the account's space its files take. A key of its own rather than a field of `SpaceInfo`: a chain indexed
 * before quotas has none, which reads as 0, so no migration rewrites anything (files declared before quotas were never
 * debited, carry no `charged`, and are never credited either: see `FileInfo.charged`).
 */
const usedKey = (account: string) => `storageHandler/used/${account}`;

/** Prefix of a quota rejection's reason, which clients (the gateway's S3, DeOSS and Alt-DA APIs) recognise. */
export const QUOTA_EXCEEDED = 'storage space exceeded';

export const spaceOf = (state: StateReader, account: string): SpaceInfo | undefined =>
  state.get<SpaceInfo>(spaceKey(account));

/** An account's space in bytes: bought, taken by its files, and left. */
export interface SpaceUse {
  readonly bought: number;
  readonly used: number;
  readonly left: number;
}

export function spaceUseOf(state: StateReader, account: string): SpaceUse {
  const bought = (spaceOf(state, account)?.gib ?? 0) * GIB;
  const used = state.get<number>(usedKey(account)) ?? 0;
  return { bought, used, left: Math.max(0, bought - used) };
}

/**
 * What a declared file takes from its owner's space: its segments at full size, the capacity the network holds for it
 * once the last segment is zero-padded. Not its byte size: a 1-byte file occupies a whole segment on every one of its
 * miners, and charging the size would let many tiny files fill the network for almost nothing. Not the coded bytes
 * (data + parity, 3× with 4+8) either: that redundancy is the network's, and the price per GiB covers it, so a GiB bought
 * stores a GiB of segments.
 */
export const spaceTakenBy = (segments: number, profile: { readonly segmentSize: number }): number =>
  segments * profile.segmentSize;

/** Human-readable bytes for reasons: exact below a KiB, else two decimals of the largest fitting binary unit. */
export function formatBytes(bytes: number): string {
  const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  if (bytes < 1024) return `${bytes} B`;
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(2)} ${units[unit]}`;
}

/**
 * Takes `bytes` of `owner`'s space for a declaration, or rejects it saying what was asked, what is left and what to
 * do. O(1): one read of the space, one of the counter, one write.
 */
export function debitSpace(state: StateWriter, owner: string, bytes: number, what: string): void {
  const { bought, used, left } = spaceUseOf(state, owner);
  if (bytes > left) {
    reject(
      `${QUOTA_EXCEEDED}: ${what} takes ${formatBytes(bytes)} (${bytes} B) of ${owner}'s space, which has ${formatBytes(left)} (${left} B) left of ${formatBytes(bought)} bought; buy more with \`ailink space buy GIB --for ${owner}\` or delete files`,
    );
  }
  state.put(usedKey(owner), used + bytes);
}

/** Gives back what a removed file took (never below 0). */
export function creditSpace(state: StateWriter, owner: string, bytes: number): void {
  if (bytes === 0) return;
  const used = state.get<number>(usedKey(owner)) ?? 0;
  const after = Math.max(0, used - bytes);
  if (after === 0) state.delete(usedKey(owner));
  else state.put(usedKey(owner), after);
}

/** True when the chain lets `account` store: it holds space, or an account holding space made it its operator. */
export function mayStore(state: StateReader, account: string): boolean {
  if (spaceOf(state, account) !== undefined) return true;
  return ownersOf(state, account).some((owner) => spaceOf(state, owner) !== undefined);
}

const buySpace: Rule<CallArgs<'storageHandler.buySpace'>> = (state, ctx, args) => {
  const owner = args.owner ?? ctx.caller;
  const price = BigInt(args.gib) * ctx.config.spacePrice;
  // Only the transfers directly before this call count (not `paidToPot`, the whole batch's): one payment must not
  // buy space twice in a batch of several purchases.
  const paid = paidTo(ctx, ctx.config.pot);
  if (paid < price) {
    reject(
      `${args.gib} GiB cost ${price} (${ctx.config.spacePrice} per GiB) but ${paid} was paid to the pot ${ctx.config.pot} directly before the purchase`,
    );
  }
  const held = spaceOf(state, owner);
  state.put(spaceKey(owner), {
    gib: (held?.gib ?? 0) + args.gib,
    since: held?.since ?? ctx.block.number,
  } satisfies SpaceInfo);
};

export const storageHandler = { buySpace };
