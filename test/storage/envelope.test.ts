import { createCipheriv, createDecipheriv, createPrivateKey, diffieHellman, hkdfSync } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from '../../src/shared/bytes.ts';
import { systemRandom } from '../../src/shared/clock.ts';
import { publicKeyObject } from '../../src/shared/x25519.ts';
import {
  AEAD,
  generateX25519,
  type KeyWrap,
  newDataKey,
  openSegment,
  sealSegment,
  TAG_BYTES,
  unwrapDataKey,
  wrapDataKey,
  x25519PublicOf,
} from '../../src/storage/object/envelope.ts';
import { TEST_PROFILE } from '../../src/storage/object/profile.ts';
import { expectCode, flipBit } from './helpers.ts';

// Property tests seal into small segments (256 bytes; the GCM tag is detached, so a sealed segment carries a full
// segment of plaintext) so that many runs stay fast; one test uses the TEST_PROFILE segment at full capacity.
const SEG = 256;
const CAP = SEG;

const key32 = fc.uint8Array({ minLength: 32, maxLength: 32 });
const index = fc.nat({ max: 2 ** 32 - 1 });
const plaintext = fc.uint8Array({ maxLength: CAP });
const nonEmptyPlaintext = fc.uint8Array({ minLength: 1, maxLength: CAP });

const eq = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b));

/** Flips bit `bit` of ciphertext ‖ tag: bits below 8·plaintextLength hit the stored ciphertext, the rest the tag. */
function flipSealed(
  sealed: { stored: Uint8Array; tag: Uint8Array },
  plaintextLength: number,
  bit: number,
): { stored: Uint8Array; tag: Uint8Array } {
  return bit < plaintextLength * 8
    ? { stored: flipBit(sealed.stored, bit), tag: sealed.tag }
    : { stored: sealed.stored, tag: flipBit(sealed.tag, bit - plaintextLength * 8) };
}

describe('segment sealing: constants and shape', () => {
  it('AES-256-GCM with a detached 16-byte tag; capacity is the whole segment', () => {
    expect(AEAD).toBe('aes-256-gcm');
    expect(TAG_BYTES).toBe(16);
    const key = newDataKey(systemRandom);
    for (const size of [SEG, TEST_PROFILE.segmentSize]) {
      const { stored, tag } = sealSegment(key, 0, true, new Uint8Array(size), size);
      expect(stored).toHaveLength(size);
      expect(tag).toHaveLength(TAG_BYTES);
    }
  });

  it('newDataKey draws exactly 32 bytes from the Random it is given', () => {
    const asked: number[] = [];
    const key = newDataKey((n) => {
      asked.push(n);
      return new Uint8Array(n).fill(7);
    });
    expect(asked).toEqual([32]);
    expect(key).toEqual(new Uint8Array(32).fill(7));
    expect(newDataKey(systemRandom)).toHaveLength(32);
  });

  it('stored is exactly segmentSize bytes: ciphertext, then the tag (as much as fits), then zeros; the tag is 16 separate bytes', () => {
    fc.assert(
      fc.property(key32, index, fc.boolean(), plaintext, (key, i, last, pt) => {
        const { stored, tag } = sealSegment(key, i, last, pt, SEG);
        expect(stored).toBeInstanceOf(Uint8Array);
        expect(stored.byteLength).toBe(SEG);
        const copied = Math.min(TAG_BYTES, SEG - pt.byteLength);
        expect(eq(stored.subarray(pt.byteLength, pt.byteLength + copied), tag.subarray(0, copied))).toBe(
          true,
        );
        expect(stored.subarray(pt.byteLength + copied).every((b) => b === 0)).toBe(true);
        expect(tag).toBeInstanceOf(Uint8Array);
        expect(tag.byteLength).toBe(TAG_BYTES);
      }),
    );
  });

  it('pins the stored format: nonce = 8 zero bytes ‖ u32be(index), AAD = "ailink/segment/v1" ‖ u32be(index) ‖ last', () => {
    const key = Uint8Array.from({ length: 32 }, (_, i) => i);
    const pt = new TextEncoder().encode('ailink kat');
    const { stored, tag } = sealSegment(key, 3, true, pt, SEG);
    // Independent computation with node:crypto.
    const nonce = Buffer.alloc(12);
    nonce.writeUInt32BE(3, 8);
    const cipher = createCipheriv('aes-256-gcm', key, nonce);
    cipher.setAAD(Buffer.concat([Buffer.from('ailink/segment/v1'), Buffer.from([0, 0, 0, 3, 1])]));
    const ciphertext = Buffer.concat([cipher.update(pt), cipher.final()]);
    const expectedTag = cipher.getAuthTag();
    // Committed vector (stored objects must stay readable across versions).
    expect(ciphertext.toString('hex')).toBe('6c4d62da381d91b1d2e6');
    expect(expectedTag.toString('hex')).toBe('8d0ab0781b0b5c869cb1609b40848a07');
    // The stored segment is the ciphertext, the tag, and zeros; the tag also travels on its own (in the record).
    // Objects sealed before the tag went into the padding have zeros there: readers never look past the ciphertext.
    expect(toHex(stored)).toBe(
      ciphertext.toString('hex') + expectedTag.toString('hex') + '00'.repeat(SEG - pt.byteLength - TAG_BYTES),
    );
    expect(toHex(tag)).toBe(expectedTag.toString('hex'));
    expect(new TextDecoder().decode(openSegment(key, 3, true, stored, pt.byteLength, tag))).toBe(
      'ailink kat',
    );
  });

  it('a full segment of plaintext fits; one byte more → RangeError', () => {
    const key = newDataKey(systemRandom);
    expect(() => sealSegment(key, 0, true, new Uint8Array(SEG + 1), SEG)).toThrow(RangeError);
    expect(() => sealSegment(key, 0, true, new Uint8Array(SEG + TAG_BYTES), SEG)).toThrow(RangeError);
    const full = sealSegment(key, 0, true, new Uint8Array(SEG), SEG);
    expect(full.stored).toHaveLength(SEG);
    expect(full.tag).toHaveLength(TAG_BYTES);
  });
});

describe('openSegment ∘ sealSegment', () => {
  it('is the identity for random keys, plaintexts (0..segmentSize bytes), indexes and last flags', () => {
    fc.assert(
      fc.property(key32, index, fc.boolean(), plaintext, (key, i, last, pt) => {
        const { stored, tag } = sealSegment(key, i, last, pt, SEG);
        expect(eq(openSegment(key, i, last, stored, pt.byteLength, tag), pt)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('sealed in place (a segment-sized buffer holding the plaintext at its start) equals sealed aside, and opens', () => {
    fc.assert(
      fc.property(key32, index, fc.boolean(), plaintext, (key, i, last, pt) => {
        const aside = sealSegment(key, i, last, pt.slice(), SEG);
        const buffer = new Uint8Array(SEG).fill(0xee); // stale bytes past the plaintext must become padding
        buffer.set(pt);
        const inPlace = sealSegment(key, i, last, buffer.subarray(0, pt.byteLength), SEG, true);
        expect(inPlace.stored.buffer).toBe(buffer.buffer);
        expect(eq(inPlace.stored, aside.stored)).toBe(true);
        expect(eq(inPlace.tag, aside.tag)).toBe(true);
        expect(eq(openSegment(key, i, last, inPlace.stored, pt.byteLength, inPlace.tag), pt)).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it('is the identity for a full TEST_PROFILE segment, and for an empty one', () => {
    const key = newDataKey(systemRandom);
    const full = systemRandom(TEST_PROFILE.segmentSize);
    const sealed = sealSegment(key, 9, false, full, TEST_PROFILE.segmentSize);
    expect(sealed.stored).toHaveLength(TEST_PROFILE.segmentSize);
    expect(sealed.tag).toHaveLength(TAG_BYTES);
    expect(eq(openSegment(key, 9, false, sealed.stored, full.byteLength, sealed.tag), full)).toBe(true);
    const empty = sealSegment(key, 10, true, new Uint8Array(0), TEST_PROFILE.segmentSize);
    expect(eq(empty.stored.subarray(0, TAG_BYTES), empty.tag)).toBe(true);
    expect(empty.stored.subarray(TAG_BYTES).every((b) => b === 0)).toBe(true);
    expect(openSegment(key, 10, true, empty.stored, 0, empty.tag)).toHaveLength(0);
  });

  it('encrypts: a non-empty plaintext does not appear in the sealed bytes', () => {
    const key = newDataKey(systemRandom);
    const pt = new Uint8Array(CAP).fill(0x41);
    const { stored } = sealSegment(key, 0, true, pt, SEG);
    expect(eq(stored.subarray(0, CAP), pt)).toBe(false);
  });

  it('flipping any single bit of the ciphertext or of the detached tag → CRYPTO_DECRYPT_FAILED', () => {
    fc.assert(
      fc.property(
        key32,
        index,
        fc.boolean(),
        plaintext.chain((pt) =>
          fc.tuple(fc.constant(pt), fc.nat({ max: (pt.byteLength + TAG_BYTES) * 8 - 1 })),
        ),
        (key, i, last, [pt, bit]) => {
          const { stored, tag } = flipSealed(sealSegment(key, i, last, pt, SEG), pt.byteLength, bit);
          const err = expectCode(
            () => openSegment(key, i, last, stored, pt.byteLength, tag),
            'CRYPTO_DECRYPT_FAILED',
          );
          expect(err.details).toEqual({ segment: i });
        },
      ),
      { numRuns: 300 },
    );
  });

  it('every one of the 256 single-bit flips of a 16-byte ciphertext + its tag is detected', () => {
    const key = newDataKey(systemRandom);
    const pt = systemRandom(16);
    const sealed = sealSegment(key, 4, false, pt, SEG);
    for (let bit = 0; bit < 32 * 8; bit++) {
      const { stored, tag } = flipSealed(sealed, 16, bit);
      expectCode(() => openSegment(key, 4, false, stored, 16, tag), 'CRYPTO_DECRYPT_FAILED');
    }
    // Flips of the tag of an empty segment too: the tag is all there is to check.
    const empty = sealSegment(key, 5, true, new Uint8Array(0), SEG);
    for (let bit = 0; bit < TAG_BYTES * 8; bit++) {
      const tag = flipBit(empty.tag, bit);
      expectCode(() => openSegment(key, 5, true, empty.stored, 0, tag), 'CRYPTO_DECRYPT_FAILED');
    }
  });

  // Node accepts GCM tags of 4..15 bytes unless told otherwise, and a tag prefix is a valid shorter tag.
  it('a tag of any length but 16 (truncated, extended, empty) → CRYPTO_DECRYPT_FAILED', () => {
    const key = newDataKey(systemRandom);
    const pt = systemRandom(40);
    const { stored, tag } = sealSegment(key, 2, false, pt, SEG);
    const wrong = [
      ...[0, 1, 4, 8, 12, 15].map((n) => tag.subarray(0, n)),
      Uint8Array.from([...tag, 0]),
      Uint8Array.from([...tag, ...tag]),
    ];
    for (const t of wrong) {
      expectCode(() => openSegment(key, 2, false, stored, pt.byteLength, t), 'CRYPTO_DECRYPT_FAILED');
    }
    expect(eq(openSegment(key, 2, false, stored, pt.byteLength, tag), pt)).toBe(true);
  });

  it('opening with a different index → CRYPTO_DECRYPT_FAILED', () => {
    fc.assert(
      fc.property(key32, index, index, fc.boolean(), plaintext, (key, i, j, last, pt) => {
        fc.pre(i !== j);
        const { stored, tag } = sealSegment(key, i, last, pt, SEG);
        expectCode(() => openSegment(key, j, last, stored, pt.byteLength, tag), 'CRYPTO_DECRYPT_FAILED');
      }),
      { numRuns: 200 },
    );
  });

  it('opening with the other last flag → CRYPTO_DECRYPT_FAILED', () => {
    fc.assert(
      fc.property(key32, index, fc.boolean(), plaintext, (key, i, last, pt) => {
        const { stored, tag } = sealSegment(key, i, last, pt, SEG);
        expectCode(() => openSegment(key, i, !last, stored, pt.byteLength, tag), 'CRYPTO_DECRYPT_FAILED');
      }),
      { numRuns: 200 },
    );
  });

  it('opening with a wrong key → CRYPTO_DECRYPT_FAILED', () => {
    fc.assert(
      fc.property(key32, key32, index, fc.boolean(), plaintext, (key, other, i, last, pt) => {
        fc.pre(!eq(key, other));
        const { stored, tag } = sealSegment(key, i, last, pt, SEG);
        expectCode(() => openSegment(other, i, last, stored, pt.byteLength, tag), 'CRYPTO_DECRYPT_FAILED');
      }),
      { numRuns: 200 },
    );
  });

  it('a tag from another segment (tags swapped between two segments) → CRYPTO_DECRYPT_FAILED', () => {
    fc.assert(
      fc.property(
        key32,
        index,
        index,
        fc.boolean(),
        fc.boolean(),
        plaintext,
        plaintext,
        (key, i, j, lastI, lastJ, p, q) => {
          fc.pre(i !== j);
          const a = sealSegment(key, i, lastI, p, SEG);
          const b = sealSegment(key, j, lastJ, q, SEG);
          // Each stored segment at its own position, but with the other one's tag.
          expectCode(
            () => openSegment(key, i, lastI, a.stored, p.byteLength, b.tag),
            'CRYPTO_DECRYPT_FAILED',
          );
          expectCode(
            () => openSegment(key, j, lastJ, b.stored, q.byteLength, a.tag),
            'CRYPTO_DECRYPT_FAILED',
          );
        },
      ),
      { numRuns: 200 },
    );
    // The same plaintext in every segment of one object: only the tag's position binding tells them apart.
    const key = newDataKey(systemRandom);
    const pt = systemRandom(SEG);
    const sealed = [0, 1, 2].map((i) => sealSegment(key, i, i === 2, pt, SEG));
    for (let i = 0; i < 3; i++) {
      for (let j = 0; j < 3; j++) {
        const open = () => openSegment(key, i, i === 2, sealed[i]!.stored, SEG, sealed[j]!.tag);
        if (i === j) expect(eq(open(), pt)).toBe(true);
        else expectCode(open, 'CRYPTO_DECRYPT_FAILED');
      }
    }
    // The tag of the same position in another object (another data key) does not open it either.
    const other = sealSegment(newDataKey(systemRandom), 0, false, pt, SEG);
    expectCode(() => openSegment(key, 0, false, sealed[0]!.stored, SEG, other.tag), 'CRYPTO_DECRYPT_FAILED');
  });

  it('the same plaintext sealed under two fresh data keys differs', () => {
    fc.assert(
      fc.property(index, fc.boolean(), plaintext, (i, last, pt) => {
        const a = sealSegment(newDataKey(systemRandom), i, last, pt, SEG);
        const b = sealSegment(newDataKey(systemRandom), i, last, pt, SEG);
        expect(eq(a.tag, b.tag)).toBe(false);
        // The ciphertext itself differs too, not only the tag.
        if (pt.byteLength >= 8)
          expect(eq(a.stored.subarray(0, pt.byteLength), b.stored.subarray(0, pt.byteLength))).toBe(false);
      }),
    );
  });

  it('the same plaintext at two positions under one key differs (the index is the nonce)', () => {
    fc.assert(
      fc.property(key32, index, index, nonEmptyPlaintext, (key, i, j, pt) => {
        fc.pre(i !== j);
        const a = sealSegment(key, i, false, pt, SEG);
        const b = sealSegment(key, j, false, pt, SEG);
        // Ciphertext and tag together: a 1-byte ciphertext alone collides with probability 1/256.
        const sealedBytes = (s: { stored: Uint8Array; tag: Uint8Array }) =>
          Buffer.concat([s.stored.subarray(0, pt.byteLength), s.tag]);
        expect(eq(sealedBytes(a), sealedBytes(b))).toBe(false);
      }),
    );
  });

  it('a wrong recorded plaintext length → CRYPTO_DECRYPT_FAILED', () => {
    fc.assert(
      fc.property(
        key32,
        index,
        fc.boolean(),
        plaintext,
        fc.integer({ min: -5, max: SEG + 5 }),
        (key, i, last, pt, n) => {
          fc.pre(n !== pt.byteLength);
          const { stored, tag } = sealSegment(key, i, last, pt, SEG);
          expectCode(() => openSegment(key, i, last, stored, n, tag), 'CRYPTO_DECRYPT_FAILED');
        },
      ),
      { numRuns: 200 },
    );
  });

  it('a recorded length beyond the stored bytes, or not a safe integer → CRYPTO_DECRYPT_FAILED', () => {
    const key = newDataKey(systemRandom);
    const { stored, tag } = sealSegment(key, 0, true, systemRandom(SEG), SEG);
    for (const n of [SEG + 1, 2 * SEG, 0.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53]) {
      expectCode(() => openSegment(key, 0, true, stored, n, tag), 'CRYPTO_DECRYPT_FAILED');
    }
  });

  it('reordering, dropping the last segment, or truncating the stored bytes all fail', () => {
    const key = newDataKey(systemRandom);
    const parts = [systemRandom(CAP), systemRandom(CAP), systemRandom(100)];
    const sealed = parts.map((p, i) => sealSegment(key, i, i === parts.length - 1, p, SEG));
    // Swapped segments (each with its own tag).
    expectCode(
      () => openSegment(key, 0, false, sealed[1]!.stored, CAP, sealed[1]!.tag),
      'CRYPTO_DECRYPT_FAILED',
    );
    expectCode(
      () => openSegment(key, 1, false, sealed[0]!.stored, CAP, sealed[0]!.tag),
      'CRYPTO_DECRYPT_FAILED',
    );
    // The last segment dropped: segment 1 presented as the last one.
    expectCode(
      () => openSegment(key, 1, true, sealed[1]!.stored, CAP, sealed[1]!.tag),
      'CRYPTO_DECRYPT_FAILED',
    );
    // Stored bytes cut short, so the ciphertext is not all there.
    expectCode(
      () => openSegment(key, 2, true, sealed[2]!.stored.subarray(0, 99), 100, sealed[2]!.tag),
      'CRYPTO_DECRYPT_FAILED',
    );
    // A full segment cut short by one byte.
    expectCode(
      () => openSegment(key, 0, false, sealed[0]!.stored.subarray(0, CAP - 1), CAP, sealed[0]!.tag),
      'CRYPTO_DECRYPT_FAILED',
    );
    // In order, all open.
    parts.forEach((p, i) => {
      const s = sealed[i]!;
      expect(eq(openSegment(key, i, i === parts.length - 1, s.stored, p.byteLength, s.tag), p)).toBe(true);
    });
  });

  it('no two keys store a short plaintext alike, the empty one included: the padding differs (the tag opens it)', () => {
    // Zeros alone after the ciphertext stored every empty object as the same bytes (one fid for all of them), and a
    // 1-byte one like the plain byte equal to its ciphertext (found by CI: test/storage/client.test.ts).
    fc.assert(
      fc.property(key32, key32, fc.uint8Array({ maxLength: 2 }), (a, b, pt) => {
        fc.pre(!eq(a, b));
        const one = sealSegment(a, 0, true, pt, SEG).stored;
        expect(eq(one, sealSegment(b, 0, true, pt, SEG).stored)).toBe(false);
        const plain = new Uint8Array(SEG);
        plain.set(one.subarray(0, pt.byteLength));
        expect(eq(one, plain)).toBe(false);
      }),
      { numRuns: 200 },
    );
  });

  it('bytes after the ciphertext are padding: the segment hash, not the AEAD, protects them', () => {
    // Documents the design: only the ciphertext and the detached tag are authenticated; the padding is covered by
    // the segment hash.
    const key = newDataKey(systemRandom);
    const pt = systemRandom(10);
    const { stored, tag } = sealSegment(key, 0, true, pt, SEG);
    for (const bit of [10 * 8, 10 * 8 + 3, (10 + TAG_BYTES) * 8 + 3, SEG * 8 - 1]) {
      expect(eq(openSegment(key, 0, true, flipBit(stored, bit), 10, tag), pt)).toBe(true);
    }
  });
});

// --- key wrapping -----------------------------------------------------------------------------------------------------

describe('X25519 keys', () => {
  it('x25519PublicOf(generateX25519().privateKey) equals the public key', () => {
    for (let n = 0; n < 20; n++) {
      const pair = generateX25519();
      expect(pair.publicKey).toHaveLength(32);
      expect(pair.privateKey).toHaveLength(32);
      expect(eq(x25519PublicOf(pair.privateKey), pair.publicKey)).toBe(true);
    }
  });

  it('generateX25519 gives a different key pair each time', () => {
    const a = generateX25519();
    const b = generateX25519();
    expect(eq(a.privateKey, b.privateKey)).toBe(false);
    expect(eq(a.publicKey, b.publicKey)).toBe(false);
  });

  it('raw keys follow RFC 7748 §6.1 (test vectors for Alice and Bob)', () => {
    const alice = fromHex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
    const bob = fromHex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb');
    expect(toHex(x25519PublicOf(alice))).toBe(
      '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a',
    );
    expect(toHex(x25519PublicOf(bob))).toBe(
      'de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f',
    );
  });
});

describe('wrapDataKey / unwrapDataKey', () => {
  const dataKey = newDataKey(systemRandom);
  const alice = generateX25519();
  const bob = generateX25519();
  const carol = generateX25519();
  /** The object the wraps belong to. */
  const B = { fid: 'ab'.repeat(32), owner: '5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY' };
  const wraps: KeyWrap[] = [wrapDataKey(dataKey, alice.publicKey, B), wrapDataKey(dataKey, bob.publicKey, B)];

  it('a wrap is three lowercase hex fields: recipient (32 B), ephemeral key (32 B), sealed key + tag (48 B)', () => {
    for (const w of wraps) {
      expect(w.recipient).toMatch(/^[0-9a-f]{64}$/);
      expect(w.ephemeral).toMatch(/^[0-9a-f]{64}$/);
      expect(w.sealed).toMatch(/^[0-9a-f]{96}$/);
    }
    expect(wraps[0]!.recipient).toBe(toHex(alice.publicKey));
    expect(wraps[1]!.recipient).toBe(toHex(bob.publicKey));
    // The data key is not in the clear.
    for (const w of wraps) expect(w.sealed).not.toContain(toHex(dataKey));
  });

  it('each of two readers unwraps the same data key', () => {
    expect(eq(unwrapDataKey(wraps, alice.privateKey, B), dataKey)).toBe(true);
    expect(eq(unwrapDataKey(wraps, bob.privateKey, B), dataKey)).toBe(true);
    expect(eq(unwrapDataKey([...wraps].reverse(), alice.privateKey, B), dataKey)).toBe(true);
  });

  it('the unwrapped key opens what the data key sealed', () => {
    const { stored, tag } = sealSegment(dataKey, 0, true, new TextEncoder().encode('shared model'), SEG);
    const key = unwrapDataKey(wraps, bob.privateKey, B);
    expect(new TextDecoder().decode(openSegment(key, 0, true, stored, 12, tag))).toBe('shared model');
  });

  it('a third X25519 key → CRYPTO_NOT_A_READER naming that reader', () => {
    const err = expectCode(() => unwrapDataKey(wraps, carol.privateKey, B), 'CRYPTO_NOT_A_READER');
    expect(err.message).toContain(toHex(carol.publicKey));
    expect(err.message).toContain(wraps[0]!.recipient);
  });

  it('no wraps at all → CRYPTO_NOT_A_READER', () => {
    const err = expectCode(() => unwrapDataKey([], alice.privateKey, B), 'CRYPTO_NOT_A_READER');
    expect(err.message).toContain('nobody');
  });

  it('a wrap re-addressed to another reader does not open for them (CRYPTO_DECRYPT_FAILED)', () => {
    const readdressed = { ...wraps[0]!, recipient: toHex(carol.publicKey) };
    expectCode(() => unwrapDataKey([readdressed], carol.privateKey, B), 'CRYPTO_DECRYPT_FAILED');
  });

  it('a wrap opens only for the object it was made for: another fid or owner → CRYPTO_DECRYPT_FAILED', () => {
    // Copied into another declaration, a wrap would otherwise hand its key to whoever serves that one.
    expectCode(
      () => unwrapDataKey(wraps, alice.privateKey, { ...B, fid: 'cd'.repeat(32) }),
      'CRYPTO_DECRYPT_FAILED',
    );
    expectCode(
      () =>
        unwrapDataKey(wraps, alice.privateKey, {
          ...B,
          owner: '5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty',
        }),
      'CRYPTO_DECRYPT_FAILED',
    );
  });

  it('every single-bit flip in the sealed key → CRYPTO_DECRYPT_FAILED', () => {
    const w = wraps[0]!;
    const sealed = fromHex(w.sealed);
    for (let bit = 0; bit < sealed.byteLength * 8; bit++) {
      const tampered = { ...w, sealed: toHex(flipBit(sealed, bit)) };
      expectCode(() => unwrapDataKey([tampered], alice.privateKey, B), 'CRYPTO_DECRYPT_FAILED');
    }
  });

  it('every single-bit flip in the ephemeral key → CRYPTO_DECRYPT_FAILED', () => {
    // Includes bit 255, which X25519 itself ignores: the KDF salt binds the exact ephemeral bytes.
    const w = wraps[1]!;
    const ephemeral = fromHex(w.ephemeral);
    for (let bit = 0; bit < ephemeral.byteLength * 8; bit++) {
      const tampered = { ...w, ephemeral: toHex(flipBit(ephemeral, bit)) };
      expectCode(() => unwrapDataKey([tampered], bob.privateKey, B), 'CRYPTO_DECRYPT_FAILED');
    }
  });

  it('malformed hex in a wrap → CRYPTO_DECRYPT_FAILED', () => {
    const w = wraps[0]!;
    for (const tampered of [
      { ...w, ephemeral: w.ephemeral.toUpperCase() },
      { ...w, ephemeral: w.ephemeral.slice(2) },
      { ...w, sealed: `${w.sealed}zz` },
      { ...w, sealed: `${w.sealed}00` },
      { ...w, sealed: '' },
    ]) {
      expectCode(() => unwrapDataKey([tampered], alice.privateKey, B), 'CRYPTO_DECRYPT_FAILED');
    }
  });

  it('every wrap uses a fresh ephemeral key', () => {
    const again = wrapDataKey(dataKey, alice.publicKey, B);
    expect(again.ephemeral).not.toBe(wraps[0]!.ephemeral);
    expect(again.sealed).not.toBe(wraps[0]!.sealed);
    expect(eq(unwrapDataKey([again], alice.privateKey, B), dataKey)).toBe(true);
  });

  it('round-trips any 32-byte data key (property)', () => {
    fc.assert(
      fc.property(key32, (k) => {
        const w = wrapDataKey(k, carol.publicKey, B);
        expect(eq(unwrapDataKey([w], carol.privateKey, B), k)).toBe(true);
      }),
      { numRuns: 50 },
    );
  });

  it('pins the wrap format: X25519 → HKDF-SHA256(salt = ephemeral ‖ recipient, "ailink/keywrap/v1") → AES-256-GCM, zero nonce, AAD "ailink/wrap/v2\\n<fid>\\n<owner>"', () => {
    const w = wrapDataKey(dataKey, alice.publicKey, B);
    const ephemeral = fromHex(w.ephemeral);
    const sealed = fromHex(w.sealed);
    const pkcs8 = Buffer.concat([Buffer.from('302e020100300506032b656e04220420', 'hex'), alice.privateKey]);
    const shared = diffieHellman({
      privateKey: createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }),
      publicKey: publicKeyObject(ephemeral),
    });
    const kek = Buffer.from(
      hkdfSync('sha256', shared, Buffer.concat([ephemeral, alice.publicKey]), 'ailink/keywrap/v1', 32),
    );
    const decipher = createDecipheriv('aes-256-gcm', kek, Buffer.alloc(12), { authTagLength: 16 });
    decipher.setAAD(Buffer.from(`ailink/wrap/v2\n${B.fid}\n${B.owner}`));
    decipher.setAuthTag(sealed.subarray(32));
    const key = Buffer.concat([decipher.update(sealed.subarray(0, 32)), decipher.final()]);
    expect(eq(key, dataKey)).toBe(true);
  });

  // Node accepts GCM tags of 4..15 bytes unless told otherwise, and a tag prefix is a valid shorter tag.
  it('a wrap whose tag was truncated is refused', () => {
    const w = wraps[0]!;
    for (const bytes of [36, 40, 44, 47]) {
      const truncated = { ...w, sealed: w.sealed.slice(0, 2 * bytes) };
      expectCode(() => unwrapDataKey([truncated], alice.privateKey, B), 'CRYPTO_DECRYPT_FAILED');
    }
  });
});
