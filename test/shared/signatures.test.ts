import { u8aConcat, u8aWrapBytes } from '@polkadot/util';
import { decodeAddress, sr25519PairFromSeed, sr25519Sign, sr25519Verify } from '@polkadot/util-crypto';
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
