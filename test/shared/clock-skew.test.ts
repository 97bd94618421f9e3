import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { MAX_SIGNATURE_TTL_MS, SIGNATURE_TTL_MS } from '../../src/coordinator/signed-requests.ts';
import { checkDeossAuth, DEFAULT_MAX_LIFETIME_MS, deossMessage } from '../../src/gateway/deoss-protocol.ts';
import { createReplayGuard } from '../../src/gateway/replay-guard.ts';
import { MAX_SKEW_MS, verifySigV4 } from '../../src/gateway/sigv4.ts';
import { type Account, accountFromSeeds, accountsReady } from '../../src/shared/account.ts';
import { toHex } from '../../src/shared/bytes.ts';
import { manualClock } from '../../src/shared/clock.ts';
import { AilinkError, type ErrorCode } from '../../src/shared/errors.ts';
import {
  createRequestGuard,
  createSqliteNonceLedger,
  type SignedFields,
  signRequest,
} from '../../src/storage/protocol/request-auth.ts';
import { KEY, REGION, sdkSigner } from '../gateway/sdk-signer.ts';

// The clock-skew rules of README "Clocks", for every offset of the signer's clock from the checker's: exactly the
// documented window is accepted, with the boundary itself pinned to the millisecond (or second, where the signed time
// is in seconds). The same rules between real processes with skewed clocks: test/integration/clock-skew.test.ts.

const NOW = Date.UTC(2026, 11, 4, 12, 0, 0); // a whole second
let signer: Account;
beforeAll(async () => {
  await accountsReady();
  signer = accountFromSeeds(new Uint8Array(32).fill(7), new Uint8Array(32).fill(8));
});

const outcome = (run: () => unknown): ErrorCode | 'ok' => {
  try {
    run();
    return 'ok';
  } catch (err) {
    if (err instanceof AilinkError) return err.code;
    throw err;
  }
};

/** What a signer whose clock reads `NOW + skew` gets from a checker at NOW, per the documented rule. */
const expected = (skew: number, behindLimit: number, aheadLimit: number) =>
  skew <= -behindLimit ? 'AUTH_EXPIRED' : skew > aheadLimit ? 'AUTH_EXPIRY_TOO_FAR' : 'ok';

describe('signed requests of miners, verifiers and the coordinator (expiry = signer clock + ttl ≤ checker clock + max)', () => {
  const fields: SignedFields = { op: 'put', fragment: 'ab'.repeat(32), size: 1, audience: 'peer' };
  let nonce = 0;
  const check = (skew: number, ttl: number, max: number) => {
    const guard = createRequestGuard(
      { clock: { now: () => NOW }, nonces: { claim: () => true } },
      { audience: 'peer', authorised: { has: () => true }, maxTtlMs: max },
    );
    const random = (n: number) => new Uint8Array(n).fill(nonce++ % 256);
    const auth = signRequest(signer, fields, { clock: { now: () => NOW + skew }, random }, ttl);
    return outcome(() => guard(fields, auth));
  };

  // The pairs in use: a session's requests to miners and verifiers (SESSION_DEADLINES.signatureTtlMs, 60 s; `ailink
  // miner` and `ailink verifier` take ≤ 5 min) and `task create` (2 of 10 min). Literal: src/node loads the whole stack.
  const pairs = [
    ['miner request', 60_000, 5 * 60_000],
    ['task create', SIGNATURE_TTL_MS, MAX_SIGNATURE_TTL_MS],
  ] as const;

  for (const [what, ttl, max] of pairs) {
    it(`${what}: the signer may be up to ${ttl / 1000} s behind (exclusive) and ${(max - ttl) / 1000} s ahead`, () => {
      expect(check(-ttl + 1, ttl, max)).toBe('ok');
      expect(check(-ttl, ttl, max)).toBe('AUTH_EXPIRED');
      expect(check(max - ttl, ttl, max)).toBe('ok');
      expect(check(max - ttl + 1, ttl, max)).toBe('AUTH_EXPIRY_TOO_FAR');
      fc.assert(
        fc.property(fc.integer({ min: -2 * max, max: 2 * max }), (skew) => {
          expect(check(skew, ttl, max)).toBe(expected(skew, ttl, max - ttl));
        }),
        { numRuns: 200, seed: 18_5 },
      );
    });
  }
});

describe('DeOSS messages (expiry in whole seconds, at most 5 minutes ahead of the gateway)', () => {
  const check = (skew: number, ttl: number) => {
    const message = deossMessage(NOW + skew + ttl, `nonce-${String(Math.abs(skew)).padStart(8, '0')}`);
    const signature = toHex(signer.sign(new TextEncoder().encode(message)));
    return outcome(() =>
      checkDeossAuth({ account: signer.address, message, signature }, { now: NOW, owner: signer.address }),
    );
  };

  it('a client signing for 60 s may be up to 59 s behind and 240 s ahead (seconds: the expiry is rounded down)', () => {
    const ttl = 60_000;
    expect(check(-ttl + 1000, ttl)).toBe('ok');
    expect(check(-ttl + 999, ttl)).toBe('AUTH_EXPIRED'); // rounded down to NOW
    expect(check(DEFAULT_MAX_LIFETIME_MS - ttl + 999, ttl)).toBe('ok'); // rounded down to NOW + 5 min
    expect(check(DEFAULT_MAX_LIFETIME_MS - ttl + 1000, ttl)).toBe('AUTH_EXPIRY_TOO_FAR');
    fc.assert(
      fc.property(fc.integer({ min: -10 * 60_000, max: 10 * 60_000 }), (skew) => {
        // The rule on the expiry the message states: (now, now + 5 min].
        const stated = Math.floor((NOW + skew + ttl) / 1000) * 1000;
        const rule =
          stated <= NOW
            ? 'AUTH_EXPIRED'
            : stated > NOW + DEFAULT_MAX_LIFETIME_MS
              ? 'AUTH_EXPIRY_TOO_FAR'
              : 'ok';
        expect(check(skew, ttl)).toBe(rule);
      }),
      { numRuns: 200, seed: 18_5 },
    );
  });
});

describe('SigV4 (the signed time in whole seconds, at most 15 minutes either way)', () => {
  const check = async (skew: number) => {
    const request = await sdkSigner.sign(
      {
        method: 'GET',
        protocol: 'http:',
        hostname: 'gateway.local',
        path: '/b',
        query: {},
        headers: { host: 'gateway.local', 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' },
      },
      { signingDate: new Date(NOW + skew) },
    );
    const headers = Object.fromEntries(Object.entries(request.headers).map(([k, v]) => [k.toLowerCase(), v]));
    return outcome(() =>
      verifySigV4(
        { method: 'GET', path: '/b', query: [], headers },
        {
          now: NOW,
          region: REGION,
          secretOf: (id) => (id === KEY.accessKeyId ? KEY.secretAccessKey : undefined),
        },
      ),
    );
  };

  it('±15 min exactly is accepted, a second more is RequestTimeTooSkewed; for every skew, |signed − now| ≤ 15 min', async () => {
    expect(await check(MAX_SKEW_MS)).toBe('ok');
    expect(await check(MAX_SKEW_MS + 999)).toBe('ok'); // the date says NOW + 15 min
    expect(await check(MAX_SKEW_MS + 1000)).toBe('AUTH_EXPIRED');
    expect(await check(-MAX_SKEW_MS)).toBe('ok');
    expect(await check(-MAX_SKEW_MS - 1)).toBe('AUTH_EXPIRED');
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: -2 * MAX_SKEW_MS, max: 2 * MAX_SKEW_MS }), async (skew) => {
        const signed = Math.floor((NOW + skew) / 1000) * 1000;
        expect(await check(skew)).toBe(Math.abs(signed - NOW) <= MAX_SKEW_MS ? 'ok' : 'AUTH_EXPIRED');
      }),
      { numRuns: 100, seed: 18_5 },
    );
  });
});

describe("the checker's own clock stepped back (an NTP correction)", () => {
  it('a request whose nonce was pruned as expired is not accepted again when the clock goes back, nor after a restart', () => {
    const db = new Database(':memory:');
    const clock = manualClock(NOW);
    const options = { audience: 'peer', authorised: { has: () => true }, maxTtlMs: 5 * 60_000 };
    const ledger = createSqliteNonceLedger(db, clock);
    const guard = createRequestGuard({ clock, nonces: ledger }, options);
    const fields: SignedFields = { op: 'put', fragment: 'cd'.repeat(32), size: 1, audience: 'peer' };
    let n = 0;
    const random = (len: number) => {
      const bytes = new Uint8Array(len);
      new DataView(bytes.buffer).setUint32(0, n++);
      return bytes;
    };
    const captured = signRequest(signer, fields, { clock, random }, 60_000);
    expect(guard(fields, captured)).toBe(signer.address);
    // Two minutes on, the captured request has expired, and a thousand claims later its nonce is pruned.
    clock.advance(120_000);
    for (let i = 0; i < 1000; i++) ledger.claim(signer.address, `other-${i}`, clock.now() + 60_000);
    // The clock is stepped back 90 s: by it, the captured request has not expired yet.
    clock.set(NOW + 30_000);
    expect(outcome(() => guard(fields, captured))).toBe('AUTH_REPLAYED');
    // A restart of the node (a new ledger over the same database) still knows.
    const again = createRequestGuard({ clock, nonces: createSqliteNonceLedger(db, clock) }, options);
    expect(outcome(() => again(fields, captured))).toBe('AUTH_REPLAYED');
    db.close();
  });
});

describe("the DeOSS gateway's clock stepped back", () => {
  it('a used message forgotten as expired is refused again when the clock goes back, in the same process and after a restart', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ailink-replay-clock-'));
    const file = join(dir, 'used');
    const clock = manualClock(NOW);
    const auth = (n: number, life = 60_000) => ({
      account: signer.address,
      message: deossMessage(clock.now() + life, `nonce-${String(n).padStart(8, '0')}`),
      expiresAt: Math.floor((clock.now() + life) / 1000) * 1000,
    });
    try {
      const guard = createReplayGuard({ clock, file });
      const captured = auth(1);
      guard.use(captured);
      clock.advance(120_000);
      // Every 1000 uses the expired ones are forgotten.
      for (let n = 2; n <= 1000; n++) guard.use(auth(n));
      clock.set(NOW + 30_000);
      expect(outcome(() => guard.use(captured))).toBe('AUTH_REPLAYED');
      // A restart at a later time forgets it too; set back afterwards, it must still refuse.
      clock.set(NOW + 120_000);
      const restarted = createReplayGuard({ clock, file });
      clock.set(NOW + 30_000);
      expect(outcome(() => restarted.use(captured))).toBe('AUTH_REPLAYED');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
