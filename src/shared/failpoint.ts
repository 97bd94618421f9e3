/**
 * Named crash points for fault-injection harnesses (`npm run chaos`). A process started with
 * `AILINK_FAILPOINTS=name[,name…]` SIGKILLs itself the first time it reaches a listed point: a kill at a chosen step,
 * such as between storing a round's model and anchoring its manifest, which a kill from outside hits only by luck.
 * Unset (always, outside a harness), `failpoint` is one Set lookup on an empty set.
 */

/** Every point there is, so that a harness picks from them and a misspelt name is reported, not silently ignored. */
export const FAILPOINTS = [
  /** The coordinator added a masked update into its running sum (inside aggregation). */
  'coordinator.update-summed',
  /** The coordinator placed a round's model (and material), before its manifest. */
  'coordinator.model-stored',
  /** The coordinator placed a round's manifest, before the round's objects are declared with its anchor on chain. */
  'coordinator.manifest-stored',
  /** An upload's fragments are on their miners, its declaration not yet on chain (mid-upload, in any role). */
  'storage.fragments-placed',
] as const;

export type Failpoint = (typeof FAILPOINTS)[number];

/** The armed points of `spec` (AILINK_FAILPOINTS' syntax); names that are no failpoint are returned apart. */
export function parseFailpoints(spec: string | undefined): { armed: Set<Failpoint>; unknown: string[] } {
  const names = (spec ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const known = new Set<string>(FAILPOINTS);
  return {
    armed: new Set(names.filter((n): n is Failpoint => known.has(n))),
    unknown: names.filter((n) => !known.has(n)),
  };
}

const { armed, unknown } = parseFailpoints(process.env.AILINK_FAILPOINTS);
if (unknown.length > 0) {
  process.stderr.write(
    `AILINK_FAILPOINTS: ${unknown.join(', ')} ${unknown.length === 1 ? 'is' : 'are'} not a failpoint (expected one of ${FAILPOINTS.join(', ')}); ignored\n`,
  );
}

/** SIGKILLs this process when `name` is armed (AILINK_FAILPOINTS); else does nothing. */
export function failpoint(name: Failpoint): void {
  if (!armed.has(name)) return;
  process.stderr.write(`failpoint ${name}: killing this process (AILINK_FAILPOINTS)\n`);
  process.kill(process.pid, 'SIGKILL');
}
