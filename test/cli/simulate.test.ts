import { describe, expect, it } from 'vitest';
import { simulateOptions, workloadOf } from '../../src/cli/simulate.ts';
import { hasCode } from '../../src/shared/errors.ts';

/** The INVALID_INPUT message `f` throws (the usage follows it). */
function refusal(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (hasCode(e) && e.code === 'INVALID_INPUT') return e.message.split('\n')[0]!;
    throw e;
  }
  throw new Error('expected INVALID_INPUT, nothing was thrown');
}

describe('ailink simulate: --model and --data', () => {
  it('the stand-in by default, with its weights and examples', () => {
    expect(workloadOf(undefined, undefined)).toEqual({ kind: 'stand-in', dimension: 10_000, examples: 100 });
    expect(workloadOf('stand-in:500', 'synthetic:7')).toEqual({
      kind: 'stand-in',
      dimension: 500,
      examples: 7,
    });
  });

  it('a shipped model picks its shipped data, and a dataset its model', () => {
    expect(workloadOf('mlp', undefined)).toMatchObject({
      kind: 'real',
      model: 'mlp',
      data: 'fashion-mnist-small',
      source: { kind: 'fashion-mnist', small: true, model: 'mlp' },
    });
    expect(workloadOf('cnn', 'fashion-mnist')).toMatchObject({
      source: { kind: 'fashion-mnist', small: false, model: 'cnn' },
    });
    expect(workloadOf(undefined, 'penguins')).toMatchObject({
      model: 'logistic',
      source: { kind: 'csv', label: 'species' },
    });
    expect(workloadOf('logistic', undefined)).toMatchObject({ data: 'penguins' });
    expect(workloadOf(undefined, 'seattle-weather')).toMatchObject({ source: { label: 'weather' } });
  });

  it('refuses unknown models and datasets, mismatched pairs and bad numbers, saying what it takes', () => {
    expect(refusal(() => workloadOf('resnet', undefined))).toContain(
      '--model: expected stand-in[:WEIGHTS], mlp, cnn, logistic, got "resnet"',
    );
    expect(refusal(() => workloadOf(undefined, 'mnist'))).toContain(
      '--data: expected synthetic[:EXAMPLES], fashion-mnist-small, fashion-mnist, penguins, seattle-weather',
    );
    expect(refusal(() => workloadOf('mlp', 'penguins'))).toContain(
      '--model mlp does not fit --data penguins: it takes logistic',
    );
    expect(refusal(() => workloadOf('logistic', 'fashion-mnist-small'))).toContain('it takes mlp or cnn');
    expect(refusal(() => workloadOf('stand-in', 'penguins'))).toContain(
      '--model stand-in trains on --data synthetic only',
    );
    expect(refusal(() => workloadOf('cnn', 'synthetic:10'))).toContain(
      '--model cnn trains on fashion-mnist-small or fashion-mnist',
    );
    expect(refusal(() => workloadOf('stand-in:0', undefined))).toContain(
      'expected a positive integer, got "0"',
    );
    expect(refusal(() => workloadOf(undefined, 'synthetic:many'))).toContain(
      'expected a positive integer, got "many"',
    );
  });

  it('--alpha: a Dirichlet skew of a real dataset only, and > 0', () => {
    expect(simulateOptions(['--organisations', '5', '--data', 'penguins', '--alpha', '0.5']).alpha).toBe(0.5);
    expect(simulateOptions(['--organisations', '5', '--model', 'mlp']).alpha).toBeNull();
    expect(refusal(() => simulateOptions(['--organisations', '5', '--alpha', '0.5']))).toContain(
      '--alpha (Dirichlet label skew) splits a real dataset',
    );
    for (const bad of ['0', '-1', 'x', 'Infinity'])
      expect(
        refusal(() => simulateOptions(['--organisations', '5', '--model', 'mlp', `--alpha=${bad}`])),
      ).toContain('--alpha: expected a number > 0');
  });
});
