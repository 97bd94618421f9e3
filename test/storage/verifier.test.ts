/**
 * The verifier process's own promises, on the real dev chain: it registers in teeWorker with a commitment to its
 * PoDR2 key, keeps its keys across a restart (same peer, account and key, addresses updated), and answers only
 * registered miners, with a clear code for everyone else.
 */
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  type ChainClient,
  connectChain,
  DEV_PROTOCOL_CONFIG,
  type DevChain,
  devSigner,
  openIndexer,
  type ProtocolConfig,
  ROC,
  startDevChain,
  verifiersOf,
} from '../../src/chain/index.ts';
import { startVerifierNode, type VerifierNode } from '../../src/node/verifier.ts';
import { createHost, type Host } from '../../src/p2p/index.ts';
import { type Account, createKeyFile } from '../../src/shared/account.ts';
import { systemClock, systemRandom } from '../../src/shared/clock.ts';
import { AilinkError } from '../../src/shared/errors.ts';
import { createVerifierClient, VERIFIER_PROTOCOL } from '../../src/storage/index.ts';
import { bodyDigest, decodeReply, MAX_FRAME_BYTES } from '../../src/storage/protocol/fragment-protocol.ts';
import { sha256Hex } from './helpers.ts';

const quiet = { info() {}, warn() {} };

describe('ailink verifier', () => {
  let dir: string;
  let devChain: DevChain;
  let chain: ChainClient;
  let node: VerifierNode | undefined;
  let host: Host;
  let stranger: Account;
  /** The dev configuration with this verifier's account as the network's verifier set. */
  let config: ProtocolConfig;

  const start = (dataDir = join(dir, 'verifier')) =>
    startVerifierNode(
      { clock: systemClock, random: systemRandom, log: quiet },
      {
        dataDir,
        listen: ['/ip4/127.0.0.1/tcp/0'],
        chain: { endpoint: devChain.endpoint, config },
        maxFragmentSize: 1 << 20,
        maxSignatureTtlMs: 60_000,
        requestDeadlineMs: 10_000,
      },
    );

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ailink-verifier-'));
    devChain = await startDevChain({ port: 0 });
    chain = await connectChain(devChain.endpoint);
    // The verifier's account exists before it starts, so Alice can pay its fees.
    mkdirSync(join(dir, 'verifier'));
    const account = await createKeyFile(join(dir, 'verifier', 'account.json'), systemRandom);
    await chain.submit(devSigner('Alice'), [{ kind: 'transfer', to: account.address, amount: 10n * ROC }]);
    config = { ...DEV_PROTOCOL_CONFIG, verifiers: [account.address] };
    host = await createHost();
    stranger = await createKeyFile(join(dir, 'stranger.json'), systemRandom);
  }, 120_000);

  afterAll(async () => {
    await node?.stop();
    await host?.stop();
    await chain?.close();
    await devChain?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('registers in teeWorker with its key commitment, and keeps its keys (0600) across a restart', async () => {
    node = await start();
    expect(node.registration).toBe('registered');
    const first = { peerId: node.peerId, account: node.account, keyId: node.keyId };
    for (const f of ['podr2.key', 'peer.key', 'account.json']) {
      expect(statSync(join(dir, 'verifier', f)).mode & 0o077).toBe(0);
    }
    await node.stop();
    node = await start();
    expect({ peerId: node.peerId, account: node.account, keyId: node.keyId }).toStrictEqual(first);
    // A new port: the addresses on chain follow.
    expect(node.registration).toBe('updated');
    const indexer = openIndexer(chain, { path: join(dir, 'observer.sqlite'), config });
    try {
      await indexer.sync();
      const [registered] = verifiersOf(indexer.state);
      expect(registered).toMatchObject({
        address: first.account,
        peerId: first.peerId,
        podr2Key: first.keyId,
      });
      expect(registered!.addrs).toStrictEqual(node.addrs());
    } finally {
      indexer.close();
    }
  }, 120_000);

  it("does not start for an account outside the network's verifier set (the chain would refuse it)", async () => {
    const outsider = start(join(dir, 'outsider'));
    await expect(outsider).rejects.toMatchObject({ code: 'AUTH_NOT_AUTHORISED' });
    await expect(outsider).rejects.toThrow(/is not in the network's verifier set/);
  }, 60_000);

  it('refuses accounts that are not registered miners, for every operation', async () => {
    const client = createVerifierClient(
      { host, account: stranger, clock: systemClock, random: systemRandom },
      { requestTimeoutMs: 10_000, signatureTtlMs: 30_000 },
    );
    const peer = { peerId: node!.peerId, addrs: node!.addrs() };
    const bytes = new Uint8Array(1024);
    const code = (p: Promise<unknown>) =>
      p.then(
        () => 'resolved',
        (e) => (e instanceof AilinkError ? e.code : String(e)),
      );
    const column = { fid: sha256Hex(bytes), index: 0 };
    expect(await code(client.tag(peer, column, sha256Hex(bytes), bytes))).toBe('AUTH_NOT_AUTHORISED');
    expect(await code(client.certify(peer, column))).toBe('AUTH_NOT_AUTHORISED');
    expect(await code(client.verify(peer, 4, bytes))).toBe('AUTH_NOT_AUTHORISED');
  });

  it('answers malformed, unsigned and oversized requests with a clear code', async () => {
    const peer = { peerId: node!.peerId, addrs: node!.addrs() };
    const ask = async (frame: Uint8Array) => {
      const channel = await host.open(peer, VERIFIER_PROTOCOL, { signal: AbortSignal.timeout(10_000) });
      await channel.writeFrame(frame, { signal: AbortSignal.timeout(10_000) });
      await channel.closeWrite({ signal: AbortSignal.timeout(10_000) });
      const reply = await channel.readFrame(MAX_FRAME_BYTES, { signal: AbortSignal.timeout(10_000) });
      try {
        decodeReply(reply, z.never(), 'verifier');
        return 'no error';
      } catch (err) {
        return (err as AilinkError).code;
      }
    };
    const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
    const hash = 'ab'.repeat(32);
    expect(await ask(new TextEncoder().encode('not json'))).toBe('MINER_PROTOCOL');
    expect(await ask(json({ op: 'tag' }))).toBe('INVALID_INPUT');
    expect(await ask(json({ op: 'erase', fragment: hash, audience: peer.peerId }))).toBe('INVALID_INPUT');
    const unsigned = { op: 'certify', fid: hash, index: 0, fragment: bodyDigest(['certify', hash, 0]) };
    expect(await ask(json({ ...unsigned, audience: peer.peerId }))).toBe('AUTH_MISSING');
    // A certify whose signed digest is not the digest of its fields.
    expect(await ask(json({ ...unsigned, fragment: hash, audience: peer.peerId }))).toBe('INVALID_INPUT');
    const tooBig = {
      op: 'verify',
      challenge: 1,
      size: 64 * 1024 * 1024,
      fragment: hash,
      audience: peer.peerId,
    };
    expect(await ask(json(tooBig))).toBe('INVALID_INPUT');
  });
});
