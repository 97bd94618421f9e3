import type { DevNetworkProgress } from '../node/devnet.ts';

/**
 * What `ailink demo` shows a person: lines that stay (steps, table rows, events) and one live line (start-up progress,
 * the open round). On a terminal the live line is redrawn in place and every lasting line is printed above it, so an
 * event never lands inside the live line or a table row; in a file or a pipe there is no "in place", so a live line is
 * printed once per key (a start-up step, a round attempt) instead of once per redraw.
 */
export interface HumanOutput {
  /** A line that stays. */
  say(line: string): void;
  /** Replaces the live line; '' clears it. `key` (default: the line) says when a pipe gets a new line. */
  live(line: string, key?: string): void;
}

/** The part of a stream this needs (process.stdout, process.stderr, or a test's fake). */
export interface OutputStream {
  write(text: string): unknown;
  readonly isTTY?: boolean;
  readonly columns?: number;
}

/** Erase the terminal's current line and return to its start. */
const ERASE = '\r\x1b[2K';

export function createHumanOutput(stream: OutputStream): HumanOutput {
  if (stream.isTTY !== true) {
    let lastKey: string | undefined;
    return {
      say: (line) => {
        stream.write(`${line}\n`);
      },
      live: (line, key = line) => {
        if (line === '' || key === lastKey) return;
        lastKey = key;
        stream.write(`${line}\n`);
      },
    };
  }
  let current = '';
  // A live line wider than the terminal wraps, and `\r` then only returns to the start of its last row: the rows
  // above would pile up on every redraw.
  const fitWidth = (line: string) => {
    const width = (stream.columns ?? 0) - 1;
    return width > 0 && line.length > width ? `${line.slice(0, width - 1)}…` : line;
  };
  return {
    say: (line) => {
      stream.write(current === '' ? `${line}\n` : `${ERASE}${line}\n${current}`);
    },
    live: (line) => {
      const next = fitWidth(line);
      if (next === current) return;
      current = next;
      stream.write(`${ERASE}${next}`);
    },
  };
}

/** The dev network's start-up step as a live line; the key changes per step, not per miner. */
export function networkProgressLine(p: DevNetworkProgress): { line: string; key: string } {
  switch (p.step) {
    case 'chain':
      return { line: '   starting the dev chain…', key: p.step };
    case 'funding':
      return { line: `   dev chain up; funding ${p.accounts} accounts from Alice…`, key: p.step };
    case 'verifier':
      return { line: '   starting the verifier…', key: p.step };
    case 'miners':
      return {
        line:
          p.ready === 0
            ? `   verifier up; starting ${p.total} miners (each registers on chain)…`
            : `   miners ${p.ready}/${p.total} registered…`,
        key: p.step,
      };
  }
}

/** The open round as the demo knows it: the coordinator's events plus what the organisations report. */
export interface RoundProgress {
  readonly round: number;
  readonly attempt: number;
  readonly stage: string;
  /** Organisations the coordinator drew for this attempt. */
  readonly cohort: number;
  /** Organisations that answered this stage, of those the coordinator expects in it (0 of 0: nobody answers it). */
  readonly answered: number;
  readonly expected: number;
  /** Bytes of the updates organisations have stored and committed to in this attempt so far. */
  readonly bytes: number;
  readonly seconds: number;
}

/** A round's stages with SecAgg; without it only the round start and the update. */
export const SECAGG_STAGES = ['advertise', 'shares', 'masked', 'consistency', 'unmask'] as const;
export const PLAIN_STAGES = ['advertise', 'masked'] as const;

/**
 * `   round 1 (2/6) ▕██████░░░░▏ masked · 7/10 answered · 5.6 MB of updates · 14 s`: round numbers as in the table (from
 * 0) with the round's place among the task's, the open stage among `stages`. Key: the attempt, so a pipe gets one line
 * per attempt.
 */
export function roundProgressLine(
  p: RoundProgress,
  task: { rounds: number; stages: readonly string[] },
): { line: string; key: string } {
  const step = task.stages.indexOf(p.stage) + 1;
  const filled = Math.round((10 * step) / task.stages.length);
  let line = `   round ${p.round} (${p.round + 1}/${task.rounds})${p.attempt > 0 ? ` attempt ${p.attempt}` : ''}`;
  line += ` ▕${'█'.repeat(filled)}${'░'.repeat(10 - filled)}▏ ${p.stage}`;
  if (p.expected > 0 && p.answered >= p.expected)
    // After the last answer of the last stage the coordinator still has seconds of work, which would otherwise look
    // like a stall.
    line +=
      p.stage === task.stages.at(-1)
        ? ` · all ${p.expected} answered; aggregating, storing the model, anchoring the round`
        : ` · all ${p.expected} answered`;
  else if (p.expected > 0) line += ` · ${p.answered}/${p.expected} answered`;
  // Until the coordinator says whom it expects: the cohort drawn, the number the round starts with.
  else if (p.stage === task.stages[0]) line += ` · cohort of ${p.cohort}`;
  if (p.bytes > 0) line += ` · ${(p.bytes / 1e6).toFixed(1)} MB of updates`;
  line += ` · ${Math.round(p.seconds)} s`;
  return { line, key: `round ${p.round} attempt ${p.attempt}` };
}

/**
 * A component's log line for a person: the demo's organisation names instead of account addresses (`5Dsi1rB2` or the
 * whole SS58 address → `org-05`), so that an event says who without a lookup.
 */
export function withNames(line: string, names: readonly { address: string; name: string }[]): string {
  let out = line;
  for (const { address, name } of names) out = out.replaceAll(address, name);
  for (const { address, name } of names)
    out = out.replaceAll(new RegExp(`${address.slice(0, 8)}[^\\s,;)]*`, 'g'), name);
  return out;
}

/**
 * Follows the open round for the live line. The coordinator says which attempt and stage are open and whom it still
 * expects; the organisations say when an answer of theirs was accepted and how large their update was. Expected =
 * answered + still expected (the coordinator drops an organisation from `expecting` once it stored its answer).
 */
export function createRoundTracker(now: () => number) {
  let open:
    | {
        round: number;
        attempt: number;
        cohort: number;
        stage: string;
        started: number;
        answered: Set<string>;
        expected: number;
      }
    | undefined;
  // An organisation's encoded update, by account: counted once it is committed (its `masked` answer accepted).
  let sizes = new Map<string, number>();
  let committed = new Set<string>();
  const same = (round: number, attempt?: number) =>
    open !== undefined && open.round === round && (attempt === undefined || open.attempt === attempt);
  const enter = (stage: string) => {
    if (open === undefined || open.stage === stage) return;
    open.stage = stage;
    open.answered = new Set();
    open.expected = 0;
  };
  return {
    /** A new attempt of a round opened (it starts at `advertise`). */
    attempt(round: number, attempt: number, cohort: number): void {
      open = { round, attempt, cohort, stage: 'advertise', started: now(), answered: new Set(), expected: 0 };
      sizes = new Map();
      committed = new Set();
    },
    phase(round: number, attempt: number, stage: string): void {
      if (same(round, attempt)) enter(stage);
    },
    /** The coordinator's `status(task)`: the open stage and who must still answer it. */
    status(s: { round: number; attempt: number; phase: string; expecting: readonly string[] }): void {
      if (!same(s.round, s.attempt)) return;
      enter(s.phase);
      open!.expected = Math.max(open!.expected, open!.answered.size + s.expecting.length);
    },
    submitted(who: string, round: number, stage: string): void {
      if (!same(round)) return;
      if (open!.stage === stage) open!.answered.add(who);
      if (stage === 'masked') committed.add(who);
    },
    /** An organisation encoded its update for the round (one per attempt: the last one counts). */
    update(who: string, round: number, size: number): void {
      if (same(round)) sizes.set(who, size);
    },
    /** The round finished or was aborted: no live line until the next attempt opens. */
    close(): void {
      open = undefined;
    },
    progress(): RoundProgress | undefined {
      if (open === undefined) return undefined;
      let total = 0;
      for (const who of committed) total += sizes.get(who) ?? 0;
      return {
        round: open.round,
        attempt: open.attempt,
        cohort: open.cohort,
        stage: open.stage,
        answered: open.answered.size,
        expected: Math.max(open.expected, open.answered.size),
        bytes: total,
        seconds: (now() - open.started) / 1000,
      };
    },
  };
}
