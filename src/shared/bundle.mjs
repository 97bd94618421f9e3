// Runs the project's TypeScript with no build step anyone has to remember. The first run after a change bundles an
// entry (the CLI, a worker) and the packages it uses with esbuild (≈ 1–2 s) into node_modules/.cache/ailink, named by
// the entry and a fingerprint of the sources and the lockfile; later runs load that bundle. Why a bundle rather than
// tsx per module: tsx keeps a loader thread and per-module transforms in every process and worker thread. Measured: `ailink help` 138 vs 210 MiB peak RSS and 1.75
// vs 2.5 s; a codec worker thread ≈ 38 MiB through tsx, ≈ 24 MiB from its bundle. A dozen miner processes and the
// gateway's memory budget (issue 16: ≤ 256 MiB) need that back. Plain JavaScript: it runs before any loader.
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const src = join(root, 'src');
// models/index.ts finds the built-in model.json files beside itself: it is bundled like the sources.
const models = join(root, 'models');
const STALE_MS = 10 * 60_000;
/**
 * Packages loaded from node_modules as they are rather than bundled: native addons, packages that find files beside
 * their own sources (__dirname, their package.json, wasm, worker scripts), and large ones only some commands load
 * (TensorFlow.js, chopsticks, the chain spec). Everything else is bundled: Node's ESM loader spends most of a
 * start resolving, reading and linking the thousand small files of @polkadot/*, libp2p and fastify one by one.
 * Measured (`ailink help`, 2 cores): 1.45 s and ≈ 144 MiB peak RSS with every package external, 0.6 s and ≈ 124 MiB so.
 */
export const EXTERNAL = [
  'better-sqlite3',
  'sharp',
  '@tensorflow/*',
  '@acala-network/chopsticks',
  '@substrate/connect-known-chains',
  '@substrate/connect-known-chains/*',
  '@digitaldefiance/reed-solomon-erasure.wasm',
  '@digitaldefiance/reed-solomon-erasure.wasm/*',
  '@fastify/swagger',
  'pino',
  'thread-stream',
  'esbuild',
  'tsx',
  'tsx/*',
];

/**
 * Imports the TypeScript module at `entry` (a path or file URL): from its bundle unless AILINK_NO_BUNDLE=1 or the
 * bundle cannot be built or written, then through tsx (which also reports errors in the sources with their own file
 * and line).
 */
export async function importBundled(entry) {
  const path = entry.startsWith('file:') ? fileURLToPath(entry) : entry;
  const bundle = process.env.AILINK_NO_BUNDLE === '1' ? null : await bundleOf(path);
  if (bundle !== null) return import(pathToFileURL(bundle).href);
  const { tsImport } = await import('tsx/esm/api');
  return tsImport(pathToFileURL(path).href, import.meta.url);
}

/** The bundle of `entry` for the sources as they are now, built if there is none; null when it cannot be had. */
export async function bundleOf(entry) {
  const cache = join(root, 'node_modules', '.cache', 'ailink');
  const name = basename(entry).replace(/\.[cm]?ts$/, '');
  const path = join(cache, `${name}-${fingerprint()}.mjs`);
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
      external: EXTERNAL,
      // No comments and no layout: a non-ASCII character anywhere in a comment (there were 46 lines of them) makes V8
      // keep the whole source, which it holds for the process's life, at two bytes a character (≈ 16 MiB rather than
      // ≈ 5 MiB here). Names stay, so stack traces still name functions; AILINK_NO_BUNDLE=1 gives file and line.
      minifyWhitespace: true,
      legalComments: 'none',
      // Bundled CommonJS packages `require` what stays external: from the cache folder, inside node_modules.
      banner: {
        js: "import { createRequire as createBundleRequire } from 'node:module'; const require = createBundleRequire(import.meta.url);",
      },
      logLevel: 'silent',
      plugins: [sourceUrls],
    });
    mkdirSync(cache, { recursive: true });
    // Written aside and renamed: several processes started at once may all build, and none reads a half-written file.
    const aside = `${path}.${process.pid}.tmp`;
    writeFileSync(aside, result.outputFiles[0].contents);
    renameSync(aside, path);
    // Older bundles go once nothing can still be about to load them (a process that found one a moment ago).
    for (const old of readdirSync(cache)) {
      const at = join(cache, old);
      try {
        if (old.startsWith(`${name}-`) && at !== path && Date.now() - statSync(at).mtimeMs > STALE_MS) {
          rmSync(at, { force: true });
        }
      } catch {} // another process removed it first
    }
    return path;
  } catch {
    return null;
  }
}

/** Sizes and modification times of every source file, and package.json: any edit gives a new bundle. */
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
  for (const name of readdirSync(models).sort())
    if (name.endsWith('.ts')) {
      const stat = statSync(join(models, name));
      hash.update(`${join(models, name)}\0${stat.size}\0${stat.mtimeMs}\n`);
    }
  hash.update(readFileSync(join(root, 'package.json')));
  // The bundle holds the installed packages' code too: a lockfile change is a new bundle.
  try {
    hash.update(readFileSync(join(root, 'package-lock.json')));
  } catch {}
  return hash.digest('hex').slice(0, 16);
}

/**
 * Each module's `import.meta.url` stays its own source file's URL inside the bundle, so that paths relative to it
 * (worker entries, wasm kernels, the web page's assets, bin/) resolve as they do when the sources run directly.
 */
const sourceUrls = {
  name: 'source-urls',
  setup(build) {
    build.onLoad({ filter: /\.(ts|mjs)$/ }, (args) => {
      if (!args.path.startsWith(src) && !args.path.startsWith(models)) return undefined;
      const text = readFileSync(args.path, 'utf8').replaceAll(
        'import.meta.url',
        JSON.stringify(pathToFileURL(args.path).href),
      );
      return { contents: text, loader: args.path.endsWith('.ts') ? 'ts' : 'js' };
    });
  },
};
