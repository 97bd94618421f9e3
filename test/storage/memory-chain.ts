import type { ChainCall, ChainSigner, Inclusion } from '../../src/chain/client.ts';
import { spacePurchase } from '../../src/chain/config.ts';
import type { CallRecord } from '../../src/chain/indexer.ts';
import type { Payment, ProtocolConfig } from '../../src/chain/pallets/context.ts';
import { applyBlockHooks, applyRemark } from '../../src/chain/protocol.ts';
import { decodeRemark, encodeRemark } from '../../src/chain/remark.ts';
import { createMemoryState, Overlay, type StateWrite } from '../../src/chain/state.ts';
import type { Account } from '../../src/shared/account.ts';
import { CONFIG, ctxAt, hex } from '../chain/helpers.ts';

// An in-memory twin of the chain and its index for the storage clients that submit protocol calls: extrinsics go
// through the real remark codec and the real rules (applyRemark) with the payments of the batch, exactly as the
// indexer applies them.

const applyWrite = (state: Overlay, w: StateWrite) =>
  w.value === null ? state.delete(w.key) : state.put(w.key, w.value);

/** The chain and its index, in memory: each `submit` is one block holding one extrinsic. */
export function memoryChain(config: ProtocolConfig = CONFIG) {
  const state = createMemoryState();
  const records: CallRecord[] = [];
  const submitted: { signer: string; calls: string[] }[] = [];
  let height = 0;
  const hooks: { beforeSubmit?: (calls: readonly ChainCall[]) => Promise<void> } = {};
  const chain = {
    async submit(signer: ChainSigner, calls: readonly ChainCall[]): Promise<Inclusion> {
      await hooks.beforeSubmit?.(calls);
      submitted.push({
        signer: signer.address,
        calls: calls.map((c) => {
          if (c.kind === 'transfer') return `transfer ${c.amount} to ${c.to}`;
          const d = decodeRemark(c.payload);
          return d.kind === 'call' ? d.call.name : 'remark';
        }),
      });
      const block = ++height;
      const pending = new Overlay(state);
      // What the runtime does first in every block (expiries, audits), as the indexer applies it.
      for (const w of applyBlockHooks(state, ctxAt('', block, 0n, [], config))) applyWrite(pending, w);
      let payments: Payment[] = [];
      calls.forEach((c, item) => {
        if (c.kind === 'transfer') {
          payments.push({ to: c.to, amount: c.amount });
          return;
        }
        const outcome = applyRemark(pending, ctxAt(signer.address, block, 0n, payments, config), c.payload);
        payments = [];
        if (outcome.kind === 'foreign') return;
        if (outcome.kind === 'applied') {
          for (const w of outcome.writes) applyWrite(pending, w);
        }
        records.push({
          block,
          extrinsic: 0,
          item,
          signer: signer.address,
          call: outcome.call,
          outcome: outcome.kind,
          reason: outcome.kind === 'rejected' ? outcome.reason : null,
        });
      });
      state.apply(pending.writes());
      return {
        blockHash: hex(`block/${block}`),
        blockNumber: block,
        extrinsicIndex: 0,
        firstItem: 0,
        events: [],
      };
    },
  };
  const indexer = {
    state,
    config,
    sync: async () => height,
    // The hash ctxAt gives the last block, as the real indexer reports the last applied block's.
    blockHash: () => ctxAt('', height).block.hash,
    waitFor: async () => {},
    calls: (filter: { outcome?: 'applied' | 'rejected'; fromBlock?: number } = {}) =>
      records.filter(
        (r) =>
          r.block >= (filter.fromBlock ?? 0) &&
          (filter.outcome === undefined || r.outcome === filter.outcome),
      ),
  };
  /** Applies one call as `signer` (with payments before it) and insists that it applied. */
  const run = async (signer: Account, calls: ChainCall[]) => {
    const inclusion = await chain.submit(signer, calls);
    const rejected = records.find((r) => r.block === inclusion.blockNumber && r.outcome === 'rejected');
    if (rejected) throw new Error(`setup call rejected: ${rejected.reason}`);
  };
  /** Produces `blocks` empty blocks. */
  const mine = async (blocks: number) => {
    for (let i = 0; i < blocks; i++) state.apply(applyBlockHooks(state, ctxAt('', ++height, 0n, [], config)));
  };
  return { chain, indexer, state, records, submitted, hooks, run, mine };
}

export type Twin = ReturnType<typeof memoryChain>;

/** The calls that buy `gib` GiB of space for the signer, at the twin's price: a declaration needs space. */
export const spaceCalls = (gib = 1): ChainCall[] => spacePurchase(CONFIG, gib);
export const remark = <N extends Parameters<typeof encodeRemark>[0]>(
  name: N,
  args: Parameters<typeof encodeRemark<N>>[1],
): ChainCall => ({ kind: 'remark', payload: encodeRemark(name, args) });
