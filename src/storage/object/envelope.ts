import { createCipheriv, createDecipheriv, diffieHellman, hkdfSync } from 'node:crypto';
import { fromHex, toHex } from '../../shared/bytes.ts';
import type { Random } from '../../shared/clock.ts';
import { AilinkError } from '../../shared/errors.ts';
import { generateX25519, privateKeyObject, publicKeyObject, x25519PublicOf } from '../../shared/x25519.ts';

/**
 * Client-side encryption of stored objects — deliberately not CESS's (AES-CBC, key = padded user string, IV = key
 * prefix, no MAC, key sent to the gateway). Each object gets a random 256-bit data key; segment i is sealed with
 * AES-256-GCM under nonce = i (unique because the key is never reused) and associated data that binds the segment's
 * position and whether it is the last one (the STREAM construction), so reordering, dropping or truncating segments
 * fails authentication. The 16-byte tag is kept beside the segment (in the object record), not inside it, so an
 * encrypted segment carries a full segment of plaintext and an encrypted object has as many segments as a plain one; a
 * copy of it opens the padding of a short last segment (see `sealSegment`).
 * The data key is wrapped for each reader with X25519 + HKDF-SHA256 + AES-256-GCM.
 */

export const AEAD = 'aes-256-gcm';
export const TAG_BYTES = 16;
const KEY_BYTES = 32;
const WRAP_INFO = Buffer.from('ailink/keywrap/v1');
const SEGMENT_AAD_PREFIX = Buffer.from('ailink/segment/v1');

export function newDataKey(random: Random): Uint8Array {
  return random(KEY_BYTES);
}

function segmentNonce(index: number): Buffer {
  const nonce = Buffer.alloc(12);
  nonce.writeUInt32BE(index, 8);
  return nonce;
}

function segmentAad(index: number, last: boolean): Buffer {
  const aad = Buffer.alloc(SEGMENT_AAD_PREFIX.length + 5);
  SEGMENT_AAD_PREFIX.copy(aad);
  aad.writeUInt32BE(index, SEGMENT_AAD_PREFIX.length);
  aad[aad.length - 1] = last ? 1 : 0;
  return aad;
}

/** A sealed segment: ciphertext padded to the segment size (the tag, then zeros), and its authentication tag. */
export interface SealedSegment {
  readonly stored: Uint8Array;
  readonly tag: Uint8Array;
}

/**
 * Seals one segment's plaintext (≤ segmentSize bytes); the ciphertext is padded to exactly `segmentSize` with the tag
 * (as much as fits) and then zeros, so that no two objects' segments are stored alike however short they are. With
 * `inPlace`, when the plaintext's buffer starts with it and has room for a whole segment (the storage client's chunks
 * do), the segment is sealed in that buffer, a piece at a time, overwriting the plaintext: a put then never holds a
 * segment twice.
 */
export function sealSegment(
  key: Uint8Array,
  index: number,
  last: boolean,
  plaintext: Uint8Array,
  segmentSize: number,
  inPlace = false,
): SealedSegment {
  if (plaintext.byteLength > segmentSize) {
    throw new RangeError(
      `sealSegment: expected ≤ ${segmentSize} plaintext bytes, got ${plaintext.byteLength}`,
    );
  }
  const stored =
    inPlace && plaintext.byteOffset === 0 && plaintext.buffer.byteLength >= segmentSize
      ? new Uint8Array(plaintext.buffer as ArrayBuffer, 0, segmentSize)
      : new Uint8Array(segmentSize);
  const cipher = createCipheriv(AEAD, key, segmentNonce(index));
  cipher.setAAD(segmentAad(index, last));
  // GCM gives as many bytes as it is given, so each piece's ciphertext lands where its plaintext was.
  let written = 0;
  for (let at = 0; at < plaintext.byteLength; at += SEAL_PIECE) {
    const out = cipher.update(plaintext.subarray(at, Math.min(plaintext.byteLength, at + SEAL_PIECE)));
    stored.set(out, written);
    written += out.byteLength;
  }
  const rest = cipher.final();
  stored.set(rest, written);
  const end = written + rest.byteLength;
  const tag = new Uint8Array(cipher.getAuthTag());
  // The padding begins with the tag (as much as fits): zeros alone made every object whose ciphertext is short stored
  // alike — all empty ones, and a 1-byte one like the plain byte equal to its ciphertext — so they shared one fid. The
  // tag is unique to the key and public anyway (the record holds it); readers never look past the ciphertext.
  const copied = Math.min(TAG_BYTES, segmentSize - end);
  stored.set(tag.subarray(0, copied), end);
  stored.fill(0, end + copied);
  return { stored, tag };
}

/** Plaintext bytes sealed per cipher call (in place, a piece's ciphertext is held once more while it is copied). */
const SEAL_PIECE = 1024 * 1024;

/**
 * Opens a sealed segment; `plaintextLength` comes from the object's recorded size, `tag` from its record.
 * @throws CRYPTO_DECRYPT_FAILED if anything — bytes, position, length, tag, key — differs from what was sealed.
 */
export function openSegment(
  key: Uint8Array,
  index: number,
  last: boolean,
  stored: Uint8Array,
  plaintextLength: number,
  tag: Uint8Array,
): Uint8Array {
  if (!Number.isSafeInteger(plaintextLength) || plaintextLength < 0 || plaintextLength > stored.byteLength) {
    throw new AilinkError(
      'CRYPTO_DECRYPT_FAILED',
      `segment ${index}: expected ≤ ${stored.byteLength} plaintext bytes, record says ${plaintextLength}`,
      { details: { segment: index } },
    );
  }
  if (tag.byteLength !== TAG_BYTES) {
    throw new AilinkError(
      'CRYPTO_DECRYPT_FAILED',
      `segment ${index}: expected a ${TAG_BYTES}-byte tag, got ${tag.byteLength}`,
      {
        details: { segment: index },
      },
    );
  }
  try {
    const decipher = createDecipheriv(AEAD, key, segmentNonce(index), { authTagLength: TAG_BYTES });
    decipher.setAAD(segmentAad(index, last));
    decipher.setAuthTag(tag);
    const a = decipher.update(stored.subarray(0, plaintextLength));
    const b = decipher.final();
    return b.byteLength === 0
      ? new Uint8Array(a.buffer, a.byteOffset, a.byteLength)
      : new Uint8Array(Buffer.concat([a, b]));
  } catch (cause) {
    throw new AilinkError(
      'CRYPTO_DECRYPT_FAILED',
      `segment ${index}: authentication failed — the stored bytes, their position, the tag or the data key were altered`,
      { cause, details: { segment: index } },
    );
  }
}

/**
 * Decrypts the stored bytes that begin at byte `offset` of sealed segment `index`, without its tag: AES-GCM encrypts
 * with AES-CTR, the first plaintext block under counter 2 (counter 1 masks the tag), so any block can be reached
 * alone. This authenticates nothing. Use it only on bytes whose integrity is already established — fragments checked
 * against hashes that the reader itself declared — never on bytes that only a tag could vouch for.
 */
export function decryptSegmentPart(
  key: Uint8Array,
  index: number,
  stored: Uint8Array,
  offset: number,
): Uint8Array {
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new RangeError(`decryptSegmentPart: expected an offset ≥ 0, got ${offset}`);
  }
  const block = Math.floor(offset / 16);
  const counter = Buffer.alloc(16);
  segmentNonce(index).copy(counter);
  // GCM increments only the low 32 bits; a segment far below 2^36 bytes never wraps them, so CTR's 128-bit
  // increment gives the same keystream.
  counter.writeUInt32BE(2 + block, 12);
  const decipher = createDecipheriv('aes-256-ctr', key, counter);
  decipher.update(Buffer.alloc(offset - block * 16)); // the keystream bytes before `offset` in its block
  const plain = decipher.update(stored);
  return new Uint8Array(plain.buffer, plain.byteOffset, plain.byteLength);
}

// --- key wrapping for readers ---------------------------------------------------------------------------------

export { generateX25519, x25519PublicOf } from '../../shared/x25519.ts';

/** The data key sealed for one reader. All fields are lowercase hex. */
export interface KeyWrap {
  readonly recipient: string;
  readonly ephemeral: string;
  readonly sealed: string;
}

function kek(shared: Uint8Array, ephemeral: Uint8Array, recipient: Uint8Array): Buffer {
  return Buffer.from(hkdfSync('sha256', shared, Buffer.concat([ephemeral, recipient]), WRAP_INFO, KEY_BYTES));
}

/**
 * The object a wrap belongs to. It is the wrap's AAD: a wrap copied into another declaration (another fid, another
 * owner) does not open, so a key service that unwraps for the objects it manages cannot be made to release the key
 * of an object it was never asked to serve.
 */
export interface WrapBinding {
  readonly fid: string;
  readonly owner: string;
}

const wrapAad = (b: WrapBinding) => Buffer.from(`ailink/wrap/v2\n${b.fid}\n${b.owner}`);

/** Wraps `dataKey` for `recipient` (raw X25519 public key) under a fresh ephemeral key, bound to its object. */
export function wrapDataKey(dataKey: Uint8Array, recipient: Uint8Array, binding: WrapBinding): KeyWrap {
  const eph = generateX25519();
  const shared = diffieHellman({
    privateKey: privateKeyObject(eph.privateKey),
    publicKey: publicKeyObject(recipient),
  });
  // The KEK is used exactly once (fresh ephemeral key), so a fixed nonce is safe.
  const cipher = createCipheriv(AEAD, kek(shared, eph.publicKey, recipient), Buffer.alloc(12));
  cipher.setAAD(wrapAad(binding));
  const sealed = Buffer.concat([cipher.update(dataKey), cipher.final(), cipher.getAuthTag()]);
  return { recipient: toHex(recipient), ephemeral: toHex(eph.publicKey), sealed: toHex(sealed) };
}

/**
 * Finds the wrap addressed to `privateKey`'s public key and unwraps the data key of the object `binding` names.
 * @throws CRYPTO_NOT_A_READER when no wrap names this reader; CRYPTO_DECRYPT_FAILED when the wrap was altered or
 *   made for another object.
 */
export function unwrapDataKey(
  wraps: readonly KeyWrap[],
  privateKey: Uint8Array,
  binding: WrapBinding,
): Uint8Array {
  const me = x25519PublicOf(privateKey);
  const mine = toHex(me);
  const wrap = wraps.find((w) => w.recipient === mine);
  if (wrap === undefined) {
    throw new AilinkError(
      'CRYPTO_NOT_A_READER',
      `expected a data key wrapped for reader ${mine}, got wraps for ${wraps.map((w) => w.recipient).join(', ') || 'nobody'}; ask the owner to add you`,
    );
  }
  try {
    const ephemeral = fromHex(wrap.ephemeral, 'ephemeral key');
    const sealed = fromHex(wrap.sealed, 'sealed key');
    // Node would accept a truncated tag (down to 4 bytes); insist on the full 16.
    if (sealed.byteLength !== KEY_BYTES + TAG_BYTES)
      throw new AilinkError(
        'CRYPTO_DECRYPT_FAILED',
        `expected a sealed key of ${KEY_BYTES + TAG_BYTES} bytes, got ${sealed.byteLength}`,
      );
    const shared = diffieHellman({
      privateKey: privateKeyObject(privateKey),
      publicKey: publicKeyObject(ephemeral),
    });
    const decipher = createDecipheriv(AEAD, kek(shared, ephemeral, me), Buffer.alloc(12), {
      authTagLength: TAG_BYTES,
    });
    decipher.setAAD(wrapAad(binding));
    decipher.setAuthTag(sealed.subarray(KEY_BYTES));
    const key = Buffer.concat([decipher.update(sealed.subarray(0, KEY_BYTES)), decipher.final()]);
    return new Uint8Array(key);
  } catch (cause) {
    throw new AilinkError(
      'CRYPTO_DECRYPT_FAILED',
      'the wrapped data key failed authentication: the wrap was altered',
      {
        cause,
      },
    );
  }
}
