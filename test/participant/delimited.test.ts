import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import {
  createDelimitedParser,
  delimiterFor,
  parseDelimited,
  readDelimited,
} from '../../src/participant/delimited.ts';
import { expectCode } from '../storage/helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'ailink-delimited-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A small RFC 4180 writer: quotes what needs it, and an empty one-column row (a blank line is skipped). */
function writeDelimited(records: string[][], delimiter = ',', eol = '\n', trailing = true): string {
  const cell = (value: string, width: number) =>
    /["\r\n\uFEFF]/.test(value) || value.includes(delimiter) || (value === '' && width === 1)
      ? `"${value.replaceAll('"', '""')}"`
      : value;
  const text = records.map((row) => row.map((v) => cell(v, row.length)).join(delimiter)).join(eol);
  return trailing ? text + eol : text;
}

/** Line breaks an editor sees in a text: CRLF, CR or LF. */
const breaks = (text: string) => (text.match(/\r\n|\r|\n/g) ?? []).length;

/** Strings rich in what CSV must escape. */
const cellArb = fc.string({
  unit: fc.oneof(
    fc.constantFrom(',', '"', '\r', '\n', '\t', '\uFEFF', ' ', 'a', 'é'),
    fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
  ),
  maxLength: 8,
});
const tableArb = fc
  .integer({ min: 1, max: 5 })
  .chain((width) =>
    fc.array(fc.array(cellArb, { minLength: width, maxLength: width }), { minLength: 1, maxLength: 7 }),
  );

describe('parseDelimited', () => {
  it('reads a header, quoted fields with delimiters, doubled quotes and line breaks, CRLF and a BOM', () => {
    const text = '\uFEFFname,note,n\r\n"Smith, J","said ""hi""",1\r\n"two\r\nlines",,2\r\nplain,x"y,3';
    expect(parseDelimited(text, { delimiter: ',' })).toEqual({
      header: ['name', 'note', 'n'],
      rows: [
        ['Smith, J', 'said "hi"', '1'],
        ['two\r\nlines', '', '2'],
        ['plain', 'x"y', '3'],
      ],
      lines: [2, 3, 5],
    });
  });

  it('reads TSV with the same quoting, skips blank lines, counts lone CRs as line ends', () => {
    expect(parseDelimited('a\tb\n\n1\t"x\ty"\r\r2\t\n', { delimiter: '\t' })).toEqual({
      header: ['a', 'b'],
      rows: [
        ['1', 'x\ty'],
        ['2', ''],
      ],
      lines: [3, 5],
    });
    // A trailing delimiter at the very end is one more empty field.
    expect(parseDelimited('a,b\n1,', { delimiter: ',' }).rows).toEqual([['1', '']]);
    expect(parseDelimited('a\n""\n', { delimiter: ',' }).rows).toEqual([['']]);
  });

  it('refuses malformed text with DATA_DECODE_FAILED naming the file and line', () => {
    const err = expectCode(
      () => parseDelimited('a,b\n1,2\n3,"open\n\n', { delimiter: ',', file: 'x.csv' }),
      'DATA_DECODE_FAILED',
    );
    expect(err.message).toBe('x.csv line 3: a quoted field opened here is never closed');
    expect(
      expectCode(
        () => parseDelimited('a,b\n"1"x,2\n', { delimiter: ',', file: 'x.csv' }),
        'DATA_DECODE_FAILED',
      ).message,
    ).toMatch(/^x\.csv line 2: expected the delimiter or a line end after a closing quote, got "x"/);
    expect(
      expectCode(
        () => parseDelimited('a,b\n1,2\n"3\n4",5,6\n', { delimiter: ',', file: 'x.csv' }),
        'DATA_DECODE_FAILED',
      ).message,
    ).toMatch(/^x\.csv line 3: expected 2 fields as in the header, got 3/);
    expectCode(() => parseDelimited('', { delimiter: ',' }), 'DATA_DECODE_FAILED');
    expectCode(() => parseDelimited('\uFEFF\r\n\n', { delimiter: ',' }), 'DATA_DECODE_FAILED');
    for (const delimiter of ['', ';;', '"', '\n', '\r'])
      expectCode(() => createDelimitedParser({ delimiter }), 'INVALID_INPUT');
  });

  it('property: any table written as CSV or TSV (LF or CRLF, BOM or not) reads back as it was, lines included', () => {
    fc.assert(
      fc.property(
        tableArb,
        fc.constantFrom(',', '\t', ';'),
        fc.constantFrom('\n', '\r\n'),
        fc.boolean(),
        fc.boolean(),
        (records, delimiter, eol, bom, trailing) => {
          const text = (bom ? '\uFEFF' : '') + writeDelimited(records, delimiter, eol, trailing);
          const table = parseDelimited(text, { delimiter });
          expect(table.header).toEqual(records[0]);
          expect(table.rows).toEqual(records.slice(1));
          // Each record starts one line after the previous one ended, counting the breaks inside its quotes.
          let line = 1;
          const expected: number[] = [];
          for (const [i, row] of records.entries()) {
            if (i > 0) expected.push(line);
            line += breaks(row.join('|')) + 1;
          }
          expect(table.lines).toEqual(expected);
        },
      ),
      { seed: 11, numRuns: 400 },
    );
  });

  it('property: the text may arrive in pieces split anywhere (even inside CRLF or a doubled quote)', () => {
    fc.assert(
      fc.property(
        tableArb,
        fc.constantFrom('\n', '\r\n'),
        fc.array(fc.nat(), { maxLength: 6 }),
        (records, eol, cuts) => {
          const text = `\uFEFF${writeDelimited(records, ',', eol)}`;
          const points = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
          const parser = createDelimitedParser({ delimiter: ',' });
          let from = 0;
          for (const p of [...points, text.length]) {
            parser.push(text.slice(from, p));
            from = p;
          }
          expect(parser.end()).toEqual(parseDelimited(text, { delimiter: ',' }));
        },
      ),
      { seed: 12, numRuns: 400 },
    );
  });
});

describe('readDelimited', () => {
  it('takes the delimiter from the extension or an option', async () => {
    writeFileSync(join(dir, 'a.csv'), '\uFEFFx,y\r\n1,2\r\n');
    writeFileSync(join(dir, 'a.TSV'), 'x\ty\n1,5\t2\n');
    writeFileSync(join(dir, 'a.txt'), 'x;y\n1;2\n');
    expect(await readDelimited(join(dir, 'a.csv'))).toEqual({
      header: ['x', 'y'],
      rows: [['1', '2']],
      lines: [2],
    });
    expect((await readDelimited(join(dir, 'a.TSV'))).rows).toEqual([['1,5', '2']]);
    await expect(readDelimited(join(dir, 'a.txt'))).rejects.toMatchObject({ code: 'INVALID_INPUT' });
    expect((await readDelimited(join(dir, 'a.txt'), { delimiter: ';' })).rows).toEqual([['1', '2']]);
    expect(delimiterFor('x/y.tab')).toBe('\t');
    await expect(readDelimited(join(dir, 'missing.csv'))).rejects.toMatchObject({ code: 'INVALID_INPUT' });
    await expect(readDelimited(dir, { delimiter: ',' })).rejects.toMatchObject({ code: 'INVALID_INPUT' });
  });

  it('streams a multi-megabyte file whose chunks split characters and quoted fields', async () => {
    const records = [['id', 'city', 'note']];
    for (let i = 0; i < 40_000; i++)
      records.push([`${i}`, i % 3 ? 'Zürich' : 'São Paulo', `line ${i}\nnext, "q"`]);
    const text = writeDelimited(records);
    writeFileSync(join(dir, 'big.csv'), text);
    // More than the 1 MiB chunks the file is read in.
    expect(Buffer.byteLength(text)).toBeGreaterThan(2 ** 20);
    const table = await readDelimited(join(dir, 'big.csv'));
    expect(table.rows.length).toBe(40_000);
    expect(table.rows).toEqual(records.slice(1));
    expect(table.lines[39_999]).toBe(2 + 2 * 39_999);
    // Bytes 3, 5, 7… start a two-byte é: the chunk boundary at 2^20 falls inside one.
    const wide = `x${'é'.repeat(600_000)}`;
    writeFileSync(join(dir, 'wide.csv'), `a\n${wide}\n`);
    expect((await readDelimited(join(dir, 'wide.csv'))).rows).toEqual([[wide]]);
  });

  it('refuses a file over maxBytes with DATA_TOO_LARGE, and bytes that are not UTF-8 with DATA_DECODE_FAILED', async () => {
    writeFileSync(join(dir, 'large.csv'), `a\n${'1\n'.repeat(1000)}`);
    await expect(readDelimited(join(dir, 'large.csv'), { maxBytes: 1000 })).rejects.toMatchObject({
      code: 'DATA_TOO_LARGE',
      message: expect.stringContaining('large.csv'),
    });
    expect((await readDelimited(join(dir, 'large.csv'), { maxBytes: 2002 })).rows.length).toBe(1000);
    writeFileSync(join(dir, 'latin1.csv'), Buffer.from([0x61, 0x0a, 0x5a, 0xfc, 0x72, 0x0a]));
    await expect(readDelimited(join(dir, 'latin1.csv'))).rejects.toMatchObject({
      code: 'DATA_DECODE_FAILED',
      message: expect.stringContaining('latin1.csv: expected UTF-8'),
    });
    // A multi-byte character cut off at the very end is not UTF-8 either.
    writeFileSync(join(dir, 'cut.csv'), Buffer.from([0x61, 0x0a, 0xc3]));
    await expect(readDelimited(join(dir, 'cut.csv'))).rejects.toMatchObject({ code: 'DATA_DECODE_FAILED' });
  });

  it('stops when signalled', async () => {
    const controller = new AbortController();
    controller.abort();
    await expect(readDelimited(join(dir, 'a.csv'), { signal: controller.signal })).rejects.toMatchObject({
      code: 'ABORTED',
    });
  });
});
