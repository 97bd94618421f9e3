import { createHash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { type BodyRules, checkBody, STREAMING_UNSIGNED_TRAILER } from '../../src/gateway/body.ts';
import { chunkSignature, STREAMING_PAYLOAD, signingKey, UNSIGNED_PAYLOAD } from '../../src/gateway/sigv4.ts';
import { AilinkError } from '../../src/shared/errors.ts';

// Upload bodies as S3 clients frame them, decoded and checked while they stream; a bad one fails before its end.

const key = signingKey('secret', '20261203', 'ailink-1', 's3');
const base = {
  amzDate: '20261203T120000Z',
  scope: '20261203/ailink-1/s3/aws4_request',
  signingKey: key,
  signature: 'ab'.repeat(32),
};
const data = new TextEncoder().encode('the quick brown fox jumps over the lazy dog, '.repeat(100));

async function* pieces(bytes: Uint8Array, size = 7): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.byteLength; i += size) yield bytes.subarray(i, i + size);
}

async function read(raw: Uint8Array, rules: BodyRules) {
  const body = checkBody(pieces(raw), rules);
  const parts: Uint8Array[] = [];
  for await (const p of body.bytes) parts.push(p);
  return { bytes: Buffer.concat(parts), md5: body.md5() };
}

async function refusal(raw: Uint8Array, rules: BodyRules): Promise<string> {
  const err = await read(raw, rules).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AilinkError);
  return String((err as AilinkError).details?.s3);
}

/** Signed aws-chunked framing of `bytes` in chunks of `size`, each chunk's signature chained from the seed. */
function signedChunks(bytes: Uint8Array, size: number, tamper?: number): Uint8Array {
  const out: Buffer[] = [];
  let previous = base.signature;
  for (let i = 0; ; i += size) {
    const chunk = bytes.subarray(i, Math.min(i + size, bytes.byteLength));
    const sig = chunkSignature(base, previous, chunk);
    previous = sig;
    const sent = tamper === i ? Buffer.from(chunk).fill(0x41, 0, 1) : chunk;
    out.push(
      Buffer.from(`${chunk.byteLength.toString(16)};chunk-signature=${sig}\r\n`),
      Buffer.from(sent),
      Buffer.from('\r\n'),
    );
    if (chunk.byteLength === 0) break;
  }
  return Buffer.concat(out);
}

function trailerChunks(bytes: Uint8Array, size: number, trailer: string): Uint8Array {
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.byteLength; i += size) {
    const chunk = bytes.subarray(i, i + size);
    out.push(Buffer.from(`${chunk.byteLength.toString(16)}\r\n`), Buffer.from(chunk), Buffer.from('\r\n'));
  }
  out.push(Buffer.from(`0\r\n${trailer}\r\n\r\n`));
  return Buffer.concat(out);
}

const md5Hex = createHash('md5').update(data).digest('hex');
const crcOf = (b: Uint8Array) => {
  const x = Buffer.alloc(4);
  x.writeUInt32BE(crc32(b));
  return x.toString('base64');
};

describe('upload bodies', () => {
  it('a plain body with its signed SHA-256 passes; another body → XAmzContentSHA256Mismatch', async () => {
    const sha = createHash('sha256').update(data).digest('hex');
    const ok = await read(data, {
      auth: { ...base, payloadHash: sha },
      length: data.byteLength,
      maxBytes: 1 << 20,
    });
    expect(ok).toEqual({ bytes: Buffer.from(data), md5: md5Hex });
    const other = Buffer.from(data).fill(0x42, 0, 1);
    expect(await refusal(other, { auth: { ...base, payloadHash: sha }, maxBytes: 1 << 20 })).toBe(
      'XAmzContentSHA256Mismatch',
    );
  });

  it('checks Content-MD5, the length and the size limit', async () => {
    const unsigned = { ...base, payloadHash: UNSIGNED_PAYLOAD };
    const md5 = createHash('md5').update(data).digest('base64');
    expect((await read(data, { auth: unsigned, contentMd5: md5, maxBytes: 1 << 20 })).md5).toBe(md5Hex);
    expect(
      await refusal(data, {
        auth: unsigned,
        contentMd5: createHash('md5').update('x').digest('base64'),
        maxBytes: 1 << 20,
      }),
    ).toBe('BadDigest');
    expect(await refusal(data, { auth: unsigned, length: data.byteLength + 1, maxBytes: 1 << 20 })).toBe(
      'IncompleteBody',
    );
    expect(await refusal(data, { auth: unsigned, maxBytes: 100 })).toBe('EntityTooLarge');
    expect(() => checkBody(pieces(data), { auth: unsigned, length: 101, maxBytes: 100 })).toThrow(
      /at most 100/,
    );
  });

  it('signed aws-chunked: decoded and every chunk signature checked; an altered chunk → SignatureDoesNotMatch', async () => {
    const auth = { ...base, payloadHash: STREAMING_PAYLOAD };
    const ok = await read(signedChunks(data, 1000), { auth, length: data.byteLength, maxBytes: 1 << 20 });
    expect(ok.bytes).toEqual(Buffer.from(data));
    expect(await refusal(signedChunks(data, 1000, 2000), { auth, maxBytes: 1 << 20 })).toBe(
      'SignatureDoesNotMatch',
    );
    // Cut short: the body ends inside a chunk.
    const framed = signedChunks(data, 1000);
    expect(await refusal(framed.subarray(0, framed.byteLength - 200), { auth, maxBytes: 1 << 20 })).toBe(
      'IncompleteBody',
    );
  });

  it('unsigned aws-chunked with a CRC32 trailer (what recent AWS SDKs send): the trailer is checked', async () => {
    const auth = { ...base, payloadHash: STREAMING_UNSIGNED_TRAILER };
    const ok = await read(trailerChunks(data, 512, `x-amz-checksum-crc32:${crcOf(data)}`), {
      auth,
      maxBytes: 1 << 20,
    });
    expect(ok.bytes).toEqual(Buffer.from(data));
    const wrong = trailerChunks(data, 512, `x-amz-checksum-crc32:${crcOf(new Uint8Array([1]))}`);
    expect(await refusal(wrong, { auth, maxBytes: 1 << 20 })).toBe('BadDigest');
    expect(await refusal(Buffer.from('zz\r\nabc'), { auth, maxBytes: 1 << 20 })).toBe(
      'InvalidChunkSizeError',
    );
  });

  it('aws-chunked: a chunk is passed on as its pieces arrive, not gathered whole (memory), in both modes', async () => {
    // One 1 MiB chunk whose first 64 KiB arrive, then nothing until the test lets the rest through: its first bytes
    // must come out before the rest arrives (a reader that gathered the chunk would wait for ever).
    const big = new Uint8Array(1 << 20).map((_, i) => i * 7);
    for (const [payloadHash, framed] of [
      [STREAMING_UNSIGNED_TRAILER, trailerChunks(big, big.byteLength, `x-amz-checksum-crc32:${crcOf(big)}`)],
      [STREAMING_PAYLOAD, signedChunks(big, big.byteLength)],
    ] as const) {
      const header = framed.indexOf(0x0a) + 1;
      let release!: () => void;
      const released = new Promise<void>((r) => {
        release = r;
      });
      async function* network(): AsyncGenerator<Uint8Array> {
        yield framed.subarray(0, header + 65536);
        await released;
        yield* pieces(framed.subarray(header + 65536), 65536);
      }
      const body = checkBody(network(), { auth: { ...base, payloadHash }, maxBytes: 1 << 21 });
      const it = body.bytes[Symbol.asyncIterator]();
      const stuck = new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error('no bytes before the whole chunk arrived')), 5000).unref(),
      );
      const first = await Promise.race([it.next(), stuck]);
      expect(first.done).toBe(false);
      // Compared with equals: toEqual walks a megabyte element by element.
      expect(Buffer.from(first.value as Uint8Array).equals(big.subarray(0, 65536))).toBe(true);
      release();
      const parts = [first.value as Uint8Array];
      for (let next = await it.next(); !next.done; next = await it.next()) parts.push(next.value);
      expect(Buffer.concat(parts).equals(big)).toBe(true);
      expect(body.md5()).toBe(createHash('md5').update(big).digest('hex'));
    }
  });
});
