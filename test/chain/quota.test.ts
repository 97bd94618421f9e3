import fc from 'fast-check';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type FileInfo, fileKey, ownerFilesPrefix } from '../../src/chain/pallets/file-bank.ts';
import { GIB, spaceTakenBy, spaceUseOf } from '../../src/chain/pallets/storage-handler.ts';
import type { StateReader } from '../../src/chain/state.ts';
import { type Account, accountsReady } from '../../src/shared/account.ts';
import {
  call,
  createHarness,
  type Declaration,
  expectApplied,
  expectRejected,
  type Harness,
  hex,
  makeAccounts,
  makeDeclaration,
  makeReceipt,
  POT,
  registerMiner,
} from './helpers.ts';

// Storage space as a quota (issue 16 §5): every declaration debits its owner by the segments it declares, removal
// credits them back, and nobody stores beyond what was bought — not the owner, not its operator. Each attack below
// succeeded before quotas (declarations debited nothing).

const MiB = 1024 ** 2;
const SEGMENT = 256 * MiB;

let miners: Account[];
let owner: Account;
let operator: Account;
let other: Account;

beforeAll(async () => {
  await accountsReady();
  miners = makeAccounts('quota/miner', 12);
  [owner, operator, other] = makeAccounts('quota/user', 3) as [Account, Account, Account];
});

/** A declaration of `segments` segments of 256 MiB (it takes segments × 256 MiB), filed under `key` if given. */
const file = (label: string, who: string, segments: number, key?: string): Declaration => ({
  ...makeDeclaration(label, who, { segments, segmentSize: SEGMENT }),
  ...(key === undefined ? {} : { entry: { bucket: 'b-0', key } }),
});
const declare = (d: Declaration) => call('fileBank.uploadDeclaration', d);
const complete = (d: Declaration) =>
  call('fileBank.transferReport', { fid: d.fid, receipts: miners.map((m, i) => makeReceipt(m, d, i)) });
const remove = (d: Declaration) => call('fileBank.deleteFile', { fid: d.fid });
const buy = (h: Harness, gib: number, who: Account, forOwner?: string) =>
  expectApplied(
    h,
    who.address,
    call('storageHandler.buySpace', forOwner === undefined ? { gib } : { gib, owner: forOwner }),
    { payments: [{ to: POT, amount: BigInt(gib) * 100n }] },
  );

/** Declares and completes `d` as `caller` (default: its owner), in two blocks. */
function store(h: Harness, d: Declaration, caller = d.owner): void {
  expectApplied(h, caller, declare(d));
  expectApplied(h, caller, complete(d));
}

/** What the owner's files on chain take, summed: what the `used` counter must equal. */
function takenByFilesOf(state: StateReader, account: string): number {
  return state
    .scan(ownerFilesPrefix(account))
    .map(([key]) => state.get<FileInfo>(fileKey(key.slice(ownerFilesPrefix(account).length)))!)
    .reduce((sum, f) => sum + spaceTakenBy(f.segments.length, f.profile), 0);
}

describe('storage space is a quota', () => {
  let h: Harness;
  beforeEach(() => {
    h = createHarness();
    for (const m of miners) expectApplied(h, m.address, registerMiner(m), { paidToPot: 1000n });
    expectApplied(h, owner.address, call('fileBank.createBucket', { name: 'b-0' }));
  });

  it('a file takes its segments at full size, whatever its byte size', () => {
    const d = file('tiny', owner.address, 1);
    expect(d.size).toBe(1);
    expect(spaceTakenBy(d.segments.length, d.profile)).toBe(SEGMENT);
  });

  it('attack: an account stores beyond its bought space — refused with what was asked, what is left, what to do', () => {
    expectRejected(h, owner.address, declare(file('none', owner.address, 1)), /storage space exceeded/);
    buy(h, 1, owner);
    store(h, file('a', owner.address, 2));
    store(h, file('b', owner.address, 2));
    expect(spaceUseOf(h.state, owner.address)).toEqual({ bought: GIB, used: GIB, left: 0 });
    const reason = expectRejected(h, owner.address, declare(file('c', owner.address, 1)), /./);
    expect(reason).toMatch(/^storage space exceeded: /);
    expect(reason).toContain('takes 256.00 MiB (268435456 B)');
    expect(reason).toContain('has 0 B (0 B) left of 1.00 GiB bought');
    expect(reason).toContain(`ailink space buy GIB --for ${owner.address}`);
    // More space, and the same declaration applies.
    buy(h, 1, owner);
    store(h, file('c', owner.address, 1));
    expect(spaceUseOf(h.state, owner.address).used).toBe(GIB + SEGMENT);
  });

  it('attack: a declaration left Pending still holds its space (no free staging), until deleted', () => {
    buy(h, 1, owner);
    const pending = file('pending', owner.address, 4);
    expectApplied(h, owner.address, declare(pending));
    expectRejected(h, owner.address, declare(file('more', owner.address, 1)), /storage space exceeded/);
    expectApplied(h, owner.address, remove(pending));
    expect(spaceUseOf(h.state, owner.address).used).toBe(0);
    store(h, file('more', owner.address, 4));
  });

  it('deleting then storing again frees and reuses the space exactly', () => {
    buy(h, 1, owner);
    const a = file('a', owner.address, 3);
    const b = file('b', owner.address, 1);
    store(h, a);
    store(h, b);
    for (let i = 0; i < 3; i++) {
      expectApplied(h, owner.address, remove(a));
      expect(spaceUseOf(h.state, owner.address)).toEqual({ bought: GIB, used: SEGMENT, left: 3 * SEGMENT });
      store(h, { ...a, deal: hex(`a/deal/${i}`).slice(0, 32) });
      expect(spaceUseOf(h.state, owner.address).left).toBe(0);
    }
    expectRejected(h, owner.address, declare(file('one-more', owner.address, 1)), /storage space exceeded/);
  });

  it("attack: an operator stores for an owner beyond the owner's space — its own space does not count", () => {
    buy(h, 1, owner);
    buy(h, 10, operator);
    expectApplied(h, owner.address, call('oss.authorize', { operator: operator.address }));
    store(h, file('by-operator', owner.address, 3), operator.address);
    expect(spaceUseOf(h.state, owner.address).used).toBe(3 * SEGMENT);
    expect(spaceUseOf(h.state, operator.address).used).toBe(0);
    expectRejected(
      h,
      operator.address,
      declare(file('too-much', owner.address, 2)),
      new RegExp(`storage space exceeded: .* of ${owner.address}'s space, which has 256.00 MiB`),
    );
    // A sponsor (here the operator) may buy the owner more: then it fits.
    buy(h, 1, operator, owner.address);
    store(h, file('too-much', owner.address, 2), operator.address);
  });

  it('attack: an abandoned declaration replaced by a new one neither leaks nor counts twice', () => {
    buy(h, 1, owner);
    buy(h, 1, other);
    const d = file('shared', owner.address, 2);
    expectApplied(h, owner.address, declare(d));
    expect(spaceUseOf(h.state, owner.address).used).toBe(2 * SEGMENT);
    // The owner declares the same fid again (its upload failed): the abandoned one is credited, the new one debited.
    expectApplied(h, owner.address, declare({ ...d, deal: hex('retry').slice(0, 32) }));
    expect(spaceUseOf(h.state, owner.address).used).toBe(2 * SEGMENT);
    // Another account that holds the same bytes stores them: the abandoned declaration's owner gets its space back.
    store(h, { ...d, owner: other.address, deal: hex('other').slice(0, 32) });
    expect(spaceUseOf(h.state, owner.address).used).toBe(0);
    expect(spaceUseOf(h.state, other.address).used).toBe(2 * SEGMENT);
    // Declaring it again is refused (Active): nothing debited.
    expectRejected(h, owner.address, declare(d), /already stored/);
    expect(spaceUseOf(h.state, owner.address).used).toBe(0);
  });

  it('attack: overwriting a key credits the object it named', () => {
    buy(h, 1, owner);
    store(h, file('v1', owner.address, 2, 'k'));
    store(h, file('v2', owner.address, 1, 'k'));
    expect(spaceUseOf(h.state, owner.address).used).toBe(SEGMENT);
    store(h, file('v3', owner.address, 3, 'k'));
    expect(spaceUseOf(h.state, owner.address).used).toBe(3 * SEGMENT);
    // Until the new object completes, both are held: an overwrite needs room for both.
    expectRejected(h, owner.address, declare(file('v4', owner.address, 2, 'k')), /storage space exceeded/);
    expect(takenByFilesOf(h.state, owner.address)).toBe(3 * SEGMENT);
  });

  it('a file declared before quotas (no charge recorded) is credited nothing when removed', () => {
    buy(h, 1, owner);
    const old = file('old', owner.address, 2);
    store(h, old);
    // As a chain indexed before quotas holds it: no `charged`, no counter.
    const { charged: _, ...before } = h.state.get<FileInfo>(fileKey(old.fid))!;
    h.state.apply([
      { key: fileKey(old.fid), value: before },
      { key: `storageHandler/used/${owner.address}`, value: null },
    ]);
    store(h, file('new', owner.address, 1));
    expectApplied(h, owner.address, remove(old));
    expect(spaceUseOf(h.state, owner.address).used).toBe(SEGMENT);
  });
});

type QuotaOp =
  | { t: 'declare'; file: number; owner: number; byOperator: boolean; key: number | null }
  | { t: 'complete' | 'delete'; file: number }
  | { t: 'buy'; owner: number };

describe('property: used is what the live files take, and never more than bought', () => {
  it('holds for any sequence of declarations, completions, deletions and overwrites', () => {
    const ops = fc.array(
      fc.oneof(
        {
          arbitrary: fc.record({
            t: fc.constant('declare' as const),
            file: fc.nat(5),
            owner: fc.nat(1),
            byOperator: fc.boolean(),
            key: fc.constantFrom(null, 0, 1),
          }),
          weight: 4,
        },
        { arbitrary: fc.record({ t: fc.constant('complete' as const), file: fc.nat(5) }), weight: 4 },
        { arbitrary: fc.record({ t: fc.constant('delete' as const), file: fc.nat(5) }), weight: 2 },
        { arbitrary: fc.record({ t: fc.constant('buy' as const), owner: fc.nat(1) }), weight: 1 },
      ),
      { maxLength: 24 },
    );
    fc.assert(
      fc.property(ops, (sequence: QuotaOp[]) => {
        const h = createHarness();
        for (const m of miners) h.submit(m.address, registerMiner(m), { paidToPot: 1000n });
        const owners = [owner, other];
        for (const o of owners) {
          h.submit(o.address, call('oss.authorize', { operator: operator.address }));
          h.submit(o.address, call('fileBank.createBucket', { name: 'b-0' }));
          buy(h, 1, o);
        }
        // Files 0–5 take 1, 2, 3, 1, 2, 3 segments of 256 MiB; the latest declaration of each is what completes.
        const declared = new Map<number, Declaration>();
        sequence.forEach((op, step) => {
          if (op.t === 'buy') buy(h, 1, owners[op.owner]!);
          else if (op.t === 'declare') {
            const o = owners[op.owner]!;
            const d = {
              ...file(
                `p/${op.file}`,
                o.address,
                1 + (op.file % 3),
                op.key === null ? undefined : `k${op.key}`,
              ),
              deal: hex(`p/deal/${step}`).slice(0, 32),
            };
            if (h.submit(op.byOperator ? operator.address : o.address, declare(d)).kind === 'applied')
              declared.set(op.file, d);
          } else {
            const d = declared.get(op.file);
            if (d !== undefined) h.submit(d.owner, op.t === 'complete' ? complete(d) : remove(d));
          }
          for (const o of [...owners, operator]) {
            const use = spaceUseOf(h.state, o.address);
            expect(use.used).toBe(takenByFilesOf(h.state, o.address));
            expect(use.used).toBeLessThanOrEqual(use.bought);
          }
        });
      }),
      { numRuns: 60 },
    );
  });
});
