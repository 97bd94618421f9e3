/**
 * Scratch profile of small puts (issue 16): a dev network of 12 miners, one storage client whose chain, index,
 * miners and codec are wrapped to log each step of each put with its time.
 *   node --import tsx bench/smallput-profile.ts [--n 8] [--concurrency 8]
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { connectChain, openIndexer } from '../src/chain/index.ts';
import { sessionOf, startDevNetwork } from '../src/node/index.ts';
import { createHost } from '../src/p2p/index.ts';
import { loadKeyFile } from '../src/shared/account.ts';
import { systemClock, systemRandom } from '../src/shared/clock.ts';
import {
  createChainRegistry,
  createCodecPool,
  createMinerClient,
  createStorageClient,
  loadNetworkFile,
  PRODUCTION_PROFILE,
} from '../src/storage/index.ts';

const { values: args } = parseArgs({
  options: { n: { type: 'string', default: '8' }, concurrency: { type: 'string', default: '8' } },
});
const N = Number(args.n);
const C = Number(args.concurrency);
const t0 = performance.now();
const now = () => Math.round(performance.now() - t0);
const log = (s: string) => process.stderr.write(`${String(now()).padStart(7)} ${s}\n`);

const root = mkdtempSync(join(tmpdir(), 'smallput-'));
const network = await startDevNetwork(
  { random: systemRandom },
  { dataDir: join(root, 'net'), miners: 12, profile: 'production', verifier: false, readyTimeoutMs: 180_000 },
);
try {
  const loaded = loadNetworkFile(network.path);
  const session = sessionOf(loaded);
  const account = await loadKeyFile(network.operatorKeyPath);
  const chain = await connectChain(session.chain);
  mkdirSync(join(root, 'idx'));
  const indexer = openIndexer(chain, { path: join(root, 'idx', 'x.sqlite'), config: session.protocol });
  await indexer.sync();
  const follow = await indexer.follow();
  const heads = await chain.followFinalized((h) => log(`   finalized #${h}`));
  const host = await createHost({});
  const minersRaw = createMinerClient(
    { host, account, clock: systemClock, random: systemRandom },
    { requestTimeoutMs: 60_000, signatureTtlMs: 60_000, maxFragmentSize: 8 * 1024 * 1024 },
  );
  /** Which put a step belongs to. */
  const current = new AsyncLocalStorage<string>();
  const tagged =
    <A extends unknown[], R>(what: string, f: (...a: A) => Promise<R>) =>
    async (...a: A): Promise<R> => {
      const tag = current.getStore() ?? '  ';
      const s = now();
      try {
        return await f(...a);
      } finally {
        log(`${tag} ${what} ${s}→${now()} (${now() - s} ms)`);
      }
    };
  const miners = {
    ...minersRaw,
    put: tagged('miner.put', minersRaw.put),
    receipt: tagged('miner.receipt', minersRaw.receipt),
  };
  const chainW = {
    ...chain,
    submit: async (...a: Parameters<typeof chain.submit>) => {
      const s = now();
      const inc = await chain.submit(...a);
      log(`   chain.submit ${s}→${now()} (${now() - s} ms) block #${inc.blockNumber} item ${inc.firstItem}`);
      return inc;
    },
  };
  const indexerW = {
    ...indexer,
    state: indexer.state,
    waitFor: async (h: number, d?: number) => {
      const s = now();
      await indexer.waitFor(h, d);
      log(`   indexer.waitFor #${h} ${s}→${now()} (${now() - s} ms)`);
    },
    sync: async (...a: Parameters<typeof indexer.sync>) => {
      const s = now();
      const r = await indexer.sync(...a);
      if (now() - s > 20) log(`   indexer.sync ${s}→${now()} (${now() - s} ms)`);
      return r;
    },
    calls: indexer.calls,
    blockHash: indexer.blockHash,
  };
  const registryRaw = createChainRegistry({ chain: chainW, indexer: indexerW, account, miners });
  const registry = {
    ...registryRaw,
    directory: tagged('registry.directory', registryRaw.directory),
    declare: tagged('registry.declare', registryRaw.declare),
  };
  const codecRaw = createCodecPool();
  const codec = { ...codecRaw, encode: tagged('codec.encode', codecRaw.encode) };
  const storage = createStorageClient(
    { miners, registry, account, codec, clock: systemClock, random: systemRandom },
    { profile: PRODUCTION_PROFILE, fragmentDeadlineMs: 60_000 },
  );
  log('warm-up put');
  await current.run('warm', () => storage.put(systemRandom(4096), { size: 4096 }));
  log(`--- ${N} puts, ${C} in flight`);
  const start = performance.now();
  let next = 0;
  const times: number[] = [];
  await Promise.all(
    Array.from({ length: C }, async () => {
      while (next < N) {
        const i = next++;
        const s = performance.now();
        log(`p${i} start`);
        await current.run(`p${i}`, () => storage.put(systemRandom(4096), { size: 4096 }));
        times.push(performance.now() - s);
        log(`p${i} done (${Math.round(performance.now() - s)} ms)`);
      }
    }),
  );
  const total = performance.now() - start;
  log(
    `--- ${N} puts in ${Math.round(total)} ms: ${(N / (total / 1000)).toFixed(2)} /s; per put median ${Math.round(times.sort((a, b) => a - b)[Math.floor(N / 2)]!)} ms`,
  );
  heads();
  await follow.stop();
  await codecRaw.close();
  await host.stop();
  indexer.close();
  await chain.close();
} finally {
  await network.stop();
  rmSync(root, { recursive: true, force: true });
}
// Something (not traced) keeps the event loop alive after the network stopped: a profile ends here.
process.exit(0);
