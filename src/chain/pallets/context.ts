import type { StateWriter } from '../state.ts';

/** What every block supplies to the rules: its number, hash (the randomness seed) and time, and the configuration. */
export interface BlockContext {
  readonly block: { readonly number: number; readonly hash: string; readonly timestamp: number };
  /** The chain's genesis hash (0x-hex): signatures that must not be replayed on another network are bound to it. */
  readonly genesisHash: string;
  readonly config: ProtocolConfig;
}

/** What the chain supplies to a call besides its block: who signed it, and what it paid in the same extrinsic. */
export interface CallContext extends BlockContext {
  /** SS58 of the extrinsic's signer. */
  readonly caller: string;
  /** Plancks the caller paid to the protocol's pot earlier in the same extrinsic (a `batchAll`). */
  readonly paidToPot: bigint;
  /**
   * The native transfers of the caller placed directly before this call in the same extrinsic (after the previous
   * remark, if any), from applied calls only: a transfer pays for the next call and no other.
   */
  readonly payments: readonly Payment[];
}

/** A native balances transfer found in the extrinsic. */
export interface Payment {
  readonly to: string;
  readonly amount: bigint;
}

/** The protocol's genesis parameters: every indexer of one network must use the same ones. */
export interface ProtocolConfig {
  /** The account collateral is paid to. */
  readonly pot: string;
  /** Least collateral a miner must pay when registering, in the chain's smallest unit. */
  readonly minCollateral: bigint;
  /** What one GiB of storage space costs (`storageHandler.buySpace`), paid to the pot. */
  readonly spacePrice: bigint;
  /** Blocks a claimer has to complete a restoral order before anyone may claim it again. */
  readonly restoralClaimBlocks: number;
  /**
   * Blocks an owner has to release the key for an accepted market request (`market.grant`). Past them the request
   * expires, and what the reader paid into escrow for it is owed back to the reader: nobody pays for a key that never
   * came (issue 15).
   */
  readonly requestExpiryBlocks: number;
  /**
   * The verifier set (CESS's TEE workers), fixed by the network's genesis: the only accounts `teeWorker.register`
   * accepts, so the only ones whose tag reports and audit results count. Open registration let a miner register a
   * verifier of its own and sign its own passing results (issue 15). A fixed list rather than a governance account
   * with add/remove calls: every indexer of a network already has to agree on this configuration (the indexer
   * refuses a file of another), so the list is exactly as binding as the chain's genesis, and there is no
   * governance key to guard. Changing the set is a new configuration, i.e. a re-index by everyone. Empty: nobody
   * may register, and no challenge is issued (none could be answered).
   */
  readonly verifiers: readonly string[];
  readonly audit: AuditConfig;
  /**
   * Placement drawn by the rules (issue 17 item 6). Set, a declaration names a placement ticket (an epoch and a slot)
   * and a receipt counts only from a miner its draw lists (src/chain/pallets/placement.ts). Absent (protocol files
   * written before it): any positive miner takes any column, and an old network's chain replays to the same digest.
   */
  readonly placement?: PlacementConfig;
}

/**
 * The draw the rules check. What an uploader can still choose is bounded: it picks among `slotsPerEpoch` ×
 * (`epochsValid` + 1) draws per account, and 12 of each draw's `columns + spares` miners.
 */
export interface PlacementConfig {
  /**
   * Blocks per placement epoch. The first block of an epoch fixes its seed (the block's hash) and a snapshot of every
   * positive miner's free space: every draw of the epoch uses them, so that uploads landing meanwhile do not change
   * anyone else's draw.
   */
  readonly epochBlocks: number;
  /**
   * Past epochs a declaration may still name: an upload draws its miners, sends them its columns, then declares, so
   * this bounds how long an upload may take (and how long snapshots are kept).
   */
  readonly epochsValid: number;
  /** Draws an account gets per epoch (slots 0 … n−1, each declared once): its uploads in flight at a time. */
  readonly slotsPerEpoch: number;
  /** Drawn miners after the columns' that may take a column whose miner failed (the client's spares). */
  readonly spares: number;
  /** Free space counts toward a miner's weight only up to this many bytes (the per-miner cap). */
  readonly capBytes: number;
}

/** Storage audits: how often, how long a miner has, what a miss costs, and the proof parameters everyone shares. */
export interface AuditConfig {
  /** A challenge is issued in every block whose number is a multiple of this (CESS: 4). */
  readonly challengeInterval: number;
  /** Miners picked per challenge (CESS: 1). Unused when `challengePeriodBlocks` is set. */
  readonly challengeMiners: number;
  /**
   * Blocks between two challenges of one miner, on average (issue 17 item 7). Set, every registered miner carries a
   * due block (`audit/due/<block>/<miner>`) and the hook of a block reads only the miners due in it: its cost is
   * O(challenged miners), not O(all miners), and each miner is challenged once per period however many there are.
   * Absent (protocol files written before it): the old draw of `challengeMiners` every `challengeInterval` blocks
   * over all miners, so an old network's chain replays to the same state digest.
   */
  readonly challengePeriodBlocks?: number;
  /** Blocks every challenge gets, plus one per `…BytesPerBlock` of data held (CESS: 50, 24 MiB, 203,613,264 B). */
  readonly slipBaseBlocks: number;
  readonly serviceBytesPerBlock: number;
  readonly idleBytesPerBlock: number;
  /** Share of collateral slashed on the 2nd miss in a row, and on every later one (CESS: 5 %, 15 %). */
  readonly slashBasisPoints: readonly [number, number];
  /** Misses in a row that force a miner out (CESS: 100). */
  readonly exitAfterMisses: number;
  /**
   * Blocks a miner has, after a column is placed on it (reported or restored), to get it tagged and reported
   * (`fileBank.calculateReport`), plus one per `serviceBytesPerBlock` of the column. Only tagged columns are
   * challenged, so without this deadline a miner that never had a column tagged was never asked to prove it (issue
   * 15). Past it, the column counts as a miss for its holder and gets a restoral order. CESS has no such deadline.
   */
  readonly tagDeadlineBlocks: number;
  readonly proofs: {
    /** PoDR2 block size in bytes and blocks challenged per fragment (CESS: 8 KiB, 47 of 1024). */
    readonly blockSize: number;
    readonly challengeBlocks: number;
    /** PoIS: 32-byte labels per idle file, DRG in-degree, openings per challenge. */
    readonly idleNodes: number;
    readonly idleParents: number;
    readonly idleOpenings: number;
    /**
     * PoIS: PBKDF2 iterations per label. With idleNodes it sets how long relabelling an idle file takes, one label
     * after another; a network keeps that well above its response deadline (slipBaseBlocks × block time) so a miner
     * that deleted its idle files cannot regenerate the challenged ones in time (`npm run bench:pois` sizes it).
     */
    readonly idleRounds: number;
  };
}

/** Planck paid to `to` by the transfers directly before this call: each payment pays for one call only. */
export const paidTo = (ctx: CallContext, to: string): bigint =>
  ctx.payments.reduce((sum, p) => (p.to === to ? sum + p.amount : sum), 0n);

/** A call broke a rule. Thrown inside a call, it discards every write the call made. */
export class CallRejected extends Error {
  override readonly name = 'CallRejected';
}

export function reject(reason: string): never {
  throw new CallRejected(reason);
}

export type Rule<A> = (state: StateWriter, ctx: CallContext, args: A) => void;
