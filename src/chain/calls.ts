import { z } from 'zod';
import { isAddress } from '../shared/account.ts';

/**
 * Every protocol call AI-LINK puts on chain, by the name CESS gives its pallet and extrinsic, with the schema of its
 * arguments. The remark codec checks a payload against these before any rule runs, so the rules trust their input.
 */

const hash = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex characters');
const address = z.string().refine(isAddress, 'expected an SS58 address');
/** u128 amounts travel as decimal strings: JSON numbers lose precision past 2^53. */
const amount = z.string().regex(/^(0|[1-9][0-9]{0,38})$/, 'expected a decimal amount');
const column = z.number().int().min(0).max(255);
const peerId = z.string().regex(/^[1-9A-HJ-NP-Za-km-z]{32,128}$/, 'expected a base58 libp2p peer id');
const multiaddrs = z.array(z.string().min(1).max(256)).max(8);
const signature = z.string().regex(/^[0-9a-f]{128}$/, 'expected a 64-byte sr25519 signature in hex');
/** The peer's Ed25519 signature of `peerRegistrationMessage` (pallets/peer-key.ts): proves the peer id is its own. */
const peerSignature = z.string().regex(/^[0-9a-f]{128}$/, 'expected a 64-byte Ed25519 signature in hex');
const taskId = z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'expected 1–64 of A–Z a–z 0–9 . _ -');

/** Largest space purchase in one call (1 PiB): keeps every account's running total an exact integer. */
export const MAX_GIB_PER_PURCHASE = 1 << 20;

export const SegmentSchema = z.object({ hash, fragments: z.array(hash).min(1).max(255) }).strict();
/** An object's erasure-coding profile, as declarations and placement holds name it. */
const ProfileSchema = z
  .object({
    segmentSize: z.number().int().positive(),
    dataFragments: z.number().int().positive().max(128),
    parityFragments: z.number().int().nonnegative().max(128),
  })
  .strict();
/** The most segments one object has: 128 GiB at 32 MiB segments (a declaration of them fills most of a block). */
export const MAX_SEGMENTS = 4096;

/**
 * The most free readers one `market.setTerms` lists (≈ 12 KB of addresses in its remark). A task's model terms and
 * the gateway's terms route allow no more, so nothing they accept is refused here.
 */
export const MAX_TERMS_READERS = 256;

/** The data key of an object sealed for one X25519 reader key (src/storage/object/envelope.ts). */
export const KeyWrapSchema = z
  .object({
    recipient: hash,
    ephemeral: hash,
    sealed: z.string().regex(/^[0-9a-f]{96}$/, 'expected 96 lowercase hex characters'),
  })
  .strict();

/** The fields of a stored object that readers need, as `fileBank.uploadDeclaration` records them. */
export const EncryptionSchema = z
  .object({
    alg: z.literal('aes-256-gcm'),
    wraps: z.array(KeyWrapSchema).min(1).max(64),
    tags: z.array(z.string().regex(/^[0-9a-f]{32}$/)),
    /**
     * Reader groups (src/storage/object/group-key.ts): a wrap whose recipient is a group's public key, and the fid of
     * the object that seals the group's key for each member. Absent on objects read only through their own wraps.
     */
    groups: z
      .array(z.object({ recipient: hash, fid: hash }).strict())
      .min(1)
      .max(4)
      .optional(),
  })
  .strict()
  .refine((e) => (e.groups ?? []).every((g) => e.wraps.some((w) => w.recipient === g.recipient)), {
    message: 'every reader group needs a wrap for its public key',
    path: ['groups'],
  });

/**
 * A bucket's name, by S3's rules: 3–63 of a–z 0–9 . -, beginning and ending with a letter or digit, no "..", and not
 * shaped like an IPv4 address. Buckets are per account (the owner's namespace), not global as in S3.
 */
export const BucketNameSchema = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/,
    'expected 3–63 of a–z 0–9 . -, beginning and ending with a letter or digit',
  )
  .refine((n) => !n.includes('..'), 'expected no ".." in a bucket name')
  .refine(
    (n) => !/^\d{1,3}(\.\d{1,3}){3}$/.test(n),
    'expected a bucket name not shaped like an IPv4 address',
  );

/** Most bytes of an object key (S3's limit), and of an object's user metadata in all (S3's 2 KiB). */
export const MAX_KEY_BYTES = 1024;
export const MAX_METADATA_BYTES = 2048;
const utf8Length = (s: string) => new TextEncoder().encode(s).byteLength;

/**
 * An object key: 1–1024 bytes of UTF-8 without control characters (NUL among them), and without a "." or ".." path
 * segment, which a file-system view of a bucket (a drive, `aws s3 sync`) would resolve out of the bucket.
 */
export const ObjectKeySchema = z
  .string()
  .min(1)
  .refine((k) => utf8Length(k) <= MAX_KEY_BYTES, `expected at most ${MAX_KEY_BYTES} bytes of UTF-8`)
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what is refused
  .refine((k) => !/[\u0000-\u001f\u007f]/.test(k), 'expected no control characters (NUL among them)')
  .refine((k) => k.split('/').every((seg) => seg !== '.' && seg !== '..'), 'expected no "." or ".." segment');

export const RetentionSchema = z
  .object({ mode: z.enum(['COMPLIANCE', 'GOVERNANCE']), until: z.number().int().positive() })
  .strict();
export type Retention = z.infer<typeof RetentionSchema>;

/** Where a stored object is filed in its owner's namespace, with the content metadata readers see. */
export const EntrySchema = z
  .object({
    bucket: BucketNameSchema,
    key: ObjectKeySchema,
    contentType: z
      .string()
      .max(255)
      .regex(/^[\x21-\x7e][\x20-\x7e]*$/, 'expected a printable ASCII media type')
      .optional(),
    /** S3's user metadata (x-amz-meta-*): lower-case names, printable values, 2 KiB in all. */
    metadata: z
      .record(
        z.string().regex(/^[a-z0-9!#$%&'*+.^_`|~-]{1,128}$/, 'expected a lower-case header token'),
        z.string().regex(/^[\x20-\x7e]*$/, 'expected printable ASCII'),
      )
      .refine(
        (m) => Object.entries(m).reduce((n, [k, v]) => n + k.length + v.length, 0) <= MAX_METADATA_BYTES,
        `expected at most ${MAX_METADATA_BYTES} bytes of metadata`,
      )
      .optional(),
    /**
     * S3 object lock: until this time (ms) nobody deletes the object — COMPLIANCE — or only its owner, saying so —
     * GOVERNANCE (S3's bypass). Only in a bucket made with object lock.
     */
    retention: RetentionSchema.optional(),
    /** S3 legal hold: nobody deletes the object while it is on (`fileBank.putLegalHold`). Only with object lock. */
    legalHold: z.boolean().optional(),
    /** The MD5 of the object's bytes (hex), S3's ETag of a single-part upload, so every gateway answers the same one. */
    etag: z
      .string()
      .regex(/^[0-9a-f]{32}(-[0-9]{1,5})?$/, 'expected an MD5 in hex (and -N for a multipart upload)')
      .optional(),
  })
  .strict();
/** Where a declaration files its object (`fileBank.uploadDeclaration`'s `entry`). */
export type ObjectEntry = z.infer<typeof EntrySchema>;

export const CALL_SCHEMAS = {
  'sminer.register': z
    .object({
      peerId,
      addrs: multiaddrs,
      capacity: z.number().int().positive(),
      collateral: amount,
      peerSignature,
    })
    .strict(),
  'sminer.updateAddrs': z.object({ addrs: multiaddrs }).strict(),
  'sminer.exit': z.object({}).strict(),
  'oss.authorize': z.object({ operator: address }).strict(),
  'oss.cancelAuthorize': z.object({ operator: address }).strict(),
  /** Space in whole GiB for `owner` (default: the caller), paid to the pot in the same batch. */
  'storageHandler.buySpace': z
    .object({ gib: z.number().int().min(1).max(MAX_GIB_PER_PURCHASE), owner: address.optional() })
    .strict(),
  'fileBank.uploadDeclaration': z
    .object({
      fid: hash,
      /** A fresh random id per upload: receipts name it, so none can be replayed into a later upload of the same fid. */
      deal: z.string().regex(/^[0-9a-f]{32}$/, 'expected 32 lowercase hex characters'),
      owner: address,
      name: z.string().max(255).optional(),
      size: z.number().int().nonnegative(),
      profile: ProfileSchema,
      segments: z.array(SegmentSchema).min(1).max(MAX_SEGMENTS),
      /**
       * The object's segments in all, when `segments` lists only the first of them: a declaration too large for one
       * remark continues in `fileBank.declareSegments` calls of the same block (the same extrinsic, as a client sends
       * them). `encryption.tags` still lists every segment's tag.
       */
      segmentCount: z.number().int().min(2).max(MAX_SEGMENTS).optional(),
      encryption: EncryptionSchema.nullable(),
      /** Files the object under a key of one of the owner's buckets (the gateway's S3 and drive views). */
      entry: EntrySchema.optional(),
      /**
       * The placement ticket the uploader drew its miners with (src/chain/pallets/placement.ts): an epoch whose
       * snapshot the rules keep, and a slot of the declaring account in it, each declared once. Required on a network
       * whose configuration has `placement`, refused on one without.
       */
      placement: z
        .object({ epoch: z.number().int().nonnegative(), slot: z.number().int().nonnegative() })
        .strict()
        .optional(),
    })
    .strict(),
  /**
   * Holds the caller's placement ticket for the upload `deal` while its columns travel, or renews the hold
   * (src/chain/pallets/placement.ts): the declaration then takes it however old its epoch is.
   */
  'placement.holdTicket': z
    .object({
      deal: z.string().regex(/^[0-9a-f]{32}$/, 'expected 32 lowercase hex characters'),
      epoch: z.number().int().nonnegative(),
      slot: z.number().int().nonnegative(),
      /** The upload's profile: its columns are drawn, and its segments size what the hold reserves. */
      profile: ProfileSchema,
      /** Segments of the owner's space the hold reserves, for the upload's fragments the miners keep meanwhile. */
      segments: z.number().int().min(1).max(MAX_SEGMENTS),
    })
    .strict(),
  /** The next segments of a declaration made with `segmentCount`, in the block that declared it; `deal` names the upload. */
  'fileBank.declareSegments': z
    .object({
      fid: hash,
      deal: z.string().regex(/^[0-9a-f]{32}$/, 'expected 32 lowercase hex characters'),
      segments: z.array(SegmentSchema).min(1).max(MAX_SEGMENTS),
    })
    .strict(),
  /** A bucket of `owner` (default: the caller), which the caller owns or is an operator of. */
  'fileBank.createBucket': z
    .object({
      name: BucketNameSchema,
      owner: address.optional(),
      /** S3 object lock: objects filed in it may carry a retention (fixed at creation, as in S3). */
      objectLock: z.boolean().optional(),
    })
    .strict(),
  /** Only an empty bucket is deleted. */
  'fileBank.deleteBucket': z.object({ name: BucketNameSchema, owner: address.optional() }).strict(),
  'fileBank.transferReport': z
    .object({
      fid: hash,
      receipts: z
        .array(
          z
            .object({
              index: column,
              miner: address,
              signature,
            })
            .strict(),
        )
        .min(1)
        .max(255),
      /** Columns the upload could not place, opened as restoral orders at once (`deferrableColumns`). */
      deferred: z.array(column).min(1).max(255).optional(),
    })
    .strict(),
  /** `bypassGovernance`: the owner deletes an object under GOVERNANCE retention before its date (S3's bypass). */
  'fileBank.deleteFile': z.object({ fid: hash, bypassGovernance: z.boolean().optional() }).strict(),
  /**
   * A bucket's default retention (S3 PutObjectLockConfiguration): every object declared into it afterwards without a
   * retention of its own is retained for `days` from its declaration. null: no default. Only in an object-lock bucket.
   */
  'fileBank.putObjectLock': z
    .object({
      name: BucketNameSchema,
      owner: address.optional(),
      defaultRetention: z
        .object({ mode: z.enum(['COMPLIANCE', 'GOVERNANCE']), days: z.number().int().min(1).max(36_500) })
        .strict()
        .nullable(),
    })
    .strict(),
  /** Sets or lengthens a filed object's retention (S3 PutObjectRetention); COMPLIANCE is never shortened or lifted. */
  'fileBank.putRetention': z.object({ fid: hash, retention: RetentionSchema }).strict(),
  /**
   * S3 legal hold (PutObjectLegalHold): while on, nobody deletes the object, whatever its retention, bypass or not.
   * Only in a bucket with object lock; the owner (or its operator) turns it on and off.
   */
  'fileBank.putLegalHold': z.object({ fid: hash, on: z.boolean() }).strict(),
  /**
   * S3 bucket versioning (PutBucketVersioning): Enabled keeps every object a key named; Suspended keeps them but a new
   * write replaces the key's "null" version. A bucket with object lock is always Enabled.
   */
  'fileBank.putVersioning': z
    .object({ name: BucketNameSchema, owner: address.optional(), status: z.enum(['Enabled', 'Suspended']) })
    .strict(),
  /** DeleteObject without a version in a versioned bucket: the key's newest version becomes a delete marker. */
  'fileBank.putDeleteMarker': z
    .object({ bucket: BucketNameSchema, key: ObjectKeySchema, owner: address.optional() })
    .strict(),
  /** DeleteObject of a delete marker (by its version id): the key names its newest remaining version again. */
  'fileBank.removeDeleteMarker': z
    .object({
      bucket: BucketNameSchema,
      key: ObjectKeySchema,
      versionId: z.string().min(1).max(64),
      owner: address.optional(),
    })
    .strict(),
  'fileBank.generateRestoralOrder': z.object({ fid: hash, index: column }).strict(),
  'fileBank.claimRestoralOrder': z.object({ fid: hash, index: column }).strict(),
  'fileBank.restoralComplete': z.object({ fid: hash, index: column }).strict(),
  /** A verifier's signed statement that it tagged the caller's column (CESS: `calculate_report`). */
  'fileBank.calculateReport': z.object({ fid: hash, index: column, verifier: address, signature }).strict(),
  'teeWorker.register': z
    .object({ peerId, addrs: multiaddrs, podr2Key: z.string().regex(/^[0-9a-f]{2,512}$/), peerSignature })
    .strict(),
  'teeWorker.updateAddrs': z.object({ addrs: multiaddrs }).strict(),
  /** A verifier's signature on a passing proof for a challenge; anyone may carry it. */
  'audit.submitResult': z
    .object({
      miner: address,
      challenge: z.number().int().nonnegative(),
      proof: hash,
      verifier: address,
      signature,
    })
    .strict(),
  'audit.commitIdle': z
    .object({ first: z.number().int().nonnegative(), roots: z.array(hash).min(1).max(256) })
    .strict(),
  'audit.releaseIdle': z.object({ count: z.number().int().positive().max(65_536) }).strict(),
  'provenance.createTask': z
    .object({ task: taskId, spec: hash, admitted: z.array(address).max(1024).optional() })
    .strict(),
  'provenance.admit': z.object({ task: taskId, account: address, identityKey: hash, signature }).strict(),
  'provenance.recordRound': z
    .object({ task: taskId, round: z.number().int().nonnegative(), manifest: hash, digest: hash })
    .strict(),
  /**
   * The coordinator fixes an attempt's cohort (`cohort`: its digest) before the attempt's SecAgg graph seed exists;
   * the block that records it supplies the seed. Round -1 is the statistics round before round 0.
   */
  'provenance.drawSeed': z
    .object({
      task: taskId,
      round: z.number().int().min(-1),
      attempt: z.number().int().nonnegative(),
      cohort: hash,
    })
    .strict(),
  /** The owner admits organisations to, or removes them from, a running task; an admitted one joins from then on. */
  'provenance.setAdmitted': z
    .object({ task: taskId, add: z.array(address).max(1024), remove: z.array(address).max(1024) })
    .strict()
    .refine((a) => a.add.length + a.remove.length > 0, 'expected an account to add or remove'),
  /**
   * The owner ends a task: no join, admission or round is recorded for it afterwards. `reason` says why when the
   * coordinator ends it itself (a round that used up its attempts); absent from the owner's `ailink task stop`.
   */
  'provenance.stopTask': z
    .object({ task: taskId, reason: z.string().min(1, 'reason: expected text').max(1000).optional() })
    .strict(),
  /** Where the task's coordinator is reached: its HTTP API and its libp2p identity and addresses. */
  'provenance.setEndpoint': z
    .object({
      task: taskId,
      url: z
        .string()
        .max(256)
        .regex(/^https?:\/\/[^\s]+$/, 'expected an http:// or https:// URL'),
      peerId,
      addrs: multiaddrs.min(1),
    })
    .strict(),
  /** The owner's access terms: `readers` read for free, others pay `price` planck per request (null: not for sale). */
  'market.setTerms': z
    .object({ fid: hash, readers: z.array(address).max(MAX_TERMS_READERS), price: amount.nullable() })
    .strict(),
  /** A reader asks for the data key, for its X25519 reader key; a price is paid by transfers right before it. */
  'market.request': z.object({ fid: hash, readerKey: hash }).strict(),
  /** The owner (or its operator) releases the data key wrapped for a reader's reader key. */
  'market.grant': z.object({ fid: hash, reader: address, wrap: KeyWrapSchema }).strict(),
  /** The pot pays debts the rules recorded: the i-th transfer directly before it pays the i-th named debt. */
  'pot.payout': z
    .object({
      debts: z
        .array(z.string().regex(/^[0-9]{10}$/, 'expected a 10-digit debt id'))
        .min(1)
        .max(64),
    })
    .strict(),
} as const;

export type CallName = keyof typeof CALL_SCHEMAS;
export type CallArgs<N extends CallName> = z.infer<(typeof CALL_SCHEMAS)[N]>;
/** A decoded, validated protocol call. */
export type ProtocolCall = { [N in CallName]: { readonly name: N; readonly args: CallArgs<N> } }[CallName];

export const isCallName = (name: string): name is CallName => Object.hasOwn(CALL_SCHEMAS, name);
