/**
 * Reader groups (src/storage/object/group-key.ts): one wrap in a declaration for any number of readers. The format's
 * rules as pure tests and properties, the attacks on a group object, then the storage client end to end against 12
 * real miners in this process: 70 readers (more than a declaration's 64 wraps), reuse, and rotation.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EncryptionSchema } from '../../src/chain/calls.ts';
import { type MinerNode, startMinerNode } from '../../src/node/miner.ts';
import { createHost, type Host, type PeerRef } from '../../src/p2p/index.ts';
import { type Account, accountFromSeeds, accountsReady } from '../../src/shared/account.ts';
import { fromHex, toHex } from '../../src/shared/bytes.ts';
import { systemClock, systemRandom } from '../../src/shared/clock.ts';
import {
  type CodecPool,
  createCodecPool,
  createMemoryRegistry,
  createMinerClient,
  createStorageClient,
  generateX25519,
  type ObjectRegistry,
  openReaderGroup,
  sealReaderGroup,
  TEST_PROFILE,
  wrapDataKey,
  x25519PublicOf,
} from '../../src/storage/index.ts';
import { expectCode, rejectsWith } from './helpers.ts';

const OWNER = '5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY';
const readerKeys = (n: number) => Array.from({ length: n }, () => generateX25519());
const json = (bytes: Uint8Array) => JSON.parse(new TextDecoder().decode(bytes));
const encode = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));

describe('reader group objects', () => {
  it('every member opens the group key; anyone else is not a reader', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 0, max: 3 }), (members, others) => {
        const keys = readerKeys(members + others);
        const inside = keys.slice(0, members);
        const group = sealReaderGroup(
          inside.map((k) => toHex(k.publicKey)),
          OWNER,
        );
        for (const k of inside) {
          const key = openReaderGroup(
            group.bytes,
            { publicKey: group.publicKey, owner: OWNER },
            k.privateKey,
          );
          expect(toHex(x25519PublicOf(key))).toBe(group.publicKey);
        }
        for (const k of keys.slice(members)) {
          expectCode(
            () => openReaderGroup(group.bytes, { publicKey: group.publicKey, owner: OWNER }, k.privateKey),
            'CRYPTO_NOT_A_READER',
          );
        }
      }),
      { numRuns: 15, seed: 17 },
    );
  });

  it('attack: a group object that is not the one the declaration names does not open', () => {
    const [member] = readerKeys(1);
    const mine = toHex(member!.publicKey);
    const a = sealReaderGroup([mine], OWNER);
    const b = sealReaderGroup([mine], OWNER);
    // Another group's object under this group's name (a swapped fid).
    expectCode(
      () => openReaderGroup(b.bytes, { publicKey: a.publicKey, owner: OWNER }, member!.privateKey),
      'CRYPTO_DECRYPT_FAILED',
    );
    // Another owner's claim to the same group.
    expectCode(
      () =>
        openReaderGroup(
          a.bytes,
          { publicKey: a.publicKey, owner: `${OWNER.slice(0, -1)}Z` },
          member!.privateKey,
        ),
      'CRYPTO_DECRYPT_FAILED',
    );
    // B's member wrap moved into A's object: bound to B's key, it does not open under A's.
    const moved = { ...json(a.bytes), members: json(b.bytes).members };
    expectCode(
      () => openReaderGroup(encode(moved), { publicKey: a.publicKey, owner: OWNER }, member!.privateKey),
      'CRYPTO_DECRYPT_FAILED',
    );
    // Not a group object at all, or one with a flipped byte in the sealed key.
    for (const bytes of [new Uint8Array([1, 2, 3]), encode({ ...json(a.bytes), format: 'other' })]) {
      expectCode(
        () => openReaderGroup(bytes, { publicKey: a.publicKey, owner: OWNER }, member!.privateKey),
        'CRYPTO_DECRYPT_FAILED',
      );
    }
    const altered = json(a.bytes);
    altered.members[0].sealed = `${altered.members[0].sealed[0] === '0' ? '1' : '0'}${altered.members[0].sealed.slice(1)}`;
    expectCode(
      () => openReaderGroup(encode(altered), { publicKey: a.publicKey, owner: OWNER }, member!.privateKey),
      'CRYPTO_DECRYPT_FAILED',
    );
  });

  it('attack: a member wrap sealing some other key than the group key is refused', () => {
    const [member, impostor] = readerKeys(2);
    const group = sealReaderGroup([toHex(member!.publicKey)], OWNER);
    const forged = json(group.bytes);
    // Correctly bound to this group and owner, but it seals a key whose public half is not the group's.
    forged.members = [
      wrapDataKey(impostor!.privateKey, member!.publicKey, {
        fid: `reader-group/${group.publicKey}`,
        owner: OWNER,
      }),
    ];
    expectCode(
      () => openReaderGroup(encode(forged), { publicKey: group.publicKey, owner: OWNER }, member!.privateKey),
      'CRYPTO_DECRYPT_FAILED',
    );
  });

  it('a declaration names a group only beside a wrap for its key; one without groups is as before', () => {
    const wrap = { recipient: 'a'.repeat(64), ephemeral: 'b'.repeat(64), sealed: 'c'.repeat(96) };
    const base = { alg: 'aes-256-gcm', wraps: [wrap], tags: [] };
    expect(EncryptionSchema.safeParse(base).success).toBe(true);
    expect(
      EncryptionSchema.safeParse({ ...base, groups: [{ recipient: 'a'.repeat(64), fid: 'd'.repeat(64) }] })
        .success,
    ).toBe(true);
    expect(
      EncryptionSchema.safeParse({ ...base, groups: [{ recipient: 'e'.repeat(64), fid: 'd'.repeat(64) }] })
        .success,
    ).toBe(false);
    // The breakpoint a group removes: 65 wraps do not fit a declaration.
    expect(EncryptionSchema.safeParse({ ...base, wraps: Array(65).fill(wrap) }).success).toBe(false);
  });
});

describe('storage client with reader groups, 12 in-process miners', () => {
  const quietLog = { info() {}, warn() {} };
  const deps = { clock: systemClock, random: systemRandom };
  let dir: string;
  let nodes: MinerNode[] = [];
  let host: Host;
  let codec: CodecPool;
  let registry: ObjectRegistry;
  let owner: Account;
  let members: Account[];
  let stranger: Account;

  const clientFor = (account: Account) =>
    createStorageClient(
      {
        miners: createMinerClient(
          { host, account, ...deps },
          { requestTimeoutMs: 5000, signatureTtlMs: 60_000, maxFragmentSize: 1024 * 1024 },
        ),
        registry,
        account,
        codec,
        ...deps,
      },
      { profile: TEST_PROFILE, fragmentDeadlineMs: 5000 },
    );
  const read = async (account: Account, fid: string) => {
    const parts: Uint8Array[] = [];
    for await (const part of clientFor(account).get(fid)) parts.push(part);
    return Buffer.concat(parts);
  };
  const account = () => accountFromSeeds(systemRandom(32), generateX25519().privateKey);

  beforeAll(async () => {
    await accountsReady();
    owner = account();
    stranger = account();
    members = Array.from({ length: 70 }, account);
    dir = mkdtempSync(join(tmpdir(), 'ailink-group-'));
    nodes = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        startMinerNode(
          { ...deps, log: quietLog },
          {
            dataDir: join(dir, `m${i}`),
            listen: ['/ip4/127.0.0.1/tcp/0'],
            allow: [owner.address],
            capacity: 64 * 1024 * 1024,
            maxFragmentSize: 1024 * 1024,
            maxSignatureTtlMs: 60_000,
            requestDeadlineMs: 10_000,
          },
        ),
      ),
    );
    const peers: PeerRef[] = nodes.map((n) => ({ peerId: n.peerId, addrs: n.addrs() }));
    host = await createHost();
    codec = createCodecPool({ inline: true });
    registry = createMemoryRegistry(() => peers);
  }, 60_000);

  afterAll(async () => {
    await host?.stop();
    await Promise.all(nodes.map((n) => n.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('70 readers through one group: two wraps in the declaration, every member reads, a stranger does not', async () => {
    const data = systemRandom(5000);
    const group = members.map((m) => m.readerKey);
    const { fid, record } = await clientFor(owner).put(data, { readerGroup: group, size: data.byteLength });
    expect(record.encryption!.wraps).toHaveLength(2);
    expect(record.encryption!.groups).toHaveLength(1);
    expect(EncryptionSchema.safeParse(record.encryption).success).toBe(true);
    for (const m of [members[0]!, members[33]!, members[69]!])
      expect(await read(m, fid)).toEqual(Buffer.from(data));
    expect(await read(owner, fid)).toEqual(Buffer.from(data));
    await rejectsWith(read(stranger, fid), 'CRYPTO_NOT_A_READER');
    // The same 70 readers with direct wraps do not fit a declaration.
    expect(
      EncryptionSchema.safeParse({
        ...record.encryption,
        groups: undefined,
        wraps: [owner, ...members].map((a) =>
          wrapDataKey(systemRandom(32), fromHex(a.readerKey), { fid, owner: owner.address }),
        ),
      }).success,
    ).toBe(false);
  });

  it('the same members share one group object; a changed membership gets a new one that a former member cannot open', async () => {
    const client = clientFor(owner);
    const everyone = members.slice(0, 5).map((m) => m.readerKey);
    const first = await client.put(systemRandom(100), { readerGroup: everyone });
    const second = await client.put(systemRandom(100), { readerGroup: [...everyone].reverse() });
    expect(second.record.encryption!.groups).toEqual(first.record.encryption!.groups);
    // Member 0 leaves: the next object goes to a new group, with a new key.
    const third = await client.put(systemRandom(100), { readerGroup: everyone.slice(1) });
    expect(third.record.encryption!.groups![0]!.recipient).not.toBe(
      first.record.encryption!.groups![0]!.recipient,
    );
    expect((await read(members[0]!, first.fid)).byteLength).toBe(100);
    await rejectsWith(read(members[0]!, third.fid), 'CRYPTO_NOT_A_READER');
    expect((await read(members[1]!, third.fid)).byteLength).toBe(100);
  });

  it('attack: two declarations naming each other as their group object are refused, not followed in a loop', async () => {
    const client = clientFor(owner);
    const mine = [members[0]!.readerKey];
    const a = await client.put(systemRandom(100), { readerGroup: mine });
    const b = await client.put(systemRandom(100), { readerGroup: mine });
    // The owner's records of a and b, each naming the other (encrypted, itself read through a group) as its group.
    const forged = new Map([
      [a.fid, structuredClone(a.record)],
      [b.fid, structuredClone(b.record)],
    ]);
    forged.get(a.fid)!.encryption!.groups = [
      { recipient: a.record.encryption!.groups![0]!.recipient, fid: b.fid },
    ];
    forged.get(b.fid)!.encryption!.groups = [
      { recipient: b.record.encryption!.groups![0]!.recipient, fid: a.fid },
    ];
    const reader = createStorageClient(
      {
        miners: createMinerClient(
          { host, account: members[0]!, ...deps },
          { requestTimeoutMs: 5000, signatureTtlMs: 60_000, maxFragmentSize: 1024 * 1024 },
        ),
        registry: {
          ...registry,
          get: async (fid) => {
            const record = forged.get(fid);
            const placement = await registry.get(fid);
            return record === undefined || placement === null
              ? placement
              : { record, miners: placement.miners };
          },
        },
        account: members[0]!,
        codec,
        ...deps,
      },
      { profile: TEST_PROFILE, fragmentDeadlineMs: 5000 },
    );
    await rejectsWith(
      (async () => {
        for await (const _ of reader.get(a.fid));
      })(),
      'CRYPTO_DECRYPT_FAILED',
    );
  }, 20_000);

  it('attack: a declaration naming a group object that is not its group is refused, not read', async () => {
    const client = clientFor(owner);
    const mine = [members[0]!.readerKey];
    const a = await client.put(systemRandom(100), { readerGroup: mine });
    const other = await client.put(systemRandom(100), { readerGroup: [...mine, members[1]!.readerKey] });
    // The owner's record of `a` pointed at `other`'s group object: member 0 opens it, but it holds another key.
    const record = structuredClone(a.record);
    record.encryption!.groups = [
      {
        recipient: a.record.encryption!.groups![0]!.recipient,
        fid: other.record.encryption!.groups![0]!.fid,
      },
    ];
    const placement = (await registry.get(a.fid))!;
    const forged = createStorageClient(
      {
        miners: createMinerClient(
          { host, account: members[0]!, ...deps },
          { requestTimeoutMs: 5000, signatureTtlMs: 60_000, maxFragmentSize: 1024 * 1024 },
        ),
        registry: {
          ...registry,
          get: async (fid) => (fid === a.fid ? { record, miners: placement.miners } : registry.get(fid)),
        },
        account: members[0]!,
        codec,
        ...deps,
      },
      { profile: TEST_PROFILE, fragmentDeadlineMs: 5000 },
    );
    const parts: Uint8Array[] = [];
    await rejectsWith(
      (async () => {
        for await (const part of forged.get(a.fid)) parts.push(part);
      })(),
      'CRYPTO_DECRYPT_FAILED',
    );
    expect(parts).toHaveLength(0);
  });
});
