import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeModelPackage } from '../../models/index.ts';
import { signingKeyPair } from '../aggregation/index.ts';
import { auditTask } from '../audit/index.ts';
import { type CallRecord, protocolCall, seedOf, taskOf } from '../chain/index.ts';
import type { Admission, AdmissionOutcome } from '../coordinator/admissions.ts';
import { type Coordinator, createCoordinator } from '../coordinator/coordinator.ts';
import { buildApp } from '../coordinator/http.ts';
import { sweepSpool } from '../coordinator/spool.ts';
import { openCoordinatorStore } from '../coordinator/store.ts';
import { serveRoundProtocol } from '../coordinator/transport.ts';
import type { PeerRef } from '../p2p/index.ts';
import type { Examples } from '../participant/examples.ts';
import type { ModelRef, TrainingPool } from '../participant/train-pool.ts';
import type { Account } from '../shared/account.ts';
import { toHex } from '../shared/bytes.ts';
import { type Clock, type Random, systemClock } from '../shared/clock.ts';
import { AilinkError, hasCode } from '../shared/errors.ts';
import { makePrivateDir } from '../shared/private-files.ts';
import { type CodecPool, createGrantService } from '../storage/index.ts';
import type { TaskSpec } from '../task/index.ts';
import { peerKeyIn, secretIn } from './keys.ts';
import { hostInUrl } from './network.ts';
import { openSession, putArgs, ROLE_CHAIN_WAIT_MS, type Session, type SessionConfig } from './session.ts';

/** The code that produced a round, for its manifest: package version and the lockfile's hash. */
export function codeVersion(): { package: string; version: string; lockfile: string } {
  const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
    name: string;
    version: string;
  };
  const lock = readFileSync(join(root, 'package-lock.json'));
  return {
    package: pkg.name,
    version: pkg.version,
    lockfile: createHash('sha256').update(lock).digest('hex'),
  };
}

/**
 * Records this coordinator's endpoint for every task it still runs whose chain record says otherwise (a restart on
 * new ports, a move to another host), in one transaction.
 */
async function recordEndpoints(
  session: Session,
  coordinator: Coordinator,
  endpoint: { url: string; peerId: string; addrs: string[] },
): Promise<void> {
  await session.indexer.sync();
  const stale = coordinator
    .tasks()
    .filter((t) => t.status === 'running')
    .filter((t) => {
      const known = taskOf(session.indexer.state, t.id)?.endpoint ?? null;
      return (
        known === null ||
        known.url !== endpoint.url ||
        known.peerId !== endpoint.peerId ||
        known.addrs.join(' ') !== endpoint.addrs.join(' ')
      );
    });
  if (stale.length > 0)
    await session.submit(
      stale.map((t) => protocolCall('provenance.setEndpoint', { task: t.id, ...endpoint })),
    );
}

/**
 * A batch of the coordinator's admission queue (src/coordinator/admissions.ts) as one extrinsic of `provenance.admit`
 * calls, each judged by the rules on its own: a refused one is that admission's answer, not the batch's.
 */
export function admitOnChain(
  session: Pick<Session, 'submitEach'>,
): (admissions: readonly Admission[]) => Promise<AdmissionOutcome[]> {
  return async (admissions) => {
    const outcomes = await session.submitEach(
      admissions.map(({ task, account, identityKey, signature }) =>
        protocolCall('provenance.admit', { task, account, identityKey, signature }),
      ),
    );
    return outcomes.map((o) => (o.applied ? { admitted: true } : { admitted: false, reason: o.reason }));
  };
}

export interface CoordinatorNode {
  /** The HTTP API as others reach it (the announced URL, else the bound one). */
  readonly url: string;
  readonly peer: PeerRef;
  readonly coordinator: Coordinator;
  /** Reads a stored object as the coordinator (it may read updates encrypted for it, and public objects). */
  get(fid: string): Promise<Uint8Array>;
  /** Stores a public object as the coordinator's account (e.g. the model package of a task it is asked to run). */
  put(bytes: Uint8Array, name: string): Promise<string>;
  /** The task's rounds as the chain recorded them (this node's index of it). */
  anchored(task: string): { round: number; manifest: string; digest: string }[];
  /** Every protocol call this node's index met, with its block and extrinsic: what went on chain together. */
  calls(): CallRecord[];
  stop(): Promise<void>;
}

export interface CoordinatorNodeOptions {
  /** The network, and the libp2p addresses the round protocol listens on and announces. */
  readonly session: SessionConfig;
  /** State: coordinator.sqlite, the round-signing key, the libp2p identity. */
  readonly dir: string;
  readonly account: Account;
  /** Where the HTTP API binds (default 127.0.0.1, any free port) and the URL others should use for it. */
  readonly http?: { readonly host?: string; readonly port?: number; readonly announce?: string };
  /** The coordinator's own test set, if it has one (organisations score every model on their held-out rows). */
  readonly testData?: Examples;
  log(line: string): void;
}

/**
 * `ailink coordinator`: state in `<dir>/coordinator.sqlite`, its round-signing key and libp2p identity in `<dir>`,
 * so that a restart resumes every task under the same identity.
 */
export async function startCoordinatorNode(
  deps: { random: Random; clock?: Clock; pool: TrainingPool; codec: CodecPool },
  options: CoordinatorNodeOptions,
): Promise<CoordinatorNode> {
  const clock = deps.clock ?? systemClock;
  makePrivateDir(options.dir);
  const server = signingKeyPair(() => secretIn(join(options.dir, 'server.key'), deps.random));
  const session = await openSession(
    {
      ...options.session,
      peerKey: await peerKeyIn(join(options.dir, 'peer.key')),
      chainWaitMs: options.session.chainWaitMs ?? ROLE_CHAIN_WAIT_MS,
    },
    options.account,
    'coordinator',
    { clock, random: deps.random, codec: deps.codec },
  );
  const { host } = session;
  const stops: (() => Promise<void>)[] = [() => session.close()];
  const stopAll = async () => {
    for (const stop of stops.splice(0).reverse()) await stop().catch(() => {});
  };
  try {
    const store = openCoordinatorStore(join(options.dir, 'coordinator.sqlite'), clock);
    stops.push(async () => store.close());
    // Attempts spool the updates they sum here; what a killed process left is stale (a resumed attempt fetches again).
    const spoolDir = join(options.dir, 'spool');
    await sweepSpool(spoolDir);
    const testData = options.testData;
    // Each task's model topology, read once from its stored package (the spec names it by digest).
    const refs = new Map<string, Promise<ModelRef>>();
    const modelRef = (spec: TaskSpec): Promise<ModelRef> => {
      let ref = refs.get(spec.model.digest);
      if (ref === undefined) {
        ref = session
          .get(spec.model.fid, { signal: AbortSignal.timeout(60_000) })
          .then((bytes) => ({ key: spec.model.digest, topology: decodeModelPackage(bytes).topology }));
        ref.catch(() => refs.delete(spec.model.digest));
        refs.set(spec.model.digest, ref);
      }
      return ref;
    };
    const submit = (call: ReturnType<typeof protocolCall>) => session.submit([call]);
    // Where organisations reach this coordinator, recorded on chain with each task: known once the API listens.
    let endpoint: { url: string; peerId: string; addrs: string[] } | undefined;
    const endpointCall = (task: string) =>
      endpoint === undefined ? [] : [protocolCall('provenance.setEndpoint', { task, ...endpoint })];
    const coordinator = createCoordinator({
      account: options.account,
      serverKey: server.privateKey,
      serverPublicKey: toHex(server.publicKey),
      store,
      spoolDir,
      objects: {
        put: (source, name, batch) =>
          session.put(
            ...putArgs(source, { name, encrypt: false, ...(batch === undefined ? {} : { batch }) }),
          ),
        // One wrap for every participant, through a reader group: a declaration holds at most 64 wraps, and the
        // group (new whenever the participants change) is stored once for all the task's models of that membership.
        putModel: (source, name, readers, batch) =>
          session.put(
            ...putArgs(source, {
              name,
              encrypt: true,
              readerGroup: [...readers],
              ...(batch === undefined ? {} : { batch }),
            }),
          ),
        get: (fid, o) => session.get(fid, o),
        read: (fid, o) => session.storage.get(fid, o),
        owned: (prefix) => session.owned(prefix),
        delete: (fids) => session.deleteObjects(fids),
      },
      ledger: {
        genesisHash: session.chain.genesisHash,
        createTask: (task, spec, admitted) =>
          session.submit([
            protocolCall('provenance.createTask', { task, spec, admitted: [...admitted] }),
            ...endpointCall(task),
          ]),
        admitMany: admitOnChain(session),
        stopTask: (task, reason) => submit(protocolCall('provenance.stopTask', { task, reason })),
        async recordRound(task, round, manifest, digest, batch, next) {
          const calls = [
            protocolCall('provenance.recordRound', { task, round, manifest, digest }),
            ...(next === undefined ? [] : [protocolCall('provenance.drawSeed', { task, ...next })]),
          ];
          try {
            if (batch === undefined) await session.submit(calls);
            else await session.storage.declareAll(batch, calls);
          } catch (err) {
            // The anchor stood and only the next round's draw was refused: that attempt draws when it opens.
            const anchored = session.tasks
              .anchored(task)
              .some((r) => r.round === round && r.manifest === manifest);
            if (next !== undefined && hasCode(err, 'CHAIN_CALL_REJECTED') && anchored) return;
            throw err;
          }
        },
        async drawSeed(task, round, attempt, cohort) {
          await submit(protocolCall('provenance.drawSeed', { task, round, attempt, cohort }));
          // The submission returned once this session's index applied the block: the record is there.
          const seed = seedOf(session.indexer.state, task, round, attempt);
          if (seed === undefined || seed.cohort !== cohort)
            throw new AilinkError(
              'CHAIN_CALL_REJECTED',
              `the chain recorded no seed for ${task}/${round}/${attempt}`,
            );
          return seed.blockHash;
        },
        seedOf: (task, round, attempt) => seedOf(session.indexer.state, task, round, attempt),
        async setTerms(fid, readers, price, batch) {
          // Batched: the object is not on chain yet, so the call goes after its declaration in the batch's extrinsic.
          if (batch !== undefined)
            batch.calls.push(protocolCall('market.setTerms', { fid, readers: [...readers], price }));
          else await session.market.setTerms(fid, { readers, price: price === null ? null : BigInt(price) });
        },
        anchored: (task) => session.tasks.anchored(task),
        admitted: (task) => session.tasks.admitted(task),
        membership(task) {
          const record = taskOf(session.indexer.state, task);
          return record === undefined
            ? undefined
            : { allowed: record.admitted, stopped: (record.stoppedAt ?? null) !== null };
        },
      },
      describeModel: (pkg, seed) => deps.pool.describe(pkg, seed),
      evaluate: async (spec, weights) =>
        testData === undefined
          ? null
          : deps.pool.evaluate({
              model: await modelRef(spec),
              weights: weights.slice(),
              data: testData,
              loss: spec.training.loss,
            }),
      publish: async (topic, announcement) => {
        await host.publish(topic, new TextEncoder().encode(JSON.stringify(announcement)));
      },
      clock,
      random: deps.random,
      code: codeVersion(),
      log: options.log,
    });
    stops.push(() => coordinator.stop());
    await serveRoundProtocol(host, coordinator);
    const bindHost = options.http?.host ?? '127.0.0.1';
    const app = buildApp({
      coordinator,
      limits: { hosts: servedHostNames(bindHost, options.http?.announce) },
      // Signed task creations: nonces in coordinator.sqlite, the signer checked against options.account via info().
      nonces: store.requestNonces,
      clock,
      // The explorer's badges: this node's own index of the chain and reads from the miners (`ailink audit verify` is
      // the same check from an auditor's own connection, for those who do not trust this node).
      audit: async (task, round) => {
        await session.indexer.sync();
        return auditTask(
          {
            state: session.indexer.state,
            atBlock: session.indexer.height(),
            fetch: (fid, o) => session.get(fid, o),
          },
          task,
          round === undefined ? {} : { round },
        );
      },
      info: () => ({
        peerId: host.peerId,
        addrs: host.addrs(),
        account: options.account.address,
        version: codeVersion().version,
      }),
    });
    try {
      await app.listen({ host: bindHost, port: options.http?.port ?? 0 });
    } catch (cause) {
      throw new AilinkError(
        'INVALID_INPUT',
        `the coordinator's HTTP API cannot listen on ${bindHost}:${options.http?.port ?? 0}: ${(cause as Error).message}`,
        { cause },
      );
    }
    stops.push(() => app.close());
    const address = app.server.address();
    const port = typeof address === 'object' && address !== null ? address.port : (options.http?.port ?? 0);
    const url = options.http?.announce ?? `http://${hostInUrl(bindHost)}:${port}`;
    endpoint = { url, peerId: host.peerId, addrs: host.addrs().slice(0, 8) };
    // Resume the rounds first: organisations mid-attempt get ROUND_STALE until the loop runs, and recording the
    // endpoint waits for a block.
    coordinator.start();
    await recordEndpoints(session, coordinator, endpoint);
    // The key service for the task's private models: releases a model's key to accepted (listed or paid) requests.
    const grants = createGrantService({
      chain: session.chain,
      indexer: session.indexer,
      account: options.account,
      clock,
    }).start((pass) => {
      for (const g of pass.granted)
        options.log(`released the key of ${g.fid.slice(0, 12)}… to ${g.reader.slice(0, 8)}…`);
      for (const f of pass.failed)
        options.log(`could not release ${f.fid.slice(0, 12)}… to ${f.reader.slice(0, 8)}…: ${f.reason}`);
    });
    stops.push(() => grants.stop());
    return {
      url,
      peer: { peerId: host.peerId, addrs: host.addrs() },
      coordinator,
      get: (fid) => session.get(fid),
      put: (bytes, name) => session.put(bytes, { name, encrypt: false }),
      anchored: (task) => session.tasks.anchored(task),
      calls: () => session.indexer.calls(),
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/**
 * The names the coordinator's HTTP API answers to (its Host allow-list, against DNS rebinding): the bound address,
 * the announced URL's host, and the loopback names when it listens there. Bound to every interface with nothing
 * announced, its names are unknown: any is accepted.
 */
export function servedHostNames(bindHost: string, announce: string | undefined): string[] {
  const wildcard = bindHost === '0.0.0.0' || bindHost === '::';
  const loopback = bindHost === '127.0.0.1' || bindHost === '::1' || bindHost === 'localhost';
  if (wildcard && announce === undefined) return [];
  const names = new Set<string>();
  if (!wildcard) names.add(bindHost.toLowerCase());
  if (announce !== undefined) names.add(new URL(announce).hostname.replace(/^\[|\]$/g, '').toLowerCase());
  if (loopback || wildcard) for (const n of ['localhost', '127.0.0.1', '::1']) names.add(n);
  return [...names];
}
