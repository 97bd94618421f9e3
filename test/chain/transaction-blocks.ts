import { ApiPromise, WsProvider } from '@polkadot/api';
import { Keyring } from '@polkadot/keyring';
import { cryptoWaitReady } from '@polkadot/util-crypto';

/**
 * Seals `count` blocks on a dev chain, each carrying one signed transaction (a `system.remark` of //Alice), as fast
 * as chopsticks builds them: the transactions are signed up front with consecutive nonces and each is handed to
 * `dev_newBlock` (≈0.3 s a block here), skipping the pool and the per-transaction subscription (≈0.8 s). Blocks with
 * transactions are what a demo's chain is made of; empty blocks are cheaper but store differently (see devchain.ts).
 */
export async function sealTransactionBlocks(endpoint: string, count: number): Promise<void> {
  await cryptoWaitReady();
  const api = await ApiPromise.create({ provider: new WsProvider(endpoint), noInitWarn: true });
  try {
    const alice = new Keyring({ type: 'sr25519' }).addFromUri('//Alice');
    const first = (await api.rpc.system.accountNextIndex(alice.address)).toNumber();
    const signed: string[] = [];
    for (let i = 0; i < count; i++) {
      const tx = await api.tx.system.remark(`0x${i.toString(16).padStart(8, '0')}`).signAsync(alice, {
        nonce: first + i,
        era: 0,
      });
      signed.push(tx.toHex());
    }
    for (const tx of signed) await api.rpc('dev_newBlock' as never, { transactions: [tx] } as never);
  } finally {
    await api.disconnect();
  }
}
