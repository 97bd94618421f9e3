import { Readable } from 'node:stream';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { BucketNameSchema, ObjectKeySchema } from '../chain/index.ts';
import { toHex } from '../shared/bytes.ts';
import type { Clock, Random } from '../shared/clock.ts';
import { AilinkError, type ErrorCode, hasCode } from '../shared/errors.ts';
import type { StorageClient } from '../storage/index.ts';
import { checkBody } from './body.ts';
import type { Namespace, StoredObject } from './namespace.ts';
import { listPage, MAX_KEYS } from './s3-list.ts';
import { errorXml, escapeXml, listBucketsXml, listObjectsV2Xml } from './s3-xml.ts';
import { type SigV4Auth, verifySigV4 } from './sigv4.ts';

/**
 * The gateway's S3 API (issue 16), path-style: buckets and keys are the account's namespace on chain, objects go
 * through the storage client (sealed with the account's keys here, at the organisation), every request is SigV4-signed
 * with the gateway's access key. Operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation,
 * PutObject, GetObject (one range), HeadObject, DeleteObject, DeleteObjects, ListObjectsV2.
 */

export interface S3Credentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
}

export interface S3Deps {
  readonly storage: Pick<StorageClient, 'put' | 'get'>;
  readonly namespace: Namespace;
  readonly credentials: S3Credentials;
  readonly region: string;
  readonly clock: Clock;
  readonly random: Random;
  /** The largest object one PutObject takes (default 5 GiB, S3's limit). */
  readonly maxObjectBytes?: number;
  /** Failures the client is told only "internal error" about. */
  readonly log?: (line: string) => void;
}

const GiB = 1024 ** 3;
/** Request bodies that are not objects (DeleteObjects, CreateBucket): small XML. */
const MAX_XML_BYTES = 1024 * 1024;

/** The HTTP status of each S3 error code the gateway gives. */
const S3_STATUS: Record<string, number> = {
  AccessDenied: 403,
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
  MethodNotAllowed: 405,
  BucketAlreadyOwnedByYou: 409,
  BucketNotEmpty: 409,
  MissingContentLength: 411,
  InvalidRange: 416,
  InternalError: 500,
  NotImplemented: 501,
  ServiceUnavailable: 503,
};

/** S3's code for an AilinkError that did not name one. */
function s3CodeOf(err: AilinkError): string {
  const named = err.details?.s3;
  if (typeof named === 'string' && S3_STATUS[named] !== undefined) return named;
  const byCode: Partial<Record<ErrorCode, string>> = {
    AUTH_MISSING: 'AccessDenied',
    AUTH_BAD_SIGNATURE: 'SignatureDoesNotMatch',
    AUTH_EXPIRED: 'AccessDenied',
    AUTH_NOT_AUTHORISED: 'AccessDenied',
    INVALID_INPUT: 'InvalidArgument',
    RANGE_NOT_SATISFIABLE: 'InvalidRange',
    OBJECT_NOT_FOUND: 'NoSuchKey',
    TIMEOUT: 'RequestTimeout',
    NOT_ENOUGH_MINERS: 'ServiceUnavailable',
    PUT_FAILED: 'ServiceUnavailable',
    OBJECT_UNAVAILABLE: 'ServiceUnavailable',
    CHAIN_UNREACHABLE: 'ServiceUnavailable',
    CHAIN_TIMEOUT: 'ServiceUnavailable',
  };
  return byCode[err.code] ?? 'InternalError';
}

const s3Error = (s3: string, message: string) =>
  new AilinkError('INVALID_INPUT', message, { details: { s3 } });

/** The query, decoded without turning `+` into a space (SigV4 clients send a space as %20). */
function parseQuery(text: string): [string, string][] {
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

function validBucket(name: string): string {
  const parsed = BucketNameSchema.safeParse(name);
  if (!parsed.success)
    throw s3Error('InvalidBucketName', `bucket ${JSON.stringify(name)}: ${parsed.error.issues[0]?.message}`);
  return name;
}

function validKey(key: string): string {
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

/** The keys of a DeleteObjects body: `<Delete><Object><Key>…</Key></Object>…</Delete>`. */
export function deleteObjectsKeys(xml: string): { keys: string[]; quiet: boolean } {
  if (!/^\s*(<\?xml[^>]*\?>\s*)?<Delete[\s>]/.test(xml))
    throw s3Error('MalformedXML', 'expected a <Delete> document');
  const decode = (text: string) =>
    text.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|amp|lt|gt|quot|apos);/g, (_, e: string) =>
      e.startsWith('#x')
        ? String.fromCodePoint(Number.parseInt(e.slice(2), 16))
        : e.startsWith('#')
          ? String.fromCodePoint(Number(e.slice(1)))
          : ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" } as Record<string, string>)[e]!,
    );
  const keys = [...xml.matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => decode(m[1]!));
  if (keys.length === 0 || keys.length > 1000)
    throw s3Error('MalformedXML', `expected 1–1000 keys to delete, got ${keys.length}`);
  return { keys, quiet: /<Quiet>\s*true\s*<\/Quiet>/i.test(xml) };
}

const header = (request: FastifyRequest, name: string): string | undefined => {
  const v = request.headers[name];
  return Array.isArray(v) ? v.join(',') : v;
};

export function buildS3App(deps: S3Deps): FastifyInstance {
  const maxObjectBytes = deps.maxObjectBytes ?? 5 * GiB;
  // No total deadline (a 5 GiB upload may take long), but a socket silent for 2 minutes is closed: a client that
  // stops sending mid-body does not hold its request forever.
  const app = Fastify({
    logger: false,
    exposeHeadRoutes: false,
    requestTimeout: 0,
    connectionTimeout: 120_000,
  });
  // Bodies are streams the handlers read themselves (objects of GBs never sit in memory).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null, undefined));

  const requestId = () => toHex(deps.random(8)).toUpperCase();
  const fail = (reply: FastifyReply, request: FastifyRequest, err: unknown) => {
    const known = hasCode(err) ? err : undefined;
    if (known === undefined)
      deps.log?.(`${request.method} ${request.url} failed: ${(err as Error)?.stack ?? String(err)}`);
    const code = known === undefined ? 'InternalError' : s3CodeOf(known);
    const message =
      known === undefined || code === 'InternalError' ? 'the gateway failed; see its log' : known.message;
    const status = S3_STATUS[code] ?? 500;
    if (code === 'InvalidRange' && typeof known?.details?.size === 'number') {
      reply.header('content-range', `bytes */${known.details.size}`);
    }
    reply.code(status).header('content-type', 'application/xml');
    // A HEAD answer has no body (S3 gives only the status).
    if (request.method === 'HEAD') return reply.send();
    return reply.send(
      errorXml({ code, message, resource: request.url.split('?')[0], requestId: requestId() }),
    );
  };

  function authenticate(request: FastifyRequest, path: string, query: [string, string][]): SigV4Auth {
    return verifySigV4(
      {
        method: request.method,
        path,
        query,
        headers: request.headers as Record<string, string | string[] | undefined>,
      },
      {
        now: deps.clock.now(),
        region: deps.region,
        secretOf: (id) =>
          id === deps.credentials.accessKeyId ? deps.credentials.secretAccessKey : undefined,
      },
    );
  }

  const lengthOf = (request: FastifyRequest, auth: SigV4Auth): number | undefined => {
    const text = header(request, 'x-amz-decoded-content-length') ?? header(request, 'content-length');
    if (text === undefined) return undefined;
    if (!/^\d{1,16}$/.test(text))
      throw s3Error('InvalidArgument', `content length: expected a byte count, got ${JSON.stringify(text)}`);
    // aws-chunked without the decoded length: the framing's own length says nothing about the object.
    if (
      header(request, 'x-amz-decoded-content-length') === undefined &&
      auth.payloadHash.startsWith('STREAMING-')
    ) {
      return undefined;
    }
    return Number(text);
  };

  async function smallBody(request: FastifyRequest, auth: SigV4Auth): Promise<string> {
    const body = checkBody(request.raw, {
      auth,
      maxBytes: MAX_XML_BYTES,
      ...(lengthOf(request, auth) === undefined ? {} : { length: lengthOf(request, auth)! }),
      ...(header(request, 'content-md5') === undefined
        ? {}
        : { contentMd5: header(request, 'content-md5')! }),
    });
    const parts: Uint8Array[] = [];
    for await (const piece of body.bytes) parts.push(piece);
    return Buffer.concat(parts).toString('utf8');
  }

  async function requireBucket(bucket: string): Promise<void> {
    if ((await deps.namespace.bucket(bucket)) === undefined)
      throw s3Error('NoSuchBucket', `there is no bucket ${bucket}`);
  }

  async function requireObject(bucket: string, key: string): Promise<StoredObject> {
    await requireBucket(bucket);
    const object = await deps.namespace.object(bucket, key);
    if (object === undefined)
      throw s3Error('NoSuchKey', `there is no key ${JSON.stringify(key)} in ${bucket}`);
    return object;
  }

  const objectHeaders = (reply: FastifyReply, o: StoredObject) => {
    reply
      .header('etag', `"${o.etag}"`)
      .header('last-modified', new Date(o.modified).toUTCString())
      .header('content-type', o.contentType)
      .header('accept-ranges', 'bytes');
    for (const [name, value] of Object.entries(o.metadata)) reply.header(`x-amz-meta-${name}`, value);
  };

  async function putObject(
    request: FastifyRequest,
    reply: FastifyReply,
    auth: SigV4Auth,
    bucket: string,
    key: string,
  ) {
    if (header(request, 'x-amz-copy-source') !== undefined)
      throw s3Error('NotImplemented', 'CopyObject is not supported yet');
    await requireBucket(bucket);
    const length = lengthOf(request, auth);
    if (length === undefined && !auth.payloadHash.startsWith('STREAMING-')) {
      throw s3Error('MissingContentLength', 'a PutObject needs a Content-Length');
    }
    const metadata: Record<string, string> = {};
    for (const [name, value] of Object.entries(request.headers)) {
      if (name.startsWith('x-amz-meta-') && typeof value === 'string')
        metadata[name.slice('x-amz-meta-'.length)] = value;
    }
    const body = checkBody(request.raw, {
      auth,
      maxBytes: maxObjectBytes,
      ...(length === undefined ? {} : { length }),
      ...(header(request, 'content-md5') === undefined
        ? {}
        : { contentMd5: header(request, 'content-md5')! }),
    });
    const before = await deps.namespace.object(bucket, key);
    const contentType = header(request, 'content-type');
    await deps.storage.put(body.bytes, {
      name: key.split('/').at(-1)!.slice(0, 255),
      // Built once every byte is read and checked: only then is its MD5 (the ETag) known.
      entry: () => ({
        bucket,
        key,
        etag: body.md5(),
        ...(contentType === undefined ? {} : { contentType }),
        ...(Object.keys(metadata).length === 0 ? {} : { metadata }),
      }),
    });
    // The key names the new object now; the one it named before is deleted (no versioning yet).
    if (before !== undefined)
      await deps.namespace
        .deleteObject(before.fid)
        .catch((err: unknown) => deps.log?.(`the replaced ${before.fid} was not deleted: ${String(err)}`));
    return reply.code(200).header('etag', `"${body.md5()}"`).send();
  }

  async function getObject(
    request: FastifyRequest,
    reply: FastifyReply,
    bucket: string,
    key: string,
    head: boolean,
  ) {
    const object = await requireObject(bucket, key);
    objectHeaders(reply, object);
    const range = parseRange(header(request, 'range'), object.size);
    if (range !== undefined) {
      reply.code(206).header('content-range', `bytes ${range.start}-${range.end}/${object.size}`);
    }
    reply.header('content-length', range === undefined ? object.size : range.end - range.start + 1);
    if (head) return reply.send();
    const stream = deps.storage.get(object.fid, range === undefined ? {} : { range });
    return reply.send(Readable.from(stream, { objectMode: false }));
  }

  async function listObjects(reply: FastifyReply, bucket: string, query: Map<string, string>) {
    await requireBucket(bucket);
    if (query.get('list-type') !== '2')
      throw s3Error('NotImplemented', 'only ListObjectsV2 (list-type=2) is supported');
    const prefix = query.get('prefix') ?? '';
    const maxKeysText = query.get('max-keys');
    const maxKeys = maxKeysText === undefined ? MAX_KEYS : Number(maxKeysText);
    const startAfter = query.get('start-after');
    const continuationToken = query.get('continuation-token');
    const delimiter = query.get('delimiter');
    const listQuery = {
      prefix,
      maxKeys,
      ...(delimiter === undefined ? {} : { delimiter }),
      ...(startAfter === undefined ? {} : { startAfter }),
      ...(continuationToken === undefined ? {} : { continuationToken }),
    };
    const page = listPage(await deps.namespace.objects(bucket, prefix), (o) => o.key, listQuery);
    return reply
      .header('content-type', 'application/xml')
      .send(listObjectsV2Xml(bucket, { ...listQuery, maxKeys: Math.min(maxKeys, MAX_KEYS) }, page));
  }

  async function deleteObjects(
    request: FastifyRequest,
    reply: FastifyReply,
    auth: SigV4Auth,
    bucket: string,
  ) {
    await requireBucket(bucket);
    const { keys, quiet } = deleteObjectsKeys(await smallBody(request, auth));
    const results: string[] = [];
    for (const key of keys) {
      try {
        const object = await deps.namespace.object(bucket, validKey(key));
        if (object !== undefined) await deps.namespace.deleteObject(object.fid);
        if (!quiet) results.push(`<Deleted><Key>${escapeXml(key)}</Key></Deleted>`);
      } catch (err) {
        const code = hasCode(err) ? s3CodeOf(err) : 'InternalError';
        results.push(
          `<Error><Key>${escapeXml(key)}</Key><Code>${code}</Code><Message>${escapeXml(hasCode(err) ? err.message : 'internal error')}</Message></Error>`,
        );
      }
    }
    return reply
      .header('content-type', 'application/xml')
      .send(
        `<?xml version="1.0" encoding="UTF-8"?>\n<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${results.join('')}</DeleteResult>`,
      );
  }

  async function route(request: FastifyRequest, reply: FastifyReply) {
    const raw = request.raw.url ?? '/';
    const at = raw.indexOf('?');
    const path = at === -1 ? raw : raw.slice(0, at);
    const query = parseQuery(at === -1 ? '' : raw.slice(at + 1));
    const auth = authenticate(request, path, query);
    const q = new Map(query);
    const slash = path.indexOf('/', 1);
    let bucketPart: string;
    let keyPart: string | undefined;
    try {
      bucketPart = decodeURIComponent(slash === -1 ? path.slice(1) : path.slice(1, slash));
      keyPart =
        slash === -1 || slash === path.length - 1 ? undefined : decodeURIComponent(path.slice(slash + 1));
    } catch {
      throw s3Error('InvalidURI', 'the path is not valid percent-encoding');
    }
    const method = request.method;
    if (bucketPart === '') {
      if (method !== 'GET') throw s3Error('MethodNotAllowed', `${method} / is not an S3 operation`);
      const buckets = await deps.namespace.buckets();
      return reply
        .header('content-type', 'application/xml')
        .send(listBucketsXml({ id: deps.namespace.owner, displayName: deps.namespace.owner }, buckets));
    }
    const bucket = validBucket(bucketPart);
    if (keyPart === undefined) {
      if (method === 'PUT') {
        await smallBody(request, auth); // CreateBucketConfiguration: the region is the gateway's
        await deps.namespace.createBucket(bucket);
        return reply.header('location', `/${bucket}`).send();
      }
      if (method === 'HEAD') {
        await requireBucket(bucket);
        return reply.header('x-amz-bucket-region', deps.region).send();
      }
      if (method === 'DELETE') {
        await deps.namespace.deleteBucket(bucket);
        return reply.code(204).send();
      }
      if (method === 'POST' && q.has('delete')) return deleteObjects(request, reply, auth, bucket);
      if (method === 'GET' && q.has('location')) {
        await requireBucket(bucket);
        return reply
          .header('content-type', 'application/xml')
          .send(
            `<?xml version="1.0" encoding="UTF-8"?>\n<LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${escapeXml(deps.region)}</LocationConstraint>`,
          );
      }
      if (method === 'GET') return listObjects(reply, bucket, q);
      throw s3Error('NotImplemented', `${method} on a bucket is not supported`);
    }
    const key = validKey(keyPart);
    if (method === 'PUT') return putObject(request, reply, auth, bucket, key);
    if (method === 'GET') return getObject(request, reply, bucket, key, false);
    if (method === 'HEAD') return getObject(request, reply, bucket, key, true);
    if (method === 'DELETE') {
      await requireBucket(bucket);
      const object = await deps.namespace.object(bucket, key);
      if (object !== undefined) await deps.namespace.deleteObject(object.fid);
      return reply.code(204).send();
    }
    throw s3Error('NotImplemented', `${method} on an object is not supported`);
  }

  app.route({
    method: ['GET', 'HEAD', 'PUT', 'POST', 'DELETE'],
    url: '/*',
    handler: async (request, reply) => {
      try {
        return await route(request, reply);
      } catch (err) {
        return fail(reply, request, err);
      }
    },
  });
  return app;
}
