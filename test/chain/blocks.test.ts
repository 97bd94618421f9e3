import { WsProvider } from '@polkadot/api';
import { compactToU8a, u8aConcat, u8aToHex } from '@polkadot/util';
import { describe, expect, it } from 'vitest';
import { MAX_BLOCKS_PER_REQUEST, readInherentsOnly } from '../../src/chain/client.ts';
import { ROC } from '../../src/chain/config.ts';
import { devSigner } from '../../src/chain/devchain.ts';
import { hasCode } from '../../src/shared/errors.ts';
import { useDevChain } from './fixture.ts';

describe('ChainClient.blocks: a window of blocks in few requests', () => {
  const dev = useDevChain();

  it('decodes every block as block(n) does — events skipped, and inherents read undecoded, where no signed extrinsic is — and refuses bad ranges', async () => {
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

describe('readInherentsOnly: a block of inherents read without decoding', () => {
  // Hand-made extrinsics: SCALE length prefix, version byte, pallet and call index, arguments.
  const names = new Map([
    ['03,00', 'timestamp.set'],
    ['00,00', 'system.remark'],
  ]);
  const callName = (index: Uint8Array) => {
    const name = names.get([...index].map((b) => String(b).padStart(2, '0')).join());
    if (name === undefined) throw new Error('unknown call index');
    return name;
  };
  const extrinsic = (...body: Uint8Array[]) => {
    const bytes = u8aConcat(...body);
    return u8aToHex(u8aConcat(compactToU8a(bytes.length), bytes));
  };
  const moment = 1_733_500_000_000;
  const timestampSet = extrinsic(new Uint8Array([0x04, 3, 0]), compactToU8a(moment));
  const block = (...extrinsics: `0x${string}`[]) => ({ header: { parentHash: '0xab' }, extrinsics });

  it('reads the timestamp inherent: its moment, unsigned, one call named by the metadata', () => {
    expect(readInherentsOnly(7, '0xcd', block(timestampSet), callName)).toEqual({
      number: 7,
      hash: '0xcd',
      parentHash: '0xab',
      timestamp: moment,
      extrinsics: [
        {
          index: 0,
          signer: null,
          calls: [{ call: { kind: 'other', name: 'timestamp.set' }, applied: true }],
        },
      ],
    });
  });

  it('leaves to the full decode a block with a signed extrinsic, another format, another call or an unknown one', () => {
    const signed = extrinsic(new Uint8Array([0x84, 0, 0]), new Uint8Array(100));
    const v5 = extrinsic(new Uint8Array([0x05, 3, 0]), compactToU8a(moment));
    const remark = extrinsic(new Uint8Array([0x04, 0, 0]), compactToU8a(0));
    const unknown = extrinsic(new Uint8Array([0x04, 9, 9]));
    const short = extrinsic(new Uint8Array([0x04, 3]));
    for (const other of [signed, v5, remark, unknown, short]) {
      expect(readInherentsOnly(7, '0xcd', block(timestampSet, other), callName)).toBeUndefined();
    }
  });
});
