// AWS Signature Version 4 for S3, as a client signs: the drive page signs its S3 requests with it in the browser
// (WebCrypto), and test/gateway/web.test.ts checks it against the gateway's own verifySigV4 (src/gateway/sigv4.ts).
// Plain JavaScript with its types in sigv4.d.ts: the browser loads this file as it is (no build step), and Node runs
// the same file in the tests. Only globalThis.crypto.subtle and TextEncoder are used, which both have.

export const ALGORITHM = 'AWS4-HMAC-SHA256';
/** The payload hash of a request whose body is not hashed: what the page sends for uploads (the hash of a large
 * file would mean reading it twice in the browser before the first byte leaves). */
export const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';
/** The SHA-256 of no bytes: the payload hash of a request without a body. */
export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
/** The longest a presigned URL may live (S3: 7 days). */
export const MAX_PRESIGNED_SECONDS = 604_800;

const encoder = new TextEncoder();

const hex = (buffer) => Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, '0')).join('');

async function sha256Hex(text) {
  return hex(await crypto.subtle.digest('SHA-256', encoder.encode(text)));
}

async function hmac(key, text) {
  const imported = await crypto.subtle.importKey('raw', key, { name: 'HMAC', hash: 'SHA-256' }, false, [
    'sign',
  ]);
  return new Uint8Array(await crypto.subtle.sign('HMAC', imported, encoder.encode(text)));
}

/** RFC 3986 percent-encoding as SigV4 wants it: everything but A–Z a–z 0–9 - _ . ~ (and `/` when kept). */
export function uriEncode(value, keepSlash = false) {
  let out = '';
  for (const byte of encoder.encode(value)) {
    const c = String.fromCharCode(byte);
    if (/[A-Za-z0-9\-_.~]/.test(c) || (keepSlash && c === '/')) out += c;
    else out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/**
 * The path-style path of a bucket, or of a key in it, encoded so that it is also its canonical form: the browser
 * sends it unchanged, and the gateway decodes each segment once and re-encodes it to the same text.
 */
export function objectPath(bucket, key) {
  return key === undefined || key === ''
    ? `/${uriEncode(bucket)}`
    : `/${uriEncode(bucket)}/${uriEncode(key, true)}`;
}

/** `2013-05-24T00:00:00.000Z` → `20130524T000000Z`. */
export function amzDateOf(ms) {
  return new Date(ms).toISOString().replace(/[-:]|\.\d{3}/g, '');
}

function canonicalQuery(query) {
  return query
    .map(([k, v]) => [uriEncode(k), uriEncode(v)])
    .sort(([ka, va], [kb, vb]) => (ka < kb ? -1 : ka > kb ? 1 : va < vb ? -1 : va > vb ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
}

const queryString = (query) => query.map(([k, v]) => `${uriEncode(k)}=${uriEncode(v)}`).join('&');

async function signature(credentials, region, amzDate, canonical) {
  const date = amzDate.slice(0, 8);
  const scope = `${date}/${region}/s3/aws4_request`;
  let key = await hmac(encoder.encode(`AWS4${credentials.secretAccessKey}`), date);
  for (const part of [region, 's3', 'aws4_request']) key = await hmac(key, part);
  const toSign = `${ALGORITHM}\n${amzDate}\n${scope}\n${await sha256Hex(canonical)}`;
  return { scope, signature: hex(await hmac(key, toSign)) };
}

/**
 * Signs a request in the Authorization header. `path` is already encoded (objectPath); `headers` (lower-case names)
 * must include `host` and are all signed, with x-amz-date and x-amz-content-sha256 added.
 * @returns the URL to request (path and query) and the headers to send: every signed one but `host`, which the
 *   browser sets itself and refuses to take from a script
 */
export async function signRequest({
  method,
  path,
  query = [],
  headers,
  payloadHash = EMPTY_SHA256,
  credentials,
  region,
  now,
}) {
  const amzDate = amzDateOf(now);
  const all = { ...headers, 'x-amz-content-sha256': payloadHash, 'x-amz-date': amzDate };
  const names = Object.keys(all).sort();
  const canonical = [
    method.toUpperCase(),
    path,
    canonicalQuery(query),
    names.map((n) => `${n}:${String(all[n]).trim().replace(/\s+/g, ' ')}\n`).join(''),
    names.join(';'),
    payloadHash,
  ].join('\n');
  const signed = await signature(credentials, region, amzDate, canonical);
  const send = { ...all };
  delete send.host;
  send.authorization = `${ALGORITHM} Credential=${credentials.accessKeyId}/${signed.scope}, SignedHeaders=${names.join(';')}, Signature=${signed.signature}`;
  const search = queryString(query);
  return { url: search === '' ? path : `${path}?${search}`, headers: send };
}

/**
 * A presigned URL (path and query; prefix the origin): whoever holds it may make this one request until
 * `now + expiresSeconds`, with no credentials of their own. Only the host is signed.
 * @throws RangeError for an expiry outside 1 s – 7 days (the gateway would refuse the URL)
 */
export async function presignUrl({
  method = 'GET',
  path,
  query = [],
  host,
  credentials,
  region,
  now,
  expiresSeconds,
}) {
  if (!Number.isInteger(expiresSeconds) || expiresSeconds < 1 || expiresSeconds > MAX_PRESIGNED_SECONDS)
    throw new RangeError(`a presigned URL lives 1–${MAX_PRESIGNED_SECONDS} seconds, not ${expiresSeconds}`);
  const amzDate = amzDateOf(now);
  const scope = `${amzDate.slice(0, 8)}/${region}/s3/aws4_request`;
  const signedQuery = [
    ...query,
    ['X-Amz-Algorithm', ALGORITHM],
    ['X-Amz-Credential', `${credentials.accessKeyId}/${scope}`],
    ['X-Amz-Date', amzDate],
    ['X-Amz-Expires', String(expiresSeconds)],
    ['X-Amz-SignedHeaders', 'host'],
  ];
  const canonical = [
    method.toUpperCase(),
    path,
    canonicalQuery(signedQuery),
    `host:${host.trim()}\n`,
    'host',
    UNSIGNED_PAYLOAD,
  ].join('\n');
  const signed = await signature(credentials, region, amzDate, canonical);
  return `${path}?${queryString([...signedQuery, ['X-Amz-Signature', signed.signature]])}`;
}
