import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { hasCode } from '../shared/errors.ts';
import type { BucketView } from './namespace.ts';
import type { S3Context } from './s3-context.ts';
import { deleteObjectsKeys, header, parseRange, s3CodeOf, s3Error, validKey } from './s3-http.ts';
import { listPage, MAX_KEYS } from './s3-list.ts';
import { escapeXml, listObjectsV2Xml, resultXml, s3Time } from './s3-xml.ts';
import type { SigV4Auth } from './sigv4.ts';

/** S3's object operations: PutObject, CopyObject, GetObject/HeadObject (one range), ListObjectsV2, DeleteObject(s). */
export function objectHandlers(ctx: S3Context) {
  const {
    deps,
    maxObjectBytes,
    lengthOf,
    checkSpace,
    smallBody,
    requireBucket,
    requireObject,
    keyVersions,
    objectHeaders,
    checkWrite,
    versionHeader,
    contentOf,
    uploadBody,
    store,
    copySource,
    readObject,
    longAnswer,
    versionIdOf,
    bypassOf,
  } = ctx;

  async function putObject(
    request: FastifyRequest,
    reply: FastifyReply,
    auth: SigV4Auth,
    bucket: string,
    key: string,
  ) {
    const view = await requireBucket(bucket);
    const content = contentOf(request);
    checkWrite(bucket, view, content);
    const body = uploadBody(request, auth, maxObjectBytes, 'a PutObject');
    // After the gateway's own limit (EntityTooLarge), before a byte is read.
    const length = lengthOf(request, auth);
    if (length !== undefined) await checkSpace(length);
    const fid = await store(bucket, key, body.bytes, content, () => body.md5(), length);
    versionHeader(reply, view, fid);
    return reply.code(200).header('etag', `"${body.md5()}"`).send();
  }

  async function copyObject(request: FastifyRequest, reply: FastifyReply, bucket: string, key: string) {
    const view = await requireBucket(bucket);
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
            ...(requested.legalHold === undefined ? {} : { legalHold: requested.legalHold }),
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
    checkWrite(bucket, view, content);
    await checkSpace(source.size);
    const copied = readObject(source);
    if (source.versionId !== undefined) reply.header('x-amz-copy-source-version-id', source.versionId);
    return longAnswer(reply, async () => {
      const fid = await store(bucket, key, copied.bytes, content, copied.md5, source.size);
      const xml = resultXml('CopyObjectResult', {
        LastModified: s3Time(deps.clock.now()),
        ETag: `"${copied.md5()}"`,
      });
      return { xml, versionId: versionIdOf(view, fid) };
    });
  }

  async function getObject(
    request: FastifyRequest,
    reply: FastifyReply,
    bucket: string,
    key: string,
    q: Map<string, string>,
    head: boolean,
  ) {
    const object = await requireObject(bucket, key, q.get('versionId'));
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

  /**
   * DeleteObject of a key or of one version. Unversioned: the object is deleted for good. Versioned, without a version:
   * a delete marker becomes the key's newest version (the objects stay). With a version: that object is deleted for
   * good, or that marker removed. Resolves with what S3 reports: the version id it made or removed, and whether that
   * is a delete marker. A key or version that is not there is no error (S3's delete is idempotent).
   */
  async function deleteOne(
    bucket: string,
    view: BucketView,
    key: string,
    versionId: string | undefined,
    bypass: { bypassGovernance: boolean },
  ): Promise<{ versionId?: string; deleteMarker?: boolean }> {
    if (versionId === undefined) {
      if (view.versioning !== undefined) {
        const marker = await deps.namespace.putDeleteMarker(bucket, key);
        return { versionId: marker.versionId, deleteMarker: true };
      }
      const object = await deps.namespace.object(bucket, key);
      if (object !== undefined) await deps.namespace.deleteObject(object.fid, bypass);
      return {};
    }
    const version = (await keyVersions(bucket, key)).find((v) => v.versionId === versionId);
    if (version === undefined) return { versionId };
    if (version.object === undefined) {
      await deps.namespace.removeDeleteMarker(bucket, key, versionId);
      return { versionId, deleteMarker: true };
    }
    await deps.namespace.deleteObject(version.object.fid, bypass);
    return { versionId };
  }

  async function deleteObjects(
    request: FastifyRequest,
    reply: FastifyReply,
    auth: SigV4Auth,
    bucket: string,
  ) {
    const view = await requireBucket(bucket);
    const { objects, quiet } = deleteObjectsKeys(await smallBody(request, auth));
    const results: string[] = [];
    for (const { key, versionId } of objects) {
      const named = `<Key>${escapeXml(key)}</Key>${versionId === undefined ? '' : `<VersionId>${escapeXml(versionId)}</VersionId>`}`;
      try {
        const done = await deleteOne(bucket, view, validKey(key), versionId, bypassOf(request));
        // A delete that made or removed a marker says so, with the marker's id when it was not the one asked for.
        const marker =
          done.deleteMarker === true
            ? `<DeleteMarker>true</DeleteMarker>${versionId === undefined ? `<DeleteMarkerVersionId>${escapeXml(done.versionId!)}</DeleteMarkerVersionId>` : ''}`
            : '';
        if (!quiet) results.push(`<Deleted>${named}${marker}</Deleted>`);
      } catch (err) {
        const code = hasCode(err) ? s3CodeOf(err) : 'InternalError';
        results.push(
          `<Error>${named}<Code>${code}</Code><Message>${escapeXml(hasCode(err) ? err.message : 'internal error')}</Message></Error>`,
        );
      }
    }
    return reply
      .header('content-type', 'application/xml')
      .send(
        `<?xml version="1.0" encoding="UTF-8"?>\n<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${results.join('')}</DeleteResult>`,
      );
  }

  return { putObject, copyObject, getObject, listObjects, deleteOne, deleteObjects };
}
