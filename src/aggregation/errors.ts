/**
 * Errors of the aggregation core. This module imports nothing else of ours (DESIGN §2), so it has its own error
 * class; src/shared/errors.ts registers these codes with their HTTP statuses for the edges.
 */
export const AGGREGATION_ERROR_CODES = {
  AGG_INVALID_INPUT: 'an update, weight or parameter is malformed (length, finiteness, range)',
  AGG_EMPTY: 'there is nothing to aggregate',
  AGG_REFUSED_UNDER_SECAGG:
    'a robust aggregator needs plaintext updates and cannot run under secure aggregation',
  AGG_TOO_FEW_UPDATES: 'a robust aggregator needs more updates than it tolerates byzantine ones',
  DP_INVALID_PARAMETERS: 'differential-privacy parameters are out of range',
  DP_BUDGET_EXHAUSTED: 'the privacy budget of the task is spent',
  QUANT_INVALID_PARAMETERS: 'quantization range or bits are out of range',
  SECAGG_INVALID_PARAMETERS: 'SecAgg parameters (n, k, t) do not fit together',
  SECAGG_BAD_MESSAGE: 'a protocol message is malformed, misaddressed, replayed or wrongly signed',
  SECAGG_SHARE_INVALID: 'a secret share failed its integrity check',
  SECAGG_ABORTED: 'the protocol ended without an aggregate (too few survivors or a lying server)',
} as const;

export type AggregationErrorCode = keyof typeof AGGREGATION_ERROR_CODES;

export class AggregationError extends Error {
  override readonly name = 'AggregationError';
  readonly code: AggregationErrorCode;
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(code: AggregationErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.code = code;
    this.details = details;
  }
}

/** Randomness is passed in (DESIGN §10): `random(n)` returns n fresh bytes. */
export type RandomBytes = (length: number) => Uint8Array;
