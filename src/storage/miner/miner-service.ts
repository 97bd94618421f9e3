import { transferReceiptMessage } from '../../chain/index.ts';
import type { ByteChannel, Host } from '../../p2p/index.ts';
import type { Account } from '../../shared/account.ts';
import { toHex } from '../../shared/bytes.ts';
import { AilinkError } from '../../shared/errors.ts';
import { zeroFragmentHash } from '../object/index.ts';
import {
  bodyDigest,
  encodeJson,
  FRAGMENT_PROTOCOL,
  type FragmentRequest,
  FragmentRequestSchema,
  MAX_FRAME_BYTES,
  type MinerLog,
  parseRequestFrame,
  type RequestGuard,
  toAilinkError,
  writeErrorReply,
} from '../protocol/index.ts';
import type { FragmentStore } from './fragment-store.ts';

export interface MinerServiceOptions {
  /** Deadline for one whole request, body included. */
  readonly requestDeadlineMs: number;
  readonly maxInboundStreams?: number;
}

/** What a miner does on chain for a client: sign transfer receipts, and claim and complete restoral orders. */
export interface MinerChainActions {
  /** The miner's chain account, which signs receipts. */
  readonly account: Pick<Account, 'address' | 'sign'>;
  /** Claims / completes a restoral order with the miner's account; resolves to the block it landed in. */
  readonly restoral?: {
    claim(fid: string, index: number): Promise<number>;
    complete(fid: string, index: number): Promise<number>;
  };
}

const ZERO_CHUNK = 1024 * 1024;

/**
 * Serves the fragment protocol from a fragment store. Every request is validated, signed-checked and answered with
 * a clear code; a failing request leaves the store as it was.
 */
export async function startMinerService(
  deps: { host: Host; store: FragmentStore; guard: RequestGuard; log: MinerLog; chain?: MinerChainActions },
  options: MinerServiceOptions,
): Promise<void> {
  const { host, store, guard, log } = deps;

  /** Every fragment of the column must be here, whole, before the miner vouches for it. */
  function checkHeld(request: { fid: string; index: number; fragments: readonly string[] }): void {
    for (const h of request.fragments) {
      if (store.has(h) === null) {
        throw new AilinkError(
          'FRAGMENT_NOT_FOUND',
          `column ${request.index} of ${request.fid}: fragment ${h} is not held here; put it first`,
        );
      }
    }
  }

  function chainActions(): MinerChainActions {
    if (deps.chain === undefined) {
      throw new AilinkError(
        'MINER_PROTOCOL',
        'this miner runs without a chain: start it with --chain ENDPOINT',
      );
    }
    return deps.chain;
  }

  async function serve(channel: ByteChannel): Promise<void> {
    const signal = AbortSignal.timeout(options.requestDeadlineMs);
    let request: FragmentRequest | undefined;
    try {
      request = parseRequestFrame(await readRequestFrame(channel, signal), FragmentRequestSchema);
      if (request.op === 'receipt' || request.op === 'restore') {
        const expected =
          request.op === 'receipt'
            ? bodyDigest([request.fid, request.deal, request.index, request.fragments])
            : bodyDigest([request.stage, request.fid, request.index, request.fragments]);
        if (request.fragment !== expected) {
          throw new AilinkError(
            'INVALID_INPUT',
            `expected fragment = ${expected} (the digest of the request), got ${request.fragment}`,
          );
        }
      }
      const account = await guard(
        {
          op: request.op,
          fragment: request.fragment,
          size: request.op === 'put' ? request.size : 0,
          audience: request.audience,
          ...(request.op === 'put' && request.deal !== undefined ? { deal: request.deal } : {}),
        },
        request.auth,
      );
      switch (request.op) {
        case 'put':
          await servePut(channel, request, account, signal);
          break;
        case 'get': {
          const bytes = await store.read(request.fragment);
          await channel.writeFrame(encodeJson({ ok: true, size: bytes.byteLength }), { signal });
          await channel.write(bytes, { signal });
          break;
        }
        case 'has':
          await channel.writeFrame(
            encodeJson({ ok: true, size: store.has(request.fragment)?.size ?? null }),
            { signal },
          );
          break;
        case 'delete': {
          const { deleted } = await store.release(request.fragment, account);
          await channel.writeFrame(encodeJson({ ok: true, deleted }), { signal });
          break;
        }
        case 'receipt': {
          const { account: miner } = chainActions();
          checkHeld(request);
          const message = transferReceiptMessage(request.fid, request.deal, request.index, request.fragments);
          const signature = toHex(miner.sign(message));
          log.info('receipt', { fid: request.fid, index: request.index, for: account });
          await channel.writeFrame(encodeJson({ ok: true, miner: miner.address, signature }), { signal });
          break;
        }
        case 'restore': {
          const { restoral } = chainActions();
          if (restoral === undefined) {
            throw new AilinkError('MINER_PROTOCOL', 'this miner takes no restoral orders');
          }
          if (request.stage === 'complete') checkHeld(request);
          const block = await (request.stage === 'claim' ? restoral.claim : restoral.complete)(
            request.fid,
            request.index,
          );
          log.info(`restoral-${request.stage}`, { fid: request.fid, index: request.index, block });
          await channel.writeFrame(encodeJson({ ok: true, block }), { signal });
          break;
        }
      }
      await channel.closeWrite({ signal });
    } catch (err) {
      const e = toAilinkError(err, signal);
      log.warn('request-refused', {
        op: request?.op,
        fragment: request?.fragment,
        peer: channel.remotePeer,
        code: e.code,
        message: e.message,
      });
      await writeErrorReply(channel, e);
    }
  }

  async function servePut(
    channel: ByteChannel,
    request: Extract<FragmentRequest, { op: 'put' }>,
    account: string,
    signal: AbortSignal,
  ): Promise<void> {
    const prepared = await store.prepare(request.fragment, request.size, account, request.deal);
    if (prepared.state === 'exists') {
      await channel.writeFrame(encodeJson({ ok: true, send: false }), { signal });
      await channel.writeFrame(encodeJson({ ok: true, stored: true }), { signal });
      return;
    }
    const { writer } = prepared;
    try {
      const isZero = request.fragment === zeroFragmentHash(request.size);
      await channel.writeFrame(encodeJson({ ok: true, send: !isZero }), { signal });
      if (isZero) {
        for (let left = request.size; left > 0; left -= ZERO_CHUNK) {
          await writer.write(new Uint8Array(Math.min(ZERO_CHUNK, left)));
        }
      } else {
        let left = request.size;
        while (left > 0) {
          const chunk = await channel.readSome({ signal });
          if (chunk === null) break;
          if (chunk.byteLength > left) {
            throw new AilinkError('FRAGMENT_SIZE_MISMATCH', `expected ${request.size} bytes, got more`);
          }
          await writer.write(chunk);
          left -= chunk.byteLength;
        }
      }
      await writer.commit();
    } finally {
      await writer.abort();
    }
    log.info('stored', { fragment: request.fragment, size: request.size, owner: account });
    await channel.writeFrame(encodeJson({ ok: true, stored: true }), { signal });
  }

  await host.handle(FRAGMENT_PROTOCOL, serve, { maxInboundStreams: options.maxInboundStreams ?? 64 });
}

async function readRequestFrame(channel: ByteChannel, signal: AbortSignal): Promise<Uint8Array> {
  try {
    return await channel.readFrame(MAX_FRAME_BYTES, { signal });
  } catch (err) {
    if (signal.aborted) throw err;
    throw new AilinkError('MINER_PROTOCOL', `expected a request frame: ${(err as Error).message}`, {
      cause: err,
    });
  }
}
