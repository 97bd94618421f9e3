import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { buildS3App } from '../../src/gateway/s3.ts';
import { AilinkError } from '../../src/shared/errors.ts';
import { s3Twins } from './s3-twins.ts';
import { KEY, REGION, sdkSigner } from './sdk-signer.ts';

// CopyObject (and CompleteMultipartUpload, through the same longAnswer) answers as usual when the work is done within
// the keep-alive period — with the version id the bucket gives the new object, and an error with its own status — and
// turns to S3's keep-alive (200 at once, a space per period, then the result or an error document) when it is not.

const KEEP_ALIVE_MS = 100;

/** The S3 app over the twins, with a versioned bucket `box`, an object `box/src`, and puts that take `delayMs`. */
async function appWith(putting: { delayMs: number; fail?: AilinkError }) {
  const twins = s3Twins();
  const namespace = {
    ...twins.namespace,
    bucket: async (name: string) =>
      (await twins.namespace.bucket(name)) === undefined
        ? undefined
        : { created: 0, objectLock: false, defaultRetention: null, versioning: 'Enabled' as const },
  };
  const storage = {
    ...twins.storage,
    async put(...args: Parameters<typeof twins.storage.put>) {
      await new Promise((r) => setTimeout(r, putting.delayMs));
      if (putting.fail) throw putting.fail;
      return twins.storage.put(...args);
    },
  };
  await twins.namespace.createBucket('box');
  await twins.storage.put(new Uint8Array(Buffer.from('source bytes')), {
    entry: { bucket: 'box', key: 'src', etag: 'e', contentType: 'text/plain' },
  });
  return buildS3App({
    storage,
    namespace,
    uploads: {} as never,
    credentials: KEY,
    region: REGION,
    clock: { now: () => Date.now() },
    random: (n: number) => new Uint8Array(n),
    keepAliveMs: KEEP_ALIVE_MS,
  });
}

async function copyRequest(key: string) {
  const signed = await sdkSigner.sign({
    method: 'PUT',
    protocol: 'http:',
    hostname: 'gateway.local',
    path: `/box/${key}`,
    query: {},
    headers: {
      host: 'gateway.local',
      'x-amz-copy-source': '/box/src',
      'x-amz-content-sha256': createHash('sha256').update('').digest('hex'),
    },
  });
  return { method: 'PUT' as const, url: `/box/${key}`, headers: signed.headers };
}

describe('S3 CopyObject: an ordinary answer when quick, the keep-alive when slow', () => {
  let app: FastifyInstance | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  it('done within the period: 200 with the result and the new version id', async () => {
    app = await appWith({ delayMs: 0 });
    const res = await app.inject(await copyRequest('copy'));
    expect(res.statusCode).toBe(200);
    expect(res.body).toMatch(/^<\?xml[^>]*>\n<CopyObjectResult/);
    expect(res.headers['x-amz-version-id']).toMatch(/^[0-9a-f]{64}$/);
  });

  it('failed within the period: the error with its own status, not a 200', async () => {
    app = await appWith({ delayMs: 0, fail: new AilinkError('QUOTA_EXCEEDED', 'storage space exceeded') });
    const res = await app.inject(await copyRequest('copy'));
    expect(res.statusCode).toBe(403);
    expect(res.body).toContain('<Code>QuotaExceeded</Code>');
  });

  it('longer: 200 at once, spaces while it works, then the result (no version id: the headers left first)', async () => {
    app = await appWith({ delayMs: 5 * KEEP_ALIVE_MS });
    const res = await app.inject(await copyRequest('copy'));
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-amz-version-id']).toBeUndefined();
    const [prolog, rest] = [
      res.body.slice(0, res.body.indexOf('\n') + 1),
      res.body.slice(res.body.indexOf('\n') + 1),
    ];
    expect(prolog).toMatch(/^<\?xml[^>]*>\n$/);
    expect(rest).toMatch(/^ +<CopyObjectResult/);
  });

  it('longer and failing: 200 with an error document after the spaces', async () => {
    app = await appWith({
      delayMs: 2.5 * KEEP_ALIVE_MS,
      fail: new AilinkError('QUOTA_EXCEEDED', 'storage space exceeded'),
    });
    const res = await app.inject(await copyRequest('copy'));
    expect(res.statusCode).toBe(200);
    expect(res.body).toMatch(/\n +<Error><Code>QuotaExceeded<\/Code>/);
  });
});
