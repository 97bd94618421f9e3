import { AggregationError } from './errors.ts';
import { maskFromSeed } from './prg.ts';

/**
 * The SecAgg+ communication graph (Bell et al. 2020): each client shares keys and masks only with its k neighbours
 * instead of all n − 1. As in the paper, a Harary graph H(k, n) — node i joined to i ± 1 … i ± k/2 around a ring —
 * relabelled by a uniformly random permutation, drawn from a public 256-bit seed (e.g. a block hash) so that every
 * party derives the same graph and nobody chooses it.
 */
export function neighbourGraph(ids: readonly string[], k: number, seed: Uint8Array): Map<string, string[]> {
  const n = ids.length;
  if (new Set(ids).size !== n)
    throw new AggregationError('SECAGG_INVALID_PARAMETERS', 'client ids must be distinct');
  if (!Number.isInteger(k) || k < 2 || k % 2 !== 0 || k >= n) {
    throw new AggregationError(
      'SECAGG_INVALID_PARAMETERS',
      `expected an even k with 2 ≤ k < n = ${n}, got ${k}`,
    );
  }
  const order = shuffle(ids, seed);
  const graph = new Map<string, string[]>();
  order.forEach((id, position) => {
    const neighbours: string[] = [];
    for (let step = 1; step <= k / 2; step++) {
      neighbours.push(order[(position + step) % n]!, order[(position - step + n) % n]!);
    }
    graph.set(id, neighbours.sort());
  });
  return graph;
}

/** Fisher–Yates with unbiased indices (rejection sampling) from the ChaCha20 stream of `seed`. */
function shuffle(ids: readonly string[], seed: Uint8Array): string[] {
  const out = [...ids].sort(); // start from a canonical order: the caller's order must not matter
  let words = maskFromSeed(seed, 4 * out.length + 16, 0x67726170); // 'grap'
  let next = 0;
  let refills = 0;
  const word = (): number => {
    if (next === words.length) {
      words = maskFromSeed(seed, words.length, 0x67726170 + ++refills);
      next = 0;
    }
    return words[next++]!;
  };
  for (let i = out.length - 1; i > 0; i--) {
    const bound = i + 1;
    const limit = 2 ** 32 - (2 ** 32 % bound);
    let r = word();
    while (r >= limit) r = word();
    const j = r % bound;
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
