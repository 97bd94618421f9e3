import type { ModelDefinition } from './index.ts';

/**
 * The CNN of McMahan et al. 2017 ("Communication-Efficient Learning of Deep Networks from Decentralized Data", §3):
 * two 5×5 convolutions (32 and 64 channels, each followed by 2×2 max pooling), a fully connected layer of 512 units
 * with ReLU, and a linear output layer (logits; the softmax lives in the loss). On 28×28×1 input: 1,663,370 parameters.
 */
export const CNN: ModelDefinition = {
  name: 'cnn',
  layers: [
    { kind: 'conv2d', name: 'conv1', filters: 32, kernelSize: 5, activation: 'relu' },
    { kind: 'maxPool2d', name: 'pool1', poolSize: 2 },
    { kind: 'conv2d', name: 'conv2', filters: 64, kernelSize: 5, activation: 'relu' },
    { kind: 'maxPool2d', name: 'pool2', poolSize: 2 },
    { kind: 'flatten', name: 'flatten' },
    { kind: 'dense', name: 'dense1', units: 512, activation: 'relu' },
    { kind: 'dense', name: 'logits', units: 10, activation: 'linear' },
  ],
};
