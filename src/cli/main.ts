import { createHash } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { createReadStream, createWriteStream, existsSync, readFileSync, statSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { finished } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { encodeModelPackage, readModelJson } from '../../models/index.ts';
import { startDevChain } from '../chain/index.ts';
import {
  openSession,
  ROUND_OBJECT_PROFILE,
  readProtocolConfig,
  secretIn,
  startCoordinatorNode,
  startDevNetwork,
  startParticipantNode,
  tcpMultiaddr,
  withConfigFile,
} from '../node/index.ts';
import { loadDataSpec, parseDataSpec } from '../participant/dataset.ts';
import { loadLocalData } from '../participant/local-data.ts';
import { createTrainingPool } from '../participant/train-pool.ts';
import { createKeyFile, isAddress } from '../shared/account.ts';
import { systemClock, systemRandom } from '../shared/clock.ts';
import { AilinkError, hasCode } from '../shared/errors.ts';
import {
  chunks,
  createCodecPool,
  encodeSegment,
  fidOf,
  PRODUCTION_PROFILE,
  type ProgressEvent,
  type StorageProfile,
  startMinerNode,
  startVerifierNode,
  storedSegment,
  TEST_PROFILE,
} from '../storage/index.ts';
import { auditCommand, modelCommand } from './audit.ts';
import { runStorageDemo } from './demo.ts';
import type { DemoSource } from './demo-data.ts';
import { createHumanOutput } from './demo-output.ts';
import { describeRound } from './fl.ts';
import { runFederatedDemo } from './fl-demo.ts';
import { modelAccessLogCommand, objectCommand } from './market.ts';
import { NETWORK_OPTIONS, type NetworkValues, networkAndKey } from './network-flags.ts';
import { taskCommand } from './task.ts';

/**
 * The `ailink` command. The only place that reads argv and the environment; every subcommand composes the modules
 * with real dependencies (system clock, crypto randomness) and prints human text, or JSON with --json.
 */
const USAGE = `ailink — federated learning on decentralized storage

  ailink keys new --out FILE                      create an account (sr25519 + X25519), mode 0600
  ailink dev [--miners 12] [--data-dir ./ailink-data] [--profile production|test] [--allow ADDRESS]...
             [--host ADDR]                        run a local network until Ctrl-C, every process bound to ADDR
                                                  (default 127.0.0.1); writes <data-dir>/network.json
  ailink chain [--port 9944] [--host 127.0.0.1] [--data-dir ./ailink-data/chain]
                                                  run the dev chain until Ctrl-C; its blocks persist
  ailink miner --data-dir DIR [--listen MULTIADDR] [--announce MULTIADDR] --allow ADDRESS... [--capacity BYTES]
               [--max-fragment BYTES] [--chain WS [--collateral PLANCKS] [--protocol FILE] [--idle-space BYTES]]
                                                  a storage miner; on a chain it registers, proves and repairs
  ailink verifier --data-dir DIR --chain WS [--protocol FILE] [--listen MULTIADDR] [--announce MULTIADDR]
                                                  the verifier (TEE role): tags fragments, checks storage proofs
  ailink store hash FILE [--json] [--profile production|test]
                                                  fid, segment and fragment hashes of FILE stored unencrypted (offline)
  ailink store put FILE [--to READER_KEY]... [--plain] [--name NAME]     prints the fid
  ailink store get FID --out FILE
  ailink store info FID [--json]
  ailink store ls [--json]
  ailink store repair FID
  ailink coordinator [--data-dir DIR] [--listen ADDR] [--announce HOST] [--http-port 8700] [--p2p-port 8701]
                     [--test-data SPEC] [--create-task FILE.json]
                                                  tasks and rounds: HTTP API (OpenAPI at /openapi.json), libp2p round
                                                  traffic, state in DIR/coordinator.sqlite (resumes after a restart);
                                                  both listen on ADDR (default 127.0.0.1), announced as HOST
  ailink participant --chain WS --task ID --key FILE --data SPEC [--coordinator URL]
                                                  join a task and train on local data until its last round (the
                                                  coordinator is found through the task's record on chain); SPEC is
                                                  <source>[:<partition>][@seed], e.g. fashion-mnist:dirichlet:0.5:3/10,
                                                  csv:FILE or images:DIR
  ailink task list | show ID [--json]             tasks as the chain records them: who may join, endpoint, rounds
  ailink task admit ID ADDRESS… | remove ID ADDRESS… | stop ID
                                                  the owner (--key) changes who may join, or ends the task, on chain
  ailink demo [--participants 10] [--rounds 6] [--model mlp|cnn] [--alpha 0.5] [--epochs 1] [--secagg on|off]
              [--dropout on|off] [--data small|full] [--data-dir DIR] [--json]
  ailink demo --data csv:FILE --label COLUMN [--model PATH/model.json] [--participants N] [--alpha A] …
  ailink demo --data images:DIR --model PATH/model.json [--participants N] [--alpha A] …
              [--dp-noise Z [--dp-clip 1] [--dp-epsilon 10] [--dp-delta 1e-5]]
                                                  federated training end to end on loopback: chain, 12 miners,
                                                  verifier, coordinator, organisations with SecAgg and a dropout
  ailink demo storage [--data-dir DIR]            the storage network end to end, on loopback
  ailink audit verify --task ID [--round N] [--max-price PLANCK] [--json]
                                                  check a task's lineage against the chain: manifests, parents,
                                                  models, commitments, admissions, settings, miners; exit 0 only if
                                                  every check holds, else each finding and where it broke
  ailink audit report --task ID [--round N] [--max-price PLANCK] [--format html|md|json] [--out FILE]
                                                  the model card: lineage, participants, settings, privacy budget
  ailink model pull --task ID [--round N] --out DIR [--max-price PLANCK] [--json]
                                                  download a global model, verify it and its lineage against the
                                                  chain, write model.json + weights.bin (TensorFlow.js)
  ailink model access-log --fid FID [--json]       every retrieval of FID recorded on chain: reader, block, paid
  ailink object terms FID [--readers ADDR,...] [--price PLANCK]
                                                  the owner sets who reads FID free and what others pay per request
  ailink object request FID [--max-price PLANCK] [--out FILE]
                                                  ask for FID's key (paying the owner in the same extrinsic), read it
  ailink object serve-keys                        the owner's key service: release keys to accepted requests

Commands that reach the network take --chain ws://HOST:PORT [--protocol FILE] [--state-dir DIR] (indexes and keys
in DIR, default ./ailink-data), or --network FILE (default ./ailink-data/network.json, written by \`ailink dev\`);
and --key FILE (default: the network file's operator key). The long-running roles (coordinator, participant, miner,
verifier) also take --config FILE: a JSON object of their flags, which flags on the command line override.
Exit codes: 0 ok, 1 failed (the error code is printed), 2 bad usage.`;

const MiB = 1024 * 1024;

function usageError(message: string): never {
  throw new AilinkError('INVALID_INPUT', `${message}\n\n${USAGE}`);
}

function positiveInt(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0)
    usageError(`--${name}: expected a positive integer, got ${JSON.stringify(value)}`);
  return n;
}

function nonNegativeInt(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n))
    usageError(`--${name}: expected a whole number ≥ 0, got ${JSON.stringify(value)}`);
  return n;
}

function portNumber(value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 65_535)
    usageError(`--port: expected 0 (any free port) to 65535, got ${JSON.stringify(value)}`);
  return n;
}

/** An IPv6 address goes in brackets in a URL. */
const hostInUrl = (host: string) => (host.includes(':') ? `[${host}]` : host);

function profileNamed(name: string | undefined): StorageProfile {
  if (name === undefined || name === 'production') return PRODUCTION_PROFILE;
  if (name === 'test') return TEST_PROFILE;
  return usageError(`--profile: expected production or test, got ${JSON.stringify(name)}`);
}

const progressLine = (e: ProgressEvent): string => {
  switch (e.kind) {
    case 'segment-stored':
      return `segment ${e.segment} stored (${(e.bytes / MiB).toFixed(1)} MiB)`;
    case 'segment-read':
      return `segment ${e.segment} read (${(e.bytes / MiB).toFixed(1)} MiB)`;
    case 'column-moved':
      return `column ${e.column} moved ${e.from} → ${e.to} (${e.reason})`;
    case 'column-repaired':
      return `column ${e.column} repaired: ${e.from} → ${e.to}`;
  }
};

/** A storage session as `--key` on the network the flags name (objects in the network's own profile). */
async function openClient(values: NetworkValues) {
  const { session: config, account } = await networkAndKey(values);
  const session = await openSession(config, account, 'client', { clock: systemClock, random: systemRandom });
  return { client: session.storage, account, registry: session.registry, close: () => session.close() };
}

async function keys(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { out: { type: 'string' } },
    allowPositionals: true,
  });
  if (positionals[0] !== 'new' || !values.out) usageError('expected `ailink keys new --out FILE`');
  const account = await createKeyFile(values.out, systemRandom);
  console.log(
    JSON.stringify(
      { file: resolve(values.out), address: account.address, readerKey: account.readerKey },
      null,
      2,
    ),
  );
}

async function miner(argv: string[]): Promise<void> {
  const { values: flags } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string' },
      'data-dir': { type: 'string' },
      listen: { type: 'string', multiple: true },
      announce: { type: 'string', multiple: true },
      allow: { type: 'string', multiple: true },
      capacity: { type: 'string' },
      'max-fragment': { type: 'string' },
      chain: { type: 'string' },
      collateral: { type: 'string' },
      protocol: { type: 'string' },
      'idle-space': { type: 'string' },
    },
  });
  const values = withConfigFile('miner', flags.config, flags);
  if (!values['data-dir']) usageError('miner: --data-dir DIR is required');
  const protocol = readProtocolConfig(values.protocol);
  const allow = values.allow ?? [];
  for (const a of allow)
    if (!isAddress(a)) usageError(`--allow: expected an SS58 address, got ${JSON.stringify(a)}`);
  const node = await startMinerNode(
    { clock: systemClock, random: systemRandom, log: jsonLog },
    {
      dataDir: values['data-dir'],
      listen: values.listen ?? ['/ip4/127.0.0.1/tcp/0'],
      ...(values.announce === undefined ? {} : { announce: values.announce }),
      allow,
      capacity: positiveInt(values.capacity, 'capacity', 64 * 1024 * MiB),
      maxFragmentSize: positiveInt(values['max-fragment'], 'max-fragment', 8 * MiB),
      maxSignatureTtlMs: 5 * 60_000,
      requestDeadlineMs: 120_000,
      ...(values.chain === undefined
        ? {}
        : {
            chain: {
              endpoint: values.chain,
              config: protocol,
              collateral: BigInt(
                positiveInt(values.collateral, 'collateral', Number(protocol.minCollateral)),
              ),
              idleSpace: nonNegativeInt(values['idle-space'], 'idle-space', 0),
            },
          }),
    },
  );
  process.stdout.write(
    `${JSON.stringify({ event: 'ready', peerId: node.peerId, addrs: node.addrs(), account: node.account, chain: node.registration })}\n`,
  );
  await untilSignal();
  await node.stop();
}

/** Structured log lines on stderr: one JSON object per event. */
const jsonLog = (() => {
  const line =
    (level: string) =>
    (event: string, fields: Record<string, unknown> = {}) =>
      process.stderr.write(`${JSON.stringify({ t: new Date().toISOString(), level, event, ...fields })}\n`);
  return { info: line('info'), warn: line('warn') };
})();

/** The verifier (TEE-worker role): registers in teeWorker, tags fragments and checks proofs until a signal. */
async function verifier(argv: string[]): Promise<void> {
  const { values: flags } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string' },
      'data-dir': { type: 'string' },
      listen: { type: 'string', multiple: true },
      announce: { type: 'string', multiple: true },
      chain: { type: 'string' },
      protocol: { type: 'string' },
      'max-fragment': { type: 'string' },
    },
  });
  const values = withConfigFile('verifier', flags.config, flags);
  if (!values['data-dir']) usageError('verifier: --data-dir DIR is required');
  if (!values.chain) usageError('verifier: --chain ENDPOINT is required (a verifier registers on chain)');
  const node = await startVerifierNode(
    { clock: systemClock, random: systemRandom, log: jsonLog },
    {
      dataDir: values['data-dir'],
      listen: values.listen ?? ['/ip4/127.0.0.1/tcp/0'],
      ...(values.announce === undefined ? {} : { announce: values.announce }),
      chain: { endpoint: values.chain, config: readProtocolConfig(values.protocol) },
      maxFragmentSize: positiveInt(values['max-fragment'], 'max-fragment', 8 * MiB),
      maxSignatureTtlMs: 5 * 60_000,
      requestDeadlineMs: 120_000,
    },
  );
  process.stdout.write(
    `${JSON.stringify({ event: 'ready', peerId: node.peerId, addrs: node.addrs(), account: node.account, keyId: node.keyId, chain: node.registration })}\n`,
  );
  await untilSignal();
  await node.stop();
}

function untilSignal(): Promise<void> {
  return new Promise((res) => {
    process.once('SIGINT', () => res());
    process.once('SIGTERM', () => res());
  });
}

/** The dev chain on its own: one JSON ready line on stdout, then blocks until a signal, then a clean close. */
async function chain(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { port: { type: 'string' }, host: { type: 'string' }, 'data-dir': { type: 'string' } },
  });
  const port = portNumber(values.port, 9944);
  // Listen first: a signal during the start-up still ends in a clean close rather than a killed write.
  const stopped = untilSignal();
  const devChain = await startDevChain({
    port,
    ...(values.host === undefined ? {} : { host: values.host }),
    dataDir: values['data-dir'] ?? './ailink-data/chain',
  });
  process.stdout.write(
    `${JSON.stringify({ event: 'ready', endpoint: devChain.endpoint, height: devChain.startHeight, resumed: devChain.resumed })}\n`,
  );
  await stopped;
  // Waits for the block being built and its write to the data dir.
  await devChain.close();
}

async function dev(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      miners: { type: 'string' },
      'data-dir': { type: 'string' },
      profile: { type: 'string' },
      allow: { type: 'string', multiple: true },
      host: { type: 'string' },
    },
  });
  const count = positiveInt(values.miners, 'miners', 12);
  const profile =
    values.profile === 'test'
      ? 'test'
      : values.profile === undefined
        ? 'production'
        : usageError('--profile: production or test');
  const dataDir = values['data-dir'] ?? './ailink-data';
  console.error(`starting the dev chain, a verifier and ${count} miners in ${resolve(dataDir)} …`);
  const network = await startDevNetwork(
    { random: systemRandom },
    {
      dataDir,
      miners: count,
      profile,
      allow: values.allow ?? [],
      ...(values.host === undefined ? {} : { host: values.host }),
    },
  );
  for (const m of [...network.miners, ...(network.verifier ? [network.verifier] : [])]) {
    console.error(`  ${m.name}  pid ${m.pid}  ${m.addrs[0]}`);
  }
  console.error(
    `chain: ${network.chainEndpoint}\nnetwork ready: ${network.path}\noperator key: ${network.operatorKeyPath}\nCtrl-C stops every process.`,
  );
  await untilSignal();
  console.error('stopping …');
  await network.stop();
}

async function storeHash(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { json: { type: 'boolean' }, profile: { type: 'string' } },
    allowPositionals: true,
  });
  const file = positionals[0] ?? usageError('store hash: expected a FILE');
  if (!existsSync(file)) throw new AilinkError('INVALID_INPUT', `store hash: no such file: ${file}`);
  const profile = profileNamed(values.profile);
  const segments: { hash: string; fragments: string[] }[] = [];
  let size = 0;
  let index = 0;
  for await (const { bytes, last } of chunks(
    createReadStream(file, { highWaterMark: MiB }),
    profile.segmentSize,
  )) {
    size += bytes.byteLength;
    const e = encodeSegment(
      profile,
      storedSegment(profile, bytes, { index: index++, last, key: null }).stored,
    );
    segments.push({ hash: e.hash, fragments: e.fragmentHashes });
  }
  const out = { fid: fidOf(segments.map((s) => s.hash)), size, profile, segments };
  if (values.json) console.log(JSON.stringify(out, null, 2));
  else {
    console.log(
      `fid ${out.fid}\nsize ${size} bytes, ${segments.length} segment(s) of ${profile.segmentSize} bytes`,
    );
    segments.forEach((s, i) => {
      console.log(`segment ${i} ${s.hash}`);
      for (const [c, f] of s.fragments.entries()) console.log(`  fragment ${String(c).padStart(2)} ${f}`);
    });
  }
}

async function store(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub === 'hash') return storeHash(rest);
  const { values, positionals } = parseArgs({
    args: rest,
    options: {
      ...NETWORK_OPTIONS,
      json: { type: 'boolean' },
      to: { type: 'string', multiple: true },
      plain: { type: 'boolean' },
      name: { type: 'string' },
      out: { type: 'string' },
    },
    allowPositionals: true,
  });
  if (sub === 'ls') {
    const list = await listObjects(values);
    if (values.json) console.log(JSON.stringify(list, null, 2));
    else
      for (const o of list)
        console.log(
          `${o.fid}  ${String(o.size).padStart(12)}  ${o.encrypted ? 'enc  ' : 'plain'}  ${o.name ?? ''}`,
        );
    return;
  }
  // Arguments first: a usage error must not need a running network.
  if (!['put', 'get', 'info', 'repair'].includes(sub ?? ''))
    usageError(`unknown store command ${JSON.stringify(sub)}`);
  const target = positionals[0] ?? usageError(`store ${sub}: expected a ${sub === 'put' ? 'FILE' : 'FID'}`);
  if (sub === 'put' && !existsSync(target))
    throw new AilinkError('INVALID_INPUT', `store put: no such file: ${target}`);
  if (sub === 'get' && !values.out) usageError('store get: --out FILE is required');
  const { client, close } = await openClient(values);
  const progress = (e: ProgressEvent) => console.error(progressLine(e));
  try {
    switch (sub) {
      case 'put': {
        const file = target;
        const started = performance.now();
        const result = await client.put(createReadStream(file, { highWaterMark: MiB }), {
          name: values.name ?? file.split('/').pop()!,
          encrypt: !values.plain,
          readers: values.to ?? [],
          onProgress: progress,
        });
        const secs = (performance.now() - started) / 1000;
        console.error(
          `stored ${result.record.size} bytes in ${secs.toFixed(2)} s on ${result.miners.length} miners`,
        );
        console.log(values.json ? JSON.stringify({ fid: result.fid, miners: result.miners }) : result.fid);
        break;
      }
      case 'get': {
        const outPath = values.out!;
        const tmp = `${outPath}.part`;
        const hash = createHash('sha256');
        const out = createWriteStream(tmp);
        try {
          for await (const bytes of client.get(target, { onProgress: progress })) {
            hash.update(bytes);
            if (!out.write(bytes)) await new Promise<void>((r) => out.once('drain', () => r()));
          }
          out.end();
          await finished(out);
          await rename(tmp, outPath);
        } catch (err) {
          // The stream opens its file asynchronously: close it first, or the file may appear after we removed it.
          out.destroy();
          await finished(out).catch(() => {});
          await rm(tmp, { force: true });
          throw err;
        }
        console.error(`wrote ${statSync(outPath).size} bytes to ${outPath} (sha256 ${hash.digest('hex')})`);
        break;
      }
      case 'info': {
        const fid = target;
        const { record, miners, chain } = await client.info(fid);
        const info = {
          fid,
          name: record.name,
          owner: record.owner,
          size: record.size,
          // Without a chain, the local registry records only fully placed objects.
          state: chain?.state ?? 'Active',
          ...(chain === undefined
            ? {}
            : {
                declaredAt: chain.declaredAt,
                activeAt: chain.activeAt,
                restoralOrders: chain.restoralOrders,
              }),
          encrypted: record.encryption !== null,
          readers: record.encryption?.wraps.map((w) => w.recipient) ?? [],
          profile: record.profile,
          placements: miners.map((miner, column) => ({
            column,
            miner,
            ...(chain === undefined ? {} : { account: chain.accounts[column] }),
          })),
          segments: record.segments,
        };
        if (values.json) console.log(JSON.stringify(info, null, 2));
        else {
          console.log(
            `${fid}  ${record.name ?? ''}\n${record.size} bytes, ${record.segments.length} segment(s), ${info.encrypted ? 'encrypted' : 'plain'}, ${info.state}`,
          );
          for (const p of info.placements)
            console.log(`  column ${String(p.column).padStart(2)} → ${p.miner}`);
        }
        break;
      }
      case 'repair': {
        const fid = target;
        const report = await client.repair(fid, { onProgress: progress });
        console.error(
          report.repaired.length === 0
            ? 'all 12 columns are healthy'
            : `repaired ${report.repaired.length} column(s)`,
        );
        console.log(JSON.stringify(report, null, 2));
        break;
      }
    }
  } finally {
    await close();
  }
}

async function listObjects(values: NetworkValues) {
  const { registry, close } = await openClient(values);
  try {
    return await registry.list();
  } finally {
    await close();
  }
}

/**
 * `--data`: full | small (Fashion-MNIST, with `--model mlp|cnn`), `csv:FILE` (with `--label COLUMN`, and optionally
 * `--model PATH/model.json`), or `images:DIR` (with `--model PATH/model.json`).
 */
function demoSourceOf(data: string, model: string | undefined, label: string | undefined): DemoSource {
  if (data === 'full' || data === 'small') {
    const name = model ?? 'mlp';
    if (name !== 'mlp' && name !== 'cnn')
      usageError(`--model: Fashion-MNIST trains the built-in mlp or cnn, got ${JSON.stringify(name)}`);
    if (label !== undefined) usageError('--label goes with --data csv:FILE');
    return { kind: 'fashion-mnist', small: data === 'small', model: name };
  }
  if (data.startsWith('csv:')) {
    if (label === undefined) usageError('--data csv:FILE needs --label COLUMN (the column to predict)');
    return { kind: 'csv', file: data.slice(4), label, ...(model === undefined ? {} : { model }) };
  }
  if (data.startsWith('images:')) {
    if (model === undefined)
      usageError('--data images:DIR needs --model PATH/model.json (it sets the image size)');
    return { kind: 'images', dir: data.slice(7), model };
  }
  return usageError(`--data: expected full, small, csv:FILE or images:DIR, got ${JSON.stringify(data)}`);
}

async function demo(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      'data-dir': { type: 'string' },
      participants: { type: 'string' },
      rounds: { type: 'string' },
      model: { type: 'string' },
      alpha: { type: 'string' },
      epochs: { type: 'string' },
      secagg: { type: 'string' },
      dropout: { type: 'string' },
      data: { type: 'string' },
      label: { type: 'string' },
      json: { type: 'boolean' },
      'dp-noise': { type: 'string' },
      'dp-clip': { type: 'string' },
      'dp-epsilon': { type: 'string' },
      'dp-delta': { type: 'string' },
    },
    allowPositionals: true,
  });
  if (positionals[0] === 'storage') return runStorageDemo({ dataDir: values['data-dir'] });
  if (positionals.length > 0) usageError(`unknown demo ${JSON.stringify(positionals[0])}`);
  const onOff = (v: string | undefined, name: string) => {
    if (v === undefined || v === 'on') return true;
    if (v === 'off') return false;
    return usageError(`--${name}: expected on or off, got ${JSON.stringify(v)}`);
  };
  const source = demoSourceOf(values.data ?? 'full', values.model, values.label);
  // Fashion-MNIST's demo is label-skewed by default (the README's figures); a person's own data is split IID
  // unless they ask for skew.
  const alphaFlag = values.alpha ?? (source.kind === 'fashion-mnist' ? '0.5' : undefined);
  const alpha = alphaFlag === undefined ? null : Number(alphaFlag);
  if (alpha !== null && (!(alpha > 0) || !Number.isFinite(alpha)))
    usageError(`--alpha: expected a number > 0, got ${values.alpha}`);
  const participants = positiveInt(values.participants, 'participants', 10);
  if (participants < 3) usageError('--participants: secure aggregation needs at least 3');
  const json = values.json ?? false;
  const positive = (v: string | undefined, name: string, fallback: number) => {
    const n = Number(v ?? fallback);
    if (!(n > 0) || !Number.isFinite(n)) usageError(`--${name}: expected a number > 0, got ${v}`);
    return n;
  };
  const dpFlags = ['dp-clip', 'dp-epsilon', 'dp-delta'] as const;
  if (values['dp-noise'] === undefined && dpFlags.some((f) => values[f] !== undefined))
    usageError(
      '--dp-clip, --dp-epsilon and --dp-delta need --dp-noise Z (the noise multiplier) to turn DP on',
    );
  const dp =
    values['dp-noise'] === undefined
      ? undefined
      : {
          noiseMultiplier: positive(values['dp-noise'], 'dp-noise', 1),
          clipNorm: positive(values['dp-clip'], 'dp-clip', 1),
          epsilonBudget: positive(values['dp-epsilon'], 'dp-epsilon', 10),
          delta: positive(values['dp-delta'], 'dp-delta', 1e-5),
        };
  // Everything for a person goes to one stream, in order (stderr under --json, whose stdout is the JSON line alone):
  // a live line redrawn in place when that stream is a terminal, plain lines when it is a file or a pipe.
  const human = createHumanOutput(json ? process.stderr : process.stdout);
  const result = await runFederatedDemo(
    { random: systemRandom },
    {
      dataDir: values['data-dir'],
      participants,
      rounds: positiveInt(values.rounds, 'rounds', source.kind === 'fashion-mnist' ? 6 : 10),
      alpha,
      ...(values.epochs === undefined ? {} : { epochs: positiveInt(values.epochs, 'epochs', 1) }),
      secagg: onOff(values.secagg, 'secagg'),
      // The last organisation goes silent in round 1's first attempt. From 5 organisations on, SecAgg+ (k = 4,
      // t = 3) finishes the round without it; with 4 or 3 (k = t = 2) its neighbours fall under the threshold, the
      // attempt aborts, and the next one goes on without it (4) or with it back (3: a round needs 3 survivors).
      drops: onOff(values.dropout, 'dropout')
        ? [{ participant: participants - 1, round: 1, stage: 'masked', attempt: 0 }]
        : [],
      source,
      ...(dp === undefined ? {} : { dp }),
      say: human.say,
      progress: human.live,
    },
  );
  if (json) console.log(JSON.stringify(result));
  if (!result.lineage_verified) process.exitCode = 1;
}

async function coordinatorCommand(argv: string[]): Promise<void> {
  const { values: flags } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string' },
      ...NETWORK_OPTIONS,
      'data-dir': { type: 'string' },
      listen: { type: 'string' },
      announce: { type: 'string' },
      'http-port': { type: 'string' },
      'p2p-port': { type: 'string' },
      'test-data': { type: 'string' },
      'create-task': { type: 'string' },
    },
  });
  const values = withConfigFile('coordinator', flags.config, flags);
  const { session, account } = await networkAndKey(values, ROUND_OBJECT_PROFILE);
  // Bound to --listen (an address of this host; default loopback), reached at --announce (default: the same).
  const bind = values.listen ?? '127.0.0.1';
  const announce = values.announce ?? bind;
  const httpPort = portNumber(values['http-port'], 8700);
  const p2pPort = portNumber(values['p2p-port'], 8701);
  // Optional: organisations score every model on their held-out rows; a test set of the coordinator's own adds a figure.
  const testData =
    values['test-data'] === undefined
      ? undefined
      : (await loadDataSpec(parseDataSpec(values['test-data']))).test;
  const pool = createTrainingPool();
  const codec = createCodecPool();
  const stopped = untilSignal();
  const node = await startCoordinatorNode(
    { random: systemRandom, pool, codec },
    {
      session: {
        ...session,
        listen: [tcpMultiaddr(bind, p2pPort)],
        ...(values.announce === undefined ? {} : { announce: [tcpMultiaddr(announce, p2pPort)] }),
      },
      dir: values['data-dir'] ?? join(session.stateDir, 'coordinator'),
      account,
      http: {
        host: bind,
        port: httpPort,
        ...(values.announce === undefined ? {} : { announce: `http://${hostInUrl(announce)}:${httpPort}` }),
      },
      ...(testData === undefined ? {} : { testData }),
      log: (line) => console.error(line),
    },
  );
  // An aborted attempt is in the coordinator's own log line (with its reason): only results are printed here.
  node.coordinator.onEvent((e) => {
    if (e.kind !== 'outcome' || e.outcome.kind === 'aborted') return;
    const o = e.outcome;
    console.error(
      o.kind === 'done'
        ? `${e.task} round ${o.row.round}: ${describeRound(o.row)}, ${o.row.survivors}/${o.row.cohort} survivors, manifest ${o.row.manifestFid}`
        : `${e.task} federated statistics from ${o.row.survivors} organisations: preprocessing ${o.row.fid}`,
    );
  });
  if (values['create-task']) {
    const input = JSON.parse(readFileSync(values['create-task'], 'utf8'));
    // `model.path`: a model.json (beside the task file, or absolute) that this command stores as the task's package.
    if (typeof input?.model?.path === 'string') {
      const { path, ...rest } = input.model;
      const pkg = await readModelJson(resolve(dirname(values['create-task']), path));
      input.model = {
        ...rest,
        fid: await node.put(encodeModelPackage(pkg), `${basename(dirname(path))}.ailp`),
      };
    }
    const task = await node.coordinator.createTask(input);
    console.error(`task ${task.id} created (spec digest ${task.digest} on chain)`);
  }
  process.stdout.write(
    `${JSON.stringify({ event: 'ready', url: node.url, peerId: node.peer.peerId, account: account.address })}\n`,
  );
  await stopped;
  await node.stop();
  await pool.close();
  await codec.close();
}

async function participantCommand(argv: string[]): Promise<void> {
  const { values: flags } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string' },
      ...NETWORK_OPTIONS,
      coordinator: { type: 'string' },
      task: { type: 'string' },
      data: { type: 'string' },
    },
  });
  const values = withConfigFile('participant', flags.config, flags);
  if (!values.task || !values.key || !values.data)
    usageError('participant needs --task ID --key FILE --data SPEC, and --chain WS (or --network FILE)');
  const { session, account } = await networkAndKey(values, ROUND_OBJECT_PROFILE);
  const dataSpec = parseDataSpec(values.data);
  // The round-signing key is bound to the account on chain at admission: it must survive restarts of this process.
  const stateDir = join(session.stateDir, 'participants', account.address);
  const identityKey = secretIn(join(stateDir, `${values.task}.identity`), systemRandom);
  const pool = createTrainingPool();
  const codec = createCodecPool();
  const node = await startParticipantNode(
    { random: systemRandom, pool, codec },
    {
      session,
      // Default: where the task's record on chain says its coordinator is reached.
      ...(values.coordinator === undefined ? {} : { coordinatorUrl: values.coordinator }),
      account,
      identityKey,
      // Held-out rows are chosen per organisation and task, the same after a restart.
      loadData: (spec) => loadLocalData(dataSpec, spec.data, `${account.address}/${values.task}`),
      task: values.task,
      log: (line) => console.error(line),
    },
  );
  node.participant.onEvent((e) => console.error(JSON.stringify(e)));
  const controller = new AbortController();
  setMaxListeners(0, controller.signal); // every wait of the round protocol listens on it
  void untilSignal().then(() => controller.abort());
  try {
    await node.run(controller.signal);
  } finally {
    await node.stop();
    await pool.close();
    await codec.close();
  }
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'keys':
      return keys(rest);
    case 'miner':
      return miner(rest);
    case 'chain':
      return chain(rest);
    case 'verifier':
      return verifier(rest);
    case 'dev':
      return dev(rest);
    case 'store':
      return store(rest);
    case 'demo':
      return demo(rest);
    case 'coordinator':
      return coordinatorCommand(rest);
    case 'participant':
      return participantCommand(rest);
    case 'task':
      return taskCommand(rest);
    case 'audit':
      return auditCommand(rest);
    case 'model':
      return rest[0] === 'access-log' ? modelAccessLogCommand(rest.slice(1)) : modelCommand(rest);
    case 'object':
      return objectCommand(rest);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      console.log(USAGE);
      return;
    default:
      usageError(`unknown command ${JSON.stringify(command)}`);
  }
}

// `ailink … | head` closes our stdout early: that is the reader's choice, not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

try {
  await main(process.argv.slice(2));
  process.exit(0);
} catch (err) {
  if (hasCode(err)) {
    console.error(`error ${err.code}: ${err.message}`);
    process.exit(err.code === 'INVALID_INPUT' ? 2 : 1);
  }
  if ((err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
    console.error(`error INVALID_INPUT: ${(err as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
  console.error(err);
  process.exit(1);
}
