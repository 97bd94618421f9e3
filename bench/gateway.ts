/**
 * npm run bench:gateway — the gateway (issue 16 §8) against the storage client it serves, measured in one run:
 *   1. S3 PutObject / GetObject of one big object (`--size MiB`, default 1024; `--quick` 64; test profile 4) through
 *      an `ailink gateway` child process with @aws-sdk/client-s3, streamed from / to a file; baseline: the storage
 *      client in this process (openSession(…).storage.put / get) with the same bytes, also from / to a file. `--rounds`
 *      (default 3; 1 from 512 MiB) rounds in alternating order, medians reported.
 *   2. `--small N` (default 1000; `--quick` 100) 4 KiB objects put through S3 (`--concurrency`, default 8 in flight), then listed with
 *      ListObjectsV2 in pages of a tenth of them (10 to 100 keys a page).
 *   3. Time to first byte of 1 KiB ranged reads in the middle of the big object (median of 10); baseline: the same
 *      ranges through the storage client.
 *   4. The gateway process's peak RSS while it streams the big object each way (VmRSS sampled every 50 ms from
 *      /proc/<pid>/status, and VmHWM, which cannot be reset, read after each phase).
 *   5. Alt-DA put → get round trips of 128 KiB blobs through `<url>/altda` (median of 5).
 *   6. Bytes on the miners' disks per byte written for the 4 KiB objects: the fragment files added under
 *      <network>/miners/* /fragments during the small-object phase ÷ the bytes put.
 * Dev network: 12 miners, no verifier (no tagging load during the figures), `--profile production|test` (default
 * production). Progress on stderr; a table, then one JSON line, on stdout. Everything lives under one temp dir, removed
 * at the end.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  createReadStream,
  createWriteStream,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statfsSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import {
  CreateBucketCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { MAX_DECLARED_SEGMENTS } from '../src/chain/index.ts';
import {
  BIN,
  type DevNetwork,
  GatewayInfoSchema,
  openSession,
  type Session,
  sessionOf,
  startDevNetwork,
} from '../src/node/index.ts';
import { loadKeyFile } from '../src/shared/account.ts';
import { toHex } from '../src/shared/bytes.ts';
import { systemClock, systemRandom } from '../src/shared/clock.ts';
import { loadNetworkFile, PRODUCTION_PROFILE, TEST_PROFILE } from '../src/storage/index.ts';

const MiB = 1024 * 1024;
const KiB = 1024;
const log = (s: string) => process.stderr.write(`${s}\n`);
/** MB/s with MB = 10^6 bytes, the unit of every bench's output. */
const mbps = (bytes: number, ms: number) => bytes / 1e6 / (ms / 1000);
const round1 = (x: number) => Math.round(x * 10) / 10;
const round2 = (x: number) => Math.round(x * 100) / 100;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const { values: args } = parseArgs({
  args: process.argv.slice(2),
  options: {
    profile: { type: 'string', default: 'production' },
    size: { type: 'string' },
    small: { type: 'string' },
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    concurrency: { type: 'string' },
  },
});
if (args.profile !== 'production' && args.profile !== 'test') {
  throw new Error(`--profile: expected production or test, got ${args.profile}`);
}
const PROFILE_NAME: 'production' | 'test' = args.profile;
const PROFILE = PROFILE_NAME === 'production' ? PRODUCTION_PROFILE : TEST_PROFILE;
const positive = (text: string | undefined, fallback: number, name: string): number => {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1)
    throw new Error(`--${name}: expected a positive integer, got ${text}`);
  return n;
};
// The test profile's 64 KiB segments allow objects of ~8 MiB only (see the limits in main), so its default is 4 MiB.
const SIZE_MIB = positive(args.size, PROFILE_NAME === 'test' ? 4 : args.quick ? 64 : 1024, 'size');
const SMALL = positive(args.small, args.quick ? 100 : 1000, 'small');
/** Rounds of the big object each way (medians reported); one for objects of 512 MiB and more. */
const ROUNDS = positive(args.rounds, SIZE_MIB >= 512 ? 1 : 3, 'rounds');
const SIZE = SIZE_MIB * MiB;
const SMALL_BYTES = 4 * KiB;
/** Small puts in flight (`--concurrency`, default 8). */
const CONCURRENCY = positive(args.concurrency, 8, 'concurrency');
/** Pages of about a tenth of the keys (10 to 100 a page), so that listing always pages. */
const LIST_PAGE = Math.max(10, Math.min(100, Math.floor(SMALL / 10)));
const RANGE_READS = 10;
const RANGE_BYTES = KiB;
const ALTDA_ROUNDS = 5;
const ALTDA_BYTES = 128 * KiB;
const BUCKET = 'bench';
/** Every remote step has a deadline: small requests 2 min, big transfers 10 min + 2 s per MiB. */
const SMALL_DEADLINE_MS = 120_000;
const BIG_DEADLINE_MS = 600_000 + 2000 * SIZE_MIB;

/** Rejects after `ms` with a message naming the step; the step itself is aborted by its own signal where it has one. */
async function within<T>(what: string, ms: number, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const signal = AbortSignal.timeout(ms);
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${Math.round(ms / 1000)} s`)), ms);
  });
  try {
    return await Promise.race([run(signal), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** Logs "<phase> n %" at every 10 % step of `total` bytes or items. */
function progress(phase: string, total: number): (n: number) => void {
  let done = 0;
  let shown = -1;
  return (n) => {
    done += n;
    const pct = Math.floor((done / total) * 10) * 10;
    if (pct > shown) {
      shown = pct;
      log(`  ${phase} ${Math.min(pct, 100)} %`);
    }
  };
}

/** A pass-through that counts the bytes flowing by. */
function counter(onBytes: (n: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      onBytes(chunk.byteLength);
      done(null, chunk);
    },
  });
}

/** Writes `bytes` random bytes to `path` in 8 MiB pieces and returns their SHA-256. */
function writeRandomFile(path: string, bytes: number): string {
  const hash = createHash('sha256');
  const fd = openSync(path, 'w');
  try {
    for (let at = 0; at < bytes; at += 8 * MiB) {
      const piece = systemRandom(Math.min(8 * MiB, bytes - at));
      hash.update(piece);
      writeSync(fd, piece);
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}

async function fileSha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * MiB })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** The sizes of every file under `dir` (recursively), summed; 0 when it does not exist. */
function treeBytes(dir: string): number {
  let total = 0;
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return 0;
  }
  for (const name of entries) {
    const path = join(dir, name);
    const st = lstatSync(path, { throwIfNoEntry: false });
    if (st === undefined) continue;
    total += st.isDirectory() ? treeBytes(path) : st.size;
  }
  return total;
}

/** What the miners' fragment stores hold on disk: every file under <network>/miners/<miner>/fragments. */
function fragmentBytes(network: DevNetwork): number {
  return network.miners.reduce((sum, m) => sum + treeBytes(join(m.dataDir, 'fragments')), 0);
}

/** VmRSS and VmHWM of a process, in bytes. */
function memoryOf(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/** Samples the process's VmRSS every 50 ms until stopped; the largest sample, in bytes. */
function sampleRss(pid: number): { stop(): number } {
  let max = memoryOf(pid).rss;
  const timer = setInterval(() => {
    try {
      max = Math.max(max, memoryOf(pid).rss);
    } catch {
      // The process is gone; the phase will fail on its own.
    }
  }, 50);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(max, memoryOf(pid).rss);
    },
  };
}

/** `ailink gateway` as a child process; resolves with its ready line once it listens. */
async function startGateway(
  networkPath: string,
  dataDir: string,
): Promise<{ child: ChildProcess; info: string; tail: string[] }> {
  const child = spawn(
    process.execPath,
    [BIN, 'gateway', '--network', networkPath, '--data-dir', dataDir, '--listen', '127.0.0.1:0'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const tail: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (line) => {
    tail.push(line);
    if (tail.length > 30) tail.shift();
  });
  try {
    const info = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error('ailink gateway did not report ready within 180 s')),
        180_000,
      );
      createInterface({ input: child.stdout! }).on('line', (line) => {
        try {
          const m = JSON.parse(line) as { event?: string; info?: string };
          if (m.event === 'ready' && typeof m.info === 'string') {
            clearTimeout(timer);
            resolve(m.info);
          }
        } catch {
          // Not a JSON line: not the ready line.
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`ailink gateway exited with ${code} before it was ready:\n${tail.join('\n')}`));
      });
    });
    return { child, info, tail };
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/** Runs `task(i)` for i in [0, n) with at most `limit` in flight. */
async function bounded(n: number, limit: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, n) }, async () => {
      while (next < n) await task(next++);
    }),
  );
}

async function main(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'ailink-bench-gateway-'));
  const netDir = join(root, 'network');
  const gwDir = join(root, 'gateway');
  const benchState = join(root, 'bench-state');
  mkdirSync(benchState);
  const source = join(root, 'big.bin');
  const back = join(root, 'back.bin');

  // Fragments on disk: the big object twice (S3 and direct) at 12/4 of its padded size, and every small object a
  // whole segment × 12/4. Refused up front rather than filling the disk half-way.
  const stretch = (PROFILE.dataFragments + PROFILE.parityFragments) / PROFILE.dataFragments;
  const segments = (bytes: number) => Math.ceil((bytes + 1) / PROFILE.segmentSize);
  const needed =
    3 * SIZE +
    2 * ROUNDS * segments(SIZE) * PROFILE.segmentSize * stretch +
    SMALL * PROFILE.segmentSize * stretch;
  // One upload's declaration fits one extrinsic (remarks of ≤ 3 MiB in all, src/chain/declare.ts).
  if (segments(SIZE) > MAX_DECLARED_SEGMENTS) {
    rmSync(root, { recursive: true, force: true });
    throw new Error(
      `--size ${SIZE_MIB}: ${segments(SIZE)} segments of ${PROFILE.segmentSize / KiB} KiB; one upload declares at ` +
        `most ${MAX_DECLARED_SEGMENTS}`,
    );
  }
  const fs = statfsSync(root);
  const free = fs.bavail * fs.bsize;
  log(
    `bench:gateway — profile ${PROFILE_NAME}, object ${SIZE_MIB} MiB, ${SMALL} small objects; ` +
      `needs ≈ ${(needed / 1e9).toFixed(1)} GB of disk, ${(free / 1e9).toFixed(1)} GB free`,
  );
  if (needed > free * 0.8) {
    rmSync(root, { recursive: true, force: true });
    throw new Error(
      `not enough disk: this run would write ≈ ${(needed / 1e9).toFixed(1)} GB (every 4 KiB object takes a whole ` +
        `${PROFILE.segmentSize / MiB} MiB segment × ${stretch}); use --small, --size or --profile test`,
    );
  }

  let network: DevNetwork | undefined;
  let gateway: ChildProcess | undefined;
  let session: Session | undefined;
  let s3: S3Client | undefined;
  let gatewayTail: string[] = [];
  try {
    log(`writing ${SIZE_MIB} MiB of random bytes to ${source} …`);
    const sourceSha = writeRandomFile(source, SIZE);

    log(`starting a dev network of 12 miners in ${netDir} …`);
    network = await startDevNetwork(
      { random: systemRandom },
      {
        dataDir: netDir,
        miners: 12,
        profile: PROFILE_NAME,
        verifier: false,
        readyTimeoutMs: 180_000,
        // No fragment of this run is collected while it runs, however long a loaded machine makes it.
        collectGraceMs: 3 * 3600_000,
        onProgress: (p) => log(`  network: ${p.step}${p.step === 'miners' ? ` ${p.ready}/${p.total}` : ''}`),
      },
    );

    log('starting `ailink gateway` as a child process …');
    const started = await startGateway(network.path, gwDir);
    gateway = started.child;
    gatewayTail = started.tail;
    const pid = gateway.pid!;
    const info = GatewayInfoSchema.parse(JSON.parse(readFileSync(started.info, 'utf8')));
    s3 = new S3Client({
      endpoint: info.url,
      region: info.s3.region,
      credentials: { accessKeyId: info.s3.accessKeyId, secretAccessKey: info.s3.secretAccessKey },
      forcePathStyle: true,
      maxAttempts: 1,
    });
    const client = s3;

    log('opening the baseline session (the storage client in this process) …');
    const account = await loadKeyFile(network.operatorKeyPath);
    const net = loadNetworkFile(network.path);
    session = await within('openSession', SMALL_DEADLINE_MS, () =>
      openSession(sessionOf(net, PROFILE, benchState), account, 'bench', {
        clock: systemClock,
        random: systemRandom,
      }),
    );
    const storage = session.storage;

    await within('CreateBucket', SMALL_DEADLINE_MS, (abortSignal) =>
      client.send(new CreateBucketCommand({ Bucket: BUCKET }), { abortSignal }),
    );
    // Warm-up, outside the figures: codec workers compile, connections to the miners are dialled.
    log('warm-up: 1 MiB through each path …');
    const warm = systemRandom(MiB);
    await within('warm-up put (S3)', SMALL_DEADLINE_MS, (abortSignal) =>
      client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'warm-up', Body: warm }), { abortSignal }),
    );
    await within('warm-up put (direct)', SMALL_DEADLINE_MS, (signal) =>
      storage.put(systemRandom(MiB), { signal }),
    );
    const rssIdle = memoryOf(pid);

    // 1 + 4. The big object, ROUNDS times; the order alternates (direct first in even rounds, S3 first in odd ones)
    // so that neither path always runs on the warmer or the more loaded machine. The gateway's RSS is sampled during
    // every S3 put and get, and its VmHWM (which cannot be reset) read after each.
    const times = {
      directPut: [] as number[],
      s3Put: [] as number[],
      directGet: [] as number[],
      s3Get: [] as number[],
    };
    const rss = { put: 0, get: 0, hwmAfterPut: 0, hwmAfterGet: 0 };
    let directFid = '';
    let bigKey = '';
    const timed = async (into: number[], run: () => Promise<void>) => {
      const t0 = performance.now();
      await run();
      into.push(performance.now() - t0);
    };
    for (let round = 0; round < ROUNDS; round++) {
      const tag = ROUNDS > 1 ? ` (round ${round + 1}/${ROUNDS})` : '';
      const key = `big/object-${round}.bin`;
      const directPut = () =>
        timed(times.directPut, async () => {
          log(`direct put of ${SIZE_MIB} MiB (storage client in this process)${tag} …`);
          const stream = createReadStream(source, { highWaterMark: MiB });
          const put = await within('direct put', BIG_DEADLINE_MS, (signal) =>
            storage.put(stream.pipe(counter(progress('direct put', SIZE))), { signal }),
          );
          directFid = put.fid;
        });
      const s3Put = async () => {
        log(`S3 PutObject of ${SIZE_MIB} MiB through the gateway${tag} …`);
        const sampler = sampleRss(pid);
        await timed(times.s3Put, async () => {
          await within('S3 PutObject', BIG_DEADLINE_MS, (abortSignal) =>
            client.send(
              new PutObjectCommand({
                Bucket: BUCKET,
                Key: key,
                Body: createReadStream(source, { highWaterMark: MiB }).pipe(
                  counter(progress('S3 put', SIZE)),
                ),
                ContentLength: SIZE,
              }),
              { abortSignal },
            ),
          );
        });
        rss.put = Math.max(rss.put, sampler.stop());
        rss.hwmAfterPut = memoryOf(pid).hwm;
        bigKey = key;
      };
      const directGet = async () => {
        log(`direct get of ${SIZE_MIB} MiB${tag} …`);
        await timed(times.directGet, () =>
          within('direct get', BIG_DEADLINE_MS, (signal) =>
            pipeline(
              Readable.from(storage.get(directFid, { signal })),
              counter(progress('direct get', SIZE)),
              createWriteStream(back),
            ),
          ),
        );
        if ((await fileSha256(back)) !== sourceSha) throw new Error('direct get returned other bytes');
        rmSync(back);
      };
      const s3Get = async () => {
        log(`S3 GetObject of ${SIZE_MIB} MiB through the gateway${tag} …`);
        const sampler = sampleRss(pid);
        await timed(times.s3Get, () =>
          within('S3 GetObject', BIG_DEADLINE_MS, async (abortSignal) => {
            const got = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }), {
              abortSignal,
            });
            await pipeline(got.Body as Readable, counter(progress('S3 get', SIZE)), createWriteStream(back));
          }),
        );
        rss.get = Math.max(rss.get, sampler.stop());
        rss.hwmAfterGet = memoryOf(pid).hwm;
        if ((await fileSha256(back)) !== sourceSha) throw new Error('S3 GetObject returned other bytes');
        rmSync(back);
      };
      const order =
        round % 2 === 0 ? [directPut, s3Put, directGet, s3Get] : [s3Put, directPut, s3Get, directGet];
      for (const step of order) await step();
    }
    const directPutMs = median(times.directPut);
    const s3PutMs = median(times.s3Put);
    const directGetMs = median(times.directGet);
    const s3GetMs = median(times.s3Get);
    const { put: rssPut, get: rssGet, hwmAfterPut, hwmAfterGet } = rss;
    const direct = { fid: directFid };
    const BIG_KEY = bigKey;
    let t = 0;

    // 3. Ranged reads in the middle of the big object, S3 and direct, alternating.
    log(`time to first byte of ${RANGE_READS} ranged 1 KiB reads, each way …`);
    const s3Ttfb: number[] = [];
    const directTtfb: number[] = [];
    for (let i = 0; i < RANGE_READS; i++) {
      const start = Math.floor(SIZE / 2) + i * 4099;
      const end = start + RANGE_BYTES - 1;
      t = performance.now();
      await within('ranged GetObject', SMALL_DEADLINE_MS, async (abortSignal) => {
        const got = await client.send(
          new GetObjectCommand({ Bucket: BUCKET, Key: BIG_KEY, Range: `bytes=${start}-${end}` }),
          { abortSignal },
        );
        let first = true;
        let n = 0;
        for await (const chunk of got.Body as Readable) {
          if (first) s3Ttfb.push(performance.now() - t);
          first = false;
          n += (chunk as Buffer).byteLength;
        }
        if (n !== RANGE_BYTES) throw new Error(`ranged GetObject returned ${n} bytes`);
      });
      t = performance.now();
      await within('ranged direct get', SMALL_DEADLINE_MS, async (signal) => {
        let first = true;
        for await (const _ of storage.get(direct.fid, { signal, range: { start, end } })) {
          if (first) directTtfb.push(performance.now() - t);
          first = false;
        }
      });
    }

    // 5. Alt-DA round trips.
    log(`Alt-DA: ${ALTDA_ROUNDS} put → get round trips of 128 KiB …`);
    const altdaPut: number[] = [];
    const altdaGet: number[] = [];
    for (let i = 0; i < ALTDA_ROUNDS; i++) {
      const blob = systemRandom(ALTDA_BYTES);
      t = performance.now();
      const commitment = await within('Alt-DA put', SMALL_DEADLINE_MS, async (signal) => {
        const res = await fetch(`${info.altda ?? `${info.url}/altda`}/put`, {
          method: 'POST',
          headers: { 'content-type': 'application/octet-stream' },
          body: Buffer.from(blob),
          signal,
        });
        if (res.status !== 200) throw new Error(`Alt-DA put: ${res.status} ${await res.text()}`);
        return new Uint8Array(await res.arrayBuffer());
      });
      altdaPut.push(performance.now() - t);
      if (commitment[0] !== 0x01 || commitment[1] !== 0x41) {
        throw new Error(`Alt-DA put answered ${toHex(commitment.subarray(0, 8))}…, not 0x01 0x41 ‖ fid`);
      }
      const t2 = performance.now();
      const got = await within('Alt-DA get', SMALL_DEADLINE_MS, async (signal) => {
        const res = await fetch(`${info.altda ?? `${info.url}/altda`}/get/0x${toHex(commitment)}`, {
          signal,
        });
        if (res.status !== 200) throw new Error(`Alt-DA get: ${res.status} ${await res.text()}`);
        return Buffer.from(await res.arrayBuffer());
      });
      altdaGet.push(performance.now() - t2);
      if (!got.equals(blob)) throw new Error('Alt-DA get returned other bytes');
    }
    const altdaRoundTrip = altdaPut.map((p, i) => p + altdaGet[i]!);

    // 2 + 6. Small objects: put with 8 in flight, the fragment files they add, then list them in pages.
    const diskBefore = fragmentBytes(network);
    log(`${SMALL} objects of 4 KiB through S3, ${CONCURRENCY} in flight …`);
    const smallProgress = progress('small puts', SMALL);
    t = performance.now();
    await bounded(SMALL, CONCURRENCY, async (i) => {
      await within(`PutObject small ${i}`, SMALL_DEADLINE_MS, (abortSignal) =>
        client.send(
          new PutObjectCommand({
            Bucket: BUCKET,
            Key: `small/${String(i).padStart(6, '0')}`,
            Body: systemRandom(SMALL_BYTES),
          }),
          { abortSignal },
        ),
      );
      smallProgress(1);
    });
    const smallPutMs = performance.now() - t;
    const diskAdded = fragmentBytes(network) - diskBefore;

    log(`ListObjectsV2 of small/ in pages of ${LIST_PAGE} …`);
    let listed = 0;
    let pages = 0;
    let token: string | undefined;
    t = performance.now();
    do {
      const page = await within('ListObjectsV2', SMALL_DEADLINE_MS, (abortSignal) =>
        client.send(
          new ListObjectsV2Command({
            Bucket: BUCKET,
            Prefix: 'small/',
            MaxKeys: LIST_PAGE,
            ...(token === undefined ? {} : { ContinuationToken: token }),
          }),
          { abortSignal },
        ),
      );
      pages++;
      listed += page.KeyCount ?? 0;
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
    const listMs = performance.now() - t;
    if (listed !== SMALL) throw new Error(`ListObjectsV2 listed ${listed} keys, expected ${SMALL}`);

    const putRatio = directPutMs / s3PutMs;
    const getRatio = directGetMs / s3GetMs;
    const result = {
      bench: 'gateway',
      profile: PROFILE_NAME,
      object_mib: SIZE_MIB,
      rounds: ROUNDS,
      s3_put_mbps: round1(mbps(SIZE, s3PutMs)),
      direct_put_mbps: round1(mbps(SIZE, directPutMs)),
      put_ratio: round2(putRatio),
      s3_get_mbps: round1(mbps(SIZE, s3GetMs)),
      direct_get_mbps: round1(mbps(SIZE, directGetMs)),
      get_ratio: round2(getRatio),
      small_objects: SMALL,
      small_put_concurrency: CONCURRENCY,
      small_puts_per_s: round2(SMALL / (smallPutMs / 1000)),
      list_page_keys: LIST_PAGE,
      list_pages: pages,
      list_keys_per_s: Math.round(listed / (listMs / 1000)),
      list_pages_per_s: round1(pages / (listMs / 1000)),
      range_ttfb_ms: round1(median(s3Ttfb)),
      direct_range_ttfb_ms: round1(median(directTtfb)),
      gateway_rss_idle_mib: round1(rssIdle.rss / MiB),
      gateway_peak_rss_put_mib: round1(rssPut / MiB),
      gateway_peak_rss_get_mib: round1(rssGet / MiB),
      gateway_vmhwm_after_put_mib: round1(hwmAfterPut / MiB),
      gateway_vmhwm_after_get_mib: round1(hwmAfterGet / MiB),
      altda_roundtrip_ms: round1(median(altdaRoundTrip)),
      altda_put_ms: round1(median(altdaPut)),
      altda_get_ms: round1(median(altdaGet)),
      small_fragment_bytes_added: diskAdded,
      small_bytes_written: SMALL * SMALL_BYTES,
      stored_per_written: round1(diskAdded / (SMALL * SMALL_BYTES)),
    };
    const aim = (ok: boolean) => (ok ? 'met' : 'not met');
    const peak = Math.max(rssPut, rssGet, hwmAfterGet);
    const rows: [string, string, string][] = [
      [
        `S3 PutObject ${SIZE_MIB} MiB (file stream, median of ${ROUNDS})`,
        `${result.s3_put_mbps} MB/s`,
        `${result.put_ratio} × direct put (aim ≥ 0.8: ${aim(putRatio >= 0.8)})`,
      ],
      [`direct storage.put ${SIZE_MIB} MiB (file stream)`, `${result.direct_put_mbps} MB/s`, 'baseline'],
      [
        `S3 GetObject ${SIZE_MIB} MiB (to a file, median of ${ROUNDS})`,
        `${result.s3_get_mbps} MB/s`,
        `${result.get_ratio} × direct get (aim ≥ 0.8: ${aim(getRatio >= 0.8)})`,
      ],
      [`direct storage.get ${SIZE_MIB} MiB (to a file)`, `${result.direct_get_mbps} MB/s`, 'baseline'],
      [`${SMALL} × 4 KiB PutObject, ${CONCURRENCY} in flight`, `${result.small_puts_per_s} objects/s`, ''],
      [
        `ListObjectsV2 of ${SMALL} keys, pages of ${LIST_PAGE}`,
        `${result.list_pages_per_s} pages/s (${result.list_keys_per_s} keys/s)`,
        '',
      ],
      [
        'ranged GetObject 1 KiB mid-object, time to first byte (median of 10)',
        `${result.range_ttfb_ms} ms`,
        `direct ranged get ${result.direct_range_ttfb_ms} ms (aim ≤ 200 ms: ${aim(median(s3Ttfb) <= 200)})`,
      ],
      [
        'gateway RSS, peak while streaming the put (sampled / VmHWM)',
        `${result.gateway_peak_rss_put_mib} / ${result.gateway_vmhwm_after_put_mib} MiB`,
        `idle ${result.gateway_rss_idle_mib} MiB`,
      ],
      [
        'gateway RSS, peak while streaming the get (sampled / VmHWM)',
        `${result.gateway_peak_rss_get_mib} / ${result.gateway_vmhwm_after_get_mib} MiB`,
        `aim ≤ 256 MiB: ${aim(peak <= 256 * MiB)}`,
      ],
      [
        'Alt-DA put → get, 128 KiB (median of 5)',
        `${result.altda_roundtrip_ms} ms`,
        `put ${result.altda_put_ms} ms + get ${result.altda_get_ms} ms`,
      ],
      [
        'bytes on miners’ disks per byte written, 4 KiB objects',
        `${result.stored_per_written} ×`,
        `${(diskAdded / 1e6).toFixed(1)} MB for ${((SMALL * SMALL_BYTES) / 1e6).toFixed(1)} MB (aim ≤ 4: ${aim(diskAdded <= 4 * SMALL * SMALL_BYTES)})`,
      ],
    ];
    console.log(`profile ${PROFILE_NAME}; rates in MB/s, MB = 10^6 bytes\n`);
    console.log('| measure | value | vs baseline / aim |\n|---|---|---|');
    for (const r of rows) console.log(`| ${r.join(' | ')} |`);
    console.log(JSON.stringify(result));
  } catch (err) {
    if (gatewayTail.length > 0) log(`gateway's last log lines:\n${gatewayTail.join('\n')}`);
    throw err;
  } finally {
    s3?.destroy();
    await session?.close().catch(() => {});
    if (gateway !== undefined) await stopChild(gateway);
    await network?.stop().catch(() => {});
    rmSync(root, { recursive: true, force: true });
  }
}

await main();
process.exit(0);
