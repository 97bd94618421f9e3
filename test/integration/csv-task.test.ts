import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runFederatedDemo } from '../../src/cli/fl-demo.ts';
import { seededRng } from '../../src/participant/partition.ts';
import { systemRandom } from '../../src/shared/clock.ts';
import { type Manifest, parseManifest } from '../../src/task/index.ts';

/**
 * A table as organisations keep them: numbers on different scales, a categorical column, missing values, a string
 * label that depends on all of them (plus noise), so that a model can learn it but not perfectly.
 */
function patientsCsv(rows: number): string {
  const rng = seededRng('csv-task');
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
  const lines = ['age,income,ward,visits,outcome'];
  for (let i = 0; i < rows; i++) {
    const age = 20 + 60 * rng();
    const income = 20_000 + 80_000 * rng();
    const ward = ['north', 'south', 'east'][Math.floor(rng() * 3)]!;
    const visits = Math.floor(10 * rng());
    const score =
      (age - 50) / 15 - (income - 60_000) / 25_000 + (ward === 'north' ? 1 : -0.3) + 0.4 * gauss();
    const missing = rng() < 0.05;
    lines.push(
      `${age.toFixed(1)},${missing ? 'NA' : income.toFixed(0)},${rng() < 0.03 ? '' : ward},${visits},${score > 0 ? 'readmitted' : 'home'}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

describe('a tabular task end to end (real chain, miners, libp2p, HTTP)', () => {
  it("5 organisations' own CSV slices: federated statistics, SecAgg with a dropout, client-side evaluation, lineage verified", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ailink-csv-task-'));
    const file = join(dir, 'patients.csv');
    writeFileSync(file, patientsCsv(1500));
    let manifests: Manifest[] = [];
    const lines: string[] = [];
    const result = await runFederatedDemo(
      { random: systemRandom },
      {
        participants: 5,
        rounds: 3,
        alpha: null,
        secagg: true,
        source: { kind: 'csv', file, label: 'outcome' },
        drops: [{ participant: 4, round: 1, stage: 'masked' }],
        say: (line) => lines.push(line),
        async inspect(view) {
          manifests = [];
          for (const r of view.anchored(view.task)) manifests.push(parseManifest(await view.get(r.manifest)));
        },
      },
    );
    expect(result.lineage_verified, lines.join('\n')).toBe(true);
    // 3 training rounds and the closing evaluation round, all applying the statistics round's preprocessing.
    expect(manifests.map((m) => m.kind)).toEqual(['train', 'train', 'train', 'evaluation']);
    const preprocessing = manifests[0]!.preprocessing;
    expect(preprocessing).not.toBeNull();
    for (const m of manifests) expect(m.preprocessing).toEqual(preprocessing);
    expect(manifests[1]!.dropouts.map((d) => d.stage)).toEqual(['masked']);
    // Every round scored its start model on the survivors' held-out rows: about 20 % of 1,500.
    for (const m of manifests) expect(m.evaluation?.examples).toBeGreaterThan(200);
    // The model learns the rule, and comes close to a logistic regression trained on all the rows at once.
    expect(result.final_accuracy).toBeGreaterThan(0.8);
    expect(result.central_accuracy).not.toBeNull();
    expect(result.final_accuracy!).toBeGreaterThan(result.central_accuracy! - 0.05);
  }, 600_000);
});
