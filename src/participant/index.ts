/**
 * Participant: data loading and partitioning so far (the IDX format of Fashion-MNIST; IID, Dirichlet(α) and label-shard
 * splits of one dataset among simulated organisations). Training and the participant runtime come with the federated
 * rounds issue.
 */

export {
  type DataSource,
  type DataSpec,
  DEBIAN_FASHION_MNIST_DIR,
  type LoadedData,
  loadDataSpec,
  loadSource,
  type Partition,
  parseDataSpec,
  partitionIndices,
  SUBSET_DIR,
  sourceDir,
  subsetOf,
} from './dataset.ts';
export { encodeIdxUint8, type IdxArray, type ImageDataset, loadIdxDataset, parseIdx } from './idx.ts';
export { partitionDirichlet, partitionIid, partitionShards, seededRng } from './partition.ts';
export { BACKENDS, type BackendName, installWasmGradients, loadTf } from './tf.ts';
export {
  DEFAULT_BATCH_SIZE,
  DEFAULT_EVAL_BATCH_SIZE,
  DEFAULT_LEARNING_RATE,
  type EvaluationResult,
  evaluate,
  type TrainingData,
  type TrainOptions,
  type TrainResult,
  trainLocal,
} from './train.ts';
export {
  createTrainingPool,
  type EvaluateJob,
  type PoolEvaluationResult,
  type PoolTrainResult,
  type TrainingPool,
  type TrainJob,
} from './train-pool.ts';
