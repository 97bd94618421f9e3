import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createLimiter } from '../../src/shared/limit.ts';

describe('createLimiter', () => {
  it('property: never more than n tasks at once, every task runs once, and each caller gets its own result', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 5 }),
        fc.array(fc.record({ ms: fc.integer({ min: 0, max: 3 }), fails: fc.boolean() }), { maxLength: 30 }),
        async (n, tasks) => {
          const limit = createLimiter(n);
          let running = 0;
          let most = 0;
          const ran: number[] = [];
          const results = await Promise.allSettled(
            tasks.map((t, i) =>
              limit(async () => {
                running++;
                most = Math.max(most, running);
                await new Promise((r) => setTimeout(r, t.ms));
                running--;
                ran.push(i);
                if (t.fails) throw new Error(`task ${i}`);
                return i;
              }),
            ),
          );
          expect(most).toBeLessThanOrEqual(n);
          expect(ran.sort((a, b) => a - b)).toEqual(tasks.map((_, i) => i));
          results.forEach((r, i) => {
            if (tasks[i]!.fails) expect(r.status).toBe('rejected');
            else expect(r).toEqual({ status: 'fulfilled', value: i });
          });
        },
      ),
      { numRuns: 60 },
    );
  });

  it('refuses a limit below 1', () => {
    expect(() => createLimiter(0)).toThrow(/at least 1/);
  });
});
