/**
 * Issue 19 §2, distributed DP: the spec's mechanism selector (old specs keep their digest; Skellam is refused where
 * its noise could not travel in the secure sum or could wrap the ring), the ε a task spends and plans (only the
 * survivors' noise counts; the budget gate plans for cohort.min survivors), and a training round whose organisations
 * noise their updates before masking: the sum carries the whole noise, and concluding it again gives the same bytes.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { byteStreamFromSeed } from '../../src/aggregation/index.ts';
import { accountsReady } from '../../src/shared/account.ts';
import { canonicalDigest } from '../../src/shared/canonical.ts';
import { hasCode } from '../../src/shared/errors.ts';
import {
  concludeAttempt,
  encodeTrainingUpdate,
  epsilonAfter,
  epsilonSpent,
  materialAuditorsOf,
  parseTaskSpec,
  privacyRecord,
  projectedEpsilon,
  recordsAggregationMaterial,
  skellamEpsilonAfter,
  strategyOf,
  type TaskSpec,
  taskDigest,
  withinBudget,
} from '../../src/task/index.ts';
import { makeAccount } from '../coordinator/harness.ts';
import { specInput } from './spec-fixture.ts';

await accountsReady();
const alice = makeAccount('alice').address;
const seeded = (seed: string) => byteStreamFromSeed(createHash('sha256').update(seed).digest());

const DP = { noiseMultiplier: 0.5, clipNorm: 1, delta: 1e-5, epsilonBudget: 1000 };
const PARAMETERS = 4000;

function skellamSpec(overrides: Record<string, unknown> = {}, dp: Record<string, unknown> = {}): unknown {
  const base = specInput(alice);
  return {
    ...base,
    model: { ...base.model, parameters: PARAMETERS },
    data: { ...base.data, holdout: 0 },
    dp: { ...DP, mechanism: 'skellam', ...dp },
    ...overrides,
  };
}

function refusal(input: unknown): string {
  try {
    parseTaskSpec(input);
  } catch (e) {
    expect(hasCode(e, 'INVALID_INPUT')).toBe(true);
    return (e as Error).message;
  }
  return expect.fail('expected the spec to be refused');
}

describe('the spec selects the mechanism', () => {
  it('a spec without dp.mechanism is central and keeps its canonical JSON and digest', () => {
    const input = { ...specInput(alice), dp: DP };
    const spec = parseTaskSpec(input);
    expect('mechanism' in spec.dp!).toBe(false);
    expect(taskDigest(spec)).toBe(canonicalDigest(input));
    expect(recordsAggregationMaterial(spec)).toBe(false);
    expect(privacyRecord(spec, 1).mechanism).toBe('gaussian');
  });

  it('skellam parses with SecAgg and a sum strategy, and records the recompute material', () => {
    const spec = parseTaskSpec(skellamSpec());
    expect(spec.dp?.mechanism).toBe('skellam');
    expect(recordsAggregationMaterial(spec)).toBe(true);
    expect(parseTaskSpec(skellamSpec({ strategy: { name: 'fedadam', serverLr: 0.1 } })).strategy.name).toBe(
      'fedadam',
    );
  });

  it('refuses skellam without SecAgg, with a robust rule, or an unknown mechanism', () => {
    const base = specInput(alice);
    expect(refusal(skellamSpec({ secagg: { ...base.secagg, enabled: false } }))).toMatch(
      /skellam .*needs secagg\.enabled true/,
    );
    expect(
      refusal(skellamSpec({ secagg: { ...base.secagg, enabled: false }, strategy: { name: 'krum', f: 1 } })),
    ).toMatch(/cannot be combined with central DP or distributed DP|secagg\.enabled/);
    expect(refusal(skellamSpec({}, { mechanism: 'laplace' }))).toMatch(/dp\.mechanism/);
  });

  it('central DP with dp.auditors records material sealed for them; auditors are refused where the sum is not secret', () => {
    const auditors = ['a1'.repeat(32)];
    const spec = parseTaskSpec({ ...specInput(alice), dp: { ...DP, auditors } });
    expect(recordsAggregationMaterial(spec)).toBe(true);
    expect(materialAuditorsOf(spec)).toEqual(auditors);
    expect(materialAuditorsOf(parseTaskSpec(skellamSpec()))).toBeNull();
    expect(refusal(skellamSpec({}, { auditors }))).toMatch(/dp\.auditors .*skellam/);
    const base = specInput(alice);
    expect(refusal({ ...base, secagg: { ...base.secagg, enabled: false }, dp: { ...DP, auditors } })).toMatch(
      /dp\.auditors .*secagg\.enabled false/,
    );
    expect(refusal({ ...base, dp: { ...DP, auditors: ['not-a-key'] } })).toMatch(/X25519/);
  });

  it('refuses a ring with no room for the noise: the noise-free sums fill it, or the noise could wrap it', () => {
    const base = specInput(alice);
    expect(refusal(skellamSpec({ secagg: { ...base.secagg, bits: 31, maxWeight: 1 } }))).toMatch(
      /window of 2\^32.*lower secagg\.bits or cohort\.size/,
    );
    // A large cohort: std z·C·s = 9000 · 1 · 32767.5 ≈ 2.9e8 steps, 2^31 about 7 standard deviations away.
    const big = { ...base.secagg, bits: 16, maxWeight: 1 };
    const cohort = { size: 1000, min: 3 };
    expect(refusal(skellamSpec({ secagg: big, cohort }, { noiseMultiplier: 9000 }))).toMatch(
      /could wrap the 32-bit sum .* expected ≤ 1e-12: lower secagg\.bits/,
    );
    // The same noise multiplier on a coarser grid (fewer steps per unit, so less noise in steps) fits.
    expect(() =>
      parseTaskSpec(skellamSpec({ secagg: { ...big, bits: 12 }, cohort }, { noiseMultiplier: 9000 })),
    ).not.toThrow();
    // Noise shares beyond what the Poisson sampler takes (λ = (50,000 · 8388.6)² / 10 > 2^50).
    expect(refusal(skellamSpec({}, { noiseMultiplier: 50_000 }))).toMatch(
      /Poisson means of .* expected ≤ 2\^50/,
    );
  });
});

describe('what a distributed-DP task spends', () => {
  const spec = parseTaskSpec(skellamSpec()) as TaskSpec;

  it('ε counts the survivors’ noise shares only: fewer survivors, more ε', () => {
    expect(skellamEpsilonAfter(spec, [4])).toBeGreaterThan(skellamEpsilonAfter(spec, [5]));
    expect(epsilonSpent(spec, [5, 4])).toBe(skellamEpsilonAfter(spec, [5, 4]));
    expect(privacyRecord(spec, 1, [5, 4])).toEqual({
      mechanism: 'skellam',
      epsilonSpent: skellamEpsilonAfter(spec, [5, 4]),
      delta: 1e-5,
    });
    expect(() => privacyRecord(spec, 1)).toThrow(/survivor counts of 2 training rounds/);
    expect(() => skellamEpsilonAfter(spec, [6])).toThrow(/1\.\.5/);
  });

  it('central DP’s ε does not depend on who survived', () => {
    const central = parseTaskSpec({ ...specInput(alice), dp: DP });
    expect(epsilonSpent(central, [5, 3])).toBe(epsilonAfter(DP, 2));
  });

  it('the budget gate plans the next round at cohort.min survivors', () => {
    const min = spec.cohort.min;
    expect(projectedEpsilon(spec, 0)).toBe(skellamEpsilonAfter(spec, [min]));
    expect(projectedEpsilon(spec, 2, [5, 4])).toBe(skellamEpsilonAfter(spec, [5, 4, min]));
    // A budget that one full round fits but one round at cohort.min does not: refused.
    const between = (skellamEpsilonAfter(spec, [5]) + skellamEpsilonAfter(spec, [min])) / 2;
    const tight = { ...spec, dp: { ...spec.dp!, epsilonBudget: between } };
    expect(withinBudget(tight, 0)).toBe(false);
    expect(withinBudget({ ...tight, dp: { ...tight.dp!, epsilonBudget: 1e9 } }, 0)).toBe(true);
  });
});

describe('a distributed-DP training round', () => {
  const spec = parseTaskSpec(skellamSpec()) as TaskSpec;
  const updates = ['a', 'b', 'c', 'd', 'e'].map((org) => {
    const r = seeded(`update ${org}`)(4 * PARAMETERS);
    const delta = new Float32Array(PARAMETERS);
    for (let i = 0; i < PARAMETERS; i++) delta[i] = (r[i]! / 255 - 0.5) * 0.02;
    return { org, delta };
  });
  const start = strategyOf(spec).init(new Float32Array(PARAMETERS));

  async function round(orgs: readonly string[], seed: string) {
    const plain = new Map(
      updates
        .filter((u) => orgs.includes(u.org))
        .map((u) => [
          u.org,
          encodeTrainingUpdate(spec, { delta: u.delta, examples: 30 }, seeded(`${seed} ${u.org}`)),
        ]),
    );
    return concludeAttempt({ spec, kind: 'train', start, plain });
  }

  /** The noise in model units: what the round added beyond the survivors' (unclipped, small) updates. */
  function noiseOf(global: Float32Array, orgs: readonly string[]): Float64Array {
    const out = new Float64Array(PARAMETERS);
    for (let i = 0; i < PARAMETERS; i++) {
      let sum = 0;
      for (const u of updates) if (orgs.includes(u.org)) sum += u.delta[i]!;
      // FedAvg over the planned cohort (5): next = start + Σ/5.
      out[i] = global[i]! * spec.cohort.size - sum;
    }
    return out;
  }
  const std = (xs: Float64Array) => Math.sqrt(xs.reduce((s, x) => s + x * x, 0) / xs.length);

  it('the sum carries every survivor’s noise share: std z·C·√(survivors/cohort) in model units', async () => {
    const all = ['a', 'b', 'c', 'd', 'e'];
    const full = await round(all, 'r0');
    expect(full.examples).toBe(5); // each update weighs 1
    const noise = std(noiseOf(full.next!.global, all));
    expect(Math.abs(noise - 0.5) / 0.5).toBeLessThan(0.06);
    // e dropped out: its share is not in the sum.
    const four = all.slice(0, 4);
    const fewer = await round(four, 'r1');
    const expected = 0.5 * Math.sqrt(4 / 5);
    expect(Math.abs(std(noiseOf(fewer.next!.global, four)) - expected) / expected).toBeLessThan(0.06);
  });

  it('concluding the same inputs again gives the same sum and model bytes (no secret noise source)', async () => {
    const all = ['a', 'b', 'c'];
    const one = await round(all, 'again');
    const two = await round(all, 'again');
    expect(two.sum).toEqual(one.sum);
    expect(two.modelHash).toBe(one.modelHash);
    expect((await round(all, 'other')).modelHash).not.toBe(one.modelHash);
  });
});
