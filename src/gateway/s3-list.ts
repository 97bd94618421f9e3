import { AilinkError } from '../shared/errors.ts';

/**
 * S3's ListObjectsV2 over a bucket's keys: prefix, delimiter (keys rolled up into common prefixes), max-keys, start-
 * after and continuation tokens. Pure: the keys come in, one page goes out. Keys are ordered by their UTF-8 bytes, as
 * S3 orders them (JavaScript's own string order differs past the Basic Multilingual Plane).
 */

/** S3's page size when max-keys is not given, and the most it returns in one page. */
export const MAX_KEYS = 1000;

export interface ListQuery {
  readonly prefix?: string;
  readonly delimiter?: string;
  /** 0–1000 (default 1000). */
  readonly maxKeys?: number;
  readonly startAfter?: string;
  /** The token of the previous page's answer. */
  readonly continuationToken?: string;
}

export interface ListPage<T> {
  /** The entries listed, in key order. */
  readonly contents: readonly T[];
  /** Keys rolled up at the delimiter, each once, in order. */
  readonly commonPrefixes: readonly string[];
  /** contents + commonPrefixes: what max-keys counts. */
  readonly keyCount: number;
  readonly isTruncated: boolean;
  /** Set when truncated: pass it back for the next page. */
  readonly nextContinuationToken?: string;
}

export const compareKeys = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));

/** Where a page ends: the last key listed, or the last common prefix (whose keys the next page skips). */
interface Marker {
  readonly key: string;
  readonly rolledUp: boolean;
}

const encodeToken = (m: Marker) =>
  Buffer.from(`${m.rolledUp ? 'p' : 'k'}${m.key}`, 'utf8').toString('base64url');

function decodeToken(token: string): Marker {
  const text = /^[A-Za-z0-9_-]+$/.test(token) ? Buffer.from(token, 'base64url').toString('utf8') : '';
  if (text.length < 2 || (text[0] !== 'p' && text[0] !== 'k')) {
    throw new AilinkError('INVALID_INPUT', 'the continuation token is not one this gateway gave out', {
      details: { s3: 'InvalidArgument' },
    });
  }
  return { key: text.slice(1), rolledUp: text[0] === 'p' };
}

/** How many entries a page holds: max-keys (default and at most MAX_KEYS). @throws INVALID_INPUT for a bad one */
function pageLimit(maxKeys: number = MAX_KEYS): number {
  if (!Number.isInteger(maxKeys) || maxKeys < 0) {
    throw new AilinkError('INVALID_INPUT', `max-keys: expected an integer ≥ 0, got ${maxKeys}`, {
      details: { s3: 'InvalidArgument' },
    });
  }
  return Math.min(maxKeys, MAX_KEYS);
}

/**
 * One page of a listing of `entries` (any order; `keyOf` names each entry's key).
 * @throws INVALID_INPUT (S3 InvalidArgument) for max-keys out of range or a token this gateway did not give
 */
export function listPage<T>(
  entries: readonly T[],
  keyOf: (entry: T) => string,
  query: ListQuery,
): ListPage<T> {
  const prefix = query.prefix ?? '';
  const delimiter = query.delimiter === '' ? undefined : query.delimiter;
  const limit = pageLimit(query.maxKeys);
  // Nothing asked for: an empty page with nothing to continue from (a truncated page without a token would loop).
  if (limit === 0) return { contents: [], commonPrefixes: [], keyCount: 0, isTruncated: false };
  const marker: Marker | undefined =
    query.continuationToken !== undefined
      ? decodeToken(query.continuationToken)
      : query.startAfter !== undefined && query.startAfter !== ''
        ? { key: query.startAfter, rolledUp: false }
        : undefined;
  const sorted = entries
    .map((entry) => ({ entry, key: keyOf(entry) }))
    .filter(({ key }) => key.startsWith(prefix))
    .sort((a, b) => compareKeys(a.key, b.key));

  const contents: T[] = [];
  const commonPrefixes: string[] = [];
  let last: Marker | undefined;
  let isTruncated = false;
  for (const { entry, key } of sorted) {
    if (
      marker !== undefined &&
      (compareKeys(key, marker.key) <= 0 || (marker.rolledUp && key.startsWith(marker.key)))
    ) {
      continue;
    }
    const at = delimiter === undefined ? -1 : key.indexOf(delimiter, prefix.length);
    const rolled = at === -1 ? undefined : key.slice(0, at + delimiter!.length);
    // A key under the common prefix just listed adds nothing.
    if (rolled !== undefined && last?.rolledUp && last.key === rolled) continue;
    if (contents.length + commonPrefixes.length === limit) {
      isTruncated = true;
      break;
    }
    if (rolled === undefined) {
      contents.push(entry);
      last = { key, rolledUp: false };
    } else {
      commonPrefixes.push(rolled);
      last = { key: rolled, rolledUp: true };
    }
  }
  return {
    contents,
    commonPrefixes,
    keyCount: contents.length + commonPrefixes.length,
    isTruncated,
    ...(isTruncated && last !== undefined ? { nextContinuationToken: encodeToken(last) } : {}),
  };
}

export interface VersionQuery {
  readonly prefix?: string;
  readonly delimiter?: string;
  readonly maxKeys?: number;
  readonly keyMarker?: string;
  readonly versionIdMarker?: string;
}

export interface VersionPage<T> {
  readonly versions: readonly T[];
  readonly commonPrefixes: readonly string[];
  readonly isTruncated: boolean;
  /** Set when truncated: the key-marker and version-id-marker of the next page (no version id after a prefix). */
  readonly next?: { readonly keyMarker: string; readonly versionIdMarker?: string };
}

/**
 * One page of ListObjectVersions over `versions`, given in S3's order (keys in UTF-8 byte order, each key's versions
 * newest first). A page may end in the middle of a key's versions; key-marker with version-id-marker resumes after
 * that version, key-marker alone after all of that key's versions (or, ending in the delimiter, after that prefix).
 */
export function versionPage<T>(
  versions: readonly T[],
  of: (v: T) => { key: string; versionId: string },
  query: VersionQuery,
): VersionPage<T> {
  const prefix = query.prefix ?? '';
  const delimiter = query.delimiter === '' ? undefined : query.delimiter;
  const limit = pageLimit(query.maxKeys);
  // Nothing asked for: an empty page with nothing to continue from (a truncated page without markers would loop).
  if (limit === 0) return { versions: [], commonPrefixes: [], isTruncated: false };
  const keyMarker = query.keyMarker ?? '';
  const idMarker = query.versionIdMarker;
  // Skips until just past the markers: within key-marker's versions past the one named, or past the key (or prefix).
  const withinKey = idMarker !== undefined && idMarker !== '';
  let passedId = false;
  const past = (key: string, versionId: string): boolean => {
    if (keyMarker === '') return true;
    const order = compareKeys(key, keyMarker);
    if (order < 0) return false;
    if (order === 0) {
      if (!withinKey) return false;
      if (passedId) return true;
      passedId = versionId === idMarker;
      return false;
    }
    return !(delimiter !== undefined && keyMarker.endsWith(delimiter) && key.startsWith(keyMarker));
  };
  const listed: T[] = [];
  const commonPrefixes: string[] = [];
  let last: { keyMarker: string; versionIdMarker?: string } | undefined;
  let isTruncated = false;
  for (const v of versions) {
    const { key, versionId } = of(v);
    if (!key.startsWith(prefix) || !past(key, versionId)) continue;
    const at = delimiter === undefined ? -1 : key.indexOf(delimiter, prefix.length);
    const rolled = at === -1 ? undefined : key.slice(0, at + delimiter!.length);
    if (rolled !== undefined && commonPrefixes.at(-1) === rolled) continue;
    if (listed.length + commonPrefixes.length >= limit) {
      isTruncated = true;
      break;
    }
    if (rolled === undefined) {
      listed.push(v);
      last = { keyMarker: key, versionIdMarker: versionId };
    } else {
      commonPrefixes.push(rolled);
      last = { keyMarker: rolled };
    }
  }
  return {
    versions: listed,
    commonPrefixes,
    isTruncated,
    ...(isTruncated && last !== undefined ? { next: last } : {}),
  };
}
