import { createHash } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditReport } from '../../src/audit/types.ts';
import { auditTask } from '../../src/audit/verify.ts';
import { EXPLORER_CSP } from '../../src/coordinator/explorer.ts';
import { buildApp } from '../../src/coordinator/http.ts';
import { accountsReady } from '../../src/shared/account.ts';
import { type Manifest, parseManifest } from '../../src/task/index.ts';
import { launchChromium, openWatchedPage } from '../browser.ts';
import { attachChainTwin } from './chain-twin.ts';
import { baseTask, makeAccount, makeParticipant, makeWorld, type World } from './harness.ts';

/**
 * The lineage explorer in a real browser (the Chromium that the npm package @sparticuz/chromium ships, see
 * test/browser.ts, driven by playwright-core) against the real app on a real socket, over a task the real coordinator
 * ran (harness twins for transport and storage), verified live by the real `auditTask` against the protocol state the
 * coordinator's chain calls produced.
 */

await accountsReady();

const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));
/** A task name written to run script if the page ever renders data as HTML. */
const HOSTILE_NAME = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>';
const INFO = {
  peerId: '12D3KooWExample',
  addrs: ['/ip4/127.0.0.1/tcp/4001'],
  account: makeAccount('coordinator').address,
  version: '0.0.0-test',
};
const short = (s: string) => `${s.slice(0, 8)}…`;
const sha256Hex = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

describe('lineage explorer (headless Chromium, the real app, the real audit)', () => {
  let world: World;
  let app: ReturnType<typeof buildApp>;
  let browser: Browser;
  let base: string;
  let task: string;
  let manifests: Manifest[];
  let dropout: string;
  let twin: ReturnType<typeof attachChainTwin>;
  const stop = new AbortController();
  // Five participants each wait on this signal in several places at once: more than Node's default warns about.
  setMaxListeners(0, stop.signal);

  beforeAll(async () => {
    browser = await launchChromium();

    // A real task: 3 rounds with SecAgg, participant e drops out of round 1 before sending its masked update.
    world = makeWorld();
    twin = attachChainTwin(world);
    const labels = ['a', 'b', 'c', 'd', 'e'];
    const accounts = labels.map((l) => makeAccount(l).address);
    const created = await world.coordinator.createTask(baseTask(accounts, { name: HOSTILE_NAME, rounds: 3 }));
    task = created.id;
    const members = labels.map((l, i) =>
      makeParticipant(twin.storingAs(accounts[i]!), task, l, {
        ...(l === 'e' ? { dropAt: { round: 1, stage: 'masked' as const } } : {}),
      }),
    );
    dropout = accounts[4]!;
    world.coordinator.start();
    const runs = members.map((m) => m.participant.run(stop.signal));
    await world.coordinator.finished(task);
    stop.abort();
    await Promise.allSettled(runs);
    twin.recordObjects();
    manifests = await Promise.all(
      world.ledger.anchored(task).map(async (r) => parseManifest(await world.objects.get(r.manifest))),
    );

    app = buildApp({
      coordinator: world.coordinator,
      info: () => INFO,
      nonces: world.store.requestNonces,
      audit: (id, round) =>
        auditTask(
          { state: twin.state, atBlock: twin.atBlock(), fetch: (fid) => world.objects.get(fid) },
          id,
          round === undefined ? {} : { round },
        ),
    });
    base = await app.listen({ host: '127.0.0.1', port: 0 });
  }, 120_000);

  afterAll(async () => {
    stop.abort();
    await browser?.close();
    await app?.close();
    await world?.coordinator.stop();
    world?.store.close();
  });

  /** A fresh page that records every script error and console error (a CSP violation is one). */
  const open = (path: string) => openWatchedPage(browser, `${base}${path}`);

  const row = (page: Page, round: number) => page.locator(`[data-testid="round-row"][data-round="${round}"]`);

  it('the task list, then for the task: one row and one plot point per round, the dropout, the commitments, every round verified', async () => {
    expect(manifests.map((m) => m.round)).toEqual([0, 1, 2]);
    expect(manifests[1]!.dropouts).toEqual([{ account: dropout, stage: 'masked' }]);

    const { page, errors } = await open('/explorer');
    // Whose view this is: the audited party's own, and where an independent one comes from.
    expect(await page.getByTestId('whose').textContent()).toContain('The coordinator’s own view');
    expect(await page.getByTestId('whose').textContent()).toContain('ailink audit serve');
    await page.getByTestId('who').filter({ hasText: INFO.account }).waitFor();
    expect(await page.getByTestId('who').textContent()).toBe(
      `coordinator ${INFO.account} · ailink ${INFO.version}`,
    );
    const item = page.getByTestId('task-item');
    await item.first().waitFor();
    expect(await item.count()).toBe(1);
    // The crafted name is shown as text and ran nothing.
    expect(await item.locator('.task-name').textContent()).toBe(HOSTILE_NAME);
    await item.click();

    await page.getByTestId('task-title').filter({ hasText: 'window.__pwned' }).waitFor();
    expect(await page.getByTestId('task-title').textContent()).toBe(HOSTILE_NAME);
    expect(await page.getByTestId('task-id').textContent()).toBe(task);
    await row(page, 2).waitFor();
    expect(await page.getByTestId('round-row').count()).toBe(3);

    const points = page.locator('[data-testid="accuracy-plot"] [data-testid="plot-point"]');
    expect(await points.count()).toBe(3);
    expect(await points.evaluateAll((els) => els.map((e) => e.getAttribute('data-round')))).toEqual([
      '0',
      '1',
      '2',
    ]);
    expect(await page.locator('[data-testid="accuracy-plot"] [data-testid="loss-point"]').count()).toBe(3);

    // The live audit: every round verified, and the task as a whole.
    await page.locator('[data-testid="task-verdict"][data-state]:not([data-state="pending"])').waitFor();
    expect(await page.getByTestId('task-verdict').getAttribute('data-state')).toBe('verified');
    for (const n of [0, 1, 2]) {
      expect(await row(page, n).getByTestId('badge-verified').count(), `round ${n}`).toBe(1);
      expect(await row(page, n).getByTestId('badge-broken').count(), `round ${n}`).toBe(0);
    }

    // Round 1: 4 of 5 survived; e dropped at the masked stage; ε is not spent (no DP in this task).
    const one = row(page, 1);
    expect(await one.getByTestId('survivors').textContent()).toBe('4/5');
    expect(await one.getByTestId('dropouts').textContent()).toBe(`${short(dropout)} (masked)`);
    expect(await one.getByTestId('epsilon').textContent()).toBe('no DP');
    expect(await row(page, 0).getByTestId('dropouts').textContent()).toBe('none');
    // Its cohort and each survivor's commitment (account + update fid), as the anchored manifest names them.
    await one.locator('summary').click();
    expect(await one.getByTestId('cohort-member').count()).toBe(5);
    const commitments = await one
      .getByTestId('commitment')
      .evaluateAll((rows) =>
        rows.map((r) => [r.children[0]!.textContent, r.children[1]!.textContent, r.children[3]!.textContent]),
      );
    expect(commitments).toEqual(manifests[1]!.updates.map((u) => [u.account, u.fid, '✓ valid']));
    expect(commitments.map(([account]) => account)).not.toContain(dropout);

    expect(await page.evaluate(() => (window as { __pwned?: number }).__pwned)).toBeUndefined();
    expect(errors).toEqual([]);
    await page.close();
  });

  it('a corrupted manifest byte in storage: "Verify again" marks round 1 broken with the finding, the others stay verified', async () => {
    // Opened by its link this time (#task=…), as an auditor would share it.
    const { page, errors } = await open(`/explorer/#task=${encodeURIComponent(task)}`);
    await page.locator('[data-testid="task-verdict"][data-state="verified"]').waitFor();

    const anchored = world.ledger.anchored(task)[1]!;
    const stored = world.objects.objects.get(anchored.manifest)!;
    stored[0] = stored[0]! ^ 0x01; // `{` becomes `z`: the bytes no longer hash to the anchored digest
    await page.getByTestId('reverify').click();

    await row(page, 1).getByTestId('badge-broken').waitFor();
    const findings = await row(page, 1)
      .getByTestId('finding')
      .evaluateAll((items) =>
        items.map((li) => ({
          code: li.getAttribute('data-code'),
          message: li.querySelector('[data-testid="finding-message"]')!.textContent,
        })),
      );
    expect(findings).toEqual([
      {
        code: 'MANIFEST_DIGEST',
        message: `manifest ${short(anchored.manifest)} hashes to ${sha256Hex(stored)}, the chain anchored ${anchored.digest}`,
      },
    ]);
    expect(await row(page, 1).getByTestId('badge-broken').textContent()).toBe('✗ broken: 1 finding');
    for (const n of [0, 2])
      expect(await row(page, n).getByTestId('badge-verified').count(), `round ${n}`).toBe(1);
    expect(await page.getByTestId('task-verdict').getAttribute('data-state')).toBe('broken');
    // What the unreadable manifest said is no longer shown as fact.
    expect(await row(page, 1).getByTestId('dropouts').textContent()).toBe('unknown');
    expect(await row(page, 1).getByTestId('commitment').count()).toBe(0);

    mkdirSync(ARTIFACTS, { recursive: true });
    await row(page, 1).locator('summary').click();
    await page.screenshot({ path: join(ARTIFACTS, 'explorer.png'), fullPage: true });
    expect(errors).toEqual([]);
    await page.close();
  });
});

describe('the explorer and audit routes (inject)', () => {
  let world: World;
  const calls: { task: string; round: number | undefined }[] = [];
  const report = (task: string): AuditReport => ({
    task,
    chain: null,
    spec: null,
    code: null,
    rounds: [],
    findings: [
      { code: 'TASK_NOT_ON_CHAIN', round: null, where: 'task', message: `no task ${task} on chain` },
    ],
    ok: false,
    atBlock: 1,
  });

  beforeAll(() => {
    world = makeWorld();
  });
  afterAll(async () => {
    await world.coordinator.stop();
    world.store.close();
  });

  const appWith = (audit?: (task: string, round?: number) => Promise<AuditReport>) =>
    buildApp({
      coordinator: world.coordinator,
      info: () => INFO,
      nonces: world.store.requestNonces,
      ...(audit ? { audit } : {}),
    });

  it('serves the page at /explorer and /explorer/ with a policy that allows only its own script, style and origin', async () => {
    const app = appWith();
    for (const url of ['/explorer', '/explorer/']) {
      const res = await app.inject({ method: 'GET', url });
      expect(res.statusCode, url).toBe(200);
      expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
      expect(res.headers['content-security-policy']).toBe(EXPLORER_CSP);
      expect(res.body).toMatch(/^<!doctype html>/);
      // Self-contained: no external script, stylesheet, icon or font (the icon is an empty data: URL, so the
      // browser does not ask for /favicon.ico either).
      expect(res.body).not.toMatch(/<script[^>]+src=|<link(?![^>]+href="data:)|@import|url\(/);
      expect(res.body.match(/https?:\/\/[^'"\s]+/g)).toEqual(['http://www.w3.org/2000/svg']);
    }
    expect(EXPLORER_CSP).not.toContain('unsafe-inline');
    const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json<{
      paths: Record<string, unknown>;
    }>();
    expect(Object.keys(doc.paths)).toContain('/v1/tasks/{id}/audit');
    expect(Object.keys(doc.paths).filter((p) => p.startsWith('/explorer'))).toEqual([]);
    await app.close();
  });

  it('GET /v1/tasks/:id/audit: the report; 404 for an unknown task; 400 for a bad round; 503 without an auditor', async () => {
    const created = await world.coordinator.createTask(
      baseTask(['a', 'b', 'c'].map((l) => makeAccount(l).address)),
    );
    const app = appWith(async (task, round) => {
      calls.push({ task, round });
      return report(task);
    });
    const ok = await app.inject({ method: 'GET', url: `/v1/tasks/${created.id}/audit?round=2` });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toEqual(report(created.id));
    expect(calls).toEqual([{ task: created.id, round: 2 }]);
    await app.inject({ method: 'GET', url: `/v1/tasks/${created.id}/audit` });
    expect(calls.at(-1)).toEqual({ task: created.id, round: undefined });

    const unknown = await app.inject({ method: 'GET', url: '/v1/tasks/nope-000000000000/audit' });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error.code).toBe('TASK_NOT_FOUND');
    for (const bad of ['x', '-1', '1.5', '']) {
      const res = await app.inject({ method: 'GET', url: `/v1/tasks/${created.id}/audit?round=${bad}` });
      expect(res.statusCode, bad).toBe(400);
      expect(res.json().error.code).toBe('INVALID_INPUT');
    }
    expect(calls).toHaveLength(2);
    await app.close();

    const without = appWith();
    const res = await without.inject({ method: 'GET', url: `/v1/tasks/${created.id}/audit` });
    expect(res.statusCode).toBe(503);
    expect(res.json()).toEqual({ error: { code: 'AUDIT_UNAVAILABLE', message: expect.any(String) } });
    await without.close();
  });
});
