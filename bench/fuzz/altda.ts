/**
 * Edge: the gateway's Alt-DA API for rollups (src/gateway/altda.ts, what op-node's DA client calls), composed into the
 * S3 app as the gateway composes it, listening on 127.0.0.1 and reached over real HTTP. Puts carry a bearer token here
 * (`putToken`, for a proxy in front), so a put without one is the unsigned input and one with another token the wrongly
 * signed one. Malformed commitments (length, version, layer, hex), a keccak commitment the bytes do not hash to,
 * a blob over the limit, reads of blobs never stored (out of order) and a second put of a stored blob (duplicated:
 * accepted, but it must store nothing more). What it stores is the twin's blobs, chain state and namespace entries.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { registerAltDa } from '../../src/gateway/altda.ts';
import { commitmentHex, fidCommitment, keccakCommitment } from '../../src/gateway/altda-commitment.ts';
import { diskUploadStore } from '../../src/gateway/multipart.ts';
import { buildS3App } from '../../src/gateway/s3.ts';
import { systemRandom } from '../../src/shared/clock.ts';
import { altdaTwins } from '../../test/gateway/altda-twins.ts';
import { KEY, REGION } from '../../test/gateway/sdk-signer.ts';
import { gatewayRoute } from './gateway-route.ts';
import { type Edge, type FuzzCase, judgeJsonRequest } from './harness.ts';
import { fuzzCase } from './mutate.ts';

type Token = 'ok' | 'none' | 'wrong';

export interface AltDaInput {
  readonly method: 'GET' | 'POST' | 'HEAD' | 'PUT' | 'DELETE';
  readonly path: string;
  readonly body?: Uint8Array;
  readonly token: Token;
  /**
   * The gateway route the request reaches, as fastify registers it (`POST /altda/put/*`, the catch-all
   * `GET /altda/*`; bench/fuzz/gateway-route.ts); none for a path fastify cannot decode.
   * test/fuzz/gateway-routes.test.ts checks that every registered route has cases.
   */
  readonly route?: string;
}

const TOKEN = 'fuzz-token-of-the-proxy';
const MAX_BLOB = 4096;
const bytes = (s: string) => new TextEncoder().encode(s);
const STORED = bytes('frames of a channel, stored by setup');
const FRESH = bytes('frames of another channel');

export function altdaEdge(): Edge<AltDaInput> {
  let app: FastifyInstance | undefined;
  let uploads = '';
  let base = '';
  let twins = altdaTwins();

  const send = (input: AltDaInput) =>
    fetch(`${base}/altda${input.path}`, {
      method: input.method,
      headers: {
        'content-type': 'application/octet-stream',
        ...(input.token === 'none'
          ? {}
          : { authorization: `Bearer ${input.token === 'ok' ? TOKEN : `${TOKEN}x`}` }),
      },
      ...(input.method === 'GET' || input.method === 'HEAD'
        ? {}
        : { body: Buffer.from(input.body ?? new Uint8Array()) }),
    });

  const stored = commitmentHex(keccakCommitment(STORED));
  const fresh = commitmentHex(keccakCommitment(FRESH));
  const never = commitmentHex(keccakCommitment(bytes('never stored')));
  const operations: (Omit<AltDaInput, 'token'> & { label: string })[] = [
    { label: 'put keccak', method: 'POST', path: `/put/${fresh}`, body: FRESH },
    { label: 'put generic', method: 'POST', path: '/put', body: FRESH },
  ];

  const malformed: FuzzCase<AltDaInput>[] = [
    ...[
      '0x',
      '0x00',
      `${stored.slice(0, -2)}`, // one byte short
      `${stored}00`, // one byte long
      `0x02${stored.slice(4)}`, // an unknown commitment type
      `0x01ff${'00'.repeat(32)}`, // a generic commitment of another DA layer
      `0xzz${stored.slice(4)}`,
      stored.slice(2), // without 0x
      `${'%'.repeat(3)}`,
    ].flatMap((c) => [
      fuzzCase<AltDaInput>('malformed', `get ${c.slice(0, 14)}`, {
        method: 'GET',
        path: `/get/${c}`,
        token: 'ok',
      }),
      fuzzCase<AltDaInput>('malformed', `put ${c.slice(0, 14)}`, {
        method: 'POST',
        path: `/put/${c}`,
        body: FRESH,
        token: 'ok',
      }),
    ]),
    fuzzCase<AltDaInput>('malformed', 'put keccak of other bytes', {
      method: 'POST',
      path: `/put/${fresh}`,
      body: bytes('not the bytes the commitment hashes'),
      token: 'ok',
    }),
    fuzzCase<AltDaInput>('malformed', 'put of an AI-LINK commitment with a body', {
      method: 'POST',
      path: `/put/${commitmentHex(fidCommitment('ab'.repeat(32)))}`,
      body: FRESH,
      token: 'ok',
    }),
    fuzzCase<AltDaInput>('malformed', 'evidence of a malformed commitment', {
      method: 'GET',
      path: '/evidence/0x00',
      token: 'ok',
    }),
    fuzzCase<AltDaInput>('oversized', `put of ${MAX_BLOB + 1} bytes`, {
      method: 'POST',
      path: '/put',
      body: new Uint8Array(MAX_BLOB + 1).fill(7),
      token: 'ok',
    }),
    fuzzCase<AltDaInput>('oversized', `keccak put of ${MAX_BLOB + 1} bytes`, {
      method: 'POST',
      path: `/put/${commitmentHex(keccakCommitment(new Uint8Array(MAX_BLOB + 1).fill(7)))}`,
      body: new Uint8Array(MAX_BLOB + 1).fill(7),
      token: 'ok',
    }),
    fuzzCase<AltDaInput>('out-of-order', 'get of a blob never stored', {
      method: 'GET',
      path: `/get/${never}`,
      token: 'ok',
    }),
    fuzzCase<AltDaInput>('out-of-order', 'evidence of a blob never stored', {
      method: 'GET',
      path: `/evidence/${never}`,
      token: 'ok',
    }),
    fuzzCase<AltDaInput>('out-of-order', 'get of an AI-LINK commitment never stored', {
      method: 'GET',
      path: `/get/${commitmentHex(fidCommitment('cd'.repeat(32)))}`,
      token: 'ok',
    }),
    // What no Alt-DA route takes: the catch-all's NOT_FOUND, for each of its methods (a HEAD judged by its GET).
    ...(['GET', 'HEAD', 'PUT', 'POST', 'DELETE'] as const).map((method) =>
      fuzzCase<AltDaInput>('malformed', `${method} of a path the Alt-DA API does not have`, {
        method,
        path: `/blobs/${stored}`,
        body: FRESH,
        token: 'ok',
      }),
    ),
    fuzzCase<AltDaInput>('malformed', 'HEAD of the API root', {
      method: 'HEAD',
      path: '/',
      token: 'ok',
    }),
  ];

  return {
    name: 'http:altda',
    cases() {
      const badlyAuthorised = fc
        .tuple(fc.constantFrom(...operations), fc.constantFrom<Token>('none', 'wrong'))
        .map(([{ label, ...op }, token]) =>
          fuzzCase<AltDaInput>(token === 'none' ? 'unsigned' : 'wrongly-signed', `${label} token ${token}`, {
            ...op,
            token,
          }),
        );
      // A blob already stored, put again: accepted (the DA client retries), and nothing more is stored.
      const duplicated = fc.constant(
        fuzzCase<AltDaInput>(
          'duplicated',
          'put keccak of a stored blob',
          { method: 'POST', path: `/put/${stored}`, body: STORED, token: 'ok' },
          false,
        ),
      );
      const noise = fc
        .tuple(
          fc.constantFrom<'GET' | 'POST'>('GET', 'POST'),
          fc.constantFrom('/get/', '/put/', '/evidence/', '/'),
          fc.stringMatching(/^(0x)?[0-9a-f]{0,80}$/),
          fc.uint8Array({ maxLength: 64 }),
        )
        .map(([method, route, tail, body]) =>
          fuzzCase(
            'malformed',
            `${method} ${route}${tail.slice(0, 12)}`,
            { method, path: `${route}${tail}`, body, token: 'ok' as const },
            false,
          ),
        );
      return fc
        .oneof(
          { weight: 2, arbitrary: badlyAuthorised },
          { weight: 4, arbitrary: fc.constantFrom(...malformed) },
          { weight: 1, arbitrary: duplicated },
          { weight: 1, arbitrary: noise },
        )
        .map((c) => {
          const route = gatewayRoute(c.input.method, `/altda${c.input.path}`);
          return route === undefined ? c : { ...c, input: { ...c.input, route } };
        });
    },
    valid: () => ({ method: 'POST', path: `/put/${fresh}`, body: FRESH, token: 'ok' }),
    async setup() {
      uploads = await mkdtemp(join(tmpdir(), 'ailink-fuzz-altda-'));
      await this.restore!();
    },
    async restore() {
      await app?.close();
      twins = altdaTwins();
      app = buildS3App({
        storage: twins.storage,
        namespace: twins.namespace,
        uploads: diskUploadStore(join(uploads, `u-${randomBytes(4).toString('hex')}`), systemRandom),
        credentials: KEY,
        region: REGION,
        clock: { now: () => Date.now() },
        random: systemRandom,
        log: () => {},
      });
      registerAltDa(app, {
        storage: twins.storage,
        namespace: twins.namespace,
        indexer: twins.indexer,
        maxBlobBytes: MAX_BLOB,
        putToken: TOKEN,
      });
      base = await app.listen({ host: '127.0.0.1', port: 0 });
      const put = await send({ method: 'POST', path: `/put/${stored}`, body: STORED, token: 'ok' });
      if (put.status !== 200)
        throw new Error(`http:altda: the valid state could not be built: ${put.status} ${await put.text()}`);
    },
    apply: (input) => judgeJsonRequest(send, input, 'code'),
    async digest() {
      const h = createHash('sha256');
      for (const [fid, blob] of [...twins.blobs].sort(([a], [b]) => (a < b ? -1 : 1)))
        h.update(fid).update(blob);
      h.update(JSON.stringify([...twins.buckets].sort()));
      h.update(JSON.stringify([...twins.entries.keys()].sort()));
      h.update(String(twins.puts.length));
      return h.digest('hex');
    },
    async teardown() {
      await app?.close();
      if (uploads !== '') await rm(uploads, { recursive: true, force: true });
    },
  };
}
