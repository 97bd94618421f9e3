import { z } from 'zod';
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
      })
      .nullable(),
  })
  .refine((r) => r.encryption === null || r.encryption.tags.length === r.segments.length, {
    message: 'an encrypted record needs exactly one tag per segment',
    path: ['encryption', 'tags'],
  });
export type ObjectRecord = z.infer<typeof ObjectRecordSchema>;

/** Where an object's columns are: `miners[i]` holds fragment i of every segment (CESS's column placement). */
export interface Placement {
  readonly record: ObjectRecord;
  readonly miners: readonly string[];
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

/**
 * Where objects and their placements are recorded. Backed by a local SQLite file until the chain's file registry
 * (fileBank) takes over; both implement this one contract.
 */
export interface ObjectRegistry {
  /** Records a fully placed object; declaring the same fid again adds nothing. */
  declare(record: ObjectRecord, miners: readonly string[]): void;
  get(fid: string): Placement | null;
  /** Moves one column to another miner (after repair). @throws OBJECT_NOT_FOUND */
  reassign(fid: string, column: number, miner: string): void;
  list(): ObjectSummary[];
  close(): void;
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
