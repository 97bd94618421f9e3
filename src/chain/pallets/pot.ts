import type { CallArgs } from '../calls.ts';
import type { StateReader, StateValue, StateWriter } from '../state.ts';
import type { BlockContext, Payment, Rule } from './context.ts';
import { reject } from './context.ts';

/**
 * The pot as an escrow anyone can check (issue 15 items 6 + 10a). The pot (`ProtocolConfig.pot`) is an ordinary
 * account whose key the network's operator holds. Money goes in only by transfers placed directly before the call
 * they pay for; the rules record, as a debt, every amount the pot owes back (a paid call the rules rejected, the owner's
 * share of a paid market request, an exiting miner's collateral minus its slashes). The operator pays a debt with a
 * transfer followed by `pot.payout {debts}` naming it; the rules match each transfer with the debt it names, and
 * anything else the pot pays — to the wrong account, more than owed, a debt that does not exist or is paid, or a
 * transfer not followed by a payout at all — is recorded as a flag (`pot/flags/…`) that anyone replaying the chain
 * sees. What the rules cannot do is make the operator pay: an open debt stays on record until it is paid.
 */

/** An amount the pot owes. `amount` is what is still owed (a partial payment lowers it). */
export interface Debt {
  [key: string]: StateValue;
  to: string;
  amount: string;
  /** What it is for, e.g. "refund: market.request rejected", "market.request: owner's share", "sminer.exit". */
  for: string;
  openedAt: number;
}

/** A settled debt: what was owed, and when the payout that settled it was recorded. */
export interface PaidDebt extends Debt {
  paidAt: number;
}

/** Money the pot paid that no debt explains. */
export interface PotFlag {
  [key: string]: StateValue;
  block: number;
  to: string;
  amount: string;
  /** The debt the payout named, if any. */
  debt: string | null;
  reason: string;
}

export const DEBTS_PREFIX = 'pot/debts/';
export const PAID_PREFIX = 'pot/paid/';
export const FLAGS_PREFIX = 'pot/flags/';
const DEBT_SEQ = 'pot/seq/debts';
const FLAG_SEQ = 'pot/seq/flags';
const pad = (n: number) => String(n).padStart(10, '0');
export const debtKey = (id: string) => `${DEBTS_PREFIX}${id}`;
export const paidKey = (id: string) => `${PAID_PREFIX}${id}`;

/** Records that the pot owes `amount` to `to`; returns the debt's id (a sequence number, 10 digits). */
export function openDebt(
  state: StateWriter,
  ctx: BlockContext,
  to: string,
  amount: bigint,
  why: string,
): string | null {
  if (amount <= 0n) return null;
  const n = state.get<number>(DEBT_SEQ) ?? 0;
  state.put(DEBT_SEQ, n + 1);
  const id = pad(n);
  state.put(debtKey(id), {
    to,
    amount: amount.toString(),
    for: why,
    openedAt: ctx.block.number,
  } satisfies Debt);
  return id;
}

/** Records money the pot paid that no debt explains. */
export function flagPayment(
  state: StateWriter,
  ctx: BlockContext,
  payment: Payment,
  debt: string | null,
  reason: string,
): void {
  const n = state.get<number>(FLAG_SEQ) ?? 0;
  state.put(FLAG_SEQ, n + 1);
  state.put(`${FLAGS_PREFIX}${pad(n)}`, {
    block: ctx.block.number,
    to: payment.to,
    amount: payment.amount.toString(),
    debt,
    reason,
  } satisfies PotFlag);
}

/** Plancks paid to the pot by the transfers directly before a call. */
export const paidToPotDirectly = (ctx: {
  readonly payments: readonly Payment[];
  readonly config: { readonly pot: string };
}): bigint => ctx.payments.reduce((sum, p) => (p.to === ctx.config.pot ? sum + p.amount : sum), 0n);

/**
 * `pot.payout {debts}`: the pot's transfers directly before it pay the named debts, the i-th transfer the i-th
 * debt. An exact transfer settles its debt; a smaller one lowers it; everything else is flagged.
 */
const payout: Rule<CallArgs<'pot.payout'>> = (state, ctx, args) => {
  if (ctx.caller !== ctx.config.pot) {
    reject(`only the pot ${ctx.config.pot} pays debts; ${ctx.caller} is not it`);
  }
  if (ctx.payments.length === 0) reject('a payout names debts but no transfer precedes it');
  ctx.payments.forEach((payment, i) => {
    const id = args.debts[i];
    if (id === undefined) {
      flagPayment(state, ctx, payment, null, 'the payout names no debt for this transfer');
      return;
    }
    const debt = state.get<Debt>(debtKey(id));
    if (debt === undefined) {
      const paid = state.get<PaidDebt>(paidKey(id));
      flagPayment(
        state,
        ctx,
        payment,
        id,
        paid === undefined ? `no debt ${id} exists` : `debt ${id} was paid in block ${paid.paidAt}`,
      );
      return;
    }
    if (payment.to !== debt.to) {
      flagPayment(state, ctx, payment, id, `debt ${id} is owed to ${debt.to}, not ${payment.to}`);
      return;
    }
    const owed = BigInt(debt.amount);
    if (payment.amount < owed) {
      state.put(debtKey(id), { ...debt, amount: (owed - payment.amount).toString() } satisfies Debt);
      return;
    }
    state.delete(debtKey(id));
    state.put(paidKey(id), { ...debt, paidAt: ctx.block.number } satisfies PaidDebt);
    if (payment.amount > owed) {
      flagPayment(
        state,
        ctx,
        { to: payment.to, amount: payment.amount - owed },
        id,
        `debt ${id} was ${owed}; ${payment.amount - owed} more was paid`,
      );
    }
  });
};

export const pot = { payout };

/** Open debts, in id order. */
export const debtsOf = (state: StateReader): (Debt & { id: string })[] =>
  state
    .scan(DEBTS_PREFIX)
    .map(([key, value]) => ({ ...(value as Debt), id: key.slice(DEBTS_PREFIX.length) }));

/** Flags, in order. */
export const potFlagsOf = (state: StateReader): PotFlag[] =>
  state.scan(FLAGS_PREFIX).map(([, v]) => v as PotFlag);
