import { describe, expect, it } from 'vitest';
import {
  defaultRetentionOf,
  deleteObjectsKeys,
  parseRange,
  S3_STATUS,
  s3CodeOf as s3CodeOfError,
} from '../../src/gateway/s3-http.ts';
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

  it('DeleteObjects: the keys, entities decoded, and Quiet; anything else → MalformedXML', () => {
    expect(
      deleteObjectsKeys(
        '<?xml version="1.0"?><Delete xmlns="x"><Object><Key>a&amp;b</Key></Object><Object><Key>&#x1F600;/&#233;</Key></Object><Quiet>true</Quiet></Delete>',
      ),
    ).toEqual({ keys: ['a&b', '😀/é'], quiet: true });
    for (const bad of [
      '',
      '<Other/>',
      '<Delete></Delete>',
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
});
