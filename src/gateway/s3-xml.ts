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

/** A flat answer of named values: InitiateMultipartUploadResult, CompleteMultipartUploadResult, CopyObjectResult… */
export function resultXml(root: string, fields: Readonly<Record<string, string | number>>): string {
  return document(
    root,
    Object.entries(fields)
      .map(([name, value]) => element(name, value))
      .join(''),
  );
}

export function listPartsXml(
  upload: { bucket: string; key: string; uploadId: string; owner: string },
  page: {
    marker: number;
    maxParts: number;
    parts: readonly { number: number; etag: string; size: number; modified: number }[];
    next?: number;
  },
): string {
  const owner = `${element('ID', upload.owner)}${element('DisplayName', upload.owner)}`;
  return document(
    'ListPartsResult',
    element('Bucket', upload.bucket) +
      element('Key', upload.key) +
      element('UploadId', upload.uploadId) +
      `<Initiator>${owner}</Initiator><Owner>${owner}</Owner>` +
      element('StorageClass', 'STANDARD') +
      element('PartNumberMarker', page.marker) +
      (page.next === undefined ? '' : element('NextPartNumberMarker', page.next)) +
      element('MaxParts', page.maxParts) +
      element('IsTruncated', page.next !== undefined) +
      page.parts
        .map(
          (p) =>
            `<Part>${element('PartNumber', p.number)}${element('LastModified', s3Time(p.modified))}${element('ETag', `"${p.etag}"`)}${element('Size', p.size)}</Part>`,
        )
        .join(''),
  );
}

export function listUploadsXml(
  bucket: string,
  query: {
    prefix: string;
    delimiter: string | undefined;
    keyMarker: string;
    uploadIdMarker: string;
    maxUploads: number;
  },
  page: {
    versions: readonly { key: string; uploadId: string; initiated: number }[];
    commonPrefixes: readonly string[];
    /** After a common prefix, no upload id. */
    next?: { keyMarker: string; versionIdMarker?: string };
  },
  owner: string,
): string {
  const who = `${element('ID', owner)}${element('DisplayName', owner)}`;
  return document(
    'ListMultipartUploadsResult',
    element('Bucket', bucket) +
      element('KeyMarker', query.keyMarker) +
      element('UploadIdMarker', query.uploadIdMarker) +
      (page.next === undefined
        ? ''
        : element('NextKeyMarker', page.next.keyMarker) +
          (page.next.versionIdMarker === undefined
            ? ''
            : element('NextUploadIdMarker', page.next.versionIdMarker))) +
      element('Prefix', query.prefix) +
      (query.delimiter === undefined ? '' : element('Delimiter', query.delimiter)) +
      element('MaxUploads', query.maxUploads) +
      element('IsTruncated', page.next !== undefined) +
      page.versions
        .map(
          (u) =>
            `<Upload>${element('Key', u.key)}${element('UploadId', u.uploadId)}<Initiator>${who}</Initiator><Owner>${who}</Owner>${element('StorageClass', 'STANDARD')}${element('Initiated', s3Time(u.initiated))}</Upload>`,
        )
        .join('') +
      page.commonPrefixes.map((p) => `<CommonPrefixes>${element('Prefix', p)}</CommonPrefixes>`).join(''),
  );
}

/** One row of ListObjectVersions: an object version, or a delete marker (no etag or size). */
export interface ListedVersion {
  readonly key: string;
  readonly versionId: string;
  readonly latest: boolean;
  readonly modified: number;
  readonly object?: { readonly etag: string; readonly size: number };
}

export function listVersionsXml(
  bucket: string,
  owner: string,
  query: { prefix: string; delimiter?: string; maxKeys: number; keyMarker: string; versionIdMarker: string },
  page: {
    versions: readonly ListedVersion[];
    commonPrefixes: readonly string[];
    isTruncated: boolean;
    next?: { keyMarker: string; versionIdMarker?: string };
  },
): string {
  const who = `<Owner>${element('ID', owner)}${element('DisplayName', owner)}</Owner>`;
  const row = (v: ListedVersion) => {
    const common = `${element('Key', v.key)}${element('VersionId', v.versionId)}${element('IsLatest', v.latest)}${element('LastModified', s3Time(v.modified))}`;
    return v.object === undefined
      ? `<DeleteMarker>${common}${who}</DeleteMarker>`
      : `<Version>${common}${element('ETag', `"${v.object.etag}"`)}${element('Size', v.object.size)}${element('StorageClass', 'STANDARD')}${who}</Version>`;
  };
  return document(
    'ListVersionsResult',
    element('Name', bucket) +
      element('Prefix', query.prefix) +
      element('KeyMarker', query.keyMarker) +
      element('VersionIdMarker', query.versionIdMarker) +
      (page.next === undefined
        ? ''
        : element('NextKeyMarker', page.next.keyMarker) +
          (page.next.versionIdMarker === undefined
            ? ''
            : element('NextVersionIdMarker', page.next.versionIdMarker))) +
      element('MaxKeys', query.maxKeys) +
      (query.delimiter === undefined ? '' : element('Delimiter', query.delimiter)) +
      element('IsTruncated', page.isTruncated) +
      page.versions.map(row).join('') +
      page.commonPrefixes.map((p) => `<CommonPrefixes>${element('Prefix', p)}</CommonPrefixes>`).join(''),
  );
}
