import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiPromise, Keyring, WsProvider } from '@polkadot/api';
import type { SubmittableExtrinsic } from '@polkadot/api/types';
import { afterAll, describe, expect, it } from 'vitest';
import { type ChainBlock, type ChainSigner, connectChain } from '../../src/chain/client.ts';
import { devSigner } from '../../src/chain/devchain.ts';
import { type Account, createKeyFile } from '../../src/shared/account.ts';
import { systemRandom } from '../../src/shared/clock.ts';
import { AilinkError } from '../../src/shared/errors.ts';
import { useDevChain } from './fixture.ts';

// The chain client against the real dev chain (chopsticks running the Rococo Asset Hub runtime): no mocks.

const fx = useDevChain();
const alice = devSigner('Alice');
const bob = devSigner('Bob');
const charlie = devSigner('Charlie');
const ROC = 10n ** 12n;

const tmp = mkdtempSync(join(tmpdir(), 'ailink-chain-client-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const text = (s: string) => new TextEncoder().encode(s);

/** A new key-file account, funded by Alice with `amount`. */
async function fundedAccount(name: string, amount: bigint): Promise<Account> {
  const account = await createKeyFile(join(tmp, `${name}.json`), systemRandom);
  await fx.client().submit(alice, [{ kind: 'transfer', to: account.address, amount }]);
  expect(await fx.client().balance(account.address)).toBe(amount);
  return account;
}

/** The extrinsic a submit reported, from the decoded block. */
async function extrinsicAt(blockNumber: number, index: number) {
  const block = await fx.client().block(blockNumber);
  const ex = block.extrinsics[index];
  if (ex === undefined) throw new Error(`block ${blockNumber} has no extrinsic ${index}`);
  return ex;
}

/** The remark payloads `signer` got into `block`, in order. */
function remarksOf(block: ChainBlock, signer: ChainSigner): Uint8Array[] {
  return block.extrinsics
    .filter((ex) => ex.signer === signer.address)
    .flatMap((ex) => ex.calls.map((c) => c.call))
    .flatMap((call) => (call.kind === 'remark' ? [call.payload] : []));
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof AilinkError) return err.code;
    throw err;
  }
  throw new Error('expected a rejection');
}

describe('chain client on the dev chain', () => {
  it('includes a signed remark and decodes it with its signer and exact bytes', async () => {
    const client = fx.client();
    expect(client.runtime).toMatch(/^statemine\/\d+$/);
    expect(client.genesisHash).toMatch(/^0x[0-9a-f]{64}$/);
    const payload = new Uint8Array([0, 1, 2, 0xff, 0x80, ...text('ailink remark')]);
    const inclusion = await client.submit(alice, [{ kind: 'remark', payload }]);
    expect(inclusion.events).toContain('system.Remarked');
    expect(inclusion.events).toContain('system.ExtrinsicSuccess');
    expect(await client.finalizedHeight()).toBeGreaterThanOrEqual(inclusion.blockNumber);

    const block = await client.block(inclusion.blockNumber);
    expect(block.hash).toBe(inclusion.blockHash);
    expect(block.number).toBe(inclusion.blockNumber);
    expect(block.timestamp).toBeGreaterThan(0);
    const ex = block.extrinsics[inclusion.extrinsicIndex]!;
    expect(ex.signer).toBe(alice.address);
    expect(ex.calls).toEqual([{ call: { kind: 'remark', payload }, applied: true }]);
    // Inherents are decoded too, as other calls without a signer.
    expect(block.extrinsics[0]).toMatchObject({
      signer: null,
      calls: [{ call: { kind: 'other', name: 'timestamp.set' } }],
    });
  });

  it('lands a batch of 50 remarks in one extrinsic of one block (batchAll)', async () => {
    const payloads = Array.from({ length: 50 }, (_, i) => text(`batched remark ${i}`));
    const inclusion = await fx.client().submit(
      bob,
      payloads.map((payload) => ({ kind: 'remark' as const, payload })),
    );
    expect(inclusion.events.filter((e) => e === 'system.Remarked')).toHaveLength(50);
    expect(inclusion.events).toContain('utility.BatchCompleted');
    const ex = await extrinsicAt(inclusion.blockNumber, inclusion.extrinsicIndex);
    expect(ex.signer).toBe(bob.address);
    expect(ex.calls).toHaveLength(50);
    expect(ex.calls.every((c) => c.applied && c.reason === undefined)).toBe(true);
    expect(ex.calls.map((c) => c.call)).toEqual(payloads.map((payload) => ({ kind: 'remark', payload })));
  });

  it('reads balances and transfers an exact amount', async () => {
    const client = fx.client();
    const amount = 123_456_789n;
    const [bobBefore, aliceBefore] = await Promise.all([
      client.balance(bob.address),
      client.balance(alice.address),
    ]);
    expect(bobBefore).toBeGreaterThan(0n);
    const inclusion = await client.submit(alice, [{ kind: 'transfer', to: bob.address, amount }]);
    expect(inclusion.events).toContain('balances.Transfer');
    expect(await client.balance(bob.address)).toBe(bobBefore + amount);
    // Alice also paid a fee.
    expect(await client.balance(alice.address)).toBeLessThan(aliceBefore - amount);
    const ex = await extrinsicAt(inclusion.blockNumber, inclusion.extrinsicIndex);
    expect(ex.calls).toEqual([{ call: { kind: 'transfer', to: bob.address, amount }, applied: true }]);
  });

  it('reports a failing transfer as CHAIN_CALL_FAILED naming the call and the module error', async () => {
    const client = fx.client();
    const poor = await fundedAccount('poor', ROC);
    const err = await client.submit(poor, [{ kind: 'transfer', to: alice.address, amount: 10n * ROC }]).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(AilinkError);
    const failure = err as AilinkError;
    expect(failure.code).toBe('CHAIN_CALL_FAILED');
    expect(failure.message).toContain(`balances transfer to ${alice.address}`);
    expect(failure.message).toContain('balances.InsufficientBalance');
    const blockHash = failure.details?.blockHash as string;
    expect(blockHash).toMatch(/^0x[0-9a-f]{64}$/);

    // The block records the call as included but not applied, with the reason.
    const height = await client.finalizedHeight();
    let block: ChainBlock | undefined;
    for (let n = height; n > height - 5 && block === undefined; n--) {
      const b = await client.block(n);
      if (b.hash === blockHash) block = b;
    }
    expect(block).toBeDefined();
    const ex = block!.extrinsics.find((e) => e.signer === poor.address)!;
    expect(ex.calls).toHaveLength(1);
    expect(ex.calls[0]!.call).toEqual({ kind: 'transfer', to: alice.address, amount: 10n * ROC });
    expect(ex.calls[0]!.applied).toBe(false);
    expect(ex.calls[0]!.reason).toContain('balances.InsufficientBalance');
    // Nothing moved but the fee.
    const left = await client.balance(poor.address);
    expect(left).toBeLessThan(ROC);
    expect(left).toBeGreaterThan(ROC / 2n);

    // The failure used a nonce: the account's next transaction still goes through.
    const next = await client.submit(poor, [{ kind: 'remark', payload: text('after a failure') }]);
    expect(next.blockNumber).toBeGreaterThan(block!.number);
  });

  describe('batch items are attributed with their nesting', () => {
    /**
     * Signs `calls` as one `utility.batch` with a raw polkadot-js API (the client itself only sends batchAll). The dev
     * chain's runtime (statemine 900) has batch and batchAll but no forceBatch.
     */
    async function batch(build: (api: ApiPromise) => SubmittableExtrinsic<'promise'>[]) {
      const provider = new WsProvider(fx.endpoint());
      await provider.isReady;
      // Handing the metadata over keeps polkadot-js from warning that this old runtime lacks the Metadata API.
      const [genesis, version, metadata] = await Promise.all([
        provider.send<string>('chain_getBlockHash', [0]),
        provider.send<{ specVersion: number }>('state_getRuntimeVersion', []),
        provider.send<`0x${string}`>('state_getMetadata', []),
      ]);
      const api = await ApiPromise.create({
        provider,
        noInitWarn: true,
        metadata: { [`${genesis}-${version.specVersion}`]: metadata },
      });
      try {
        const dave = new Keyring({ type: 'sr25519' }).addFromUri('//Dave');
        const from = await fx.client().finalizedHeight();
        await new Promise<void>((resolve, reject) => {
          api.tx.utility
            .batch(build(api))
            .signAndSend(dave, ({ status }) => {
              if (status.isInBlock || status.isFinalized) resolve();
            })
            .catch(reject);
        });
        const client = fx.client();
        for (let n = await client.finalizedHeight(); n > from; n--) {
          const ex = (await client.block(n)).extrinsics.find((e) => e.signer !== null && e.calls.length > 1);
          if (ex !== undefined) return ex.calls;
        }
        throw new Error('the batch was not found');
      } finally {
        await api.disconnect();
      }
    }

    it('a failed transfer is not counted as paid when a nested batch was interrupted further along', async () => {
      const tooMuch = (api: ApiPromise) => api.tx.balances.transferKeepAlive(bob.address, 10n ** 30n);
      const calls = await batch((api) => [
        // Interrupted at its item 2: its own BatchInterrupted(2) comes first among the events.
        api.tx.utility.batch([
          api.tx.system.remarkWithEvent('a'),
          api.tx.system.remarkWithEvent('b'),
          tooMuch(api),
        ]),
        tooMuch(api), // the outer batch stops here: BatchInterrupted(1)
        api.tx.system.remarkWithEvent('c'),
      ]);
      // The attack: read at the inner index, the outer transfer (item 1) looked applied, i.e. paid.
      expect(calls.map((c) => [c.call.kind, c.applied])).toEqual([
        ['remark', false],
        ['remark', false],
        ['transfer', false],
        ['transfer', false],
        ['remark', false],
      ]);
    });

    it('a nested batchAll before the interruption is applied, the calls from the interruption on are not', async () => {
      const calls = await batch((api) => [
        api.tx.utility.batchAll([api.tx.system.remarkWithEvent('d'), api.tx.system.remarkWithEvent('e')]),
        api.tx.balances.transferKeepAlive(bob.address, 10n ** 30n),
        api.tx.system.remarkWithEvent('f'),
      ]);
      expect(calls.map((c) => [c.call.kind, c.applied])).toEqual([
        ['remark', true],
        ['remark', true],
        ['transfer', false],
        ['remark', false],
      ]);
    });
  });

  it('lands concurrent submits of one account (tracked nonces) and of different accounts', async () => {
    const client = fx.client();
    const one = [text('concurrent a'), text('concurrent b'), text('concurrent c')];
    const sameAccount = await Promise.all(
      one.map((payload) => client.submit(charlie, [{ kind: 'remark', payload }])),
    );
    // One account's transactions go out in order.
    const heights = sameAccount.map((i) => i.blockNumber);
    expect([...heights].sort((a, b) => a - b)).toEqual(heights);
    const found: Uint8Array[] = [];
    for (const n of new Set(heights)) found.push(...remarksOf(await client.block(n), charlie));
    expect(found).toEqual(one);

    const signers = [alice, bob, charlie, devSigner('Dave'), devSigner('Eve')];
    const many = await Promise.all(
      signers.map((s) => client.submit(s, [{ kind: 'remark', payload: text(`from ${s.address}`) }])),
    );
    for (const [i, inclusion] of many.entries()) {
      const ex = await extrinsicAt(inclusion.blockNumber, inclusion.extrinsicIndex);
      expect(ex.signer).toBe(signers[i]!.address);
      expect(ex.calls).toEqual([
        { call: { kind: 'remark', payload: text(`from ${signers[i]!.address}`) }, applied: true },
      ]);
    }
  });

  it('remark submissions queued behind one in flight go out together, each told where its calls are; a transfer goes alone', async () => {
    const client = fx.client();
    const dave = devSigner('Dave');
    const submissions = Array.from({ length: 7 }, (_, i) =>
      Array.from({ length: 1 + (i % 3) }, (_, k) => text(`queued ${i}.${k}`)),
    );
    const transferTo = devSigner('Ferdie').address;
    // The first goes out at once; the rest wait for it, and the transfer splits them in two groups.
    const sent = submissions.map((payloads) =>
      client.submit(
        dave,
        payloads.map((payload) => ({ kind: 'remark' as const, payload })),
      ),
    );
    const transfer = client.submit(dave, [{ kind: 'transfer', to: transferTo, amount: 1n }]);
    const after = client.submit(dave, [{ kind: 'remark', payload: text('after the transfer') }]);
    const inclusions = await Promise.all(sent);
    const extrinsics = new Set(inclusions.map((i) => `${i.blockNumber}/${i.extrinsicIndex}`));
    // 7 submissions, at most 2 extrinsics: the first alone, the 6 that waited together.
    expect(extrinsics.size).toBeLessThanOrEqual(2);
    for (const [i, inclusion] of inclusions.entries()) {
      const ex = await extrinsicAt(inclusion.blockNumber, inclusion.extrinsicIndex);
      const mine = ex.calls.slice(inclusion.firstItem, inclusion.firstItem + submissions[i]!.length);
      expect(mine.map((c) => c.call)).toEqual(
        submissions[i]!.map((payload) => ({ kind: 'remark', payload })),
      );
    }
    const paid = await transfer;
    const alone = await extrinsicAt(paid.blockNumber, paid.extrinsicIndex);
    expect([paid.firstItem, alone.calls.map((c) => c.call)]).toEqual([
      0,
      [{ kind: 'transfer', to: transferTo, amount: 1n }],
    ]);
    const last = await after;
    expect(last.blockNumber).toBeGreaterThan(paid.blockNumber);
  });

  it('submits with a key-file account, including a remark over 256 bytes (signed as its blake2 hash)', async () => {
    const client = fx.client();
    const account = await fundedAccount('signer', 5n * ROC);
    const small = text('key-file remark');
    const large = systemRandom(1000);
    const first = await client.submit(account, [{ kind: 'remark', payload: small }]);
    const second = await client.submit(account, [{ kind: 'remark', payload: large }]);
    for (const [inclusion, payload] of [
      [first, small],
      [second, large],
    ] as const) {
      const ex = await extrinsicAt(inclusion.blockNumber, inclusion.extrinsicIndex);
      expect(ex.signer).toBe(account.address);
      expect(ex.calls).toEqual([{ call: { kind: 'remark', payload }, applied: true }]);
    }
  });

  it('answers NOT_FOUND for a block above the finalized height', async () => {
    const client = fx.client();
    const height = await client.finalizedHeight();
    expect(await codeOf(client.block(height + 5))).toBe('NOT_FOUND');
    // The head itself is there.
    expect((await client.block(height)).number).toBe(height);
  });

  it('reports CHAIN_UNREACHABLE quickly for a closed port', async () => {
    const server = createServer();
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
    const { port } = server.address() as { port: number };
    await new Promise<void>((res) => server.close(() => res()));
    const started = performance.now();
    expect(await codeOf(connectChain(`ws://127.0.0.1:${port}`, { connectTimeoutMs: 1500 }))).toBe(
      'CHAIN_UNREACHABLE',
    );
    expect(performance.now() - started).toBeLessThan(5000);
  });
});
