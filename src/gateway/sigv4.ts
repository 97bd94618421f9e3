import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { AilinkError } from '../shared/errors.ts';

/**
 * AWS Signature Version 4 as an S3 server checks it: the `Authorization` header form and the presigned-URL form, for
 * the gateway's S3 API. Pure: the request comes in as its parts, the time and the secret lookup are passed in.
 *
 * The client signs a canonical form of the request (method, path, query, the headers it names, the payload's hash)
 * with a key derived from its secret, the date, the region and the service; the server rebuilds that form from what
 * arrived and compares. Errors are AilinkErrors whose `details.s3` is the S3 error code a client expects.
 */

export const SIGV4_ALGORITHM = 'AWS4-HMAC-SHA256';
/** What the payload hash says when the body is not hashed (presigned URLs, or a client's choice over TLS). */
export const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';
/** The body is `aws-chunked`, each chunk signed in a chain that starts at the request's signature. */
export const STREAMING_PAYLOAD = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD';
/** How far a signed request's time may be from the server's (S3: 15 minutes). */
export const MAX_SKEW_MS = 15 * 60_000;
/** The longest a presigned URL may live (S3: 7 days). */
export const MAX_PRESIGNED_SECONDS = 604_800;

export interface SigV4Request {
  readonly method: string;
  /** The path exactly as sent, percent-encoded, without the query. */
  readonly path: string;
  /** The query parameters, decoded, in the order sent (a name may repeat). */
  readonly query: readonly (readonly [string, string])[];
  /** Header names in lower case; a header sent several times as its values in order. */
  readonly headers: Readonly<Record<string, string | readonly string[] | undefined>>;
}

export interface SigV4Auth {
  readonly accessKeyId: string;
  readonly region: string;
  readonly service: string;
  /** The signed time (ms since the epoch) and its `YYYYMMDDTHHMMSSZ` form. */
  readonly time: number;
  readonly amzDate: string;
  /** `date/region/service/aws4_request`. */
  readonly scope: string;
  /** The payload hash the client signed: a hex SHA-256, UNSIGNED-PAYLOAD or a STREAMING-… mode. */
  readonly payloadHash: string;
  /** The request's signature (hex): the seed of an aws-chunked body's chunk signatures. */
  readonly signature: string;
  readonly signingKey: Buffer;
  readonly presigned: boolean;
}

export interface VerifyOptions {
  /** The server's time (ms since the epoch). */
  readonly now: number;
  /** The secret of an access key id, or undefined for a key the gateway does not know. */
  readonly secretOf: (accessKeyId: string) => string | undefined;
  /** The region the gateway answers for; a signature scoped to another is refused. */
  readonly region: string;
  readonly service?: string;
  readonly maxSkewMs?: number;
}

const fail = (
  code: 'INVALID_INPUT' | 'AUTH_MISSING' | 'AUTH_BAD_SIGNATURE' | 'AUTH_EXPIRED' | 'AUTH_NOT_AUTHORISED',
  s3: string,
  message: string,
) => new AilinkError(code, message, { details: { s3 } });

/** RFC 3986 percent-encoding as SigV4 wants it: everything but A–Z a–z 0–9 - _ . ~ (and `/` where kept). */
export function uriEncode(value: string, keepSlash = false): string {
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    const c = String.fromCharCode(byte);
    if (/[A-Za-z0-9\-_.~]/.test(c) || (keepSlash && c === '/')) out += c;
    else out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** The path as S3 signs it: each segment decoded once and encoded canonically; no dot-segment or slash folding. */
export function canonicalPath(path: string): string {
  return path
    .split('/')
    .map((segment) => {
      let decoded: string;
      try {
        decoded = decodeURIComponent(segment);
      } catch {
        throw fail(
          'INVALID_INPUT',
          'InvalidURI',
          `the path segment ${JSON.stringify(segment)} is not valid percent-encoding`,
        );
      }
      return uriEncode(decoded);
    })
    .join('/');
}

export function canonicalQuery(query: readonly (readonly [string, string])[]): string {
  return query
    .map(([k, v]) => [uriEncode(k), uriEncode(v)] as const)
    .sort(([ka, va], [kb, vb]) => (ka < kb ? -1 : ka > kb ? 1 : va < vb ? -1 : va > vb ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
}

const headerValue = (v: string | readonly string[]) =>
  (typeof v === 'string' ? [v] : v).map((x) => x.trim().replace(/\s+/g, ' ')).join(',');

export function canonicalRequest(
  req: SigV4Request,
  signedHeaders: readonly string[],
  payloadHash: string,
  query: readonly (readonly [string, string])[] = req.query,
): string {
  const headers = signedHeaders.map((name) => {
    const value = req.headers[name];
    if (value === undefined) {
      throw fail(
        'INVALID_INPUT',
        'AccessDenied',
        `the signature names header ${name}, which the request does not carry`,
      );
    }
    return `${name}:${headerValue(value)}\n`;
  });
  return [
    req.method.toUpperCase(),
    canonicalPath(req.path),
    canonicalQuery(query),
    headers.join(''),
    signedHeaders.join(';'),
    payloadHash,
  ].join('\n');
}

const sha256Hex = (data: string | Uint8Array) => createHash('sha256').update(data).digest('hex');
const hmac = (key: Uint8Array | string, data: string) => createHmac('sha256', key).update(data).digest();

export function signingKey(secret: string, date: string, region: string, service: string): Buffer {
  return hmac(hmac(hmac(hmac(`AWS4${secret}`, date), region), service), 'aws4_request');
}

export function stringToSign(amzDate: string, scope: string, canonical: string): string {
  return `${SIGV4_ALGORITHM}\n${amzDate}\n${scope}\n${sha256Hex(canonical)}`;
}

/**
 * The signature of one chunk of an aws-chunked body: chained to the previous chunk's (the request's for the first),
 * over the chunk's SHA-256.
 */
export function chunkSignature(
  auth: Pick<SigV4Auth, 'amzDate' | 'scope' | 'signingKey'>,
  previous: string,
  chunk: Uint8Array,
): string {
  return chunkSignatureOfHash(auth, previous, sha256Hex(chunk));
}

/** `chunkSignature` from the chunk's SHA-256 (hex), for a chunk hashed piece by piece as it streams past. */
export function chunkSignatureOfHash(
  auth: Pick<SigV4Auth, 'amzDate' | 'scope' | 'signingKey'>,
  previous: string,
  chunkSha256: string,
): string {
  const text = `${SIGV4_ALGORITHM}-PAYLOAD\n${auth.amzDate}\n${auth.scope}\n${previous}\n${sha256Hex('')}\n${chunkSha256}`;
  return hmac(auth.signingKey, text).toString('hex');
}

/** `20130524T000000Z` → ms since the epoch, or NaN. */
function parseAmzDate(value: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  if (m === null) return Number.NaN;
  const [, y, mo, d, h, mi, s] = m.map(Number) as [number, number, number, number, number, number, number];
  const t = Date.UTC(y, mo - 1, d, h, mi, s);
  // Date.UTC rolls over (Feb 30 → Mar 2): such a date is not a date.
  return new Date(t).toISOString().replace(/[-:]|\.\d{3}/g, '') === value ? t : Number.NaN;
}

const single = (v: string | readonly string[] | undefined): string | undefined =>
  v === undefined ? undefined : typeof v === 'string' ? v : v.join(',');

interface Claimed {
  readonly accessKeyId: string;
  readonly date: string;
  readonly region: string;
  readonly service: string;
  readonly signedHeaders: string[];
  readonly signature: string;
  readonly amzDate: string;
}

function parseCredential(
  credential: string,
  s3: string,
): Omit<Claimed, 'signedHeaders' | 'signature' | 'amzDate'> {
  const parts = credential.split('/');
  if (parts.length !== 5 || parts[4] !== 'aws4_request' || parts.some((p) => p === '')) {
    throw fail(
      'INVALID_INPUT',
      s3,
      `the credential ${JSON.stringify(credential)} is not ACCESS_KEY/YYYYMMDD/REGION/SERVICE/aws4_request`,
    );
  }
  const [accessKeyId, date, region, service] = parts as [string, string, string, string];
  return { accessKeyId, date, region, service };
}

function parseSignedHeaders(value: string, s3: string): string[] {
  const names = value.split(';');
  if (names.some((n) => !/^[a-z0-9!#$%&'*+.^_`|~-]+$/.test(n))) {
    throw fail(
      'INVALID_INPUT',
      s3,
      `SignedHeaders ${JSON.stringify(value)} is not a ;-separated list of lower-case header names`,
    );
  }
  if (names.some((n, i) => i > 0 && names[i - 1]! >= n)) {
    throw fail(
      'INVALID_INPUT',
      s3,
      `SignedHeaders ${JSON.stringify(value)} is not sorted, or repeats a name`,
    );
  }
  if (!names.includes('host')) throw fail('INVALID_INPUT', s3, 'the signature must cover the host header');
  return names;
}

/** The signature claimed in an `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…` header. */
function fromHeader(req: SigV4Request, authorization: string): Claimed {
  const s3 = 'AuthorizationHeaderMalformed';
  if (!authorization.startsWith(`${SIGV4_ALGORITHM} `)) {
    throw fail(
      'INVALID_INPUT',
      'InvalidArgument',
      `expected an ${SIGV4_ALGORITHM} Authorization header (Signature Version 4), got ${JSON.stringify(authorization.split(' ')[0])}`,
    );
  }
  const fields = new Map<string, string>();
  for (const part of authorization.slice(SIGV4_ALGORITHM.length + 1).split(',')) {
    const at = part.indexOf('=');
    if (at < 1)
      throw fail(
        'INVALID_INPUT',
        s3,
        `the Authorization header has a malformed part ${JSON.stringify(part.trim())}`,
      );
    fields.set(part.slice(0, at).trim(), part.slice(at + 1).trim());
  }
  const credential = fields.get('Credential');
  const signed = fields.get('SignedHeaders');
  const signature = fields.get('Signature');
  if (credential === undefined || signed === undefined || signature === undefined) {
    throw fail('INVALID_INPUT', s3, 'the Authorization header needs Credential, SignedHeaders and Signature');
  }
  const amzDate = single(req.headers['x-amz-date']);
  if (amzDate === undefined)
    throw fail('AUTH_MISSING', 'AccessDenied', 'a signed request needs an x-amz-date header');
  return {
    ...parseCredential(credential, s3),
    signedHeaders: parseSignedHeaders(signed, s3),
    signature,
    amzDate,
  };
}

/** The signature claimed in a presigned URL's X-Amz-* query parameters. */
function fromQuery(req: SigV4Request, now: number, maxSkewMs: number): Claimed & { expiresAt: number } {
  const s3 = 'AuthorizationQueryParametersError';
  const get = (name: string) => {
    const values = req.query.filter(([k]) => k === name);
    if (values.length !== 1)
      throw fail('INVALID_INPUT', s3, `a presigned URL needs exactly one ${name} parameter`);
    return values[0]![1];
  };
  if (get('X-Amz-Algorithm') !== SIGV4_ALGORITHM) {
    throw fail('INVALID_INPUT', s3, `X-Amz-Algorithm must be ${SIGV4_ALGORITHM}`);
  }
  const amzDate = get('X-Amz-Date');
  const expires = Number(get('X-Amz-Expires'));
  if (!Number.isInteger(expires) || expires < 1 || expires > MAX_PRESIGNED_SECONDS) {
    throw fail(
      'INVALID_INPUT',
      s3,
      `X-Amz-Expires must be 1–${MAX_PRESIGNED_SECONDS} seconds, got ${JSON.stringify(get('X-Amz-Expires'))}`,
    );
  }
  const signed = parseAmzDate(amzDate);
  const expiresAt = signed + expires * 1000;
  if (Number.isFinite(signed) && now > expiresAt) {
    throw fail(
      'AUTH_EXPIRED',
      'AccessDenied',
      `the presigned URL expired at ${new Date(expiresAt).toISOString()}; ask for a new one`,
    );
  }
  if (Number.isFinite(signed) && signed - now > maxSkewMs) {
    throw fail(
      'AUTH_EXPIRED',
      'RequestTimeTooSkewed',
      `the presigned URL is dated ${new Date(signed).toISOString()}, ahead of the gateway's clock`,
    );
  }
  return {
    ...parseCredential(get('X-Amz-Credential'), s3),
    signedHeaders: parseSignedHeaders(get('X-Amz-SignedHeaders'), s3),
    signature: get('X-Amz-Signature'),
    amzDate,
    expiresAt,
  };
}

/**
 * Checks a request's SigV4 signature, in its header or its query (a presigned URL).
 * @returns who signed, and what a body check needs (payload hash, signing key, seed signature)
 * @throws AUTH_MISSING (no signature), INVALID_INPUT (malformed), AUTH_NOT_AUTHORISED (unknown key or other
 *   region/service), AUTH_EXPIRED (skewed, or an expired URL), AUTH_BAD_SIGNATURE (does not match)
 */
export function verifySigV4(req: SigV4Request, options: VerifyOptions): SigV4Auth {
  const service = options.service ?? 's3';
  const maxSkewMs = options.maxSkewMs ?? MAX_SKEW_MS;
  const authorization = single(req.headers.authorization);
  const presigned = authorization === undefined && req.query.some(([k]) => k === 'X-Amz-Signature');
  if (authorization === undefined && !presigned) {
    throw fail(
      'AUTH_MISSING',
      'AccessDenied',
      'the request is not signed: send it with an S3 client and the gateway’s access key (gateway.json)',
    );
  }
  const claimed = presigned ? fromQuery(req, options.now, maxSkewMs) : fromHeader(req, authorization!);
  const time = parseAmzDate(claimed.amzDate);
  if (!Number.isFinite(time)) {
    throw fail(
      'INVALID_INPUT',
      'AccessDenied',
      `the request time ${JSON.stringify(claimed.amzDate)} is not YYYYMMDDTHHMMSSZ`,
    );
  }
  if (claimed.date !== claimed.amzDate.slice(0, 8)) {
    throw fail(
      'INVALID_INPUT',
      'AuthorizationHeaderMalformed',
      `the credential's date ${claimed.date} is not the request's date ${claimed.amzDate.slice(0, 8)}`,
    );
  }
  if (!presigned && Math.abs(time - options.now) > maxSkewMs) {
    throw fail(
      'AUTH_EXPIRED',
      'RequestTimeTooSkewed',
      `the request is dated ${new Date(time).toISOString()}, more than ${maxSkewMs / 60_000} minutes from the gateway's clock ${new Date(options.now).toISOString()}`,
    );
  }
  const secret = options.secretOf(claimed.accessKeyId);
  if (secret === undefined) {
    throw fail(
      'AUTH_NOT_AUTHORISED',
      'InvalidAccessKeyId',
      `the access key ${claimed.accessKeyId} is not one of this gateway's`,
    );
  }
  if (claimed.region !== options.region || claimed.service !== service) {
    throw fail(
      'AUTH_NOT_AUTHORISED',
      'AuthorizationHeaderMalformed',
      `the signature is for ${claimed.region}/${claimed.service}; this gateway is ${options.region}/${service}`,
    );
  }
  const payloadHash = presigned
    ? UNSIGNED_PAYLOAD
    : (single(req.headers['x-amz-content-sha256']) ?? sha256Hex(''));
  const query = presigned ? req.query.filter(([k]) => k !== 'X-Amz-Signature') : req.query;
  const scope = `${claimed.date}/${claimed.region}/${claimed.service}/aws4_request`;
  const key = signingKey(secret, claimed.date, claimed.region, claimed.service);
  const canonical = canonicalRequest(req, claimed.signedHeaders, payloadHash, query);
  const expected = hmac(key, stringToSign(claimed.amzDate, scope, canonical));
  const given = /^[0-9a-f]{64}$/.test(claimed.signature)
    ? Buffer.from(claimed.signature, 'hex')
    : Buffer.alloc(0);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw fail(
      'AUTH_BAD_SIGNATURE',
      'SignatureDoesNotMatch',
      'the request signature does not match what the gateway computes from the request and your secret: check the secret access key and that nothing rewrote the request on the way',
    );
  }
  return {
    accessKeyId: claimed.accessKeyId,
    region: claimed.region,
    service: claimed.service,
    time,
    amzDate: claimed.amzDate,
    scope,
    payloadHash,
    signature: claimed.signature,
    signingKey: key,
    presigned,
  };
}
