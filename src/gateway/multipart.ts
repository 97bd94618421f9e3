import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { z } from 'zod';
import { formatBytes, RetentionSchema } from '../chain/index.ts';
import { toHex } from '../shared/bytes.ts';
import type { Clock, Random } from '../shared/clock.ts';
import { AilinkError } from '../shared/errors.ts';
import { makePrivateDir } from '../shared/private-files.ts';
import { s3Error } from './s3-http.ts';

/**
 * S3 multipart uploads staged on the gateway's disk (issue 16). Parts arrive in any order, in parallel, over minutes
 * or days, and may be sent again; only CompleteMultipartUpload turns them into one object, which then goes through
 * the storage client as one stream, so it is coded into full segments like any object (a part per object would
 * store an 8 MiB part in a whole 32 MiB segment). Staging on disk is also what lets an upload survive a gateway
 * restart: its parts are files in the data dir (0700), and a part counts only once its record is renamed into place,
 * so a gateway killed mid-part leaves a part that is absent, never half there.
 *
 * Layout: `<dir>/<uploadId>/upload.json`, per part `part-<n>.json` naming its bytes `part-<n>-<random>.bin`, and
 * `touched` (the time of its last ListParts or Complete, when later than its last part).
 *
 * Staging is bounded (issue 16): the bytes of all open uploads' parts together stay within `maxStagedBytes`, and an
 * upload untouched for `expiry.afterMs` is aborted. Both are counted from the files at start, so a restart neither
 * forgets what is staged nor gives an idle upload a new lease.
 */

/** S3's limits: parts 1–10,000, each at most 5 GiB and all but the last at least 5 MiB. */
export const MAX_PARTS = 10_000;
export const MIN_PART_BYTES = 5 * 1024 * 1024;
export const MAX_PART_BYTES = 5 * 1024 ** 3;

/** The gateway's default bound on the bytes staged across its open multipart uploads (`--multipart-staging-max`). */
export const DEFAULT_MAX_STAGED_BYTES = 16 * 1024 ** 3;
/**
 * The gateway's default bound on multipart uploads open at once (`--multipart-uploads-max`): far above what backup and
 * sync tools keep open (the aws CLI runs 10 requests at once), far below what fills a disk with empty directories.
 */
export const DEFAULT_MAX_OPEN_UPLOADS = 1000;
/** The gateway's default expiry of an untouched multipart upload (`--multipart-expiry-hours`): 7 days. */
export const DEFAULT_UPLOAD_EXPIRY_MS = 7 * 24 * 3600 * 1000;

const UploadSchema = z
  .object({
    bucket: z.string(),
    key: z.string(),
    contentType: z.string().optional(),
    metadata: z.record(z.string(), z.string()),
    retention: RetentionSchema.optional(),
    legalHold: z.boolean().optional(),
    initiated: z.number(),
  })
  .strict();
export type UploadInfo = z.infer<typeof UploadSchema>;

const PartSchema = z
  .object({ file: z.string(), etag: z.string(), size: z.number(), modified: z.number() })
  .strict();
export interface PartInfo {
  readonly number: number;
  readonly etag: string;
  readonly size: number;
  readonly modified: number;
}

const partRecord = (n: number) => `part-${String(n).padStart(5, '0')}.json`;
const UPLOAD_ID = /^[0-9a-f]{32}$/;

/** S3's ETag of a multipart object: the MD5 of the parts' binary MD5s, then `-` and the part count. */
export function multipartEtag(partEtags: readonly string[]): string {
  const md5 = createHash('md5');
  for (const etag of partEtags) md5.update(Buffer.from(etag, 'hex'));
  return `${md5.digest('hex')}-${partEtags.length}`;
}

/** A part number as S3 sends it in a query: 1–10,000. */
export function parsePartNumber(text: string | undefined): number {
  const n = text !== undefined && /^\d{1,5}$/.test(text) ? Number(text) : Number.NaN;
  if (!(n >= 1 && n <= MAX_PARTS))
    throw s3Error('InvalidArgument', `partNumber: expected 1–${MAX_PARTS}, got ${JSON.stringify(text)}`);
  return n;
}

/**
 * The parts a CompleteMultipartUpload names, in its order: `<Part><PartNumber>n</PartNumber><ETag>"md5"</ETag></Part>`.
 * @throws MalformedXML, InvalidPartOrder (not strictly ascending) or InvalidPart (an ETag that is no MD5)
 */
export function completeParts(xml: string): { number: number; etag: string }[] {
  if (!/^\s*(<\?xml[^>]*\?>\s*)?<CompleteMultipartUpload[\s>]/.test(xml))
    throw s3Error('MalformedXML', 'expected a <CompleteMultipartUpload> document');
  const parts = [...xml.matchAll(/<Part>([\s\S]*?)<\/Part>/g)].map((m) => {
    const number = /<PartNumber>\s*(\d{1,5})\s*<\/PartNumber>/.exec(m[1]!)?.[1];
    const etag = /<ETag>\s*(?:&quot;|")?([^<&"]*)(?:&quot;|")?\s*<\/ETag>/.exec(m[1]!)?.[1];
    if (number === undefined || etag === undefined)
      throw s3Error('MalformedXML', 'every <Part> needs a <PartNumber> and an <ETag>');
    if (!/^[0-9a-f]{32}$/i.test(etag))
      throw s3Error(
        'InvalidPart',
        `part ${number}: ${JSON.stringify(etag)} is not an ETag this gateway gave`,
      );
    return { number: Number(number), etag: etag.toLowerCase() };
  });
  if (parts.length === 0 || parts.length > MAX_PARTS)
    throw s3Error('MalformedXML', `expected 1–${MAX_PARTS} parts, got ${parts.length}`);
  for (let i = 1; i < parts.length; i++) {
    if (parts[i]!.number <= parts[i - 1]!.number) {
      throw s3Error(
        'InvalidPartOrder',
        `parts must be listed in ascending order of number: ${parts[i]!.number} comes after ${parts[i - 1]!.number}`,
      );
    }
  }
  return parts;
}

export interface UploadStoreOptions {
  /**
   * The most bytes the parts of all open uploads may hold together (default: no bound). A part that would pass it is
   * refused with QUOTA_EXCEEDED before its file is made (its length known up front) or as soon as its bytes pass it.
   */
  readonly maxStagedBytes?: number;
  /**
   * The most uploads open at once (default: no bound). A CreateMultipartUpload past it is refused with QUOTA_EXCEEDED,
   * after expired uploads made what room they could: each open upload is a directory and entries in memory, whatever
   * its parts hold.
   */
  readonly maxOpenUploads?: number;
  /**
   * Uploads with no part written (none being written either) and no `touch` (ListParts, Complete) for `afterMs` are
   * aborted: at start, by `sweepExpired`, and when a request reaches one (then NoSuchUpload). `clock` must be the one
   * whose times `create`/`writePart`/`touch` are given.
   */
  readonly expiry?: { readonly afterMs: number; readonly clock: Clock };
}

export interface UploadStore {
  create(info: Omit<UploadInfo, 'initiated'>, now: number): Promise<string>;
  /** @throws NoSuchUpload when `uploadId` is not an upload of `bucket`/`key` */
  info(uploadId: string, bucket: string, key: string): Promise<UploadInfo>;
  /**
   * Stores a part from `bytes`; the part exists only once its `md5()` is known and the stream ended cleanly. `size`,
   * when known up front, is checked against the staging bound before anything is written.
   * @throws NoSuchUpload, QUOTA_EXCEEDED (S3 QuotaExceeded) when the part would pass `maxStagedBytes`
   */
  writePart(
    uploadId: string,
    number: number,
    bytes: AsyncIterable<Uint8Array>,
    md5: () => string,
    now: number,
    size?: number,
  ): Promise<PartInfo>;
  /** Records a use of the upload that writes no part (ListParts, Complete): it keeps the upload from expiring. */
  touch(uploadId: string, now: number): Promise<void>;
  parts(uploadId: string): Promise<PartInfo[]>;
  /** The bytes of the listed parts, one after another, read from disk as they are consumed. */
  read(uploadId: string, numbers: readonly number[]): AsyncIterable<Uint8Array>;
  remove(uploadId: string): Promise<void>;
  /** Every open upload with its id, in no particular order. */
  uploads(): Promise<(UploadInfo & { uploadId: string })[]>;
  /** The bytes the parts of all open uploads hold (what `maxStagedBytes` bounds). */
  stagedBytes(): number;
  /** Aborts the uploads untouched for the expiry time; resolves with their ids (none without `expiry`). */
  sweepExpired(): Promise<string[]>;
}

/**
 * The uploads under `dir`. Leftovers of a gateway killed mid-part (temporary and unreferenced part files) go at once;
 * then what stays is counted from the files (the bytes staged, each upload's last use) and uploads that expired while
 * the gateway was down are removed.
 */
export function diskUploadStore(dir: string, random: Random, options: UploadStoreOptions = {}): UploadStore {
  makePrivateDir(dir);
  const maxStaged = options.maxStagedBytes ?? Number.POSITIVE_INFINITY;
  const maxOpen = options.maxOpenUploads ?? Number.POSITIVE_INFINITY;
  /** Uploads being created: counted against `maxOpen` before their directory exists, so creations at once cannot pass it. */
  let creating = 0;
  const expiry = options.expiry;
  /** Each open upload's committed parts, number → bytes on disk; an upload is open while it has an entry here. */
  const sizes = new Map<string, Map<number, number>>();
  /** Each open upload's last use (its creation, a part written or begun, a `touch`), in `expiry.clock`'s time. */
  const lastUse = new Map<string, number>();
  /** Bytes of committed parts, and bytes reserved by parts being written (checked against `maxStaged` together). */
  let committed = 0;
  let inflight = 0;
  /** Per upload and part number, the commit of a part and the removal of the one it replaced, one at a time. */
  const commits = new Map<string, Promise<unknown>>();
  const expired = (last: number) => expiry !== undefined && expiry.clock.now() - last >= expiry.afterMs;
  /** Uploads with a part being written: never expired under it, however slow it is. */
  const writing = new Map<string, number>();
  const idle = (uploadId: string) =>
    !writing.has(uploadId) && expired(lastUse.get(uploadId) ?? Number.NEGATIVE_INFINITY);

  for (const id of readdirSync(dir)) {
    const at = join(dir, id);
    sweep(at);
    if (!UPLOAD_ID.test(id)) continue;
    const found = scan(at);
    // An upload.json that does not parse was cut short by a kill inside `create`, before its id was answered.
    if (found === undefined || expired(found.lastUse)) {
      rmSync(at, { recursive: true, force: true });
      continue;
    }
    sizes.set(id, found.sizes);
    lastUse.set(id, found.lastUse);
    for (const bytes of found.sizes.values()) committed += bytes;
  }

  const uploadDir = (uploadId: string) => {
    if (!UPLOAD_ID.test(uploadId)) throw noSuchUpload(uploadId);
    return join(dir, uploadId);
  };
  const noSuchUpload = (uploadId: string) =>
    s3Error(
      'NoSuchUpload',
      `there is no multipart upload ${JSON.stringify(uploadId.slice(0, 64))}; it may have been completed or aborted${expiry === undefined ? '' : `, or aborted by the gateway after ${hours(expiry.afterMs)} untouched`}`,
    );
  const used = (uploadId: string, now: number) => {
    if (lastUse.has(uploadId)) lastUse.set(uploadId, Math.max(lastUse.get(uploadId)!, now));
  };

  async function readInfo(uploadId: string): Promise<UploadInfo> {
    const at = uploadDir(uploadId);
    const last = lastUse.get(uploadId);
    if (last === undefined) throw noSuchUpload(uploadId);
    if (idle(uploadId)) {
      await remove(uploadId);
      throw noSuchUpload(uploadId);
    }
    const text = await readFile(join(at, 'upload.json'), 'utf8').catch(() => undefined);
    if (text === undefined) throw noSuchUpload(uploadId);
    return UploadSchema.parse(JSON.parse(text));
  }

  async function partOf(uploadId: string, number: number) {
    const text = await readFile(join(uploadDir(uploadId), partRecord(number)), 'utf8').catch(() => undefined);
    return text === undefined ? undefined : PartSchema.parse(JSON.parse(text));
  }

  /** Runs `work` after every earlier `work` of the same `key` settled. */
  function serial<T>(key: string, work: () => Promise<T>): Promise<T> {
    const run = (commits.get(key) ?? Promise.resolve()).then(work, work);
    const settled = run.catch(() => undefined);
    commits.set(key, settled);
    void settled.then(() => {
      if (commits.get(key) === settled) commits.delete(key);
    });
    return run;
  }

  /**
   * The upload is gone for every request and for the bound at once, its files after: counted after the `rm`, a
   * request (or the test) could see the files gone and the bytes still staged, and two removals racing (a sweep and a
   * request that found the upload expired) would both subtract its bytes.
   */
  async function remove(uploadId: string) {
    const at = uploadDir(uploadId);
    for (const bytes of sizes.get(uploadId)?.values() ?? []) committed -= bytes;
    sizes.delete(uploadId);
    lastUse.delete(uploadId);
    await rm(at, { recursive: true, force: true });
  }

  return {
    async create(info, now) {
      if (sizes.size + creating >= maxOpen) {
        // Expired uploads make room first (the periodic sweep may not have come by yet).
        for (const id of [...lastUse.keys()].filter(idle)) await remove(id);
        const open = sizes.size + creating;
        if (open >= maxOpen) {
          throw new AilinkError(
            'QUOTA_EXCEEDED',
            `no more multipart uploads fit this gateway: ${open} are open and the limit is ${maxOpen}; complete or abort open multipart uploads (ListMultipartUploads lists them${expiry === undefined ? '' : `; the gateway aborts those untouched for ${hours(expiry.afterMs)}`}), or raise the gateway's --multipart-uploads-max`,
            { details: { s3: 'QuotaExceeded', open, limit: maxOpen } },
          );
        }
      }
      creating++;
      try {
        const uploadId = toHex(random(16));
        const at = uploadDir(uploadId);
        await mkdir(at, { mode: 0o700 });
        await writeFile(join(at, 'upload.json'), JSON.stringify({ ...info, initiated: now }), {
          mode: 0o600,
        });
        sizes.set(uploadId, new Map());
        lastUse.set(uploadId, now);
        return uploadId;
      } finally {
        creating--;
      }
    },
    async info(uploadId, bucket, key) {
      const info = await readInfo(uploadId);
      if (info.bucket !== bucket || info.key !== key) throw noSuchUpload(uploadId);
      return info;
    },
    async writePart(uploadId, number, bytes, md5, now, expected) {
      await readInfo(uploadId);
      // A part under way is a use, and its upload does not expire under it however slow it is.
      used(uploadId, now);
      writing.set(uploadId, (writing.get(uploadId) ?? 0) + 1);
      const at = uploadDir(uploadId);
      let reserved = 0;
      /** Reserves `more` bytes of staging for this part, or refuses it when they would pass the bound. */
      const reserve = (more: number, known: boolean) => {
        const replaced = sizes.get(uploadId)?.get(number) ?? 0;
        const staged = committed + inflight - reserved;
        if (staged - replaced + reserved + more <= maxStaged) {
          inflight += more;
          reserved += more;
          return;
        }
        const partBytes = reserved + more;
        throw new AilinkError(
          'QUOTA_EXCEEDED',
          `part ${number} of ${known ? '' : 'at least '}${formatBytes(partBytes)} (${partBytes} B) does not fit this gateway's multipart staging: ${formatBytes(staged)} (${staged} B) is staged for open uploads${replaced > 0 ? ` (${replaced} B of it the part this one replaces)` : ''}, and the limit is ${formatBytes(maxStaged)} (${maxStaged} B); complete or abort open multipart uploads (ListMultipartUploads lists them${expiry === undefined ? '' : `; the gateway aborts those untouched for ${hours(expiry.afterMs)}`}), or raise the gateway's --multipart-staging-max`,
          { details: { s3: 'QuotaExceeded', staged, limit: maxStaged, part: partBytes } },
        );
      };
      // A length known up front is refused before a file is made; otherwise as soon as the bytes pass the bound.
      try {
        if (expected !== undefined) reserve(expected, true);
        const file = `part-${String(number).padStart(5, '0')}-${toHex(random(8))}.bin`;
        let size = 0;
        try {
          await pipeline(
            async function* () {
              for await (const piece of bytes) {
                size += piece.byteLength;
                if (size > reserved) reserve(size - reserved, false);
                yield piece;
              }
            },
            createWriteStream(join(at, file), { mode: 0o600, flags: 'wx' }),
          );
        } catch (err) {
          await rm(join(at, file), { force: true });
          throw sizes.has(uploadId) ? err : noSuchUpload(uploadId);
        }
        const part = { file, etag: md5(), size, modified: now };
        return await serial(`${uploadId}/${number}`, async () => {
          const record = join(at, partRecord(number));
          const previous = await partOf(uploadId, number);
          // The record is the commit point: written aside, then renamed over any earlier upload of this part number.
          try {
            await writeFile(`${record}.tmp`, JSON.stringify(part), { mode: 0o600 });
            await rename(`${record}.tmp`, record);
          } catch (err) {
            await rm(join(at, file), { force: true });
            throw sizes.has(uploadId) ? err : noSuchUpload(uploadId);
          }
          const open = sizes.get(uploadId);
          if (open !== undefined) {
            committed += size - (open.get(number) ?? 0);
            open.set(number, size);
            // Used until the part was in (a slow part must not leave its upload about to expire).
            used(uploadId, Math.max(now, expiry?.clock.now() ?? now));
          }
          if (previous !== undefined && previous.file !== file)
            await rm(join(at, previous.file), { force: true });
          return { number, etag: part.etag, size, modified: now };
        });
      } finally {
        inflight -= reserved;
        const left = writing.get(uploadId)! - 1;
        if (left === 0) writing.delete(uploadId);
        else writing.set(uploadId, left);
      }
    },
    async touch(uploadId, now) {
      await readInfo(uploadId);
      used(uploadId, now);
      // Kept on disk, so a restart does not count the upload idle since its last part.
      await writeFile(join(uploadDir(uploadId), 'touched'), String(lastUse.get(uploadId) ?? now), {
        mode: 0o600,
      });
    },
    async parts(uploadId) {
      await readInfo(uploadId);
      const names = (await readdir(uploadDir(uploadId))).filter((n) => /^part-\d{5}\.json$/.test(n)).sort();
      const out: PartInfo[] = [];
      for (const name of names) {
        const number = Number(name.slice(5, 10));
        const part = await partOf(uploadId, number);
        if (part !== undefined)
          out.push({ number, etag: part.etag, size: part.size, modified: part.modified });
      }
      return out;
    },
    async *read(uploadId, numbers) {
      for (const number of numbers) {
        const part = await partOf(uploadId, number);
        if (part === undefined) throw s3Error('InvalidPart', `part ${number} was not uploaded`);
        yield* createReadStream(join(uploadDir(uploadId), part.file), { highWaterMark: 1024 * 1024 });
      }
    },
    remove,
    async uploads() {
      const out: (UploadInfo & { uploadId: string })[] = [];
      for (const uploadId of [...lastUse.keys()]) {
        const info = await readInfo(uploadId).catch(() => undefined);
        if (info !== undefined) out.push({ ...info, uploadId });
      }
      return out;
    },
    stagedBytes: () => committed,
    async sweepExpired() {
      const gone = [...lastUse.keys()].filter(idle);
      for (const id of gone) await remove(id);
      return gone;
    },
  };
}

const hours = (ms: number) => (ms % 3_600_000 === 0 ? `${ms / 3_600_000} h` : `${Math.round(ms / 1000)} s`);

/**
 * What an upload's directory holds after `sweep`: its committed parts' sizes (of their files, as the disk has them)
 * and its last use (creation, a part's commit, a `touch`); undefined when its upload.json does not parse.
 */
function scan(at: string): { sizes: Map<number, number>; lastUse: number } | undefined {
  let last: number;
  try {
    last = UploadSchema.parse(JSON.parse(readFileSync(join(at, 'upload.json'), 'utf8'))).initiated;
  } catch {
    return undefined;
  }
  const sizes = new Map<number, number>();
  for (const name of readdirSync(at)) {
    if (name === 'touched') {
      const t = Number(readFileSync(join(at, name), 'utf8'));
      if (Number.isFinite(t)) last = Math.max(last, t);
    }
    if (!/^part-\d{5}\.json$/.test(name)) continue;
    try {
      const part = PartSchema.parse(JSON.parse(readFileSync(join(at, name), 'utf8')));
      sizes.set(Number(name.slice(5, 10)), statSync(join(at, part.file)).size);
      last = Math.max(last, part.modified);
    } catch {
      // sweep removed records that do not parse; a part whose file is gone holds no bytes
    }
  }
  return { sizes, lastUse: last };
}

/** Removes what a killed gateway left in an upload's directory: part files no record names, records half written. */
function sweep(at: string): void {
  let names: string[];
  try {
    names = readdirSync(at);
  } catch {
    return;
  }
  if (!names.includes('upload.json')) {
    rmSync(at, { recursive: true, force: true });
    return;
  }
  const named = new Set<string>();
  for (const name of names) {
    if (!/^part-\d{5}\.json$/.test(name)) continue;
    try {
      named.add(PartSchema.parse(JSON.parse(readFileSync(join(at, name), 'utf8'))).file);
    } catch {
      rmSync(join(at, name), { force: true });
    }
  }
  for (const name of names) {
    if (name.endsWith('.tmp') || (name.endsWith('.bin') && !named.has(name)))
      rmSync(join(at, name), { force: true });
  }
}
