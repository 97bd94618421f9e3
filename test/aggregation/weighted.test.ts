import { createHash, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AggregationError } from '../../src/aggregation/errors.ts';
import { signingKeyPair } from '../../src/aggregation/keys.ts';
import { addInto } from '../../src/aggregation/quantize.ts';
import { createSecAggClient, createSecAggServer, type SecAggParams } from '../../src/aggregation/secagg.ts';
import { fedAvg } from '../../src/aggregation/strategies.ts';
import {
  checkWeightedEncoding,
  decodeWeightedSum,
  encodeWeightedUpdate,
} from '../../src/aggregation/weighted.ts';

const random = (n: number) => new Uint8Array(randomBytes(n));
/** A deterministic byte stream: the same seed gives the same bytes whatever sizes they are asked in. */
const seeded = (seed: number) => {
  let counter = 0;
  let pool = new Uint8Array(0);
  return (n: number) => {
    while (pool.length < n) {
      const block = createHash('sha256').update(`${seed}/${counter++}`).digest();
      pool = new Uint8Array([...pool, ...block]);
    }
    const out = pool.slice(0, n);
    pool = pool.slice(n);
    return out;
  };
};
const encoding = { quantization: { range: 1, bits: 20 }, maxWeight: 1000 };

describe('weighted updates for secure aggregation', () => {
  it('the sum of encodings decodes to Σ wᵢΔᵢ (within the quantization step) and exactly Σ wᵢ', () => {
    const updates = [
      Float32Array.from([0.5, -0.25, 1]),
      Float32Array.from([-1, 0.75, 0]),
      Float32Array.from([0.1, 0.2, -0.3]),
    ];
    const weights = [10, 300, 57];
    const total = new Uint32Array(4);
    for (const [i, u] of updates.entries())
      addInto(total, encodeWeightedUpdate(u, weights[i]!, encoding, random));
    const decoded = decodeWeightedSum(total, encoding, 3);
    expect(decoded.totalWeight).toBe(367);
    const step = (2 * encoding.maxWeight) / (2 ** 20 - 1);
    for (let j = 0; j < 3; j++) {
      const exact = updates.reduce((a, u, i) => a + weights[i]! * u[j]!, 0);
      expect(Math.abs(decoded.sum[j]! - exact)).toBeLessThanOrEqual(3 * step + 1e-3);
    }
  });

  it('encoded into the head of a longer vector: the same words, the rest untouched, nothing of its size allocated', () => {
    fc.assert(
      fc.property(
        fc.float32Array({ minLength: 1, maxLength: 200, noNaN: true }),
        fc.integer({ min: 1, max: 1000 }),
        fc.integer({ min: 0, max: 5 }),
        fc.integer(),
        (update, weight, tail, seed) => {
          const fresh = encodeWeightedUpdate(update, weight, encoding, seeded(seed));
          const out = new Uint32Array(update.length + 1 + tail).fill(7);
          const into = encodeWeightedUpdate(update, weight, encoding, seeded(seed), out);
          return (
            into === out &&
            fresh.every((w, i) => w === out[i]) &&
            out.subarray(update.length + 1).every((w) => w === 7)
          );
        },
      ),
    );
    expect(() => encodeWeightedUpdate(new Float32Array(3), 1, encoding, random, new Uint32Array(3))).toThrow(
      AggregationError,
    );
  });

  it('refuses weights outside 1..maxWeight and encodings that could overflow', () => {
    for (const w of [0, 1001, 2.5, Number.NaN]) {
      expect(() => encodeWeightedUpdate(new Float32Array(2), w, encoding, random)).toThrow(AggregationError);
    }
    expect(() =>
      checkWeightedEncoding({ quantization: { range: 1, bits: 24 }, maxWeight: 1000 }, 300),
    ).toThrow(expect.objectContaining({ code: 'QUANT_INVALID_PARAMETERS' }));
  });

  it('end to end: SecAgg+ over weighted encodings gives FedAvg’s model without any plaintext weight', async () => {
    const n = 8;
    const d = 5;
    const ids = Array.from({ length: n }, (_, i) => `c${i}`);
    const keys = new Map(ids.map((id) => [id, signingKeyPair(random)]));
    const params: SecAggParams = {
      context: 'weighted/round-1',
      identities: new Map(ids.map((id) => [id, keys.get(id)!.publicKey])),
      k: 4,
      t: 3,
      graphSeed: random(32),
      dimension: d + 1,
    };
    const updates = ids.map((_, i) => Float32Array.from({ length: d }, (_, j) => Math.sin(i * 7 + j) * 0.8));
    const weights = ids.map((_, i) => 20 + i * 13);
    const clients = ids.map((id) =>
      createSecAggClient(id, { identityKey: keys.get(id)!.privateKey, random }, params),
    );
    const server = createSecAggServer(params);
    const adverts = server.collectAdverts(clients.map((c) => c.advertise()));
    const shares = server.collectShares(
      await Promise.all(clients.map((c, i) => c.shareKeys(adverts.get(ids[i]!)!))),
    );
    const survivors = server.collectMasked(
      clients.map((c, i) =>
        c.maskedInput(
          shares.get(ids[i]!) ?? [],
          encodeWeightedUpdate(updates[i]!, weights[i]!, encoding, random),
        ),
      ),
    );
    const signatures = server.collectConsistency(clients.map((c) => c.consistency(survivors)));
    const { sum } = await server.unmask(clients.map((c) => c.unmask(signatures)));
    const global = new Float32Array(d);
    const strategy = fedAvg();
    const viaSecAgg = strategy.aggregate(strategy.init(global), {
      sum: decodeWeightedSum(sum, encoding, n).sum,
      totalWeight: decodeWeightedSum(sum, encoding, n).totalWeight,
    });
    const plain = strategy.aggregate(
      strategy.init(global),
      updates.map((update, i) => ({ update, weight: weights[i]! })),
    );
    for (let j = 0; j < d; j++) expect(viaSecAgg.global[j]!).toBeCloseTo(plain.global[j]!, 3);
  });
});
