/**
 * In-memory twins for the Alt-DA API (src/gateway/altda.ts): a storage client whose puts file the object in a memory
 * chain state (Active) and its entry in the namespace. Shared by test/gateway/altda.test.ts and the fuzz edge.
 */
import { createHash } from 'node:crypto';
import { createMemoryState } from '../../src/chain/state.ts';
import type { Namespace, StoredObject } from '../../src/gateway/namespace.ts';
import { AilinkError } from '../../src/shared/errors.ts';
import type { PutOptions, StorageClient } from '../../src/storage/index.ts';

/** An in-memory storage network: put files the object in the chain state (Active) and its entry in the namespace. */
export function altdaTwins() {
  const state = createMemoryState();
  const blobs = new Map<string, Uint8Array>();
  const entries = new Map<string, StoredObject>();
  const buckets = new Set<string>();
  const puts: PutOptions[] = [];
  let deleted = 0;
  const storage: Pick<StorageClient, 'put' | 'get'> = {
    async put(source, options = {}) {
      const bytes = source as Uint8Array;
      puts.push(options);
      const fid = createHash('sha256').update(bytes).digest('hex');
      blobs.set(fid, bytes);
      state.apply([
        {
          key: `fileBank/files/${fid}`,
          value: {
            owner: 'me',
            size: bytes.byteLength,
            state: 'Active',
            declaredAt: 5,
            activeAt: 5,
            encryption: options.encrypt === false ? null : { alg: 'aes-256-gcm' },
            placements: ['m1', 'm2', 'm1'],
          },
        },
        {
          key: 'audit/records/m1',
          value: { passes: 3, misses: 0, consecutiveMisses: 0, lastOutcome: { block: 9, outcome: 'pass' } },
        },
      ]);
      const entry = typeof options.entry === 'function' ? options.entry() : options.entry;
      if (entry !== undefined) {
        entries.set(`${entry.bucket}/${entry.key}`, {
          key: entry.key,
          fid,
          size: bytes.byteLength,
          modified: 0,
          etag: '',
          contentType: '',
          metadata: {},
          retention: undefined,
          legalHold: false,
          versionId: undefined,
        });
      }
      return { fid, record: {} as never, miners: [] };
    },
    async *get(fid) {
      const b = blobs.get(fid);
      if (b === undefined) throw new AilinkError('OBJECT_NOT_FOUND', fid);
      yield b;
    },
  };
  // The S3 app around the API needs a whole namespace; what only S3 uses is never called here.
  const unused = async (): Promise<never> => {
    throw new Error('not used by the Alt-DA API');
  };
  const namespace: Namespace = {
    putLegalHold: unused,
    putVersioning: unused,
    versions: unused,
    putDeleteMarker: unused,
    removeDeleteMarker: unused,
    owner: 'me',
    buckets: async () => [...buckets].map((name) => ({ name, created: 0 })),
    bucket: async (name) =>
      buckets.has(name)
        ? { created: 0, objectLock: false, defaultRetention: null, versioning: undefined }
        : undefined,
    async createBucket(name) {
      buckets.add(name);
    },
    async deleteBucket() {},
    objects: async () => [],
    object: async (bucket, key) => entries.get(`${bucket}/${key}`),
    file: async () => undefined,
    files: async () => [],
    putRetention: async () => {},
    putObjectLock: async () => {},
    async deleteObject() {
      deleted++;
      return { block: 1 };
    },
  };
  const indexer = { state, sync: async () => 0, height: () => 12 };
  return { storage, namespace, indexer, puts, blobs, buckets, entries, deleted: () => deleted };
}
