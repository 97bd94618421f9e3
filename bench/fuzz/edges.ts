import { altdaEdge } from './altda.ts';
import { chainEdges } from './chain.ts';
import { coordinatorEdge } from './coordinator.ts';
import { deossEdge } from './deoss.ts';
import { fileEdges } from './files.ts';
import { s3Edge } from './gateway.ts';
import { gossipEdge } from './gossip.ts';
import type { Edge } from './harness.ts';
import { marketEdge } from './market.ts';
import { p2pEdges } from './p2p.ts';
import { roundOpenEdges } from './round-open.ts';

/** The short profile CI runs (test/fuzz/fuzz.test.ts) and `npm run fuzz` without flags. */
export const DEFAULT_RUNS = 40;
export const DEFAULT_SEED = 18;

/** Every edge the fuzzer knows, each a fresh instance (edges keep state between setup and teardown). */
export const allEdges = (): Edge<never>[] =>
  [
    ...fileEdges(),
    ...chainEdges(),
    s3Edge(),
    deossEdge(),
    altdaEdge(),
    marketEdge(),
    coordinatorEdge(),
    ...p2pEdges(),
    ...roundOpenEdges(),
    gossipEdge(),
  ] as Edge<never>[];
