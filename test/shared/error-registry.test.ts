import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { ERRORS_DOC_PATH, errorsDoc } from '../../scripts/gen-errors-doc.ts';
import { AGGREGATION_ERROR_CODES } from '../../src/aggregation/index.ts';
import type { HttpErrorCode } from '../../src/coordinator/index.ts';
import { type AilinkError, ERROR_CODES, type ErrorCode, type hasCode } from '../../src/shared/errors.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SRC = join(ROOT, 'src');

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

const lineOf = (text: string, index: number) => text.slice(0, index).split('\n').length;

/**
 * What breaks the registry in one source file: bare Errors (`new Error(`, `throw Error(`, also in the browser
 * script a .ts file carries) and the codes passed to AilinkError, AggregationError or hasCode that are not registered.
 * Each finding is `file:line: what`.
 */
function registryProblems(file: string, text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/\bnew Error\(|\bthrow Error\(/g))
    out.push(
      `${file}:${lineOf(text, m.index)}: a bare ${m[0]}…) — throw an AilinkError with a registered code`,
    );
  // The first argument of each constructor: up to its first comma (a code is a literal or a ternary of literals).
  for (const m of text.matchAll(/\bnew (AilinkError|AggregationError)\(([^,]*),/g)) {
    for (const c of m[2]!.matchAll(/'([A-Z][A-Z0-9_]*)'/g)) {
      if (!Object.hasOwn(ERROR_CODES, c[1]!))
        out.push(`${file}:${lineOf(text, m.index)}: ${m[1]} with unregistered code ${c[1]}`);
      if (m[1] === 'AggregationError' && !Object.hasOwn(AGGREGATION_ERROR_CODES, c[1]!))
        out.push(
          `${file}:${lineOf(text, m.index)}: AggregationError with code ${c[1]} not in AGGREGATION_ERROR_CODES`,
        );
    }
  }
  for (const m of text.matchAll(/\bhasCode\([^,()]*,\s*'([A-Z][A-Z0-9_]*)'/g))
    if (!Object.hasOwn(ERROR_CODES, m[1]!))
      out.push(`${file}:${lineOf(text, m.index)}: hasCode with unregistered code ${m[1]}`);
  return out;
}

describe('the error registry', () => {
  it('is what AilinkError, hasCode and the HTTP answers are typed by', () => {
    expectTypeOf<ConstructorParameters<typeof AilinkError>[0]>().toEqualTypeOf<keyof typeof ERROR_CODES>();
    expectTypeOf<Parameters<typeof hasCode>[1]>().toEqualTypeOf<ErrorCode | undefined>();
    expectTypeOf<HttpErrorCode>().toEqualTypeOf<ErrorCode>();
  });

  it('gives every code an HTTP status, a meaning and what to do', () => {
    for (const [code, entry] of Object.entries(ERROR_CODES)) {
      expect(code, code).toMatch(/^[A-Z][A-Z0-9_]+$/);
      expect(entry.status, code).toBeGreaterThanOrEqual(400);
      expect(entry.status, code).toBeLessThan(600);
      expect(entry.about.trim(), `${code}.about`).not.toBe('');
      expect(entry.action.trim(), `${code}.action`).not.toBe('');
      expect(entry.action, `${code}.action is one line`).not.toContain('\n');
    }
  });

  it("registers every code of the aggregation core's own error class", () => {
    const missing = Object.keys(AGGREGATION_ERROR_CODES).filter((c) => !Object.hasOwn(ERROR_CODES, c));
    expect(missing).toEqual([]);
  });

  it('the scan finds a bare Error and an unregistered code', () => {
    const sample = [
      "throw new Error('x');",
      "throw Error('y');",
      "new AilinkError('NO_SUCH_CODE', 'm');",
      "new AilinkError(late ? 'TIMEOUT' : 'ALSO_MISSING', 'm');",
      "new AggregationError('TIMEOUT', 'm');",
      "hasCode(err, 'NOPE')",
      "new AilinkError('INVALID_INPUT', 'fine');",
      "hasCode(err, 'NOT_FOUND')",
    ].join('\n');
    expect(registryProblems('sample.ts', sample)).toEqual([
      'sample.ts:1: a bare new Error(…) — throw an AilinkError with a registered code',
      'sample.ts:2: a bare throw Error(…) — throw an AilinkError with a registered code',
      'sample.ts:3: AilinkError with unregistered code NO_SUCH_CODE',
      'sample.ts:4: AilinkError with unregistered code ALSO_MISSING',
      'sample.ts:5: AggregationError with code TIMEOUT not in AGGREGATION_ERROR_CODES',
      'sample.ts:6: hasCode with unregistered code NOPE',
    ]);
  });

  it('has no bare Error and no unregistered code anywhere in src', () => {
    const problems = tsFiles(SRC).flatMap((path) =>
      registryProblems(relative(ROOT, path), readFileSync(path, 'utf8')),
    );
    expect(problems).toEqual([]);
  });

  it('is documented in docs/errors.md exactly as scripts/gen-errors-doc.ts generates it (`npm run docs:errors`)', () => {
    const committed = readFileSync(ERRORS_DOC_PATH, 'utf8');
    const documented = [...committed.matchAll(/^\| `([A-Z][A-Z0-9_]*)` \|/gm)].map((m) => m[1]);
    const registered = Object.keys(ERROR_CODES);
    expect(
      documented.filter((c) => !registered.includes(c!)),
      'documented but not registered',
    ).toEqual([]);
    expect(
      registered.filter((c) => !documented.includes(c)),
      'registered but not documented',
    ).toEqual([]);
    expect(committed).toBe(errorsDoc());
  });
});
