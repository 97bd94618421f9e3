import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { describe, expect, it } from 'vitest';
import { altdaEdge } from '../../bench/fuzz/altda.ts';
import { deossEdge } from '../../bench/fuzz/deoss.ts';
import { s3Edge } from '../../bench/fuzz/gateway.ts';
import type { Edge } from '../../bench/fuzz/harness.ts';
import { marketEdge } from '../../bench/fuzz/market.ts';
import { registerAltDa } from '../../src/gateway/altda.ts';
import { registerDeoss } from '../../src/gateway/deoss.ts';
import { type MarketApiDeps, registerMarket } from '../../src/gateway/market.ts';
import { diskUploadStore } from '../../src/gateway/multipart.ts';
import { buildS3App } from '../../src/gateway/s3.ts';
import { systemRandom } from '../../src/shared/clock.ts';
import { altdaTwins } from '../gateway/altda-twins.ts';
import { deossTwins } from '../gateway/deoss-twins.ts';
import { s3Twins } from '../gateway/s3-twins.ts';
import { KEY, REGION } from '../gateway/sdk-signer.ts';

/** What the four gateway edges' inputs share: the method, the path under the edge's API, and the route named. */
interface RoutedInput {
  readonly method: string;
  readonly path: string;
  readonly query?: Readonly<Record<string, string>>;
  readonly route?: string;
}

/**
 * The gateway's app as src/node/gateway.ts composes it (S3, then Alt-DA, DeOSS and the marketplace beside it), with
 * `hooks` added before any API is registered (a route registered before its hook would not be seen by it).
 */
function gatewayApp(dir: string, hooks: (app: FastifyInstance) => void): FastifyInstance {
  const clock = { now: () => Date.now() };
  const s3 = s3Twins();
  const app = buildS3App({
    storage: s3.storage,
    namespace: s3.namespace,
    uploads: diskUploadStore(join(dir, 'uploads'), systemRandom),
    credentials: KEY,
    region: REGION,
    clock,
    random: systemRandom,
    log: () => {},
  });
  hooks(app);
  const altda = altdaTwins();
  registerAltDa(app, { storage: altda.storage, namespace: altda.namespace, indexer: altda.indexer });
  const deoss = deossTwins('5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty');
  registerDeoss(app, {
    storage: deoss.storage,
    namespace: deoss.namespace,
    clock,
    stateDir: join(dir, 'deoss'),
  });
  // Registering routes asks nothing of the market client, the index or the storage client: only requests do (and
  // no request here reaches a handler).
  registerMarket(app, {
    market: {} as MarketApiDeps['market'],
    storage: {} as MarketApiDeps['storage'],
    indexer: {} as MarketApiDeps['indexer'],
    account: { address: '5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty', readerKey: 'aa'.repeat(32) },
    credentials: KEY,
    region: REGION,
    clock,
    random: systemRandom,
    log: () => {},
  });
  return app;
}

/** Each gateway edge and where its inputs' paths are mounted. */
const EDGES: readonly (readonly [() => Edge<RoutedInput>, string])[] = [
  [s3Edge, ''],
  [deossEdge, '/deoss'],
  [altdaEdge, '/altda'],
  [marketEdge, '/market'],
];

// The four gateway edges (http:s3, http:deoss, http:altda, http:market) must reach every route the gateway's app
// registers: a route added without fuzz cases fails here, with its name; so does a case naming a route the app does
// not have, or a case whose request fastify routes elsewhere than its label says.
describe('the gateway fuzz edges cover every gateway route', () => {
  it('has cases for each registered route, each labelled with the route fastify picks', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ailink-gateway-routes-'));
    const registered = new Set<string>();
    let reached: string | undefined;
    const app = gatewayApp(dir, (a) => {
      a.addHook('onRoute', (route) => {
        for (const method of [route.method].flat()) registered.add(`${method} ${route.url}`);
      });
      // Which route a request reached, answered before any handler runs (nothing is read or stored).
      a.addHook('onRequest', async (request, reply) => {
        reached = `${request.method} ${request.routeOptions.url}`;
        return reply.code(204).send();
      });
    });
    await app.ready();
    try {
      expect([...registered]).toEqual(
        expect.arrayContaining([
          'GET /*',
          'HEAD /*',
          'PUT /market/objects/:fid/terms',
          'GET /deoss/file/open/:fid',
          'POST /altda/put/*',
          'HEAD /altda/*',
        ]),
      );
      const fuzzed = new Set<string>();
      const mislabelled: string[] = [];
      for (const [make, prefix] of EDGES) {
        const edge = make();
        await edge.setup!();
        try {
          const seen = new Set<string>();
          for (const c of fc.sample(edge.cases(), { seed: 18, numRuns: 1500 })) {
            const { method, path, query, route } = c.input;
            if (route === undefined) continue;
            fuzzed.add(route);
            const q = new URLSearchParams(query ?? {}).toString();
            // What fetch sends: dot segments (also %2E) resolved.
            const url = new URL(`${prefix}${path}${q === '' ? '' : `?${q}`}`, 'http://gateway.invalid');
            const request = `${method} ${url.pathname}${url.search}`;
            if (seen.has(request)) continue;
            seen.add(request);
            reached = undefined;
            await app.inject({ method: method as 'GET', url: `${url.pathname}${url.search}` });
            if (reached !== route)
              mislabelled.push(`${edge.name}: ${request} reached ${reached}, named ${route}`);
          }
        } finally {
          await edge.teardown!();
        }
      }
      expect(mislabelled.slice(0, 20)).toEqual([]);
      expect([...registered].filter((r) => !fuzzed.has(r)).sort()).toEqual([]);
      // And no case names a route the app does not have (a typo would cover nothing).
      expect([...fuzzed].filter((r) => !registered.has(r)).sort()).toEqual([]);
    } finally {
      await app.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
