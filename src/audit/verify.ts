import type { StateReader } from '../chain/index.ts';
import { AilinkError, hasCode } from '../shared/errors.ts';
import { checkLineage, objectsToFetch } from './lineage.ts';
import { recomputeAggregates } from './recompute.ts';
import type { AuditReport } from './types.ts';

export interface AuditDeps {
  /** The chain's protocol state, from an indexer the caller synced (the auditor's own, not the coordinator's). */
  readonly state: StateReader;
  /** The block that state is at (reported, so a result can be reproduced). */
  readonly atBlock: number;
  /** Reads a stored object; the storage client checks every fragment and segment against the chain's record. */
  fetch(fid: string, options: { signal: AbortSignal }): Promise<Uint8Array>;
}

export interface AuditOptions {
  /** Check rounds 0..round (default: all anchored). */
  readonly round?: number;
  /** Per object fetch (default 60 s); a fetch that takes longer is reported as unavailable, not waited for. */
  readonly deadlineMs?: number;
  /** How many objects are fetched at once (default 4). */
  readonly concurrency?: number;
  readonly signal?: AbortSignal;
  /**
   * The map the fetched objects are kept in (default: a fresh one): pass one to use the bytes afterwards, e.g. to
   * score each round's model on your own data (`evaluateClaims`) without fetching it again.
   */
  readonly objects?: Map<string, Uint8Array | Error>;
  /** Called after each object is fetched (or failed). */
  readonly onProgress?: (e: { fetched: number; wanted: number }) => void;
}

/**
 * `ailink audit verify`: fetches what the chain names (manifests, then the models and spec they name) and checks the
 * lineage with `checkLineage`. A fetch that fails is a finding, not an exception: the report says which object could
 * not be read and why.
 */
export async function auditTask(
  deps: AuditDeps,
  task: string,
  options: AuditOptions = {},
): Promise<AuditReport> {
  const objects = options.objects ?? new Map<string, Uint8Array | Error>();
  const deadlineMs = options.deadlineMs ?? 60_000;
  let wanted = 0;
  let fetched = 0;
  for (;;) {
    const next = objectsToFetch({
      task,
      state: deps.state,
      objects,
      ...(options.round === undefined ? {} : { round: options.round }),
    });
    if (next.length === 0) break;
    wanted += next.length;
    const queue = [...next];
    const worker = async () => {
      for (let fid = queue.shift(); fid !== undefined; fid = queue.shift()) {
        const signal = AbortSignal.any([
          AbortSignal.timeout(deadlineMs),
          ...(options.signal ? [options.signal] : []),
        ]);
        try {
          objects.set(fid, await deps.fetch(fid, { signal }));
        } catch (err) {
          if (options.signal?.aborted) throw err;
          objects.set(fid, fetchFailure(err));
        }
        options.onProgress?.({ fetched: ++fetched, wanted });
      }
    };
    await Promise.all(Array.from({ length: options.concurrency ?? 4 }, worker));
  }
  const input = {
    task,
    state: deps.state,
    atBlock: deps.atBlock,
    objects,
    ...(options.round === undefined ? {} : { round: options.round }),
  };
  return checkLineage({ ...input, recomputed: await recomputeAggregates(input) });
}

/** Why an object could not be fetched, as the report shows it: the error code in the message, on its first line. */
function fetchFailure(err: unknown): Error {
  if (hasCode(err))
    return new AilinkError(err.code, `${err.code}: ${err.message.split('\n')[0]}`, { cause: err });
  if (err instanceof Error) return err;
  return new AilinkError('INTERNAL', `expected the fetch to fail with an Error, got ${String(err)}`);
}
