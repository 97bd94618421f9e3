import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { fedAvg } from '../../src/aggregation/index.ts';
import { admissionMessage } from '../../src/chain/index.ts';
import type { Coordinator } from '../../src/coordinator/coordinator.ts';
import { BODY_LIMIT, buildApp } from '../../src/coordinator/http.ts';
import type { RoundRow } from '../../src/coordinator/store.ts';
import { type Account, accountsReady } from '../../src/shared/account.ts';
import { toHex } from '../../src/shared/bytes.ts';
import { type Clock, systemClock, systemRandom } from '../../src/shared/clock.ts';
import { signRequest } from '../../src/storage/protocol/request-auth.ts';
import { JOIN_WINDOW_MS, joinMessage, type TaskSpec, taskDigest } from '../../src/task/index.ts';
import { baseTask, makeAccount, makeWorld, TEST_GENESIS, type World } from './harness.ts';

await accountsReady();

// The harness's coordinator runs as makeAccount('coordinator'): the one account that may create tasks.
const owner = makeAccount('coordinator');
const INFO = {
  peerId: '12D3KooWExample',
  addrs: ['/ip4/127.0.0.1/tcp/4001'],
  account: owner.address,
  version: '0.0.0-test',
};

let world: World;
let app: ReturnType<typeof buildApp>;
let logs: string[];
const members = ['a', 'b', 'c'].map(makeAccount);
const outsider = makeAccount('outsider');

const appFor = (w: World) =>
  buildApp({
    coordinator: w.coordinator,
    info: () => INFO,
    nonces: w.store.requestNonces,
    log: (l) => logs.push(l),
  });

beforeEach(() => {
  world = makeWorld();
  logs = [];
  app = appFor(world);
});
afterEach(async () => {
  await app.close();
  await world.coordinator.stop();
  world.store.close();
});

type ErrorReply = { error: { code: string; message: string } };

/**
 * The x-ailink-* headers that sign `body` for POST /v1/tasks, built the way any client would from the documented
 * scheme (the fragment-request signature of src/storage/protocol/request-auth.ts, op `task.create`, the body's SHA-256 and
 * byte length in place of a fragment's) rather than with the coordinator's own helper.
 */
function taskSignature(
  body: string,
  { by = owner, audience = INFO.peerId, clock = systemClock as Clock, ttlMs = 60_000 } = {},
): Record<string, string> {
  const bytes = new TextEncoder().encode(body);
  const fields = {
    op: 'task.create',
    fragment: createHash('sha256').update(bytes).digest('hex'),
    size: bytes.length,
    audience,
  };
  const auth = signRequest(by, fields, { clock, random: systemRandom }, ttlMs);
  return {
    'x-ailink-account': auth.account,
    'x-ailink-audience': audience,
    'x-ailink-nonce': auth.nonce,
    'x-ailink-expires-at': String(auth.expiresAt),
    'x-ailink-signature': auth.signature,
  };
}

/** POST /v1/tasks with exactly `body` and these headers (signed by the owner unless `headers` is given). */
async function postTask(body: unknown, headers?: Record<string, string>) {
  const text = JSON.stringify(body);
  return app.inject({
    method: 'POST',
    url: '/v1/tasks',
    headers: { 'content-type': 'application/json', ...(headers ?? taskSignature(text)) },
    payload: text,
  });
}

async function createTask(overrides: Record<string, unknown> = {}) {
  const res = await postTask(
    baseTask(
      members.map((m) => m.address),
      overrides,
    ),
  );
  expect(res.statusCode, res.body).toBe(201);
  return res.json<{ id: string; digest: string; spec: TaskSpec }>();
}

const identityOf = (label: string) => createHash('sha256').update(`id/${label}`).digest('hex');

/** A join body signed the way participant/runtime.ts signs it. */
function joinBody(
  task: string,
  account: Account,
  { identityKey = identityOf(account.address), signedAt = Date.now(), readerKey = account.readerKey } = {},
) {
  const peer = { peerId: '12D3KooWPeer', addrs: ['/ip4/10.0.0.2/tcp/4002'] };
  const claim = { task, account: account.address, identityKey, readerKey, signedAt, peerId: peer.peerId };
  return {
    account: account.address,
    identityKey,
    signature: toHex(account.sign(admissionMessage(TEST_GENESIS, task, identityKey))),
    readerKey,
    signedAt,
    joinSignature: toHex(account.sign(joinMessage(claim))),
    peer,
  };
}

const get = async <T>(url: string) => {
  const res = await app.inject({ method: 'GET', url });
  return { status: res.statusCode, body: res.json<T>() };
};

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

/** The parts of the OpenAPI 3 structure this API relies on (openapi, info, paths with operations and responses). */
const OpenApiShape = z.object({
  openapi: z.string(),
  info: z.object({ title: z.string().min(1), version: z.string().min(1) }),
  paths: z.record(z.string().regex(/^\//), z.record(z.string(), z.unknown())),
  components: z.object({ schemas: z.record(z.string(), z.record(z.string(), z.unknown())) }).optional(),
});
const Operation = z.object({
  parameters: z
    .array(
      z.object({
        name: z.string(),
        in: z.enum(['path', 'query', 'header', 'cookie']),
        required: z.boolean(),
      }),
    )
    .optional(),
  requestBody: z
    .object({ content: z.record(z.string(), z.object({ schema: z.record(z.string(), z.unknown()) })) })
    .optional(),
  responses: z.record(
    z.string().regex(/^([1-5](\d\d|XX)|default)$/),
    z.object({ description: z.string().min(1) }).loose(),
  ),
});

describe('tasks', () => {
  it('creates a task (201), reads it back and lists it; the digest is taskDigest(spec)', async () => {
    const created = await createTask();
    expect(created.digest).toBe(taskDigest(created.spec));
    expect(created.spec.admitted).toEqual(members.map((m) => m.address));
    expect(created.spec.coordinator.account).toBe(INFO.account);
    expect(world.ledger.tasks.get(created.id)?.digest).toBe(created.digest);

    const one = await get<Record<string, unknown>>(`/v1/tasks/${created.id}`);
    expect(one.status).toBe(200);
    expect(one.body).toEqual({
      id: created.id,
      digest: created.digest,
      spec: created.spec,
      status: 'running',
      createdAt: expect.any(Number),
      // The loop has not run, so round 0's model is not prepared yet.
      initialModel: null,
    });

    const list = await get(`/v1/tasks`);
    expect(list.body).toEqual([
      {
        id: created.id,
        name: 'unit',
        status: 'running',
        roundsDone: 0,
        roundsPlanned: 3,
        createdAt: one.body.createdAt,
      },
    ]);
    for (const sub of ['rounds', 'participants', 'metrics'])
      expect(await get(`/v1/tasks/${created.id}/${sub}`)).toEqual({ status: 200, body: [] });
    expect(await get(`/v1/tasks/${created.id}/status`)).toEqual({ status: 200, body: null });
  });

  it('reports finished rounds, metrics and the open attempt', async () => {
    const { id } = await createTask();
    const round = (n: number, loss: number): RoundRow => ({
      task: id,
      round: n,
      attempt: 0,
      modelFid: `m${n}`,
      modelHash: 'ab'.repeat(32),
      manifestFid: `f${n}`,
      manifestDigest: 'cd'.repeat(32),
      accuracy: 0.5 + n / 10,
      loss,
      survivors: 3,
      cohort: 3,
      seconds: 1.5,
      bytes: 1024,
      finishedAt: 1000 + n,
    });
    const state = fedAvg().init(new Float32Array(4));
    world.store.finishRound(round(0, 0.7), state);
    // A diverged evaluation: NaN is stored as null and reported as null, not as a 500.
    world.store.finishRound(round(1, Number.NaN), state);
    world.store.addAttempt({
      task: id,
      round: 2,
      attempt: 1,
      phase: 'shares',
      deadline: 5000,
      setup: {
        cohort: [],
        graphSeed: '00',
        k: 2,
        t: 2,
        dimension: 4,
        startModel: { fid: 'm1', hash: 'ab'.repeat(32) },
      },
      startedAt: 4000,
      reason: null,
    });

    const rounds = await get<RoundRow[]>(`/v1/tasks/${id}/rounds`);
    expect(rounds.body).toEqual([round(0, 0.7), { ...round(1, 0), loss: null }]);
    expect((await get(`/v1/tasks/${id}/metrics`)).body).toEqual([
      { round: 0, accuracy: 0.5, loss: 0.7, survivors: 3, seconds: 1.5 },
      { round: 1, accuracy: 0.6, loss: null, survivors: 3, seconds: 1.5 },
    ]);
    expect((await get(`/v1/tasks/${id}/status`)).body).toEqual({
      round: 2,
      attempt: 1,
      phase: 'shares',
      expecting: [],
      deadline: 5000,
    });
    expect((await get<{ roundsDone: number }[]>('/v1/tasks')).body[0]?.roundsDone).toBe(2);
  });

  it('refuses a bad spec with 400 naming the field, and records nothing', async () => {
    const before = await createTask();
    const bad = await postTask(
      baseTask(
        members.map((m) => m.address),
        { name: 'other', cohort: { size: 3, min: 4 } },
      ),
    );
    expect(bad.statusCode).toBe(400);
    const { error } = bad.json<ErrorReply>();
    expect(error.code).toBe('INVALID_INPUT');
    expect(error.message).toMatch(/cohort/);

    const notObject = await postTask([1, 2]);
    expect(notObject.statusCode).toBe(400);
    expect(notObject.json<ErrorReply>().error.code).toBe('INVALID_INPUT');
    const noModel = await postTask({ name: 'x' });
    expect(noModel.json<ErrorReply>().error).toMatchObject({ code: 'INVALID_INPUT', message: /model/ });
    // The same spec twice (signed afresh) is one task.
    const again = await postTask(baseTask(members.map((m) => m.address)));
    expect(again.statusCode).toBe(400);

    expect((await get<{ id: string }[]>('/v1/tasks')).body.map((t) => t.id)).toEqual([before.id]);
    expect([...world.ledger.tasks.keys()]).toEqual([before.id]);
  });

  it('unknown task → 404 TASK_NOT_FOUND on every task route', async () => {
    for (const sub of ['', '/rounds', '/status', '/participants', '/metrics']) {
      const res = await get<ErrorReply>(`/v1/tasks/nope-000000000000${sub}`);
      expect(res.status, sub).toBe(404);
      expect(res.body.error.code).toBe('TASK_NOT_FOUND');
    }
    const join = await app.inject({
      method: 'POST',
      url: '/v1/tasks/nope-000000000000/join',
      payload: joinBody('nope-000000000000', members[0]!),
    });
    expect(join.statusCode).toBe(404);
    expect(join.json<ErrorReply>().error.code).toBe('TASK_NOT_FOUND');
  });
});

describe("task creation: only the coordinator's own account, once, for this coordinator, over the exact body", () => {
  const spec = () => baseTask(members.map((m) => m.address));
  /** Nothing was created: no task row, no chain record, nothing listed. */
  const nothingCreated = async () => {
    expect(world.store.tasks()).toEqual([]);
    expect([...world.ledger.tasks.keys()]).toEqual([]);
    expect((await get('/v1/tasks')).body).toEqual([]);
  };
  const refusal = (res: Awaited<ReturnType<typeof postTask>>) => ({
    status: res.statusCode,
    code: res.json<Partial<ErrorReply>>().error?.code,
  });

  it('an unsigned POST is refused (401 AUTH_MISSING), whatever the body; so is one missing a header', async () => {
    const unsigned = await postTask(spec(), {});
    expect(refusal(unsigned)).toEqual({ status: 401, code: 'AUTH_MISSING' });
    expect(unsigned.json<ErrorReply>().error.message).toContain('x-ailink-signature');
    // Not even the body's validity is disclosed before the signer is known.
    expect(refusal(await postTask([1, 2], {}))).toEqual({ status: 401, code: 'AUTH_MISSING' });
    const { 'x-ailink-nonce': _, ...noNonce } = taskSignature(JSON.stringify(spec()));
    const partial = await postTask(spec(), noNonce);
    expect(refusal(partial)).toEqual({ status: 401, code: 'AUTH_MISSING' });
    expect(partial.json<ErrorReply>().error.message).toContain('x-ailink-nonce');
    await nothingCreated();
  });

  it('a POST signed by another account is refused (403 AUTH_NOT_AUTHORISED); so is one claiming the owner with another key', async () => {
    const text = JSON.stringify(spec());
    expect(refusal(await postTask(spec(), taskSignature(text, { by: outsider })))).toEqual({
      status: 403,
      code: 'AUTH_NOT_AUTHORISED',
    });
    // An admitted member is no more the owner than anyone else.
    expect(refusal(await postTask(spec(), taskSignature(text, { by: members[0]! })))).toEqual({
      status: 403,
      code: 'AUTH_NOT_AUTHORISED',
    });
    const forged = { ...taskSignature(text, { by: outsider }), 'x-ailink-account': owner.address };
    expect(refusal(await postTask(spec(), forged))).toEqual({ status: 401, code: 'AUTH_BAD_SIGNATURE' });
    await nothingCreated();
  });

  it('a replayed signed POST is refused (409 AUTH_REPLAYED), also after a restart', async () => {
    const text = JSON.stringify(spec());
    const headers = taskSignature(text);
    expect((await postTask(spec(), headers)).statusCode).toBe(201);
    expect(refusal(await postTask(spec(), headers))).toEqual({ status: 409, code: 'AUTH_REPLAYED' });
    // The nonces live in the coordinator's SQLite: a restart does not reopen the replay.
    await app.close();
    await world.restart();
    app = appFor(world);
    expect(refusal(await postTask(spec(), headers))).toEqual({ status: 409, code: 'AUTH_REPLAYED' });
    expect(world.store.tasks()).toHaveLength(1);
    expect(world.ledger.tasks.size).toBe(1);
  });

  it('an expired POST (401 AUTH_EXPIRED) and one expiring too far ahead (401 AUTH_EXPIRY_TOO_FAR) are refused', async () => {
    const text = JSON.stringify(spec());
    const anHourAgo = { now: () => Date.now() - 3_600_000 };
    expect(refusal(await postTask(spec(), taskSignature(text, { clock: anHourAgo })))).toEqual({
      status: 401,
      code: 'AUTH_EXPIRED',
    });
    expect(refusal(await postTask(spec(), taskSignature(text, { ttlMs: 24 * 3_600_000 })))).toEqual({
      status: 401,
      code: 'AUTH_EXPIRY_TOO_FAR',
    });
    await nothingCreated();
  });

  it('a tampered body is refused (401 AUTH_BAD_SIGNATURE): the signature covers every byte', async () => {
    const signed = taskSignature(JSON.stringify(spec()));
    // The outsider slips itself onto the admission list of the owner's signed request.
    const widened = baseTask([...members.map((m) => m.address), outsider.address]);
    expect(refusal(await postTask(widened, signed))).toEqual({ status: 401, code: 'AUTH_BAD_SIGNATURE' });
    // The same JSON value written differently is other bytes, so another request.
    const respaced = await app.inject({
      method: 'POST',
      url: '/v1/tasks',
      headers: { 'content-type': 'application/json', ...signed },
      payload: JSON.stringify(spec(), null, 1),
    });
    expect(refusal(respaced)).toEqual({ status: 401, code: 'AUTH_BAD_SIGNATURE' });
    await nothingCreated();
  });

  it('a POST signed for another coordinator is refused (401 AUTH_WRONG_AUDIENCE)', async () => {
    const text = JSON.stringify(spec());
    const elsewhere = taskSignature(text, { audience: '12D3KooWAnotherCoordinator' });
    expect(refusal(await postTask(spec(), elsewhere))).toEqual({ status: 401, code: 'AUTH_WRONG_AUDIENCE' });
    // Re-labelled as meant for this coordinator, the signature no longer holds.
    const relabelled = { ...elsewhere, 'x-ailink-audience': INFO.peerId };
    expect(refusal(await postTask(spec(), relabelled))).toEqual({ status: 401, code: 'AUTH_BAD_SIGNATURE' });
    await nothingCreated();
  });

  it('malformed auth headers are 400 INVALID_INPUT naming the header', async () => {
    const signed = taskSignature(JSON.stringify(spec()));
    for (const [header, value] of [
      ['x-ailink-expires-at', 'soon'],
      ['x-ailink-nonce', 'NOT-HEX'],
      ['x-ailink-signature', 'ab'],
    ] as const) {
      const res = await postTask(spec(), { ...signed, [header]: value });
      expect(refusal(res), header).toEqual({ status: 400, code: 'INVALID_INPUT' });
      expect(res.json<ErrorReply>().error.message).toContain(header);
    }
    await nothingCreated();
  });
});

describe('join', () => {
  it('admits a properly signed join; it appears in /participants', async () => {
    const { id } = await createTask();
    const body = joinBody(id, members[1]!);
    const res = await app.inject({ method: 'POST', url: `/v1/tasks/${id}/join`, payload: body });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toEqual({ admitted: true, account: members[1]!.address });
    const participants = await get<Record<string, unknown>[]>(`/v1/tasks/${id}/participants`);
    expect(participants.body).toEqual([
      {
        account: members[1]!.address,
        identityKey: body.identityKey,
        joinedAt: expect.any(Number),
        lastSeen: expect.any(Number),
      },
    ]);
    expect(world.ledger.admitted(id)).toEqual([
      { account: members[1]!.address, identityKey: body.identityKey },
    ]);
  });

  it('refuses unadmitted, forged, malformed and oversized joins, and changes nothing', async () => {
    const { id } = await createTask();
    const url = `/v1/tasks/${id}/join`;
    const post = async (payload: unknown, headers: Record<string, string> = {}) => {
      const res = await app.inject({
        method: 'POST',
        url,
        headers: { 'content-type': 'application/json', ...headers },
        payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
      });
      return { status: res.statusCode, error: res.json<ErrorReply>().error };
    };

    expect(await post(joinBody(id, outsider))).toMatchObject({
      status: 403,
      error: { code: 'ROUND_NOT_ADMITTED' },
    });
    // Signed by someone else, or for another task: the signature does not verify for the claimed account.
    const forged = { ...joinBody(id, outsider), account: members[0]!.address };
    expect(await post(forged)).toMatchObject({ status: 401, error: { code: 'AUTH_BAD_SIGNATURE' } });
    const otherTask = { ...joinBody('another-task', members[0]!) };
    expect(await post(otherTask)).toMatchObject({ status: 401, error: { code: 'AUTH_BAD_SIGNATURE' } });

    const good = joinBody(id, members[0]!);
    const { identityKey: _, ...noKey } = good;
    const { readerKey: __, ...noReaderKey } = good;
    const malformed: [unknown, string][] = [
      [noKey, 'identityKey'],
      [noReaderKey, 'readerKey'],
      [{ ...good, readerKey: good.readerKey.toUpperCase() }, 'readerKey'],
      [{ ...good, readerKey: good.readerKey.slice(2) }, 'readerKey'],
      [{ ...good, identityKey: good.identityKey.slice(2) }, 'identityKey'],
      [{ ...good, identityKey: good.identityKey.toUpperCase() }, 'identityKey'],
      [{ ...good, signature: `${good.signature}00` }, 'signature'],
      [{ ...good, joinSignature: good.joinSignature.slice(2) }, 'joinSignature'],
      [{ ...good, signedAt: -1 }, 'signedAt'],
      [{ ...good, signedAt: String(good.signedAt) }, 'signedAt'],
      [{ ...good, account: 42 }, 'account'],
      [{ ...good, account: 'not-an-address' }, 'account'],
      [{ ...good, peer: { peerId: 'p', addrs: '/ip4/1.2.3.4' } }, 'peer.addrs'],
      [{ ...good, peer: { addrs: [] } }, 'peer.peerId'],
      [{ ...good, admin: true }, 'admin'],
      [[good], 'body'],
    ];
    for (const [body, field] of malformed) {
      const res = await post(body);
      expect(res, field).toMatchObject({ status: 400, error: { code: 'INVALID_INPUT' } });
      expect(res.error.message, JSON.stringify(res.error)).toContain(field);
    }
    expect(await post('{"account": ')).toMatchObject({ status: 400, error: { code: 'INVALID_INPUT' } });

    const huge = await post({ ...good, peer: { peerId: 'p', addrs: ['x'.repeat(BODY_LIMIT)] } });
    expect(huge).toMatchObject({ status: 413, error: { code: 'BODY_TOO_LARGE' } });
    expect(huge.error.message).toContain(String(BODY_LIMIT));

    expect((await get(`/v1/tasks/${id}/participants`)).body).toEqual([]);
    expect(world.ledger.admitted(id)).toEqual([]);
  });

  it("binds the reader key and the time: someone else's key, an older join and a stale one are refused", async () => {
    const { id } = await createTask();
    const url = `/v1/tasks/${id}/join`;
    const post = async (payload: unknown) => {
      const res = await app.inject({ method: 'POST', url, payload: payload as object });
      return { status: res.statusCode, code: res.json<Partial<ErrorReply>>().error?.code };
    };
    const member = members[0]!;
    const readerKey = () => world.store.participant(id, member.address)?.readerKey;
    // The admission is public on chain: resent with an outsider's reader key, the join's own signature does not hold.
    const hijack = { ...joinBody(id, member), readerKey: outsider.readerKey };
    expect(await post(hijack)).toEqual({ status: 401, code: 'AUTH_BAD_SIGNATURE' });
    expect(readerKey()).toBeUndefined();
    expect(world.ledger.admitted(id)).toEqual([]);

    const now = Date.now();
    const first = joinBody(id, member, { signedAt: now - 1000 });
    expect(await post(first)).toEqual({ status: 200, code: undefined });
    // The same join again is a replay (anyone who saw it on the wire could resend it to keep the member "alive" or
    // to undo a later join): signing times must increase strictly. A newer one with another key replaces it; the
    // older one cannot come back.
    const seenBefore = world.store.participant(id, member.address)?.lastSeen;
    expect(await post(first)).toEqual({ status: 409, code: 'AUTH_REPLAYED' });
    expect(world.store.participant(id, member.address)?.lastSeen).toBe(seenBefore);
    const rotated = joinBody(id, member, { signedAt: now, readerKey: 'ab'.repeat(32) });
    expect(await post(rotated)).toEqual({ status: 200, code: undefined });
    expect(readerKey()).toBe('ab'.repeat(32));
    expect(await post(first)).toEqual({ status: 409, code: 'AUTH_REPLAYED' });
    expect(readerKey()).toBe('ab'.repeat(32));

    for (const signedAt of [now - JOIN_WINDOW_MS - 60_000, now + JOIN_WINDOW_MS + 60_000]) {
      expect(await post(joinBody(id, member, { signedAt }))).toEqual({ status: 401, code: 'AUTH_EXPIRED' });
    }
    expect(readerKey()).toBe('ab'.repeat(32));
    expect(world.ledger.admitted(id)).toHaveLength(1);
  });
});

describe('joins in batches', () => {
  /**
   * Holds the world's first admission batch until `release`, so the joins that come meanwhile pile up behind it as
   * they do behind a block on a real chain.
   */
  function holdFirstBatch(w: World) {
    const inner = w.ledger.admitMany;
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let calls = 0;
    w.ledger.admitMany = async (batch) => {
      if (calls++ === 0) await gate;
      return inner(batch);
    };
    return { release, started: () => calls > 0 };
  }
  const until = async (what: () => boolean) => {
    for (let i = 0; !what(); i++) {
      if (i > 500) throw new Error('timed out waiting for the admission queue');
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  const join = (a: ReturnType<typeof buildApp>, id: string, body: ReturnType<typeof joinBody>) =>
    a.inject({ method: 'POST', url: `/v1/tasks/${id}/join`, payload: body });

  it('sends the joins that come during an admission together, and answers a repeated join from its first', async () => {
    const many = Array.from({ length: 12 }, (_, i) => makeAccount(`batch-${i}`));
    const { id } = await createTask({ admitted: many.map((m) => m.address) });
    const hold = holdFirstBatch(world);
    const first = join(app, id, joinBody(id, many[0]!));
    await until(hold.started);
    const repeated = joinBody(id, many[5]!);
    const rest = [...many.slice(1).map((m) => join(app, id, joinBody(id, m))), join(app, id, repeated)];
    await until(() => world.coordinator.admissionLoad().queued === 11);
    expect((await get('/v1/info')).body).toEqual({
      ...INFO,
      admissions: { queued: 11, inFlight: 1, batch: 128 },
    });
    hold.release();
    for (const res of await Promise.all([first, ...rest])) expect(res.statusCode, res.body).toBe(200);
    expect(world.ledger.admitBatches).toEqual([1, 11]);
    expect(
      world.ledger
        .admitted(id)
        .map((p) => p.account)
        .sort(),
    ).toEqual(many.map((m) => m.address).sort());
  });

  it('refuses a flood of joins beyond the queue with 429 JOIN_QUEUE_FULL; the queued ones are admitted', async () => {
    const w = makeWorld(undefined, { admissions: { maxBatch: 2, maxQueued: 4 } });
    const a = appFor(w);
    try {
      const many = Array.from({ length: 7 }, (_, i) => makeAccount(`flood-${i}`));
      const text = JSON.stringify(baseTask(many.map((m) => m.address)));
      const created = await a.inject({
        method: 'POST',
        url: '/v1/tasks',
        headers: { 'content-type': 'application/json', ...taskSignature(text) },
        payload: text,
      });
      expect(created.statusCode, created.body).toBe(201);
      const { id } = created.json<{ id: string }>();
      const hold = holdFirstBatch(w);
      const first = join(a, id, joinBody(id, many[0]!));
      await until(hold.started);
      const queued = many.slice(1, 5).map((m) => join(a, id, joinBody(id, m)));
      await until(() => w.coordinator.admissionLoad().queued === 4);
      for (const m of many.slice(5)) {
        const res = await join(a, id, joinBody(id, m));
        expect(res.statusCode, res.body).toBe(429);
        expect(res.json<ErrorReply>().error.code).toBe('JOIN_QUEUE_FULL');
      }
      hold.release();
      for (const res of await Promise.all([first, ...queued])) expect(res.statusCode, res.body).toBe(200);
      // Batches of at most two behind the first; the refused ones come back and are admitted.
      expect(w.ledger.admitBatches).toEqual([1, 2, 2]);
      for (const m of many.slice(5)) expect((await join(a, id, joinBody(id, m))).statusCode).toBe(200);
      expect(w.ledger.admitted(id)).toHaveLength(7);
    } finally {
      await a.close();
      await w.coordinator.stop();
      w.store.close();
    }
  });
});

describe('the rest', () => {
  it('GET /v1/info', async () => {
    expect(await get('/v1/info')).toEqual({
      status: 200,
      body: { ...INFO, admissions: { queued: 0, inFlight: 0, batch: 128 } },
    });
  });

  it('unknown routes → 404 NOT_FOUND', async () => {
    for (const [method, url] of [
      ['GET', '/v2/tasks'],
      ['DELETE', '/v1/tasks'],
      ['GET', '/'],
    ] as const) {
      const res = await app.inject({ method, url });
      expect(res.statusCode).toBe(404);
      expect(res.json<ErrorReply>().error.code).toBe('NOT_FOUND');
    }
  });

  it('an unexpected failure is a 500 INTERNAL without its details; the log has them', async () => {
    const broken: Coordinator = {
      ...world.coordinator,
      tasks: () => {
        throw new Error('disk on fire');
      },
      // A reply that does not match its declared schema is not sent half-right.
      participants: () => [{ account: 'x' } as never],
    };
    const app2 = buildApp({
      coordinator: broken,
      info: () => INFO,
      nonces: world.store.requestNonces,
      log: (l) => logs.push(l),
    });
    const res = await app2.inject({ method: 'GET', url: '/v1/tasks' });
    const bad = await app2.inject({ method: 'GET', url: '/v1/tasks/any/participants' });
    await app2.close();
    for (const r of [res, bad]) {
      expect(r.statusCode).toBe(500);
      expect(r.json<ErrorReply>().error.code).toBe('INTERNAL');
    }
    expect(res.body).not.toContain('disk on fire');
    expect(logs.join('\n')).toContain('disk on fire');
    expect(logs.join('\n')).toMatch(/participants failed: .*identityKey/s);
  });

  it('router-level refusals (an over-long id) have the same error shape', async () => {
    const res = await get<ErrorReply>(`/v1/tasks/${'x'.repeat(200)}`);
    expect(res.status).toBe(414);
    expect(res.body.error.code).toBe('REQUEST_REFUSED');
  });

  it('GET /openapi.json is an OpenAPI 3 document listing every route, with resolvable $refs', async () => {
    const res = await app.inject({ method: 'GET', url: '/openapi.json' });
    expect(res.statusCode).toBe(200);
    const doc = OpenApiShape.parse(res.json());
    expect(doc.openapi).toMatch(/^3\.\d+\.\d+$/);

    const routes = Object.entries(doc.paths).flatMap(([path, item]) =>
      Object.keys(item)
        .filter((k) => METHODS.includes(k))
        .map((m) => `${m.toUpperCase()} ${path}`),
    );
    expect(routes.sort()).toEqual(
      [
        'GET /v1/info',
        'GET /v1/tasks',
        'POST /v1/tasks',
        'GET /v1/tasks/{id}',
        'GET /v1/tasks/{id}/rounds',
        'GET /v1/tasks/{id}/status',
        'GET /v1/tasks/{id}/participants',
        'GET /v1/tasks/{id}/metrics',
        'GET /v1/tasks/{id}/audit',
        'POST /v1/tasks/{id}/join',
      ].sort(),
    );

    for (const [path, item] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(item)) {
        if (!METHODS.includes(method)) continue;
        const operation = Operation.parse(op);
        // Every templated segment is declared as a required path parameter.
        for (const name of path.match(/\{(\w+)\}/g) ?? []) {
          const p = operation.parameters?.find((x) => x.in === 'path' && `{${x.name}}` === name);
          expect(p?.required, `${method} ${path} ${name}`).toBe(true);
        }
        expect(Object.keys(operation.responses)).toEqual(expect.arrayContaining(['4XX', '5XX']));
      }
    }
    const join = Operation.parse(doc.paths['/v1/tasks/{id}/join']?.post);
    expect(join.requestBody?.content['application/json']?.schema).toMatchObject({
      required: expect.arrayContaining(['account', 'identityKey', 'signature', 'peer']),
      additionalProperties: false,
    });
    // Task creation documents its signature headers, each required.
    const create = Operation.parse(doc.paths['/v1/tasks']?.post);
    expect(
      create.parameters
        ?.filter((p) => p.in === 'header' && p.required)
        .map((p) => p.name)
        .sort(),
    ).toEqual([
      'x-ailink-account',
      'x-ailink-audience',
      'x-ailink-expires-at',
      'x-ailink-nonce',
      'x-ailink-signature',
    ]);

    // Every $ref points at a component that exists.
    const refs = [...JSON.stringify(doc).matchAll(/"\$ref":"#\/components\/schemas\/([^"]+)"/g)].map(
      (m) => m[1]!,
    );
    expect(refs.length).toBeGreaterThan(0);
    for (const r of refs) expect(doc.components?.schemas, r).toHaveProperty([r]);
    expect(Object.keys(doc.components?.schemas ?? {})).toEqual(
      expect.arrayContaining(['TaskSpec', 'TaskInput', 'Round', 'Participant', 'Error']),
    );
  });
});

describe('an API reached across networks: Host allow-list, rate limit, timeouts, a bounded audit', () => {
  const limited = (
    limits: Parameters<typeof buildApp>[0]['limits'],
    extra: Partial<Parameters<typeof buildApp>[0]> = {},
  ) =>
    buildApp({
      coordinator: world.coordinator,
      info: () => INFO,
      nonces: world.store.requestNonces,
      limits,
      ...extra,
    });

  it('a Host the coordinator does not answer to is HOST_NOT_ALLOWED (421), before any route runs: a rebinding page creates nothing', async () => {
    const guarded = limited({ hosts: ['coordinator.example', '127.0.0.1', '::1'] });
    try {
      for (const host of ['coordinator.example', 'Coordinator.Example:8700', '127.0.0.1:8700', '[::1]:8700'])
        expect((await guarded.inject({ method: 'GET', url: '/v1/info', headers: { host } })).statusCode).toBe(
          200,
        );
      for (const host of ['evil.example', 'evil.example:8700', 'coordinator.example.evil.example', '']) {
        const res = await guarded.inject({ method: 'GET', url: '/v1/info', headers: { host } });
        expect(res.statusCode).toBe(421);
        expect(res.json<ErrorReply>().error.code).toBe('HOST_NOT_ALLOWED');
      }
      const text = JSON.stringify(baseTask(members.map((m) => m.address)));
      const res = await guarded.inject({
        method: 'POST',
        url: '/v1/tasks',
        headers: { host: 'evil.example', 'content-type': 'application/json', ...taskSignature(text) },
        payload: text,
      });
      expect(res.statusCode).toBe(421);
      expect(world.coordinator.tasks()).toEqual([]);
    } finally {
      await guarded.close();
    }
  });

  it('a client over its requests per minute gets RATE_LIMITED (429) with Retry-After; its budget refills with time', async () => {
    let now = 1_000_000;
    const clock: Clock = { now: () => now };
    const guarded = limited({ perMinute: 5 }, { clock });
    const get = (ip: string) => guarded.inject({ method: 'GET', url: '/v1/info', remoteAddress: ip });
    try {
      for (let i = 0; i < 5; i++) expect((await get('10.0.0.9')).statusCode).toBe(200);
      const refused = await get('10.0.0.9');
      expect(refused.statusCode).toBe(429);
      expect(refused.json<ErrorReply>().error.code).toBe('RATE_LIMITED');
      expect(refused.headers['retry-after']).toBe('12');
      // Another client is not held back by this one.
      expect((await get('10.0.0.10')).statusCode).toBe(200);
      now += 12_000;
      expect((await get('10.0.0.9')).statusCode).toBe(200);
      expect((await get('10.0.0.9')).statusCode).toBe(429);
    } finally {
      await guarded.close();
    }
  });

  it('a request that does not arrive whole within requestTimeoutMs is dropped (a slow client holds no socket)', async () => {
    const guarded = limited({ requestTimeoutMs: 300, connectionTimeoutMs: 300 });
    try {
      await guarded.listen({ host: '127.0.0.1', port: 0 });
      const { port } = guarded.server.address() as { port: number };
      const { createConnection } = await import('node:net');
      const socket = createConnection({ host: '127.0.0.1', port });
      await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
      const started = Date.now();
      socket.write('GET /v1/info HTTP/1.1\r\nHost: 127.0.0.1\r\n'); // and never the blank line
      let answer = '';
      socket.on('data', (d) => {
        answer += d.toString();
      });
      await new Promise<void>((resolve) => socket.once('close', () => resolve()));
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(answer === '' || answer.startsWith('HTTP/1.1 408')).toBe(true);
    } finally {
      await guarded.close();
    }
  });

  it('GET …/audit runs one verification per task and round at a time; requests meanwhile share its report', async () => {
    const { id } = await createTask();
    let runs = 0;
    let release = () => {};
    const audit = async () => {
      runs++;
      await new Promise<void>((r) => {
        release = r;
      });
      return { ok: true } as never;
    };
    const shared = limited({}, { audit });
    try {
      const first = shared.inject({ method: 'GET', url: `/v1/tasks/${id}/audit` });
      const second = shared.inject({ method: 'GET', url: `/v1/tasks/${id}/audit` });
      await new Promise((r) => setTimeout(r, 50));
      release();
      await Promise.all([first, second]);
      expect(runs).toBe(1);
      // Once it is done, the next request verifies again: storage may have changed ("Verify again").
      const third = shared.inject({ method: 'GET', url: `/v1/tasks/${id}/audit` });
      await new Promise((r) => setTimeout(r, 50));
      release();
      await third;
      expect(runs).toBe(2);
    } finally {
      await shared.close();
    }
  });
});
