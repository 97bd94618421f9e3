/**
 * npm run bench:index-read — how fast an index reads blocks that carry protocol calls (every block of a busy network
 * and of a demo round), on the real dev chain: READ_BLOCKS blocks, each with one signed extrinsic of 4 protocol
 * remarks. Now: `ChainClient.blocks` (the extrinsics decoded from the block already read, the events read raw at the
 * block's hash and decoded with the registry). Baseline, in the same run over the same blocks: what it did before —
 * the block fetched a second time through `api.rpc.chain.getBlock` and its events through
 * `api.query.system.events.at(hash)`, which decorates an API for the block (`api.at`) first. Both must see the same
 * events. Flags (environment): READ_BLOCKS (200), READ_REPEAT (3: the best of so many passes each).
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

  /** Seconds for the best of REPEAT passes over first..last, and the events each pass saw. */
  const best = async (read: (from: number, to: number) => Promise<number>) => {
    let seconds = Number.POSITIVE_INFINITY;
    let events = 0;
    for (let r = 0; r < REPEAT; r++) {
      const t = performance.now();
      events = 0;
      // Windows of 64, as the indexer asks.
      for (let from = first; from <= last; from += 64) events += await read(from, Math.min(last, from + 63));
      seconds = Math.min(seconds, (performance.now() - t) / 1000);
    }
    return { seconds, events };
  };
  log('reading as before (baseline) …');
  const before = await best(async (from, to) => {
    const counts = await Promise.all(
      Array.from({ length: to - from + 1 }, async (_, i) => {
        const hash = await api.rpc.chain.getBlockHash(from + i);
        await api.rpc.chain.getBlock(hash);
        const records = (await api.query.system.events.at(hash)) as unknown as EventRecord[];
        return records.length;
      }),
    );
    return counts.reduce((a, b) => a + b, 0);
  });
  log('reading now …');
  const now = await best(async (from, to) => {
    const blocks = await chain.blocks(from, to);
    // Every event of a signed extrinsic is attributed to one of its calls or to the extrinsic: count the calls'.
    return blocks.reduce((n, b) => n + b.extrinsics.reduce((m, x) => m + x.calls.length, 0), 0);
  });
  if (now.events === 0 || before.events === 0) throw new Error('no events were read');
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
