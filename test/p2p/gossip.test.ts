import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createHost,
  type GossipMessage,
  type Host,
  type HostOptions,
  type SubscribeOptions,
} from '../../src/p2p/index.ts';
import { AilinkError, type ErrorCode } from '../../src/shared/errors.ts';

// Real libp2p hosts over 127.0.0.1 with real gossipsub. Nothing asserts on elapsed time: every wait is for an event
// (a message, a subscription) with a deadline, and "nothing arrived" is checked after a later message on the same
// path did arrive.

const DEADLINE_MS = 15_000;
const MiB = 1024 * 1024;
/** The documented defaults (HostOptions.maxGossipBytes). */
const DEFAULT_MAX_GOSSIP_BYTES = 1 * MiB;
const MAX_GOSSIP_BYTES_LIMIT = 3 * MiB;
const TOPIC = 'ailink/test';
const text = new TextEncoder();
const untext = new TextDecoder();

/** Hosts a test starts; all stopped after it. */
let started: Host[] = [];
afterEach(async () => {
  await Promise.all(started.map((h) => h.stop()));
  started = [];
});

async function host(options: HostOptions = {}): Promise<Host> {
  // A short heartbeat so that meshes form (and relays start forwarding) quickly.
  const h = await createHost({ gossipHeartbeatMs: 100, ...options });
  started.push(h);
  return h;
}

async function link(from: Host, to: Host): Promise<void> {
  await from.connect({ peerId: to.peerId, addrs: to.addrs() }, { signal: AbortSignal.timeout(DEADLINE_MS) });
}

/** A subscription that records what it receives and lets a test wait for a given payload. */
interface Inbox {
  readonly messages: GossipMessage[];
  payloads(): string[];
  /** Resolves with the first message carrying `payload`, waiting for it if needed. */
  next(payload: string): Promise<GossipMessage>;
  unsubscribe(): void;
}

function inbox(h: Host, topic: string = TOPIC, options: SubscribeOptions = {}): Inbox {
  const messages: GossipMessage[] = [];
  const waiting: { payload: string; resolve: (m: GossipMessage) => void }[] = [];
  const unsubscribe = h.subscribe(
    topic,
    (m) => {
      messages.push(m);
      const payload = untext.decode(m.data);
      for (const w of waiting.filter((x) => x.payload === payload)) w.resolve(m);
    },
    options,
  );
  return {
    messages,
    payloads: () => messages.map((m) => untext.decode(m.data)),
    next: (payload) =>
      within(
        `"${payload}" on ${h.peerId}`,
        new Promise<GossipMessage>((resolve) => {
          const seen = messages.find((m) => untext.decode(m.data) === payload);
          if (seen) resolve(seen);
          else waiting.push({ payload, resolve });
        }),
      ),
    unsubscribe,
  };
}

/** Rejects when `promise` does not settle before the deadline. */
function within<T>(what: string, promise: Promise<T>, ms = DEADLINE_MS): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/** Waits for a condition that no event announces (scores, subscriber lists), with a deadline. */
async function until(what: string, condition: () => boolean): Promise<void> {
  const deadline = Date.now() + DEADLINE_MS;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${DEADLINE_MS} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Relays forward only to peers in their mesh, which a heartbeat may still be building after every subscription is
 * known. Publishes numbered warm-up messages until every inbox has received one.
 */
async function warmUp(publisher: Host, inboxes: Inbox[], topic: string = TOPIC): Promise<void> {
  const deadline = Date.now() + DEADLINE_MS;
  for (let i = 0; ; i++) {
    await publisher.publish(topic, text.encode(`warm-${i}`));
    if (inboxes.every((box) => box.payloads().some((p) => p.startsWith('warm-')))) return;
    if (Date.now() > deadline) throw new Error('the mesh did not form in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function rejectsWith(promise: Promise<unknown>, code: ErrorCode): Promise<AilinkError> {
  const err = await promise.then(
    () => {
      throw new Error(`expected ${code}, but the call succeeded`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AilinkError);
  expect((err as AilinkError).code).toBe(code);
  return err as AilinkError;
}

const count = (box: Inbox, payload: string) => box.payloads().filter((p) => p === payload).length;

describe('gossip delivery', () => {
  it('line A–B–C: what A publishes reaches B and C (relayed by B) exactly once, from A', async () => {
    const [a, b, c] = [await host(), await host(), await host()];
    const [atA, atB, atC] = [inbox(a), inbox(b), inbox(c)];
    await link(a, b);
    await link(b, c);
    await a.waitForSubscribers(TOPIC, 1, { timeoutMs: DEADLINE_MS });
    await b.waitForSubscribers(TOPIC, 2, { timeoutMs: DEADLINE_MS });
    // A and C are not connected: C hears only what B relays.
    expect(c.subscribers(TOPIC)).toEqual([b.peerId]);
    await warmUp(a, [atB, atC]);

    expect(await a.publish(TOPIC, text.encode('hello'))).toBe(1);
    await a.publish(TOPIC, text.encode('end'));
    await Promise.all([atB.next('end'), atC.next('end')]);

    for (const box of [atB, atC]) {
      expect(count(box, 'hello')).toBe(1);
      expect(box.messages.find((m) => untext.decode(m.data) === 'hello')).toMatchObject({
        topic: TOPIC,
        from: a.peerId,
      });
    }
    // The publisher does not hear itself.
    expect(atA.messages).toEqual([]);
  });

  it('star A–B, A–C: subscribers get the message once; a host that unsubscribed gets nothing', async () => {
    const [a, b, c, d] = [await host(), await host(), await host(), await host()];
    const [atB, atC, atD] = [inbox(b), inbox(c), inbox(d)];
    await Promise.all([link(a, b), link(a, c), link(a, d)]);
    expect((await a.waitForSubscribers(TOPIC, 3, { timeoutMs: DEADLINE_MS })).sort()).toEqual(
      [b.peerId, c.peerId, d.peerId].sort(),
    );
    atD.unsubscribe();
    atD.unsubscribe(); // idempotent
    await until('A sees D leave', () => !a.subscribers(TOPIC).includes(d.peerId));
    // D still hears another topic from A, which shows that the link is up and marks when A's messages have passed.
    const dOther = inbox(d, 'ailink/other');
    await a.waitForSubscribers('ailink/other', 1, { timeoutMs: DEADLINE_MS });

    // A is not subscribed itself: flood publishing sends to every known subscriber directly.
    expect(await a.publish(TOPIC, text.encode('hello'))).toBe(2);
    await a.publish(TOPIC, text.encode('end'));
    await a.publish('ailink/other', text.encode('end'));
    await Promise.all([atB.next('end'), atC.next('end'), dOther.next('end')]);

    for (const box of [atB, atC]) {
      expect(count(box, 'hello')).toBe(1);
      expect(box.messages[0]?.from).toBe(a.peerId);
    }
    expect(atD.messages).toEqual([]);
  });

  it('triangle: a message reaching C both from A and through B is delivered once', async () => {
    const [a, b, c] = [await host(), await host(), await host()];
    const [atB, atC] = [inbox(b), inbox(c)];
    await Promise.all([link(a, b), link(b, c), link(a, c)]);
    await a.waitForSubscribers(TOPIC, 2, { timeoutMs: DEADLINE_MS });
    await b.waitForSubscribers(TOPIC, 1, { timeoutMs: DEADLINE_MS });
    await warmUp(a, [atB, atC]);

    for (let i = 0; i < 5; i++) await a.publish(TOPIC, text.encode(`m${i}`));
    await a.publish(TOPIC, text.encode('end'));
    await Promise.all([atB.next('end'), atC.next('end')]);
    // B relays to C the messages C already had from A; C drops the copies by message id.
    await b.publish(TOPIC, text.encode('end-b'));
    await atC.next('end-b');
    for (const box of [atB, atC]) {
      for (let i = 0; i < 5; i++) expect(count(box, `m${i}`)).toBe(1);
    }
  });

  it('a resubscribed topic delivers again; a second handler for a topic is refused', async () => {
    const [a, b] = [await host(), await host()];
    await link(a, b);
    const first = inbox(b);
    expect(() => b.subscribe(TOPIC, () => {})).toThrow(
      expect.objectContaining({ code: 'GOSSIP_ALREADY_SUBSCRIBED' }),
    );
    first.unsubscribe();
    const second = inbox(b);
    first.unsubscribe(); // a stale unsubscribe must not cancel the new subscription
    await a.waitForSubscribers(TOPIC, 1, { timeoutMs: DEADLINE_MS });
    await a.publish(TOPIC, text.encode('again'));
    await second.next('again');
    expect(first.messages).toEqual([]);
  });

  it('a handler that throws or rejects is reported and does not stop later deliveries', async () => {
    const [a, b] = [await host(), await host()];
    await link(a, b);
    const errors: string[] = [];
    const got: string[] = [];
    const done = new Promise<void>((resolve) =>
      b.subscribe(
        TOPIC,
        async (m) => {
          const payload = untext.decode(m.data);
          got.push(payload);
          if (payload === 'throw') throw new Error('handler failed');
          if (payload === 'last') resolve();
        },
        { onError: (err, m) => errors.push(`${untext.decode(m.data)}: ${(err as Error).message}`) },
      ),
    );
    await a.waitForSubscribers(TOPIC, 1, { timeoutMs: DEADLINE_MS });
    await a.publish(TOPIC, text.encode('throw'));
    await a.publish(TOPIC, text.encode('last'));
    await within('the last message', done);
    expect(got).toEqual(['throw', 'last']);
    expect(errors).toEqual(['throw: handler failed']);
  });
});

describe('gossip validation', () => {
  it('rejected messages are delivered to no one and not relayed; valid ones are; the sender loses score', async () => {
    const [a, b, c] = [await host(), await host(), await host()];
    // B validates; C accepts anything, so had B relayed a bad message, C would have delivered it.
    const seenByValidator: string[] = [];
    const atB = inbox(b, TOPIC, {
      validate: (data, from) => {
        seenByValidator.push(from);
        return !untext.decode(data).startsWith('bad');
      },
    });
    const atC = inbox(c);
    await link(a, b);
    await link(b, c);
    await a.waitForSubscribers(TOPIC, 1, { timeoutMs: DEADLINE_MS });
    await b.waitForSubscribers(TOPIC, 1, { timeoutMs: DEADLINE_MS });
    await warmUp(a, [atB, atC]);
    expect(b.gossipScore(a.peerId)).toBeGreaterThanOrEqual(0);

    await a.publish(TOPIC, text.encode('bad-1'));
    await a.publish(TOPIC, text.encode('good-1'));
    await a.publish(TOPIC, text.encode('bad-2'));
    await a.publish(TOPIC, text.encode('good-2'));
    await Promise.all([atB.next('good-2'), atC.next('good-2')]);

    for (const box of [atB, atC]) {
      expect(box.payloads().filter((p) => !p.startsWith('warm-'))).toEqual(['good-1', 'good-2']);
    }
    // The validator saw the verified origin, never the relay.
    expect(new Set(seenByValidator)).toEqual(new Set([a.peerId]));
    await until("A's score at B drops below 0", () => b.gossipScore(a.peerId) < 0);
    // B relayed nothing invalid, so C holds nothing against B.
    expect(c.gossipScore(b.peerId)).toBeGreaterThanOrEqual(0);
  });

  it('a validator that throws rejects the message', async () => {
    const [a, b] = [await host(), await host()];
    const atB = inbox(b, TOPIC, {
      validate: (data) => {
        if (untext.decode(data) === 'boom') throw new Error('cannot parse');
        return true;
      },
    });
    await link(a, b);
    await a.waitForSubscribers(TOPIC, 1, { timeoutMs: DEADLINE_MS });
    await a.publish(TOPIC, text.encode('boom'));
    await a.publish(TOPIC, text.encode('fine'));
    await atB.next('fine');
    expect(atB.payloads()).toEqual(['fine']);
  });

  it('a receiver refuses messages above its own maxGossipBytes', async () => {
    const a = await host();
    const b = await host({ maxGossipBytes: 1024 });
    const atB = inbox(b);
    await link(a, b);
    await a.waitForSubscribers(TOPIC, 1, { timeoutMs: DEADLINE_MS });
    await a.publish(TOPIC, new Uint8Array(2048).fill(0x61));
    await a.publish(TOPIC, text.encode('small'));
    await atB.next('small');
    expect(atB.payloads()).toEqual(['small']);
  });

  it('onReject says why each message was rejected, with a registered code, and who sent it', async () => {
    const a = await host();
    const b = await host({ maxGossipBytes: 1024 });
    const rejected: { code: string; from: string }[] = [];
    const atB = inbox(b, TOPIC, {
      validate: (data) => {
        const t = untext.decode(data);
        if (t === 'theirs') throw new AilinkError('AUTH_NOT_AUTHORISED', 'not from the announcer');
        if (t === 'boom') throw new Error('cannot parse');
        return t !== 'no';
      },
      onReject: (err, from) => rejected.push({ code: err.code, from }),
    });
    await link(a, b);
    await a.waitForSubscribers(TOPIC, 1, { timeoutMs: DEADLINE_MS });
    for (const m of ['theirs', 'boom', 'no']) await a.publish(TOPIC, text.encode(m));
    await a.publish(TOPIC, new Uint8Array(2048).fill(0x61));
    await a.publish(TOPIC, text.encode('fine'));
    await atB.next('fine');
    await until('four rejections reported', () => rejected.length === 4);
    expect(rejected.map((r) => r.code).sort()).toEqual(
      ['AUTH_NOT_AUTHORISED', 'GOSSIP_TOO_LARGE', 'INVALID_INPUT', 'INVALID_INPUT'].sort(),
    );
    expect(new Set(rejected.map((r) => r.from))).toEqual(new Set([a.peerId]));
    expect(atB.payloads()).toEqual(['fine']);
  });
});

describe('gossip limits', () => {
  it('refuses a payload above maxGossipBytes with GOSSIP_TOO_LARGE; at the limit it goes', async () => {
    const a = await host({ maxGossipBytes: 1024 });
    const err = await rejectsWith(a.publish(TOPIC, new Uint8Array(1025)), 'GOSSIP_TOO_LARGE');
    expect(err.details).toEqual({ topic: TOPIC, size: 1025, limit: 1024 });
    expect(await a.publish(TOPIC, new Uint8Array(1024))).toBe(0);

    expect(a.maxGossipBytes).toBe(1024);
    const byDefault = await host();
    expect(byDefault.maxGossipBytes).toBe(DEFAULT_MAX_GOSSIP_BYTES);
    await rejectsWith(
      byDefault.publish(TOPIC, new Uint8Array(DEFAULT_MAX_GOSSIP_BYTES + 1)),
      'GOSSIP_TOO_LARGE',
    );
  });

  it.each([
    ['the default limit (1 MiB)', undefined, DEFAULT_MAX_GOSSIP_BYTES],
    ['the highest limit (3 MiB)', MAX_GOSSIP_BYTES_LIMIT, MAX_GOSSIP_BYTES_LIMIT],
  ])('a payload of %s arrives intact', async (_, maxGossipBytes, size) => {
    const [a, b] = [await host({ maxGossipBytes }), await host({ maxGossipBytes })];
    const payload = new Uint8Array(size);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 31 + 7) & 0xff;
    const got = new Promise<GossipMessage>((resolve) => b.subscribe(TOPIC, resolve));
    await link(a, b);
    await a.waitForSubscribers(TOPIC, 1, { timeoutMs: DEADLINE_MS });
    expect(await a.publish(TOPIC, payload)).toBe(1);
    const message = await within(`the ${size}-byte message`, got);
    expect(Buffer.from(message.data).equals(Buffer.from(payload))).toBe(true);
  });

  it('publishing with no subscribed peer is not an error and reaches 0 peers', async () => {
    const a = await host();
    expect(await a.publish(TOPIC, text.encode('anyone?'))).toBe(0);
    // A connected peer that does not subscribe changes nothing.
    const b = await host();
    await link(a, b);
    expect(await a.publish(TOPIC, text.encode('anyone?'))).toBe(0);
  });

  it('createHost refuses a maxGossipBytes that gossip could not carry, and a zero heartbeat', async () => {
    await rejectsWith(createHost({ maxGossipBytes: 4 * MiB }), 'INVALID_INPUT');
    await rejectsWith(createHost({ maxGossipBytes: MAX_GOSSIP_BYTES_LIMIT + 1 }), 'INVALID_INPUT');
    await rejectsWith(createHost({ maxGossipBytes: 0 }), 'INVALID_INPUT');
    await rejectsWith(createHost({ gossipHeartbeatMs: 0 }), 'INVALID_INPUT');
    const atLimit = await host({ maxGossipBytes: MAX_GOSSIP_BYTES_LIMIT });
    expect(atLimit.maxGossipBytes).toBe(MAX_GOSSIP_BYTES_LIMIT);
  });
});

describe('waitForSubscribers', () => {
  it('resolves once enough peers subscribe', async () => {
    const [a, b, c] = [await host(), await host(), await host()];
    await Promise.all([link(a, b), link(a, c)]);
    const waiting = a.waitForSubscribers(TOPIC, 2, { timeoutMs: DEADLINE_MS });
    inbox(b);
    inbox(c);
    expect((await waiting).sort()).toEqual([b.peerId, c.peerId].sort());
    expect(a.subscribers(TOPIC).sort()).toEqual([b.peerId, c.peerId].sort());
    // Already satisfied: resolves at once.
    expect(await a.waitForSubscribers(TOPIC, 1, { timeoutMs: DEADLINE_MS })).toHaveLength(2);
    expect(await a.waitForSubscribers(TOPIC, 0)).toHaveLength(2);
  });

  it('rejects with TIMEOUT when too few peers subscribe before the deadline', async () => {
    const [a, b] = [await host(), await host()];
    await link(a, b);
    inbox(b);
    const err = await rejectsWith(a.waitForSubscribers(TOPIC, 2, { timeoutMs: 300 }), 'TIMEOUT');
    expect(err.details).toMatchObject({ topic: TOPIC, expected: 2 });
  });

  it('rejects with ABORTED when the caller aborts or the host stops', async () => {
    const a = await host();
    const controller = new AbortController();
    const aborted = a.waitForSubscribers(TOPIC, 1, { signal: controller.signal, timeoutMs: DEADLINE_MS });
    controller.abort();
    await rejectsWith(aborted, 'ABORTED');
    await rejectsWith(
      a.waitForSubscribers(TOPIC, 1, { signal: AbortSignal.abort(), timeoutMs: DEADLINE_MS }),
      'ABORTED',
    );

    const pending = a.waitForSubscribers(TOPIC, 1, { timeoutMs: DEADLINE_MS });
    await a.stop();
    await rejectsWith(pending, 'ABORTED');
  });
});

describe('stop', () => {
  it('leaves nothing behind: a process that gossiped and stopped its hosts exits on its own', async () => {
    // The fixture's heartbeat is 60 s: a pending heartbeat (or any timer of ours) would hold the child past
    // execFile's timeout, which kills it and fails this test.
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', 'test/p2p/stop-exits.fixture.ts'],
      { timeout: 30_000 },
    );
    expect(stdout).toBe('stopped\n');
  });
});
