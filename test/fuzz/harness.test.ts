import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Edge, fuzzEdge } from '../../bench/fuzz/harness.ts';
import { fuzzCase } from '../../bench/fuzz/mutate.ts';
import { AilinkError } from '../../src/shared/errors.ts';

// The harness's own promise (issue 18 §2): when an input is wrongly accepted, changes what is stored, or crashes,
// the report names the smallest input that still does (fast-check's shrinking), not only the first one drawn.
// The edges here are the harness's test subjects, each with a planted bug; the real edges are in fuzz.test.ts.

/** A store of one counter that refuses every input but has a planted bug for inputs where `bad` holds. */
function buggyEdge(bad: (bytes: Uint8Array) => 'accept' | 'crash' | 'change' | null): Edge<Uint8Array> {
  let stored = 0;
  return {
    name: 'planted',
    cases: () =>
      fc
        .uint8Array({ maxLength: 200 })
        .map((b) => fuzzCase('malformed', `${b.byteLength} bytes [${b.join(',')}]`, b)),
    async apply(input) {
      const bug = bad(input);
      if (bug === 'accept') return;
      if (bug === 'crash') throw new TypeError('planted crash');
      if (bug === 'change') stored++;
      throw new AilinkError('INVALID_INPUT', 'refused');
    },
    async digest() {
      return String(stored);
    },
    async restore() {
      stored = 0;
    },
  };
}

describe('fuzz harness: the smallest failing input', () => {
  it('shrinks a wrongly accepted input to the shortest one (7 bytes of zeros) that is still accepted', async () => {
    const { report, smallest } = await fuzzEdge(
      buggyEdge((b) => (b.byteLength >= 7 ? 'accept' : null)),
      { runs: 100, seed: 18 },
    );
    expect(report.accepted_invalid).toBeGreaterThan(0);
    expect(smallest).toMatchObject({ kind: 'accepted_invalid', variant: 'malformed' });
    expect(smallest!.label).toBe(`7 bytes [${new Array(7).fill(0).join(',')}]`);
    expect(smallest!.shrinks).toBeGreaterThan(0);
    expect(report.smallest).toStrictEqual(smallest);
  });

  it('shrinks a crash and a refusal that changed the store to the byte that causes them', async () => {
    const crash = await fuzzEdge(
      buggyEdge((b) => (b.includes(200) ? 'crash' : null)),
      { runs: 100, seed: 18 },
    );
    expect(crash.smallest).toMatchObject({ kind: 'crash', label: '1 bytes [200]' });
    const change = await fuzzEdge(
      buggyEdge((b) => (b.some((x) => x > 250) ? 'change' : null)),
      { runs: 100, seed: 18 },
    );
    expect(change.smallest).toMatchObject({ kind: 'state_changed', label: '1 bytes [251]' });
  });

  it('looks for nothing when every input was refused cleanly, or when asked not to', async () => {
    const clean = await fuzzEdge(
      buggyEdge(() => null),
      { runs: 50, seed: 18 },
    );
    expect(clean.failures).toEqual([]);
    expect(clean.smallest).toBeUndefined();
    const unshrunk = await fuzzEdge(
      buggyEdge(() => 'accept'),
      { runs: 20, seed: 18, shrink: false },
    );
    expect(unshrunk.failures).toHaveLength(20);
    expect(unshrunk.smallest).toBeUndefined();
  });
});
