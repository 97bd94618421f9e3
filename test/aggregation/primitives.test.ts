import { createCipheriv, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  agreementKeyPair,
  sharedSecret,
  signingKeyPair,
  signMessage,
  verifyMessage,
} from '../../src/aggregation/keys.ts';
import { applyMask, maskFromSeed } from '../../src/aggregation/prg.ts';
import {
  addInto,
  checkQuantization,
  dequantizeSum,
  quantize,
  subtractInto,
} from '../../src/aggregation/quantize.ts';
import { combineShares, splitSecret } from '../../src/aggregation/shares.ts';
import { expectCode } from './helpers.ts';

const random = (n: number) => new Uint8Array(randomBytes(n));

/** A deterministic byte source for replayable tests. */
function seeded(seed: number) {
  let x = seed >>> 0 || 1;
  return (n: number) => {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      x ^= x << 13;
      x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      out[i] = x & 0xff;
    }
    return out;
  };
}

describe('quantization into Z_2^32', () => {
  const params = { range: 1, bits: 16 };

  it('property: one quantized value dequantizes to within one step of the clipped input', () => {
    fc.assert(
      fc.property(
        fc.array(fc.float({ min: -3, max: 3, noNaN: true }), { minLength: 1, maxLength: 50 }),
        fc.integer(),
        (xs, seed) => {
          const v = Float32Array.from(xs);
          const back = dequantizeSum(quantize(v, params, seeded(seed)), params, 1);
          const step = 2 / (2 ** 16 - 1);
          v.forEach((x, i) => {
            const clipped = Math.max(-1, Math.min(1, x));
            expect(Math.abs(back[i]! - clipped)).toBeLessThanOrEqual(step * 1.0001);
          });
        },
      ),
    );
  });

  it('stochastic rounding is unbiased: the mean of many roundings approaches the value', () => {
    const p = { range: 1, bits: 2 }; // 4 levels: −1, −1/3, 1/3, 1 — a coarse grid makes bias visible
    const v = new Float32Array(20000).fill(0.1);
    const sum = quantize(v, p, seeded(7)).reduce((a, b) => a + b, 0);
    const mean = (sum * 2) / 3 / v.length - 1;
    expect(Math.abs(mean - 0.1)).toBeLessThan(0.01);
  });

  it('sums of n quantized vectors dequantize to the sum of the values (no wrap within the checked cohort)', () => {
    const n = 100;
    const p = checkQuantization({ range: 2, bits: 24 }, n);
    const total = new Uint32Array(3);
    const exact = [0, 0, 0];
    for (let c = 0; c < n; c++) {
      const v = Float32Array.from([2, -2, (c % 7) / 7 - 0.5]);
      addInto(total, quantize(v, p, seeded(c + 1)));
      v.forEach((x, i) => {
        exact[i]! += x;
      });
    }
    const back = dequantizeSum(total, p, n);
    const step = 4 / (2 ** 24 - 1);
    for (const [i, x] of exact.entries()) expect(Math.abs(back[i]! - x)).toBeLessThanOrEqual(n * step + 1e-3);
  });

  it('refuses parameters that could overflow, bad ranges and bits, and non-finite values', () => {
    expectCode(() => checkQuantization({ range: 1, bits: 24 }, 257), 'QUANT_INVALID_PARAMETERS');
    expect(checkQuantization({ range: 1, bits: 24 }, 256)).toBeDefined();
    expectCode(() => checkQuantization({ range: 0, bits: 8 }, 1), 'QUANT_INVALID_PARAMETERS');
    expectCode(() => checkQuantization({ range: 1, bits: 32 }, 1), 'QUANT_INVALID_PARAMETERS');
    expectCode(() => quantize(Float32Array.from([Number.NaN]), params, random), 'AGG_INVALID_INPUT');
  });

  it('addInto and subtractInto wrap modulo 2^32 and undo each other', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 2 ** 32 - 1 }), { minLength: 1, maxLength: 20 }),
        fc.integer(),
        (xs, seed) => {
          const a = Uint32Array.from(xs);
          const m = new Uint32Array(seeded(seed)(4 * a.length).buffer);
          const masked = addInto(a.slice(), m);
          expect([...subtractInto(masked, m)]).toEqual([...a]);
        },
      ),
    );
    expectCode(() => addInto(new Uint32Array(2), new Uint32Array(3)), 'AGG_INVALID_INPUT');
  });
});

describe('mask generator (ChaCha20)', () => {
  it('matches the RFC 8439 keystream (A.1 test vector #1: zero key, zero nonce, counter 0)', () => {
    const words = maskFromSeed(new Uint8Array(32), 4);
    // Keystream bytes 76 b8 e0 ad a0 f1 3d 90 40 5d 6a e5 53 86 bd 28, read as little-endian words.
    expect([...words].map((w) => w.toString(16).padStart(8, '0'))).toEqual([
      'ade0b876',
      '903df1a0',
      'e56a5d40',
      '28bd8653',
    ]);
  });

  it('is deterministic per (seed, stream) and differs across seeds and streams', () => {
    const seed = random(32);
    expect([...maskFromSeed(seed, 64)]).toEqual([...maskFromSeed(seed, 64)]);
    expect([...maskFromSeed(seed, 64)]).not.toEqual([...maskFromSeed(seed, 64, 1)]);
    expect([...maskFromSeed(seed, 64)]).not.toEqual([...maskFromSeed(random(32), 64)]);
    expectCode(() => maskFromSeed(new Uint8Array(16), 4), 'SECAGG_INVALID_PARAMETERS');
  });

  it('applies a mask chunk by chunk exactly as the whole keystream, added or subtracted, across chunk boundaries', () => {
    const chunk = 1 << 18; // applyMask's chunk of words
    for (const length of [0, 1, chunk - 1, chunk, chunk + 1, 3 * chunk + 5]) {
      const seed = random(32);
      const iv = Buffer.alloc(16);
      iv.writeUInt32LE(7, 4);
      const whole = createCipheriv('chacha20', seed, iv).update(Buffer.alloc(length * 4));
      const reference = new Uint32Array(new Uint8Array(whole).buffer, 0, length);
      const target = new Uint32Array(random(4 * length).buffer);
      const before = target.slice();
      applyMask(target, seed, 1, 7);
      expect(target).toEqual(addInto(before.slice(), reference));
      applyMask(target, seed, -1, 7);
      expect(target).toEqual(before);
    }
    expectCode(() => applyMask(new Uint32Array(4), new Uint8Array(31), 1), 'SECAGG_INVALID_PARAMETERS');
  });

  it('pairwise masks cancel in the sum: Σ (x_i + Σ_{j>i} m_ij − Σ_{j<i} m_ji) = Σ x_i, bit for bit', () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 8 }), fc.integer({ min: 1, max: 40 }), (n, d) => {
        const keys = Array.from({ length: n }, () => agreementKeyPair(random));
        const inputs = Array.from({ length: n }, () => new Uint32Array(random(4 * d).buffer));
        const total = new Uint32Array(d);
        const plain = new Uint32Array(d);
        for (let i = 0; i < n; i++) {
          const masked = inputs[i]!.slice();
          for (let j = 0; j < n; j++) {
            if (i === j) continue;
            const seed = sharedSecret(
              keys[i]!.privateKey,
              keys[i]!.publicKey,
              keys[j]!.publicKey,
              'round-1/mask',
            );
            const m = maskFromSeed(seed, d);
            if (i < j) addInto(masked, m);
            else subtractInto(masked, m);
          }
          addInto(total, masked);
          addInto(plain, inputs[i]!);
        }
        expect([...total]).toEqual([...plain]);
      }),
      { numRuns: 30 },
    );
  });
});

describe('keys: X25519 pairwise secrets and Ed25519 signatures', () => {
  it('both sides derive the same secret; another context, key or peer gives another', () => {
    const a = agreementKeyPair(random);
    const b = agreementKeyPair(random);
    const c = agreementKeyPair(random);
    const ab = sharedSecret(a.privateKey, a.publicKey, b.publicKey, 'ctx');
    expect([...sharedSecret(b.privateKey, b.publicKey, a.publicKey, 'ctx')]).toEqual([...ab]);
    expect([...sharedSecret(a.privateKey, a.publicKey, b.publicKey, 'other')]).not.toEqual([...ab]);
    expect([...sharedSecret(a.privateKey, a.publicKey, c.publicKey, 'ctx')]).not.toEqual([...ab]);
  });

  it('keys derive deterministically from injected bytes', () => {
    expect([...agreementKeyPair(seeded(3)).publicKey]).toEqual([...agreementKeyPair(seeded(3)).publicKey]);
    expect([...signingKeyPair(seeded(3)).publicKey]).toEqual([...signingKeyPair(seeded(3)).publicKey]);
  });

  it('refuses a malformed or low-order peer key with SECAGG_BAD_MESSAGE', () => {
    const a = agreementKeyPair(random);
    expectCode(
      () => sharedSecret(a.privateKey, a.publicKey, new Uint8Array(31), 'ctx'),
      'SECAGG_BAD_MESSAGE',
    );
    expectCode(
      () => sharedSecret(a.privateKey, a.publicKey, new Uint8Array(32), 'ctx'),
      'SECAGG_BAD_MESSAGE',
    );
  });

  it('signatures verify, and any change of message, key or signature fails', () => {
    const k = signingKeyPair(random);
    const other = signingKeyPair(random);
    const msg = new TextEncoder().encode('advertise keys, round 3');
    const sig = signMessage(k.privateKey, msg);
    expect(verifyMessage(k.publicKey, msg, sig)).toBe(true);
    expect(verifyMessage(other.publicKey, msg, sig)).toBe(false);
    expect(verifyMessage(k.publicKey, new TextEncoder().encode('advertise keys, round 4'), sig)).toBe(false);
    const bad = sig.slice();
    bad[10]! ^= 1;
    expect(verifyMessage(k.publicKey, msg, bad)).toBe(false);
    expect(verifyMessage(k.publicKey, msg, sig.subarray(0, 63))).toBe(false);
    expect(verifyMessage(new Uint8Array(5), msg, sig)).toBe(false);
  });
});

describe('Shamir shares with an integrity check', () => {
  it('any t of n shares rebuild the secret; t − 1 are refused (the library alone would return garbage)', async () => {
    const secret = random(32);
    const shares = await splitSecret(secret, 6, 4, 'task/1/round/2/self-mask/client-3');
    for (const subset of [
      [0, 1, 2, 3],
      [5, 4, 3, 2],
      [0, 2, 4, 5],
      [0, 1, 2, 3, 4, 5],
    ]) {
      expect([
        ...(await combineShares(
          subset.map((i) => shares[i]!),
          'task/1/round/2/self-mask/client-3',
        )),
      ]).toEqual([...secret]);
    }
    await expect(
      combineShares(shares.slice(0, 3), 'task/1/round/2/self-mask/client-3'),
    ).rejects.toMatchObject({
      code: 'SECAGG_SHARE_INVALID',
    });
  });

  it('an altered share, or shares of another context, are refused', async () => {
    const shares = await splitSecret(random(32), 5, 3, 'ctx-a');
    const altered = shares.map((s) => s.slice());
    altered[1]![4]! ^= 0x20;
    await expect(combineShares(altered.slice(0, 3), 'ctx-a')).rejects.toMatchObject({
      code: 'SECAGG_SHARE_INVALID',
    });
    await expect(combineShares(shares.slice(0, 3), 'ctx-b')).rejects.toMatchObject({
      code: 'SECAGG_SHARE_INVALID',
    });
  });

  it('refuses impossible parameters', async () => {
    await expect(splitSecret(random(32), 3, 4, 'x')).rejects.toMatchObject({
      code: 'SECAGG_INVALID_PARAMETERS',
    });
    await expect(splitSecret(random(32), 300, 4, 'x')).rejects.toMatchObject({
      code: 'SECAGG_INVALID_PARAMETERS',
    });
    await expect(splitSecret(random(32), 3, 1, 'x')).rejects.toMatchObject({
      code: 'SECAGG_INVALID_PARAMETERS',
    });
  });
});
