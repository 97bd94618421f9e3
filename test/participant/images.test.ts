import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { readImageFolder } from '../../src/participant/images.ts';
import type { ImageSchema } from '../../src/task/data-schema.ts';

const root = mkdtempSync(join(tmpdir(), 'ailink-images-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let folders = 0;
/** A fresh folder with the given files (path → bytes). */
function folder(files: Record<string, Uint8Array | string>): string {
  const dir = join(root, `set${folders++}`);
  for (const [path, bytes] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), bytes);
  }
  mkdirSync(dir, { recursive: true });
  return dir;
}

type Rgb = [number, number, number];
/** A width × height image whose pixel (x, y) is colour(x, y), RGB or RGBA. */
function raw(width: number, height: number, colour: (x: number, y: number) => number[]) {
  const channels = colour(0, 0).length as 1 | 3 | 4;
  const data = Buffer.alloc(width * height * channels);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) data.set(colour(x, y), (y * width + x) * channels);
  return sharp(data, { raw: { width, height, channels } });
}
const png = (w: number, h: number, c: (x: number, y: number) => number[]) => raw(w, h, c).png().toBuffer();
const jpeg = (w: number, h: number, c: (x: number, y: number) => number[]) =>
  raw(w, h, c).jpeg({ quality: 100 }).toBuffer();
const solid = (rgb: number[]) => () => rgb;

const schema = (inputShape: [number, number, 1 | 3], classes = ['cat', 'dog', 'bird']): ImageSchema => ({
  kind: 'images',
  inputShape,
  classes,
  holdout: 0,
});
const pixelsOf = (x: Uint8Array | Float32Array, i: number, size: number) => [
  ...x.subarray(i * size, (i + 1) * size),
];
const near = (got: number[], want: number[], tolerance: number) =>
  got.every((v, i) => Math.abs(v - want[i % want.length]!) <= tolerance);

describe('readImageFolder', () => {
  it('reads PNG and JPEG by class folder, in sorted order, resized to the shape; a class may lack a folder', async () => {
    const red: Rgb = [255, 0, 0];
    const blue: Rgb = [0, 0, 255];
    const dir = folder({
      'dog/b.png': await png(10, 6, solid(blue)),
      'dog/a.JPG': await jpeg(3, 5, solid(red)),
      'cat/z.jpeg': await jpeg(16, 16, solid([0, 255, 0])),
      'cat/.DS_Store': 'junk',
      '.DS_Store': 'junk',
      'cat/y.png': await png(2, 2, solid([10, 20, 30, 0])), // transparent: alpha is dropped, colour kept
    });
    const ex = await readImageFolder(dir, schema([4, 4, 3]));
    expect(ex.count).toBe(4);
    expect(ex.shape).toEqual([4, 4, 3]);
    expect(ex.x).toBeInstanceOf(Uint8Array);
    expect(ex.x.length).toBe(4 * 48);
    // cat/y.png, cat/z.jpeg, dog/a.JPG, dog/b.png
    expect([...ex.y]).toEqual([0, 0, 1, 1]);
    expect(pixelsOf(ex.x, 0, 48)).toEqual(Array(16).fill([10, 20, 30]).flat());
    expect(near(pixelsOf(ex.x, 1, 48), [0, 255, 0], 3)).toBe(true);
    expect(near(pixelsOf(ex.x, 2, 48), red, 3)).toBe(true);
    expect(pixelsOf(ex.x, 3, 48)).toEqual(Array(16).fill(blue).flat());
  });

  it('one channel: ITU-R 601 luma of RGB (as PIL), grey inputs kept; three channels from a grey PNG', async () => {
    const colours = [
      [255, 255, 255],
      [0, 0, 0],
      [255, 0, 0],
      [0, 255, 0],
      [0, 0, 255],
      [100, 150, 200],
    ];
    const files: Record<string, Uint8Array> = {};
    for (const [i, c] of colours.entries()) files[`cat/${i}.png`] = await png(5, 3, solid(c));
    files['dog/grey.png'] = await png(4, 4, solid([77]));
    const dir = folder(files);
    const grey = await readImageFolder(dir, schema([2, 3, 1]));
    expect(grey.shape).toEqual([2, 3, 1]);
    const luma = ([r, g, b]: number[]) => (r! * 19595 + g! * 38470 + b! * 7471 + 0x8000) >>> 16;
    for (const [i, c] of colours.entries()) expect(pixelsOf(grey.x, i, 6)).toEqual(Array(6).fill(luma(c)));
    expect(luma([255, 0, 0])).toBe(76);
    expect(pixelsOf(grey.x, 6, 6)).toEqual(Array(6).fill(77));
    const rgb = await readImageFolder(dir, schema([2, 2, 3]));
    expect(pixelsOf(rgb.x, 6, 12)).toEqual(Array(12).fill(77));
  });

  it('resizes by stretching: a left-dark, right-light image stays so; 16-bit PNGs become 8-bit', async () => {
    const dir = folder({
      'cat/halves.png': await png(40, 20, (x) => (x < 20 ? [0, 0, 0] : [255, 255, 255])),
      'dog/deep.png': await sharp(Buffer.alloc(4 * 4 * 3, 0xff), {
        raw: { width: 4, height: 4, channels: 3 },
      })
        .toColourspace('rgb16')
        .png()
        .toBuffer(),
    });
    expect((await sharp(join(dir, 'dog/deep.png')).metadata()).depth).toBe('ushort');
    const ex = await readImageFolder(dir, schema([3, 4, 1]));
    const img = pixelsOf(ex.x, 0, 12);
    for (let row = 0; row < 3; row++) {
      expect(img[row * 4]).toBeLessThan(20);
      expect(img[row * 4 + 3]).toBeGreaterThan(235);
    }
    expect(pixelsOf(ex.x, 1, 12)).toEqual(Array(12).fill(255));
  });

  it('turns a JPEG upright by its EXIF orientation', async () => {
    // Stored 8 wide × 4 high, left half red; orientation 6 shows it turned 90° clockwise: 4 wide × 8 high, red on top.
    const stored = await raw(8, 4, (x) => (x < 4 ? [255, 0, 0] : [0, 0, 255]))
      .jpeg({ quality: 100 })
      .withMetadata({ orientation: 6 })
      .toBuffer();
    expect((await sharp(stored).metadata()).orientation).toBe(6);
    const ex = await readImageFolder(folder({ 'cat/turned.jpg': stored }), schema([8, 4, 3]));
    const img = pixelsOf(ex.x, 0, 96);
    expect(near(img.slice(0, 12), [255, 0, 0], 40)).toBe(true);
    expect(near(img.slice(84), [0, 0, 255], 40)).toBe(true);
  });

  it('refuses a folder that is not a class, a non-image file, a stray file or nested folder with DATA_SCHEMA_MISMATCH', async () => {
    const ok = await png(2, 2, solid([1, 2, 3]));
    const cases: [Record<string, Uint8Array | string>, RegExp][] = [
      [{ 'cat/a.png': ok, 'fish/b.png': ok }, /fish: the folder "fish" is not one of the schema's 3 classes/],
      [
        { 'cat/a.png': ok, 'cat/notes.txt': 'hello' },
        /cat\/notes\.txt: expected a \.png, \.jpg or \.jpeg image/,
      ],
      [{ 'cat/a.gif': ok }, /cat\/a\.gif: expected a \.png/],
      [{ 'cat/a.png': ok, 'labels.csv': 'x' }, /labels\.csv: expected only class folders/],
      [{ 'cat/inner/a.png': ok }, /cat\/inner: expected image files in the class folder/],
    ];
    for (const [files, message] of cases) {
      await expect(readImageFolder(folder(files), schema([2, 2, 3]))).rejects.toMatchObject({
        code: 'DATA_SCHEMA_MISMATCH',
        message,
      });
    }
  });

  it('refuses what does not decode with DATA_DECODE_FAILED naming the file', async () => {
    const good = await png(8, 8, (x, y) => [x * 30, y * 30, 0]);
    const cases: Record<string, Uint8Array | string> = {
      'garbage.png': 'not an image at all',
      'truncated.png': good.subarray(0, good.length - 30),
      'gif-inside.png': await raw(2, 2, solid([1, 2, 3]))
        .gif()
        .toBuffer(),
      'svg-inside.jpg': '<svg xmlns="http://www.w3.org/2000/svg" width="2" height="2"/>',
      'empty.jpg': '',
    };
    for (const [name, bytes] of Object.entries(cases)) {
      const dir = folder({ [`dog/${name}`]: bytes, 'cat/ok.png': good });
      await expect(readImageFolder(dir, schema([2, 2, 3]))).rejects.toMatchObject({
        code: 'DATA_DECODE_FAILED',
        message: expect.stringContaining(join(dir, 'dog', name)),
      });
    }
  });

  it('refuses an image over maxPixels (a decompression bomb: read from the header) and examples over maxBytes', async () => {
    // 8000 × 8000 = 64 M pixels of black compress to some 60 KB; the default bound of 50 M refuses it undecoded.
    const bomb = await sharp({ create: { width: 8000, height: 8000, channels: 3, background: '#000' } })
      .png({ compressionLevel: 9 })
      .toBuffer();
    expect(bomb.length).toBeLessThan(1_000_000);
    const dir = folder({ 'cat/bomb.png': bomb });
    await expect(readImageFolder(dir, schema([28, 28, 1]))).rejects.toMatchObject({
      code: 'DATA_TOO_LARGE',
      message: expect.stringContaining(`${join(dir, 'cat', 'bomb.png')}: 8000×8000 = 64000000 pixels`),
    });
    const small = folder({ 'cat/a.png': await png(10, 10, solid([0, 0, 0])) });
    await expect(readImageFolder(small, schema([2, 2, 1]), { maxPixels: 99 })).rejects.toMatchObject({
      code: 'DATA_TOO_LARGE',
    });
    expect((await readImageFolder(small, schema([2, 2, 1]), { maxPixels: 100 })).count).toBe(1);
    await expect(readImageFolder(small, schema([2, 2, 1]), { maxBytes: 3 })).rejects.toMatchObject({
      code: 'DATA_TOO_LARGE',
    });
  });

  it('is deterministic, reads an empty folder as no examples, and stops when signalled', async () => {
    const files: Record<string, Uint8Array> = {};
    for (let i = 0; i < 12; i++)
      files[`${i % 2 ? 'cat' : 'dog'}/${i}.png`] = await png(3, 3, solid([i * 20, 0, 0]));
    const dir = folder(files);
    const a = await readImageFolder(dir, schema([3, 3, 3]), { concurrency: 5 });
    const b = await readImageFolder(dir, schema([3, 3, 3]), { concurrency: 1 });
    expect(a).toEqual(b);
    // Sorted by code unit: 1, 11, 3, 5, 7, 9 under cat.
    expect(a.x[0]).toBe(20);
    expect(a.x[27]).toBe(220);
    expect(await readImageFolder(folder({}), schema([3, 3, 3]))).toEqual({
      count: 0,
      shape: [3, 3, 3],
      x: new Uint8Array(0),
      y: new Uint16Array(0),
    });
    const controller = new AbortController();
    controller.abort();
    await expect(
      readImageFolder(dir, schema([3, 3, 3]), { signal: controller.signal }),
    ).rejects.toMatchObject({
      code: 'ABORTED',
    });
    await expect(readImageFolder(join(root, 'missing'), schema([3, 3, 3]))).rejects.toMatchObject({
      code: 'INVALID_INPUT',
    });
    expect(readFileSync(join(dir, 'cat', '1.png')).length).toBeGreaterThan(0);
  });
});
