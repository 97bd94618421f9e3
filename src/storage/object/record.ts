import { z } from 'zod';
import type { ChainCall, ObjectEntry } from '../../chain/index.ts';
import type { PeerRef } from '../../p2p/index.ts';
import { AilinkError } from '../../shared/errors.ts';
import type { KeyWrap } from './envelope.ts';
import type { StorageProfile } from './profile.ts';

const hash = z.string().regex(/^[0-9a-f]{64}$/);

/**
 * Everything needed to find, verify and read an object, except where its fragments are: the ids (fid, segment and
 * fragment hashes, as CESS computes them), the original size, the geometry and, when encrypted, the data key wrapped
 * for each reader. It carries no secret.
 */
export const ObjectRecordSchema = z
  .object({
    version: z.literal(1),
    fid: hash,
    size: z.number().int().nonnegative(),
    name: z.string().max(255).optional(),
    owner: z.string().min(1),
    createdAt: z.number().int().nonnegative(),
    profile: z.object({
      segmentSize: z.number().int().positive(),
      dataFragments: z.number().int().positive(),
      parityFragments: z.number().int().nonnegative(),
    }),
    segments: z.array(z.object({ hash, fragments: z.array(hash) })).min(1),
    encryption: z
      .object({
        alg: z.literal('aes-256-gcm'),
        wraps: z.array(
          z.object({
            recipient: hash,
            ephemeral: hash,
            sealed: z.string().regex(/^[0-9a-f]{96}$/),
          }),
        ),
        /** The GCM tag of each segment, in order. */
        tags: z.array(z.string().regex(/^[0-9a-f]{32}$/)),
        /** Reader groups: a wrap's recipient that is a group key, and the group object sealing it for each member. */
        groups: z.array(z.object({ recipient: hash, fid: hash })).optional(),
      })
      .nullable(),
  })
  .refine((r) => r.encryption === null || r.encryption.tags.length === r.segments.length, {
    message: 'an encrypted record needs exactly one tag per segment',
    path: ['encryption', 'tags'],
  });
export type ObjectRecord = z.infer<typeof ObjectRecordSchema>;

/** Where an object's columns are: `miners[i]` (a peer id) holds fragment i of every segment (CESS's column placement). */
export interface Placement {
  readonly record: ObjectRecord;
  readonly miners: readonly string[];
  /** What the chain says, when the registry is the chain: the deal state and each column's miner account. */
  readonly chain?: {
    readonly state: 'Pending' | 'Active';
    readonly declaredAt: number;
    readonly activeAt: number | null;
    readonly accounts: readonly (string | null)[];
    readonly restoralOrders: readonly number[];
  };
}

export interface ObjectSummary {
  readonly fid: string;
  readonly size: number;
  readonly name: string | undefined;
  readonly owner: string;
  readonly segments: number;
  readonly encrypted: boolean;
  readonly createdAt: number;
}

/** A column to record: the miner now holding it, and (for the chain) its signed receipt. */
export interface PlacedColumn {
  readonly peer: PeerRef;
  readonly receipt?: { readonly miner: string; readonly signature: string };
}

/**
 * Where objects, their placements and the miners are recorded. The chain (fileBank and sminer, read through an
 * indexer) in a real network; a local SQLite file or memory for unit tests and offline use. One contract for all.
 */
/** What a put needs placed: how many distinct miners, each with room for a column of this many bytes. */
export interface PlacementWant {
  readonly columns: number;
  readonly columnBytes: number;
  /**
   * The upload's deal (the random id its receipts sign): where the rules draw placements, the registry keeps the
   * ticket it drew with under it, for `declare` to name.
   */
  readonly deal: string;
}

/** What a held draw reserves: segments of an object of this profile. */
export interface DrawReserve {
  readonly profile: StorageProfile;
  readonly segments: number;
  /** `segments` is the object's whole size (known before its bytes): space short of it dooms the upload. */
  readonly whole?: boolean;
  /** Segments already placed: space that cannot hold even these dooms the upload, whatever its size turns out to be. */
  readonly stored?: number;
}

/** An upload's declaration made ready by `ObjectRegistry.prepare`, not yet on chain. */
export interface PreparedDeclaration {
  readonly fid: string;
  /** The calls that declare it (empty when the chain has it already). */
  readonly calls: readonly ChainCall[];
  /** Declares it on its own as `declare` does: for a declaration the chain refused among others. */
  declareAlone(): Promise<void>;
}

export interface ObjectRegistry {
  /**
   * The miners that may take columns, in order of preference; every listed miner (reads find peers here too). Given
   * `want`, a registry that knows the miners' free space (the chain's) puts first `want.columns` miners drawn by
   * free space from chain randomness (src/chain/placement.ts), then spares drawn the same way, then the rest.
   */
  directory(want?: PlacementWant): Promise<readonly PeerRef[]>;
  /**
   * Miners no longer in the directory that may still hold columns: on the chain, miners that exited or were forced
   * out, whose columns wait for restoral elsewhere. Reads ask them only after every listed miner (each fragment is
   * checked against its hash, so any holder will do); they never take columns and repairs do not count on them.
   */
  departed?(): Promise<readonly PeerRef[]>;
  /**
   * Called as each segment of a put is stored while more follow. The chain's registry holds the upload's placement
   * draw on chain (`placement.holdTicket`) and renews the hold before it ends, reserving the owner's space for
   * `reserve.segments` (more when a later call asks for more): a long put still declares with the miners it was
   * drawn, and miners keep its fragments of that many segments past their collection grace meanwhile. The put does
   * not wait for it.
   * @throws QUOTA_EXCEEDED (the promise rejects) when the owner's space cannot hold the `whole` object: the put stops
   */
  keepDraw?(deal: string, reserve: DrawReserve): Promise<void>;
  /** Whether `declare` needs the miners' signed receipts (the chain does). */
  readonly needsReceipts: boolean;
  /**
   * How many columns of an object of this profile a put may leave unplaced when no spare miner is left, for the
   * registry to repair later (the chain: restoral orders opened at once). Registries that cannot repair leave it out.
   */
  deferrableColumns?(profile: StorageProfile): number;
  /**
   * Records an object (column i on `columns[i]`; null for a deferred column, at most `deferrableColumns`); resolves
   * once it is readable from the registry. Declaring the same fid again adds nothing.
   * @throws OBJECT_TAKEN when another owner holds the fid (`checkNotTaken`)
   */
  declare(
    record: ObjectRecord,
    deal: string,
    columns: readonly (PlacedColumn | null)[],
    /** Files the object under a key of one of the owner's buckets; only the chain keeps a namespace. */
    entry?: ObjectEntry,
  ): Promise<void>;
  /**
   * `declare` made ready and not submitted, for one extrinsic with other puts' declarations and other calls
   * (`declareTogether`): one block for all of them instead of one each. Only a chain registry batches.
   */
  prepare?(
    record: ObjectRecord,
    deal: string,
    columns: readonly (PlacedColumn | null)[],
    entry?: ObjectEntry,
  ): Promise<PreparedDeclaration>;
  /**
   * Submits prepared declarations and then `alongside` (calls that may name the declared objects, such as an anchor
   * naming a manifest) in one extrinsic (each alone, then `alongside`, when together they exceed one extrinsic's
   * remarks). Each call is judged on its own, as in any extrinsic, so a call of `alongside` may stand while a
   * declaration before it was refused (not an anchor or terms naming that object: their rules need it stored): that
   * declaration is made again on its own the way `declare` makes it (its
   * error, if it fails again, is thrown), and then the refused calls of `alongside` once more. A call of `alongside`
   * refused while every declaration stood is CHAIN_CALL_REJECTED at once.
   * @throws CHAIN_CALL_REJECTED, and what `declare` throws
   */
  declareTogether?(prepared: readonly PreparedDeclaration[], alongside: readonly ChainCall[]): Promise<void>;
  get(fid: string): Promise<Placement | null>;
  /**
   * Moves columns to other miners: `rebuild` puts the rebuilt fragments on the new miners, and the registry records
   * the move (on chain: a restoral order per column, claimed and completed by the new miner).
   * @throws OBJECT_NOT_FOUND
   */
  reassign(fid: string, moves: ReadonlyMap<number, PeerRef>, rebuild: () => Promise<void>): Promise<void>;
  /**
   * The miners (ids as `Placement.miners` names them) that may take `columns` lost columns of `fid` in `reassign`, best
   * first: on the chain, the first of the file's restorer ranking (`restoralRanking`), since the rules refuse a claim
   * from any other miner. Undefined, or a registry without it: any miner holding no column of the object.
   */
  restorers?(fid: string, columns: number): Promise<readonly string[] | undefined>;
  list(): Promise<ObjectSummary[]>;
  /**
   * Access through the marketplace (the chain's `market`): whether `fid` has access terms, and the data key its owner
   * released to `reader` after an accepted request, when released for `reader.readerKey` (else null). Registries
   * without a marketplace leave it out.
   */
  access?(
    fid: string,
    reader: { readonly address: string; readonly readerKey: string },
  ): Promise<{ readonly terms: boolean; readonly grant: KeyWrap | null }>;
  close(): Promise<void>;
}

/**
 * Refuses to record `record` over another object of the same fid: another owner's, or another of the same owner's. An
 * unencrypted object's fid is the hash of its bytes, so two owners storing the same bytes meet here; taking the other's
 * record as one's own (as the chain registry once did) left the uploader believing it stored an object that its real
 * owner may delete at any time.
 * @returns whether the fid is new to the registry (false: the same owner declared this same object already)
 * @throws OBJECT_TAKEN
 */
export function checkNotTaken(
  existing: Pick<ObjectRecord, 'owner' | 'size' | 'encryption'> | undefined,
  record: ObjectRecord,
): boolean {
  if (existing === undefined) return true;
  // The same stored bytes of the same size, plain both times or sealed with the same tags (the same key), are the same
  // object. Anything else under one fid is another object stored alike: plain bytes are stored zero-padded, so an
  // object and the same bytes followed by zeros are stored the same. Giving the new one the old one's fid would have a
  // read of it return the old one.
  const tags = (r: Pick<ObjectRecord, 'encryption'>) => r.encryption?.tags.join() ?? null;
  const same = existing.size === record.size && tags(existing) === tags(record);
  if (existing.owner === record.owner && same) return false;
  if (existing.owner === record.owner) {
    throw new AilinkError(
      'OBJECT_TAKEN',
      `object ${record.fid} is already stored by you as another object (${existing.size} bytes${existing.encryption === null ? '' : ', encrypted'}), whose stored bytes equal this one's (${record.size} bytes; plain bytes are stored zero-padded, so the two differ at most by zeros at the end): store it encrypted (the default) to store it apart`,
      { details: { fid: record.fid, owner: existing.owner } },
    );
  }
  throw new AilinkError(
    'OBJECT_TAKEN',
    `object ${record.fid} is already stored by ${existing.owner}, not by ${record.owner}: the same bytes stored unencrypted have the same fid, and only its owner keeps or deletes it. Store your copy encrypted (the default) to own one`,
    { details: { fid: record.fid, owner: existing.owner } },
  );
}

export const summaryOf = (record: ObjectRecord): ObjectSummary => ({
  fid: record.fid,
  size: record.size,
  name: record.name,
  owner: record.owner,
  segments: record.segments.length,
  encrypted: record.encryption !== null,
  createdAt: record.createdAt,
});

export const profileOf = (record: ObjectRecord): StorageProfile => record.profile;
