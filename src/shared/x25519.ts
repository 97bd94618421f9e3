import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';

/** Raw 32-byte X25519 keys, the form they travel and are stored in; node:crypto does the math (≈30× noble). */

const X25519_SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

export interface X25519KeyPair {
  readonly publicKey: Uint8Array;
  readonly privateKey: Uint8Array;
}

export function generateX25519(): X25519KeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('x25519');
  return {
    publicKey: new Uint8Array(
      publicKey.export({ format: 'der', type: 'spki' }).subarray(X25519_SPKI_PREFIX.length),
    ),
    privateKey: new Uint8Array(
      privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(X25519_PKCS8_PREFIX.length),
    ),
  };
}

export function publicKeyObject(raw: Uint8Array): KeyObject {
  if (raw.byteLength !== 32)
    throw new RangeError(`X25519 public key: expected 32 bytes, got ${raw.byteLength}`);
  return createPublicKey({ key: Buffer.concat([X25519_SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
}

export function privateKeyObject(raw: Uint8Array): KeyObject {
  if (raw.byteLength !== 32)
    throw new RangeError(`X25519 private key: expected 32 bytes, got ${raw.byteLength}`);
  return createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, raw]), format: 'der', type: 'pkcs8' });
}

export function x25519PublicOf(privateKey: Uint8Array): Uint8Array {
  const pub = createPublicKey(privateKeyObject(privateKey));
  return new Uint8Array(pub.export({ format: 'der', type: 'spki' }).subarray(X25519_SPKI_PREFIX.length));
}
