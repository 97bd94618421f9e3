import { describe, expect, it } from 'vitest';
import { systemRandom } from '../../src/shared/clock.ts';
import {
  createCodecPool,
  fragmentSizeOf,
  PRODUCTION_PROFILE,
  TEST_PROFILE,
} from '../../src/storage/index.ts';

describe('codec pool (real worker threads)', () => {
  it('seals and codes on a worker, and a decode on a worker gives the original bytes back', async () => {
    const pool = createCodecPool({ threads: 2 });
    try {
      const key = systemRandom(32);
      const plaintext = systemRandom(50_000);
      const copy = plaintext.slice();
      const encoded = await pool.encode({ profile: TEST_PROFILE, plaintext, index: 0, last: true, key });
      expect(plaintext.byteLength).toBe(0); // its buffer moved to the worker
      const size = fragmentSizeOf(TEST_PROFILE);
      // Decode from parity only: columns 4..7.
      const fragments = Array.from({ length: 12 }, (_, c) =>
        c >= 4 && c < 8 ? encoded.shards.slice(c * size, (c + 1) * size) : null,
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
      const size = fragmentSizeOf(TEST_PROFILE);
      const fragments = Array.from({ length: 12 }, (_, c) =>
        c < 4 ? encoded.shards.slice(c * size, (c + 1) * size) : null,
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
