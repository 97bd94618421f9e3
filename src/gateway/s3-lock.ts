import type { FastifyReply, FastifyRequest } from 'fastify';
import type { S3Context } from './s3-context.ts';
import { defaultRetentionOf, legalHoldOf, s3Error } from './s3-http.ts';
import { resultXml } from './s3-xml.ts';
import type { SigV4Auth } from './sigv4.ts';

/** S3 object lock: Get/PutObjectLockConfiguration, Get/PutObjectRetention, Get/PutObjectLegalHold. */
export function lockHandlers(ctx: S3Context) {
  const { deps, smallBody, requireBucket, requireObject, retentionOf } = ctx;

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

  /** GetObjectRetention and PutObjectRetention (`?retention`), of the key's object or of `?versionId`. */
  async function retention(
    request: FastifyRequest,
    reply: FastifyReply,
    auth: SigV4Auth,
    bucket: string,
    key: string,
    q: Map<string, string>,
  ) {
    const object = await requireObject(bucket, key, q.get('versionId'));
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

  /** GetObjectLegalHold and PutObjectLegalHold (`?legal-hold`), of the key's object or of `?versionId`. */
  async function legalHold(
    request: FastifyRequest,
    reply: FastifyReply,
    auth: SigV4Auth,
    bucket: string,
    key: string,
    q: Map<string, string>,
  ) {
    const view = await requireBucket(bucket);
    const object = await requireObject(bucket, key, q.get('versionId'));
    if (request.method === 'GET') {
      if (!view.objectLock)
        throw s3Error(
          'InvalidRequest',
          `bucket ${bucket} was made without object lock: its objects have no legal hold`,
        );
      return reply
        .header('content-type', 'application/xml')
        .send(resultXml('LegalHold', { Status: object.legalHold ? 'ON' : 'OFF' }));
    }
    await deps.namespace.putLegalHold(object.fid, legalHoldOf(await smallBody(request, auth), 'body'));
    return reply.send();
  }

  return { objectLock, retention, legalHold };
}
