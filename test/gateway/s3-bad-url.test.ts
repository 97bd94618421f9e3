import { afterAll, describe, expect, it } from 'vitest';
import { buildS3App } from '../../src/gateway/s3.ts';
import { systemRandom } from '../../src/shared/clock.ts';
import { s3Twins } from './s3-twins.ts';
import { KEY, REGION } from './sdk-signer.ts';

// Found by `npm run fuzz` (http:s3): a path with a broken percent-escape was answered by fastify's own JSON error
// (FST_ERR_BAD_URL), which no S3 client can read; S3 answers 400 InvalidURI in its XML.
describe('S3 requests whose URL cannot be decoded', () => {
  const twins = s3Twins();
  const app = buildS3App({
    storage: twins.storage,
    namespace: twins.namespace,
    uploads: {} as never,
    credentials: KEY,
    region: REGION,
    clock: { now: () => Date.now() },
    random: systemRandom,
  });
  afterAll(() => app.close());

  it('a broken percent-escape → 400 InvalidURI as S3 XML, before any handler (nothing stored)', async () => {
    for (const url of ['/%%', '/bucket/%zz', '/b/k%', '/%E0%A4%A?x=1']) {
      for (const method of ['GET', 'PUT', 'DELETE', 'POST'] as const) {
        const r = await app.inject({ method, url, payload: method === 'GET' ? undefined : 'x' });
        expect(r.statusCode, `${method} ${url}`).toBe(400);
        expect(r.headers['content-type']).toMatch(/application\/xml/);
        expect(r.body).toContain('<Code>InvalidURI</Code>');
      }
    }
    // Found by the http:deoss edge: under /deoss the same refusal is DeOSS's JSON, with a registered code.
    for (const url of ['/deoss/%%', '/deoss/file/download/%zz']) {
      const r = await app.inject({ method: 'GET', url });
      expect(r.statusCode, url).toBe(400);
      expect(r.headers['content-type']).toMatch(/application\/json/);
      expect(r.json()).toMatchObject({ code: 400, data: null, error: 'INVALID_INPUT' });
    }
    // And under /altda (found by http:altda) and /market, in those APIs' JSON.
    const altda = await app.inject({ method: 'POST', url: '/altda/put/%%%', payload: 'x' });
    expect([altda.statusCode, altda.json()]).toMatchObject([400, { code: 'INVALID_INPUT' }]);
    const market = await app.inject({ method: 'GET', url: '/market/objects/%zz' });
    expect([market.statusCode, market.json()]).toMatchObject([400, { error: 'INVALID_INPUT' }]);
    const head = await app.inject({ method: 'HEAD', url: '/%%' });
    expect(head.statusCode).toBe(400);
    expect(twins.buckets.size + twins.blobs.size).toBe(0);
  });
});
