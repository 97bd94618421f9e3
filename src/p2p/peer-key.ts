import { privateKeyFromProtobuf } from '@libp2p/crypto/keys';

/**
 * Signs `message` with a host's libp2p identity (the serialised key `newPeerKey` makes): what a node puts on chain to
 * prove that a peer id it registers is its own. Bytes in, bytes out.
 */
export async function signWithPeerKey(peerKey: Uint8Array, message: Uint8Array): Promise<Uint8Array> {
  return await privateKeyFromProtobuf(peerKey).sign(message);
}
