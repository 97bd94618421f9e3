import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { newPeerKey } from '../p2p/index.ts';
import { fromHex, toHex } from '../shared/bytes.ts';
import type { Random } from '../shared/clock.ts';

/**
 * A role's long-lived secrets, each in a 0600 file created on first use: the coordinator's round-signing key, an
 * organisation's identity key for a task (bound to its account on chain at admission), a libp2p identity (so that a
 * restarted node keeps its peer id).
 */

/** A 32-byte secret kept (hex) in `path`. */
export function secretIn(path: string, random: Random): Uint8Array {
  if (existsSync(path)) return fromHex(readFileSync(path, 'utf8').trim(), path);
  mkdirSync(dirname(path), { recursive: true });
  const secret = random(32);
  writeFileSync(path, `${toHex(secret)}\n`, { mode: 0o600 });
  chmodSync(path, 0o600);
  return secret;
}

/** A libp2p private key (protobuf bytes) kept in `path`. */
export async function peerKeyIn(path: string): Promise<Uint8Array> {
  if (existsSync(path)) return new Uint8Array(readFileSync(path));
  mkdirSync(dirname(path), { recursive: true });
  const key = await newPeerKey();
  writeFileSync(path, key, { mode: 0o600 });
  chmodSync(path, 0o600);
  return key;
}
