import { createHash } from 'node:crypto';
import type { CallArgs } from '../calls.ts';
import type { StateReader, StateValue, StateWriter } from '../state.ts';
import { type AuditConfig, type BlockContext, type Rule, reject } from './context.ts';
import {
  checkVerifierSignature,
  columnHashes,
  type FileInfo,
  fileKey,
  minerFilesPrefix,
  openProtocolOrder,
  ordersOnExit,
  taggedKey,
  takeOverdueColumns,
} from './file-bank.ts';
import { exitMiner, getMiner, type MinerInfo, minerKey, positiveMiner } from './sminer.ts';
import { registeredVerifiers } from './tee-worker.ts';

/**
 * CESS's audit pallet as rules over remarks. Every `challengeInterval` blocks a block hook picks random miners (seeded
 * by the block hash) and snapshots what each must prove: every tagged service fragment it holds and every idle file it
 * committed, and assigns the challenge one registered verifier (drawn from the same block hash). The miner proves to
 * that verifier, which signs the result; the miner (or anyone) puts that result on chain before the deadline, and a
 * result signed by any other verifier is refused. A challenge without a result at its deadline is a miss: the second
 * miss in a row slashes collateral and opens restoral orders for everything the miner holds; `exitAfterMisses` in a
 * row force it out. A column that its holder has not had tagged by its tag deadline is a miss too, and gets a
 * restoral order: only tagged columns are challenged, so a miner could otherwise keep its columns out of every audit.
 */

/** One fragment a challenge covers: its name (hash) and byte length, as the prover and verifier derive blocks. */
export interface ChallengedFragment {
  [key: string]: StateValue;
  name: string;
  size: number;
}

export interface IdleFile {
  [key: string]: StateValue;
  index: number;
  root: string;
}

export interface Challenge {
  [key: string]: StateValue;
  /** The block that issued it; also its id. */
  issuedAt: number;
  /** Randomness for block indices, coefficients and idle openings: the issuing block's hash (hex, no 0x). */
  seed: string;
  fragments: ChallengedFragment[];
  idle: IdleFile[];
  serviceBytes: number;
  idleBytes: number;
  /**
   * The verifier the chain assigned (drawn from the issuing block's hash among the registered ones): the only one
   * whose signed result counts, so the miner cannot shop for a verifier.
   */
  verifier: string;
  /** Last block in which a result is accepted. */
  deadline: number;
  result: { verifier: string; proof: string; block: number } | null;
}

/** Per-miner audit record: what it proved, what it missed and what that cost. */
export interface AuditRecord {
  [key: string]: StateValue;
  passes: number;
  misses: number;
  /** Misses since the last pass. */
  consecutiveMisses: number;
  /** Plancks taken from its collateral, as a decimal string. */
  slashed: string;
  penalties: number;
  /** Idle files committed so far, oldest first; new ones get the next `nextIdleIndex`. */
  idleFiles: IdleFile[];
  nextIdleIndex: number;
  lastOutcome: { block: number; outcome: 'pass' | 'miss' } | null;
}

export const challengeKey = (miner: string) => `audit/challenges/${miner}`;
export const recordKey = (miner: string) => `audit/records/${miner}`;

const EMPTY_RECORD: AuditRecord = {
  passes: 0,
  misses: 0,
  consecutiveMisses: 0,
  slashed: '0',
  penalties: 0,
  idleFiles: [],
  nextIdleIndex: 0,
  lastOutcome: null,
};

export const recordOf = (state: StateReader, miner: string): AuditRecord =>
  state.get<AuditRecord>(recordKey(miner)) ?? EMPTY_RECORD;

/** What a verifier signs for a passing proof: the miner, the challenge, its seed and the proof bytes' digest. */
export function auditResultMessage(miner: string, challenge: number, seed: string, proofDigest: string) {
  return new TextEncoder().encode(`ailink/audit-result/v1\n${miner}\n${challenge}\n${seed}\n${proofDigest}`);
}

/** The service fragments a miner must prove now: every fragment of every column it holds that a verifier tagged. */
export function serviceSnapshot(state: StateReader, miner: string): ChallengedFragment[] {
  const seen = new Map<string, number>();
  const prefix = minerFilesPrefix(miner);
  for (const [key, index] of state.scan(prefix)) {
    const fid = key.slice(prefix.length);
    if (typeof index !== 'number' || state.get(taggedKey(fid, index)) !== miner) continue;
    const file = state.get<FileInfo>(fileKey(fid));
    if (file === undefined) continue;
    const size = file.profile.segmentSize / file.profile.dataFragments;
    for (const name of columnHashes(file.segments, index)) seen.set(name, size);
  }
  return [...seen].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([name, size]) => ({ name, size }));
}

/** Bytes of service data a miner holds on chain (tagged or not), for capacity checks. */
export function serviceBytesOf(state: StateReader, miner: string): number {
  let bytes = 0;
  const prefix = minerFilesPrefix(miner);
  for (const [key] of state.scan(prefix)) {
    const file = state.get<FileInfo>(fileKey(key.slice(prefix.length)));
    if (file !== undefined) {
      bytes += file.segments.length * (file.profile.segmentSize / file.profile.dataFragments);
    }
  }
  return bytes;
}

/** Deterministic randomness from the block hash: the n-th 32-bit draw under a label. */
function draw(seed: string, label: string, n: number): number {
  return createHash('sha256').update(`${seed}\n${label}\n${n}`).digest().readUInt32BE(0);
}

/**
 * Blocks a challenge gets: CESS's slip, base + space / bytes-per-block for service and idle data apart (one proof
 * covers both here, so the larger). The idle part counts only the idle files a proof can open (at most
 * `idleOpenings`): answering reads no more than those, and a deadline that grew with all the idle space held would
 * give a big miner time to regenerate the few files it is asked about (issue 15 item 5; `npm run bench:pois`).
 */
export function challengeBlocks(audit: AuditConfig, serviceBytes: number, idleFiles: number): number {
  const provedIdleBytes = Math.min(idleFiles, audit.proofs.idleOpenings) * audit.proofs.idleNodes * 32;
  return (
    audit.slipBaseBlocks +
    Math.max(
      Math.ceil(serviceBytes / audit.serviceBytesPerBlock),
      Math.ceil(provedIdleBytes / audit.idleBytesPerBlock),
    )
  );
}

/**
 * The block hook (CESS: `on_initialize`): settle challenges whose deadline passed, count columns left untagged past
 * their tag deadline, then issue new challenges.
 */
export function auditOnBlock(state: StateWriter, ctx: BlockContext): void {
  const now = ctx.block.number;
  for (const [key, value] of state.scan('audit/challenges/')) {
    const challenge = value as Challenge;
    if (challenge.deadline >= now) continue;
    settle(state, ctx, key.slice('audit/challenges/'.length), challenge);
    state.delete(key);
  }
  settleUntagged(state, ctx);
  if (ctx.config.audit.challengePeriodBlocks !== undefined) challengeDue(state, ctx);
  else challengeByDraw(state, ctx);
}

/** The state key that makes `miner` due for a challenge at `block` (zero-padded: keys sort by block). */
export const dueKey = (block: number, miner: string) => `${duePrefix(block)}${miner}`;
const duePrefix = (block: number) => `audit/due/${String(block).padStart(12, '0')}/`;

/**
 * Makes `miner` due again after about one period: between half and one and a half periods ahead, drawn from the block
 * hash, so the mean gap is the period while a miner cannot know the block of its next challenge in advance.
 */
export function scheduleAudit(state: StateWriter, ctx: BlockContext, miner: string): void {
  const period = ctx.config.audit.challengePeriodBlocks;
  if (period === undefined) return;
  const offset = Math.ceil(period / 2) + (draw(ctx.block.hash, `audit/due/${miner}`, 0) % period);
  state.put(dueKey(ctx.block.number + offset, miner), ctx.block.number);
}

/** The challenge a block issues to `address` over what it holds now, with the verifier `pick` chose. */
function issue(
  state: StateWriter,
  ctx: BlockContext,
  address: string,
  fragments: ChallengedFragment[],
  idle: IdleFile[],
  verifier: string,
): void {
  const serviceBytes = fragments.reduce((a, f) => a + f.size, 0);
  state.put(challengeKey(address), {
    issuedAt: ctx.block.number,
    seed: ctx.block.hash.replace(/^0x/, ''),
    fragments,
    idle,
    serviceBytes,
    idleBytes: idle.length * ctx.config.audit.proofs.idleNodes * 32,
    verifier,
    deadline: ctx.block.number + challengeBlocks(ctx.config.audit, serviceBytes, idle.length),
    result: null,
  } satisfies Challenge);
}

/**
 * Per-miner schedule: only the miners due in this block are read, so a block costs O(miners due) (each due miner's
 * snapshot is O(what it holds)). A due miner is challenged unless it left (dropped from the schedule), is still under
 * challenge or has nothing to prove (both just rescheduled); every miner that stays is due again one period on.
 */
function challengeDue(state: StateWriter, ctx: BlockContext): void {
  const due = state.scan(duePrefix(ctx.block.number));
  if (due.length === 0) return;
  const verifiers = registeredVerifiers(state);
  for (const [key] of due) {
    state.delete(key);
    const address = key.slice(duePrefix(ctx.block.number).length);
    if (getMiner(state, address)?.state !== 'positive') continue;
    scheduleAudit(state, ctx, address);
    // Nobody could answer a challenge without a verifier to prove to: issue none rather than fine the miner for it.
    if (verifiers.length === 0 || state.get(challengeKey(address)) !== undefined) continue;
    const fragments = serviceSnapshot(state, address);
    const idle = recordOf(state, address).idleFiles;
    if (fragments.length === 0 && idle.length === 0) continue;
    issue(
      state,
      ctx,
      address,
      fragments,
      idle,
      verifiers[draw(ctx.block.hash, `audit/verifier/${address}`, 0) % verifiers.length]!,
    );
  }
}

/**
 * The old draw, kept for networks whose configuration has no `challengePeriodBlocks`: every `challengeInterval`
 * blocks it reads every miner and builds each one's fragment list to pick `challengeMiners` — O(all miners and all
 * they hold) per challenge block (issue 17 item 7; `npm run bench:scale` measures it).
 */
function challengeByDraw(state: StateWriter, ctx: BlockContext): void {
  const now = ctx.block.number;
  const audit = ctx.config.audit;
  if (now % audit.challengeInterval !== 0) return;
  // Nobody could answer a challenge without a verifier to prove to: issue none rather than fine miners for it.
  const verifiers = registeredVerifiers(state);
  if (verifiers.length === 0) return;
  // A miner already under challenge, or with nothing to prove, is skipped (as CESS skips zero-power miners).
  const candidates = state
    .scan('sminer/miners/')
    .map(([key, m]) => ({ address: key.slice('sminer/miners/'.length), miner: m as MinerInfo }))
    .filter(
      ({ address, miner }) => miner.state === 'positive' && state.get(challengeKey(address)) === undefined,
    )
    .map(({ address }) => ({
      address,
      fragments: serviceSnapshot(state, address),
      idle: recordOf(state, address).idleFiles,
    }))
    .filter((c) => c.fragments.length > 0 || c.idle.length > 0);
  for (let k = 0; k < audit.challengeMiners && candidates.length > 0; k++) {
    const [picked] = candidates.splice(draw(ctx.block.hash, 'audit/miner', k) % candidates.length, 1);
    const { address, fragments, idle } = picked!;
    issue(
      state,
      ctx,
      address,
      fragments,
      idle,
      verifiers[draw(ctx.block.hash, 'audit/verifier', k) % verifiers.length]!,
    );
  }
}

function settle(state: StateWriter, ctx: BlockContext, address: string, challenge: Challenge): void {
  const record = recordOf(state, address);
  if (challenge.result !== null) {
    state.put(recordKey(address), {
      ...record,
      passes: record.passes + 1,
      consecutiveMisses: 0,
      lastOutcome: { block: ctx.block.number, outcome: 'pass' },
    } satisfies AuditRecord);
    return;
  }
  recordMiss(state, ctx, address);
}

/**
 * Columns still untagged after their tag deadline: each gets a restoral order (any miner may rebuild it), and its
 * holder a miss — one per block however many of its columns fell due in it, since they are one failure to have
 * them tagged. A holder that has exited got its orders on exit and is past fining.
 */
function settleUntagged(state: StateWriter, ctx: BlockContext): void {
  const missed = new Set<string>();
  for (const { fid, index, miner } of takeOverdueColumns(state, ctx.block.number)) {
    openProtocolOrder(state, ctx, fid, index, miner);
    if (getMiner(state, miner)?.state === 'positive') missed.add(miner);
  }
  for (const miner of [...missed].sort()) recordMiss(state, ctx, miner);
}

/** A miss: the 2nd in a row and later ones are slashed and open orders for everything held; too many force an exit. */
function recordMiss(state: StateWriter, ctx: BlockContext, address: string): void {
  const record = recordOf(state, address);
  const consecutiveMisses = record.consecutiveMisses + 1;
  let { slashed, penalties } = record;
  const miner = getMiner(state, address);
  if (miner !== undefined && consecutiveMisses >= 2) {
    const { slashBasisPoints, exitAfterMisses } = ctx.config.audit;
    const points = BigInt(consecutiveMisses === 2 ? slashBasisPoints[0] : slashBasisPoints[1]);
    const collateral = BigInt(miner.collateral);
    const fine = (collateral * points) / 10_000n;
    slashed = (BigInt(slashed) + fine).toString();
    penalties += 1;
    const exits = consecutiveMisses >= exitAfterMisses && miner.state === 'positive';
    const slashedMiner = { ...miner, collateral: (collateral - fine).toString() } satisfies MinerInfo;
    // Forced out: what is left of its collateral is owed back, as on sminer.exit.
    if (exits) exitMiner(state, ctx, address, slashedMiner);
    else state.put(minerKey(address), slashedMiner);
    // Whatever a miner that cannot prove holds is at risk: every column it holds gets a restoral order.
    ordersOnExit(state, ctx, address);
  }
  state.put(recordKey(address), {
    ...record,
    misses: record.misses + 1,
    consecutiveMisses,
    slashed,
    penalties,
    lastOutcome: { block: ctx.block.number, outcome: 'miss' },
  } satisfies AuditRecord);
}

const submitResult: Rule<CallArgs<'audit.submitResult'>> = (state, ctx, args) => {
  const challenge = state.get<Challenge>(challengeKey(args.miner));
  if (challenge === undefined || challenge.issuedAt !== args.challenge) {
    reject(`miner ${args.miner} has no open challenge issued at block ${args.challenge}`);
  }
  // The signature first: a forged result is refused as forged, whatever else is true of it.
  checkVerifierSignature(
    state,
    args.verifier,
    auditResultMessage(args.miner, args.challenge, challenge.seed, args.proof),
    args.signature,
    'result',
  );
  if (args.verifier !== challenge.verifier) {
    reject(
      `challenge ${args.challenge} of ${args.miner} is assigned to verifier ${challenge.verifier}, not ${args.verifier}`,
    );
  }
  if (challenge.result !== null) reject(`challenge ${args.challenge} of ${args.miner} already has a result`);
  if (ctx.block.number > challenge.deadline) {
    reject(`challenge ${args.challenge} of ${args.miner} passed its deadline at block ${challenge.deadline}`);
  }
  state.put(challengeKey(args.miner), {
    ...challenge,
    result: { verifier: args.verifier, proof: args.proof, block: ctx.block.number },
  } satisfies Challenge);
};

/** Declares idle files: their indices continue the miner's sequence (labels depend on them). */
const commitIdle: Rule<CallArgs<'audit.commitIdle'>> = (state, ctx, args) => {
  const miner = positiveMiner(state, ctx.caller, 'caller');
  const record = recordOf(state, ctx.caller);
  if (args.first !== record.nextIdleIndex) {
    reject(`expected idle files from index ${record.nextIdleIndex}, got ${args.first}`);
  }
  const fileBytes = ctx.config.audit.proofs.idleNodes * 32;
  const total = serviceBytesOf(state, ctx.caller) + (record.idleFiles.length + args.roots.length) * fileBytes;
  if (total > miner.capacity) {
    reject(
      `service data and idle files would take ${total} bytes, more than the declared capacity ${miner.capacity}`,
    );
  }
  const added = args.roots.map((root, i) => ({ index: args.first + i, root }));
  state.put(recordKey(ctx.caller), {
    ...record,
    idleFiles: [...record.idleFiles, ...added],
    nextIdleIndex: args.first + args.roots.length,
  } satisfies AuditRecord);
};

/** Drops the oldest idle files (CESS: `replace_idle_space`), to make room for service data. */
const releaseIdle: Rule<CallArgs<'audit.releaseIdle'>> = (state, ctx, args) => {
  const record = recordOf(state, ctx.caller);
  if (args.count > record.idleFiles.length) {
    reject(`${ctx.caller} has ${record.idleFiles.length} idle files, cannot release ${args.count}`);
  }
  state.put(recordKey(ctx.caller), {
    ...record,
    idleFiles: record.idleFiles.slice(args.count),
  } satisfies AuditRecord);
};

export const audit = { submitResult, commitIdle, releaseIdle };
