import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KiB } from '../../src/shared/bytes.ts';
import { manualClock, systemRandom } from '../../src/shared/clock.ts';
import type { AilinkError } from '../../src/shared/errors.ts';
import {
  type FragmentStore,
  type FragmentStoreOptions,
  openFragmentStore,
} from '../../src/storage/miner/fragment-store.ts';
import { flipBit, rejectsWith, seededBytes, sha256Hex } from './helpers.ts';

// A real store: a directory under the OS temp dir, real files, a real SQLite index.

const ALICE = '5GrwvaDF5GrwvaDF-alice';
const BOB = '5FHneW46FHneW46-bob';
const CAROL = '5FLSigC9FLSigC9-carol';

let dir: string;
const open: FragmentStore[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ailink-store-'));
});

afterEach(() => {
  for (const s of open.splice(0)) {
    try {
      s.close();
    } catch {
      // already closed by the test
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

function openStore(over: Partial<FragmentStoreOptions> = {}): FragmentStore {
  const store = openFragmentStore(
    { clock: manualClock(1_700_000_000_000), random: systemRandom },
    { dir, capacity: 1024 * KiB, maxFragmentSize: 64 * KiB, ...over },
  );
  open.push(store);
  return store;
}

function frag(seed: string, size = 8 * KiB): { hash: string; bytes: Uint8Array } {
  const bytes = seededBytes(seed, size);
  return { hash: sha256Hex(bytes), bytes };
}

/** Writes `bytes` in a few chunks and commits: the whole happy path of one put. */
async function put(
  store: FragmentStore,
  hash: string,
  bytes: Uint8Array,
  owner = ALICE,
  deal?: string,
): Promise<'exists' | 'stored'> {
  const prepared = await store.prepare(hash, bytes.byteLength, owner, deal);
  if (prepared.state === 'exists') return 'exists';
  const { writer } = prepared;
  const step = Math.max(1, Math.ceil(bytes.byteLength / 3));
  for (let off = 0; off < bytes.byteLength; off += step) await writer.write(bytes.subarray(off, off + step));
  await writer.commit();
  return 'stored';
}

/** Every file under `sub` of the store dir, as paths relative to it. */
function filesUnder(sub: string): string[] {
  const root = join(dir, sub);
  const out: string[] = [];
  const walk = (d: string, rel: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p, `${rel}${name}/`);
      else out.push(`${rel}${name}`);
    }
  };
  walk(root, '');
  return out.sort();
}

const emptyUsage = { capacity: 1024 * KiB, used: 0, reserved: 0, fragments: 0 };

describe('fragment store: happy path', () => {
  it('prepare → write → commit, then read returns identical bytes and has() gives the size', async () => {
    const store = openStore();
    const { hash, bytes } = frag('a');
    expect(store.has(hash)).toBeNull();
    expect(await put(store, hash, bytes)).toBe('stored');
    expect(store.has(hash)).toEqual({ size: bytes.byteLength });
    expect(Buffer.from(await store.read(hash)).equals(Buffer.from(bytes))).toBe(true);
    expect(store.list()).toEqual([{ hash, size: bytes.byteLength }]);
    // Laid out as fragments/<h[0..2]>/<h>, nothing left in tmp/.
    expect(filesUnder('fragments')).toEqual([`${hash.slice(0, 2)}/${hash}`]);
    expect(filesUnder('tmp')).toEqual([]);
    expect(new Uint8Array(readFileSync(join(dir, 'fragments', hash.slice(0, 2), hash)))).toEqual(bytes);
  });

  it('stores an empty fragment and a fragment of exactly maxFragmentSize', async () => {
    const store = openStore();
    const empty = new Uint8Array(0);
    const max = frag('max', 64 * KiB);
    expect(await put(store, sha256Hex(empty), empty)).toBe('stored');
    expect(await put(store, max.hash, max.bytes)).toBe('stored');
    expect((await store.read(sha256Hex(empty))).byteLength).toBe(0);
    expect(await store.read(max.hash)).toEqual(max.bytes);
    expect(store.usage()).toMatchObject({ used: 64 * KiB, fragments: 2 });
  });

  it('accounts usage: used/fragments grow on commit, reserved covers an in-flight write, abort releases it', async () => {
    const store = openStore();
    expect(store.usage()).toEqual(emptyUsage);
    const a = frag('a', 8 * KiB);
    await put(store, a.hash, a.bytes);
    expect(store.usage()).toEqual({ ...emptyUsage, used: 8 * KiB, fragments: 1 });

    const b = frag('b', 16 * KiB);
    const prepared = await store.prepare(b.hash, b.bytes.byteLength, ALICE);
    if (prepared.state !== 'accept') throw new Error('expected accept');
    expect(store.usage()).toEqual({ ...emptyUsage, used: 8 * KiB, reserved: 16 * KiB, fragments: 1 });
    await prepared.writer.write(b.bytes.subarray(0, 4 * KiB));
    expect(store.usage().reserved).toBe(16 * KiB);
    expect(filesUnder('tmp')).toHaveLength(1);
    await prepared.writer.abort();
    await prepared.writer.abort(); // safe twice
    expect(store.usage()).toEqual({ ...emptyUsage, used: 8 * KiB, fragments: 1 });
    expect(store.has(b.hash)).toBeNull();
    expect(filesUnder('tmp')).toEqual([]);

    // The aborted hash can be stored afterwards.
    await put(store, b.hash, b.bytes);
    expect(store.usage()).toEqual({ ...emptyUsage, used: 24 * KiB, fragments: 2 });
  });

  it('a second put of the same bytes returns exists, adds an owner and uses no more space', async () => {
    const store = openStore();
    const { hash, bytes } = frag('a');
    expect(await put(store, hash, bytes, ALICE)).toBe('stored');
    expect(await put(store, hash, bytes, BOB)).toBe('exists');
    expect(await put(store, hash, bytes, ALICE)).toBe('exists');
    expect(store.usage()).toEqual({ ...emptyUsage, used: bytes.byteLength, fragments: 1 });
    // Bob is now an owner: his release is accepted and does not delete alice's copy.
    expect(await store.release(hash, BOB)).toEqual({ deleted: false });
    expect(store.has(hash)).toEqual({ size: bytes.byteLength });
  });
});

describe('fragment store: refused writes leave nothing behind', () => {
  async function expectUntouched(
    store: FragmentStore,
    hash: string,
    before: ReturnType<FragmentStore['usage']>,
  ) {
    expect(store.usage()).toEqual(before);
    expect(store.has(hash)).toBeNull();
    expect(filesUnder('tmp')).toEqual([]);
    expect(filesUnder('fragments').filter((f) => f.endsWith(hash))).toEqual([]);
    await rejectsWith(store.read(hash), 'FRAGMENT_NOT_FOUND');
  }

  it('FRAGMENT_HASH_MISMATCH: bytes of the right size that hash to something else', async () => {
    const store = openStore();
    const keep = frag('keep');
    await put(store, keep.hash, keep.bytes);
    const before = store.usage();
    const { hash, bytes } = frag('a');
    const prepared = await store.prepare(hash, bytes.byteLength, ALICE);
    if (prepared.state !== 'accept') throw new Error('expected accept');
    await prepared.writer.write(flipBit(bytes, 1234));
    await rejectsWith(prepared.writer.commit(), 'FRAGMENT_HASH_MISMATCH');
    await expectUntouched(store, hash, before);
    expect(await store.read(keep.hash)).toEqual(keep.bytes);
    expect(filesUnder('fragments')).toEqual([`${keep.hash.slice(0, 2)}/${keep.hash}`]);
  });

  it('FRAGMENT_SIZE_MISMATCH (short): commit after fewer bytes than declared', async () => {
    const store = openStore();
    const before = store.usage();
    const { hash, bytes } = frag('a');
    const prepared = await store.prepare(hash, bytes.byteLength, ALICE);
    if (prepared.state !== 'accept') throw new Error('expected accept');
    await prepared.writer.write(bytes.subarray(0, bytes.byteLength - 1));
    await rejectsWith(prepared.writer.commit(), 'FRAGMENT_SIZE_MISMATCH');
    await expectUntouched(store, hash, before);
  });

  it('FRAGMENT_SIZE_MISMATCH (long): a write past the declared size', async () => {
    const store = openStore();
    const before = store.usage();
    const { hash, bytes } = frag('a');
    const prepared = await store.prepare(hash, bytes.byteLength, ALICE);
    if (prepared.state !== 'accept') throw new Error('expected accept');
    await prepared.writer.write(bytes);
    await rejectsWith(prepared.writer.write(new Uint8Array(1)), 'FRAGMENT_SIZE_MISMATCH');
    await expectUntouched(store, hash, before);
    // The writer is finished: a late commit cannot index it.
    await expect(prepared.writer.commit()).rejects.toThrow();
    await expectUntouched(store, hash, before);
  });

  it('FRAGMENT_SIZE_MISMATCH (long, one chunk): a single chunk larger than declared', async () => {
    const store = openStore();
    const before = store.usage();
    const { bytes } = frag('a');
    const hash = sha256Hex(bytes.subarray(0, 100));
    const prepared = await store.prepare(hash, 100, ALICE);
    if (prepared.state !== 'accept') throw new Error('expected accept');
    await rejectsWith(prepared.writer.write(bytes.subarray(0, 101)), 'FRAGMENT_SIZE_MISMATCH');
    await expectUntouched(store, hash, before);
  });

  it('FRAGMENT_TOO_LARGE before anything is reserved', async () => {
    const store = openStore();
    const hash = sha256Hex(new Uint8Array(64 * KiB + 1));
    await rejectsWith(store.prepare(hash, 64 * KiB + 1, ALICE), 'FRAGMENT_TOO_LARGE');
    await expectUntouched(store, hash, emptyUsage);
  });

  it('MINER_FULL when committed bytes plus the new fragment exceed the capacity', async () => {
    const store = openStore({ capacity: 20 * KiB, maxFragmentSize: 16 * KiB });
    const a = frag('a', 16 * KiB);
    const b = frag('b', 16 * KiB);
    await put(store, a.hash, a.bytes);
    const before = store.usage();
    await rejectsWith(store.prepare(b.hash, 16 * KiB, ALICE), 'MINER_FULL');
    expect(store.usage()).toEqual(before);
    expect(store.has(b.hash)).toBeNull();
    // Exactly filling the capacity is allowed.
    const c = frag('c', 4 * KiB);
    expect(await put(store, c.hash, c.bytes)).toBe('stored');
    expect(store.usage()).toMatchObject({ used: 20 * KiB, reserved: 0, fragments: 2 });
    const d = sha256Hex(new Uint8Array([1]));
    await rejectsWith(store.prepare(d, 1, ALICE), 'MINER_FULL');
    // ... but a fragment already held is still accepted (it costs nothing).
    expect(await put(store, a.hash, a.bytes, BOB)).toBe('exists');
  });

  it('MINER_FULL when concurrent reservations would exceed the capacity; freed again by abort', async () => {
    const store = openStore({ capacity: 20 * KiB, maxFragmentSize: 16 * KiB });
    const a = frag('a', 16 * KiB);
    const b = frag('b', 16 * KiB);
    const first = await store.prepare(a.hash, 16 * KiB, ALICE);
    if (first.state !== 'accept') throw new Error('expected accept');
    await rejectsWith(store.prepare(b.hash, 16 * KiB, BOB), 'MINER_FULL');
    expect(store.usage()).toEqual({ capacity: 20 * KiB, used: 0, reserved: 16 * KiB, fragments: 0 });
    await first.writer.abort();
    expect(await put(store, b.hash, b.bytes, BOB)).toBe('stored');
    expect(store.has(a.hash)).toBeNull();
  });

  it('MINER_FULL race: many concurrent prepares never reserve beyond the capacity', async () => {
    const store = openStore({ capacity: 40 * KiB, maxFragmentSize: 16 * KiB });
    const frags = Array.from({ length: 8 }, (_, i) => frag(`race-${i}`, 16 * KiB));
    const results = await Promise.allSettled(frags.map((f) => store.prepare(f.hash, 16 * KiB, ALICE)));
    const accepted = results.filter((r) => r.status === 'fulfilled');
    const refused = results.filter((r) => r.status === 'rejected');
    expect(accepted).toHaveLength(2);
    for (const r of refused)
      expect(((r as PromiseRejectedResult).reason as AilinkError).code).toBe('MINER_FULL');
    expect(store.usage().reserved).toBe(32 * KiB);
    for (const r of accepted) {
      const v = (r as PromiseFulfilledResult<Awaited<ReturnType<FragmentStore['prepare']>>>).value;
      if (v.state === 'accept') await v.writer.abort();
    }
    expect(store.usage()).toEqual({ capacity: 40 * KiB, used: 0, reserved: 0, fragments: 0 });
  });

  it('a second concurrent upload of the same hash waits for the first: held once it commits, its own if it aborts', async () => {
    const store = openStore();
    const { hash, bytes } = frag('a');
    const first = await store.prepare(hash, bytes.byteLength, ALICE);
    if (first.state !== 'accept') throw new Error('expected accept');
    const second = store.prepare(hash, bytes.byteLength, BOB);
    let answered = false;
    void second.then(() => {
      answered = true;
    });
    await first.writer.write(bytes);
    await new Promise((r) => setTimeout(r, 20));
    expect(answered).toBe(false); // still waiting: nothing is written twice
    await first.writer.commit();
    expect((await second).state).toBe('exists');
    expect(store.usage()).toMatchObject({ used: bytes.byteLength, reserved: 0, fragments: 1 });
    // The first writer gives up: the waiting one writes the fragment itself.
    const other = frag('b');
    const a = await store.prepare(other.hash, other.bytes.byteLength, ALICE);
    if (a.state !== 'accept') throw new Error('expected accept');
    const b = store.prepare(other.hash, other.bytes.byteLength, BOB);
    await a.writer.abort();
    const taken = await b;
    if (taken.state !== 'accept') throw new Error('expected the waiting upload to write it');
    await taken.writer.write(other.bytes);
    await taken.writer.commit();
    expect(await store.read(other.hash)).toEqual(other.bytes);
  });
});

describe('fragment store: release, read errors', () => {
  it('release by a non-owner is AUTH_NOT_AUTHORISED and changes nothing', async () => {
    const store = openStore();
    const { hash, bytes } = frag('a');
    await put(store, hash, bytes, ALICE);
    const before = store.usage();
    await rejectsWith(store.release(hash, BOB), 'AUTH_NOT_AUTHORISED');
    expect(store.usage()).toEqual(before);
    expect(await store.read(hash)).toEqual(bytes);
  });

  it('bytes are removed only when the last owner lets go', async () => {
    const store = openStore();
    const { hash, bytes } = frag('a');
    await put(store, hash, bytes, ALICE);
    await put(store, hash, bytes, BOB);
    await put(store, hash, bytes, CAROL);
    expect(await store.release(hash, BOB)).toEqual({ deleted: false });
    await rejectsWith(store.release(hash, BOB), 'AUTH_NOT_AUTHORISED'); // once is enough
    expect(await store.release(hash, ALICE)).toEqual({ deleted: false });
    expect(await store.read(hash)).toEqual(bytes);
    expect(store.usage()).toMatchObject({ used: bytes.byteLength, fragments: 1 });
    expect(await store.release(hash, CAROL)).toEqual({ deleted: true });
    expect(store.has(hash)).toBeNull();
    expect(store.usage()).toEqual(emptyUsage);
    expect(filesUnder('fragments')).toEqual([]);
    await rejectsWith(store.release(hash, CAROL), 'FRAGMENT_NOT_FOUND');
    await rejectsWith(store.read(hash), 'FRAGMENT_NOT_FOUND');
    // After deletion the same bytes can be stored again, with fresh owners.
    expect(await put(store, hash, bytes, BOB)).toBe('stored');
    await rejectsWith(store.release(hash, ALICE), 'AUTH_NOT_AUTHORISED');
  });

  it('read of an unknown fragment is FRAGMENT_NOT_FOUND', async () => {
    const store = openStore();
    await rejectsWith(store.read('0'.repeat(64)), 'FRAGMENT_NOT_FOUND');
    await rejectsWith(store.release('0'.repeat(64), ALICE), 'FRAGMENT_NOT_FOUND');
  });

  it('a byte flipped on disk is FRAGMENT_CORRUPT on read; a truncated or vanished file too', async () => {
    const store = openStore();
    const a = frag('a');
    const b = frag('b');
    const c = frag('c');
    for (const f of [a, b, c]) await put(store, f.hash, f.bytes);
    const pathOf = (h: string) => join(dir, 'fragments', h.slice(0, 2), h);

    writeFileSync(pathOf(a.hash), flipBit(a.bytes, 8 * 4000 + 3));
    await rejectsWith(store.read(a.hash), 'FRAGMENT_CORRUPT');
    writeFileSync(pathOf(b.hash), b.bytes.subarray(0, 100));
    await rejectsWith(store.read(b.hash), 'FRAGMENT_CORRUPT');
    rmSync(pathOf(c.hash));
    await rejectsWith(store.read(c.hash), 'FRAGMENT_CORRUPT');
    // Other fragments are unaffected.
    const d = frag('d');
    await put(store, d.hash, d.bytes);
    expect(await store.read(d.hash)).toEqual(d.bytes);
  });
});

describe('fragment store: restart and crash recovery', () => {
  it('survives close + reopen: same fragments, same usage, owners and nonces persisted', async () => {
    const store = openStore();
    const a = frag('a', 8 * KiB);
    const b = frag('b', 12 * KiB);
    await put(store, a.hash, a.bytes, ALICE);
    await put(store, b.hash, b.bytes, ALICE);
    await put(store, b.hash, b.bytes, BOB);
    const usage = store.usage();
    const listed = store.list();
    expect(store.nonces.claim(ALICE, 'n'.repeat(32), 1_700_000_060_000)).toBe(true);
    expect(store.nonces.claim(ALICE, 'n'.repeat(32), 1_700_000_060_000)).toBe(false);
    store.close();

    const again = openStore();
    expect(again.usage()).toEqual(usage);
    expect(again.list()).toEqual(listed);
    expect(await again.read(a.hash)).toEqual(a.bytes);
    expect(await again.read(b.hash)).toEqual(b.bytes);
    expect(again.nonces.claim(ALICE, 'n'.repeat(32), 1_700_000_060_000)).toBe(false);
    expect(again.nonces.claim(BOB, 'n'.repeat(32), 1_700_000_060_000)).toBe(true);
    await rejectsWith(again.release(a.hash, BOB), 'AUTH_NOT_AUTHORISED');
    expect(await again.release(b.hash, ALICE)).toEqual({ deleted: false });
    expect(await again.release(b.hash, BOB)).toEqual({ deleted: true });
  });

  it('an in-flight write at close is not indexed after reopen and its tmp file is gone', async () => {
    const store = openStore();
    const { hash, bytes } = frag('a');
    const prepared = await store.prepare(hash, bytes.byteLength, ALICE);
    if (prepared.state !== 'accept') throw new Error('expected accept');
    await prepared.writer.write(bytes.subarray(0, 1000));
    expect(filesUnder('tmp')).toHaveLength(1);
    store.close();
    const again = openStore();
    expect(filesUnder('tmp')).toEqual([]);
    expect(again.has(hash)).toBeNull();
    expect(again.usage()).toEqual(emptyUsage);
    await prepared.writer.abort(); // closes the old handle; must not disturb the reopened store
    expect(again.usage()).toEqual(emptyUsage);
  });

  it('on open: removes tmp leftovers and unindexed files, drops indexed rows whose file vanished', async () => {
    const store = openStore();
    const keep = frag('keep');
    const lost = frag('lost');
    await put(store, keep.hash, keep.bytes, ALICE);
    await put(store, lost.hash, lost.bytes, ALICE);
    store.close();

    // Crash leftovers: a half-written tmp file, an unindexed (renamed but never indexed) fragment, a lost file.
    writeFileSync(join(dir, 'tmp', 'deadbeef.part'), seededBytes('partial', 3000));
    const orphan = frag('orphan');
    mkdirSync(join(dir, 'fragments', 'ab'), { recursive: true });
    const orphanPath = join(dir, 'fragments', 'ab', `ab${orphan.hash.slice(2)}`);
    writeFileSync(orphanPath, orphan.bytes);
    mkdirSync(join(dir, 'fragments', orphan.hash.slice(0, 2)), { recursive: true });
    writeFileSync(join(dir, 'fragments', orphan.hash.slice(0, 2), orphan.hash), orphan.bytes);
    rmSync(join(dir, 'fragments', lost.hash.slice(0, 2), lost.hash));

    const again = openStore();
    expect(filesUnder('tmp')).toEqual([]);
    expect(filesUnder('fragments')).toEqual([`${keep.hash.slice(0, 2)}/${keep.hash}`]);
    expect(again.has(lost.hash)).toBeNull();
    expect(again.has(orphan.hash)).toBeNull();
    expect(again.list()).toEqual([{ hash: keep.hash, size: keep.bytes.byteLength }]);
    expect(again.usage()).toEqual({ ...emptyUsage, used: keep.bytes.byteLength, fragments: 1 });
    await rejectsWith(again.read(lost.hash), 'FRAGMENT_NOT_FOUND');
    expect(await again.read(keep.hash)).toEqual(keep.bytes);
    // The lost fragment's owners went with its row: storing it again is a fresh store, not 'exists'.
    expect(await put(again, lost.hash, lost.bytes, BOB)).toBe('stored');
    await rejectsWith(again.release(lost.hash, ALICE), 'AUTH_NOT_AUTHORISED');
  });

  it('a stray regular file directly under fragments/ does not stop the store from opening', async () => {
    const store = openStore();
    const keep = frag('keep');
    await put(store, keep.hash, keep.bytes);
    store.close();
    writeFileSync(join(dir, 'fragments', 'stray'), 'x');
    const again = openStore();
    expect(await again.read(keep.hash)).toEqual(keep.bytes);
  });
});

describe('fragment store: block reads and proof tags', () => {
  it('readRange returns the bytes at an offset, zero-padded past the end, without reading the rest', async () => {
    const store = openStore();
    const { hash, bytes } = frag('range', 3000);
    await put(store, hash, bytes);
    expect(await store.readRange(hash, 1024, 1024)).toEqual(bytes.subarray(1024, 2048));
    const tail = await store.readRange(hash, 2048, 1024);
    expect(tail.subarray(0, 952)).toEqual(bytes.subarray(2048));
    expect(tail.subarray(952)).toEqual(new Uint8Array(72));
    expect(await store.readRange(hash, 4096, 16)).toEqual(new Uint8Array(16));
    await rejectsWith(store.readRange(frag('absent').hash, 0, 16), 'FRAGMENT_NOT_FOUND');
  });

  it('keeps tags beside a held fragment across a reopen, and drops them with the fragment', async () => {
    let store = openStore();
    const { hash, bytes } = frag('tagged');
    expect(() => store.putTags(hash, 'k'.repeat(64), new Uint8Array(8))).toThrow(/holds no fragment/);
    await put(store, hash, bytes);
    store.putTags(hash, 'a'.repeat(64), new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]));
    store.close();
    open.splice(open.indexOf(store), 1);
    store = openStore();
    expect(store.tagsOf(hash)).toEqual({
      keyId: 'a'.repeat(64),
      tags: new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]),
    });
    await store.release(hash, ALICE);
    expect(store.tagsOf(hash)).toBeNull();
  });
});

describe('collect (garbage collection)', () => {
  it('deletes what is unwanted and older than the cutoff, whoever owns it; a fragment stored again starts its grace anew', async () => {
    const clock = manualClock(1_000_000);
    const store = openFragmentStore(
      { clock, random: systemRandom },
      { dir, capacity: 1024 * KiB, maxFragmentSize: 64 * KiB },
    );
    open.push(store);
    const old = frag('old');
    const placed = frag('placed');
    const restored = frag('stored again');
    const fresh = frag('fresh');
    await put(store, old.hash, old.bytes, ALICE);
    await put(store, old.hash, old.bytes, BOB);
    await put(store, placed.hash, placed.bytes);
    await put(store, restored.hash, restored.bytes);
    store.putTags(old.hash, 'key', new Uint8Array(8));
    clock.advance(60_000);
    expect(await put(store, restored.hash, restored.bytes, CAROL)).toBe('exists');
    await put(store, fresh.hash, fresh.bytes);
    const before = store.usage();
    const seen: [string, readonly string[]][] = [];
    const result = await store.collect((hash, owners) => {
      seen.push([hash, owners.map((o) => o.account).sort()]);
      return hash === placed.hash;
    }, 1_000_000 + 30_000);
    // Only fragments stored before the cutoff are even considered; the owners are passed along.
    expect(seen.map(([h]) => h).sort()).toEqual([old.hash, placed.hash].sort());
    expect(seen.find(([h]) => h === old.hash)?.[1]).toEqual([ALICE, BOB].sort());
    expect(result).toEqual({ fragments: 1, bytes: old.bytes.byteLength });
    expect(store.has(old.hash)).toBeNull();
    expect(store.tagsOf(old.hash)).toBeNull();
    for (const kept of [placed, restored, fresh]) expect(store.has(kept.hash)).not.toBeNull();
    expect(store.usage()).toMatchObject({
      used: before.used - old.bytes.byteLength,
      fragments: before.fragments - 1,
    });
    await rejectsWith(store.read(old.hash), 'FRAGMENT_NOT_FOUND');
    // The bytes left the disk, and a reopened store agrees.
    store.close();
    const again = openStore();
    expect(again.has(old.hash)).toBeNull();
    expect(again.usage().fragments).toBe(3);
  });

  it('passes each owner with the uploads (deals) it stored the fragment for; a release and a collection forget them', async () => {
    const clock = manualClock(1_000_000);
    const options = { dir, capacity: 1024 * KiB, maxFragmentSize: 64 * KiB };
    let store = openFragmentStore({ clock, random: systemRandom }, options);
    open.push(store);
    const [d1, d2] = ['11'.repeat(16), '22'.repeat(16)];
    const shared = frag('shared');
    const bare = frag('no deal');
    await put(store, shared.hash, shared.bytes, ALICE, d1);
    expect(await put(store, shared.hash, shared.bytes, ALICE, d2)).toBe('exists');
    expect(await put(store, shared.hash, shared.bytes, BOB, d1)).toBe('exists');
    clock.advance(1000);
    await put(store, bare.hash, bare.bytes, CAROL);
    const ownersOf = async () => {
      const seen = new Map<string, Record<string, string[]>>();
      await store.collect((hash, owners) => {
        seen.set(hash, Object.fromEntries(owners.map((o) => [o.account, [...o.deals].sort()])));
        return true;
      }, Number.POSITIVE_INFINITY);
      return seen;
    };
    // Oldest first, whatever the hashes' order: a hold's allowance goes to an upload's first fragments.
    const later = frag('later');
    clock.advance(1000);
    await put(store, later.hash, later.bytes);
    expect([...(await ownersOf()).keys()]).toEqual([shared.hash, bare.hash, later.hash]);
    await store.release(later.hash, ALICE);
    // Kept across a restart: a miner's collection after it comes back still knows which upload a fragment is for.
    store.close();
    store = openFragmentStore({ clock, random: systemRandom }, options);
    open.push(store);
    expect(await ownersOf()).toEqual(
      new Map([
        [shared.hash, { [ALICE]: [d1, d2], [BOB]: [d1] }],
        [bare.hash, { [CAROL]: [] }],
      ]),
    );
    await store.release(shared.hash, ALICE);
    expect((await ownersOf()).get(shared.hash)).toEqual({ [BOB]: [d1] });
    await store.collect((hash) => hash !== shared.hash, Number.POSITIVE_INFINITY);
    // Stored anew by its old owner without a deal: nothing of the collected fragment's deals is left behind.
    await put(store, shared.hash, shared.bytes, BOB);
    expect((await ownersOf()).get(shared.hash)).toEqual({ [BOB]: [] });
  });
});
