import {
  type ChainSigner,
  connectChain,
  openIndexer,
  type ProtocolConfig,
  payDebts,
} from '../chain/index.ts';
import { hasCode } from '../shared/errors.ts';
import { ROLE_CHAIN_WAIT_MS } from './session.ts';

/**
 * The pot's payout service: whoever holds the pot's key (a dev network's operator) pays the debts the rules record —
 * refunds of rejected paid calls, owners' prices released from escrow, expired requests, exiting miners' collateral —
 * as `payDebts` steps, one every `intervalMs` while there is something to pay. Every payout is checked by every
 * indexer (src/chain/pallets/pot.ts): the service can delay a payment, not misdirect one unseen.
 */
export interface PayoutService {
  /** Pays what is owed now, without waiting for the next step (tests, and a clean shutdown). */
  payNow(): Promise<number>;
  stop(): Promise<void>;
}

export interface PayoutServiceOptions {
  readonly endpoint: string;
  readonly protocol: ProtocolConfig;
  /** The pot's key: `protocol.pot` must be its address. */
  readonly pot: ChainSigner;
  /** The service's own index of the chain (SQLite). */
  readonly indexPath: string;
  /** How long between steps (default 5 s: a paid reader or owner waits a few blocks at most). */
  readonly intervalMs?: number;
  /** Each step's payout, when it paid anything. */
  readonly onPaid?: (debts: number, block: number) => void;
  /** A step that failed (the chain away, the pot short of funds): the next step tries again. */
  readonly onError?: (err: unknown) => void;
}

/** How long a payout whose fate is unknown may still land (a mortal transaction's lifetime, with room). */
const UNSETTLED_MS = 10 * 60_000;

export async function startPayoutService(options: PayoutServiceOptions): Promise<PayoutService> {
  const chain = await connectChain(options.endpoint, { connectTimeoutMs: ROLE_CHAIN_WAIT_MS });
  const indexer = openIndexer(chain, { path: options.indexPath, config: options.protocol });
  const deps = { chain, indexer, config: options.protocol };
  const intervalMs = options.intervalMs ?? 5000;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  // One step at a time: a payout still in flight would otherwise be paid again by the next step.
  let running: Promise<number> = Promise.resolve(0);
  // Debts of a payout whose fate is unknown (no answer in time), and since when: left alone for a transaction's
  // lifetime, so a payout that lands late is not doubled by the next step's.
  const unsettled = new Map<string, number>();

  const step = async (): Promise<number> => {
    for (const [id, at] of unsettled) if (Date.now() - at > UNSETTLED_MS) unsettled.delete(id);
    try {
      const { paid, block } = await payDebts(deps, options.pot, { unsettled: new Set(unsettled.keys()) });
      if (block !== null) options.onPaid?.(paid.length, block);
      return paid.length;
    } catch (err) {
      if (hasCode(err, 'CHAIN_TIMEOUT'))
        for (const id of (err.details?.debts as string[] | undefined) ?? []) unsettled.set(id, Date.now());
      throw err;
    }
  };
  const payNow = () => {
    running = running.then(step, step);
    return running;
  };
  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      payNow()
        .catch((err: unknown) => options.onError?.(err))
        .finally(schedule);
    }, intervalMs);
  };
  schedule();

  return {
    payNow,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running.catch(() => {});
      indexer.close();
      await chain.close();
    },
  };
}
