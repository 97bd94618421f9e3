import { createHash } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Challenge } from '../../src/chain/index.ts';
import { AilinkError } from '../../src/shared/errors.ts';
import { buildAuditProof, checkAuditProof, type ProofSource } from '../../src/storage/proofs/audit-proof.ts';
import { derivePodr2Key, podr2Params, tagFragment } from '../../src/storage/proofs/podr2.ts';
import { idleRoot, labelIdleFile, poisParams } from '../../src/storage/proofs/pois.ts';
import { seededBytes, sha256Hex } from './helpers.ts';

/**
 * One challenge's answer as a miner builds it and a verifier checks it: service fragments (PoDR2) and idle files
 * (PoIS) together. What a miner lost shows up either as no answer at all (a miss) or as an answer that fails.
 */

const params = {
  podr2: podr2Params({ blockSize: 1024, challengeBlocks: 8 }),
  pois: poisParams({ nodes: 256, parents: 4, openings: 6, rounds: 2 }),
};
const MINER = '5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY';
const key = derivePodr2Key(new Uint8Array(32).fill(7), params.podr2);

interface Held {
  fragments: Map<string, Uint8Array>;
  tags: Map<string, Uint8Array>;
  idle: Map<number, Uint8Array>;
}
let held: Held;
let challenge: Challenge;

/** A miner's disk as the proof source sees it; `edit` changes a copy. */
function sourceOf(h: Held): ProofSource {
  return {
    async readBlock(name, offset, length) {
      const f = h.fragments.get(name);
      if (f === undefined) throw new AilinkError('FRAGMENT_NOT_FOUND', `no fragment ${name}`);
      const out = new Uint8Array(length);
      out.set(f.subarray(offset, offset + length));
      return out;
    },
    tags: (name) => h.tags.get(name)!,
    async idleLabels(index) {
      const labels = h.idle.get(index);
      if (labels === undefined) throw new Error(`ENOENT: idle/${index}`);
      return labels;
    },
  };
}
const copy = (h: Held): Held => ({
  fragments: new Map([...h.fragments].map(([k, v]) => [k, v.slice()])),
  tags: new Map(h.tags),
  idle: new Map([...h.idle].map(([k, v]) => [k, v.slice()])),
});
const challengeAt = (seed: string): Challenge => ({
  ...challenge,
  seed: createHash('sha256').update(seed).digest('hex'),
});

beforeAll(() => {
  held = { fragments: new Map(), tags: new Map(), idle: new Map() };
  for (let i = 0; i < 3; i++) {
    const bytes = seededBytes(`audit-proof/${i}`, 16 * 1024);
    const name = sha256Hex(bytes);
    held.fragments.set(name, bytes);
    held.tags.set(name, tagFragment(key, name, bytes, params.podr2));
  }
  const idle = [0, 1, 2].map((index) => {
    const labels = labelIdleFile(MINER, index, params.pois);
    held.idle.set(index, labels);
    return { index, root: idleRoot(labels, params.pois) };
  });
  challenge = {
    issuedAt: 12,
    seed: '',
    fragments: [...held.fragments].map(([name, b]) => ({ name, size: b.byteLength })),
    idle,
    serviceBytes: 3 * 16 * 1024,
    idleBytes: 3 * 256 * 32,
    verifier: MINER, // any address: the proof does not depend on who checks it
    deadline: 40,
    result: null,
  };
  challenge = challengeAt('block 12');
});

const verdict = (c: Challenge, proof: Uint8Array) => {
  try {
    checkAuditProof(key, MINER, c, proof, params);
    return 'ok';
  } catch (err) {
    return (err as AilinkError).code;
  }
};

describe('audit proofs (PoDR2 + PoIS in one answer)', () => {
  it('an honest miner’s answer verifies', async () => {
    expect(verdict(challenge, await buildAuditProof(challenge, params, sourceOf(held)))).toBe('ok');
  });

  it('an answer to one challenge fails for the next (another seed)', async () => {
    const proof = await buildAuditProof(challenge, params, sourceOf(held));
    expect(verdict(challengeAt('block 16'), proof)).toBe('PROOF_INVALID');
  });

  it('a deleted fragment or a deleted idle file leaves the miner with no answer (a miss)', async () => {
    const noFragment = copy(held);
    noFragment.fragments.delete(challenge.fragments[1]!.name);
    await expect(buildAuditProof(challenge, params, sourceOf(noFragment))).rejects.toMatchObject({
      code: 'FRAGMENT_NOT_FOUND',
    });
    const noIdle = copy(held);
    noIdle.idle.clear();
    await expect(buildAuditProof(challenge, params, sourceOf(noIdle))).rejects.toThrow(/ENOENT/);
  });

  it('a corrupted challenged block, or idle data replaced by zeros, makes the answer fail', async () => {
    const corrupt = copy(held);
    for (const f of corrupt.fragments.values()) f.fill(0xff);
    expect(verdict(challenge, await buildAuditProof(challenge, params, sourceOf(corrupt)))).toBe(
      'PROOF_INVALID',
    );
    const zeroed = copy(held);
    for (const labels of zeroed.idle.values()) labels.fill(0);
    expect(verdict(challenge, await buildAuditProof(challenge, params, sourceOf(zeroed)))).toBe(
      'PROOF_INVALID',
    );
  });

  it('another miner’s idle files do not answer for this one', async () => {
    const other = copy(held);
    for (const index of other.idle.keys()) {
      other.idle.set(
        index,
        labelIdleFile('5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty', index, params.pois),
      );
    }
    expect(verdict(challenge, await buildAuditProof(challenge, params, sourceOf(other)))).toBe(
      'PROOF_INVALID',
    );
  });

  it('truncated or padded bytes are refused as malformed', async () => {
    const proof = await buildAuditProof(challenge, params, sourceOf(held));
    expect(verdict(challenge, proof.subarray(0, 3))).toBe('PROOF_MALFORMED');
    expect(verdict(challenge, proof.subarray(0, proof.byteLength - 1))).toBe('PROOF_MALFORMED');
    const padded = new Uint8Array(proof.byteLength + 1);
    padded.set(proof);
    expect(verdict(challenge, padded)).toBe('PROOF_MALFORMED');
  });
});
