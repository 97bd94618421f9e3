import { createHash } from 'node:crypto';
import { verifyConsistency } from '../aggregation/index.ts';
import {
  auditRecordOf,
  fileOf,
  minerOf,
  participantsOf,
  roundsOf,
  type SeedInfo,
  type StateReader,
  seedOf,
  stopReasonOf,
  type TaskInfo,
  taskOf,
} from '../chain/index.ts';
import { fromHex } from '../shared/bytes.ts';
import {
  CommitmentSchema,
  cohortDigest,
  decodeModelBytes,
  isDistributedDp,
  latestAnchoredRound,
  type Manifest,
  needsStatistics,
  PreprocessingSchema,
  parseManifest,
  parseTaskSpec,
  pastRetention,
  privacyRecord,
  retentionOf,
  roundContext,
  secAggShape,
  type TaskSpec,
  taskDigest,
  verifyCommitment,
} from '../task/index.ts';
import type { RoundRecompute } from './recompute.ts';
import {
  type AuditCode,
  type AuditFinding,
  type AuditReport,
  type AuditRound,
  breaksLineage,
} from './types.ts';

/**
 * The audit's pure core: given the chain's protocol state and the bytes of the stored objects it names, check the
 * lineage of a task and say exactly what broke where. No I/O: `verify.ts` fetches, this decides, so the same inputs
 * always give the same report (and a benchmark can time the checks without the downloads).
 */

export interface LineageInput {
  readonly task: string;
  /** The chain's protocol state (an indexer's), read as of `atBlock`. */
  readonly state: StateReader;
  readonly atBlock: number;
  /** The stored objects fetched so far, by fid: their bytes, or why they could not be fetched. */
  readonly objects: ReadonlyMap<string, Uint8Array | Error>;
  /** Check rounds 0..round (default: every anchored round). */
  readonly round?: number;
  /**
   * Each round's re-derived aggregate (`recomputeAggregates`, async: auditTask runs it first); without it no round
   * counts as recomputed and the aggregates are not checked.
   */
  readonly recomputed?: ReadonlyMap<number, RoundRecompute>;
}

/** A miner keeps its good standing until audits penalise it (two misses in a row) or it exits. */
const PENALTY_MISSES = 2;

const sha256Hex = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
const short = (s: string) => `${s.slice(0, 8)}…`;

/**
 * The fids the audit reads that `objects` does not hold yet: first every anchored manifest, then — once those are
 * fetched — the models, spec and preprocessing they name, and for a round with recompute material that material and
 * the model the round started from. Call until it returns nothing (two passes).
 */
export function objectsToFetch(input: Omit<LineageInput, 'atBlock'>): string[] {
  const want = new Set<string>();
  for (const row of anchoredRows(input.state, input.task, input.round)) {
    const bytes = input.objects.get(row.manifest);
    if (bytes === undefined) want.add(row.manifest);
    if (!(bytes instanceof Uint8Array)) continue;
    const manifest = tryParse(bytes);
    if (manifest === undefined) continue;
    want.add(manifest.model.fid);
    want.add(manifest.specFid);
    // Re-deriving the aggregate needs the unmasking material and the model the round started from. Without material
    // there is nothing to re-derive, and the start model is not fetched: for a private model that would be one more
    // paid request (the initial model) for a reader who bought the round's model.
    if (manifest.aggregation != null) {
      want.add(manifest.aggregation.fid);
      want.add(manifest.startModel.fid);
    }
    if (manifest.preprocessing !== null) want.add(manifest.preprocessing.fid);
  }
  return [...want].filter((fid) => !input.objects.has(fid));
}

/** Checks the task's lineage against the chain; every finding names its round and field. */
export function checkLineage(input: LineageInput): AuditReport {
  const { task, state, objects } = input;
  const findings: AuditFinding[] = [];
  const onChain = taskOf(state, task);
  if (onChain === undefined) {
    findings.push({
      code: 'TASK_NOT_ON_CHAIN',
      round: null,
      where: 'task',
      message: `no task ${task} is recorded on chain (as of block ${input.atBlock}); check the task id and the network`,
    });
    return report(input, null, null, null, [], findings);
  }
  const admitted = new Map(participantsOf(state, task).map((p) => [p.account, p]));
  const rows = anchoredRows(state, task, input.round);
  if (input.round !== undefined && input.round >= onChain.rounds) {
    findings.push({
      code: 'ROUND_MISSING',
      round: input.round,
      where: `round ${input.round}`,
      message: `expected round ${input.round} to be anchored, the chain has ${onChain.rounds} round(s) of ${task}`,
    });
  }
  rows.forEach((row, i) => {
    if (row.round !== i)
      findings.push({
        code: 'ROUND_MISSING',
        round: i,
        where: `round ${i}`,
        message: `expected round ${i} to be anchored, the next anchored one is ${row.round}`,
      });
  });

  const standing = createStandingCheck(state);
  // The task's retention counts every round the chain anchored, whichever this audit checks.
  const latest = latestAnchoredRound(roundsOf(state, task));
  const manifests = rows.map((row) => readManifest(objects, row));
  const specFid = manifests.find((m) => m.manifest !== undefined)?.manifest?.specFid;
  const spec = readSpec(objects, specFid, onChain.spec, findings);
  if (specFid !== undefined) findings.push(...standing(specFid, 'task spec', null));
  if (spec !== null && spec.coordinator.account !== onChain.coordinator)
    findings.push({
      code: 'SPEC_MISMATCH',
      round: null,
      where: 'task spec · coordinator',
      message: `the spec names coordinator ${spec.coordinator.account}, the chain recorded the task for ${onChain.coordinator}`,
    });

  const rounds: AuditRound[] = rows.map((row, i) => {
    const out: AuditFinding[] = [];
    const at = (where: string) => `round ${row.round} · ${where}`;
    const add = (code: AuditCode, where: string, message: string) =>
      out.push({ code, round: row.round, where: at(where), message });
    const { manifest, problem } = manifests[i]!;
    if (problem !== undefined) add(problem.code, 'manifest', problem.message);
    out.push(...standing(row.manifest, at('manifest'), row.round));
    if (manifest !== undefined && problem === undefined) {
      checkRound(
        {
          task,
          row,
          manifest,
          previous: i > 0 ? rows[i - 1]! : null,
          spec,
          onChain,
          admitted,
          seed: seedOf(state, task, row.round, manifest.attempt),
          trained: trainedSurvivors(manifests, i),
        },
        add,
      );
      // Only a previous manifest that matched its anchor says which model this round had to start from.
      const previous =
        i > 0 && manifests[i - 1]!.problem === undefined ? manifests[i - 1]!.manifest : undefined;
      checkPrevious(manifest, previous, spec, add);
      checkModel(objects, manifest, add);
      checkKind(manifest, i === rows.length - 1, rows.slice(0, i + 1), spec, add);
      if (spec !== null) checkPreprocessing(objects, manifest, spec, add);
      if (manifest.preprocessing !== null)
        out.push(...standing(manifest.preprocessing.fid, at('preprocessing'), row.round));
      out.push(...standing(manifest.model.fid, at('model'), row.round));
      // Past the task's retention its owner was allowed to delete an update: gone is then no finding.
      const expired = spec !== null && pastRetention(retentionOf(spec), row.round, latest);
      manifest.updates.forEach((u, k) => {
        const where = `updates[${k}] (${short(u.account)})`;
        const file = fileOf(state, u.fid);
        if (file === undefined) {
          if (!expired) add('UPDATE_NOT_ON_CHAIN', where, `update ${u.fid} is not recorded on chain`);
        } else if (file.owner !== u.account)
          add(
            'UPDATE_NOT_ON_CHAIN',
            where,
            `update ${u.fid} was stored by ${file.owner}, not by the participant ${u.account}`,
          );
        else out.push(...standing(u.fid, at(where), row.round));
      });
    }
    const again = input.recomputed?.get(row.round);
    if (again !== undefined) out.push(...again.findings);
    return roundOf(row, manifest, problem === undefined, admitted, out, again);
  });
  const lastManifest = [...manifests].reverse().find((m) => m.manifest !== undefined)?.manifest;
  return report(input, onChain, spec, lastManifest?.code ?? null, rounds, findings, [...admitted.values()]);
}

/**
 * With SecAgg the survivors signed the survivor list before any share was revealed, and no participant unmasks
 * without t confirmations in its neighbourhood: so at least t valid signatures over exactly the reported survivors,
 * each by a survivor's admitted key, must be in the manifest. Leaving out a survivor, or adding one, would take t
 * colluding participants.
 */
function checkConsistency(m: Manifest, context: string, admitted: RoundContext['admitted'], add: Add): void {
  if (!m.secagg.enabled) return;
  const survivors = new Set(m.survivors);
  const signers = new Set<string>();
  m.consistency.forEach((s, k) => {
    const where = `consistency[${k}] (${short(s.account)})`;
    const key = admitted.get(s.account)?.identityKey;
    if (!survivors.has(s.account) || key === undefined)
      add(
        'CONSISTENCY_SIGNATURE',
        where,
        `${s.account} signed the survivor list but is not an admitted survivor`,
      );
    else if (!verifyConsistency(fromHex(key), context, s.account, m.survivors, fromHex(s.signature)))
      add(
        'CONSISTENCY_SIGNATURE',
        where,
        `the signature is not ${s.account}'s (admitted key ${short(key)}) on the ${m.survivors.length} survivors the manifest reports, for ${context}`,
      );
    else signers.add(s.account);
  });
  if (signers.size < m.secagg.t)
    add(
      'CONSISTENCY_SIGNATURE',
      'consistency',
      `expected at least t=${m.secagg.t} survivors to have signed the survivor list, ${signers.size} did`,
    );
}

type Row = { round: number; manifest: string; digest: string; recordedAt: number };
type Add = (code: AuditCode, where: string, message: string) => void;

function anchoredRows(state: StateReader, task: string, round?: number): Row[] {
  return roundsOf(state, task)
    .filter((r) => round === undefined || r.round <= round)
    .map((r) => ({ round: r.round, manifest: r.manifest, digest: r.digest, recordedAt: r.recordedAt }));
}

function tryParse(bytes: Uint8Array): Manifest | undefined {
  try {
    return parseManifest(bytes);
  } catch {
    return undefined;
  }
}

/** The manifest as anchored: fetched, hashing to the anchored digest, well formed, about this task and round. */
function readManifest(
  objects: LineageInput['objects'],
  row: Row,
): { manifest?: Manifest; problem?: { code: AuditCode; message: string } } {
  const bytes = objects.get(row.manifest);
  if (!(bytes instanceof Uint8Array))
    return {
      problem: {
        code: 'OBJECT_UNAVAILABLE',
        message: `manifest ${row.manifest} could not be read: ${bytes?.message ?? 'not fetched'}`,
      },
    };
  const manifest = tryParse(bytes);
  const digest = sha256Hex(bytes);
  if (digest !== row.digest)
    return {
      ...(manifest === undefined ? {} : { manifest }),
      problem: {
        code: 'MANIFEST_DIGEST',
        message: `manifest ${short(row.manifest)} hashes to ${digest}, the chain anchored ${row.digest}`,
      },
    };
  if (manifest === undefined)
    return {
      problem: {
        code: 'MANIFEST_MALFORMED',
        message: `manifest ${short(row.manifest)} is not a valid manifest`,
      },
    };
  return { manifest };
}

/** The spec every manifest names, checked against the digest `provenance.createTask` recorded. */
function readSpec(
  objects: LineageInput['objects'],
  fid: string | undefined,
  digest: string,
  findings: AuditFinding[],
): TaskSpec | null {
  if (fid === undefined) return null;
  const fail = (message: string) => {
    findings.push({ code: 'SPEC_MISMATCH', round: null, where: 'task spec', message });
    return null;
  };
  const bytes = objects.get(fid);
  if (!(bytes instanceof Uint8Array))
    return fail(`task spec ${fid} could not be read: ${bytes?.message ?? 'not fetched'}`);
  let spec: TaskSpec;
  try {
    spec = parseTaskSpec(JSON.parse(new TextDecoder().decode(bytes)));
  } catch (err) {
    return fail(`task spec ${short(fid)} is not a valid spec: ${(err as Error).message}`);
  }
  const got = taskDigest(spec);
  if (got !== digest || sha256Hex(bytes) !== digest)
    return fail(`task spec ${short(fid)} hashes to ${got}, the chain recorded ${digest}`);
  return spec;
}

/** Survivor counts of the training rounds among the first i + 1 manifests; null if one of them is unreadable. */
function trainedSurvivors(
  manifests: readonly { manifest?: Manifest | undefined }[],
  i: number,
): number[] | null {
  const out: number[] = [];
  for (let j = 0; j <= i; j++) {
    const m = manifests[j]?.manifest;
    if (m === undefined) return null;
    if (m.kind === 'train') out.push(m.survivors.length);
  }
  return out;
}

interface RoundContext {
  readonly task: string;
  readonly row: Row;
  readonly manifest: Manifest;
  readonly previous: Row | null;
  readonly spec: TaskSpec | null;
  readonly onChain: { spec: string; coordinator: string };
  readonly admitted: ReadonlyMap<string, { identityKey: string }>;
  /** The seed the chain drew for the manifest's attempt, if any. */
  readonly seed: SeedInfo | undefined;
  /**
   * How many survived each training round up to and with this one, as their manifests report (distributed DP's ε
   * depends on them); null when a manifest before could not be read.
   */
  readonly trained: readonly number[] | null;
}

/** Identity, parent link, cohort arithmetic, commitments and settings of one round. */
function checkRound(c: RoundContext, add: Add): void {
  const { manifest: m, row } = c;
  if (m.task !== c.task || m.round !== row.round)
    add('MANIFEST_MALFORMED', 'task/round', `the manifest is for ${m.task} round ${m.round}`);
  if (m.spec !== c.onChain.spec)
    add(
      'SPEC_MISMATCH',
      'spec',
      `the manifest names spec ${short(m.spec)}, the chain recorded ${short(c.onChain.spec)}`,
    );
  const parent = c.previous === null ? null : { fid: c.previous.manifest, digest: c.previous.digest };
  if (JSON.stringify(m.parent) !== JSON.stringify(parent))
    add(
      'PARENT_LINK',
      'parent',
      parent === null
        ? `round 0 must have no parent, the manifest names ${short(m.parent?.fid ?? '')}`
        : `expected the parent to be round ${c.previous!.round}'s anchored manifest ${short(parent.fid)} (digest ${short(parent.digest)}), got ${m.parent === null ? 'none' : `${short(m.parent.fid)} (digest ${short(m.parent.digest)})`}`,
    );

  const cohort = new Set(m.cohort);
  const survivors = new Set(m.survivors);
  if (cohort.size !== m.cohort.length)
    add('COHORT_INCONSISTENT', 'cohort', 'the cohort lists an account twice');
  for (const a of m.cohort)
    if (!c.admitted.has(a))
      add('NOT_ADMITTED', `cohort (${short(a)})`, `${a} is not admitted to ${c.task} on chain`);
  for (const a of m.survivors)
    if (!cohort.has(a))
      add('COHORT_INCONSISTENT', `survivors (${short(a)})`, `survivor ${a} is not in the cohort`);
  const dropped = new Set(m.dropouts.map((d) => d.account));
  const expectedDropped = m.cohort.filter((a) => !survivors.has(a));
  if (
    dropped.size !== m.dropouts.length ||
    expectedDropped.some((a) => !dropped.has(a)) ||
    dropped.size !== expectedDropped.length
  )
    add(
      'COHORT_INCONSISTENT',
      'dropouts',
      `expected the dropouts to be the cohort minus the survivors (${expectedDropped.length}), got ${m.dropouts.length}`,
    );
  const committed = m.updates.map((u) => u.account);
  if (
    committed.length !== survivors.size ||
    committed.some((a) => !survivors.has(a)) ||
    new Set(committed).size !== committed.length
  )
    add(
      'COHORT_INCONSISTENT',
      'updates',
      `expected one update commitment per survivor (${survivors.size}), got ${committed.length}`,
    );

  const context = roundContext(c.task, row.round, m.attempt);
  m.updates.forEach((u, k) => {
    const key = c.admitted.get(u.account)?.identityKey;
    const parsed = CommitmentSchema.safeParse({
      fid: u.fid,
      digest: u.digest,
      dataset: u.dataset,
      signature: u.signature,
    });
    if (key === undefined) return; // reported as NOT_ADMITTED (or as an update outside the cohort)
    if (!parsed.success || !verifyCommitment(fromHex(key), context, parsed.data))
      add(
        'COMMITMENT_SIGNATURE',
        `updates[${k}] (${short(u.account)})`,
        `the commitment to ${short(u.fid)} is not signed by ${u.account}'s admitted key ${short(key)} for ${context}`,
      );
  });

  checkConsistency(m, context, c.admitted, add);

  const spec = c.spec;
  if (spec === null) return;
  if (m.survivors.length < spec.cohort.min || m.cohort.length > spec.cohort.size)
    add(
      'SETTINGS_MISMATCH',
      'cohort',
      `expected a cohort of at most ${spec.cohort.size} with at least ${spec.cohort.min} survivors, got ${m.cohort.length} with ${m.survivors.length}`,
    );
  if (m.model.name !== spec.model.name)
    add(
      'SETTINGS_MISMATCH',
      'model.name',
      `the spec trains ${spec.model.name}, the manifest names ${m.model.name}`,
    );
  const wantSecagg = {
    enabled: spec.secagg.enabled,
    range: spec.secagg.range,
    bits: spec.secagg.bits,
    maxWeight: spec.secagg.maxWeight,
  };
  const gotSecagg = {
    enabled: m.secagg.enabled,
    range: m.secagg.range,
    bits: m.secagg.bits,
    maxWeight: m.secagg.maxWeight,
  };
  if (JSON.stringify(gotSecagg) !== JSON.stringify(wantSecagg))
    add(
      'SETTINGS_MISMATCH',
      'secagg',
      `the spec fixes ${JSON.stringify(wantSecagg)}, the manifest says ${JSON.stringify(gotSecagg)}`,
    );
  // SecAgg's graph follows from the spec and the cohort's size: a smaller threshold or degree would let fewer
  // colluders (the coordinator's own accounts among them) reconstruct an organisation's masks.
  if (spec.secagg.enabled) {
    const { k, t } = secAggShape(spec, m.cohort.length);
    if (m.secagg.k !== k || m.secagg.t !== t)
      add(
        'SETTINGS_MISMATCH',
        'secagg.k',
        `the spec gives k=${k}, t=${t} for a cohort of ${m.cohort.length}, the manifest says k=${m.secagg.k}, t=${m.secagg.t}`,
      );
    // The graph's seed came from the block that recorded the cohort's commitment: the cohort the manifest reports
    // must be that one (members unknown to the chain are NOT_ADMITTED already).
    const keys = m.cohort.map((account) => ({ account, identityKey: c.admitted.get(account)?.identityKey }));
    if (c.seed === undefined)
      add(
        'COHORT_COMMITMENT',
        'attempt',
        `no graph seed was drawn on chain for attempt ${m.attempt} of round ${row.round}: its cohort was never committed to`,
      );
    else if (
      keys.every((x) => x.identityKey !== undefined) &&
      cohortDigest(keys as { account: string; identityKey: string }[]) !== c.seed.cohort
    )
      add(
        'COHORT_COMMITMENT',
        'cohort',
        `the cohort of ${m.cohort.length} is not the one the coordinator committed to on chain at block ${c.seed.block} (digest ${short(c.seed.cohort)})`,
      );
  }
  if (JSON.stringify(sorted(m.strategy)) !== JSON.stringify(sorted(spec.strategy)))
    add(
      'SETTINGS_MISMATCH',
      'strategy',
      `the spec fixes ${JSON.stringify(spec.strategy)}, the manifest says ${JSON.stringify(m.strategy)}`,
    );
  // ε is recomputed from the spec's DP settings and the round's position: a manifest can neither understate what
  // was spent nor claim noise the spec does not ask for (or leave out noise it does).
  // An evaluation round spends nothing: it states what the training rounds before it spent. Distributed DP's ε is
  // re-derived from how many survived each round (only their noise shares are in the sums); when a round before is
  // unreadable or missing, or reports an impossible survivor count (findings of their own), only the mechanism and δ
  // can be checked.
  const accounted = m.kind === 'evaluation' ? m.round - 1 : m.round;
  const trained =
    c.trained !== null &&
    c.trained.length === accounted + 1 &&
    c.trained.every((n) => n >= 1 && n <= spec.cohort.size)
      ? c.trained
      : undefined;
  const got = m.privacy;
  const want =
    isDistributedDp(spec) && trained === undefined
      ? { mechanism: 'skellam', epsilonSpent: got.epsilonSpent, delta: spec.dp!.delta }
      : privacyRecord(spec, accounted, trained);
  const sameEpsilon =
    want.epsilonSpent === got.epsilonSpent ||
    (want.epsilonSpent !== null &&
      got.epsilonSpent !== null &&
      Math.abs(want.epsilonSpent - got.epsilonSpent) <= 1e-9 * want.epsilonSpent);
  if (want.mechanism !== got.mechanism || want.delta !== got.delta || !sameEpsilon)
    add(
      'SETTINGS_MISMATCH',
      'privacy',
      `the spec's DP settings give ${JSON.stringify(want)} for round ${m.round}, the manifest says ${JSON.stringify(got)}`,
    );
}

/** The round started from the previous round's model (round 0: the spec's initial model); ε within budget. */
function checkPrevious(m: Manifest, previous: Manifest | undefined, spec: TaskSpec | null, add: Add): void {
  if (m.round === 0) {
    if (spec !== null && m.startModel.hash !== spec.model.initialHash)
      add(
        'START_MODEL',
        'startModel',
        `round 0 started from ${short(m.startModel.hash)}, the spec's initial model is ${short(spec.model.initialHash)}`,
      );
  } else if (
    previous !== undefined &&
    (m.startModel.fid !== previous.model.fid || m.startModel.hash !== previous.model.hash)
  ) {
    add(
      'START_MODEL',
      'startModel',
      `expected round ${m.round - 1}'s model ${short(previous.model.fid)}, got ${short(m.startModel.fid)}`,
    );
  }
  if (spec?.dp && m.privacy.epsilonSpent !== null && m.privacy.epsilonSpent > spec.dp.epsilonBudget)
    add(
      'PRIVACY_BUDGET',
      'privacy',
      `ε spent ${m.privacy.epsilonSpent} exceeds the task's budget ${spec.dp.epsilonBudget}`,
    );
}

/**
 * A closing evaluation round leaves the model as it started, comes after every training round the spec plans (or the
 * privacy budget allowed), and only last; and no more training rounds are anchored than the spec plans.
 */
function checkKind(m: Manifest, last: boolean, upTo: readonly Row[], spec: TaskSpec | null, add: Add): void {
  if (m.kind === 'evaluation') {
    if (m.model.fid !== m.startModel.fid || m.model.hash !== m.startModel.hash)
      add('MODEL_HASH', 'model', 'an evaluation round must leave the model as it started');
    if (!last) add('SETTINGS_MISMATCH', 'kind', 'an evaluation round closes a task: no round may follow it');
    if (spec !== null && spec.data.holdout === 0)
      add('SETTINGS_MISMATCH', 'kind', 'the spec holds no rows out, so it has no evaluation round');
  } else if (spec !== null && upTo.length > spec.rounds)
    add(
      'SETTINGS_MISMATCH',
      'kind',
      `the spec plans ${spec.rounds} training rounds, this is training round ${m.round}`,
    );
  if (spec !== null && (m.evaluation === null) !== (spec.data.holdout === 0))
    add(
      'SETTINGS_MISMATCH',
      'evaluation',
      spec.data.holdout === 0
        ? 'the spec holds no rows out, yet the manifest reports a client-side evaluation'
        : 'the spec holds rows out, yet the manifest reports no client-side evaluation',
    );
}

/**
 * The preprocessing the organisations applied: named exactly when the spec's data needs federated statistics, and
 * stored as a well-formed object hashing to the digest the manifest gives.
 */
function checkPreprocessing(objects: LineageInput['objects'], m: Manifest, spec: TaskSpec, add: Add): void {
  const needed = needsStatistics(spec.data);
  if (m.preprocessing === null) {
    if (needed)
      add(
        'SETTINGS_MISMATCH',
        'preprocessing',
        'the spec needs federated statistics; the manifest names none',
      );
    return;
  }
  if (!needed)
    add(
      'SETTINGS_MISMATCH',
      'preprocessing',
      'the spec needs no federated statistics; the manifest names some',
    );
  const bytes = objects.get(m.preprocessing.fid);
  if (!(bytes instanceof Uint8Array)) {
    add(
      'OBJECT_UNAVAILABLE',
      'preprocessing',
      `${m.preprocessing.fid} could not be read: ${bytes?.message ?? 'not fetched'}`,
    );
    return;
  }
  const hash = sha256Hex(bytes);
  if (hash !== m.preprocessing.digest) {
    add(
      'SETTINGS_MISMATCH',
      'preprocessing',
      `${short(m.preprocessing.fid)} hashes to ${hash}, the manifest says ${m.preprocessing.digest}`,
    );
    return;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    parsed = undefined;
  }
  if (!PreprocessingSchema.safeParse(parsed).success)
    add('SETTINGS_MISMATCH', 'preprocessing', `${short(m.preprocessing.fid)} is not a preprocessing record`);
}

function checkModel(objects: LineageInput['objects'], m: Manifest, add: Add): void {
  const bytes = objects.get(m.model.fid);
  if (!(bytes instanceof Uint8Array)) {
    add(
      'OBJECT_UNAVAILABLE',
      'model',
      `model ${m.model.fid} could not be read: ${bytes?.message ?? 'not fetched'}`,
    );
    return;
  }
  const hash = sha256Hex(bytes);
  if (hash !== m.model.hash) {
    add(
      'MODEL_HASH',
      'model',
      `model ${short(m.model.fid)} hashes to ${hash}, the manifest says ${m.model.hash}`,
    );
    return;
  }
  try {
    decodeModelBytes(bytes, { model: m.model.name, parameters: m.model.parameters });
  } catch (err) {
    add('MODEL_HASH', 'model', (err as Error).message);
  }
}

/**
 * Whether a stored object is still retrievable: active on chain, and each column held by a miner in good standing
 * (registered, not exited, not penalised, no open restoral order). Fewer good columns than the data fragments →
 * unretrievable; any bad one → a standing finding. Miner lookups are cached: a task's objects share their miners.
 */
function createStandingCheck(state: StateReader) {
  const good = new Map<string, string | null>();
  const problemOf = (miner: string | null): string | null => {
    if (miner === null) return 'no miner reported it';
    const cached = good.get(miner);
    if (cached !== undefined) return cached;
    const info = minerOf(state, miner);
    const record = auditRecordOf(state, miner);
    const problem =
      info === undefined
        ? `miner ${short(miner)} is not registered`
        : info.state !== 'positive'
          ? `miner ${short(miner)} has exited`
          : record.consecutiveMisses >= PENALTY_MISSES
            ? `miner ${short(miner)} missed ${record.consecutiveMisses} audits in a row`
            : null;
    good.set(miner, problem);
    return problem;
  };
  return (fid: string, where: string, round: number | null): AuditFinding[] => {
    if (fid === '') return [];
    const file = fileOf(state, fid);
    if (file === undefined || file.state !== 'Active')
      return [
        {
          code: 'OBJECT_UNRETRIEVABLE',
          round,
          where,
          message: `object ${short(fid)} is ${file === undefined ? 'not recorded' : `${file.state.toLowerCase()}`} on chain`,
        },
      ];
    const bad = file.placements
      .map((miner, column) => ({
        column,
        miner,
        problem: file.orders[column] ? 'its column is under repair' : problemOf(miner),
      }))
      .filter((c) => c.problem !== null);
    const out: AuditFinding[] = bad.map((c) => ({
      code: 'MINER_STANDING',
      round,
      where: `${where} · column ${c.column}`,
      message: `object ${short(fid)} column ${c.column}: ${c.problem}`,
    }));
    const needed = file.profile.dataFragments;
    if (file.placements.length - bad.length < needed)
      out.push({
        code: 'OBJECT_UNRETRIEVABLE',
        round,
        where,
        message: `object ${short(fid)}: ${file.placements.length - bad.length} columns in good standing, ${needed} are needed`,
      });
    return out;
  };
}

function sorted(value: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : 1)),
  );
}

/** A manifest that does not hash to its anchor is still shown (what was served), but none of its updates counts as valid. */
function roundOf(
  row: Row,
  m: Manifest | undefined,
  trusted: boolean,
  admitted: ReadonlyMap<string, { identityKey: string }>,
  findings: AuditFinding[],
  again: RoundRecompute | undefined,
): AuditRound {
  const signatureBroken = new Set(
    findings.filter((f) => f.code === 'COMMITMENT_SIGNATURE').map((f) => f.where),
  );
  return {
    round: row.round,
    manifest: { fid: row.manifest, digest: row.digest, recordedAt: row.recordedAt },
    model: m ? { fid: m.model.fid, hash: m.model.hash, name: m.model.name } : null,
    parent: m?.parent ?? null,
    cohort: m?.cohort ?? [],
    survivors: m?.survivors ?? [],
    dropouts: m?.dropouts ?? [],
    updates: (m?.updates ?? []).map((u, k) => ({
      account: u.account,
      fid: u.fid,
      digest: u.digest,
      valid:
        trusted &&
        admitted.has(u.account) &&
        !signatureBroken.has(`round ${row.round} · updates[${k}] (${short(u.account)})`),
    })),
    kind: m?.kind ?? 'train',
    metrics: m
      ? { accuracy: m.metrics.accuracy, loss: m.metrics.loss, testExamples: m.metrics.testExamples }
      : null,
    evaluation: m?.evaluation ?? null,
    privacy: m ? { ...m.privacy } : null,
    secagg: m ? { enabled: m.secagg.enabled, k: m.secagg.k, t: m.secagg.t } : null,
    startedAt: m?.startedAt ?? null,
    finishedAt: m?.finishedAt ?? null,
    aggregate_recomputed: again?.recomputed ?? false,
    aggregateNote: again === undefined ? 'not recomputed' : again.note,
    findings,
    ok: findings.every((f) => !breaksLineage(f)),
  };
}

function report(
  input: LineageInput,
  onChain: TaskInfo | null,
  spec: TaskSpec | null,
  code: AuditReport['code'],
  rounds: AuditRound[],
  findings: AuditFinding[],
  admitted: { account: string; identityKey: string; admittedAt: number }[] = [],
): AuditReport {
  return {
    task: input.task,
    chain:
      onChain === null
        ? null
        : {
            coordinator: onChain.coordinator,
            specDigest: onChain.spec,
            createdAt: onChain.createdAt,
            rounds: onChain.rounds,
            stoppedAt: onChain.stoppedAt ?? null,
            stopReason: stopReasonOf(onChain),
            admitted: admitted.map((p) => ({
              account: p.account,
              identityKey: p.identityKey,
              admittedAt: p.admittedAt,
            })),
          },
    spec: spec as Record<string, unknown> | null,
    code,
    rounds,
    findings,
    ok: findings.every((f) => !breaksLineage(f)) && rounds.every((r) => r.ok) && onChain !== null,
    atBlock: input.atBlock,
  };
}
