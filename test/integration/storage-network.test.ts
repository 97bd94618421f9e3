/**
 * The storage network for real: 20 `ailink miner` processes on loopback joined to the dev chain, objects of several
 * 32 MiB segments recorded on chain, miners stopped, killed and stalled while the client reads, writes and repairs.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DevNetwork, type MinerProcess, startDevNetwork } from '../../src/node/devnet.ts';
import { openChainRegistry } from '../../src/node/network.ts';
import { createHost, type Host, type PeerRef } from '../../src/p2p/index.ts';
import { type Account, loadKeyFile } from '../../src/shared/account.ts';
import { systemClock, systemRandom } from '../../src/shared/clock.ts';
import { AilinkError } from '../../src/shared/errors.ts';
import {
  type CodecPool,
  createCodecPool,
  createMinerClient,
  createStorageClient,
  loadNetworkFile,
  type MinerClient,
  type ObjectRegistry,
  PRODUCTION_PROFILE,
  type ProgressEvent,
  type StorageClient,
  type StorageProfile,
  TEST_PROFILE,
} from '../../src/storage/index.ts';

const MiB = 1024 * 1024;
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

async function readAll(client: StorageClient, fid: string): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const p of client.get(fid)) parts.push(p);
  return Buffer.concat(parts);
}

describe('a storage network of 20 real miner processes', () => {
  let dir: string;
  let network: DevNetwork;
  let host: Host;
  let codec: CodecPool;
  let account: Account;
  let miners: MinerClient;
  /** The chain, as `ailink` reads it: miners from sminer (running or not: the chain is not told), objects from fileBank. */
  let registry: ObjectRegistry;
  /** A client whose puts tell `onDirectory` the miners they were given, in column order (placement is drawn). */
  const clientWith = (
    profile: StorageProfile,
    fragmentDeadlineMs = 20_000,
    onDirectory?: (columns: readonly PeerRef[]) => void,
  ) => {
    const watched: ObjectRegistry = Object.create(registry);
    watched.directory = async (want) => {
      const listed = await registry.directory(want);
      if (want !== undefined) onDirectory?.(listed); // a put's draw, not a lookup of peers
      return listed;
    };
    return createStorageClient(
      { miners, registry: watched, account, codec, clock: systemClock, random: systemRandom },
      { profile, fragmentDeadlineMs },
    );
  };
  const byPeer = (peerId: string): MinerProcess => network.miners.find((m) => m.peerId === peerId)!;
  /** The chain's directory, in the order a put assigns columns; each entry must be a running miner at its current addresses. */
  const runningDirectory = async () => {
    const listed = await registry.directory();
    expect(listed.map((p) => p.peerId).sort()).toStrictEqual(network.miners.map((m) => m.peerId).sort());
    for (const p of listed) {
      expect(byPeer(p.peerId).running).toBe(true);
      // A miner restarted on new ports re-announced them: the chain lists where it listens now.
      expect([...p.addrs].sort()).toStrictEqual([...byPeer(p.peerId).addrs].sort());
    }
    return listed;
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ailink-it-'));
    network = await startDevNetwork(
      { random: systemRandom },
      { dataDir: dir, miners: 20, profile: 'production' },
    );
    host = await createHost({ maxBufferSize: 16 * MiB });
    codec = createCodecPool();
    account = await loadKeyFile(network.operatorKeyPath);
    miners = createMinerClient(
      { host, account, clock: systemClock, random: systemRandom },
      { requestTimeoutMs: 20_000, signatureTtlMs: 60_000, maxFragmentSize: 8 * MiB },
    );
    registry = await openChainRegistry(loadNetworkFile(network.path), account, miners);
  }, 180_000);

  afterAll(async () => {
    await registry?.close();
    await codec?.close();
    await host?.stop();
    await network?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  // 2.5 production segments: the last one zero-padded, encrypted.
  const big = systemRandom(80 * MiB);
  let bigFid = '';
  let bigHolders: string[] = [];

  it('puts an encrypted object of 3 production segments on 12 distinct miners and reads it back', async () => {
    const {
      fid,
      miners: placed,
      record,
    } = await clientWith(PRODUCTION_PROFILE).put(big, { name: 'big.bin' });
    expect(record.segments).toHaveLength(3);
    expect(new Set(placed).size).toBe(12);
    bigFid = fid;
    bigHolders = [...placed];
    // Recorded on chain, Active in the block that declared it, each column on a registered miner's account.
    const onChain = await registry.get(fid);
    expect(onChain!.miners).toStrictEqual(placed);
    expect(onChain!.chain).toMatchObject({ state: 'Active', restoralOrders: [] });
    expect(onChain!.chain!.activeAt).toBe(onChain!.chain!.declaredAt);
    expect(new Set(onChain!.chain!.accounts).size).toBe(12);
    expect(onChain!.chain!.accounts.every((a) => a !== null)).toBe(true);
    expect(sha(await readAll(clientWith(PRODUCTION_PROFILE), fid))).toBe(sha(big));
  }, 120_000);

  it('still returns every byte with 8 of its 12 miners stopped', async () => {
    await Promise.all(bigHolders.slice(0, 8).map((p) => byPeer(p).stop()));
    expect(sha(await readAll(clientWith(PRODUCTION_PROFILE), bigFid))).toBe(sha(big));
  }, 120_000);

  it('refuses with a clear error naming the missing fragments when a 9th is stopped', async () => {
    await byPeer(bigHolders[8]!).stop();
    const err = await readAll(clientWith(PRODUCTION_PROFILE), bigFid).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AilinkError);
    expect((err as AilinkError).code).toBe('OBJECT_UNAVAILABLE');
    expect((err as AilinkError).message).toMatch(/expected ≥ 4 of 12 fragments of segment 0 .* got 3/);
    const missing = (err as AilinkError).details?.missing as string[];
    expect(missing).toHaveLength(9);
    for (const peer of bigHolders.slice(0, 9)) expect(missing.join('\n')).toContain(peer);
  }, 120_000);

  it('repairs onto new miners from any 4 survivors: 12 of 12 again, readable without the lost ones', async () => {
    await byPeer(bigHolders[8]!).restart(); // back with its fragments, on new ports (re-announced on chain): 4 survivors
    const events: ProgressEvent[] = [];
    const client = clientWith(PRODUCTION_PROFILE);
    const report = await client.repair(bigFid, { onProgress: (e) => events.push(e) });
    expect(report.repaired.map((r) => r.column).sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    const after = await client.info(bigFid);
    const now = after.miners;
    expect(new Set(now).size).toBe(12);
    for (const lost of bigHolders.slice(0, 8)) expect(now).not.toContain(lost);
    // The untouched columns stay where they were; on chain every restoral order was claimed and completed.
    expect(now.slice(8)).toStrictEqual(bigHolders.slice(8));
    expect(after.chain).toMatchObject({ state: 'Active', restoralOrders: [] });
    expect(after.chain!.accounts.every((a) => a !== null)).toBe(true);
    expect(new Set(after.chain!.accounts).size).toBe(12);
    // Every column is held again: a second repair finds nothing to do.
    expect((await client.repair(bigFid)).repaired).toEqual([]);
    expect(sha(await readAll(client, bigFid))).toBe(sha(big));
  }, 180_000);

  it('completes a put on another miner when a miner is killed in the middle of it', async () => {
    await Promise.all(bigHolders.slice(0, 8).map((p) => byPeer(p).restart()));
    const data = systemRandom(72 * MiB);
    const events: ProgressEvent[] = [];
    let victim: MinerProcess | undefined;
    await runningDirectory();
    // Column i goes to the i-th miner of the directory the put was given (drawn by free space) when all are healthy.
    let columnFive = '';
    const client = clientWith(PRODUCTION_PROFILE, 20_000, (listed) => {
      columnFive = listed[5]!.peerId;
    });
    const { fid, miners: placed } = await client.put(data, {
      onProgress: (e) => {
        events.push(e);
        if (e.kind === 'segment-stored' && e.segment === 0) {
          victim = byPeer(columnFive);
          victim.signal('SIGKILL');
        }
      },
    });
    expect(victim).toBeDefined();
    expect(placed[5]).not.toBe(victim!.peerId);
    expect(new Set(placed).size).toBe(12);
    expect(events.some((e) => e.kind === 'column-moved' && e.column === 5 && e.from === victim!.peerId)).toBe(
      true,
    );
    // The killed miner held segment 0 of column 5; the new miner got it rebuilt, so all 12 columns are complete.
    expect((await client.repair(fid)).repaired).toEqual([]);
    expect(sha(await readAll(client, fid))).toBe(sha(data));
  }, 180_000);

  it('moves a column whose miner stalls past the deadline', async () => {
    // The chain still lists the miner killed above (nothing told it): bring it back so that column 0's miner, the
    // first of the directory the put is given, is the one stalled and no other column moves.
    await Promise.all(network.miners.filter((m) => !m.running).map((m) => m.restart()));
    await runningDirectory();
    let stalled: MinerProcess | undefined;
    try {
      const data = systemRandom(300 * 1024);
      const client = clientWith(TEST_PROFILE, 1500, (listed) => {
        stalled = byPeer(listed[0]!.peerId);
        stalled.signal('SIGSTOP');
      });
      const moved: ProgressEvent[] = [];
      const { fid, miners: placed } = await client.put(data, {
        encrypt: false,
        onProgress: (e) => moved.push(e),
      });
      expect(placed).not.toContain(stalled!.peerId);
      expect(moved.some((e) => e.kind === 'column-moved' && e.column === 0 && /TIMEOUT/.test(e.reason))).toBe(
        true,
      );
      expect(sha(await readAll(client, fid))).toBe(sha(data));
    } finally {
      stalled?.signal('SIGCONT');
    }
  }, 120_000);
});
