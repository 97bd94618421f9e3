import { describe, expect, it } from 'vitest';
import { recomputeAggregates } from '../../src/audit/index.ts';
import { accountsReady } from '../../src/shared/account.ts';
import { toHex } from '../../src/shared/bytes.ts';
import {
  decodeStoredUpdate,
  encodeStoredUpdate,
  roundContext,
  sha256Hex,
  signCommitment,
  strategyOf,
  vectorLayout,
} from '../../src/task/index.ts';
import { buildLineage } from './fixture.ts';
import { runSecAggRound } from './secagg-round.ts';

/**
 * A masked update whose bytes are the ones its sender committed to, but whose SecAgg signature is not its sender's:
 * the audit checks that signature once, in the SecAgg server `concludeAttempt` replays, and still names the update
 * (AGGREGATE_UPDATE, masked[k]) and leaves the round un-recomputed — here the refusal also leaves the sum unmaskable,
 * which must not hide which update was at fault behind AGGREGATE_UNMASK.
 */
describe('the audit names a masked update with a bad SecAgg signature, checked once by the replayed server', () => {
  it('AGGREGATE_UPDATE on that update, the round not recomputed', async () => {
    await accountsReady();
    const parameters = 8;
    const f = buildLineage({
      rounds: 1,
      anchored: 0,
      label: 'refused-update',
      model: { name: 'mlp', parameters },
    });
    let who = '';
    await runSecAggRound(
      f,
      { model: 'mlp', parameters },
      {
        round: 0,
        dropout: false,
        start: strategyOf(f.spec).init(new Float32Array(parameters)),
        startModel: f.initial,
        parent: null,
        // Its sender (colluding, or careless) committed to bytes carrying a signature that is not over them.
        lie: (material, manifest) => {
          const first = material.masked[0]!;
          who = first.account;
          const u = decodeStoredUpdate(first.update, vectorLayout(f.spec, 'train').dimension);
          const signature = u.signature!.slice();
          signature[0]! ^= 1;
          const update = encodeStoredUpdate({ ...u, signature });
          const sender = f.participants.find((p) => p.account.address === who)!;
          const old = manifest.updates.find((x) => x.account === who)!;
          const c = signCommitment(sender.identity.privateKey, roundContext(f.task, 0, 0), {
            fid: old.fid,
            digest: sha256Hex(update),
            dataset: old.dataset,
          });
          return {
            material: { ...material, masked: [{ account: who, update }, ...material.masked.slice(1)] },
            manifest: {
              ...manifest,
              updates: manifest.updates.map((x) =>
                x.account === who ? { ...x, digest: c.digest, signature: toHex(c.signature) } : x,
              ),
            },
          };
        },
      },
    );
    const out = await recomputeAggregates({
      task: f.task,
      state: f.state,
      atBlock: f.h.block,
      objects: f.objects,
    });
    const round = out.get(0)!;
    expect(round.recomputed).toBe(false);
    expect(round.findings.map((x) => `${x.code} @ ${x.where}`)).toEqual([
      `AGGREGATE_UPDATE @ round 0 · aggregation · masked[0] (${who.slice(0, 8)}…)`,
    ]);
    expect(round.findings[0]!.message).toMatch(/not validly signed/);
  });
});
