/**
 * The proof stack end to end on the real dev chain: 13 miner processes and a verifier process. Miners commit idle
 * files, get their columns tagged, answer audit challenges through the verifier; a miner that deletes a fragment
 * misses, is slashed on its second miss, and the spare miner rebuilds its column through a restoral order.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  auditRecordOf,
  auditResultMessage,
  CESS_AUDIT,
  type ChainClient,
  challengeOf,
  connectChain,
  DEV_PROTOCOL_CONFIG,
  fileOf,
  type Indexer,
  minerOf,
  minersOf,
  openIndexer,
  type ProtocolConfig,
  protocolCall,
  submitProtocol,
  taggedFor,
  verifiersOf,
} from '../../src/chain/index.ts';
import { BIN, type DevNetwork, startDevNetwork } from '../../src/node/devnet.ts';
import { openChainRegistry } from '../../src/node/network.ts';
import { createHost, type Host } from '../../src/p2p/index.ts';
import { type Account, loadKeyFile } from '../../src/shared/account.ts';
import { toHex } from '../../src/shared/bytes.ts';
import { systemClock, systemRandom } from '../../src/shared/clock.ts';
import { hasCode } from '../../src/shared/errors.ts';
import {
  type CodecPool,
  createCodecPool,
  createMinerClient,
  createStorageClient,
  loadNetworkFile,
  type ObjectRegistry,
  TEST_PROFILE,
} from '../../src/storage/index.ts';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const exec = promisify(execFile);

const IDLE_FILE = 1024 * 32; // idleNodes × 32-byte labels
/**
 * Fast audits: every miner is challenged every third block and has 30 blocks to answer (blocks come fast here: every
 * transaction seals one, and 15 processes share 2 cores); 1 KiB proof blocks.
 */
const PROTOCOL: ProtocolConfig = {
  ...DEV_PROTOCOL_CONFIG,
  audit: {
    ...CESS_AUDIT,
    challengeInterval: 3,
    challengeMiners: 13,
    slipBaseBlocks: 30,
    exitAfterMisses: 6,
    proofs: {
      blockSize: 1024,
      challengeBlocks: 8,
      idleNodes: 1024,
      idleParents: 6,
      idleOpenings: 8,
      idleRounds: 16,
    },
  },
};

async function until<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  ms = 120_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

describe('audits, penalties and repair with 13 miner processes and a verifier on the dev chain', () => {
  let dir: string;
  let network: DevNetwork;
  let chain: ChainClient;
  let indexer: Indexer;
  let host: Host;
  let codec: CodecPool;
  let account: Account;
  let registry: ObjectRegistry;
  let fid: string;
  let data: Uint8Array;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ailink-audit-it-'));
    network = await startDevNetwork(
      { random: systemRandom },
      {
        dataDir: dir,
        miners: 13,
        profile: 'test',
        protocol: PROTOCOL,
        minerCapacity: 8 * IDLE_FILE,
        idleSpace: 8 * IDLE_FILE,
        heartbeatMs: 1000,
      },
    );
    chain = await connectChain(network.chainEndpoint);
    // PROTOCOL with the network's verifier in its verifier set.
    indexer = openIndexer(chain, { path: join(dir, 'observer.sqlite'), config: network.protocol });
    host = await createHost();
    codec = createCodecPool();
    account = await loadKeyFile(network.operatorKeyPath);
  }, 180_000);

  afterAll(async () => {
    await registry?.close();
    indexer?.close();
    await chain?.close();
    await codec?.close();
    await host?.stop();
    await network?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  const state = async () => {
    await indexer.sync();
    return indexer.state;
  };

  it('the verifier is registered in teeWorker and every miner commits its idle space as idle files', async () => {
    const s = await state();
    expect(verifiersOf(s).map((v) => v.peerId)).toStrictEqual([network.verifier!.peerId]);
    await until('8 idle files per miner', async () => {
      const st = await state();
      return minersOf(st).every((m) => auditRecordOf(st, m.address).idleFiles.length === 8) || undefined;
    });
  });

  it('a put: the 12 holders get their columns tagged and release idle files to make room', async () => {
    const miners = createMinerClient(
      { host, account, clock: systemClock, random: systemRandom },
      { requestTimeoutMs: 20_000, signatureTtlMs: 60_000, maxFragmentSize: TEST_PROFILE.segmentSize },
    );
    registry = await openChainRegistry(loadNetworkFile(network.path), account, miners);
    const client = createStorageClient(
      { miners, registry, account, codec, clock: systemClock, random: systemRandom },
      { profile: TEST_PROFILE, fragmentDeadlineMs: 10_000 },
    );
    data = systemRandom(3 * TEST_PROFILE.segmentSize - 500);
    fid = (await client.put(data, { name: 'audited.bin' })).fid;
    const holders = fileOf(await state(), fid)!.placements as string[];
    await until('every column tagged for its holder', async () => {
      const st = await state();
      return holders.every((h, i) => taggedFor(st, fid, i) === h) || undefined;
    });
    // 3 fragments of 16 KiB per holder leave room for 6 of the 8 idle files of 32 KiB.
    await until('holders released idle files for the service data', async () => {
      const st = await state();
      return holders.every((h) => auditRecordOf(st, h).idleFiles.length === 6) || undefined;
    });
  }, 180_000);

  it('every miner answers its challenges: proofs verified by the verifier and anchored on chain', async () => {
    await until('a pass for every miner with a tagged column in its snapshot', async () => {
      const st = await state();
      return minersOf(st).every((m) => auditRecordOf(st, m.address).passes >= 2) || undefined;
    });
  }, 180_000);

  it('a burst of puts leaves every miner a backlog of columns to tag: their reports share transactions, no honest miner misses', async () => {
    const miners = createMinerClient(
      { host, account, clock: systemClock, random: systemRandom },
      { requestTimeoutMs: 20_000, signatureTtlMs: 60_000, maxFragmentSize: TEST_PROFILE.segmentSize },
    );
    const client = createStorageClient(
      { miners, registry, account, codec, clock: systemClock, random: systemRandom },
      { profile: TEST_PROFILE, fragmentDeadlineMs: 10_000 },
    );
    const from = await indexer.sync();
    // One segment each: 16 KiB per holder, 96 KiB for the 6 of them, inside every miner's 256 KiB.
    const fids = (
      await Promise.all(
        Array.from({ length: 6 }, (_, i) =>
          client.put(systemRandom(TEST_PROFILE.segmentSize - 100), { name: `burst-${i}.bin` }),
        ),
      )
    ).map((r) => r.fid);
    await until('every column of the burst tagged for its holder', async () => {
      const st = await state();
      return (
        fids.every((f) => fileOf(st, f)!.placements.every((h, i) => taggedFor(st, f, i) === h)) || undefined
      );
    });
    const reports = indexer
      .calls({ fromBlock: from })
      .filter((c) => c.call === 'fileBank.calculateReport' && c.outcome === 'applied');
    const transactions = new Set(reports.map((c) => `${c.block}/${c.extrinsic}`));
    expect(reports.length).toBeGreaterThanOrEqual(6 * 12);
    expect(transactions.size).toBeLessThan(reports.length);
    const st = await state();
    for (const m of minersOf(st)) expect(auditRecordOf(st, m.address).misses, `${m.address} missed`).toBe(0);
  }, 240_000);

  it('a result with a forged verifier signature is rejected on chain and changes nothing', async () => {
    const s = await state();
    const verifier = verifiersOf(s)[0]!;
    const proof = sha(new TextEncoder().encode('no proof at all'));
    let lastTarget = '';
    /**
     * Submits a forged result for an open challenge, claiming `claimed` signed it. The honest miner may answer the
     * challenge between our look and our submission ("no open challenge"): then the forgery is tried on the next one.
     */
    const forged = async (claimed: string): Promise<string> => {
      for (let attempt = 0; attempt < 5; attempt++) {
        const [target, challenge] = await until('an open challenge', async () => {
          const st = await state();
          for (const m of minersOf(st)) {
            const c = challengeOf(st, m.address);
            if (c !== undefined && c.result === null) return [m.address, c] as const;
          }
          return undefined;
        });
        const message = auditResultMessage(target, challenge.issuedAt, challenge.seed, proof);
        try {
          await submitProtocol({ chain, indexer }, account, [
            protocolCall('audit.submitResult', {
              miner: target,
              challenge: challenge.issuedAt,
              proof,
              verifier: claimed,
              signature: toHex(account.sign(message)),
            }),
          ]);
          return 'applied';
        } catch (err) {
          if (!hasCode(err, 'CHAIN_CALL_REJECTED')) throw err;
          lastTarget = target;
          if (!/has no open challenge/.test(err.message)) return err.message;
        }
      }
      throw new Error('every challenge tried was answered before the forged result reached the chain');
    };
    // Signed by the operator, claiming to be the registered verifier; and claiming the operator is a verifier.
    expect(await forged(verifier.address)).toMatch(/not signed by verifier/);
    expect(await forged(account.address)).toMatch(/not a registered verifier/);
    // The miner may have answered meanwhile; the forged result never became the challenge's result.
    const result = challengeOf(indexer.state, lastTarget)?.result ?? null;
    if (result !== null)
      expect(result).toMatchObject({ verifier: verifier.address, proof: expect.not.stringMatching(proof) });
  }, 120_000);

  it('a miner that deletes a fragment misses, is slashed on the second miss, and a spare restores its column', async () => {
    const before = fileOf(await state(), fid)!;
    const victim = before.placements[4]!;
    const victimInfo = minerOf(indexer.state, victim)!;
    const victimNode = network.miners.find((m) => m.peerId === victimInfo.peerId)!;
    const name = before.segments[1]!.fragments[4]!;
    unlinkSync(join(victimNode.dataDir, 'fragments', name.slice(0, 2), name));
    const record0 = auditRecordOf(indexer.state, victim);

    const penalised = await until(
      'the second miss in a row',
      async () => {
        const r = auditRecordOf(await state(), victim);
        return r.penalties >= 1 ? r : undefined;
      },
      240_000,
    );
    expect(penalised.misses - record0.misses).toBeGreaterThanOrEqual(2);
    // 5 % of the collateral is gone.
    const collateral = BigInt(victimInfo.collateral);
    expect(BigInt(penalised.slashed)).toBe((collateral * 500n) / 10_000n);
    expect(BigInt(minerOf(indexer.state, victim)!.collateral)).toBe(collateral - BigInt(penalised.slashed));

    const spare = minersOf(indexer.state).find((m) => !before.placements.includes(m.address))!;
    const restored = await until(
      'the spare to complete the restoral order and get the column tagged',
      async () => {
        const st = await state();
        const f = fileOf(st, fid)!;
        return f.placements[4] === spare.address && taggedFor(st, fid, 4) === spare.address ? f : undefined;
      },
      180_000,
    );
    expect(Object.keys(restored.orders)).toStrictEqual([]);
    // The order was opened by the protocol (no one asked for it) and taken by the spare.
    const calls = indexer
      .calls({ fromBlock: before.declaredAt })
      .filter((c) => c.call?.startsWith('fileBank.'));
    expect(
      calls
        .filter((c) => c.call === 'fileBank.claimRestoralOrder' && c.outcome === 'applied')
        .map((c) => c.signer),
    ).toContain(spare.address);
    expect(calls.filter((c) => c.call === 'fileBank.generateRestoralOrder')).toStrictEqual([]);

    const out = join(dir, 'out.bin');
    await exec(process.execPath, [BIN, 'store', 'get', fid, '--out', out, '--network', network.path]);
    expect(sha(readFileSync(out))).toBe(sha(data));
  }, 600_000);

  it('miners that keep proving honestly are never penalised', async () => {
    const s = await state();
    const victim = fileOf(s, fid)!;
    for (const m of minersOf(s)) {
      const r = auditRecordOf(s, m.address);
      if (r.penalties > 0) {
        // Only the miner that deleted its fragment.
        expect(victim.placements.includes(m.address)).toBe(false);
        continue;
      }
      expect(r.misses, `${m.address} missed`).toBe(0);
      expect(r.passes).toBeGreaterThan(0);
    }
    expect(minersOf(s).filter((m) => auditRecordOf(s, m.address).penalties > 0)).toHaveLength(1);
  });
});
