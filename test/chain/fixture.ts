import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { type ChainClient, connectChain } from '../../src/chain/client.ts';
import { type DevChain, type DevChainOptions, startDevChain } from '../../src/chain/devchain.ts';

export interface DevChainFixture {
  readonly chain: () => DevChain;
  readonly endpoint: () => string;
  readonly client: () => ChainClient;
  /** The tmp data dir, when `persist` was asked for. */
  readonly dataDir: () => string;
}

/**
 * Starts the real dev chain (chopsticks, in process, port 0) before the file's tests and stops it after them, with
 * a connected client. `persist` puts its blocks in a tmp data dir, removed at the end.
 */
export function useDevChain(
  options: { persist?: boolean; blockMode?: DevChainOptions['blockMode'] } = {},
): DevChainFixture {
  let chain: DevChain | undefined;
  let client: ChainClient | undefined;
  let dataDir: string | undefined;
  beforeAll(async () => {
    if (options.persist) dataDir = mkdtempSync(join(tmpdir(), 'ailink-chain-'));
    chain = await startDevChain({
      port: 0,
      ...(dataDir === undefined ? {} : { dataDir }),
      ...(options.blockMode === undefined ? {} : { blockMode: options.blockMode }),
    });
    client = await connectChain(chain.endpoint);
  });
  afterAll(async () => {
    await client?.close();
    await chain?.close();
    if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true });
  });
  const get = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`useDevChain: ${what} is not available (beforeAll has not run)`);
    return value;
  };
  return {
    chain: () => get(chain, 'the chain'),
    endpoint: () => get(chain, 'the chain').endpoint,
    client: () => get(client, 'the client'),
    dataDir: () => get(dataDir, 'a data dir (pass { persist: true })'),
  };
}
