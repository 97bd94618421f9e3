import './polyfill.ts';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import { type GossipSub, gossipsub, type Message, StrictSign, TopicValidatorResult } from '@libp2p/gossipsub';
import { identify } from '@libp2p/identify';
import type { PeerId } from '@libp2p/interface';
import { tcp } from '@libp2p/tcp';
import { multiaddr } from '@multiformats/multiaddr';
import { createLibp2p } from 'libp2p';
import { AilinkError } from '../shared/errors.ts';
import { type ByteChannel, channelOf } from './channel.ts';

/** Where to find a peer: its id and the multiaddrs it listens on (without the /p2p suffix). */
export interface PeerRef {
  readonly peerId: string;
  readonly addrs: readonly string[];
}

export interface HostOptions {
  /** libp2p private key as protobuf bytes (see `newPeerKey`); a fresh key when absent. */
  readonly privateKey?: Uint8Array;
  /** Multiaddrs to listen on; default one ephemeral TCP port on loopback. */
  readonly listen?: readonly string[];
  /**
   * Multiaddrs other hosts should dial (a public address in front of a bind-all listener, a NAT's mapping); `addrs()`
   * then returns these instead of the listeners'. Default: the listen addresses as bound.
   */
  readonly announce?: readonly string[];
  /** Largest amount of unread inbound data buffered per stream before it is reset. */
  readonly maxBufferSize?: number;
  /**
   * Largest gossip payload this host publishes or accepts: default 1 MiB, at most 3 MiB (gossip silently drops
   * frames of 4 MiB). Bulk data belongs on direct streams (`open`) or in storage.
   */
  readonly maxGossipBytes?: number;
  /** Gossipsub heartbeat (mesh upkeep, gossip emission) period; default 1000 ms. Tests lower it. */
  readonly gossipHeartbeatMs?: number;
}

export interface ProtocolHandlerOptions {
  readonly maxInboundStreams?: number;
}

/** One gossip message as a subscriber sees it. */
export interface GossipMessage {
  readonly topic: string;
  readonly data: Uint8Array;
  /** Peer id of the origin, whose signature over the message was verified (not the peer that relayed it). */
  readonly from: string;
}

export type GossipHandler = (message: GossipMessage) => void | Promise<void>;

export interface SubscribeOptions {
  /**
   * Runs on every message from the network before it is delivered or relayed. `false` (or a throw) rejects it: it
   * is neither delivered nor forwarded, and the peer that sent it to us loses score. Keep it fast (gossipsub
   * expects < 100 ms). Our own published messages do not pass through it.
   */
  readonly validate?: (data: Uint8Array, from: string) => boolean | Promise<boolean>;
  /** Called when the handler throws or rejects; default a process warning. */
  readonly onError?: (error: unknown, message: GossipMessage) => void;
  /**
   * Told of each message rejected before delivery, with why: GOSSIP_TOO_LARGE over `maxGossipBytes`, the
   * AilinkError `validate` threw, or INVALID_INPUT when it returned false (or threw anything else). `from` is the
   * peer that sent it to us. A peer whose messages keep being rejected is soon ignored by gossipsub altogether (its
   * score falls below the graylist threshold), so this is not called once per message an attacker floods.
   */
  readonly onReject?: (error: AilinkError, from: string) => void;
}

export interface WaitForSubscribersOptions {
  readonly signal?: AbortSignal;
  /** Deadline; default 10 s. */
  readonly timeoutMs?: number;
}

export interface Host {
  readonly peerId: string;
  /** Largest gossip payload this host publishes or accepts (`HostOptions.maxGossipBytes`). */
  readonly maxGossipBytes: number;
  /** Listening addresses, each ending in /p2p/<peerId>. */
  addrs(): string[];
  handle(
    protocol: string,
    handler: (channel: ByteChannel) => Promise<void>,
    options?: ProtocolHandlerOptions,
  ): Promise<void>;
  /** Opens a stream for `protocol` to `peer`, dialling it first if needed. */
  open(peer: PeerRef, protocol: string, options?: { signal?: AbortSignal }): Promise<ByteChannel>;
  /** Dials `peer` (no-op when connected), e.g. so that a participant joins the coordinator's gossip mesh. */
  connect(peer: PeerRef, options?: { signal?: AbortSignal }): Promise<void>;
  /** Drops any connection to the peer (used when a peer stalls). */
  hangUp(peerId: string): Promise<void>;
  /**
   * Subscribes to a gossip topic; one handler per topic. Returns the function that unsubscribes.
   * @throws GOSSIP_ALREADY_SUBSCRIBED when the topic already has a handler.
   */
  subscribe(topic: string, handler: GossipHandler, options?: SubscribeOptions): () => void;
  /**
   * Publishes signed `data` on `topic` and resolves with the number of peers it was sent to (0 when none is
   * subscribed: not an error). Subscribers that are not direct peers get it through the mesh.
   * @throws GOSSIP_TOO_LARGE when `data` is larger than `maxGossipBytes`.
   */
  publish(topic: string, data: Uint8Array): Promise<number>;
  /** Peer ids that told us they subscribe to `topic` and that we can send to now. */
  subscribers(topic: string): string[];
  /**
   * Resolves with `subscribers(topic)` once it holds at least `count` peers.
   * @throws TIMEOUT after `timeoutMs`; ABORTED when `signal` aborts or the host stops.
   */
  waitForSubscribers(topic: string, count: number, options?: WaitForSubscribersOptions): Promise<string[]>;
  /** Gossipsub's current score of a peer (diagnostics): negative after it sent us messages that we rejected. */
  gossipScore(peerId: string): number;
  stop(): Promise<void>;
}

export const LOOPBACK_LISTEN = '/ip4/127.0.0.1/tcp/0';
const DEFAULT_MAX_BUFFER = 4 * 1024 * 1024;

const DEFAULT_MAX_GOSSIP_BYTES = 1024 * 1024;
/**
 * it-length-prefixed refuses to encode frames of 4 MiB or more, and gossipsub only logs that (deps.md §2): the
 * message vanishes. The frame also carries the envelope (topic, origin, seqno, signature) and may carry
 * piggybacked control messages (IHAVE lists run to thousands of message ids), hence a 1 MiB margin.
 */
const MAX_GOSSIP_BYTES_LIMIT = 3 * 1024 * 1024;
const DEFAULT_SUBSCRIBER_WAIT_MS = 10_000;

/**
 * A peer's subscription can reach us before our own outbound gossip stream to it is open, and no event marks
 * that stream opening, so waiters re-check at this period as well as on subscription changes.
 */
const SUBSCRIBER_POLL_MS = 25;

/**
 * Rejections count against the peer that sent the message (P5 of the gossipsub score; see `createHost`). Each one
 * adds 1 to a counter that decays by this factor per second; the score term is −counter², like gossipsub's own P4.
 * With the default thresholds a peer stops receiving our gossip (−10) after 4 recent rejections, is not published
 * to (−50) after 8 and is ignored altogether (−80) after 9, and recovers as the counter decays (half-life ≈ 6.6 s).
 */
const REJECTION_DECAY_PER_SECOND = 0.9;
/** Above this many tracked peers, decayed entries are swept so that a flood of identities cannot grow the map. */
const REJECTION_SWEEP_AT = 1024;

/** A fresh Ed25519 libp2p identity, serialised so it can be kept in a data dir. */
export async function newPeerKey(): Promise<Uint8Array> {
  return privateKeyToProtobuf(await generateKeyPair('Ed25519'));
}

/**
 * A libp2p host with TCP + Noise + Yamux + Identify + Gossipsub (DESIGN.md §8). Only this module sees libp2p
 * types: bytes in, bytes out.
 * @throws INVALID_INPUT when `maxGossipBytes` is not a positive integer ≤ `MAX_GOSSIP_BYTES_LIMIT`, or
 * `gossipHeartbeatMs` is below 10 ms.
 */
export async function createHost(options: HostOptions = {}): Promise<Host> {
  const maxGossipBytes = options.maxGossipBytes ?? DEFAULT_MAX_GOSSIP_BYTES;
  if (!Number.isInteger(maxGossipBytes) || maxGossipBytes < 1 || maxGossipBytes > MAX_GOSSIP_BYTES_LIMIT) {
    throw new AilinkError(
      'INVALID_INPUT',
      `maxGossipBytes must be an integer in 1..${MAX_GOSSIP_BYTES_LIMIT}, got ${maxGossipBytes}`,
    );
  }
  const heartbeatMs = options.gossipHeartbeatMs;
  if (heartbeatMs !== undefined && !(Number.isFinite(heartbeatMs) && heartbeatMs >= 10)) {
    throw new AilinkError('INVALID_INPUT', `gossipHeartbeatMs must be at least 10 ms, got ${heartbeatMs}`);
  }
  const privateKey = options.privateKey
    ? privateKeyFromProtobuf(options.privateKey)
    : await generateKeyPair('Ed25519');
  const maxBufferSize = options.maxBufferSize ?? DEFAULT_MAX_BUFFER;
  const rejections = rejectionLedger();
  const node = await createLibp2p({
    privateKey,
    addresses: {
      listen: [...(options.listen ?? [LOOPBACK_LISTEN])],
      ...(options.announce === undefined || options.announce.length === 0
        ? {}
        : { announce: [...options.announce] }),
    },
    transports: [tcp()],
    // libp2p refuses more than 5 new connections per second from one IP address, and more than 10 half-open ones.
    // A network on one machine (every peer is 127.0.0.1), or a coordinator whose whole cohort dials at once, passes
    // that in its first second: the miners refused uploads with ECONNREFUSED. Per-IP limits belong in front of a
    // public node, not here.
    connectionManager: { inboundConnectionThreshold: 1000, maxIncomingPendingConnections: 256 },
    connectionEncrypters: [noise()],
    // A window update lets a stream flush up to its window synchronously (noise-encrypting every frame), so a large
    // window means long event-loop stalls under bulk transfer. 1 MiB keeps loopback saturated with short flushes.
    streamMuxers: [yamux({ streamOptions: { maxStreamWindowSize: 256 * 1024 } })],
    services: {
      identify: identify(),
      pubsub: gossipsub({
        // Messages carry the origin's signature and every receiver verifies it, so `from` cannot be forged.
        globalSignaturePolicy: StrictSign,
        // Publishing before anyone listens is normal (a coordinator announcing to an empty room), not an error.
        allowPublishToZeroTopicPeers: true,
        // Every peer is one of our hosts; floodsub would only widen the protocol surface.
        fallbackToFloodsub: false,
        ...(heartbeatMs === undefined ? {} : { heartbeatInterval: heartbeatMs }),
        scoreParams: {
          // With no per-topic score parameters gossipsub's REJECT changes no score, so rejections are scored here.
          appSpecificScore: (peer) => rejections.score(peer),
          appSpecificWeight: 1,
          // A dev network runs many peers on one machine; colocation on loopback is not a Sybil attack.
          IPColocationFactorWhitelist: new Set(['127.0.0.1', '::1']),
        },
      }),
    },
  });
  const peerId = node.peerId.toString();
  const pubsub: GossipSub = node.services.pubsub;
  const gossipProtocols = new Set(pubsub.protocols);

  const targetsOf = (peer: PeerRef) => {
    const targets = peer.addrs.map((a) => multiaddr(a.includes('/p2p/') ? a : `${a}/p2p/${peer.peerId}`));
    if (targets.length === 0)
      throw new AilinkError(
        'PEER_UNREACHABLE',
        `expected at least one address for peer ${peer.peerId}, got none: pass its multiaddrs`,
      );
    return targets;
  };

  // Gossipsub emits one 'message' event for every subscribed topic; route it to that topic's handler.
  const subscriptions = new Map<string, { handler: GossipHandler; onError: SubscribeOptions['onError'] }>();
  const onMessage = (evt: CustomEvent<Message>) => {
    const msg = evt.detail;
    // StrictSign already rejected unsigned messages; this narrows the type to one with a verified origin.
    if (msg.type !== 'signed') return;
    const sub = subscriptions.get(msg.topic);
    if (sub === undefined) return;
    const message: GossipMessage = { topic: msg.topic, data: msg.data, from: msg.from.toString() };
    // A throwing listener would surface as an uncaught exception (EventTarget) and take the process down.
    const report = (err: unknown) => {
      if (sub.onError) sub.onError(err, message);
      else process.emitWarning(`gossip handler for ${msg.topic} failed: ${(err as Error)?.message ?? err}`);
    };
    try {
      const done = sub.handler(message);
      if (done instanceof Promise) done.catch(report);
    } catch (err) {
      report(err);
    }
  };
  pubsub.addEventListener('message', onMessage);

  const validatorFor =
    (validate: SubscribeOptions['validate'], onReject: SubscribeOptions['onReject']) =>
    async (propagationSource: PeerId, msg: Message): Promise<TopicValidatorResult> => {
      let reason: AilinkError | undefined;
      if (msg.type !== 'signed') reason = new AilinkError('INVALID_INPUT', 'an unsigned gossip message');
      else if (msg.data.byteLength > maxGossipBytes)
        reason = new AilinkError(
          'GOSSIP_TOO_LARGE',
          `a gossip message on ${msg.topic} of ${msg.data.byteLength} bytes, over this host's ${maxGossipBytes}`,
        );
      else if (validate !== undefined) {
        try {
          if (!(await validate(msg.data, msg.from.toString())))
            reason = new AilinkError('INVALID_INPUT', `the validator of ${msg.topic} refused the message`);
        } catch (err) {
          reason =
            err instanceof AilinkError
              ? err
              : new AilinkError(
                  'INVALID_INPUT',
                  `the validator of ${msg.topic} failed: ${(err as Error)?.message}`,
                );
        }
      }
      if (reason === undefined) return TopicValidatorResult.Accept;
      // The relaying peer is at fault: it should have validated before forwarding.
      rejections.add(propagationSource.toString());
      try {
        onReject?.(reason, propagationSource.toString());
      } catch {
        // a listener's failure must not turn a rejection into an acceptance
      }
      return TopicValidatorResult.Reject;
    };

  const canSendTo = (peer: PeerId) =>
    node
      .getConnections(peer)
      .some((c) =>
        c.streams.some(
          (s) => s.direction === 'outbound' && s.status === 'open' && gossipProtocols.has(s.protocol),
        ),
      );
  const subscribersOf = (topic: string) =>
    pubsub
      .getSubscribers(topic)
      .filter(canSendTo)
      .map((p) => p.toString());

  let stopped = false;
  const waiters = new Set<(err: AilinkError) => void>();

  return {
    peerId,
    maxGossipBytes,
    addrs: () => node.getMultiaddrs().map((a) => a.toString()),
    async handle(protocol, handler, handlerOptions = {}) {
      await node.handle(
        protocol,
        (stream, connection) => handler(channelOf(stream, connection.remotePeer.toString(), maxBufferSize)),
        { maxInboundStreams: handlerOptions.maxInboundStreams ?? 64 },
      );
    },
    async open(peer, protocol, openOptions = {}) {
      const dial = () => node.dialProtocol(targetsOf(peer), protocol, { signal: openOptions.signal });
      const connected = () => node.getConnections().filter((c) => c.remotePeer.toString() === peer.peerId);
      // A peer that restarted (same id, a new process) leaves a connection that still looks open until its close
      // arrives; the stream opened on it then fails. Such a failure gets one fresh dial, without the old connection.
      const reused = connected().length > 0;
      try {
        return channelOf(await dial(), peer.peerId, maxBufferSize);
      } catch (err) {
        if (!reused || openOptions.signal?.aborted) throw err;
        for (const c of connected())
          c.abort(new AilinkError('ABORTED', 'a stream could not be opened on it'));
        return channelOf(await dial(), peer.peerId, maxBufferSize);
      }
    },
    async connect(peer, connectOptions = {}) {
      await node.dial(targetsOf(peer), { signal: connectOptions.signal });
    },
    async hangUp(remote) {
      const conns = node.getConnections().filter((c) => c.remotePeer.toString() === remote);
      await Promise.all(
        conns.map((c) => c.close().catch(() => c.abort(new AilinkError('ABORTED', 'hang up')))),
      );
    },
    subscribe(topic, handler, subscribeOptions = {}) {
      if (subscriptions.has(topic)) {
        throw new AilinkError('GOSSIP_ALREADY_SUBSCRIBED', `this host already has a handler for ${topic}`, {
          details: { topic },
        });
      }
      // Installed before subscribing so that no message of the topic is ever accepted unvalidated.
      pubsub.topicValidators.set(topic, validatorFor(subscribeOptions.validate, subscribeOptions.onReject));
      try {
        pubsub.subscribe(topic);
      } catch (err) {
        pubsub.topicValidators.delete(topic);
        throw err;
      }
      const sub = { handler, onError: subscribeOptions.onError };
      subscriptions.set(topic, sub);
      return () => {
        // Idempotent, and a stale unsubscribe must not cancel a later subscription to the same topic.
        if (subscriptions.get(topic) !== sub) return;
        subscriptions.delete(topic);
        pubsub.topicValidators.delete(topic);
        if (!stopped) pubsub.unsubscribe(topic);
      };
    },
    async publish(topic, data) {
      if (data.byteLength > maxGossipBytes) {
        throw new AilinkError(
          'GOSSIP_TOO_LARGE',
          `a gossip message on ${topic} may carry ${maxGossipBytes} bytes, got ${data.byteLength}; send bulk data over a direct stream`,
          { details: { topic, size: data.byteLength, limit: maxGossipBytes } },
        );
      }
      const { recipients } = await pubsub.publish(topic, data);
      return recipients.length;
    },
    subscribers: subscribersOf,
    waitForSubscribers(topic, count, waitOptions = {}) {
      const timeoutMs = waitOptions.timeoutMs ?? DEFAULT_SUBSCRIBER_WAIT_MS;
      const { signal } = waitOptions;
      return new Promise<string[]>((resolve, reject) => {
        let settled = false;
        const finish = (err: AilinkError | null, value: string[] = []) => {
          if (settled) return;
          settled = true;
          clearTimeout(deadline);
          clearInterval(poll);
          pubsub.removeEventListener('subscription-change', check);
          signal?.removeEventListener('abort', onAbort);
          waiters.delete(finish);
          if (err) reject(err);
          else resolve(value);
        };
        function check() {
          const now = subscribersOf(topic);
          if (now.length >= count) finish(null, now);
        }
        const onAbort = () =>
          finish(
            new AilinkError('ABORTED', `waiting for ${count} subscribers of ${topic} was cancelled`, {
              cause: signal?.reason,
            }),
          );
        const deadline = setTimeout(() => {
          const now = subscribersOf(topic);
          finish(
            new AilinkError(
              'TIMEOUT',
              `expected ${count} subscribers of ${topic} within ${timeoutMs} ms, ${now.length} subscribed`,
              { details: { topic, expected: count, subscribed: now } },
            ),
          );
        }, timeoutMs);
        const poll = setInterval(check, SUBSCRIBER_POLL_MS);
        if (stopped) return finish(new AilinkError('ABORTED', 'the host is stopped'));
        if (signal?.aborted) return onAbort();
        waiters.add(finish);
        signal?.addEventListener('abort', onAbort, { once: true });
        pubsub.addEventListener('subscription-change', check);
        check();
      });
    },
    gossipScore(remote) {
      // `getScore` is public on gossipsub's class but missing from the interface it exports.
      const scorer = pubsub as unknown as { getScore?: (peer: string) => number };
      return typeof scorer.getScore === 'function' ? scorer.getScore(remote) : 0;
    },
    async stop() {
      stopped = true;
      for (const finish of waiters) finish(new AilinkError('ABORTED', 'the host stopped'));
      pubsub.removeEventListener('message', onMessage);
      subscriptions.clear();
      // gossipsub 17.1.1's stop() replaces its status without clearing the pending heartbeat timeout, which then
      // keeps the process alive for up to one heartbeat. Hold the live status object to clear it afterwards.
      const status = (pubsub as unknown as { status?: { heartbeatTimeout?: ReturnType<typeof setTimeout> } })
        .status;
      await node.stop();
      if (status?.heartbeatTimeout !== undefined) clearTimeout(status.heartbeatTimeout);
    },
  };
}

/** Rejected messages per sending peer, as a decaying counter (see REJECTION_DECAY_PER_SECOND). */
function rejectionLedger() {
  const entries = new Map<string, { count: number; at: number }>();
  const decayed = (entry: { count: number; at: number }, now: number) =>
    entry.count * REJECTION_DECAY_PER_SECOND ** ((now - entry.at) / 1000);
  return {
    add(peer: string) {
      const now = Date.now();
      const entry = entries.get(peer);
      entries.set(peer, { count: (entry ? decayed(entry, now) : 0) + 1, at: now });
      if (entries.size > REJECTION_SWEEP_AT) {
        for (const [p, e] of entries) if (decayed(e, now) < 0.01) entries.delete(p);
      }
    },
    /** The P5 term: −counter², 0 for a peer with no recent rejections. */
    score(peer: string): number {
      const entry = entries.get(peer);
      if (entry === undefined) return 0;
      const count = decayed(entry, Date.now());
      if (count < 0.01) {
        entries.delete(peer);
        return 0;
      }
      return -(count * count);
    },
  };
}
