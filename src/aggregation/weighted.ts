import { AggregationError, type RandomBytes } from './errors.ts';
import { checkQuantization, dequantizeSum, type QuantizationParams, quantizeInto } from './quantize.ts';

/**
 * What a client feeds into secure aggregation so that the weighted average needs no plaintext weights: its update,
 * clipped to ±range and multiplied by its weight (example count), quantized; then the weight itself as one more
 * word. The unmasked sum is then Σ wᵢΔᵢ and Σ wᵢ, exactly the `WeightedSum` the strategies take.
 */
export interface WeightedEncoding {
  /** Per-coordinate clipping range of the update, and the bits per coordinate of the weighted value. */
  readonly quantization: QuantizationParams;
  /** Largest weight a client may claim (the task declares it); bounds the quantization range. */
  readonly maxWeight: number;
}

/** @throws QUANT_INVALID_PARAMETERS when `clients` such vectors could overflow 32 bits. */
export function checkWeightedEncoding(encoding: WeightedEncoding, clients: number): WeightedEncoding {
  checkQuantization(encoding.quantization, clients);
  if (
    !Number.isSafeInteger(encoding.maxWeight) ||
    encoding.maxWeight < 1 ||
    clients * encoding.maxWeight >= 2 ** 32
  ) {
    throw new AggregationError(
      'QUANT_INVALID_PARAMETERS',
      `expected a positive integer maxWeight with clients × maxWeight < 2^32, got ${encoding.maxWeight} for ${clients} clients`,
    );
  }
  return encoding;
}

const weightedRange = (e: WeightedEncoding): QuantizationParams => ({
  range: e.quantization.range * e.maxWeight,
  bits: e.quantization.bits,
});

/**
 * [quantize(w · clip(Δ)) ‖ w] as a Uint32Array of length d + 1: a new one, or the first d + 1 words of `out` (a
 * larger vector the update is the head of), with nothing else of the update's size allocated.
 * @throws AGG_INVALID_INPUT for a weight that is not an integer in 1..maxWeight, or an `out` shorter than d + 1.
 */
export function encodeWeightedUpdate(
  update: Float32Array,
  weight: number,
  encoding: WeightedEncoding,
  random: RandomBytes,
  out: Uint32Array = new Uint32Array(update.length + 1),
): Uint32Array {
  if (!Number.isSafeInteger(weight) || weight < 1 || weight > encoding.maxWeight) {
    throw new AggregationError(
      'AGG_INVALID_INPUT',
      `expected an integer weight in 1..${encoding.maxWeight}, got ${weight}`,
    );
  }
  if (out.length < update.length + 1)
    throw new AggregationError(
      'AGG_INVALID_INPUT',
      `expected room for ${update.length + 1} words, got ${out.length}`,
    );
  quantizeInto(out, update, weightedRange(encoding), random, {
    clip: encoding.quantization.range,
    scale: weight,
  });
  out[update.length] = weight;
  return out;
}

/**
 * The unmasked sum of `count` encoded updates → Σ wᵢΔᵢ and Σ wᵢ. Σ wᵢΔᵢ is written into `into` when given, which may
 * be a Float32Array over the update's own words (`dequantizeSum`).
 */
export function decodeWeightedSum(
  sum: Uint32Array,
  encoding: WeightedEncoding,
  count: number,
  into?: Float32Array,
): { sum: Float32Array; totalWeight: number } {
  checkWeightedEncoding(encoding, count);
  if (sum.length < 1)
    throw new AggregationError('AGG_INVALID_INPUT', 'expected at least the weight word, got nothing');
  const totalWeight = sum[sum.length - 1]!;
  return {
    sum: dequantizeSum(sum.subarray(0, sum.length - 1), weightedRange(encoding), count, into),
    totalWeight,
  };
}
