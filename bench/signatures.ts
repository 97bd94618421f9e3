/**
 * npm run bench:signatures — off-chain sr25519 verification (`verifySignature`, src/shared/account.ts), which every
 * miner runs on each signed request and, folding the chain, on every receipt (12 an object) and verifier result; the
 * auditor and every index fold the same. Baseline in the same run: @polkadot/util-crypto's pure-JS port
 * (@scure/sr25519), what `verifySignature` called before (its BigInt temporaries were 92 % of a miner's malloc calls:
 * README, Soak). Then the same signatures verified again, as another index of the same process folds them: taken
 * from the process's memory of verified signatures, against their first verification. BENCH_SIGNATURES (500)
 * signatures, of messages of 200 bytes (a receipt's size), 3 signers.
 */
import { decodeAddress, sr25519Verify } from '@polkadot/util-crypto';
import { accountFromSeeds, accountsReady, offChainMessage, verifySignature } from '../src/shared/account.ts';

const N = Number(process.env.BENCH_SIGNATURES ?? 500);
await accountsReady();
const signers = [1, 2, 3].map((i) =>
  accountFromSeeds(new Uint8Array(32).fill(i), new Uint8Array(32).fill(i + 10)),
);
const sign = (i: number) => {
  const signer = signers[i % signers.length]!;
  const message = new Uint8Array(200).map((_, j) => (i * 31 + j) & 0xff);
  return { address: signer.address, message, signature: signer.sign(message) };
};
const items = Array.from({ length: N }, (_, i) => sign(i));
// Warm-up on signatures of their own: a measured signature is verified first when it is measured first.
const warmUp = Array.from({ length: 20 }, (_, i) => sign(N + i));

const jsVerify = (address: string, message: Uint8Array, signature: Uint8Array) =>
  sr25519Verify(offChainMessage(message), signature, decodeAddress(address));

/** Milliseconds per verification of every item (each must verify), after a warm-up. */
function measure(verify: typeof verifySignature): number {
  for (const it of warmUp) verify(it.address, it.message, it.signature);
  const start = performance.now();
  for (const it of items)
    if (!verify(it.address, it.message, it.signature)) throw new Error('a valid signature was refused');
  return (performance.now() - start) / N;
}

const before = measure(jsVerify);
const after = measure(verifySignature);
const again = measure(verifySignature);
const row = (what: string, base: number, now: number) =>
  `${what.padEnd(44)} ${base.toFixed(4).padStart(17)} ${now.toFixed(4).padStart(10)}  ${(base / now).toFixed(1)}× faster\n`;
process.stdout.write(
  `${''.padEnd(44)} before (same run)      after  ratio\n${row(`verify one signature (ms), ${N} signatures`, before, after)}${row('the same, verified again (ms)', after, again)}`,
);
process.stdout.write(
  `${JSON.stringify({ signatures: N, verify_ms: Number(after.toFixed(4)), verify_baseline_ms: Number(before.toFixed(4)), verify_again_ms: Number(again.toFixed(4)) })}\n`,
);
