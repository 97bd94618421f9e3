import type { CallArgs } from '../calls.ts';
import type { StateReader, StateValue, StateWriter } from '../state.ts';
import { scheduleAudit } from './audit.ts';
import { type BlockContext, type CallContext, paidTo, type Rule, reject } from './context.ts';
import { ordersOnExit } from './file-bank.ts';
import { requirePeerProof } from './peer-key.ts';
import { openDebt } from './pot.ts';

/** A storage miner as sminer records it. */
export interface MinerInfo {
  [key: string]: string | number | string[];
  peerId: string;
  addrs: string[];
  capacity: number;
  collateral: string;
  state: 'positive' | 'exit';
  registeredAt: number;
}

export const minerKey = (address: string) => `sminer/miners/${address}`;
const peerKey = (peerId: string) => `sminer/peers/${peerId}`;

export const getMiner = (state: StateReader, address: string): MinerInfo | undefined =>
  state.get<MinerInfo>(minerKey(address));

/** A registered miner that has not exited. */
export function positiveMiner(state: StateReader, address: string, role: string): MinerInfo {
  const miner = getMiner(state, address);
  if (miner === undefined) reject(`${role} ${address} is not a registered miner`);
  if (miner.state !== 'positive') reject(`${role} ${address} has exited`);
  return miner;
}

/** The peer id must be proven by its own key (`peerSignature`): a copied one was taken first-come, first-served. */
const register: Rule<CallArgs<'sminer.register'>> = (state, ctx, args) => {
  if (getMiner(state, ctx.caller) !== undefined) reject(`miner ${ctx.caller} is already registered`);
  requirePeerProof('sminer.register', ctx, args.peerId, args.peerSignature);
  const holder = state.get<string>(peerKey(args.peerId));
  if (holder !== undefined) reject(`peer id ${args.peerId} is already registered by ${holder}`);
  const collateral = BigInt(args.collateral);
  if (collateral < ctx.config.minCollateral) {
    reject(`collateral ${collateral} is below the minimum ${ctx.config.minCollateral}`);
  }
  // Only the transfers directly before the registration count, as for every paid call: with the batch's total
  // (`paidToPot`), a payment refunded to a rejected call earlier in the batch paid for the registration too.
  const paid = paidTo(ctx, ctx.config.pot);
  if (paid < collateral) {
    reject(
      `collateral ${collateral} was declared but ${paid} was paid to the pot ${ctx.config.pot} directly before the registration`,
    );
  }
  state.put(minerKey(ctx.caller), {
    peerId: args.peerId,
    addrs: args.addrs,
    capacity: args.capacity,
    collateral: args.collateral,
    state: 'positive',
    registeredAt: ctx.block.number,
  } satisfies MinerInfo);
  state.put(peerKey(args.peerId), ctx.caller);
  // With a per-miner challenge period, a miner enters the audit schedule when it registers (a no-op without one).
  scheduleAudit(state, ctx, ctx.caller);
};

const updateAddrs: Rule<CallArgs<'sminer.updateAddrs'>> = (state, ctx, args) => {
  const miner = positiveMiner(state, ctx.caller, 'caller');
  state.put(minerKey(ctx.caller), { ...miner, addrs: args.addrs });
};

/**
 * A miner leaving (by `sminer.exit` or forced out by misses): the pot owes it its collateral minus what was slashed
 * (a debt, pallets/pot.ts), and the miner's recorded collateral becomes 0 — nothing is left to slash.
 */
export function exitMiner(state: StateWriter, ctx: BlockContext, address: string, miner: MinerInfo): void {
  openDebt(state, ctx, address, BigInt(miner.collateral), 'sminer.exit: collateral minus slashes');
  state.put(minerKey(address), { ...miner, state: 'exit', collateral: '0' } satisfies MinerInfo);
}

/** Every column the miner holds gets a restoral order, as CESS does on exit; its collateral is owed back. */
const exit: Rule<CallArgs<'sminer.exit'>> = (state: StateWriter, ctx: CallContext) => {
  const miner = positiveMiner(state, ctx.caller, 'caller');
  // With its collateral owed back on exit, leaving before an unanswered challenge settled would escape its slash.
  const open = state.get<{ [key: string]: StateValue }>(`audit/challenges/${ctx.caller}`);
  if (open !== undefined && open.result === null) {
    reject(
      `miner ${ctx.caller} has an unanswered challenge (deadline block ${open.deadline}): it may exit once the challenge is settled`,
    );
  }
  exitMiner(state, ctx, ctx.caller, miner);
  ordersOnExit(state, ctx, ctx.caller);
};

export const sminer = { register, updateAddrs, exit };
