/**
 * Issue 17 item 9, retention of round updates: the pure rule every party applies (which rounds are past retention
 * for the latest anchored round), the owner's choice of its own expired objects by name, and the spec setting.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { accountsReady } from '../../src/shared/account.ts';
import { canonicalJson } from '../../src/shared/canonical.ts';
import type { AilinkError } from '../../src/shared/errors.ts';
import {
  expiredRoundObjects,
  latestAnchoredRound,
  MATERIAL_OBJECT_LEAF,
  materialObjectName,
  parseTaskSpec,
  pastRetention,
  retentionOf,
  taskDigest,
  updateObjectLeaf,
  updateObjectName,
} from '../../src/task/index.ts';
import { makeAccount } from '../coordinator/harness.ts';
import { specInput } from './spec-fixture.ts';

await accountsReady();
const alice = makeAccount('alice').address;

const base = specInput(alice);

const refusal = (value: unknown) => {
  try {
    parseTaskSpec({ ...base, retention: value });
  } catch (err) {
    return { code: (err as AilinkError).code, message: (err as AilinkError).message };
  }
  return null;
};

describe('the retention rule', () => {
  it('round q is past retention exactly when round q + N is anchored; never without retention or anchors', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1000 }),
        fc.integer({ min: -1, max: 5000 }),
        fc.integer({ min: 0, max: 5000 }),
        (n, round, latest) => {
          const retention = { updateRounds: n };
          const past = pastRetention(retention, round, latest);
          expect(past).toBe(round + n <= latest);
          // Once past, always past: more anchored rounds never bring a round back.
          if (past) expect(pastRetention(retention, round, latest + 1)).toBe(true);
          // The N rounds before the latest (and the latest itself) are always kept.
          if (round > latest - n) expect(past).toBe(false);
          expect(pastRetention(null, round, latest)).toBe(false);
          expect(pastRetention(undefined, round, latest)).toBe(false);
          expect(pastRetention(retention, round, null)).toBe(false);
        },
      ),
    );
  });

  it('the latest anchored round is the largest recorded, null when none', () => {
    expect(latestAnchoredRound([])).toBeNull();
    expect(latestAnchoredRound([{ round: 0 }, { round: 2 }, { round: 1 }])).toBe(2);
  });

  it('an owner picks exactly its expired objects of the task by the names it gave them', () => {
    const task = 'mnist-0123456789ab';
    const me = alice;
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            round: fc.integer({ min: -1, max: 40 }),
            kind: fc.constantFrom('update', 'other-update', 'material', 'model', 'other-task', 'unnamed'),
          }),
          { maxLength: 30 },
        ),
        fc.integer({ min: 1, max: 10 }),
        fc.integer({ min: 0, max: 40 }),
        (list, n, latest) => {
          const objects = list.map((o, i) => {
            const fid = i.toString(16).padStart(64, '0');
            const name =
              o.kind === 'update'
                ? updateObjectName(task, o.round, me)
                : o.kind === 'other-update'
                  ? updateObjectName(task, o.round, 'someone-else')
                  : o.kind === 'material'
                    ? materialObjectName(task, o.round)
                    : o.kind === 'model'
                      ? `${task}/round-${o.round}/model.ailm`
                      : o.kind === 'other-task'
                        ? updateObjectName(`${task}0`, o.round, me) // an id that extends this one
                        : null;
            return { fid, name };
          });
          const retention = { updateRounds: n };
          const want = (kind: string) =>
            list.flatMap((o, i) => (o.kind === kind && o.round + n <= latest ? [objects[i]!.fid] : []));
          expect(expiredRoundObjects(objects, task, updateObjectLeaf(me), retention, latest)).toEqual(
            want('update'),
          );
          expect(expiredRoundObjects(objects, task, MATERIAL_OBJECT_LEAF, retention, latest)).toEqual(
            want('material'),
          );
          expect(expiredRoundObjects(objects, task, updateObjectLeaf(me), null, latest)).toEqual([]);
        },
      ),
    );
  });

  it('names that only look like a round object are never picked', () => {
    const task = 't-0123456789ab';
    const leaf = updateObjectLeaf(alice);
    const names = [
      `${task}/round-x/${leaf}`,
      `${task}/round-1/sub/${leaf}`,
      `${task}/round-1/${leaf}.bak`,
      `${task}/round-1/${leaf}/`,
      `${task}/round-1e3/${leaf}`,
      `other/${task}/round-1/${leaf}`,
      `${task}/round-99999999999/${leaf}`,
    ];
    const objects = names.map((name, i) => ({ fid: String(i).padStart(64, '0'), name }));
    expect(expiredRoundObjects(objects, task, leaf, { updateRounds: 1 }, 1_000_000)).toEqual([]);
  });
});

describe('the spec setting', () => {
  it('absent: kept for good, and the spec keeps its canonical JSON (and the digest older tasks recorded)', () => {
    const s = parseTaskSpec(base);
    expect(retentionOf(s)).toBeNull();
    expect(Object.keys(s)).not.toContain('retention');
    // Parsing adds nothing: the canonical JSON is the owner's own, as before the field existed.
    expect(canonicalJson(s)).toBe(canonicalJson(base));
    expect(canonicalJson(s)).not.toContain('"retention":');
  });

  it('a valid setting parses, is read back, and is part of the digest', () => {
    const s = parseTaskSpec({ ...base, retention: { updateRounds: 2 } });
    expect(retentionOf(s)).toEqual({ updateRounds: 2 });
    expect(taskDigest(s)).not.toBe(taskDigest(parseTaskSpec(base)));
  });

  it.each([
    [0, 'keeping a round 0 rounds would leave no time to re-derive it'],
    [-1, 'negative'],
    [1.5, 'fractional'],
    ['3', 'a string'],
    [100_001, 'too many'],
    [null, 'null'],
  ])('refuses updateRounds %j (%s) with INVALID_INPUT naming the field', (value, _why) => {
    const r = refusal({ updateRounds: value });
    expect(r?.code).toBe('INVALID_INPUT');
    expect(r?.message).toContain('retention.updateRounds');
  });

  it.each([
    [{}, 'retention.updateRounds'],
    [{ updateRounds: 2, models: 3 }, 'retention'],
    [{ updates_rounds: 2 }, 'retention'],
    [null, 'retention'],
    [5, 'retention'],
  ])('refuses retention %j with INVALID_INPUT', (value, field) => {
    const r = refusal(value);
    expect(r?.code).toBe('INVALID_INPUT');
    expect(r?.message).toContain(field);
  });
});
