import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// The sub-modules of src/storage (src/storage/README.md) and whom each may import. A sub-module reaches another only
// through that one's index.ts (its explicit surface); its own files import each other directly, never through their
// own index (which would make cycles easy). src/storage/index.ts re-exports from the sub-modules' indexes only.
const MAY_IMPORT: Readonly<Record<string, readonly string[]>> = {
  object: [],
  proofs: ['object'],
  protocol: ['object', 'proofs'],
  miner: ['object', 'proofs', 'protocol'],
  verifier: ['object', 'proofs', 'protocol'],
  client: ['object', 'proofs', 'protocol', 'miner', 'verifier'],
};

const STORAGE = fileURLToPath(new URL('../../src/storage/', import.meta.url));

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** Every module specifier of a source: static imports and re-exports (also over several lines), dynamic imports. */
function specifiers(source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const out: string[] = [];
  for (const re of [
    /(?:^|[;\s])(?:import|export)\s[^;'"]*?\bfrom\s*['"]([^'"]+)['"]/g,
    /(?:^|[;\s])import\s*['"]([^'"]+)['"]/g,
    /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g,
  ]) {
    for (const m of code.matchAll(re)) out.push(m[1] as string);
  }
  return out;
}

/** `[sub-module, path inside it]` of a file under src/storage, or undefined for src/storage/index.ts and outside. */
function placeOf(file: string): [string, string] | undefined {
  const rel = relative(STORAGE, file);
  if (rel.startsWith('..')) return undefined;
  const parts = rel.split(sep);
  return parts.length > 1 ? [parts[0] as string, parts.slice(1).join('/')] : undefined;
}

/** What breaks the rules above, one line per offending import. */
function violations(files: ReadonlyMap<string, string>): string[] {
  const bad: string[] = [];
  for (const [file, source] of files) {
    const from = placeOf(file);
    const name = relative(STORAGE, file);
    for (const spec of specifiers(source)) {
      if (!spec.startsWith('.')) continue;
      const target = resolve(dirname(file), spec);
      if (relative(STORAGE, target).startsWith('..')) continue;
      const to = placeOf(target);
      if (!from) {
        if (to?.[1] !== 'index.ts')
          bad.push(`${name} → ${spec}: the storage index re-exports sub-module indexes`);
        continue;
      }
      if (!to) bad.push(`${name} → ${spec}: a sub-module does not import src/storage/index.ts`);
      else if (to[0] === from[0]) {
        if (to[1] === 'index.ts')
          bad.push(
            `${name} → ${spec}: a file reaches its own sub-module's files directly, not through its index`,
          );
      } else if (!MAY_IMPORT[from[0]]?.includes(to[0])) {
        bad.push(`${name} → ${spec}: ${from[0]}/ may not import ${to[0]}/`);
      } else if (to[1] !== 'index.ts') {
        bad.push(`${name} → ${spec}: ${to[0]}/ is reached through its index.ts`);
      }
    }
  }
  return bad;
}

describe('src/storage layout', () => {
  const files = new Map(tsFiles(STORAGE).map((f) => [f, readFileSync(f, 'utf8')] as const));

  it('every file is in a known sub-module, and each sub-module has an index.ts', () => {
    const loose = [...files.keys()].filter((f) => {
      const place = placeOf(f);
      return place ? !(place[0] in MAY_IMPORT) : relative(STORAGE, f) !== 'index.ts';
    });
    expect(loose).toEqual([]);
    for (const sub of Object.keys(MAY_IMPORT)) expect(files.has(join(STORAGE, sub, 'index.ts'))).toBe(true);
  });

  it('sub-modules import each other only through index.ts and only downwards', () => {
    expect(violations(files)).toEqual([]);
  });

  it('files located at run time relative to a module exist (the RS kernel, the codec worker, its loader)', () => {
    const missing: string[] = [];
    let seen = 0;
    for (const [file, source] of files) {
      for (const m of source.matchAll(/new URL\(\s*['"]([^'"]+)['"]\s*,\s*import\.meta\.url\s*\)/g)) {
        seen++;
        if (!existsSync(resolve(dirname(file), m[1] as string)))
          missing.push(`${relative(STORAGE, file)}: ${m[1]}`);
      }
    }
    expect(missing).toEqual([]);
    expect(seen).toBeGreaterThanOrEqual(3);
  });

  it('the checker sees what it should (multi-line, type-only, re-exports, dynamic imports)', () => {
    const at = (p: string) => join(STORAGE, p);
    const bad = violations(
      new Map([
        [at('object/a.ts'), "import {\n  x,\n  type Y,\n} from '../proofs/index.ts';\n"],
        [
          at('proofs/b.ts'),
          "import type { Z } from '../object/codec.ts';\nexport { w } from '../object/index.ts';",
        ],
        [at('miner/c.ts'), "const v = await import('../verifier/index.ts');\nimport './index.ts';"],
        [at('client/d.ts'), "// import { q } from '../index.ts';\nimport { q } from '../index.ts';"],
        [at('index.ts'), "export { r } from './object/rs.ts';\nexport { s } from './client/index.ts';"],
      ]),
    );
    expect(bad).toEqual([
      'object/a.ts → ../proofs/index.ts: object/ may not import proofs/',
      'proofs/b.ts → ../object/codec.ts: object/ is reached through its index.ts',
      "miner/c.ts → ./index.ts: a file reaches its own sub-module's files directly, not through its index",
      'miner/c.ts → ../verifier/index.ts: miner/ may not import verifier/',
      'client/d.ts → ../index.ts: a sub-module does not import src/storage/index.ts',
      'index.ts → ./object/rs.ts: the storage index re-exports sub-module indexes',
    ]);
  });
});
