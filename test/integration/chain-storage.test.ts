/**
 * The chain as the storage network's registry, for real: 13 `ailink miner` processes join the dev chain (sminer),
 * a put is declared and reported on chain (fileBank) and is Active after 12 receipts, a second client reads it using
 * only chain state, and a lost column is restored through a restoral order that its new miner claims and completes.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ChainClient,
  connectChain,
  fileOf,
  filesOfOwner,
  type Indexer,
  minersOf,
  openIndexer,
  parseProtocolConfig,
  ROC,
  spaceOf,
  spacePurchase,
  submitProtocol,
} from '../../src/chain/index.ts';
import { type DevNetwork, startDevNetwork } from '../../src/node/devnet.ts';
import { openChainRegistry } from '../../src/node/network.ts';
import { createHost, type Host } from '../../src/p2p/index.ts';
import { type Account, loadKeyFile } from '../../src/shared/account.ts';
import { systemClock, systemRandom } from '../../src/shared/clock.ts';
import type { AilinkError } from '../../src/shared/errors.ts';
import {
  type CodecPool,
  createCodecPool,
  createMinerClient,
  createStorageClient,
  loadNetworkFile,
  type ObjectRegistry,
  type StorageClient,
  TEST_PROFILE,
} from '../../src/storage/index.ts';
import { makeAccounts } from '../chain/helpers.ts';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

async function readAll(client: StorageClient, fid: string): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const p of client.get(fid)) parts.push(p);
  return Buffer.concat(parts);
}

describe('storage recorded on the chain, with 13 real miner processes', () => {
  let dir: string;
  let network: DevNetwork;
  let host: Host;
  let codec: CodecPool;
  let account: Account;
  const opened: ObjectRegistry[] = [];
  /** A client whose registry is a fresh index of the chain: it knows only what the chain says. */
  const freshClient = async (
    as: Account = account,
  ): Promise<{ client: StorageClient; registry: ObjectRegistry }> => {
    const miners = createMinerClient(
      { host, account: as, clock: systemClock, random: systemRandom },
      { requestTimeoutMs: 20_000, signatureTtlMs: 60_000, maxFragmentSize: TEST_PROFILE.segmentSize },
    );
    const loaded = loadNetworkFile(network.path);
    // Each registry indexes into its own folder, so nothing is shared with the writer but the chain.
    const own = join(dir, `reader-${opened.length}`);
    mkdirSync(own);
    const registry = await openChainRegistry({ ...loaded, dir: own }, as, miners);
    opened.push(registry);
    const client = createStorageClient(
      { miners, registry, account: as, codec, clock: systemClock, random: systemRandom },
      { profile: TEST_PROFILE, fragmentDeadlineMs: 10_000 },
    );
    return { client, registry };
  };
  let chain: ChainClient;
  let indexer: Indexer;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ailink-chain-it-'));
    network = await startDevNetwork({ random: systemRandom }, { dataDir: dir, miners: 13, profile: 'test' });
    host = await createHost();
    codec = createCodecPool();
    account = await loadKeyFile(network.operatorKeyPath);
    chain = await connectChain(network.chainEndpoint);
    indexer = openIndexer(chain, {
      path: join(dir, 'observer.sqlite'),
      config: parseProtocolConfig(loadNetworkFile(network.path).file.chain!.protocol),
    });
  }, 180_000);

  afterAll(async () => {
    for (const r of opened) await r.close();
    indexer?.close();
    await chain?.close();
    await codec?.close();
    await host?.stop();
    await network?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('13 miners registered on chain with their peer ids, addresses and collateral', async () => {
    await indexer.sync();
    const registered = minersOf(indexer.state);
    expect(registered.map((m) => m.peerId).sort()).toStrictEqual(network.miners.map((m) => m.peerId).sort());
    for (const m of registered) {
      expect(m.state).toBe('positive');
      expect(m.addrs.length).toBeGreaterThan(0);
      expect(BigInt(m.collateral)).toBeGreaterThan(0n);
    }
  });

  let fid: string;
  let data: Uint8Array;
  it('a put lands as one extrinsic and is Active after 12 distinct receipts', async () => {
    const { client } = await freshClient();
    data = systemRandom(3 * TEST_PROFILE.segmentSize + 1000);
    const before = await chain.finalizedHeight();
    const result = await client.put(data, { name: 'chain.bin' });
    fid = result.fid;
    await indexer.sync();
    const file = fileOf(indexer.state, fid)!;
    expect(file.state).toBe('Active');
    expect(new Set(file.placements).size).toBe(12);
    expect(file.placements.every((p) => p !== null)).toBe(true);
    // Declared and made Active in the same block, by one extrinsic: the uploader's batchAll.
    expect(file.activeAt).toBe(file.declaredAt);
    const calls = indexer.calls({ fromBlock: before + 1 }).filter((c) => c.block === file.declaredAt);
    expect(calls.map((c) => [c.call, c.outcome])).toStrictEqual([
      ['fileBank.uploadDeclaration', 'applied'],
      ['fileBank.transferReport', 'applied'],
    ]);
    expect(new Set(calls.map((c) => c.extrinsic)).size).toBe(1);
  });

  it('another client reads it back using only chain state', async () => {
    const { client, registry } = await freshClient();
    const placement = await registry.get(fid);
    expect(placement?.chain?.state).toBe('Active');
    expect(sha(await readAll(client, fid))).toBe(sha(data));
  });

  it('a newcomer reads public objects at once, and stores once it bought space on chain, with no miner restarted', async () => {
    const [newcomer] = makeAccounts('chain-storage/newcomer', 1) as [Account];
    await chain.submit(account, [{ kind: 'transfer', to: newcomer.address, amount: 10n * ROC }]);
    const published = systemRandom(1500);
    const { fid: open } = await (await freshClient()).client.put(published, { encrypt: false });
    const { client } = await freshClient(newcomer);
    // A plain object is public: no grant, no space needed to read it. An encrypted one stays sealed.
    expect(sha(await readAll(client, open))).toBe(sha(published));
    await expect(readAll(client, fid)).rejects.toMatchObject({ code: 'CRYPTO_NOT_A_READER' });

    // The attack: store on the network's miners without the chain's leave. Every miner refuses it.
    const refused = await client.put(systemRandom(1000), { name: 'uninvited.bin' }).then(
      () => null,
      (err: unknown) => err as AilinkError,
    );
    expect(refused?.message).toMatch(/AUTH_NOT_AUTHORISED|not authorised/);
    await indexer.sync();
    expect(filesOfOwner(indexer.state, newcomer.address)).toStrictEqual([]);
    const pids = network.miners.map((m) => m.pid);

    // Space bought on chain is all it takes: the same miner processes accept the next upload.
    await submitProtocol({ chain, indexer }, newcomer, spacePurchase(network.protocol, 1));
    expect(spaceOf(indexer.state, newcomer.address)?.gib).toBe(1);
    const welcome = systemRandom(TEST_PROFILE.segmentSize + 10);
    const stored = await client.put(welcome, { name: 'welcome.bin' });
    await indexer.sync();
    expect(fileOf(indexer.state, stored.fid)).toMatchObject({ owner: newcomer.address, state: 'Active' });
    expect(network.miners.map((m) => m.pid)).toStrictEqual(pids);
  });

  it('a stopped miner: a restoral order is generated, claimed by a spare, completed, and the file reads back', async () => {
    const file = fileOf(indexer.state, fid)!;
    const lostAccount = file.placements[5]!;
    const lostPeer = minersOf(indexer.state).find((m) => m.address === lostAccount)!.peerId;
    const lost = network.miners.find((m) => m.peerId === lostPeer)!;
    await lost.stop();
    const from = (await chain.finalizedHeight()) + 1;

    const { client } = await freshClient();
    const report = await client.repair(fid);
    expect(report.repaired.map((r) => r.column)).toStrictEqual([5]);

    await indexer.sync();
    const after = fileOf(indexer.state, fid)!;
    expect(after.placements[5]).not.toBe(lostAccount);
    expect(file.placements).not.toContain(after.placements[5]);
    expect(after.placements[5]).toBe(accountOf(report.repaired[0]!.to));
    expect(after.orders).toStrictEqual({});
    const trail = indexer
      .calls({ fromBlock: from })
      .filter((c) => /restoral/i.test(c.call ?? ''))
      .map((c) => [c.call, c.outcome]);
    expect(trail).toStrictEqual([
      ['fileBank.generateRestoralOrder', 'applied'],
      ['fileBank.claimRestoralOrder', 'applied'],
      ['fileBank.restoralComplete', 'applied'],
    ]);
    // The claim and the completion were signed by the new miner itself.
    const signers = indexer
      .calls({ fromBlock: from })
      .filter((c) => c.call === 'fileBank.claimRestoralOrder' || c.call === 'fileBank.restoralComplete')
      .map((c) => c.signer);
    expect(signers).toStrictEqual([after.placements[5], after.placements[5]]);

    const reader = await freshClient();
    expect(sha(await readAll(reader.client, fid))).toBe(sha(data));
  });

  it('fewer live miners than columns: a put defers a column, is Active and reads back; a returning miner restores it', async () => {
    // After the test above one of the 13 miners is down; stop another, so that 11 answer for 12 columns.
    const down = network.miners.filter((m) => !m.running);
    const second = network.miners.find((m) => m.running)!;
    await second.stop();
    down.push(second);
    const events: string[] = [];
    const bytes = systemRandom(2 * TEST_PROFILE.segmentSize + 7);
    const { client } = await freshClient();
    const put = await client.put(bytes, {
      name: 'degraded.bin',
      onProgress: (e) => {
        if (e.kind === 'column-deferred') events.push(`${e.column}`);
      },
    });
    expect(events.length).toBeGreaterThanOrEqual(1);
    await indexer.sync();
    const file = fileOf(indexer.state, put.fid)!;
    expect(file.state).toBe('Active');
    const deferred = events.map(Number).sort((a, b) => a - b);
    expect(file.placements.flatMap((p, c) => (p === null ? [c] : []))).toStrictEqual(deferred);
    expect(Object.keys(file.orders).map(Number)).toStrictEqual(deferred);
    expect(sha(await readAll((await freshClient()).client, put.fid))).toBe(sha(bytes));

    // A miner that was down comes back, holds no column of the object, and takes the protocol's orders itself.
    for (const m of down) await m.restart();
    const until = Date.now() + 90_000;
    for (;;) {
      await indexer.sync();
      const now = fileOf(indexer.state, put.fid)!;
      if (now.placements.every((p) => p !== null) && Object.keys(now.orders).length === 0) break;
      if (Date.now() > until)
        throw new Error(`the deferred columns were not restored in 90 s: ${JSON.stringify(now.orders)}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    const restored = fileOf(indexer.state, put.fid)!;
    expect(new Set(restored.placements).size).toBe(12);
    expect(sha(await readAll((await freshClient()).client, put.fid))).toBe(sha(bytes));
  }, 180_000);

  function accountOf(peerId: string): string | undefined {
    return minersOf(indexer.state).find((m) => m.peerId === peerId)?.address;
  }
});
