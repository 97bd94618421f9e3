// The task file both `ailink task create` and `ailink coordinator --create-task` take.
import { readFile } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { type ModelPackage, readModelJson } from '../../models/index.ts';
import { AilinkError } from '../shared/errors.ts';
import { checkSecAggSurvives, TaskSpecSchema } from '../task/index.ts';

export interface TaskFile {
  /** The TaskInput as written; its model is still named by `path` when `model` is set. */
  readonly input: Record<string, unknown>;
  /** The model package `model.path` names (a model.json beside the task file, or absolute), and its stored name. */
  readonly model?: { readonly package: ModelPackage; readonly name: string };
}

/**
 * Reads a task file and the model.json its `model.path` names, before anything connects: a missing or malformed file
 * is reported first.
 * @throws INVALID_INPUT when the file is unreadable or not a JSON object; MODEL_INVALID for its model.json;
 *   TASK_SECAGG_FRAGILE when its SecAgg settings cannot survive the dropouts its cohort.min plans for
 */
export async function readTaskFile(file: string): Promise<TaskFile> {
  let input: unknown;
  try {
    input = JSON.parse(await readFile(file, 'utf8'));
  } catch (cause) {
    throw new AilinkError(
      'INVALID_INPUT',
      `cannot read the task file ${file} as JSON: ${(cause as Error).message}`,
      {
        cause,
      },
    );
  }
  if (typeof input !== 'object' || input === null || Array.isArray(input))
    throw new AilinkError('INVALID_INPUT', `expected the task file ${file} to hold a JSON object (a task)`);
  const task = input as Record<string, unknown>;
  // The SecAgg survivability rule (the coordinator applies it again with the whole spec) refuses before the model
  // package is stored for nothing; what it cannot read yet is left to the coordinator's validation.
  const cohort = TaskSpecSchema.shape.cohort.safeParse(task.cohort);
  const secagg = TaskSpecSchema.shape.secagg.safeParse(task.secagg);
  if (cohort.success && secagg.success)
    checkSecAggSurvives({ cohort: cohort.data, secagg: secagg.data }, `the task file ${file}`);
  const path = (task.model as { path?: unknown } | undefined)?.path;
  if (typeof path !== 'string') return { input: task };
  return {
    input: task,
    model: {
      package: await readModelJson(resolve(dirname(file), path)),
      name: `${basename(dirname(path))}.ailp`,
    },
  };
}

/** The TaskInput with its model named by the stored package's fid instead of its path. */
export function withModelFid(input: Record<string, unknown>, fid: string): Record<string, unknown> {
  const { path: _path, ...model } = input.model as Record<string, unknown>;
  return { ...input, model: { ...model, fid } };
}
