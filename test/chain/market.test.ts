import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Grant, MarketTerms, OpenRequest } from '../../src/chain/pallets/market.ts';
import { applyCall } from '../../src/chain/protocol.ts';
import { grantOf, grantsOf, openRequestsOf, retrievalsOf, termsOf } from '../../src/chain/queries.ts';
import { type Account, accountsReady } from '../../src/shared/account.ts';
import {
  buySpace,
  CONFIG,
  call,
  createHarness,
  ctxAt,
  type Declaration,
  expectApplied,
  expectRejected,
  type Harness,
  hex,
  makeAccounts,
  makeDeclaration,
} from './helpers.ts';

// The market rules (src/chain/pallets/market.ts), call by call, through the remark codec, on the in-memory state.
// Every rejection is checked to leave the whole state exactly as it was (expectRejected compares a full scan).

let owner: Account;
let operator: Account;
let listed: Account;
let stranger: Account;
let payer: Account;

beforeAll(async () => {
  await accountsReady();
  [owner, operator, listed, stranger, payer] = makeAccounts('market/user', 5) as [
    Account,
    Account,
    Account,
    Account,
    Account,
  ];
});

const PRICE = 1_000_000n;
/** An X25519 reader key (any 32 bytes in hex: the rules only compare them). */
const key = (label: string) => hex(`reader-key/${label}`);
const wrapFor = (recipient: string, label = 'w') => ({
  recipient,
  ephemeral: hex(`ephemeral/${label}`),
  sealed: hex(`sealed/${label}`).slice(0, 32) + hex(`sealed2/${label}`),
});
const terms = (fid: string, readers: string[], price: string | null) =>
  call('market.setTerms', { fid, readers, price });
const request = (fid: string, readerKey: string) => call('market.request', { fid, readerKey });
const grant = (fid: string, reader: string, recipient: string, label?: string) =>
  call('market.grant', { fid, reader, wrap: wrapFor(recipient, label) });
const toOwner = (amount: bigint) => ({ payments: [{ to: owner.address, amount }] });

describe('market', () => {
  let h: Harness;
  let d: Declaration;
  /** The reader key the declaration wrapped the data key for (the owner's). */
  let ownerKey: string;

  beforeEach(() => {
    h = createHarness();
    d = makeDeclaration('market/file', owner.address, { encrypted: true });
    ownerKey = d.encryption!.wraps[0]!.recipient;
    buySpace(h, owner.address);
    buySpace(h, stranger.address);
    expectApplied(h, owner.address, call('fileBank.uploadDeclaration', d));
  });

  describe('setTerms', () => {
    it('the owner sets the access list and price; a second call replaces them', () => {
      expectApplied(
        h,
        owner.address,
        terms(d.fid, [listed.address, listed.address, payer.address], PRICE.toString()),
      );
      expect(termsOf(h.state, d.fid)).toEqual({
        readers: [listed.address, payer.address],
        price: PRICE.toString(),
        setAt: h.block,
      } satisfies MarketTerms);
      expectApplied(h, owner.address, terms(d.fid, [listed.address], null));
      expect(termsOf(h.state, d.fid)).toEqual({ readers: [listed.address], price: null, setAt: h.block });
    });

    it('an operator the owner authorised sets terms; a stranger or a former operator may not', () => {
      const reason = expectRejected(
        h,
        stranger.address,
        terms(d.fid, [stranger.address], '0'),
        /may not set the terms of .*: only its owner/,
      );
      expect(reason).toContain(owner.address);
      expectRejected(h, operator.address, terms(d.fid, [], '0'), /may not set the terms/);
      expectApplied(h, owner.address, call('oss.authorize', { operator: operator.address }));
      expectApplied(h, operator.address, terms(d.fid, [listed.address], '0'));
      expectApplied(h, owner.address, call('oss.cancelAuthorize', { operator: operator.address }));
      expectRejected(h, operator.address, terms(d.fid, [], '0'), /may not set the terms/);
    });

    it('rejects terms for a file nobody declared, or one stored unencrypted', () => {
      expectRejected(h, owner.address, terms(hex('nothing'), [], '0'), /no file .* is declared/);
      const plain = makeDeclaration('market/plain', owner.address);
      expectApplied(h, owner.address, call('fileBank.uploadDeclaration', plain));
      expectRejected(h, owner.address, terms(plain.fid, [listed.address], '0'), /stored unencrypted/);
    });

    it('taking a reader off the list closes its free request not yet answered; a paid one stays open', () => {
      expectApplied(h, owner.address, terms(d.fid, [listed.address], PRICE.toString()));
      expectApplied(h, listed.address, request(d.fid, key('listed')));
      expectApplied(h, payer.address, request(d.fid, key('payer')), {
        payments: [{ to: owner.address, amount: PRICE }],
      });
      // The attack: the key service would still release the key to a reader the owner has just removed.
      expectApplied(h, owner.address, terms(d.fid, [], (PRICE * 2n).toString()));
      expect(openRequestsOf(h.state, d.fid).map((r) => r.reader)).toEqual([payer.address]);
      // With the price at 0 anyone may read for free: a free request is not closed.
      expectApplied(h, owner.address, terms(d.fid, [listed.address], PRICE.toString()));
      expectApplied(h, listed.address, request(d.fid, key('listed-again')));
      expectApplied(h, owner.address, terms(d.fid, [], '0'));
      expect(
        openRequestsOf(h.state, d.fid)
          .map((r) => r.reader)
          .sort(),
      ).toEqual([listed.address, payer.address].sort());
    });

    it('rejects a replay of the terms in force (same list, same price)', () => {
      const t = terms(d.fid, [listed.address], PRICE.toString());
      expectApplied(h, owner.address, t);
      expectRejected(h, owner.address, t, /are already these \(set in block \d+\)/);
      // Same readers, another price is a change.
      expectApplied(h, owner.address, terms(d.fid, [listed.address], '0'));
    });
  });

  describe('request', () => {
    beforeEach(() => {
      expectApplied(h, owner.address, terms(d.fid, [listed.address], PRICE.toString()));
    });

    it('a listed reader is accepted for free: a retrieval record and an open request for the key', () => {
      expectApplied(h, listed.address, request(d.fid, key('listed')));
      expect(retrievalsOf(h.state, d.fid)).toEqual([
        {
          seq: 0,
          reader: listed.address,
          readerKey: key('listed'),
          block: h.block,
          time: ctxAt(listed.address, h.block).block.timestamp,
          paid: '0',
        },
      ]);
      expect(openRequestsOf(h.state)).toEqual([
        {
          fid: d.fid,
          reader: listed.address,
          readerKey: key('listed'),
          requestedAt: h.block,
          seq: 0,
          held: '0',
          expiresAt: h.block + CONFIG.requestExpiryBlocks,
        },
      ]);
    });

    it('an unlisted reader who paid nothing is refused with the price in the reason', () => {
      const reason = expectRejected(h, stranger.address, request(d.fid, key('stranger')), /./);
      expect(reason).toBe(
        `${stranger.address} is not on the access list of ${d.fid} and paid nothing to the owner ${owner.address} or into escrow at the pot (price ${PRICE})`,
      );
    });

    it('an underpaid request is refused; paying someone else counts for nothing', () => {
      expectRejected(
        h,
        payer.address,
        request(d.fid, key('payer')),
        new RegExp(`paid ${PRICE - 1n} to the owner .* \\(price ${PRICE}\\)`),
        toOwner(PRICE - 1n),
      );
      expectRejected(h, payer.address, request(d.fid, key('payer')), /paid nothing/, {
        payments: [{ to: stranger.address, amount: 10n * PRICE }],
      });
      // Paid into escrow at the pot it counts (issue 15 item 10a): the pot holds the owner's price for the key.
      expectApplied(h, payer.address, request(d.fid, key('payer')), {
        paidToPot: PRICE,
        payments: [{ to: CONFIG.pot, amount: PRICE }],
      });
      expect(openRequestsOf(h.state, d.fid)).toMatchObject([
        { reader: payer.address, held: PRICE.toString() },
      ]);
    });

    it('a paid request is accepted and records what was paid, summing several transfers to the owner', () => {
      expectApplied(h, payer.address, request(d.fid, key('payer')), toOwner(PRICE));
      expectApplied(h, payer.address, request(d.fid, key('payer')), {
        payments: [
          { to: owner.address, amount: PRICE / 2n },
          { to: stranger.address, amount: 7n },
          { to: owner.address, amount: PRICE / 2n + 5n },
        ],
      });
      expect(retrievalsOf(h.state, d.fid).map((r) => [r.seq, r.reader, r.paid])).toEqual([
        [0, payer.address, PRICE.toString()],
        [1, payer.address, (PRICE + 5n).toString()],
      ]);
      // Two accepted requests for one reader key: one open request, the latest.
      expect(openRequestsOf(h.state, d.fid)).toEqual([
        {
          fid: d.fid,
          reader: payer.address,
          readerKey: key('payer'),
          requestedAt: h.block,
          seq: 1,
          held: '0',
          expiresAt: h.block + CONFIG.requestExpiryBlocks,
        },
      ]);
    });

    it('u128 prices compare exactly', () => {
      const big = 2n ** 100n + 1n;
      expectApplied(h, owner.address, terms(d.fid, [], big.toString()));
      expectRejected(h, payer.address, request(d.fid, key('payer')), /price 1267/, toOwner(big - 1n));
      expectApplied(h, payer.address, request(d.fid, key('payer')), toOwner(big));
    });

    it('not for sale: only the owner, its operator and listed readers, whatever anyone pays', () => {
      expectApplied(h, owner.address, terms(d.fid, [listed.address], null));
      expectRejected(
        h,
        payer.address,
        request(d.fid, key('payer')),
        /is not on the access list of .*, which is not for sale; it paid 5000000 to the owner/,
        toOwner(5n * PRICE),
      );
      expectApplied(h, listed.address, request(d.fid, key('listed')));
      expectApplied(h, owner.address, call('oss.authorize', { operator: operator.address }));
      expectApplied(h, operator.address, request(d.fid, key('operator')));
    });

    it('price 0: free for anyone, and still on record', () => {
      expectApplied(h, owner.address, terms(d.fid, [], '0'));
      expectApplied(h, stranger.address, request(d.fid, key('stranger')));
      expect(retrievalsOf(h.state, d.fid).map((r) => [r.reader, r.paid])).toEqual([[stranger.address, '0']]);
    });

    it('no terms: only the owner, who needs no key when it asks with the reader key it was wrapped for', () => {
      const other = makeDeclaration('market/no-terms', owner.address, { encrypted: true });
      expectApplied(h, owner.address, call('fileBank.uploadDeclaration', other));
      expectRejected(
        h,
        payer.address,
        request(other.fid, key('payer')),
        /has no market terms \(market\.setTerms\)/,
        toOwner(PRICE),
      );
      expectApplied(h, owner.address, request(other.fid, other.encryption!.wraps[0]!.recipient));
      expect(retrievalsOf(h.state, other.fid)).toHaveLength(1);
      expect(openRequestsOf(h.state, other.fid)).toEqual([]);
    });

    it('a request with a reader key the declaration wrapped for opens no request for the key', () => {
      expectApplied(h, owner.address, request(d.fid, ownerKey));
      expect(openRequestsOf(h.state)).toEqual([]);
      expect(retrievalsOf(h.state, d.fid)).toHaveLength(1);
    });

    it('rejects requests for a file nobody declared, or one stored unencrypted', () => {
      expectRejected(h, owner.address, request(hex('nothing'), key('x')), /no file .* is declared/);
      const plain = makeDeclaration('market/plain', owner.address);
      expectApplied(h, owner.address, call('fileBank.uploadDeclaration', plain));
      expectRejected(h, owner.address, request(plain.fid, key('x')), /stored unencrypted: there is no key/);
    });

    it('a replayed request is a new retrieval (and, when priced, must be paid again)', () => {
      const r = request(d.fid, key('listed'));
      expectApplied(h, listed.address, r);
      expectApplied(h, listed.address, r);
      expect(retrievalsOf(h.state, d.fid).map((x) => x.seq)).toEqual([0, 1]);
      expectApplied(h, payer.address, request(d.fid, key('payer')), toOwner(PRICE));
      expectRejected(h, payer.address, request(d.fid, key('payer')), /paid nothing/);
      expect(retrievalsOf(h.state, d.fid).map((x) => x.seq)).toEqual([0, 1, 2]);
    });
  });

  describe('grant', () => {
    beforeEach(() => {
      expectApplied(h, owner.address, terms(d.fid, [listed.address], PRICE.toString()));
    });

    it('the owner answers an open request: the wrap is stored for the reader and the request closes', () => {
      expectApplied(h, payer.address, request(d.fid, key('payer')), toOwner(PRICE));
      expectApplied(h, owner.address, grant(d.fid, payer.address, key('payer')));
      expect(grantOf(h.state, d.fid, payer.address)).toEqual({
        wrap: wrapFor(key('payer')),
        grantedAt: h.block,
        by: owner.address,
      } satisfies Grant);
      expect(openRequestsOf(h.state)).toEqual([]);
      // The next request with the same reader key needs no grant: a retrieval, no open request.
      expectApplied(h, payer.address, request(d.fid, key('payer')), toOwner(PRICE));
      expect(openRequestsOf(h.state)).toEqual([]);
      expect(retrievalsOf(h.state, d.fid)).toHaveLength(2);
      // A new reader key opens a request again, and its grant replaces the old one.
      expectApplied(h, payer.address, request(d.fid, key('payer/2')), toOwner(PRICE));
      expect(openRequestsOf(h.state).map((r) => r.readerKey)).toEqual([key('payer/2')]);
      expectApplied(h, owner.address, grant(d.fid, payer.address, key('payer/2'), 'second'));
      expect(grantsOf(h.state, d.fid)).toEqual([
        {
          reader: payer.address,
          wrap: wrapFor(key('payer/2'), 'second'),
          grantedAt: h.block,
          by: owner.address,
        },
      ]);
    });

    it('rejects a grant by anyone but the owner or its operator', () => {
      expectApplied(h, listed.address, request(d.fid, key('listed')));
      expectRejected(
        h,
        stranger.address,
        grant(d.fid, listed.address, key('listed')),
        /may not release the key of .*: only its owner/,
      );
      expectRejected(h, listed.address, grant(d.fid, listed.address, key('listed')), /may not release/);
      expectApplied(h, owner.address, call('oss.authorize', { operator: operator.address }));
      expectApplied(h, operator.address, grant(d.fid, listed.address, key('listed')));
      expect(grantOf(h.state, d.fid, listed.address)?.by).toBe(operator.address);
    });

    it('rejects a grant nobody asked for, unless to a listed reader', () => {
      expectRejected(
        h,
        owner.address,
        grant(d.fid, stranger.address, key('stranger')),
        /has no open request for .* \(market\.request\) and is not on its access list/,
      );
      // A refused request opens nothing to answer.
      expectRejected(h, stranger.address, request(d.fid, key('stranger')), /paid nothing/);
      expectRejected(h, owner.address, grant(d.fid, stranger.address, key('stranger')), /no open request/);
      // Unasked, to a listed reader: allowed (the owner knows its reader key).
      expectApplied(h, owner.address, grant(d.fid, listed.address, key('listed')));
      expect(grantOf(h.state, d.fid, listed.address)?.wrap.recipient).toBe(key('listed'));
    });

    it('rejects a wrap for another reader key than the request asked for', () => {
      expectApplied(h, listed.address, request(d.fid, key('listed')));
      expectRejected(
        h,
        owner.address,
        grant(d.fid, listed.address, key('someone else')),
        /the wrap is for reader key .*, but .* asked for /,
      );
    });

    it('rejects a replayed grant', () => {
      expectApplied(h, payer.address, request(d.fid, key('payer')), toOwner(PRICE));
      const g = grant(d.fid, payer.address, key('payer'));
      expectApplied(h, owner.address, g);
      expectRejected(h, owner.address, g, /already holds the key of .* replayed grant/);
      // Also for a listed reader, who may be granted unasked.
      const l = grant(d.fid, listed.address, key('listed'));
      expectApplied(h, owner.address, l);
      expectRejected(h, owner.address, l, /replayed grant/);
    });

    it('rejects a grant for a file nobody declared', () => {
      expectRejected(h, owner.address, grant(hex('nothing'), listed.address, key('l')), /no file/);
    });
  });

  describe('with fileBank.deleteFile', () => {
    it('deleting a file deletes its terms, retrievals, open requests and grants; a new upload starts clean', () => {
      expectApplied(h, owner.address, terms(d.fid, [listed.address], PRICE.toString()));
      expectApplied(h, listed.address, request(d.fid, key('listed')));
      expectApplied(h, payer.address, request(d.fid, key('payer')), toOwner(PRICE));
      expectApplied(h, owner.address, grant(d.fid, payer.address, key('payer')));
      expect(h.state.scan('market/').length).toBeGreaterThan(0);
      expectApplied(h, owner.address, call('fileBank.deleteFile', { fid: d.fid }));
      expect(h.state.scan('market/')).toEqual([]);
      // Someone else declares the same fid (same segments, new deal): no terms, so no request of the old terms works.
      expectApplied(
        h,
        stranger.address,
        call('fileBank.uploadDeclaration', { ...d, owner: stranger.address }),
      );
      expectRejected(h, listed.address, request(d.fid, key('listed')), /has no market terms/);
    });

    it('deleting a file without market state writes exactly what fileBank alone writes', () => {
      const outcome = applyCall(
        h.state,
        ctxAt(owner.address, 99),
        call('fileBank.deleteFile', { fid: d.fid }),
      );
      expect(outcome.kind).toBe('applied');
      if (outcome.kind !== 'applied') return;
      // …and its owner's space back (storageHandler).
      expect(outcome.writes.map((w) => w.key)).toEqual([
        `fileBank/files/${d.fid}`,
        `fileBank/ownerFiles/${owner.address}/${d.fid}`,
        `storageHandler/used/${owner.address}`,
      ]);
    });
  });

  it('the state holds only what the queries show', () => {
    expectApplied(h, owner.address, terms(d.fid, [listed.address], '0'));
    expectApplied(h, listed.address, request(d.fid, key('listed')));
    const open = h.state.get<OpenRequest>(`market/requests/${d.fid}/${listed.address}`);
    expect(open).toEqual({
      readerKey: key('listed'),
      requestedAt: h.block,
      seq: 0,
      held: '0',
      expiresAt: h.block + CONFIG.requestExpiryBlocks,
    });
    expect(h.state.scan('market/').map(([k]) => k)).toEqual([
      `market/requests/${d.fid}/${listed.address}`,
      `market/retrievals/${d.fid}/0000000000`,
      `market/seq/${d.fid}`,
      `market/terms/${d.fid}`,
    ]);
  });
});
