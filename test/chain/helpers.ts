import { createHash, createPrivateKey, createPublicKey, sign as signEd25519 } from 'node:crypto';
import { base58Encode } from '@polkadot/util-crypto';
import { expect } from 'vitest';
import type { CallArgs, CallName, ProtocolCall } from '../../src/chain/calls.ts';
import { CESS_AUDIT } from '../../src/chain/config.ts';
import type { CallContext, ProtocolConfig } from '../../src/chain/pallets/context.ts';
import { columnHashes, transferReceiptMessage } from '../../src/chain/pallets/file-bank.ts';
import { type PeerRegistrationCall, peerRegistrationMessage } from '../../src/chain/pallets/peer-key.ts';
import { applyRemark, type RemarkOutcome } from '../../src/chain/protocol.ts';
import { encodeRemark } from '../../src/chain/remark.ts';
import { createMemoryState, type StateStore } from '../../src/chain/state.ts';
import { type Account, accountFromSeeds } from '../../src/shared/account.ts';
import { toHex } from '../../src/shared/bytes.ts';
import { fidOf } from '../../src/shared/fid.ts';

// Shared by the chain's pure tests: deterministic accounts, declarations, receipts, and a harness that applies calls
// block by block the way the indexer will (encode → decode → rule → commit the writes of an applied call).

export const hex = (label: string): string => createHash('sha256').update(label).digest('hex');
const seed = (label: string): Uint8Array => new Uint8Array(createHash('sha256').update(label).digest());

/** `n` accounts, deterministic in `label`. Call `await accountsReady()` first. */
export const makeAccounts = (label: string, n: number): Account[] =>
  Array.from({ length: n }, (_, i) => accountFromSeeds(seed(`${label}/${i}/sr`), seed(`${label}/${i}/x`)));

/** PKCS#8 DER prefix of an Ed25519 private key from its 32-byte seed (RFC 8410). */
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/** A libp2p Ed25519 key, deterministic in `label`: its peer id and a signer, as a host's `peer.key` would give. */
export function peerKeyFor(label: string): { peerId: string; sign(message: Uint8Array): string } {
  const key = createPrivateKey({
    key: Buffer.concat([ED25519_PKCS8_PREFIX, seed(`${label}/peer`)]),
    format: 'der',
    type: 'pkcs8',
  });
  const spki = createPublicKey(key).export({ format: 'der', type: 'spki' });
  const peerId = base58Encode(
    Buffer.concat([Buffer.from([0x00, 0x24, 0x08, 0x01, 0x12, 0x20]), spki.subarray(-32)]),
  );
  return { peerId, sign: (message) => signEd25519(null, message, key).toString('hex') };
}

/** The account's own libp2p peer id (a real Ed25519 one, deterministic in the address). */
export const peerIdOf = (account: Account | string): string =>
  peerKeyFor(typeof account === 'string' ? account : account.address).peerId;

/**
 * `account`'s own peer key's signature of its registration with `call` (on the test chain unless told): what
 * `sminer.register`/`teeWorker.register` carry as `peerSignature`. `signer` signs instead of the account's own key.
 */
export function peerSignatureOf(
  account: Account | string,
  call: PeerRegistrationCall,
  o: { genesisHash?: string; peerId?: string; signer?: Account | string } = {},
): string {
  const address = typeof account === 'string' ? account : account.address;
  const signer = o.signer ?? address;
  const key = peerKeyFor(typeof signer === 'string' ? signer : signer.address);
  return key.sign(
    peerRegistrationMessage(call, o.genesisHash ?? GENESIS_HASH, address, o.peerId ?? key.peerId),
  );
}

/** A fixed, valid SS58 address (Alice's): the pot is only named, never signed for. */
export const POT = '5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY';

/**
 * Small audit figures so that a test walks through challenges, misses and penalties in a few blocks; an untagged
 * column is a miss 100 blocks (+ 1 per 4 KiB) after it was placed.
 */
export const CONFIG: ProtocolConfig = {
  pot: POT,
  minCollateral: 1000n,
  spacePrice: 100n,
  restoralClaimBlocks: 10,
  requestExpiryBlocks: 30,
  // Accounts are made after `accountsReady()`: a test that registers verifiers names them in its own config.
  verifiers: [],
  audit: {
    ...CESS_AUDIT,
    challengeInterval: 5,
    challengeMiners: 2,
    slipBaseBlocks: 3,
    serviceBytesPerBlock: 4096,
    idleBytesPerBlock: 1 << 20,
    exitAfterMisses: 4,
    tagDeadlineBlocks: 100,
    proofs: {
      ...CESS_AUDIT.proofs,
      blockSize: 64,
      challengeBlocks: 4,
      idleNodes: 64,
      idleParents: 3,
      idleOpenings: 4,
    },
  },
};

/** The genesis hash of the chain the pure tests apply calls to (signatures bound to a network name it). */
export const GENESIS_HASH = `0x${hex('ailink test chain')}`;

export function ctxAt(
  caller: string,
  block: number,
  paidToPot = 0n,
  payments: CallContext['payments'] = [],
  config: ProtocolConfig = CONFIG,
): CallContext {
  return {
    caller,
    block: { number: block, hash: hex(`block/${block}`), timestamp: 1_700_000_000_000 + block * 6000 },
    genesisHash: GENESIS_HASH,
    paidToPot,
    payments,
    config,
  };
}

/** Builds a typed call; the name fixes the shape of the arguments. */
/** A miner's registration on loopback with 1 GiB of capacity (the protocol's tests and fixtures all use it). */
export const registerMiner = (m: Account, collateral = '1000'): ProtocolCall =>
  call('sminer.register', {
    peerId: peerIdOf(m),
    addrs: ['/ip4/127.0.0.1/tcp/4001'],
    capacity: 1 << 30,
    collateral,
    peerSignature: peerSignatureOf(m, 'sminer.register'),
  });

/** A verifier's registration with its own peer id, proven by its peer key. */
export const registerVerifier = (v: Account, podr2Key: string, addrs: string[] = []): ProtocolCall =>
  call('teeWorker.register', {
    peerId: peerIdOf(v),
    addrs,
    podr2Key,
    peerSignature: peerSignatureOf(v, 'teeWorker.register'),
  });

export const call = <N extends CallName>(name: N, args: CallArgs<N>): ProtocolCall =>
  ({ name, args }) as ProtocolCall;

export type Declaration = CallArgs<'fileBank.uploadDeclaration'>;

export interface DeclarationOptions {
  readonly segments?: number;
  readonly data?: number;
  readonly parity?: number;
  readonly segmentSize?: number;
  readonly size?: number;
  readonly encrypted?: boolean;
}

/** A well-formed declaration of a file, deterministic in `label`: 8 + 4 columns of 2 segments unless told. */
export function makeDeclaration(label: string, owner: string, o: DeclarationOptions = {}): Declaration {
  const data = o.data ?? 8;
  const parity = o.parity ?? 4;
  const count = o.segments ?? 2;
  const segmentSize = o.segmentSize ?? 1024;
  const segments = Array.from({ length: count }, (_, s) => ({
    hash: hex(`${label}/segment/${s}`),
    fragments: Array.from({ length: data + parity }, (_, c) => hex(`${label}/segment/${s}/fragment/${c}`)),
  }));
  return {
    fid: fidOf(segments.map((s) => s.hash)),
    deal: hex(`${label}/deal`).slice(0, 32),
    owner,
    name: `${label}.bin`,
    size: o.size ?? segmentSize * (count - 1) + 1,
    profile: { segmentSize, dataFragments: data, parityFragments: parity },
    segments,
    encryption: o.encrypted
      ? {
          alg: 'aes-256-gcm',
          wraps: [{ recipient: hex(`${label}/r`), ephemeral: hex(`${label}/e`), sealed: '0a'.repeat(48) }],
          tags: segments.map((_, i) => hex(`${label}/tag/${i}`).slice(0, 32)),
        }
      : null,
  };
}

export type Receipt = CallArgs<'fileBank.transferReport'>['receipts'][number];

/**
 * `miner`'s receipt for column `index` of the upload `d`. `signed` overrides what the signature covers, to forge
 * receipts that are valid signatures of something else.
 */
export function makeReceipt(
  miner: Account,
  d: Pick<Declaration, 'fid' | 'deal' | 'segments'>,
  index: number,
  signed: { fid?: string; deal?: string; index?: number; segments?: Declaration['segments'] } = {},
): Receipt {
  const i = signed.index ?? index;
  const message = transferReceiptMessage(
    signed.fid ?? d.fid,
    signed.deal ?? d.deal,
    i,
    columnHashes(signed.segments ?? d.segments, i),
  );
  return { index, miner: miner.address, signature: toHex(miner.sign(message)) };
}

/** What the extrinsic of a call paid: to the pot (collateral), and transfers directly before it (market prices). */
export interface SubmitOptions {
  readonly paidToPot?: bigint;
  readonly payments?: CallContext['payments'];
  readonly block?: number;
}

export interface Harness {
  readonly state: StateStore;
  /** The number of the last block used. */
  block: number;
  /** Applies `c`, signed by `caller`, in the next block (or `block`); commits the writes of an applied call. */
  submit(caller: string, c: ProtocolCall, options?: SubmitOptions): RemarkOutcome;
}

export function createHarness(
  state: StateStore = createMemoryState(),
  config: ProtocolConfig = CONFIG,
): Harness {
  const h: Harness = {
    state,
    block: 0,
    submit(caller, c, options = {}) {
      h.block = options.block ?? h.block + 1;
      const payload = encodeRemark(c.name, c.args);
      // `paidToPot` alone stands for a batch [transfer(pot, paidToPot), call]: the transfer directly before the call.
      const payments =
        options.payments ??
        (options.paidToPot === undefined ? [] : [{ to: config.pot, amount: options.paidToPot }]);
      const ctx = ctxAt(caller, h.block, options.paidToPot ?? 0n, payments, config);
      const outcome = applyRemark(state, ctx, payload);
      // A rejected call that was paid for writes the pot's refund debt, as the indexer applies it.
      if (outcome.kind !== 'foreign') state.apply(outcome.writes ?? []);
      return outcome;
    },
  };
  return h;
}

/**
 * Buys `gib` GiB of storage space for `owner`, paid in full by the owner: every declaration debits its owner's space,
 * so a test that declares files buys some first.
 */
export function buySpace(h: Harness, owner: string, gib = 1): void {
  expectApplied(h, owner, call('storageHandler.buySpace', { gib }), {
    payments: [{ to: CONFIG.pot, amount: BigInt(gib) * CONFIG.spacePrice }],
  });
}

/** Submits a call that must apply; returns its writes. */
export function expectApplied(h: Harness, caller: string, c: ProtocolCall, options?: SubmitOptions) {
  const outcome = h.submit(caller, c, options);
  if (outcome.kind !== 'applied') {
    expect.fail(`expected ${c.name} to apply, got ${JSON.stringify(outcome)}`);
  }
  expect(outcome.writes.length).toBeGreaterThan(0);
  return outcome.writes;
}

/** Submits a call that must be rejected for `reason`, and checks that it wrote nothing at all. */
export function expectRejected(
  h: Harness,
  caller: string,
  c: ProtocolCall,
  reason: RegExp,
  options?: SubmitOptions,
): string {
  const before = h.state.scan('');
  const outcome = h.submit(caller, c, options);
  if (outcome.kind !== 'rejected') {
    expect.fail(
      `expected ${c.name} to be rejected (${reason}), got ${JSON.stringify(outcome).slice(0, 500)}`,
    );
  }
  expect(outcome.call).toBe(c.name);
  expect(outcome.reason).toMatch(reason);
  // A rejected call that was paid for writes the pot's refund debt, and nothing else.
  const paid = (
    options?.payments ?? (options?.paidToPot ? [{ to: POT, amount: options.paidToPot }] : [])
  ).some((p) => p.to === POT && p.amount > 0n);
  expect('writes' in outcome).toBe(paid);
  const outsidePot = (entries: [string, unknown][]) => entries.filter(([k]) => !k.startsWith('pot/'));
  expect(outsidePot(h.state.scan(''))).toEqual(outsidePot(before));
  return outcome.reason;
}
