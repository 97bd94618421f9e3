import { createHash } from 'node:crypto';
import { AilinkError } from '../shared/errors.ts';

/**
 * Labelled examples as training and evaluation take them, whatever they were read from (IDX, image folders, CSV):
 * `count` examples of `shape` each, row-major, and a class index per example. Pixels stay uint8 (a quarter of the
 * memory of float32) and are scaled to [0, 1] when a batch is built; tabular features arrive already transformed.
 */
export interface Examples {
  readonly count: number;
  /** One example's shape, without the batch dimension: [28, 28, 1], [h, w, 3], [features]. */
  readonly shape: readonly number[];
  /** count × ∏shape values: uint8 pixels (0..255) or float32 features. */
  readonly x: Uint8Array | Float32Array;
  /** The class of each example, an index into the schema's classes. */
  readonly y: Uint16Array;
}

export const exampleSize = (shape: readonly number[]): number => shape.reduce((a, d) => a * d, 1);

/**
 * SHA-256 over the examples' shape, values and labels: what a participant declares it trained on. Two organisations
 * with the same data get the same fingerprint; anyone who holds the data can recompute it, no one learns it from it.
 */
export function examplesFingerprint(data: Examples): string {
  const h = createHash('sha256');
  const kind = data.x instanceof Uint8Array ? 'u8' : 'f32';
  h.update(`ailink/examples/v1\n${data.count}\n${data.shape.join('x')}\n${kind}\n`);
  const values = data.x.subarray(0, data.count * exampleSize(data.shape));
  h.update(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  const labels = data.y.subarray(0, data.count);
  h.update(new Uint8Array(labels.buffer, labels.byteOffset, labels.byteLength));
  return h.digest('hex');
}

/** The chosen examples, copied into a set of their own. */
export function selectExamples(data: Examples, indices: ArrayLike<number>): Examples {
  const size = exampleSize(data.shape);
  const x =
    data.x instanceof Uint8Array
      ? new Uint8Array(indices.length * size)
      : new Float32Array(indices.length * size);
  const y = new Uint16Array(indices.length);
  for (let to = 0; to < indices.length; to++) {
    const from = indices[to]!;
    x.set(data.x.subarray(from * size, (from + 1) * size), to * size);
    y[to] = data.y[from]!;
  }
  return { count: indices.length, shape: data.shape, x, y };
}

/**
 * Several sets of examples of one shape as one set, in order.
 * @throws INVALID_INPUT when the shapes or value kinds differ
 */
export function concatExamples(parts: readonly Examples[]): Examples {
  const first = parts[0];
  if (first === undefined) throw new AilinkError('INVALID_INPUT', 'expected at least one set of examples');
  const bytes = first.x instanceof Uint8Array;
  for (const p of parts)
    if (p.shape.join('x') !== first.shape.join('x') || p.x instanceof Uint8Array !== bytes)
      throw new AilinkError(
        'INVALID_INPUT',
        `cannot join examples of [${p.shape}] with examples of [${first.shape}]`,
      );
  const size = exampleSize(first.shape);
  const count = parts.reduce((a, p) => a + p.count, 0);
  const x = bytes ? new Uint8Array(count * size) : new Float32Array(count * size);
  const y = new Uint16Array(count);
  let at = 0;
  for (const p of parts) {
    x.set(p.x.subarray(0, p.count * size), at * size);
    y.set(p.y.subarray(0, p.count), at);
    at += p.count;
  }
  return { count, shape: first.shape, x, y };
}
