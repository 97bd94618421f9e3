import type { RoundRow } from '../coordinator/store.ts';

const percent = (x: number) => `${(x * 100).toFixed(2)} %`;

/**
 * A round's figures for a person: the model on the coordinator's test set, and the organisations' held-out rows
 * scoring the model the round started from (in the closing evaluation round: the final model).
 */
export function describeRound(row: Pick<RoundRow, 'accuracy' | 'kind' | 'evaluation'>): string {
  const parts: string[] = [];
  if (row.accuracy !== null) parts.push(`accuracy ${percent(row.accuracy)} (test set)`);
  if (row.evaluation)
    parts.push(
      `${row.kind === 'evaluation' ? 'final model' : 'start model'} ${percent(row.evaluation.accuracy)} on ${row.evaluation.examples} held-out rows`,
    );
  return parts.join(', ') || 'no accuracy measured';
}
