/**
 * npm run bench:index-read — how fast an index reads blocks that carry protocol calls (every block of a busy network
 * and of a demo round), on the real dev chain: READ_BLOCKS blocks, each with one signed extrinsic of 4 protocol
 * remarks. Now: `ChainClient.blocks` (the extrinsics decoded from the block already read, the events read raw at the
 * block's hash and decoded with the registry). Baseline, in the same run over the same blocks: what it did before —
 * the block fetched a second time through `api.rpc.chain.getBlock` and its events through
 * `api.query.system.events.at(hash)`, which decorates an API for the block (`api.at`) first. Both must see every
 * block's signed extrinsic applied. Flags (environment): READ_BLOCKS (200), READ_REPEAT (3: the best of so many passes each).
 * Prints a table, then one JSON line.
 */
import { ApiPromise, WsProvider } from '@polkadot/api';
import type { EventRecord } from '@polkadot/types/interfaces';
import { connectChain, devSigner, protocolCall, startDevChain } from '../src/chain/index.ts';

const BLOCKS = Number(process.env.READ_BLOCKS ?? 200);
const REPEAT = Number(process.env.READ_REPEAT ?? 3);
const log = (line: string) => process.stderr.write(`${line}\n`);

const dev = await startDevChain({ port: 0 });
const chain = await connectChain(dev.endpoint);
const api = await ApiPromise.create({ provider: new WsProvider(dev.endpoint), noInitWarn: true });
try {
  const alice = devSigner('Alice');
  const operators = (['Bob', 'Charlie', 'Dave', 'Eve'] as const).map((n) => devSigner(n).address);
  const first = (await chain.finalizedHeight()) + 1;
  for (let b = 0; b < BLOCKS; b++) {
    // Authorise and cancel in turn: each call applies, so every block's events are a real batch's.
    const calls = operators.map((operator) =>
      protocolCall(b % 2 === 0 ? 'oss.authorize' : 'oss.cancelAuthorize', { operator }),
    );
    await chain.submit(alice, calls);
    if ((b + 1) % 50 === 0) log(`built ${b + 1}/${BLOCKS} blocks`);
  }
  const last = await chain.finalizedHeight();

  /** Seconds for the best of REPEAT passes over first..last, and the applied signed extrinsics each pass saw. */
  const best = async (read: (from: number, to: number) => Promise<number>) => {
    let seconds = Number.POSITIVE_INFINITY;
    let applied = 0;
    for (let r = 0; r < REPEAT; r++) {
      const t = performance.now();
      applied = 0;
      // Windows of 64, as the indexer asks.
      for (let from = first; from <= last; from += 64) applied += await read(from, Math.min(last, from + 63));
      seconds = Math.min(seconds, (performance.now() - t) / 1000);
    }
    return { seconds, applied };
  };
  const provider = new WsProvider(dev.endpoint);
  await provider.isReady;
  log('reading as before (baseline) …');
  // The reads `ChainClient.blocks` made before, in the same order: the window's hashes in one request, each block's
  // JSON (for the quiet-block check), then the block again decoded and its events through `.at(hash)`. Each signed
  // extrinsic's events are picked out by phase, as the decoding did; the calls' attribution after it is not redone
  // here, so the baseline is spared a step that `now` includes.
  const before = await best(async (from, to) => {
    const numbers = Array.from({ length: to - from + 1 }, (_, i) => from + i);
    const hashes = await provider.send<string[]>('chain_getBlockHash', [numbers]);
    const counts = await Promise.all(
      hashes.map(async (hash) => {
        await provider.send('chain_getBlock', [hash]);
        const signed = await api.rpc.chain.getBlock(hash);
        const records = (await api.query.system.events.at(hash)) as unknown as EventRecord[];
        return signed.block.extrinsics.filter((ex, index) => {
          const own = records.filter((e) => e.phase.isApplyExtrinsic && e.phase.asApplyExtrinsic.eqn(index));
          return ex.isSigned && !own.some((e) => api.events.system.ExtrinsicFailed.is(e.event));
        }).length;
      }),
    );
    return counts.reduce((a, b) => a + b, 0);
  });
  log('reading now …');
  const now = await best(async (from, to) => {
    const blocks = await chain.blocks(from, to);
    return blocks.reduce(
      (n, b) => n + b.extrinsics.filter((x) => x.signer !== null && x.calls.every((c) => c.applied)).length,
      0,
    );
  });
  await provider.disconnect();
  // Both ways must see the same thing: every block's signed extrinsic, applied.
  if (before.applied !== BLOCKS || now.applied !== BLOCKS)
    throw new Error(
      `expected ${BLOCKS} applied extrinsics both ways, got ${before.applied} and ${now.applied}`,
    );
  const blocks = last - first + 1;
  const row = (name: string, r: { seconds: number }) =>
    `| ${name.padEnd(40)} | ${(blocks / r.seconds).toFixed(0).padStart(8)} | ${((1000 * r.seconds) / blocks).toFixed(2).padStart(8)} |`;
  console.log(`| ${`reading ${blocks} blocks of protocol calls`.padEnd(40)} | blocks/s | ms/block |`);
  console.log(`|${'-'.repeat(42)}|---------:|---------:|`);
  console.log(row('before: getBlock again + events.at(hash)', before));
  console.log(row('now: decoded once, events read raw', now));
  console.log(
    JSON.stringify({
      blocks,
      before_blocks_per_s: Number((blocks / before.seconds).toFixed(1)),
      now_blocks_per_s: Number((blocks / now.seconds).toFixed(1)),
      speedup: Number((before.seconds / now.seconds).toFixed(2)),
    }),
  );
} finally {
  await api.disconnect();
  await chain.close();
  await dev.close();
}
