import type { FastifyInstance } from 'fastify';
import { explorerPage } from '../audit/explorer.ts';

/**
 * The coordinator's `GET /explorer`: the lineage explorer (src/audit/explorer/) as the coordinator's own view — the
 * page reads this coordinator's JSON API (tasks, rounds, metrics, participants, the open attempt) and
 * `GET /v1/tasks/:id/audit`, which this node computes over its own index of the chain and its own reads. The page
 * says so at the top, and points to `ailink audit serve`: the same page served by an auditor from its own view.
 */

const page = explorerPage('coordinator');

/** The page, as the coordinator serves it. */
export const EXPLORER_HTML = page.html;
/** Its Content-Security-Policy: only its own inline script and style (by hash), requests only to its own origin. */
export const EXPLORER_CSP = page.csp;

/**
 * Registers `GET /explorer` and `GET /explorer/` (hidden from the OpenAPI document: they are a page, not API). Call
 * inside the app's route scope; the page reads the API routes relative to where it is served.
 */
export function registerExplorer(app: FastifyInstance): void {
  for (const url of ['/explorer', '/explorer/'])
    app.get(url, { schema: { hide: true } }, (_request, reply) =>
      reply.headers(page.headers).send(page.html),
    );
}
