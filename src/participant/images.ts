import type { Dirent } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import type { Sharp, default as sharpDefault } from 'sharp';
import { AilinkError } from '../shared/errors.ts';
import type { ImageSchema } from '../task/data-schema.ts';
import { type Examples, exampleSize } from './examples.ts';

/**
 * Image folders as labelled datasets are commonly laid out (torchvision's ImageFolder, Keras'
 * image_dataset_from_directory): one sub-folder per class, named as in the schema's classes, holding PNG or JPEG
 * files. Every image is decoded by sharp (libvips), turned upright by its EXIF orientation, stripped of alpha (keeping
 * the colour a transparent pixel stores, as PIL's convert('RGB') does), stretched to the schema's height × width
 * (libvips' default Lanczos-3 kernel) and, for one channel, turned grey with ITU-R 601 luma,
 * L = (19595 R + 38470 G + 7471 B + 2^15) >> 16 — PIL's convert('L'), which torchvision's Grayscale uses — rather
 * than libvips' own linear-light grey, so that grey pixels match what Python pipelines feed their models.
 */

export interface ImageFolderOptions {
  /** Images with more pixels (width × height, read from the header before decoding) are refused; default 50 M. */
  readonly maxPixels?: number;
  /** The decoded examples together (count × height × width × channels bytes) may not exceed this; default 2 GiB. */
  readonly maxBytes?: number;
  /** Images decoded at once (libvips uses its own threads for each); default 4. */
  readonly concurrency?: number;
  readonly signal?: AbortSignal;
}

export const DEFAULT_MAX_PIXELS = 50_000_000;
export const DEFAULT_MAX_IMAGE_BYTES = 2 ** 31;
const IMAGE_EXTENSIONS: ReadonlySet<string> = new Set(['.png', '.jpg', '.jpeg']);

type SharpFactory = typeof sharpDefault;
let sharpModule: Promise<SharpFactory> | undefined;

/** sharp is a native module: load it on first use, so that importing this file never fails where it cannot load. */
function loadSharp(): Promise<SharpFactory> {
  sharpModule ??= import('sharp').then(
    (m) => m.default,
    (cause: unknown) => {
      sharpModule = undefined;
      throw new AilinkError(
        'DATA_DECODE_FAILED',
        `cannot load the image decoder (sharp): ${(cause as Error).message}`,
        { cause },
      );
    },
  );
  return sharpModule;
}

const mismatch = (message: string, details: Record<string, unknown>) =>
  new AilinkError('DATA_SCHEMA_MISMATCH', message, { details });

/** Entries of a folder without hidden ones (.DS_Store, ._resource forks), by code unit so that every locale agrees. */
async function listVisible(dir: string): Promise<Dirent[]> {
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (cause) {
    throw new AilinkError('INVALID_INPUT', `cannot read the folder ${dir}: ${(cause as Error).message}`, {
      cause,
    });
  }
  return entries
    .filter((e) => !e.name.startsWith('.'))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Follows a symbolic link to what it names. */
async function kindOf(dir: string, entry: Dirent): Promise<'file' | 'folder' | 'other'> {
  if (entry.isSymbolicLink()) {
    const info = await stat(join(dir, entry.name)).catch(() => undefined);
    return info?.isFile() ? 'file' : info?.isDirectory() ? 'folder' : 'other';
  }
  return entry.isFile() ? 'file' : entry.isDirectory() ? 'folder' : 'other';
}

/**
 * Reads an image folder into examples: uint8 pixels of `schema.inputShape`, labels the index of each sub-folder's
 * name in `schema.classes` (a class without a folder is fine). Order is by class folder, then file name.
 * @throws DATA_SCHEMA_MISMATCH for a sub-folder that is not a class, a file that is not .png/.jpg/.jpeg, or anything
 *   else where a class folder or an image should be; DATA_DECODE_FAILED for an image that does not decode;
 *   DATA_TOO_LARGE for an image over `maxPixels` or examples over `maxBytes`; INVALID_INPUT for an unreadable
 *   folder; ABORTED when signalled
 */
export async function readImageFolder(
  dir: string,
  schema: ImageSchema,
  options: ImageFolderOptions = {},
): Promise<Examples> {
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_IMAGE_BYTES;
  const concurrency = Math.max(1, Math.floor(options.concurrency ?? 4));
  const classIndex = new Map(schema.classes.map((k, i) => [k, i]));

  const files: { path: string; label: number }[] = [];
  for (const entry of await listVisible(dir)) {
    const path = join(dir, entry.name);
    const label = classIndex.get(entry.name);
    if ((await kindOf(dir, entry)) !== 'folder') {
      throw mismatch(`${path}: expected only class folders in ${dir}, got a file or other entry`, {
        file: path,
      });
    }
    if (label === undefined) {
      throw mismatch(
        `${path}: the folder "${entry.name}" is not one of the schema's ${schema.classes.length} classes`,
        { file: path, folder: entry.name },
      );
    }
    for (const image of await listVisible(path)) {
      const file = join(path, image.name);
      if ((await kindOf(path, image)) !== 'file') {
        throw mismatch(`${file}: expected image files in the class folder, got a folder or other entry`, {
          file,
        });
      }
      if (!IMAGE_EXTENSIONS.has(extname(image.name).toLowerCase())) {
        throw mismatch(`${file}: expected a .png, .jpg or .jpeg image, got "${extname(image.name)}"`, {
          file,
        });
      }
      files.push({ path: file, label });
    }
  }

  const [height, width, channels] = schema.inputShape;
  const size = exampleSize(schema.inputShape);
  if (files.length * size > maxBytes) {
    throw new AilinkError(
      'DATA_TOO_LARGE',
      `${dir}: ${files.length} images of ${height}×${width}×${channels} need ${files.length * size} bytes, more than the bound of ${maxBytes} (raise maxBytes or use fewer images)`,
      { details: { file: dir, maxBytes } },
    );
  }
  const x = new Uint8Array(files.length * size);
  const y = new Uint16Array(files.length);
  const sharp = await loadSharp();

  let next = 0;
  const worker = async () => {
    while (next < files.length) {
      const i = next++;
      if (options.signal?.aborted) throw new AilinkError('ABORTED', `reading ${dir} was cancelled`);
      const { path, label } = files[i]!;
      const pixels = await decodeImage(sharp, path, height, width, channels, maxPixels);
      x.set(pixels, i * size);
      y[i] = label;
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, files.length) }, worker));
  return { count: files.length, shape: [...schema.inputShape], x, y };
}

/** One image as height × width × channels bytes. */
async function decodeImage(
  sharp: SharpFactory,
  path: string,
  height: number,
  width: number,
  channels: 1 | 3,
  maxPixels: number,
): Promise<Uint8Array> {
  const failed = (cause: unknown, what = 'cannot decode it') =>
    new AilinkError(
      'DATA_DECODE_FAILED',
      `${path}: ${what}${cause instanceof Error ? ` (${cause.message})` : ''}`,
      { cause, details: { file: path } },
    );
  let meta: Awaited<ReturnType<Sharp['metadata']>>;
  try {
    // The header only: the pixel count is checked before anything is decoded.
    meta = await sharp(path, { limitInputPixels: false }).metadata();
  } catch (cause) {
    throw failed(cause);
  }
  // The extension promised PNG or JPEG; anything else libvips can read (SVG, TIFF, HEIF…) is not let through.
  if (meta.format !== 'png' && meta.format !== 'jpeg') {
    throw failed(undefined, `expected PNG or JPEG content, got ${meta.format ?? 'an unknown format'}`);
  }
  const pixels = (meta.width ?? 0) * (meta.height ?? 0);
  if (pixels > maxPixels) {
    throw new AilinkError(
      'DATA_TOO_LARGE',
      `${path}: ${meta.width}×${meta.height} = ${pixels} pixels, more than the bound of ${maxPixels} (shrink the image or raise maxPixels)`,
      { details: { file: path, maxPixels } },
    );
  }
  let rgb: Buffer;
  try {
    // limitInputPixels again: the header read above and the decode are two reads of a file that could change between.
    const decoded = sharp(path, { limitInputPixels: maxPixels, autoOrient: true })
      .toColourspace('srgb')
      .removeAlpha();
    if (meta.hasAlpha) {
      // libvips premultiplies by alpha when it resizes, which would blacken transparent pixels whatever colour they
      // store; dropping alpha means keeping that colour (as PIL's convert('RGB')), so drop it at full size first.
      const full = await decoded.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
      rgb = await sharp(full.data, { raw: { width: full.info.width, height: full.info.height, channels: 3 } })
        .resize(width, height, { fit: 'fill' })
        .raw({ depth: 'uchar' })
        .toBuffer();
    } else {
      rgb = await decoded.resize(width, height, { fit: 'fill' }).raw({ depth: 'uchar' }).toBuffer();
    }
  } catch (cause) {
    throw failed(cause);
  }
  if (rgb.byteLength !== width * height * 3) {
    throw failed(undefined, `decoded to ${rgb.byteLength} bytes, expected ${width}×${height}×3`);
  }
  if (channels === 3) return rgb;
  const grey = new Uint8Array(width * height);
  for (let p = 0; p < grey.length; p++) {
    grey[p] = (rgb[3 * p]! * 19595 + rgb[3 * p + 1]! * 38470 + rgb[3 * p + 2]! * 7471 + 0x8000) >>> 16;
  }
  return grey;
}
