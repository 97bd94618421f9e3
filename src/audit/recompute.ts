import { createHash } from 'node:crypto';
import { byteStreamFromSeed, type StrategyState, verifySigned } from '../aggregation/index.ts';
import { participantsOf, roundsOf, seedOf, taskOf } from '../chain/index.ts';
import { fromHex } from '../shared/bytes.ts';
import { AilinkError, hasCode } from '../shared/errors.ts';
import {
  type AggregationMaterial,
  concludeAttempt,
  decodeModelBytes,
  graphSeedOf,
  latestAnchoredRound,
  type Manifest,
  materialAuditorsOf,
  parseAggregationMaterial,
  parseManifest,
  parseTaskSpec,
  pastRetention,
  readStoredUpdateHeader,
  recordsAggregationMaterial,
  retentionOf,
  roundContext,
  strategyOf,
  type TaskSpec,
  taskDigest,
  vectorLayout,
} from '../task/index.ts';
import type { LineageInput } from './lineage.ts';
import type { AuditCode, AuditFinding } from './types.ts';

/**
 * The audit's re-derivation of every round's aggregate (issue 19 §1): from the recompute material a manifest names,
 * replay the SecAgg server over the participants' own signed messages, unmask the sum bit for bit, apply the spec's
 * strategy through `concludeAttempt` — the coordinator's own code path — and compare the model bytes, the client-side
 * evaluation and the weight with what the manifest says. Pure (the material, models and spec come in `objects`); async
 * only because Shamir reconstruction is.
 *
 * An auditor learns here exactly what the coordinator learned: the survivors' masked updates and the shares revealed
 * to unmask their sum (README, Threats).
 */

export interface RoundRecompute {
  /** True only when the sum was unmasked and everything it fixes matched the manifest bit for bit. */
  readonly recomputed: boolean;
  /** Why a round was not recomputed although nothing is wrong (central DP, no SecAgg); null otherwise. */
  readonly note: string | null;
  readonly findings: readonly AuditFinding[];
}

const sha256Hex = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
const short = (s: string) => `${s.slice(0, 8)}…`;

/** Recomputes every anchored round (up to `input.round`) in order, carrying the strategy's state between them. */
export async function recomputeAggregates(input: LineageInput): Promise<Map<number, RoundRecompute>> {
  const out = new Map<number, RoundRecompute>();
  const { task, state, objects } = input;
  const admitted = new Map(participantsOf(state, task).map((p) => [p.account, p.identityKey]));
  const all = roundsOf(state, task);
  const rows = all.filter((r) => input.round === undefined || r.round <= input.round);
  // Retention counts the rounds the chain has anchored, whichever rounds this audit checks.
  const latest = latestAnchoredRound(all);
  const bytesOf = (fid: string) => {
    const b = objects.get(fid);
    return b instanceof Uint8Array ? b : undefined;
  };
  let spec: TaskSpec | null = null;
  // The strategy's state after the previous round as re-derived here (its optimiser buffers), or null when unknown.
  let carried: StrategyState | null = null;
  for (const row of rows) {
    const findings: AuditFinding[] = [];
    const add = (code: AuditCode, where: string, message: string) =>
      findings.push({ code, round: row.round, where: `round ${row.round} · ${where}`, message });
    const done = (recomputed: boolean, note: string | null = null) => {
      out.set(row.round, { recomputed: recomputed && findings.length === 0, note, findings });
      if (!recomputed || findings.length > 0) carried = null;
    };
    // The manifest, spec and start model are checked by checkLineage; here they are only read (a round whose
    // manifest does not match its anchor is not recomputed: its findings say why).
    const manifestBytes = bytesOf(row.manifest);
    let m: Manifest | undefined;
    if (manifestBytes !== undefined && sha256Hex(manifestBytes) === row.digest) {
      try {
        m = parseManifest(manifestBytes);
      } catch {
        m = undefined;
      }
    }
    if (m === undefined) {
      done(false, 'the manifest could not be read as anchored');
      continue;
    }
    spec ??= readSpec(bytesOf(m.specFid), state, task);
    if (spec === null) {
      done(false, 'the task spec could not be read');
      continue;
    }
    if (!recordsAggregationMaterial(spec)) {
      done(
        false,
        spec.secagg.enabled
          ? 'central DP: the exact sum is what the noise hides, so it is not published (the noise is the coordinator’s secret)'
          : 'without SecAgg the updates are plaintext, so they are not published',
      );
      continue;
    }
    const auditors = materialAuditorsOf(spec);
    if (m.aggregation == null) {
      add(
        'AGGREGATE_MATERIAL',
        'aggregation',
        auditors === null
          ? `the task uses SecAgg without central DP, so the manifest must name its recompute material; it names none (version ${m.version})`
          : `the task names auditors for its central-DP rounds (dp.auditors), so the manifest must name the material sealed for them; it names none (version ${m.version})`,
      );
      done(false);
      continue;
    }
    const materialBytes = objects.get(m.aggregation.fid);
    if (!(materialBytes instanceof Uint8Array) && pastRetention(retentionOf(spec), row.round, latest)) {
      // Its owner was allowed to delete it: the task's own terms, not a lie (issue 17 item 9).
      done(false, retentionNote(spec, row.round, latest!));
      continue;
    }
    if (
      !(materialBytes instanceof Uint8Array) &&
      auditors !== null &&
      hasCode(materialBytes) &&
      (materialBytes.code === 'CRYPTO_NOT_A_READER' || materialBytes.code === 'ACCESS_DENIED')
    ) {
      // Sealed for the named auditors alone: this account is not one of them, which says nothing about the round.
      done(
        false,
        `central DP: the recompute material is sealed for the task's ${auditors.length} named auditor(s) (dp.auditors), and this account is not one of them`,
      );
      continue;
    }
    if (!(materialBytes instanceof Uint8Array)) {
      add(
        'AGGREGATE_MATERIAL',
        'aggregation',
        `recompute material ${m.aggregation.fid} could not be read: ${materialBytes?.message ?? 'not fetched'}`,
      );
      done(false);
      continue;
    }
    const digest = sha256Hex(materialBytes);
    if (digest !== m.aggregation.digest) {
      add(
        'AGGREGATE_MATERIAL',
        'aggregation',
        `recompute material ${short(m.aggregation.fid)} hashes to ${digest}, the manifest says ${m.aggregation.digest}`,
      );
      done(false);
      continue;
    }
    let material: AggregationMaterial;
    try {
      material = parseAggregationMaterial(materialBytes);
    } catch (err) {
      add('AGGREGATE_MATERIAL', 'aggregation', (err as Error).message);
      done(false);
      continue;
    }
    const context = roundContext(task, row.round, m.attempt);
    const seed = seedOf(state, task, row.round, m.attempt);
    const identities = new Map<string, Uint8Array>();
    for (const a of m.cohort) {
      const key = admitted.get(a);
      if (key !== undefined) identities.set(a, fromHex(key));
    }
    if (seed === undefined || identities.size !== m.cohort.length || material.context !== context) {
      // NOT_ADMITTED or COHORT_COMMITMENT already say why (or the material is for another attempt).
      if (material.context !== context)
        add('AGGREGATE_MATERIAL', 'aggregation', `the material is for ${material.context}, not ${context}`);
      done(false, 'the cohort or its graph seed is not the chain’s');
      continue;
    }
    const params = {
      context,
      identities,
      k: m.secagg.k,
      t: m.secagg.t,
      graphSeed: fromHex(graphSeedOf(seed.blockHash, task, row.round, m.attempt)),
      dimension: vectorLayout(spec, m.kind).dimension,
    };
    if (!checkMaskedUpdates(m, material, params, add)) {
      done(false);
      continue;
    }
    // The round started from the model its manifest names (checkLineage ties that to the previous round's).
    const start = startState(spec, m, bytesOf(m.startModel.fid), row.round === 0 ? null : carried);
    if (typeof start === 'string') {
      done(false, start);
      continue;
    }
    let c: Awaited<ReturnType<typeof concludeAttempt>>;
    // Masked updates whose own message is invalid: named, and the round not recomputed (whether or not the sum then
    // unmasks without them).
    const invalid: { where: string; message: string }[] = [];
    const onRefused = (k: number, message: Parameters<typeof verifySigned>[2]) => {
      const r = refusedUpdate(params, k, message);
      if (r !== null) invalid.push(r);
    };
    try {
      // Central DP: the noise is drawn from the seed the material reveals to its auditors.
      const seed = auditors === null ? undefined : material.noiseSeed;
      if (auditors !== null && seed === undefined)
        throw new AilinkError(
          'ROUND_MESSAGE_INVALID',
          'the material of a central-DP round carries no noise seed',
        );
      c = await concludeAttempt({
        spec,
        kind: m.kind,
        start,
        secagg: { params, material, onRefused },
        ...(seed === undefined ? {} : { noise: byteStreamFromSeed(fromHex(seed)) }),
      });
    } catch (err) {
      if (invalid.length > 0) {
        for (const r of invalid) add('AGGREGATE_UPDATE', r.where, r.message);
        done(false);
        continue;
      }
      add(
        'AGGREGATE_UNMASK',
        'aggregation',
        `the recompute material does not unmask to a round's result: ${(err as Error).message}`,
      );
      done(false);
      continue;
    }
    if (invalid.length > 0) {
      for (const r of invalid) add('AGGREGATE_UPDATE', r.where, r.message);
      done(false);
      continue;
    }
    for (const reason of c.rejected)
      add('AGGREGATE_MATERIAL', 'aggregation', `a message in the material is refused: ${reason}`);
    if (c.survivors.join('\n') !== [...m.survivors].sort().join('\n'))
      add(
        'AGGREGATE_SURVIVORS',
        'survivors',
        `the material's updates unmask for ${c.survivors.length} survivors (${c.survivors.map(short).join(', ')}), the manifest reports ${m.survivors.length} (${m.survivors.map(short).join(', ')})`,
      );
    checkDropouts(m, material, c.survivors, add);
    if (JSON.stringify(c.evaluation) !== JSON.stringify(m.evaluation))
      add(
        'AGGREGATE_MISMATCH',
        'evaluation',
        `the recomputed sum scores the start model ${JSON.stringify(c.evaluation)}, the manifest says ${JSON.stringify(m.evaluation)}`,
      );
    if (m.kind === 'train') {
      if (c.modelHash !== m.model.hash)
        add(
          'AGGREGATE_MISMATCH',
          'model',
          `the spec's strategy over the recomputed sum gives a model hashing to ${c.modelHash}, the manifest's model is ${m.model.hash}: it is not the aggregate of the committed updates`,
        );
      if (c.examples !== m.metrics.examples)
        add(
          'AGGREGATE_MISMATCH',
          'metrics.examples',
          `the recomputed updates weigh ${c.examples} together, the manifest says ${m.metrics.examples}`,
        );
    }
    done(true);
    if (findings.length === 0) carried = m.kind === 'train' ? c.next!.state : start;
  }
  return out;
}

/**
 * Why a round past the task's retention is not re-derived: its recompute material (and the updates it carries) could
 * be deleted by their owners once the chain anchored `updateRounds` more rounds.
 */
export function retentionNote(spec: TaskSpec, round: number, latest: number): string {
  const n = retentionOf(spec)!.updateRounds;
  return `retention: the task keeps a round's updates and recompute material for ${n} anchored round(s) after it, and round ${round + n} is anchored (the chain has ${latest}); the material is deleted, so the aggregate can no longer be re-derived`;
}

function readSpec(
  bytes: Uint8Array | undefined,
  state: LineageInput['state'],
  task: string,
): TaskSpec | null {
  if (bytes === undefined) return null;
  try {
    const spec = parseTaskSpec(JSON.parse(new TextDecoder().decode(bytes)));
    const recorded = taskOf(state, task)?.spec;
    return sha256Hex(bytes) === recorded && taskDigest(spec) === recorded ? spec : null;
  } catch {
    return null;
  }
}

/**
 * Each masked update in the material must be a survivor's committed one: listed once, for an account whose signed
 * commitment the manifest carries, hashing to that commitment's digest, made by that account for this attempt, and
 * carrying a SecAgg signature. That signature is checked once, by the replayed server inside `concludeAttempt` (it
 * checks every masked input it adds): the refusals are named by `refusedUpdate`, as this check named them when it
 * verified each signature itself, a second time. A coordinator can so neither alter an update nor invent a survivor.
 */
function checkMaskedUpdates(
  m: Manifest,
  material: AggregationMaterial,
  params: Parameters<typeof verifySigned>[0],
  add: (code: AuditCode, where: string, message: string) => void,
): boolean {
  let ok = true;
  const seen = new Set<string>();
  material.masked.forEach((entry, k) => {
    const where = maskedWhere(k, entry.account);
    const commitment = m.updates.find((u) => u.account === entry.account);
    if (seen.has(entry.account) || commitment === undefined || !params.identities.has(entry.account)) {
      ok = false;
      add(
        'AGGREGATE_SURVIVORS',
        where,
        `an update for ${entry.account}, who ${seen.has(entry.account) ? 'is listed twice' : 'has no signed commitment in the manifest or is not in the cohort'}: a survivor nobody committed`,
      );
      return;
    }
    seen.add(entry.account);
    const bytes = entry.update;
    const digest = sha256Hex(bytes);
    if (digest !== commitment.digest) {
      ok = false;
      add(
        'AGGREGATE_UPDATE',
        where,
        `the update hashes to ${digest}, ${short(entry.account)} committed to ${commitment.digest}`,
      );
      return;
    }
    try {
      const u = readStoredUpdateHeader(bytes, params.dimension);
      if (u.signature === null)
        throw new AilinkError('ROUND_MESSAGE_INVALID', 'it carries no SecAgg signature');
      if (u.context !== params.context)
        throw new AilinkError(
          'SECAGG_BAD_MESSAGE',
          `expected a masked message of ${params.context} from a cohort member, got masked of ${u.context} from ${u.from}`,
        );
      if (u.from !== entry.account)
        throw new AilinkError('ROUND_MESSAGE_INVALID', `it was made by ${u.from}`);
    } catch (err) {
      ok = false;
      add('AGGREGATE_UPDATE', where, invalidUpdate(err));
    }
  });
  return ok;
}

const maskedWhere = (k: number, account: string) => `aggregation · masked[${k}] (${short(account)})`;
const invalidUpdate = (err: unknown) => `the update is not a valid masked input: ${(err as Error).message}`;

/**
 * A masked update the replayed server refused: AGGREGATE_UPDATE when the message itself is invalid (its signature by
 * the sender's admitted key, its shape), checked again for this one message only; null when it was refused for the
 * round's sake (its sender shared no keys, say), which the refusals in the conclusion already report.
 */
function refusedUpdate(
  params: Parameters<typeof verifySigned>[0],
  k: number,
  message: Parameters<typeof verifySigned>[2],
): { where: string; message: string } | null {
  try {
    verifySigned(params, 'masked', message);
    return null;
  } catch (err) {
    return { where: maskedWhere(k, message.from), message: invalidUpdate(err) };
  }
}

/**
 * The stage each dropout left in follows from the material: no advert → 'advertise', no shares → 'shares', else
 * 'masked' (its update never counted). A coordinator that reports another dropout set or other stages is caught.
 */
function checkDropouts(
  m: Manifest,
  material: AggregationMaterial,
  survivors: readonly string[],
  add: (code: AuditCode, where: string, message: string) => void,
): void {
  const fromOf = (list: readonly unknown[]) =>
    new Set(
      list.map((x) => (x as { from?: unknown }).from).filter((x): x is string => typeof x === 'string'),
    );
  const advertised = fromOf(material.adverts);
  const shared = fromOf(material.shares);
  const live = new Set(survivors);
  const want = m.cohort
    .filter((a) => !live.has(a))
    .map((account) => ({
      account,
      stage: !advertised.has(account) ? 'advertise' : !shared.has(account) ? 'shares' : 'masked',
    }));
  const key = (list: readonly { account: string; stage: string }[]) =>
    [...list]
      .map((d) => `${d.account}@${d.stage}`)
      .sort()
      .join(', ');
  if (key(want) !== key(m.dropouts))
    add(
      'AGGREGATE_DROPOUTS',
      'dropouts',
      `the material shows dropouts ${key(want) || 'none'}, the manifest reports ${key(m.dropouts) || 'none'}`,
    );
}

/**
 * The strategy's state at the round's start: its global model is the start model's weights (as stored); its
 * optimiser buffers, for a strategy that keeps any, are those re-derived through the previous rounds.
 */
function startState(
  spec: TaskSpec,
  m: Manifest,
  startBytes: Uint8Array | undefined,
  carried: StrategyState | null,
): StrategyState | string {
  if (startBytes === undefined || sha256Hex(startBytes) !== m.startModel.hash)
    return 'the start model could not be read (a private model this account may not read?)';
  let weights: Float32Array;
  try {
    weights = decodeModelBytes(startBytes, { model: m.model.name, parameters: m.model.parameters }).weights;
  } catch (err) {
    return `the start model does not decode: ${(err as Error).message}`;
  }
  const fresh = strategyOf(spec).init(weights);
  if (Object.keys(fresh.buffers).length === 0) return fresh;
  if (m.round === 0) return fresh;
  if (carried === null)
    return `strategy ${fresh.strategy} keeps state across rounds, and round ${m.round - 1} was not re-derived`;
  return { ...carried, global: weights };
}
