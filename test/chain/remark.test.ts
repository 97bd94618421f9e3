import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { CALL_SCHEMAS, type CallArgs, type CallName } from '../../src/chain/calls.ts';
import {
  decodeRemark,
  encodeRemark,
  MAX_REMARK_BYTES,
  REMARK_MAGIC,
  REMARK_VERSION,
} from '../../src/chain/remark.ts';
import { type Account, accountsReady } from '../../src/shared/account.ts';
import { hex, makeAccounts, makeDeclaration, makeReceipt, peerIdOf, peerSignatureOf } from './helpers.ts';

const utf8 = (text: string) => new TextEncoder().encode(text);
const fromHexString = (h: string) => new Uint8Array(Buffer.from(h, 'hex'));

/** A protocol remark with `body` as its bytes after the magic and `version`. */
function ours(body: Uint8Array | string, version = REMARK_VERSION): Uint8Array {
  const bytes = typeof body === 'string' ? utf8(body) : body;
  const out = new Uint8Array(REMARK_MAGIC.length + 1 + bytes.byteLength);
  out.set(REMARK_MAGIC, 0);
  out[REMARK_MAGIC.length] = version;
  out.set(bytes, REMARK_MAGIC.length + 1);
  return out;
}

function expectInvalid(payload: Uint8Array, reason: RegExp): { call: string | null; reason: string } {
  const decoded = decodeRemark(payload);
  if (decoded.kind !== 'invalid') expect.fail(`expected invalid (${reason}), got ${JSON.stringify(decoded)}`);
  expect(decoded.reason).toMatch(reason);
  return decoded;
}

let owner: Account;
let operator: Account;
let miner: Account;
let samples: { [N in CallName]: CallArgs<N> };

beforeAll(async () => {
  await accountsReady();
  [owner, operator, miner] = makeAccounts('remark', 3) as [Account, Account, Account];
  const d = makeDeclaration('remark/file', owner.address, { encrypted: true });
  // One well-formed instance of every call; the mapped type makes the compiler insist that none is missing.
  samples = {
    'sminer.register': {
      peerId: peerIdOf(miner),
      addrs: ['/ip4/127.0.0.1/tcp/4001'],
      capacity: 1 << 30,
      collateral: '340282366920938463463374607431768211455', // u128::MAX survives as a string
      peerSignature: peerSignatureOf(miner, 'sminer.register'),
    },
    'sminer.updateAddrs': { addrs: ['/ip4/10.0.0.1/tcp/4001', '/dns4/miner.example/tcp/443/wss'] },
    'sminer.exit': {},
    'oss.authorize': { operator: operator.address },
    'oss.cancelAuthorize': { operator: operator.address },
    'storageHandler.buySpace': { gib: 3, owner: owner.address },
    'fileBank.uploadDeclaration': {
      ...d,
      entry: {
        bucket: 'backups.2026',
        key: 'ünïcode/dir/file name.tar',
        contentType: 'application/x-tar',
        metadata: { mtime: '1764800000', 'x-note': 'weekly' },
      },
    },
    'fileBank.createBucket': { name: 'backups.2026', owner: owner.address },
    'fileBank.deleteBucket': { name: 'a-b' },
    'fileBank.declareSegments': { fid: d.fid, deal: d.deal, segments: d.segments.slice(1) },
    'placement.holdTicket': {
      deal: d.deal,
      epoch: 3,
      slot: 7,
      profile: { segmentSize: 65_536, dataFragments: 4, parityFragments: 8 },
      segments: 5,
    },
    'fileBank.transferReport': { fid: d.fid, receipts: [makeReceipt(miner, d, 0), makeReceipt(owner, d, 1)] },
    'fileBank.deleteFile': { fid: d.fid },
    'fileBank.putRetention': { fid: d.fid, retention: { mode: 'COMPLIANCE', until: 1_900_000_000_000 } },
    'fileBank.putObjectLock': { name: 'a-b', defaultRetention: { mode: 'GOVERNANCE', days: 30 } },
    'fileBank.putLegalHold': { fid: d.fid, on: true },
    'fileBank.putVersioning': { name: 'a-b', status: 'Suspended', owner: owner.address },
    'fileBank.putDeleteMarker': { bucket: 'backups.2026', key: 'db/2026-12-04.dump' },
    'fileBank.removeDeleteMarker': { bucket: 'backups.2026', key: 'db/x', versionId: 'm12.3' },
    'fileBank.generateRestoralOrder': { fid: d.fid, index: 3 },
    'fileBank.claimRestoralOrder': { fid: d.fid, index: 3 },
    'fileBank.restoralComplete': { fid: d.fid, index: 255 },
    'fileBank.calculateReport': {
      fid: d.fid,
      index: 2,
      verifier: operator.address,
      signature: 'cd'.repeat(64),
    },
    'teeWorker.register': {
      peerId: peerIdOf(operator),
      addrs: [],
      podr2Key: 'ab'.repeat(64),
      peerSignature: peerSignatureOf(operator, 'teeWorker.register'),
    },
    'pot.payout': { debts: ['0000000000', '0000000041'] },
    'teeWorker.updateAddrs': { addrs: ['/ip4/127.0.0.1/tcp/4002'] },
    'audit.submitResult': {
      miner: miner.address,
      challenge: 12,
      proof: hex('proof'),
      verifier: operator.address,
      signature: 'ef'.repeat(64),
    },
    'audit.commitIdle': { first: 0, roots: [hex('root/0'), hex('root/1')] },
    'audit.releaseIdle': { count: 1 },
    'provenance.createTask': { task: 'mnist-fedavg_v1.2', spec: hex('spec') },
    'provenance.admit': {
      task: 'mnist-fedavg_v1.2',
      account: '5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY',
      identityKey: hex('key'),
      signature: 'ab'.repeat(64),
    },
    'provenance.recordRound': { task: 'mnist-fedavg_v1.2', round: 0, manifest: hex('m'), digest: hex('d') },
    'provenance.setAdmitted': {
      task: 'mnist-fedavg_v1.2',
      add: ['5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY'],
      remove: [],
    },
    'provenance.stopTask': { task: 'mnist-fedavg_v1.2' },
    'provenance.drawSeed': { task: 'mnist-fedavg_v1.2', round: -1, attempt: 3, cohort: hex('cohort') },
    'provenance.setEndpoint': {
      task: 'mnist-fedavg_v1.2',
      url: 'http://10.77.0.3:8700',
      peerId: peerIdOf(operator),
      addrs: ['/ip4/10.77.0.3/tcp/8701'],
    },
    'market.setTerms': { fid: d.fid, readers: [operator.address, miner.address], price: '1000000' },
    'market.request': { fid: d.fid, readerKey: hex('reader-key') },
    'market.grant': {
      fid: d.fid,
      reader: operator.address,
      wrap: { recipient: hex('reader-key'), ephemeral: hex('ephemeral'), sealed: 'ab'.repeat(48) },
    },
  };
});

describe('encodeRemark / decodeRemark', () => {
  it('round-trips every call', () => {
    expect(Object.keys(samples).sort()).toEqual(Object.keys(CALL_SCHEMAS).sort());
    for (const name of Object.keys(samples) as CallName[]) {
      const payload = encodeRemark(name, samples[name]);
      expect([...payload.subarray(0, 5)]).toEqual([0x41, 0x49, 0x4c, 0x4b, 1]);
      expect(decodeRemark(payload)).toEqual({ kind: 'call', call: { name, args: samples[name] } });
    }
  });

  it('round-trips a declaration without the optional name', () => {
    const { name: _name, ...d } = makeDeclaration('remark/unnamed', owner.address);
    const decoded = decodeRemark(encodeRemark('fileBank.uploadDeclaration', d));
    expect(decoded).toEqual({ kind: 'call', call: { name: 'fileBank.uploadDeclaration', args: d } });
  });

  it('matches a fixed test vector', () => {
    // "AILK" · 0x01 · {"call":"fileBank.deleteFile","args":{"fid":"abab…ab"}}
    const vector =
      '41494c4b017b2263616c6c223a2266696c6542616e6b2e64656c65746546696c65222c2261726773223a7b2266696422' +
      '3a2261626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162' +
      '616261626162616261626162616261626162227d7d';
    const encoded = encodeRemark('fileBank.deleteFile', { fid: 'ab'.repeat(32) });
    expect(Buffer.from(encoded).toString('hex')).toBe(vector);
    expect(decodeRemark(fromHexString(vector))).toEqual({
      kind: 'call',
      call: { name: 'fileBank.deleteFile', args: { fid: 'ab'.repeat(32) } },
    });
  });

  it('matches a fixed test vector of a market request', () => {
    // "AILK" · 0x01 · {"call":"market.request","args":{"fid":"abab…ab","readerKey":"cdcd…cd"}}
    const vector =
      '41494c4b01' +
      '7b2263616c6c223a226d61726b65742e72657175657374222c2261726773223a7b22666964223a22' +
      '61'.concat('62').repeat(32) +
      '222c227265616465724b6579223a22' +
      '63'.concat('64').repeat(32) +
      '227d7d';
    const args = { fid: 'ab'.repeat(32), readerKey: 'cd'.repeat(32) };
    expect(Buffer.from(encodeRemark('market.request', args)).toString('hex')).toBe(vector);
    expect(decodeRemark(fromHexString(vector))).toEqual({
      kind: 'call',
      call: { name: 'market.request', args },
    });
    // Both, as text, for a reader of a block explorer.
    expect(Buffer.from(fromHexString(vector).subarray(5)).toString('utf8')).toBe(
      `{"call":"market.request","args":{"fid":"${'ab'.repeat(32)}","readerKey":"${'cd'.repeat(32)}"}}`,
    );
  });

  it('refuses to encode arguments that break the schema, naming the field', () => {
    expect(() => encodeRemark('fileBank.deleteFile', { fid: 'AB'.repeat(32) })).toThrow(
      /fileBank\.deleteFile: fid: expected 64 lowercase hex/,
    );
    expect(() =>
      encodeRemark('sminer.register', { ...samples['sminer.register'], collateral: '007' }),
    ).toThrow(/collateral: expected a decimal amount/);
    expect(() => encodeRemark('fileBank.deleteFile', { fid: 'x' })).toThrow(
      expect.objectContaining({ code: 'INVALID_INPUT' }),
    );
  });

  it('refuses to encode a remark over the size limit', () => {
    // 4096 segments × 12 fragment hashes ≈ 3 MB of JSON.
    const big = makeDeclaration('remark/big', owner.address, { segments: 4096, segmentSize: 1 });
    expect(() => encodeRemark('fileBank.uploadDeclaration', big)).toThrow(
      new RegExp(`the limit is ${MAX_REMARK_BYTES}`),
    );
    expect(() => encodeRemark('fileBank.uploadDeclaration', big)).toThrow(
      expect.objectContaining({ code: 'INVALID_INPUT' }),
    );
  });
});

describe('decodeRemark: foreign payloads are ignored', () => {
  it.each([
    ['empty', new Uint8Array(0)],
    ['one byte', new Uint8Array([0x41])],
    ['a short prefix of the magic', utf8('AIL')],
    ['a plain text remark', utf8('hello, chain')],
    ['the magic in lower case', utf8('ailk\u0001{}')],
    ['the magic one byte late', utf8(' AILK\u0001{}')],
    ['a remark of another protocol', utf8('RMRK::MINT::2.0.0::{}')],
  ])('%s', (_what, payload) => {
    expect(decodeRemark(payload)).toEqual({ kind: 'foreign' });
  });
});

describe('decodeRemark: ours but invalid, with a reason', () => {
  const body = JSON.stringify({ call: 'fileBank.deleteFile', args: { fid: 'ab'.repeat(32) } });

  it('an unknown version, naming it', () => {
    expectInvalid(ours(body, 2), /unknown version 2\b/);
    expectInvalid(ours(body, 0), /unknown version 0\b/);
    expectInvalid(ours(body, 255), /unknown version 255\b/);
  });

  it('the magic without a version byte', () => {
    expectInvalid(REMARK_MAGIC.slice(), /unknown version \(missing\)/);
  });

  it('a version without a body', () => {
    expectInvalid(ours(''), /malformed: not UTF-8 JSON/);
  });

  it('oversized, even when the JSON inside is fine; the limit itself is accepted', () => {
    const header = REMARK_MAGIC.length + 1;
    const atLimit = ours(body.padEnd(MAX_REMARK_BYTES - header, ' '));
    expect(atLimit.byteLength).toBe(MAX_REMARK_BYTES);
    expect(decodeRemark(atLimit).kind).toBe('call');
    const over = ours(body.padEnd(MAX_REMARK_BYTES - header + 1, ' '));
    expectInvalid(
      over,
      new RegExp(`oversized: ${MAX_REMARK_BYTES + 1} bytes, the limit is ${MAX_REMARK_BYTES}`),
    );
  });

  it('not UTF-8', () => {
    const bytes = utf8(body);
    bytes[10] = 0xff; // inside the JSON string "fileBank…": no valid UTF-8 sequence starts with 0xff
    expectInvalid(ours(bytes), /not UTF-8 JSON/);
    expectInvalid(ours(new Uint8Array([0x7b, 0xc3, 0x28, 0x7d])), /not UTF-8 JSON/); // a truncated sequence
  });

  it('not JSON', () => {
    expectInvalid(ours('{call: fileBank.deleteFile}'), /malformed: not UTF-8 JSON/);
    expectInvalid(ours(body.slice(0, -1)), /malformed: not UTF-8 JSON/);
  });

  it.each([
    ['an array', '[{"call":"fileBank.deleteFile"}]'],
    ['null', 'null'],
    ['a string', '"fileBank.deleteFile"'],
    ['a number', '42'],
  ])('JSON that is not an object: %s', (_what, text) => {
    expectInvalid(ours(text), /malformed: expected a JSON object/);
  });

  it('a call that is not a string', () => {
    expectInvalid(ours('{"call":7,"args":{}}'), /"call" must be a string/);
    expectInvalid(ours('{"args":{}}'), /"call" must be a string/);
  });

  it('an unknown call, including names that only exist on Object.prototype', () => {
    for (const name of ['fileBank.eraseEverything', 'sminer', '', '__proto__', 'constructor', 'toString']) {
      const decoded = expectInvalid(ours(JSON.stringify({ call: name, args: {} })), /unknown call/);
      expect(decoded.call).toBe(name);
    }
    const long = 'x'.repeat(500);
    const decoded = expectInvalid(ours(JSON.stringify({ call: long, args: {} })), /unknown call/);
    expect(decoded.call).toHaveLength(64);
    expect(decoded.reason.length).toBeLessThan(120);
  });

  it('extra fields beside call and args', () => {
    const decoded = expectInvalid(
      ours(JSON.stringify({ call: 'fileBank.deleteFile', args: { fid: 'ab'.repeat(32) }, nonce: 1 })),
      /unexpected fields nonce/,
    );
    expect(decoded.call).toBe('fileBank.deleteFile');
  });

  it('extra fields inside args', () => {
    expectInvalid(
      ours(JSON.stringify({ call: 'fileBank.deleteFile', args: { fid: 'ab'.repeat(32), force: true } })),
      /malformed arguments: .*force/i,
    );
    expectInvalid(
      ours(`{"call":"fileBank.deleteFile","args":{"fid":"${'ab'.repeat(32)}","__proto__":{"x":1}}}`),
      /malformed arguments/,
    );
  });

  it.each<[string, string, unknown, RegExp]>([
    ['missing args', 'fileBank.deleteFile', undefined, /malformed arguments/],
    ['args not an object', 'sminer.exit', [], /malformed arguments/],
    ['an upper-case fid', 'fileBank.deleteFile', { fid: 'AB'.repeat(32) }, /fid: expected 64 lowercase hex/],
    ['a short fid', 'fileBank.deleteFile', { fid: 'ab' }, /fid: expected 64 lowercase hex/],
    ['a column past 255', 'fileBank.claimRestoralOrder', { fid: 'ab'.repeat(32), index: 256 }, /index/],
    ['a fractional column', 'fileBank.claimRestoralOrder', { fid: 'ab'.repeat(32), index: 1.5 }, /index/],
    [
      'a negative round',
      'provenance.recordRound',
      { task: 't', round: -1, manifest: hex('m'), digest: hex('d') },
      /round/,
    ],
    [
      'a task id with a slash',
      'provenance.createTask',
      { task: 'a/b', spec: hex('s') },
      /task: expected 1–64/,
    ],
    ['not an address', 'oss.authorize', { operator: 'alice' }, /operator: expected an SS58 address/],
    ['no receipts', 'fileBank.transferReport', { fid: 'ab'.repeat(32), receipts: [] }, /receipts/],
    [
      'a short signature',
      'fileBank.transferReport',
      {
        fid: 'ab'.repeat(32),
        receipts: [{ index: 0, miner: '5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY', signature: 'ab' }],
      },
      /receipts\.0\.signature: expected a 64-byte sr25519 signature/,
    ],
  ])('bad arguments: %s', (_what, name, args, reason) => {
    const decoded = expectInvalid(ours(JSON.stringify({ call: name, args })), reason);
    expect(decoded.call).toBe(name);
  });

  it('bad arguments: bucket names and object keys', () => {
    const d = samples['fileBank.uploadDeclaration'];
    const withKey = (key: string) => ({ ...d, entry: { bucket: 'b-1', key } });
    const bad: [string, unknown, RegExp][] = [
      ['fileBank.createBucket', { name: 'ab' }, /name: expected 3–63/],
      ['fileBank.createBucket', { name: 'a'.repeat(64) }, /name: expected 3–63/],
      ['fileBank.createBucket', { name: 'Upper' }, /name: expected 3–63/],
      ['fileBank.createBucket', { name: '-dash' }, /name: expected 3–63/],
      ['fileBank.createBucket', { name: 'a..b' }, /no "\.\."/],
      ['fileBank.createBucket', { name: '192.168.1.10' }, /IPv4/],
      ['fileBank.deleteBucket', { name: 'a/b' }, /name: expected 3–63/],
      ['fileBank.uploadDeclaration', withKey(''), /entry\.key/],
      ['fileBank.uploadDeclaration', withKey('a/../etc/passwd'), /no "\." or "\.\." segment/],
      ['fileBank.uploadDeclaration', withKey('./x'), /no "\." or "\.\." segment/],
      ['fileBank.uploadDeclaration', withKey('nul\u0000byte'), /control characters/],
      ['fileBank.uploadDeclaration', withKey('é'.repeat(513)), /at most 1024 bytes/],
      [
        'fileBank.uploadDeclaration',
        { ...d, entry: { bucket: 'b-1', key: 'k', metadata: { Upper: 'x' } } },
        /metadata/,
      ],
      [
        'fileBank.uploadDeclaration',
        { ...d, entry: { bucket: 'b-1', key: 'k', metadata: { big: 'x'.repeat(2046) } } },
        /at most 2048 bytes of metadata/,
      ],
    ];
    for (const [name, args, reason] of bad) {
      expectInvalid(ours(JSON.stringify({ call: name, args })), reason);
    }
    // At the limits: 1024 bytes of key (two-byte characters), a dot inside a segment.
    for (const key of ['é'.repeat(512), 'a.b/..c/.d']) {
      expect(decodeRemark(encodeRemark('fileBank.uploadDeclaration', withKey(key))).kind).toBe('call');
    }
  });

  it('bad arguments: market calls', () => {
    const terms = samples['market.setTerms'];
    const grant = samples['market.grant'];
    const bad: [string, unknown, RegExp][] = [
      ['market.setTerms', { ...terms, price: 1000 }, /price: /],
      ['market.setTerms', { ...terms, price: '-1' }, /price: expected a decimal amount/],
      ['market.setTerms', { ...terms, price: '0100' }, /price: expected a decimal amount/],
      ['market.setTerms', { ...terms, readers: ['alice'] }, /readers\.0: expected an SS58 address/],
      ['market.setTerms', { ...terms, readers: Array(257).fill(operator.address) }, /readers/],
      ['market.setTerms', { fid: terms.fid, readers: [] }, /price/],
      [
        'market.request',
        { fid: terms.fid, readerKey: 'CD'.repeat(32) },
        /readerKey: expected 64 lowercase hex/,
      ],
      ['market.request', { fid: terms.fid, readerKey: 'cd'.repeat(33) }, /readerKey/],
      ['market.request', { fid: terms.fid, readerKey: 'cd'.repeat(32), pay: '5' }, /pay/],
      [
        'market.grant',
        { ...grant, wrap: { ...grant.wrap, sealed: 'ab'.repeat(47) } },
        /wrap\.sealed: expected 96/,
      ],
      ['market.grant', { ...grant, wrap: { ...grant.wrap, extra: 1 } }, /extra/],
      ['market.grant', { ...grant, reader: 'bob' }, /reader: expected an SS58 address/],
    ];
    for (const [name, args, reason] of bad) {
      const decoded = expectInvalid(ours(JSON.stringify({ call: name, args })), reason);
      expect(decoded.call).toBe(name);
    }
    // Not for sale is an explicit null, which survives the round trip.
    const notForSale = { ...terms, price: null };
    expect(decodeRemark(encodeRemark('market.setTerms', notForSale))).toEqual({
      kind: 'call',
      call: { name: 'market.setTerms', args: notForSale },
    });
  });

  it('bad arguments: amounts as JSON numbers, with leading zeros, or past u128 digits', () => {
    const register = samples['sminer.register'];
    for (const collateral of [1000, '01000', '-1', '1e3', '1'.repeat(40)]) {
      expectInvalid(
        ours(JSON.stringify({ call: 'sminer.register', args: { ...register, collateral } })),
        /malformed arguments: collateral/,
      );
    }
  });

  it('bad arguments: a peer id outside base58', () => {
    const register = samples['sminer.register'];
    expectInvalid(
      ours(
        JSON.stringify({ call: 'sminer.register', args: { ...register, peerId: `0OIl${register.peerId}` } }),
      ),
      /peerId: expected a base58 libp2p peer id/,
    );
  });
});

describe('decodeRemark never throws', () => {
  const kinds = ['foreign', 'call', 'invalid'];

  it('on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
        expect(kinds).toContain(decodeRemark(bytes).kind);
      }),
      { numRuns: 2000 },
    );
  });

  it('on arbitrary bytes after the magic and version 1', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
        const decoded = decodeRemark(ours(bytes));
        expect(decoded.kind).not.toBe('foreign');
        expect(kinds).toContain(decoded.kind);
      }),
      { numRuns: 2000 },
    );
  });

  it('on arbitrary JSON after the magic and version 1, with real call names', () => {
    const names = Object.keys(CALL_SCHEMAS);
    const body = fc.oneof(
      fc.jsonValue(),
      fc.record({ call: fc.constantFrom(...names), args: fc.jsonValue() }),
      fc.record({
        call: fc.constantFrom(...names),
        args: fc.dictionary(
          fc.constantFrom(
            'fid',
            'index',
            'receipts',
            'miner',
            'operator',
            'peerId',
            'addrs',
            'task',
            'round',
            'readers',
            'price',
            'readerKey',
            'reader',
            'wrap',
          ),
          fc.jsonValue({ maxDepth: 2 }),
        ),
      }),
    );
    fc.assert(
      fc.property(body, (value) => {
        const decoded = decodeRemark(ours(JSON.stringify(value) ?? 'null'));
        expect(decoded.kind).not.toBe('foreign');
        if (decoded.kind === 'invalid') expect(decoded.reason.length).toBeGreaterThan(0);
      }),
      { numRuns: 2000 },
    );
  });
});
