import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChainCall } from '../../src/chain/client.ts';
import { DEV_PROTOCOL_CONFIG, protocolCall, ROC } from '../../src/chain/config.ts';
import { devSigner } from '../../src/chain/devchain.ts';
import { type Indexer, openIndexer } from '../../src/chain/indexer.ts';
import { debtsOf, type PaidDebt, potFlagsOf } from '../../src/chain/pallets/pot.ts';
import { payDebts } from '../../src/chain/payout.ts';
import { useDevChain } from './fixture.ts';

// Issue 15 items 6 + 10a on the real dev chain: a keyed pot (Ferdie here), a paid call the rules reject, the debt
// the indexer records, the payout service paying it with a checked payout, and a pot transfer outside any payout
// flagged by the indexer.

describe('the pot pays what the rules say it owes, and anyone replaying sees it', () => {
  const dev = useDevChain();
  const ferdie = devSigner('Ferdie');
  const bob = devSigner('Bob');
  const charlie = devSigner('Charlie');
  const config = { ...DEV_PROTOCOL_CONFIG, pot: ferdie.address };
  let dir: string;
  let indexer: Indexer;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'ailink-payout-'));
    indexer = openIndexer(dev.client(), { path: join(dir, 'index.sqlite'), config });
  });
  afterAll(() => {
    indexer.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a rejected paid call is refunded by payDebts, checked by the rules; a transfer outside a payout is flagged', async () => {
    // Bob pays the pot for a call the rules reject (he is no miner): the pot owes him the 2 ROC back.
    const paid: ChainCall[] = [
      { kind: 'transfer', to: ferdie.address, amount: 2n * ROC },
      protocolCall('sminer.exit', {}),
    ];
    await dev.client().submit(bob, paid);
    await indexer.sync();
    const [debt] = debtsOf(indexer.state);
    expect(debt).toMatchObject({ to: bob.address, amount: (2n * ROC).toString() });

    // A debt named by a payout whose fate is unknown is left alone: that payout may still land.
    expect(
      await payDebts({ chain: dev.client(), indexer, config }, ferdie, { unsettled: new Set([debt!.id]) }),
    ).toEqual({ paid: [], block: null });
    const bobBefore = await dev.client().balance(bob.address);
    const result = await payDebts({ chain: dev.client(), indexer, config }, ferdie);
    expect(result.paid.map((d) => d.id)).toEqual([debt!.id]);
    expect(await dev.client().balance(bob.address)).toBe(bobBefore + 2n * ROC);
    expect(debtsOf(indexer.state)).toEqual([]);
    expect(indexer.state.get<PaidDebt>(`pot/paid/${debt!.id}`)).toMatchObject({
      to: bob.address,
      paidAt: result.block,
    });
    expect(potFlagsOf(indexer.state)).toEqual([]);
    // Nothing owed: nothing is sent.
    expect(await payDebts({ chain: dev.client(), indexer, config }, ferdie)).toEqual({
      paid: [],
      block: null,
    });
    // Only the pot's key pays.
    await expect(payDebts({ chain: dev.client(), indexer, config }, bob)).rejects.toThrow(/is not the pot/);

    // The pot pays Charlie with no payout at all: the indexer flags it.
    const naked = await dev.client().submit(ferdie, [{ kind: 'transfer', to: charlie.address, amount: ROC }]);
    await indexer.sync();
    expect(potFlagsOf(indexer.state)).toEqual([
      {
        block: naked.blockNumber,
        to: charlie.address,
        amount: ROC.toString(),
        debt: null,
        reason: 'the pot paid with no payout naming a debt',
      },
    ]);
  });
});
