/**
 * Participant: an organisation's side of a task — data (IDX, Fashion-MNIST sources, partitions), local training
 * (TensorFlow.js backends, worker pool) and the runtime that joins a task and answers every round.
 */

export {
  type DataSource,
  type DataSpec,
  FASHION_MNIST_DIR,
  imageExamples,
  type LoadedData,
  loadDataSpec,
  loadSource,
  type Partition,
  parseDataSpec,
  partitionIndices,
  SUBSET_DIR,
  sourceDir,
} from './dataset.ts';
export { type Examples, exampleSize, examplesFingerprint, selectExamples } from './examples.ts';
export { encodeIdxUint8, type IdxArray, type ImageDataset, loadIdxDataset, parseIdx } from './idx.ts';
export { partitionDirichlet, partitionIid, partitionShards, seededRng } from './partition.ts';
export {
  type CoordinatorLink,
  createParticipant,
  type Participant,
  type ParticipantDeps,
  type ParticipantEvent,
  type ParticipantOptions,
} from './runtime.ts';
export { BACKENDS, type BackendName, installWasmGradients, loadTf } from './tf.ts';
export {
  DEFAULT_BATCH_SIZE,
  DEFAULT_EVAL_BATCH_SIZE,
  DEFAULT_LEARNING_RATE,
  type EvaluationResult,
  evaluate,
  type LossName,
  type OptimizerOptions,
  type TrainingData,
  type TrainOptions,
  type TrainResult,
  trainLocal,
} from './train.ts';
export {
  createTrainingPool,
  type EvaluateJob,
  type ModelRef,
  type PoolEvaluationResult,
  type PoolTrainResult,
  type TrainingPool,
  type TrainJob,
} from './train-pool.ts';
