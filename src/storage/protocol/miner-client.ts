import { setMaxListeners } from 'node:events';
import type { ByteChannel, Host, PeerRef } from '../../p2p/index.ts';
import type { Account } from '../../shared/account.ts';
import type { Clock, Random } from '../../shared/clock.ts';
import { AilinkError, hasCode } from '../../shared/errors.ts';
import type { FragmentBody } from '../object/index.ts';
import {
  bodyDigest,
  DeleteReplySchema,
  decodeReply,
  encodeJson,
  FRAGMENT_PROTOCOL,
  GetReplySchema,
  HasReplySchema,
  MAX_FRAME_BYTES,
  PutDoneSchema,
  PutReadySchema,
  ReceiptReplySchema,
  RestoreReplySchema,
} from './fragment-protocol.ts';
import { signRequest } from './request-auth.ts';

/** Talks the fragment protocol to miners, for one account. Every call has a deadline. */
export interface MinerClient {
  /**
   * Stores the fragment, sent whole or piece by piece (a parity column computed as it goes, `FragmentBody`); the
   * bytes are not sent when the miner already holds them or they are all zeros. `deal` names the upload it belongs to.
   */
  put(
    peer: PeerRef,
    hash: string,
    bytes: Uint8Array | FragmentBody,
    options?: CallOptions & { readonly deal?: string },
  ): Promise<void>;
  get(peer: PeerRef, hash: string, options?: CallOptions): Promise<Uint8Array>;
  has(peer: PeerRef, hash: string, options?: CallOptions): Promise<number | null>;
  delete(peer: PeerRef, hash: string, options?: CallOptions): Promise<boolean>;
  /** Asks the miner to sign a transfer receipt for the column it holds. */
  receipt(peer: PeerRef, column: ColumnRef & { deal: string }, options?: CallOptions): Promise<SignedReceipt>;
  /** Asks the miner to claim, then to complete, a restoral order on chain; resolves to the block. */
  restore(
    peer: PeerRef,
    stage: 'claim' | 'complete',
    column: ColumnRef,
    options?: CallOptions,
  ): Promise<number>;
}

export interface ColumnRef {
  readonly fid: string;
  readonly index: number;
  /** The column's fragment hashes, one per segment. */
  readonly fragments: readonly string[];
}

export interface SignedReceipt {
  readonly index: number;
  /** The miner's chain account. */
  readonly miner: string;
  readonly signature: string;
}

export interface CallOptions {
  readonly signal?: AbortSignal;
}

export interface MinerClientOptions {
  /** Deadline of one request, including the body. */
  readonly requestTimeoutMs: number;
  /** How long a signature stays valid (must be within the miners' limit). */
  readonly signatureTtlMs: number;
  /** Largest fragment this client will accept from a miner. */
  readonly maxFragmentSize: number;
}

export function createMinerClient(
  deps: { host: Host; account: Account; clock: Clock; random: Random },
  options: MinerClientOptions,
): MinerClient {
  async function call<T>(
    peer: PeerRef,
    op: 'put' | 'get' | 'has' | 'delete' | 'receipt' | 'restore',
    hash: string,
    size: number,
    callOptions: CallOptions,
    body: (channel: ByteChannel, signal: AbortSignal) => Promise<T>,
    extra: Record<string, unknown> = {},
  ): Promise<T> {
    const signal = callOptions.signal
      ? AbortSignal.any([callOptions.signal, AbortSignal.timeout(options.requestTimeoutMs)])
      : AbortSignal.timeout(options.requestTimeoutMs);
    // libp2p hangs one listener per dial/stream step on the signal; that is expected, not a leak.
    setMaxListeners(0, signal);
    const startedAt = deps.clock.now();
    /** One place that turns whatever went wrong into a coded error: deadline, cancellation or an unreachable peer. */
    const failure = (err: unknown, stage: string): AilinkError => {
      // A peer the host cannot dial is a miner out of reach: the client then places or fetches elsewhere.
      if (hasCode(err) && err.code !== 'PEER_UNREACHABLE') return err;
      const details = { miner: peer.peerId };
      if (signal.aborted && (signal.reason as Error | undefined)?.name === 'TimeoutError') {
        const waited = deps.clock.now() - startedAt;
        return new AilinkError(
          'TIMEOUT',
          `miner ${peer.peerId} did not finish ${op} (${stage}) within ${waited} ms`,
          {
            cause: err,
            details,
          },
        );
      }
      if (signal.aborted)
        return new AilinkError('ABORTED', `${op} ${hash} cancelled`, { cause: err, details });
      return new AilinkError(
        'MINER_UNREACHABLE',
        `miner ${peer.peerId} failed at ${stage}: ${(err as Error).message}`,
        {
          cause: err,
          details,
        },
      );
    };
    let channel: ByteChannel;
    try {
      channel = await deps.host.open(peer, FRAGMENT_PROTOCOL, { signal });
    } catch (err) {
      throw failure(err, 'dial');
    }
    try {
      const deal = op === 'put' ? (extra.deal as string | undefined) : undefined;
      const fields = {
        op,
        fragment: hash,
        size,
        audience: peer.peerId,
        ...(deal === undefined ? {} : { deal }),
      };
      const auth = signRequest(deps.account, fields, deps, options.signatureTtlMs);
      const request =
        op === 'put' ? { ...fields, auth } : { op, fragment: hash, audience: peer.peerId, auth, ...extra };
      await channel.writeFrame(encodeJson(request), { signal });
      const result = await body(channel, signal);
      await channel.closeWrite({ signal }).catch(() => {});
      return result;
    } catch (err) {
      channel.abort(
        err instanceof Error ? err : new AilinkError('ABORTED', `the exchange failed with ${String(err)}`),
      );
      throw failure(err, 'transfer');
    }
  }

  const reply = async <T>(
    channel: ByteChannel,
    signal: AbortSignal,
    schema: Parameters<typeof decodeReply<T>>[1],
  ) =>
    decodeReply(await channel.readFrame(MAX_FRAME_BYTES, { signal }), schema, `miner ${channel.remotePeer}`);

  return {
    put: (peer, hash, bytes, callOptions = {}) =>
      call(
        peer,
        'put',
        hash,
        bytes.byteLength,
        callOptions,
        async (channel, signal) => {
          const ready = await reply(channel, signal, PutReadySchema);
          if (ready.send) {
            if (bytes instanceof Uint8Array) await channel.write(bytes, { signal });
            else for (const piece of bytes.pieces()) await channel.write(piece, { signal });
            await channel.closeWrite({ signal });
          }
          await reply(channel, signal, PutDoneSchema);
        },
        callOptions.deal === undefined ? {} : { deal: callOptions.deal },
      ),
    get: (peer, hash, callOptions = {}) =>
      call(peer, 'get', hash, 0, callOptions, async (channel, signal) => {
        const { size } = await reply(channel, signal, GetReplySchema);
        if (size > options.maxFragmentSize) {
          throw new AilinkError(
            'FRAGMENT_TOO_LARGE',
            `miner announced ${size} bytes, limit is ${options.maxFragmentSize}`,
          );
        }
        return channel.readExactly(size, { signal });
      }),
    has: (peer, hash, callOptions = {}) =>
      call(
        peer,
        'has',
        hash,
        0,
        callOptions,
        async (channel, signal) => (await reply(channel, signal, HasReplySchema)).size,
      ),
    delete: (peer, hash, callOptions = {}) =>
      call(
        peer,
        'delete',
        hash,
        0,
        callOptions,
        async (channel, signal) => (await reply(channel, signal, DeleteReplySchema)).deleted,
      ),
    async receipt(peer, column, callOptions = {}) {
      const fields = { fid: column.fid, deal: column.deal, index: column.index, fragments: column.fragments };
      const digest = bodyDigest([fields.fid, fields.deal, fields.index, fields.fragments]);
      const answer = await call(
        peer,
        'receipt',
        digest,
        0,
        callOptions,
        (channel, signal) => reply(channel, signal, ReceiptReplySchema),
        fields,
      );
      return { index: column.index, miner: answer.miner, signature: answer.signature };
    },
    async restore(peer, stage, column, callOptions = {}) {
      const fields = { stage, fid: column.fid, index: column.index, fragments: column.fragments };
      const digest = bodyDigest([stage, fields.fid, fields.index, fields.fragments]);
      const answer = await call(
        peer,
        'restore',
        digest,
        0,
        callOptions,
        (channel, signal) => reply(channel, signal, RestoreReplySchema),
        fields,
      );
      return answer.block;
    },
  };
}
