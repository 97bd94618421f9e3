import { createHash } from 'node:crypto';
import { z } from 'zod';
import { concatBytes, framedValueStream, fromLE32InPlace, readLE32 } from '../shared/bytes.ts';
import { AilinkError } from '../shared/errors.ts';

/**
 * A global model as it is stored and anchored: 'AILM' ‖ u32 header length ‖ header JSON {model, parameters} ‖ the
 * weights as float32 little-endian, in the model's canonical order (models/). Its SHA-256 is the model hash the
 * manifests and the task spec name.
 */

const MAGIC = 'AILM';
const HeaderSchema = z
  .object({ model: z.string().max(64), parameters: z.number().int().positive() })
  .strict();

/** The most bytes a model of `parameters` weights takes (its header names a model of ≤ 128 characters): a read bound. */
export const modelBytesMaxBytes = (parameters: number): number => 8 + MAX_HEADER_BYTES + 4 * parameters;

/** The largest manifest or preprocessing object a reader takes whole (a manifest lists each survivor's update). */
export const MAX_RECORD_OBJECT_BYTES = 16 * 1024 * 1024;

/**
 * The bytes of `encodeModelBytes` and their size, as chunks of at most 4 MiB after the header that view the weights
 * (`framedValueStream`): a model is hashed and stored without a copy of its size (400 MB at 100M weights). The weights
 * must not change until the chunks are consumed.
 */
export const modelBytesStream = (model: string, weights: Float32Array) =>
  framedValueStream(
    MAGIC,
    new TextEncoder().encode(JSON.stringify({ model, parameters: weights.length })),
    weights,
  );

export const encodeModelBytes = (model: string, weights: Float32Array): Uint8Array =>
  concatBytes([...modelBytesStream(model, weights).chunks]);

/** The SHA-256 (hex) of the model's bytes, hashed chunk by chunk (`modelBytesStream`): never whole in memory. */
export function modelHashOf(model: string, weights: Float32Array): string {
  const hash = createHash('sha256');
  for (const chunk of modelBytesStream(model, weights).chunks) hash.update(chunk);
  return hash.digest('hex');
}

/** The longest header a stored model carries: a model name of ≤ 128 characters and a count. */
const MAX_HEADER_BYTES = 4096;

const unverified = (why: string) => new AilinkError('MODEL_UNVERIFIED', `model bytes: ${why}`);

/** A stored model's frame and header (the bytes may end there); `base` is where its weights start. */
function readModelHeader(bytes: Uint8Array, expected?: { model: string; parameters: number }) {
  if (bytes.byteLength < 8 || new TextDecoder().decode(bytes.subarray(0, 4)) !== MAGIC)
    throw unverified('expected the AILM magic');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = view.getUint32(4, true);
  if (8 + length > bytes.byteLength) throw unverified(`header length ${length} out of range`);
  let header: z.infer<typeof HeaderSchema>;
  try {
    header = HeaderSchema.parse(JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length))));
  } catch {
    throw unverified('malformed header');
  }
  if (expected && (header.model !== expected.model || header.parameters !== expected.parameters))
    throw unverified(
      `expected ${expected.model} with ${expected.parameters} weights, got ${header.model} with ${header.parameters}`,
    );
  return { ...header, base: 8 + length };
}

/** @throws MODEL_UNVERIFIED when the bytes are not a stored model (or not of the expected model) */
export function decodeModelBytes(bytes: Uint8Array, expected?: { model: string; parameters: number }) {
  const { model, parameters, base } = readModelHeader(bytes, expected);
  if (bytes.byteLength !== base + 4 * parameters)
    throw unverified('length does not match the declared parameters');
  return { model, weights: readLE32(Float32Array, bytes, base, parameters) };
}

/**
 * `decodeModelBytes` of a stream, checked against the hash the chain gives, with the weights written straight into
 * their vector as the chunks come: one vector of the model's size, never the object whole beside it and its decoding
 * (3 × the model before: 1.2 GB at 100M weights, in each participant).
 * @throws MODEL_UNVERIFIED when the bytes are not a stored model of `expected`, or do not hash to `hash`
 */
export async function readModelStream(
  chunks: AsyncIterable<Uint8Array>,
  expected: { model: string; parameters: number },
  hash: string,
): Promise<Float32Array> {
  const digest = createHash('sha256');
  const weights = new Float32Array(expected.parameters);
  const into = new Uint8Array(weights.buffer);
  // The frame and header, gathered until they are whole (they may straddle chunks), then the weights' bytes.
  let head: Uint8Array = new Uint8Array(0);
  let base = -1;
  let filled = 0;
  for await (const chunk of chunks) {
    digest.update(chunk);
    let rest = chunk;
    if (base < 0) {
      const taken = head.byteLength;
      head = concatBytes([head, chunk.subarray(0, 8 + MAX_HEADER_BYTES - taken)]);
      if (head.byteLength < 8) continue;
      const length = new DataView(head.buffer, head.byteOffset).getUint32(4, true);
      if (length > MAX_HEADER_BYTES) throw unverified(`header length ${length} out of range`);
      if (head.byteLength < 8 + length) continue;
      base = readModelHeader(head.subarray(0, 8 + length), expected).base;
      rest = chunk.subarray(base - taken);
    }
    if (filled + rest.byteLength > into.byteLength)
      throw unverified('more bytes than the declared parameters');
    into.set(rest, filled);
    filled += rest.byteLength;
  }
  if (base < 0) readModelHeader(head, expected); // throws: the stream ended inside the frame or header
  if (filled !== into.byteLength) throw unverified('length does not match the declared parameters');
  if (digest.digest('hex') !== hash) throw unverified(`they do not hash to ${hash.slice(0, 16)}…`);
  return fromLE32InPlace(weights);
}
