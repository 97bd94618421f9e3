import { encodeAddress } from '@polkadot/util-crypto';
import { z } from 'zod';
import { isAddress, SS58_PREFIX } from '../shared/account.ts';
import { AilinkError } from '../shared/errors.ts';
import type { CallArgs, CallName } from './calls.ts';
import type { ChainCall } from './client.ts';
import type { AuditConfig, ProtocolConfig } from './pallets/context.ts';
import { encodeRemark } from './remark.ts';

/**
 * A pot nobody holds the key of, derived as Substrate derives a pallet's account ("modl" + 8-byte id, zero padded):
 * what is paid in stays there, and no debt is ever paid. Dev networks before the pot paid out used it.
 */
export function potAddress(id = 'ailink/p'): string {
  const raw = new Uint8Array(32);
  raw.set(new TextEncoder().encode('modl'), 0);
  raw.set(new TextEncoder().encode(id.padEnd(8, '\0').slice(0, 8)), 4);
  return encodeAddress(raw, SS58_PREFIX);
}

/** One ROC: the dev chain's token has 12 decimals. */
export const ROC = 10n ** 12n;

/** CESS's audit constants (cess:pallets/audit), with block production on demand in mind for the dev chain. */
export const CESS_AUDIT: AuditConfig = Object.freeze({
  challengeInterval: 4,
  challengeMiners: 1,
  slipBaseBlocks: 50,
  serviceBytesPerBlock: 25_165_824,
  idleBytesPerBlock: 203_613_264,
  slashBasisPoints: [500, 1500] as const,
  exitAfterMisses: 100,
  // An hour of 6-second blocks: tagging a column takes seconds (the verifier tags at disk speed), so this leaves room
  // for a verifier that is briefly away, and for the miner's retries.
  tagDeadlineBlocks: 600,
  proofs: Object.freeze({
    blockSize: 8192,
    challengeBlocks: 47,
    // 64 MiB idle files whose labelling takes 2^21 × 8192 PBKDF2 iterations one after another (~1 h on one core
    // here): regenerating a challenged file takes several times the 50 blocks a challenge gets (npm run bench:pois).
    idleNodes: 2_097_152,
    idleParents: 6,
    idleOpenings: 16,
    idleRounds: 8192,
  }),
});

/** What a GiB of storage space costs on a local network (CESS sells space per GiB too). */
export const DEV_SPACE_PRICE = ROC;

/**
 * Blocks an owner has to release the key of an accepted market request: an hour of 6 s blocks (half an hour on the
 * dev chain's 3 s heartbeat); a key service that is up answers within seconds.
 */
export const DEV_REQUEST_EXPIRY_BLOCKS = 600;

/**
 * A local network's pot: the well-known dev account Ferdie (`//Ferdie`, funded at genesis), whose key `ailink dev`
 * uses to pay the pot's debts. Like Alice's, its key is public: on a dev chain anyone may sign as it. A real network
 * names a pot of its own in its protocol file. (The address is checked against the key in test/chain/config.test.ts.)
 */
export const DEV_POT = '5CiPPseXPECbkjWCa6MnjNokrgYjMqmKndv2rSnekmSK2DjL';

/**
 * A local network's verifier: the account `ailink dev` gives its verifier, whose sr25519 seed is `DEV_VERIFIER_SEED`
 * (sha-256 of "ailink: the dev network verifier"). Like Ferdie's, its key is public: on a dev network anyone may sign
 * as it. It is in the dev verifier set so that every client of a dev network agrees on that set without its
 * protocol.json — a client started with `--chain` alone uses these parameters, and one that named no verifier refused
 * the verifier's registration, never saw a column tagged, and after `tagDeadlineBlocks` watched every miner fined and
 * forced out (found by the one-hour soak of `npm run chaos`). A real network names its verifiers in its protocol file.
 * (The address is checked against the seed in test/chain/dev-accounts.test.ts.)
 */
export const DEV_VERIFIER = '5DCLnX2ruoCtefZ2cdjoE93bRYVL1NAkUkS7iH4TesvWmtow';
export const DEV_VERIFIER_SEED = '535c6879347ad54175b149c78cc7777162abd9fef8c9250ce51579f90f5fbff5';

/**
 * A local network's placement draw. Epochs of 50 blocks (2.5 minutes at the dev chain's 3 s heartbeat; sooner while
 * transactions make blocks on demand), a draw valid for 4 more epochs (an upload has at least 200 blocks from its draw
 * to its declaration: 10 minutes at the heartbeat, less while blocks come on demand), 64 draws per account and epoch (more than its 50 blocks, so an
 * account declaring in every block never runs out), 4 spares, free space weighed up to 1 TiB. The uploader's choice
 * this leaves — the best of 320 draws per account and epoch, 12 of each draw's 16 miners — is measured by `npm run
 * bench:scale`: at 10,000 miners a coalition of a tenth of them gets at best 6 of an upload's 12 columns (1.3 honestly).
 */
export const DEV_PLACEMENT = Object.freeze({
  epochBlocks: 50,
  epochsValid: 4,
  slotsPerEpoch: 64,
  spares: 4,
  capBytes: 2 ** 40,
});

/** The protocol parameters of a local network. */
export const DEV_PROTOCOL_CONFIG: ProtocolConfig = Object.freeze({
  pot: DEV_POT,
  minCollateral: ROC,
  spacePrice: DEV_SPACE_PRICE,
  restoralClaimBlocks: 20,
  requestExpiryBlocks: DEV_REQUEST_EXPIRY_BLOCKS,
  // No verifier until the network names one: `ailink dev` (src/node/devnet.ts) puts its own verifier's account here.
  verifiers: Object.freeze([DEV_VERIFIER]),
  audit: CESS_AUDIT,
  placement: DEV_PLACEMENT,
});

const count = z.number().int().positive();

/** The configuration as JSON (network.json, `--protocol FILE`): u128 amounts as decimal strings. */
export const ProtocolConfigSchema = z
  .object({
    pot: z.string().refine(isAddress, 'expected an SS58 address'),
    minCollateral: z.string().regex(/^(0|[1-9][0-9]{0,38})$/, 'expected a decimal amount'),
    // Optional so that protocol files written before space was sold still read (as the dev price).
    spacePrice: z
      .string()
      .regex(/^(0|[1-9][0-9]{0,38})$/, 'expected a decimal amount')
      .default(DEV_SPACE_PRICE.toString()),
    restoralClaimBlocks: count,
    // Optional so that protocol files written before requests expired still read (as the dev figure).
    requestExpiryBlocks: count.default(DEV_REQUEST_EXPIRY_BLOCKS),
    // Optional so that protocol files written before verifiers were fixed by genesis still read — as an empty set,
    // never as "anyone": such a network has no verifier until its configuration names one (issue 15).
    verifiers: z
      .array(z.string().refine(isAddress, 'expected an SS58 address'))
      .max(256)
      .refine((v) => new Set(v).size === v.length, 'expected each verifier once')
      .default([]),
    audit: z
      .object({
        challengeInterval: count,
        challengeMiners: count,
        // Optional: absent, a network keeps the old all-miner draw (its chain replays to the same digest).
        challengePeriodBlocks: count.optional(),
        slipBaseBlocks: count,
        serviceBytesPerBlock: count,
        idleBytesPerBlock: count,
        slashBasisPoints: z.tuple([z.number().int().min(0).max(10_000), z.number().int().min(0).max(10_000)]),
        exitAfterMisses: z.number().int().min(2),
        // Optional so that older protocol files still read; absent, untagged columns get CESS_AUDIT's deadline.
        tagDeadlineBlocks: count.default(CESS_AUDIT.tagDeadlineBlocks),
        proofs: z
          .object({
            blockSize: count.multipleOf(2),
            challengeBlocks: count,
            idleNodes: count.refine((n) => (n & (n - 1)) === 0 && n >= 2, 'expected a power of two ≥ 2'),
            idleParents: count,
            idleOpenings: count,
            // Optional so that older protocol files still read (as CESS_AUDIT's); their idle files were labelled
            // without it (PoIS v1) and must be labelled again.
            idleRounds: count.max(2 ** 24).default(CESS_AUDIT.proofs.idleRounds),
          })
          .strict(),
      })
      .strict(),
    // Optional: absent, any positive miner takes any column, as before the rules drew placements, so an old
    // network's chain replays to the same digest.
    placement: z
      .object({
        epochBlocks: count,
        epochsValid: z.number().int().min(0).max(1000),
        slotsPerEpoch: count.max(65_536),
        spares: z.number().int().min(0).max(256),
        capBytes: count,
      })
      .strict()
      .optional(),
  })
  .strict();
export type ProtocolConfigJson = z.output<typeof ProtocolConfigSchema>;

export const protocolConfigToJson = (config: ProtocolConfig): ProtocolConfigJson => ({
  ...config,
  minCollateral: config.minCollateral.toString(),
  spacePrice: config.spacePrice.toString(),
  verifiers: [...config.verifiers],
  audit: { ...config.audit, slashBasisPoints: [...config.audit.slashBasisPoints] },
  ...(config.placement === undefined ? {} : { placement: { ...config.placement } }),
});

/** @throws INVALID_INPUT naming the first field that is wrong. */
export function parseProtocolConfig(json: unknown, source = 'protocol configuration'): ProtocolConfig {
  const parsed = ProtocolConfigSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new AilinkError(
      'INVALID_INPUT',
      `${source}: ${issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'invalid'}`,
    );
  }
  return {
    ...parsed.data,
    minCollateral: BigInt(parsed.data.minCollateral),
    spacePrice: BigInt(parsed.data.spacePrice),
  };
}

/**
 * The calls that buy `gib` GiB of storage space for `owner` (default: the signer): the price paid to the pot directly
 * before the purchase, as `storageHandler.buySpace` requires. Several purchases may follow one another in one batch.
 */
export function spacePurchase(config: ProtocolConfig, gib: number, owner?: string): ChainCall[] {
  return [
    { kind: 'transfer', to: config.pot, amount: BigInt(gib) * config.spacePrice },
    protocolCall('storageHandler.buySpace', owner === undefined ? { gib } : { gib, owner }),
  ];
}

/** A protocol call as a chain call (a remark), ready for `ChainClient.submit`. */
export function protocolCall<N extends CallName>(name: N, args: CallArgs<N>): ChainCall {
  return { kind: 'remark', payload: encodeRemark(name, args) };
}
