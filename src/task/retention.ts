import { z } from 'zod';

/**
 * Garbage collection of a round's bulky inputs (issue 17 item 9). At 1,000 organisations with the CNN a round leaves
 * about 20 GB behind: every participant's masked update, and the recompute material, which carries the survivors'
 * masked updates once more. A task may say how long they are kept; models, manifests, the spec and the preprocessing
 * are always kept (they are the lineage).
 *
 * The rule counts anchored rounds, not time: round q's updates and material may be deleted once round q + N is
 * anchored on chain. Every party reads the same chain, so the owners that delete (each participant its own updates,
 * the coordinator its material) and the auditor who must not call the deletion a finding agree on it.
 */
export const RetentionSchema = z
  .object({
    /**
     * N ≥ 1: a round's updates and recompute material are deleted once N more rounds are anchored after it (a
     * compliance officer gets at least that long to re-derive the aggregate). Absent retention: kept for good.
     */
    updateRounds: z.number().int().min(1).max(100_000),
  })
  .strict();
export type Retention = z.infer<typeof RetentionSchema>;

/**
 * Whether round `round`'s updates and recompute material are past the task's retention, given the latest round the
 * chain has anchored (null: none yet). Never without retention.
 */
export function pastRetention(
  retention: Retention | null | undefined,
  round: number,
  latestAnchored: number | null,
): boolean {
  if (retention == null || latestAnchored === null) return false;
  return round + retention.updateRounds <= latestAnchored;
}

/** The latest anchored round among the chain's rows (null when none is). */
export function latestAnchoredRound(rows: readonly { round: number }[]): number | null {
  return rows.reduce<number | null>((max, r) => (max === null || r.round > max ? r.round : max), null);
}

/** The last part of the name of a participant's update (`updateObjectName`). */
export const updateObjectLeaf = (account: string) => `${account}.update`;
/** The last part of the name of a round's recompute material (`materialObjectName`). */
export const MATERIAL_OBJECT_LEAF = 'aggregation.json';

/** The name a participant gives its update of a round (each attempt stores another object under the same name). */
export const updateObjectName = (task: string, round: number, account: string) =>
  `${task}/round-${round}/${updateObjectLeaf(account)}`;

/** The name the coordinator gives a round's recompute material. */
export const materialObjectName = (task: string, round: number) =>
  `${task}/round-${round}/${MATERIAL_OBJECT_LEAF}`;

/** What every round object of a task is named under: `${task}/round-<n>/…`. */
export const roundObjectsPrefix = (task: string) => `${task}/round-`;

/**
 * Of an owner's own objects (as the chain lists them, with the names it gave them), the fids of those named
 * `${task}/round-<q>/<leaf>` whose round q is past retention. Pure: the owner lists and deletes, this decides. Names
 * are the owner's own, so nobody else can make it delete an object by naming one.
 */
export function expiredRoundObjects(
  objects: readonly { fid: string; name: string | null }[],
  task: string,
  leaf: string,
  retention: Retention | null | undefined,
  latestAnchored: number | null,
): string[] {
  const prefix = roundObjectsPrefix(task);
  const out: string[] = [];
  for (const o of objects) {
    if (o.name === null || !o.name.startsWith(prefix)) continue;
    const rest = o.name.slice(prefix.length);
    const match = /^(-?\d{1,9})\/(.+)$/.exec(rest);
    if (match === null || match[2] !== leaf) continue;
    if (pastRetention(retention, Number(match[1]), latestAnchored)) out.push(o.fid);
  }
  return out;
}
