/**
 * PoDR2 storage proofs, CESS's structure with linear tags over a prime field (the private-verification
 * Shacham–Waters scheme, "Compact Proofs of Retrievability", §3.1) instead of CESS's RSA-2048 tags.
 *
 * A fragment is cut into blocks of `blockSize` bytes (the last one zero-padded); a block is s = blockSize/2 sectors,
 * the 16-bit little-endian words m_ij. Over the field F_p, p = 2^31 − 1, and for each of two independent lanes l,
 *
 *   tag      σ_il = f_l(name, i) + Σ_j α_lj·m_ij
 *   proof    μ_j  = Σ ν·m_ij   and   σ_l = Σ ν·σ_il      (sums over every challenged (fragment, block))
 *   check    σ_l  = Σ ν·f_l(name, i) + Σ_j α_lj·μ_j
 *
 * One proof covers all fragments of a challenge, so it is s + 2 field elements whatever the miner stores. The secret
 * (α, the PRF key) stays with the verifier. Soundness: a prover that does not hold the challenged blocks must guess a
 * fresh PRF combination, probability 1/p ≈ 2^-31 per lane; the lanes use independent α and PRF outputs, so ≈ 2^-62.
 *
 * Pure: no I/O, no clock. node:crypto supplies AES, HMAC, HKDF and SHA-256.
 *
 * Arithmetic is done in float64 on purpose: sectors are < 2^16 and field elements < 2^31, so a product is < 2^47 and a
 * sum of up to 64 of them is < 2^53 — every intermediate is an integer that a double holds exactly — and reducing
 * once per 64 terms (with the Mersenne identity 2^31 ≡ 1) is what lets tagging run at hundreds of MB/s in plain JS.
 */
import { createCipheriv, createHash, createHmac, hkdfSync } from 'node:crypto';
import { AilinkError } from '../../shared/errors.ts';

/** The field modulus, the Mersenne prime 2^31 − 1. */
export const PODR2_PRIME = 2147483647;
/** Independent tag lanes; a forgery must beat every lane. */
export const PODR2_LANES = 2;

export interface Podr2Params {
  /** Bytes per block; a positive multiple of 2 (a sector is a 16-bit word). CESS: 8192. */
  readonly blockSize: number;
  /** Blocks challenged per fragment (all of them when a fragment has fewer). CESS: 47 of 1024. */
  readonly challengeBlocks: number;
}

/** The verifier's secret, expanded from a 32-byte seed by `derivePodr2Key`. Never leaves the verifier. */
export interface Podr2Key {
  /** Key of the PRF f: per fragment, HMAC-SHA256(prfKey, name) keys AES-256 over the block index. */
  readonly prfKey: Uint8Array;
  /** α_l for each lane: s = blockSize/2 field elements, held as doubles for the tagging loop. */
  readonly alpha: readonly Float64Array[];
  /** The block size α was derived for. */
  readonly blockSize: number;
}

export interface Podr2Challenge {
  readonly items: readonly {
    /** Fragment hash (64 lowercase hex). */
    readonly name: string;
    /** Distinct block indices, ascending. */
    readonly indices: readonly number[];
    /** ν for each index, in [1, p). */
    readonly coefficients: readonly number[];
  }[];
}

export interface Podr2Proof {
  /** μ_j, j = 0..s−1, each in [0, p). */
  readonly mu: Uint32Array;
  /** σ_l, one per lane, each in [0, p). */
  readonly sigma: Uint32Array;
}

/** What `proveChallenge` reads: the miner's fragment store. */
export interface Podr2Source {
  /** Block `index` of fragment `name`: blockSize bytes (a shorter last block is taken as zero-padded). */
  block(name: string, index: number): Uint8Array;
  /** The PODR2_LANES tag values of that block (e.g. `tagsOf(storedTags, index)`). */
  tags(name: string, index: number): ArrayLike<number>;
}

const DEFAULTS: Podr2Params = Object.freeze({ blockSize: 8192, challengeBlocks: 47 });
/** Upper bounds only to refuse absurd input early; they are far above anything the network uses. */
const MAX_BLOCK_SIZE = 1 << 20;
const MAX_CHALLENGE_BLOCKS = 1 << 16;
const HASH_RE = /^[0-9a-f]{64}$/;
const P = PODR2_PRIME;
const TWO31 = 2147483648;
/** Terms summed in float before a reduction: 64 · (p−1) · (2^16−1) < 2^53. */
const CHUNK = 64;
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const invalid = (message: string, details?: Record<string, unknown>): AilinkError =>
  new AilinkError('INVALID_INPUT', message, details === undefined ? {} : { details });
const malformed = (message: string, details?: Record<string, unknown>): AilinkError =>
  new AilinkError('PROOF_MALFORMED', message, details === undefined ? {} : { details });

/**
 * x mod p for an integer 0 ≤ x < 2^53. x = h·2^31 + l ≡ h + l (mod p) because 2^31 ≡ 1; h + l < 2^31 + 2^22 < 2p,
 * so one conditional subtraction finishes. Division by a power of two is exact in floating point.
 */
function modP(x: number): number {
  const h = Math.floor(x / TWO31);
  const r = x - h * TWO31 + h;
  return r >= P ? r - P : r;
}

/** a·b mod p for a, b in [0, p): b is split into 16-bit halves so that each product stays below 2^47. */
function mulMod(a: number, b: number): number {
  const hi = b >>> 16;
  const lo = b & 0xffff;
  return modP(modP(a * hi) * 65536 + a * lo);
}

/**
 * Full parameters from a partial set, with CESS's defaults (8 KiB blocks, 47 challenged blocks per fragment).
 * @throws INVALID_INPUT when blockSize is not a positive even integer ≤ 1 MiB or challengeBlocks not an integer in
 *   [1, 65536].
 */
export function podr2Params(partial: Partial<Podr2Params> = {}): Podr2Params {
  const blockSize = partial.blockSize ?? DEFAULTS.blockSize;
  const challengeBlocks = partial.challengeBlocks ?? DEFAULTS.challengeBlocks;
  if (!Number.isInteger(blockSize) || blockSize <= 0 || blockSize % 2 !== 0 || blockSize > MAX_BLOCK_SIZE) {
    throw invalid(
      `podr2: expected blockSize a positive multiple of 2 up to ${MAX_BLOCK_SIZE}, got ${blockSize}`,
    );
  }
  if (!Number.isInteger(challengeBlocks) || challengeBlocks < 1 || challengeBlocks > MAX_CHALLENGE_BLOCKS) {
    throw invalid(
      `podr2: expected challengeBlocks an integer in [1, ${MAX_CHALLENGE_BLOCKS}], got ${challengeBlocks}`,
    );
  }
  return Object.freeze({ blockSize, challengeBlocks });
}

/**
 * Number of blocks of a fragment of `fragmentSize` bytes (the last partial block counts; 0 bytes → 0 blocks).
 * @throws INVALID_INPUT when fragmentSize is not a non-negative safe integer.
 */
export function blocksOf(fragmentSize: number, params: Podr2Params = DEFAULTS): number {
  if (!Number.isSafeInteger(fragmentSize) || fragmentSize < 0) {
    throw invalid(`podr2: expected a fragment size ≥ 0 bytes, got ${fragmentSize}`);
  }
  return Math.ceil(fragmentSize / params.blockSize);
}

/** Sectors (field elements) per block. */
const sectorsOf = (params: Podr2Params): number => params.blockSize / 2;

/** Endless AES-256-CTR keystream read as u32 LE words; `key` must be 32 uniformly random bytes. */
class WordStream {
  private readonly cipher;
  private words = new Uint32Array(0);
  private at = 0;
  constructor(key: Uint8Array) {
    this.cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  }
  next(): number {
    if (this.at === this.words.length) {
      const bytes = this.cipher.update(Buffer.alloc(1024));
      // Fresh Buffer of 1024 bytes: copy into an aligned array so the u32 view is safe whatever the pool offset.
      const aligned = new Uint8Array(bytes.length);
      aligned.set(bytes);
      this.words = new Uint32Array(aligned.buffer);
      if (!LITTLE_ENDIAN) for (let i = 0; i < this.words.length; i++) this.words[i] = swap32(this.words[i]!);
      this.at = 0;
    }
    return this.words[this.at++]!;
  }
  /** Uniform in [0, p): the low 31 bits, rejecting the one value 2^31 − 1 (probability 2^-31, so no bias at all). */
  field(): number {
    for (;;) {
      const x = this.next() & 0x7fffffff;
      if (x !== P) return x;
    }
  }
  /** Uniform in [0, n) for 1 ≤ n ≤ 2^32, by rejecting the top partial range of 2^32 / n. */
  below(n: number): number {
    const limit = 4294967296 - (4294967296 % n);
    for (;;) {
      const x = this.next();
      if (x < limit) return x % n;
    }
  }
}

const swap32 = (x: number): number =>
  (((x & 0xff) << 24) | ((x & 0xff00) << 8) | ((x >>> 8) & 0xff00) | (x >>> 24)) >>> 0;

const KDF_SALT = Buffer.from('ailink/podr2/v1');

/**
 * The verifier's key, expanded deterministically from a 32-byte secret (the key file stores only the secret):
 * prfKey = HKDF-SHA256(secret, "ailink/podr2/v1", "prf"), and α_l is drawn from the AES-256-CTR keystream keyed by
 * HKDF(…, "alpha/l"): 31-bit words, rejecting 2^31 − 1, so each α_lj is exactly uniform in [0, p). Each lane has its
 * own stream, so α for a smaller blockSize is a prefix of α for a larger one.
 * @throws INVALID_INPUT when the secret is not 32 bytes.
 */
export function derivePodr2Key(secret: Uint8Array, params: Podr2Params = DEFAULTS): Podr2Key {
  if (!(secret instanceof Uint8Array) || secret.length !== 32) {
    throw invalid(`podr2: expected a 32-byte secret, got ${secret?.length ?? typeof secret} bytes`);
  }
  const kdf = (info: string) => new Uint8Array(hkdfSync('sha256', secret, KDF_SALT, info, 32));
  const s = sectorsOf(params);
  const alpha: Float64Array[] = [];
  for (let l = 0; l < PODR2_LANES; l++) {
    const stream = new WordStream(kdf(`alpha/${l}`));
    const a = new Float64Array(s);
    for (let j = 0; j < s; j++) a[j] = stream.field();
    alpha.push(a);
  }
  return Object.freeze({ prfKey: kdf('prf'), alpha: Object.freeze(alpha), blockSize: params.blockSize });
}

function checkName(name: string): void {
  if (typeof name !== 'string' || !HASH_RE.test(name)) {
    throw invalid(
      `podr2: expected a fragment name of 64 lowercase hex characters, got ${JSON.stringify(name)}`,
    );
  }
}

function checkKey(key: Podr2Key, params: Podr2Params): void {
  if (key.blockSize !== params.blockSize || key.alpha.length !== PODR2_LANES) {
    throw invalid(`podr2: key was derived for blockSize ${key.blockSize}, params say ${params.blockSize}`);
  }
}

/** Per-fragment PRF key: HMAC-SHA256(prfKey, raw 32 bytes of the name). */
const fragmentKey = (key: Podr2Key, name: string): Buffer =>
  createHmac('sha256', key.prfKey).update(Buffer.from(name, 'hex')).digest();

/**
 * Reads lane values out of AES output blocks: lane l of block k takes the u64 LE at byte 16k + 8l and reduces it mod p
 * (lo + 2^32·hi ≡ lo + 2·hi, since 2^32 ≡ 2). Reducing 64 uniform bits leaves a bias of at most p/2^64 ≈ 2^-33.
 */
function laneValue(out: Uint8Array, k: number, lane: number): number {
  const o = 16 * k + 8 * lane;
  const lo = (out[o]! | (out[o + 1]! << 8) | (out[o + 2]! << 16) | (out[o + 3]! << 24)) >>> 0;
  const hi = (out[o + 4]! | (out[o + 5]! << 8) | (out[o + 6]! << 16) | (out[o + 7]! << 24)) >>> 0;
  return (lo + 2 * hi) % P;
}

/**
 * f(name, i) for i = 0..n−1: AES-256 under the fragment key of the 128-bit big-endian block index, which is exactly
 * the AES-CTR keystream from a zero IV — one cipher call for a whole fragment.
 */
function prfRange(key: Podr2Key, name: string, n: number): Uint8Array {
  const c = createCipheriv('aes-256-ctr', fragmentKey(key, name), Buffer.alloc(16));
  return new Uint8Array(c.update(Buffer.alloc(16 * n)));
}

/** The same PRF at arbitrary indices: AES-256-ECB over their 128-bit big-endian encodings, one cipher call. */
function prfAt(key: Podr2Key, name: string, indices: readonly number[]): Uint8Array {
  const input = Buffer.alloc(16 * indices.length);
  for (let k = 0; k < indices.length; k++) {
    const i = indices[k]!;
    input.writeUInt32BE(Math.floor(i / 4294967296), 16 * k + 8);
    input.writeUInt32BE(i >>> 0, 16 * k + 12);
  }
  const c = createCipheriv('aes-256-ecb', fragmentKey(key, name), null);
  c.setAutoPadding(false);
  return new Uint8Array(c.update(input));
}

/**
 * Sectors of `bytes` as u16 LE words: a view when the bytes are whole and 2-aligned, otherwise a zero-padded copy
 * (into `scratch` when given). Odd byte offsets are common: Buffers are carved out of a shared pool.
 */
function wordsOf(bytes: Uint8Array, count: number, scratch?: Uint16Array): Uint16Array {
  if (LITTLE_ENDIAN && bytes.byteOffset % 2 === 0 && bytes.length >= 2 * count) {
    return new Uint16Array(bytes.buffer, bytes.byteOffset, count);
  }
  const out = scratch ?? new Uint16Array(count);
  const len = Math.min(bytes.length, 2 * count);
  if (LITTLE_ENDIAN) {
    const raw = new Uint8Array(out.buffer, out.byteOffset, 2 * count);
    raw.set(bytes.subarray(0, len));
    raw.fill(0, len);
    return out;
  }
  out.fill(0);
  for (let b = 0; b < len; b++) out[b >> 1]! |= bytes[b]! << (8 * (b & 1));
  return out;
}

/**
 * Σ_j α_lj·m_j mod p for both lanes over s words starting at `base`, written to out[0], out[1]. Float sums of 64
 * terms are exact (see the module comment); two accumulators per lane let the adds overlap.
 */
function combine(
  w: Uint16Array,
  base: number,
  s: number,
  a0: Float64Array,
  a1: Float64Array,
  out: Float64Array,
): void {
  let r0 = 0;
  let r1 = 0;
  for (let j0 = 0; j0 < s; j0 += CHUNK) {
    const end = Math.min(j0 + CHUNK, s);
    let x0 = 0;
    let x1 = 0;
    let y0 = 0;
    let y1 = 0;
    let j = j0;
    for (; j + 1 < end; j += 2) {
      const m = w[base + j]!;
      const n = w[base + j + 1]!;
      x0 += a0[j]! * m;
      y0 += a1[j]! * m;
      x1 += a0[j + 1]! * n;
      y1 += a1[j + 1]! * n;
    }
    if (j < end) {
      const m = w[base + j]!;
      x0 += a0[j]! * m;
      y0 += a1[j]! * m;
    }
    // x0 + x1 ≤ 64 terms < 2^53, reduced; r + reduced < 2^32, exact.
    r0 = modP(r0 + modP(x0 + x1));
    r1 = modP(r1 + modP(y0 + y1));
  }
  out[0] = r0;
  out[1] = r1;
}

/**
 * Tags of a whole fragment: nBlocks × PODR2_LANES u32 LE values (block-major), 4·2 = 8 bytes per block, i.e. 1/1024
 * of the data at 8 KiB blocks.
 * @throws INVALID_INPUT on a name that is not 64 lowercase hex characters or a key derived for another blockSize.
 */
export function tagFragment(
  key: Podr2Key,
  name: string,
  data: Uint8Array,
  params: Podr2Params = DEFAULTS,
): Uint8Array {
  checkName(name);
  checkKey(key, params);
  const { blockSize } = params;
  const s = sectorsOf(params);
  const n = blocksOf(data.length, params);
  const prf = prfRange(key, name, n);
  const tags = new Uint8Array(n * PODR2_LANES * 4);
  const view = new DataView(tags.buffer);
  const [a0, a1] = key.alpha as [Float64Array, Float64Array];
  const out = new Float64Array(2);
  const full = Math.floor(data.length / blockSize);
  // Whole blocks straight from an aligned u16 view when the bytes allow it; otherwise copied one at a time.
  const aligned = LITTLE_ENDIAN && data.byteOffset % 2 === 0;
  const all = aligned ? new Uint16Array(data.buffer, data.byteOffset, full * s) : undefined;
  const scratch = new Uint16Array(s);
  for (let i = 0; i < n; i++) {
    let w: Uint16Array;
    let base = 0;
    if (all !== undefined && i < full) {
      w = all;
      base = i * s;
    } else {
      w = wordsOf(data.subarray(i * blockSize, Math.min((i + 1) * blockSize, data.length)), s, scratch);
    }
    combine(w, base, s, a0, a1, out);
    for (let l = 0; l < PODR2_LANES; l++) {
      const t = out[l]! + laneValue(prf, i, l);
      view.setUint32(8 * i + 4 * l, t >= P ? t - P : t, true);
    }
  }
  return tags;
}

/**
 * The PODR2_LANES tag values of block `index` from a fragment's tag bytes.
 * @throws PROOF_MALFORMED when the tags do not hold that block.
 */
export function tagsOf(tags: Uint8Array, index: number): [number, number] {
  const o = index * PODR2_LANES * 4;
  if (!Number.isInteger(index) || index < 0 || o + PODR2_LANES * 4 > tags.length) {
    throw malformed(`podr2: expected a block index below ${tags.length / (PODR2_LANES * 4)}, got ${index}`);
  }
  const view = new DataView(tags.buffer, tags.byteOffset, tags.byteLength);
  return [view.getUint32(o, true), view.getUint32(o + 4, true)];
}

/**
 * Checks stored tags for a fragment of `blocks` blocks: the length, and every value in [0, p).
 * @throws PROOF_MALFORMED on a wrong length or an out-of-range value.
 */
export function checkTags(tags: Uint8Array, blocks: number): void {
  const expected = blocks * PODR2_LANES * 4;
  if (tags.length !== expected) {
    throw malformed(`podr2: expected ${expected} tag bytes for ${blocks} blocks, got ${tags.length}`);
  }
  const view = new DataView(tags.buffer, tags.byteOffset, tags.byteLength);
  for (let o = 0; o < expected; o += 4) {
    if (view.getUint32(o, true) >= P) throw malformed(`podr2: tag value at byte ${o} is not below p`);
  }
}

const CHALLENGE_DOMAIN = Buffer.from('ailink/podr2/challenge/v1\0');

/**
 * The challenge for a round, deterministic from `seed` (chain randomness) and independent per fragment: fragment
 * `name` gets min(challengeBlocks, blocks) distinct block indices (ascending) and coefficients ν ∈ [1, p), drawn from
 * the AES-256-CTR keystream keyed by SHA-256(domain ‖ u32 len(seed) ‖ seed ‖ name bytes). Indices are uniform by
 * rejection (no modulo bias); ν ≠ 0 so that every challenged block counts. A name listed twice (the same bytes
 * stored for two files, e.g. an all-zero fragment) is challenged once: the second listing is dropped, so the items
 * of the result may be fewer than the items given.
 * @throws INVALID_INPUT on an empty seed, a bad name, a block count that is not an integer in [0, 2^32], or one
 *   name listed with two different block counts.
 */
export function deriveChallenge(
  seed: Uint8Array,
  items: readonly { name: string; blocks: number }[],
  params: Podr2Params = DEFAULTS,
): Podr2Challenge {
  if (!(seed instanceof Uint8Array) || seed.length === 0) throw invalid('podr2: expected a non-empty seed');
  const seen = new Map<string, number>();
  const len = Buffer.alloc(4);
  len.writeUInt32LE(seed.length);
  const out: Podr2Challenge['items'][number][] = [];
  for (const { name, blocks } of items) {
    checkName(name);
    if (!Number.isInteger(blocks) || blocks < 0 || blocks > 4294967296) {
      throw invalid(`podr2: expected a block count in [0, 2^32] for ${name}, got ${blocks}`);
    }
    const before = seen.get(name);
    if (before !== undefined) {
      if (before !== blocks) {
        throw invalid(`podr2: fragment ${name} is listed with ${before} and with ${blocks} blocks`);
      }
      continue;
    }
    seen.set(name, blocks);
    const stream = new WordStream(
      createHash('sha256')
        .update(CHALLENGE_DOMAIN)
        .update(len)
        .update(seed)
        .update(Buffer.from(name, 'hex'))
        .digest(),
    );
    const k = Math.min(params.challengeBlocks, blocks);
    let indices: number[];
    if (k === blocks) {
      indices = Array.from({ length: blocks }, (_, i) => i);
    } else {
      const picked = new Set<number>();
      while (picked.size < k) picked.add(stream.below(blocks));
      indices = [...picked].sort((a, b) => a - b);
    }
    const coefficients = indices.map(() => {
      for (;;) {
        const v = stream.field();
        if (v !== 0) return v;
      }
    });
    out.push({ name, indices, coefficients });
  }
  return { items: out };
}

function checkChallengeShape(challenge: Podr2Challenge): void {
  for (const item of challenge.items) {
    if (item.indices.length !== item.coefficients.length) {
      throw invalid(
        `podr2: challenge for ${item.name} has ${item.indices.length} indices but ${item.coefficients.length} coefficients`,
      );
    }
  }
}

/**
 * The miner's answer: one proof for every fragment of the challenge, s + PODR2_LANES field elements.
 * μ accumulates ν·m in doubles (each < 2^47) and is reduced every 63 blocks, so it stays below p + 63·2^47 < 2^53.
 * @throws INVALID_INPUT when the source returns a block longer than blockSize or a challenge is inconsistent;
 *   PROOF_MALFORMED when the source returns fewer than PODR2_LANES tags or a tag not below p.
 */
export function proveChallenge(
  challenge: Podr2Challenge,
  source: Podr2Source,
  params: Podr2Params = DEFAULTS,
): Podr2Proof {
  checkChallengeShape(challenge);
  const s = sectorsOf(params);
  const acc = new Float64Array(s);
  const sigma = [0, 0];
  let pending = 0;
  for (const { name, indices, coefficients } of challenge.items) {
    for (let k = 0; k < indices.length; k++) {
      const index = indices[k]!;
      const nu = coefficients[k]!;
      const bytes = source.block(name, index);
      if (bytes.length > params.blockSize) {
        throw invalid(
          `podr2: expected block ${index} of ${name} to be ≤ ${params.blockSize} bytes, got ${bytes.length}`,
        );
      }
      const w = wordsOf(bytes, s);
      for (let j = 0; j < s; j++) acc[j]! += nu * w[j]!;
      const t = source.tags(name, index);
      if (t.length < PODR2_LANES) {
        throw malformed(`podr2: expected ${PODR2_LANES} tags for block ${index} of ${name}, got ${t.length}`);
      }
      for (let l = 0; l < PODR2_LANES; l++) {
        const v = t[l]!;
        if (!Number.isInteger(v) || v < 0 || v >= P) {
          throw malformed(`podr2: tag ${l} of block ${index} of ${name} is not a field element: ${v}`);
        }
        sigma[l] = modP(sigma[l]! + mulMod(nu, v));
      }
      if (++pending === CHUNK - 1) {
        for (let j = 0; j < s; j++) acc[j] = modP(acc[j]!);
        pending = 0;
      }
    }
  }
  const mu = new Uint32Array(s);
  for (let j = 0; j < s; j++) mu[j] = modP(acc[j]!);
  return { mu, sigma: Uint32Array.from(sigma) };
}

function checkProofShape(proof: Podr2Proof, params: Podr2Params): void {
  const s = sectorsOf(params);
  if (proof.mu.length !== s || proof.sigma.length !== PODR2_LANES) {
    throw malformed(
      `podr2: expected a proof of ${s} μ and ${PODR2_LANES} σ values, got ${proof.mu.length} and ${proof.sigma.length}`,
    );
  }
  for (let j = 0; j < s; j++) if (proof.mu[j]! >= P) throw malformed(`podr2: μ[${j}] is not below p`);
  for (let l = 0; l < PODR2_LANES; l++)
    if (proof.sigma[l]! >= P) throw malformed(`podr2: σ[${l}] is not below p`);
}

/**
 * True when the proof answers the challenge under `key`: σ_l = Σ ν·f_l(name, i) + Σ_j α_lj·μ_j for every lane.
 * The PRF costs one HMAC and one AES-ECB call per fragment, whatever the number of challenged blocks.
 * @throws PROOF_MALFORMED when the proof has the wrong shape or a value not below p; INVALID_INPUT on a key for
 *   another blockSize, a bad name or an inconsistent challenge.
 */
export function verifyProof(
  key: Podr2Key,
  challenge: Podr2Challenge,
  proof: Podr2Proof,
  params: Podr2Params = DEFAULTS,
): boolean {
  checkKey(key, params);
  checkChallengeShape(challenge);
  checkProofShape(proof, params);
  const s = sectorsOf(params);
  const expected = [0, 0];
  for (const { name, indices, coefficients } of challenge.items) {
    checkName(name);
    if (indices.length === 0) continue;
    const prf = prfAt(key, name, indices);
    for (let k = 0; k < indices.length; k++) {
      const nu = coefficients[k]!;
      for (let l = 0; l < PODR2_LANES; l++)
        expected[l] = modP(expected[l]! + mulMod(nu, laneValue(prf, k, l)));
    }
  }
  let ok = true;
  for (let l = 0; l < PODR2_LANES; l++) {
    const a = key.alpha[l]!;
    let e = expected[l]!;
    for (let j = 0; j < s; j++) e = modP(e + mulMod(a[j]!, proof.mu[j]!));
    // Every lane is computed (no early exit) so that timing says nothing about which lane failed.
    ok = ok && e === proof.sigma[l];
  }
  return ok;
}

/** Wire form of a proof: μ then σ as u32 LE, (s + PODR2_LANES)·4 bytes whatever the number of fragments. */
export function encodeProof(proof: Podr2Proof): Uint8Array {
  const out = new Uint8Array((proof.mu.length + proof.sigma.length) * 4);
  const view = new DataView(out.buffer);
  let o = 0;
  for (const v of proof.mu) {
    view.setUint32(o, v, true);
    o += 4;
  }
  for (const v of proof.sigma) {
    view.setUint32(o, v, true);
    o += 4;
  }
  return out;
}

/**
 * Parses a proof from the wire.
 * @throws PROOF_MALFORMED on a length other than (blockSize/2 + PODR2_LANES)·4 or any value not below p.
 */
export function decodeProof(bytes: Uint8Array, params: Podr2Params = DEFAULTS): Podr2Proof {
  const s = sectorsOf(params);
  const expected = (s + PODR2_LANES) * 4;
  if (!(bytes instanceof Uint8Array) || bytes.length !== expected) {
    throw malformed(`podr2: expected a proof of ${expected} bytes, got ${bytes?.length}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const mu = new Uint32Array(s);
  const sigma = new Uint32Array(PODR2_LANES);
  for (let j = 0; j < s; j++) mu[j] = view.getUint32(4 * j, true);
  for (let l = 0; l < PODR2_LANES; l++) sigma[l] = view.getUint32(4 * (s + l), true);
  const proof = { mu, sigma };
  checkProofShape(proof, params);
  return proof;
}
