import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeIdxUint8, loadIdxDataset } from '../../src/participant/idx.ts';

const dir = mkdtempSync(join(tmpdir(), 'ailink-idx-bounds-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('loadIdxDataset bounds', () => {
  const labels = join(dir, 'labels.idx');
  writeFileSync(labels, encodeIdxUint8([3], new Uint8Array([1, 2, 3])));

  it('refuses a gzip bomb (200 MB of zeros in a few hundred KB) with DATA_TOO_LARGE naming the file', async () => {
    const bomb = gzipSync(Buffer.alloc(200 * 2 ** 20), { level: 9 });
    expect(bomb.length).toBeLessThan(2 ** 20);
    const path = join(dir, 'bomb-images.gz');
    writeFileSync(path, bomb);
    const started = performance.now();
    await expect(loadIdxDataset(path, labels, { maxBytes: 16 * 2 ** 20 })).rejects.toMatchObject({
      code: 'DATA_TOO_LARGE',
      message: `${path}: inflates to more than the ${16 * 2 ** 20}-byte bound for an IDX file (raise maxBytes if the file is genuine)`,
      details: { file: path, maxBytes: 16 * 2 ** 20 },
    });
    // Inflating stops at the bound rather than producing 200 MB first.
    expect(performance.now() - started).toBeLessThan(5_000);
  });

  it('refuses a plain file over the bound before reading it, and a corrupt gzip with DATA_DECODE_FAILED', async () => {
    const images = join(dir, 'images.idx');
    writeFileSync(images, encodeIdxUint8([3, 4, 4], new Uint8Array(48)));
    await expect(loadIdxDataset(images, labels, { maxBytes: 50 })).rejects.toMatchObject({
      code: 'DATA_TOO_LARGE',
      message: expect.stringContaining(`${images}: holds more than the 50-byte bound`),
    });
    expect((await loadIdxDataset(images, labels, { maxBytes: 64 })).count).toBe(3);
    const gz = join(dir, 'images.idx.gz');
    writeFileSync(gz, gzipSync(encodeIdxUint8([3, 4, 4], new Uint8Array(48))));
    await expect(loadIdxDataset(gz, labels, { maxBytes: 63 })).rejects.toMatchObject({
      code: 'DATA_TOO_LARGE',
    });
    expect((await loadIdxDataset(gz, labels, { maxBytes: 64 })).count).toBe(3);
    const corrupt = join(dir, 'corrupt.gz');
    writeFileSync(corrupt, Buffer.from([0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5, 6, 7]));
    await expect(loadIdxDataset(corrupt, labels)).rejects.toMatchObject({
      code: 'DATA_DECODE_FAILED',
      message: expect.stringContaining(`${corrupt}: not valid gzip`),
    });
  });
});
