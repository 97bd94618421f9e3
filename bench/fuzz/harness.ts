/**
 * The fuzz harness (issue 18 §2): every edge of AI-LINK gets generated bad input — malformed, truncated, oversized,
 * replayed, unsigned, wrongly signed, out-of-order, duplicated — built from one valid input, and each must be refused
 * with a registered error code while the process survives and the stored state does not change.
 *
 * Pure core: an `Edge` names its inputs (a fast-check arbitrary), how one is applied (`apply` returns normally when
 * accepted, throws when refused) and a digest of what it stores. `fuzzEdge` samples the inputs with a fixed seed,
 * applies each, and counts what broke a rule; `runFuzz` does it for many edges.
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { AilinkError, isErrorCode } from '../../src/shared/errors.ts';

export const VARIANTS = [
  'malformed',
  'truncated',
  'oversized',
  'replayed',
  'unsigned',
  'wrongly-signed',
  'out-of-order',
  'duplicated',
  'wrong-caller',
] as const;
export type Variant = (typeof VARIANTS)[number];

/** One generated input. */
export interface FuzzCase<I> {
  readonly variant: Variant;
  /** A short description for the failure list (which field, which mutation). */
  readonly label: string;
  readonly input: I;
  /**
   * True when the input is invalid by construction and must be refused. False for noise (random bytes, random
   * arguments) that may by chance be valid: its acceptance is counted apart, never as a failure, and the edge
   * restores its state afterwards.
   */
  readonly mustRefuse: boolean;
}

export interface Edge<I> {
  readonly name: string;
  /** The bad inputs (asked for after `setup`); each is applied to the state `setup` built. */
  cases(): fc.Arbitrary<FuzzCase<I>>;
  /** Builds the valid state (files, a protocol state built by valid calls); run once before any input. */
  setup?(): Promise<void>;
  /** Puts the input where the edge reads it (a file on disk); not part of what the digest guards. */
  stage?(input: I): Promise<void>;
  /** Applies one input: returns when accepted, throws when refused. */
  apply(input: I): Promise<void>;
  /** A digest of everything the edge stores. */
  digest(): Promise<string>;
  /** After an input that was accepted by chance (`mustRefuse` false): put the state back as `setup` left it. */
  restore?(): Promise<void>;
  /** The valid input the cases were built from (asked for after `setup`): it must be accepted, or the edge tests nothing. */
  valid?(): I;
  teardown?(): Promise<void>;
}

export interface Failure {
  readonly edge: string;
  readonly variant: Variant;
  readonly label: string;
  readonly kind: 'crash' | 'unregistered_code' | 'accepted_invalid' | 'state_changed' | 'valid_refused';
  readonly detail: string;
}

/** The smallest failing input of an edge, after shrinking. */
export interface Smallest {
  readonly edge: string;
  readonly variant: Variant;
  readonly label: string;
  readonly kind: Failure['kind'];
  readonly detail: string;
  /** How many smaller inputs fast-check found on the way (0: the first failure was already the smallest). */
  readonly shrinks: number;
}

export interface EdgeReport {
  readonly edge: string;
  readonly inputs: number;
  readonly refused: number;
  /** Noise inputs accepted because they happened to be valid (not a failure). */
  readonly accepted_noise: number;
  readonly crashes: number;
  readonly unregistered: number;
  readonly accepted_invalid: number;
  readonly state_changed: number;
  /** Refusals by code. */
  readonly codes: Readonly<Record<string, number>>;
  readonly variants: Readonly<Partial<Record<Variant, number>>>;
  readonly ms: number;
  /** When a rule was broken: the smallest input that still breaks one. */
  readonly smallest?: Smallest;
}

export interface FuzzReport {
  readonly edges: number;
  readonly inputs: number;
  readonly crashes: number;
  readonly unregistered: number;
  readonly accepted_invalid: number;
  readonly state_changed: number;
  readonly seed: number;
  readonly runs: number;
  readonly per_edge: readonly EdgeReport[];
  readonly failures: readonly Failure[];
}

export interface FuzzOptions {
  /** Inputs per edge. */
  readonly runs: number;
  readonly seed: number;
  /** Called after each edge (progress). */
  readonly onEdge?: (report: EdgeReport) => void;
  /** Shrink an edge's failures to the smallest failing input (default true). */
  readonly shrink?: boolean;
  /** The longest an edge's shrinking may take (default 60 s). */
  readonly shrinkTimeLimitMs?: number;
}

/** A per-edge seed, so that adding an edge does not change the inputs of the others. */
export function edgeSeed(seed: number, edge: string): number {
  return createHash('sha256').update(`${seed}/${edge}`).digest().readInt32LE(0);
}

/**
 * A refusal an edge read off the wire (an HTTP answer): its code, and whether that code is in the edge's registry
 * (ERROR_CODES, or the S3 codes the gateway maps them to). A 5xx is not a refusal: throw a plain Error for it.
 */
export class WireRefusal extends Error {
  override readonly name = 'WireRefusal';
  constructor(
    readonly code: string,
    readonly registered: boolean,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Sends `input` to a JSON API and judges its answer as `judgeJsonAnswer` does. A HEAD answer carries no body, so no
 * code: a refused HEAD is judged by the same request as GET, which must be refused with the same status (only a
 * catch-all takes HEAD on these APIs, so only for paths its GET takes too).
 */
export async function judgeJsonRequest<I extends { readonly method: string; readonly path: string }>(
  send: (input: I) => Promise<Response>,
  input: I,
  field: 'code' | 'error',
): Promise<void> {
  const answer = await send(input);
  if (input.method === 'HEAD' && answer.status >= 400 && answer.status < 500) {
    const get = await send({ ...input, method: 'GET' });
    if (get.status !== answer.status)
      throw new Error(`HEAD ${input.path} answered ${answer.status}, the same GET ${get.status}`);
    return judgeJsonAnswer(get, field);
  }
  return judgeJsonAnswer(answer, field);
}

/**
 * Judges an HTTP answer of a JSON API: returns when it is not a refusal (< 400); a 5xx is a crash; a 4xx is a refusal
 * whose code is the answer's `field` (`code`, or DeOSS's `error`), counted only when registered.
 */
export async function judgeJsonAnswer(answer: Response, field: 'code' | 'error'): Promise<void> {
  const text = await answer.text();
  if (answer.status < 400) return;
  let code: string | undefined;
  try {
    const value = (JSON.parse(text) as Record<string, unknown>)[field];
    if (typeof value === 'string') code = value;
  } catch {}
  if (answer.status >= 500) throw new Error(`${answer.status} ${code ?? ''}: ${text.slice(0, 200)}`);
  throw new WireRefusal(
    code ?? `HTTP ${answer.status}`,
    code !== undefined && isErrorCode(code),
    text.slice(0, 200),
  );
}

type Outcome =
  | { readonly kind: 'accepted' }
  | { readonly kind: 'refused'; readonly code: string }
  | { readonly kind: 'crash'; readonly detail: string };

/** A refusal counts only as an AilinkError (or a wire answer) whose code is registered. */
async function outcomeOf(run: () => Promise<void>): Promise<Outcome> {
  try {
    await run();
    return { kind: 'accepted' };
  } catch (err) {
    const code = (err as { code?: unknown } | null)?.code;
    if (err instanceof AilinkError && isErrorCode(code)) return { kind: 'refused', code };
    if (err instanceof WireRefusal && err.registered) return { kind: 'refused', code: err.code };
    const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    return {
      kind: 'crash',
      detail: `${typeof code === 'string' ? `code ${code}, ` : ''}${message}`.slice(0, 300),
    };
  }
}

/** What became of one input: its outcome, and the rules it broke (none when it was refused cleanly or was noise). */
async function judgeCase<I>(
  edge: Edge<I>,
  c: FuzzCase<I>,
  escaped: string[],
): Promise<{ outcome: Outcome; failures: { kind: Failure['kind']; detail: string }[] }> {
  const failures: { kind: Failure['kind']; detail: string }[] = [];
  await edge.stage?.(c.input);
  const before = await edge.digest();
  const outcome = await outcomeOf(() => edge.apply(c.input));
  // Let a stray callback of the input run before judging it.
  await new Promise((r) => setImmediate(r));
  const after = await edge.digest();
  if (escaped.length > 0)
    failures.push({ kind: 'crash', detail: `escaped: ${escaped.splice(0).join('; ')}` });
  if (outcome.kind === 'crash') {
    const unregistered = /^code /.test(outcome.detail);
    failures.push({ kind: unregistered ? 'unregistered_code' : 'crash', detail: outcome.detail });
  } else if (outcome.kind === 'refused') {
    if (before !== after) {
      failures.push({
        kind: 'state_changed',
        detail: `refused with ${outcome.code}, but the stored state changed${process.env.FUZZ_DEBUG ? ` ${before} → ${after}` : ''}`,
      });
      await edge.restore?.();
    }
  } else if (c.mustRefuse) {
    failures.push({ kind: 'accepted_invalid', detail: 'accepted' });
    await edge.restore?.();
  } else if (before !== after) await edge.restore?.();
  return { outcome, failures };
}

/**
 * The smallest input that still breaks a rule, found by fast-check's shrinking: the edge's inputs are drawn again
 * with the same seed until one fails, then made smaller (a shorter cut, fewer random bytes, another branch of the
 * cases) as long as a rule stays broken. Undefined when no failure comes back (a failure that does not repeat).
 */
async function shrinkEdge<I>(
  edge: Edge<I>,
  options: FuzzOptions,
  escaped: string[],
): Promise<Smallest | undefined> {
  let last: Smallest | undefined;
  const result = await fc.check(
    fc.asyncProperty(edge.cases(), async (c) => {
      const { failures } = await judgeCase(edge, c, escaped);
      if (failures.length === 0) return true;
      last = { edge: edge.name, variant: c.variant, label: c.label, ...failures[0]!, shrinks: 0 };
      return false;
    }),
    {
      seed: edgeSeed(options.seed, edge.name),
      numRuns: options.runs,
      // A failing input is applied again at each step: a bound keeps a slow edge's shrinking short.
      interruptAfterTimeLimit: options.shrinkTimeLimitMs ?? 60_000,
    },
  );
  if (!result.failed || result.counterexample === null || last === undefined) return undefined;
  // `last` was set by the last failing run, which is the counterexample fast-check settled on.
  const [c] = result.counterexample;
  return { ...last, variant: c.variant, label: c.label, shrinks: result.numShrinks };
}

/** Applies `runs` inputs of one edge and reports what broke a rule. Never throws for a bad outcome. */
export async function fuzzEdge<I>(
  edge: Edge<I>,
  options: FuzzOptions,
): Promise<{ report: EdgeReport; failures: Failure[]; smallest?: Smallest }> {
  const started = performance.now();
  const failures: Failure[] = [];
  const codes: Record<string, number> = {};
  const variants: Partial<Record<Variant, number>> = {};
  let refused = 0;
  let acceptedNoise = 0;
  let crashes = 0;
  let unregistered = 0;
  let acceptedInvalid = 0;
  let stateChanged = 0;
  let smallest: Smallest | undefined;
  const fail = (c: { variant: Variant; label: string }, kind: Failure['kind'], detail: string) =>
    failures.push({ edge: edge.name, variant: c.variant, label: c.label, kind, detail });

  // An exception escaping an input's own promise chain would end a real process: count it as a crash.
  const escaped: string[] = [];
  const onEscape = (err: unknown) => escaped.push(err instanceof Error ? err.message : String(err));
  process.on('uncaughtException', onEscape);
  process.on('unhandledRejection', onEscape);
  try {
    await edge.setup?.();
    const valid = edge.valid?.();
    if (valid !== undefined) {
      const ok = { variant: 'malformed' as const, label: 'the valid seed input' };
      await edge.stage?.(valid);
      const outcome = await outcomeOf(() => edge.apply(valid));
      if (outcome.kind !== 'accepted') fail(ok, 'valid_refused', JSON.stringify(outcome));
      await edge.restore?.();
    }
    const cases = fc.sample(edge.cases(), { seed: edgeSeed(options.seed, edge.name), numRuns: options.runs });
    for (const c of cases) {
      variants[c.variant] = (variants[c.variant] ?? 0) + 1;
      const judged = await judgeCase(edge, c, escaped);
      for (const f of judged.failures) {
        fail(c, f.kind, f.detail);
        if (f.kind === 'crash') crashes++;
        else if (f.kind === 'unregistered_code') unregistered++;
        else if (f.kind === 'state_changed') stateChanged++;
        else if (f.kind === 'accepted_invalid') acceptedInvalid++;
      }
      if (judged.outcome.kind === 'refused') {
        refused++;
        codes[judged.outcome.code] = (codes[judged.outcome.code] ?? 0) + 1;
      } else if (judged.outcome.kind === 'accepted' && !c.mustRefuse) acceptedNoise++;
    }
    if (failures.length > 0 && options.shrink !== false) smallest = await shrinkEdge(edge, options, escaped);
  } finally {
    process.off('uncaughtException', onEscape);
    process.off('unhandledRejection', onEscape);
    await edge.teardown?.();
  }
  const inputs = Object.values(variants).reduce((a, n) => a + n, 0);
  const report: EdgeReport = {
    edge: edge.name,
    inputs,
    refused,
    accepted_noise: acceptedNoise,
    crashes,
    unregistered,
    accepted_invalid: acceptedInvalid,
    state_changed: stateChanged,
    codes,
    variants,
    ms: Math.round(performance.now() - started),
    ...(smallest === undefined ? {} : { smallest }),
  };
  return { report, failures, ...(smallest === undefined ? {} : { smallest }) };
}

/** Runs every edge in turn (their state is their own; one at a time keeps the digests honest). */
export async function runFuzz(edges: readonly Edge<never>[], options: FuzzOptions): Promise<FuzzReport> {
  const perEdge: EdgeReport[] = [];
  const failures: Failure[] = [];
  for (const edge of edges) {
    const r = await fuzzEdge(edge as Edge<unknown>, options);
    perEdge.push(r.report);
    failures.push(...r.failures);
    options.onEdge?.(r.report);
  }
  const sum = (k: 'inputs' | 'crashes' | 'unregistered' | 'accepted_invalid' | 'state_changed') =>
    perEdge.reduce((a, r) => a + r[k], 0);
  return {
    edges: perEdge.length,
    inputs: sum('inputs'),
    crashes: sum('crashes'),
    unregistered: sum('unregistered'),
    accepted_invalid: sum('accepted_invalid'),
    state_changed: sum('state_changed'),
    seed: options.seed,
    runs: options.runs,
    per_edge: perEdge,
    failures,
  };
}

/** The per-edge table the runner prints. */
export function formatTable(report: FuzzReport): string {
  const header = [
    'edge',
    'inputs',
    'refused',
    'noise ok',
    'crashes',
    'unreg.',
    'acc. invalid',
    'changed',
    'ms',
  ];
  const rows = report.per_edge.map((r) => [
    r.edge,
    r.inputs,
    r.refused,
    r.accepted_noise,
    r.crashes,
    r.unregistered,
    r.accepted_invalid,
    r.state_changed,
    r.ms,
  ]);
  rows.push([
    'total',
    report.inputs,
    rows.reduce((a, r) => a + (r[2] as number), 0),
    rows.reduce((a, r) => a + (r[3] as number), 0),
    report.crashes,
    report.unregistered,
    report.accepted_invalid,
    report.state_changed,
    rows.reduce((a, r) => a + (r[8] as number), 0),
  ]);
  const cells = [header, ...rows].map((r) => r.map(String));
  const widths = header.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    `| ${r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  return [
    line(cells[0]!),
    `|${widths.map((w, i) => (i === 0 ? `${'-'.repeat(w + 1)}-` : `${'-'.repeat(w + 1)}:`)).join('|')}|`,
    ...cells.slice(1).map(line),
  ].join('\n');
}

/** The one JSON line: totals and the same per edge. */
export function jsonLine(report: FuzzReport): string {
  return JSON.stringify({
    bench: 'fuzz',
    edges: report.edges,
    inputs: report.inputs,
    crashes: report.crashes,
    unregistered: report.unregistered,
    accepted_invalid: report.accepted_invalid,
    state_changed: report.state_changed,
    seed: report.seed,
    runs: report.runs,
    per_edge: Object.fromEntries(
      report.per_edge.map((r) => [
        r.edge,
        {
          inputs: r.inputs,
          crashes: r.crashes,
          unregistered: r.unregistered,
          accepted_invalid: r.accepted_invalid,
          state_changed: r.state_changed,
          codes: r.codes,
          ...(r.smallest === undefined
            ? {}
            : { smallest: { variant: r.smallest.variant, label: r.smallest.label, kind: r.smallest.kind } }),
        },
      ]),
    ),
  });
}
