import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { blockTimeOf, DEFAULT_BLOCK_TIME_MS } from '../../src/chain/client.ts';
import { MAX_QUEUED_ADMISSIONS } from '../../src/coordinator/admissions.ts';
import { JOIN_DEADLINE_MAX_MS, JOIN_DEADLINE_MIN_MS, joinDeadlineMs } from '../../src/task/index.ts';

describe('the join deadline, from the block time and the admission queue', () => {
  it('grows with the batches ahead, five blocks each, within its floor and ceiling', () => {
    const idle = { queued: 0, inFlight: 0, batch: 128 };
    // A lone join on 6 s blocks needs 30 s; the floor keeps 60 s for a loaded machine.
    expect(joinDeadlineMs(6000, idle)).toBe(JOIN_DEADLINE_MIN_MS);
    // Behind a batch in flight on the dev chain's stated 12 s: two batches, ten blocks.
    expect(joinDeadlineMs(12_000, { queued: 0, inFlight: 40, batch: 128 })).toBe(120_000);
    // A full queue at 12 s blocks: the one in flight, 8 queued batches and its own (9 with itself among 1025).
    expect(joinDeadlineMs(12_000, { queued: MAX_QUEUED_ADMISSIONS, inFlight: 128, batch: 128 })).toBe(
      (1 + 9) * 5 * 12_000,
    );
  });

  it("believes the coordinator's queue only within the ceiling, and not at all when it is not numbers", () => {
    expect(joinDeadlineMs(12_000, { queued: 1e12, inFlight: 1, batch: 1 })).toBe(JOIN_DEADLINE_MAX_MS);
    const unknown = 2 * 5 * 12_000;
    expect(joinDeadlineMs(12_000, undefined)).toBe(unknown);
    expect(joinDeadlineMs(12_000, { queued: Number.NaN, inFlight: 0, batch: 128 })).toBe(unknown);
    expect(joinDeadlineMs(12_000, { queued: -5, inFlight: 0, batch: 128 })).toBe(unknown);
    expect(joinDeadlineMs(12_000, { queued: 3, inFlight: 0, batch: 0 })).toBe(unknown);
    expect(joinDeadlineMs(12_000, { queued: '9' as unknown as number, inFlight: 0, batch: 128 })).toBe(
      unknown,
    );
    // A chain that states no usable block time: the floor.
    expect(joinDeadlineMs(Number.NaN, { queued: 0, inFlight: 0, batch: 128 })).toBe(JOIN_DEADLINE_MIN_MS);
  });

  it('is always within bounds, and never shorter for a longer queue or slower blocks', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 60_000 }),
        fc.integer({ min: 0, max: 100_000 }),
        fc.integer({ min: 0, max: 100_000 }),
        fc.integer({ min: 0, max: 1000 }),
        fc.integer({ min: 1, max: 1000 }),
        (block, queued, more, inFlight, batch) => {
          const d = joinDeadlineMs(block, { queued, inFlight, batch });
          expect(d).toBeGreaterThanOrEqual(JOIN_DEADLINE_MIN_MS);
          expect(d).toBeLessThanOrEqual(JOIN_DEADLINE_MAX_MS);
          expect(joinDeadlineMs(block, { queued: queued + more, inFlight, batch })).toBeGreaterThanOrEqual(d);
          expect(joinDeadlineMs(block + more, { queued, inFlight, batch })).toBeGreaterThanOrEqual(d);
        },
      ),
    );
  });
});

describe("the chain's block time, from its constants", () => {
  const value = (n: number) => ({ toString: () => String(n) });
  it("takes BABE's expected block time, else twice the timestamp's minimum period, else the default", () => {
    expect(
      blockTimeOf({ babe: { expectedBlockTime: value(6000) }, timestamp: { minimumPeriod: value(1) } }),
    ).toBe(6000);
    expect(blockTimeOf({ timestamp: { minimumPeriod: value(6000) } })).toBe(12_000);
    expect(blockTimeOf({ timestamp: { minimumPeriod: value(0) } })).toBe(DEFAULT_BLOCK_TIME_MS);
    expect(blockTimeOf({})).toBe(DEFAULT_BLOCK_TIME_MS);
  });
});
