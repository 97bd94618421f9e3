/**
 * Edges `p2p:round-open:<stage>`: the coordinator's round protocol (`serveRoundProtocol`, a real libp2p host) while a
 * real SecAgg round is open at `stage` (advertise, shares, consistency or unmask). The coordinator is the test harness's
 * (test/coordinator/harness.ts: a real SQLite store, the real round code, in-memory storage and chain twins), started;
 * four real participant runtimes (`makeParticipant`) drive round 0 to the stage:
 *
 * - member A joined from the attacker's peer and answered every stage before; its own answer to `stage` is kept back
 *   (the harness's `intercept`) and is the valid input the attacker sends over the wire;
 * - member C joined from the attacker's peer too and answered `stage` (its stored answer is what is duplicated);
 * - member B answered from another peer; member D goes silent at `stage`, so the stage stays open (its deadline is an
 *   hour) even when A's answer is taken;
 * - member E joined from the attacker's peer after the cohort was drawn: admitted, not in the cohort.
 *
 * Submissions then arrive: framing broken, JSON cut, fields of another type, unknown keys, hex cut or changed, the stage
 * field changed, validly signed messages of another stage, for another round or attempt or signed for another one,
 * unsigned, signature changed, signed with C's key as A, as B (another peer), as E (not in the cohort), as an account
 * that never joined, naming C inside A's request, B's or A's earlier answers replayed, a second different answer of
 * C's, oversized fields, a task never created. A refusal is a reply frame with a registered code; after every input
 * the coordinator must still answer A's view (it survived).
 *
 * The digest is every table of the coordinator's SQLite store but the replay guard's nonces and a member's last-seen
 * time (a request from the member's own peer is a sign of life even when refused). What is not checked here: whether a
 * validly signed answer makes sense for the SecAgg server (shares for non-neighbours, a revealed share that does not
 * reconstruct) — the reply to such an answer is ok, and the server judges it when the stage closes; and the masked
 * stage, whose commitment starts a fetch from storage that no digest of the store can undo.
 */
import { setMaxListeners } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { signed } from '../../src/aggregation/secagg.ts';
import { admissionMessage } from '../../src/chain/index.ts';
import { serveRoundProtocol } from '../../src/coordinator/transport.ts';
import { twinIdentityKey } from '../../src/node/twins.ts';
import { createHost, type Host, type PeerRef } from '../../src/p2p/index.ts';
import { accountsReady } from '../../src/shared/account.ts';
import { toHex } from '../../src/shared/bytes.ts';
import {
  joinMessage,
  MAX_ROUND_MESSAGE,
  ROUND_PROTOCOL,
  type RoundStage,
  roundContext,
  signCommitment,
  survivableMin,
  type TaskSpec,
  toWire,
} from '../../src/task/index.ts';
import { AdvertSchema, ConsistencySchema, SharesSchema, UnmaskSchema } from '../../src/task/messages.ts';
import {
  baseTask,
  type Member,
  makeAccount,
  makeParticipant,
  makeWorld,
  TEST_GENESIS,
  type World,
} from '../../test/coordinator/harness.ts';
import type { Edge, FuzzCase, Variant } from './harness.ts';
import { fuzzCase, getPath, type Json, type JsonPath, pathsOf, withPath } from './mutate.ts';
import {
  encode,
  exchange,
  frame,
  framingCases,
  jsonMutations,
  judge,
  roundChecks,
  type WireInput,
} from './p2p.ts';

export type OpenStage = Exclude<RoundStage, 'masked'>;

const SCHEMAS = {
  advertise: AdvertSchema,
  shares: SharesSchema,
  consistency: ConsistencySchema,
  unmask: UnmaskSchema,
} as const;
const SETUP_MS = 30_000;

const wire = (json: Json | string): WireInput => ({
  bytes: frame(typeof json === 'string' ? new TextEncoder().encode(json) : encode(json)),
});

/** A body of `stage` that its schema takes (what a member of `cohort` could sign), differing from `like` if given. */
function bodyOf(stage: RoundStage, cohort: readonly string[], like?: unknown): unknown {
  const bytes = (n: number, b: number) => new Uint8Array(n).fill(b);
  switch (stage) {
    case 'advertise':
      return { cPk: bytes(32, 7), sPk: bytes(32, 9) };
    case 'shares': {
      const sealed = (like as { sealed?: unknown[] } | undefined)?.sealed ?? [];
      return {
        sealed: sealed.length > 0 ? sealed.slice(0, -1) : [{ to: cohort[0]!, ciphertext: bytes(48, 1) }],
      };
    }
    case 'consistency':
      return { survivors: [...cohort].reverse().slice(0, -1) };
    case 'unmask': {
      const revealed = (like as { revealed?: unknown[] } | undefined)?.revealed ?? [];
      return {
        revealed:
          revealed.length > 0
            ? revealed.slice(0, -1)
            : [{ of: cohort[0]!, kind: 'self', share: bytes(33, 2) }],
      };
    }
    default:
      throw new Error(`no body for ${stage}`);
  }
}

export function roundOpenEdge(stage: OpenStage): Edge<WireInput> {
  let dir = '';
  let world: World | undefined;
  let server: Host | undefined;
  let attacker: Host | undefined;
  let peer: PeerRef = { peerId: '', addrs: [] };
  let cases: fc.Arbitrary<FuzzCase<WireInput>> | undefined;
  let valid: Json = null;
  let view: Json = null;
  let task = '';
  let memberA = '';
  const controller = new AbortController();
  // Every participant's sleeps listen on it.
  setMaxListeners(0, controller.signal);
  const runs: Promise<void>[] = [];
  const send = (input: WireInput) =>
    exchange(attacker!, peer, ROUND_PROTOCOL, input, MAX_ROUND_MESSAGE).then(judge);

  return {
    name: `p2p:round-open:${stage}`,
    cases: () => cases!,
    valid: () => wire(valid),
    async setup() {
      await accountsReady();
      dir = mkdtempSync(join(tmpdir(), `ailink-fuzz-round-open-${stage}-`));
      world = makeWorld(dir);
      server = await createHost();
      attacker = await createHost();
      await serveRoundProtocol(server, world.coordinator);
      peer = { peerId: server.peerId, addrs: server.addrs() };
      const labelA = attacker.peerId;
      const labels = { a: labelA, b: `open-${stage}-b`, c: `open-${stage}-c`, d: `open-${stage}-d` };
      const labelE = `open-${stage}-e`;
      const account = (l: string) => makeAccount(l).address;
      memberA = account(labels.a);
      const cohortAccounts = Object.values(labels).map(account);
      const secagg = baseTask(cohortAccounts).secagg as TaskSpec['secagg'];
      const created = await world.coordinator.createTask(
        baseTask(cohortAccounts, {
          admitted: [...cohortAccounts, account(labelE)],
          cohort: { size: 4, min: survivableMin({ cohort: { size: 4, min: 3 }, secagg }) },
          deadlines: {
            joinMs: 200,
            advertiseMs: 10_000,
            sharesMs: 10_000,
            trainMs: 10_000,
            consistencyMs: 10_000,
            unmaskMs: 10_000,
            // The stage under fuzz stays open for the whole run.
            [`${stage}Ms`]: 3_600_000,
          },
        }),
      );
      task = created.id;
      const earlier: Json[] = [];
      let kept: Json | undefined;
      const members: Member[] = [
        makeParticipant(world, task, labels.a, {
          intercept: (body) => {
            const b = body as { kind?: string; stage?: string };
            if (b.kind !== 'submit') return undefined;
            if (b.stage === stage) {
              kept = body as Json;
              return { ok: true };
            }
            earlier.push(body as Json);
            return undefined;
          },
        }),
        makeParticipant(world, task, labels.b),
        makeParticipant(world, task, labels.c, { peerId: attacker.peerId }),
        makeParticipant(world, task, labels.d, { dropAt: { round: 0, stage } }),
      ];
      world.coordinator.start();
      for (const m of members) {
        const run = m.participant.run(controller.signal);
        run.catch(() => {});
        runs.push(run);
      }
      // Open at the stage, with A kept back and D silent: everyone else has answered.
      const waitUntil = Date.now() + SETUP_MS;
      const expected = [memberA, account(labels.d)].sort().join(',');
      for (;;) {
        const s = world.coordinator.status(task);
        if (s?.phase === stage && kept !== undefined && [...s.expecting].sort().join(',') === expected) break;
        if (Date.now() > waitUntil)
          throw new Error(
            `p2p:round-open:${stage}: the round did not reach the stage: ${JSON.stringify(s)}, kept ${kept !== undefined}`,
          );
        await new Promise((r) => setTimeout(r, 50));
      }
      valid = kept!;
      const open = world.coordinator.status(task)!;
      const { round, attempt } = open;
      const ctx = roundContext(task, round, attempt);
      const cohort = [...cohortAccounts].sort();
      // E joins from the attacker's peer after the cohort was drawn.
      {
        const e = makeAccount(labelE);
        const identityKey = toHex(twinIdentityKey(labelE));
        const signedAt = Date.now();
        const claim = {
          task,
          account: e.address,
          identityKey,
          readerKey: e.readerKey,
          signedAt,
          peerId: attacker.peerId,
        };
        await world.coordinator.join(task, {
          account: e.address,
          identityKey,
          signature: toHex(e.sign(admissionMessage(TEST_GENESIS, task, identityKey))),
          readerKey: e.readerKey,
          signedAt,
          joinSignature: toHex(e.sign(joinMessage(claim))),
          peer: { peerId: attacker.peerId, addrs: ['/ip4/127.0.0.1/tcp/1'] },
        });
      }
      // The identity key is public here (twinIdentityKey) so the fuzzer may sign as A, as a thief of C's key, or as E.
      const signedBy = (
        label: string,
        from: string,
        s: RoundStage,
        body: unknown,
        context = ctx,
      ): unknown => {
        // The identity key of a twin is the raw Ed25519 seed the runtime signs with.
        const key = twinIdentityKey(label);
        if (s === 'masked')
          return signCommitment(key, context, {
            fid: 'ab'.repeat(32),
            digest: 'cd'.repeat(32),
            dataset: 'ef'.repeat(32),
          });
        return toWire(signed(s, context, from, key, body));
      };
      const submit = (o: {
        from?: string;
        stage?: RoundStage;
        round?: number;
        attempt?: number;
        message: unknown;
      }) =>
        ({
          kind: 'submit',
          task,
          round: o.round ?? round,
          attempt: o.attempt ?? attempt,
          from: o.from ?? memberA,
          stage: o.stage ?? stage,
          message: o.message,
        }) as Json;
      const parsedA = SCHEMAS[stage].parse((valid as { message: unknown }).message) as { body: unknown };
      const asA = (body: unknown, o: { label?: string; context?: string; from?: string } = {}) =>
        signedBy(o.label ?? labels.a, o.from ?? memberA, stage, body, o.context);
      const stored = (label: string) =>
        world!.store.message(task, round, attempt, stage, account(label)) as Json | undefined;
      const storedC = stored(labels.c);
      const storedB = stored(labels.b);
      if (storedC === undefined || storedB === undefined)
        throw new Error(`p2p:round-open:${stage}: B's and C's answers are not stored`);
      const parsedC = SCHEMAS[stage].parse(storedC) as { body: unknown };
      const c = (variant: Variant, label: string, json: Json | string, mustRefuse = true) =>
        fc.constant(fuzzCase(variant, label, wire(json), mustRefuse));
      const validText = JSON.stringify(valid);
      const hexPaths = pathsOf(valid).filter((p) => {
        const v = getPath(valid, p);
        return typeof v === 'string' && v.length >= 2 && /^[0-9a-f]+$/.test(v);
      });
      const otherStages = (['advertise', 'shares', 'masked', 'consistency', 'unmask'] as const).filter(
        (s) => s !== stage,
      );
      const oversized: [string, JsonPath, Json][] = [
        ['a 257-character context', ['message', 'context'], 'x'.repeat(257)],
        ['a 65-character task id', ['task'], 'x'.repeat(65)],
      ];
      if (stage === 'shares')
        oversized.push(
          ['a 4097-byte ciphertext', ['message', 'body', 'sealed', 0, 'ciphertext'], 'ab'.repeat(4097)],
          [
            '1001 sealed shares',
            ['message', 'body', 'sealed'],
            Array.from({ length: 1001 }, () => ({ to: memberA, ciphertext: '00' })),
          ],
        );
      if (stage === 'unmask')
        oversized.push(['a 4097-byte share', ['message', 'body', 'revealed', 0, 'share'], 'ab'.repeat(4097)]);
      if (stage === 'advertise')
        oversized.push(['a 33-byte cPk', ['message', 'body', 'cPk'], 'ab'.repeat(33)]);
      if (stage === 'consistency')
        oversized.push([
          '1001 survivors',
          ['message', 'body', 'survivors'],
          Array.from({ length: 1001 }, () => memberA),
        ]);
      const usable = oversized.filter(([, p]) => getPath(valid, p.slice(0, -1)) !== undefined);

      cases = fc.oneof(
        ...framingCases(frame(encode(valid)), MAX_ROUND_MESSAGE),
        jsonMutations(valid).map(({ label, json }) =>
          fuzzCase<WireInput>('malformed', `${stage}: ${label}`, wire(json)),
        ),
        fc
          .integer({ min: 0, max: validText.length - 1 })
          .map((k) =>
            fuzzCase<WireInput>(
              'truncated',
              `${stage}: JSON cut at ${k} characters`,
              wire(validText.slice(0, k)),
            ),
          ),
        ...(hexPaths.length === 0
          ? []
          : [
              fc
                .tuple(fc.constantFrom(...hexPaths), fc.integer({ min: 1, max: 4 }))
                .map(([p, k]) =>
                  fuzzCase<WireInput>(
                    'malformed',
                    `${stage}: ${p.join('.')} cut by ${k} hex characters`,
                    wire(withPath(valid, p, (getPath(valid, p) as string).slice(0, -k))),
                  ),
                ),
              fc.tuple(fc.constantFrom(...hexPaths), fc.nat()).map(([p, i]) => {
                const v = getPath(valid, p) as string;
                const at = i % v.length;
                const changed = `${v.slice(0, at)}${v[at] === '0' ? '1' : '0'}${v.slice(at + 1)}`;
                return fuzzCase<WireInput>(
                  'wrongly-signed',
                  `${stage}: ${p.join('.')} character ${at} changed`,
                  wire(withPath(valid, p, changed)),
                );
              }),
            ]),
        ...usable.map(([label, p, v]) => c('oversized', `${stage}: ${label}`, withPath(valid, p, v))),
        fc
          .constantFrom(...otherStages)
          .map((s) =>
            fuzzCase<WireInput>(
              'out-of-order',
              `${stage}: the stage field says ${s}, the message is a ${stage} one`,
              wire({ ...(valid as object), stage: s }),
            ),
          ),
        fc.constantFrom(...otherStages).map((s) =>
          fuzzCase<WireInput>(
            'out-of-order',
            `${s}: a validly signed ${s} message while ${stage} is open`,
            wire(
              submit({
                stage: s,
                message: signedBy(labels.a, memberA, s, s === 'masked' ? null : bodyOf(s, cohort)),
              }),
            ),
          ),
        ),
        c('out-of-order', `${stage}: for round ${round + 1}`, { ...(valid as object), round: round + 1 }),
        c('out-of-order', `${stage}: for attempt ${attempt + 1}`, {
          ...(valid as object),
          attempt: attempt + 1,
        }),
        c('out-of-order', `${stage}: for the statistics round`, { ...(valid as object), round: -1 }),
        c(
          'wrongly-signed',
          `${stage}: signed for attempt ${attempt + 1}`,
          submit({ message: asA(parsedA.body, { context: roundContext(task, round, attempt + 1) }) }),
        ),
        c(
          'wrongly-signed',
          `${stage}: signed for another task`,
          submit({ message: asA(parsedA.body, { context: roundContext('f'.repeat(64), round, attempt) }) }),
        ),
        c('out-of-order', `${stage}: a task never created`, { ...(valid as object), task: 'f'.repeat(64) }),
        c('unsigned', `${stage}: no signature`, withPath(valid, ['message', 'signature'], undefined)),
        c('unsigned', `${stage}: an empty signature`, withPath(valid, ['message', 'signature'], '')),
        c(
          'wrongly-signed',
          `${stage}: a zero signature`,
          withPath(valid, ['message', 'signature'], '00'.repeat(64)),
        ),
        c(
          'wrongly-signed',
          `${stage}: A's message signed with C's identity key`,
          submit({ message: asA(parsedA.body, { label: labels.c }) }),
        ),
        c(
          'wrongly-signed',
          `${stage}: A's message with C's signature`,
          withPath(valid, ['message', 'signature'], (storedC as { signature: string }).signature),
        ),
        c('wrong-caller', `${stage}: as member B, which joined from another peer`, {
          ...(valid as object),
          from: account(labels.b),
        }),
        c('wrong-caller', `${stage}: as an account that never joined`, {
          ...(valid as object),
          from: makeAccount(`open-${stage}-outsider`).address,
        }),
        c(
          'wrong-caller',
          `${stage}: as member E (joined from this peer, not in the cohort), signed by E`,
          submit({
            from: account(labelE),
            message: signedBy(labelE, account(labelE), stage, parsedA.body),
          }),
        ),
        c(
          'wrong-caller',
          `${stage}: A's request carrying a message signed by C as C`,
          submit({ message: storedC }),
        ),
        c('replayed', `${stage}: B's stored answer, as A`, submit({ message: storedB })),
        c(
          'replayed',
          `${stage}: B's stored answer, as B (from the attacker's peer)`,
          submit({ from: account(labels.b), message: storedB }),
        ),
        ...(earlier.length === 0
          ? []
          : [
              fc
                .constantFrom(...earlier)
                .map((e) =>
                  fuzzCase<WireInput>(
                    'replayed',
                    `${(e as { stage: string }).stage}: A's earlier answer again`,
                    wire(e),
                  ),
                ),
            ]),
        c(
          'duplicated',
          `${stage}: a second, different answer of C's, signed by C`,
          submit({
            from: account(labels.c),
            message: signedBy(labels.c, account(labels.c), stage, bodyOf(stage, cohort, parsedC.body)),
          }),
        ),
        c(
          'replayed',
          `${stage}: C's stored answer again (a retry: accepted, nothing changes)`,
          submit({ from: account(labels.c), message: storedC }),
          false,
        ),
        fc
          .uint8Array({ maxLength: 256 })
          .map((b) =>
            fuzzCase<WireInput>('malformed', `${b.byteLength} random bytes in a frame`, { bytes: frame(b) }),
          ),
      );
      view = { kind: 'view', task, from: memberA };
    },
    ...roundChecks(
      send,
      () => wire(view),
      () => world!.storePath,
    ),
    async restore() {
      // A's answer (the valid input) taken: the stage is open again without it, as setup left it.
      const db = new Database(world!.storePath);
      try {
        db.prepare('DELETE FROM messages WHERE task = ? AND stage = ? AND sender = ?').run(
          task,
          stage,
          memberA,
        );
      } finally {
        db.close();
      }
    },
    async teardown() {
      controller.abort();
      await Promise.allSettled(runs);
      await attacker?.stop();
      await server?.stop();
      await world?.coordinator.stop();
      world?.store.close();
      if (dir !== '') rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const roundOpenEdges = (): Edge<WireInput>[] =>
  (['advertise', 'shares', 'consistency', 'unmask'] as const).map(roundOpenEdge);
