import { base58Decode, decodeAddress } from '@polkadot/util-crypto';
import { verifySignature } from '../shared/account.ts';
import { fromHex } from '../shared/bytes.ts';
import { AilinkError, type ErrorCode, httpStatusOf } from '../shared/errors.ts';

/**
 * The pure parts of the gateway's DeOSS API: the signed-message check, Content-Range of resumable uploads, and the
 * answers' JSON. No I/O, no clock (the time is passed in).
 *
 * DeOSS authenticates a request by three headers: Account (SS58), Message and Signature (sr25519, base58 or hex, over
 * `<Bytes>Message</Bytes>`). It accepts any Message, so one signed message opens the account for ever, to anyone who
 * saw it. Here the Message must say when it expires and carry a nonce, and a used one is refused until it expires:
 *
 *     ailink-deoss:<expiry>:<nonce>
 *
 * `<expiry>` is a Unix time in seconds (10 digits) no further than `maxLifetimeMs` (default 5 min) ahead of the
 * gateway's clock, `<nonce>` 8–64 characters of A–Z a–z 0–9 _ - chosen by the client (random). The prefix keeps a
 * signature made for anything else (another protocol, another DeOSS) from passing here.
 */

export const MESSAGE_PREFIX = 'ailink-deoss';
export const DEFAULT_MAX_LIFETIME_MS = 5 * 60_000;
const MESSAGE_RE = /^ailink-deoss:(\d{10}):([A-Za-z0-9_-]{8,64})$/;

/** A Message for a request that expires at `expiresAtMs` (rounded down to a second). */
export function deossMessage(expiresAtMs: number, nonce: string): string {
  return `${MESSAGE_PREFIX}:${Math.floor(expiresAtMs / 1000)}:${nonce}`;
}

export interface DeossAuth {
  readonly account: string;
  readonly message: string;
  /** When the message stops being accepted (ms); until then the replay guard remembers it. */
  readonly expiresAt: number;
}

/** A signature as DeOSS clients send it: hex (with or without 0x) or base58, 64 bytes. */
export function decodeSignature(text: string): Uint8Array | undefined {
  try {
    const hex = text.startsWith('0x') ? text.slice(2) : text;
    if (/^[0-9a-fA-F]{128}$/.test(hex)) return fromHex(hex.toLowerCase());
    const bytes = base58Decode(text);
    return bytes.length === 64 ? bytes : undefined;
  } catch {
    return undefined;
  }
}

const authError = (code: ErrorCode, message: string) => new AilinkError(code, message);

/**
 * Checks a request's Account, Message and Signature headers: the message's form and expiry, the signature, and that
 * the signer is `owner` (the gateway's account: the one whose keys seal the objects). Replays are the guard's part.
 * @throws AUTH_MISSING (a header missing), INVALID_INPUT (a Message of another form), AUTH_EXPIRED,
 *   AUTH_EXPIRY_TOO_FAR, AUTH_NOT_AUTHORISED (another Account than the owner), AUTH_BAD_SIGNATURE
 */
export function checkDeossAuth(
  headers: { account?: string | undefined; message?: string | undefined; signature?: string | undefined },
  context: { now: number; owner: string; maxLifetimeMs?: number },
): DeossAuth {
  const { account, message, signature } = headers;
  const missing = [
    account ? undefined : 'Account',
    message ? undefined : 'Message',
    signature ? undefined : 'Signature',
  ].filter((h) => h !== undefined);
  if (missing.length > 0 || !account || !message || !signature)
    throw authError(
      'AUTH_MISSING',
      `expected the headers Account, Message and Signature; missing: ${missing.join(', ')}`,
    );
  const m = MESSAGE_RE.exec(message);
  if (m === null)
    throw authError(
      'INVALID_INPUT',
      `Message: expected "${MESSAGE_PREFIX}:<expiry, Unix seconds>:<nonce, 8–64 of A-Z a-z 0-9 _ ->", got ${JSON.stringify(message.slice(0, 100))}`,
    );
  const expiresAt = Number(m[1]) * 1000;
  const maxLifetimeMs = context.maxLifetimeMs ?? DEFAULT_MAX_LIFETIME_MS;
  if (expiresAt <= context.now)
    throw authError(
      'AUTH_EXPIRED',
      `the Message expired at ${new Date(expiresAt).toISOString()}; the gateway's time is ${new Date(context.now).toISOString()}`,
    );
  if (expiresAt > context.now + maxLifetimeMs)
    throw authError(
      'AUTH_EXPIRY_TOO_FAR',
      `the Message expires at ${new Date(expiresAt).toISOString()}, more than ${maxLifetimeMs / 1000} s after the gateway's time ${new Date(context.now).toISOString()}`,
    );
  let signer: Uint8Array;
  try {
    signer = decodeAddress(account);
  } catch {
    throw authError(
      'INVALID_INPUT',
      `Account: expected an SS58 address, got ${JSON.stringify(account.slice(0, 80))}`,
    );
  }
  // Compared as keys: the same account may come in another SS58 prefix (CESS's "cX…" addresses). Checked before the
  // signature: a stranger's request costs no sr25519 verification.
  if (!Buffer.from(signer).equals(Buffer.from(decodeAddress(context.owner))))
    throw authError(
      'AUTH_NOT_AUTHORISED',
      `${account} may not use this gateway: it serves only its own account ${context.owner}`,
    );
  const sig = decodeSignature(signature);
  if (sig === undefined)
    throw authError('AUTH_BAD_SIGNATURE', 'Signature: expected 64 bytes in hex (0x…) or base58');
  if (!verifySignature(account, new TextEncoder().encode(message), sig))
    throw authError(
      'AUTH_BAD_SIGNATURE',
      `the Signature is not ${account}'s sr25519 signature of <Bytes>Message</Bytes>`,
    );
  return { account, message, expiresAt };
}

/** A `Content-Range: bytes <start>-<end>/<total>` of a resumable upload chunk (both ends included). */
export interface ChunkRange {
  readonly start: number;
  readonly end: number;
  readonly total: number;
}

/** @throws INVALID_INPUT for any other form, an end before its start, or an end at or past the total */
export function parseContentRange(header: string | undefined): ChunkRange {
  if (header === undefined || header === '')
    throw new AilinkError('INVALID_INPUT', 'expected a Content-Range header "bytes <start>-<end>/<total>"');
  const m = /^bytes (\d{1,16})-(\d{1,16})\/(\d{1,16})$/.exec(header.trim());
  if (m === null)
    throw new AilinkError(
      'INVALID_INPUT',
      `Content-Range: expected "bytes <start>-<end>/<total>", got ${JSON.stringify(header.slice(0, 100))}`,
    );
  const [start, end, total] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (!(start <= end && end < total))
    throw new AilinkError(
      'INVALID_INPUT',
      `Content-Range ${header}: expected start ≤ end < total (the end is included)`,
    );
  return { start, end, total };
}

/**
 * Whether a chunk continues what is staged: it must start exactly where the staged bytes end and name the same total.
 * @throws UPLOAD_RANGE_MISMATCH (details.received: where the next chunk must start)
 */
export function checkChunk(staged: { received: number; total: number } | undefined, range: ChunkRange): void {
  const received = staged?.received ?? 0;
  if (staged !== undefined && staged.total !== range.total)
    throw new AilinkError(
      'UPLOAD_RANGE_MISMATCH',
      `this upload is of ${staged.total} bytes, the chunk says ${range.total}; finish it or start another name`,
      { details: { received, total: staged.total } },
    );
  if (range.start !== received)
    throw new AilinkError(
      'UPLOAD_RANGE_MISMATCH',
      range.start < received
        ? `bytes ${range.start}-${Math.min(range.end, received - 1)} were received already: expected a chunk starting at byte ${received}`
        : `bytes ${received}-${range.start - 1} are missing: expected a chunk starting at byte ${received}`,
      { details: { received, total: range.total } },
    );
}

/** DeOSS's answer envelope: `{ code, msg, data }`, `code` the HTTP status. */
export interface DeossAnswer<T = unknown> {
  readonly code: number;
  readonly msg: string;
  readonly data: T;
  /** AI-LINK's error code, on errors only. */
  readonly error?: ErrorCode;
}

export const okAnswer = <T>(data: T): DeossAnswer<T> => ({ code: 200, msg: 'ok', data });

export function errorAnswer(code: ErrorCode, message: string): DeossAnswer<null> {
  return { code: httpStatusOf(code), msg: message, data: null, error: code };
}

/** `GET /file/metadata/:fid`: DeOSS's fields (fid, size, owner[]) and where the object is filed. */
export interface MetadataAnswer {
  readonly fid: string;
  readonly size: number;
  readonly owner: { user: string; file_name: string }[];
  readonly state: 'Pending' | 'Active';
  readonly bucket: string | null;
  readonly key: string | null;
  readonly content_type: string;
}

export function metadataAnswer(file: {
  fid: string;
  size: number;
  owner: string;
  name: string | null;
  state: 'Pending' | 'Active';
  bucket?: string | undefined;
  key?: string | undefined;
  contentType: string;
}): MetadataAnswer {
  return {
    fid: file.fid,
    size: file.size,
    owner: [{ user: file.owner, file_name: file.name ?? '' }],
    state: file.state,
    bucket: file.bucket ?? null,
    key: file.key ?? null,
    content_type: file.contentType,
  };
}

/**
 * `GET /file/location/:fid`: DeOSS keys the miners by "<i> batch fragments" — column i, whose fragment of every
 * segment one miner holds. Locations are 0/0: miners here publish no coordinates.
 */
export function locationAnswer(
  placements: readonly (string | null)[],
  segments: readonly { fragments: readonly string[] }[],
): Record<
  string,
  { account: string | null; location: { longitude: number; latitude: number }; fragments: string[] }
> {
  const out: Record<
    string,
    { account: string | null; location: { longitude: number; latitude: number }; fragments: string[] }
  > = {};
  placements.forEach((miner, column) => {
    out[`${column} batch fragments`] = {
      account: miner,
      location: { longitude: 0, latitude: 0 },
      fragments: segments.map((s) => s.fragments[column]!),
    };
  });
  return out;
}

/** `GET /file/list`: DeOSS's {territory, fid, size} per object, territory being the bucket, and the key. */
export const listAnswer = (
  files: readonly {
    fid: string;
    size: number;
    bucket?: string | undefined;
    key?: string | undefined;
    name: string | null;
  }[],
) =>
  files.map((f) => ({
    territory: f.bucket ?? '',
    fid: f.fid,
    size: f.size,
    key: f.key ?? null,
    file_name: f.name ?? '',
  }));

const TYPES: Record<string, string> = {
  txt: 'text/plain; charset=utf-8',
  md: 'text/markdown; charset=utf-8',
  csv: 'text/csv; charset=utf-8',
  html: 'text/html; charset=utf-8',
  htm: 'text/html; charset=utf-8',
  css: 'text/css; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  json: 'application/json',
  pdf: 'application/pdf',
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  gif: 'image/gif',
  webp: 'image/webp',
  svg: 'image/svg+xml',
  mp4: 'video/mp4',
  webm: 'video/webm',
  mov: 'video/quicktime',
  mp3: 'audio/mpeg',
  wav: 'audio/wav',
  ogg: 'audio/ogg',
  zip: 'application/zip',
  gz: 'application/gzip',
};

/** The media type of a file name, by its extension (as DeOSS's open does); application/octet-stream if unknown. */
export function contentTypeOf(name: string | null | undefined): string {
  const ext = /\.([A-Za-z0-9]{1,8})$/.exec(name ?? '')?.[1]?.toLowerCase();
  return (ext === undefined ? undefined : TYPES[ext]) ?? 'application/octet-stream';
}
