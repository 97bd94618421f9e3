import {
  type ChainClient,
  declarationCalls,
  fileOf,
  filesOfOwner,
  grantOf,
  type Indexer,
  minerOf,
  minersOf,
  protocolCall,
  QUOTA_EXCEEDED,
  submitProtocol,
  termsOf,
} from '../../chain/index.ts';
import type { PeerRef } from '../../p2p/index.ts';
import type { Account } from '../../shared/account.ts';
import { AilinkError, hasCode } from '../../shared/errors.ts';
import {
  checkNotTaken,
  type ObjectRecord,
  type ObjectRegistry,
  type Placement,
  summaryOf,
} from '../object/index.ts';
import type { MinerClient } from '../protocol/index.ts';

/**
 * Runs `submit`, turning the chain's refusal of a declaration beyond its owner's space into QUOTA_EXCEEDED: the one
 * rejection a client can act on (buy space, delete files), which the gateways answer as such (S3's 403 QuotaExceeded).
 */
function quotaChecked<A extends unknown[], R>(submit: (...args: A) => Promise<R>) {
  return async (...args: A): Promise<R> => {
    try {
      return await submit(...args);
    } catch (err) {
      const reason = hasCode(err, 'CHAIN_CALL_REJECTED') ? String(err.details?.reason ?? err.message) : '';
      if (!reason.startsWith(QUOTA_EXCEEDED)) throw err;
      throw new AilinkError('QUOTA_EXCEEDED', reason, { cause: err });
    }
  };
}

/**
 * The chain as the object registry: miners come from sminer, objects from fileBank. A put is one extrinsic — a
 * `batchAll` of the upload declaration and the transfer report carrying the 12 miners' signed receipts — so the file
 * is Active in the block that declares it. A repair goes through restoral orders: the owner generates them, each new
 * miner claims its order, receives the rebuilt column, and completes the order with its own account.
 */
export function createChainRegistry(
  deps: {
    chain: Pick<ChainClient, 'submit' | 'close'>;
    indexer: Pick<Indexer, 'state' | 'sync' | 'waitFor' | 'calls' | 'close'>;
    account: Account;
    miners: MinerClient;
  },
  options: { deadlineMs: number } = { deadlineMs: 60_000 },
): ObjectRegistry {
  const { indexer, account } = deps;
  const submit = (calls: Parameters<typeof submitProtocol>[2]) =>
    submitProtocol(deps, account, calls, { deadlineMs: options.deadlineMs });

  function recordOf(fid: string): Placement | null {
    const file = fileOf(indexer.state, fid);
    if (file === undefined) return null;
    const record: ObjectRecord = {
      version: 1,
      fid,
      size: file.size,
      ...(file.name === null ? {} : { name: file.name }),
      owner: file.owner,
      createdAt: file.declaredTime,
      profile: file.profile,
      segments: file.segments,
      encryption: file.encryption,
    };
    return {
      record,
      // A column whose miner left sminer keeps its account as id: no peer has it, so it reads as unreachable.
      miners: file.placements.map((a) => (a === null ? '' : (minerOf(indexer.state, a)?.peerId ?? a))),
      chain: {
        state: file.state,
        declaredAt: file.declaredAt,
        activeAt: file.activeAt,
        accounts: file.placements,
        restoralOrders: Object.keys(file.orders).map(Number),
      },
    };
  }

  return {
    needsReceipts: true,
    async directory() {
      await indexer.sync();
      return minersOf(indexer.state)
        .filter((m) => m.state === 'positive')
        .map((m): PeerRef => ({ peerId: m.peerId, addrs: m.addrs }));
    },
    async declare(record, deal, columns, entry) {
      await indexer.sync();
      // A Pending record of the fid is an incomplete declaration, which the chain lets this one replace.
      const stored = fileOf(indexer.state, record.fid);
      if (stored?.state === 'Active' && !checkNotTaken(stored, record)) return;
      const receipts = columns.map((c, index) => {
        if (c.receipt === undefined) {
          throw new AilinkError('INVALID_INPUT', `column ${index} has no signed receipt from its miner`);
        }
        return { index, miner: c.receipt.miner, signature: c.receipt.signature };
      });
      // One extrinsic, in as many remarks as the segments need: Active in the block that declares it.
      await quotaChecked(submit)(
        declarationCalls(
          {
            fid: record.fid,
            deal,
            owner: record.owner,
            ...(record.name === undefined ? {} : { name: record.name }),
            size: record.size,
            profile: record.profile,
            segments: record.segments,
            encryption: record.encryption,
            ...(entry === undefined ? {} : { entry }),
          },
          receipts,
        ),
      );
    },
    async get(fid) {
      await indexer.sync();
      return recordOf(fid);
    },
    async reassign(fid, moves, rebuild) {
      await indexer.sync();
      const file = fileOf(indexer.state, fid);
      if (file === undefined) {
        throw new AilinkError('OBJECT_NOT_FOUND', `no object ${fid} is recorded on chain`);
      }
      const columns = [...moves.keys()];
      const toOrder = columns.filter((c) => file.orders[c] === undefined);
      if (toOrder.length > 0) {
        await submit(toOrder.map((index) => protocolCall('fileBank.generateRestoralOrder', { fid, index })));
      }
      const column = (index: number) => ({
        fid,
        index,
        fragments: file.segments.map((s) => s.fragments[index]!),
      });
      const signal = () => AbortSignal.timeout(options.deadlineMs);
      await Promise.all(
        [...moves].map(([index, peer]) =>
          deps.miners.restore(peer, 'claim', column(index), { signal: signal() }),
        ),
      );
      await rebuild();
      const blocks = await Promise.all(
        [...moves].map(([index, peer]) =>
          deps.miners.restore(peer, 'complete', column(index), { signal: signal() }),
        ),
      );
      await indexer.waitFor(Math.max(...blocks), options.deadlineMs);
    },
    async list() {
      await indexer.sync();
      return filesOfOwner(indexer.state, account.address)
        .map((fid) => recordOf(fid))
        .filter((p): p is Placement => p !== null)
        .map((p) => summaryOf(p.record));
    },
    async access(fid, reader) {
      await indexer.sync();
      const wrap = grantOf(indexer.state, fid, reader.address)?.wrap;
      return {
        terms: termsOf(indexer.state, fid) !== undefined,
        grant: wrap !== undefined && wrap.recipient === reader.readerKey ? wrap : null,
      };
    },
    async close() {
      indexer.close();
      await deps.chain.close();
    },
  };
}
