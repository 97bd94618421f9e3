import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import {
  completeParts,
  diskUploadStore,
  multipartEtag,
  parsePartNumber,
} from '../../src/gateway/multipart.ts';
import { systemRandom } from '../../src/shared/clock.ts';
import { AilinkError } from '../../src/shared/errors.ts';

// Multipart uploads staged on disk: what CompleteMultipartUpload accepts, S3's multipart ETag, and a store that a
// gateway killed mid-part leaves consistent. The operations over a dev network: test/integration/gateway-s3.test.ts.

const s3CodeOf = async (run: () => unknown) => {
  try {
    await run();
  } catch (err) {
    expect(err).toBeInstanceOf(AilinkError);
    return (err as AilinkError).details?.s3;
  }
  throw new Error('expected a refusal');
};
const md5 = (b: Uint8Array | string) => createHash('md5').update(b).digest('hex');
async function* pieces(...parts: (string | Error)[]) {
  for (const p of parts) {
    if (p instanceof Error) throw p;
    yield Buffer.from(p);
  }
}
const collect = async (it: AsyncIterable<Uint8Array>) => {
  const out: Uint8Array[] = [];
  for await (const p of it) out.push(p);
  return Buffer.concat(out).toString();
};

describe('multipart parsing', () => {
  it("the ETag of a multipart object: MD5 of the parts' binary MD5s, then -N (vector computed with Python's hashlib)", () => {
    expect(multipartEtag([md5('hello'), md5('world')])).toBe('065947336a2f2a95ba8899f3675c3be6-2');
  });

  it('CompleteMultipartUpload: parts in ascending order with quoted or entity-quoted ETags', () => {
    const a = md5('a');
    const b = md5('b');
    expect(
      completeParts(
        `<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Part><ETag>"${a}"</ETag><PartNumber>1</PartNumber></Part><Part><PartNumber>3</PartNumber><ETag>&quot;${b.toUpperCase()}&quot;</ETag><ChecksumCRC32>x</ChecksumCRC32></Part></CompleteMultipartUpload>`,
      ),
    ).toEqual([
      { number: 1, etag: a },
      { number: 3, etag: b },
    ]);
  });

  it('parts out of order or repeated → InvalidPartOrder; malformed → MalformedXML; a foreign ETag → InvalidPart', async () => {
    const doc = (parts: [number, string][]) =>
      `<CompleteMultipartUpload>${parts.map(([n, e]) => `<Part><PartNumber>${n}</PartNumber><ETag>"${e}"</ETag></Part>`).join('')}</CompleteMultipartUpload>`;
    const e = md5('x');
    expect(
      await s3CodeOf(() =>
        completeParts(
          doc([
            [2, e],
            [1, e],
          ]),
        ),
      ),
    ).toBe('InvalidPartOrder');
    expect(
      await s3CodeOf(() =>
        completeParts(
          doc([
            [1, e],
            [1, e],
          ]),
        ),
      ),
    ).toBe('InvalidPartOrder');
    expect(await s3CodeOf(() => completeParts(doc([])))).toBe('MalformedXML');
    expect(await s3CodeOf(() => completeParts('<Delete/>'))).toBe('MalformedXML');
    expect(
      await s3CodeOf(() =>
        completeParts(
          '<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part></CompleteMultipartUpload>',
        ),
      ),
    ).toBe('MalformedXML');
    expect(await s3CodeOf(() => completeParts(doc([[1, 'not-an-etag']])))).toBe('InvalidPart');
  });

  it('a part number is 1–10000, as a plain number', async () => {
    expect(parsePartNumber('1')).toBe(1);
    expect(parsePartNumber('10000')).toBe(10000);
    for (const bad of [undefined, '0', '10001', '-1', '1.5', '', 'x', '001e1'])
      expect(await s3CodeOf(() => parsePartNumber(bad))).toBe('InvalidArgument');
  });

  it('a property: any ascending list of part numbers is accepted as listed; any out-of-order one is refused', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 1, max: 10_000 }), { minLength: 1, maxLength: 30 }),
        (numbers) => {
          const xml = `<CompleteMultipartUpload>${numbers.map((n) => `<Part><PartNumber>${n}</PartNumber><ETag>"${md5(String(n))}"</ETag></Part>`).join('')}</CompleteMultipartUpload>`;
          const ascending = numbers.every((n, i) => i === 0 || n > numbers[i - 1]!);
          if (ascending) expect(completeParts(xml).map((p) => p.number)).toEqual(numbers);
          else expect(() => completeParts(xml)).toThrow(/ascending/);
        },
      ),
    );
  });
});

describe('diskUploadStore', () => {
  const dirs: string[] = [];
  const fresh = () => {
    const dir = mkdtempSync(join(tmpdir(), 'ailink-uploads-'));
    dirs.push(dir);
    return dir;
  };
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('stages parts in any order, replaces a part sent again, and reads them back in the listed order', async () => {
    const dir = fresh();
    const store = diskUploadStore(dir, systemRandom);
    const id = await store.create({ bucket: 'b', key: 'k', metadata: { a: '1' } }, 1000);
    await store.writePart(id, 2, pieces('world'), () => md5('world'), 2000);
    await store.writePart(id, 1, pieces('first try'), () => md5('first try'), 2001);
    await store.writePart(id, 1, pieces('hel', 'lo '), () => md5('hello '), 2002);
    expect((await store.parts(id)).map((p) => [p.number, p.size, p.etag])).toEqual([
      [1, 6, md5('hello ')],
      [2, 5, md5('world')],
    ]);
    expect(await collect(store.read(id, [1, 2]))).toBe('hello world');
    expect(await store.info(id, 'b', 'k')).toEqual({
      bucket: 'b',
      key: 'k',
      metadata: { a: '1' },
      initiated: 1000,
    });
    // One file per part: the replaced part's bytes are gone.
    expect(readdirSync(join(dir, id)).filter((n) => n.endsWith('.bin'))).toHaveLength(2);
  });

  it('another bucket or key, a made-up id, or a removed upload → NoSuchUpload', async () => {
    const store = diskUploadStore(fresh(), systemRandom);
    const id = await store.create({ bucket: 'b', key: 'k', metadata: {} }, 0);
    expect(await s3CodeOf(() => store.info(id, 'b', 'other'))).toBe('NoSuchUpload');
    expect(await s3CodeOf(() => store.info(id, 'c', 'k'))).toBe('NoSuchUpload');
    expect(await s3CodeOf(() => store.info('../../etc', 'b', 'k'))).toBe('NoSuchUpload');
    expect(await s3CodeOf(() => store.info('0'.repeat(32), 'b', 'k'))).toBe('NoSuchUpload');
    await store.remove(id);
    expect(await s3CodeOf(() => store.writePart(id, 1, pieces('x'), () => md5('x'), 0))).toBe('NoSuchUpload');
  });

  it('a part whose body fails mid-way is not there, and an earlier upload of that part stays', async () => {
    const dir = fresh();
    const store = diskUploadStore(dir, systemRandom);
    const id = await store.create({ bucket: 'b', key: 'k', metadata: {} }, 0);
    await store.writePart(id, 1, pieces('good'), () => md5('good'), 0);
    await expect(
      store.writePart(id, 1, pieces('bad', new Error('cut short')), () => md5('bad'), 0),
    ).rejects.toThrow('cut short');
    await expect(
      store.writePart(id, 2, pieces('x', new Error('cut short')), () => md5('x'), 0),
    ).rejects.toThrow();
    expect((await store.parts(id)).map((p) => p.number)).toEqual([1]);
    expect(await collect(store.read(id, [1]))).toBe('good');
    expect(readdirSync(join(dir, id)).filter((n) => n.endsWith('.bin'))).toHaveLength(1);
  });

  it('after a kill mid-part, a restarted store keeps the upload and its whole parts and sweeps the rest', async () => {
    const dir = fresh();
    const first = diskUploadStore(dir, systemRandom);
    const id = await first.create({ bucket: 'b', key: 'k', metadata: {} }, 0);
    await first.writePart(id, 1, pieces('kept'), () => md5('kept'), 0);
    // What a kill leaves: bytes written with no record naming them, a record written aside, a dir without upload.json.
    writeFileSync(join(dir, id, 'part-00002-0011223344556677.bin'), 'half');
    writeFileSync(join(dir, id, 'part-00002.json.tmp'), '{');
    const orphan = join(dir, 'ffffffffffffffffffffffffffffffff');
    mkdirSync(orphan);
    const second = diskUploadStore(dir, systemRandom);
    expect((await second.uploads()).map((u) => u.uploadId)).toEqual([id]);
    expect((await second.parts(id)).map((p) => p.number)).toEqual([1]);
    expect(readdirSync(join(dir, id)).sort()).toEqual(
      [readdirSync(join(dir, id)).find((n) => n.endsWith('.bin'))!, 'part-00001.json', 'upload.json'].sort(),
    );
    expect(existsSync(orphan)).toBe(false);
  });

  it('reading a part that was never uploaded → InvalidPart', async () => {
    const store = diskUploadStore(fresh(), systemRandom);
    const id = await store.create({ bucket: 'b', key: 'k', metadata: {} }, 0);
    expect(await s3CodeOf(() => collect(store.read(id, [1])))).toBe('InvalidPart');
  });
});
