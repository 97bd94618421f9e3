import { createHash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { AilinkError } from '../shared/errors.ts';
import { s3Error } from './s3-http.ts';
import { chunkSignatureOfHash, type SigV4Auth, STREAMING_PAYLOAD, UNSIGNED_PAYLOAD } from './sigv4.ts';

/**
 * An upload's body as S3 clients send it — plain (its SHA-256 signed, or UNSIGNED-PAYLOAD), or `aws-chunked` with
 * each chunk signed (STREAMING-AWS4-HMAC-SHA256-PAYLOAD) or unsigned with a trailing checksum
 * (STREAMING-UNSIGNED-PAYLOAD-TRAILER, what recent AWS SDKs send) — decoded and checked while it streams. Every check
 * that can only be made at the end (the SHA-256, Content-MD5, the length, a trailing CRC32) fails the stream before its
 * end, so a consumer that declares only after the last byte (the storage client) declares nothing for a bad body.
 */

export const STREAMING_UNSIGNED_TRAILER = 'STREAMING-UNSIGNED-PAYLOAD-TRAILER';
/** The longest chunk header or trailer line accepted. */
const MAX_LINE = 4096;

export interface BodyRules {
  readonly auth: Pick<SigV4Auth, 'payloadHash' | 'signature' | 'amzDate' | 'scope' | 'signingKey'>;
  /** Content-MD5 (base64), when the client sent one. */
  readonly contentMd5?: string;
  /** The body's length once decoded: Content-Length, or x-amz-decoded-content-length for aws-chunked. */
  readonly length?: number;
  /** The most a body may hold. */
  readonly maxBytes: number;
}

export interface CheckedBody {
  readonly bytes: AsyncIterable<Uint8Array>;
  /** The decoded body's MD5 (hex); only once `bytes` has ended. */
  md5(): string;
}

export function checkBody(raw: AsyncIterable<Uint8Array>, rules: BodyRules): CheckedBody {
  const mode = rules.auth.payloadHash;
  if (mode !== UNSIGNED_PAYLOAD && mode !== STREAMING_PAYLOAD && mode !== STREAMING_UNSIGNED_TRAILER) {
    if (!/^[0-9a-f]{64}$/.test(mode)) {
      throw s3Error(
        'InvalidArgument',
        `x-amz-content-sha256: expected a hex SHA-256, ${UNSIGNED_PAYLOAD}, ${STREAMING_PAYLOAD} or ${STREAMING_UNSIGNED_TRAILER}, got ${JSON.stringify(mode)}`,
      );
    }
  }
  if (rules.length !== undefined && rules.length > rules.maxBytes) {
    throw s3Error(
      'EntityTooLarge',
      `the body would hold ${rules.length} bytes; this gateway takes at most ${rules.maxBytes} in one request (use a multipart upload for more)`,
    );
  }
  const md5 = createHash('md5');
  let md5Hex: string | undefined;
  const decoded =
    mode === STREAMING_PAYLOAD || mode === STREAMING_UNSIGNED_TRAILER ? awsChunked(raw, rules) : raw;

  async function* bytes(): AsyncGenerator<Uint8Array> {
    // The body's SHA-256 only when the request was signed with one: hashing costs the put path CPU.
    const sha256 = /^[0-9a-f]{64}$/.test(mode) ? createHash('sha256') : undefined;
    let total = 0;
    for await (const piece of decoded) {
      total += piece.byteLength;
      if (total > rules.maxBytes)
        throw s3Error('EntityTooLarge', `the body holds more than ${rules.maxBytes} bytes`);
      md5.update(piece);
      sha256?.update(piece);
      yield piece;
    }
    if (rules.length !== undefined && total !== rules.length) {
      throw s3Error(
        'IncompleteBody',
        `expected a body of ${rules.length} bytes, got ${total}: the upload was cut short; send it again`,
      );
    }
    if (sha256 !== undefined && sha256.digest('hex') !== mode) {
      throw s3Error(
        'XAmzContentSHA256Mismatch',
        "the body's SHA-256 is not the x-amz-content-sha256 the request was signed with",
      );
    }
    const digest = md5.digest();
    if (rules.contentMd5 !== undefined && digest.toString('base64') !== rules.contentMd5) {
      throw s3Error(
        'BadDigest',
        `the body's MD5 is ${digest.toString('base64')}, the Content-MD5 header says ${rules.contentMd5}`,
      );
    }
    md5Hex = digest.toString('hex');
  }

  return {
    bytes: bytes(),
    md5() {
      if (md5Hex === undefined)
        throw new AilinkError(
          'INTERNAL',
          'expected the body to be read to its end before its MD5 is asked for, got a partly read body (a bug in the route)',
        );
      return md5Hex;
    },
  };
}

/** Decodes `aws-chunked`: `hex-size[;chunk-signature=sig]\r\n data \r\n` … a 0-size chunk, then trailers, then `\r\n`. */
async function* awsChunked(raw: AsyncIterable<Uint8Array>, rules: BodyRules): AsyncGenerator<Uint8Array> {
  const signed = rules.auth.payloadHash === STREAMING_PAYLOAD;
  const reader = bufferedReader(raw);
  let previous = rules.auth.signature;
  // What a trailing checksum may name, computed as the chunks pass.
  let crc = 0;
  const sha256 = createHash('sha256');
  const sha1 = createHash('sha1');
  for (;;) {
    const header = await reader.line();
    const m = /^([0-9a-fA-F]{1,16})(?:;chunk-signature=([0-9a-f]{64}))?$/.exec(header);
    if (m === null || (signed && m[2] === undefined)) {
      throw s3Error(
        'InvalidChunkSizeError',
        `malformed aws-chunked header ${JSON.stringify(header.slice(0, 80))}`,
      );
    }
    const size = Number.parseInt(m[1]!, 16);
    if (size > rules.maxBytes) throw s3Error('EntityTooLarge', `a chunk of ${size} bytes is over the limit`);
    // A chunk's bytes are passed on as they arrive, never gathered: a client may send one chunk of any size (up to
    // the body's limit), and gathering one of 1 MiB from 64 KiB network pieces copied it again for each piece. A bad
    // chunk signature still fails the stream before its end, which is what keeps a bad body from being declared.
    const chunkHash = signed ? createHash('sha256') : undefined;
    for await (const data of reader.take(size)) {
      chunkHash?.update(data);
      crc = crc32(data, crc);
      sha256.update(data);
      sha1.update(data);
      yield data;
    }
    if (chunkHash !== undefined) {
      const expected = chunkSignatureOfHash(rules.auth, previous, chunkHash.digest('hex'));
      if (expected !== m[2]) {
        throw s3Error(
          'SignatureDoesNotMatch',
          'a chunk signature does not match: the body was altered on the way, or not signed with your secret',
        );
      }
      previous = expected;
    }
    if (size === 0) break;
    if ((await reader.line()) !== '')
      throw s3Error('IncompleteBody', 'an aws-chunked chunk does not end with CRLF');
  }
  // Trailers (x-amz-checksum-*), then an empty line; a signed stream has only the empty line.
  const trailers = new Map<string, string>();
  for (;;) {
    const line = await reader.line();
    if (line === '') break;
    const at = line.indexOf(':');
    if (at < 1)
      throw s3Error('MalformedTrailerError', `malformed trailer ${JSON.stringify(line.slice(0, 80))}`);
    trailers.set(line.slice(0, at).trim().toLowerCase(), line.slice(at + 1).trim());
  }
  // CRC32C and CRC64NVME have no implementation in node: such a trailer is taken as sent (TCP or TLS still guards the
  // bytes; the checksum only adds an end-to-end check).
  const crcBytes = Buffer.alloc(4);
  crcBytes.writeUInt32BE(crc);
  const computed: Record<string, string> = {
    'x-amz-checksum-crc32': crcBytes.toString('base64'),
    'x-amz-checksum-sha256': sha256.digest('base64'),
    'x-amz-checksum-sha1': sha1.digest('base64'),
  };
  for (const [name, value] of trailers) {
    if (computed[name] !== undefined && computed[name] !== value) {
      throw s3Error(
        'BadDigest',
        `the body's ${name.slice('x-amz-checksum-'.length)} is ${computed[name]}, the trailer says ${value}`,
      );
    }
  }
}

/** Reads lines and exact byte counts from a stream of pieces. */
function bufferedReader(raw: AsyncIterable<Uint8Array>) {
  const it = raw[Symbol.asyncIterator]();
  // What arrived and is not read yet. Pieces are joined only while a line is incomplete (at most MAX_LINE bytes).
  let buffer: Buffer = Buffer.alloc(0);
  const more = async () => {
    const next = await it.next();
    if (next.done) throw s3Error('IncompleteBody', 'the body ended inside an aws-chunked chunk');
    const piece = Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength);
    buffer = buffer.byteLength === 0 ? piece : Buffer.concat([buffer, piece]);
  };
  return {
    async line(): Promise<string> {
      for (;;) {
        const at = buffer.indexOf('\r\n');
        if (at !== -1) {
          const text = buffer.subarray(0, at).toString('latin1');
          buffer = buffer.subarray(at + 2);
          return text;
        }
        if (buffer.byteLength > MAX_LINE)
          throw s3Error('InvalidChunkSizeError', 'an aws-chunked line is too long');
        await more();
      }
    },
    /** The next `n` bytes, as views of the pieces they arrived in (nothing copied). */
    async *take(n: number): AsyncGenerator<Uint8Array> {
      for (let left = n; left > 0; ) {
        if (buffer.byteLength === 0) await more();
        const piece = buffer.subarray(0, Math.min(left, buffer.byteLength));
        buffer = buffer.subarray(piece.byteLength);
        left -= piece.byteLength;
        yield piece;
      }
    },
  };
}
