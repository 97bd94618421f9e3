import { AilinkError } from '../shared/errors.ts';

/**
 * A streaming multipart/form-data reader (RFC 7578) for the DeOSS upload: parts come one after another, each body an
 * async iterable of the bytes between its headers and the next boundary, so a file of GBs never sits in memory. No
 * parser was installed, and adding one would change the node_modules tree every session here shares; the subset DeOSS
 * clients send (form fields and files, no nested multipart) is small.
 */

export interface MultipartPart {
  /** The form field's name (`Content-Disposition: form-data; name=…`). */
  readonly name: string | undefined;
  readonly filename: string | undefined;
  readonly contentType: string | undefined;
  /** Must be read to its end (or left: the parser skips the rest) before the next part is asked for. */
  readonly body: AsyncIterable<Buffer>;
}

export interface MultipartLimits {
  /** Most bytes of one part's header block, and of a preamble (default 16 KiB). */
  readonly maxHeaderBytes?: number;
  /** Most parts in one body (default 64). */
  readonly maxParts?: number;
}

const malformed = (message: string) =>
  new AilinkError('INVALID_INPUT', `multipart/form-data body: ${message}`);

/** The boundary of a `multipart/form-data; boundary=…` Content-Type. @throws INVALID_INPUT for another type */
export function boundaryOf(contentType: string | undefined): string {
  const m = /^\s*multipart\/form-data\s*;(.*)$/i.exec(contentType ?? '');
  if (m === null)
    throw new AilinkError(
      'INVALID_INPUT',
      `expected Content-Type multipart/form-data with a boundary, got ${JSON.stringify(contentType ?? null)}`,
    );
  const b = /(?:^|;)\s*boundary\s*=\s*(?:"([^"]{1,70})"|([^;\s"]{1,70}))/i.exec(m[1]!);
  const boundary = b?.[1] ?? b?.[2];
  if (boundary === undefined)
    throw new AilinkError(
      'INVALID_INPUT',
      'expected a boundary of 1–70 characters in the multipart Content-Type',
    );
  return boundary;
}

/** The parameters of a Content-Disposition value: `form-data; name="file"; filename="a.txt"`. */
export function dispositionParams(value: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of value.matchAll(/;\s*([A-Za-z*]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))/g)) {
    const key = m[1]!.toLowerCase();
    let v = m[2] === undefined ? m[3]! : m[2].replace(/\\(.)/g, '$1');
    if (key.endsWith('*')) {
      // RFC 5987: charset'lang'percent-encoded; it wins over the plain form of the same parameter.
      const ext = /^utf-8'[^']*'(.*)$/i.exec(v);
      if (ext === null) continue;
      try {
        v = decodeURIComponent(ext[1]!);
      } catch {
        continue;
      }
      out.set(key.slice(0, -1), v);
    } else if (!out.has(key)) out.set(key, v);
  }
  return out;
}

const toBuffer = (v: Uint8Array): Buffer =>
  Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);

/** A pull reader over a byte stream that keeps what it read ahead. */
class Reader {
  private buf: Buffer;
  private eof = false;
  private readonly it: AsyncIterator<Uint8Array>;
  constructor(source: AsyncIterable<Uint8Array>, head: Buffer) {
    this.it = source[Symbol.asyncIterator]();
    this.buf = head;
  }
  private async more(): Promise<boolean> {
    if (this.eof) return false;
    const r = await this.it.next();
    if (r.done) {
      this.eof = true;
      return false;
    }
    const piece = toBuffer(r.value);
    this.buf = this.buf.length === 0 ? piece : Buffer.concat([this.buf, piece]);
    return true;
  }
  async ensure(n: number): Promise<boolean> {
    while (this.buf.length < n) if (!(await this.more())) return false;
    return true;
  }
  peek(n: number): Buffer {
    return this.buf.subarray(0, n);
  }
  skip(n: number): void {
    this.buf = this.buf.subarray(n);
  }
  /** One line without its CRLF. */
  async line(max: number): Promise<string> {
    let from = 0;
    for (;;) {
      const at = this.buf.indexOf('\r\n', from, 'latin1');
      if (at !== -1 && at <= max) {
        const text = this.buf.subarray(0, at).toString('utf8');
        this.skip(at + 2);
        return text;
      }
      if (this.buf.length > max + 2) throw malformed(`a header line is longer than ${max} bytes`);
      from = Math.max(0, this.buf.length - 1);
      if (!(await this.more())) throw malformed('the body ended inside a part header');
    }
  }
  /** The bytes up to `delimiter`, which is consumed; never buffers more than one read plus the delimiter. */
  async *until(delimiter: Buffer, limit?: number): AsyncGenerator<Buffer> {
    let passed = 0;
    for (;;) {
      const at = this.buf.indexOf(delimiter);
      if (at !== -1) {
        passed += at;
        if (limit !== undefined && passed > limit) throw malformed(`expected at most ${limit} bytes here`);
        const out = this.buf.subarray(0, at);
        this.skip(at + delimiter.length);
        if (out.length > 0) yield out;
        return;
      }
      // What might be the start of the delimiter stays for the next round.
      const safe = this.buf.length - (delimiter.length - 1);
      if (safe > 0) {
        const out = this.buf.subarray(0, safe);
        this.skip(safe);
        passed += safe;
        if (limit !== undefined && passed > limit) throw malformed(`expected at most ${limit} bytes here`);
        yield out;
      }
      if (!(await this.more())) throw malformed('the body ended before its closing boundary');
    }
  }
}

/**
 * The parts of a multipart/form-data body, in order, as it streams.
 * @throws INVALID_INPUT (while iterating) for a body without its boundaries, a truncated body, or too many parts
 */
export async function* parseMultipart(
  source: AsyncIterable<Uint8Array>,
  boundary: string,
  limits: MultipartLimits = {},
): AsyncGenerator<MultipartPart> {
  const maxHeaderBytes = limits.maxHeaderBytes ?? 16 * 1024;
  const maxParts = limits.maxParts ?? 64;
  const delimiter = Buffer.from(`\r\n--${boundary}`, 'latin1');
  // A CRLF before the body lets its first boundary (which has none) match the delimiter like every other one.
  const reader = new Reader(source, Buffer.from('\r\n'));
  for await (const _ of reader.until(delimiter, maxHeaderBytes)) {
    // the preamble: ignored, as RFC 2046 says
  }
  for (let count = 0; ; count++) {
    if (!(await reader.ensure(2))) throw malformed('the body ended after a boundary');
    if (reader.peek(2).toString('latin1') === '--') return; // the closing boundary; the epilogue is ignored
    if (count === maxParts) throw malformed(`expected at most ${maxParts} parts`);
    // Transport padding after the boundary, then its line end.
    if ((await reader.line(256)).trim() !== '') throw malformed('expected a line end after a boundary');
    const headers = new Map<string, string>();
    let headerBytes = 0;
    for (;;) {
      const line = await reader.line(maxHeaderBytes);
      headerBytes += line.length + 2;
      if (headerBytes > maxHeaderBytes) throw malformed(`a part's headers exceed ${maxHeaderBytes} bytes`);
      if (line === '') break;
      const colon = line.indexOf(':');
      if (colon <= 0)
        throw malformed(`expected a header line "Name: value", got ${JSON.stringify(line.slice(0, 80))}`);
      headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
    const disposition = headers.get('content-disposition');
    if (disposition === undefined || !/^\s*form-data\s*(;|$)/i.test(disposition))
      throw malformed('expected every part to have Content-Disposition: form-data');
    const params = dispositionParams(disposition);
    const body = reader.until(delimiter);
    yield {
      name: params.get('name'),
      filename: params.get('filename'),
      contentType: headers.get('content-type'),
      body,
    };
    // Whatever the consumer left of this part is skipped (a generator already finished yields nothing more).
    for await (const _ of body) {
      // skipped
    }
  }
}
