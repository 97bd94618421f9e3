/**
 * Edge `p2p:gossip`: a participant's task topic. The participant is real end to end: its own libp2p host, the link
 * `connectCoordinator` builds over the coordinator's HTTP API and libp2p (it subscribes the topic with its validator),
 * and the runtime (`createParticipant`, through test/coordinator/harness.ts's `makeParticipant` with that link) joined
 * and waiting for a round — the coordinator (the harness's: a real SQLite store, not started, so no round opens)
 * serves its HTTP API and round protocol from a host of its own. Two kinds of sender publish on the topic:
 *
 * - attacker hosts (other peers): random bytes, a validly signed header or view, or more than the participant's
 *   1 MiB gossip limit. A fresh attacker identity is used whenever the last one's score at the participant fell below
 *   −4 (a real attacker rotates identities; a graylisted one would not even be validated);
 * - the coordinator's own host (it passes the link's validator: what a coordinator whose libp2p key, not its task
 *   server key, is in an attacker's hands could send): bytes that are not JSON, JSON that is no header, headers
 *   unsigned, signed by another key, with a field changed after signing, for another task, stale or replayed, and
 *   views whose body, part or signature does not match their header.
 *
 * Refused: the participant says why with a registered code — the host's validator (`onReject`: GOSSIP_TOO_LARGE, or
 * the link's AUTH_NOT_AUTHORISED for a sender other than the coordinator's peer), the link (ROUND_MESSAGE_INVALID
 * for bytes that are not JSON) or the runtime (`ignoring a gossiped announcement (CODE)` / `ignoring an announcement
 * (CODE)`), read off the participant's log. A message no line speaks of was accepted: the signed headers for another
 * task (ignored without a word), stale or replayed (the participant asks for its view again: harmless), are noise.
 * Survived: after every input the coordinator's host publishes a new, validly signed header and the participant
 * must ask the coordinator for its view (a view request arrives) within 5 s. State: what the participant acted on —
 * its events, the view requests it made beyond those the probes caused, and the coordinator's store (nonces and
 * last-seen times left out, as in `p2p:round`).
 *
 * Not covered: unsigned gossip frames and forged origins (our hosts always sign; gossipsub's StrictSign drops the
 * rest before any of our code runs), and gossip relayed through a third peer.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { signingKeyPair } from '../../src/aggregation/index.ts';
import { buildApp } from '../../src/coordinator/http.ts';
import { serveRoundProtocol } from '../../src/coordinator/transport.ts';
import { createHost, type Host } from '../../src/p2p/index.ts';
import { connectCoordinator } from '../../src/participant/link.ts';
import type { ParticipantEvent } from '../../src/participant/runtime.ts';
import { accountsReady } from '../../src/shared/account.ts';
import { isErrorCode } from '../../src/shared/errors.ts';
import { headerOf, signAnnouncement, taskTopic, viewsOf } from '../../src/task/index.ts';
import {
  baseTask,
  makeAccount,
  makeParticipant,
  makeWorld,
  type World,
} from '../../test/coordinator/harness.ts';
import { type Edge, type FuzzCase, type Variant, WireRefusal } from './harness.ts';
import { fuzzCase, getPath, type Json, pathsOf, withPath } from './mutate.ts';
import { sqliteDigest } from './p2p.ts';

export interface GossipInput {
  /** Who publishes: an attacker host, or the coordinator's own host. */
  readonly by: 'attacker' | 'coordinator';
  readonly data: Uint8Array;
}

const PROBE_MS = 5_000;
const ATTACKER_SETTLE_MS = 1_000;
const encode = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function gossipEdge(): Edge<GossipInput> {
  let dir = '';
  let world: World | undefined;
  let app: FastifyInstance | undefined;
  let coordinatorHost: Host | undefined;
  let participantHost: Host | undefined;
  const attackers: Host[] = [];
  let cases: fc.Arbitrary<FuzzCase<GossipInput>> | undefined;
  let topic = '';
  let task = '';
  const lines: string[] = [];
  const events: ParticipantEvent[] = [];
  let views = 0;
  let expectedViews = 0;
  let probes = 0;
  const controller = new AbortController();
  let run: Promise<void> | undefined;
  let probeHeader: (n: number) => Uint8Array = () => new Uint8Array();

  const until = async (ok: () => boolean, ms: number) => {
    const end = Date.now() + ms;
    while (!ok()) {
      if (Date.now() > end) return false;
      await sleep(5);
    }
    return true;
  };
  /** An attacker host in good standing at the participant (a new identity when the last is penalised). */
  const attacker = async (): Promise<Host> => {
    const last = attackers.at(-1);
    if (last !== undefined && participantHost!.gossipScore(last.peerId) > -4) return last;
    const fresh = await createHost({ maxGossipBytes: 3 * 1024 * 1024, gossipHeartbeatMs: 100 });
    await fresh.connect({ peerId: participantHost!.peerId, addrs: participantHost!.addrs() });
    await fresh.waitForSubscribers(topic, 1, { timeoutMs: 10_000 });
    attackers.push(fresh);
    return fresh;
  };
  /** Until no view request has arrived for 60 ms (at most 2 s): a wake-up's request may still be on its way. */
  const settle = async () => {
    const end = Date.now() + 2_000;
    let last = views;
    let since = Date.now();
    while (Date.now() < end && Date.now() - since < 60) {
      await sleep(5);
      if (views !== last) {
        last = views;
        since = Date.now();
      }
    }
  };
  const codeIn = (line: string) => /\(([A-Z][A-Z0-9_]+)\)/.exec(line)?.[1];

  return {
    name: 'p2p:gossip',
    cases: () => cases!,
    async setup() {
      await accountsReady();
      dir = mkdtempSync(join(tmpdir(), 'ailink-fuzz-gossip-'));
      world = makeWorld(dir);
      coordinatorHost = await createHost({ maxGossipBytes: 3 * 1024 * 1024, gossipHeartbeatMs: 100 });
      participantHost = await createHost({ gossipHeartbeatMs: 100 });
      // The coordinator's round protocol, counting the view requests the participant makes.
      await serveRoundProtocol(coordinatorHost, {
        handle: (raw, peer) => {
          if ((raw as { kind?: unknown } | null)?.kind === 'view') views++;
          return world!.coordinator.handle(raw, peer);
        },
      });
      const owner = world.account;
      app = buildApp({
        coordinator: world.coordinator,
        info: () => ({
          peerId: coordinatorHost!.peerId,
          addrs: coordinatorHost!.addrs(),
          account: owner.address,
          version: '0',
        }),
        nonces: world.store.requestNonces,
        log: () => {},
      });
      const base = await app.listen({ host: '127.0.0.1', port: 0 });
      const label = 'gossip-a';
      const member = makeAccount(label).address;
      const others = ['gossip-x', 'gossip-y'].map((l) => makeAccount(l).address);
      task = (await world.coordinator.createTask(baseTask([member, ...others]))).id;
      topic = taskTopic(task);
      const link = await connectCoordinator(participantHost, base, coordinatorHost.peerId, {
        log: (line) => lines.push(line),
      });
      const { participant } = makeParticipant(world, task, label, {
        link,
        log: (line) => lines.push(line),
        pollMs: 600_000,
      });
      participant.onEvent((e) => events.push(e));
      run = participant.run(controller.signal);
      run.catch(() => {});
      await coordinatorHost.waitForSubscribers(topic, 1, { timeoutMs: 20_000 });
      if (!(await until(() => views >= 1, 20_000)))
        throw new Error('p2p:gossip: the participant never asked for its view');
      await sleep(100);
      expectedViews = views;

      const serverKey = world.serverKey;
      const now = Date.now();
      const signedHeader = (
        o: {
          task?: string;
          round?: number;
          phase?: 'shares' | 'done';
          deadline?: number;
          key?: Uint8Array;
        } = {},
      ) =>
        headerOf(
          signAnnouncement(
            {
              task: o.task ?? task,
              round: o.round ?? 50,
              attempt: 0,
              phase: o.phase ?? 'shares',
              deadline: o.deadline ?? now + 600_000,
              body: { adverts: {} },
            },
            o.key ?? serverKey,
          ),
        ) as unknown as Json;
      probeHeader = (n) => encode(signedHeader({ round: 10_000 + n }));
      const header = signedHeader();
      const otherKey = signingKeyPair((n) => new Uint8Array(n).fill(5)).privateKey;
      // A whole view of a phase without parts (what gossip carries whole), and one of a phase with parts cut for
      // another member: both validly signed, never sent intact (a done view would end the participant's task).
      const doneWire = signAnnouncement(
        {
          task,
          round: 60,
          attempt: 0,
          phase: 'done',
          deadline: now,
          body: {
            model: { fid: 'ab'.repeat(32), hash: 'cd'.repeat(32) },
            manifest: null,
            accuracy: null,
            loss: null,
          },
        },
        serverKey,
      );
      const doneView = viewsOf(doneWire)(member) as unknown as Json;
      const sharesWire = signAnnouncement(
        {
          task,
          round: 61,
          attempt: 0,
          phase: 'shares',
          deadline: now + 600_000,
          body: { adverts: { [others[0]!]: [], [member]: [] } },
        },
        serverKey,
      );
      const othersView = viewsOf(sharesWire)(others[0]!) as unknown as Json;
      const fromC = (variant: Variant, label: string, json: Json | string, mustRefuse = true) =>
        fuzzCase<GossipInput>(
          variant,
          label,
          {
            by: 'coordinator',
            data: typeof json === 'string' ? new TextEncoder().encode(json) : encode(json),
          },
          mustRefuse,
        );
      const flip = (hex: string) => `${hex[0] === '0' ? '1' : '0'}${hex.slice(1)}`;
      const headerText = JSON.stringify(header);
      const headerPaths = pathsOf(header).filter((p) => p[0] !== 'signature');
      const bodyPaths = pathsOf(doneView).filter((p) => p[0] === 'body' && p.length > 1);
      cases = fc.oneof(
        fc.uint8Array({ maxLength: 256 }).map((b) =>
          fuzzCase<GossipInput>('malformed', `attacker: ${b.byteLength} random bytes`, {
            by: 'attacker',
            data: b,
          }),
        ),
        fc.constant(
          fuzzCase<GossipInput>('wrong-caller', "attacker: the coordinator's signed header", {
            by: 'attacker',
            data: encode(header),
          }),
        ),
        fc.constant(
          fuzzCase<GossipInput>('wrong-caller', 'attacker: a signed view of another round', {
            by: 'attacker',
            data: encode(withPath(doneView, ['round'], 62)),
          }),
        ),
        fc.integer({ min: 1024 * 1024 + 1, max: 1024 * 1024 + 4096 }).map((n) =>
          fuzzCase<GossipInput>('oversized', `attacker: ${n} bytes, over the participant's 1 MiB`, {
            by: 'attacker',
            data: new Uint8Array(n).fill(0x20),
          }),
        ),
        fc
          .uint8Array({ minLength: 1, maxLength: 256 })
          .filter((b) => {
            try {
              JSON.parse(new TextDecoder().decode(b));
              return false;
            } catch {
              return true;
            }
          })
          .map((b) =>
            fuzzCase<GossipInput>('malformed', `coordinator: ${b.byteLength} bytes that are not JSON`, {
              by: 'coordinator',
              data: b,
            }),
          ),
        fc
          .integer({ min: 0, max: headerText.length - 1 })
          .map((k) =>
            fromC('truncated', `coordinator: a header cut at ${k} characters`, headerText.slice(0, k)),
          ),
        fc
          .constantFrom('null', '1', '"x"', '[]', '{}', 'true')
          .map((t) => fromC('malformed', `coordinator: ${t}`, t)),
        fc
          .constantFrom(...headerPaths)
          .chain((p) =>
            fc
              .oneof(fc.constant(undefined), fc.constant(typeof getPath(header, p) === 'number' ? 'x' : 7))
              .map((v) => [p, v] as const),
          )
          .map(([p, v]) =>
            fromC(
              'malformed',
              `coordinator: header ${p.join('.')} ${v === undefined ? 'deleted' : `= ${JSON.stringify(v)}`}`,
              withPath(header, p, v as Json | undefined),
            ),
          ),
        fc
          .constantFrom(...headerPaths.filter((p) => typeof getPath(header, p) === 'number'))
          .map((p) =>
            fromC(
              'wrongly-signed',
              `coordinator: header ${p.join('.')} changed after signing`,
              withPath(header, p, (getPath(header, p) as number) + 1),
            ),
          ),
        fc.constant(
          fromC(
            'unsigned',
            'coordinator: a header without its signature',
            withPath(header, ['signature'], undefined),
          ),
        ),
        fc.constant(
          fromC(
            'unsigned',
            'coordinator: a view without its signature',
            withPath(doneView, ['signature'], undefined),
          ),
        ),
        fc.constant(
          fromC(
            'wrongly-signed',
            'coordinator: a header signed by another key',
            signedHeader({ key: otherKey }),
          ),
        ),
        fc.constant(
          fromC(
            'wrongly-signed',
            'coordinator: a header with one signature character changed',
            withPath(header, ['signature'], flip((header as { signature: string }).signature)),
          ),
        ),
        fc.constant(
          fromC(
            'wrongly-signed',
            'coordinator: a view with one signature character changed',
            withPath(doneView, ['signature'], flip((doneView as { signature: string }).signature)),
          ),
        ),
        fc
          .constantFrom(...bodyPaths)
          .map((p) =>
            fromC(
              'malformed',
              `coordinator: a view whose body ${p.join('.')} is not what the header covers`,
              withPath(doneView, p, typeof getPath(doneView, p) === 'string' ? 'ef'.repeat(32) : 0.5),
            ),
          ),
        fc.constant(fromC('wrong-caller', "coordinator: a view carrying another member's part", othersView)),
        fc.constant(
          fromC(
            'malformed',
            'coordinator: a view whose part is garbage',
            withPath(othersView, ['part'], { to: 1 }),
          ),
        ),
        fc.constant(
          fromC('malformed', 'coordinator: a view with an unknown key', withPath(doneView, ['extra'], 1)),
        ),
        fc.constant(
          fromC(
            'out-of-order',
            'coordinator: a signed header for another task (ignored)',
            signedHeader({ task: 'f'.repeat(64) }),
            false,
          ),
        ),
        fc.constant(
          fromC(
            'replayed',
            'coordinator: a signed header of a stage long closed (asks its view again)',
            signedHeader({ round: 0, deadline: now - 3_600_000 }),
            false,
          ),
        ),
        fc.constant(fromC('duplicated', 'coordinator: the same signed header again', header, false)),
      );
    },
    async apply(input) {
      const before = lines.length;
      if (input.by === 'attacker') {
        const a = await attacker();
        await a.publish(topic, input.data);
        await until(() => lines.slice(before).some((l) => codeIn(l) !== undefined), ATTACKER_SETTLE_MS);
      } else await coordinatorHost!.publish(topic, input.data);
      // The probe: a new header from the coordinator; the participant must ask for its view.
      const seen = views;
      await coordinatorHost!.publish(topic, probeHeader(probes++));
      const alive = await until(() => views > seen, PROBE_MS);
      expectedViews++;
      await settle();
      if (!alive)
        throw new Error(
          `the participant no longer acts on a valid announcement (${lines.slice(-3).join(' | ')})`,
        );
      const line = lines.slice(before).find((l) => codeIn(l) !== undefined);
      if (line !== undefined) {
        const code = codeIn(line)!;
        throw new WireRefusal(code, isErrorCode(code), line.slice(0, 200));
      }
    },
    async digest() {
      return JSON.stringify({
        events,
        extraViews: views - expectedViews,
        store: sqliteDigest(world!.storePath, { skip: ['nonces'], blank: { participants: ['last_seen'] } }),
      });
    },
    async restore() {
      // An accepted header made the participant ask for its view: harmless, and the baseline moves with it.
      await settle();
      expectedViews = views;
    },
    async teardown() {
      controller.abort();
      await run?.catch(() => {});
      await app?.close();
      for (const a of attackers) await a.stop();
      await participantHost?.stop();
      await coordinatorHost?.stop();
      await world?.coordinator.stop();
      world?.store.close();
      if (dir !== '') rmSync(dir, { recursive: true, force: true });
    },
  };
}
