/**
 * Edge: the gateway's S3 API (src/gateway/s3.ts), listening on 127.0.0.1 in process and reached over real HTTP, with
 * requests signed by the AWS SDK's own SigV4 signer — unsigned, wrongly signed (another secret, a changed signature,
 * another region, signed for another method or body), replayed past the clock skew, malformed, oversized, out of
 * order (parts of uploads never created) and duplicated. What it stores is the in-memory twin of the namespace and the
 * storage client (test/gateway/s3-twins.ts) plus the multipart upload folder on disk: a refusal must change neither.
 * A refusal is a 4xx whose S3 <Code> is one the gateway's table knows (S3_STATUS); a 5xx is a crash.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { diskUploadStore } from '../../src/gateway/multipart.ts';
import { buildS3App } from '../../src/gateway/s3.ts';
import { S3_STATUS } from '../../src/gateway/s3-http.ts';
import { systemRandom } from '../../src/shared/clock.ts';
import { s3Twins } from '../../test/gateway/s3-twins.ts';
import { KEY, REGION, sdkSigner } from '../../test/gateway/sdk-signer.ts';
import { treeDigest } from './files.ts';
import { gatewayRoute } from './gateway-route.ts';
import { type Edge, type FuzzCase, WireRefusal } from './harness.ts';
import { fuzzCase } from './mutate.ts';

type Signing =
  | 'ok'
  | 'none'
  | 'wrong-secret'
  | 'changed-signature'
  | 'other-region'
  | 'old'
  | 'other-method'
  | 'other-body';

export interface S3Input {
  readonly method: string;
  /** Encoded path, as a client sends it. */
  readonly path: string;
  readonly query?: Readonly<Record<string, string>>;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string;
  readonly signing: Signing;
  /**
   * The gateway route the request reaches, as fastify registers it (`GET /*`: every S3 path and the drive page are
   * one catch-all per method; bench/fuzz/gateway-route.ts); none for a path fastify cannot decode.
   * test/fuzz/gateway-routes.test.ts checks that every registered route has cases.
   */
  readonly route?: string;
}

const MAX_OBJECT = 64 * 1024;
/** The first path segments the gateway's other APIs take: not S3's route. */
const OTHER_APIS = new Set(['altda', 'deoss', 'market']);

/** The input with the route it reaches (none when fastify cannot decode its path). */
function routed(input: S3Input): S3Input {
  const route = gatewayRoute(input.method, input.path);
  return route === undefined ? input : { ...input, route };
}

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const signerFor = (secret: string, region: string) =>
  new SignatureV4({
    credentials: { accessKeyId: KEY.accessKeyId, secretAccessKey: secret },
    region,
    service: 's3',
    sha256: Hash.bind(null, 'sha256'),
    uriEscapePath: false,
  });

/** The state-changing operations, each valid as written against the state setup builds. */
const OPERATIONS: (Omit<S3Input, 'signing'> & { label: string })[] = [
  { label: 'CreateBucket', method: 'PUT', path: '/fresh-bucket' },
  { label: 'DeleteBucket', method: 'DELETE', path: '/empty-bucket' },
  { label: 'PutObject', method: 'PUT', path: '/fuzz/b.txt', body: 'hello' },
  { label: 'DeleteObject', method: 'DELETE', path: '/fuzz/a.txt' },
  {
    label: 'DeleteObjects',
    method: 'POST',
    path: '/fuzz',
    query: { delete: '' },
    body: '<Delete><Object><Key>a.txt</Key></Object></Delete>',
  },
  { label: 'CreateMultipartUpload', method: 'POST', path: '/fuzz/m.bin', query: { uploads: '' } },
  {
    label: 'CopyObject',
    method: 'PUT',
    path: '/fuzz/c.txt',
    headers: { 'x-amz-copy-source': '/fuzz/a.txt' },
  },
];

export function s3Edge(): Edge<S3Input> {
  let app: FastifyInstance | undefined;
  let uploads = '';
  let base = '';
  let twins = s3Twins();

  async function send(input: S3Input): Promise<Response> {
    const url = new URL(base + input.path);
    const body = input.body ?? '';
    const headers: Record<string, string> = {
      host: url.host,
      'x-amz-content-sha256': sha(body),
      ...(input.headers ?? {}),
    };
    let signed = headers;
    if (input.signing !== 'none') {
      const signer =
        input.signing === 'wrong-secret'
          ? signerFor(`${KEY.secretAccessKey}x`, REGION)
          : input.signing === 'other-region'
            ? signerFor(KEY.secretAccessKey, 'us-east-1')
            : sdkSigner;
      const at = input.signing === 'old' ? Date.now() - 20 * 60_000 : Date.now();
      const r = await signer.sign(
        {
          method: input.signing === 'other-method' ? (input.method === 'GET' ? 'PUT' : 'GET') : input.method,
          protocol: 'http:',
          hostname: url.hostname,
          port: Number(url.port),
          path: input.path,
          query: { ...(input.query ?? {}) },
          headers:
            input.signing === 'other-body'
              ? { ...headers, 'x-amz-content-sha256': sha(`${body}!`) }
              : headers,
          body,
        },
        { signingDate: new Date(at) },
      );
      signed = r.headers as Record<string, string>;
      if (input.signing === 'other-body') signed['x-amz-content-sha256'] = headers['x-amz-content-sha256']!;
      if (input.signing === 'changed-signature')
        signed.authorization = signed.authorization!.replace(
          /Signature=([0-9a-f])/,
          (_m, c: string) => `Signature=${c === '0' ? '1' : '0'}`,
        );
    }
    const { host: _host, ...sent } = signed;
    const query = new URLSearchParams(input.query ?? {}).toString().replace(/=(&|$)/g, '$1');
    return fetch(`${base}${input.path}${query === '' ? '' : `?${query}`}`, {
      method: input.method,
      headers: sent,
      ...(input.method === 'GET' || input.method === 'HEAD' ? {} : { body }),
    });
  }

  const malformed: FuzzCase<S3Input>[] = [
    ...['AB', 'a', 'a..b', '192.168.0.1', 'x'.repeat(64), '-abc', 'abc-'].map((name) =>
      fuzzCase<S3Input>('malformed', `CreateBucket ${name.slice(0, 12)}`, {
        method: 'PUT',
        path: `/${name}`,
        signing: 'ok',
      }),
    ),
    fuzzCase<S3Input>('malformed', 'PutObject with a ".." key segment', {
      method: 'PUT',
      path: '/fuzz/x/%2E%2E/y',
      body: 'z',
      signing: 'ok',
    }),
    fuzzCase<S3Input>('malformed', 'PutObject with a NUL in the key', {
      method: 'PUT',
      path: '/fuzz/x%00y',
      body: 'z',
      signing: 'ok',
    }),
    fuzzCase<S3Input>('malformed', 'PutObject whose body is not the signed hash', {
      method: 'PUT',
      path: '/fuzz/b.txt',
      body: 'hello',
      headers: { 'x-amz-content-sha256': sha('other') },
      signing: 'ok',
    }),
    fuzzCase<S3Input>('malformed', 'PutObject with a wrong Content-MD5', {
      method: 'PUT',
      path: '/fuzz/b.txt',
      body: 'hello',
      headers: { 'content-md5': createHash('md5').update('other').digest('base64') },
      signing: 'ok',
    }),
    fuzzCase<S3Input>('malformed', 'PutObject with a content hash that is not hex', {
      method: 'PUT',
      path: '/fuzz/b.txt',
      body: 'hello',
      headers: { 'x-amz-content-sha256': 'not-a-hash' },
      signing: 'ok',
    }),
    ...[
      '',
      '<Other/>',
      '<Delete></Delete>',
      '<Delete><Object><Key>a.txt</Key>',
      'not xml',
      '<Delete><Object></Object></Delete>',
    ].map((xml) =>
      fuzzCase<S3Input>('malformed', `DeleteObjects ${JSON.stringify(xml).slice(0, 30)}`, {
        method: 'POST',
        path: '/fuzz',
        query: { delete: '' },
        body: xml,
        signing: 'ok',
      }),
    ),
    fuzzCase<S3Input>('malformed', 'PutObject with a retention date in the past', {
      method: 'PUT',
      path: '/fuzz/b.txt',
      body: 'x',
      headers: {
        'x-amz-object-lock-mode': 'COMPLIANCE',
        'x-amz-object-lock-retain-until-date': '2000-01-01T00:00:00Z',
      },
      signing: 'ok',
    }),
    fuzzCase<S3Input>('malformed', 'CopyObject from a key that does not exist', {
      method: 'PUT',
      path: '/fuzz/c.txt',
      headers: { 'x-amz-copy-source': '/fuzz/none.txt' },
      signing: 'ok',
    }),
    fuzzCase<S3Input>('malformed', 'a presigned query with a bad expiry', {
      method: 'PUT',
      path: '/fuzz/b.txt',
      query: { 'X-Amz-Algorithm': 'AWS4-HMAC-SHA256', 'X-Amz-Expires': '-5' },
      body: 'x',
      signing: 'none',
    }),
    fuzzCase<S3Input>('oversized', `PutObject of ${MAX_OBJECT + 1} bytes`, {
      method: 'PUT',
      path: '/fuzz/big.bin',
      body: 'x'.repeat(MAX_OBJECT + 1),
      signing: 'ok',
    }),
    fuzzCase<S3Input>('oversized', 'DeleteObjects over 2 MiB', {
      method: 'POST',
      path: '/fuzz',
      query: { delete: '' },
      body: `<Delete>${'<Object><Key>a.txt</Key></Object>'.repeat(70_000)}</Delete>`,
      signing: 'ok',
    }),
    fuzzCase<S3Input>('out-of-order', 'UploadPart of an upload never created', {
      method: 'PUT',
      path: '/fuzz/m.bin',
      query: { partNumber: '1', uploadId: 'nope' },
      body: 'x',
      signing: 'ok',
    }),
    fuzzCase<S3Input>('out-of-order', 'CompleteMultipartUpload of an upload never created', {
      method: 'POST',
      path: '/fuzz/m.bin',
      query: { uploadId: 'nope' },
      body: '<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>"x"</ETag></Part></CompleteMultipartUpload>',
      signing: 'ok',
    }),
    fuzzCase<S3Input>('out-of-order', 'AbortMultipartUpload of an upload never created', {
      method: 'DELETE',
      path: '/fuzz/m.bin',
      query: { uploadId: 'nope' },
      signing: 'ok',
    }),
    fuzzCase<S3Input>('out-of-order', 'PutObject into a bucket never created', {
      method: 'PUT',
      path: '/nobucket/k',
      body: 'x',
      signing: 'ok',
    }),
    fuzzCase<S3Input>('out-of-order', 'DeleteBucket of a bucket never created', {
      method: 'DELETE',
      path: '/nobucket',
      signing: 'ok',
    }),
    fuzzCase<S3Input>('out-of-order', 'DeleteBucket that still holds objects', {
      method: 'DELETE',
      path: '/fuzz',
      signing: 'ok',
    }),
    fuzzCase<S3Input>('duplicated', 'CreateBucket of a bucket that exists', {
      method: 'PUT',
      path: '/fuzz',
      signing: 'ok',
    }),
    fuzzCase<S3Input>('duplicated', 'UploadPart with part number 0', {
      method: 'PUT',
      path: '/fuzz/m.bin',
      query: { partNumber: '0', uploadId: 'nope' },
      body: 'x',
      signing: 'ok',
    }),
    // The reads (GET and HEAD, which must change nothing either): unsigned, or of what was never stored.
    fuzzCase<S3Input>('unsigned', 'ListBuckets unsigned', { method: 'GET', path: '/', signing: 'none' }),
    fuzzCase<S3Input>('unsigned', 'GetObject unsigned', {
      method: 'GET',
      path: '/fuzz/a.txt',
      signing: 'none',
    }),
    fuzzCase<S3Input>('wrongly-signed', 'GetObject with another secret', {
      method: 'GET',
      path: '/fuzz/a.txt',
      signing: 'wrong-secret',
    }),
    fuzzCase<S3Input>('out-of-order', 'GetObject of a key never stored', {
      method: 'GET',
      path: '/fuzz/none.txt',
      signing: 'ok',
    }),
    fuzzCase<S3Input>('out-of-order', 'ListObjectsV2 of a bucket never created', {
      method: 'GET',
      path: '/nobucket',
      query: { 'list-type': '2' },
      signing: 'ok',
    }),
    fuzzCase<S3Input>('unsigned', 'HeadObject unsigned', {
      method: 'HEAD',
      path: '/fuzz/a.txt',
      signing: 'none',
    }),
    fuzzCase<S3Input>('unsigned', 'HeadBucket unsigned', { method: 'HEAD', path: '/fuzz', signing: 'none' }),
    fuzzCase<S3Input>('out-of-order', 'HeadObject of a key never stored', {
      method: 'HEAD',
      path: '/fuzz/none.txt',
      signing: 'ok',
    }),
    fuzzCase<S3Input>('out-of-order', 'HeadBucket of a bucket never created', {
      method: 'HEAD',
      path: '/nobucket',
      signing: 'ok',
    }),
    // The drive page (unsigned, through the same catch-all): a file it does not have is refused as NoSuchKey.
    ...(['GET', 'HEAD'] as const).map((method) =>
      fuzzCase<S3Input>('malformed', `${method} a drive page file that does not exist`, {
        method,
        path: '/_ailink/secret.json',
        signing: 'none',
      }),
    ),
    fuzzCase<S3Input>('wrong-caller', 'PUT over a drive page file', {
      method: 'PUT',
      path: '/_ailink/index.html',
      body: '<script>',
      signing: 'none',
    }),
  ];
  const variantOf: Record<Exclude<Signing, 'ok'>, FuzzCase<S3Input>['variant']> = {
    none: 'unsigned',
    'wrong-secret': 'wrongly-signed',
    'changed-signature': 'wrongly-signed',
    'other-region': 'wrongly-signed',
    'other-method': 'wrongly-signed',
    'other-body': 'wrongly-signed',
    old: 'replayed',
  };
  const badlySigned = fc
    .tuple(
      fc.constantFrom(...OPERATIONS),
      fc.constantFrom(...(Object.keys(variantOf) as Exclude<Signing, 'ok'>[])),
    )
    .map(([{ label, ...op }, signing]) =>
      fuzzCase<S3Input>(variantOf[signing], `${label} ${signing}`, { ...op, signing }),
    );
  const noise = fc
    .tuple(
      fc.constantFrom('GET', 'PUT', 'POST', 'DELETE', 'HEAD'),
      // Not a path of the gateway's other APIs (their routes are their edges').
      fc
        .array(fc.stringMatching(/^[a-z0-9.%-]{1,12}$/), { minLength: 1, maxLength: 3 })
        .filter((segments) => !OTHER_APIS.has(segments[0]!)),
      fc.dictionary(
        fc.constantFrom(
          'uploads',
          'delete',
          'versioning',
          'uploadId',
          'partNumber',
          'list-type',
          'tagging',
          'acl',
          'retention',
          'legal-hold',
          'versionId',
        ),
        fc.string({ maxLength: 8 }),
      ),
      fc.string({ maxLength: 64 }),
    )
    .map(([method, segments, query, body]) =>
      fuzzCase(
        'malformed',
        `${method} /${segments.join('/')}`,
        { method, path: `/${segments.join('/')}`, query, body, signing: 'ok' as const },
        false,
      ),
    );

  // The drive page's files and its redirects, unsigned (noise: they answer, and must change nothing).
  const page = fc
    .tuple(
      fc.constantFrom<'GET' | 'HEAD'>('GET', 'HEAD'),
      fc.constantFrom('/_ailink/', '/_ailink/app.js', '/_ailink/style.css', '/_ailink', '/'),
    )
    .map(([method, path]) =>
      fuzzCase<S3Input>(
        'malformed',
        `${method} ${path} (the drive page)`,
        { method, path, headers: { accept: 'text/html' }, signing: 'none' },
        false,
      ),
    );

  return {
    name: 'http:s3',
    cases: () =>
      fc
        .oneof(
          { weight: 3, arbitrary: badlySigned },
          { weight: 3, arbitrary: fc.constantFrom(...malformed) },
          { weight: 1, arbitrary: noise },
          { weight: 1, arbitrary: page },
        )
        .map((c) => ({ ...c, input: routed(c.input) })),
    valid: () => ({ method: 'PUT', path: '/fuzz/b.txt', body: 'hello', signing: 'ok' }),
    async setup() {
      uploads = await mkdtemp(join(tmpdir(), 'ailink-fuzz-s3-'));
      await this.restore!();
    },
    async restore() {
      await app?.close();
      twins = s3Twins();
      await rm(join(uploads, 'u'), { recursive: true, force: true });
      app = buildS3App({
        storage: twins.storage,
        namespace: twins.namespace,
        uploads: diskUploadStore(join(uploads, 'u'), systemRandom),
        credentials: KEY,
        region: REGION,
        clock: { now: () => Date.now() },
        random: systemRandom,
        maxObjectBytes: MAX_OBJECT,
        log: () => {},
      });
      base = await app.listen({ host: '127.0.0.1', port: 0 });
      for (const op of [
        { method: 'PUT', path: '/fuzz' },
        { method: 'PUT', path: '/empty-bucket' },
        { method: 'PUT', path: '/fuzz/a.txt', body: 'first' },
      ]) {
        const r = await send({ ...op, signing: 'ok' });
        if (!r.ok)
          throw new Error(
            `http:s3: the valid state could not be built: ${op.method} ${op.path} → ${r.status} ${await r.text()}`,
          );
      }
    },
    async apply(input) {
      const r = await send(input);
      const text = await r.text();
      if (r.status < 400) return;
      // A HEAD answer carries only the status (as S3's): its status must be one an S3 code maps to.
      const code =
        input.method === 'HEAD' && text === ''
          ? Object.entries(S3_STATUS).find(([, status]) => status === r.status)?.[0]
          : /<Code>([^<]*)<\/Code>/.exec(text)?.[1];
      if (r.status >= 500) throw new Error(`${r.status} ${code ?? ''}: ${text.slice(0, 200)}`);
      throw new WireRefusal(
        code ?? `HTTP ${r.status}`,
        code !== undefined && Object.hasOwn(S3_STATUS, code),
        text.slice(0, 200),
      );
    },
    async digest() {
      const h = createHash('sha256');
      for (const [fid, bytes] of [...twins.blobs].sort(([a], [b]) => (a < b ? -1 : 1)))
        h.update(fid).update(bytes);
      h.update(JSON.stringify([...twins.buckets].sort()));
      for (const [bucket, inBucket] of [...twins.entries].sort(([a], [b]) => (a < b ? -1 : 1)))
        h.update(JSON.stringify([bucket, [...inBucket].sort(([a], [b]) => (a < b ? -1 : 1))]));
      h.update(await treeDigest(uploads));
      return h.digest('hex');
    },
    async teardown() {
      await app?.close();
      if (uploads !== '') await rm(uploads, { recursive: true, force: true });
    },
  };
}
