/**
 * The gateway's marketplace API (/market) over a real dev network (the chain, 12 miner processes) with three
 * organisations, each behind its own real gateway (`startGatewayNode`, which also runs the account's key service):
 * S (the seller: the network's operator account), B (a buyer, which first tries to read without paying) and D (an
 * account S shares with for free). Every request is SigV4-signed with that gateway's own S3 key, as a client would.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ChainClient, connectChain, ROC } from '../../src/chain/index.ts';
import { deossMessage } from '../../src/gateway/index.ts';
import {
  type DevNetwork,
  type GatewayNode,
  openSession,
  sessionOf,
  startDevNetwork,
  startGatewayNode,
} from '../../src/node/index.ts';
import { type Account, createKeyFile, loadKeyFile } from '../../src/shared/account.ts';
import { toHex } from '../../src/shared/bytes.ts';
import { systemClock, systemRandom } from '../../src/shared/clock.ts';
import { loadNetworkFile, TEST_PROFILE } from '../../src/storage/index.ts';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const PRICE = 3n * ROC;

/** A gateway and a fetch that signs each request with its S3 key, as an S3 tool would. */
interface Org {
  account: Account;
  gateway: GatewayNode;
  call(
    method: string,
    path: string,
    options?: { query?: Record<string, string>; body?: unknown; headers?: Record<string, string> },
  ): Promise<Response>;
}

async function orgOf(account: Account, gateway: GatewayNode): Promise<Org> {
  const signer = new SignatureV4({
    credentials: gateway.credentials,
    region: 'ailink',
    service: 's3',
    sha256: Hash.bind(null, 'sha256'),
    uriEscapePath: false,
  });
  const url = new URL(gateway.url);
  return {
    account,
    gateway,
    async call(method, path, options = {}) {
      const body = options.body === undefined ? '' : JSON.stringify(options.body);
      const signed = await signer.sign({
        method,
        protocol: 'http:',
        hostname: url.hostname,
        port: Number(url.port),
        path,
        query: options.query ?? {},
        headers: {
          host: url.host,
          'x-amz-content-sha256': sha(Buffer.from(body)),
          ...(body === '' ? {} : { 'content-type': 'application/json' }),
          ...options.headers,
        },
        ...(body === '' ? {} : { body }),
      });
      const query = new URLSearchParams(options.query ?? {}).toString();
      const { host: _host, ...headers } = signed.headers;
      return fetch(`${gateway.url}${path}${query === '' ? '' : `?${query}`}`, {
        method,
        headers,
        ...(body === '' ? {} : { body }),
      });
    },
  };
}

describe('the marketplace through the gateways of a seller and two readers', () => {
  let dir: string;
  let network: DevNetwork;
  const orgs = {} as Record<'s' | 'b' | 'd', Org>;
  const data = systemRandom(2 * TEST_PROFILE.segmentSize + 4321);
  const other = systemRandom(TEST_PROFILE.segmentSize - 17);
  let fid: string;
  /** A chain client of the test's own, for balances. */
  let chain: ChainClient;
  const balanceOf = (org: Org) => chain.balance(org.account.address);

  /** Stores `bytes` through S's DeOSS API (sealed with S's keys at its gateway) and gives the fid. */
  async function storeAtSeller(bytes: Uint8Array, name: string): Promise<string> {
    const s = orgs.s.account;
    const message = deossMessage(Date.now() + 60_000, randomBytes(12).toString('base64url'));
    const form = new FormData();
    form.append('file', new Blob([Buffer.from(bytes)]), name);
    const res = await fetch(`${orgs.s.gateway.url}/deoss/file`, {
      method: 'PUT',
      headers: { account: s.address, message, signature: toHex(s.sign(new TextEncoder().encode(message))) },
      body: form,
    });
    expect(res.status).toBe(200);
    return (await res.json()).data.fid;
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ailink-gw-market-it-'));
    const b = await createKeyFile(join(dir, 'b.json'), systemRandom);
    const d = await createKeyFile(join(dir, 'd.json'), systemRandom);
    network = await startDevNetwork(
      { random: systemRandom },
      { dataDir: dir, miners: 12, profile: 'test', verifier: false, allow: [b.address, d.address] },
    );
    const seller = await loadKeyFile(network.operatorKeyPath);
    const session = sessionOf(loadNetworkFile(network.path));
    chain = await connectChain(session.chain);
    const start = (account: Account, name: string) =>
      startGatewayNode(
        { clock: systemClock, random: systemRandom },
        { session, account, dataDir: join(dir, `gateway-${name}`), host: '127.0.0.1', port: 0 },
      );
    const [gs, gb, gd] = await Promise.all([start(seller, 's'), start(b, 'b'), start(d, 'd')]);
    orgs.s = await orgOf(seller, gs);
    orgs.b = await orgOf(b, gb);
    orgs.d = await orgOf(d, gd);
    fid = await storeAtSeller(data, 'dataset.bin');
  }, 180_000);

  afterAll(async () => {
    for (const o of Object.values(orgs)) await o.gateway.stop().catch(() => {});
    await chain?.close();
    await network?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('S puts its object on the market through its gateway: 3 ROC a request, nobody free; setting it again changes nothing', async () => {
    const put = await orgs.s.call('PUT', `/market/objects/${fid}/terms`, {
      body: { readers: [], price: PRICE.toString() },
    });
    expect(put.status).toBe(200);
    expect(await put.json()).toMatchObject({ fid, readers: [], price: `${PRICE}`, changed: true });
    const got = await (await orgs.b.call('GET', `/market/objects/${fid}/terms`)).json();
    expect(got).toMatchObject({
      fid,
      owner: orgs.s.account.address,
      terms: { readers: [], price: `${PRICE}` },
    });
    const again = await orgs.s.call('PUT', `/market/objects/${fid}/terms`, {
      body: { readers: [], price: PRICE.toString() },
    });
    expect(await again.json()).toMatchObject({ changed: false });
    // B's gateway cannot set terms of S's object, and nothing unsigned or malformed gets through.
    const notOwner = await orgs.b.call('PUT', `/market/objects/${fid}/terms`, {
      body: { readers: [orgs.b.account.address], price: '0' },
    });
    expect(notOwner.status).toBe(403);
    expect(await notOwner.json()).toMatchObject({ error: 'ACCESS_DENIED', details: { reason: 'not-owner' } });
    const unsigned = await fetch(`${orgs.s.gateway.url}/market/objects/${fid}/terms`);
    expect([unsigned.status, (await unsigned.json()).error]).toEqual([401, 'AUTH_MISSING']);
    const bad = await orgs.s.call('PUT', `/market/objects/${fid}/terms`, { body: { price: '1.5' } });
    expect([bad.status, (await bad.json()).error]).toEqual([400, 'INVALID_INPUT']);
  });

  it('attack: B, unpaid, asks its gateway for the plaintext and for the sealed object, and the miners for its fragments: refused (403) or ciphertext only, nothing paid or recorded', async () => {
    const before = await balanceOf(orgs.b);
    const refused = await orgs.b.call('GET', `/market/objects/${fid}`);
    expect(refused.status).toBe(403);
    const answer = await refused.json();
    expect(answer).toMatchObject({
      error: 'ACCESS_DENIED',
      s3: 'AccessDenied',
      details: { reason: 'price-above-max', price: `${PRICE}` },
    });
    expect(answer.message).toContain(`max-price=${PRICE}`);
    // Less than the price agreed: refused the same way; S3-style XML when asked for.
    const short = await orgs.b.call('GET', `/market/objects/${fid}`, {
      query: { 'max-price': `${PRICE - 1n}` },
      headers: { accept: 'application/xml' },
    });
    expect(short.status).toBe(403);
    expect(await short.text()).toMatch(/<Code>AccessDenied<\/Code>/);
    // Around the marketplace: B's gateway's DeOSS API reads any fid, but cannot open S's sealed object.
    const message = deossMessage(Date.now() + 60_000, randomBytes(12).toString('base64url'));
    const direct = await fetch(`${orgs.b.gateway.url}/deoss/file/download/${fid}`, {
      headers: {
        account: orgs.b.account.address,
        message,
        signature: toHex(orgs.b.account.sign(new TextEncoder().encode(message))),
      },
    });
    expect(direct.status).toBe(403);
    expect((await direct.json()).error).toBe('ACCESS_DENIED');
    // Around the gateways: B's own session fetches the object's data fragments of segment 0 straight from the miners
    // (they serve any account of the network) and gets ciphertext, holding no run of the plaintext.
    const attacker = await openSession(sessionOf(loadNetworkFile(network.path)), orgs.b.account, 'attacker', {
      clock: systemClock,
      random: systemRandom,
    });
    try {
      const { record, miners } = await attacker.storage.info(fid);
      const directory = await attacker.registry.directory();
      const sealed = Buffer.concat(
        await Promise.all(
          [0, 1, 2, 3].map((c) =>
            attacker.miners.get(
              directory.find((p) => p.peerId === miners[c])!,
              record.segments[0]!.fragments[c]!,
            ),
          ),
        ),
      );
      expect(sealed.byteLength).toBeGreaterThanOrEqual(TEST_PROFILE.segmentSize);
      expect(sealed.indexOf(Buffer.from(data.subarray(0, 32)))).toBe(-1);
      expect(sealed.indexOf(Buffer.from(data.subarray(5000, 5032)))).toBe(-1);
      const opened = await attacker.get(fid).catch((err) => err);
      expect(opened).toMatchObject({ code: 'ACCESS_DENIED' });
    } finally {
      await attacker.close();
    }
    // No request went to the chain: no fee, no retrieval, no key.
    expect(await balanceOf(orgs.b)).toBe(before);
    const log = await (await orgs.s.call('GET', `/market/objects/${fid}/retrievals`)).json();
    expect(log.retrievals).toEqual([]);
  });

  it('B buys through its gateway (at most the price): the seller’s gateway releases the key, B gets the exact bytes, a Range too', async () => {
    const before = await balanceOf(orgs.b);
    const res = await orgs.b.call('GET', `/market/objects/${fid}`, {
      query: { 'max-price': `${PRICE}`, 'wait-ms': '60000' },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-ailink-access')).toBe('grant');
    expect(res.headers.get('x-ailink-paid')).toBe(`${PRICE}`);
    expect(res.headers.get('content-length')).toBe(String(data.byteLength));
    expect(sha(new Uint8Array(await res.arrayBuffer()))).toBe(sha(data));
    const spent = before - (await balanceOf(orgs.b));
    expect(spent).toBeGreaterThanOrEqual(PRICE);
    expect(spent - PRICE).toBeLessThan(ROC / 10n); // the price once, plus a fee
    // Reading again (a range across a segment boundary) pays nothing more.
    const start = TEST_PROFILE.segmentSize - 10;
    const part = await orgs.b.call('GET', `/market/objects/${fid}`, {
      query: { 'max-price': `${PRICE}` },
      headers: { range: `bytes=${start}-${start + 99}` },
    });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes ${start}-${start + 99}/${data.byteLength}`);
    expect(Buffer.from(await part.arrayBuffer()).equals(Buffer.from(data.subarray(start, start + 100)))).toBe(
      true,
    );
    const past = await orgs.b.call('GET', `/market/objects/${fid}`, {
      headers: { range: `bytes=${data.byteLength}-` },
    });
    expect([past.status, (await past.json()).error]).toEqual([416, 'RANGE_NOT_SATISFIABLE']);
    expect(before - (await balanceOf(orgs.b))).toBe(spent);
  });

  it('the chain shows the retrieval: S lists it through its gateway, paid and with the key released', async () => {
    const log = await (await orgs.s.call('GET', `/market/objects/${fid}/retrievals`)).json();
    expect(log.retrievals).toEqual([
      expect.objectContaining({
        reader: orgs.b.account.address,
        readerKey: orgs.b.account.readerKey,
        paid: `${PRICE}`,
        keyReleased: true,
      }),
    ]);
  });

  it('S shares with D by address: D reads free through its own gateway (a free request, answered by S’s key service)', async () => {
    const shared = await orgs.s.call('POST', `/market/objects/${fid}/shares`, {
      body: { reader: orgs.d.account.address },
    });
    expect(shared.status).toBe(200);
    expect(await shared.json()).toMatchObject({
      fid,
      readers: [orgs.d.account.address],
      price: `${PRICE}`,
      keyReleased: false,
    });
    const before = await balanceOf(orgs.d);
    const res = await orgs.d.call('GET', `/market/objects/${fid}`, { query: { 'wait-ms': '60000' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-ailink-paid')).toBe('0');
    expect(sha(new Uint8Array(await res.arrayBuffer()))).toBe(sha(data));
    expect(before - (await balanceOf(orgs.d))).toBeLessThan(ROC / 10n); // a fee only
    const log = await (await orgs.s.call('GET', `/market/objects/${fid}/retrievals`)).json();
    expect(log.retrievals.map((r: { reader: string; paid: string }) => [r.reader, r.paid])).toEqual([
      [orgs.b.account.address, `${PRICE}`],
      [orgs.d.account.address, '0'],
    ]);
  });

  it('S shares another object with D’s reader key: the key is released at once, D reads it without asking; B still cannot', async () => {
    const second = await storeAtSeller(other, 'notes.bin');
    const shared = await orgs.s.call('POST', `/market/objects/${second}/shares`, {
      body: { reader: orgs.d.account.address, readerKey: orgs.d.account.readerKey },
    });
    expect(await shared.json()).toMatchObject({
      readers: [orgs.d.account.address],
      price: null,
      keyReleased: true,
    });
    const res = await orgs.d.call('POST', `/market/objects/${second}/purchase`);
    expect(await res.json()).toMatchObject({ fid: second, via: 'grant', paid: '0' });
    const read = await orgs.d.call('GET', `/market/objects/${second}`);
    expect(read.status).toBe(200);
    expect(sha(new Uint8Array(await read.arrayBuffer()))).toBe(sha(other));
    // Not for sale to anyone else, whatever they offer.
    const refused = await orgs.b.call('GET', `/market/objects/${second}`, {
      query: { 'max-price': `${PRICE}` },
    });
    expect(refused.status).toBe(403);
    expect(await refused.json()).toMatchObject({
      error: 'ACCESS_DENIED',
      details: { reason: 'not-for-sale' },
    });
    // A share link: a presigned URL of D's gateway reads it without D's key until it expires (the query is signed).
    const url = new URL(orgs.d.gateway.url);
    const presigner = new SignatureV4({
      credentials: orgs.d.gateway.credentials,
      region: 'ailink',
      service: 's3',
      sha256: Hash.bind(null, 'sha256'),
      uriEscapePath: false,
    });
    const link = async (signingDate: Date) => {
      const p = await presigner.presign(
        {
          method: 'GET',
          protocol: 'http:',
          hostname: url.hostname,
          port: Number(url.port),
          path: `/market/objects/${second}`,
          query: {},
          // As @aws-sdk/s3-request-presigner: UNSIGNED-PAYLOAD, hoisted into the query.
          headers: { host: url.host, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' },
        },
        { expiresIn: 60, signingDate },
      );
      return `${orgs.d.gateway.url}${p.path}?${new URLSearchParams(p.query as Record<string, string>)}`;
    };
    const viaLink = await fetch(await link(new Date()));
    expect(viaLink.status).toBe(200);
    expect(sha(new Uint8Array(await viaLink.arrayBuffer()))).toBe(sha(other));
    const expired = await fetch(await link(new Date(Date.now() - 120_000)));
    expect([expired.status, (await expired.json()).error]).toEqual([401, 'AUTH_EXPIRED']);
    // Sharing the same again is nothing to do.
    const again = await orgs.s.call('POST', `/market/objects/${second}/shares`, {
      body: { reader: orgs.d.account.address, readerKey: orgs.d.account.readerKey },
    });
    expect(await again.json()).toMatchObject({ block: null, keyReleased: true });
  });
});
