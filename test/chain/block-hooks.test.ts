import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import type { UntaggedColumn } from '../../src/chain/pallets/file-bank.ts';
import type { OpenRequest } from '../../src/chain/pallets/market.ts';
import { applyBlockHooks } from '../../src/chain/protocol.ts';
import {
  createMemoryState,
  createSqliteState,
  GENESIS_DIGEST,
  nextDigest,
  type StateStore,
  type StateWrite,
} from '../../src/chain/state.ts';
import { ctxAt, hex } from './helpers.ts';

/**
 * Issue 19 §6: the block hooks run in every block of every indexer, so what one block reads must not grow with the
 * chain. The tag-deadline hook (untagged columns) and the market's expiry hook (open key requests) look up what fell
 * due in the block; the entries still waiting, however many, are not read (the SQLite state answers from an index).
 * Counted in entries handed to the rules, never in time.
 */

const UNTAGGED = 'fileBank/untagged/';
const REQUESTS = 'market/requests/';
const untaggedKey = (i: number) => `${UNTAGGED}${hex(`file/${i}`)}/${String(i % 12).padStart(3, '0')}`;
const requestKey = (i: number) => `${REQUESTS}${hex(`object/${i}`)}/reader-${i}`;
const column = (deadline: number): UntaggedColumn => ({ miner: 'a-miner', deadline });
const request = (expiresAt: number, i: number): OpenRequest => ({
  readerKey: hex(`reader-key/${i}`),
  requestedAt: 1,
  seq: i,
  held: String(i + 1),
  expiresAt,
});

const dbs: Database.Database[] = [];
afterEach(() => {
  for (const db of dbs.splice(0)) db.close();
});
function sqliteState(): StateStore {
  const db = new Database(':memory:');
  dbs.push(db);
  return createSqliteState(db);
}

/** `state` seen through a reader that counts the entries of the two maps it hands out, by `scan` or `scanBelow`. */
function counting(state: StateStore) {
  const read = { untagged: 0, requests: 0 };
  const count = (entries: [string, unknown][]) => {
    for (const [key] of entries) {
      if (key.startsWith(UNTAGGED)) read.untagged += 1;
      if (key.startsWith(REQUESTS)) read.requests += 1;
    }
    return entries;
  };
  const reader: StateStore = {
    get: (key) => state.get(key),
    scan: (prefix) => count(state.scan(prefix)) as ReturnType<StateStore['scan']>,
    apply: (writes) => state.apply(writes),
    ...(state.scanBelow === undefined
      ? {}
      : {
          scanBelow: (prefix: string, field: string, bound: number) =>
            count(state.scanBelow!(prefix, field, bound)) as ReturnType<StateStore['scan']>,
        }),
  };
  return { reader, read };
}

const WAITING = 5000;

describe('block hooks over the SQLite state read only what fell due in the block', () => {
  it('the tag-deadline hook: the columns past their deadline, not the thousands still waiting', () => {
    const state = sqliteState();
    // Columns waiting far beyond the run (a long task's, as in bench:audit's bundle), and three due at block 20.
    state.apply([
      ...Array.from({ length: WAITING }, (_, i) => ({ key: untaggedKey(i), value: column(1_000_000 + i) })),
      ...[0, 1, 2].map((i) => ({ key: untaggedKey(WAITING + i), value: column(19) })),
    ]);
    const { reader, read } = counting(state);
    for (let block = 1; block <= 25; block++) {
      read.untagged = 0;
      const writes = applyBlockHooks(reader, ctxAt('', block));
      state.apply(writes);
      // Block 20 takes the three (their files are gone, so they are just dropped); no other block reads any.
      const taken = writes.filter((w) => w.key.startsWith(UNTAGGED));
      if (block === 20) {
        expect(taken).toEqual(
          [0, 1, 2].map((i) => ({ key: untaggedKey(WAITING + i), value: null })).sort(byKey),
        );
        expect(read.untagged).toBe(3);
      } else {
        expect(taken).toEqual([]);
        expect(read.untagged, `block ${block}`).toBe(0);
      }
    }
    expect(state.scan(UNTAGGED)).toHaveLength(WAITING);
  });

  it("the market's expiry hook: the requests past their expiry, not every open one", () => {
    const state = sqliteState();
    state.apply([
      ...Array.from({ length: WAITING }, (_, i) => ({ key: requestKey(i), value: request(1_000_000, i) })),
      { key: requestKey(WAITING), value: request(9, WAITING) },
    ]);
    const { reader, read } = counting(state);
    for (let block = 1; block <= 12; block++) {
      read.requests = 0;
      const writes = applyBlockHooks(reader, ctxAt('', block));
      state.apply(writes);
      expect(read.requests, `block ${block}`).toBe(block === 10 ? 1 : 0);
      // The expired request is closed and what it held owed back to its reader.
      if (block === 10) expect(writes).toContainEqual({ key: requestKey(WAITING), value: null });
    }
    expect(state.scan(REQUESTS)).toHaveLength(WAITING);
  });
});

const byKey = (a: StateWrite, b: StateWrite) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

describe('the hooks decide the same over either state', () => {
  it('SQLite (indexed lookups) and memory (scan and filter): the same writes and digests, block by block', () => {
    const memory = createMemoryState();
    const sqlite = sqliteState();
    // Deadlines spread over the run, some equal, and entries that are not due by construction (legacy requests
    // without an expiry), so that every block has something to take or to leave.
    const entries: StateWrite[] = [];
    for (let i = 0; i < 400; i++) {
      entries.push({ key: untaggedKey(i), value: column((i * 7919) % 60) });
      const { expiresAt: _, ...legacy } = request(0, i);
      entries.push({ key: requestKey(i), value: i % 5 === 0 ? legacy : request((i * 104_729) % 60, i) });
    }
    memory.apply(entries);
    sqlite.apply(entries);
    let [digestM, digestS] = [GENESIS_DIGEST, GENESIS_DIGEST];
    let moved = 0;
    for (let block = 1; block <= 62; block++) {
      const m = applyBlockHooks(memory, ctxAt('', block));
      const s = applyBlockHooks(sqlite, ctxAt('', block));
      expect(s).toEqual(m);
      memory.apply(m);
      sqlite.apply(s);
      digestM = nextDigest(digestM, block, m);
      digestS = nextDigest(digestS, block, s);
      moved += m.length;
    }
    expect(digestS).toBe(digestM);
    expect(moved).toBeGreaterThan(800);
    expect(sqlite.scan('')).toEqual(memory.scan(''));
    // What is left: the legacy requests, which never expire.
    expect(sqlite.scan(UNTAGGED)).toEqual([]);
    expect(sqlite.scan(REQUESTS)).toHaveLength(80);
  });
});
