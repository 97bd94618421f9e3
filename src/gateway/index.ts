/**
 * The gateway (issue 16): HTTP object APIs over the storage client and the chain, in one app — S3 (path-style and
 * virtual-host, multipart uploads staged on disk), the OP Stack Alt-DA DA-server API under /altda, DeOSS's API
 * under /deoss, the data marketplace under /market, and the drive page at /_ailink/ (a browser client of the S3 API).
 * Only src/node and src/cli (and tests, benches) import this.
 */

export {
  ALTDA_PREFIX,
  type AltDaDeadlines,
  type AltDaDeps,
  type AltDaEvidence,
  DEFAULT_ALTDA_DEADLINES,
  DEFAULT_MAX_BLOB_BYTES,
  keccakKey,
  putAllowed,
  readBoundedBody,
  registerAltDa,
} from './altda.ts';
export {
  AILINK_DA_LAYER,
  type Commitment,
  checkKeccak,
  commitmentHex,
  encodeCommitment,
  fidCommitment,
  GENERIC_COMMITMENT,
  KECCAK256_COMMITMENT,
  keccak256Hex,
  keccakCommitment,
  parseCommitment,
} from './altda-commitment.ts';
export { type CheckedBody, checkBody, STREAMING_UNSIGNED_TRAILER } from './body.ts';
export { type DeossDeps, registerDeoss } from './deoss.ts';
export {
  type ChunkRange,
  checkChunk,
  checkDeossAuth,
  contentTypeOf,
  DEFAULT_MAX_LIFETIME_MS,
  type DeossAnswer,
  type DeossAuth,
  decodeSignature,
  deossMessage,
  MESSAGE_PREFIX,
  parseContentRange,
} from './deoss-protocol.ts';
export { boundaryOf, type MultipartPart, parseMultipart } from './form-data.ts';
export { type MarketApiDeps, registerMarket } from './market.ts';
export {
  type BuyOptions,
  DEFAULT_WAIT_MS,
  MARKET_PREFIX,
  MAX_WAIT_MS,
  marketS3Code,
  parseBuyQuery,
  parseJsonBody,
  type ReaderStanding,
  refusalBeforePaying,
  renderMarketError,
  ShareBodySchema,
  TermsBodySchema,
  wantsXml,
} from './market-protocol.ts';
export {
  completeParts,
  DEFAULT_MAX_OPEN_UPLOADS,
  DEFAULT_MAX_STAGED_BYTES,
  DEFAULT_UPLOAD_EXPIRY_MS,
  diskUploadStore,
  MAX_PART_BYTES,
  MIN_PART_BYTES,
  multipartEtag,
  type UploadStore,
  type UploadStoreOptions,
} from './multipart.ts';
export { createChainNamespace, type Namespace, type StoredFile, type StoredObject } from './namespace.ts';
export { createReplayGuard, type ReplayGuard } from './replay-guard.ts';
export { buildS3App, RESERVED_BUCKETS, type S3Credentials, type S3Deps } from './s3.ts';
export { compareKeys, type ListPage, type ListQuery, listPage, MAX_KEYS } from './s3-list.ts';
export { errorXml, escapeXml, type ListedObject, listBucketsXml, listObjectsV2Xml } from './s3-xml.ts';
export {
  chunkSignature,
  MAX_PRESIGNED_SECONDS,
  MAX_SKEW_MS,
  type SigV4Auth,
  type SigV4Request,
  STREAMING_PAYLOAD,
  UNSIGNED_PAYLOAD,
  verifySigV4,
} from './sigv4.ts';
export { loadWebPage, WEB_CSP, WEB_PREFIX, type WebAnswer, type WebPage, type WebRequest } from './web.ts';
