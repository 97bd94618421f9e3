/**
 * npm run bench:proofs — PoDR2 storage proofs (src/storage/proofs/podr2.ts) for a miner holding 1 GiB in 8 MiB fragments
 * (128 fragments, 8 KiB blocks, 47 challenged blocks per fragment), against CESS's RSA-2048 tags in the same run.
 *
 * The 1 GiB is never held in memory: fragment f is the AES-256-CTR keystream under SHA-256("…:f"), so any block can be
 * regenerated at its counter offset; only the tags (8 bytes per 8 KiB block, 1 MiB in all) are kept. Fragment names
 * are SHA-256 of a label (in the network they are the content hash, computed once at upload, not part of tagging).
 *
 * Measured: tagging throughput on one core over every tagged byte; proof generation with blocks regenerated from the
 * PRG (a stand-in for disk reads, which it excludes), the PRG alone, and the proof math alone (blocks in memory);
 * verification (median); proof bytes for 1 and for all fragments.
 * Baseline: CESS tags σ_i = (H(name‖i)·u^{m_i})^d mod N with the 8 KiB block m_i as a 65,536-bit exponent, timed
 * in the same run with native RSA-2048 arithmetic — OpenSSL's Montgomery exponentiation through node:crypto on a real
 * RSA-2048 key: u^m as Π_j g_j^{m_j} over 2,040-bit pieces m_j of the block (g_j = u^{2^{2040·j}}, fixed per file and
 * computed once, outside the timing; each g_j^{m_j} is a raw `publicEncrypt` with m_j as the exponent, since OpenSSL
 * takes exponents below N only), the 32 products mod N in BigInt, then ^d as a raw `privateDecrypt` (CRT). The result
 * is checked once against a BigInt square-and-multiply. H(name‖i) (a hash) is left out. CESS's proof and verification
 * times are derived from the same native pieces (σ_i^ν with 160-bit ν; u^μ per fragment); μ = Σ ν_i·m_i is plain
 * integer arithmetic, done with BigInt.
 * BENCH_QUICK=1 tags 128 MiB (16 fragments) instead of 1 GiB.
 */
import {
  constants,
  createCipheriv,
  createHash,
  createPublicKey,
  generateKeyPairSync,
  privateDecrypt,
  publicEncrypt,
  randomBytes,
} from 'node:crypto';
import {
  blocksOf,
  deriveChallenge,
  derivePodr2Key,
  encodeProof,
  type Podr2Challenge,
  podr2Params,
  proveChallenge,
  tagFragment,
  tagsOf,
  verifyProof,
} from '../src/storage/proofs/podr2.ts';

const QUICK = Boolean(process.env.BENCH_QUICK);
const FRAGMENT_BYTES = 8 * 1024 * 1024;
const FRAGMENTS = QUICK ? 16 : 128;
const params = podr2Params({ blockSize: 8192, challengeBlocks: 47 });
const BLOCKS = blocksOf(FRAGMENT_BYTES, params);
const log = (s: string) => process.stderr.write(`${s}\n`);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const time = (f: () => void): number => {
  const t = performance.now();
  f();
  return performance.now() - t;
};

// --- the seekable PRG standing in for the miner's disk ------------------------------------------------------------
const prgKey = (f: number) => createHash('sha256').update(`ailink-bench-proofs:${f}`).digest();
const nameOf = (f: number) => createHash('sha256').update(`ailink-bench-proofs:name:${f}`).digest('hex');
const zeros = Buffer.alloc(FRAGMENT_BYTES);

function prgFragment(f: number): Uint8Array {
  return new Uint8Array(createCipheriv('aes-256-ctr', prgKey(f), Buffer.alloc(16)).update(zeros));
}

/** Block i of fragment f: the keystream from counter i·blockSize/16 (the IV is the 128-bit big-endian counter). */
function prgBlock(f: number, i: number): Uint8Array {
  const iv = Buffer.alloc(16);
  iv.writeUInt32BE((i * params.blockSize) / 16, 12);
  return new Uint8Array(
    createCipheriv('aes-256-ctr', prgKey(f), iv).update(zeros.subarray(0, params.blockSize)),
  );
}

// --- AI-LINK: tag every fragment, keep only the tags -------------------------------------------------------------
const key = derivePodr2Key(
  new Uint8Array(createHash('sha256').update('ailink-bench-proofs:key').digest()),
  params,
);
const names = Array.from({ length: FRAGMENTS }, (_, f) => nameOf(f));
const fragmentOf = new Map(names.map((n, f) => [n, f]));
const tags = new Map<string, Uint8Array>();
let prgMs = 0;
let tagMs = 0;
log(`tagging ${FRAGMENTS} fragments of 8 MiB (${(FRAGMENTS * 8) / 1024} GiB) on one core …`);
for (let f = 0; f < FRAGMENTS; f++) {
  let data: Uint8Array = new Uint8Array(0);
  prgMs += time(() => {
    data = prgFragment(f);
  });
  if (f === 0 && Buffer.compare(prgBlock(0, 5), data.subarray(5 * 8192, 6 * 8192)) !== 0) {
    throw new Error('bench: the seekable PRG does not match the fragment stream');
  }
  tagMs += time(() => tags.set(names[f]!, tagFragment(key, names[f]!, data, params)));
  if ((f + 1) % 32 === 0) log(`  ${f + 1}/${FRAGMENTS} tagged`);
}
const taggedBytes = FRAGMENTS * FRAGMENT_BYTES;
const tagMbps = taggedBytes / 1e6 / (tagMs / 1000);
const tagBytesPerFragment = tags.get(names[0]!)!.length;

// --- proofs -------------------------------------------------------------------------------------------------------
const items = names.map((name) => ({ name, blocks: BLOCKS }));
const seed = new Uint8Array(randomBytes(32));
let challenge: Podr2Challenge = { items: [] };
const challengeMs = median(
  Array.from({ length: 5 }, () =>
    time(() => {
      challenge = deriveChallenge(seed, items, params);
    }),
  ),
);
const challenged = challenge.items.reduce((a, x) => a + x.indices.length, 0);
const tagSource = (name: string, i: number) => tagsOf(tags.get(name)!, i);
const prgSource = { block: (name: string, i: number) => prgBlock(fragmentOf.get(name)!, i), tags: tagSource };

log(`proving ${challenged} challenged blocks of ${FRAGMENTS} fragments …`);
const regenMs: number[] = [];
const proveMs: number[] = [];
const mathMs: number[] = [];
let proof = proveChallenge(challenge, prgSource, params); // warm-up
for (let r = 0; r < 9; r++) {
  regenMs.push(
    time(() => {
      for (const x of challenge.items) for (const i of x.indices) prgSource.block(x.name, i);
    }),
  );
  proveMs.push(
    time(() => {
      proof = proveChallenge(challenge, prgSource, params);
    }),
  );
}
// The proof math alone: the same blocks, already in memory (47 MiB for 128 fragments).
const held = new Map<string, Uint8Array>();
for (const x of challenge.items)
  for (const i of x.indices) held.set(`${x.name}:${i}`, prgSource.block(x.name, i));
const memSource = { block: (name: string, i: number) => held.get(`${name}:${i}`)!, tags: tagSource };
for (let r = 0; r < 9; r++) mathMs.push(time(() => proveChallenge(challenge, memSource, params)));
held.clear();

log('verifying …');
if (!verifyProof(key, challenge, proof, params)) throw new Error('bench: an honest proof did not verify');
const verifyMs: number[] = [];
for (let r = 0; r < 21; r++) verifyMs.push(time(() => verifyProof(key, challenge, proof, params)));
const one = { items: challenge.items.slice(0, 1) };
const proofOne = proveChallenge(one, prgSource, params);
if (!verifyProof(key, one, proofOne, params)) throw new Error('bench: a one-fragment proof did not verify');
const proofBytes = encodeProof(proof).length;
const proofBytesOne = encodeProof(proofOne).length;

// --- CESS baseline: RSA-2048, native (OpenSSL through node:crypto) ---------------------------------------------------
const big = (bytes: Uint8Array) => BigInt(`0x${Buffer.from(bytes).toString('hex')}`);
const toBytes = (x: bigint, length: number) => Buffer.from(x.toString(16).padStart(2 * length, '0'), 'hex');
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const nB64 = rsa.publicKey.export({ format: 'jwk' }).n!;
const N = big(Buffer.from(nB64, 'base64url'));
/** base^exp mod N natively: a raw RSA public operation with `exp` as the public exponent (exp < N). */
function nativePow(base: bigint, exp: Uint8Array): bigint {
  let i = 0;
  while (i < exp.length && exp[i] === 0) i++;
  if (i === exp.length) return 1n;
  const key = createPublicKey({
    key: { kty: 'RSA', n: nB64, e: Buffer.from(exp.subarray(i)).toString('base64url') },
    format: 'jwk',
  });
  return big(publicEncrypt({ key, padding: constants.RSA_NO_PADDING }, toBytes(base, 256)));
}
/** x^d mod N natively: a raw RSA private operation (CRT, blinded), the signing step of a CESS tag. */
const nativePowD = (x: bigint) =>
  big(privateDecrypt({ key: rsa.privateKey, padding: constants.RSA_NO_PADDING }, toBytes(x, 256)));
const PIECE = 255; // bytes: a 2,040-bit exponent is always below the 2,048-bit N
/** g_j = u^{2^{2040·j}} for the pieces of an exponent of `bytes` bytes: per file, computed once. */
function powersOf(u: bigint, bytes: number): bigint[] {
  const shift = new Uint8Array(PIECE + 1);
  shift[0] = 1; // 2^2040
  const out = [u];
  for (let j = 1; j < Math.ceil(bytes / PIECE); j++) out.push(nativePow(out[j - 1]!, shift));
  return out;
}
/** u^m mod N = Π_j g_j^{m_j}, m_j the 2,040-bit pieces of m from its least significant end. */
function nativePowLong(g: bigint[], m: Uint8Array): bigint {
  let r = 1n;
  for (let j = 0, end = m.length; end > 0; j++, end -= PIECE) {
    r = (r * nativePow(g[j]!, m.subarray(Math.max(0, end - PIECE), end))) % N;
  }
  return r;
}
/** base^exp mod n, left-to-right square-and-multiply: only to check the native result once. */
function modPowBytes(base: bigint, exp: Uint8Array, n: bigint): bigint {
  let r = 1n;
  for (const byte of exp) {
    for (let bit = 7; bit >= 0; bit--) {
      r = (r * r) % n;
      if ((byte >> bit) & 1) r = (r * base) % n;
    }
  }
  return r;
}
const u = big(new Uint8Array(randomBytes(255)));
const g = powersOf(u, params.blockSize + 32); // room for μ, which is ν·m summed: a few bits longer than a block
const hName = big(new Uint8Array(randomBytes(255))); // H(name‖i) stand-in: hashing is not the cost
if (nativePowLong(g, prgBlock(0, 1)) !== modPowBytes(u, prgBlock(0, 1), N)) {
  throw new Error('bench: the native u^m does not match BigInt square-and-multiply');
}
log('CESS baseline: native RSA-2048 tags (u^m with an 8 KiB block as the exponent, then ^d) …');
const cessBlockMsAll: number[] = [];
const cessUmMsAll: number[] = [];
const cessDMsAll: number[] = [];
for (let i = 0; i < 9; i++) {
  const block = prgBlock(0, 100 + i);
  let um = 0n;
  const t0 = performance.now();
  um = nativePowLong(g, block);
  const t1 = performance.now();
  nativePowD((hName * um) % N);
  const t2 = performance.now();
  cessUmMsAll.push(t1 - t0);
  cessDMsAll.push(t2 - t1);
  cessBlockMsAll.push(t2 - t0);
}
const cessBlockMs = median(cessBlockMsAll);
const cessUmMs = median(cessUmMsAll);
const cessDMs = median(cessDMsAll);
const cessFragmentS = (cessBlockMs * BLOCKS) / 1000;
const cessTagMbps = params.blockSize / 1e6 / (cessBlockMs / 1000);
// Proof: σ = Π σ_i^{ν_i} over every challenged block (ν 20 bytes), μ_f = Σ ν_i·m_i per fragment.
const sigmaI = big(new Uint8Array(randomBytes(255)));
const nuPowMs = median(
  Array.from({ length: 21 }, () => time(() => nativePow(sigmaI, new Uint8Array(randomBytes(20))))),
);
const nus = Array.from({ length: 47 }, () => big(new Uint8Array(randomBytes(20))));
const blocksBig = Array.from({ length: 47 }, (_, i) => big(prgBlock(0, i)));
const muMs = median(
  Array.from({ length: 5 }, () => time(() => nus.reduce((a, v, i) => a + v * blocksBig[i]!, 0n))),
);
const cessProofMs = challenged * nuPowMs + FRAGMENTS * muMs;
// Verify: σ^e ≡ Π_f [Π_i H(name_f‖i)^{ν_i} · u_f^{μ_f}] mod N — u^μ with a ≈ 65,700-bit μ per fragment dominates.
const mu = nus.reduce((a, v, i) => a + v * blocksBig[i]!, 0n);
const muBytes = toBytes(mu, params.blockSize + 32);
const uMuMs = median(Array.from({ length: 5 }, () => time(() => nativePowLong(g, muBytes))));
const cessVerifyMs = FRAGMENTS * uMuMs + challenged * nuPowMs;
const cessProofBytes = FRAGMENTS * params.blockSize + 256;
const cessProofBytesOne = params.blockSize + 256;

// --- report ---------------------------------------------------------------------------------------------------------
const fmt = (x: number, d = 1) =>
  x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
const ratio = (a: number, b: number) => (a >= b ? `${fmt(a / b)}×` : `1/${fmt(b / a)}`);
const proveMed = median(proveMs);
const regenMed = median(regenMs);
const mathMed = median(mathMs);
const verifyMed = median(verifyMs);
const rows: [string, string, string, string][] = [
  [
    `tag throughput, one core (over ${fmt(taggedBytes / 1e6)} MB)`,
    `${fmt(tagMbps)} MB/s`,
    `${fmt(cessTagMbps, 3)} MB/s (u^m and ^d)`,
    ratio(tagMbps, cessTagMbps),
  ],
  [
    'tag one 8 MiB fragment',
    `${fmt(tagMs / FRAGMENTS)} ms`,
    `${fmt(cessFragmentS / 60)} min`,
    ratio(tagMs / FRAGMENTS, cessFragmentS * 1000),
  ],
  [
    'tag bytes per 8 MiB fragment',
    `${tagBytesPerFragment} B`,
    `${BLOCKS * 256} B`,
    ratio(tagBytesPerFragment, BLOCKS * 256),
  ],
  [
    `proof generation, ${FRAGMENTS} fragments × 47 blocks (math)`,
    `${fmt(mathMed)} ms`,
    `${fmt(cessProofMs)} ms (derived)`,
    ratio(mathMed, cessProofMs),
  ],
  ['  + PRG regeneration (no disk reads)', `${fmt(proveMed)} ms`, '', ''],
  ['  PRG regeneration alone', `${fmt(regenMed)} ms`, '', ''],
  [
    'verification (median of 21)',
    `${fmt(verifyMed, 2)} ms`,
    `${fmt(cessVerifyMs)} ms (derived)`,
    ratio(verifyMed, cessVerifyMs),
  ],
  ['  challenge derivation (median of 5)', `${fmt(challengeMs, 2)} ms`, '', ''],
  [
    `proof bytes, ${FRAGMENTS} fragments`,
    `${proofBytes}`,
    `${cessProofBytes} (per-fragment μ ≈ 8 KiB + one 256-byte σ)`,
    ratio(proofBytes, cessProofBytes),
  ],
  [
    'proof bytes, 1 fragment',
    `${proofBytesOne}`,
    `${cessProofBytesOne}`,
    ratio(proofBytesOne, cessProofBytesOne),
  ],
];
console.log(
  `PoDR2, ${FRAGMENTS} fragments of 8 MiB (8,388,608 B); rates in MB/s, MB = 10^6 bytes; CESS measured in this run with native RSA-2048 (OpenSSL ${process.versions.openssl} via node:crypto)\n`,
);
console.log('| measure | AI-LINK | CESS (RSA-2048, native) | ratio AI-LINK ÷ CESS |\n|---|---|---|---|');
for (const r of rows) console.log(`| ${r.join(' | ')} |`);
console.log(
  `| one tag: u^m mod N (8 KiB exponent), timed, median of 9 | | ${fmt(cessUmMs)} ms | |\n` +
    `|   then ^d mod N (CRT), timed | | ${fmt(cessDMs, 2)} ms | |\n` +
    `| one u^μ mod N (verification, per fragment), timed | | ${fmt(uMuMs)} ms | |\n` +
    `| one σ_i^ν mod N (160-bit ν), timed, median of 21 | | ${fmt(nuPowMs, 3)} ms | |`,
);
console.log(
  JSON.stringify({
    bench: 'proofs',
    quick: QUICK,
    fragments: FRAGMENTS,
    fragment_bytes: FRAGMENT_BYTES,
    tagged_bytes: taggedBytes,
    block_size: params.blockSize,
    challenge_blocks: params.challengeBlocks,
    challenged_blocks: challenged,
    tag_mbps_per_core: Number(tagMbps.toFixed(1)),
    prg_mbps: Number((taggedBytes / 1e6 / (prgMs / 1000)).toFixed(1)),
    tag_bytes_per_fragment: tagBytesPerFragment,
    proof_gen_ms: Number(proveMed.toFixed(1)),
    prg_regen_ms: Number(regenMed.toFixed(1)),
    proof_math_ms: Number(mathMed.toFixed(1)),
    verify_ms: Number(verifyMed.toFixed(2)),
    challenge_ms: Number(challengeMs.toFixed(2)),
    proof_bytes: proofBytes,
    proof_bytes_1_fragment: proofBytesOne,
    cess_native: `OpenSSL ${process.versions.openssl}`,
    cess_block_tag_ms: Number(cessBlockMs.toFixed(2)),
    cess_block_um_ms: Number(cessUmMs.toFixed(2)),
    cess_block_d_ms: Number(cessDMs.toFixed(3)),
    cess_u_mu_ms: Number(uMuMs.toFixed(2)),
    cess_nu_pow_ms: Number(nuPowMs.toFixed(4)),
    cess_fragment_tag_s: Number(cessFragmentS.toFixed(1)),
    cess_tag_mbps: Number(cessTagMbps.toFixed(5)),
    cess_proof_gen_ms: Math.round(cessProofMs),
    cess_verify_ms: Math.round(cessVerifyMs),
    cess_proof_bytes: cessProofBytes,
    cess_proof_bytes_1_fragment: cessProofBytesOne,
  }),
);
