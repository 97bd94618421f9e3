/**
 * Aggregation: SecAgg+ state machines and their primitives, strategies, robust aggregators, central DP and distributed
 * DP (Skellam).
 * Pure code: no I/O, no clock, nothing imported from the rest of src/ (DESIGN §2).
 */
export {
  addGaussianNoise,
  type BudgetSpend,
  createPrivacyBudget,
  createRdpAccountant,
  DEFAULT_RDP_ORDERS,
  type EpsilonResult,
  epsilon as privacySpent,
  epsilonFromRdp,
  type GaussianNoiseOptions,
  gaussianNoise,
  type PrivacyBudget,
  privatizeSum,
  type RdpAccountant,
  type RdpAccountantOptions,
  type RdpStepInput,
  reserveRound,
  spend,
} from './dp.ts';
export {
  AGGREGATION_ERROR_CODES,
  AggregationError,
  type AggregationErrorCode,
  type RandomBytes,
} from './errors.ts';
export { neighbourGraph } from './graph.ts';
export {
  agreementKeyPair,
  type RawKeyPair,
  sharedSecret,
  signingKeyPair,
  signMessage,
  verifyMessage,
} from './keys.ts';
export { byteStreamFromSeed, maskFromSeed } from './prg.ts';
export {
  addInto,
  checkQuantization,
  dequantizeSum,
  type QuantizationParams,
  quantize,
  subtractInto,
} from './quantize.ts';
export {
  assertPlaintextAllowed,
  bulyan,
  coordinateMedian,
  krum,
  minimumUpdates,
  multiKrum,
  ROBUST_AGGREGATOR_NAMES,
  type RobustAggregatorKind,
  type RobustAggregatorSpec,
  type RobustStrategy,
  robustStrategy,
  trimmedMean,
} from './robust.ts';
export {
  type AbortBody,
  type AdvertiseBody,
  type ConsistencyBody,
  checkSecAggParams,
  createSecAggClient,
  createSecAggServer,
  type MaskedBody,
  SERVER,
  type SecAggClient,
  type SecAggParams,
  type SecAggServer,
  type SharesBody,
  type Signed,
  type UnmaskBody,
  verified as verifySigned,
  verifyAbort,
  verifyConsistency,
} from './secagg.ts';
export { combineShares, splitSecret } from './shares.ts';
export {
  addSkellamShare,
  decodeNoisySum,
  type IntegerSensitivity,
  MAX_POISSON_MEAN,
  poissonSamples,
  quantizationScale,
  SKELLAM_RDP_ORDERS,
  skellamEpsilon,
  skellamNoise,
  skellamRdp,
  skellamSensitivity,
  skellamWrapProbability,
} from './skellam.ts';
export {
  type AggregateInput,
  type AggregateResult,
  type ClientResult,
  clipToNorm,
  fedAdagrad,
  fedAdam,
  fedAvg,
  fedAvgM,
  fedProx,
  fedYogi,
  proximalTerm,
  type Strategy,
  type StrategyState,
  type WeightedSum,
  weightedMean,
  withNormClipping,
} from './strategies.ts';
export {
  checkWeightedEncoding,
  decodeWeightedSum,
  encodeWeightedUpdate,
  type WeightedEncoding,
} from './weighted.ts';
