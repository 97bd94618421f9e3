import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { coordinatorEdge } from '../../bench/fuzz/coordinator.ts';
import { buildApp } from '../../src/coordinator/http.ts';
import type { Coordinator } from '../../src/coordinator/index.ts';
import { accountsReady } from '../../src/shared/account.ts';
import type { NonceLedger } from '../../src/storage/protocol/request-auth.ts';

await accountsReady();

/** Every route the coordinator's HTTP app registers, as `METHOD /url` (fastify's own HEAD routes for GETs too). */
async function registeredRoutes(): Promise<string[]> {
  const app = buildApp({
    // Registering routes asks nothing of the coordinator or the nonce ledger: only requests do.
    coordinator: {} as Coordinator,
    info: () => ({ peerId: 'p', addrs: [], account: 'a', version: '0' }),
    nonces: {} as NonceLedger,
  });
  const routes = new Set<string>();
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) routes.add(`${method} ${route.url}`);
  });
  await app.ready();
  await app.close();
  return [...routes].sort();
}

// The http:coordinator fuzz edge must reach every route the server registers: a route added without fuzz cases
// fails here, with its name.
describe('the http:coordinator fuzz edge covers every coordinator route', () => {
  it('has cases for each registered route', async () => {
    const registered = await registeredRoutes();
    // The app's routes as of this test: a sanity check that the enumeration sees them all, HEAD routes included.
    expect(registered).toEqual(
      expect.arrayContaining([
        'GET /v1/info',
        'POST /v1/tasks',
        'POST /v1/tasks/:id/join',
        'HEAD /v1/tasks/:id',
      ]),
    );
    const edge = coordinatorEdge();
    await edge.setup!();
    try {
      const fuzzed = new Set(
        fc
          .sample(edge.cases(), { seed: 18, numRuns: 3000 })
          .flatMap((c) => (c.input.route ? [c.input.route] : [])),
      );
      expect(registered.filter((r) => !fuzzed.has(r))).toEqual([]);
      // And no case names a route the server does not have (a typo would cover nothing).
      expect([...fuzzed].filter((r) => !registered.includes(r))).toEqual([]);
    } finally {
      await edge.teardown!();
    }
  });
});
