import { createHash } from 'node:crypto';
import type { Namespace, StoredObject } from '../../src/gateway/namespace.ts';
import { AilinkError } from '../../src/shared/errors.ts';
import type { StorageClient } from '../../src/storage/index.ts';

/**
 * In-memory twins of the storage client and the account's namespace, enough for the S3 app to run every operation the
 * drive page uses (buckets, listing, put, copy, ranged get, delete). What they stand for runs for real in
 * test/integration/gateway-s3.test.ts; the page's tests are about the page and its signed requests, not the network.
 */
export function s3Twins(options: { owner?: string; now?: () => number } = {}) {
  const owner = options.owner ?? '5TwinOwner';
  const now = options.now ?? (() => Date.now());
  const blobs = new Map<string, Uint8Array>();
  const buckets = new Map<string, number>();
  /** `bucket` → key → object. */
  const entries = new Map<string, Map<string, StoredObject>>();
  /** The byte ranges asked of the storage client, in order (undefined: the whole object). */
  const reads: ({ start: number; end: number } | undefined)[] = [];

  const storage: Pick<StorageClient, 'put' | 'get'> = {
    async put(source, putOptions = {}) {
      const parts: Uint8Array[] = [];
      if (source instanceof Uint8Array) parts.push(source);
      else for await (const piece of source) parts.push(piece);
      const bytes = new Uint8Array(Buffer.concat(parts));
      const fid = createHash('sha256').update(bytes).update(String(blobs.size)).digest('hex');
      blobs.set(fid, bytes);
      // The entry is asked for once every byte was read, as the real client does before it declares.
      const entry = typeof putOptions.entry === 'function' ? putOptions.entry() : putOptions.entry;
      if (entry !== undefined) {
        const inBucket = entries.get(entry.bucket) ?? new Map<string, StoredObject>();
        entries.set(entry.bucket, inBucket);
        inBucket.set(entry.key, {
          key: entry.key,
          fid,
          size: bytes.byteLength,
          modified: now(),
          etag: entry.etag ?? fid.slice(0, 32),
          contentType: entry.contentType ?? 'application/octet-stream',
          metadata: entry.metadata ?? {},
          retention: entry.retention,
          legalHold: false,
          versionId: undefined,
        });
      }
      return { fid, record: {} as never, miners: [] };
    },
    async *get(fid, getOptions = {}) {
      const bytes = blobs.get(fid);
      if (bytes === undefined) throw new AilinkError('OBJECT_NOT_FOUND', `no object ${fid}`);
      reads.push(getOptions.range);
      const { start, end } = getOptions.range ?? { start: 0, end: bytes.byteLength - 1 };
      // In pieces, as the network delivers segments.
      for (let at = start; at <= end; at += 16 * 1024)
        yield bytes.slice(at, Math.min(at + 16 * 1024, end + 1));
    },
  };

  const s3Refusal = (s3: string, message: string) =>
    new AilinkError('INVALID_INPUT', message, { details: { s3 } });

  const namespace: Namespace = {
    owner,
    buckets: async () =>
      [...buckets].sort(([a], [b]) => (a < b ? -1 : 1)).map(([name, created]) => ({ name, created })),
    bucket: async (name) =>
      buckets.has(name)
        ? { created: buckets.get(name)!, objectLock: false, defaultRetention: null, versioning: undefined }
        : undefined,
    async createBucket(name) {
      if (buckets.has(name)) throw s3Refusal('BucketAlreadyOwnedByYou', `you already have a bucket ${name}`);
      buckets.set(name, now());
    },
    async deleteBucket(name) {
      if (!buckets.has(name)) throw s3Refusal('NoSuchBucket', `no bucket ${name}`);
      if ((entries.get(name)?.size ?? 0) > 0)
        throw s3Refusal('BucketNotEmpty', `bucket ${name} is not empty`);
      buckets.delete(name);
    },
    objects: async (bucket, prefix) =>
      [...(entries.get(bucket)?.values() ?? [])].filter((o) => o.key.startsWith(prefix)),
    object: async (bucket, key) => entries.get(bucket)?.get(key),
    async deleteObject(fid) {
      for (const inBucket of entries.values())
        for (const [key, o] of inBucket) if (o.fid === fid) inBucket.delete(key);
      blobs.delete(fid);
      return { block: 1 };
    },
    putRetention: async () => {},
    putObjectLock: async () => {},
    // Unversioned buckets only: the page never asks for versions.
    versions: async () => [],
    putVersioning: async () => {},
    putDeleteMarker: async () => ({ versionId: 'null' }),
    removeDeleteMarker: async () => {},
    putLegalHold: async () => {},
    file: async () => undefined,
    files: async () => [],
  };
  return { storage, namespace, blobs, buckets, entries, reads };
}
