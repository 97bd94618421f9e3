import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { hasCode } from '../shared/errors.ts';
import { errorAnswer } from './deoss-protocol.ts';
import { createS3Context, type S3Deps } from './s3-context.ts';
import { header, parseQuery, S3_STATUS, s3CodeOf, s3Error, validBucket, validKey } from './s3-http.ts';
import { lockHandlers } from './s3-lock.ts';
import { objectHandlers } from './s3-objects.ts';
import { uploadHandlers } from './s3-uploads.ts';
import { versionHandlers } from './s3-versions.ts';
import { errorXml, escapeXml, listBucketsXml } from './s3-xml.ts';
import { type SigV4Auth, verifySigV4 } from './sigv4.ts';
import { loadWebPage } from './web.ts';

/**
 * The gateway's S3 API (issue 16), path-style and virtual-host: buckets and keys are the account's namespace on chain,
 * objects go through the storage client (sealed with the account's keys here, at the organisation), every request is
 * SigV4-signed with the gateway's access key. Operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket,
 * GetBucketLocation, PutObject, CopyObject, GetObject (one range), HeadObject, DeleteObject, DeleteObjects,
 * ListObjectsV2, multipart uploads (Create, UploadPart, UploadPartCopy, Complete, Abort, ListParts,
 * ListMultipartUploads) staged on the gateway's disk, bucket versioning (Get/PutBucketVersioning, ListObjectVersions,
 * versionId on reads, deletes and copies, delete markers) and object lock (retention, legal holds, bucket defaults).
 */

export type { S3Credentials, S3Deps } from './s3-context.ts';

/**
 * Path prefixes the gateway's other APIs take (`/altda/…`, `/deoss/…`, `/market/…`): a bucket of such a name could not be
 * reached path-style, so the gateway does not create one.
 */
export const RESERVED_BUCKETS: ReadonlySet<string> = new Set(['altda', 'deoss', 'market']);

/** A request fastify refused before routing, answered as INVALID_INPUT in the shape of the JSON API its path is under. */
function jsonRefusal(url: string, message: string): string | undefined {
  const body = url.startsWith('/deoss/')
    ? errorAnswer('INVALID_INPUT', message)
    : url.startsWith('/altda/')
      ? { code: 'INVALID_INPUT', message }
      : url.startsWith('/market/')
        ? { error: 'INVALID_INPUT', message }
        : undefined;
  return body === undefined ? undefined : JSON.stringify(body);
}

export function buildS3App(deps: S3Deps): FastifyInstance {
  const ctx = createS3Context(deps);
  const { requestId, smallBody, requireBucket, bypassOf } = ctx;
  const { putObject, copyObject, getObject, listObjects, deleteOne, deleteObjects } = objectHandlers(ctx);
  const { createUpload, uploadPart, completeUpload, listParts, listUploads } = uploadHandlers(ctx);
  const { objectLock, retention, legalHold } = lockHandlers(ctx);
  const { versioning, listVersions } = versionHandlers(ctx);
  // No total deadline (a 5 GiB upload may take long), but a socket silent for 2 minutes is closed: a client that
  // stops sending mid-body does not hold its request forever.
  const app = Fastify({
    logger: false,
    exposeHeadRoutes: false,
    requestTimeout: 0,
    connectionTimeout: 120_000,
    // Errors fastify meets before routing (a path whose percent-escapes do not decode, a bad content type) are S3
    // errors too: its own JSON answer is one no S3 client reads (found by `npm run fuzz`).
    // Under the JSON APIs beside S3 (DeOSS, Alt-DA, the market) the answer is in that API's own shape.
    frameworkErrors: (error, request, reply) => {
      const json = jsonRefusal(request.url, `cannot read the request: ${error.message}`);
      if (json !== undefined)
        return (reply as FastifyReply).code(400).header('content-type', 'application/json').send(json);
      return fail(
        reply,
        request,
        error.code === 'FST_ERR_BAD_URL'
          ? s3Error('InvalidURI', `cannot decode the request's path: ${error.message}`)
          : s3Error('InvalidRequest', error.message),
      );
    },
  });
  // Multipart uploads untouched past the store's expiry are aborted now and then (the store sweeps at start, and a
  // request that reaches one finds it gone); the timer keeps no process alive and stops with the app.
  const sweeper = setInterval(() => {
    deps.uploads.sweepExpired().then(
      (gone) => {
        if (gone.length > 0)
          deps.log?.(
            `aborted ${gone.length} multipart upload(s) untouched past their expiry: ${gone.join(', ')}`,
          );
      },
      (err: unknown) => deps.log?.(`sweeping expired multipart uploads failed: ${String(err)}`),
    );
  }, deps.uploadSweepMs ?? 600_000);
  sweeper.unref();
  app.addHook('onClose', async () => clearInterval(sweeper));
  // Bodies are streams the handlers read themselves (objects of GBs never sit in memory).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null, undefined));

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
    // What a read of a delete marker (or of a key whose newest version is one) answers besides its error.
    if (typeof known?.details?.deleteMarker === 'string') {
      reply.header('x-amz-delete-marker', 'true').header('x-amz-version-id', known.details.deleteMarker);
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

  /** The bucket a virtual-host request names (`<bucket>.<domain>` in Host), or undefined for a path-style one. */
  function virtualBucketOf(host: string | undefined): string | undefined {
    const name = host?.toLowerCase().replace(/:\d+$/, '');
    const suffix = deps.domain === undefined ? undefined : `.${deps.domain.toLowerCase()}`;
    return suffix !== undefined && name?.endsWith(suffix) && name.length > suffix.length
      ? name.slice(0, -suffix.length)
      : undefined;
  }

  /**
   * The bucket and key a request addresses: virtual-host (`<bucket>.<domain>` in Host, the key is the path) or
   * path-style (`/<bucket>/<key>`).
   */
  function addressOf(
    host: string | undefined,
    path: string,
  ): { bucketPart: string; keyPart: string | undefined } {
    const virtualBucket = virtualBucketOf(host);
    try {
      if (virtualBucket !== undefined) {
        return {
          bucketPart: virtualBucket,
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
      if (q.has('versioning') && (method === 'GET' || method === 'PUT'))
        return versioning(request, reply, auth, bucket);
      if (q.has('versions') && method === 'GET') return listVersions(reply, bucket, q);
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
      return retention(request, reply, auth, bucket, key, q);
    if (q.has('legal-hold') && (method === 'GET' || method === 'PUT'))
      return legalHold(request, reply, auth, bucket, key, q);
    if (method === 'PUT' && header(request, 'x-amz-copy-source') !== undefined)
      return copyObject(request, reply, bucket, key);
    if (method === 'PUT') return putObject(request, reply, auth, bucket, key);
    if (method === 'GET') return getObject(request, reply, bucket, key, q, false);
    if (method === 'HEAD') return getObject(request, reply, bucket, key, q, true);
    if (method === 'DELETE') {
      const done = await deleteOne(
        bucket,
        await requireBucket(bucket),
        key,
        q.get('versionId'),
        bypassOf(request),
      );
      if (done.versionId !== undefined) reply.header('x-amz-version-id', done.versionId);
      if (done.deleteMarker === true) reply.header('x-amz-delete-marker', 'true');
      return reply.code(204).send();
    }
    throw s3Error('NotImplemented', `${method} on an object is not supported`);
  }

  // The drive page: its files only, unsigned; path-style only (on a virtual host `/_ailink/…` is a key of the bucket).
  const page = loadWebPage({ region: deps.region });
  const pageAnswer = (request: FastifyRequest) => {
    if (virtualBucketOf(header(request, 'host')) !== undefined) return undefined;
    const raw = request.raw.url ?? '/';
    const at = raw.indexOf('?');
    return page.answer({
      method: request.method,
      path: at === -1 ? raw : raw.slice(0, at),
      query: at === -1 ? '' : raw.slice(at + 1),
      headers: request.headers as Record<string, string | string[] | undefined>,
    });
  };

  // In a plugin, as the other APIs' routes are: an onRoute hook added to the app after this call sees it too (the
  // fuzz edges' route check, test/fuzz/gateway-routes.test.ts). Routing is the same: the router orders by path.
  app.register(async (scope) => {
    scope.route({
      method: ['GET', 'HEAD', 'PUT', 'POST', 'DELETE'],
      url: '/*',
      handler: async (request, reply) => {
        try {
          const answer = pageAnswer(request);
          if (answer?.error !== undefined)
            return fail(
              reply.headers(answer.headers),
              request,
              s3Error(answer.error.code, answer.error.message),
            );
          if (answer !== undefined)
            return reply.code(answer.status).headers(answer.headers).send(answer.body);
          return await route(request, reply);
        } catch (err) {
          return fail(reply, request, err);
        }
      },
    });
  });
  return app;
}
