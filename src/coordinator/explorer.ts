import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { AUDIT_CODES, type AuditReport } from '../audit/types.ts';

/**
 * The lineage explorer: one self-contained page served at `GET /explorer` (no build step, no CDN, no external asset)
 * whose inline script reads the coordinator's own JSON API — tasks, rounds, metrics, participants, the open attempt —
 * and `GET /v1/tasks/:id/audit`, which re-verifies the lineage against the chain on every call, so each round's badge
 * says what the chain and storage show now, not what the coordinator remembers.
 *
 * Everything the page shows can come from objects a stranger stored (a task name, a finding quoting a manifest): the
 * script only ever sets `textContent` and attributes, never HTML, and the page is served with a Content-Security-
 * Policy that allows its own script and style (by hash) and requests to its own origin, nothing else.
 */

// --------------------------------------------------------------------------------------------------------------
// The audit report on the wire (src/audit/types.ts, as zod): the route's reply is checked against it and the
// OpenAPI document describes it. The two cannot drift apart unnoticed: `satisfies` checks that what the schema
// accepts is an AuditReport, and the route (http.ts) that every AuditReport is what the schema accepts.

const AuditFindingSchema = z
  .object({
    code: z.enum(AUDIT_CODES),
    round: z.number().int().nullable().meta({ description: 'null for a task-level finding' }),
    where: z
      .string()
      .meta({ description: 'a path a reader can follow, e.g. `round 2 · updates[1] (5F3o76oZ…)`' }),
    message: z.string().meta({ description: 'expected vs found' }),
  })
  .meta({ id: 'AuditFinding', description: 'one break in the lineage, pinned to where it broke' });

const AuditRoundSchema = z
  .object({
    round: z.number().int(),
    manifest: z.object({ fid: z.string(), digest: z.string(), recordedAt: z.number().int() }),
    model: z.object({ fid: z.string(), hash: z.string(), name: z.string() }).nullable(),
    parent: z.object({ fid: z.string(), digest: z.string() }).nullable(),
    cohort: z.array(z.string()).readonly(),
    survivors: z.array(z.string()).readonly(),
    dropouts: z.array(z.object({ account: z.string(), stage: z.string() })).readonly(),
    updates: z
      .array(z.object({ account: z.string(), fid: z.string(), digest: z.string(), valid: z.boolean() }))
      .readonly(),
    kind: z.enum(['train', 'evaluation']),
    metrics: z
      .object({
        accuracy: z.number().nullable(),
        loss: z.number().nullable(),
        testExamples: z.number().nullable(),
      })
      .nullable(),
    evaluation: z.object({ examples: z.number(), accuracy: z.number(), loss: z.number() }).nullable(),
    privacy: z
      .object({ mechanism: z.string(), epsilonSpent: z.number().nullable(), delta: z.number().nullable() })
      .nullable(),
    secagg: z.object({ enabled: z.boolean(), k: z.number(), t: z.number() }).nullable(),
    startedAt: z.number().nullable(),
    finishedAt: z.number().nullable(),
    aggregate_recomputed: z.boolean().meta({
      description:
        'the round’s sum and model were re-derived from the committed updates and matched bit for bit',
    }),
    aggregateNote: z.string().nullable(),
    findings: z.array(AuditFindingSchema).readonly(),
    ok: z.boolean(),
  })
  .meta({ id: 'AuditRound', description: 'one anchored round as the audit read it' });

export const AuditReportSchema = z
  .object({
    task: z.string(),
    chain: z
      .object({
        coordinator: z.string(),
        specDigest: z.string(),
        createdAt: z.number().int(),
        rounds: z.number().int(),
        admitted: z
          .array(z.object({ account: z.string(), identityKey: z.string(), admittedAt: z.number().int() }))
          .readonly(),
      })
      .nullable()
      .meta({ description: 'the task as the chain recorded it; null when it is not on chain' }),
    spec: z.record(z.string(), z.unknown()).nullable(),
    code: z.object({ package: z.string(), version: z.string(), lockfile: z.string() }).nullable(),
    rounds: z.array(AuditRoundSchema).readonly(),
    findings: z.array(AuditFindingSchema).readonly().meta({ description: 'task-level findings' }),
    ok: z.boolean().meta({ description: 'true only when there is no finding anywhere' }),
    atBlock: z.number().int().meta({ description: 'block height of the chain state the audit read' }),
  })
  .meta({
    id: 'AuditReport',
    description: "the task's lineage verified against the chain and storage",
  }) satisfies z.ZodType<AuditReport>;

export const AuditQuerySchema = z.object({
  round: z
    .string()
    .regex(/^\d{1,9}$/, 'expected a round number')
    .transform(Number)
    .optional()
    .meta({ description: 'verify rounds 0..round only (default: every anchored round)' }),
});

// --------------------------------------------------------------------------------------------------------------
// The page.

const STYLE = `
:root { color-scheme: light; --ok: #1a7f37; --ok-bg: #dafbe1; --bad: #cf222e; --bad-bg: #ffebe9; --warn: #9a6700;
  --warn-bg: #fff8c5; --muted: #59636e; --line: #d1d9e0; --accent: #1f6feb; --loss: #bc4c00; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328; background: #f6f8fa; }
header { display: flex; gap: 1rem; align-items: baseline; padding: .8rem 1.5rem; background: #1f2328; color: #fff; }
header h1 { font-size: 1.1rem; margin: 0; }
header .who { color: #b7bdc8; font-size: .8rem; overflow-wrap: anywhere; }
.layout { display: grid; grid-template-columns: minmax(220px, 300px) 1fr; gap: 1.2rem; padding: 1.2rem 1.5rem; align-items: start; }
@media (max-width: 800px) { .layout { grid-template-columns: 1fr; } }
.panel { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 1rem 1.2rem; }
h2 { font-size: 1.05rem; margin: 0 0 .6rem; overflow-wrap: anywhere; }
h3 { font-size: .95rem; margin: 1.4rem 0 .5rem; }
h4 { font-size: .85rem; margin: .8rem 0 .3rem; color: var(--muted); }
ul.tasks { list-style: none; margin: 0; padding: 0; }
ul.tasks li + li { margin-top: .4rem; }
ul.tasks button { display: block; width: 100%; text-align: left; font: inherit; padding: .5rem .7rem; border: 1px solid var(--line); border-radius: 6px; background: #fff; cursor: pointer; }
ul.tasks button:hover { border-color: var(--accent); }
ul.tasks button[aria-current="true"] { border-color: var(--accent); background: #ddf4ff; }
.task-name { font-weight: 600; display: block; overflow-wrap: anywhere; }
.small { font-size: .8rem; color: var(--muted); overflow-wrap: anywhere; }
.mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .8rem; overflow-wrap: anywhere; }
.pill { display: inline-block; padding: 0 .45rem; border-radius: 999px; font-size: .75rem; font-weight: 600; border: 1px solid var(--line); }
.pill.running { color: var(--warn); background: var(--warn-bg); }
.pill.finished { color: var(--muted); }
.verdict { margin: .8rem 0; padding: .6rem .8rem; border-radius: 6px; border: 1px solid var(--line); font-weight: 600; }
.verdict.ok { color: var(--ok); background: var(--ok-bg); border-color: #aceebb; }
.verdict.broken { color: var(--bad); background: var(--bad-bg); border-color: #ffcecb; }
.verdict.pending { color: var(--muted); }
.verdict.unknown { color: var(--warn); background: var(--warn-bg); }
.actions { display: flex; gap: .8rem; align-items: center; flex-wrap: wrap; }
.actions button { font: inherit; padding: .25rem .7rem; border-radius: 6px; border: 1px solid var(--line); background: #f6f8fa; cursor: pointer; }
.actions a { color: var(--accent); }
figure { margin: .8rem 0; }
figure svg { width: 100%; max-width: 760px; height: auto; border: 1px solid var(--line); border-radius: 6px; background: #fff; }
figcaption { font-size: .8rem; color: var(--muted); }
ol.timeline { list-style: none; margin: 0; padding: 0 0 0 1rem; border-left: 2px solid var(--line); }
ol.timeline > li { position: relative; margin: 0 0 .9rem; padding: .6rem .8rem; background: #fff; border: 1px solid var(--line); border-radius: 6px; }
ol.timeline > li::before { content: ""; position: absolute; left: calc(-1rem - 7px); top: .95rem; width: 12px; height: 12px; border-radius: 50%; background: var(--line); border: 2px solid #fff; }
ol.timeline > li.verified::before { background: var(--ok); }
ol.timeline > li.broken { border-color: #ffcecb; }
ol.timeline > li.broken::before { background: var(--bad); }
.round-head { display: flex; gap: .7rem; align-items: baseline; flex-wrap: wrap; }
.round-no { font-weight: 700; }
.badge { display: inline-block; padding: 0 .5rem; border-radius: 999px; font-size: .75rem; font-weight: 600; border: 1px solid; }
.badge.verified { color: var(--ok); background: var(--ok-bg); border-color: #aceebb; }
.badge.broken { color: var(--bad); background: var(--bad-bg); border-color: #ffcecb; }
.badge.pending { color: var(--muted); border-color: var(--line); }
.badge.unknown { color: var(--warn); background: var(--warn-bg); border-color: #eac54f; }
.facts { display: flex; gap: 1.2rem; flex-wrap: wrap; margin: .3rem 0 0; font-size: .85rem; }
.facts dt { color: var(--muted); display: inline; }
.facts dd { display: inline; margin: 0 0 0 .3rem; }
ul.findings { margin: .4rem 0 0; padding-left: 1.1rem; color: var(--bad); }
ul.findings li { overflow-wrap: anywhere; }
ul.findings code { font-weight: 600; }
details { margin-top: .4rem; }
summary { cursor: pointer; color: var(--accent); font-size: .85rem; }
table { border-collapse: collapse; width: 100%; font-size: .8rem; }
th, td { text-align: left; padding: .25rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; overflow-wrap: anywhere; }
th { color: var(--muted); font-weight: 600; }
td.ok { color: var(--ok); font-weight: 700; }
td.bad { color: var(--bad); font-weight: 700; }
ul.accounts { margin: 0; padding-left: 1.1rem; }
.error { color: var(--bad); background: var(--bad-bg); border: 1px solid #ffcecb; border-radius: 6px; padding: .5rem .8rem; margin-bottom: 1rem; overflow-wrap: anywhere; }
.empty { color: var(--muted); }
`;

// Plain ES2020 with no template literals (this file holds it in one), and no innerHTML: text goes in as text.
const SCRIPT = `
'use strict';
(function () {
  var base = location.pathname.replace(/explorer\\/?$/, '');
  var SVG_NS = 'http://www.w3.org/2000/svg';
  var REFRESH_MS = 5000;
  // token: which task selection is current; audits: which audit call is (a slow one must not overwrite a newer one).
  var view = { task: null, token: 0, timer: null, rounds: [], audits: 0 };

  function el(tag, attrs, children) {
    return build(document.createElement(tag), attrs, children);
  }
  function svg(tag, attrs, children) {
    return build(document.createElementNS(SVG_NS, tag), attrs, children);
  }
  function build(node, attrs, children) {
    Object.keys(attrs || {}).forEach(function (k) {
      var v = attrs[k];
      if (v === undefined || v === null || v === false) return;
      if (k === 'text') node.textContent = String(v);
      else node.setAttribute(k, String(v));
    });
    (children || []).forEach(function (c) {
      if (c === null || c === undefined || c === false) return;
      node.append(typeof c === 'object' ? c : String(c));
    });
    return node;
  }
  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }
  function short(s) {
    s = String(s);
    return s.length <= 12 ? s : s.slice(0, 8) + '\\u2026';
  }
  function finite(v) {
    return typeof v === 'number' && isFinite(v);
  }
  function percent(v) {
    return finite(v) ? (v * 100).toFixed(2) + ' %' : '\\u2014';
  }
  function decimal(v) {
    return finite(v) ? v.toFixed(4) : '\\u2014';
  }
  function when(ms) {
    return finite(ms) ? new Date(ms).toISOString().slice(0, 19).replace('T', ' ') + ' UTC' : '\\u2014';
  }
  function plural(n, word) {
    return n + ' ' + word + (n === 1 ? '' : 's');
  }

  /** A refusal of the coordinator's API, with its error code (docs/errors.md) and HTTP status. */
  class ApiError extends Error {
    constructor(code, status, message) {
      super(message);
      this.name = 'ApiError';
      this.code = code;
      this.status = status;
    }
  }

  async function api(path) {
    var res = await fetch(base + path, { headers: { accept: 'application/json' } });
    var body = null;
    try {
      body = await res.json();
    } catch (e) {
      body = null;
    }
    if (!res.ok) {
      // The API answers every refusal with a registered code; a proxy in front of it may not.
      var error = body && body.error ? body.error : { code: 'HTTP_' + res.status, message: 'HTTP ' + res.status };
      throw new ApiError(error.code, res.status, error.message);
    }
    return body;
  }
  function taskPath(id, sub) {
    return 'v1/tasks/' + encodeURIComponent(id) + (sub ? '/' + sub : '');
  }

  function showError(where, err) {
    var box = document.getElementById(where);
    clear(box).hidden = false;
    box.append((err && err.code ? err.code + ': ' : '') + (err && err.message ? err.message : String(err)));
  }

  // ---- tasks ----------------------------------------------------------------------------------------------

  async function loadTasks() {
    var list = document.getElementById('task-list');
    var tasks;
    try {
      tasks = await api('v1/tasks');
    } catch (err) {
      showError('tasks-error', err);
      return;
    }
    clear(list);
    if (tasks.length === 0) list.append(el('li', { class: 'empty', text: 'No task yet.' }));
    // Newest first: the one being run is the one people look for.
    tasks.slice().reverse().forEach(function (t) {
      var button = el('button', { type: 'button', 'data-testid': 'task-item', 'data-task': t.id }, [
        el('span', { class: 'task-name', text: t.name }),
        el('span', { class: 'small' }, [
          el('span', { class: 'pill ' + t.status, text: t.status }),
          ' ' + t.roundsDone + '/' + t.roundsPlanned + ' rounds \\u00b7 ',
          el('span', { class: 'mono', text: t.id }),
        ]),
      ]);
      button.addEventListener('click', function () {
        location.hash = 'task=' + encodeURIComponent(t.id);
      });
      list.append(el('li', {}, [button]));
    });
    markSelected();
  }
  function markSelected() {
    document.querySelectorAll('[data-testid="task-item"]').forEach(function (b) {
      b.setAttribute('aria-current', String(b.getAttribute('data-task') === view.task));
    });
  }
  function taskFromHash() {
    var id = new URLSearchParams(location.hash.slice(1)).get('task');
    return id && id.length > 0 ? id : null;
  }

  // ---- one task ---------------------------------------------------------------------------------------------

  async function selectTask(id) {
    view.task = id;
    view.token += 1;
    clearTimeout(view.timer);
    markSelected();
    var token = view.token;
    var pane = document.getElementById('task');
    pane.hidden = false;
    document.getElementById('hint').hidden = true;
    document.getElementById('task-error').hidden = true;
    try {
      var data = await loadTask(id);
      if (token !== view.token) return;
      renderTask(data);
      runAudit(token);
      if (data.detail.status === 'running') scheduleRefresh(token);
    } catch (err) {
      if (token !== view.token) return;
      showError('task-error', err);
    }
  }
  async function loadTask(id) {
    var all = await Promise.all([
      api(taskPath(id)),
      api(taskPath(id, 'rounds')),
      api(taskPath(id, 'metrics')),
      api(taskPath(id, 'participants')),
      api(taskPath(id, 'status')),
    ]);
    return { detail: all[0], rounds: all[1], metrics: all[2], participants: all[3], status: all[4] };
  }
  // A running task: look again every few seconds; re-render and re-verify only when a round was added.
  function scheduleRefresh(token) {
    view.timer = setTimeout(async function () {
      if (token !== view.token) return;
      try {
        var data = await loadTask(view.task);
        if (token !== view.token) return;
        var grew = data.rounds.length !== view.rounds.length;
        if (grew) renderTask(data);
        else renderStatus(data);
        if (grew) runAudit(token);
        if (data.detail.status === 'running') scheduleRefresh(token);
        loadTasks();
      } catch (err) {
        scheduleRefresh(token);
      }
    }, REFRESH_MS);
  }

  function renderTask(data) {
    var d = data.detail;
    view.rounds = data.rounds;
    document.getElementById('task-title').textContent = d.spec.name;
    var meta = clear(document.getElementById('task-meta'));
    meta.append(
      el('span', { class: 'pill ' + d.status, text: d.status }),
      ' ' + data.rounds.length + ' of ' + d.spec.rounds + ' rounds \\u00b7 model ' + d.spec.model.name +
        ' \\u00b7 ' + d.spec.strategy.name + ' \\u00b7 SecAgg ' + (d.spec.secagg.enabled ? 'on' : 'off') +
        ' \\u00b7 DP ' + (d.spec.dp ? 'on (budget \\u03b5 ' + d.spec.dp.epsilonBudget + ')' : 'off') +
        ' \\u00b7 created ' + when(d.createdAt),
      el('br'),
      'task ',
      el('span', { class: 'mono', 'data-testid': 'task-id', text: d.id }),
      ' \\u00b7 spec digest ',
      el('span', { class: 'mono', text: d.digest })
    );
    renderStatus(data);
    var json = document.getElementById('audit-json');
    json.setAttribute('href', base + taskPath(d.id, 'audit'));
    var plot = clear(document.getElementById('plot'));
    plot.append(drawPlot(data.metrics));
    renderTimeline(data.rounds);
    renderParticipants(data.participants);
  }
  function renderStatus(data) {
    var box = clear(document.getElementById('attempt'));
    var s = data.status;
    box.hidden = s === null;
    if (s !== null)
      box.append(
        'Open: round ' + s.round + ' attempt ' + s.attempt + ', stage ' + s.phase + ', waiting for ' +
          plural(s.expecting.length, 'participant') + ' until ' + when(s.deadline)
      );
  }

  function renderTimeline(rounds) {
    var list = clear(document.getElementById('timeline'));
    if (rounds.length === 0) list.append(el('li', { class: 'empty', text: 'No round has finished yet.' }));
    rounds.forEach(function (r) {
      var li = el('li', { 'data-testid': 'round-row', 'data-round': r.round, class: 'round' }, [
        el('div', { class: 'round-head' }, [
          el('span', { class: 'round-no', text: 'Round ' + r.round }),
          el('span', { class: 'badge-slot' }, [badge('pending', 'verifying\\u2026')]),
          el('span', { class: 'small', text: when(r.finishedAt) }),
        ]),
        el('dl', { class: 'facts' }, [
          fact('accuracy', percent(r.accuracy), 'accuracy'),
          fact('loss', decimal(r.loss), 'loss'),
          fact('survivors', r.survivors + '/' + r.cohort, 'survivors'),
          fact('dropouts', '\\u2026', 'dropouts'),
          fact('\\u03b5', '\\u2026', 'epsilon'),
          fact('took', r.seconds.toFixed(1) + ' s'),
          fact('updates', (r.bytes / 1048576).toFixed(2) + ' MiB'),
        ]),
        el('div', { class: 'findings-slot' }),
        el('details', { 'data-testid': 'round-details' }, [
          el('summary', { text: 'Cohort, update commitments and stored objects' }),
          el('table', {}, [
            el('tbody', {}, [
              row2('manifest', r.manifestFid),
              row2('manifest digest', r.manifestDigest),
              row2('model', r.modelFid),
              row2('model hash', r.modelHash),
              row2('attempt', String(r.attempt)),
            ]),
          ]),
          el('div', { class: 'members-slot' }, [el('p', { class: 'empty', text: 'Waiting for the audit\\u2026' })]),
        ]),
      ]);
      list.append(li);
    });
  }
  function fact(label, value, testid) {
    return el('div', {}, [el('dt', { text: label }), el('dd', { text: value, 'data-testid': testid })]);
  }
  function row2(label, value) {
    return el('tr', {}, [el('th', { text: label }), el('td', { class: 'mono', text: value })]);
  }
  function badge(kind, text, title) {
    return el('span', { class: 'badge ' + kind, 'data-testid': 'badge-' + kind, text: text, title: title });
  }

  function renderParticipants(participants) {
    var body = clear(document.getElementById('participants'));
    if (participants.length === 0)
      body.append(el('tr', {}, [el('td', { colspan: 4, class: 'empty', text: 'Nobody has joined yet.' })]));
    participants.forEach(function (p) {
      body.append(
        el('tr', { 'data-testid': 'participant' }, [
          el('td', { class: 'mono', text: p.account }),
          el('td', { class: 'mono', text: short(p.identityKey), title: p.identityKey }),
          el('td', { text: when(p.joinedAt) }),
          el('td', { text: when(p.lastSeen) }),
        ])
      );
    });
  }

  // ---- the audit ---------------------------------------------------------------------------------------------

  async function runAudit(token) {
    var audit = ++view.audits;
    var verdict = clear(document.getElementById('task-verdict'));
    verdict.className = 'verdict pending';
    verdict.setAttribute('data-state', 'pending');
    verdict.append('Verifying the lineage against the chain and storage\\u2026');
    document.querySelectorAll('[data-testid="round-row"] .badge-slot').forEach(function (slot) {
      clear(slot).append(badge('pending', 'verifying\\u2026'));
    });
    var report;
    try {
      report = await api(taskPath(view.task, 'audit'));
    } catch (err) {
      if (token !== view.token || audit !== view.audits) return;
      return auditFailed(err);
    }
    if (token !== view.token || audit !== view.audits) return;
    applyAudit(report);
  }

  function auditFailed(err) {
    var verdict = clear(document.getElementById('task-verdict'));
    verdict.className = 'verdict unknown';
    verdict.setAttribute('data-state', 'unknown');
    verdict.append('Not verified: ' + (err.code ? err.code + ': ' : '') + err.message);
    document.querySelectorAll('[data-testid="round-row"] .badge-slot').forEach(function (slot) {
      clear(slot).append(badge('unknown', 'not verified', err.message));
    });
  }

  function applyAudit(report) {
    var byRound = new Map();
    report.rounds.forEach(function (r) {
      byRound.set(r.round, { round: r, findings: r.findings.slice() });
    });
    var taskFindings = [];
    // A task-level finding that names a round (a round missing on chain) belongs to that round's row.
    report.findings.forEach(function (f) {
      if (f.round === null) return taskFindings.push(f);
      var entry = byRound.get(f.round) || { round: null, findings: [] };
      entry.findings.push(f);
      byRound.set(f.round, entry);
    });
    var count = taskFindings.length;
    byRound.forEach(function (e) {
      count += e.findings.length;
    });

    var verdict = clear(document.getElementById('task-verdict'));
    verdict.setAttribute('data-state', report.ok ? 'verified' : 'broken');
    if (report.ok) {
      verdict.className = 'verdict ok';
      verdict.append(
        '\\u2713 Lineage verified: ' + plural(report.rounds.length, 'round') +
          ' checked against the chain at block ' + report.atBlock
      );
    } else {
      verdict.className = 'verdict broken';
      verdict.append(
        '\\u2717 ' + (count === 0 ? 'Not verified' : plural(count, 'finding')) + ' at block ' + report.atBlock
      );
      if (taskFindings.length > 0) verdict.append(findingList(taskFindings));
    }

    document.querySelectorAll('[data-testid="round-row"]').forEach(function (li) {
      var n = Number(li.getAttribute('data-round'));
      var entry = byRound.get(n);
      var slot = clear(li.querySelector('.badge-slot'));
      var findingsSlot = clear(li.querySelector('.findings-slot'));
      li.classList.remove('verified', 'broken');
      if (entry === undefined) {
        slot.append(badge('unknown', 'not audited', 'the audit did not cover this round'));
        return;
      }
      var ok = entry.round !== null && entry.round.ok && entry.findings.length === 0;
      li.classList.add(ok ? 'verified' : 'broken');
      slot.append(ok ? badge('verified', '\\u2713 verified') : badge('broken', '\\u2717 broken: ' + plural(entry.findings.length, 'finding')));
      if (!ok) findingsSlot.append(findingList(entry.findings));
      if (entry.round !== null) fillRound(li, entry.round);
    });
  }

  function findingList(findings) {
    return el(
      'ul',
      { class: 'findings', 'data-testid': 'findings' },
      findings.map(function (f) {
        return el('li', { 'data-testid': 'finding', 'data-code': f.code }, [
          el('code', { text: f.code }),
          ' \\u2014 ' + f.where + ' \\u2014 ',
          el('span', { 'data-testid': 'finding-message', text: f.message }),
        ]);
      })
    );
  }

  function fillRound(li, r) {
    var members = clear(li.querySelector('.members-slot'));
    // The audit names no model when it could not read the manifest: then nothing of the round is known, not "none".
    if (r.model === null) {
      li.querySelector('[data-testid="dropouts"]').textContent = 'unknown';
      li.querySelector('[data-testid="epsilon"]').textContent = '\\u2014';
      members.append(
        el('p', { class: 'empty', text: 'The manifest could not be read: its cohort and update commitments are unknown.' })
      );
      return;
    }
    li.querySelector('[data-testid="dropouts"]').textContent =
      r.dropouts.length === 0
        ? 'none'
        : r.dropouts
            .map(function (d) {
              return short(d.account) + ' (' + d.stage + ')';
            })
            .join(', ');
    var p = r.privacy;
    li.querySelector('[data-testid="epsilon"]').textContent =
      p === null ? '\\u2014' : p.mechanism === 'none' ? 'no DP' : finite(p.epsilonSpent) ? String(p.epsilonSpent) : p.mechanism;
    var dropped = new Map(
      r.dropouts.map(function (d) {
        return [d.account, d.stage];
      })
    );
    build(members, {}, [
      el('h4', { text: 'Cohort (' + r.cohort.length + ')' }),
      el(
        'ul',
        { class: 'accounts' },
        r.cohort.map(function (a) {
          return el('li', { 'data-testid': 'cohort-member', class: 'mono' }, [
            a,
            dropped.has(a) ? ' \\u2014 dropped at ' + dropped.get(a) : null,
          ]);
        })
      ),
      el('h4', { text: 'Update commitments (' + r.updates.length + ')' }),
      el('table', {}, [
        el('thead', {}, [
          el('tr', {}, [
            el('th', { text: 'account' }),
            el('th', { text: 'update fid' }),
            el('th', { text: 'digest' }),
            el('th', { text: 'signature' }),
          ]),
        ]),
        el(
          'tbody',
          {},
          r.updates.map(function (u) {
            return el('tr', { 'data-testid': 'commitment' }, [
              el('td', { class: 'mono', text: u.account }),
              el('td', { class: 'mono', 'data-testid': 'commitment-fid', text: u.fid }),
              el('td', { class: 'mono', text: short(u.digest), title: u.digest }),
              el('td', { class: u.valid ? 'ok' : 'bad', text: u.valid ? '\\u2713 valid' : '\\u2717 invalid' }),
            ]);
          })
        ),
      ]),
      r.parent === null ? null : el('p', { class: 'small' }, ['parent manifest ', el('span', { class: 'mono', text: r.parent.fid })]),
    ]);
  }

  // ---- the plot ----------------------------------------------------------------------------------------------

  // Accuracy on a fixed 0-100 % axis (left), loss from 0 (right); one point per round that has the figure.
  function drawPlot(metrics) {
    var W = 720, H = 300, L = 64, R = 64, T = 40, B = 48;
    var x0 = L, x1 = W - R, y0 = H - B, y1 = T;
    var root = svg('svg', {
      viewBox: '0 0 ' + W + ' ' + H, width: W, height: H, role: 'img', 'data-testid': 'accuracy-plot',
      'font-family': 'system-ui, sans-serif', 'font-size': 11,
    }, [svg('title', { text: 'Accuracy and loss per round' })]);
    var acc = metrics.filter(function (m) { return finite(m.accuracy); });
    var loss = metrics.filter(function (m) { return finite(m.loss); });
    if (acc.length === 0 && loss.length === 0) {
      root.append(svg('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', fill: '#59636e', text: 'no finished round yet' }));
      return root;
    }
    var rMin = Infinity, rMax = -Infinity, lMax = 0;
    metrics.forEach(function (m) { rMin = Math.min(rMin, m.round); rMax = Math.max(rMax, m.round); });
    loss.forEach(function (m) { lMax = Math.max(lMax, m.loss); });
    var lossTop = niceCeil(lMax);
    function x(r) { return rMax === rMin ? (x0 + x1) / 2 : x0 + ((r - rMin) / (rMax - rMin)) * (x1 - x0); }
    function clamp(v) { return Math.min(1, Math.max(0, v)); }
    function yA(a) { return y0 - clamp(a) * (y0 - y1); }
    function yL(l) { return y0 - clamp(l / lossTop) * (y0 - y1); }
    function f(v) { return v.toFixed(1); }
    [0, 0.25, 0.5, 0.75, 1].forEach(function (t) {
      root.append(
        svg('line', { x1: x0, x2: x1, y1: f(yA(t)), y2: f(yA(t)), stroke: '#d1d9e0', 'stroke-dasharray': t === 0 ? null : '2 3' }),
        svg('text', { x: x0 - 8, y: f(yA(t)), dy: '0.32em', 'text-anchor': 'end', fill: '#1f6feb', text: String(t * 100) }),
        svg('text', { x: x1 + 8, y: f(yL(t * lossTop)), dy: '0.32em', fill: '#bc4c00', text: t === 0 ? '0' : String(Number((t * lossTop).toPrecision(3))) })
      );
    });
    root.append(
      svg('line', { x1: x0, x2: x0, y1: y1, y2: y0, stroke: '#59636e' }),
      svg('line', { x1: x1, x2: x1, y1: y1, y2: y0, stroke: '#59636e' }),
      svg('line', { x1: x0, x2: x1, y1: y0, y2: y0, stroke: '#59636e' })
    );
    roundTicks(rMin, rMax).forEach(function (r) {
      root.append(
        svg('line', { x1: f(x(r)), x2: f(x(r)), y1: y0, y2: y0 + 4, stroke: '#59636e' }),
        svg('text', { x: f(x(r)), y: y0 + 16, 'text-anchor': 'middle', fill: '#1f2328', text: String(r) })
      );
    });
    root.append(
      svg('text', { x: (x0 + x1) / 2, y: H - 10, 'text-anchor': 'middle', fill: '#1f2328', 'font-size': 12, text: 'round' }),
      svg('text', { transform: 'translate(16 ' + (y0 + y1) / 2 + ') rotate(-90)', 'text-anchor': 'middle', fill: '#1f6feb', 'font-size': 12, text: 'accuracy (%)' }),
      svg('text', { transform: 'translate(' + (W - 14) + ' ' + (y0 + y1) / 2 + ') rotate(90)', 'text-anchor': 'middle', fill: '#bc4c00', 'font-size': 12, text: 'loss' }),
      svg('line', { x1: x0, x2: x0 + 22, y1: 16, y2: 16, stroke: '#1f6feb', 'stroke-width': 2 }),
      svg('text', { x: x0 + 28, y: 16, dy: '0.32em', fill: '#1f2328', text: 'accuracy' }),
      svg('line', { x1: x0 + 100, x2: x0 + 122, y1: 16, y2: 16, stroke: '#bc4c00', 'stroke-width': 2, 'stroke-dasharray': '5 3' }),
      svg('text', { x: x0 + 128, y: 16, dy: '0.32em', fill: '#1f2328', text: 'loss' })
    );
    var radius = metrics.length > 60 ? 2 : 3.5;
    if (loss.length > 0) {
      root.append(svg('polyline', {
        fill: 'none', stroke: '#bc4c00', 'stroke-width': 1.5, 'stroke-dasharray': '5 3',
        points: loss.map(function (m) { return f(x(m.round)) + ',' + f(yL(m.loss)); }).join(' '),
      }));
      loss.forEach(function (m) {
        root.append(svg('circle', {
          'data-testid': 'loss-point', 'data-round': m.round, cx: f(x(m.round)), cy: f(yL(m.loss)), r: radius,
          fill: '#fff', stroke: '#bc4c00', 'stroke-width': 1.5,
        }, [svg('title', { text: 'round ' + m.round + ': loss ' + decimal(m.loss) })]));
      });
    }
    if (acc.length > 0) {
      root.append(svg('polyline', {
        fill: 'none', stroke: '#1f6feb', 'stroke-width': 2,
        points: acc.map(function (m) { return f(x(m.round)) + ',' + f(yA(m.accuracy)); }).join(' '),
      }));
      acc.forEach(function (m) {
        root.append(svg('circle', {
          'data-testid': 'plot-point', 'data-round': m.round, cx: f(x(m.round)), cy: f(yA(m.accuracy)), r: radius,
          fill: '#1f6feb',
        }, [svg('title', { text: 'round ' + m.round + ': accuracy ' + percent(m.accuracy) })]));
      });
    }
    return root;
  }
  function niceCeil(v) {
    if (!(v > 0)) return 1;
    var power = Math.pow(10, Math.floor(Math.log10(v)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * power >= v * (1 - 1e-12)) return steps[i] * power;
    return 10 * power;
  }
  function roundTicks(rMin, rMax) {
    var ticks = [];
    if (rMax - rMin <= 12) {
      for (var r = rMin; r <= rMax; r++) ticks.push(r);
      return ticks;
    }
    var rough = (rMax - rMin) / 10;
    var power = Math.pow(10, Math.floor(Math.log10(rough)));
    var step = Math.max(1, ([1, 2, 5, 10].find(function (k) { return k * power >= rough; }) || 10) * power);
    for (var t = Math.ceil(rMin / step) * step; t <= rMax; t += step) ticks.push(t);
    return ticks;
  }

  // ---- wiring ------------------------------------------------------------------------------------------------

  document.getElementById('reverify').addEventListener('click', function () {
    if (view.task !== null) runAudit(view.token);
  });
  window.addEventListener('hashchange', function () {
    var id = taskFromHash();
    if (id !== null && id !== view.task) selectTask(id);
  });
  api('v1/info').then(
    function (info) {
      document.getElementById('who').textContent = 'coordinator ' + info.account + ' \\u00b7 ailink ' + info.version;
    },
    function () {}
  );
  loadTasks().then(function () {
    var id = taskFromHash();
    if (id !== null) selectTask(id);
  });
})();
`;

const BODY = `
<header><h1>AI-LINK · lineage explorer</h1><span class="who" id="who"></span></header>
<div class="layout">
<nav class="panel" aria-label="tasks">
<h2>Tasks</h2>
<div class="error" id="tasks-error" hidden></div>
<ul class="tasks" id="task-list" data-testid="task-list"><li class="empty">Loading…</li></ul>
</nav>
<main class="panel">
<p class="empty" id="hint">Pick a task to see its rounds, their lineage and whether it verifies against the chain.</p>
<div class="error" id="task-error" data-testid="error" hidden></div>
<section id="task" hidden>
<h2 id="task-title" data-testid="task-title"></h2>
<p class="small" id="task-meta"></p>
<p class="small" id="attempt" data-testid="attempt" hidden></p>
<div class="verdict pending" id="task-verdict" data-testid="task-verdict"></div>
<div class="actions">
<button type="button" id="reverify" data-testid="reverify">Verify again</button>
<a id="audit-json" data-testid="audit-json" download="audit.json">Audit report (JSON)</a>
</div>
<h3>Accuracy and loss</h3>
<figure><div id="plot"></div><figcaption>The global model after each round, on the coordinator's held-out test data.</figcaption></figure>
<h3>Rounds</h3>
<ol class="timeline" id="timeline" data-testid="timeline"></ol>
<h3>Participants</h3>
<table><thead><tr><th>account</th><th>identity key</th><th>joined</th><th>last seen</th></tr></thead>
<tbody id="participants"></tbody></table>
</section>
</main>
</div>
`;

const sha256Base64 = (text: string) => createHash('sha256').update(text).digest('base64');

/** The page: inline style and script, whose hashes the Content-Security-Policy below names. */
export const EXPLORER_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>AI-LINK lineage explorer</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body>${BODY}<script>${SCRIPT}</script>
</body>
</html>
`;

/**
 * Only the page's own script and style run, it talks only to its own origin, and it cannot be framed: a string that
 * slipped past the script's text-only rendering would still find nothing to execute.
 */
export const EXPLORER_CSP = [
  "default-src 'none'",
  `script-src 'sha256-${sha256Base64(SCRIPT)}'`,
  `style-src 'sha256-${sha256Base64(STYLE)}'`,
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * Registers `GET /explorer` and `GET /explorer/` (hidden from the OpenAPI document: they are a page, not API). Call
 * inside the app's route scope; the page reads the API routes relative to where it is served.
 */
export function registerExplorer(app: FastifyInstance): void {
  for (const url of ['/explorer', '/explorer/'])
    app.get(url, { schema: { hide: true } }, (_request, reply) =>
      reply
        .header('content-type', 'text/html; charset=utf-8')
        .header('content-security-policy', EXPLORER_CSP)
        .header('x-content-type-options', 'nosniff')
        .header('referrer-policy', 'no-referrer')
        .header('cache-control', 'no-cache')
        .send(EXPLORER_HTML),
    );
}
