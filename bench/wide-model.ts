/**
 * The model of bench:large and bench:train-memory: 64 inputs → Dense(H) → Dense(H) → 2, so H² + 68·H + 2 weights,
 * almost all of them in the second layer's kernel (H = 10,000: 100,680,002 weights, a 403 MB update).
 */

export const FEATURES = 64;

export const parametersOf = (hidden: number) => hidden * hidden + (FEATURES + 4) * hidden + 2;

/** The Keras topology (a model.json's `modelTopology`) of hidden width `hidden`. */
export function wideTopology(hidden: number): Record<string, unknown> {
  const dense = (name: string, units: number, activation: string, extra = {}) => ({
    class_name: 'Dense',
    config: { name, units, activation, ...extra },
  });
  return {
    class_name: 'Sequential',
    config: {
      name: `wide-${hidden}`,
      layers: [
        dense('hidden-1', hidden, 'relu', { batch_input_shape: [null, FEATURES] }),
        dense('hidden-2', hidden, 'relu'),
        dense('label', 2, 'softmax'),
      ],
    },
  };
}
