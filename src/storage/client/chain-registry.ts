import { randomBytes } from 'node:crypto';
import {
  type ChainCall,
  type ChainClient,
  declarationCalls,
  deferrableColumns,
  drawPlacement,
  epochOf,
  fileOf,
  filesOfOwner,
  formatBytes,
  grantOf,
  holdBlocks,
  type Indexer,
  MAX_DECLARATION_BYTES,
  MAX_SEGMENTS,
  minerOf,
  minersOf,
  type ObjectEntry,
  placementEpoch,
  protocolCall,
  QUOTA_EXCEEDED,
  remarkBytes,
  restoralRanking,
  SLOT_TAKEN,
  serviceBytesOf,
  spaceUseOf,
  submitProtocol,
  submitProtocolEach,
  termsOf,
  ticketDraw,
  usedBytesOf,
  usedSlots,
} from '../../chain/index.ts';
import type { PeerRef } from '../../p2p/index.ts';
import type { Account } from '../../shared/account.ts';
import { AilinkError, hasCode } from '../../shared/errors.ts';
import {
  checkNotTaken,
  type DrawReserve,
  type ObjectRecord,
  type ObjectRegistry,
  type PlacedColumn,
  type Placement,
  type PlacementWant,
  type PreparedDeclaration,
  summaryOf,
} from '../object/index.ts';
import type { MinerClient } from '../protocol/index.ts';

/** A placement ticket as a declaration names it. */
type TicketRef = { readonly epoch: number; readonly slot: number };

/** A placement ticket drawn for an upload and not declared yet. */
interface Ticket {
  readonly epoch: number;
  readonly slot: number;
  readonly columns: number;
  /** The last block of the ticket's hold on chain, once the upload took one (`placement.holdTicket`). */
  heldUntil?: number;
  /** The segments of the owner's space the hold reserves. */
  reserved?: number;
  /** The hold check under way, if any: one at a time per upload. */
  keeping?: Promise<void> | undefined;
  /** The chain refused to hold it (another client of the account declared with its slot): asked no more. */
  refused?: boolean;
  /** Why the upload cannot be declared, found while holding it: the space left is short of its whole size. */
  doomed?: AilinkError;
}

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
 * `batchAll` of the upload declaration and the transfer report carrying the miners' signed receipts (and naming the
 * columns the put deferred, which get restoral orders at once) — so the file is Active in the block that declares it. A repair goes through restoral orders: the owner generates them, each new
 * miner claims its order, receives the rebuilt column, and completes the order with its own account.
 */
export function createChainRegistry(
  deps: {
    chain: Pick<ChainClient, 'submit' | 'close'>;
    indexer: Pick<Indexer, 'state' | 'config' | 'sync' | 'waitFor' | 'calls' | 'close' | 'blockHash'>;
    account: Account;
    miners: MinerClient;
    /** Random bytes (default: the system's): placement slots are drawn with it. */
    random?: (n: number) => Uint8Array;
  },
  options: {
    deadlineMs: number;
    /**
     * Free space counts toward a miner's chance of a column only up to this many bytes (default 1 TiB): a miner
     * declaring a huge capacity is no likelier to be drawn than one with this much free (placement's per-miner cap).
     */
    placementCapBytes?: number;
  } = { deadlineMs: 60_000 },
): ObjectRegistry {
  const { indexer, account } = deps;
  const random = deps.random ?? randomBytes;
  const capBytes = options.placementCapBytes ?? 2 ** 40;
  /** Puts drawn so far: two puts after the same block must not land on the same miners. */
  let draws = 0;
  /**
   * Placement tickets drawn and not declared yet, by the upload's deal (networks whose rules draw placements): the
   * declaration names the ticket its miners were drawn with.
   */
  const tickets = new Map<string, Ticket>();
  const submit = (calls: Parameters<typeof submitProtocol>[2]) =>
    submitProtocol(deps, account, calls, { deadlineMs: options.deadlineMs });

  /**
   * Takes a placement ticket for the upload `want.deal`, kept until `declare`: a slot of this account not declared with
   * yet, drawn at random so that two clients of one account (two gateways) rarely take the same one, in the epoch of
   * the last block or, when all of its slots are taken, the latest earlier epoch still valid that has one open (an
   * account then has `slotsPerEpoch` × (`epochsValid` + 1) uploads in flight, not `slotsPerEpoch`).
   * @returns the ticket's draw (the first `columns + spares` miners, the only ones the rules accept), or undefined when
   *   the epoch's snapshot lists no more miners than that: the rules then accept any positive miner
   * @throws NOT_ENOUGH_MINERS before the chain's first snapshot; PLACEMENT_SLOTS_TAKEN when every slot of every valid
   *   epoch is taken
   */
  function drawTicket(want: PlacementWant, height: number): string[] | undefined {
    const rules = indexer.config.placement!;
    const current = epochOf(rules, height);
    if (placementEpoch(indexer.state, current) === undefined) {
      throw new AilinkError(
        'NOT_ENOUGH_MINERS',
        `the chain keeps no placement snapshot for epoch ${current} (block ${height}): expected one from the epoch's first block; is the index synced?`,
      );
    }
    for (const [deal, t] of tickets) if (lastBlockOf(t) < height) tickets.delete(deal);
    const oldest = Math.max(0, current - rules.epochsValid);
    for (let epoch = current; epoch >= oldest; epoch--) {
      if (placementEpoch(indexer.state, epoch) === undefined) continue;
      const taken = new Set(usedSlots(indexer.state, epoch, account.address));
      for (const t of tickets.values()) if (t.epoch === epoch) taken.add(t.slot);
      const open = Array.from({ length: rules.slotsPerEpoch }, (_, slot) => slot).filter(
        (s) => !taken.has(s),
      );
      if (open.length === 0) continue;
      const slot = open[Buffer.from(random(4)).readUInt32BE(0) % open.length]!;
      tickets.set(want.deal, { epoch, slot, columns: want.columns });
      return (
        ticketDraw(indexer.state, rules, { epoch, slot, by: account.address }, want.columns) ?? undefined
      );
    }
    throw new AilinkError(
      'PLACEMENT_SLOTS_TAKEN',
      `all ${rules.slotsPerEpoch} placement slots of each valid epoch (${oldest}…${current}) are taken by uploads of ${account.address}: the next epoch starts at block ${(current + 1) * rules.epochBlocks}`,
    );
  }

  /**
   * Another open slot of `ticket`'s epoch whose draw accepts every miner in `placed`, for a declaration whose slot
   * another client of this account (a second gateway) declared with first. On a network no larger than one draw any
   * open slot does; on a larger one such a slot is rare, and the upload fails as before.
   */
  async function otherTicket(
    ticket: { readonly epoch: number; readonly slot: number },
    placed: readonly string[],
    columns: number,
  ): Promise<{ epoch: number; slot: number } | undefined> {
    await indexer.sync();
    const rules = indexer.config.placement!;
    const taken = new Set(usedSlots(indexer.state, ticket.epoch, account.address));
    for (const t of tickets.values()) if (t.epoch === ticket.epoch) taken.add(t.slot);
    for (let slot = 0; slot < rules.slotsPerEpoch; slot++) {
      if (taken.has(slot)) continue;
      const drawn = ticketDraw(
        indexer.state,
        rules,
        { epoch: ticket.epoch, slot, by: account.address },
        columns,
      );
      if (drawn === null) return undefined;
      if (drawn === undefined || placed.every((m) => drawn.includes(m))) return { epoch: ticket.epoch, slot };
    }
    return undefined;
  }

  /** The last block a declaration may name `ticket` in: its epoch's validity, or its hold's. */
  function lastBlockOf(ticket: Ticket): number {
    const rules = indexer.config.placement!;
    return ticket.heldUntil ?? (ticket.epoch + rules.epochsValid + 1) * rules.epochBlocks - 1;
  }

  /**
   * Holds the upload's ticket on chain (`placement.holdTicket`) — at once while the put has segments to come
   * (`underWay`), else once less than half a hold's length is left of it — and renews the hold when as little is left
   * of it, or when the put needs more than it reserves. A put longer than a draw's validity then still declares with
   * the miners it was drawn, and miners keep the fragments of the `reserve.segments` it holds past their collection
   * grace. One check at a time per upload; a hold that failed on the way is tried again at the next call, one the
   * rules refused is not, and the declaration says what the chain makes of its ticket.
   * @throws QUOTA_EXCEEDED when the chain refuses to reserve an object's whole size (`reserve.whole`): its declaration
   *   would be refused too, so the put can stop before sending the rest
   */
  async function keepDraw(deal: string, underWay: boolean, reserve: DrawReserve): Promise<void> {
    const ticket = tickets.get(deal);
    if (ticket === undefined) return;
    if (ticket.refused !== true) {
      ticket.keeping ??= holdOrRenew(ticket, deal, underWay, reserve).finally(() => {
        ticket.keeping = undefined;
      });
      await ticket.keeping;
    }
    if (ticket.doomed !== undefined) throw ticket.doomed;
  }

  async function holdOrRenew(ticket: Ticket, deal: string, underWay: boolean, reserve: DrawReserve) {
    try {
      const rules = indexer.config.placement!;
      const height = await indexer.sync();
      // Never past the most an object may have, nor, while its size is unknown, the space left: what the space does
      // not cover is then the declaration's to refuse, and the hold keeps the draw meanwhile. An object's whole size
      // is asked for as it is, for the chain to refuse at once if it must.
      const reserved = ticket.reserved ?? 0;
      const space = spaceUseOf(indexer.state, account.address);
      const left = Math.floor(space.left / reserve.profile.segmentSize);
      // What is already on the miners outgrows all the space there is: the declaration cannot pass, so stop sending
      // now (a put of unknown size learns it here; one of known size from the chain's refusal of its first hold).
      if (reserve.stored !== undefined && reserve.stored > reserved + left) {
        const has = (reserved + left) * reserve.profile.segmentSize;
        const needs = reserve.stored * reserve.profile.segmentSize;
        ticket.doomed = new AilinkError(
          'QUOTA_EXCEEDED',
          `${QUOTA_EXCEEDED}: upload ${deal} has ${formatBytes(needs)} placed already, and ${account.address}'s space can hold ${formatBytes(has)} of it (${formatBytes(space.left)} left of ${formatBytes(space.bought)} bought, besides its hold); stopped before sending more. Buy more with \`ailink space buy GIB --for ${account.address}\` or delete files, then put again`,
        );
        return;
      }
      const wanted = Math.min(MAX_SEGMENTS, reserve.segments);
      const segments = Math.max(
        1,
        reserved,
        reserve.whole === true ? wanted : Math.min(wanted, reserved + left),
      );
      const held = ticket.heldUntil !== undefined;
      const soon = lastBlockOf(ticket) - height <= holdBlocks(rules) / 2;
      if (!soon && !(held && segments > reserved) && !(underWay && !held)) return;
      const { block } = await submit([
        protocolCall('placement.holdTicket', {
          deal,
          epoch: ticket.epoch,
          slot: ticket.slot,
          profile: {
            segmentSize: reserve.profile.segmentSize,
            dataFragments: reserve.profile.dataFragments,
            parityFragments: reserve.profile.parityFragments,
          },
          segments,
        }),
      ]);
      ticket.heldUntil = block + holdBlocks(rules);
      ticket.reserved = segments;
    } catch (err) {
      // A refused hold is not asked for again; a refused renewal is (another upload of the account may have taken
      // the space it asked for), so that the hold does not end under a long upload.
      if (hasCode(err, 'CHAIN_CALL_REJECTED') && ticket.heldUntil === undefined) ticket.refused = true;
      const reason = hasCode(err, 'CHAIN_CALL_REJECTED') ? String(err.details?.reason ?? '') : '';
      if (reserve.whole === true && reason.startsWith(QUOTA_EXCEEDED))
        ticket.doomed = new AilinkError('QUOTA_EXCEEDED', reason, { cause: err });
    }
  }

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

  /** The deal of each prepared declaration, whose ticket goes once the declaration stands. */
  const dealOf = new WeakMap<PreparedDeclaration, string>();

  /**
   * What declaring `record` takes: its calls for a placement ticket, and the ticket its miners were drawn with; null
   * when the chain has this object already.
   */
  async function readyDeclaration(
    record: ObjectRecord,
    deal: string,
    columns: readonly (PlacedColumn | null)[],
    entry: ObjectEntry | undefined,
  ): Promise<{
    ticket: Ticket | undefined;
    calls: (placement: TicketRef | undefined) => ChainCall[];
  } | null> {
    await indexer.sync();
    // A Pending record of the fid is an incomplete declaration, which the chain lets this one replace.
    const stored = fileOf(indexer.state, record.fid);
    if (stored?.state === 'Active' && !checkNotTaken(stored, record)) return null;
    const receipts = columns.flatMap((c, index) => {
      if (c === null) return [];
      if (c.receipt === undefined) {
        throw new AilinkError('INVALID_INPUT', `column ${index} has no signed receipt from its miner`);
      }
      return [{ index, miner: c.receipt.miner, signature: c.receipt.signature }];
    });
    const deferred = columns.flatMap((c, index) => (c === null ? [index] : []));
    // A put that took long may be near its ticket's end: hold it before declaring (nothing to do otherwise).
    await keepDraw(deal, false, { profile: record.profile, segments: record.segments.length }).catch(() => {
      // The declaration's own refusal says the same, with the object's final size.
    });
    const ticket = tickets.get(deal);
    if (indexer.config.placement !== undefined && ticket === undefined) {
      throw new AilinkError(
        'INVALID_INPUT',
        `no placement was drawn for the upload ${deal} (or it was declared already): the chain accepts its columns only from the miners \`directory(want)\` drew with the upload's deal`,
      );
    }
    // One extrinsic, in as many remarks as the segments need: Active in the block that declares it.
    const calls = (placement: TicketRef | undefined) =>
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
          ...(placement === undefined ? {} : { placement: { epoch: placement.epoch, slot: placement.slot } }),
        },
        receipts,
        deferred,
      );
    return { ticket, calls };
  }

  /** Declares one object in an extrinsic of its own, drawing another slot when another client took its ticket's. */
  async function declareAlone(
    record: ObjectRecord,
    deal: string,
    columns: readonly (PlacedColumn | null)[],
    entry?: ObjectEntry,
  ): Promise<void> {
    const ready = await readyDeclaration(record, deal, columns, entry);
    if (ready === null) return;
    const { ticket } = ready;
    try {
      await quotaChecked(submit)(ready.calls(ticket));
    } catch (err) {
      const slotTaken =
        hasCode(err, 'CHAIN_CALL_REJECTED') && String(err.details?.reason ?? '').startsWith(SLOT_TAKEN);
      const other =
        ticket === undefined || !slotTaken
          ? undefined
          : await otherTicket(
              ticket,
              columns.flatMap((c) => (c?.receipt === undefined ? [] : [c.receipt.miner])),
              columns.length,
            );
      if (other === undefined) throw err;
      tickets.set(deal, { ...other, columns: ticket!.columns });
      await quotaChecked(submit)(ready.calls(other));
    }
    tickets.delete(deal);
  }

  return {
    needsReceipts: true,
    deferrableColumns,
    async keepDraw(deal, reserve) {
      if (indexer.config.placement !== undefined) await keepDraw(deal, true, reserve);
    },
    async directory(want) {
      const height = await indexer.sync();
      const positive = minersOf(indexer.state).filter((m) => m.state === 'positive');
      const ref = (m: (typeof positive)[number]): PeerRef => ({ peerId: m.peerId, addrs: m.addrs });
      if (want === undefined) return positive.map(ref);
      const rules = indexer.config.placement;
      if (rules !== undefined) {
        const drawn = drawTicket(want, height);
        if (drawn !== undefined) {
          // Only drawn miners: the rules refuse a receipt from any other. One that left since the snapshot, or has
          // no room left for this object's column, is skipped (the draw's spares are for it).
          const byAddress = new Map(positive.map((m) => [m.address, m] as const));
          return drawn.flatMap((address) => {
            const m = byAddress.get(address);
            const free = m === undefined ? 0 : m.capacity - usedBytesOf(indexer.state, address);
            return m !== undefined && free >= want.columnBytes ? [ref(m)] : [];
          });
        }
      }
      // Placement (issue 17 item 6) where the rules check none, or any miner is drawn: by free space from the last
      // block's hash, the uploader and its count of puts, instead of the first miners in address order. Free space is
      // capacity minus the service data the chain records on the miner (idle files give way to service data, as in
      // CESS).
      const drawn = drawPlacement(
        positive.map((m) => ({
          id: m.address,
          free: Math.max(0, m.capacity - serviceBytesOf(indexer.state, m.address)),
        })),
        `${indexer.blockHash()}\n${account.address}\n${draws++}`,
        {
          columns: want.columns,
          spares: want.columns,
          columnBytes: want.columnBytes,
          capBytes: Math.max(capBytes, want.columnBytes),
        },
      );
      const order = new Map(drawn.map((address, i) => [address, i] as const));
      // The drawn first, in draw order; every other miner after them (still a reachable peer for reads and repairs).
      return positive
        .map((m) => ({ m, at: order.get(m.address) ?? drawn.length }))
        .sort((a, b) => a.at - b.at)
        .map(({ m }) => ref(m));
    },
    async departed() {
      await indexer.sync();
      return minersOf(indexer.state)
        .filter((m) => m.state !== 'positive' && m.peerId !== '')
        .map((m): PeerRef => ({ peerId: m.peerId, addrs: m.addrs }));
    },
    declare: declareAlone,
    async prepare(record, deal, columns, entry) {
      const ready = await readyDeclaration(record, deal, columns, entry);
      const prepared: PreparedDeclaration = {
        fid: record.fid,
        calls: ready === null ? [] : ready.calls(ready.ticket),
        declareAlone: () => declareAlone(record, deal, columns, entry),
      };
      dealOf.set(prepared, deal);
      return prepared;
    },
    async declareTogether(prepared, alongside) {
      const calls = [...prepared.flatMap((p) => p.calls), ...alongside];
      if (calls.length === 0) return;
      if (remarkBytes(calls) > MAX_DECLARATION_BYTES) {
        // Too much for one extrinsic: each declaration in its own, then the rest.
        for (const p of prepared) await p.declareAlone();
        if (alongside.length > 0) await submit(alongside);
        return;
      }
      const { block, outcomes } = await submitProtocolEach(deps, account, calls, {
        deadlineMs: options.deadlineMs,
      });
      let at = 0;
      let redeclared = false;
      for (const p of prepared) {
        const own = outcomes.slice(at, at + p.calls.length);
        at += p.calls.length;
        if (own.every((o) => o.applied)) {
          const deal = dealOf.get(p);
          if (deal !== undefined) tickets.delete(deal);
        } else {
          await p.declareAlone();
          redeclared = true;
        }
      }
      const refused = alongside.flatMap((call, i) => {
        const o = outcomes[at + i]!;
        return o.applied ? [] : [{ call, reason: o.reason }];
      });
      if (refused.length === 0) return;
      // Refused beside declarations that all stood: its own fault, which a second try would not mend.
      if (!redeclared) {
        throw new AilinkError(
          'CHAIN_CALL_REJECTED',
          `a call submitted with ${prepared.length} declarations was rejected: ${refused[0]!.reason}`,
          { details: { block, reason: refused[0]!.reason } },
        );
      }
      await submit(refused.map((r) => r.call));
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
    async restorers(fid, columns) {
      const height = await indexer.sync();
      const spares = indexer.config.placement?.spares ?? 0;
      // The claims land in a later block, within the order's first window, where the rules admit this many.
      const ranked = restoralRanking(indexer.state, indexer.config, height + 1, fid, spares + columns - 1);
      return ranked?.map((a) => minerOf(indexer.state, a)?.peerId ?? a);
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
