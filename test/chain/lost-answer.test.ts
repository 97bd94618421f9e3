import { type AddressInfo, createConnection, createServer, type Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { type ChainClient, connectChain } from '../../src/chain/client.ts';
import { ROC } from '../../src/chain/config.ts';
import { devSigner } from '../../src/chain/devchain.ts';
import { hasCode } from '../../src/shared/errors.ts';
import { useDevChain } from './fixture.ts';

/**
 * A WebSocket relay in front of the dev chain that loses the node's answer to the first transaction submission (and
 * the status updates after it) while the node still takes the transaction: what a client sees when a loaded node
 * answers after the client's request deadline, or the link drops at the wrong moment. With 'swallow' the submission
 * itself is lost on the way: the client sees the same silence, and nothing lands. The '…-then-drop' modes also cut the
 * client's connection right after the submission (the node restarting, the link failing); the client's next
 * connection is relayed faithfully. 'drop-at-block-read' cuts the client's connection instead of passing on its first
 * request for a block body: the node dying with a read in flight. 'late-then-drop' holds the submission back and cuts
 * the client's connection; the node gets the held submission only when the client, reconnected, sends it again (a
 * node slow to take it: after the client looked and found nothing).
 */
type RelayMode =
  | 'lose-answer'
  | 'swallow'
  | 'lose-answer-then-drop'
  | 'swallow-then-drop'
  | 'hold-submission'
  | 'late-then-drop'
  | 'drop-at-block-read';
/** How long 'hold-submission' keeps the submission from the node before passing it on. */
const HOLD_MS = 1500;
async function answerLosingRelay(target: string, mode: RelayMode = 'lose-answer') {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  let lostId: number | undefined;
  let lostSubscription: string | undefined;
  let droppedRead = false;
  /** 'late-then-drop': the first submission, held with the upstream connection it goes out on. */
  let held: { text: string; upstream: WebSocket } | undefined;
  server.on('connection', (client: WebSocket) => {
    const upstream = new WebSocket(target);
    const queued: string[] = [];
    upstream.on('open', () => {
      for (const m of queued.splice(0)) upstream.send(m);
    });
    client.on('message', (data) => {
      const text = String(data);
      const msg = JSON.parse(text) as { id?: number; method?: string };
      if (mode === 'drop-at-block-read' && !droppedRead && msg.method === 'chain_getBlock') {
        droppedRead = true;
        client.terminate();
        return;
      }
      if (held !== undefined && msg.method === 'author_submitAndWatchExtrinsic') {
        // The client sends it again: the node gets the first copy now, and this one a moment later.
        const late = held;
        held = undefined;
        late.upstream.send(late.text);
        setTimeout(() => {
          upstream.send(text);
          late.upstream.close();
        }, 1000);
        return;
      }
      if (lostId === undefined && msg.method === 'author_submitAndWatchExtrinsic') {
        lostId = msg.id;
        if (mode === 'late-then-drop') {
          held = { text, upstream };
          setTimeout(() => client.terminate(), 50);
          return;
        }
        if (mode.endsWith('-then-drop')) setTimeout(() => client.terminate(), 50);
        // The submission never reaches the node: nothing lands.
        if (mode.startsWith('swallow')) return;
        // A slow node: the submission reaches it late, and its answer comes then.
        if (mode === 'hold-submission') {
          setTimeout(() => upstream.send(text), HOLD_MS);
          lostId = -1;
          return;
        }
      }
      if (upstream.readyState === upstream.OPEN) upstream.send(text);
      else queued.push(text);
    });
    upstream.on('message', (data) => {
      const text = String(data);
      const msg = JSON.parse(text) as { id?: number; result?: unknown; params?: { subscription?: string } };
      if (msg.id !== undefined && msg.id === lostId) {
        lostSubscription = String(msg.result);
        return;
      }
      if (lostSubscription !== undefined && msg.params?.subscription === lostSubscription) return;
      client.send(text);
    });
    // A held submission keeps its upstream connection open until it has gone out on it.
    client.on('close', () => held?.upstream !== upstream && upstream.close());
    upstream.on('close', () => client.close());
  });
  return {
    endpoint: `ws://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of server.clients) c.terminate();
        server.close(() => resolve());
      }),
  };
}

describe('a submission whose answer is lost', () => {
  const dev = useDevChain();
  const bob = devSigner('Bob');
  const dave = devSigner('Dave');
  const relays: Awaited<ReturnType<typeof answerLosingRelay>>[] = [];
  const clients: ChainClient[] = [];
  const through = async (mode: RelayMode) => {
    const relay = await answerLosingRelay(dev.endpoint(), mode);
    relays.push(relay);
    const client = await connectChain(relay.endpoint, { requestTimeoutMs: 5000, lookupMs: 8000 });
    clients.push(client);
    return client;
  };
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await Promise.all(relays.map((r) => r.close()));
  });

  it('is found on chain and reported as included, never sent again: a transfer is paid once', async () => {
    const client = await through('lose-answer');
    const before = await dev.client().balance(dave.address);
    const inclusion = await client.submit(bob, [{ kind: 'transfer', to: dave.address, amount: ROC }], {
      deadlineMs: 20_000,
    });
    // The inclusion is the real one: its block holds Bob's transfer at that index.
    const block = await dev.client().block(inclusion.blockNumber);
    expect(block.hash).toBe(inclusion.blockHash);
    expect(block.extrinsics.find((x) => x.index === inclusion.extrinsicIndex)?.signer).toBe(bob.address);
    expect(inclusion.events).toContain('system.ExtrinsicSuccess');
    await new Promise((r) => setTimeout(r, 3000)); // room for a second copy to land, were there one
    expect((await dev.client().balance(dave.address)) - before).toBe(ROC);
    // The client goes on: its next submission asks the chain for the nonce and lands.
    await client.submit(bob, [{ kind: 'transfer', to: dave.address, amount: ROC }]);
    expect((await dev.client().balance(dave.address)) - before).toBe(2n * ROC);
  });

  it('is a CHAIN_TIMEOUT that may still land when it is not found on chain in time, and is not sent again', async () => {
    const client = await through('swallow');
    const before = await dev.client().balance(dave.address);
    const err = await client
      .submit(bob, [{ kind: 'transfer', to: dave.address, amount: ROC }], { deadlineMs: 20_000 })
      .catch((e: unknown) => e);
    expect(hasCode(err, 'CHAIN_TIMEOUT'), String(err)).toBe(true);
    expect(String(err)).toContain('may still land');
    expect(String(err)).toContain('not found on chain');
    expect((await dev.client().balance(dave.address)) - before).toBe(0n);
    // The nonce it would have used is free again: the next submission lands.
    await client.submit(bob, [{ kind: 'transfer', to: dave.address, amount: ROC }]);
    expect((await dev.client().balance(dave.address)) - before).toBe(ROC);
  });

  it('is sent again with the same nonce when the connection dropped before the node got it: paid once', async () => {
    const client = await through('swallow-then-drop');
    const before = await dev.client().balance(dave.address);
    const inclusion = await client.submit(bob, [{ kind: 'transfer', to: dave.address, amount: ROC }], {
      deadlineMs: 20_000,
    });
    expect(inclusion.events).toContain('system.ExtrinsicSuccess');
    await new Promise((r) => setTimeout(r, 3000)); // room for a second copy to land, were there one
    expect((await dev.client().balance(dave.address)) - before).toBe(ROC);
  });

  /** A transfer of one ROC from Bob to Dave through a relay in `mode`: reported as Bob's inclusion, and paid once. */
  const paidOnceThrough = async (mode: RelayMode) => {
    const client = await through(mode);
    const before = await dev.client().balance(dave.address);
    const inclusion = await client.submit(bob, [{ kind: 'transfer', to: dave.address, amount: ROC }], {
      deadlineMs: 20_000,
    });
    const block = await dev.client().block(inclusion.blockNumber);
    expect(block.extrinsics.find((x) => x.index === inclusion.extrinsicIndex)?.signer).toBe(bob.address);
    await new Promise((r) => setTimeout(r, 3000)); // room for a second copy to land, were there one
    expect((await dev.client().balance(dave.address)) - before).toBe(ROC);
    return { client, before };
  };

  it('is found on chain, not sent again, when the connection dropped after the node got it: paid once', async () => {
    const { client, before } = await paidOnceThrough('lose-answer-then-drop');
    // And the client goes on over its new connection.
    await client.submit(bob, [{ kind: 'transfer', to: dave.address, amount: ROC }]);
    expect((await dev.client().balance(dave.address)) - before).toBe(2n * ROC);
  });

  it('is found on chain when the node took it only after the client looked and sent it again: paid once', async () => {
    // Seen in CI under load (the test above failed so): the connection dropped under a submission the node had not
    // yet taken, the client looked (the nonce was still free) and sent it again, and the first copy reached the pool
    // in between. The pool refused the second copy (same nonce, a fresh signature); the client threw
    // CHAIN_TX_REJECTED, and its caller, taking that for a stale nonce, sent the transfer under a new one: paid twice.
    await paidOnceThrough('late-then-drop');
  });

  it('a deadline that passes while the submission itself is unanswered is a CHAIN_TIMEOUT, never an unhandled rejection', async () => {
    // Found by the chaos harness: a chain killed while miners' tag reports were being sent took six miners down with
    // an unhandled rejection. The inclusion's promise was rejected (there by the dropped connection; here by the
    // deadline) before anything awaited it, while the submission was still pending.
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const eve = devSigner('Eve').address;
      const before = await dev.client().balance(eve);
      const client = await through('hold-submission');
      const err = await client
        .submit(bob, [{ kind: 'transfer', to: eve, amount: ROC }], { deadlineMs: 300 })
        .catch((e: unknown) => e);
      expect(hasCode(err, 'CHAIN_TIMEOUT'), String(err)).toBe(true);
      expect(String(err)).toContain('may still land');
      // It did land (the node got it late): wait for it, so that no later submission of Bob's races it.
      for (let i = 0; i < 100 && (await dev.client().balance(eve)) === before; i++)
        await new Promise((r) => setTimeout(r, 200));
      expect((await dev.client().balance(eve)) - before).toBe(ROC);
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('a read cut off by a dropped connection is asked again on the new one, not answered with its old failure', async () => {
    // Found by the chaos harness: an organisation whose block read was cut off by a chain restart failed every read
    // of that block from then on (103 times in 100 s), because @polkadot's WsProvider caches the promise of a read at
    // a block hash, rejected ones too, and each look refreshes its 30 s lifetime.
    const client = await through('drop-at-block-read');
    const height = await client.finalizedHeight();
    const block = await client.block(height);
    expect(block.hash).toBe((await dev.client().block(height)).hash);
    // And the next read of it too.
    expect((await client.blocks(height, height))[0]?.hash).toBe(block.hash);
  });
});

/**
 * A TCP relay in front of the dev chain that can cut every connection through it and, while `tarpit` is set, take new
 * connections without ever passing them on or answering them: a proxy before a node that is down, or a node half
 * started, whose listener accepts and then says nothing.
 */
async function tarpitRelay(target: string) {
  const { hostname, port } = new URL(target);
  const held: Socket[] = [];
  const relayed: Socket[] = [];
  let tarpit = false;
  const server = createServer((socket) => {
    if (tarpit) {
      held.push(socket);
      return;
    }
    const upstream = createConnection({ host: hostname, port: Number(port) });
    relayed.push(socket, upstream);
    socket.pipe(upstream).pipe(socket);
    socket.on('error', () => upstream.destroy());
    upstream.on('error', () => socket.destroy());
    socket.on('close', () => upstream.destroy());
    upstream.on('close', () => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `ws://127.0.0.1:${(server.address() as AddressInfo).port}`,
    /** Cuts every relayed connection; from now on new ones are held unanswered until `relay`. */
    cutAndHold() {
      tarpit = true;
      for (const s of relayed.splice(0)) s.destroy();
    },
    relay() {
      tarpit = false;
    },
    held: () => held.length,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of [...held, ...relayed]) s.destroy();
        server.close(() => resolve());
      }),
  };
}

describe('a connection that drops', () => {
  const dev = useDevChain();

  it('is made again when an attempt is taken and never answered: no reconnection waits on one attempt for ever', async () => {
    // ws puts no deadline on its handshake, and the client tried again only when an attempt failed: an attempt that
    // a listener took and never answered held every read until its deadline, and the client never tried again.
    const relay = await tarpitRelay(dev.endpoint());
    const client = await connectChain(relay.endpoint, { reconnectMs: 20_000 });
    try {
      const before = await client.finalizedHeight();
      relay.cutAndHold();
      for (let i = 0; i < 100 && relay.held() === 0; i++) await new Promise((r) => setTimeout(r, 50));
      expect(relay.held()).toBeGreaterThan(0);
      // The node is back; the attempt already taken stays unanswered.
      relay.relay();
      expect(await client.finalizedHeight()).toBeGreaterThanOrEqual(before);
    } finally {
      await client.close();
      await relay.close();
    }
  });

  it('a read waiting for it to come back ends as soon as the client is closed, not after reconnectMs', async () => {
    // A miner stopped while its chain is gone waited in its audit pass for the connection, up to reconnectMs for each
    // read, and its stop with it.
    const relay = await tarpitRelay(dev.endpoint());
    const client = await connectChain(relay.endpoint, { reconnectMs: 30_000 });
    try {
      await client.finalizedHeight();
      relay.cutAndHold();
      for (let i = 0; i < 100 && relay.held() === 0; i++) await new Promise((r) => setTimeout(r, 50));
      const waiting = client.finalizedHeight().then(
        () => 'answered',
        (err: Error) => err,
      );
      // Still waiting for the connection a moment later.
      const moment = new Promise((r) => setTimeout(() => r('waiting'), 500));
      expect(await Promise.race([waiting, moment])).toBe('waiting');
      const closedAt = Date.now();
      await client.close();
      const outcome = await waiting;
      expect(Date.now() - closedAt).toBeLessThan(10_000);
      expect(hasCode(outcome, 'CHAIN_UNREACHABLE')).toBe(true);
      expect((outcome as Error).message).toMatch(/client is closed/);
    } finally {
      await client.close();
      await relay.close();
    }
  });
});
