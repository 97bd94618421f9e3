/**
 * No orphans (issue 18 §0): the miners and the verifier that a dev network spawns exit when the process that spawned
 * them dies, even by SIGKILL, when it can stop nothing itself (a test worker killed after a timed-out afterAll).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { startDevNetwork } from '../../src/node/devnet.ts';
import { systemRandom } from '../../src/shared/clock.ts';

const PARENT = fileURLToPath(new URL('./fixtures/devnet-parent.ts', import.meta.url));
const BIN = fileURLToPath(new URL('../../bin/ailink.mjs', import.meta.url));

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/** The pids still alive after `deadlineMs`, polled every 100 ms (empty as soon as all have exited). */
async function survivorsAfter(pids: readonly number[], deadlineMs: number): Promise<number[]> {
  const until = Date.now() + deadlineMs;
  for (;;) {
    const left = pids.filter(alive);
    if (left.length === 0 || Date.now() >= until) return left;
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('children of a killed parent', () => {
  const dirs: string[] = [];
  const pids: number[] = [];
  let parent: ChildProcess | undefined;
  afterAll(() => {
    parent?.kill('SIGKILL');
    // Whatever the outcome, leave nothing running behind this test.
    for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL');
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it("a dev network's miners and verifier exit within 5 s of their parent being SIGKILLed", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ailink-orphans-'));
    dirs.push(dir);
    const proc = spawn(process.execPath, ['--import', 'tsx', PARENT, dir, '2'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    parent = proc;
    const ready = await new Promise<number[]>((res, rej) => {
      const timer = setTimeout(
        () => rej(new Error('the parent did not start its network within 90 s')),
        90_000,
      );
      proc.once('exit', (code) => {
        clearTimeout(timer);
        rej(new Error(`the parent exited with ${code} before its network was up`));
      });
      createInterface({ input: proc.stdout! }).on('line', (line) => {
        const msg = JSON.parse(line) as { event?: string; pids: number[] };
        if (msg.event === 'ready') {
          clearTimeout(timer);
          res(msg.pids);
        }
      });
    });
    pids.push(...ready);
    expect(ready).toHaveLength(3); // 2 miners + the verifier
    expect(ready.every(alive)).toBe(true);

    const gone = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGKILL');
    await gone;
    expect(await survivorsAfter(ready, 5000)).toStrictEqual([]);
  }, 120_000);
});

describe('a network whose chain is gone', () => {
  let dir: string | undefined;
  let chain: ChildProcess | undefined;
  afterAll(() => {
    chain?.kill('SIGKILL');
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('its miners and verifier still stop by themselves when told to, promptly, each logging that it stopped', async () => {
    // Their audit pass and index sync wait for the lost chain to come back (up to the chain client's reconnectMs,
    // 60 s, at every read); a stop used to wait with them, until the network's SIGKILL 5 s later.
    dir = mkdtempSync(join(tmpdir(), 'ailink-chain-gone-'));
    const proc = spawn(process.execPath, [BIN, 'chain', '--port', '0', '--data-dir', join(dir, 'chain')], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    chain = proc;
    const endpoint = await new Promise<string>((res, rej) => {
      proc.once('exit', (code) => rej(new Error(`\`ailink chain\` exited with ${code} before it was ready`)));
      createInterface({ input: proc.stdout! }).once('line', (line) => res(JSON.parse(line).endpoint));
    });
    const network = await startDevNetwork(
      { random: systemRandom },
      { dataDir: dir, miners: 2, profile: 'test', chainEndpoint: endpoint, readyTimeoutMs: 60_000 },
    );
    const nodes = [...network.miners, ...(network.verifier ? [network.verifier] : [])];
    // The chain dies with every connection to it; then long enough for each node to be in a pass or a sync that
    // waits for it (miners poll every second).
    const gone = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGKILL');
    await gone;
    await new Promise((r) => setTimeout(r, 3000));
    await network.stop();
    for (const node of nodes) {
      const log = readFileSync(join(node.dataDir, `${node.role}.log`), 'utf8');
      expect(log, `${node.name} did not stop by itself; its log:\n${log}`).toMatch(/"event":"stopped"/);
    }
  }, 150_000);
});
