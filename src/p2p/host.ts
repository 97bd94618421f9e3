import './polyfill.ts';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import { identify } from '@libp2p/identify';
import { tcp } from '@libp2p/tcp';
import { multiaddr } from '@multiformats/multiaddr';
import { createLibp2p, type Libp2p } from 'libp2p';
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
  /** Largest amount of unread inbound data buffered per stream before it is reset. */
  readonly maxBufferSize?: number;
}

export interface ProtocolHandlerOptions {
  readonly maxInboundStreams?: number;
}

export interface Host {
  readonly peerId: string;
  /** Listening addresses, each ending in /p2p/<peerId>. */
  addrs(): string[];
  handle(
    protocol: string,
    handler: (channel: ByteChannel) => Promise<void>,
    options?: ProtocolHandlerOptions,
  ): Promise<void>;
  /** Opens a stream for `protocol` to `peer`, dialling it first if needed. */
  open(peer: PeerRef, protocol: string, options?: { signal?: AbortSignal }): Promise<ByteChannel>;
  /** Drops any connection to the peer (used when a peer stalls). */
  hangUp(peerId: string): Promise<void>;
  stop(): Promise<void>;
}

export const LOOPBACK_LISTEN = '/ip4/127.0.0.1/tcp/0';
const DEFAULT_MAX_BUFFER = 4 * 1024 * 1024;

/** A fresh Ed25519 libp2p identity, serialised so it can be kept in a data dir. */
export async function newPeerKey(): Promise<Uint8Array> {
  return privateKeyToProtobuf(await generateKeyPair('Ed25519'));
}

/**
 * A libp2p host with TCP + Noise + Yamux + Identify (DESIGN.md §8). Only this module sees libp2p types.
 */
export async function createHost(options: HostOptions = {}): Promise<Host> {
  const privateKey = options.privateKey
    ? privateKeyFromProtobuf(options.privateKey)
    : await generateKeyPair('Ed25519');
  const maxBufferSize = options.maxBufferSize ?? DEFAULT_MAX_BUFFER;
  const node: Libp2p = await createLibp2p({
    privateKey,
    addresses: { listen: [...(options.listen ?? [LOOPBACK_LISTEN])] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    // A window update lets a stream flush up to its window synchronously (noise-encrypting every frame), so a large
    // window means long event-loop stalls under bulk transfer. 1 MiB keeps loopback saturated with short flushes.
    streamMuxers: [yamux({ streamOptions: { maxStreamWindowSize: 256 * 1024 } })],
    services: { identify: identify() },
  });
  const peerId = node.peerId.toString();
  return {
    peerId,
    addrs: () => node.getMultiaddrs().map((a) => a.toString()),
    async handle(protocol, handler, handlerOptions = {}) {
      await node.handle(
        protocol,
        (stream, connection) => handler(channelOf(stream, connection.remotePeer.toString(), maxBufferSize)),
        { maxInboundStreams: handlerOptions.maxInboundStreams ?? 64 },
      );
    },
    async open(peer, protocol, openOptions = {}) {
      const targets = peer.addrs.map((a) => multiaddr(a.includes('/p2p/') ? a : `${a}/p2p/${peer.peerId}`));
      if (targets.length === 0) throw new Error(`no address known for peer ${peer.peerId}`);
      const stream = await node.dialProtocol(targets, protocol, { signal: openOptions.signal });
      return channelOf(stream, peer.peerId, maxBufferSize);
    },
    async hangUp(remote) {
      const conns = node.getConnections().filter((c) => c.remotePeer.toString() === remote);
      await Promise.all(conns.map((c) => c.close().catch(() => c.abort(new Error('hang up')))));
    },
    async stop() {
      await node.stop();
    },
  };
}
