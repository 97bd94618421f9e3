import { appendFileSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { base58Encode, encodeAddress } from '@polkadot/util-crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerDeoss } from '../../src/gateway/deoss.ts';
import {
  checkChunk,
  checkDeossAuth,
  deossMessage,
  parseContentRange,
} from '../../src/gateway/deoss-protocol.ts';
import { boundaryOf, dispositionParams, parseMultipart } from '../../src/gateway/form-data.ts';
import { createReplayGuard } from '../../src/gateway/replay-guard.ts';
import { type Account, accountFromSeeds, accountsReady } from '../../src/shared/account.ts';
import { toHex } from '../../src/shared/bytes.ts';
import { manualClock } from '../../src/shared/clock.ts';
import { AilinkError, type ErrorCode } from '../../src/shared/errors.ts';
import { deossTwins } from './deoss-twins.ts';

// The DeOSS API's pure parts (signed messages, replays, Content-Range, multipart) and its routes over in-memory twins of
// the storage client and the namespace; the real thing runs in test/integration/gateway-deoss.test.ts.

const codeOf = (run: () => unknown): ErrorCode => {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(AilinkError);
    return (err as AilinkError).code;
  }
  throw new Error('expected a refusal');
};

const T0 = 1_800_000_000_000; // a whole second
let owner: Account;
let other: Account;

beforeAll(async () => {
  await accountsReady();
  owner = accountFromSeeds(new Uint8Array(32).fill(1), new Uint8Array(32).fill(2));
  other = accountFromSeeds(new Uint8Array(32).fill(3), new Uint8Array(32).fill(4));
});

function signed(by: Account, message: string, as = by.address) {
  return { account: as, message, signature: toHex(by.sign(new TextEncoder().encode(message))) };
}

describe('DeOSS signed messages', () => {
  const ctx = () => ({ now: T0, owner: owner.address });

  it('accepts the owner’s signature of a message expiring within 5 minutes, in hex or base58, in any SS58 prefix', () => {
    const message = deossMessage(T0 + 60_000, 'nonce-0001');
    expect(message).toBe(`ailink-deoss:${(T0 + 60_000) / 1000}:nonce-0001`);
    const h = signed(owner, message);
    expect(checkDeossAuth(h, ctx())).toEqual({ account: owner.address, message, expiresAt: T0 + 60_000 });
    const sig = owner.sign(new TextEncoder().encode(message));
    expect(checkDeossAuth({ ...h, signature: `0x${toHex(sig)}` }, ctx()).expiresAt).toBe(T0 + 60_000);
    expect(checkDeossAuth({ ...h, signature: base58Encode(sig) }, ctx()).expiresAt).toBe(T0 + 60_000);
    // CESS's own prefix ("cX…"): the same key.
    const cess = encodeAddress(owner.publicKey, 11330);
    expect(checkDeossAuth({ ...h, account: cess }, ctx()).account).toBe(cess);
  });

  it('refuses an expired message, one expiring more than 5 minutes ahead, and messages of another form', () => {
    expect(codeOf(() => checkDeossAuth(signed(owner, deossMessage(T0, 'nonce-0001')), ctx()))).toBe(
      'AUTH_EXPIRED',
    );
    expect(codeOf(() => checkDeossAuth(signed(owner, deossMessage(T0 - 1000, 'nonce-0001')), ctx()))).toBe(
      'AUTH_EXPIRED',
    );
    expect(checkDeossAuth(signed(owner, deossMessage(T0 + 300_000, 'nonce-0001')), ctx()).expiresAt).toBe(
      T0 + 300_000,
    );
    expect(codeOf(() => checkDeossAuth(signed(owner, deossMessage(T0 + 301_000, 'nonce-0001')), ctx()))).toBe(
      'AUTH_EXPIRY_TOO_FAR',
    );
    // What DeOSS accepts: a bare timestamp, any text. Signed by the owner, still refused here.
    for (const bare of [
      String((T0 + 60_000) / 1000),
      'hello',
      `ailink-deoss:${(T0 + 60_000) / 1000}`,
      `ailink-deoss:${(T0 + 60_000) / 1000}:short`,
      `ailink-deoss:${T0 + 60_000}:nonce-0001`, // milliseconds
      `<Bytes>ailink-deoss:${(T0 + 60_000) / 1000}:nonce-0001</Bytes>`,
    ]) {
      expect(codeOf(() => checkDeossAuth(signed(owner, bare), ctx()))).toBe('INVALID_INPUT');
    }
  });

  it('refuses a missing header, a wrong signature, and a valid signature of another account', () => {
    const message = deossMessage(T0 + 60_000, 'nonce-0002');
    expect(codeOf(() => checkDeossAuth({ account: owner.address, message }, ctx()))).toBe('AUTH_MISSING');
    // The owner's signature of another message.
    const wrong = { ...signed(owner, deossMessage(T0 + 60_000, 'nonce-9999')), message };
    expect(codeOf(() => checkDeossAuth(wrong, ctx()))).toBe('AUTH_BAD_SIGNATURE');
    expect(codeOf(() => checkDeossAuth({ ...signed(owner, message), signature: '0x1234' }, ctx()))).toBe(
      'AUTH_BAD_SIGNATURE',
    );
    // Another account's signature claimed as the owner's.
    expect(codeOf(() => checkDeossAuth(signed(other, message, owner.address), ctx()))).toBe(
      'AUTH_BAD_SIGNATURE',
    );
    // Another account, signing for itself: genuine, but not the gateway's account.
    expect(codeOf(() => checkDeossAuth(signed(other, message), ctx()))).toBe('AUTH_NOT_AUTHORISED');
    // A stranger is refused before any signature is verified (a bad one or none at all says the same).
    expect(codeOf(() => checkDeossAuth({ ...signed(other, message), signature: '0x00' }, ctx()))).toBe(
      'AUTH_NOT_AUTHORISED',
    );
    // A signature over the raw message (no <Bytes> wrapping) does not verify.
    const raw = { account: owner.address, message, signature: toHex(new Uint8Array(64)) };
    expect(codeOf(() => checkDeossAuth(raw, ctx()))).toBe('AUTH_BAD_SIGNATURE');
  });

  it('a used message is refused until it expires, also by a guard restarted on the same file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ailink-replay-'));
    try {
      const clock = manualClock(T0);
      const file = join(dir, 'used');
      const guard = createReplayGuard({ clock, file });
      const auth = checkDeossAuth(signed(owner, deossMessage(T0 + 60_000, 'nonce-0003')), {
        now: T0,
        owner: owner.address,
      });
      guard.use(auth);
      expect(codeOf(() => guard.use(auth))).toBe('AUTH_REPLAYED');
      guard.use({ ...auth, message: deossMessage(T0 + 60_000, 'nonce-0004') });
      expect(statSync(file).mode & 0o777).toBe(0o600);
      const restarted = createReplayGuard({ clock, file });
      expect(restarted.size).toBe(2);
      expect(codeOf(() => restarted.use(auth))).toBe('AUTH_REPLAYED');
      // Once expired it is forgotten (checkDeossAuth refuses it as expired by then).
      clock.set(T0 + 60_000);
      restarted.use(auth);
      expect(createReplayGuard({ clock: manualClock(T0 + 120_000), file }).size).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a guard refuses new messages once too many are live', () => {
    const guard = createReplayGuard({ clock: manualClock(T0), maxEntries: 2 });
    const use = (n: string) => guard.use({ account: owner.address, message: n, expiresAt: T0 + 1000 });
    use('a');
    use('b');
    expect(codeOf(() => use('c'))).toBe('INVALID_INPUT');
  });
});

describe('resumable upload ranges', () => {
  it('parses "bytes start-end/total" (end included) and refuses anything else', () => {
    expect(parseContentRange('bytes 0-99/1000')).toEqual({ start: 0, end: 99, total: 1000 });
    expect(parseContentRange('bytes 999-999/1000')).toEqual({ start: 999, end: 999, total: 1000 });
    for (const bad of [
      undefined,
      '',
      'bytes=0-99/1000',
      'bytes 0-99',
      'bytes 0-99/*',
      'bytes */1000',
      'bytes 10-9/1000',
      'bytes 0-1000/1000',
      'bytes -1-5/10',
      'items 0-9/10',
      'bytes 0-9/10,10-19/20',
      'bytes 0x0-9/10',
    ]) {
      expect(codeOf(() => parseContentRange(bad))).toBe('INVALID_INPUT');
    }
  });

  it('a chunk must start where the staged bytes end: overlaps, gaps and another total are refused', () => {
    checkChunk(undefined, { start: 0, end: 9, total: 30 });
    checkChunk({ received: 10, total: 30 }, { start: 10, end: 19, total: 30 });
    const refused = (
      staged: { received: number; total: number } | undefined,
      start: number,
      end: number,
      total = 30,
    ) => {
      try {
        checkChunk(staged, { start, end, total });
      } catch (err) {
        expect((err as AilinkError).code).toBe('UPLOAD_RANGE_MISMATCH');
        return (err as AilinkError).details?.received;
      }
      throw new Error('expected a refusal');
    };
    expect(refused({ received: 10, total: 30 }, 5, 14)).toBe(10); // overlap
    expect(refused({ received: 10, total: 30 }, 0, 9)).toBe(10); // the same chunk again
    expect(refused({ received: 10, total: 30 }, 11, 19)).toBe(10); // gap
    expect(refused(undefined, 10, 19)).toBe(0); // a first chunk not at 0
    expect(refused({ received: 10, total: 30 }, 10, 19, 40)).toBe(10); // another total
  });
});

describe('multipart/form-data', () => {
  const boundary = '----ailinkBoundary7MA4YWxkTrZu0gW';
  const body = Buffer.concat([
    Buffer.from(`preamble\r\n--${boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n`),
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a \\"b\\".bin"\r\nContent-Type: image/png\r\n\r\n`,
    ),
    // Bytes that look like a boundary but are not one.
    Buffer.from(`\r\n--${boundary.slice(0, -1)}X\r\n--\r\n`),
    Buffer.alloc(3000, 7),
    Buffer.from(`\r\n--${boundary}--\r\nepilogue`),
  ]);
  const fileBytes = Buffer.concat([
    Buffer.from(`\r\n--${boundary.slice(0, -1)}X\r\n--\r\n`),
    Buffer.alloc(3000, 7),
  ]);

  async function* pieces(bytes: Buffer, size: number) {
    for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
  }
  async function collect(source: AsyncIterable<Uint8Array>) {
    const out: { name?: string; filename?: string; type?: string; bytes: Buffer }[] = [];
    for await (const part of parseMultipart(source, boundary)) {
      const chunks: Buffer[] = [];
      for await (const c of part.body) chunks.push(c);
      out.push({
        ...(part.name === undefined ? {} : { name: part.name }),
        ...(part.filename === undefined ? {} : { filename: part.filename }),
        ...(part.contentType === undefined ? {} : { type: part.contentType }),
        bytes: Buffer.concat(chunks),
      });
    }
    return out;
  }

  it('gives each part, its name, file name and type, however the body is cut', async () => {
    for (const size of [1, 2, 3, 7, 40, 41, 1000, body.length]) {
      const parts = await collect(pieces(body, size));
      expect(parts.map((p) => [p.name, p.filename, p.type])).toEqual([
        ['note', undefined, undefined],
        ['file', 'a "b".bin', 'image/png'],
      ]);
      expect(parts[0]!.bytes.toString()).toBe('hello');
      expect(parts[1]!.bytes.equals(fileBytes)).toBe(true);
    }
  });

  it('a part left unread is skipped', async () => {
    const names: (string | undefined)[] = [];
    for await (const part of parseMultipart(pieces(body, 13), boundary)) names.push(part.name);
    expect(names).toEqual(['note', 'file']);
  });

  it('refuses a body cut short, one without its boundary, and too many parts', async () => {
    const refused = async (source: AsyncIterable<Uint8Array>, limits = {}) => {
      try {
        for await (const part of parseMultipart(source, boundary, limits)) for await (const _ of part.body);
      } catch (err) {
        return (err as AilinkError).code;
      }
      return 'accepted';
    };
    expect(await refused(pieces(body.subarray(0, body.length - 20), 64))).toBe('INVALID_INPUT');
    expect(await refused(pieces(Buffer.from('no boundary here at all'), 5))).toBe('INVALID_INPUT');
    expect(await refused(pieces(body, 64), { maxParts: 1 })).toBe('INVALID_INPUT');
    expect(await refused(pieces(body, 64))).toBe('accepted');
  });

  it('reads the boundary and RFC 5987 file names', () => {
    expect(boundaryOf('multipart/form-data; boundary=abc')).toBe('abc');
    expect(boundaryOf('Multipart/Form-Data; charset=utf-8; boundary="a b:c"')).toBe('a b:c');
    expect(codeOf(() => boundaryOf('application/octet-stream'))).toBe('INVALID_INPUT');
    expect(codeOf(() => boundaryOf('multipart/form-data'))).toBe('INVALID_INPUT');
    expect(
      dispositionParams(`form-data; name="file"; filename="x.txt"; filename*=UTF-8''%E6%96%87.txt`).get(
        'filename',
      ),
    ).toBe('文.txt');
  });
});

// ---- the routes, over in-memory twins ----

describe('DeOSS routes over twins', () => {
  let dir: string;
  let t: ReturnType<typeof deossTwins>;
  // Near the real time: staged files carry real mtimes, and the API sweeps those a week older than its clock.
  const clock = manualClock(Math.floor(Date.now() / 1000) * 1000);
  let nonce = 0;
  const auth = (by = owner) =>
    signed(by, deossMessage(clock.now() + 60_000, `nonce-${String(nonce++).padStart(6, '0')}`));
  const build = (): FastifyInstance => {
    const app = Fastify();
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', (_r, _p, done) => done(null, undefined));
    registerDeoss(app, {
      storage: t.storage,
      namespace: t.namespace,
      clock,
      stateDir: dir,
      maxObjectBytes: 1000,
    });
    return app;
  };

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'ailink-deoss-unit-'));
    t = deossTwins(owner.address);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const chunk = (
    app: FastifyInstance,
    range: string,
    payload: Buffer,
    headers: Record<string, string> = {},
  ) =>
    app.inject({
      method: 'PUT',
      url: '/deoss/resume/clip.mp4',
      headers: { ...auth(), 'content-range': range, 'content-type': 'application/octet-stream', ...headers },
      payload,
    });

  it('uploads a form file and serves it back; refuses a replayed message and another account', async () => {
    const app = build();
    const boundary = 'XyZ123';
    const payload = Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="hi.txt"\r\n\r\nhello world\r\n--${boundary}--\r\n`,
    );
    const headers = {
      ...auth(),
      bucket: 'media',
      'content-type': `multipart/form-data; boundary=${boundary}`,
    };
    const put = await app.inject({ method: 'PUT', url: '/deoss/file', headers, payload });
    expect(put.statusCode).toBe(200);
    const fid = put.json().data.fid as string;
    expect(t.objects.get(fid)?.file).toMatchObject({
      bucket: 'media',
      key: 'hi.txt',
      contentType: 'text/plain; charset=utf-8',
    });
    const again = await app.inject({ method: 'PUT', url: '/deoss/file', headers, payload });
    expect([again.statusCode, again.json().error]).toEqual([409, 'AUTH_REPLAYED']);
    const stranger = await app.inject({
      method: 'GET',
      url: `/deoss/file/download/${fid}`,
      headers: auth(other),
    });
    expect([stranger.statusCode, stranger.json().error]).toEqual([403, 'AUTH_NOT_AUTHORISED']);
    const open = await app.inject({
      method: 'GET',
      url: `/deoss/file/open/${fid}`,
      headers: { ...auth(), range: 'bytes=6-' },
    });
    expect([open.statusCode, open.body, open.headers['content-range']]).toEqual([
      206,
      'world',
      'bytes 6-10/11',
    ]);
    const past = await app.inject({
      method: 'GET',
      url: `/deoss/file/open/${fid}`,
      headers: { ...auth(), range: 'bytes=11-' },
    });
    expect([past.statusCode, past.headers['content-range']]).toEqual([416, 'bytes */11']);
    const none = await app.inject({ method: 'GET', url: '/deoss/file/metadata/nothex', headers: auth() });
    expect(none.statusCode).toBe(400);
    const unknown = await app.inject({ method: 'POST', url: '/deoss/files', headers: auth() });
    expect([unknown.statusCode, unknown.json().error]).toEqual([404, 'NOT_FOUND']);
    expect(t.puts).toHaveLength(1);
    await app.close();
  });

  it('a file over the maximum is refused and nothing is declared', async () => {
    const app = build();
    const before = t.puts.length;
    const boundary = 'b0und';
    const payload = Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n\r\n`),
      Buffer.alloc(1001),
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    const res = await app.inject({
      method: 'PUT',
      url: '/deoss/file',
      headers: { ...auth(), 'content-type': `multipart/form-data; boundary=${boundary}` },
      payload,
    });
    expect([res.statusCode, res.json().error]).toEqual([413, 'UPLOAD_TOO_LARGE']);
    expect(t.puts.length).toBe(before);
    await app.close();
  });

  it('resumes in chunks across a restart; overlaps, gaps and short bodies are refused and store nothing', async () => {
    const bytes = Buffer.from(Array.from({ length: 30 }, (_, i) => i));
    const before = t.puts.length;
    let app = build();
    const first = await chunk(app, 'bytes 0-9/30', bytes.subarray(0, 10));
    expect([first.statusCode, first.headers.range]).toEqual([308, 'bytes=0-9']);
    expect(
      readdirSync(join(dir, 'resume')).map((f) => statSync(join(dir, 'resume', f)).mode & 0o777),
    ).toEqual([0o600, 0o600]);
    const overlap = await chunk(app, 'bytes 5-14/30', bytes.subarray(5, 15));
    expect([overlap.statusCode, overlap.json().error, overlap.headers.range]).toEqual([
      409,
      'UPLOAD_RANGE_MISMATCH',
      'bytes=0-9',
    ]);
    const gap = await chunk(app, 'bytes 11-19/30', bytes.subarray(11, 20));
    expect(gap.statusCode).toBe(409);
    const short = await chunk(app, 'bytes 10-19/30', bytes.subarray(10, 15));
    expect([short.statusCode, short.json().error]).toEqual([400, 'INVALID_INPUT']);
    const malformed = await chunk(app, 'bytes=10-19/30', bytes.subarray(10, 20));
    expect(malformed.statusCode).toBe(400);
    // A gateway that died while writing a chunk leaves bytes past the committed offset: they must not survive.
    const part = readdirSync(join(dir, 'resume')).find((f) => f.endsWith('.part'))!;
    appendFileSync(join(dir, 'resume', part), Buffer.alloc(25, 0xee));
    expect((await chunk(app, 'bytes 10-19/30', bytes.subarray(10, 20))).statusCode).toBe(308);
    await app.close();
    app = build(); // a new instance over the same staging dir
    const last = await chunk(app, 'bytes 20-29/30', bytes.subarray(20, 30));
    expect(last.statusCode).toBe(200);
    const fid = last.json().data.fid as string;
    expect(t.objects.get(fid)?.bytes.equals(bytes)).toBe(true);
    expect(t.puts.length).toBe(before + 1);
    // Content-Range told the size: a small upload is coded in a segment of its own size.
    expect(t.toldSizes.at(-1)).toBe(30);
    expect(readdirSync(join(dir, 'resume'))).toEqual([]);
    await app.close();
  });
});
