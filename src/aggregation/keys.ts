import {
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  sign as edSign,
  verify as edVerify,
  hkdfSync,
  type KeyObject,
} from 'node:crypto';
import { AggregationError, type RandomBytes } from './errors.ts';

/**
 * The key material of SecAgg+: X25519 agreement keys (pairwise mask seeds, share encryption) and Ed25519 signing
 * keys (every protocol message is signed). Raw 32-byte keys, node:crypto for the math (≈ 30× the pure-JS curves).
 * Keys are derived from injected random bytes so that tests can replay a protocol run exactly.
 */
export interface RawKeyPair {
  readonly publicKey: Uint8Array;
  readonly privateKey: Uint8Array;
}

const X25519_PKCS8 = Buffer.from('302e020100300506032b656e04220420', 'hex');
const X25519_SPKI = Buffer.from('302a300506032b656e032100', 'hex');
const ED25519_PKCS8 = Buffer.from('302e020100300506032b657004220420', 'hex');
const ED25519_SPKI = Buffer.from('302a300506032b6570032100', 'hex');

function raw32(bytes: Uint8Array, what: string): Buffer {
  if (bytes.byteLength !== 32) {
    throw new AggregationError(
      'SECAGG_BAD_MESSAGE',
      `expected a 32-byte ${what}, got ${bytes.byteLength} bytes`,
    );
  }
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Parsed private keys by the array that holds them: parsing a PKCS#8 key costs ~1 ms here, several times the
 * agreement or signature it is parsed for, and a client uses its own keys with each of its k neighbours. Weak, so a
 * key array no longer referenced takes its parsed key with it; the bytes are compared on each hit, so an array
 * refilled with another key is parsed again.
 */
const privateKeys = new WeakMap<Uint8Array, { bytes: Buffer; prefix: Buffer; key: KeyObject }>();

function privateKeyObject(privateKey: Uint8Array, prefix: Buffer): KeyObject {
  const bytes = raw32(privateKey, 'private key');
  const hit = privateKeys.get(privateKey);
  if (hit !== undefined && hit.prefix === prefix && hit.bytes.equals(bytes)) return hit.key;
  const key = createPrivateKey({ key: Buffer.concat([prefix, bytes]), format: 'der', type: 'pkcs8' });
  privateKeys.set(privateKey, { bytes: Buffer.from(bytes), prefix, key });
  return key;
}

function keyPair(privateKey: KeyObject, spkiPrefix: Buffer, pkcs8Prefix: Buffer): RawKeyPair {
  const spki = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  const pkcs8 = privateKey.export({ format: 'der', type: 'pkcs8' });
  return {
    publicKey: new Uint8Array(spki.subarray(spkiPrefix.length)),
    privateKey: new Uint8Array(pkcs8.subarray(pkcs8Prefix.length)),
  };
}

/** An X25519 key pair from 32 injected random bytes. */
export function agreementKeyPair(random: RandomBytes): RawKeyPair {
  const key = createPrivateKey({
    key: Buffer.concat([X25519_PKCS8, raw32(random(32), 'seed')]),
    format: 'der',
    type: 'pkcs8',
  });
  return keyPair(key, X25519_SPKI, X25519_PKCS8);
}

/** An Ed25519 key pair from 32 injected random bytes. */
export function signingKeyPair(random: RandomBytes): RawKeyPair {
  const key = createPrivateKey({
    key: Buffer.concat([ED25519_PKCS8, raw32(random(32), 'seed')]),
    format: 'der',
    type: 'pkcs8',
  });
  return keyPair(key, ED25519_SPKI, ED25519_PKCS8);
}

function compare(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/**
 * The 256-bit secret two clients share: HKDF-SHA256 over their X25519 agreement, salted with both public keys in a
 * canonical order (so both sides derive the same value) and bound to `context` (task, round, purpose).
 * @throws SECAGG_BAD_MESSAGE for a malformed key, or a low-order point that gives an all-zero agreement.
 */
export function sharedSecret(
  privateKey: Uint8Array,
  ownPublic: Uint8Array,
  peerPublic: Uint8Array,
  context: string,
): Uint8Array {
  let agreed: Buffer;
  try {
    agreed = diffieHellman({
      privateKey: privateKeyObject(privateKey, X25519_PKCS8),
      publicKey: publicKeyObject(raw32(peerPublic, 'public key'), X25519_SPKI),
    });
  } catch (cause) {
    if (cause instanceof AggregationError) throw cause;
    throw new AggregationError('SECAGG_BAD_MESSAGE', `X25519 agreement failed: ${(cause as Error).message}`);
  }
  if (agreed.every((b) => b === 0)) {
    throw new AggregationError(
      'SECAGG_BAD_MESSAGE',
      'the peer key is a low-order point (all-zero agreement)',
    );
  }
  const [first, second] =
    compare(ownPublic, peerPublic) <= 0 ? [ownPublic, peerPublic] : [peerPublic, ownPublic];
  const salt = Buffer.concat([first, second]);
  return new Uint8Array(hkdfSync('sha256', agreed, salt, Buffer.from(`ailink/secagg/v1/${context}`), 32));
}

/** Signs `message` with a raw Ed25519 private key. */
export function signMessage(privateKey: Uint8Array, message: Uint8Array): Uint8Array {
  return new Uint8Array(edSign(null, message, privateKeyObject(privateKey, ED25519_PKCS8)));
}

/**
 * Parsed public keys by their hex: building a KeyObject costs as much as the verification itself, and the same few
 * keys (a cohort's, a server's) sign thousands of messages. Bounded: cleared when full.
 */
const publicKeys = new Map<string, KeyObject>();
const PUBLIC_KEY_CACHE = 8192;

function publicKeyObject(publicKey: Uint8Array, prefix = ED25519_SPKI): KeyObject {
  const id = `${prefix === ED25519_SPKI ? 'ed' : 'x'}${Buffer.from(publicKey).toString('hex')}`;
  let key = publicKeys.get(id);
  if (key === undefined) {
    key = createPublicKey({
      key: Buffer.concat([prefix, Buffer.from(publicKey)]),
      format: 'der',
      type: 'spki',
    });
    if (publicKeys.size >= PUBLIC_KEY_CACHE) publicKeys.clear();
    publicKeys.set(id, key);
  }
  return key;
}

/** True when `signature` is `publicKey`'s Ed25519 signature of `message`; false for anything malformed. */
export function verifyMessage(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.byteLength !== 32 || signature.byteLength !== 64) return false;
  try {
    return edVerify(null, message, publicKeyObject(publicKey), signature);
  } catch {
    return false;
  }
}
