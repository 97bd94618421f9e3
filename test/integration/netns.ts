import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { createNamespaces } from '../../bench/netns.ts';
import { BIN } from '../../src/node/index.ts';

export { netnsUnavailable } from '../../bench/netns.ts';

/** Roles run on hosts of their own (DESIGN §12): the namespaces of bench/netns.ts, with a process launcher. */

export interface Hosts {
  /** The address of a host by its name. */
  address(host: string): string;
  /** `ailink ARGS` inside a host's namespace, stdout and stderr to `<logDir>/<label>.{out,err}`. */
  ailink(host: string, label: string, args: readonly string[]): RoleProcess;
  /** Stops every process started here and removes the namespaces. */
  remove(): Promise<void>;
}

export interface RoleProcess {
  readonly child: ChildProcess;
  /** The first JSON line on stdout with `event: 'ready'`. */
  ready(timeoutMs: number): Promise<Record<string, unknown>>;
  /** The exit code (null when killed by a signal). */
  exited(timeoutMs: number): Promise<number | null>;
  stderr(): string;
  stdout(): string;
}

/** Namespaces `<prefix>-<host>` for each host, addressed 10.77.0.1, .2, … in order, plus the switch. */
export function createHosts(prefix: string, hosts: readonly string[], logDir: string): Hosts {
  const namespaces = createNamespaces(prefix, hosts);
  const children: ChildProcess[] = [];
  return {
    address: namespaces.address,
    ailink(host, label, args) {
      const err = join(logDir, `${label}.err`);
      const outFd = openSync(join(logDir, `${label}.out`), 'a');
      const errFd = openSync(err, 'a');
      const child = spawn(
        'ip',
        ['netns', 'exec', namespaces.namespace(host), process.execPath, BIN, ...args],
        {
          stdio: ['ignore', 'pipe', errFd],
          // Its own process group: a kill reaches the node process, not only `ip netns exec`.
          detached: true,
        },
      );
      closeSync(errFd);
      children.push(child);
      const lines: string[] = [];
      const waiting: ((line: string) => void)[] = [];
      createInterface({ input: child.stdout! }).on('line', (line) => {
        lines.push(line);
        writeSync(outFd, `${line}\n`);
        for (const w of waiting) w(line);
      });
      const exit = new Promise<number | null>((resolve) =>
        // 'close', not 'exit': stdout may still hold lines when the process has exited.
        child.once('close', (code) => {
          closeSync(outFd);
          resolve(code);
        }),
      );
      return {
        child,
        async ready(timeoutMs) {
          const found = (line: string) => {
            try {
              const msg = JSON.parse(line) as Record<string, unknown>;
              return msg.event === 'ready' ? msg : undefined;
            } catch {
              return undefined;
            }
          };
          for (const line of lines) {
            const msg = found(line);
            if (msg) return msg;
          }
          return new Promise((resolve, reject) => {
            const timer = setTimeout(
              () =>
                reject(
                  new Error(`${label} was not ready within ${timeoutMs} ms:\n${readFileSync(err, 'utf8')}`),
                ),
              timeoutMs,
            );
            void exit.then((code) => {
              clearTimeout(timer);
              reject(
                new Error(`${label} exited (${code}) before it was ready:\n${readFileSync(err, 'utf8')}`),
              );
            });
            waiting.push((line) => {
              const msg = found(line);
              if (msg) {
                clearTimeout(timer);
                resolve(msg);
              }
            });
          });
        },
        exited: (timeoutMs) =>
          Promise.race([
            exit,
            new Promise<never>((_, reject) =>
              setTimeout(
                () =>
                  reject(
                    new Error(`${label} still runs after ${timeoutMs} ms:\n${readFileSync(err, 'utf8')}`),
                  ),
                timeoutMs,
              ).unref(),
            ),
          ]),
        stderr: () => readFileSync(err, 'utf8'),
        stdout: () => lines.join('\n'),
      };
    },
    async remove() {
      await Promise.all(
        children.map(async (child) => {
          if (child.exitCode !== null || child.signalCode !== null) return;
          const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
          try {
            process.kill(-child.pid!, 'SIGTERM');
          } catch {}
          const hard = setTimeout(() => {
            try {
              process.kill(-child.pid!, 'SIGKILL');
            } catch {}
          }, 8000);
          await gone;
          clearTimeout(hard);
        }),
      );
      namespaces.remove();
    },
  };
}
