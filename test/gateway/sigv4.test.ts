import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { chunkSignature, type SigV4Request, UNSIGNED_PAYLOAD, verifySigV4 } from '../../src/gateway/sigv4.ts';
import { AilinkError } from '../../src/shared/errors.ts';
import { KEY, REGION, sdkSigner } from './sdk-signer.ts';

// The gateway's SigV4 check against signatures made by the AWS SDK's own signer (@smithy/signature-v4, what
// @aws-sdk/client-s3 signs with), and against the worked example of AWS's S3 documentation.

const NOW = Date.UTC(2026, 11, 3, 12, 0, 0);
const secretOf = (id: string) => (id === KEY.accessKeyId ? KEY.secretAccessKey : undefined);
const options = { now: NOW, secretOf, region: REGION };

interface Spec {
  method: string;
  /** Decoded path segments (bucket, key parts). */
  segments: string[];
  query: Record<string, string>;
  headers: Record<string, string>;
  body: string;
}

/** An encoded path as the AWS SDK builds it: RFC 3986, `/` kept between segments. */
const sdkPath = (segments: readonly string[]) =>
  `/${segments.map((s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)).join('/')}`;

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

async function signed(spec: Spec, at = NOW) {
  const path = sdkPath(spec.segments);
  const request = await sdkSigner.sign(
    {
      method: spec.method,
      protocol: 'http:',
      hostname: 'gateway.local',
      port: 9000,
      path,
      query: spec.query,
      headers: { host: 'gateway.local:9000', 'x-amz-content-sha256': sha(spec.body), ...spec.headers },
      body: spec.body,
    },
    { signingDate: new Date(at) },
  );
  return asReceived(request.method, path, request.query as Record<string, string>, request.headers);
}

/** What a server sees: header names in lower case, the query decoded. */
function asReceived(
  method: string,
  path: string,
  query: Record<string, string>,
  headers: Record<string, string>,
): SigV4Request {
  return {
    method,
    path,
    query: Object.entries(query),
    headers: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v])),
  };
}

function failure(run: () => unknown): AilinkError {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(AilinkError);
    return err as AilinkError;
  }
  throw new Error('expected the check to refuse the request');
}

const base: Spec = {
  method: 'GET',
  segments: ['photos', '2026/ü ber!/a+b (1).jpg'],
  query: { 'list-type': '2', prefix: 'a b/ü', 'continuation-token': 'x=y&z' },
  headers: { range: 'bytes=0-9', 'x-amz-meta-note': '  two   spaces  ' },
  body: '',
};

describe('SigV4 in the Authorization header', () => {
  it('accepts what the AWS SDK signs, and says who signed and what the body must hash to', async () => {
    const auth = verifySigV4(await signed(base), options);
    expect(auth).toMatchObject({
      accessKeyId: KEY.accessKeyId,
      region: REGION,
      service: 's3',
      time: NOW,
      amzDate: '20261203T120000Z',
      scope: `20261203/${REGION}/s3/aws4_request`,
      payloadHash: sha(''),
      presigned: false,
    });
  });

  it('matches the worked example of the S3 documentation (GET /test.txt with a Range)', () => {
    const request: SigV4Request = {
      method: 'GET',
      path: '/test.txt',
      query: [],
      headers: {
        host: 'examplebucket.s3.amazonaws.com',
        range: 'bytes=0-9',
        'x-amz-content-sha256': sha(''),
        'x-amz-date': '20130524T000000Z',
        authorization:
          'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41',
      },
    };
    const auth = verifySigV4(request, {
      now: Date.UTC(2013, 4, 24),
      region: 'us-east-1',
      secretOf: () => 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
    });
    expect(auth.accessKeyId).toBe('AKIAIOSFODNN7EXAMPLE');
  });

  it('any signed part changed on the way → AUTH_BAD_SIGNATURE (SignatureDoesNotMatch)', async () => {
    const good = await signed(base);
    const changes: [string, SigV4Request][] = [
      ['method', { ...good, method: 'DELETE' }],
      ['path', { ...good, path: good.path.replace('photos', 'photoz') }],
      [
        'a query value',
        { ...good, query: good.query.map(([k, v]) => [k, k === 'prefix' ? `${v}x` : v] as const) },
      ],
      ['an added query parameter', { ...good, query: [...good.query, ['delete', '']] }],
      ['a signed header', { ...good, headers: { ...good.headers, range: 'bytes=0-99' } }],
      ['the payload hash', { ...good, headers: { ...good.headers, 'x-amz-content-sha256': sha('other') } }],
    ];
    for (const [what, request] of changes) {
      const err = failure(() => verifySigV4(request, options));
      expect([what, err.code, err.details?.s3]).toEqual([
        what,
        'AUTH_BAD_SIGNATURE',
        'SignatureDoesNotMatch',
      ]);
    }
    // An unsigned header may change: it was never part of the signature.
    expect(() =>
      verifySigV4({ ...good, headers: { ...good.headers, 'user-agent': 'x' } }, options),
    ).not.toThrow();
  });

  it('refuses a wrong secret, an unknown key, another region, a skewed clock and a request without a signature', async () => {
    const good = await signed(base);
    const cases: [string, () => unknown, string, string][] = [
      [
        'wrong secret',
        () => verifySigV4(good, { ...options, secretOf: () => 'not-the-secret' }),
        'AUTH_BAD_SIGNATURE',
        'SignatureDoesNotMatch',
      ],
      [
        'unknown key',
        () => verifySigV4(good, { ...options, secretOf: () => undefined }),
        'AUTH_NOT_AUTHORISED',
        'InvalidAccessKeyId',
      ],
      [
        'other region',
        () => verifySigV4(good, { ...options, region: 'us-east-1' }),
        'AUTH_NOT_AUTHORISED',
        'AuthorizationHeaderMalformed',
      ],
      [
        '16 min fast',
        () => verifySigV4(good, { ...options, now: NOW - 16 * 60_000 }),
        'AUTH_EXPIRED',
        'RequestTimeTooSkewed',
      ],
      [
        '16 min late',
        () => verifySigV4(good, { ...options, now: NOW + 16 * 60_000 }),
        'AUTH_EXPIRED',
        'RequestTimeTooSkewed',
      ],
      [
        'unsigned',
        () => verifySigV4({ ...good, headers: { host: 'gateway.local:9000' } }, options),
        'AUTH_MISSING',
        'AccessDenied',
      ],
    ];
    for (const [what, run, code, s3] of cases) {
      const err = failure(run);
      expect([what, err.code, err.details?.s3]).toEqual([what, code, s3]);
    }
    expect(() => verifySigV4(good, { ...options, now: NOW + 14 * 60_000 })).not.toThrow();
  });

  it('refuses malformed authorization headers with a reason', async () => {
    const good = await signed(base);
    const auth = String(good.headers.authorization);
    const malformed: [string, RegExp][] = [
      ['AWS AKID:signature', /expected an AWS4-HMAC-SHA256 Authorization header/],
      [auth.replace(/Credential=[^,]+/, 'Credential=AKID/20261203/s3'), /is not ACCESS_KEY\/YYYYMMDD/],
      [auth.replace(/SignedHeaders=[^,]+/, 'SignedHeaders=x-amz-date;host'), /is not sorted/],
      [
        auth.replace(/SignedHeaders=[^,]+/, 'SignedHeaders=x-amz-content-sha256;x-amz-date'),
        /must cover the host header/,
      ],
      [auth.replace(/SignedHeaders=[^,]+/, 'SignedHeaders=host;x-absent'), /names header x-absent/],
      [auth.replace(/, ?Signature=[0-9a-f]+/, ''), /needs Credential, SignedHeaders and Signature/],
      [
        auth.replace('20261203/', '20261202/'),
        /credential's date 20261202 is not the request's date 20261203/,
      ],
    ];
    for (const [authorization, reason] of malformed) {
      const err = failure(() =>
        verifySigV4({ ...good, headers: { ...good.headers, authorization } }, options),
      );
      expect(err.message).toMatch(reason);
    }
  });

  it('property: every request the SDK signs verifies; changing any signed byte of the path or a value breaks it', async () => {
    const segment = fc
      .string({
        minLength: 1,
        maxLength: 12,
        unit: fc.constantFrom(...Array.from("aZ09-_.~ !*()'+=&?/%é€😀")),
      })
      .filter((s) => s !== '.' && s !== '..');
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('GET', 'PUT', 'HEAD', 'DELETE', 'POST'),
        fc.array(segment, { minLength: 1, maxLength: 4 }),
        fc.dictionary(
          fc.string({ minLength: 1, maxLength: 8 }).filter((k) => !k.startsWith('X-Amz-')),
          fc.string({ maxLength: 10 }),
          { maxKeys: 4 },
        ),
        fc.string({ maxLength: 40 }),
        async (method, segments, query, body) => {
          const request = await signed({ method, segments, query, headers: {}, body });
          expect(verifySigV4(request, options).payloadHash).toBe(sha(body));
          const tampered = { ...request, path: `${request.path}x` };
          expect(failure(() => verifySigV4(tampered, options)).code).toBe('AUTH_BAD_SIGNATURE');
        },
      ),
      { numRuns: 60, seed: 20261203 },
    );
  });
});

describe('SigV4 presigned URLs', () => {
  async function presigned(expiresIn: number, at = NOW) {
    const path = sdkPath(['photos', 'a b.jpg']);
    const request = await sdkSigner.presign(
      {
        method: 'GET',
        protocol: 'http:',
        hostname: 'gateway.local',
        port: 9000,
        path,
        query: {},
        // As @aws-sdk/s3-request-presigner signs: the payload is UNSIGNED-PAYLOAD (hoisted into the query).
        headers: { host: 'gateway.local:9000', 'x-amz-content-sha256': UNSIGNED_PAYLOAD },
      },
      { expiresIn, signingDate: new Date(at) },
    );
    return asReceived('GET', path, request.query as Record<string, string>, request.headers);
  }

  it('accepts a URL the SDK presigned until it expires, then refuses it as expired', async () => {
    const url = await presigned(3600);
    expect(verifySigV4(url, options)).toMatchObject({ presigned: true, payloadHash: UNSIGNED_PAYLOAD });
    expect(() => verifySigV4(url, { ...options, now: NOW + 3600_000 })).not.toThrow();
    const err = failure(() => verifySigV4(url, { ...options, now: NOW + 3600_000 + 1 }));
    expect([err.code, err.details?.s3]).toEqual(['AUTH_EXPIRED', 'AccessDenied']);
    expect(err.message).toMatch(/expired at 2026-12-03T13:00:00.000Z/);
  });

  it('a longer life, another object or a forged signature → refused', async () => {
    const url = await presigned(60);
    const longer = {
      ...url,
      query: url.query.map(([k, v]) => [k, k === 'X-Amz-Expires' ? '604800' : v] as const),
    };
    expect(failure(() => verifySigV4(longer, options)).code).toBe('AUTH_BAD_SIGNATURE');
    expect(failure(() => verifySigV4({ ...url, path: '/photos/other.jpg' }, options)).code).toBe(
      'AUTH_BAD_SIGNATURE',
    );
    const tooLong = {
      ...url,
      query: url.query.map(([k, v]) => [k, k === 'X-Amz-Expires' ? '604801' : v] as const),
    };
    expect(failure(() => verifySigV4(tooLong, options)).message).toMatch(
      /X-Amz-Expires must be 1–604800 seconds/,
    );
    // Dated ahead of the gateway's clock by more than the skew: not yet valid.
    const ahead = await presigned(60, NOW + 20 * 60_000);
    expect(failure(() => verifySigV4(ahead, options)).details?.s3).toBe('RequestTimeTooSkewed');
  });
});

describe('aws-chunked chunk signatures', () => {
  it('chain from the request signature over each chunk', async () => {
    const auth = verifySigV4(await signed(base), options);
    const first = chunkSignature(auth, auth.signature, new TextEncoder().encode('hello'));
    const second = chunkSignature(auth, first, new Uint8Array(0));
    expect(first).toMatch(/^[0-9a-f]{64}$/);
    expect(second).not.toBe(first);
    // Another chunk, or the same chunk at another place in the chain, signs differently.
    expect(chunkSignature(auth, auth.signature, new TextEncoder().encode('hellO'))).not.toBe(first);
    expect(chunkSignature(auth, first, new TextEncoder().encode('hello'))).not.toBe(first);
  });
});
