import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, readdirSync, readFileSync, rmSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { z } from 'zod';
import { RetentionSchema } from '../chain/index.ts';
import { toHex } from '../shared/bytes.ts';
import type { Random } from '../shared/clock.ts';
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
 * Layout: `<dir>/<uploadId>/upload.json`, and per part `part-<n>.json` naming its bytes `part-<n>-<random>.bin`.
 */

/** S3's limits: parts 1–10,000, each at most 5 GiB and all but the last at least 5 MiB. */
export const MAX_PARTS = 10_000;
export const MIN_PART_BYTES = 5 * 1024 * 1024;
export const MAX_PART_BYTES = 5 * 1024 ** 3;

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

export interface UploadStore {
  create(info: Omit<UploadInfo, 'initiated'>, now: number): Promise<string>;
  /** @throws NoSuchUpload when `uploadId` is not an upload of `bucket`/`key` */
  info(uploadId: string, bucket: string, key: string): Promise<UploadInfo>;
  /** Stores a part from `bytes`; the part exists only once its `md5()` is known and the stream ended cleanly. */
  writePart(
    uploadId: string,
    number: number,
    bytes: AsyncIterable<Uint8Array>,
    md5: () => string,
    now: number,
  ): Promise<PartInfo>;
  parts(uploadId: string): Promise<PartInfo[]>;
  /** The bytes of the listed parts, one after another, read from disk as they are consumed. */
  read(uploadId: string, numbers: readonly number[]): AsyncIterable<Uint8Array>;
  remove(uploadId: string): Promise<void>;
  /** Every open upload with its id, in no particular order. */
  uploads(): Promise<(UploadInfo & { uploadId: string })[]>;
}

/** The uploads under `dir`. Leftovers of a gateway killed mid-part (temporary and unreferenced part files) go at once. */
export function diskUploadStore(dir: string, random: Random): UploadStore {
  makePrivateDir(dir);
  for (const id of readdirSync(dir)) sweep(join(dir, id));

  const uploadDir = (uploadId: string) => {
    if (!UPLOAD_ID.test(uploadId)) throw noSuchUpload(uploadId);
    return join(dir, uploadId);
  };
  const noSuchUpload = (uploadId: string) =>
    s3Error(
      'NoSuchUpload',
      `there is no multipart upload ${JSON.stringify(uploadId.slice(0, 64))}; it may have been completed or aborted`,
    );

  async function readInfo(uploadId: string): Promise<UploadInfo> {
    const text = await readFile(join(uploadDir(uploadId), 'upload.json'), 'utf8').catch(() => undefined);
    if (text === undefined) throw noSuchUpload(uploadId);
    return UploadSchema.parse(JSON.parse(text));
  }

  async function partOf(uploadId: string, number: number) {
    const text = await readFile(join(uploadDir(uploadId), partRecord(number)), 'utf8').catch(() => undefined);
    return text === undefined ? undefined : PartSchema.parse(JSON.parse(text));
  }

  return {
    async create(info, now) {
      const uploadId = toHex(random(16));
      const at = uploadDir(uploadId);
      await mkdir(at, { mode: 0o700 });
      await writeFile(join(at, 'upload.json'), JSON.stringify({ ...info, initiated: now }), { mode: 0o600 });
      return uploadId;
    },
    async info(uploadId, bucket, key) {
      const info = await readInfo(uploadId);
      if (info.bucket !== bucket || info.key !== key) throw noSuchUpload(uploadId);
      return info;
    },
    async writePart(uploadId, number, bytes, md5, now) {
      await readInfo(uploadId);
      const at = uploadDir(uploadId);
      const file = `part-${String(number).padStart(5, '0')}-${toHex(random(8))}.bin`;
      let size = 0;
      try {
        await pipeline(
          async function* () {
            for await (const piece of bytes) {
              size += piece.byteLength;
              yield piece;
            }
          },
          createWriteStream(join(at, file), { mode: 0o600, flags: 'wx' }),
        );
      } catch (err) {
        await rm(join(at, file), { force: true });
        throw err;
      }
      const part = { file, etag: md5(), size, modified: now };
      const record = join(at, partRecord(number));
      const previous = await partOf(uploadId, number);
      // The record is the commit point: written aside, then renamed over any earlier upload of this part number.
      await writeFile(`${record}.tmp`, JSON.stringify(part), { mode: 0o600 });
      await rename(`${record}.tmp`, record);
      if (previous !== undefined && previous.file !== file)
        await rm(join(at, previous.file), { force: true });
      return { number, etag: part.etag, size, modified: now };
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
    async remove(uploadId) {
      await rm(uploadDir(uploadId), { recursive: true, force: true });
    },
    async uploads() {
      const out: (UploadInfo & { uploadId: string })[] = [];
      for (const uploadId of await readdir(dir)) {
        if (!UPLOAD_ID.test(uploadId)) continue;
        const info = await readInfo(uploadId).catch(() => undefined);
        if (info !== undefined) out.push({ ...info, uploadId });
      }
      return out;
    },
  };
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
