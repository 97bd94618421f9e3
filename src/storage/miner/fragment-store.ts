import { createHash, type Hash } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { type FileHandle, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { toHex } from '../../shared/bytes.ts';
import type { Clock, Random } from '../../shared/clock.ts';
import { AilinkError } from '../../shared/errors.ts';
import { fragmentHash, HASH_RE } from '../object/index.ts';
import { createSqliteNonceLedger, type NonceLedger } from '../protocol/index.ts';

/**
 * A miner's on-disk, content-addressed fragment store. Files live at fragments/<h[0..2]>/<h>; an SQLite index keeps
 * sizes, owners (the accounts that stored a fragment; it is deleted when the last one lets go), the uploads (deals)
 * each owner stored it for, and the nonce ledger.
 * A write goes to tmp/, is fsynced, renamed into place and only then indexed, so after a crash a fragment is either
 * fully present and indexed or not there at all (start-up removes tmp leftovers and unindexed files).
 * Every read re-hashes the bytes: a miner never serves a fragment that rotted on disk.
 */
export interface FragmentStore {
  usage(): StoreUsage;
  has(hash: string): { size: number } | null;
  /**
   * Starts storing `hash` for `owner`, as part of the upload `deal` when one is named. If the fragment is already
   * held, records the owner (and deal) and returns 'exists'. The deal is recorded once the bytes are.
   * @throws FRAGMENT_TOO_LARGE, MINER_FULL
   */
  prepare(
    hash: string,
    size: number,
    owner: string,
    deal?: string,
  ): Promise<{ state: 'exists' } | { state: 'accept'; writer: FragmentWriter }>;
  /** @throws FRAGMENT_NOT_FOUND, FRAGMENT_CORRUPT */
  read(hash: string): Promise<Uint8Array>;
  /** Lets `owner` go of a fragment; the bytes are removed when no owner is left. @throws FRAGMENT_NOT_FOUND, AUTH_NOT_AUTHORISED */
  release(hash: string, owner: string): Promise<{ deleted: boolean }>;
  list(): { hash: string; size: number }[];
  /**
   * Deletes every fragment stored (or stored again) before `storedBefore` (ms) that `keep` does not want, whoever
   * owns it: a miner's garbage collection of fragments no file on chain places on it any more (deleted or moved
   * files, uploads never declared). `keep` sees them oldest first.
   */
  collect(
    keep: (hash: string, owners: readonly FragmentOwner[], size: number) => boolean,
    storedBefore: number,
  ): Promise<{ fragments: number; bytes: number }>;
  /**
   * Reads `length` bytes at `offset` of a held fragment, zero-padded past its end, without re-hashing the whole
   * fragment: storage proofs read a few blocks of many fragments, and the proof itself is the check.
   * @throws FRAGMENT_NOT_FOUND, FRAGMENT_CORRUPT
   */
  readRange(hash: string, offset: number, length: number): Promise<Uint8Array>;
  /** Keeps a fragment's proof tags (and the verifier key they belong to) beside it. */
  putTags(hash: string, keyId: string, tags: Uint8Array): void;
  tagsOf(hash: string): { keyId: string; tags: Uint8Array } | null;
  readonly nonces: NonceLedger;
  close(): void;
}

/** An account that stored a fragment, and the uploads (deals) it named when it did; a put may name none. */
export interface FragmentOwner {
  readonly account: string;
  readonly deals: readonly string[];
}

export interface StoreUsage {
  readonly capacity: number;
  readonly used: number;
  readonly reserved: number;
  readonly fragments: number;
}

export interface FragmentWriter {
  write(chunk: Uint8Array): Promise<void>;
  /** Verifies length and hash, makes the fragment durable and indexes it. @throws FRAGMENT_SIZE_MISMATCH, FRAGMENT_HASH_MISMATCH */
  commit(): Promise<void>;
  /** Drops the partial write and its reservation; safe to call more than once. */
  abort(): Promise<void>;
}

export interface FragmentStoreOptions {
  readonly dir: string;
  /** Bytes this miner declares it can hold. */
  readonly capacity: number;
  /** Largest fragment accepted (CESS: 8 MiB). */
  readonly maxFragmentSize: number;
}

export function openFragmentStore(
  deps: { clock: Clock; random: Random },
  options: FragmentStoreOptions,
): FragmentStore {
  const fragmentsDir = join(options.dir, 'fragments');
  const tmpDir = join(options.dir, 'tmp');
  mkdirSync(fragmentsDir, { recursive: true });
  rmSync(tmpDir, { recursive: true, force: true });
  mkdirSync(tmpDir, { recursive: true });

  const db = new Database(join(options.dir, 'index.sqlite'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec(`
    CREATE TABLE IF NOT EXISTS fragments (hash TEXT PRIMARY KEY, size INTEGER NOT NULL, stored_at INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS owners (hash TEXT NOT NULL, account TEXT NOT NULL, PRIMARY KEY (hash, account));
    CREATE TABLE IF NOT EXISTS owner_deals (hash TEXT NOT NULL, account TEXT NOT NULL, deal TEXT NOT NULL,
      PRIMARY KEY (hash, account, deal));
    CREATE TABLE IF NOT EXISTS tags (hash TEXT PRIMARY KEY, key_id TEXT NOT NULL, tags BLOB NOT NULL);
  `);
  const q = {
    get: db.prepare<[string], { size: number }>('SELECT size FROM fragments WHERE hash = ?'),
    insert: db.prepare('INSERT INTO fragments (hash, size, stored_at) VALUES (?, ?, ?)'),
    remove: db.prepare('DELETE FROM fragments WHERE hash = ?'),
    addOwner: db.prepare('INSERT OR IGNORE INTO owners (hash, account) VALUES (?, ?)'),
    addDeal: db.prepare('INSERT OR IGNORE INTO owner_deals (hash, account, deal) VALUES (?, ?, ?)'),
    dealsOf: db.prepare<[string], { account: string; deal: string }>(
      'SELECT account, deal FROM owner_deals WHERE hash = ?',
    ),
    isOwner: db.prepare<[string, string], { n: number }>(
      'SELECT 1 AS n FROM owners WHERE hash = ? AND account = ?',
    ),
    dropOwner: db.prepare('DELETE FROM owners WHERE hash = ? AND account = ?'),
    dropOwnerDeals: db.prepare('DELETE FROM owner_deals WHERE hash = ? AND account = ?'),
    ownerCount: db.prepare<[string], { n: number }>('SELECT COUNT(*) AS n FROM owners WHERE hash = ?'),
    dropOwners: db.prepare('DELETE FROM owners WHERE hash = ?'),
    dropDeals: db.prepare('DELETE FROM owner_deals WHERE hash = ?'),
    totals: db.prepare<[], { used: number; n: number }>(
      'SELECT COALESCE(SUM(size), 0) AS used, COUNT(*) AS n FROM fragments',
    ),
    list: db.prepare<[], { hash: string; size: number }>('SELECT hash, size FROM fragments ORDER BY hash'),
    putTags: db.prepare(
      'INSERT INTO tags (hash, key_id, tags) VALUES (?, ?, ?) ON CONFLICT (hash) DO UPDATE SET key_id = excluded.key_id, tags = excluded.tags',
    ),
    tagsOf: db.prepare<[string], { key_id: string; tags: Buffer }>(
      'SELECT key_id, tags FROM tags WHERE hash = ?',
    ),
    dropTags: db.prepare('DELETE FROM tags WHERE hash = ?'),
    touch: db.prepare('UPDATE fragments SET stored_at = ? WHERE hash = ?'),
    storedBefore: db.prepare<[number], { hash: string; size: number }>(
      'SELECT hash, size FROM fragments WHERE stored_at < ? ORDER BY stored_at, hash',
    ),
    ownersOf: db.prepare<[string], { account: string }>('SELECT account FROM owners WHERE hash = ?'),
  };
  const pathOf = (hash: string) => join(fragmentsDir, hash.slice(0, 2), hash);
  const addOwner = (hash: string, owner: string, deal: string | undefined) => {
    q.addOwner.run(hash, owner);
    if (deal !== undefined) q.addDeal.run(hash, owner, deal);
  };
  /** Forgets a fragment's index rows (not its file). */
  const forget = db.transaction((hash: string) => {
    q.remove.run(hash);
    q.dropOwners.run(hash);
    q.dropDeals.run(hash);
    q.dropTags.run(hash);
  });

  reconcile();

  let { used, n: count } = q.totals.get()!;
  let reserved = 0;
  /** Fragments being written, each with a promise settled once its write is committed or dropped. */
  const inFlight = new Map<string, Promise<void>>();

  /** Removes files that were never indexed (a crash between rename and index) and rows whose file vanished. */
  function reconcile(): void {
    const indexed = new Set(q.list.all().map((r) => r.hash));
    const onDisk = new Set<string>();
    for (const shard of readdirSync(fragmentsDir, { withFileTypes: true })) {
      const shardPath = join(fragmentsDir, shard.name);
      if (!shard.isDirectory()) {
        rmSync(shardPath, { force: true, recursive: true });
        continue;
      }
      for (const name of readdirSync(shardPath)) {
        // Only an indexed fragment in its own shard folder counts; anything else is debris of a crash.
        if (indexed.has(name) && name.slice(0, 2) === shard.name) onDisk.add(name);
        else rmSync(join(shardPath, name), { force: true, recursive: true });
      }
    }
    for (const hash of indexed) if (!onDisk.has(hash)) forget(hash);
  }

  const store: FragmentStore = {
    usage: () => ({ capacity: options.capacity, used, reserved, fragments: count }),
    has(hash) {
      checkHash(hash);
      return q.get.get(hash) ?? null;
    },
    async prepare(hash, size, owner, deal) {
      checkHash(hash);
      if (size > options.maxFragmentSize) {
        throw new AilinkError(
          'FRAGMENT_TOO_LARGE',
          `expected a fragment of ≤ ${options.maxFragmentSize} bytes, got ${size}`,
        );
      }
      const held = q.get.get(hash);
      if (held !== undefined) {
        if (held.size !== size) {
          throw new AilinkError(
            'FRAGMENT_SIZE_MISMATCH',
            `fragment ${hash} is held with ${held.size} bytes, not ${size}`,
          );
        }
        addOwner(hash, owner, deal);
        // Stored again: the new upload gets its own grace before `collect` may take the fragment.
        q.touch.run(deps.clock.now(), hash);
        return { state: 'exists' };
      }
      const writing = inFlight.get(hash);
      if (writing !== undefined) {
        // Another upload of the same bytes is being written (concurrent puts share the all-zero padding fragment):
        // wait for it, then answer as it ended — held ('exists'), or gone (this request writes it). Refusing made a
        // client with no spare miner fail the whole put (found by bench:gateway). The writer's own request deadline
        // bounds the wait.
        await writing;
        return store.prepare(hash, size, owner, deal);
      }
      if (used + reserved + size > options.capacity) {
        throw new AilinkError(
          'MINER_FULL',
          `expected ${size} free bytes, have ${Math.max(0, options.capacity - used - reserved)} of ${options.capacity}`,
        );
      }
      reserved += size;
      let settled!: () => void;
      inFlight.set(
        hash,
        new Promise<void>((resolve) => {
          settled = resolve;
        }),
      );
      const tmpPath = join(tmpDir, `${toHex(deps.random(8))}.part`);
      let handle: FileHandle | undefined;
      let hasher: Hash | undefined = createHash('sha256');
      let written = 0;
      let done = false;
      const finish = async (keepFile: boolean) => {
        if (done) return;
        done = true;
        reserved -= size;
        inFlight.delete(hash);
        settled();
        await handle?.close().catch(() => {});
        handle = undefined;
        if (!keepFile) await rm(tmpPath, { force: true });
      };
      try {
        handle = await open(tmpPath, 'wx', 0o600);
      } catch (cause) {
        await finish(false);
        throw diskError(cause, size);
      }
      const writer: FragmentWriter = {
        async write(chunk) {
          if (done)
            throw new AilinkError(
              'INTERNAL',
              `expected writes to fragment ${hash} before its commit or abort, got one after (a bug in the caller)`,
            );
          if (written + chunk.byteLength > size) {
            await finish(false);
            throw new AilinkError(
              'FRAGMENT_SIZE_MISMATCH',
              `expected ${size} bytes, got more than that (${written + chunk.byteLength})`,
            );
          }
          try {
            await handle!.write(chunk);
          } catch (cause) {
            await finish(false);
            throw diskError(cause, size);
          }
          hasher!.update(chunk);
          written += chunk.byteLength;
        },
        async commit() {
          if (done)
            throw new AilinkError(
              'INTERNAL',
              `expected one commit of fragment ${hash}, got another after its commit or abort (a bug in the caller)`,
            );
          if (written !== size) {
            await finish(false);
            throw new AilinkError('FRAGMENT_SIZE_MISMATCH', `expected ${size} bytes, got ${written}`);
          }
          const got = hasher!.digest('hex');
          hasher = undefined;
          if (got !== hash) {
            await finish(false);
            throw new AilinkError('FRAGMENT_HASH_MISMATCH', `expected bytes hashing to ${hash}, got ${got}`);
          }
          try {
            await handle!.sync();
            await handle!.close();
            handle = undefined;
            const finalPath = pathOf(hash);
            await mkdir(join(fragmentsDir, hash.slice(0, 2)), { recursive: true });
            await rename(tmpPath, finalPath);
            const dir = await open(join(fragmentsDir, hash.slice(0, 2)), 'r');
            await dir.sync().finally(() => dir.close());
          } catch (cause) {
            await finish(false);
            throw diskError(cause, size);
          }
          db.transaction(() => {
            q.insert.run(hash, size, deps.clock.now());
            addOwner(hash, owner, deal);
          })();
          used += size;
          count += 1;
          await finish(true);
        },
        abort: () => finish(false),
      };
      return { state: 'accept', writer };
    },
    async read(hash) {
      checkHash(hash);
      const row = q.get.get(hash);
      if (row === undefined)
        throw new AilinkError('FRAGMENT_NOT_FOUND', `this miner holds no fragment ${hash}`);
      let bytes: Uint8Array;
      try {
        bytes = new Uint8Array(await readFile(pathOf(hash)));
      } catch (cause) {
        throw new AilinkError(
          'FRAGMENT_CORRUPT',
          `fragment ${hash} is indexed but unreadable: ${(cause as Error).message}`,
          {
            cause,
          },
        );
      }
      const got = fragmentHash(bytes);
      if (got !== hash || bytes.byteLength !== row.size) {
        throw new AilinkError(
          'FRAGMENT_CORRUPT',
          `stored fragment ${hash} now hashes to ${got}; it has rotted on disk`,
        );
      }
      return bytes;
    },
    async release(hash, owner) {
      checkHash(hash);
      const row = q.get.get(hash);
      if (row === undefined)
        throw new AilinkError('FRAGMENT_NOT_FOUND', `this miner holds no fragment ${hash}`);
      if (q.isOwner.get(hash, owner) === undefined) {
        throw new AilinkError('AUTH_NOT_AUTHORISED', `account ${owner} does not own fragment ${hash}`);
      }
      const last = db.transaction(() => {
        q.dropOwner.run(hash, owner);
        q.dropOwnerDeals.run(hash, owner);
        if (q.ownerCount.get(hash)!.n > 0) return false;
        forget(hash);
        return true;
      })();
      if (last) {
        used -= row.size;
        count -= 1;
        await rm(pathOf(hash), { force: true });
      }
      return { deleted: last };
    },
    list: () => q.list.all(),
    async collect(keep, storedBefore) {
      let fragments = 0;
      let bytes = 0;
      for (const { hash, size } of q.storedBefore.all(storedBefore)) {
        const deals = q.dealsOf.all(hash);
        const owners = q.ownersOf.all(hash).map(({ account }) => ({
          account,
          deals: deals.filter((d) => d.account === account).map((d) => d.deal),
        }));
        if (keep(hash, owners, size)) continue;
        forget(hash);
        used -= size;
        count -= 1;
        await rm(pathOf(hash), { force: true });
        fragments += 1;
        bytes += size;
      }
      return { fragments, bytes };
    },
    async readRange(hash, offset, length) {
      checkHash(hash);
      const row = q.get.get(hash);
      if (row === undefined)
        throw new AilinkError('FRAGMENT_NOT_FOUND', `this miner holds no fragment ${hash}`);
      const out = new Uint8Array(length);
      const want = Math.max(0, Math.min(length, row.size - offset));
      if (want === 0) return out;
      let handle: FileHandle | undefined;
      try {
        handle = await open(pathOf(hash), 'r');
        const { bytesRead } = await handle.read(out, 0, want, offset);
        if (bytesRead !== want)
          throw new AilinkError('FRAGMENT_CORRUPT', `read ${bytesRead} of ${want} bytes at ${offset}`);
      } catch (cause) {
        throw new AilinkError(
          'FRAGMENT_CORRUPT',
          `fragment ${hash} is indexed but unreadable: ${(cause as Error).message}`,
          { cause },
        );
      } finally {
        await handle?.close();
      }
      return out;
    },
    putTags(hash, keyId, tags) {
      checkHash(hash);
      if (q.get.get(hash) === undefined)
        throw new AilinkError('FRAGMENT_NOT_FOUND', `this miner holds no fragment ${hash}`);
      q.putTags.run(hash, keyId, Buffer.from(tags));
    },
    tagsOf(hash) {
      const row = q.tagsOf.get(hash);
      return row === undefined ? null : { keyId: row.key_id, tags: new Uint8Array(row.tags) };
    },
    nonces: createSqliteNonceLedger(db, deps.clock),
    close: () => db.close(),
  };
  return store;
}

/** Hashes become file names: anything but 64 lowercase hex characters could name a path outside the store. */
function checkHash(hash: string): void {
  if (!HASH_RE.test(hash))
    throw new AilinkError(
      'INVALID_INPUT',
      `expected a 64-char lowercase hex hash, got ${JSON.stringify(hash.slice(0, 80))}`,
    );
}

function diskError(cause: unknown, size: number): AilinkError {
  const code = (cause as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new AilinkError('MINER_FULL', `the disk is full: could not write ${size} bytes`, { cause });
  }
  return new AilinkError('FRAGMENT_CORRUPT', `could not write fragment: ${(cause as Error).message}`, {
    cause,
  });
}
