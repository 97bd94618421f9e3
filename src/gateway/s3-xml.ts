import type { ListPage } from './s3-list.ts';

/**
 * The XML bodies of S3's answers that the gateway gives: errors, ListBuckets and ListObjectsV2. Pure string building;
 * every text is escaped, and keys never hold characters XML 1.0 cannot carry (the chain refuses control characters).
 */

const S3_NS = 'http://s3.amazonaws.com/doc/2006-03-01/';

export function escapeXml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => `&${{ '&': 'amp', '<': 'lt', '>': 'gt', '"': 'quot', "'": 'apos' }[c]};`,
  );
}

const element = (name: string, text: string | number | boolean) =>
  `<${name}>${escapeXml(String(text))}</${name}>`;
const document = (root: string, body: string, ns = true) =>
  `<?xml version="1.0" encoding="UTF-8"?>\n<${root}${ns ? ` xmlns="${S3_NS}"` : ''}>${body}</${root}>`;

/** S3's ISO time with milliseconds, as its listings show. */
export const s3Time = (ms: number) => new Date(ms).toISOString();

export function errorXml(e: { code: string; message: string; resource?: string; requestId: string }): string {
  return document(
    'Error',
    element('Code', e.code) +
      element('Message', e.message) +
      (e.resource === undefined ? '' : element('Resource', e.resource)) +
      element('RequestId', e.requestId),
    false,
  );
}

export function listBucketsXml(
  owner: { id: string; displayName: string },
  buckets: readonly { name: string; created: number }[],
): string {
  return document(
    'ListAllMyBucketsResult',
    `<Owner>${element('ID', owner.id)}${element('DisplayName', owner.displayName)}</Owner>` +
      `<Buckets>${buckets
        .map(
          (b) => `<Bucket>${element('Name', b.name)}${element('CreationDate', s3Time(b.created))}</Bucket>`,
        )
        .join('')}</Buckets>`,
  );
}

export interface ListedObject {
  readonly key: string;
  readonly modified: number;
  readonly etag: string;
  readonly size: number;
}

export function listObjectsV2Xml(
  bucket: string,
  query: {
    prefix: string;
    delimiter?: string;
    maxKeys: number;
    startAfter?: string;
    continuationToken?: string;
  },
  page: ListPage<ListedObject>,
): string {
  const optional = (name: string, value: string | undefined) =>
    value === undefined ? '' : element(name, value);
  return document(
    'ListBucketResult',
    element('Name', bucket) +
      element('Prefix', query.prefix) +
      optional('Delimiter', query.delimiter) +
      element('MaxKeys', query.maxKeys) +
      element('KeyCount', page.keyCount) +
      element('IsTruncated', page.isTruncated) +
      optional('StartAfter', query.startAfter) +
      optional('ContinuationToken', query.continuationToken) +
      optional('NextContinuationToken', page.nextContinuationToken) +
      page.contents
        .map(
          (o) =>
            `<Contents>${element('Key', o.key)}${element('LastModified', s3Time(o.modified))}${element('ETag', `"${o.etag}"`)}${element('Size', o.size)}${element('StorageClass', 'STANDARD')}</Contents>`,
        )
        .join('') +
      page.commonPrefixes.map((p) => `<CommonPrefixes>${element('Prefix', p)}</CommonPrefixes>`).join(''),
  );
}
