import { z } from 'zod';
import { MAX_TERMS_READERS, type MarketTerms } from '../chain/index.ts';
import { isAddress } from '../shared/account.ts';
import { AilinkError, type ErrorCode } from '../shared/errors.ts';
import { errorXml } from './s3-xml.ts';

/**
 * The marketplace API's pure parts (market.ts is the HTTP shell): what a request's query and body may say, whether a
 * read must be refused before anything is paid or submitted, and errors as JSON or S3's XML.
 */

export const MARKET_PREFIX = '/market';

/** The longest a buy may wait for the seller's key service (a request left unanswered stays open on chain). */
export const MAX_WAIT_MS = 10 * 60_000;
export const DEFAULT_WAIT_MS = 120_000;

const PLANCK_RE = /^(0|[1-9][0-9]{0,38})$/;
const READER_KEY_RE = /^[0-9a-f]{64}$/;

const AddressSchema = z.string().refine(isAddress, 'expected an SS58 address');
const PlanckSchema = z.string().regex(PLANCK_RE, 'expected a whole number of planck as a decimal string');

/** `PUT /market/objects/:fid/terms`: who reads free, and what everyone else pays per request (null: not for sale). */
export const TermsBodySchema = z
  .object({
    readers: z.array(AddressSchema).max(MAX_TERMS_READERS).default([]),
    price: PlanckSchema.nullable(),
  })
  .strict();

/** `POST /market/objects/:fid/shares`: the account to share with, and optionally its X25519 reader key. */
export const ShareBodySchema = z
  .object({
    reader: AddressSchema,
    readerKey: z.string().regex(READER_KEY_RE, 'expected 64 lowercase hex characters').optional(),
  })
  .strict();

/**
 * A JSON body checked against `schema`.
 * @throws INVALID_INPUT naming the first field that is wrong
 */
export function parseJsonBody<T>(text: string, schema: z.ZodType<T>): T {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new AilinkError('INVALID_INPUT', `expected a JSON body, got ${JSON.stringify(text.slice(0, 80))}`);
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new AilinkError('INVALID_INPUT', `${issue?.path.join('.') || 'body'}: ${issue?.message}`);
  }
  return parsed.data;
}

/** What a buy agrees to: at most `maxPrice` planck, waiting at most `waitMs` for the seller's key. */
export interface BuyOptions {
  readonly maxPrice: bigint;
  readonly waitMs: number;
}

/**
 * `?max-price=PLANCK&wait-ms=MS` of a buy (both optional: pays nothing, waits DEFAULT_WAIT_MS).
 * @throws INVALID_INPUT
 */
export function parseBuyQuery(query: readonly (readonly [string, string])[]): BuyOptions {
  const get = (name: string) => query.find(([k]) => k === name)?.[1];
  const maxText = get('max-price');
  if (maxText !== undefined && !PLANCK_RE.test(maxText))
    throw new AilinkError(
      'INVALID_INPUT',
      `max-price: expected a whole number of planck, got ${JSON.stringify(maxText.slice(0, 60))}`,
    );
  const waitText = get('wait-ms');
  const waitMs = waitText === undefined ? DEFAULT_WAIT_MS : Number(waitText);
  if (!/^\d{1,9}$/.test(waitText ?? '0') || waitMs < 1 || waitMs > MAX_WAIT_MS)
    throw new AilinkError(
      'INVALID_INPUT',
      `wait-ms: expected milliseconds from 1 to ${MAX_WAIT_MS}, got ${JSON.stringify(waitText?.slice(0, 60))}`,
    );
  return { maxPrice: maxText === undefined ? 0n : BigInt(maxText), waitMs };
}

/** What the gateway knows, from its index of the chain, about this account and one object. */
export interface ReaderStanding {
  readonly fid: string;
  readonly owner: string;
  /** This account is the owner or an operator it authorised. */
  readonly manages: boolean;
  readonly terms: Pick<MarketTerms, 'readers' | 'price'> | undefined;
  readonly me: string;
  /** The data key is wrapped for this account's reader key in the declaration, or was released to it. */
  readonly holdsKey: boolean;
}

/**
 * Why a read would be refused before anything is submitted or paid — the chain would refuse the request anyway, and
 * a refused request still costs its fee — or undefined when the request may go ahead (the chain decides the rest).
 * The reason travels in `details.reason`: `no-terms`, `not-for-sale` or `price-above-max` (with `price`).
 */
export function refusalBeforePaying(standing: ReaderStanding, maxPrice: bigint): AilinkError | undefined {
  const { fid, owner, terms, me } = standing;
  if (standing.manages || standing.holdsKey || (terms?.readers.includes(me) ?? false)) return undefined;
  const refuse = (reason: string, message: string, price: string | null = null) =>
    new AilinkError('ACCESS_DENIED', message, { details: { fid, owner, reason, price } });
  if (terms === undefined)
    return refuse(
      'no-terms',
      `${fid} has no market terms and its data key was neither wrapped nor released for ${me}: only its owner ${owner} can share it (POST ${MARKET_PREFIX}/objects/${fid}/shares on the owner's gateway)`,
    );
  if (terms.price === null)
    return refuse(
      'not-for-sale',
      `${fid} is not for sale and ${me} is not on its access list; ask its owner ${owner} to share it`,
    );
  if (BigInt(terms.price) > maxPrice)
    return refuse(
      'price-above-max',
      `${fid} costs ${terms.price} planck per request and this buy agreed to at most ${maxPrice}: send ?max-price=${terms.price} to pay it`,
      terms.price,
    );
  return undefined;
}

/** S3's code for the AI-LINK codes the marketplace answers with (the rest as the S3 API maps them). */
export function marketS3Code(code: ErrorCode, named: unknown, fallback: () => string): string {
  if (typeof named === 'string') return named;
  const byCode: Partial<Record<ErrorCode, string>> = {
    ACCESS_DENIED: 'AccessDenied',
    CHAIN_CALL_REJECTED: 'InvalidRequest',
    NOT_FOUND: 'NoSuchKey',
    TIMEOUT: 'RequestTimeout',
    ABORTED: 'RequestTimeout',
  };
  return byCode[code] ?? fallback();
}

/** Whether the client asked for errors in S3's XML (`Accept: application/xml`) rather than JSON. */
export const wantsXml = (accept: string | undefined): boolean =>
  accept !== undefined && /\b(application|text)\/xml\b/.test(accept) && !/\bapplication\/json\b/.test(accept);

/** One error as the marketplace answers it: JSON `{ error, s3, message, details }` or S3's `<Error>` document. */
export function renderMarketError(
  e: {
    code: ErrorCode;
    s3: string;
    message: string;
    details?: Readonly<Record<string, unknown>> | undefined;
  },
  options: { xml: boolean; resource: string; requestId: string },
): { contentType: string; body: string } {
  if (options.xml) {
    return {
      contentType: 'application/xml',
      body: errorXml({
        code: e.s3,
        message: e.message,
        resource: options.resource,
        requestId: options.requestId,
      }),
    };
  }
  // Only plain values of details: a cause or a buffer is not the client's business.
  const details = Object.fromEntries(
    Object.entries(e.details ?? {}).filter(
      ([k, v]) => k !== 's3' && (v === null || ['string', 'number', 'boolean'].includes(typeof v)),
    ),
  );
  return {
    contentType: 'application/json',
    body: JSON.stringify({
      error: e.code,
      s3: e.s3,
      message: e.message,
      ...(Object.keys(details).length === 0 ? {} : { details }),
      requestId: options.requestId,
    }),
  };
}
