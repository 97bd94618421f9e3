import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { signingKeyPair } from '../../src/aggregation/index.ts';
import { accountsReady } from '../../src/shared/account.ts';
import { hasCode } from '../../src/shared/errors.ts';
import {
  type AnnouncementView,
  gossipOf,
  headerOf,
  parseAnnouncement,
  parseHeader,
  signAnnouncement,
  viewsOf,
} from '../../src/task/index.ts';
import { makeAccount } from '../coordinator/harness.ts';

await accountsReady();
const random = (n: number) => new Uint8Array(randomBytes(n));
const server = signingKeyPair(random);
const members = Array.from({ length: 40 }, (_, i) => makeAccount(`member-${i}`).address).sort();
const [alice, bob] = members as [string, string];

const codeOf = (f: () => unknown) => {
  try {
    f();
    return 'none';
  } catch (err) {
    return hasCode(err) ? err.code : 'uncoded';
  }
};
const place = { task: 't-1', round: 2, attempt: 0, deadline: 123 };
const ciphertext = (seed: number) => seed.toString(16).padStart(2, '0').repeat(60);
/** A masked-stage body: each listed member's inbox holds sealed shares from the next few members. */
const inboxFor = (to: readonly string[], width: number) => ({
  inbox: Object.fromEntries(
    to.map((m, i) => [
      m,
      Array.from({ length: width }, (_, j) => ({
        from: members[(i + j + 1) % members.length]!,
        ciphertext: ciphertext(i * 7 + j),
      })),
    ]),
  ),
});

describe('announcements: one signed header, a view per member', () => {
  const consistency = signAnnouncement(
    { ...place, phase: 'consistency', body: { survivors: [alice, bob] } },
    server.privateKey,
  );

  it('a shared phase reads the same for every member; any changed field or a foreign key is refused', () => {
    const view = viewsOf(consistency)(alice);
    expect(parseAnnouncement(JSON.parse(JSON.stringify(view)), server.publicKey, alice).body).toEqual({
      survivors: [alice, bob],
    });
    expect(viewsOf(consistency)(bob)).toEqual({ ...view });
    for (const tampered of [
      { ...view, round: 3 },
      { ...view, deadline: 124 },
      { ...view, phase: 'advertise' },
      { ...view, body: { survivors: [alice] } },
    ]) {
      expect(codeOf(() => parseAnnouncement(tampered, server.publicKey, alice))).toBe(
        'ROUND_SIGNATURE_INVALID',
      );
    }
    expect(codeOf(() => parseAnnouncement(view, signingKeyPair(random).publicKey, alice))).toBe(
      'ROUND_SIGNATURE_INVALID',
    );
    expect(codeOf(() => parseAnnouncement({ ...view, signature: 'zz' }, server.publicKey, alice))).toBe(
      'ROUND_MESSAGE_INVALID',
    );
  });

  it('a body that does not fit its phase is malformed even when signed', () => {
    const wire = signAnnouncement(
      { ...place, phase: 'consistency', body: { survivors: 'all' } },
      server.privateKey,
    );
    expect(codeOf(() => parseAnnouncement(viewsOf(wire)(alice), server.publicKey, alice))).toBe(
      'ROUND_MESSAGE_INVALID',
    );
  });

  it('gossip carries the header alone: a few hundred bytes, checked against the server key', () => {
    const masked = signAnnouncement(
      { ...place, phase: 'masked', body: inboxFor(members, 20) },
      server.privateKey,
    );
    const header = headerOf(masked);
    expect(JSON.stringify(header).length).toBeLessThan(600);
    expect(JSON.stringify(masked.body).length).toBeGreaterThan(100_000);
    expect(parseHeader(JSON.parse(JSON.stringify(header)), server.publicKey)).toEqual(header);
    expect(codeOf(() => parseHeader({ ...header, deadline: 1 }, server.publicKey))).toBe(
      'ROUND_SIGNATURE_INVALID',
    );
    expect(codeOf(() => parseHeader(masked, server.publicKey))).toBe('ROUND_MESSAGE_INVALID');
  });

  it('gossip carries a view that is the same for everyone whole, any other as its header', () => {
    const gossiped = gossipOf(consistency);
    expect(gossiped).toEqual(viewsOf(consistency)(bob));
    expect(parseAnnouncement(JSON.parse(JSON.stringify(gossiped)), server.publicKey, alice).body).toEqual({
      survivors: [alice, bob],
    });
    const masked = signAnnouncement(
      { ...place, phase: 'masked', body: inboxFor(members, 2) },
      server.privateKey,
    );
    expect(gossipOf(masked)).toEqual(headerOf(masked));
  });

  it('property: every member reads exactly its own part, for any members and parts', () => {
    fc.assert(
      fc.property(
        fc.subarray(members, { minLength: 0, maxLength: members.length }),
        fc.integer({ min: 0, max: 5 }),
        (to, width) => {
          const wire = signAnnouncement(
            { ...place, phase: 'masked', body: inboxFor(to, width) },
            server.privateKey,
          );
          const view = viewsOf(wire);
          const expected = inboxFor(to, width).inbox;
          for (const m of [...to, alice]) {
            const read = parseAnnouncement(JSON.parse(JSON.stringify(view(m))), server.publicKey, m);
            if (read.phase !== 'masked') throw new Error('expected a masked announcement');
            const mine = read.body.inbox[m] ?? [];
            expect(Object.keys(read.body.inbox).every((k) => k === m)).toBe(true);
            expect(mine.map((e) => e.from)).toEqual((expected[m] ?? []).map((e) => e.from));
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  describe('a coordinator that rewrites a view is caught', () => {
    const wire = signAnnouncement(
      { ...place, phase: 'masked', body: inboxFor(members, 3) },
      server.privateKey,
    );
    const views = viewsOf(wire);
    const mine = views(alice) as AnnouncementView & { part: NonNullable<AnnouncementView['part']> };
    const bobs = views(bob) as AnnouncementView & { part: NonNullable<AnnouncementView['part']> };
    const refused = (view: unknown) => codeOf(() => parseAnnouncement(view, server.publicKey, alice));

    it('another member’s view, or its part renamed to this member', () => {
      expect(refused(bobs)).toBe('ROUND_MESSAGE_INVALID');
      expect(refused({ ...bobs, part: { ...bobs.part, to: alice } })).toBe('ROUND_SIGNATURE_INVALID');
      expect(refused({ ...mine, part: { ...mine.part, value: bobs.part.value } })).toBe(
        'ROUND_SIGNATURE_INVALID',
      );
    });

    it('a changed index, a missing or extra step of the path, a share dropped from the part', () => {
      expect(refused({ ...mine, part: { ...mine.part, index: mine.part.index + 1 } })).toBe(
        'ROUND_SIGNATURE_INVALID',
      );
      expect(refused({ ...mine, part: { ...mine.part, proof: mine.part.proof.slice(1) } })).toBe(
        'ROUND_SIGNATURE_INVALID',
      );
      expect(refused({ ...mine, part: { ...mine.part, proof: [...mine.part.proof, 'ab'.repeat(32)] } })).toBe(
        'ROUND_SIGNATURE_INVALID',
      );
      const value = mine.part.value as unknown[];
      expect(refused({ ...mine, part: { ...mine.part, value: value.slice(1) } })).toBe(
        'ROUND_SIGNATURE_INVALID',
      );
    });

    it('other members’ parts slipped into the shared body', () => {
      expect(refused({ ...mine, body: wire.body })).toBe('ROUND_SIGNATURE_INVALID');
    });

    it('a part sent for a phase that has none', () => {
      const consistency = signAnnouncement(
        { ...place, phase: 'consistency', body: { survivors: [alice] } },
        server.privateKey,
      );
      expect(refused({ ...viewsOf(consistency)(alice), part: mine.part })).toBe('ROUND_MESSAGE_INVALID');
    });
  });
});
