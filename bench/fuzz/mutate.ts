/**
 * Mutations of a valid input that make it invalid by construction (or noise that may by chance stay valid), as
 * fast-check arbitraries of `FuzzCase`s.
 */
import fc from 'fast-check';
import type { FuzzCase, Variant } from './harness.ts';

export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };
export type JsonPath = readonly (string | number)[];

export const fuzzCase = <I>(variant: Variant, label: string, input: I, mustRefuse = true): FuzzCase<I> => ({
  variant,
  label,
  input,
  mustRefuse,
});

/** Every path in `value` (objects and arrays, leaves too), except the root. */
export function pathsOf(value: Json, prefix: JsonPath = []): JsonPath[] {
  if (value === null || typeof value !== 'object') return [];
  const entries: [string | number, Json][] = Array.isArray(value)
    ? value.map((v, i) => [i, v])
    : Object.entries(value);
  return entries.flatMap(([k, v]) => [[...prefix, k], ...pathsOf(v, [...prefix, k])]);
}

export function getPath(value: Json, path: JsonPath): Json | undefined {
  let at: Json | undefined = value;
  for (const k of path)
    at = at !== null && typeof at === 'object' ? (at as Record<string, Json>)[k] : undefined;
  return at;
}

/** A copy with the value at `path` replaced (or deleted when `next` is undefined). */
export function withPath(value: Json, path: JsonPath, next: Json | undefined): Json {
  const copy = structuredClone(value);
  let at = copy as Record<string | number, Json>;
  for (const k of path.slice(0, -1)) at = at[k] as Record<string | number, Json>;
  const last = path[path.length - 1]!;
  if (next !== undefined) at[last] = next;
  else if (Array.isArray(at)) at.splice(last as number, 1);
  else delete at[last];
  return copy;
}

const typeOf = (v: Json | undefined) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

/** JSON values of another type than `like`. */
export function otherType(like: Json | undefined): fc.Arbitrary<Json> {
  const all: [string, fc.Arbitrary<Json>][] = [
    ['null', fc.constant(null)],
    ['boolean', fc.boolean()],
    ['number', fc.oneof(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.constant(-1))],
    ['string', fc.oneof(fc.string(), fc.constant(''), fc.constant('__proto__'))],
    ['array', fc.array(fc.jsonValue() as fc.Arbitrary<Json>, { maxLength: 3 })],
    [
      'object',
      fc.oneof(
        fc.dictionary(fc.string(), fc.jsonValue() as fc.Arbitrary<Json>, { maxKeys: 3 }),
        fc.constant({ __proto__: { polluted: true } } as unknown as Json),
        fc.constant(JSON.parse('{"__proto__":{"polluted":true}}') as Json),
      ),
    ],
  ];
  return fc.oneof(...all.filter(([t]) => t !== typeOf(like)).map(([, a]) => a));
}

export interface JsonMutationOptions {
  /** Paths whose value must not be replaced by one of another type (a field that takes several types). */
  readonly looseTypes?: (path: JsonPath) => boolean;
  /** Paths that may be deleted and stay valid (optional fields, defaults). */
  readonly optional?: (path: JsonPath) => boolean;
  /** The objects that refuse keys they do not know (zod `.strict()`); none: the variant is left out. */
  readonly strictObjects?: (path: JsonPath) => boolean;
  /** A value that makes the file larger than the reader allows, or a field longer than its bound. */
  readonly oversized?: fc.Arbitrary<{ label: string; json: Json | string }>;
}

/**
 * Cases for a JSON file read by a strict validator: a prefix of the text (never valid JSON), a field of another
 * type, a required field deleted, an unknown key, bytes that are not UTF-8, an empty file, and noise.
 */
export function jsonCases(
  valid: Json,
  o: JsonMutationOptions = {},
): fc.Arbitrary<FuzzCase<string | Uint8Array>> {
  const text = JSON.stringify(valid, null, 2);
  const paths = pathsOf(valid);
  const typed = paths.filter((p) => !(o.looseTypes?.(p) ?? false));
  const required = paths.filter((p) => !(o.optional?.(p) ?? false) && typeof p[p.length - 1] === 'string');
  const objects = [[], ...paths].filter((p) => {
    const v = getPath(valid, p);
    return v !== null && typeof v === 'object' && !Array.isArray(v) && (o.strictObjects?.(p) ?? false);
  });
  const arbs: fc.Arbitrary<FuzzCase<string | Uint8Array>>[] = [
    fc
      .integer({ min: 0, max: text.trimEnd().length - 1 })
      .map((k) => fuzzCase('truncated', `first ${k} characters`, text.slice(0, k))),
    fc.constant(fuzzCase('truncated', 'empty file', '')),
    fc
      .uint8Array({ minLength: 0, maxLength: 64 })
      .map((b) => fuzzCase('malformed', 'not UTF-8 JSON', new Uint8Array([0xff, 0xfe, ...b]))),
    fc
      .jsonValue()
      .map((v) => fuzzCase('malformed', `noise ${JSON.stringify(v).slice(0, 40)}`, JSON.stringify(v), false)),
    fc.constantFrom('[]', 'null', '1', '"x"', 'true').map((t) => fuzzCase('malformed', `top level ${t}`, t)),
  ];
  if (typed.length > 0)
    arbs.push(
      fc
        .constantFrom(...typed)
        .chain((p) => otherType(getPath(valid, p)).map((v) => [p, v] as const))
        .map(([p, v]) =>
          fuzzCase(
            'malformed',
            `${p.join('.')} = ${JSON.stringify(v).slice(0, 40)}`,
            JSON.stringify(withPath(valid, p, v)),
          ),
        ),
    );
  if (required.length > 0)
    arbs.push(
      fc
        .constantFrom(...required)
        .map((p) =>
          fuzzCase('malformed', `${p.join('.')} deleted`, JSON.stringify(withPath(valid, p, undefined))),
        ),
    );
  if (objects.length > 0)
    arbs.push(
      fc
        .tuple(fc.constantFrom(...objects), fc.string({ minLength: 1, maxLength: 12 }))
        .filter(([p, k]) => {
          const v = getPath(valid, p) as Record<string, Json>;
          return !Object.hasOwn(v, k) && k !== '__proto__';
        })
        .map(([p, k]) =>
          fuzzCase(
            'malformed',
            `unknown key ${JSON.stringify(k)} in ${p.join('.') || '(root)'}`,
            JSON.stringify(withPath(valid, [...p, k], 1)),
          ),
        ),
    );
  if (o.oversized)
    arbs.push(
      o.oversized.map(({ label, json }) =>
        fuzzCase('oversized', label, typeof json === 'string' ? json : JSON.stringify(json)),
      ),
    );
  return fc.oneof(...arbs);
}

/** Cases for a binary file: a prefix, a byte changed in the header, bytes appended, and noise. */
export function bytesCases(valid: Uint8Array, headerBytes: number): fc.Arbitrary<FuzzCase<Uint8Array>> {
  return fc.oneof(
    fc
      .integer({ min: 0, max: valid.byteLength - 1 })
      .map((k) => fuzzCase('truncated', `first ${k} bytes`, valid.slice(0, k))),
    fc
      .uint8Array({ minLength: 1, maxLength: 16 })
      .map((extra) => fuzzCase('malformed', `${extra.byteLength} bytes appended`, concat(valid, extra))),
    fc.tuple(fc.integer({ min: 0, max: headerBytes - 1 }), fc.integer({ min: 1, max: 255 })).map(([i, x]) => {
      const b = valid.slice();
      b[i]! ^= x;
      return fuzzCase('malformed', `header byte ${i} ^= ${x}`, b, false);
    }),
    fc.uint8Array({ maxLength: 256 }).map((b) => fuzzCase('malformed', 'random bytes', b, false)),
  );
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}
