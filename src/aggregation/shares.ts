import { createHash } from 'node:crypto';
import { combine, split } from 'shamir-secret-sharing';
import { AggregationError } from './errors.ts';

/**
 * Shamir secret sharing (the audited `shamir-secret-sharing`, GF(2^8)) with an integrity check: the library returns
 * garbage, silently, when given fewer shares than the threshold or a corrupted share. We share `secret ‖ tag` where
 * tag = SHA-256(context ‖ secret)[0..16], and refuse any reconstruction whose tag does not match.
 */
const TAG_BYTES = 16;

function tagOf(secret: Uint8Array, context: string): Uint8Array {
  return new Uint8Array(
    createHash('sha256').update(`ailink/secagg/share/v1/${context}\n`).update(secret).digest(),
  ).subarray(0, TAG_BYTES);
}

/**
 * Splits `secret` into `n` shares, any `t` of which rebuild it.
 * @throws SECAGG_INVALID_PARAMETERS unless 2 ≤ t ≤ n ≤ 255.
 */
export async function splitSecret(
  secret: Uint8Array,
  n: number,
  t: number,
  context: string,
): Promise<Uint8Array[]> {
  if (!Number.isInteger(n) || !Number.isInteger(t) || t < 2 || t > n || n > 255) {
    throw new AggregationError(
      'SECAGG_INVALID_PARAMETERS',
      `expected 2 ≤ t ≤ n ≤ 255, got n = ${n}, t = ${t}`,
    );
  }
  const tagged = new Uint8Array(secret.byteLength + TAG_BYTES);
  tagged.set(secret);
  tagged.set(tagOf(secret, context), secret.byteLength);
  return split(tagged, n, t);
}

/**
 * Rebuilds a secret from shares and checks it.
 * @throws SECAGG_SHARE_INVALID when the shares are too few, inconsistent, duplicated or altered.
 */
export async function combineShares(shares: readonly Uint8Array[], context: string): Promise<Uint8Array> {
  let tagged: Uint8Array;
  try {
    tagged = await combine([...shares]);
  } catch (cause) {
    throw new AggregationError(
      'SECAGG_SHARE_INVALID',
      `shares could not be combined: ${(cause as Error).message}`,
    );
  }
  if (tagged.byteLength < TAG_BYTES) {
    throw new AggregationError(
      'SECAGG_SHARE_INVALID',
      `expected ≥ ${TAG_BYTES} bytes from the shares, got ${tagged.byteLength}`,
    );
  }
  const secret = tagged.subarray(0, tagged.byteLength - TAG_BYTES);
  const tag = tagged.subarray(tagged.byteLength - TAG_BYTES);
  if (Buffer.compare(Buffer.from(tag), Buffer.from(tagOf(secret, context))) !== 0) {
    throw new AggregationError(
      'SECAGG_SHARE_INVALID',
      `the ${shares.length} shares do not rebuild a valid secret: too few (below the threshold), altered, or from another context`,
    );
  }
  return new Uint8Array(secret);
}
