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
