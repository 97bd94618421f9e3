import { AilinkError } from '../shared/errors.ts';
import { CALL_SCHEMAS, type CallArgs, type CallName, isCallName, type ProtocolCall } from './calls.ts';

/**
 * The remark codec. A protocol remark is
 *
 *   "AILK" (4 bytes) · version (1 byte, now 1) · UTF-8 JSON {"call":"<pallet>.<call>","args":{…}}
 *
 * Remarks without the magic belong to someone else and are ignored silently. Ours with an unknown version, too big,
 * or malformed are recorded as rejected with the reason, so that a reader sees why a call had no effect. JSON keeps a
 * remark readable in any block explorer; the size limit keeps one remark well inside a block.
 */

export const REMARK_MAGIC = new Uint8Array([0x41, 0x49, 0x4c, 0x4b]); // "AILK"
export const REMARK_VERSION = 1;
/** About 140 segments of a declaration (≈ 930 bytes each); a larger one spans several remarks (declare.ts). */
export const MAX_REMARK_BYTES = 128 * 1024;

export type DecodedRemark =
  | { readonly kind: 'foreign' }
  | { readonly kind: 'call'; readonly call: ProtocolCall }
  | { readonly kind: 'invalid'; readonly call: string | null; readonly reason: string };

/** Encodes a call. @throws INVALID_INPUT when the arguments break the call's schema or the remark would be too big. */
export function encodeRemark<N extends CallName>(name: N, args: CallArgs<N>): Uint8Array {
  const parsed = CALL_SCHEMAS[name].safeParse(args);
  if (!parsed.success) {
    throw new AilinkError('INVALID_INPUT', `${name}: ${describeIssue(parsed.error.issues[0])}`);
  }
  const body = new TextEncoder().encode(JSON.stringify({ call: name, args: parsed.data }));
  const out = new Uint8Array(REMARK_MAGIC.length + 1 + body.byteLength);
  out.set(REMARK_MAGIC, 0);
  out[REMARK_MAGIC.length] = REMARK_VERSION;
  out.set(body, REMARK_MAGIC.length + 1);
  if (out.byteLength > MAX_REMARK_BYTES) {
    throw new AilinkError(
      'INVALID_INPUT',
      `${name}: the remark would be ${out.byteLength} bytes, the limit is ${MAX_REMARK_BYTES}`,
    );
  }
  return out;
}

export function decodeRemark(payload: Uint8Array): DecodedRemark {
  if (payload.byteLength < REMARK_MAGIC.length || !REMARK_MAGIC.every((b, i) => payload[i] === b)) {
    return { kind: 'foreign' };
  }
  const invalid = (reason: string, call: string | null = null): DecodedRemark => ({
    kind: 'invalid',
    call,
    reason,
  });
  if (payload.byteLength > MAX_REMARK_BYTES) {
    return invalid(`oversized: ${payload.byteLength} bytes, the limit is ${MAX_REMARK_BYTES}`);
  }
  const version = payload[REMARK_MAGIC.length];
  if (version !== REMARK_VERSION) {
    return invalid(`unknown version ${version ?? '(missing)'}: this indexer reads version ${REMARK_VERSION}`);
  }
  let body: unknown;
  try {
    body = JSON.parse(
      new TextDecoder('utf-8', { fatal: true }).decode(payload.subarray(REMARK_MAGIC.length + 1)),
    );
  } catch (err) {
    return invalid(`malformed: not UTF-8 JSON (${(err as Error).message})`);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return invalid('malformed: expected a JSON object {"call", "args"}');
  }
  const { call, args, ...rest } = body as Record<string, unknown>;
  if (typeof call !== 'string')
    return invalid('malformed: "call" must be a string like "fileBank.deleteFile"');
  if (Object.keys(rest).length > 0)
    return invalid(`malformed: unexpected fields ${Object.keys(rest).join(', ')}`, call);
  if (!isCallName(call))
    return invalid(`unknown call ${JSON.stringify(call.slice(0, 64))}`, call.slice(0, 64));
  const parsed = CALL_SCHEMAS[call].safeParse(args);
  if (!parsed.success) return invalid(`malformed arguments: ${describeIssue(parsed.error.issues[0])}`, call);
  return { kind: 'call', call: { name: call, args: parsed.data } as ProtocolCall };
}

function describeIssue(issue: { path: PropertyKey[]; message: string } | undefined): string {
  if (issue === undefined) return 'invalid';
  const path = issue.path.map(String).join('.');
  return path === '' ? issue.message : `${path}: ${issue.message}`;
}
