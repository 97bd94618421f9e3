import Database from 'better-sqlite3';
import { AilinkError } from '../shared/errors.ts';
import type { ChainBlock, ChainClient } from './client.ts';
import { protocolConfigToJson } from './config.ts';
import type { CallContext, Payment, ProtocolConfig } from './pallets/context.ts';
import { applyBlockHooks, applyRemark, flagUnexplainedPotPayments } from './protocol.ts';
import { decodeRemark } from './remark.ts';
import { createSqliteState, GENESIS_DIGEST, nextDigest, Overlay, type StateReader } from './state.ts';

/** Every protocol call the indexer met, applied or not: the audit trail of the rules. */
export interface CallRecord {
  readonly block: number;
  readonly extrinsic: number;
  /** Position among the extrinsic's calls (batches flattened). */
  readonly item: number;
  readonly signer: string;
  readonly call: string | null;
  readonly outcome: 'applied' | 'rejected';
  readonly reason: string | null;
}

export interface Indexer {
  /** The protocol state after the last applied block. */
  readonly state: StateReader;
  /** The protocol configuration the state is built with (the network's genesis parameters). */
  readonly config: ProtocolConfig;
  /** The last applied block (0 before any). */
  height(): number;
  /** The state digest after block `at` (default: the last applied one). */
  digest(at?: number): string;
  /**
   * The hash of the last applied block (0x-hex; '' before any): chain randomness every reader of the chain sees, which
   * placement draws from (src/chain/placement.ts).
   */
  blockHash(): string;
  /**
   * Applies finalized blocks up to `height` (default: the finalized head as of the call, or later). Resumes where it
   * stopped. One sync runs at a time; calls to the head (no height, no options) that come while one waits to start
   * share it.
   */
  sync(height?: number, options?: { signal?: AbortSignal; onBlock?: (n: number) => void }): Promise<number>;
  /** Keeps syncing as blocks are finalized, until `stop()`. */
  follow(): Promise<{ stop(): Promise<void> }>;
  /** Resolves once block `height` is applied (syncing if needed). @throws CHAIN_TIMEOUT */
  waitFor(height: number, deadlineMs?: number): Promise<void>;
  calls(filter?: { outcome?: 'applied' | 'rejected'; fromBlock?: number }): CallRecord[];
  close(): void;
}

export type ChainSource = Pick<
  ChainClient,
  'genesisHash' | 'block' | 'blocks' | 'finalizedHeight' | 'followFinalized'
>;

export interface IndexerOptions {
  /** SQLite file (created if missing); one file per chain. */
  readonly path: string;
  readonly config: ProtocolConfig;
  /** Blocks fetched ahead, as one window, while the window before is applied (default 64). */
  readonly prefetch?: number;
}

/**
 * Follows finalized blocks and folds their protocol remarks into the state, block by block, in one SQLite
 * transaction per block (state, digest, height and the call log together), so a stopped indexer resumes exactly
 * where it was. A call that breaks a rule is recorded with its reason and changes nothing; it never stops the fold.
 * @throws INDEXER_STATE_MISMATCH when the file belongs to another chain, or the chain no longer contains the blocks
 * it applied (a dev chain started afresh).
 */
export function openIndexer(chain: ChainSource, options: IndexerOptions): Indexer {
  const db = new Database(options.path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  // Several CLI processes may share one index file; the writer of a block holds the lock for milliseconds.
  db.pragma('busy_timeout = 10000');
  db.exec(`
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS blocks (number INTEGER PRIMARY KEY, hash TEXT NOT NULL, digest TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS calls (block INTEGER NOT NULL, extrinsic INTEGER NOT NULL, item INTEGER NOT NULL,
      signer TEXT NOT NULL, call TEXT, outcome TEXT NOT NULL, reason TEXT, PRIMARY KEY (block, extrinsic, item));
  `);
  const store = createSqliteState(db);
  const q = {
    meta: db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?'),
    setMeta: db.prepare(
      'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
    ),
    last: db.prepare<[], { number: number; hash: string; digest: string }>(
      'SELECT number, hash, digest FROM blocks ORDER BY number DESC LIMIT 1',
    ),
    blockAt: db.prepare<[number], { hash: string; digest: string }>(
      'SELECT hash, digest FROM blocks WHERE number = ?',
    ),
    insertBlock: db.prepare('INSERT INTO blocks (number, hash, digest) VALUES (?, ?, ?)'),
    calls: db.prepare<[{ from: number; outcome: string | null }], CallRecord>(
      `SELECT block, extrinsic, item, signer, call, outcome, reason FROM calls
       WHERE block >= @from AND (@outcome IS NULL OR outcome = @outcome) ORDER BY block, extrinsic, item`,
    ),
    insertCall: db.prepare(
      'INSERT INTO calls (block, extrinsic, item, signer, call, outcome, reason) VALUES (?, ?, ?, ?, ?, ?, ?)',
    ),
  };
  const configText = JSON.stringify(protocolConfigToJson(options.config));
  for (const [key, expected, what] of [
    ['genesis', chain.genesisHash, 'chain (genesis hash)'],
    ['config', configText, 'protocol configuration'],
  ] as const) {
    const stored = q.meta.get(key)?.value;
    if (stored === undefined) q.setMeta.run(key, expected);
    else if (stored !== expected) {
      db.close();
      throw new AilinkError(
        'INDEXER_STATE_MISMATCH',
        `${options.path} indexes another ${what}: expected ${expected}, the file has ${stored}; use another file`,
      );
    }
  }

  const last = () => q.last.get() ?? { number: 0, hash: '', digest: GENESIS_DIGEST };

  const applyBlock = db.transaction((block: ChainBlock) => {
    const previous = last();
    // Another process sharing this file applied it meanwhile (the write lock is taken before reading).
    if (block.number <= previous.number && q.blockAt.get(block.number)?.hash === block.hash) return;
    if (block.number !== previous.number + 1) {
      throw new AilinkError(
        'INDEXER_STATE_MISMATCH',
        `expected block ${previous.number + 1}, got ${block.number}`,
      );
    }
    if (previous.number > 0 && block.parentHash !== previous.hash) {
      throw new AilinkError(
        'INDEXER_STATE_MISMATCH',
        `block ${block.number}'s parent is ${block.parentHash}, but block ${previous.number} was ${previous.hash}: the chain was replaced; index it into a new file`,
      );
    }
    const pending = new Overlay(store);
    const blockCtx = {
      block: { number: block.number, hash: block.hash, timestamp: block.timestamp },
      genesisHash: chain.genesisHash,
      config: options.config,
    };
    for (const w of applyBlockHooks(pending, blockCtx)) applyWrite(pending, w);
    for (const ex of block.extrinsics) {
      if (ex.signer === null) continue;
      let paidToPot = 0n;
      // The transfers since the previous remark: each pays for the next remark only (a market price, once).
      let payments: Payment[] = [];
      ex.calls.forEach(({ call, applied, reason }, item) => {
        if (call.kind === 'transfer' && applied) {
          if (call.to === options.config.pot) paidToPot += call.amount;
          payments.push({ to: call.to, amount: call.amount });
        }
        if (call.kind !== 'remark') return;
        const ctx: CallContext = { ...blockCtx, caller: ex.signer!, paidToPot, payments };
        payments = [];
        const outcome = applied
          ? applyRemark(pending, ctx, call.payload)
          : notApplied(call.payload, reason ?? 'the extrinsic failed');
        if (outcome.kind === 'foreign') {
          // Not our remark: a pot transfer before it was paid outside any payout.
          if (ex.signer === options.config.pot && ctx.payments.length > 0) {
            for (const w of flagUnexplainedPotPayments(pending, blockCtx, ctx.payments))
              applyWrite(pending, w);
          }
          return;
        }
        // A rejected call writes only the pot's refund of what it paid, if anything.
        for (const w of ('writes' in outcome ? outcome.writes : undefined) ?? []) applyWrite(pending, w);
        q.insertCall.run(
          block.number,
          ex.index,
          item,
          ex.signer,
          outcome.call,
          outcome.kind,
          outcome.kind === 'rejected' ? outcome.reason : null,
        );
      });
      // The pot's transfers that no remark followed: paid outside any payout.
      if (ex.signer === options.config.pot && payments.length > 0) {
        for (const w of flagUnexplainedPotPayments(pending, blockCtx, payments)) applyWrite(pending, w);
      }
    }
    const writes = pending.writes();
    store.apply(writes);
    q.insertBlock.run(block.number, block.hash, nextDigest(previous.digest, block.number, writes));
  });

  /** Checks that what we applied is still the chain we are reading (a restarted dev chain is a new chain). */
  async function checkContinuity(): Promise<void> {
    const at = last();
    if (at.number === 0) return;
    const block = await chain.block(at.number).catch(() => null);
    if (block === null || block.hash !== at.hash) {
      throw new AilinkError(
        'INDEXER_STATE_MISMATCH',
        `${options.path} applied block ${at.number} = ${at.hash}, but the chain ${block === null ? 'is not that high' : `has ${block.hash}`}; index it into a new file`,
      );
    }
  }
  let continuity: Promise<void> | undefined;

  let syncing: Promise<number> = Promise.resolve(0);
  /**
   * A sync to the finalized head that is queued behind the one running and has not started yet: callers of `sync()`
   * meanwhile share it instead of each queueing one more. It reads the finalized head only once it starts, so it
   * brings every caller at least to the head as of its call, as a sync of its own would. Eight puts through one
   * gateway each syncing before their placement and their declaration queued 32 syncs of two requests each, ≈ 0.6 s
   * apiece on a loaded machine (issue 16, small puts).
   */
  let queuedHead: Promise<number> | undefined;
  const prefetch = options.prefetch ?? 64;
  async function syncOnce(
    target: number | undefined,
    opts: { signal?: AbortSignal; onBlock?: (n: number) => void },
  ): Promise<number> {
    continuity ??= checkContinuity();
    await continuity;
    const to = target ?? (await chain.finalizedHeight());
    // Blocks come in windows of `prefetch`: the next window is in flight while this one is applied.
    const window = (from: number): Promise<ChainBlock[]> | undefined => {
      if (from > to) return undefined;
      const p = chain.blocks(from, Math.min(to, from + prefetch - 1));
      p.catch(() => {});
      return p;
    };
    let next = last().number + 1;
    for (let ahead = window(next); ahead !== undefined; ) {
      const blocks = await ahead;
      ahead = window(next + blocks.length);
      for (const block of blocks) {
        opts.signal?.throwIfAborted();
        applyBlock.immediate(block);
        opts.onBlock?.(next);
        next++;
      }
    }
    return last().number;
  }

  const indexer: Indexer = {
    state: store,
    config: options.config,
    height: () => last().number,
    blockHash: () => last().hash,
    digest(at) {
      if (at === undefined) return last().digest;
      if (at === 0) return GENESIS_DIGEST;
      const row = q.blockAt.get(at);
      if (row === undefined)
        throw new AilinkError('NOT_FOUND', `block ${at} is not indexed yet (height ${last().number})`);
      return row.digest;
    },
    sync(height, opts = {}) {
      // One sync at a time: a second caller waits for the first and then continues from where it ended.
      const toHead = height === undefined && opts.signal === undefined && opts.onBlock === undefined;
      if (toHead && queuedHead !== undefined) return queuedHead;
      const next = syncing
        .catch(() => 0)
        .then(() => {
          if (toHead) queuedHead = undefined;
          return syncOnce(height, opts);
        });
      if (toHead) queuedHead = next;
      syncing = next;
      return next;
    },
    async follow() {
      let stopped = false;
      const unsubscribe = await chain.followFinalized((h) => {
        // A sync to the head already queued goes at least to h: it starts after h was finalized.
        if (!stopped) (queuedHead ?? indexer.sync(h)).catch(() => {});
      });
      try {
        await indexer.sync();
      } catch (err) {
        stopped = true;
        unsubscribe();
        throw err;
      }
      return {
        async stop() {
          stopped = true;
          unsubscribe();
          await syncing.catch(() => {});
        },
      };
    },
    async waitFor(height, deadlineMs = 60_000) {
      const deadline = AbortSignal.timeout(deadlineMs);
      while (last().number < height) {
        if (deadline.aborted) {
          throw new AilinkError('CHAIN_TIMEOUT', `block ${height} was not indexed within ${deadlineMs} ms`);
        }
        const finalized = await chain.finalizedHeight();
        if (finalized >= height) await indexer.sync(height);
        else await new Promise((r) => setTimeout(r, 100));
      }
    },
    calls(filter = {}) {
      return q.calls.all({ from: filter.fromBlock ?? 0, outcome: filter.outcome ?? null });
    },
    close() {
      db.close();
    },
  };
  return indexer;
}

function applyWrite(overlay: Overlay, w: { key: string; value: unknown }): void {
  if (w.value === null) overlay.delete(w.key);
  else overlay.put(w.key, w.value as never);
}

/** A protocol remark inside an extrinsic (or batch item) that failed on chain: recorded, never applied. */
function notApplied(payload: Uint8Array, reason: string) {
  const decoded = decodeRemark(payload);
  if (decoded.kind === 'foreign') return decoded;
  const call = decoded.kind === 'call' ? decoded.call.name : decoded.call;
  return { kind: 'rejected' as const, call, reason: `not applied on chain: ${reason}` };
}
