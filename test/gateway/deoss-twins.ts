/**
 * In-memory twins of the storage client and the namespace that the DeOSS routes use (src/gateway/deoss.ts): objects
 * by a counter fid, with the file record the chain would hold. Shared by test/gateway/deoss.test.ts and the fuzz edge.
 */
import { createHash } from 'node:crypto';
import type { DeossDeps } from '../../src/gateway/deoss.ts';
import type { StoredFile } from '../../src/gateway/namespace.ts';
import { AilinkError } from '../../src/shared/errors.ts';
import type { StorageClient } from '../../src/storage/index.ts';

export function deossTwins(ownerAddress: string) {
  const objects = new Map<string, { bytes: Buffer; file: StoredFile }>();
  const puts: string[] = [];
  /** The size each put was told up front (undefined: not told). */
  const toldSizes: (number | undefined)[] = [];
  let n = 0;
  const storage: Pick<StorageClient, 'put' | 'get'> = {
    async put(source, options = {}) {
      const chunks: Uint8Array[] = [];
      for await (const c of source as AsyncIterable<Uint8Array>) chunks.push(c);
      const bytes = Buffer.concat(chunks);
      const fid = createHash('sha256').update(`${n++}`).digest('hex');
      const entry = typeof options.entry === 'function' ? options.entry() : options.entry;
      objects.set(fid, {
        bytes,
        file: {
          fid,
          owner: ownerAddress,
          name: options.name ?? null,
          size: bytes.length,
          state: 'Active',
          modified: 0,
          placements: ['m0', 'm1'],
          segments: [{ fragments: ['f0', 'f1'] }],
          bucket: entry?.bucket,
          key: entry?.key,
          contentType: entry?.contentType,
        },
      });
      puts.push(fid);
      toldSizes.push(options.size);
      return { fid, record: {} as never, miners: [] };
    },
    async *get(fid, options = {}) {
      const o = objects.get(fid);
      if (o === undefined) throw new AilinkError('OBJECT_NOT_FOUND', `no ${fid}`);
      const r = options.range;
      yield r === undefined ? o.bytes : o.bytes.subarray(r.start, r.end + 1);
    },
  };
  const namespace: DeossDeps['namespace'] = {
    owner: ownerAddress,
    bucket: async (name) =>
      name === 'media'
        ? { created: 0, objectLock: false, defaultRetention: null, versioning: undefined }
        : undefined,
    deleteObject: async (fid) => {
      objects.delete(fid);
      return { block: 7 };
    },
    file: async (fid) => objects.get(fid)?.file,
    files: async () => [...objects.values()].map((o) => o.file),
  };
  return { storage, namespace, objects, puts, toldSizes };
}
