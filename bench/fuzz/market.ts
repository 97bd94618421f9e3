/**
 * Edge: the gateway's marketplace API (src/gateway/market.ts, under /market), composed into the S3 app as the gateway
 * composes it, listening on 127.0.0.1 and reached over real HTTP with requests signed by the AWS SDK's SigV4 signer.
 * Behind it: an in-memory index of the chain (one object of this account's, one a seller prices at 100, one the seller
 * does not sell) and a twin of the market client that records every chain write it is asked for (terms set, access
 * requested and paid, shares) and applies new terms to the index. Requests arrive unsigned, wrongly signed (another
 * secret, a changed signature, another body), replayed past the clock skew, with malformed fids, bodies, prices, waits
 * and ranges, oversized, for objects never recorded, for another owner's object, under the price or for an object not
 * for sale. A refusal is a 4xx whose JSON `error` is registered; the digest covers the index and every write asked of
 * the market client: a refusal must have asked for none (nobody pays for nothing).
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { fileKey } from '../../src/chain/pallets/file-bank.ts';
import { termsKey } from '../../src/chain/pallets/market.ts';
import { createMemoryState, type StateStore } from '../../src/chain/state.ts';
import { registerMarket } from '../../src/gateway/market.ts';
import { diskUploadStore } from '../../src/gateway/multipart.ts';
import { buildS3App } from '../../src/gateway/s3.ts';
import { systemRandom } from '../../src/shared/clock.ts';
import { s3Twins } from '../../test/gateway/s3-twins.ts';
import { KEY, REGION, sdkSigner } from '../../test/gateway/sdk-signer.ts';
import { gatewayRoute } from './gateway-route.ts';
import { type Edge, type FuzzCase, judgeJsonRequest, type Variant } from './harness.ts';
import { fuzzCase, type Json, otherType, withPath } from './mutate.ts';

type Signing =
  | 'ok'
  | 'none'
  | 'wrong-secret'
  | 'changed-signature'
  | 'old'
  | 'other-body'
  | 'unsigned-payload';

export interface MarketInput {
  readonly method: 'GET' | 'PUT' | 'POST' | 'HEAD' | 'DELETE';
  /** Under /market. */
  readonly path: string;
  readonly query?: Readonly<Record<string, string>>;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string;
  readonly signing: Signing;
  /**
   * The gateway route the request reaches, as fastify registers it (`PUT /market/objects/:fid/terms`, the catch-all
   * `GET /market/*`; bench/fuzz/gateway-route.ts); none for a path fastify cannot decode.
   * test/fuzz/gateway-routes.test.ts checks that every registered route has cases.
   */
  readonly route?: string;
}

const ME = '5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty';
const SELLER = '5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY';
const READER = '5FLSigC9HGRKVhB9FiEo4Y3koPsNmBmLJbpXg2mp1hXcS59Y';
const MY_KEY = 'aa'.repeat(32);
/** The seller's, priced at 100 planck. */
const PRICED = 'ab'.repeat(32);
/** The seller's, not for sale. */
const NOT_FOR_SALE = 'ef'.repeat(32);
/** This account's own. */
const MINE = 'cd'.repeat(32);
const NEVER = '12'.repeat(32);
const SIZE = 1000;
const BYTES = Uint8Array.from({ length: SIZE }, (_, i) => i % 251);
const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const signerFor = (secret: string) =>
  new SignatureV4({
    credentials: { accessKeyId: KEY.accessKeyId, secretAccessKey: secret },
    region: REGION,
    service: 's3',
    sha256: Hash.bind(null, 'sha256'),
    uriEscapePath: false,
  });

function indexState(): StateStore {
  const state = createMemoryState();
  const file = (owner: string, wraps: { recipient: string }[]) => ({
    owner,
    size: SIZE,
    encryption: { wraps },
  });
  state.apply([
    { key: fileKey(PRICED), value: file(SELLER, []) },
    { key: termsKey(PRICED), value: { readers: [], price: '100', setAt: 5 } },
    { key: fileKey(NOT_FOR_SALE), value: file(SELLER, []) },
    { key: termsKey(NOT_FOR_SALE), value: { readers: [], price: null, setAt: 5 } },
    { key: fileKey(MINE), value: file(ME, [{ recipient: MY_KEY }]) },
    { key: termsKey(MINE), value: { readers: [], price: '7', setAt: 6 } },
  ]);
  return state;
}

export function marketEdge(): Edge<MarketInput> {
  let app: FastifyInstance | undefined;
  let uploads = '';
  let base = '';
  let state = indexState();
  /** Every chain write the API asked the market client for, in order. */
  let writes: string[] = [];

  async function send(input: MarketInput): Promise<Response> {
    const path = `/market${input.path}`;
    const url = new URL(base + path);
    const body = input.body ?? '';
    const headers: Record<string, string> = {
      host: url.host,
      'x-amz-content-sha256': input.signing === 'unsigned-payload' ? 'UNSIGNED-PAYLOAD' : sha(body),
      ...(input.headers ?? {}),
    };
    let sent = headers;
    if (input.signing !== 'none') {
      const signer = input.signing === 'wrong-secret' ? signerFor(`${KEY.secretAccessKey}x`) : sdkSigner;
      const at = input.signing === 'old' ? Date.now() - 20 * 60_000 : Date.now();
      const r = await signer.sign(
        {
          method: input.method,
          protocol: 'http:',
          hostname: url.hostname,
          port: Number(url.port),
          path,
          query: { ...(input.query ?? {}) },
          headers:
            input.signing === 'other-body'
              ? { ...headers, 'x-amz-content-sha256': sha(`${body}!`) }
              : headers,
          ...(body === '' ? {} : { body }),
        },
        { signingDate: new Date(at) },
      );
      sent = r.headers as Record<string, string>;
      if (input.signing === 'other-body') sent['x-amz-content-sha256'] = headers['x-amz-content-sha256']!;
      if (input.signing === 'changed-signature')
        sent.authorization = sent.authorization!.replace(
          /Signature=([0-9a-f])/,
          (_m, c: string) => `Signature=${c === '0' ? '1' : '0'}`,
        );
    }
    const { host: _host, ...rest } = sent;
    const query = new URLSearchParams(input.query ?? {}).toString();
    return fetch(`${base}${path}${query === '' ? '' : `?${query}`}`, {
      method: input.method,
      headers: rest,
      ...(input.method === 'GET' || input.method === 'HEAD' ? {} : { body }),
    });
  }

  const terms = (fid: string, body: Json | string, signing: Signing = 'ok'): MarketInput => ({
    method: 'PUT',
    path: `/objects/${fid}/terms`,
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signing,
  });
  const shareOf = (body: Json | string, signing: Signing = 'ok'): MarketInput => ({
    method: 'POST',
    path: `/objects/${MINE}/shares`,
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signing,
  });
  const buy = (
    method: 'GET' | 'POST',
    fid: string,
    query: Record<string, string>,
    headers: Record<string, string> = {},
  ): MarketInput => ({
    method,
    path: method === 'GET' ? `/objects/${fid}` : `/objects/${fid}/purchase`,
    query,
    headers,
    signing: 'ok',
  });
  /** A read of one object's terms or retrievals (they change nothing). */
  const look = (what: 'terms' | 'retrievals', fid: string, signing: Signing = 'ok'): MarketInput => ({
    method: 'GET',
    path: `/objects/${fid}/${what}`,
    signing,
  });
  const validTerms: Json = { readers: [READER], price: '250' };
  const validShare: Json = { reader: READER, readerKey: 'bb'.repeat(32) };

  /** The operations that write to the chain (and spend), each valid as written. */
  const OPERATIONS: { label: string; input: MarketInput }[] = [
    { label: 'set terms', input: terms(MINE, validTerms) },
    { label: 'share', input: shareOf(validShare) },
    { label: 'buy', input: buy('POST', PRICED, { 'max-price': '100', 'wait-ms': '1000' }) },
    { label: 'buy and read', input: buy('GET', PRICED, { 'max-price': '100', 'wait-ms': '1000' }) },
  ];
  const variantOf: Record<Exclude<Signing, 'ok' | 'unsigned-payload'>, Variant> = {
    none: 'unsigned',
    'wrong-secret': 'wrongly-signed',
    'changed-signature': 'wrongly-signed',
    'other-body': 'wrongly-signed',
    old: 'replayed',
  };
  const c = (variant: Variant, label: string, input: MarketInput, mustRefuse = true) =>
    fuzzCase(variant, label, input, mustRefuse);
  const fixed: FuzzCase<MarketInput>[] = [
    ...['xyz', 'AB'.repeat(32), 'ab'.repeat(31), `${'ab'.repeat(32)}0`, '%zz'].flatMap((fid) => [
      c('malformed', `terms of fid ${fid.slice(0, 10)}`, terms(fid, validTerms)),
      c('malformed', `buy of fid ${fid.slice(0, 10)}`, buy('POST', fid, { 'max-price': '100' })),
      c('malformed', `terms read of fid ${fid.slice(0, 10)}`, look('terms', fid)),
      c('malformed', `retrievals of fid ${fid.slice(0, 10)}`, look('retrievals', fid)),
    ]),
    // The reads: unsigned, wrongly signed, replayed, of an object never recorded.
    c('unsigned', 'terms read unsigned', look('terms', MINE, 'none')),
    c('wrongly-signed', 'terms read with another secret', look('terms', PRICED, 'wrong-secret')),
    c('replayed', 'terms read signed 20 minutes ago', look('terms', MINE, 'old')),
    c('out-of-order', 'terms read of an object never recorded', look('terms', NEVER)),
    c('unsigned', 'retrievals unsigned', look('retrievals', MINE, 'none')),
    c('wrongly-signed', 'retrievals with a changed signature', look('retrievals', MINE, 'changed-signature')),
    c('replayed', 'retrievals signed 20 minutes ago', look('retrievals', MINE, 'old')),
    // What no marketplace route takes: the catch-all's NOT_FOUND, for each of its methods (a HEAD judged by its GET).
    ...(['GET', 'HEAD', 'PUT', 'POST', 'DELETE'] as const).map((method) =>
      c('out-of-order', `${method} of a path the marketplace does not have`, {
        method,
        path: `/objects/${MINE}/owner`,
        ...(method === 'GET' || method === 'HEAD' ? {} : { body: '{}' }),
        signing: 'ok',
      }),
    ),
    ...['-1', '01', '1.5', 'abc', '', `1${'0'.repeat(39)}`].map((p) =>
      c('malformed', `buy with max-price ${JSON.stringify(p)}`, buy('POST', PRICED, { 'max-price': p })),
    ),
    ...['0', '-5', 'x', `${10 * 60_000 + 1}`, '1e3'].map((w) =>
      c('malformed', `buy with wait-ms ${w}`, buy('POST', PRICED, { 'max-price': '100', 'wait-ms': w })),
    ),
    ...['bytes=5000-6000', 'bytes=10-5', `bytes=${SIZE}-`].map((r) =>
      c('malformed', `read with range ${r}`, buy('GET', MINE, {}, { range: r })),
    ),
    // A unit other than bytes is ignored, as HTTP says: the whole object is served.
    c(
      'malformed',
      'read with range lines=1-2 (another unit: ignored)',
      buy('GET', MINE, {}, { range: 'lines=1-2' }),
      false,
    ),
    c('malformed', 'terms: not JSON', terms(MINE, '{"price":')),
    c('malformed', 'terms: price as a number', terms(MINE, { readers: [], price: 5 })),
    c('malformed', 'terms: a negative price', terms(MINE, { readers: [], price: '-5' })),
    c('malformed', 'terms: a reader that is no address', terms(MINE, { readers: ['alice'], price: '1' })),
    c('malformed', 'terms: an unknown key', terms(MINE, { ...(validTerms as object), extra: 1 })),
    c('malformed', 'share: a reader that is no address', shareOf({ reader: 'bob' })),
    c(
      'malformed',
      'share: a reader key that is not hex',
      shareOf({ reader: READER, readerKey: 'zz'.repeat(32) }),
    ),
    c('malformed', 'share: no body', shareOf('')),
    c(
      'unsigned',
      'terms: an unsigned payload (UNSIGNED-PAYLOAD)',
      terms(MINE, validTerms, 'unsigned-payload'),
    ),
    c(
      'oversized',
      'terms: a 300 KiB body',
      terms(MINE, { readers: [], price: '1', pad: 'x'.repeat(300 * 1024) }),
    ),
    c(
      'oversized',
      'terms: 10,000 readers',
      terms(MINE, { readers: new Array(10_000).fill(READER), price: '1' }),
    ),
    c('out-of-order', 'terms of an object never recorded', terms(NEVER, validTerms)),
    c('out-of-order', 'buy of an object never recorded', buy('POST', NEVER, { 'max-price': '100' })),
    c('out-of-order', 'read of an object never recorded', buy('GET', NEVER, {})),
    c('out-of-order', 'a route the marketplace does not have', {
      method: 'POST',
      path: '/objects',
      signing: 'ok',
    }),
    c('wrong-caller', "terms of the seller's object", terms(PRICED, validTerms)),
    c('wrong-caller', 'buy under the price', buy('POST', PRICED, { 'max-price': '99' })),
    c('wrong-caller', 'buy without a price (pays nothing)', buy('GET', PRICED, {})),
    c('wrong-caller', 'buy of an object not for sale', buy('POST', NOT_FOR_SALE, { 'max-price': '1000' })),
    c(
      'duplicated',
      'terms: the terms in force again (no change: nothing is written)',
      terms(MINE, { readers: [], price: '7' }),
      false,
    ),
  ];

  return {
    name: 'http:market',
    cases() {
      const badlySigned = fc
        .tuple(
          fc.constantFrom(...OPERATIONS),
          fc.constantFrom(...(Object.keys(variantOf) as (keyof typeof variantOf)[])),
        )
        .map(([{ label, input }, signing]) =>
          fuzzCase<MarketInput>(variantOf[signing], `${label} ${signing}`, { ...input, signing }),
        );
      const mutatedTerms = fc
        .constantFrom<(string | number)[]>(['readers'], ['readers', 0], ['price'])
        .chain((p) =>
          otherType(p[0] === 'price' ? '250' : p.length === 1 ? [] : READER).map((v) => [p, v] as const),
        )
        .map(([p, v]) =>
          fuzzCase<MarketInput>(
            'malformed',
            `terms: ${p.join('.')} = ${JSON.stringify(v).slice(0, 30)}`,
            terms(MINE, withPath(validTerms, p, v)),
            // null is what `price` takes for "not for sale": a valid body then.
            !(p[0] === 'price' && v === null),
          ),
        );
      const noise = fc
        .tuple(
          fc.constantFrom<'GET' | 'PUT' | 'POST'>('GET', 'PUT', 'POST'),
          fc.constantFrom('/objects/', '/'),
          fc.stringMatching(/^[0-9a-f]{0,66}$/),
          fc.constantFrom('', '/terms', '/purchase', '/shares', '/retrievals'),
          fc.string({ maxLength: 40 }),
        )
        .map(([method, prefix, fid, tail, body]) =>
          fuzzCase<MarketInput>(
            'malformed',
            `${method} ${prefix}${fid.slice(0, 8)}…${tail}`,
            { method, path: `${prefix}${fid}${tail}`, ...(method === 'GET' ? {} : { body }), signing: 'ok' },
            false,
          ),
        );
      return fc
        .oneof(
          { weight: 3, arbitrary: badlySigned },
          { weight: 4, arbitrary: fc.constantFrom(...fixed) },
          { weight: 1, arbitrary: mutatedTerms },
          { weight: 1, arbitrary: noise },
        )
        .map((k) => {
          const route = gatewayRoute(k.input.method, `/market${k.input.path}`);
          return route === undefined ? k : { ...k, input: { ...k.input, route } };
        });
    },
    valid: () => terms(MINE, validTerms),
    async setup() {
      uploads = await mkdtemp(join(tmpdir(), 'ailink-fuzz-market-'));
      const twins = s3Twins();
      app = buildS3App({
        storage: twins.storage,
        namespace: twins.namespace,
        uploads: diskUploadStore(join(uploads, 'u'), systemRandom),
        credentials: KEY,
        region: REGION,
        clock: { now: () => Date.now() },
        random: systemRandom,
        log: () => {},
      });
      registerMarket(app, {
        market: {
          async setTerms(fid, t) {
            writes.push(`setTerms ${fid} ${JSON.stringify(t.readers)} ${t.price}`);
            state.apply([
              {
                key: termsKey(fid),
                value: {
                  readers: [...t.readers],
                  price: t.price === null ? null : String(t.price),
                  setAt: 9,
                },
              },
            ]);
            return { block: 9 };
          },
          async requestAccess(fid, o) {
            writes.push(`requestAccess ${fid} ${o?.maxPrice}`);
            return { fid, via: 'grant', block: 7, paid: o?.maxPrice ?? 0n };
          },
          async share(fid, reader) {
            writes.push(`share ${fid} ${reader.address} ${reader.readerKey}`);
            return { fid, readers: [reader.address], price: null, block: 8, keyReleased: true };
          },
          accessLog: async () => [],
        },
        storage: {
          async *get(_fid, options = {}) {
            const r = options.range;
            yield r === undefined ? BYTES : BYTES.subarray(r.start, r.end + 1);
          },
        },
        indexer: {
          get state() {
            return state;
          },
          sync: async () => 0,
        },
        account: { address: ME, readerKey: MY_KEY },
        credentials: KEY,
        region: REGION,
        clock: { now: () => Date.now() },
        random: systemRandom,
        chainDeadlineMs: 5_000,
        log: () => {},
      });
      base = await app.listen({ host: '127.0.0.1', port: 0 });
    },
    async restore() {
      state = indexState();
      writes = [];
    },
    apply: (input) => judgeJsonRequest(send, input, 'error'),
    async digest() {
      const h = createHash('sha256');
      for (const fid of [PRICED, NOT_FOR_SALE, MINE, NEVER])
        h.update(JSON.stringify([state.get(fileKey(fid)) ?? null, state.get(termsKey(fid)) ?? null]));
      h.update(JSON.stringify(writes));
      return h.digest('hex');
    },
    async teardown() {
      await app?.close();
      if (uploads !== '') await rm(uploads, { recursive: true, force: true });
    },
  };
}
