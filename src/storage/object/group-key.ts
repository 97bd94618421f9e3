import { z } from 'zod';
import { fromHex, toHex } from '../../shared/bytes.ts';
import { AilinkError } from '../../shared/errors.ts';
import { generateX25519, x25519PublicOf } from '../../shared/x25519.ts';
import { type KeyWrap, unwrapDataKey, type WrapBinding, wrapDataKey } from './envelope.ts';

/**
 * Reader groups: one X25519 key that many readers share, so an object read by a thousand readers carries one wrap in
 * its declaration instead of a thousand (a declaration holds at most 64).
 *
 * The group's private key is sealed once for each member's reader key, with the same wrap as a data key, and the
 * sealed list is stored as a plain object of its own (the group object). An object read through the group wraps its
 * data key for the group's public key and names the group object's fid beside that wrap (`encryption.groups`). A
 * member's client fetches the group object, opens its own wrap, and unwraps the data key with the group key.
 *
 * A group is a fixed set of members: whoever should stop (or start) reading gets a new group, with a fresh key,
 * for the objects stored from then on — what was readable stays readable to those it was sealed for, as with
 * per-reader wraps. The client reuses a group for every put with the same member set.
 *
 * Each member wrap is bound (its AAD) to the group's public key and the owner, so a wrap moved from one group
 * object into another, or claimed by another owner, does not open.
 */

export const READER_GROUP_FORMAT = 'ailink/reader-group/v1';

/** The most members one group object holds (≈ 240 bytes of JSON each: ≈ 24 MiB at the limit). */
export const MAX_GROUP_MEMBERS = 100_000;

const hex64 = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex characters');

const GroupObjectSchema = z
  .object({
    format: z.literal(READER_GROUP_FORMAT),
    owner: z.string().min(1).max(64),
    publicKey: hex64,
    members: z
      .array(
        z
          .object({
            recipient: hex64,
            ephemeral: hex64,
            sealed: z.string().regex(/^[0-9a-f]{96}$/, 'expected 96 lowercase hex characters'),
          })
          .strict(),
      )
      .min(1)
      .max(MAX_GROUP_MEMBERS),
  })
  .strict();
export type GroupObject = z.infer<typeof GroupObjectSchema>;

/** What a wrap of the group key is bound to: never a fid (64 hex), so it cannot be confused with a data key's. */
const groupBinding = (publicKey: string, owner: string): WrapBinding => ({
  fid: `reader-group/${publicKey}`,
  owner,
});

/** A new group for `members` (X25519 public keys, hex) of `owner`: its public key and the group object's bytes. */
export function sealReaderGroup(
  members: readonly string[],
  owner: string,
): { publicKey: string; bytes: Uint8Array } {
  const unique = [...new Set(members)].sort();
  if (unique.length === 0 || unique.length > MAX_GROUP_MEMBERS) {
    throw new AilinkError(
      'INVALID_INPUT',
      `reader group: expected 1–${MAX_GROUP_MEMBERS} members, got ${unique.length}`,
    );
  }
  const key = generateX25519();
  const publicKey = toHex(key.publicKey);
  const binding = groupBinding(publicKey, owner);
  const group: GroupObject = {
    format: READER_GROUP_FORMAT,
    owner,
    publicKey,
    members: unique.map((m) => wrapDataKey(key.privateKey, fromHex(m, 'member reader key'), binding)),
  };
  return { publicKey, bytes: new TextEncoder().encode(JSON.stringify(group)) };
}

/**
 * Opens the group object `bytes` with a member's private reader key and returns the group's private key.
 * `expected` is what the object's declaration says: the group's public key and the object's owner.
 * @throws CRYPTO_DECRYPT_FAILED (not a group object, another group or owner, an altered wrap);
 *   CRYPTO_NOT_A_READER (the reader is not a member)
 */
export function openReaderGroup(
  bytes: Uint8Array,
  expected: { publicKey: string; owner: string },
  readerPrivateKey: Uint8Array,
): Uint8Array {
  let group: GroupObject;
  try {
    group = GroupObjectSchema.parse(JSON.parse(new TextDecoder().decode(bytes)));
  } catch (cause) {
    throw new AilinkError(
      'CRYPTO_DECRYPT_FAILED',
      `expected a reader group object (${READER_GROUP_FORMAT}) for group key ${expected.publicKey.slice(0, 16)}…, got bytes that are not one`,
      { cause },
    );
  }
  if (group.publicKey !== expected.publicKey || group.owner !== expected.owner) {
    throw new AilinkError(
      'CRYPTO_DECRYPT_FAILED',
      `expected the reader group ${expected.publicKey.slice(0, 16)}… of ${expected.owner}, got the group ${group.publicKey.slice(0, 16)}… of ${group.owner}`,
    );
  }
  const privateKey = unwrapDataKey(
    group.members as KeyWrap[],
    readerPrivateKey,
    groupBinding(group.publicKey, group.owner),
  );
  // A member wrap could seal any 32 bytes; only the key whose public half the declaration names is the group's.
  if (toHex(x25519PublicOf(privateKey)) !== group.publicKey) {
    throw new AilinkError(
      'CRYPTO_DECRYPT_FAILED',
      `the key sealed for this reader in group ${group.publicKey.slice(0, 16)}… is not that group's key`,
    );
  }
  return privateKey;
}
