import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { listPage } from '../../src/gateway/s3-list.ts';
import { errorXml, escapeXml, listBucketsXml, listObjectsV2Xml } from '../../src/gateway/s3-xml.ts';

const unescapeXml = (s: string) =>
  s.replace(
    /&(amp|lt|gt|quot|apos);/g,
    (_, e: string) => ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" })[e]!,
  );

describe('S3 XML answers', () => {
  it('escapes every text so that any key survives: property', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (text) => {
        const escaped = escapeXml(text);
        expect(escaped).not.toMatch(/[<>"']|&(?!(amp|lt|gt|quot|apos);)/);
        expect(unescapeXml(escaped)).toBe(text);
      }),
      { seed: 7 },
    );
  });

  it('an error names its code, message, resource and request id', () => {
    expect(
      errorXml({ code: 'NoSuchKey', message: 'no key <a&b>', resource: '/b/a&b', requestId: 'r1' }),
    ).toBe(
      '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code><Message>no key &lt;a&amp;b&gt;</Message><Resource>/b/a&amp;b</Resource><RequestId>r1</RequestId></Error>',
    );
  });

  it('ListBuckets and ListObjectsV2 in S3’s shape', () => {
    const buckets = listBucketsXml({ id: '5Grw', displayName: '5Grw' }, [
      { name: 'photos', created: Date.UTC(2026, 11, 3) },
    ]);
    expect(buckets).toContain('<ListAllMyBucketsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">');
    expect(buckets).toContain(
      '<Bucket><Name>photos</Name><CreationDate>2026-12-03T00:00:00.000Z</CreationDate></Bucket>',
    );
    const objects = [
      { key: 'a&b.txt', modified: Date.UTC(2026, 0, 1), etag: 'abc', size: 5 },
      { key: 'dir/x', modified: 0, etag: 'def', size: 1 },
    ];
    const page = listPage(objects, (o) => o.key, { delimiter: '/', maxKeys: 1 });
    const xml = listObjectsV2Xml('b', { prefix: '', delimiter: '/', maxKeys: 1 }, page);
    expect(xml).toContain(
      '<Name>b</Name><Prefix></Prefix><Delimiter>/</Delimiter><MaxKeys>1</MaxKeys><KeyCount>1</KeyCount><IsTruncated>true</IsTruncated>',
    );
    expect(xml).toContain(`<NextContinuationToken>${page.nextContinuationToken}</NextContinuationToken>`);
    expect(xml).toContain(
      '<Contents><Key>a&amp;b.txt</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified><ETag>&quot;abc&quot;</ETag><Size>5</Size><StorageClass>STANDARD</StorageClass></Contents>',
    );
    expect(xml).not.toContain('CommonPrefixes');
  });
});
