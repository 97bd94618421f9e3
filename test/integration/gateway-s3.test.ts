import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { entriesOf, fileOf } from '../../src/chain/index.ts';
import { createChainNamespace } from '../../src/gateway/namespace.ts';
import { buildS3App } from '../../src/gateway/s3.ts';
import {
  BIN,
  type DevNetwork,
  GatewayInfoSchema,
  openSession,
  type Session,
  sessionOf,
  startDevNetwork,
} from '../../src/node/index.ts';
import { loadKeyFile } from '../../src/shared/account.ts';
import { systemClock, systemRandom } from '../../src/shared/clock.ts';
import { loadNetworkFile } from '../../src/storage/index.ts';
import { awsCli } from '../gateway/awscli.ts';

// The gateway's S3 API driven by the AWS SDK for JavaScript (@aws-sdk/client-s3), as any S3 tool would use it, over a
// real dev network: the chain, 12 miner processes, objects sealed and erasure-coded, buckets and keys on chain.

const REGION = 'ailink-dev';
const credentials = {
  accessKeyId: 'AKIDGATEWAYTEST',
  secretAccessKey: 'c2VjcmV0LWZvci10aGUtZ2F0ZXdheS10ZXN0',
};

describe('S3 API of the gateway, with the AWS SDK, over a dev network', () => {
  let dir: string;
  let network: DevNetwork;
  let session: Session;
  let app: FastifyInstance;
  let s3: S3Client;
  const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
  const md5 = (b: Uint8Array) => createHash('md5').update(b).digest('hex');

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ailink-gateway-it-'));
    network = await startDevNetwork(
      { random: systemRandom },
      { dataDir: dir, miners: 12, profile: 'test', verifier: false },
    );
    const account = await loadKeyFile(network.operatorKeyPath);
    session = await openSession(sessionOf(loadNetworkFile(network.path)), account, 'gateway', {
      clock: systemClock,
      random: systemRandom,
    });
    app = buildS3App({
      storage: session.storage,
      namespace: createChainNamespace(session, { deadlineMs: 60_000 }),
      credentials,
      region: REGION,
      clock: systemClock,
      random: systemRandom,
    });
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    s3 = new S3Client({ endpoint: url, region: REGION, credentials, forcePathStyle: true, maxAttempts: 1 });
  }, 180_000);

  afterAll(async () => {
    s3?.destroy();
    await app?.close();
    await session?.close();
    await network?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  async function s3Failure(run: Promise<unknown>): Promise<{ name: string; status: number | undefined }> {
    const err = await run.then(
      () => {
        throw new Error('expected the gateway to refuse');
      },
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(S3ServiceException);
    const e = err as S3ServiceException;
    return { name: e.name, status: e.$metadata.httpStatusCode };
  }

  it('creates buckets on chain, lists them, and refuses a second of one name', async () => {
    await s3.send(new CreateBucketCommand({ Bucket: 'backups' }));
    await s3.send(new CreateBucketCommand({ Bucket: 'empty-one' }));
    const listed = await s3.send(new ListBucketsCommand({}));
    expect(listed.Buckets?.map((b) => b.Name)).toEqual(['backups', 'empty-one']);
    expect(await s3Failure(s3.send(new CreateBucketCommand({ Bucket: 'backups' })))).toEqual({
      name: 'BucketAlreadyOwnedByYou',
      status: 409,
    });
    await s3.send(new HeadBucketCommand({ Bucket: 'backups' }));
    expect((await s3Failure(s3.send(new HeadBucketCommand({ Bucket: 'nothere' })))).status).toBe(404);
  });

  const big = systemRandom(5 * 1024 * 1024 + 12345); // several segments of the test profile

  it('puts objects with metadata and reads them back byte for byte; the ETag is the MD5; the key is on chain', async () => {
    const put = await s3.send(
      new PutObjectCommand({
        Bucket: 'backups',
        Key: 'db/2026-12-03/dump.sql',
        Body: big,
        ContentType: 'application/sql',
        Metadata: { origin: 'nightly' },
      }),
    );
    expect(put.ETag).toBe(`"${md5(big)}"`);
    const got = await s3.send(new GetObjectCommand({ Bucket: 'backups', Key: 'db/2026-12-03/dump.sql' }));
    const bytes = await got.Body!.transformToByteArray();
    expect(sha(bytes)).toBe(sha(big));
    expect(got).toMatchObject({
      ContentType: 'application/sql',
      ContentLength: big.byteLength,
      Metadata: { origin: 'nightly' },
    });
    await session.indexer.sync();
    const [entry] = entriesOf(session.indexer.state, session.account.address, 'backups', 'db/');
    expect(entry?.key).toBe('db/2026-12-03/dump.sql');
    expect(fileOf(session.indexer.state, entry!.fid)?.state).toBe('Active');
    // Stored sealed: the record on chain carries the encryption, not the bytes' MD5 as its fid.
    expect(fileOf(session.indexer.state, entry!.fid)?.encryption).not.toBeNull();
  });

  it('a ranged read returns 206 with just those bytes; one past the end → 416 InvalidRange', async () => {
    const start = 1024 * 1024 - 3;
    const got = await s3.send(
      new GetObjectCommand({
        Bucket: 'backups',
        Key: 'db/2026-12-03/dump.sql',
        Range: `bytes=${start}-${start + 9}`,
      }),
    );
    expect(got.$metadata.httpStatusCode).toBe(206);
    expect(got.ContentRange).toBe(`bytes ${start}-${start + 9}/${big.byteLength}`);
    expect(Buffer.from(await got.Body!.transformToByteArray())).toEqual(
      Buffer.from(big.subarray(start, start + 10)),
    );
    const past = await s3Failure(
      s3.send(
        new GetObjectCommand({
          Bucket: 'backups',
          Key: 'db/2026-12-03/dump.sql',
          Range: `bytes=${big.byteLength}-`,
        }),
      ),
    );
    expect(past).toEqual({ name: 'InvalidRange', status: 416 });
  });

  it('lists with prefix, delimiter and pages; HEAD tells size and ETag; a missing key → NoSuchKey', async () => {
    for (const key of ['photos/a.jpg', 'photos/b.jpg', 'photos/2025/c.jpg', 'readme.txt']) {
      await s3.send(new PutObjectCommand({ Bucket: 'backups', Key: key, Body: `content of ${key}` }));
    }
    const top = await s3.send(new ListObjectsV2Command({ Bucket: 'backups', Delimiter: '/' }));
    expect(top.Contents?.map((c) => c.Key)).toEqual(['readme.txt']);
    expect(top.CommonPrefixes?.map((p) => p.Prefix)).toEqual(['db/', 'photos/']);
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await s3.send(
        new ListObjectsV2Command({
          Bucket: 'backups',
          Prefix: 'photos/',
          MaxKeys: 2,
          ContinuationToken: token,
        }),
      );
      keys.push(...(page.Contents ?? []).map((c) => c.Key!));
      token = page.NextContinuationToken;
    } while (token !== undefined);
    expect(keys).toEqual(['photos/2025/c.jpg', 'photos/a.jpg', 'photos/b.jpg']);
    const head = await s3.send(new HeadObjectCommand({ Bucket: 'backups', Key: 'readme.txt' }));
    expect(head).toMatchObject({
      ContentLength: 'content of readme.txt'.length,
      ETag: `"${md5(Buffer.from('content of readme.txt'))}"`,
    });
    expect(await s3Failure(s3.send(new GetObjectCommand({ Bucket: 'backups', Key: 'nope' })))).toEqual({
      name: 'NoSuchKey',
      status: 404,
    });
  });

  it('a put over a key replaces the object there and deletes the old one on chain', async () => {
    await s3.send(new PutObjectCommand({ Bucket: 'backups', Key: 'readme.txt', Body: 'version 2' }));
    await session.indexer.sync();
    const entries = entriesOf(session.indexer.state, session.account.address, 'backups', 'readme.txt');
    expect(entries).toHaveLength(1);
    const got = await s3.send(new GetObjectCommand({ Bucket: 'backups', Key: 'readme.txt' }));
    expect(await got.Body!.transformToString()).toBe('version 2');
  });

  it('deletes objects (one, and several at once) as real fileBank deletions; a bucket with keys is not deleted', async () => {
    expect(await s3Failure(s3.send(new DeleteBucketCommand({ Bucket: 'backups' })))).toEqual({
      name: 'BucketNotEmpty',
      status: 409,
    });
    await session.indexer.sync();
    const fid = entriesOf(session.indexer.state, session.account.address, 'backups', 'readme.txt')[0]!.fid;
    await s3.send(new DeleteObjectCommand({ Bucket: 'backups', Key: 'readme.txt' }));
    await session.indexer.sync();
    expect(fileOf(session.indexer.state, fid)).toBeUndefined();
    const result = await s3.send(
      new DeleteObjectsCommand({
        Bucket: 'backups',
        Delete: {
          Objects: ['photos/a.jpg', 'photos/b.jpg', 'photos/2025/c.jpg', 'db/2026-12-03/dump.sql'].map(
            (Key) => ({ Key }),
          ),
        },
      }),
    );
    expect(result.Deleted).toHaveLength(4);
    expect((await s3.send(new ListObjectsV2Command({ Bucket: 'backups' }))).KeyCount).toBe(0);
    await s3.send(new DeleteBucketCommand({ Bucket: 'backups' }));
    expect((await s3.send(new ListBucketsCommand({}))).Buckets?.map((b) => b.Name)).toEqual(['empty-one']);
  });

  it('`ailink gateway` with Debian’s awscli: a second gateway of the account sees the same buckets and objects', async () => {
    const gwDir = join(dir, 'gateway-2');
    const child = spawn(
      process.execPath,
      [BIN, 'gateway', '--network', network.path, '--data-dir', gwDir, '--listen', '127.0.0.1:0'],
      { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] },
    );
    child.channel?.unref();
    try {
      const ready = await new Promise<{ url: string; info: string }>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error('ailink gateway did not report ready within 60 s')),
          60_000,
        );
        createInterface({ input: child.stdout! }).on('line', (line) => {
          clearTimeout(timer);
          resolve(JSON.parse(line));
        });
        child.once('exit', (code) =>
          reject(new Error(`ailink gateway exited with ${code} before it was ready`)),
        );
      });
      const info = GatewayInfoSchema.parse(JSON.parse(readFileSync(ready.info, 'utf8')));
      expect(info.url).toBe(ready.url);
      expect(statSync(ready.info).mode & 0o077).toBe(0); // it holds the secret
      const aws = awsCli(info, join(dir, 'aws-home'));
      const file = join(dir, 'upload.bin');
      const bytes = systemRandom(2 * 1024 * 1024 + 77);
      writeFileSync(file, bytes);
      await aws('s3', 'mb', 's3://shared');
      await aws('s3', 'cp', file, 's3://shared/docs/upload.bin');
      const ls = await aws('s3', 'ls', 's3://shared/docs/');
      expect(ls.stdout).toMatch(new RegExp(`\\s${bytes.byteLength} upload\\.bin`));
      // The first gateway (another data dir, another index) lists what the second stored: the namespace is on chain.
      const other = await s3.send(new ListObjectsV2Command({ Bucket: 'shared' }));
      expect(other.Contents?.map((c) => [c.Key, c.Size])).toEqual([['docs/upload.bin', bytes.byteLength]]);
      const back = join(dir, 'download.bin');
      await aws('s3', 'cp', 's3://shared/docs/upload.bin', back);
      expect(sha(readFileSync(back))).toBe(sha(bytes));
      await aws('s3', 'rm', 's3://shared/docs/upload.bin');
      await aws('s3', 'rb', 's3://shared');
      expect((await s3.send(new ListBucketsCommand({}))).Buckets?.map((b) => b.Name)).not.toContain('shared');
    } finally {
      child.kill('SIGTERM');
    }
  });

  it('a wrong secret → SignatureDoesNotMatch, an unknown key → InvalidAccessKeyId; nothing is stored', async () => {
    const wrong = new S3Client({
      endpoint: (s3.config.endpoint ? await s3.config.endpoint() : undefined) as never,
      region: REGION,
      credentials: { ...credentials, secretAccessKey: 'not-the-secret' },
      forcePathStyle: true,
      maxAttempts: 1,
    });
    const stranger = new S3Client({
      endpoint: (s3.config.endpoint ? await s3.config.endpoint() : undefined) as never,
      region: REGION,
      credentials: { accessKeyId: 'AKIDSTRANGER', secretAccessKey: 'x' },
      forcePathStyle: true,
      maxAttempts: 1,
    });
    try {
      const put = new PutObjectCommand({ Bucket: 'empty-one', Key: 'x', Body: 'x' });
      expect(await s3Failure(wrong.send(put))).toEqual({ name: 'SignatureDoesNotMatch', status: 403 });
      expect(await s3Failure(stranger.send(put))).toEqual({ name: 'InvalidAccessKeyId', status: 403 });
      expect((await s3.send(new ListObjectsV2Command({ Bucket: 'empty-one' }))).KeyCount).toBe(0);
    } finally {
      wrong.destroy();
      stranger.destroy();
    }
  });
});
