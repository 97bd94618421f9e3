/**
 * The recomputation part of `npm run bench:audit` (issue 19 §6): `audit verify` re-deriving one round's aggregate from
 * its recompute material, against the coordinator's own aggregation of the same attempt from the same inputs, in the
 * same run. Aim: the audit's recomputation ≤ 2× the coordinator's aggregation.
 *
 * Each case is one real SecAgg+ attempt at the model's real size: a task created and its organisations admitted
 * through the real protocol rules (test/audit/fixture.ts), the graph seed drawn on chain, every member a real SecAgg
 * client (X25519 adverts, Shamir shares, masked input signed by its admitted identity key, consistency, unmask)
 * driven by a real SecAgg server, each survivor's masked update stored and committed to as a participant does, the
 * material assembled as the coordinator's `conclusionInput` assembles it, the round's manifest (version 4) anchored.
 * Two cases per model: n organisations all surviving; and n + 1 members of which the last leaves after sharing its
 * keys (stage 'masked'), so its pair masks with every surviving neighbour must be regenerated from its revealed secret
 * — the costly case. With 4 organisations SecAgg+ has k = t = 2 and survives no dropout (src/task/spec.ts
 * secAggShape), hence the extra member: both cases sum n survivors' updates. k and t follow the spec `ailink demo`
 * writes for the cohort (neighbours min(8, largest even < cohort), threshold ⌊k/2⌋ + 1, at least 2).
 *
 * Timed, both sides from objects already in memory (no storage, no downloads), median of `runs`:
 * - coordinator: `concludeAttempt` over the material — the SecAgg server replayed (every signature checked), the sum
 *   unmasked, decoded, the strategy applied, the model encoded and hashed — as the coordinator's `finish` runs it;
 *   beside it, `finish`'s work to publish the material (a JSON header of the messages, the stored updates raw, SHA-256).
 * - audit: `recomputeAggregates` for the task — what `audit verify` runs to recompute: the manifest and spec read and
 *   hashed, the material hashed and parsed, every masked update checked against its commitment and signature, the
 *   start model decoded, `concludeAttempt`, the model hash, evaluation, weight, survivors and dropouts compared.
 * The live stages' work of the coordinator (fetching and checking each update as it arrives, the live server) is not
 * counted on its side: only `finish`'s.
 */
import { createHash } from 'node:crypto';
import Database from 'better-sqlite3';
import { checkLineage, recomputeAggregates } from '../src/audit/index.ts';
import { createSqliteState } from '../src/chain/index.ts';
import { parseAggregationMaterial, strategyOf } from '../src/task/index.ts';
import { buildLineage } from '../test/audit/fixture.ts';
import { runSecAggRound } from '../test/audit/secagg-round.ts';

export interface RecomputeRow {
  model: string;
  label: string;
  parameters: number;
  case: 'no dropout' | 'one dropout';
  /** Members of the cohort, survivors (organisations whose updates are summed), and the SecAgg+ graph. */
  cohort: number;
  survivors: number;
  k: number;
  t: number;
  material_mb: number;
  coordinator_aggregate_s: number;
  coordinator_finish_s: number;
  recompute_s: number;
  /** Of the audit's time: hashing the material and parsing it (JSON, schema) — work the coordinator has no need of. */
  audit_material_parse_s: number;
  recompute_ratio: number;
}

const sha256Hex = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** The SecAgg settings `ailink demo` writes for a cohort of `m` (src/cli/fl-demo.ts), before secAggShape caps them. */
const demoSecAgg = (m: number) => ({
  neighbours: Math.min(8, m - 1 - ((m - 1) % 2)),
  threshold: Math.max(2, Math.floor(Math.min(8, m - 1) / 2) + 1),
});

export interface RecomputeOptions {
  readonly sizes: readonly { model: string; label: string; parameters: number }[];
  /** Organisations whose updates are summed (the dropout case has one member more). */
  readonly organisations: number;
  readonly runs: number;
  readonly log: (s: string) => void;
}

export async function benchRecompute(options: RecomputeOptions): Promise<RecomputeRow[]> {
  const rows: RecomputeRow[] = [];
  for (const size of options.sizes) {
    for (const dropout of [false, true]) {
      rows.push(await runCase(size, options.organisations, dropout, options));
    }
  }
  return rows;
}

async function runCase(
  size: RecomputeOptions['sizes'][number],
  n: number,
  dropout: boolean,
  options: RecomputeOptions,
): Promise<RecomputeRow> {
  const built = performance.now();
  const members = dropout ? n + 1 : n;
  const db = new Database(':memory:');
  const state = createSqliteState(db);
  // The task, its spec, the 12 miners and the admissions through the real protocol rules; round 0 is run here.
  const f = buildLineage({
    rounds: 1,
    anchored: 0,
    participants: members,
    label: `recompute-${size.model}-${members}-${dropout ? 'drop' : 'all'}`,
    state,
    model: { name: size.model, parameters: size.parameters },
    secagg: demoSecAgg(members),
  });
  const { task } = f;
  const start = strategyOf(f.spec).init(new Float32Array(size.parameters));
  const r = await runSecAggRound(f, size, {
    round: 0,
    dropout,
    start,
    startModel: f.initial,
    parent: null,
  });
  const { k, t } = r;
  const first = { bytes: r.materialBytes };
  const finish = r.finish;
  const buildS = (performance.now() - built) / 1000;

  // The audit's input: everything already fetched.
  const input = { task, state, atBlock: f.h.block, objects: f.objects as Map<string, Uint8Array | Error> };
  const check = await recomputeAggregates(input); // also the warm-up
  const round = check.get(0);
  if (round?.recomputed !== true) {
    throw new Error(
      `bench: the audit did not recompute the round (${round?.note ?? ''} ${JSON.stringify(round?.findings ?? [])}): the benchmark measures nothing`,
    );
  }
  const lineage = checkLineage({ ...input, recomputed: check });
  if (!lineage.ok)
    throw new Error(
      `bench: the generated round did not verify: ${JSON.stringify([...lineage.findings, ...lineage.rounds.flatMap((r) => r.findings)]).slice(0, 800)}`,
    );

  const coordinatorAggregate: number[] = [];
  const coordinatorFinish: number[] = [];
  const recompute: number[] = [];
  const parse: number[] = [];
  // Interleaved, so load on this shared machine weighs on both sides alike.
  for (let r = 0; r < options.runs; r++) {
    const x = await finish();
    coordinatorAggregate.push(x.aggregateS);
    coordinatorFinish.push(x.finishS);
    const t0 = performance.now();
    await recomputeAggregates(input);
    recompute.push((performance.now() - t0) / 1000);
    const t1 = performance.now();
    sha256Hex(first.bytes);
    parseAggregationMaterial(first.bytes);
    parse.push((performance.now() - t1) / 1000);
  }
  db.close();
  const row: RecomputeRow = {
    model: size.model,
    label: size.label,
    parameters: size.parameters,
    case: dropout ? 'one dropout' : 'no dropout',
    cohort: members,
    survivors: n,
    k,
    t,
    material_mb: Number((first.bytes.byteLength / 1e6).toFixed(1)),
    coordinator_aggregate_s: Number(median(coordinatorAggregate).toFixed(4)),
    coordinator_finish_s: Number(median(coordinatorFinish).toFixed(4)),
    recompute_s: Number(median(recompute).toFixed(4)),
    audit_material_parse_s: Number(median(parse).toFixed(4)),
    recompute_ratio: Number((median(recompute) / median(coordinatorAggregate)).toFixed(2)),
  };
  options.log(
    `${size.label}, ${row.case}: ${members} members (k = ${k}, t = ${t}), material ${row.material_mb} MB, built in ${buildS.toFixed(1)} s; coordinator ${row.coordinator_aggregate_s} s, audit ${row.recompute_s} s (material hash + parse ${row.audit_material_parse_s} s)`,
  );
  return row;
}
