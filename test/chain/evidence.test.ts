import { calculate_state_root } from '@acala-network/chopsticks-executor';
import { describe, expect, it } from 'vitest';
import { ROC } from '../../src/chain/config.ts';
import { devSigner } from '../../src/chain/devchain.ts';
import {
  blockHashOf,
  checkBlockEvidence,
  decodeHeader,
  extrinsicsCommitment,
  orderedTrieRoot,
  type RawBlock,
} from '../../src/chain/evidence.ts';
import { hasCode } from '../../src/shared/errors.ts';
import { useDevChain } from './fixture.ts';

const hex = (b: Uint8Array) => `0x${Buffer.from(b).toString('hex')}`;

/** SCALE compact of a small index, as the trie's key. */
function compactKey(i: number): string {
  if (i < 64) return hex(Uint8Array.of(i << 2));
  return hex(Uint8Array.of(((i << 2) | 1) & 0xff, i >> 6));
}

describe('orderedTrieRoot: Substrate’s ordered trie of extrinsics', () => {
  it('is the empty trie’s root for no values (blake2-256 of 0x00)', () => {
    expect(orderedTrieRoot([])).toBe('0x03170a2e7597b7b7e3d84c05391d139a62b157e78786d8c082f29dcf4c111314');
  });

  it('equals the trie root of Substrate’s own trie code (chopsticks’ wasm build of sp-trie) for both state versions', async () => {
    let seed = 7;
    const next = () => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed;
    };
    // 1 value, a branch at the root, 2-byte compact keys (≥ 64 values), values below and above the 33-byte line.
    for (const count of [1, 2, 3, 16, 17, 70]) {
      const values = Array.from({ length: count }, () =>
        Uint8Array.from({ length: next() % 90 }, () => next() & 0xff),
      );
      for (const version of [0, 1] as const) {
        const theirs = await calculate_state_root(
          values.map((v, i) => [compactKey(i), hex(v)]),
          version,
        );
        expect(orderedTrieRoot(values, version), `${count} values, v${version}`).toBe(theirs);
      }
    }
  });
});

describe('block evidence from the real dev chain', () => {
  const dev = useDevChain();

  it('headers hash to their blocks and commit to their extrinsics; each forged field is named', async () => {
    const client = dev.client();
    const payload = new TextEncoder().encode('AILK evidence test remark');
    await client.submit(devSigner('Alice'), [
      { kind: 'remark', payload },
      { kind: 'transfer', to: devSigner('Bob').address, amount: ROC },
    ]);
    const height = await client.finalizedHeight();
    const raws = await client.rawBlocks(1, height);
    const blocks = await client.blocks(1, height);
    expect(raws.map((r) => r.number)).toEqual(blocks.map((b) => b.number));
    for (const [i, raw] of raws.entries()) {
      expect(checkBlockEvidence(raw, blocks[i]!)).toEqual([]);
      expect(blockHashOf(raw.header)).toBe(blocks[i]!.hash);
      expect(decodeHeader(raw.header).parentHash).toBe(blocks[i]!.parentHash);
      // chopsticks writes blake2-256 of the extrinsics one after another, not a trie root (its block builder).
      expect(extrinsicsCommitment(raw.extrinsics, decodeHeader(raw.header).extrinsicsRoot)).toBe(
        'dev-concat',
      );
    }
    const at = blocks.findIndex((b) => b.extrinsics.some((ex) => ex.signer === devSigner('Alice').address));
    const raw = raws[at]!;
    const block = blocks[at]!;
    const ex = block.extrinsics.findIndex((e) => e.signer !== null);
    const fields = (r: RawBlock, b: typeof block) => checkBlockEvidence(r, b).map((p) => p.field);

    // Attacks: each a forger's edit of one part of the evidence.
    const header = new Uint8Array(raw.header);
    header[header.length - 1]! ^= 1;
    expect(fields({ ...raw, header }, block)).toContain('hash');
    const extrinsics = raw.extrinsics.map((x) => new Uint8Array(x));
    extrinsics[ex]![extrinsics[ex]!.length - 1]! ^= 1;
    expect(fields({ ...raw, extrinsics }, block)).toEqual(['extrinsicsRoot']);
    expect(fields({ ...raw, extrinsics: raw.extrinsics.slice(0, -1) }, block)).toEqual(
      expect.arrayContaining(['extrinsicsRoot', 'extrinsics']),
    );
    const withCalls = (calls: (typeof block.extrinsics)[number]['calls'], signer?: string) => ({
      ...block,
      extrinsics: block.extrinsics.map((e, i) =>
        i === ex ? { ...e, calls, ...(signer === undefined ? {} : { signer }) } : e,
      ),
    });
    const calls = block.extrinsics[ex]!.calls;
    const remark = calls.findIndex((c) => c.call.kind === 'remark');
    const forged = calls.map((c, i) =>
      i === remark
        ? { ...c, call: { kind: 'remark' as const, payload: new TextEncoder().encode('AILK forged') } }
        : c,
    );
    expect(fields(raw, withCalls(forged))).toEqual([`extrinsics[${ex}].calls[${remark}]`]);
    const transfer = calls.findIndex((c) => c.call.kind === 'transfer');
    const redirected = calls.map((c, i) =>
      i === transfer
        ? { ...c, call: { kind: 'transfer' as const, to: devSigner('Eve').address, amount: ROC } }
        : c,
    );
    expect(fields(raw, withCalls(redirected))).toEqual([`extrinsics[${ex}].calls[${transfer}]`]);
    expect(fields(raw, withCalls(calls, devSigner('Eve').address))).toEqual([`extrinsics[${ex}].signer`]);
    const notAnAddress = calls.map((c, i) =>
      i === transfer ? { ...c, call: { kind: 'transfer' as const, to: 'nobody', amount: ROC } } : c,
    );
    expect(fields(raw, withCalls(notAnAddress))).toEqual([`extrinsics[${ex}].calls[${transfer}]`]);
    expect(fields(raw, withCalls(calls, 'nobody'))).toEqual([`extrinsics[${ex}].signer`]);
    expect(fields(raw, { ...block, parentHash: block.hash })).toEqual(['parentHash']);
    expect(block.timestamp).toBeGreaterThan(0);
    expect(fields(raw, { ...block, timestamp: block.timestamp + 6000 })).toEqual(['timestamp']);
    // Not a header at all: named, never thrown.
    expect(checkBlockEvidence({ ...raw, header: raw.header.subarray(0, 40) }, block)).toEqual([
      expect.objectContaining({ field: 'header' }),
    ]);
    try {
      decodeHeader(new Uint8Array(10));
      expect.fail('expected BUNDLE_MALFORMED');
    } catch (err) {
      expect(hasCode(err, 'BUNDLE_MALFORMED')).toBe(true);
    }
  }, 120_000);
});
