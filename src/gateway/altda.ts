import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { auditRecordOf, fileOf, type Indexer, taggedFor } from '../chain/index.ts';
import { AilinkError, hasCode, httpStatusOf } from '../shared/errors.ts';
import type { StorageClient } from '../storage/index.ts';
import {
  type Commitment,
  checkKeccak,
  commitmentHex,
  encodeCommitment,
  fidCommitment,
  parseCommitment,
} from './altda-commitment.ts';
import type { Namespace } from './namespace.ts';

/**
 * The OP Stack Alt-DA DA-server API (ethereum-optimism/specs, specs/experimental/alt-da.md) under `/altda`, so an
 * op-node or op-batcher configured with `--altda.da-server=http://HOST:PORT/altda` uses the storage network as its
 * DA layer through its own DA client, unchanged:
 *
 * - `POST /altda/put/0x00<keccak256>`: stores the body after checking its keccak256 (type-0 commitments).
 * - `POST /altda/put`: stores the body, answers the raw bytes `0x01 ‖ 0x41 ‖ fid` (a generic commitment).
 * - `GET /altda/get/0x…`: the bytes (200), 404 for an unknown commitment, 400 for a malformed one.
 * - `GET /altda/evidence/0x…`: JSON: the fid, the block it became Active in, its miners and their audit records.
 *
 * Blobs are public (stored unencrypted) and bounded (`maxBlobBytes`). A type-0 blob is filed under
 * `<bucket>/keccak256/<hash>` of the gateway's account on chain, so any gateway of the account resolves it; a
 * type-1 commitment names the fid itself, so any gateway resolves it, whoever stored it.
 */

export interface AltDaDeps {
  readonly storage: Pick<StorageClient, 'put' | 'get'>;
  readonly namespace: Pick<Namespace, 'bucket' | 'createBucket' | 'object' | 'deleteObject'>;
  readonly indexer: Pick<Indexer, 'state' | 'sync' | 'height'>;
  /** The largest blob a put takes and a get serves (default 16 MiB). Larger puts → 413 before anything is stored. */
  readonly maxBlobBytes?: number;
  /** The account's bucket that files type-0 blobs (default "altda", created on first use). */
  readonly bucket?: string;
  /**
   * The remote addresses puts are taken from (default loopback only: 127.0.0.1 and ::1); "*" takes any. DA clients
   * send no credentials, and every put spends the gateway account's storage: bind or list only the batcher's host.
   */
  readonly putFrom?: readonly string[];
  /** When set, puts must also carry `Authorization: Bearer <token>` (for a proxy in front; DAClient sends none). */
  readonly putToken?: string;
  readonly deadlines?: Partial<AltDaDeadlines>;
  /** Failures the client is told only "internal error" about. */
  readonly log?: (line: string) => void;
}

export interface AltDaDeadlines {
  /** Receiving a put's body. */
  readonly bodyMs: number;
  /** Storing a blob: every fragment placed and the declaration in the index. */
  readonly putMs: number;
  /** Fetching a blob. */
  readonly getMs: number;
  /** A look-up in the chain's index (and a bucket's creation). */
  readonly lookupMs: number;
}

export const ALTDA_PREFIX = '/altda';
export const DEFAULT_MAX_BLOB_BYTES = 16 * 1024 * 1024;
export const DEFAULT_ALTDA_DEADLINES: AltDaDeadlines = Object.freeze({
  bodyMs: 60_000,
  putMs: 180_000,
  getMs: 120_000,
  lookupMs: 60_000,
});
const LOOPBACK = ['127.0.0.1', '::1'];
const OCTETS = 'application/octet-stream';

/** The key a type-0 blob is filed under in the DA bucket. */
export const keccakKey = (hash: string) => `keccak256/${hash}`;

/** `::ffff:1.2.3.4` (an IPv4 client of a dual-stack socket) compares as `1.2.3.4`. */
const plainAddress = (address: string) => address.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');

/** Whether a put from `address` is allowed by `putFrom`. */
export function putAllowed(address: string | undefined, putFrom: readonly string[]): boolean {
  if (putFrom.includes('*')) return true;
  return address !== undefined && putFrom.map(plainAddress).includes(plainAddress(address));
}

/**
 * Reads a body of at most `maxBytes` within `deadlineMs`. A declared Content-Length over the bound fails before a
 * byte is read. It reads with listeners rather than by iterating, so a failure leaves the socket open for the
 * error answer (destroying a request destroys its socket).
 * @throws DATA_TOO_LARGE, TIMEOUT, INVALID_INPUT (the client went away)
 */
export function readBoundedBody(
  raw: IncomingMessage,
  maxBytes: number,
  deadlineMs: number,
): Promise<Uint8Array> {
  const tooLarge = () =>
    new AilinkError('DATA_TOO_LARGE', `the blob exceeds this gateway's limit of ${maxBytes} bytes`, {
      details: { maxBytes },
    });
  const declared = raw.headers['content-length'];
  if (declared !== undefined && /^\d+$/.test(declared) && Number(declared) > maxBytes) {
    return Promise.reject(tooLarge());
  }
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let total = 0;
    const settle = (err: AilinkError | undefined) => {
      clearTimeout(timer);
      raw.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose);
      if (err === undefined) return resolve(new Uint8Array(Buffer.concat(parts, total)));
      raw.pause();
      reject(err);
    };
    const onData = (chunk: Buffer) => {
      total += chunk.byteLength;
      if (total > maxBytes) settle(tooLarge());
      else parts.push(chunk);
    };
    const onEnd = () => settle(undefined);
    const onError = (err: Error) =>
      settle(new AilinkError('INVALID_INPUT', `the body could not be read: ${err.message}`, { cause: err }));
    const onClose = () => {
      if (!raw.complete) settle(new AilinkError('INVALID_INPUT', 'the client closed the request mid-body'));
    };
    const timer = setTimeout(
      () => settle(new AilinkError('TIMEOUT', `the body did not arrive within ${deadlineMs} ms`)),
      deadlineMs,
    );
    raw.on('data', onData).on('end', onEnd).on('error', onError).on('close', onClose);
    raw.resume();
  });
}

/** Runs `step` with an abort signal, failing with TIMEOUT once `ms` have passed even if the step ignores it. */
async function within<T>(ms: number, what: string, step: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      controller.abort();
      reject(new AilinkError('TIMEOUT', `${what} did not finish within ${ms} ms`));
    }, ms);
  });
  try {
    return await Promise.race([step(controller.signal), expired]);
  } finally {
    clearTimeout(timer);
  }
}

async function collect(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const piece of stream) parts.push(piece);
  return Buffer.concat(parts);
}

/** What the evidence endpoint answers. */
export interface AltDaEvidence {
  readonly commitment: string;
  readonly fid: string;
  readonly owner: string;
  readonly size: number;
  /** The block that declared it, and the one it became Active in (all columns reported by their miners). */
  readonly declaredAt: number;
  readonly activeAt: number | null;
  /** The index's height when this was read. */
  readonly height: number;
  /** Where its type-0 commitment is filed (`bucket/key`), for type-0 blobs. */
  readonly filedAs?: string;
  readonly columns: readonly {
    readonly index: number;
    readonly miner: string | null;
    /** Tagged by a verifier: only tagged columns are challenged by audits. */
    readonly tagged: boolean;
    /** An open restoral order: the column is being rebuilt elsewhere. */
    readonly restoral: boolean;
  }[];
  /**
   * Each miner's audit record. The chain keeps totals per miner (over everything it holds), not a history per
   * file: `passes` and `misses` are those totals, and `lastPassSinceActive` says whether its latest audit outcome
   * is a pass in or after the block the blob became Active.
   */
  readonly miners: readonly {
    readonly miner: string;
    readonly columns: readonly number[];
    readonly passes: number;
    readonly misses: number;
    readonly consecutiveMisses: number;
    readonly lastOutcome: { readonly block: number; readonly outcome: 'pass' | 'miss' } | null;
    readonly lastPassSinceActive: boolean;
  }[];
}

export function registerAltDa(app: FastifyInstance, deps: AltDaDeps): void {
  const maxBlobBytes = deps.maxBlobBytes ?? DEFAULT_MAX_BLOB_BYTES;
  const bucket = deps.bucket ?? 'altda';
  const putFrom = deps.putFrom ?? LOOPBACK;
  const deadlines = { ...DEFAULT_ALTDA_DEADLINES, ...deps.deadlines };
  const notFound = (c: Commitment) =>
    new AilinkError('NOT_FOUND', `no blob is stored for commitment ${commitmentHex(c)}`);

  const fail = (request: FastifyRequest, reply: FastifyReply, err: unknown) => {
    const known = hasCode(err) ? err : undefined;
    if (known === undefined)
      deps.log?.(`altda ${request.method} ${request.url} failed: ${(err as Error)?.stack ?? String(err)}`);
    const status = known === undefined ? 500 : httpStatusOf(known.code);
    // A body left unread (refused before or while reading it) is not drained: the connection closes after the answer.
    if (!request.raw.complete) reply.header('connection', 'close');
    const body =
      known === undefined || status >= 500
        ? {
            code: known?.code ?? 'INTERNAL',
            message: known === undefined ? 'the gateway failed; see its log' : known.message,
          }
        : known.toJSON();
    return reply.code(status).header('content-type', 'application/json').send(JSON.stringify(body));
  };

  function checkPutAllowed(request: FastifyRequest): void {
    if (!putAllowed(request.socket.remoteAddress, putFrom)) {
      throw new AilinkError(
        'AUTH_NOT_AUTHORISED',
        `puts are taken only from ${putFrom.join(', ')}, not from ${request.socket.remoteAddress}`,
      );
    }
    if (deps.putToken !== undefined) {
      const given = request.headers.authorization;
      if (given === undefined)
        throw new AilinkError('AUTH_MISSING', 'a put needs Authorization: Bearer <token>');
      const digest = (text: string) => createHash('sha256').update(text).digest();
      // Compared as digests, in constant time: how long it takes says nothing about the token.
      if (!timingSafeEqual(digest(given), digest(`Bearer ${deps.putToken}`))) {
        throw new AilinkError('AUTH_NOT_AUTHORISED', 'the bearer token is not the one this gateway takes');
      }
    }
  }

  async function body(request: FastifyRequest): Promise<Uint8Array> {
    const bytes = await readBoundedBody(request.raw, maxBlobBytes, deadlines.bodyMs);
    // op-alt-da's client never sends an empty blob; an empty one is a mistake, not data.
    if (bytes.byteLength === 0)
      throw new AilinkError('INVALID_INPUT', 'expected a non-empty body (the blob)');
    return bytes;
  }

  /**
   * The DA bucket, created on first use. Looked up on every put rather than remembered: it may be deleted through S3
   * once empty. A creation by another put or gateway in between is fine.
   */
  const ensureBucket = () =>
    within(deadlines.lookupMs, `creating bucket ${bucket}`, async () => {
      if ((await deps.namespace.bucket(bucket)) !== undefined) return;
      await deps.namespace.createBucket(bucket).catch((err: unknown) => {
        if (!(hasCode(err) && err.details?.s3 === 'BucketAlreadyOwnedByYou')) throw err;
      });
    });

  /** The fid a commitment names, when a public blob is stored for it. */
  async function resolve(c: Commitment): Promise<string> {
    const fid = await within(deadlines.lookupMs, 'the commitment look-up', async (signal) => {
      if (c.type === 'keccak256') return (await deps.namespace.object(bucket, keccakKey(c.hash)))?.fid;
      await deps.indexer.sync(undefined, { signal });
      return c.fid;
    });
    const file = fid === undefined ? undefined : fileOf(deps.indexer.state, fid);
    // Never opens a sealed object: the endpoint is unauthenticated and the gateway holds the account's keys.
    if (fid === undefined || file === undefined || file.state !== 'Active' || file.encryption !== null) {
      throw notFound(c);
    }
    return fid;
  }

  async function store(bytes: Uint8Array, filed: { hash: string } | undefined): Promise<string> {
    const md5 = createHash('md5').update(bytes).digest('hex');
    const result = await within(deadlines.putMs, 'storing the blob', (signal) =>
      deps.storage.put(bytes, {
        encrypt: false,
        size: bytes.byteLength,
        name: filed === undefined ? 'altda-blob' : `keccak256-${filed.hash}`,
        signal,
        ...(filed === undefined
          ? {}
          : { entry: { bucket, key: keccakKey(filed.hash), contentType: OCTETS, etag: md5 } }),
      }),
    );
    return result.fid;
  }

  async function putKeccak(c: Extract<Commitment, { type: 'keccak256' }>, bytes: Uint8Array): Promise<void> {
    checkKeccak(c, bytes);
    await ensureBucket();
    const key = keccakKey(c.hash);
    const before = await within(deadlines.lookupMs, 'the commitment look-up', () =>
      deps.namespace.object(bucket, key),
    );
    const kept = before === undefined ? undefined : fileOf(deps.indexer.state, before.fid);
    // Already stored (a batcher retrying, or another gateway of the account): nothing to add.
    if (kept?.encryption === null && kept.size === bytes.byteLength) return;
    const fid = await store(bytes, { hash: c.hash });
    const now = await within(deadlines.lookupMs, 'the commitment look-up', () =>
      deps.namespace.object(bucket, key),
    );
    if (now?.fid !== fid) {
      // The account already stored these exact bytes unencrypted (e.g. by a generic put): the chain files a fid
      // once, so the keccak key could not be added to it.
      throw new AilinkError(
        'OBJECT_TAKEN',
        `these bytes are already stored by this account as ${fid} without the key ${bucket}/${key}; get them by the generic commitment ${commitmentHex(fidCommitment(fid))}`,
        { details: { fid } },
      );
    }
    // Something else was filed under the key (an S3 upload of other bytes): the key names the blob now.
    if (before !== undefined && before.fid !== fid) {
      await deps.namespace
        .deleteObject(before.fid)
        .catch((err: unknown) =>
          deps.log?.(`altda: the replaced ${before.fid} was not deleted: ${String(err)}`),
        );
    }
  }

  async function fetchBlob(c: Commitment): Promise<Buffer> {
    const fid = await resolve(c);
    const bytes = await within(deadlines.getMs, 'fetching the blob', (signal) =>
      collect(deps.storage.get(fid, { signal, maxBytes: maxBlobBytes })),
    );
    // The storage client checked every byte against the fid; a type-0 blob is checked against its keccak too, since
    // anyone with the account's S3 key could have filed other bytes under its key.
    if (c.type === 'keccak256') {
      try {
        checkKeccak(c, bytes);
      } catch (err) {
        throw new AilinkError(
          'CODEC_HASH_MISMATCH',
          `the object filed for ${commitmentHex(c)} does not hash to it; it is not served`,
          { cause: err },
        );
      }
    }
    return bytes;
  }

  async function evidence(c: Commitment): Promise<AltDaEvidence> {
    const fid = await resolve(c);
    const state = deps.indexer.state;
    const file = fileOf(state, fid)!;
    const activeAt = file.activeAt ?? Number.POSITIVE_INFINITY;
    const columns = file.placements.map((miner, index) => ({
      index,
      miner,
      tagged: miner !== null && taggedFor(state, fid, index) === miner,
      restoral: file.orders[index] !== undefined,
    }));
    const byMiner = new Map<string, number[]>();
    for (const { miner, index } of columns) {
      if (miner !== null) byMiner.set(miner, [...(byMiner.get(miner) ?? []), index]);
    }
    return {
      commitment: commitmentHex(c),
      fid,
      owner: file.owner,
      size: file.size,
      declaredAt: file.declaredAt,
      activeAt: file.activeAt,
      height: deps.indexer.height(),
      ...(c.type === 'keccak256' ? { filedAs: `${bucket}/${keccakKey(c.hash)}` } : {}),
      columns,
      miners: [...byMiner].map(([miner, held]) => {
        const record = auditRecordOf(state, miner);
        return {
          miner,
          columns: held,
          passes: record.passes,
          misses: record.misses,
          consecutiveMisses: record.consecutiveMisses,
          lastOutcome: record.lastOutcome,
          lastPassSinceActive: record.lastOutcome?.outcome === 'pass' && record.lastOutcome.block >= activeAt,
        };
      }),
    };
  }

  const commitmentOf = (request: FastifyRequest) =>
    parseCommitment((request.params as Record<string, string | undefined>)['*'] ?? '');

  const handle =
    (run: (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>) =>
    async (request: FastifyRequest, reply: FastifyReply) => {
      try {
        return await run(request, reply);
      } catch (err) {
        return fail(request, reply, err);
      }
    };

  const putGeneric = async (request: FastifyRequest, reply: FastifyReply) => {
    checkPutAllowed(request);
    const fid = await store(await body(request), undefined);
    // Raw bytes, not hex: op-alt-da's client decodes the answer's body as the commitment's bytes.
    return reply
      .code(200)
      .header('content-type', OCTETS)
      .send(Buffer.from(encodeCommitment(fidCommitment(fid))));
  };

  app.register(
    async (scope) => {
      // Bodies are read here, bounded, whatever parsers the app has.
      scope.removeAllContentTypeParsers();
      scope.addContentTypeParser('*', (_request, _payload, done) => done(null, undefined));

      scope.post('/put', handle(putGeneric));
      scope.post(
        '/put/*',
        handle(async (request, reply) => {
          checkPutAllowed(request);
          if ((request.params as Record<string, string | undefined>)['*'] === '')
            return putGeneric(request, reply);
          const c = commitmentOf(request);
          if (c.type !== 'keccak256') {
            throw new AilinkError(
              'INVALID_INPUT',
              `POST /put/<commitment> takes keccak256 commitments (type 0x00); for an AI-LINK commitment, POST /put without one`,
            );
          }
          await putKeccak(c, await body(request));
          return reply.code(200).send();
        }),
      );
      scope.get(
        '/get/*',
        handle(async (request, reply) => {
          const bytes = await fetchBlob(commitmentOf(request));
          return reply.code(200).header('content-type', OCTETS).send(bytes);
        }),
      );
      // Any other method or path under /altda is a DA client's mistake, not an S3 request for a bucket "altda".
      scope.route({
        method: ['GET', 'HEAD', 'PUT', 'DELETE', 'POST'],
        url: '/*',
        handler: handle(async (request) => {
          throw new AilinkError(
            'NOT_FOUND',
            `the Alt-DA API has no ${request.method} ${request.url.split('?')[0]}`,
          );
        }),
      });
      scope.get(
        '/evidence/*',
        handle(async (request, reply) => {
          const found = await evidence(commitmentOf(request));
          return reply.code(200).header('content-type', 'application/json').send(JSON.stringify(found));
        }),
      );
    },
    { prefix: ALTDA_PREFIX },
  );
}
