import { createHash } from 'node:crypto';
import { AilinkError } from '../shared/errors.ts';

/**
 * Where an object's columns go (issue 17 item 6): a weighted draw over the miners with room, seeded by chain
 * randomness, so that load spreads over every miner instead of filling the first 12 in address order. Pure: the same
 * candidates and seed give the same miners on every machine, in any input order, so anyone holding the chain state
 * and the seed can recompute it.
 */

/** A miner that may take a column: its id (SS58 address or peer id) and its free bytes. */
export interface PlacementCandidate {
  readonly id: string;
  readonly free: number;
}

export interface PlacementOptions {
  /** Distinct miners that get a column (4 + 8 = 12). */
  readonly columns: number;
  /** Further distinct miners drawn after them, in order, to take a column whose miner fails or stalls. */
  readonly spares: number;
  /** Bytes one column takes on its miner: a miner with less free space is never drawn. */
  readonly columnBytes: number;
  /**
   * The per-miner cap on weight: free space counts only up to this many bytes. Without it one miner declaring a huge
   * capacity would draw most columns (and any miner may declare what it likes); with it no miner is more likely to be
   * drawn than one with `capBytes` free.
   */
  readonly capBytes: number;
}

/** Draws per miner wanted before giving up on rejection sampling (a repeat is redrawn). */
const ATTEMPTS_PER_MINER = 64;
const TWO_52 = 2 ** 52;

/** A uniform number in [0, 1) from the seed and the draw's index: 52 bits of SHA-256, recomputable by anyone. */
function uniform(seed: string, n: number): number {
  const d = createHash('sha256').update(`ailink/placement/v1\n${seed}\n${n}`).digest();
  return (d.readUInt32BE(0) * 2 ** 20 + (d.readUInt32BE(4) >>> 12)) / TWO_52;
}

/**
 * The seed of a placement ticket's draw: the epoch's seed (the hash of its first block), the declaring account and its
 * slot. The rules recompute the draw from it (src/chain/pallets/placement.ts), so the client must draw with it too.
 */
export const placementSeed = (epochSeed: string, account: string, slot: number): string =>
  `${epochSeed}\n${account}\n${slot}`;

const whole = (n: number) => Number.isSafeInteger(n) && n >= 0;

/** @throws INVALID_INPUT naming the first option (of `what`) that is not a whole number ≥ its least value */
function checkWhole(what: string, options: readonly (readonly [string, number, number])[]): void {
  for (const [name, value, least] of options) {
    if (!whole(value) || value < least) {
      throw new AilinkError(
        'INVALID_INPUT',
        `${what} ${name}: expected a whole number ≥ ${least}, got ${JSON.stringify(value)}`,
      );
    }
  }
}

/**
 * Draws `columns` distinct miners and then up to `spares` more among those with room for a column (free ≥
 * columnBytes): each place draws two miners with probability proportional to min(free, capBytes) and keeps the one
 * with more of it. Cost: O(n) for n candidates listed by id (O(n log n) otherwise) plus O(log n) per draw; the O(n)
 * part once per frozen list of frozen candidates and options (`prepared`), as the rules' epoch snapshots are.
 * @returns the drawn ids: the first `columns` take the columns in order, the rest are spares in order of preference
 * @throws INVALID_INPUT for options that are not whole numbers (columns ≥ 1, columnBytes ≥ 1, capBytes ≥ columnBytes),
 *   a candidate id given twice, or a free space that is not a whole number ≥ 0
 * @throws NOT_ENOUGH_MINERS when fewer than `columns` candidates have room for a column
 */
export function drawPlacement(
  candidates: readonly PlacementCandidate[],
  seed: string,
  options: PlacementOptions,
): string[] {
  const { columns, spares, columnBytes, capBytes } = options;
  checkWhole('placement', [
    ['columns', columns, 1],
    ['spares', spares, 0],
    ['columnBytes', columnBytes, 1],
    ['capBytes', capBytes, columnBytes],
  ]);
  const { eligible, prefix, total } = prepared(candidates, columnBytes, capBytes);
  if (eligible.length < columns) {
    throw new AilinkError(
      'NOT_ENOUGH_MINERS',
      `expected ≥ ${columns} miners with ${columnBytes} bytes free, found ${eligible.length} of ${candidates.length}`,
    );
  }
  const wanted = Math.min(columns + spares, eligible.length);
  const weight = (c: PlacementCandidate) => Math.min(c.free, capBytes);
  const drawOne = (u: number): number => {
    const target = u * total;
    let lo = 0;
    let hi = eligible.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (prefix[mid]! > target) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  };
  const picked: string[] = [];
  const taken = new Set<number>();
  let n = 0;
  // Two weighted draws per place, and the one with more (capped) free space wins: the "power of two choices" keeps
  // the fullest miner near the mean (max/mean 1.9 → 1.3 at 10,000 miners, `npm run bench:scale`), where a single
  // draw leaves a Poisson tail. Rejection sampling (a drawn miner is drawn again) keeps each draw O(log n) and needs
  // few retries while the drawn miners hold a small share of the weight, which the cap ensures on any realistic
  // network. If it still runs out — a few heavy miners — the rest are drawn exactly from what is left, O(n) each.
  while (picked.length < wanted && n < ATTEMPTS_PER_MINER * wanted) {
    const a = drawOne(uniform(seed, n++));
    const b = drawOne(uniform(seed, n++));
    const free = [a, b].filter((i) => !taken.has(i));
    if (free.length === 0) continue;
    const best = free.length === 2 && weight(eligible[b]!) > weight(eligible[a]!) ? b : free[0]!;
    taken.add(best);
    picked.push(eligible[best]!.id);
  }
  while (picked.length < wanted) {
    const rest = eligible.map((c, i) => ({ c, i })).filter(({ i }) => !taken.has(i));
    let target = uniform(seed, n++) * rest.reduce((sum, { c }) => sum + weight(c), 0);
    let next = rest[rest.length - 1]!;
    for (const r of rest) {
      target -= weight(r.c);
      if (target < 0) {
        next = r;
        break;
      }
    }
    taken.add(next.i);
    picked.push(next.c.id);
  }
  return picked;
}

interface Prepared {
  readonly eligible: readonly PlacementCandidate[];
  readonly prefix: Float64Array;
  readonly total: number;
}

/**
 * What every draw over one list of candidates shares, O(n): checked, sorted by id, filtered to those with room, and
 * the prefix sums of their capped weights. Kept for a frozen list (of frozen candidates, which nobody can change
 * after): the rules draw over an epoch's snapshot for every transfer report, and at 10,000 miners this is most of a
 * draw's cost.
 */
const preparedLists = new WeakMap<readonly PlacementCandidate[], Map<string, Prepared>>();

function prepared(
  candidates: readonly PlacementCandidate[],
  columnBytes: number,
  capBytes: number,
): Prepared {
  // Only a frozen list of frozen candidates is ever kept, and neither can be thawed: one found kept is unchanged.
  const key = `${columnBytes}/${capBytes}`;
  const cached = preparedLists.get(candidates)?.get(key);
  if (cached !== undefined) return cached;
  for (const c of candidates) {
    if (!whole(c.free)) {
      throw new AilinkError(
        'INVALID_INPUT',
        `placement: free space of ${c.id}: expected a whole number of bytes ≥ 0, got ${JSON.stringify(c.free)}`,
      );
    }
  }
  // Sorted by id: the draw must not depend on the order a caller happened to list the miners in. Callers usually list
  // them sorted already (the chain's state is), so check before paying for a sort; a repeat is then a neighbour.
  const byId = (a: PlacementCandidate, b: PlacementCandidate) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  let sorted = true;
  for (let i = 1; i < candidates.length && sorted; i++)
    sorted = byId(candidates[i - 1]!, candidates[i]!) <= 0;
  const all = sorted ? candidates : [...candidates].sort(byId);
  for (let i = 1; i < all.length; i++) {
    if (all[i - 1]!.id === all[i]!.id) {
      throw new AilinkError('INVALID_INPUT', `placement: miner ${all[i]!.id} is listed twice`);
    }
  }
  const eligible = all.filter((c) => c.free >= columnBytes);
  // Prefix sums of the capped weights; a draw is a binary search. Weights up to capBytes each stay exact in a double
  // while n · capBytes < 2^53 (10,000 miners of 900 TB each).
  const prefix = new Float64Array(eligible.length);
  let total = 0;
  for (const [i, c] of eligible.entries()) {
    total += Math.min(c.free, capBytes);
    prefix[i] = total;
  }
  const result = { eligible, prefix, total };
  if (Object.isFrozen(candidates) && candidates.every((c) => Object.isFrozen(c))) {
    const byKey = preparedLists.get(candidates) ?? new Map<string, Prepared>();
    byKey.set(key, result);
    preparedLists.set(candidates, byKey);
  }
  return result;
}

export interface RestorerOptions {
  /** How many miners to rank. */
  readonly count: number;
  /** Bytes the column takes: a miner with less free space is not ranked. */
  readonly columnBytes: number;
  /** The per-miner cap on weight, as for `drawPlacement`. */
  readonly capBytes: number;
  /** Miners never ranked: those holding a column of the file already (one miner holds one column of a file). */
  readonly exclude: ReadonlySet<string>;
}

/**
 * The miners that may rebuild a lost column of a file, best first: weighted rendezvous hashing (each miner's key is
 * −ln(u)/w for a uniform u from the file's seed and the miner's id, w its capped free space; the lowest keys win, so a
 * miner is ranked first with probability w / Σw). Unlike a fresh draw, the order is stable: it depends on the file's
 * seed and each miner's own weight only, so ordering a restoral again, or waiting for another epoch, ranks the same
 * miners first (up to changes in their free space). An owner re-ordering restorals can therefore move its columns only
 * among the top of its file's ranking, which a seed it cannot choose fixes. O(n) multiplications per call, after an
 * O(n) hash of every id once per frozen list.
 * @throws INVALID_INPUT for a count, columnBytes or capBytes that is not a whole number (≥ 0, ≥ 1, ≥ columnBytes)
 */
export function rankRestorers(
  candidates: readonly PlacementCandidate[],
  seed: string,
  options: RestorerOptions,
): string[] {
  const { count, columnBytes, capBytes, exclude } = options;
  checkWhole('restorer', [
    ['count', count, 0],
    ['columnBytes', columnBytes, 1],
    ['capBytes', capBytes, columnBytes],
  ]);
  const { eligible } = prepared(candidates, columnBytes, capBytes);
  if (count === 0) return [];
  const ids = idHashes(eligible);
  const s = createHash('sha256').update(`ailink/restorers/v1\n${seed}`).digest();
  const s0 = s.readUInt32BE(0);
  const s1 = s.readUInt32BE(4);
  // The `count` lowest keys so far, ascending; count is a handful, so insertion beats a heap.
  const best: { key: number; id: string }[] = [];
  for (const [i, c] of eligible.entries()) {
    if (exclude.has(c.id)) continue;
    // fmix32 is a bijection, so for a seed nobody knows in advance u is uniform for every id, whatever ids miners pick.
    const a = fmix32(ids[2 * i]! ^ s0);
    const b = fmix32(ids[2 * i + 1]! ^ s1 ^ a);
    const u = (a * 2 ** 20 + (b >>> 12) + 0.5) / TWO_52;
    const key = -Math.log(u) / Math.min(c.free, capBytes);
    if (best.length === count && key >= best[count - 1]!.key) continue;
    let at = best.length;
    while (at > 0 && best[at - 1]!.key > key) at--;
    best.splice(at, 0, { key, id: c.id });
    if (best.length > count) best.pop();
  }
  return best.map((b) => b.id);
}

/** MurmurHash3's 32-bit finaliser: a bijection on 32-bit words that mixes every input bit into every output bit. */
function fmix32(h: number): number {
  let x = h >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/** 64 bits of SHA-256 of every id, two words each; kept per list like `prepared`'s (SHA-256 costs 4 µs an id). */
const idHashLists = new WeakMap<readonly PlacementCandidate[], Uint32Array>();

function idHashes(eligible: readonly PlacementCandidate[]): Uint32Array {
  const cached = idHashLists.get(eligible);
  if (cached !== undefined) return cached;
  const out = new Uint32Array(eligible.length * 2);
  for (const [i, c] of eligible.entries()) {
    const d = createHash('sha256').update(`ailink/miner/v1\n${c.id}`).digest();
    out[2 * i] = d.readUInt32BE(0);
    out[2 * i + 1] = d.readUInt32BE(4);
  }
  idHashLists.set(eligible, out);
  return out;
}
