import { beforeAll, describe, expect, it } from 'vitest';
import { protocolCall } from '../../src/chain/config.ts';
import { MAX_DECLARATION_BYTES, remarkBytes } from '../../src/chain/declare.ts';
import { fileOf, roundsOf, termsOf } from '../../src/chain/queries.ts';
import { type Account, accountsReady } from '../../src/shared/account.ts';
import { createChainRegistry } from '../../src/storage/client/chain-registry.ts';
import type { ObjectRecord, PlacedColumn } from '../../src/storage/object/record.ts';
import type { MinerClient } from '../../src/storage/protocol/miner-client.ts';
import {
  call,
  type DeclarationOptions,
  makeAccounts,
  makeDeclaration,
  makeReceipt,
  POT,
  peerIdOf,
  peerSignatureOf,
  registerMiner,
} from '../chain/helpers.ts';
import { rejectsWith } from './helpers.ts';
import { memoryChain, remark, spaceCalls, type Twin } from './memory-chain.ts';

// The chain registry's `declare` (src/storage/client/chain-registry.ts) against the in-memory twin of the chain: the real
// rules decide, and the registry must report what they decided.

const WIDTH = 12;
let miners: Account[];
let owner: Account;
let stranger: Account;

beforeAll(async () => {
  await accountsReady();
  miners = makeAccounts('chain-registry/miner', WIDTH);
  [owner, stranger] = makeAccounts('chain-registry/user', 2) as [Account, Account];
});

async function networkWithMiners(): Promise<Twin> {
  const twin = memoryChain();
  for (const m of miners) {
    const { name, args } = registerMiner(m);
    await twin.run(m, [{ kind: 'transfer', to: POT, amount: 1000n }, remark(name, args)]);
  }
  // Declarations debit their owner's space.
  for (const user of [owner, stranger]) await twin.run(user, spaceCalls());
  return twin;
}

/** A declaration as the storage client builds it, and its columns with every miner's signed receipt. */
function upload(label: string, by: Account, options: DeclarationOptions = {}) {
  const d = makeDeclaration(label, by.address, options);
  const { fid, deal, ...fields } = d;
  const record: ObjectRecord = {
    version: 1,
    fid,
    size: fields.size,
    owner: by.address,
    createdAt: 0,
    profile: fields.profile,
    segments: fields.segments,
    encryption: fields.encryption,
  };
  const columns: PlacedColumn[] = miners.map((m, index) => ({
    peer: { peerId: peerIdOf(m), addrs: [] },
    receipt: makeReceipt(m, d, index),
  }));
  return { record, deal, columns };
}

const registryOf = (twin: Twin, account: Account) =>
  // `declare` talks to the chain only; no miner is dialled.
  createChainRegistry({
    chain: { ...twin.chain, close: async () => {} },
    indexer: { ...twin.indexer, close: async () => {} },
    account,
    miners: {} as MinerClient,
  });

describe('chain registry: declaring a fid someone else holds', () => {
  it('the same bytes already stored by another owner → OBJECT_TAKEN, and nothing is submitted', async () => {
    const twin = await networkWithMiners();
    const theirs = upload('taken', stranger);
    await registryOf(twin, stranger).declare(theirs.record, theirs.deal, theirs.columns);
    const before = twin.submitted.length;
    // The attack this closes: `declare` took any Active record as the caller's own and reported success, so the
    // uploader believed it had stored an object that its real owner may delete whenever it likes.
    const mine = upload('taken', owner);
    const err = await rejectsWith(
      registryOf(twin, owner).declare(mine.record, mine.deal, mine.columns),
      'OBJECT_TAKEN',
    );
    expect(err.message).toContain(`already stored by ${stranger.address}`);
    expect(twin.submitted.length).toBe(before);
    expect(fileOf(twin.state, mine.record.fid)?.owner).toBe(stranger.address);
  });

  it('a declaration beyond the owner’s storage space → QUOTA_EXCEEDED, saying what is left and what to do', async () => {
    const twin = await networkWithMiners();
    const [spaceless] = makeAccounts('chain-registry/spaceless', 1) as [Account];
    const theirs = upload('no-space', spaceless);
    const err = await rejectsWith(
      registryOf(twin, spaceless).declare(theirs.record, theirs.deal, theirs.columns),
      'QUOTA_EXCEEDED',
    );
    expect(err.message).toMatch(/has 0 B \(0 B\) left of 0 B bought; buy more with `ailink space buy/);
    expect(fileOf(twin.state, theirs.record.fid)).toBeUndefined();
  });

  it('declaring one’s own stored object again adds nothing', async () => {
    const twin = await networkWithMiners();
    const mine = upload('again', owner);
    const registry = registryOf(twin, owner);
    await registry.declare(mine.record, mine.deal, mine.columns);
    const before = twin.submitted.length;
    await registry.declare(mine.record, mine.deal, mine.columns);
    expect(twin.submitted.length).toBe(before);
  });

  it('a squatter’s declaration without receipts does not keep the owner from storing the fid', async () => {
    const twin = await networkWithMiners();
    const mine = upload('squatted', owner);
    const { fid: _fid, ...fields } = makeDeclaration('squatted', stranger.address);
    await twin.run(stranger, [
      remark('fileBank.uploadDeclaration', { fid: mine.record.fid, ...fields, deal: 'f'.repeat(32) }),
    ]);
    expect(fileOf(twin.state, mine.record.fid)).toMatchObject({ owner: stranger.address, state: 'Pending' });
    await registryOf(twin, owner).declare(mine.record, mine.deal, mine.columns);
    expect(fileOf(twin.state, mine.record.fid)).toMatchObject({ owner: owner.address, state: 'Active' });
  });
});

describe('chain registry: declarations together (one block for a round’s objects and its anchor)', () => {
  /** Prepares each upload's declaration with `registry.prepare`, as a put given a batch does. */
  const prepareAll = (registry: ReturnType<typeof registryOf>, uploads: ReturnType<typeof upload>[]) =>
    Promise.all(uploads.map((u) => registry.prepare!(u.record, u.deal, u.columns)));
  const termsFor = (fid: string) => protocolCall('market.setTerms', { fid, readers: [], price: '5' });

  it('puts and a call naming one of them go on chain in one extrinsic, the declarations first', async () => {
    const twin = await networkWithMiners();
    const registry = registryOf(twin, owner);
    const sealed = upload('together/sealed', owner, { encrypted: true });
    const plain = upload('together/plain', owner);
    const prepared = await prepareAll(registry, [sealed, plain]);
    const before = twin.submitted.length;
    // Terms need the object on chain: applied only if its declaration came before them in the same extrinsic.
    await registry.declareTogether!(prepared, [termsFor(sealed.record.fid)]);
    expect(twin.submitted.length).toBe(before + 1);
    expect(fileOf(twin.state, sealed.record.fid)?.state).toBe('Active');
    expect(fileOf(twin.state, plain.record.fid)?.state).toBe('Active');
    expect(termsOf(twin.state, sealed.record.fid)?.price).toBe('5');
  });

  it('a declaration the chain refuses among others comes out as its own error (QUOTA_EXCEEDED); the others stand', async () => {
    const twin = await networkWithMiners();
    const registry = registryOf(twin, owner);
    const small = upload('together/small', owner);
    // 8 segments of 256 MiB: more than the 1 GiB of space the owner bought.
    const huge = upload('together/huge', owner, { segments: 8, segmentSize: 256 * 1024 * 1024 });
    const prepared = await prepareAll(registry, [small, huge]);
    const before = twin.submitted.length;
    // Judged call by call, the extrinsic as a whole goes through: without declaring the refused one again on its
    // own, the refusal would pass unseen and the put would report an object that is not on chain.
    await rejectsWith(registry.declareTogether!(prepared, []), 'QUOTA_EXCEEDED');
    expect(twin.submitted.length).toBe(before + 2);
    expect(fileOf(twin.state, small.record.fid)?.state).toBe('Active');
    expect(fileOf(twin.state, huge.record.fid)).toBeUndefined();
  });

  it('declarations too large for one extrinsic together go one by one, then the calls alongside', async () => {
    const twin = await networkWithMiners();
    const registry = registryOf(twin, owner);
    // 2,000 segments each: one declaration fits an extrinsic's 3 MiB of remarks, two do not.
    const big = [1, 2].map((i) => upload(`together/big-${i}`, owner, { segments: 2000, encrypted: true }));
    const prepared = await prepareAll(registry, big);
    expect(remarkBytes(prepared.flatMap((p) => p.calls))).toBeGreaterThan(MAX_DECLARATION_BYTES);
    const before = twin.submitted.length;
    await registry.declareTogether!(prepared, [termsFor(big[0]!.record.fid)]);
    expect(twin.submitted.length).toBe(before + 3);
    for (const b of big) expect(fileOf(twin.state, b.record.fid)?.state).toBe('Active');
    expect(termsOf(twin.state, big[0]!.record.fid)?.price).toBe('5');
  });

  it('a round anchored beside its manifest’s refused declaration does not stand: the close fails, nothing anchored', async () => {
    const twin = await networkWithMiners();
    const registry = registryOf(twin, owner);
    await twin.run(owner, [remark('provenance.createTask', { task: 'short', spec: 'ab'.repeat(32) })]);
    // The coordinator's space runs out exactly at the manifest (256 MiB segments: more than the 1 GiB it bought).
    const manifest = upload('together/manifest', owner, { segments: 8, segmentSize: 256 * 1024 * 1024 });
    const prepared = await prepareAll(registry, [manifest]);
    const anchor = protocolCall('provenance.recordRound', {
      task: 'short',
      round: 0,
      manifest: manifest.record.fid,
      digest: 'cd'.repeat(32),
    });
    await rejectsWith(registry.declareTogether!(prepared, [anchor]), 'QUOTA_EXCEEDED');
    // An anchor beside it would name an object nobody stored: an auditor could never read the round's lineage.
    expect(fileOf(twin.state, manifest.record.fid)).toBeUndefined();
    expect(roundsOf(twin.state, 'short')).toEqual([]);
  });

  it('a call refused beside declarations that all stood → CHAIN_CALL_REJECTED with the chain’s reason, not tried again', async () => {
    const twin = await networkWithMiners();
    const registry = registryOf(twin, owner);
    const plain = upload('together/refused', owner);
    const prepared = await prepareAll(registry, [plain]);
    const before = twin.submitted.length;
    const err = await rejectsWith(
      registry.declareTogether!(prepared, [termsFor(plain.record.fid)]),
      'CHAIN_CALL_REJECTED',
    );
    expect(err.message).toContain('stored unencrypted');
    expect(twin.submitted.length).toBe(before + 1);
    expect(fileOf(twin.state, plain.record.fid)?.state).toBe('Active');
  });
});

describe('chain registry: placement drawn by free space (issue 17 item 6)', () => {
  it('puts drawn miners with room first, differently per put, recomputably, and still lists every miner', async () => {
    const twin = memoryChain();
    const many = makeAccounts('chain-registry/placement', 30);
    for (const [i, m] of many.entries()) {
      // Miner 0 declares 100 bytes: no room for a column, so it is never drawn (but is still listed for reads).
      const reg =
        i === 0
          ? call('sminer.register', {
              peerId: peerIdOf(m),
              addrs: [],
              capacity: 100,
              collateral: '1000',
              peerSignature: peerSignatureOf(m, 'sminer.register'),
            })
          : registerMiner(m);
      await twin.run(m, [{ kind: 'transfer', to: POT, amount: 1000n }, remark(reg.name, reg.args)]);
    }
    const registry = registryOf(twin, owner);
    const byAddress = await registry.directory();
    expect(byAddress.map((p) => p.peerId)).toEqual(
      [...many].sort((a, b) => (a.address < b.address ? -1 : 1)).map((m) => peerIdOf(m)),
    );
    const want = { columns: 12, columnBytes: 1024, deal: 'd'.repeat(32) };
    const firsts: string[][] = [];
    for (let put = 0; put < 10; put++) {
      const order = (await registry.directory(want)).map((p) => p.peerId);
      expect(order.sort()).toEqual(byAddress.map((p) => p.peerId).sort());
      const drawn = (await registry.directory(want)).map((p) => p.peerId);
      firsts.push(drawn.slice(0, 12));
      expect(drawn.slice(0, 24)).not.toContain(peerIdOf(many[0]!));
    }
    // Not the first 12 in address order every time: the draws reach most of the 29 miners with room.
    expect(new Set(firsts.flat()).size).toBeGreaterThan(20);
    expect(new Set(firsts.map((f) => f.join())).size).toBe(10);
    // Anyone with the same chain state, uploader and count of puts draws the same miners.
    const again = registryOf(twin, owner);
    expect((await again.directory(want)).map((p) => p.peerId)).toEqual(
      (await registryOf(twin, owner).directory(want)).map((p) => p.peerId),
    );
    await rejectsWith(registry.directory({ ...want, columns: 30 }), 'NOT_ENOUGH_MINERS');
  });
});

describe('chain registry: miners that left', () => {
  it('a miner that exited leaves the directory and is listed as departed, for reads to ask last', async () => {
    const twin = await networkWithMiners();
    const leaving = miners[3]!;
    await twin.run(leaving, [remark('sminer.exit', {})]);
    const registry = registryOf(twin, owner);
    const listed = (await registry.directory()).map((p) => p.peerId);
    const departed = (await registry.departed!()).map((p) => p.peerId);
    expect(listed).toHaveLength(WIDTH - 1);
    expect(listed).not.toContain(peerIdOf(leaving));
    expect(departed).toEqual([peerIdOf(leaving)]);
  });
});
