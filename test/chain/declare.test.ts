import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ProtocolCall } from '../../src/chain/calls.ts';
import { declarationCalls, MAX_DECLARATION_BYTES, MAX_DECLARED_SEGMENTS } from '../../src/chain/declare.ts';
import type { FileInfo } from '../../src/chain/pallets/file-bank.ts';
import { spaceUseOf } from '../../src/chain/pallets/storage-handler.ts';
import { decodeRemark, MAX_REMARK_BYTES } from '../../src/chain/remark.ts';
import { type Account, accountsReady } from '../../src/shared/account.ts';
import {
  buySpace,
  call,
  createHarness,
  type Declaration,
  expectApplied,
  expectRejected,
  type Harness,
  makeAccounts,
  makeDeclaration,
  makeReceipt,
  registerMiner,
} from './helpers.ts';

// A declaration too large for one remark (issue 16: objects over 3.75 GiB): split by the client over several remarks
// of one extrinsic (declarationCalls), taken by the chain only whole and only within the declaring block.

const WIDTH = 12;
let miners: Account[];
let owner: Account;
let stranger: Account;

beforeAll(async () => {
  await accountsReady();
  miners = makeAccounts('declare/miner', WIDTH);
  [owner, stranger] = makeAccounts('declare/user', 2) as [Account, Account];
});

/** A production-shaped declaration: 8 + 4 fragments a segment, encrypted (a tag per segment). */
const big = (label: string, segments: number) =>
  makeDeclaration(label, owner.address, {
    segments,
    encrypted: true,
  });
const receiptsOf = (d: Declaration) => miners.map((m, i) => makeReceipt(m, d, i));
/** The protocol calls a client's extrinsic carries, decoded from its remarks. */
const decoded = (d: Declaration): ProtocolCall[] =>
  declarationCalls(d, receiptsOf(d)).map((c) => {
    if (c.kind !== 'remark') throw new Error('expected remarks only');
    expect(c.payload.byteLength).toBeLessThanOrEqual(MAX_REMARK_BYTES);
    const r = decodeRemark(c.payload);
    if (r.kind !== 'call') throw new Error(`undecodable remark: ${JSON.stringify(r)}`);
    return r.call;
  });

describe('declarationCalls: a declaration in as many remarks as it needs', () => {
  it('a small one is one declaration and the report', () => {
    expect(decoded(big('declare/small', 3)).map((c) => c.name)).toEqual([
      'fileBank.uploadDeclaration',
      'fileBank.transferReport',
    ]);
  });

  it('a large one: the first remark announces the count, the rest follow in order, every segment once', () => {
    const d = big('declare/large', 400);
    const calls = decoded(d);
    expect(calls.length).toBeGreaterThan(3);
    expect(calls[0]!.name).toBe('fileBank.uploadDeclaration');
    expect(calls.at(-1)!.name).toBe('fileBank.transferReport');
    const first = calls[0]!.args as Declaration;
    expect(first.segmentCount).toBe(400);
    const listed = calls.flatMap((c) =>
      c.name === 'fileBank.uploadDeclaration' || c.name === 'fileBank.declareSegments'
        ? (c.args as { segments: Declaration['segments'] }).segments
        : [],
    );
    expect(listed).toEqual(d.segments);
  });

  it(`MAX_DECLARED_SEGMENTS (${MAX_DECLARED_SEGMENTS}) fit one extrinsic; a few hundred more do not, and say so`, () => {
    const max = big('declare/max', MAX_DECLARED_SEGMENTS);
    const calls = declarationCalls(max, receiptsOf(max));
    const bytes = calls.reduce((n, c) => n + (c.kind === 'remark' ? c.payload.byteLength : 0), 0);
    expect(bytes).toBeLessThanOrEqual(MAX_DECLARATION_BYTES);
    const over = big('declare/over', MAX_DECLARED_SEGMENTS + 400);
    expect(() => declarationCalls(over, receiptsOf(over))).toThrow(
      /one extrinsic carries at most .*store the object in smaller parts/,
    );
  });
});

describe('fileBank.declareSegments', () => {
  let h: Harness;
  beforeEach(() => {
    h = createHarness();
    for (const m of miners) expectApplied(h, m.address, registerMiner(m), { paidToPot: 1000n });
    buySpace(h, owner.address);
  });
  const fileOf = (fid: string) => h.state.get<FileInfo>(`fileBank/files/${fid}`);
  /** Applies the client's calls for `d`, all in one block as one extrinsic lands. */
  const land = (d: Declaration, caller = owner.address) => {
    const block = h.block + 1;
    for (const c of decoded(d)) expectApplied(h, caller, c, { block });
  };

  it('the client’s calls land a 400-segment object whole: Active, with every segment, in one block', () => {
    const d = big('declare/land', 400);
    land(d);
    expect(fileOf(d.fid)?.state).toBe('Active');
    expect(fileOf(d.fid)?.segments).toEqual(d.segments);
    expect(h.state.scan('fileBank/declaring/')).toEqual([]);
    // Charged for every segment it announced, not only those of its first remark.
    expect(spaceUseOf(h.state, owner.address).used).toBe(400 * d.profile.segmentSize);
  });

  const split = (d: Declaration, n: number) => ({
    head: call('fileBank.uploadDeclaration', {
      ...d,
      segments: d.segments.slice(0, n),
      segmentCount: d.segments.length,
    }),
    rest: (from: number, to = d.segments.length, o: { deal?: string } = {}) =>
      call('fileBank.declareSegments', {
        fid: d.fid,
        deal: o.deal ?? d.deal,
        segments: d.segments.slice(from, to),
      }),
  });

  it('refuses receipts, other uploads, strangers and later blocks while the segments are incomplete', () => {
    const d = big('declare/attack', 4);
    const { head, rest } = split(d, 2);
    expectApplied(h, owner.address, head);
    const block = h.block;
    // Receipts for a half-listed file: the chain cannot check them against segments it has not seen.
    expectRejected(
      h,
      owner.address,
      call('fileBank.transferReport', { fid: d.fid, receipts: receiptsOf(d) }),
      /lists 2 of its 4 segments: its declaration is incomplete/,
      { block },
    );
    expectRejected(h, stranger.address, rest(2), /may not declare segments for/, { block });
    expectRejected(
      h,
      owner.address,
      rest(2, 4, { deal: 'e'.repeat(32) }),
      /are for upload e+; .* was declared as upload/,
      {
        block,
      },
    );
    expectRejected(h, owner.address, rest(2), /must follow in that block/, { block: block + 1 });
    expectApplied(h, owner.address, rest(2, 3), { block });
    expectRejected(h, owner.address, rest(2, 4), /would list 5 segments; its declaration announced 4/, {
      block,
    });
    expectApplied(h, owner.address, rest(3), { block });
    expectRejected(h, owner.address, rest(3), /awaits no segments: it is complete/, { block });
    expectApplied(
      h,
      owner.address,
      call('fileBank.transferReport', { fid: d.fid, receipts: receiptsOf(d) }),
      { block },
    );
    expect(fileOf(d.fid)?.state).toBe('Active');
  });

  it('segments that do not give the fid are refused at the last of them; the half declaration is replaced later', () => {
    const d = big('declare/forged', 3);
    const other = big('declare/other', 3);
    const { head } = split(d, 1);
    expectApplied(h, owner.address, head);
    const block = h.block;
    expectRejected(
      h,
      owner.address,
      call('fileBank.declareSegments', { fid: d.fid, deal: d.deal, segments: other.segments.slice(1) }),
      /the segment hashes give fid .*, not /,
      { block },
    );
    // Left half-listed past its block, it blocks nobody: the next declaration of the fid replaces it.
    expect(fileOf(d.fid)?.state).toBe('Pending');
    land(d);
    expect(fileOf(d.fid)?.state).toBe('Active');
  });

  it('a count below the segments listed, or tags for another count, is refused', () => {
    const d = big('declare/count', 3);
    expectRejected(
      h,
      owner.address,
      call('fileBank.uploadDeclaration', { ...d, segmentCount: 2 }),
      /segmentCount 2 is less than the 3 segments listed/,
    );
    expectRejected(
      h,
      owner.address,
      call('fileBank.uploadDeclaration', { ...d, segments: d.segments.slice(0, 1), segmentCount: 4 }),
      /encryption lists 3 tags for 4 segments/,
    );
  });
});
