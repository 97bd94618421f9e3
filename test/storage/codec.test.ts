import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KiB, MiB } from '../../src/shared/bytes.ts';
import {
  decodeSegment,
  type EncodedSegment,
  encodeSegment,
  rebuildColumns,
} from '../../src/storage/object/codec.ts';
import {
  checkProfile,
  columnsOf,
  fragmentSizeOf,
  PRODUCTION_PROFILE,
  profileForSize,
  type StorageProfile,
  TEST_PROFILE,
} from '../../src/storage/object/profile.ts';
import { rsEncode, rsReconstruct } from '../../src/storage/object/rs.ts';
import { combinations, expectCode, flipBit, seededBytes, sha256Hex } from './helpers.ts';

// --- an independent reference encoder: klauspost/reedsolomon's default matrix -----------------------------------
// GF(2^8) with polynomial 0x11d and generator 2; encoding matrix = V · (top 4×4 of V)⁻¹ where V[r][c] = r^c
// (klauspost buildMatrix / Backblaze JavaReedSolomon). Written from the definition, sharing nothing with src.

const GF_EXP = new Uint8Array(510);
const GF_LOG = new Uint8Array(256);
{
  let x = 1;
  for (let i = 0; i < 255; i++) {
    GF_EXP[i] = x;
    GF_LOG[x] = i;
    x <<= 1;
    if (x & 0x100) x ^= 0x11d;
  }
  for (let i = 255; i < 510; i++) GF_EXP[i] = GF_EXP[i - 255]!;
}
const gfMul = (a: number, b: number): number => (a === 0 || b === 0 ? 0 : GF_EXP[GF_LOG[a]! + GF_LOG[b]!]!);
const gfPow = (a: number, n: number): number => (n === 0 ? 1 : a === 0 ? 0 : GF_EXP[(GF_LOG[a]! * n) % 255]!);
const gfInv = (a: number): number => GF_EXP[255 - GF_LOG[a]!]!;

function gfInvert(m: number[][]): number[][] {
  const n = m.length;
  const a = m.map((row, i) => [...row, ...Array.from({ length: n }, (_, j) => (i === j ? 1 : 0))]);
  for (let c = 0; c < n; c++) {
    let p = c;
    while (a[p]![c] === 0) p++;
    [a[c], a[p]] = [a[p]!, a[c]!];
    const s = gfInv(a[c]![c]!);
    a[c] = a[c]!.map((v) => gfMul(v, s));
    for (let r = 0; r < n; r++) {
      const f = a[r]![c]!;
      if (r !== c && f !== 0) a[r] = a[r]!.map((v, j) => v ^ gfMul(f, a[c]![j]!));
    }
  }
  return a.map((row) => row.slice(n));
}

function klauspostMatrix(dataShards: number, totalShards: number): number[][] {
  const vm = Array.from({ length: totalShards }, (_, r) =>
    Array.from({ length: dataShards }, (_, c) => gfPow(r, c)),
  );
  const topInv = gfInvert(vm.slice(0, dataShards));
  return vm.map((row) =>
    Array.from({ length: dataShards }, (_, c) =>
      row.reduce((acc, v, i) => acc ^ gfMul(v, topInv[i]![c]!), 0),
    ),
  );
}

/** Parity fragments of `segment` per the reference matrix. */
function referenceParity(profile: StorageProfile, segment: Uint8Array): Uint8Array[] {
  const size = fragmentSizeOf(profile);
  const k = profile.dataFragments;
  const m = klauspostMatrix(k, columnsOf(profile));
  return Array.from({ length: profile.parityFragments }, (_, p) => {
    const row = m[k + p]!;
    const out = new Uint8Array(size);
    for (let d = 0; d < k; d++) {
      const coef = row[d]!;
      if (coef === 0) continue;
      for (let b = 0; b < size; b++) out[b] = out[b]! ^ gfMul(coef, segment[d * size + b]!);
    }
    return out;
  });
}

// --- fixtures ------------------------------------------------------------------------------------------------------

const TINY: StorageProfile = { segmentSize: 256, dataFragments: 4, parityFragments: 8 };
const COLUMNS = columnsOf(TEST_PROFILE);
const FRAGMENT = fragmentSizeOf(TEST_PROFILE);

/** sha256 of the 8 parity fragments of the TINY profile over the bytes 0..255 (klauspost 4+8 default matrix). */
const TINY_PARITY_HASHES = [
  '209a2b1a1eaf867caeb1042c21e8e52649d7cd8e541e891712f0dc42fdbfdbb9',
  '39d7f4159d51d672715da77219f4be55c9a3bcbe90c6df822628c58272cc1d69',
  '37d7c7e13a12e13cc7a2fff5dfba8ef9c7b0e68c313d2b86173795ce279c60ca',
  'c2d097e683a11d671384c5d5290eec86faf5c35385d72f092127734ca51e69d4',
  '284dea9f6898bfdb136829fec7da7ca04c542071db2b242daa4413d2ccf9912e',
  '70b5ee8a0c61e0106bafa887db72b9686f4a1d5f26f40a34eb5af2f2835fea7a',
  'd6ab2246e04c8c5b0224faa96b9dcac7115f8b86844f9eeec8fca79029ba1c7a',
  '2f7efad9b20fa760dbd72ce3fa6fdb662111d26c268c8cb82d137bd15ce2e43e',
];
const TINY_SEGMENT_HASH = '40aff2e9d2d8922e47afd4648e6967497158785fbd1da870e7110266bf944880';

/** Copies, so that a test corrupting one never touches the shared buffer of `encodeSegment`'s views. */
const copies = (e: EncodedSegment): Uint8Array[] => e.fragments.map((f) => f.slice());
const keepOnly = (fragments: readonly Uint8Array[], keep: readonly number[]): (Uint8Array | null)[] =>
  fragments.map((f, i) => (keep.includes(i) ? f : null));
const expectedOf = (e: EncodedSegment) => ({ hash: e.hash, fragmentHashes: e.fragmentHashes });

const segment = seededBytes('codec segment', TEST_PROFILE.segmentSize);
const encoded = encodeSegment(TEST_PROFILE, segment);

// --- profile -------------------------------------------------------------------------------------------------------

describe('storage profile', () => {
  it('PRODUCTION_PROFILE is CESS: 32 MiB segments, 4 + 8 fragments of 8 MiB', () => {
    expect(PRODUCTION_PROFILE).toEqual({ segmentSize: 32 * MiB, dataFragments: 4, parityFragments: 8 });
    expect(fragmentSizeOf(PRODUCTION_PROFILE)).toBe(8 * MiB);
    expect(columnsOf(PRODUCTION_PROFILE)).toBe(12);
  });

  it('TEST_PROFILE keeps 4 + 8 with 64 KiB segments', () => {
    expect(TEST_PROFILE).toEqual({ segmentSize: 64 * KiB, dataFragments: 4, parityFragments: 8 });
    expect(fragmentSizeOf(TEST_PROFILE)).toBe(16 * KiB);
    expect(columnsOf(TEST_PROFILE)).toBe(12);
  });

  it('both profiles are frozen', () => {
    expect(Object.isFrozen(PRODUCTION_PROFILE)).toBe(true);
    expect(Object.isFrozen(TEST_PROFILE)).toBe(true);
  });

  it('checkProfile returns a valid profile unchanged', () => {
    for (const p of [
      PRODUCTION_PROFILE,
      TEST_PROFILE,
      TINY,
      { segmentSize: 64, dataFragments: 1, parityFragments: 3 },
      { segmentSize: 200 * 64, dataFragments: 200, parityFragments: 56 },
    ]) {
      expect(checkProfile(p)).toBe(p);
    }
  });

  it.each<[string, StorageProfile]>([
    ['no data fragments', { segmentSize: 256, dataFragments: 0, parityFragments: 8 }],
    ['negative data fragments', { segmentSize: 256, dataFragments: -4, parityFragments: 8 }],
    ['fractional data fragments', { segmentSize: 256, dataFragments: 2.5, parityFragments: 8 }],
    ['NaN data fragments', { segmentSize: 256, dataFragments: Number.NaN, parityFragments: 8 }],
    ['negative parity fragments', { segmentSize: 256, dataFragments: 4, parityFragments: -1 }],
    ['fractional parity fragments', { segmentSize: 256, dataFragments: 4, parityFragments: 0.5 }],
    ['more than 256 columns', { segmentSize: 200 * 64, dataFragments: 200, parityFragments: 57 }],
    [
      'segment not a multiple of data × 64',
      { segmentSize: 4 * 64 * 10 + 4, dataFragments: 4, parityFragments: 8 },
    ],
    ['fragment not a multiple of 64', { segmentSize: 4 * 32, dataFragments: 4, parityFragments: 8 }],
    ['zero segment', { segmentSize: 0, dataFragments: 4, parityFragments: 8 }],
    ['negative segment', { segmentSize: -256, dataFragments: 4, parityFragments: 8 }],
    ['fractional segment', { segmentSize: 256.5, dataFragments: 4, parityFragments: 8 }],
    ['unsafe-integer segment', { segmentSize: 2 ** 60, dataFragments: 4, parityFragments: 8 }],
    ['infinite segment', { segmentSize: Number.POSITIVE_INFINITY, dataFragments: 4, parityFragments: 8 }],
  ])('checkProfile rejects %s with CODEC_PROFILE_INVALID', (_what, p) => {
    const err = expectCode(() => checkProfile(p), 'CODEC_PROFILE_INVALID');
    expect(err.message).toMatch(/^expected /);
    expect(err.message).toContain('got {');
  });

  // The wasm library panics on 0 parity shards, so a profile without parity is refused up front.
  it('refuses a profile without parity fragments', () => {
    expectCode(
      () => checkProfile({ segmentSize: 256, dataFragments: 4, parityFragments: 0 }),
      'CODEC_PROFILE_INVALID',
    );
  });
});

// --- encode ----------------------------------------------------------------------------------------------------------

describe('encodeSegment', () => {
  it('yields 12 fragments of 16 KiB whose first four are the segment itself', () => {
    expect(encoded.fragments).toHaveLength(COLUMNS);
    expect(encoded.fragmentHashes).toHaveLength(COLUMNS);
    for (const f of encoded.fragments) expect(f.byteLength).toBe(FRAGMENT);
    for (let i = 0; i < 4; i++) {
      expect(
        Buffer.from(encoded.fragments[i]!).equals(segment.subarray(i * FRAGMENT, (i + 1) * FRAGMENT)),
      ).toBe(true);
    }
  });

  it('records SHA-256 of the segment and of every fragment', () => {
    expect(encoded.hash).toBe(sha256Hex(segment));
    encoded.fragments.forEach((f, i) => {
      expect(encoded.fragmentHashes[i]).toBe(sha256Hex(f));
    });
    // Twelve different fragments: the parity is not a copy of the data.
    expect(new Set(encoded.fragmentHashes).size).toBe(COLUMNS);
  });

  it('is deterministic and does not modify its input', () => {
    const before = segment.slice();
    const again = encodeSegment(TEST_PROFILE, segment);
    expect(again.hash).toBe(encoded.hash);
    expect(again.fragmentHashes).toEqual(encoded.fragmentHashes);
    expect(Buffer.from(segment).equals(before)).toBe(true);
  });

  it('a one-bit change in the segment changes its hash and the hashes of every parity fragment', () => {
    const other = encodeSegment(TEST_PROFILE, flipBit(segment, 12_345));
    expect(other.hash).not.toBe(encoded.hash);
    for (let c = 4; c < COLUMNS; c++) expect(other.fragmentHashes[c]).not.toBe(encoded.fragmentHashes[c]);
  });

  it('rejects a segment of the wrong length with a RangeError', () => {
    expect(() => encodeSegment(TEST_PROFILE, new Uint8Array(TEST_PROFILE.segmentSize - 1))).toThrow(
      RangeError,
    );
    expect(() => encodeSegment(TEST_PROFILE, new Uint8Array(TEST_PROFILE.segmentSize + 1))).toThrow(
      RangeError,
    );
    expect(() => encodeSegment(TEST_PROFILE, new Uint8Array(0))).toThrow(RangeError);
  });

  it('klauspost compatibility: committed parity vector for segment bytes 0..255 (4 + 8, 64-byte fragments)', () => {
    const tinySegment = Uint8Array.from({ length: 256 }, (_, i) => i);
    const e = encodeSegment(TINY, tinySegment);
    expect(e.hash).toBe(TINY_SEGMENT_HASH);
    expect(e.fragmentHashes.slice(4)).toEqual(TINY_PARITY_HASHES);
    // The same values from the matrix definition, independently of the wasm library.
    expect(referenceParity(TINY, tinySegment).map(sha256Hex)).toEqual(TINY_PARITY_HASHES);
  });

  it('klauspost compatibility: the reference matrix is the known Backblaze/klauspost one', () => {
    const m = klauspostMatrix(4, 12);
    expect(m.slice(0, 4)).toEqual([
      [1, 0, 0, 0],
      [0, 1, 0, 0],
      [0, 0, 1, 0],
      [0, 0, 0, 1],
    ]);
    // The first two parity rows are those of Backblaze JavaReedSolomon / klauspost for 4 data shards.
    expect(m[4]).toEqual([27, 28, 18, 20]);
    expect(m[5]).toEqual([28, 27, 20, 18]);
  });

  it('klauspost compatibility: parity of a random TEST_PROFILE segment equals the reference encoder', () => {
    const parity = referenceParity(TEST_PROFILE, segment);
    parity.forEach((p, i) => {
      expect(Buffer.from(encoded.fragments[4 + i]!).equals(p), `parity column ${4 + i}`).toBe(true);
    });
  });
});

// --- decode ----------------------------------------------------------------------------------------------------------

describe('decodeSegment', () => {
  it('returns the segment from all 12 fragments', () => {
    const out = decodeSegment(TEST_PROFILE, copies(encoded), expectedOf(encoded));
    expect(Buffer.from(out).equals(segment)).toBe(true);
  });

  it('rebuilds the segment exactly from every one of the C(12,4) = 495 four-fragment survivor sets', () => {
    const sets = combinations(COLUMNS, 4);
    expect(sets).toHaveLength(495);
    const fragments = copies(encoded);
    const failed: string[] = [];
    for (const keep of sets) {
      try {
        const out = decodeSegment(TEST_PROFILE, keepOnly(fragments, keep), expectedOf(encoded));
        if (!Buffer.from(out).equals(segment)) failed.push(`${keep.join(',')}: wrong bytes`);
      } catch (err) {
        failed.push(`${keep.join(',')}: ${(err as Error).message}`);
      }
    }
    // Report every failing set at once rather than stopping at the first.
    expect(failed, `${failed.length} of 495 survivor sets failed`).toEqual([]);
  });

  // Fails with src/storage/object/rs.ts as of this writing: the hand-written JS glue of
  // @digitaldefiance/reed-solomon-erasure.wasm corrupts the wasm heap of the one cached instance, so from the second
  // rsReconstruct on, the flag of column 0 is misread and decoding fails with CODEC_RS_FAILED "Too few shards
  // present". A fresh WebAssembly.Instance per call (module compiled once) makes this and the 495-set test pass.
  it('decodes again and again through Reed-Solomon when column 0 survives (regression: shared wasm heap)', () => {
    const fragments = copies(encoded);
    for (const keep of [
      [0, 5, 6, 7],
      [0, 1, 2, 11],
      [0, 5, 6, 7],
      [0, 3, 8, 9],
    ]) {
      const out = decodeSegment(TEST_PROFILE, keepOnly(fragments, keep), expectedOf(encoded));
      expect(Buffer.from(out).equals(segment), keep.join(',')).toBe(true);
    }
  });

  it('refuses every one of the C(12,3) = 220 three-fragment sets with CODEC_TOO_FEW_FRAGMENTS naming the missing columns', () => {
    const sets = combinations(COLUMNS, 3);
    expect(sets).toHaveLength(220);
    const fragments = copies(encoded);
    for (const keep of sets) {
      const missing = [...Array(COLUMNS).keys()].filter((c) => !keep.includes(c));
      const err = expectCode(
        () => decodeSegment(TEST_PROFILE, keepOnly(fragments, keep), expectedOf(encoded), 7),
        'CODEC_TOO_FEW_FRAGMENTS',
      );
      expect(err.message).toContain(`missing columns ${missing.join(', ')}`);
      expect(err.message).toContain('expected ≥ 4 of 12 fragments of segment 7, got 3');
      expect(err.details).toEqual({ segment: 7, missing });
    }
  });

  it('refuses 0, 1 and 2 fragments too', () => {
    const fragments = copies(encoded);
    for (const keep of [[], [11], [0, 1]]) {
      const err = expectCode(
        () => decodeSegment(TEST_PROFILE, keepOnly(fragments, keep), expectedOf(encoded)),
        'CODEC_TOO_FEW_FRAGMENTS',
      );
      expect(err.message).toContain(`got ${keep.length}`);
    }
  });

  it.each([...Array(12).keys()])(
    'a flipped bit in fragment %i → CODEC_HASH_MISMATCH naming that column',
    (c) => {
      const fragments = copies(encoded);
      fragments[c] = flipBit(fragments[c]!, 8 * 100 + c);
      const err = expectCode(
        () => decodeSegment(TEST_PROFILE, fragments, expectedOf(encoded), 3),
        'CODEC_HASH_MISMATCH',
      );
      expect(err.message).toContain(`fragment ${c} of segment 3`);
      expect(err.details).toEqual({ segment: 3, column: c });
    },
  );

  it('a corrupted parity fragment among exactly four survivors is caught before rebuilding', () => {
    const fragments = copies(encoded);
    fragments[9] = flipBit(fragments[9]!, 0);
    const err = expectCode(
      () => decodeSegment(TEST_PROFILE, keepOnly(fragments, [1, 4, 9, 10]), expectedOf(encoded)),
      'CODEC_HASH_MISMATCH',
    );
    expect(err.details).toEqual({ segment: 0, column: 9 });
  });

  it('a fragment of the wrong length → CODEC_HASH_MISMATCH', () => {
    for (const len of [0, FRAGMENT - 1, FRAGMENT + 1]) {
      const fragments = copies(encoded);
      fragments[2] = new Uint8Array(len);
      const err = expectCode(
        () => decodeSegment(TEST_PROFILE, fragments, expectedOf(encoded)),
        'CODEC_HASH_MISMATCH',
      );
      expect(err.message).toContain('fragment 2 of segment 0');
    }
  });

  it('fragments in the wrong columns → CODEC_HASH_MISMATCH', () => {
    const fragments = copies(encoded);
    [fragments[5], fragments[6]] = [fragments[6]!, fragments[5]!];
    expectCode(() => decodeSegment(TEST_PROFILE, fragments, expectedOf(encoded)), 'CODEC_HASH_MISMATCH');
  });

  it('a wrong expected segment hash → CODEC_HASH_MISMATCH, with all data fragments present', () => {
    const wrong = { hash: sha256Hex(new Uint8Array(1)), fragmentHashes: encoded.fragmentHashes };
    const err = expectCode(
      () => decodeSegment(TEST_PROFILE, copies(encoded), wrong, 5),
      'CODEC_HASH_MISMATCH',
    );
    expect(err.message).toContain('segment 5');
    expect(err.message).toContain(wrong.hash);
    expect(err.details).toEqual({ segment: 5 });
  });

  it('a wrong expected segment hash → CODEC_HASH_MISMATCH, when rebuilt from parity', () => {
    const wrong = { hash: sha256Hex(new Uint8Array(1)), fragmentHashes: encoded.fragmentHashes };
    const err = expectCode(
      () => decodeSegment(TEST_PROFILE, keepOnly(copies(encoded), [8, 9, 10, 11]), wrong, 2),
      'CODEC_HASH_MISMATCH',
    );
    expect(err.message).toContain('segment 2');
    expect(err.details).toEqual({ segment: 2 });
  });

  it('a fragment swapped together with its recorded hash is still caught by the segment hash', () => {
    const fragments = copies(encoded);
    const forged = seededBytes('forged fragment', FRAGMENT);
    fragments[1] = forged;
    const fragmentHashes = [...encoded.fragmentHashes];
    fragmentHashes[1] = sha256Hex(forged);
    for (const keep of [
      [0, 1, 2, 3],
      [1, 6, 7, 8],
    ]) {
      const err = expectCode(
        () => decodeSegment(TEST_PROFILE, keepOnly(fragments, keep), { hash: encoded.hash, fragmentHashes }),
        'CODEC_HASH_MISMATCH',
      );
      expect(err.details).toEqual({ segment: 0 });
    }
  });

  it('wrong number of fragment slots → RangeError', () => {
    const fragments = copies(encoded);
    expect(() => decodeSegment(TEST_PROFILE, fragments.slice(0, 11), expectedOf(encoded))).toThrow(
      RangeError,
    );
    expect(() => decodeSegment(TEST_PROFILE, [...fragments, null], expectedOf(encoded))).toThrow(RangeError);
  });

  it('does not modify the fragments it is given', () => {
    const fragments = copies(encoded);
    const snapshot = fragments.map((f) => f.slice());
    decodeSegment(TEST_PROFILE, keepOnly(fragments, [2, 5, 7, 11]), expectedOf(encoded));
    fragments.forEach((f, i) => {
      expect(Buffer.from(f).equals(snapshot[i]!)).toBe(true);
    });
  });
});

// --- rebuildColumns ------------------------------------------------------------------------------------------------

describe('rebuildColumns', () => {
  it.each([[[0]], [[3]], [[4]], [[11]], [[1, 5, 9]], [[2, 3, 6, 7, 10]], [[...Array(12).keys()]]])(
    'returns the exact lost fragments of columns %j',
    (columns) => {
      const rebuilt = rebuildColumns(TEST_PROFILE, segment, columns, encoded.fragmentHashes);
      expect(rebuilt).toHaveLength(columns.length);
      columns.forEach((c, i) => {
        expect(Buffer.from(rebuilt[i]!).equals(encoded.fragments[c]!), `column ${c}`).toBe(true);
      });
    },
  );

  it('returns nothing for no columns', () => {
    expect(rebuildColumns(TEST_PROFILE, segment, [], encoded.fragmentHashes)).toEqual([]);
  });

  it('works on a segment that was itself rebuilt from parity (the repair flow)', () => {
    const lost = [0, 2, 5, 8, 9, 10, 11];
    const survivors = [1, 3, 4, 6, 7].slice(0, 4);
    const decoded = decodeSegment(TEST_PROFILE, keepOnly(copies(encoded), survivors), expectedOf(encoded));
    const rebuilt = rebuildColumns(TEST_PROFILE, decoded, lost, encoded.fragmentHashes);
    lost.forEach((c, i) => {
      expect(sha256Hex(rebuilt[i]!)).toBe(encoded.fragmentHashes[c]);
    });
  });

  it('refuses a segment that does not match the recorded fragment hashes (CODEC_HASH_MISMATCH naming the column)', () => {
    const err = expectCode(
      () => rebuildColumns(TEST_PROFILE, flipBit(segment, 0), [7], encoded.fragmentHashes),
      'CODEC_HASH_MISMATCH',
    );
    expect(err.message).toContain('column 7');
  });

  it('refuses when the recorded hash of a requested column is wrong', () => {
    const fragmentHashes = [...encoded.fragmentHashes];
    fragmentHashes[10] = sha256Hex(new Uint8Array(0));
    expect(rebuildColumns(TEST_PROFILE, segment, [9], fragmentHashes)).toHaveLength(1);
    const err = expectCode(
      () => rebuildColumns(TEST_PROFILE, segment, [9, 10], fragmentHashes),
      'CODEC_HASH_MISMATCH',
    );
    expect(err.message).toContain('column 10');
  });

  it('refuses a column outside 0..columns-1', () => {
    expect(() => rebuildColumns(TEST_PROFILE, segment, [12], encoded.fragmentHashes)).toThrow();
  });
});

// --- the Reed-Solomon wrapper ---------------------------------------------------------------------------------------

describe('rsEncode / rsReconstruct', () => {
  const size = 64;
  const fresh = (): Uint8Array => {
    const shards = new Uint8Array(size * 12);
    shards.set(seededBytes('rs shards', size * 4));
    rsEncode(shards, 4, 8);
    return shards;
  };

  it('rsEncode leaves the data shards alone and fills the parity shards', () => {
    const shards = new Uint8Array(size * 12);
    const data = seededBytes('rs shards', size * 4);
    shards.set(data);
    rsEncode(shards, 4, 8);
    expect(Buffer.from(shards.subarray(0, size * 4)).equals(data)).toBe(true);
    const parity = referenceParity({ segmentSize: size * 4, dataFragments: 4, parityFragments: 8 }, data);
    parity.forEach((p, i) => {
      expect(Buffer.from(shards.subarray((4 + i) * size, (5 + i) * size)).equals(p)).toBe(true);
    });
  });

  it('rsReconstruct rebuilds the missing data shards in place', () => {
    const original = fresh();
    const damaged = original.slice();
    const present = [false, true, false, true, true, false, true, false, false, false, false, false];
    present.forEach((p, i) => {
      if (!p) damaged.fill(0, i * size, (i + 1) * size);
    });
    rsReconstruct(damaged, 4, 8, present);
    expect(Buffer.from(damaged.subarray(0, size * 4)).equals(original.subarray(0, size * 4))).toBe(true);
  });

  it('rsReconstruct refuses fewer than dataShards present with CODEC_TOO_FEW_FRAGMENTS', () => {
    const present = Array.from({ length: 12 }, (_, i) => i >= 9);
    const err = expectCode(() => rsReconstruct(fresh(), 4, 8, present), 'CODEC_TOO_FEW_FRAGMENTS');
    expect(err.message).toContain('expected ≥ 4 fragments, got 3');
  });

  it('library errors surface as CODEC_RS_FAILED', () => {
    // A buffer that does not split into 12 equal shards.
    expectCode(() => rsEncode(new Uint8Array(13), 4, 8), 'CODEC_RS_FAILED');
    // A present-flag list of the wrong length.
    expectCode(() => rsReconstruct(fresh(), 4, 8, Array(11).fill(true)), 'CODEC_RS_FAILED');
  });

  // The library rebuilds data shards only; parity is recomputed by re-encoding (rebuildColumns).
  it('rsReconstruct rebuilds missing data shards and leaves parity shards alone, as documented', () => {
    const original = fresh();
    const damaged = original.slice();
    damaged.fill(0, 1 * size, 2 * size);
    damaged.fill(0, 10 * size, 11 * size);
    const present = Array.from({ length: 12 }, (_, i) => i !== 1 && i !== 10);
    rsReconstruct(damaged, 4, 8, present);
    expect(Buffer.from(damaged.subarray(0, 4 * size)).equals(original.subarray(0, 4 * size))).toBe(true);
    expect(damaged.subarray(10 * size, 11 * size).every((b) => b === 0)).toBe(true);
  });
});

describe('decodeSegment properties', () => {
  it('property: decode(encode(x)) = x for random segments and random survivor sets of size ≥ 4 (TEST_PROFILE)', () => {
    fc.assert(
      fc.property(
        fc.integer(),
        fc.shuffledSubarray([...Array(COLUMNS).keys()], { minLength: 4 }),
        (seed, keep) => {
          const x = seededBytes(seed, TEST_PROFILE.segmentSize);
          const e = encodeSegment(TEST_PROFILE, x);
          const out = decodeSegment(TEST_PROFILE, keepOnly(copies(e), keep), expectedOf(e));
          expect(Buffer.from(out).equals(x)).toBe(true);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('property: decode(encode(x)) = x for random small profiles, segments and survivor sets', () => {
    const profileAndSurvivors = fc
      .record({
        dataFragments: fc.integer({ min: 1, max: 6 }),
        parityFragments: fc.integer({ min: 1, max: 8 }),
        units: fc.integer({ min: 1, max: 3 }),
      })
      .chain(({ dataFragments, parityFragments, units }) => {
        const profile = { segmentSize: dataFragments * 64 * units, dataFragments, parityFragments };
        return fc.record({
          profile: fc.constant(profile),
          segment: fc.uint8Array({ minLength: profile.segmentSize, maxLength: profile.segmentSize }),
          keep: fc.shuffledSubarray([...Array(dataFragments + parityFragments).keys()], {
            minLength: dataFragments,
          }),
        });
      });
    fc.assert(
      fc.property(profileAndSurvivors, ({ profile, segment: x, keep }) => {
        checkProfile(profile);
        const e = encodeSegment(profile, x);
        expect(e.fragments).toHaveLength(columnsOf(profile));
        const out = decodeSegment(profile, keepOnly(copies(e), keep), expectedOf(e));
        expect(Buffer.from(out).equals(x)).toBe(true);
      }),
      { numRuns: 100 },
    );
  });
});

describe('profileForSize: a small object is coded in a segment of its own size', () => {
  it('smaller than a segment: the least multiple of dataFragments × 64 that holds it, a valid profile; else unchanged', () => {
    for (const base of [PRODUCTION_PROFILE, TEST_PROFILE]) {
      const unit = base.dataFragments * 64;
      fc.assert(
        fc.property(fc.integer({ min: 0, max: 2 * base.segmentSize }), (size) => {
          const p = profileForSize(base, size);
          if (size >= base.segmentSize) {
            expect(p).toBe(base);
            return;
          }
          expect(checkProfile(p)).toEqual({ ...base, segmentSize: p.segmentSize });
          expect(p.segmentSize % unit).toBe(0);
          expect(p.segmentSize).toBeGreaterThanOrEqual(Math.max(size, unit));
          expect(p.segmentSize - Math.max(size, 1)).toBeLessThan(unit);
        }),
      );
      expect(profileForSize(base, undefined)).toBe(base);
    }
    // A 4 KiB object: twelve fragments of 1 KiB, 3 × what it holds, instead of twelve of 8 MiB.
    expect(fragmentSizeOf(profileForSize(PRODUCTION_PROFILE, 4 * KiB))).toBe(KiB);
  });
});
