import Database from 'better-sqlite3';
import { AilinkError } from '../shared/errors.ts';
import {
  type ObjectRecord,
  ObjectRecordSchema,
  type ObjectRegistry,
  type Placement,
  summaryOf,
} from './record.ts';

function checkColumns(record: ObjectRecord, miners: readonly string[]): void {
  const columns = record.profile.dataFragments + record.profile.parityFragments;
  if (miners.length !== columns || new Set(miners).size !== columns) {
    throw new AilinkError(
      'INVALID_INPUT',
      `expected ${columns} distinct miners, got ${miners.length} (${new Set(miners).size} distinct)`,
    );
  }
}

function notFound(fid: string): AilinkError {
  return new AilinkError(
    'OBJECT_NOT_FOUND',
    `no object ${fid} is recorded; check the fid or the --network you use`,
  );
}

function checkReassign(p: Placement | null, fid: string, column: number, miner: string): Placement {
  if (p === null) throw notFound(fid);
  if (!Number.isInteger(column) || column < 0 || column >= p.miners.length) {
    throw new AilinkError('INVALID_INPUT', `expected a column in 0..${p.miners.length - 1}, got ${column}`);
  }
  if (p.miners.some((m, i) => m === miner && i !== column)) {
    throw new AilinkError('INVALID_INPUT', `miner ${miner} already holds another column of ${fid}`);
  }
  return p;
}

/** The in-memory twin, for unit tests. */
export function createMemoryRegistry(): ObjectRegistry {
  const objects = new Map<string, { record: ObjectRecord; miners: string[] }>();
  const get = (fid: string): Placement | null => {
    const o = objects.get(fid);
    return o ? { record: structuredClone(o.record), miners: [...o.miners] } : null;
  };
  return {
    declare(record, miners) {
      checkColumns(record, miners);
      if (!objects.has(record.fid))
        objects.set(record.fid, { record: structuredClone(record), miners: [...miners] });
    },
    get,
    reassign(fid, column, miner) {
      checkReassign(get(fid), fid, column, miner);
      objects.get(fid)!.miners[column] = miner;
    },
    list: () =>
      [...objects.values()]
        .map((o) => summaryOf(o.record))
        .sort((a, b) => a.createdAt - b.createdAt || (a.fid < b.fid ? -1 : a.fid > b.fid ? 1 : 0)),
    close() {},
  };
}

/** The local SQLite registry: one file, survives restarts; the chain's file registry replaces it later. */
export function openSqliteRegistry(path: string): ObjectRegistry {
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
  const registry: ObjectRegistry = {
    declare(record, miners) {
      checkColumns(record, miners);
      db.transaction(() => {
        if (q.insertObject.run(record.fid, JSON.stringify(record), record.createdAt).changes === 0) return;
        for (const [i, m] of miners.entries()) q.insertPlacement.run(record.fid, i, m);
      })();
    },
    get(fid) {
      const row = q.getObject.get(fid);
      if (row === undefined) return null;
      return { record: parse(row.record), miners: q.getPlacements.all(fid).map((r) => r.miner) };
    },
    reassign(fid, column, miner) {
      checkReassign(registry.get(fid), fid, column, miner);
      q.move.run(miner, fid, column);
    },
    list: () => q.list.all().map((r) => summaryOf(parse(r.record))),
    close: () => db.close(),
  };
  return registry;
}
