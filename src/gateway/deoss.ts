import { createHash } from 'node:crypto';
import {
  createReadStream,
  existsSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { BucketNameSchema, type ObjectEntry, ObjectKeySchema } from '../chain/index.ts';
import type { Clock } from '../shared/clock.ts';
import { AilinkError, hasCode, httpStatusOf } from '../shared/errors.ts';
import { HASH_RE } from '../shared/fid.ts';
import { makePrivateDir } from '../shared/private-files.ts';
import type { StorageClient } from '../storage/index.ts';
import {
  type ChunkRange,
  checkChunk,
  checkDeossAuth,
  contentTypeOf,
  DEFAULT_MAX_LIFETIME_MS,
  errorAnswer,
  listAnswer,
  locationAnswer,
  metadataAnswer,
  okAnswer,
  parseContentRange,
} from './deoss-protocol.ts';
import { boundaryOf, parseMultipart } from './form-data.ts';
import type { Namespace, StoredFile } from './namespace.ts';
import { createReplayGuard } from './replay-guard.ts';
import { parseRange } from './s3-http.ts';

/**
 * The gateway's DeOSS API (issue 16 §2), under `/deoss` of the S3 app: what CESS's DeOSS gateway offers its users —
 * PUT /file (multipart, field "file"), GET /file/download|open|metadata|location/:fid, GET /file/list,
 * DELETE /file/:fid, PUT /resume/:name (Content-Range chunks) — over the same storage client and on-chain namespace as
 * the S3 API, so both see one namespace. Every request is signed by the gateway's own account with an expiring,
 * single-use message (deoss-protocol.ts); answers are DeOSS's `{ code, msg, data }` with the real HTTP status.
 */

export interface DeossDeps {
  readonly storage: Pick<StorageClient, 'put' | 'get'>;
  readonly namespace: Pick<Namespace, 'owner' | 'bucket' | 'file' | 'files' | 'deleteObject'>;
  readonly clock: Clock;
  /**
   * A directory of this gateway only: resumable uploads are staged in `<stateDir>/resume` (0700, files 0600) and the
   * messages used are kept in `<stateDir>/deoss-used-messages`; both survive a restart.
   */
  readonly stateDir: string;
  /** The largest object one upload takes (default 5 GiB). */
  readonly maxObjectBytes?: number;
  /** How far ahead a signed message may expire (default 5 min). */
  readonly maxMessageLifetimeMs?: number;
  /** The deadline of each chain read (default 60 s); chain writes carry the namespace's own. */
  readonly chainDeadlineMs?: number;
  /** Staged uploads untouched this long are removed when the API starts (default 7 days). */
  readonly resumeTtlMs?: number;
  /** Failures the client is told only "the gateway failed" about. */
  readonly log?: (line: string) => void;
}

const GiB = 1024 ** 3;
/** Form fields besides the file, and the multipart framing, on top of the object's bytes. */
const FORM_OVERHEAD = 64 * 1024;

/** A staged resumable upload, as `<id>.json` records it. */
const StagedSchema = z
  .object({
    name: z.string(),
    bucket: z.string().nullable(),
    total: z.number().int().nonnegative(),
    received: z.number().int().nonnegative(),
    contentType: z.string(),
  })
  .strict();
type Staged = z.infer<typeof StagedSchema>;

const header = (request: FastifyRequest, name: string): string | undefined => {
  const v = request.headers[name];
  return Array.isArray(v) ? v[0] : v;
};

/** A chain read that takes longer than `ms` fails with TIMEOUT instead of holding the request. */
async function withDeadline<T>(run: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new AilinkError('TIMEOUT', `${what} took longer than ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([run, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

function validFid(text: string): string {
  if (!HASH_RE.test(text))
    throw new AilinkError(
      'INVALID_INPUT',
      `fid: expected 64 lowercase hex characters, got ${JSON.stringify(text.slice(0, 80))}`,
    );
  return text;
}

function validBucket(text: string | undefined): string | undefined {
  if (text === undefined || text === '') return undefined;
  const parsed = BucketNameSchema.safeParse(text);
  if (!parsed.success)
    throw new AilinkError(
      'INVALID_INPUT',
      `Bucket ${JSON.stringify(text)}: ${parsed.error.issues[0]?.message}`,
    );
  return text;
}

/** An object's name: its key when filed in a bucket, so it must be a valid key then. */
function validName(text: string | undefined, bucket: string | undefined): string {
  let name = text ?? '';
  // DeOSS clients percent-encode non-ASCII names in the Filename header.
  if (name.includes('%')) {
    try {
      name = decodeURIComponent(name);
    } catch {
      // kept as sent
    }
  }
  if (name === '')
    throw new AilinkError(
      'INVALID_INPUT',
      'expected a file name (the Filename header or the form file name)',
    );
  if (Buffer.byteLength(name) > 255)
    throw new AilinkError(
      'INVALID_INPUT',
      `file name: expected at most 255 bytes, got ${Buffer.byteLength(name)}`,
    );
  if (bucket !== undefined) {
    const parsed = ObjectKeySchema.safeParse(name);
    if (!parsed.success)
      throw new AilinkError(
        'INVALID_INPUT',
        `file name ${JSON.stringify(name)} as a key: ${parsed.error.issues[0]?.message}`,
      );
  }
  return name;
}

/** A media type the chain accepts as an entry's (printable ASCII, ≤ 255), else the name's. */
function mediaType(sent: string | undefined, name: string): string {
  if (
    sent === undefined ||
    sent === '' ||
    sent === 'application/octet-stream' ||
    sent.length > 255 ||
    !/^[\x21-\x7e][\x20-\x7e]*$/.test(sent)
  )
    return contentTypeOf(name);
  return sent;
}

export function registerDeoss(app: FastifyInstance, deps: DeossDeps): void {
  const maxObjectBytes = deps.maxObjectBytes ?? 5 * GiB;
  const chainMs = deps.chainDeadlineMs ?? 60_000;
  const resumeDir = join(deps.stateDir, 'resume');
  makePrivateDir(resumeDir);
  sweepStaged(resumeDir, deps.clock.now() - (deps.resumeTtlMs ?? 7 * 24 * 3_600_000));
  const guard = createReplayGuard({ clock: deps.clock, file: join(deps.stateDir, 'deoss-used-messages') });
  /** Uploads a request is writing to now: a second writer of one upload would interleave its bytes. */
  const writing = new Set<string>();

  function authenticate(request: FastifyRequest): void {
    const auth = checkDeossAuth(
      {
        account: header(request, 'account'),
        message: header(request, 'message'),
        signature: header(request, 'signature'),
      },
      {
        now: deps.clock.now(),
        owner: deps.namespace.owner,
        maxLifetimeMs: deps.maxMessageLifetimeMs ?? DEFAULT_MAX_LIFETIME_MS,
      },
    );
    // Only after the signature: a stranger's garbage never takes room among the used messages.
    guard.use(auth);
  }

  const chain = <T>(run: Promise<T>, what: string) => withDeadline(run, chainMs, what);

  async function fileOrFail(fid: string): Promise<StoredFile> {
    const file = await chain(deps.namespace.file(fid), `reading file ${fid} from the chain`);
    if (file === undefined) throw new AilinkError('OBJECT_NOT_FOUND', `no file ${fid} is recorded on chain`);
    return file;
  }

  async function requireBucket(bucket: string | undefined): Promise<void> {
    if (bucket === undefined) return;
    if ((await chain(deps.namespace.bucket(bucket), `reading bucket ${bucket}`)) === undefined)
      throw new AilinkError('NOT_FOUND', `there is no bucket ${bucket}; create it first (S3 CreateBucket)`);
  }

  /**
   * Stores `bytes` (one storage put, sealed with the owner's keys), filed under `bucket`/`name` when a bucket is
   * given; a key that named another object names the new one once it is Active, and the chain deletes the old one
   * in that same call (as for S3).
   */
  async function store(
    bytes: AsyncIterable<Uint8Array>,
    md5: () => string,
    name: string,
    bucket: string | undefined,
    contentType: string,
    size?: number,
  ): Promise<string> {
    const entry = (): ObjectEntry => ({ bucket: bucket!, key: name, etag: md5(), contentType });
    const { fid } = await deps.storage.put(bytes, {
      name,
      // Told, a small object is coded in a segment of its own size (a form upload's size is not known up front).
      ...(size === undefined ? {} : { size }),
      ...(bucket === undefined ? {} : { entry }),
    });
    return fid;
  }

  /** The object's bytes, the first piece fetched before any header is sent: a refusal is still an answer. */
  async function objectStream(fid: string, range?: { start: number; end: number }): Promise<Readable> {
    const it = deps.storage.get(fid, range === undefined ? {} : { range })[Symbol.asyncIterator]();
    const first = await it.next();
    async function* rest(): AsyncGenerator<Uint8Array> {
      if (first.done) return;
      yield first.value;
      for (;;) {
        const r = await it.next();
        if (r.done) return;
        yield r.value;
      }
    }
    return Readable.from(rest(), { objectMode: false });
  }

  async function upload(request: FastifyRequest, reply: FastifyReply) {
    authenticate(request);
    const bucket = validBucket(header(request, 'bucket'));
    const length = header(request, 'content-length');
    if (length !== undefined && Number(length) > maxObjectBytes + FORM_OVERHEAD)
      throw new AilinkError(
        'UPLOAD_TOO_LARGE',
        `the body has ${length} bytes; this gateway takes objects of at most ${maxObjectBytes}`,
      );
    const boundary = boundaryOf(header(request, 'content-type'));
    await requireBucket(bucket);
    const parts = parseMultipart(request.raw, boundary)[Symbol.asyncIterator]();
    let file: Awaited<ReturnType<typeof parts.next>>['value'];
    for (;;) {
      const r = await parts.next();
      if (r.done) throw new AilinkError('INVALID_INPUT', 'expected a form field "file" holding the file');
      if (r.value.name === 'file') {
        file = r.value;
        break;
      }
    }
    const part = file!;
    const name = validName(header(request, 'filename') ?? part.filename, bucket);
    const hash = createHash('md5');
    let md5: string | undefined;
    async function* bytes(): AsyncGenerator<Uint8Array> {
      let n = 0;
      for await (const piece of part.body) {
        n += piece.length;
        if (n > maxObjectBytes)
          throw new AilinkError(
            'UPLOAD_TOO_LARGE',
            `the file is larger than this gateway's ${maxObjectBytes} bytes`,
          );
        hash.update(piece);
        yield piece;
      }
      // The rest of the form, read before the put declares anything: a body cut short or a second file fails it.
      for (;;) {
        const r = await parts.next();
        if (r.done) break;
        if (r.value.name === 'file')
          throw new AilinkError('INVALID_INPUT', 'expected one form field "file", got several');
      }
      md5 = hash.digest('hex');
    }
    const fid = await store(bytes(), () => md5!, name, bucket, mediaType(part.contentType, name));
    return reply.send(okAnswer({ fid }));
  }

  async function download(request: FastifyRequest<{ Params: { fid: string } }>, reply: FastifyReply) {
    authenticate(request);
    const file = await fileOrFail(validFid(request.params.fid));
    const body = await objectStream(file.fid);
    return reply
      .header('content-type', 'application/octet-stream')
      .header('content-length', file.size)
      .header(
        'content-disposition',
        `attachment; filename*=UTF-8''${encodeURIComponent(file.name ?? file.fid)}`,
      )
      .send(body);
  }

  async function openFile(request: FastifyRequest<{ Params: { fid: string } }>, reply: FastifyReply) {
    authenticate(request);
    // DeOSS takes the format as a suffix of the fid ("<fid>.mp4") or in the Format header.
    const [fidText, ext] = request.params.fid.split('.', 2) as [string, string | undefined];
    const file = await fileOrFail(validFid(fidText));
    const format = ext ?? header(request, 'format')?.replace(/^\./, '');
    const type = file.contentType ?? contentTypeOf(format === undefined ? file.name : `x.${format}`);
    // DeOSS reads "bytes=a-b" from a Content-Range request header; standard clients send Range.
    const rangeText = header(request, 'range') ?? header(request, 'content-range');
    const range = parseRange(rangeText?.startsWith('bytes=') ? rangeText : undefined, file.size);
    const body = await objectStream(file.fid, range);
    reply
      .header('content-type', type)
      .header('accept-ranges', 'bytes')
      .header('content-disposition', `inline; filename*=UTF-8''${encodeURIComponent(file.name ?? file.fid)}`)
      .header('content-length', range === undefined ? file.size : range.end - range.start + 1);
    if (range !== undefined)
      reply.code(206).header('content-range', `bytes ${range.start}-${range.end}/${file.size}`);
    return reply.send(body);
  }

  async function metadata(request: FastifyRequest<{ Params: { fid: string } }>, reply: FastifyReply) {
    authenticate(request);
    const file = await fileOrFail(validFid(request.params.fid));
    return reply.send(
      okAnswer(metadataAnswer({ ...file, contentType: file.contentType ?? contentTypeOf(file.name) })),
    );
  }

  async function location(request: FastifyRequest<{ Params: { fid: string } }>, reply: FastifyReply) {
    authenticate(request);
    const file = await fileOrFail(validFid(request.params.fid));
    return reply.send(okAnswer(locationAnswer(file.placements, file.segments)));
  }

  async function list(request: FastifyRequest<{ Querystring: Record<string, string> }>, reply: FastifyReply) {
    authenticate(request);
    const bucket = validBucket(header(request, 'bucket') ?? request.query.bucket ?? request.query.Bucket);
    const files = await chain(deps.namespace.files(), "reading the account's files");
    return reply.send(
      okAnswer(listAnswer(bucket === undefined ? files : files.filter((f) => f.bucket === bucket))),
    );
  }

  async function remove(request: FastifyRequest<{ Params: { fid: string } }>, reply: FastifyReply) {
    authenticate(request);
    const file = await fileOrFail(validFid(request.params.fid));
    if (file.owner !== deps.namespace.owner)
      throw new AilinkError(
        'AUTH_NOT_AUTHORISED',
        `${file.fid} belongs to ${file.owner}; only its owner deletes it`,
      );
    const { block } = await deps.namespace.deleteObject(file.fid);
    return reply.send(okAnswer({ fid: file.fid, block }));
  }

  async function resume(request: FastifyRequest<{ Params: { name: string } }>, reply: FastifyReply) {
    authenticate(request);
    const range = parseContentRange(header(request, 'content-range'));
    if (range.total > maxObjectBytes)
      throw new AilinkError(
        'UPLOAD_TOO_LARGE',
        `the upload is of ${range.total} bytes; this gateway takes at most ${maxObjectBytes}`,
      );
    const bucket = validBucket(header(request, 'bucket'));
    const name = validName(request.params.name, bucket);
    // One upload per (bucket, name): a chunk naming another total is a mismatch, not a second upload.
    const id = createHash('sha256')
      .update(`${bucket ?? ''}\n${name}`)
      .digest('hex')
      .slice(0, 40);
    if (writing.has(id))
      throw new AilinkError(
        'UPLOAD_BUSY',
        `another request is writing to the upload of ${JSON.stringify(name)}; wait for its answer`,
      );
    writing.add(id);
    try {
      return await resumeChunk(request, reply, { id, range, bucket, name });
    } finally {
      writing.delete(id);
    }
  }

  async function resumeChunk(
    request: FastifyRequest,
    reply: FastifyReply,
    at: { id: string; range: ChunkRange; bucket: string | undefined; name: string },
  ) {
    const { id, range, bucket, name } = at;
    const metaPath = join(resumeDir, `${id}.json`);
    const partPath = join(resumeDir, `${id}.part`);
    const staged = readStaged(metaPath);
    checkChunk(staged, range);
    if (staged === undefined) await requireBucket(bucket);
    const received = staged?.received ?? 0;
    const handle = await open(partPath, 'a+', 0o600);
    try {
      // Bytes past the committed offset are the remains of a chunk that failed: they go.
      await handle.truncate(received);
      const expected = range.end - range.start + 1;
      let got = 0;
      for await (const piece of request.raw as AsyncIterable<Buffer>) {
        if (got + piece.length > expected)
          throw new AilinkError(
            'INVALID_INPUT',
            `Content-Range ${range.start}-${range.end} announces ${expected} bytes; the body has more`,
          );
        await handle.write(piece, 0, piece.length, received + got);
        got += piece.length;
      }
      if (got !== expected)
        throw new AilinkError(
          'INVALID_INPUT',
          `Content-Range ${range.start}-${range.end} announces ${expected} bytes; the body has ${got}`,
        );
      await handle.datasync();
    } catch (err) {
      await handle.truncate(received).catch(() => {});
      throw err;
    } finally {
      await handle.close();
    }
    const contentType = staged?.contentType ?? mediaType(header(request, 'content-type'), name);
    if (range.end + 1 < range.total) {
      writeStaged(metaPath, {
        name,
        bucket: bucket ?? null,
        total: range.total,
        received: range.end + 1,
        contentType,
      });
      return reply
        .code(308)
        .header('range', `bytes=0-${range.end}`)
        .header('content-range', `bytes ${range.start}-${range.end}/${range.total}`)
        .send({ code: 308, msg: 'ok', data: { received: range.end + 1, total: range.total } });
    }
    // The last byte is here: the staged file becomes one object. Until the put succeeds nothing is committed, so a
    // failed put leaves the upload where it was and the client sends its last chunk again.
    const hash = createHash('md5');
    let md5: string | undefined;
    async function* bytes(): AsyncGenerator<Uint8Array> {
      for await (const piece of createReadStream(partPath) as AsyncIterable<Buffer>) {
        hash.update(piece);
        yield piece;
      }
      md5 = hash.digest('hex');
    }
    let fid: string;
    try {
      fid = await store(bytes(), () => md5!, name, bucket, contentType, range.total);
    } catch (err) {
      if (staged === undefined) rmSync(partPath, { force: true });
      else
        await open(partPath, 'r+').then(async (h) => {
          await h.truncate(received);
          await h.close();
        });
      throw err;
    }
    rmSync(metaPath, { force: true });
    rmSync(partPath, { force: true });
    return reply.send(okAnswer({ fid }));
  }

  const wrap =
    <R extends FastifyRequest>(handler: (request: R, reply: FastifyReply) => Promise<unknown>) =>
    async (request: R, reply: FastifyReply) => {
      try {
        return await handler(request, reply);
      } catch (err) {
        const known = hasCode(err) ? err : undefined;
        if (known === undefined)
          deps.log?.(`${request.method} ${request.url} failed: ${(err as Error)?.stack ?? String(err)}`);
        // A refused upload whose body was not read: the connection closes rather than drain a GB nobody wants.
        if (!request.raw.readableEnded && request.method === 'PUT') reply.header('connection', 'close');
        if (known === undefined)
          return reply.code(500).send({ code: 500, msg: 'the gateway failed; see its log', data: null });
        const size = known.details?.size;
        if (known.code === 'RANGE_NOT_SATISFIABLE' && typeof size === 'number')
          reply.header('content-range', `bytes */${size}`);
        const received = known.details?.received;
        if (known.code === 'UPLOAD_RANGE_MISMATCH' && typeof received === 'number' && received > 0)
          reply.header('range', `bytes=0-${received - 1}`);
        return reply.code(httpStatusOf(known.code)).send(errorAnswer(known.code, known.message));
      }
    };

  app.register(
    async (scope) => {
      scope.put('/file', wrap(upload));
      scope.get('/file/download/:fid', wrap(download));
      scope.get('/file/open/:fid', wrap(openFile));
      scope.get('/file/metadata/:fid', wrap(metadata));
      scope.get('/file/location/:fid', wrap(location));
      scope.get('/file/list', wrap(list));
      scope.delete('/file/:fid', wrap(remove));
      scope.put('/resume/:name', wrap(resume));
      // Any other path under /deoss is a DeOSS client's mistake, not an S3 key of a bucket "deoss": say so in JSON.
      scope.route({
        method: ['GET', 'HEAD', 'PUT', 'POST', 'DELETE'],
        url: '/*',
        handler: wrap(async (request) => {
          throw new AilinkError(
            'NOT_FOUND',
            `the DeOSS API has no ${request.method} ${request.url.split('?')[0]}`,
          );
        }),
      });
    },
    { prefix: '/deoss' },
  );
}

function readStaged(path: string): Staged | undefined {
  if (!existsSync(path)) return undefined;
  const parsed = StagedSchema.safeParse(JSON.parse(readFileSync(path, 'utf8')));
  if (!parsed.success)
    throw new AilinkError(
      'INVALID_INPUT',
      `${path} is not a staged upload record; remove it to start the upload again`,
    );
  return parsed.data;
}

/** Replaced whole (written aside, renamed over): a crash leaves the old record or the new, never half of one. */
function writeStaged(path: string, staged: Staged): void {
  const aside = `${path}.tmp`;
  writeFileSync(aside, JSON.stringify(staged), { mode: 0o600 });
  renameSync(aside, path);
}

/** Removes staged uploads nobody touched since `before` (ms). */
function sweepStaged(dir: string, before: number): void {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    try {
      if (statSync(path).mtimeMs < before) rmSync(path, { force: true });
    } catch {
      // gone meanwhile
    }
  }
}
