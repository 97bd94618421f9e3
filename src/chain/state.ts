import { createHash } from 'node:crypto';
import type { Database, Statement } from 'better-sqlite3';

/**
 * The protocol state: a sorted key-value map of JSON values, keys named `<pallet>/<map>/<key…>`. The rules read and
 * write it through `StateWriter`; the indexer keeps it in SQLite, tests in memory — both pass one contract suite.
 */
export type StateValue = string | number | boolean | null | StateValue[] | { [key: string]: StateValue };

export interface StateReader {
  get<T extends StateValue = StateValue>(key: string): T | undefined;
  /** Entries whose key starts with `prefix`, in key order. */
  scan(prefix: string): [string, StateValue][];
  /**
   * Entries whose key starts with `prefix` and whose value is an object with a number `field` below `bound`, in key
   * order: exactly what `scan` filtered so gives (`scanBelow` below does that for a reader without this method). A
   * store answers it from an index where it keeps one (the SQLite state, for `INDEXED_FIELDS`), so that a block hook
   * asking what fell due reads only that, not every entry still waiting.
   */
  scanBelow?(prefix: string, field: string, bound: number): [string, StateValue][];
}

export interface StateWriter extends StateReader {
  put(key: string, value: StateValue): void;
  delete(key: string): void;
}

/** One change; `value` null means deleted. */
export interface StateWrite {
  readonly key: string;
  readonly value: StateValue | null;
}

/** A store the indexer commits to. */
export interface StateStore extends StateReader {
  apply(writes: readonly StateWrite[]): void;
}

/**
 * The deadlines the block hooks look up in every block (`scanBelow`), which the SQLite state indexes: untagged
 * columns (`fileBank/untagged/`, file-bank.ts) and open key requests (`market/requests/`, market.ts). Without an
 * index each block would read every entry of the map, and a map that grows with the chain makes a long fold quadratic.
 * Which entries are found does not depend on it: an index only makes finding them cheaper.
 */
export const INDEXED_FIELDS: readonly { readonly prefix: string; readonly field: string }[] = [
  { prefix: 'fileBank/untagged/', field: 'deadline' },
  { prefix: 'market/requests/', field: 'expiresAt' },
];

/** True when `value` is an object whose `field` is a number below `bound` (what `scanBelow` selects). */
export function isBelow(value: StateValue, field: string, bound: number): boolean {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const v = value[field];
  return typeof v === 'number' && v < bound;
}

/**
 * Entries under `prefix` whose value has a number `field` below `bound`, in key order: from `state`'s own
 * `scanBelow` where it has one, else `scan` filtered.
 */
export function scanBelow(
  state: StateReader,
  prefix: string,
  field: string,
  bound: number,
): [string, StateValue][] {
  if (state.scanBelow !== undefined) return state.scanBelow(prefix, field, bound);
  return state.scan(prefix).filter(([, value]) => isBelow(value, field, bound));
}

const byKey = ([a]: [string, unknown], [b]: [string, unknown]) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Buffers writes over a store so that a rejected call leaves nothing behind: the rules run on an overlay, and only
 * a call that returns normally has its writes applied.
 */
export class Overlay implements StateWriter {
  readonly #base: StateReader;
  readonly #writes = new Map<string, StateValue | null>();

  constructor(base: StateReader) {
    this.#base = base;
  }

  get<T extends StateValue = StateValue>(key: string): T | undefined {
    if (this.#writes.has(key)) return (this.#writes.get(key) ?? undefined) as T | undefined;
    return this.#base.get<T>(key);
  }

  scan(prefix: string): [string, StateValue][] {
    const merged = new Map(this.#base.scan(prefix));
    for (const [key, value] of this.#writes) {
      if (!key.startsWith(prefix)) continue;
      if (value === null) merged.delete(key);
      else merged.set(key, value);
    }
    return [...merged].sort(byKey);
  }

  scanBelow(prefix: string, field: string, bound: number): [string, StateValue][] {
    const merged = new Map(scanBelow(this.#base, prefix, field, bound));
    // A buffered write replaces what the base holds: it is in the answer exactly when its own value qualifies.
    for (const [key, value] of this.#writes) {
      if (!key.startsWith(prefix)) continue;
      if (value !== null && isBelow(value, field, bound)) merged.set(key, value);
      else merged.delete(key);
    }
    return [...merged].sort(byKey);
  }

  put(key: string, value: StateValue): void {
    // A deep copy: a caller mutating its object afterwards must not change what was written.
    this.#writes.set(key, structuredClone(value));
  }

  delete(key: string): void {
    this.#writes.set(key, null);
  }

  /** The buffered writes, sorted by key. */
  writes(): StateWrite[] {
    return [...this.#writes]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([key, value]) => ({ key, value }));
  }
}

/** The in-memory twin. */
export function createMemoryState(): StateStore {
  const map = new Map<string, string>();
  return {
    get: (key) => {
      const v = map.get(key);
      return v === undefined ? undefined : JSON.parse(v);
    },
    scan: (prefix) =>
      [...map]
        .filter(([k]) => k.startsWith(prefix))
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([k, v]) => [k, JSON.parse(v)]),
    apply(writes) {
      for (const { key, value } of writes) {
        if (value === null) map.delete(key);
        else map.set(key, JSON.stringify(value));
      }
    },
  };
}

/** The state in an SQLite database (the caller owns the connection and wraps `apply` in its transaction). */
export function createSqliteState(db: Database): StateStore {
  db.exec('CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID');
  const q = {
    get: db.prepare<[string], { value: string }>('SELECT value FROM state WHERE key = ?'),
    // Keys are ASCII, so every key with the prefix sorts below prefix + U+FFFF.
    scan: db.prepare<[string, string], { key: string; value: string }>(
      'SELECT key, value FROM state WHERE key >= ? AND key < ? ORDER BY key',
    ),
    put: db.prepare(
      'INSERT INTO state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
    ),
    delete: db.prepare('DELETE FROM state WHERE key = ?'),
  };
  // One partial index per indexed field, over its map's keys only: `scanBelow` reads the entries below the bound and
  // no others. The SQL has the map's key range as literals, as a partial index is used only by a query naming the
  // index's own WHERE terms (INDEXED BY makes preparing fail rather than fall back to reading the whole map).
  const below = new Map<string, Statement<[number], { key: string; value: string }>>();
  for (const { prefix, field } of INDEXED_FIELDS) {
    const name = `state_${`${prefix}${field}`.replace(/[^A-Za-z0-9]+/g, '_')}`;
    const last = prefix.charCodeAt(prefix.length - 1);
    // Every key with the prefix sorts from the prefix to the prefix with its last character one higher.
    const range = `key >= ${sqlText(prefix)} AND key < ${sqlText(prefix.slice(0, -1) + String.fromCharCode(last + 1))}`;
    const path = sqlText(`$.${field}`);
    db.exec(`CREATE INDEX IF NOT EXISTS ${name} ON state (json_extract(value, ${path})) WHERE ${range}`);
    below.set(
      `${prefix}\n${field}`,
      db.prepare(
        `SELECT key, value FROM state INDEXED BY ${name} WHERE ${range} AND json_extract(value, ${path}) < ?
         AND json_type(value, ${path}) IN ('integer', 'real') ORDER BY key`,
      ),
    );
  }
  const parsed = (rows: { key: string; value: string }[]): [string, StateValue][] =>
    rows.map((r) => [r.key, JSON.parse(r.value)]);
  return {
    get: (key) => {
      const row = q.get.get(key);
      return row === undefined ? undefined : JSON.parse(row.value);
    },
    scan: (prefix) => parsed(q.scan.all(prefix, `${prefix}\uffff`)),
    scanBelow: (prefix, field, bound) => {
      const indexed = below.get(`${prefix}\n${field}`);
      if (indexed !== undefined) return parsed(indexed.all(bound));
      return parsed(q.scan.all(prefix, `${prefix}\uffff`)).filter(([, value]) =>
        isBelow(value, field, bound),
      );
    },
    apply(writes) {
      for (const { key, value } of writes) {
        if (value === null) q.delete.run(key);
        else q.put.run(key, JSON.stringify(value));
      }
    },
  };
}

/** `text` as an SQL string literal. */
const sqlText = (text: string) => `'${text.replaceAll("'", "''")}'`;

export const GENESIS_DIGEST = '0'.repeat(64);

/**
 * The state digest after a block: SHA-256 over the previous digest, the block number and the block's writes (sorted
 * by key, in canonical JSON). It commits to the whole history of state changes, so two indexers agree on it exactly
 * when they applied the same changes at the same heights; a block without protocol writes still moves it.
 */
export function nextDigest(previous: string, blockNumber: number, writes: readonly StateWrite[]): string {
  const h = createHash('sha256');
  h.update(previous).update(`\n${blockNumber}\n`);
  for (const w of writes) h.update(JSON.stringify([w.key, w.value])).update('\n');
  return h.digest('hex');
}
