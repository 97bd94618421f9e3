import { AilinkError } from '../shared/errors.ts';
import type { ChainCall, ChainClient, ChainSigner, SubmitOptions } from './client.ts';
import type { CallRecord, Indexer } from './indexer.ts';

/**
 * Submits protocol calls as one extrinsic and waits until the indexer has applied its block, so the caller reads its
 * own effect. A call the rules rejected is an error here, with the rule's reason.
 * @throws CHAIN_CALL_REJECTED, and what `ChainClient.submit` and `Indexer.waitFor` throw
 */
export async function submitProtocol(
  deps: { chain: Pick<ChainClient, 'submit'>; indexer: Pick<Indexer, 'waitFor' | 'calls'> },
  signer: ChainSigner,
  calls: readonly ChainCall[],
  options: SubmitOptions = {},
): Promise<{ block: number; records: CallRecord[] }> {
  const { block, records } = await appliedRecords(deps, signer, calls, options);
  const rejected = records.find((r) => r.outcome === 'rejected');
  if (rejected) {
    throw new AilinkError(
      'CHAIN_CALL_REJECTED',
      `${rejected.call ?? 'a protocol call'} was rejected: ${rejected.reason}`,
      {
        details: { block, call: rejected.call, reason: rejected.reason },
      },
    );
  }
  return { block, records };
}

/** What the rules made of one protocol call of a submission. */
export type CallOutcome = { readonly applied: true } | { readonly applied: false; readonly reason: string };

/**
 * Submits protocol calls as one extrinsic, waits until the indexer has applied its block and says, in order, what
 * the rules made of each call: for calls that stand on their own (admissions of several accounts), where one's
 * rejection is that call's answer and not the others'.
 * @throws what `ChainClient.submit` and `Indexer.waitFor` throw (the extrinsic as a whole failed: nothing applied)
 */
export async function submitProtocolEach(
  deps: { chain: Pick<ChainClient, 'submit'>; indexer: Pick<Indexer, 'waitFor' | 'calls'> },
  signer: ChainSigner,
  calls: readonly ChainCall[],
  options: SubmitOptions = {},
): Promise<{ block: number; outcomes: CallOutcome[] }> {
  const { block, records, firstItem } = await appliedRecords(deps, signer, calls, options);
  const byItem = new Map(records.map((r) => [r.item - firstItem, r]));
  return {
    block,
    outcomes: calls.map((_, i): CallOutcome => {
      const r = byItem.get(i);
      if (r === undefined)
        // Every remark with the protocol's magic is recorded, applied or not: a missing one was not read as a call.
        return {
          applied: false,
          reason: `the index recorded no protocol call at item ${i} of block ${block}`,
        };
      return r.outcome === 'applied'
        ? { applied: true }
        : { applied: false, reason: r.reason ?? 'rejected without a reason' };
    }),
  };
}

/** Submits, waits for the index to apply the block, and returns the index's records of these calls. */
async function appliedRecords(
  deps: { chain: Pick<ChainClient, 'submit'>; indexer: Pick<Indexer, 'waitFor' | 'calls'> },
  signer: ChainSigner,
  calls: readonly ChainCall[],
  options: SubmitOptions,
): Promise<{ block: number; records: CallRecord[]; firstItem: number }> {
  const inclusion = await deps.chain.submit(signer, calls, options);
  await deps.indexer.waitFor(inclusion.blockNumber, options.deadlineMs);
  const records = deps.indexer
    .calls({ fromBlock: inclusion.blockNumber })
    .filter(
      (r) =>
        r.block === inclusion.blockNumber &&
        r.extrinsic === inclusion.extrinsicIndex &&
        r.item >= inclusion.firstItem &&
        r.item < inclusion.firstItem + calls.length,
    );
  return { block: inclusion.blockNumber, records, firstItem: inclusion.firstItem };
}
