import { type ChildProcess, spawn } from 'node:child_process';
import { appendFileSync, closeSync, existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import {
  type ChainCall,
  connectChain,
  DEV_POT,
  DEV_PROTOCOL_CONFIG,
  DEV_VERIFIER_SEED,
  devSigner,
  type ProtocolConfig,
  protocolConfigToJson,
  ROC,
  spacePurchase,
  startDevChain,
} from '../chain/index.ts';
import { createKeyFile, loadKeyFile } from '../shared/account.ts';
import { fromHex } from '../shared/bytes.ts';
import type { Random } from '../shared/clock.ts';
import { AilinkError, describeError } from '../shared/errors.ts';
import { makePrivateDir } from '../shared/private-files.ts';
import { type NetworkFile, writeNetworkFile } from '../storage/client/index.ts';
import { tcpMultiaddr } from './network.ts';
import { type PayoutService, startPayoutService } from './payout-service.ts';

export const BIN = fileURLToPath(new URL('../../bin/ailink.mjs', import.meta.url));

/** A node process of the dev network (a miner or the verifier). */
export interface MinerProcess {
  readonly role: 'miner' | 'verifier';
  readonly name: string;
  readonly dataDir: string;
  peerId: string;
  addrs: string[];
  pid: number;
  running: boolean;
  /** Sends a signal (SIGKILL to crash it, SIGSTOP to make it stall). */
  signal(sig: NodeJS.Signals): void;
  /** Graceful stop (SIGTERM), resolved when the process has exited. */
  stop(): Promise<void>;
  /** Starts it again on the same data dir: same peer id, same fragments. */
  restart(): Promise<void>;
}

export interface DevNetwork {
  readonly path: string;
  /** The dev chain's WebSocket endpoint. */
  readonly chainEndpoint: string;
  readonly miners: MinerProcess[];
  /** The verifier (TEE role), unless started without one. */
  readonly verifier: MinerProcess | undefined;
  readonly protocol: ProtocolConfig;
  readonly operatorKeyPath: string;
  /**
   * The service that pays the pot's debts (escrowed prices, refunds, exiting miners' collateral) with the dev pot's
   * key (`DEV_POT`, //Ferdie). Undefined when `protocol` names a pot of its own.
   */
  readonly payouts: PayoutService | undefined;
  /** Rewrites network.json with the current pids and addresses. */
  save(): Promise<void>;
  stop(): Promise<void>;
}

export interface DevNetworkOptions {
  readonly dataDir: string;
  readonly miners: number;
  readonly profile: 'production' | 'test';
  /**
   * Extra accounts (SS58) that may store besides the network's operator: each is funded for fees and gets storage
   * space bought for it on chain (`storageHandler.buySpace`), which is what the miners check.
   */
  readonly allow?: readonly string[];
  /** How long each process may take to report ready (default 30 s + 4 s per miner, since they start at once). */
  readonly readyTimeoutMs?: number;
  /** Each start-up step as it begins, and each miner once registered: start-up takes ~30 s, too long to be silent. */
  readonly onProgress?: (p: DevNetworkProgress) => void;
  /** The dev chain's port (default: any free one). */
  readonly chainPort?: number;
  /**
   * A chain already running (`ailink chain`) to start the network on instead of one in this process: it then lives
   * and dies apart from the miners (a crash of one is not a crash of the other) and is left running on stop.
   * `chainPort` and `heartbeatMs` are that chain's business then.
   */
  readonly chainEndpoint?: string;
  /**
   * The address every process binds (default 127.0.0.1): the chain's WebSocket and each miner's and the verifier's
   * libp2p listener, e.g. this host's address on a network that other hosts reach.
   */
  readonly host?: string;
  /**
   * The protocol parameters (default: the dev ones, CESS's audit figures). The network's own verifier is added to
   * their verifier set; `DevNetwork.protocol` is the result, what every indexer of the network must use.
   */
  readonly protocol?: ProtocolConfig;
  /** Start a verifier (default true): miners then get their columns tagged and answer audit challenges. */
  readonly verifier?: boolean;
  /** Each miner's declared capacity in bytes, and how much of it to commit as idle files. */
  readonly minerCapacity?: number;
  readonly idleSpace?: number;
  /** How long miners keep a fragment nothing on chain places on them (default 10 minutes). */
  readonly collectGraceMs?: number;
  /** An empty block when none came for this long, so audit deadlines pass (default 3000 ms). */
  readonly heartbeatMs?: number;
}

/** How far `startDevNetwork` has got: the chain, funding the accounts, the verifier, then the miners one by one. */
export type DevNetworkProgress =
  | { readonly step: 'chain' }
  | { readonly step: 'funding'; readonly accounts: number }
  | { readonly step: 'verifier' }
  /** `ready` of `total` miners are up and registered on chain (a miner reports ready only after registering). */
  | { readonly step: 'miners'; readonly ready: number; readonly total: number };

/** What each miner and the operator get from Alice: fees and collateral for a long while. */
const DEV_FUNDING = 1000n * ROC;
/** Storage space bought for each account of a dev network that stores. */
const DEV_SPACE_GIB = 64;
/** A local network's miners collect unplaced fragments after 10 minutes (a real miner waits a day by default). */
const DEV_COLLECT_GRACE_MS = 10 * 60_000;

/**
 * Starts N real miner processes (on loopback unless `host` says otherwise) (each `ailink miner` with its own data dir), writes network.json, and
 * brings the same network back when started again on the same data dir.
 */
export async function startDevNetwork(
  deps: { random: Random },
  options: DevNetworkOptions,
): Promise<DevNetwork> {
  const dataDir = resolve(options.dataDir);
  makePrivateDir(join(dataDir, 'keys'));
  const operatorKeyPath = join(dataDir, 'keys', 'operator.json');
  const operator = existsSync(operatorKeyPath)
    ? await loadKeyFile(operatorKeyPath)
    : await createKeyFile(operatorKeyPath, deps.random);
  const storers = [operator.address, ...(options.allow ?? [])];
  const maxFragment = options.profile === 'production' ? 8 * 1024 * 1024 : 1024 * 1024;
  const path = join(dataDir, 'network.json');

  const protocolPath = join(dataDir, 'protocol.json');
  refuseOlderDataDir(dataDir, protocolPath, options.protocol === undefined ? DEV_POT : undefined);
  const verifierDir = join(dataDir, 'verifier');
  const withVerifier = options.verifier ?? true;
  // The verifier's account exists before the protocol is written: the network's verifier set names it.
  // On the dev parameters it is the well-known dev verifier (DEV_VERIFIER), so that clients given `--chain` alone
  // agree on the verifier set; a data dir made before keeps its own, which protocol.json then adds.
  const verifierAccount = withVerifier
    ? await accountIn(
        verifierDir,
        options.protocol === undefined ? () => fromHex(DEV_VERIFIER_SEED, 'DEV_VERIFIER_SEED') : deps.random,
      )
    : undefined;
  const base = options.protocol ?? DEV_PROTOCOL_CONFIG;
  const protocol: ProtocolConfig =
    verifierAccount === undefined || base.verifiers.includes(verifierAccount.address)
      ? base
      : { ...base, verifiers: [...base.verifiers, verifierAccount.address] };
  writeFileSync(protocolPath, `${JSON.stringify(protocolConfigToJson(protocol), null, 2)}\n`);
  const progress = options.onProgress ?? (() => {});
  progress({ step: 'chain' });
  const bind = options.host ?? '127.0.0.1';
  // A chain of its own in this process, or one already running elsewhere (`ailink chain`), which it leaves running.
  const chain =
    options.chainEndpoint === undefined
      ? await startDevChain({
          port: options.chainPort ?? 0,
          host: bind,
          dataDir: join(dataDir, 'chain'),
          heartbeatMs: options.heartbeatMs ?? 3000,
        })
      : { endpoint: options.chainEndpoint, close: async () => {} };
  const names = Array.from({ length: options.miners }, (_, i) => `miner-${String(i + 1).padStart(2, '0')}`);
  // Miner accounts exist before the miners start, so that one transaction funds them all.
  const minerAccounts = await Promise.all(
    names.map((name) => accountIn(join(dataDir, 'miners', name), deps.random)),
  );
  // The accounts the miners serve are the network's clients: they pay upload fees, so they are funded too.
  const funded = [
    ...storers,
    ...minerAccounts.map((a) => a.address),
    ...(verifierAccount === undefined ? [] : [verifierAccount.address]),
  ];
  progress({ step: 'funding', accounts: funded.length });
  await fundAccounts(chain.endpoint, funded, { storers, protocol });
  // The miners start at once, each loading its modules and indexing the chain: on a 2-core machine 20 of them took
  // ~60 s to all report ready (measured), so the deadline grows with how many start together.
  const readyTimeoutMs = options.readyTimeoutMs ?? 30_000 + 4_000 * names.length;
  const shared = ['--chain', chain.endpoint, '--protocol', protocolPath, '--listen', tcpMultiaddr(bind, 0)];
  const verifier = withVerifier
    ? spawnable(
        'verifier',
        'verifier',
        verifierDir,
        [...shared, '--max-fragment', String(maxFragment)],
        readyTimeoutMs,
      )
    : undefined;
  const minerArgs = [...shared, '--max-fragment', String(maxFragment)];
  if (options.minerCapacity !== undefined) minerArgs.push('--capacity', String(options.minerCapacity));
  if (options.idleSpace !== undefined) minerArgs.push('--idle-space', String(options.idleSpace));
  minerArgs.push(
    '--collect-grace',
    String(Math.round((options.collectGraceMs ?? DEV_COLLECT_GRACE_MS) / 1000)),
  );
  const miners = names.map((name) =>
    spawnable('miner', name, join(dataDir, 'miners', name), minerArgs, readyTimeoutMs),
  );
  const nodes = [...(verifier === undefined ? [] : [verifier]), ...miners];
  try {
    // The verifier first: miners look for it on chain to get their columns tagged.
    if (verifier !== undefined) {
      progress({ step: 'verifier' });
      await verifier.restart();
    }
    let ready = 0;
    progress({ step: 'miners', ready, total: miners.length });
    await Promise.all(
      miners.map(async (m) => {
        await m.restart();
        progress({ step: 'miners', ready: ++ready, total: miners.length });
      }),
    );
  } catch (err) {
    await Promise.all(nodes.map((m) => m.stop()));
    await chain.close();
    throw err;
  }
  const payoutLog = join(dataDir, 'pot', 'payouts.log');
  makePrivateDir(join(dataDir, 'pot'));
  // The pot is an account of its own, not the operator's: the rules flag any payment from it that no debt explains,
  // which the operator's everyday transfers would be.
  const payouts =
    protocol.pot === DEV_POT
      ? await startPayoutService({
          endpoint: chain.endpoint,
          protocol,
          pot: devSigner('Ferdie'),
          indexPath: join(dataDir, 'pot', 'index.sqlite'),
          onPaid: (debts, block) =>
            appendFileSync(payoutLog, `${new Date().toISOString()} paid ${debts} debts in block ${block}\n`),
          onError: (err) =>
            appendFileSync(payoutLog, `${new Date().toISOString()} payout failed: ${describeError(err)}\n`),
        }).catch(async (err: unknown) => {
          await Promise.all(nodes.map((m) => m.stop()));
          await chain.close();
          throw err;
        })
      : undefined;
  const network: DevNetwork = {
    path,
    chainEndpoint: chain.endpoint,
    miners,
    verifier,
    protocol,
    operatorKeyPath,
    payouts,
    async save() {
      const file: NetworkFile = {
        version: 1,
        profile: options.profile,
        chain: {
          endpoint: chain.endpoint,
          protocol: protocolConfigToJson(protocol),
        },
        operatorKey: relative(dataDir, operatorKeyPath),
        processes: nodes
          .filter((m) => m.running)
          .map((m) => ({
            role: m.role,
            name: m.name,
            pid: m.pid,
            peerId: m.peerId,
            addrs: m.addrs,
            dataDir: relative(dataDir, m.dataDir),
          })),
      };
      await writeNetworkFile(path, file);
    },
    async stop() {
      await payouts?.stop();
      await Promise.all(nodes.map((m) => m.stop()));
      await network.save(); // lists no processes now: clients are told plainly that nothing is running
      await chain.close();
    },
  };
  await network.save();
  return network;
}

/**
 * A data dir made by an older `ailink dev` cannot be resumed when the rules its chain was folded under changed: every
 * process's index would refuse to open under the new configuration, deep in a child process's log. Say so up front.
 * - Before the verifier set (issue 15): its protocol let any account register as a verifier.
 * - Before the pot paid out (its protocol names another pot than `expectedPot`, the dev pot): collateral and prices
 *   were paid to an account nobody holds, and its miners' registrations name that pot.
 * @throws INVALID_INPUT naming the data dir and what to do
 */
function refuseOlderDataDir(dataDir: string, protocolPath: string, expectedPot: string | undefined): void {
  if (!existsSync(protocolPath)) return;
  let written: unknown;
  try {
    written = JSON.parse(readFileSync(protocolPath, 'utf8'));
  } catch {
    return; // unreadable: rewritten below, as before
  }
  const older = (why: string, now: string) =>
    new AilinkError(
      'INVALID_INPUT',
      `${dataDir} was made by an older \`ailink dev\`, ${why}; its chain and indexes cannot be carried over to a network ${now}: start with another --data-dir, or remove ${dataDir}`,
    );
  if (typeof written === 'object' && written !== null && !('verifiers' in written)) {
    throw older('whose protocol let any account register as a verifier', 'with a fixed verifier set');
  }
  const pot = typeof written === 'object' && written !== null && 'pot' in written ? written.pot : undefined;
  if (expectedPot !== undefined && pot !== expectedPot) {
    throw older('whose pot nobody held a key to', 'whose pot pays out escrow and refunds');
  }
  // Only on the dev parameters (`expectedPot` set): a network started with its own protocol file keeps what it says.
  if (
    expectedPot !== undefined &&
    typeof written === 'object' &&
    written !== null &&
    !('placement' in written)
  ) {
    throw older('whose rules let an uploader choose its miners', 'whose rules draw them');
  }
}

/** Alice pays each account that holds less than half of `DEV_FUNDING`, in one batch. */
/**
 * Alice funds every account that has not been funded yet, and buys storage space for each new one that stores.
 * Space goes with the first funding: a restarted network buys none again (it would add up for nothing).
 */
async function fundAccounts(
  endpoint: string,
  addresses: readonly string[],
  space: { storers: readonly string[]; protocol: ProtocolConfig },
): Promise<void> {
  const chain = await connectChain(endpoint);
  try {
    const calls: ChainCall[] = [];
    for (const to of addresses) {
      if ((await chain.balance(to)) >= DEV_FUNDING / 2n) continue;
      calls.push({ kind: 'transfer', to, amount: DEV_FUNDING });
      if (space.storers.includes(to)) calls.push(...spacePurchase(space.protocol, DEV_SPACE_GIB, to));
    }
    if (calls.length > 0) await chain.submit(devSigner('Alice'), calls);
  } finally {
    await chain.close();
  }
}

async function accountIn(dir: string, random: Random) {
  makePrivateDir(dir);
  const file = join(dir, 'account.json');
  return existsSync(file) ? loadKeyFile(file) : createKeyFile(file, random);
}

/** How long a node process gets to stop after SIGTERM before its process group is SIGKILLed. */
const STOP_DEADLINE_MS = 5000;

/** Sends `sig` to the child's whole process group (it leads one: spawned detached); quiet if the group is gone. */
function signalGroup(proc: ChildProcess, sig: NodeJS.Signals): void {
  if (proc.pid === undefined) return;
  try {
    process.kill(-proc.pid, sig);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

/** `ailink <role> --data-dir DIR …args` as a child process that reports a JSON ready line. */
function spawnable(
  role: 'miner' | 'verifier',
  name: string,
  dataDir: string,
  args: readonly string[],
  readyTimeoutMs: number,
): MinerProcess {
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const m: MinerProcess = {
    role,
    name,
    dataDir,
    peerId: '',
    addrs: [],
    pid: 0,
    running: false,
    signal(sig) {
      if (child) signalGroup(child, sig);
    },
    async stop() {
      // Whether or not it ever reported ready: a child that missed its ready deadline is still running.
      if (child && child.exitCode === null && child.signalCode === null) {
        const proc = child;
        signalGroup(proc, 'SIGCONT'); // a stalled (SIGSTOPped) miner cannot act on SIGTERM otherwise
        signalGroup(proc, 'SIGTERM');
        const hard = setTimeout(() => signalGroup(proc, 'SIGKILL'), STOP_DEADLINE_MS);
        await exited;
        clearTimeout(hard);
        // The leader has exited; anything it started and left behind in its group goes with it.
        signalGroup(proc, 'SIGKILL');
      }
    },
    async restart() {
      await m.stop();
      makePrivateDir(dataDir);
      const log = openSync(join(dataDir, `${role}.log`), 'a');
      // detached: the child leads its own process group, so that stopping it stops whatever it started too.
      // 'ipc': the child's lifeline; when this process dies (even by SIGKILL) the channel closes and the child
      // stops itself (see `parentGone` in src/cli/args.ts), so no miner outlives the network that started it.
      const proc = spawn(process.execPath, [BIN, role, '--data-dir', dataDir, ...args], {
        stdio: ['ignore', 'pipe', log, 'ipc'],
        detached: true,
      });
      closeSync(log);
      // Neither the channel nor the child keeps this process alive: stop() is how a network ends its children.
      proc.channel?.unref();
      child = proc;
      exited = new Promise((res) => proc.once('exit', () => res()));
      proc.once('exit', () => {
        if (child === proc) m.running = false;
      });
      const ready = await new Promise<{ peerId: string; addrs: string[] }>((res, rej) => {
        const timer = setTimeout(
          () =>
            rej(
              new AilinkError(
                'TIMEOUT',
                `expected ${name} to report ready within ${readyTimeoutMs} ms, got no ready line; see ${dataDir}/${role}.log`,
              ),
            ),
          readyTimeoutMs,
        );
        proc.once('exit', (code) => {
          clearTimeout(timer);
          rej(
            new AilinkError(
              'NODE_EXITED',
              `expected ${name} to report ready, got an exit with code ${code} first; see ${dataDir}/${role}.log`,
            ),
          );
        });
        createInterface({ input: proc.stdout! }).on('line', (line) => {
          try {
            const msg = JSON.parse(line) as { event?: string; peerId: string; addrs: string[] };
            if (msg.event === 'ready') {
              clearTimeout(timer);
              res(msg);
            }
          } catch {
            /* not a JSON line: ignore */
          }
        });
      });
      m.peerId = ready.peerId;
      m.addrs = ready.addrs;
      m.pid = proc.pid!;
      m.running = true;
    },
  };
  return m;
}
