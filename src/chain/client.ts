import { ApiPromise, WsProvider } from '@polkadot/api';
import type { SubmittableExtrinsic } from '@polkadot/api/types';
import type { GenericExtrinsic, Vec } from '@polkadot/types';
import type { Call, DispatchError, EventRecord } from '@polkadot/types/interfaces';
import { compactFromU8a, hexToU8a, u8aToHex, u8aToU8a } from '@polkadot/util';
import type { HexString } from '@polkadot/util/types';
import { blake2AsHex, blake2AsU8a, decodeAddress, encodeAddress } from '@polkadot/util-crypto';
import { accountsReady, SS58_PREFIX } from '../shared/account.ts';
import { AilinkError, hasCode } from '../shared/errors.ts';
import type { RawBlock } from './evidence.ts';

/**
 * Who signs a transaction: an address and its sr25519 signing function over a payload as it is (an `Account` is one;
 * its off-chain `sign` wraps what it signs in `<Bytes>…</Bytes>`, so it could never sign a transaction).
 */
export interface ChainSigner {
  readonly address: string;
  signTransaction(payload: Uint8Array): Uint8Array;
}

/** The calls AI-LINK sends. Remarks carry the protocol; transfers pay (collateral, marketplace prices). */
export type ChainCall =
  | { readonly kind: 'remark'; readonly payload: Uint8Array }
  | { readonly kind: 'transfer'; readonly to: string; readonly amount: bigint };

/** A call as found in a block: ours, or named by pallet and method. */
export type FoundCall = ChainCall | { readonly kind: 'other'; readonly name: string };

export interface Inclusion {
  readonly blockHash: string;
  readonly blockNumber: number;
  readonly extrinsicIndex: number;
  /**
   * Where this submission's calls begin among the extrinsic's calls (batches flattened): 0 unless submissions of one
   * account waiting together went out as one extrinsic; they then occupy [firstItem, firstItem + calls.length).
   */
  readonly firstItem: number;
  /** `section.method` of every event the extrinsic emitted, in order (of the whole extrinsic). */
  readonly events: readonly string[];
}

export interface SubmitOptions {
  /** Wait for the block to be finalized (default) or only included. */
  readonly until?: 'inBlock' | 'finalized';
  /** Give up waiting after this long (default 60 s); the transaction may still land later. */
  readonly deadlineMs?: number;
  readonly signal?: AbortSignal;
}

/** One extrinsic of a block, flattened: `calls` lists the leaves of any utility batch, with whether each applied. */
export interface BlockExtrinsic {
  readonly index: number;
  /** SS58 (prefix 42) of the signer; null for inherents and unsigned extrinsics. */
  readonly signer: string | null;
  readonly calls: readonly {
    readonly call: FoundCall;
    readonly applied: boolean;
    readonly reason?: string;
  }[];
}

export interface ChainBlock {
  readonly number: number;
  readonly hash: string;
  readonly parentHash: string;
  /** The block's `timestamp.set`, ms since the epoch (0 when the chain has no timestamp pallet). */
  readonly timestamp: number;
  readonly extrinsics: readonly BlockExtrinsic[];
}

export interface ChainClient {
  readonly endpoint: string;
  readonly genesisHash: string;
  /** `specName/specVersion` of the runtime. */
  readonly runtime: string;
  /**
   * The block time the runtime is built for, in ms (see `blockTimeOf`): what a participant sizes its join deadline
   * by, read from its own connection rather than taken from the coordinator.
   */
  readonly blockTimeMs: number;
  /**
   * Signs and submits `calls` as one extrinsic (`utility.batchAll` when more than one: all or nothing), with the
   * signer's next nonce, and waits for inclusion. One account's transactions go out one at a time, in order; remark-only
   * submissions that queue up behind one in flight go out together in the next (see `coalescible`), each told where its
   * calls are (`firstItem`) and failing or succeeding on its own.
   * @throws CHAIN_TX_REJECTED (after retries), CHAIN_CALL_FAILED (included, but the call failed), CHAIN_TIMEOUT
   */
  submit(signer: ChainSigner, calls: readonly ChainCall[], options?: SubmitOptions): Promise<Inclusion>;
  /** Free balance in the chain's smallest unit. */
  balance(address: string): Promise<bigint>;
  finalizedHeight(): Promise<number>;
  /** A finalized block by number, decoded. @throws NOT_FOUND when the chain is not that high yet. */
  block(number: number): Promise<ChainBlock>;
  /**
   * Finalized blocks `from`..`to`, decoded, in order: their hashes in one request, their bodies at once, and events
   * only for blocks with signed extrinsics (an inherent-only block has nothing the events would explain).
   * @throws NOT_FOUND when the chain is not that high yet; INVALID_INPUT for a range that is not block numbers or
   *   spans more than MAX_BLOCKS_PER_REQUEST
   */
  blocks(from: number, to: number): Promise<ChainBlock[]>;
  /**
   * Finalized blocks `from`..`to` as the chain encoded them: SCALE header and extrinsics (evidence.ts checks them
   * offline). @throws as `blocks`
   */
  rawBlocks(from: number, to: number): Promise<RawBlock[]>;
  /** Calls `onHeight` with each new finalized height; returns the unsubscribe function. */
  followFinalized(onHeight: (height: number) => void): Promise<() => void>;
  /**
   * Lets submissions in flight finish, then disconnects. Reads waiting for a lost connection end at once with
   * CHAIN_UNREACHABLE ("the chain client is closed").
   */
  close(): Promise<void>;
}

/** An unanswered submission whose nonce was used is looked for in the newest LOOKUP_BLOCKS_BACK blocks. */
const LOOKUP_BLOCKS_BACK = 256;

/** Blocks one `ChainClient.blocks` call reads at most (its bodies are all requested at once). */
export const MAX_BLOCKS_PER_REQUEST = 1024;

export interface ChainClientOptions {
  readonly connectTimeoutMs?: number;
  /**
   * How long one request may go unanswered (default 60 s). A loaded dev chain took over 15 s to answer a submission
   * (measured); an unanswered submission is a CHAIN_TIMEOUT whose transaction may still land.
   */
  readonly requestTimeoutMs?: number;
  /** Attempts for a transaction the pool refuses as stale or drops (its nonce is fetched again in between). */
  readonly retries?: number;
  /** How long an unanswered submission is looked for on chain before it is a CHAIN_TIMEOUT (default 30 s). */
  readonly lookupMs?: number;
  /**
   * How long a request waits for a lost connection to come back before it is a CHAIN_UNREACHABLE (default 60 s: a
   * dev chain restarted from its database listened again after ~10 s on a loaded machine, measured by bench:chaos).
   */
  readonly reconnectMs?: number;
}

/** Pause between attempts to reconnect to a chain whose connection dropped. */
const RECONNECT_EVERY_MS = 1000;
/**
 * How long an attempt to reconnect may go unanswered before it is given up and the next made: 5 s at first, twice as
 * long after each attempt given up so (up to 40 s), so that a node too loaded to answer within 5 s is still reached.
 */
const CONNECT_ATTEMPT_MS = 5000;
const CONNECT_ATTEMPT_MAX_MS = 40_000;

/**
 * Connects to any Substrate endpoint. Nonces are tracked per account here because a pool that does not order by
 * nonce (chopsticks) drops a second transaction sent before the first is included, and a quick resubmission with an
 * automatic nonce comes back `stale`.
 * @throws CHAIN_UNREACHABLE
 */
export async function connectChain(endpoint: string, options: ChainClientOptions = {}): Promise<ChainClient> {
  await accountsReady();
  const timeoutMs = options.connectTimeoutMs ?? 15_000;
  const until = performance.now() + timeoutMs;
  const provider = new ForgetfulWsProvider(endpoint, false, {}, options.requestTimeoutMs ?? 60_000);
  // A refused connection is tried again until the deadline: a node being (re)started refuses for a few seconds.
  const api = await (async (): Promise<ApiPromise> => {
    for (;;) {
      const leftMs = Math.max(1, until - performance.now());
      try {
        await withDeadline(provider.connect(), leftMs, 'connect');
        const metadata = await withDeadline(
          opened(provider).then(() => legacyMetadata(provider)),
          leftMs,
          'connect',
        );
        return await withDeadline(
          ApiPromise.create({
            provider,
            throwOnConnect: true,
            noInitWarn: true,
            ...(metadata ? { metadata } : {}),
          }),
          Math.max(1, until - performance.now()),
          'connect',
        );
      } catch (cause) {
        const refused = cause instanceof SocketError && performance.now() + RECONNECT_EVERY_MS < until;
        if (!refused) {
          await provider.disconnect().catch(() => {});
          throw new AilinkError(
            'CHAIN_UNREACHABLE',
            `expected a Substrate node at ${endpoint}, could not connect within ${timeoutMs} ms (${(cause as Error).message}); start one with \`ailink chain\` or \`ailink dev\``,
            { cause },
          );
        }
        // The socket is closed by now (the provider's `#websocket` is cleared on close): connect() may run again.
        await new Promise((r) => setTimeout(r, RECONNECT_EVERY_MS));
      }
    }
  })();
  const retries = options.retries ?? 3;
  const lookupMs = options.lookupMs ?? 30_000;
  const reconnectMs = options.reconnectMs ?? 60_000;
  // A dropped connection is made again, every RECONNECT_EVERY_MS, until `close`: a long-lived process (a miner, a
  // coordinator, an organisation) outlives a restart of its node. The provider then subscribes again to what it
  // followed (not to submissions: `sendOnce` deals with those), and the api reloads what it needs.
  let closing = false;
  let attempts = 0;
  let attemptMs = CONNECT_ATTEMPT_MS;
  provider.on('connected', () => {
    attemptMs = CONNECT_ATTEMPT_MS;
  });
  const reconnect = () => {
    if (closing || provider.isConnected) return;
    const attempt = ++attempts;
    provider.connect().catch(() => {});
    // ws puts no deadline on its handshake, and only a failed attempt brings the next: a listener that takes the
    // connection and never answers (a proxy before a node that is down, a node half started) would hold this attempt,
    // and every read, for ever. Closing it unanswered fails it, and so brings the next.
    setTimeout(() => {
      if (closing || attempt !== attempts || provider.isConnected) return;
      attemptMs = Math.min(CONNECT_ATTEMPT_MAX_MS, attemptMs * 2);
      provider.disconnect().catch(() => {});
    }, attemptMs).unref();
  };
  provider.on('disconnected', () => {
    if (!closing) setTimeout(reconnect, RECONNECT_EVERY_MS).unref();
  });
  const closed = (what: string) =>
    new AilinkError('CHAIN_UNREACHABLE', `${what}: the chain client is closed`);
  /** Who waits in `connected` for a lost connection: `close` ends their wait at once. */
  const waitingForConnection = new Set<() => void>();
  /**
   * Resolves at once while connected; otherwise when the connection is back.
   * @throws CHAIN_UNREACHABLE when it is not back within `reconnectMs`, or the client is closed meanwhile
   */
  const connected = async (what: string): Promise<void> => {
    if (provider.isConnected) return;
    if (closing) throw closed(what);
    let off = () => {};
    let wake = () => {};
    try {
      await withDeadline(
        new Promise<void>((resolve, reject) => {
          off = provider.on('connected', () => resolve());
          wake = () => reject(closed(what));
          waitingForConnection.add(wake);
        }),
        reconnectMs,
        what,
      );
    } catch {
      if (closing) throw closed(what);
      throw new AilinkError(
        'CHAIN_UNREACHABLE',
        `${what}: the connection to ${endpoint} dropped and did not come back within ${reconnectMs} ms; is the chain running?`,
      );
    } finally {
      off();
      waitingForConnection.delete(wake);
    }
  };
  /** A read: waits for a lost connection, and is asked again once if the connection drops under it. */
  const reading = async <T>(what: string, read: () => Promise<T>): Promise<T> => {
    await connected(what);
    try {
      return await read();
    } catch (err) {
      if (!isDisconnect(err)) throw err;
      await connected(what);
      return read();
    }
  };
  const nonces = new Map<string, number>();
  /** Per account: the submissions waiting for its extrinsic in flight, and the loop sending them. */
  const waiting = new Map<string, Waiting[]>();
  const senders = new Map<string, Promise<void>>();

  const toTx = (call: ChainCall): SubmittableExtrinsic<'promise'> => {
    // A hex string is taken as the raw bytes; a Uint8Array would be read as already length-prefixed.
    if (call.kind === 'remark') return api.tx.system.remarkWithEvent(u8aToHex(call.payload));
    // Older runtimes (like the dev chain's) call it `transfer`; newer ones `transferAllowDeath`.
    const balances = api.tx.balances as unknown as Record<
      string,
      (to: string, amount: bigint) => SubmittableExtrinsic<'promise'>
    >;
    const transfer = balances.transferAllowDeath ?? balances.transfer;
    if (transfer === undefined)
      throw new AilinkError('CHAIN_TX_REJECTED', 'this chain has no balances transfer call');
    return transfer(call.to, call.amount);
  };

  const describeCalls = (calls: readonly ChainCall[]): string =>
    calls.length === 1 ? describeCall(calls[0]!) : `utility.batchAll of ${calls.length} calls`;

  const explain = (err: DispatchError): string => {
    if (err.isModule) {
      const meta = api.registry.findMetaError(err.asModule);
      return `${meta.section}.${meta.name}${meta.docs.length > 0 ? ` (${meta.docs.join(' ').trim()})` : ''}`;
    }
    return err.toString();
  };

  /** `pinned`: the nonce of a submission sent again after the connection dropped under it. */
  async function sendOnce(
    signer: ChainSigner,
    tx: SubmittableExtrinsic<'promise'>,
    what: string,
    options: SubmitOptions,
    pinned?: number,
  ): Promise<Omit<Inclusion, 'firstItem'>> {
    const address = signer.address;
    await connected(what);
    let nonce = pinned ?? nonces.get(address);
    if (nonce === undefined) {
      nonce = (await api.rpc.system.accountNextIndex(address)).toNumber();
    }
    const until = options.until ?? 'finalized';
    const deadlineMs = options.deadlineMs ?? 60_000;
    let resolve!: (inclusion: Omit<Inclusion, 'firstItem'>) => void;
    let reject!: (err: unknown) => void;
    const promise = new Promise<Omit<Inclusion, 'firstItem'>>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // The deadline, a dropped connection or an abort may reject it while the submission itself is still pending,
    // before anything awaits it: unhandled, that rejection ended the process (six miners, when the chaos harness
    // killed the chain under their tag reports). Awaited below, it is still what the caller gets.
    promise.catch(() => {});
    let unsubscribe: (() => void) | undefined;
    const timer = setTimeout(
      () =>
        reject(
          new AilinkError(
            'CHAIN_TIMEOUT',
            `${what} from ${address} was not ${until === 'inBlock' ? 'included' : 'finalized'} within ${deadlineMs} ms; it may still land — check the account's nonce before sending again`,
          ),
        ),
      deadlineMs,
    );
    const onAbort = () =>
      reject(new AilinkError('ABORTED', `${what}: cancelled while waiting for inclusion`));
    options.signal?.addEventListener('abort', onAbort, { once: true });
    // A dropped connection takes the inclusion's subscription with it, and it is not made again.
    const offDisconnect = provider.on('disconnected', () =>
      reject(new DroppedConnection(`disconnected from ${endpoint} while waiting for inclusion`)),
    );
    try {
      unsubscribe = await tx.signAndSend(address, { nonce, signer: rawSigner(signer) }, (result) => {
        const { status } = result;
        if (status.isInvalid || status.isDropped || status.isUsurped) {
          reject(
            new AilinkError('CHAIN_TX_REJECTED', `${what} from ${address}: the pool reported ${status.type}`),
          );
          return;
        }
        const done = until === 'inBlock' ? status.isInBlock || status.isFinalized : status.isFinalized;
        if (!done) return;
        const blockHash = (status.isInBlock ? status.asInBlock : status.asFinalized).toHex();
        if (result.dispatchError) {
          reject(
            new AilinkError(
              'CHAIN_CALL_FAILED',
              `${what} from ${address} failed: ${explain(result.dispatchError)}`,
              {
                details: { blockHash },
              },
            ),
          );
          return;
        }
        api.rpc.chain
          .getHeader(blockHash)
          .then((header) =>
            resolve({
              blockHash,
              blockNumber: header.number.toNumber(),
              extrinsicIndex: result.txIndex ?? -1,
              events: result.events.map(({ event }) => `${event.section}.${event.method}`),
            }),
          )
          .catch(reject);
      });
      // The nonce is used once the pool accepted the transaction, whatever happens to its inclusion.
      nonces.set(address, nonce + 1);
      return await promise;
    } catch (err) {
      if (hasCode(err)) throw err;
      if (typeof (err as { code?: unknown }).code === 'number') {
        // A refusal from the pool at submission: 1010 invalid (stale, future, payment) or 1014 priority too low.
        throw new AilinkError('CHAIN_TX_REJECTED', `${what} from ${address}: ${(err as Error).message}`, {
          cause: err,
        });
      }
      // No answer to the submission (the node is slow or the link dropped): the pool may have taken it, and it may
      // still land. Sending it again with a new nonce could pay twice, so look for it on chain instead; if it is not
      // found in time, the caller decides, and the next send asks for the nonce anew.
      nonces.delete(address);
      // What to look for on chain: this copy's hash (a copy sent again below is signed afresh, so it has another).
      const sentHash = tx.hash.toHex();
      if (pinned === undefined && isDisconnect(err)) {
        // The link dropped under it. Once back, a node whose pool (or chain) has no transaction of this account at
        // this nonce never got it or forgot it (a restarted node starts with an empty pool): send it again with the
        // same nonce, which lets at most one of the two land.
        await connected(what);
        if ((await api.rpc.system.accountNextIndex(address)).toNumber() === nonce) {
          try {
            return await sendOnce(signer, tx, what, options, nonce);
          } catch (again) {
            // A node slow to take the first copy may take it after the look above: the pool then refuses this one
            // for its nonce. Thrown as it is, the refusal made the caller send it again under a new nonce, and the
            // transfer was paid twice (test/chain/lost-answer.test.ts). The first copy is what to look for.
            if (!hasCode(again, 'CHAIN_TX_REJECTED')) throw again;
          }
        }
      }
      // A node that does not answer the lookup either leaves the fate unknown; a call found failed is that failure.
      const found = await findSent(address, nonce, sentHash, what, options).catch((lookup: unknown) => {
        if (hasCode(lookup, 'CHAIN_CALL_FAILED')) throw lookup;
        return null;
      });
      if (found !== null) return found;
      throw new AilinkError(
        'CHAIN_TIMEOUT',
        `${what} from ${address}: the node did not answer the submission (${(err as Error).message}) and it was not found on chain within ${lookupMs} ms; it may still land — check the account's nonce before sending again`,
        { cause: err },
      );
    } finally {
      clearTimeout(timer);
      offDisconnect();
      options.signal?.removeEventListener('abort', onAbort);
      // Its subscription went with a dropped connection: there is nothing left to unsubscribe from.
      if (provider.isConnected) unsubscribe?.();
    }
  }

  /**
   * The inclusion of an unanswered submission, found on chain: polls until the account's nonce moves past `nonce`
   * (the transaction, or another of the account's with that nonce, landed), then reads back from the head, at most
   * LOOKUP_BLOCKS_BACK blocks, for the extrinsic `hash`. Null when nothing landed within `lookupMs`, or what used the
   * nonce is not that extrinsic (another client of the account) or lies further back. Real time, as the client's
   * other deadlines (it talks to a real node), read from the monotonic clock so that a step of the system's clock
   * neither cuts a deadline short nor stretches it.
   * @throws CHAIN_CALL_FAILED when it landed and failed
   */
  async function findSent(
    address: string,
    nonce: number,
    hash: string,
    what: string,
    options: SubmitOptions,
  ): Promise<Omit<Inclusion, 'firstItem'> | null> {
    const until = performance.now() + lookupMs;
    const head = async () =>
      options.until === 'inBlock'
        ? await api.rpc.chain.getBlockHash()
        : await api.rpc.chain.getFinalizedHead();
    while (performance.now() < until && options.signal?.aborted !== true) {
      await connected(what);
      const at = await head();
      const account = (await api.query.system.account.at(at, address)) as unknown as {
        nonce: { toNumber(): number };
      };
      if (account.nonce.toNumber() > nonce) {
        // Back from the head: it landed after it was sent, which was at most a request timeout ago.
        for (let blockHash = at.toHex(), n = LOOKUP_BLOCKS_BACK; n > 0; n--) {
          const block = await api.rpc.chain.getBlock(blockHash);
          const index = block.block.extrinsics.findIndex((x) => x.hash.toHex() === hash);
          const number = block.block.header.number.toNumber();
          if (index >= 0) {
            const records = await eventsAt(blockHash);
            const own = records.filter(
              (r) => r.phase.isApplyExtrinsic && r.phase.asApplyExtrinsic.eqn(index),
            );
            const failed = own.find((r) => api.events.system.ExtrinsicFailed.is(r.event));
            if (failed !== undefined) {
              const [dispatchError] = failed.event.data as unknown as [DispatchError];
              throw new AilinkError(
                'CHAIN_CALL_FAILED',
                `${what} from ${address} failed: ${explain(dispatchError)}`,
                { details: { blockHash } },
              );
            }
            return {
              blockHash,
              blockNumber: number,
              extrinsicIndex: index,
              events: own.map(({ event }) => `${event.section}.${event.method}`),
            };
          }
          if (number <= 1) break;
          blockHash = block.block.header.parentHash.toHex();
        }
        return null;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    return null;
  }

  async function submitQueued(
    signer: ChainSigner,
    calls: readonly ChainCall[],
    options: SubmitOptions,
  ): Promise<Omit<Inclusion, 'firstItem'>> {
    const tx = calls.length === 1 ? toTx(calls[0]!) : api.tx.utility.batchAll(calls.map(toTx));
    const what = describeCalls(calls);
    for (let attempt = 1; ; attempt++) {
      try {
        return await sendOnce(signer, tx, what, options);
      } catch (err) {
        if (!hasCode(err, 'CHAIN_TX_REJECTED') || attempt >= retries) throw err;
        // Stale or dropped: our nonce view is wrong (another client used the account) — ask the chain again.
        nonces.delete(signer.address);
      }
    }
  }

  /** Sends `address`'s waiting submissions, a group per extrinsic, until none wait. */
  async function sendWaiting(address: string): Promise<void> {
    for (
      let queue = waiting.get(address);
      queue !== undefined && queue.length > 0;
      queue = waiting.get(address)
    ) {
      const group = takeGroup(queue).filter((w) => !w.settled);
      if (group.length === 0) continue;
      try {
        await sendGroup(group);
      } catch (err) {
        for (const w of group) w.fail(err);
      }
    }
    waiting.delete(address);
    senders.delete(address);
  }

  async function sendGroup(group: readonly Waiting[]): Promise<void> {
    const first = group[0]!;
    if (group.length === 1) {
      first.succeed({ ...(await submitQueued(first.signer, first.calls, first.options)), firstItem: 0 });
      return;
    }
    const options: SubmitOptions = {
      until: first.options.until ?? 'finalized',
      deadlineMs: Math.max(...group.map((w) => w.options.deadlineMs ?? 60_000)),
    };
    let inclusion: Omit<Inclusion, 'firstItem'>;
    try {
      inclusion = await submitQueued(
        first.signer,
        group.flatMap((w) => w.calls),
        options,
      );
    } catch (err) {
      if (!hasCode(err, 'CHAIN_CALL_FAILED')) throw err;
      // All or nothing, and it was nothing: each again on its own, so one's failure is not the others'.
      for (const w of group) {
        if (w.settled) continue;
        try {
          w.succeed({ ...(await submitQueued(w.signer, w.calls, w.options)), firstItem: 0 });
        } catch (own) {
          w.fail(own);
        }
      }
      return;
    }
    let at = 0;
    for (const w of group) {
      w.succeed({ ...inclusion, firstItem: at });
      at += w.calls.length;
    }
  }

  /**
   * A block's events, read raw at its hash and decoded with the connection's registry. `api.query.system.events.at`
   * did the same through `api.at(hash)`, which decorates a whole API for the block first: in a demo's profile that was
   * 13 s of the process's 177 s on the CPU (11 indexes reading every block), and every miner's index paid it too.
   * The connection's registry is the block's own on a chain whose runtime has not changed since (the dev chain never
   * upgrades, and quiet blocks were already read with it); a chain that upgrades would need `api.getBlockRegistry`.
   */
  const eventsKey = api.query.system.events.key();
  async function eventsAt(hash: string): Promise<EventRecord[]> {
    const raw = await provider.send<HexString | null>('state_getStorage', [eventsKey, hash]);
    return raw === null ? [] : [...api.registry.createType<Vec<EventRecord>>('Vec<EventRecord>', raw)];
  }

  let finalizedSeen = 0;
  /** Reads blocks from..to: their hashes in one request, then `read` for each, all in flight at once. */
  async function eachBlock<T>(
    from: number,
    to: number,
    read: (number: number, hash: HexString) => Promise<T>,
  ) {
    const numbers = Array.from({ length: to - from + 1 }, (_, i) => from + i);
    return reading(`blocks ${from}..${to}`, async () => {
      const hashes = await provider.send<(HexString | null)[]>('chain_getBlockHash', [numbers]);
      return Promise.all(
        numbers.map((number, i) => {
          const hash = hashes[i];
          if (hash == null) throw new AilinkError('NOT_FOUND', `the chain has no block ${number}`);
          return read(number, hash);
        }),
      );
    });
  }

  const client: ChainClient = {
    endpoint,
    genesisHash: api.genesisHash.toHex(),
    runtime: `${api.runtimeVersion.specName.toString()}/${api.runtimeVersion.specVersion.toNumber()}`,
    blockTimeMs: blockTimeOf(api.consts),
    submit(signer, calls, submitOptions = {}) {
      if (calls.length === 0)
        return Promise.reject(
          new AilinkError('INVALID_INPUT', 'submit: expected at least one call, got none'),
        );
      return new Promise<Inclusion>((resolve, reject) => {
        const queue = waiting.get(signer.address) ?? [];
        waiting.set(signer.address, queue);
        queue.push(waiter(signer, calls, submitOptions, resolve, reject));
        if (!senders.has(signer.address)) senders.set(signer.address, sendWaiting(signer.address));
      });
    },
    async balance(address) {
      const info = (await reading('balance', () => api.query.system.account(address))) as unknown as {
        data: { free: { toBigInt(): bigint } };
      };
      return info.data.free.toBigInt();
    },
    async finalizedHeight() {
      const height = await reading('finalized height', async () => {
        const hash = await api.rpc.chain.getFinalizedHead();
        return (await api.rpc.chain.getHeader(hash)).number.toNumber();
      });
      finalizedSeen = Math.max(finalizedSeen, height);
      return height;
    },
    async block(number) {
      // One block, checked against finality now, with its events: what the indexer fetched per block before
      // `blocks` (bench:scale's baseline).
      const finalized = await client.finalizedHeight();
      if (number > finalized) {
        throw new AilinkError(
          'NOT_FOUND',
          `block ${number} is not finalized yet (finalized height ${finalized})`,
        );
      }
      const hash = await reading(`block ${number}`, () => api.rpc.chain.getBlockHash(number));
      const [signed, records] = await reading(`block ${number}`, () =>
        Promise.all([api.rpc.chain.getBlock(hash), eventsAt(hash.toHex())]),
      );
      return decodeBlock(
        number,
        hash.toHex(),
        signed.block.header.parentHash.toHex(),
        signed.block.extrinsics,
        records,
      );
    },
    async blocks(from, to) {
      if (
        !Number.isSafeInteger(from) ||
        !Number.isSafeInteger(to) ||
        from < 0 ||
        to - from >= MAX_BLOCKS_PER_REQUEST
      ) {
        throw new AilinkError(
          'INVALID_INPUT',
          `blocks: expected block numbers from ≤ to, at most ${MAX_BLOCKS_PER_REQUEST} apart, got ${from}..${to}`,
        );
      }
      if (to < from) return [];
      // Finality only grows: a height seen finalized once needs no second look.
      const finalized = to <= finalizedSeen ? finalizedSeen : await client.finalizedHeight();
      if (to > finalized) {
        throw new AilinkError(
          'NOT_FOUND',
          `block ${to} is not finalized yet (finalized height ${finalized})`,
        );
      }
      return eachBlock(from, to, async (number, hash) => {
        // The block as JSON, its extrinsics hex: a block with no signed extrinsic (most of a quiet chain's) is read
        // from their first bytes, without @polkadot/types decoding it (most of an empty block's cost, bench:scale).
        const raw = await provider.send<RpcBlock>('chain_getBlock', [hash]);
        const quiet = readInherentsOnly(number, hash, raw.block, (index) => {
          const meta = api.registry.findMetaCall(index);
          return `${meta.section}.${meta.method}`;
        });
        if (quiet !== undefined) return quiet;
        // Decoded from the JSON already read, not fetched a second time.
        const extrinsics = raw.block.extrinsics.map((x) =>
          api.registry.createType<GenericExtrinsic>('Extrinsic', x),
        );
        const records = extrinsics.some((ex) => ex.isSigned) ? await eventsAt(hash) : [];
        return decodeBlock(number, hash, raw.block.header.parentHash, extrinsics, records);
      });
    },
    async rawBlocks(from, to) {
      // The same range rules and finality check as `blocks` (an empty range reads nothing).
      if (to < from || (await client.blocks(to, to)).length !== 1) return [];
      return eachBlock(from, to, async (number, hash) => {
        const signed = await api.rpc.chain.getBlock(hash);
        return {
          number,
          hash,
          header: signed.block.header.toU8a(),
          extrinsics: signed.block.extrinsics.map((ex) => ex.toU8a()),
        };
      });
    },
    async followFinalized(onHeight) {
      await connected('following finalized blocks');
      return api.rpc.chain.subscribeFinalizedHeads((header) => {
        finalizedSeen = Math.max(finalizedSeen, header.number.toNumber());
        onHeight(header.number.toNumber());
      });
    },
    async close() {
      // Whatever waits for a lost connection ends now: a process stopping while its chain is gone (a miner's audit
      // pass, an index catching up) would otherwise wait `reconnectMs` per read. Submissions in flight on a live
      // connection still finish.
      closing = true;
      for (const wake of waitingForConnection) wake();
      await Promise.allSettled([...senders.values()]);
      await closeQuietly(provider, api);
    },
  };
  return client;

  function decodeBlock(
    number: number,
    hash: string,
    parentHash: string,
    extrinsics: readonly GenericExtrinsic[],
    records: readonly EventRecord[],
  ): ChainBlock {
    let timestamp = 0;
    const out: BlockExtrinsic[] = extrinsics.map((ex, index) => {
      const events = records.filter(
        (r) => r.phase.isApplyExtrinsic && r.phase.asApplyExtrinsic.toNumber() === index,
      );
      const failed = events.find((r) => api.events.system.ExtrinsicFailed.is(r.event));
      const call = ex.method as unknown as Call;
      if (call.section === 'timestamp' && call.method === 'set') timestamp = Number(call.args[0]!.toString());
      const reason = failed
        ? `extrinsic failed: ${explain(failed.event.data[0] as unknown as DispatchError)}`
        : undefined;
      return {
        index,
        signer: ex.isSigned ? encodeAddress(decodeAddress(ex.signer.toString()), SS58_PREFIX) : null,
        calls: flatten(call, events, failed === undefined, reason),
      };
    });
    return { number, hash, parentHash, timestamp, extrinsics: out };
  }

  /**
   * The leaves of a call tree. `batchAll` is all or nothing; a top-level `batch` stops at its `BatchInterrupted`
   * index; a top-level `forceBatch` reports each item with `ItemCompleted`/`ItemFailed`, after the item's own
   * utility events (a nested `batchAll` emits one `ItemCompleted` per inner item and a `BatchCompleted`), so its
   * events are walked with their nesting. What cannot be attributed counts as not applied: the items of a
   * non-atomic batch nested in another, and every `forceBatch` item from the first whose events cannot be told apart.
   */
  function flatten(
    call: Call,
    events: readonly EventRecord[],
    applied: boolean,
    reason: string | undefined,
    depth = 0,
  ): BlockExtrinsic['calls'] {
    const name = `${call.section}.${call.method}`;
    const leaf = (c: FoundCall, ok: boolean, why?: string) => [
      { call: c, applied: ok, ...(why === undefined ? {} : { reason: why }) },
    ];
    if (isRemark(call)) {
      return leaf({ kind: 'remark', payload: u8aToU8a(call.args[0]!.toU8a(true)) }, applied, reason);
    }
    if (isTransfer(call)) {
      const to = encodeAddress(decodeAddress(call.args[0]!.toString()), SS58_PREFIX);
      return leaf({ kind: 'transfer', to, amount: BigInt(call.args[1]!.toString()) }, applied, reason);
    }
    if (isBatch(call)) {
      const items = call.args[0] as unknown as Call[];
      if (call.method === 'batchAll') {
        return items.flatMap((item) => flatten(item, events, applied, reason, depth + 1));
      }
      if (depth > 0) {
        return items.flatMap((item) =>
          flatten(item, events, false, `inside a ${name} nested in another batch`, depth + 1),
        );
      }
      const outcomes: { ok: boolean; why?: string }[] = items.map(() => ({ ok: applied }));
      if (call.method === 'batch') {
        // The outer batch's own BatchInterrupted is its last utility event (nested ones come before it).
        const last = events.filter((r) => isUtilityOutcome(r.event)).at(-1);
        if (last !== undefined && isUtility(last.event, 'BatchInterrupted')) {
          const at = Number(last.event.data[0]!.toString());
          for (let i = at; i < items.length; i++) outcomes[i] = { ok: false };
        }
      } else {
        forceBatchOutcomes(items, events).forEach((o, i) => {
          outcomes[i] = { ok: applied && o.ok, ...(o.why === undefined ? {} : { why: o.why }) };
        });
      }
      return items.flatMap((item, i) => {
        const o = outcomes[i]!;
        return flatten(
          item,
          events,
          o.ok,
          o.ok ? undefined : (reason ?? o.why ?? `${name} item ${i} failed`),
          depth + 1,
        );
      });
    }
    return leaf({ kind: 'other', name }, applied, reason);
  }

  /** Each item of a top-level `forceBatch`: applied (its `ItemCompleted`), failed, or not attributable. */
  function forceBatchOutcomes(
    items: readonly Call[],
    events: readonly EventRecord[],
  ): { ok: boolean; why?: string }[] {
    const utility = events.filter((r) => isUtilityOutcome(r.event)).map((r) => r.event);
    const is = (at: number, kind: UtilityEvent) => utility[at] !== undefined && isUtility(utility[at]!, kind);
    /** Where the events of `item`, had it succeeded, end; undefined when their number cannot be known. */
    const afterSuccess = (item: Call, at: number): number | undefined => {
      if (isRemark(item) || isTransfer(item)) return at;
      if (!(isBatch(item) && item.method === 'batchAll')) return undefined;
      let next: number | undefined = at;
      for (const inner of item.args[0] as unknown as Call[]) {
        next = afterSuccess(inner, next);
        if (next === undefined || !is(next, 'ItemCompleted')) return undefined;
        next++;
      }
      return is(next, 'BatchCompleted') ? next + 1 : undefined;
    };
    const out: { ok: boolean; why?: string }[] = [];
    let at: number | undefined = 0;
    for (const item of items) {
      if (at === undefined) {
        out.push({ ok: false, why: 'its forceBatch outcome cannot be attributed' });
        continue;
      }
      // A failed item's own events are rolled back: its ItemFailed comes first.
      if (is(at, 'ItemFailed')) {
        out.push({ ok: false });
        at++;
        continue;
      }
      const end = afterSuccess(item, at);
      if (end === undefined || !is(end, 'ItemCompleted')) {
        out.push({ ok: false, why: 'its forceBatch outcome cannot be attributed' });
        at = undefined;
        continue;
      }
      out.push({ ok: true });
      at = end + 1;
    }
    return out;
  }

  /**
   * True when `event` is the utility pallet's `kind`. Older runtimes lack some of these events (the dev chain's
   * statemine 900 has no force_batch, ItemFailed or BatchCompletedWithErrors): a missing one matches nothing.
   */
  function isUtility(event: EventRecord['event'], kind: UtilityEvent): boolean {
    const known = api.events.utility[kind] as { is(e: EventRecord['event']): boolean } | undefined;
    return known?.is(event) === true;
  }

  function isUtilityOutcome(event: EventRecord['event']): boolean {
    return UTILITY_OUTCOMES.some((kind) => isUtility(event, kind));
  }
}

/** A submission waiting for its account's extrinsic in flight. */
interface Waiting {
  readonly signer: ChainSigner;
  readonly calls: readonly ChainCall[];
  readonly options: SubmitOptions;
  /** Answered already: sent, failed, or its caller stopped waiting (its signal). */
  readonly settled: boolean;
  succeed(inclusion: Inclusion): void;
  fail(err: unknown): void;
}

function waiter(
  signer: ChainSigner,
  calls: readonly ChainCall[],
  options: SubmitOptions,
  resolve: (inclusion: Inclusion) => void,
  reject: (err: unknown) => void,
): Waiting {
  let settled = false;
  const onAbort = () =>
    w.fail(new AilinkError('ABORTED', `${describeCall(calls[0]!)}: cancelled while waiting for inclusion`));
  const settle = () => {
    settled = true;
    options.signal?.removeEventListener('abort', onAbort);
  };
  const w: Waiting = {
    signer,
    calls,
    options,
    get settled() {
      return settled;
    },
    succeed(inclusion) {
      if (settled) return;
      settle();
      resolve(inclusion);
    },
    fail(err) {
      if (settled) return;
      settle();
      reject(err);
    },
  };
  if (options.signal?.aborted) onAbort();
  else options.signal?.addEventListener('abort', onAbort, { once: true });
  return w;
}

/** A chain that names no block time in its constants is taken to make blocks as often as Polkadot's relay chain. */
export const DEFAULT_BLOCK_TIME_MS = 6000;

/**
 * The runtime's block time from its constants: BABE's `expectedBlockTime`, else twice `timestamp.minimumPeriod` (a
 * Substrate runtime sets that to half its slot, Aura's and BABE's alike), else DEFAULT_BLOCK_TIME_MS. The nominal
 * time, not a measured one: the dev chain seals blocks on demand, within ~100 ms, while its Asset Hub runtime says
 * 12 s — and a deadline sized for the slower one only costs waiting longer for a coordinator that is gone.
 */
export function blockTimeOf(consts: {
  readonly babe?: { readonly expectedBlockTime?: { toString(): string } };
  readonly timestamp?: { readonly minimumPeriod?: { toString(): string } };
}): number {
  const expected = Number(consts.babe?.expectedBlockTime?.toString());
  if (Number.isFinite(expected) && expected > 0) return expected;
  const minimum = Number(consts.timestamp?.minimumPeriod?.toString());
  if (Number.isFinite(minimum) && minimum > 0) return 2 * minimum;
  return DEFAULT_BLOCK_TIME_MS;
}

/**
 * The most remark bytes and calls one shared extrinsic carries: it shares its block with everyone else's, and a single
 * declaration may hold 3 MiB (such a submission goes alone).
 */
const MAX_GROUP_REMARK_BYTES = 1024 * 1024;
const MAX_GROUP_CALLS = 100;

/**
 * Whether a waiting submission may share an extrinsic with others: remarks only, since a transfer pays for the remark
 * after it (a market price), and one submission's trailing transfer would pay for another's remark.
 */
const coalescible = (w: Waiting) => w.calls.every((c) => c.kind === 'remark');

/**
 * Takes the next group off the front of `queue`: the first submission, and after it, while they are coalescible
 * like it and wait for the same stage, as many as fit MAX_GROUP_CALLS and MAX_GROUP_REMARK_BYTES. Order is kept.
 */
function takeGroup(queue: Waiting[]): Waiting[] {
  const first = queue.shift()!;
  const group = [first];
  if (!coalescible(first)) return group;
  const bytes = (w: Waiting) =>
    w.calls.reduce((n, c) => n + (c.kind === 'remark' ? c.payload.byteLength : 0), 0);
  let calls = first.calls.length;
  let size = bytes(first);
  while (queue.length > 0) {
    const next = queue[0]!;
    if (
      !coalescible(next) ||
      (next.options.until ?? 'finalized') !== (first.options.until ?? 'finalized') ||
      calls + next.calls.length > MAX_GROUP_CALLS ||
      size + bytes(next) > MAX_GROUP_REMARK_BYTES
    )
      break;
    calls += next.calls.length;
    size += bytes(next);
    group.push(queue.shift()!);
  }
  return group;
}

const UTILITY_OUTCOMES = [
  'ItemCompleted',
  'ItemFailed',
  'BatchCompleted',
  'BatchCompletedWithErrors',
  'BatchInterrupted',
] as const;
type UtilityEvent = (typeof UTILITY_OUTCOMES)[number];

/** `chain_getBlock`'s answer, the parts `readInherentsOnly` reads. */
export interface RpcBlock {
  readonly block: {
    readonly header: { readonly parentHash: string };
    readonly extrinsics: readonly HexString[];
  };
}

/**
 * Unsigned calls `readInherentsOnly` takes without decoding: inherents of pallets that carry no protocol call (any
 * other call goes through the full decode, whatever signs it).
 */
const INHERENT_CALLS = /^(timestamp|parachainSystem|paraInherent|authorship|babe|grandpa|aura)\./;

/**
 * A block none of whose extrinsics is signed — inherents only: no events to read, no remark or transfer possible — as
 * `ChainClient.block` decodes it, read without @polkadot/types (most of an empty block's cost: bench:scale's index
 * sync). Each extrinsic is its SCALE length prefix, a version byte (0x04: unsigned, the format read here; bit 7 set:
 * signed), the call's pallet and call index, then its arguments, of which only `timestamp.set`'s compact moment is
 * read. `callName` names a call index as the runtime's metadata does (it may throw for an unknown one).
 * @returns undefined for any other block (a signed extrinsic, another format or call), to be decoded in full
 */
export function readInherentsOnly(
  number: number,
  hash: string,
  block: RpcBlock['block'],
  callName: (index: Uint8Array) => string,
): ChainBlock | undefined {
  let timestamp = 0;
  const extrinsics: BlockExtrinsic[] = [];
  for (const [index, hex] of block.extrinsics.entries()) {
    const bytes = hexToU8a(hex);
    const [at] = compactFromU8a(bytes);
    if (bytes.length < at + 3 || bytes[at] !== 4) return undefined;
    let name: string;
    try {
      name = callName(bytes.subarray(at + 1, at + 3));
    } catch {
      return undefined;
    }
    if (!INHERENT_CALLS.test(name)) return undefined;
    if (name === 'timestamp.set') timestamp = compactFromU8a(bytes.subarray(at + 3))[1].toNumber();
    extrinsics.push({ index, signer: null, calls: [{ call: { kind: 'other', name }, applied: true }] });
  }
  return { number, hash, parentHash: block.header.parentHash, timestamp, extrinsics };
}

const isRemark = (call: Call) =>
  call.section === 'system' && (call.method === 'remark' || call.method === 'remarkWithEvent');

const isTransfer = (call: Call) =>
  call.section === 'balances' &&
  (call.method === 'transfer' || call.method === 'transferAllowDeath' || call.method === 'transferKeepAlive');

const isBatch = (call: Call) =>
  call.section === 'utility' && ['batch', 'batchAll', 'forceBatch'].includes(call.method);

function describeCall(call: ChainCall): string {
  return call.kind === 'remark'
    ? `system.remarkWithEvent (${call.payload.byteLength} bytes)`
    : `balances transfer to ${call.to}`;
}

/**
 * A polkadot-js signer over a bare signing function: the payload is signed as is, or its blake2-256 when longer than
 * 256 bytes (Substrate's rule), and the signature carries the sr25519 tag of a MultiSignature.
 */
function rawSigner(signer: ChainSigner) {
  let id = 0;
  return {
    async signRaw({ data }: { data: string }) {
      const payload = u8aToU8a(data);
      const message = payload.length > 256 ? blake2AsU8a(payload, 256) : payload;
      const signature = new Uint8Array(65);
      signature[0] = 1; // MultiSignature::Sr25519
      signature.set(signer.signTransaction(message), 1);
      return { id: ++id, signature: u8aToHex(signature) as `0x${string}` };
    },
  };
}

/** How long a read at a block hash is answered from memory, and how many such answers are kept (WsProvider's own). */
const ANSWER_TTL_MS = 30_000;
const ANSWERS_KEPT = 1024;

/**
 * A WsProvider whose reads at a block hash are remembered only when they succeed. WsProvider's own cache keeps the
 * promise of such a read whatever becomes of it, and every look refreshes the entry's 30 s lifetime: a read cut off by
 * a dropped connection (or timed out) is then failed again, unasked, for as long as anything keeps retrying it. The
 * chaos harness found an organisation failing one block read 103 times in 100 s after a chain restart, never asking
 * the chain again. Turning that cache off would cost the many repeats it saves (521 of 929 requests in
 * test/chain/indexer.test.ts and client.test.ts, counted once: headers, runtime versions, storage and bodies at the
 * same hashes), and a capacity of 0 does not turn it off anyway. So reads go out uncached, and are remembered here
 * instead: a block hash's content never changes, and a failed read is forgotten as it fails.
 */
class ForgetfulWsProvider extends WsProvider {
  readonly #answers = new Map<string, { readonly answer: Promise<unknown>; readonly until: number }>();

  override send<T = unknown>(
    method: string,
    params: unknown[],
    isCacheable?: boolean,
    subscription?: Parameters<WsProvider['send']>[3],
  ): Promise<T> {
    if (!isCacheable) return super.send<T>(method, params, false, subscription);
    const key = `${method}:${JSON.stringify(params)}`;
    const now = performance.now();
    const kept = this.#answers.get(key);
    if (kept !== undefined && kept.until > now) return kept.answer as Promise<T>;
    const answer = super.send<T>(method, params, false, subscription);
    this.#answers.delete(key);
    this.#answers.set(key, { answer, until: now + ANSWER_TTL_MS });
    // A Map iterates in insertion order, which is expiry order here: the expired and those past the count go first.
    for (const [oldKey, old] of this.#answers) {
      if (old.until > now && this.#answers.size <= ANSWERS_KEPT) break;
      this.#answers.delete(oldKey);
    }
    answer.catch(() => {
      if (this.#answers.get(key)?.answer === answer) this.#answers.delete(key);
    });
    return answer;
  }
}

/** The connection dropped under a submission waiting for its inclusion: handled in `sendOnce`, never thrown out. */
class DroppedConnection extends Error {}

/** Whether `err` is a request cut off by a dropped connection (ours, or the provider's own words for it). */
function isDisconnect(err: unknown): boolean {
  return (
    err instanceof DroppedConnection ||
    (err instanceof Error &&
      !hasCode(err) &&
      /disconnected from|WebSocket is not connected|Abnormal Closure/.test(err.message))
  );
}

/** The socket failed before it opened (refused, reset, no route): ws's error event, said in words. */
class SocketError extends Error {
  constructor(event: unknown) {
    const said = (event as { message?: unknown; error?: { message?: unknown } } | null) ?? {};
    const message = said.message ?? said.error?.message;
    super(
      `the chain socket failed: ${typeof message === 'string' && message !== '' ? message : 'no reason given'}`,
    );
  }
}

/** Resolves once the socket is open, rejects on the provider's first error (as `throwOnConnect` does). */
function opened(provider: WsProvider): Promise<void> {
  if (provider.isConnected) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const offs = [
      provider.on('connected', () => {
        for (const off of offs) off();
        resolve();
      }),
      provider.on('error', (err: unknown) => {
        for (const off of offs) off();
        reject(new SocketError(err));
      }),
    ];
  });
}

/** `Metadata` runtime API id: the first 8 bytes of its name's blake2b-256. */
const METADATA_API_ID = blake2AsHex('Metadata', 64);

/**
 * The metadata to hand to `ApiPromise.create`, for a runtime whose `Metadata` runtime API is older than version 2
 * (like the dev chain's Rococo Asset Hub): `{ "<genesis hash>-<spec version>": <metadata hex> }`, read with
 * `state_getMetadata`, exactly what @polkadot/api would read itself, but without its warning
 * `API/INIT: MetadataApi not available, rpc::state::get_metadata will be used.`, which it prints through
 * console.warn on every connection (its logger's warn is unconditional, and `noInitWarn` does not cover it).
 * `undefined` for newer runtimes: the api then asks the runtime for its newest metadata version, and says nothing.
 */
async function legacyMetadata(provider: WsProvider): Promise<Record<string, HexString> | undefined> {
  const [genesis, version] = await Promise.all([
    provider.send<HexString>('chain_getBlockHash', [0]),
    provider.send<{ specVersion: number; apis: [string, number][] }>('state_getRuntimeVersion', []),
  ]);
  if (version.apis.some(([id, v]) => id === METADATA_API_ID && v >= 2)) return undefined;
  return { [`${genesis}-${version.specVersion}`]: await provider.send<HexString>('state_getMetadata', []) };
}

/**
 * Closes without rpc-core logging the requests the close cuts off. `api.disconnect()` alone, right after connecting,
 * closes the socket under the api's own pending `state_subscribeRuntimeVersion` request, and rpc-core prints it
 * (twice): `RPC-CORE: subscribeRuntimeVersion(): RuntimeVersion:: disconnected from ws://…: 1000:: Normal Closure`.
 * So: let the requests in flight be answered (bounded: a node that stopped answering is not waited for), close the
 * socket, and only then let the api drop its subscriptions, whose unsubscribes are then not sent at all (the node
 * forgets a closed connection's subscriptions anyway).
 */
async function closeQuietly(provider: WsProvider, api: ApiPromise): Promise<void> {
  if (provider.isConnected) {
    for (let waited = 0; provider.stats.active.requests > 0 && waited < 2_000; waited += 10)
      await new Promise((resolve) => setTimeout(resolve, 10));
    const closed = new Promise<void>((resolve) => {
      const off = provider.on('disconnected', () => {
        off();
        resolve();
      });
    });
    await provider.disconnect();
    await withDeadline(closed, 5_000, 'disconnect').catch(() => {});
  }
  await api.disconnect();
}

async function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new AilinkError('TIMEOUT', `${what} did not finish within ${ms} ms`, { details: { ms } })),
      ms,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
