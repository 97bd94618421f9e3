import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AggregationError } from '../../src/aggregation/errors.ts';
import { neighbourGraph } from '../../src/aggregation/graph.ts';
import { agreementKeyPair, signingKeyPair } from '../../src/aggregation/keys.ts';
import { addInto } from '../../src/aggregation/quantize.ts';
import {
  type AbortBody,
  createSecAggClient,
  createSecAggServer,
  type SecAggClient,
  type SecAggParams,
  type Signed,
  shareKey,
  signed,
  verifyAbort,
} from '../../src/aggregation/secagg.ts';

const random = (n: number) => new Uint8Array(randomBytes(n));
const STAGES = ['advertise', 'shares', 'masked', 'consistency', 'unmask'] as const;
type Drops = Record<(typeof STAGES)[number], ReadonlySet<string>>;

function cohort(n: number, k: number, t: number, d: number) {
  const ids = Array.from({ length: n }, (_, i) => `c${String(i).padStart(3, '0')}`);
  const keys = new Map(ids.map((id) => [id, signingKeyPair(random)]));
  const params: SecAggParams = {
    context: `task-7/round-${Math.floor(Math.random() * 1e6)}`,
    identities: new Map(ids.map((id) => [id, keys.get(id)!.publicKey])),
    k,
    t,
    graphSeed: random(32),
    dimension: d,
  };
  const clients = new Map(
    ids.map((id) => [id, createSecAggClient(id, { identityKey: keys.get(id)!.privateKey, random }, params)]),
  );
  const inputs = new Map(ids.map((id) => [id, new Uint32Array(random(4 * d).buffer)]));
  return { ids, keys, params, clients, inputs };
}

/** Runs a client step; a client that aborts (unsafe to go on) simply stops, like a dropout. */
async function attempt<T>(f: () => T | Promise<T>): Promise<T | undefined> {
  try {
    return await f();
  } catch (err) {
    if (err instanceof AggregationError && err.code === 'SECAGG_ABORTED') return undefined;
    throw err;
  }
}

async function run(c: ReturnType<typeof cohort>, drops: Drops) {
  const server = createSecAggServer(c.params);
  /** The messages of one stage from every client still in it; a client that drops or aborts sends nothing. */
  const stage = async <T extends { from: string }>(
    ids: Iterable<string>,
    name: keyof Drops,
    step: (client: SecAggClient, id: string) => T | Promise<T>,
  ): Promise<T[]> => {
    const out: T[] = [];
    for (const id of [...ids].filter((x) => !drops[name].has(x))) {
      const m = await attempt(() => step(c.clients.get(id)!, id));
      if (m) out.push(m);
    }
    return out;
  };
  const adverts = await stage(c.ids, 'advertise', (client) => client.advertise());
  const routedAdverts = server.collectAdverts(adverts);
  const shares = await stage(routedAdverts.keys(), 'shares', (client, id) =>
    client.shareKeys(routedAdverts.get(id)!),
  );
  const routedShares = server.collectShares(shares);
  const masked = await stage(
    shares.map((m) => m.from),
    'masked',
    (client, id) => client.maskedInput(routedShares.get(id) ?? [], c.inputs.get(id)!),
  );
  const survivors = server.collectMasked(masked);
  const confirmations = await stage(survivors, 'consistency', (client) => client.consistency(survivors));
  const signatures = server.collectConsistency(confirmations);
  const reveals = await stage(
    confirmations.map((m) => m.from),
    'unmask',
    (client) => client.unmask(signatures),
  );
  return server.unmask(reveals);
}

function plainSum(c: ReturnType<typeof cohort>, ids: readonly string[], d: number): Uint32Array {
  const sum = new Uint32Array(d);
  for (const id of ids) addInto(sum, c.inputs.get(id)!);
  return sum;
}

describe('SecAgg+ end to end (pure state machines)', () => {
  it('with no dropouts the unmasked sum equals the plain sum, bit for bit', async () => {
    const c = cohort(12, 6, 4, 50);
    const none = new Set<string>();
    const result = await run(c, {
      advertise: none,
      shares: none,
      masked: none,
      consistency: none,
      unmask: none,
    });
    expect(result.survivors).toEqual(c.ids);
    expect([...result.sum]).toEqual([...plainSum(c, c.ids, 50)]);
  });

  it('property: random n, k, t, d and dropouts at every stage → the exact sum of the survivors, or a typed abort', async () => {
    const outcomes = { completed: 0, completedWithDropouts: 0, aborted: 0 };
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 5, max: 16 }),
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 40 }),
        // A client drops at stage v (0..4) when v < 5, else never: about 1 in 12 clients drops somewhere.
        fc.array(fc.integer({ min: 0, max: 59 }), { minLength: 16, maxLength: 16 }),
        async (n, half, d, stageOfDrop) => {
          const k = Math.min(2 * half, n % 2 === 0 ? n - 2 : n - 1);
          const t = Math.floor(k / 2) + 1;
          const c = cohort(n, k, t, d);
          // Each client drops at one stage (0..4) or never (5), drawn by fast-check.
          const drops = Object.fromEntries(
            STAGES.map((s, i) => [s, new Set(c.ids.filter((_, j) => stageOfDrop[j] === i))]),
          ) as unknown as Drops;
          try {
            const result = await run(c, drops);
            // Survivors are exactly those that sent a masked input: none that dropped earlier.
            for (const id of result.survivors)
              expect(stageOfDrop[c.ids.indexOf(id)] ?? 59).toBeGreaterThanOrEqual(3);
            expect([...result.sum]).toEqual([...plainSum(c, result.survivors, d)]);
            outcomes.completed++;
            if (result.survivors.length < n) outcomes.completedWithDropouts++;
          } catch (err) {
            expect(err).toBeInstanceOf(AggregationError);
            expect((err as AggregationError).code).toBe('SECAGG_ABORTED');
            // An abort must be justified: some live client had fewer than t live neighbours at some stage.
            const graph = neighbourGraph(c.ids, k, c.params.graphSeed);
            const justified = STAGES.some((_, stage) => {
              const alive = new Set(c.ids.filter((id) => (stageOfDrop[c.ids.indexOf(id)] ?? 59) > stage));
              return [...alive].some((id) => graph.get(id)!.filter((x) => alive.has(x)).length < t);
            });
            expect(justified).toBe(true);
            outcomes.aborted++;
          }
        },
      ),
      { numRuns: 120 },
    );
    // The property must exercise both outcomes, and sums with real dropouts in them.
    expect(outcomes.completedWithDropouts).toBeGreaterThan(5);
    expect(outcomes.aborted).toBeGreaterThan(0);
  }, 60_000);
});

/** Runs the protocol honestly up to every client's masked input, which the server has not collected yet. */
async function upToShares(n: number, k: number, t: number, d: number) {
  const c = cohort(n, k, t, d);
  const server = createSecAggServer(c.params);
  const routedAdverts = server.collectAdverts(c.ids.map((id) => c.clients.get(id)!.advertise()));
  const shares = await Promise.all(c.ids.map((id) => c.clients.get(id)!.shareKeys(routedAdverts.get(id)!)));
  const routedShares = server.collectShares(shares);
  const masked = c.ids.map((id) =>
    c.clients.get(id)!.maskedInput(routedShares.get(id) ?? [], c.inputs.get(id)!),
  );
  return { c, server, shares, routedShares, masked };
}

describe('SecAgg+ server summing as inputs arrive (addMasked)', () => {
  it('property: inputs added one at a time, in any order, with duplicates and forgeries among them, unmask to the plain sum of those taken', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 6, max: 10 }),
        fc.integer({ min: 1, max: 12 }),
        fc.array(fc.nat(), { minLength: 1, maxLength: 24 }),
        async (n, d, picks) => {
          const { c, server, masked } = await upToShares(n, 4, 3, d);
          // Arrival order drawn by fast-check: some inputs twice, some never, one with a flipped word.
          const arrivals = picks.map((p) => masked[p % n]!);
          const forged = { ...masked[0]!, body: { masked: masked[0]!.body.masked.map((w) => w ^ 1) } };
          const taken = new Set<string>();
          for (const m of [forged, ...arrivals]) {
            const added = server.addMasked(m);
            expect(added).toBe(m !== forged && !taken.has(m.from));
            if (added) taken.add(m.from);
          }
          let survivors: string[];
          try {
            survivors = server.closeMasked();
          } catch (err) {
            expect((err as AggregationError).code).toBe('SECAGG_ABORTED');
            return;
          }
          expect(survivors).toEqual([...taken].sort());
          const signatures = server.collectConsistency(
            survivors.map((id) => c.clients.get(id)!.consistency(survivors)),
          );
          const result = await server.unmask(
            signatures.map((m) => c.clients.get(m.from)!.unmask(signatures)),
          );
          expect([...result.sum]).toEqual([...plainSum(c, survivors, d)]);
        },
      ),
      { numRuns: 40 },
    );
  }, 60_000);

  it('an input after the stage closed is refused and changes nothing', async () => {
    const { server, masked } = await upToShares(6, 4, 3, 8);
    for (const m of masked.slice(0, 5)) expect(server.addMasked(m)).toBe(true);
    const survivors = server.closeMasked();
    expect(server.addMasked(masked[5]!)).toBe(false);
    expect(server.rejected.at(-1)?.message).toMatch(/after the stage closed/);
    expect(server.expecting()).toEqual(survivors);
  });
});

describe('SecAgg+ fails closed against a lying server and bad messages', () => {
  /** Runs the protocol up to the survivor list, honestly. */
  async function upToMasked(n = 8, k = 4, t = 3, d = 16) {
    const { c, server, shares, routedShares, masked } = await upToShares(n, k, t, d);
    const survivors = server.collectMasked(masked);
    expect(server.expecting()).toEqual(survivors);
    return { c, server, shares, routedShares, masked, survivors };
  }

  it('the server cannot XOR two directions of a pair: A→B and B→A never share a key and nonce', async () => {
    const { shares } = await upToMasked();
    const sealed = new Map(
      shares.flatMap((m) => m.body.sealed.map((x) => [`${m.from}->${x.to}`, Buffer.from(x.ciphertext)])),
    );
    // The plaintext is [len a | a | len b | b] with equal lengths both ways: under one keystream the two length bytes
    // XOR to zero in every pair, which is what a reused key and nonce would show the server.
    let pairs = 0;
    let lengthBytesCancel = 0;
    for (const [edge, ab] of sealed) {
      const [a, b] = edge.split('->') as [string, string];
      const ba = sealed.get(`${b}->${a}`);
      if (a > b || ba === undefined) continue;
      pairs++;
      const aLen = (ab.byteLength - 18) / 2;
      if ((ab[0]! ^ ba[0]!) === 0 && (ab[1 + aLen]! ^ ba[1 + aLen]!) === 0) lengthBytesCancel++;
    }
    expect(pairs).toBeGreaterThan(5);
    expect(lengthBytesCancel).toBeLessThan(pairs);
  });

  it('each direction of a pair derives its own share key, the same at both ends', () => {
    const a = agreementKeyPair(random);
    const b = agreementKeyPair(random);
    const aToB = shareKey(a, b.publicKey, 'task/round-1', 'a', 'b');
    expect(Buffer.from(shareKey(b, a.publicKey, 'task/round-1', 'a', 'b'))).toEqual(Buffer.from(aToB));
    expect(Buffer.from(shareKey(b, a.publicKey, 'task/round-1', 'b', 'a'))).not.toEqual(Buffer.from(aToB));
  });

  it('a server that shows different survivor lists to different clients is caught before any share is revealed', async () => {
    const { c, survivors } = await upToMasked();
    const victim = survivors[0]!;
    const shortened = survivors.filter((id) => id !== survivors[1]);
    const confirmations = c.ids.map((id) =>
      c.clients
        .get(id)!
        .consistency(id === victim ? survivors : shortened.includes(id) ? shortened : survivors),
    );
    for (const id of shortened) {
      expect(() => c.clients.get(id)!.unmask(confirmations)).toThrow(
        expect.objectContaining({ code: 'SECAGG_ABORTED', message: expect.stringMatching(/equivocates/) }),
      );
    }
  });

  it('a client reported as dropped after sending its input reveals nothing, and its neighbours never reveal its self mask', async () => {
    const { c, survivors } = await upToMasked();
    const hidden = survivors[2]!;
    const claimed = survivors.filter((id) => id !== hidden); // the server pretends `hidden` dropped, but holds its y
    expect(() => c.clients.get(hidden)!.consistency(claimed)).toThrow(
      expect.objectContaining({ code: 'SECAGG_ABORTED' }),
    );
    const confirmations = claimed.map((id) => c.clients.get(id)!.consistency(claimed));
    const reveals = claimed.map((id) => c.clients.get(id)!.unmask(confirmations));
    // What the server gets for `hidden`: its mask secret (to remove pair masks) but never its self-mask seed, so
    // hidden's masked input stays masked by PRG(b_hidden).
    const aboutHidden = reveals.flatMap((m) => m.body.revealed.filter((r) => r.of === hidden));
    expect(aboutHidden.length).toBeGreaterThan(0);
    expect(aboutHidden.every((r) => r.kind === 'secret')).toBe(true);
  });

  it('a share re-addressed to another client does not open (SECAGG_BAD_MESSAGE)', async () => {
    const c = cohort(8, 4, 3, 8);
    const server = createSecAggServer(c.params);
    const routedAdverts = server.collectAdverts(c.ids.map((id) => c.clients.get(id)!.advertise()));
    const shares = await Promise.all(c.ids.map((id) => c.clients.get(id)!.shareKeys(routedAdverts.get(id)!)));
    const routed = server.collectShares(shares);
    const [a, b] = c.ids;
    const forB = routed.get(b!)!;
    // Deliver to `a` a share that was sealed for `b`, claiming it is from a sender `a` knows.
    const target = routed.get(a!)!;
    const forged = [...target.slice(1), { from: target[0]!.from, ciphertext: forB[0]!.ciphertext }];
    expect(() => c.clients.get(a!)!.maskedInput(forged, c.inputs.get(a!)!)).toThrow(
      expect.objectContaining({ code: 'SECAGG_BAD_MESSAGE' }),
    );
  });

  it('replayed, forged and malformed messages are refused and their senders treated as dropouts', async () => {
    const c = cohort(10, 6, 4, 8);
    const other = cohort(10, 6, 4, 8); // another round: same ids, other keys and context
    const server = createSecAggServer(c.params);
    const honest = c.ids.map((id) => c.clients.get(id)!.advertise());
    const replayed = other.clients.get(c.ids[0]!)!.advertise(); // from another round
    const forged = { ...honest[1]!, body: { ...honest[1]!.body, cPk: random(32) } }; // body changed after signing
    const wrongStage = { ...honest[2]!, stage: 'shares' as const };
    // The bad copies arrive first; the honest messages of the same clients still count afterwards.
    const routed = server.collectAdverts([replayed, forged, wrongStage, ...honest]);
    expect(routed.size).toBe(10);
    expect(server.rejected.map((e) => e.code)).toEqual([
      'SECAGG_BAD_MESSAGE',
      'SECAGG_BAD_MESSAGE',
      'SECAGG_BAD_MESSAGE',
    ]);
  });

  it('a validly signed but malformed message is refused with SECAGG_BAD_MESSAGE, and its sender counts as a dropout', () => {
    const c = cohort(10, 6, 4, 8);
    const server = createSecAggServer(c.params);
    const honest = c.ids.map((id) => c.clients.get(id)!.advertise());
    const liar = c.ids[0]!;
    const malformed = [
      signed('advertise', c.params.context, liar, c.keys.get(liar)!.privateKey, {
        cPk: new Uint8Array(5),
        sPk: new Uint8Array(32),
      }),
      signed('advertise', c.params.context, liar, c.keys.get(liar)!.privateKey, {
        cPk: 'not bytes',
      } as never),
    ];
    server.collectAdverts([...malformed, ...honest]);
    expect(server.rejected.map((e) => e.code)).toEqual(['SECAGG_BAD_MESSAGE', 'SECAGG_BAD_MESSAGE']);
    expect(server.rejected[0]!.message).toMatch(/malformed/);
  });

  it('a masked input of the wrong length is refused and its sender treated as a dropout; the sum stays exact', async () => {
    const { c, server, masked } = await upToShares(12, 6, 4, 16);
    const short = { ...masked[0]!, body: { masked: masked[0]!.body.masked.subarray(0, 8) } };
    const survivors = server.collectMasked([short, ...masked.slice(1)]);
    expect(survivors).not.toContain(c.ids[0]);
    expect(server.rejected.map((e) => e.code)).toContain('SECAGG_BAD_MESSAGE');
    const confirmations = survivors.map((id) => c.clients.get(id)!.consistency(survivors));
    const signatures = server.collectConsistency(confirmations);
    const result = await server.unmask(survivors.map((id) => c.clients.get(id)!.unmask(signatures)));
    expect([...result.sum]).toEqual([...plainSum(c, survivors, 16)]);
  });

  it('unmask hands over its own sum once: an unmask that fails on a dropout’s secret leaves it whole, a second is refused', async () => {
    const { c, server, masked } = await upToShares(5, 4, 3, 32);
    // c000 drops before its masked input: unmasking needs every survivor's self-mask seed and c000's mask secret.
    const survivors = server.collectMasked(masked.slice(1));
    const signatures = server.collectConsistency(
      survivors.map((id) => c.clients.get(id)!.consistency(survivors)),
    );
    const reveals = survivors.map((id) => c.clients.get(id)!.unmask(signatures));
    // Each survivor reveals a corrupted share of c000's secret, signed by itself: the self-mask seeds all recover,
    // the secret does not. Had the server unmasked as it went, the self masks would be gone from its sum by then.
    const corrupted = reveals.map((m) =>
      signed('unmask', c.params.context, m.from, c.keys.get(m.from)!.privateKey, {
        revealed: m.body.revealed.map((r) =>
          r.kind === 'secret'
            ? { ...r, share: r.share.map((b, i) => (i === r.share.length - 1 ? b ^ 1 : b)) }
            : r,
        ),
      }),
    );
    await expect(server.unmask(corrupted)).rejects.toMatchObject({ code: 'SECAGG_ABORTED' });
    const result = await server.unmask(reveals);
    expect([...result.sum]).toEqual([...plainSum(c, survivors, 32)]);
    await expect(server.unmask(reveals)).rejects.toMatchObject({ code: 'SECAGG_BAD_MESSAGE' });
  });

  it('the server signs its abort reason; anyone holding its key can check it, and a changed reason fails', () => {
    const serverKeys = signingKeyPair(random);
    const c = cohort(8, 4, 3, 8);
    const params = { ...c.params, serverKey: serverKeys.publicKey };
    const server = createSecAggServer(params, { identityKey: serverKeys.privateKey });
    let caught: AggregationError | undefined;
    try {
      server.collectAdverts(c.ids.slice(0, 2).map((id) => c.clients.get(id)!.advertise()));
    } catch (err) {
      caught = err as AggregationError;
    }
    expect(caught?.code).toBe('SECAGG_ABORTED');
    const signedReason = caught!.details!.signedReason as Signed<AbortBody>;
    expect(signedReason.body.reason).toBe(caught!.message);
    expect(verifyAbort(params, signedReason)).toBe(true);
    expect(verifyAbort(params, { ...signedReason, body: { ...signedReason.body, reason: 'all fine' } })).toBe(
      false,
    );
    expect(verifyAbort({ ...params, serverKey: signingKeyPair(random).publicKey }, signedReason)).toBe(false);
  });

  it('too few survivors end the protocol with a typed abort, not a wrong sum', async () => {
    const c = cohort(8, 4, 3, 8);
    const server = createSecAggServer(c.params);
    const few = c.ids.slice(0, 2).map((id) => c.clients.get(id)!.advertise());
    expect(() => server.collectAdverts(few)).toThrow(expect.objectContaining({ code: 'SECAGG_ABORTED' }));
  });

  it('refuses parameters where t ≤ k/2 (two disjoint halves of a neighbourhood could both pass)', () => {
    expect(() => cohort(8, 4, 2, 8)).toThrow(expect.objectContaining({ code: 'SECAGG_INVALID_PARAMETERS' }));
  });
});
