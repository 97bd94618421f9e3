import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MAX_SEGMENTS } from '../../src/chain/calls.ts';
import { transferReceiptMessage } from '../../src/chain/index.ts';
import { type MinerNode, type MinerNodeOptions, startMinerNode } from '../../src/node/miner.ts';
import { type ByteChannel, createHost, type Host, type PeerRef } from '../../src/p2p/index.ts';
import {
  type Account,
  accountFromSeeds,
  accountsReady,
  createKeyFile,
  verifySignature,
} from '../../src/shared/account.ts';
import { fromHex, KiB, MiB } from '../../src/shared/bytes.ts';
import { type Clock, manualClock, systemClock, systemRandom } from '../../src/shared/clock.ts';
import type { AilinkError, ErrorCode } from '../../src/shared/errors.ts';
import { zeroFragmentHash } from '../../src/storage/object/hash.ts';
import type { MinerLog } from '../../src/storage/protocol/fragment-protocol.ts';
import {
  bodyDigest,
  encodeJson,
  FRAGMENT_PROTOCOL,
  FragmentRequestSchema,
  MAX_COLUMN_SEGMENTS,
  MAX_FRAME_BYTES,
} from '../../src/storage/protocol/fragment-protocol.ts';
import { createMinerClient, type MinerClient } from '../../src/storage/protocol/miner-client.ts';
import { signRequest } from '../../src/storage/protocol/request-auth.ts';
import { flipBit, rejectsWith, seededBytes, sha256Hex } from './helpers.ts';

// A real miner (libp2p over 127.0.0.1, SQLite + files in a temp dir) and real clients with real sr25519 accounts.
// Every refusal is checked twice: the code the client sees, and that the miner's store did not change.

const LOOPBACK = '/ip4/127.0.0.1/tcp/0';
const MAX_FRAGMENT = 1 * MiB;
const SIGNATURE_TTL = 30_000;
const REPLY_TIMEOUT = 5_000;

const quietLog = (): MinerLog & {
  events: { level: string; event: string; fields?: Record<string, unknown> }[];
} => {
  const events: { level: string; event: string; fields?: Record<string, unknown> }[] = [];
  return {
    events,
    info: (event, fields) => events.push({ level: 'info', event, fields }),
    warn: (event, fields) => events.push({ level: 'warn', event, fields }),
  };
};

let root: string;
let alice: Account;
let bob: Account;
let mallory: Account;
let clientHost: Host;
let miner: MinerNode;
let minerDir: string;
let peer: PeerRef;
let asAlice: MinerClient;
let asBob: MinerClient;
let asMallory: MinerClient;
/** Miners a single test starts; stopped after it. */
const extraMiners: MinerNode[] = [];

function minerOptions(dataDir: string, over: Partial<MinerNodeOptions> = {}): MinerNodeOptions {
  return {
    dataDir,
    listen: [LOOPBACK],
    allow: [alice.address, bob.address],
    capacity: 64 * MiB,
    maxFragmentSize: MAX_FRAGMENT,
    maxSignatureTtlMs: 60_000,
    requestDeadlineMs: 5_000,
    ...over,
  };
}

const startMiner = (dataDir: string, over: Partial<MinerNodeOptions> = {}) =>
  startMinerNode({ clock: systemClock, random: systemRandom, log: quietLog() }, minerOptions(dataDir, over));

const refOf = (node: MinerNode): PeerRef => ({ peerId: node.peerId, addrs: node.addrs() });

function clientFor(account: Account): MinerClient {
  return createMinerClient(
    { host: clientHost, account, clock: systemClock, random: systemRandom },
    { requestTimeoutMs: 5_000, signatureTtlMs: SIGNATURE_TTL, maxFragmentSize: 2 * MiB },
  );
}

beforeAll(async () => {
  await accountsReady();
  root = mkdtempSync(join(tmpdir(), 'ailink-miner-'));
  alice = await createKeyFile(join(root, 'alice.key'), systemRandom);
  bob = await createKeyFile(join(root, 'bob.key'), systemRandom);
  mallory = accountFromSeeds(seededBytes('mallory-sr25519', 32), seededBytes('mallory-x25519', 32));
  minerDir = join(root, 'miner');
  miner = await startMiner(minerDir);
  peer = refOf(miner);
  clientHost = await createHost({ listen: [LOOPBACK] });
  asAlice = clientFor(alice);
  asBob = clientFor(bob);
  asMallory = clientFor(mallory);
});

afterEach(async () => {
  await Promise.all(extraMiners.splice(0).map((m) => m.stop().catch(() => {})));
});

afterAll(async () => {
  await clientHost?.stop();
  await miner?.stop();
  if (root) rmSync(root, { recursive: true, force: true });
});

// --- helpers ------------------------------------------------------------------------------------------------

function frag(seed: string, size = 8 * KiB): { hash: string; bytes: Uint8Array } {
  const bytes = seededBytes(seed, size);
  return { hash: sha256Hex(bytes), bytes };
}

/** Every fragment file a miner holds on disk, relative to its fragments/ dir. */
function filesOf(dataDir: string): string[] {
  const out: string[] = [];
  const base = join(dataDir, 'fragments');
  for (const shard of readdirSync(base)) {
    if (!statSync(join(base, shard)).isDirectory()) continue;
    for (const name of readdirSync(join(base, shard))) out.push(`${shard}/${name}`);
  }
  return out.sort();
}

/** Byte-for-byte equality; the client may hand back a Buffer view, so compare contents, not classes. */
function expectBytes(got: Uint8Array, want: Uint8Array): void {
  expect(got.byteLength).toBe(want.byteLength);
  expect(Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(Buffer.from(want))).toBe(true);
}

/** Snapshot of what the main miner stores; compare before and after a refused request. */
function snapshot(): string[] {
  return filesOf(minerDir);
}

interface Reply {
  ok: boolean;
  error?: { code: string; message: string };
  send?: boolean;
  stored?: boolean;
  size?: number | null;
  deleted?: boolean;
}

const rawOpen = (to: PeerRef = peer): Promise<ByteChannel> =>
  clientHost.open(to, FRAGMENT_PROTOCOL, { signal: AbortSignal.timeout(REPLY_TIMEOUT) });

async function readReply(channel: ByteChannel): Promise<Reply> {
  const frame = await channel.readFrame(MAX_FRAME_BYTES, { signal: AbortSignal.timeout(REPLY_TIMEOUT) });
  return JSON.parse(new TextDecoder().decode(frame)) as Reply;
}

/** One raw request frame (any JSON or raw bytes) on a fresh stream; returns the first reply frame. */
async function rawRequest(frame: unknown, to: PeerRef = peer): Promise<Reply> {
  const channel = await rawOpen(to);
  try {
    await channel.writeFrame(frame instanceof Uint8Array ? frame : encodeJson(frame));
    return await readReply(channel);
  } finally {
    channel.abort(new Error('test done'));
  }
}

function expectRefused(reply: Reply, code: ErrorCode): void {
  expect(reply.ok, JSON.stringify(reply)).toBe(false);
  expect(reply.error?.code, reply.error?.message).toBe(code);
  expect(typeof reply.error?.message).toBe('string');
}

/** A request exactly as the client would build it, with knobs to make it wrong. */
function signedRequest(
  account: Account,
  op: 'put' | 'get' | 'has' | 'delete',
  fragment: string,
  size: number,
  opts: { audience?: string; clock?: Clock; ttl?: number; signedFragment?: string } = {},
) {
  const audience = opts.audience ?? peer.peerId;
  const auth = signRequest(
    account,
    { op, fragment: opts.signedFragment ?? fragment, size: op === 'put' ? size : 0, audience },
    { clock: opts.clock ?? systemClock, random: systemRandom },
    opts.ttl ?? SIGNATURE_TTL,
  );
  return op === 'put' ? { op, fragment, size, audience, auth } : { op, fragment, audience, auth };
}

// --- tests --------------------------------------------------------------------------------------------------

describe('miner: happy path', { timeout: 15_000 }, () => {
  it.each([
    ['8 KiB', 8 * KiB],
    ['1 MiB', 1 * MiB],
  ])('put + has + get + delete of a %s fragment', async (_label, size) => {
    const { hash, bytes } = frag(`happy-${size}`, size);
    const before = snapshot();
    expect(await asAlice.has(peer, hash)).toBeNull();
    await asAlice.put(peer, hash, bytes);
    expect(await asAlice.has(peer, hash)).toBe(size);
    expect(await asBob.has(peer, hash)).toBe(size); // any authorised account may ask
    const got = await asAlice.get(peer, hash);
    expect(got.byteLength).toBe(size);
    expect(Buffer.from(got).equals(Buffer.from(bytes))).toBe(true);
    expect(snapshot()).toEqual([...before, `${hash.slice(0, 2)}/${hash}`].sort());
    // The bytes on disk are the bytes sent.
    expect(sha256Hex(new Uint8Array(readFileSync(join(minerDir, 'fragments', hash.slice(0, 2), hash))))).toBe(
      hash,
    );
    expect(await asAlice.delete(peer, hash)).toBe(true);
    expect(await asAlice.has(peer, hash)).toBeNull();
    await rejectsWith(asAlice.get(peer, hash), 'FRAGMENT_NOT_FOUND');
    expect(snapshot()).toEqual(before);
  });

  it('a second put of held bytes is not re-sent; it adds an owner and delete waits for the last one', async () => {
    const { hash, bytes } = frag('shared');
    await asAlice.put(peer, hash, bytes);
    // Raw put for bob: the miner answers send:false and stored:true without a body.
    const channel = await rawOpen();
    try {
      await channel.writeFrame(encodeJson(signedRequest(bob, 'put', hash, bytes.byteLength)));
      expect(await readReply(channel)).toEqual({ ok: true, send: false });
      expect(await readReply(channel)).toEqual({ ok: true, stored: true });
    } finally {
      channel.abort(new Error('test done'));
    }
    expect(await asAlice.delete(peer, hash)).toBe(false);
    expectBytes(await asBob.get(peer, hash), bytes);
    expect(await asBob.delete(peer, hash)).toBe(true);
    expect(await asAlice.has(peer, hash)).toBeNull();
  });

  it('zero fragment: the body is not sent, the miner writes the zeros, get returns zeros', async () => {
    const size = 64 * KiB;
    const hash = zeroFragmentHash(size);
    const before = snapshot();
    const channel = await rawOpen();
    try {
      await channel.writeFrame(encodeJson(signedRequest(alice, 'put', hash, size)));
      expect(await readReply(channel)).toEqual({ ok: true, send: false });
      // No body byte was written; the miner still confirms the store.
      expect(await readReply(channel)).toEqual({ ok: true, stored: true });
    } finally {
      channel.abort(new Error('test done'));
    }
    expect(snapshot()).toEqual([...before, `${hash.slice(0, 2)}/${hash}`].sort());
    const got = await asAlice.get(peer, hash);
    expect(got.byteLength).toBe(size);
    expect(got.every((b) => b === 0)).toBe(true);
    // Through the client too (a different size, so a different hash).
    const zeros = new Uint8Array(40 * KiB);
    await asAlice.put(peer, zeroFragmentHash(zeros.byteLength), zeros);
    expectBytes(await asAlice.get(peer, zeroFragmentHash(zeros.byteLength)), zeros);
    expect(await asAlice.delete(peer, hash)).toBe(true);
    expect(await asAlice.delete(peer, zeroFragmentHash(zeros.byteLength))).toBe(true);
    expect(snapshot()).toEqual(before);
  });
});

describe('miner: bad bodies', { timeout: 15_000 }, () => {
  it('FRAGMENT_HASH_MISMATCH when the bytes do not hash to the claimed hash', async () => {
    const claimed = frag('claimed');
    const sent = frag('sent');
    const before = snapshot();
    await rejectsWith(asAlice.put(peer, claimed.hash, sent.bytes), 'FRAGMENT_HASH_MISMATCH');
    // A single flipped bit is caught the same way.
    await rejectsWith(asAlice.put(peer, claimed.hash, flipBit(claimed.bytes, 777)), 'FRAGMENT_HASH_MISMATCH');
    expect(await asAlice.has(peer, claimed.hash)).toBeNull();
    expect(await asAlice.has(peer, sent.hash)).toBeNull();
    expect(snapshot()).toEqual(before);
    // The honest put afterwards works: nothing was left reserved or half-written.
    await asAlice.put(peer, claimed.hash, claimed.bytes);
    expect(await asAlice.delete(peer, claimed.hash)).toBe(true);
  });

  it('FRAGMENT_SIZE_MISMATCH when fewer bytes than announced arrive before the stream closes', async () => {
    const { hash, bytes } = frag('short', 8 * KiB);
    const before = snapshot();
    const channel = await rawOpen();
    try {
      await channel.writeFrame(encodeJson(signedRequest(alice, 'put', hash, bytes.byteLength)));
      expect(await readReply(channel)).toEqual({ ok: true, send: true });
      await channel.write(bytes.subarray(0, 5000));
      await channel.closeWrite({ signal: AbortSignal.timeout(REPLY_TIMEOUT) });
      expectRefused(await readReply(channel), 'FRAGMENT_SIZE_MISMATCH');
    } finally {
      channel.abort(new Error('test done'));
    }
    expect(await asAlice.has(peer, hash)).toBeNull();
    expect(snapshot()).toEqual(before);
  });

  it('FRAGMENT_SIZE_MISMATCH when the stream closes before any body byte', async () => {
    const { hash, bytes } = frag('nobody', 8 * KiB);
    const before = snapshot();
    const channel = await rawOpen();
    try {
      await channel.writeFrame(encodeJson(signedRequest(alice, 'put', hash, bytes.byteLength)));
      expect(await readReply(channel)).toEqual({ ok: true, send: true });
      await channel.closeWrite({ signal: AbortSignal.timeout(REPLY_TIMEOUT) });
      expectRefused(await readReply(channel), 'FRAGMENT_SIZE_MISMATCH');
    } finally {
      channel.abort(new Error('test done'));
    }
    expect(await asAlice.has(peer, hash)).toBeNull();
    expect(snapshot()).toEqual(before);
  });

  it('a client that vanishes mid-body leaves nothing stored and nothing reserved', async () => {
    const { hash, bytes } = frag('vanish', 256 * KiB);
    const before = snapshot();
    const channel = await rawOpen();
    await channel.writeFrame(encodeJson(signedRequest(alice, 'put', hash, bytes.byteLength)));
    expect(await readReply(channel)).toEqual({ ok: true, send: true });
    await channel.write(bytes.subarray(0, 100 * KiB));
    channel.abort(new Error('client crashed'));
    // The reservation is released as soon as the miner sees the reset: a full put of the same hash then goes
    // through (until then it waits for the vanished write).
    await expect
      .poll(
        async () => {
          try {
            await asAlice.put(peer, hash, bytes);
            return 'stored';
          } catch (err) {
            return (err as AilinkError).code;
          }
        },
        { timeout: 4_000, interval: 50 },
      )
      .toBe('stored');
    expect(snapshot()).toEqual([...before, `${hash.slice(0, 2)}/${hash}`].sort());
    expect(await asAlice.delete(peer, hash)).toBe(true);
    expect(snapshot()).toEqual(before);
  });

  it('TIMEOUT for a client that stalls mid-body past the request deadline; the reservation is released', async () => {
    const dir = join(root, 'deadline-miner');
    const slow = await startMiner(dir, {
      requestDeadlineMs: 400,
      capacity: 20 * KiB,
      maxFragmentSize: 16 * KiB,
    });
    extraMiners.push(slow);
    const to = refOf(slow);
    const { hash, bytes } = frag('stall', 16 * KiB);
    const channel = await rawOpen(to);
    try {
      await channel.writeFrame(
        encodeJson(signedRequest(alice, 'put', hash, bytes.byteLength, { audience: to.peerId })),
      );
      expect(await readReply(channel)).toEqual({ ok: true, send: true });
      await channel.write(bytes.subarray(0, 1000));
      // ...and nothing more: the miner gives up at its deadline.
      expectRefused(await readReply(channel), 'TIMEOUT');
    } finally {
      channel.abort(new Error('test done'));
    }
    expect(filesOf(dir)).toEqual([]);
    // The 16 KiB reservation is gone: a full put of the same size fits the 20 KiB miner again.
    await asAlice.put(to, hash, bytes);
    expectBytes(await asAlice.get(to, hash), bytes);
  });

  it('FRAGMENT_TOO_LARGE for a fragment over maxFragmentSize, before any body moves', async () => {
    const big = frag('big', MAX_FRAGMENT + 1);
    const before = snapshot();
    await rejectsWith(asAlice.put(peer, big.hash, big.bytes), 'FRAGMENT_TOO_LARGE');
    // Announcing an absurd size gets the same answer in place of the go-ahead.
    expectRefused(await rawRequest(signedRequest(alice, 'put', big.hash, 2 ** 31)), 'FRAGMENT_TOO_LARGE');
    expect(await asAlice.has(peer, big.hash)).toBeNull();
    expect(snapshot()).toEqual(before);
  });
});

describe('miner: signatures and authorisation', { timeout: 15_000 }, () => {
  it('AUTH_MISSING for an unsigned request', async () => {
    const { hash, bytes } = frag('unsigned');
    const before = snapshot();
    for (const request of [
      { op: 'put', fragment: hash, size: bytes.byteLength, audience: peer.peerId },
      { op: 'get', fragment: hash, audience: peer.peerId },
      { op: 'has', fragment: hash, audience: peer.peerId },
      { op: 'delete', fragment: hash, audience: peer.peerId },
    ]) {
      expectRefused(await rawRequest(request), 'AUTH_MISSING');
    }
    expect(snapshot()).toEqual(before);
  });

  it('AUTH_EXPIRED for a signature that expired (signed with a clock in the past)', async () => {
    const { hash, bytes } = frag('expired');
    const before = snapshot();
    const past = manualClock(Date.now() - 2 * SIGNATURE_TTL);
    expectRefused(
      await rawRequest(signedRequest(alice, 'put', hash, bytes.byteLength, { clock: past })),
      'AUTH_EXPIRED',
    );
    expect(await asAlice.has(peer, hash)).toBeNull();
    expect(snapshot()).toEqual(before);
  });

  it('AUTH_EXPIRY_TOO_FAR for a signature valid longer than the miner allows', async () => {
    const { hash, bytes } = frag('too-far');
    const before = snapshot();
    expectRefused(
      await rawRequest(signedRequest(alice, 'put', hash, bytes.byteLength, { ttl: 24 * 3600_000 })),
      'AUTH_EXPIRY_TOO_FAR',
    );
    expect(snapshot()).toEqual(before);
  });

  it('AUTH_REPLAYED when the exact same signed request is sent twice', async () => {
    const { hash, bytes } = frag('replayed');
    const request = signedRequest(alice, 'put', hash, bytes.byteLength);
    const channel = await rawOpen();
    try {
      await channel.writeFrame(encodeJson(request));
      expect(await readReply(channel)).toEqual({ ok: true, send: true });
      await channel.write(bytes);
      await channel.closeWrite({ signal: AbortSignal.timeout(REPLY_TIMEOUT) });
      expect(await readReply(channel)).toEqual({ ok: true, stored: true });
    } finally {
      channel.abort(new Error('test done'));
    }
    const before = snapshot();
    expectRefused(await rawRequest(request), 'AUTH_REPLAYED');
    // A replayed delete cannot remove it either.
    const del = signedRequest(alice, 'delete', hash, 0);
    expect(await rawRequest(del)).toEqual({ ok: true, deleted: true });
    await asAlice.put(peer, hash, bytes);
    expectRefused(await rawRequest(del), 'AUTH_REPLAYED');
    expect(await asAlice.has(peer, hash)).toBe(bytes.byteLength);
    expect(snapshot()).toEqual(before);
    expect(await asAlice.delete(peer, hash)).toBe(true);
  });

  it('AUTH_BAD_SIGNATURE for a signature over other fields', async () => {
    const { hash, bytes } = frag('bad-sig');
    const other = frag('bad-sig-other');
    const before = snapshot();
    expectRefused(
      await rawRequest(signedRequest(alice, 'put', hash, bytes.byteLength, { signedFragment: other.hash })),
      'AUTH_BAD_SIGNATURE',
    );
    // Size changed after signing.
    const request = signedRequest(alice, 'put', hash, bytes.byteLength);
    expectRefused(await rawRequest({ ...request, size: bytes.byteLength + 1 }), 'AUTH_BAD_SIGNATURE');
    // Op changed after signing (a signed has turned into a delete).
    const has = signedRequest(alice, 'has', hash, 0);
    expectRefused(await rawRequest({ ...has, op: 'delete' }), 'AUTH_BAD_SIGNATURE');
    // One hex digit of the signature changed.
    const sig = request.auth.signature;
    const flipped = `${sig.slice(0, 10)}${sig[10] === 'a' ? 'b' : 'a'}${sig.slice(11)}`;
    expectRefused(
      await rawRequest({ ...request, auth: { ...request.auth, signature: flipped } }),
      'AUTH_BAD_SIGNATURE',
    );
    // Claiming to be bob with alice's signature.
    expectRefused(
      await rawRequest({ ...request, auth: { ...request.auth, account: bob.address } }),
      'AUTH_BAD_SIGNATURE',
    );
    expect(await asAlice.has(peer, hash)).toBeNull();
    expect(snapshot()).toEqual(before);
    // The unaltered request was never used, so it still works: refusals burned no nonce.
    const channel = await rawOpen();
    try {
      await channel.writeFrame(encodeJson(request));
      expect(await readReply(channel)).toEqual({ ok: true, send: true });
    } finally {
      channel.abort(new Error('test done'));
    }
  });

  it('AUTH_WRONG_AUDIENCE for a request signed for another miner', async () => {
    const { hash, bytes } = frag('audience');
    const before = snapshot();
    // The client host's own peer id stands in for "another miner".
    expectRefused(
      await rawRequest(signedRequest(alice, 'put', hash, bytes.byteLength, { audience: clientHost.peerId })),
      'AUTH_WRONG_AUDIENCE',
    );
    expect(snapshot()).toEqual(before);
  });

  it('AUTH_NOT_AUTHORISED for an account not on the allow list, for every op that stores or deletes', async () => {
    const held = frag('held-by-alice');
    await asAlice.put(peer, held.hash, held.bytes);
    const { hash, bytes } = frag('mallory');
    const before = snapshot();
    await rejectsWith(asMallory.put(peer, hash, bytes), 'AUTH_NOT_AUTHORISED');
    await rejectsWith(asMallory.put(peer, held.hash, held.bytes), 'AUTH_NOT_AUTHORISED');
    await rejectsWith(asMallory.delete(peer, held.hash), 'AUTH_NOT_AUTHORISED');
    // Reading is open to any account that signs: a plain object is public, an encrypted one needs its key.
    expectBytes(await asMallory.get(peer, held.hash), held.bytes);
    expect(await asMallory.has(peer, held.hash)).toBe(held.bytes.byteLength);
    expect(await asAlice.has(peer, hash)).toBeNull();
    expectBytes(await asAlice.get(peer, held.hash), held.bytes);
    expect(snapshot()).toEqual(before);
    expect(await asAlice.delete(peer, held.hash)).toBe(true);
  });

  it('delete by an authorised account that does not own the fragment is AUTH_NOT_AUTHORISED', async () => {
    const { hash, bytes } = frag('owned-by-alice');
    await asAlice.put(peer, hash, bytes);
    const before = snapshot();
    await rejectsWith(asBob.delete(peer, hash), 'AUTH_NOT_AUTHORISED');
    expectBytes(await asAlice.get(peer, hash), bytes);
    expect(snapshot()).toEqual(before);
    expect(await asAlice.delete(peer, hash)).toBe(true);
  });
});

describe('miner: lookups, capacity, corruption', { timeout: 15_000 }, () => {
  it('FRAGMENT_NOT_FOUND for get and delete of an unknown fragment; has answers null', async () => {
    const unknown = sha256Hex(new TextEncoder().encode('never stored'));
    const before = snapshot();
    await rejectsWith(asAlice.get(peer, unknown), 'FRAGMENT_NOT_FOUND');
    await rejectsWith(asAlice.delete(peer, unknown), 'FRAGMENT_NOT_FOUND');
    expect(await asAlice.has(peer, unknown)).toBeNull();
    expect(snapshot()).toEqual(before);
  });

  it('MINER_FULL when a put would exceed the capacity; what was stored stays readable', async () => {
    const dir = join(root, 'small-miner');
    const small = await startMiner(dir, { capacity: 20 * KiB, maxFragmentSize: 16 * KiB });
    extraMiners.push(small);
    const to = refOf(small);
    const a = frag('full-a', 16 * KiB);
    const b = frag('full-b', 16 * KiB);
    await asAlice.put(to, a.hash, a.bytes);
    const before = filesOf(dir);
    await rejectsWith(asAlice.put(to, b.hash, b.bytes), 'MINER_FULL');
    await rejectsWith(asBob.put(to, b.hash, b.bytes), 'MINER_FULL');
    expect(await asAlice.has(to, b.hash)).toBeNull();
    expectBytes(await asAlice.get(to, a.hash), a.bytes);
    expect(filesOf(dir)).toEqual(before);
    // Held bytes cost nothing: bob may still become a co-owner of a.
    await asBob.put(to, a.hash, a.bytes);
    // Space freed by the last owner is usable again.
    expect(await asAlice.delete(to, a.hash)).toBe(false);
    expect(await asBob.delete(to, a.hash)).toBe(true);
    await asAlice.put(to, b.hash, b.bytes);
    expectBytes(await asAlice.get(to, b.hash), b.bytes);
  });

  it('FRAGMENT_CORRUPT when a stored file rotted on disk; other fragments are still served', async () => {
    const rot = frag('rot');
    const fine = frag('fine');
    await asAlice.put(peer, rot.hash, rot.bytes);
    await asAlice.put(peer, fine.hash, fine.bytes);
    const path = join(minerDir, 'fragments', rot.hash.slice(0, 2), rot.hash);
    writeFileSync(path, flipBit(rot.bytes, 4242));
    await rejectsWith(asAlice.get(peer, rot.hash), 'FRAGMENT_CORRUPT');
    expectBytes(await asAlice.get(peer, fine.hash), fine.bytes);
    writeFileSync(path, rot.bytes); // heal it so the shared miner stays clean
    expectBytes(await asAlice.get(peer, rot.hash), rot.bytes);
    expect(await asAlice.delete(peer, rot.hash)).toBe(true);
    expect(await asAlice.delete(peer, fine.hash)).toBe(true);
  });
});

describe('miner: malformed frames', { timeout: 15_000 }, () => {
  const hash = sha256Hex(new TextEncoder().encode('malformed'));

  it('MINER_PROTOCOL for a frame that is not JSON', async () => {
    const before = snapshot();
    expectRefused(await rawRequest(new TextEncoder().encode('{"op":"put",')), 'MINER_PROTOCOL');
    expectRefused(await rawRequest(new Uint8Array([0xff, 0xfe, 0x00, 0x01])), 'MINER_PROTOCOL');
    expectRefused(await rawRequest(new Uint8Array(0)), 'MINER_PROTOCOL');
    expect(snapshot()).toEqual(before);
  });

  it('INVALID_INPUT for well-formed JSON that is not a valid request (extra fields, wrong types, bad ids)', async () => {
    const before = snapshot();
    const good = signedRequest(alice, 'put', hash, 1024);
    const bad: unknown[] = [
      { ...good, extra: 1 },
      { ...signedRequest(alice, 'get', hash, 0), size: 5 }, // size is not part of a get
      { ...good, op: 'list' },
      { ...good, fragment: hash.toUpperCase() },
      { ...good, fragment: hash.slice(0, 63) },
      { ...good, size: -1 },
      { ...good, size: 1.5 },
      { ...good, size: '1024' },
      { ...good, audience: '' },
      { ...good, deal: 'AB'.repeat(16) },
      { ...good, deal: 'ab'.repeat(15) },
      { ...good, deal: 42 },
      { ...signedRequest(alice, 'get', hash, 0), deal: 'ab'.repeat(16) }, // only a put names its upload
      { ...good, auth: { ...good.auth, signature: good.auth.signature.toUpperCase() } },
      { ...good, auth: { ...good.auth, nonce: 'zz' } },
      { ...good, auth: null },
      [good],
      'put',
      null,
      42,
    ];
    for (const request of bad) expectRefused(await rawRequest(request), 'INVALID_INPUT');
    expect(snapshot()).toEqual(before);
    // None of those reached the nonce ledger: the well-formed original is still accepted.
    const channel = await rawOpen();
    try {
      await channel.writeFrame(encodeJson(good));
      expect(await readReply(channel)).toEqual({ ok: true, send: true });
    } finally {
      channel.abort(new Error('test done'));
    }
  });

  it('INVALID_INPUT for an unknown field inside auth', async () => {
    const before = snapshot();
    const good = signedRequest(alice, 'put', hash, 1024);
    const channel = await rawOpen();
    try {
      await channel.writeFrame(encodeJson({ ...good, auth: { ...good.auth, extra: 'x' } }));
      expectRefused(await readReply(channel), 'INVALID_INPUT');
    } finally {
      channel.abort(new Error('test done'));
      expect(snapshot()).toEqual(before);
    }
  });

  it('a receipt request of the longest column (MAX_COLUMN_SEGMENTS hashes) fits one frame and parses', () => {
    const request = {
      op: 'receipt',
      fid: hash,
      deal: 'ab'.repeat(16),
      index: 11,
      fragments: Array.from({ length: MAX_COLUMN_SEGMENTS }, () => hash),
      fragment: hash,
      audience: 'x'.repeat(128),
    };
    expect(encodeJson(request).byteLength).toBeLessThanOrEqual(MAX_FRAME_BYTES);
    expect(FragmentRequestSchema.safeParse(request).success).toBe(true);
    // The chain's own limit on an object's segments is the same number.
    expect(MAX_COLUMN_SEGMENTS).toBe(MAX_SEGMENTS);
  });

  it('MINER_PROTOCOL for a frame announcing more than MAX_FRAME_BYTES, refused before it is read', async () => {
    const before = snapshot();
    const request = signedRequest(alice, 'put', hash, 1024);
    const padded = { ...request, audience: `${request.audience}${' '.repeat(MAX_FRAME_BYTES)}` };
    expectRefused(await rawRequest(encodeJson(padded)), 'MINER_PROTOCOL');
    // Only the 4-byte header: the miner answers without waiting for the body.
    const channel = await rawOpen();
    try {
      const header = new Uint8Array(4);
      new DataView(header.buffer).setUint32(0, 0xffffffff);
      await channel.write(header);
      expectRefused(await readReply(channel), 'MINER_PROTOCOL');
    } finally {
      channel.abort(new Error('test done'));
    }
    // Exactly MAX_FRAME_BYTES is a frame the miner reads (and then finds malformed).
    const exact = new Uint8Array(MAX_FRAME_BYTES).fill(0x20);
    expectRefused(await rawRequest(exact), 'MINER_PROTOCOL');
    expect(snapshot()).toEqual(before);
  });

  /** Sends the 4-byte header of a request frame and only its first 40 bytes, then closes: the reply frame. */
  async function truncatedRequest(): Promise<Reply> {
    const body = encodeJson(signedRequest(alice, 'put', hash, 1024));
    const channel = await rawOpen();
    try {
      const header = new Uint8Array(4);
      new DataView(header.buffer).setUint32(0, body.byteLength);
      await channel.write(header);
      await channel.write(body.subarray(0, 40));
      await channel.closeWrite({ signal: AbortSignal.timeout(REPLY_TIMEOUT) });
      return await readReply(channel);
    } finally {
      channel.abort(new Error('test done'));
    }
  }

  it('a request frame cut short by the client is refused and changes nothing', async () => {
    const before = snapshot();
    expect((await truncatedRequest()).ok).toBe(false);
    expect(snapshot()).toEqual(before);
  });

  it('a request frame cut short is MINER_PROTOCOL, not FRAGMENT_SIZE_MISMATCH', async () => {
    expectRefused(await truncatedRequest(), 'MINER_PROTOCOL');
  });

  it('the miner keeps serving after all of the above', async () => {
    const { hash: h, bytes } = frag('after-malformed');
    await asAlice.put(peer, h, bytes);
    expectBytes(await asAlice.get(peer, h), bytes);
    expect(await asAlice.delete(peer, h)).toBe(true);
  });
});

describe('miner: restart', { timeout: 20_000 }, () => {
  it('comes back with the same peer id and still serves its fragments and owners; nonces stay used', async () => {
    const dir = join(root, 'restart-miner');
    const first = await startMiner(dir);
    extraMiners.push(first);
    const a = frag('restart-a', 8 * KiB);
    const b = frag('restart-b', 64 * KiB);
    let to = refOf(first);
    await asAlice.put(to, a.hash, a.bytes);
    await asBob.put(to, b.hash, b.bytes);
    // A signed request used once before the restart...
    const has = signRequest(
      alice,
      { op: 'has', fragment: a.hash, size: 0, audience: first.peerId },
      { clock: systemClock, random: systemRandom },
      SIGNATURE_TTL,
    );
    const hasRequest = { op: 'has', fragment: a.hash, audience: first.peerId, auth: has };
    expect(await rawRequest(hasRequest, to)).toEqual({ ok: true, size: a.bytes.byteLength });
    const files = filesOf(dir);
    await first.stop();
    extraMiners.splice(0);

    const second = await startMiner(dir);
    extraMiners.push(second);
    expect(second.peerId).toBe(first.peerId);
    to = refOf(second);
    expect(filesOf(dir)).toEqual(files);
    expectBytes(await asAlice.get(to, a.hash), a.bytes);
    expectBytes(await asAlice.get(to, b.hash), b.bytes);
    // ...is still refused after it: the nonce ledger is on disk.
    expectRefused(await rawRequest(hasRequest, to), 'AUTH_REPLAYED');
    // Ownership survived too.
    await rejectsWith(asAlice.delete(to, b.hash), 'AUTH_NOT_AUTHORISED');
    expect(await asBob.delete(to, b.hash)).toBe(true);
    expect(await asAlice.delete(to, a.hash)).toBe(true);
    expect(filesOf(dir)).toEqual([]);
  });
});

describe('miner: transfer receipts and restoral requests', { timeout: 15_000 }, () => {
  const column = (seed: string) => {
    const fragments = [frag(`${seed}-0`), frag(`${seed}-1`)];
    return { fid: sha256Hex(new TextEncoder().encode(seed)), deal: 'ab'.repeat(16), index: 3, fragments };
  };
  const ref = (c: ReturnType<typeof column>) => ({
    fid: c.fid,
    deal: c.deal,
    index: c.index,
    fragments: c.fragments.map((f) => f.hash),
  });
  /** A raw receipt request, signed by Alice for the digest `signedFor` (default: the digest of its own fields). */
  const receiptRequest = (c: ReturnType<typeof ref>, signedFor?: string) => {
    const digest = bodyDigest([c.fid, c.deal, c.index, c.fragments]);
    const auth = signRequest(
      alice,
      { op: 'receipt', fragment: signedFor ?? digest, size: 0, audience: peer.peerId },
      { clock: systemClock, random: systemRandom },
      SIGNATURE_TTL,
    );
    return { op: 'receipt', ...c, fragment: signedFor ?? digest, audience: peer.peerId, auth };
  };

  it('signs a receipt for a column it holds, verifiable against the miner account', async () => {
    const c = column('receipt-ok');
    for (const f of c.fragments) await asAlice.put(peer, f.hash, f.bytes);
    const receipt = await asAlice.receipt(peer, ref(c));
    expect(receipt.miner).toBe(miner.account);
    const message = transferReceiptMessage(c.fid, c.deal, c.index, ref(c).fragments);
    expect(verifySignature(miner.account, message, fromHex(receipt.signature))).toBe(true);
    // Bound to the deal: the same signature does not verify for another upload of the same fid.
    const other = transferReceiptMessage(c.fid, 'cd'.repeat(16), c.index, ref(c).fragments);
    expect(verifySignature(miner.account, other, fromHex(receipt.signature))).toBe(false);
  });

  it('FRAGMENT_NOT_FOUND for a column with a fragment it does not hold: no receipt is signed', async () => {
    const c = column('receipt-missing');
    await asAlice.put(peer, c.fragments[0]!.hash, c.fragments[0]!.bytes);
    const err = await rejectsWith(asAlice.receipt(peer, ref(c)), 'FRAGMENT_NOT_FOUND');
    expect(err.message).toContain(c.fragments[1]!.hash);
  });

  it('unsigned, not-authorised, replayed and digest-mismatched receipt requests are refused', async () => {
    const c = column('receipt-bad');
    for (const f of c.fragments) await asAlice.put(peer, f.hash, f.bytes);
    const body = ref(c);
    const { auth: _unused, ...unsigned } = receiptRequest(body);
    expectRefused(await rawRequest(unsigned), 'AUTH_MISSING');
    await rejectsWith(asMallory.receipt(peer, body), 'AUTH_NOT_AUTHORISED');
    const once = receiptRequest(body);
    expect((await rawRequest(once)).ok).toBe(true);
    expectRefused(await rawRequest(once), 'AUTH_REPLAYED');
    // Signed for one column, sent with another column's fields: the digest no longer matches.
    const swapped = { ...receiptRequest(body), index: 4 };
    expectRefused(await rawRequest(swapped), 'INVALID_INPUT');
    // Oversized lists are refused by the schema.
    const huge = receiptRequest({
      ...body,
      fragments: new Array(MAX_COLUMN_SEGMENTS + 1).fill(body.fragments[0]!),
    });
    expectRefused(await rawRequest(huge), 'INVALID_INPUT');
  });

  it('MINER_PROTOCOL for a restoral request to a miner that runs without a chain', async () => {
    const c = column('restore-no-chain');
    await rejectsWith(asAlice.restore(peer, 'claim', ref(c)), 'MINER_PROTOCOL');
  });
});
