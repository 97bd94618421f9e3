import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeIdxUint8, loadIdxDataset, parseIdx } from '../../src/participant/idx.ts';
import {
  partitionDirichlet,
  partitionIid,
  partitionShards,
  seededRng,
} from '../../src/participant/partition.ts';
import { expectCode } from '../storage/helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'ailink-data-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('IDX', () => {
  it('test vectors: uint8 and big-endian int16', () => {
    expect(parseIdx(new Uint8Array([0, 0, 0x08, 1, 0, 0, 0, 3, 7, 8, 9]))).toEqual({
      type: 'uint8',
      dims: [3],
      data: new Uint8Array([7, 8, 9]),
    });
    const int16 = parseIdx(new Uint8Array([0, 0, 0x0b, 2, 0, 0, 0, 1, 0, 0, 0, 2, 0xff, 0xfe, 0x01, 0x00]));
    expect(int16.dims).toEqual([1, 2]);
    expect([...int16.data]).toEqual([-2, 256]);
  });

  it('round-trips any uint8 array', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 3 }),
        fc.nat(255),
        (dims, fill) => {
          const data = new Uint8Array(dims.reduce((a, d) => a * d, 1)).fill(fill);
          expect(parseIdx(encodeIdxUint8(dims, data))).toEqual({ type: 'uint8', dims, data });
        },
      ),
      { seed: 7, numRuns: 50 },
    );
  });

  it('refuses a wrong magic, an unknown type, a truncated or padded body with INVALID_INPUT', () => {
    const good = encodeIdxUint8([2, 2], new Uint8Array([1, 2, 3, 4]));
    expectCode(() => parseIdx(new Uint8Array([0x1f, 0x8b, 8, 0])), 'INVALID_INPUT');
    expectCode(() => parseIdx(new Uint8Array([0, 0, 0x42, 1, 0, 0, 0, 0])), 'INVALID_INPUT');
    expectCode(() => parseIdx(new Uint8Array([0, 0, 0x08, 0])), 'INVALID_INPUT');
    expectCode(() => parseIdx(good.subarray(0, good.length - 1)), 'INVALID_INPUT');
    expectCode(() => parseIdx(new Uint8Array([...good, 0])), 'INVALID_INPUT');
    expectCode(() => parseIdx(good.subarray(0, 6)), 'INVALID_INPUT');
    expectCode(() => encodeIdxUint8([3], new Uint8Array(2)), 'INVALID_INPUT');
  });

  it('loads images and labels, gzipped or not, and refuses a pair that does not match', async () => {
    const images = new Uint8Array(3 * 2 * 2).map((_, i) => i);
    writeFileSync(join(dir, 'img.idx.gz'), gzipSync(encodeIdxUint8([3, 2, 2], images)));
    writeFileSync(join(dir, 'lbl.idx'), encodeIdxUint8([3], new Uint8Array([4, 0, 9])));
    writeFileSync(join(dir, 'lbl2.idx'), encodeIdxUint8([2], new Uint8Array([4, 0])));
    const ds = await loadIdxDataset(join(dir, 'img.idx.gz'), join(dir, 'lbl.idx'));
    expect(ds).toMatchObject({ count: 3, rows: 2, cols: 2 });
    expect(ds.images).toEqual(images);
    expect([...ds.labels]).toEqual([4, 0, 9]);
    await expect(loadIdxDataset(join(dir, 'img.idx.gz'), join(dir, 'lbl2.idx'))).rejects.toMatchObject({
      code: 'INVALID_INPUT',
      message: expect.stringMatching(/3 images but 2 labels/),
    });
    await expect(loadIdxDataset(join(dir, 'lbl.idx'), join(dir, 'lbl.idx'))).rejects.toMatchObject({
      code: 'INVALID_INPUT',
    });
    await expect(loadIdxDataset(join(dir, 'missing'), join(dir, 'lbl.idx'))).rejects.toMatchObject({
      code: 'INVALID_INPUT',
    });
  });
});

/** 10 balanced classes, as in Fashion-MNIST. */
const balanced = (perClass: number) => Uint8Array.from({ length: 10 * perClass }, (_, i) => i % 10);
const classesOf = (labels: ArrayLike<number>, part: number[]) => new Set(part.map((i) => labels[i]!));
const coversOnce = (parts: number[][], count: number) =>
  expect(parts.flat().sort((a, b) => a - b)).toEqual([...Array(count).keys()]);

describe('partitions', () => {
  it('the seeded generator is deterministic, in [0, 1), and roughly uniform', () => {
    const a = seededRng('x');
    const b = seededRng('x');
    const draws = Array.from({ length: 10_000 }, () => a());
    expect(draws).toEqual(Array.from({ length: 10_000 }, () => b()));
    expect(draws.every((d) => d >= 0 && d < 1)).toBe(true);
    expect(Math.abs(draws.reduce((s, d) => s + d, 0) / draws.length - 0.5)).toBeLessThan(0.02);
    expect(seededRng('y')()).not.toBe(seededRng('x')());
  });

  it('IID: every index once, sizes within one, the same for the same seed', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 300 }),
        fc.integer({ min: 1, max: 12 }),
        fc.string(),
        (n, k, seed) => {
          fc.pre(k <= n);
          const parts = partitionIid(n, k, seededRng(seed));
          coversOnce(parts, n);
          const sizes = parts.map((p) => p.length);
          expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
          expect(partitionIid(n, k, seededRng(seed))).toEqual(parts);
        },
      ),
      { seed: 11, numRuns: 60 },
    );
  });

  it('Dirichlet: every index exactly once, for any labels, clients and α', () => {
    fc.assert(
      fc.property(
        fc.array(fc.nat(9), { minLength: 20, maxLength: 400 }),
        fc.integer({ min: 1, max: 8 }),
        fc.constantFrom(0.1, 0.5, 1, 10, 1000),
        (labels, k, alpha) => {
          const parts = partitionDirichlet(labels, k, alpha, seededRng(`${k}/${alpha}`), 0);
          coversOnce(parts, labels.length);
        },
      ),
      { seed: 12, numRuns: 60 },
    );
  });

  it('Dirichlet: α = 0.1 gives most clients few classes; α = 1000 gives every client nearly the global mix', () => {
    const labels = balanced(600);
    const skewed = partitionDirichlet(labels, 10, 0.1, seededRng('skew'));
    const dominated = skewed.filter((p) => {
      const counts = new Map<number, number>();
      for (const i of p) counts.set(labels[i]!, (counts.get(labels[i]!) ?? 0) + 1);
      return Math.max(...counts.values()) / p.length > 0.5;
    });
    expect(dominated.length).toBeGreaterThanOrEqual(6);
    const flat = partitionDirichlet(labels, 10, 1000, seededRng('flat'));
    for (const p of flat) {
      expect(classesOf(labels, p).size).toBe(10);
      for (let k = 0; k < 10; k++) {
        const share = p.filter((i) => labels[i] === k).length / p.length;
        expect(Math.abs(share - 0.1)).toBeLessThan(0.03);
      }
    }
  });

  it('Dirichlet: the minimum size is enforced, and bad α or client counts are refused', () => {
    const labels = balanced(50);
    for (const p of partitionDirichlet(labels, 10, 0.5, seededRng('min'), 10))
      expect(p.length).toBeGreaterThanOrEqual(10);
    expectCode(() => partitionDirichlet(labels, 10, 0, seededRng('a')), 'INVALID_INPUT');
    expectCode(() => partitionDirichlet(labels, 10, Number.NaN, seededRng('a')), 'INVALID_INPUT');
    expectCode(() => partitionDirichlet(labels, 0, 1, seededRng('a')), 'INVALID_INPUT');
    expectCode(() => partitionDirichlet(labels, 10, 0.01, seededRng('a'), 50), 'INVALID_INPUT');
  });

  it('shards: every index once; with 2 shards per client each client sees at most 2 classes', () => {
    const labels = balanced(100);
    const parts = partitionShards(labels, 10, 2, seededRng('shards'));
    coversOnce(parts, labels.length);
    for (const p of parts) {
      expect(p.length).toBe(100);
      expect(classesOf(labels, p).size).toBeLessThanOrEqual(2);
    }
    expectCode(() => partitionShards(labels, 10, 0, seededRng('s')), 'INVALID_INPUT');
    expectCode(() => partitionShards(labels, 10, 1000, seededRng('s')), 'INVALID_INPUT');
  });
});
