import { createHash } from 'node:crypto';
import { verifySignature } from '../../shared/account.ts';
import { fromHex } from '../../shared/bytes.ts';
import { fidOf } from '../../shared/fid.ts';
import type { CallArgs, Retention } from '../calls.ts';
import { type StateReader, type StateValue, type StateWriter, scanBelow } from '../state.ts';
import { type BlockContext, type CallContext, type ProtocolConfig, type Rule, reject } from './context.ts';
import { authorised } from './oss.ts';
import {
  countUsed,
  drawnMiners,
  type PlacementTicket,
  restorers,
  takeTicket,
  withoutDrawn,
} from './placement.ts';
import { positiveMiner } from './sminer.ts';
import { creditSpace, debitSpace, spaceTakenBy } from './storage-handler.ts';
import { verifierKey } from './tee-worker.ts';

type Declaration = CallArgs<'fileBank.uploadDeclaration'>;

/** A file as fileBank records it: the declaration, its state, and which miner holds each column. */
export type FileInfo = FileFields & {
  /** The ticket its miners were drawn with, on networks whose rules draw placements (`PlacementConfig`). */
  placement?: PlacementTicket;
};

interface FileFields {
  [key: string]: StateValue;
  owner: string;
  deal: string;
  name: string | null;
  size: number;
  profile: Declaration['profile'];
  segments: Declaration['segments'];
  encryption: Declaration['encryption'];
  state: 'Pending' | 'Active';
  declaredAt: number;
  /** The declaring block's timestamp (ms). */
  declaredTime: number;
  activeAt: number | null;
  /** `placements[i]`: the miner (SS58) that reported column i, null until one did. */
  placements: (string | null)[];
  /**
   * Bytes of the owner's space the declaration took (`spaceTakenBy`), given back when the file is removed. Absent in
   * files declared before space was a quota (read it as 0): they were never debited, so they are never credited.
   */
  charged: number;
}

/** Where a file is filed in its owner's buckets, with its content metadata (`filedKey`). */
export type FileEntry = NonNullable<Declaration['entry']> & { [key: string]: StateValue };

/** A bucket of an owner's namespace. */
export interface BucketInfo {
  [key: string]: StateValue;
  createdAt: number;
  /** The creating block's timestamp (ms). */
  createdTime: number;
  /** Who created it: the owner or its operator (a gateway). */
  by: string;
  /** S3 object lock: objects filed in it may carry a retention (absent in buckets made before it existed: false). */
  objectLock: boolean;
  /** What an object declared into it without a retention of its own gets (null, or absent in older buckets: none). */
  defaultRetention: { mode: 'COMPLIANCE' | 'GOVERNANCE'; days: number } | null;
  /** S3 versioning as last set; null (or absent in older buckets) if never (see `versioningOf`). */
  versioning: VersioningStatus | null;
}

export type VersioningStatus = 'Enabled' | 'Suspended';

/**
 * One version of a key in a versioned bucket: an object (its fid) or a delete marker (fid null). Its id is the fid,
 * "null" for what a write left while versioning was suspended (or before it was ever enabled, S3's "null" version),
 * and `m<block>.<n>` for a marker.
 */
export interface VersionInfo {
  [key: string]: StateValue;
  id: string;
  fid: string | null;
  /** The block that made it the key's newest version, and its timestamp (ms). */
  at: number;
  time: number;
}

/** What a key of a bucket names: the object filed there now. */
export interface EntryInfo {
  [key: string]: StateValue;
  fid: string;
  /** The block that filed it. */
  at: number;
}

export interface RestoralOrder {
  [key: string]: StateValue;
  /** The miner that held the column; null for a column its upload deferred (no miner ever held it). */
  origin: string | null;
  generatedAt: number;
  /**
   * Who asked for it: the owner (or its operator, or the holding miner), whose client then drives the repair; null
   * when the protocol opened it (a miner's exit or an audit penalty) and any miner may take it at once.
   */
  by: string | null;
  claimer: string | null;
  /** Last block in which the claimer may complete. */
  deadline: number | null;
}

export const fileKey = (fid: string) => `fileBank/files/${fid}`;
export const minerFilesPrefix = (miner: string) => `fileBank/minerFiles/${miner}/`;
export const ownerFilesPrefix = (owner: string) => `fileBank/ownerFiles/${owner}/`;
export const ordersPrefix = (fid: string) => `fileBank/orders/${fid}/`;
export const bucketsPrefix = (owner: string) => `fileBank/buckets/${owner}/`;
export const bucketKey = (owner: string, name: string) => `${bucketsPrefix(owner)}${name}`;
/** The keys of a bucket, in UTF-8 byte order (S3's listing order): a key's prefix is a prefix of its state key. */
export const entriesPrefix = (owner: string, bucket: string) => `fileBank/entries/${owner}/${bucket}/`;
export const entryKey = (owner: string, bucket: string, key: string) =>
  `${entriesPrefix(owner, bucket)}${key}`;
/**
 * A versioned bucket's versions: per key, oldest first. NUL ends the key (no key holds a control character), so one
 * key's versions never sit between another key's, and a key prefix is still a prefix of the state keys.
 */
export const versionsPrefix = (owner: string, bucket: string) => `fileBank/versions/${owner}/${bucket}/`;
const keyVersionsPrefix = (owner: string, bucket: string, key: string) =>
  `${versionsPrefix(owner, bucket)}${key}\u0000`;
/**
 * A declaration still listing fewer segments than it announced (`segmentCount`): how many in all. Until the rest come
 * (`fileBank.declareSegments`, same block) its fid and size are unchecked and no receipt is taken.
 */
const declaringKey = (fid: string) => `fileBank/declaring/${fid}`;
interface Declaring {
  [key: string]: StateValue;
  total: number;
}
/** Where a file is filed (its `FileEntry`), for files filed in a bucket. */
export const filedKey = (fid: string) => `fileBank/filed/${fid}`;
const orderKey = (fid: string, index: number) => `${ordersPrefix(fid)}${String(index).padStart(3, '0')}`;
/** The holder a verifier tagged a column for (CESS: `calculate_report`); a restored column must be tagged anew. */
export const taggedPrefix = (fid: string) => `fileBank/tagged/${fid}/`;
export const taggedKey = (fid: string, index: number) =>
  `${taggedPrefix(fid)}${String(index).padStart(3, '0')}`;
/**
 * Columns placed but not yet tagged for their holder, with the last block to get that done (`UntaggedColumn`); the
 * audit hook turns an overdue one into a miss and a restoral order.
 */
export const UNTAGGED_PREFIX = 'fileBank/untagged/';
const untaggedPrefix = (fid: string) => `${UNTAGGED_PREFIX}${fid}/`;
const untaggedKey = (fid: string, index: number) => `${untaggedPrefix(fid)}${String(index).padStart(3, '0')}`;

export interface UntaggedColumn {
  [key: string]: StateValue;
  miner: string;
  /** Last block in which a tag report for this holder is on time. */
  deadline: number;
}

/** The tag deadline starts over whenever a column gets a new holder. */
function expectTags(
  state: StateWriter,
  ctx: BlockContext,
  file: FileInfo,
  fid: string,
  index: number,
  miner: string,
) {
  const { tagDeadlineBlocks, serviceBytesPerBlock } = ctx.config.audit;
  const columnBytes = file.segments.length * (file.profile.segmentSize / file.profile.dataFragments);
  state.put(untaggedKey(fid, index), {
    miner,
    deadline: ctx.block.number + tagDeadlineBlocks + Math.ceil(columnBytes / serviceBytesPerBlock),
  } satisfies UntaggedColumn);
}

export const getFile = (state: StateReader, fid: string): FileInfo | undefined =>
  state.get<FileInfo>(fileKey(fid));

function existingFile(state: StateReader, fid: string): FileInfo {
  const file = getFile(state, fid);
  if (file === undefined) reject(`no file ${fid} is declared`);
  return file;
}

function checkColumn(file: FileInfo, index: number): void {
  if (index >= file.placements.length) {
    reject(`column ${index} does not exist: the file has columns 0..${file.placements.length - 1}`);
  }
}

/**
 * What a miner signs for the column it stores: the upload (fid and deal), the column, and a digest of the fragment
 * hashes in that column, so a receipt cannot be moved to another file, column or later upload of the same fid.
 */
export function transferReceiptMessage(
  fid: string,
  deal: string,
  index: number,
  columnHashes: readonly string[],
) {
  return new TextEncoder().encode(
    `ailink/transfer-receipt/v1\n${fid}\n${deal}\n${index}\n${columnDigest(columnHashes)}`,
  );
}

export const columnHashes = (
  segments: readonly { fragments: readonly string[] }[],
  index: number,
): string[] => segments.map((s) => s.fragments[index]!);

const uploadDeclaration: Rule<Declaration> = (state, ctx, args) => {
  if (args.owner !== ctx.caller && !authorised(state, args.owner, ctx.caller)) {
    reject(
      `${ctx.caller} may not declare uploads for ${args.owner}: the owner has not authorised it (oss.authorize)`,
    );
  }
  replaceIncomplete(state, ctx, args.fid);
  const ticket = takeTicket(state, ctx, args.placement, { deal: args.deal, profile: args.profile });
  const total = args.segmentCount ?? args.segments.length;
  if (total < args.segments.length) {
    reject(`segmentCount ${total} is less than the ${args.segments.length} segments listed`);
  }
  checkSegments(args.profile, args.segments, 0);
  if (total === args.segments.length) checkComplete(args.fid, args.size, args.profile, args.segments);
  else state.put(declaringKey(args.fid), { total } satisfies Declaring);
  if (args.encryption !== null && args.encryption.tags.length !== total) {
    reject(`encryption lists ${args.encryption.tags.length} tags for ${total} segments`);
  }
  if (args.entry !== undefined) {
    const bucket = state.get<BucketInfo>(bucketKey(args.owner, args.entry.bucket));
    if (bucket === undefined) {
      reject(`${args.owner} has no bucket ${args.entry.bucket} (fileBank.createBucket)`);
    }
    if (args.entry.retention !== undefined)
      checkRetention(bucket, ctx, args.entry.bucket, args.entry.retention);
    if (args.entry.legalHold === true) checkLockable(bucket, args.entry.bucket, 'a legal hold');
    // The bucket's default applies by rule, so no client (or gateway) can file an object around it.
    const byDefault = bucket.defaultRetention ?? null;
    const entry =
      args.entry.retention === undefined && byDefault !== null
        ? {
            ...args.entry,
            retention: { mode: byDefault.mode, until: ctx.block.timestamp + byDefault.days * 86_400_000 },
          }
        : args.entry;
    // A retained object is never replaced by this one: retention exists only in object-lock buckets, which are
    // always versioned (`versioningOf`), so the object stays on as an older version.
    // Where the object will be filed; the key names it only once it is Active (transferReport), so an upload that
    // never completes leaves the key to the object it named.
    state.put(filedKey(args.fid), entry as FileEntry);
  }
  // The owner pays with its space whoever declares (the owner or its operator); a Pending declaration holds it too.
  // Every segment it announces, also those still to come in declareSegments.
  const charged = spaceTakenBy(total, args.profile);
  debitSpace(state, args.owner, charged, `the declaration of ${args.fid}`);
  state.put(fileKey(args.fid), {
    owner: args.owner,
    deal: args.deal,
    name: args.name ?? null,
    size: args.size,
    profile: args.profile,
    segments: args.segments,
    encryption: args.encryption,
    state: 'Pending',
    declaredAt: ctx.block.number,
    declaredTime: ctx.block.timestamp,
    activeAt: null,
    placements: new Array<string | null>(columnsOf(args.profile)).fill(null),
    charged,
    ...(ticket === undefined ? {} : { placement: ticket }),
  } satisfies FileInfo);
  state.put(`${ownerFilesPrefix(args.owner)}${args.fid}`, ctx.block.number);
};

const columnsOf = (profile: Declaration['profile']) => profile.dataFragments + profile.parityFragments;

/**
 * How many columns an upload may leave unplaced (half the parity, 4 of 12): when fewer than 12 distinct miners take
 * its columns — one of exactly 12 is down — the file still goes Active with the rest, and the protocol opens a
 * restoral order for each deferred column at once, which a miner holding no column of the file takes (the one that
 * was down, once back, or a new one). The file then survives the loss of another half of its parity meanwhile.
 */
export const deferrableColumns = (profile: Pick<Declaration['profile'], 'parityFragments'>): number =>
  Math.floor(profile.parityFragments / 2);

/** Every segment lists one fragment hash per column of the profile. */
function checkSegments(
  profile: Declaration['profile'],
  segments: Declaration['segments'],
  first: number,
): void {
  const width = columnsOf(profile);
  segments.forEach((segment, i) => {
    if (segment.fragments.length !== width) {
      reject(
        `segment ${first + i} lists ${segment.fragments.length} fragment hashes, the profile needs ${width}`,
      );
    }
  });
}

/** All segments declared: they give the fid, and the size fills the last of them. */
function checkComplete(
  fid: string,
  size: number,
  profile: Declaration['profile'],
  segments: Declaration['segments'],
): void {
  const derived = fidOf(segments.map((s) => s.hash));
  if (derived !== fid) reject(`the segment hashes give fid ${derived}, not ${fid}`);
  const capacity = segments.length * profile.segmentSize;
  if (size > capacity || (segments.length > 1 && size <= capacity - profile.segmentSize)) {
    reject(`size ${size} does not fit ${segments.length} segments of ${profile.segmentSize} bytes`);
  }
}

const declareSegments: Rule<CallArgs<'fileBank.declareSegments'>> = (state, ctx, args) => {
  const file = existingFile(state, args.fid);
  const declaring = state.get<Declaring>(declaringKey(args.fid));
  if (declaring === undefined) reject(`the declaration of ${args.fid} awaits no segments: it is complete`);
  if (file.owner !== ctx.caller && !authorised(state, file.owner, ctx.caller)) {
    reject(
      `${ctx.caller} may not declare segments for ${file.owner}: the owner has not authorised it (oss.authorize)`,
    );
  }
  if (args.deal !== file.deal) {
    reject(`these segments are for upload ${args.deal}; ${args.fid} was declared as upload ${file.deal}`);
  }
  // Within the declaring block, so a declaration never stays half-listed past it (and then is replaceable, issue 15).
  if (file.declaredAt !== ctx.block.number) {
    reject(`${args.fid} was declared in block ${file.declaredAt}: its segments must follow in that block`);
  }
  const segments = [...file.segments, ...args.segments];
  if (segments.length > declaring.total) {
    reject(
      `${args.fid} would list ${segments.length} segments; its declaration announced ${declaring.total}`,
    );
  }
  checkSegments(file.profile, args.segments, file.segments.length);
  if (segments.length === declaring.total) {
    checkComplete(args.fid, file.size, file.profile, segments);
    state.delete(declaringKey(args.fid));
  }
  state.put(fileKey(args.fid), { ...file, segments });
};

/**
 * A declaration binds its fid only once it is complete. An honest client declares and reports all receipts in one
 * extrinsic, so its file is Active in the block that declares it; a file still Pending after that block was left
 * incomplete, and the next declaration of the fid replaces it. Without this, anyone who knew an unencrypted object's
 * bytes (its fid is their hash) could declare them first without storing them and block the fid for good (issue 15).
 */
function replaceIncomplete(state: StateWriter, ctx: BlockContext, fid: string): void {
  const file = getFile(state, fid);
  if (file === undefined) return;
  if (file.state === 'Active') {
    reject(`file ${fid} is already stored by ${file.owner} (Active since block ${file.activeAt})`);
  }
  if (file.declaredAt === ctx.block.number) {
    reject(`file ${fid} was declared in this block by ${file.owner}; it may still complete in it`);
  }
  removeFile(state, ctx, fid, file);
}

/**
 * Forgets a file and everything fileBank keeps about it, and gives its owner back the space it took: every removal
 * (deleteFile, an overwrite, a replaced incomplete declaration) goes through here.
 */
function removeFile(state: StateWriter, ctx: BlockContext, fid: string, file: FileInfo): void {
  creditSpace(state, file.owner, file.charged ?? 0);
  const entry = state.get<FileEntry>(filedKey(fid));
  if (entry !== undefined) {
    state.delete(filedKey(fid));
    const version = keyVersions(state, file.owner, entry.bucket, entry.key).find(([, v]) => v.fid === fid);
    if (version !== undefined) {
      // One version of a versioned key: the key names its newest remaining version (S3's delete of a version).
      state.delete(version[0]);
      pointKey(state, file.owner, entry.bucket, entry.key);
    } else {
      const at = entryKey(file.owner, entry.bucket, entry.key);
      if (state.get<EntryInfo>(at)?.fid === fid) state.delete(at);
    }
  }
  state.delete(fileKey(fid));
  if (state.get(declaringKey(fid)) !== undefined) state.delete(declaringKey(fid));
  state.delete(`${ownerFilesPrefix(file.owner)}${fid}`);
  for (const miner of file.placements) if (miner !== null) releaseColumn(state, ctx, miner, fid, file);
  for (const [key] of state.scan(ordersPrefix(fid))) state.delete(key);
  for (const [key] of state.scan(taggedPrefix(fid))) state.delete(key);
  for (const [key] of state.scan(untaggedPrefix(fid))) state.delete(key);
}

/** Bytes one column of `file` takes on its miner: what `serviceBytesOf` counts. */
const columnBytesOf = (file: FileInfo) =>
  file.segments.length * (file.profile.segmentSize / file.profile.dataFragments);

/** Records `miner` holding column `index` of `fid` (minerFiles, and the placement draw's used-bytes counter). */
function holdColumn(
  state: StateWriter,
  ctx: BlockContext,
  miner: string,
  fid: string,
  file: FileInfo,
  index: number,
): void {
  state.put(`${minerFilesPrefix(miner)}${fid}`, index);
  countUsed(state, ctx, miner, columnBytesOf(file));
}

/** Forgets that `miner` holds a column of `fid`, if the chain records it holding one. */
function releaseColumn(
  state: StateWriter,
  ctx: BlockContext,
  miner: string,
  fid: string,
  file: FileInfo,
): void {
  const key = `${minerFilesPrefix(miner)}${fid}`;
  if (state.get(key) === undefined) return;
  state.delete(key);
  countUsed(state, ctx, miner, -columnBytesOf(file));
}

/** The owner, or an operator it authorised, manages its buckets. */
function bucketOwner(
  state: StateReader,
  ctx: { caller: string },
  owner: string | undefined,
  what: string,
): string {
  const account = owner ?? ctx.caller;
  if (account !== ctx.caller && !authorised(state, account, ctx.caller)) {
    reject(
      `${ctx.caller} may not ${what} buckets of ${account}: the owner has not authorised it (oss.authorize)`,
    );
  }
  return account;
}

const createBucket: Rule<CallArgs<'fileBank.createBucket'>> = (state, ctx, args) => {
  const owner = bucketOwner(state, ctx, args.owner, 'create');
  const existing = state.get<BucketInfo>(bucketKey(owner, args.name));
  if (existing !== undefined)
    reject(`${owner} already has a bucket ${args.name} (since block ${existing.createdAt})`);
  state.put(bucketKey(owner, args.name), {
    createdAt: ctx.block.number,
    createdTime: ctx.block.timestamp,
    by: ctx.caller,
    objectLock: args.objectLock === true,
    defaultRetention: null,
    versioning: null,
  } satisfies BucketInfo);
};

/** Retention and legal holds exist only in a bucket made with object lock (S3's rule). */
function checkLockable(bucket: BucketInfo, name: string, what: string): void {
  if (bucket.objectLock !== true) {
    reject(`bucket ${name} was not made with object lock: its objects cannot carry ${what}`);
  }
}

/** A retention may be set only in a bucket with object lock, and only for a time still ahead. */
function checkRetention(bucket: BucketInfo, ctx: BlockContext, name: string, retention: Retention): void {
  checkLockable(bucket, name, 'a retention');
  if (retention.until <= ctx.block.timestamp) {
    reject(
      `a retention until ${new Date(retention.until).toISOString()} is already past (block time ${new Date(ctx.block.timestamp).toISOString()})`,
    );
  }
}

/**
 * Refuses when `fid`'s legal hold or retention forbids deleting it now: a hold until it is lifted; COMPLIANCE until
 * its date, for everyone; GOVERNANCE until its date, unless the owner (or its operator) bypasses it.
 */
function checkNotRetained(
  state: StateReader,
  ctx: BlockContext,
  fid: string,
  bypassGovernance: boolean,
  what: string,
): void {
  const entry = state.get<FileEntry>(filedKey(fid));
  if (entry?.legalHold === true)
    reject(`${what}: ${fid} is under a legal hold, which its owner must lift first (whatever its retention)`);
  const retention = entry?.retention;
  if (retention === undefined || retention.until <= ctx.block.timestamp) return;
  if (retention.mode === 'GOVERNANCE' && bypassGovernance) return;
  reject(
    `${what}: ${fid} is retained (${retention.mode}) until ${new Date(retention.until).toISOString()}${retention.mode === 'GOVERNANCE' ? '; its owner may bypass GOVERNANCE retention' : ''}`,
  );
}

/** Sets or clears an object-lock bucket's default retention. */
const putObjectLock: Rule<CallArgs<'fileBank.putObjectLock'>> = (state, ctx, args) => {
  const owner = bucketOwner(state, ctx, args.owner, 'configure');
  const bucket = state.get<BucketInfo>(bucketKey(owner, args.name));
  if (bucket === undefined) reject(`${owner} has no bucket ${args.name}`);
  if (bucket.objectLock !== true) {
    reject(`bucket ${args.name} was not made with object lock: it has no default retention to set`);
  }
  state.put(bucketKey(owner, args.name), {
    ...bucket,
    defaultRetention: args.defaultRetention === null ? null : { ...args.defaultRetention },
  });
};

/** Sets or lengthens a filed object's retention; a COMPLIANCE one is never shortened, lifted or turned to GOVERNANCE. */
const putRetention: Rule<CallArgs<'fileBank.putRetention'>> = (state, ctx, args) => {
  const file = existingFile(state, args.fid);
  if (file.owner !== ctx.caller && !authorised(state, file.owner, ctx.caller)) {
    reject(
      `${ctx.caller} may not set the retention of ${args.fid}: only its owner or an operator it authorised`,
    );
  }
  const entry = state.get<FileEntry>(filedKey(args.fid));
  if (entry === undefined)
    reject(`${args.fid} is filed in no bucket: only a bucket with object lock retains`);
  checkRetention(
    state.get<BucketInfo>(bucketKey(file.owner, entry.bucket))!,
    ctx,
    entry.bucket,
    args.retention,
  );
  const now = entry.retention;
  if (now !== undefined && now.until > ctx.block.timestamp) {
    if (args.retention.until < now.until) {
      reject(
        `${args.fid} is retained until ${new Date(now.until).toISOString()}; a retention may only be lengthened`,
      );
    }
    if (now.mode === 'COMPLIANCE' && args.retention.mode !== 'COMPLIANCE') {
      reject(`${args.fid} is under COMPLIANCE retention, which nobody turns into GOVERNANCE`);
    }
  }
  state.put(filedKey(args.fid), { ...entry, retention: { ...args.retention } } as FileEntry);
};

const deleteBucket: Rule<CallArgs<'fileBank.deleteBucket'>> = (state, ctx, args) => {
  const owner = bucketOwner(state, ctx, args.owner, 'delete');
  if (state.get(bucketKey(owner, args.name)) === undefined) reject(`${owner} has no bucket ${args.name}`);
  const entries = state.scan(entriesPrefix(owner, args.name)).length;
  if (entries > 0) reject(`bucket ${args.name} of ${owner} is not empty: ${entries} objects are filed in it`);
  const versions = state.scan(versionsPrefix(owner, args.name)).length;
  if (versions > 0) {
    reject(
      `bucket ${args.name} of ${owner} is not empty: it keeps ${versions} versions (delete markers among them); delete each`,
    );
  }
  state.delete(bucketKey(owner, args.name));
};

/**
 * Miners' receipts, carried by anyone (usually the uploader); all or none apply. The report that completes a file
 * files it under its key, and the object the key named before is deleted in that same call (S3's overwrite): no
 * window in which both are stored, none in which neither is, and no object left stored but filed nowhere.
 * @returns the fid of the object it replaced, whose market state the caller clears
 */
const transferReport = (
  state: StateWriter,
  ctx: CallContext,
  args: CallArgs<'fileBank.transferReport'>,
): string | undefined => {
  const file = existingFile(state, args.fid);
  const declaring = state.get<Declaring>(declaringKey(args.fid));
  if (declaring !== undefined) {
    reject(
      `${args.fid} lists ${file.segments.length} of its ${declaring.total} segments: its declaration is incomplete (fileBank.declareSegments)`,
    );
  }
  const placements = [...file.placements];
  const drawn =
    args.receipts.length === 0
      ? undefined
      : drawnMiners(state, ctx, args.fid, file.placement, placements.length);
  for (const receipt of args.receipts) {
    checkColumn(file, receipt.index);
    positiveMiner(state, receipt.miner, 'receipt signer');
    if (drawn !== undefined && !drawn.has(receipt.miner)) {
      reject(
        `miner ${receipt.miner} is not among the ${drawn.size} miners drawn for ${args.fid} (placement epoch ${file.placement!.epoch}, slot ${file.placement!.slot}): its column must go to a drawn miner`,
      );
    }
    const holder = placements[receipt.index];
    if (holder === receipt.miner) {
      reject(
        `the receipt of ${receipt.miner} for column ${receipt.index} was already applied (replayed receipt)`,
      );
    }
    if (holder !== null)
      reject(`column ${receipt.index} was already reported by ${holder} (duplicate index)`);
    const other = placements.indexOf(receipt.miner);
    if (other !== -1) {
      reject(`miner ${receipt.miner} already reported column ${other}; one miner holds one column of a file`);
    }
    const message = transferReceiptMessage(
      args.fid,
      file.deal,
      receipt.index,
      columnHashes(file.segments, receipt.index),
    );
    if (!verifySignature(receipt.miner, message, fromHex(receipt.signature))) {
      reject(`the receipt for column ${receipt.index} is not signed by ${receipt.miner} for this upload`);
    }
    placements[receipt.index] = receipt.miner;
    holdColumn(state, ctx, receipt.miner, args.fid, file, receipt.index);
    expectTags(state, ctx, file, args.fid, receipt.index, receipt.miner);
  }
  const deferred = checkDeferred(state, ctx, file, args.fid, placements, args.deferred ?? []);
  const complete = placements.every((p, column) => p !== null || deferred.has(column));
  const activated = complete && file.state === 'Pending';
  for (const column of deferred) openProtocolOrder(state, ctx, args.fid, column, null);
  state.put(fileKey(args.fid), {
    ...file,
    placements,
    ...(activated ? { state: 'Active', activeAt: ctx.block.number } : {}),
    // A held draw is needed only until every column is reported: an Active file keeps the ticket alone.
    ...(activated && file.placement?.drawn !== undefined ? { placement: withoutDrawn(file.placement) } : {}),
  });
  const entry = activated ? state.get<FileEntry>(filedKey(args.fid)) : undefined;
  if (entry === undefined) return undefined;
  const bucket = state.get<BucketInfo>(bucketKey(file.owner, entry.bucket));
  const versioning = bucket === undefined ? undefined : versioningOf(bucket);
  if (versioning === 'Enabled') {
    recordVersion(state, ctx, file.owner, entry.bucket, entry.key, args.fid, args.fid);
    return undefined;
  }
  if (versioning === 'Suspended') {
    const dropped = dropNullVersion(state, ctx, file.owner, entry.bucket, entry.key);
    recordVersion(state, ctx, file.owner, entry.bucket, entry.key, 'null', args.fid);
    return dropped;
  }
  const at = entryKey(file.owner, entry.bucket, entry.key);
  const before = state.get<EntryInfo>(at);
  state.put(at, { fid: args.fid, at: ctx.block.number } satisfies EntryInfo);
  const replaced = before === undefined ? undefined : getFile(state, before.fid);
  if (before === undefined || replaced === undefined) return undefined;
  removeFile(state, ctx, before.fid, replaced);
  return before.fid;
};

/**
 * Checks the columns a report defers (`deferrableColumns`): only the owner or its operator defers, only in the report
 * that completes the file, each column at most once, without a receipt, and no more than the limit.
 */
function checkDeferred(
  state: StateReader,
  ctx: CallContext,
  file: FileInfo,
  fid: string,
  placements: readonly (string | null)[],
  deferred: readonly number[],
): ReadonlySet<number> {
  const set = new Set(deferred);
  if (set.size === 0) return set;
  if (file.owner !== ctx.caller && !authorised(state, file.owner, ctx.caller))
    reject(
      `${ctx.caller} may not defer columns of ${fid}: only its owner ${file.owner} or an operator it authorised`,
    );
  if (file.state !== 'Pending')
    reject(`${fid} is already ${file.state}: only its completing report defers columns`);
  if (set.size !== deferred.length) reject(`a deferred column is listed twice: ${deferred.join(', ')}`);
  const limit = deferrableColumns(file.profile);
  if (set.size > limit) reject(`${set.size} columns deferred; an upload may defer at most ${limit}`);
  for (const column of set) {
    checkColumn(file, column);
    if (placements[column] !== null)
      reject(`column ${column} is reported by ${placements[column]}, so it cannot be deferred`);
  }
  const missing = placements.flatMap((p, column) => (p === null && !set.has(column) ? [column] : []));
  if (missing.length > 0)
    reject(
      `columns are deferred only by the report that completes the file; columns ${missing.join(', ')} have neither a receipt nor a deferral`,
    );
  return set;
}

/** A bucket's versioning: as last set, and always Enabled with object lock (S3's rule); undefined if never set. */
export const versioningOf = (bucket: BucketInfo): VersioningStatus | undefined =>
  bucket.versioning ?? (bucket.objectLock === true ? 'Enabled' : undefined);

/** A key's versions, oldest first, with their state keys. */
function keyVersions(
  state: StateReader,
  owner: string,
  bucket: string,
  key: string,
): [string, VersionInfo][] {
  return state.scan(keyVersionsPrefix(owner, bucket, key)) as [string, VersionInfo][];
}

/**
 * Makes `fid` (null: a delete marker) the key's newest version. An object the key named before versioning has no
 * record yet: it is recorded first, as the key's "null" version, so it stays listed and reachable.
 */
function recordVersion(
  state: StateWriter,
  ctx: BlockContext,
  owner: string,
  bucket: string,
  key: string,
  id: string | undefined,
  fid: string | null,
): string {
  const versions = keyVersions(state, owner, bucket, key);
  let seq = versions.length === 0 ? 0 : Number(versions.at(-1)![0].slice(-12));
  const at = (n: number) => `${keyVersionsPrefix(owner, bucket, key)}${String(n).padStart(12, '0')}`;
  if (versions.length === 0) {
    const named = state.get<EntryInfo>(entryKey(owner, bucket, key));
    const before = named === undefined ? undefined : getFile(state, named.fid);
    if (named !== undefined && before !== undefined) {
      seq += 1;
      state.put(at(seq), { id: 'null', fid: named.fid, at: named.at, time: before.declaredTime });
    }
  }
  seq += 1;
  const versionId = id ?? `m${ctx.block.number}.${seq}`;
  state.put(at(seq), {
    id: versionId,
    fid,
    at: ctx.block.number,
    time: ctx.block.timestamp,
  } satisfies VersionInfo);
  pointKey(state, owner, bucket, key);
  return versionId;
}

/** The key names its newest version, or nothing when that is a delete marker or no version is left. */
function pointKey(state: StateWriter, owner: string, bucket: string, key: string): void {
  const newest = keyVersions(state, owner, bucket, key).at(-1)?.[1];
  const at = entryKey(owner, bucket, key);
  if (newest?.fid === null || newest === undefined) state.delete(at);
  else state.put(at, { fid: newest.fid, at: newest.at } satisfies EntryInfo);
}

/**
 * With versioning suspended, a write replaces the key's "null" version (S3): that object is deleted, or that marker
 * removed. Retention cannot stand in the way: it exists only in object-lock buckets, whose versioning is never
 * suspended. @returns the deleted object's fid, whose market state the caller clears
 */
function dropNullVersion(
  state: StateWriter,
  ctx: BlockContext,
  owner: string,
  bucket: string,
  key: string,
): string | undefined {
  const versions = keyVersions(state, owner, bucket, key);
  const named = state.get<EntryInfo>(entryKey(owner, bucket, key));
  const fid = versions.length === 0 ? named?.fid : versions.find(([, v]) => v.id === 'null')?.[1].fid;
  if (fid === undefined) return undefined;
  if (fid === null) {
    state.delete(versions.find(([, v]) => v.id === 'null')![0]);
    return undefined;
  }
  const file = getFile(state, fid);
  if (file === undefined) return undefined;
  removeFile(state, ctx, fid, file);
  return fid;
}

const putVersioning: Rule<CallArgs<'fileBank.putVersioning'>> = (state, ctx, args) => {
  const owner = bucketOwner(state, ctx, args.owner, 'configure');
  const bucket = state.get<BucketInfo>(bucketKey(owner, args.name));
  if (bucket === undefined) reject(`${owner} has no bucket ${args.name}`);
  if (bucket.objectLock === true && args.status === 'Suspended') {
    reject(`bucket ${args.name} has object lock: its versioning stays Enabled (S3's rule)`);
  }
  state.put(bucketKey(owner, args.name), { ...bucket, versioning: args.status });
};

/** @returns the fid of the "null" version a suspended bucket's marker replaced, whose market state the caller clears */
const putDeleteMarker = (
  state: StateWriter,
  ctx: CallContext,
  args: CallArgs<'fileBank.putDeleteMarker'>,
): string | undefined => {
  const owner = bucketOwner(state, ctx, args.owner, 'delete objects in');
  const bucket = state.get<BucketInfo>(bucketKey(owner, args.bucket));
  if (bucket === undefined) reject(`${owner} has no bucket ${args.bucket}`);
  const versioning = versioningOf(bucket);
  if (versioning === undefined) {
    reject(`bucket ${args.bucket} is not versioned: delete the object itself (fileBank.deleteFile)`);
  }
  const dropped =
    versioning === 'Suspended' ? dropNullVersion(state, ctx, owner, args.bucket, args.key) : undefined;
  recordVersion(
    state,
    ctx,
    owner,
    args.bucket,
    args.key,
    versioning === 'Suspended' ? 'null' : undefined,
    null,
  );
  return dropped;
};

const removeDeleteMarker: Rule<CallArgs<'fileBank.removeDeleteMarker'>> = (state, ctx, args) => {
  const owner = bucketOwner(state, ctx, args.owner, 'delete objects in');
  const marker = keyVersions(state, owner, args.bucket, args.key).find(
    ([, v]) => v.id === args.versionId && v.fid === null,
  );
  if (marker === undefined) {
    reject(`${args.key} in bucket ${args.bucket} of ${owner} has no delete marker ${args.versionId}`);
  }
  state.delete(marker[0]);
  pointKey(state, owner, args.bucket, args.key);
};

/** Turns an object's legal hold on or off (S3 PutObjectLegalHold); only in an object-lock bucket. */
const putLegalHold: Rule<CallArgs<'fileBank.putLegalHold'>> = (state, ctx, args) => {
  const file = existingFile(state, args.fid);
  if (file.owner !== ctx.caller && !authorised(state, file.owner, ctx.caller)) {
    reject(
      `${ctx.caller} may not set the legal hold of ${args.fid}: only its owner or an operator it authorised`,
    );
  }
  const entry = state.get<FileEntry>(filedKey(args.fid));
  if (entry === undefined) reject(`${args.fid} is filed in no bucket: only a bucket with object lock holds`);
  checkLockable(state.get<BucketInfo>(bucketKey(file.owner, entry.bucket))!, entry.bucket, 'a legal hold');
  const { legalHold: _, ...rest } = entry;
  state.put(filedKey(args.fid), (args.on ? { ...rest, legalHold: true } : rest) as FileEntry);
};

const deleteFile: Rule<CallArgs<'fileBank.deleteFile'>> = (state, ctx, args) => {
  const file = existingFile(state, args.fid);
  if (file.owner !== ctx.caller && !authorised(state, file.owner, ctx.caller)) {
    reject(
      `${ctx.caller} may not delete ${args.fid}: only its owner ${file.owner} or an operator it authorised`,
    );
  }
  checkNotRetained(state, ctx, args.fid, args.bypassGovernance === true, 'not deleted');
  removeFile(state, ctx, args.fid, file);
};

/** What a verifier signs once it has tagged every fragment of a column for the miner that holds it. */
export function tagReportMessage(miner: string, fid: string, index: number, columnDigest: string) {
  return new TextEncoder().encode(`ailink/tag-report/v1\n${miner}\n${fid}\n${index}\n${columnDigest}`);
}

/** SHA-256 over a column's fragment hashes: binds a tag report to exactly those fragments. */
export function columnDigest(fragments: readonly string[]): string {
  const h = createHash('sha256');
  for (const f of fragments) h.update(fromHex(f));
  return h.digest('hex');
}

/** A verifier's signature over tags as the value of a call: the verifier must be registered and the signature its own. */
export function checkVerifierSignature(
  state: StateReader,
  verifier: string,
  message: Uint8Array,
  signature: string,
  what: string,
): void {
  if (state.get(verifierKey(verifier)) === undefined) {
    reject(`${verifier} is not a registered verifier (teeWorker.register)`);
  }
  if (!verifySignature(verifier, message, fromHex(signature))) {
    reject(`the ${what} is not signed by verifier ${verifier}`);
  }
}

/**
 * The holder of a column reports that a verifier tagged it (CESS: `calculate_report`); from then on its fragments
 * are in the holder's audit snapshot.
 */
const calculateReport: Rule<CallArgs<'fileBank.calculateReport'>> = (state, ctx, args) => {
  const file = existingFile(state, args.fid);
  checkColumn(file, args.index);
  const holder = file.placements[args.index] ?? null;
  if (holder !== ctx.caller) {
    reject(`column ${args.index} of ${args.fid} is held by ${holder ?? 'nobody'}, not ${ctx.caller}`);
  }
  const digest = columnDigest(columnHashes(file.segments, args.index));
  checkVerifierSignature(
    state,
    args.verifier,
    tagReportMessage(ctx.caller, args.fid, args.index, digest),
    args.signature,
    'tag report',
  );
  state.put(taggedKey(args.fid, args.index), ctx.caller);
  state.delete(untaggedKey(args.fid, args.index));
};

/** The owner (or its operator) or the miner holding the column declares it lost. */
const generateRestoralOrder: Rule<CallArgs<'fileBank.generateRestoralOrder'>> = (state, ctx, args) => {
  const file = existingFile(state, args.fid);
  checkColumn(file, args.index);
  const origin = file.placements[args.index] ?? null;
  if (origin === null)
    reject(`column ${args.index} of ${args.fid} was never reported, so it cannot be restored`);
  const allowed =
    ctx.caller === origin || ctx.caller === file.owner || authorised(state, file.owner, ctx.caller);
  if (!allowed)
    reject(`${ctx.caller} may not order a restoral of ${args.fid}: not its owner, operator or miner`);
  if (state.get(orderKey(args.fid, args.index)) !== undefined) {
    reject(`a restoral order for column ${args.index} of ${args.fid} is already open`);
  }
  state.put(orderKey(args.fid, args.index), {
    origin,
    generatedAt: ctx.block.number,
    by: ctx.caller,
    claimer: null,
    deadline: null,
  } satisfies RestoralOrder);
};

function openOrder(state: StateReader, fid: string, index: number): RestoralOrder {
  const order = state.get<RestoralOrder>(orderKey(fid, index));
  if (order === undefined) reject(`no restoral order is open for column ${index} of ${fid}`);
  return order;
}

/**
 * The miners that may claim the restoral order for column `index` of `fid` at block `now`, best first; undefined when
 * any positive miner may (see `restorers`). Without a ranking, whoever claimed first took the column, so miners
 * colluding with an owner, or racing for the orders of an exiting miner, could take the columns they liked. Ranked,
 * the first `spares` of the file's ranking may claim at once (plus one more for each other order of the file open at
 * the same time, since one miner restores one column of a file); every further `restoralClaimBlocks` since the order
 * opened admits `spares` more, so that orders still get restored when the best-ranked miners are down.
 */
export function restoralClaimers(
  state: StateReader,
  config: ProtocolConfig,
  now: number,
  fid: string,
  index: number,
): string[] | undefined {
  const order = state.get<RestoralOrder>(orderKey(fid, index));
  if (order === undefined || config.placement === undefined) return undefined;
  const windows = Math.max(1, Math.floor((now - order.generatedAt) / config.restoralClaimBlocks));
  let open = 0;
  for (const _ of state.scan(ordersPrefix(fid))) open++;
  return restoralRanking(state, config, now, fid, config.placement.spares * windows + open - 1);
}

/**
 * The first `count` miners of `fid`'s restorer ranking at block `now` (holders of its columns left out); undefined
 * when any positive miner may restore its columns (see `restorers`).
 */
export function restoralRanking(
  state: StateReader,
  config: ProtocolConfig,
  now: number,
  fid: string,
  count: number,
): string[] | undefined {
  const file = getFile(state, fid);
  if (file === undefined) return undefined;
  return restorers(state, config.placement, now, fid, file.placement, {
    holders: file.placements,
    columnBytes: columnBytesOf(file),
    count,
  });
}

const claimRestoralOrder: Rule<CallArgs<'fileBank.claimRestoralOrder'>> = (state, ctx, args) => {
  const file = existingFile(state, args.fid);
  const order = openOrder(state, args.fid, args.index);
  positiveMiner(state, ctx.caller, 'claimer');
  if (ctx.caller === order.origin) reject(`${ctx.caller} lost this column; another miner must restore it`);
  if (file.placements.includes(ctx.caller)) reject(`${ctx.caller} already holds a column of ${args.fid}`);
  if (order.claimer !== null && order.deadline !== null && ctx.block.number <= order.deadline) {
    reject(`the order is claimed by ${order.claimer} until block ${order.deadline}`);
  }
  for (const [key, other] of state.scan(ordersPrefix(args.fid))) {
    const o = other as RestoralOrder;
    if (
      key !== orderKey(args.fid, args.index) &&
      o.claimer === ctx.caller &&
      ctx.block.number <= (o.deadline ?? 0)
    ) {
      reject(
        `${ctx.caller} has claimed another column of ${args.fid}; one miner restores one column of a file`,
      );
    }
  }
  const claimers = restoralClaimers(state, ctx.config, ctx.block.number, args.fid, args.index);
  if (claimers !== undefined && !claimers.includes(ctx.caller)) {
    reject(
      `${ctx.caller} is not among the ${claimers.length} miners ranked to restore ${args.fid} at block ${ctx.block.number} (ranked: ${claimers.join(', ')}); the ranking widens every ${ctx.config.restoralClaimBlocks} blocks the order stays open`,
    );
  }
  state.put(orderKey(args.fid, args.index), {
    ...order,
    claimer: ctx.caller,
    deadline: ctx.block.number + ctx.config.restoralClaimBlocks,
  });
};

const restoralComplete: Rule<CallArgs<'fileBank.restoralComplete'>> = (state, ctx, args) => {
  const file = existingFile(state, args.fid);
  const order = openOrder(state, args.fid, args.index);
  if (order.claimer !== ctx.caller)
    reject(`the order is claimed by ${order.claimer ?? 'nobody'}, not ${ctx.caller}`);
  if (order.deadline !== null && ctx.block.number > order.deadline) {
    reject(`the claim expired at block ${order.deadline}; claim the order again`);
  }
  positiveMiner(state, ctx.caller, 'claimer');
  // Checked again here, not only at claim time: since the claim, the claimer may have completed another order of
  // this file or reported a column of it, and minerFiles keeps one column per miner and file.
  const held = file.placements.indexOf(ctx.caller);
  if (held !== -1)
    reject(`${ctx.caller} already holds column ${held} of ${args.fid}; one miner holds one column of a file`);
  const placements = [...file.placements];
  placements[args.index] = ctx.caller;
  state.put(fileKey(args.fid), { ...file, placements });
  if (order.origin !== null) releaseColumn(state, ctx, order.origin, args.fid, file);
  holdColumn(state, ctx, ctx.caller, args.fid, file, args.index);
  state.delete(orderKey(args.fid, args.index));
  state.delete(taggedKey(args.fid, args.index));
  expectTags(state, ctx, file, args.fid, args.index, ctx.caller);
};

/** Opens an order for every column an exiting miner holds (where none is open yet). */
export function ordersOnExit(state: StateWriter, ctx: BlockContext, miner: string): void {
  for (const [key, index] of state.scan(minerFilesPrefix(miner))) {
    if (typeof index !== 'number') continue;
    openProtocolOrder(state, ctx, key.slice(minerFilesPrefix(miner).length), index, miner);
  }
}

/** An order the protocol opens (`by: null`: any miner may take it at once), unless one is open already. */
export function openProtocolOrder(
  state: StateWriter,
  ctx: BlockContext,
  fid: string,
  index: number,
  origin: string | null,
): void {
  if (state.get(orderKey(fid, index)) !== undefined) return;
  state.put(orderKey(fid, index), {
    origin,
    generatedAt: ctx.block.number,
    by: null,
    claimer: null,
    deadline: null,
  } satisfies RestoralOrder);
}

/**
 * Takes the columns whose tag deadline passed before this block (their records are removed: each counts once), with
 * the holder still recorded for the column; a record whose column has changed hands meanwhile is just dropped.
 */
export function takeOverdueColumns(
  state: StateWriter,
  now: number,
): { fid: string; index: number; miner: string }[] {
  const overdue: { fid: string; index: number; miner: string }[] = [];
  // Only the columns past their deadline are read (an index in the indexer's store), not every column still waiting
  // for its tags: otherwise every block would read all of them, and on a chain whose columns outlive their deadline
  // window (a long one) the fold grows with the square of its length.
  for (const [key, value] of scanBelow(state, UNTAGGED_PREFIX, 'deadline', now)) {
    const column = value as UntaggedColumn;
    state.delete(key);
    const [fid, index] = key.slice(UNTAGGED_PREFIX.length).split('/') as [string, string];
    if (getFile(state, fid)?.placements[Number(index)] !== column.miner) continue;
    overdue.push({ fid, index: Number(index), miner: column.miner });
  }
  return overdue;
}

export const fileBank = {
  uploadDeclaration,
  declareSegments,
  transferReport,
  createBucket,
  deleteBucket,
  deleteFile,
  putRetention,
  putObjectLock,
  putLegalHold,
  putVersioning,
  putDeleteMarker,
  removeDeleteMarker,
  generateRestoralOrder,
  claimRestoralOrder,
  restoralComplete,
  calculateReport,
};
