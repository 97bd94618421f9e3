import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { connectChain } from '../../src/chain/client.ts';
import { devSigner } from '../../src/chain/devchain.ts';

// `ailink chain` as a user runs it: a child process that prints a ready line, serves until SIGTERM, closes cleanly,
// and starts again from its data dir at the same height.

const BIN = fileURLToPath(new URL('../../bin/ailink.mjs', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'ailink-cli-chain-'));
const children = new Set<ChildProcess>();
afterAll(() => {
  for (const child of children) child.kill('SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
});

interface Ready {
  readonly event: 'ready';
  readonly endpoint: string;
  readonly height: number;
  readonly resumed: boolean;
}

/** Starts `ailink chain ARGS` and resolves with the child and its ready line. */
function startChain(
  args: readonly string[],
): Promise<{ child: ChildProcess; ready: Ready; stderr: () => string }> {
  // 'ipc': should this test's process die before it stops the chain, the chain stops itself.
  const child = spawn(process.execPath, [BIN, 'chain', ...args], {
    cwd: tmp,
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  child.channel?.unref();
  children.add(child);
  child.once('exit', () => children.delete(child));
  let stdout = '';
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => {
    stderr += s;
  });
  return new Promise((resolve, reject) => {
    child.stdout!.setEncoding('utf8').on('data', (s: string) => {
      stdout += s;
      const line = stdout.split('\n').find((l) => l.startsWith('{'));
      if (line !== undefined && stdout.includes('\n'))
        resolve({ child, ready: JSON.parse(line), stderr: () => stderr });
    });
    child.once('exit', (code, signal) =>
      reject(new Error(`ailink chain exited (${code ?? signal}) before it was ready:\n${stderr}`)),
    );
  });
}

/** A free loopback port, for a chain that must come back where its clients look for it. */
function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const server = createServer();
    server.once('error', rej);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => res(port));
    });
  });
}

function exitOf(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null)
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((res) => child.once('exit', (code, signal) => res({ code, signal })));
}

describe('ailink chain', () => {
  it('serves until SIGTERM, exits 0, and resumes from its data dir at the same height', async () => {
    const dataDir = join(tmp, 'chain');
    const first = await startChain(['--port', '0', '--data-dir', dataDir, '--heartbeat-ms', '0']);
    expect(first.ready.event).toBe('ready');
    expect(first.ready.resumed).toBe(false);
    expect(new URL(first.ready.endpoint).hostname).toBe('127.0.0.1');

    const client = await connectChain(first.ready.endpoint);
    const inclusion = await client.submit(devSigner('Alice'), [
      { kind: 'remark', payload: new TextEncoder().encode('ailink chain') },
    ]);
    const height = await client.finalizedHeight();
    expect(height).toBe(inclusion.blockNumber);
    expect(height).toBeGreaterThan(first.ready.height);
    await client.close();

    first.child.kill('SIGTERM');
    expect(await exitOf(first.child), first.stderr()).toEqual({ code: 0, signal: null });

    const second = await startChain(['--port', '0', '--data-dir', dataDir, '--heartbeat-ms', '0']);
    expect(second.ready).toMatchObject({ event: 'ready', resumed: true, height });
    const again = await connectChain(second.ready.endpoint);
    expect(again.genesisHash).toBe(client.genesisHash);
    expect((await again.block(height)).hash).toBe(inclusion.blockHash);
    await again.close();
    second.child.kill('SIGINT');
    expect(await exitOf(second.child), second.stderr()).toEqual({ code: 0, signal: null });
  });

  it('survives a SIGKILL of the chain: clients reconnect, follow on, submit, and no block they saw is lost', async () => {
    // issue 18 §1, found by bench:chaos: a client lost its chain for good when the node restarted, and chopsticks made
    // a block the head (final, announced) before writing it, so a kill in between took back a block clients had seen.
    const dataDir = join(tmp, 'killed');
    const port = await freePort();
    const args = ['--port', String(port), '--data-dir', dataDir, '--heartbeat-ms', '200'];
    const first = await startChain(args);
    const client = await connectChain(first.ready.endpoint, { reconnectMs: 60_000 });
    const heights: number[] = [];
    await client.followFinalized((h) => heights.push(h));
    // Kill it while it seals a block every 200 ms: one is often in the middle of being written.
    await new Promise((r) => setTimeout(r, 1500));
    const seen = await client.finalizedHeight();
    const seenHash = (await client.block(seen)).hash;
    first.child.kill('SIGKILL');
    await exitOf(first.child);
    // A submission made while the chain is down waits for it rather than failing at once.
    const inclusion = client.submit(devSigner('Bob'), [
      { kind: 'remark', payload: new TextEncoder().encode('sent while down') },
    ]);
    const second = await startChain(args);
    expect(second.ready.resumed).toBe(true);
    expect(second.ready.height).toBeGreaterThanOrEqual(seen);
    const landed = await inclusion;
    expect(landed.blockNumber).toBeGreaterThan(seen);
    expect((await client.block(seen)).hash).toBe(seenHash);
    // Following goes on past the restart.
    const followed = heights.length;
    await new Promise((r) => setTimeout(r, 1000));
    expect(heights.length).toBeGreaterThan(followed);
    expect(Math.max(...heights)).toBeGreaterThanOrEqual(landed.blockNumber);
    await client.close();
    second.child.kill('SIGTERM');
    await exitOf(second.child);
  }, 90_000);

  it('writes each block to its data dir before it tells anyone of it', async () => {
    // The order that makes a kill safe: a block announced (final, to every subscriber) is already on disk.
    const dataDir = join(tmp, 'durable');
    const chain = await startChain(['--port', '0', '--data-dir', dataDir, '--heartbeat-ms', '100']);
    const db = new Database(join(dataDir, 'chain.sqlite'), { readonly: true, fileMustExist: true });
    const onDisk = db.prepare<[number], { hash: string }>('SELECT hash FROM block WHERE number = ?');
    const client = await connectChain(chain.ready.endpoint);
    const announced: number[] = [];
    const missing: number[] = [];
    const enough = new Promise<void>((resolve) => {
      void client.followFinalized((height) => {
        announced.push(height);
        if (onDisk.get(height) === undefined) missing.push(height);
        if (announced.length >= 8) resolve();
      });
    });
    await enough;
    db.close();
    await client.close();
    chain.child.kill('SIGTERM');
    await exitOf(chain.child);
    expect(missing, `announced ${announced.join(', ')}`).toEqual([]);
  }, 60_000);

  it('refuses a bad --port with a usage error (exit 2)', async () => {
    const child = spawn(process.execPath, [BIN, 'chain', '--port', '70000'], { cwd: tmp, stdio: 'pipe' });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      stderr += s;
    });
    expect((await exitOf(child)).code).toBe(2);
    expect(stderr).toContain('INVALID_INPUT');
    expect(stderr).toContain('--port');
  });
});
