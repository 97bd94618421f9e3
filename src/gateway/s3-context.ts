import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { EntrySchema, formatBytes, type ObjectEntry, type Retention } from '../chain/index.ts';
import { toHex } from '../shared/bytes.ts';
import type { Clock, Random } from '../shared/clock.ts';
import { AilinkError, hasCode } from '../shared/errors.ts';
import type { StorageClient } from '../storage/index.ts';
import { checkBody } from './body.ts';
import type { UploadStore } from './multipart.ts';
import type { BucketView, Namespace, StoredObject } from './namespace.ts';
import { header, legalHoldOf, parseQuery, s3CodeOf, s3Error, validBucket, validKey } from './s3-http.ts';
import { errorXml } from './s3-xml.ts';
import type { SigV4Auth } from './sigv4.ts';

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
   * The largest object (default: S3's 5 TiB); one PutObject takes at most 5 GiB of it, as in S3. The gateway node sets
   * what one declaration can name, so an upload too large for it is refused before it is read, not after it is stored.
   */
  readonly maxObjectBytes?: number;
  /** Failures the client is told only "internal error" about. */
  readonly log?: (line: string) => void;
  /** How long a CompleteMultipartUpload or CopyObject may take before its answer turns to S3's keep-alive (10 s). */
  readonly keepAliveMs?: number;
  /** How often multipart uploads past the store's expiry are aborted (default 10 minutes; the store does it at start). */
  readonly uploadSweepMs?: number;
}

const GiB = 1024 ** 3;
/** The most one object may hold when uploaded in parts (S3's limit). */
const MAX_UPLOAD_BYTES = 5 * 1024 * GiB;
/** Request bodies that are not objects (DeleteObjects, CreateBucket, CompleteMultipartUpload): XML. */
const MAX_XML_BYTES = 2 * 1024 * 1024;
/** How long a CompleteMultipartUpload or CopyObject answers as usual; then it sends a space this often (keep-alive). */
const KEEP_ALIVE_MS = 10_000;

/**
 * What the S3 API's handlers share: reading a request's bodies and headers, the namespace look-ups that answer S3's
 * errors (NoSuchBucket, NoSuchKey, NoSuchVersion, delete markers), writing and reading objects through the storage
 * client, and S3's keep-alive for long answers.
 */
export function createS3Context(deps: S3Deps) {
  // An object uploaded in parts is still one declaration: the same limit.
  const maxUploadBytes = deps.maxObjectBytes ?? MAX_UPLOAD_BYTES;
  const maxObjectBytes = Math.min(5 * GiB, maxUploadBytes);
  const keepAliveMs = deps.keepAliveMs ?? KEEP_ALIVE_MS;
  const requestId = () => toHex(deps.random(8)).toUpperCase();
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

  async function requireBucket(bucket: string): Promise<BucketView> {
    const view = await deps.namespace.bucket(bucket);
    if (view === undefined) throw s3Error('NoSuchBucket', `there is no bucket ${bucket}`);
    return view;
  }

  /**
   * The object a key names now, or the version `versionId` names. A delete marker is no object: S3 answers 404 for the
   * key (405 for the marker's own version id), saying that a marker stands there.
   */
  async function requireObject(bucket: string, key: string, versionId?: string): Promise<StoredObject> {
    const view = await requireBucket(bucket);
    if (versionId === undefined) {
      const object = await deps.namespace.object(bucket, key);
      if (object !== undefined) return object;
      const newest = view.versioning === undefined ? undefined : await newestVersion(bucket, key);
      const message = `there is no key ${JSON.stringify(key)} in ${bucket}`;
      if (newest !== undefined && newest.object === undefined)
        throw markerError('NoSuchKey', `${message}: its newest version is a delete marker`, newest.versionId);
      throw s3Error('NoSuchKey', message);
    }
    const version = (await keyVersions(bucket, key)).find((v) => v.versionId === versionId);
    if (version === undefined)
      throw s3Error('NoSuchVersion', `${JSON.stringify(key)} in ${bucket} has no version ${versionId}`);
    if (version.object === undefined) {
      throw markerError(
        'MethodNotAllowed',
        `version ${versionId} of ${JSON.stringify(key)} is a delete marker`,
        versionId,
      );
    }
    return version.object;
  }

  /** An S3 error that also says a delete marker stands where the client looked (headers added by `fail`). */
  const markerError = (s3: string, message: string, versionId: string) =>
    new AilinkError('INVALID_INPUT', message, { details: { s3, deleteMarker: versionId } });

  const keyVersions = async (bucket: string, key: string) =>
    (await deps.namespace.versions(bucket, key)).filter((v) => v.key === key);
  const newestVersion = async (bucket: string, key: string) => (await keyVersions(bucket, key))[0];

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
    if (o.legalHold) reply.header('x-amz-object-lock-legal-hold', 'ON');
    if (o.versionId !== undefined) reply.header('x-amz-version-id', o.versionId);
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
   * What a write must pass before its body is read: a retention or legal hold only in a bucket with object lock. The
   * chain refuses it too, but only once the object is uploaded. (A retained object under the same key is no obstacle:
   * object-lock buckets are versioned, so it stays as an older version.)
   */
  function checkWrite(
    bucket: string,
    view: BucketView,
    content: Pick<ObjectEntry, 'retention' | 'legalHold'>,
  ) {
    if ((content.retention !== undefined || content.legalHold === true) && !view.objectLock) {
      throw s3Error(
        'InvalidRequest',
        `bucket ${bucket} was made without object lock, so its objects carry no retention or legal hold (x-amz-bucket-object-lock-enabled: true at CreateBucket)`,
      );
    }
  }

  /** The version id S3 gives what a write just stored: its fid when versioning is on, "null" when suspended. */
  const versionIdOf = (view: BucketView, fid: string): string | undefined =>
    view.versioning === undefined ? undefined : view.versioning === 'Enabled' ? fid : 'null';
  const versionHeader = (reply: FastifyReply, view: BucketView, fid: string) => {
    const versionId = versionIdOf(view, fid);
    if (versionId !== undefined) reply.header('x-amz-version-id', versionId);
  };

  /**
   * The content metadata a request sets (Content-Type, `x-amz-meta-*`), checked against the chain's rules before a
   * byte of the body is read: a bad header must not cost the upload of the whole object first.
   */
  function contentOf(
    request: FastifyRequest,
  ): Pick<ObjectEntry, 'contentType' | 'metadata' | 'retention' | 'legalHold'> {
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
    const hold = header(request, 'x-amz-object-lock-legal-hold');
    const content = {
      ...(contentType === undefined ? {} : { contentType }),
      ...(Object.keys(metadata).length === 0 ? {} : { metadata }),
      ...(retention === undefined ? {} : { retention }),
      ...(hold !== undefined && legalHoldOf(hold, 'header') ? { legalHold: true } : {}),
    };
    const parsed = EntrySchema.safeParse({ bucket: 'any', key: 'any', ...content });
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw s3Error('InvalidArgument', `${issue?.path.join('.')}: ${issue?.message}`);
    }
    return content;
  }

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

  /** The body of an upload request, checked as it streams (its signature or checksum, MD5, length, a size limit). */
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
   * Stores `bytes` under `bucket`/`key`; resolves with its fid. In the call that completes it the chain deletes the
   * object the key named before (S3's overwrite), or in a versioned bucket keeps that as an older version. `etag` is
   * asked for once every byte was read. `size`, when known up front, lets a small object be coded in a segment of its
   * own size (the storage client's profileForSize) instead of a whole one.
   */
  async function store(
    bucket: string,
    key: string,
    bytes: AsyncIterable<Uint8Array>,
    content: Pick<ObjectEntry, 'contentType' | 'metadata' | 'retention' | 'legalHold'>,
    etag: () => string,
    size: number | undefined,
  ): Promise<string> {
    const { fid } = await deps.storage.put(bytes, {
      name: key.split('/').at(-1)!.slice(0, 255),
      ...(size === undefined ? {} : { size }),
      entry: () => ({ bucket, key, etag: etag(), ...content }),
    });
    return fid;
  }

  /** The object `x-amz-copy-source` names: `[/]bucket/key[?versionId=…]`, percent-encoded. */
  async function copySource(request: FastifyRequest): Promise<StoredObject> {
    const text = header(request, 'x-amz-copy-source')!;
    const [path, query] = text.split('?', 2);
    const params = query === undefined ? [] : parseQuery(query);
    const versionId = params.length === 1 && params[0]![0] === 'versionId' ? params[0]![1] : undefined;
    if (query !== undefined && (versionId === undefined || versionId === ''))
      throw s3Error(
        'InvalidArgument',
        `x-amz-copy-source: expected only ?versionId=…, got ${JSON.stringify(text)}`,
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
    return requireObject(validBucket(decoded.slice(0, slash)), validKey(decoded.slice(slash + 1)), versionId);
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

  /**
   * Answers a CompleteMultipartUpload or CopyObject. Done within KEEP_ALIVE_MS, it is an ordinary answer: the
   * result's XML with its version id, or an error with its own status. Longer, it answers 200 and sends a space every
   * KEEP_ALIVE_MS until `work` is done, then its XML or S3's error document — S3's own way of keeping clients (and
   * proxies) waiting; clients read an error document in a 200 answer of these operations as the failure it is. The
   * version id is then lost: it is a header, and the headers went out before the object existed.
   */
  async function longAnswer(
    reply: FastifyReply,
    work: () => Promise<{ readonly xml: string; readonly versionId?: string | undefined }>,
  ) {
    const outcome = work().then(
      (done) => ({ done }),
      (err: unknown) => ({ err }),
    );
    const tick = () => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const elapsed = new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), keepAliveMs);
      });
      return Promise.race([outcome, elapsed]).finally(() => clearTimeout(timer));
    };
    const early = await tick();
    if (early !== undefined) {
      if ('err' in early) throw early.err;
      if (early.done.versionId !== undefined) reply.header('x-amz-version-id', early.done.versionId);
      return reply.code(200).header('content-type', 'application/xml').send(early.done.xml);
    }
    const body = async function* () {
      yield '<?xml version="1.0" encoding="UTF-8"?>\n';
      for (;;) {
        const done = await tick();
        if (done === undefined) {
          yield ' ';
          continue;
        }
        if ('done' in done) {
          yield done.done.xml.slice(done.done.xml.indexOf('\n') + 1);
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

  /** `x-amz-bypass-governance-retention: true`: delete under GOVERNANCE retention (the gateway is the owner). */
  const bypassOf = (request: FastifyRequest) => ({
    bypassGovernance: header(request, 'x-amz-bypass-governance-retention')?.toLowerCase() === 'true',
  });

  return {
    deps,
    maxObjectBytes,
    maxUploadBytes,
    requestId,
    lengthOf,
    smallBody,
    requireBucket,
    requireObject,
    markerError,
    keyVersions,
    newestVersion,
    objectHeaders,
    retentionOf,
    checkWrite,
    versionHeader,
    versionIdOf,
    contentOf,
    uploadBody,
    store,
    copySource,
    readObject,
    longAnswer,
    bypassOf,
    checkSpace,
  };
}

export type S3Context = ReturnType<typeof createS3Context>;
