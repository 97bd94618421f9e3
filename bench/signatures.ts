/**
 * npm run bench:signatures — off-chain sr25519 verification (`verifySignature`, src/shared/account.ts), which every
 * miner runs on each signed request and, folding the chain, on every receipt (12 an object) and verifier result; the
 * auditor and every index fold the same. Baseline in the same run: @polkadot/util-crypto's pure-JS port
 * (@scure/sr25519), what `verifySignature` called before (its BigInt temporaries were 92 % of a miner's malloc calls:
 * README, Soak). BENCH_SIGNATURES (500) signatures, of messages of 200 bytes (a receipt's size), 3 signers.
 */
import { decodeAddress, sr25519Verify } from '@polkadot/util-crypto';
import { accountFromSeeds, accountsReady, offChainMessage, verifySignature } from '../src/shared/account.ts';

const N = Number(process.env.BENCH_SIGNATURES ?? 500);
await accountsReady();
const signers = [1, 2, 3].map((i) =>
  accountFromSeeds(new Uint8Array(32).fill(i), new Uint8Array(32).fill(i + 10)),
);
const items = Array.from({ length: N }, (_, i) => {
  const signer = signers[i % signers.length]!;
  const message = new Uint8Array(200).map((_, j) => (i * 31 + j) & 0xff);
  return { address: signer.address, message, signature: signer.sign(message) };
});

const jsVerify = (address: string, message: Uint8Array, signature: Uint8Array) =>
  sr25519Verify(offChainMessage(message), signature, decodeAddress(address));

/** Milliseconds per verification of every item (each must verify), after a warm-up. */
function measure(verify: typeof verifySignature): number {
  for (const it of items.slice(0, 20)) verify(it.address, it.message, it.signature);
  const start = performance.now();
  for (const it of items)
    if (!verify(it.address, it.message, it.signature)) throw new Error('a valid signature was refused');
  return (performance.now() - start) / N;
}

const before = measure(jsVerify);
const after = measure(verifySignature);
process.stdout.write(
  `${''.padEnd(44)} before (same run)      after  ratio\n${`verify one signature (ms), ${N} signatures`.padEnd(44)} ${before.toFixed(3).padStart(17)} ${after.toFixed(3).padStart(10)}  ${(before / after).toFixed(1)}× faster\n`,
);
process.stdout.write(
  `${JSON.stringify({ signatures: N, verify_ms: Number(after.toFixed(4)), verify_baseline_ms: Number(before.toFixed(4)) })}\n`,
);
