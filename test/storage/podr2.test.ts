import { createCipheriv, createHash, createHmac, hkdfSync } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  blocksOf,
  checkTags,
  decodeProof,
  deriveChallenge,
  derivePodr2Key,
  encodeProof,
  PODR2_LANES,
  PODR2_PRIME,
  type Podr2Challenge,
  type Podr2Key,
  type Podr2Params,
  type Podr2Proof,
  podr2Params,
  proveChallenge,
  tagFragment,
  tagsOf,
  verifyProof,
} from '../../src/storage/proofs/podr2.ts';
import { expectCode, seededBytes, sha256Hex } from './helpers.ts';

const p = BigInt(PODR2_PRIME);
const MiB = 1024 * 1024;

// ---------------------------------------------------------------------------------------------------------------
// An independent reference, written from the scheme's description with BigInt arithmetic (no float tricks):
// key = HKDF-SHA256(secret, "ailink/podr2/v1", "prf" | "alpha/l"), α from the AES-256-CTR keystream as 31-bit words
// rejecting 2^31 − 1; f_l(name, i) = (u64 LE at byte 8l of AES-256_{HMAC(prfKey, name bytes)}(BE128(i))) mod p.
// ---------------------------------------------------------------------------------------------------------------
const salt = Buffer.from('ailink/podr2/v1');
const hkdf = (secret: Uint8Array, info: string) => Buffer.from(hkdfSync('sha256', secret, salt, info, 32));

function refAlpha(secret: Uint8Array, lane: number, s: number): bigint[] {
  const c = createCipheriv('aes-256-ctr', hkdf(secret, `alpha/${lane}`), Buffer.alloc(16));
  const stream = c.update(Buffer.alloc(4 * s + 64));
  const out: bigint[] = [];
  for (let o = 0; out.length < s; o += 4) {
    const x = stream.readUInt32LE(o) & 0x7fffffff;
    if (x !== 0x7fffffff) out.push(BigInt(x));
  }
  return out;
}

function refPrf(secret: Uint8Array, name: string, index: number, lane: number): bigint {
  const fk = createHmac('sha256', hkdf(secret, 'prf')).update(Buffer.from(name, 'hex')).digest();
  const block = Buffer.alloc(16);
  block.writeBigUInt64BE(BigInt(index), 8);
  const c = createCipheriv('aes-256-ecb', fk, null);
  c.setAutoPadding(false);
  return c.update(block).readBigUInt64LE(8 * lane) % p;
}

/** Sectors of block i, zero-padded, as BigInt. */
function refSectors(data: Uint8Array, i: number, blockSize: number): bigint[] {
  const block = new Uint8Array(blockSize);
  block.set(data.subarray(i * blockSize, (i + 1) * blockSize));
  return Array.from({ length: blockSize / 2 }, (_, j) => BigInt(block[2 * j]! | (block[2 * j + 1]! << 8)));
}

function refTags(secret: Uint8Array, name: string, data: Uint8Array, blockSize: number): bigint[][] {
  const alphas = [0, 1].map((l) => refAlpha(secret, l, blockSize / 2));
  const out: bigint[][] = [];
  for (let i = 0; i < Math.ceil(data.length / blockSize); i++) {
    const m = refSectors(data, i, blockSize);
    out.push(
      alphas.map((a, l) => (refPrf(secret, name, i, l) + m.reduce((acc, x, j) => acc + a[j]! * x, 0n)) % p),
    );
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------------------------
const SECRET = new Uint8Array(32).fill(1);
const seedOf = (label: string | number) =>
  new Uint8Array(createHash('sha256').update(`seed:${label}`).digest());

interface Fragment {
  name: string;
  data: Uint8Array;
  tags: Uint8Array;
}

function makeFragments(
  key: Podr2Key,
  params: Podr2Params,
  sizes: readonly number[],
  label: string,
): Fragment[] {
  return sizes.map((size, f) => {
    const data = seededBytes(`${label}:${f}`, size);
    const name = sha256Hex(data);
    return { name, data, tags: tagFragment(key, name, data, params) };
  });
}

const itemsOf = (frags: readonly Fragment[], params: Podr2Params) =>
  frags.map((f) => ({ name: f.name, blocks: blocksOf(f.data.length, params) }));

/** A miner's view: bytes (possibly altered) and tags (possibly altered) per fragment name. */
function sourceOf(
  params: Podr2Params,
  frags: readonly Fragment[],
  dataOf: (f: Fragment) => Uint8Array = (f) => f.data,
  tagsOfFrag: (f: Fragment) => Uint8Array = (f) => f.tags,
) {
  const byName = new Map(frags.map((f) => [f.name, f]));
  return {
    block: (name: string, index: number) =>
      dataOf(byName.get(name)!).subarray(index * params.blockSize, (index + 1) * params.blockSize),
    tags: (name: string, index: number) => tagsOf(tagsOfFrag(byName.get(name)!), index),
  };
}

describe('podr2 parameters and keys', () => {
  it('defaults to CESS sizes and returns a frozen object', () => {
    const params = podr2Params();
    expect(params).toEqual({ blockSize: 8192, challengeBlocks: 47 });
    expect(Object.isFrozen(params)).toBe(true);
    expect(podr2Params({ blockSize: 64 })).toEqual({ blockSize: 64, challengeBlocks: 47 });
  });

  it('rejects a block size that is zero, odd, negative, fractional or absurd, and challengeBlocks 0', () => {
    for (const blockSize of [0, 1, 3, 8191, -2, 1.5, Number.NaN, 2 ** 21]) {
      expectCode(() => podr2Params({ blockSize }), 'INVALID_INPUT');
    }
    for (const challengeBlocks of [0, -1, 1.5, 2 ** 17]) {
      expectCode(() => podr2Params({ challengeBlocks }), 'INVALID_INPUT');
    }
  });

  it('counts blocks with a partial last block', () => {
    const params = podr2Params({ blockSize: 64 });
    expect([0, 1, 64, 65, 128, 200].map((n) => blocksOf(n, params))).toEqual([0, 1, 1, 2, 2, 4]);
    expect(blocksOf(8 * MiB)).toBe(1024);
    expectCode(() => blocksOf(-1, params), 'INVALID_INPUT');
  });

  it('derives the same key from the same secret, field elements only, and refuses a short secret', () => {
    const params = podr2Params({ blockSize: 256 });
    const a = derivePodr2Key(SECRET, params);
    const b = derivePodr2Key(new Uint8Array(32).fill(1), params);
    expect(a.alpha.map((x) => [...x])).toEqual(b.alpha.map((x) => [...x]));
    expect(a.alpha).toHaveLength(PODR2_LANES);
    for (const lane of a.alpha) {
      expect(lane).toHaveLength(128);
      for (const v of lane) expect(Number.isInteger(v) && v >= 0 && v < PODR2_PRIME).toBe(true);
    }
    expect([...a.alpha[0]!]).not.toEqual([...a.alpha[1]!]);
    expect([...derivePodr2Key(new Uint8Array(32).fill(2), params).alpha[0]!]).not.toEqual([...a.alpha[0]!]);
    expectCode(() => derivePodr2Key(new Uint8Array(31), params), 'INVALID_INPUT');
  });
});

describe('podr2 tags', () => {
  it('match a frozen test vector (secret 0x01…, 200 seeded bytes, 64-byte blocks)', () => {
    const params = podr2Params({ blockSize: 64, challengeBlocks: 3 });
    const key = derivePodr2Key(SECRET, params);
    const data = seededBytes('podr2-vector', 200);
    const name = sha256Hex(data);
    expect(name).toBe('75c4cdefab9cda6b81308180dfbcb0320f49ce4659f3f45ae2ce118b14f670a2');
    expect([...key.alpha[0]!.subarray(0, 3)]).toEqual([843197926, 292796362, 684856403]);
    expect([...key.alpha[1]!.subarray(0, 3)]).toEqual([1375433669, 372022017, 866874685]);
    const tags = tagFragment(key, name, data, params);
    expect(tags).toHaveLength(4 * PODR2_LANES * 4);
    expect([0, 1, 2, 3].map((i) => tagsOf(tags, i))).toEqual([
      [1960586292, 857160509],
      [2122697361, 2072928782],
      [1617774115, 1143510665],
      [948983517, 373513063],
    ]);
    const other = sha256Hex(new TextEncoder().encode('another fragment'));
    const challenge = deriveChallenge(
      new Uint8Array(32).fill(2),
      [
        { name, blocks: 4 },
        { name: other, blocks: 1024 },
      ],
      params,
    );
    expect(challenge).toEqual({
      items: [
        { name, indices: [0, 2, 3], coefficients: [2060385470, 1946099559, 1599397778] },
        {
          name: '5a9937207a036adb6ee9e7f409d8b35c8f7bbf0bff26c73c166b1f3cbf5f4d5a',
          indices: [236, 513, 623],
          coefficients: [199771044, 132359962, 761925635],
        },
      ],
    });
  });

  it('equal the BigInt reference for any data, including all-0xff blocks (float sums stay exact)', () => {
    const keys = new Map<number, Podr2Key>();
    fc.assert(
      fc.property(
        fc.constantFrom(2, 6, 64, 130, 1026),
        fc.oneof(
          fc.uint8Array({ maxLength: 3000 }),
          fc.integer({ min: 1, max: 3000 }).map((n) => new Uint8Array(n).fill(0xff)),
        ),
        (blockSize, data) => {
          const params = podr2Params({ blockSize });
          let key = keys.get(blockSize);
          if (key === undefined) {
            key = derivePodr2Key(SECRET, params);
            keys.set(blockSize, key);
          }
          const name = sha256Hex(data);
          const tags = tagFragment(key, name, data, params);
          const ref = refTags(SECRET, name, data, blockSize);
          expect(tags.length).toBe(ref.length * PODR2_LANES * 4);
          for (const [i, t] of ref.entries()) expect(tagsOf(tags, i)).toEqual(t.map(Number));
        },
      ),
      { seed: 4101, numRuns: 60 },
    );
  });

  it('do not depend on the byte offset of the data (pooled Buffers are often odd-aligned)', () => {
    const params = podr2Params({ blockSize: 256 });
    const key = derivePodr2Key(SECRET, params);
    const data = seededBytes('offset', 1000);
    const name = sha256Hex(data);
    const shifted = new Uint8Array(1001).subarray(1);
    shifted.set(data);
    expect(shifted.byteOffset % 2).toBe(1);
    expect(tagFragment(key, name, shifted, params)).toEqual(tagFragment(key, name, data, params));
    expect(tagFragment(key, name, new Uint8Array(0), params)).toHaveLength(0);
  });

  it('are linear: σ(a) + σ(b) = σ(a + b) + σ(0) sector-wise, in each lane', () => {
    const params = podr2Params({ blockSize: 128 });
    const key = derivePodr2Key(SECRET, params);
    const name = sha256Hex(new Uint8Array(1));
    const words = fc.uint16Array({ min: 0, max: 0x7fff, minLength: 1, maxLength: 300 });
    fc.assert(
      fc.property(words, words, (wa, wb) => {
        const n = Math.max(wa.length, wb.length);
        const a = new Uint16Array(n);
        const b = new Uint16Array(n);
        a.set(wa);
        b.set(wb);
        const sum = a.map((x, j) => x + b[j]!);
        const bytes = (w: Uint16Array) => new Uint8Array(w.buffer);
        const ta = tagFragment(key, name, bytes(a), params);
        const tb = tagFragment(key, name, bytes(b), params);
        const tsum = tagFragment(key, name, bytes(sum), params);
        const tzero = tagFragment(key, name, new Uint8Array(2 * n), params);
        for (let i = 0; i < blocksOf(2 * n, params); i++) {
          for (let l = 0; l < PODR2_LANES; l++) {
            const lhs = (BigInt(tagsOf(ta, i)[l]!) + BigInt(tagsOf(tb, i)[l]!)) % p;
            const rhs = (BigInt(tagsOf(tsum, i)[l]!) + BigInt(tagsOf(tzero, i)[l]!)) % p;
            expect(lhs).toBe(rhs);
          }
        }
      }),
      { seed: 4102, numRuns: 50 },
    );
  });

  it('are checked for length and range; tagsOf refuses an index past the end', () => {
    const params = podr2Params({ blockSize: 64 });
    const key = derivePodr2Key(SECRET, params);
    const data = seededBytes('check', 130);
    const tags = tagFragment(key, sha256Hex(data), data, params);
    expect(() => checkTags(tags, 3)).not.toThrow();
    expectCode(() => checkTags(tags, 2), 'PROOF_MALFORMED');
    expectCode(() => checkTags(tags.subarray(1), 3), 'PROOF_MALFORMED');
    const bad = tags.slice();
    new DataView(bad.buffer).setUint32(12, PODR2_PRIME, true);
    expectCode(() => checkTags(bad, 3), 'PROOF_MALFORMED');
    expectCode(() => tagsOf(tags, 3), 'PROOF_MALFORMED');
    expectCode(() => tagsOf(tags, -1), 'PROOF_MALFORMED');
  });

  it('refuse a name that is not a lowercase 64-hex hash and a key derived for another block size', () => {
    const params = podr2Params({ blockSize: 64 });
    const key = derivePodr2Key(SECRET, params);
    const data = new Uint8Array(10);
    expectCode(() => tagFragment(key, 'frag-1', data, params), 'INVALID_INPUT');
    expectCode(() => tagFragment(key, sha256Hex(data).toUpperCase(), data, params), 'INVALID_INPUT');
    expectCode(
      () => tagFragment(key, sha256Hex(data), data, podr2Params({ blockSize: 128 })),
      'INVALID_INPUT',
    );
  });
});

describe('podr2 challenges', () => {
  const params = podr2Params({ blockSize: 64, challengeBlocks: 47 });
  const names = Array.from({ length: 5 }, (_, i) => sha256Hex(new TextEncoder().encode(`fragment ${i}`)));
  const items = names.map((name, i) => ({ name, blocks: [1024, 47, 10, 48, 0][i]! }));

  it('are deterministic in the seed, with distinct ascending indices and coefficients in [1, p)', () => {
    const a = deriveChallenge(seedOf(1), items, params);
    expect(deriveChallenge(seedOf(1), items, params)).toEqual(a);
    expect(a.items.map((x) => x.indices.length)).toEqual([47, 47, 10, 47, 0]);
    for (const [k, item] of a.items.entries()) {
      expect(item.name).toBe(names[k]);
      expect(new Set(item.indices).size).toBe(item.indices.length);
      expect([...item.indices].sort((x, y) => x - y)).toEqual(item.indices);
      for (const i of item.indices) expect(Number.isInteger(i) && i >= 0 && i < items[k]!.blocks).toBe(true);
      expect(item.coefficients).toHaveLength(item.indices.length);
      for (const v of item.coefficients) expect(Number.isInteger(v) && v >= 1 && v < PODR2_PRIME).toBe(true);
    }
    // A fragment with no more blocks than challengeBlocks is challenged in full.
    expect(a.items[1]!.indices).toEqual(Array.from({ length: 47 }, (_, i) => i));
    expect(a.items[2]!.indices).toEqual(Array.from({ length: 10 }, (_, i) => i));
  });

  it('change with the seed and are independent per fragment (same name, same draw, whatever else is asked)', () => {
    const a = deriveChallenge(seedOf(1), items, params);
    const b = deriveChallenge(seedOf(2), items, params);
    expect(b.items[0]!.indices).not.toEqual(a.items[0]!.indices);
    expect(b.items[1]!.coefficients).not.toEqual(a.items[1]!.coefficients);
    const alone = deriveChallenge(seedOf(1), [items[3]!], params);
    expect(alone.items[0]).toEqual(a.items[3]);
    expect(a.items[0]!.indices).not.toEqual(a.items[3]!.indices);
  });

  it('sample indices without bias: every block of a 100-block fragment is drawn about equally', () => {
    const counts = new Array<number>(100).fill(0);
    const small = podr2Params({ blockSize: 64, challengeBlocks: 10 });
    for (let r = 0; r < 2000; r++) {
      for (const i of deriveChallenge(seedOf(`u${r}`), [{ name: names[0]!, blocks: 100 }], small).items[0]!
        .indices)
        counts[i]!++;
    }
    // Expected 200 per block; a 5σ band (σ ≈ 13.4) keeps this deterministic test far from flaky.
    for (const c of counts) expect(Math.abs(c - 200)).toBeLessThan(70);
  });

  it('challenge a fragment listed twice (same bytes in two files) once', () => {
    const twice = deriveChallenge(seedOf(1), [items[0]!, items[1]!, items[0]!], params);
    expect(twice).toEqual(deriveChallenge(seedOf(1), [items[0]!, items[1]!], params));
  });

  it('refuse an empty seed, a bad name, one name with two sizes and a bad block count', () => {
    expectCode(() => deriveChallenge(new Uint8Array(0), items, params), 'INVALID_INPUT');
    expectCode(() => deriveChallenge(seedOf(1), [{ name: 'x', blocks: 3 }], params), 'INVALID_INPUT');
    expectCode(
      () => deriveChallenge(seedOf(1), [items[0]!, { name: items[0]!.name, blocks: 5 }], params),
      'INVALID_INPUT',
    );
    for (const blocks of [-1, 1.5, Number.NaN]) {
      expectCode(() => deriveChallenge(seedOf(1), [{ name: names[0]!, blocks }], params), 'INVALID_INPUT');
    }
  });
});

describe('podr2 proofs', () => {
  const params = podr2Params({ blockSize: 256, challengeBlocks: 4 });
  const key = derivePodr2Key(SECRET, params);
  const frags = makeFragments(key, params, [2000, 4096, 5000], 'proofs');
  const challenge = deriveChallenge(seedOf('proofs'), itemsOf(frags, params), params);
  const honest = proveChallenge(challenge, sourceOf(params, frags), params);

  it('an honest proof over several fragments verifies', () => {
    expect(challenge.items.map((x) => x.indices.length)).toEqual([4, 4, 4]);
    expect(verifyProof(key, challenge, honest, params)).toBe(true);
  });

  it('equals the BigInt computation of μ and σ from the definition', () => {
    const small = podr2Params({ blockSize: 6, challengeBlocks: 5 });
    const smallKey = derivePodr2Key(SECRET, small);
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ minLength: 1, maxLength: 60 }), { minLength: 1, maxLength: 4 }),
        fc.uint8Array({ minLength: 1, maxLength: 32 }),
        (datas, seed) => {
          const fs = datas
            .map((data) => ({ data, name: sha256Hex(data) }))
            .filter((f, i, all) => all.findIndex((g) => g.name === f.name) === i)
            .map((f) => ({ ...f, tags: tagFragment(smallKey, f.name, f.data, small) }));
          const ch = deriveChallenge(seed, itemsOf(fs, small), small);
          const proof = proveChallenge(ch, sourceOf(small, fs), small);
          const mu = [0n, 0n, 0n];
          const sigma = [0n, 0n];
          for (const item of ch.items) {
            const f = fs.find((x) => x.name === item.name)!;
            const ref = refTags(SECRET, f.name, f.data, small.blockSize);
            item.indices.forEach((i, k) => {
              const nu = BigInt(item.coefficients[k]!);
              refSectors(f.data, i, small.blockSize).forEach((m, j) => {
                mu[j] = (mu[j]! + nu * m) % p;
              });
              for (let l = 0; l < PODR2_LANES; l++) sigma[l] = (sigma[l]! + nu * ref[i]![l]!) % p;
            });
          }
          expect([...proof.mu]).toEqual(mu.map(Number));
          expect([...proof.sigma]).toEqual(sigma.map(Number));
          expect(verifyProof(smallKey, ch, proof, small)).toBe(true);
        },
      ),
      { seed: 4103, numRuns: 50 },
    );
  });

  /** The fragment bytes with one byte of block `index` xor-ed with `delta` (offset kept inside the data). */
  function altered(f: Fragment, index: number, offset: number, delta: number): Uint8Array {
    const start = index * params.blockSize;
    const at = start + (offset % Math.min(params.blockSize, f.data.length - start));
    const copy = f.data.slice();
    copy[at] = copy[at]! ^ delta;
    return copy;
  }

  it('fails when one byte of one challenged block of any fragment changes', () => {
    fc.assert(
      fc.property(
        fc.nat(frags.length - 1),
        fc.nat(params.challengeBlocks - 1),
        fc.nat(params.blockSize - 1),
        fc.integer({ min: 1, max: 255 }),
        (f, k, offset, delta) => {
          const target = frags[f]!;
          const index = challenge.items[f]!.indices[k]!;
          const changed = altered(target, index, offset, delta);
          const source = sourceOf(params, frags, (x) => (x === target ? changed : x.data));
          expect(verifyProof(key, challenge, proveChallenge(challenge, source, params), params)).toBe(false);
        },
      ),
      { seed: 4104, numRuns: 50 },
    );
  });

  it('still passes when the changed byte is in a block that was not challenged (sampling, by design)', () => {
    fc.assert(
      fc.property(
        fc.nat(frags.length - 1),
        fc.nat(1000),
        fc.nat(params.blockSize - 1),
        fc.integer({ min: 1, max: 255 }),
        (f, pick, offset, delta) => {
          const target = frags[f]!;
          const free = Array.from({ length: blocksOf(target.data.length, params) }, (_, i) => i).filter(
            (i) => !challenge.items[f]!.indices.includes(i),
          );
          const index = free[pick % free.length]!;
          const changed = altered(target, index, offset, delta);
          const source = sourceOf(params, frags, (x) => (x === target ? changed : x.data));
          expect(verifyProof(key, challenge, proveChallenge(challenge, source, params), params)).toBe(true);
        },
      ),
      { seed: 4105, numRuns: 30 },
    );
  });

  it('an old proof replayed for a new challenge fails', () => {
    const fresh = deriveChallenge(seedOf('proofs, next round'), itemsOf(frags, params), params);
    expect(verifyProof(key, fresh, honest, params)).toBe(false);
    expect(verifyProof(key, fresh, proveChallenge(fresh, sourceOf(params, frags), params), params)).toBe(
      true,
    );
  });

  it('a proof for another set of fragments fails', () => {
    const others = makeFragments(key, params, [2000, 4096, 5000], 'others');
    const theirs = deriveChallenge(seedOf('proofs'), itemsOf(others, params), params);
    const proofForOthers = proveChallenge(theirs, sourceOf(params, others), params);
    expect(verifyProof(key, theirs, proofForOthers, params)).toBe(true);
    expect(verifyProof(key, challenge, proofForOthers, params)).toBe(false);
    // A subset is another set too: leaving one fragment out of the proof fails.
    const subset = { items: challenge.items.slice(0, 2) };
    expect(verifyProof(key, challenge, proveChallenge(subset, sourceOf(params, frags), params), params)).toBe(
      false,
    );
  });

  it('a changed tag fails, in either lane', () => {
    const f = frags[1]!;
    const index = challenge.items[1]!.indices[2]!;
    for (let lane = 0; lane < PODR2_LANES; lane++) {
      const tags = f.tags.slice();
      const view = new DataView(tags.buffer);
      const o = (index * PODR2_LANES + lane) * 4;
      view.setUint32(o, (view.getUint32(o, true) + 1) % PODR2_PRIME, true);
      const source = sourceOf(params, frags, undefined, (x) => (x === f ? tags : x.tags));
      expect(verifyProof(key, challenge, proveChallenge(challenge, source, params), params)).toBe(false);
    }
  });

  it('a forged σ in only one lane fails: both lanes are checked', () => {
    for (let lane = 0; lane < PODR2_LANES; lane++) {
      const sigma = honest.sigma.slice();
      sigma[lane] = (sigma[lane]! + 1) % PODR2_PRIME;
      expect(verifyProof(key, challenge, { mu: honest.mu, sigma }, params)).toBe(false);
    }
  });

  it('fails under a wrong key, and with tags made under a wrong key', () => {
    const other = derivePodr2Key(new Uint8Array(32).fill(9), params);
    expect(verifyProof(other, challenge, honest, params)).toBe(false);
    const retagged = frags.map((f) => ({ ...f, tags: tagFragment(other, f.name, f.data, params) }));
    expect(
      verifyProof(key, challenge, proveChallenge(challenge, sourceOf(params, retagged), params), params),
    ).toBe(false);
  });

  it('proveChallenge refuses an oversized block and malformed tags from its source', () => {
    const base = sourceOf(params, frags);
    expectCode(
      () => proveChallenge(challenge, { ...base, block: () => new Uint8Array(params.blockSize + 2) }, params),
      'INVALID_INPUT',
    );
    expectCode(() => proveChallenge(challenge, { ...base, tags: () => [1] }, params), 'PROOF_MALFORMED');
    expectCode(
      () => proveChallenge(challenge, { ...base, tags: () => [1, PODR2_PRIME] }, params),
      'PROOF_MALFORMED',
    );
  });

  it('has the same size for 1 and for 64 fragments: blockSize/2·4 + LANES·4 bytes', () => {
    const big = podr2Params();
    const bigKey = derivePodr2Key(SECRET, big);
    const many = makeFragments(bigKey, big, new Array<number>(64).fill(3 * 8192 + 100), 'size');
    const sizeFor = (fs: Fragment[]) => {
      const ch = deriveChallenge(seedOf('size'), itemsOf(fs, big), big);
      const proof = proveChallenge(ch, sourceOf(big, fs), big);
      expect(verifyProof(bigKey, ch, proof, big)).toBe(true);
      return encodeProof(proof).length;
    };
    const expected = (8192 / 2) * 4 + PODR2_LANES * 4;
    expect(sizeFor(many.slice(0, 1))).toBe(expected);
    expect(sizeFor(many)).toBe(expected);
  });
});

describe('podr2 proof wire format', () => {
  const params = podr2Params({ blockSize: 64, challengeBlocks: 2 });
  const key = derivePodr2Key(SECRET, params);
  const frags = makeFragments(key, params, [500], 'wire');
  const challenge: Podr2Challenge = deriveChallenge(seedOf('wire'), itemsOf(frags, params), params);
  const proof: Podr2Proof = proveChallenge(challenge, sourceOf(params, frags), params);

  it('round-trips: μ then σ, u32 little-endian', () => {
    const bytes = encodeProof(proof);
    expect(bytes).toHaveLength((32 + PODR2_LANES) * 4);
    const view = new DataView(bytes.buffer);
    expect(view.getUint32(0, true)).toBe(proof.mu[0]);
    expect(view.getUint32(32 * 4, true)).toBe(proof.sigma[0]);
    const back = decodeProof(bytes, params);
    expect(back).toEqual(proof);
    expect(verifyProof(key, challenge, back, params)).toBe(true);
  });

  it('rejects a wrong length and values not below p with PROOF_MALFORMED', () => {
    const bytes = encodeProof(proof);
    expectCode(() => decodeProof(bytes.subarray(0, bytes.length - 4), params), 'PROOF_MALFORMED');
    expectCode(() => decodeProof(new Uint8Array(bytes.length + 4), params), 'PROOF_MALFORMED');
    expectCode(() => decodeProof(new Uint8Array(0), params), 'PROOF_MALFORMED');
    expectCode(() => decodeProof(bytes, podr2Params({ blockSize: 128 })), 'PROOF_MALFORMED');
    for (const [at, value] of [
      [0, PODR2_PRIME],
      [31, 0xffffffff],
      [32, PODR2_PRIME],
      [33, 0x80000000],
    ] as const) {
      const bad = bytes.slice();
      new DataView(bad.buffer).setUint32(4 * at, value, true);
      expectCode(() => decodeProof(bad, params), 'PROOF_MALFORMED');
    }
  });

  it('verifyProof refuses a proof object of the wrong shape or range instead of answering', () => {
    expectCode(
      () => verifyProof(key, challenge, { mu: proof.mu.subarray(1), sigma: proof.sigma }, params),
      'PROOF_MALFORMED',
    );
    expectCode(
      () => verifyProof(key, challenge, { mu: proof.mu, sigma: Uint32Array.of(PODR2_PRIME, 0) }, params),
      'PROOF_MALFORMED',
    );
  });
});

describe('podr2 detects a miner that lost 10 % of its blocks', () => {
  it('in ≥ 99 % of 200 random challenges (4 fragments of 8 MiB, one aggregated proof each)', () => {
    const params = podr2Params();
    const key = derivePodr2Key(SECRET, params);
    const frags = makeFragments(key, params, [8 * MiB, 8 * MiB, 8 * MiB, 8 * MiB], 'loss');
    const perFragment = blocksOf(8 * MiB, params);
    const total = frags.length * perFragment;
    // Corrupt 10 % of all blocks, chosen at random (fixed seed) across fragments, with random bytes.
    const pick = new Uint32Array(seededBytes('loss:pick', 4 * 4 * total).buffer);
    const lost = new Set<number>();
    for (let k = 0; lost.size < Math.round(total / 10); k++) lost.add(pick[k]! % total);
    const held = frags.map((f) => f.data.slice());
    let r = 0;
    for (const b of lost) {
      const f = Math.floor(b / perFragment);
      held[f]!.set(seededBytes(`loss:junk:${r++}`, params.blockSize), (b % perFragment) * params.blockSize);
    }
    const source = sourceOf(params, frags, (f) => held[frags.indexOf(f)]!);

    const rounds = 200;
    let caught = 0;
    let caughtAlone = 0;
    for (let round = 0; round < rounds; round++) {
      const challenge = deriveChallenge(seedOf(`loss:${round}`), itemsOf(frags, params), params);
      if (!verifyProof(key, challenge, proveChallenge(challenge, source, params), params)) caught++;
      // The same draw, one fragment at a time: CESS's per-fragment view, expected 1 − C(922,47)/C(1024,47) ≈ 99.3 %.
      for (const item of challenge.items) {
        const one = { items: [item] };
        if (!verifyProof(key, one, proveChallenge(one, source, params), params)) caughtAlone++;
      }
    }
    const rate = caught / rounds;
    const rateAlone = caughtAlone / (rounds * frags.length);
    console.log(
      `podr2: 10 % of blocks lost → detected by ${(100 * rate).toFixed(1)} % of ${rounds} aggregated challenges; ` +
        `a single-fragment challenge detects ${(100 * rateAlone).toFixed(2)} % of ${rounds * frags.length}`,
    );
    expect(rate).toBeGreaterThanOrEqual(0.99);
    expect(rateAlone).toBeGreaterThanOrEqual(0.97);
  });
});
