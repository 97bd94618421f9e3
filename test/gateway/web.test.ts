import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { diskUploadStore } from '../../src/gateway/multipart.ts';
import { buildS3App } from '../../src/gateway/s3.ts';
import { parseQuery } from '../../src/gateway/s3-http.ts';
import { type SigV4Request, verifySigV4 } from '../../src/gateway/sigv4.ts';
import {
  EMPTY_SHA256,
  MAX_PRESIGNED_SECONDS,
  objectPath,
  presignUrl,
  signRequest,
  UNSIGNED_PAYLOAD,
} from '../../src/gateway/web/sigv4.js';
import { WEB_CSP, WEB_PREFIX } from '../../src/gateway/web.ts';
import { systemRandom } from '../../src/shared/clock.ts';
import { AilinkError } from '../../src/shared/errors.ts';
import { s3Twins } from './s3-twins.ts';

// The drive page's pure parts: its SigV4 signer (the file the browser runs) checked against the gateway's own
// verifySigV4 over many requests, and the S3 app serving the page's files beside the S3 API. The page itself runs in
// a real browser in test/gateway/web-browser.test.ts.

const CREDENTIALS = {
  accessKeyId: 'AKALTESTWEB00001',
  secretAccessKey: 'a-secret-of-the-gateway/+0123456789ab',
};
const REGION = 'ailink';
const HOST = '127.0.0.1:8900';

/** The request as the gateway receives it: the URL split at `?` and decoded by its own parser, the sent headers. */
function received(method: string, url: string, headers: Record<string, string>): SigV4Request {
  const at = url.indexOf('?');
  return {
    method,
    path: at === -1 ? url : url.slice(0, at),
    query: parseQuery(at === -1 ? '' : url.slice(at + 1)),
    headers: { ...headers, host: HOST },
  };
}

const verify = (request: SigV4Request, now: number, secret = CREDENTIALS.secretAccessKey) =>
  verifySigV4(request, {
    now,
    region: REGION,
    secretOf: (id) => (id === CREDENTIALS.accessKeyId ? secret : undefined),
  });

const codeOf = (run: () => unknown) => {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(AilinkError);
    return (err as AilinkError).code;
  }
  throw new Error('expected a refusal');
};

// Keys and query values with what needs encoding: spaces, reserved characters, percent signs, non-ASCII, emoji.
const keyText = fc.string({
  unit: fc.constantFrom(..."aZ09-_.~/ !*'()&=+?#%,;:@$[]é中😀".match(/./gu)!),
  minLength: 1,
  maxLength: 40,
});
const bucketName = fc.stringMatching(/^[a-z0-9][a-z0-9.-]{1,20}[a-z0-9]$/);
const headerValue = fc.string({ unit: fc.constantFrom(...'ab 09\t,;=/'.split('')), maxLength: 20 });
// Whole seconds: a signature carries its time to the second (x-amz-date).
const time = fc
  .integer({ min: Date.UTC(2020, 0, 1) / 1000, max: Date.UTC(2040, 0, 1) / 1000 })
  .map((s) => s * 1000);

describe('the page’s SigV4 signer (web/sigv4.js) against the gateway’s verifySigV4', () => {
  it('signs the S3 documentation’s worked examples to their published signatures', async () => {
    const example = {
      accessKeyId: 'AKIAIOSFODNN7EXAMPLE',
      secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
    };
    const now = Date.UTC(2013, 4, 24);
    const get = await signRequest({
      method: 'GET',
      path: '/test.txt',
      headers: { host: 'examplebucket.s3.amazonaws.com', range: 'bytes=0-9' },
      payloadHash: EMPTY_SHA256,
      credentials: example,
      region: 'us-east-1',
      now,
    });
    expect(get.headers.authorization).toMatch(
      /SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41$/,
    );
    expect(get.headers).not.toHaveProperty('host');
    const presigned = await presignUrl({
      path: '/test.txt',
      host: 'examplebucket.s3.amazonaws.com',
      credentials: example,
      region: 'us-east-1',
      now,
      expiresSeconds: 86_400,
    });
    expect(presigned).toMatch(
      /&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404$/,
    );
  });

  it('every request it signs (any method, key, query, headers, payload hash, time) is accepted, and only with the same secret', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('GET', 'PUT', 'HEAD', 'DELETE', 'POST'),
        bucketName,
        fc.option(keyText, { nil: undefined }),
        fc.array(fc.tuple(keyText, fc.oneof(keyText, fc.constant(''))), { maxLength: 4 }),
        fc.dictionary(
          fc.stringMatching(/^[a-z]{1,8}$/).map((n) => `x-amz-meta-${n}`),
          headerValue,
          {
            maxKeys: 3,
          },
        ),
        fc.oneof(
          fc.constant(EMPTY_SHA256),
          fc.constant(UNSIGNED_PAYLOAD),
          fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('hex')),
        ),
        time,
        async (method, bucket, key, query, extra, payloadHash, now) => {
          const signed = await signRequest({
            method,
            path: objectPath(bucket, key),
            query,
            headers: { host: HOST, ...extra },
            payloadHash,
            credentials: CREDENTIALS,
            region: REGION,
            now,
          });
          const request = received(method, signed.url, signed.headers);
          const auth = verify(request, now + 60_000);
          expect(auth.accessKeyId).toBe(CREDENTIALS.accessKeyId);
          expect(auth.payloadHash).toBe(payloadHash);
          expect(auth.presigned).toBe(false);
          // The key the gateway reads back is the key that was signed.
          expect(decodeURIComponent(request.path)).toBe(
            key === undefined ? `/${bucket}` : `/${bucket}/${key}`,
          );
          expect(codeOf(() => verify(request, now, `${CREDENTIALS.secretAccessKey}x`))).toBe(
            'AUTH_BAD_SIGNATURE',
          );
          const otherPath = { ...request, path: `${request.path}x` };
          expect(codeOf(() => verify(otherPath, now))).toBe('AUTH_BAD_SIGNATURE');
        },
      ),
      { numRuns: 300 },
    );
  });

  it('a presigned URL is accepted until it expires (1 s to 7 days), then refused; a changed signature never is', async () => {
    await fc.assert(
      fc.asyncProperty(
        bucketName,
        keyText,
        fc.integer({ min: 1, max: MAX_PRESIGNED_SECONDS }),
        time,
        async (bucket, key, expiresSeconds, now) => {
          const url = await presignUrl({
            path: objectPath(bucket, key),
            host: HOST,
            credentials: CREDENTIALS,
            region: REGION,
            now,
            expiresSeconds,
          });
          const request = received('GET', url, {});
          expect(verify(request, now).presigned).toBe(true);
          expect(verify(request, now + expiresSeconds * 1000).presigned).toBe(true);
          expect(codeOf(() => verify(request, now + expiresSeconds * 1000 + 1000))).toBe('AUTH_EXPIRED');
          const sig = url.slice(-64);
          const flipped = `${url.slice(0, -64)}${sig[0] === '0' ? '1' : '0'}${sig.slice(1)}`;
          expect(codeOf(() => verify(received('GET', flipped, {}), now))).toBe('AUTH_BAD_SIGNATURE');
          // Only GET was signed: the same URL does not delete.
          expect(codeOf(() => verify({ ...request, method: 'DELETE' }, now))).toBe('AUTH_BAD_SIGNATURE');
        },
      ),
      { numRuns: 200 },
    );
    for (const expiresSeconds of [0, MAX_PRESIGNED_SECONDS + 1, 1.5]) {
      await expect(
        presignUrl({
          path: '/b/k',
          host: HOST,
          credentials: CREDENTIALS,
          region: REGION,
          now: 0,
          expiresSeconds,
        }),
      ).rejects.toThrow(RangeError);
    }
  });
});

describe('the page beside the S3 API (inject)', () => {
  let app: FastifyInstance;
  let uploads: string;
  beforeAll(() => {
    uploads = mkdtempSync(join(tmpdir(), 'ailink-web-uploads-'));
    const twins = s3Twins();
    app = buildS3App({
      storage: twins.storage,
      namespace: twins.namespace,
      uploads: diskUploadStore(uploads, systemRandom),
      domain: 'localhost',
      credentials: CREDENTIALS,
      region: 'test-<region>',
      clock: { now: () => Date.now() },
      random: systemRandom,
    });
  });
  afterAll(async () => {
    await app.close();
    rmSync(uploads, { recursive: true, force: true });
  });

  const files = {
    '': 'text/html; charset=utf-8',
    'index.html': 'text/html; charset=utf-8',
    'app.js': 'text/javascript; charset=utf-8',
    'sigv4.js': 'text/javascript; charset=utf-8',
    'style.css': 'text/css; charset=utf-8',
  };

  it('serves its files unsigned, with their types, a strict policy, revalidation and 304s', async () => {
    for (const [name, type] of Object.entries(files)) {
      const url = `${WEB_PREFIX}${name}`;
      const res = await app.inject({ method: 'GET', url });
      expect(res.statusCode, url).toBe(200);
      expect(res.headers['content-type'], url).toBe(type);
      expect(res.headers['content-security-policy'], url).toBe(WEB_CSP);
      expect(res.headers['x-content-type-options'], url).toBe('nosniff');
      expect(res.headers['cache-control'], url).toBe('no-cache');
      const etag = res.headers.etag as string;
      expect(etag).toMatch(/^"[\w-]{22}"$/);
      const again = await app.inject({ method: 'GET', url, headers: { 'if-none-match': etag } });
      expect(again.statusCode, url).toBe(304);
      expect(again.body).toBe('');
      const head = await app.inject({ method: 'HEAD', url });
      expect(head.statusCode, url).toBe(200);
      expect(head.body).toBe('');
      // Self-contained: nothing from another origin.
      expect(res.body.match(/https?:\/\/[^\s'"`]+/g) ?? [], url).toEqual([]);
    }
    const js = readFileSync(new URL('../../src/gateway/web/sigv4.js', import.meta.url), 'utf8');
    expect((await app.inject({ method: 'GET', url: `${WEB_PREFIX}sigv4.js` })).body).toBe(js);
    expect(WEB_CSP).toContain("script-src 'self'");
    expect(WEB_CSP).not.toContain('unsafe');
  });

  it('the page has no inline script or style, and names the gateway’s region (escaped) for its sign-in form', async () => {
    const html = (await app.inject({ method: 'GET', url: WEB_PREFIX })).body;
    expect(html).toMatch(/^<!doctype html>/);
    expect(html).toContain('<meta name="ailink-region" content="test-&lt;region&gt;">');
    expect(html.match(/<script[^>]*>/g)).toEqual(['<script type="module" src="app.js">']);
    expect(html).not.toMatch(/<style|\son\w+=|javascript:/i);
  });

  it('/_ailink and a browser’s GET / lead to the page; unknown page files are 404', async () => {
    const bare = await app.inject({ method: 'GET', url: '/_ailink' });
    expect([bare.statusCode, bare.headers.location]).toEqual([301, WEB_PREFIX]);
    const browser = await app.inject({ method: 'GET', url: '/', headers: { accept: 'text/html,*/*' } });
    expect([browser.statusCode, browser.headers.location]).toEqual([303, WEB_PREFIX]);
    const missing = await app.inject({ method: 'GET', url: `${WEB_PREFIX}secret.json` });
    expect(missing.statusCode).toBe(404);
    expect(missing.headers['content-security-policy']).toBe(WEB_CSP);
    // An S3 error with its code, as every refusal of the gateway (it was plain text: the fuzz edge http:s3 found it).
    expect(missing.headers['content-type']).toBe('application/xml');
    expect(missing.body).toContain('<Code>NoSuchKey</Code>');
    const head = await app.inject({ method: 'HEAD', url: `${WEB_PREFIX}secret.json` });
    expect([head.statusCode, head.body]).toEqual([404, '']);
  });

  it('every S3 call is still signed: unsigned ListBuckets, listing, reads and writes are refused', async () => {
    for (const [method, url, accept] of [
      ['GET', '/', 'application/xml'],
      ['GET', '/', undefined],
      ['GET', '/photos?list-type=2', 'text/html'],
      ['GET', '/photos/a.webm', 'text/html'],
      ['PUT', '/photos', undefined],
      ['PUT', `${WEB_PREFIX}index.html`, undefined],
      ['DELETE', '/photos/a.webm', undefined],
    ] as const) {
      const res = await app.inject({
        method,
        url,
        headers: accept === undefined ? {} : { accept },
        ...(method === 'PUT' ? { payload: 'x' } : {}),
      });
      expect(res.statusCode, `${method} ${url}`).toBe(403);
      expect(res.body, `${method} ${url}`).toContain('<Code>AccessDenied</Code>');
    }
  });

  it('on a virtual host, /_ailink/… is a key of that bucket (S3’s, signed), not the page', async () => {
    const res = await app.inject({
      method: 'GET',
      url: `${WEB_PREFIX}index.html`,
      headers: { host: 'photos.localhost:8900', accept: 'text/html' },
    });
    expect(res.statusCode).toBe(403);
    expect(res.body).toContain('<Code>AccessDenied</Code>');
    const signed = await signRequest({
      method: 'GET',
      path: `${WEB_PREFIX}index.html`,
      headers: { host: 'photos.localhost:8900' },
      credentials: CREDENTIALS,
      region: 'test-<region>',
      now: Date.now(),
    });
    const asKey = await app.inject({
      method: 'GET',
      url: signed.url,
      headers: { ...signed.headers, host: 'photos.localhost:8900' },
    });
    expect(asKey.statusCode).toBe(404);
    expect(asKey.body).toContain('<Code>NoSuchBucket</Code>');
  });

  it('a request the page signs goes through: create a bucket, put with UNSIGNED-PAYLOAD, list the folder, read a range', async () => {
    const send = async (method: string, path: string, query: [string, string][] = [], body?: string) => {
      const signed = await signRequest({
        method,
        path,
        query,
        headers: { host: 'localhost:80' },
        payloadHash: body === undefined ? EMPTY_SHA256 : UNSIGNED_PAYLOAD,
        credentials: CREDENTIALS,
        region: 'test-<region>',
        now: Date.now(),
      });
      return app.inject({
        method: method as 'GET',
        url: signed.url,
        headers: { ...signed.headers, host: 'localhost:80' },
        ...(body === undefined ? {} : { payload: body }),
      });
    };
    expect((await send('PUT', objectPath('photos'))).statusCode).toBe(200);
    const put = await send('PUT', objectPath('photos', 'trips/2026 été/a+b.txt'), [], 'hello, drive');
    expect(put.statusCode).toBe(200);
    const listed = await send('GET', objectPath('photos'), [
      ['list-type', '2'],
      ['delimiter', '/'],
      ['prefix', 'trips/'],
    ]);
    expect(listed.statusCode).toBe(200);
    expect(listed.body).toContain('<CommonPrefixes><Prefix>trips/2026 été/</Prefix></CommonPrefixes>');
    const url = await presignUrl({
      path: objectPath('photos', 'trips/2026 été/a+b.txt'),
      host: 'localhost:80',
      credentials: CREDENTIALS,
      region: 'test-<region>',
      now: Date.now(),
      expiresSeconds: 60,
    });
    const ranged = await app.inject({
      method: 'GET',
      url,
      headers: { host: 'localhost:80', range: 'bytes=7-' },
    });
    expect([ranged.statusCode, ranged.body, ranged.headers['content-range']]).toEqual([
      206,
      'drive',
      'bytes 7-11/12',
    ]);
    // The same object on its bucket's virtual host: the key is the whole path.
    const virtualUrl = await presignUrl({
      path: `/${objectPath('x', 'trips/2026 été/a+b.txt').slice('/x/'.length)}`,
      host: 'photos.localhost:80',
      credentials: CREDENTIALS,
      region: 'test-<region>',
      now: Date.now(),
      expiresSeconds: 60,
    });
    const virtual = await app.inject({
      method: 'GET',
      url: virtualUrl,
      headers: { host: 'photos.localhost:80' },
    });
    expect([virtual.statusCode, virtual.body]).toEqual([200, 'hello, drive']);
  });
});
