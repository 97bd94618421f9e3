import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as aggregation from '../../src/aggregation/index.ts';

describe('src/aggregation', () => {
  it('imports nothing else of ours (DESIGN §2): only node built-ins, packages and its own files', () => {
    const dir = new URL('../../src/aggregation/', import.meta.url);
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
      const source = readFileSync(new URL(file, dir), 'utf8');
      const imports = [...source.matchAll(/from '([^']+)'/g)].map((m) => m[1]!);
      for (const path of imports) expect(path.startsWith('../'), `${file} imports ${path}`).toBe(false);
    }
  });

  it('exports exactly these names', () => {
    expect(Object.keys(aggregation).sort()).toMatchInlineSnapshot(`
      [
        "AGGREGATION_ERROR_CODES",
        "AggregationError",
        "DEFAULT_RDP_ORDERS",
        "MAX_POISSON_MEAN",
        "ROBUST_AGGREGATOR_NAMES",
        "SERVER",
        "SKELLAM_RDP_ORDERS",
        "addGaussianNoise",
        "addInto",
        "addSkellamShare",
        "agreementKeyPair",
        "assertPlaintextAllowed",
        "bulyan",
        "byteStreamFromSeed",
        "checkQuantization",
        "checkSecAggParams",
        "checkWeightedEncoding",
        "clipToNorm",
        "combineShares",
        "coordinateMedian",
        "createPrivacyBudget",
        "createRdpAccountant",
        "createSecAggClient",
        "createSecAggServer",
        "decodeNoisySum",
        "decodeWeightedSum",
        "dequantizeSum",
        "encodeWeightedUpdate",
        "epsilonFromRdp",
        "fedAdagrad",
        "fedAdam",
        "fedAvg",
        "fedAvgM",
        "fedProx",
        "fedYogi",
        "gaussianNoise",
        "krum",
        "maskFromSeed",
        "minimumUpdates",
        "multiKrum",
        "neighbourGraph",
        "poissonSamples",
        "privacySpent",
        "privatizeSum",
        "proximalTerm",
        "quantizationScale",
        "quantize",
        "reserveRound",
        "robustStrategy",
        "sharedSecret",
        "signMessage",
        "signingKeyPair",
        "skellamEpsilon",
        "skellamNoise",
        "skellamRdp",
        "skellamSensitivity",
        "skellamWrapProbability",
        "spend",
        "splitSecret",
        "subtractInto",
        "trimmedMean",
        "verifyAbort",
        "verifyConsistency",
        "verifyMessage",
        "verifySigned",
        "weightedMean",
        "withNormClipping",
      ]
    `);
  });
});
