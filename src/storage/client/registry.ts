import Database from 'better-sqlite3';
import type { PeerRef } from '../../p2p/index.ts';
import { AilinkError } from '../../shared/errors.ts';
import {
  checkNotTaken,
  type ObjectRecord,
  ObjectRecordSchema,
  type ObjectRegistry,
  type PlacedColumn,
  type Placement,
  summaryOf,
} from '../object/index.ts';

/** These registries cannot repair a deferred column, so every column must be placed, each on its own miner. */
function checkColumns(record: ObjectRecord, placed: readonly (PlacedColumn | null)[]): string[] {
  const miners = placed.map((c) => c?.peer.peerId ?? '(deferred)');
  const width = record.profile.dataFragments + record.profile.parityFragments;
  if (miners.length !== width || new Set(miners).size !== width) {
    throw new AilinkError(
      'INVALID_INPUT',
      `expected ${width} distinct miners, got ${miners.length} (${new Set(miners).size} distinct)`,
    );
  }
  return miners;
}

function notFound(fid: string): AilinkError {
  return new AilinkError(
    'OBJECT_NOT_FOUND',
    `no object ${fid} is recorded; check the fid or the --network you use`,
  );
}

/**
 * Checks a whole set of moves against the placement before any rebuild runs: the object exists, every column is in
 * range, and after all moves each miner still holds at most one column.
 */
function checkReassign(p: Placement | null, fid: string, moves: ReadonlyMap<number, PeerRef>): void {
  if (p === null) throw notFound(fid);
  const after = [...p.miners];
  for (const [column, peer] of moves) {
    if (!Number.isInteger(column) || column < 0 || column >= p.miners.length) {
      throw new AilinkError('INVALID_INPUT', `expected a column in 0..${p.miners.length - 1}, got ${column}`);
    }
    after[column] = peer.peerId;
  }
  for (const [column, peer] of moves) {
    if (after.some((m, i) => m === peer.peerId && i !== column)) {
      throw new AilinkError(
        'INVALID_INPUT',
        `miner ${peer.peerId} would hold more than one column of ${fid}`,
      );
    }
  }
}

/** The in-memory twin, for unit tests. `directory` lists the miners (a network file's, or a test's). */
export function createMemoryRegistry(directory: () => readonly PeerRef[] = () => []): ObjectRegistry {
  const objects = new Map<string, { record: ObjectRecord; miners: string[] }>();
  const get = (fid: string): Placement | null => {
    const o = objects.get(fid);
    return o ? { record: structuredClone(o.record), miners: [...o.miners] } : null;
  };
  return {
    needsReceipts: false,
    directory: async () => directory(),
    async declare(record, _deal, columns) {
      const miners = checkColumns(record, columns);
      if (checkNotTaken(objects.get(record.fid)?.record, record)) {
        objects.set(record.fid, { record: structuredClone(record), miners });
      }
    },
    get: async (fid) => get(fid),
    async reassign(fid, moves, rebuild) {
      checkReassign(get(fid), fid, moves);
      await rebuild();
      for (const [column, peer] of moves) objects.get(fid)!.miners[column] = peer.peerId;
    },
    list: async () =>
      [...objects.values()]
        .map((o) => summaryOf(o.record))
        .sort((a, b) => a.createdAt - b.createdAt || (a.fid < b.fid ? -1 : a.fid > b.fid ? 1 : 0)),
    async close() {},
  };
}

/** The local SQLite registry: one file, survives restarts. For offline use; a network records on chain. */
export function openSqliteRegistry(
  path: string,
  directory: () => readonly PeerRef[] = () => [],
): ObjectRegistry {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.exec(`
    CREATE TABLE IF NOT EXISTS objects (fid TEXT PRIMARY KEY, record TEXT NOT NULL, created_at INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS placements (fid TEXT NOT NULL, col INTEGER NOT NULL, miner TEXT NOT NULL,
      PRIMARY KEY (fid, col));
  `);
  const q = {
    insertObject: db.prepare('INSERT OR IGNORE INTO objects (fid, record, created_at) VALUES (?, ?, ?)'),
    insertPlacement: db.prepare('INSERT OR IGNORE INTO placements (fid, col, miner) VALUES (?, ?, ?)'),
    getObject: db.prepare<[string], { record: string }>('SELECT record FROM objects WHERE fid = ?'),
    getPlacements: db.prepare<[string], { miner: string }>(
      'SELECT miner FROM placements WHERE fid = ? ORDER BY col',
    ),
    move: db.prepare('UPDATE placements SET miner = ? WHERE fid = ? AND col = ?'),
    list: db.prepare<[], { record: string }>('SELECT record FROM objects ORDER BY created_at, fid'),
  };
  const parse = (text: string): ObjectRecord => ObjectRecordSchema.parse(JSON.parse(text));
  const getSync = (fid: string): Placement | null => {
    const row = q.getObject.get(fid);
    if (row === undefined) return null;
    return { record: parse(row.record), miners: q.getPlacements.all(fid).map((r) => r.miner) };
  };
  const registry: ObjectRegistry = {
    needsReceipts: false,
    directory: async () => directory(),
    async declare(record, _deal, columns) {
      const miners = checkColumns(record, columns);
      db.transaction(() => {
        if (!checkNotTaken(getSync(record.fid)?.record, record)) return;
        if (q.insertObject.run(record.fid, JSON.stringify(record), record.createdAt).changes === 0) return;
        for (const [i, m] of miners.entries()) q.insertPlacement.run(record.fid, i, m);
      })();
    },
    get: async (fid) => getSync(fid),
    async reassign(fid, moves, rebuild) {
      checkReassign(getSync(fid), fid, moves);
      await rebuild();
      db.transaction(() => {
        for (const [column, peer] of moves) q.move.run(peer.peerId, fid, column);
      })();
    },
    list: async () => q.list.all().map((r) => summaryOf(parse(r.record))),
    async close() {
      db.close();
    },
  };
  return registry;
}
