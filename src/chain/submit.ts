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
  const rejected = records.find((r) => r.outcome === 'rejected');
  if (rejected) {
    throw new AilinkError(
      'CHAIN_CALL_REJECTED',
      `${rejected.call ?? 'a protocol call'} was rejected: ${rejected.reason}`,
      {
        details: { block: inclusion.blockNumber, call: rejected.call, reason: rejected.reason },
      },
    );
  }
  return { block: inclusion.blockNumber, records };
}
