import { verifySignature } from '../../shared/account.ts';
import { fromHex } from '../../shared/bytes.ts';
import type { CallArgs } from '../calls.ts';
import type { StateReader, StateValue } from '../state.ts';
import { type Rule, reject } from './context.ts';
import { getFile } from './file-bank.ts';

/** A training task: who coordinates it, the digest of its settings, how many rounds are recorded. */
export interface TaskInfo {
  [key: string]: StateValue;
  coordinator: string;
  spec: string;
  createdAt: number;
  rounds: number;
  /** The accounts the task owner lets join (SS58); only they can be admitted. */
  admitted: string[];
  /** Where its coordinator is reached: null until the coordinator records it (absent in records from before). */
  endpoint: TaskEndpoint | null;
  /** The block that stopped it: null while it runs (absent in records from before). */
  stoppedAt: number | null;
}

/**
 * Why the task was stopped, when the stop said (its coordinator ending a round out of attempts): kept in the record
 * under `stopReason`, absent from stops without one (and from records from before), so those keep their state.
 */
export function stopReasonOf(info: TaskInfo): string | null {
  return typeof info.stopReason === 'string' ? info.stopReason : null;
}

/** The task's record, refused unless it exists, runs, and `caller` is its coordinator (who created it). */
function ownTask(state: StateReader, caller: string, task: string, what: string): TaskInfo {
  const info = state.get<TaskInfo>(taskKey(task));
  if (info === undefined) reject(`no task ${task}`);
  if (info.coordinator !== caller) reject(`only the coordinator ${info.coordinator} ${what} ${task}`);
  if ((info.stoppedAt ?? null) !== null) reject(`task ${task} was stopped at block ${info.stoppedAt}`);
  return info;
}

/** The coordinator's HTTP API and libp2p host, as it announces them: an organisation needs only the chain. */
export interface TaskEndpoint {
  [key: string]: StateValue;
  url: string;
  peerId: string;
  addrs: string[];
  /** The block that recorded it. */
  at: number;
}

/** A participant admitted to a task: the Ed25519 key that signs its round messages, bound to its account. */
export interface ParticipantInfo {
  [key: string]: StateValue;
  identityKey: string;
  admittedAt: number;
}

export interface RoundInfo {
  [key: string]: StateValue;
  /** fid of the round's manifest object (participants, update fids, settings, privacy budget). */
  manifest: string;
  /** SHA-256 of the manifest's canonical bytes. */
  digest: string;
  recordedAt: number;
}

/** An attempt's drawn graph seed: the cohort it was drawn for, and the recording block's hash and number. */
export interface SeedInfo {
  [key: string]: StateValue;
  /** The cohort's digest (`cohortDigest` in src/task), committed before the block existed. */
  cohort: string;
  /** The hash of the block that recorded it (hex, no 0x): the randomness the attempt's graph seed derives from. */
  blockHash: string;
  block: number;
}

export const taskKey = (task: string) => `provenance/tasks/${task}`;
export const roundsPrefix = (task: string) => `provenance/rounds/${task}/`;
export const participantsPrefix = (task: string) => `provenance/participants/${task}/`;
export const participantKey = (task: string, account: string) => `${participantsPrefix(task)}${account}`;
export const seedKey = (task: string, round: number, attempt: number) =>
  `provenance/seeds/${task}/${round}/${attempt}`;
const roundKey = (task: string, round: number) => `${roundsPrefix(task)}${String(round).padStart(10, '0')}`;

const createTask: Rule<CallArgs<'provenance.createTask'>> = (state, ctx, args) => {
  if (state.get(taskKey(args.task)) !== undefined) reject(`task ${args.task} already exists`);
  state.put(taskKey(args.task), {
    coordinator: ctx.caller,
    spec: args.spec,
    createdAt: ctx.block.number,
    rounds: 0,
    admitted: [...new Set(args.admitted ?? [])],
    endpoint: null,
    stoppedAt: null,
  } satisfies TaskInfo);
};

/**
 * What a participant signs to bind its round-signing key to its account for one task on one chain: the genesis hash
 * (0x-hex, as the chain client reports it) keeps an admission from being replayed on another network that carries a
 * task of the same id.
 */
export function admissionMessage(genesisHash: string, task: string, identityKey: string): Uint8Array {
  return new TextEncoder().encode(`ailink/provenance/admit/v2\n${genesisHash}\n${task}\n${identityKey}`);
}

/**
 * The coordinator records a participant's admission; the participant's own signature shows it asked to join with
 * this key, and only accounts the task's owner listed can be admitted. Once per account: keys are not swapped mid-task.
 */
const admit: Rule<CallArgs<'provenance.admit'>> = (state, ctx, args) => {
  const task = ownTask(state, ctx.caller, args.task, 'admits participants to');
  if (!(task.admitted ?? []).includes(args.account))
    reject(`${args.account} is not on the admission list of ${args.task}`);
  if (state.get(participantKey(args.task, args.account)) !== undefined)
    reject(`${args.account} is already admitted to ${args.task}`);
  if (
    !verifySignature(
      args.account,
      admissionMessage(ctx.genesisHash, args.task, args.identityKey),
      fromHex(args.signature),
    )
  )
    reject(`the admission request is not signed by ${args.account} for this chain, task and key`);
  state.put(participantKey(args.task, args.account), {
    identityKey: args.identityKey,
    admittedAt: ctx.block.number,
  } satisfies ParticipantInfo);
};

/**
 * Rounds are recorded in order, by the task's coordinator only, each naming a manifest the storage network holds: an
 * Active file of the coordinator's own (every column reported by a miner's signed receipt, or deferred to repair).
 * The close declares the manifest and anchors it in one extrinsic whose calls are judged one by one, so without this
 * a manifest refused there (its owner's space ran out) would leave a round anchored to an object nobody stored.
 */
const recordRound: Rule<CallArgs<'provenance.recordRound'>> = (state, ctx, args) => {
  const task = ownTask(state, ctx.caller, args.task, 'records rounds of');
  if (args.round !== task.rounds) reject(`expected round ${task.rounds} of ${args.task}, got ${args.round}`);
  const manifest = getFile(state, args.manifest);
  if (manifest === undefined)
    reject(`the manifest ${args.manifest} of round ${args.round} is not stored: declare it first`);
  if (manifest.owner !== ctx.caller)
    reject(`the manifest ${args.manifest} is ${manifest.owner}'s, not the coordinator's (${ctx.caller})`);
  if (manifest.state !== 'Active')
    reject(`the manifest ${args.manifest} is not stored yet: its columns are not all reported`);
  state.put(roundKey(args.task, args.round), {
    manifest: args.manifest,
    digest: args.digest,
    recordedAt: ctx.block.number,
  } satisfies RoundInfo);
  state.put(taskKey(args.task), { ...task, rounds: task.rounds + 1 });
};

/** The task's coordinator says where it is reached, again whenever that changes (a restart on new addresses). */
const setEndpoint: Rule<CallArgs<'provenance.setEndpoint'>> = (state, ctx, args) => {
  const task = ownTask(state, ctx.caller, args.task, 'records the endpoint of');
  state.put(taskKey(args.task), {
    ...task,
    endpoint: { url: args.url, peerId: args.peerId, addrs: [...args.addrs], at: ctx.block.number },
  } satisfies TaskInfo);
};

/**
 * The owner changes who may join: added accounts may be admitted from now on; a removed one may not, and its
 * admission (if any) stays on record for the rounds it took part in, but it is drawn into no later cohort.
 */
const setAdmitted: Rule<CallArgs<'provenance.setAdmitted'>> = (state, ctx, args) => {
  const task = ownTask(state, ctx.caller, args.task, 'changes who may join');
  const both = args.add.filter((a) => args.remove.includes(a));
  if (both.length > 0) reject(`${both[0]} is both added and removed`);
  const removed = new Set(args.remove);
  const admitted = [...new Set([...task.admitted.filter((a) => !removed.has(a)), ...args.add])];
  if (admitted.length > 1024)
    reject(`a task admits at most 1024 accounts, this would make ${admitted.length}`);
  state.put(taskKey(args.task), { ...task, admitted } satisfies TaskInfo);
};

/** The owner stops the task for good, saying why if it likes (kept with the record: stops without one add nothing). */
const stopTask: Rule<CallArgs<'provenance.stopTask'>> = (state, ctx, args) => {
  const task = ownTask(state, ctx.caller, args.task, 'stops');
  state.put(taskKey(args.task), {
    ...task,
    stoppedAt: ctx.block.number,
    ...(args.reason === undefined ? {} : { stopReason: args.reason }),
  } satisfies TaskInfo);
};

/**
 * The coordinator commits to an attempt's cohort; the block's hash becomes the attempt's randomness. Once per
 * attempt, and only for the round the task records next (or the statistics round, -1, before round 0): a coordinator
 * cannot draw again for an attempt it did not like, nor draw ahead for rounds to come. It can still abandon an
 * attempt and open the next, which shows on chain as one more draw for the round.
 */
const drawSeed: Rule<CallArgs<'provenance.drawSeed'>> = (state, ctx, args) => {
  const task = ownTask(state, ctx.caller, args.task, 'draws seeds for');
  const next = args.round === -1 ? task.rounds === 0 : args.round === task.rounds;
  if (!next) reject(`${args.task} records round ${task.rounds} next, not ${args.round}`);
  if (state.get(seedKey(args.task, args.round, args.attempt)) !== undefined)
    reject(`attempt ${args.attempt} of round ${args.round} of ${args.task} already has its seed`);
  state.put(seedKey(args.task, args.round, args.attempt), {
    cohort: args.cohort,
    blockHash: ctx.block.hash.replace(/^0x/, ''),
    block: ctx.block.number,
  } satisfies SeedInfo);
};

export const provenance = { createTask, admit, recordRound, setEndpoint, setAdmitted, stopTask, drawSeed };
