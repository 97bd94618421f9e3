import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { CallArgs, CallName } from '../../src/chain/calls.ts';
import type { ChainCall, ChainSigner, Inclusion } from '../../src/chain/client.ts';
import { DEV_PROTOCOL_CONFIG, protocolCall, ROC } from '../../src/chain/config.ts';
import { devSigner } from '../../src/chain/devchain.ts';
import { type CallRecord, type Indexer, openIndexer } from '../../src/chain/indexer.ts';
import { minerOf, minersOf, seedOf, taskOf } from '../../src/chain/queries.ts';
import { REMARK_MAGIC } from '../../src/chain/remark.ts';
import { submitProtocol } from '../../src/chain/submit.ts';
import { createKeyFile } from '../../src/shared/account.ts';
import { systemRandom } from '../../src/shared/clock.ts';
import { useDevChain } from './fixture.ts';
import { peerIdOf, peerSignatureOf } from './helpers.ts';

// The indexer against the real dev chain (chopsticks), no mocks: signed remarks go into real blocks, and indexers
// fold them from SQLite files. The tests of this file run in order on one chain and one main indexer — each one adds
// a few blocks (≈ 12 in all) and checks what the fold made of them; the later ones replay everything before them.

const hex = (label: string): string => createHash('sha256').update(label).digest('hex');
const text = (s: string): Uint8Array => new TextEncoder().encode(s);
/** A remark with our magic, an explicit version byte and an arbitrary body: how a broken or future client writes. */
const ailk = (version: number, body: string): ChainCall => {
  const b = text(body);
  const payload = new Uint8Array(REMARK_MAGIC.length + 1 + b.byteLength);
  payload.set(REMARK_MAGIC, 0);
  payload[REMARK_MAGIC.length] = version;
  payload.set(b, REMARK_MAGIC.length + 1);
  return { kind: 'remark', payload };
};
const call = <N extends CallName>(name: N, args: CallArgs<N>): ChainCall => protocolCall(name, args);

describe('openIndexer on the dev chain', () => {
  const dev = useDevChain();
  let dir: string;
  let main: Indexer;
  const opened: Indexer[] = [];
  const stops: (() => Promise<void>)[] = [];
  const open = (name: string, config = DEV_PROTOCOL_CONFIG): Indexer => {
    const indexer = openIndexer(dev.client(), { path: join(dir, name), config });
    opened.push(indexer);
    return indexer;
  };
  const submit = (signer: ChainSigner, calls: ChainCall[]): Promise<Inclusion> =>
    dev.client().submit(signer, calls);
  /** The calls the main indexer recorded for one extrinsic. */
  const recordsOf = (inc: Inclusion): CallRecord[] =>
    main
      .calls({ fromBlock: inc.blockNumber })
      .filter((c) => c.block === inc.blockNumber && c.extrinsic === inc.extrinsicIndex);

  let alice: ChainSigner;
  let bob: ChainSigner;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'ailink-indexer-'));
    main = open('main.sqlite');
    alice = devSigner('Alice');
    bob = devSigner('Bob');
  });

  // Registered after useDevChain's hooks, so it runs before the chain and client are closed (hooks stack).
  afterAll(async () => {
    for (const stop of stops) await stop().catch(() => {});
    for (const indexer of opened) {
      try {
        indexer.close();
      } catch {}
    }
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('decodes a signed protocol remark from a finalized block into the state', async () => {
    const auth = await submit(alice, [call('oss.authorize', { operator: bob.address })]);
    const task = await submit(alice, [
      call('provenance.createTask', { task: 'single', spec: hex('spec/single') }),
    ]);
    const draw = await submit(alice, [
      call('provenance.drawSeed', { task: 'single', round: 0, attempt: 0, cohort: hex('single/0/cohort') }),
    ]);
    expect(task.blockNumber).toBeGreaterThan(auth.blockNumber);

    expect(await main.sync()).toBeGreaterThanOrEqual(draw.blockNumber);
    expect(main.height()).toBe(await dev.client().finalizedHeight());
    // Placement's randomness: the hash of the last applied block, as the chain reports it.
    expect(main.blockHash()).toBe((await dev.client().block(main.height())).hash);
    expect(main.state.get(`oss/auth/${alice.address}/${bob.address}`)).toBe(auth.blockNumber);
    expect(taskOf(main.state, 'single')).toEqual({
      coordinator: alice.address,
      spec: hex('spec/single'),
      createdAt: task.blockNumber,
      rounds: 0,
      admitted: [],
      endpoint: null,
      stoppedAt: null,
    });
    // The seed is the hash of the block that recorded the draw, as the chain reports it.
    expect(seedOf(main.state, 'single', 0, 0)).toEqual({
      cohort: hex('single/0/cohort'),
      blockHash: (await dev.client().block(draw.blockNumber)).hash.replace(/^0x/, ''),
      block: draw.blockNumber,
    });
    // The audit trail names block, extrinsic, signer and call.
    expect(recordsOf(auth)).toEqual([
      {
        block: auth.blockNumber,
        extrinsic: auth.extrinsicIndex,
        item: 0,
        signer: alice.address,
        call: 'oss.authorize',
        outcome: 'applied',
        reason: null,
      },
    ]);
  });

  it('registers a miner that paid its collateral to the pot in the same batchAll, and rejects one that paid less', async () => {
    const charlie = devSigner('Charlie');
    const dave = devSigner('Dave');
    const register = (address: string, collateral: bigint) =>
      call('sminer.register', {
        peerId: peerIdOf(address),
        addrs: [`/ip4/127.0.0.1/tcp/${4000 + address.charCodeAt(5)}`],
        capacity: 1 << 30,
        collateral: collateral.toString(),
        peerSignature: peerSignatureOf(address, 'sminer.register', { genesisHash: dev.client().genesisHash }),
      });
    const potBefore = await dev.client().balance(DEV_PROTOCOL_CONFIG.pot);
    const paid = await submit(charlie, [
      { kind: 'transfer', to: DEV_PROTOCOL_CONFIG.pot, amount: 2n * ROC },
      register(charlie.address, 2n * ROC),
    ]);
    // Dave pays 1 ROC but declares 2: the transfer lands (the chain knows no protocol), the registration does not.
    const short = await submit(dave, [
      { kind: 'transfer', to: DEV_PROTOCOL_CONFIG.pot, amount: ROC },
      register(dave.address, 2n * ROC),
    ]);
    expect(await dev.client().balance(DEV_PROTOCOL_CONFIG.pot)).toBe(potBefore + 3n * ROC);

    await main.sync();
    expect(minerOf(main.state, charlie.address)).toEqual({
      address: charlie.address,
      peerId: peerIdOf(charlie.address),
      addrs: [`/ip4/127.0.0.1/tcp/${4000 + charlie.address.charCodeAt(5)}`],
      capacity: 1 << 30,
      collateral: (2n * ROC).toString(),
      state: 'positive',
      registeredAt: paid.blockNumber,
    });
    expect(minerOf(main.state, dave.address)).toBeUndefined();
    expect(minersOf(main.state).map((m) => m.address)).toEqual([charlie.address]);
    // Transfers are not protocol calls: only the remark (item 1 of the flattened batch) is recorded.
    expect(recordsOf(paid)).toMatchObject([
      { item: 1, call: 'sminer.register', outcome: 'applied', reason: null },
    ]);
    const [rejected] = recordsOf(short);
    expect(recordsOf(short)).toHaveLength(1);
    expect(rejected).toMatchObject({
      item: 1,
      signer: dave.address,
      call: 'sminer.register',
      outcome: 'rejected',
    });
    expect(rejected!.reason).toBe(
      `collateral ${2n * ROC} was declared but ${ROC} was paid to the pot ${DEV_PROTOCOL_CONFIG.pot} directly before the registration`,
    );
  });

  it('applies the calls of one batchAll in one block, in order, and keeps going past a rejected one', async () => {
    const draw = (attempt: number, cohort = hex(`batch/${attempt}/cohort`)) =>
      call('provenance.drawSeed', { task: 'batch', round: 0, attempt, cohort });
    const calls = [
      call('provenance.createTask', { task: 'batch', spec: hex('spec/batch') }),
      draw(0),
      draw(1),
      // Drawn already, by the call before last: rejected, and it must leave nothing behind for the calls after it.
      draw(0, hex('another cohort')),
      draw(2),
      call('oss.cancelAuthorize', { operator: bob.address }),
      call('oss.authorize', { operator: devSigner('Eve').address }),
      draw(3),
    ];
    const inc = await submit(alice, calls);
    await main.sync();

    const records = recordsOf(inc);
    expect(records.map((r) => [r.item, r.call, r.outcome])).toEqual([
      [0, 'provenance.createTask', 'applied'],
      [1, 'provenance.drawSeed', 'applied'],
      [2, 'provenance.drawSeed', 'applied'],
      [3, 'provenance.drawSeed', 'rejected'],
      [4, 'provenance.drawSeed', 'applied'],
      [5, 'oss.cancelAuthorize', 'applied'],
      [6, 'oss.authorize', 'applied'],
      [7, 'provenance.drawSeed', 'applied'],
    ]);
    expect(records.every((r) => r.signer === alice.address)).toBe(true);
    expect(records[3]!.reason).toBe('attempt 0 of round 0 of batch already has its seed');
    const blockHash = (await dev.client().block(inc.blockNumber)).hash.replace(/^0x/, '');
    expect([0, 1, 2, 3].map((n) => seedOf(main.state, 'batch', 0, n))).toEqual(
      [0, 1, 2, 3].map((n) => ({ cohort: hex(`batch/${n}/cohort`), blockHash, block: inc.blockNumber })),
    );
    expect(main.state.get(`oss/auth/${alice.address}/${bob.address}`)).toBeUndefined();
    expect(main.state.get(`oss/auth/${alice.address}/${devSigner('Eve').address}`)).toBe(inc.blockNumber);
  });

  it('ignores foreign remarks, and records malformed and rule-breaking ones as rejected without changing the state', async () => {
    await main.sync();
    const before = main.state.scan('');
    const inc = await submit(bob, [
      { kind: 'remark', payload: text('hello from another protocol') },
      ailk(1, '{"call": "oss.authorize", "args": '),
      ailk(7, JSON.stringify({ call: 'oss.authorize', args: { operator: alice.address } })),
      ailk(1, JSON.stringify({ call: 'sminer.fly', args: {} })),
      ailk(1, JSON.stringify({ call: 'oss.authorize', args: { operator: 'not-an-address' } })),
      // Well-formed, but Bob does not coordinate Alice's task.
      call('provenance.recordRound', { task: 'single', round: 1, manifest: hex('x'), digest: hex('y') }),
      // Well-formed, but the task exists already.
      call('provenance.createTask', { task: 'single', spec: hex('spec/bob') }),
    ]);
    await main.sync();

    const records = recordsOf(inc);
    // The foreign remark (item 0) is not ours to judge: not even logged.
    expect(records.map((r) => [r.item, r.signer, r.call, r.outcome])).toEqual([
      [1, bob.address, null, 'rejected'],
      [2, bob.address, null, 'rejected'],
      [3, bob.address, 'sminer.fly', 'rejected'],
      [4, bob.address, 'oss.authorize', 'rejected'],
      [5, bob.address, 'provenance.recordRound', 'rejected'],
      [6, bob.address, 'provenance.createTask', 'rejected'],
    ]);
    const reasons = records.map((r) => r.reason);
    expect(reasons[0]).toMatch(/^malformed: not UTF-8 JSON/);
    expect(reasons[1]).toBe('unknown version 7: this indexer reads version 1');
    expect(reasons[2]).toBe('unknown call "sminer.fly"');
    expect(reasons[3]).toMatch(/^malformed arguments: operator: expected an SS58 address/);
    expect(reasons[4]).toBe(`only the coordinator ${alice.address} records rounds of single`);
    expect(reasons[5]).toBe('task single already exists');
    expect(main.state.scan('')).toEqual(before);
    expect(main.calls({ outcome: 'applied', fromBlock: inc.blockNumber })).toEqual([]);
  });

  it('records a protocol remark inside a batchAll that failed on chain as not applied, and changes nothing', async () => {
    const poor = await createKeyFile(join(dir, 'poor.key'), systemRandom);
    await submit(alice, [{ kind: 'transfer', to: poor.address, amount: ROC }]);
    await main.sync();
    const before = main.state.scan('');
    // The remark is fine; the transfer after it is more than the account has, so the whole batchAll is reverted.
    await expect(
      submit(poor, [
        call('provenance.createTask', { task: 'reverted', spec: hex('spec/reverted') }),
        { kind: 'transfer', to: bob.address, amount: 100n * ROC },
      ]),
    ).rejects.toMatchObject({ code: 'CHAIN_CALL_FAILED' });
    await main.sync();

    const records = main.calls({ outcome: 'rejected' }).filter((r) => r.signer === poor.address);
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ item: 0, call: 'provenance.createTask', outcome: 'rejected' });
    expect(records[0]!.reason).toMatch(/^not applied on chain: extrinsic failed: /);
    expect(taskOf(main.state, 'reverted')).toBeUndefined();
    expect(main.state.scan('')).toEqual(before);
  });

  it('gives the same digest at every height to two indexers replaying the chain from genesis', async () => {
    const height = await main.sync();
    const a = open('a.sqlite');
    const b = open('b.sqlite');
    expect(a.height()).toBe(0);
    const [ha, hb] = await Promise.all([a.sync(height), b.sync(height)]);
    expect([ha, hb]).toEqual([height, height]);
    for (let n = 0; n <= height; n++) {
      expect(a.digest(n), `digest at ${n}`).toBe(b.digest(n));
      expect(a.digest(n), `digest at ${n}`).toBe(main.digest(n));
    }
    expect(a.digest()).toBe(main.digest());
    expect(new Set(Array.from({ length: height }, (_, i) => a.digest(i + 1))).size).toBe(height);
    expect(a.state.scan('')).toEqual(main.state.scan(''));
    expect(b.calls()).toEqual(main.calls());
    expect(main.calls({ outcome: 'rejected' }).length).toBeGreaterThan(0);
  });

  it('resumes from its file where it stopped and reaches the same digest', async () => {
    const height = await main.sync();
    const half = Math.floor(height / 2);
    const path = 'resumed.sqlite';
    const first = open(path);
    const seen: number[] = [];
    expect(await first.sync(half, { onBlock: (n) => seen.push(n) })).toBe(half);
    expect(seen).toEqual(Array.from({ length: half }, (_, i) => i + 1));
    expect(first.digest()).toBe(main.digest(half));
    first.close();

    const second = open(path);
    expect(second.height()).toBe(half);
    expect(second.digest()).toBe(main.digest(half));
    const resumedFrom: number[] = [];
    expect(await second.sync(undefined, { onBlock: (n) => resumedFrom.push(n) })).toBe(height);
    expect(resumedFrom[0]).toBe(half + 1);
    expect(second.digest()).toBe(main.digest());
    expect(second.state.scan('')).toEqual(main.state.scan(''));
    expect(second.calls()).toEqual(main.calls());
  });

  it('refuses an index file made with another protocol config, and keeps the file intact', async () => {
    const height = await main.sync();
    const path = 'config.sqlite';
    const first = open(path);
    await first.sync(height);
    const digest = first.digest();
    first.close();
    for (const config of [
      { ...DEV_PROTOCOL_CONFIG, minCollateral: 2n * ROC },
      { ...DEV_PROTOCOL_CONFIG, restoralClaimBlocks: 21 },
      { ...DEV_PROTOCOL_CONFIG, pot: bob.address },
    ]) {
      expect(() => open(path, config)).toThrow(expect.objectContaining({ code: 'INDEXER_STATE_MISMATCH' }));
    }
    const again = open(path);
    expect(again.height()).toBe(height);
    expect(again.digest()).toBe(digest);
  });

  it('follows finalized blocks as they come, until stopped', async () => {
    await main.sync();
    const follower = open('follow.sqlite');
    const following = await follower.follow();
    stops.push(() => following.stop());
    // follow() first catches up with the finalized head.
    expect(follower.height()).toBe(main.height());

    const inc = await submit(alice, [
      call('provenance.createTask', { task: 'followed', spec: hex('spec/followed') }),
    ]);
    // No sync or waitFor here: the subscription alone must bring the block in.
    await vi.waitFor(() => expect(follower.height()).toBeGreaterThanOrEqual(inc.blockNumber), {
      timeout: 15_000,
      interval: 50,
    });
    await follower.waitFor(inc.blockNumber);
    expect(taskOf(follower.state, 'followed')?.createdAt).toBe(inc.blockNumber);

    await following.stop();
    const after = await submit(alice, [
      call('provenance.createTask', { task: 'unfollowed', spec: hex('spec/unfollowed') }),
    ]);
    await new Promise((r) => setTimeout(r, 1500));
    expect(follower.height()).toBeLessThan(after.blockNumber);
    expect(taskOf(follower.state, 'unfollowed')).toBeUndefined();
    // The main indexer was never following: waitFor syncs it up to the block.
    await main.waitFor(after.blockNumber);
    expect(taskOf(main.state, 'unfollowed')?.createdAt).toBe(after.blockNumber);
    expect(await follower.sync(after.blockNumber)).toBe(after.blockNumber);
    expect(follower.digest(after.blockNumber)).toBe(main.digest(after.blockNumber));
  });

  it('submissions of one account that went out in one extrinsic are judged each on its own', async () => {
    const deps = { chain: dev.client(), indexer: main };
    const create = (task: string, spec: string) =>
      submitProtocol(deps, alice, [call('provenance.createTask', { task, spec: hex(spec) })]);
    // The first goes out at once; the three behind it wait and then share one extrinsic, the middle one a duplicate.
    const first = create('together-0', 'spec/together-0');
    const before = create('together-1', 'spec/together-1');
    const duplicate = create('together-1', 'spec/together-1 again');
    const after = create('together-2', 'spec/together-2');
    await first;
    const [a, b] = [await before, await after];
    await expect(duplicate).rejects.toMatchObject({
      code: 'CHAIN_CALL_REJECTED',
      details: { reason: 'task together-1 already exists' },
    });
    expect(b.block).toBe(a.block);
    expect([a.records.length, b.records.length]).toEqual([1, 1]);
    expect(taskOf(main.state, 'together-1')?.spec).toBe(hex('spec/together-1'));
    expect(taskOf(main.state, 'together-2')?.createdAt).toBe(b.block);
  });

  it('lets syncs to the head that wait behind a running one share one, each still reaching the head as of its call', async () => {
    await main.sync();
    // The chain as the indexer sees it, counting how often it is asked for the finalized head (one per sync started).
    const chain = dev.client();
    let heads = 0;
    const counted = {
      genesisHash: chain.genesisHash,
      block: chain.block,
      blocks: chain.blocks,
      followFinalized: chain.followFinalized,
      finalizedHeight: () => {
        heads++;
        return chain.finalizedHeight();
      },
    };
    const indexer = openIndexer(counted, {
      path: join(dir, 'shared-syncs.sqlite'),
      config: DEV_PROTOCOL_CONFIG,
    });
    opened.push(indexer);
    await indexer.sync();
    heads = 0;
    // Eight, as eight puts through one gateway ask before their placement: one is running, seven share the next.
    const running = indexer.sync();
    await vi.waitFor(() => expect(heads).toBe(1), { interval: 1 });
    const behind = Array.from({ length: 7 }, () => indexer.sync());
    expect(new Set(behind).size).toBe(1);
    expect(behind[0]).not.toBe(running);
    // A block finalized while they wait is in what the shared one reads: it starts after every call that shares it.
    const inc = await submit(alice, [
      call('provenance.createTask', { task: 'shared-sync', spec: hex('spec/shared-sync') }),
    ]);
    const late = indexer.sync();
    await Promise.all([running, ...behind]);
    expect(await late).toBeGreaterThanOrEqual(inc.blockNumber);
    expect(taskOf(indexer.state, 'shared-sync')?.createdAt).toBe(inc.blockNumber);
    // Without sharing: 9 syncs, 9 requests for the head. With it: the running one, the shared one, and `late` (alone,
    // or sharing one not started yet).
    expect(heads).toBeLessThanOrEqual(3);
    await main.waitFor(indexer.height());
    expect(indexer.digest()).toBe(main.digest(indexer.height()));
  });

  it('answers NOT_FOUND for a digest above its height and CHAIN_TIMEOUT for a block that does not come', async () => {
    const height = await main.sync();
    expect(main.digest(0)).toBe('0'.repeat(64));
    expect(() => main.digest(height + 10)).toThrow(expect.objectContaining({ code: 'NOT_FOUND' }));
    const started = Date.now();
    await expect(main.waitFor(height + 1000, 500)).rejects.toMatchObject({ code: 'CHAIN_TIMEOUT' });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(main.height()).toBe(height);
  });
});
