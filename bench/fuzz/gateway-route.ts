/**
 * The route of the gateway's app (src/node/gateway.ts: the S3 app with the Alt-DA, DeOSS and marketplace APIs beside
 * it) a request reaches, named as fastify registers it (`PUT /market/objects/:fid/terms`, `GET /*`). The four gateway
 * edges label each case with it; test/fuzz/gateway-routes.test.ts checks the names against the app's registered
 * routes and each label against the route fastify itself picks for the case's request.
 */

/** Each API's own routes besides its catch-all `/*` (`:p` one segment, empty too; `*` the rest of the path). */
const ROUTES: readonly (readonly [method: string, url: string])[] = [
  ['POST', '/altda/put'],
  ['POST', '/altda/put/*'],
  ['GET', '/altda/get/*'],
  ['GET', '/altda/evidence/*'],
  ['PUT', '/deoss/file'],
  ['GET', '/deoss/file/download/:fid'],
  ['GET', '/deoss/file/open/:fid'],
  ['GET', '/deoss/file/metadata/:fid'],
  ['GET', '/deoss/file/location/:fid'],
  ['GET', '/deoss/file/list'],
  ['DELETE', '/deoss/file/:fid'],
  ['PUT', '/deoss/resume/:name'],
  ['GET', '/market/objects/:fid'],
  ['POST', '/market/objects/:fid/purchase'],
  ['GET', '/market/objects/:fid/terms'],
  ['PUT', '/market/objects/:fid/terms'],
  ['POST', '/market/objects/:fid/shares'],
  ['GET', '/market/objects/:fid/retrievals'],
];
/** The methods every catch-all takes (S3's and each API's). */
const CATCH_ALL_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'PUT', 'POST', 'DELETE']);
const PREFIXES = ['/altda', '/deoss', '/market'];
/** fastify's default bound on a path parameter: a longer one matches no parametric route (the catch-all takes it). */
const MAX_PARAM = 100;

const matches = (url: string, path: string): boolean => {
  const want = url.split('/');
  const have = path.split('/');
  for (const [i, w] of want.entries()) {
    if (w === '*') return have.length >= i + 1;
    const h = have[i];
    if (h === undefined) return false;
    if (w.startsWith(':') ? h.length > MAX_PARAM : h !== w) return false;
  }
  return have.length === want.length;
};

/**
 * The route `method` `path` reaches (the path as a client gives it to fetch, with its query): undefined when no route
 * does (a method no route takes) or when fastify cannot decode the path (it refuses it before routing).
 */
export function gatewayRoute(method: string, path: string): string | undefined {
  if (!CATCH_ALL_METHODS.has(method)) return undefined;
  // What fetch sends: dot segments (also %2E) resolved, the query apart.
  const sent = new URL(path, 'http://gateway.invalid').pathname;
  let decoded: string;
  try {
    decoded = sent
      .split('/')
      .map((s) => decodeURIComponent(s))
      .join('/');
  } catch {
    return undefined;
  }
  for (const [m, url] of ROUTES) if (m === method && matches(url, decoded)) return `${m} ${url}`;
  const prefix = PREFIXES.find((p) => decoded.startsWith(`${p}/`));
  return `${method} ${prefix ?? ''}/*`;
}
