import { createHash } from 'node:crypto';
import { z } from 'zod';
import { concatBytes, leBytes, readLE32 } from '../shared/bytes.ts';
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
export const modelBytesMaxBytes = (parameters: number): number => 8 + 4096 + 4 * parameters;

/** The largest manifest or preprocessing object a reader takes whole (a manifest lists each survivor's update). */
export const MAX_RECORD_OBJECT_BYTES = 16 * 1024 * 1024;

/** Bytes of weights per chunk of `modelBytesStream`. */
const MODEL_CHUNK_BYTES = 4 * 1024 * 1024;

/**
 * The bytes of `encodeModelBytes` and their size, as chunks of at most 4 MiB after the header: on a little-endian
 * machine each is a view of the weights themselves, so a model is hashed and stored without a copy of its size (400 MB
 * at 100M weights). The weights must not change until the chunks are consumed.
 */
export function modelBytesStream(
  model: string,
  weights: Float32Array,
): { size: number; chunks: Generator<Uint8Array> } {
  const header = new TextEncoder().encode(JSON.stringify({ model, parameters: weights.length }));
  const head = new Uint8Array(8 + header.byteLength);
  head.set(new TextEncoder().encode(MAGIC), 0);
  new DataView(head.buffer).setUint32(4, header.byteLength, true);
  head.set(header, 8);
  function* chunks(): Generator<Uint8Array> {
    yield head;
    const perChunk = MODEL_CHUNK_BYTES / 4;
    for (let from = 0; from < weights.length; from += perChunk)
      yield leBytes(weights.subarray(from, Math.min(weights.length, from + perChunk)));
  }
  return { size: head.byteLength + weights.byteLength, chunks: chunks() };
}

export const encodeModelBytes = (model: string, weights: Float32Array): Uint8Array =>
  concatBytes([...modelBytesStream(model, weights).chunks]);

/** The SHA-256 (hex) of the model's bytes, hashed chunk by chunk (`modelBytesStream`): never whole in memory. */
export function modelHashOf(model: string, weights: Float32Array): string {
  const hash = createHash('sha256');
  for (const chunk of modelBytesStream(model, weights).chunks) hash.update(chunk);
  return hash.digest('hex');
}

/** @throws MODEL_UNVERIFIED when the bytes are not a stored model (or not of the expected model) */
export function decodeModelBytes(bytes: Uint8Array, expected?: { model: string; parameters: number }) {
  const bad = (why: string) => new AilinkError('MODEL_UNVERIFIED', `model bytes: ${why}`);
  if (bytes.byteLength < 8 || new TextDecoder().decode(bytes.subarray(0, 4)) !== MAGIC)
    throw bad('expected the AILM magic');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = view.getUint32(4, true);
  if (8 + length > bytes.byteLength) throw bad(`header length ${length} out of range`);
  let header: z.infer<typeof HeaderSchema>;
  try {
    header = HeaderSchema.parse(JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length))));
  } catch {
    throw bad('malformed header');
  }
  if (expected && (header.model !== expected.model || header.parameters !== expected.parameters))
    throw bad(
      `expected ${expected.model} with ${expected.parameters} weights, got ${header.model} with ${header.parameters}`,
    );
  const base = 8 + length;
  if (bytes.byteLength !== base + 4 * header.parameters)
    throw bad('length does not match the declared parameters');
  return { model: header.model, weights: readLE32(Float32Array, bytes, base, header.parameters) };
}
