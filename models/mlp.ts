import type { ModelDefinition } from './index.ts';

/**
 * The "2NN" of McMahan et al. 2017: a multilayer perceptron with two hidden layers of 200 ReLU units and a linear
 * output layer (logits). The image is flattened first, so it takes the same 28×28×1 input as the CNN. 199,210
 * parameters.
 */
export const MLP: ModelDefinition = {
  name: 'mlp',
  layers: [
    { kind: 'flatten', name: 'flatten' },
    { kind: 'dense', name: 'dense1', units: 200, activation: 'relu' },
    { kind: 'dense', name: 'dense2', units: 200, activation: 'relu' },
    { kind: 'dense', name: 'logits', units: 10, activation: 'linear' },
  ],
};
