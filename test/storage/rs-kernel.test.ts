import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  gfInvert,
  gfMul,
  parityMatrix,
  referenceEncode,
  referenceReconstruct,
  rsEncode,
  rsReconstruct,
} from '../../src/storage/object/rs.ts';

// The SIMD kernel must be byte-identical to the reference (klauspost-compatible) library for every input.
describe('Reed-Solomon parity: SIMD kernel against the reference library', () => {
  it('property: identical parity for random data and shard sizes (multiples of 16)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 300 }),
        fc.integer({ min: 1, max: 8 }),
        fc.integer(),
        (blocks, parity, seed) => {
          const shard = blocks * 16;
          const a = new Uint8Array(shard * (4 + parity));
          let x = seed >>> 0;
          for (let i = 0; i < shard * 4; i++) {
            x = (Math.imul(x, 1103515245) + 12345) >>> 0;
            a[i] = x >>> 24;
          }
          const b = a.slice();
          rsEncode(a, 4, parity);
          referenceEncode(b, 4, parity);
          expect(Buffer.compare(a, b)).toBe(0);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('a shard spanning several stripes (32 KiB + 48 bytes) and a production-size shard agree', () => {
    for (const shard of [32 * 1024 + 48, 8 * 1024 * 1024]) {
      const a = new Uint8Array(shard * 12);
      for (let i = 0; i < shard * 4; i++) a[i] = (i * 131 + (i >>> 13)) & 0xff;
      const b = a.slice();
      rsEncode(a, 4, 8);
      referenceEncode(b, 4, 8);
      expect(Buffer.compare(a, b)).toBe(0);
    }
  });

  it('shapes the kernel does not handle (3 data shards, odd sizes) go to the reference library', () => {
    const a = new Uint8Array(7 * 12);
    a.fill(7, 0, 28);
    const b = a.slice();
    rsEncode(a, 4, 8);
    referenceEncode(b, 4, 8);
    expect(Buffer.compare(a, b)).toBe(0);
    const c = new Uint8Array(16 * 6).fill(3, 0, 48);
    const d = c.slice();
    rsEncode(c, 3, 3);
    referenceEncode(d, 3, 3);
    expect(Buffer.compare(c, d)).toBe(0);
  });

  it('gfMul is the field multiplication of 0x11d: commutative, 1 is neutral, every non-zero has an inverse', () => {
    for (let a = 0; a < 256; a++) {
      expect(gfMul(a, 1)).toBe(a);
      expect(gfMul(a, 0)).toBe(0);
      if (a > 0) expect([...Array(256).keys()].some((b) => gfMul(a, b) === 1)).toBe(true);
      for (let b = 0; b < 256; b += 17) expect(gfMul(a, b)).toBe(gfMul(b, a));
    }
    expect(gfMul(0x80, 2)).toBe(0x1d); // x^8 reduces by the polynomial
  });

  it('the parity matrix read from the reference library is klauspost’s: first parity row of 4+8', () => {
    const m = parityMatrix(4, 8);
    expect(m).toHaveLength(8);
    // Backblaze/klauspost systematic Vandermonde matrix, first parity row for 4 data shards.
    expect(m[0]).toEqual([27, 28, 18, 20]);
  });

  it('property: reconstruction through the kernel equals the reference library for any ≥ 4 survivors', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 64 }),
        fc.integer(),
        fc.shuffledSubarray([...Array(12).keys()], { minLength: 4, maxLength: 11 }),
        (blocks, seed, survivors) => {
          const shard = blocks * 16;
          const original = new Uint8Array(shard * 12);
          let x = seed >>> 0;
          for (let i = 0; i < shard * 4; i++) {
            x = (Math.imul(x, 1103515245) + 12345) >>> 0;
            original[i] = x >>> 24;
          }
          referenceEncode(original, 4, 8);
          const present = Array.from({ length: 12 }, (_, i) => survivors.includes(i));
          const damaged = original.slice();
          for (let i = 0; i < 12; i++) if (!present[i]) damaged.fill(0xee, i * shard, (i + 1) * shard);
          const viaReference = damaged.slice();
          rsReconstruct(damaged, 4, 8, present);
          referenceReconstruct(viaReference, 4, 8, present);
          expect(Buffer.compare(damaged.subarray(0, 4 * shard), original.subarray(0, 4 * shard))).toBe(0);
          expect(Buffer.compare(damaged.subarray(0, 4 * shard), viaReference.subarray(0, 4 * shard))).toBe(0);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('gfInvert: M · M⁻¹ = I for every 4-row choice of the 4+8 generator; a singular matrix gives null', () => {
    const p = parityMatrix(4, 8);
    const g = [...[0, 1, 2, 3].map((i) => [0, 1, 2, 3].map((j) => (i === j ? 1 : 0))), ...p];
    const mul = (a: number[][], b: number[][]) =>
      a.map((row) => b[0]!.map((_, c) => row.reduce((acc, v, k) => acc ^ gfMul(v, b[k]![c]!), 0)));
    let checked = 0;
    for (let a = 0; a < 12; a++)
      for (let b = a + 1; b < 12; b++)
        for (let c = b + 1; c < 12; c++)
          for (let d = c + 1; d < 12; d++) {
            const m = [a, b, c, d].map((r) => g[r]!);
            const inv = gfInvert(m);
            expect(inv).not.toBeNull();
            expect(mul(m, inv!)).toEqual([0, 1, 2, 3].map((i) => [0, 1, 2, 3].map((j) => (i === j ? 1 : 0))));
            checked++;
          }
    expect(checked).toBe(495);
    expect(
      gfInvert([
        [1, 2],
        [1, 2],
      ]),
    ).toBeNull();
  });

  it('the committed kernel is what scripts/gen-rs-kernel.ts generates', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [
      '--import',
      'tsx',
      'scripts/gen-rs-kernel.ts',
      '--check',
    ]);
    expect(stdout).toContain('up to date');
  });
});
