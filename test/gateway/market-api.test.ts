import { createHash } from 'node:crypto';
import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createMemoryState } from '../../src/chain/index.ts';
import { fileKey } from '../../src/chain/pallets/file-bank.ts';
import { termsKey } from '../../src/chain/pallets/market.ts';
import { registerMarket } from '../../src/gateway/index.ts';
import { systemClock, systemRandom } from '../../src/shared/clock.ts';
import { AilinkError } from '../../src/shared/errors.ts';
import type { AccessOptions, AccessTicket } from '../../src/storage/index.ts';

// The marketplace API's HTTP shell over an in-memory index and a fake market client (the real ones are exercised by
// test/integration/gateway-market.test.ts): signatures, refusals before paying, the buy-then-stream path with Range,
// the mapping of a seller that never answers, and bodies that are not signed.

const ME = '5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty';
const SELLER = '5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY';
const MY_KEY = 'aa'.repeat(32);
const FID = 'ab'.repeat(32);
const MINE = 'cd'.repeat(32);
const KEY = { accessKeyId: 'AKALTESTMARKET00', secretAccessKey: 'c2VjcmV0IG9mIHRoZSBtYXJrZXQgdGVzdHM' };
const bytes = Uint8Array.from({ length: 1000 }, (_, i) => i % 251);
const sha = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');

const signer = new SignatureV4({
  credentials: KEY,
  region: 'ailink',
  service: 's3',
  sha256: Hash.bind(null, 'sha256'),
  uriEscapePath: false,
});

describe('the marketplace API (HTTP shell)', () => {
  let app: FastifyInstance;
  let requests: { fid: string; options: AccessOptions | undefined }[];
  let answer: (fid: string) => Promise<AccessTicket>;
  let reads: { fid: string; range: { start: number; end: number } | undefined }[];

  beforeEach(async () => {
    const state = createMemoryState();
    state.apply([
      { key: fileKey(FID), value: { owner: SELLER, size: bytes.length, encryption: { wraps: [] } } },
      { key: termsKey(FID), value: { readers: [], price: '100', setAt: 5 } },
      {
        key: fileKey(MINE),
        value: { owner: ME, size: bytes.length, encryption: { wraps: [{ recipient: MY_KEY }] } },
      },
    ]);
    requests = [];
    reads = [];
    answer = async (fid) => ({ fid, via: 'grant', block: 7, paid: 100n });
    app = Fastify();
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', (_request, _payload, done) => done(null, undefined));
    registerMarket(app, {
      market: {
        requestAccess: (fid, options) => {
          requests.push({ fid, options });
          return answer(fid);
        },
        setTerms: async () => ({ block: 9 }),
        accessLog: async () => [],
        share: async () => {
          throw new Error('not used');
        },
      },
      storage: {
        async *get(fid, options = {}) {
          reads.push({ fid, range: options.range });
          const r = options.range;
          yield r === undefined ? bytes : bytes.subarray(r.start, r.end + 1);
        },
      },
      indexer: { state, sync: async () => 0 },
      account: { address: ME, readerKey: MY_KEY },
      credentials: KEY,
      region: 'ailink',
      clock: systemClock,
      random: systemRandom,
    });
    await app.ready();
  });
  afterEach(() => app.close());

  async function call(
    method: string,
    path: string,
    query: Record<string, string> = {},
    headers: Record<string, string> = {},
    body = '',
  ) {
    const signed = await signer.sign({
      method,
      protocol: 'http:',
      hostname: 'localhost',
      path,
      query,
      headers: { host: 'localhost', 'x-amz-content-sha256': sha(body), ...headers },
      ...(body === '' ? {} : { body }),
    });
    const q = new URLSearchParams(query).toString();
    return app.inject({
      method: method as 'GET',
      url: `${path}${q === '' ? '' : `?${q}`}`,
      headers: signed.headers,
      ...(body === '' ? {} : { payload: body }),
    });
  }

  it('refuses an unsigned request', async () => {
    const res = await app.inject({ method: 'GET', url: `/market/objects/${FID}` });
    expect([res.statusCode, res.json().error]).toEqual([401, 'AUTH_MISSING']);
    expect(requests).toEqual([]);
  });

  it('refuses a buy under the price before anything is asked of the chain', async () => {
    const res = await call('GET', `/market/objects/${FID}`, { 'max-price': '99' });
    expect(res.statusCode).toBe(403);
    expect(res.json()).toMatchObject({ error: 'ACCESS_DENIED', details: { reason: 'price-above-max' } });
    expect([requests, reads]).toEqual([[], []]);
  });

  it('buys within the price, then streams the plaintext; a Range gives 206 and only those bytes', async () => {
    const res = await call('GET', `/market/objects/${FID}`, { 'max-price': '100', 'wait-ms': '5000' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-ailink-paid']).toBe('100');
    expect(res.headers['x-ailink-request-block']).toBe('7');
    expect(sha(res.rawPayload)).toBe(sha(bytes));
    expect(requests[0]?.options).toMatchObject({ maxPrice: 100n, deadlineMs: 5000 });
    const part = await call(
      'GET',
      `/market/objects/${FID}`,
      { 'max-price': '100' },
      { range: 'bytes=10-19' },
    );
    expect([part.statusCode, part.headers['content-range']]).toEqual([206, `bytes 10-19/${bytes.length}`]);
    expect(Buffer.from(part.rawPayload).equals(Buffer.from(bytes.subarray(10, 20)))).toBe(true);
    expect(reads.at(-1)?.range).toEqual({ start: 10, end: 19 });
    // A range outside the object costs nothing: refused before the buy.
    const before = requests.length;
    const past = await call(
      'GET',
      `/market/objects/${FID}`,
      { 'max-price': '100' },
      { range: 'bytes=1000-' },
    );
    expect([past.statusCode, past.headers['content-range']]).toEqual([416, `bytes */${bytes.length}`]);
    expect(requests.length).toBe(before);
  });

  it('reads through a presigned URL (a share link) until it expires', async () => {
    const link = async (signingDate: Date) => {
      const p = await signer.presign(
        {
          method: 'GET',
          protocol: 'http:',
          hostname: 'localhost',
          path: `/market/objects/${MINE}`,
          query: {},
          // As @aws-sdk/s3-request-presigner: UNSIGNED-PAYLOAD, hoisted into the query.
          headers: { host: 'localhost', 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' },
        },
        { expiresIn: 60, signingDate },
      );
      return `${p.path}?${new URLSearchParams(p.query as Record<string, string>)}`;
    };
    const res = await app.inject({
      method: 'GET',
      url: await link(new Date()),
      headers: { host: 'localhost' },
    });
    expect(res.statusCode, res.body).toBe(200);
    expect(sha(res.rawPayload)).toBe(sha(bytes));
    const old = await app.inject({
      method: 'GET',
      url: await link(new Date(Date.now() - 120_000)),
      headers: { host: 'localhost' },
    });
    expect([old.statusCode, old.json().error]).toEqual([401, 'AUTH_EXPIRED']);
  });

  it('reads its own object without a request', async () => {
    const res = await call('GET', `/market/objects/${MINE}`);
    expect([res.statusCode, res.headers['x-ailink-access']]).toEqual([200, 'wrap']);
    expect(requests).toEqual([]);
  });

  it('answers 504 TIMEOUT when the seller does not release the key in time, JSON or XML', async () => {
    answer = async () => {
      throw new AilinkError(
        'TIMEOUT',
        'your request was accepted in block 7 (paid 100), but its owner did not release the key',
      );
    };
    const res = await call('POST', `/market/objects/${FID}/purchase`, {
      'max-price': '100',
      'wait-ms': '10',
    });
    expect([res.statusCode, res.json().error, res.json().s3]).toEqual([504, 'TIMEOUT', 'RequestTimeout']);
    const xml = await call(
      'POST',
      `/market/objects/${FID}/purchase`,
      { 'max-price': '100' },
      { accept: 'application/xml' },
    );
    expect(xml.headers['content-type']).toMatch(/^application\/xml/);
    expect(xml.body).toContain('<Code>RequestTimeout</Code>');
  });

  it('takes terms only with a signed body, and only for an object of the account', async () => {
    const body = JSON.stringify({ readers: [SELLER], price: '5' });
    const ok = await call(
      'PUT',
      `/market/objects/${MINE}/terms`,
      {},
      { 'content-type': 'application/json' },
      body,
    );
    expect([ok.statusCode, ok.json()]).toEqual([
      200,
      { fid: MINE, readers: [SELLER], price: '5', block: 9, changed: true },
    ]);
    const unsigned = await call(
      'PUT',
      `/market/objects/${MINE}/terms`,
      {},
      { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' },
      body,
    );
    expect([unsigned.statusCode, unsigned.json().error]).toEqual([400, 'INVALID_INPUT']);
    const notMine = await call('PUT', `/market/objects/${FID}/terms`, {}, {}, body);
    expect([notMine.statusCode, notMine.json().details.reason]).toEqual([403, 'not-owner']);
    const unknown = await call('DELETE', `/market/objects/${FID}`);
    expect([unknown.statusCode, unknown.json().error]).toEqual([404, 'NOT_FOUND']);
  });
});
