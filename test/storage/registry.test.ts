import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TEST_PROFILE } from '../../src/storage/profile.ts';
import {
  type ObjectRecord,
  ObjectRecordSchema,
  type ObjectRegistry,
  type ObjectSummary,
} from '../../src/storage/record.ts';
import { createMemoryRegistry, openSqliteRegistry } from '../../src/storage/registry.ts';
import { expectCode, sha256Hex } from './helpers.ts';

// One contract, two implementations: the in-memory twin (unit tests) and the SQLite file (what `ailink` uses).
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
  readonly reopen?: () => ObjectRegistry;
}

function registryContract(name: string, open: () => Harness, persistent: boolean): void {
  // Only persistent implementations promise to survive a restart; for the in-memory twin the test is not registered.
  const itIfPersistent = persistent ? it : ((() => {}) as unknown as typeof it);
  describe(`ObjectRegistry contract: ${name}`, () => {
    let harness: Harness;
    let registry: ObjectRegistry;

    beforeEach(() => {
      harness = open();
      registry = harness.registry;
    });
    afterEach(() => registry.close());

    it('declare then get returns the record and the 12 miners in column order', () => {
      const plain = makeRecord({ seed: 'plain', segments: 3, name: 'weights.bin' });
      const sealed = makeRecord({ seed: 'sealed', segments: 1, encrypted: true });
      const miners = minersFor('a');
      registry.declare(plain, miners);
      registry.declare(sealed, minersFor('b'));

      const got = registry.get(plain.fid);
      expect(got).not.toBeNull();
      expect(got!.record).toStrictEqual(plain);
      expect(got!.miners).toStrictEqual(miners);
      expect(got!.miners).toHaveLength(12);

      const gotSealed = registry.get(sealed.fid);
      expect(gotSealed!.record).toStrictEqual(sealed);
      expect(gotSealed!.miners).toStrictEqual(minersFor('b'));
    });

    it('declaring the same fid again changes nothing', () => {
      const first = makeRecord({ seed: 'same', createdAt: 1000, name: 'first' });
      registry.declare(first, minersFor('first'));
      // Same fid, different everything else: the first declaration stands, placements included.
      const second = makeRecord({ seed: 'same', createdAt: 2000, name: 'second', size: 7 });
      registry.declare(second, minersFor('second'));
      registry.declare(first, minersFor('third'));

      expect(registry.get(first.fid)).toStrictEqual({ record: first, miners: minersFor('first') });
      expect(registry.list()).toStrictEqual([summary(first)]);
    });

    it('declare with 11 or 13 miners → INVALID_INPUT and nothing is stored', () => {
      const record = makeRecord({ seed: 'short' });
      const err = expectCode(() => registry.declare(record, minersFor('x').slice(0, 11)), 'INVALID_INPUT');
      expect(err.message).toMatch(/12/);
      expectCode(() => registry.declare(record, [...minersFor('x'), 'one-too-many']), 'INVALID_INPUT');
      expectCode(() => registry.declare(record, []), 'INVALID_INPUT');
      expect(registry.get(record.fid)).toBeNull();
      expect(registry.list()).toStrictEqual([]);
    });

    it('declare with a duplicate miner → INVALID_INPUT and nothing is stored', () => {
      const record = makeRecord({ seed: 'dup' });
      const miners = minersFor('d');
      miners[7] = miners[2]!; // still 12 entries, only 11 distinct
      expectCode(() => registry.declare(record, miners), 'INVALID_INPUT');
      expect(registry.get(record.fid)).toBeNull();
      expect(registry.list()).toStrictEqual([]);
      // ...and a later valid declaration of the same fid is not blocked by the refused one.
      registry.declare(record, minersFor('ok'));
      expect(registry.get(record.fid)!.miners).toStrictEqual(minersFor('ok'));
    });

    it('reassign moves exactly one column', () => {
      const record = makeRecord({ seed: 'move' });
      const other = makeRecord({ seed: 'bystander' });
      registry.declare(record, minersFor('m'));
      registry.declare(other, minersFor('m'));

      registry.reassign(record.fid, 5, 'spare-miner');
      const expected = minersFor('m');
      expected[5] = 'spare-miner';
      expect(registry.get(record.fid)).toStrictEqual({ record, miners: expected });
      // Another object on the same miners is untouched.
      expect(registry.get(other.fid)!.miners).toStrictEqual(minersFor('m'));

      // Moving column 0 and the last column works too, and reassigning a column to its own miner is a no-op.
      registry.reassign(record.fid, 0, 'spare-0');
      registry.reassign(record.fid, 11, 'spare-11');
      registry.reassign(record.fid, 5, 'spare-miner');
      expected[0] = 'spare-0';
      expected[11] = 'spare-11';
      expect(registry.get(record.fid)!.miners).toStrictEqual(expected);
    });

    it('reassign to a miner that holds another column → INVALID_INPUT, placements unchanged', () => {
      const record = makeRecord({ seed: 'clash' });
      const miners = minersFor('c');
      registry.declare(record, miners);
      const err = expectCode(() => registry.reassign(record.fid, 3, miners[4]!), 'INVALID_INPUT');
      expect(err.message).toContain(miners[4]!);
      expect(registry.get(record.fid)!.miners).toStrictEqual(miners);
    });

    it('reassign a column out of range → INVALID_INPUT, placements unchanged', () => {
      const record = makeRecord({ seed: 'range' });
      registry.declare(record, minersFor('r'));
      for (const column of [-1, 12, 13, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
        expectCode(() => registry.reassign(record.fid, column, 'spare'), 'INVALID_INPUT');
      }
      expect(registry.get(record.fid)!.miners).toStrictEqual(minersFor('r'));
    });

    it('reassign of an unknown fid → OBJECT_NOT_FOUND', () => {
      registry.declare(makeRecord({ seed: 'known' }), minersFor('k'));
      const unknown = hex('never declared');
      const err = expectCode(() => registry.reassign(unknown, 0, 'spare'), 'OBJECT_NOT_FOUND');
      expect(err.message).toContain(unknown);
      expect(registry.get(unknown)).toBeNull();
    });

    it('list returns summaries ordered by createdAt', () => {
      const late = makeRecord({ seed: 'late', createdAt: 3000, name: 'c.bin', encrypted: true, segments: 1 });
      const early = makeRecord({ seed: 'early', createdAt: 1000, size: 0, segments: 1 });
      const middle = makeRecord({ seed: 'middle', createdAt: 2000, name: 'b.bin', segments: 4 });
      expect(registry.list()).toStrictEqual([]);
      registry.declare(late, minersFor('1'));
      registry.declare(early, minersFor('2'));
      registry.declare(middle, minersFor('3'));
      expect(registry.list()).toStrictEqual([summary(early), summary(middle), summary(late)]);
      expect(registry.list().map((s) => [s.segments, s.encrypted])).toStrictEqual([
        [1, false],
        [4, false],
        [1, true],
      ]);
    });

    it('ties on createdAt are listed in fid order, as SQLite does', () => {
      const [x, y, z] = ['tie-1', 'tie-2', 'tie-3']
        .map((seed) => makeRecord({ seed, createdAt: 500 }))
        .sort((a, b) => (a.fid < b.fid ? -1 : 1));
      registry.declare(z!, minersFor('z'));
      registry.declare(x!, minersFor('x'));
      registry.declare(y!, minersFor('y'));
      expect(registry.list().map((s) => s.fid)).toStrictEqual([x!.fid, y!.fid, z!.fid]);
    });

    it('methods work when detached from the registry object', () => {
      const record = makeRecord({ seed: 'detached' });
      const { declare, get, reassign, list } = registry;
      declare(record, minersFor('det'));
      reassign(record.fid, 2, 'spare');
      expect(get(record.fid)!.miners[2]).toBe('spare');
      expect(list()).toHaveLength(1);
    });

    it('get of an unknown fid → null', () => {
      expect(registry.get(hex('nothing here'))).toBeNull();
      registry.declare(makeRecord({ seed: 'present' }), minersFor('p'));
      expect(registry.get(hex('nothing here'))).toBeNull();
      expect(registry.get('')).toBeNull();
    });

    it('returned and given objects are copies: mutating them does not change the registry', () => {
      const record = makeRecord({ seed: 'copy', encrypted: true, name: 'orig' });
      const pristine = structuredClone(record);
      const miners = minersFor('copy');
      registry.declare(record, miners);

      // Mutate what was passed in...
      record.segments[0]!.hash = hex('tampered input');
      record.name = 'changed after declare';
      miners[0] = 'changed-after-declare';
      // ...and what came out.
      const got = registry.get(pristine.fid)!;
      const out = got.record as ObjectRecord;
      out.size = 1;
      out.segments[1]!.fragments[3] = hex('tampered output');
      out.segments.pop();
      out.encryption!.wraps[0]!.recipient = hex('tampered recipient');
      (got.miners as string[])[4] = 'changed-after-get';
      (got.miners as string[]).push('extra');
      const listed = registry.list();
      (listed[0] as { size: number }).size = 2;
      listed.pop();

      expect(registry.get(pristine.fid)).toStrictEqual({ record: pristine, miners: minersFor('copy') });
      expect(registry.list()).toStrictEqual([summary(pristine)]);
    });

    itIfPersistent('survives close and reopen', () => {
      if (harness.reopen === undefined) throw new Error('a persistent harness must provide reopen');
      const a = makeRecord({ seed: 'persist-a', createdAt: 20, encrypted: true, name: 'a' });
      const b = makeRecord({ seed: 'persist-b', createdAt: 10, segments: 5 });
      registry.declare(a, minersFor('pa'));
      registry.declare(b, minersFor('pb'));
      registry.reassign(a.fid, 9, 'repaired-miner');
      const expectedA = minersFor('pa');
      expectedA[9] = 'repaired-miner';

      registry = harness.reopen();
      expect(registry.get(a.fid)).toStrictEqual({ record: a, miners: expectedA });
      expect(registry.get(b.fid)).toStrictEqual({ record: b, miners: minersFor('pb') });
      expect(registry.list()).toStrictEqual([summary(b), summary(a)]);
      // Still writable after reopening, and declaring again after a restart still adds nothing.
      registry.declare(a, minersFor('other'));
      expect(registry.get(a.fid)!.miners).toStrictEqual(expectedA);

      registry = harness.reopen();
      expect(registry.get(a.fid)!.miners).toStrictEqual(expectedA);
      expect(registry.list()).toHaveLength(2);
    });
  });
}

registryContract('memory', () => ({ registry: createMemoryRegistry() }), false);

const tmpRoot = mkdtempSync(join(tmpdir(), 'ailink-registry-'));
let opened = 0;
afterAll(() => rmSync(tmpRoot, { recursive: true, force: true }));

registryContract(
  'sqlite',
  () => {
    const path = join(tmpRoot, `registry-${opened++}.sqlite`);
    const harness = {
      registry: openSqliteRegistry(path),
      reopen(): ObjectRegistry {
        harness.registry.close();
        harness.registry = openSqliteRegistry(path);
        return harness.registry;
      },
    };
    return harness;
  },
  true,
);
