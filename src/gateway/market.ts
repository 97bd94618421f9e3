import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { entryOf, fileOf, grantOf, type Indexer, isOperatorOf, termsOf } from '../chain/index.ts';
import { toHex } from '../shared/bytes.ts';
import type { Clock, Random } from '../shared/clock.ts';
import { AilinkError, hasCode, httpStatusOf } from '../shared/errors.ts';
import { HASH_RE } from '../shared/fid.ts';
import type { MarketClient, StorageClient } from '../storage/index.ts';
import { checkBody } from './body.ts';
import {
  type BuyOptions,
  MARKET_PREFIX,
  marketS3Code,
  parseBuyQuery,
  parseJsonBody,
  refusalBeforePaying,
  renderMarketError,
  ShareBodySchema,
  TermsBodySchema,
  wantsXml,
} from './market-protocol.ts';
import type { S3Credentials } from './s3.ts';
import { header, parseQuery, parseRange, s3CodeOf } from './s3-http.ts';
import { type SigV4Auth, verifySigV4 } from './sigv4.ts';

/**
 * The gateway's marketplace API (issue 16 §5), under `/market` of the S3 app: the account's side of the data
 * marketplace (src/chain/pallets/market.ts) for tools that speak HTTP.
 *
 * Selling: `GET|PUT /objects/:fid/terms` (price and free readers), `GET /objects/:fid/retrievals` (the on-chain
 * retrieval log), `POST /objects/:fid/shares` (a named account reads free: the access list, and with its reader key the
 * data key at once). The gateway node runs the account's key service, which releases keys to accepted requests.
 * Buying: `POST /objects/:fid/purchase` and `GET /objects/:fid` (buy if needed, then the plaintext, Range supported):
 * this account asks the chain for another owner's object — paying at most `?max-price` into escrow in the same
 * extrinsic —, waits at most `?wait-ms` for the seller's key, then opens the object here. Without a key released on
 * chain nothing is served: the storage client cannot open the object, and the gateway refuses before paying when the
 * terms already say no.
 *
 * Every request is SigV4-signed with the gateway's S3 access key (service `s3`), bodies covered by their SHA-256:
 * whoever holds that key acts as the account (spends its money, shares its objects), as with the S3 API. Errors are
 * JSON `{ error, s3, message, details }`, or S3's XML with `Accept: application/xml`; statuses are AI-LINK's.
 */

export interface MarketApiDeps {
  /** This account's market client (the gateway's session). */
  readonly market: Pick<MarketClient, 'setTerms' | 'requestAccess' | 'accessLog' | 'share'>;
  readonly storage: Pick<StorageClient, 'get'>;
  /** The session's index of the chain: terms, grants and files are read from it. */
  readonly indexer: Pick<Indexer, 'state' | 'sync'>;
  readonly account: { readonly address: string; readonly readerKey: string };
  readonly credentials: S3Credentials;
  readonly region: string;
  readonly clock: Clock;
  readonly random: Random;
  /** The deadline of each chain read and write (default 60 s); a buy's wait for the key is the client's `wait-ms`. */
  readonly chainDeadlineMs?: number;
  /** Failures the client is told only "the gateway failed" about. */
  readonly log?: (line: string) => void;
}

/** JSON bodies (terms, shares) are small; a larger one is refused as it is read. */
const MAX_JSON_BYTES = 256 * 1024;

type FidRequest = FastifyRequest<{ Params: { fid: string } }>;

export function registerMarket(app: FastifyInstance, deps: MarketApiDeps): void {
  const chainMs = deps.chainDeadlineMs ?? 60_000;
  const me = deps.account.address;

  function authenticate(request: FastifyRequest): SigV4Auth {
    const at = request.url.indexOf('?');
    return verifySigV4(
      {
        method: request.method,
        path: at === -1 ? request.url : request.url.slice(0, at),
        query: parseQuery(at === -1 ? '' : request.url.slice(at + 1)),
        headers: request.headers as Record<string, string | string[] | undefined>,
      },
      {
        now: deps.clock.now(),
        region: deps.region,
        secretOf: (id) =>
          id === deps.credentials.accessKeyId ? deps.credentials.secretAccessKey : undefined,
      },
    );
  }

  const queryOf = (request: FastifyRequest) => {
    const at = request.url.indexOf('?');
    return parseQuery(at === -1 ? '' : request.url.slice(at + 1));
  };

  /**
   * A JSON body whose SHA-256 the signature covers: a body that spends money or shares an object is never taken
   * unsigned (UNSIGNED-PAYLOAD, as S3 allows for objects, is refused here).
   */
  async function signedJson(request: FastifyRequest, auth: SigV4Auth): Promise<string> {
    if (!/^[0-9a-f]{64}$/.test(auth.payloadHash))
      throw new AilinkError(
        'INVALID_INPUT',
        `x-amz-content-sha256: the marketplace takes only bodies whose SHA-256 is signed, got ${JSON.stringify(auth.payloadHash)}`,
      );
    const length = header(request, 'content-length');
    const body = checkBody(request.raw, {
      auth,
      maxBytes: MAX_JSON_BYTES,
      ...(length !== undefined && /^\d{1,16}$/.test(length) ? { length: Number(length) } : {}),
    });
    const parts: Uint8Array[] = [];
    for await (const piece of body.bytes) parts.push(piece);
    return Buffer.concat(parts).toString('utf8');
  }

  /** A chain read or write that takes longer than the deadline fails with TIMEOUT instead of holding the request. */
  async function withDeadline<T>(run: Promise<T>, what: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new AilinkError('TIMEOUT', `${what} took longer than ${chainMs} ms`)),
        chainMs,
      );
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

  async function fileOrFail(fid: string) {
    await withDeadline(deps.indexer.sync(), 'reading the chain');
    const file = fileOf(deps.indexer.state, fid);
    if (file === undefined)
      throw new AilinkError('OBJECT_NOT_FOUND', `no object ${fid} is recorded on chain`);
    return file;
  }

  const manages = (owner: string) => owner === me || isOperatorOf(deps.indexer.state, owner, me);

  /** Aborted when the client goes away: a buy stops waiting (its request stays open, so asking again pays nothing). */
  function clientGone(reply: FastifyReply): AbortSignal {
    const controller = new AbortController();
    reply.raw.once('close', () => {
      if (!reply.raw.writableFinished) controller.abort();
    });
    return controller.signal;
  }

  async function getTerms(request: FidRequest, reply: FastifyReply) {
    authenticate(request);
    const file = await fileOrFail(validFid(request.params.fid));
    const terms = termsOf(deps.indexer.state, file.fid);
    return reply.send({
      fid: file.fid,
      owner: file.owner,
      terms: terms === undefined ? null : { readers: terms.readers, price: terms.price, setAt: terms.setAt },
    });
  }

  async function putTerms(request: FidRequest, reply: FastifyReply) {
    const auth = authenticate(request);
    const fid = validFid(request.params.fid);
    const body = parseJsonBody(await signedJson(request, auth), TermsBodySchema);
    const file = await fileOrFail(fid);
    if (!manages(file.owner))
      throw new AilinkError(
        'ACCESS_DENIED',
        `${me} may not set the terms of ${fid}: only its owner ${file.owner} or an operator it authorised`,
        { details: { fid, owner: file.owner, reason: 'not-owner' } },
      );
    const readers = [...new Set(body.readers)];
    const before = termsOf(deps.indexer.state, fid);
    // Setting the terms in force is no change: answered as done (the chain would refuse it), so a PUT is idempotent.
    if (
      before !== undefined &&
      before.price === body.price &&
      before.readers.length === readers.length &&
      before.readers.every((r, i) => r === readers[i])
    ) {
      return reply.send({ fid, readers, price: body.price, block: before.setAt, changed: false });
    }
    const { block } = await withDeadline(
      deps.market.setTerms(
        fid,
        { readers, price: body.price === null ? null : BigInt(body.price) },
        { deadlineMs: chainMs },
      ),
      `setting the terms of ${fid}`,
    );
    return reply.send({ fid, readers, price: body.price, block, changed: true });
  }

  async function share(request: FidRequest, reply: FastifyReply) {
    const auth = authenticate(request);
    const fid = validFid(request.params.fid);
    const body = parseJsonBody(await signedJson(request, auth), ShareBodySchema);
    const result = await withDeadline(
      deps.market.share(
        fid,
        { address: body.reader, ...(body.readerKey === undefined ? {} : { readerKey: body.readerKey }) },
        { deadlineMs: chainMs },
      ),
      `sharing ${fid}`,
    );
    return reply.send({ ...result, reader: body.reader });
  }

  async function retrievals(request: FidRequest, reply: FastifyReply) {
    authenticate(request);
    const fid = validFid(request.params.fid);
    const log = await withDeadline(deps.market.accessLog(fid), `reading the retrievals of ${fid}`);
    return reply.send({
      fid,
      retrievals: log.map((r) => ({
        seq: r.seq,
        reader: r.reader,
        readerKey: r.readerKey,
        block: r.block,
        time: new Date(r.time).toISOString(),
        paid: r.paid.toString(),
        keyReleased: r.keyReleased,
      })),
    });
  }

  /**
   * Makes sure this account holds the object's data key: nothing to do for its own objects (or one wrapped for it, or
   * released to it already), else a `market.request` — paid when priced, up to `buy.maxPrice` — and the wait for the
   * seller's key service. Refused before anything is submitted when the terms already say no.
   * @throws OBJECT_NOT_FOUND, ACCESS_DENIED (with `details.reason`), TIMEOUT (the request stays open), ABORTED
   */
  async function acquire(fid: string, buy: BuyOptions, signal: AbortSignal) {
    const file = await fileOrFail(fid);
    const state = deps.indexer.state;
    const wrapped = file.encryption?.wraps.some((w) => w.recipient === deps.account.readerKey) ?? true;
    const released = grantOf(state, fid, me)?.wrap.recipient === deps.account.readerKey;
    const terms = termsOf(state, fid);
    // The owner reading its own object, or one unencrypted: no request, no retrieval record, no fee.
    if (file.encryption === null || (manages(file.owner) && wrapped)) {
      return {
        file,
        ticket: { fid, via: file.encryption === null ? 'plain' : 'wrap', block: null, paid: 0n },
      };
    }
    const refusal = refusalBeforePaying(
      { fid, owner: file.owner, manages: manages(file.owner), terms, me, holdsKey: wrapped || released },
      buy.maxPrice,
    );
    if (refusal !== undefined) throw refusal;
    const ticket = await deps.market.requestAccess(fid, {
      maxPrice: buy.maxPrice,
      deadlineMs: buy.waitMs,
      signal,
    });
    return { file, ticket };
  }

  async function purchase(request: FidRequest, reply: FastifyReply) {
    authenticate(request);
    const fid = validFid(request.params.fid);
    const buy = parseBuyQuery(queryOf(request));
    const { ticket } = await acquire(fid, buy, clientGone(reply));
    return reply.send({ ...ticket, paid: ticket.paid.toString() });
  }

  async function read(request: FidRequest, reply: FastifyReply) {
    authenticate(request);
    const fid = validFid(request.params.fid);
    const buy = parseBuyQuery(queryOf(request));
    const signal = clientGone(reply);
    // The range is checked before anything is paid: a 416 costs nothing.
    const size = (await fileOrFail(fid)).size;
    const range = parseRange(header(request, 'range'), size);
    const { file, ticket } = await acquire(fid, buy, signal);
    const it = deps.storage
      .get(fid, { signal, ...(range === undefined ? {} : { range }) })
      [Symbol.asyncIterator]();
    // The first piece is fetched (and the key used) before any header goes out: a refusal is still an answer.
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
    const entry = entryOf(deps.indexer.state, fid);
    reply
      .header('content-type', entry?.contentType ?? 'application/octet-stream')
      .header('accept-ranges', 'bytes')
      .header('content-length', range === undefined ? file.size : range.end - range.start + 1)
      .header('x-ailink-access', ticket.via)
      .header('x-ailink-paid', ticket.paid.toString());
    if (ticket.block !== null) reply.header('x-ailink-request-block', ticket.block);
    if (range !== undefined)
      reply.code(206).header('content-range', `bytes ${range.start}-${range.end}/${size}`);
    return reply.send(Readable.from(rest(), { objectMode: false }));
  }

  const requestId = () => toHex(deps.random(8)).toUpperCase();

  const wrap =
    <R extends FastifyRequest>(handler: (request: R, reply: FastifyReply) => Promise<unknown>) =>
    async (request: R, reply: FastifyReply) => {
      try {
        return await handler(request, reply);
      } catch (err) {
        const known = hasCode(err) ? err : undefined;
        if (known === undefined)
          deps.log?.(`${request.method} ${request.url} failed: ${(err as Error)?.stack ?? String(err)}`);
        if (!request.raw.readableEnded && request.method !== 'GET') reply.header('connection', 'close');
        const code = known?.code ?? 'INTERNAL';
        const s3 =
          known === undefined
            ? 'InternalError'
            : marketS3Code(code, known.details?.s3, () => s3CodeOf(known));
        const size = known?.details?.size;
        if (code === 'RANGE_NOT_SATISFIABLE' && typeof size === 'number')
          reply.header('content-range', `bytes */${size}`);
        const { contentType, body } = renderMarketError(
          {
            code,
            s3,
            message: known === undefined ? 'the gateway failed; see its log' : known.message,
            details: known?.details,
          },
          {
            xml: wantsXml(header(request, 'accept')),
            resource: request.url.split('?')[0]!,
            requestId: requestId(),
          },
        );
        const status = known === undefined ? 500 : httpStatusOf(known.code);
        return reply.code(status).header('content-type', contentType).send(body);
      }
    };

  app.register(
    async (scope) => {
      scope.get('/objects/:fid', wrap(read));
      scope.post('/objects/:fid/purchase', wrap(purchase));
      scope.get('/objects/:fid/terms', wrap(getTerms));
      scope.put('/objects/:fid/terms', wrap(putTerms));
      scope.post('/objects/:fid/shares', wrap(share));
      scope.get('/objects/:fid/retrievals', wrap(retrievals));
      // Any other path under /market is a mistake of a marketplace client, not an S3 key of a bucket "market".
      scope.route({
        method: ['GET', 'HEAD', 'PUT', 'POST', 'DELETE'],
        url: '/*',
        handler: wrap(async (request) => {
          throw new AilinkError(
            'NOT_FOUND',
            `the marketplace API has no ${request.method} ${request.url.split('?')[0]}`,
          );
        }),
      });
    },
    { prefix: MARKET_PREFIX },
  );
}
