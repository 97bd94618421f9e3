import {
  bucketsOf,
  type ChainClient,
  entriesOf,
  entryOf,
  fileOf,
  filesOfOwner,
  type Indexer,
  type KeyVersion,
  type ObjectEntry,
  protocolCall,
  type Retention,
  spaceUseOf,
  submitProtocol,
  type VersioningStatus,
  versioningOf,
  versionsOf,
} from '../chain/index.ts';
import type { Account } from '../shared/account.ts';
import { AilinkError, hasCode } from '../shared/errors.ts';

/**
 * An account's buckets and keys as the chain records them (fileBank's buckets and declaration entries): what the
 * gateway lists and resolves. Two gateways of one account read the same namespace. Writes are protocol calls signed
 * by the gateway's account, for itself (`owner` is its own address).
 */
export interface Namespace {
  readonly owner: string;
  buckets(): Promise<{ name: string; created: number }[]>;
  bucket(name: string): Promise<BucketView | undefined>;
  /** Sets (or with null clears) an object-lock bucket's default retention. @throws details.s3 InvalidRequest */
  putObjectLock(name: string, defaultRetention: DefaultRetention | null): Promise<void>;
  /** `objectLock`: its objects may carry a retention (S3 object lock). @throws details.s3 BucketAlreadyOwnedByYou */
  createBucket(name: string, options?: { objectLock?: boolean }): Promise<void>;
  /** @throws AilinkError with details.s3 NoSuchBucket or BucketNotEmpty */
  deleteBucket(name: string): Promise<void>;
  /** The objects filed under keys of `bucket` that begin with `prefix`. */
  objects(bucket: string, prefix: string): Promise<StoredObject[]>;
  object(bucket: string, key: string): Promise<StoredObject | undefined>;
  /**
   * Deletes an object for good (fileBank.deleteFile): miners free its space. Resolves with the block it landed in.
   * `bypassGovernance`: also before the date of a GOVERNANCE retention.
   * @throws details.s3 AccessDenied when a retention forbids it
   */
  deleteObject(fid: string, options?: { bypassGovernance?: boolean }): Promise<{ block: number }>;
  /** Sets or lengthens an object's retention. @throws details.s3 AccessDenied or InvalidRequest when the rules refuse */
  putRetention(fid: string, retention: Retention): Promise<void>;
  /** Turns an object's legal hold on or off. @throws details.s3 InvalidRequest outside an object-lock bucket */
  putLegalHold(fid: string, on: boolean): Promise<void>;
  /** @throws details.s3 InvalidRequest when the rules refuse (an object-lock bucket is never suspended) */
  putVersioning(name: string, status: VersioningStatus): Promise<void>;
  /** The versions of the keys of `bucket` that begin with `prefix`, S3's order (keys bytewise, newest first). */
  versions(bucket: string, prefix: string): Promise<ObjectVersion[]>;
  /** A versioned key's delete: its newest version becomes a delete marker. Resolves with the marker's version id. */
  putDeleteMarker(bucket: string, key: string): Promise<{ versionId: string }>;
  /** @throws details.s3 NoSuchVersion when the key has no such marker */
  removeDeleteMarker(bucket: string, key: string, versionId: string): Promise<void>;
  /** A file as the chain records it (any owner's), with where its owner filed it; undefined when there is none. */
  file(fid: string): Promise<StoredFile | undefined>;
  /** Every file of the owner, filed in a bucket or not, in fid order. */
  files(): Promise<StoredFile[]>;
  /**
   * Bytes of the owner's storage space left (bought minus what its files take): an upload larger than this is refused
   * before it is read. Absent where nothing tells (the chain still refuses the declaration).
   */
  spaceLeft?(): Promise<number>;
}

export interface DefaultRetention {
  readonly mode: 'COMPLIANCE' | 'GOVERNANCE';
  readonly days: number;
}

export interface BucketView {
  readonly created: number;
  readonly objectLock: boolean;
  readonly defaultRetention: DefaultRetention | null;
  /** undefined: versioning was never enabled. */
  readonly versioning: VersioningStatus | undefined;
}

/** One version of a key: an object, or a delete marker (`object` undefined). */
export interface ObjectVersion {
  readonly key: string;
  readonly versionId: string;
  readonly latest: boolean;
  /** When it became the key's newest version (ms). */
  readonly modified: number;
  readonly object: StoredObject | undefined;
}

/** A file on chain, as the DeOSS API shows it. */
export interface StoredFile {
  readonly fid: string;
  readonly owner: string;
  readonly name: string | null;
  readonly size: number;
  readonly state: 'Pending' | 'Active';
  readonly modified: number;
  /** `placements[i]`: the miner holding column i of every segment (null until one reported it). */
  readonly placements: readonly (string | null)[];
  readonly segments: readonly { fragments: readonly string[] }[];
  readonly bucket: string | undefined;
  readonly key: string | undefined;
  /** As filed; undefined when none was recorded. */
  readonly contentType: string | undefined;
}

/** An object as the gateway shows it. */
export interface StoredObject {
  readonly key: string;
  readonly fid: string;
  readonly size: number;
  /** When it was declared (ms). */
  readonly modified: number;
  readonly etag: string;
  readonly contentType: string;
  readonly metadata: Readonly<Record<string, string>>;
  /** Its object lock retention, if it has one (possibly past). */
  readonly retention: Retention | undefined;
  readonly legalHold: boolean;
  /** Its version id in a versioned bucket ("null" for one written unversioned or suspended); undefined otherwise. */
  readonly versionId: string | undefined;
}

export interface NamespaceDeps {
  readonly chain: Pick<ChainClient, 'submit'>;
  readonly indexer: Pick<Indexer, 'state' | 'sync' | 'waitFor' | 'calls'>;
  readonly account: Account;
}

const DEFAULT_CONTENT_TYPE = 'application/octet-stream';

export function createChainNamespace(deps: NamespaceDeps, options: { deadlineMs: number }): Namespace {
  const owner = deps.account.address;
  const submit = (call: ReturnType<typeof protocolCall>) =>
    submitProtocol(deps, deps.account, [call], { deadlineMs: options.deadlineMs });

  function stored(key: string, fid: string, versionId?: string): StoredObject | undefined {
    const file = fileOf(deps.indexer.state, fid);
    if (file === undefined || file.state !== 'Active') return undefined;
    const entry: ObjectEntry | undefined = entryOf(deps.indexer.state, fid);
    return {
      key,
      fid,
      size: file.size,
      modified: file.declaredTime,
      // Objects filed without an MD5 (not through a gateway) show their fid's head: stable, though not an MD5.
      etag: entry?.etag ?? fid.slice(0, 32),
      contentType: entry?.contentType ?? DEFAULT_CONTENT_TYPE,
      metadata: entry?.metadata ?? {},
      retention: entry?.retention,
      legalHold: entry?.legalHold === true,
      versionId,
    };
  }

  const versioned = (bucket: string) => {
    const b = bucketsOf(deps.indexer.state, owner).find((x) => x.name === bucket);
    return b !== undefined && versioningOf(b) !== undefined;
  };
  const keyVersions = (bucket: string, key: string): KeyVersion[] =>
    versionsOf(deps.indexer.state, owner, bucket, key).filter((v) => v.key === key);

  /** Runs a call; a rejection the rules explain becomes the S3 error a client expects. */
  async function s3Call(
    call: ReturnType<typeof protocolCall>,
    s3For: (reason: string) => string | undefined,
  ) {
    try {
      return await submit(call);
    } catch (err) {
      if (!hasCode(err, 'CHAIN_CALL_REJECTED')) throw err;
      const reason = String(err.details?.reason ?? err.message);
      const s3 = s3For(reason);
      if (s3 === undefined) throw err;
      throw new AilinkError('INVALID_INPUT', reason, { cause: err, details: { s3 } });
    }
  }

  function storedFile(fid: string): StoredFile | undefined {
    const file = fileOf(deps.indexer.state, fid);
    if (file === undefined) return undefined;
    const entry = entryOf(deps.indexer.state, fid);
    return {
      fid,
      owner: file.owner,
      name: file.name,
      size: file.size,
      state: file.state,
      modified: file.declaredTime,
      placements: file.placements,
      segments: file.segments,
      bucket: entry?.bucket,
      key: entry?.key,
      contentType: entry?.contentType,
    };
  }

  return {
    owner,
    async buckets() {
      await deps.indexer.sync();
      return bucketsOf(deps.indexer.state, owner).map((b) => ({ name: b.name, created: b.createdTime }));
    },
    async bucket(name) {
      await deps.indexer.sync();
      const b = bucketsOf(deps.indexer.state, owner).find((x) => x.name === name);
      return b === undefined
        ? undefined
        : {
            created: b.createdTime,
            objectLock: b.objectLock === true,
            defaultRetention: b.defaultRetention ?? null,
            versioning: versioningOf(b),
          };
    },
    putObjectLock: async (name, defaultRetention) => {
      await s3Call(
        protocolCall('fileBank.putObjectLock', {
          name,
          defaultRetention: defaultRetention === null ? null : { ...defaultRetention },
        }),
        () => 'InvalidRequest',
      );
    },
    createBucket: async (name, options = {}) => {
      await s3Call(
        protocolCall('fileBank.createBucket', {
          name,
          ...(options.objectLock === true ? { objectLock: true } : {}),
        }),
        (r) => (r.includes('already has a bucket') ? 'BucketAlreadyOwnedByYou' : undefined),
      );
    },
    deleteBucket: async (name) => {
      await s3Call(protocolCall('fileBank.deleteBucket', { name }), (r) =>
        r.includes('is not empty')
          ? 'BucketNotEmpty'
          : r.includes('has no bucket')
            ? 'NoSuchBucket'
            : undefined,
      );
    },
    async objects(bucket, prefix) {
      await deps.indexer.sync();
      return entriesOf(deps.indexer.state, owner, bucket, prefix)
        .map((e) => stored(e.key, e.fid))
        .filter((o): o is StoredObject => o !== undefined);
    },
    async object(bucket, key) {
      await deps.indexer.sync();
      const entry = entriesOf(deps.indexer.state, owner, bucket, key).find((e) => e.key === key);
      if (entry === undefined) return undefined;
      const versionId = versioned(bucket) ? keyVersions(bucket, key)[0]?.id : undefined;
      return stored(key, entry.fid, versionId);
    },
    async versions(bucket, prefix) {
      await deps.indexer.sync();
      return versionsOf(deps.indexer.state, owner, bucket, prefix).flatMap((v): ObjectVersion[] => {
        const object = v.fid === null ? undefined : stored(v.key, v.fid, v.id);
        // A version is recorded when its file becomes Active and goes with it; this only guards a reader's view.
        if (v.fid !== null && object === undefined) return [];
        return [{ key: v.key, versionId: v.id, latest: v.latest, modified: v.time, object }];
      });
    },
    putVersioning: async (name, status) => {
      await s3Call(protocolCall('fileBank.putVersioning', { name, status }), (r) =>
        r.includes('has no bucket') ? 'NoSuchBucket' : 'InvalidRequest',
      );
    },
    async putDeleteMarker(bucket, key) {
      await submit(protocolCall('fileBank.putDeleteMarker', { bucket, key }));
      await deps.indexer.sync();
      const newest = keyVersions(bucket, key)[0];
      return { versionId: newest?.fid === null ? newest.id : 'null' };
    },
    removeDeleteMarker: async (bucket, key, versionId) => {
      await s3Call(protocolCall('fileBank.removeDeleteMarker', { bucket, key, versionId }), (r) =>
        r.includes('has no delete marker') ? 'NoSuchVersion' : undefined,
      );
    },
    putLegalHold: async (fid, on) => {
      await s3Call(protocolCall('fileBank.putLegalHold', { fid, on }), () => 'InvalidRequest');
    },
    async deleteObject(fid, options = {}) {
      const call = protocolCall('fileBank.deleteFile', {
        fid,
        ...(options.bypassGovernance === true ? { bypassGovernance: true } : {}),
      });
      return s3Call(call, (r) =>
        r.includes('is retained') || r.includes('legal hold') ? 'AccessDenied' : undefined,
      );
    },
    putRetention: async (fid, retention) => {
      await s3Call(protocolCall('fileBank.putRetention', { fid, retention }), (r) =>
        r.includes('is retained') || r.includes('nobody turns') ? 'AccessDenied' : 'InvalidRequest',
      );
    },
    async file(fid) {
      await deps.indexer.sync();
      return storedFile(fid);
    },
    async files() {
      await deps.indexer.sync();
      return filesOfOwner(deps.indexer.state, owner)
        .map(storedFile)
        .filter((f): f is StoredFile => f !== undefined);
    },
    async spaceLeft() {
      await deps.indexer.sync();
      return spaceUseOf(deps.indexer.state, owner).left;
    },
  };
}
