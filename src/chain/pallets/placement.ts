import { createHash } from 'node:crypto';
import type { CallArgs } from '../calls.ts';
import { drawPlacement, type PlacementCandidate, placementSeed, rankRestorers } from '../placement.ts';
import type { StateReader, StateValue, StateWriter } from '../state.ts';
import { type BlockContext, type CallContext, type PlacementConfig, type Rule, reject } from './context.ts';
import type { MinerInfo } from './sminer.ts';
import { creditSpace, debitSpace, spaceTakenBy } from './storage-handler.ts';

/**
 * Placement as a rule (issue 17 item 6), on networks whose configuration has `placement`. Before it, placement was
 * the client's choice: `fileBank.transferReport` took any 12 distinct positive miners with valid receipts, so an
 * uploader could pile its columns onto miners it colludes with. Now:
 * - the first block of every epoch stores the epoch's seed (its hash) and every positive miner's free space: the
 *   weights of every draw of that epoch, frozen, so that uploads landing meanwhile do not change other draws;
 * - a declaration names a ticket, an epoch still valid and a slot of the declaring account in it, each used once;
 * - a receipt counts only from a miner among the first `columns + spares` of the ticket's draw (src/chain/placement.ts).
 * Free space comes from a per-miner counter of the service bytes placed on it, kept wherever fileBank places or
 * removes a column, so the snapshot costs O(miners) once per epoch instead of a scan of everything stored.
 *
 * An upload longer than a draw's validity (a 1.2 GB model on a busy dev network outlived its 250 blocks) holds its
 * ticket first (`placement.holdTicket`): the draw is taken within the same window as a declaration's, so the choice
 * it leaves an uploader is the same, but its miners are copied into the hold, which the uploader renews while its
 * columns travel and its declaration takes later, however old the epoch is by then. Miners keep the fragments put
 * for a held upload past their collection grace, so a hold reserves the owner's space for the segments it names, as
 * a declaration of them would take it: undeclared bytes kept that way never exceed the space the account bought.
 */

/** A declaration's placement ticket, as the file keeps it: the draw its receipts are checked against. */
export type PlacementTicket = TicketFields & {
  /**
   * The draw's miners, kept from a hold until the file is Active (null: any positive miner, a network no larger than
   * one draw): the report is checked against them, as the hold's epoch snapshot may be gone.
   */
  drawn?: string[] | null;
};

interface TicketFields {
  [key: string]: StateValue;
  readonly epoch: number;
  readonly slot: number;
  /** The declaring account: its address seeds the draw. */
  readonly by: string;
  /**
   * The hash of the declaring block: seeds the ranking of the miners that may restore the file's columns
   * (`restorers`). Unknown to the uploader when it picks its slot, so it cannot pick a slot for its restorers too.
   */
  readonly restoralSeed: string;
}

/**
 * A ticket held for an upload still under way (`placement.holdTicket`), by the holding account and the upload's deal:
 * its draw, copied while the epoch was valid, the last block a declaration may take it in, and the space it reserves.
 */
export interface PlacementHold {
  [key: string]: StateValue;
  readonly epoch: number;
  readonly slot: number;
  readonly profile: HoldProfile;
  /** The upload's segments the hold reserves space for: each miner keeps up to one column fragment of each. */
  readonly segments: number;
  /** Bytes of the holder's space reserved (`spaceTakenBy` of the segments), given back when the hold goes. */
  readonly charged: number;
  /** The first `columns + spares` miners of the draw; null when any positive miner is accepted. */
  readonly drawn: string[] | null;
  readonly until: number;
}

export interface HoldProfile {
  [key: string]: StateValue;
  readonly segmentSize: number;
  readonly dataFragments: number;
  readonly parityFragments: number;
}

const sameProfile = (a: HoldProfile, b: HoldProfile) =>
  a.segmentSize === b.segmentSize &&
  a.dataFragments === b.dataFragments &&
  a.parityFragments === b.parityFragments;
const describeProfile = (p: HoldProfile) =>
  `${p.dataFragments}+${p.parityFragments} columns of ${p.segmentSize}-byte segments`;

/**
 * An epoch's snapshot: its first block, the seed, and how many positive miners had free space then. The miners
 * themselves, [address, free bytes] in address order, are a key of their own named by `digest` (SHA-256 of their JSON),
 * so that a rule reading the seed does not parse 10,000 miners, and the parsed list can be cached by its digest.
 */
export interface PlacementEpoch {
  [key: string]: StateValue;
  readonly block: number;
  readonly seed: string;
  readonly miners: number;
  readonly digest: string;
}

const EPOCHS_PREFIX = 'placement/epochs/';
const SLOTS_PREFIX = 'placement/slots/';
const pad = (epoch: number) => String(epoch).padStart(12, '0');
export const epochKey = (epoch: number) => `${EPOCHS_PREFIX}${pad(epoch)}`;
const minersKey = (epoch: number) => `placement/miners/${pad(epoch)}`;
const slotsKey = (epoch: number, account: string) => `${SLOTS_PREFIX}${pad(epoch)}/${account}`;
const usedKey = (miner: string) => `placement/used/${miner}`;
const HOLDS_PREFIX = 'placement/holds/';
const holdsPrefix = (account: string) => `${HOLDS_PREFIX}${account}/`;
const holdKey = (account: string, deal: string) => `${holdsPrefix(account)}${deal}`;

/**
 * Blocks a hold lasts from its last renewal: as long as a draw's own validity, so an upload renews about as often as
 * its draws would expire.
 */
export const holdBlocks = (config: PlacementConfig): number => config.epochBlocks * (config.epochsValid + 1);

/**
 * The hold `account` has at `height` on its upload `deal`, still under way: miners keep up to one column fragment of
 * each of its `segments` put for that deal that no file places yet past their collection grace
 * (src/storage/miner/miner-audit.ts).
 */
export const liveHold = (
  state: StateReader,
  account: string,
  deal: string,
  height: number,
): PlacementHold | undefined => {
  const hold = holdOf(state, account, deal);
  return hold !== undefined && hold.until >= height ? hold : undefined;
};

/**
 * Bytes of the fragments `miner` may keep, past its collection grace, for `account`'s upload `deal` that no file
 * places yet: one column fragment of each segment its live hold reserves, and only on a miner of the hold's draw (any
 * positive miner when the draw is everyone). 0 without a live hold. Put on every miner, the fragments of one held
 * upload would otherwise be kept on all of them, however many there are.
 */
export function holdAllowance(
  state: StateReader,
  account: string,
  deal: string,
  miner: string,
  height: number,
): number {
  const hold = liveHold(state, account, deal, height);
  if (hold === undefined || (hold.drawn !== null && !hold.drawn.includes(miner))) return 0;
  return hold.segments * Math.ceil(hold.profile.segmentSize / hold.profile.dataFragments);
}

/** The space `account`'s holds reserve (counted in its used space), and how many uploads they are for. */
export function heldSpaceOf(state: StateReader, account: string): { bytes: number; uploads: number } {
  const holds = state.scan(holdsPrefix(account)).map(([, hold]) => hold as PlacementHold);
  return { bytes: holds.reduce((n, h) => n + h.charged, 0), uploads: holds.length };
}

/** The ticket `account` holds for the upload `deal`, expired or not. */
export const holdOf = (state: StateReader, account: string, deal: string): PlacementHold | undefined =>
  state.get<PlacementHold>(holdKey(account, deal));

/** How a rejection of an already used slot begins: the client then declares with another slot its draw allows. */
export const SLOT_TAKEN = 'placement slot taken';

export const epochOf = (config: PlacementConfig, block: number): number =>
  Math.floor(block / config.epochBlocks);

/** Service bytes placed on `miner`, as the counter keeps them (networks with `placement` only). */
export const usedBytesOf = (state: StateReader, miner: string): number =>
  state.get<number>(usedKey(miner)) ?? 0;

/** Counts `bytes` (negative: released) of service data on `miner`; nothing on networks without `placement`. */
export function countUsed(state: StateWriter, ctx: BlockContext, miner: string, bytes: number): void {
  if (ctx.config.placement === undefined || bytes === 0) return;
  const used = usedBytesOf(state, miner) + bytes;
  if (used === 0) state.delete(usedKey(miner));
  else state.put(usedKey(miner), used);
}

/** The snapshot an epoch's draws use, if the rules still keep it. */
export const placementEpoch = (state: StateReader, epoch: number): PlacementEpoch | undefined =>
  state.get<PlacementEpoch>(epochKey(epoch));

/** The slots `account` has declared with in `epoch`. */
export const usedSlots = (state: StateReader, epoch: number, account: string): readonly number[] =>
  state.get<number[]>(slotsKey(epoch, account)) ?? [];

/**
 * The block hook: the first block of an epoch stores its snapshot, drops the snapshots and used slots of epochs no
 * declaration may name any more, and drops every hold that has ended, giving its space back (an account that
 * abandoned an upload and stores nothing more would otherwise keep it reserved).
 */
export function placementOnBlock(state: StateWriter, ctx: BlockContext): void {
  const config = ctx.config.placement;
  if (config === undefined) return;
  const epoch = epochOf(config, ctx.block.number);
  if (placementEpoch(state, epoch) !== undefined) return;
  const miners: [string, number][] = [];
  for (const [key, value] of state.scan('sminer/miners/')) {
    const miner = value as MinerInfo;
    if (miner.state !== 'positive') continue;
    const address = key.slice('sminer/miners/'.length);
    const free = miner.capacity - usedBytesOf(state, address);
    if (free > 0) miners.push([address, free]);
  }
  const digest = createHash('sha256').update(JSON.stringify(miners)).digest('hex');
  state.put(minersKey(epoch), miners);
  state.put(epochKey(epoch), {
    block: ctx.block.number,
    seed: ctx.block.hash,
    miners: miners.length,
    digest,
  } satisfies PlacementEpoch);
  for (const [key] of state.scan(EPOCHS_PREFIX)) {
    const old = Number(key.slice(EPOCHS_PREFIX.length));
    if (old >= epoch - config.epochsValid) break;
    state.delete(key);
    state.delete(minersKey(old));
    for (const [slots] of state.scan(`${SLOTS_PREFIX}${pad(old)}/`)) state.delete(slots);
  }
  for (const [key, value] of state.scan(HOLDS_PREFIX)) {
    const hold = value as PlacementHold;
    if (hold.until >= ctx.block.number) continue;
    const [account, deal] = key.slice(HOLDS_PREFIX.length).split('/') as [string, string];
    dropHold(state, account, deal, hold);
  }
}

/** The miners of `epoch`'s snapshot, [address, free bytes] in address order (empty once the epoch is dropped). */
export const epochMiners = (state: StateReader, epoch: number): readonly [string, number][] =>
  state.get<[string, number][]>(minersKey(epoch)) ?? [];

/** Parsed snapshots by digest: a report's check reads the seed, not 10,000 miners (10 per network at most). */
const candidatesByDigest = new Map<string, readonly PlacementCandidate[]>();
const CACHED_SNAPSHOTS = 16;

/** The miners of `epoch`'s snapshot as draw candidates (cached by content: the same digest is the same list). */
function candidatesOf(
  state: StateReader,
  epoch: number,
  snapshot: PlacementEpoch,
): readonly PlacementCandidate[] {
  const cached = candidatesByDigest.get(snapshot.digest);
  if (cached !== undefined) return cached;
  const candidates = Object.freeze(
    epochMiners(state, epoch).map(([id, free]) => Object.freeze({ id, free })),
  );
  candidatesByDigest.set(snapshot.digest, candidates);
  if (candidatesByDigest.size > CACHED_SNAPSHOTS) {
    candidatesByDigest.delete(candidatesByDigest.keys().next().value!);
  }
  return candidates;
}

/**
 * The miners a ticket's draw accepts: the first `columns + spares` of the draw over its epoch's snapshot, seeded by
 * `placementSeed(seed, by, slot)`. The rules check receipts against it, and the client draws with it.
 * @returns undefined when the snapshot lists no more miners than that (all of them are drawn, and miners registered
 *   since are let in rather than left idle: any positive miner is accepted); null when the epoch is no longer kept
 */
export function ticketDraw(
  state: StateReader,
  config: PlacementConfig,
  ticket: { readonly epoch: number; readonly slot: number; readonly by: string },
  columns: number,
): string[] | undefined | null {
  const snapshot = placementEpoch(state, ticket.epoch);
  if (snapshot === undefined) return null;
  if (snapshot.miners <= columns + config.spares) return undefined;
  return drawPlacement(
    candidatesOf(state, ticket.epoch, snapshot),
    placementSeed(snapshot.seed, ticket.by, ticket.slot),
    { columns, spares: config.spares, columnBytes: 1, capBytes: config.capBytes },
  );
}

/**
 * Uses a slot of `ticket`'s epoch for the caller: the epoch must still be valid and the slot unused by the caller.
 */
function useSlot(
  state: StateWriter,
  ctx: CallContext,
  config: PlacementConfig,
  ticket: { readonly epoch: number; readonly slot: number },
): void {
  const current = epochOf(config, ctx.block.number);
  const oldest = Math.max(0, current - config.epochsValid);
  if (ticket.epoch > current || ticket.epoch < oldest || placementEpoch(state, ticket.epoch) === undefined) {
    reject(
      `placement epoch ${ticket.epoch}: expected one of ${oldest}…${current} (the current epoch and the ${config.epochsValid} before it); draw the miners again`,
    );
  }
  if (ticket.slot >= config.slotsPerEpoch) {
    reject(`placement slot ${ticket.slot}: expected 0…${config.slotsPerEpoch - 1}`);
  }
  const used = usedSlots(state, ticket.epoch, ctx.caller);
  if (used.includes(ticket.slot)) {
    reject(
      `${SLOT_TAKEN}: slot ${ticket.slot} of epoch ${ticket.epoch} was declared with already by ${ctx.caller}: each draw places one upload`,
    );
  }
  state.put(slotsKey(ticket.epoch, ctx.caller), [...used, ticket.slot]);
}

/**
 * Takes the declaration's ticket: one the caller holds for the upload `deal` (`placement.holdTicket`), however old its
 * epoch, or else an epoch still valid and a slot unused by the caller.
 * @returns what the file keeps, or undefined on a network without `placement`
 */
export function takeTicket(
  state: StateWriter,
  ctx: CallContext,
  ticket: { readonly epoch: number; readonly slot: number } | undefined,
  upload: { readonly deal: string; readonly profile: HoldProfile },
): PlacementTicket | undefined {
  const config = ctx.config.placement;
  if (config === undefined) {
    if (ticket !== undefined)
      reject('this network does not draw placements: declare without a placement ticket');
    return undefined;
  }
  if (ticket === undefined) {
    reject(
      'this network draws placements: a declaration names the ticket (epoch, slot) its miners were drawn with',
    );
  }
  const taken = { epoch: ticket.epoch, slot: ticket.slot, by: ctx.caller, restoralSeed: ctx.block.hash };
  const held = holdOf(state, ctx.caller, upload.deal);
  dropEndedHolds(state, ctx);
  if (held === undefined || held.epoch !== ticket.epoch || held.slot !== ticket.slot) {
    useSlot(state, ctx, config, ticket);
    // Declared with another ticket (a second client of the account took the held slot): the hold is done with.
    if (held !== undefined && held.until >= ctx.block.number) dropHold(state, ctx.caller, upload.deal, held);
    return taken;
  }
  if (held.until < ctx.block.number) {
    reject(
      `the hold on placement epoch ${held.epoch}, slot ${held.slot} for upload ${upload.deal} ended at block ${held.until}: renew a hold before it ends, or draw the miners again`,
    );
  }
  if (!sameProfile(held.profile, upload.profile)) {
    reject(
      `the hold was drawn for ${describeProfile(held.profile)}; this upload has ${describeProfile(upload.profile)}`,
    );
  }
  // The declaration charges the object's own segments next; what the hold reserved goes back.
  dropHold(state, ctx.caller, upload.deal, held);
  return { ...taken, drawn: held.drawn };
}

/**
 * Drops the caller's holds that have ended (uploads abandoned, or declared with another ticket): each of the caller's
 * declarations and new holds does, so ended holds stay only until the account's next upload.
 */
function dropEndedHolds(state: StateWriter, ctx: CallContext): void {
  for (const [key, value] of state.scan(holdsPrefix(ctx.caller))) {
    const hold = value as PlacementHold;
    if (hold.until < ctx.block.number)
      dropHold(state, ctx.caller, key.slice(holdsPrefix(ctx.caller).length), hold);
  }
}

function dropHold(state: StateWriter, account: string, deal: string, hold: PlacementHold): void {
  state.delete(holdKey(account, deal));
  creditSpace(state, account, hold.charged);
}

/**
 * Holds a ticket for an upload still under way, or renews the caller's hold of it for `holdBlocks` more blocks. A new
 * hold takes the slot as a declaration would (same window, same slot rule), so holding widens no uploader's choice.
 * It reserves the caller's space for `segments` of the upload (a renewal naming more reserves the difference; none
 * is given back before the hold goes), refused beyond what is left. The caller's ended holds are dropped
 * (`dropEndedHolds`), their space given back.
 */
const holdTicket: Rule<CallArgs<'placement.holdTicket'>> = (state, ctx, args) => {
  const config = ctx.config.placement;
  if (config === undefined) reject('this network does not draw placements: there is no ticket to hold');
  const until = ctx.block.number + holdBlocks(config);
  const what = `the hold of upload ${args.deal} (${args.segments} segments)`;
  const held = holdOf(state, ctx.caller, args.deal);
  if (held !== undefined && held.until >= ctx.block.number) {
    if (held.epoch !== args.epoch || held.slot !== args.slot || !sameProfile(held.profile, args.profile)) {
      reject(
        `upload ${args.deal} holds epoch ${held.epoch}, slot ${held.slot} for ${describeProfile(held.profile)}: a hold is renewed as it was taken`,
      );
    }
    const segments = Math.max(held.segments, args.segments);
    const charged = spaceTakenBy(segments, args.profile);
    debitSpace(state, ctx.caller, charged - held.charged, what);
    state.put(holdKey(ctx.caller, args.deal), { ...held, segments, charged, until });
    return;
  }
  dropEndedHolds(state, ctx);
  useSlot(state, ctx, config, args);
  const columns = args.profile.dataFragments + args.profile.parityFragments;
  const drawn = ticketDraw(state, config, { ...args, by: ctx.caller }, columns);
  const charged = spaceTakenBy(args.segments, args.profile);
  debitSpace(state, ctx.caller, charged, what);
  state.put(holdKey(ctx.caller, args.deal), {
    epoch: args.epoch,
    slot: args.slot,
    profile: { ...args.profile },
    segments: args.segments,
    charged,
    drawn: drawn ?? null,
    until,
  } satisfies PlacementHold);
};

export const placement = { holdTicket };

/** `ticket` without its held draw (what an Active file keeps). */
export function withoutDrawn(ticket: PlacementTicket): PlacementTicket {
  const { drawn, ...kept } = ticket;
  return kept;
}

/**
 * The miners a receipt may come from for a file drawn with `ticket` (`ticketDraw`), or undefined when any positive
 * miner may (also on a network without `placement`).
 */
export function drawnMiners(
  state: StateReader,
  ctx: BlockContext,
  fid: string,
  ticket: PlacementTicket | undefined,
  columns: number,
): ReadonlySet<string> | undefined {
  const config = ctx.config.placement;
  if (config === undefined || ticket === undefined) return undefined;
  if (ticket.drawn !== undefined) return ticket.drawn === null ? undefined : new Set(ticket.drawn);
  const drawn = ticketDraw(state, config, ticket, columns);
  if (drawn === null) {
    reject(
      `the placement epoch ${ticket.epoch} of ${fid} is over (a draw is valid for ${config.epochsValid} epochs after its own): declare the upload again with a fresh draw`,
    );
  }
  return drawn === undefined ? undefined : new Set(drawn);
}

/**
 * The first `count` miners ranked to restore a column of `fid` (`rankRestorers` over the current epoch's snapshot,
 * seeded by the file's `restoralSeed`), none of `holders`. Best first.
 * @returns undefined when any positive miner may restore: a network or file without a draw, or a snapshot of no more
 *   miners than one draw (as for uploads: all of them are drawn anyway, and newcomers are let in)
 */
export function restorers(
  state: StateReader,
  config: PlacementConfig | undefined,
  now: number,
  fid: string,
  ticket: PlacementTicket | undefined,
  want: {
    readonly holders: readonly (string | null)[];
    readonly columnBytes: number;
    readonly count: number;
  },
): string[] | undefined {
  if (config === undefined || ticket === undefined) return undefined;
  const epoch = epochOf(config, now);
  const snapshot = placementEpoch(state, epoch);
  if (snapshot === undefined || snapshot.miners <= want.holders.length + config.spares) return undefined;
  return rankRestorers(candidatesOf(state, epoch, snapshot), `${ticket.restoralSeed}\n${fid}`, {
    count: want.count,
    columnBytes: want.columnBytes,
    capBytes: config.capBytes,
    exclude: new Set(want.holders.filter((h): h is string => h !== null)),
  });
}
