import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { diskUploadStore } from '../../src/gateway/multipart.ts';
import { buildS3App } from '../../src/gateway/s3.ts';
import { systemRandom } from '../../src/shared/clock.ts';
import { launchChromium, openWatchedPage } from '../browser.ts';
import { s3Twins } from './s3-twins.ts';

/**
 * The drive page in a real browser (the Chromium that the npm package @sparticuz/chromium ships, see test/browser.ts,
 * driven by playwright-core) against the real S3 app on a real socket, over in-memory twins of the storage client and
 * the namespace (test/gateway/s3-twins.ts). Every action goes through the page's own controls, and every request it
 * makes is a real SigV4-signed S3 request that the gateway verifies.
 */

const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));
const CREDENTIALS = {
  accessKeyId: 'AKALBROWSERTEST01',
  secretAccessKey: 'the-gateway-secret-0123456789abcdefgh',
};
const REGION = 'ailink';
/** Compared by digest: vitest's deep equality of two 3 MiB buffers takes tens of seconds. */
const digest = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
/**
 * When a CopyObject turns to S3's keep-alive (200 at once, the result or an <Error> document later). Short, so that
 * a copy the storage twin stalls answers 200 and then its error, as a long copy that fails does.
 */
const KEEP_ALIVE_MS = 200;

describe('the drive page (headless Chromium, the real S3 app)', () => {
  let app: FastifyInstance;
  let browser: Browser;
  let base: string;
  let uploadsDir: string;
  let twins: ReturnType<typeof s3Twins>;
  /** How far the gateway's clock runs ahead of the real one: moved to let a share link expire. */
  let ahead = 0;
  /** The last segment of a key whose storing fails, once the copy's answer turned to keep-alive. */
  let failStoring: string | undefined;

  beforeAll(async () => {
    // Fail, never skip: the browser comes with `npm install` (test/browser.ts).
    browser = await launchChromium();
    uploadsDir = mkdtempSync(join(tmpdir(), 'ailink-web-browser-'));
    twins = s3Twins();
    const { get, put } = twins.storage;
    app = buildS3App({
      storage: {
        get,
        async put(source, options) {
          if (failStoring !== undefined && options?.name === failStoring) {
            await sleep(KEEP_ALIVE_MS * 3);
            throw new Error('the storage twin fails this object');
          }
          return put(source, options);
        },
      },
      namespace: twins.namespace,
      uploads: diskUploadStore(uploadsDir, systemRandom),
      domain: 'localhost',
      credentials: CREDENTIALS,
      region: REGION,
      clock: { now: () => Date.now() + ahead },
      random: systemRandom,
      keepAliveMs: KEEP_ALIVE_MS,
    });
    base = await app.listen({ host: '127.0.0.1', port: 0 });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await app?.close();
    if (uploadsDir !== undefined) rmSync(uploadsDir, { recursive: true, force: true });
  });

  /** A fresh page that records every script error and console error (a CSP violation is one). */
  const open = (path: string) => openWatchedPage(browser, `${base}${path}`, { acceptDownloads: true });

  /**
   * Waits until the listing of `bucket/prefix` is on screen; if it does not come, fails with what the page's status
   * says. (Not "an error status fails at once": an error left by the action before, such as a refused move, is still
   * shown while the next listing loads — checking it raced with the page clearing it, and lost under load in CI.)
   */
  async function listed(page: Page, bucket: string, prefix: string) {
    try {
      await page.locator(`#drive[data-loaded="${bucket}/${prefix}"]`).waitFor();
    } catch (err) {
      const shown = await page
        .getByTestId('status')
        .textContent({ timeout: 1000 })
        .catch(() => null);
      throw new Error(`the listing of ${bucket}/${prefix} did not come; the page shows: ${shown}`, {
        cause: err,
      });
    }
  }

  async function uploadThroughPage(page: Page, file: { name: string; mimeType: string; buffer: Buffer }) {
    // Every percentage the page shows, as it shows it.
    await page.evaluate(() => {
      const seen: string[] = [];
      (window as unknown as { percents: string[] }).percents = seen;
      new MutationObserver(() => {
        for (const p of Array.from(document.querySelectorAll('[data-testid="upload-percent"]'))) {
          if (seen.at(-1) !== p.textContent) seen.push(p.textContent ?? '');
        }
      }).observe(document.getElementById('uploads')!, {
        subtree: true,
        childList: true,
        characterData: true,
      });
    });
    await page.getByTestId('file-input').setInputFiles(file);
    const row = page.locator(`[data-testid="upload"][data-key$="${file.name}"]`);
    await row.locator('xpath=self::*[@data-state!="running"]').waitFor();
    expect(
      await row.getAttribute('data-state'),
      (await row.getByTestId('upload-state').textContent()) ?? '',
    ).toBe('done');
    expect(await row.locator('progress').evaluate((p: HTMLProgressElement) => p.value)).toBe(100);
    expect(await row.getByTestId('upload-percent').textContent()).toBe('100 %');
    return page.evaluate(() => (window as unknown as { percents: string[] }).percents);
  }

  it('sign in, make a bucket and a folder, upload with progress, browse, download, share, play a video, sign out', async () => {
    const { page, errors } = await open('/');
    // The gateway's URL leads a browser to the page.
    expect(page.url()).toBe(`${base}/_ailink/`);
    await page.getByTestId('access-key-id').waitFor();
    expect(await page.getByTestId('region').inputValue()).toBe(REGION);

    // A wrong secret: the gateway refuses the first signed request, and nothing is kept.
    await page.getByTestId('access-key-id').fill(CREDENTIALS.accessKeyId);
    await page.getByTestId('secret-access-key').fill('not-the-secret');
    await page.getByTestId('sign-in').click();
    await page.locator('[data-testid="status"][data-state="error"]').waitFor();
    expect(await page.getByTestId('status').textContent()).toMatch(/^SignatureDoesNotMatch: /);
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
    expect(errors.splice(0)).toEqual([
      'console: Failed to load resource: the server responded with a status of 403 (Forbidden)',
    ]);

    await page.getByTestId('secret-access-key').fill(CREDENTIALS.secretAccessKey);
    await page.getByTestId('sign-in').click();
    await listed(page, '', '');
    expect(await page.getByTestId('empty').textContent()).toMatch(/^No buckets yet/);
    // The secret lives in this tab's session storage only, and is cleared from the form.
    expect(await page.evaluate(() => [sessionStorage.length, localStorage.length, document.cookie])).toEqual([
      1,
      0,
      '',
    ]);
    expect(await page.getByTestId('secret-access-key').inputValue()).toBe('');

    // A bucket, then a folder in it (a folder exists once something is stored under it).
    await page.getByTestId('new-bucket-name').fill('media');
    await page.getByTestId('create-bucket').click();
    await listed(page, 'media', '');
    expect([...twins.buckets.keys()]).toEqual(['media']);
    // Inside a bucket: its tools, not the bucket list's.
    expect(await page.getByTestId('create-bucket').isVisible()).toBe(false);
    expect(await page.getByTestId('file-input').isVisible()).toBe(true);
    await page.getByTestId('new-folder-name').fill('clips');
    await page.getByTestId('open-folder').click();
    await listed(page, 'media', 'clips/');

    // An upload sent at 2 MiB/s (Chromium's own network throttling, as DevTools does it), so that the progress bar
    // moves through values on the way rather than jumping to 100 % on loopback.
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', {
      offline: false,
      latency: 0,
      downloadThroughput: -1,
      uploadThroughput: 2 * 1024 * 1024,
    });
    const notes = {
      name: 'notes.bin',
      mimeType: 'application/octet-stream',
      buffer: randomBytes(3 * 1024 * 1024 + 17),
    };
    const percents = await uploadThroughPage(page, notes);
    expect(percents.at(-1)).toBe('100 %');
    const values = percents.map((p) => Number.parseInt(p, 10));
    expect(values.filter((v) => v > 0 && v < 100).length, percents.join(', ')).toBeGreaterThan(2);
    expect(
      values.every((v, i) => i === 0 || v >= values[i - 1]!),
      percents.join(', '),
    ).toBe(true);
    await cdp.send('Network.emulateNetworkConditions', {
      offline: false,
      latency: 0,
      downloadThroughput: -1,
      uploadThroughput: -1,
    });
    expect(percents.every((p) => /^\d{1,3} %$/.test(p))).toBe(true);
    await listed(page, 'media', 'clips/');
    expect(digest(twins.blobs.get(twins.entries.get('media')!.get('clips/notes.bin')!.fid)!)).toBe(
      digest(notes.buffer),
    );

    // Browse: the bucket shows the folder; into it, the file.
    await page.getByTestId('crumb').filter({ hasText: 'media' }).click();
    await listed(page, 'media', '');
    expect(
      await page.getByTestId('folder').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-prefix'))),
    ).toEqual(['clips/']);
    expect(await page.getByTestId('file').count()).toBe(0);
    await page.getByTestId('folder').locator('a').click();
    await listed(page, 'media', 'clips/');
    const fileRow = page.locator('[data-testid="file"][data-key="clips/notes.bin"]');
    expect(await fileRow.locator('td').nth(1).textContent()).toBe('3.0 MiB');

    // Download: the same bytes.
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      fileRow.getByTestId('download').click(),
    ]);
    expect(download.suggestedFilename()).toBe('notes.bin');
    expect(digest(readFileSync(await download.path()))).toBe(digest(notes.buffer));

    // A share link of one hour, used from outside the browser.
    await fileRow.getByTestId('share').click();
    expect(
      await page
        .getByTestId('share-expiry')
        .locator('option')
        .evaluateAll((os) => os.map((o) => (o as HTMLOptionElement).value)),
    ).toEqual(['900', '3600', '86400', '604800']);
    await page.getByTestId('share-expiry').selectOption('3600');
    await page.getByTestId('share-create').click();
    await page.getByTestId('share-url').waitFor(); // shown once the link is made
    const link = await page.getByTestId('share-url').inputValue();
    expect(link.startsWith(`${base}/media/clips/notes.bin?`)).toBe(true);
    expect(new URL(link).searchParams.get('X-Amz-Expires')).toBe('3600');
    const shared = await fetch(link);
    expect(shared.status).toBe(200);
    expect(digest(new Uint8Array(await shared.arrayBuffer()))).toBe(digest(notes.buffer));
    const signature = new URL(link).searchParams.get('X-Amz-Signature')!;
    const tampered = link.replace(signature, `${signature[0] === 'a' ? 'b' : 'a'}${signature.slice(1)}`);
    const refused = await fetch(tampered);
    expect(refused.status).toBe(403);
    expect(await refused.text()).toContain('<Code>SignatureDoesNotMatch</Code>');
    ahead = 3601_000; // an hour and a second later
    const expired = await fetch(link);
    expect(expired.status).toBe(403);
    expect(await expired.text()).toMatch(/<Code>AccessDenied<\/Code><Message>the presigned URL expired/);
    ahead = 0;

    // A real video, recorded here in the browser (WebM/VP8 from a canvas), uploaded through the page and played.
    const webm = Buffer.from(
      await page.evaluate(async () => {
        const canvas = document.createElement('canvas');
        canvas.width = 160;
        canvas.height = 120;
        const ctx = canvas.getContext('2d')!;
        const recorder = new MediaRecorder(canvas.captureStream(25), { mimeType: 'video/webm;codecs=vp8' });
        const chunks: Blob[] = [];
        recorder.ondataavailable = (e) => chunks.push(e.data);
        let frame = 0;
        const draw = setInterval(() => {
          ctx.fillStyle = `hsl(${(frame * 12) % 360},80%,50%)`;
          ctx.fillRect(0, 0, 160, 120);
          ctx.fillStyle = '#000';
          ctx.fillText(`frame ${frame++}`, 20, 60);
        }, 40);
        recorder.start(250);
        await new Promise((r) => setTimeout(r, 2500));
        await new Promise((r) => {
          recorder.onstop = r;
          recorder.stop();
        });
        clearInterval(draw);
        return [...new Uint8Array(await new Blob(chunks).arrayBuffer())];
      }),
    );
    expect(webm.subarray(0, 4)).toEqual(Buffer.from([0x1a, 0x45, 0xdf, 0xa3])); // an EBML (WebM) header
    await uploadThroughPage(page, { name: 'clip.webm', mimeType: 'video/webm', buffer: webm });
    await listed(page, 'media', 'clips/');

    const media: { range: string | undefined; status: number }[] = [];
    page.on('response', async (response) => {
      if (!response.url().includes('/media/clips/clip.webm?')) return;
      const headers = await response.request().allHeaders();
      media.push({ range: headers.range, status: response.status() });
    });
    const clipRow = page.locator('[data-testid="file"][data-key="clips/clip.webm"]');
    expect(await fileRow.getByTestId('play').count()).toBe(0); // only media files get a player
    await clipRow.getByTestId('play').click();
    await page.getByTestId('player-panel').waitFor();
    await page.waitForFunction(() => {
      const v = document.querySelector('video')!;
      return v.readyState >= 2 && !v.paused && v.currentTime > 0.5;
    });
    const played = await page.evaluate(() => {
      const v = document.querySelector('video')!;
      return {
        src: v.currentSrc,
        width: v.videoWidth,
        height: v.videoHeight,
        error: v.error?.message ?? null,
      };
    });
    expect(played).toMatchObject({ width: 160, height: 120, error: null });
    expect(played.src).toContain('X-Amz-Signature=');
    // Seek back: it plays on from there.
    await page.evaluate(async () => {
      const v = document.querySelector('video')!;
      const seeked = new Promise((r) => v.addEventListener('seeked', r, { once: true }));
      v.currentTime = 0.1;
      await seeked;
    });
    await page.waitForFunction(() => document.querySelector('video')!.currentTime > 0.3);
    // The browser read it with ranged requests, which the gateway answered 206 from ranged storage reads.
    expect(media.length).toBeGreaterThan(0);
    expect(media.every((m) => m.range !== undefined && /^bytes=\d+-\d*$/.test(m.range))).toBe(true);
    expect(media.map((m) => m.status)).toContain(206);
    expect(twins.reads.some((r) => r !== undefined)).toBe(true);

    // Deleting takes a second click (no dialog), and then the object is gone from the bucket.
    await fileRow.getByTestId('delete').click();
    expect(await fileRow.getByTestId('delete').textContent()).toBe('Really delete?');
    expect(twins.entries.get('media')!.has('clips/notes.bin')).toBe(true);
    await fileRow.getByTestId('delete').click();
    await fileRow.waitFor({ state: 'detached' });
    expect([...twins.entries.get('media')!.keys()]).toEqual(['clips/clip.webm']);

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'drive.png'), fullPage: true });

    // Signing out forgets the key.
    await page.getByTestId('sign-out').click();
    await page.getByTestId('sign-in').waitFor();
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('renames a file and moves a folder by copy then delete; refuses moves onto keys; deletes nothing when a copy fails', async () => {
    // Objects put straight into the twins: this test is about the page's moves, not uploads.
    await twins.namespace.createBucket('moves');
    const bytes = new Map<string, Buffer>();
    for (const [key, size] of [
      ['report.txt', 1000],
      ['taken.txt', 10],
      ['archive/old.txt', 20],
      ['docs/', 0], // a folder marker, as S3 consoles make: it moves with the folder
      ['docs/a.txt', 3000],
      ['docs/b.txt', 4000],
      ['docs/deep/c.bin', 70_000],
    ] as const) {
      bytes.set(key, randomBytes(size));
      await twins.storage.put(bytes.get(key)!, { entry: { bucket: 'moves', key } });
    }
    const keys = () => [...twins.entries.get('moves')!.keys()].sort();
    const bytesOf = (key: string) => digest(twins.blobs.get(twins.entries.get('moves')!.get(key)!.fid)!);

    const { page, errors } = await open('/');
    await page.getByTestId('access-key-id').fill(CREDENTIALS.accessKeyId);
    await page.getByTestId('secret-access-key').fill(CREDENTIALS.secretAccessKey);
    await page.getByTestId('sign-in').click();
    await listed(page, '', '');
    await page.locator('[data-testid="bucket"][data-name="moves"] a').click();
    await listed(page, 'moves', '');
    const requests: string[] = [];
    page.on('request', (r) => {
      if (new URL(r.url()).pathname.startsWith('/moves')) requests.push(`${r.method()} ${r.url()}`);
    });
    const status = page.getByTestId('status');
    /** Types `to` over the old key in the move panel of `row` and sends it; resolves once the status matches. */
    async function move(row: ReturnType<Page['locator']>, to: string, shows: RegExp) {
      await row.getByTestId('move').click();
      await page.getByTestId('move-to').fill(to);
      await page.getByTestId('move-submit').click();
      await status.filter({ hasText: shows }).waitFor();
      return status.getAttribute('data-state');
    }

    // Refused by the page itself, with no request: an empty key, the same key, a key listed here, a folder's key.
    const report = page.locator('[data-testid="file"][data-key="report.txt"]');
    await report.getByTestId('move').click();
    expect(await page.getByTestId('move-from').textContent()).toBe('report.txt');
    expect(await page.getByTestId('move-to').inputValue()).toBe('report.txt'); // prefilled: a rename edits it
    expect(await move(report, '  ', /^type the file’s new key$/)).toBe('error');
    expect(await move(report, 'report.txt', /^report\.txt already has that key$/)).toBe('error');
    expect(await move(report, 'taken.txt', /^taken\.txt already exists$/)).toBe('error');
    expect(await move(report, 'archive/', /^a file’s key cannot end in \/$/)).toBe('error');
    const docs = page.locator('[data-testid="folder"][data-prefix="docs/"]');
    expect(await move(docs, '', /^type the folder’s new name$/)).toBe('error');
    expect(await move(docs, '/docs/', /^docs\/ already has that name$/)).toBe('error');
    expect(await move(docs, 'docs/inner', /^docs\/ cannot move into itself$/)).toBe('error');
    expect(await move(docs, 'archive', /^a folder archive\/ already exists$/)).toBe('error');
    expect(requests).toEqual([]);
    // A key outside the folder on screen is looked up (one listing) before anything is written over it.
    expect(await move(report, 'archive/old.txt', /^archive\/old\.txt already exists$/)).toBe('error');
    expect(requests.filter((r) => !r.startsWith('GET '))).toEqual([]);
    expect(bytesOf('archive/old.txt')).toBe(digest(bytes.get('archive/old.txt')!));

    // A rename into a new folder: copied (the copy source signed along), then the old key deleted. The new name is
    // shown as text, never as HTML.
    requests.length = 0;
    const newKey = 'reports/2026 Q4 & <b>final.txt';
    expect(await move(report, newKey, /^moved report\.txt to /)).toBe('ok');
    await report.waitFor({ state: 'detached' });
    expect(requests.filter((r) => !r.startsWith('GET ')).map((r) => r.replace(/\?.*/, ''))).toEqual([
      `PUT ${base}/moves/reports/2026%20Q4%20%26%20%3Cb%3Efinal.txt`,
      `DELETE ${base}/moves/report.txt`,
    ]);
    expect(keys()).not.toContain('report.txt');
    expect(bytesOf(newKey)).toBe(digest(bytes.get('report.txt')!));
    expect(await page.getByTestId('move-panel').isVisible()).toBe(false);
    await page.locator('[data-testid="folder"][data-prefix="reports/"] a').click();
    await listed(page, 'moves', 'reports/');
    const renamed = page.locator('[data-testid="file"]');
    expect(await renamed.getAttribute('data-key')).toBe(newKey);
    expect(await renamed.locator('td').first().textContent()).toBe('2026 Q4 & <b>final.txt');
    expect(await page.getByTestId('entries').locator('b').count()).toBe(0);
    await page.getByTestId('crumb').filter({ hasText: 'moves' }).click();
    await listed(page, 'moves', '');

    // A folder: every object under it copied, with progress, and only then deleted.
    const seen = await watchStatus(page);
    expect(await move(docs, 'papers/2026', /^moved docs\/ to papers\/2026\/ \(4 objects\)$/)).toBe('ok');
    await docs.waitFor({ state: 'detached' });
    expect(await seen()).toEqual([
      ...[1, 2, 3, 4].map((n) => `moving docs/ to papers/2026/: copying ${n} of 4`),
      ...[1, 2, 3, 4].map((n) => `moving docs/ to papers/2026/: deleting ${n} of 4`),
      'moved docs/ to papers/2026/ (4 objects)',
    ]);
    expect(keys()).toEqual([
      'archive/old.txt',
      'papers/2026/',
      'papers/2026/a.txt',
      'papers/2026/b.txt',
      'papers/2026/deep/c.bin',
      newKey,
      'taken.txt',
    ]);
    for (const key of ['docs/', 'docs/a.txt', 'docs/b.txt', 'docs/deep/c.bin'])
      expect(bytesOf(key.replace('docs/', 'papers/2026/'))).toBe(digest(bytes.get(key)!));
    expect(
      await page.getByTestId('folder').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-prefix'))),
    ).toEqual(['archive/', 'papers/', 'reports/']);

    // A copy that fails after its answer turned to keep-alive: 200, then S3's <Error> document. The page reads the
    // failure from the body and deletes nothing.
    const copies: number[] = [];
    page.on('response', (r) => {
      if (r.request().method() === 'PUT') copies.push(r.status());
    });
    failStoring = 'kept.txt'; // the destination's name: what the copy stores
    const taken = page.locator('[data-testid="file"][data-key="taken.txt"]');
    expect(await move(taken, 'kept.txt', /^InternalError: the gateway failed; see its log$/)).toBe('error');
    expect(copies).toEqual([200]);
    expect(keys()).toContain('taken.txt');
    expect(keys()).not.toContain('kept.txt');
    expect(bytesOf('taken.txt')).toBe(digest(bytes.get('taken.txt')!));

    // In a folder, the first failed copy stops the move: the copies before it stay, and no source is deleted.
    failStoring = 'b.txt';
    await page.locator('[data-testid="folder"][data-prefix="papers/"] a').click();
    await listed(page, 'moves', 'papers/');
    const papers = page.locator('[data-testid="folder"][data-prefix="papers/2026/"]');
    expect(
      await move(
        papers,
        'final',
        /^copying papers\/2026\/b\.txt failed \(InternalError: the gateway failed; see its log\): nothing was deleted; 2 copies are left under final\/$/,
      ),
    ).toBe('error');
    failStoring = undefined;
    expect(copies).toEqual([200, 200, 200, 200]);
    expect(keys()).toEqual([
      'archive/old.txt',
      'final/',
      'final/a.txt',
      'papers/2026/',
      'papers/2026/a.txt',
      'papers/2026/b.txt',
      'papers/2026/deep/c.bin',
      newKey,
      'taken.txt',
    ]);
    expect(await papers.count()).toBe(1);

    expect(errors).toEqual([]);
    await page.close();
  });
});

/** Every text the status line shows from now on, in order (read with the function returned). */
async function watchStatus(page: Page): Promise<() => Promise<string[]>> {
  await page.evaluate(() => {
    const seen: string[] = [];
    (window as unknown as { statuses: string[] }).statuses = seen;
    const status = document.getElementById('status')!;
    new MutationObserver(() => {
      if (status.textContent !== '' && seen.at(-1) !== status.textContent)
        seen.push(status.textContent ?? '');
    }).observe(status, { subtree: true, childList: true, characterData: true });
  });
  return () => page.evaluate(() => (window as unknown as { statuses: string[] }).statuses);
}
