import type { FastifyReply, FastifyRequest } from 'fastify';
import type { S3Context } from './s3-context.ts';
import { versioningStatusOf } from './s3-http.ts';
import { MAX_KEYS, versionPage } from './s3-list.ts';
import { listVersionsXml, resultXml } from './s3-xml.ts';
import type { SigV4Auth } from './sigv4.ts';

/** S3 bucket versioning: Get/PutBucketVersioning and ListObjectVersions. */
export function versionHandlers(ctx: S3Context) {
  const { deps, smallBody, requireBucket } = ctx;

  /** GetBucketVersioning and PutBucketVersioning (`?versioning`). */
  async function versioning(request: FastifyRequest, reply: FastifyReply, auth: SigV4Auth, bucket: string) {
    const view = await requireBucket(bucket);
    if (request.method === 'PUT') {
      await deps.namespace.putVersioning(bucket, versioningStatusOf(await smallBody(request, auth)));
      return reply.send();
    }
    // A bucket whose versioning was never set answers an empty configuration (S3's way of saying "unversioned").
    return reply
      .header('content-type', 'application/xml')
      .send(
        resultXml(
          'VersioningConfiguration',
          view.versioning === undefined ? {} : { Status: view.versioning },
        ),
      );
  }

  /** ListObjectVersions (`?versions`): prefix, delimiter, key-marker, version-id-marker, max-keys. */
  async function listVersions(reply: FastifyReply, bucket: string, q: Map<string, string>) {
    await requireBucket(bucket);
    const prefix = q.get('prefix') ?? '';
    const delimiter = q.get('delimiter');
    const maxKeys = q.has('max-keys') ? Number(q.get('max-keys')) : MAX_KEYS;
    const keyMarker = q.get('key-marker') ?? '';
    const versionIdMarker = q.get('version-id-marker') ?? '';
    const query = {
      prefix,
      maxKeys,
      keyMarker,
      versionIdMarker,
      ...(delimiter === undefined ? {} : { delimiter }),
    };
    const page = versionPage(await deps.namespace.versions(bucket, prefix), (v) => v, query);
    return reply.header('content-type', 'application/xml').send(
      listVersionsXml(
        bucket,
        deps.namespace.owner,
        { ...query, maxKeys: Math.min(maxKeys, MAX_KEYS) },
        {
          ...page,
          versions: page.versions.map((v) => ({
            key: v.key,
            versionId: v.versionId,
            latest: v.latest,
            modified: v.modified,
            ...(v.object === undefined ? {} : { object: { etag: v.object.etag, size: v.object.size } }),
          })),
        },
      ),
    );
  }

  return { versioning, listVersions };
}
