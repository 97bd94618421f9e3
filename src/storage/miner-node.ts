import { existsSync, mkdirSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createHost, newPeerKey } from '../p2p/index.ts';
import { accountsReady } from '../shared/account.ts';
import type { Clock, Random } from '../shared/clock.ts';
import { openFragmentStore } from './fragment-store.ts';
import { type MinerLog, startMinerService } from './miner-service.ts';
import { createRequestGuard } from './request-auth.ts';

export interface MinerNodeOptions {
  readonly dataDir: string;
  readonly listen: readonly string[];
  /** Accounts (SS58) allowed to store, read and delete. */
  readonly allow: readonly string[];
  readonly capacity: number;
  readonly maxFragmentSize: number;
  /** Longest signature lifetime accepted. */
  readonly maxSignatureTtlMs: number;
  readonly requestDeadlineMs: number;
}

export interface MinerNode {
  readonly peerId: string;
  addrs(): string[];
  stop(): Promise<void>;
}

/**
 * A storage miner: a libp2p host whose identity is kept in the data dir (so it comes back as the same peer), a
 * fragment store on disk, and the fragment protocol guarded by fresh signatures of allowed accounts.
 */
export async function startMinerNode(
  deps: { clock: Clock; random: Random; log: MinerLog },
  options: MinerNodeOptions,
): Promise<MinerNode> {
  mkdirSync(options.dataDir, { recursive: true });
  await accountsReady();
  const keyPath = join(options.dataDir, 'peer.key');
  if (!existsSync(keyPath)) await writeFile(keyPath, await newPeerKey(), { mode: 0o600, flag: 'wx' });
  const privateKey = new Uint8Array(await readFile(keyPath));
  const store = openFragmentStore(deps, {
    dir: options.dataDir,
    capacity: options.capacity,
    maxFragmentSize: options.maxFragmentSize,
  });
  const host = await createHost({
    privateKey,
    listen: options.listen,
    // A put body is at most one fragment; buffer that much so a fast sender is never reset.
    maxBufferSize: options.maxFragmentSize + 1024 * 1024,
  });
  const guard = createRequestGuard(
    { clock: deps.clock, nonces: store.nonces },
    { audience: host.peerId, authorised: new Set(options.allow), maxTtlMs: options.maxSignatureTtlMs },
  );
  await startMinerService(
    { host, store, guard, log: deps.log },
    { requestDeadlineMs: options.requestDeadlineMs },
  );
  return {
    peerId: host.peerId,
    addrs: () => host.addrs(),
    async stop() {
      await host.stop();
      store.close();
    },
  };
}
