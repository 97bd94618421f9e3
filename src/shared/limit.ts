/**
 * Runs at most `n` of the tasks handed to it at once; the rest wait in order of arrival. A finished task hands its slot
 * straight to the next waiter, so a caller arriving in between cannot take it and exceed `n`.
 */
export function createLimiter(n: number): <T>(task: () => Promise<T>) => Promise<T> {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`expected a limit of at least 1, got ${n}`);
  let running = 0;
  const waiting: (() => void)[] = [];
  return async (task) => {
    if (running < n) running++;
    else await new Promise<void>((resume) => waiting.push(resume));
    try {
      return await task();
    } finally {
      const next = waiting.shift();
      if (next === undefined) running--;
      else next();
    }
  };
}

/**
 * `Promise.all` that waits for every promise to settle before it rejects: none is left running unobserved (its later
 * rejection would be unhandled) when another failed first. Rejects with the first rejection in array order.
 */
export async function settledAll<T extends readonly unknown[]>(
  promises: readonly [...{ [K in keyof T]: Promise<T[K]> }],
): Promise<T> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((r) => r.status === 'rejected');
  if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
  return results.map((r) => (r as PromiseFulfilledResult<unknown>).value) as unknown as T;
}
