import type { FastifyRequest } from 'fastify';
import { BucketNameSchema, ObjectKeySchema } from '../chain/index.ts';
import { AilinkError, type ErrorCode } from '../shared/errors.ts';

/**
 * The S3 API's request parsing and error codes: pure helpers of s3.ts (queries, names, ranges, DeleteObjects bodies,
 * the status of each S3 error code and the code of each AI-LINK error).
 */

/** The HTTP status of each S3 error code the gateway gives. */
export const S3_STATUS: Record<string, number> = {
  AccessDenied: 403,
  /** Not an S3 code (S3 has no quotas): MinIO's, for a bucket or account over its quota. */
  QuotaExceeded: 403,
  SignatureDoesNotMatch: 403,
  InvalidAccessKeyId: 403,
  RequestTimeTooSkewed: 403,
  AuthorizationHeaderMalformed: 400,
  AuthorizationQueryParametersError: 400,
  InvalidArgument: 400,
  InvalidBucketName: 400,
  KeyTooLongError: 400,
  InvalidURI: 400,
  MalformedXML: 400,
  EntityTooLarge: 400,
  IncompleteBody: 400,
  XAmzContentSHA256Mismatch: 400,
  BadDigest: 400,
  InvalidChunkSizeError: 400,
  MalformedTrailerError: 400,
  RequestTimeout: 400,
  NoSuchBucket: 404,
  NoSuchKey: 404,
  NoSuchVersion: 404,
  NoSuchUpload: 404,
  NoSuchObjectLockConfiguration: 404,
  ObjectLockConfigurationNotFoundError: 404,
  InvalidPart: 400,
  InvalidPartOrder: 400,
  EntityTooSmall: 400,
  InvalidRequest: 400,
  MethodNotAllowed: 405,
  BucketAlreadyOwnedByYou: 409,
  BucketNotEmpty: 409,
  MissingContentLength: 411,
  InvalidRange: 416,
  InternalError: 500,
  NotImplemented: 501,
  ServiceUnavailable: 503,
  SlowDown: 503,
};

/** S3's code for an AilinkError that did not name one. */
export function s3CodeOf(err: AilinkError): string {
  const named = err.details?.s3;
  if (typeof named === 'string' && S3_STATUS[named] !== undefined) return named;
  const byCode: Partial<Record<ErrorCode, string>> = {
    AUTH_MISSING: 'AccessDenied',
    AUTH_BAD_SIGNATURE: 'SignatureDoesNotMatch',
    AUTH_EXPIRED: 'AccessDenied',
    AUTH_NOT_AUTHORISED: 'AccessDenied',
    INVALID_INPUT: 'InvalidArgument',
    QUOTA_EXCEEDED: 'QuotaExceeded',
    RANGE_NOT_SATISFIABLE: 'InvalidRange',
    OBJECT_NOT_FOUND: 'NoSuchKey',
    TIMEOUT: 'RequestTimeout',
    NOT_ENOUGH_MINERS: 'ServiceUnavailable',
    PUT_FAILED: 'ServiceUnavailable',
    OBJECT_UNAVAILABLE: 'ServiceUnavailable',
    CHAIN_UNREACHABLE: 'ServiceUnavailable',
    CHAIN_TIMEOUT: 'ServiceUnavailable',
    // S3 clients back off and retry on SlowDown: the next placement epoch brings new slots.
    PLACEMENT_SLOTS_TAKEN: 'SlowDown',
  };
  return byCode[err.code] ?? 'InternalError';
}

export const s3Error = (s3: string, message: string) =>
  new AilinkError('INVALID_INPUT', message, { details: { s3 } });

/** The query, decoded without turning `+` into a space (SigV4 clients send a space as %20). */
export function parseQuery(text: string): [string, string][] {
  if (text === '') return [];
  return text.split('&').map((pair) => {
    const at = pair.indexOf('=');
    const [k, v] = at === -1 ? [pair, ''] : [pair.slice(0, at), pair.slice(at + 1)];
    try {
      return [decodeURIComponent(k), decodeURIComponent(v)];
    } catch {
      throw s3Error(
        'InvalidURI',
        `the query part ${JSON.stringify(pair.slice(0, 80))} is not valid percent-encoding`,
      );
    }
  });
}

export function validBucket(name: string): string {
  const parsed = BucketNameSchema.safeParse(name);
  if (!parsed.success)
    throw s3Error('InvalidBucketName', `bucket ${JSON.stringify(name)}: ${parsed.error.issues[0]?.message}`);
  return name;
}

export function validKey(key: string): string {
  const parsed = ObjectKeySchema.safeParse(key);
  if (!parsed.success) {
    const message = parsed.error.issues[0]?.message ?? 'invalid';
    throw s3Error(message.includes('bytes') ? 'KeyTooLongError' : 'InvalidArgument', `key: ${message}`);
  }
  return key;
}

/** `bytes=a-b`, `bytes=a-` or `bytes=-n` of an object of `size` bytes; undefined for none or several ranges. */
export function parseRange(
  header: string | undefined,
  size: number,
): { start: number; end: number } | undefined {
  if (header === undefined) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  // Several ranges, or another unit: S3 answers with the whole object.
  if (m === null || (m[1] === '' && m[2] === '')) return undefined;
  const unsatisfiable = () =>
    new AilinkError('RANGE_NOT_SATISFIABLE', `${header} lies outside the object's ${size} bytes`, {
      details: { s3: 'InvalidRange', size },
    });
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) throw unsatisfiable();
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start) throw unsatisfiable();
  return { start, end };
}

/**
 * The default retention of a PutObjectLockConfiguration body: `<Rule><DefaultRetention><Mode>…</Mode><Days>n</Days>`
 * (or `<Years>n</Years>`, as 365 days each); no rule → null.
 */
export function defaultRetentionOf(xml: string): { mode: 'COMPLIANCE' | 'GOVERNANCE'; days: number } | null {
  if (!/^\s*(<\?xml[^>]*\?>\s*)?<ObjectLockConfiguration[\s>]/.test(xml))
    throw s3Error('MalformedXML', 'expected an <ObjectLockConfiguration> document');
  const rule = /<DefaultRetention>([\s\S]*?)<\/DefaultRetention>/.exec(xml)?.[1];
  if (rule === undefined) return null;
  const mode = /<Mode>\s*([A-Z]+)\s*<\/Mode>/.exec(rule)?.[1];
  const days = /<Days>\s*(\d{1,5})\s*<\/Days>/.exec(rule)?.[1];
  const years = /<Years>\s*(\d{1,3})\s*<\/Years>/.exec(rule)?.[1];
  const total = days !== undefined ? Number(days) : years !== undefined ? Number(years) * 365 : Number.NaN;
  if (
    (mode !== 'COMPLIANCE' && mode !== 'GOVERNANCE') ||
    (days === undefined) === (years === undefined) ||
    !(total >= 1 && total <= 36_500)
  ) {
    throw s3Error(
      'MalformedXML',
      'a <DefaultRetention> needs a <Mode> (COMPLIANCE or GOVERNANCE) and either <Days> or <Years>, 1 day to 100 years',
    );
  }
  return { mode, days: total };
}

/** The objects of a DeleteObjects body: `<Delete><Object><Key>…</Key>[<VersionId>…</VersionId>]</Object>…</Delete>`. */
export function deleteObjectsKeys(xml: string): {
  objects: { key: string; versionId?: string }[];
  quiet: boolean;
} {
  if (!/^\s*(<\?xml[^>]*\?>\s*)?<Delete[\s>]/.test(xml))
    throw s3Error('MalformedXML', 'expected a <Delete> document');
  const objects = [...xml.matchAll(/<Object>([\s\S]*?)<\/Object>/g)].map((m) => {
    const key = /<Key>([^<]*)<\/Key>/.exec(m[1]!)?.[1];
    if (key === undefined) throw s3Error('MalformedXML', 'every <Object> needs a <Key>');
    const versionId = /<VersionId>\s*([^<]*?)\s*<\/VersionId>/.exec(m[1]!)?.[1];
    return {
      key: decodeEntities(key),
      ...(versionId === undefined ? {} : { versionId: decodeEntities(versionId) }),
    };
  });
  if (objects.length === 0 || objects.length > 1000)
    throw s3Error('MalformedXML', `expected 1–1000 objects to delete, got ${objects.length}`);
  return { objects, quiet: /<Quiet>\s*true\s*<\/Quiet>/i.test(xml) };
}

const decodeEntities = (text: string) =>
  text.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|amp|lt|gt|quot|apos);/g, (_, e: string) =>
    e.startsWith('#x')
      ? String.fromCodePoint(Number.parseInt(e.slice(2), 16))
      : e.startsWith('#')
        ? String.fromCodePoint(Number(e.slice(1)))
        : ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" } as Record<string, string>)[e]!,
  );

/** The status a PutBucketVersioning body sets. MFA delete is not offered: asking for it is refused. */
export function versioningStatusOf(xml: string): 'Enabled' | 'Suspended' {
  if (!/^\s*(<\?xml[^>]*\?>\s*)?<VersioningConfiguration[\s>]/.test(xml))
    throw s3Error('MalformedXML', 'expected a <VersioningConfiguration> document');
  if (/<MfaDelete>\s*Enabled\s*<\/MfaDelete>/.test(xml))
    throw s3Error('NotImplemented', 'MFA delete is not offered by this gateway');
  const status = /<Status>\s*([A-Za-z]+)\s*<\/Status>/.exec(xml)?.[1];
  if (status !== 'Enabled' && status !== 'Suspended')
    throw s3Error(
      'MalformedXML',
      `a <VersioningConfiguration> needs <Status>Enabled or Suspended, got ${JSON.stringify(status)}`,
    );
  return status;
}

/** A PutObjectLegalHold body (`<LegalHold><Status>ON|OFF</Status></LegalHold>`) or header value: whether it is on. */
export function legalHoldOf(text: string, what: 'body' | 'header'): boolean {
  if (what === 'body' && !/^\s*(<\?xml[^>]*\?>\s*)?<LegalHold[\s>]/.test(text))
    throw s3Error('MalformedXML', 'expected a <LegalHold> document');
  const status = what === 'body' ? /<Status>\s*([A-Z]+)\s*<\/Status>/.exec(text)?.[1] : text.trim();
  if (status !== 'ON' && status !== 'OFF') {
    throw s3Error(
      what === 'body' ? 'MalformedXML' : 'InvalidArgument',
      `a legal hold is ON or OFF, got ${JSON.stringify(status)}`,
    );
  }
  return status === 'ON';
}

export const header = (request: FastifyRequest, name: string): string | undefined => {
  const v = request.headers[name];
  return Array.isArray(v) ? v.join(',') : v;
};
