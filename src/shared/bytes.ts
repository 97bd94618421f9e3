import { AilinkError } from './errors.ts';

/** Small byte helpers shared by every module. */

const HEX_RE = /^[0-9a-f]*$/;

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

/** Parses lowercase hex; `what` names the value in the error. */
export function fromHex(hex: string, what = 'value'): Uint8Array {
  if (hex.length % 2 !== 0 || !HEX_RE.test(hex)) {
    throw new TypeError(
      `${what}: expected lowercase hex of even length, got ${JSON.stringify(hex.slice(0, 80))}`,
    );
  }
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

/** The parts one after another, in a new array of their exact size (one copy, never a view of a shared pool). */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.compare(a, b) === 0;
}

export const MiB = 1024 * 1024;
export const KiB = 1024;

/** Whether this machine stores numbers little-endian (every platform Node runs on but s390x). */
export const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Refuses a big-endian machine. The file formats here convert (the helpers below), but secure aggregation does not:
 * it reads ChaCha20 keystream into native words and hashes native words into its signatures (src/aggregation may
 * import nothing of ours), so a big-endian participant's masks would not cancel with the others'. Refusing at start
 * is better than an aggregate of noise.
 * @throws UNSUPPORTED_PLATFORM
 */
export function requireLittleEndian(littleEndian = LITTLE_ENDIAN): void {
  if (!littleEndian)
    throw new AilinkError(
      'UNSUPPORTED_PLATFORM',
      'expected a little-endian machine, this one is big-endian: secure aggregation needs the same word order everywhere',
    );
}

/**
 * `count` 32-bit little-endian values from `bytes` at `at`, copied into a fresh array (so `bytes` may sit at any
 * offset). One memory copy on a little-endian machine: a megabyte-sized update or model read word by word through a
 * DataView cost milliseconds more (bench:audit).
 */
export function readLE32<T extends Uint32Array | Float32Array>(
  make: new (length: number) => T,
  bytes: Uint8Array,
  at: number,
  count: number,
): T {
  if (at < 0 || at + 4 * count > bytes.byteLength)
    throw new RangeError(`expected ${4 * count} bytes at ${at}, the input has ${bytes.byteLength}`);
  const out = new make(count);
  if (LITTLE_ENDIAN) {
    new Uint8Array(out.buffer).set(bytes.subarray(at, at + 4 * count));
    return out;
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset + at, 4 * count);
  if (out instanceof Float32Array) for (let i = 0; i < count; i++) out[i] = view.getFloat32(4 * i, true);
  else for (let i = 0; i < count; i++) out[i] = view.getUint32(4 * i, true);
  return out;
}

/**
 * `values` as little-endian bytes: a view of their own memory on a little-endian machine (no copy: the bytes change
 * with the values), else a converted copy.
 */
export function leBytes(values: Uint32Array | Float32Array): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const out = new Uint8Array(values.byteLength);
  writeLE32(out, 0, values);
  return out;
}

/**
 * `values` as read raw from little-endian bytes (a file read straight into their buffer), made native in place: nothing
 * to do on a little-endian machine. Returns `values`.
 */
export function fromLE32InPlace<T extends Uint32Array | Float32Array>(values: T): T {
  if (LITTLE_ENDIAN) return values;
  const view = new DataView(values.buffer, values.byteOffset, values.byteLength);
  const words = new Uint32Array(values.buffer, values.byteOffset, values.length);
  for (let i = 0; i < words.length; i++) words[i] = view.getUint32(4 * i, true);
  return values;
}

/** Bytes of values per chunk of `framedValueStream`. */
const FRAMED_CHUNK_BYTES = 4 * 1024 * 1024;

/**
 * MAGIC (4 ASCII bytes) ‖ u32 LE header length ‖ header ‖ the values as 32-bit little-endian, and the size of it all, as
 * chunks of at most 4 MiB after the header: on a little-endian machine each is a view of the values themselves, so a
 * vector of hundreds of megabytes is hashed or stored without a copy of it. The values must not change until the
 * chunks are consumed. (The framing of stored updates and models.)
 */
export function framedValueStream(
  magic: string,
  header: Uint8Array,
  values: Uint32Array | Float32Array,
): { size: number; chunks: Generator<Uint8Array> } {
  const head = new Uint8Array(8 + header.byteLength);
  head.set(new TextEncoder().encode(magic), 0);
  new DataView(head.buffer).setUint32(4, header.byteLength, true);
  head.set(header, 8);
  function* chunks(): Generator<Uint8Array> {
    yield head;
    const perChunk = FRAMED_CHUNK_BYTES / 4;
    for (let from = 0; from < values.length; from += perChunk)
      yield leBytes(values.subarray(from, Math.min(values.length, from + perChunk)));
  }
  return { size: head.byteLength + values.byteLength, chunks: chunks() };
}

/** Writes `values` into `out` at `at` as 32-bit little-endian values (the inverse of `readLE32`). */
export function writeLE32(out: Uint8Array, at: number, values: Uint32Array | Float32Array): void {
  if (at < 0 || at + values.byteLength > out.byteLength)
    throw new RangeError(
      `expected room for ${values.byteLength} bytes at ${at}, the output has ${out.byteLength}`,
    );
  if (LITTLE_ENDIAN) {
    out.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), at);
    return;
  }
  const view = new DataView(out.buffer, out.byteOffset + at, values.byteLength);
  if (values instanceof Float32Array)
    for (let i = 0; i < values.length; i++) view.setFloat32(4 * i, values[i]!, true);
  else for (let i = 0; i < values.length; i++) view.setUint32(4 * i, values[i]!, true);
}
