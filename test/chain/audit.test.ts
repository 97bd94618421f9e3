import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CESS_AUDIT, parseProtocolConfig, protocolConfigToJson } from '../../src/chain/config.ts';
import {
  type AuditRecord,
  auditResultMessage,
  type Challenge,
  challengeKey,
  recordOf,
} from '../../src/chain/pallets/audit.ts';
import type { ProtocolConfig } from '../../src/chain/pallets/context.ts';
import {
  columnDigest,
  columnHashes,
  type FileInfo,
  type RestoralOrder,
  taggedKey,
  tagReportMessage,
} from '../../src/chain/pallets/file-bank.ts';
import { debtsOf } from '../../src/chain/pallets/pot.ts';
import type { MinerInfo } from '../../src/chain/pallets/sminer.ts';
import { applyBlockHooks, applyCall } from '../../src/chain/protocol.ts';
import { createMemoryState, type StateStore } from '../../src/chain/state.ts';
import { type Account, accountsReady } from '../../src/shared/account.ts';
import { toHex } from '../../src/shared/bytes.ts';
import {
  CONFIG,
  call,
  ctxAt,
  type Declaration,
  hex,
  makeAccounts,
  makeDeclaration,
  makeReceipt,
  peerIdOf,
  peerSignatureOf,
  registerVerifier,
} from './helpers.ts';

/**
 * The audit module as a fold: block hooks issue and settle challenges, calls submit results, tag reports and idle
 * commitments. CONFIG (helpers.ts): a challenge every 5 blocks for 2 miners, 3 base blocks + 1 per 4 KiB to answer,
 * 5 % then 15 % slashed, forced exit after 4 misses in a row.
 */

let miners: Account[];
let owner: Account;
let verifier: Account;
let impostor: Account;
/** A second verifier of the network's set, registered only where a test needs two. */
let verifier2: Account;
/** CONFIG with `verifier` and `verifier2` as the network's verifier set (the genesis `verifiers`). */
let config: ProtocolConfig;

beforeAll(async () => {
  await accountsReady();
  miners = makeAccounts('audit/miner', 13);
  [owner, verifier, impostor, verifier2] = makeAccounts('audit/other', 4) as [
    Account,
    Account,
    Account,
    Account,
  ];
  config = { ...CONFIG, verifiers: [verifier.address, verifier2.address] };
});

/** A chain of blocks over a memory state: hooks run first in every block, then the calls, like the indexer. */
function createChain(state: StateStore = createMemoryState()) {
  let height = 0;
  const c = {
    state,
    get height() {
      return height;
    },
    /** Seals the next block with these calls; returns each call's outcome. */
    block(...calls: [Account, ReturnType<typeof call>, bigint?][]) {
      height += 1;
      const hook = applyBlockHooks(state, ctxAt('', height, 0n, [], config));
      state.apply(hook);
      return calls.map(([who, c, paid]) => {
        // `paid`: a transfer to the pot directly before the call (a registration's collateral).
        const payments = paid === undefined ? [] : [{ to: config.pot, amount: paid }];
        const outcome = applyCall(state, ctxAt(who.address, height, paid ?? 0n, payments, config), c);
        if (outcome.kind !== 'foreign') state.apply(outcome.writes ?? []);
        return outcome;
      });
    },
    /** Seals empty blocks until `n` is the last one. */
    until(n: number) {
      while (height < n) c.block();
    },
  };
  return c;
}
type TestChain = ReturnType<typeof createChain>;

const challengeOf = (c: TestChain, m: Account) => c.state.get<Challenge>(challengeKey(m.address));
/** Seals blocks until `m` has an open challenge (at most 50). */
function nextChallenge(c: TestChain, m: Account): Challenge {
  for (let i = 0; i < 50 && challengeOf(c, m) === undefined; i++) c.block();
  return challengeOf(c, m) ?? expect.fail(`no challenge for ${m.address} by block ${c.height}`);
}
const minerInfo = (c: TestChain, m: Account) => c.state.get<MinerInfo>(`sminer/miners/${m.address}`)!;
const applied = (outcomes: { kind: string }[]) =>
  expect(outcomes.map((o) => o.kind)).toEqual(outcomes.map(() => 'applied'));
const rejected = (outcome: { kind: string; reason?: string }, reason: RegExp) => {
  expect(outcome.kind).toBe('rejected');
  expect(outcome.reason).toMatch(reason);
};

/** 13 miners, a verifier, and a 12-column file (4 + 8, two segments of 1 KiB) held by miners 0..11. */
function setUp(): { c: TestChain; d: Declaration } {
  const c = createChain();
  applied(
    c.block(
      ...miners.map(
        (m) =>
          [
            m,
            call('sminer.register', {
              peerId: peerIdOf(m),
              addrs: [],
              capacity: 64 * 1024,
              collateral: '10000',
              peerSignature: peerSignatureOf(m, 'sminer.register'),
            }),
            10_000n,
          ] as [Account, ReturnType<typeof call>, bigint],
      ),
      [verifier, registerVerifier(verifier, hex('key'))],
    ),
  );
  const d = makeDeclaration('audit/file', owner.address, { data: 4, parity: 8, segments: 2 });
  applied(
    c.block(
      [owner, call('storageHandler.buySpace', { gib: 1 }), CONFIG.spacePrice],
      [owner, call('fileBank.uploadDeclaration', d)],
      [
        owner,
        call('fileBank.transferReport', {
          fid: d.fid,
          receipts: miners.slice(0, 12).map((m, i) => makeReceipt(m, d, i)),
        }),
      ],
    ),
  );
  return { c, d };
}

const tagReport = (d: Declaration, index: number, holder: Account, signer = verifier, claimed = verifier) =>
  call('fileBank.calculateReport', {
    fid: d.fid,
    index,
    verifier: claimed.address,
    signature: toHex(
      signer.sign(
        tagReportMessage(holder.address, d.fid, index, columnDigest(columnHashes(d.segments, index))),
      ),
    ),
  });

const result = (ch: Challenge, miner: Account, proof = hex('proof'), signer = verifier, claimed = verifier) =>
  call('audit.submitResult', {
    miner: miner.address,
    challenge: ch.issuedAt,
    proof,
    verifier: claimed.address,
    signature: toHex(signer.sign(auditResultMessage(miner.address, ch.issuedAt, ch.seed, proof))),
  });

describe('fileBank.calculateReport', () => {
  it('records the holder once a registered verifier signed the column; a restoral clears it', () => {
    const { c, d } = setUp();
    applied(c.block([miners[3]!, tagReport(d, 3, miners[3]!)]));
    expect(c.state.get(taggedKey(d.fid, 3))).toBe(miners[3]!.address);
    applied(
      c.block(
        [owner, call('fileBank.generateRestoralOrder', { fid: d.fid, index: 3 })],
        [miners[12]!, call('fileBank.claimRestoralOrder', { fid: d.fid, index: 3 })],
        [miners[12]!, call('fileBank.restoralComplete', { fid: d.fid, index: 3 })],
      ),
    );
    expect(c.state.get(taggedKey(d.fid, 3))).toBeUndefined();
  });

  it('is refused for another miner’s column, a signature by a non-verifier, or one over another column', () => {
    const { c, d } = setUp();
    const before = JSON.stringify(c.state.scan(''));
    const [notHolder, impostorSigned, claimedVerifier, otherColumn] = c.block(
      [miners[4]!, tagReport(d, 3, miners[4]!)],
      [miners[3]!, tagReport(d, 3, miners[3]!, impostor, impostor)],
      [miners[3]!, tagReport(d, 3, miners[3]!, impostor, verifier)],
      [
        miners[3]!,
        { ...tagReport(d, 4, miners[3]!), args: { ...tagReport(d, 4, miners[3]!).args, index: 3 } } as never,
      ],
    );
    rejected(notHolder!, /is held by .*, not /);
    rejected(impostorSigned!, /not a registered verifier/);
    rejected(claimedVerifier!, /not signed by verifier/);
    rejected(otherColumn!, /not signed by verifier/);
    expect(JSON.stringify(c.state.scan('fileBank/'))).toBe(
      JSON.stringify(JSON.parse(before).filter(([k]: [string]) => k.startsWith('fileBank/'))),
    );
  });
});

describe('challenges', () => {
  let c: TestChain;
  let d: Declaration;
  beforeEach(() => {
    ({ c, d } = setUp());
    // Miners 0..5 have their columns tagged; 6..11 hold untagged columns; 12 holds nothing.
    applied(
      c.block(
        ...miners.slice(0, 6).map((m, i) => [m, tagReport(d, i, m)] as [Account, ReturnType<typeof call>]),
      ),
    );
  });

  it('are issued every `challengeInterval` blocks to random miners with something to prove, with a snapshot and a deadline', () => {
    c.until(4);
    expect(c.state.scan('audit/challenges/')).toEqual([]);
    c.until(5);
    const open = c.state.scan('audit/challenges/');
    expect(open).toHaveLength(CONFIG.audit.challengeMiners);
    for (const [key, value] of open) {
      const miner = key.slice('audit/challenges/'.length);
      const index = miners.findIndex((m) => m.address === miner);
      expect(index).toBeGreaterThanOrEqual(0);
      expect(index).toBeLessThan(6); // only tagged columns put a miner in the draw
      const ch = value as Challenge;
      const size = 1024 / 4;
      expect(ch.fragments).toEqual(
        columnHashes(d.segments, index)
          .map((name) => ({ name, size }))
          .sort((a, b) => (a.name < b.name ? -1 : 1)),
      );
      expect(ch).toMatchObject({ issuedAt: 5, idle: [], serviceBytes: 2 * size, idleBytes: 0, result: null });
      expect(ch.seed).toMatch(/^[0-9a-f]{64}$/);
      // CESS: base + bytes ÷ bytes-per-block.
      expect(ch.deadline).toBe(
        5 + CONFIG.audit.slipBaseBlocks + Math.ceil((2 * size) / CONFIG.audit.serviceBytesPerBlock),
      );
    }
  });

  it('pick different miners as the block hash changes, and the same ones for the same hash', () => {
    const picked = new Set<string>();
    for (let round = 0; round < 6; round++) {
      c.until(c.height + (5 - (c.height % 5)));
      for (const [key] of c.state.scan('audit/challenges/')) picked.add(key);
      // Settle everything: jump past the deadlines.
      c.until(c.height + CONFIG.audit.slipBaseBlocks + 2);
    }
    expect(picked.size).toBeGreaterThan(2);
    // The same state and block hash always issue the same challenges (every indexer agrees).
    const fresh = setUp();
    applied(
      fresh.c.block(
        ...miners
          .slice(0, 6)
          .map((m, i) => [m, tagReport(fresh.d, i, m)] as [Account, ReturnType<typeof call>]),
      ),
    );
    const hooksAt = (hash: string) => {
      const ctx = ctxAt('', 5, 0n, [], config);
      return applyBlockHooks(fresh.c.state, { ...ctx, block: { ...ctx.block, hash } });
    };
    const once = hooksAt(hex('hash a'));
    expect(once.filter((w) => w.key.startsWith('audit/challenges/'))).toHaveLength(
      CONFIG.audit.challengeMiners,
    );
    expect(hooksAt(hex('hash a'))).toEqual(once);
  });

  it('a passing result signed by the verifier settles as a pass', () => {
    c.until(5);
    const [[key, value]] = c.state.scan('audit/challenges/') as [[string, Challenge]];
    const m = miners.find((a) => key.endsWith(a.address))!;
    applied(c.block([m, result(value, m)]));
    expect(challengeOf(c, m)!.result).toEqual({ verifier: verifier.address, proof: hex('proof'), block: 6 });
    c.until(value.deadline + 1);
    expect(challengeOf(c, m)).toBeUndefined();
    expect(recordOf(c.state, m.address)).toMatchObject({
      passes: 1,
      misses: 0,
      consecutiveMisses: 0,
      penalties: 0,
    });
  });

  it('refuses forged, misdirected, replayed and late results, writing nothing', () => {
    c.until(5);
    const [[key, ch]] = c.state.scan('audit/challenges/') as [[string, Challenge]];
    const m = miners.find((a) => key.endsWith(a.address))!;
    const other = miners.find((a) => a !== m)!;
    const before = JSON.stringify(c.state.scan('audit/'));
    const [byImpostor, claimingVerifier, wrongChallenge, forOther, otherSeed] = c.block(
      [m, result(ch, m, hex('proof'), impostor, impostor)],
      [m, result(ch, m, hex('proof'), impostor, verifier)],
      [m, result({ ...ch, issuedAt: 4 }, m)],
      [m, result(ch, other)],
      [m, result({ ...ch, seed: hex('another seed') }, m)],
    );
    rejected(byImpostor!, /not a registered verifier/);
    rejected(claimingVerifier!, /not signed by verifier/);
    rejected(wrongChallenge!, /no open challenge issued at block 4/);
    rejected(forOther!, /has no open challenge|not signed/);
    rejected(otherSeed!, /not signed by verifier/);
    expect(JSON.stringify(c.state.scan('audit/'))).toBe(before);
    applied(c.block([m, result(ch, m)]));
    rejected(c.block([m, result(ch, m)])[0]!, /already has a result/);
    const late = setUp().c;
    late.block(
      ...miners.slice(0, 6).map((a, i) => [a, tagReport(d, i, a)] as [Account, ReturnType<typeof call>]),
    );
    late.until(5);
    const [[lateKey, lateCh]] = late.state.scan('audit/challenges/') as [[string, Challenge]];
    const lateMiner = miners.find((a) => lateKey.endsWith(a.address))!;
    late.until(lateCh.deadline);
    // The deadline block has passed once the next block's hook runs: the challenge is settled and gone.
    rejected(late.block([lateMiner, result(lateCh, lateMiner)])[0]!, /no open challenge/);
  });

  it('one miss costs nothing; the second in a row slashes 5 % and opens orders for every column it holds; then 15 %; then it is forced out', () => {
    const m = miners[2]!;
    // Only miner 2 is tagged in a fresh setup, so every challenge picks it.
    ({ c, d } = setUp());
    applied(c.block([m, tagReport(d, 2, m)]));
    const missOnce = () => {
      c.until(nextChallenge(c, m).deadline + 1);
      return recordOf(c.state, m.address);
    };
    expect(missOnce()).toMatchObject({ misses: 1, consecutiveMisses: 1, penalties: 0, slashed: '0' });
    expect(minerInfo(c, m).collateral).toBe('10000');
    expect(c.state.scan(`fileBank/orders/${d.fid}/`)).toEqual([]);

    expect(missOnce()).toMatchObject({ misses: 2, consecutiveMisses: 2, penalties: 1, slashed: '500' });
    expect(minerInfo(c, m)).toMatchObject({ collateral: '9500', state: 'positive' });
    const order = c.state.get<RestoralOrder>(`fileBank/orders/${d.fid}/002`);
    expect(order).toMatchObject({ origin: m.address, by: null, claimer: null });

    expect(missOnce()).toMatchObject({
      misses: 3,
      consecutiveMisses: 3,
      penalties: 2,
      slashed: String(500 + 1425),
    });
    expect(minerInfo(c, m).collateral).toBe(String(9500 - 1425));
    const fourth = missOnce();
    expect(fourth).toMatchObject({ misses: 4, consecutiveMisses: 4, penalties: 3 });
    expect(minerInfo(c, m)).toMatchObject({ state: 'exit', collateral: '0' });
    // Forced out: the pot owes it what the slashes left (issue 15 item 6).
    const left = 8075n - (8075n * 1500n) / 10_000n;
    expect(debtsOf(c.state)).toMatchObject([{ to: m.address, amount: left.toString() }]);
  });

  it('a miner cannot exit past an unanswered challenge; exiting, it gets its collateral minus the slash back', () => {
    const m = miners[2]!;
    ({ c, d } = setUp());
    applied(c.block([m, tagReport(d, 2, m)]));
    c.until(nextChallenge(c, m).deadline + 1); // the first miss costs nothing
    c.until(nextChallenge(c, m).deadline + 1); // the second slashes 5 %
    expect(minerInfo(c, m).collateral).toBe('9500');
    const ch = nextChallenge(c, m);
    // Exiting with the challenge unanswered would escape its slash: refused.
    rejected(c.block([m, call('sminer.exit', {})])[0]!, /unanswered challenge/);
    // Answered, it may go: the pot owes it its collateral minus the slash.
    applied(c.block([m, result(ch, m)], [m, call('sminer.exit', {})]));
    expect(debtsOf(c.state)).toMatchObject([
      { to: m.address, amount: '9500', for: expect.stringMatching(/sminer.exit/) },
    ]);
    expect(minerInfo(c, m)).toMatchObject({ state: 'exit', collateral: '0' });
  });

  it('a pass resets the run of misses', () => {
    const m = miners[2]!;
    ({ c, d } = setUp());
    applied(c.block([m, tagReport(d, 2, m)]));
    c.until(nextChallenge(c, m).deadline + 1);
    expect(recordOf(c.state, m.address).consecutiveMisses).toBe(1);
    applied(c.block([m, result(nextChallenge(c, m), m)]));
    c.until(challengeOf(c, m)!.deadline + 1);
    expect(recordOf(c.state, m.address)).toMatchObject({
      passes: 1,
      misses: 1,
      consecutiveMisses: 0,
      penalties: 0,
    });
  });
});

describe('idle space', () => {
  const idleBytes = CONFIG.audit.proofs.idleNodes * 32;
  it('is committed in sequence within the declared capacity, challenged, and released oldest first', () => {
    const { c } = setUp();
    const m = miners[12]!; // holds no service data: 64 KiB of capacity
    const roots = (n: number, from = 0) => Array.from({ length: n }, (_, i) => hex(`root/${from + i}`));
    rejected(
      c.block([m, call('audit.commitIdle', { first: 1, roots: roots(1) })])[0]!,
      /expected idle files from index 0/,
    );
    const fits = Math.floor((64 * 1024) / idleBytes);
    rejected(
      c.block([m, call('audit.commitIdle', { first: 0, roots: roots(fits + 1) })])[0]!,
      /more than the declared capacity/,
    );
    applied(c.block([m, call('audit.commitIdle', { first: 0, roots: roots(3) })]));
    applied(c.block([m, call('audit.commitIdle', { first: 3, roots: roots(2, 3) })]));
    expect(recordOf(c.state, m.address)).toMatchObject({ nextIdleIndex: 5 });
    const ch = nextChallenge(c, m);
    expect(ch.idle.map((f) => f.index)).toEqual([0, 1, 2, 3, 4]);
    expect(ch.fragments).toEqual([]);
    expect(ch.idleBytes).toBe(5 * idleBytes);
    rejected(c.block([m, call('audit.releaseIdle', { count: 6 })])[0]!, /has 5 idle files, cannot release 6/);
    applied(c.block([m, call('audit.releaseIdle', { count: 2 })]));
    const record: AuditRecord = recordOf(c.state, m.address);
    expect(record.idleFiles.map((f) => f.index)).toEqual([2, 3, 4]);
    // The open challenge keeps its snapshot.
    expect(challengeOf(c, m)!.idle.map((f) => f.index)).toEqual([0, 1, 2, 3, 4]);
    // Indices never repeat: the next commitment continues at 5.
    applied(c.block([m, call('audit.commitIdle', { first: 5, roots: roots(1, 5) })]));
  });

  it('an exited miner cannot commit idle files', () => {
    const { c } = setUp();
    const m = miners[12]!;
    applied(c.block([m, call('sminer.exit', {})]));
    rejected(c.block([m, call('audit.commitIdle', { first: 0, roots: [hex('r')] })])[0]!, /has exited/);
  });
});

describe('file state the audit reads', () => {
  it('serviceBytes counts every held column, tagged or not', async () => {
    const { serviceBytesOf } = await import('../../src/chain/pallets/audit.ts');
    const { c, d } = setUp();
    const file = c.state.get<FileInfo>(`fileBank/files/${d.fid}`)!;
    expect(serviceBytesOf(c.state, miners[0]!.address)).toBe(file.segments.length * (1024 / 4));
    expect(serviceBytesOf(c.state, miners[12]!.address)).toBe(0);
  });
});

/**
 * Issue 15, item 4 — "a miner passes audits without holding the data", written as the attacks: (a) a miner makes its
 * own verifier and signs its own passing results; (a′) a miner picks, among the network's verifiers, the one it likes;
 * (b) a miner never gets its columns tagged, so they are never in a challenge. Verifiers come from the genesis set
 * (`config.verifiers`), the block hash assigns each challenge one of them, and a column still untagged
 * `tagDeadlineBlocks` after it was placed is a miss with a restoral order.
 */
describe('issue 15.4: no audit passes without the data', () => {
  const register = (v: Account, podr2Key = hex('key')) => registerVerifier(v, podr2Key);

  it('(a) a miner cannot register its own verifier, so it cannot sign its own passing result', () => {
    const { c, d } = setUp();
    const m = miners[0]!;
    applied(c.block([m, tagReport(d, 0, m)]));
    rejected(c.block([m, register(m)])[0]!, /not in the network's verifier set/);
    rejected(c.block([impostor, register(impostor)])[0]!, /not in the network's verifier set/);
    expect(c.state.get(`teeWorker/workers/${m.address}`)).toBeUndefined();
    const ch = nextChallenge(c, m);
    rejected(c.block([m, result(ch, m, hex('no proof'), m, m)])[0]!, /not a registered verifier/);
    c.until(ch.deadline + 1);
    expect(recordOf(c.state, m.address)).toMatchObject({ passes: 0, misses: 1 });
  });

  it('a verifier of the set joins only with the PoDR2 key the set shares (any of them can check any tag)', () => {
    const { c } = setUp();
    rejected(c.block([verifier2, register(verifier2, hex('another key'))])[0]!, /PoDR2 key/);
    applied(c.block([verifier2, register(verifier2)]));
  });

  it('(a′) a result signed by a registered verifier the chain did not assign is refused; the assigned one passes', () => {
    const { c, d } = setUp();
    applied(c.block([verifier2, register(verifier2)]));
    applied(
      c.block(
        ...miners.slice(0, 6).map((m, i) => [m, tagReport(d, i, m)] as [Account, ReturnType<typeof call>]),
      ),
    );
    const assigned: string[] = [];
    while (c.height < 60) {
      c.block();
      for (const [key, ch] of c.state.scan('audit/challenges/') as [string, Challenge][]) {
        if (ch.result !== null) continue;
        const m = miners.find((a) => key.endsWith(a.address))!;
        expect([verifier.address, verifier2.address]).toContain(ch.verifier);
        assigned.push(ch.verifier);
        const [mine, other] =
          ch.verifier === verifier.address ? [verifier, verifier2] : [verifier2, verifier];
        const [byOther, byMine] = c.block(
          [m, result(ch, m, hex('proof'), other, other)],
          [m, result(ch, m, hex('proof'), mine, mine)],
        );
        rejected(byOther!, /assigned to verifier/);
        applied([byMine!]);
      }
    }
    // The block hash spreads the work over the set: both were assigned.
    expect(assigned.length).toBeGreaterThan(6);
    expect(new Set(assigned).size).toBe(2);
    for (const m of miners.slice(0, 6)) expect(recordOf(c.state, m.address).misses).toBe(0);
  });

  it('(b) a column still untagged `tagDeadlineBlocks` after it was placed is a miss and gets a restoral order', () => {
    const { c, d } = setUp(); // columns placed in block 2
    applied(
      c.block(
        ...miners.slice(0, 6).map((m, i) => [m, tagReport(d, i, m)] as [Account, ReturnType<typeof call>]),
      ),
    );
    // Placed in block 2; two segments of 256 B per column add one block for their bytes.
    const due = 2 + config.audit.tagDeadlineBlocks + Math.ceil(512 / config.audit.serviceBytesPerBlock);
    // Answer every challenge on the way, so that only the untagged columns can cost anything.
    const answerAll = () => {
      for (const [key, ch] of c.state.scan('audit/challenges/') as [string, Challenge][]) {
        const m = miners.find((a) => key.endsWith(a.address))!;
        if (ch.result === null) applied(c.block([m, result(ch, m)]));
      }
    };
    while (c.height < due) {
      c.block();
      answerAll();
    }
    for (const m of miners) expect(recordOf(c.state, m.address).misses, 'before the deadline').toBe(0);
    expect(c.state.scan(`fileBank/orders/${d.fid}/`)).toEqual([]);
    c.block();
    for (const [i, m] of miners.slice(0, 12).entries()) {
      const record = recordOf(c.state, m.address);
      if (i < 6) expect(record.misses, `tagged miner ${i}`).toBe(0);
      else {
        expect(record, `untagged miner ${i}`).toMatchObject({
          misses: 1,
          consecutiveMisses: 1,
          lastOutcome: { block: due + 1, outcome: 'miss' },
        });
        expect(
          c.state.get<RestoralOrder>(`fileBank/orders/${d.fid}/${String(i).padStart(3, '0')}`),
        ).toMatchObject({ origin: m.address, by: null, claimer: null });
      }
    }
    expect(c.state.scan(`fileBank/orders/${d.fid}/`)).toHaveLength(6);
    // Counted once: later blocks add no miss for the same column.
    c.until(due + 3);
    expect(recordOf(c.state, miners[6]!.address).misses).toBe(1);
    // The miner that restores the column gets its own deadline, and meets it by having it tagged.
    const restorer = miners[12]!;
    applied(
      c.block(
        [restorer, call('fileBank.claimRestoralOrder', { fid: d.fid, index: 6 })],
        [restorer, call('fileBank.restoralComplete', { fid: d.fid, index: 6 })],
      ),
    );
    const restoredDue = c.height + (due - 2);
    c.until(restoredDue - 1);
    applied(c.block([restorer, tagReport(d, 6, restorer)])); // in its last block
    c.until(restoredDue + 2);
    expect(recordOf(c.state, restorer.address).misses).toBe(0);
  });

  it('the honest path: every column tagged in time, every challenge answered through its assigned verifier', () => {
    const { c, d } = setUp();
    applied(c.block([verifier2, register(verifier2)]));
    applied(
      c.block(
        ...miners.slice(0, 12).map((m, i) => [m, tagReport(d, i, m)] as [Account, ReturnType<typeof call>]),
      ),
    );
    const signer = (address: string) => (address === verifier.address ? verifier : verifier2);
    let passes = 0;
    while (c.height < 2 + config.audit.tagDeadlineBlocks + 10) {
      c.block();
      for (const [key, ch] of c.state.scan('audit/challenges/') as [string, Challenge][]) {
        const m = miners.find((a) => key.endsWith(a.address))!;
        if (ch.result !== null) continue;
        const v = signer(ch.verifier);
        applied(c.block([m, result(ch, m, hex('proof'), v, v)]));
        passes++;
      }
    }
    expect(passes).toBeGreaterThan(4);
    for (const m of miners) expect(recordOf(c.state, m.address).misses).toBe(0);
    expect(c.state.scan(`fileBank/orders/${d.fid}/`)).toEqual([]);
  });
});

describe('the verifier set and tag deadline in the protocol configuration', () => {
  it('round-trip through protocol JSON; files from before them still read, with no verifier and CESS_AUDIT’s deadline', () => {
    const json = protocolConfigToJson(config);
    expect(parseProtocolConfig(JSON.parse(JSON.stringify(json)))).toEqual(config);
    const { verifiers: _, ...old } = json;
    const { tagDeadlineBlocks: __, ...oldAudit } = json.audit;
    const parsed = parseProtocolConfig({ ...old, audit: oldAudit });
    expect(parsed.verifiers).toEqual([]);
    expect(parsed.audit.tagDeadlineBlocks).toBe(CESS_AUDIT.tagDeadlineBlocks);
    const bad = (verifiers: unknown) => () => parseProtocolConfig({ ...json, verifiers });
    expect(bad([verifier.address, verifier.address])).toThrow(/verifiers: expected each verifier once/);
    expect(bad(['not an address'])).toThrow(/verifiers.0: expected an SS58 address/);
    expect(() => parseProtocolConfig({ ...json, audit: { ...json.audit, tagDeadlineBlocks: 0 } })).toThrow(
      /audit.tagDeadlineBlocks/,
    );
  });
});

describe('issue 17.7: a per-miner challenge period (audit.challengePeriodBlocks)', () => {
  const PERIOD = 10;
  let legacy: ProtocolConfig;
  beforeEach(() => {
    legacy = config;
    config = { ...config, audit: { ...config.audit, challengePeriodBlocks: PERIOD } };
  });
  afterEach(() => {
    config = legacy;
  });

  /** Seals blocks to `n`, answering every open challenge, and counts the challenges each miner got. */
  function run(c: TestChain, n: number): Map<string, number> {
    const issued = new Map<string, number>();
    while (c.height < n) {
      const open = c.state.scan('audit/challenges/') as [string, Challenge][];
      const answers = open
        .filter(([, ch]) => ch.result === null)
        .map(([key, ch]) => {
          const m = miners.find((a) => key.endsWith(a.address))!;
          return [m, result(ch, m)] as [Account, ReturnType<typeof call>];
        });
      applied(c.block(...answers));
      for (const [key, ch] of c.state.scan('audit/challenges/') as [string, Challenge][]) {
        if (ch.issuedAt === c.height) issued.set(key, (issued.get(key) ?? 0) + 1);
      }
    }
    return issued;
  }

  it('challenges every miner with something to prove about once a period, and nobody else', () => {
    const { c, d } = setUp();
    applied(
      c.block(
        ...miners.slice(0, 6).map((m, i) => [m, tagReport(d, i, m)] as [Account, ReturnType<typeof call>]),
      ),
    );
    const issued = run(c, 95);
    for (const [i, m] of miners.entries()) {
      const n = issued.get(challengeKey(m.address)) ?? 0;
      // ~90 blocks ÷ 10, each gap drawn from [5, 15): tagged miners 6..9 times; miners holding nothing tagged never.
      if (i < 6) expect(n, `miner ${i}`).toBeGreaterThanOrEqual(5);
      if (i < 6) expect(n, `miner ${i}`).toBeLessThanOrEqual(15);
      else expect(n, `miner ${i}`).toBe(0);
      expect(recordOf(c.state, m.address).misses).toBe(0);
    }
    // Every registered miner stays scheduled exactly once.
    const due = c.state.scan('audit/due/').map(([key]) => key.slice(key.lastIndexOf('/') + 1));
    expect(due.sort()).toEqual(miners.map((m) => m.address).sort());
  });

  it('a block reads only the miners due in it, never the whole miner list', () => {
    const { c, d } = setUp();
    applied(
      c.block(
        ...miners.slice(0, 6).map((m, i) => [m, tagReport(d, i, m)] as [Account, ReturnType<typeof call>]),
      ),
    );
    for (let i = 0; i < 30; i++) {
      const next = c.height + 1;
      const due = c.state.scan(`audit/due/${String(next).padStart(12, '0')}/`).length;
      // Unanswered challenges settling in this block read their miner too (a miss): O(challenged), not O(all).
      const settling = (c.state.scan('audit/challenges/') as [string, Challenge][]).filter(
        ([, ch]) => ch.deadline < next,
      ).length;
      const read = new Set<string>();
      const counting: StateStore = {
        ...c.state,
        get: (key) => {
          if (key.startsWith('sminer/miners/')) read.add(key);
          return c.state.get(key);
        },
        scan: (prefix) => {
          expect(prefix.startsWith('sminer/')).toBe(false);
          return c.state.scan(prefix);
        },
      };
      c.state.apply(applyBlockHooks(counting, ctxAt('', next, 0n, [], config)));
      expect(read.size).toBeLessThanOrEqual(due + settling);
      c.block(); // the same block's hook again is a no-op: its due keys are gone, so the height just moves on
    }
  });

  it('an exited miner leaves the schedule; old protocol files read without a period (the all-miner draw)', () => {
    const { c } = setUp();
    applied(c.block([miners[12]!, call('sminer.exit', {})]));
    run(c, c.height + 2 * PERIOD);
    expect(c.state.scan('audit/due/').some(([key]) => key.endsWith(miners[12]!.address))).toBe(false);
    const json = protocolConfigToJson(config);
    expect(parseProtocolConfig(JSON.parse(JSON.stringify(json))).audit.challengePeriodBlocks).toBe(PERIOD);
    const { challengePeriodBlocks: _, ...oldAudit } = json.audit;
    expect(parseProtocolConfig({ ...json, audit: oldAudit }).audit.challengePeriodBlocks).toBeUndefined();
    expect(() =>
      parseProtocolConfig({ ...json, audit: { ...json.audit, challengePeriodBlocks: 0 } }),
    ).toThrow(/audit.challengePeriodBlocks/);
  });
});
