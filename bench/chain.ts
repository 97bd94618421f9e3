/**
 * npm run bench:chain — the chain layer, measured in one run on the real dev chain:
 *   - indexer replay: a fresh indexer folds a chain of protocol remarks from genesis; baseline: fetching and decoding
 *     the same blocks without applying them (so the ratio is the rules' and SQLite's share);
 *   - a put recorded on chain through 12 miner processes: transactions and blocks per object, and the time from the
 *     start of a put to the file being Active; baseline: the same put with a local (SQLite) registry.
 * Prints a table, then one JSON line.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  connectChain,
  DEV_PROTOCOL_CONFIG,
  devSigner,
  fileOf,
  openIndexer,
  protocolCall,
  startDevChain,
} from '../src/chain/index.ts';
import { startDevNetwork } from '../src/node/devnet.ts';
import { openChainRegistry } from '../src/node/network.ts';
import { createHost } from '../src/p2p/index.ts';
import { loadKeyFile } from '../src/shared/account.ts';
import { systemClock, systemRandom } from '../src/shared/clock.ts';
import {
  createCodecPool,
  createMinerClient,
  createStorageClient,
  loadNetworkFile,
  type ObjectRegistry,
  openSqliteRegistry,
  TEST_PROFILE,
} from '../src/storage/index.ts';

const BLOCKS = Number(process.env.BENCH_CHAIN_BLOCKS ?? 20);
const PER_BLOCK = Number(process.env.BENCH_CHAIN_REMARKS ?? 100);
const OBJECTS = Number(process.env.BENCH_CHAIN_OBJECTS ?? 3);
const log = (s: string) => process.stderr.write(`${s}\n`);
const hex = (i: number) => i.toString(16).padStart(64, '0');

async function replay() {
  const dir = mkdtempSync(join(tmpdir(), 'ailink-bench-chain-'));
  const chain = await startDevChain({ port: 0 });
  const client = await connectChain(chain.endpoint);
  try {
    log(`writing ${BLOCKS} blocks of ${PER_BLOCK} protocol remarks …`);
    const alice = devSigner('Alice');
    await client.submit(alice, [protocolCall('provenance.createTask', { task: 'bench', spec: hex(1) })]);
    let round = 0;
    for (let b = 0; b < BLOCKS; b++) {
      const calls = Array.from({ length: PER_BLOCK }, () =>
        protocolCall('provenance.recordRound', {
          task: 'bench',
          round: round++,
          manifest: hex(round),
          digest: hex(round),
        }),
      );
      await client.submit(alice, calls);
    }
    const height = await client.finalizedHeight();
    const remarks = BLOCKS * PER_BLOCK + 1;

    let t = performance.now();
    for (let n = 1; n <= height; n++) await client.block(n);
    const fetchOnlyS = (performance.now() - t) / 1000;

    const indexer = openIndexer(client, { path: join(dir, 'replay.sqlite'), config: DEV_PROTOCOL_CONFIG });
    t = performance.now();
    await indexer.sync();
    const replayS = (performance.now() - t) / 1000;
    const rounds = indexer.calls({ outcome: 'applied' }).length;
    indexer.close();
    if (rounds !== remarks) throw new Error(`expected ${remarks} applied calls, got ${rounds}`);
    return { height, remarks, fetchOnlyS, replayS };
  } finally {
    await client.close();
    await chain.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function puts() {
  const dir = mkdtempSync(join(tmpdir(), 'ailink-bench-put-'));
  log('starting 12 miners and the dev chain …');
  const network = await startDevNetwork(
    { random: systemRandom },
    { dataDir: dir, miners: 12, profile: 'test' },
  );
  const host = await createHost();
  const codec = createCodecPool();
  const account = await loadKeyFile(network.operatorKeyPath);
  const deps = { clock: systemClock, random: systemRandom };
  const miners = createMinerClient(
    { host, account, ...deps },
    { requestTimeoutMs: 30_000, signatureTtlMs: 60_000, maxFragmentSize: TEST_PROFILE.segmentSize },
  );
  const loaded = loadNetworkFile(network.path);
  const onChain = await openChainRegistry(loaded, account, miners);
  const local = openSqliteRegistry(join(dir, 'local.sqlite'), () => loaded.miners);
  const clientOf = (registry: ObjectRegistry) =>
    createStorageClient(
      { miners, registry, account, codec, ...deps },
      { profile: TEST_PROFILE, fragmentDeadlineMs: 20_000 },
    );
  const chain = await connectChain(network.chainEndpoint);
  const observer = openIndexer(chain, {
    path: join(dir, 'observer.sqlite'),
    config: { ...DEV_PROTOCOL_CONFIG },
  });
  try {
    const size = 4 * TEST_PROFILE.segmentSize;
    const timeOf = async (registry: ObjectRegistry) => {
      const t = performance.now();
      const { fid } = await clientOf(registry).put(systemRandom(size));
      return { fid, s: (performance.now() - t) / 1000 };
    };
    await timeOf(local); // warm-up: connections to every miner
    const localS: number[] = [];
    const chainS: number[] = [];
    const fids: string[] = [];
    const startHeight = await chain.finalizedHeight();
    for (let i = 0; i < OBJECTS; i++) {
      localS.push((await timeOf(local)).s);
      const r = await timeOf(onChain);
      chainS.push(r.s);
      fids.push(r.fid);
    }
    await observer.sync();
    for (const fid of fids) {
      if (fileOf(observer.state, fid)?.state !== 'Active') throw new Error(`${fid} is not Active`);
    }
    const mine = observer.calls({ fromBlock: startHeight + 1 }).filter((c) => c.signer === account.address);
    const txs = new Set(mine.map((c) => `${c.block}/${c.extrinsic}`)).size;
    const blocks = new Set(mine.map((c) => c.block)).size;
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    return {
      objects: OBJECTS,
      sizeBytes: size,
      txsPerObject: txs / OBJECTS,
      blocksPerObject: blocks / OBJECTS,
      putToActiveS: median(chainS),
      localPutS: median(localS),
    };
  } finally {
    observer.close();
    await chain.close();
    await onChain.close();
    await local.close();
    await codec.close();
    await host.stop();
    await network.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const r = await replay();
const p = await puts();
const rows = [
  [
    'indexer replay',
    `${r.remarks} remarks in ${r.height} blocks`,
    `${(r.remarks / r.replayS).toFixed(0)} remarks/s`,
    `${(r.height / r.replayS).toFixed(1)} blocks/s`,
  ],
  ['  baseline: fetch + decode only', '', '', `${(r.height / r.fetchOnlyS).toFixed(1)} blocks/s`],
  [
    'put on chain',
    `${p.objects} × ${p.sizeBytes / 1024} KiB`,
    `${p.txsPerObject} tx/object`,
    `${p.blocksPerObject} blocks/object`,
  ],
  [
    '  put → Active',
    '',
    `${p.putToActiveS.toFixed(2)} s`,
    `${(p.putToActiveS / p.localPutS).toFixed(2)}× local`,
  ],
  ['  baseline: put, local registry', '', `${p.localPutS.toFixed(2)} s`, ''],
];
for (const row of rows)
  console.log(`${row[0]!.padEnd(34)} ${row[1]!.padEnd(26)} ${row[2]!.padEnd(20)} ${row[3]}`);
console.log(
  JSON.stringify({
    bench: 'chain',
    replay_remarks_per_s: Math.round(r.remarks / r.replayS),
    replay_blocks_per_s: Number((r.height / r.replayS).toFixed(1)),
    fetch_only_blocks_per_s: Number((r.height / r.fetchOnlyS).toFixed(1)),
    txs_per_object: p.txsPerObject,
    blocks_per_object: p.blocksPerObject,
    put_to_active_s: Number(p.putToActiveS.toFixed(2)),
    local_put_s: Number(p.localPutS.toFixed(2)),
  }),
);
process.exit(0);
