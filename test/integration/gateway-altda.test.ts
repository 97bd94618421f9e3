import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { entriesOf, fileOf } from '../../src/chain/index.ts';
import { registerAltDa } from '../../src/gateway/altda.ts';
import { keccak256Hex } from '../../src/gateway/altda-commitment.ts';
import { diskUploadStore } from '../../src/gateway/multipart.ts';
import { createChainNamespace } from '../../src/gateway/namespace.ts';
import { buildS3App } from '../../src/gateway/s3.ts';
import {
  type DevNetwork,
  GatewayInfoSchema,
  type GatewayNode,
  openSession,
  type Session,
  sessionOf,
  startDevNetwork,
  startGatewayNode,
} from '../../src/node/index.ts';
import { loadKeyFile } from '../../src/shared/account.ts';
import { systemClock, systemRandom } from '../../src/shared/clock.ts';
import { loadNetworkFile } from '../../src/storage/index.ts';

// The gateway's Alt-DA DA-server API over a real dev network (the chain, 12 miner processes), driven by a client
// that does what op-node's DA client (Go, optimism/op-alt-da DAClient) does on the wire: the same URLs, headers,
// body handling and status handling. The Go client itself is not run here (no Go toolchain or module network).

/** What DAClient's errors mean to its caller. */
class DaNotFound extends Error {}
class DaInvalidCommitment extends Error {}

/**
 * op-alt-da's DAClient, re-done in TypeScript from its documented behaviour:
 * - GET `<url>/get/0x<hex(commitment)>`, no body; 404 → not found; any other non-200 → error; else the whole body,
 *   checked against a keccak256 commitment when `verify`.
 * - precomputed (keccak) puts: POST `<url>/put/0x<hex>`, `Content-Type: application/octet-stream`, body = data;
 *   anything but 200 → error; the answer's body is not read for a value.
 * - generic puts: POST `<url>/put`, same header; 200 → the body, raw, decoded as `type ‖ bytes` (type 0: 32 bytes,
 *   type 1: non-empty; any other type → invalid commitment).
 * - an empty blob is refused before any request.
 * Requests carry what Go's net/http adds: `User-Agent: Go-http-client/1.1`, `Accept-Encoding: gzip`, and a
 * Content-Length for the bytes.Reader body.
 */
function daClient(url: string, options: { verify: boolean; precompute: boolean; timeoutMs: number }) {
  function send(
    method: 'GET' | 'POST',
    path: string,
    body?: Uint8Array,
  ): Promise<{ status: number; body: Buffer }> {
    const target = new URL(`${url}${path}`);
    const headers: Record<string, string> = {
      'user-agent': 'Go-http-client/1.1',
      'accept-encoding': 'gzip',
    };
    if (body !== undefined) {
      headers['content-type'] = 'application/octet-stream';
      headers['content-length'] = String(body.byteLength);
    }
    return new Promise((resolve, reject) => {
      const req = httpRequest(
        target,
        { method, headers, timeout: options.timeoutMs, agent: false },
        (res) => {
          const parts: Buffer[] = [];
          res.on('data', (c: Buffer) => parts.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts) }));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`timed out after ${options.timeoutMs} ms`)));
      req.on('error', reject);
      req.end(body === undefined ? undefined : Buffer.from(body));
    });
  }
  const hex = (b: Uint8Array) => `0x${Buffer.from(b).toString('hex')}`;
  const decodeCommitment = (b: Buffer): Uint8Array => {
    if (b.byteLength === 0) throw new DaInvalidCommitment('empty');
    if (b[0] === 0 && b.byteLength === 33) return new Uint8Array(b);
    if (b[0] === 1 && b.byteLength > 1) return new Uint8Array(b);
    throw new DaInvalidCommitment(`type ${b[0]}, ${b.byteLength} bytes`);
  };
  return {
    async getInput(commitment: Uint8Array): Promise<Uint8Array> {
      const res = await send('GET', `/get/${hex(commitment)}`);
      if (res.status === 404) throw new DaNotFound('not found');
      if (res.status !== 200) throw new Error(`failed to get preimage: ${res.status}`);
      if (options.verify && commitment[0] === 0) {
        if (keccak256Hex(res.body) !== Buffer.from(commitment.subarray(1)).toString('hex'))
          throw new Error('commitment mismatch');
      }
      return new Uint8Array(res.body);
    },
    async setInput(data: Uint8Array): Promise<Uint8Array> {
      if (data.byteLength === 0) throw new Error('invalid input');
      if (options.precompute) {
        const commitment = new Uint8Array([0, ...Buffer.from(keccak256Hex(data), 'hex')]);
        const res = await send('POST', `/put/${hex(commitment)}`, data);
        if (res.status !== 200) throw new Error(`failed to store preimage: ${res.status}`);
        return commitment;
      }
      const res = await send('POST', '/put', data);
      if (res.status !== 200) throw new Error(`failed to store data: ${res.status}`);
      return decodeCommitment(res.body);
    },
    send,
  };
}

describe('Alt-DA API of the gateway, with an op-alt-da-style client, over a dev network', () => {
  let dir: string;
  let network: DevNetwork;
  let session: Session;
  let app: FastifyInstance;
  let second: GatewayNode;
  let base: string;
  let secondBase: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ailink-altda-it-'));
    network = await startDevNetwork(
      { random: systemRandom },
      { dataDir: dir, miners: 12, profile: 'test', verifier: false },
    );
    const account = await loadKeyFile(network.operatorKeyPath);
    session = await openSession(sessionOf(loadNetworkFile(network.path)), account, 'gateway', {
      clock: systemClock,
      random: systemRandom,
    });
    const namespace = createChainNamespace(session, { deadlineMs: 60_000 });
    // Composed as the gateway composes it: the Alt-DA routes in the S3 app.
    app = buildS3App({
      storage: session.storage,
      namespace,
      credentials: { accessKeyId: 'AKIDALTDATESTKEY', secretAccessKey: 'c2VjcmV0LWZvci10aGUtYWx0ZGEtdGVzdA' },
      region: 'ailink-dev',
      clock: systemClock,
      random: systemRandom,
      uploads: diskUploadStore(join(dir, 'uploads'), systemRandom),
    });
    registerAltDa(app, { storage: session.storage, namespace, indexer: session.indexer });
    base = `${await app.listen({ host: '127.0.0.1', port: 0 })}/altda`;
    // A second gateway of the same account, as `ailink gateway` starts it: its own session and index of the chain.
    second = await startGatewayNode(
      { clock: systemClock, random: systemRandom },
      {
        session: sessionOf(loadNetworkFile(network.path)),
        account,
        dataDir: join(dir, 'gateway-2'),
        host: '127.0.0.1',
        port: 0,
      },
    );
    const info = GatewayInfoSchema.parse(JSON.parse(readFileSync(second.infoPath, 'utf8')));
    expect(info.altda).toBe(`${info.url}/altda`);
    secondBase = info.altda!;
  }, 240_000);

  afterAll(async () => {
    await second?.stop();
    await app?.close();
    await session?.close();
    await network?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  const blob0 = systemRandom(128 * 1024);
  const blob1 = systemRandom(128 * 1024);
  let keccakCommitmentBytes: Uint8Array;
  let genericCommitmentBytes: Uint8Array;

  it('type 0: a 128 KiB blob put by its keccak256 and read back, stored public and filed on chain', async () => {
    const da = daClient(base, { verify: true, precompute: true, timeoutMs: 120_000 });
    keccakCommitmentBytes = await da.setInput(blob0);
    expect(Buffer.from(await da.getInput(keccakCommitmentBytes)).equals(Buffer.from(blob0))).toBe(true);
    await session.indexer.sync();
    const hash = keccak256Hex(blob0);
    const [entry] = entriesOf(session.indexer.state, session.account.address, 'altda', `keccak256/${hash}`);
    expect(entry?.key).toBe(`keccak256/${hash}`);
    const file = fileOf(session.indexer.state, entry!.fid);
    expect(file).toMatchObject({ state: 'Active', encryption: null, size: 128 * 1024 });
  }, 180_000);

  it('type 1: POST /put answers 0x01 ‖ 0x41 ‖ fid (raw), and that commitment reads the blob back', async () => {
    const da = daClient(base, { verify: true, precompute: false, timeoutMs: 120_000 });
    genericCommitmentBytes = await da.setInput(blob1);
    expect(genericCommitmentBytes.byteLength).toBe(34);
    expect([...genericCommitmentBytes.subarray(0, 2)]).toEqual([0x01, 0x41]);
    const fid = Buffer.from(genericCommitmentBytes.subarray(2)).toString('hex');
    await session.indexer.sync();
    expect(fileOf(session.indexer.state, fid)).toMatchObject({ state: 'Active', encryption: null });
    expect(Buffer.from(await da.getInput(genericCommitmentBytes)).equals(Buffer.from(blob1))).toBe(true);
  }, 180_000);

  it('an unknown commitment → 404 (the client’s not-found); a malformed one → 400', async () => {
    const da = daClient(base, { verify: true, precompute: true, timeoutMs: 60_000 });
    const unknown = new Uint8Array([0, ...Buffer.from(keccak256Hex(systemRandom(64)), 'hex')]);
    await expect(da.getInput(unknown)).rejects.toBeInstanceOf(DaNotFound);
    const unknownFid = new Uint8Array([1, 0x41, ...systemRandom(32)]);
    await expect(da.getInput(unknownFid)).rejects.toBeInstanceOf(DaNotFound);
    expect((await da.send('GET', '/get/0x07abcd')).status).toBe(400);
    expect((await da.send('GET', '/get/0x00zz')).status).toBe(400);
  }, 60_000);

  it('a keccak mismatch → 400 with a clear error, and nothing is stored', async () => {
    const da = daClient(base, { verify: true, precompute: true, timeoutMs: 60_000 });
    await session.indexer.sync();
    const before = entriesOf(session.indexer.state, session.account.address, 'altda').length;
    const filesBefore = session.indexer.state.scan('fileBank/files/').length;
    const claimed = `0x00${keccak256Hex(systemRandom(100))}`;
    const res = await da.send('POST', `/put/${claimed}`, systemRandom(128 * 1024));
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body.toString())).toMatchObject({ code: 'INVALID_INPUT' });
    expect(JSON.parse(res.body.toString()).message).toContain('nothing was stored');
    await session.indexer.sync();
    expect(entriesOf(session.indexer.state, session.account.address, 'altda').length).toBe(before);
    expect(session.indexer.state.scan('fileBank/files/').length).toBe(filesBefore);
  }, 60_000);

  it('evidence: the fid, the block it became Active in, its miners and their audit records', async () => {
    const da = daClient(base, { verify: true, precompute: true, timeoutMs: 60_000 });
    const hex = `0x${Buffer.from(keccakCommitmentBytes).toString('hex')}`;
    const res = await da.send('GET', `/evidence/${hex}`);
    expect(res.status).toBe(200);
    const evidence = JSON.parse(res.body.toString());
    await session.indexer.sync();
    const [entry] = entriesOf(session.indexer.state, session.account.address, 'altda', 'keccak256/');
    const file = fileOf(session.indexer.state, evidence.fid)!;
    expect(evidence).toMatchObject({
      commitment: hex,
      owner: session.account.address,
      size: 128 * 1024,
      activeAt: file.activeAt,
      filedAs: expect.stringMatching(/^altda\/keccak256\/[0-9a-f]{64}$/),
    });
    expect(evidence.fid).toBe(
      entriesOf(session.indexer.state, session.account.address, 'altda', evidence.filedAs.slice(6))[0]!.fid,
    );
    expect(entry).toBeDefined();
    expect(typeof evidence.activeAt).toBe('number');
    expect(evidence.columns).toHaveLength(12);
    expect(evidence.columns.map((c: { miner: string }) => c.miner)).toEqual(file.placements);
    const miners = new Set(file.placements);
    expect(evidence.miners.map((m: { miner: string }) => m.miner).sort()).toEqual([...miners].sort());
    for (const m of evidence.miners)
      expect(m).toMatchObject({ passes: expect.any(Number), misses: expect.any(Number) });
    // Type 1 too.
    const generic = await da.send(
      'GET',
      `/evidence/0x${Buffer.from(genericCommitmentBytes).toString('hex')}`,
    );
    expect(generic.status).toBe(200);
    expect(JSON.parse(generic.body.toString()).fid).toBe(
      Buffer.from(genericCommitmentBytes.subarray(2)).toString('hex'),
    );
  }, 60_000);

  it('a second gateway of the account (ailink gateway’s node) serves both blobs by their commitments', async () => {
    const da = daClient(secondBase, { verify: true, precompute: true, timeoutMs: 120_000 });
    expect(Buffer.from(await da.getInput(keccakCommitmentBytes)).equals(Buffer.from(blob0))).toBe(true);
    expect(Buffer.from(await da.getInput(genericCommitmentBytes)).equals(Buffer.from(blob1))).toBe(true);
    // Its put of the same bytes finds the blob already filed: nothing more is stored.
    await session.indexer.sync();
    const files = session.indexer.state.scan('fileBank/files/').length;
    expect(await da.setInput(blob0)).toEqual(keccakCommitmentBytes);
    await session.indexer.sync();
    expect(session.indexer.state.scan('fileBank/files/').length).toBe(files);
  }, 180_000);
});
