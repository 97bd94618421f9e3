import { createHash } from 'node:crypto';
import { appendFileSync, chmodSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { Clock } from '../shared/clock.ts';
import { AilinkError } from '../shared/errors.ts';
import type { DeossAuth } from './deoss-protocol.ts';

/**
 * Remembers every (account, message) pair a gateway accepted until the message expires, and refuses it again until
 * then. Kept in a file (0600) when one is given, so a restart of the gateway does not reopen the window: each use is
 * appended before the request is served. It also keeps the latest time it forgot expired pairs at, and refuses every
 * message expiring by then: were the clock set back (an NTP step), a forgotten pair would be unexpired and new again.
 */
export interface ReplayGuard {
  /** @throws AUTH_REPLAYED when the pair was used and has not expired; INVALID_INPUT when too many are live */
  use(auth: DeossAuth): void;
  /** Pairs still remembered. */
  readonly size: number;
}

const idOf = (auth: Pick<DeossAuth, 'account' | 'message'>) =>
  createHash('sha256').update(auth.account).update('\n').update(auth.message).digest('hex');

export function createReplayGuard(options: {
  clock: Clock;
  /** Where used pairs are kept across restarts; memory only when absent (tests). */
  file?: string;
  /** Most pairs live at once (default 100 000): only the owner can add any, but it should not exhaust memory. */
  maxEntries?: number;
}): ReplayGuard {
  const maxEntries = options.maxEntries ?? 100_000;
  const used = new Map<string, number>();
  let appended = 0;
  /** Pairs expiring at or before this were forgotten (ms). */
  let forgotten = 0;
  const { file, clock } = options;
  if (file !== undefined && existsSync(file)) {
    const now = clock.now();
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const m = /^(\d{1,16}) ([0-9a-f]{64}|forgotten)$/.exec(line);
      if (m === null) continue;
      if (m[2] === 'forgotten') forgotten = Math.max(forgotten, Number(m[1]));
      else if (Number(m[1]) > now) used.set(m[2]!, Number(m[1]));
    }
    // What expired by now is dropped here: from now on it counts as forgotten, and the file says so.
    forgotten = Math.max(forgotten, now);
    appendFileSync(file, `${forgotten} forgotten\n`, { mode: 0o600 });
    appended = used.size;
  }

  const prune = (now: number) => {
    for (const [id, expiresAt] of used) if (expiresAt <= now) used.delete(id);
    if (now > forgotten) {
      forgotten = now;
      if (file !== undefined) appendFileSync(file, `${forgotten} forgotten\n`, { mode: 0o600 });
    }
  };

  /** Rewrites the file with the live pairs only, once it holds mostly expired ones. */
  const compact = () => {
    if (file === undefined || appended < 2 * used.size + 1000) return;
    const aside = `${file}.tmp`;
    const lines = [`${forgotten} forgotten\n`, ...[...used].map(([id, t]) => `${t} ${id}\n`)];
    writeFileSync(aside, lines.join(''), { mode: 0o600 });
    chmodSync(aside, 0o600);
    renameSync(aside, file);
    appended = used.size;
  };

  return {
    use(auth) {
      const now = clock.now();
      const id = idOf(auth);
      const seen = used.get(id);
      if (seen !== undefined && seen > now)
        throw new AilinkError(
          'AUTH_REPLAYED',
          `this Message was used already; sign a new one (another nonce) for every request`,
        );
      if (auth.expiresAt <= forgotten)
        throw new AilinkError(
          'AUTH_REPLAYED',
          `this Message expires before the gateway last forgot used messages (its clock was set back): sign a new one`,
        );
      if (used.size >= maxEntries) prune(now);
      if (used.size >= maxEntries)
        throw new AilinkError(
          'INVALID_INPUT',
          `${maxEntries} signed messages are live; wait until some expire before sending more`,
        );
      used.set(id, auth.expiresAt);
      if (file !== undefined) {
        appendFileSync(file, `${auth.expiresAt} ${id}\n`, { mode: 0o600 });
        appended++;
        if (appended % 1000 === 0) {
          prune(now);
          compact();
        }
      }
    },
    get size() {
      return used.size;
    },
  };
}
