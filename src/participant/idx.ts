import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import { AilinkError } from '../shared/errors.ts';

const gunzipAsync = promisify(gunzip);

/**
 * The IDX format of MNIST and Fashion-MNIST: two zero bytes, a type byte, the number of dimensions, each dimension
 * as a big-endian u32, then the values in row-major order (multi-byte values big-endian).
 */

const TYPES = {
  8: { name: 'uint8', bytes: 1 },
  9: { name: 'int8', bytes: 1 },
  11: { name: 'int16', bytes: 2 },
  12: { name: 'int32', bytes: 4 },
  13: { name: 'float32', bytes: 4 },
  14: { name: 'float64', bytes: 8 },
} as const;
type TypeCode = keyof typeof TYPES;

export interface IdxArray {
  readonly type: (typeof TYPES)[TypeCode]['name'];
  readonly dims: readonly number[];
  /** The values; uint8 data is a view of the input, other types are decoded copies. */
  readonly data: Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;
}

const bad = (what: string) => new AilinkError('INVALID_INPUT', `IDX: ${what}`);

/** @throws INVALID_INPUT naming what is wrong (magic, type, truncation, trailing bytes) */
export function parseIdx(bytes: Uint8Array): IdxArray {
  if (bytes.byteLength < 4) throw bad(`expected a 4-byte header, got ${bytes.byteLength} bytes`);
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    throw bad(
      `expected the magic 00 00, got ${bytes[0]?.toString(16)} ${bytes[1]?.toString(16)} (a gzip file must be unpacked first)`,
    );
  }
  const code = bytes[2]! as TypeCode;
  const type = TYPES[code];
  if (type === undefined) throw bad(`unknown value type 0x${bytes[2]!.toString(16)}`);
  const rank = bytes[3]!;
  if (rank === 0) throw bad('expected at least one dimension');
  const headerBytes = 4 + 4 * rank;
  if (bytes.byteLength < headerBytes)
    throw bad(`the header announces ${rank} dimensions, the file ends first`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims = Array.from({ length: rank }, (_, i) => view.getUint32(4 + 4 * i, false));
  const count = dims.reduce((a, d) => a * d, 1);
  const expected = headerBytes + count * type.bytes;
  if (bytes.byteLength !== expected) {
    throw bad(
      `dimensions ${dims.join('×')} of ${type.name} need ${expected} bytes, the file has ${bytes.byteLength}`,
    );
  }
  const body = bytes.subarray(headerBytes);
  if (type.name === 'uint8') return { type: type.name, dims, data: body };
  if (type.name === 'int8')
    return { type: type.name, dims, data: new Int8Array(body.buffer, body.byteOffset, count) };
  const read = {
    int16: (i: number) => view.getInt16(headerBytes + 2 * i, false),
    int32: (i: number) => view.getInt32(headerBytes + 4 * i, false),
    float32: (i: number) => view.getFloat32(headerBytes + 4 * i, false),
    float64: (i: number) => view.getFloat64(headerBytes + 8 * i, false),
  }[type.name];
  const data = new { int16: Int16Array, int32: Int32Array, float32: Float32Array, float64: Float64Array }[
    type.name
  ](count);
  for (let i = 0; i < count; i++) data[i] = read(i);
  return { type: type.name, dims, data };
}

/** Encodes an array as IDX (for test vectors and for writing subsets). Only uint8 is needed so far. */
export function encodeIdxUint8(dims: readonly number[], data: Uint8Array): Uint8Array {
  const count = dims.reduce((a, d) => a * d, 1);
  if (count !== data.byteLength) {
    throw new AilinkError(
      'INVALID_INPUT',
      `IDX: dimensions ${dims.join('×')} need ${count} values, got ${data.byteLength}`,
    );
  }
  const out = new Uint8Array(4 + 4 * dims.length + count);
  const view = new DataView(out.buffer);
  out.set([0, 0, 0x08, dims.length]);
  for (const [i, d] of dims.entries()) view.setUint32(4 + 4 * i, d, false);
  out.set(data, 4 + 4 * dims.length);
  return out;
}

/** Images (n × rows × cols, uint8) and their labels (n, uint8), as Fashion-MNIST ships them. */
export interface ImageDataset {
  readonly count: number;
  readonly rows: number;
  readonly cols: number;
  readonly images: Uint8Array;
  readonly labels: Uint8Array;
}

/**
 * SHA-256 over the dataset's shape, images and labels: what a participant declares it trained on. Two organisations
 * with the same bytes get the same fingerprint; anyone who holds the data can recompute it, no one learns it from it.
 */
export function datasetFingerprint(data: ImageDataset): string {
  const h = createHash('sha256');
  h.update(`ailink/dataset/v1\n${data.count}\n${data.rows}\n${data.cols}\n`);
  h.update(data.images.subarray(0, data.count * data.rows * data.cols));
  h.update(data.labels.subarray(0, data.count));
  return h.digest('hex');
}

/** The default bound on an IDX file, before or after gunzip: some 20 times the full Fashion-MNIST training images. */
export const DEFAULT_MAX_IDX_BYTES = 2 ** 30;

/**
 * Reads an image file and a label file (plain or .gz). A gzip file is inflated with zlib's output bound, so that a
 * few kilobytes that inflate to gigabytes (a gzip bomb) are refused rather than exhausting memory.
 * @throws INVALID_INPUT when they do not belong together or cannot be read; DATA_TOO_LARGE when a file, plain or
 *   inflated, passes `maxBytes` (default 1 GiB); DATA_DECODE_FAILED for a corrupt gzip file
 */
export async function loadIdxDataset(
  imagesPath: string,
  labelsPath: string,
  options: { maxBytes?: number } = {},
): Promise<ImageDataset> {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_IDX_BYTES;
  const tooLarge = (path: string, what: string) =>
    new AilinkError(
      'DATA_TOO_LARGE',
      `${path}: ${what} more than the ${maxBytes}-byte bound for an IDX file (raise maxBytes if the file is genuine)`,
      { details: { file: path, maxBytes } },
    );
  const read = async (path: string) => {
    let bytes: Uint8Array;
    try {
      // Checked before reading: readFile would otherwise take a file of any size into memory.
      if ((await stat(path)).size > maxBytes) throw tooLarge(path, 'holds');
      bytes = new Uint8Array(await readFile(path));
    } catch (cause) {
      if (cause instanceof AilinkError) throw cause;
      throw new AilinkError('INVALID_INPUT', `cannot read ${path}: ${(cause as Error).message}`, { cause });
    }
    // gzip's magic: 1f 8b.
    if (bytes[0] !== 0x1f || bytes[1] !== 0x8b) return bytes;
    try {
      return new Uint8Array(await gunzipAsync(bytes, { maxOutputLength: maxBytes }));
    } catch (cause) {
      // zlib stops inflating at maxOutputLength and reports ERR_BUFFER_TOO_LARGE.
      if ((cause as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') throw tooLarge(path, 'inflates to');
      throw new AilinkError('DATA_DECODE_FAILED', `${path}: not valid gzip (${(cause as Error).message})`, {
        cause,
        details: { file: path },
      });
    }
  };
  const [images, labels] = [parseIdx(await read(imagesPath)), parseIdx(await read(labelsPath))];
  if (images.type !== 'uint8' || images.dims.length !== 3) {
    throw bad(
      `${imagesPath}: expected uint8 images n×rows×cols, got ${images.type} ${images.dims.join('×')}`,
    );
  }
  if (labels.type !== 'uint8' || labels.dims.length !== 1) {
    throw bad(`${labelsPath}: expected uint8 labels n, got ${labels.type} ${labels.dims.join('×')}`);
  }
  if (images.dims[0] !== labels.dims[0]) {
    throw bad(`${images.dims[0]} images but ${labels.dims[0]} labels`);
  }
  return {
    count: images.dims[0]!,
    rows: images.dims[1]!,
    cols: images.dims[2]!,
    images: images.data as Uint8Array,
    labels: labels.data as Uint8Array,
  };
}
