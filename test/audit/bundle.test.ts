import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  BUNDLE_MAGIC,
  type BundleContent,
  encodeBundle,
  renderReport,
  verifyBundle,
} from '../../src/audit/index.ts';
import { DEV_PROTOCOL_CONFIG } from '../../src/chain/index.ts';
import { AilinkError } from '../../src/shared/errors.ts';

/**
 * The bundle's container on its own (the chain-side checks and the re-derived audit are exercised on a real task in
 * test/integration/audit-bundle.test.ts): deterministic bytes, the layout the format states, and bad input of any
 * shape answered with a named finding, never a throw.
 */

const GENESIS = `0x${'00'.repeat(31)}01`;
const hash = (n: number) => `0x${n.toString(16).padStart(64, '0')}`;

function content(objectOrder: 'ab' | 'ba'): BundleContent {
  const objects = new Map<string, Uint8Array | Error>(
    objectOrder === 'ab'
      ? [
          ['a'.repeat(64), new Uint8Array([1, 2, 3])],
          ['b'.repeat(64), new AilinkError('NOT_FOUND', 'NOT_FOUND: gone')],
        ]
      : [
          ['b'.repeat(64), new AilinkError('NOT_FOUND', 'NOT_FOUND: gone')],
          ['a'.repeat(64), new Uint8Array([1, 2, 3])],
        ],
  );
  return {
    task: 'vector-task',
    round: null,
    genesisHash: GENESIS,
    protocol: DEV_PROTOCOL_CONFIG,
    blocks: [
      {
        block: { number: 1, hash: hash(1), parentHash: GENESIS, timestamp: 0, extrinsics: [] },
        raw: { number: 1, hash: hash(1), header: new Uint8Array(100), extrinsics: [] },
      },
    ],
    objects,
    report: {
      task: 'vector-task',
      chain: null,
      spec: null,
      code: null,
      rounds: [],
      findings: [],
      ok: false,
      atBlock: 1,
    },
  };
}

/** Rewrites one entry and fixes the index to fit, as a forger editing the file would. */
function forge(bytes: Uint8Array, name: string, edit: (text: string) => string): Uint8Array {
  const buf = Buffer.from(bytes);
  const length = buf.readUInt32BE(9);
  const index = JSON.parse(buf.toString('utf8', 13, 13 + length));
  let at = 13 + length;
  const parts: Buffer[] = [];
  for (const e of index.entries) {
    let data = buf.subarray(at, at + e.length);
    at += e.length;
    if (e.name === name) {
      data = Buffer.from(edit(data.toString('utf8')));
      e.length = data.byteLength;
      e.sha256 = createHash('sha256').update(data).digest('hex');
    }
    parts.push(data);
  }
  const json = Buffer.from(JSON.stringify(index));
  const head = Buffer.alloc(13);
  head.write(BUNDLE_MAGIC, 0, 'latin1');
  head.writeUInt8(1, 8);
  head.writeUInt32BE(json.byteLength, 9);
  return new Uint8Array(Buffer.concat([head, json, ...parts]));
}

describe('the audit bundle container', () => {
  it('is deterministic and laid out as the format says: magic, version, index length, index, entries by name', () => {
    const a = encodeBundle(content('ab'));
    expect(Buffer.from(encodeBundle(content('ba')))).toEqual(Buffer.from(a));
    const buf = Buffer.from(a);
    expect(buf.toString('latin1', 0, 8)).toBe(BUNDLE_MAGIC);
    expect(buf[8]).toBe(1);
    const index = JSON.parse(buf.toString('utf8', 13, 13 + buf.readUInt32BE(9)));
    expect(index.entries.map((e: { name: string }) => e.name)).toEqual([
      'chain/block/0000000001',
      `missing/${'b'.repeat(64)}`,
      `object/${'a'.repeat(64)}`,
      'report.json',
    ]);
    let at = 13 + buf.readUInt32BE(9);
    for (const e of index.entries) {
      expect(
        createHash('sha256')
          .update(buf.subarray(at, at + e.length))
          .digest('hex'),
      ).toBe(e.sha256);
      at += e.length;
    }
    expect(at).toBe(buf.byteLength);
  });

  it('names a header that is not this block’s, with the digest of the file, and renders the card citing it', async () => {
    const bytes = encodeBundle(content('ab'));
    const v = await verifyBundle(bytes);
    expect(v.ok).toBe(false);
    expect(v.digest).toBe(createHash('sha256').update(bytes).digest('hex'));
    expect(v.findings.map((f) => `${f.code} ${f.where}`)).toContain('BLOCK_EVIDENCE block 1 · hash');
    expect(v.report?.evidence).toEqual({ digest: v.digest, tip: { number: 1, hash: hash(1) } });
    expect(renderReport(v.report!, 'md')).toContain(v.digest);
  });

  it('a forged block entry (odd hex, a transfer to no address, a bad amount) is named, never thrown', async () => {
    const bytes = encodeBundle(content('ab'));
    const block = 'chain/block/0000000001';
    const oddHeader = await verifyBundle(forge(bytes, block, (t) => t.replace(/"header":"0/, '"header":"')));
    expect(oddHeader.findings[0]).toMatchObject({ code: 'BLOCK_EVIDENCE', where: `${block} · header` });
    const transfer = (amount: string, to: string) =>
      forge(bytes, block, (t) =>
        t.replace(
          '"decoded":[]',
          `"decoded":[{"index":0,"signer":null,"calls":[{"call":{"kind":"transfer","to":"${to}","amount":"${amount}"},"applied":true}]}]`,
        ),
      );
    const nobody = await verifyBundle(transfer('5', 'nobody'));
    expect(nobody.findings.map((f) => f.where)).toContain('block 1 · extrinsics[0]');
    const negative = await verifyBundle(transfer('-5', 'nobody'));
    expect(negative.findings[0]).toMatchObject({
      code: 'BLOCK_EVIDENCE',
      where: `${block} · decoded.0.calls.0.call.amount`,
    });
  });

  it('never throws on a damaged bundle: every cut and every flipped byte is a finding', async () => {
    const bytes = encodeBundle(content('ab'));
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.nat({ max: bytes.byteLength - 1 }).map((cut) => bytes.subarray(0, cut)),
          fc.tuple(fc.nat({ max: bytes.byteLength - 1 }), fc.integer({ min: 1, max: 255 })).map(([i, x]) => {
            const out = new Uint8Array(bytes);
            out[i]! ^= x;
            return out;
          }),
          fc.uint8Array({ maxLength: 64 }),
        ),
        async (damaged) => {
          const v = await verifyBundle(damaged);
          expect(v.ok).toBe(false);
          expect(v.findings.length).toBeGreaterThan(0);
        },
      ),
      { numRuns: 150 },
    );
  });
});
