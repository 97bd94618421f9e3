import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { PeerRef } from '../../src/p2p/index.ts';
import { createMemoryRegistry, openSqliteRegistry } from '../../src/storage/client/registry.ts';
import { TEST_PROFILE } from '../../src/storage/object/profile.ts';
import {
  type ObjectRecord,
  ObjectRecordSchema,
  type ObjectRegistry,
  type ObjectSummary,
  type PlacedColumn,
} from '../../src/storage/object/record.ts';
import { rejectsWith, sha256Hex } from './helpers.ts';

// One contract, two implementations: the in-memory twin (unit tests) and the SQLite file (offline networks). The
// chain registry implements it too, against a real chain (test/integration/chain-storage.test.ts).
// Every test here runs against both; only persistence across close + reopen is SQLite's alone.

const COLUMNS = TEST_PROFILE.dataFragments + TEST_PROFILE.parityFragments;
const hex = (label: string): string => sha256Hex(new TextEncoder().encode(label));

interface RecordSpec {
  readonly seed: string;
  readonly createdAt?: number;
  readonly segments?: number;
  readonly encrypted?: boolean;
  readonly name?: string;
  readonly size?: number;
}

/** A valid ObjectRecord (checked against ObjectRecordSchema), deterministic in `seed`. */
const OTHER_OWNER = '5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty';

function makeRecord(spec: RecordSpec): ObjectRecord {
  const segments = Array.from({ length: spec.segments ?? 2 }, (_, s) => ({
    hash: hex(`${spec.seed}/segment/${s}`),
    fragments: Array.from({ length: COLUMNS }, (_, c) => hex(`${spec.seed}/segment/${s}/fragment/${c}`)),
  }));
  const record: ObjectRecord = {
    version: 1,
    fid: hex(`${spec.seed}/fid`),
    size: spec.size ?? 100_000,
    ...(spec.name === undefined ? {} : { name: spec.name }),
    owner: '5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY',
    createdAt: spec.createdAt ?? 1_700_000_000_000,
    profile: { ...TEST_PROFILE },
    segments,
    encryption: spec.encrypted
      ? {
          alg: 'aes-256-gcm',
          tags: segments.map((_, i) => hex(`${spec.seed}/tag/${i}`).slice(0, 32)),
          wraps: [0, 1].map((r) => ({
            recipient: hex(`${spec.seed}/recipient/${r}`),
            ephemeral: hex(`${spec.seed}/ephemeral/${r}`),
            sealed: (hex(`${spec.seed}/sealed/${r}`) + hex(`${spec.seed}/sealed2/${r}`)).slice(0, 96),
          })),
        }
      : null,
  };
  // The builder must only produce records the schema accepts: a failure here is a broken fixture, not a finding.
  return ObjectRecordSchema.parse(record);
}

/** Twelve distinct miner ids, deliberately not in sorted order so that "column order" cannot pass by accident. */
const minersFor = (tag: string): string[] =>
  Array.from({ length: COLUMNS }, (_, i) => `12D3KooW-${tag}-${String(COLUMNS - i).padStart(2, '0')}`);

const peerOf = (peerId: string): PeerRef => ({ peerId, addrs: [`/ip4/127.0.0.1/tcp/4001/p2p/${peerId}`] });
/** `declare`'s columns for these miner ids, in column order. */
const placed = (miners: readonly string[]): PlacedColumn[] => miners.map((m) => ({ peer: peerOf(m) }));
/** `reassign`'s moves: column → the miner that takes it. */
const moves = (entries: readonly (readonly [number, string])[]): Map<number, PeerRef> =>
  new Map(entries.map(([column, miner]) => [column, peerOf(miner)] as const));
const DEAL = 'ab'.repeat(16);

/** A `rebuild` callback that records how often it ran, and what the registry said while it ran. */
function rebuildSpy(during?: () => Promise<unknown>) {
  const spy = {
    calls: 0,
    seen: [] as unknown[],
    rebuild: async (): Promise<void> => {
      spy.calls++;
      if (during) spy.seen.push(await during());
    },
  };
  return spy;
}
const noRebuild = async (): Promise<void> => {};

const summary = (r: ObjectRecord): ObjectSummary => ({
  fid: r.fid,
  size: r.size,
  name: r.name,
  owner: r.owner,
  segments: r.segments.length,
  encrypted: r.encryption !== null,
  createdAt: r.createdAt,
});

interface Harness {
  readonly registry: ObjectRegistry;
  /** Closes the current registry and opens the same store again (persistent implementations only). */
  readonly reopen?: () => Promise<ObjectRegistry>;
}

/** Opens a fresh, empty registry whose miner directory is `directory` (the implementation's default without it). */
type Open = (directory?: () => readonly PeerRef[]) => Harness;

function registryContract(name: string, open: Open, persistent: boolean): void {
  // Only persistent implementations promise to survive a restart; for the in-memory twin the test is not registered.
  const itIfPersistent = persistent ? it : ((() => {}) as unknown as typeof it);
  describe(`ObjectRegistry contract: ${name}`, () => {
    let harness: Harness;
    let registry: ObjectRegistry;
    /** What the directory function returns right now; tests change it. */
    let listed: PeerRef[];

    beforeEach(() => {
      listed = [];
      harness = open(() => listed);
      registry = harness.registry;
    });
    afterEach(() => registry.close());

    it('declare then get returns the record and the 12 miners in column order', async () => {
      const plain = makeRecord({ seed: 'plain', segments: 3, name: 'weights.bin' });
      const sealed = makeRecord({ seed: 'sealed', segments: 1, encrypted: true });
      const miners = minersFor('a');
      await registry.declare(plain, DEAL, placed(miners));
      await registry.declare(sealed, DEAL, placed(minersFor('b')));

      const got = await registry.get(plain.fid);
      expect(got).not.toBeNull();
      expect(got!.record).toStrictEqual(plain);
      expect(got!.miners).toStrictEqual(miners);
      expect(got!.miners).toHaveLength(12);

      const gotSealed = await registry.get(sealed.fid);
      expect(gotSealed!.record).toStrictEqual(sealed);
      expect(gotSealed!.miners).toStrictEqual(minersFor('b'));
    });

    it('declaring the same object again changes nothing; another object of the same fid is OBJECT_TAKEN', async () => {
      const first = makeRecord({ seed: 'same', createdAt: 1000, name: 'first' });
      await registry.declare(first, DEAL, placed(minersFor('first')));
      // The same object (fid, size, tags) under another name and time: the first declaration stands, placements too.
      const again = makeRecord({ seed: 'same', createdAt: 2000, name: 'again' });
      await registry.declare(again, 'cd'.repeat(16), placed(minersFor('second')));
      await registry.declare(first, DEAL, placed(minersFor('third')));
      // Another size under the fid is another object stored alike (zeros at the end): refused, not given the first.
      const other = makeRecord({ seed: 'same', createdAt: 3000, name: 'other', size: 7 });
      await rejectsWith(registry.declare(other, DEAL, placed(minersFor('fourth'))), 'OBJECT_TAKEN');

      expect(await registry.get(first.fid)).toStrictEqual({ record: first, miners: minersFor('first') });
      expect(await registry.list()).toStrictEqual([summary(first)]);
    });

    it('the same fid declared by another owner → OBJECT_TAKEN naming the owner, and the first stands', async () => {
      const first = makeRecord({ seed: 'taken', name: 'first' });
      await registry.declare(first, DEAL, placed(minersFor('first')));
      const other = { ...makeRecord({ seed: 'taken', name: 'other' }), owner: OTHER_OWNER };
      const err = await rejectsWith(
        registry.declare(other, DEAL, placed(minersFor('other'))),
        'OBJECT_TAKEN',
      );
      expect(err.message).toContain(`already stored by ${first.owner}`);
      expect(await registry.get(first.fid)).toStrictEqual({ record: first, miners: minersFor('first') });
    });

    it('declare with 11 or 13 miners → INVALID_INPUT and nothing is stored', async () => {
      const record = makeRecord({ seed: 'short' });
      const err = await rejectsWith(
        registry.declare(record, DEAL, placed(minersFor('x').slice(0, 11))),
        'INVALID_INPUT',
      );
      expect(err.message).toMatch(/12/);
      await rejectsWith(
        registry.declare(record, DEAL, placed([...minersFor('x'), 'one-too-many'])),
        'INVALID_INPUT',
      );
      await rejectsWith(registry.declare(record, DEAL, []), 'INVALID_INPUT');
      expect(await registry.get(record.fid)).toBeNull();
      expect(await registry.list()).toStrictEqual([]);
    });

    it('declare with a duplicate miner → INVALID_INPUT and nothing is stored', async () => {
      const record = makeRecord({ seed: 'dup' });
      const miners = minersFor('d');
      miners[7] = miners[2]!; // still 12 entries, only 11 distinct
      await rejectsWith(registry.declare(record, DEAL, placed(miners)), 'INVALID_INPUT');
      expect(await registry.get(record.fid)).toBeNull();
      expect(await registry.list()).toStrictEqual([]);
      // ...and a later valid declaration of the same fid is not blocked by the refused one.
      await registry.declare(record, DEAL, placed(minersFor('ok')));
      expect((await registry.get(record.fid))!.miners).toStrictEqual(minersFor('ok'));
    });

    it('needs no receipts, and accepts columns that carry them all the same', async () => {
      expect(registry.needsReceipts).toBe(false);
      const record = makeRecord({ seed: 'receipts' });
      const miners = minersFor('rc');
      const columns = miners.map((m, i) => ({
        peer: peerOf(m),
        receipt: { miner: `5Miner${i}`, signature: hex(`receipt/${i}`) },
      }));
      await registry.declare(record, DEAL, columns);
      expect(await registry.get(record.fid)).toStrictEqual({ record, miners });
    });

    it('directory() lists what the directory function returns, read afresh on every call', async () => {
      expect(await registry.directory()).toStrictEqual([]);
      const peers = minersFor('dir').map(peerOf);
      listed = peers.slice(0, 3);
      expect(await registry.directory()).toStrictEqual(peers.slice(0, 3));
      listed = peers;
      expect(await registry.directory()).toStrictEqual(peers);
      // Declaring objects does not change the directory: it is the network's, not the objects'.
      await registry.declare(makeRecord({ seed: 'dir' }), DEAL, placed(minersFor('other')));
      expect(await registry.directory()).toStrictEqual(peers);
    });

    it('directory() is empty when no directory function is given', async () => {
      const bare = open().registry;
      try {
        expect(await bare.directory()).toStrictEqual([]);
      } finally {
        await bare.close();
      }
    });

    it('reassign runs rebuild once, then moves exactly the given columns', async () => {
      const record = makeRecord({ seed: 'move' });
      const other = makeRecord({ seed: 'bystander' });
      await registry.declare(record, DEAL, placed(minersFor('m')));
      await registry.declare(other, DEAL, placed(minersFor('m')));

      const spy = rebuildSpy();
      await registry.reassign(record.fid, moves([[5, 'spare-miner']]), spy.rebuild);
      expect(spy.calls).toBe(1);
      const expected = minersFor('m');
      expected[5] = 'spare-miner';
      expect(await registry.get(record.fid)).toStrictEqual({ record, miners: expected });
      // Another object on the same miners is untouched.
      expect((await registry.get(other.fid))!.miners).toStrictEqual(minersFor('m'));

      // Column 0 and the last column in one call (one rebuild for both), and moving a column to its own miner is a
      // no-op.
      const both = rebuildSpy();
      await registry.reassign(
        record.fid,
        moves([
          [0, 'spare-0'],
          [11, 'spare-11'],
        ]),
        both.rebuild,
      );
      await registry.reassign(record.fid, moves([[5, 'spare-miner']]), noRebuild);
      expect(both.calls).toBe(1);
      expected[0] = 'spare-0';
      expected[11] = 'spare-11';
      expect((await registry.get(record.fid))!.miners).toStrictEqual(expected);
    });

    it('reassign records the moves only after rebuild resolves', async () => {
      const record = makeRecord({ seed: 'order' });
      await registry.declare(record, DEAL, placed(minersFor('o')));
      const spy = rebuildSpy(async () => (await registry.get(record.fid))!.miners);
      await registry.reassign(
        record.fid,
        moves([
          [1, 'new-1'],
          [8, 'new-8'],
        ]),
        spy.rebuild,
      );
      // While the fragments were being rebuilt, readers were still sent to the old miners.
      expect(spy.seen).toStrictEqual([minersFor('o')]);
      const expected = minersFor('o');
      expected[1] = 'new-1';
      expected[8] = 'new-8';
      expect((await registry.get(record.fid))!.miners).toStrictEqual(expected);
    });

    it('a rebuild that fails → reassign rejects with its error and records no move', async () => {
      const record = makeRecord({ seed: 'failed-rebuild' });
      await registry.declare(record, DEAL, placed(minersFor('f')));
      const failure = new Error('only 3 of 12 fragments of segment 0 were reachable');
      let calls = 0;
      const failing = async (): Promise<void> => {
        calls++;
        throw failure;
      };
      const twoColumns = moves([
        [2, 'spare-2'],
        [3, 'spare-3'],
      ]);
      await expect(registry.reassign(record.fid, twoColumns, failing)).rejects.toBe(failure);
      expect(calls).toBe(1);
      expect(await registry.get(record.fid)).toStrictEqual({ record, miners: minersFor('f') });
      // The same moves succeed once a rebuild does.
      await registry.reassign(record.fid, twoColumns, noRebuild);
      const expected = minersFor('f');
      expected[2] = 'spare-2';
      expected[3] = 'spare-3';
      expect((await registry.get(record.fid))!.miners).toStrictEqual(expected);
    });

    it('reassign to a miner that holds another column → INVALID_INPUT before rebuild, placements unchanged', async () => {
      const record = makeRecord({ seed: 'clash' });
      const miners = minersFor('c');
      await registry.declare(record, DEAL, placed(miners));
      const spy = rebuildSpy();
      const err = await rejectsWith(
        registry.reassign(record.fid, moves([[3, miners[4]!]]), spy.rebuild),
        'INVALID_INPUT',
      );
      expect(err.message).toContain(miners[4]!);
      // One bad move refuses the whole reassign, the good one included.
      await rejectsWith(
        registry.reassign(
          record.fid,
          moves([
            [0, 'fine-spare'],
            [6, miners[7]!],
          ]),
          spy.rebuild,
        ),
        'INVALID_INPUT',
      );
      // Two columns moved onto one new miner would break "12 distinct miners" just as well.
      await rejectsWith(
        registry.reassign(
          record.fid,
          moves([
            [3, 'same-spare'],
            [4, 'same-spare'],
          ]),
          spy.rebuild,
        ),
        'INVALID_INPUT',
      );
      expect(spy.calls).toBe(0);
      expect((await registry.get(record.fid))!.miners).toStrictEqual(miners);
    });

    it('reassign a column out of range → INVALID_INPUT before rebuild, placements unchanged', async () => {
      const record = makeRecord({ seed: 'range' });
      await registry.declare(record, DEAL, placed(minersFor('r')));
      const spy = rebuildSpy();
      for (const column of [-1, 12, 13, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
        await rejectsWith(
          registry.reassign(record.fid, moves([[column, 'spare']]), spy.rebuild),
          'INVALID_INPUT',
        );
      }
      expect(spy.calls).toBe(0);
      expect((await registry.get(record.fid))!.miners).toStrictEqual(minersFor('r'));
    });

    it('reassign of an unknown fid → OBJECT_NOT_FOUND before rebuild', async () => {
      await registry.declare(makeRecord({ seed: 'known' }), DEAL, placed(minersFor('k')));
      const unknown = hex('never declared');
      const spy = rebuildSpy();
      const err = await rejectsWith(
        registry.reassign(unknown, moves([[0, 'spare']]), spy.rebuild),
        'OBJECT_NOT_FOUND',
      );
      expect(err.message).toContain(unknown);
      // With no moves at all, an unknown fid is still refused, and nothing is rebuilt.
      await rejectsWith(registry.reassign(unknown, moves([]), spy.rebuild), 'OBJECT_NOT_FOUND');
      expect(spy.calls).toBe(0);
      expect(await registry.get(unknown)).toBeNull();
    });

    it('list returns summaries ordered by createdAt', async () => {
      const late = makeRecord({ seed: 'late', createdAt: 3000, name: 'c.bin', encrypted: true, segments: 1 });
      const early = makeRecord({ seed: 'early', createdAt: 1000, size: 0, segments: 1 });
      const middle = makeRecord({ seed: 'middle', createdAt: 2000, name: 'b.bin', segments: 4 });
      expect(await registry.list()).toStrictEqual([]);
      await registry.declare(late, DEAL, placed(minersFor('1')));
      await registry.declare(early, DEAL, placed(minersFor('2')));
      await registry.declare(middle, DEAL, placed(minersFor('3')));
      expect(await registry.list()).toStrictEqual([summary(early), summary(middle), summary(late)]);
      expect((await registry.list()).map((s) => [s.segments, s.encrypted])).toStrictEqual([
        [1, false],
        [4, false],
        [1, true],
      ]);
    });

    it('ties on createdAt are listed in fid order, as SQLite does', async () => {
      const [x, y, z] = ['tie-1', 'tie-2', 'tie-3']
        .map((seed) => makeRecord({ seed, createdAt: 500 }))
        .sort((a, b) => (a.fid < b.fid ? -1 : 1));
      await registry.declare(z!, DEAL, placed(minersFor('z')));
      await registry.declare(x!, DEAL, placed(minersFor('x')));
      await registry.declare(y!, DEAL, placed(minersFor('y')));
      expect((await registry.list()).map((s) => s.fid)).toStrictEqual([x!.fid, y!.fid, z!.fid]);
    });

    it('methods work when detached from the registry object', async () => {
      const record = makeRecord({ seed: 'detached' });
      const { declare, get, reassign, list, directory } = registry;
      listed = [peerOf('in-directory')];
      await declare(record, DEAL, placed(minersFor('det')));
      await reassign(record.fid, moves([[2, 'spare']]), noRebuild);
      expect((await get(record.fid))!.miners[2]).toBe('spare');
      expect(await list()).toHaveLength(1);
      expect(await directory()).toStrictEqual([peerOf('in-directory')]);
    });

    it('get of an unknown fid → null', async () => {
      expect(await registry.get(hex('nothing here'))).toBeNull();
      await registry.declare(makeRecord({ seed: 'present' }), DEAL, placed(minersFor('p')));
      expect(await registry.get(hex('nothing here'))).toBeNull();
      expect(await registry.get('')).toBeNull();
    });

    it('returned and given objects are copies: mutating them does not change the registry', async () => {
      const record = makeRecord({ seed: 'copy', encrypted: true, name: 'orig' });
      const pristine = structuredClone(record);
      const columns = placed(minersFor('copy'));
      await registry.declare(record, DEAL, columns);
      const move = moves([[6, 'moved-6']]);
      await registry.reassign(record.fid, move, noRebuild);
      const expected = minersFor('copy');
      expected[6] = 'moved-6';

      // Mutate what was passed in...
      record.segments[0]!.hash = hex('tampered input');
      record.name = 'changed after declare';
      (columns[0]!.peer as { peerId: string }).peerId = 'changed-after-declare';
      columns[1] = { peer: peerOf('replaced-after-declare') };
      (move.get(6) as { peerId: string }).peerId = 'changed-after-reassign';
      move.set(7, peerOf('added-after-reassign'));
      // ...and what came out.
      const got = (await registry.get(pristine.fid))!;
      const out = got.record as ObjectRecord;
      out.size = 1;
      out.segments[1]!.fragments[3] = hex('tampered output');
      out.segments.pop();
      out.encryption!.wraps[0]!.recipient = hex('tampered recipient');
      (got.miners as string[])[4] = 'changed-after-get';
      (got.miners as string[]).push('extra');
      const listed = await registry.list();
      (listed[0] as { size: number }).size = 2;
      listed.pop();

      expect(await registry.get(pristine.fid)).toStrictEqual({ record: pristine, miners: expected });
      expect(await registry.list()).toStrictEqual([summary(pristine)]);
    });

    itIfPersistent('survives close and reopen', async () => {
      if (harness.reopen === undefined) throw new Error('a persistent harness must provide reopen');
      const a = makeRecord({ seed: 'persist-a', createdAt: 20, encrypted: true, name: 'a' });
      const b = makeRecord({ seed: 'persist-b', createdAt: 10, segments: 5 });
      await registry.declare(a, DEAL, placed(minersFor('pa')));
      await registry.declare(b, DEAL, placed(minersFor('pb')));
      await registry.reassign(a.fid, moves([[9, 'repaired-miner']]), noRebuild);
      const expectedA = minersFor('pa');
      expectedA[9] = 'repaired-miner';

      registry = await harness.reopen();
      expect(await registry.get(a.fid)).toStrictEqual({ record: a, miners: expectedA });
      expect(await registry.get(b.fid)).toStrictEqual({ record: b, miners: minersFor('pb') });
      expect(await registry.list()).toStrictEqual([summary(b), summary(a)]);
      // Still writable after reopening, and declaring again after a restart still adds nothing.
      await registry.declare(a, DEAL, placed(minersFor('other')));
      expect((await registry.get(a.fid))!.miners).toStrictEqual(expectedA);
      // The reopened registry keeps its directory.
      listed = [peerOf('after-reopen')];
      expect(await registry.directory()).toStrictEqual([peerOf('after-reopen')]);

      registry = await harness.reopen();
      expect((await registry.get(a.fid))!.miners).toStrictEqual(expectedA);
      expect(await registry.list()).toHaveLength(2);
    });
  });
}

registryContract('memory', (directory) => ({ registry: createMemoryRegistry(directory) }), false);

const tmpRoot = mkdtempSync(join(tmpdir(), 'ailink-registry-'));
let opened = 0;
afterAll(() => rmSync(tmpRoot, { recursive: true, force: true }));

registryContract(
  'sqlite',
  (directory) => {
    const path = join(tmpRoot, `registry-${opened++}.sqlite`);
    const harness = {
      registry: openSqliteRegistry(path, directory),
      async reopen(): Promise<ObjectRegistry> {
        await harness.registry.close();
        harness.registry = openSqliteRegistry(path, directory);
        return harness.registry;
      },
    };
    return harness;
  },
  true,
);
