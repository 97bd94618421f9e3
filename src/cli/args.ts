// The argv helpers every command group shares: usage errors, number flags, signals, the JSON log.
import { AilinkError } from '../shared/errors.ts';
import { USAGE } from './usage.ts';

export const MiB = 1024 * 1024;

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

export function untilSignal(): Promise<void> {
  return new Promise((res) => {
    process.once('SIGINT', () => res());
    process.once('SIGTERM', () => res());
  });
}

/** Structured log lines on stderr: one JSON object per event. */
export const jsonLog = (() => {
  const line =
    (level: string) =>
    (event: string, fields: Record<string, unknown> = {}) =>
      process.stderr.write(`${JSON.stringify({ t: new Date().toISOString(), level, event, ...fields })}\n`);
  return { info: line('info'), warn: line('warn') };
})();
