import { keccakAsU8a } from '@polkadot/util-crypto';
import { toHex } from '../shared/bytes.ts';
import { AilinkError } from '../shared/errors.ts';

/**
 * OP Stack Alt-DA commitments (ethereum-optimism/specs, specs/experimental/alt-da.md), as op-node's DA client
 * (op-alt-da's DAClient) puts them in URLs: `0x` and the lowercase hex of `commitment_type ‖ commitment_bytes`.
 *
 * - type 0, keccak256: `0x00 ‖ keccak256(data)` (32 bytes); anyone can compute it, and the L1 challenge contract
 *   can resolve it.
 * - type 1, generic ("da-service"): `0x01 ‖ da_layer_byte ‖ payload`. AI-LINK's payload is the object's fid (32
 *   bytes): the Merkle root over its segment hashes, which the storage client checks every fetched byte against.
 *
 * Pure: no I/O.
 */

export const KECCAK256_COMMITMENT = 0x00;
export const GENERIC_COMMITMENT = 0x01;
/**
 * AI-LINK's DA layer byte in generic commitments. The spec leaves layers to agree their bytes among themselves
 * (specs discussion 135; 0x00 EigenDA, 0x0a Avail, 0x0c Celestia are taken); 0x41 ("A") is not known to be, and
 * is not registered there yet.
 */
export const AILINK_DA_LAYER = 0x41;

export type Commitment =
  | { readonly type: 'keccak256'; readonly hash: string }
  | { readonly type: 'ailink'; readonly fid: string };

const HEX64 = /^[0-9a-f]{64}$/;
/** The longest commitment text we read: the generic form is 0x + 2·34 characters; anything far longer is junk. */
const MAX_TEXT = 200;

const bad = (message: string, text: string) =>
  new AilinkError('INVALID_INPUT', message, { details: { commitment: text.slice(0, MAX_TEXT) } });

/** keccak256 of `data`, as 64 lowercase hex characters. */
export const keccak256Hex = (data: Uint8Array): string => toHex(keccakAsU8a(data, 256));

/** The type-0 commitment of `data`. */
export const keccakCommitment = (data: Uint8Array): Commitment => ({
  type: 'keccak256',
  hash: keccak256Hex(data),
});

/** The type-1 commitment of an AI-LINK object. */
export function fidCommitment(fid: string): Commitment {
  if (!HEX64.test(fid))
    throw bad(`expected a fid of 64 lowercase hex characters, got ${fid.slice(0, 80)}`, fid);
  return { type: 'ailink', fid };
}

/** The commitment's bytes: what a generic `POST /put` answers with, raw (DAClient decodes the body as bytes). */
export function encodeCommitment(c: Commitment): Uint8Array {
  const out =
    c.type === 'keccak256'
      ? Buffer.concat([Buffer.of(KECCAK256_COMMITMENT), Buffer.from(c.hash, 'hex')])
      : Buffer.concat([Buffer.of(GENERIC_COMMITMENT, AILINK_DA_LAYER), Buffer.from(c.fid, 'hex')]);
  return new Uint8Array(out);
}

/** `0x` and lowercase hex: the form DAClient puts in `/get/` and `/put/` URLs. */
export const commitmentHex = (c: Commitment): string => `0x${toHex(encodeCommitment(c))}`;

/**
 * Parses a commitment as a URL carries it: `0x` then hex (either case, as go-ethereum's hexutil reads it).
 * @throws INVALID_INPUT for malformed hex, an unknown type byte, a wrong length or another DA layer's commitment
 */
export function parseCommitment(text: string): Commitment {
  if (text.length > MAX_TEXT) throw bad(`expected a commitment of at most ${MAX_TEXT} characters`, text);
  if (!/^0[xX]/.test(text))
    throw bad(`expected a commitment beginning with 0x, got ${JSON.stringify(text)}`, text);
  const hex = text.slice(2).toLowerCase();
  if (hex.length === 0 || hex.length % 2 !== 0 || !/^[0-9a-f]+$/.test(hex)) {
    throw bad(`expected 0x and an even number of hex digits, got ${JSON.stringify(text)}`, text);
  }
  const type = Number.parseInt(hex.slice(0, 2), 16);
  const rest = hex.slice(2);
  if (type === KECCAK256_COMMITMENT) {
    if (!HEX64.test(rest)) {
      throw bad(`a keccak256 commitment (type 0x00) holds 32 bytes, this one ${rest.length / 2}`, text);
    }
    return { type: 'keccak256', hash: rest };
  }
  if (type === GENERIC_COMMITMENT) {
    const layer = Number.parseInt(rest.slice(0, 2) || 'ff', 16);
    if (rest.length === 0 || layer !== AILINK_DA_LAYER) {
      throw bad(
        `a generic commitment (type 0x01) for this gateway names DA layer 0x${AILINK_DA_LAYER.toString(16)} (AI-LINK), not ${rest.length === 0 ? 'none' : `0x${rest.slice(0, 2)}`}`,
        text,
      );
    }
    const fid = rest.slice(2);
    if (!HEX64.test(fid))
      throw bad(`an AI-LINK commitment holds a 32-byte fid, this one ${fid.length / 2}`, text);
    return { type: 'ailink', fid };
  }
  throw bad(`expected commitment type 0x00 (keccak256) or 0x01 (generic), got 0x${hex.slice(0, 2)}`, text);
}

/**
 * Checks that `data` is what a type-0 commitment commits to.
 * @throws INVALID_INPUT naming both hashes when it is not
 */
export function checkKeccak(c: Extract<Commitment, { type: 'keccak256' }>, data: Uint8Array): void {
  const actual = keccak256Hex(data);
  if (actual !== c.hash) {
    throw new AilinkError(
      'INVALID_INPUT',
      `the body's keccak256 is 0x${actual}, not the commitment's 0x${c.hash}: nothing was stored`,
      { details: { expected: c.hash, actual } },
    );
  }
}
