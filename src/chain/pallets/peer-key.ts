import { createPublicKey, verify } from 'node:crypto';
import { base58Decode } from '@polkadot/util-crypto';
import { fromHex } from '../../shared/bytes.ts';
import { reject } from './context.ts';

/**
 * A libp2p peer id claimed on chain must be proven: `sminer.register` and `teeWorker.register` carry an Ed25519
 * signature by the peer's own key over `peerRegistrationMessage` (issue 15 item 10b). Without it anyone could copy
 * another node's peer id into a registration of its own — first come, first served — and lock the real node out, or
 * be dialled in its place by clients that trust the chain's peer → account map.
 *
 * Only Ed25519 peer ids can be checked from the id alone: their multihash is the identity hash of the protobuf
 * public key, so the key is inside the id (the `12D3KooW…` form). Every AI-LINK host makes Ed25519 keys.
 */

/** identity multihash (0x00), 36 bytes, protobuf PublicKey { Type = Ed25519 (1), Data = 32 bytes }. */
const ED25519_PEER_PREFIX = Uint8Array.of(0x00, 0x24, 0x08, 0x01, 0x12, 0x20);
/** SPKI DER prefix of an Ed25519 public key (RFC 8410). */
const ED25519_SPKI_PREFIX = Uint8Array.of(
  0x30,
  0x2a,
  0x30,
  0x05,
  0x06,
  0x03,
  0x2b,
  0x65,
  0x70,
  0x03,
  0x21,
  0x00,
);

export type PeerRegistrationCall = 'sminer.register' | 'teeWorker.register';

/**
 * What a node's libp2p key signs to register `peerId` for `account` on the chain of `genesisHash` with `call`: the
 * signature cannot be replayed for another account, another network or the other role.
 */
export function peerRegistrationMessage(
  call: PeerRegistrationCall,
  genesisHash: string,
  account: string,
  peerId: string,
): Uint8Array {
  return new TextEncoder().encode(
    `ailink/peer-registration/v1\n${call}\n${genesisHash}\n${account}\n${peerId}`,
  );
}

/** The Ed25519 public key inside an Ed25519 peer id, or undefined for any other (or malformed) id. */
export function ed25519KeyOfPeerId(peerId: string): Uint8Array | undefined {
  let bytes: Uint8Array;
  try {
    bytes = base58Decode(peerId);
  } catch {
    return undefined;
  }
  if (bytes.length !== ED25519_PEER_PREFIX.length + 32) return undefined;
  if (!ED25519_PEER_PREFIX.every((b, i) => bytes[i] === b)) return undefined;
  return bytes.subarray(ED25519_PEER_PREFIX.length);
}

/** Whether `signature` (hex) is `peerId`'s Ed25519 signature of `message`. */
export function isPeerSignature(peerId: string, message: Uint8Array, signature: string): boolean {
  const key = ed25519KeyOfPeerId(peerId);
  if (key === undefined) return false;
  const spki = new Uint8Array(ED25519_SPKI_PREFIX.length + 32);
  spki.set(ED25519_SPKI_PREFIX);
  spki.set(key, ED25519_SPKI_PREFIX.length);
  try {
    const publicKey = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
    return verify(null, message, publicKey, fromHex(signature));
  } catch {
    return false;
  }
}

/** The rule both registrations share: the caller's registration of `peerId` is signed by that peer's key. */
export function requirePeerProof(
  call: PeerRegistrationCall,
  ctx: { readonly genesisHash: string; readonly caller: string },
  peerId: string,
  signature: string,
): void {
  if (ed25519KeyOfPeerId(peerId) === undefined) {
    reject(`peer id ${peerId} is not an Ed25519 peer id: only those carry the key that proves them`);
  }
  if (
    !isPeerSignature(peerId, peerRegistrationMessage(call, ctx.genesisHash, ctx.caller, peerId), signature)
  ) {
    reject(
      `peerSignature is not ${peerId}'s signature of the registration of ${ctx.caller} on this chain: a node proves its peer id with its own libp2p key`,
    );
  }
}
