/**
 * Edge: the coordinator's HTTP API (src/coordinator/http.ts) on 127.0.0.1 in process, over the test harness's
 * coordinator (test/coordinator/harness.ts: a real SQLite store, in-memory storage and chain twins). A task is created
 * by the owner's signed request and one member has joined; then task creations and joins arrive unsigned, wrongly
 * signed, replayed, expired, malformed, oversized, for tasks never created, or again. Every other route the server
 * registers gets cases too (each case names its route; test/fuzz/coordinator-routes.test.ts fails when a registered
 * route has none): the task's read routes for a task never created, with an id over the route's bound or of noise,
 * the audit with a round that is no number, and as noise (they must answer and change nothing) the read routes with
 * random query strings, as GET and HEAD; methods no route takes on known paths. A refusal is an HTTP error whose
 * `error.code` is registered (ERROR_CODES); a refused HEAD (no body) is judged by the same GET, which must answer the
 * same status; a 5xx is a crash; the digest covers every table of the store's SQLite file but the nonces. Left out:
 * the audit of the real task (this coordinator has no auditor, so it answers 503 AUDIT_UNAVAILABLE, the documented
 * answer, not a refusal of the input).
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { admissionMessage } from '../../src/chain/index.ts';
import { BODY_LIMIT, buildApp } from '../../src/coordinator/http.ts';
import { type Account, accountsReady } from '../../src/shared/account.ts';
import { toHex } from '../../src/shared/bytes.ts';
import { type Clock, systemClock, systemRandom } from '../../src/shared/clock.ts';
import { isErrorCode } from '../../src/shared/errors.ts';
import { signRequest } from '../../src/storage/protocol/request-auth.ts';
import { joinMessage } from '../../src/task/index.ts';
import {
  baseTask,
  makeAccount,
  makeWorld,
  TEST_GENESIS,
  type World,
} from '../../test/coordinator/harness.ts';
import { type Edge, type FuzzCase, WireRefusal } from './harness.ts';
import { fuzzCase, getPath, type Json, otherType, pathsOf, withPath } from './mutate.ts';

export interface HttpInput {
  readonly method: string;
  readonly path: string;
  /**
   * The route the request is meant for, as the server registers it (`GET /v1/tasks/:id`); none for a path no route
   * takes. test/fuzz/coordinator-routes.test.ts checks that every registered route has cases.
   */
  readonly route?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string;
}

const PEER = '12D3KooWFuzzCoordinator';
/** The codes the HTTP layer answers before any AI-LINK code runs (`HttpErrorCode` in src/coordinator/http.ts). */
const HTTP_LAYER_CODES: ReadonlySet<string> = new Set([
  'BODY_TOO_LARGE',
  'UNSUPPORTED_MEDIA_TYPE',
  'REQUEST_REFUSED',
  'HOST_NOT_ALLOWED',
  'RATE_LIMITED',
  'AUDIT_UNAVAILABLE',
]);

function taskHeaders(
  body: string,
  o: { by: Account; audience?: string; clock?: Clock; ttlMs?: number },
): Record<string, string> {
  const bytes = new TextEncoder().encode(body);
  const audience = o.audience ?? PEER;
  const auth = signRequest(
    o.by,
    {
      op: 'task.create',
      fragment: createHash('sha256').update(bytes).digest('hex'),
      size: bytes.length,
      audience,
    },
    { clock: o.clock ?? systemClock, random: systemRandom },
    o.ttlMs ?? 60_000,
  );
  return {
    'content-type': 'application/json',
    'x-ailink-account': auth.account,
    'x-ailink-audience': audience,
    'x-ailink-nonce': auth.nonce,
    'x-ailink-expires-at': String(auth.expiresAt),
    'x-ailink-signature': auth.signature,
  };
}

export function coordinatorEdge(): Edge<HttpInput> {
  let dir = '';
  let world: World | undefined;
  let app: FastifyInstance | undefined;
  let base = '';
  let task = '';
  let created: HttpInput | undefined;
  let joined: HttpInput | undefined;
  let cases: fc.Arbitrary<FuzzCase<HttpInput>> | undefined;

  const send = async (input: HttpInput) => {
    const r = await fetch(base + input.path, {
      method: input.method,
      headers: input.headers ?? {},
      ...(input.body === undefined ? {} : { body: input.body }),
    });
    return { status: r.status, text: await r.text() };
  };

  return {
    name: 'http:coordinator',
    cases: () => cases!,
    async setup() {
      await accountsReady();
      dir = mkdtempSync(join(tmpdir(), 'ailink-fuzz-coordinator-'));
      world = makeWorld(dir);
      const owner = makeAccount('coordinator');
      const members = ['a', 'b', 'c'].map(makeAccount) as [Account, Account, Account];
      const outsider = makeAccount('outsider');
      app = buildApp({
        coordinator: world.coordinator,
        info: () => ({
          peerId: PEER,
          addrs: ['/ip4/127.0.0.1/tcp/4001'],
          account: owner.address,
          version: '0',
        }),
        nonces: world.store.requestNonces,
        log: () => {},
      });
      base = await app.listen({ host: '127.0.0.1', port: 0 });
      const spec = baseTask(members.map((m) => m.address)) as unknown as Json;
      const specText = JSON.stringify(spec);
      created = {
        method: 'POST',
        path: '/v1/tasks',
        headers: taskHeaders(specText, { by: owner }),
        body: specText,
      };
      const r = await send(created);
      if (r.status !== 201)
        throw new Error(`http:coordinator: the task could not be created: ${r.status} ${r.text}`);
      task = (JSON.parse(r.text) as { id: string }).id;
      const joinBody = (
        account: Account,
        o: {
          signer?: Account;
          admitSigner?: Account;
          signedAt?: number;
          task?: string;
          identity?: string;
        } = {},
      ) => {
        const identityKey = o.identity ?? createHash('sha256').update(`id/${account.address}`).digest('hex');
        const peer = { peerId: '12D3KooWPeer', addrs: ['/ip4/10.0.0.2/tcp/4002'] };
        const signedAt = o.signedAt ?? Date.now();
        const claim = {
          task: o.task ?? task,
          account: account.address,
          identityKey,
          readerKey: account.readerKey,
          signedAt,
          peerId: peer.peerId,
        };
        return {
          account: account.address,
          identityKey,
          signature: toHex(
            (o.admitSigner ?? account).sign(admissionMessage(TEST_GENESIS, o.task ?? task, identityKey)),
          ),
          readerKey: account.readerKey,
          signedAt,
          joinSignature: toHex((o.signer ?? account).sign(joinMessage(claim))),
          peer,
        };
      };
      const joinOf = (body: unknown, id = task): HttpInput => ({
        method: 'POST',
        path: `/v1/tasks/${id}/join`,
        route: 'POST /v1/tasks/:id/join',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      joined = joinOf(joinBody(members[0]));
      const j = await send(joined);
      if (j.status >= 300) throw new Error(`http:coordinator: the first join failed: ${j.status} ${j.text}`);

      const post = (
        label: string,
        variant: FuzzCase<HttpInput>['variant'],
        body: string,
        headers: Record<string, string>,
        mustRefuse = true,
      ) =>
        fuzzCase<HttpInput>(
          variant,
          `create: ${label}`,
          { method: 'POST', path: '/v1/tasks', route: 'POST /v1/tasks', headers, body },
          mustRefuse,
        );
      const fresh = () => JSON.stringify({ ...(spec as object), name: 'fuzz-second' });
      const tampered = (h: Record<string, string>) => ({
        ...h,
        'x-ailink-signature': h['x-ailink-signature']!.replace(
          /^(0x)?(.)/,
          (_m, p: string | undefined, c: string) => `${p ?? ''}${c === '0' ? '1' : '0'}`,
        ),
      });
      const past: Clock = { now: () => Date.now() - 3_600_000 };
      const targeted: fc.Arbitrary<FuzzCase<HttpInput>> = fc.oneof(
        fc.constant(post('unsigned', 'unsigned', fresh(), { 'content-type': 'application/json' })),
        fc.constant(
          post(
            'signed by a member, not the owner',
            'wrong-caller',
            fresh(),
            taskHeaders(fresh(), { by: members[1] }),
          ),
        ),
        fc.constant(
          post('signed by an outsider', 'wrong-caller', fresh(), taskHeaders(fresh(), { by: outsider })),
        ),
        fc.constant(
          post('signature changed', 'wrongly-signed', fresh(), tampered(taskHeaders(fresh(), { by: owner }))),
        ),
        fc.constant(
          post(
            'signed for another coordinator',
            'wrongly-signed',
            fresh(),
            taskHeaders(fresh(), { by: owner, audience: '12D3KooWOther' }),
          ),
        ),
        fc.constant(
          post(
            'signed for another body',
            'wrongly-signed',
            fresh(),
            taskHeaders(JSON.stringify(spec), { by: owner }),
          ),
        ),
        fc.constant(
          post(
            'the first creation again',
            'replayed',
            created.body!,
            created.headers as Record<string, string>,
          ),
        ),
        fc.constant(post('expired', 'replayed', fresh(), taskHeaders(fresh(), { by: owner, clock: past }))),
        fc.constant(
          post(
            'expiring in a day',
            'malformed',
            fresh(),
            taskHeaders(fresh(), { by: owner, ttlMs: 86_400_000 }),
          ),
        ),
        fc.integer({ min: BODY_LIMIT + 1, max: BODY_LIMIT * 2 }).map((n) => {
          const big = JSON.stringify({ ...(spec as object), name: 'x'.repeat(n) });
          return post(`a ${n}-byte body`, 'oversized', big, taskHeaders(big, { by: owner }));
        }),
        fc.integer({ min: 1, max: specText.length - 1 }).map((k) => {
          const cut = specText.slice(0, k);
          return post(`body cut at ${k}`, 'truncated', cut, taskHeaders(cut, { by: owner }));
        }),
        // A task spec with one field of another type (signed correctly: the body is what is wrong).
        fc
          .constantFrom(...pathsOf(spec).filter((p) => p[0] !== 'name' && p[0] !== 'dataset'))
          .chain((p) => otherType(getPath(spec, p)).map((v) => [p, v] as const))
          .map(([p, v]) => {
            const text = JSON.stringify(withPath(spec, p, v));
            return post(
              `${p.join('.')} = ${JSON.stringify(v).slice(0, 30)}`,
              'malformed',
              text,
              taskHeaders(text, { by: owner }),
              // null may be what a nullable field takes (dp: null): noise then.
              v !== null,
            );
          }),
        fc.constant(
          fuzzCase<HttpInput>(
            'unsigned',
            'join: no signatures',
            joinOf({ ...joinBody(members[1]), signature: undefined, joinSignature: undefined }),
          ),
        ),
        fc.constant(
          fuzzCase<HttpInput>(
            'wrongly-signed',
            'join: join signature by another member',
            joinOf(joinBody(members[1], { signer: members[2] })),
          ),
        ),
        fc.constant(
          fuzzCase<HttpInput>(
            'wrongly-signed',
            'join: admission signed by another member',
            joinOf(joinBody(members[1], { admitSigner: members[2] })),
          ),
        ),
        fc.constant(
          fuzzCase<HttpInput>(
            'wrongly-signed',
            'join: signed for another task',
            joinOf(joinBody(members[1], { task: 'other-task' })),
          ),
        ),
        fc.constant(fuzzCase<HttpInput>('replayed', 'join: the first join again', joined)),
        fc.constant(
          fuzzCase<HttpInput>(
            'replayed',
            'join: signed an hour ago',
            joinOf(joinBody(members[1], { signedAt: Date.now() - 3_600_000 })),
          ),
        ),
        fc.constant(fuzzCase<HttpInput>('wrong-caller', 'join: an outsider', joinOf(joinBody(outsider)))),
        fc.constant(
          fuzzCase<HttpInput>(
            'out-of-order',
            'join: a task never created',
            joinOf(joinBody(members[1], { task: 'f'.repeat(64) }), 'f'.repeat(64)),
          ),
        ),
        fc.constant(
          fuzzCase<HttpInput>(
            'duplicated',
            'join: the first member again with another key',
            joinOf(joinBody(members[0], { identity: 'ab'.repeat(32), signedAt: Date.now() - 1000 })),
          ),
        ),
        fc.string({ maxLength: 80 }).map((s) =>
          fuzzCase<HttpInput>('malformed', 'join: noise body', {
            method: 'POST',
            path: `/v1/tasks/${task}/join`,
            route: 'POST /v1/tasks/:id/join',
            headers: { 'content-type': 'application/json' },
            body: s,
          }),
        ),
        fc.constantFrom('/v1/tasks/%%', '/v1/tasks/%zz/join', '/%').map((path) =>
          fuzzCase<HttpInput>('malformed', `bad URL ${path}`, {
            method: 'POST',
            path,
            headers: { 'content-type': 'application/json' },
            body: '{}',
          }),
        ),
        fc.constant(
          post('not JSON content', 'malformed', 'name=x', {
            ...taskHeaders('name=x', { by: owner }),
            'content-type': 'application/x-www-form-urlencoded',
          }),
        ),
      );
      // The read routes. Those of one task: an id never created, one longer than the route allows, noise for an id,
      // the audit's round that is no number; with the real id they answer (noise: they must not change the store).
      // The routes without parameters take no input to refuse: random query strings, as GET and HEAD, must not fail
      // or change anything. (The audit of a real task is left out: this coordinator has no auditor, and its 503
      // AUDIT_UNAVAILABLE is the documented answer, not a refusal of the input.)
      const taskRoutes = ['', '/rounds', '/status', '/participants', '/metrics', '/audit'];
      const get = (
        variant: FuzzCase<HttpInput>['variant'],
        label: string,
        route: string,
        path: string,
        mustRefuse = true,
        method = 'GET',
      ) => fuzzCase<HttpInput>(variant, label, { method, path, route: `${method} ${route}` }, mustRefuse);
      const query = fc
        .dictionary(fc.stringMatching(/^[a-z]{1,6}$/), fc.string({ maxLength: 12 }), { maxKeys: 3 })
        .map((q) => new URLSearchParams(q).toString());
      const reads: fc.Arbitrary<FuzzCase<HttpInput>> = fc.oneof(
        fc
          .tuple(fc.constantFrom(...taskRoutes), fc.constantFrom('GET', 'HEAD'))
          .map(([r, m]) =>
            get(
              'out-of-order',
              `${m} ${r || '/'} of a task never created`,
              `/v1/tasks/:id${r}`,
              `/v1/tasks/${'f'.repeat(64)}${r}`,
              true,
              m,
            ),
          ),
        fc
          .tuple(fc.constantFrom(...taskRoutes), fc.integer({ min: 101, max: 400 }))
          .map(([r, n]) =>
            get(
              'oversized',
              `GET ${r || '/'} with a ${n}-character id`,
              `/v1/tasks/:id${r}`,
              `/v1/tasks/${'x'.repeat(n)}${r}`,
            ),
          ),
        fc
          .tuple(fc.constantFrom(...taskRoutes), fc.string({ minLength: 1, maxLength: 40 }))
          .filter(([, id]) => id !== task && id.trim() !== '' && id !== '.' && id !== '..')
          .map(([r, id]) =>
            get(
              'malformed',
              `GET ${r || '/'} for id ${JSON.stringify(id)}`,
              `/v1/tasks/:id${r}`,
              `/v1/tasks/${encodeURIComponent(id)}${r}`,
            ),
          ),
        fc
          .oneof(
            fc.string({ maxLength: 12 }).filter((s) => !/^\d{1,9}$/.test(s)),
            fc.constant('-1'),
            fc.constant('1e3'),
          )
          .map((round) =>
            get(
              'malformed',
              `GET /audit?round=${JSON.stringify(round)}`,
              '/v1/tasks/:id/audit',
              `/v1/tasks/${task}/audit?${new URLSearchParams({ round })}`,
            ),
          ),
        fc
          .tuple(
            fc.constantFrom(...taskRoutes.filter((r) => r !== '/audit')),
            fc.constantFrom('GET', 'HEAD'),
            query,
          )
          .map(([r, m, q]) =>
            get(
              'malformed',
              `${m} ${r || '/'} of the task, query ${q}`,
              `/v1/tasks/:id${r}`,
              `/v1/tasks/${task}${r}?${q}`,
              false,
              m,
            ),
          ),
        fc
          .tuple(
            fc.constantFrom('/v1/info', '/v1/tasks', '/openapi.json', '/explorer', '/explorer/'),
            fc.constantFrom('GET', 'HEAD'),
            query,
          )
          .map(([r, m, q]) => get('malformed', `${m} ${r}?${q}`, r, `${r}?${q}`, false, m)),
        fc
          .tuple(
            fc.constantFrom('PUT', 'DELETE', 'PATCH'),
            fc.constantFrom('/v1/info', '/v1/tasks', `/v1/tasks/${task}`, `/v1/tasks/${task}/join`),
          )
          .map(([m, path]) =>
            fuzzCase<HttpInput>('wrong-caller', `${m} ${path}: no such route`, {
              method: m,
              path,
              headers: { 'content-type': 'application/json' },
              body: '{}',
            }),
          ),
      );
      cases = fc.oneof({ arbitrary: targeted, weight: 3 }, { arbitrary: reads, weight: 2 });
    },
    async apply(input) {
      const r = await send(input);
      // A HEAD answer carries no body, so no code: a refused HEAD is judged by the same request as GET, which must
      // be refused with the same status (fastify derives each HEAD route from its GET).
      if (input.method === 'HEAD' && r.status >= 400 && r.status < 500) {
        const g = await send({ ...input, method: 'GET' });
        if (g.status !== r.status)
          throw new Error(`HEAD ${input.path} answered ${r.status}, the same GET ${g.status}`);
        Object.assign(r, g);
      }
      if (r.status < 400) return;
      let code: unknown;
      try {
        code = (JSON.parse(r.text) as { error?: { code?: unknown } }).error?.code;
      } catch {
        code = undefined;
      }
      if (r.status >= 500) throw new Error(`${r.status}: ${r.text.slice(0, 200)}`);
      throw new WireRefusal(
        typeof code === 'string' ? code : `HTTP ${r.status}`,
        isErrorCode(code) || HTTP_LAYER_CODES.has(code as string),
        r.text.slice(0, 200),
      );
    },
    async digest() {
      const db = new Database(world!.storePath, { readonly: true, fileMustExist: true });
      try {
        const h = createHash('sha256');
        const tables = db
          .prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
          .all();
        // The replay guard's used nonces are left out: a signed request is single-use even when its body is then
        // refused (the signature is checked first), so a refusal may record its nonce — that is no stored state.
        for (const { name } of tables) {
          if (name === 'nonces') continue;
          h.update(`${name}\n`);
          for (const row of db.prepare(`SELECT * FROM "${name}" ORDER BY 1`).all())
            h.update(JSON.stringify(row, (_k, v) => (Buffer.isBuffer(v) ? v.toString('hex') : v)));
        }
        return h.digest('hex');
      } finally {
        db.close();
      }
    },
    async teardown() {
      await app?.close();
      await world?.coordinator.stop();
      world?.store.close();
      if (dir !== '') rmSync(dir, { recursive: true, force: true });
    },
  };
}
