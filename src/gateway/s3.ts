import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { EntrySchema, formatBytes, type ObjectEntry, type Retention } from '../chain/index.ts';
import { toHex } from '../shared/bytes.ts';
import type { Clock, Random } from '../shared/clock.ts';
import { AilinkError, hasCode } from '../shared/errors.ts';
import type { StorageClient } from '../storage/index.ts';
import { checkBody } from './body.ts';
import {
  completeParts,
  MAX_PART_BYTES,
  MIN_PART_BYTES,
  multipartEtag,
  parsePartNumber,
  type UploadStore,
} from './multipart.ts';
import type { Namespace, StoredObject } from './namespace.ts';
import {
  defaultRetentionOf,
  deleteObjectsKeys,
  header,
  parseQuery,
  parseRange,
  S3_STATUS,
  s3CodeOf,
  s3Error,
  validBucket,
  validKey,
} from './s3-http.ts';
import { compareKeys, listPage, MAX_KEYS } from './s3-list.ts';
import {
  errorXml,
  escapeXml,
  listBucketsXml,
  listObjectsV2Xml,
  listPartsXml,
  listUploadsXml,
  resultXml,
  s3Time,
} from './s3-xml.ts';
import { type SigV4Auth, verifySigV4 } from './sigv4.ts';

/**
 * The gateway's S3 API (issue 16), path-style and virtual-host: buckets and keys are the account's namespace on chain,
 * objects go through the storage client (sealed with the account's keys here, at the organisation), every request is
 * SigV4-signed with the gateway's access key. Operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket,
 * GetBucketLocation, PutObject, CopyObject, GetObject (one range), HeadObject, DeleteObject, DeleteObjects,
 * ListObjectsV2, and multipart uploads (Create, UploadPart, UploadPartCopy, Complete, Abort, ListParts,
 * ListMultipartUploads) staged on the gateway's disk.
 */

export interface S3Credentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
}

export interface S3Deps {
  readonly storage: Pick<StorageClient, 'put' | 'get'>;
  readonly namespace: Namespace;
  /** Where multipart uploads wait for their parts (the gateway's data dir). */
  readonly uploads: UploadStore;
  /**
   * The domain of virtual-host requests: `<bucket>.<domain>` names a bucket (S3 clients' default addressing). Path-style
   * requests work whatever the Host.
   */
  readonly domain?: string;
  readonly credentials: S3Credentials;
  readonly region: string;
  readonly clock: Clock;
  readonly random: Random;
  /**
   * The largest object (default: S3's limits, 5 GiB in one PutObject, 5 TiB in parts). The gateway node sets what one
   * declaration can name, so an upload too large for it is refused before it is read, not after it is stored.
   */
  readonly maxObjectBytes?: number;
  /** Failures the client is told only "internal error" about. */
  readonly log?: (line: string) => void;
}

const GiB = 1024 ** 3;
/** The most one object may hold when uploaded in parts (S3's limit). */
const MAX_UPLOAD_BYTES = 5 * 1024 * GiB;
/** Request bodies that are not objects (DeleteObjects, CreateBucket, CompleteMultipartUpload): XML. */
const MAX_XML_BYTES = 2 * 1024 * 1024;
/** How often a long answer (CompleteMultipartUpload, CopyObject) sends a space so that clients keep waiting. */
const KEEP_ALIVE_MS = 10_000;
/**
 * Path prefixes the gateway's other APIs take (`/altda/…`, `/deoss/…`): a bucket of such a name could not be
 * reached path-style, so the gateway does not create one.
 */
export const RESERVED_BUCKETS: ReadonlySet<string> = new Set(['altda', 'deoss']);

export function buildS3App(deps: S3Deps): FastifyInstance {
  const maxObjectBytes = deps.maxObjectBytes ?? 5 * GiB;
  // An object uploaded in parts is still one declaration: the same limit when one is set.
  const maxUploadBytes = deps.maxObjectBytes ?? MAX_UPLOAD_BYTES;
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
    if (o.retention !== undefined) {
      reply
        .header('x-amz-object-lock-mode', o.retention.mode)
        .header('x-amz-object-lock-retain-until-date', new Date(o.retention.until).toISOString());
    }
  };

  /** S3 object lock headers: a mode and a date, both or neither. */
  function retentionOf(mode: string | undefined, until: string | undefined): Retention | undefined {
    if (mode === undefined && until === undefined) return undefined;
    const ms = until === undefined ? Number.NaN : Date.parse(until);
    if ((mode !== 'COMPLIANCE' && mode !== 'GOVERNANCE') || !Number.isFinite(ms)) {
      throw s3Error(
        'InvalidArgument',
        `object lock: expected a mode (COMPLIANCE or GOVERNANCE) and an ISO 8601 retain-until date, got ${JSON.stringify(mode)} and ${JSON.stringify(until)}`,
      );
    }
    if (ms <= deps.clock.now())
      throw s3Error('InvalidArgument', `object lock: the retain-until date ${until} is not in the future`);
    return { mode, until: ms };
  }

  /**
   * What a write must pass before its body is read: a retention only in a bucket with object lock, and no overwriting
   * of a retained object (it would be deleted, and there are no versions yet). The chain refuses both too, but only
   * once the object is uploaded.
   */
  async function checkWrite(bucket: string, key: string, retention: Retention | undefined): Promise<void> {
    if (retention !== undefined && !(await deps.namespace.bucket(bucket))?.objectLock) {
      throw s3Error(
        'InvalidRequest',
        `bucket ${bucket} was made without object lock, so its objects carry no retention (x-amz-bucket-object-lock-enabled: true at CreateBucket)`,
      );
    }
    const r = (await deps.namespace.object(bucket, key))?.retention;
    if (r !== undefined && r.until > deps.clock.now()) {
      throw s3Error(
        'AccessDenied',
        `${key} holds an object under ${r.mode} retention until ${new Date(r.until).toISOString()}: it cannot be overwritten before then; write another key`,
      );
    }
  }

  /**
   * The content metadata a request sets (Content-Type, `x-amz-meta-*`), checked against the chain's rules before a
   * byte of the body is read: a bad header must not cost the upload of the whole object first.
   */
  function contentOf(request: FastifyRequest): Pick<ObjectEntry, 'contentType' | 'metadata' | 'retention'> {
    const metadata: Record<string, string> = {};
    for (const [name, value] of Object.entries(request.headers)) {
      if (name.startsWith('x-amz-meta-') && typeof value === 'string')
        metadata[name.slice('x-amz-meta-'.length)] = value;
    }
    const contentType = header(request, 'content-type');
    const retention = retentionOf(
      header(request, 'x-amz-object-lock-mode'),
      header(request, 'x-amz-object-lock-retain-until-date'),
    );
    const content = {
      ...(contentType === undefined ? {} : { contentType }),
      ...(Object.keys(metadata).length === 0 ? {} : { metadata }),
      ...(retention === undefined ? {} : { retention }),
    };
    const parsed = EntrySchema.safeParse({ bucket: 'any', key: 'any', ...content });
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw s3Error('InvalidArgument', `${issue?.path.join('.')}: ${issue?.message}`);
    }
    return content;
  }

  /** The body of an upload request, checked as it streams (its signature or checksum, MD5, length, a size limit). */
  /**
   * Refuses up front an object of `bytes` that cannot fit the account's space left, rather than after reading and
   * storing it. Only a sure refusal: the chain charges whole segments, so an object that passes here may still be
   * refused at its declaration (then with the same code).
   */
  async function checkSpace(bytes: number): Promise<void> {
    const left = await deps.namespace.spaceLeft?.();
    if (left === undefined || bytes <= left) return;
    throw new AilinkError(
      'QUOTA_EXCEEDED',
      `an object of ${formatBytes(bytes)} (${bytes} B) does not fit the ${formatBytes(left)} (${left} B) of storage space ${deps.namespace.owner} has left; buy more with \`ailink space buy GIB --for ${deps.namespace.owner}\` or delete objects`,
    );
  }

  function uploadBody(request: FastifyRequest, auth: SigV4Auth, maxBytes: number, what: string) {
    const length = lengthOf(request, auth);
    if (length === undefined && !auth.payloadHash.startsWith('STREAMING-')) {
      throw s3Error('MissingContentLength', `${what} needs a Content-Length`);
    }
    const contentMd5 = header(request, 'content-md5');
    return checkBody(request.raw, {
      auth,
      maxBytes,
      ...(length === undefined ? {} : { length }),
      ...(contentMd5 === undefined ? {} : { contentMd5 }),
    });
  }

  /**
   * Stores `bytes` under `bucket`/`key`. The chain deletes the object the key named before in the call that completes
   * this one (S3's overwrite, no versioning yet). `etag` is asked for once every byte was read.
   */
  async function store(
    bucket: string,
    key: string,
    bytes: AsyncIterable<Uint8Array>,
    content: Pick<ObjectEntry, 'contentType' | 'metadata' | 'retention'>,
    etag: () => string,
  ): Promise<void> {
    await deps.storage.put(bytes, {
      name: key.split('/').at(-1)!.slice(0, 255),
      entry: () => ({ bucket, key, etag: etag(), ...content }),
    });
  }

  async function putObject(
    request: FastifyRequest,
    reply: FastifyReply,
    auth: SigV4Auth,
    bucket: string,
    key: string,
  ) {
    await requireBucket(bucket);
    const content = contentOf(request);
    await checkWrite(bucket, key, content.retention);
    const body = uploadBody(request, auth, maxObjectBytes, 'a PutObject');
    // After the gateway's own limit (EntityTooLarge), before a byte is read.
    const length = lengthOf(request, auth);
    if (length !== undefined) await checkSpace(length);
    await store(bucket, key, body.bytes, content, () => body.md5());
    return reply.code(200).header('etag', `"${body.md5()}"`).send();
  }

  /** The object `x-amz-copy-source` names: `[/]bucket/key`, percent-encoded (a `?versionId` is refused: no versions). */
  async function copySource(request: FastifyRequest): Promise<StoredObject> {
    const text = header(request, 'x-amz-copy-source')!;
    const [path, version] = text.split('?', 2);
    if (version !== undefined)
      throw s3Error(
        'NotImplemented',
        'copying a given version is not supported (buckets have no versions yet)',
      );
    let decoded: string;
    try {
      decoded = decodeURIComponent(path!.replace(/^\//, ''));
    } catch {
      throw s3Error('InvalidArgument', 'x-amz-copy-source is not valid percent-encoding');
    }
    const slash = decoded.indexOf('/');
    if (slash < 1 || slash === decoded.length - 1)
      throw s3Error('InvalidArgument', `x-amz-copy-source: expected bucket/key, got ${JSON.stringify(text)}`);
    return requireObject(validBucket(decoded.slice(0, slash)), validKey(decoded.slice(slash + 1)));
  }

  /** An object's bytes (or a range of them), with their MD5 once read. */
  function readObject(object: StoredObject, range?: { start: number; end: number }) {
    const md5 = createHash('md5');
    let hex: string | undefined;
    const stream = deps.storage.get(object.fid, range === undefined ? {} : { range });
    return {
      bytes: (async function* () {
        for await (const piece of stream) {
          md5.update(piece);
          yield piece;
        }
        hex = md5.digest('hex');
      })(),
      md5: () => hex!,
    };
  }

  async function copyObject(request: FastifyRequest, reply: FastifyReply, bucket: string, key: string) {
    await requireBucket(bucket);
    const source = await copySource(request);
    const directive = (header(request, 'x-amz-metadata-directive') ?? 'COPY').toUpperCase();
    if (directive !== 'COPY' && directive !== 'REPLACE')
      throw s3Error(
        'InvalidArgument',
        `x-amz-metadata-directive: expected COPY or REPLACE, got ${directive}`,
      );
    // S3 copies the content metadata (COPY) but never the source's retention: the copy takes the request's.
    const requested = contentOf(request);
    const content =
      directive === 'REPLACE'
        ? requested
        : {
            contentType: source.contentType,
            ...(Object.keys(source.metadata).length === 0 ? {} : { metadata: { ...source.metadata } }),
            ...(requested.retention === undefined ? {} : { retention: requested.retention }),
          };
    if (
      source.key === key &&
      directive === 'COPY' &&
      (await deps.namespace.object(bucket, key))?.fid === source.fid
    ) {
      throw s3Error(
        'InvalidRequest',
        'copying an object onto itself changes nothing; send x-amz-metadata-directive: REPLACE to change its metadata',
      );
    }
    await checkWrite(bucket, key, content.retention);
    await checkSpace(source.size);
    const copied = readObject(source);
    return longAnswer(reply, async () => {
      await store(bucket, key, copied.bytes, content, copied.md5);
      return resultXml('CopyObjectResult', {
        LastModified: s3Time(deps.clock.now()),
        ETag: `"${copied.md5()}"`,
      });
    });
  }

  /**
   * Answers 200 at once and sends a space every few seconds until `work` is done, then its XML, or S3's error
   * document if it failed: S3's own way of keeping clients (and proxies) waiting through a long CompleteMultipartUpload
   * or CopyObject. Clients read an error document in a 200 answer of these operations as the failure it is.
   */
  function longAnswer(reply: FastifyReply, work: () => Promise<string>) {
    const outcome = work().then(
      (xml) => ({ xml }),
      (err: unknown) => ({ err }),
    );
    const prolog = '<?xml version="1.0" encoding="UTF-8"?>\n';
    const body = async function* () {
      yield prolog;
      for (;;) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const tick = new Promise<undefined>((resolve) => {
          timer = setTimeout(() => resolve(undefined), KEEP_ALIVE_MS);
        });
        const done = await Promise.race([outcome, tick]);
        clearTimeout(timer);
        if (done === undefined) {
          yield ' ';
          continue;
        }
        if ('xml' in done) {
          yield done.xml.slice(done.xml.indexOf('\n') + 1);
          return;
        }
        const known = hasCode(done.err) ? done.err : undefined;
        if (known === undefined)
          deps.log?.(`a long request failed: ${String((done.err as Error)?.stack ?? done.err)}`);
        const code = known === undefined ? 'InternalError' : s3CodeOf(known);
        const xml = errorXml({
          code,
          message:
            known === undefined || code === 'InternalError'
              ? 'the gateway failed; see its log'
              : known.message,
          requestId: requestId(),
        });
        yield xml.slice(xml.indexOf('\n') + 1);
        return;
      }
    };
    return reply.code(200).header('content-type', 'application/xml').send(Readable.from(body()));
  }

  async function createUpload(request: FastifyRequest, reply: FastifyReply, bucket: string, key: string) {
    await requireBucket(bucket);
    const content = contentOf(request);
    await checkWrite(bucket, key, content.retention);
    const uploadId = await deps.uploads.create(
      {
        bucket,
        key,
        metadata: content.metadata ?? {},
        ...(content.contentType === undefined ? {} : { contentType: content.contentType }),
        ...(content.retention === undefined ? {} : { retention: content.retention }),
      },
      deps.clock.now(),
    );
    return reply
      .header('content-type', 'application/xml')
      .send(resultXml('InitiateMultipartUploadResult', { Bucket: bucket, Key: key, UploadId: uploadId }));
  }

  async function uploadPart(
    request: FastifyRequest,
    reply: FastifyReply,
    auth: SigV4Auth,
    bucket: string,
    key: string,
    q: Map<string, string>,
  ) {
    const uploadId = q.get('uploadId')!;
    const number = parsePartNumber(q.get('partNumber'));
    await deps.uploads.info(uploadId, bucket, key);
    if (header(request, 'x-amz-copy-source') !== undefined) {
      const source = await copySource(request);
      const rangeText = header(request, 'x-amz-copy-source-range');
      const range = rangeText === undefined ? undefined : parseRange(rangeText, source.size);
      if (rangeText !== undefined && range === undefined)
        throw s3Error(
          'InvalidArgument',
          `x-amz-copy-source-range: expected bytes=first-last, got ${rangeText}`,
        );
      const copied = readObject(source, range);
      const part = await deps.uploads.writePart(uploadId, number, copied.bytes, copied.md5, deps.clock.now());
      return reply
        .header('content-type', 'application/xml')
        .send(resultXml('CopyPartResult', { LastModified: s3Time(part.modified), ETag: `"${part.etag}"` }));
    }
    const body = uploadBody(request, auth, MAX_PART_BYTES, 'an UploadPart');
    const part = await deps.uploads.writePart(
      uploadId,
      number,
      body.bytes,
      () => body.md5(),
      deps.clock.now(),
    );
    return reply.header('etag', `"${part.etag}"`).send();
  }

  async function completeUpload(
    request: FastifyRequest,
    reply: FastifyReply,
    auth: SigV4Auth,
    bucket: string,
    key: string,
    uploadId: string,
  ) {
    await requireBucket(bucket);
    const upload = await deps.uploads.info(uploadId, bucket, key);
    const listed = completeParts(await smallBody(request, auth));
    const stored = new Map((await deps.uploads.parts(uploadId)).map((p) => [p.number, p]));
    let total = 0;
    listed.forEach((p, i) => {
      const part = stored.get(p.number);
      if (part === undefined || part.etag !== p.etag)
        throw s3Error(
          'InvalidPart',
          `part ${p.number} with ETag "${p.etag}" was not uploaded to ${uploadId}`,
        );
      if (i < listed.length - 1 && part.size < MIN_PART_BYTES) {
        throw s3Error(
          'EntityTooSmall',
          `part ${p.number} holds ${part.size} bytes; every part but the last must hold at least ${MIN_PART_BYTES}`,
        );
      }
      total += part.size;
    });
    if (total > maxUploadBytes)
      throw s3Error(
        'EntityTooLarge',
        `the parts hold ${total} bytes; the most one object may hold here is ${maxUploadBytes}`,
      );
    const etag = multipartEtag(listed.map((p) => p.etag));
    const content = {
      ...(upload.contentType === undefined ? {} : { contentType: upload.contentType }),
      ...(Object.keys(upload.metadata).length === 0 ? {} : { metadata: upload.metadata }),
      ...(upload.retention === undefined ? {} : { retention: upload.retention }),
    };
    await checkWrite(bucket, key, undefined);
    await checkSpace(total);
    return longAnswer(reply, async () => {
      await store(
        bucket,
        key,
        deps.uploads.read(
          uploadId,
          listed.map((p) => p.number),
        ),
        content,
        () => etag,
      );
      await deps.uploads.remove(uploadId);
      return resultXml('CompleteMultipartUploadResult', {
        Location: `/${bucket}/${key}`,
        Bucket: bucket,
        Key: key,
        ETag: `"${etag}"`,
      });
    });
  }

  async function listParts(reply: FastifyReply, bucket: string, key: string, q: Map<string, string>) {
    const uploadId = q.get('uploadId')!;
    await deps.uploads.info(uploadId, bucket, key);
    const marker = Number(q.get('part-number-marker') ?? 0);
    const maxParts = Math.min(Number(q.get('max-parts') ?? 1000), 1000);
    if (!Number.isInteger(marker) || !Number.isInteger(maxParts) || maxParts < 0)
      throw s3Error('InvalidArgument', 'part-number-marker and max-parts must be whole numbers');
    const after = (await deps.uploads.parts(uploadId)).filter((p) => p.number > marker);
    const parts = after.slice(0, maxParts);
    const truncated = after.length > parts.length;
    return reply
      .header('content-type', 'application/xml')
      .send(
        listPartsXml(
          { bucket, key, uploadId, owner: deps.namespace.owner },
          { marker, maxParts, parts, ...(truncated ? { next: parts.at(-1)?.number ?? marker } : {}) },
        ),
      );
  }

  async function listUploads(reply: FastifyReply, bucket: string, q: Map<string, string>) {
    await requireBucket(bucket);
    const prefix = q.get('prefix') ?? '';
    const keyMarker = q.get('key-marker') ?? '';
    const uploadIdMarker = q.get('upload-id-marker') ?? '';
    const maxUploads = Math.min(Number(q.get('max-uploads') ?? 1000), 1000);
    if (!Number.isInteger(maxUploads) || maxUploads < 0)
      throw s3Error('InvalidArgument', 'max-uploads must be a whole number');
    const order = (a: { key: string; uploadId: string }, b: { key: string; uploadId: string }) =>
      compareKeys(a.key, b.key) || (a.uploadId < b.uploadId ? -1 : a.uploadId > b.uploadId ? 1 : 0);
    // After the markers: keys past key-marker, or with upload-id-marker, that key's later uploads too.
    const past = (u: { key: string; uploadId: string }) =>
      uploadIdMarker === ''
        ? keyMarker === '' || compareKeys(u.key, keyMarker) > 0
        : order(u, { key: keyMarker, uploadId: uploadIdMarker }) > 0;
    const after = (await deps.uploads.uploads())
      .filter((u) => u.bucket === bucket && u.key.startsWith(prefix) && past(u))
      .sort(order);
    const uploads = after.slice(0, maxUploads);
    const last = uploads.at(-1);
    return reply
      .header('content-type', 'application/xml')
      .send(
        listUploadsXml(
          bucket,
          { prefix, keyMarker, uploadIdMarker, maxUploads },
          { uploads, ...(after.length > uploads.length && last !== undefined ? { next: last } : {}) },
          deps.namespace.owner,
        ),
      );
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

  /** Get/PutObjectLockConfiguration (`?object-lock`): whether the bucket has object lock, and its default retention. */
  async function objectLock(request: FastifyRequest, reply: FastifyReply, auth: SigV4Auth, bucket: string) {
    const info = await deps.namespace.bucket(bucket);
    if (info === undefined) throw s3Error('NoSuchBucket', `there is no bucket ${bucket}`);
    if (!info.objectLock) {
      throw s3Error(
        'ObjectLockConfigurationNotFoundError',
        `bucket ${bucket} was made without object lock (x-amz-bucket-object-lock-enabled: true at CreateBucket)`,
      );
    }
    if (request.method === 'PUT') {
      await deps.namespace.putObjectLock(bucket, defaultRetentionOf(await smallBody(request, auth)));
      return reply.send();
    }
    const rule = info.defaultRetention;
    return reply
      .header('content-type', 'application/xml')
      .send(
        `<?xml version="1.0" encoding="UTF-8"?>\n<ObjectLockConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><ObjectLockEnabled>Enabled</ObjectLockEnabled>${rule === null ? '' : `<Rule><DefaultRetention><Mode>${rule.mode}</Mode><Days>${rule.days}</Days></DefaultRetention></Rule>`}</ObjectLockConfiguration>`,
      );
  }

  /** `x-amz-bypass-governance-retention: true`: delete under GOVERNANCE retention (the gateway is the owner). */
  const bypassOf = (request: FastifyRequest) => ({
    bypassGovernance: header(request, 'x-amz-bypass-governance-retention')?.toLowerCase() === 'true',
  });

  /** GetObjectRetention and PutObjectRetention (`?retention`). */
  async function retention(
    request: FastifyRequest,
    reply: FastifyReply,
    auth: SigV4Auth,
    bucket: string,
    key: string,
  ) {
    const object = await requireObject(bucket, key);
    if (request.method === 'GET') {
      if (object.retention === undefined)
        throw s3Error('NoSuchObjectLockConfiguration', `${key} has no retention`);
      return reply.header('content-type', 'application/xml').send(
        resultXml('Retention', {
          Mode: object.retention.mode,
          RetainUntilDate: new Date(object.retention.until).toISOString(),
        }),
      );
    }
    const xml = await smallBody(request, auth);
    if (!/^\s*(<\?xml[^>]*\?>\s*)?<Retention[\s>]/.test(xml))
      throw s3Error('MalformedXML', 'expected a <Retention> document');
    const wanted = retentionOf(
      /<Mode>\s*([^<]*?)\s*<\/Mode>/.exec(xml)?.[1],
      /<RetainUntilDate>\s*([^<]*?)\s*<\/RetainUntilDate>/.exec(xml)?.[1],
    );
    if (wanted === undefined)
      throw s3Error('MalformedXML', 'a <Retention> needs a <Mode> and a <RetainUntilDate>');
    await deps.namespace.putRetention(object.fid, wanted);
    return reply.send();
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
        if (object !== undefined) await deps.namespace.deleteObject(object.fid, bypassOf(request));
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

  /**
   * The bucket and key a request addresses: virtual-host (`<bucket>.<domain>` in Host, the key is the path) or
   * path-style (`/<bucket>/<key>`).
   */
  function addressOf(
    host: string | undefined,
    path: string,
  ): { bucketPart: string; keyPart: string | undefined } {
    const name = host?.toLowerCase().replace(/:\d+$/, '');
    const suffix = deps.domain === undefined ? undefined : `.${deps.domain.toLowerCase()}`;
    try {
      if (suffix !== undefined && name?.endsWith(suffix) && name.length > suffix.length) {
        return {
          bucketPart: name.slice(0, -suffix.length),
          keyPart: path.length <= 1 ? undefined : decodeURIComponent(path.slice(1)),
        };
      }
      const slash = path.indexOf('/', 1);
      return {
        bucketPart: decodeURIComponent(slash === -1 ? path.slice(1) : path.slice(1, slash)),
        keyPart:
          slash === -1 || slash === path.length - 1 ? undefined : decodeURIComponent(path.slice(slash + 1)),
      };
    } catch {
      throw s3Error('InvalidURI', 'the path is not valid percent-encoding');
    }
  }

  async function route(request: FastifyRequest, reply: FastifyReply) {
    const raw = request.raw.url ?? '/';
    const at = raw.indexOf('?');
    const path = at === -1 ? raw : raw.slice(0, at);
    const query = parseQuery(at === -1 ? '' : raw.slice(at + 1));
    const auth = authenticate(request, path, query);
    const q = new Map(query);
    const { bucketPart, keyPart } = addressOf(header(request, 'host'), path);
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
      // Sub-resources first: a PUT of ?object-lock is no CreateBucket.
      if (q.has('object-lock') && (method === 'GET' || method === 'PUT'))
        return objectLock(request, reply, auth, bucket);
      if (method === 'PUT') {
        await smallBody(request, auth); // CreateBucketConfiguration: the region is the gateway's
        if (RESERVED_BUCKETS.has(bucket))
          throw s3Error(
            'InvalidBucketName',
            `${bucket} is reserved: /${bucket}/ is another API of this gateway`,
          );
        const lock = header(request, 'x-amz-bucket-object-lock-enabled')?.toLowerCase() === 'true';
        await deps.namespace.createBucket(bucket, { objectLock: lock });
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
      if (method === 'GET' && q.has('uploads')) return listUploads(reply, bucket, q);
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
    const uploadId = q.get('uploadId');
    if (uploadId !== undefined) {
      if (method === 'PUT') return uploadPart(request, reply, auth, bucket, key, q);
      if (method === 'POST') return completeUpload(request, reply, auth, bucket, key, uploadId);
      if (method === 'GET') return listParts(reply, bucket, key, q);
      if (method === 'DELETE') {
        await deps.uploads.info(uploadId, bucket, key);
        await deps.uploads.remove(uploadId);
        return reply.code(204).send();
      }
    }
    if (method === 'POST' && q.has('uploads')) return createUpload(request, reply, bucket, key);
    if (q.has('retention') && (method === 'GET' || method === 'PUT'))
      return retention(request, reply, auth, bucket, key);
    if (method === 'PUT' && header(request, 'x-amz-copy-source') !== undefined)
      return copyObject(request, reply, bucket, key);
    if (method === 'PUT') return putObject(request, reply, auth, bucket, key);
    if (method === 'GET') return getObject(request, reply, bucket, key, false);
    if (method === 'HEAD') return getObject(request, reply, bucket, key, true);
    if (method === 'DELETE') {
      await requireBucket(bucket);
      const object = await deps.namespace.object(bucket, key);
      if (object !== undefined) await deps.namespace.deleteObject(object.fid, bypassOf(request));
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
