import { expect } from 'vitest';
import { AggregationError, type AggregationErrorCode } from '../../src/aggregation/errors.ts';

/** Runs `fn`, expecting an AggregationError of `code`; returns it for further checks. */
export function expectCode(fn: () => unknown, code: AggregationErrorCode): AggregationError {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(AggregationError);
  expect((thrown as AggregationError).code).toBe(code);
  return thrown as AggregationError;
}
