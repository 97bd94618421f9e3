import { createHash } from 'node:crypto';
import { chmod, writeFile } from 'node:fs/promises';
import {
  cryptoWaitReady,
  decodeAddress,
  encodeAddress,
  sr25519PairFromSeed,
  sr25519Sign,
  sr25519Verify,
} from '@polkadot/util-crypto';
import { isReady as wasmReady, sr25519Verify as wasmSr25519Verify } from '@polkadot/wasm-crypto';
import { z } from 'zod';
import { fromHex, toHex } from './bytes.ts';
import type { Random } from './clock.ts';
import { AilinkError } from './errors.ts';
import { readPrivateFileSync } from './private-files.ts';
import { generateX25519, x25519PublicOf } from './x25519.ts';

/**
 * An account of a person or organisation: an sr25519 key (chain account, request signatures) and an X25519 key
 * (receiving wrapped data keys). Addresses use the generic Substrate SS58 prefix 42, what the dev chain expects.
 */
export interface Account {
  readonly address: string;
  readonly publicKey: Uint8Array;
  /** X25519 public key, hex: what others pass as `--to` so that the account can read their objects. */
  readonly readerKey: string;
  readonly x25519PrivateKey: Uint8Array;
  /** Signs an off-chain message: the signature is over `offChainMessage(message)`, never over the bytes as they are. */
  sign(message: Uint8Array): Uint8Array;
  /** Signs a transaction's signing payload as it is: for the chain client only, never for bytes others chose. */
  signTransaction(payload: Uint8Array): Uint8Array;
}

export const SS58_PREFIX = 42;

let ready: Promise<boolean> | undefined;
/**
 * Loads the WebAssembly crypto (schnorrkel): call once before verifying many signatures. Verifying works before it
 * too, on the slower pure-JS port.
 */
export function accountsReady(): Promise<boolean> {
  ready ??= cryptoWaitReady();
  return ready;
}

export function accountFromSeeds(sr25519Seed: Uint8Array, x25519PrivateKey: Uint8Array): Account {
  const pair = sr25519PairFromSeed(sr25519Seed);
  return {
    address: encodeAddress(pair.publicKey, SS58_PREFIX),
    publicKey: pair.publicKey,
    readerKey: toHex(x25519PublicOf(x25519PrivateKey)),
    x25519PrivateKey,
    sign: (message) => sr25519Sign(offChainMessage(message), pair),
    signTransaction: (payload) => sr25519Sign(payload, pair),
  };
}

const BYTES_OPEN = new TextEncoder().encode('<Bytes>');
const BYTES_CLOSE = new TextEncoder().encode('</Bytes>');

/**
 * What an off-chain signature signs: `<Bytes>` + message + `</Bytes>`, the form polkadot-js wallets and extensions
 * use for raw bytes. A transaction's signing payload starts with a call index and ends with a block hash, so it never
 * has this form: no off-chain signature (a receipt, a request, an admission) is ever a valid transaction signature.
 */
export function offChainMessage(message: Uint8Array): Uint8Array {
  const out = new Uint8Array(BYTES_OPEN.length + message.length + BYTES_CLOSE.length);
  out.set(BYTES_OPEN, 0);
  out.set(message, BYTES_OPEN.length);
  out.set(BYTES_CLOSE, BYTES_OPEN.length + message.length);
  return out;
}

/**
 * Signatures verified lately in this process, by a digest of address, message and signature, least recently used
 * first. Every index verifies every receipt it folds, and a process may hold many indexes (a demo's holds 11: sr25519
 * verification was 8.8 s of its 177 s on the CPU, each receipt verified 11 times). Verification is deterministic, so
 * a repeat needs only the digest, not even the address decoded (bench:signatures). Only successes are kept: refusals
 * are rare, and whoever sends them chooses them, so keeping them could only push successes out.
 */
const verified = new Set<string>();
const MAX_VERIFIED = 16_384;
/** Every part of fixed length but the last (the address by its own digest): no two inputs read as one another. */
const verifiedDigest = (address: string, message: Uint8Array, signature: Uint8Array) =>
  createHash('sha256')
    .update(signature)
    .update(createHash('sha256').update(address).digest())
    .update(message)
    .digest('base64');

/**
 * True when `signature` is `address`'s off-chain sr25519 signature of `message`, i.e. over `offChainMessage(message)`;
 * a signature over the raw bytes is refused. False for any malformed input.
 */
export function verifySignature(address: string, message: Uint8Array, signature: Uint8Array): boolean {
  try {
    // Fixed length first: the digest below tells its parts apart by their lengths.
    if (signature.length !== 64) return false;
    const seen = verifiedDigest(address, message, signature);
    if (verified.delete(seen)) {
      verified.add(seen);
      return true;
    }
    const key = decodeAddress(address);
    if (key.length !== 32) return false;
    const signed = offChainMessage(message);
    // schnorrkel in WebAssembly once `accountsReady` has loaded it: 6.9× faster (bench:signatures) than
    // @polkadot/util-crypto's pure-JS port, whose BigInt temporaries were 92 % of a miner's malloc calls (README,
    // Soak). Both verify the same signatures (test/shared/signatures.test.ts).
    const ok = wasmReady()
      ? wasmSr25519Verify(signature, signed, key)
      : sr25519Verify(signed, signature, key);
    if (ok) {
      if (verified.size >= MAX_VERIFIED) verified.delete(verified.values().next().value!);
      verified.add(seen);
    }
    return ok;
  } catch {
    return false;
  }
}

/** True when `address` is a well-formed SS58 address. */
const knownAddresses = new Set<string>();

export function isAddress(address: string): boolean {
  if (knownAddresses.has(address)) return true;
  try {
    const ok = decodeAddress(address).length === 32;
    // Valid addresses recur in every message of a task: remember them (bounded) rather than decode each time.
    if (ok) {
      if (knownAddresses.size >= 4096) knownAddresses.clear();
      knownAddresses.add(address);
    }
    return ok;
  } catch {
    return false;
  }
}

const hex32 = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex characters');
const KeyFileSchema = z.object({
  kind: z.literal('ailink-account'),
  version: z.literal(1),
  address: z.string(),
  sr25519Seed: hex32,
  x25519PrivateKey: hex32,
  readerKey: hex32,
});

/**
 * Creates a new account and writes it to `path` with mode 0600. Refuses to overwrite an existing file.
 * @throws KEY_FILE_INVALID when the file already exists.
 */
export async function createKeyFile(path: string, random: Random): Promise<Account> {
  await accountsReady();
  const sr25519Seed = random(32);
  const x25519PrivateKey = generateX25519().privateKey;
  const account = accountFromSeeds(sr25519Seed, x25519PrivateKey);
  const file: z.infer<typeof KeyFileSchema> = {
    kind: 'ailink-account',
    version: 1,
    address: account.address,
    sr25519Seed: toHex(sr25519Seed),
    x25519PrivateKey: toHex(x25519PrivateKey),
    readerKey: account.readerKey,
  };
  try {
    await writeFile(path, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new AilinkError(
        'KEY_FILE_INVALID',
        `${path} already exists; choose another --out or delete it first`,
      );
    }
    throw cause;
  }
  await chmod(path, 0o600); // the umask may have narrowed it further, never widened; make it exact
  return account;
}

/**
 * Loads an account. Like ssh, refuses a key file that others can read.
 * @throws KEY_FILE_PERMISSIONS when group or others can read it (the message says `chmod 600 FILE`);
 *   KEY_FILE_INVALID when missing, malformed or inconsistent.
 */
export async function loadKeyFile(path: string): Promise<Account> {
  let text: string;
  try {
    text = readPrivateFileSync(path).toString('utf8');
  } catch (cause) {
    if (cause instanceof AilinkError) throw cause;
    throw new AilinkError(
      'KEY_FILE_INVALID',
      `${path}: cannot read key file (${(cause as Error).message}); create one with \`ailink keys new --out ${path}\``,
      { cause },
    );
  }
  let parsed: z.infer<typeof KeyFileSchema>;
  try {
    parsed = KeyFileSchema.parse(JSON.parse(text));
  } catch (cause) {
    throw new AilinkError(
      'KEY_FILE_INVALID',
      `${path}: expected an ailink-account key file, got something else`,
      {
        cause,
      },
    );
  }
  await accountsReady();
  const account = accountFromSeeds(fromHex(parsed.sr25519Seed), fromHex(parsed.x25519PrivateKey));
  if (account.address !== parsed.address || account.readerKey !== parsed.readerKey) {
    throw new AilinkError(
      'KEY_FILE_INVALID',
      `${path}: the stored address or reader key does not match the seeds`,
    );
  }
  return account;
}
