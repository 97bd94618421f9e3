import { type Challenge, challengeKey } from './pallets/audit.ts';
import {
  type BucketInfo,
  bucketsPrefix,
  type EntryInfo,
  entriesPrefix,
  type FileEntry,
  type FileInfo,
  filedKey,
  fileKey,
  minerFilesPrefix,
  ordersPrefix,
  ownerFilesPrefix,
  type RestoralOrder,
  taggedKey,
  type VersionInfo,
  versionsPrefix,
} from './pallets/file-bank.ts';
import {
  type Grant,
  grantKey,
  grantsPrefix,
  type MarketTerms,
  OPEN_REQUESTS_PREFIX,
  type OpenRequest,
  openRequestsPrefix,
  type Retrieval,
  retrievalsPrefix,
  termsKey,
} from './pallets/market.ts';
import { authorised } from './pallets/oss.ts';
import {
  type ParticipantInfo,
  participantsPrefix,
  type RoundInfo,
  roundsPrefix,
  type SeedInfo,
  seedKey,
  type TaskInfo,
  taskKey,
} from './pallets/provenance.ts';
import { type MinerInfo, minerKey } from './pallets/sminer.ts';
import type { VerifierInfo } from './pallets/tee-worker.ts';
import type { StateReader } from './state.ts';

/** Read-only views of the protocol state, for anyone holding one (an indexer's, or a test's). */

export type FileView = FileInfo & {
  readonly fid: string;
  /** Open restoral orders by column. */
  readonly orders: Record<number, RestoralOrder>;
};

export function fileOf(state: StateReader, fid: string): FileView | undefined {
  const file = state.get<FileInfo>(fileKey(fid));
  if (file === undefined) return undefined;
  const orders: Record<number, RestoralOrder> = {};
  for (const [key, order] of state.scan(ordersPrefix(fid))) {
    orders[Number(key.slice(ordersPrefix(fid).length))] = order as RestoralOrder;
  }
  return { ...file, fid, orders };
}

export interface MinerView extends MinerInfo {
  readonly address: string;
}

export function minerOf(state: StateReader, address: string): MinerView | undefined {
  const miner = state.get<MinerInfo>(minerKey(address));
  return miner === undefined ? undefined : { ...miner, address };
}

/** Every registered miner, in address order. */
export function minersOf(state: StateReader): MinerView[] {
  return state
    .scan('sminer/miners/')
    .map(([key, m]) => ({ ...(m as MinerInfo), address: key.slice('sminer/miners/'.length) }));
}

/** The columns a miner holds: fid and column index. */
export function filesOfMiner(state: StateReader, address: string): { fid: string; index: number }[] {
  const prefix = minerFilesPrefix(address);
  return state
    .scan(prefix)
    .map(([key, index]) => ({ fid: key.slice(prefix.length), index: index as number }));
}

export function filesOfOwner(state: StateReader, owner: string): string[] {
  const prefix = ownerFilesPrefix(owner);
  return state.scan(prefix).map(([key]) => key.slice(prefix.length));
}

/** An owner's buckets, by name. */
export function bucketsOf(state: StateReader, owner: string): (BucketInfo & { name: string })[] {
  const prefix = bucketsPrefix(owner);
  return state.scan(prefix).map(([key, b]) => ({ ...(b as BucketInfo), name: key.slice(prefix.length) }));
}

/** The keys filed in a bucket that begin with `prefix`, in UTF-8 byte order (S3's), with the object each names. */
export function entriesOf(
  state: StateReader,
  owner: string,
  bucket: string,
  prefix = '',
): (EntryInfo & { key: string })[] {
  const base = entriesPrefix(owner, bucket);
  return state.scan(base + prefix).map(([key, e]) => ({ ...(e as EntryInfo), key: key.slice(base.length) }));
}

/** One version of a key, as S3's ListObjectVersions shows it: an object (fid) or a delete marker (fid null). */
export interface KeyVersion extends VersionInfo {
  readonly key: string;
  /** The key's newest version. */
  readonly latest: boolean;
}

/**
 * The versions of the keys of a bucket that begin with `prefix`: keys in UTF-8 byte order, each key's versions newest
 * first (S3's order). A key that named an object before versioning and was not written since has no record: its
 * object is listed as its "null" version.
 */
export function versionsOf(state: StateReader, owner: string, bucket: string, prefix = ''): KeyVersion[] {
  const base = versionsPrefix(owner, bucket);
  const byKey = new Map<string, VersionInfo[]>();
  for (const [stateKey, value] of state.scan(base + prefix)) {
    const rest = stateKey.slice(base.length);
    const key = rest.slice(0, rest.lastIndexOf('\u0000'));
    byKey.set(key, [value as VersionInfo, ...(byKey.get(key) ?? [])]);
  }
  for (const entry of entriesOf(state, owner, bucket, prefix)) {
    if (byKey.has(entry.key)) continue;
    const file = state.get<FileInfo>(fileKey(entry.fid));
    if (file !== undefined)
      byKey.set(entry.key, [{ id: 'null', fid: entry.fid, at: entry.at, time: file.declaredTime }]);
  }
  return [...byKey.keys()]
    .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
    .flatMap((key) => byKey.get(key)!.map((v, i) => ({ ...v, key, latest: i === 0 })));
}

/** Where a file is filed and its content metadata, when it is filed in a bucket. */
export const entryOf = (state: StateReader, fid: string): FileEntry | undefined =>
  state.get<FileEntry>(filedKey(fid));

export function taskOf(state: StateReader, task: string): TaskInfo | undefined {
  return state.get<TaskInfo>(taskKey(task));
}

/** Every task the chain records, by id (in id order). */
export function tasksOf(state: StateReader): (TaskInfo & { id: string })[] {
  const prefix = taskKey('');
  return state.scan(prefix).map(([key, t]) => ({ ...(t as TaskInfo), id: key.slice(prefix.length) }));
}

export function roundsOf(state: StateReader, task: string): (RoundInfo & { round: number })[] {
  const prefix = roundsPrefix(task);
  return state
    .scan(prefix)
    .map(([key, r]) => ({ ...(r as RoundInfo), round: Number(key.slice(prefix.length)) }));
}

/** The graph seed drawn for one attempt of a round, if its coordinator drew one. */
export const seedOf = (
  state: StateReader,
  task: string,
  round: number,
  attempt: number,
): SeedInfo | undefined => state.get<SeedInfo>(seedKey(task, round, attempt));

/** The participants admitted to a task, by account. */
export function participantsOf(state: StateReader, task: string): (ParticipantInfo & { account: string })[] {
  const prefix = participantsPrefix(task);
  return state
    .scan(prefix)
    .map(([key, p]) => ({ ...(p as ParticipantInfo), account: key.slice(prefix.length) }));
}

/** Every open restoral order, by file and column. */
export function restoralOrdersOf(state: StateReader): { fid: string; index: number; order: RestoralOrder }[] {
  return state.scan('fileBank/orders/').map(([key, order]) => {
    const [fid, index] = key.slice('fileBank/orders/'.length).split('/') as [string, string];
    return { fid, index: Number(index), order: order as RestoralOrder };
  });
}

/** The miner a verifier tagged column `index` of `fid` for (CESS: `calculate_report`), if any. */
export const taggedFor = (state: StateReader, fid: string, index: number): string | undefined =>
  state.get<string>(taggedKey(fid, index));

export interface VerifierView extends VerifierInfo {
  readonly address: string;
}

/** Every registered verifier (teeWorker), in address order. */
export function verifiersOf(state: StateReader): VerifierView[] {
  return state
    .scan('teeWorker/workers/')
    .map(([key, v]) => ({ ...(v as VerifierInfo), address: key.slice('teeWorker/workers/'.length) }));
}

/** A miner's open challenge, if it has one. */
export const challengeOf = (state: StateReader, miner: string): Challenge | undefined =>
  state.get<Challenge>(challengeKey(miner));

/** The access terms of an object, if its owner set any (market.setTerms). */
export const termsOf = (state: StateReader, fid: string): MarketTerms | undefined =>
  state.get<MarketTerms>(termsKey(fid));

/** Every accepted request for an object, oldest first: its access log. */
export function retrievalsOf(state: StateReader, fid: string): (Retrieval & { seq: number })[] {
  const prefix = retrievalsPrefix(fid);
  return state
    .scan(prefix)
    .map(([key, r]) => ({ ...(r as Retrieval), seq: Number(key.slice(prefix.length)) }));
}

/** The data key of `fid` as released to `reader` (market.grant), if it was. */
export const grantOf = (state: StateReader, fid: string, reader: string): Grant | undefined =>
  state.get<Grant>(grantKey(fid, reader));

/** Every reader holding a grant of `fid`, by account. */
export function grantsOf(state: StateReader, fid: string): (Grant & { reader: string })[] {
  const prefix = grantsPrefix(fid);
  return state.scan(prefix).map(([key, g]) => ({ ...(g as Grant), reader: key.slice(prefix.length) }));
}

export interface OpenRequestView extends OpenRequest {
  readonly fid: string;
  readonly reader: string;
}

/** Accepted requests still waiting for the data key: of one object, or of all (for a key service). */
export function openRequestsOf(state: StateReader, fid?: string): OpenRequestView[] {
  return state.scan(fid === undefined ? OPEN_REQUESTS_PREFIX : openRequestsPrefix(fid)).map(([key, r]) => {
    const [f, reader] = key.slice(OPEN_REQUESTS_PREFIX.length).split('/') as [string, string];
    return { ...(r as OpenRequest), fid: f, reader };
  });
}

/** True when `owner` authorised `operator` to act for it (oss.authorize): declare, delete, and run its market. */
export const isOperatorOf = (state: StateReader, owner: string, operator: string): boolean =>
  authorised(state, owner, operator);
