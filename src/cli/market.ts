import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { finished } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import type { ChainClient, Indexer } from '../chain/index.ts';
import { openSession } from '../node/index.ts';
import { type Account, isAddress } from '../shared/account.ts';
import { systemClock, systemRandom } from '../shared/clock.ts';
import { AilinkError } from '../shared/errors.ts';
import {
  createGrantService,
  type GrantPass,
  type MarketClient,
  type StorageClient,
} from '../storage/index.ts';
import { NETWORK_OPTIONS, type NetworkValues, networkAndKey } from './network-flags.ts';

/**
 * The data-marketplace commands (issue 7). Each is a function of parsed options and a connected context, plus an
 * argv front (`objectCommand`, `modelAccessLogCommand`) that parses and connects, for src/cli/main.ts to route to:
 *
 *   ailink object terms FID [--readers ADDR,ADDR…] [--price PLANCK] [--json]
 *                          the owner (or its operator) sets who reads FID for free and what everyone else pays per
 *                          request; without --price the object is not for sale (listed readers only); 0 = free
 *   ailink object request FID [--max-price PLANCK] [--out FILE] [--wait-ms 120000] [--json]
 *                          ask for FID's data key (paying up to --max-price into escrow in the same extrinsic) and
 *                          wait until the owner's key service releases it; with --out, also read the object
 *   ailink object serve-keys [--for OWNER,…]
 *                          the owner's key service: release the data key to every accepted request, until Ctrl-C;
 *                          --for: also for these owners, which named this account their operator (its consent)
 *   ailink model access-log --fid FID [--json]
 *                          every retrieval of FID on chain: reader, block, time, amount paid, key released
 *
 * All take --chain WS or --network FILE (default ./ailink-data/network.json) and --key FILE (default: the network's
 * operator key).
 * Refusals exit with ACCESS_DENIED and the chain's reason.
 */

/** Where commands print: results on `out` (stdout), progress and notes on `note` (stderr). */
export interface MarketIo {
  out(line: string): void;
  note(line: string): void;
}

const consoleIo: MarketIo = { out: (l) => console.log(l), note: (l) => console.error(l) };

/** A connected market client with the storage client and chain index behind it. */
export interface MarketContext {
  readonly account: Account;
  readonly chain: ChainClient;
  readonly indexer: Indexer;
  readonly storage: StorageClient;
  readonly market: MarketClient;
  close(): Promise<void>;
}

/**
 * Connects as `--key` to the network (`--chain WS` or `--network FILE`), as `ailink store` does, keeping the chain
 * client and index at hand: the marketplace lives on chain.
 * @throws NETWORK_FILE_INVALID, KEY_FILE_INVALID, CHAIN_UNREACHABLE
 */
export async function openMarketContext(values: NetworkValues): Promise<MarketContext> {
  const { session: config, account } = await networkAndKey(values);
  // The same index file `ailink store` keeps for this account: what one command indexed, the next reuses.
  const session = await openSession(config, account, 'client', { clock: systemClock, random: systemRandom });
  return session;
}

const FID_RE = /^[0-9a-f]{64}$/;
const PLANCK_RE = /^(0|[1-9][0-9]{0,38})$/;

function fidArg(value: string | undefined, usage: string): string {
  if (value === undefined) throw new AilinkError('INVALID_INPUT', `expected a FID: ${usage}`);
  if (!FID_RE.test(value))
    throw new AilinkError(
      'INVALID_INPUT',
      `expected a fid of 64 lowercase hex characters, got ${JSON.stringify(value)}`,
    );
  return value;
}

function planckArg(value: string, name: string): bigint {
  if (!PLANCK_RE.test(value)) {
    throw new AilinkError(
      'INVALID_INPUT',
      `--${name}: expected a whole number of planck, got ${JSON.stringify(value)}`,
    );
  }
  return BigInt(value);
}

/** `--readers a,b --readers c` → [a, b, c], each an SS58 address. */
function addressesArg(values: readonly string[] | undefined, flag: string): string[] {
  const addresses = (values ?? [])
    .flatMap((v) => v.split(','))
    .map((r) => r.trim())
    .filter((r) => r !== '');
  for (const r of addresses) {
    if (!isAddress(r))
      throw new AilinkError('INVALID_INPUT', `--${flag}: expected SS58 addresses, got ${JSON.stringify(r)}`);
  }
  return addresses;
}

/** `ailink object terms`: sets the access terms of an object. */
export async function objectTerms(
  ctx: Pick<MarketContext, 'market'>,
  options: { fid: string; readers: readonly string[]; price: bigint | null; json?: boolean },
  io: MarketIo = consoleIo,
): Promise<{ fid: string; readers: string[]; price: string | null; block: number }> {
  const { block } = await ctx.market.setTerms(options.fid, {
    readers: options.readers,
    price: options.price,
  });
  const result = {
    fid: options.fid,
    readers: [...new Set(options.readers)],
    price: options.price?.toString() ?? null,
    block,
  };
  if (options.json) io.out(JSON.stringify(result));
  else {
    io.out(
      `terms of ${options.fid} set in block ${block}: ${result.readers.length} reader(s) free, ${result.price === null ? 'not for sale to others' : result.price === '0' ? 'free for anyone' : `${result.price} planck per request for others`}`,
    );
  }
  return result;
}

/** `ailink object request`: asks for an object's key, waits for it, and with `out` reads the object into a file. */
export async function objectRequest(
  ctx: Pick<MarketContext, 'market' | 'storage'>,
  options: {
    fid: string;
    maxPrice?: bigint;
    out?: string;
    deadlineMs?: number;
    json?: boolean;
    signal?: AbortSignal;
  },
  io: MarketIo = consoleIo,
): Promise<{ fid: string; via: string; block: number | null; paid: string; bytes?: number }> {
  const ticket = await ctx.market.requestAccess(options.fid, {
    ...(options.maxPrice === undefined ? {} : { maxPrice: options.maxPrice }),
    ...(options.deadlineMs === undefined ? {} : { deadlineMs: options.deadlineMs }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  });
  const result: { fid: string; via: string; block: number | null; paid: string; bytes?: number } = {
    fid: ticket.fid,
    via: ticket.via,
    block: ticket.block,
    paid: ticket.paid.toString(),
  };
  io.note(
    ticket.block === null
      ? `no request needed: ${ticket.via === 'plain' ? 'the object is not encrypted' : 'the key is wrapped for you'}`
      : `request accepted in block ${ticket.block}${ticket.paid > 0n ? `, paid ${ticket.paid} planck` : ''}; the key is ${ticket.via === 'grant' ? 'released to you' : 'wrapped for you'}`,
  );
  if (options.out !== undefined)
    result.bytes = await readInto(ctx.storage, options.fid, options.out, options.signal);
  if (options.json) io.out(JSON.stringify(result));
  else if (options.out !== undefined) io.out(`wrote ${result.bytes} bytes to ${options.out}`);
  else io.out(`ready: read it with \`ailink store get ${options.fid} --out FILE\``);
  return result;
}

async function readInto(
  storage: Pick<StorageClient, 'get'>,
  fid: string,
  path: string,
  signal?: AbortSignal,
) {
  const tmp = `${path}.part`;
  const out = createWriteStream(tmp);
  let bytes = 0;
  try {
    for await (const piece of storage.get(fid, signal === undefined ? {} : { signal })) {
      bytes += piece.byteLength;
      if (!out.write(piece)) await new Promise<void>((r) => out.once('drain', () => r()));
    }
    out.end();
    await finished(out);
    await rename(tmp, path);
  } catch (err) {
    out.destroy();
    await finished(out).catch(() => {});
    await rm(tmp, { force: true });
    throw err;
  }
  return bytes;
}

/** `ailink object serve-keys`: the owner's key service, until `signal` aborts. */
export async function serveKeys(
  ctx: Pick<MarketContext, 'chain' | 'indexer' | 'account'>,
  options: { signal: AbortSignal; pollMs?: number; actsFor?: readonly string[] },
  io: MarketIo = consoleIo,
): Promise<void> {
  const actsFor = options.actsFor ?? [];
  const service = createGrantService(
    { chain: ctx.chain, indexer: ctx.indexer, account: ctx.account, clock: systemClock },
    { actsFor, ...(options.pollMs === undefined ? {} : { pollMs: options.pollMs }) },
  );
  io.note(
    `releasing the data keys of objects ${ctx.account.address} owns${actsFor.length === 0 ? '' : ` or operates for ${actsFor.join(', ')}`} to accepted requests; Ctrl-C stops`,
  );
  const running = service.start((pass: GrantPass) => {
    for (const g of pass.granted) io.out(JSON.stringify({ event: 'granted', ...g }));
    for (const f of pass.failed) io.out(JSON.stringify({ event: 'not-granted', ...f }));
  });
  await new Promise<void>((res) => {
    if (options.signal.aborted) res();
    else options.signal.addEventListener('abort', () => res(), { once: true });
  });
  await running.stop();
}

/** `ailink model access-log`: the retrievals of an object. */
export async function modelAccessLog(
  ctx: Pick<MarketContext, 'market'>,
  options: { fid: string; json?: boolean },
  io: MarketIo = consoleIo,
) {
  const log = await ctx.market.accessLog(options.fid);
  const rows = log.map((r) => ({
    seq: r.seq,
    reader: r.reader,
    block: r.block,
    time: new Date(r.time).toISOString(),
    paid: r.paid.toString(),
    keyReleased: r.keyReleased,
  }));
  if (options.json) io.out(JSON.stringify(rows, null, 2));
  else if (rows.length === 0) io.out(`no retrievals of ${options.fid} on record`);
  else {
    for (const r of rows) {
      io.out(
        `${String(r.seq).padStart(4)}  block ${String(r.block).padStart(7)}  ${r.time}  ${r.reader}  paid ${r.paid}${r.keyReleased ? '' : '  (key not released yet)'}`,
      );
    }
  }
  return rows;
}

const common = { ...NETWORK_OPTIONS, json: { type: 'boolean' } } as const;

/** `ailink object terms|request|serve-keys …`: parses, connects, runs, closes. @throws INVALID_INPUT on bad usage */
export async function objectCommand(argv: readonly string[], io: MarketIo = consoleIo): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub === 'terms') {
    const { values, positionals } = parseArgs({
      args: rest,
      options: { ...common, readers: { type: 'string', multiple: true }, price: { type: 'string' } },
      allowPositionals: true,
    });
    const fid = fidArg(positionals[0], 'ailink object terms FID [--readers ADDR,…] [--price PLANCK]');
    const readers = addressesArg(values.readers, 'readers');
    const price = values.price === undefined ? null : planckArg(values.price, 'price');
    return withContext(values, (ctx) =>
      objectTerms(ctx, { fid, readers, price, json: values.json ?? false }, io),
    );
  }
  if (sub === 'request') {
    const { values, positionals } = parseArgs({
      args: rest,
      options: {
        ...common,
        'max-price': { type: 'string' },
        out: { type: 'string' },
        'wait-ms': { type: 'string' },
      },
      allowPositionals: true,
    });
    const fid = fidArg(positionals[0], 'ailink object request FID [--max-price PLANCK] [--out FILE]');
    const maxPrice = values['max-price'] === undefined ? 0n : planckArg(values['max-price'], 'max-price');
    const deadlineMs =
      values['wait-ms'] === undefined ? 120_000 : Number(planckArg(values['wait-ms'], 'wait-ms'));
    return withContext(values, (ctx) =>
      objectRequest(
        ctx,
        {
          fid,
          maxPrice,
          deadlineMs,
          json: values.json ?? false,
          ...(values.out === undefined ? {} : { out: values.out }),
        },
        io,
      ),
    );
  }
  if (sub === 'serve-keys') {
    const { values } = parseArgs({
      args: rest,
      options: { ...common, for: { type: 'string', multiple: true } },
    });
    const actsFor = addressesArg(values.for, 'for');
    const controller = new AbortController();
    const stop = () => controller.abort();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    try {
      return await withContext(values, (ctx) => serveKeys(ctx, { signal: controller.signal, actsFor }, io));
    } finally {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    }
  }
  throw new AilinkError(
    'INVALID_INPUT',
    `unknown object command ${JSON.stringify(sub)}: expected terms, request or serve-keys`,
  );
}

/** `ailink model access-log --fid FID [--json]`. @throws INVALID_INPUT on bad usage */
export async function modelAccessLogCommand(
  argv: readonly string[],
  io: MarketIo = consoleIo,
): Promise<void> {
  const { values, positionals } = parseArgs({
    args: [...argv],
    options: { ...common, fid: { type: 'string' } },
    allowPositionals: true,
  });
  const fid = fidArg(values.fid ?? positionals[0], 'ailink model access-log --fid FID [--json]');
  await withContext(values, (ctx) => modelAccessLog(ctx, { fid, json: values.json ?? false }, io));
}

async function withContext<T>(
  values: { network?: string | undefined; key?: string | undefined },
  run: (ctx: MarketContext) => Promise<T>,
): Promise<void> {
  const ctx = await openMarketContext(values);
  try {
    await run(ctx);
  } finally {
    await ctx.close();
  }
}
