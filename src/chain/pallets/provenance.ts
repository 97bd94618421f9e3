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
const roundKey = (task: string, round: number) => `${roundsPrefix(task)}${String(round).padStart(10, '0')}`;

const createTask: Rule<CallArgs<'provenance.createTask'>> = (state, ctx, args) => {
  if (state.get(taskKey(args.task)) !== undefined) reject(`task ${args.task} already exists`);
  state.put(taskKey(args.task), {
    coordinator: ctx.caller,
    spec: args.spec,
    createdAt: ctx.block.number,
    rounds: 0,
  } satisfies TaskInfo);
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

export const provenance = { createTask, recordRound };
