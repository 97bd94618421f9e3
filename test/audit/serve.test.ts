import { createHash } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { mkdirSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AuditorAuditSchema,
  type AuditorExplorer,
  AuditorInfoSchema,
  AuditorTaskSchema,
  type AuditorView,
  explorerPage,
  serveAuditorExplorer,
} from '../../src/audit/index.ts';
import { taskOf } from '../../src/chain/index.ts';
import { taskKey } from '../../src/chain/pallets/provenance.ts';
import { accountsReady } from '../../src/shared/account.ts';
import { AilinkError } from '../../src/shared/errors.ts';
import { type Manifest, parseManifest } from '../../src/task/index.ts';
import { launchChromium, openWatchedPage } from '../browser.ts';
import { attachChainTwin } from '../coordinator/chain-twin.ts';
import { baseTask, makeAccount, makeParticipant, makeWorld, type World } from '../coordinator/harness.ts';
import { buildLineage, type LineageFixture } from './fixture.ts';

/**
 * `ailink audit serve`'s server in a real browser (the Chromium of @sparticuz/chromium, as the coordinator's explorer
 * test) over a task the real coordinator ran (the in-memory twins of test/coordinator: transport, storage, and the
 * chain twin that replays every call through the real protocol rules), re-verified by the server's real `auditTask`
 * over that chain state, recomputation included. The coordinator has stopped and never served HTTP: the task's
 * endpoint on chain points at a tripwire server that counts every request, and must count none. The route tests use
 * the audit tests' lineage fixture (the real rules on an in-memory state; it carries no recompute material, so its
 * reports hold AGGREGATE_MATERIAL findings, which these tests do not look at).
 */

await accountsReady();

const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));
const short = (s: string) => `${s.slice(0, 8)}…`;
const sha256Hex = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** The auditor's session as the server sees it, over the fixture's chain state and objects. */
function viewOf(f: LineageFixture, account: string, hooks: { sync?: AuditorView['sync'] } = {}) {
  let fetches = 0;
  const view: AuditorView = {
    account,
    state: f.state,
    height: () => f.h.block,
    sync: hooks.sync ?? (async () => {}),
    async fetch(fid) {
      fetches += 1;
      const bytes = f.objects.get(fid);
      if (bytes === undefined) throw new AilinkError('OBJECT_NOT_FOUND', `no object ${fid}`);
      return bytes.slice();
    },
  };
  return { view, fetches: () => fetches };
}

describe('audit serve: the explorer from the auditor’s own view (headless Chromium, the real audit)', () => {
  let world: World;
  let twin: ReturnType<typeof attachChainTwin>;
  let task: string;
  let spec: { name: string; rounds: number };
  let manifests: Manifest[];
  let browser: Browser;
  let explorer: AuditorExplorer;
  let tripwire: Server;
  const coordinatorHits: string[] = [];
  const AUDITOR = makeAccount('auditor').address;
  const stop = new AbortController();
  setMaxListeners(0, stop.signal);

  beforeAll(async () => {
    browser = await launchChromium();
    // A real task, as the coordinator explorer's test runs it: the real coordinator and participants (harness twins
    // for transport and storage, the chain twin replaying every call through the real protocol rules), 3 rounds with
    // SecAgg, e dropping out of round 1. Then the coordinator stops; its HTTP API is never built.
    world = makeWorld();
    twin = attachChainTwin(world);
    const labels = ['a', 'b', 'c', 'd', 'e'];
    const accounts = labels.map((l) => makeAccount(l).address);
    const created = await world.coordinator.createTask(
      baseTask(accounts, { name: '<img src=x onerror="window.__pwned=1">', rounds: 3 }),
    );
    task = created.id;
    spec = { name: created.spec.name, rounds: created.spec.rounds };
    const members = labels.map((l, i) =>
      makeParticipant(twin.storingAs(accounts[i]!), task, l, {
        ...(l === 'e' ? { dropAt: { round: 1, stage: 'masked' as const } } : {}),
      }),
    );
    world.coordinator.start();
    const runs = members.map((m) => m.participant.run(stop.signal));
    await world.coordinator.finished(task);
    stop.abort();
    await Promise.allSettled(runs);
    await world.coordinator.stop();
    twin.recordObjects();
    manifests = await Promise.all(
      world.ledger.anchored(task).map(async (r) => parseManifest(await world.objects.get(r.manifest))),
    );

    // The coordinator's HTTP as the chain announces it: a tripwire, so any request to it is seen.
    tripwire = createServer((req, res) => {
      coordinatorHits.push(`${req.method} ${req.url}`);
      res.writeHead(500).end();
    });
    await new Promise<void>((r) => tripwire.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(tripwire.address() as AddressInfo).port}`;
    const info = taskOf(twin.state, task)!;
    twin.state.apply([
      {
        key: taskKey(task),
        value: {
          ...info,
          endpoint: { url, peerId: '12D3KooWExample', addrs: ['/ip4/127.0.0.1/tcp/4001'], at: 1 },
        },
      },
    ]);
    expect(taskOf(twin.state, task)?.endpoint?.url).toBe(url);

    const view: AuditorView = {
      account: AUDITOR,
      state: twin.state,
      height: () => twin.atBlock(),
      sync: async () => {},
      fetch: (fid) => world.objects.get(fid),
    };
    explorer = await serveAuditorExplorer(view, { host: '127.0.0.1', port: 0 }, { version: '0.0.0-test' });
  }, 120_000);

  afterAll(async () => {
    stop.abort();
    await browser?.close();
    await explorer?.close();
    await new Promise((r) => tripwire?.close(r));
    world?.store.close();
  });

  const row = (page: Page, round: number) => page.locator(`[data-testid="round-row"][data-round="${round}"]`);

  it('says whose view it is, lists the task from the chain, verifies every round itself; the coordinator is never contacted', async () => {
    const { page, errors } = await openWatchedPage(browser, explorer.url);
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url()));

    expect(await page.getByTestId('whose').textContent()).toContain(
      'Served by the auditor, not the coordinator',
    );
    await page.getByTestId('who').filter({ hasText: AUDITOR }).waitFor();
    expect(await page.getByTestId('who').textContent()).toBe(
      `auditor ${AUDITOR} · index at block ${twin.atBlock()} · ailink 0.0.0-test`,
    );

    const item = page.getByTestId('task-item');
    await item.first().waitFor();
    expect(await item.count()).toBe(1);
    // The name, from the spec the chain's digest pins, shown as text: it ran nothing.
    expect(await item.locator('.task-name').textContent()).toBe(spec.name);
    expect(await item.textContent()).toContain(`3/${spec.rounds} rounds`);
    await item.click();

    await page.locator('[data-testid="task-verdict"][data-state="verified"]').waitFor();
    expect(await page.getByTestId('task-title').textContent()).toBe(spec.name);
    expect(await page.getByTestId('task-id').textContent()).toBe(task);
    expect(await page.getByTestId('round-row').count()).toBe(3);
    for (const n of [0, 1, 2]) {
      expect(await row(page, n).getByTestId('badge-verified').count(), `round ${n}`).toBe(1);
      const m = manifests[n]!;
      expect(await row(page, n).getByTestId('survivors').textContent()).toBe(
        `${m.survivors.length}/${m.cohort.length}`,
      );
    }
    expect(await page.locator('[data-testid="accuracy-plot"] [data-testid="plot-point"]').count()).toBe(3);
    expect(await page.getByTestId('verified-at').textContent()).toMatch(
      new RegExp(`^Verified by the auditor ${AUDITOR} at \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d UTC$`),
    );
    // The commitments, as the anchored manifest names them.
    await row(page, 1).locator('summary').click();
    const commitments = await row(page, 1)
      .getByTestId('commitment')
      .evaluateAll((rows) => rows.map((r) => [r.children[0]!.textContent, r.children[1]!.textContent]));
    expect(commitments).toEqual(manifests[1]!.updates.map((u) => [u.account, u.fid]));
    expect(await row(page, 1).getByTestId('dropouts').textContent()).toBe(
      `${short(makeAccount('e').address)} (masked)`,
    );
    expect(await page.getByTestId('participant').count()).toBe(5);
    expect(await page.evaluate(() => (window as { __pwned?: number }).__pwned)).toBeUndefined();

    // Nothing but the auditor's own origin was asked, and the coordinator's announced HTTP saw nothing.
    expect(requests.length).toBeGreaterThan(0);
    for (const r of requests) expect(r.startsWith(explorer.url), r).toBe(true);
    expect(coordinatorHits).toEqual([]);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('a corrupted manifest in storage: "Verify again" runs a new audit and marks round 1 broken', async () => {
    const { page, errors } = await openWatchedPage(
      browser,
      `${explorer.url}#task=${encodeURIComponent(task)}`,
    );
    await page.locator('[data-testid="task-verdict"][data-state="verified"]').waitFor();
    const anchored = world.ledger.anchored(task)[1]!;
    const stored = world.objects.objects.get(anchored.manifest)!;
    const original = stored.slice();
    stored[0] = stored[0]! ^ 0x01;
    try {
      await page.getByTestId('reverify').click();
      await row(page, 1).getByTestId('badge-broken').waitFor();
      const findings = await row(page, 1)
        .getByTestId('finding')
        .evaluateAll((items) =>
          items.map((li) => [
            li.getAttribute('data-code'),
            li.querySelector('[data-testid="finding-message"]')!.textContent,
          ]),
        );
      expect(findings).toContainEqual([
        'MANIFEST_DIGEST',
        `manifest ${short(anchored.manifest)} hashes to ${sha256Hex(stored)}, the chain anchored ${anchored.digest}`,
      ]);
      expect(await page.getByTestId('task-verdict').getAttribute('data-state')).toBe('broken');
      expect(await page.getByTestId('verified-at').textContent()).not.toContain('cached');
      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: join(ARTIFACTS, 'audit-serve.png'), fullPage: true });
    } finally {
      stored.set(original);
    }
    expect(coordinatorHits).toEqual([]);
    expect(errors).toEqual([]);
    await page.close();
  });
});

describe('audit serve: routes, refusals, cache and deadlines', () => {
  let f: LineageFixture;
  const servers: AuditorExplorer[] = [];
  beforeAll(() => {
    f = buildLineage({ rounds: 2, label: 'serve-routes' });
  });
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.close()));
  });
  const start = async (
    view: AuditorView,
    options: Partial<Parameters<typeof serveAuditorExplorer>[2]> = {},
  ) => {
    const s = await serveAuditorExplorer(view, { host: '127.0.0.1', port: 0 }, { version: 'v', ...options });
    servers.push(s);
    return s;
  };
  const get = async (s: AuditorExplorer, path: string) => {
    const res = await fetch(new URL(path, s.url));
    // biome-ignore lint/suspicious/noExplicitAny: the replies' several JSON shapes, read field by field
    const body = (await res.json()) as Record<string, any>;
    return { status: res.status, headers: res.headers, body };
  };

  it('the page with its own strict policy; info; the task list; the audit cached until fresh=1', async () => {
    let t = 1_000_000;
    const { view, fetches } = viewOf(f, 'auditor-a');
    const s = await start(view, { now: () => t, cacheMs: 30_000 });
    for (const path of ['', 'explorer', 'explorer/']) {
      const res = await fetch(new URL(path, s.url));
      expect(res.status, path).toBe(200);
      expect(res.headers.get('content-security-policy')).toBe(explorerPage('auditor').csp);
      expect(await res.text()).toContain('<meta name="ailink-explorer-view" content="auditor">');
    }
    expect(explorerPage('auditor').csp).not.toContain('unsafe-inline');
    expect((await get(s, 'v1/info')).body).toEqual({
      role: 'auditor',
      account: 'auditor-a',
      atBlock: f.h.block,
      task: null,
      version: 'v',
    });
    const list = await get(s, 'v1/tasks');
    expect(list.body).toEqual([
      {
        id: f.task,
        name: f.spec.name,
        coordinator: f.coordinator.address,
        specDigest: expect.any(String),
        createdAt: expect.any(Number),
        roundsAnchored: 2,
        roundsPlanned: f.spec.rounds,
        status: f.spec.rounds <= 2 ? 'finished' : 'running',
      },
    ]);

    const first = await get(s, `v1/tasks/${f.task}/audit`);
    expect(first.status).toBe(200);
    // Each reply is what the wire schemas (src/audit/schema.ts) describe.
    expect(() => AuditorAuditSchema.parse(first.body)).not.toThrow();
    expect(() => AuditorTaskSchema.array().parse(list.body)).not.toThrow();
    const info = (await get(s, 'v1/info')).body;
    expect(() => AuditorInfoSchema.parse(info)).not.toThrow();
    expect(first.body).toMatchObject({ auditor: 'auditor-a', cached: false, verifiedAt: t });
    expect(first.body.report.task).toBe(f.task);
    expect(first.body.report.rounds).toHaveLength(2);
    const after = fetches();
    t += 10_000;
    expect((await get(s, `v1/tasks/${f.task}/audit`)).body).toMatchObject({
      cached: true,
      verifiedAt: 1_000_000,
    });
    expect(fetches()).toBe(after);
    const fresh = await get(s, `v1/tasks/${f.task}/audit?fresh=1`);
    expect(fresh.body).toMatchObject({ cached: false, verifiedAt: t });
    expect(fetches()).toBeGreaterThan(after);
    t += 31_000;
    expect((await get(s, `v1/tasks/${f.task}/audit`)).body.cached).toBe(false);
  });

  it('bad input: unknown task 404 TASK_NOT_FOUND, malformed ids and queries 400 INVALID_INPUT, other paths 404', async () => {
    const s = await start(viewOf(f, 'auditor-b').view);
    const unknown = await get(s, 'v1/tasks/no-such-task-000000000000/audit');
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('TASK_NOT_FOUND');
    for (const bad of ['bad%20id', 'x'.repeat(65), '%E0%A4%A', '..%2F..', '']) {
      const res = await get(s, `v1/tasks/${bad}/audit`);
      expect(res.status, bad).toBe(400);
      expect(res.body.error.code, bad).toBe('INVALID_INPUT');
    }
    for (const q of ['round=1', 'fresh=yes', 'fresh=1&x=2']) {
      const res = await get(s, `v1/tasks/${f.task}/audit?${q}`);
      expect(res.status, q).toBe(400);
      expect(res.body.error.code, q).toBe('INVALID_INPUT');
    }
    const other = await get(s, 'v1/tasks/x/rounds');
    expect(other.status).toBe(404);
    expect(other.body.error.code).toBe('NOT_FOUND');
    const post = await fetch(new URL('v1/tasks', s.url), { method: 'POST' });
    expect(post.status).toBe(404);

    // Only the host names it was given: a rebinding page's Host is refused.
    const named = await start(viewOf(f, 'auditor-h').view, { hosts: ['localhost', '127.0.0.1', '::1'] });
    expect((await get(named, 'v1/info')).status).toBe(200);
    const rebound = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(new URL('v1/tasks', named.url), { headers: { host: 'evil.example:80' } }, (res) => {
        let body = '';
        res.on('data', (c) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end();
    });
    expect(rebound.status).toBe(421);
    expect(JSON.parse(rebound.body).error.code).toBe('HOST_NOT_ALLOWED');

    // --task: only that task is listed and audited.
    const one = await start(viewOf(f, 'auditor-c').view, { task: 'another-task-000000000000' });
    expect((await get(one, 'v1/tasks')).body).toEqual([]);
    const refused = await get(one, `v1/tasks/${f.task}/audit`);
    expect(refused.status).toBe(404);
    expect(refused.body.error.code).toBe('TASK_NOT_FOUND');
    expect(refused.body.error.message).toContain('--task');
  });

  it('every remote step has a deadline: an index that never catches up is a 504 TIMEOUT, a fetch that hangs a finding', async () => {
    const stuck = viewOf(f, 'auditor-d', {
      sync: (signal) =>
        new Promise((_, reject) =>
          signal.addEventListener('abort', () => reject(signal.reason), { once: true }),
        ),
    }).view;
    const s = await start(stuck, { syncDeadlineMs: 200 });
    const res = await get(s, `v1/tasks/${f.task}/audit`);
    expect(res.status).toBe(504);
    expect(res.body.error.code).toBe('TIMEOUT');
    expect((await get(s, 'v1/tasks')).status).toBe(504);

    const hanging: AuditorView = {
      ...viewOf(f, 'auditor-e').view,
      fetch: (_fid, { signal }) =>
        new Promise((_, reject) =>
          signal.addEventListener('abort', () => reject(signal.reason), { once: true }),
        ),
    };
    const h = await start(hanging, { objectDeadlineMs: 200 });
    const audit = await get(h, `v1/tasks/${f.task}/audit`);
    expect(audit.status).toBe(200);
    expect(audit.body.report.ok).toBe(false);
    expect(
      audit.body.report.rounds.flatMap((r: { findings: { code: string }[] }) =>
        r.findings.map((x) => x.code),
      ),
    ).toContain('OBJECT_UNAVAILABLE');
    // The list's names are read under the same deadline: the task is listed, nameless.
    const list = await get(h, 'v1/tasks');
    expect(list.body.map((t: { id: string }) => t.id)).toEqual([f.task]);
  }, 30_000);
});
