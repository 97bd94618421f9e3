import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  FASHION_MNIST_DIR,
  loadDataSpec,
  loadSource,
  parseDataSpec,
  partitionIndices,
  SUBSET_DIR,
  sourceDir,
} from '../../src/participant/dataset.ts';
import { type Examples, examplesFingerprint } from '../../src/participant/examples.ts';
import { hasCode } from '../../src/shared/errors.ts';

describe('data specs', () => {
  it('parses every source and partition', () => {
    expect(parseDataSpec('fashion-mnist')).toEqual({
      source: { kind: 'fashion-mnist' },
      partition: { kind: 'all' },
      seed: 'ailink',
    });
    expect(parseDataSpec('fashion-mnist-small:iid:2/5@s')).toEqual({
      source: { kind: 'fashion-mnist-small' },
      partition: { kind: 'iid', index: 2, clients: 5 },
      seed: 's',
    });
    expect(parseDataSpec('fashion-mnist:dirichlet:0.5:3/10@demo').partition).toEqual({
      kind: 'dirichlet',
      alpha: 0.5,
      index: 3,
      clients: 10,
    });
    expect(parseDataSpec('idx:/data/a:b').source).toEqual({ kind: 'idx', dir: '/data/a:b' });
    expect(parseDataSpec('idx:/data/a:b:shards:2:0/4').partition).toEqual({
      kind: 'shards',
      perClient: 2,
      index: 0,
      clients: 4,
    });
  });

  it.each([
    ['mnist', 'unknown source'],
    ['fashion-mnist:iid:5/5', '0 ≤ i < n'],
    ['fashion-mnist:iid:1/0', '0 ≤ i < n'],
    ['fashion-mnist:dirichlet:-1:0/2', 'α > 0'],
    ['fashion-mnist:dirichlet:abc:0/2', 'α > 0'],
    ['fashion-mnist:shards:0:0/2', 'shards per client'],
    ['fashion-mnist:lda:0/2', 'unknown partition'],
    ['fashion-mnist@', 'empty seed'],
    ['idx:', 'directory'],
  ])('refuses %s with a message naming the problem', (spec, why) => {
    let error: unknown;
    try {
      parseDataSpec(spec);
    } catch (e) {
      error = e;
    }
    expect(hasCode(error, 'INVALID_INPUT')).toBe(true);
    expect((error as Error).message).toContain(why);
  });
});

describe('loading', () => {
  it('the shipped subset is balanced: 600 train and 100 test images per class', async () => {
    const data = await loadSource({ kind: 'fashion-mnist-small' });
    expect(data.dir).toBe(SUBSET_DIR);
    expect([data.train.count, data.test.count]).toEqual([6000, 1000]);
    for (const [split, per] of [
      [data.train, 600],
      [data.test, 100],
    ] as const) {
      const counts = new Array(10).fill(0);
      for (const l of split.y) counts[l]++;
      expect(counts).toEqual(new Array(10).fill(per));
    }
  });

  it('fashion-mnist is the full set shipped in the repo, on any machine: 60,000 + 10,000 images', async () => {
    expect(sourceDir({ kind: 'fashion-mnist' })).toBe(
      fileURLToPath(new URL('../../models/data/fashion-mnist', import.meta.url)),
    );
    const data = await loadSource({ kind: 'fashion-mnist' });
    expect(data.dir).toBe(FASHION_MNIST_DIR);
    expect([data.train.count, data.test.count]).toEqual([60_000, 10_000]);
  });

  it('the shipped full set is the files its README lists (not a Git LFS pointer or a truncated copy)', () => {
    const listed = [
      ...readFileSync(join(FASHION_MNIST_DIR, 'README.md'), 'utf8').matchAll(
        /^\| `([a-z0-9-]+\.gz)` \| [\d,]+ \| `([0-9a-f]{64})` \|$/gm,
      ),
    ];
    expect(listed.map((m) => m[1]).sort()).toEqual([
      't10k-images-idx3-ubyte.gz',
      't10k-labels-idx1-ubyte.gz',
      'train-images-idx3-ubyte.gz',
      'train-labels-idx1-ubyte.gz',
    ]);
    for (const [, file, sha256] of listed)
      expect(
        createHash('sha256')
          .update(readFileSync(join(FASHION_MNIST_DIR, file!)))
          .digest('hex'),
      ).toBe(sha256);
  });

  it('the partitions of one seed cover the training set exactly once, and the test set is never split', async () => {
    const specs = Array.from({ length: 4 }, (_, i) =>
      parseDataSpec(`fashion-mnist-small:dirichlet:0.5:${i}/4@t`),
    );
    const all = await loadSource({ kind: 'fashion-mnist-small' });
    const seen = specs.flatMap((s) => partitionIndices(all.train.y, s.partition, s.seed));
    expect(seen.length).toBe(all.train.count);
    expect(new Set(seen).size).toBe(all.train.count);
    const mine = await loadDataSpec(specs[1]!);
    expect(mine.test.count).toBe(1000);
    expect(mine.train.count).toBe(partitionIndices(all.train.y, specs[1]!.partition, 't').length);
    // Another seed gives another split.
    expect(partitionIndices(all.train.y, specs[1]!.partition, 'other')).not.toEqual(
      partitionIndices(all.train.y, specs[1]!.partition, 't'),
    );
  });

  it('an idx directory without the files is refused clearly', async () => {
    await expect(loadSource({ kind: 'idx', dir: '/nonexistent' })).rejects.toThrow(
      /expected train-images-idx3-ubyte/,
    );
  });
});

describe('dataset fingerprints', () => {
  const data = (labels: number[]): Examples => ({
    count: labels.length,
    shape: [2, 2, 1],
    x: Uint8Array.from({ length: labels.length * 4 }, (_, i) => i),
    y: Uint16Array.from(labels),
  });

  it('is a stable SHA-256 of shape, values and labels (test vector), and any change shows', () => {
    expect(examplesFingerprint(data([1, 2]))).toBe(
      createHash('sha256')
        .update('ailink/examples/v1\n2\n2x2x1\nu8\n')
        .update(Uint8Array.from([0, 1, 2, 3, 4, 5, 6, 7]))
        .update(Uint8Array.from([1, 0, 2, 0])) // uint16 little-endian
        .digest('hex'),
    );
    expect(examplesFingerprint(data([1, 2]))).toBe(examplesFingerprint(data([1, 2])));
    expect(examplesFingerprint(data([1, 3]))).not.toBe(examplesFingerprint(data([1, 2])));
    const flipped = data([1, 2]);
    flipped.x[5] = 99;
    expect(examplesFingerprint(flipped)).not.toBe(examplesFingerprint(data([1, 2])));
    // The same numbers as float32 features are other data.
    const floats = { ...data([1, 2]), x: Float32Array.from(data([1, 2]).x) };
    expect(examplesFingerprint(floats)).not.toBe(examplesFingerprint(data([1, 2])));
  });
});
