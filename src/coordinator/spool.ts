import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AilinkError } from '../shared/errors.ts';
import type { MaterialUpdateSource } from '../task/index.ts';

/**
 * Where an attempt keeps the survivors' stored updates between their fetch and the recompute material's upload: on
 * disk, so that the coordinator's memory holds the running sum and the updates in flight, never all n of them (about
 * 6.7 GB for the CNN at 1,000 organisations). An attempt's directory is made on the first write and removed by
 * `close`; a restarted coordinator fetches the updates again, so what a crash leaves is only garbage (`sweep`).
 */
export interface UpdateSpool {
  write(account: string, bytes: Uint8Array): Promise<void>;
  has(account: string): boolean;
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
    async write(account, bytes) {
      await writeFile(await fileOf(account), bytes, { mode: 0o600 });
      sizes.set(account, bytes.byteLength);
    },
    has: (account) => sizes.has(account),
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
