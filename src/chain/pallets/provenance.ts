import { verifySignature } from '../../shared/account.ts';
import { fromHex } from '../../shared/bytes.ts';
import type { CallArgs } from '../calls.ts';
import type { StateValue } from '../state.ts';
import { type Rule, reject } from './context.ts';

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

export const taskKey = (task: string) => `provenance/tasks/${task}`;
export const roundsPrefix = (task: string) => `provenance/rounds/${task}/`;
export const participantsPrefix = (task: string) => `provenance/participants/${task}/`;
export const participantKey = (task: string, account: string) => `${participantsPrefix(task)}${account}`;
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
  } satisfies TaskInfo);
};

/** What a participant signs to bind its round-signing key to its account for one task. */
export function admissionMessage(task: string, identityKey: string): Uint8Array {
  return new TextEncoder().encode(`ailink/provenance/admit/v1\n${task}\n${identityKey}`);
}

/**
 * The coordinator records a participant's admission; the participant's own signature shows it asked to join with
 * this key, and only accounts the task's owner listed can be admitted. Once per account: keys are not swapped mid-task.
 */
const admit: Rule<CallArgs<'provenance.admit'>> = (state, ctx, args) => {
  const task = state.get<TaskInfo>(taskKey(args.task));
  if (task === undefined) reject(`no task ${args.task}`);
  if (task.coordinator !== ctx.caller)
    reject(`only the coordinator ${task.coordinator} admits participants to ${args.task}`);
  if (!(task.admitted ?? []).includes(args.account))
    reject(`${args.account} is not on the admission list of ${args.task}`);
  if (state.get(participantKey(args.task, args.account)) !== undefined)
    reject(`${args.account} is already admitted to ${args.task}`);
  if (!verifySignature(args.account, admissionMessage(args.task, args.identityKey), fromHex(args.signature)))
    reject(`the admission request is not signed by ${args.account} for this task and key`);
  state.put(participantKey(args.task, args.account), {
    identityKey: args.identityKey,
    admittedAt: ctx.block.number,
  } satisfies ParticipantInfo);
};

/** Rounds are recorded in order, by the task's coordinator only. */
const recordRound: Rule<CallArgs<'provenance.recordRound'>> = (state, ctx, args) => {
  const task = state.get<TaskInfo>(taskKey(args.task));
  if (task === undefined) reject(`no task ${args.task}`);
  if (task.coordinator !== ctx.caller)
    reject(`only the coordinator ${task.coordinator} records rounds of ${args.task}`);
  if (args.round !== task.rounds) reject(`expected round ${task.rounds} of ${args.task}, got ${args.round}`);
  state.put(roundKey(args.task, args.round), {
    manifest: args.manifest,
    digest: args.digest,
    recordedAt: ctx.block.number,
  } satisfies RoundInfo);
  state.put(taskKey(args.task), { ...task, rounds: task.rounds + 1 });
};

/** The task's coordinator says where it is reached, again whenever that changes (a restart on new addresses). */
const setEndpoint: Rule<CallArgs<'provenance.setEndpoint'>> = (state, ctx, args) => {
  const task = state.get<TaskInfo>(taskKey(args.task));
  if (task === undefined) reject(`no task ${args.task}`);
  if (task.coordinator !== ctx.caller)
    reject(`only the coordinator ${task.coordinator} records where ${args.task} is reached`);
  state.put(taskKey(args.task), {
    ...task,
    endpoint: { url: args.url, peerId: args.peerId, addrs: [...args.addrs], at: ctx.block.number },
  } satisfies TaskInfo);
};

export const provenance = { createTask, admit, recordRound, setEndpoint };
