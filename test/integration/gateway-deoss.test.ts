import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileOf } from '../../src/chain/index.ts';
import {
  buildS3App,
  createChainNamespace,
  deossMessage,
  diskUploadStore,
  type Namespace,
  registerDeoss,
} from '../../src/gateway/index.ts';
import {
  type DevNetwork,
  GatewayInfoSchema,
  openSession,
  type Session,
  sessionOf,
  startDevNetwork,
  startGatewayNode,
} from '../../src/node/index.ts';
import { type Account, accountFromSeeds, loadKeyFile } from '../../src/shared/account.ts';
import { toHex } from '../../src/shared/bytes.ts';
import { systemClock, systemRandom } from '../../src/shared/clock.ts';
import { loadNetworkFile } from '../../src/storage/index.ts';

// The gateway's DeOSS API over a real dev network (the chain, 12 miner processes), driven over HTTP as a DeOSS client
// would: multipart upload (fetch's own FormData encoding), download, open with a Range, metadata, location, list, a
// resumable upload in 3 chunks across a restart of the gateway app, a replayed message, and a real deletion.

describe('DeOSS API of the gateway over a dev network', () => {
  let dir: string;
  let stateDir: string;
  let network: DevNetwork;
  let session: Session;
  let namespace: Namespace;
  let app: FastifyInstance;
  let base: string;
  let owner: Account;
  const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

  /** A fresh Account/Message/Signature triple: expiring in a minute, a random nonce. */
  const signed = (by: Account = owner) => {
    const message = deossMessage(Date.now() + 60_000, randomBytes(12).toString('base64url'));
    return { account: by.address, message, signature: toHex(by.sign(new TextEncoder().encode(message))) };
  };

  async function startApp(): Promise<void> {
    app = buildS3App({
      storage: session.storage,
      namespace,
      credentials: { accessKeyId: 'AKIDDEOSSTEST000', secretAccessKey: 'not-used-by-these-tests-0000000000' },
      region: 'ailink-dev',
      clock: systemClock,
      random: systemRandom,
      uploads: diskUploadStore(join(stateDir, 's3-uploads'), systemRandom),
    });
    registerDeoss(app, { storage: session.storage, namespace, clock: systemClock, stateDir });
    base = `${await app.listen({ host: '127.0.0.1', port: 0 })}/deoss`;
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ailink-deoss-it-'));
    stateDir = join(dir, 'gateway-state');
    network = await startDevNetwork(
      { random: systemRandom },
      { dataDir: dir, miners: 12, profile: 'test', verifier: false },
    );
    owner = await loadKeyFile(network.operatorKeyPath);
    session = await openSession(sessionOf(loadNetworkFile(network.path)), owner, 'gateway', {
      clock: systemClock,
      random: systemRandom,
    });
    namespace = createChainNamespace(session, { deadlineMs: 60_000 });
    await namespace.createBucket('media');
    await startApp();
  }, 180_000);

  afterAll(async () => {
    await app?.close();
    await session?.close();
    await network?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  const clip = systemRandom(3 * 1024 * 1024 + 4321); // several segments of the test profile
  let fid: string;
  let usedHeaders: Record<string, string>;

  it('uploads a multipart form file into a bucket; S3 sees it under the same key; downloads it byte for byte', async () => {
    const form = new FormData();
    form.append('note', 'ignored');
    form.append('file', new Blob([Buffer.from(clip)], { type: 'video/mp4' }), 'clip.mp4');
    const res = await fetch(`${base}/file`, {
      method: 'PUT',
      headers: { ...signed(), Bucket: 'media' },
      body: form,
    });
    const answer = await res.json();
    expect([res.status, answer.code, answer.msg]).toEqual([200, 200, 'ok']);
    fid = answer.data.fid;
    expect(fid).toMatch(/^[0-9a-f]{64}$/);
    // The S3 API's view: the same key in the same bucket names this object, sealed with the owner's keys.
    expect((await namespace.object('media', 'clip.mp4'))?.fid).toBe(fid);
    expect(fileOf(session.indexer.state, fid)?.encryption).not.toBeNull();
    usedHeaders = signed();
    const got = await fetch(`${base}/file/download/${fid}`, { headers: usedHeaders });
    expect(got.status).toBe(200);
    expect(got.headers.get('content-length')).toBe(String(clip.byteLength));
    expect(sha(new Uint8Array(await got.arrayBuffer()))).toBe(sha(clip));
  });

  it('opens it inline with its type; a Range gives 206 and just those bytes, one past the end 416', async () => {
    const start = 1024 * 1024 - 5;
    const res = await fetch(`${base}/file/open/${fid}`, {
      headers: { ...signed(), Range: `bytes=${start}-${start + 99}` },
    });
    expect(res.status).toBe(206);
    expect(res.headers.get('content-type')).toBe('video/mp4');
    expect(res.headers.get('content-range')).toBe(`bytes ${start}-${start + 99}/${clip.byteLength}`);
    expect(res.headers.get('content-disposition')).toMatch(/^inline/);
    expect(Buffer.from(await res.arrayBuffer()).equals(Buffer.from(clip.subarray(start, start + 100)))).toBe(
      true,
    );
    const past = await fetch(`${base}/file/open/${fid}`, {
      headers: { ...signed(), Range: `bytes=${clip.byteLength}-` },
    });
    expect([past.status, past.headers.get('content-range'), (await past.json()).error]).toEqual([
      416,
      `bytes */${clip.byteLength}`,
      'RANGE_NOT_SATISFIABLE',
    ]);
  });

  it('tells metadata, the miner of each fragment column, and the account’s list (all, and by bucket)', async () => {
    const meta = await (await fetch(`${base}/file/metadata/${fid}`, { headers: signed() })).json();
    expect(meta.data).toEqual({
      fid,
      size: clip.byteLength,
      owner: [{ user: owner.address, file_name: 'clip.mp4' }],
      state: 'Active',
      bucket: 'media',
      key: 'clip.mp4',
      content_type: 'video/mp4',
    });
    const where = await (await fetch(`${base}/file/location/${fid}`, { headers: signed() })).json();
    const file = fileOf(session.indexer.state, fid)!;
    expect(Object.keys(where.data)).toHaveLength(12);
    file.placements.forEach((miner, column) => {
      expect(miner).not.toBeNull();
      expect(where.data[`${column} batch fragments`]).toEqual({
        account: miner,
        location: { longitude: 0, latitude: 0 },
        fragments: file.segments.map((s) => s.fragments[column]),
      });
    });
    // An object outside any bucket is listed too, with no territory.
    const loose = new FormData();
    loose.append('file', new Blob([Buffer.from('just a note')]), 'note.txt');
    const put = await fetch(`${base}/file`, { method: 'PUT', headers: signed(), body: loose });
    const looseFid = (await put.json()).data.fid;
    const all = await (await fetch(`${base}/file/list`, { headers: signed() })).json();
    expect(all.data).toEqual(
      expect.arrayContaining([
        { territory: 'media', fid, size: clip.byteLength, key: 'clip.mp4', file_name: 'clip.mp4' },
        { territory: '', fid: looseFid, size: 11, key: null, file_name: 'note.txt' },
      ]),
    );
    const media = await (
      await fetch(`${base}/file/list`, { headers: { ...signed(), Bucket: 'media' } })
    ).json();
    expect(media.data.map((f: { fid: string }) => f.fid)).toEqual([fid]);
  });

  it('resumes an upload in 3 chunks across a restart of the gateway app; one storage put at the last byte', async () => {
    const video = systemRandom(2 * 1024 * 1024 + 777);
    const cuts = [0, 700_000, 1_500_000, video.byteLength];
    const chunk = (i: number, headers: Record<string, string> = signed()) =>
      fetch(`${base}/resume/${encodeURIComponent('long take.mp4')}`, {
        method: 'PUT',
        headers: {
          ...headers,
          Bucket: 'media',
          'Content-Type': 'video/mp4',
          'Content-Range': `bytes ${cuts[i]}-${cuts[i + 1]! - 1}/${video.byteLength}`,
        },
        body: Buffer.from(video.subarray(cuts[i], cuts[i + 1])),
      });
    const first = await chunk(0);
    expect([first.status, first.headers.get('range')]).toEqual([308, `bytes=0-${cuts[1]! - 1}`]);
    // An overlapping chunk is refused and changes nothing.
    const overlap = await fetch(`${base}/resume/${encodeURIComponent('long take.mp4')}`, {
      method: 'PUT',
      headers: {
        ...signed(),
        Bucket: 'media',
        'Content-Range': `bytes 100-${cuts[1]! + 99}/${video.byteLength}`,
      },
      body: Buffer.from(video.subarray(100, cuts[1]! + 100)),
    });
    expect([overlap.status, (await overlap.json()).error]).toEqual([409, 'UPLOAD_RANGE_MISMATCH']);
    const secondHeaders = signed();
    expect((await chunk(1, secondHeaders)).status).toBe(308);
    expect(await namespace.object('media', 'long take.mp4')).toBeUndefined(); // nothing stored before the last byte

    // The gateway restarts: a new app over the same state dir.
    await app.close();
    await startApp();
    // The message of a request served before the restart is still refused.
    const replayed = await chunk(2, secondHeaders);
    expect([replayed.status, (await replayed.json()).error]).toEqual([409, 'AUTH_REPLAYED']);
    const last = await chunk(2);
    const answer = await last.json();
    expect(last.status).toBe(200);
    const resumed = answer.data.fid as string;
    expect((await namespace.object('media', 'long take.mp4'))?.fid).toBe(resumed);
    expect(readdirSync(join(stateDir, 'resume'))).toEqual([]);
    const back = await fetch(`${base}/file/download/${resumed}`, { headers: signed() });
    expect(sha(new Uint8Array(await back.arrayBuffer()))).toBe(sha(video));
  });

  it('refuses a replayed message, a stranger’s signature and an unsigned request', async () => {
    const replay = await fetch(`${base}/file/download/${fid}`, { headers: usedHeaders });
    expect([replay.status, (await replay.json()).error]).toEqual([409, 'AUTH_REPLAYED']);
    const stranger = accountFromSeeds(systemRandom(32), systemRandom(32));
    const foreign = await fetch(`${base}/file/download/${fid}`, { headers: signed(stranger) });
    expect([foreign.status, (await foreign.json()).error]).toEqual([403, 'AUTH_NOT_AUTHORISED']);
    const unsigned = await fetch(`${base}/file/metadata/${fid}`);
    expect([unsigned.status, (await unsigned.json()).error]).toEqual([401, 'AUTH_MISSING']);
    const deleteReplay = await fetch(`${base}/file/${fid}`, { method: 'DELETE', headers: usedHeaders });
    expect(deleteReplay.status).toBe(409);
    await session.indexer.sync();
    expect(fileOf(session.indexer.state, fid)).toBeDefined();
  });

  it('deletes: a real fileBank deletion; the file is gone from the chain and from the bucket', async () => {
    const res = await fetch(`${base}/file/${fid}`, { method: 'DELETE', headers: signed() });
    const answer = await res.json();
    expect([res.status, answer.data.fid]).toEqual([200, fid]);
    expect(answer.data.block).toBeGreaterThan(0);
    await session.indexer.sync();
    expect(fileOf(session.indexer.state, fid)).toBeUndefined();
    expect(await namespace.object('media', 'clip.mp4')).toBeUndefined();
    const gone = await fetch(`${base}/file/metadata/${fid}`, { headers: signed() });
    expect([gone.status, (await gone.json()).error]).toEqual([404, 'OBJECT_NOT_FOUND']);
  });

  it('`ailink gateway` (startGatewayNode) serves it at gateway.json’s deoss.url, staging in its data dir', async () => {
    const dataDir = join(dir, 'gateway-node');
    const node = await startGatewayNode(
      { clock: systemClock, random: systemRandom },
      {
        session: sessionOf(loadNetworkFile(network.path)),
        account: owner,
        dataDir,
        host: '127.0.0.1',
        port: 0,
      },
    );
    try {
      const info = GatewayInfoSchema.parse(JSON.parse(readFileSync(node.infoPath, 'utf8')));
      expect(info.deoss).toEqual({ url: `${node.url}/deoss`, account: owner.address });
      // The gateway's other APIs on the same port, named for their clients.
      expect([info.market, info.drive]).toEqual([`${node.url}/market`, `${node.url}/_ailink/`]);
      const res = await fetch(`${info.deoss.url}/file/list`, { headers: { ...signed(), Bucket: 'media' } });
      expect(res.status).toBe(200);
      expect((await res.json()).data.map((f: { key: string }) => f.key)).toEqual(['long take.mp4']);
      expect(statSync(join(dataDir, 'deoss', 'resume')).mode & 0o777).toBe(0o700);
    } finally {
      await node.stop();
    }
  });
});
