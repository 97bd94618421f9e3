/**
 * Edges: the libp2p protocols, each served by a real node on 127.0.0.1 and reached over a real libp2p connection
 * (TCP, Noise, yamux) from an attacker host that writes whatever bytes a case holds onto the stream:
 *
 * - `p2p:fragment`: a miner (`startMinerNode`, its fragment store on disk) holding one fragment of Alice's. Requests
 *   arrive as random frames, frames cut short or announcing more than the protocol allows, requests with a field of
 *   another type, a field deleted or an unknown key, puts whose body is cut, longer or not the hashed one, unsigned,
 *   signed by another key, for another miner, over other fields, replayed or expired, from an account the miner does
 *   not serve or that does not own the fragment, for fragments never stored, or reusing a nonce.
 * - `p2p:round`: a coordinator's round protocol (`serveRoundProtocol` over the coordinator of
 *   test/coordinator/harness.ts: a real SQLite store) with a task that one member joined from the attacker's peer and
 *   another from a different peer. Views and submissions arrive malformed, cut, oversized, without a signature, from
 *   the other member's or an outsider's account, for a task never created, or for a round that is not open (no
 *   round runs here: submissions to an open SecAgg stage are the `p2p:round-open:<stage>` edges, round-open.ts).
 * - `p2p:verifier`: the verifier's service (`startVerifierService`, its SQLite of tagged fragments and nonces) over an
 *   in-memory index of the chain: two miners in good standing and a file whose column 0 the first one holds, three
 *   fragments of which setup tagged one. Tag, certify and verify requests arrive malformed, cut, with bytes that are
 *   not the fragment, oversized, unsigned, wrongly signed, replayed, from an account that is no miner or for another
 *   miner's column, for a column not tagged yet, a file never recorded or a challenge never issued.
 *
 * A refusal is a reply frame `{ ok: false, error: { code } }` with a registered code; a stream that ends or is reset
 * without one is a crash. After every input the node must still answer a valid request (it survived), and the digest
 * — the miner's fragment files and index, the coordinator's store — must not have changed. Nonces a signed request
 * used are left out of the digests (a signature is checked, and its nonce spent, before the body is judged), and so
 * is a member's last-seen time (a request from the member's own peer is a sign of life even when refused).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { admissionMessage, DEV_PROTOCOL_CONFIG, type Indexer } from '../../src/chain/index.ts';
import { fileKey } from '../../src/chain/pallets/file-bank.ts';
import { minerKey } from '../../src/chain/pallets/sminer.ts';
import { createMemoryState } from '../../src/chain/state.ts';
import { serveRoundProtocol } from '../../src/coordinator/transport.ts';
import { type MinerNode, startMinerNode } from '../../src/node/miner.ts';
import { type ByteChannel, createHost, type Host, type PeerRef } from '../../src/p2p/index.ts';
import { type Account, accountsReady } from '../../src/shared/account.ts';
import { toHex } from '../../src/shared/bytes.ts';
import { type Clock, systemClock, systemRandom } from '../../src/shared/clock.ts';
import { isErrorCode } from '../../src/shared/errors.ts';
import { fragmentHash } from '../../src/storage/object/hash.ts';
import { derivePodr2Key } from '../../src/storage/proofs/podr2.ts';
import {
  bodyDigest,
  FRAGMENT_PROTOCOL,
  MAX_FRAME_BYTES,
} from '../../src/storage/protocol/fragment-protocol.ts';
import { signRequest } from '../../src/storage/protocol/request-auth.ts';
import { proofParams, VERIFIER_PROTOCOL } from '../../src/storage/protocol/verifier-protocol.ts';
import { podr2KeyId, startVerifierService } from '../../src/storage/verifier/verifier-service.ts';
import { joinMessage, MAX_ROUND_MESSAGE, ROUND_PROTOCOL } from '../../src/task/index.ts';
import {
  baseTask,
  makeAccount,
  makeWorld,
  TEST_GENESIS,
  type World,
} from '../../test/coordinator/harness.ts';
import { treeDigest } from './files.ts';
import { type Edge, type FuzzCase, type Variant, WireRefusal } from './harness.ts';
import {
  concat,
  fuzzCase,
  getPath,
  type Json,
  type JsonPath,
  otherType,
  pathsOf,
  withPath,
} from './mutate.ts';

/** What the attacker writes on one stream. */
export interface WireInput {
  /** Written first, as they are: one frame, several, or a broken one. */
  readonly bytes: Uint8Array;
  /** A put's body, written once the first reply asks for it (and not at all otherwise). */
  readonly body?: Uint8Array;
}

const REPLY_MS = 5_000;
const MAX_FRAGMENT = 64 * 1024;
/** Signatures the cases carry must outlive a long run's sampling: a run signs them all before applying any. */
const SIGNATURE_TTL_MS = 20 * 60_000;

export const encode = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));

/** A length-prefixed frame as `ByteChannel.writeFrame` writes it (a 4-byte big-endian length). */
export function frame(body: Uint8Array, announced = body.byteLength): Uint8Array {
  const out = new Uint8Array(4 + body.byteLength);
  new DataView(out.buffer).setUint32(0, announced);
  out.set(body, 4);
  return out;
}

/** A reply frame judged: accepted (ok), a refusal with its code, anything else a crash. */
export function judge(reply: unknown): void {
  const r = reply as { ok?: unknown; error?: { code?: unknown; message?: unknown } } | null;
  if (r !== null && typeof r === 'object' && r.ok === true) return;
  const code = r?.error?.code;
  if (r !== null && typeof r === 'object' && r.ok === false && typeof code === 'string')
    throw new WireRefusal(code, isErrorCode(code), String(r.error?.message ?? '').slice(0, 200));
  throw new Error(`an unexpected reply: ${JSON.stringify(reply)?.slice(0, 200)}`);
}

async function readReply(channel: ByteChannel, max: number, signal: AbortSignal): Promise<unknown> {
  let bytes: Uint8Array;
  try {
    bytes = await channel.readFrame(max, { signal });
  } catch (err) {
    throw new Error(`no reply frame: ${(err as Error).name}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new Error(`a reply that is not JSON (${bytes.byteLength} bytes)`);
  }
}

/** Writes an input on a fresh stream and reads the reply (two for a put that asks for its body). */
export async function exchange(host: Host, peer: PeerRef, protocol: string, input: WireInput, max: number) {
  const signal = AbortSignal.timeout(REPLY_MS);
  const channel = await host.open(peer, protocol, { signal });
  try {
    // The node may refuse and close before all is written: what it answered is what counts.
    const sent = async (f: () => Promise<void>) => f().catch(() => {});
    await sent(() => channel.write(input.bytes, { signal }));
    if (input.body === undefined) await sent(() => channel.closeWrite({ signal }));
    let reply = await readReply(channel, max, signal);
    if (input.body !== undefined) {
      const ready = reply as { ok?: unknown; send?: unknown };
      if (ready?.ok === true && ready.send === true) {
        await sent(() => channel.write(input.body!, { signal }));
        await sent(() => channel.closeWrite({ signal }));
        reply = await readReply(channel, max, signal);
      }
    }
    return reply;
  } finally {
    channel.abort(new Error('the exchange is over'));
  }
}

/** SHA-256 over every table of a SQLite file but `skip`, with the columns `blank` names left out. */
export function sqliteDigest(
  path: string,
  o: { skip?: readonly string[]; blank?: Readonly<Record<string, readonly string[]>> } = {},
): string {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const h = createHash('sha256');
    const tables = db
      .prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
      .all();
    for (const { name } of tables) {
      if (o.skip?.includes(name)) continue;
      h.update(`${name}\n`);
      for (const row of db.prepare(`SELECT * FROM "${name}" ORDER BY 1, 2`).all() as Record<
        string,
        unknown
      >[]) {
        for (const c of o.blank?.[name] ?? []) delete row[c];
        h.update(JSON.stringify(row, (_k, v) => (Buffer.isBuffer(v) ? v.toString('hex') : v)));
      }
    }
    return h.digest('hex');
  } finally {
    db.close();
  }
}

/**
 * JSON mutations of a valid request: a field of another type, a required field deleted, an unknown key in an object
 * that refuses them. Each result is a request that must be refused.
 */
export function jsonMutations(
  valid: Json,
  o: { optional?: (p: JsonPath) => boolean; skip?: (p: JsonPath) => boolean } = {},
): fc.Arbitrary<{ label: string; json: Json }> {
  const paths = pathsOf(valid).filter((p) => !(o.skip?.(p) ?? false));
  const required = paths.filter((p) => typeof p[p.length - 1] === 'string' && !(o.optional?.(p) ?? false));
  const objects = [[], ...paths].filter((p) => {
    const v = getPath(valid, p);
    return v !== null && typeof v === 'object' && !Array.isArray(v);
  });
  return fc.oneof(
    fc
      .constantFrom(...paths)
      .chain((p) => otherType(getPath(valid, p)).map((v) => [p, v] as const))
      .map(([p, v]) => ({
        label: `${p.join('.')} = ${JSON.stringify(v).slice(0, 30)}`,
        json: withPath(valid, p, v),
      })),
    fc.constantFrom(...required).map((p) => ({
      label: `${p.join('.')} deleted`,
      json: withPath(valid, p, undefined),
    })),
    fc
      .tuple(fc.constantFrom(...objects), fc.stringMatching(/^[a-z]{1,8}$/))
      .filter(([p, k]) => !Object.hasOwn(getPath(valid, p) as object, k))
      .map(([p, k]) => ({
        label: `unknown key ${k} in ${p.join('.') || '(root)'}`,
        json: withPath(valid, [...p, k], 1),
      })),
  );
}

/** A frame cut at every length but its own, a header announcing more than `max`, random frames and bytes. */
export function framingCases(validFrame: Uint8Array, max: number): fc.Arbitrary<FuzzCase<WireInput>>[] {
  return [
    fc.integer({ min: 0, max: validFrame.byteLength - 1 }).map((k) =>
      fuzzCase<WireInput>('truncated', `a request frame cut at ${k} bytes`, {
        bytes: validFrame.slice(0, k),
      }),
    ),
    fc.integer({ min: max + 1, max: 2 ** 32 - 1 }).map((n) =>
      fuzzCase<WireInput>('oversized', `a frame announcing ${n} bytes`, {
        bytes: frame(new Uint8Array(16), n),
      }),
    ),
    fc
      .uint8Array({ maxLength: 256 })
      .map((b) =>
        fuzzCase<WireInput>('malformed', `a random ${b.byteLength}-byte frame`, { bytes: frame(b) }),
      ),
    fc
      .uint8Array({ minLength: 1, maxLength: 64 })
      .map((b) => fuzzCase<WireInput>('malformed', `${b.byteLength} random bytes, unframed`, { bytes: b })),
  ];
}

// ---------------------------------------------------------------------------------------------------------------

export function fragmentEdge(): Edge<WireInput> {
  let dir = '';
  let miner: MinerNode | undefined;
  let attacker: Host | undefined;
  let peer: PeerRef = { peerId: '', addrs: [] };
  let cases: fc.Arbitrary<FuzzCase<WireInput>> | undefined;
  let valid: WireInput | undefined;
  let alice: Account;
  let bob: Account;
  let mallory: Account;
  /** Held by Alice from setup on. */
  const held = new Uint8Array(4096).map((_, i) => (i * 31 + 7) & 0xff);
  const heldHash = fragmentHash(held);
  /** Never stored (but by the valid input, which restore takes back). */
  const fresh = new Uint8Array(3000).map((_, i) => (i * 17 + 3) & 0xff);
  const freshHash = fragmentHash(fresh);

  type Fields = { op: string; fragment: string; size?: number; [k: string]: Json | undefined };
  /** A request signed by `by` (or unsigned), as the miner client builds one; `o` makes it wrong in one way. */
  const request = (
    by: Account | null,
    fields: Fields,
    o: {
      audience?: string;
      clock?: Clock;
      ttlMs?: number;
      signedFields?: Partial<Fields>;
      signer?: Account;
      nonce?: string;
    } = {},
  ): Json => {
    const audience = o.audience ?? peer.peerId;
    const body: Record<string, Json> = { ...(fields as Record<string, Json>), audience };
    if (by === null) return body;
    const signedAs = { ...fields, ...o.signedFields };
    const sign = (nonceFrom: () => Uint8Array) =>
      signRequest(
        o.signer ?? by,
        {
          op: signedAs.op,
          fragment: signedAs.fragment,
          size: signedAs.op === 'put' ? (signedAs.size ?? 0) : 0,
          audience,
        },
        { clock: o.clock ?? systemClock, random: (n) => nonceFrom().slice(0, n) },
        o.ttlMs ?? SIGNATURE_TTL_MS,
      );
    const auth =
      o.nonce === undefined
        ? sign(() => systemRandom(16))
        : sign(() => Uint8Array.from(Buffer.from(o.nonce!, 'hex')));
    return { ...body, auth: { ...auth, account: by.address } };
  };
  const wire = (json: Json, body?: Uint8Array): WireInput => ({
    bytes: frame(encode(json)),
    ...(body === undefined ? {} : { body }),
  });
  const put = (by: Account | null, bytes: Uint8Array, o: Parameters<typeof request>[2] = {}) =>
    request(by, { op: 'put', fragment: fragmentHash(bytes), size: bytes.byteLength }, o);
  const send = (input: WireInput) =>
    exchange(attacker!, peer, FRAGMENT_PROTOCOL, input, MAX_FRAME_BYTES).then(judge);

  return {
    name: 'p2p:fragment',
    cases: () => cases!,
    valid: () => valid!,
    async setup() {
      await accountsReady();
      alice = makeAccount('fuzz-alice');
      bob = makeAccount('fuzz-bob');
      mallory = makeAccount('fuzz-mallory');
      dir = mkdtempSync(join(tmpdir(), 'ailink-fuzz-fragment-'));
      miner = await startMinerNode(
        { clock: systemClock, random: systemRandom, log: { info() {}, warn() {} } },
        {
          dataDir: join(dir, 'miner'),
          listen: ['/ip4/127.0.0.1/tcp/0'],
          allow: [alice.address, bob.address],
          capacity: 1024 * 1024,
          maxFragmentSize: MAX_FRAGMENT,
          maxSignatureTtlMs: SIGNATURE_TTL_MS + 60_000,
          requestDeadlineMs: REPLY_MS,
        },
      );
      peer = { peerId: miner.peerId, addrs: miner.addrs() };
      attacker = await createHost();
      const first = wire(put(alice, held), held);
      await send(first);
      valid = wire(put(alice, fresh), fresh);
      const validRequest = put(alice, fresh);
      const firstNonce = (
        JSON.parse(new TextDecoder().decode(first.bytes.subarray(4))) as { auth: { nonce: string } }
      ).auth.nonce;
      const other = new Uint8Array(fresh.byteLength).fill(9);
      const fixed = (variant: Variant, label: string, input: WireInput) =>
        fc.constant(null).map(() => fuzzCase(variant, label, input));
      // Built at each draw, so that every signed case carries its own nonce.
      const signed = (variant: Variant, label: string, make: () => WireInput, mustRefuse = true) =>
        fc.constant(null).map(() => fuzzCase(variant, label, make(), mustRefuse));
      const column = { fid: 'ab'.repeat(32), deal: 'cd'.repeat(16), index: 0, fragments: [freshHash] };
      cases = fc.oneof(
        ...framingCases(frame(encode(validRequest)), MAX_FRAME_BYTES),
        jsonMutations(validRequest).map(({ label, json }) =>
          fuzzCase<WireInput>('malformed', `put: ${label}`, wire(json, fresh)),
        ),
        fc
          .integer({ min: 0, max: fresh.byteLength - 1 })
          .map((k) =>
            fuzzCase<WireInput>(
              'truncated',
              `put: the body cut at ${k} bytes`,
              wire(put(alice, fresh), fresh.slice(0, k)),
            ),
          ),
        signed('oversized', `put: ${MAX_FRAGMENT + 1} bytes, over the miner's limit`, () =>
          wire(request(alice, { op: 'put', fragment: freshHash, size: MAX_FRAGMENT + 1 })),
        ),
        signed(
          'oversized',
          'put: a body longer than its size (the extra bytes may come after the whole fragment was read)',
          () => wire(put(alice, fresh), concat(fresh, new Uint8Array(64))),
          false,
        ),
        signed('malformed', 'put: a body that is not the hashed one', () => wire(put(alice, fresh), other)),
        fixed('replayed', "put: the setup's request again", first),
        signed('replayed', 'put: expired an hour ago', () =>
          wire(put(alice, fresh, { clock: { now: () => Date.now() - 3_600_000 }, ttlMs: 60_000 }), fresh),
        ),
        signed('malformed', 'put: expiring in a day', () =>
          wire(put(alice, fresh, { ttlMs: 86_400_000 }), fresh),
        ),
        signed('unsigned', 'put: no signature', () => wire(put(null, fresh), fresh)),
        signed('unsigned', 'get: no signature', () => wire(request(null, { op: 'get', fragment: heldHash }))),
        signed('wrongly-signed', "put: signed by Bob's key as Alice", () =>
          wire(put(alice, fresh, { signer: bob }), fresh),
        ),
        signed('wrongly-signed', 'put: signed for another miner', () =>
          wire(put(alice, fresh, { audience: attacker!.peerId }), fresh),
        ),
        signed('wrongly-signed', 'put: signed for another size', () =>
          wire(put(alice, fresh, { signedFields: { size: fresh.byteLength + 1 } }), fresh),
        ),
        signed('wrongly-signed', 'delete: signed as a get', () =>
          wire(request(alice, { op: 'delete', fragment: heldHash }, { signedFields: { op: 'get' } })),
        ),
        signed('wrongly-signed', 'put: one signature character changed', () => {
          const json = put(alice, fresh) as { auth: { signature: string } };
          const s = json.auth.signature;
          json.auth.signature = `${s[0] === '0' ? '1' : '0'}${s.slice(1)}`;
          return wire(json as unknown as Json, fresh);
        }),
        signed('wrong-caller', 'put: by an account the miner does not serve', () =>
          wire(put(mallory, fresh), fresh),
        ),
        signed('wrong-caller', "delete: Alice's fragment, by Bob", () =>
          wire(request(bob, { op: 'delete', fragment: heldHash })),
        ),
        signed('out-of-order', 'get: a fragment never stored', () =>
          wire(request(alice, { op: 'get', fragment: freshHash })),
        ),
        signed('out-of-order', 'delete: a fragment never stored', () =>
          wire(request(alice, { op: 'delete', fragment: freshHash })),
        ),
        signed('out-of-order', 'receipt: a column whose fragment was never stored', () =>
          wire(
            request(alice, {
              op: 'receipt',
              ...column,
              fragment: bodyDigest([column.fid, column.deal, column.index, column.fragments]),
            }),
          ),
        ),
        signed('out-of-order', 'restore: an order this miner cannot take', () => {
          const r = { stage: 'claim', fid: column.fid, index: 0, fragments: [] as string[] };
          return wire(
            request(alice, {
              op: 'restore',
              ...r,
              fragment: bodyDigest([r.stage, r.fid, r.index, r.fragments]),
            }),
          );
        }),
        signed('duplicated', "get: another request under the setup's nonce", () =>
          wire(request(alice, { op: 'get', fragment: heldHash }, { nonce: firstNonce })),
        ),
        signed(
          'duplicated',
          'put: the held fragment again (already held: nothing to send, nothing changes)',
          () => wire(put(alice, held), held),
          false,
        ),
      );
    },
    // The miner survived: it still serves the fragment it held.
    apply: (input) =>
      sendThenProbe(send, input, () => wire(request(alice, { op: 'has', fragment: heldHash })), 'the miner'),
    async digest() {
      const d = join(dir, 'miner');
      const h = createHash('sha256');
      h.update(sqliteDigest(join(d, 'index.sqlite'), { skip: ['nonces', 'nonces_pruned'] }));
      for (const sub of ['fragments', 'tmp'])
        h.update(existsSync(join(d, sub)) ? await treeDigest(join(d, sub)) : '-');
      return h.digest('hex');
    },
    async restore() {
      const db = new Database(join(dir, 'miner', 'index.sqlite'), { readonly: true });
      const owned = db
        .prepare<[], { hash: string; account: string }>('SELECT hash, account FROM owners')
        .all();
      db.close();
      for (const { hash, account } of owned) {
        if (hash === heldHash && account === alice.address) continue;
        const by = [alice, bob].find((a) => a.address === account);
        if (by !== undefined) await send(wire(request(by, { op: 'delete', fragment: hash })));
      }
    },
    async teardown() {
      await attacker?.stop();
      await miner?.stop();
      if (dir !== '') rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------

/**
 * Sends `input`, then a valid request `probe()` that must still be answered (else the node did not survive: `node` says
 * which); then the input's own outcome, a refusal or nothing.
 */
export async function sendThenProbe(
  send: (input: WireInput) => Promise<void>,
  input: WireInput,
  probe: () => WireInput,
  node: string,
): Promise<void> {
  let outcome: unknown;
  try {
    await send(input);
  } catch (err) {
    outcome = err;
  }
  try {
    await send(probe());
  } catch (err) {
    throw new Error(`${node} no longer answers a valid request: ${(err as Error).message}`);
  }
  if (outcome !== undefined) throw outcome;
}

/**
 * What the round protocol's edges (p2p:round, p2p:round-open) check after each input: the member's own view request
 * is still answered (else the coordinator did not survive), and the store's digest, less the nonces a signature used
 * and the members' last-seen times (a request from a member's own peer is a sign of life even when refused).
 */
export function roundChecks(
  send: (input: WireInput) => Promise<void>,
  probe: () => WireInput,
  storePath: () => string,
): Pick<Edge<WireInput>, 'apply' | 'digest'> {
  return {
    apply: (input) => sendThenProbe(send, input, probe, 'the coordinator'),
    async digest() {
      return sqliteDigest(storePath(), { skip: ['nonces'], blank: { participants: ['last_seen'] } });
    },
  };
}

export function roundEdge(): Edge<WireInput> {
  let dir = '';
  let world: World | undefined;
  let server: Host | undefined;
  let attacker: Host | undefined;
  let peer: PeerRef = { peerId: '', addrs: [] };
  let cases: fc.Arbitrary<FuzzCase<WireInput>> | undefined;
  let task = '';
  let view: Json = null;
  const send = (input: WireInput) =>
    exchange(attacker!, peer, ROUND_PROTOCOL, input, MAX_ROUND_MESSAGE).then(judge);
  const wire = (json: Json | string): WireInput => ({
    bytes: frame(typeof json === 'string' ? new TextEncoder().encode(json) : encode(json)),
  });

  return {
    name: 'p2p:round',
    cases: () => cases!,
    valid: () => wire(view),
    async setup() {
      await accountsReady();
      dir = mkdtempSync(join(tmpdir(), 'ailink-fuzz-round-'));
      world = makeWorld(dir);
      server = await createHost();
      attacker = await createHost();
      await serveRoundProtocol(server, world.coordinator);
      peer = { peerId: server.peerId, addrs: server.addrs() };
      const members = ['ra', 'rb', 'rc'].map(makeAccount) as [Account, Account, Account];
      const outsider = makeAccount('round-outsider');
      const created = await world.coordinator.createTask(baseTask(members.map((m) => m.address)));
      task = created.id;
      // Member a joins from the attacker's peer (its requests are the member's own), member b from another peer.
      for (const [member, peerId] of [
        [members[0], attacker.peerId],
        [members[1], '12D3KooWAnotherPeerOfMemberB'],
      ] as const) {
        const identityKey = createHash('sha256').update(`id/${member.address}`).digest('hex');
        const signedAt = Date.now();
        const p = { peerId, addrs: ['/ip4/127.0.0.1/tcp/1'] };
        const claim = {
          task,
          account: member.address,
          identityKey,
          readerKey: member.readerKey,
          signedAt,
          peerId,
        };
        await world.coordinator.join(task, {
          account: member.address,
          identityKey,
          signature: toHex(member.sign(admissionMessage(TEST_GENESIS, task, identityKey))),
          readerKey: member.readerKey,
          signedAt,
          joinSignature: toHex(member.sign(joinMessage(claim))),
          peer: p,
        });
      }
      const a = members[0].address;
      view = { kind: 'view', task, from: a };
      const hex = (n: number, b = 'ab') => b.repeat(n);
      const advert: Json = {
        kind: 'submit',
        task,
        round: 0,
        attempt: 0,
        from: a,
        stage: 'advertise',
        message: {
          stage: 'advertise',
          context: 'ctx',
          from: a,
          body: { cPk: hex(32), sPk: hex(32, 'cd') },
          signature: hex(64),
        },
      };
      const messageOf: Record<string, Json> = {
        shares: { stage: 'shares', context: 'ctx', from: a, body: { sealed: [] }, signature: hex(64) },
        masked: { fid: hex(32), digest: hex(32), dataset: hex(32), signature: hex(64) },
        consistency: {
          stage: 'consistency',
          context: 'ctx',
          from: a,
          body: { survivors: [a] },
          signature: hex(64),
        },
        unmask: { stage: 'unmask', context: 'ctx', from: a, body: { revealed: [] }, signature: hex(64) },
      };
      const c = (variant: Variant, label: string, json: Json | string) =>
        fc.constant(fuzzCase(variant, label, wire(json)));
      const text = JSON.stringify(view);
      cases = fc.oneof(
        ...framingCases(frame(encode(view)), MAX_ROUND_MESSAGE),
        jsonMutations(view, { optional: (p) => p[0] === 'have' }).map(({ label, json }) =>
          fuzzCase<WireInput>('malformed', `view: ${label}`, wire(json)),
        ),
        jsonMutations(advert).map(({ label, json }) =>
          fuzzCase<WireInput>('malformed', `advertise: ${label}`, wire(json)),
        ),
        fc
          .integer({ min: 0, max: text.length - 1 })
          .map((k) =>
            fuzzCase<WireInput>('truncated', `view: JSON cut at ${k} characters`, wire(text.slice(0, k))),
          ),
        c('oversized', 'view: a 65-character `have`', { ...(view as object), have: 'x'.repeat(65) }),
        c(
          'oversized',
          'advertise: a 257-character context',
          withPath(advert, ['message', 'context'], 'x'.repeat(257)),
        ),
        c('oversized', 'view: a 65-character task id', { ...(view as object), task: 'x'.repeat(65) }),
        c('unsigned', 'advertise: no signature', withPath(advert, ['message', 'signature'], undefined)),
        c('wrong-caller', 'view: as member b, which joined from another peer', {
          ...(view as object),
          from: members[1].address,
        }),
        c('wrong-caller', 'view: as an account that never joined', {
          ...(view as object),
          from: outsider.address,
        }),
        c('wrong-caller', 'advertise: as member b', withPath(advert, ['from'], members[1].address)),
        c('out-of-order', 'view: a task never created', { ...(view as object), task: 'f'.repeat(64) }),
        c('out-of-order', 'advertise: no round is open', advert),
        fc
          .constantFrom(...Object.keys(messageOf))
          .map((stage) =>
            fuzzCase<WireInput>(
              'out-of-order',
              `${stage}: no round is open`,
              wire({ ...(advert as object), stage, message: messageOf[stage]! }),
            ),
          ),
        c('out-of-order', 'advertise: round 7 of a task at round 0', { ...(advert as object), round: 7 }),
      );
    },
    ...roundChecks(
      send,
      () => wire(view),
      () => world!.storePath,
    ),
    async teardown() {
      await attacker?.stop();
      await server?.stop();
      await world?.coordinator.stop();
      world?.store.close();
      if (dir !== '') rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A request of the verifier's (or a miner's) protocol signed by `by` as `signRequest` signs it, or unsigned (`by`
 * null); `o` makes it wrong in one way.
 */
function signedRequest(
  by: Account | null,
  fields: { op: string; fragment: string; size?: number; [k: string]: Json | undefined },
  audience: string,
  o: {
    audience?: string;
    clock?: Clock;
    ttlMs?: number;
    signer?: Account;
    nonce?: string;
    flip?: boolean;
  } = {},
): Json {
  const to = o.audience ?? audience;
  const body: Record<string, Json> = { ...(fields as Record<string, Json>), audience: to };
  if (by === null) return body;
  const auth = signRequest(
    o.signer ?? by,
    { op: fields.op, fragment: fields.fragment, size: fields.size ?? 0, audience: to },
    {
      clock: o.clock ?? systemClock,
      random: (n) => (o.nonce === undefined ? systemRandom(n) : Uint8Array.from(Buffer.from(o.nonce, 'hex'))),
    },
    o.ttlMs ?? SIGNATURE_TTL_MS,
  );
  const signature = o.flip
    ? `${auth.signature[0] === '0' ? '1' : '0'}${auth.signature.slice(1)}`
    : auth.signature;
  return { ...body, auth: { ...auth, account: by.address, signature } };
}

// ---------------------------------------------------------------------------------------------------------------

export function verifierEdge(): Edge<WireInput> {
  let dir = '';
  let db: Database.Database | undefined;
  let server: Host | undefined;
  let attacker: Host | undefined;
  let peer: PeerRef = { peerId: '', addrs: [] };
  let cases: fc.Arbitrary<FuzzCase<WireInput>> | undefined;
  let valid: WireInput | undefined;
  let miner: Account;
  const column = [0, 1, 2].map((k) => new Uint8Array(2048).map((_, i) => (i * (k + 3) + k) & 0xff));
  const hashes = column.map(fragmentHash);
  const fid = createHash('sha256').update('fuzz verifier file').digest('hex');
  const wire = (json: Json, body?: Uint8Array): WireInput => ({
    bytes: body === undefined ? frame(encode(json)) : concat(frame(encode(json)), body),
  });
  const send = (input: WireInput) =>
    exchange(attacker!, peer, VERIFIER_PROTOCOL, input, MAX_FRAME_BYTES).then(judge);

  return {
    name: 'p2p:verifier',
    cases: () => cases!,
    valid: () => valid!,
    async setup() {
      await accountsReady();
      miner = makeAccount('fuzz-verifier-miner');
      const other = makeAccount('fuzz-verifier-other-miner');
      const stranger = makeAccount('fuzz-verifier-stranger');
      dir = mkdtempSync(join(tmpdir(), 'ailink-fuzz-verifier-'));
      db = new Database(join(dir, 'verifier.sqlite'));
      // The chain as the verifier's index holds it: two miners in good standing, and a file whose column 0 the
      // first one holds (three segments: three fragments in the column).
      const state = createMemoryState();
      state.apply([
        { key: minerKey(miner.address), value: { state: 'positive' } },
        { key: minerKey(other.address), value: { state: 'positive' } },
        {
          key: fileKey(fid),
          value: {
            owner: stranger.address,
            segments: hashes.map((h) => ({ fragments: [h, 'ee'.repeat(32)] })),
            placements: [miner.address, other.address],
          },
        },
      ]);
      const secret = createHash('sha256').update('fuzz verifier podr2 secret').digest();
      const params = proofParams(DEV_PROTOCOL_CONFIG.audit);
      server = await createHost();
      attacker = await createHost();
      await startVerifierService(
        {
          host: server,
          account: makeAccount('fuzz-verifier'),
          indexer: { state, sync: async () => 1, height: () => 1 } as unknown as Indexer,
          key: derivePodr2Key(new Uint8Array(secret), params.podr2),
          keyId: podr2KeyId(new Uint8Array(secret)),
          db,
          clock: systemClock,
          log: { info() {}, warn() {} },
        },
        {
          params,
          maxFragmentSize: 4096,
          maxSignatureTtlMs: SIGNATURE_TTL_MS + 60_000,
          requestDeadlineMs: REPLY_MS,
        },
      );
      peer = { peerId: server.peerId, addrs: server.addrs() };
      const tag = (k: number, by: Account | null = miner, o: Parameters<typeof signedRequest>[3] = {}) =>
        signedRequest(
          by,
          { op: 'tag', fid, index: 0, fragment: hashes[k]!, size: column[k]!.byteLength },
          peer.peerId,
          o,
        );
      const tagWire = (
        k: number,
        by: Account | null = miner,
        o: Parameters<typeof signedRequest>[3] = {},
        body = column[k]!,
      ) => wire(tag(k, by, o), body);
      const first = tagWire(0);
      await send(first);
      valid = tagWire(1);
      const firstNonce = (
        JSON.parse(
          new TextDecoder().decode(
            first.bytes.subarray(
              4,
              4 + new DataView(first.bytes.buffer, first.bytes.byteOffset).getUint32(0),
            ),
          ),
        ) as {
          auth: { nonce: string };
        }
      ).auth.nonce;
      const certify = (by: Account, o: Parameters<typeof signedRequest>[3] = {}, index = 0) =>
        signedRequest(
          by,
          { op: 'certify', fid, index, fragment: bodyDigest(['certify', fid, index]) },
          peer.peerId,
          o,
        );
      const proof = new Uint8Array(64).fill(1);
      const verify = (by: Account) =>
        signedRequest(
          by,
          {
            op: 'verify',
            challenge: 3,
            size: proof.byteLength,
            fragment: bodyDigest(['verify', 3, fragmentHash(proof)]),
          },
          peer.peerId,
        );
      const signed = (variant: Variant, label: string, make: () => WireInput) =>
        fc.constant(null).map(() => fuzzCase(variant, label, make()));
      cases = fc.oneof(
        ...framingCases(frame(encode(tag(1))), MAX_FRAME_BYTES),
        jsonMutations(tag(1)).map(({ label, json }) =>
          fuzzCase<WireInput>('malformed', `tag: ${label}`, wire(json, column[1])),
        ),
        fc
          .integer({ min: 0, max: column[1]!.byteLength - 1 })
          .map((k) =>
            fuzzCase<WireInput>(
              'truncated',
              `tag: the body cut at ${k} bytes`,
              tagWire(1, miner, {}, column[1]!.slice(0, k)),
            ),
          ),
        signed('malformed', 'tag: bytes that are not the fragment', () => tagWire(1, miner, {}, column[2])),
        signed('malformed', 'tag: a fragment not in the column', () =>
          wire(
            signedRequest(
              miner,
              { op: 'tag', fid, index: 0, fragment: 'ee'.repeat(32), size: 2048 },
              peer.peerId,
            ),
            column[1],
          ),
        ),
        signed('malformed', 'certify: a digest that is not of its fields', () =>
          wire(signedRequest(miner, { op: 'certify', fid, index: 0, fragment: hashes[0]! }, peer.peerId)),
        ),
        signed('oversized', 'tag: a fragment over the limit', () =>
          wire(
            signedRequest(miner, { op: 'tag', fid, index: 0, fragment: hashes[1]!, size: 4097 }, peer.peerId),
          ),
        ),
        signed('oversized', 'verify: a proof over 8 MiB', () =>
          wire(
            signedRequest(
              miner,
              { op: 'verify', challenge: 3, size: 8 * 1024 * 1024 + 1, fragment: hashes[0]! },
              peer.peerId,
            ),
          ),
        ),
        fc.constant(fuzzCase<WireInput>('replayed', "tag: the setup's request again", first)),
        signed('replayed', 'tag: expired an hour ago', () =>
          tagWire(1, miner, { clock: { now: () => Date.now() - 3_600_000 }, ttlMs: 60_000 }),
        ),
        signed('unsigned', 'tag: no signature', () => tagWire(1, null)),
        signed('unsigned', 'certify: no signature', () =>
          wire(
            signedRequest(
              null,
              { op: 'certify', fid, index: 0, fragment: bodyDigest(['certify', fid, 0]) },
              peer.peerId,
            ),
          ),
        ),
        signed('wrongly-signed', 'tag: one signature character changed', () =>
          tagWire(1, miner, { flip: true }),
        ),
        signed('wrongly-signed', 'tag: signed for another verifier', () =>
          tagWire(1, miner, { audience: attacker!.peerId }),
        ),
        signed('wrongly-signed', "tag: signed by a stranger's key as the miner", () =>
          tagWire(1, miner, { signer: stranger }),
        ),
        signed('wrong-caller', 'tag: by an account that is no miner', () => tagWire(1, stranger)),
        signed('wrong-caller', "tag: another miner's column", () => tagWire(1, other)),
        signed('wrong-caller', "certify: another miner's column", () => wire(certify(other))),
        signed('out-of-order', 'certify: a column not tagged yet', () => wire(certify(miner))),
        signed('out-of-order', 'certify: a column of a file never recorded', () =>
          wire(
            signedRequest(
              miner,
              {
                op: 'certify',
                fid: 'f'.repeat(64),
                index: 0,
                fragment: bodyDigest(['certify', 'f'.repeat(64), 0]),
              },
              peer.peerId,
            ),
          ),
        ),
        signed('out-of-order', 'verify: no challenge is open', () => wire(verify(miner), proof)),
        signed('duplicated', "tag: another request under the setup's nonce", () =>
          tagWire(2, miner, { nonce: firstNonce }),
        ),
      );
    },
    async apply(input) {
      let outcome: unknown;
      try {
        await send(input);
      } catch (err) {
        outcome = err;
      }
      // The verifier survived: it still refuses a certificate for a column not wholly tagged, with its code.
      try {
        await send(
          wire(
            signedRequest(
              makeAccount('fuzz-verifier-miner'),
              { op: 'certify', fid, index: 0, fragment: bodyDigest(['certify', fid, 0]) },
              peer.peerId,
            ),
          ),
        );
        throw new Error('the liveness probe was answered as done');
      } catch (err) {
        if (!(err instanceof WireRefusal && err.code === 'NOT_FOUND'))
          throw new Error(`the verifier no longer answers a valid request: ${(err as Error).message}`);
      }
      if (outcome !== undefined) throw outcome;
    },
    async digest() {
      return sqliteDigest(join(dir, 'verifier.sqlite'), { skip: ['nonces', 'nonces_pruned'] });
    },
    async restore() {
      db!.prepare('DELETE FROM tagged WHERE name != ?').run(hashes[0]!);
    },
    async teardown() {
      await attacker?.stop();
      await server?.stop();
      db?.close();
      if (dir !== '') rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const p2pEdges = (): Edge<WireInput>[] => [fragmentEdge(), roundEdge(), verifierEdge()];
