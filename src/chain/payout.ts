import { AilinkError, hasCode } from '../shared/errors.ts';
import type { ChainCall, ChainClient, ChainSigner } from './client.ts';
import { protocolCall } from './config.ts';
import type { Indexer } from './indexer.ts';
import type { ProtocolConfig } from './pallets/context.ts';
import { type Debt, debtsOf } from './pallets/pot.ts';
import { submitProtocol } from './submit.ts';

/** Debts one payout extrinsic settles at most (`pot.payout` names up to 64). */
export const MAX_DEBTS_PER_PAYOUT = 64;

/**
 * The payout service's one step, run by whoever holds the pot's key (the network's operator): pays the open debts
 * the rules recorded (pallets/pot.ts), oldest first, as one extrinsic — a transfer per debt, then `pot.payout`
 * naming them in the same order — and waits until the indexer has checked it. Returns the debts paid (none: nothing
 * was sent).
 * @throws INVALID_INPUT when `pot` is not the pot of the indexer's protocol configuration; what `submitProtocol`
 *   throws (e.g. CHAIN_CALL_FAILED when the pot cannot pay)
 */
export async function payDebts(
  deps: {
    chain: Pick<ChainClient, 'submit'>;
    indexer: Pick<Indexer, 'waitFor' | 'calls' | 'sync' | 'state'>;
    config: Pick<ProtocolConfig, 'pot'>;
  },
  pot: ChainSigner,
  options: {
    readonly max?: number;
    /** Debts named by an earlier payout whose fate is unknown (it may still land): not paid again here. */
    readonly unsettled?: ReadonlySet<string>;
  } = {},
): Promise<{ readonly paid: readonly (Debt & { id: string })[]; readonly block: number | null }> {
  if (pot.address !== deps.config.pot) {
    throw new AilinkError(
      'INVALID_INPUT',
      `${pot.address} is not the pot of this network (${deps.config.pot}): only the pot's key pays its debts`,
    );
  }
  await deps.indexer.sync();
  const debts = debtsOf(deps.indexer.state)
    .filter((d) => !options.unsettled?.has(d.id))
    .slice(0, Math.min(options.max ?? MAX_DEBTS_PER_PAYOUT, MAX_DEBTS_PER_PAYOUT));
  if (debts.length === 0) return { paid: [], block: null };
  const calls: ChainCall[] = [
    ...debts.map((d): ChainCall => ({ kind: 'transfer', to: d.to, amount: BigInt(d.amount) })),
    protocolCall('pot.payout', { debts: debts.map((d) => d.id) }),
  ];
  try {
    const { block } = await submitProtocol(deps, pot, calls);
    return { paid: debts, block };
  } catch (err) {
    if (!hasCode(err, 'CHAIN_TIMEOUT')) throw err;
    // Sent, fate unknown: say which debts, so that the next payout leaves them until this one has had time to land.
    throw new AilinkError(
      'CHAIN_TIMEOUT',
      `${err.message} (a payout of debts ${debts.map((d) => d.id).join(', ')})`,
      {
        cause: err,
        details: { debts: debts.map((d) => d.id) },
      },
    );
  }
}
