import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { ByteChannel } from '../../p2p/index.ts';
import { AilinkError, type ErrorCode, hasCode, isErrorCode } from '../../shared/errors.ts';
import { RequestAuthSchema } from './request-auth.ts';

/**
 * The miner's fragment protocol over one libp2p stream per request:
 *
 *   client → frame(request JSON)
 *   put:    miner → frame({ok, send})  [client → `size` raw bytes if send]  miner → frame({ok})
 *   get:    miner → frame({ok, size})  miner → `size` raw bytes
 *   has:    miner → frame({ok, size | null})
 *   delete: miner → frame({ok, deleted})
 *   receipt: miner → frame({ok, miner, signature})   the miner's signed receipt for a column it holds (fileBank)
 *   restore: miner → frame({ok, block})              the miner claims / completes a restoral order on chain
 *
 * For receipt and restore, `fragment` is the SHA-256 of the request's own fields (see `bodyDigest`), so the signature
 * over it covers them too.
 * A put is accepted or refused (auth, capacity, size limit, already held) before any body byte moves, so a refusal
 * costs nothing and changes nothing. A fragment of all zeros is never sent: the miner writes the zeros itself.
 */
export const FRAGMENT_PROTOCOL = '/ailink/fragment/1.0.0';

/**
 * Requests and answers are small JSON; larger is refused unparsed. The largest is a receipt or restore request, which
 * lists its column's hash of every segment: 67 bytes each, up to MAX_COLUMN_SEGMENTS (≈ 270 KiB).
 */
export const MAX_FRAME_BYTES = 320 * 1024;
/** The most segments a column lists: as many as an object may have (src/chain MAX_SEGMENTS, 4096). */
export const MAX_COLUMN_SEGMENTS = 4096;

const hash = z.string().regex(/^[0-9a-f]{64}$/, 'expected a 64-char lowercase hex hash');
const deal = z.string().regex(/^[0-9a-f]{32}$/, 'expected a 32-char lowercase hex deal id');
const base = { fragment: hash, audience: z.string().min(1).max(128), auth: RequestAuthSchema.optional() };

export const FragmentRequestSchema = z.discriminatedUnion('op', [
  z
    .object({
      op: z.literal('put'),
      size: z
        .number()
        .int()
        .nonnegative()
        .max(2 ** 31),
      /** The upload this fragment belongs to (see SignedFields.deal); a repair's put names none. */
      deal: deal.optional(),
      ...base,
    })
    .strict(),
  z.object({ op: z.literal('get'), ...base }).strict(),
  z.object({ op: z.literal('has'), ...base }).strict(),
  z.object({ op: z.literal('delete'), ...base }).strict(),
  z
    .object({
      op: z.literal('receipt'),
      fid: hash,
      deal,
      index: z.number().int().min(0).max(255),
      fragments: z.array(hash).min(1).max(MAX_COLUMN_SEGMENTS),
      ...base,
    })
    .strict(),
  z
    .object({
      op: z.literal('restore'),
      stage: z.enum(['claim', 'complete']),
      fid: hash,
      index: z.number().int().min(0).max(255),
      fragments: z.array(hash).max(MAX_COLUMN_SEGMENTS),
      ...base,
    })
    .strict(),
]);
export type FragmentRequest = z.infer<typeof FragmentRequestSchema>;

export const ErrorReplySchema = z.object({
  ok: z.literal(false),
  error: z.object({ code: z.string(), message: z.string() }),
});
export const PutReadySchema = z.object({ ok: z.literal(true), send: z.boolean() });
export const PutDoneSchema = z.object({ ok: z.literal(true), stored: z.literal(true) });
export const GetReplySchema = z.object({ ok: z.literal(true), size: z.number().int().nonnegative() });
export const HasReplySchema = z.object({
  ok: z.literal(true),
  size: z.number().int().nonnegative().nullable(),
});
export const DeleteReplySchema = z.object({ ok: z.literal(true), deleted: z.boolean() });

export const ReceiptReplySchema = z.object({
  ok: z.literal(true),
  miner: z.string(),
  signature: z.string().regex(/^[0-9a-f]{128}$/),
});
export const RestoreReplySchema = z.object({ ok: z.literal(true), block: z.number().int().nonnegative() });

/** The digest a receipt or restore request is signed under: its fields, in a fixed order. */
export function bodyDigest(fields: readonly unknown[]): string {
  return createHash('sha256').update(JSON.stringify(fields)).digest('hex');
}

export const encodeJson = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value));

/** Decodes a frame as JSON. @throws MINER_PROTOCOL naming `what` was expected. */
export function parseJsonFrame(frame: Uint8Array, what: string): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(frame));
  } catch {
    throw new AilinkError('MINER_PROTOCOL', `expected ${what}, got ${frame.byteLength} undecodable bytes`);
  }
}

/** Parses a request frame against `schema`. @throws MINER_PROTOCOL (not JSON), INVALID_INPUT (naming the first problem) */
export function parseRequestFrame<T>(frame: Uint8Array, schema: z.ZodType<T>): T {
  const parsed = schema.safeParse(parseJsonFrame(frame, 'a JSON request frame'));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new AilinkError(
      'INVALID_INPUT',
      `malformed request: ${issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'unknown problem'}`,
    );
  }
  return parsed.data;
}

/** Answers a refused request with its code and message; a peer that stopped listening gets the stream aborted. */
export async function writeErrorReply(channel: ByteChannel, e: AilinkError): Promise<void> {
  try {
    await channel.writeFrame(encodeJson({ ok: false, error: { code: e.code, message: e.message } }), {
      signal: AbortSignal.timeout(2000),
    });
    await channel.closeWrite({ signal: AbortSignal.timeout(2000) });
  } catch {
    channel.abort(e);
  }
}

/** Parses a frame as JSON against `schema`, turning error replies into the remote's AilinkError. */
export function decodeReply<T>(frame: Uint8Array, schema: z.ZodType<T>, from: string): T {
  const json = parseJsonFrame(frame, `a JSON reply from ${from}`);
  const failure = ErrorReplySchema.safeParse(json);
  if (failure.success) {
    const code: ErrorCode = isErrorCode(failure.data.error.code) ? failure.data.error.code : 'MINER_PROTOCOL';
    throw new AilinkError(code, `${from}: ${failure.data.error.message}`, { details: { remote: from } });
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    throw new AilinkError(
      'MINER_PROTOCOL',
      `${from}: unexpected reply ${JSON.stringify(json).slice(0, 200)}`,
    );
  }
  return parsed.data;
}

export interface MinerLog {
  info(event: string, fields?: Record<string, unknown>): void;
  warn(event: string, fields?: Record<string, unknown>): void;
}

export function toAilinkError(err: unknown, signal: AbortSignal): AilinkError {
  if (hasCode(err)) return err;
  if (signal.aborted) return new AilinkError('TIMEOUT', 'the request passed its deadline', { cause: err });
  const name = (err as Error)?.name;
  if (name === 'FrameTooLargeError')
    return new AilinkError('MINER_PROTOCOL', (err as Error).message, { cause: err });
  if (name === 'ChannelClosedError') {
    return new AilinkError('FRAGMENT_SIZE_MISMATCH', `the stream ended early: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return new AilinkError('MINER_PROTOCOL', `request failed: ${(err as Error)?.message ?? String(err)}`, {
    cause: err,
  });
}
