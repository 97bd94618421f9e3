import {
  createReadStream,
  createWriteStream,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createBrotliDecompress } from 'node:zlib';
import { type Browser, type BrowserContextOptions, chromium, type Page } from 'playwright-core';

/**
 * The browser the tests drive: the Chromium (headless shell, Linux x64) that the npm package `@sparticuz/chromium`
 * carries inside it as `bin/chromium.br`, so `npm install` alone provides it, at the version the lockfile pins, on
 * every machine. It needs only libc, libexpat and NSS/NSPR (libnss3) from the system.
 *
 * Unpacked here rather than by the package's own `executablePath()`, which writes straight to `/tmp/chromium` and
 * reuses whatever file is there: a run killed mid-unpack, or another project's different version, would leave a
 * broken or wrong browser that is then used for ever. Here the binary goes to a directory named after the package's
 * version, written to a temporary name and renamed into place once complete.
 *
 * @returns the absolute path of the executable, for playwright-core's `chromium.launch({ executablePath })`
 */
export async function packagedChromium(): Promise<string> {
  // The package's exports map hides package.json; its entry point is build/cjs/index.cjs, next to ../../bin.
  const pkg = join(dirname(createRequire(import.meta.url).resolve('@sparticuz/chromium')), '..', '..');
  const version = (JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')) as { version: string })
    .version;
  const dir = join(tmpdir(), `ailink-sparticuz-chromium-${version}`);
  const exe = join(dir, 'chromium');
  if (existsSync(exe)) return exe;
  mkdirSync(dir, { recursive: true });
  const partial = `${exe}.${process.pid}.partial`;
  try {
    await pipeline(
      createReadStream(join(pkg, 'bin', 'chromium.br')),
      createBrotliDecompress(),
      createWriteStream(partial, { mode: 0o755 }),
    );
    renameSync(partial, exe);
  } finally {
    rmSync(partial, { force: true });
  }
  return exe;
}

/**
 * A fresh page at `url` that records every script error, console error (a CSP violation is one) and dialog, so a test
 * can require that a page ran clean.
 */
export async function openWatchedPage(
  browser: Browser,
  url: string,
  options: BrowserContextOptions = {},
): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 }, ...options });
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(`console: ${msg.text()}`);
  });
  page.on('dialog', (dialog) => {
    errors.push(`dialog: ${dialog.message()}`);
    void dialog.dismiss();
  });
  await page.goto(url);
  return { page, errors };
}

/** Headless, no sandbox (containers), and nothing that would reach the network by itself. */
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * The packaged Chromium, launched. Fails, never skips: the browser comes with `npm install`, so a missing or broken one
 * is a real failure — and always this one, even where Debian's /usr/bin/chromium exists: one pinned version everywhere.
 */
export async function launchChromium(): Promise<Browser> {
  const executablePath = await packagedChromium();
  try {
    return await chromium.launch({ executablePath, args: CHROMIUM_ARGS });
  } catch (err) {
    throw new Error(
      `Chromium from @sparticuz/chromium at ${executablePath} did not start (${(err as Error).message.split('\n')[0]}): ` +
        'it needs libnss3 from the system (`apt-get install libnss3`)',
    );
  }
}
