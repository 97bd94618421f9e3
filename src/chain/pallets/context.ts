import type { StateWriter } from '../state.ts';

/** What the chain supplies to a call: who signed it, and the block that orders it, times it and seeds randomness. */
export interface CallContext {
  /** SS58 of the extrinsic's signer. */
  readonly caller: string;
  readonly block: { readonly number: number; readonly hash: string; readonly timestamp: number };
  /** Plancks the caller paid to the protocol's pot earlier in the same extrinsic (a `batchAll`). */
  readonly paidToPot: bigint;
  readonly config: ProtocolConfig;
}

/** The protocol's genesis parameters: every indexer of one network must use the same ones. */
export interface ProtocolConfig {
  /** The account collateral is paid to. */
  readonly pot: string;
  /** Least collateral a miner must pay when registering, in the chain's smallest unit. */
  readonly minCollateral: bigint;
  /** Blocks a claimer has to complete a restoral order before anyone may claim it again. */
  readonly restoralClaimBlocks: number;
}

/** A call broke a rule. Thrown inside a call, it discards every write the call made. */
export class CallRejected extends Error {
  override readonly name = 'CallRejected';
}

export function reject(reason: string): never {
  throw new CallRejected(reason);
}

export type Rule<A> = (state: StateWriter, ctx: CallContext, args: A) => void;
