/**
 * Edge: the gateway's DeOSS API (src/gateway/deoss.ts), listening on 127.0.0.1 in process and reached over real HTTP,
 * with DeOSS's Account/Message/Signature headers — missing, signed by another key, over another message, claimed for
 * the owner by a stranger, expired, expiring too far ahead, of DeOSS's own never-expiring form, and replayed (a
 * message the valid state was built with) — and malformed, oversized, out-of-order and duplicated requests of each
 * route (form uploads, resumable chunks, downloads, metadata, deletion). What it stores is the twin of the storage
 * client and namespace (test/gateway/deoss-twins.ts) and the staged resumable uploads on disk; the file of used
 * messages is left out of the digest: recording a message once it is used, even by a refused request, is the point.
 * A refusal is a 4xx whose `error` is a registered code; a 5xx is a crash.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { registerDeoss } from '../../src/gateway/deoss.ts';
import { deossMessage } from '../../src/gateway/deoss-protocol.ts';
import { diskUploadStore } from '../../src/gateway/multipart.ts';
import { buildS3App } from '../../src/gateway/s3.ts';
import { type Account, accountFromSeeds, accountsReady } from '../../src/shared/account.ts';
import { toHex } from '../../src/shared/bytes.ts';
import { systemRandom } from '../../src/shared/clock.ts';
import { deossTwins } from '../../test/gateway/deoss-twins.ts';
import { s3Twins } from '../../test/gateway/s3-twins.ts';
import { KEY, REGION } from '../../test/gateway/sdk-signer.ts';
import { treeDigest } from './files.ts';
import { gatewayRoute } from './gateway-route.ts';
import { type Edge, type FuzzCase, judgeJsonRequest } from './harness.ts';
import { fuzzCase } from './mutate.ts';

type Signing =
  | 'ok'
  | 'none'
  | 'other-key'
  | 'other-message'
  | 'stranger'
  | 'expired'
  | 'too-far'
  | 'never-expiring'
  | 'replayed';

export interface DeossInput {
  readonly method: string;
  readonly path: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string;
  readonly signing: Signing;
  /**
   * The gateway route the request reaches, as fastify registers it (`GET /deoss/file/open/:fid`, the catch-all
   * `GET /deoss/*`; bench/fuzz/gateway-route.ts); none for a path fastify cannot decode.
   * test/fuzz/gateway-routes.test.ts checks that every registered route has cases.
   */
  readonly route?: string;
}

const MAX_OBJECT = 1000;
const BOUNDARY = 'fuzzBoundary42';
const form = (name: string, content: string, field = 'file') =>
  `--${BOUNDARY}\r\nContent-Disposition: form-data; name="${field}"; filename="${name}"\r\n\r\n${content}\r\n--${BOUNDARY}--\r\n`;
const FORM = { 'content-type': `multipart/form-data; boundary=${BOUNDARY}` };
const CHUNK = (range: string) => ({ 'content-type': 'application/octet-stream', 'content-range': range });

export function deossEdge(): Edge<DeossInput> {
  let app: FastifyInstance | undefined;
  let stateDir = '';
  let base = '';
  let owner: Account;
  let stranger: Account;
  let twins: ReturnType<typeof deossTwins>;
  /** A message the valid state was built with: already used. */
  let used = { account: '', message: '', signature: '' };
  /** The fid of the file the valid state uploaded. */
  let stored = '';

  const sign = (by: Account, message: string) => toHex(by.sign(new TextEncoder().encode(message)));
  const fresh = () => deossMessage(Date.now() + 60_000, `fuzz-${randomBytes(8).toString('hex')}`);

  function authHeaders(signing: Signing): Record<string, string> {
    const message = fresh();
    switch (signing) {
      case 'ok':
        return { account: owner.address, message, signature: sign(owner, message) };
      case 'none':
        return {};
      case 'other-key':
        return { account: owner.address, message, signature: sign(stranger, message) };
      case 'other-message':
        return { account: owner.address, message, signature: sign(owner, fresh()) };
      case 'stranger':
        return { account: stranger.address, message, signature: sign(stranger, message) };
      case 'expired': {
        const old = deossMessage(Math.floor(Date.now() / 1000) * 1000 - 60_000, 'fuzz-expired01');
        return { account: owner.address, message: old, signature: sign(owner, old) };
      }
      case 'too-far': {
        const far = deossMessage(Math.floor(Date.now() / 1000) * 1000 + 3_600_000, 'fuzz-toofar001');
        return { account: owner.address, message: far, signature: sign(owner, far) };
      }
      case 'never-expiring': {
        // What DeOSS itself accepts: a bare timestamp, forever.
        const bare = String(Math.floor(Date.now() / 1000));
        return { account: owner.address, message: bare, signature: sign(owner, bare) };
      }
      case 'replayed':
        return used;
    }
  }

  async function send(input: DeossInput): Promise<Response> {
    return fetch(`${base}/deoss${input.path}`, {
      method: input.method,
      headers: { ...(input.headers ?? {}), ...authHeaders(input.signing) },
      ...(input.method === 'GET' || input.method === 'HEAD' ? {} : { body: input.body ?? '' }),
    });
  }

  /** The state-changing operations, each valid as written against the state setup builds. */
  const operations = (): (Omit<DeossInput, 'signing'> & { label: string })[] => [
    { label: 'upload', method: 'PUT', path: '/file', headers: FORM, body: form('b.txt', 'hello') },
    { label: 'delete', method: 'DELETE', path: `/file/${stored}` },
    {
      label: 'resume',
      method: 'PUT',
      path: '/resume/clip.bin',
      headers: CHUNK('bytes 10-19/30'),
      body: 'x'.repeat(10),
    },
    { label: 'download', method: 'GET', path: `/file/download/${stored}` },
    { label: 'open', method: 'GET', path: `/file/open/${stored}` },
    { label: 'metadata', method: 'GET', path: `/file/metadata/${stored}` },
    { label: 'location', method: 'GET', path: `/file/location/${stored}` },
    { label: 'list', method: 'GET', path: '/file/list' },
  ];

  const malformed = (): FuzzCase<DeossInput>[] => [
    // The reads of one file: a fid that is not one, of a file never stored, a range past its end.
    ...['open', 'metadata', 'location'].flatMap((read) => [
      fuzzCase<DeossInput>('malformed', `${read} of a fid that is not hex`, {
        method: 'GET',
        path: `/file/${read}/nothex`,
        signing: 'ok',
      }),
      fuzzCase<DeossInput>('out-of-order', `${read} of a file never stored`, {
        method: 'GET',
        path: `/file/${read}/${'e'.repeat(64)}`,
        signing: 'ok',
      }),
    ]),
    fuzzCase<DeossInput>('malformed', 'open with a range past the end', {
      method: 'GET',
      path: `/file/open/${stored}`,
      headers: { range: 'bytes=5000-6000' },
      signing: 'ok',
    }),
    fuzzCase<DeossInput>('malformed', 'list of a bucket name that is not one', {
      method: 'GET',
      path: '/file/list',
      headers: { bucket: 'AB' },
      signing: 'ok',
    }),
    // What no DeOSS route takes: the catch-all's NOT_FOUND, for each of its methods (a HEAD judged by its GET).
    ...['GET', 'HEAD', 'PUT', 'POST', 'DELETE'].map((method) =>
      fuzzCase<DeossInput>('malformed', `${method} of a path DeOSS does not have`, {
        method,
        path: '/file/list/more',
        body: '',
        signing: 'ok',
      }),
    ),
    fuzzCase<DeossInput>('malformed', 'HEAD of a path outside /file', {
      method: 'HEAD',
      path: '/nothing',
      signing: 'ok',
    }),
    ...['nothex', 'A'.repeat(64), '0'.repeat(63), `${'0'.repeat(64)}00`, '%2E%2E'].map((fid) =>
      fuzzCase<DeossInput>('malformed', `download ${fid.slice(0, 12)}`, {
        method: 'GET',
        path: `/file/download/${fid}`,
        signing: 'ok',
      }),
    ),
    fuzzCase<DeossInput>('malformed', 'delete of a fid that is not hex', {
      method: 'DELETE',
      path: '/file/nothex',
      signing: 'ok',
    }),
    fuzzCase<DeossInput>('malformed', 'upload that is not a form', {
      method: 'PUT',
      path: '/file',
      headers: { 'content-type': 'application/json' },
      body: '{"file":"x"}',
      signing: 'ok',
    }),
    fuzzCase<DeossInput>('malformed', 'upload of a form without its boundary', {
      method: 'PUT',
      path: '/file',
      headers: { 'content-type': 'multipart/form-data' },
      body: form('b.txt', 'x'),
      signing: 'ok',
    }),
    fuzzCase<DeossInput>('malformed', 'upload of a form cut short', {
      method: 'PUT',
      path: '/file',
      headers: FORM,
      body: form('b.txt', 'hello').slice(0, -12),
      signing: 'ok',
    }),
    fuzzCase<DeossInput>('malformed', 'upload of a form without a file part', {
      method: 'PUT',
      path: '/file',
      headers: FORM,
      body: `--${BOUNDARY}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhi\r\n--${BOUNDARY}--\r\n`,
      signing: 'ok',
    }),
    fuzzCase<DeossInput>('malformed', 'upload into a bucket that does not exist', {
      method: 'PUT',
      path: '/file',
      headers: { ...FORM, bucket: 'nobucket' },
      body: form('b.txt', 'hello'),
      signing: 'ok',
    }),
    ...['bytes=0-9/30', 'bytes 0-9', 'bytes 9-0/30', 'bytes 0-30/30', 'items 0-9/30', ''].map((range) =>
      fuzzCase<DeossInput>('malformed', `resume with Content-Range ${JSON.stringify(range)}`, {
        method: 'PUT',
        path: '/resume/clip.bin',
        headers: CHUNK(range),
        body: 'x'.repeat(10),
        signing: 'ok',
      }),
    ),
    fuzzCase<DeossInput>('malformed', 'resume whose body is shorter than its range', {
      method: 'PUT',
      path: '/resume/clip.bin',
      headers: CHUNK('bytes 10-19/30'),
      body: 'x'.repeat(5),
      signing: 'ok',
    }),
    fuzzCase<DeossInput>('oversized', `upload of ${MAX_OBJECT + 1} bytes`, {
      method: 'PUT',
      path: '/file',
      headers: FORM,
      body: form('big.bin', 'x'.repeat(MAX_OBJECT + 1)),
      signing: 'ok',
    }),
    fuzzCase<DeossInput>('oversized', `resume of a ${MAX_OBJECT + 1}-byte total`, {
      method: 'PUT',
      path: '/resume/big.bin',
      headers: CHUNK(`bytes 0-9/${MAX_OBJECT + 1}`),
      body: 'x'.repeat(10),
      signing: 'ok',
    }),
    fuzzCase<DeossInput>('out-of-order', 'resume of an upload never begun, from byte 10', {
      method: 'PUT',
      path: '/resume/other.bin',
      headers: CHUNK('bytes 10-19/30'),
      body: 'x'.repeat(10),
      signing: 'ok',
    }),
    fuzzCase<DeossInput>('out-of-order', 'resume past a gap', {
      method: 'PUT',
      path: '/resume/clip.bin',
      headers: CHUNK('bytes 20-29/30'),
      body: 'x'.repeat(10),
      signing: 'ok',
    }),
    fuzzCase<DeossInput>('out-of-order', 'delete of a file never stored', {
      method: 'DELETE',
      path: `/file/${'e'.repeat(64)}`,
      signing: 'ok',
    }),
    fuzzCase<DeossInput>('duplicated', 'resume of a chunk already staged', {
      method: 'PUT',
      path: '/resume/clip.bin',
      headers: CHUNK('bytes 0-9/30'),
      body: 'x'.repeat(10),
      signing: 'ok',
    }),
    fuzzCase<DeossInput>('duplicated', 'resume of the staged upload with another total', {
      method: 'PUT',
      path: '/resume/clip.bin',
      headers: CHUNK('bytes 10-19/40'),
      body: 'x'.repeat(10),
      signing: 'ok',
    }),
  ];

  const variantOf: Record<Exclude<Signing, 'ok'>, FuzzCase<DeossInput>['variant']> = {
    none: 'unsigned',
    'other-key': 'wrongly-signed',
    'other-message': 'wrongly-signed',
    stranger: 'wrong-caller',
    expired: 'replayed',
    'too-far': 'malformed',
    'never-expiring': 'replayed',
    replayed: 'replayed',
  };

  return {
    name: 'http:deoss',
    cases() {
      const badlySigned = fc
        .tuple(
          fc.constantFrom(...operations()),
          fc.constantFrom(...(Object.keys(variantOf) as Exclude<Signing, 'ok'>[])),
        )
        .map(([{ label, ...op }, signing]) =>
          fuzzCase<DeossInput>(variantOf[signing], `${label} ${signing}`, { ...op, signing }),
        );
      const noise = fc
        .tuple(
          fc.constantFrom('GET', 'PUT', 'POST', 'DELETE'),
          // No "." or ".." segment: the client would resolve it, and "/deoss/.." is not a DeOSS path.
          fc.array(
            fc.stringMatching(/^[a-z0-9.%-]{1,12}$/).filter((seg) => !/^(\.|%2e){1,2}$/i.test(seg)),
            { minLength: 1, maxLength: 3 },
          ),
          fc.string({ maxLength: 64 }),
        )
        .map(([method, segments, body]) =>
          fuzzCase(
            'malformed',
            `${method} /${segments.join('/')}`,
            { method, path: `/${segments.join('/')}`, body, signing: 'ok' as const },
            false,
          ),
        );
      return fc
        .oneof(
          { weight: 3, arbitrary: badlySigned },
          { weight: 3, arbitrary: fc.constantFrom(...malformed()) },
          { weight: 1, arbitrary: noise },
        )
        .map((c) => {
          const route = gatewayRoute(c.input.method, `/deoss${c.input.path}`);
          return route === undefined ? c : { ...c, input: { ...c.input, route } };
        });
    },
    valid: () => ({
      method: 'PUT',
      path: '/file',
      headers: FORM,
      body: form('b.txt', 'hello'),
      signing: 'ok',
    }),
    async setup() {
      await accountsReady();
      owner = accountFromSeeds(new Uint8Array(32).fill(41), new Uint8Array(32).fill(42));
      stranger = accountFromSeeds(new Uint8Array(32).fill(43), new Uint8Array(32).fill(44));
      stateDir = await mkdtemp(join(tmpdir(), 'ailink-fuzz-deoss-'));
      await this.restore!();
    },
    async restore() {
      await app?.close();
      await rm(join(stateDir, 'state'), { recursive: true, force: true });
      twins = deossTwins(owner.address);
      const s3 = s3Twins();
      // As the gateway composes it (src/node/gateway.ts): the S3 app, whose framework errors the DeOSS routes share.
      app = buildS3App({
        storage: s3.storage,
        namespace: s3.namespace,
        uploads: diskUploadStore(join(stateDir, 'state', 'uploads'), systemRandom),
        credentials: KEY,
        region: REGION,
        clock: { now: () => Date.now() },
        random: systemRandom,
        log: () => {},
      });
      registerDeoss(app, {
        storage: twins.storage,
        namespace: twins.namespace,
        clock: { now: () => Date.now() },
        stateDir: join(stateDir, 'state'),
        maxObjectBytes: MAX_OBJECT,
      });
      base = await app.listen({ host: '127.0.0.1', port: 0 });
      // The valid state: one stored file (its message kept, to replay), one resumable upload staged at 10 of 30.
      const message = fresh();
      used = { account: owner.address, message, signature: sign(owner, message) };
      const put = await fetch(`${base}/deoss/file`, {
        method: 'PUT',
        headers: { ...FORM, ...used },
        body: form('a.txt', 'first'),
      });
      const chunk = await send({
        method: 'PUT',
        path: '/resume/clip.bin',
        headers: CHUNK('bytes 0-9/30'),
        body: 'y'.repeat(10),
        signing: 'ok',
      });
      if (put.status !== 200 || chunk.status !== 308)
        throw new Error(
          `http:deoss: the valid state could not be built: upload ${put.status} ${await put.text()}, chunk ${chunk.status}`,
        );
      stored = ((await put.json()) as { data: { fid: string } }).data.fid;
    },
    apply: (input) => judgeJsonRequest(send, input, 'error'),
    async digest() {
      const h = createHash('sha256');
      for (const [fid, o] of [...twins.objects].sort(([a], [b]) => (a < b ? -1 : 1)))
        h.update(fid).update(o.bytes).update(JSON.stringify(o.file));
      h.update(await treeDigest(join(stateDir, 'state', 'resume')));
      return h.digest('hex');
    },
    async teardown() {
      await app?.close();
      if (stateDir !== '') await rm(stateDir, { recursive: true, force: true });
    },
  };
}
