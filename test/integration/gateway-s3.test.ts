import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetBucketVersioningCommand,
  GetObjectCommand,
  GetObjectLegalHoldCommand,
  GetObjectLockConfigurationCommand,
  GetObjectRetentionCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  ListPartsCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  PutObjectLegalHoldCommand,
  PutObjectLockConfigurationCommand,
  PutObjectRetentionCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { entriesOf, fileOf } from '../../src/chain/index.ts';
import { diskUploadStore, multipartEtag } from '../../src/gateway/multipart.ts';
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
  let url: string;
  /** The fragments of an object deleted early on: the miners collect them once their grace has passed. */
  let deletedFragments: string[] = [];
  const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
  const md5 = (b: Uint8Array | string) => createHash('md5').update(b).digest('hex');

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ailink-gateway-it-'));
    network = await startDevNetwork(
      { random: systemRandom },
      // Miners collect unplaced fragments 3 minutes after they were stored: thrice the longest upload here.
      { dataDir: dir, miners: 12, profile: 'test', verifier: false, collectGraceMs: 180_000 },
    );
    const account = await loadKeyFile(network.operatorKeyPath);
    session = await openSession(sessionOf(loadNetworkFile(network.path)), account, 'gateway', {
      clock: systemClock,
      random: systemRandom,
    });
    app = buildS3App({
      storage: session.storage,
      namespace: createChainNamespace(session, { deadlineMs: 60_000 }),
      uploads: diskUploadStore(join(dir, 'uploads'), systemRandom),
      domain: 'localhost',
      credentials,
      region: REGION,
      clock: systemClock,
      random: systemRandom,
    });
    url = await app.listen({ host: '127.0.0.1', port: 0 });
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

  it('empty objects (folder markers) are each their own: both keys are filed, and deleting one leaves the other', async () => {
    // Every empty object used to be stored as the same zeros: one fid. The second put found it Active, declared
    // nothing, and answered 200; its key was never filed (a GET of it: NoSuchKey).
    for (const Key of ['markers/a/', 'markers/b/'])
      await s3.send(new PutObjectCommand({ Bucket: 'empty-one', Key, Body: new Uint8Array(0) }));
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: 'empty-one', Prefix: 'markers/' }));
    expect(listed.Contents?.map((c) => c.Key)).toEqual(['markers/a/', 'markers/b/']);
    await s3.send(new DeleteObjectCommand({ Bucket: 'empty-one', Key: 'markers/a/' }));
    const kept = await s3.send(new GetObjectCommand({ Bucket: 'empty-one', Key: 'markers/b/' }));
    expect((await kept.Body!.transformToByteArray()).byteLength).toBe(0);
    await s3.send(new DeleteObjectCommand({ Bucket: 'empty-one', Key: 'markers/b/' }));
  });

  it('deletes objects (one, and several at once) as real fileBank deletions; a bucket with keys is not deleted', async () => {
    expect(await s3Failure(s3.send(new DeleteBucketCommand({ Bucket: 'backups' })))).toEqual({
      name: 'BucketNotEmpty',
      status: 409,
    });
    await session.indexer.sync();
    const fid = entriesOf(session.indexer.state, session.account.address, 'backups', 'readme.txt')[0]!.fid;
    const dump = entriesOf(session.indexer.state, session.account.address, 'backups', 'db/')[0]!.fid;
    deletedFragments = fileOf(session.indexer.state, dump)!.segments.flatMap((seg) => seg.fragments);
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
      // Over the 5 MiB threshold (awscli.ts): awscli uploads it in two parts and downloads it in ranged parts.
      const bytes = systemRandom(5 * 1024 * 1024 + 77);
      writeFileSync(file, bytes);
      await aws('s3', 'mb', 's3://shared');
      await aws('s3', 'cp', file, 's3://shared/docs/upload.bin');
      const ls = await aws('s3', 'ls', 's3://shared/docs/');
      expect(ls.stdout).toMatch(new RegExp(`\\s${bytes.byteLength} upload\\.bin`));
      // The first gateway (another data dir, another index) lists what the second stored: the namespace is on chain.
      const other = await s3.send(new ListObjectsV2Command({ Bucket: 'shared' }));
      expect(other.Contents?.map((c) => [c.Key, c.Size])).toEqual([['docs/upload.bin', bytes.byteLength]]);
      expect(other.Contents?.[0]?.ETag).toMatch(/^"[0-9a-f]{32}-2"$/);
      expect(
        JSON.parse((await aws('s3api', 'list-multipart-uploads', '--bucket', 'shared')).stdout || '{}'),
      ).not.toHaveProperty('Uploads');
      const back = join(dir, 'download.bin');
      await aws('s3', 'cp', 's3://shared/docs/upload.bin', back);
      expect(sha(readFileSync(back))).toBe(sha(bytes));
      await aws('s3', 'rm', 's3://shared/docs/upload.bin');
      await aws('s3', 'rb', 's3://shared');
      expect((await s3.send(new ListBucketsCommand({}))).Buckets?.map((b) => b.Name)).not.toContain('shared');
    } finally {
      child.kill('SIGTERM');
    }
  }, 240_000);

  it('bad keys and a declared 5 TiB body are refused before anything is read or stored', async () => {
    await session.indexer.sync();
    const before = entriesOf(session.indexer.state, session.account.address, 'empty-one', '').length;
    for (const [Key, code] of [
      ['a/../b', 'InvalidArgument'],
      ['nul\u0000byte', 'InvalidArgument'],
      ['k'.repeat(1025), 'KeyTooLongError'],
    ] as const) {
      expect(await s3Failure(s3.send(new PutObjectCommand({ Bucket: 'empty-one', Key, Body: 'x' })))).toEqual(
        {
          name: code,
          status: 400,
        },
      );
    }
    // The client claims 5 TiB and sends a few bytes: the gateway answers from the header alone.
    const huge = await s3Failure(
      s3.send(
        new PutObjectCommand({
          Bucket: 'empty-one',
          Key: 'huge',
          Body: 'tiny',
          ContentLength: 5 * 1024 ** 4,
        }),
      ),
    );
    expect(huge.name).toBe('EntityTooLarge');
    await session.indexer.sync();
    expect(entriesOf(session.indexer.state, session.account.address, 'empty-one', '')).toHaveLength(before);
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

  it('multipart: parts in any order, a part copied from an object, listed, completed in order → one object; S3 ETag', async () => {
    await s3.send(new CreateBucketCommand({ Bucket: 'archive' }));
    const source = systemRandom(300 * 1024);
    await s3.send(
      new PutObjectCommand({
        Bucket: 'archive',
        Key: 'src.bin',
        Body: source,
        ContentType: 'application/x-demo',
        Metadata: { origin: 'src' },
      }),
    );
    const { UploadId } = await s3.send(
      new CreateMultipartUploadCommand({
        Bucket: 'archive',
        Key: 'videos/talk.mp4',
        ContentType: 'video/mp4',
        Metadata: { camera: 'a7' },
      }),
    );
    const upload = { Bucket: 'archive', Key: 'videos/talk.mp4', UploadId };
    const first = systemRandom(5 * 1024 * 1024);
    // The last part first, copied from a range of another object (UploadPartCopy), then the first.
    const copied = await s3.send(
      new UploadPartCopyCommand({
        ...upload,
        PartNumber: 2,
        CopySource: 'archive/src.bin',
        CopySourceRange: 'bytes=100-1099',
      }),
    );
    expect(copied.CopyPartResult?.ETag).toBe(`"${md5(source.subarray(100, 1100))}"`);
    const one = await s3.send(new UploadPartCommand({ ...upload, PartNumber: 1, Body: first }));
    expect(one.ETag).toBe(`"${md5(first)}"`);
    const parts = await s3.send(new ListPartsCommand(upload));
    expect(parts.Parts?.map((p) => [p.PartNumber, p.Size])).toEqual([
      [1, first.byteLength],
      [2, 1000],
    ]);
    const uploads = await s3.send(new ListMultipartUploadsCommand({ Bucket: 'archive' }));
    expect(uploads.Uploads?.map((u) => [u.Key, u.UploadId])).toEqual([['videos/talk.mp4', UploadId]]);
    const listed = [
      { PartNumber: 1, ETag: one.ETag },
      { PartNumber: 2, ETag: copied.CopyPartResult?.ETag },
    ];
    const complete = (Parts: typeof listed) =>
      s3.send(new CompleteMultipartUploadCommand({ ...upload, MultipartUpload: { Parts } }));
    expect((await s3Failure(complete([...listed].reverse()))).name).toBe('InvalidPartOrder');
    expect((await s3Failure(complete([listed[0]!, { PartNumber: 2, ETag: `"${md5('x')}"` }]))).name).toBe(
      'InvalidPart',
    );
    const done = await complete(listed);
    const whole = Buffer.concat([first, source.subarray(100, 1100)]);
    expect(done.ETag).toBe(`"${multipartEtag([md5(first), md5(source.subarray(100, 1100))])}"`);
    const got = await s3.send(new GetObjectCommand({ Bucket: 'archive', Key: 'videos/talk.mp4' }));
    expect(sha(await got.Body!.transformToByteArray())).toBe(sha(whole));
    expect(got).toMatchObject({ ContentType: 'video/mp4', Metadata: { camera: 'a7' }, ETag: done.ETag });
    expect((await s3.send(new ListMultipartUploadsCommand({ Bucket: 'archive' }))).Uploads ?? []).toEqual([]);
    expect((await s3Failure(s3.send(new ListPartsCommand(upload)))).name).toBe('NoSuchUpload');
  });

  it('multipart: a small part that is not the last → EntityTooSmall; an aborted upload is gone', async () => {
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'archive', Key: 'tiny' }));
    const upload = { Bucket: 'archive', Key: 'tiny', UploadId };
    const a = await s3.send(new UploadPartCommand({ ...upload, PartNumber: 1, Body: 'small' }));
    const b = await s3.send(new UploadPartCommand({ ...upload, PartNumber: 2, Body: 'parts' }));
    const refused = await s3Failure(
      s3.send(
        new CompleteMultipartUploadCommand({
          ...upload,
          MultipartUpload: {
            Parts: [
              { PartNumber: 1, ETag: a.ETag },
              { PartNumber: 2, ETag: b.ETag },
            ],
          },
        }),
      ),
    );
    expect(refused).toEqual({ name: 'EntityTooSmall', status: 400 });
    await s3.send(new AbortMultipartUploadCommand(upload));
    expect(
      (await s3Failure(s3.send(new UploadPartCommand({ ...upload, PartNumber: 3, Body: 'x' })))).name,
    ).toBe('NoSuchUpload');
    expect(await s3Failure(s3.send(new HeadObjectCommand({ Bucket: 'archive', Key: 'tiny' })))).toMatchObject(
      {
        status: 404,
      },
    );
  });

  it('CopyObject: bytes and metadata copied, or the metadata replaced; copying onto itself unchanged is refused', async () => {
    const copy = await s3.send(
      new CopyObjectCommand({ Bucket: 'archive', Key: 'copies/src.bin', CopySource: 'archive/src.bin' }),
    );
    const original = await s3.send(new GetObjectCommand({ Bucket: 'archive', Key: 'src.bin' }));
    const copied = await s3.send(new GetObjectCommand({ Bucket: 'archive', Key: 'copies/src.bin' }));
    const bytes = await copied.Body!.transformToByteArray();
    expect(sha(bytes)).toBe(sha(await original.Body!.transformToByteArray()));
    expect(copy.CopyObjectResult?.ETag).toBe(`"${md5(bytes)}"`);
    expect(copied).toMatchObject({ ContentType: 'application/x-demo', Metadata: { origin: 'src' } });
    await s3.send(
      new CopyObjectCommand({
        Bucket: 'archive',
        Key: 'copies/src.bin',
        CopySource: '/archive/copies%2Fsrc.bin',
        MetadataDirective: 'REPLACE',
        ContentType: 'video/webm',
        Metadata: { edited: 'yes' },
      }),
    );
    const replaced = await s3.send(new HeadObjectCommand({ Bucket: 'archive', Key: 'copies/src.bin' }));
    expect(replaced).toMatchObject({ ContentType: 'video/webm', Metadata: { edited: 'yes' } });
    expect(
      (
        await s3Failure(
          s3.send(
            new CopyObjectCommand({ Bucket: 'archive', Key: 'src.bin', CopySource: 'archive/src.bin' }),
          ),
        )
      ).name,
    ).toBe('InvalidRequest');
    expect(
      (
        await s3Failure(
          s3.send(new CopyObjectCommand({ Bucket: 'archive', Key: 'x', CopySource: 'archive/missing' })),
        )
      ).name,
    ).toBe('NoSuchKey');
  });

  it('object lock: a COMPLIANCE version is neither deleted, lost under a new write nor shortened before its date; GOVERNANCE yields to a bypass', async () => {
    await s3.send(new CreateBucketCommand({ Bucket: 'vault', ObjectLockEnabledForBucket: true }));
    expect(
      (await s3.send(new GetObjectLockConfigurationCommand({ Bucket: 'vault' }))).ObjectLockConfiguration,
    ).toMatchObject({ ObjectLockEnabled: 'Enabled' });
    expect(
      (await s3Failure(s3.send(new GetObjectLockConfigurationCommand({ Bucket: 'archive' })))).status,
    ).toBe(404);
    const until = new Date(Date.now() + 3_600_000);
    until.setMilliseconds(0);
    await s3.send(
      new PutObjectCommand({
        Bucket: 'vault',
        Key: 'ledger/2026.csv',
        Body: 'account,amount\n',
        ObjectLockMode: 'COMPLIANCE',
        ObjectLockRetainUntilDate: until,
      }),
    );
    const head = await s3.send(new HeadObjectCommand({ Bucket: 'vault', Key: 'ledger/2026.csv' }));
    expect(head).toMatchObject({ ObjectLockMode: 'COMPLIANCE', ObjectLockRetainUntilDate: until });
    // An object-lock bucket is versioned (S3's rule): what it keeps is a version, named by its id.
    expect((await s3.send(new GetBucketVersioningCommand({ Bucket: 'vault' }))).Status).toBe('Enabled');
    const ledger = { Bucket: 'vault', Key: 'ledger/2026.csv', VersionId: head.VersionId! };
    expect(ledger.VersionId).toMatch(/^[0-9a-f]{64}$/);
    expect((await s3.send(new GetObjectRetentionCommand(ledger))).Retention).toEqual({
      Mode: 'COMPLIANCE',
      RetainUntilDate: until,
    });
    // The attacks: delete the version (even claiming a bypass), write over the key, shorten its retention.
    expect(
      await s3Failure(s3.send(new DeleteObjectCommand({ ...ledger, BypassGovernanceRetention: true }))),
    ).toEqual({
      name: 'AccessDenied',
      status: 403,
    });
    await s3.send(new PutObjectCommand({ Bucket: 'vault', Key: ledger.Key, Body: 'rewritten' }));
    // A delete without a version only lays a marker over the key: the retained version stays.
    const marked = await s3.send(new DeleteObjectCommand({ Bucket: 'vault', Key: ledger.Key }));
    expect(marked.DeleteMarker).toBe(true);
    const shorter = new Date(until.getTime() - 60_000);
    expect(
      (
        await s3Failure(
          s3.send(
            new PutObjectRetentionCommand({
              ...ledger,
              Retention: { Mode: 'COMPLIANCE', RetainUntilDate: shorter },
            }),
          ),
        )
      ).name,
    ).toBe('AccessDenied');
    const got = await s3.send(new GetObjectCommand(ledger));
    expect(await got.Body!.transformToString()).toBe('account,amount\n');
    expect(
      (await s3Failure(s3.send(new GetObjectCommand({ Bucket: 'vault', Key: ledger.Key })))).status,
    ).toBe(404);
    // Retention only where the bucket has object lock, and refused before the body is read.
    expect(
      (
        await s3Failure(
          s3.send(
            new PutObjectCommand({
              Bucket: 'archive',
              Key: 'nolock',
              Body: 'x',
              ObjectLockMode: 'COMPLIANCE',
              ObjectLockRetainUntilDate: until,
            }),
          ),
        )
      ).name,
    ).toBe('InvalidRequest');
    // GOVERNANCE: the owner may delete before the date, saying so.
    const put = await s3.send(
      new PutObjectCommand({
        Bucket: 'vault',
        Key: 'draft.txt',
        Body: 'draft',
        ObjectLockMode: 'GOVERNANCE',
        ObjectLockRetainUntilDate: until,
      }),
    );
    const draft = { Bucket: 'vault', Key: 'draft.txt', VersionId: put.VersionId! };
    expect((await s3Failure(s3.send(new DeleteObjectCommand(draft)))).name).toBe('AccessDenied');
    await s3.send(new DeleteObjectCommand({ ...draft, BypassGovernanceRetention: true }));
    expect(
      (await s3Failure(s3.send(new HeadObjectCommand({ Bucket: 'vault', Key: 'draft.txt' })))).status,
    ).toBe(404);
    // A bucket default: what is written without a retention of its own gets one, by the chain's rule.
    await s3.send(
      new PutObjectLockConfigurationCommand({
        Bucket: 'vault',
        ObjectLockConfiguration: {
          ObjectLockEnabled: 'Enabled',
          Rule: { DefaultRetention: { Mode: 'GOVERNANCE', Days: 1 } },
        },
      }),
    );
    expect(
      (await s3.send(new GetObjectLockConfigurationCommand({ Bucket: 'vault' }))).ObjectLockConfiguration
        ?.Rule,
    ).toEqual({ DefaultRetention: { Mode: 'GOVERNANCE', Days: 1 } });
    await s3.send(new PutObjectCommand({ Bucket: 'vault', Key: 'auto.txt', Body: 'kept a day' }));
    const auto = await s3.send(new HeadObjectCommand({ Bucket: 'vault', Key: 'auto.txt' }));
    expect(auto.ObjectLockMode).toBe('GOVERNANCE');
    // A day from its declaration, in the chain's time (LastModified; a dev chain's clock runs ahead of the wall's).
    const declared = auto.LastModified!.getTime();
    expect(Math.abs(auto.ObjectLockRetainUntilDate!.getTime() - (declared + 86_400_000))).toBeLessThan(2000);
  });

  it('legal hold: while ON nobody deletes the version, whatever its retention; OFF, it goes', async () => {
    const put = await s3.send(
      new PutObjectCommand({
        Bucket: 'vault',
        Key: 'evidence.eml',
        Body: 'x',
        ObjectLockLegalHoldStatus: 'ON',
      }),
    );
    const evidence = { Bucket: 'vault', Key: 'evidence.eml', VersionId: put.VersionId! };
    expect((await s3.send(new HeadObjectCommand(evidence))).ObjectLockLegalHoldStatus).toBe('ON');
    expect((await s3.send(new GetObjectLegalHoldCommand(evidence))).LegalHold?.Status).toBe('ON');
    expect(
      await s3Failure(s3.send(new DeleteObjectCommand({ ...evidence, BypassGovernanceRetention: true }))),
    ).toEqual({ name: 'AccessDenied', status: 403 });
    await s3.send(new PutObjectLegalHoldCommand({ ...evidence, LegalHold: { Status: 'OFF' } }));
    // The bucket's default GOVERNANCE retention (set above) still applies: the owner bypasses it, saying so.
    await s3.send(new DeleteObjectCommand({ ...evidence, BypassGovernanceRetention: true }));
    expect((await s3Failure(s3.send(new GetObjectCommand(evidence)))).name).toBe('NoSuchVersion');
    // Only where the bucket has object lock.
    expect(
      (
        await s3Failure(
          s3.send(
            new PutObjectCommand({
              Bucket: 'archive',
              Key: 'held',
              Body: 'x',
              ObjectLockLegalHoldStatus: 'ON',
            }),
          ),
        )
      ).name,
    ).toBe('InvalidRequest');
  });

  it('versioning: every write kept as a version, a delete leaves a marker; versions listed, read, copied and deleted by id', async () => {
    const bucket = { Bucket: 'history' };
    await s3.send(new CreateBucketCommand(bucket));
    expect((await s3.send(new GetBucketVersioningCommand(bucket))).Status).toBeUndefined();
    const v0 = await s3.send(new PutObjectCommand({ ...bucket, Key: 'notes.txt', Body: 'v0' }));
    expect(v0.VersionId).toBeUndefined();
    await s3.send(
      new PutBucketVersioningCommand({ ...bucket, VersioningConfiguration: { Status: 'Enabled' } }),
    );
    expect((await s3.send(new GetBucketVersioningCommand(bucket))).Status).toBe('Enabled');
    const v1 = (await s3.send(new PutObjectCommand({ ...bucket, Key: 'notes.txt', Body: 'v1' }))).VersionId!;
    const v2 = (await s3.send(new PutObjectCommand({ ...bucket, Key: 'notes.txt', Body: 'v2' }))).VersionId!;
    expect(new Set([v1, v2]).size).toBe(2);
    const read = async (VersionId?: string) =>
      (
        await s3.send(new GetObjectCommand({ ...bucket, Key: 'notes.txt', VersionId }))
      ).Body!.transformToString();
    expect([await read(), await read(v1), await read('null')]).toEqual(['v2', 'v1', 'v0']);
    const listed = await s3.send(new ListObjectVersionsCommand(bucket));
    expect(listed.Versions?.map((v) => [v.VersionId, v.IsLatest, v.Size])).toEqual([
      [v2, true, 2],
      [v1, false, 2],
      ['null', false, 2],
    ]);

    // A delete without a version: a marker hides the key; its versions stay and are read by id.
    const marker = await s3.send(new DeleteObjectCommand({ ...bucket, Key: 'notes.txt' }));
    expect(marker.DeleteMarker).toBe(true);
    expect((await s3Failure(s3.send(new GetObjectCommand({ ...bucket, Key: 'notes.txt' })))).name).toBe(
      'NoSuchKey',
    );
    expect((await s3.send(new ListObjectsV2Command(bucket))).KeyCount).toBe(0);
    expect(await read(v1)).toBe('v1');
    const markers = (await s3.send(new ListObjectVersionsCommand(bucket))).DeleteMarkers;
    expect(markers?.map((m) => [m.VersionId, m.IsLatest])).toEqual([[marker.VersionId, true]]);
    expect(
      (
        await s3Failure(
          s3.send(new GetObjectCommand({ ...bucket, Key: 'notes.txt', VersionId: marker.VersionId })),
        )
      ).status,
    ).toBe(405);
    // Removing the marker brings the newest version back.
    await s3.send(new DeleteObjectCommand({ ...bucket, Key: 'notes.txt', VersionId: marker.VersionId }));
    expect(await read()).toBe('v2');

    // A copy of an older version, answered with the copy's own version id; then versions deleted by id are real
    // fileBank deletions.
    const restored = await s3.send(
      new CopyObjectCommand({
        ...bucket,
        Key: 'restored.txt',
        CopySource: `history/notes.txt?versionId=${v1}`,
      }),
    );
    expect(restored.CopySourceVersionId).toBe(v1);
    const readBack = await s3.send(new GetObjectCommand({ ...bucket, Key: 'restored.txt' }));
    expect(readBack.VersionId).toMatch(/^[0-9a-f]{64}$/);
    expect(restored.VersionId).toBe(readBack.VersionId);
    expect(await readBack.Body!.transformToString()).toBe('v1');
    // A copy source names a key and at most its version: anything else in its query is refused.
    expect(
      (
        await s3Failure(
          s3.send(
            new CopyObjectCommand({
              ...bucket,
              Key: 'x',
              CopySource: `history/notes.txt?versionId=${v1}&acl=1`,
            }),
          ),
        )
      ).name,
    ).toBe('InvalidArgument');
    const deleted = await s3.send(
      new DeleteObjectsCommand({
        ...bucket,
        Delete: {
          Objects: [
            { Key: 'notes.txt', VersionId: v1 },
            { Key: 'notes.txt', VersionId: 'null' },
          ],
        },
      }),
    );
    expect(deleted.Deleted?.map((d) => d.VersionId)).toEqual([v1, 'null']);
    await session.indexer.sync();
    expect(fileOf(session.indexer.state, v1)).toBeUndefined();
    expect(
      (await s3.send(new ListObjectVersionsCommand({ ...bucket, Prefix: 'notes' }))).Versions?.map(
        (v) => v.VersionId,
      ),
    ).toEqual([v2]);

    // Suspended: a write replaces the key's "null" version only.
    await s3.send(
      new PutBucketVersioningCommand({ ...bucket, VersioningConfiguration: { Status: 'Suspended' } }),
    );
    expect((await s3.send(new PutObjectCommand({ ...bucket, Key: 'notes.txt', Body: 's1' }))).VersionId).toBe(
      'null',
    );
    await s3.send(new PutObjectCommand({ ...bucket, Key: 'notes.txt', Body: 's2' }));
    expect([await read(), await read('null'), await read(v2)]).toEqual(['s2', 's2', 'v2']);

    // Debian's awscli reads the same listing; the bucket goes only once every version has.
    const aws = awsCli(
      {
        url,
        altda: url,
        s3: { ...credentials, region: REGION },
        deoss: { url, account: session.account.address },
      },
      join(dir, 'aws-versions'),
    );
    const cli = JSON.parse(
      (await aws('s3api', 'list-object-versions', '--bucket', 'history', '--output', 'json')).stdout,
    );
    expect(cli.Versions.map((v: { Key: string; VersionId: string }) => `${v.Key} ${v.VersionId}`)).toEqual([
      'notes.txt null',
      `notes.txt ${v2}`,
      expect.stringMatching(/^restored\.txt [0-9a-f]{64}$/),
    ]);
    expect((await s3Failure(s3.send(new DeleteBucketCommand(bucket)))).name).toBe('BucketNotEmpty');
    for (const v of cli.Versions as { Key: string; VersionId: string }[])
      await s3.send(new DeleteObjectCommand({ ...bucket, Key: v.Key, VersionId: v.VersionId }));
    await s3.send(new DeleteBucketCommand(bucket));
  });

  it('an object of more segments than one remark declares (201 × 64 KiB) is declared over several remarks of one extrinsic', async () => {
    // Over the 120 segments one 128 KiB remark names (the old limit, 3.75 GiB in production): DeOSS#189's large uploads.
    const bytes = systemRandom(200 * 64 * 1024 + 5);
    await s3.send(new PutObjectCommand({ Bucket: 'archive', Key: 'large/image.bin', Body: bytes }));
    await session.indexer.sync();
    const [entry] = entriesOf(session.indexer.state, session.account.address, 'archive', 'large/image.bin');
    const file = fileOf(session.indexer.state, entry!.fid)!;
    expect(file.state).toBe('Active');
    expect(file.segments).toHaveLength(201);
    const calls = session.indexer
      .calls({ fromBlock: file.declaredAt })
      .filter(
        (c) => c.block === file.declaredAt && c.outcome === 'applied' && c.call?.startsWith('fileBank.'),
      );
    expect(calls.map((c) => c.call)).toEqual(
      expect.arrayContaining([
        'fileBank.uploadDeclaration',
        'fileBank.declareSegments',
        'fileBank.transferReport',
      ]),
    );
    expect(new Set(calls.map((c) => c.extrinsic)).size).toBe(1);
    const got = await s3.send(new GetObjectCommand({ Bucket: 'archive', Key: 'large/image.bin' }));
    expect(sha(await got.Body!.transformToByteArray())).toBe(sha(bytes));
  });

  it('virtual-host addressing: <bucket>.localhost reaches the same bucket as the path', async () => {
    const port = new URL(url).port;
    const virtual = new S3Client({
      endpoint: `http://localhost:${port}`,
      region: REGION,
      credentials,
      forcePathStyle: false,
      maxAttempts: 1,
    });
    // The client addresses archive.localhost, which resolves nowhere here: once the request is signed (for that Host),
    // it is sent to the loopback, Host header unchanged.
    const toLoopback =
      (next: (args: { request: unknown }) => Promise<unknown>) => (args: { request: unknown }) => {
        const request = args.request as { hostname: string; headers: Record<string, string> };
        expect(request.headers.host).toBe(`archive.localhost:${port}`);
        request.hostname = '127.0.0.1';
        return next(args);
      };
    virtual.middlewareStack.addRelativeTo(
      toLoopback as unknown as Parameters<typeof virtual.middlewareStack.addRelativeTo>[0],
      { relation: 'after', toMiddleware: 'httpSigningMiddleware', name: 'toLoopback' },
    );
    try {
      await virtual
        .send(new PutObjectCommand({ Bucket: 'archive', Key: 'notes/v.txt', Body: 'by host' }))
        .catch((e: Error) => {
          throw new Error(`virtual-host put: ${e.stack}`);
        });
      const got = await s3.send(new GetObjectCommand({ Bucket: 'archive', Key: 'notes/v.txt' }));
      expect(await got.Body!.transformToString()).toBe('by host');
      const listed = await virtual.send(new ListObjectsV2Command({ Bucket: 'archive', Prefix: 'notes/' }));
      expect(listed.Contents?.map((c) => c.Key)).toEqual(['notes/v.txt']);
    } finally {
      virtual.destroy();
    }
  });

  it('metadata the chain would refuse is refused before the body is read: nothing is uploaded or declared', async () => {
    await session.indexer.sync();
    const before = entriesOf(session.indexer.state, session.account.address, 'archive', '').length;
    const refused = await s3Failure(
      s3.send(
        new PutObjectCommand({
          Bucket: 'archive',
          Key: 'too-much-metadata',
          Body: systemRandom(2 * 1024 * 1024),
          Metadata: { big: 'x'.repeat(3000) },
        }),
      ),
    );
    expect(refused).toEqual({ name: 'InvalidArgument', status: 400 });
    await session.indexer.sync();
    expect(entriesOf(session.indexer.state, session.account.address, 'archive', '')).toHaveLength(before);
    expect((await s3Failure(s3.send(new CreateBucketCommand({ Bucket: 'altda' })))).name).toBe(
      'InvalidBucketName',
    );
  });

  it("a deleted object's fragments leave every miner's disk once the grace has passed", async () => {
    await session.indexer.sync();
    // A fragment some live object also has (the all-zero one, say) stays, rightly.
    const live = new Set<string>();
    for (const [, value] of session.indexer.state.scan('fileBank/files/')) {
      for (const seg of (value as { segments: { fragments: string[] }[] }).segments) {
        for (const h of seg.fragments) live.add(h);
      }
    }
    const gone = deletedFragments.filter((h) => !live.has(h));
    expect(gone.length).toBeGreaterThan(80);
    const held = () =>
      gone.filter((h) =>
        network.miners.some((m) => existsSync(join(m.dataDir, 'fragments', h.slice(0, 2), h))),
      ).length;
    // The upload was minutes ago; a sweep runs every 18 s here.
    const deadline = Date.now() + 240_000;
    while (held() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2000));
    expect(held()).toBe(0);
  }, 300_000);

  it('with 8 of 12 miners gone a GET still returns the bytes (any 4 columns rebuild them); a PUT fails cleanly, storing nothing', async () => {
    const expected = await (
      await s3.send(new GetObjectCommand({ Bucket: 'archive', Key: 'videos/talk.mp4' }))
    ).Body!.transformToByteArray();
    for (const miner of network.miners.slice(0, 8)) miner.signal('SIGKILL');
    const got = await s3.send(new GetObjectCommand({ Bucket: 'archive', Key: 'videos/talk.mp4' }));
    expect(sha(await got.Body!.transformToByteArray())).toBe(sha(expected));
    await session.indexer.sync();
    const before = entriesOf(session.indexer.state, session.account.address, 'archive', '').length;
    // Only 4 miners left for 12 columns: the gateway says so (503), and no key names a half-stored object.
    expect(
      (await s3Failure(s3.send(new PutObjectCommand({ Bucket: 'archive', Key: 'late.bin', Body: 'late' }))))
        .status,
    ).toBe(503);
    await session.indexer.sync();
    expect(entriesOf(session.indexer.state, session.account.address, 'archive', '')).toHaveLength(before);
  }, 240_000);
});
