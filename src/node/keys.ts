import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { newPeerKey } from '../p2p/index.ts';
import { fromHex, toHex } from '../shared/bytes.ts';
import type { Random } from '../shared/clock.ts';
import { makePrivateDir, readPrivateFileSync, writePrivateFileSync } from '../shared/private-files.ts';

/**
 * A role's long-lived secrets, each in a 0600 file created on first use: the coordinator's round-signing key, an
 * organisation's identity key for a task (bound to its account on chain at admission), a libp2p identity (so that a
 * restarted node keeps its peer id).
 */

/**
 * A 32-byte secret kept (hex) in `path`; a missing directory is created 0700.
 * @throws KEY_FILE_PERMISSIONS when group or others can read the file.
 */
export function secretIn(path: string, random: Random): Uint8Array {
  if (existsSync(path)) return fromHex(readPrivateFileSync(path).toString('utf8').trim(), path);
  makePrivateDir(dirname(path));
  const secret = random(32);
  writePrivateFileSync(path, `${toHex(secret)}\n`);
  return secret;
}

/**
 * A libp2p private key (protobuf bytes) kept in `path`; a missing directory is created 0700.
 * @throws KEY_FILE_PERMISSIONS when group or others can read the file.
 */
export async function peerKeyIn(path: string): Promise<Uint8Array> {
  if (existsSync(path)) return new Uint8Array(readPrivateFileSync(path));
  makePrivateDir(dirname(path));
  const key = await newPeerKey();
  writePrivateFileSync(path, key);
  return key;
}
