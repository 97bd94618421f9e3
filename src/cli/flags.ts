// Usage errors and number flags: pure, so that tests import them (args.ts, which re-exports them, watches the parent
// process's IPC channel on load, which a test runner's worker must not have touched).
import { AilinkError } from '../shared/errors.ts';
import { USAGE } from './usage.ts';

export function usageError(message: string): never {
  throw new AilinkError('INVALID_INPUT', `${message}\n\n${USAGE}`);
}

export function positiveInt(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0)
    usageError(`--${name}: expected a positive integer, got ${JSON.stringify(value)}`);
  return n;
}

export function nonNegativeInt(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n))
    usageError(`--${name}: expected a whole number ≥ 0, got ${JSON.stringify(value)}`);
  return n;
}

export function portNumber(value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 65_535)
    usageError(`--port: expected 0 (any free port) to 65535, got ${JSON.stringify(value)}`);
  return n;
}
