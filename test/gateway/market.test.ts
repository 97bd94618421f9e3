import { describe, expect, it } from 'vitest';
import {
  DEFAULT_WAIT_MS,
  MAX_WAIT_MS,
  parseBuyQuery,
  parseJsonBody,
  type ReaderStanding,
  refusalBeforePaying,
  renderMarketError,
  ShareBodySchema,
  TermsBodySchema,
  wantsXml,
} from '../../src/gateway/market-protocol.ts';
import { termsWithReader } from '../../src/storage/index.ts';

// The marketplace API's pure parts: what a buy agrees to, when a read is refused before anything is paid, the bodies
// of terms and shares, errors as JSON or S3's XML, and the access list a share makes.

const ALICE = '5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY';
const BOB = '5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty';
const FID = 'ab'.repeat(32);

describe('parseBuyQuery', () => {
  it('defaults to paying nothing and the default wait', () => {
    expect(parseBuyQuery([])).toEqual({ maxPrice: 0n, waitMs: DEFAULT_WAIT_MS });
    expect(
      parseBuyQuery([
        ['max-price', '3000000000000'],
        ['wait-ms', '5000'],
      ]),
    ).toEqual({
      maxPrice: 3_000_000_000_000n,
      waitMs: 5000,
    });
  });

  it.each([
    ['max-price', '-1'],
    ['max-price', '1.5'],
    ['max-price', '01'],
    ['max-price', ''],
    ['max-price', '1'.repeat(40)],
    ['wait-ms', '0'],
    ['wait-ms', String(MAX_WAIT_MS + 1)],
    ['wait-ms', 'soon'],
    ['wait-ms', ''],
  ])('refuses %s=%j with INVALID_INPUT', (name, value) => {
    expect(() => parseBuyQuery([[name, value]])).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }));
  });
});

describe('refusalBeforePaying', () => {
  const standing = (over: Partial<ReaderStanding> = {}): ReaderStanding => ({
    fid: FID,
    owner: ALICE,
    manages: false,
    terms: { readers: [], price: '100' },
    me: BOB,
    holdsKey: false,
    ...over,
  });
  const reason = (s: ReaderStanding, max: bigint) => refusalBeforePaying(s, max)?.details?.reason;

  it('lets the owner, a listed reader, and a reader holding the key through whatever the price', () => {
    expect(refusalBeforePaying(standing({ manages: true, terms: undefined }), 0n)).toBeUndefined();
    expect(refusalBeforePaying(standing({ terms: { readers: [BOB], price: null } }), 0n)).toBeUndefined();
    expect(refusalBeforePaying(standing({ holdsKey: true, terms: undefined }), 0n)).toBeUndefined();
  });

  it('lets a buyer through when the price is within what it agreed to (free for anyone: always)', () => {
    expect(refusalBeforePaying(standing(), 100n)).toBeUndefined();
    expect(refusalBeforePaying(standing({ terms: { readers: [], price: '0' } }), 0n)).toBeUndefined();
  });

  it('refuses with ACCESS_DENIED and a reason: no terms, not for sale, price above the max', () => {
    const err = refusalBeforePaying(standing(), 99n);
    expect(err).toMatchObject({
      code: 'ACCESS_DENIED',
      details: { reason: 'price-above-max', price: '100' },
    });
    expect(err?.message).toContain('?max-price=100');
    expect(reason(standing({ terms: undefined }), 10n ** 30n)).toBe('no-terms');
    expect(reason(standing({ terms: { readers: [ALICE], price: null } }), 10n ** 30n)).toBe('not-for-sale');
  });
});

describe('bodies', () => {
  it('takes terms of SS58 readers and a planck price or null; refuses anything else by field', () => {
    expect(parseJsonBody(`{"readers":["${BOB}"],"price":"5"}`, TermsBodySchema)).toEqual({
      readers: [BOB],
      price: '5',
    });
    expect(parseJsonBody('{"price":null}', TermsBodySchema)).toEqual({ readers: [], price: null });
    for (const [text, field] of [
      ['{"readers":["nobody"],"price":"5"}', 'readers.0'],
      ['{"readers":[],"price":5}', 'price'],
      ['{"readers":[],"price":"-5"}', 'price'],
      ['{"readers":[]}', 'price'],
      ['{"readers":[],"price":"1","extra":1}', 'body'],
      ['not json', 'JSON'],
    ]) {
      expect(() => parseJsonBody(text!, TermsBodySchema)).toThrow(
        expect.objectContaining({ code: 'INVALID_INPUT', message: expect.stringContaining(field!) }),
      );
    }
  });

  it('takes a share of an address with an optional 32-byte hex reader key', () => {
    expect(parseJsonBody(`{"reader":"${BOB}"}`, ShareBodySchema)).toEqual({ reader: BOB });
    const key = 'cd'.repeat(32);
    expect(parseJsonBody(`{"reader":"${BOB}","readerKey":"${key}"}`, ShareBodySchema)).toEqual({
      reader: BOB,
      readerKey: key,
    });
    expect(() => parseJsonBody(`{"reader":"${BOB}","readerKey":"CD"}`, ShareBodySchema)).toThrow(
      expect.objectContaining({ code: 'INVALID_INPUT', message: expect.stringContaining('readerKey') }),
    );
  });
});

describe('errors', () => {
  const e = {
    code: 'ACCESS_DENIED' as const,
    s3: 'AccessDenied',
    message: 'no <key> & no pay',
    details: { reason: 'price-above-max', price: '100', s3: 'x', cause: { secret: 1 } },
  };

  it('answers JSON with the code, the S3 code and plain details (never a nested value)', () => {
    const r = renderMarketError(e, { xml: false, resource: '/market/objects/x', requestId: 'R1' });
    expect(r.contentType).toBe('application/json');
    expect(JSON.parse(r.body)).toEqual({
      error: 'ACCESS_DENIED',
      s3: 'AccessDenied',
      message: e.message,
      details: { reason: 'price-above-max', price: '100' },
      requestId: 'R1',
    });
  });

  it("answers S3's XML, escaped, when asked for it", () => {
    const r = renderMarketError(e, { xml: true, resource: '/market/objects/x', requestId: 'R1' });
    expect(r.contentType).toBe('application/xml');
    expect(r.body).toContain('<Code>AccessDenied</Code>');
    expect(r.body).toContain('no &lt;key&gt; &amp; no pay');
    expect(wantsXml('application/xml')).toBe(true);
    expect(wantsXml('text/xml, */*')).toBe(true);
    expect(wantsXml('application/json, application/xml')).toBe(false);
    expect(wantsXml(undefined)).toBe(false);
    expect(wantsXml('*/*')).toBe(false);
  });
});

describe('termsWithReader', () => {
  it('adds the reader and keeps the price; an object without terms becomes not for sale', () => {
    expect(termsWithReader({ readers: [ALICE], price: '7' }, BOB)).toEqual({
      readers: [ALICE, BOB],
      price: '7',
      changed: true,
    });
    expect(termsWithReader(undefined, BOB)).toEqual({ readers: [BOB], price: null, changed: true });
    expect(termsWithReader({ readers: [BOB], price: null }, BOB)).toEqual({
      readers: [BOB],
      price: null,
      changed: false,
    });
  });
});
