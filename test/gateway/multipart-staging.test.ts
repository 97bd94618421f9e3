import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  ListPartsCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { parseByteCount } from '../../src/cli/byte-count.ts';
import { diskUploadStore, type UploadStore, type UploadStoreOptions } from '../../src/gateway/multipart.ts';
import { buildS3App } from '../../src/gateway/s3.ts';
import type { GatewayInfo } from '../../src/node/index.ts';
import { manualClock, systemRandom } from '../../src/shared/clock.ts';
import { AilinkError } from '../../src/shared/errors.ts';
import { AWS_CLI, awsCli } from './awscli.ts';
import { s3Twins } from './s3-twins.ts';

// Multipart staging is bounded (issue 16): the parts of all open uploads together stay within the gateway's limit
// (QuotaExceeded before anything is written), aborting or completing gives the space back, uploads untouched for the
// expiry time are aborted, and a restarted gateway counts what is on its disk. The S3 app runs over in-memory twins
// of the network and a real staging dir; the refusal is seen through @aws-sdk/client-s3.

const CREDENTIALS = {
  accessKeyId: 'AKIDAILINKGATEWAY',
  secretAccessKey: 'aWxpbmsgc2VjcmV0IGZvciB0ZXN0cyBvbmx5IQ',
};
const REGION = 'ailink-1';
const KiB = 1024;
const DAY = 24 * 3600 * 1000;

const md5 = (b: Uint8Array | string) => createHash('md5').update(b).digest('hex');
async function* pieces(...parts: Uint8Array[]) {
  for (const p of parts) yield p;
}
const bytesOf = (n: number, fill = 0x61) => new Uint8Array(n).fill(fill);

/** The bytes of every part file under the staging dir, as `du` would count them. */
function partBytesOnDisk(dir: string): number {
  let total = 0;
  for (const id of readdirSync(dir))
    for (const name of readdirSync(join(dir, id)))
      if (name.endsWith('.bin')) total += statSync(join(dir, id, name)).size;
  return total;
}

const codeOf = async (run: () => Promise<unknown>) => {
  try {
    await run();
  } catch (err) {
    expect(err).toBeInstanceOf(AilinkError);
    return { code: (err as AilinkError).code, s3: (err as AilinkError).details?.s3 };
  }
  throw new Error('expected a refusal');
};

const dirs: string[] = [];
const apps: FastifyInstance[] = [];
const clients: S3Client[] = [];
const fresh = () => {
  const dir = mkdtempSync(join(tmpdir(), 'ailink-staging-'));
  dirs.push(dir);
  return dir;
};
afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  for (const a of apps.splice(0)) await a.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function gateway(
  options: UploadStoreOptions,
  extra: { uploadSweepMs?: number; now?: () => number } = {},
) {
  const dir = fresh();
  const twins = s3Twins();
  await twins.namespace.createBucket('box');
  const uploads = diskUploadStore(dir, systemRandom, options);
  const app = buildS3App({
    storage: twins.storage,
    namespace: twins.namespace,
    uploads,
    credentials: CREDENTIALS,
    region: REGION,
    clock: { now: extra.now ?? (() => Date.now()) },
    random: systemRandom,
    ...(extra.uploadSweepMs === undefined ? {} : { uploadSweepMs: extra.uploadSweepMs }),
  });
  apps.push(app);
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  const s3 = new S3Client({ endpoint: url, region: REGION, credentials: CREDENTIALS, forcePathStyle: true });
  clients.push(s3);
  return { dir, uploads, s3, twins, url };
}

const create = async (s3: S3Client, Key: string) =>
  (await s3.send(new CreateMultipartUploadCommand({ Bucket: 'box', Key }))).UploadId!;
const part = (s3: S3Client, Key: string, UploadId: string, PartNumber: number, Body: Uint8Array) =>
  s3.send(new UploadPartCommand({ Bucket: 'box', Key, UploadId, PartNumber, Body }));
const refusal = async (run: () => Promise<unknown>) => {
  try {
    await run();
  } catch (err) {
    expect(err).toBeInstanceOf(S3ServiceException);
    const e = err as S3ServiceException;
    return { name: e.name, status: e.$metadata.httpStatusCode, message: e.message };
  }
  throw new Error('expected a refusal');
};

describe('multipart staging quota through the S3 API', () => {
  it('the attack: uploads opened and parts staged, never completed — without a limit the disk takes all of it', async () => {
    const { dir, s3, uploads } = await gateway({});
    for (const key of ['a', 'b', 'c']) {
      const id = await create(s3, key);
      for (const n of [1, 2]) await part(s3, key, id, n, bytesOf(400 * KiB));
    }
    expect(partBytesOnDisk(dir)).toBe(6 * 400 * KiB);
    expect(uploads.stagedBytes()).toBe(6 * 400 * KiB);
  });

  it('with --multipart-staging-max, a part that would pass it → 403 QuotaExceeded saying limit, staged and what to do; nothing more on disk', async () => {
    const { dir, s3, uploads } = await gateway({ maxStagedBytes: 1024 * KiB });
    const a = await create(s3, 'a');
    await part(s3, 'a', a, 1, bytesOf(400 * KiB));
    await part(s3, 'a', a, 2, bytesOf(400 * KiB));
    const b = await create(s3, 'b');
    const before = readdirSync(join(dir, b));
    const refused = await refusal(() => part(s3, 'b', b, 1, bytesOf(400 * KiB)));
    expect(refused.name).toBe('QuotaExceeded');
    expect(refused.status).toBe(403);
    expect(refused.message).toContain('819200 B) is staged');
    expect(refused.message).toContain('the limit is 1.00 MiB (1048576 B)');
    expect(refused.message).toMatch(/complete or abort open multipart uploads/);
    expect(refused.message).toContain('--multipart-staging-max');
    // Nothing of the refused part was written: no file, no record, the same bytes on disk.
    expect(readdirSync(join(dir, b))).toEqual(before);
    expect(partBytesOnDisk(dir)).toBe(800 * KiB);
    expect(uploads.stagedBytes()).toBe(800 * KiB);
    // Nor may another upload's, or this upload's, further parts go past it; one that fits still goes in.
    expect((await refusal(() => part(s3, 'a', a, 3, bytesOf(300 * KiB)))).name).toBe('QuotaExceeded');
    await part(s3, 'b', b, 1, bytesOf(224 * KiB));
    expect(partBytesOnDisk(dir)).toBe(1024 * KiB);
    expect((await refusal(() => part(s3, 'b', b, 2, bytesOf(1)))).name).toBe('QuotaExceeded');
    expect(partBytesOnDisk(dir)).toBe(1024 * KiB);
  });

  it('a part sent again counts only the difference; abort and complete give the space back', async () => {
    const { dir, s3, uploads, twins } = await gateway({ maxStagedBytes: 1024 * KiB });
    const a = await create(s3, 'a');
    await part(s3, 'a', a, 1, bytesOf(600 * KiB));
    // 600 KiB staged: a new 900 KiB part 1 replaces it (900 KiB staged after), though 600 + 900 > 1024.
    await part(s3, 'a', a, 1, bytesOf(900 * KiB, 0x62));
    expect(uploads.stagedBytes()).toBe(900 * KiB);
    expect(partBytesOnDisk(dir)).toBe(900 * KiB);
    // Replacing it by more than the limit allows is refused, and the earlier part stays.
    expect((await refusal(() => part(s3, 'a', a, 1, bytesOf(1025 * KiB)))).name).toBe('QuotaExceeded');
    const listed = await s3.send(new ListPartsCommand({ Bucket: 'box', Key: 'a', UploadId: a }));
    expect(listed.Parts?.map((p) => p.Size)).toEqual([900 * KiB]);
    const b = await create(s3, 'b');
    expect((await refusal(() => part(s3, 'b', b, 1, bytesOf(200 * KiB)))).name).toBe('QuotaExceeded');
    await s3.send(new AbortMultipartUploadCommand({ Bucket: 'box', Key: 'a', UploadId: a }));
    expect(uploads.stagedBytes()).toBe(0);
    expect(partBytesOnDisk(dir)).toBe(0);
    const sent = await part(s3, 'b', b, 1, bytesOf(1024 * KiB, 0x63));
    expect(uploads.stagedBytes()).toBe(1024 * KiB);
    await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: 'box',
        Key: 'b',
        UploadId: b,
        MultipartUpload: { Parts: [{ PartNumber: 1, ETag: sent.ETag! }] },
      }),
    );
    expect(twins.entries.get('box')?.get('b')?.size).toBe(1024 * KiB);
    expect(uploads.stagedBytes()).toBe(0);
    expect(readdirSync(dir)).toEqual([]);
  });

  it.skipIf(!existsSync(AWS_CLI))(
    'awscli: `aws s3 cp` of a file larger than the limit fails with QuotaExceeded and, as it aborts, leaves nothing staged',
    async () => {
      const { dir, url, uploads } = await gateway({ maxStagedBytes: 8 * 1024 * KiB });
      const home = fresh();
      const file = join(home, 'big.bin');
      writeFileSync(file, bytesOf(12 * 1024 * KiB));
      const aws = awsCli({ url, s3: { ...CREDENTIALS, region: REGION } } as GatewayInfo, join(home, 'aws'));
      const failed = await aws('s3', 'cp', file, 's3://box/big.bin').then(
        () => undefined,
        (err: { code?: number; stderr?: string }) => err,
      );
      expect(failed?.code).not.toBe(0);
      expect(failed?.stderr).toContain('QuotaExceeded');
      expect(partBytesOnDisk(dir)).toBe(0);
      expect(uploads.stagedBytes()).toBe(0);
    },
  );

  it('an upload untouched for the expiry is aborted by the periodic sweep: files gone, later UploadPart/Complete → NoSuchUpload', async () => {
    const clock = manualClock(Date.now());
    const { dir, s3, uploads } = await gateway(
      { maxStagedBytes: 1024 * KiB, expiry: { afterMs: 7 * DAY, clock } },
      { uploadSweepMs: 20, now: clock.now },
    );
    const a = await create(s3, 'a');
    const sent = await part(s3, 'a', a, 1, bytesOf(500 * KiB));
    clock.advance(7 * DAY);
    // The client's clock goes with the gateway's, so its signatures stay within the allowed skew.
    s3.config.systemClockOffset = clock.now() - Date.now();
    for (let i = 0; i < 200 && existsSync(join(dir, a)); i++) await new Promise((r) => setTimeout(r, 10));
    expect(existsSync(join(dir, a))).toBe(false);
    expect(uploads.stagedBytes()).toBe(0);
    expect((await refusal(() => part(s3, 'a', a, 2, bytesOf(10)))).name).toBe('NoSuchUpload');
    // The SDK resets its offset from an answer's Date header, which node writes from the real clock.
    s3.config.systemClockOffset = clock.now() - Date.now();
    const completed = await refusal(() =>
      s3.send(
        new CompleteMultipartUploadCommand({
          Bucket: 'box',
          Key: 'a',
          UploadId: a,
          MultipartUpload: { Parts: [{ PartNumber: 1, ETag: sent.ETag! }] },
        }),
      ),
    );
    expect(completed.name).toBe('NoSuchUpload');
    expect(completed.message).toContain('aborted by the gateway after 168 h untouched');
    expect(partBytesOnDisk(dir)).toBe(0);
  });
});

describe('the count of open multipart uploads', () => {
  const info = (key: string) => ({ bucket: 'box', key, metadata: {} });
  const uploadDirs = (dir: string) => readdirSync(dir).length;

  it('the attack: uploads opened and never completed — without a limit each is one more directory, without end', async () => {
    const { dir, s3 } = await gateway({});
    for (let i = 0; i < 12; i++) await create(s3, `k${i}`);
    expect(uploadDirs(dir)).toBe(12);
  });

  it('with --multipart-uploads-max, the one past it → 403 QuotaExceeded saying the count, the limit and what to do; an abort makes room', async () => {
    const { dir, s3 } = await gateway({ maxOpenUploads: 3 });
    const ids = [await create(s3, 'a'), await create(s3, 'b'), await create(s3, 'c')];
    const refused = await refusal(() => create(s3, 'd'));
    expect(refused).toMatchObject({ name: 'QuotaExceeded', status: 403 });
    expect(refused.message).toContain('3 are open and the limit is 3');
    expect(refused.message).toContain('--multipart-uploads-max');
    expect(uploadDirs(dir)).toBe(3);
    await s3.send(new AbortMultipartUploadCommand({ Bucket: 'box', Key: 'a', UploadId: ids[0]! }));
    await create(s3, 'd');
    expect(uploadDirs(dir)).toBe(3);
  });

  it('creations at once cannot pass it together', async () => {
    const dir = fresh();
    const store = diskUploadStore(dir, systemRandom, { maxOpenUploads: 3 });
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) => store.create(info(`k${i}`), 0)),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(3);
    for (const r of results.filter((r) => r.status === 'rejected'))
      expect((r as PromiseRejectedResult).reason).toMatchObject({ code: 'QUOTA_EXCEEDED' });
    expect(uploadDirs(dir)).toBe(3);
  });

  it('expired uploads make room before a creation is refused; a restarted gateway counts the uploads on its disk', async () => {
    const dir = fresh();
    const clock = manualClock(1_000_000);
    const options = { maxOpenUploads: 2, expiry: { afterMs: 7 * DAY, clock } };
    const store = diskUploadStore(dir, systemRandom, options);
    const old = await store.create(info('old'), clock.now());
    clock.advance(6 * DAY);
    await store.create(info('young'), clock.now());
    expect(await codeOf(() => store.create(info('refused'), clock.now()))).toEqual({
      code: 'QUOTA_EXCEEDED',
      s3: 'QuotaExceeded',
    });
    clock.advance(DAY);
    // 'old' is 7 days untouched now: it goes, and the new one takes its place.
    await store.create(info('new'), clock.now());
    expect(existsSync(join(dir, old))).toBe(false);
    expect(uploadDirs(dir)).toBe(2);
    const restarted = diskUploadStore(dir, systemRandom, options);
    expect(await codeOf(() => restarted.create(info('refused'), clock.now()))).toMatchObject({
      code: 'QUOTA_EXCEEDED',
    });
  });
});

describe('diskUploadStore: staging bound, expiry, restart', () => {
  it('an upload being removed is gone at once for the bound, and two removals racing (a sweep and an expired request) subtract its bytes once', async () => {
    const dir = fresh();
    const store = diskUploadStore(dir, systemRandom, { maxStagedBytes: 100 });
    const id = await store.create({ bucket: 'b', key: 'k', metadata: {} }, 0);
    await store.writePart(id, 1, pieces(bytesOf(60)), () => md5(bytesOf(60)), 0);
    const removing = store.remove(id);
    // Found by CI: counted only after its files went, a request could see them gone and the bytes still staged.
    expect(store.stagedBytes()).toBe(0);
    await Promise.all([removing, store.remove(id)]);
    expect(store.stagedBytes()).toBe(0);
    expect(partBytesOnDisk(dir)).toBe(0);
    // A second upload may take the whole bound again, no more.
    const next = await store.create({ bucket: 'b', key: 'k', metadata: {} }, 0);
    await store.writePart(next, 1, pieces(bytesOf(100)), () => md5(bytesOf(100)), 0);
    expect((await codeOf(() => store.writePart(next, 2, pieces(bytesOf(1)), () => 'x', 0, 1))).code).toBe(
      'QUOTA_EXCEEDED',
    );
  });

  it('a part of unknown length is stopped as soon as its bytes pass the bound, and its partial file removed', async () => {
    const dir = fresh();
    const store = diskUploadStore(dir, systemRandom, { maxStagedBytes: 100 });
    const id = await store.create({ bucket: 'b', key: 'k', metadata: {} }, 0);
    await store.writePart(id, 1, pieces(bytesOf(60)), () => md5(bytesOf(60)), 0);
    const body = [bytesOf(20), bytesOf(20), bytesOf(20)];
    expect(await codeOf(() => store.writePart(id, 2, pieces(...body), () => 'x', 0))).toEqual({
      code: 'QUOTA_EXCEEDED',
      s3: 'QuotaExceeded',
    });
    expect(readdirSync(join(dir, id)).filter((n) => n.startsWith('part-00002'))).toEqual([]);
    expect(partBytesOnDisk(dir)).toBe(60);
    expect(store.stagedBytes()).toBe(60);
    // A declared length over the bound is refused before the body is read at all.
    let read = false;
    const unread = (async function* () {
      read = true;
      yield bytesOf(50);
    })();
    expect((await codeOf(() => store.writePart(id, 2, unread, () => 'x', 0, 50))).code).toBe(
      'QUOTA_EXCEEDED',
    );
    expect(read).toBe(false);
  });

  it('parts written at once cannot together pass the bound (each reserves its declared length)', async () => {
    const dir = fresh();
    const store = diskUploadStore(dir, systemRandom, { maxStagedBytes: 1000 });
    const id = await store.create({ bucket: 'b', key: 'k', metadata: {} }, 0);
    const outcomes = await Promise.allSettled(
      [1, 2, 3, 4].map((n) => store.writePart(id, n, pieces(bytesOf(300)), () => md5(bytesOf(300)), 0, 300)),
    );
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(3);
    expect(partBytesOnDisk(dir)).toBe(900);
    expect(store.stagedBytes()).toBe(900);
  });

  it('expiry with an injected clock: a part or a ListParts renews it; at the limit its files go and every call → NoSuchUpload', async () => {
    const dir = fresh();
    const clock = manualClock(1_000_000);
    const store = diskUploadStore(dir, systemRandom, { expiry: { afterMs: 7 * DAY, clock } });
    const id = await store.create({ bucket: 'b', key: 'k', metadata: {} }, clock.now());
    clock.advance(6 * DAY);
    await store.writePart(id, 1, pieces(bytesOf(10)), () => md5(bytesOf(10)), clock.now());
    clock.advance(6 * DAY);
    await store.touch(id, clock.now());
    clock.advance(7 * DAY - 1);
    expect(await store.sweepExpired()).toEqual([]);
    expect(existsSync(join(dir, id))).toBe(true);
    clock.advance(1);
    // No sweep ran: the request that reaches it finds it expired, and removes it.
    expect(await codeOf(() => store.writePart(id, 2, pieces(bytesOf(1)), () => 'x', clock.now()))).toEqual({
      code: 'INVALID_INPUT',
      s3: 'NoSuchUpload',
    });
    expect(existsSync(join(dir, id))).toBe(false);
    expect(store.stagedBytes()).toBe(0);
    for (const call of [
      () => store.info(id, 'b', 'k'),
      () => store.parts(id),
      () => store.touch(id, clock.now()),
    ])
      expect((await codeOf(call)).s3).toBe('NoSuchUpload');
    expect(await store.uploads()).toEqual([]);
    // The sweep removes what nobody asks for.
    const other = await store.create({ bucket: 'b', key: 'k2', metadata: {} }, clock.now());
    await store.writePart(other, 1, pieces(bytesOf(5)), () => md5(bytesOf(5)), clock.now());
    clock.advance(7 * DAY);
    expect(await store.sweepExpired()).toEqual([other]);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('an upload with a part being written is not expired under it, however long the part takes', async () => {
    const dir = fresh();
    const clock = manualClock(0);
    const store = diskUploadStore(dir, systemRandom, { expiry: { afterMs: DAY, clock } });
    const id = await store.create({ bucket: 'b', key: 'k', metadata: {} }, clock.now());
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    const slow = (async function* () {
      yield bytesOf(10);
      await held;
      yield bytesOf(10);
    })();
    const writing = store.writePart(id, 1, slow, () => md5(bytesOf(20)), clock.now(), 20);
    await new Promise((r) => setTimeout(r, 20));
    clock.advance(3 * DAY);
    expect(await store.sweepExpired()).toEqual([]);
    release();
    expect((await writing).size).toBe(20);
    // Its use lasted until the part was in: a day from then.
    clock.advance(DAY - 1);
    expect(await store.sweepExpired()).toEqual([]);
    clock.advance(1);
    expect(await store.sweepExpired()).toEqual([id]);
  });

  it('a restart recomputes the staged bytes from the files and each upload last use, and sweeps what expired meanwhile', async () => {
    const dir = fresh();
    const clock = manualClock(0);
    const options = { maxStagedBytes: 1000, expiry: { afterMs: 7 * DAY, clock } };
    const first = diskUploadStore(dir, systemRandom, options);
    const kept = await first.create({ bucket: 'b', key: 'k', metadata: {} }, clock.now());
    await first.writePart(kept, 1, pieces(bytesOf(300)), () => md5(bytesOf(300)), clock.now());
    await first.writePart(kept, 2, pieces(bytesOf(200)), () => md5(bytesOf(200)), clock.now());
    await first.writePart(kept, 2, pieces(bytesOf(250)), () => md5(bytesOf(250)), clock.now());
    const idle = await first.create({ bucket: 'b', key: 'idle', metadata: {} }, clock.now());
    await first.writePart(idle, 1, pieces(bytesOf(400)), () => md5(bytesOf(400)), clock.now());
    clock.advance(5 * DAY);
    await first.touch(kept, clock.now());
    expect(first.stagedBytes()).toBe(950);

    // The gateway is down for 3 days: `idle` (untouched 8 days) expired, `kept` (listed 3 days ago) did not.
    clock.advance(3 * DAY);
    const second = diskUploadStore(dir, systemRandom, options);
    expect(readdirSync(dir)).toEqual([kept]);
    expect(second.stagedBytes()).toBe(550);
    expect(second.stagedBytes()).toBe(partBytesOnDisk(dir));
    // The bound holds against what the disk holds: 450 more fit, 451 do not.
    expect(
      (await codeOf(() => second.writePart(kept, 3, pieces(bytesOf(451)), () => 'x', clock.now(), 451))).code,
    ).toBe('QUOTA_EXCEEDED');
    await second.writePart(kept, 3, pieces(bytesOf(450)), () => md5(bytesOf(450)), clock.now(), 450);
    expect(second.stagedBytes()).toBe(1000);
    // Its last use (the ListParts 3 days before the restart) still counts: 4 more days and it expires.
    clock.advance(4 * DAY - 1);
    expect(await second.sweepExpired()).toEqual([]);
  });

  it('a property: for any sequence of puts, replacements and aborts, the staged bytes are the sizes of the current parts — in memory, on disk and after a restart — and a put is refused exactly when it would pass the bound', async () => {
    const MAX = 4000;
    const op = fc.oneof(
      fc.record({
        kind: fc.constant('put' as const),
        upload: fc.nat({ max: 2 }),
        number: fc.integer({ min: 1, max: 3 }),
        size: fc.nat({ max: 2500 }),
        declared: fc.boolean(),
      }),
      fc.record({ kind: fc.constant('abort' as const), upload: fc.nat({ max: 2 }) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 20 }), async (ops) => {
        const dir = mkdtempSync(join(tmpdir(), 'ailink-staging-prop-'));
        try {
          const store: UploadStore = diskUploadStore(dir, systemRandom, { maxStagedBytes: MAX });
          const ids: string[] = [];
          const model: Map<number, number>[] = [];
          for (let i = 0; i < 3; i++) {
            ids.push(await store.create({ bucket: 'b', key: `k${i}`, metadata: {} }, 0));
            model.push(new Map());
          }
          const total = () => model.reduce((sum, m) => sum + [...m.values()].reduce((a, b) => a + b, 0), 0);
          for (const o of ops) {
            if (o.kind === 'abort') {
              await store.remove(ids[o.upload]!);
              ids[o.upload] = await store.create({ bucket: 'b', key: `k${o.upload}`, metadata: {} }, 0);
              model[o.upload] = new Map();
            } else {
              const fits = total() - (model[o.upload]!.get(o.number) ?? 0) + o.size <= MAX;
              const body = bytesOf(o.size);
              const put = store.writePart(
                ids[o.upload]!,
                o.number,
                pieces(body.subarray(0, 1000), body.subarray(1000)),
                () => md5(body),
                0,
                ...(o.declared ? [o.size] : []),
              );
              if (fits) {
                await put;
                model[o.upload]!.set(o.number, o.size);
              } else expect((await codeOf(() => put)).code).toBe('QUOTA_EXCEEDED');
            }
            expect(store.stagedBytes()).toBe(total());
            expect(partBytesOnDisk(dir)).toBe(total());
          }
          expect(diskUploadStore(dir, systemRandom, { maxStagedBytes: MAX }).stagedBytes()).toBe(total());
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      }),
      { numRuns: 40 },
    );
  });
});

describe('--multipart-staging-max BYTES', () => {
  it('takes a byte count, or one with a K/M/G/T suffix (1024-based); anything else is refused', () => {
    expect(parseByteCount('17179869184')).toBe(16 * 1024 ** 3);
    expect(parseByteCount('16G')).toBe(16 * 1024 ** 3);
    expect(parseByteCount('512MiB')).toBe(512 * 1024 ** 2);
    expect(parseByteCount('2t')).toBe(2 * 1024 ** 4);
    for (const bad of ['0', '-1', '1.5G', 'lots', '16X', '']) expect(parseByteCount(bad)).toBeUndefined();
  });
});
