import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { type Account, accountFromSeeds, accountsReady } from '../../src/shared/account.ts';
import { manualClock, type Random } from '../../src/shared/clock.ts';
import { AilinkError } from '../../src/shared/errors.ts';
import {
  createRequestGuard,
  type NonceLedger,
  type RequestAuth,
  type SignedFields,
  signRequest,
} from '../../src/storage/protocol/request-auth.ts';
import { expectCode, seededBytes, sha256Hex } from './helpers.ts';

// Real sr25519 keys and signatures; the clock and the randomness are the only things passed in by the test.

const T0 = 1_700_000_000_000;
const TTL = 30_000;
const MAX_TTL = 60_000;
const MINER = '12D3KooWMinerUnderTestAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
const OTHER_MINER = '12D3KooWSomeOtherMinerBBBBBBBBBBBBBBBBBBBBBBBBBBBBB';

/** A reproducible Random: a counter-seeded stream, so every nonce differs but runs repeat. */
function seededRandom(label: string): Random {
  let n = 0;
  return (length) => seededBytes(`${label}:${n++}`, length);
}

/** The nonce ledger is a dependency of the guard, not the unit: a Set with a claim counter. */
function ledgerSpy(): NonceLedger & { claims: number; seen: Set<string> } {
  const seen = new Set<string>();
  const spy = {
    claims: 0,
    seen,
    claim(account: string, nonce: string, _expiresAt: number): boolean {
      spy.claims++;
      const key = `${account}/${nonce}`;
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    },
  };
  return spy;
}

let alice: Account;
let bob: Account;
let mallory: Account;

beforeAll(async () => {
  await accountsReady();
  const make = (name: string) =>
    accountFromSeeds(seededBytes(`${name}-sr25519`, 32), seededBytes(`${name}-x25519`, 32));
  alice = make('alice');
  bob = make('bob');
  mallory = make('mallory');
});

const putFields = (over: Partial<SignedFields> = {}): SignedFields => ({
  op: 'put',
  fragment: sha256Hex(new TextEncoder().encode('fragment-1')),
  size: 8192,
  audience: MINER,
  ...over,
});

function setup(authorised: string[] = [alice.address, bob.address]) {
  const clock = manualClock(T0);
  const nonces = ledgerSpy();
  const guard = createRequestGuard(
    { clock, nonces },
    { audience: MINER, authorised: new Set(authorised), maxTtlMs: MAX_TTL },
  );
  const random = seededRandom('request-auth');
  const sign = (account: Account, fields: SignedFields, ttl = TTL): RequestAuth =>
    signRequest(account, fields, { clock, random }, ttl);
  return { clock, nonces, guard, sign };
}

describe('signRequest', () => {
  it('produces the wire shape: account address, 32-hex nonce, expiry = now + ttl, 128-hex signature', () => {
    const { sign } = setup();
    const auth = sign(alice, putFields());
    expect(auth.account).toBe(alice.address);
    expect(auth.nonce).toMatch(/^[0-9a-f]{32}$/);
    expect(auth.expiresAt).toBe(T0 + TTL);
    expect(auth.signature).toMatch(/^[0-9a-f]{128}$/);
  });

  it('draws a fresh nonce for every signature', () => {
    const { sign } = setup();
    const nonces = new Set(Array.from({ length: 20 }, () => sign(alice, putFields()).nonce));
    expect(nonces.size).toBe(20);
  });
});

describe('createRequestGuard', () => {
  it('accepts a valid request and returns the signing account', () => {
    const { guard, sign, nonces } = setup();
    const fields = putFields();
    expect(guard(fields, sign(alice, fields))).toBe(alice.address);
    expect(guard(fields, sign(bob, fields))).toBe(bob.address);
    expect(nonces.claims).toBe(2);
  });

  it('accepts get/has/delete (size 0) and a request that expires exactly at the longest allowed ttl', () => {
    const { guard, sign } = setup();
    for (const op of ['get', 'has', 'delete']) {
      const fields = putFields({ op, size: 0 });
      expect(guard(fields, sign(alice, fields))).toBe(alice.address);
    }
    const fields = putFields();
    expect(guard(fields, sign(alice, fields, MAX_TTL))).toBe(alice.address);
  });

  it('AUTH_MISSING: no auth at all, and the ledger is not touched', () => {
    const { guard, nonces } = setup();
    expectCode(() => guard(putFields(), undefined), 'AUTH_MISSING');
    expect(nonces.claims).toBe(0);
  });

  it('AUTH_EXPIRED once the clock reaches the expiry (and just before, it still passes)', () => {
    const { guard, sign, clock, nonces } = setup();
    const fields = putFields();
    const late = sign(alice, fields);
    const onTime = sign(alice, fields);
    clock.advance(TTL - 1);
    expect(guard(fields, onTime)).toBe(alice.address);
    clock.advance(1); // now === expiresAt
    expectCode(() => guard(fields, late), 'AUTH_EXPIRED');
    clock.advance(10 * 60_000);
    expectCode(() => guard(fields, late), 'AUTH_EXPIRED');
    expect(nonces.claims).toBe(1);
  });

  it('AUTH_EXPIRY_TOO_FAR for a signature living longer than the miner allows', () => {
    const { guard, sign, nonces } = setup();
    const fields = putFields();
    expectCode(() => guard(fields, sign(alice, fields, MAX_TTL + 1)), 'AUTH_EXPIRY_TOO_FAR');
    expectCode(() => guard(fields, sign(alice, fields, 365 * 24 * 3600_000)), 'AUTH_EXPIRY_TOO_FAR');
    expect(nonces.claims).toBe(0);
  });

  it('AUTH_WRONG_AUDIENCE for a request validly signed for another miner', () => {
    const { guard, sign, nonces } = setup();
    const fields = putFields({ audience: OTHER_MINER });
    expectCode(() => guard(fields, sign(alice, fields)), 'AUTH_WRONG_AUDIENCE');
    expect(nonces.claims).toBe(0);
  });

  it('AUTH_BAD_SIGNATURE when a request signed for another miner is relabelled for this one', () => {
    // The audience is signed: relabelling it breaks the signature.
    const { guard, sign, nonces } = setup();
    const auth = sign(alice, putFields({ audience: OTHER_MINER }));
    expectCode(() => guard(putFields({ audience: MINER }), auth), 'AUTH_BAD_SIGNATURE');
    expect(nonces.claims).toBe(0);
  });

  it('AUTH_BAD_SIGNATURE when one hex character of the signature changes', () => {
    const { guard, sign, nonces } = setup();
    const fields = putFields();
    const auth = sign(alice, fields);
    for (const at of [0, 31, 64, 127]) {
      const c = auth.signature[at]!;
      const replacement = c === '0' ? '1' : '0';
      const signature = auth.signature.slice(0, at) + replacement + auth.signature.slice(at + 1);
      expectCode(() => guard(fields, { ...auth, signature }), 'AUTH_BAD_SIGNATURE');
    }
    expect(nonces.claims).toBe(0);
    // The untouched original still passes: the refusals above did not burn its nonce.
    expect(guard(fields, auth)).toBe(alice.address);
  });

  it('AUTH_BAD_SIGNATURE when op, fragment or size differ from what was signed', () => {
    const { guard, sign, nonces } = setup();
    const fields = putFields();
    const auth = sign(alice, fields);
    expectCode(() => guard({ ...fields, op: 'delete' }, auth), 'AUTH_BAD_SIGNATURE');
    expectCode(() => guard({ ...fields, op: 'get' }, auth), 'AUTH_BAD_SIGNATURE');
    expectCode(
      () => guard({ ...fields, fragment: sha256Hex(new TextEncoder().encode('fragment-2')) }, auth),
      'AUTH_BAD_SIGNATURE',
    );
    expectCode(() => guard({ ...fields, size: fields.size + 1 }, auth), 'AUTH_BAD_SIGNATURE');
    expectCode(() => guard({ ...fields, size: 0 }, auth), 'AUTH_BAD_SIGNATURE');
    expect(nonces.claims).toBe(0);
  });

  it("AUTH_BAD_SIGNATURE when a put's deal is added, dropped or changed: nobody but the owner ties a fragment to an upload", () => {
    const { guard, sign, nonces } = setup();
    const [deal, other] = ['11'.repeat(16), '22'.repeat(16)];
    const withDeal = putFields({ deal });
    const auth = sign(alice, withDeal);
    expectCode(() => guard({ ...withDeal, deal: other }, auth), 'AUTH_BAD_SIGNATURE');
    const { deal: _dropped, ...withoutDeal } = withDeal;
    expectCode(() => guard(withoutDeal, auth), 'AUTH_BAD_SIGNATURE');
    const bare = sign(alice, withoutDeal);
    expectCode(() => guard({ ...withoutDeal, deal }, bare), 'AUTH_BAD_SIGNATURE');
    expect(nonces.claims).toBe(0);
    expect(guard(withDeal, auth)).toBe(alice.address);
    expect(guard(withoutDeal, bare)).toBe(alice.address);
  });

  it('AUTH_BAD_SIGNATURE when the nonce, expiry or account of the auth are changed', () => {
    const { guard, sign, nonces } = setup();
    const fields = putFields();
    const auth = sign(alice, fields);
    expectCode(() => guard(fields, { ...auth, nonce: 'f'.repeat(32) }), 'AUTH_BAD_SIGNATURE');
    expectCode(() => guard(fields, { ...auth, expiresAt: auth.expiresAt - 1 }), 'AUTH_BAD_SIGNATURE');
    // Claiming bob signed it: alice's signature does not verify under bob's key.
    expectCode(() => guard(fields, { ...auth, account: bob.address }), 'AUTH_BAD_SIGNATURE');
    expectCode(() => guard(fields, { ...auth, account: 'not-an-address' }), 'AUTH_BAD_SIGNATURE');
    expect(nonces.claims).toBe(0);
  });

  it('AUTH_NOT_AUTHORISED for a valid signature of an account not on the allow list', () => {
    const { guard, sign, nonces } = setup();
    const fields = putFields();
    expectCode(() => guard(fields, sign(mallory, fields)), 'AUTH_NOT_AUTHORISED');
    expect(nonces.claims).toBe(0);
  });

  it('AUTH_NOT_AUTHORISED for everyone when the allow list is empty', () => {
    const { guard, sign, nonces } = setup([]);
    const fields = putFields();
    expectCode(() => guard(fields, sign(alice, fields)), 'AUTH_NOT_AUTHORISED');
    expect(nonces.claims).toBe(0);
  });

  it('AUTH_REPLAYED when the same auth is presented twice', () => {
    const { guard, sign, nonces } = setup();
    const fields = putFields();
    const auth = sign(alice, fields);
    expect(guard(fields, auth)).toBe(alice.address);
    expectCode(() => guard(fields, auth), 'AUTH_REPLAYED');
    expectCode(() => guard(fields, { ...auth }), 'AUTH_REPLAYED');
    expect(nonces.claims).toBe(3);
    // A fresh signature of the same fields is a new request.
    expect(guard(fields, sign(alice, fields))).toBe(alice.address);
  });

  it('nonces are per account: the same nonce from two accounts is two requests', () => {
    const { guard, clock } = setup();
    const fixed: Random = (n) => new Uint8Array(n).fill(7);
    const fields = putFields();
    const a = signRequest(alice, fields, { clock, random: fixed }, TTL);
    const b = signRequest(bob, fields, { clock, random: fixed }, TTL);
    expect(a.nonce).toBe(b.nonce);
    expect(guard(fields, a)).toBe(alice.address);
    expect(guard(fields, b)).toBe(bob.address);
  });

  it('checks in order: expiry before signature, audience before signature, authorisation before the ledger', () => {
    const { guard, sign, clock, nonces } = setup();
    const fields = putFields();
    const auth = sign(mallory, fields);
    const broken = { ...auth, signature: '0'.repeat(128) };
    expectCode(() => guard({ ...fields, audience: OTHER_MINER }, broken), 'AUTH_WRONG_AUDIENCE');
    clock.advance(TTL);
    expectCode(() => guard(fields, broken), 'AUTH_EXPIRED');
    expect(nonces.claims).toBe(0);
  });

  it('AUTH_BAD_SIGNATURE (not a TypeError) for a signature with a non-hex character', () => {
    const { guard, sign, nonces } = setup();
    const fields = putFields();
    const auth = sign(alice, fields);
    try {
      expectCode(
        () => guard(fields, { ...auth, signature: `g${auth.signature.slice(1)}` }),
        'AUTH_BAD_SIGNATURE',
      );
    } finally {
      expect(nonces.claims).toBe(0);
    }
  });

  describe('property: any single-character mutation of the signed request is refused', () => {
    type Field = 'op' | 'fragment' | 'size' | 'audience' | 'account' | 'nonce' | 'expiresAt' | 'signature';
    const FIELDS: Field[] = [
      'op',
      'fragment',
      'size',
      'audience',
      'account',
      'nonce',
      'expiresAt',
      'signature',
    ];
    const HEX = '0123456789abcdef';
    const DIGITS = '0123456789';
    const PRINTABLE = Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)).join('');

    /** The alphabet a mutation draws from: what still passes the wire schema, so only the guard can refuse it. */
    const alphabetOf = (field: Field): string =>
      field === 'size' || field === 'expiresAt'
        ? DIGITS
        : field === 'nonce' || field === 'signature' || field === 'fragment'
          ? HEX
          : PRINTABLE;

    it('is refused with an AUTH_* code and never reaches the nonce ledger', () => {
      fc.assert(
        fc.property(
          fc.constantFrom(...FIELDS),
          fc.nat(),
          fc.nat(),
          fc.constantFrom('put', 'get', 'has', 'delete'),
          (field, atSeed, charSeed, op) => {
            const { guard, sign, nonces } = setup();
            const fields = putFields({ op, size: op === 'put' ? 8192 : 0 });
            const auth = sign(alice, fields);
            const all: Record<Field, string> = {
              op: fields.op,
              fragment: fields.fragment,
              size: String(fields.size),
              audience: fields.audience,
              account: auth.account,
              nonce: auth.nonce,
              expiresAt: String(auth.expiresAt),
              signature: auth.signature,
            };
            const original = all[field];
            const at = atSeed % original.length;
            const alphabet = alphabetOf(field).replace(original[at]!, '');
            const mutated =
              original.slice(0, at) + alphabet[charSeed % alphabet.length]! + original.slice(at + 1);
            fc.pre(mutated !== original);
            const m = { ...all, [field]: mutated };
            const f: SignedFields = {
              op: m.op,
              fragment: m.fragment,
              size: Number(m.size),
              audience: m.audience,
            };
            const a: RequestAuth = {
              account: m.account,
              nonce: m.nonce,
              expiresAt: Number(m.expiresAt),
              signature: m.signature,
            };
            let thrown: unknown;
            try {
              guard(f, a);
            } catch (err) {
              thrown = err;
            }
            expect(thrown).toBeInstanceOf(AilinkError);
            expect((thrown as AilinkError).code).toMatch(/^AUTH_/);
            expect((thrown as AilinkError).code).not.toBe('AUTH_REPLAYED');
            expect(nonces.claims).toBe(0);
            // The unmutated request is still good afterwards: refusals consume nothing.
            expect(guard(fields, auth)).toBe(alice.address);
          },
        ),
        { numRuns: 300 },
      );
    });
  });
});
