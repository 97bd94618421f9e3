import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { AilinkError } from '../shared/errors.ts';
import type { MaterialUpdateSource } from '../task/index.ts';

/**
 * Where an attempt keeps the survivors' stored updates from their fetch to the recompute material's upload: on disk,
 * so that the coordinator's memory holds the running sum and the updates in flight, never all n of them (about 6.7 GB
 * for the CNN at 1,000 organisations). A fetch streams into it and reads back only what it needs, so not even an
 * update in flight is held as the fetched object and its pieces. An attempt's directory is made on the first write and
 * removed by `close`; a restarted coordinator fetches the updates again, so what a crash leaves is only garbage
 * (`sweep`).
 */
export interface UpdateSpool {
  /** Writes the account's update as its chunks come; returns its length. A stream that fails leaves nothing spooled. */
  write(account: string, chunks: AsyncIterable<Uint8Array>): Promise<number>;
  has(account: string): boolean;
  /** Fills `into` with the spooled update's bytes from `position` on. @throws INTERNAL when they run short */
  read(account: string, position: number, into: Uint8Array): Promise<void>;
  /** Forgets the account's update (one refused after it was spooled). */
  remove(account: string): Promise<void>;
  /** The update as the material writer reads it: streamed from disk, its length known. */
  source(account: string): MaterialUpdateSource;
  close(): Promise<void>;
}

export function createUpdateSpool(root: string, label: string): UpdateSpool {
  const sizes = new Map<string, number>();
  let dir: Promise<string> | undefined;
  const fileOf = async (account: string) => {
    dir ??= mkdir(root, { recursive: true, mode: 0o700 }).then(() =>
      mkdtemp(join(root, `${label.replace(/[^A-Za-z0-9-]/g, '_')}-`)),
    );
    return join(await dir, account);
  };
  return {
    async write(account, chunks) {
      sizes.delete(account);
      const file = await fileOf(account);
      const handle = await open(file, 'w', 0o600);
      let length = 0;
      try {
        for await (const chunk of chunks)
          for (let at = 0; at < chunk.byteLength; ) {
            const { bytesWritten } = await handle.write(chunk, at, chunk.byteLength - at);
            at += bytesWritten;
            length += bytesWritten;
          }
      } catch (err) {
        await handle.close();
        await rm(file, { force: true });
        throw err;
      }
      await handle.close();
      sizes.set(account, length);
      return length;
    },
    has: (account) => sizes.has(account),
    async read(account, position, into) {
      const handle = await open(await fileOf(account), 'r');
      try {
        let at = 0;
        while (at < into.byteLength) {
          const { bytesRead } = await handle.read(into, at, into.byteLength - at, position + at);
          if (bytesRead === 0)
            throw new AilinkError(
              'INTERNAL',
              `expected ${into.byteLength} bytes of the spooled update of ${account} at ${position}, read ${at} (the spool changed under the coordinator)`,
            );
          at += bytesRead;
        }
      } finally {
        await handle.close();
      }
    },
    async remove(account) {
      sizes.delete(account);
      await rm(await fileOf(account), { force: true });
    },
    source(account) {
      const bytes = sizes.get(account);
      if (bytes === undefined)
        throw new AilinkError(
          'INTERNAL',
          `expected a spooled update of ${account}, found none (a bug in the caller: report it with the coordinator log)`,
        );
      return {
        account,
        bytes,
        async *read() {
          for await (const chunk of createReadStream(await fileOf(account), { highWaterMark: 1 << 20 }))
            yield new Uint8Array(chunk as Buffer);
        },
      };
    },
    async close() {
      sizes.clear();
      if (dir !== undefined) await rm(await dir, { recursive: true, force: true });
      dir = undefined;
    },
  };
}

/** Removes what attempts left in `root` when their process died (a coordinator calls it once, before any attempt). */
export async function sweepSpool(root: string): Promise<void> {
  await rm(root, { recursive: true, force: true });
}
