import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  defaultRetentionOf,
  deleteObjectsKeys,
  legalHoldOf,
  parseRange,
  S3_STATUS,
  s3CodeOf as s3CodeOfError,
  versioningStatusOf,
} from '../../src/gateway/s3-http.ts';
import { compareKeys, versionPage } from '../../src/gateway/s3-list.ts';
import { listVersionsXml } from '../../src/gateway/s3-xml.ts';
import { AilinkError } from '../../src/shared/errors.ts';

// The S3 API's small parsers; the operations themselves run against a dev network in
// test/integration/gateway-s3.test.ts, driven by the AWS SDK.

const s3CodeOf = (run: () => unknown) => {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(AilinkError);
    return (err as AilinkError).details?.s3;
  }
  throw new Error('expected a refusal');
};

describe('S3 error codes', () => {
  it('a declaration beyond the account’s storage space is 403 QuotaExceeded (MinIO’s code: S3 has no quotas)', () => {
    const code = s3CodeOfError(new AilinkError('QUOTA_EXCEEDED', 'storage space exceeded: …'));
    expect(code).toBe('QuotaExceeded');
    expect(S3_STATUS[code]).toBe(403);
  });
});

describe('S3 request parsing', () => {
  it('Range: one range of bytes, clipped to the object; none or several → the whole object; outside → InvalidRange', () => {
    expect(parseRange('bytes=0-9', 100)).toEqual({ start: 0, end: 9 });
    expect(parseRange('bytes=90-', 100)).toEqual({ start: 90, end: 99 });
    expect(parseRange('bytes=-10', 100)).toEqual({ start: 90, end: 99 });
    expect(parseRange('bytes=-500', 100)).toEqual({ start: 0, end: 99 });
    expect(parseRange('bytes=50-500', 100)).toEqual({ start: 50, end: 99 });
    for (const whole of [undefined, 'bytes=0-1,5-6', 'items=0-1', 'bytes=-'])
      expect(parseRange(whole, 100)).toBeUndefined();
    for (const outside of ['bytes=100-', 'bytes=5-4', 'bytes=-0'])
      expect(s3CodeOf(() => parseRange(outside, 100))).toBe('InvalidRange');
    expect(s3CodeOf(() => parseRange('bytes=0-0', 0))).toBe('InvalidRange');
  });

  it('DeleteObjects: the keys and version ids, entities decoded, and Quiet; anything else → MalformedXML', () => {
    expect(
      deleteObjectsKeys(
        '<?xml version="1.0"?><Delete xmlns="x"><Object><Key>a&amp;b</Key></Object><Object><Key>&#x1F600;/&#233;</Key><VersionId> m12.3 </VersionId></Object><Quiet>true</Quiet></Delete>',
      ),
    ).toEqual({ objects: [{ key: 'a&b' }, { key: '😀/é', versionId: 'm12.3' }], quiet: true });
    for (const bad of [
      '',
      '<Other/>',
      '<Delete></Delete>',
      '<Delete><Object><VersionId>v</VersionId></Object></Delete>',
      `<Delete>${'<Object><Key>k</Key></Object>'.repeat(1001)}</Delete>`,
    ]) {
      expect(s3CodeOf(() => deleteObjectsKeys(bad))).toBe('MalformedXML');
    }
  });

  it('PutObjectLockConfiguration: a default of days or years (365 days each), or none; anything else → MalformedXML', () => {
    const doc = (rule: string) =>
      `<?xml version="1.0"?><ObjectLockConfiguration xmlns="x"><ObjectLockEnabled>Enabled</ObjectLockEnabled>${rule}</ObjectLockConfiguration>`;
    expect(defaultRetentionOf(doc(''))).toBeNull();
    expect(
      defaultRetentionOf(
        doc('<Rule><DefaultRetention><Mode>GOVERNANCE</Mode><Days>30</Days></DefaultRetention></Rule>'),
      ),
    ).toEqual({ mode: 'GOVERNANCE', days: 30 });
    expect(
      defaultRetentionOf(
        doc('<Rule><DefaultRetention><Years>7</Years><Mode>COMPLIANCE</Mode></DefaultRetention></Rule>'),
      ),
    ).toEqual({ mode: 'COMPLIANCE', days: 7 * 365 });
    for (const bad of [
      '<Rule><DefaultRetention><Mode>LEGAL</Mode><Days>1</Days></DefaultRetention></Rule>',
      '<Rule><DefaultRetention><Mode>COMPLIANCE</Mode></DefaultRetention></Rule>',
      '<Rule><DefaultRetention><Mode>COMPLIANCE</Mode><Days>1</Days><Years>1</Years></DefaultRetention></Rule>',
      '<Rule><DefaultRetention><Mode>COMPLIANCE</Mode><Days>0</Days></DefaultRetention></Rule>',
      '<Rule><DefaultRetention><Mode>COMPLIANCE</Mode><Years>101</Years></DefaultRetention></Rule>',
    ])
      expect(s3CodeOf(() => defaultRetentionOf(doc(bad)))).toBe('MalformedXML');
    expect(s3CodeOf(() => defaultRetentionOf('<Retention/>'))).toBe('MalformedXML');
  });

  it('PutBucketVersioning: Enabled or Suspended; MFA delete is not offered; anything else → MalformedXML', () => {
    const doc = (body: string) =>
      `<?xml version="1.0"?><VersioningConfiguration xmlns="x">${body}</VersioningConfiguration>`;
    expect(versioningStatusOf(doc('<Status>Enabled</Status>'))).toBe('Enabled');
    expect(versioningStatusOf(doc('<Status>Suspended</Status><MfaDelete>Disabled</MfaDelete>'))).toBe(
      'Suspended',
    );
    expect(
      s3CodeOf(() => versioningStatusOf(doc('<Status>Enabled</Status><MfaDelete>Enabled</MfaDelete>'))),
    ).toBe('NotImplemented');
    for (const bad of [doc(''), doc('<Status>On</Status>'), '<Retention/>'])
      expect(s3CodeOf(() => versioningStatusOf(bad))).toBe('MalformedXML');
  });

  it('legal hold: ON or OFF, as a body or a header', () => {
    expect(legalHoldOf('<LegalHold xmlns="x"><Status>ON</Status></LegalHold>', 'body')).toBe(true);
    expect(legalHoldOf('<?xml version="1.0"?><LegalHold><Status>OFF</Status></LegalHold>', 'body')).toBe(
      false,
    );
    expect(legalHoldOf('ON', 'header')).toBe(true);
    expect(s3CodeOf(() => legalHoldOf('<LegalHold><Status>on</Status></LegalHold>', 'body'))).toBe(
      'MalformedXML',
    );
    expect(s3CodeOf(() => legalHoldOf('<Retention/>', 'body'))).toBe('MalformedXML');
    expect(s3CodeOf(() => legalHoldOf('YES', 'header'))).toBe('InvalidArgument');
  });
});

describe('ListObjectVersions pages', () => {
  /** Versions in S3's order: keys bytewise, each key's versions newest first (ids count down). */
  const versionsOf = (counts: [string, number][]) =>
    [...counts]
      .sort(([a], [b]) => compareKeys(a, b))
      .flatMap(([key, n]) => Array.from({ length: n }, (_, i) => ({ key, versionId: `v${n - i}` })));
  const keyArb = fc.stringMatching(/^[ab/é]{1,4}$/);
  const countsArb = fc.uniqueArray(fc.tuple(keyArb, fc.integer({ min: 1, max: 3 })), {
    selector: ([k]) => k,
    maxLength: 8,
  });

  it('paging with the markers it hands out lists every version exactly once, in order, whatever the page size', () => {
    fc.assert(
      fc.property(
        countsArb,
        fc.integer({ min: 1, max: 5 }),
        fc.constantFrom(undefined, '/'),
        fc.constantFrom('', 'a'),
        (counts, maxKeys, delimiter, prefix) => {
          const all = versionsOf(counts);
          const whole = versionPage(all, (v) => v, { prefix, ...(delimiter ? { delimiter } : {}) });
          const seen: typeof all = [];
          const prefixes: string[] = [];
          let marker: { keyMarker: string; versionIdMarker?: string } | undefined;
          for (let pages = 0; pages < 100; pages++) {
            const page = versionPage(all, (v) => v, {
              prefix,
              maxKeys,
              ...(delimiter ? { delimiter } : {}),
              ...(marker === undefined
                ? {}
                : { keyMarker: marker.keyMarker, versionIdMarker: marker.versionIdMarker ?? '' }),
            });
            expect(page.versions.length + page.commonPrefixes.length).toBeLessThanOrEqual(maxKeys);
            seen.push(...page.versions);
            prefixes.push(...page.commonPrefixes);
            if (!page.isTruncated) break;
            marker = page.next;
          }
          expect(seen).toEqual(whole.versions);
          expect(prefixes).toEqual(whole.commonPrefixes);
          // Without a delimiter, the whole listing is every version under the prefix.
          if (delimiter === undefined) expect(seen).toEqual(all.filter((v) => v.key.startsWith(prefix)));
        },
      ),
    );
  });

  it('max-keys 0 asks for nothing: an empty page that is not truncated (else a client would loop)', () => {
    const all = versionsOf([['a', 2]]);
    expect(versionPage(all, (v) => v, { maxKeys: 0 })).toEqual({
      versions: [],
      commonPrefixes: [],
      isTruncated: false,
    });
  });

  it('the XML names versions and delete markers apart, with the next markers when truncated', () => {
    const xml = listVersionsXml(
      'b',
      'me',
      { prefix: '', maxKeys: 2, keyMarker: '', versionIdMarker: '' },
      {
        versions: [
          { key: 'a<', versionId: 'm3.1', latest: true, modified: 0 },
          { key: 'a<', versionId: 'f1', latest: false, modified: 0, object: { etag: 'e', size: 4 } },
        ],
        commonPrefixes: [],
        isTruncated: true,
        next: { keyMarker: 'a<', versionIdMarker: 'f1' },
      },
    );
    expect(xml).toContain(
      '<DeleteMarker><Key>a&lt;</Key><VersionId>m3.1</VersionId><IsLatest>true</IsLatest>',
    );
    expect(xml).toContain('<Version><Key>a&lt;</Key><VersionId>f1</VersionId><IsLatest>false</IsLatest>');
    expect(xml).toContain('<ETag>&quot;e&quot;</ETag><Size>4</Size>');
    expect(xml).toContain(
      '<NextKeyMarker>a&lt;</NextKeyMarker><NextVersionIdMarker>f1</NextVersionIdMarker>',
    );
  });
});
