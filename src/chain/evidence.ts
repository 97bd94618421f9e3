import { blake2AsU8a, decodeAddress } from '@polkadot/util-crypto';
import { bytesEqual, toHex } from '../shared/bytes.ts';
import { AilinkError } from '../shared/errors.ts';
import type { ChainBlock } from './client.ts';

/**
 * Chain evidence a reader checks offline: a block's SCALE header and its extrinsics as the chain encoded them. The
 * header hashes (blake2-256) to the block hash, names its parent's hash, and commits to the extrinsics through
 * `extrinsicsRoot`, the root of Substrate's ordered trie of the encoded extrinsics (keys SCALE-compact indices). So a
 * run of blocks linked by parent hash, ending in a tip hash the reader compares with a chain it trusts, proves that
 * these very extrinsics were included, in this order. What it does not prove: an extrinsic's outcome (events live in
 * state, under `stateRoot`, and are not carried), and the decoded view's reading of a call beyond the checks below.
 */

export interface RawBlock {
  readonly number: number;
  /** 0x-hex. */
  readonly hash: string;
  /** The SCALE-encoded header. */
  readonly header: Uint8Array;
  /** Each extrinsic as the block body encodes it (with its compact length prefix). */
  readonly extrinsics: readonly Uint8Array[];
}

export interface DecodedHeader {
  readonly parentHash: string;
  readonly number: number;
  readonly stateRoot: string;
  readonly extrinsicsRoot: string;
}

/** One way a block's evidence fails: which field, expected vs found. */
export interface EvidenceProblem {
  readonly field: string;
  readonly message: string;
}

const hex = (b: Uint8Array) => `0x${toHex(b)}`;

/** Reads a SCALE compact integer at `at`; returns the value and the offset after it. */
function readCompact(bytes: Uint8Array, at: number, what: string): { value: number; next: number } {
  const b0 = bytes[at];
  if (b0 === undefined) throw malformed(what, 'ends before a compact integer');
  const mode = b0 & 3;
  const need = mode === 0 ? 1 : mode === 1 ? 2 : mode === 2 ? 4 : 5 + (b0 >> 2);
  if (at + need > bytes.byteLength) throw malformed(what, 'ends inside a compact integer');
  if (mode === 0) return { value: b0 >> 2, next: at + 1 };
  if (mode === 1) return { value: (b0 | (bytes[at + 1]! << 8)) >> 2, next: at + 2 };
  if (mode === 2)
    return {
      value: (b0 | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) >>> 2,
      next: at + 4,
    };
  let v = 0n;
  for (let i = need - 1; i >= 1; i--) v = (v << 8n) | BigInt(bytes[at + i]!);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw malformed(what, 'has a compact integer beyond 2^53');
  return { value: Number(v), next: at + need };
}

/** SCALE compact encoding of a whole number ≥ 0 (what blocks and extrinsics prefix their lengths with). */
export function compact(n: number): Uint8Array {
  if (n < 1 << 6) return Uint8Array.of(n << 2);
  if (n < 1 << 14) return Uint8Array.of(((n << 2) | 1) & 0xff, n >> 6);
  if (n < 1 << 30) {
    const v = (n * 4 + 2) >>> 0;
    return Uint8Array.of(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24);
  }
  const out: number[] = [];
  for (let v = BigInt(n); v > 0n; v >>= 8n) out.push(Number(v & 0xffn));
  return Uint8Array.of(((out.length - 4) << 2) | 3, ...out);
}

const malformed = (what: string, why: string) =>
  new AilinkError('BUNDLE_MALFORMED', `${what}: the SCALE encoding ${why}`);

/** Decodes a header's fixed fields (parent hash, number, state root, extrinsics root). @throws BUNDLE_MALFORMED */
export function decodeHeader(bytes: Uint8Array): DecodedHeader {
  if (bytes.byteLength < 32 + 1 + 64) throw malformed('header', `is ${bytes.byteLength} bytes, too short`);
  const { value: number, next } = readCompact(bytes, 32, 'header number');
  if (next + 64 > bytes.byteLength) throw malformed('header', 'ends before its roots');
  return {
    parentHash: hex(bytes.subarray(0, 32)),
    number,
    stateRoot: hex(bytes.subarray(next, next + 32)),
    extrinsicsRoot: hex(bytes.subarray(next + 32, next + 64)),
  };
}

export const blockHashOf = (header: Uint8Array): string => hex(blake2AsU8a(header, 256));

// --- Substrate's trie (sp-trie's node codec), enough for an ordered trie root -------------------------------------

const nibblesOf = (key: Uint8Array): number[] => [...key].flatMap((b) => [b >> 4, b & 15]);

/** The node header: a prefix of `bits` bits, then the partial key's nibble count, overflowing into extra bytes. */
function nodeHeader(prefix: number, bits: number, nibbles: number): number[] {
  const max = 255 >> bits;
  const first = Math.min(max - 1, nibbles);
  if (first === nibbles) return [prefix | nibbles];
  const out = [prefix | max];
  for (let rest = nibbles - first; rest > 0; ) {
    if (rest < 256) {
      out.push(rest - 1);
      rest = 0;
    } else {
      out.push(255);
      rest -= 255;
    }
  }
  return out;
}

/** A partial key: an odd count puts its first nibble alone in the low half of the first byte. */
function partialKey(n: readonly number[]): number[] {
  const out: number[] = [];
  let i = 0;
  if (n.length % 2 === 1) out.push(n[i++]!);
  for (; i < n.length; i += 2) out.push((n[i]! << 4) | n[i + 1]!);
  return out;
}

interface Entry {
  readonly key: readonly number[];
  readonly value: Uint8Array;
}

function encodeValue(value: Uint8Array, version: 0 | 1): { bytes: Uint8Array; hashed: boolean } {
  // State version 1 stores a value of 33 bytes or more by its hash.
  if (version === 1 && value.byteLength >= 33) return { bytes: blake2AsU8a(value, 256), hashed: true };
  return { bytes: Uint8Array.from([...compact(value.byteLength), ...value]), hashed: false };
}

function encodeNode(entries: readonly Entry[], depth: number, version: 0 | 1): Uint8Array {
  if (entries.length === 1) {
    const e = entries[0]!;
    const partial = e.key.slice(depth);
    const v = encodeValue(e.value, version);
    const head = v.hashed
      ? nodeHeader(0b001 << 5, 3, partial.length)
      : nodeHeader(0b01 << 6, 2, partial.length);
    return Uint8Array.from([...head, ...partialKey(partial), ...v.bytes]);
  }
  // The longest prefix all keys share below `depth`.
  let common = 0;
  const first = entries[0]!.key;
  while (
    depth + common < first.length &&
    entries.every((e) => e.key.length > depth + common && e.key[depth + common] === first[depth + common])
  )
    common++;
  const at = depth + common;
  const here = entries.find((e) => e.key.length === at);
  const children: Uint8Array[] = [];
  let bitmap = 0;
  for (let nibble = 0; nibble < 16; nibble++) {
    const group = entries.filter((e) => e.key.length > at && e.key[at] === nibble);
    if (group.length === 0) continue;
    bitmap |= 1 << nibble;
    const child = encodeNode(group, at + 1, version);
    const ref = child.byteLength >= 32 ? blake2AsU8a(child, 256) : child;
    children.push(Uint8Array.from([...compact(ref.byteLength), ...ref]));
  }
  const partial = first.slice(depth, at);
  const v = here === undefined ? undefined : encodeValue(here.value, version);
  const head =
    v === undefined
      ? nodeHeader(0b10 << 6, 2, partial.length)
      : v.hashed
        ? nodeHeader(0b0001 << 4, 4, partial.length)
        : nodeHeader(0b11 << 6, 2, partial.length);
  return Uint8Array.from([
    ...head,
    ...partialKey(partial),
    bitmap & 0xff,
    bitmap >> 8,
    ...(v?.bytes ?? []),
    ...children.flatMap((c) => [...c]),
  ]);
}

/**
 * Substrate's ordered trie root (blake2-256): `values[i]` under the key SCALE-compact(i). Version 0 stores values
 * inline; version 1 stores values of 33 bytes or more by their hash.
 */
export function orderedTrieRoot(values: readonly Uint8Array[], version: 0 | 1 = 0): string {
  if (values.length === 0) return hex(blake2AsU8a(Uint8Array.of(0), 256));
  const entries = values
    .map((value, i) => ({ key: nibblesOf(compact(i)), value }))
    .sort((a, b) => compareNibbles(a.key, b.key));
  return hex(blake2AsU8a(encodeNode(entries, 0, version), 256));
}

function compareNibbles(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/**
 * How `root` commits to `extrinsics`, or null when it does not: Substrate's ordered trie root (state version 0 or 1),
 * or — on the embedded dev chain, whose block builder (chopsticks) writes no trie root — blake2-256 of the encoded
 * extrinsics one after another. Each extrinsic carries its length, so either binds the list and its order.
 */
export function extrinsicsCommitment(
  extrinsics: readonly Uint8Array[],
  root: string,
): 'trie-v0' | 'trie-v1' | 'dev-concat' | null {
  if (orderedTrieRoot(extrinsics, 0) === root) return 'trie-v0';
  if (orderedTrieRoot(extrinsics, 1) === root) return 'trie-v1';
  const all = Buffer.concat(extrinsics.map((e) => Buffer.from(e.buffer, e.byteOffset, e.byteLength)));
  if (hex(blake2AsU8a(all, 256)) === root) return 'dev-concat';
  return null;
}

// --- the checks ----------------------------------------------------------------------------------------------------

/** Where an extrinsic's body starts (after its compact length), and whether that length is the rest of the bytes. */
function body(ex: Uint8Array): Uint8Array | undefined {
  try {
    const { value, next } = readCompact(ex, 0, 'extrinsic');
    return next + value === ex.byteLength ? ex.subarray(next) : undefined;
  } catch {
    return undefined;
  }
}

/** The signer's public key of a signed v4 extrinsic addressed by `MultiAddress::Id`, else undefined. */
function signerKey(ex: Uint8Array): Uint8Array | undefined {
  const b = body(ex);
  if (b === undefined || b[0] !== 0x84 || b[1] !== 0x00 || b.byteLength < 34) return undefined;
  return b.subarray(2, 34);
}

/** An SS58 address's public key; undefined for what is not an address. */
function addressKey(address: string): Uint8Array | undefined {
  try {
    return decodeAddress(address);
  } catch {
    return undefined;
  }
}

function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(haystack.buffer, haystack.byteOffset, haystack.byteLength).includes(
    Buffer.from(needle.buffer, needle.byteOffset, needle.byteLength),
  );
}

/**
 * Checks one block's evidence on its own: the header hashes to the block hash and carries the block's number and
 * parent, the extrinsics hash to the header's extrinsicsRoot (state version 0 or 1), and the decoded block says no
 * more than the raw extrinsics do: as many extrinsics, each signed one's signer the key in its signature, each remark's
 * payload and each transfer's destination inside the extrinsic it is listed under, the timestamp at the end of an
 * unsigned extrinsic. What is not checked here: whether a
 * call applied (`applied` comes from the events), that the inherent holding the timestamp is `timestamp.set` (no
 * metadata here to read its call index), and a call hidden in an extrinsic the decoded view leaves out of its calls.
 */
export function checkBlockEvidence(raw: RawBlock, block: ChainBlock): EvidenceProblem[] {
  const out: EvidenceProblem[] = [];
  const add = (field: string, message: string) => out.push({ field, message });
  let header: DecodedHeader;
  try {
    header = decodeHeader(raw.header);
  } catch (err) {
    add('header', (err as Error).message);
    return out;
  }
  const hash = blockHashOf(raw.header);
  if (hash !== raw.hash || hash !== block.hash)
    add('hash', `the header hashes to ${hash}, the block is listed as ${block.hash}`);
  if (header.number !== raw.number || header.number !== block.number)
    add('number', `the header is block ${header.number}, listed as ${block.number}`);
  if (header.parentHash !== block.parentHash)
    add('parentHash', `the header's parent is ${header.parentHash}, the block lists ${block.parentHash}`);
  if (extrinsicsCommitment(raw.extrinsics, header.extrinsicsRoot) === null)
    add(
      'extrinsicsRoot',
      `the ${raw.extrinsics.length} extrinsics have trie root ${orderedTrieRoot(raw.extrinsics, 0)} (v0) / ${orderedTrieRoot(raw.extrinsics, 1)} (v1), the header commits to ${header.extrinsicsRoot}`,
    );
  if (raw.extrinsics.length !== block.extrinsics.length)
    add(
      'extrinsics',
      `the block body has ${raw.extrinsics.length} extrinsics, the decoded block lists ${block.extrinsics.length}`,
    );
  // The timestamp the rules read is `timestamp.set`'s argument, a SCALE compact at the end of an unsigned extrinsic.
  if (block.timestamp !== 0) {
    const encoded = compact(block.timestamp);
    const inherent = raw.extrinsics.some((x) => {
      const b = body(x);
      return (
        b !== undefined &&
        signerKey(x) === undefined &&
        b.byteLength > encoded.byteLength &&
        bytesEqual(b.subarray(b.byteLength - encoded.byteLength), encoded)
      );
    });
    if (!inherent)
      add(
        'timestamp',
        `no inherent of the block sets the timestamp ${block.timestamp} the block is listed with`,
      );
  }
  block.extrinsics.forEach((ex, i) => {
    const bytes = raw.extrinsics[ex.index];
    const where = `extrinsics[${ex.index}]`;
    if (ex.index !== i || bytes === undefined) {
      add(where, `expected extrinsic ${i} at position ${i}, found index ${ex.index}`);
      return;
    }
    const key = signerKey(bytes);
    if (ex.signer !== null) {
      const listed = addressKey(ex.signer);
      if (key === undefined || listed === undefined || !bytesEqual(key, listed))
        add(
          `${where}.signer`,
          `listed as signed by ${ex.signer}, the extrinsic is ${key === undefined ? 'not signed by an account id' : `signed by 0x${toHex(key)}`}`,
        );
    } else if (key !== undefined) add(`${where}.signer`, 'listed as unsigned, the extrinsic is signed');
    ex.calls.forEach(({ call }, item) => {
      if (call.kind === 'remark' && !contains(bytes, call.payload))
        add(`${where}.calls[${item}]`, 'the remark payload listed is not in the extrinsic');
      if (call.kind !== 'transfer') return;
      const to = addressKey(call.to);
      if (to === undefined || !contains(bytes, to))
        add(`${where}.calls[${item}]`, `the transfer's destination ${call.to} is not in the extrinsic`);
    });
  });
  return out;
}
