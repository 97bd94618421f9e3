import { describe, expect, it } from 'vitest';
import {
  accuracyChartSvg,
  chartPointsOf,
  escapeMarkdown,
  REPORT_FORMATS,
  renderReport,
} from '../../src/audit/report.ts';
import type { AuditFinding, AuditReport, AuditRound } from '../../src/audit/types.ts';
import { hasCode } from '../../src/shared/errors.ts';

// Hand-built reports: the renderer is pure, so its inputs are plain values (no chain, no storage).

const hex = (seed: string) => seed.repeat(64).slice(0, 64);
const ACCOUNTS = [
  '5GrwvaF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY',
  '5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty',
  '5FLSigC9HGRKVhB9FiEo4Y3koPsNmBmLJbpXg2mp1hXcS59Y',
  '5DAAnrj7VHTznn2AWBemMuyBwZWs6FNFjdyVXUeYum3PTXFy',
] as const;
const [A, B, C, D] = ACCOUNTS;

function round(n: number, overrides: Partial<AuditRound> = {}): AuditRound {
  const survivors = n === 1 ? [A, B, C] : [A, B, C, D];
  return {
    round: n,
    manifest: { fid: hex(`m${n}`), digest: hex(`d${n}`), recordedAt: 10 + n },
    model: { fid: hex(`f${n}`), hash: hex(`h${n}`), name: 'mlp' },
    parent: n === 0 ? null : { fid: hex(`m${n - 1}`), digest: hex(`d${n - 1}`) },
    cohort: [A, B, C, D],
    survivors,
    dropouts: n === 1 ? [{ account: D, stage: 'masked' }] : [],
    updates: survivors.map((account, i) => ({
      account,
      fid: hex(`u${n}${i}`),
      digest: hex(`g${n}${i}`),
      valid: true,
    })),
    kind: 'train',
    metrics: { accuracy: 0.6 + 0.1 * n, loss: 1.2 - 0.3 * n, testExamples: 1000 },
    evaluation: null,
    privacy: { mechanism: 'none', epsilonSpent: null, delta: null },
    secagg: { enabled: true, k: 2, t: 2 },
    startedAt: 1_700_000_000_000 + n * 60_000,
    finishedAt: 1_700_000_030_000 + n * 60_000,
    aggregate_recomputed: true,
    aggregateNote: null,
    findings: [],
    ok: true,
    ...overrides,
  };
}

const SPEC = {
  version: 2,
  name: 'fashion, non-IID',
  model: {
    name: 'mlp',
    fid: hex('f'),
    digest: hex('d'),
    parameters: 199_210,
    initialSeed: 'seed-1',
    initialHash: hex('i'),
  },
  dataset: { name: 'fashion-mnist', description: 'Dirichlet 0.5 over 4 organisations' },
  training: {
    loss: 'categorical_crossentropy',
    optimizer: { name: 'sgd', learningRate: 0.05 },
    metrics: ['accuracy', 'loss'],
    proximalMu: 0,
  },
  strategy: { name: 'fedavg' },
  local: { epochs: 1, batchSize: 32 },
  rounds: 3,
  cohort: { size: 4, min: 3 },
  secagg: { enabled: true, neighbours: 2, threshold: 2, range: 1, bits: 24, maxWeight: 1000 },
  dp: null,
  admitted: [...ACCOUNTS],
};

function verifiedReport(): AuditReport {
  return {
    task: 'task-0123456789ab',
    chain: {
      coordinator: '5EYCAe5ijiYfyeZ2JJCGq56LmPyNRAKzpG4QkoQkkQNB5e6Z',
      specDigest: hex('s'),
      createdAt: 7,
      rounds: 3,
      admitted: ACCOUNTS.map((account, i) => ({ account, identityKey: hex(`k${i}`), admittedAt: 8 + i })),
    },
    spec: SPEC,
    code: { package: 'ailink', version: '0.1.0', lockfile: hex('l') },
    rounds: [round(0), round(1), round(2)],
    findings: [],
    ok: true,
    atBlock: 42,
  };
}

const DIGEST_FINDING: AuditFinding = {
  code: 'MANIFEST_DIGEST',
  round: 1,
  where: 'round 1 · manifest',
  message: `manifest ${hex('m1').slice(0, 8)}… hashes to ${hex('x')}, the chain anchored ${hex('d1')}`,
};
const SIGNATURE_FINDING: AuditFinding = {
  code: 'COMMITMENT_SIGNATURE',
  round: 1,
  where: 'round 1 · updates[2] (5FLSigC9…)',
  message: 'the commitment is not signed by the admitted key',
};

function brokenReport(): AuditReport {
  const good = verifiedReport();
  return {
    ...good,
    rounds: [
      good.rounds[0]!,
      round(1, { findings: [DIGEST_FINDING, SIGNATURE_FINDING], ok: false }),
      good.rounds[2]!,
    ],
    ok: false,
  };
}

const HOSTILE = '<script>alert(1)</script><img src=x onerror="alert(2)">';

/** A report whose every free string is an attempt at markup (what a crafted manifest or spec could carry). */
function hostileReport(): AuditReport {
  const good = verifiedReport();
  const finding: AuditFinding = {
    code: 'SPEC_MISMATCH',
    round: null,
    where: `task spec ${HOSTILE}`,
    message: `bad | table\nnew line [link](javascript:alert(3)) ${HOSTILE}`,
  };
  return {
    ...good,
    task: `evil${HOSTILE}`,
    spec: { ...SPEC, name: `n"ame' ${HOSTILE}`, dataset: { name: HOSTILE, description: '| x | y |' } },
    rounds: [
      round(0, {
        dropouts: [{ account: D, stage: HOSTILE }],
        findings: [{ ...finding, round: 0, where: `round 0 · ${HOSTILE}` }],
        ok: false,
      }),
    ],
    findings: [finding],
    ok: false,
  };
}

/** An element tag (opening or closing) whose attribute values are double-quoted, as the renderer writes them. */
const TAG = /<\/?([a-z][\w-]*)((?:\s+[\w:-]+(?:="[^"<]*")?)*)\s*\/?>/gi;
/** Every element the model card uses; a crafted string must not add one. */
const ELEMENTS = [
  'html',
  'head',
  'meta',
  'title',
  'style',
  'body',
  'header',
  'h1',
  'h2',
  'h3',
  'p',
  'section',
  'div',
  'table',
  'thead',
  'tbody',
  'tr',
  'th',
  'td',
  'ul',
  'li',
  'code',
  'span',
  'footer',
  'figure',
  'figcaption',
  'svg',
  'rect',
  'line',
  'text',
  'polyline',
  'circle',
];

/** The Markdown table rows (lines starting with `|`) whose first cell is `n`. */
const mdRows = (md: string, first: string) => md.split('\n').filter((l) => l.startsWith(`| ${first} |`));
/** Splits a Markdown table row on its unescaped pipes. */
const mdCells = (line: string) =>
  line
    .slice(1, -1)
    .split(/(?<!\\)\|/)
    .map((c) => c.trim());

describe('renderReport json', () => {
  it('is the report, pretty-printed and newline-terminated, and parses back to the same value', () => {
    for (const report of [verifiedReport(), brokenReport(), hostileReport()]) {
      const json = renderReport(report, 'json');
      expect(json).toBe(`${JSON.stringify(report, null, 2)}\n`);
      expect(JSON.parse(json)).toEqual(report);
      expect(renderReport(report, 'json')).toBe(json);
    }
  });
});

describe('renderReport md', () => {
  it('a verified task: verdict first, facts, settings, participants, no DP, every lineage row and the curve', () => {
    const md = renderReport(verifiedReport(), 'md');
    const lines = md.split('\n');
    expect(lines[0]).toBe('# Model card — task task-0123456789ab');
    // The verdict comes before any other section.
    expect(md.indexOf('✅ verified')).toBeGreaterThan(0);
    expect(md.indexOf('✅ verified')).toBeLessThan(md.indexOf('## Task'));
    expect(md).not.toContain('❌');
    expect(md).toContain(`| Spec digest | ${hex('s')} |`);
    expect(md).toContain('| Created at | block 7 |');
    expect(md).toContain('| Code | ailink 0.1.0 |');
    expect(md).toContain(`| Lockfile (SHA-256) | ${hex('l')} |`);
    expect(md).toContain(
      `| Model | name: mlp · fid: ${hex('f')} · digest: ${hex('d')} · parameters: 199210 · initialSeed: seed-1 · initialHash: ${hex('i')} |`,
    );
    expect(md).toContain('| Local training | epochs: 1 · batchSize: 32 |');
    expect(md).toContain('| Differential privacy | none (no noise is added) |');
    expect(md).toContain('No differential privacy (mechanism none)');

    // Participants: D was in every cohort, survived rounds 0 and 2, dropped in round 1.
    const [dRow] = mdRows(md, D);
    expect(mdCells(dRow!)).toEqual([D, `${hex('k3').slice(0, 8)}…`, 'block 11', '2', '1']);
    expect(mdCells(mdRows(md, A)[0]!)).toEqual([A, `${hex('k0').slice(0, 8)}…`, 'block 8', '3', '0']);

    // Lineage: one row per round with its short ids, cohort arithmetic, dropouts with stage, metrics and ✓.
    const lineage = md.slice(md.indexOf('## Lineage'), md.indexOf('## Accuracy'));
    const rows = [0, 1, 2].map((n) => mdRows(lineage, String(n)));
    expect(rows.map((r) => r.length)).toEqual([1, 1, 1]);
    expect(mdCells(rows[1]![0]!)).toEqual([
      '1',
      `${hex('m1').slice(0, 8)}…`,
      `${hex('d1').slice(0, 8)}…`,
      `${hex('m0').slice(0, 8)}…`,
      `${hex('h1').slice(0, 8)}…`,
      '3/4',
      `${D.slice(0, 8)}… (masked)`,
      '70.00 %',
      '0.9000',
      '—',
      '✓',
    ]);
    expect(mdCells(rows[0]![0]!)[3]).toBe('none');

    // The curve: one row per round, accuracy bar proportional (80 % → 16 of 20 cells).
    const curve = md.slice(md.indexOf('## Accuracy'));
    expect(mdCells(mdRows(curve, '2')[0]!)).toEqual([
      '2',
      '80.00 %',
      '0.6000',
      `${'█'.repeat(16)}${'░'.repeat(4)}`,
    ]);
    expect(md.endsWith('\n')).toBe(true);
  });

  it('a broken task: the count up front, each finding as code — where — message under its round', () => {
    const md = renderReport(brokenReport(), 'md');
    expect(md).toContain('**❌ 2 findings**');
    expect(md.indexOf('❌ 2 findings')).toBeLessThan(md.indexOf('## Task'));
    const group = md.slice(md.indexOf('### Findings: round 1'), md.indexOf('## Task'));
    expect(group.split('\n').filter((l) => l.startsWith('- '))).toEqual([
      `- \`MANIFEST_DIGEST\` — round 1 · manifest — ${escapeMarkdown(DIGEST_FINDING.message)}`,
      '- `COMMITMENT_SIGNATURE` — round 1 · updates\\[2\\] (5FLSigC9…) — the commitment is not signed by the admitted key',
    ]);
    expect(md).not.toContain('### Findings: round 0');
    expect(md).not.toContain('### Findings: task');
    const lineage = md.slice(md.indexOf('## Lineage'), md.indexOf('## Accuracy'));
    expect(mdCells(mdRows(lineage, '1')[0]!).at(-1)).toBe('✗ 2 findings');
    expect(mdCells(mdRows(lineage, '0')[0]!).at(-1)).toBe('✓');
  });

  it('hostile strings stay text: no raw HTML, no link, no broken table, no new block', () => {
    const md = renderReport(hostileReport(), 'md');
    expect(md).not.toMatch(/<script|<img/i);
    expect(md).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(md).not.toContain('[link](');
    expect(md).toContain('\\[link\\](javascript:alert(3))');
    // The newline in the message is folded, and its pipe does not split a cell.
    expect(md).toContain('bad \\| table new line');
    const dataset = md.split('\n').find((l) => l.startsWith('| Dataset |'))!;
    expect(mdCells(dataset)).toHaveLength(2);
    // Every line that is a heading is one of ours.
    expect(md.split('\n').filter((l) => l.startsWith('#'))).toEqual([
      '# Model card — task evil&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror="alert(2)"&gt;',
      '## Verification',
      '### Findings: task',
      '### Findings: round 0',
      '## Task',
      '## Settings',
      '## Participants',
      '## Privacy budget',
      '## Lineage',
      '## Accuracy',
    ]);
  });

  it('differential privacy: ε per round as the step of the accountant, the total and the budget', () => {
    const good = verifiedReport();
    const report: AuditReport = {
      ...good,
      spec: { ...SPEC, dp: { noiseMultiplier: 1.1, clipNorm: 1, delta: 1e-5, epsilonBudget: 8 } },
      rounds: good.rounds.map((r, i) => ({
        ...r,
        privacy: { mechanism: 'gaussian', epsilonSpent: [1.5, 2.25, 2.875][i]!, delta: 1e-5 },
      })),
    };
    const md = renderReport(report, 'md');
    const privacy = md.slice(md.indexOf('## Privacy budget'), md.indexOf('## Lineage'));
    expect(privacy).not.toContain('No differential privacy');
    expect(mdCells(mdRows(privacy, '0')[0]!)).toEqual(['0', 'gaussian', '1.500', '1.500', '0.00001']);
    expect(mdCells(mdRows(privacy, '2')[0]!)).toEqual(['2', 'gaussian', '0.6250', '2.875', '0.00001']);
    expect(privacy).toContain('ε spent in total: 2.875 of a budget of 8.000 (after round 2).');
  });

  it('a task its coordinator stopped: the block and the reason among the facts; a running one has no such row', () => {
    expect(renderReport(verifiedReport(), 'md')).not.toContain('| Stopped |');
    const base = verifiedReport();
    const stopped: AuditReport = {
      ...base,
      chain: {
        ...base.chain!,
        stoppedAt: 40,
        stopReason: 'round 3 ended after 5 attempts (maxAttempts 5); the last: x',
      },
    };
    expect(renderReport(stopped, 'md')).toContain(
      '| Stopped | block 40: round 3 ended after 5 attempts (maxAttempts 5); the last: x |',
    );
  });

  it('a task that is not on chain, with no spec and no round, still renders', () => {
    const report: AuditReport = {
      task: 'nope',
      chain: null,
      spec: null,
      code: null,
      rounds: [],
      findings: [
        {
          code: 'TASK_NOT_ON_CHAIN',
          round: null,
          where: 'task',
          message: 'no task nope is recorded on chain',
        },
      ],
      ok: false,
      atBlock: 3,
    };
    const md = renderReport(report, 'md');
    expect(md).toContain('**❌ 1 finding**');
    expect(md).toContain('- `TASK_NOT_ON_CHAIN` — task — no task nope is recorded on chain');
    expect(md).toContain('| Coordinator | not on chain |');
    expect(md).toContain('The task spec could not be read.');
    const html = renderReport(report, 'html');
    expect(html).toContain('no task nope is recorded on chain');
    expect(html).not.toContain('<svg');
  });
});

describe('renderReport html', () => {
  it('one self-contained document: inline CSS and SVG, no script, no external reference', () => {
    const html = renderReport(verifiedReport(), 'html');
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect(html.trimEnd().endsWith('</html>')).toBe(true);
    expect(html).toContain('<style>');
    expect(html).not.toMatch(/<script|<link|<img|<iframe|@import|url\(/i);
    // Every src/href would be an external asset; the only URL is the SVG namespace.
    expect(html).not.toMatch(/\s(src|href)=/i);
    expect([...html.matchAll(/https?:\/\/[^\s"]+/g)].map((m) => m[0])).toEqual([
      'http://www.w3.org/2000/svg',
    ]);
    expect(html).toContain("default-src 'none'");
  });

  it('a verified task: the lineage rows, the verdict and a chart with one point per round', () => {
    const html = renderReport(verifiedReport(), 'html');
    expect(html).toContain('<p class="verdict ok">✓ verified');
    for (const n of [0, 1, 2]) {
      expect(html).toContain(`<tr class="round verified" data-round="${n}">`);
      expect(html).toContain(`title="${hex(`m${n}`)}">${hex(`m${n}`).slice(0, 8)}…</td>`);
    }
    expect(html).not.toContain('round broken');
    expect(html).toContain(`title="${D} (masked)">${D.slice(0, 8)}… (masked)</td>`);
    const svg = html.slice(html.indexOf('<svg'), html.indexOf('</svg>'));
    expect([...svg.matchAll(/<circle class="point accuracy" data-round="(\d+)"/g)].map((m) => m[1])).toEqual([
      '0',
      '1',
      '2',
    ]);
    expect(svg.match(/class="point loss"/g)).toHaveLength(3);
    for (const label of ['>round<', '>accuracy (%)<', '>loss<']) expect(svg).toContain(label);
  });

  it('a broken task: findings under their round, the round marked broken, the others verified', () => {
    const html = renderReport(brokenReport(), 'html');
    expect(html).toContain('<p class="verdict bad">✗ 2 findings</p>');
    expect(html).toContain('<tr class="round broken" data-round="1">');
    expect(html).toContain('<tr class="round verified" data-round="0">');
    expect(html).toContain('<tr class="round verified" data-round="2">');
    const pinned = html.match(/<tr class="round-findings" data-round="(\d+)">(.*?)<\/tr>/gs) ?? [];
    expect(pinned).toHaveLength(1);
    expect(pinned[0]).toContain('data-round="1"');
    expect(pinned[0]).toContain(
      `<code>MANIFEST_DIGEST</code> — <span class="where">round 1 · manifest</span> — ${DIGEST_FINDING.message}`,
    );
    expect(pinned[0]).toContain('<code>COMMITMENT_SIGNATURE</code>');
    expect(html).toContain('<td class="bad">✗ 2 findings</td>');
  });

  it('hostile strings come out inert: escaped in text and in attributes', () => {
    const html = renderReport(hostileReport(), 'html');
    expect(html).not.toMatch(/<script|<img/i);
    expect(html).toContain(
      '&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=&quot;alert(2)&quot;&gt;',
    );
    // In the <title>, the heading, the spec name (quotes in it too) and the dropout stage behind a title attribute.
    expect(html).toContain('<title>Model card — task evil&lt;script&gt;');
    expect(html).toContain('n&quot;ame&#39; &lt;script&gt;');
    expect(html).toContain(
      `title="${D} (&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=&quot;alert(2)&quot;&gt;)"`,
    );
    // Read as markup, the document holds only our elements and attributes: every `<` starts one of our tags, no
    // attribute is an event handler, and the crafted `onerror` survives only as text inside a quoted value.
    const tags = [...html.matchAll(TAG)];
    expect(new Set(tags.map((m) => m[1]!.toLowerCase()))).toEqual(new Set(ELEMENTS));
    const attributes = tags.flatMap((m) =>
      [...m[2]!.matchAll(/\s+([\w:-]+)(?:="[^"<]*")?/gy)].map((a) => a[1]!.toLowerCase()),
    );
    expect(attributes.filter((name) => name.startsWith('on'))).toEqual([]);
    expect(html.replace('<!doctype html>', '').replace(TAG, '')).not.toContain('<');
  });
});

describe('accuracyChartSvg', () => {
  it('leaves out figures that are not finite and says so when none is left', () => {
    const svg = accuracyChartSvg([
      { round: 0, accuracy: 0.5, loss: Number.NaN },
      { round: 1, accuracy: null, loss: 0.7 },
      { round: 2, accuracy: 0.75, loss: 0.5 },
    ]);
    expect(svg.match(/class="point accuracy"/g)).toHaveLength(2);
    expect(svg.match(/class="point loss"/g)).toHaveLength(2);
    expect(accuracyChartSvg([])).toContain('no metrics recorded');
    expect(accuracyChartSvg([{ round: 0, accuracy: null, loss: null }])).toContain('no metrics recorded');
  });

  it('places accuracy on a 0–100 % axis: higher accuracy is higher on the chart (smaller y)', () => {
    const svg = accuracyChartSvg(chartPointsOf(verifiedReport().rounds));
    const ys = [...svg.matchAll(/class="point accuracy" data-round="\d+" cx="[\d.]+" cy="([\d.]+)"/g)].map(
      (m) => Number(m[1]),
    );
    expect(ys).toHaveLength(3);
    expect(ys[0]!).toBeGreaterThan(ys[1]!);
    expect(ys[1]!).toBeGreaterThan(ys[2]!);
  });

  it('a long task gets about ten round ticks, not one per round', () => {
    const points = Array.from({ length: 500 }, (_, round) => ({ round, accuracy: 0.5, loss: 1 }));
    const svg = accuracyChartSvg(points);
    expect(svg.match(/class="point accuracy"/g)).toHaveLength(500);
    const ticks = [...svg.matchAll(/text-anchor="middle" fill="#1f2328">(\d+)<\/text>/g)].map((m) =>
      Number(m[1]),
    );
    expect(ticks).toEqual([0, 50, 100, 150, 200, 250, 300, 350, 400, 450]);
  });
});

it('an unknown format is refused with INVALID_INPUT', () => {
  expect(REPORT_FORMATS).toEqual(['html', 'md', 'json']);
  expect(() => renderReport(verifiedReport(), 'pdf' as 'html')).toThrow(
    expect.toSatisfy((e) => hasCode(e, 'INVALID_INPUT')),
  );
});
