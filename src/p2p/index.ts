/** p2p: libp2p hosts, byte channels and gossip. Knows nothing of storage, chain or training: bytes in, bytes out. */
export { type ByteChannel, ChannelClosedError, FrameTooLargeError } from './channel.ts';
export {
  createHost,
  type GossipHandler,
  type GossipMessage,
  type Host,
  type HostOptions,
  LOOPBACK_LISTEN,
  newPeerKey,
  type PeerRef,
  type ProtocolHandlerOptions,
  type SubscribeOptions,
  type WaitForSubscribersOptions,
} from './host.ts';
export { signWithPeerKey } from './peer-key.ts';
