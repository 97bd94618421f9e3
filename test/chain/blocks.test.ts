import { WsProvider } from '@polkadot/api';
import { describe, expect, it } from 'vitest';
import { MAX_BLOCKS_PER_REQUEST } from '../../src/chain/client.ts';
import { ROC } from '../../src/chain/config.ts';
import { devSigner } from '../../src/chain/devchain.ts';
import { hasCode } from '../../src/shared/errors.ts';
import { useDevChain } from './fixture.ts';

describe('ChainClient.blocks: a window of blocks in few requests', () => {
  const dev = useDevChain();

  it('decodes every block as block(n) does — events skipped only where no signed extrinsic is — and refuses bad ranges', async () => {
    const client = dev.client();
    // Signed extrinsics (a transfer, and one that fails) between empty blocks.
    const provider = new WsProvider(dev.endpoint());
    await provider.isReady;
    await provider.send('dev_newBlock', [{ count: 2 }]);
    await client.submit(devSigner('Alice'), [
      { kind: 'transfer', to: devSigner('Bob').address, amount: ROC },
    ]);
    await client
      .submit(devSigner('Charlie'), [{ kind: 'transfer', to: devSigner('Bob').address, amount: 10n ** 30n }])
      .catch(() => {});
    await provider.send('dev_newBlock', [{ count: 2 }]);
    await provider.disconnect();
    const height = await client.finalizedHeight();

    const windowed = await client.blocks(1, height);
    const oneByOne = await Promise.all(windowed.map((b) => client.block(b.number)));
    expect(windowed).toEqual(oneByOne);
    expect(windowed.map((b) => b.number)).toEqual(Array.from({ length: height }, (_, i) => i + 1));
    // The failed transfer is marked not applied, as block(n) marks it.
    expect(windowed.flatMap((b) => b.extrinsics.flatMap((x) => x.calls)).some((c) => !c.applied)).toBe(true);

    expect(await client.blocks(3, 2)).toEqual([]);
    for (const [from, to] of [
      [0.5, 2],
      [-1, 2],
      [1, MAX_BLOCKS_PER_REQUEST + 1],
    ] as const) {
      const err = await client.blocks(from, to).catch((e: unknown) => e);
      expect(hasCode(err, 'INVALID_INPUT'), String(err)).toBe(true);
    }
    const ahead = await client.blocks(1, height + 5).catch((e: unknown) => e);
    expect(hasCode(ahead, 'NOT_FOUND'), String(ahead)).toBe(true);
  });
});
