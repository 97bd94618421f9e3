import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { accountFromSeeds, accountsReady } from '../../src/shared/account.ts';
import { canonicalJson } from '../../src/shared/canonical.ts';
import {
  type AggregationMaterial,
  aggregationMaterialBytes,
  aggregationMaterialStream,
  parseAggregationMaterial,
} from '../../src/task/index.ts';

await accountsReady();
const seed = (s: string) => new Uint8Array(createHash('sha256').update(s).digest());
const alice = accountFromSeeds(seed('sr/a'), seed('x/a')).address;
const bob = accountFromSeeds(seed('sr/b'), seed('x/b')).address;

const material: AggregationMaterial = {
  context: 'task-1/0/0',
  adverts: [{ from: alice }],
  shares: [],
  consistency: [],
  unmask: [{ from: bob }],
  masked: [
    { account: alice, update: new Uint8Array([1, 2, 3]) },
    { account: bob, update: new Uint8Array([]) },
  ],
};

const collect = async (it: AsyncIterable<Uint8Array>) => {
  const chunks: Uint8Array[] = [];
  for await (const c of it) chunks.push(c);
  return new Uint8Array(Buffer.concat(chunks));
};
const code = (f: () => unknown) => {
  try {
    f();
    return 'none';
  } catch (err) {
    return (err as { code?: string }).code;
  }
};

describe('recompute material, format 2', () => {
  it('test vector: AILKMAT2 ‖ u32 BE header length ‖ canonical JSON header ‖ the updates raw, in the header order', () => {
    const bytes = aggregationMaterialBytes(material);
    const header = canonicalJson({
      version: 2,
      context: 'task-1/0/0',
      adverts: [{ from: alice }],
      shares: [],
      consistency: [],
      unmask: [{ from: bob }],
      masked: [
        { account: alice, bytes: 3 },
        { account: bob, bytes: 0 },
      ],
    });
    const length = Buffer.byteLength(header);
    expect(Buffer.from(bytes.subarray(0, 8)).toString()).toBe('AILKMAT2');
    expect(Buffer.from(bytes.subarray(8, 12)).readUInt32BE(0)).toBe(length);
    expect(Buffer.from(bytes.subarray(12, 12 + length)).toString()).toBe(header);
    expect([...bytes.subarray(12 + length)]).toEqual([1, 2, 3]);
    expect(bytes.byteLength).toBe(12 + length + 3);
  });

  it('the stream the coordinator stores is the same bytes, and reading them back gives the material', async () => {
    const stream = aggregationMaterialStream(
      material,
      material.masked.map((e) => ({
        account: e.account,
        bytes: e.update.byteLength,
        read: () => [e.update],
      })),
    );
    const streamed = await collect(stream.chunks);
    expect(Buffer.from(streamed)).toEqual(Buffer.from(aggregationMaterialBytes(material)));
    expect(stream.size).toBe(streamed.byteLength);
    const back = parseAggregationMaterial(streamed);
    expect(back.masked.map((e) => [e.account, [...e.update]])).toEqual([
      [alice, [1, 2, 3]],
      [bob, []],
    ]);
    expect({ ...back, masked: [] }).toEqual({ ...material, masked: [] });
  });

  it('a spooled update of another length than declared fails the stream (INTERNAL), it does not store a corrupt object', async () => {
    const stream = aggregationMaterialStream(material, [
      { account: alice, bytes: 4, read: () => [new Uint8Array(3)] },
    ]);
    await expect(collect(stream.chunks)).rejects.toMatchObject({ code: 'INTERNAL' });
  });

  it('format 1 (base64 JSON, rounds anchored before) still reads', () => {
    const v1 = new TextEncoder().encode(
      canonicalJson({
        version: 1,
        context: 'task-1/0/0',
        adverts: [],
        shares: [],
        masked: [{ account: alice, update: Buffer.from([9, 8]).toString('base64') }],
        consistency: [],
        unmask: [],
      }),
    );
    const m = parseAggregationMaterial(v1);
    expect(m.masked.map((e) => [e.account, [...e.update]])).toEqual([[alice, [9, 8]]]);
  });

  it('property: any cut or extension of the bytes is ROUND_MESSAGE_INVALID, never a material with other updates', () => {
    const bytes = aggregationMaterialBytes(material);
    fc.assert(
      fc.property(
        fc.oneof(
          fc.integer({ min: 0, max: bytes.byteLength - 1 }).map((n) => bytes.subarray(0, n)),
          fc.uint8Array({ minLength: 1, maxLength: 8 }).map((tail) => new Uint8Array([...bytes, ...tail])),
        ),
        (changed) => {
          expect(code(() => parseAggregationMaterial(changed))).toBe('ROUND_MESSAGE_INVALID');
        },
      ),
      { numRuns: 300 },
    );
  });

  it('a header claiming more bytes than the object has, or an update past the end, is refused by name', () => {
    const bytes = Buffer.from(aggregationMaterialBytes(material));
    const long = Buffer.from(bytes);
    long.writeUInt32BE(0xffffffff, 8);
    expect(() => parseAggregationMaterial(long)).toThrow(/header length 4294967295 out of range/);
    expect(() => parseAggregationMaterial(bytes.subarray(0, bytes.byteLength - 1))).toThrow(
      /runs past the end/,
    );
    expect(() => parseAggregationMaterial(new TextEncoder().encode('not json'))).toThrow(/AILKMAT2/);
  });
});
