import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { afterAll, afterEach, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import {
  createMemoryState,
  createSqliteState,
  GENESIS_DIGEST,
  INDEXED_FIELDS,
  isBelow,
  nextDigest,
  Overlay,
  type StateStore,
  type StateValue,
  type StateWrite,
  scanBelow,
} from '../../src/chain/state.ts';

// One contract, two twins: the in-memory state (unit tests) and the SQLite state (what the indexer keeps). Every
// test in the contract suite runs against both; only reopening the file is SQLite's alone.

const dir = mkdtempSync(join(tmpdir(), 'ailink-state-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let fileCounter = 0;
const openDbs: Database.Database[] = [];
function sqliteState(path = join(dir, `state-${fileCounter++}.db`)): StateStore {
  const db = new Database(path);
  openDbs.push(db);
  return createSqliteState(db);
}
afterEach(() => {
  for (const db of openDbs.splice(0)) db.close();
});

const put = (key: string, value: StateValue): StateWrite => ({ key, value });
const del = (key: string): StateWrite => ({ key, value: null });
const keys = (entries: [string, StateValue][]) => entries.map(([k]) => k);

const TWINS: [string, () => StateStore][] = [
  ['memory', createMemoryState],
  ['sqlite', () => sqliteState()],
];

describe.each(TWINS)('StateStore contract: %s', (_name, create) => {
  let state: StateStore;
  beforeEach(() => {
    state = create();
  });

  it('get of a missing key is undefined; put then get returns the value', () => {
    expect(state.get('fileBank/files/x')).toBeUndefined();
    const value = {
      owner: '5Grw',
      placements: ['a', null, 'b'],
      profile: { segmentSize: 1024, dataFragments: 8, parityFragments: 4 },
      state: 'Pending',
      active: false,
      ratio: 0.25,
      name: 'ünïcødé ✓',
      empty: {},
      none: [],
    } satisfies StateValue;
    state.apply([put('fileBank/files/x', value), put('n', 7), put('s', 'text'), put('t', true)]);
    expect(state.get('fileBank/files/x')).toEqual(value);
    expect(state.get('n')).toBe(7);
    expect(state.get('s')).toBe('text');
    expect(state.get('t')).toBe(true);
  });

  it('put overwrites; a null value deletes; deleting a missing key is a no-op', () => {
    state.apply([put('k', 1), put('other', 2)]);
    state.apply([put('k', { v: 2 })]);
    expect(state.get('k')).toEqual({ v: 2 });
    state.apply([del('k'), del('never-there')]);
    expect(state.get('k')).toBeUndefined();
    expect(state.scan('')).toEqual([['other', 2]]);
  });

  it('writes in one batch apply in order: the last write of a key wins', () => {
    state.apply([put('a', 1), del('a'), put('b', 1), put('b', 2), put('c', 1)]);
    state.apply([del('c'), put('c', 3)]);
    expect(state.scan('')).toEqual([
      ['b', 2],
      ['c', 3],
    ]);
  });

  it('returns copies: mutating what get or scan returned changes nothing stored', () => {
    state.apply([put('k', { list: [1, 2], inner: { x: 1 } })]);
    const got = state.get<{ list: number[]; inner: { x: number } }>('k')!;
    got.list.push(3);
    got.inner.x = 99;
    const [[, scanned]] = state.scan('k') as [[string, { list: number[] }]];
    scanned.list.length = 0;
    expect(state.get('k')).toEqual({ list: [1, 2], inner: { x: 1 } });
  });

  it('scan returns entries in key order, whatever the order of writing', () => {
    const order = ['m/b', 'm/a/2', 'z', 'm/a/10', 'a', 'm/a/1', 'M', 'm/', 'm'];
    state.apply(order.map((k, i) => put(k, i)));
    expect(keys(state.scan(''))).toEqual([...order].sort());
    expect(keys(state.scan(''))).toEqual(['M', 'a', 'm', 'm/', 'm/a/1', 'm/a/10', 'm/a/2', 'm/b', 'z']);
    expect(keys(state.scan('m/a/'))).toEqual(['m/a/1', 'm/a/10', 'm/a/2']);
    expect(state.scan('m/a/1')).toEqual([
      ['m/a/1', 5],
      ['m/a/10', 3],
    ]);
    expect(state.scan('nothing/')).toEqual([]);
  });

  it('scan is a plain prefix match: a trailing "/" is what isolates one map or one key', () => {
    state.apply(
      ['a/b', 'a/b/1', 'a/b/2', 'a/bc/1', 'a/b0', 'a/b~', 'a/a', 'a/c', 'b/b/1'].map((k) => put(k, k)),
    );
    // Without the slash, siblings that share the prefix come along…
    expect(keys(state.scan('a/b'))).toEqual(['a/b', 'a/b/1', 'a/b/2', 'a/b0', 'a/bc/1', 'a/b~']);
    // …with it, only the children of a/b.
    expect(keys(state.scan('a/b/'))).toEqual(['a/b/1', 'a/b/2']);
    expect(keys(state.scan('a/'))).toEqual(['a/a', 'a/b', 'a/b/1', 'a/b/2', 'a/b0', 'a/bc/1', 'a/b~', 'a/c']);
    expect(keys(state.scan('a/b/1'))).toEqual(['a/b/1']);
  });

  it('scan finds keys that end in the highest printable ASCII characters', () => {
    state.apply([put('p/~', 1), put('p/~~~', 2), put('p/\u007f', 3), put('q', 4)]);
    expect(keys(state.scan('p/'))).toEqual(['p/~', 'p/~~~', 'p/\u007f']);
  });

  // An indexed map (the SQLite state answers from its index) and one that is not (scanned and filtered).
  it.each(['fileBank/untagged/', 'm/'])(
    'scanBelow(%s): the entries whose field is a number below the bound, in key order',
    (prefix) => {
      state.apply([
        put(`${prefix}e`, { deadline: 7 }),
        put(`${prefix}a/2`, { deadline: 3, miner: 'x' }),
        put(`${prefix}a/1`, { deadline: 2.5 }),
        put(`${prefix}b`, { deadline: -4 }),
        put(`${prefix}c`, { deadline: 5 }), // at the bound: not below it
        put(`${prefix}d`, { deadline: '1' }), // not a number
        put(`${prefix}f`, { deadline: true }),
        put(`${prefix}g`, { deadline: null }),
        put(`${prefix}h`, { other: 1 }),
        put(`${prefix}i`, [1]),
        put(`${prefix}j`, 1),
        put(`${prefix}k`, { deadline: [1] }),
        put(`${prefix.slice(0, -1)}x`, { deadline: 1 }), // a sibling of the map
        put(prefix.slice(0, -1), { deadline: 1 }),
      ]);
      const expected = [
        [`${prefix}a/1`, { deadline: 2.5 }],
        [`${prefix}a/2`, { deadline: 3, miner: 'x' }],
        [`${prefix}b`, { deadline: -4 }],
      ];
      expect(scanBelow(state, prefix, 'deadline', 5)).toEqual(expected);
      expect(scanBelow(state, prefix, 'deadline', 5)).toEqual(
        state.scan(prefix).filter(([, v]) => isBelow(v, 'deadline', 5)),
      );
      expect(scanBelow(state, prefix, 'deadline', -4)).toEqual([]);
      expect(keys(scanBelow(state, prefix, 'deadline', 8))).toEqual([
        ...keys(expected as [string, StateValue][]),
        `${prefix}c`,
        `${prefix}e`,
      ]);
      state.apply([del(`${prefix}a/1`), put(`${prefix}b`, { deadline: 6 })]);
      expect(keys(scanBelow(state, prefix, 'deadline', 5))).toEqual([`${prefix}a/2`]);
    },
  );
});

describe('StateStore twins agree', () => {
  it('on random write sequences and random prefixes (ASCII keys)', () => {
    const key = fc.stringMatching(/^[a-c/~0-9]{0,6}$/);
    const write = fc.record({ key, value: fc.option(fc.jsonValue({ maxDepth: 2 }), { nil: null }) });
    // One file for all runs, emptied before each: opening a file per run costs more than the run.
    const db = new Database(join(dir, 'twins.db'));
    onTestFinished(() => {
      db.close();
    });
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = OFF');
    const sqlite = createSqliteState(db);
    fc.assert(
      fc.property(
        fc.array(fc.array(write, { maxLength: 8 }), { maxLength: 6 }),
        fc.array(key),
        (batches, prefixes) => {
          const memory = createMemoryState();
          db.exec('DELETE FROM state');
          for (const batch of batches) {
            // JSON round trip: -0 and the like are what JSON makes of them in both twins.
            const writes = batch.map((w) => ({
              key: w.key,
              value: JSON.parse(JSON.stringify(w.value)) as StateValue,
            }));
            memory.apply(writes);
            sqlite.apply(writes);
          }
          for (const prefix of ['', ...prefixes]) expect(sqlite.scan(prefix)).toEqual(memory.scan(prefix));
          for (const prefix of prefixes) expect(sqlite.get(prefix)).toEqual(memory.get(prefix));
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('StateStore twins agree on scanBelow', () => {
  it('on random writes to the indexed maps, their siblings and other maps, through an overlay too', () => {
    const prefixes = [
      ...INDEXED_FIELDS.map((f) => f.prefix),
      'fileBank/untagged',
      'fileBank/untaggee/',
      'x/',
    ];
    const fields = [...new Set(INDEXED_FIELDS.map((f) => f.field)), 'other'];
    const field = fc.constantFrom(...fields);
    const value = fc.oneof(
      fc.dictionary(
        field,
        fc.oneof(
          fc.integer({ min: -5, max: 30 }),
          fc.double({ noNaN: true, noDefaultInfinity: true }),
          fc.jsonValue({ maxDepth: 1 }),
        ),
        { maxKeys: 3 },
      ),
      fc.jsonValue({ maxDepth: 1 }),
    );
    const write = fc.record({
      key: fc
        .tuple(fc.constantFrom(...prefixes), fc.stringMatching(/^[a-c/0-9]{0,4}$/))
        .map(([p, k]) => p + k),
      value: fc.option(value, { nil: null }),
    });
    const db = new Database(':memory:');
    onTestFinished(() => {
      db.close();
    });
    const sqlite = createSqliteState(db);
    const json = (w: { key: string; value: unknown }) => ({
      key: w.key,
      value: JSON.parse(JSON.stringify(w.value)) as StateValue | null,
    });
    fc.assert(
      fc.property(
        fc.array(write, { maxLength: 30 }),
        fc.array(write, { maxLength: 8 }),
        fc.constantFrom(...prefixes),
        field,
        fc.integer({ min: -6, max: 31 }),
        (stored, buffered, prefix, f, bound) => {
          const memory = createMemoryState();
          db.exec('DELETE FROM state');
          memory.apply(stored.map(json));
          sqlite.apply(stored.map(json));
          const filtered = memory.scan(prefix).filter(([, v]) => isBelow(v, f, bound));
          expect(scanBelow(memory, prefix, f, bound)).toEqual(filtered);
          expect(scanBelow(sqlite, prefix, f, bound)).toEqual(filtered);
          const overlays = [new Overlay(memory), new Overlay(sqlite)] as const;
          for (const o of overlays)
            for (const w of buffered.map(json)) w.value === null ? o.delete(w.key) : o.put(w.key, w.value);
          const overFiltered = overlays[0].scan(prefix).filter(([, v]) => isBelow(v, f, bound));
          for (const o of overlays) expect(o.scanBelow(prefix, f, bound)).toEqual(overFiltered);
        },
      ),
      { numRuns: 150 },
    );
  });
});

describe('SQLite state', () => {
  it('keeps its entries across closing and reopening the file', () => {
    const path = join(dir, 'reopen.db');
    const first = sqliteState(path);
    first.apply([put('sminer/miners/x', { capacity: 1 }), put('oss/auth/a/b', 3)]);
    for (const db of openDbs.splice(0)) db.close();
    const again = sqliteState(path);
    expect(again.scan('')).toEqual([
      ['oss/auth/a/b', 3],
      ['sminer/miners/x', { capacity: 1 }],
    ]);
  });

  it('indexes a file written before its indexes existed when it opens it', () => {
    const path = join(dir, 'unindexed.db');
    const old = new Database(path);
    old.exec('CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID');
    old
      .prepare('INSERT INTO state (key, value) VALUES (?, ?)')
      .run('fileBank/untagged/f/001', '{"deadline":4}');
    old.close();
    const state = sqliteState(path);
    expect(scanBelow(state, 'fileBank/untagged/', 'deadline', 5)).toEqual([
      ['fileBank/untagged/f/001', { deadline: 4 }],
    ]);
    const indexes = openDbs[0]!.prepare<[], { name: string }>(
      "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'state' AND sql IS NOT NULL",
    );
    expect(indexes.all()).toHaveLength(INDEXED_FIELDS.length);
  });
});

describe.each(TWINS)('Overlay over %s', (_name, create) => {
  let base: StateStore;
  beforeEach(() => {
    base = create();
    base.apply([put('m/1', 'one'), put('m/3', 'three'), put('m/5', 'five'), put('n/1', 'other map')]);
  });

  it('buffers puts and deletes: the base is unchanged until its writes are applied', () => {
    const before = base.scan('');
    const overlay = new Overlay(base);
    overlay.put('m/2', 'two');
    overlay.put('m/1', 'ONE');
    overlay.delete('m/3');
    expect(overlay.get('m/2')).toBe('two');
    expect(overlay.get('m/1')).toBe('ONE');
    expect(overlay.get('m/3')).toBeUndefined();
    expect(overlay.get('m/5')).toBe('five'); // read through
    expect(base.scan('')).toEqual(before);
    expect(base.get('m/2')).toBeUndefined();

    base.apply(overlay.writes());
    expect(base.scan('m/')).toEqual([
      ['m/1', 'ONE'],
      ['m/2', 'two'],
      ['m/5', 'five'],
    ]);
  });

  it('scan merges the overlay into the base: new keys in order, overwrites, deletes, prefix respected', () => {
    const overlay = new Overlay(base);
    overlay.put('m/4', 'four');
    overlay.put('m/0', 'zero');
    overlay.put('m/5', 'FIVE');
    overlay.delete('m/3');
    overlay.put('n/2', 'outside');
    overlay.put('mm', 'sibling');
    expect(overlay.scan('m/')).toEqual([
      ['m/0', 'zero'],
      ['m/1', 'one'],
      ['m/4', 'four'],
      ['m/5', 'FIVE'],
    ]);
    expect(keys(overlay.scan(''))).toEqual(['m/0', 'm/1', 'm/4', 'm/5', 'mm', 'n/1', 'n/2']);
  });

  it('a key deleted and put again is back; put and deleted is gone', () => {
    const overlay = new Overlay(base);
    overlay.delete('m/1');
    overlay.put('m/1', 'again');
    overlay.put('m/9', 'brief');
    overlay.delete('m/9');
    expect(overlay.get('m/1')).toBe('again');
    expect(overlay.get('m/9')).toBeUndefined();
    expect(keys(overlay.scan('m/'))).toEqual(['m/1', 'm/3', 'm/5']);
  });

  it('writes() lists the last write of each key, sorted by key, deletes as null', () => {
    const overlay = new Overlay(base);
    overlay.put('z', 1);
    overlay.put('m/3', 'x');
    overlay.delete('m/3');
    overlay.put('a', 1);
    overlay.put('a', 2);
    overlay.delete('never-there');
    expect(overlay.writes()).toEqual([
      { key: 'a', value: 2 },
      { key: 'm/3', value: null },
      { key: 'never-there', value: null },
      { key: 'z', value: 1 },
    ]);
    expect(new Overlay(base).writes()).toEqual([]);
  });

  it('copies what is put: mutating the object afterwards changes nothing', () => {
    const overlay = new Overlay(base);
    const value = { list: [1] };
    overlay.put('k', value);
    value.list.push(2);
    expect(overlay.get('k')).toEqual({ list: [1] });
    expect(overlay.writes()).toEqual([{ key: 'k', value: { list: [1] } }]);
  });

  it('scanBelow merges the overlay into the base: a buffered value is in the answer exactly when it qualifies', () => {
    base.apply([
      put('m/2', { due: 1 }),
      put('m/4', { due: 9 }),
      put('m/6', { due: 2 }),
      put('mm', { due: 0 }),
    ]);
    const overlay = new Overlay(base);
    overlay.put('m/4', { due: 3 }); // now due
    overlay.put('m/6', { due: 8 }); // no longer due
    overlay.put('m/0', { due: 0 }); // new and due
    overlay.put('m/7', { due: 7 }); // new, not due
    overlay.put('mn', { due: 0 }); // outside the map
    overlay.delete('m/2');
    expect(overlay.scanBelow('m/', 'due', 5)).toEqual([
      ['m/0', { due: 0 }],
      ['m/4', { due: 3 }],
    ]);
    expect(keys(new Overlay(overlay).scanBelow('m', 'due', 5))).toEqual(['m/0', 'm/4', 'mm', 'mn']);
  });

  it('stacks: an overlay over an overlay commits into it, and only then into the base', () => {
    const outer = new Overlay(base);
    outer.put('m/2', 'two');
    const inner = new Overlay(outer);
    inner.delete('m/1');
    inner.put('m/6', 'six');
    expect(keys(inner.scan('m/'))).toEqual(['m/2', 'm/3', 'm/5', 'm/6']);
    expect(keys(outer.scan('m/'))).toEqual(['m/1', 'm/2', 'm/3', 'm/5']);
    for (const w of inner.writes()) {
      if (w.value === null) outer.delete(w.key);
      else outer.put(w.key, w.value);
    }
    expect(keys(base.scan('m/'))).toEqual(['m/1', 'm/3', 'm/5']);
    base.apply(outer.writes());
    expect(keys(base.scan('m/'))).toEqual(['m/2', 'm/3', 'm/5', 'm/6']);
  });
});

describe('nextDigest', () => {
  const writes: StateWrite[] = [put('a', 1), put('b', { x: [1, 'two'] }), del('c')];
  const d = nextDigest(GENESIS_DIGEST, 7, writes);

  it('is 64 hex characters and deterministic', () => {
    expect(GENESIS_DIGEST).toBe('0'.repeat(64));
    expect(d).toMatch(/^[0-9a-f]{64}$/);
    expect(
      nextDigest(
        GENESIS_DIGEST,
        7,
        writes.map((w) => ({ ...w })),
      ),
    ).toBe(d);
    expect(nextDigest(GENESIS_DIGEST, 7, structuredClone(writes))).toBe(d);
  });

  it('moves on an empty block, and differently per block number', () => {
    const e7 = nextDigest(GENESIS_DIGEST, 7, []);
    expect(e7).not.toBe(GENESIS_DIGEST);
    expect(nextDigest(GENESIS_DIGEST, 8, [])).not.toBe(e7);
    expect(e7).not.toBe(d);
  });

  it('depends on the previous digest, the block number, the order and the content of the writes', () => {
    const variants = [
      nextDigest(nextDigest(GENESIS_DIGEST, 1, []), 7, writes), // another history
      nextDigest(GENESIS_DIGEST, 8, writes), // another height
      nextDigest(GENESIS_DIGEST, 7, [writes[1]!, writes[0]!, writes[2]!]), // order
      nextDigest(GENESIS_DIGEST, 7, [put('a', 2), writes[1]!, writes[2]!]), // a value
      nextDigest(GENESIS_DIGEST, 7, [put('a', '1'), writes[1]!, writes[2]!]), // a value's type
      nextDigest(GENESIS_DIGEST, 7, [put('A', 1), writes[1]!, writes[2]!]), // a key
      nextDigest(GENESIS_DIGEST, 7, [writes[0]!, writes[1]!, put('c', 0)]), // a delete turned into a put
      nextDigest(GENESIS_DIGEST, 7, writes.slice(0, 2)), // a write fewer
      nextDigest(GENESIS_DIGEST, 7, [...writes, del('d')]), // a write more
      nextDigest(GENESIS_DIGEST, 7, [put('a\n', 1), writes[1]!, writes[2]!]), // framing characters in keys
    ];
    expect(new Set([d, ...variants]).size).toBe(variants.length + 1);
  });
});
