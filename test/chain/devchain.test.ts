import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type ChainClient, connectChain } from '../../src/chain/client.ts';
import { type DevChain, devSigner, startDevChain } from '../../src/chain/devchain.ts';

// The dev chain's own promises: loopback only, and a restart from its data dir is the same chain at the same head.

const alice = devSigner('Alice');
const charlie = devSigner('Charlie');
const dave = devSigner('Dave');
const text = (s: string) => new TextEncoder().encode(s);

const tmp = mkdtempSync(join(tmpdir(), 'ailink-devchain-'));
const open: { chain?: DevChain; client?: ChainClient } = {};
afterAll(async () => {
  await open.client?.close();
  await open.chain?.close();
  rmSync(tmp, { recursive: true, force: true });
});

async function start(dataDir: string) {
  open.chain = await startDevChain({ port: 0, dataDir });
  open.client = await connectChain(open.chain.endpoint);
  return { chain: open.chain, client: open.client };
}

async function stop() {
  await open.client?.close();
  await open.chain?.close();
  delete open.client;
  delete open.chain;
}

/** Whether a TCP connection to host:port is accepted. */
function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((res) => {
    const socket = connect({ host, port, timeout: 2000 });
    socket.once('connect', () => {
      socket.destroy();
      res(true);
    });
    socket.once('error', () => res(false));
    socket.once('timeout', () => {
      socket.destroy();
      res(false);
    });
  });
}

describe('dev chain', () => {
  it('resumes from its data dir at the same head with the same state, and listens on 127.0.0.1 only', async () => {
    const dataDir = join(tmp, 'chain');
    const amount = 987_654_321n;

    // First run: a new chain.
    let { chain, client } = await start(dataDir);
    expect(chain.resumed).toBe(false);
    const url = new URL(chain.endpoint);
    expect(url.protocol).toBe('ws:');
    expect(url.hostname).toBe('127.0.0.1');
    const port = Number(url.port);
    expect(await accepts('127.0.0.1', port)).toBe(true);
    // Bound to that address, not to a wildcard: not even another loopback address, nor any other interface.
    expect(await accepts('127.0.0.2', port)).toBe(false);
    const others = Object.values(networkInterfaces())
      .flat()
      .filter((i) => i !== undefined && i.family === 'IPv4' && !i.internal)
      .map((i) => i!.address);
    for (const address of others) expect(await accepts(address, port)).toBe(false);

    const charlieGenesis = await client.balance(charlie.address);
    expect(charlieGenesis).toBe(10n ** 18n);
    const daveBefore = await client.balance(dave.address);
    await client.submit(alice, [{ kind: 'transfer', to: dave.address, amount }]);
    const last = await client.submit(alice, [{ kind: 'remark', payload: text('before the restart') }]);
    const genesisHash = client.genesisHash;
    const height = await client.finalizedHeight();
    expect(height).toBe(last.blockNumber);
    const head = await client.block(height);
    const daveAfter = await client.balance(dave.address);
    expect(daveAfter).toBe(daveBefore + amount);
    const aliceBalance = await client.balance(alice.address);
    await stop();

    // Second run on the same folder: the same chain, at the same head.
    ({ chain, client } = await start(dataDir));
    expect(chain.resumed).toBe(true);
    expect(chain.startHeight).toBe(height);
    expect(new URL(chain.endpoint).hostname).toBe('127.0.0.1');
    expect(client.genesisHash).toBe(genesisHash);
    expect(await client.finalizedHeight()).toBe(height);
    expect(await client.block(height)).toEqual(head);
    expect(await client.balance(dave.address)).toBe(daveAfter);
    expect(await client.balance(alice.address)).toBe(aliceBalance);
    expect(await client.balance(charlie.address)).toBe(charlieGenesis);

    // Alice's nonce survived too: her next transaction is valid and lands on top of the saved head.
    const next = await client.submit(alice, [{ kind: 'remark', payload: text('after the restart') }]);
    expect(next.blockNumber).toBe(height + 1);
    const block = await client.block(height + 1);
    expect(block.parentHash).toBe(head.hash);
    expect(block.extrinsics[next.extrinsicIndex]).toMatchObject({
      signer: alice.address,
      calls: [{ call: { kind: 'remark', payload: text('after the restart') }, applied: true }],
    });
  });
});
