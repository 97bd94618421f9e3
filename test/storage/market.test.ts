import { beforeAll, describe, expect, it } from 'vitest';
import type { Inclusion } from '../../src/chain/client.ts';
import { debtsOf } from '../../src/chain/pallets/pot.ts';
import { fileOf, grantOf, openRequestsOf, retrievalsOf } from '../../src/chain/queries.ts';
import { type Account, accountsReady } from '../../src/shared/account.ts';
import { fromHex } from '../../src/shared/bytes.ts';
import { manualClock, systemClock } from '../../src/shared/clock.ts';
import { AilinkError } from '../../src/shared/errors.ts';
import { createGrantService, createMarketClient } from '../../src/storage/client/market.ts';
import { unwrapDataKey, wrapDataKey } from '../../src/storage/object/envelope.ts';
import { CONFIG, hex, makeAccounts, makeDeclaration } from '../chain/helpers.ts';
import { rejectsWith } from './helpers.ts';
import { memoryChain, remark, spaceCalls, type Twin } from './memory-chain.ts';

// The market client and the owner's key service (src/storage/client/market.ts) against an in-memory twin of the chain and
// its index: extrinsics go through the real remark codec and the real rules (applyRemark) with the payments of the
// batch, exactly as the indexer applies them. test/integration/market.test.ts runs the same flows on the dev chain.

let owner: Account;
let operator: Account;
let listed: Account;
let stranger: Account;
let payer: Account;
let other: Account;

beforeAll(async () => {
  await accountsReady();
  [owner, operator, listed, stranger, payer, other] = makeAccounts('storage-market', 6) as [
    Account,
    Account,
    Account,
    Account,
    Account,
    Account,
  ];
});

const PRICE = 1000n;
const DATA_KEY = new Uint8Array(32).fill(7);

/** Declares an object of `by` encrypted under DATA_KEY, wrapped for `readers`' reader keys; sets terms if given. */
async function declare(
  twin: Twin,
  label: string,
  by: Account,
  readers: readonly Account[],
  terms?: { readers: Account[]; price: bigint | null },
): Promise<string> {
  const d = makeDeclaration(label, by.address, { encrypted: true });
  const wraps = readers.map((r) =>
    wrapDataKey(DATA_KEY, fromHex(r.readerKey), { fid: d.fid, owner: by.address }),
  );
  await twin.run(by, [
    // Space for the declaration, which debits it.
    ...spaceCalls(),
    remark('fileBank.uploadDeclaration', { ...d, encryption: { ...d.encryption!, wraps } }),
  ]);
  if (terms) {
    await twin.run(by, [
      remark('market.setTerms', {
        fid: d.fid,
        readers: terms.readers.map((r) => r.address),
        price: terms.price === null ? null : terms.price.toString(),
      }),
    ]);
  }
  return d.fid;
}

const requestBy = (twin: Twin, reader: Account, fid: string, paid = 0n, to = owner.address) =>
  twin.run(reader, [
    ...(paid > 0n ? [{ kind: 'transfer' as const, to, amount: paid }] : []),
    remark('market.request', { fid, readerKey: reader.readerKey }),
  ]);

const noStorage = {
  get(): AsyncIterable<Uint8Array> {
    throw new Error('not used');
  },
};

describe('createGrantService', () => {
  it('answers every open request of the objects it manages in one extrinsic; readers unwrap the data key', async () => {
    const twin = memoryChain();
    const fid = await declare(twin, 'g/one', owner, [owner], { readers: [listed], price: PRICE });
    await requestBy(twin, listed, fid);
    await requestBy(twin, payer, fid, PRICE);
    await requestBy(twin, stranger, fid, PRICE);
    const service = createGrantService({ ...twin, account: owner, clock: systemClock });
    const before = twin.submitted.length;
    const pass = await service.pass();
    expect(pass.failed).toEqual([]);
    expect(pass.granted.map((g) => g.reader).sort()).toEqual(
      [listed.address, payer.address, stranger.address].sort(),
    );
    expect(twin.submitted.slice(before)).toEqual([
      { signer: owner.address, calls: ['market.grant', 'market.grant', 'market.grant'] },
    ]);
    for (const reader of [listed, payer, stranger]) {
      const wrap = grantOf(twin.state, fid, reader.address)!.wrap;
      expect(unwrapDataKey([wrap], reader.x25519PrivateKey, { fid, owner: owner.address })).toEqual(DATA_KEY);
    }
    expect(openRequestsOf(twin.state)).toEqual([]);
    // Nothing left to answer: the next pass sends nothing.
    expect(await service.pass()).toEqual({ granted: [], failed: [] });
    expect(twin.submitted.length).toBe(before + 1);
  });

  it('splits many requests into batches of maxPerBatch', async () => {
    const twin = memoryChain();
    const fid = await declare(twin, 'g/batch', owner, [owner], { readers: [], price: 0n });
    for (const r of [listed, payer, stranger]) await requestBy(twin, r, fid);
    const before = twin.submitted.length;
    const pass = await createGrantService(
      { ...twin, account: owner, clock: systemClock },
      { maxPerBatch: 2 },
    ).pass();
    expect(pass.granted).toHaveLength(3);
    expect(twin.submitted.slice(before).map((s) => s.calls.length)).toEqual([2, 1]);
  });

  it('answers for an owner that authorised it only with its consent, never for others nor without the key', async () => {
    const twin = memoryChain();
    const foreign = await declare(twin, 'g/foreign', other, [other], { readers: [listed], price: null });
    // The owner authorised the operator, but wrapped the key only for itself.
    const keyless = await declare(twin, 'g/keyless', owner, [owner], { readers: [listed], price: null });
    const held = await declare(twin, 'g/held', owner, [owner, operator], { readers: [listed], price: null });
    await twin.run(owner, [remark('oss.authorize', { operator: operator.address })]);
    for (const fid of [foreign, keyless, held]) await requestBy(twin, listed, fid);
    const warnings: string[] = [];
    const serviceOf = (actsFor: string[]) =>
      createGrantService(
        {
          ...twin,
          account: operator,
          clock: systemClock,
          log: { info: () => {}, warn: (event) => warnings.push(event) },
        },
        { actsFor },
      );
    // The owner's authorisation alone enlists nobody's key service: without consent, nothing is even tried.
    const before = twin.submitted.length;
    expect(await serviceOf([]).pass()).toEqual({ granted: [], failed: [] });
    expect(twin.submitted.length).toBe(before);
    expect(warnings).toEqual([]);
    // With it, the service answers for the owner where it holds the key, and leaves the foreign object alone.
    const pass = await serviceOf([owner.address]).pass();
    expect(pass.granted).toEqual([
      expect.objectContaining({ fid: held, reader: listed.address, readerKey: listed.readerKey }),
    ]);
    expect(warnings).toEqual(['grant.no-key']);
    expect(grantOf(twin.state, held, listed.address)?.by).toBe(operator.address);
    expect(grantOf(twin.state, keyless, listed.address)).toBeUndefined();
    expect(grantOf(twin.state, foreign, listed.address)).toBeUndefined();
  });

  it("a wrap copied from another's object into one's own declaration opens nothing: the key service grants no key", async () => {
    const twin = memoryChain();
    // The victim's private object, its key wrapped for itself and for its key service (the operator).
    const victim = await declare(twin, 'g/victim', owner, [owner, operator], { readers: [], price: null });
    const stolen = fileOf(twin.state, victim)!.encryption!.wraps.find(
      (w) => w.recipient === operator.readerKey,
    )!;
    // The attack: `other` declares an object of its own carrying that wrap, names the same key service as its
    // operator, lists itself as a reader and asks for the key.
    const d = makeDeclaration('g/copycat', other.address, { encrypted: true });
    await twin.run(other, [
      ...spaceCalls(),
      remark('fileBank.uploadDeclaration', { ...d, encryption: { ...d.encryption!, wraps: [stolen] } }),
    ]);
    await twin.run(other, [remark('oss.authorize', { operator: operator.address })]);
    await twin.run(other, [remark('market.setTerms', { fid: d.fid, readers: [other.address], price: null })]);
    await requestBy(twin, other, d.fid);
    const warnings: string[] = [];
    // Even a key service that agreed to serve `other`: the wrap is bound to the victim's object and owner.
    const service = createGrantService(
      {
        ...twin,
        account: operator,
        clock: systemClock,
        log: { info: () => {}, warn: (event) => warnings.push(event) },
      },
      { actsFor: [other.address] },
    );
    expect(await service.pass()).toEqual({ granted: [], failed: [] });
    expect(grantOf(twin.state, d.fid, other.address)).toBeUndefined();
    expect(warnings).toEqual(['grant.no-key']);
  });

  it('never answers one request twice: not while its grant is in flight, nor after a timeout until retryAfterMs', async () => {
    const twin = memoryChain();
    const fid = await declare(twin, 'g/twice', owner, [owner], { readers: [listed], price: null });
    await requestBy(twin, listed, fid);
    const clock = manualClock(1_000);
    const service = createGrantService({ ...twin, account: owner, clock }, { retryAfterMs: 10_000 });

    // A pass whose extrinsic is still on its way, and a second pass meanwhile.
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    twin.hooks.beforeSubmit = () => held;
    const first = service.pass();
    await new Promise((r) => setTimeout(r, 10));
    const before = twin.submitted.length;
    expect(await service.pass()).toEqual({ granted: [], failed: [] });
    release();
    expect((await first).granted).toHaveLength(1);
    expect(twin.submitted.length).toBe(before + 1);

    // A submission that times out may still land: the request is left alone until retryAfterMs.
    await twin.run(owner, [
      remark('market.setTerms', { fid, readers: [listed.address, payer.address], price: null }),
    ]);
    await requestBy(twin, payer, fid);
    twin.hooks.beforeSubmit = async () => {
      throw new AilinkError('CHAIN_TIMEOUT', 'not finalized within 60000 ms; it may still land');
    };
    const timedOut = await service.pass();
    expect(timedOut.failed).toEqual([
      expect.objectContaining({ reader: payer.address, reason: expect.stringMatching(/may still land/) }),
    ]);
    twin.hooks.beforeSubmit = undefined;
    const submittedBefore = twin.submitted.length;
    expect(await service.pass()).toEqual({ granted: [], failed: [] });
    clock.advance(9_999);
    expect(await service.pass()).toEqual({ granted: [], failed: [] });
    expect(twin.submitted.length).toBe(submittedBefore);
    clock.advance(1);
    expect((await service.pass()).granted.map((g) => g.reader)).toEqual([payer.address]);
  });

  it('a reader key no key exchange works with fails alone and is not retried; the chain reason of a refused grant is reported', async () => {
    const twin = memoryChain();
    const fid = await declare(twin, 'g/bad-key', owner, [owner], {
      readers: [listed, stranger],
      price: null,
    });
    // A low-order X25519 point: wrapping for it fails.
    await twin.run(stranger, [remark('market.request', { fid, readerKey: '00'.repeat(32) })]);
    await requestBy(twin, listed, fid);
    const service = createGrantService({ ...twin, account: owner, clock: systemClock });
    const pass = await service.pass();
    expect(pass.granted.map((g) => g.reader)).toEqual([listed.address]);
    expect(pass.failed).toEqual([
      expect.objectContaining({
        reader: stranger.address,
        reason: expect.stringMatching(/unusable reader key/),
      }),
    ]);
    expect(await service.pass()).toEqual({ granted: [], failed: [] });

    // Another key service answered the same request first: the chain refuses the second grant, and says why.
    await twin.run(owner, [
      remark('market.setTerms', { fid, readers: [listed.address, payer.address], price: null }),
    ]);
    await requestBy(twin, payer, fid);
    twin.hooks.beforeSubmit = async () => {
      twin.hooks.beforeSubmit = undefined;
      await twin.chain.submit(owner, [
        remark('market.grant', {
          fid,
          reader: payer.address,
          wrap: wrapDataKey(DATA_KEY, fromHex(payer.readerKey), { fid, owner: owner.address }),
        }),
      ]);
    };
    const raced = await service.pass();
    expect(raced.granted).toEqual([]);
    expect(raced.failed).toEqual([
      expect.objectContaining({ reader: payer.address, reason: expect.stringMatching(/replayed grant/) }),
    ]);
  });

  it('start() runs passes until stop()', async () => {
    const twin = memoryChain();
    const fid = await declare(twin, 'g/start', owner, [owner], { readers: [listed], price: null });
    const service = createGrantService({ ...twin, account: owner, clock: systemClock }, { pollMs: 5 });
    const seen: string[] = [];
    const running = service.start((p) => seen.push(...p.granted.map((g) => g.reader)));
    await requestBy(twin, listed, fid);
    for (let i = 0; i < 200 && seen.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    await running.stop();
    expect(seen).toEqual([listed.address]);
  });
});

describe('createMarketClient', () => {
  /** A client for `reader`, with the owner's key service answering as the reader waits. */
  const clientFor = (twin: Twin, reader: Account) =>
    createMarketClient({ ...twin, account: reader, clock: systemClock, storage: noStorage });
  const withService = async <T>(twin: Twin, run: () => Promise<T>): Promise<T> => {
    const running = createGrantService(
      { ...twin, account: owner, clock: systemClock },
      { pollMs: 5 },
    ).start();
    try {
      return await run();
    } finally {
      await running.stop();
    }
  };

  it('a listed reader requests without paying and gets the key', async () => {
    const twin = memoryChain();
    const fid = await declare(twin, 'c/listed', owner, [owner], { readers: [listed], price: PRICE });
    const ticket = await withService(twin, () => clientFor(twin, listed).requestAccess(fid, { pollMs: 5 }));
    expect(ticket).toMatchObject({ fid, via: 'grant', paid: 0n });
    expect(twin.submitted.find((s) => s.signer === listed.address)?.calls).toEqual(['market.request']);
  });

  // Issue 15 item 10a: paid to the owner directly, the price was the owner's whether or not it ever released the
  // key. Paid into escrow at the pot, the owner is owed it only by the grant that releases the key.
  it('pays the price into escrow at the pot, directly before the request, when the reader agreed to it', async () => {
    const twin = memoryChain();
    const fid = await declare(twin, 'c/paid', owner, [owner], { readers: [listed], price: PRICE });
    const ticket = await withService(twin, () =>
      clientFor(twin, payer).requestAccess(fid, { maxPrice: PRICE * 2n, pollMs: 5 }),
    );
    expect(ticket).toMatchObject({ via: 'grant', paid: PRICE });
    expect(twin.submitted.find((s) => s.signer === payer.address)?.calls).toEqual([
      `transfer ${PRICE} to ${CONFIG.pot}`,
      'market.request',
    ]);
    expect(retrievalsOf(twin.state, fid).map((r) => [r.reader, r.paid])).toEqual([
      [payer.address, `${PRICE}`],
    ]);
    expect(debtsOf(twin.state).map(({ to, amount }) => ({ to, amount }))).toEqual([
      { to: owner.address, amount: `${PRICE}` },
    ]);
  });

  it('an owner that never releases the key is not paid: the request expires and the reader is owed its price back', async () => {
    const twin = memoryChain();
    const fid = await declare(twin, 'c/silent', owner, [owner], { readers: [], price: PRICE });
    await rejectsWith(
      clientFor(twin, payer).requestAccess(fid, { maxPrice: PRICE, pollMs: 5, deadlineMs: 50 }),
      'TIMEOUT',
    );
    await twin.mine(CONFIG.requestExpiryBlocks + 1);
    expect(openRequestsOf(twin.state, fid)).toEqual([]);
    expect(debtsOf(twin.state).map(({ to, amount }) => ({ to, amount }))).toEqual([
      { to: payer.address, amount: `${PRICE}` },
    ]);
  });

  it('without agreeing to the price: refused by the chain with ACCESS_DENIED, its reason and how to pay', async () => {
    const twin = memoryChain();
    const fid = await declare(twin, 'c/unpaid', owner, [owner], { readers: [listed], price: PRICE });
    const err = await rejectsWith(
      clientFor(twin, payer).requestAccess(fid, { maxPrice: PRICE - 1n }),
      'ACCESS_DENIED',
    );
    expect(err.message).toBe(
      `the chain refused the request: ${payer.address} is not on the access list of ${fid} and paid nothing to the owner ${owner.address} or into escrow at the pot (price ${PRICE}); it costs ${PRICE} planck per request: agree to pay it with --max-price ${PRICE}`,
    );
    expect(err.details).toMatchObject({ fid, price: `${PRICE}` });
    expect(twin.submitted.find((s) => s.signer === payer.address)?.calls).toEqual(['market.request']);
    expect(retrievalsOf(twin.state, fid)).toEqual([]);
  });

  it('not for sale: refused, pointing at the owner', async () => {
    const twin = memoryChain();
    const fid = await declare(twin, 'c/nfs', owner, [owner], { readers: [listed], price: null });
    const err = await rejectsWith(
      clientFor(twin, payer).requestAccess(fid, { maxPrice: PRICE }),
      'ACCESS_DENIED',
    );
    expect(err.message).toMatch(/which is not for sale; .*; ask its owner .* to list you$/);
  });

  it('no terms: a reader the key is wrapped for reads without a request; others are refused without a fee', async () => {
    const twin = memoryChain();
    const fid = await declare(twin, 'c/none', owner, [owner, listed]);
    const before = twin.submitted.length;
    expect(await clientFor(twin, listed).requestAccess(fid)).toEqual({
      fid,
      via: 'wrap',
      block: null,
      paid: 0n,
    });
    const err = await rejectsWith(
      clientFor(twin, payer).requestAccess(fid, { maxPrice: PRICE }),
      'ACCESS_DENIED',
    );
    expect(err.message).toMatch(/has no access terms .*\(ailink object terms /);
    expect(twin.submitted.length).toBe(before);
  });

  it('a request already accepted is waited on again, never paid twice', async () => {
    const twin = memoryChain();
    const fid = await declare(twin, 'c/open', owner, [owner], { readers: [], price: PRICE });
    const client = clientFor(twin, payer);
    const first = await rejectsWith(
      client.requestAccess(fid, { maxPrice: PRICE, deadlineMs: 50, pollMs: 5 }),
      'TIMEOUT',
    );
    expect(first.message).toMatch(/was accepted in block \d+ \(paid 1000\).*without paying again/);
    const submitted = twin.submitted.length;
    await rejectsWith(client.requestAccess(fid, { maxPrice: PRICE, deadlineMs: 50, pollMs: 5 }), 'TIMEOUT');
    expect(twin.submitted.length).toBe(submitted);
    // Waiting on the open request when the key service comes back.
    const waiting = client.requestAccess(fid, { maxPrice: PRICE, pollMs: 5 });
    await new Promise((r) => setTimeout(r, 20));
    expect(
      (await createGrantService({ ...twin, account: owner, clock: systemClock }).pass()).granted,
    ).toHaveLength(1);
    expect(await waiting).toMatchObject({ via: 'grant', paid: PRICE });
    expect(twin.submitted.length).toBe(submitted + 1); // the grant only
    expect(retrievalsOf(twin.state, fid)).toHaveLength(1);
  });

  it('a request answered while the reader was not waiting is reused on a retry, not paid again', async () => {
    const twin = memoryChain();
    const fid = await declare(twin, 'c/answered', owner, [owner], { readers: [], price: PRICE });
    const client = clientFor(twin, payer);
    // The reader paid, gave up waiting (a client-side timeout), and the owner's key service answered afterwards.
    await rejectsWith(client.requestAccess(fid, { maxPrice: PRICE, deadlineMs: 50, pollMs: 5 }), 'TIMEOUT');
    const [first] = retrievalsOf(twin.state, fid);
    expect(
      (await createGrantService({ ...twin, account: owner, clock: systemClock }).pass()).granted,
    ).toHaveLength(1);
    const submitted = twin.submitted.length;
    // Asking again (the same process or a new one: the chain says what it holds) takes the released key.
    for (const again of [client, clientFor(twin, payer)]) {
      expect(await again.requestAccess(fid, { maxPrice: PRICE, pollMs: 5 })).toEqual({
        fid,
        via: 'grant',
        block: first!.block,
        paid: PRICE,
      });
    }
    expect(twin.submitted.length).toBe(submitted);
    expect(retrievalsOf(twin.state, fid)).toHaveLength(1);
  });

  it('a paid request whose inclusion timed out is not paid again while it may still land', async () => {
    const twin = memoryChain();
    const fid = await declare(twin, 'c/in-flight', owner, [owner], { readers: [], price: PRICE });
    // The first paid extrinsic reaches the pool, but the client stops waiting before it is included; it lands later.
    const submit = twin.chain.submit.bind(twin.chain);
    let inFlight: (() => Promise<Inclusion>) | undefined;
    twin.chain.submit = async (signer, calls) => {
      if (inFlight === undefined && calls.some((c) => c.kind === 'transfer')) {
        inFlight = () => submit(signer, calls);
        throw new AilinkError('CHAIN_TIMEOUT', 'request was not finalized within 50 ms; it may still land');
      }
      return submit(signer, calls);
    };
    const client = clientFor(twin, payer);
    await rejectsWith(
      client.requestAccess(fid, { maxPrice: PRICE, deadlineMs: 50, pollMs: 5 }),
      'CHAIN_TIMEOUT',
    );
    const retry = await rejectsWith(
      client.requestAccess(fid, { maxPrice: PRICE, deadlineMs: 50, pollMs: 5 }),
      'TIMEOUT',
    );
    expect(retry.message).toMatch(/earlier paid request for .* may still land: not paying again/);
    expect(twin.submitted.filter((s) => s.signer === payer.address)).toEqual([]);
    // It lands: the retry waits on it, and the key service answers it.
    await inFlight!();
    const waiting = client.requestAccess(fid, { maxPrice: PRICE, pollMs: 5 });
    await new Promise((r) => setTimeout(r, 20));
    await createGrantService({ ...twin, account: owner, clock: systemClock }).pass();
    expect(await waiting).toMatchObject({ via: 'grant', paid: PRICE });
    const paid = twin.submitted
      .filter((s) => s.signer === payer.address)
      .flatMap((s) => s.calls)
      .filter((c) => c.startsWith('transfer'));
    expect(paid).toEqual([`transfer ${PRICE} to ${CONFIG.pot}`]);
    expect(retrievalsOf(twin.state, fid)).toHaveLength(1);
  });

  it('unknown, unencrypted, cancelled', async () => {
    const twin = memoryChain();
    await rejectsWith(clientFor(twin, payer).requestAccess(hex('nothing')), 'OBJECT_NOT_FOUND');
    const plain = makeDeclaration('c/plain', owner.address);
    await twin.run(owner, [...spaceCalls(), remark('fileBank.uploadDeclaration', plain)]);
    expect(await clientFor(twin, payer).requestAccess(plain.fid)).toMatchObject({
      via: 'plain',
      block: null,
    });
    const fid = await declare(twin, 'c/cancel', owner, [owner], { readers: [listed], price: null });
    const controller = new AbortController();
    const waiting = clientFor(twin, listed).requestAccess(fid, { signal: controller.signal, pollMs: 5 });
    setTimeout(() => controller.abort(), 30);
    await rejectsWith(waiting, 'ABORTED');
  });

  it('setTerms checks its input before anything is sent; accessLog says whose key was released', async () => {
    const twin = memoryChain();
    const fid = await declare(twin, 'c/log', owner, [owner], { readers: [listed], price: PRICE });
    const client = clientFor(twin, owner);
    const before = twin.submitted.length;
    await rejectsWith(client.setTerms(fid, { readers: ['alice'], price: 0n }), 'INVALID_INPUT');
    await rejectsWith(client.setTerms(fid, { readers: [], price: -1n }), 'INVALID_INPUT');
    await rejectsWith(client.setTerms(hex('nothing'), { readers: [], price: 0n }), 'OBJECT_NOT_FOUND');
    expect(twin.submitted.length).toBe(before);
    await rejectsWith(
      client.setTerms(fid, { readers: [listed.address], price: PRICE }),
      'CHAIN_CALL_REJECTED',
    );
    await client.setTerms(fid, { readers: [listed.address, stranger.address], price: PRICE });
    expect(await client.terms(fid)).toMatchObject({ readers: [listed.address, stranger.address] });

    await requestBy(twin, owner, fid); // the owner, whose key is wrapped in the declaration
    await requestBy(twin, listed, fid);
    await createGrantService({ ...twin, account: owner, clock: systemClock }).pass();
    await requestBy(twin, stranger, fid);
    expect((await client.accessLog(fid)).map((r) => [r.reader, r.paid, r.keyReleased])).toEqual([
      [owner.address, 0n, true],
      [listed.address, 0n, true],
      [stranger.address, 0n, false],
    ]);
  });
});
