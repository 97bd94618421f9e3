import { readFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { z } from 'zod';
import { ProtocolConfigSchema } from '../../chain/index.ts';
import type { PeerRef } from '../../p2p/index.ts';
import { AilinkError } from '../../shared/errors.ts';

/**
 * `network.json`: what `ailink dev` started (role, pid, addresses) and where its shared files are, so that client
 * commands in another terminal find the network. Paths inside are relative to the file's folder.
 */
export const NetworkFileSchema = z.object({
  version: z.literal(1),
  profile: z.enum(['production', 'test']),
  chain: z.object({
    endpoint: z.string().regex(/^wss?:\/\//, 'expected a ws:// or wss:// endpoint'),
    /** The protocol parameters every indexer of this network must use. */
    protocol: ProtocolConfigSchema,
  }),
  operatorKey: z.string().min(1),
  processes: z.array(
    z.object({
      role: z.enum(['miner', 'verifier']),
      name: z.string(),
      pid: z.number().int().positive(),
      peerId: z.string(),
      addrs: z.array(z.string()),
      dataDir: z.string(),
    }),
  ),
});
export type NetworkFile = z.infer<typeof NetworkFileSchema>;

export interface LoadedNetwork {
  readonly file: NetworkFile;
  /** Absolute paths of the shared files. */
  readonly dir: string;
  readonly operatorKeyPath: string;
  readonly miners: PeerRef[];
}

/** @throws NETWORK_FILE_INVALID when missing or malformed, saying how to start a network. */
export function loadNetworkFile(path: string): LoadedNetwork {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (cause) {
    throw new AilinkError(
      'NETWORK_FILE_INVALID',
      `cannot read ${path} (${(cause as Error).message}); start a local network with \`ailink dev\` or pass --network FILE`,
      { cause },
    );
  }
  const parsed = NetworkFileSchema.safeParse(json);
  if (!parsed.success) {
    throw new AilinkError(
      'NETWORK_FILE_INVALID',
      `${path} is not a network file: ${parsed.error.issues[0]?.message}`,
    );
  }
  const dir = dirname(resolve(path));
  return {
    file: parsed.data,
    dir,
    operatorKeyPath: resolve(dir, parsed.data.operatorKey),
    miners: parsed.data.processes
      .filter((p) => p.role === 'miner')
      .map((p) => ({ peerId: p.peerId, addrs: p.addrs })),
  };
}

/** Writes atomically so a reader never sees half a file. */
export async function writeNetworkFile(path: string, network: NetworkFile): Promise<void> {
  const tmp = `${path}.tmp`;
  await writeFile(tmp, `${JSON.stringify(network, null, 2)}\n`);
  await rename(tmp, path);
}
