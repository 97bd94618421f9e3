import { createHash } from 'node:crypto';
import type { Account } from '../shared/account.ts';
import type { Clock, Random } from '../shared/clock.ts';
import { AilinkError, hasCode } from '../shared/errors.ts';
import {
  createRequestGuard,
  type NonceLedger,
  type RequestAuth,
  RequestAuthSchema,
  type SignedFields,
  signRequest,
} from '../storage/protocol/index.ts';

/**
 * The coordinator's HTTP writes that it pays for — creating a task, which it records on chain with its own account —
 * are its owner's alone: whoever runs the coordinator holds its key. Such a request is signed the way every request to
 * a miner is (src/storage/protocol/request-auth.ts), not with a scheme of its own: by one account, for one coordinator (the
 * audience: its libp2p peer id, so it cannot be replayed to another coordinator), once (a random nonce the coordinator
 * keeps in its SQLite until expiry, so a restart does not reopen replays) and for a short time. What a fragment
 * request's signature binds as the fragment's hash and size is here the SHA-256 and byte length of the exact body, so
 * not one byte of it can change.
 *
 * The signature travels in headers, leaving the body the plain JSON every other route takes.
 */
export const SIGNATURE_HEADERS = {
  account: 'x-ailink-account',
  audience: 'x-ailink-audience',
  nonce: 'x-ailink-nonce',
  expiresAt: 'x-ailink-expires-at',
  signature: 'x-ailink-signature',
} as const;

/** The operation `POST /v1/tasks` is signed for (other operations' signatures do not verify for it). */
export const CREATE_TASK_OP = 'task.create';

/**
 * Latest accepted expiry, from the coordinator's now. The signature is checked on arrival, so this bounds only how
 * long a captured request stays worth replaying elsewhere and how long its nonce is kept, with room for clock skew.
 */
export const MAX_SIGNATURE_TTL_MS = 10 * 60_000;

/** How long a signature made by `signCoordinatorRequest`'s callers lives: sent at once, well inside the bound. */
export const SIGNATURE_TTL_MS = 2 * 60_000;

function fieldsOf(op: string, body: Uint8Array, audience: string): SignedFields {
  return { op, fragment: createHash('sha256').update(body).digest('hex'), size: body.length, audience };
}

/** The headers that sign `body` as `account` for `op` on the coordinator whose peer id is `audience`. */
export function signCoordinatorRequest(
  account: Account,
  request: { readonly op: string; readonly body: Uint8Array; readonly audience: string },
  deps: { clock: Clock; random: Random },
  ttlMs = SIGNATURE_TTL_MS,
): Record<string, string> {
  const auth = signRequest(account, fieldsOf(request.op, request.body, request.audience), deps, ttlMs);
  return {
    [SIGNATURE_HEADERS.account]: auth.account,
    [SIGNATURE_HEADERS.audience]: request.audience,
    [SIGNATURE_HEADERS.nonce]: auth.nonce,
    [SIGNATURE_HEADERS.expiresAt]: String(auth.expiresAt),
    [SIGNATURE_HEADERS.signature]: auth.signature,
  };
}

type Headers = Readonly<Record<string, string | string[] | undefined>>;

/**
 * The signature a request's headers carry, or undefined when they carry none.
 * @throws AUTH_MISSING when only some of the headers are there; INVALID_INPUT naming a malformed one
 */
function signatureOf(headers: Headers): { auth: RequestAuth; audience: string } | undefined {
  const value = (name: string) => {
    const v = headers[name];
    return Array.isArray(v) ? v.join(',') : v;
  };
  const names = Object.values(SIGNATURE_HEADERS);
  const missing = names.filter((name) => value(name) === undefined);
  if (missing.length === names.length) return undefined;
  if (missing.length > 0)
    throw new AilinkError(
      'AUTH_MISSING',
      `expected the signature headers ${names.join(', ')}; missing ${missing.join(', ')}`,
    );
  const expiresAt = value(SIGNATURE_HEADERS.expiresAt)!;
  if (!/^\d{1,15}$/.test(expiresAt))
    throw new AilinkError(
      'INVALID_INPUT',
      `${SIGNATURE_HEADERS.expiresAt}: expected ms since the epoch, got ${JSON.stringify(expiresAt.slice(0, 40))}`,
    );
  const parsed = RequestAuthSchema.safeParse({
    account: value(SIGNATURE_HEADERS.account),
    nonce: value(SIGNATURE_HEADERS.nonce),
    expiresAt: Number(expiresAt),
    signature: value(SIGNATURE_HEADERS.signature),
  });
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const header = SIGNATURE_HEADERS[issue.path[0] as keyof typeof SIGNATURE_HEADERS];
    throw new AilinkError('INVALID_INPUT', `${header}: ${issue.message}`);
  }
  return { auth: parsed.data, audience: value(SIGNATURE_HEADERS.audience)! };
}

/**
 * Checks that a request to this coordinator is signed by its own account for `op` over exactly `body`: signature,
 * freshness, audience, signer and uniqueness, in the order of `createRequestGuard`, so that unsigned or foreign
 * requests never reach the nonce ledger. Returns the signer.
 * @throws AUTH_MISSING, AUTH_EXPIRED, AUTH_EXPIRY_TOO_FAR, AUTH_WRONG_AUDIENCE, AUTH_BAD_SIGNATURE,
 *   AUTH_NOT_AUTHORISED, AUTH_REPLAYED; INVALID_INPUT for malformed headers
 */
export function createOwnerGuard(
  deps: { clock: Clock; nonces: NonceLedger },
  options: {
    /** This coordinator's peer id and chain account; read per request (the host may start after the app). */
    identity(): { peerId: string; account: string };
  },
) {
  return async (op: string, body: Uint8Array, headers: Headers): Promise<string> => {
    const { peerId, account } = options.identity();
    const check = createRequestGuard(deps, {
      audience: peerId,
      authorised: { has: (signer) => signer === account },
      maxTtlMs: MAX_SIGNATURE_TTL_MS,
    });
    const signed = signatureOf(headers);
    if (signed === undefined)
      throw new AilinkError(
        'AUTH_MISSING',
        `expected ${op} signed by this coordinator's account ${account} in the headers ${Object.values(SIGNATURE_HEADERS).join(', ')}; got none`,
      );
    try {
      return check(fieldsOf(op, body, signed.audience), signed.auth);
    } catch (err) {
      if (!hasCode(err, 'AUTH_NOT_AUTHORISED')) throw err;
      throw new AilinkError(
        'AUTH_NOT_AUTHORISED',
        `${signed.auth.account} may not ${op} here: only this coordinator's own account ${account} may`,
      );
    }
  };
}
