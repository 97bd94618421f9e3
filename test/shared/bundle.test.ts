import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
// @ts-expect-error: plain JavaScript without types (it runs before any TypeScript loader)
import { bundleOf, EXTERNAL } from '../../src/shared/bundle.mjs';

const exec = promisify(execFile);
const source = (path: string) => fileURLToPath(new URL(`../../src/${path}`, import.meta.url));
const BIN = fileURLToPath(new URL('../../bin/ailink.mjs', import.meta.url));

/**
 * Every module specifier a bundle still loads at run time, as esbuild writes them (minified: `import{a as b}from"x";`,
 * `import*as c from"x";`, `import"x";`): static imports at the start of a statement, dynamic imports, and CommonJS
 * requires through its `__require`.
 */
function specifiersOf(code: string): Set<string> {
  const found = new Set<string>();
  const patterns = [
    /(?:^|[;\n])\s*import\s*(?:[\w$]+\s*,?\s*)?(?:\{[^}]*\}|\*\s*as\s+[\w$]+)?\s*(?:from\s*)?["']([^"']+)["']/g,
    /\bimport\(\s*["']([^"']+)["']\s*\)/g,
    /\b__require\d*\(\s*["']([^"']+)["']\s*\)/g,
  ];
  for (const pattern of patterns) for (const m of code.matchAll(pattern)) found.add(m[1]!);
  return found;
}

/** ws's optional native helpers: required inside a try, and absent here, so ws uses its JavaScript. */
const OPTIONAL = ['bufferutil', 'utf-8-validate'];

const allowed = (specifier: string) =>
  specifier.startsWith('node:') ||
  OPTIONAL.includes(specifier) ||
  builtinModules.includes(specifier) ||
  (EXTERNAL as string[]).some((e) =>
    e.endsWith('/*') ? specifier.startsWith(e.slice(0, -1)) : specifier === e,
  );

describe('the cached bundle a process runs (src/shared/bundle.mjs)', () => {
  it.each([
    ['the CLI', 'cli/main.ts'],
    ['the codec worker', 'storage/object/codec-worker.ts'],
    ['the training worker', 'participant/train-worker.ts'],
  ])(
    '%s carries its packages: it loads only Node built-ins and the listed externals',
    async (_, entry) => {
      const path: string | null = await bundleOf(source(entry));
      expect(path).not.toBeNull();
      const code = readFileSync(path!, 'utf8');
      // ASCII only: V8 holds a script's source for the process's life, at two bytes a character if any is not Latin-1.
      expect(code.match(/[\u0080-\uffff]/g) ?? []).toStrictEqual([]);
      const specifiers = [...specifiersOf(code)];
      expect(specifiers.filter((s) => !allowed(s))).toStrictEqual([]);
      if (entry === 'cli/main.ts') {
        // The reading above sees static imports at all (not a check that passes because it finds none).
        expect(specifiers).toContain('better-sqlite3');
        expect(specifiers).toContain('node:fs');
        // The packages every role loads at start are inside, not read file by file from node_modules.
        for (const bundled of ['@polkadot/api', 'libp2p', 'fastify', 'zod'])
          expect(specifiers).not.toContain(bundled);
      }
    },
    60_000,
  );

  it('the bundled CLI runs: `ailink help` exits 0 with the usage', async () => {
    const { stdout } = await exec(process.execPath, [BIN, 'help']);
    expect(stdout).toMatch(/ailink keys new --out FILE/);
  }, 60_000);
});
