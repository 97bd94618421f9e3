import { beforeAll, describe, expect, it, vi } from 'vitest';
import { parseProtocolConfig, protocolConfigToJson } from '../../src/chain/config.ts';
import { serviceBytesOf } from '../../src/chain/pallets/audit.ts';
import type { ProtocolConfig } from '../../src/chain/pallets/context.ts';
import { restoralClaimers, transferReceiptMessage } from '../../src/chain/pallets/file-bank.ts';
import {
  epochKey,
  epochMiners,
  heldSpaceOf,
  holdAllowance,
  holdOf,
  liveHold,
  placementEpoch,
  usedBytesOf,
  usedSlots,
} from '../../src/chain/pallets/placement.ts';
import { QUOTA_EXCEEDED, spaceUseOf } from '../../src/chain/pallets/storage-handler.ts';
import { drawPlacement, placementSeed } from '../../src/chain/placement.ts';
import { fileOf, minersOf } from '../../src/chain/queries.ts';
import type { PeerRef } from '../../src/p2p/index.ts';
import { type Account, accountsReady } from '../../src/shared/account.ts';
import { toHex } from '../../src/shared/bytes.ts';
import { systemClock, systemRandom } from '../../src/shared/clock.ts';
import { AilinkError } from '../../src/shared/errors.ts';
import { createChainRegistry } from '../../src/storage/client/chain-registry.ts';
import {
  createCodecPool,
  createStorageClient,
  type FragmentBody,
  TEST_PROFILE,
} from '../../src/storage/index.ts';
import type { ObjectRecord, PlacedColumn } from '../../src/storage/object/record.ts';
import type { ColumnRef, MinerClient } from '../../src/storage/protocol/miner-client.ts';
import { rejectsWith } from '../storage/helpers.ts';
import { memoryChain, remark, spaceCalls, type Twin } from '../storage/memory-chain.ts';
import {
  CONFIG,
  type Declaration,
  makeAccounts,
  makeDeclaration,
  makeReceipt,
  POT,
  peerIdOf,
  registerMiner,
} from './helpers.ts';

// Placement as a rule (issue 17 item 6, src/chain/pallets/placement.ts): the attack it closes — an uploader placing its
// columns on miners of its choosing — first succeeds on a network without it, then is refused; honest draws through
// the chain registry still land.

const PLACED: ProtocolConfig = {
  ...CONFIG,
  placement: { epochBlocks: 100, epochsValid: 2, slotsPerEpoch: 4, spares: 4, capBytes: 1 << 30 },
};
const COLUMNS = 12;
const COLUMN_BYTES = 2 * (1024 / 8); // makeDeclaration: 2 segments of 1024 bytes, 8 data fragments

let miners: Account[];
let uploader: Account;
const byPeer = new Map<string, Account>();

beforeAll(async () => {
  await accountsReady();
  miners = makeAccounts('placement-rules/miner', 40);
  [uploader] = makeAccounts('placement-rules/uploader', 1) as [Account];
  for (const m of miners) byPeer.set(peerIdOf(m), m);
});

async function network(config: ProtocolConfig, count = miners.length): Promise<Twin> {
  const twin = memoryChain(config);
  for (const m of miners.slice(0, count)) {
    const { name, args } = registerMiner(m);
    await twin.run(m, [{ kind: 'transfer', to: POT, amount: 1000n }, remark(name, args)]);
  }
  await twin.run(uploader, spaceCalls(4));
  // Into epoch 1, whose snapshot lists them all (epoch 0's was taken at block 1, before any registered).
  await twin.mine(100 - (await twin.indexer.sync()));
  return twin;
}

/** Epoch 1: where every test's uploads draw (its blocks 100–199 hold them all). */
const EPOCH = 1;

const registryOf = (twin: Twin, random?: (n: number) => Uint8Array) =>
  createChainRegistry({
    chain: { ...twin.chain, close: async () => {} },
    indexer: { ...twin.indexer, close: async () => {} },
    account: uploader,
    miners: {} as MinerClient,
    ...(random === undefined ? {} : { random }),
  });

/** A storage client of the uploader over `miners` and `registry`, on an inline codec pool (closed by the caller). */
function clientOf(miners: MinerClient, registry: ReturnType<typeof registryOf>) {
  const codec = createCodecPool({ inline: true });
  const client = createStorageClient(
    { miners, registry, account: uploader, codec, clock: systemClock, random: systemRandom },
    { profile: TEST_PROFILE, fragmentDeadlineMs: 5000 },
  );
  return { client, codec };
}

/** Declares `d` with `ticket` and reports receipts from `holders` (column i on holders[i]) in one extrinsic. */
async function declareOn(
  twin: Twin,
  d: Declaration,
  holders: readonly Account[],
  ticket?: { epoch: number; slot: number },
) {
  const { blockNumber } = await twin.chain.submit(uploader, [
    remark('fileBank.uploadDeclaration', { ...d, ...(ticket === undefined ? {} : { placement: ticket }) }),
    ...(holders.length === 0
      ? []
      : [
          remark('fileBank.transferReport', {
            fid: d.fid,
            receipts: holders.map((m, index) => makeReceipt(m, d, index)),
          }),
        ]),
  ]);
  return twin.records.filter((r) => r.block === blockNumber);
}

/** The miners the rules accept for the uploader's `slot` of EPOCH, recomputed from the chain's snapshot. */
function drawnFor(twin: Twin, slot: number): string[] {
  const epoch = placementEpoch(twin.state, EPOCH)!;
  return drawPlacement(
    epochMiners(twin.state, EPOCH).map(([id, free]) => ({ id, free })),
    placementSeed(epoch.seed, uploader.address, slot),
    { columns: COLUMNS, spares: 4, columnBytes: 1, capBytes: 1 << 30 },
  );
}

/** Twelve miners outside the draw of `slot`: colluders, as an uploader placing by its own choice would pick. */
const outside = (twin: Twin, slot: number): Account[] =>
  miners.filter((m) => !drawnFor(twin, slot).includes(m.address)).slice(0, COLUMNS);

const accountOf = (address: string) => miners.find((m) => m.address === address)!;

const upload = (label: string): { d: Declaration; record: ObjectRecord } => {
  const d = makeDeclaration(label, uploader.address);
  return {
    d,
    record: {
      version: 1,
      fid: d.fid,
      size: d.size,
      owner: uploader.address,
      createdAt: 0,
      profile: d.profile,
      segments: d.segments,
      encryption: null,
    },
  };
};

/**
 * Two chain registries of the uploader (two gateways of one account) whose random source always picks the first open
 * slot: each draws for an upload of its own in slot 0 of EPOCH, and the first declares with it.
 */
async function twoClientsOnOneSlot(label: string) {
  const twin = await network(PLACED, 15);
  const zeros = (n: number) => new Uint8Array(n);
  const [first, second] = [registryOf(twin, zeros), registryOf(twin, zeros)];
  const a = upload(`${label}/gateway-a`);
  const b = upload(`${label}/gateway-b`);
  const drawnA = await first.directory({ columns: COLUMNS, columnBytes: COLUMN_BYTES, deal: a.d.deal });
  const drawnB = await second.directory({ columns: COLUMNS, columnBytes: COLUMN_BYTES, deal: b.d.deal });
  await first.declare(a.record, a.d.deal, columnsOn(a.d, drawnA));
  return { twin, second, a, b, drawnB };
}

/** Column i on `peers[i]`, each with its miner's receipt. */
const columnsOn = (d: Declaration, peers: readonly { peerId: string }[]): PlacedColumn[] =>
  peers.slice(0, COLUMNS).map((p, index) => ({
    peer: { peerId: p.peerId, addrs: [] },
    receipt: makeReceipt(byPeer.get(p.peerId)!, d, index),
  }));

describe('placement as a rule: the attack', () => {
  it('without it, an uploader puts every column on twelve miners of its choosing, and the chain takes it', async () => {
    const twin = await network(CONFIG);
    const { d } = upload('attack/open');
    const colluders = miners.slice(-COLUMNS);
    const outcome = await declareOn(twin, d, colluders);
    expect(outcome.map((r) => r.outcome)).toEqual(['applied', 'applied']);
    expect(fileOf(twin.state, d.fid)).toMatchObject({
      state: 'Active',
      placements: colluders.map((m) => m.address),
    });
    // Such a network writes nothing of the draw: its chain replays to the digest it always had.
    expect(twin.state.scan('placement/')).toEqual([]);
  });

  it('with it, the same columns on miners outside the draw are refused, and the file takes none of them', async () => {
    const twin = await network(PLACED);
    const { d } = upload('attack/closed');
    const colluders = outside(twin, 3);
    expect(colluders).toHaveLength(COLUMNS);
    const outcome = await declareOn(twin, d, colluders, { epoch: EPOCH, slot: 3 });
    expect(outcome.map((r) => r.outcome)).toEqual(['applied', 'rejected']);
    expect(outcome[1]!.reason).toMatch(
      /is not among the 16 miners drawn for .* its column must go to a drawn miner/,
    );
    expect(fileOf(twin.state, d.fid)).toMatchObject({
      state: 'Pending',
      placements: new Array(COLUMNS).fill(null),
    });
    for (const m of colluders) expect(usedBytesOf(twin.state, m.address)).toBe(0);
  });

  it('one column outside the draw is enough to refuse the report; the drawn miners alone are taken', async () => {
    const twin = await network(PLACED);
    const { d } = upload('attack/one');
    const drawn = drawnFor(twin, 1);
    const holders = drawn.slice(0, COLUMNS).map(accountOf);
    holders[5] = outside(twin, 1)[0]!;
    const outcome = await declareOn(twin, d, holders, { epoch: EPOCH, slot: 1 });
    expect(outcome[1]).toMatchObject({ outcome: 'rejected' });
    expect(outcome[1]!.reason).toContain(`miner ${holders[5]!.address} is not among`);
    holders[5] = accountOf(drawn[COLUMNS]!);
    const report = await twin.chain.submit(uploader, [
      remark('fileBank.transferReport', {
        fid: d.fid,
        receipts: holders.map((m, index) => makeReceipt(m, d, index)),
      }),
    ]);
    expect(twin.records.find((r) => r.block === report.blockNumber)?.outcome).toBe('applied');
    expect(fileOf(twin.state, d.fid)?.state).toBe('Active');
  });
});

describe('placement as a rule: honest uploads', () => {
  it('the registry draws, declares with its ticket, and the chain takes the drawn miners, spares included', async () => {
    const twin = await network(PLACED);
    const registry = registryOf(twin);
    const { d, record } = upload('honest/drawn');
    const drawn = await registry.directory({ columns: COLUMNS, columnBytes: COLUMN_BYTES, deal: d.deal });
    expect(drawn).toHaveLength(COLUMNS + 4);
    // Column 3's miner failed: the put moved it to the first spare.
    const peers = [...drawn.slice(0, COLUMNS)];
    peers[3] = drawn[COLUMNS]!;
    await registry.declare(record, d.deal, columnsOn(d, peers));
    const file = fileOf(twin.state, d.fid)!;
    expect(file).toMatchObject({ state: 'Active', placement: { epoch: EPOCH, by: uploader.address } });
    expect(file.placements).toEqual(peers.map((p) => byPeer.get(p.peerId)!.address));
    expect(usedSlots(twin.state, EPOCH, uploader.address)).toEqual([file.placement!.slot]);
    // An upload whose deal drew no ticket is not declared: the chain would refuse its columns.
    const undrawn = upload('honest/undrawn');
    await rejectsWith(
      registry.declare(undrawn.record, undrawn.d.deal, columnsOn(undrawn.d, peers)),
      'INVALID_INPUT',
    );
  });

  it('different uploads draw different miners, and a slot declares one upload only', async () => {
    const twin = await network(PLACED);
    const registry = registryOf(twin);
    const draws = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const { d, record } = upload(`honest/many/${i}`);
      const drawn = await registry.directory({ columns: COLUMNS, columnBytes: COLUMN_BYTES, deal: d.deal });
      draws.add(drawn.map((p) => p.peerId).join());
      await registry.declare(record, d.deal, columnsOn(d, drawn));
      expect(fileOf(twin.state, d.fid)?.state).toBe('Active');
    }
    expect(draws.size).toBe(4);
    // The epoch's four slots are used; the next uploads take the open slots of epoch 0, still valid (its snapshot,
    // taken before any miner registered, is no larger than one draw: any miner is taken).
    expect(usedSlots(twin.state, EPOCH, uploader.address).toSorted()).toEqual([0, 1, 2, 3]);
    for (let i = 4; i < 8; i++) {
      const { d, record } = upload(`honest/many/${i}`);
      const drawn = await registry.directory({ columns: COLUMNS, columnBytes: COLUMN_BYTES, deal: d.deal });
      await registry.declare(record, d.deal, columnsOn(d, drawn));
      expect(fileOf(twin.state, d.fid)).toMatchObject({ state: 'Active', placement: { epoch: EPOCH - 1 } });
    }
    // Every slot of both valid epochs is used: the next upload waits for the next epoch.
    const ninth = registry.directory({
      columns: COLUMNS,
      columnBytes: COLUMN_BYTES,
      deal: upload('honest/ninth').d.deal,
    });
    await expect(ninth).rejects.toMatchObject({
      code: 'PLACEMENT_SLOTS_TAKEN',
      message: expect.stringMatching(
        /all 4 placement slots of each valid epoch \(0…1\) are taken .* block 200/,
      ),
    });
    const { d } = upload('honest/reused');
    const outcome = await declareOn(twin, d, miners.slice(0, COLUMNS), { epoch: EPOCH, slot: 2 });
    expect(outcome[0]).toMatchObject({ outcome: 'rejected' });
    expect(outcome[0]!.reason).toMatch(/slot 2 of epoch 1 was declared with already/);
    await twin.mine(200 - (await twin.indexer.sync()));
    const next = upload('honest/next-epoch');
    const drawn = await registry.directory({
      columns: COLUMNS,
      columnBytes: COLUMN_BYTES,
      deal: next.d.deal,
    });
    await registry.declare(next.record, next.d.deal, columnsOn(next.d, drawn));
    expect(fileOf(twin.state, next.d.fid)).toMatchObject({
      state: 'Active',
      placement: { epoch: EPOCH + 1 },
    });
  });

  it('a network no larger than one draw takes any positive miner, newcomers since the snapshot included', async () => {
    const twin = await network(PLACED, 15);
    expect(placementEpoch(twin.state, EPOCH)?.miners).toBe(15);
    const late = miners[15]!;
    const { name, args } = registerMiner(late);
    await twin.run(late, [{ kind: 'transfer', to: POT, amount: 1000n }, remark(name, args)]);
    const { d } = upload('small/any');
    const holders = [late, ...miners.slice(3, 3 + COLUMNS - 1)];
    const outcome = await declareOn(twin, d, holders, { epoch: EPOCH, slot: 0 });
    expect(outcome.map((r) => r.outcome)).toEqual(['applied', 'applied']);
  });
});

describe('placement as a rule: a storage client put', () => {
  it('lands on drawn miners; a drawn miner that is down gives its column to a spare of the draw', async () => {
    const twin = await network(PLACED);
    /** Set: the next peer sent a fragment is down from then on. */
    let armed = false;
    const down = new Set<string>();
    // Miners in memory: each takes what it is sent and signs its receipt with its own account, as a real one does.
    const miners = {
      async put(peer: PeerRef, hash: string, bytes: Uint8Array | FragmentBody) {
        if (armed) {
          armed = false;
          down.add(peer.peerId);
        }
        if (down.has(peer.peerId))
          throw new AilinkError('PEER_UNREACHABLE', `${peer.peerId} is down (${hash})`);
        if (!(bytes instanceof Uint8Array)) for (const _ of bytes.pieces()) void _;
      },
      async receipt(peer: PeerRef, column: ColumnRef & { deal: string }) {
        const m = byPeer.get(peer.peerId)!;
        const message = transferReceiptMessage(column.fid, column.deal, column.index, column.fragments);
        return { index: column.index, miner: m.address, signature: toHex(m.sign(message)) };
      },
    } as unknown as MinerClient;
    const { client, codec } = clientOf(miners, registryOf(twin));
    const placedOnDraw = (fid: string) => {
      const file = fileOf(twin.state, fid)!;
      expect(file.state).toBe('Active');
      const drawn = drawnFor(twin, file.placement!.slot);
      expect(file.placements.every((p) => drawn.includes(p!))).toBe(true);
      return { file, drawn };
    };
    try {
      placedOnDraw((await client.put(systemRandom(TEST_PROFILE.segmentSize + 7))).fid);
      armed = true;
      const moves: string[] = [];
      const { fid } = await client.put(systemRandom(100), {
        onProgress: (e) => {
          if (e.kind === 'column-moved') moves.push(e.to);
        },
      });
      const { file, drawn } = placedOnDraw(fid);
      expect(down.size).toBe(1);
      const [gone] = [...down].map((peer) => byPeer.get(peer)!.address);
      expect(file.placements).not.toContain(gone);
      // The spare it moved to is the draw's 13th miner, and every column sits on one of the draw's first 13.
      expect(moves.map((peer) => byPeer.get(peer)!.address)).toEqual([drawn[COLUMNS]]);
      expect(drawn.slice(0, COLUMNS + 1)).toEqual(expect.arrayContaining(file.placements));
    } finally {
      await codec.close();
    }
  });
});

// Holds: a put longer than a draw's validity (a 1.2 GB model update on a busy dev network outlived its 250 blocks, and
// the coordinator's declaration was refused) holds its ticket on chain while its columns travel.
describe('placement as a rule: holds', () => {
  /** The uploads' profile (`makeDeclaration`'s): 8 + 4 columns of 1 KiB segments. */
  const PROFILE = { segmentSize: 1024, dataFragments: 8, parityFragments: 4 };
  const hold = (deal: string, epoch: number, slot: number, segments = 1, profile = PROFILE) =>
    remark('placement.holdTicket', { deal, epoch, slot, profile, segments });
  const used = (twin: Twin) => spaceUseOf(twin.state, uploader.address).used;
  const outcomeOf = async (twin: Twin, calls: ReturnType<typeof remark>[]) => {
    const { blockNumber } = await twin.chain.submit(uploader, calls);
    return twin.records.filter((r) => r.block === blockNumber);
  };

  /** A client put whose miners take 60 blocks per segment: 8 segments outlast a draw's 300 blocks. */
  async function slowPut(twin: Twin, keepDraw: boolean) {
    const registry = registryOf(twin);
    const slowMiners = {
      async put(peer: PeerRef, _hash: string, bytes: Uint8Array | FragmentBody) {
        if (!(bytes instanceof Uint8Array)) for (const _ of bytes.pieces()) void _;
        if (peer.peerId === firstPeer) await twin.mine(60);
      },
      async receipt(peer: PeerRef, column: ColumnRef & { deal: string }) {
        const m = byPeer.get(peer.peerId)!;
        const message = transferReceiptMessage(column.fid, column.deal, column.index, column.fragments);
        return { index: column.index, miner: m.address, signature: toHex(m.sign(message)) };
      },
    } as unknown as MinerClient;
    let firstPeer = '';
    const directory = registry.directory.bind(registry);
    registry.directory = async (want) => {
      const peers = await directory(want);
      firstPeer = peers[0]!.peerId;
      return peers;
    };
    if (!keepDraw) delete registry.keepDraw;
    const { client, codec } = clientOf(slowMiners, registry);
    try {
      return await client.put(systemRandom(TEST_PROFILE.segmentSize * 8));
    } finally {
      await codec.close();
    }
  }

  it('without a hold, a put longer than its draw is valid is refused at its declaration', async () => {
    const twin = await network(PLACED);
    await expect(slowPut(twin, false)).rejects.toThrow(/placement epoch 1: expected one of [3-9]…/);
  });

  it('with it, the put holds its draw, renews the hold, and lands on the miners it was drawn', async () => {
    const twin = await network(PLACED);
    const draws = [0, 1, 2, 3].map((slot) => drawnFor(twin, slot));
    const { fid } = await slowPut(twin, true);
    const file = fileOf(twin.state, fid)!;
    expect(file.state).toBe('Active');
    expect(file.activeAt).toBeGreaterThan(100 + 300);
    expect(file.placement).toMatchObject({ epoch: EPOCH });
    expect(file.placement).not.toHaveProperty('drawn');
    expect(draws[file.placement!.slot]).toEqual(expect.arrayContaining(file.placements));
    const holds = twin.submitted.filter((s) => s.calls.includes('placement.holdTicket'));
    expect(holds.length).toBeGreaterThanOrEqual(2);
    // The declaration took the hold: nothing of it is left, and the space it reserved was given back.
    expect(twin.state.scan('placement/holds/')).toEqual([]);
    expect(used(twin)).toBe(file.charged);
  });

  it("a hold is taken in a declaration's window, on an unused slot, renewed only as taken, and used once", async () => {
    const twin = await network(PLACED);
    const { d } = upload('holds/rules');
    const drawn = drawnFor(twin, 2);
    const colluders = outside(twin, 2);
    const refused: [ReturnType<typeof remark>, RegExp][] = [
      [hold(d.deal, 2, 2), /placement epoch 2: expected one of 0…1/],
      [hold(d.deal, EPOCH, 4), /placement slot 4: expected 0…3/],
    ];
    for (const [call, reason] of refused) {
      const [outcome] = await outcomeOf(twin, [call]);
      expect(outcome).toMatchObject({ outcome: 'rejected' });
      expect(outcome!.reason).toMatch(reason);
    }
    expect(twin.state.scan('placement/holds/')).toEqual([]);
    expect((await outcomeOf(twin, [hold(d.deal, EPOCH, 2)]))[0]).toMatchObject({ outcome: 'applied' });
    const taken = await twin.indexer.sync();
    expect(holdOf(twin.state, uploader.address, d.deal)).toEqual({
      epoch: EPOCH,
      slot: 2,
      profile: PROFILE,
      segments: 1,
      charged: 1024,
      drawn,
      until: taken + 300,
    });
    // The hold used the slot: no other upload declares with it, and the hold is not moved to another draw.
    const other = upload('holds/other');
    const [slotTaken] = await declareOn(twin, other.d, [], { epoch: EPOCH, slot: 2 });
    expect(slotTaken!.reason).toMatch(/slot 2 of epoch 1 was declared with already/);
    const [moved] = await outcomeOf(twin, [hold(d.deal, EPOCH, 3)]);
    expect(moved!.reason).toMatch(
      /holds epoch 1, slot 2 for 8\+4 columns of 1024-byte segments: a hold is renewed as it was taken/,
    );
    const [reshaped] = await outcomeOf(twin, [hold(d.deal, EPOCH, 2, 1, { ...PROFILE, segmentSize: 2048 })]);
    expect(reshaped!.reason).toMatch(/a hold is renewed as it was taken/);
    // Long after epoch 1 is gone, the renewed hold still declares, and the report is checked against its draw.
    await twin.mine(taken + 250 - (await twin.indexer.sync()));
    await outcomeOf(twin, [hold(d.deal, EPOCH, 2)]);
    await twin.mine(taken + 500 - (await twin.indexer.sync()));
    expect(placementEpoch(twin.state, EPOCH)).toBeUndefined();
    const [declared, report] = await declareOn(twin, d, colluders, { epoch: EPOCH, slot: 2 });
    expect(declared).toMatchObject({ outcome: 'applied' });
    expect(report!.reason).toMatch(/is not among the 16 miners drawn for .* \(placement epoch 1, slot 2\)/);
    expect(fileOf(twin.state, d.fid)!.placement!.drawn).toEqual(drawn);
    const honest = await twin.chain.submit(uploader, [
      remark('fileBank.transferReport', {
        fid: d.fid,
        receipts: drawn.slice(0, COLUMNS).map((a, index) => makeReceipt(accountOf(a), d, index)),
      }),
    ]);
    expect(twin.records.find((r) => r.block === honest.blockNumber)?.outcome).toBe('applied');
    expect(fileOf(twin.state, d.fid)).toMatchObject({
      state: 'Active',
      placement: { epoch: EPOCH, slot: 2 },
    });
    expect(fileOf(twin.state, d.fid)!.placement).not.toHaveProperty('drawn');
    expect(holdOf(twin.state, uploader.address, d.deal)).toBeUndefined();
  });

  it('a hold left to end is not declared with; a new hold then needs a valid epoch, and ended holds are dropped', async () => {
    const twin = await network(PLACED);
    const { d } = upload('holds/ended');
    await outcomeOf(twin, [hold(d.deal, EPOCH, 0)]);
    const until = holdOf(twin.state, uploader.address, d.deal)!.until;
    // What miners ask before collecting the fragments put for this upload: held through `until`, not after, and
    // only for this deal of this account.
    expect(liveHold(twin.state, uploader.address, d.deal, until)).toMatchObject({ segments: 1 });
    expect(liveHold(twin.state, uploader.address, d.deal, until + 1)).toBeUndefined();
    expect(liveHold(twin.state, miners[0]!.address, d.deal, until)).toBeUndefined();
    expect(liveHold(twin.state, uploader.address, upload('holds/other').d.deal, until)).toBeUndefined();
    // What each miner keeps of it: one column fragment (1024 / 8 bytes) of the one segment held, and only a miner of
    // the hold's draw; put on the 24 others of the 40, the upload's fragments would be kept on all of them.
    const drawn = holdOf(twin.state, uploader.address, d.deal)!.drawn!;
    const others = miners.filter((m) => !drawn.includes(m.address));
    expect(drawn).toHaveLength(16);
    for (const m of drawn) expect(holdAllowance(twin.state, uploader.address, d.deal, m, until)).toBe(128);
    for (const m of others)
      expect(holdAllowance(twin.state, uploader.address, d.deal, m.address, until)).toBe(0);
    expect(holdAllowance(twin.state, uploader.address, d.deal, drawn[0]!, until + 1)).toBe(0);
    await twin.mine(until + 1 - (await twin.indexer.sync()));
    const [declared] = await declareOn(twin, d, [], { epoch: EPOCH, slot: 0 });
    expect(declared!.reason).toMatch(
      new RegExp(`the hold on placement epoch 1, slot 0 for upload ${d.deal} ended at block ${until}`),
    );
    const [renewed] = await outcomeOf(twin, [hold(d.deal, EPOCH, 0)]);
    expect(renewed!.reason).toMatch(/placement epoch 1: expected one of/);
    // A fresh hold in the current epoch drops the ended one.
    const epoch = Math.floor((await twin.indexer.sync()) / 100);
    const next = upload('holds/next');
    expect((await outcomeOf(twin, [hold(next.d.deal, epoch, 0)]))[0]).toMatchObject({ outcome: 'applied' });
    expect(holdOf(twin.state, uploader.address, d.deal)).toBeUndefined();
    // A declaration of another column count does not take the hold.
    const wide = {
      ...next.d,
      profile: { ...next.d.profile, parityFragments: next.d.profile.parityFragments + 1 },
    };
    const [mismatch] = await declareOn(twin, wide as Declaration, [], { epoch, slot: 0 });
    expect(mismatch!.reason).toMatch(
      /the hold was drawn for 8\+4 columns of 1024-byte segments; this upload has 8\+5 columns of 1024-byte segments/,
    );
  });

  it("a hold reserves its segments of the holder's space: more on a renewal that asks, never beyond what is left, all of it back at the declaration or once dropped", async () => {
    const twin = await network(PLACED);
    const [d, e, f, g] = ['holds/space', 'holds/too-big', 'holds/left', 'holds/after'].map(
      (l) => upload(l).d,
    ) as [Declaration, Declaration, Declaration, Declaration];
    expect(used(twin)).toBe(0);
    expect((await outcomeOf(twin, [hold(d.deal, EPOCH, 0, 3)]))[0]).toMatchObject({ outcome: 'applied' });
    expect(used(twin)).toBe(3 * 1024);
    // A renewal asking for less keeps what is reserved; one asking for more reserves the difference.
    await outcomeOf(twin, [hold(d.deal, EPOCH, 0, 2)]);
    expect(holdOf(twin.state, uploader.address, d.deal)).toMatchObject({ segments: 3, charged: 3 * 1024 });
    await outcomeOf(twin, [hold(d.deal, EPOCH, 0, 10)]);
    expect(holdOf(twin.state, uploader.address, d.deal)).toMatchObject({ segments: 10, charged: 10 * 1024 });
    expect(used(twin)).toBe(10 * 1024);
    // What `ailink space show` says of it.
    expect(heldSpaceOf(twin.state, uploader.address)).toEqual({ bytes: 10 * 1024, uploads: 1 });
    // Beyond the 4 GiB bought: refused, nothing held, nothing reserved, the slot still free.
    const [tooBig] = await outcomeOf(twin, [hold(e.deal, EPOCH, 1, 5, { ...PROFILE, segmentSize: 2 ** 30 })]);
    expect(tooBig).toMatchObject({ outcome: 'rejected' });
    expect(tooBig!.reason).toMatch(
      new RegExp(`^${QUOTA_EXCEEDED}: the hold of upload ${e.deal} \\(5 segments\\) takes 5\\.00 GiB`),
    );
    expect(holdOf(twin.state, uploader.address, e.deal)).toBeUndefined();
    expect(used(twin)).toBe(10 * 1024);
    // The declaration charges the object's own segments instead of what its hold reserved.
    const [declared] = await declareOn(twin, d, [], { epoch: EPOCH, slot: 0 });
    expect(declared).toMatchObject({ outcome: 'applied' });
    expect(used(twin)).toBe(2 * 1024);
    expect(heldSpaceOf(twin.state, uploader.address)).toEqual({ bytes: 0, uploads: 0 });
    // A hold left to end gives its space back when the account's next hold drops it.
    await outcomeOf(twin, [hold(f.deal, EPOCH, 1, 4)]);
    expect(used(twin)).toBe(6 * 1024);
    await twin.mine(holdOf(twin.state, uploader.address, f.deal)!.until + 1 - (await twin.indexer.sync()));
    const epoch = Math.floor((await twin.indexer.sync()) / 100);
    await outcomeOf(twin, [hold(g.deal, epoch, 0, 1)]);
    expect(holdOf(twin.state, uploader.address, f.deal)).toBeUndefined();
    expect(used(twin)).toBe(3 * 1024);
    // Or at the next epoch's first block, for an account that sends nothing more.
    const until = holdOf(twin.state, uploader.address, g.deal)!.until;
    await twin.mine(until + 1 - (await twin.indexer.sync()));
    expect(holdOf(twin.state, uploader.address, g.deal)).toBeDefined();
    await twin.mine((Math.floor(until / 100) + 1) * 100 - (await twin.indexer.sync()));
    expect(holdOf(twin.state, uploader.address, g.deal)).toBeUndefined();
    expect(used(twin)).toBe(2 * 1024);
  });

  it('a declaration with another ticket than the held one gives the hold and its space back', async () => {
    const twin = await network(PLACED);
    const { d } = upload('holds/moved');
    await outcomeOf(twin, [hold(d.deal, EPOCH, 0, 3)]);
    expect(used(twin)).toBe(3 * 1024);
    const [declared] = await declareOn(twin, d, [], { epoch: EPOCH, slot: 1 });
    expect(declared).toMatchObject({ outcome: 'applied' });
    expect(holdOf(twin.state, uploader.address, d.deal)).toBeUndefined();
    expect(used(twin)).toBe(2 * 1024);
  });

  it("a declaration drops the account's ended holds, and only those", async () => {
    const twin = await network(PLACED);
    const [abandoned, running, other] = ['holds/abandoned', 'holds/running', 'holds/other'].map(upload) as [
      ReturnType<typeof upload>,
      ReturnType<typeof upload>,
      ReturnType<typeof upload>,
    ];
    await outcomeOf(twin, [hold(abandoned.d.deal, EPOCH, 0)]);
    await twin.mine(50);
    await outcomeOf(twin, [hold(running.d.deal, EPOCH, 1)]);
    const ended = holdOf(twin.state, uploader.address, abandoned.d.deal)!.until;
    await twin.mine(ended + 1 - (await twin.indexer.sync()));
    const epoch = Math.floor((await twin.indexer.sync()) / 100);
    const [declared] = await declareOn(twin, other.d, [], { epoch, slot: 0 });
    expect(declared).toMatchObject({ outcome: 'applied' });
    expect(holdOf(twin.state, uploader.address, abandoned.d.deal)).toBeUndefined();
    expect(holdOf(twin.state, uploader.address, running.d.deal)).toBeDefined();
  });

  it('the registry reserves what the put asks, renewing only to grow, and never past the space left', async () => {
    const twin = await network(PLACED);
    const registry = registryOf(twin);
    const { d } = upload('holds/registry');
    await registry.directory({ columns: COLUMNS, columnBytes: COLUMN_BYTES, deal: d.deal });
    const holdCalls = () => twin.submitted.filter((s) => s.calls.includes('placement.holdTicket')).length;
    const reserved = () => holdOf(twin.state, uploader.address, d.deal)?.segments;
    const big = { ...PROFILE, segmentSize: 2 ** 28 }; // 256 MiB segments: the 4 GiB bought hold 16
    registry.keepDraw!(d.deal, { profile: big, segments: 3 });
    await vi.waitFor(() => expect(reserved()).toBe(3));
    registry.keepDraw!(d.deal, { profile: big, segments: 2 });
    registry.keepDraw!(d.deal, { profile: big, segments: 3 });
    await new Promise((r) => setTimeout(r, 50));
    expect(holdCalls()).toBe(1);
    registry.keepDraw!(d.deal, { profile: big, segments: 40 });
    await vi.waitFor(() => expect(reserved()).toBe(16));
    expect(spaceUseOf(twin.state, uploader.address).left).toBe(0);
    // All the space is reserved: asking for more sends nothing.
    registry.keepDraw!(d.deal, { profile: big, segments: 41 });
    await new Promise((r) => setTimeout(r, 50));
    expect(holdCalls()).toBe(2);
  });

  it("a put of a known size its owner's space cannot hold stops at its first hold, not after sending everything", async () => {
    const twin = await network(PLACED);
    // Every byte of the 4 GiB bought is reserved by another upload's hold.
    await outcomeOf(twin, [
      hold(upload('holds/full').d.deal, EPOCH, 3, 4, { ...PROFILE, segmentSize: 2 ** 30 }),
    ]);
    expect(spaceUseOf(twin.state, uploader.address).left).toBe(0);
    const refusedHold = () =>
      twin.records.some((r) => r.outcome === 'rejected' && r.call === 'placement.holdTicket');
    let puts = 0;
    const miners = {
      async put(_peer: PeerRef, _hash: string, bytes: Uint8Array | FragmentBody) {
        if (!(bytes instanceof Uint8Array)) for (const _ of bytes.pieces()) void _;
        // The second segment's fragments wait for the chain's answer to the first segment's hold.
        if (++puts > COLUMNS) await vi.waitFor(() => expect(refusedHold()).toBe(true), { timeout: 5000 });
      },
    } as unknown as MinerClient;
    const { client, codec } = clientOf(miners, registryOf(twin));
    const bytes = systemRandom(TEST_PROFILE.segmentSize * 8);
    try {
      const err = await client.put(bytes, { size: bytes.byteLength }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AilinkError);
      expect(err).toMatchObject({ code: 'QUOTA_EXCEEDED' });
      expect((err as Error).message).toMatch(
        new RegExp(`^${QUOTA_EXCEEDED}: the hold of upload [0-9a-f]{32} \\(8 segments\\) takes 512\\.00 KiB`),
      );
      // Two segments of eight went out: the one before the hold and the one on the wire while it was refused.
      expect(puts).toBe(2 * COLUMNS);
    } finally {
      await codec.close();
    }
  });

  it("a put of unknown size that outgrows its owner's space stops once what it placed is more than the space", async () => {
    const twin = await network(PLACED);
    // Other uploads' holds take all but two test segments (128 KiB) of the 4 GiB bought.
    await outcomeOf(twin, [
      hold(upload('holds/most').d.deal, EPOCH, 3, 3, { ...PROFILE, segmentSize: 2 ** 30 }),
      hold(upload('holds/rest').d.deal, EPOCH, 2, 1, {
        ...PROFILE,
        segmentSize: 2 ** 30 - 2 * TEST_PROFILE.segmentSize,
      }),
    ]);
    expect(spaceUseOf(twin.state, uploader.address).left).toBe(2 * TEST_PROFILE.segmentSize);
    let puts = 0;
    const miners = {
      async put(_peer: PeerRef, _hash: string, bytes: Uint8Array | FragmentBody) {
        if (!(bytes instanceof Uint8Array)) for (const _ of bytes.pieces()) void _;
        // The third segment's fragments wait for the put's own hold (asked for after the first segment): two
        // segments, all the space left.
        if (++puts > 2 * COLUMNS)
          await vi.waitFor(() => expect(spaceUseOf(twin.state, uploader.address).left).toBe(0), {
            timeout: 5000,
          });
      },
    } as unknown as MinerClient;
    const { client, codec } = clientOf(miners, registryOf(twin));
    const segment = systemRandom(TEST_PROFILE.segmentSize);
    async function* unsized() {
      for (let i = 0; i < 8; i++) yield segment;
    }
    try {
      const err = await client.put(unsized()).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AilinkError);
      expect(err).toMatchObject({ code: 'QUOTA_EXCEEDED' });
      expect((err as Error).message).toMatch(
        new RegExp(
          `^${QUOTA_EXCEEDED}: upload [0-9a-f]{32} has 192\\.00 KiB placed already, and .* can hold 128\\.00 KiB of it`,
        ),
      );
      // Stopped a segment or two after the third, not after sending all eight; nothing was declared.
      expect(puts).toBeLessThanOrEqual(5 * COLUMNS);
      expect(twin.submitted.some((s) => s.calls.some((c) => c.startsWith('fileBank.')))).toBe(false);
    } finally {
      await codec.close();
    }
  });

  it('a hold the rules refuse is not asked for again; the declaration then finds another slot', async () => {
    const { twin, second, b, drawnB } = await twoClientsOnOneSlot('holds');
    const holdCalls = () => twin.submitted.filter((s) => s.calls.includes('placement.holdTicket')).length;
    const reserve = { profile: b.record.profile, segments: 2 };
    second.keepDraw!(b.d.deal, reserve);
    await vi.waitFor(() => expect(holdCalls()).toBe(1));
    await vi.waitFor(() =>
      expect(twin.records.at(-1)?.reason).toMatch(/slot 0 of epoch 1 was declared with already/),
    );
    for (let i = 0; i < 3; i++) second.keepDraw!(b.d.deal, { ...reserve, segments: 3 + i });
    await new Promise((r) => setTimeout(r, 50));
    expect(holdCalls()).toBe(1);
    await second.declare(b.record, b.d.deal, columnsOn(b.d, drawnB));
    expect(fileOf(twin.state, b.d.fid)).toMatchObject({ state: 'Active', placement: { slot: 1 } });
  });

  it('a network without placement draws has no ticket to hold', async () => {
    const twin = await network(CONFIG, 12);
    const [outcome] = await outcomeOf(twin, [hold(upload('holds/none').d.deal, 0, 0)]);
    expect(outcome!.reason).toMatch(/does not draw placements: there is no ticket to hold/);
  });
});

// Restorals as a rule: before, any positive miner could claim an open restoral order, so an owner could order a restoral
// of its own column and hand it to a miner of its choosing, and colluders could race for an exiting miner's columns.
// Now only the first miners of the file's restorer ranking may claim (src/chain/placement.ts `rankRestorers`).
describe('placement as a rule: restorals', () => {
  /** An Active file on the draw of `slot`, and its holders. */
  async function placed(twin: Twin, label: string, slot: number) {
    const { d } = upload(label);
    const holders = drawnFor(twin, slot).slice(0, COLUMNS).map(accountOf);
    await declareOn(twin, d, holders, { epoch: EPOCH, slot });
    expect(fileOf(twin.state, d.fid)?.state).toBe('Active');
    return { fid: d.fid, holders };
  }
  /** Submits `calls` as `signer`; the outcome of each. */
  async function submitAs(twin: Twin, signer: Account, calls: Parameters<Twin['chain']['submit']>[1]) {
    const { blockNumber } = await twin.chain.submit(signer, calls);
    return twin.records.filter((r) => r.block === blockNumber);
  }
  const claim = (fid: string, index: number) => remark('fileBank.claimRestoralOrder', { fid, index });
  const complete = (fid: string, index: number) => remark('fileBank.restoralComplete', { fid, index });
  const order = (fid: string, index: number) => remark('fileBank.generateRestoralOrder', { fid, index });
  /** Who may claim column `index` of `fid` in the next block. */
  const claimersNext = async (twin: Twin, fid: string, index: number) =>
    restoralClaimers(twin.state, PLACED, (await twin.indexer.sync()) + 1, fid, index)!;
  /** A positive miner holding no column of the file and not ranked: what an owner's colluder would be. */
  const unranked = (holders: readonly Account[], ranked: readonly string[]) =>
    miners.find((m) => !holders.includes(m) && !ranked.includes(m.address))!;

  it('without it, an owner orders a restoral of its own column and a miner of its choosing takes it', async () => {
    const twin = await network(CONFIG);
    const { d } = upload('restoral/open');
    const holders = miners.slice(0, COLUMNS);
    await declareOn(twin, d, holders);
    const colluder = miners.at(-1)!;
    await twin.run(uploader, [order(d.fid, 0)]);
    expect(
      (await submitAs(twin, colluder, [claim(d.fid, 0), complete(d.fid, 0)])).map((r) => r.outcome),
    ).toEqual(['applied', 'applied']);
    expect(fileOf(twin.state, d.fid)!.placements[0]).toBe(colluder.address);
  });

  it('with it, the colluder is refused; a ranked miner claims and completes', async () => {
    const twin = await network(PLACED);
    const { fid, holders } = await placed(twin, 'restoral/owner', 0);
    await twin.run(uploader, [order(fid, 0)]);
    const ranked = await claimersNext(twin, fid, 0);
    // The first `spares` (4) of the ranking; none holds a column of the file.
    expect(ranked).toHaveLength(4);
    for (const h of holders) expect(ranked).not.toContain(h.address);
    const colluder = unranked(holders, ranked);
    const [refused] = await submitAs(twin, colluder, [claim(fid, 0)]);
    expect(refused).toMatchObject({ outcome: 'rejected' });
    expect(refused!.reason).toMatch(/is not among the 4 miners ranked to restore/);
    expect(fileOf(twin.state, fid)!.orders[0]).toMatchObject({ claimer: null });
    const chosen = accountOf(ranked[2]!);
    expect((await submitAs(twin, chosen, [claim(fid, 0), complete(fid, 0)])).map((r) => r.outcome)).toEqual([
      'applied',
      'applied',
    ]);
    expect(fileOf(twin.state, fid)!.placements[0]).toBe(chosen.address);
  });

  it("an exiting miner's columns go to ranked miners only, however fast another claims", async () => {
    const twin = await network(PLACED);
    const { fid, holders } = await placed(twin, 'restoral/exit', 1);
    await twin.run(holders[5]!, [remark('sminer.exit', {})]);
    expect(fileOf(twin.state, fid)!.orders[5]).toMatchObject({ by: null, origin: holders[5]!.address });
    const ranked = await claimersNext(twin, fid, 5);
    const [refused] = await submitAs(twin, unranked(holders, ranked), [claim(fid, 5)]);
    expect(refused).toMatchObject({ outcome: 'rejected' });
    await twin.run(accountOf(ranked[0]!), [claim(fid, 5), complete(fid, 5)]);
    expect(fileOf(twin.state, fid)!.placements[5]).toBe(ranked[0]);
  });

  it('an order left unclaimed admits more of the ranking every claim window; one miner claims one column of a file', async () => {
    const twin = await network(PLACED);
    const { fid, holders } = await placed(twin, 'restoral/widen', 2);
    await twin.run(uploader, [order(fid, 3), order(fid, 7)]);
    // Two orders open: 4 + 1 ranked may claim each, and the one who claimed column 3 may not claim column 7 too.
    const first = await claimersNext(twin, fid, 3);
    expect(first).toHaveLength(5);
    await twin.run(accountOf(first[0]!), [claim(fid, 3)]);
    const [twice] = await submitAs(twin, accountOf(first[0]!), [claim(fid, 7)]);
    expect(twice!.reason).toMatch(
      /has claimed another column of .*; one miner restores one column of a file/,
    );
    // Past two windows (restoralClaimBlocks = 10), four more of the ranking are admitted, in ranking order.
    await twin.mine(2 * PLACED.restoralClaimBlocks);
    const wider = await claimersNext(twin, fid, 7);
    expect(wider).toHaveLength(9);
    expect(wider.slice(0, 5)).toEqual(first);
    await twin.run(accountOf(wider[8]!), [claim(fid, 7), complete(fid, 7)]);
    expect(fileOf(twin.state, fid)!.placements[7]).toBe(wider[8]);
    for (const h of holders) expect(wider).not.toContain(h.address);
  });

  it('ordering the same column again cycles among the top of the ranking: no fresh draw to wait for', async () => {
    const twin = await network(PLACED);
    const { fid, holders } = await placed(twin, 'restoral/again', 3);
    const reached = new Set<string>();
    let holder = holders[0]!.address;
    for (let i = 0; i < 6; i++) {
      await twin.run(uploader, [order(fid, 0)]);
      // The owner's best effort: the last of the ranked (the one a colluder would most likely be).
      const ranked = await claimersNext(twin, fid, 0);
      const next = ranked.at(-1)!;
      await twin.run(accountOf(next), [claim(fid, 0), complete(fid, 0)]);
      reached.add(next);
      expect(fileOf(twin.state, fid)!.placements[0]).toBe(next);
      expect(next).not.toBe(holder);
      holder = next;
      await twin.mine(7);
    }
    // Six restorals in a row, across blocks, reach at most the top 4 + 1 miners of the ranking (the released holder
    // re-enters it): a colluder outside them is never reached.
    expect(reached.size).toBeLessThanOrEqual(5);
  });

  it('the chain registry names the ranked miners for a repair, as the rules rank them', async () => {
    const twin = await network(PLACED);
    const { fid } = await placed(twin, 'restoral/registry', 0);
    const registry = registryOf(twin);
    const named = await registry.restorers!(fid, 2);
    await twin.run(uploader, [order(fid, 0), order(fid, 1)]);
    expect(named).toEqual((await claimersNext(twin, fid, 0)).map((a) => peerIdOf(accountOf(a))));
    // A network without a ranking names none: any miner may restore.
    const open = await network(CONFIG);
    const { d } = upload('restoral/registry-open');
    await declareOn(open, d, miners.slice(0, COLUMNS));
    expect(await registryOf(open).restorers!(d.fid, 1)).toBeUndefined();
  });
});

describe('placement as a rule: tickets', () => {
  it('refuses a declaration without a ticket, with an epoch not yet begun or over, or a slot out of range', async () => {
    const twin = await network(PLACED);
    const cases: [{ epoch: number; slot: number } | undefined, RegExp][] = [
      [undefined, /this network draws placements: a declaration names the ticket/],
      [{ epoch: 2, slot: 0 }, /placement epoch 2: expected one of 0…1/],
      [{ epoch: EPOCH, slot: 4 }, /placement slot 4: expected 0…3/],
    ];
    for (const [i, [ticket, reason]] of cases.entries()) {
      const { d } = upload(`tickets/bad/${i}`);
      const outcome = await declareOn(twin, d, miners.slice(0, COLUMNS), ticket);
      expect(outcome[0]).toMatchObject({ outcome: 'rejected' });
      expect(outcome[0]!.reason).toMatch(reason);
      expect(fileOf(twin.state, d.fid)).toBeUndefined();
    }
    // Three epochs on, epoch 1 is over (2 valid after it): its snapshot and used slots are gone.
    const { d } = upload('tickets/old');
    await declareOn(twin, d, [], { epoch: EPOCH, slot: 1 });
    expect(usedSlots(twin.state, EPOCH, uploader.address)).toEqual([1]);
    await twin.mine(400 - (await twin.indexer.sync()));
    expect(twin.state.get(epochKey(EPOCH))).toBeUndefined();
    expect(epochMiners(twin.state, EPOCH)).toEqual([]);
    expect(usedSlots(twin.state, EPOCH, uploader.address)).toEqual([]);
    expect(twin.state.scan('placement/epochs/').map(([k]) => k)).toEqual([2, 3, 4].map(epochKey));
    const late = upload('tickets/late');
    const outcome = await declareOn(twin, late.d, miners.slice(0, COLUMNS), { epoch: EPOCH, slot: 0 });
    expect(outcome[0]!.reason).toMatch(/placement epoch 1: expected one of 2…4/);
    // The file declared in epoch 1 can no longer be reported: its draw is gone with the epoch.
    const report = await twin.chain.submit(uploader, [
      remark('fileBank.transferReport', {
        fid: d.fid,
        receipts: miners.slice(0, COLUMNS).map((m, index) => makeReceipt(m, d, index)),
      }),
    ]);
    const rejected = twin.records.find((r) => r.block === report.blockNumber);
    expect(rejected?.reason).toMatch(/placement epoch 1 of .* is over .* declare the upload again/);
  });

  it('two clients of one account that drew the same slot: the second declares with another open one', async () => {
    const { twin, second, a, b, drawnB } = await twoClientsOnOneSlot('tickets');
    await second.declare(b.record, b.d.deal, columnsOn(b.d, drawnB));
    expect(fileOf(twin.state, a.d.fid)).toMatchObject({ state: 'Active', placement: { slot: 0 } });
    expect(fileOf(twin.state, b.d.fid)).toMatchObject({ state: 'Active', placement: { slot: 1 } });
    const refused = twin.records.filter((r) => r.outcome === 'rejected').map((r) => r.reason);
    expect(refused[0]).toMatch(/slot 0 of epoch 1 was declared with already/);
  });

  it('a malformed ticket does not make a call at all', () => {
    const { d } = upload('tickets/malformed');
    for (const [placement, field] of [
      [{ epoch: 1, slot: -1 }, /placement.slot/],
      [{ epoch: 1.5, slot: 0 }, /placement.epoch/],
      [{ epoch: 1, slot: 0, by: uploader.address }, /placement/],
    ] as const) {
      expect(() => remark('fileBank.uploadDeclaration', { ...d, placement } as Declaration)).toThrow(field);
    }
  });

  it('refuses a ticket on a network whose rules draw no placements', async () => {
    const twin = await network(CONFIG, 12);
    const { d } = upload('tickets/none');
    const outcome = await declareOn(twin, d, miners.slice(0, COLUMNS), { epoch: 0, slot: 0 });
    expect(outcome[0]!.reason).toMatch(/this network does not draw placements/);
  });
});

describe('placement as a rule: the protocol configuration', () => {
  it('round-trips through protocol JSON; a file from before it reads without; a malformed one names its field', () => {
    const json = protocolConfigToJson(PLACED);
    expect(parseProtocolConfig(JSON.parse(JSON.stringify(json)))).toEqual(PLACED);
    const { placement: _, ...older } = json;
    expect(parseProtocolConfig(older).placement).toBeUndefined();
    const bad = (placement: unknown) => () => parseProtocolConfig({ ...json, placement });
    expect(bad({ ...json.placement, epochBlocks: 0 })).toThrow(/placement.epochBlocks/);
    expect(bad({ ...json.placement, slotsPerEpoch: 65_537 })).toThrow(/placement.slotsPerEpoch/);
    expect(bad({ ...json.placement, spares: -1 })).toThrow(/placement.spares/);
    expect(bad({ ...json.placement, extra: 1 })).toThrow(/placement/);
    expect(bad({ epochBlocks: 10 })).toThrow(/placement.epochsValid/);
  });
});

describe('placement as a rule: free space', () => {
  it('the used-bytes counter equals the scan of what each miner holds, through reports, overwrites, deletes and restorals', async () => {
    const twin = await network(PLACED);
    const registry = registryOf(twin);
    const check = () => {
      for (const m of minersOf(twin.state)) {
        expect(usedBytesOf(twin.state, m.address)).toBe(serviceBytesOf(twin.state, m.address));
      }
    };
    const put = async (label: string, key?: string) => {
      const { d, record } = upload(label);
      const drawn = await registry.directory({ columns: COLUMNS, columnBytes: COLUMN_BYTES, deal: d.deal });
      await registry.declare(
        record,
        d.deal,
        columnsOn(d, drawn),
        key === undefined ? undefined : { bucket: 'backups', key },
      );
      return { d, drawn };
    };
    const a = await put('free/a');
    const b = await put('free/b');
    check();
    // An overwrite: the object the key named is removed in the report that files the new one.
    await twin.run(uploader, [remark('fileBank.createBucket', { name: 'backups' })]);
    const first = await put('free/key-1', 'k');
    await put('free/key-2', 'k');
    expect(fileOf(twin.state, first.d.fid)).toBeUndefined();
    check();
    expect(usedBytesOf(twin.state, byPeer.get(a.drawn[0]!.peerId)!.address)).toBeGreaterThan(0);
    // A restoral: column 0 of a moves from its miner to the first miner of a's restorer ranking.
    const origin = byPeer.get(a.drawn[0]!.peerId)!;
    await twin.run(origin, [remark('fileBank.generateRestoralOrder', { fid: a.d.fid, index: 0 })]);
    const height = await twin.indexer.sync();
    const restorer = accountOf(restoralClaimers(twin.state, PLACED, height + 1, a.d.fid, 0)![0]!);
    await twin.run(restorer, [remark('fileBank.claimRestoralOrder', { fid: a.d.fid, index: 0 })]);
    await twin.run(restorer, [remark('fileBank.restoralComplete', { fid: a.d.fid, index: 0 })]);
    expect(fileOf(twin.state, a.d.fid)!.placements[0]).toBe(restorer.address);
    check();
    await twin.run(uploader, [remark('fileBank.deleteFile', { fid: b.d.fid })]);
    check();
    await twin.mine(200 - (await twin.indexer.sync()));
    // The next epoch's snapshot weighs each miner by capacity minus what it holds.
    const snapshot = epochMiners(twin.state, EPOCH + 1);
    expect(snapshot).toEqual(
      minersOf(twin.state).map((m) => [m.address, (1 << 30) - serviceBytesOf(twin.state, m.address)]),
    );
    expect(snapshot.find(([address]) => address === restorer.address)![1]).toBeLessThan(1 << 30);
  });
});
