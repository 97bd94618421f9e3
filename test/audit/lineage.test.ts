import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { type AuditReport, auditTask, checkLineage } from '../../src/audit/index.ts';
import type { StateReader } from '../../src/chain/index.ts';
import { accountsReady } from '../../src/shared/account.ts';
import { toHex } from '../../src/shared/bytes.ts';
import { AilinkError } from '../../src/shared/errors.ts';
import { epsilonAfter, roundContext, signCommitment, skellamEpsilonAfter } from '../../src/task/index.ts';
import { call } from '../chain/helpers.ts';
import { buildLineage, type LineageFixture, type LineageOptions } from './fixture.ts';

beforeAll(async () => {
  await accountsReady();
});

const audit = (
  f: LineageFixture,
  objects: ReadonlyMap<string, Uint8Array | Error> = f.objects,
  round?: number,
) =>
  checkLineage({
    task: f.task,
    state: f.state,
    atBlock: f.h.block,
    objects,
    ...(round === undefined ? {} : { round }),
  });

/** Every finding as `code @ where`, in report order. */
const findingsOf = (r: AuditReport) =>
  [...r.findings, ...r.rounds.flatMap((x) => x.findings)].map((f) => `${f.code} @ ${f.where}`);

const withBytes = (f: LineageFixture, fid: string, change: (b: Uint8Array) => Uint8Array) =>
  new Map([...f.objects, [fid, change(f.objects.get(fid)!.slice())]]);

const tampered = (tamper: NonNullable<LineageOptions['tamper']>, round = 1) =>
  buildLineage({
    rounds: 3,
    label: `tamper-${round}`,
    tamper: (m, ctx) => (m.round === round ? tamper(m, ctx) : m),
  });

const short = (s: string) => `${s.slice(0, 8)}…`;

describe('audit verify: the lineage against the chain', () => {
  it('a task its coordinator stopped (a round out of attempts) shows when and why; the rounds before it still verify', async () => {
    const f = buildLineage({ rounds: 2, label: 'stopped' });
    expect(audit(f).chain?.stoppedAt ?? null).toBeNull();
    const reason =
      'round 2 ended after 5 attempts (maxAttempts 5); the last: after masked input, x has 1 live neighbours';
    const outcome = f.h.submit(f.coordinator.address, call('provenance.stopTask', { task: f.task, reason }));
    expect(outcome.kind).toBe('applied');
    const r = audit(f);
    expect(r.chain?.stoppedAt).toBe(f.h.block);
    expect(r.chain?.stopReason).toBe(reason);
    expect(r.ok).toBe(true);
  });

  it('an untouched task verifies: every round, no findings', async () => {
    const f = buildLineage({ rounds: 3 });
    const r = audit(f);
    expect(findingsOf(r)).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.rounds.map((x) => [x.round, x.ok, x.survivors.length, x.dropouts.length])).toEqual([
      [0, true, 4, 0],
      [1, true, 3, 1],
      [2, true, 4, 0],
    ]);
    expect(r.rounds[1]!.updates.every((u) => u.valid)).toBe(true);
    expect(r.spec?.name).toBe('audit task');
    expect(r.chain?.admitted).toHaveLength(4);
    // The shell fetches what the chain names, then what the manifests name, and reaches the same verdict.
    const fetched: string[] = [];
    const viaFetch = await auditTask(
      {
        state: f.state,
        atBlock: f.h.block,
        fetch: async (fid) => {
          fetched.push(fid);
          return f.objects.get(fid)!;
        },
      },
      f.task,
    );
    // The shell also re-derives each aggregate; this fixture's manifests (version 3, no SecAgg run behind them) name
    // no recompute material, which a SecAgg task without central DP must record (test/audit/aggregate.test.ts runs
    // real rounds for that). Every other verdict is the pure core's.
    const material = (x: AuditReport) => findingsOf(x).filter((f) => f.startsWith('AGGREGATE_MATERIAL'));
    expect(material(viaFetch)).toEqual([0, 1, 2].map((n) => `AGGREGATE_MATERIAL @ round ${n} · aggregation`));
    const strip = (x: AuditReport) => ({
      ...x,
      ok: true,
      rounds: x.rounds.map((round) => ({
        ...round,
        findings: round.findings.filter((f) => f.code !== 'AGGREGATE_MATERIAL'),
        ok: true,
        aggregateNote: null,
      })),
    });
    expect(strip(viaFetch)).toEqual(strip(r));
    expect(viaFetch.rounds.map((x) => x.aggregate_recomputed)).toEqual([false, false, false]);
    expect(new Set(fetched).size).toBe(fetched.length); // each object once
    // manifests, models, spec — never the encrypted updates, nor the initial model (round 0's start): with no material
    // to re-derive a round from, reading it would only cost a private model's reader one more paid request
    expect(fetched).toHaveLength(3 + 3 + 1);
    expect(fetched).not.toContain(f.manifests[0]!.startModel.fid);
  });

  it('a changed manifest byte: MANIFEST_DIGEST at that round, the others still verify', () => {
    const f = buildLineage({ rounds: 3 });
    const fid = f.anchors[1]!.fid;
    const r = audit(
      f,
      withBytes(f, fid, (b) => {
        const text = new TextDecoder().decode(b).replace('"accuracy":0.6', '"accuracy":0.9');
        return new TextEncoder().encode(text);
      }),
    );
    expect(findingsOf(r)).toEqual(['MANIFEST_DIGEST @ round 1 · manifest']);
    expect(r.rounds.map((x) => x.ok)).toEqual([true, false, true]);
    expect(r.rounds[1]!.findings[0]!.message).toContain(f.anchors[1]!.digest);
    expect(r.ok).toBe(false);
  });

  it('a changed model weight: MODEL_HASH at that round', () => {
    const f = buildLineage({ rounds: 3 });
    const r = audit(
      f,
      withBytes(f, f.manifests[2]!.model.fid, (b) => {
        b[b.length - 1]! ^= 0x01;
        return b;
      }),
    );
    expect(findingsOf(r)).toEqual(['MODEL_HASH @ round 2 · model']);
  });

  it('a changed task spec: SPEC_MISMATCH for the task', () => {
    const f = buildLineage({ rounds: 2 });
    const r = audit(
      f,
      withBytes(f, f.manifests[0]!.specFid, (b) => {
        const text = new TextDecoder().decode(b).replace('"epochs":1', '"epochs":5');
        return new TextEncoder().encode(text);
      }),
    );
    expect(findingsOf(r)).toEqual(['SPEC_MISMATCH @ task spec']);
    expect(r.spec).toBeNull();
  });

  it('an anchored manifest whose commitment was altered: COMMITMENT_SIGNATURE on that update', () => {
    const f = tampered((m) => ({
      ...m,
      updates: m.updates.map((u, k) => (k === 1 ? { ...u, digest: 'ee'.repeat(32) } : u)),
    }));
    const who = f.manifests[1]!.updates[1]!.account;
    expect(findingsOf(audit(f))).toEqual([`COMMITMENT_SIGNATURE @ round 1 · updates[1] (${short(who)})`]);
    expect(audit(f).rounds[1]!.updates.map((u) => u.valid)).toEqual([true, false, true]);
  });

  it("a commitment signed with another participant's key: COMMITMENT_SIGNATURE", () => {
    const f = tampered((m, ctx) => ({
      ...m,
      updates: m.updates.map((u, k) => {
        if (k !== 0) return u;
        const forged = signCommitment(
          ctx.participants[2]!.identity.privateKey,
          roundContext(m.task, m.round, m.attempt),
          u,
        );
        return { ...u, signature: toHex(forged.signature) };
      }),
    }));
    expect(findingsOf(audit(f))).toEqual([
      `COMMITMENT_SIGNATURE @ round 1 · updates[0] (${short(f.manifests[1]!.updates[0]!.account)})`,
    ]);
  });

  it('a broken parent link: PARENT_LINK at that round', () => {
    const f = tampered(
      (m, ctx) => ({ ...m, parent: { fid: ctx.anchors[0]!.fid, digest: ctx.anchors[0]!.digest } }),
      2,
    );
    expect(findingsOf(audit(f))).toEqual(['PARENT_LINK @ round 2 · parent']);
  });

  it('a round that did not start from the previous model: START_MODEL', () => {
    const f = tampered((m) => ({ ...m, startModel: { ...m.startModel, hash: 'ab'.repeat(32) } }), 2);
    expect(findingsOf(audit(f))).toEqual(['START_MODEL @ round 2 · startModel']);
  });

  it('an unadmitted participant in the cohort, with a valid signature of its own: NOT_ADMITTED', () => {
    const f = tampered((m, ctx) => {
      const bytes = new TextEncoder().encode('outsider update');
      const fid = ctx.store(bytes, ctx.outsider.account, 'outsider');
      const c = signCommitment(ctx.outsider.identity.privateKey, roundContext(m.task, m.round, m.attempt), {
        fid,
        digest: 'aa'.repeat(32),
        dataset: 'bb'.repeat(32),
      });
      const who = ctx.outsider.account.address;
      return {
        ...m,
        cohort: [...m.cohort, who],
        survivors: [...m.survivors, who],
        updates: [
          ...m.updates,
          { account: who, fid, digest: c.digest, dataset: c.dataset, signature: toHex(c.signature) },
        ],
      };
    });
    const who = f.manifests[1]!.cohort.at(-1)!;
    const r = audit(f);
    expect(findingsOf(r)).toContain(`NOT_ADMITTED @ round 1 · cohort (${short(who)})`);
    expect(r.rounds[1]!.updates.at(-1)!.valid).toBe(false);
    expect(r.ok).toBe(false);
  });

  it('survivors, dropouts and commitments that do not add up: COHORT_INCONSISTENT', () => {
    const f = tampered((m) => ({ ...m, dropouts: [] }));
    expect(findingsOf(audit(f))).toEqual(['COHORT_INCONSISTENT @ round 1 · dropouts']);
  });

  it('an update the participant never stored: UPDATE_NOT_ON_CHAIN', () => {
    const f = tampered((m, ctx) => {
      const u = m.updates[0]!;
      const c = signCommitment(
        ctx.participants[0]!.identity.privateKey,
        roundContext(m.task, m.round, m.attempt),
        {
          ...u,
          fid: 'f0'.repeat(32),
        },
      );
      return { ...m, updates: [{ ...u, fid: c.fid, signature: toHex(c.signature) }, ...m.updates.slice(1)] };
    });
    expect(findingsOf(audit(f))).toEqual([
      `UPDATE_NOT_ON_CHAIN @ round 1 · updates[0] (${short(f.manifests[1]!.updates[0]!.account)})`,
    ]);
  });

  it('settings that differ from the spec: SETTINGS_MISMATCH', () => {
    const f = tampered((m) => ({ ...m, secagg: { ...m.secagg, bits: 16 } }));
    expect(findingsOf(audit(f))).toEqual(['SETTINGS_MISMATCH @ round 1 · secagg']);
  });

  it('a SecAgg graph thinner than the spec gives for the cohort (k or t) is SETTINGS_MISMATCH', () => {
    const f = tampered((m) => ({ ...m, secagg: { ...m.secagg, t: 1 } }));
    expect(findingsOf(audit(f))).toEqual(['SETTINGS_MISMATCH @ round 1 · secagg.k']);
  });

  it('a cohort other than the one committed on chain before the graph seed, or no seed drawn: COHORT_COMMITMENT', () => {
    // Round 1's last participant dropped out; the manifest hides it, as if the cohort had been the survivors.
    const hidden = tampered((m) => ({ ...m, cohort: m.survivors, dropouts: [] }));
    expect(findingsOf(audit(hidden))).toEqual(['COHORT_COMMITMENT @ round 1 · cohort']);
    // A round whose attempt drew no seed: its cohort (and graph) were the coordinator's own choice.
    const f = buildLineage({ rounds: 2, label: 'no-seed' });
    const hideSeeds = `provenance/seeds/${f.task}/1/`;
    const state: StateReader = {
      get: ((key: string) =>
        key.startsWith(hideSeeds) ? undefined : f.state.get(key)) as StateReader['get'],
      scan: (prefix) => f.state.scan(prefix),
    };
    expect(findingsOf(checkLineage({ task: f.task, state, atBlock: f.h.block, objects: f.objects }))).toEqual(
      ['COHORT_COMMITMENT @ round 1 · attempt'],
    );
  });

  it('a survivor list the survivors did not sign, a forged or outside signature, too few signers: CONSISTENCY_SIGNATURE', () => {
    // The coordinator reports round 1's dropout as a survivor: the survivors signed the real list.
    const grown = tampered((m, ctx) => {
      const dropped = ctx.participants.at(-1)!.account.address;
      return { ...m, survivors: [...m.survivors, dropped], dropouts: [], updates: m.updates };
    });
    expect(findingsOf(audit(grown))).toContain('CONSISTENCY_SIGNATURE @ round 1 · consistency');
    expect(
      findingsOf(audit(grown)).filter((x) => x.startsWith('CONSISTENCY_SIGNATURE @ round 1 · consistency[')),
    ).toHaveLength(3);
    // Signatures cut to fewer than t = 2.
    expect(findingsOf(audit(tampered((m) => ({ ...m, consistency: m.consistency.slice(0, 1) }))))).toEqual([
      'CONSISTENCY_SIGNATURE @ round 1 · consistency',
    ]);
    // One signature swapped for another's: invalid for the account it names.
    const swapped = tampered((m) => ({
      ...m,
      consistency: [
        { ...m.consistency[0]!, signature: m.consistency[1]!.signature },
        ...m.consistency.slice(1),
      ],
    }));
    expect(findingsOf(audit(swapped))).toEqual([
      `CONSISTENCY_SIGNATURE @ round 1 · consistency[0] (${short(swapped.participants[0]!.account.address)})`,
    ]);
  });

  it('privacy: ε is recomputed from the spec; understated, missing or unasked-for noise is SETTINGS_MISMATCH', () => {
    const dp = { noiseMultiplier: 1.1, clipNorm: 1, delta: 1e-5, epsilonBudget: 50 };
    const honest = buildLineage({ rounds: 3, label: 'dp', dp });
    const r = audit(honest);
    expect([r.ok, r.rounds.map((x) => x.privacy?.epsilonSpent)]).toEqual([
      true,
      [1, 2, 3].map((n) => epsilonAfter(dp, n)),
    ]);
    const withDp = (tamper: NonNullable<LineageOptions['tamper']>) =>
      buildLineage({
        rounds: 3,
        label: 'dp-tamper',
        dp,
        tamper: (m, ctx) => (m.round === 1 ? tamper(m, ctx) : m),
      });
    const understated = withDp((m) => ({
      ...m,
      privacy: { ...m.privacy, epsilonSpent: epsilonAfter(dp, 1) },
    }));
    expect(findingsOf(audit(understated))).toEqual(['SETTINGS_MISMATCH @ round 1 · privacy']);
    const noNoise = withDp((m) => ({
      ...m,
      privacy: { mechanism: 'none', epsilonSpent: null, delta: null },
    }));
    expect(findingsOf(audit(noNoise))).toEqual(['SETTINGS_MISMATCH @ round 1 · privacy']);
    const unasked = tampered((m) => ({
      ...m,
      privacy: { mechanism: 'gaussian', epsilonSpent: 1, delta: 1e-5 },
    }));
    expect(findingsOf(audit(unasked))).toEqual(['SETTINGS_MISMATCH @ round 1 · privacy']);
  });

  it('distributed DP: ε is re-derived from each round’s survivors; a coordinator that counts a dropout’s noise is caught', () => {
    const dp = {
      noiseMultiplier: 1.1,
      clipNorm: 1,
      delta: 1e-5,
      epsilonBudget: 50,
      mechanism: 'skellam' as const,
    };
    const honest = buildLineage({ rounds: 3, label: 'skellam', dp });
    const n = honest.spec.cohort.size;
    // Round 1 loses its last participant (the fixture's dropout), and with it that participant's noise share.
    expect(honest.manifests.map((m) => m.survivors.length)).toEqual([n, n - 1, n]);
    const r = audit(honest);
    const want = [[n], [n, n - 1], [n, n - 1, n]].map((s) => skellamEpsilonAfter(honest.spec, s));
    expect([r.ok, r.rounds.map((x) => x.privacy)]).toEqual([
      true,
      want.map((epsilonSpent) => ({ mechanism: 'skellam', epsilonSpent, delta: 1e-5 })),
    ]);
    // The dropout's share is not in the sum: counting it understates ε.
    expect(skellamEpsilonAfter(honest.spec, [n, n])).toBeLessThan(want[1]!);
    const lying = buildLineage({
      rounds: 3,
      label: 'skellam-lie',
      dp,
      tamper: (m) =>
        m.round === 1
          ? { ...m, privacy: { ...m.privacy, epsilonSpent: skellamEpsilonAfter(honest.spec, [n, n]) } }
          : m,
    });
    expect(findingsOf(audit(lying))).toEqual(['SETTINGS_MISMATCH @ round 1 · privacy']);
    // Central DP's figure for a Skellam task is as wrong.
    const central = buildLineage({
      rounds: 3,
      label: 'skellam-central',
      dp,
      tamper: (m) =>
        m.round === 0
          ? { ...m, privacy: { ...m.privacy, mechanism: 'gaussian', epsilonSpent: epsilonAfter(dp, 1) } }
          : m,
    });
    expect(findingsOf(audit(central))).toEqual(['SETTINGS_MISMATCH @ round 0 · privacy']);
  });

  it('an object that cannot be fetched: OBJECT_UNAVAILABLE, with the storage error', () => {
    const f = buildLineage({ rounds: 2 });
    const objects = new Map<string, Uint8Array | Error>(f.objects);
    objects.set(
      f.manifests[1]!.model.fid,
      new AilinkError('CODEC_TOO_FEW_FRAGMENTS', 'expected ≥ 4 of 12 fragments, got 2'),
    );
    const r = audit(f, objects);
    expect(findingsOf(r)).toEqual(['OBJECT_UNAVAILABLE @ round 1 · model']);
    expect(r.rounds[1]!.findings[0]!.message).toContain('expected ≥ 4 of 12 fragments');
  });

  it('a miner that exited: MINER_STANDING on every lineage object it holds a column of', () => {
    const f = buildLineage({ rounds: 2 });
    f.h.submit(f.miners[5]!.address, call('sminer.exit', {}));
    const r = audit(f);
    const codes = new Set(findingsOf(r).map((x) => x.split(' @ ')[0]));
    expect([...codes]).toEqual(['MINER_STANDING']);
    expect(findingsOf(r)).toContain('MINER_STANDING @ round 0 · manifest · column 5');
    expect(findingsOf(r)).toContain('MINER_STANDING @ task spec · column 5');
    // Storage health, not the lineage: it verifies while each object keeps enough good columns (here 11 of 12).
    expect(r.ok).toBe(true);
    expect(r.rounds.every((x) => x.ok)).toBe(true);
  });

  it('miners gone until an object keeps fewer good columns than it needs: OBJECT_UNRETRIEVABLE breaks the lineage', () => {
    const f = buildLineage({ rounds: 1 });
    // The fixture stores 4 + 8 columns; all miners but 3 exit, so each object keeps 3 good columns of the 4 it needs.
    for (const m of f.miners.slice(3)) f.h.submit(m.address, call('sminer.exit', {}));
    const r = audit(f);
    expect(findingsOf(r)).toContain('OBJECT_UNRETRIEVABLE @ round 0 · manifest');
    expect(r.ok).toBe(false);
  });

  it('checks only up to --round; a round the chain does not have is ROUND_MISSING', () => {
    const f = tampered((m) => ({ ...m, dropouts: [] }), 2);
    expect(audit(f, f.objects, 1).ok).toBe(true);
    expect(audit(f, f.objects, 1).rounds).toHaveLength(2);
    expect(findingsOf(audit(f, f.objects, 5))).toContain('ROUND_MISSING @ round 5');
  });

  it('a task recorded on chain by another account than the spec names: SPEC_MISMATCH', () => {
    const f = buildLineage({ rounds: 1, label: 'impostor', impostor: true });
    expect(findingsOf(audit(f))).toEqual(['SPEC_MISMATCH @ task spec · coordinator']);
  });

  it('a task the chain does not know: TASK_NOT_ON_CHAIN', () => {
    const f = buildLineage({ rounds: 1 });
    const r = checkLineage({ task: 'nope-000000000000', state: f.state, atBlock: 1, objects: f.objects });
    expect(findingsOf(r)).toEqual(['TASK_NOT_ON_CHAIN @ task']);
    expect(r.ok).toBe(false);
  });

  it('property: one changed byte in any object the audit reads is caught', () => {
    const f = buildLineage({ rounds: 3, label: 'property' });
    const read = [
      ...f.anchors.map((a) => a.fid),
      ...f.manifests.map((m) => m.model.fid),
      f.manifests[0]!.specFid,
    ];
    fc.assert(
      fc.property(fc.constantFrom(...read), fc.nat(), fc.integer({ min: 1, max: 255 }), (fid, at, flip) => {
        const r = audit(
          f,
          withBytes(f, fid, (b) => {
            b[at % b.length]! ^= flip;
            return b;
          }),
        );
        expect(r.ok).toBe(false);
      }),
      { numRuns: 200 },
    );
  });

  it('an evaluation round that changes the model: MODEL_HASH (a closing round only scores the final model)', () => {
    const f = tampered((m) => ({ ...m, kind: 'evaluation' }), 2);
    expect(findingsOf(audit(f))).toEqual(['MODEL_HASH @ round 2 · model']);
  });

  it('a round after an evaluation round: SETTINGS_MISMATCH on its kind', () => {
    const f = tampered((m) => ({ ...m, kind: 'evaluation' }), 1);
    expect(findingsOf(audit(f))).toContain('SETTINGS_MISMATCH @ round 1 · kind');
  });

  it('a manifest without the client-side evaluation the spec asks for: SETTINGS_MISMATCH', () => {
    const f = tampered((m) => ({ ...m, evaluation: null }));
    expect(findingsOf(audit(f))).toEqual(['SETTINGS_MISMATCH @ round 1 · evaluation']);
  });

  it('a preprocessing the spec does not call for, or one whose bytes do not match: SETTINGS_MISMATCH', () => {
    const record = { numeric: [], categorical: [] };
    const bytes = new TextEncoder().encode(JSON.stringify(record));
    const unasked = tampered((m, ctx) => {
      const fid = ctx.store(bytes, ctx.participants[0]!.account, 'preprocessing');
      return { ...m, preprocessing: { fid, digest: createHash('sha256').update(bytes).digest('hex') } };
    });
    expect(findingsOf(audit(unasked))).toEqual(['SETTINGS_MISMATCH @ round 1 · preprocessing']);
    const wrong = tampered((m, ctx) => {
      const fid = ctx.store(bytes, ctx.participants[0]!.account, 'preprocessing');
      return { ...m, preprocessing: { fid, digest: 'ee'.repeat(32) } };
    });
    expect(findingsOf(audit(wrong))).toEqual([
      'SETTINGS_MISMATCH @ round 1 · preprocessing',
      'SETTINGS_MISMATCH @ round 1 · preprocessing',
    ]);
  });
});
