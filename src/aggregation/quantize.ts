import { AggregationError, type RandomBytes } from './errors.ts';

/**
 * Fixed-point quantization into Z_2^32 for secure aggregation. A value v is clipped to [−range, range], mapped
 * linearly onto [0, 2^bits − 1] and rounded stochastically (up with probability equal to the fractional part), so the
 * quantized value is an unbiased estimate of v. Masks live in Z_2^32 (Uint32Array), so the upload is exactly as large
 * as a float32 one; the sum of n quantized vectors cannot wrap as long as n · (2^bits − 1) < 2^32, which
 * `checkQuantization` enforces for the cohort size.
 */
export interface QuantizationParams {
  /** Values are clipped to [−range, range]. */
  readonly range: number;
  /** Levels per coordinate: 2^bits. */
  readonly bits: number;
}

/**
 * @throws QUANT_INVALID_PARAMETERS when range is not positive and finite, bits not in 1..31, or `clients` such
 *   vectors could overflow 32 bits when summed.
 */
export function checkQuantization(params: QuantizationParams, clients: number): QuantizationParams {
  if (!(Number.isFinite(params.range) && params.range > 0)) {
    throw new AggregationError(
      'QUANT_INVALID_PARAMETERS',
      `expected a positive finite range, got ${params.range}`,
    );
  }
  if (!Number.isInteger(params.bits) || params.bits < 1 || params.bits > 31) {
    throw new AggregationError('QUANT_INVALID_PARAMETERS', `expected bits in 1..31, got ${params.bits}`);
  }
  const top = 2 ** params.bits - 1;
  if (!Number.isInteger(clients) || clients < 1 || clients * top >= 2 ** 32) {
    const most = Math.floor((2 ** 32 - 1) / top);
    throw new AggregationError(
      'QUANT_INVALID_PARAMETERS',
      `${clients} clients × ${params.bits}-bit values can overflow 32 bits; at most ${most} clients, or use fewer bits`,
    );
  }
  return params;
}

/**
 * Quantizes `values` with stochastic rounding; `random` supplies 4 bytes per coordinate.
 * @throws QUANT_INVALID_PARAMETERS for bad parameters; non-finite values are refused as AGG_INVALID_INPUT.
 */
export function quantize(values: Float32Array, params: QuantizationParams, random: RandomBytes): Uint32Array {
  return quantizeInto(new Uint32Array(values.length), values, params, random);
}

/** Coordinates per draw of rounding noise: 256 KiB of noise at a time, not 4 bytes per coordinate all at once. */
const NOISE_CHUNK = 65_536;

/**
 * As quantize, into the first `values.length` words of `out` (returned), each value first clipped to ±`clip` and
 * multiplied by `scale` (defaults: no clip, 1). Nothing of the vector's size is allocated: a 100M-weight update is
 * quantized in place of the words it is stored as, with its noise drawn a chunk at a time.
 * @throws as quantize; AGG_INVALID_INPUT when `out` is shorter than `values`
 */
export function quantizeInto(
  out: Uint32Array,
  values: Float32Array,
  params: QuantizationParams,
  random: RandomBytes,
  transform: { readonly clip?: number; readonly scale?: number } = {},
): Uint32Array {
  checkQuantization(params, 1);
  if (out.length < values.length)
    throw new AggregationError(
      'AGG_INVALID_INPUT',
      `expected room for ${values.length} words, got ${out.length}`,
    );
  const { clip = Number.POSITIVE_INFINITY, scale: factor = 1 } = transform;
  const top = 2 ** params.bits - 1;
  const scale = top / (2 * params.range);
  for (let from = 0; from < values.length; from += NOISE_CHUNK) {
    const to = Math.min(values.length, from + NOISE_CHUNK);
    const noise = random(4 * (to - from));
    const u = new Uint32Array(noise.buffer, noise.byteOffset, to - from);
    for (let i = from; i < to; i++) {
      const v = factor * Math.min(clip, Math.max(-clip, values[i]!));
      if (!Number.isFinite(v)) {
        throw new AggregationError(
          'AGG_INVALID_INPUT',
          `expected finite values, got ${v} at coordinate ${i}`,
        );
      }
      const clipped = Math.min(params.range, Math.max(-params.range, v));
      const x = (clipped + params.range) * scale;
      const floor = Math.floor(x);
      // u/2^32 is uniform in [0, 1): round up with probability x − floor.
      out[i] = Math.min(top, floor + (u[i - from]! < (x - floor) * 4294967296 ? 1 : 0));
    }
  }
  return out;
}

/**
 * Turns the (unmasked) sum of `count` quantized vectors back into the sum of the original values, written into `into`
 * (a new vector by default). `into` may be a Float32Array over the sum's own bytes: each coordinate is read before it
 * is written, so a caller that needs the words no more decodes them in place.
 */
export function dequantizeSum(
  sum: Uint32Array,
  params: QuantizationParams,
  count: number,
  into?: Float32Array,
): Float32Array {
  checkQuantization(params, count);
  const step = (2 * params.range) / (2 ** params.bits - 1);
  const out = intoOf(into, sum.length);
  for (let i = 0; i < sum.length; i++) out[i] = sum[i]! * step - count * params.range;
  return out;
}

/** `into` when it has `length` coordinates, else a new vector of them. @throws AGG_INVALID_INPUT for another length */
export function intoOf(into: Float32Array | undefined, length: number): Float32Array {
  if (into === undefined) return new Float32Array(length);
  if (into.length !== length)
    throw new AggregationError(
      'AGG_INVALID_INPUT',
      `expected an output of ${length} coordinates, got ${into.length}`,
    );
  return into;
}

/** Adds `b` into `a` coordinate-wise in Z_2^32 (in place) and returns `a`. */
export function addInto(a: Uint32Array, b: Uint32Array): Uint32Array {
  if (a.length !== b.length) {
    throw new AggregationError(
      'AGG_INVALID_INPUT',
      `expected vectors of ${a.length} coordinates, got ${b.length}`,
    );
  }
  for (let i = 0; i < a.length; i++) a[i] = (a[i]! + b[i]!) >>> 0;
  return a;
}

/** Subtracts `b` from `a` coordinate-wise in Z_2^32 (in place) and returns `a`. */
export function subtractInto(a: Uint32Array, b: Uint32Array): Uint32Array {
  if (a.length !== b.length) {
    throw new AggregationError(
      'AGG_INVALID_INPUT',
      `expected vectors of ${a.length} coordinates, got ${b.length}`,
    );
  }
  for (let i = 0; i < a.length; i++) a[i] = (a[i]! - b[i]!) >>> 0;
  return a;
}
