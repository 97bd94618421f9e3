import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { putAllowed, registerAltDa } from '../../src/gateway/altda.ts';
import {
  AILINK_DA_LAYER,
  commitmentHex,
  encodeCommitment,
  fidCommitment,
  keccak256Hex,
  keccakCommitment,
  parseCommitment,
} from '../../src/gateway/altda-commitment.ts';
import { diskUploadStore } from '../../src/gateway/multipart.ts';
import { buildS3App } from '../../src/gateway/s3.ts';
import { systemRandom } from '../../src/shared/clock.ts';
import { AilinkError } from '../../src/shared/errors.ts';
import { altdaTwins } from './altda-twins.ts';

// The Alt-DA commitments (pure) and the API's refusals, over an in-memory storage, namespace and chain state; the
// real round trips run against a dev network in test/integration/gateway-altda.test.ts.

const text = (s: string) => new TextEncoder().encode(s);
const codeOf = (run: () => unknown) => {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(AilinkError);
    return (err as AilinkError).code;
  }
  throw new Error('expected a refusal');
};

describe('Alt-DA commitments', () => {
  it('keccak256 test vectors (Ethereum keccak, not SHA3-256)', () => {
    expect(keccak256Hex(new Uint8Array())).toBe(
      'c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470',
    );
    expect(keccak256Hex(text('abc'))).toBe(
      '4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45',
    );
    // SHA3-256("abc") differs: a swapped hash would pass a round trip but not op-node's check.
    expect(keccak256Hex(text('abc'))).not.toBe(createHash('sha3-256').update('abc').digest('hex'));
  });

  it('type 0 encodes as 0x00‖keccak256 and parses back; case-insensitive hex is read as lowercase', () => {
    const c = keccakCommitment(text('abc'));
    expect(commitmentHex(c)).toBe('0x004e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45');
    expect(encodeCommitment(c).byteLength).toBe(33);
    expect(parseCommitment(commitmentHex(c))).toEqual(c);
    expect(parseCommitment(commitmentHex(c).toUpperCase().replace('0X', '0x'))).toEqual(c);
  });

  it('type 1 encodes as 0x01‖0x41‖fid (raw bytes) and parses back', () => {
    const fid = 'ab'.repeat(32);
    const c = fidCommitment(fid);
    const bytes = encodeCommitment(c);
    expect([...bytes.subarray(0, 2)]).toEqual([0x01, AILINK_DA_LAYER]);
    expect(Buffer.from(bytes.subarray(2)).toString('hex')).toBe(fid);
    expect(commitmentHex(c)).toBe(`0x0141${fid}`);
    expect(parseCommitment(`0x0141${fid}`)).toEqual({ type: 'ailink', fid });
  });

  it('refuses malformed hex, unknown types, wrong lengths and other DA layers', () => {
    const h = 'ab'.repeat(32);
    for (const bad of [
      '',
      '0x',
      h, // no 0x
      `0x00${h}0`, // odd
      `0x00${h.slice(2)}zz`,
      `0x00${h}00`, // 33 bytes
      `0x00${h.slice(2)}`, // 31 bytes
      `0x02${h}`, // unknown type
      `0x0100${h}`, // EigenDA's layer byte
      '0x01',
      `0x0141${h}00`,
      `0x00${'a'.repeat(400)}`,
    ]) {
      expect(
        codeOf(() => parseCommitment(bad)),
        bad,
      ).toBe('INVALID_INPUT');
    }
  });

  it('put sources: exact addresses (IPv4-mapped compares as IPv4), or * for any', () => {
    expect(putAllowed('127.0.0.1', ['127.0.0.1', '::1'])).toBe(true);
    expect(putAllowed('::ffff:127.0.0.1', ['127.0.0.1'])).toBe(true);
    expect(putAllowed('::1', ['127.0.0.1', '::1'])).toBe(true);
    expect(putAllowed('10.0.0.7', ['127.0.0.1', '::1'])).toBe(false);
    expect(putAllowed(undefined, ['127.0.0.1'])).toBe(false);
    expect(putAllowed('10.0.0.7', ['*'])).toBe(true);
  });
});

describe('Alt-DA API (in memory)', () => {
  let app: FastifyInstance | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
    for (const d of stagingDirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  /** Composed as the gateway composes it: into the S3 app, whose root reads no bodies. */
  const stagingDirs: string[] = [];
  function build(options: { maxBlobBytes?: number; putToken?: string } = {}) {
    stagingDirs.push(mkdtempSync(join(tmpdir(), 'ailink-altda-uploads-')));
    const net = altdaTwins();
    app = buildS3App({
      storage: net.storage,
      namespace: net.namespace,
      credentials: { accessKeyId: 'AKIDTESTTESTTEST', secretAccessKey: 'x'.repeat(40) },
      region: 'test',
      clock: { now: () => Date.now() } as never,
      random: (n: number) => new Uint8Array(n),
      uploads: diskUploadStore(stagingDirs.at(-1)!, systemRandom),
    });
    registerAltDa(app, { storage: net.storage, namespace: net.namespace, indexer: net.indexer, ...options });
    return { app, net };
  }
  const octets = { 'content-type': 'application/octet-stream' };

  it('type 0: put, get, evidence; a second put of the same bytes stores nothing more', async () => {
    const { app, net } = build();
    const blob = text('frames of a channel');
    const c = commitmentHex(keccakCommitment(blob));
    const put = await app.inject({
      method: 'POST',
      url: `/altda/put/${c}`,
      headers: octets,
      payload: Buffer.from(blob),
    });
    expect(put.statusCode).toBe(200);
    expect(net.puts).toHaveLength(1);
    expect(net.puts[0]).toMatchObject({ encrypt: false });
    expect(net.buckets.has('altda')).toBe(true);
    expect(net.entries.has(`altda/keccak256/${c.slice(4)}`)).toBe(true);
    const got = await app.inject({ method: 'GET', url: `/altda/get/${c}` });
    expect(got.statusCode).toBe(200);
    expect(got.rawPayload.equals(Buffer.from(blob))).toBe(true);
    const again = await app.inject({
      method: 'POST',
      url: `/altda/put/${c}`,
      headers: octets,
      payload: Buffer.from(blob),
    });
    expect(again.statusCode).toBe(200);
    expect(net.puts).toHaveLength(1);
    const ev = await app.inject({ method: 'GET', url: `/altda/evidence/${c}` });
    expect(ev.statusCode).toBe(200);
    expect(ev.json()).toMatchObject({
      commitment: c,
      activeAt: 5,
      height: 12,
      filedAs: `altda/keccak256/${c.slice(4)}`,
      miners: [
        { miner: 'm1', columns: [0, 2], passes: 3, lastPassSinceActive: true },
        { miner: 'm2', columns: [1], passes: 0, lastPassSinceActive: false },
      ],
    });
  });

  it('a method or path the API does not have → 404 NOT_FOUND in its JSON, not an S3 answer for a bucket "altda"', async () => {
    const { app, net } = build();
    for (const [method, url] of [
      ['GET', '/altda/put/0x00'],
      ['GET', '/altda/'],
      ['PUT', '/altda/put/0x00'],
      ['DELETE', '/altda/get/0x00'],
      ['POST', '/altda/other'],
    ] as const) {
      const r = await app.inject({
        method,
        url,
        headers: octets,
        payload: method === 'GET' ? undefined : 'x',
      });
      expect([r.statusCode, r.json().code], `${method} ${url}`).toEqual([404, 'NOT_FOUND']);
    }
    expect(net.puts).toHaveLength(0);
  });

  it('a keccak mismatch → 400 naming both hashes, and nothing is stored', async () => {
    const { app, net } = build();
    const c = commitmentHex(keccakCommitment(text('what was committed')));
    const res = await app.inject({
      method: 'POST',
      url: `/altda/put/${c}`,
      headers: octets,
      payload: 'other bytes',
    });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ code: 'INVALID_INPUT' });
    expect(res.json().message).toContain(c.slice(4));
    expect(net.puts).toHaveLength(0);
    expect(net.buckets.size).toBe(0);
  });

  it('type 1: POST /put answers the raw commitment bytes, which GET /get takes back', async () => {
    const { app, net } = build();
    const blob = text('generic blob');
    const put = await app.inject({
      method: 'POST',
      url: '/altda/put',
      headers: octets,
      payload: Buffer.from(blob),
    });
    expect(put.statusCode).toBe(200);
    expect(put.headers['content-type']).toBe('application/octet-stream');
    const fid = createHash('sha256').update(blob).digest('hex');
    expect(
      put.rawPayload.equals(Buffer.concat([Buffer.of(1, AILINK_DA_LAYER), Buffer.from(fid, 'hex')])),
    ).toBe(true);
    expect(net.puts[0]).toMatchObject({ encrypt: false });
    expect(net.puts[0]?.entry).toBeUndefined();
    const got = await app.inject({ method: 'GET', url: `/altda/get/0x${put.rawPayload.toString('hex')}` });
    expect(got.statusCode).toBe(200);
    expect(got.rawPayload.toString()).toBe('generic blob');
  });

  it('unknown → 404, malformed → 400; a sealed object is never served by its fid', async () => {
    const { app, net } = build();
    const unknown = commitmentHex(keccakCommitment(text('never stored')));
    expect((await app.inject({ method: 'GET', url: `/altda/get/${unknown}` })).statusCode).toBe(404);
    expect((await app.inject({ method: 'GET', url: `/altda/evidence/${unknown}` })).statusCode).toBe(404);
    expect(
      (
        await app.inject({
          method: 'GET',
          url: `/altda/get/${commitmentHex(fidCommitment('cd'.repeat(32)))}`,
        })
      ).statusCode,
    ).toBe(404);
    for (const bad of ['0xzz', '0x02aa', 'abc', `0x00${'ab'.repeat(31)}`])
      expect((await app.inject({ method: 'GET', url: `/altda/get/${bad}` })).statusCode, bad).toBe(400);
    const { fid } = await net.storage.put(text('a private object of the account'), {});
    const res = await app.inject({ method: 'GET', url: `/altda/get/${commitmentHex(fidCommitment(fid))}` });
    expect(res.statusCode).toBe(404);
    expect(res.body).not.toContain('private object');
  });

  it('oversized → 413 before storing (declared length, or counted while streaming); empty → 400', async () => {
    const { app, net } = build({ maxBlobBytes: 1000 });
    const big = Buffer.alloc(1001, 7);
    const c = commitmentHex(keccakCommitment(big));
    expect(
      (await app.inject({ method: 'POST', url: `/altda/put/${c}`, headers: octets, payload: big }))
        .statusCode,
    ).toBe(413);
    expect(
      (await app.inject({ method: 'POST', url: '/altda/put', headers: octets, payload: big })).statusCode,
    ).toBe(413);
    // No Content-Length: counted as it streams.
    const { Readable } = await import('node:stream');
    const streamed = await app.inject({
      method: 'POST',
      url: '/altda/put',
      headers: { ...octets, 'transfer-encoding': 'chunked' },
      payload: Readable.from([big.subarray(0, 600), big.subarray(600)]),
    });
    expect(streamed.statusCode).toBe(413);
    expect(
      (await app.inject({ method: 'POST', url: '/altda/put', headers: octets, payload: '' })).statusCode,
    ).toBe(400);
    expect(net.puts).toHaveLength(0);
  });

  it('over a real socket, an oversized streamed body still gets its 413 (the socket is not torn down first)', async () => {
    const { app, net } = build({ maxBlobBytes: 1000 });
    const url = new URL(`${await app.listen({ host: '127.0.0.1', port: 0 })}/altda/put`);
    const { request } = await import('node:http');
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(url, { method: 'POST', headers: octets, agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      // Chunked, no Content-Length: the bound is found while counting, after the first 800 bytes.
      req.write(Buffer.alloc(800, 1));
      setTimeout(() => req.end(Buffer.alloc(800, 2)), 50);
    });
    expect(status).toBe(413);
    expect(net.puts).toHaveLength(0);
  });

  it('puts: only from allowed addresses, with the token when one is set; gets open', async () => {
    const { app, net } = build({ putToken: 'sekrit' });
    const blob = Buffer.from('x');
    const c = commitmentHex(keccakCommitment(blob));
    const from = (remoteAddress: string, headers: Record<string, string> = {}) =>
      app.inject({
        method: 'POST',
        url: `/altda/put/${c}`,
        headers: { ...octets, ...headers },
        payload: blob,
        remoteAddress,
      });
    expect((await from('10.1.2.3', { authorization: 'Bearer sekrit' })).statusCode).toBe(403);
    expect((await from('127.0.0.1')).statusCode).toBe(401);
    expect((await from('127.0.0.1', { authorization: 'Bearer wrong!' })).statusCode).toBe(403);
    expect(
      (
        await app.inject({
          method: 'POST',
          url: '/altda/put',
          headers: octets,
          payload: blob,
          remoteAddress: '10.1.2.3',
        })
      ).statusCode,
    ).toBe(403);
    expect(net.puts).toHaveLength(0);
    expect((await from('127.0.0.1', { authorization: 'Bearer sekrit' })).statusCode).toBe(200);
    expect(
      (await app.inject({ method: 'GET', url: `/altda/get/${c}`, remoteAddress: '10.1.2.3' })).statusCode,
    ).toBe(200);
  });

  it('a put names a keccak commitment or none; the S3 API still answers beside it', async () => {
    const { app } = build();
    const res = await app.inject({
      method: 'POST',
      url: `/altda/put/${commitmentHex(fidCommitment('ab'.repeat(32)))}`,
      headers: octets,
      payload: 'x',
    });
    expect(res.statusCode).toBe(400);
    // Unsigned S3 request: refused by SigV4, i.e. the S3 routes are untouched.
    expect((await app.inject({ method: 'GET', url: '/' })).statusCode).toBe(403);
  });
});
