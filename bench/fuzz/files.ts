/**
 * Edges: the files the CLI reads — IDX, CSV, image folders, model.json, key files, role configs, protocol.json and
 * network.json — each through the real reader in src. What they store is the folder they read from: a reader must
 * write nothing (the digest covers every name, mode and byte under it).
 */
import { createHash } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { readModelJson } from '../../models/index.ts';
import { CESS_AUDIT, protocolConfigToJson } from '../../src/chain/config.ts';
import { DEV_PROTOCOL_CONFIG } from '../../src/chain/index.ts';
import { withConfigFile } from '../../src/node/config.ts';
import { readProtocolConfig } from '../../src/node/network.ts';
import { loadIdxDataset } from '../../src/participant/idx.ts';
import { readImageFolder } from '../../src/participant/images.ts';
import { loadTable } from '../../src/participant/sources.ts';
import { accountFromSeeds, accountsReady, loadKeyFile } from '../../src/shared/account.ts';
import { toHex } from '../../src/shared/bytes.ts';
import { loadNetworkFile } from '../../src/storage/client/network.ts';
import type { ImageSchema, TabularSchema } from '../../src/task/data-schema.ts';
import type { Edge, FuzzCase } from './harness.ts';
import { bytesCases, concat, fuzzCase, type Json, type JsonPath, jsonCases } from './mutate.ts';

/** Files to write under the edge's folder: path → bytes (or text), with an optional mode. */
export type Files = Readonly<
  Record<string, string | Uint8Array | { data: string | Uint8Array; mode: number }>
>;

/** SHA-256 over every entry under `dir`: relative path, kind, mode and bytes, in name order. */
export async function treeDigest(dir: string): Promise<string> {
  const h = createHash('sha256');
  const walk = async (at: string, rel: string): Promise<void> => {
    const entries = (await readdir(at, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const e of entries) {
      const path = join(at, e.name);
      const info = await stat(path);
      h.update(`${rel}/${e.name}\n${info.mode}\n`);
      if (e.isDirectory()) await walk(path, `${rel}/${e.name}`);
      else h.update(await readFile(path));
    }
  };
  await walk(dir, '');
  return h.digest('hex');
}

/** A file edge: each case is a set of files written to a fresh folder, then read by `read`. */
function fileEdge(
  name: string,
  o: {
    cases: () => fc.Arbitrary<FuzzCase<Files>>;
    valid: () => Files;
    read(dir: string): Promise<unknown>;
    setup?(): Promise<void>;
  },
): Edge<Files> {
  let root = '';
  let dir = '';
  return {
    name,
    cases: o.cases,
    valid: o.valid,
    async setup() {
      root = await mkdtemp(join(tmpdir(), `ailink-fuzz-${name.replace(/\W/g, '-')}-`));
      await o.setup?.();
    },
    async stage(files) {
      dir = join(root, 'in');
      await rm(dir, { recursive: true, force: true });
      await mkdir(dir, { recursive: true });
      for (const [path, content] of Object.entries(files)) {
        const file = join(dir, path);
        await mkdir(dirname(file), { recursive: true });
        const { data, mode } =
          typeof content === 'string' || content instanceof Uint8Array
            ? { data: content, mode: 0o600 }
            : content;
        await writeFile(file, data);
        await chmod(file, mode);
      }
    },
    apply: async () => {
      await o.read(dir);
    },
    digest: () => treeDigest(root),
    async teardown() {
      if (root !== '') await rm(root, { recursive: true, force: true });
    },
  };
}

/** One file's JSON cases as `Files`. */
const asFile = (path: string, cases: fc.Arbitrary<FuzzCase<string | Uint8Array>>) =>
  cases.map((c) => ({ ...c, input: { [path]: c.input } as Files }));

// ---------------------------------------------------------------------------------------------------------------
// IDX

function idxHeader(type: number, dims: readonly number[]): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length);
  out.set([0, 0, type, dims.length]);
  const view = new DataView(out.buffer);
  for (const [i, d] of dims.entries()) view.setUint32(4 + 4 * i, d >>> 0, false);
  return out;
}

const IDX_MAX = 64 * 1024;

export function idxEdge(): Edge<Files> {
  const images = concat(
    idxHeader(8, [3, 4, 4]),
    new Uint8Array(48).map((_, i) => i),
  );
  const labels = concat(idxHeader(8, [3]), new Uint8Array([0, 1, 2]));
  const valid: Files = { 'images.idx': images, 'labels.idx': labels };
  const withImages = (c: FuzzCase<Uint8Array>): FuzzCase<Files> => ({
    ...c,
    input: { 'images.idx': c.input, 'labels.idx': labels },
  });
  const cases: fc.Arbitrary<FuzzCase<Files>> = fc.oneof(
    bytesCases(images, 16).map(withImages),
    bytesCases(labels, 8).map((c) => ({ ...c, input: { 'images.idx': images, 'labels.idx': c.input } })),
    // A header that announces more (or other) values than the file holds.
    fc
      .tuple(fc.integer({ min: 1, max: 255 }), fc.array(fc.nat(), { minLength: 0, maxLength: 8 }))
      .map(([type, dims]) =>
        withImages(
          fuzzCase(
            'malformed',
            `type ${type}, dims ${dims.join('×')}`,
            concat(idxHeader(type, dims), images.slice(16)),
            false,
          ),
        ),
      ),
    fc
      .constantFrom(0, 1, 0xffffffff)
      .map((d) =>
        withImages(fuzzCase('malformed', `dims 3×${d}×4`, concat(idxHeader(8, [3, d, 4]), images.slice(16)))),
      ),
    // Labels of another type or rank, or a count that does not match the images.
    fc.constant(
      fuzzCase('malformed', 'labels as int32', {
        'images.idx': images,
        'labels.idx': concat(idxHeader(12, [3]), new Uint8Array(12)),
      }),
    ),
    fc.constant(
      fuzzCase('duplicated', 'labels twice', {
        'images.idx': images,
        'labels.idx': concat(idxHeader(8, [6]), new Uint8Array([0, 1, 2, 0, 1, 2])),
      }),
    ),
    fc.constant(
      fuzzCase('duplicated', 'images twice', {
        'images.idx': concat(idxHeader(8, [6, 4, 4]), images.slice(16), images.slice(16)),
        'labels.idx': labels,
      }),
    ),
    // Over the bound, plain or as a gzip bomb, and gzip that is corrupt.
    fc
      .integer({ min: IDX_MAX + 1, max: IDX_MAX * 4 })
      .map((n) =>
        withImages(
          fuzzCase('oversized', `${n} bytes`, concat(idxHeader(8, [1, 1, n - 16]), new Uint8Array(n - 16))),
        ),
      ),
    fc
      .integer({ min: IDX_MAX + 1, max: IDX_MAX * 64 })
      .map((n) =>
        withImages(
          fuzzCase('oversized', `gzip inflating to ${n} bytes`, new Uint8Array(gzipSync(new Uint8Array(n)))),
        ),
      ),
    fc
      .integer({ min: 10, max: 30 })
      .map((k) =>
        withImages(
          fuzzCase('truncated', `gzip cut at ${k} bytes`, new Uint8Array(gzipSync(images)).slice(0, k)),
        ),
      ),
  );
  return fileEdge('file:idx', {
    valid: () => valid,
    cases: () => cases,
    read: (dir) => loadIdxDataset(join(dir, 'images.idx'), join(dir, 'labels.idx'), { maxBytes: IDX_MAX }),
  });
}

// ---------------------------------------------------------------------------------------------------------------
// CSV against a tabular schema

const TABLE_SCHEMA: TabularSchema = {
  kind: 'tabular',
  columns: [
    { name: 'id', type: 'ignore' },
    { name: 'age', type: 'numeric', transform: 'standardize', missing: 'mean' },
    { name: 'weight', type: 'numeric', transform: 'range', range: [0, 200], missing: 'refuse' },
    { name: 'city', type: 'categorical', categories: null, maxCategories: 4, missing: 'other' },
    { name: 'outcome', type: 'ignore' },
    { name: 'sex', type: 'categorical', categories: ['F', 'M'], maxCategories: 2, missing: 'refuse' },
  ],
  label: { column: 'outcome', classes: ['no', 'yes'] },
  holdout: 0,
};
const CSV_MAX = 16 * 1024;

export function csvEdge(): Edge<Files> {
  const header = 'id,age,weight,city,outcome,sex';
  const rows = ['1,30,70,Paris,yes,F', '2,NA,80,"Lyon, 2e",no,M', '3,41,65.5,Nice,yes,F'];
  const text = `${[header, ...rows].join('\n')}\n`;
  const file = (t: string | Uint8Array): Files => ({ 'data.csv': t });
  // Cutting right after a comma leaves a last row with too few cells, or an empty `sex`, which the schema refuses.
  const commas = [...text.matchAll(/,/g)].map((m) => m.index!).filter((i) => i > header.length);
  const cell = (row: number, col: number, value: string) => {
    const lines = [header, ...rows];
    const cells = lines[row]!.split(',');
    cells[col] = value;
    lines[row] = cells.join(',');
    return `${lines.join('\n')}\n`;
  };
  const cases: fc.Arbitrary<FuzzCase<Files>> = fc.oneof(
    fc
      .constantFrom(...commas)
      .map((i) => fuzzCase('truncated', `cut after byte ${i}`, file(text.slice(0, i + 1)))),
    fc
      .integer({ min: 0, max: header.length - 1 })
      .map((k) => fuzzCase('truncated', `header cut at ${k}`, file(text.slice(0, k)))),
    fc.constant(fuzzCase('malformed', 'unterminated quote', file(`${text}4,1,2,"Paris,yes,F\n`))),
    // A quote inside a bare cell is kept as a character (delimited.ts), so it is noise, not a mistake.
    fc.constant(
      fuzzCase('malformed', 'a quote inside a bare cell', file(`${text}4,1,2,Pa"ris,yes,F\n`), false),
    ),
    fc
      .constantFrom('abc', '1e999', '--3', '0x10', '   ', 'Infinity', '-Infinity')
      .map((v) => fuzzCase('malformed', `weight "${v}"`, file(cell(1, 2, v)))),
    fc
      .constantFrom('maybe', 'YES', '', 'no ')
      .map((v) => fuzzCase('malformed', `label "${v}"`, file(cell(2, 4, v)))),
    // An unknown category goes to the "other" slot by design; only a missing one is refused here.
    fc.constant(fuzzCase('malformed', 'sex ""', file(cell(3, 5, '')))),
    fc.constant(
      fuzzCase(
        'malformed',
        'an extra column',
        file(`${header},secret\n${rows.map((r) => `${r},1`).join('\n')}\n`),
      ),
    ),
    fc.constant(fuzzCase('malformed', 'a row with an extra cell', file(`${text}4,1,2,Nice,yes,F,extra\n`))),
    fc.constant(
      fuzzCase(
        'duplicated',
        'a column twice',
        file(`${header},age\n${rows.map((r) => `${r},1`).join('\n')}\n`),
      ),
    ),
    fc.constant(fuzzCase('duplicated', 'the header again as a row', file(`${text}${header}\n`))),
    fc
      .uint8Array({ minLength: 1, maxLength: 8 })
      .map((b) =>
        fuzzCase(
          'malformed',
          'bytes that are not UTF-8',
          file(concat(new TextEncoder().encode(text), new Uint8Array([0xc3, 0x28, 0xff]), b)),
        ),
      ),
    fc.constant(fuzzCase('malformed', 'a NUL in a cell', file(cell(1, 3, 'Par\u0000is')), false)),
    fc
      .integer({ min: CSV_MAX + 1, max: CSV_MAX * 4 })
      .map((n) =>
        fuzzCase(
          'oversized',
          `${n} bytes`,
          file(`${header}\n${'1,2,3,Nice,yes,F\n'.repeat(Math.ceil(n / 17))}`),
        ),
      ),
    fc.constant(fuzzCase('truncated', 'empty file', file(''))),
    fc.string({ maxLength: 200 }).map((s) => fuzzCase('malformed', 'noise', file(s), false)),
  );
  return fileEdge('file:csv', {
    valid: () => file(text),
    cases: () => cases,
    read: (dir) => loadTable(join(dir, 'data.csv'), TABLE_SCHEMA, { maxBytes: CSV_MAX }),
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Image folders

const IMAGE_SCHEMA: ImageSchema = {
  kind: 'images',
  inputShape: [4, 4, 1],
  classes: ['cat', 'dog'],
  holdout: 0,
};

export function imageEdge(): Edge<Files> {
  let png = new Uint8Array();
  let jpeg = new Uint8Array();
  let bigPng = new Uint8Array();
  const base = () => ({ 'cat/a.png': png, 'dog/b.jpg': jpeg });
  return fileEdge('file:images', {
    valid: base,
    // The images are made in setup (sharp is async): the cases are built after it.
    cases: () =>
      fc.oneof(
        fc.constant(fuzzCase('malformed', 'text saved as .png', { ...base(), 'cat/x.png': 'not an image' })),
        fc.integer({ min: 0, max: png.byteLength - 1 }).map((k) =>
          // Cut inside the IEND trailer only, every pixel is still there: libpng reads it, and that is fine.
          fuzzCase(
            'truncated',
            `a PNG cut at ${k} bytes`,
            { ...base(), 'cat/x.png': png.slice(0, k) },
            k < png.byteLength - 12,
          ),
        ),
        fc.constant(fuzzCase('malformed', 'a folder that is not a class', { ...base(), 'bird/c.png': png })),
        fc.constant(fuzzCase('malformed', 'a file beside the class folders', { ...base(), 'c.png': png })),
        fc.constant(fuzzCase('malformed', 'a .txt in a class folder', { ...base(), 'cat/c.txt': png })),
        fc.constant(
          fuzzCase('malformed', 'a folder in a class folder', { ...base(), 'cat/deeper/c.png': png }),
        ),
        fc.constant(
          fuzzCase('malformed', 'SVG named .png', {
            ...base(),
            'cat/c.png': '<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>',
          }),
        ),
        fc.constant(
          fuzzCase('malformed', 'GIF named .png', {
            ...base(),
            'cat/c.png': Buffer.from('R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7', 'base64'),
          }),
        ),
        fc.constant(fuzzCase('oversized', 'a PNG over maxPixels', { ...base(), 'cat/c.png': bigPng })),
        fc
          .uint8Array({ maxLength: 128 })
          .map((b) => fuzzCase('malformed', 'random bytes as .jpg', { ...base(), 'dog/c.jpg': b }, false)),
      ),
    read: (dir) => readImageFolder(dir, IMAGE_SCHEMA, { maxPixels: 64 * 64, concurrency: 2 }),
    async setup() {
      const sharp = (await import('sharp')).default;
      const raw = { raw: { width: 4, height: 4, channels: 3 as const } };
      png = new Uint8Array(await sharp(Buffer.alloc(48, 7), raw).png().toBuffer());
      jpeg = new Uint8Array(await sharp(Buffer.alloc(48, 9), raw).jpeg().toBuffer());
      bigPng = new Uint8Array(
        await sharp({ create: { width: 100, height: 100, channels: 3, background: '#000' } })
          .png()
          .toBuffer(),
      );
    },
  });
}

// ---------------------------------------------------------------------------------------------------------------
// model.json

export function modelJsonEdge(): Edge<Files> {
  const weights = new Uint8Array(new Float32Array([0.5, -1, 2, 0, 1, 1]).buffer);
  const model: Json = {
    format: 'layers-model',
    modelTopology: {
      class_name: 'Sequential',
      config: {
        name: 'tiny',
        layers: [
          {
            class_name: 'Dense',
            config: { name: 'd', units: 2, batch_input_shape: [null, 2], activation: 'softmax' },
          },
        ],
      },
    },
    weightsManifest: [
      {
        paths: ['w.bin'],
        weights: [
          { name: 'd/kernel', shape: [2, 2], dtype: 'float32' },
          { name: 'd/bias', shape: [2], dtype: 'float32' },
        ],
      },
    ],
  };
  const files = (m: string | Uint8Array, w: Uint8Array = weights): Files => ({ 'model.json': m, 'w.bin': w });
  const manifest = (edit: (g: Record<string, Json>) => void) => {
    const m = structuredClone(model) as { weightsManifest: Record<string, Json>[] };
    edit(m.weightsManifest[0]!);
    return JSON.stringify(m);
  };
  const cases: fc.Arbitrary<FuzzCase<Files>> = fc.oneof(
    // The reader checks the topology's outer shape and the manifest; the layers are tfjs's to judge later.
    jsonCases(model, {
      looseTypes: (p) => p[0] === 'format' || (p[0] === 'modelTopology' && p[1] === 'config' && p.length > 2),
      optional: (p) =>
        p[0] === 'format' || p[0] === 'weightsManifest' || (p[0] === 'modelTopology' && p.length > 2),
      oversized: fc.integer({ min: 4 * 1024 * 1024 + 1, max: 5 * 1024 * 1024 }).map((n) => ({
        label: `${n}-character model.json`,
        json: `${JSON.stringify(model)}${' '.repeat(n)}`,
      })),
    })
      .filter((c) => !/^weightsManifest\.0\.weights\.\d+\.dtype deleted$/.test(c.label))
      .map((c) => {
        // weightsManifest = null means "no weights": the same as leaving it out.
        // A dtype of null reads as absent (float32), as tfjs reads it.
        const stillValid = /^weightsManifest = null$|\.dtype = null$/.test(c.label);
        return { ...c, input: files(c.input), mustRefuse: c.mustRefuse && !stillValid };
      }),
    fc
      .constantFrom('../w.bin', '/etc/passwd', '..', 'sub/../../w.bin')
      .map((p) => fuzzCase('malformed', `weight path ${p}`, files(manifest((g) => (g.paths = [p]))))),
    fc.constant(
      fuzzCase('malformed', 'a missing weights file', files(manifest((g) => (g.paths = ['gone.bin'])))),
    ),
    fc
      .integer({ min: 0, max: weights.byteLength - 1 })
      .map((k) =>
        fuzzCase('truncated', `weights cut at ${k} bytes`, files(JSON.stringify(model), weights.slice(0, k))),
      ),
    fc.constant(
      fuzzCase(
        'oversized',
        'weights 4 bytes too many',
        files(JSON.stringify(model), concat(weights, new Uint8Array(4))),
      ),
    ),
    fc.constant(
      fuzzCase(
        'duplicated',
        'the weights file named twice',
        files(manifest((g) => (g.paths = ['w.bin', 'w.bin']))),
      ),
    ),
    fc
      .constantFrom('int32', 'float16', 'string', 'bool')
      .map((d) =>
        fuzzCase(
          'malformed',
          `dtype ${d}`,
          files(manifest((g) => ((g.weights as Record<string, Json>[])[1]!.dtype = d))),
        ),
      ),
    fc
      .constantFrom<Json>([-1], [1.5], [2 ** 60], ['2'], [null])
      .map((s) =>
        fuzzCase(
          'malformed',
          `shape ${JSON.stringify(s)}`,
          files(manifest((g) => ((g.weights as Record<string, Json>[])[1]!.shape = s))),
        ),
      ),
  );
  return fileEdge('file:model.json', {
    valid: () => files(JSON.stringify(model)),
    cases: () => cases,
    read: (dir) => readModelJson(join(dir, 'model.json')),
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Key files

export function keyFileEdge(): Edge<Files> {
  let valid: Json = {};
  let other: Json = {};
  const seed = (label: string) => new Uint8Array(createHash('sha256').update(label).digest());
  const keyFile = (label: string): Json => {
    const sr = seed(`${label}/sr`);
    const x = seed(`${label}/x`);
    const a = accountFromSeeds(sr, x);
    return {
      kind: 'ailink-account',
      version: 1,
      address: a.address,
      sr25519Seed: toHex(sr),
      x25519PrivateKey: toHex(x),
      readerKey: a.readerKey,
    };
  };
  const file = (t: string | Uint8Array, mode = 0o600): Files => ({ 'key.json': { data: t, mode } });
  return fileEdge('file:key', {
    valid: () => file(JSON.stringify(valid)),
    // Accounts need the sr25519 wasm (accountsReady in setup) first.
    cases: () =>
      fc.oneof(
        jsonCases(valid, {
          strictObjects: () => false,
          oversized: fc.integer({ min: 1 << 20, max: 4 << 20 }).map((n) => ({
            label: `a ${n}-character address`,
            json: { ...(valid as object), address: 'x'.repeat(n) },
          })),
        }).map((c) => ({ ...c, input: file(c.input) })),
        fc
          .constantFrom(0o644, 0o640, 0o604, 0o666)
          .map((m) => fuzzCase('malformed', `mode ${m.toString(8)}`, file(JSON.stringify(valid), m))),
        // Another account's field: the file no longer agrees with its own seeds.
        fc
          .constantFrom('address', 'readerKey', 'sr25519Seed', 'x25519PrivateKey')
          .map((f) =>
            fuzzCase(
              'wrongly-signed',
              `${f} of another account`,
              file(JSON.stringify({ ...(valid as object), [f]: (other as Record<string, Json>)[f]! })),
            ),
          ),
      ),
    read: (dir) => loadKeyFile(join(dir, 'key.json')),
    async setup() {
      await accountsReady();
      valid = keyFile('fuzz/key');
      other = keyFile('fuzz/other');
    },
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Role configs, protocol.json, network.json

const strictEverywhere = () => true;

export function roleConfigEdge(): Edge<Files> {
  const valid: Json = {
    chain: 'ws://127.0.0.1:9944',
    'data-dir': './coordinator',
    'http-port': 8700,
    'p2p-port': 8701,
    key: './coordinator.key',
  };
  const cases = jsonCases(valid, {
    strictObjects: strictEverywhere,
    optional: () => true,
    oversized: fc.integer({ min: 4097, max: 100_000 }).map((n) => ({
      label: `a ${n}-character data-dir`,
      json: { ...(valid as object), 'data-dir': 'd'.repeat(n) },
    })),
  });
  const extra: fc.Arbitrary<FuzzCase<string | Uint8Array>> = fc.oneof(
    fc
      .constantFrom(-1, 65_536, 1.5, 1e308)
      .map((p) =>
        fuzzCase('malformed', `http-port ${p}`, JSON.stringify({ ...(valid as object), 'http-port': p })),
      ),
    fc
      .constantFrom('http://x', 'ws://', 'ws://a b', '')
      .map((c) => fuzzCase('malformed', `chain ${c}`, JSON.stringify({ ...(valid as object), chain: c }))),
  );
  return fileEdge('file:config', {
    valid: () => ({ 'coordinator.json': JSON.stringify(valid) }),
    cases: () => asFile('coordinator.json', fc.oneof(cases, extra)),
    read: async (dir) => withConfigFile('coordinator', join(dir, 'coordinator.json'), {}),
  });
}

/** Protocol keys a configuration may leave out (the parser fills them in), so dropping one is no fault. */
const PROTOCOL_DEFAULTED_KEYS = new Set([
  'spacePrice',
  'requestExpiryBlocks',
  'verifiers',
  'challengePeriodBlocks',
  'tagDeadlineBlocks',
  'idleRounds',
]);

export function protocolEdge(): Edge<Files> {
  const valid = protocolConfigToJson({ ...DEV_PROTOCOL_CONFIG, audit: { ...CESS_AUDIT } }) as unknown as Json;
  const defaults = PROTOCOL_DEFAULTED_KEYS;
  const cases = jsonCases(valid, {
    strictObjects: strictEverywhere,
    optional: (p: JsonPath) => defaults.has(String(p[p.length - 1])),
    oversized: fc.integer({ min: 257, max: 2000 }).map((n) => ({
      label: `${n} verifiers`,
      json: { ...(valid as object), verifiers: Array.from({ length: n }, () => DEV_PROTOCOL_CONFIG.pot) },
    })),
  });
  const extra = fc.oneof(
    fc.constant(
      fuzzCase(
        'duplicated',
        'a verifier twice',
        JSON.stringify({
          ...(valid as object),
          verifiers: [DEV_PROTOCOL_CONFIG.pot, DEV_PROTOCOL_CONFIG.pot],
        }),
      ),
    ),
    fc
      .constantFrom('-1', '01', '1.5', '1e3', '9'.repeat(40))
      .map((a) =>
        fuzzCase(
          'malformed',
          `minCollateral ${a}`,
          JSON.stringify({ ...(valid as object), minCollateral: a }),
        ),
      ),
    fc.constantFrom(0, 3, 6, -2).map((n) =>
      fuzzCase(
        'malformed',
        `idleNodes ${n}`,
        JSON.stringify({
          ...(valid as object),
          audit: { ...CESS_AUDIT, proofs: { ...CESS_AUDIT.proofs, idleNodes: n } },
        }),
      ),
    ),
  );
  return fileEdge('file:protocol.json', {
    valid: () => ({ 'protocol.json': JSON.stringify(valid) }),
    cases: () => asFile('protocol.json', fc.oneof(cases, extra)),
    read: async (dir) => readProtocolConfig(join(dir, 'protocol.json')),
  });
}

export function networkEdge(): Edge<Files> {
  const valid: Json = {
    version: 1,
    profile: 'test',
    chain: {
      endpoint: 'ws://127.0.0.1:9944',
      protocol: protocolConfigToJson({ ...DEV_PROTOCOL_CONFIG, audit: { ...CESS_AUDIT } }) as unknown as Json,
    },
    operatorKey: 'operator.key',
    processes: [
      {
        role: 'miner',
        name: 'miner-0',
        pid: 1234,
        peerId: '12D3KooW',
        addrs: ['/ip4/127.0.0.1/tcp/4001'],
        dataDir: 'miner-0',
      },
    ],
  };
  const defaults = PROTOCOL_DEFAULTED_KEYS;
  const cases = jsonCases(valid, {
    // network.json's outer objects take unknown keys (the file may grow); the protocol inside is strict.
    strictObjects: (p) => p[0] === 'chain' && p[1] === 'protocol',
    optional: (p) => defaults.has(String(p[p.length - 1])) || (p[0] === 'processes' && p.length === 2),
  });
  const extra = fc.oneof(
    fc.constantFrom(0, -5, 1.5).map((pid) =>
      fuzzCase(
        'malformed',
        `pid ${pid}`,
        JSON.stringify({
          ...(valid as object),
          processes: [{ ...(valid as { processes: object[] }).processes[0], pid }],
        }),
      ),
    ),
    fc.constantFrom('http://x', 'ws:/x', '').map((e) =>
      fuzzCase(
        'malformed',
        `endpoint ${e}`,
        JSON.stringify({
          ...(valid as object),
          chain: { ...(valid as { chain: object }).chain, endpoint: e },
        }),
      ),
    ),
    fc
      .constantFrom(2, 0, '1')
      .map((v) =>
        fuzzCase('malformed', `version ${v}`, JSON.stringify({ ...(valid as object), version: v })),
      ),
  );
  return fileEdge('file:network.json', {
    valid: () => ({ 'network.json': JSON.stringify(valid) }),
    cases: () => asFile('network.json', fc.oneof(cases, extra)),
    read: async (dir) => loadNetworkFile(join(dir, 'network.json')),
  });
}

export const fileEdges = (): Edge<Files>[] => [
  idxEdge(),
  csvEdge(),
  imageEdge(),
  modelJsonEdge(),
  keyFileEdge(),
  roleConfigEdge(),
  protocolEdge(),
  networkEdge(),
];
