import { AilinkError } from '../shared/errors.ts';
import type { AuditFinding, AuditReport, AuditRound } from './types.ts';

/**
 * The model card: an audit report rendered for a person who files it (Markdown, or one self-contained HTML page) or
 * for a program (JSON). Pure: a report in, text out, no clock and no I/O, so the same report always gives the same
 * bytes. Every string in a report can come from a stored object anyone could have crafted (a task id, a spec, an
 * error message quoting a manifest), so each one is escaped for the format it lands in; numbers are formatted here.
 * Markdown and HTML are built from one outline (`outline`), so the two cards cannot drift apart.
 */

export const REPORT_FORMATS = ['html', 'md', 'json'] as const;
export type ReportFormat = (typeof REPORT_FORMATS)[number];

/**
 * Renders an audit report as a model card.
 * @param format `json`: the report itself (pretty, newline-terminated); `md`: a Markdown card; `html`: a
 *   self-contained page (inline CSS and SVG, no scripts, no external assets) that can be filed or printed as it is.
 * @throws INVALID_INPUT when `format` is none of REPORT_FORMATS (a caller that skipped validation)
 */
export function renderReport(report: AuditReport, format: ReportFormat): string {
  switch (format) {
    case 'json':
      return `${JSON.stringify(report, null, 2)}\n`;
    case 'md':
      return markdownCard(outline(report));
    case 'html':
      return htmlCard(outline(report), report);
    default: {
      const unknown: never = format;
      throw new AilinkError(
        'INVALID_INPUT',
        `expected a report format of ${REPORT_FORMATS.join(', ')}, got ${JSON.stringify(unknown)}`,
      );
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The outline: what the card says, independent of the format.

/** A table cell: its text, the full value behind a shortened one (HTML shows it on hover), and a tone for styling. */
type Cell = string | { readonly text: string; readonly full?: string; readonly tone?: 'ok' | 'bad' | 'bar' };

interface Table {
  readonly head: readonly string[];
  readonly rows: readonly (readonly Cell[])[];
  /** Columns to right-align (numbers). */
  readonly numeric?: readonly number[];
}

interface FindingGroup {
  /** `task` or `round N`. */
  readonly label: string;
  readonly round: number | null;
  readonly findings: readonly AuditFinding[];
}

interface Outline {
  readonly title: string;
  readonly subtitle: string;
  readonly ok: boolean;
  readonly findingCount: number;
  /** Without its mark: Markdown leads with ✅/❌, HTML with ✓/✗ (in every text font, so printouts show them). */
  readonly verdict: string;
  readonly groups: readonly FindingGroup[];
  readonly facts: Table;
  /** null when the spec could not be read (the verdict says why). */
  readonly settings: Table | null;
  readonly participants: Table | null;
  readonly privacy: { readonly table: Table; readonly total: string } | { readonly none: string };
  readonly lineage: Table;
  readonly curve: Table;
}

const NONE = '—';

function outline(report: AuditReport): Outline {
  const groups = findingGroups(report);
  const findingCount = groups.reduce((n, g) => n + g.findings.length, 0);
  const ok = report.ok && findingCount === 0;
  const name = typeof report.spec?.name === 'string' ? report.spec.name : null;
  return {
    title: `Model card — task ${report.task}`,
    subtitle: `${name === null ? '' : `${name} · `}AI-LINK lineage audit of the chain state at block ${report.atBlock}`,
    ok,
    findingCount,
    verdict: ok
      ? `verified — ${plural(report.rounds.length, 'round')} checked against the chain at block ${report.atBlock}, no finding`
      : findingCount === 0
        ? 'not verified'
        : plural(findingCount, 'finding'),
    groups,
    facts: facts(report),
    settings: report.spec === null ? null : settings(report.spec),
    participants: participants(report),
    privacy: privacy(report),
    lineage: lineage(report.rounds),
    curve: curve(report.rounds),
  };
}

/** Task-level findings first, then each round's, in round order: a finding is always shown under its round. */
function findingGroups(report: AuditReport): FindingGroup[] {
  const byRound = new Map<number, AuditFinding[]>();
  const task: AuditFinding[] = [];
  const add = (f: AuditFinding) => {
    if (f.round === null) task.push(f);
    else byRound.set(f.round, [...(byRound.get(f.round) ?? []), f]);
  };
  // Task-level findings may name a round (a missing one): they go with that round.
  for (const f of report.findings) add(f);
  for (const r of report.rounds) for (const f of r.findings) add(f);
  const groups: FindingGroup[] = [];
  if (task.length > 0) groups.push({ label: 'task', round: null, findings: task });
  for (const round of [...byRound.keys()].sort((a, b) => a - b))
    groups.push({ label: `round ${round}`, round, findings: byRound.get(round)! });
  return groups;
}

function facts(report: AuditReport): Table {
  const { chain, code } = report;
  const last = report.rounds.at(-1);
  const rows: Cell[][] = [
    ['Task', report.task],
    ['Coordinator', chain?.coordinator ?? 'not on chain'],
    ['Spec digest', chain?.specDigest ?? NONE],
    ['Created at', chain === null ? NONE : `block ${chain.createdAt}`],
    ['Rounds anchored', chain === null ? NONE : String(chain.rounds)],
    ...(chain?.stoppedAt == null
      ? []
      : [
          [
            'Stopped',
            `block ${chain.stoppedAt}${chain.stopReason == null ? '' : `: ${chain.stopReason}`}`,
          ] as Cell[],
        ]),
    ['Rounds audited', String(report.rounds.length)],
    ['Audited at', `block ${report.atBlock}`],
    ['Code', code === null ? NONE : `${code.package} ${code.version}`],
    ['Lockfile (SHA-256)', code?.lockfile ?? NONE],
  ];
  if (last?.model)
    rows.push(
      [`Latest model (round ${last.round})`, `${last.model.name} · fid ${last.model.fid}`],
      ['Latest model hash', last.model.hash],
    );
  if (report.evidence != null)
    rows.push(
      ['Evidence bundle (SHA-256)', report.evidence.digest],
      [
        'Evidence chain tip',
        `block ${report.evidence.tip.number} ${report.evidence.tip.hash} — check offline: \`ailink audit verify --bundle FILE --expect-tip ${report.evidence.tip.hash}\``,
      ],
    );
  return { head: ['Fact', 'Value'], rows };
}

/** Labels and order for the settings a task spec usually has; any other key follows under its own name. */
const SETTING_LABELS: Readonly<Record<string, string>> = {
  name: 'Name',
  model: 'Model',
  data: 'Data schema',
  dataset: 'Dataset',
  training: 'Loss, optimizer, metrics',
  strategy: 'Strategy',
  local: 'Local training',
  rounds: 'Rounds',
  cohort: 'Cohort',
  secagg: 'Secure aggregation',
  dp: 'Differential privacy',
  deadlines: 'Stage deadlines (ms)',
  admitted: 'Admission list',
  coordinator: 'Coordinator keys',
  version: 'Spec version',
};

/** The spec is free-form here (it is rendered, not interpreted): every key is shown, known ones first. */
function settings(spec: Record<string, unknown>): Table {
  const known = Object.keys(SETTING_LABELS).filter((k) => Object.hasOwn(spec, k));
  const other = Object.keys(spec)
    .filter((k) => !Object.hasOwn(SETTING_LABELS, k))
    .sort();
  const rows = [...known, ...other].map((key): Cell[] => {
    const value = spec[key];
    const text = key === 'dp' && value === null ? 'none (no noise is added)' : describe(value, 0);
    return [SETTING_LABELS[key] ?? key, text];
  });
  return { head: ['Setting', 'Value'], rows };
}

/** Deep enough for any spec; a deeper (crafted) value is cut rather than rendered without end. */
const MAX_DEPTH = 4;

function describe(value: unknown, depth: number): string {
  if (value === null || value === undefined) return 'none';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  if (depth >= MAX_DEPTH) return '…';
  if (Array.isArray(value))
    return value.length === 0 ? '(none)' : value.map((v) => nested(v, depth + 1)).join(', ');
  if (typeof value === 'object')
    return Object.entries(value)
      .map(([k, v]) => `${k}: ${nested(v, depth + 1)}`)
      .join(' · ');
  return String(value);
}

const nested = (v: unknown, depth: number) =>
  v !== null && typeof v === 'object' && !Array.isArray(v)
    ? `{ ${describe(v, depth)} }`
    : Array.isArray(v)
      ? `[${describe(v, depth)}]`
      : describe(v, depth);

/** Everyone admitted on chain, then anyone the rounds name who was not (the audit reports them as NOT_ADMITTED). */
function participants(report: AuditReport): Table | null {
  const admitted = new Map((report.chain?.admitted ?? []).map((p) => [p.account, p]));
  const accounts = [...admitted.keys()];
  for (const r of report.rounds)
    for (const a of [...r.cohort, ...r.survivors, ...r.dropouts.map((d) => d.account)])
      if (!accounts.includes(a)) accounts.push(a);
  if (accounts.length === 0) return null;
  const rows = accounts.map((account): Cell[] => {
    const p = admitted.get(account);
    const participated = report.rounds.filter((r) => r.survivors.includes(account)).length;
    const dropped = report.rounds.filter((r) => r.dropouts.some((d) => d.account === account)).length;
    return [
      account,
      p === undefined ? NONE : { text: short(p.identityKey), full: p.identityKey },
      p === undefined ? { text: 'not admitted', tone: 'bad' } : `block ${p.admittedAt}`,
      String(participated),
      String(dropped),
    ];
  });
  return {
    head: ['Account', 'Identity key', 'Admitted at', 'Rounds participated', 'Rounds dropped'],
    rows,
    numeric: [3, 4],
  };
}

/**
 * ε as the manifests record it is what the task has spent so far (the accountant composes rounds; ε does not add up
 * linearly), so a round's own share is the step from the previous figure and the total is the latest figure.
 */
function privacy(report: AuditReport): Outline['privacy'] {
  const noisy = report.rounds.filter((r) => r.privacy !== null && r.privacy.mechanism !== 'none');
  const spent = noisy.filter((r) => isNumber(r.privacy?.epsilonSpent));
  if (noisy.length === 0 || spent.length === 0) {
    const mechanisms = [...new Set(report.rounds.map((r) => r.privacy?.mechanism ?? 'unknown'))];
    return {
      none:
        noisy.length === 0
          ? `No differential privacy (mechanism ${mechanisms.length === 0 ? 'none' : mechanisms.join(', ')}): no noise was added to the aggregates, so no ε is spent.`
          : `Differential privacy (${noisy[0]!.privacy!.mechanism}) without a recorded ε: the privacy budget spent cannot be stated.`,
    };
  }
  let previous = 0;
  const rows = report.rounds.map((r): Cell[] => {
    const p = r.privacy;
    const eps = p?.epsilonSpent;
    const cells: Cell[] = [
      String(r.round),
      p?.mechanism ?? 'unknown',
      isNumber(eps) ? epsilon(eps - previous) : NONE,
      isNumber(eps) ? epsilon(eps) : NONE,
      isNumber(p?.delta) ? String(p.delta) : NONE,
    ];
    if (isNumber(eps)) previous = eps;
    return cells;
  });
  const total = spent.at(-1)!.privacy!.epsilonSpent!;
  const budget = epsilonBudget(report.spec);
  return {
    table: {
      head: ['Round', 'Mechanism', 'ε this round', 'ε spent so far', 'δ'],
      rows,
      numeric: [0, 2, 3, 4],
    },
    total: `ε spent in total: ${epsilon(total)}${budget === null ? '' : ` of a budget of ${epsilon(budget)}`} (after round ${spent.at(-1)!.round}).`,
  };
}

/** Read defensively: the spec is a free-form record in the report. */
function epsilonBudget(spec: Record<string, unknown> | null): number | null {
  const dp = spec?.dp;
  if (dp === null || typeof dp !== 'object') return null;
  const budget = (dp as Record<string, unknown>).epsilonBudget;
  return isNumber(budget) ? budget : null;
}

/**
 * Each round's model scored, by whatever measured it: the coordinator's own test set when it has one, else the
 * organisations' held-out rows — which score a model in the round after it (as that round's start model), or, for
 * the last model, in the closing evaluation round (whose model is that same model).
 */
export function modelScores(rounds: readonly AuditRound[]): ({ accuracy: number; loss: number } | null)[] {
  return rounds.map((r, i) => {
    if (isNumber(r.metrics?.accuracy) && isNumber(r.metrics?.loss))
      return { accuracy: r.metrics.accuracy, loss: r.metrics.loss };
    const scoredBy = r.kind === 'evaluation' ? r : rounds[i + 1];
    return scoredBy?.evaluation
      ? { accuracy: scoredBy.evaluation.accuracy, loss: scoredBy.evaluation.loss }
      : null;
  });
}

function lineage(rounds: readonly AuditRound[]): Table {
  const scores = modelScores(rounds);
  const rows = rounds.map((r, i): Cell[] => [
    String(r.round),
    { text: short(r.manifest.fid), full: r.manifest.fid },
    { text: short(r.manifest.digest), full: r.manifest.digest },
    r.parent === null
      ? 'none'
      : { text: short(r.parent.fid), full: `${r.parent.fid} (digest ${r.parent.digest})` },
    r.model === null
      ? 'unreadable'
      : { text: short(r.model.hash), full: `${r.model.hash} (fid ${r.model.fid})` },
    `${r.survivors.length}/${r.cohort.length}`,
    r.dropouts.length === 0
      ? 'none'
      : {
          text: r.dropouts.map((d) => `${short(d.account)} (${d.stage})`).join(', '),
          full: r.dropouts.map((d) => `${d.account} (${d.stage})`).join(', '),
        },
    percent(scores[i]?.accuracy),
    decimal(scores[i]?.loss),
    isNumber(r.privacy?.epsilonSpent) ? epsilon(r.privacy.epsilonSpent) : NONE,
    // A round that verifies may still carry storage notes (breaksLineage): counted beside its tick.
    r.ok
      ? { text: r.findings.length === 0 ? '✓' : `✓ ${plural(r.findings.length, 'storage note')}`, tone: 'ok' }
      : { text: `✗ ${plural(r.findings.length, 'finding')}`, tone: 'bad' },
  ]);
  return {
    head: [
      'Round',
      'Manifest',
      'Digest',
      'Parent',
      'Model hash',
      'Survivors/cohort',
      'Dropouts (stage)',
      'Accuracy',
      'Loss',
      'ε',
      'Verified',
    ],
    rows,
    numeric: [0, 5, 7, 8, 9],
  };
}

const BAR_WIDTH = 20;

function curve(rounds: readonly AuditRound[]): Table {
  const scores = modelScores(rounds);
  const rows = rounds.map((r, i): Cell[] => {
    const accuracy = scores[i]?.accuracy;
    const filled = isNumber(accuracy) ? Math.round(Math.min(1, Math.max(0, accuracy)) * BAR_WIDTH) : 0;
    return [
      String(r.round),
      percent(accuracy),
      decimal(scores[i]?.loss),
      isNumber(accuracy) ? { text: '█'.repeat(filled) + '░'.repeat(BAR_WIDTH - filled), tone: 'bar' } : NONE,
    ];
  });
  return { head: ['Round', 'Accuracy', 'Loss', 'Accuracy (0–100 %)'], rows, numeric: [0, 1, 2] };
}

// ---------------------------------------------------------------------------------------------------------------
// Formatting.

const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
/** Long ids as the audit's own messages shorten them (8 characters and an ellipsis); the full value stays near. */
const short = (s: string) => (s.length <= 12 ? s : `${s.slice(0, 8)}…`);
const percent = (v: number | undefined) => (isNumber(v) ? `${(v * 100).toFixed(2)} %` : NONE);
const decimal = (v: number | undefined) => (isNumber(v) ? v.toFixed(4) : NONE);
const epsilon = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(1) : v.toPrecision(4));
const cellText = (c: Cell) => (typeof c === 'string' ? c : c.text);

// ---------------------------------------------------------------------------------------------------------------
// Markdown.

/**
 * Escapes text for Markdown inline content: characters that start emphasis, code, links, tables or raw HTML are
 * backslash-escaped or turned into entities (a crafted `<script>` must not reach a renderer that passes HTML
 * through), and line breaks are folded so nothing can start a block of its own.
 */
export function escapeMarkdown(text: string): string {
  return text
    .replace(/[\r\n\u2028\u2029]+/g, ' ')
    .replace(/[\\`*_~[\]|]/g, (c) => `\\${c}`)
    .replace(/[&<>]/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : '&gt;'));
}

/** A code span whose fence is longer than any backtick run inside, so the text cannot close it. */
function codeSpan(text: string): string {
  const flat = text.replace(/[\r\n]+/g, ' ');
  const longest = Math.max(0, ...(flat.match(/`+/g) ?? []).map((run) => run.length));
  const fence = '`'.repeat(longest + 1);
  const pad = flat.startsWith('`') || flat.endsWith('`') ? ' ' : '';
  return `${fence}${pad}${flat}${pad}${fence}`;
}

function mdTable(t: Table): string {
  const align = t.head.map((_, i) => (t.numeric?.includes(i) ? '---:' : '---'));
  const line = (cells: readonly string[]) => `| ${cells.join(' | ')} |`;
  return [
    line(t.head.map(escapeMarkdown)),
    line(align),
    ...t.rows.map((row) => line(row.map((c) => escapeMarkdown(cellText(c))))),
  ].join('\n');
}

const mdFinding = (f: AuditFinding) =>
  `- ${codeSpan(f.code)} — ${escapeMarkdown(f.where)} — ${escapeMarkdown(f.message)}`;

function markdownCard(o: Outline): string {
  const out: string[] = [`# ${escapeMarkdown(o.title)}`, '', `_${escapeMarkdown(o.subtitle)}_`, ''];
  out.push('## Verification', '', `**${o.ok ? '✅' : '❌'} ${escapeMarkdown(o.verdict)}**`, '');
  for (const g of o.groups) {
    out.push(`### Findings: ${escapeMarkdown(g.label)}`, '', ...g.findings.map(mdFinding), '');
  }
  out.push('## Task', '', mdTable(o.facts), '');
  out.push(
    '## Settings',
    '',
    o.settings === null ? 'The task spec could not be read.' : mdTable(o.settings),
    '',
  );
  out.push(
    '## Participants',
    '',
    o.participants === null ? 'No participants are recorded.' : mdTable(o.participants),
    '',
  );
  out.push('## Privacy budget', '');
  if ('none' in o.privacy) out.push(escapeMarkdown(o.privacy.none), '');
  else out.push(mdTable(o.privacy.table), '', escapeMarkdown(o.privacy.total), '');
  out.push('## Lineage', '', o.lineage.rows.length === 0 ? 'No round is anchored.' : mdTable(o.lineage), '');
  out.push('## Accuracy', '', o.curve.rows.length === 0 ? 'No round is anchored.' : mdTable(o.curve), '');
  return `${out.join('\n').trimEnd()}\n`;
}

// ---------------------------------------------------------------------------------------------------------------
// HTML.

/** Escapes text for HTML element content and quoted attribute values alike. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML_ENTITIES[c]!);
}

const HTML_ENTITIES: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

function htmlCell(c: Cell, tag: 'td' | 'th', numeric: boolean): string {
  const classes = [numeric ? 'num' : '', typeof c === 'string' ? '' : (c.tone ?? '')].filter(Boolean);
  const cls = classes.length === 0 ? '' : ` class="${classes.join(' ')}"`;
  if (typeof c === 'string') return `<${tag}${cls}>${escapeHtml(c)}</${tag}>`;
  const title = c.full === undefined ? '' : ` title="${escapeHtml(c.full)}"`;
  return `<${tag}${cls}${title}>${escapeHtml(c.text)}</${tag}>`;
}

function htmlTable(
  t: Table,
  options: { className?: string; rowAttributes?: (i: number) => string; after?: (i: number) => string } = {},
): string {
  const cls = options.className === undefined ? '' : ` class="${options.className}"`;
  const head = t.head.map((h, i) => htmlCell(h, 'th', t.numeric?.includes(i) ?? false)).join('');
  const body = t.rows
    .map((row, i) => {
      const cells = row.map((c, j) => htmlCell(c, 'td', t.numeric?.includes(j) ?? false)).join('');
      return `<tr${options.rowAttributes?.(i) ?? ''}>${cells}</tr>${options.after?.(i) ?? ''}`;
    })
    .join('\n');
  return `<div class="scroll"><table${cls}><thead><tr>${head}</tr></thead>\n<tbody>\n${body}\n</tbody></table></div>`;
}

const htmlFindings = (findings: readonly AuditFinding[]) =>
  `<ul class="findings">${findings
    .map(
      (f) =>
        `<li><code>${escapeHtml(f.code)}</code> — <span class="where">${escapeHtml(f.where)}</span> — ${escapeHtml(f.message)}</li>`,
    )
    .join('')}</ul>`;

const STYLE = `
:root { color-scheme: light; --ok: #1a7f37; --bad: #cf222e; --muted: #59636e; --line: #d1d9e0; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1120px; padding: 2rem 1.5rem 4rem; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328; background: #fff; }
h1 { font-size: 1.7rem; margin: 0 0 .2rem; overflow-wrap: anywhere; }
h2 { font-size: 1.2rem; margin: 2.2rem 0 .6rem; padding-bottom: .3rem; border-bottom: 1px solid var(--line); }
h3 { font-size: 1rem; margin: 1rem 0 .3rem; }
.subtitle { color: var(--muted); margin: 0 0 1.5rem; overflow-wrap: anywhere; }
.verdict { font-size: 1.15rem; font-weight: 600; padding: .8rem 1rem; border-radius: 6px; border: 1px solid; }
.verdict.ok { color: var(--ok); background: #dafbe1; border-color: #aceebb; }
.verdict.bad { color: var(--bad); background: #ffebe9; border-color: #ffcecb; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: .88rem; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; overflow-wrap: anywhere; }
th { background: #f6f8fa; font-weight: 600; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td[title] { text-decoration: underline dotted var(--muted); cursor: help; }
.ok { color: var(--ok); font-weight: 600; }
.bad { color: var(--bad); font-weight: 600; }
table.facts td:first-child { width: 14rem; color: var(--muted); }
table.facts td:last-child, table.lineage td { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .82rem; }
table.lineage td { white-space: nowrap; }
table.lineage tr.round-findings > td { white-space: normal; font-family: inherit; font-size: .85rem; }
tr.broken > td { background: #fff8f7; }
tr.round-findings > td { background: #fff8f7; padding-top: 0; }
ul.findings { margin: .3rem 0 .6rem; padding-left: 1.2rem; }
ul.findings li { margin: .2rem 0; overflow-wrap: anywhere; }
.where { color: var(--muted); }
code { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .85em; background: #f6f8fa; padding: .05rem .3rem; border-radius: 4px; }
figure { margin: 1rem 0; }
figure svg { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 6px; }
figcaption { color: var(--muted); font-size: .85rem; }
.bar { font-family: ui-monospace, monospace; letter-spacing: -1px; color: #1f6feb; }
footer { margin-top: 3rem; color: var(--muted); font-size: .8rem; }
@media print { body { padding: 0; max-width: none; } h2 { break-after: avoid; } tr { break-inside: avoid; } }
`;

function htmlCard(o: Outline, report: AuditReport): string {
  const section = (title: string, body: string) =>
    `<section>\n<h2>${escapeHtml(title)}</h2>\n${body}\n</section>`;
  const verdict = [
    `<p class="verdict ${o.ok ? 'ok' : 'bad'}">${o.ok ? '✓' : '✗'} ${escapeHtml(o.verdict)}</p>`,
    ...o.groups.map((g) => `<h3>Findings: ${escapeHtml(g.label)}</h3>\n${htmlFindings(g.findings)}`),
  ].join('\n');
  const rounds = report.rounds;
  const lineage =
    rounds.length === 0
      ? '<p>No round is anchored.</p>'
      : htmlTable(o.lineage, {
          className: 'lineage',
          rowAttributes: (i) => {
            const r = rounds[i]!;
            return ` class="round ${r.ok ? 'verified' : 'broken'}" data-round="${r.round}"`;
          },
          // A broken round's findings sit right under its row: that is where a reader looks for them.
          after: (i) => {
            const r = rounds[i]!;
            const pinned = o.groups.find((g) => g.round === r.round)?.findings ?? [];
            return pinned.length === 0
              ? ''
              : `\n<tr class="round-findings" data-round="${r.round}"><td colspan="${o.lineage.head.length}">${htmlFindings(pinned)}</td></tr>`;
          },
        });
  const privacy =
    'none' in o.privacy
      ? `<p>${escapeHtml(o.privacy.none)}</p>`
      : `${htmlTable(o.privacy.table)}\n<p>${escapeHtml(o.privacy.total)}</p>`;
  const curveTable = htmlTable(o.curve);
  const chart = `<figure>\n${accuracyChartSvg(chartPointsOf(rounds))}\n<figcaption>Accuracy (left axis) and loss (right axis) of the global model after each round, on the coordinator's held-out test data, as recorded in the round manifests.</figcaption>\n</figure>`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>${escapeHtml(o.title)}</title>
<style>${STYLE}</style>
</head>
<body>
<header>
<h1>${escapeHtml(o.title)}</h1>
<p class="subtitle">${escapeHtml(o.subtitle)}</p>
</header>
${section('Verification', verdict)}
${section('Task', htmlTable(o.facts, { className: 'facts' }))}
${section('Settings', o.settings === null ? '<p>The task spec could not be read.</p>' : htmlTable(o.settings, { className: 'facts' }))}
${section('Participants', o.participants === null ? '<p>No participants are recorded.</p>' : htmlTable(o.participants))}
${section('Privacy budget', privacy)}
${section('Lineage', lineage)}
${section('Accuracy', rounds.length === 0 ? '<p>No round is anchored.</p>' : `${chart}\n${curveTable}`)}
<footer>Generated from the audit report of task ${escapeHtml(report.task)} at block ${report.atBlock}. The JSON form of the same report holds every value in full.</footer>
</body>
</html>
`;
}

// ---------------------------------------------------------------------------------------------------------------
// The chart.

/** One round's point on the chart; null where the round has no such figure (an unreadable manifest). */
export interface ChartPoint {
  readonly round: number;
  readonly accuracy: number | null;
  readonly loss: number | null;
}

export function chartPointsOf(rounds: readonly AuditRound[]): ChartPoint[] {
  const scores = modelScores(rounds);
  return rounds.map((r, i) => ({
    round: r.round,
    accuracy: scores[i]?.accuracy ?? null,
    loss: scores[i]?.loss ?? null,
  }));
}

const CHART = { width: 720, height: 300, top: 40, right: 64, bottom: 48, left: 64 } as const;
const ACCURACY_COLOR = '#1f6feb';
const LOSS_COLOR = '#bc4c00';

/**
 * An inline SVG line chart of accuracy (left axis, 0–100 %) and loss (right axis, from 0) per round, with axes,
 * ticks, labels and a legend; each point is a `<circle class="point accuracy|loss" data-round="N">` with a tooltip.
 * Self-contained (presentation attributes, no CSS or script), so it renders the same inside the model card, the
 * explorer or on its own. Non-finite figures are left out rather than drawn at an edge.
 */
export function accuracyChartSvg(points: readonly ChartPoint[]): string {
  const { width, height, top, right, bottom, left } = CHART;
  const x0 = left;
  const x1 = width - right;
  const y0 = height - bottom;
  const y1 = top;
  const open = `<svg xmlns="http://www.w3.org/2000/svg" class="accuracy-chart" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" font-family="system-ui, sans-serif" font-size="11">`;
  const title = '<title>Accuracy and loss per round</title>';
  const accuracy = points.filter((p): p is ChartPoint & { accuracy: number } => isNumber(p.accuracy));
  const loss = points.filter((p): p is ChartPoint & { loss: number } => isNumber(p.loss));
  if (accuracy.length === 0 && loss.length === 0)
    return `${open}${title}<text x="${width / 2}" y="${height / 2}" text-anchor="middle" fill="#59636e">no metrics recorded</text></svg>`;

  // Reduced rather than spread: a long task has more rounds than a call takes arguments.
  const rMin = points.reduce((m, p) => Math.min(m, p.round), Number.POSITIVE_INFINITY);
  const rMax = points.reduce((m, p) => Math.max(m, p.round), Number.NEGATIVE_INFINITY);
  const x = (r: number) => (rMax === rMin ? (x0 + x1) / 2 : x0 + ((r - rMin) / (rMax - rMin)) * (x1 - x0));
  const clamp01 = (v: number) => Math.min(1, Math.max(0, v));
  const yAccuracy = (a: number) => y0 - clamp01(a) * (y0 - y1);
  const lossTop = niceCeil(loss.reduce((m, p) => Math.max(m, p.loss), 0));
  const yLoss = (l: number) => y0 - clamp01(l / lossTop) * (y0 - y1);
  const f = (v: number) => v.toFixed(1);

  const parts: string[] = [open, title, `<rect width="${width}" height="${height}" fill="#fff"/>`];
  // Grid and the accuracy axis (left): fixed 0–100 %, so charts of different tasks compare at a glance.
  for (const t of [0, 0.25, 0.5, 0.75, 1]) {
    const y = f(yAccuracy(t));
    parts.push(
      `<line x1="${x0}" x2="${x1}" y1="${y}" y2="${y}" stroke="#d1d9e0" stroke-width="1"${t === 0 ? '' : ' stroke-dasharray="2 3"'}/>`,
      `<text x="${x0 - 8}" y="${y}" dy="0.32em" text-anchor="end" fill="${ACCURACY_COLOR}">${t * 100}</text>`,
    );
  }
  // The loss axis (right).
  for (const t of [0, 0.25, 0.5, 0.75, 1]) {
    const y = f(yLoss(t * lossTop));
    parts.push(
      `<text x="${x1 + 8}" y="${y}" dy="0.32em" text-anchor="start" fill="${LOSS_COLOR}">${tickLabel(t * lossTop)}</text>`,
    );
  }
  parts.push(
    `<line x1="${x0}" x2="${x0}" y1="${y1}" y2="${y0}" stroke="#59636e"/>`,
    `<line x1="${x1}" x2="${x1}" y1="${y1}" y2="${y0}" stroke="#59636e"/>`,
    `<line x1="${x0}" x2="${x1}" y1="${y0}" y2="${y0}" stroke="#59636e"/>`,
  );
  for (const r of roundTicks(rMin, rMax)) {
    const xr = f(x(r));
    parts.push(
      `<line x1="${xr}" x2="${xr}" y1="${y0}" y2="${y0 + 4}" stroke="#59636e"/>`,
      `<text x="${xr}" y="${y0 + 16}" text-anchor="middle" fill="#1f2328">${r}</text>`,
    );
  }
  parts.push(
    `<text x="${(x0 + x1) / 2}" y="${height - 10}" text-anchor="middle" fill="#1f2328" font-size="12">round</text>`,
    `<text transform="translate(16 ${(y0 + y1) / 2}) rotate(-90)" text-anchor="middle" fill="${ACCURACY_COLOR}" font-size="12">accuracy (%)</text>`,
    `<text transform="translate(${width - 14} ${(y0 + y1) / 2}) rotate(90)" text-anchor="middle" fill="${LOSS_COLOR}" font-size="12">loss</text>`,
  );
  // Legend, above the plot.
  parts.push(
    `<line x1="${x0}" x2="${x0 + 22}" y1="16" y2="16" stroke="${ACCURACY_COLOR}" stroke-width="2"/>`,
    `<text x="${x0 + 28}" y="16" dy="0.32em" fill="#1f2328">accuracy</text>`,
    `<line x1="${x0 + 100}" x2="${x0 + 122}" y1="16" y2="16" stroke="${LOSS_COLOR}" stroke-width="2" stroke-dasharray="5 3"/>`,
    `<text x="${x0 + 128}" y="16" dy="0.32em" fill="#1f2328">loss</text>`,
  );
  const radius = points.length > 60 ? 2 : 3.5;
  if (loss.length > 0) {
    parts.push(
      `<polyline fill="none" stroke="${LOSS_COLOR}" stroke-width="1.5" stroke-dasharray="5 3" points="${loss.map((p) => `${f(x(p.round))},${f(yLoss(p.loss))}`).join(' ')}"/>`,
      ...loss.map(
        (p) =>
          `<circle class="point loss" data-round="${p.round}" cx="${f(x(p.round))}" cy="${f(yLoss(p.loss))}" r="${radius}" fill="#fff" stroke="${LOSS_COLOR}" stroke-width="1.5"><title>round ${p.round}: loss ${decimal(p.loss)}</title></circle>`,
      ),
    );
  }
  if (accuracy.length > 0) {
    parts.push(
      `<polyline fill="none" stroke="${ACCURACY_COLOR}" stroke-width="2" points="${accuracy.map((p) => `${f(x(p.round))},${f(yAccuracy(p.accuracy))}`).join(' ')}"/>`,
      ...accuracy.map(
        (p) =>
          `<circle class="point accuracy" data-round="${p.round}" cx="${f(x(p.round))}" cy="${f(yAccuracy(p.accuracy))}" r="${radius}" fill="${ACCURACY_COLOR}"><title>round ${p.round}: accuracy ${percent(p.accuracy)}</title></circle>`,
      ),
    );
  }
  parts.push('</svg>');
  return parts.join('\n');
}

/** The smallest of 1, 2, 2.5, 5 × 10^k at or above `v` (1 for 0), so the loss axis ends on a round number. */
function niceCeil(v: number): number {
  if (!(v > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(v));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= v * (1 - 1e-12)) return step * power;
  return 10 * power;
}

const tickLabel = (v: number) => (v === 0 ? '0' : Number(v.toPrecision(3)).toString());

/** Every round up to a dozen; beyond that about ten ticks, 1, 2 or 5 × 10^k rounds apart. */
function roundTicks(rMin: number, rMax: number): number[] {
  if (rMax - rMin <= 12) return Array.from({ length: rMax - rMin + 1 }, (_, i) => rMin + i);
  const rough = (rMax - rMin) / 10;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = Math.max(1, ([1, 2, 5, 10].find((k) => k * power >= rough) ?? 10) * power);
  const ticks: number[] = [];
  for (let r = Math.ceil(rMin / step) * step; r <= rMax; r += step) ticks.push(r);
  return ticks;
}
