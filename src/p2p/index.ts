/** p2p: libp2p hosts and byte channels. Knows nothing of storage, chain or training. */
export { type ByteChannel, ChannelClosedError, FrameTooLargeError } from './channel.ts';
export {
  createHost,
  type Host,
  type HostOptions,
  LOOPBACK_LISTEN,
  newPeerKey,
  type PeerRef,
  type ProtocolHandlerOptions,
} from './host.ts';
