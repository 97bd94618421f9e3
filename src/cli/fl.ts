import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeModelPackage } from '../../models/index.ts';
import { signingKeyPair } from '../aggregation/index.ts';
import { auditTask } from '../audit/index.ts';
import {
  type ChainClient,
  connectChain,
  type Indexer,
  openIndexer,
  parseProtocolConfig,
  participantsOf,
  protocolCall,
  roundsOf,
  submitProtocol,
  taskOf,
} from '../chain/index.ts';
import { createCoordinator } from '../coordinator/coordinator.ts';
import { buildApp } from '../coordinator/http.ts';
import { openCoordinatorStore, type RoundRow } from '../coordinator/store.ts';
import { createHost, type Host, newPeerKey, type PeerRef } from '../p2p/index.ts';
import type { Examples } from '../participant/examples.ts';
import type { LocalData } from '../participant/local-data.ts';
import { createParticipant, type Participant, type ParticipantOptions } from '../participant/runtime.ts';
import type { ModelRef, TrainingPool } from '../participant/train-pool.ts';
import type { Account } from '../shared/account.ts';
import { fromHex, toHex } from '../shared/bytes.ts';
import { type Clock, type Random, systemClock } from '../shared/clock.ts';
import { AilinkError } from '../shared/errors.ts';
import {
  type CodecPool,
  createChainRegistry,
  createGrantService,
  createMarketClient,
  createMinerClient,
  createStorageClient,
  type LoadedNetwork,
} from '../storage/index.ts';
import { MAX_ROUND_MESSAGE, ROUND_PROTOCOL, type TaskSpec } from '../task/index.ts';

/**
 * Wires the coordinator and participant cores to the real parts: the chain (provenance calls, read through an
 * indexer), the storage network (updates, models and manifests as erasure-coded objects), libp2p (the round protocol
 * on direct streams, announcements on gossip) and HTTP. Only the CLI imports this.
 */

const MiB = 1024 * 1024;
const REQUEST_DEADLINE_MS = 10_000;
const JOIN_DEADLINE_MS = 120_000;

/**
 * Round objects (updates of 0.8–6.7 MB, models, manifests) use 1 MiB segments — 4 + 8 fragments of 256 KiB, which
 * every miner accepts — rather than the network's default: 32 MiB segments would pad an MLP update 40×, and the test
 * profile's 64 KiB segments would turn it into 13 × 12 fragment transfers. The profile is recorded per object.
 */
const ROUND_OBJECT_PROFILE = { segmentSize: MiB, dataFragments: 4, parityFragments: 8 } as const;

const percent = (x: number) => `${(x * 100).toFixed(2)} %`;

/**
 * A round's figures for a person: the model on the coordinator's test set, and the organisations' held-out rows
 * scoring the model the round started from (in the closing evaluation round: the final model).
 */
export function describeRound(row: Pick<RoundRow, 'accuracy' | 'kind' | 'evaluation'>): string {
  const parts: string[] = [];
  if (row.accuracy !== null) parts.push(`accuracy ${percent(row.accuracy)} (test set)`);
  if (row.evaluation)
    parts.push(
      `${row.kind === 'evaluation' ? 'final model' : 'start model'} ${percent(row.evaluation.accuracy)} on ${row.evaluation.examples} held-out rows`,
    );
  return parts.join(', ') || 'no accuracy measured';
}

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

/** A 32-byte secret kept in a 0600 file, created on first use. */
export function secretIn(path: string, random: Random): Uint8Array {
  if (existsSync(path)) return fromHex(readFileSync(path, 'utf8').trim(), path);
  mkdirSync(dirname(path), { recursive: true });
  const secret = random(32);
  writeFileSync(path, `${toHex(secret)}\n`, { mode: 0o600 });
  chmodSync(path, 0o600);
  return secret;
}

async function peerKeyIn(path: string): Promise<Uint8Array> {
  if (existsSync(path)) return new Uint8Array(readFileSync(path));
  mkdirSync(dirname(path), { recursive: true });
  const key = await newPeerKey();
  writeFileSync(path, key, { mode: 0o600 });
  return key;
}

/**
 * One account's view of the network: a chain connection and an index of it shared by its storage client and its
 * provenance calls (one connection per account, so its transactions queue behind each other instead of racing for
 * the same nonce), the storage client, and the provenance calls.
 */
export async function connectAs(
  deps: { host: Host; account: Account; codec: CodecPool; clock: Clock; random: Random },
  network: LoadedNetwork,
  role: string,
) {
  const info = network.file.chain;
  if (info === undefined) {
    throw new AilinkError(
      'NETWORK_FILE_INVALID',
      'federated tasks need a chain: start the network with `ailink dev`',
    );
  }
  const chain: ChainClient = await connectChain(info.endpoint);
  mkdirSync(join(network.dir, 'indexes'), { recursive: true });
  const indexer: Indexer = openIndexer(chain, {
    path: join(network.dir, 'indexes', `${deps.account.address}.${role}.sqlite`),
    config: parseProtocolConfig(info.protocol, `${network.dir}/network.json chain.protocol`),
  });
  await indexer.sync();
  const follow = await indexer.follow();
  const maxFragment = network.file.profile === 'production' ? 8 * MiB : MiB;
  const miners = createMinerClient(
    { host: deps.host, account: deps.account, clock: deps.clock, random: deps.random },
    { requestTimeoutMs: 30_000, signatureTtlMs: 60_000, maxFragmentSize: maxFragment },
  );
  const registry = createChainRegistry({ chain, indexer, account: deps.account, miners });
  const client = createStorageClient(
    { miners, registry, account: deps.account, codec: deps.codec, clock: deps.clock, random: deps.random },
    { profile: ROUND_OBJECT_PROFILE, fragmentDeadlineMs: 20_000 },
  );
  const market = createMarketClient({
    chain,
    indexer,
    account: deps.account,
    clock: deps.clock,
    storage: client,
  });
  const submit = async (call: ReturnType<typeof protocolCall>) => {
    await submitProtocol({ chain, indexer }, deps.account, [call], { deadlineMs: 60_000 });
  };
  return {
    indexer,
    chain,
    market,
    async get(fid: string, options: { signal?: AbortSignal } = {}) {
      const parts: Uint8Array[] = [];
      for await (const chunk of client.get(fid, options)) parts.push(chunk);
      return new Uint8Array(Buffer.concat(parts));
    },
    put: async (bytes: Uint8Array, name: string) => (await client.put(bytes, { name, encrypt: false })).fid,
    putFor: async (bytes: Uint8Array, reader: string, name: string) =>
      (await client.put(bytes, { name, readers: [reader] })).fid,
    /** A private model: encrypted, its key wrapped for this account and `readers` (X25519 keys, hex). */
    putModel: async (bytes: Uint8Array, name: string, readers: readonly string[]) =>
      (await client.put(bytes, { name, encrypt: true, readers: [...readers] })).fid,
    setTerms: async (fid: string, readers: readonly string[], price: string | null) =>
      void (await market.setTerms(fid, { readers, price: price === null ? null : BigInt(price) })),
    createTask: (task: string, spec: string, admitted: readonly string[]) =>
      submit(protocolCall('provenance.createTask', { task, spec, admitted: [...admitted] })),
    admit: (task: string, who: string, identityKey: string, signature: string) =>
      submit(protocolCall('provenance.admit', { task, account: who, identityKey, signature })),
    recordRound: (task: string, round: number, manifest: string, digest: string) =>
      submit(protocolCall('provenance.recordRound', { task, round, manifest, digest })),
    anchored: (task: string) =>
      roundsOf(indexer.state, task).map((r) => ({ round: r.round, manifest: r.manifest, digest: r.digest })),
    admitted: (task: string) =>
      participantsOf(indexer.state, task).map((p) => ({ account: p.account, identityKey: p.identityKey })),
    taskSpecDigest: (task: string) => taskOf(indexer.state, task)?.spec,
    async close() {
      await follow.stop();
      await registry.close(); // closes the index and the chain connection too
    },
  };
}

export interface CoordinatorNode {
  readonly url: string;
  readonly peer: PeerRef;
  readonly coordinator: ReturnType<typeof createCoordinator>;
  /** Reads a stored object as the coordinator (it may read updates encrypted for it, and public objects). */
  get(fid: string): Promise<Uint8Array>;
  /** Stores a public object as the coordinator's account (e.g. the model package of a task it is asked to run). */
  put(bytes: Uint8Array, name: string): Promise<string>;
  /** The task's rounds as the chain recorded them (this node's index of it). */
  anchored(task: string): { round: number; manifest: string; digest: string }[];
  stop(): Promise<void>;
}

/**
 * `ailink coordinator`: state in `<dir>/coordinator.sqlite`, its round-signing key and libp2p identity in `<dir>`,
 * so that a restart resumes every task under the same identity.
 */
export async function startCoordinatorNode(
  deps: { random: Random; clock?: Clock; pool: TrainingPool; codec: CodecPool },
  options: {
    network: LoadedNetwork;
    dir: string;
    account: Account;
    httpPort?: number;
    /** The coordinator's own test set, if it has one (organisations score every model on their held-out rows). */
    testData?: Examples;
    log: (line: string) => void;
  },
): Promise<CoordinatorNode> {
  const clock = deps.clock ?? systemClock;
  mkdirSync(options.dir, { recursive: true });
  const server = signingKeyPair(() => secretIn(join(options.dir, 'server.key'), deps.random));
  const host = await createHost({ privateKey: await peerKeyIn(join(options.dir, 'peer.key')) });
  const net = await connectAs(
    { host, account: options.account, codec: deps.codec, clock, random: deps.random },
    options.network,
    'coordinator',
  );
  const store = openCoordinatorStore(join(options.dir, 'coordinator.sqlite'));
  const testData = options.testData;
  // Each task's model topology, read once from its stored package (the spec names it by digest).
  const refs = new Map<string, Promise<ModelRef>>();
  const modelRef = (spec: TaskSpec): Promise<ModelRef> => {
    let ref = refs.get(spec.model.digest);
    if (ref === undefined) {
      ref = net
        .get(spec.model.fid, { signal: AbortSignal.timeout(60_000) })
        .then((bytes) => ({ key: spec.model.digest, topology: decodeModelPackage(bytes).topology }));
      ref.catch(() => refs.delete(spec.model.digest));
      refs.set(spec.model.digest, ref);
    }
    return ref;
  };
  const coordinator = createCoordinator({
    account: options.account,
    serverKey: server.privateKey,
    serverPublicKey: toHex(server.publicKey),
    store,
    objects: { put: net.put, putModel: net.putModel, get: (fid, o) => net.get(fid, o) },
    ledger: net,
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
  await host.handle(
    ROUND_PROTOCOL,
    async (channel) => {
      try {
        const frame = await channel.readFrame(MAX_ROUND_MESSAGE, {
          signal: AbortSignal.timeout(REQUEST_DEADLINE_MS),
        });
        let body: unknown;
        try {
          body = JSON.parse(new TextDecoder().decode(frame));
        } catch {
          body = undefined;
        }
        const reply = await coordinator.handle(body);
        await channel.writeFrame(new TextEncoder().encode(JSON.stringify(reply)));
        await channel.closeWrite();
      } catch (err) {
        channel.abort(err as Error);
      }
    },
    { maxInboundStreams: 256 },
  );
  const peer = { peerId: host.peerId, addrs: host.addrs() };
  const app = buildApp({
    coordinator,
    // The explorer's badges: this node's own index of the chain and reads from the miners (`ailink audit verify` is
    // the same check from an auditor's own connection, for those who do not trust this node).
    audit: async (task, round) => {
      await net.indexer.sync();
      return auditTask(
        { state: net.indexer.state, atBlock: net.indexer.height(), fetch: (fid, o) => net.get(fid, o) },
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
  await app.listen({ host: '127.0.0.1', port: options.httpPort ?? 0 });
  const address = app.server.address();
  const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : options.httpPort}`;
  coordinator.start();
  // The key service for the task's private models: releases a model's key to accepted (listed or paid) requests.
  const grants = createGrantService({
    chain: net.chain,
    indexer: net.indexer,
    account: options.account,
    clock,
  }).start((pass) => {
    for (const g of pass.granted)
      options.log(`released the key of ${g.fid.slice(0, 12)}… to ${g.reader.slice(0, 8)}…`);
    for (const f of pass.failed)
      options.log(`could not release ${f.fid.slice(0, 12)}… to ${f.reader.slice(0, 8)}…: ${f.reason}`);
  });
  return {
    url,
    peer,
    coordinator,
    get: (fid) => net.get(fid),
    put: (bytes, name) => net.put(bytes, name),
    anchored: (task) => net.anchored(task),
    async stop() {
      await grants.stop();
      await coordinator.stop();
      await app.close();
      await host.stop();
      await net.close();
      store.close();
    },
  };
}

async function http<T>(url: string, init?: RequestInit, deadlineMs = REQUEST_DEADLINE_MS): Promise<T> {
  let res: Response;
  try {
    res = await fetch(url, { ...init, signal: AbortSignal.timeout(deadlineMs) });
  } catch (cause) {
    throw new AilinkError('TIMEOUT', `no answer from ${url}: ${(cause as Error).message}`, { cause });
  }
  const body = (await res.json().catch(() => ({}))) as { error?: { code: string; message: string } } & T;
  if (!res.ok) {
    const code = body.error?.code;
    throw new AilinkError(
      code === 'TASK_NOT_FOUND' || code === 'ROUND_NOT_ADMITTED' || code === 'AUTH_BAD_SIGNATURE'
        ? code
        : 'INVALID_INPUT',
      `${init?.method ?? 'GET'} ${url}: ${res.status} ${body.error?.message ?? ''}`,
    );
  }
  return body;
}

export interface ParticipantNode {
  readonly participant: Participant;
  run(signal: AbortSignal): Promise<void>;
  stop(): Promise<void>;
}

/** `ailink participant`: an organisation's node, with its own libp2p host, storage client and chain index. */
export async function startParticipantNode(
  deps: { random: Random; clock?: Clock; pool: TrainingPool; codec: CodecPool },
  options: {
    network: LoadedNetwork;
    coordinatorUrl: string;
    account: Account;
    /** Ed25519 key that signs this participant's round messages; keep it for the task's lifetime. */
    identityKey: Uint8Array;
    /** Reads this organisation's data against the task's schema (e.g. `loadLocalData`). */
    loadData: (spec: TaskSpec) => Promise<LocalData>;
    log: (line: string) => void;
  } & ParticipantOptions,
): Promise<ParticipantNode> {
  const clock = deps.clock ?? systemClock;
  const host = await createHost();
  const net = await connectAs(
    { host, account: options.account, codec: deps.codec, clock, random: deps.random },
    options.network,
    'participant',
  );
  // The coordinator's addresses come from its HTTP API, and are looked up again when a dial fails: a restarted
  // coordinator keeps its peer id but may listen on new ports.
  const info = await http<{ peerId: string; addrs: string[] }>(`${options.coordinatorUrl}/v1/info`);
  let coordinatorPeer: PeerRef = { peerId: info.peerId, addrs: info.addrs };
  await host.connect(coordinatorPeer).catch(() => {});
  const rediscover = async () => {
    const fresh = await http<{ peerId: string; addrs: string[] }>(`${options.coordinatorUrl}/v1/info`).catch(
      () => undefined,
    );
    if (fresh === undefined) return;
    coordinatorPeer = { peerId: fresh.peerId, addrs: fresh.addrs };
    await host.connect(coordinatorPeer).catch(() => {}); // rejoins the gossip mesh too
  };
  const participant = createParticipant(
    {
      account: options.account,
      identityKey: options.identityKey,
      link: {
        task: (id) => http<{ spec: TaskSpec; digest: string }>(`${options.coordinatorUrl}/v1/tasks/${id}`),
        join: async (task, request) => {
          await http(
            `${options.coordinatorUrl}/v1/tasks/${task}/join`,
            {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify({ ...request, peer: { peerId: host.peerId, addrs: host.addrs() } }),
            },
            // Joining waits for the admission to be recorded on chain, behind the other organisations' admissions.
            JOIN_DEADLINE_MS,
          );
        },
        async request(body, { signal }) {
          let channel: Awaited<ReturnType<Host['open']>>;
          try {
            channel = await host.open(coordinatorPeer, ROUND_PROTOCOL, { signal });
          } catch (err) {
            await rediscover();
            throw err;
          }
          try {
            await channel.writeFrame(new TextEncoder().encode(JSON.stringify(body)), { signal });
            const frame = await channel.readFrame(MAX_ROUND_MESSAGE, { signal });
            return JSON.parse(new TextDecoder().decode(frame));
          } finally {
            channel.abort(new Error('done'));
          }
        },
        subscribe(topic, handler) {
          return host.subscribe(
            topic,
            (m) => {
              try {
                handler(JSON.parse(new TextDecoder().decode(m.data)));
              } catch {
                // not JSON: ignored (and the validator below already refused anything not from the coordinator)
              }
            },
            { validate: (_data, from) => from === coordinatorPeer.peerId },
          );
        },
      },
      chain: {
        taskSpecDigest: async (task) => {
          await net.indexer.sync();
          return net.taskSpecDigest(task);
        },
        anchored: async (task) => {
          await net.indexer.sync();
          return net.anchored(task);
        },
      },
      objects: { get: (fid, o) => net.get(fid, o), putFor: net.putFor },
      trainer: {
        async train(job) {
          const r = await deps.pool.train(job);
          return { weights: r.weights, loss: r.loss, examples: r.examples, seconds: r.seconds };
        },
        async evaluate(job) {
          const r = await deps.pool.evaluate(job);
          return { examples: r.examples, correct: r.correct, lossSum: r.lossSum };
        },
      },
      loadData: options.loadData,
      clock,
      random: deps.random,
      log: options.log,
    },
    options,
  );
  return {
    participant,
    run: (signal) => participant.run(signal),
    async stop() {
      await host.stop();
      await net.close();
    },
  };
}
