import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createKeyFile, loadKeyFile } from '../shared/account.ts';
import type { Random } from '../shared/clock.ts';
import { type NetworkFile, writeNetworkFile } from '../storage/network.ts';

export const BIN = fileURLToPath(new URL('../../bin/ailink.mjs', import.meta.url));

export interface MinerProcess {
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
  readonly miners: MinerProcess[];
  readonly operatorKeyPath: string;
  /** Rewrites network.json with the current pids and addresses. */
  save(): Promise<void>;
  stop(): Promise<void>;
}

export interface DevNetworkOptions {
  readonly dataDir: string;
  readonly miners: number;
  readonly profile: 'production' | 'test';
  /** Extra accounts (SS58) the miners accept besides the network's operator key. */
  readonly allow?: readonly string[];
  readonly readyTimeoutMs?: number;
  readonly onEvent?: (line: string) => void;
}

/**
 * Starts N real miner processes on loopback (each `ailink miner` with its own data dir), writes network.json, and
 * brings the same network back when started again on the same data dir.
 */
export async function startDevNetwork(
  deps: { random: Random },
  options: DevNetworkOptions,
): Promise<DevNetwork> {
  const dataDir = resolve(options.dataDir);
  mkdirSync(join(dataDir, 'keys'), { recursive: true });
  const operatorKeyPath = join(dataDir, 'keys', 'operator.json');
  const operator = existsSync(operatorKeyPath)
    ? await loadKeyFile(operatorKeyPath)
    : await createKeyFile(operatorKeyPath, deps.random);
  const allow = [operator.address, ...(options.allow ?? [])];
  const maxFragment = options.profile === 'production' ? 8 * 1024 * 1024 : 1024 * 1024;
  const path = join(dataDir, 'network.json');

  const miners = Array.from({ length: options.miners }, (_, i) => {
    const name = `miner-${String(i + 1).padStart(2, '0')}`;
    return spawnableMiner(
      name,
      join(dataDir, 'miners', name),
      allow,
      maxFragment,
      options.readyTimeoutMs ?? 60_000,
    );
  });
  try {
    await Promise.all(miners.map((m) => m.restart()));
  } catch (err) {
    await Promise.all(miners.map((m) => m.stop()));
    throw err;
  }
  const network: DevNetwork = {
    path,
    miners,
    operatorKeyPath,
    async save() {
      const file: NetworkFile = {
        version: 1,
        profile: options.profile,
        registry: 'registry.sqlite',
        operatorKey: relative(dataDir, operatorKeyPath),
        processes: miners
          .filter((m) => m.running)
          .map((m) => ({
            role: 'miner' as const,
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
      await Promise.all(miners.map((m) => m.stop()));
      await network.save(); // lists no processes now: clients are told plainly that nothing is running
    },
  };
  await network.save();
  return network;
}

function spawnableMiner(
  name: string,
  dataDir: string,
  allow: readonly string[],
  maxFragment: number,
  readyTimeoutMs: number,
): MinerProcess {
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const m: MinerProcess = {
    name,
    dataDir,
    peerId: '',
    addrs: [],
    pid: 0,
    running: false,
    signal(sig) {
      child?.kill(sig);
    },
    async stop() {
      if (child && m.running) {
        child.kill('SIGCONT'); // a stalled (SIGSTOPped) miner cannot act on SIGTERM otherwise
        child.kill('SIGTERM');
        const hard = setTimeout(() => child?.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(hard);
      }
    },
    async restart() {
      await m.stop();
      mkdirSync(dataDir, { recursive: true });
      const log = openSync(join(dataDir, 'miner.log'), 'a');
      const args = [BIN, 'miner', '--data-dir', dataDir, '--listen', '/ip4/127.0.0.1/tcp/0'];
      args.push('--max-fragment', String(maxFragment));
      for (const a of allow) args.push('--allow', a);
      const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', log] });
      closeSync(log);
      child = proc;
      exited = new Promise((res) => proc.once('exit', () => res()));
      proc.once('exit', () => {
        if (child === proc) m.running = false;
      });
      const ready = await new Promise<{ peerId: string; addrs: string[] }>((res, rej) => {
        const timer = setTimeout(
          () =>
            rej(
              new Error(`${name} did not report ready within ${readyTimeoutMs} ms; see ${dataDir}/miner.log`),
            ),
          readyTimeoutMs,
        );
        proc.once('exit', (code) => {
          clearTimeout(timer);
          rej(new Error(`${name} exited with code ${code} before it was ready; see ${dataDir}/miner.log`));
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
