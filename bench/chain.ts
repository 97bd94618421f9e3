/**
 * npm run bench:chain — the chain layer, measured in one run on the real dev chain:
 *   - indexer replay: a fresh indexer folds a chain of protocol remarks from genesis; baseline: fetching and decoding
 *     the same blocks without applying them, with the indexer's own prefetch (16 blocks in flight ahead of the one
 *     being read), so the ratio is the rules' and SQLite's share. The chain carries every protocol call of
 *     src/chain/calls.ts, each cycle of blocks a network's life: miners register and update their addresses, a
 *     verifier registers, an owner buys space, authorises an operator, declares objects that 12 miners' signed
 *     receipts place, sets market terms that a reader requests and the operator grants, opens restoral orders that a
 *     13th miner claims and completes, deletes an object, commits and releases idle space, runs a task (create,
 *     endpoint, seed, admission list, rounds, stop), a miner exits and the pot pays its collateral back. Three calls are sent so that their rules run but end rejected,
 *     as this bench makes no proofs, challenges or participant keys: audit.submitResult (no open challenge),
 *     fileBank.calculateReport and provenance.admit (signatures not by the named verifier / organisation).
 *     The output counts applied and rejected calls by name and fails if any call of calls.ts is missing.
 *   - a put recorded on chain through 12 miner processes: transactions and blocks per object, and the time from the
 *     start of a put to the file being Active; baseline: the same put with a local (SQLite) registry.
 * Prints a table, then one JSON line.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CallArgs, CallName } from '../src/chain/calls.ts';
import { CALL_SCHEMAS } from '../src/chain/calls.ts';
import {
  type ChainCall,
  connectChain,
  DEV_PROTOCOL_CONFIG,
  devSigner,
  fileOf,
  openIndexer,
  protocolCall,
  ROC,
  startDevChain,
} from '../src/chain/index.ts';
import { startDevNetwork } from '../src/node/devnet.ts';
import { openChainRegistry } from '../src/node/network.ts';
import { createHost } from '../src/p2p/index.ts';
import { type Account, accountsReady, loadKeyFile } from '../src/shared/account.ts';
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
import {
  hex as hexOf,
  makeAccounts,
  makeDeclaration,
  makeReceipt,
  peerIdOf,
  peerSignatureOf,
} from '../test/chain/helpers.ts';

/** Cycles of the network's life written to the chain (each a few blocks), and rounds recorded per cycle. */
const BLOCKS = Number(process.env.BENCH_CHAIN_BLOCKS ?? 20);
const PER_BLOCK = Number(process.env.BENCH_CHAIN_REMARKS ?? 60);
/** The indexer's default prefetch (src/chain/indexer.ts): blocks requested ahead of the one being applied. */
const PREFETCH = 16;
const OBJECTS = Number(process.env.BENCH_CHAIN_OBJECTS ?? 3);
const log = (s: string) => process.stderr.write(`${s}\n`);

const call = <N extends CallName>(name: N, args: CallArgs<N>): ChainCall => protocolCall(name, args);

async function replay() {
  const dir = mkdtempSync(join(tmpdir(), 'ailink-bench-chain-'));
  const chain = await startDevChain({ port: 0 });
  const client = await connectChain(chain.endpoint);
  try {
    await accountsReady();
    const alice = devSigner('Alice');
    const miners = makeAccounts('bench-chain/miner', 13);
    const [owner, operator, reader, verifier, org] = makeAccounts('bench-chain/user', 5) as [
      Account,
      Account,
      Account,
      Account,
      Account,
    ];
    // A keyed pot (issue 15 item 6): the exiting miner's collateral is paid back by a checked payout.
    const [potKeeper] = makeAccounts('bench-chain/pot', 1) as [Account];
    const config = { ...DEV_PROTOCOL_CONFIG, pot: potKeeper.address, verifiers: [verifier.address] };
    const pot = config.pot;
    const addrs = (port: number) => [`/ip4/127.0.0.1/tcp/${port}`];
    log(`writing ${BLOCKS} cycles of every protocol call (${PER_BLOCK} rounds recorded per cycle) …`);
    await client.submit(
      alice,
      [...miners, owner, operator, reader, verifier, org].map((a) => ({
        kind: 'transfer' as const,
        to: a.address,
        amount: 1000n * ROC,
      })),
    );
    for (const [i, m] of miners.entries()) {
      await client.submit(m, [
        { kind: 'transfer', to: pot, amount: ROC },
        call('sminer.register', {
          peerId: peerIdOf(m),
          addrs: addrs(4000 + i),
          capacity: 1 << 30,
          collateral: ROC.toString(),
          peerSignature: peerSignatureOf(m, 'sminer.register', { genesisHash: client.genesisHash }),
        }),
      ]);
    }
    await client.submit(verifier, [
      call('teeWorker.register', {
        peerId: peerIdOf(verifier),
        addrs: addrs(4100),
        podr2Key: 'cd'.repeat(32),
        peerSignature: peerSignatureOf(verifier, 'teeWorker.register', { genesisHash: client.genesisHash }),
      }),
    ]);
    const wrap = (label: string) => ({
      recipient: hexOf(`recipient/${label}`),
      ephemeral: hexOf(`ephemeral/${label}`),
      sealed: hexOf(`sealed/${label}`).slice(0, 32) + hexOf(`sealed2/${label}`),
    });
    const fakeSignature = (label: string) => hexOf(`sig/${label}`) + hexOf(`sig2/${label}`);
    for (let c = 0; c < BLOCKS; c++) {
      const task = `bench-${c}`;
      const files = Array.from({ length: 4 }, (_, j) =>
        makeDeclaration(`bench/${c}/${j}`, owner.address, {
          data: 4,
          parity: 8,
          segments: 1,
          segmentSize: 1 << 20,
          size: 1000,
          encrypted: j === 0, // the object for sale: the market trades keys of encrypted objects only
        }),
      );
      const [sold, restored, deleted, manifest] = files as [
        (typeof files)[0],
        (typeof files)[0],
        (typeof files)[0],
        (typeof files)[0],
      ];
      // The owner: space, an operator, objects placed by 12 miners, market terms, a restoral order, a task's rounds.
      await client.submit(owner, [
        { kind: 'transfer', to: pot, amount: config.spacePrice },
        call('storageHandler.buySpace', { gib: 1 }),
        call('oss.authorize', { operator: operator.address }),
        ...files.flatMap((d) => [
          call('fileBank.uploadDeclaration', d),
          call('fileBank.transferReport', {
            fid: d.fid,
            receipts: miners.slice(0, 12).map((m, i) => makeReceipt(m, d, i)),
          }),
        ]),
        call('market.setTerms', { fid: sold.fid, readers: [reader.address], price: null }),
        call('fileBank.generateRestoralOrder', { fid: restored.fid, index: 0 }),
        call('provenance.createTask', { task, spec: hexOf(`spec/${c}`), admitted: [org.address] }),
        call('provenance.setEndpoint', {
          task,
          url: 'http://127.0.0.1:8080',
          peerId: peerIdOf(owner),
          addrs: addrs(4200),
        }),
        call('provenance.admit', {
          task,
          account: org.address,
          identityKey: hexOf(`identity/${c}`),
          signature: fakeSignature(`admit/${c}`), // not the organisation's: the rule rejects it
        }),
        call('provenance.setAdmitted', { task, add: [reader.address], remove: [] }),
        call('provenance.drawSeed', { task, round: 0, attempt: 0, cohort: hexOf(`cohort/${c}`) }),
        ...Array.from({ length: PER_BLOCK }, (_, r) =>
          call('provenance.recordRound', {
            task,
            round: r,
            manifest: manifest.fid, // the rules anchor only a manifest its coordinator stored
            digest: hexOf(`digest/${c}/${r}`),
          }),
        ),
      ]);
      // A reader asks for the sold object's key; the 13th miner claims the restoral order; miners move.
      await client.submit(reader, [
        call('market.request', { fid: sold.fid, readerKey: hexOf(`reader/${c}`) }),
      ]);
      await client.submit(miners[12]!, [
        call('fileBank.claimRestoralOrder', { fid: restored.fid, index: 0 }),
        call('sminer.updateAddrs', { addrs: addrs(5000 + c) }),
      ]);
      // The operator grants the key and deletes an object for the owner; the repair completes; the verifier's calls.
      await client.submit(operator, [
        call('market.grant', {
          fid: sold.fid,
          reader: reader.address,
          wrap: { ...wrap(`grant/${c}`), recipient: hexOf(`reader/${c}`) },
        }),
        call('fileBank.deleteFile', { fid: deleted.fid }),
      ]);
      await client.submit(miners[12]!, [call('fileBank.restoralComplete', { fid: restored.fid, index: 0 })]);
      await client.submit(verifier, [
        call('teeWorker.updateAddrs', { addrs: addrs(4300 + c) }),
        call('audit.submitResult', {
          miner: miners[0]!.address,
          challenge: c,
          proof: hexOf(`proof/${c}`),
          verifier: verifier.address,
          signature: fakeSignature(`result/${c}`),
        }),
      ]);
      // The holder of column 1 carries a verifier's tag report (its signature is not the verifier's: rejected).
      await client.submit(miners[1]!, [
        call('fileBank.calculateReport', {
          fid: sold.fid,
          index: 1,
          verifier: verifier.address,
          signature: fakeSignature(`report/${c}`),
        }),
      ]);
      await client.submit(miners[c % 12]!, [
        call('audit.commitIdle', { first: 0, roots: [hexOf(`idle/${c}`)] }),
        call('audit.releaseIdle', { count: 1 }),
      ]);
      await client.submit(owner, [
        call('oss.cancelAuthorize', { operator: operator.address }),
        call('provenance.stopTask', { task }),
      ]);
    }
    await client.submit(miners[12]!, [call('sminer.exit', {})]);
    // The pot pays the exit's debt (the first debt of this chain) with a transfer the payout names.
    await client.submit(potKeeper, [
      { kind: 'transfer', to: miners[12]!.address, amount: ROC },
      call('pot.payout', { debts: ['0000000000'] }),
    ]);
    const height = await client.finalizedHeight();

    // Baseline: fetch + decode every block with the indexer's prefetch window, applying nothing.
    let t = performance.now();
    const ahead = new Map<number, Promise<unknown>>();
    for (let n = 1; n <= height; n++) {
      for (let k = n; k < n + PREFETCH && k <= height; k++) {
        if (!ahead.has(k)) ahead.set(k, client.block(k));
      }
      await ahead.get(n);
      ahead.delete(n);
    }
    const fetchOnlyS = (performance.now() - t) / 1000;

    const indexer = openIndexer(client, {
      path: join(dir, 'replay.sqlite'),
      config,
      prefetch: PREFETCH,
    });
    t = performance.now();
    await indexer.sync();
    const replayS = (performance.now() - t) / 1000;
    const calls = indexer.calls();
    indexer.close();
    const byCall = new Map<string, { applied: number; rejected: number; reason: string | null }>();
    for (const name of Object.keys(CALL_SCHEMAS)) byCall.set(name, { applied: 0, rejected: 0, reason: null });
    for (const c of calls) {
      const entry = byCall.get(c.call ?? '(undecodable)') ?? { applied: 0, rejected: 0, reason: null };
      entry[c.outcome]++;
      if (c.outcome === 'rejected') entry.reason ??= c.reason;
      byCall.set(c.call ?? '(undecodable)', entry);
    }
    const missing = [...byCall].filter(([, e]) => e.applied + e.rejected === 0).map(([n]) => n);
    if (missing.length > 0) throw new Error(`the replay chain lacks calls: ${missing.join(', ')}`);
    if (byCall.get('provenance.recordRound')!.applied !== BLOCKS * PER_BLOCK)
      throw new Error('bench: recorded rounds were not all applied');
    return { height, remarks: calls.length, fetchOnlyS, replayS, byCall };
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
/** BENCH_CHAIN_PUTS=0 runs the replay alone (the puts start 12 miner processes). */
const p = process.env.BENCH_CHAIN_PUTS === '0' ? null : await puts();
const rows = [
  [
    'indexer replay',
    `${r.remarks} remarks in ${r.height} blocks`,
    `${(r.remarks / r.replayS).toFixed(0)} remarks/s`,
    `${(r.height / r.replayS).toFixed(1)} blocks/s`,
  ],
  [
    `  baseline: fetch + decode only, ${PREFETCH} ahead`,
    '',
    '',
    `${(r.height / r.fetchOnlyS).toFixed(1)} blocks/s (replay ${(r.fetchOnlyS / r.replayS).toFixed(2)}×)`,
  ],
  ...(p === null
    ? []
    : [
        [
          'put on chain',
          `${p.objects} × ${(p.sizeBytes / 1e6).toFixed(3)} MB`,
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
      ]),
];
console.log('chain layer on the dev chain (sizes in MB = 10^6 bytes)\n');
for (const row of rows)
  console.log(`${row[0]!.padEnd(40)} ${row[1]!.padEnd(26)} ${row[2]!.padEnd(20)} ${row[3]}`);
console.log('\ncalls replayed, by rule (every call of src/chain/calls.ts):');
for (const [name, e] of r.byCall) {
  console.log(
    `  ${name.padEnd(34)} applied ${String(e.applied).padStart(5)}  rejected ${String(e.rejected).padStart(4)}${e.applied === 0 && e.reason ? `  (${e.reason.slice(0, 90)})` : ''}`,
  );
}
console.log(
  JSON.stringify({
    bench: 'chain',
    replay_remarks_per_s: Math.round(r.remarks / r.replayS),
    replay_blocks_per_s: Number((r.height / r.replayS).toFixed(1)),
    fetch_only_blocks_per_s: Number((r.height / r.fetchOnlyS).toFixed(1)),
    prefetch: PREFETCH,
    replay_calls: Object.fromEntries(r.byCall),
    ...(p === null
      ? {}
      : {
          txs_per_object: p.txsPerObject,
          blocks_per_object: p.blocksPerObject,
          put_to_active_s: Number(p.putToActiveS.toFixed(2)),
          local_put_s: Number(p.localPutS.toFixed(2)),
        }),
  }),
);
process.exit(0);
