import type { FastifyReply, FastifyRequest } from 'fastify';
import {
  completeParts,
  MAX_PART_BYTES,
  MIN_PART_BYTES,
  multipartEtag,
  parsePartNumber,
} from './multipart.ts';
import type { S3Context } from './s3-context.ts';
import { header, parseRange, s3Error } from './s3-http.ts';
import { compareKeys, versionPage } from './s3-list.ts';
import { listPartsXml, listUploadsXml, resultXml, s3Time } from './s3-xml.ts';
import type { SigV4Auth } from './sigv4.ts';

/**
 * S3's multipart uploads over the gateway's staging store: Create, UploadPart (and UploadPartCopy), Complete (one
 * storage put of all parts, answered with S3's keep-alive), ListParts, ListMultipartUploads.
 */
export function uploadHandlers(ctx: S3Context) {
  const {
    deps,
    checkSpace,
    maxUploadBytes,
    smallBody,
    requireBucket,
    checkWrite,
    contentOf,
    uploadBody,
    store,
    copySource,
    readObject,
    longAnswer,
    versionIdOf,
    lengthOf,
  } = ctx;

  async function createUpload(request: FastifyRequest, reply: FastifyReply, bucket: string, key: string) {
    const view = await requireBucket(bucket);
    const content = contentOf(request);
    checkWrite(bucket, view, content);
    const uploadId = await deps.uploads.create(
      {
        bucket,
        key,
        metadata: content.metadata ?? {},
        ...(content.contentType === undefined ? {} : { contentType: content.contentType }),
        ...(content.retention === undefined ? {} : { retention: content.retention }),
        ...(content.legalHold === undefined ? {} : { legalHold: content.legalHold }),
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
      const size = range === undefined ? source.size : range.end - range.start + 1;
      const part = await deps.uploads.writePart(
        uploadId,
        number,
        copied.bytes,
        copied.md5,
        deps.clock.now(),
        size,
      );
      return reply
        .header('content-type', 'application/xml')
        .send(resultXml('CopyPartResult', { LastModified: s3Time(part.modified), ETag: `"${part.etag}"` }));
    }
    const body = uploadBody(request, auth, MAX_PART_BYTES, 'an UploadPart');
    // Its length, when declared, is checked against the staging bound before a byte is read or written.
    const length = lengthOf(request, auth);
    const part = await deps.uploads.writePart(
      uploadId,
      number,
      body.bytes,
      () => body.md5(),
      deps.clock.now(),
      length,
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
    const view = await requireBucket(bucket);
    const upload = await deps.uploads.info(uploadId, bucket, key);
    // A use: the gateway does not abort the upload while it is being stored.
    await deps.uploads.touch(uploadId, deps.clock.now());
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
      ...(upload.legalHold === undefined ? {} : { legalHold: upload.legalHold }),
    };
    await checkSpace(total);
    return longAnswer(reply, async () => {
      const fid = await store(
        bucket,
        key,
        deps.uploads.read(
          uploadId,
          listed.map((p) => p.number),
        ),
        content,
        () => etag,
        total,
      );
      await deps.uploads.remove(uploadId);
      const xml = resultXml('CompleteMultipartUploadResult', {
        Location: `/${bucket}/${key}`,
        Bucket: bucket,
        Key: key,
        ETag: `"${etag}"`,
      });
      return { xml, versionId: versionIdOf(view, fid) };
    });
  }

  async function listParts(reply: FastifyReply, bucket: string, key: string, q: Map<string, string>) {
    const uploadId = q.get('uploadId')!;
    await deps.uploads.info(uploadId, bucket, key);
    // A client listing its parts (to resume) is using the upload: it does not expire meanwhile.
    await deps.uploads.touch(uploadId, deps.clock.now());
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

  /** ListMultipartUploads (`?uploads`): prefix, delimiter, key-marker, upload-id-marker, max-uploads. */
  async function listUploads(reply: FastifyReply, bucket: string, q: Map<string, string>) {
    await requireBucket(bucket);
    const prefix = q.get('prefix') ?? '';
    const delimiter = q.get('delimiter') || undefined;
    const keyMarker = q.get('key-marker') ?? '';
    const uploadIdMarker = q.get('upload-id-marker') ?? '';
    const maxUploads = Math.min(Number(q.get('max-uploads') ?? 1000), 1000);
    if (!Number.isInteger(maxUploads) || maxUploads < 0)
      throw s3Error('InvalidArgument', 'max-uploads must be a whole number');
    // After the markers: keys past key-marker; with upload-id-marker, that key's uploads of a greater id too; after
    // a page that ended in a common prefix (key-marker ending in the delimiter), none of that prefix's keys.
    const past = (u: { key: string; uploadId: string }) => {
      if (keyMarker === '') return true;
      if (uploadIdMarker !== '' && u.key === keyMarker) return u.uploadId > uploadIdMarker;
      if (compareKeys(u.key, keyMarker) <= 0) return false;
      return !(delimiter !== undefined && keyMarker.endsWith(delimiter) && u.key.startsWith(keyMarker));
    };
    const after = (await deps.uploads.uploads())
      .filter((u) => u.bucket === bucket && past(u))
      .sort(
        (a, b) =>
          compareKeys(a.key, b.key) || (a.uploadId < b.uploadId ? -1 : a.uploadId > b.uploadId ? 1 : 0),
      );
    // The same paging as ListObjectVersions: a key's uploads in order, keys rolled up at the delimiter.
    const page = versionPage(after, (u) => ({ key: u.key, versionId: u.uploadId }), {
      prefix,
      maxKeys: maxUploads,
      ...(delimiter === undefined ? {} : { delimiter }),
    });
    return reply
      .header('content-type', 'application/xml')
      .send(
        listUploadsXml(
          bucket,
          { prefix, delimiter, keyMarker, uploadIdMarker, maxUploads },
          page,
          deps.namespace.owner,
        ),
      );
  }

  return { createUpload, uploadPart, completeUpload, listParts, listUploads };
}
