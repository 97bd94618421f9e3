import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { signingKeyPair } from '../../src/aggregation/index.ts';
import { CALL_SCHEMAS, MAX_TERMS_READERS } from '../../src/chain/index.ts';
import { accountsReady } from '../../src/shared/account.ts';
import { canonicalJson } from '../../src/shared/canonical.ts';
import { hasCode } from '../../src/shared/errors.ts';
import {
  AggregationMaterialV1Schema,
  decodeModelBytes,
  decodeStoredUpdate,
  encodeModelBytes,
  encodeStoredUpdate,
  modelAccessOf,
  modelBytesMaxBytes,
  modelBytesStream,
  modelHashOf,
  parseRequest,
  parseTaskSpec,
  readModelStream,
  readStoredUpdateHeader,
  readStoredUpdateStream,
  roundContext,
  type StoredUpdate,
  secAggShape,
  sha256Hex,
  signCommitment,
  storedUpdateMaxBytes,
  storedUpdateStream,
  taskDigest,
  taskIdOf,
  verifyCommitment,
} from '../../src/task/index.ts';
import { verifyCommitment as verifyCommitmentDirect } from '../../src/task/messages.ts';
import { makeAccount } from '../coordinator/harness.ts';
import { specInput } from './spec-fixture.ts';

await accountsReady();
const random = (n: number) => new Uint8Array(randomBytes(n));
const alice = makeAccount('alice').address;

const spec = () => parseTaskSpec(specInput(alice));

const codeOf = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    return hasCode(e) ? e.code : 'other';
  }
  return 'none';
};

describe('task spec', () => {
  it('has a digest independent of key order and an id made of the name and the digest', () => {
    const s = spec();
    const reordered = JSON.parse(canonicalJson(s)) as typeof s;
    expect(taskDigest(reordered)).toBe(taskDigest(s));
    expect(taskIdOf(s)).toBe(`fashion-mnist-cnn-${taskDigest(s).slice(0, 12)}`);
  });

  it.each([
    [{ cohort: { size: 2, min: 3 } }, 'cohort'],
    [{ secagg: { enabled: true, neighbours: 3, threshold: 2, range: 1, bits: 24, maxWeight: 1 } }, 'even'],
    [{ admitted: [alice, alice] }, 'twice'],
    [{ admitted: ['not-an-address'] }, 'admitted.0'],
    [{ rounds: 0 }, 'rounds'],
    [{ extra: true }, 'extra'],
    [{ models: { readers: ['not-an-address'], price: null } }, 'models.readers.0'],
    [{ models: { readers: [alice, alice], price: null } }, 'models.readers lists an account twice'],
    [{ models: { readers: [], price: '-1' } }, 'models.price'],
    [{ models: { readers: [], price: '01' } }, 'models.price'],
    [{ models: { readers: [], price: 1000 } }, 'models.price'],
    [{ models: { readers: [] } }, 'models.price'],
    [{ models: { readers: [], price: null, extra: 1 } }, 'models'],
  ])('refuses %j naming the field', (patch, needle) => {
    let error: unknown;
    try {
      parseTaskSpec({ ...spec(), ...patch });
    } catch (e) {
      error = e;
    }
    expect(hasCode(error, 'INVALID_INPUT')).toBe(true);
    expect((error as Error).message).toContain(needle);
  });

  it('models: absent or null means public models; terms parse; a spec without the field keeps its digest', () => {
    const s = spec();
    expect(s.models).toBeUndefined();
    expect(modelAccessOf(s)).toBeNull();
    // Absent: the canonical JSON (hence the digest recorded on chain for older tasks) has no models key.
    expect(canonicalJson(s)).not.toContain('models');
    expect(modelAccessOf(parseTaskSpec({ ...s, models: null }))).toBeNull();
    const terms = { readers: [alice], price: '1000000' };
    const priv = parseTaskSpec({ ...s, models: terms });
    expect(modelAccessOf(priv)).toEqual(terms);
    expect(modelAccessOf(parseTaskSpec({ ...s, models: { readers: [], price: null } }))).toEqual({
      readers: [],
      price: null,
    });
    // The terms are part of what the chain records.
    expect(taskDigest(priv)).not.toBe(taskDigest(s));
    expect(
      codeOf(() => parseTaskSpec({ ...s, models: { readers: Array(1025).fill(alice), price: null } })),
    ).toBe('INVALID_INPUT');
  });

  it('property: recompute material takes as base64 exactly what /^[A-Za-z0-9+/]*={0,2}$/ takes (its faster check)', () => {
    const update = AggregationMaterialV1Schema.shape.masked.element.shape.update;
    const pattern = /^[A-Za-z0-9+/]*={0,2}$/;
    const char = fc.constantFrom(...'Az09+/=-_ .\n'.split(''));
    fc.assert(
      fc.property(
        fc.array(char, { maxLength: 12 }).map((cs) => cs.join('')),
        (text) => {
          expect(update.safeParse(text).success, JSON.stringify(text)).toBe(pattern.test(text));
        },
      ),
      { numRuns: 5000, seed: 19 },
    );
  });

  it('a task accepts no more model readers than one market.setTerms call carries', () => {
    // Every private model is put under the spec's terms by `market.setTerms`: a spec the chain's call refuses would
    // pass task creation and then fail every round at storing its model.
    const readers = Array.from(
      { length: MAX_TERMS_READERS + 1 },
      () => makeAccount(randomBytes(8).toString('hex')).address,
    );
    const setTerms = CALL_SCHEMAS['market.setTerms'];
    const fid = 'a'.repeat(64);
    expect(setTerms.safeParse({ fid, readers: readers.slice(0, -1), price: null }).success).toBe(true);
    expect(setTerms.safeParse({ fid, readers, price: null }).success).toBe(false);
    expect(
      modelAccessOf(parseTaskSpec({ ...spec(), models: { readers: readers.slice(0, -1), price: null } })),
    ).not.toBeNull();
    expect(codeOf(() => parseTaskSpec({ ...spec(), models: { readers, price: null } }))).toBe(
      'INVALID_INPUT',
    );
  });

  it('caps the SecAgg graph to the cohort: k even and below n, k/2 < t ≤ k', () => {
    fc.assert(
      fc.property(fc.integer({ min: 3, max: 200 }), fc.integer({ min: 1, max: 50 }), (n, half) => {
        const s = { ...spec(), secagg: { ...spec().secagg, neighbours: 2 * half, threshold: half + 1 } };
        const { k, t } = secAggShape(s, n);
        return k % 2 === 0 && k < n && t > k / 2 && t <= k;
      }),
    );
  });
});

describe('commitments', () => {
  it('a commitment binds fid, digest, dataset fingerprint and round context', () => {
    const id = signingKeyPair(random);
    const c = signCommitment(id.privateKey, 't/1/0', {
      fid: 'aa'.repeat(32),
      digest: 'bb'.repeat(32),
      dataset: 'dd'.repeat(32),
    });
    expect(verifyCommitment(id.publicKey, 't/1/0', c)).toBe(true);
    expect(verifyCommitmentDirect(id.publicKey, 't/0/0', c)).toBe(false); // replayed from another round
    expect(verifyCommitment(id.publicKey, 't/1/0', { ...c, fid: 'cc'.repeat(32) })).toBe(false);
    expect(verifyCommitment(id.publicKey, 't/1/0', { ...c, digest: 'cc'.repeat(32) })).toBe(false);
    expect(verifyCommitment(id.publicKey, 't/1/0', { ...c, dataset: 'cc'.repeat(32) })).toBe(false);
  });

  it('round requests are validated at the edge', () => {
    expect(codeOf(() => parseRequest({ kind: 'submit', stage: 'masked' }))).toBe('ROUND_MESSAGE_INVALID');
    expect(codeOf(() => parseRequest({ kind: 'view', task: 'x', from: alice, extra: 1 }))).toBe(
      'ROUND_MESSAGE_INVALID',
    );
    expect(parseRequest({ kind: 'view', task: 'x', from: alice }).kind).toBe('view');
  });
});

describe('stored updates and models (formats)', () => {
  it('an update round-trips; its size is 1.0× a float32 vector plus a small header', () => {
    fc.assert(
      fc.property(fc.uint32Array({ minLength: 1, maxLength: 300 }), (words) => {
        const u = { context: 't/0/0', from: alice, signature: random(64), words };
        const bytes = encodeStoredUpdate(u);
        const back = decodeStoredUpdate(bytes, words.length);
        return back.words.every((w, i) => w === words[i]) && bytes.byteLength - 4 * words.length < 300;
      }),
    );
  });

  it('an update: a fixed vector', () => {
    const bytes = encodeStoredUpdate({
      context: 'c',
      from: alice,
      signature: null,
      words: Uint32Array.of(1, 0xdeadbeef),
    });
    const header = `{"context":"c","from":"${alice}","signature":null,"words":2}`;
    expect(Buffer.from(bytes).toString('hex')).toBe(
      `41494c55${Buffer.from(Uint32Array.of(header.length).buffer).toString('hex')}${Buffer.from(header).toString('hex')}01000000efbeadde`,
    );
  });

  it('streamed, an update is the same bytes in chunks of at most 4 MiB that view the words (no copy)', () => {
    const words = new Uint32Array(2 * 1024 * 1024 + 3).map((_, i) => i * 2654435761);
    const u = { context: 't/0/0', from: alice, signature: random(64), words };
    const { size, chunks: stream } = storedUpdateStream(u);
    const chunks = [...stream];
    expect(size).toBe(encodeStoredUpdate(u).byteLength);
    expect(chunks.map((c) => c.byteLength).slice(1)).toEqual([4 * 1024 * 1024, 4 * 1024 * 1024, 12]);
    expect(Buffer.concat(chunks).equals(Buffer.from(encodeStoredUpdate(u)))).toBe(true);
    for (const c of chunks.slice(1)) expect(c.buffer).toBe(words.buffer);
    fc.assert(
      fc.property(fc.uint32Array({ minLength: 0, maxLength: 300 }), fc.boolean(), (w, signed) => {
        const v = { context: 'c', from: alice, signature: signed ? random(64) : null, words: w };
        const { size, chunks } = storedUpdateStream(v);
        const bytes = Buffer.concat([...chunks]);
        return bytes.equals(Buffer.from(encodeStoredUpdate(v))) && size === bytes.byteLength;
      }),
    );
  });

  it('every update a round can hold fits the bound a reader fetches at most (storedUpdateMaxBytes)', () => {
    fc.assert(
      fc.property(
        fc.uint32Array({ minLength: 1, maxLength: 300 }),
        // The longest context: a 64-char task id, round and attempt at their largest.
        fc.tuple(fc.stringMatching(/^[A-Za-z0-9._-]{1,64}$/), fc.nat(), fc.nat()),
        fc.boolean(),
        (words, [task, round, attempt], signed) => {
          const u = { context: roundContext(task, round, attempt), from: alice, words };
          const bytes = encodeStoredUpdate({ ...u, signature: signed ? random(64) : null });
          return bytes.byteLength <= storedUpdateMaxBytes(words.length);
        },
      ),
    );
    expect(storedUpdateMaxBytes(1000)).toBeLessThan(4 * 1000 + 8192);
  });

  it('every model a spec can name fits the bound a participant fetches at most (modelBytesMaxBytes)', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 128 }), fc.nat({ max: 5000 }), (name, parameters) => {
        const bytes = encodeModelBytes(name, new Float32Array(parameters));
        return bytes.byteLength <= modelBytesMaxBytes(parameters);
      }),
    );
  });

  it('refuses truncated, wrongly sized or foreign bytes', () => {
    const bytes = encodeStoredUpdate({
      context: 'c',
      from: alice,
      signature: null,
      words: new Uint32Array(10),
    });
    expect(codeOf(() => decodeStoredUpdate(bytes, 11))).toBe('ROUND_MESSAGE_INVALID');
    expect(codeOf(() => decodeStoredUpdate(bytes.subarray(0, bytes.length - 1), 10))).toBe(
      'ROUND_MESSAGE_INVALID',
    );
    expect(codeOf(() => decodeStoredUpdate(new TextEncoder().encode('AILM....'), 10))).toBe(
      'ROUND_MESSAGE_INVALID',
    );
    // Read from its beginning only (the coordinator's spool): the whole's length decides, as for the whole bytes.
    const prefix = bytes.subarray(0, bytes.length - 40);
    expect(readStoredUpdateHeader(prefix, 10, bytes.length)).toEqual(readStoredUpdateHeader(bytes, 10));
    expect(codeOf(() => readStoredUpdateHeader(prefix, 10, bytes.length - 1))).toBe('ROUND_MESSAGE_INVALID');
    expect(codeOf(() => readStoredUpdateHeader(prefix, 11, bytes.length))).toBe('ROUND_MESSAGE_INVALID');
    expect(codeOf(() => readStoredUpdateHeader(bytes.subarray(0, 12), 10, bytes.length))).toBe(
      'ROUND_MESSAGE_INVALID',
    );
  });

  it('read as a stream cut anywhere, an update is what decodeStoredUpdate reads, refused where it is refused', async () => {
    /** The outcome of a reader: the update's fields, or the error code. */
    const outcome = async (read: () => StoredUpdate | Promise<StoredUpdate>) => {
      try {
        const u = await read();
        return { ...u, words: [...u.words], signature: u.signature && toHexOf(u.signature) };
      } catch (err) {
        return hasCode(err) ? err.code : (err as Error).message;
      }
    };
    const toHexOf = (b: Uint8Array) => Buffer.from(b).toString('hex');
    await fc.assert(
      fc.asyncProperty(
        fc.uint32Array({ maxLength: 40 }),
        fc.boolean(),
        fc.integer({ min: -3, max: 3 }),
        // A change to the bytes: none, cut short, bytes added, or one byte of the frame or header flipped.
        fc.oneof(
          fc.constant({ kind: 'none' as const }),
          fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
          fc.record({ kind: fc.constant('extend' as const), by: fc.integer({ min: 1, max: 9 }) }),
          fc.record({ kind: fc.constant('flip' as const), at: fc.nat({ max: 40 }), bit: fc.nat({ max: 7 }) }),
        ),
        fc.array(fc.nat(), { maxLength: 6 }),
        async (words, signed, skew, change, cuts) => {
          const good = encodeStoredUpdate({
            context: 't/0/0',
            from: alice,
            signature: signed ? random(64) : null,
            words,
          });
          let bytes = Buffer.from(good);
          if (change.kind === 'cut') bytes = bytes.subarray(0, change.at % bytes.length);
          if (change.kind === 'extend') bytes = Buffer.concat([bytes, Buffer.alloc(change.by)]);
          if (change.kind === 'flip') bytes[change.at % bytes.length]! ^= 1 << change.bit;
          const expected = Math.max(0, words.length + skew);
          const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
          const pieces = [0, ...points].map((from, i) => bytes.subarray(from, [...points, bytes.length][i]));
          const stream = (async function* () {
            yield* pieces;
          })();
          expect(await outcome(() => readStoredUpdateStream(stream, new Uint32Array(expected)))).toEqual(
            await outcome(() => decodeStoredUpdate(bytes, expected)),
          );
        },
      ),
    );
  });

  it('streamed, a model is the same bytes in chunks of at most 4 MiB that view the weights, and hashes the same', () => {
    const weights = new Float32Array(1024 * 1024 + 5).map((_, i) => Math.sin(i));
    const { size, chunks: stream } = modelBytesStream('wide', weights);
    const chunks = [...stream];
    const whole = encodeModelBytes('wide', weights);
    expect(size).toBe(whole.byteLength);
    expect(chunks.map((c) => c.byteLength).slice(1)).toEqual([4 * 1024 * 1024, 20]);
    expect(Buffer.concat(chunks).equals(Buffer.from(whole))).toBe(true);
    for (const c of chunks.slice(1)) expect(c.buffer).toBe(weights.buffer);
    expect(modelHashOf('wide', weights)).toBe(sha256Hex(whole));
  });

  it('property: a model read as a stream, in any chunking, is the decoded model; anything else is MODEL_UNVERIFIED', async () => {
    const streamOf = (bytes: Uint8Array, cuts: number[]) =>
      (async function* () {
        let at = 0;
        for (const cut of [...cuts.map((c) => c % (bytes.byteLength + 1)), bytes.byteLength].sort(
          (a, b) => a - b,
        )) {
          yield bytes.subarray(at, cut);
          at = cut;
        }
      })();
    await fc.assert(
      fc.asyncProperty(
        fc.float32Array({ noNaN: true, minLength: 1, maxLength: 200 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        async (weights, cuts) => {
          const bytes = encodeModelBytes('mlp', weights);
          const expected = { model: 'mlp', parameters: weights.length };
          const read = await readModelStream(streamOf(bytes, cuts), expected, sha256Hex(bytes));
          expect(read).toEqual(decodeModelBytes(bytes).weights);
          const refused = async (b: Uint8Array, e = expected, hash = sha256Hex(b)) =>
            (await readModelStream(streamOf(b, cuts), e, hash).catch((err) => err))?.code;
          expect(await refused(bytes, expected, sha256Hex(bytes.subarray(1)))).toBe('MODEL_UNVERIFIED');
          expect(await refused(bytes.subarray(0, bytes.byteLength - 1))).toBe('MODEL_UNVERIFIED');
          expect(await refused(Uint8Array.from([...bytes, 0, 0, 0, 0]))).toBe('MODEL_UNVERIFIED');
          expect(await refused(bytes, { model: 'cnn', parameters: weights.length })).toBe('MODEL_UNVERIFIED');
          expect(await refused(bytes.subarray(0, 6))).toBe('MODEL_UNVERIFIED');
          expect(await refused(new TextEncoder().encode('AILU-not-a-model'))).toBe('MODEL_UNVERIFIED');
        },
      ),
      { numRuns: 60 },
    );
  });

  it('model bytes: a fixed vector, and shape checks', () => {
    const bytes = encodeModelBytes('mlp', Float32Array.of(1, -2.5, 0));
    // 'AILM' ‖ u32 LE header length ‖ {"model":"mlp","parameters":3} ‖ 3 × f32 LE
    expect(Buffer.from(bytes).toString('hex')).toBe(
      `41494c4d1e000000${Buffer.from('{"model":"mlp","parameters":3}').toString('hex')}0000803f000020c000000000`,
    );
    expect(sha256Hex(bytes)).toHaveLength(64);
    expect(decodeModelBytes(bytes).weights).toEqual(Float32Array.of(1, -2.5, 0));
    expect(codeOf(() => decodeModelBytes(bytes, { model: 'cnn', parameters: 3 }))).toBe('MODEL_UNVERIFIED');
    expect(codeOf(() => decodeModelBytes(bytes.subarray(0, 20)))).toBe('MODEL_UNVERIFIED');
  });
});
