import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MiB } from '../../src/shared/bytes.ts';
import {
  fidOf,
  fragmentHash,
  HASH_RE,
  segmentHash,
  zeroFragmentHash,
} from '../../src/storage/object/hash.ts';
import { fragmentSizeOf, PRODUCTION_PROFILE, TEST_PROFILE } from '../../src/storage/object/profile.ts';

/** SHA-256 over the concatenation of raw byte strings: the independent reference for the CESS rules. */
const sha = (...parts: Uint8Array[]): Buffer => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};
const raw = (hex: string): Buffer => Buffer.from(hex, 'hex');

/** The CESS Merkle rule, written recursively and independently of src: pairs hash, an odd last node pairs with itself. */
function referenceFid(hashes: readonly string[]): string {
  let level: Buffer[] = hashes.map(raw);
  do {
    const next: Buffer[] = [];
    for (let i = 0; i < level.length; i += 2) next.push(sha(level[i]!, level[i + 1] ?? level[i]!));
    level = next;
  } while (level.length > 1);
  return level[0]!.toString('hex');
}

// Fixed inputs: SHA-256("ailink test segment i") for i = 0..4, written out so the vectors below stand on their own.
const H = [
  'fdf488285c036b2258aeb2b48d3d9807ffc91902f7dca1d85ba29a777f1b4d91',
  '5848f627a18e1db8bd0d64be520c5841c59aae939d41cc0434c54ec155c2d273',
  '06510b842f37bd677a7b4930301f2545bb93dd659cf2993b1380b01ea911979a',
  '23888fe2bcd9a946c909882b92b45bc34934215b966aa40db0ed1934bf5a2cba',
  '962abbba95d50b8219a925712d0765176a5306cf4d105a40877f6220194eee9a',
] as const;
const [H0, H1, H2, H3, H4] = H.map(raw) as [Buffer, Buffer, Buffer, Buffer, Buffer];

// Committed test vectors (computed once with node:crypto by the rule in DESIGN.md §3, checked again below).
const FID_1 = '8f4efd79730739c2af156ebe188e480da24cddd8768de578763bd7ef9d862db4';
const FID_2 = '818e6183585890acbdd2162ee11ca5c4b2289497d2140115c9e0461b9e7ae961';
const FID_3 = '1b1396de82692228d6a2913b60639640ce0665af145aec51d7a589ef86159659';
const FID_5 = '1d5168fcfa6bc322598e1038d8bbf741c6fb634c1460d404f9e988e5a686d568';

const ZERO_8MIB_HASH = '2daeb1f36095b44b318410b3f4e8b5d989dcc7bb023d1426c492dab0a3053e74';

const hashHex = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('hex'));

describe('fragmentHash / segmentHash', () => {
  it('matches the CESS test vector: an all-zero 8 MiB fragment', () => {
    expect(fragmentSizeOf(PRODUCTION_PROFILE)).toBe(8 * MiB);
    expect(fragmentHash(new Uint8Array(8 * MiB))).toBe(ZERO_8MIB_HASH);
    expect(zeroFragmentHash(8 * MiB)).toBe(ZERO_8MIB_HASH);
    // Second call comes from the cache and must still be the same value.
    expect(zeroFragmentHash(8 * MiB)).toBe(ZERO_8MIB_HASH);
  });

  it('zeroFragmentHash(n) is the hash of n zero bytes for other sizes', () => {
    for (const n of [0, 1, 64, fragmentSizeOf(TEST_PROFILE)]) {
      expect(zeroFragmentHash(n)).toBe(fragmentHash(new Uint8Array(n)));
      expect(zeroFragmentHash(n)).toBe(sha(new Uint8Array(n)).toString('hex'));
    }
    expect(zeroFragmentHash(64)).not.toBe(zeroFragmentHash(128));
  });

  it('is plain SHA-256 in lowercase hex (FIPS 180-2 vectors)', () => {
    expect(fragmentHash(new Uint8Array(0))).toBe(
      'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    );
    expect(fragmentHash(new TextEncoder().encode('abc'))).toBe(
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    );
    expect(segmentHash(new TextEncoder().encode('abc'))).toBe(
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    );
  });

  it('hashes only the bytes of a view, not its whole backing buffer', () => {
    // Fragments from encodeSegment are subarrays of one shared buffer.
    const backing = Uint8Array.from({ length: 300 }, (_, i) => i & 255);
    const view = backing.subarray(100, 200);
    expect(fragmentHash(view)).toBe(sha(backing.slice(100, 200)).toString('hex'));
    expect(fragmentHash(view)).not.toBe(fragmentHash(backing));
  });

  it('agrees with node:crypto on random input and always yields an id matching HASH_RE', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), (bytes) => {
        const h = fragmentHash(bytes);
        expect(h).toBe(sha(bytes).toString('hex'));
        expect(segmentHash(bytes)).toBe(h);
        expect(h).toMatch(HASH_RE);
      }),
    );
  });
});

describe('fidOf (CESS Merkle root over raw segment digests)', () => {
  it('1 segment: SHA-256(h ‖ h)', () => {
    const expected = sha(H0, H0).toString('hex');
    expect(expected).toBe(FID_1);
    expect(fidOf([H[0]])).toBe(FID_1);
  });

  it('2 segments: SHA-256(h0 ‖ h1)', () => {
    const expected = sha(H0, H1).toString('hex');
    expect(expected).toBe(FID_2);
    expect(fidOf([H[0], H[1]])).toBe(FID_2);
  });

  it('3 segments: SHA-256(SHA-256(h0 ‖ h1) ‖ SHA-256(h2 ‖ h2))', () => {
    const expected = sha(sha(H0, H1), sha(H2, H2)).toString('hex');
    expect(expected).toBe(FID_3);
    expect(fidOf([H[0], H[1], H[2]])).toBe(FID_3);
  });

  it('5 segments: the odd last node is paired with itself at two levels', () => {
    const a = sha(H0, H1);
    const b = sha(H2, H3);
    const c = sha(H4, H4);
    const expected = sha(sha(a, b), sha(c, c)).toString('hex');
    expect(expected).toBe(FID_5);
    expect(fidOf([...H])).toBe(FID_5);
  });

  it('hashes the raw 32-byte digests, not their hex text', () => {
    const overHexText = createHash('sha256').update(H[0]).update(H[0]).digest('hex');
    expect(fidOf([H[0]])).not.toBe(overHexText);
  });

  it('follows the rule for any number of segments (property, against an independent reference)', () => {
    fc.assert(
      fc.property(fc.array(hashHex, { minLength: 1, maxLength: 40 }), (hashes) => {
        const fid = fidOf(hashes);
        expect(fid).toBe(referenceFid(hashes));
        expect(fid).toMatch(HASH_RE);
      }),
    );
  });

  it('consequences of the odd-node rule: [h] ≡ [h, h] and [a, b, c] ≡ [a, b, c, c]', () => {
    expect(fidOf([H[0], H[0]])).toBe(fidOf([H[0]]));
    expect(fidOf([H[0], H[1], H[2], H[2]])).toBe(fidOf([H[0], H[1], H[2]]));
  });

  it('is order-sensitive and never the bare segment hash', () => {
    expect(fidOf([H[1], H[0]])).not.toBe(fidOf([H[0], H[1]]));
    expect(fidOf([H[0]])).not.toBe(H[0]);
    fc.assert(
      fc.property(hashHex, hashHex, (a, b) => {
        fc.pre(a !== b);
        expect(fidOf([a, b])).not.toBe(fidOf([b, a]));
      }),
    );
  });

  it('does not modify its input', () => {
    const input = [...H];
    fidOf(input);
    expect(input).toEqual([...H]);
  });

  it('rejects an empty list and ids that are not lowercase hex', () => {
    expect(() => fidOf([])).toThrow(RangeError);
    expect(() => fidOf([H[0].toUpperCase()])).toThrow(RangeError);
    expect(() => fidOf([`${H[0].slice(0, 63)}g`])).toThrow(RangeError);
    expect(() => fidOf([H[0].slice(0, 63)])).toThrow(RangeError);
  });
});

describe('HASH_RE', () => {
  it('accepts 64 lowercase hex characters', () => {
    expect(HASH_RE.test(H[0])).toBe(true);
    expect(HASH_RE.test(ZERO_8MIB_HASH)).toBe(true);
    expect(HASH_RE.test('0'.repeat(64))).toBe(true);
  });

  it('rejects anything else', () => {
    for (const bad of [
      '',
      H[0].slice(0, 63),
      `${H[0]}0`,
      H[0].toUpperCase(),
      `${H[0].slice(0, 63)}g`,
      `${H[0]}\n`,
      ` ${H[0].slice(1)}`,
      `0x${H[0].slice(2)}`,
    ]) {
      expect(HASH_RE.test(bad), JSON.stringify(bad)).toBe(false);
    }
  });
});
