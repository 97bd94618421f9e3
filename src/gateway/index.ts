/**
 * The gateway (issue 16): HTTP object APIs over the storage client and the chain — S3 first, then DeOSS and Alt-DA.
 * Only src/node and src/cli (and tests, benches) import this. So far: the S3 request authentication (SigV4).
 */

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
