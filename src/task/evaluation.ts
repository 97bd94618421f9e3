import { AilinkError } from '../shared/errors.ts';
import { readLimbs, writeLimbs } from './statistics.ts';

/**
 * Client-side evaluation through the secure sum. Every organisation scores the model a round starts from on the rows
 * it holds out and appends three numbers to its masked vector: examples scored, examples classified correctly, and
 * the summed loss (fixed point, 16 fraction bits). Each is written as 16-bit limbs, one per uint32 word, so the
 * word-by-word sum over up to 65,536 organisations carries nothing out of a word and the totals come back exact; the
 * coordinator learns the example-weighted accuracy and loss of the cohort, never one organisation's.
 */

const EXAMPLE_LIMBS = 2;
const CORRECT_LIMBS = 2;
const LOSS_LIMBS = 4;
const LOSS_SCALE = 2 ** 16;
/** Words an evaluation takes in a masked vector. */
export const EVALUATION_WORDS = EXAMPLE_LIMBS + CORRECT_LIMBS + LOSS_LIMBS;
/** The most examples one organisation may score (two 16-bit limbs). */
const MAX_EXAMPLES = 2 ** 32 - 1;
/** The largest mean loss accepted per example: a diverged model's loss is capped, not an overflow. */
const MAX_MEAN_LOSS = 1_000;

export interface EvaluationCounts {
  readonly examples: number;
  readonly correct: number;
  /** Σ loss over the examples. */
  readonly lossSum: number;
}

/** What a manifest records: the cohort's example-weighted accuracy and mean loss over its held-out rows. */
export interface EvaluationSummary {
  readonly examples: number;
  readonly accuracy: number;
  readonly loss: number;
}

/**
 * One organisation's evaluation as words to add to its masked vector.
 * @throws INVALID_INPUT for counts that are not whole, negative, or correct > examples
 */
export function encodeEvaluation(e: EvaluationCounts): Uint32Array {
  const whole = (x: number, top: number) => Number.isSafeInteger(x) && x >= 0 && x <= top;
  if (!whole(e.examples, MAX_EXAMPLES) || !whole(e.correct, e.examples))
    throw new AilinkError(
      'INVALID_INPUT',
      `expected 0 ≤ correct ≤ examples < 2^32, got ${e.correct} of ${e.examples}`,
    );
  // NaN or ∞ (a diverged model) and anything past the cap count as the cap: the figure stays bounded and honest.
  const mean = e.examples === 0 ? 0 : e.lossSum / e.examples;
  const loss =
    Number.isFinite(mean) && mean >= 0
      ? Math.min(mean, MAX_MEAN_LOSS) * e.examples
      : MAX_MEAN_LOSS * e.examples;
  const out = new Uint32Array(EVALUATION_WORDS);
  writeLimbs(out, 0, EXAMPLE_LIMBS, BigInt(e.examples));
  writeLimbs(out, EXAMPLE_LIMBS, CORRECT_LIMBS, BigInt(e.correct));
  writeLimbs(out, EXAMPLE_LIMBS + CORRECT_LIMBS, LOSS_LIMBS, BigInt(Math.round(loss * LOSS_SCALE)));
  return out;
}

/**
 * The cohort's evaluation from the sum of its members' words; null when nobody held out a row.
 * @throws ROUND_UPDATE_REFUSED when the words are not a sum `organisations` evaluations can make
 */
export function decodeEvaluationSum(words: Uint32Array, organisations: number): EvaluationSummary | null {
  if (words.length !== EVALUATION_WORDS)
    throw new AilinkError(
      'ROUND_UPDATE_REFUSED',
      `expected ${EVALUATION_WORDS} evaluation words, got ${words.length}`,
    );
  for (const w of words)
    if (w > organisations * 0xffff)
      throw new AilinkError(
        'ROUND_UPDATE_REFUSED',
        `an evaluation word exceeds what ${organisations} organisations add`,
      );
  const examples = Number(readLimbs(words, 0, EXAMPLE_LIMBS));
  const correct = Number(readLimbs(words, EXAMPLE_LIMBS, CORRECT_LIMBS));
  const lossSum = Number(readLimbs(words, EXAMPLE_LIMBS + CORRECT_LIMBS, LOSS_LIMBS)) / LOSS_SCALE;
  if (examples === 0) return null;
  if (correct > examples)
    throw new AilinkError('ROUND_UPDATE_REFUSED', `${correct} correct out of ${examples} examples`);
  return { examples, accuracy: correct / examples, loss: lossSum / examples };
}
