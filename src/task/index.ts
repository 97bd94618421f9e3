/**
 * Tasks: the formats a coordinator, its participants and auditors agree on — the task spec (its digest is on chain),
 * the round protocol's messages, stored updates and models, and the round manifest (anchored on chain).
 */
export {
  type CategoricalColumn,
  type Column,
  checkDataSchema,
  classesOf,
  type DataSchema,
  DataSchemaSchema,
  featureShape,
  type ImageSchema,
  type NumericColumn,
  type TabularSchema,
} from './data-schema.ts';
export {
  decodeEvaluationSum,
  EVALUATION_WORDS,
  type EvaluationCounts,
  type EvaluationSummary,
  encodeEvaluation,
} from './evaluation.ts';
export { evaluatesClientSide, type RoundKind, type VectorLayout, vectorLayout } from './layout.ts';
export { type Manifest, ManifestSchema, manifestBytes, manifestDigest, parseManifest } from './manifest.ts';
export {
  type Advert,
  type Announcement,
  type AnnouncementBody,
  type Commitment,
  CommitmentSchema,
  type ConsistencyMessage,
  decodeStoredUpdate,
  encodeStoredUpdate,
  JOIN_WINDOW_MS,
  type JoinClaim,
  joinMessage,
  MAX_ROUND_MESSAGE,
  type Phase,
  parseAnnouncement,
  parseRequest,
  ROUND_PROTOCOL,
  type RoundRequest,
  type RoundStage,
  roundContext,
  type SharesMessage,
  STAGES,
  type StoredUpdate,
  type Submission,
  sha256Hex,
  signAnnouncement,
  signCommitment,
  storedUpdateMaxBytes,
  taskTopic,
  toWire,
  type UnmaskMessage,
  verifyCommitment,
  type WireAnnouncement,
} from './messages.ts';
export {
  decodeModelBytes,
  encodeModelBytes,
  MAX_RECORD_OBJECT_BYTES,
  modelBytesMaxBytes,
  modelHashOf,
} from './model-bytes.ts';
export { type DpSettings, epsilonAfter, privacyRecord, withinBudget } from './privacy.ts';
export {
  encodingOf,
  LOSSES,
  METRICS,
  type ModelAccess,
  ModelAccessSchema,
  modelAccessOf,
  parseTaskSpec,
  ROBUST_STRATEGY_NAMES,
  robustAggregatorOf,
  STRATEGY_NAMES,
  secAggShape,
  strategyOf,
  type TaskSpec,
  TaskSpecSchema,
  taskDigest,
  taskIdOf,
  taskSpecBytes,
} from './spec.ts';
export {
  needsStatistics,
  type Preprocessing,
  PreprocessingSchema,
  preprocessingFromSum,
  statisticsLength,
} from './statistics.ts';
