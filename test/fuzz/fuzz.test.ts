import { describe, expect, it } from 'vitest';
import { allEdges, DEFAULT_RUNS, DEFAULT_SEED } from '../../bench/fuzz/edges.ts';
import { fuzzEdge } from '../../bench/fuzz/harness.ts';

// The short profile of `npm run fuzz` (issue 18 §2) with its fixed seed: every edge's bad inputs are refused with a
// registered code, nothing crashes, and nothing stored changes. A failure names the edge, variant and input.
describe('fuzz (short profile, fixed seed)', () => {
  for (const edge of allEdges()) {
    it(edge.name, async () => {
      const { report, failures } = await fuzzEdge(edge, { runs: DEFAULT_RUNS, seed: DEFAULT_SEED });
      expect(failures).toEqual([]);
      expect(report.inputs).toBe(DEFAULT_RUNS);
      expect(report.crashes + report.unregistered + report.accepted_invalid + report.state_changed).toBe(0);
      // The edge tested something: most inputs were refused, not waved through as noise.
      expect(report.refused).toBeGreaterThan(DEFAULT_RUNS / 2);
    });
  }
});
