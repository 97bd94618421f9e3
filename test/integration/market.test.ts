/**
 * The data marketplace for real (issue 7): the dev chain, 12 `ailink miner` processes, and four accounts besides the
 * owner — A on the access list, B neither listed nor paying, C paying the price, K the owner's key service (an
 * operator it authorised, holding the data key). Terms, requests, payments, grants and retrievals all go through
 * real extrinsics and are read back through each account's own index of the chain.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  debtsOf,
  grantOf,
  openRequestsOf,
  potFlagsOf,
  protocolCall,
  ROC,
  retrievalsOf,
  submitProtocol,
  termsOf,
} from '../../src/chain/index.ts';
import {
  type MarketContext,
  type MarketIo,
  modelAccessLogCommand,
  objectCommand,
  openMarketContext,
  serveKeys,
} from '../../src/cli/market.ts';
import { type DevNetwork, startDevNetwork } from '../../src/node/devnet.ts';
import { createHost, type Host } from '../../src/p2p/index.ts';
import { type Account, createKeyFile } from '../../src/shared/account.ts';
import { systemClock, systemRandom } from '../../src/shared/clock.ts';
import { hasCode } from '../../src/shared/errors.ts';
import {
  type CodecPool,
  createChainRegistry,
  createCodecPool,
  createMinerClient,
  createStorageClient,
  type MinerClient,
  TEST_PROFILE,
} from '../../src/storage/index.ts';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const PRICE = 5n * ROC;

async function readAll(source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const p of source) parts.push(p);
  return Buffer.concat(parts);
}

/** Resolves to the error `promise` rejects with; fails the test if it resolves. */
async function failure(
  promise: Promise<unknown>,
): Promise<Error & { code?: string; details?: Record<string, unknown> }> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  return expect.fail('expected a rejection');
}

const captured = (): MarketIo & { lines: string[] } => {
  const lines: string[] = [];
  return { lines, out: (l) => lines.push(l), note: () => {} };
};

describe('the data marketplace on the dev chain with 12 real miners', () => {
  let dir: string;
  let network: DevNetwork;
  const keyPaths: Record<'a' | 'b' | 'c' | 'k', string> = { a: '', b: '', c: '', k: '' };
  const accounts = {} as Record<'a' | 'b' | 'c' | 'k', Account>;
  const ctx = {} as Record<'owner' | 'a' | 'b' | 'c' | 'k', MarketContext>;
  let keyService: { controller: AbortController; done: Promise<void> } | undefined;
  const startKeyService = () => {
    const controller = new AbortController();
    keyService = {
      controller,
      done: serveKeys(
        ctx.k,
        { signal: controller.signal, pollMs: 300, actsFor: [ctx.owner.account.address] },
        captured(),
      ),
    };
  };
  const stopKeyService = async () => {
    keyService?.controller.abort();
    await keyService?.done;
    keyService = undefined;
  };
  let host: Host;
  let codec: CodecPool;
  const data = systemRandom(2 * TEST_PROFILE.segmentSize + 777);
  let fid: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ailink-market-it-'));
    mkdirSync(join(dir, 'readers'));
    for (const name of ['a', 'b', 'c', 'k'] as const) {
      keyPaths[name] = join(dir, 'readers', `${name}.json`);
      accounts[name] = await createKeyFile(keyPaths[name], systemRandom);
    }
    // The miners serve every one of them (and the dev network funds them): what keeps B out is the key alone.
    network = await startDevNetwork(
      { random: systemRandom },
      {
        dataDir: dir,
        miners: 12,
        profile: 'test',
        verifier: false,
        allow: Object.values(accounts).map((a) => a.address),
      },
    );
    ctx.owner = await openMarketContext({ network: network.path });
    for (const name of ['a', 'b', 'c', 'k'] as const) {
      ctx[name] = await openMarketContext({ network: network.path, key: keyPaths[name] });
    }
    host = await createHost();
    codec = createCodecPool();
  }, 120_000);

  afterAll(async () => {
    await stopKeyService();
    for (const c of Object.values(ctx)) await c.close().catch(() => {});
    await codec?.close();
    await host?.stop();
    await network?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('the owner stores an encrypted object, names its key service, and sets terms: A free, 5 ROC for others', async () => {
    const owner = ctx.owner.account;
    // K may release the key: the owner wraps it for K's reader key and authorises K as its operator.
    const put = await ctx.owner.storage.put(data, { name: 'model.bin', readers: [accounts.k.readerKey] });
    fid = put.fid;
    await submitProtocol(ctx.owner, owner, [protocolCall('oss.authorize', { operator: accounts.k.address })]);
    const io = captured();
    await objectCommand(
      ['terms', fid, '--readers', accounts.a.address, '--price', PRICE.toString(), '--json'].concat([
        '--network',
        network.path,
      ]),
      io,
    );
    expect(JSON.parse(io.lines[0]!)).toMatchObject({ fid, readers: [accounts.a.address], price: `${PRICE}` });
    await ctx.owner.indexer.sync();
    expect(termsOf(ctx.owner.indexer.state, fid)).toMatchObject({
      readers: [accounts.a.address],
      price: PRICE.toString(),
    });
    // Nobody but the owner (or its operator) sets terms.
    const refused = await failure(ctx.c.market.setTerms(fid, { readers: [accounts.c.address], price: 0n }));
    expect(refused).toMatchObject({ code: 'CHAIN_CALL_REJECTED' });
    expect(refused.message).toMatch(/may not set the terms of .*: only its owner/);
    startKeyService();
  });

  it('A, on the access list, pulls for free: its request is recorded and the key service releases the key', async () => {
    const before = await ctx.a.chain.balance(accounts.a.address);
    const bytes = await readAll(ctx.a.market.pull(fid, { deadlineMs: 60_000 }));
    expect(sha(bytes)).toBe(sha(data));
    const spent = before - (await ctx.a.chain.balance(accounts.a.address));
    expect(spent).toBeLessThan(ROC / 10n); // fees only
    await ctx.a.indexer.sync();
    expect(grantOf(ctx.a.indexer.state, fid, accounts.a.address)?.by).toBe(accounts.k.address);
  });

  it('B, neither listed nor paying, is refused with ACCESS_DENIED and the chain reason, and fetches nothing', async () => {
    const ownerBefore = await ctx.b.chain.balance(ctx.owner.account.address);
    const denied = await failure(readAll(ctx.b.market.pull(fid, { deadlineMs: 30_000 })));
    expect(denied).toMatchObject({ code: 'ACCESS_DENIED' });
    expect(denied.message).toContain(
      `${accounts.b.address} is not on the access list of ${fid} and paid nothing to the owner ${ctx.owner.account.address} or into escrow at the pot (price ${PRICE})`,
    );
    expect(denied.message).toContain(`--max-price ${PRICE}`);
    // The refusal is on record in B's own index of the chain, with the same reason; nothing else changed.
    const refusedCall = ctx.b.indexer
      .calls({ outcome: 'rejected' })
      .find((c) => c.signer === accounts.b.address && c.call === 'market.request');
    expect(refusedCall?.reason).toBe(denied.details?.reason);
    expect(openRequestsOf(ctx.b.indexer.state, fid)).toEqual([]);
    expect(retrievalsOf(ctx.b.indexer.state, fid).map((r) => r.reader)).not.toContain(accounts.b.address);
    expect(await ctx.b.chain.balance(ctx.owner.account.address)).toBe(ownerBefore);

    // Reading directly, around the marketplace: refused before a single fragment is asked for.
    const fetched: string[] = [];
    const honest = createMinerClient(
      { host, account: accounts.b, clock: systemClock, random: systemRandom },
      { requestTimeoutMs: 20_000, signatureTtlMs: 60_000, maxFragmentSize: TEST_PROFILE.segmentSize },
    );
    const watching: MinerClient = {
      ...honest,
      get: (peer, hash, options) => {
        fetched.push(hash);
        return honest.get(peer, hash, options);
      },
    };
    const registry = createChainRegistry({
      chain: ctx.b.chain,
      indexer: ctx.b.indexer,
      account: accounts.b,
      miners: watching,
    });
    const storage = createStorageClient(
      { miners: watching, registry, account: accounts.b, codec, clock: systemClock, random: systemRandom },
      { profile: TEST_PROFILE, fragmentDeadlineMs: 10_000 },
    );
    const direct = await failure(readAll(storage.get(fid)));
    expect(direct).toMatchObject({ code: 'ACCESS_DENIED' });
    expect(direct.message).toContain(`ailink object request ${fid}`);
    expect(fetched).toEqual([]);
  });

  it('C pays the price into escrow in the same extrinsic: the key is released, the pot pays the owner, a retrieval is recorded, the bytes read', async () => {
    const owner = ctx.owner.account.address;
    const [cBefore, ownerBefore] = await Promise.all([
      ctx.c.chain.balance(accounts.c.address),
      ctx.c.chain.balance(owner),
    ]);
    const ticket = await ctx.c.market.requestAccess(fid, { maxPrice: PRICE, deadlineMs: 60_000 });
    expect(ticket).toMatchObject({ fid, via: 'grant', paid: PRICE });
    // The release opened the pot's debt to the owner; the dev network's payout service pays it (now, or at its step).
    await network.payouts!.payNow();
    await ctx.c.indexer.sync();
    expect(debtsOf(ctx.c.indexer.state)).toEqual([]);
    expect(potFlagsOf(ctx.c.indexer.state)).toEqual([]);
    const [cAfter, ownerAfter] = await Promise.all([
      ctx.c.chain.balance(accounts.c.address),
      ctx.c.chain.balance(owner),
    ]);
    expect(ownerAfter - ownerBefore).toBe(PRICE);
    expect(cBefore - cAfter).toBeGreaterThanOrEqual(PRICE);
    expect(cBefore - cAfter - PRICE).toBeLessThan(ROC / 10n); // the price once, plus a fee
    await ctx.c.indexer.sync();
    const mine = retrievalsOf(ctx.c.indexer.state, fid).filter((r) => r.reader === accounts.c.address);
    expect(mine).toEqual([
      expect.objectContaining({
        block: ticket.block,
        paid: PRICE.toString(),
        readerKey: accounts.c.readerKey,
      }),
    ]);
    expect(grantOf(ctx.c.indexer.state, fid, accounts.c.address)?.wrap.recipient).toBe(accounts.c.readerKey);
    expect(sha(await readAll(ctx.c.storage.get(fid)))).toBe(sha(data));
  });

  it('payments count only when made directly before the request, in an extrinsic that succeeded', async () => {
    const b = accounts.b;
    const owner = ctx.owner.account.address;
    const request = protocolCall('market.request', { fid, readerKey: b.readerKey });
    // Paid after the request: the chain moves the money (it knows no protocol), the rules see no payment.
    const late = await ctx.b.chain.submit(b, [request, { kind: 'transfer', to: owner, amount: PRICE }]);
    // More than B has: the extrinsic fails, so its request is not applied at all.
    const from = (await ctx.b.chain.finalizedHeight()) + 1;
    const failed = await failure(
      ctx.b.chain.submit(b, [{ kind: 'transfer', to: owner, amount: 10n ** 30n }, request]),
    );
    expect(failed).toMatchObject({ code: 'CHAIN_CALL_FAILED' });
    await ctx.b.indexer.sync();
    const records = ctx.b.indexer
      .calls({ fromBlock: late.blockNumber })
      .filter((c) => c.signer === b.address && c.call === 'market.request');
    expect(records[0]).toMatchObject({ block: late.blockNumber, outcome: 'rejected' });
    expect(records[0]!.reason).toMatch(/paid nothing to the owner/);
    expect(records[1]).toMatchObject({ outcome: 'rejected' });
    expect(records[1]!.block).toBeGreaterThanOrEqual(from);
    expect(records[1]!.reason).toMatch(/^not applied on chain: extrinsic failed: balances\./);
    expect(retrievalsOf(ctx.b.indexer.state, fid).map((r) => r.reader)).not.toContain(b.address);
  });

  it('with the key service down, a paid request times out, is not paid twice, and is answered once the service is back', async () => {
    await stopKeyService();
    const b = accounts.b;
    const start = await ctx.b.chain.balance(b.address);
    const first = await failure(ctx.b.market.requestAccess(fid, { maxPrice: PRICE, deadlineMs: 4000 }));
    expect(first).toMatchObject({ code: 'TIMEOUT' });
    expect(first.message).toMatch(/was accepted in block \d+ \(paid 5000000000000\)/);
    const afterFirst = await ctx.b.chain.balance(b.address);
    expect(start - afterFirst).toBeGreaterThanOrEqual(PRICE);
    const second = await failure(ctx.b.market.requestAccess(fid, { maxPrice: PRICE, deadlineMs: 1500 }));
    expect(second).toMatchObject({ code: 'TIMEOUT' });
    expect(await ctx.b.chain.balance(b.address)).toBe(afterFirst); // no second payment, not even a fee
    // B waits on its open request (it finds it at once), then the key service comes back and answers it.
    const waiting = ctx.b.market.requestAccess(fid, { maxPrice: PRICE, deadlineMs: 60_000 });
    await new Promise((r) => setTimeout(r, 500));
    startKeyService();
    const ticket = await waiting;
    expect(ticket).toMatchObject({ via: 'grant', paid: PRICE });
    expect(await ctx.b.chain.balance(b.address)).toBe(afterFirst);
    expect(sha(await readAll(ctx.b.storage.get(fid)))).toBe(sha(data));
  });

  it('the owner lists the retrievals: A free, C and B paid, each with its key released; refusals left none', async () => {
    const io = captured();
    await modelAccessLogCommand(['--fid', fid, '--json', '--network', network.path], io);
    const rows = JSON.parse(io.lines.join('\n')) as { reader: string; paid: string; keyReleased: boolean }[];
    expect(rows.map((r) => [r.reader, r.paid, r.keyReleased])).toEqual([
      [accounts.a.address, '0', true],
      [accounts.c.address, PRICE.toString(), true],
      [accounts.b.address, PRICE.toString(), true],
    ]);
    const text = captured();
    await modelAccessLogCommand(['--fid', fid, '--network', network.path], text);
    expect(text.lines).toHaveLength(3);
    expect(text.lines[1]).toContain(`${accounts.c.address}  paid ${PRICE}`);
    // Bad usage is refused before anything connects.
    const bad = await failure(modelAccessLogCommand(['--fid', 'nope', '--network', network.path], io));
    expect(hasCode(bad, 'INVALID_INPUT')).toBe(true);
    const badPrice = await failure(
      objectCommand(['terms', fid, '--price', '1.5', '--network', network.path]),
    );
    expect(hasCode(badPrice, 'INVALID_INPUT')).toBe(true);
  });
});
