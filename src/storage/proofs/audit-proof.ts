import type { Challenge } from '../../chain/index.ts';
import { fromHex } from '../../shared/bytes.ts';
import { AilinkError } from '../../shared/errors.ts';
import {
  blocksOf,
  decodeProof,
  deriveChallenge,
  encodeProof,
  type Podr2Key,
  type Podr2Params,
  proveChallenge,
  tagsOf,
  verifyProof,
} from './podr2.ts';
import {
  decodeIdleProof,
  deriveIdleChallenge,
  encodeIdleProof,
  type PoisParams,
  proveIdle,
  verifyIdle,
} from './pois.ts';

/**
 * One answer to an audit challenge, as the prover builds it and the verifier checks it: a PoDR2 proof over every
 * challenged service fragment (one constant-size answer however many there are) and an idle-space proof over the
 * committed idle files. Both sides derive the same block indices, coefficients and openings from the challenge seed.
 */

export interface ProofParams {
  readonly podr2: Podr2Params;
  readonly pois: PoisParams;
}

/** Where the prover reads what it holds. Any throw means it cannot answer: that is a miss, not a crash. */
export interface ProofSource {
  readBlock(name: string, offset: number, length: number): Promise<Uint8Array>;
  /** The fragment's tags (LANES u32 per block), as the verifier returned them. */
  tags(name: string): Uint8Array;
  /** The idle file with this index: its labels. */
  idleLabels(index: number): Promise<Uint8Array>;
}

const podr2ChallengeOf = (challenge: Challenge, params: ProofParams) =>
  deriveChallenge(
    fromHex(challenge.seed),
    challenge.fragments.map((f) => ({ name: f.name, blocks: blocksOf(f.size, params.podr2) })),
    params.podr2,
  );

/** @throws what the source throws (FRAGMENT_NOT_FOUND, FRAGMENT_CORRUPT, PROOF_MALFORMED for missing tags …) */
export async function buildAuditProof(
  challenge: Challenge,
  params: ProofParams,
  source: ProofSource,
): Promise<Uint8Array> {
  const podr2Challenge = podr2ChallengeOf(challenge, params);
  const { blockSize } = params.podr2;
  const blocks = new Map<string, Uint8Array>();
  const tags = new Map<string, Uint8Array>();
  for (const item of podr2Challenge.items) {
    const itemTags = source.tags(item.name);
    tags.set(item.name, itemTags);
    for (const i of item.indices) {
      blocks.set(`${item.name}/${i}`, await source.readBlock(item.name, i * blockSize, blockSize));
    }
  }
  const podr2 = proveChallenge(
    podr2Challenge,
    { block: (name, i) => blocks.get(`${name}/${i}`)!, tags: (name, i) => tagsOf(tags.get(name)!, i) },
    params.podr2,
  );
  const idleChallenge = deriveIdleChallenge(fromHex(challenge.seed), challenge.idle, params.pois);
  const labels = new Map<number, Uint8Array>();
  for (const { file } of idleChallenge) {
    if (!labels.has(file)) labels.set(file, await source.idleLabels(file));
  }
  const idle = proveIdle(idleChallenge, (file) => labels.get(file)!, params.pois);
  return encodeAuditProof(encodeProof(podr2), encodeIdleProof(idle));
}

/**
 * Checks an answer against the challenge the chain recorded for `miner`.
 * @throws PROOF_MALFORMED when the bytes do not decode, PROOF_INVALID when either proof fails (saying which)
 */
export function checkAuditProof(
  key: Podr2Key,
  miner: string,
  challenge: Challenge,
  proof: Uint8Array,
  params: ProofParams,
): void {
  const parts = splitAuditProof(proof);
  const podr2 = decodeProof(parts.podr2, params.podr2);
  if (!verifyProof(key, podr2ChallengeOf(challenge, params), podr2, params.podr2)) {
    throw new AilinkError(
      'PROOF_INVALID',
      `the storage proof of ${miner} for challenge ${challenge.issuedAt} (${challenge.fragments.length} fragments) does not verify`,
    );
  }
  const idle = decodeIdleProof(parts.idle, params.pois);
  const idleChallenge = deriveIdleChallenge(fromHex(challenge.seed), challenge.idle, params.pois);
  if (!verifyIdle(miner, challenge.idle, idleChallenge, idle, params.pois)) {
    throw new AilinkError(
      'PROOF_INVALID',
      `the idle-space proof of ${miner} for challenge ${challenge.issuedAt} (${challenge.idle.length} idle files) does not verify`,
    );
  }
}

/** A challenge's answer on the wire: u32 length of the PoDR2 proof, the PoDR2 proof, then the idle-space proof. */
export function encodeAuditProof(podr2: Uint8Array, idle: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + podr2.byteLength + idle.byteLength);
  new DataView(out.buffer).setUint32(0, podr2.byteLength, true);
  out.set(podr2, 4);
  out.set(idle, 4 + podr2.byteLength);
  return out;
}

/** @throws PROOF_MALFORMED */
export function splitAuditProof(bytes: Uint8Array): { podr2: Uint8Array; idle: Uint8Array } {
  if (bytes.byteLength < 4) {
    throw new AilinkError('PROOF_MALFORMED', `expected ≥ 4 bytes of proof, got ${bytes.byteLength}`);
  }
  const length = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0, true);
  if (4 + length > bytes.byteLength) {
    throw new AilinkError(
      'PROOF_MALFORMED',
      `the proof announces ${length} bytes of PoDR2 proof, only ${bytes.byteLength - 4} follow`,
    );
  }
  return { podr2: bytes.subarray(4, 4 + length), idle: bytes.subarray(4 + length) };
}
