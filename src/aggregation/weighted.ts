import { AggregationError, type RandomBytes } from './errors.ts';
import { checkQuantization, dequantizeSum, type QuantizationParams, quantize } from './quantize.ts';

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
 * [quantize(w · clip(Δ)) ‖ w] as a Uint32Array of length d + 1.
 * @throws AGG_INVALID_INPUT for a weight that is not an integer in 1..maxWeight.
 */
export function encodeWeightedUpdate(
  update: Float32Array,
  weight: number,
  encoding: WeightedEncoding,
  random: RandomBytes,
): Uint32Array {
  if (!Number.isSafeInteger(weight) || weight < 1 || weight > encoding.maxWeight) {
    throw new AggregationError(
      'AGG_INVALID_INPUT',
      `expected an integer weight in 1..${encoding.maxWeight}, got ${weight}`,
    );
  }
  const range = encoding.quantization.range;
  const scaled = new Float32Array(update.length);
  for (let i = 0; i < update.length; i++) {
    const v = update[i]!;
    scaled[i] = weight * Math.min(range, Math.max(-range, v));
  }
  const out = new Uint32Array(update.length + 1);
  out.set(quantize(scaled, weightedRange(encoding), random));
  out[update.length] = weight;
  return out;
}

/** The unmasked sum of `count` encoded updates → Σ wᵢΔᵢ and Σ wᵢ. */
export function decodeWeightedSum(
  sum: Uint32Array,
  encoding: WeightedEncoding,
  count: number,
): { sum: Float32Array; totalWeight: number } {
  checkWeightedEncoding(encoding, count);
  if (sum.length < 1)
    throw new AggregationError('AGG_INVALID_INPUT', 'expected at least the weight word, got nothing');
  const totalWeight = sum[sum.length - 1]!;
  return { sum: dequantizeSum(sum.subarray(0, sum.length - 1), weightedRange(encoding), count), totalWeight };
}
