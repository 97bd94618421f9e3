// The argv helpers every command group shares: usage errors, number flags, signals, the JSON log.
// The flag helpers live in flags.ts, which a test may import (this module watches the parent process's channel).
export { nonNegativeInt, portNumber, positiveInt, usageError } from './flags.ts';

export const MiB = 1024 * 1024;

/**
 * How long a process whose parent died may take to stop gracefully before it exits regardless. A dev network's chain
 * dies with the parent. A miner whose audit pass waited for that chain to come back used to stop only at this
 * deadline (2 of 8 orphaned networks with 10 s here): its stop awaited the pass, and the chain client's wait for a
 * lost connection lasted `reconnectMs`. Closing the chain client now ends such waits at once, and a role closes it
 * first when it stops (test/node/orphans.test.ts); this deadline stays as the backstop. Nothing is lost by exiting:
 * SQLite and the fragment files are crash-safe.
 */
const PARENT_GONE_EXIT_MS = 1_000;

/**
 * Resolved when the process that spawned this one has died, whatever killed it (SIGKILL included).
 *
 * A parent that wants its children to die with it spawns them with an IPC channel (`stdio: [..., 'ipc']`, as the dev
 * network does for its miners and verifier). The kernel closes the parent's end of that socket pair when the parent
 * dies, however it dies, and Node reports 'disconnect' here at once. Node cannot set PR_SET_PDEATHSIG; polling
 * `process.ppid` would notice late and needs a timer; a closed stdin would also end a process that a user started
 * with `</dev/null` or under nohup. A channel exists only when the spawner asked for one, so `ailink` run from a shell
 * is unaffected. Never resolves without a channel.
 *
 * Listened for from the moment this module loads, so a parent that dies while its child is still starting is noticed;
 * once noticed, the child gets PARENT_GONE_EXIT_MS to stop gracefully (via `untilSignal`), then exits anyway.
 */
export const parentGone: Promise<void> = new Promise((res) => {
  if (process.channel === undefined) return;
  // The channel alone must not keep a process alive that has finished its work.
  process.channel.unref();
  process.once('disconnect', () => {
    process.stderr.write(
      `${JSON.stringify({ t: new Date().toISOString(), level: 'warn', event: 'parent-gone', exitWithinMs: PARENT_GONE_EXIT_MS })}\n`,
    );
    setTimeout(() => process.exit(1), PARENT_GONE_EXIT_MS).unref();
    res();
  });
});

/** Resolved on SIGINT or SIGTERM, or when the parent that spawned this process with an IPC channel has died. */
export function untilSignal(): Promise<void> {
  return new Promise((res) => {
    process.once('SIGINT', () => res());
    process.once('SIGTERM', () => res());
    void parentGone.then(res);
  });
}

/** Structured log lines on stderr: one JSON object per event. */
export const jsonLog = (() => {
  const line =
    (level: string) =>
    (event: string, fields: Record<string, unknown> = {}) =>
      process.stderr.write(`${JSON.stringify({ t: new Date().toISOString(), level, event, ...fields })}\n`);
  return { info: line('info'), warn: line('warn') };
})();
