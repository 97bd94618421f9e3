// A libp2p peer that reads and discards whatever a stream brings, then answers with the byte count: the raw-stream
// ceiling for bench/storage.ts, run as its own process like a miner.
import { createHost } from '../src/p2p/index.ts';

const SINK_PROTOCOL = '/ailink/bench/sink/1.0.0';

const host = await createHost({ maxBufferSize: 64 * 1024 * 1024 });
await host.handle(SINK_PROTOCOL, async (channel) => {
  let total = 0;
  for (;;) {
    const chunk = await channel.readSome();
    if (chunk === null) break;
    total += chunk.byteLength;
  }
  await channel.writeFrame(new TextEncoder().encode(String(total)));
  await channel.closeWrite();
});
process.stdout.write(`${JSON.stringify({ event: 'ready', peerId: host.peerId, addrs: host.addrs() })}\n`);
process.once('SIGTERM', () => void host.stop().then(() => process.exit(0)));
