import { createHash } from 'node:crypto';
import type { Database } from 'better-sqlite3';

/**
 * The protocol state: a sorted key-value map of JSON values, keys named `<pallet>/<map>/<key…>`. The rules read and
 * write it through `StateWriter`; the indexer keeps it in SQLite, tests in memory — both pass one contract suite.
 */
export type StateValue = string | number | boolean | null | StateValue[] | { [key: string]: StateValue };

export interface StateReader {
  get<T extends StateValue = StateValue>(key: string): T | undefined;
  /** Entries whose key starts with `prefix`, in key order. */
  scan(prefix: string): [string, StateValue][];
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
    return [...merged].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
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
  return {
    get: (key) => {
      const row = q.get.get(key);
      return row === undefined ? undefined : JSON.parse(row.value);
    },
    scan: (prefix) => q.scan.all(prefix, `${prefix}\uffff`).map((r) => [r.key, JSON.parse(r.value)]),
    apply(writes) {
      for (const { key, value } of writes) {
        if (value === null) q.delete.run(key);
        else q.put.run(key, JSON.stringify(value));
      }
    },
  };
}

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
