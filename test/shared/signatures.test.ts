import { u8aConcat, u8aWrapBytes } from '@polkadot/util';
import { decodeAddress, sr25519PairFromSeed, sr25519Sign, sr25519Verify } from '@polkadot/util-crypto';
import { isReady as wasmReady } from '@polkadot/wasm-crypto';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { devSigner } from '../../src/chain/devchain.ts';
import {
  accountFromSeeds,
  accountsReady,
  offChainMessage,
  verifySignature,
} from '../../src/shared/account.ts';
import { seededBytes } from '../storage/helpers.ts';

const text = (s: string) => new TextEncoder().encode(s);

/**
 * Off-chain signatures (request auth, receipts, admissions, joins, verifier results) are made over
 * `<Bytes>` + message + `</Bytes>`, as polkadot-js wallets sign raw bytes, so that no off-chain signature is ever a
 * valid signature of a transaction: a transaction's signing payload never starts with `<Bytes>`.
 */
describe('off-chain sr25519 signatures are <Bytes>-wrapped', () => {
  const seed = seededBytes('signatures-sr', 32);
  const account = accountFromSeeds(seed, seededBytes('signatures-x', 32));
  beforeAll(() => accountsReady());

  it('signs the wrapped message, the form polkadot-js extensions produce for signRaw({ type: "bytes" })', () => {
    const message = text('ailink/request/v1\nput\n…');
    expect(offChainMessage(message)).toEqual(u8aConcat(text('<Bytes>'), message, text('</Bytes>')));
    expect(offChainMessage(message)).toEqual(u8aWrapBytes(message));
    const signature = account.sign(message);
    expect(sr25519Verify(u8aWrapBytes(message), signature, account.publicKey)).toBe(true);
    expect(verifySignature(account.address, message, signature)).toBe(true);
  });

  it('refuses a signature over the raw (unwrapped) bytes', () => {
    const message = text('ailink/provenance/admit/v2\ntask\nkey');
    const raw = sr25519Sign(message, sr25519PairFromSeed(seed));
    expect(sr25519Verify(message, raw, account.publicKey)).toBe(true);
    expect(verifySignature(account.address, message, raw)).toBe(false);
  });

  it('a transaction payload handed to the off-chain helper yields no valid transaction signature', () => {
    // The shape of an extrinsic signing payload: call index (system.remarkWithEvent), compact length and bytes,
    // mortal era, compact nonce and tip, spec and transaction versions, genesis hash, block hash.
    const payload = u8aConcat(
      new Uint8Array([0x00, 0x07, 0x10]),
      text('AILK'),
      new Uint8Array([0x45, 0x02, 0x04, 0x00]),
      new Uint8Array([0x10, 0x27, 0, 0, 0x0f, 0, 0, 0]),
      seededBytes('genesis', 32),
      seededBytes('block', 32),
    );
    for (const signer of [account, devSigner('Alice')]) {
      const offChain = signer.sign(payload);
      expect(sr25519Verify(payload, offChain, decodeAddress(signer.address))).toBe(false);
      expect(verifySignature(signer.address, payload, offChain)).toBe(true);
      // Only the chain client's own signer signs payloads as they are.
      const tx = signer.signTransaction(payload);
      expect(verifySignature(signer.address, payload, tx)).toBe(false);
    }
  });
});

/**
 * verifySignature runs schnorrkel in WebAssembly once it is loaded, and @polkadot/util-crypto's pure-JS port before:
 * both must take exactly the same signatures, whoever made them, and refuse the same forgeries.
 */
describe('the WebAssembly verifier and the pure-JS one agree', () => {
  beforeAll(() => accountsReady());
  const jsVerify = (address: string, message: Uint8Array, signature: Uint8Array) => {
    try {
      return sr25519Verify(offChainMessage(message), signature, decodeAddress(address));
    } catch {
      return false;
    }
  };

  it('on signatures, altered signatures, altered messages and other signers', () => {
    expect(wasmReady()).toBe(true);
    const signers = [0, 1, 2].map((i) =>
      accountFromSeeds(seededBytes(`agree-sr-${i}`, 32), seededBytes(`agree-x-${i}`, 32)),
    );
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 300 }),
        fc.integer({ min: 0, max: 2 }),
        fc.integer({ min: 0, max: 2 }),
        fc.nat(),
        fc.constantFrom('as signed', 'signature byte', 'message byte', 'other signer'),
        (message, by, other, at, change) => {
          const signer = signers[by]!;
          const signature = signer.sign(message);
          let claimed = signer.address;
          const altered = new Uint8Array(message);
          if (change === 'signature byte') signature[at % 64]! ^= 1 << (at % 8);
          if (change === 'message byte' && altered.length > 0) altered[at % altered.length]! ^= 1;
          if (change === 'other signer') claimed = signers[other]!.address;
          const wasm = verifySignature(claimed, altered, signature);
          expect(wasm).toBe(jsVerify(claimed, altered, signature));
          const untouched =
            change === 'as signed' ||
            (change === 'message byte' && message.length === 0) ||
            (change === 'other signer' && other === by);
          expect(wasm).toBe(untouched);
        },
      ),
      { seed: 2512, numRuns: 150 },
    );
  });

  it('on malformed input: wrong lengths, garbage keys and signatures are refused, never thrown', () => {
    const signer = accountFromSeeds(seededBytes('agree-sr-m', 32), seededBytes('agree-x-m', 32));
    const message = text('m');
    const signature = signer.sign(message);
    expect(verifySignature(signer.address, message, signature.subarray(0, 63))).toBe(false);
    expect(verifySignature(signer.address, message, new Uint8Array([...signature, 0]))).toBe(false);
    expect(verifySignature('not an address', message, signature)).toBe(false);
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 64, maxLength: 64 }), (garbage) => {
        expect(verifySignature(signer.address, message, garbage)).toBe(false);
        expect(jsVerify(signer.address, message, garbage)).toBe(false);
      }),
      { seed: 2512, numRuns: 100 },
    );
    // A signature without schnorrkel's marker bit (the top bit of its last byte) is not one.
    const unmarked = new Uint8Array(signature);
    unmarked[63]! &= 0x7f;
    expect(verifySignature(signer.address, message, unmarked)).toBe(
      jsVerify(signer.address, message, unmarked),
    );
    expect(verifySignature(signer.address, message, unmarked)).toBe(false);
  });
});

/**
 * A signature verified once is taken from the process's memory the next time (every index of a process verifies the
 * same receipts): that memory must never take anything else for it — another signer, another message (also one that
 * moves bytes between the address and the message), another signature, or a signature cut or lengthened.
 */
describe('signatures verified before', () => {
  beforeAll(() => accountsReady());

  it('are taken again, and nothing near them is', () => {
    const signers = [0, 1].map((i) =>
      accountFromSeeds(seededBytes(`memo-sr-${i}`, 32), seededBytes(`memo-x-${i}`, 32)),
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat(), (message, at) => {
        const [signer, other] = signers as [(typeof signers)[0], (typeof signers)[0]];
        const signature = signer.sign(message);
        expect(verifySignature(signer.address, message, signature)).toBe(true);
        // Now remembered: the same again is true, and every neighbour of it still false.
        expect(verifySignature(signer.address, message, signature)).toBe(true);
        expect(verifySignature(other.address, message, signature)).toBe(false);
        const flipped = new Uint8Array(signature);
        flipped[at % 64]! ^= 1 << (at % 8);
        expect(verifySignature(signer.address, message, flipped)).toBe(false);
        expect(verifySignature(signer.address, new Uint8Array([...message, 0]), signature)).toBe(false);
        if (message.length > 0) {
          const altered = new Uint8Array(message);
          altered[at % altered.length]! ^= 1;
          expect(verifySignature(signer.address, altered, signature)).toBe(false);
          expect(verifySignature(signer.address, message.subarray(1), signature)).toBe(false);
        }
        // The address's last character moved into the message: the same bytes in a row, another input.
        const address = signer.address;
        const moved = new Uint8Array([...text(address.slice(-1)), ...message]);
        expect(verifySignature(address.slice(0, -1), moved, signature)).toBe(false);
        expect(verifySignature(signer.address, message, signature.subarray(0, 63))).toBe(false);
        expect(verifySignature(signer.address, message, new Uint8Array([...signature, 0]))).toBe(false);
      }),
      { seed: 2612, numRuns: 100 },
    );
  });
});
