/**
 * The gateway (issue 16): HTTP object APIs over the storage client and the chain — S3 first, then DeOSS and Alt-DA.
 * Only src/node and src/cli (and tests, benches) import this. So far: the S3 API (path-style) over the chain's
 * namespace and the storage client, and the DeOSS API under /deoss of the same app.
 */

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
export { createChainNamespace, type Namespace, type StoredFile, type StoredObject } from './namespace.ts';
export { createReplayGuard, type ReplayGuard } from './replay-guard.ts';
export { buildS3App, type S3Credentials, type S3Deps } from './s3.ts';
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
