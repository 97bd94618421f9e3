import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { roundsOf, type StateReader, type TaskInfo, taskOf, tasksOf } from '../chain/index.ts';
import { AilinkError, hasCode, httpStatusOf } from '../shared/errors.ts';
import { parseManifest, parseTaskSpec, taskDigest } from '../task/index.ts';
import { explorerPage } from './explorer.ts';
import {
  type AuditorAudit,
  type AuditorInfo,
  type AuditorTask,
  AuditorTaskSchema,
  TASK_ID,
} from './schema.ts';
import type { AuditReport } from './types.ts';
import { auditTask } from './verify.ts';

/**
 * `ailink audit serve` (issue 19 §5): the lineage explorer served by the auditor, not by the coordinator it audits.
 * Everything the page shows comes from the auditor's own session — the task list from its own index of the chain,
 * each task's report from `auditTask` over that index and the auditor's own fetches from the miners — and nothing
 * from the coordinator, whose HTTP API this server never contacts.
 *
 * Routes (GET or HEAD):
 * - `/`, `/explorer`, `/explorer/`: the page (src/audit/explorer/, in its auditor view).
 * - `/v1/info`: whose view it is (`AuditorInfo`).
 * - `/v1/tasks`: the tasks on chain (`AuditorTask[]`), or only `--task`'s.
 * - `/v1/tasks/:id/audit[?fresh=1]`: the report (`AuditorAudit`), re-used for `cacheMs` and re-run with `fresh=1`;
 *   one audit per task runs at a time, and callers that arrive meanwhile share it.
 * Refusals carry a registered code: a malformed id or query is 400 INVALID_INPUT, a task the chain does not record
 * (or not the one served) 404 TASK_NOT_FOUND, a path that is none of these 404 NOT_FOUND. Every remote step has a
 * deadline: the index's catch-up, each object fetch, and each audit as a whole.
 */

/** The auditor's own session, as the server needs it (src/cli builds it from `openAuditor`). */
export interface AuditorView {
  /** The auditor's account (SS58): the page names it. */
  readonly account: string;
  /** The auditor's own index of the chain. */
  readonly state: StateReader;
  /** The block that index has applied. */
  height(): number;
  /** Brings the index up to the chain's finalized head; stops when `signal` aborts. */
  sync(signal: AbortSignal): Promise<unknown>;
  /** Reads a stored object through the auditor's own storage client (checked against the chain's record). */
  fetch(fid: string, options: { signal: AbortSignal }): Promise<Uint8Array>;
}

export interface AuditorExplorerOptions {
  /** Serve only this task (`--task`). */
  readonly task?: string;
  /** How long an audit is re-used (default 30 s; `?fresh=1` runs a new one). */
  readonly cacheMs?: number;
  /** Deadline for the index to catch up with the chain before answering (default 30 s). */
  readonly syncDeadlineMs?: number;
  /** Deadline per object fetch (default 60 s: a slower one is reported unavailable, as `audit verify` does). */
  readonly objectDeadlineMs?: number;
  /** Deadline for one whole audit (default 10 min). */
  readonly auditDeadlineMs?: number;
  /** The ailink version the page shows. */
  readonly version: string;
  /**
   * The host names the server answers to (the Host header, without its port); others are refused 421
   * HOST_NOT_ALLOWED, so a page on another site cannot drive this auditor's fetches through DNS rebinding.
   * Empty or absent: any.
   */
  readonly hosts?: readonly string[];
  /** The clock `verifiedAt` and the cache read (default Date.now). */
  readonly now?: () => number;
}

/** What `/v1/tasks/:id/audit` answers: `AuditorAuditSchema`, with the report exactly as the audit produced it. */
export type AuditorAnswer = Omit<AuditorAudit, 'report'> & { readonly report: AuditReport };

export interface AuditorExplorer {
  /** The base URL it listens on, e.g. `http://127.0.0.1:8780/`. */
  readonly url: string;
  close(): Promise<void>;
}

interface CachedAudit {
  /** The audit being run, or the last one that ran. */
  readonly running: Promise<{ report: AuditReport; verifiedAt: number }>;
  done: { report: AuditReport; verifiedAt: number } | null;
}

const JSON_HEADERS = {
  'content-type': 'application/json; charset=utf-8',
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-store',
};

/** Starts the server on `host:port` (port 0: any free one). */
export async function serveAuditorExplorer(
  view: AuditorView,
  listen: { host: string; port: number },
  options: AuditorExplorerOptions,
): Promise<AuditorExplorer> {
  const now = options.now ?? Date.now;
  const cacheMs = options.cacheMs ?? 30_000;
  const objectDeadlineMs = options.objectDeadlineMs ?? 60_000;
  const page = explorerPage('auditor');
  const audits = new Map<string, CachedAudit>();
  /** Specs that hash to the chain's digest, by that digest (a spec is immutable under its digest). */
  const specs = new Map<string, Record<string, unknown>>();
  const closing = new AbortController();

  const sync = async () => {
    const signal = AbortSignal.any([AbortSignal.timeout(options.syncDeadlineMs ?? 30_000), closing.signal]);
    try {
      await view.sync(signal);
    } catch (err) {
      if (signal.aborted && !closing.signal.aborted)
        throw new AilinkError(
          'TIMEOUT',
          `the auditor's index did not catch up with the chain within ${options.syncDeadlineMs ?? 30_000} ms`,
          { cause: err },
        );
      throw err;
    }
  };

  /** The task's chain record, refused unless the chain has it and this server shows it. */
  const onChain = (id: string): TaskInfo => {
    const info = options.task === undefined || options.task === id ? taskOf(view.state, id) : undefined;
    if (info === undefined)
      throw new AilinkError(
        'TASK_NOT_FOUND',
        options.task !== undefined && options.task !== id
          ? `this explorer shows only task ${options.task} (--task), not ${id}`
          : `the chain records no task ${id} (as of block ${view.height()} of the auditor's index)`,
      );
    return info;
  };

  const entryOf = (id: string, info: TaskInfo): AuditorTask => {
    const spec = specs.get(info.spec);
    const name = spec !== undefined && typeof spec.name === 'string' ? spec.name : null;
    const planned = spec !== undefined && typeof spec.rounds === 'number' ? spec.rounds : null;
    return AuditorTaskSchema.parse({
      id,
      name,
      coordinator: info.coordinator,
      specDigest: info.spec,
      createdAt: info.createdAt,
      roundsAnchored: info.rounds,
      roundsPlanned: planned,
      status:
        (info.stoppedAt ?? null) !== null
          ? 'stopped'
          : planned !== null && info.rounds >= planned
            ? 'finished'
            : 'running',
    });
  };

  /**
   * The task's name from its spec: the first anchored manifest names the spec object, whose bytes must hash to the
   * digest the chain recorded (else no name is shown). Learned once per spec digest; null when it cannot be read.
   */
  const specOf = async (id: string, info: TaskInfo): Promise<Record<string, unknown> | null> => {
    const first = roundsOf(view.state, id)[0];
    if (first === undefined) return null;
    try {
      const signal = AbortSignal.any([AbortSignal.timeout(objectDeadlineMs), closing.signal]);
      const manifest = parseManifest(await view.fetch(first.manifest, { signal }));
      const bytes = await view.fetch(manifest.specFid, { signal });
      const spec = parseTaskSpec(JSON.parse(new TextDecoder().decode(bytes)));
      if (taskDigest(spec) !== info.spec) return null;
      specs.set(info.spec, spec as unknown as Record<string, unknown>);
      return spec as unknown as Record<string, unknown>;
    } catch {
      return null;
    }
  };

  const listTasks = async (): Promise<AuditorTask[]> => {
    await sync();
    const tasks = tasksOf(view.state).filter((t) => options.task === undefined || t.id === options.task);
    const missing = tasks.filter((t) => !specs.has(t.spec));
    // Names not learned yet, four reads at a time, each under the object deadline.
    const queue = [...missing];
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        for (let t = queue.shift(); t !== undefined; t = queue.shift()) await specOf(t.id, t);
      }),
    );
    return tasks.map((t) => entryOf(t.id, t));
  };

  const audit = async (id: string, fresh: boolean): Promise<AuditorAnswer> => {
    const known = audits.get(id);
    if (known !== undefined) {
      const done = known.done;
      const reuse = !fresh && done !== null && now() - done.verifiedAt < cacheMs;
      // An audit under way is shared, fresh or not: it started after the request that asked for it.
      if (reuse || done === null) return answer(id, await known.running, reuse);
    }
    await sync();
    onChain(id);
    const entry: CachedAudit = {
      running: auditTask({ state: view.state, atBlock: view.height(), fetch: view.fetch }, id, {
        deadlineMs: objectDeadlineMs,
        signal: AbortSignal.any([AbortSignal.timeout(options.auditDeadlineMs ?? 600_000), closing.signal]),
      }).then((report) => {
        const result = { report, verifiedAt: now() };
        entry.done = result;
        // The audit read the spec and checked it against the chain's digest (else `spec` is null).
        if (report.spec !== null && report.chain !== null) specs.set(report.chain.specDigest, report.spec);
        return result;
      }),
      done: null,
    };
    audits.set(id, entry);
    // A failed audit (deadline, closing) is not kept: the next request runs one again.
    entry.running.catch(() => audits.get(id) === entry && audits.delete(id));
    return answer(id, await entry.running, false);
  };

  const answer = (
    id: string,
    result: { report: AuditReport; verifiedAt: number },
    cached: boolean,
  ): AuditorAnswer => {
    const info = onChain(id);
    // The report as the audit produced it (AuditorAuditSchema describes it; a parse would drop `eval` and the stop).
    return {
      report: result.report,
      task: entryOf(id, info),
      verifiedAt: result.verifiedAt,
      auditor: view.account,
      cached,
    };
  };

  const route = async (request: IncomingMessage): Promise<{ status: number; body: unknown } | 'page'> => {
    const method = request.method ?? 'GET';
    if (method !== 'GET' && method !== 'HEAD')
      throw new AilinkError('NOT_FOUND', `${method} ${request.url}: this explorer answers GET and HEAD only`);
    const hosts = options.hosts ?? [];
    if (hosts.length > 0) {
      const host = (request.headers.host ?? '')
        .replace(/:\d+$/, '')
        .replace(/^\[|\]$/g, '')
        .toLowerCase();
      if (!hosts.includes(host))
        throw new AilinkError(
          'HOST_NOT_ALLOWED',
          `Host ${JSON.stringify(request.headers.host ?? '')}: this explorer answers to ${hosts.join(', ')}`,
        );
    }
    const url = new URL(request.url ?? '/', 'http://explorer.invalid');
    const path = url.pathname;
    if (path === '/' || path === '/explorer' || path === '/explorer/') return 'page';
    if (path === '/v1/info') {
      const info: AuditorInfo = {
        role: 'auditor',
        account: view.account,
        atBlock: view.height(),
        task: options.task ?? null,
        version: options.version,
      };
      return { status: 200, body: info };
    }
    if (path === '/v1/tasks') return { status: 200, body: await listTasks() };
    const m = /^\/v1\/tasks\/([^/]*)\/audit$/.exec(path);
    if (m === null) throw new AilinkError('NOT_FOUND', `no such page or route: ${path}`);
    let id: string;
    try {
      id = decodeURIComponent(m[1]!);
    } catch {
      throw new AilinkError('INVALID_INPUT', `task id: not a valid URL component: ${JSON.stringify(m[1])}`);
    }
    if (!TASK_ID.test(id))
      throw new AilinkError(
        'INVALID_INPUT',
        `task id: expected 1–64 of A–Z a–z 0–9 . _ -, got ${JSON.stringify(id.slice(0, 80))}`,
      );
    for (const [key, value] of url.searchParams)
      if (key !== 'fresh' || value !== '1')
        throw new AilinkError(
          'INVALID_INPUT',
          `query: expected nothing or fresh=1, got ${JSON.stringify(`${key}=${value}`)}`,
        );
    return { status: 200, body: await audit(id, url.searchParams.has('fresh')) };
  };

  const handle = async (request: IncomingMessage, response: ServerResponse) => {
    const head = request.method === 'HEAD';
    try {
      const result = await route(request);
      if (result === 'page') {
        response.writeHead(200, { ...page.headers, 'content-length': Buffer.byteLength(page.html) });
        response.end(head ? undefined : page.html);
        return;
      }
      send(response, result.status, result.body, head);
    } catch (err) {
      const error = hasCode(err)
        ? err
        : new AilinkError('INTERNAL', `the explorer failed: ${(err as Error)?.message ?? String(err)}`);
      send(response, httpStatusOf(error.code), { error: { code: error.code, message: error.message } }, head);
    }
  };

  const server = createServer((request, response) => void handle(request, response));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}/`,
    async close() {
      closing.abort();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function send(response: ServerResponse, status: number, body: unknown, head: boolean): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { ...JSON_HEADERS, 'content-length': Buffer.byteLength(text) });
  response.end(head ? undefined : text);
}
