// Run by gossip.test.ts in a child process: two hosts gossip, stop, and the process must then exit on its own
// (no timer of ours or gossipsub's left behind). Prints "stopped" once both hosts are stopped.
import { createHost } from '../../src/p2p/index.ts';

// A heartbeat far longer than the test's deadline: a heartbeat timeout left pending would be plain to see.
const options = { gossipHeartbeatMs: 60_000 };
const a = await createHost(options);
const b = await createHost(options);
const received = new Promise<void>((resolve) => b.subscribe('t', () => resolve()));
await a.connect({ peerId: b.peerId, addrs: b.addrs() });
await a.waitForSubscribers('t', 1, { timeoutMs: 10_000 });
await a.publish('t', new TextEncoder().encode('hello'));
await received;
// Gossipsub's first heartbeat runs 100 ms after start and schedules the next one a heartbeat later: let it run, so
// that stop() has a long heartbeat timeout to clear.
await new Promise((resolve) => setTimeout(resolve, 500));
// Stopping while a waiter is pending must settle it, not leave its timers running.
const pending = a.waitForSubscribers('never', 1, { timeoutMs: 60_000 }).catch(() => undefined);
await Promise.all([a.stop(), b.stop()]);
await pending;
process.stdout.write('stopped\n');
