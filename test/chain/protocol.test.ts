import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import { CALL_SCHEMAS, type CallArgs, type ProtocolCall } from '../../src/chain/calls.ts';
import type { Payment } from '../../src/chain/pallets/context.ts';
import {
  columnDigest,
  columnHashes,
  type FileInfo,
  type RestoralOrder,
  tagReportMessage,
  type UntaggedColumn,
} from '../../src/chain/pallets/file-bank.ts';
import type { Grant, OpenRequest } from '../../src/chain/pallets/market.ts';
import { admissionMessage, type TaskInfo } from '../../src/chain/pallets/provenance.ts';
import type { MinerInfo } from '../../src/chain/pallets/sminer.ts';
import { mayStore, spaceOf } from '../../src/chain/pallets/storage-handler.ts';
import { applyCall, applyRemark, type RemarkOutcome } from '../../src/chain/protocol.ts';
import { bucketsOf, entriesOf, participantsOf, roundsOf, seedOf } from '../../src/chain/queries.ts';
import { encodeRemark } from '../../src/chain/remark.ts';
import {
  createMemoryState,
  createSqliteState,
  GENESIS_DIGEST,
  nextDigest,
  Overlay,
  type StateStore,
  type StateValue,
  type StateWrite,
} from '../../src/chain/state.ts';
import { type Account, accountsReady } from '../../src/shared/account.ts';
import { toHex } from '../../src/shared/bytes.ts';
import {
  buySpace,
  CONFIG,
  call,
  createHarness,
  ctxAt,
  type Declaration,
  expectApplied,
  expectRejected,
  GENESIS_HASH,
  type Harness,
  hex,
  makeAccounts,
  makeDeclaration,
  makeReceipt,
  POT,
  peerIdOf,
  peerSignatureOf,
  type Receipt,
  registerMiner,
} from './helpers.ts';

// The protocol rules, call by call, through the remark codec, on the in-memory state. Every rejection is checked to
// leave the whole state exactly as it was (expectRejected compares a full scan before and after).

const WIDTH = 12; // the default declaration: 8 data + 4 parity columns

let miners: Account[];
let owner: Account;
let operator: Account;
let stranger: Account;
let coordinator: Account;

beforeAll(async () => {
  await accountsReady();
  miners = makeAccounts('protocol/miner', 16);
  [owner, operator, stranger, coordinator] = makeAccounts('protocol/user', 4) as [
    Account,
    Account,
    Account,
    Account,
  ];
});

const register = registerMiner;
const declare = (d: Declaration) => call('fileBank.uploadDeclaration', d);
const report = (fid: string, receipts: Receipt[]) => call('fileBank.transferReport', { fid, receipts });
const fileOf = (h: Harness, fid: string) => h.state.get<FileInfo>(`fileBank/files/${fid}`);
const orderOf = (h: Harness, fid: string, index: number) =>
  h.state.get<RestoralOrder>(`fileBank/orders/${fid}/${String(index).padStart(3, '0')}`);

/** Space for every account that declares files here: declarations debit it (test/chain/quota.test.ts). */
function buyStorersSpace(h: Harness): void {
  for (const a of [owner, stranger, coordinator]) buySpace(h, a.address);
}

function registerMiners(h: Harness, accounts: readonly Account[]): void {
  for (const m of accounts) expectApplied(h, m.address, register(m), { paidToPot: 1000n });
}

/** Receipts of miners[from..to) for the columns of the same numbers. */
const receipts = (d: Declaration, from: number, to: number) =>
  miners.slice(from, to).map((m, i) => makeReceipt(m, d, from + i));

describe('sminer', () => {
  let h: Harness;
  beforeEach(() => {
    h = createHarness();
  });

  it('registers a miner that paid at least the minimum collateral to the pot', () => {
    const m = miners[0]!;
    expectApplied(h, m.address, register(m, '1500'), { paidToPot: 1500n });
    expect(h.state.get<MinerInfo>(`sminer/miners/${m.address}`)).toEqual({
      peerId: peerIdOf(m),
      addrs: ['/ip4/127.0.0.1/tcp/4001'],
      capacity: 1 << 30,
      collateral: '1500',
      state: 'positive',
      registeredAt: h.block,
    });
    expect(h.state.get(`sminer/peers/${peerIdOf(m)}`)).toBe(m.address);
  });

  it('rejects collateral below the minimum, even when it was paid', () => {
    expectRejected(
      h,
      miners[0]!.address,
      register(miners[0]!, '999'),
      /collateral 999 is below the minimum 1000/,
      {
        paidToPot: 999n,
      },
    );
    expectRejected(h, miners[0]!.address, register(miners[0]!, '0'), /below the minimum/, {
      paidToPot: 5000n,
    });
  });

  it('rejects collateral that was declared but not paid to the pot directly before', () => {
    const m = miners[0]!;
    expectRejected(
      h,
      m.address,
      register(m, '1000'),
      /collateral 1000 was declared but 0 was paid to the pot/,
    );
    expectRejected(h, m.address, register(m, '2000'), /collateral 2000 was declared but 1999 was paid/, {
      paidToPot: 1999n,
    });
    // u128 amounts past 2^53 compare exactly.
    const big = 2n ** 80n;
    expectRejected(h, m.address, register(m, `${big}`), /was declared but/, { paidToPot: big - 1n });
    expectApplied(h, m.address, register(m, `${big}`), { paidToPot: big });
  });

  it('a payment refunded to a rejected call earlier in the batch does not pay for the registration too', () => {
    const m = miners[0]!;
    // A batch [transfer(pot, 1000), sminer.exit, sminer.register]: the exit is rejected (not a miner) and refunded.
    const out = h.submit(m.address, call('sminer.exit', {}), { payments: [{ to: POT, amount: 1000n }] });
    expect(out.kind === 'rejected' && out.writes !== undefined).toBe(true);
    expectRejected(h, m.address, register(m), /collateral 1000 was declared but 0 was paid/, {
      paidToPot: 1000n,
      payments: [],
      block: h.block,
    });
  });

  it('rejects a second registration of one account, even under another peer id', () => {
    const [a, b] = miners as [Account, Account];
    expectApplied(h, a.address, register(a), { paidToPot: 1000n });
    expectRejected(h, a.address, register(a), /miner .* is already registered/, { paidToPot: 1000n });
    expectRejected(h, a.address, register(b), /miner .* is already registered/, { paidToPot: 1000n });
  });

  it("rejects a peer id that another account registered, even with the peer key's consent", () => {
    const [a, b] = miners as [Account, Account];
    expectApplied(h, a.address, register(a), { paidToPot: 1000n });
    const consented = call('sminer.register', {
      ...(register(a).args as CallArgs<'sminer.register'>),
      peerSignature: peerSignatureOf(b, 'sminer.register', { signer: a }),
    });
    const reason = expectRejected(h, b.address, consented, /peer id .* is already registered by/, {
      paidToPot: 1000n,
    });
    expect(reason).toContain(a.address);
  });

  /**
   * Issue 15 item 10b: a registration named any peer id, so a miner could take another's id first (or the id of a
   * miner that had not registered yet) and lock it out, or be dialled in its place. The peer's own key must sign.
   */
  describe('issue 15.10b: a peer id is registered only by a holder of its key', () => {
    const args = (m: Account) => register(m).args as CallArgs<'sminer.register'>;

    it("a copy of another miner's registration, taken before the victim registers, is refused; the victim then registers", () => {
      const [victim, thief] = miners as [Account, Account];
      // The thief copies the victim's whole call (its signature included) from the victim's pending extrinsic.
      expectRejected(h, thief.address, register(victim), /peerSignature is not .*'s signature/, {
        paidToPot: 1000n,
      });
      // It signs with its own peer key but names the victim's peer id.
      const ownKey = call('sminer.register', {
        ...args(victim),
        peerSignature: peerSignatureOf(thief, 'sminer.register', { peerId: peerIdOf(victim) }),
      });
      expectRejected(h, thief.address, ownKey, /peerSignature is not/, { paidToPot: 1000n });
      expect(h.state.get(`sminer/peers/${peerIdOf(victim)}`)).toBeUndefined();
      expectApplied(h, victim.address, register(victim), { paidToPot: 1000n });
      expect(h.state.get(`sminer/peers/${peerIdOf(victim)}`)).toBe(victim.address);
    });

    it('a peer signature of another network or of the verifier role does not register a miner', () => {
      const m = miners[0]!;
      const other = call('sminer.register', {
        ...args(m),
        peerSignature: peerSignatureOf(m, 'sminer.register', { genesisHash: `0x${hex('another chain')}` }),
      });
      expectRejected(h, m.address, other, /peerSignature is not/, { paidToPot: 1000n });
      const role = call('sminer.register', {
        ...args(m),
        peerSignature: peerSignatureOf(m, 'teeWorker.register'),
      });
      expectRejected(h, m.address, role, /peerSignature is not/, { paidToPot: 1000n });
      expectApplied(h, m.address, register(m), { paidToPot: 1000n });
    });

    it('a peer id that carries no Ed25519 key cannot be proven and is refused', () => {
      const m = miners[0]!;
      // An RSA-style id (a SHA-256 multihash, `Qm…`): the key is not in the id, so nothing on chain can check it.
      const fake = call('sminer.register', {
        ...args(m),
        peerId: 'QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N',
      });
      expectRejected(h, m.address, fake, /is not an Ed25519 peer id/, { paidToPot: 1000n });
    });
  });

  it('updateAddrs: a registered miner changes its addresses and nothing else', () => {
    const m = miners[0]!;
    expectApplied(h, m.address, register(m), { paidToPot: 1000n });
    const before = h.state.get<MinerInfo>(`sminer/miners/${m.address}`)!;
    expectApplied(h, m.address, call('sminer.updateAddrs', { addrs: ['/ip4/10.0.0.9/tcp/5000'] }));
    expect(h.state.get(`sminer/miners/${m.address}`)).toEqual({
      ...before,
      addrs: ['/ip4/10.0.0.9/tcp/5000'],
    });
    expectRejected(
      h,
      stranger.address,
      call('sminer.updateAddrs', { addrs: [] }),
      /caller .* is not a registered miner/,
    );
  });

  it('exit: the miner is marked exited and can no longer update, exit or register again', () => {
    const m = miners[0]!;
    expectApplied(h, m.address, register(m), { paidToPot: 1000n });
    expectApplied(h, m.address, call('sminer.exit', {}));
    expect(h.state.get<MinerInfo>(`sminer/miners/${m.address}`)?.state).toBe('exit');
    expectRejected(h, m.address, call('sminer.exit', {}), /has exited/);
    expectRejected(h, m.address, call('sminer.updateAddrs', { addrs: [] }), /has exited/);
    expectRejected(h, m.address, register(m), /already registered/, { paidToPot: 1000n });
    expectRejected(h, stranger.address, call('sminer.exit', {}), /not a registered miner/);
  });

  it('exit opens a restoral order for every column the miner holds, keeping orders already open', () => {
    registerMiners(h, miners.slice(0, 13));
    buyStorersSpace(h);
    const a = makeDeclaration('exit/a', owner.address);
    const b = makeDeclaration('exit/b', owner.address);
    const c = makeDeclaration('exit/c', owner.address);
    for (const d of [a, b, c]) expectApplied(h, owner.address, declare(d));
    const m = miners[0]!;
    // m holds column 0 of a, column 5 of b, nothing of c.
    expectApplied(h, owner.address, report(a.fid, receipts(a, 0, 12)));
    expectApplied(h, owner.address, report(b.fid, [makeReceipt(m, b, 5), makeReceipt(miners[1]!, b, 0)]));
    expectApplied(h, owner.address, report(c.fid, [makeReceipt(miners[12]!, c, 0)]));
    expectApplied(h, owner.address, call('fileBank.generateRestoralOrder', { fid: a.fid, index: 0 }));
    const earlier = orderOf(h, a.fid, 0)!;

    const writes = expectApplied(h, m.address, call('sminer.exit', {}));
    expect(orderOf(h, a.fid, 0)).toEqual(earlier); // not reopened
    expect(orderOf(h, b.fid, 5)).toEqual({
      origin: m.address,
      generatedAt: h.block,
      by: null,
      claimer: null,
      deadline: null,
    });
    expect(h.state.scan(`fileBank/orders/${c.fid}/`)).toEqual([]);
    expect(h.state.scan('fileBank/orders/').map(([k]) => k)).toEqual(
      [`fileBank/orders/${a.fid}/000`, `fileBank/orders/${b.fid}/005`].sort(),
    );
    // …and the pot owes the miner its collateral back (issue 15 item 6).
    expect(writes.map((w) => w.key).sort()).toEqual(
      [
        `fileBank/orders/${b.fid}/005`,
        `sminer/miners/${m.address}`,
        'pot/debts/0000000000',
        'pot/seq/debts',
      ].sort(),
    );
  });
});

describe('oss', () => {
  let h: Harness;
  beforeEach(() => {
    h = createHarness();
  });

  it('authorize and cancelAuthorize', () => {
    const key = `oss/auth/${owner.address}/${operator.address}`;
    expectApplied(h, owner.address, call('oss.authorize', { operator: operator.address }));
    expect(h.state.get(key)).toBe(h.block);
    expectRejected(
      h,
      owner.address,
      call('oss.authorize', { operator: operator.address }),
      /is already authorised by/,
    );
    expectApplied(h, owner.address, call('oss.cancelAuthorize', { operator: operator.address }));
    expect(h.state.get(key)).toBeUndefined();
    expectRejected(
      h,
      owner.address,
      call('oss.cancelAuthorize', { operator: operator.address }),
      /is not authorised by/,
    );
  });

  it('an account cannot authorise itself, and only the owner cancels its own authorisation', () => {
    expectRejected(
      h,
      owner.address,
      call('oss.authorize', { operator: owner.address }),
      /needs no authorisation/,
    );
    expectApplied(h, owner.address, call('oss.authorize', { operator: operator.address }));
    // The operator "cancelling" looks up its own authorisations, of which there are none.
    expectRejected(
      h,
      operator.address,
      call('oss.cancelAuthorize', { operator: operator.address }),
      /not authorised/,
    );
    expectRejected(
      h,
      stranger.address,
      call('oss.cancelAuthorize', { operator: operator.address }),
      /not authorised/,
    );
  });
});

describe('storageHandler', () => {
  let h: Harness;
  beforeEach(() => {
    h = createHarness();
  });
  const buy = (gib: number, owner?: string) =>
    call('storageHandler.buySpace', owner === undefined ? { gib } : { gib, owner });

  it('space is bought for the price paid to the pot, for oneself or for another account, and adds up', () => {
    expect(mayStore(h.state, owner.address)).toBe(false);
    expectApplied(h, owner.address, buy(2), { payments: [{ to: POT, amount: 200n }] });
    const since = h.block;
    expect(spaceOf(h.state, owner.address)).toEqual({ gib: 2, since });
    // A sponsor pays for someone else; more space adds to what the account holds.
    expectApplied(h, stranger.address, buy(3, owner.address), { payments: [{ to: POT, amount: 300n }] });
    expect(spaceOf(h.state, owner.address)).toEqual({ gib: 5, since });
    expect(spaceOf(h.state, stranger.address)).toBeUndefined();
    expect(mayStore(h.state, owner.address)).toBe(true);
    expect(mayStore(h.state, stranger.address)).toBe(false);
  });

  it('rejects space that was not paid for in full, or paid to someone else, and records nothing but a refund', () => {
    const out = h.submit(owner.address, buy(2), { payments: [{ to: POT, amount: 199n }] });
    expect(out).toMatchObject({
      kind: 'rejected',
      reason: expect.stringMatching(/2 GiB cost 200 \(100 per GiB\) but 199 was paid/),
    });
    // The underpayment is owed back (issue 15 item 6): the rejected call's only write.
    expect(h.state.scan('pot/debts/').map(([, v]) => v)).toMatchObject([
      { to: owner.address, amount: '199' },
    ]);
    expectRejected(h, owner.address, buy(1), /but 0 was paid/, {
      payments: [{ to: stranger.address, amount: 100n }],
    });
    expect(mayStore(h.state, owner.address)).toBe(false);
  });

  it('one payment buys one purchase: what the batch paid the pot earlier does not count', () => {
    // A batch [transfer(pot, 100), buySpace, buySpace]: the second purchase sees the batch's pot total, not a payment.
    expectRejected(h, owner.address, buy(1), /but 0 was paid/, { paidToPot: 100n, payments: [] });
    expect(spaceOf(h.state, owner.address)).toBeUndefined();
  });

  it('an operator may store while an account holding space authorises it, and not after', () => {
    expectApplied(h, owner.address, call('oss.authorize', { operator: operator.address }));
    // Authorised by an account that holds no space: nothing to store against.
    expect(mayStore(h.state, operator.address)).toBe(false);
    expectApplied(h, owner.address, buy(1), { payments: [{ to: POT, amount: 100n }] });
    expect(mayStore(h.state, operator.address)).toBe(true);
    expectApplied(h, owner.address, call('oss.cancelAuthorize', { operator: operator.address }));
    expect(mayStore(h.state, operator.address)).toBe(false);
    expect(mayStore(h.state, owner.address)).toBe(true);
  });
});

describe('fileBank.uploadDeclaration', () => {
  let h: Harness;
  let d: Declaration;
  beforeEach(() => {
    h = createHarness();
    buyStorersSpace(h);
    d = makeDeclaration('declare', owner.address);
  });

  it('the owner declares a file: Pending, no placements, listed under the owner', () => {
    expectApplied(h, owner.address, declare(d));
    const { fid: _fid, ...rest } = d;
    expect(fileOf(h, d.fid)).toEqual({
      ...rest,
      state: 'Pending',
      declaredAt: h.block,
      declaredTime: ctxAt(owner.address, h.block).block.timestamp,
      activeAt: null,
      placements: new Array(WIDTH).fill(null),
      // What it takes of the owner's space: 2 segments of 1 KiB.
      charged: 2048,
    });
    expect(h.state.get(`fileBank/ownerFiles/${owner.address}/${d.fid}`)).toBe(h.block);
  });

  it('records a missing name as null', () => {
    const { name: _name, ...unnamed } = d;
    expectApplied(h, owner.address, declare(unnamed));
    expect(fileOf(h, d.fid)?.name).toBeNull();
  });

  it('an operator declares for an owner only while the owner authorises it', () => {
    const why = /may not declare uploads for .*: the owner has not authorised it/;
    expectRejected(h, operator.address, declare(d), why);
    // An authorisation by someone else does not count.
    expectApplied(h, stranger.address, call('oss.authorize', { operator: operator.address }));
    expectRejected(h, operator.address, declare(d), why);
    expectApplied(h, owner.address, call('oss.authorize', { operator: operator.address }));
    expectApplied(h, operator.address, declare(d));
    expect(fileOf(h, d.fid)?.owner).toBe(owner.address);
    expectApplied(h, owner.address, call('oss.cancelAuthorize', { operator: operator.address }));
    expectRejected(h, operator.address, declare(makeDeclaration('declare/2', owner.address)), why);
  });

  it('rejects a fid that is not the Merkle root of the segment hashes', () => {
    expectRejected(
      h,
      owner.address,
      declare({ ...d, fid: hex('another') }),
      /the segment hashes give fid [0-9a-f]{64}, not/,
    );
    const swapped = { ...d, segments: [d.segments[1]!, d.segments[0]!] };
    expectRejected(h, owner.address, declare(swapped), /the segment hashes give fid/);
  });

  it('rejects a segment whose fragment count is not the profile width', () => {
    const short = structuredClone(d);
    short.segments[1]!.fragments.pop();
    expectRejected(
      h,
      owner.address,
      declare(short),
      /segment 1 lists 11 fragment hashes, the profile needs 12/,
    );
    const profile = { ...d.profile, parityFragments: 5 };
    expectRejected(
      h,
      owner.address,
      declare({ ...d, profile }),
      /segment 0 lists 12 fragment hashes, the profile needs 13/,
    );
  });

  it('rejects a second declaration of a fid in the block that declared it, by anyone and with any deal', () => {
    expectApplied(h, owner.address, declare(d));
    const same = { block: h.block };
    expectRejected(h, owner.address, declare(d), /file [0-9a-f]{64} was declared in this block/, same);
    expectRejected(
      h,
      stranger.address,
      declare({ ...d, owner: stranger.address, deal: 'f'.repeat(32) }),
      /was declared in this block/,
      same,
    );
  });

  // Issue 15 item 11, the attack: an unencrypted object's fid is the hash of its content, so anyone who knows the
  // bytes a publisher is about to store declares them first, with no receipts (or only its own miner's). Without a
  // lapse, that Pending record blocked the fid for good: the real upload was rejected as "already declared".
  it('a squatter’s incomplete declaration binds nobody: the next declaration of the fid replaces it', () => {
    registerMiners(h, miners.slice(0, WIDTH + 1));
    // Encrypted, so that the squatter can also put market terms on it.
    const e = makeDeclaration('declare/squat', owner.address, { encrypted: true });
    const squat = { ...e, owner: stranger.address, deal: 'f'.repeat(32) };
    const accomplice = miners[WIDTH]!;
    expectApplied(h, stranger.address, declare(squat));
    expectApplied(h, stranger.address, report(e.fid, [makeReceipt(accomplice, squat, 0)]));
    expectApplied(h, stranger.address, call('market.setTerms', { fid: e.fid, readers: [], price: '5' }));
    // The honest client declares and reports in one extrinsic (one block).
    expectApplied(h, owner.address, declare(e));
    expectApplied(h, owner.address, report(e.fid, receipts(e, 0, WIDTH)), { block: h.block });
    expect(fileOf(h, e.fid)).toMatchObject({ owner: owner.address, deal: e.deal, state: 'Active' });
    expect(fileOf(h, e.fid)?.placements).toEqual(miners.slice(0, WIDTH).map((m) => m.address));
    // Nothing of the squatter's is left: its listing, its terms, nor its miner's column bookkeeping.
    expect(h.state.scan(`fileBank/ownerFiles/${stranger.address}/`)).toEqual([]);
    expect(h.state.get(`market/terms/${e.fid}`)).toBeUndefined();
    expect(h.state.get(`fileBank/minerFiles/${accomplice.address}/${e.fid}`)).toBeUndefined();
    const untagged = h.state.scan(`fileBank/untagged/${e.fid}/`).map(([, v]) => (v as UntaggedColumn).miner);
    expect(untagged).not.toContain(accomplice.address);
    expect(untagged).toHaveLength(WIDTH);
  });

  it('an Active file is never replaced: a second declaration names its owner', () => {
    registerMiners(h, miners.slice(0, WIDTH));
    expectApplied(h, owner.address, declare(d));
    expectApplied(h, owner.address, report(d.fid, receipts(d, 0, WIDTH)), { block: h.block });
    expectRejected(
      h,
      stranger.address,
      declare({ ...d, owner: stranger.address }),
      new RegExp(`file ${d.fid} is already stored by ${owner.address} \\(Active since block ${h.block}\\)`),
    );
  });

  it('rejects a size that does not fit the segments', () => {
    const seg = d.profile.segmentSize;
    expectRejected(
      h,
      owner.address,
      declare({ ...d, size: 2 * seg + 1 }),
      /size 2049 does not fit 2 segments of 1024 bytes/,
    );
    expectRejected(h, owner.address, declare({ ...d, size: seg }), /size 1024 does not fit 2 segments/); // one would do
    expectRejected(h, owner.address, declare({ ...d, size: 0 }), /does not fit/);
  });

  it('accepts sizes at both ends of what the segments hold', () => {
    const seg = d.profile.segmentSize;
    expectApplied(h, owner.address, declare({ ...d, size: 2 * seg }));
    const e = makeDeclaration('declare/low', owner.address);
    expectApplied(h, owner.address, declare({ ...e, size: seg + 1 }));
    const one = makeDeclaration('declare/one', owner.address, { segments: 1 });
    expectApplied(h, owner.address, declare({ ...one, size: 0 }));
  });

  it('rejects encryption tags that do not match the segment count', () => {
    const enc = makeDeclaration('declare/enc', owner.address, { encrypted: true });
    const tags = enc.encryption!.tags;
    expectRejected(
      h,
      owner.address,
      declare({ ...enc, encryption: { ...enc.encryption!, tags: tags.slice(1) } }),
      /encryption lists 1 tags for 2 segments/,
    );
    expectRejected(
      h,
      owner.address,
      declare({ ...enc, encryption: { ...enc.encryption!, tags: [...tags, tags[0]!] } }),
      /encryption lists 3 tags for 2 segments/,
    );
    expectApplied(h, owner.address, declare(enc));
    expect(fileOf(h, enc.fid)?.encryption).toEqual(enc.encryption);
  });
});

describe('buckets: an owner’s namespace of keys (fileBank.createBucket, deleteBucket, entry)', () => {
  let h: Harness;
  beforeEach(() => {
    h = createHarness();
    buyStorersSpace(h);
    registerMiners(h, miners.slice(0, WIDTH));
  });
  const bucket = (name: string, o: { owner?: string } = {}) => call('fileBank.createBucket', { name, ...o });
  const entries = (owner: string, name: string, prefix = '') =>
    entriesOf(h.state, owner, name, prefix).map((e) => [e.key, e.fid]);
  /** Declares and completes `label` filed under `key` of `name`, in one block as the client does. */
  const store = (label: string, name: string, key: string) => {
    const d = {
      ...makeDeclaration(label, owner.address),
      entry: { bucket: name, key, contentType: 'text/plain' },
    };
    expectApplied(h, owner.address, declare(d));
    expectApplied(h, owner.address, report(d.fid, receipts(d, 0, WIDTH)), { block: h.block });
    return d;
  };

  it('creates a bucket once; an operator only with the owner’s authorisation', () => {
    expectApplied(h, owner.address, bucket('photos'));
    expect(h.state.get(`fileBank/buckets/${owner.address}/photos`)).toEqual({
      createdAt: h.block,
      createdTime: ctxAt(owner.address, h.block).block.timestamp,
      by: owner.address,
      objectLock: false,
      defaultRetention: null,
      versioning: null,
    });
    expectRejected(h, owner.address, bucket('photos'), /already has a bucket photos \(since block/);
    // Another account's bucket of the same name is its own (buckets are per account).
    expectApplied(h, stranger.address, bucket('photos'));
    const forOwner = bucket('gateway-made', { owner: owner.address });
    expectRejected(
      h,
      operator.address,
      forOwner,
      /may not create buckets of .*: the owner has not authorised it/,
    );
    expectApplied(h, owner.address, call('oss.authorize', { operator: operator.address }));
    expectApplied(h, operator.address, forOwner);
    expect(h.state.get(`fileBank/buckets/${owner.address}/gateway-made`)).toMatchObject({
      by: operator.address,
    });
  });

  it('files an object under a key of an existing bucket, with its content metadata', () => {
    const d = makeDeclaration('entry/none', owner.address);
    expectRejected(
      h,
      owner.address,
      declare({ ...d, entry: { bucket: 'docs', key: 'a.txt' } }),
      /has no bucket docs/,
    );
    expectApplied(h, owner.address, bucket('docs'));
    const a = store('entry/a', 'docs', 'notes/a.txt');
    expect(entries(owner.address, 'docs')).toEqual([['notes/a.txt', a.fid]]);
    expect(h.state.get(`fileBank/filed/${a.fid}`)).toEqual(a.entry);
  });

  it('a new object under a taken key replaces it once complete; the old one is deleted in that same call', () => {
    expectApplied(h, owner.address, bucket('docs'));
    const v1 = store('entry/v1', 'docs', 'report.pdf');
    const v2 = store('entry/v2', 'docs', 'report.pdf');
    expect(entries(owner.address, 'docs')).toEqual([['report.pdf', v2.fid]]);
    // Not left stored and filed nowhere (the owner would pay for it, and see it nowhere): deleted outright.
    expect(fileOf(h, v1.fid)).toBeUndefined();
    expect(h.state.get(`fileBank/filed/${v1.fid}`)).toBeUndefined();
    for (const m of miners) expect(h.state.get(`fileBank/minerFiles/${m.address}/${v1.fid}`)).toBeUndefined();
  });

  it('an upload that never completes leaves the key to the object it named, and takes nothing with it', () => {
    expectApplied(h, owner.address, bucket('docs'));
    const v1 = store('entry/kept', 'docs', 'report.pdf');
    const v2 = {
      ...makeDeclaration('entry/abandoned', owner.address),
      entry: { bucket: 'docs', key: 'report.pdf' },
    };
    expectApplied(h, owner.address, declare(v2));
    expectApplied(h, owner.address, report(v2.fid, receipts(v2, 0, WIDTH - 1)), { block: h.block });
    expect(entries(owner.address, 'docs')).toEqual([['report.pdf', v1.fid]]);
    expect(fileOf(h, v1.fid)?.state).toBe('Active');
    // Replaced by the next declaration of its fid (issue 15), the abandoned upload still leaves the key alone.
    expectApplied(h, owner.address, declare({ ...v2, entry: undefined }));
    expect(entries(owner.address, 'docs')).toEqual([['report.pdf', v1.fid]]);
    expect(fileOf(h, v1.fid)?.state).toBe('Active');
  });

  it('deleting a file unfiles it; only an empty bucket is deleted', () => {
    expectApplied(h, owner.address, bucket('docs'));
    const a = store('entry/del-a', 'docs', 'a');
    const b = store('entry/del-b', 'docs', 'b/c');
    const del = call('fileBank.deleteBucket', { name: 'docs' });
    expectRejected(h, owner.address, del, /bucket docs of .* is not empty: 2 objects are filed in it/);
    expectApplied(h, owner.address, call('fileBank.deleteFile', { fid: a.fid }));
    expectApplied(h, owner.address, call('fileBank.deleteFile', { fid: b.fid }));
    expect(entries(owner.address, 'docs')).toEqual([]);
    expect(h.state.scan('fileBank/filed/')).toEqual([]);
    expectRejected(h, stranger.address, del, /has no bucket docs/);
    expectApplied(h, owner.address, del);
    expectRejected(h, owner.address, del, /has no bucket docs/);
  });

  describe('object lock', () => {
    const now = () => ctxAt(owner.address, h.block + 1).block.timestamp;
    const retained = (label: string, key: string, mode: 'COMPLIANCE' | 'GOVERNANCE', until: number) => {
      const d = {
        ...makeDeclaration(label, owner.address),
        entry: { bucket: 'vault', key, retention: { mode, until } },
      };
      expectApplied(h, owner.address, declare(d));
      expectApplied(h, owner.address, report(d.fid, receipts(d, 0, WIDTH)), { block: h.block });
      return d;
    };

    it('a COMPLIANCE object is not deleted before its date, by anyone, nor lost under a new one; afterwards it is', () => {
      expectApplied(h, owner.address, call('fileBank.createBucket', { name: 'vault', objectLock: true }));
      const until = now() + 3_600_000;
      const a = retained('lock/a', 'ledger-2026', 'COMPLIANCE', until);
      const del = call('fileBank.deleteFile', { fid: a.fid, bypassGovernance: true });
      expectRejected(h, owner.address, del, /not deleted: .* is retained \(COMPLIANCE\) until/);
      expectApplied(h, owner.address, call('oss.authorize', { operator: operator.address }));
      expectRejected(h, operator.address, del, /retained \(COMPLIANCE\)/);
      // A new object under its key makes it an older version (an object-lock bucket is always versioned): kept.
      const over = store('lock/over', 'vault', 'ledger-2026');
      expect(entries(owner.address, 'vault')).toEqual([['ledger-2026', over.fid]]);
      expect(fileOf(h, a.fid)?.state).toBe('Active');
      expectRejected(h, owner.address, del, /retained \(COMPLIANCE\)/);
      // Nobody shortens it or turns it into GOVERNANCE; lengthening is fine.
      const set = (mode: 'COMPLIANCE' | 'GOVERNANCE', t: number) =>
        call('fileBank.putRetention', { fid: a.fid, retention: { mode, until: t } });
      expectRejected(h, owner.address, set('COMPLIANCE', until - 1), /may only be lengthened/);
      expectRejected(h, owner.address, set('GOVERNANCE', until + 1), /nobody turns into GOVERNANCE/);
      expectApplied(h, owner.address, set('COMPLIANCE', until + 1000));
      expect(h.state.get(`fileBank/filed/${a.fid}`)).toMatchObject({ retention: { until: until + 1000 } });
      // Past its date, it goes like any other.
      h.block += Math.ceil((until + 1000 - now()) / 3000) + 10;
      expectApplied(h, owner.address, call('fileBank.deleteFile', { fid: a.fid }));
      expect(fileOf(h, a.fid)).toBeUndefined();
    });

    it('GOVERNANCE: deleted before its date only when the owner says it bypasses it', () => {
      expectApplied(h, owner.address, call('fileBank.createBucket', { name: 'vault', objectLock: true }));
      const g = retained('lock/g', 'draft', 'GOVERNANCE', now() + 3_600_000);
      expectRejected(
        h,
        owner.address,
        call('fileBank.deleteFile', { fid: g.fid }),
        /owner may bypass GOVERNANCE/,
      );
      expectApplied(h, owner.address, call('fileBank.deleteFile', { fid: g.fid, bypassGovernance: true }));
    });

    it("a bucket's default retention is applied by rule to what is declared without one", () => {
      expectApplied(h, owner.address, call('fileBank.createBucket', { name: 'vault', objectLock: true }));
      expectApplied(h, owner.address, bucket('plain'));
      const lock = (name: string, days: number | null) =>
        call('fileBank.putObjectLock', {
          name,
          defaultRetention: days === null ? null : { mode: 'COMPLIANCE', days },
        });
      expectRejected(h, owner.address, lock('plain', 30), /not made with object lock/);
      expectApplied(h, owner.address, lock('vault', 30));
      const d = {
        ...makeDeclaration('lock/default', owner.address),
        entry: { bucket: 'vault', key: 'auto' },
      };
      expectApplied(h, owner.address, declare(d));
      const declaredAt = ctxAt(owner.address, h.block).block.timestamp;
      expectApplied(h, owner.address, report(d.fid, receipts(d, 0, WIDTH)), { block: h.block });
      expect(h.state.get(`fileBank/filed/${d.fid}`)).toMatchObject({
        retention: { mode: 'COMPLIANCE', until: declaredAt + 30 * 86_400_000 },
      });
      expectRejected(
        h,
        owner.address,
        call('fileBank.deleteFile', { fid: d.fid }),
        /retained \(COMPLIANCE\)/,
      );
      // Cleared, it no longer applies to later objects.
      expectApplied(h, owner.address, lock('vault', null));
      const e = store('lock/after', 'vault', 'later');
      expect(h.state.get(`fileBank/filed/${e.fid}`)).not.toHaveProperty('retention');
    });

    it('only a bucket made with object lock retains, and only until a time ahead', () => {
      expectApplied(h, owner.address, bucket('plain'));
      expectApplied(h, owner.address, call('fileBank.createBucket', { name: 'vault', objectLock: true }));
      const d = makeDeclaration('lock/plain', owner.address);
      const ahead = { mode: 'COMPLIANCE' as const, until: now() + 60_000 };
      expectRejected(
        h,
        owner.address,
        declare({ ...d, entry: { bucket: 'plain', key: 'x', retention: ahead } }),
        /bucket plain was not made with object lock/,
      );
      expectRejected(
        h,
        owner.address,
        declare({ ...d, entry: { bucket: 'vault', key: 'x', retention: { ...ahead, until: 1000 } } }),
        /is already past/,
      );
      const filed = store('lock/filed', 'plain', 'y');
      expectRejected(
        h,
        owner.address,
        call('fileBank.putRetention', { fid: filed.fid, retention: ahead }),
        /bucket plain was not made with object lock/,
      );
    });
  });

  it('keys list in UTF-8 byte order, as S3 lists them', () => {
    expectApplied(h, owner.address, bucket('order'));
    const keys = ['b', 'a/z', 'a/b', 'Z', 'é', 'a-'];
    for (const [i, k] of keys.entries()) store(`entry/order/${i}`, 'order', k);
    const bytewise = [...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    expect(entries(owner.address, 'order').map(([k]) => k)).toEqual(bytewise);
    expect(entries(owner.address, 'order', 'a/').map(([k]) => k)).toEqual(['a/b', 'a/z']);
    expect(bucketsOf(h.state, owner.address).map((b) => b.name)).toEqual(['order']);
  });
});

describe('fileBank.transferReport', () => {
  let h: Harness;
  let d: Declaration;
  beforeEach(() => {
    h = createHarness();
    buyStorersSpace(h);
    registerMiners(h, miners);
    d = makeDeclaration('report', owner.address);
    expectApplied(h, owner.address, declare(d));
  });

  const placed = (count: number) => [
    ...miners.slice(0, count).map((m) => m.address),
    ...new Array(WIDTH - count).fill(null),
  ];

  it('the file stays Pending until 12 distinct miners reported 12 columns, over several calls', () => {
    expectApplied(h, owner.address, report(d.fid, receipts(d, 0, 5)));
    expect(fileOf(h, d.fid)).toMatchObject({ state: 'Pending', activeAt: null, placements: placed(5) });
    // Anyone may carry receipts: they are the miners' signatures, not the carrier's.
    expectApplied(h, stranger.address, report(d.fid, receipts(d, 5, 9)));
    expectApplied(h, owner.address, report(d.fid, receipts(d, 9, 11)));
    expect(fileOf(h, d.fid)).toMatchObject({ state: 'Pending', activeAt: null, placements: placed(11) });
    expectApplied(h, owner.address, report(d.fid, receipts(d, 11, 12)));
    expect(fileOf(h, d.fid)).toMatchObject({ state: 'Active', activeAt: h.block, placements: placed(12) });
    for (let i = 0; i < WIDTH; i++)
      expect(h.state.get(`fileBank/minerFiles/${miners[i]!.address}/${d.fid}`)).toBe(i);
  });

  it('one call can carry all 12 receipts, in any order', () => {
    expectApplied(h, owner.address, report(d.fid, receipts(d, 0, 12).reverse()));
    expect(fileOf(h, d.fid)).toMatchObject({ state: 'Active', activeAt: h.block, placements: placed(12) });
  });

  it('an Active file keeps its activation block', () => {
    expectApplied(h, owner.address, report(d.fid, receipts(d, 0, 12)));
    const activeAt = h.block;
    // Restoring a column rewrites the file but does not re-activate it.
    expectApplied(h, owner.address, call('fileBank.generateRestoralOrder', { fid: d.fid, index: 0 }));
    expectApplied(h, miners[12]!.address, call('fileBank.claimRestoralOrder', { fid: d.fid, index: 0 }));
    expectApplied(h, miners[12]!.address, call('fileBank.restoralComplete', { fid: d.fid, index: 0 }));
    expect(fileOf(h, d.fid)).toMatchObject({ state: 'Active', activeAt });
  });

  describe('rejects the whole call when one receipt is bad, whatever the others', () => {
    // Columns 0..2 are reported by miners 0..2 first; each bad call carries valid receipts for columns 3 and 4 first.
    const d2 = makeDeclarationLazy('report/other');
    const cases: [string, () => Receipt, RegExp][] = [
      [
        'a receipt by an unregistered miner',
        () => makeReceipt(stranger, d, 5),
        /receipt signer .* is not a registered miner/,
      ],
      [
        'a duplicate index (another miner already reported it)',
        () => makeReceipt(miners[5]!, d, 0),
        /column 0 was already reported by .* \(duplicate index\)/,
      ],
      [
        'a duplicate index within the call',
        () => makeReceipt(miners[5]!, d, 3),
        /column 3 was already reported by .* \(duplicate index\)/,
      ],
      [
        'a second report by one miner (another index)',
        () => makeReceipt(miners[0]!, d, 5),
        /already reported column 0; one miner holds one column/,
      ],
      [
        'a second report by one miner within the call',
        () => makeReceipt(miners[3]!, d, 5),
        /already reported column 3; one miner holds one column/,
      ],
      [
        'a replayed receipt',
        () => makeReceipt(miners[1]!, d, 1),
        /receipt of .* for column 1 was already applied \(replayed receipt\)/,
      ],
      [
        'the same receipt twice in the call',
        () => makeReceipt(miners[4]!, d, 4),
        /receipt of .* for column 4 was already applied \(replayed receipt\)/,
      ],
      [
        'a receipt signed for another deal',
        () => makeReceipt(miners[5]!, d, 5, { deal: 'e'.repeat(32) }),
        /receipt for column 5 is not signed by .* for this upload/,
      ],
      [
        'a receipt signed for another column',
        () => makeReceipt(miners[5]!, d, 5, { index: 6 }),
        /receipt for column 5 is not signed by/,
      ],
      [
        'a receipt signed for another file',
        () => makeReceipt(miners[5]!, d, 5, { fid: d2().fid, deal: d2().deal, segments: d2().segments }),
        /not signed by/,
      ],
      [
        'a receipt signed over other fragment hashes',
        () => makeReceipt(miners[5]!, d, 5, { segments: d2().segments }),
        /not signed by/,
      ],
      [
        'a receipt signed by another miner',
        () => ({ ...makeReceipt(miners[6]!, d, 5), miner: miners[5]!.address }),
        /not signed by/,
      ],
      [
        'a random signature',
        () => ({ index: 5, miner: miners[5]!.address, signature: hex('sig').repeat(2) }),
        /not signed by/,
      ],
      [
        'a signature with one bit flipped',
        () => flipFirstBit(makeReceipt(miners[5]!, d, 5)),
        /not signed by/,
      ],
      [
        'a column the file does not have',
        () => makeReceipt(miners[5]!, d, WIDTH, { index: 5 }),
        /column 12 does not exist: the file has columns 0\.\.11/,
      ],
    ];

    it.each(cases)('%s', (_what, bad, reason) => {
      expectApplied(h, owner.address, report(d.fid, receipts(d, 0, 3)));
      const good = receipts(d, 3, 5);
      expectRejected(h, owner.address, report(d.fid, [...good, bad()]), reason);
      expect(fileOf(h, d.fid)?.placements).toEqual(placed(3));
      expect(h.state.scan(`fileBank/minerFiles/${miners[3]!.address}/`)).toEqual([]);
      // The good receipts were good: alone they apply.
      expectApplied(h, owner.address, report(d.fid, good));
      expect(fileOf(h, d.fid)?.placements).toEqual(placed(5));
    });
  });

  it('rejects a receipt by a miner that has exited', () => {
    expectApplied(h, miners[5]!.address, call('sminer.exit', {}));
    expectRejected(
      h,
      owner.address,
      report(d.fid, [makeReceipt(miners[5]!, d, 5)]),
      /receipt signer .* has exited/,
    );
  });

  it('rejects receipts for a file nobody declared', () => {
    const e = makeDeclaration('report/undeclared', owner.address);
    expectRejected(
      h,
      owner.address,
      report(e.fid, [makeReceipt(miners[0]!, e, 0)]),
      /no file [0-9a-f]{64} is declared/,
    );
  });

  it('rejects receipts of an earlier upload of the same fid (the deal differs)', () => {
    const old = receipts(d, 0, 3);
    expectApplied(h, owner.address, report(d.fid, old));
    expectApplied(h, owner.address, call('fileBank.deleteFile', { fid: d.fid }));
    const again = { ...d, deal: hex('report/new-deal').slice(0, 32) };
    expectApplied(h, owner.address, declare(again));
    expectRejected(h, owner.address, report(d.fid, old.slice(0, 1)), /not signed by .* for this upload/);
    expectApplied(h, owner.address, report(d.fid, [makeReceipt(miners[0]!, again, 0)]));
  });
});

describe('fileBank.transferReport: deferred columns (12 miners, one down)', () => {
  let h: Harness;
  let d: Declaration;
  const deferring = (fid: string, rs: Receipt[], deferred: number[]) =>
    call('fileBank.transferReport', { fid, receipts: rs, deferred });
  /** Receipts of miners 0..11 for their columns, leaving out `skip`. */
  const allBut = (skip: readonly number[]) => receipts(d, 0, 12).filter((r) => !skip.includes(r.index));
  beforeEach(() => {
    h = createHarness();
    buyStorersSpace(h);
    registerMiners(h, miners);
    // The network's shape, 4 data + 8 parity: up to 4 columns may be deferred.
    d = makeDeclaration('defer', owner.address, { data: 4, parity: 8 });
    expectApplied(h, owner.address, declare(d));
  });

  it('the owner completes the file without a column: Active, and a protocol order is open for it at once', () => {
    expectApplied(h, owner.address, deferring(d.fid, allBut([7]), [7]));
    const file = fileOf(h, d.fid)!;
    expect(file).toMatchObject({ state: 'Active', activeAt: h.block });
    expect(file.placements[7]).toBeNull();
    expect(orderOf(h, d.fid, 7)).toEqual({
      origin: null,
      generatedAt: h.block,
      by: null,
      claimer: null,
      deadline: null,
    });
    expect(h.state.get(`fileBank/untagged/${d.fid}/007`)).toBeUndefined();
  });

  it('a miner holding no column of the file restores a deferred column; one holding another may not', () => {
    expectApplied(h, owner.address, deferring(d.fid, allBut([2, 9]), [2, 9]));
    const take = (index: number) => call('fileBank.claimRestoralOrder', { fid: d.fid, index });
    const complete = (index: number) => call('fileBank.restoralComplete', { fid: d.fid, index });
    expectRejected(h, miners[0]!.address, take(2), /already holds a column of/);
    expectApplied(h, miners[12]!.address, take(2));
    expectApplied(h, miners[12]!.address, complete(2));
    expect(fileOf(h, d.fid)!.placements[2]).toBe(miners[12]!.address);
    expect(h.state.get(`fileBank/minerFiles/${miners[12]!.address}/${d.fid}`)).toBe(2);
    expect(orderOf(h, d.fid, 2)).toBeUndefined();
    expect(orderOf(h, d.fid, 9)?.origin).toBeNull();
  });

  it('an authorised operator defers for the owner', () => {
    expectApplied(h, owner.address, call('oss.authorize', { operator: operator.address }));
    expectApplied(h, operator.address, deferring(d.fid, allBut([0]), [0]));
    expect(fileOf(h, d.fid)?.state).toBe('Active');
  });

  const abuses: [string, () => [string, ProtocolCall], RegExp][] = [
    [
      'a stranger carrying the receipts defers a column (it could leave the owner’s file short)',
      () => [stranger.address, deferring(d.fid, allBut([7]), [7])],
      /may not defer columns of .*: only its owner/,
    ],
    [
      'more columns deferred than half the parity (5 of 12)',
      () => [owner.address, deferring(d.fid, allBut([0, 1, 2, 3, 4]), [0, 1, 2, 3, 4])],
      /5 columns deferred; an upload may defer at most 4/,
    ],
    [
      'a deferred column that also has a receipt',
      () => [owner.address, deferring(d.fid, receipts(d, 0, 12), [3])],
      /column 3 is reported by .*, so it cannot be deferred/,
    ],
    [
      'a column deferred twice',
      () => [owner.address, deferring(d.fid, allBut([3]), [3, 3])],
      /a deferred column is listed twice/,
    ],
    [
      'a deferral in a report that leaves the file incomplete',
      () => [owner.address, deferring(d.fid, receipts(d, 0, 6), [11])],
      /deferred only by the report that completes the file; columns 6, 7, 8, 9, 10 have neither/,
    ],
    [
      'a column the file does not have',
      () => [owner.address, deferring(d.fid, allBut([]), [WIDTH])],
      /column 12 does not exist/,
    ],
  ];
  it.each(abuses)('rejects %s, and nothing changes', (_what, attack, reason) => {
    const [caller, bad] = attack();
    expectRejected(h, caller, bad, reason);
    expect(fileOf(h, d.fid)).toMatchObject({ state: 'Pending', placements: new Array(WIDTH).fill(null) });
    expect(h.state.scan(`fileBank/orders/${d.fid}/`)).toEqual([]);
  });

  it('rejects a deferral once the file is Active', () => {
    expectApplied(h, owner.address, deferring(d.fid, allBut([7]), [7]));
    expectRejected(
      h,
      owner.address,
      deferring(d.fid, [makeReceipt(miners[12]!, d, 7)], [8]),
      /already Active/,
    );
  });
});

/** A declaration built on first use (accounts are made in beforeAll, after describe bodies run). */
function makeDeclarationLazy(label: string): () => Declaration {
  let d: Declaration | undefined;
  return () => {
    d ??= makeDeclaration(label, owner.address);
    return d;
  };
}

function flipFirstBit(r: Receipt): Receipt {
  const sig = Buffer.from(r.signature, 'hex');
  sig[0] = sig[0]! ^ 1;
  return { ...r, signature: toHex(new Uint8Array(sig)) };
}

describe('fileBank.deleteFile', () => {
  let h: Harness;
  let d: Declaration;
  let other: Declaration;
  beforeEach(() => {
    h = createHarness();
    buyStorersSpace(h);
    registerMiners(h, miners.slice(0, 12));
    d = makeDeclaration('delete', owner.address);
    other = makeDeclaration('delete/other', owner.address);
    expectApplied(h, owner.address, declare(d));
    expectApplied(h, owner.address, declare(other));
    expectApplied(h, owner.address, report(d.fid, receipts(d, 0, 12)));
    expectApplied(h, owner.address, report(other.fid, receipts(other, 0, 2)));
    expectApplied(h, owner.address, call('fileBank.generateRestoralOrder', { fid: d.fid, index: 4 }));
  });

  /** Every key of the state that names `fid`. */
  const mentions = (fid: string) => h.state.scan('').filter(([k]) => k.includes(fid));

  it('the owner deletes a file: the file, its listings, placements and orders go; other files stay', () => {
    const otherBefore = mentions(other.fid);
    // The file, its owner listing, WIDTH placements, WIDTH tag deadlines and the order.
    expect(mentions(d.fid).length).toBe(1 + 1 + WIDTH + WIDTH + 1);
    expectApplied(h, owner.address, call('fileBank.deleteFile', { fid: d.fid }));
    expect(mentions(d.fid)).toEqual([]);
    expect(mentions(other.fid)).toEqual(otherBefore);
    // The fid is free again: a new upload starts from nothing.
    expectApplied(h, owner.address, declare(d));
    expect(fileOf(h, d.fid)).toMatchObject({ state: 'Pending', placements: new Array(WIDTH).fill(null) });
  });

  it('an authorised operator deletes; a stranger, a holding miner or a former operator may not', () => {
    const why = /may not delete [0-9a-f]{64}: only its owner .* or an operator it authorised/;
    expectRejected(h, stranger.address, call('fileBank.deleteFile', { fid: d.fid }), why);
    expectRejected(h, miners[0]!.address, call('fileBank.deleteFile', { fid: d.fid }), why);
    expectRejected(h, operator.address, call('fileBank.deleteFile', { fid: d.fid }), why);
    expectApplied(h, owner.address, call('oss.authorize', { operator: operator.address }));
    expectApplied(h, operator.address, call('fileBank.deleteFile', { fid: d.fid }));
    expect(mentions(d.fid)).toEqual([]);
    expectApplied(h, owner.address, call('oss.cancelAuthorize', { operator: operator.address }));
    expectRejected(h, operator.address, call('fileBank.deleteFile', { fid: other.fid }), why);
  });

  it('rejects deleting a file that does not exist', () => {
    expectApplied(h, owner.address, call('fileBank.deleteFile', { fid: d.fid }));
    expectRejected(
      h,
      owner.address,
      call('fileBank.deleteFile', { fid: d.fid }),
      /no file [0-9a-f]{64} is declared/,
    );
  });
});

describe('fileBank restoral orders', () => {
  let h: Harness;
  let d: Declaration;
  const generate = (index: number, fid = d.fid) => call('fileBank.generateRestoralOrder', { fid, index });
  const claim = (index: number, fid = d.fid) => call('fileBank.claimRestoralOrder', { fid, index });
  const complete = (index: number, fid = d.fid) => call('fileBank.restoralComplete', { fid, index });

  beforeEach(() => {
    h = createHarness();
    buyStorersSpace(h);
    registerMiners(h, miners);
    d = makeDeclaration('restore', owner.address);
    expectApplied(h, owner.address, declare(d));
    expectApplied(h, owner.address, report(d.fid, receipts(d, 0, 12)));
    // miners 0..11 hold columns 0..11; miners 12..15 hold nothing of d.
  });

  describe('generate', () => {
    it('by the owner', () => {
      expectApplied(h, owner.address, generate(3));
      expect(orderOf(h, d.fid, 3)).toEqual({
        origin: miners[3]!.address,
        generatedAt: h.block,
        by: owner.address,
        claimer: null,
        deadline: null,
      });
    });

    it('by the miner holding the column, not by a miner holding another', () => {
      expectRejected(
        h,
        miners[4]!.address,
        generate(3),
        /may not order a restoral .*: not its owner, operator or miner/,
      );
      expectApplied(h, miners[3]!.address, generate(3));
      expect(orderOf(h, d.fid, 3)?.origin).toBe(miners[3]!.address);
    });

    it('by an authorised operator, not by a stranger', () => {
      expectRejected(h, stranger.address, generate(3), /may not order a restoral/);
      expectRejected(h, operator.address, generate(3), /may not order a restoral/);
      expectApplied(h, owner.address, call('oss.authorize', { operator: operator.address }));
      expectApplied(h, operator.address, generate(3));
    });

    it('rejects a second order for a column while one is open', () => {
      expectApplied(h, owner.address, generate(3));
      expectRejected(
        h,
        miners[3]!.address,
        generate(3),
        /a restoral order for column 3 of .* is already open/,
      );
      expectApplied(h, owner.address, generate(4)); // another column is another order
    });

    it('rejects a column never reported, a column that does not exist, a file that does not exist', () => {
      const e = makeDeclaration('restore/partial', owner.address);
      expectApplied(h, owner.address, declare(e));
      expectApplied(h, owner.address, report(e.fid, [makeReceipt(miners[0]!, e, 0)]));
      expectRejected(h, owner.address, generate(1, e.fid), /column 1 of [0-9a-f]{64} was never reported/);
      expectApplied(h, owner.address, generate(0, e.fid));
      expectRejected(h, owner.address, generate(WIDTH), /column 12 does not exist/);
      expectRejected(h, owner.address, generate(0, hex('nothing')), /no file .* is declared/);
    });
  });

  describe('claim', () => {
    beforeEach(() => {
      expectApplied(h, owner.address, generate(3));
    });

    it('rejects the origin miner, a miner holding another column, a non-miner, and orders that are not open', () => {
      expectRejected(h, miners[3]!.address, claim(3), /lost this column; another miner must restore it/);
      expectRejected(h, miners[4]!.address, claim(3), /already holds a column of/);
      expectRejected(h, stranger.address, claim(3), /claimer .* is not a registered miner/);
      expectRejected(h, miners[12]!.address, claim(5), /no restoral order is open for column 5/);
      expectApplied(h, miners[13]!.address, call('sminer.exit', {}));
      expectRejected(h, miners[13]!.address, claim(3), /claimer .* has exited/);
    });

    it('a claim holds until its deadline; then another miner may claim', () => {
      expectApplied(h, miners[12]!.address, claim(3));
      const claimedAt = h.block;
      const deadline = claimedAt + CONFIG.restoralClaimBlocks;
      expect(orderOf(h, d.fid, 3)).toMatchObject({ claimer: miners[12]!.address, deadline });
      const until = new RegExp(`claimed by ${miners[12]!.address} until block ${deadline}`);
      expectRejected(h, miners[13]!.address, claim(3), until);
      expectRejected(h, miners[12]!.address, claim(3), until); // nor may the claimer extend its own deadline
      expectRejected(h, miners[13]!.address, claim(3), until, { block: deadline });
      expectApplied(h, miners[13]!.address, claim(3), { block: deadline + 1 });
      expect(orderOf(h, d.fid, 3)).toMatchObject({
        origin: miners[3]!.address,
        claimer: miners[13]!.address,
        deadline: deadline + 1 + CONFIG.restoralClaimBlocks,
      });
    });
  });

  describe('complete', () => {
    beforeEach(() => {
      expectApplied(h, owner.address, generate(3));
    });

    it('rejects completing an order nobody claimed, or someone else claimed', () => {
      expectRejected(h, miners[12]!.address, complete(3), /the order is claimed by nobody, not/);
      expectApplied(h, miners[12]!.address, claim(3));
      expectRejected(
        h,
        miners[13]!.address,
        complete(3),
        new RegExp(`claimed by ${miners[12]!.address}, not ${miners[13]!.address}`),
      );
      expectRejected(h, miners[3]!.address, complete(3), /claimed by .*, not/);
    });

    it('rejects completing after the deadline; the last block of the claim is in time', () => {
      expectApplied(h, miners[12]!.address, claim(3));
      const deadline = h.block + CONFIG.restoralClaimBlocks;
      expectRejected(
        h,
        miners[12]!.address,
        complete(3),
        new RegExp(`the claim expired at block ${deadline}`),
        {
          block: deadline + 1,
        },
      );
      expectApplied(h, miners[13]!.address, claim(3));
      expectApplied(h, miners[13]!.address, complete(3), { block: h.block + CONFIG.restoralClaimBlocks });
    });

    it('rejects a claimer that exited before completing', () => {
      expectApplied(h, miners[12]!.address, claim(3));
      expectApplied(h, miners[12]!.address, call('sminer.exit', {}));
      expectRejected(h, miners[12]!.address, complete(3), /claimer .* has exited/);
    });

    it('moves the placement and the minerFiles entry, and closes the order', () => {
      const [origin, restorer] = [miners[3]!, miners[12]!];
      expectApplied(h, restorer.address, claim(3));
      expectApplied(h, restorer.address, complete(3));
      const placements = fileOf(h, d.fid)!.placements;
      expect(placements[3]).toBe(restorer.address);
      expect(placements.filter((p) => p === origin.address)).toEqual([]);
      expect(h.state.get(`fileBank/minerFiles/${restorer.address}/${d.fid}`)).toBe(3);
      expect(h.state.get(`fileBank/minerFiles/${origin.address}/${d.fid}`)).toBeUndefined();
      expect(orderOf(h, d.fid, 3)).toBeUndefined();
      expectRejected(h, restorer.address, complete(3), /no restoral order is open/);
      // The restorer now holds column 3: it may report no other column of d, and it can lose this one in turn.
      expectApplied(h, restorer.address, generate(3));
      expect(orderOf(h, d.fid, 3)?.origin).toBe(restorer.address);
    });

    it('a miner never ends up with two columns of one file by claiming two orders', () => {
      expectApplied(h, owner.address, generate(4));
      expectApplied(h, miners[12]!.address, claim(3));
      // A live claim on one column bars a claim on another; once it holds a column, completing another is refused.
      expectRejected(
        h,
        miners[12]!.address,
        claim(4),
        /has claimed another column of .*; one miner restores one/,
      );
      expectApplied(h, miners[12]!.address, complete(3));
      expectRejected(h, miners[12]!.address, claim(4), /already holds a column of/);
      expect(fileOf(h, d.fid)!.placements.filter((p) => p === miners[12]!.address)).toHaveLength(1);
    });

    it('a miner never ends up with two columns of one file by reporting one while it restores another', () => {
      const e = makeDeclaration('restore/pending', owner.address);
      expectApplied(h, owner.address, declare(e));
      expectApplied(h, owner.address, report(e.fid, receipts(e, 0, 11))); // column 11 not yet reported
      expectApplied(h, owner.address, generate(3, e.fid));
      expectApplied(h, miners[12]!.address, claim(3, e.fid));
      expectApplied(h, owner.address, report(e.fid, [makeReceipt(miners[12]!, e, 11)]));
      expectRejected(h, miners[12]!.address, complete(3, e.fid), /already holds column 11 of/);
      expect(h.state.get(`fileBank/minerFiles/${miners[12]!.address}/${e.fid}`)).toBe(11);
    });
  });
});

describe('teeWorker', () => {
  it('registers a verifier of the genesis set once, with the PoDR2 key the set shares; nobody else', () => {
    const [v, w] = [miners[0]!, miners[1]!];
    const h = createHarness(undefined, { ...CONFIG, verifiers: [v.address, w.address] });
    const args = {
      peerId: peerIdOf(v),
      addrs: ['/ip4/127.0.0.1/tcp/4100'],
      podr2Key: 'cd'.repeat(32),
      peerSignature: peerSignatureOf(v, 'teeWorker.register'),
    };
    expectRejected(
      h,
      stranger.address,
      call('teeWorker.register', {
        ...args,
        peerId: peerIdOf(stranger),
        peerSignature: peerSignatureOf(stranger, 'teeWorker.register'),
      }),
      /is not in the network's verifier set \(2 accounts named/,
    );
    // Issue 15.10b: w copies v's registration (peer id and signature) before v sends it: refused.
    expectRejected(h, w.address, call('teeWorker.register', args), /peerSignature is not .*'s signature/);
    expectApplied(h, v.address, call('teeWorker.register', args));
    const { peerSignature: _, ...recorded } = args;
    expect(h.state.get(`teeWorker/workers/${v.address}`)).toEqual({ ...recorded, registeredAt: h.block });
    expectRejected(
      h,
      v.address,
      call('teeWorker.register', { ...args, podr2Key: 'ef' }),
      /verifier .* is already registered/,
    );
    const second = { ...args, peerId: peerIdOf(w), peerSignature: peerSignatureOf(w, 'teeWorker.register') };
    expectRejected(
      h,
      w.address,
      call('teeWorker.register', { ...second, podr2Key: 'ef' }),
      /share one PoDR2 key, committed as (cd){32}/,
    );
    expectApplied(h, w.address, call('teeWorker.register', second));
    // A network whose configuration names no verifier (an old protocol file) has none.
    expectRejected(createHarness(), v.address, call('teeWorker.register', args), /names no verifiers/);
  });
});

describe('provenance', () => {
  /** A chain with miners, on which the coordinator and the others bought space: they can store manifests. */
  const provenanceHarness = () => {
    const h = createHarness();
    registerMiners(h, miners.slice(0, WIDTH));
    buyStorersSpace(h);
    return h;
  };
  let manifests = 0;
  /** `by` stores a manifest (declared, and every column reported unless `pending`); its fid. */
  const storeManifest = (h: Harness, by: Account = coordinator, pending = false) => {
    const d = makeDeclaration(`provenance/manifest/${manifests++}`, by.address);
    expectApplied(h, by.address, declare(d));
    if (!pending) expectApplied(h, by.address, report(d.fid, receipts(d, 0, WIDTH)));
    return d.fid;
  };
  /** The anchor of a round whose manifest the coordinator stored first. */
  const record = (h: Harness, task: string, round: number) =>
    call('provenance.recordRound', {
      task,
      round,
      manifest: storeManifest(h),
      digest: hex(`${task}/${round}/d`),
    });

  it('a round names a manifest the network holds: an Active file of the coordinator’s own, or it is refused', () => {
    const h = provenanceHarness();
    expectApplied(h, coordinator.address, call('provenance.createTask', { task: 'fm', spec: hex('spec') }));
    const anchor = (manifest: string) =>
      call('provenance.recordRound', { task: 'fm', round: 0, manifest, digest: hex('d') });
    // What a coordinator whose manifest's declaration was refused (its space ran out) would otherwise anchor.
    expectRejected(h, coordinator.address, anchor(hex('never stored')), /is not stored: declare it first/);
    // Declared but not yet reported by the miners: nothing holds it.
    expectRejected(
      h,
      coordinator.address,
      anchor(storeManifest(h, coordinator, true)),
      /columns are not all/,
    );
    // Someone else's object: its owner could delete it from under the round.
    expectRejected(h, coordinator.address, anchor(storeManifest(h, stranger)), /'s, not the coordinator's/);
    expect(roundsOf(h.state, 'fm')).toEqual([]);
    const stored = storeManifest(h);
    expectApplied(h, coordinator.address, anchor(stored));
    expect(roundsOf(h.state, 'fm').map((r) => r.manifest)).toEqual([stored]);
  });

  it('the coordinator records where it is reached, again when it moves; nobody else can', () => {
    const h = createHarness();
    expectApplied(h, coordinator.address, call('provenance.createTask', { task: 'fm', spec: hex('spec') }));
    const at = (url: string, addr: string) =>
      call('provenance.setEndpoint', { task: 'fm', url, peerId: peerIdOf(coordinator), addrs: [addr] });
    // A stranger pointing the organisations at its own server is refused, and so is an endpoint of no task.
    expectRejected(
      h,
      stranger.address,
      at('http://10.0.0.66:8700', '/ip4/10.0.0.66/tcp/8701'),
      /only the coordinator .* records the endpoint of fm/,
    );
    expectRejected(
      h,
      coordinator.address,
      call('provenance.setEndpoint', {
        task: 'none',
        url: 'http://10.0.0.2:8700',
        peerId: peerIdOf(coordinator),
        addrs: ['/ip4/10.0.0.2/tcp/8701'],
      }),
      /no task none/,
    );
    expect(h.state.get<TaskInfo>('provenance/tasks/fm')?.endpoint).toBeNull();
    expectApplied(h, coordinator.address, at('http://10.0.0.2:8700', '/ip4/10.0.0.2/tcp/8701'));
    expectApplied(h, coordinator.address, at('http://10.0.0.3:8700', '/ip4/10.0.0.3/tcp/8701'));
    expect(h.state.get<TaskInfo>('provenance/tasks/fm')?.endpoint).toEqual({
      url: 'http://10.0.0.3:8700',
      peerId: peerIdOf(coordinator),
      addrs: ['/ip4/10.0.0.3/tcp/8701'],
      at: h.block,
    });
  });

  it('the owner admits and removes organisations after creation, and stops the task; nothing is recorded after', () => {
    const h = createHarness();
    const [a, b, c] = [miners[0]!, miners[1]!, miners[2]!];
    expectApplied(
      h,
      coordinator.address,
      call('provenance.createTask', { task: 'fm', spec: hex('spec'), admitted: [a.address] }),
    );
    const set = (add: Account[], remove: Account[]) =>
      call('provenance.setAdmitted', {
        task: 'fm',
        add: add.map((x) => x.address),
        remove: remove.map((x) => x.address),
      });
    const admitted = () => h.state.get<TaskInfo>('provenance/tasks/fm')!.admitted;
    expectRejected(
      h,
      stranger.address,
      set([stranger], []),
      /only the coordinator .* changes who may join fm/,
    );
    expectApplied(h, coordinator.address, set([b, c], []));
    expect(admitted()).toEqual([a.address, b.address, c.address]);
    expectApplied(h, coordinator.address, set([], [a]));
    expect(admitted()).toEqual([b.address, c.address]);
    expectRejected(h, coordinator.address, set([a], [a]), /is both added and removed/);
    // A removed account can no longer be admitted; an added one can.
    const admit = (who: Account) => {
      const identityKey = hex(`key/${who.address}`);
      return call('provenance.admit', {
        task: 'fm',
        account: who.address,
        identityKey,
        signature: toHex(who.sign(admissionMessage(GENESIS_HASH, 'fm', identityKey))),
      });
    };
    expectRejected(h, coordinator.address, admit(a), /is not on the admission list of fm/);
    expectApplied(h, coordinator.address, admit(b));
    expectRejected(
      h,
      stranger.address,
      call('provenance.stopTask', { task: 'fm' }),
      /only the coordinator .* stops fm/,
    );
    expectApplied(h, coordinator.address, call('provenance.stopTask', { task: 'fm' }));
    expect(h.state.get<TaskInfo>('provenance/tasks/fm')!.stoppedAt).toBe(h.block);
    const stopped = /task fm was stopped at block/;
    expectRejected(h, coordinator.address, admit(c), stopped);
    expectRejected(h, coordinator.address, set([a], []), stopped);
    expectRejected(
      h,
      coordinator.address,
      call('provenance.recordRound', { task: 'fm', round: 0, manifest: hex('m'), digest: hex('d') }),
      stopped,
    );
    expectRejected(h, coordinator.address, call('provenance.stopTask', { task: 'fm' }), stopped);
  });

  it('the coordinator stops a task with a reason (a round out of attempts): recorded with the stop, bounded, its alone', () => {
    const h = createHarness();
    expectApplied(h, coordinator.address, call('provenance.createTask', { task: 'fm', spec: hex('spec') }));
    const reason =
      'round 1 ended after 5 attempts (maxAttempts 5); the last: after masked input, x has 1 live neighbours';
    expectRejected(
      h,
      stranger.address,
      call('provenance.stopTask', { task: 'fm', reason }),
      /only the coordinator .* stops fm/,
    );
    // The codec bounds it: a remark stays small.
    expect(() => encodeRemark('provenance.stopTask', { task: 'fm', reason: 'x'.repeat(1001) })).toThrow(
      /reason/,
    );
    expect(() => encodeRemark('provenance.stopTask', { task: 'fm', reason: '' })).toThrow(/reason/);
    expectApplied(h, coordinator.address, call('provenance.stopTask', { task: 'fm', reason }));
    const info = h.state.get<TaskInfo>('provenance/tasks/fm')!;
    expect(info.stoppedAt).toBe(h.block);
    expect(info.stopReason).toBe(reason);
    // Once: a second stop (with another reason) is refused and the first reason stands.
    expectRejected(
      h,
      coordinator.address,
      call('provenance.stopTask', { task: 'fm', reason: 'another' }),
      /task fm was stopped at block/,
    );
    expect(h.state.get<TaskInfo>('provenance/tasks/fm')!.stopReason).toBe(reason);
    // A stop without a reason (the owner's `ailink task stop`) records none, as before.
    expectApplied(h, coordinator.address, call('provenance.createTask', { task: 'fm2', spec: hex('spec2') }));
    expectApplied(h, coordinator.address, call('provenance.stopTask', { task: 'fm2' }));
    expect(h.state.get<TaskInfo>('provenance/tasks/fm2')!.stopReason ?? null).toBeNull();
  });

  it("an attempt's graph seed is the hash of the block that fixed its cohort: once per attempt, next round only", () => {
    const h = provenanceHarness();
    expectApplied(h, coordinator.address, call('provenance.createTask', { task: 'fm', spec: hex('spec') }));
    const draw = (round: number, attempt: number, cohort = hex(`cohort/${round}/${attempt}`)) =>
      call('provenance.drawSeed', { task: 'fm', round, attempt, cohort });
    expectRejected(h, stranger.address, draw(-1, 0), /only the coordinator .* draws seeds for fm/);
    expectApplied(h, coordinator.address, draw(-1, 0));
    expect(seedOf(h.state, 'fm', -1, 0)).toEqual({
      cohort: hex('cohort/-1/0'),
      blockHash: hex(`block/${h.block}`),
      block: h.block,
    });
    // Drawing again for an attempt whose seed it did not like: refused, and the first draw stands.
    expectRejected(
      h,
      coordinator.address,
      draw(-1, 0, hex('other cohort')),
      /attempt 0 of round -1 of fm already has its seed/,
    );
    // Nor ahead of time: only the round the task records next.
    expectRejected(h, coordinator.address, draw(1, 0), /fm records round 0 next, not 1/);
    expectApplied(h, coordinator.address, draw(0, 0));
    expectApplied(h, coordinator.address, draw(0, 1));
    expectApplied(h, coordinator.address, record(h, 'fm', 0));
    expectRejected(h, coordinator.address, draw(0, 2), /fm records round 1 next, not 0/);
    expectRejected(h, coordinator.address, draw(-1, 1), /fm records round 1 next, not -1/);
    expectApplied(h, coordinator.address, draw(1, 0));
  });

  it('the creator coordinates a task; rounds are recorded by it only, in order', () => {
    const h = provenanceHarness();
    expectApplied(
      h,
      coordinator.address,
      call('provenance.createTask', { task: 'mnist', spec: hex('spec') }),
    );
    expect(h.state.get('provenance/tasks/mnist')).toEqual({
      coordinator: coordinator.address,
      spec: hex('spec'),
      createdAt: h.block,
      rounds: 0,
      admitted: [],
      endpoint: null,
      stoppedAt: null,
    });
    expectRejected(
      h,
      stranger.address,
      call('provenance.createTask', { task: 'mnist', spec: hex('x') }),
      /task mnist already exists/,
    );
    expectRejected(
      h,
      stranger.address,
      record(h, 'mnist', 0),
      /only the coordinator .* records rounds of mnist/,
    );
    expectRejected(h, coordinator.address, record(h, 'mnist', 1), /expected round 0 of mnist, got 1/);
    expectRejected(h, coordinator.address, record(h, 'other', 0), /no task other/);
    const stored: string[] = [];
    for (let r = 0; r < 12; r++) {
      const anchor = record(h, 'mnist', r);
      expectApplied(h, coordinator.address, anchor);
      stored.push((anchor.args as CallArgs<'provenance.recordRound'>).manifest);
    }
    expectRejected(h, coordinator.address, record(h, 'mnist', 11), /expected round 12 of mnist, got 11/);
    expectRejected(h, coordinator.address, record(h, 'mnist', 13), /expected round 12 of mnist, got 13/);
    expect(h.state.get('provenance/tasks/mnist')).toMatchObject({ rounds: 12 });
    // Keys are padded: a scan lists rounds in numeric order.
    const rounds = h.state
      .scan('provenance/rounds/mnist/')
      .map(([, v]) => (v as { manifest: string }).manifest);
    expect(rounds).toEqual(stored);
  });

  it('admits only listed accounts, with their own signature over the task and key, once, by the coordinator', () => {
    const h = createHarness();
    const [member, outsider] = [miners[0]!, miners[1]!];
    expectApplied(
      h,
      coordinator.address,
      call('provenance.createTask', { task: 'fm', spec: hex('spec'), admitted: [member.address] }),
    );
    const key = hex('identity');
    const admit = (account: Account, signer: Account, identityKey = key, task = 'fm') =>
      call('provenance.admit', {
        task,
        account: account.address,
        identityKey,
        signature: toHex(signer.sign(admissionMessage(GENESIS_HASH, task, identityKey))),
      });
    expectRejected(h, stranger.address, admit(member, member), /only the coordinator .* admits/);
    expectRejected(h, coordinator.address, admit(outsider, outsider), /not on the admission list of fm/);
    expectRejected(h, coordinator.address, admit(member, outsider), /not signed by/);
    // A signature over another key does not carry over.
    const forged = {
      ...admit(member, member),
      args: { ...admit(member, member).args, identityKey: hex('other') },
    };
    expectRejected(h, coordinator.address, forged as ProtocolCall, /not signed by/);
    expectRejected(h, coordinator.address, admit(member, member, key, 'none'), /no task none/);
    expectApplied(h, coordinator.address, admit(member, member));
    expect(participantsOf(h.state, 'fm')).toEqual([
      { account: member.address, identityKey: key, admittedAt: h.block },
    ]);
    expectRejected(h, coordinator.address, admit(member, member), /already admitted/);
  });
});

describe('applyRemark', () => {
  it('ignores foreign remarks and records invalid ones as rejected with the reason', () => {
    const state = createMemoryState();
    const ctx = ctxAt(owner.address, 1);
    expect(applyRemark(state, ctx, new TextEncoder().encode('gm'))).toEqual({ kind: 'foreign' });
    const bad = encodeRemark('fileBank.deleteFile', { fid: 'ab'.repeat(32) });
    bad[4] = 9;
    expect(applyRemark(state, ctx, bad)).toEqual({
      kind: 'rejected',
      call: null,
      reason: expect.stringMatching(/unknown version 9/),
    });
    expect(state.scan('')).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// The fold as a whole: random call sequences, replayed in different ways, must agree.

const dbDir = mkdtempSync(join(tmpdir(), 'ailink-fold-'));
afterAll(() => rmSync(dbDir, { recursive: true, force: true }));

interface Step {
  readonly caller: string;
  readonly call: ProtocolCall;
  readonly paidToPot: bigint;
  /** Transfers directly before the call in its extrinsic (market prices). */
  readonly payments: readonly Payment[];
  readonly block: number;
}

type Op =
  | { t: 'register'; peer: number; collateral: string; paid: bigint }
  | { t: 'updateAddrs'; port: number }
  | { t: 'exit' }
  | { t: 'authorize' | 'cancelAuthorize'; operator: number }
  | { t: 'buySpace'; gib: number; owner: number | null; paid: bigint }
  | {
      t: 'declare';
      file: number;
      owner: number;
      deal: number;
      badSize: boolean;
      entry: number | null;
      /** Only the first segment, announcing the count: the rest follow in `declareSegments`. */
      split?: boolean;
    }
  | { t: 'declareSegments'; file: number; deal: number }
  /** placement.holdTicket for a file's deal: refused on this network, whose configuration draws no placements. */
  | { t: 'hold'; file: number }
  /** Buckets 0 and 1 ("b-0", "b-1") of the caller or, as its operator, of `owner`; a declaration files under one. */
  | { t: 'createBucket' | 'deleteBucket'; bucket: number; owner: number | null; lock?: boolean }
  /** fileBank.putObjectLock of bucket b-<bucket>: a default of `days`, or none. */
  | { t: 'objectLock'; bucket: number; owner: number | null; days: number | null }
  /** fileBank.putRetention of a file: until a time already past, or far ahead, or farther. */
  | { t: 'retain'; file: number; until: 'past' | 'far' | 'farther'; mode: 'COMPLIANCE' | 'GOVERNANCE' }
  | { t: 'legalHold'; file: number; on: boolean }
  | { t: 'versioning'; bucket: number; owner: number | null; status: 'Enabled' | 'Suspended' }
  /** fileBank.putDeleteMarker on key k/<file> of bucket b-<bucket> (the key a declaration of that file takes). */
  | { t: 'deleteMarker'; bucket: number; owner: number | null; file: number }
  | { t: 'removeMarker'; bucket: number; owner: number | null; file: number; id: string }
  | { t: 'report'; file: number; receipts: { miner: number; index: number; forged: boolean }[] }
  | { t: 'delete' | 'generate' | 'claim' | 'complete'; file: number; index: number }
  | { t: 'tee'; peer: number }
  | { t: 'teeUpdate'; port: number }
  | { t: 'tagReport'; file: number; index: number; verifier: number }
  | { t: 'commitIdle'; first: number; count: number }
  | { t: 'releaseIdle'; count: number }
  | { t: 'result'; miner: number; verifier: number }
  | { t: 'createTask'; task: number }
  | { t: 'admit'; task: number; member: number; signer: number }
  | { t: 'recordRound'; task: number; round: number; file: number }
  | { t: 'setEndpoint'; task: number; port: number }
  | { t: 'setAdmitted'; task: number; member: number; remove: boolean }
  | { t: 'stopTask'; task: number }
  | { t: 'drawSeed'; task: number; round: number; attempt: number }
  | { t: 'terms'; file: number; readers: number; price: string | null }
  | { t: 'request'; file: number; key: number; paid: bigint; payee: number }
  | { t: 'grant'; file: number; reader: number; key: number }
  /** The pot (fromPot) or an actor pays debt number `debt` (or none) `amount` to actor `to`. */
  | { t: 'payout'; fromPot: boolean; debt: number; to: number; amount: bigint; named: boolean };

const ACTORS = 6;
const FILES = 2;
const FOLD_WIDTH = 3; // 2 data + 1 parity: small enough that random sequences complete files and restorals

/**
 * A random call and who signs it. Any actor may sign anything, but each call leans towards the callers that can
 * make it apply (actors 0–3 start as miners, 0–2 holding file 0 of actor 4), so that sequences get deep enough to
 * claim and complete restorals, cancel authorisations and record rounds.
 */
function opArbitrary(): fc.Arbitrary<{ caller: number; op: Op }> {
  const anyone = fc.nat(ACTORS - 1);
  const users = fc.constantFrom(4, 5, 4, 5, 0);
  const restorers = fc.constantFrom(3, 3, 3, 5, 0);
  const file = fc.nat(FILES - 1);
  const index = fc.nat(FOLD_WIDTH); // FOLD_WIDTH itself is a column the files do not have
  // Restorals take three calls on one column: lean towards column 0 of file 0 (placed by the prelude).
  const restoralFile = fc.constantFrom(0, 0, 0, 0, 1);
  const restoralIndex = fc.constantFrom(0, 0, 0, 0, 1, 2, FOLD_WIDTH);
  const o = <T extends Op>(op: fc.Arbitrary<T>, caller: fc.Arbitrary<number>, weight: number) => ({
    arbitrary: fc.record({ caller, op: op as fc.Arbitrary<Op> }),
    weight,
  });
  return fc.oneof(
    o(
      fc.record({
        t: fc.constant('register' as const),
        peer: anyone,
        collateral: fc.constantFrom('0', '999', '1000', '5000'),
        paid: fc.constantFrom(0n, 999n, 1000n, 5000n),
      }),
      anyone,
      3,
    ),
    o(fc.record({ t: fc.constant('updateAddrs' as const), port: fc.nat(3) }), anyone, 1),
    o(fc.record({ t: fc.constant('exit' as const) }), anyone, 1),
    o(
      fc.record({
        t: fc.constantFrom('authorize' as const, 'cancelAuthorize' as const),
        operator: fc.constantFrom(3, 4, 5),
      }),
      users,
      3,
    ),
    o(
      fc.record({
        t: fc.constant('buySpace' as const),
        gib: fc.constantFrom(1, 2),
        owner: fc.constantFrom(null, 4, 5),
        paid: fc.constantFrom(0n, 100n, 150n, 200n),
      }),
      users,
      2,
    ),
    o(
      fc.record({
        t: fc.constant('declare' as const),
        file,
        owner: users,
        deal: fc.nat(1),
        badSize: fc.boolean(),
        entry: fc.constantFrom(null, null, 0, 1),
        split: fc.boolean(),
      }),
      users,
      3,
    ),
    o(fc.record({ t: fc.constant('declareSegments' as const), file, deal: fc.nat(1) }), users, 2),
    o(fc.record({ t: fc.constant('hold' as const), file }), users, 1),
    o(
      fc.record({
        t: fc.constantFrom('createBucket' as const, 'createBucket' as const, 'deleteBucket' as const),
        bucket: fc.nat(1),
        owner: fc.constantFrom(null, null, 4, 5),
        lock: fc.boolean(),
      }),
      users,
      2,
    ),
    o(
      fc.record({
        t: fc.constant('objectLock' as const),
        bucket: fc.nat(1),
        owner: fc.constantFrom(null, null, 4, 5),
        days: fc.constantFrom(null, 1, 30),
      }),
      users,
      1,
    ),
    o(
      fc.record({
        t: fc.constant('retain' as const),
        file,
        until: fc.constantFrom('past' as const, 'far' as const, 'farther' as const),
        mode: fc.constantFrom('COMPLIANCE' as const, 'GOVERNANCE' as const),
      }),
      users,
      1,
    ),
    o(fc.record({ t: fc.constant('legalHold' as const), file, on: fc.boolean() }), users, 1),
    o(
      fc.record({
        t: fc.constant('versioning' as const),
        bucket: fc.nat(1),
        owner: fc.constantFrom(null, null, 4, 5),
        status: fc.constantFrom('Enabled' as const, 'Suspended' as const),
      }),
      users,
      1,
    ),
    o(
      fc.record({
        t: fc.constant('deleteMarker' as const),
        bucket: fc.nat(1),
        owner: fc.constantFrom(null, null, 4, 5),
        file,
      }),
      users,
      1,
    ),
    o(
      fc.record({
        t: fc.constant('removeMarker' as const),
        bucket: fc.nat(1),
        owner: fc.constantFrom(null, null, 4, 5),
        file,
        id: fc.constantFrom('null', 'm1.1', 'm21.2'),
      }),
      users,
      1,
    ),
    o(
      fc.record({
        t: fc.constant('report' as const),
        file,
        receipts: fc.array(fc.record({ miner: anyone, index, forged: fc.boolean() }), {
          minLength: 1,
          maxLength: 3,
        }),
      }),
      anyone,
      5,
    ),
    o(fc.record({ t: fc.constant('delete' as const), file, index }), users, 1),
    o(
      fc.record({ t: fc.constant('generate' as const), file: restoralFile, index: restoralIndex }),
      fc.constantFrom(0, 1, 2, 4, 5),
      4,
    ),
    o(
      fc.record({ t: fc.constant('claim' as const), file: restoralFile, index: restoralIndex }),
      restorers,
      5,
    ),
    o(
      fc.record({ t: fc.constant('complete' as const), file: restoralFile, index: restoralIndex }),
      restorers,
      5,
    ),
    o(fc.record({ t: fc.constant('tee' as const), peer: anyone }), anyone, 1),
    o(fc.record({ t: fc.constant('teeUpdate' as const), port: fc.nat(3) }), anyone, 1),
    o(
      fc.record({
        t: fc.constant('tagReport' as const),
        file: restoralFile,
        index: restoralIndex,
        verifier: anyone,
      }),
      restorers,
      3,
    ),
    o(
      fc.record({
        t: fc.constant('commitIdle' as const),
        first: fc.constantFrom(0, 0, 1, 2),
        count: fc.constantFrom(1, 2, 40),
      }),
      anyone,
      2,
    ),
    o(fc.record({ t: fc.constant('releaseIdle' as const), count: fc.constantFrom(1, 1, 3) }), anyone, 1),
    // Challenges come from the block hook, which this fold does not run: a result is always refused here
    // (test/chain/audit.test.ts drives the hook).
    o(fc.record({ t: fc.constant('result' as const), miner: anyone, verifier: anyone }), anyone, 1),
    o(fc.record({ t: fc.constant('createTask' as const), task: fc.nat(1) }), users, 1),
    o(
      fc.record({
        t: fc.constant('admit' as const),
        task: fc.constantFrom(0, 0, 1),
        member: anyone,
        signer: fc.constantFrom(0, 0, 1),
      }),
      users,
      2,
    ),
    o(
      fc.record({
        t: fc.constant('recordRound' as const),
        task: fc.constantFrom(0, 0, 1),
        round: fc.constantFrom(0, 0, 1, 2),
        // The manifest: file 0 is actor 4's and Active from the prelude on; the others need not be stored.
        file: fc.constantFrom(0, 0, 0, 1),
      }),
      users,
      2,
    ),
    o(
      fc.record({
        t: fc.constant('setAdmitted' as const),
        task: fc.constantFrom(0, 0, 1),
        member: fc.integer({ min: 0, max: ACTORS - 1 }),
        remove: fc.boolean(),
      }),
      users,
      1,
    ),
    o(fc.record({ t: fc.constant('stopTask' as const), task: fc.constantFrom(0, 1, 1) }), users, 1),
    o(
      fc.record({
        t: fc.constant('drawSeed' as const),
        task: fc.constantFrom(0, 0, 1),
        round: fc.constantFrom(-1, 0, 0, 1),
        attempt: fc.constantFrom(0, 0, 1),
      }),
      users,
      1,
    ),
    o(
      fc.record({
        t: fc.constant('setEndpoint' as const),
        task: fc.constantFrom(0, 0, 1),
        port: fc.integer({ min: 1, max: 3 }),
      }),
      users,
      1,
    ),
    // The market leans on file 0 (declared by actor 4 in the prelude) and on its owner as payee.
    o(
      fc.record({
        t: fc.constant('terms' as const),
        file: restoralFile,
        readers: fc.nat(MARKET_READER_SETS.length - 1),
        price: fc.constantFrom('0', '1000', '1000', null),
      }),
      users,
      2,
    ),
    o(
      fc.record({
        t: fc.constant('request' as const),
        file: restoralFile,
        // 0: the reader key the declaration wrapped the data key for; 1, 2: others.
        key: fc.constantFrom(0, 1, 1, 2),
        paid: fc.constantFrom(0n, 0n, 999n, 1000n, 5000n),
        // -1: into escrow at the pot.
        payee: fc.constantFrom(4, 4, 4, 5, 0, -1, -1),
      }),
      anyone,
      4,
    ),
    o(
      fc.record({
        t: fc.constant('payout' as const),
        fromPot: fc.constantFrom(true, true, true, false),
        debt: fc.nat(4),
        to: anyone,
        amount: fc.constantFrom(1n, 999n, 1000n, 1000n),
        named: fc.constantFrom(true, true, false),
      }),
      users,
      1,
    ),
    o(
      fc.record({
        t: fc.constant('grant' as const),
        file: restoralFile,
        reader: anyone,
        key: fc.constantFrom(1, 1, 2),
      }),
      fc.constantFrom(4, 4, 4, 5, 0),
      3,
    ),
  );
}

/** Who is on the access list, by actor index: nobody, one, two, most. */
const MARKET_READER_SETS: readonly (readonly number[])[] = [[], [2], [2, 3], [1, 2, 3, 5]];
/** The X25519 reader key `key` of an actor, as the fold names them (0 is the one every declaration wraps for). */
const readerKeyOf = (actor: number, key: number): string =>
  key === 0 ? WRAPPED_READER_KEY : hex(`fold/reader-key/${actor}/${key}`);
const WRAPPED_READER_KEY = hex('fold/wrapped-reader-key');

describe('the protocol as a replayable fold', () => {
  let actors: Account[];
  let files: Declaration[];
  /** receipts[file][miner][index][forged ? 1 : 0], for deal 0 of the file. */
  let receiptTable: Receipt[][][][];

  beforeAll(() => {
    actors = makeAccounts('fold/actor', ACTORS);
    files = Array.from({ length: FILES }, (_, f) => {
      const d = makeDeclaration(`fold/file/${f}`, actors[0]!.address, {
        data: 2,
        parity: 1,
        segments: 2,
        encrypted: true,
      });
      // Encrypted with a data key wrapped for one reader key that every actor may present (an owner's, a reader's).
      const wraps = [{ ...d.encryption!.wraps[0]!, recipient: WRAPPED_READER_KEY }];
      return { ...d, encryption: { ...d.encryption!, wraps } };
    });
    receiptTable = files.map((d) =>
      actors.map((m) =>
        Array.from({ length: FOLD_WIDTH + 1 }, (_, i) => {
          // Column FOLD_WIDTH does not exist: its receipts carry a signature over column 0.
          const signedIndex = i % FOLD_WIDTH;
          return [
            makeReceipt(m, d, i, { index: signedIndex }),
            makeReceipt(m, d, i, { index: (signedIndex + 1) % FOLD_WIDTH }),
          ];
        }),
      ),
    );
  });

  function toCall(
    op: Op,
    caller = 0,
  ): { call: ProtocolCall; paidToPot?: bigint; payments?: readonly Payment[]; caller?: string } {
    const a = (i: number) => actors[i]!;
    switch (op.t) {
      case 'register':
        return {
          call: call('sminer.register', {
            peerId: peerIdOf(a(op.peer)),
            addrs: [],
            capacity: 1 << 20,
            collateral: op.collateral,
            peerSignature: peerSignatureOf(a(caller), 'sminer.register', { signer: a(op.peer) }),
          }),
          payments: [{ to: POT, amount: op.paid }],
        };
      case 'updateAddrs':
        return { call: call('sminer.updateAddrs', { addrs: [`/ip4/10.0.0.1/tcp/${4000 + op.port}`] }) };
      case 'exit':
        return { call: call('sminer.exit', {}) };
      case 'authorize':
      case 'cancelAuthorize':
        return { call: call(`oss.${op.t}`, { operator: a(op.operator).address }) };
      case 'buySpace':
        return {
          call: call(
            'storageHandler.buySpace',
            op.owner === null ? { gib: op.gib } : { gib: op.gib, owner: a(op.owner).address },
          ),
          payments: [{ to: POT, amount: op.paid }],
        };
      case 'declare': {
        const d = files[op.file]!;
        return {
          call: declare({
            ...d,
            owner: a(op.owner).address,
            deal: op.deal === 0 ? d.deal : 'd'.repeat(32),
            size: op.badSize ? 10 * d.profile.segmentSize : d.size,
            ...(op.entry === null ? {} : { entry: { bucket: `b-${op.entry}`, key: `k/${op.file}` } }),
            ...(op.split === true
              ? { segments: d.segments.slice(0, 1), segmentCount: d.segments.length }
              : {}),
          }),
        };
      }
      case 'declareSegments': {
        const d = files[op.file]!;
        return {
          call: call('fileBank.declareSegments', {
            fid: d.fid,
            deal: op.deal === 0 ? d.deal : 'd'.repeat(32),
            segments: d.segments.slice(1),
          }),
        };
      }
      case 'hold':
        return {
          call: call('placement.holdTicket', {
            deal: files[op.file]!.deal,
            epoch: 0,
            slot: 0,
            profile: files[op.file]!.profile,
            segments: 1,
          }),
        };
      case 'createBucket':
      case 'deleteBucket':
        return {
          call: call(`fileBank.${op.t}`, {
            name: `b-${op.bucket}`,
            ...(op.owner === null ? {} : { owner: a(op.owner).address }),
            ...(op.t === 'createBucket' && op.lock === true ? { objectLock: true } : {}),
          }),
        };
      case 'objectLock':
        return {
          call: call('fileBank.putObjectLock', {
            name: `b-${op.bucket}`,
            ...(op.owner === null ? {} : { owner: a(op.owner).address }),
            defaultRetention: op.days === null ? null : { mode: 'GOVERNANCE', days: op.days },
          }),
        };
      case 'retain':
        return {
          call: call('fileBank.putRetention', {
            fid: files[op.file]!.fid,
            retention: {
              mode: op.mode,
              until: { past: 1, far: 4_000_000_000_000, farther: 4_100_000_000_000 }[op.until],
            },
          }),
        };
      case 'legalHold':
        return { call: call('fileBank.putLegalHold', { fid: files[op.file]!.fid, on: op.on }) };
      case 'versioning':
        return {
          call: call('fileBank.putVersioning', {
            name: `b-${op.bucket}`,
            status: op.status,
            ...(op.owner === null ? {} : { owner: a(op.owner).address }),
          }),
        };
      case 'deleteMarker':
        return {
          call: call('fileBank.putDeleteMarker', {
            bucket: `b-${op.bucket}`,
            key: `k/${op.file}`,
            ...(op.owner === null ? {} : { owner: a(op.owner).address }),
          }),
        };
      case 'removeMarker':
        return {
          call: call('fileBank.removeDeleteMarker', {
            bucket: `b-${op.bucket}`,
            key: `k/${op.file}`,
            versionId: op.id,
            ...(op.owner === null ? {} : { owner: a(op.owner).address }),
          }),
        };
      case 'report':
        return {
          call: report(
            files[op.file]!.fid,
            op.receipts.map((r) => receiptTable[op.file]![r.miner]![r.index]![r.forged ? 1 : 0]!),
          ),
        };
      case 'delete':
        return { call: call('fileBank.deleteFile', { fid: files[op.file]!.fid }) };
      case 'generate':
      case 'claim':
      case 'complete': {
        const name = (
          {
            generate: 'fileBank.generateRestoralOrder',
            claim: 'fileBank.claimRestoralOrder',
            complete: 'fileBank.restoralComplete',
          } as const
        )[op.t];
        return { call: call(name, { fid: files[op.file]!.fid, index: op.index }) };
      }
      case 'tee':
        return {
          call: call('teeWorker.register', {
            peerId: peerIdOf(a(op.peer)),
            addrs: [],
            podr2Key: 'ab',
            peerSignature: peerSignatureOf(a(caller), 'teeWorker.register', { signer: a(op.peer) }),
          }),
        };
      case 'teeUpdate':
        return { call: call('teeWorker.updateAddrs', { addrs: [`/ip4/10.0.0.2/tcp/${5000 + op.port}`] }) };
      case 'tagReport': {
        const d = files[op.file]!;
        const digest = columnDigest(columnHashes(d.segments, op.index % FOLD_WIDTH));
        const message = tagReportMessage(a(caller).address, d.fid, op.index, digest);
        return {
          call: call('fileBank.calculateReport', {
            fid: d.fid,
            index: op.index,
            verifier: a(op.verifier).address,
            signature: toHex(a(op.verifier).sign(message)),
          }),
        };
      }
      case 'commitIdle':
        return {
          call: call('audit.commitIdle', {
            first: op.first,
            roots: Array.from({ length: op.count }, (_, i) => hex(`idle/${op.first + i}`)),
          }),
        };
      case 'releaseIdle':
        return { call: call('audit.releaseIdle', { count: op.count }) };
      case 'result':
        return {
          call: call('audit.submitResult', {
            miner: a(op.miner).address,
            challenge: 5,
            proof: hex('proof'),
            verifier: a(op.verifier).address,
            signature: toHex(a(op.verifier).sign(new Uint8Array(1))),
          }),
        };
      case 'createTask':
        return {
          call: call('provenance.createTask', {
            task: `task-${op.task}`,
            spec: hex(`spec/${op.task}`),
            admitted: actors.slice(2).map((x) => x.address),
          }),
        };
      case 'admit': {
        // signer 0: the member signs (valid unless it is not listed), 1: someone else signs (always refused).
        const signer = a(op.signer === 0 ? op.member : (op.member + 1) % ACTORS);
        const identityKey = hex(`identity/${op.member}`);
        return {
          call: call('provenance.admit', {
            task: `task-${op.task}`,
            account: a(op.member).address,
            identityKey,
            signature: toHex(signer.sign(admissionMessage(GENESIS_HASH, `task-${op.task}`, identityKey))),
          }),
        };
      }
      case 'recordRound':
        return {
          call: call('provenance.recordRound', {
            task: `task-${op.task}`,
            round: op.round,
            manifest: files[op.file]!.fid,
            digest: hex(`d/${op.task}/${op.round}`),
          }),
        };
      case 'setAdmitted':
        return {
          call: call('provenance.setAdmitted', {
            task: `task-${op.task}`,
            add: op.remove ? [] : [a(op.member).address],
            remove: op.remove ? [a(op.member).address] : [],
          }),
        };
      case 'stopTask':
        return { call: call('provenance.stopTask', { task: `task-${op.task}` }) };
      case 'drawSeed':
        return {
          call: call('provenance.drawSeed', {
            task: `task-${op.task}`,
            round: op.round,
            attempt: op.attempt,
            cohort: hex(`cohort/${op.task}/${op.round}/${op.attempt}`),
          }),
        };
      case 'setEndpoint':
        return {
          call: call('provenance.setEndpoint', {
            task: `task-${op.task}`,
            url: `http://10.0.0.${op.port}:8700`,
            peerId: peerIdOf(a(caller)),
            addrs: [`/ip4/10.0.0.${op.port}/tcp/8701`],
          }),
        };
      case 'terms':
        return {
          call: call('market.setTerms', {
            fid: files[op.file]!.fid,
            readers: MARKET_READER_SETS[op.readers]!.map((i) => a(i).address),
            price: op.price,
          }),
        };
      case 'request':
        return {
          call: call('market.request', { fid: files[op.file]!.fid, readerKey: readerKeyOf(caller, op.key) }),
          payments:
            op.paid === 0n ? [] : [{ to: op.payee === -1 ? POT : a(op.payee).address, amount: op.paid }],
        };
      case 'payout':
        return {
          call: call('pot.payout', { debts: [String(op.debt).padStart(10, '0')] }),
          payments: [
            { to: a(op.to).address, amount: op.amount },
            ...(op.named ? [] : [{ to: a(op.to).address, amount: 1n }]),
          ],
          ...(op.fromPot ? { caller: POT } : {}),
        };
      case 'grant':
        return {
          call: call('market.grant', {
            fid: files[op.file]!.fid,
            reader: a(op.reader).address,
            wrap: {
              recipient: readerKeyOf(op.reader, op.key),
              ephemeral: hex(`fold/ephemeral/${op.reader}/${op.key}`),
              sealed: '5a'.repeat(48),
            },
          }),
        };
    }
  }

  /**
   * A fixed start that makes later random calls meaningful: 4 miners, 1 GiB of space for actor 4, file 0 declared by
   * actor 4 and fully placed.
   */
  function prelude(): Step[] {
    const steps: Step[] = actors.slice(0, 4).map((m) => ({
      caller: m.address,
      call: toCall(
        { t: 'register', peer: actors.indexOf(m), collateral: '1000', paid: 1000n },
        actors.indexOf(m),
      ).call,
      paidToPot: 1000n,
      payments: [{ to: POT, amount: 1000n }],
      block: 1,
    }));
    // Actor 4 holds space, as a declaration needs.
    steps.push({
      caller: actors[4]!.address,
      call: toCall({ t: 'buySpace', gib: 1, owner: null, paid: 100n }).call,
      paidToPot: 0n,
      payments: [{ to: POT, amount: 100n }],
      block: 2,
    });
    steps.push({
      caller: actors[4]!.address,
      call: toCall({ t: 'declare', file: 0, owner: 4, deal: 0, badSize: false, entry: null }).call,
      paidToPot: 0n,
      payments: [],
      block: 2,
    });
    for (let i = 0; i < FOLD_WIDTH; i++) {
      const op: Op = { t: 'report', file: 0, receipts: [{ miner: i, index: i, forged: false }] };
      steps.push({
        caller: actors[5]!.address,
        call: toCall(op).call,
        paidToPot: 0n,
        payments: [],
        block: 3,
      });
    }
    return steps;
  }

  const stepsArbitrary = () =>
    fc
      .array(
        // A third of the calls share the block of the one before; claims (10 blocks) expire after a few calls.
        fc.record({ call: opArbitrary(), gap: fc.constantFrom(0, 0, 1, 1, 2, 3, 6) }),
        { minLength: 10, maxLength: 60, size: 'max' },
      )
      .map((raw) => {
        let block = 3;
        return [
          ...prelude(),
          ...raw.map(({ call: { caller, op }, gap }): Step => {
            block += gap;
            const { call: c, paidToPot = 0n, payments = [], caller: by } = toCall(op, caller);
            return { caller: by ?? actors[caller]!.address, call: c, paidToPot, payments, block };
          }),
        ];
      });

  /**
   * A hand-written sequence that makes every call apply at least once (a full restoral, an expired claim, a
   * cancelled authorisation, rounds, a partly bad report, a deletion), with calls sharing blocks.
   */
  function scripted(): Step[] {
    const script: [number, number, Op][] = [
      [4, 4, { t: 'authorize', operator: 5 }],
      [4, 4, { t: 'cancelAuthorize', operator: 5 }],
      [4, 5, { t: 'buySpace', gib: 2, owner: 4, paid: 200n }],
      [4, 4, { t: 'buySpace', gib: 2, owner: null, paid: 199n }], // underpaid: rejected
      [5, 4, { t: 'generate', file: 0, index: 0 }],
      [5, 3, { t: 'claim', file: 0, index: 0 }], // sees the order opened earlier in the same block
      [6, 3, { t: 'complete', file: 0, index: 0 }],
      [7, 0, { t: 'exit' }], // its column was restored away: opens nothing
      [7, 1, { t: 'exit' }], // opens an order for column 1
      [8, 5, { t: 'register', peer: 5, collateral: '1000', paid: 1000n }],
      [8, 5, { t: 'claim', file: 0, index: 1 }],
      [8, 5, { t: 'claim', file: 0, index: 1 }], // its own claim still holds
      [19, 5, { t: 'complete', file: 0, index: 1 }], // the claim expired at block 18
      [19, 4, { t: 'createTask', task: 0 }],
      [19, 4, { t: 'drawSeed', task: 0, round: 0, attempt: 0 }],
      [19, 4, { t: 'drawSeed', task: 0, round: 0, attempt: 0 }], // drawn already: rejected
      [19, 4, { t: 'recordRound', task: 0, round: 0, file: 0 }],
      [20, 4, { t: 'recordRound', task: 0, round: 0, file: 0 }],
      [20, 4, { t: 'setEndpoint', task: 0, port: 1 }],
      [20, 5, { t: 'setEndpoint', task: 0, port: 2 }], // not the coordinator: rejected
      [20, 4, { t: 'setAdmitted', task: 0, member: 1, remove: false }],
      [20, 5, { t: 'setAdmitted', task: 0, member: 1, remove: true }], // not the coordinator: rejected
      [20, 4, { t: 'admit', task: 0, member: 2, signer: 0 }], // listed and signed by itself: applied
      [20, 4, { t: 'createTask', task: 1 }],
      [20, 5, { t: 'createTask', task: 1 }], // created already: rejected
      [20, 4, { t: 'stopTask', task: 1 }],
      [20, 4, { t: 'stopTask', task: 1 }], // stopped already: rejected
      [20, 5, { t: 'tee', peer: 5 }],
      [20, 5, { t: 'tee', peer: 5 }], // registered already: rejected
      [20, 0, { t: 'updateAddrs', port: 1 }], // exited
      [20, 3, { t: 'updateAddrs', port: 2 }],
      [20, 5, { t: 'teeUpdate', port: 1 }],
      [20, 3, { t: 'tagReport', file: 0, index: 0, verifier: 5 }],
      [20, 3, { t: 'commitIdle', first: 0, count: 2 }],
      [20, 3, { t: 'releaseIdle', count: 1 }],
      [20, 3, { t: 'result', miner: 3, verifier: 5 }],
      [21, 4, { t: 'createBucket', bucket: 1, owner: null }],
      [21, 4, { t: 'createBucket', bucket: 1, owner: null }], // exists already: rejected
      [21, 4, { t: 'deleteBucket', bucket: 1, owner: null }],
      [21, 4, { t: 'deleteBucket', bucket: 1, owner: null }], // gone: rejected
      [21, 4, { t: 'createBucket', bucket: 0, owner: null, lock: true }],
      [21, 4, { t: 'objectLock', bucket: 0, owner: null, days: 30 }],
      [21, 4, { t: 'objectLock', bucket: 1, owner: null, days: 30 }], // gone: rejected
      [21, 4, { t: 'declare', file: 1, owner: 4, deal: 0, badSize: false, entry: 0 }],
      [21, 4, { t: 'retain', file: 1, until: 'farther', mode: 'COMPLIANCE' }],
      [21, 4, { t: 'retain', file: 1, until: 'far', mode: 'COMPLIANCE' }], // shortened: rejected
      [
        21,
        2,
        {
          t: 'report',
          file: 1,
          receipts: [
            { miner: 3, index: 0, forged: false },
            { miner: 5, index: 1, forged: true },
          ],
        },
      ],
      [21, 2, { t: 'report', file: 1, receipts: [{ miner: 3, index: 0, forged: false }] }],
      // The market on file 0 (actor 4's): actor 2 listed, 1000 for others.
      [21, 4, { t: 'terms', file: 0, readers: 1, price: '1000' }],
      [21, 2, { t: 'request', file: 0, key: 1, paid: 0n, payee: 4 }],
      [21, 3, { t: 'request', file: 0, key: 1, paid: 999n, payee: 4 }], // underpaid
      [21, 3, { t: 'request', file: 0, key: 1, paid: 999n, payee: -1 }], // underpaid into escrow: refunded
      [21, 3, { t: 'request', file: 0, key: 1, paid: 1000n, payee: 4 }],
      [21, 4, { t: 'request', file: 0, key: 0, paid: 0n, payee: 4 }], // the owner, wrapped for: no open request
      [21, 5, { t: 'grant', file: 0, reader: 2, key: 1 }], // not the owner
      [22, 4, { t: 'grant', file: 0, reader: 2, key: 1 }],
      [22, 4, { t: 'grant', file: 0, reader: 2, key: 1 }], // replayed
      [22, 4, { t: 'grant', file: 0, reader: 3, key: 2 }], // another reader key than asked for
      [22, 4, { t: 'grant', file: 0, reader: 3, key: 1 }],
      [22, 4, { t: 'grant', file: 0, reader: 1, key: 1 }], // nobody asked, not listed
      [22, 4, { t: 'legalHold', file: 1, on: true }], // filed in the object-lock bucket b-0
      [22, 4, { t: 'legalHold', file: 0, on: true }], // filed nowhere: rejected
      [22, 4, { t: 'versioning', bucket: 0, owner: null, status: 'Suspended' }], // object lock: rejected
      [22, 4, { t: 'createBucket', bucket: 1, owner: null }],
      [22, 4, { t: 'deleteMarker', bucket: 1, owner: null, file: 0 }], // not versioned: rejected
      [22, 4, { t: 'versioning', bucket: 1, owner: null, status: 'Suspended' }],
      [22, 4, { t: 'deleteMarker', bucket: 1, owner: null, file: 0 }], // the key's "null" marker
      [22, 4, { t: 'removeMarker', bucket: 1, owner: null, file: 0, id: 'null' }],
      [22, 4, { t: 'removeMarker', bucket: 1, owner: null, file: 0, id: 'null' }], // gone: rejected
      [22, 4, { t: 'delete', file: 0, index: 0 }],
      // Debt 1: actor 0's collateral, owed since its exit in block 7.
      [22, 4, { t: 'payout', fromPot: false, debt: 1, to: 0, amount: 1000n, named: true }], // not the pot
      [22, 4, { t: 'payout', fromPot: true, debt: 1, to: 0, amount: 1000n, named: false }],
      // A declaration in two remarks (file 0 was deleted above): its first segment, then the rest in the same block.
      [23, 4, { t: 'declare', file: 0, owner: 4, deal: 0, badSize: false, entry: null, split: true }],
      [23, 4, { t: 'declareSegments', file: 0, deal: 0 }],
      [23, 4, { t: 'declareSegments', file: 0, deal: 0 }], // complete already: rejected
      [23, 4, { t: 'hold', file: 0 }], // no placement draws here: rejected
    ];
    return [
      ...prelude(),
      ...script.map(([block, caller, op]): Step => {
        const { call: c, paidToPot = 0n, payments = [], caller: by } = toCall(op, caller);
        return { caller: by ?? actors[caller]!.address, call: c, paidToPot, payments, block };
      }),
    ];
  }

  // Actors 1 and 5 are the network's verifier set: the others' registrations are refused.
  const ctxOf = (s: Step) =>
    ctxAt(s.caller, s.block, s.paidToPot, s.payments, {
      ...CONFIG,
      verifiers: [actors[1]!.address, actors[5]!.address],
    });
  const outcomeText = (o: RemarkOutcome) => (o.kind === 'rejected' ? `rejected: ${o.reason}` : o.kind);

  /** Commits each call on its own, checking purity and all-or-nothing; returns outcomes and per-block digests. */
  function foldCallByCall(
    store: StateStore,
    steps: readonly Step[],
    onStep?: (s: Step, o: RemarkOutcome) => void,
  ) {
    const outcomes: string[] = [];
    const blockWrites = new Map<number, Map<string, StateValue | null>>();
    for (const step of steps) {
      const before = store.scan('');
      const outcome = applyCall(store, ctxOf(step), step.call);
      // applyCall only reads: the store is untouched until the caller applies the writes…
      expect(store.scan('')).toEqual(before);
      if (
        outcome.kind === 'rejected' &&
        step.caller !== POT &&
        step.payments.every((p) => p.to !== POT || p.amount === 0n)
      ) {
        // …and a rejected call has none to apply, unless it was paid for: then only the pot's refund debt (or,
        // the pot's own, the flags of what it paid).
        expect(outcome).not.toHaveProperty('writes');
      } else if (outcome.kind !== 'foreign') {
        if (outcome.kind === 'applied') expect(outcome.writes.length).toBeGreaterThan(0);
        if (outcome.kind === 'rejected') {
          expect(outcome.writes?.every((w) => w.key.startsWith('pot/'))).toBe(true);
        }
        store.apply(outcome.writes ?? []);
        const merged = blockWrites.get(step.block) ?? new Map<string, StateValue | null>();
        for (const w of outcome.writes ?? []) merged.set(w.key, w.value);
        blockWrites.set(step.block, merged);
      }
      outcomes.push(outcomeText(outcome));
      onStep?.(step, outcome);
    }
    const digests: string[] = [];
    let digest = GENESIS_DIGEST;
    for (const block of [...new Set(steps.map((s) => s.block))]) {
      const writes = [...(blockWrites.get(block) ?? [])]
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([key, value]) => ({ key, value }));
      digest = nextDigest(digest, block, writes);
      digests.push(digest);
    }
    return { outcomes, digests };
  }

  /**
   * Folds the way the indexer does: each group of calls runs on one overlay over the store, each applied call's
   * writes go into the overlay, and the overlay's writes are committed (in `commit`) at the end of the group.
   * `groups` defaults to one group per block.
   */
  function foldGrouped(
    store: StateStore,
    steps: readonly Step[],
    commit: (writes: StateWrite[]) => void = (w) => store.apply(w),
    cuts?: readonly boolean[],
  ) {
    const outcomes: string[] = [];
    const digests: string[] = [];
    let digest = GENESIS_DIGEST;
    let pending = new Overlay(store);
    steps.forEach((step, i) => {
      const outcome = applyCall(pending, ctxOf(step), step.call);
      if (outcome.kind !== 'foreign') {
        for (const w of outcome.writes ?? []) {
          if (w.value === null) pending.delete(w.key);
          else pending.put(w.key, w.value);
        }
      }
      outcomes.push(outcomeText(outcome));
      const last = i === steps.length - 1;
      const endOfGroup = last || (cuts === undefined ? steps[i + 1]!.block !== step.block : cuts[i] === true);
      if (endOfGroup) {
        const writes = pending.writes();
        commit(writes);
        if (cuts === undefined) {
          digest = nextDigest(digest, step.block, writes);
          digests.push(digest);
        }
        pending = new Overlay(store);
      }
    });
    return { outcomes, digests };
  }

  /** One SQLite file for the whole property, emptied before each run (opening a file per run costs more than the run). */
  function openSqlite(): { fresh: () => StateStore; db: Database.Database } {
    const db = new Database(join(dbDir, 'fold.db'));
    // As the indexer opens it, but without waiting for the disk: the file is thrown away.
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = OFF');
    const store = createSqliteState(db);
    return {
      db,
      fresh: () => {
        db.exec('DELETE FROM state');
        expect(store.scan('')).toEqual([]);
        return store;
      },
    };
  }

  it('replays random call sequences identically: memory or SQLite, call by call, block by block or in any chunks', () => {
    const tally = new Map<string, { applied: number; rejected: number }>();
    const sqliteFile = openSqlite();
    onTestFinished(() => {
      sqliteFile.db.close();
    });
    fc.assert(
      fc.property(
        stepsArbitrary().chain((steps) =>
          fc.tuple(
            fc.constant(steps),
            fc.array(fc.boolean(), { minLength: steps.length, maxLength: steps.length }),
          ),
        ),
        ([steps, cuts]) => {
          // (a) call by call on memory: purity, all-or-nothing, and the invariants after every call.
          const byCall = createMemoryState();
          const a = foldCallByCall(byCall, steps, (step, outcome) => {
            const t = tally.get(step.call.name) ?? { applied: 0, rejected: 0 };
            if (outcome.kind === 'applied') t.applied++;
            else t.rejected++;
            tally.set(step.call.name, t);
            checkInvariants(byCall);
          });

          // (b) block by block, as the indexer does, on memory and on an SQLite file: same outcomes, same digest
          // chain, same final state — and the same as call by call.
          const memory = createMemoryState();
          const b1 = foldGrouped(memory, steps);
          const sqlite = sqliteFile.fresh();
          const b2 = foldGrouped(
            sqlite,
            steps,
            sqliteFile.db.transaction((w: StateWrite[]) => sqlite.apply(w)),
          );
          expect(b2.outcomes).toEqual(b1.outcomes);
          expect(b2.digests).toEqual(b1.digests);
          expect(sqlite.scan('')).toEqual(memory.scan(''));
          expect(b1.outcomes).toEqual(a.outcomes);
          expect(b1.digests).toEqual(a.digests);
          expect(memory.scan('')).toEqual(byCall.scan(''));

          // (c) the same calls at the same block numbers, committed in other chunks: the same state.
          const chunked = createMemoryState();
          const c = foldGrouped(chunked, steps, undefined, cuts);
          expect(c.outcomes).toEqual(a.outcomes);
          expect(chunked.scan('')).toEqual(byCall.scan(''));
        },
      ),
      { numRuns: 80, examples: [[[scripted(), scripted().map((_, i) => i % 3 === 0)]]] },
    );
    // The generator must reach every rule both ways, or the property says little.
    for (const name of Object.keys(CALL_SCHEMAS)) {
      const t = tally.get(name);
      // A valid audit proof, and a hold on a network that draws placements, are applied in their own tests
      // (test/chain/audit*.test.ts, test/chain/placement-rules.test.ts).
      if (name !== 'audit.submitResult' && name !== 'placement.holdTicket')
        expect(t?.applied ?? 0, `${name} applied`).toBeGreaterThan(0);
      expect(t?.rejected ?? 0, `${name} rejected`).toBeGreaterThan(0);
    }
  });
});

/**
 * What must hold after every call, whatever the sequence: one miner holds at most one column of a file, the
 * minerFiles and ownerFiles indexes agree with the files, orders belong to the column's holder, peer ids map back.
 */
function checkInvariants(state: StateStore): void {
  const entries = new Map(state.scan(''));
  const files = state.scan('fileBank/files/') as [string, FileInfo][];
  for (const [key, file] of files) {
    const fid = key.slice('fileBank/files/'.length);
    const held = file.placements.filter((p): p is string => p !== null);
    expect(new Set(held).size, `distinct holders of ${fid}`).toBe(held.length);
    expect(file.state === 'Active', `state of ${fid}`).toBe(held.length === file.placements.length);
    expect(file.activeAt === null).toBe(file.state === 'Pending');
    file.placements.forEach((p, i) => {
      if (p !== null)
        expect(entries.get(`fileBank/minerFiles/${p}/${fid}`), `minerFiles of column ${i}`).toBe(i);
    });
    expect(entries.has(`fileBank/ownerFiles/${file.owner}/${fid}`)).toBe(true);
  }
  for (const [key, index] of state.scan('fileBank/minerFiles/')) {
    const [miner, fid] = key.slice('fileBank/minerFiles/'.length).split('/') as [string, string];
    expect(state.get<FileInfo>(`fileBank/files/${fid}`)?.placements[index as number], key).toBe(miner);
  }
  for (const [key] of state.scan('fileBank/ownerFiles/')) {
    const [owner, fid] = key.slice('fileBank/ownerFiles/'.length).split('/') as [string, string];
    expect(state.get<FileInfo>(`fileBank/files/${fid}`)?.owner, key).toBe(owner);
  }
  // A version names a filed file under its own key, and a versioned key names its newest version (none: a marker).
  const newest = new Map<string, string | null>();
  for (const [key, v] of state.scan('fileBank/versions/') as [string, { fid: string | null }][]) {
    const [owner, bucket, ...rest] = key.slice('fileBank/versions/'.length).split('/') as [string, string];
    const name = rest.join('/').split('\u0000')[0]!;
    if (v.fid !== null) {
      expect(state.get(`fileBank/filed/${v.fid}`), key).toMatchObject({ bucket, key: name });
      expect(state.get(`fileBank/files/${v.fid}`), key).toBeDefined();
    }
    newest.set(`fileBank/entries/${owner}/${bucket}/${name}`, v.fid);
  }
  for (const [entry, fid] of newest) expect(state.get<{ fid: string }>(entry)?.fid ?? null, entry).toBe(fid);
  // A tag deadline runs for a placed column of its holder, and only while the column is not tagged for it.
  for (const [key, column] of state.scan('fileBank/untagged/') as [string, UntaggedColumn][]) {
    const [fid, index] = key.slice('fileBank/untagged/'.length).split('/') as [string, string];
    expect(state.get<FileInfo>(`fileBank/files/${fid}`)?.placements[Number(index)], key).toBe(column.miner);
    expect(state.get(`fileBank/tagged/${fid}/${index}`), key).not.toBe(column.miner);
  }
  for (const [key, order] of state.scan('fileBank/orders/') as [string, RestoralOrder][]) {
    const [fid, index] = key.slice('fileBank/orders/'.length).split('/') as [string, string];
    expect(state.get<FileInfo>(`fileBank/files/${fid}`)?.placements[Number(index)], key).toBe(order.origin);
    expect(order.claimer === null).toBe(order.deadline === null);
  }
  // The operator index mirrors the authorisations exactly.
  const authorisations = state
    .scan('oss/auth/')
    .map(([key]) => key.slice('oss/auth/'.length))
    .sort();
  const byOperator = state
    .scan('oss/owners/')
    .map(([key]) => key.slice('oss/owners/'.length).split('/').reverse().join('/'))
    .sort();
  expect(byOperator).toEqual(authorisations);
  // The pot's books: every open debt owes something, and none is both open and paid.
  for (const [key, debt] of state.scan('pot/debts/') as [string, { amount: string }][]) {
    expect(BigInt(debt.amount) > 0n, key).toBe(true);
    expect(entries.has(key.replace('pot/debts/', 'pot/paid/')), key).toBe(false);
  }
  for (const [key, miner] of state.scan('sminer/peers/')) {
    expect(state.get<MinerInfo>(`sminer/miners/${miner as string}`)?.peerId).toBe(
      key.slice('sminer/peers/'.length),
    );
  }
  for (const [key, miner] of state.scan('sminer/miners/') as [string, MinerInfo][]) {
    expect(state.get(`sminer/peers/${miner.peerId}`)).toBe(key.slice('sminer/miners/'.length));
  }
  for (const [key, task] of state.scan('provenance/tasks/') as [string, TaskInfo][]) {
    expect(state.scan(`provenance/rounds/${key.slice('provenance/tasks/'.length)}/`)).toHaveLength(
      task.rounds,
    );
  }
  // The market: its state belongs to declared, encrypted files; the retrieval counter counts the retrievals; an open
  // request asks for a key its reader cannot unwrap yet.
  for (const [key, value] of state.scan('market/')) {
    const [, map, fid, rest] = key.split('/') as [string, string, string, string | undefined];
    const file = state.get<FileInfo>(`fileBank/files/${fid}`);
    expect(file?.encryption, `${key} belongs to an encrypted file`).toBeTruthy();
    if (map === 'seq') expect(state.scan(`market/retrievals/${fid}/`), key).toHaveLength(value as number);
    if (map === 'requests') {
      const open = value as OpenRequest;
      expect(
        file!.encryption!.wraps.map((w) => w.recipient),
        key,
      ).not.toContain(open.readerKey);
      expect(state.get<Grant>(`market/grants/${fid}/${rest}`)?.wrap.recipient, key).not.toBe(open.readerKey);
      expect(state.get(`market/retrievals/${fid}/${String(open.seq).padStart(10, '0')}`), key).toBeDefined();
    }
  }
  for (const [key] of state.scan('market/retrievals/')) {
    expect(state.get(`market/seq/${key.split('/')[2]}`), key).toBeDefined();
  }
}
