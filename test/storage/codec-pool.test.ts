import { describe, expect, it } from 'vitest';
import { systemRandom } from '../../src/shared/clock.ts';
import {
  createCodecPool,
  encodeForStorage,
  encodeSegment,
  fragmentBody,
  PRODUCTION_PROFILE,
  type StorageProfile,
  TEST_PROFILE,
} from '../../src/storage/index.ts';

/** Fragment `column` as one buffer, from the pieces a put sends. */
function whole(profile: StorageProfile, stored: Uint8Array, column: number): Uint8Array {
  return Buffer.concat([...fragmentBody(profile, stored, column).pieces()]);
}

describe('fragments computed piece by piece', () => {
  // The production profile's 8 MiB fragments are 8 pieces (SIMD kernel); the test profile's 16 KiB ones are one.
  it.each([
    ['production', PRODUCTION_PROFILE],
    ['test', TEST_PROFILE],
  ] as const)('equal encodeSegment’s fragments and hashes (%s profile)', (_, profile) => {
    const plaintext = systemRandom(profile.segmentSize - 12_345);
    const key = systemRandom(32);
    const encoded = encodeForStorage(profile, plaintext.slice(), { index: 3, last: true, key });
    const reference = encodeSegment(profile, encoded.stored);
    expect(encoded.hash).toBe(reference.hash);
    expect(encoded.fragmentHashes).toEqual(reference.fragmentHashes);
    for (let c = 0; c < 12; c++) {
      const body = fragmentBody(profile, encoded.stored, c);
      expect(body.byteLength).toBe(reference.fragments[c]!.byteLength);
      expect(Buffer.compare(whole(profile, encoded.stored, c), reference.fragments[c]!)).toBe(0);
      // A column sent again (moved to a spare miner) gets the same bytes.
      expect(Buffer.compare(whole(profile, encoded.stored, c), reference.fragments[c]!)).toBe(0);
    }
  });
});

describe('codec pool (real worker threads)', () => {
  it('seals and codes on a worker, and a decode on a worker gives the original bytes back', async () => {
    const pool = createCodecPool({ threads: 2 });
    try {
      const key = systemRandom(32);
      const plaintext = systemRandom(50_000);
      const copy = plaintext.slice();
      const encoded = await pool.encode({ profile: TEST_PROFILE, plaintext, index: 0, last: true, key });
      expect(plaintext.byteLength).toBe(0); // its buffer moved to the worker
      // Decode from parity only: columns 4..7.
      const fragments = Array.from({ length: 12 }, (_, c) =>
        c >= 4 && c < 8 ? whole(TEST_PROFILE, encoded.stored, c) : null,
      );
      const original = await pool.decode({
        profile: TEST_PROFILE,
        fragments,
        expected: { hash: encoded.hash, fragmentHashes: encoded.fragmentHashes },
        index: 0,
        open: { length: copy.byteLength, last: true, key, tag: Buffer.from(encoded.tag!, 'hex') },
      });
      expect(Buffer.compare(original, copy)).toBe(0);
    } finally {
      await pool.close();
    }
  });

  it('errors from a worker arrive as coded errors with their details', async () => {
    const pool = createCodecPool({ threads: 1 });
    try {
      const encoded = await pool.encode({
        profile: TEST_PROFILE,
        plaintext: systemRandom(1000),
        index: 0,
        last: true,
        key: null,
      });
      const fragments = Array.from({ length: 12 }, (_, c) =>
        c < 4 ? whole(TEST_PROFILE, encoded.stored, c) : null,
      );
      fragments[2]![0]! ^= 1;
      await expect(
        pool.decode({
          profile: TEST_PROFILE,
          fragments,
          expected: { hash: encoded.hash, fragmentHashes: encoded.fragmentHashes },
          index: 0,
          open: { length: 1000, last: true, key: null, tag: null },
        }),
      ).rejects.toMatchObject({ code: 'CODEC_HASH_MISMATCH', details: { segment: 0, column: 2 } });
    } finally {
      await pool.close();
    }
  });

  it('a task whose worker goes away is rejected, not left waiting', async () => {
    const pool = createCodecPool({ threads: 1 });
    const pending = pool.encode({
      profile: PRODUCTION_PROFILE,
      plaintext: systemRandom(PRODUCTION_PROFILE.segmentSize),
      index: 0,
      last: true,
      key: null,
    });
    await pool.close();
    await expect(pending).rejects.toThrow(/exited/);
  });
});
