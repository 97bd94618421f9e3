import type { CallArgs } from '../calls.ts';
import type { StateReader, StateValue } from '../state.ts';
import { paidTo, type Rule, reject } from './context.ts';
import { ownersOf } from './oss.ts';

/**
 * Who may store (CESS's storage_handler, simplified): an account buys space in whole GiB, paying the protocol's
 * price to the pot by transfers directly before the purchase in the same `batchAll`, for itself or for another account (a sponsor, the dev network's
 * operator). Miners serve uploads from an account that holds space, or from an operator (`oss.authorize`) of one —
 * CESS's gateway model — and look this up on chain, so a new organisation needs no miner restart.
 *
 * Simplified against CESS: space never expires (CESS leases it by days) and is not yet debited by declarations, so
 * it is a right to store rather than a quota.
 */
export interface SpaceInfo {
  [key: string]: StateValue;
  /** GiB bought for the account, all purchases together. */
  gib: number;
  /** Block of the first purchase. */
  since: number;
}

const spaceKey = (account: string) => `storageHandler/space/${account}`;

export const spaceOf = (state: StateReader, account: string): SpaceInfo | undefined =>
  state.get<SpaceInfo>(spaceKey(account));

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
