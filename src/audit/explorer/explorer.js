(() => {
  const base = location.pathname.replace(/explorer\/?$/, '');
  const SVG_NS = 'http://www.w3.org/2000/svg';
  // Whose view this is: 'coordinator' (the audited party serves the page from its own API) or 'auditor' (`ailink
  // audit serve`: the auditor's own index of the chain and its own fetches; nothing comes from the coordinator).
  const meta = document.querySelector('meta[name="ailink-explorer-view"]');
  const AUDITOR = meta !== null && meta.getAttribute('content') === 'auditor';
  const REFRESH_MS = AUDITOR ? 15000 : 5000;
  // token: which task selection is current; audits: which audit call is (a slow one must not overwrite a newer one).
  const view = { task: null, token: 0, timer: null, rounds: [], audits: 0 };

  function el(tag, attrs, children) {
    return build(document.createElement(tag), attrs, children);
  }
  function svg(tag, attrs, children) {
    return build(document.createElementNS(SVG_NS, tag), attrs, children);
  }
  function build(node, attrs, children) {
    Object.keys(attrs || {}).forEach((k) => {
      const v = attrs[k];
      if (v === undefined || v === null || v === false) return;
      if (k === 'text') node.textContent = String(v);
      else node.setAttribute(k, String(v));
    });
    (children || []).forEach((c) => {
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
    return s.length <= 12 ? s : `${s.slice(0, 8)}\u2026`;
  }
  function finite(v) {
    return typeof v === 'number' && Number.isFinite(v);
  }
  function percent(v) {
    return finite(v) ? `${(v * 100).toFixed(2)} %` : '\u2014';
  }
  function decimal(v) {
    return finite(v) ? v.toFixed(4) : '\u2014';
  }
  function when(ms) {
    return finite(ms) ? `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')} UTC` : '\u2014';
  }
  function plural(n, word) {
    return `${n} ${word}${n === 1 ? '' : 's'}`;
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
    const res = await fetch(base + path, { headers: { accept: 'application/json' } });
    let body = null;
    try {
      body = await res.json();
    } catch (_e) {
      body = null;
    }
    if (!res.ok) {
      // The API answers every refusal with a registered code; a proxy in front of it may not.
      const error = body?.error ? body.error : { code: `HTTP_${res.status}`, message: `HTTP ${res.status}` };
      throw new ApiError(error.code, res.status, error.message);
    }
    return body;
  }
  function taskPath(id, sub) {
    return `v1/tasks/${encodeURIComponent(id)}${sub ? `/${sub}` : ''}`;
  }

  function showError(where, err) {
    const box = document.getElementById(where);
    clear(box).hidden = false;
    box.append((err?.code ? `${err.code}: ` : '') + (err?.message ? err.message : String(err)));
  }

  // ---- tasks ----------------------------------------------------------------------------------------------

  async function loadTasks() {
    const list = document.getElementById('task-list');
    let tasks;
    try {
      tasks = await api('v1/tasks');
    } catch (err) {
      showError('tasks-error', err);
      return;
    }
    clear(list);
    if (tasks.length === 0) list.append(el('li', { class: 'empty', text: 'No task yet.' }));
    // Newest first: the one being run is the one people look for.
    tasks
      .slice()
      .reverse()
      .forEach((entry) => {
        const t = AUDITOR ? fromChainTask(entry) : entry;
        const button = el('button', { type: 'button', 'data-testid': 'task-item', 'data-task': t.id }, [
          el('span', { class: 'task-name', text: t.name }),
          el('span', { class: 'small' }, [
            el('span', { class: `pill ${t.status}`, text: t.status }),
            ` ${t.roundsDone}/${t.roundsPlanned} rounds \u00b7 `,
            el('span', { class: 'mono', text: t.id }),
          ]),
        ]);
        button.addEventListener('click', () => {
          location.hash = `task=${encodeURIComponent(t.id)}`;
        });
        list.append(el('li', {}, [button]));
      });
    markSelected();
  }
  function markSelected() {
    document.querySelectorAll('[data-testid="task-item"]').forEach((b) => {
      b.setAttribute('aria-current', String(b.getAttribute('data-task') === view.task));
    });
  }
  function taskFromHash() {
    const id = new URLSearchParams(location.hash.slice(1)).get('task');
    return id && id.length > 0 ? id : null;
  }

  // ---- one task ---------------------------------------------------------------------------------------------

  async function selectTask(id) {
    view.task = id;
    view.token += 1;
    clearTimeout(view.timer);
    markSelected();
    const token = view.token;
    const pane = document.getElementById('task');
    pane.hidden = false;
    document.getElementById('hint').hidden = true;
    document.getElementById('task-error').hidden = true;
    try {
      const data = await loadTask(id);
      if (token !== view.token) return;
      renderTask(data);
      if (data.audit) applyAudited(data.audit);
      else runAudit(token);
      if (data.detail.status === 'running') scheduleRefresh(token);
    } catch (err) {
      if (token !== view.token) return;
      showError('task-error', err);
    }
  }
  async function loadTask(id) {
    if (AUDITOR) return fromAudit(await api(taskPath(id, 'audit')));
    const all = await Promise.all([
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
    view.timer = setTimeout(async () => {
      if (token !== view.token) return;
      try {
        const data = await loadTask(view.task);
        if (token !== view.token) return;
        const grew = data.rounds.length !== view.rounds.length;
        if (grew) renderTask(data);
        else renderStatus(data);
        if (grew && data.audit) applyAudited(data.audit);
        else if (grew) runAudit(token);
        if (data.detail.status === 'running') scheduleRefresh(token);
        loadTasks();
      } catch (_err) {
        scheduleRefresh(token);
      }
    }, REFRESH_MS);
  }

  function renderTask(data) {
    const d = data.detail;
    view.rounds = data.rounds;
    document.getElementById('task-title').textContent = d.spec ? d.spec.name : d.id;
    const meta = clear(document.getElementById('task-meta'));
    const created = finite(d.createdBlock)
      ? `created at block ${d.createdBlock}`
      : `created ${when(d.createdAt)}`;
    meta.append(
      el('span', { class: `pill ${d.status}`, text: d.status }),
      d.spec
        ? ' ' +
            data.rounds.length +
            ' of ' +
            d.spec.rounds +
            ' rounds \u00b7 model ' +
            d.spec.model.name +
            ' \u00b7 ' +
            d.spec.strategy.name +
            ' \u00b7 SecAgg ' +
            (d.spec.secagg.enabled ? 'on' : 'off') +
            ' \u00b7 DP ' +
            (d.spec.dp ? `on (budget \u03b5 ${d.spec.dp.epsilonBudget})` : 'off') +
            ' \u00b7 ' +
            created
        : ` ${data.rounds.length} rounds anchored \u00b7 the task spec could not be read \u00b7 ${created}`,
      el('br'),
      'task ',
      el('span', { class: 'mono', 'data-testid': 'task-id', text: d.id }),
      ' \u00b7 spec digest ',
      el('span', { class: 'mono', text: d.digest }),
    );
    renderStatus(data);
    const json = document.getElementById('audit-json');
    json.setAttribute('href', base + taskPath(d.id, 'audit'));
    if (AUDITOR)
      document.getElementById('plot-caption').textContent =
        'The global model after each round, as its anchored manifest states it (the coordinator\u2019s held-out test data); the auditor checked the lineage, not these figures.';
    const plot = clear(document.getElementById('plot'));
    plot.append(drawPlot(data.metrics));
    renderTimeline(data.rounds);
    renderParticipants(data.participants);
  }
  function renderStatus(data) {
    const box = clear(document.getElementById('attempt'));
    const s = data.status;
    box.hidden = s === null || s === undefined;
    if (s !== null && s !== undefined)
      box.append(
        'Open: round ' +
          s.round +
          ' attempt ' +
          s.attempt +
          ', stage ' +
          s.phase +
          ', waiting for ' +
          plural(s.expecting.length, 'participant') +
          ' until ' +
          when(s.deadline),
      );
  }

  function renderTimeline(rounds) {
    const list = clear(document.getElementById('timeline'));
    if (rounds.length === 0) list.append(el('li', { class: 'empty', text: 'No round has finished yet.' }));
    rounds.forEach((r) => {
      const li = el('li', { 'data-testid': 'round-row', 'data-round': r.round, class: 'round' }, [
        el('div', { class: 'round-head' }, [
          el('span', { class: 'round-no', text: `Round ${r.round}` }),
          el('span', { class: 'badge-slot' }, [badge('pending', 'verifying\u2026')]),
          el('span', { class: 'small', text: when(r.finishedAt) }),
        ]),
        el('dl', { class: 'facts' }, [
          fact('accuracy', percent(r.accuracy), 'accuracy'),
          fact('loss', decimal(r.loss), 'loss'),
          fact('survivors', r.survivors === null ? '\u2014' : `${r.survivors}/${r.cohort}`, 'survivors'),
          fact('dropouts', '\u2026', 'dropouts'),
          fact('\u03b5', '\u2026', 'epsilon'),
          finite(r.seconds) ? fact('took', `${r.seconds.toFixed(1)} s`) : null,
          finite(r.bytes) ? fact('updates', `${(r.bytes / 1048576).toFixed(2)} MiB`) : null,
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
              r.attempt === null ? null : row2('attempt', String(r.attempt)),
            ]),
          ]),
          el('div', { class: 'members-slot' }, [
            el('p', { class: 'empty', text: 'Waiting for the audit\u2026' }),
          ]),
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
    return el('span', { class: `badge ${kind}`, 'data-testid': `badge-${kind}`, text: text, title: title });
  }

  function renderParticipants(participants) {
    const body = clear(document.getElementById('participants'));
    if (participants.length === 0)
      body.append(el('tr', {}, [el('td', { colspan: 4, class: 'empty', text: 'Nobody has joined yet.' })]));
    participants.forEach((p) => {
      body.append(
        el('tr', { 'data-testid': 'participant' }, [
          el('td', { class: 'mono', text: p.account }),
          el('td', { class: 'mono', text: short(p.identityKey), title: p.identityKey }),
          el('td', { text: finite(p.joinedBlock) ? `admitted at block ${p.joinedBlock}` : when(p.joinedAt) }),
          el('td', { text: when(p.lastSeen) }),
        ]),
      );
    });
  }

  // ---- the audit ---------------------------------------------------------------------------------------------

  async function runAudit(token) {
    const audit = ++view.audits;
    const verdict = clear(document.getElementById('task-verdict'));
    verdict.className = 'verdict pending';
    verdict.setAttribute('data-state', 'pending');
    verdict.append('Verifying the lineage against the chain and storage\u2026');
    document.querySelectorAll('[data-testid="round-row"] .badge-slot').forEach((slot) => {
      clear(slot).append(badge('pending', 'verifying\u2026'));
    });
    let report;
    try {
      // The auditor's server caches its audits briefly: "Verify again" asks it to run one now.
      report = await api(taskPath(view.task, 'audit') + (AUDITOR ? '?fresh=1' : ''));
    } catch (err) {
      if (token !== view.token || audit !== view.audits) return;
      return auditFailed(err);
    }
    if (token !== view.token || audit !== view.audits) return;
    if (!AUDITOR) return applyAudit(report);
    const data = fromAudit(report);
    renderTask(data);
    applyAudited(data.audit);
  }

  // ---- the auditor's view: everything from its own audit -------------------------------------------------------

  function fromChainTask(t) {
    return {
      id: t.id,
      name: t.name === null ? t.id : t.name,
      status: t.status,
      roundsDone: t.roundsAnchored,
      roundsPlanned: t.roundsPlanned === null ? '?' : t.roundsPlanned,
    };
  }
  // The shapes the coordinator's API has, filled only with what the auditor's report shows (null where it cannot know).
  function fromAudit(a) {
    const r = a.report;
    const chain = r.chain;
    const rounds = r.rounds.map((x) => {
      const read = x.model !== null;
      return {
        round: x.round,
        finishedAt: x.finishedAt,
        accuracy: x.metrics ? x.metrics.accuracy : null,
        loss: x.metrics ? x.metrics.loss : null,
        survivors: read ? x.survivors.length : null,
        cohort: read ? x.cohort.length : null,
        seconds: finite(x.startedAt) && finite(x.finishedAt) ? (x.finishedAt - x.startedAt) / 1000 : null,
        bytes: null,
        manifestFid: x.manifest.fid,
        manifestDigest: x.manifest.digest,
        modelFid: read ? x.model.fid : '\u2014',
        modelHash: read ? x.model.hash : '\u2014',
        attempt: null,
      };
    });
    return {
      audit: a,
      detail: {
        id: r.task,
        status: a.task.status,
        spec: r.spec,
        createdAt: null,
        createdBlock: chain ? chain.createdAt : null,
        digest: chain ? chain.specDigest : '\u2014',
      },
      rounds: rounds,
      metrics: rounds.map((x) => ({ round: x.round, accuracy: x.accuracy, loss: x.loss })),
      participants: (chain ? chain.admitted : []).map((p) => ({
        account: p.account,
        identityKey: p.identityKey,
        joinedAt: null,
        joinedBlock: p.admittedAt,
        lastSeen: null,
      })),
      status: null,
    };
  }
  function applyAudited(a) {
    applyAudit(a.report);
    const at = document.getElementById('verified-at');
    at.hidden = false;
    at.textContent =
      'Verified by the auditor ' +
      a.auditor +
      ' at ' +
      when(a.verifiedAt) +
      (a.cached ? ' (a cached audit: \u201cVerify again\u201d runs a new one)' : '');
  }

  function auditFailed(err) {
    const verdict = clear(document.getElementById('task-verdict'));
    verdict.className = 'verdict unknown';
    verdict.setAttribute('data-state', 'unknown');
    verdict.append(`Not verified: ${err.code ? `${err.code}: ` : ''}${err.message}`);
    document.querySelectorAll('[data-testid="round-row"] .badge-slot').forEach((slot) => {
      clear(slot).append(badge('unknown', 'not verified', err.message));
    });
  }

  function applyAudit(report) {
    const byRound = new Map();
    report.rounds.forEach((r) => {
      byRound.set(r.round, { round: r, findings: r.findings.slice() });
    });
    const taskFindings = [];
    // A task-level finding that names a round (a round missing on chain) belongs to that round's row.
    report.findings.forEach((f) => {
      if (f.round === null) {
        taskFindings.push(f);
        return;
      }
      const entry = byRound.get(f.round) || { round: null, findings: [] };
      entry.findings.push(f);
      byRound.set(f.round, entry);
    });
    let count = taskFindings.length;
    byRound.forEach((e) => {
      count += e.findings.length;
    });

    const verdict = clear(document.getElementById('task-verdict'));
    verdict.setAttribute('data-state', report.ok ? 'verified' : 'broken');
    if (report.ok) {
      verdict.className = 'verdict ok';
      verdict.append(
        '\u2713 Lineage verified: ' +
          plural(report.rounds.length, 'round') +
          ' checked against the chain at block ' +
          report.atBlock,
      );
    } else {
      verdict.className = 'verdict broken';
      verdict.append(
        `\u2717 ${count === 0 ? 'Not verified' : plural(count, 'finding')} at block ${report.atBlock}`,
      );
      if (taskFindings.length > 0) verdict.append(findingList(taskFindings));
    }

    document.querySelectorAll('[data-testid="round-row"]').forEach((li) => {
      const n = Number(li.getAttribute('data-round'));
      const entry = byRound.get(n);
      const slot = clear(li.querySelector('.badge-slot'));
      const findingsSlot = clear(li.querySelector('.findings-slot'));
      li.classList.remove('verified', 'broken');
      if (entry === undefined) {
        slot.append(badge('unknown', 'not audited', 'the audit did not cover this round'));
        return;
      }
      const ok = entry.round?.ok === true && entry.findings.every(breaksNothing);
      li.classList.add(ok ? 'verified' : 'broken');
      slot.append(
        ok
          ? badge('verified', '\u2713 verified')
          : badge('broken', `\u2717 broken: ${plural(entry.findings.length, 'finding')}`),
      );
      if (entry.findings.length > 0) findingsSlot.append(findingList(entry.findings));
      if (entry.round !== null) fillRound(li, entry.round);
    });
  }

  /** A storage note, not a break of the lineage: src/audit/types.ts `breaksLineage` lists the same codes. */
  function breaksNothing(finding) {
    return finding.code === 'MINER_STANDING';
  }

  function findingList(findings) {
    return el(
      'ul',
      { class: 'findings', 'data-testid': 'findings' },
      findings.map((f) =>
        el('li', { 'data-testid': 'finding', 'data-code': f.code }, [
          el('code', { text: f.code }),
          ` \u2014 ${f.where} \u2014 `,
          el('span', { 'data-testid': 'finding-message', text: f.message }),
        ]),
      ),
    );
  }

  function fillRound(li, r) {
    const members = clear(li.querySelector('.members-slot'));
    // The audit names no model when it could not read the manifest: then nothing of the round is known, not "none".
    if (r.model === null) {
      li.querySelector('[data-testid="dropouts"]').textContent = 'unknown';
      li.querySelector('[data-testid="epsilon"]').textContent = '\u2014';
      members.append(
        el('p', {
          class: 'empty',
          text: 'The manifest could not be read: its cohort and update commitments are unknown.',
        }),
      );
      return;
    }
    li.querySelector('[data-testid="dropouts"]').textContent =
      r.dropouts.length === 0 ? 'none' : r.dropouts.map((d) => `${short(d.account)} (${d.stage})`).join(', ');
    const p = r.privacy;
    li.querySelector('[data-testid="epsilon"]').textContent =
      p === null
        ? '\u2014'
        : p.mechanism === 'none'
          ? 'no DP'
          : finite(p.epsilonSpent)
            ? String(p.epsilonSpent)
            : p.mechanism;
    const dropped = new Map(r.dropouts.map((d) => [d.account, d.stage]));
    build(members, {}, [
      el('h4', { text: `Cohort (${r.cohort.length})` }),
      el(
        'ul',
        { class: 'accounts' },
        r.cohort.map((a) =>
          el('li', { 'data-testid': 'cohort-member', class: 'mono' }, [
            a,
            dropped.has(a) ? ` \u2014 dropped at ${dropped.get(a)}` : null,
          ]),
        ),
      ),
      el('h4', { text: `Update commitments (${r.updates.length})` }),
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
          r.updates.map((u) =>
            el('tr', { 'data-testid': 'commitment' }, [
              el('td', { class: 'mono', text: u.account }),
              el('td', { class: 'mono', 'data-testid': 'commitment-fid', text: u.fid }),
              el('td', { class: 'mono', text: short(u.digest), title: u.digest }),
              el('td', { class: u.valid ? 'ok' : 'bad', text: u.valid ? '\u2713 valid' : '\u2717 invalid' }),
            ]),
          ),
        ),
      ]),
      r.parent === null
        ? null
        : el('p', { class: 'small' }, [
            'parent manifest ',
            el('span', { class: 'mono', text: r.parent.fid }),
          ]),
    ]);
  }

  // ---- the plot ----------------------------------------------------------------------------------------------

  // Accuracy on a fixed 0-100 % axis (left), loss from 0 (right); one point per round that has the figure.
  function drawPlot(metrics) {
    const W = 720,
      H = 300,
      L = 64,
      R = 64,
      T = 40,
      B = 48;
    const x0 = L,
      x1 = W - R,
      y0 = H - B,
      y1 = T;
    const root = svg(
      'svg',
      {
        viewBox: `0 0 ${W} ${H}`,
        width: W,
        height: H,
        role: 'img',
        'data-testid': 'accuracy-plot',
        'font-family': 'system-ui, sans-serif',
        'font-size': 11,
      },
      [svg('title', { text: 'Accuracy and loss per round' })],
    );
    const acc = metrics.filter((m) => finite(m.accuracy));
    const loss = metrics.filter((m) => finite(m.loss));
    if (acc.length === 0 && loss.length === 0) {
      root.append(
        svg('text', {
          x: W / 2,
          y: H / 2,
          'text-anchor': 'middle',
          fill: '#59636e',
          text: 'no finished round yet',
        }),
      );
      return root;
    }
    let rMin = Infinity,
      rMax = -Infinity,
      lMax = 0;
    metrics.forEach((m) => {
      rMin = Math.min(rMin, m.round);
      rMax = Math.max(rMax, m.round);
    });
    loss.forEach((m) => {
      lMax = Math.max(lMax, m.loss);
    });
    const lossTop = niceCeil(lMax);
    function x(r) {
      return rMax === rMin ? (x0 + x1) / 2 : x0 + ((r - rMin) / (rMax - rMin)) * (x1 - x0);
    }
    function clamp(v) {
      return Math.min(1, Math.max(0, v));
    }
    function yA(a) {
      return y0 - clamp(a) * (y0 - y1);
    }
    function yL(l) {
      return y0 - clamp(l / lossTop) * (y0 - y1);
    }
    function f(v) {
      return v.toFixed(1);
    }
    [0, 0.25, 0.5, 0.75, 1].forEach((t) => {
      root.append(
        svg('line', {
          x1: x0,
          x2: x1,
          y1: f(yA(t)),
          y2: f(yA(t)),
          stroke: '#d1d9e0',
          'stroke-dasharray': t === 0 ? null : '2 3',
        }),
        svg('text', {
          x: x0 - 8,
          y: f(yA(t)),
          dy: '0.32em',
          'text-anchor': 'end',
          fill: '#1f6feb',
          text: String(t * 100),
        }),
        svg('text', {
          x: x1 + 8,
          y: f(yL(t * lossTop)),
          dy: '0.32em',
          fill: '#bc4c00',
          text: t === 0 ? '0' : String(Number((t * lossTop).toPrecision(3))),
        }),
      );
    });
    root.append(
      svg('line', { x1: x0, x2: x0, y1: y1, y2: y0, stroke: '#59636e' }),
      svg('line', { x1: x1, x2: x1, y1: y1, y2: y0, stroke: '#59636e' }),
      svg('line', { x1: x0, x2: x1, y1: y0, y2: y0, stroke: '#59636e' }),
    );
    roundTicks(rMin, rMax).forEach((r) => {
      root.append(
        svg('line', { x1: f(x(r)), x2: f(x(r)), y1: y0, y2: y0 + 4, stroke: '#59636e' }),
        svg('text', { x: f(x(r)), y: y0 + 16, 'text-anchor': 'middle', fill: '#1f2328', text: String(r) }),
      );
    });
    root.append(
      svg('text', {
        x: (x0 + x1) / 2,
        y: H - 10,
        'text-anchor': 'middle',
        fill: '#1f2328',
        'font-size': 12,
        text: 'round',
      }),
      svg('text', {
        transform: `translate(16 ${(y0 + y1) / 2}) rotate(-90)`,
        'text-anchor': 'middle',
        fill: '#1f6feb',
        'font-size': 12,
        text: 'accuracy (%)',
      }),
      svg('text', {
        transform: `translate(${W - 14} ${(y0 + y1) / 2}) rotate(90)`,
        'text-anchor': 'middle',
        fill: '#bc4c00',
        'font-size': 12,
        text: 'loss',
      }),
      svg('line', { x1: x0, x2: x0 + 22, y1: 16, y2: 16, stroke: '#1f6feb', 'stroke-width': 2 }),
      svg('text', { x: x0 + 28, y: 16, dy: '0.32em', fill: '#1f2328', text: 'accuracy' }),
      svg('line', {
        x1: x0 + 100,
        x2: x0 + 122,
        y1: 16,
        y2: 16,
        stroke: '#bc4c00',
        'stroke-width': 2,
        'stroke-dasharray': '5 3',
      }),
      svg('text', { x: x0 + 128, y: 16, dy: '0.32em', fill: '#1f2328', text: 'loss' }),
    );
    const radius = metrics.length > 60 ? 2 : 3.5;
    if (loss.length > 0) {
      root.append(
        svg('polyline', {
          fill: 'none',
          stroke: '#bc4c00',
          'stroke-width': 1.5,
          'stroke-dasharray': '5 3',
          points: loss.map((m) => `${f(x(m.round))},${f(yL(m.loss))}`).join(' '),
        }),
      );
      loss.forEach((m) => {
        root.append(
          svg(
            'circle',
            {
              'data-testid': 'loss-point',
              'data-round': m.round,
              cx: f(x(m.round)),
              cy: f(yL(m.loss)),
              r: radius,
              fill: '#fff',
              stroke: '#bc4c00',
              'stroke-width': 1.5,
            },
            [svg('title', { text: `round ${m.round}: loss ${decimal(m.loss)}` })],
          ),
        );
      });
    }
    if (acc.length > 0) {
      root.append(
        svg('polyline', {
          fill: 'none',
          stroke: '#1f6feb',
          'stroke-width': 2,
          points: acc.map((m) => `${f(x(m.round))},${f(yA(m.accuracy))}`).join(' '),
        }),
      );
      acc.forEach((m) => {
        root.append(
          svg(
            'circle',
            {
              'data-testid': 'plot-point',
              'data-round': m.round,
              cx: f(x(m.round)),
              cy: f(yA(m.accuracy)),
              r: radius,
              fill: '#1f6feb',
            },
            [svg('title', { text: `round ${m.round}: accuracy ${percent(m.accuracy)}` })],
          ),
        );
      });
    }
    return root;
  }
  function niceCeil(v) {
    if (!(v > 0)) return 1;
    const power = 10 ** Math.floor(Math.log10(v));
    const steps = [1, 2, 2.5, 5, 10];
    for (let i = 0; i < steps.length; i++) if (steps[i] * power >= v * (1 - 1e-12)) return steps[i] * power;
    return 10 * power;
  }
  function roundTicks(rMin, rMax) {
    const ticks = [];
    if (rMax - rMin <= 12) {
      for (let r = rMin; r <= rMax; r++) ticks.push(r);
      return ticks;
    }
    const rough = (rMax - rMin) / 10;
    const power = 10 ** Math.floor(Math.log10(rough));
    const step = Math.max(1, ([1, 2, 5, 10].find((k) => k * power >= rough) || 10) * power);
    for (let t = Math.ceil(rMin / step) * step; t <= rMax; t += step) ticks.push(t);
    return ticks;
  }

  // ---- wiring ------------------------------------------------------------------------------------------------

  document.getElementById('reverify').addEventListener('click', () => {
    if (view.task !== null) runAudit(view.token);
  });
  window.addEventListener('hashchange', () => {
    const id = taskFromHash();
    if (id !== null && id !== view.task) selectTask(id);
  });
  const whose = document.getElementById('whose');
  if (AUDITOR) {
    whose.className = 'whose auditor';
    whose.textContent =
      'Served by the auditor, not the coordinator: the tasks come from the auditor\u2019s own index of the chain, every badge from its own fetches and checks.';
  } else {
    whose.textContent =
      'The coordinator\u2019s own view: the coordinator being audited serves this page and computes its badges. For a view that does not belong to it, run `ailink audit serve`.';
  }
  api('v1/info').then(
    (info) => {
      document.getElementById('who').textContent = AUDITOR
        ? `auditor ${info.account} \u00b7 index at block ${info.atBlock} \u00b7 ailink ${info.version}`
        : `coordinator ${info.account} \u00b7 ailink ${info.version}`;
    },
    () => {},
  );
  loadTasks().then(() => {
    const id = taskFromHash();
    if (id !== null) selectTask(id);
  });
})();
