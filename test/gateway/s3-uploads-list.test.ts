import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CreateMultipartUploadCommand,
  ListMultipartUploadsCommand,
  type ListMultipartUploadsCommandInput,
  S3Client,
} from '@aws-sdk/client-s3';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { diskUploadStore } from '../../src/gateway/multipart.ts';
import { buildS3App } from '../../src/gateway/s3.ts';
import { systemRandom } from '../../src/shared/clock.ts';
import { s3Twins } from './s3-twins.ts';

// ListMultipartUploads as an S3 SDK pages it: prefix, delimiter (keys rolled up into common prefixes), key-marker and
// upload-id-marker, max-uploads. The app runs over in-memory twins of the network and a real staging dir on disk.

const CREDENTIALS = {
  accessKeyId: 'AKIDAILINKGATEWAY',
  secretAccessKey: 'aWxpbmsgc2VjcmV0IGZvciB0ZXN0cyBvbmx5IQ',
};
const REGION = 'ailink-1';
const KEYS = ['a.bin', 'photos/1.jpg', 'photos/2.jpg', 'photos/2.jpg', 'videos/x/1.mp4', 'z.bin'];

describe('S3 ListMultipartUploads', () => {
  let dir: string;
  let app: FastifyInstance;
  let s3: S3Client;
  /** Upload ids of `photos/2.jpg`, ascending (the order a listing gives a key's uploads). */
  let twoIds: string[];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ailink-uploads-list-'));
    const twins = s3Twins();
    await twins.namespace.createBucket('box');
    app = buildS3App({
      storage: twins.storage,
      namespace: twins.namespace,
      uploads: diskUploadStore(dir, systemRandom),
      credentials: CREDENTIALS,
      region: REGION,
      clock: { now: () => Date.now() },
      random: systemRandom,
    });
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    s3 = new S3Client({ endpoint: url, region: REGION, credentials: CREDENTIALS, forcePathStyle: true });
    const ids: string[] = [];
    for (const Key of KEYS)
      ids.push((await s3.send(new CreateMultipartUploadCommand({ Bucket: 'box', Key }))).UploadId!);
    twoIds = ids.filter((_, i) => KEYS[i] === 'photos/2.jpg').sort();
  });
  afterAll(async () => {
    s3?.destroy();
    await app?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const list = async (input: Omit<ListMultipartUploadsCommandInput, 'Bucket'>) => {
    const out = await s3.send(new ListMultipartUploadsCommand({ Bucket: 'box', ...input }));
    return {
      keys: (out.Uploads ?? []).map((u) => u.Key),
      prefixes: (out.CommonPrefixes ?? []).map((p) => p.Prefix),
      truncated: out.IsTruncated,
      next: [out.NextKeyMarker, out.NextUploadIdMarker],
    };
  };

  it('without a delimiter: every upload, keys in order, a key’s uploads by id', async () => {
    const all = await s3.send(new ListMultipartUploadsCommand({ Bucket: 'box' }));
    expect(all.Uploads?.map((u) => u.Key)).toEqual([...KEYS].sort());
    expect(all.Uploads?.filter((u) => u.Key === 'photos/2.jpg').map((u) => u.UploadId)).toEqual(twoIds);
  });

  it('a delimiter rolls keys up into common prefixes; with a prefix, one level down', async () => {
    expect(await list({ Delimiter: '/' })).toMatchObject({
      keys: ['a.bin', 'z.bin'],
      prefixes: ['photos/', 'videos/'],
      truncated: false,
    });
    expect(await list({ Delimiter: '/', Prefix: 'videos/' })).toMatchObject({
      keys: [],
      prefixes: ['videos/x/'],
    });
    expect(await list({ Delimiter: '/', Prefix: 'photos/' })).toMatchObject({
      keys: ['photos/1.jpg', 'photos/2.jpg', 'photos/2.jpg'],
      prefixes: [],
    });
  });

  it('pages of max-uploads: a common prefix counts once, and the next page starts past it', async () => {
    const first = await list({ Delimiter: '/', MaxUploads: 2 });
    expect(first).toEqual({
      keys: ['a.bin'],
      prefixes: ['photos/'],
      truncated: true,
      next: ['photos/', undefined],
    });
    const second = await list({ Delimiter: '/', MaxUploads: 2, KeyMarker: 'photos/' });
    expect(second).toMatchObject({ keys: ['z.bin'], prefixes: ['videos/'], truncated: false });
  });

  it('a page can end inside a key’s uploads: upload-id-marker resumes after that upload', async () => {
    const first = await list({ Prefix: 'photos/', MaxUploads: 2 });
    expect(first).toEqual({
      keys: ['photos/1.jpg', 'photos/2.jpg'],
      prefixes: [],
      truncated: true,
      next: ['photos/2.jpg', twoIds[0]],
    });
    const second = await list({ Prefix: 'photos/', KeyMarker: 'photos/2.jpg', UploadIdMarker: twoIds[0]! });
    expect(second).toMatchObject({ keys: ['photos/2.jpg'], truncated: false });
    // key-marker alone: past all of that key's uploads.
    expect((await list({ Prefix: 'photos/', KeyMarker: 'photos/2.jpg' })).keys).toEqual([]);
  });
});
