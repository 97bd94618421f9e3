import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readTaskFile } from '../../src/cli/task-file.ts';

const secagg = { enabled: true, neighbours: 4, threshold: 3, range: 1, bits: 24, maxWeight: 1000 };
const write = (task: unknown) => {
  const file = join(mkdtempSync(join(tmpdir(), 'ailink-task-file-')), 'task.json');
  writeFileSync(file, JSON.stringify(task));
  return file;
};

describe('ailink task create / coordinator --create-task: the task file', () => {
  it('is refused before anything is stored when its SecAgg cannot survive the dropouts cohort.min plans for', async () => {
    await expect(readTaskFile(write({ cohort: { size: 4, min: 3 }, secagg }))).rejects.toMatchObject({
      code: 'TASK_SECAGG_FRAGILE',
      message: expect.stringMatching(/task\.json: in a cohort of 4, .*raise cohort\.min to 4/),
    });
    await expect(readTaskFile(write({ cohort: { size: 4, min: 4 }, secagg }))).resolves.toBeDefined();
    // What the rule cannot read yet is left to the coordinator's full validation.
    await expect(readTaskFile(write({ cohort: { size: 4 } }))).resolves.toBeDefined();
  });
});
