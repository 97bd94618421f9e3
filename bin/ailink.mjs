#!/usr/bin/env node
// The CLI runs the TypeScript sources with no build step anyone has to remember. The first run after a change bundles
// src/cli/main.ts with esbuild (≈ 1 s) into node_modules/.cache/ailink, named by a fingerprint of the sources; later
// runs load that bundle. Why a bundle rather than tsx per module: a role process then starts in about half the time and
// about 65 MiB smaller (tsx keeps a loader thread and per-module transforms; measured on `ailink help`: 145 vs 210 MiB
// peak RSS, 1.4 vs 2.5 s), which matters with a dozen miner processes and for the gateway's memory budget.
// AILINK_NO_BUNDLE=1, or a bundle that cannot be built or written, runs the sources through tsx as before.
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src');
const entry = join(src, 'cli', 'main.ts');

/** The bundle for the sources as they are now, built if there is none; null when it cannot be had. */
async function bundled() {
  const cache = join(root, 'node_modules', '.cache', 'ailink');
  const path = join(cache, `cli-${fingerprint()}.mjs`);
  try {
    statSync(path);
    return path;
  } catch {}
  try {
    const esbuild = await import('esbuild');
    const result = await esbuild.build({
      entryPoints: [entry],
      bundle: true,
      write: false,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      packages: 'external',
      logLevel: 'silent',
      plugins: [sourceUrls],
    });
    mkdirSync(cache, { recursive: true });
    // Written aside and renamed: a dozen processes started at once may all build, and none reads a half-written file.
    const aside = `${path}.${process.pid}.tmp`;
    writeFileSync(aside, result.outputFiles[0].contents);
    renameSync(aside, path);
    for (const old of readdirSync(cache)) {
      if (old.startsWith('cli-') && old.endsWith('.mjs') && join(cache, old) !== path) {
        rmSync(join(cache, old), { force: true });
      }
    }
    return path;
  } catch {
    return null; // tsx then reports any error in the sources itself, with its own file and line
  }
}

/** Sizes and modification times of every source file: any edit gives a new bundle. */
function fingerprint() {
  const hash = createHash('sha256');
  const walk = (dir) => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      const stat = statSync(path);
      if (stat.isDirectory()) walk(path);
      else if (/\.(ts|mjs|json)$/.test(name)) hash.update(`${path}\0${stat.size}\0${stat.mtimeMs}\n`);
    }
  };
  walk(src);
  hash.update(readFileSync(join(root, 'package.json')));
  return hash.digest('hex').slice(0, 16);
}

/**
 * Each module's `import.meta.url` stays its own source file's URL inside the bundle, so that paths relative to it
 * (worker entries, wasm kernels, the web page's assets, bin/ itself) resolve as they do when the sources run directly.
 */
const sourceUrls = {
  name: 'source-urls',
  setup(build) {
    build.onLoad({ filter: /\.(ts|mjs)$/ }, (args) => {
      if (!args.path.startsWith(src)) return undefined;
      const text = readFileSync(args.path, 'utf8').replaceAll(
        'import.meta.url',
        JSON.stringify(pathToFileURL(args.path).href),
      );
      return { contents: text, loader: args.path.endsWith('.ts') ? 'ts' : 'js' };
    });
  },
};

const bundle = process.env.AILINK_NO_BUNDLE === '1' ? null : await bundled();
if (bundle === null) {
  const { register } = await import('tsx/esm/api');
  register();
  await import(pathToFileURL(entry).href);
} else {
  await import(pathToFileURL(bundle).href);
}
