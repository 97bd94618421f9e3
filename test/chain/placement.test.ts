import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { drawPlacement, type PlacementCandidate, rankRestorers } from '../../src/chain/placement.ts';
import { hasCode } from '../../src/shared/errors.ts';

// Placement (src/chain/placement.ts) as properties: what every put's draw must satisfy whatever the miners and seed.

const COLUMN = 1024;
const CAP = 64 * COLUMN;
const options = { columns: 12, spares: 12, columnBytes: COLUMN, capBytes: CAP };

/** 12..200 distinct miners with 0..4·CAP bytes free (some without room for a column), and a seed. */
const network = fc.record({
  miners: fc.uniqueArray(
    fc.record({
      id: fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: 4, maxLength: 12 }),
      free: fc.nat(4 * CAP),
    }),
    { minLength: 12, maxLength: 200, selector: (m) => m.id },
  ),
  seed: fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: 1, maxLength: 64 }),
});
const withRoom = (miners: readonly PlacementCandidate[]) => miners.filter((m) => m.free >= COLUMN);
const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    return hasCode(err, 'INVALID_INPUT')
      ? 'INVALID_INPUT'
      : hasCode(err, 'NOT_ENOUGH_MINERS')
        ? 'NOT_ENOUGH_MINERS'
        : String(err);
  }
  return 'ok';
};

describe('drawPlacement', () => {
  it('draws 12 distinct miners with room (then distinct spares), the same for the same seed in any input order', () => {
    fc.assert(
      fc.property(network, fc.nat(), ({ miners, seed }, shift) => {
        const room = withRoom(miners);
        fc.pre(room.length >= 12);
        const drawn = drawPlacement(miners, seed, options);
        expect(drawn).toHaveLength(Math.min(24, room.length));
        expect(new Set(drawn).size).toBe(drawn.length);
        const ids = new Set(room.map((m) => m.id));
        for (const id of drawn) expect(ids.has(id)).toBe(true);
        // Deterministic, and independent of the order the caller listed the miners in.
        const k = shift % miners.length;
        const rotated = [...miners.slice(k), ...miners.slice(0, k)].reverse();
        expect(drawPlacement(rotated, seed, options)).toEqual(drawn);
      }),
      { numRuns: 200 },
    );
  });

  it('a frozen list (whose preparation is kept for the next draw) draws as its copy does, draw after draw', () => {
    fc.assert(
      fc.property(network, fc.array(fc.nat(), { minLength: 1, maxLength: 5 }), ({ miners, seed }, nonces) => {
        fc.pre(withRoom(miners).length >= 12);
        const frozen = Object.freeze(miners.map((m) => Object.freeze({ ...m })));
        for (const n of nonces) {
          const s = `${seed}/${n}`;
          expect(drawPlacement(frozen, s, options)).toEqual(drawPlacement([...miners], s, options));
          // Other options over the same list are prepared apart, not taken from the first.
          const wide = { ...options, columnBytes: 1, capBytes: 2 * CAP };
          expect(drawPlacement(frozen, s, wide)).toEqual(drawPlacement([...miners], s, wide));
        }
      }),
      { numRuns: 100 },
    );
  });

  it('never weighs free space beyond the cap: raising a miner’s free space above it changes nothing', () => {
    fc.assert(
      fc.property(network, fc.nat(10 * CAP), ({ miners, seed }, extra) => {
        fc.pre(withRoom(miners).length >= 12);
        const capped = miners.map((m) => (m.free >= CAP ? { ...m, free: m.free + extra } : m));
        expect(drawPlacement(capped, seed, options)).toEqual(drawPlacement(miners, seed, options));
      }),
      { numRuns: 100 },
    );
  });

  it('repeated puts never put more on a miner than its free space, and spread load by free space', () => {
    // 200 miners of equal capacity for 40 columns, 300 puts of 12 columns: 18 columns each on average.
    const miners = Array.from({ length: 200 }, (_, i) => ({
      id: `m${String(i).padStart(3, '0')}`,
      free: 40 * COLUMN,
    }));
    const load = new Map(miners.map((m) => [m.id, 0]));
    for (let put = 0; put < 300; put++) {
      const view = miners.map((m) => ({ id: m.id, free: m.free - load.get(m.id)! * COLUMN }));
      for (const id of drawPlacement(view, `block/${put}`, { ...options, spares: 0 }))
        load.set(id, load.get(id)! + 1);
    }
    const loads = [...load.values()];
    expect(Math.max(...loads)).toBeLessThanOrEqual(40);
    expect(Math.max(...loads) / (loads.reduce((a, b) => a + b) / loads.length)).toBeLessThan(2);
  });

  it('refuses bad input with a clear code: too few miners with room, a miner twice, bad options', () => {
    const miners = Array.from({ length: 12 }, (_, i) => ({ id: `m${i}`, free: CAP }));
    expect(code(() => drawPlacement(miners, 's', options))).toBe('ok');
    expect(code(() => drawPlacement(miners.slice(1), 's', options))).toBe('NOT_ENOUGH_MINERS');
    expect(
      code(() => drawPlacement([...miners.slice(1), { id: 'm0', free: COLUMN - 1 }], 's', options)),
    ).toBe('NOT_ENOUGH_MINERS');
    expect(code(() => drawPlacement([...miners, miners[0]!], 's', options))).toBe('INVALID_INPUT');
    expect(code(() => drawPlacement([...miners, { id: 'x', free: -1 }], 's', options))).toBe('INVALID_INPUT');
    expect(code(() => drawPlacement([...miners, { id: 'x', free: 0.5 }], 's', options))).toBe(
      'INVALID_INPUT',
    );
    for (const bad of [
      { columns: 0 },
      { spares: -1 },
      { columnBytes: 0 },
      { capBytes: COLUMN - 1 },
      { columns: 1.5 },
    ]) {
      expect(
        code(() => drawPlacement(miners, 's', { ...options, ...bad })),
        JSON.stringify(bad),
      ).toBe('INVALID_INPUT');
    }
  });
});

describe('rankRestorers', () => {
  const rank = (miners: readonly PlacementCandidate[], seed: string, count: number, exclude: string[] = []) =>
    rankRestorers(miners, seed, { count, columnBytes: COLUMN, capBytes: CAP, exclude: new Set(exclude) });

  it('ranks up to `count` distinct miners with room and not excluded, the same in any input order', () => {
    fc.assert(
      fc.property(network, fc.nat(30), fc.nat(), ({ miners, seed }, count, shift) => {
        const exclude = miners.filter((_, i) => i % 5 === 0).map((m) => m.id);
        const ranked = rank(miners, seed, count, exclude);
        const allowed = withRoom(miners).filter((m) => !exclude.includes(m.id));
        expect(ranked).toHaveLength(Math.min(count, allowed.length));
        expect(new Set(ranked).size).toBe(ranked.length);
        for (const id of ranked) expect(allowed.map((m) => m.id)).toContain(id);
        const rotated = [...miners.slice(shift % miners.length), ...miners.slice(0, shift % miners.length)];
        expect(rank(rotated, seed, count, exclude)).toEqual(ranked);
      }),
    );
  });

  it('is stable: a longer ranking extends a shorter one, and removing or excluding a miner only closes its gap', () => {
    fc.assert(
      fc.property(network, fc.nat(20), fc.nat(), ({ miners, seed }, count, pick) => {
        const ranked = rank(miners, seed, count + 5);
        expect(rank(miners, seed, count)).toEqual(ranked.slice(0, count));
        if (ranked.length === 0) return;
        // What an owner re-ordering a restoral, or a miner leaving, changes: the rest keep their order.
        const gone = ranked[pick % ranked.length]!;
        const without = ranked.filter((id) => id !== gone);
        expect(rank(miners, seed, count + 4, [gone])).toEqual(without.slice(0, count + 4));
        const others = miners.filter((m) => m.id !== gone);
        expect(rank(others, seed, count + 4)).toEqual(without.slice(0, count + 4));
        // A miner outside the ranking changing its free space (below the cap) changes nothing ranked above it.
        const outside = miners.find((m) => m.free >= COLUMN && !ranked.includes(m.id));
        if (outside === undefined) return;
        const lighter = miners.map((m) => (m === outside ? { ...m, free: COLUMN } : m));
        expect(rank(lighter, seed, count + 5)).toEqual(ranked);
      }),
    );
  });

  it('ranks a miner first with probability proportional to its capped free space', () => {
    const miners = [
      { id: 'a', free: CAP },
      { id: 'b', free: CAP / 2 },
      { id: 'c', free: CAP / 4 },
      { id: 'd', free: 10 * CAP }, // counts as CAP
    ];
    const firsts = new Map<string, number>();
    const seeds = 8000;
    for (let i = 0; i < seeds; i++) {
      const [first] = rank(miners, `seed-${i}`, 1);
      firsts.set(first!, (firsts.get(first!) ?? 0) + 1);
    }
    const total = 1 + 1 / 2 + 1 / 4 + 1;
    for (const [id, weight] of [
      ['a', 1],
      ['b', 1 / 2],
      ['c', 1 / 4],
      ['d', 1],
    ] as const) {
      expect(Math.abs((firsts.get(id) ?? 0) / seeds - weight / total)).toBeLessThan(0.02);
    }
  });

  it('refuses options that are not whole numbers', () => {
    const miners = [{ id: 'a', free: CAP }];
    expect(code(() => rank(miners, 's', -1))).toBe('INVALID_INPUT');
    expect(code(() => rank(miners, 's', 1.5))).toBe('INVALID_INPUT');
    expect(
      code(() => rankRestorers(miners, 's', { count: 1, columnBytes: 2, capBytes: 1, exclude: new Set() })),
    ).toBe('INVALID_INPUT');
  });
});
