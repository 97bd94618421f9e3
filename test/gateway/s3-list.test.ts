import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareKeys, type ListQuery, listPage } from '../../src/gateway/s3-list.ts';
import { AilinkError } from '../../src/shared/errors.ts';

// ListObjectsV2's paging, against a model: the whole listing in one go, then every page size and both ways of
// continuing (token, start-after) must give exactly the same items in the same order.

const keys = [
  'a',
  'a/b/c',
  'a/b/d',
  'a/e',
  'b',
  'b/',
  'b//x',
  'photos/2026/jan.jpg',
  'photos/2026/feb.jpg',
  'z😀',
  'z\uffff',
];
const id = (k: string) => k;

/** The model: every key under the prefix, rolled up at the first delimiter after it, each item once, in byte order. */
function model(all: readonly string[], prefix: string, delimiter: string | undefined): string[] {
  const items: string[] = [];
  for (const key of [...all].filter((k) => k.startsWith(prefix)).sort(compareKeys)) {
    const at = delimiter === undefined ? -1 : key.indexOf(delimiter, prefix.length);
    const item = at === -1 ? key : `${key.slice(0, at + delimiter!.length)}\u0000prefix`;
    if (items.at(-1) !== item) items.push(item);
  }
  return items;
}

/** Every page in turn, following the continuation tokens. */
function pages(all: readonly string[], query: ListQuery): string[][] {
  const out: string[][] = [];
  let token: string | undefined;
  for (let guard = 0; guard <= all.length + 1; guard++) {
    const page = listPage(all, id, {
      ...query,
      ...(token === undefined ? {} : { continuationToken: token }),
    });
    expect(page.keyCount).toBe(page.contents.length + page.commonPrefixes.length);
    expect(page.keyCount).toBeLessThanOrEqual(query.maxKeys ?? 1000);
    out.push(
      [...page.contents, ...page.commonPrefixes.map((p) => `${p}\u0000prefix`)].sort((a, b) =>
        compareKeys(a, b),
      ),
    );
    if (!page.isTruncated) return out;
    expect(page.nextContinuationToken).toBeDefined();
    token = page.nextContinuationToken;
  }
  throw new Error('the listing never ended');
}

describe('ListObjectsV2 paging', () => {
  it('lists keys in UTF-8 byte order and rolls them up at the delimiter', () => {
    const page = listPage(keys, id, { prefix: '', delimiter: '/' });
    expect(page.contents).toEqual(['a', 'b', 'z\uffff', 'z😀']);
    expect(page.commonPrefixes).toEqual(['a/', 'b/', 'photos/']);
    expect(page.isTruncated).toBe(false);
    const photos = listPage(keys, id, { prefix: 'photos/', delimiter: '/' });
    expect(photos).toMatchObject({ contents: [], commonPrefixes: ['photos/2026/'], keyCount: 1 });
    expect(listPage(keys, id, { prefix: 'photos/2026/' }).contents).toEqual([
      'photos/2026/feb.jpg',
      'photos/2026/jan.jpg',
    ]);
  });

  it('a common prefix on one page is not listed again on the next', () => {
    const first = listPage(keys, id, { delimiter: '/', maxKeys: 2 });
    expect(first).toMatchObject({ contents: ['a'], commonPrefixes: ['a/'], isTruncated: true });
    const second = listPage(keys, id, {
      delimiter: '/',
      maxKeys: 2,
      continuationToken: first.nextContinuationToken!,
    });
    expect(second).toMatchObject({ contents: ['b'], commonPrefixes: ['b/'] });
  });

  it('max-keys 0 lists nothing and is not truncated; a negative one or a forged token is refused', () => {
    expect(listPage(keys, id, { maxKeys: 0 })).toEqual({
      contents: [],
      commonPrefixes: [],
      keyCount: 0,
      isTruncated: false,
    });
    for (const query of [
      { maxKeys: -1 },
      { continuationToken: 'not a token!' },
      { continuationToken: 'eA' },
    ]) {
      const err = (() => {
        try {
          listPage(keys, id, query);
        } catch (e) {
          return e;
        }
      })();
      expect(err).toBeInstanceOf(AilinkError);
      expect((err as AilinkError).details?.s3).toBe('InvalidArgument');
    }
  });

  it('property: the pages of any size, followed by token, are the whole listing once, in order; start-after skips what it names', () => {
    const key = fc.string({
      minLength: 1,
      maxLength: 6,
      unit: fc.constantFrom(...Array.from('ab/-.é😀\uffff')),
    });
    fc.assert(
      fc.property(
        fc.uniqueArray(key, { maxLength: 40 }),
        fc.constantFrom('', 'a', 'a/', 'b'),
        fc.constantFrom(undefined, '/', '-', 'é'),
        fc.integer({ min: 1, max: 7 }),
        (all, prefix, delimiter, maxKeys) => {
          const query = { prefix, maxKeys, ...(delimiter === undefined ? {} : { delimiter }) };
          const listed = pages(all, query);
          expect(listed.flat()).toEqual(model(all, prefix, delimiter));
          // Pages are full except the last.
          for (const page of listed.slice(0, -1)) expect(page).toHaveLength(maxKeys);
          // start-after a key: exactly the model's keys after it (without a delimiter, items are keys).
          if (delimiter === undefined && all.length > 0) {
            const after = all[0]!;
            const rest = listPage(all, id, { prefix, startAfter: after }).contents;
            expect(rest).toEqual(model(all, prefix, undefined).filter((k) => compareKeys(k, after) > 0));
          }
        },
      ),
      { seed: 16, numRuns: 400 },
    );
  });
});
