import fc from 'fast-check';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { FileInfo } from '../../src/chain/pallets/file-bank.ts';
import { entriesOf, versionsOf } from '../../src/chain/queries.ts';
import { type Account, accountsReady } from '../../src/shared/account.ts';
import {
  buySpace,
  call,
  createHarness,
  ctxAt,
  type Declaration,
  expectApplied,
  expectRejected,
  type Harness,
  makeAccounts,
  makeDeclaration,
  makeReceipt,
  registerMiner,
} from './helpers.ts';

// S3 bucket versioning and legal holds as the chain's rules keep them (fileBank.putVersioning, putDeleteMarker,
// removeDeleteMarker, putLegalHold), on the in-memory state; the gateway's S3 API over them is tested with the AWS
// SDK in test/integration/gateway-s3.test.ts.

const WIDTH = 3; // 2 data + 1 parity: three receipts per object keep the property fast
let miners: Account[];
let owner: Account;
let operator: Account;

beforeAll(async () => {
  await accountsReady();
  miners = makeAccounts('versioning/miner', WIDTH);
  [owner, operator] = makeAccounts('versioning/user', 2) as [Account, Account];
});

let h: Harness;
let labels = 0;
beforeEach(() => {
  h = createHarness();
  for (const m of miners) expectApplied(h, m.address, registerMiner(m), { paidToPot: 1000n });
  buySpace(h, owner.address);
});

const fileOf = (fid: string) => h.state.get<FileInfo>(`fileBank/files/${fid}`);
const bucket = (name: string, o: { objectLock?: boolean } = {}) =>
  expectApplied(h, owner.address, call('fileBank.createBucket', { name, ...o }));
const versioning = (name: string, status: 'Enabled' | 'Suspended') =>
  call('fileBank.putVersioning', { name, status });

/** Declares and completes a new object under `key` of `name`, in one block as the client does; returns its fid. */
function store(name: string, key: string, extra: Partial<Declaration['entry']> = {}): string {
  labels += 1;
  const d = {
    ...makeDeclaration(`versioning/${labels}`, owner.address, { data: 2, parity: 1, segments: 1 }),
    entry: { bucket: name, key, ...extra },
  };
  expectApplied(h, owner.address, call('fileBank.uploadDeclaration', d));
  expectApplied(
    h,
    owner.address,
    call('fileBank.transferReport', { fid: d.fid, receipts: miners.map((m, i) => makeReceipt(m, d, i)) }),
    { block: h.block },
  );
  return d.fid;
}

/** A bucket's versions as [key, id, fid] (a marker's id as "marker" unless it is "null"), newest first per key. */
const versions = (name: string) =>
  versionsOf(h.state, owner.address, name).map((v) => [
    v.key,
    v.fid === null && v.id !== 'null' ? 'marker' : v.id,
    v.fid,
  ]);
const current = (name: string) => entriesOf(h.state, owner.address, name).map((e) => [e.key, e.fid]);
const markerId = (name: string, key: string) =>
  versionsOf(h.state, owner.address, name, key).find((v) => v.key === key && v.fid === null)!.id;

describe('bucket versioning', () => {
  it('Enabled: every object a key named stays, newest first; a delete leaves a marker that hides the key', () => {
    bucket('docs');
    expectApplied(h, owner.address, versioning('docs', 'Enabled'));
    const v1 = store('docs', 'report.pdf');
    const v2 = store('docs', 'report.pdf');
    expect(current('docs')).toEqual([['report.pdf', v2]]);
    expect(versions('docs')).toEqual([
      ['report.pdf', v2, v2],
      ['report.pdf', v1, v1],
    ]);
    expect(fileOf(v1)?.state).toBe('Active');

    expectApplied(h, owner.address, call('fileBank.putDeleteMarker', { bucket: 'docs', key: 'report.pdf' }));
    expect(current('docs')).toEqual([]);
    expect(versions('docs')[0]).toEqual(['report.pdf', 'marker', null]);
    expect(versionsOf(h.state, owner.address, 'docs')[0]?.latest).toBe(true);
    // Not empty while it keeps versions, delete markers among them.
    expectRejected(
      h,
      owner.address,
      call('fileBank.deleteBucket', { name: 'docs' }),
      /is not empty: it keeps 3 versions/,
    );

    // Removing the marker brings the newest object back; deleting that version brings the one before.
    const id = markerId('docs', 'report.pdf');
    expect(id).toMatch(/^m\d+\.\d+$/);
    expectApplied(
      h,
      owner.address,
      call('fileBank.removeDeleteMarker', { bucket: 'docs', key: 'report.pdf', versionId: id }),
    );
    expect(current('docs')).toEqual([['report.pdf', v2]]);
    expectApplied(h, owner.address, call('fileBank.deleteFile', { fid: v2 }));
    expect(fileOf(v2)).toBeUndefined();
    expect(current('docs')).toEqual([['report.pdf', v1]]);
    expectApplied(h, owner.address, call('fileBank.deleteFile', { fid: v1 }));
    expect(versions('docs')).toEqual([]);
    expectApplied(h, owner.address, call('fileBank.deleteBucket', { name: 'docs' }));
  });

  it('an object from before versioning is the key\u2019s "null" version and stays when a new one comes', () => {
    bucket('docs');
    const v0 = store('docs', 'a');
    expect(versions('docs')).toEqual([['a', 'null', v0]]);
    expectApplied(h, owner.address, versioning('docs', 'Enabled'));
    const v1 = store('docs', 'a');
    expect(versions('docs')).toEqual([
      ['a', v1, v1],
      ['a', 'null', v0],
    ]);
    expect(fileOf(v0)?.state).toBe('Active');
  });

  it('Suspended: a write replaces only the key\u2019s "null" version; the versions before stay', () => {
    bucket('docs');
    expectApplied(h, owner.address, versioning('docs', 'Enabled'));
    const kept = store('docs', 'a');
    expectApplied(h, owner.address, versioning('docs', 'Suspended'));
    const n1 = store('docs', 'a');
    const n2 = store('docs', 'a');
    expect(fileOf(n1)).toBeUndefined();
    expect(versions('docs')).toEqual([
      ['a', 'null', n2],
      ['a', kept, kept],
    ]);
    // A delete replaces the "null" object with a "null" marker.
    expectApplied(h, owner.address, call('fileBank.putDeleteMarker', { bucket: 'docs', key: 'a' }));
    expect(fileOf(n2)).toBeUndefined();
    expect(versions('docs')).toEqual([
      ['a', 'null', null],
      ['a', kept, kept],
    ]);
    expect(current('docs')).toEqual([]);
  });

  it('refuses what S3 refuses, and what the caller may not do', () => {
    bucket('plain');
    bucket('vault', { objectLock: true });
    expectRejected(
      h,
      owner.address,
      call('fileBank.putDeleteMarker', { bucket: 'plain', key: 'x' }),
      /not versioned: delete the object itself/,
    );
    expectRejected(
      h,
      owner.address,
      versioning('vault', 'Suspended'),
      /object lock: its versioning stays Enabled/,
    );
    expectRejected(h, owner.address, versioning('nowhere', 'Enabled'), /has no bucket nowhere/);
    const forOwner = call('fileBank.putVersioning', {
      name: 'plain',
      status: 'Enabled',
      owner: owner.address,
    });
    expectRejected(h, operator.address, forOwner, /may not configure buckets .* not authorised/);
    expectApplied(h, owner.address, call('oss.authorize', { operator: operator.address }));
    expectApplied(h, operator.address, forOwner);
    expectRejected(
      h,
      owner.address,
      call('fileBank.removeDeleteMarker', { bucket: 'plain', key: 'x', versionId: 'm1.1' }),
      /has no delete marker m1\.1/,
    );
  });

  it('an object-lock bucket is versioned: a new object under a retained key leaves the retained one in place', () => {
    bucket('vault', { objectLock: true });
    const until = ctxAt(owner.address, h.block + 1).block.timestamp + 3_600_000;
    const retained = store('vault', 'ledger', { retention: { mode: 'COMPLIANCE', until } });
    const next = store('vault', 'ledger');
    expect(current('vault')).toEqual([['ledger', next]]);
    expect(fileOf(retained)?.state).toBe('Active');
    expectRejected(
      h,
      owner.address,
      call('fileBank.deleteFile', { fid: retained }),
      /retained \(COMPLIANCE\)/,
    );
  });
});

describe('legal hold', () => {
  it('while on, nobody deletes the object, bypass or not, retention or not; lifted, it goes', () => {
    bucket('vault', { objectLock: true });
    const fid = store('vault', 'evidence');
    const del = call('fileBank.deleteFile', { fid, bypassGovernance: true });
    // The attack the hold stops: the owner (or its operator) deletes what a court asked to keep.
    expectApplied(h, owner.address, call('fileBank.putLegalHold', { fid, on: true }));
    expectRejected(h, owner.address, del, /under a legal hold/);
    expectApplied(h, owner.address, call('oss.authorize', { operator: operator.address }));
    expectRejected(h, operator.address, del, /under a legal hold/);
    expectApplied(h, owner.address, call('fileBank.putLegalHold', { fid, on: false }));
    expect(h.state.get(`fileBank/filed/${fid}`)).not.toHaveProperty('legalHold');
    expectApplied(h, owner.address, del);
  });

  it('set at the declaration, it holds from the start; only in a bucket with object lock', () => {
    bucket('plain');
    bucket('vault', { objectLock: true });
    const held = store('vault', 'held', { legalHold: true });
    expectRejected(h, owner.address, call('fileBank.deleteFile', { fid: held }), /under a legal hold/);
    const plain = store('plain', 'x');
    expectRejected(
      h,
      owner.address,
      call('fileBank.putLegalHold', { fid: plain, on: true }),
      /bucket plain was not made with object lock: its objects cannot carry a legal hold/,
    );
    const d = {
      ...makeDeclaration('versioning/held-plain', owner.address),
      entry: { bucket: 'plain', key: 'y', legalHold: true },
    };
    expectRejected(h, owner.address, call('fileBank.uploadDeclaration', d), /cannot carry a legal hold/);
  });
});

/** What S3 says a bucket holds after a sequence of operations: per key, its versions oldest first. */
interface ModelVersion {
  readonly id: string;
  readonly fid: string | null;
}
type Op =
  | { t: 'put'; key: number }
  | { t: 'delete'; key: number }
  | { t: 'deleteVersion'; key: number; nth: number }
  | { t: 'status'; status: 'Enabled' | 'Suspended' };

describe('versioning, property', () => {
  it('for any sequence of puts, deletes, version deletes and status changes, the chain keeps what S3 would', () => {
    const op: fc.Arbitrary<Op> = fc.oneof(
      { arbitrary: fc.record({ t: fc.constant('put' as const), key: fc.nat(2) }), weight: 4 },
      { arbitrary: fc.record({ t: fc.constant('delete' as const), key: fc.nat(2) }), weight: 2 },
      {
        arbitrary: fc.record({ t: fc.constant('deleteVersion' as const), key: fc.nat(2), nth: fc.nat(3) }),
        weight: 2,
      },
      {
        arbitrary: fc.record({
          t: fc.constant('status' as const),
          status: fc.constantFrom('Enabled' as const, 'Suspended' as const),
        }),
        weight: 1,
      },
    );
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 14 }), (ops) => {
        h = createHarness();
        for (const m of miners) expectApplied(h, m.address, registerMiner(m), { paidToPot: 1000n });
        buySpace(h, owner.address);
        bucket('bkt');
        let status: 'Unversioned' | 'Enabled' | 'Suspended' = 'Unversioned';
        const model = new Map<string, ModelVersion[]>();
        const gone = new Set<string>();
        const dropNull = (list: ModelVersion[]) => {
          const i = list.findIndex((v) => v.id === 'null');
          if (i === -1) return list;
          if (list[i]!.fid !== null) gone.add(list[i]!.fid!);
          return list.filter((_, j) => j !== i);
        };
        for (const o of ops) {
          if (o.t === 'status') {
            expectApplied(h, owner.address, versioning('bkt', o.status));
            status = o.status;
            continue;
          }
          const key = `k${o.key}`;
          const list = model.get(key) ?? [];
          if (o.t === 'put') {
            const fid = store('bkt', key);
            if (status === 'Enabled') model.set(key, [...list, { id: fid, fid }]);
            else model.set(key, [...dropNull(list), { id: 'null', fid }]);
          } else if (o.t === 'delete') {
            if (status === 'Unversioned') {
              const fid = list[0]?.fid;
              if (fid === undefined || fid === null) continue;
              expectApplied(h, owner.address, call('fileBank.deleteFile', { fid }));
              gone.add(fid);
              model.set(key, []);
            } else {
              expectApplied(h, owner.address, call('fileBank.putDeleteMarker', { bucket: 'bkt', key }));
              const marker = { id: status === 'Suspended' ? 'null' : 'marker', fid: null };
              model.set(key, [...(status === 'Suspended' ? dropNull(list) : list), marker]);
            }
          } else {
            const target = list[list.length - 1 - o.nth];
            if (target === undefined) continue;
            if (target.fid === null) {
              const actual = versionsOf(h.state, owner.address, 'bkt', key).filter((v) => v.key === key)[
                o.nth
              ]!;
              expect(actual.fid).toBeNull();
              expectApplied(
                h,
                owner.address,
                call('fileBank.removeDeleteMarker', { bucket: 'bkt', key, versionId: actual.id }),
              );
            } else {
              expectApplied(h, owner.address, call('fileBank.deleteFile', { fid: target.fid }));
              gone.add(target.fid);
            }
            model.set(
              key,
              list.filter((v) => v !== target),
            );
          }
        }
        const expected = [...model.entries()]
          .sort(([a], [b]) => (a < b ? -1 : 1))
          .flatMap(([key, list]) => [...list].reverse().map((v) => [key, v.id, v.fid]));
        expect(versions('bkt')).toEqual(expected);
        const named = [...model.entries()]
          .sort(([a], [b]) => (a < b ? -1 : 1))
          .filter(([, list]) => list.at(-1)?.fid != null)
          .map(([key, list]) => [key, list.at(-1)!.fid]);
        expect(current('bkt')).toEqual(named);
        for (const fid of gone) expect(fileOf(fid), fid).toBeUndefined();
        for (const list of model.values())
          for (const v of list) if (v.fid !== null) expect(fileOf(v.fid)?.state).toBe('Active');
      }),
      { numRuns: 60 },
    );
  });
});
