/**
 * A data dir comes back (issue 18 §0): after a demo, `ailink dev --data-dir` on its chain (226 blocks, 268 MB) failed
 * with CHAIN_UNREACHABLE: every connection's first `state_getMetadata` took longer than the 15 s connect deadline.
 * Cause (see `dropUnchangedCode` in src/chain/devchain.ts): chopsticks saved the 1.2 MB runtime with every block that
 * carried a transaction, and on resume took each such block for a runtime upgrade.
 *
 * Here a network's chain gets 250 blocks with transactions, the network is stopped and started again on its data
 * dir, and everything must connect again: the network's own connection, the verifier, the miners, and 13 clients at
 * once, each within the default deadline; both for blocks saved now and for a data dir saved before the fix.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chainSpec } from '@substrate/connect-known-chains/rococo_v2_2_asset_hub';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { connectChain } from '../../src/chain/index.ts';
import { type DevNetwork, startDevNetwork } from '../../src/node/devnet.ts';
import { systemRandom } from '../../src/shared/clock.ts';
import { sealTransactionBlocks } from '../chain/transaction-blocks.ts';

const BLOCKS = 250;
const MiB = 1024 * 1024;
const CODE_KEY = '0x3a636f6465';

/** The blocks of a chopsticks database whose saved storage diff carries the runtime (`:code`). */
function blocksWithCode(db: string): { blocks: number; withCode: number } {
  const sql = new Database(db, { readonly: true });
  try {
    return sql
      .prepare(
        `SELECT count(*) AS blocks, sum(instr(storageDiff, '"${CODE_KEY}"') > 0) AS withCode FROM block`,
      )
      .get() as { blocks: number; withCode: number };
  } finally {
    sql.close();
  }
}

/**
 * Makes a data dir look as `ailink dev` saved it before the fix: the runtime in every block's storage diff (it is the
 * genesis runtime: these blocks upgrade nothing), which is what chopsticks wrote for each block with a transaction.
 */
function saveRuntimeWithEveryBlock(db: string): void {
  const code = (JSON.parse(chainSpec) as { genesis: { raw: { top: Record<string, string> } } }).genesis.raw
    .top[CODE_KEY];
  const sql = new Database(db);
  try {
    const hashes = sql.prepare('SELECT hash FROM block').pluck().all() as string[];
    const diffOf = sql.prepare('SELECT storageDiff FROM block WHERE hash = ?').pluck();
    const update = sql.prepare('UPDATE block SET storageDiff = ? WHERE hash = ?');
    sql.transaction(() => {
      for (const hash of hashes) {
        const diff = JSON.parse((diffOf.get(hash) as string | null) ?? '{}') as Record<string, string | null>;
        update.run(JSON.stringify({ ...diff, [CODE_KEY]: code }), hash);
      }
    })();
  } finally {
    sql.close();
  }
}

describe('a dev network restarted on a chain of 250 blocks', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ailink-restart-'));
  const db = join(dir, 'chain', 'chain.sqlite');
  let network: DevNetwork | undefined;
  afterAll(async () => {
    await network?.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const start = () =>
    startDevNetwork(
      { random: systemRandom },
      { dataDir: dir, miners: 1, profile: 'test', readyTimeoutMs: 60_000 },
    );
  /** Starts the network on the data dir, then connects 13 clients at once (as many processes as a demo's). */
  const comesBack = async (minHeight: number) => {
    const restarted = await start();
    network = restarted;
    expect(restarted.miners.every((m) => m.running)).toBe(true);
    expect(restarted.verifier?.running).toBe(true);
    const clients = await Promise.all(
      Array.from({ length: 13 }, () => connectChain(restarted.chainEndpoint)),
    );
    try {
      for (const c of clients) expect(await c.finalizedHeight()).toBeGreaterThanOrEqual(minHeight);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
    await restarted.stop();
    network = undefined;
  };

  it('comes back: the verifier and the miners report ready, and 13 clients connect at once', async () => {
    network = await start();
    await sealTransactionBlocks(network.chainEndpoint, BLOCKS);
    const first = await connectChain(network.chainEndpoint);
    const height = await first.finalizedHeight();
    await first.close();
    expect(height).toBeGreaterThanOrEqual(BLOCKS);
    await network.stop();
    network = undefined;
    // Blocks are saved without the runtime they share with their parent: 250 blocks, a few MB.
    expect(blocksWithCode(db)).toMatchObject({ withCode: 0 });
    expect(statSync(db).size).toBeLessThan(50 * MiB);
    await comesBack(height);

    // A data dir saved before the fix: 1.2 MB of runtime in each block. Starting on it drops those copies first.
    saveRuntimeWithEveryBlock(db);
    expect(statSync(db).size).toBeGreaterThan(250 * MiB);
    await comesBack(height);
    expect(blocksWithCode(db)).toMatchObject({ withCode: 0 });
    expect(statSync(db).size).toBeLessThan(50 * MiB);
  }, 240_000);
});
