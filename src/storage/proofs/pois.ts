/**
 * Proof of idle space (PoIS), simplified as DESIGN.md §5 allows: each idle file is the labelling of a fixed
 * depth-robust-style graph (DRG), committed to by a Merkle root; a challenge opens random nodes, and the miner
 * shows each opened label, its parents' labels and Merkle paths to the committed root for all of them. The
 * verifier recomputes the opened label from its parents, so the miner must hold (or recompute) the labels around
 * every opened node, and cannot pass with zero-filled, another miner's or another file index's data.
 *
 * Why deleting idle files does not pay (v2; issue 15 item 5). Every label costs `rounds` PBKDF2-HMAC-SHA256
 * iterations, and label i needs label i−1, so labelling is a chain of nodes × rounds iterations that more cores do
 * not shorten. An honest miner pays it once per file when it commits idle space; the verifier pays `rounds` per
 * opened node. A miner that deleted its files must, for each challenged file, relabel every node up to the highest
 * one opened — even if it kept the Merkle tree — and the network sizes (nodes, rounds) so that this takes several
 * times the challenge's deadline. `npm run bench:pois` measures it. At CESS_AUDIT (64 MiB files, 8192 rounds, 16
 * openings, 50 + at most 6 blocks to answer) on this 2-core machine: a label ~1.5 ms, labelling a file ~55 min
 * (~15 core-hours per GiB of idle space), an honest answer ≤ 16 Merkle trees of ~6 s, and the luckiest cheater
 * (one core per challenged file) needs ≥ ~2,400 s against a deadline of 306–336 s at 6-second blocks: a margin of
 * ~7–8 (~15 at the dev chain's 3-second heartbeat). With PoIS v1's one hash per label the same regeneration took
 * ~30 s: the attack worked.
 *
 * What this does NOT prove:
 * - Speed is relative to this machine's OpenSSL (SHA-NI, ~0.19 µs per iteration). A cheater with a faster SHA-256
 *   (native, ASIC) shortens the chain by that factor; a margin of ~8 covers a few-fold, not an ASIC's.
 * - Partial storage: the graph is uniform random parents plus the predecessor, not a proven depth-robust graph, and
 *   there is one layer, not stacked layers. A miner that keeps part of each file (e.g. every other label) recomputes
 *   the rest quickly; no space–time bound is claimed. Deleting a fraction f of whole files passes a challenge with
 *   probability about (1 − f)^openings.
 * - The deadline is in blocks: a chain that seals blocks faster (the dev chain seals one per transaction) only
 *   shortens it, and the honest answer (≤ `openings` Merkle trees) must fit too; one that seals slower lengthens it.
 *   The challenge's idle slip counts at most `openings` files (src/chain/pallets/audit.ts), so holding more idle
 *   space does not buy time.
 * - Labelling is slow for honest miners too: `labelIdleFileAsync` keeps a node responsive while it labels, and
 *   test and dev networks use small `rounds` and short deadlines so that the same inequality holds at their scale.
 * - The miner implementation also simply fails when its idle file is gone (`labelsOf` throws) rather than
 *   regenerating it.
 *
 * Formats (frozen by the test vector in test/storage/pois.test.ts; u16/u32 are big-endian):
 * - Graph: node 0 has no parents; node i ≥ 1 has `parents` parents: i−1 first, then parents−1 pseudo-random
 *   earlier nodes. Random parent k (1 ≤ k < parents) is word w = (k−1) mod 8 of
 *   SHA-256("ailink/pois/v1/parent" ‖ u32 i ‖ u32 ⌊(k−1)/8⌋), read as a u32, mod i. The graph depends only on
 *   (i, k), so it is the same for everyone and for every file. Duplicate parents are ALLOWED (node 1 can only
 *   have parent 0, and avoiding duplicates would need rejection sampling for no security gain here); a
 *   duplicate's label simply appears twice in the hash input and twice in a proof. The modulo bias is at most
 *   i / 2³², i.e. < 2⁻⁸ even for the largest allowed file.
 * - Label (v2): label_i = PBKDF2-HMAC-SHA256(P = SHA-256("ailink/pois/v2" ‖ u16 len(owner) ‖ owner UTF-8 ‖
 *   u32 fileIndex ‖ u32 i ‖ label of each parent in order), S = "ailink/pois/v2/label", c = rounds, 32 bytes).
 *   The length prefix keeps owner/fileIndex boundaries unambiguous. v1 labels were the inner SHA-256 alone; the
 *   graph and challenge tags below still say v1 because those formats did not change.
 * - Merkle tree over the labels (nodes is a power of two, so the tree is perfect): leaf = SHA-256(0x00 ‖ label),
 *   internal = SHA-256(0x01 ‖ left ‖ right); the domain bytes stop a leaf from posing as an internal node.
 *   A path lists log2(nodes) siblings from the leaf level up; the node index gives left/right at each level.
 * - Challenge opening j: h = SHA-256("ailink/pois/v1/challenge" ‖ seed ‖ u32 j); the committed files sorted by
 *   index, file = sorted[u32(h[0..4]) mod count].index, node = 1 + u32(h[4..8]) mod (nodes − 1).
 * - Wire: u8 version (2; v1 proofs are refused) ‖ u32 count ‖ count × (u32 file ‖ u32 node ‖ label ‖ path ‖
 *   parents × (label ‖ path)),
 *   where every label and sibling is 32 bytes, a path is log2(nodes) siblings and parent openings follow the
 *   graph order (their node numbers are implied by the graph, so they are not sent).
 */
import { hash, pbkdf2Sync } from 'node:crypto';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { toHex } from '../../shared/bytes.ts';
import { AilinkError } from '../../shared/errors.ts';

/** Shape of the idle-space proofs. All three are integers; see `poisParams` for the allowed ranges. */
export interface PoisParams {
  /** Labels per idle file; a power of two ≥ 2. An idle file is `nodes × 32` bytes. */
  readonly nodes: number;
  /** DRG in-degree of every node except node 0, counting the predecessor i−1; ≥ 1. */
  readonly parents: number;
  /** Openings per challenge (when at least one file is committed). */
  readonly openings: number;
  /**
   * PBKDF2-HMAC-SHA256 iterations per label: the sequential cost that makes regenerating a deleted idle file take
   * longer than the audit's response deadline. ≥ 1; size it with `npm run bench:pois` against the network's deadline.
   */
  readonly rounds: number;
}

/** One opened node: its label and Merkle path, and the label and path of each of its parents in graph order. */
export interface IdleOpening {
  readonly file: number;
  readonly node: number;
  readonly label: Uint8Array;
  readonly path: readonly Uint8Array[];
  readonly parents: readonly { readonly label: Uint8Array; readonly path: readonly Uint8Array[] }[];
}

/** The answer to one challenge: one opening per challenged (file, node), in challenge order. */
export interface IdleProof {
  readonly openings: readonly IdleOpening[];
}

const LABEL = 32;
const MAX_NODES = 2 ** 24; // 512 MiB idle files; also keeps node numbers far inside u32
const MAX_PARENTS = 64;
const MAX_OPENINGS = 4096;
const MAX_ROUNDS = 2 ** 24;
const MAX_OWNER_BYTES = 0xffff;
const U32_LIMIT = 2 ** 32;
const WIRE_VERSION = 2;
const WIRE_HEADER = 5; // u8 version ‖ u32 count
const ROOT_RE = /^[0-9a-f]{64}$/;

const DEFAULTS: PoisParams = Object.freeze({ nodes: 1 << 21, parents: 6, openings: 16, rounds: 8192 });

const LABEL_TAG = Buffer.from('ailink/pois/v2', 'ascii');
const LABEL_SALT = Buffer.from('ailink/pois/v2/label', 'ascii');
// The graph and the challenge derivation did not change with v2 (only the label did): their tags stay.
const PARENT_TAG = Buffer.from('ailink/pois/v1/parent', 'ascii');
const CHALLENGE_TAG = Buffer.from('ailink/pois/v1/challenge', 'ascii');
// Labels per slice before `labelIdleFileAsync` yields: about 2^16 PBKDF2 iterations (~13 ms here) per slice.
const SLICE_ITERATIONS = 1 << 16;

// node:crypto's one-shot hash is ~1.5× faster than createHash().update().digest() for these small inputs.
const sha256 = (data: Uint8Array): Buffer => hash('sha256', data, 'buffer');

const invalid = (message: string, details?: Record<string, unknown>): AilinkError =>
  new AilinkError('INVALID_INPUT', message, details === undefined ? {} : { details });
const malformed = (message: string): AilinkError => new AilinkError('PROOF_MALFORMED', message);

const isIntIn = (v: unknown, lo: number, hi: number): v is number =>
  typeof v === 'number' && Number.isInteger(v) && v >= lo && v <= hi;
const isPowerOfTwo = (n: number): boolean => n > 0 && (n & (n - 1)) === 0;
const log2 = (n: number): number => 31 - Math.clz32(n);

/**
 * Full, frozen PoIS parameters: `partial` over the defaults { nodes: 2²¹ (64 MiB idle files), parents: 6,
 * openings: 16, rounds: 8192 } (CESS_AUDIT's, sized by `npm run bench:pois` for CESS's 50-block deadline at 6-second blocks).
 * @throws AilinkError INVALID_INPUT when nodes is not a power of two in [2, 2²⁴], parents not an integer in
 *   [1, 64], openings not an integer in [1, 4096] or rounds not an integer in [1, 2²⁴].
 */
export function poisParams(partial: Partial<PoisParams> = {}): Readonly<PoisParams> {
  const params = {
    nodes: partial.nodes ?? DEFAULTS.nodes,
    parents: partial.parents ?? DEFAULTS.parents,
    openings: partial.openings ?? DEFAULTS.openings,
    rounds: partial.rounds ?? DEFAULTS.rounds,
  };
  checkParams(params);
  return Object.freeze(params);
}

/** Bytes of one idle file (its labels) under `params`. @throws AilinkError INVALID_INPUT for bad params. */
export function idleFileBytes(params: PoisParams): number {
  checkParams(params);
  return params.nodes * LABEL;
}

// Every entry point re-checks params: callers may build the object by hand rather than through poisParams.
function checkParams(params: PoisParams): void {
  const { nodes, parents, openings, rounds } = params;
  if (!isIntIn(nodes, 2, MAX_NODES) || !isPowerOfTwo(nodes)) {
    throw invalid(`PoIS nodes: expected a power of two in [2, ${MAX_NODES}], got ${String(nodes)}`);
  }
  if (!isIntIn(parents, 1, MAX_PARENTS)) {
    throw invalid(`PoIS parents: expected an integer in [1, ${MAX_PARENTS}], got ${String(parents)}`);
  }
  if (!isIntIn(openings, 1, MAX_OPENINGS)) {
    throw invalid(`PoIS openings: expected an integer in [1, ${MAX_OPENINGS}], got ${String(openings)}`);
  }
  if (!isIntIn(rounds, 1, MAX_ROUNDS)) {
    throw invalid(`PoIS rounds: expected an integer in [1, ${MAX_ROUNDS}], got ${String(rounds)}`);
  }
}

/**
 * The parents of `node` in the fixed graph, in the order their labels are hashed: [] for node 0, otherwise
 * node−1 followed by parents−1 pseudo-random earlier nodes (duplicates possible).
 * @throws AilinkError INVALID_INPUT for bad params or a node outside [0, nodes).
 */
export function idleParents(node: number, params: PoisParams): number[] {
  checkParams(params);
  if (!isIntIn(node, 0, params.nodes - 1)) {
    throw invalid(`PoIS node: expected an integer in [0, ${params.nodes}), got ${String(node)}`);
  }
  const out = new Array<number>(node === 0 ? 0 : params.parents);
  if (node > 0) parentsInto(node, params.parents, out, Buffer.alloc(PARENT_TAG.length + 8));
  return out;
}

/** Writes the parents of node i ≥ 1 into out[0..parents); `scratch` is PARENT_TAG.length + 8 bytes. */
function parentsInto(i: number, parents: number, out: number[] | Uint32Array, scratch: Buffer): void {
  out[0] = i - 1;
  const at = PARENT_TAG.length;
  PARENT_TAG.copy(scratch, 0);
  scratch.writeUInt32BE(i, at);
  let words: Buffer | undefined;
  for (let k = 1; k < parents; k++) {
    const w = (k - 1) & 7;
    if (w === 0) {
      scratch.writeUInt32BE((k - 1) >>> 3, at + 4);
      words = sha256(scratch);
    }
    out[k] = words!.readUInt32BE(w * 4) % i;
  }
}

/** "ailink/pois/v1" ‖ u16 len(owner) ‖ owner ‖ u32 fileIndex: the part of every label input shared by a file. */
function labelPrefix(owner: string, fileIndex: number): Buffer {
  if (typeof owner !== 'string' || owner.length === 0) {
    throw invalid('PoIS owner: expected a non-empty account string (SS58)');
  }
  const ownerBytes = Buffer.from(owner, 'utf8');
  if (ownerBytes.length > MAX_OWNER_BYTES) {
    throw invalid(`PoIS owner: expected at most ${MAX_OWNER_BYTES} UTF-8 bytes, got ${ownerBytes.length}`);
  }
  if (!isIntIn(fileIndex, 0, U32_LIMIT - 1)) {
    throw invalid(`PoIS file index: expected an integer in [0, 2^32), got ${String(fileIndex)}`);
  }
  const prefix = Buffer.alloc(LABEL_TAG.length + 2 + ownerBytes.length + 4);
  LABEL_TAG.copy(prefix, 0);
  prefix.writeUInt16BE(ownerBytes.length, LABEL_TAG.length);
  ownerBytes.copy(prefix, LABEL_TAG.length + 2);
  prefix.writeUInt32BE(fileIndex, prefix.length - 4);
  return prefix;
}

/** label = PBKDF2-HMAC-SHA256(P = SHA-256(label input), S = LABEL_SALT, c = rounds, 32 bytes). */
const slowLabel = (input: Uint8Array, rounds: number): Buffer =>
  pbkdf2Sync(sha256(input), LABEL_SALT, rounds, LABEL, 'sha256');

/** Labels nodes [from, to) of `out` in place; every earlier label must already be there. */
function labelRange(
  prefix: Buffer,
  params: PoisParams,
  out: Uint8Array,
  from: number,
  to: number,
  scratch: { input: Buffer; parentScratch: Buffer; ps: Uint32Array },
): void {
  const { parents, rounds } = params;
  const { input, parentScratch, ps } = scratch;
  const at = prefix.length;
  for (let i = from; i < to; i++) {
    input.writeUInt32BE(i, at);
    if (i === 0) {
      out.set(slowLabel(input.subarray(0, at + 4), rounds), 0);
      continue;
    }
    parentsInto(i, parents, ps, parentScratch);
    for (let k = 0; k < parents; k++) {
      const p = ps[k]! * LABEL;
      input.set(out.subarray(p, p + LABEL), at + 4 + k * LABEL);
    }
    out.set(slowLabel(input, rounds), i * LABEL);
  }
}

function labelling(owner: string, fileIndex: number, params: PoisParams) {
  checkParams(params);
  const prefix = labelPrefix(owner, fileIndex);
  // One scratch input reused for every node: prefix ‖ u32 i ‖ parent labels.
  const input = Buffer.alloc(prefix.length + 4 + params.parents * LABEL);
  prefix.copy(input, 0);
  const scratch = {
    input,
    parentScratch: Buffer.alloc(PARENT_TAG.length + 8),
    ps: new Uint32Array(params.parents),
  };
  return { prefix, scratch, out: new Uint8Array(params.nodes * LABEL) };
}

/**
 * Labels one idle file: `nodes × 32` bytes, label i at offset 32·i. This is the idle file's content on disk.
 * Deterministic in (owner, fileIndex, params) and sequential by construction: each label needs its predecessor,
 * and each costs `rounds` PBKDF2 iterations, so the file takes `nodes × rounds` iterations one after another.
 * It blocks its thread that long: a long-running process labels with `labelIdleFileAsync`.
 * `upTo` (default: all) labels only nodes [0, upTo) and leaves the rest zero — what a miner that deleted the file
 * must redo to open node upTo − 1.
 * @throws AilinkError INVALID_INPUT for bad params, an empty or over-long owner, a fileIndex outside u32, or upTo
 *   outside [0, nodes].
 */
export function labelIdleFile(
  owner: string,
  fileIndex: number,
  params: PoisParams,
  upTo: number = params.nodes,
): Uint8Array {
  const { prefix, scratch, out } = labelling(owner, fileIndex, params);
  if (!isIntIn(upTo, 0, params.nodes)) {
    throw invalid(`PoIS upTo: expected an integer in [0, ${params.nodes}], got ${String(upTo)}`);
  }
  labelRange(prefix, params, out, 0, upTo, scratch);
  return out;
}

/**
 * `labelIdleFile`, yielding to the event loop after every slice of about 2¹⁶ PBKDF2 iterations so that a node
 * stays responsive while it labels (hours for a production-sized file). Same output, byte for byte.
 * @throws AilinkError INVALID_INPUT as `labelIdleFile`; the signal's reason when it is aborted.
 */
export async function labelIdleFileAsync(
  owner: string,
  fileIndex: number,
  params: PoisParams,
  options: { readonly signal?: AbortSignal } = {},
): Promise<Uint8Array> {
  const { prefix, scratch, out } = labelling(owner, fileIndex, params);
  const slice = Math.max(1, Math.floor(SLICE_ITERATIONS / params.rounds));
  for (let from = 0; from < params.nodes; from += slice) {
    options.signal?.throwIfAborted();
    labelRange(prefix, params, out, from, Math.min(params.nodes, from + slice), scratch);
    await yieldToLoop();
  }
  return out;
}

/** Recomputes label i ≥ 1 from the opened parent labels, for the verifier. */
function labelFrom(prefix: Buffer, i: number, parentLabels: readonly Uint8Array[], rounds: number): Buffer {
  const input = Buffer.alloc(prefix.length + 4 + parentLabels.length * LABEL);
  prefix.copy(input, 0);
  input.writeUInt32BE(i, prefix.length);
  parentLabels.forEach((l, k) => {
    input.set(l, prefix.length + 4 + k * LABEL);
  });
  return slowLabel(input, rounds);
}

const leafHash = (label: Uint8Array): Buffer => {
  const input = Buffer.alloc(1 + LABEL);
  input[0] = 0x00;
  input.set(label, 1);
  return sha256(input);
};

const nodeHash = (left: Uint8Array, right: Uint8Array): Buffer => {
  const input = Buffer.alloc(1 + 2 * LABEL);
  input[0] = 0x01;
  input.set(left, 1);
  input.set(right, 1 + LABEL);
  return sha256(input);
};

/**
 * Every level of the Merkle tree over `labels` (32-byte leaves): levels[0] holds the leaf hashes
 * SHA-256(0x00 ‖ label) back to back, each next level the SHA-256(0x01 ‖ left ‖ right) of pairs, and the last
 * level is the 32-byte root. Build it once and take many paths from it.
 * @throws AilinkError INVALID_INPUT when `labels` is not a power-of-two number ≥ 2 of 32-byte labels.
 */
export function merkleTree(labels: Uint8Array): readonly Uint8Array[] {
  const leaves = labels.byteLength / LABEL;
  if (!Number.isInteger(leaves) || leaves < 2 || !isPowerOfTwo(leaves) || leaves > MAX_NODES) {
    throw invalid(
      `PoIS Merkle tree: expected a power of two ≥ 2 of 32-byte labels, got ${labels.byteLength} bytes`,
    );
  }
  const leafInput = Buffer.alloc(1 + LABEL); // byte 0 stays 0x00
  const level0 = new Uint8Array(labels.byteLength);
  for (let i = 0; i < leaves; i++) {
    leafInput.set(labels.subarray(i * LABEL, (i + 1) * LABEL), 1);
    level0.set(sha256(leafInput), i * LABEL);
  }
  const levels: Uint8Array[] = [level0];
  const pairInput = Buffer.alloc(1 + 2 * LABEL);
  pairInput[0] = 0x01;
  for (let below = level0; below.byteLength > LABEL; ) {
    const next = new Uint8Array(below.byteLength / 2);
    for (let j = 0; j < next.byteLength / LABEL; j++) {
      pairInput.set(below.subarray(2 * j * LABEL, (2 * j + 2) * LABEL), 1);
      next.set(sha256(pairInput), j * LABEL);
    }
    levels.push(next);
    below = next;
  }
  return levels;
}

/** Siblings of leaf `node` from the leaf level up (copies, so a proof does not pin the whole tree). */
function pathOf(levels: readonly Uint8Array[], node: number): Uint8Array[] {
  const path: Uint8Array[] = [];
  let x = node;
  for (let d = 0; d < levels.length - 1; d++) {
    const s = (x ^ 1) * LABEL;
    path.push(levels[d]!.slice(s, s + LABEL));
    x >>>= 1;
  }
  return path;
}

/** True when `label` at leaf `node` with `path` hashes up to `root`; shapes are checked, never trusted. */
function pathLeadsTo(root: Buffer, node: number, label: unknown, path: unknown, depth: number): boolean {
  if (!(label instanceof Uint8Array) || label.byteLength !== LABEL) return false;
  if (!Array.isArray(path) || path.length !== depth) return false;
  let h = leafHash(label);
  let x = node;
  for (const sibling of path as unknown[]) {
    if (!(sibling instanceof Uint8Array) || sibling.byteLength !== LABEL) return false;
    h = x & 1 ? nodeHash(sibling, h) : nodeHash(h, sibling);
    x >>>= 1;
  }
  return h.equals(root);
}

/**
 * The Merkle root (64 lowercase hex) committing to one idle file's labels.
 * @throws AilinkError INVALID_INPUT for bad params or when `labels` is not exactly `nodes × 32` bytes.
 */
export function idleRoot(labels: Uint8Array, params: PoisParams): string {
  checkParams(params);
  if (labels.byteLength !== params.nodes * LABEL) {
    throw invalid(
      `PoIS idle file: expected ${params.nodes * LABEL} bytes of labels, got ${labels.byteLength}`,
    );
  }
  return toHex(merkleTree(labels).at(-1)!);
}

/** index → root bytes; the committed set comes from the caller (the chain), so malformed entries throw. */
function rootsOf(files: readonly { index: number; root: string }[]): Map<number, Buffer> {
  const roots = new Map<number, Buffer>();
  for (const f of files) {
    if (!isIntIn(f.index, 0, U32_LIMIT - 1)) {
      throw invalid(`PoIS committed file: expected an index in [0, 2^32), got ${String(f.index)}`);
    }
    if (typeof f.root !== 'string' || !ROOT_RE.test(f.root)) {
      throw invalid(`PoIS committed file ${f.index}: expected a 64-hex root, got ${JSON.stringify(f.root)}`);
    }
    if (roots.has(f.index)) throw invalid(`PoIS committed files: index ${f.index} appears twice`);
    roots.set(f.index, Buffer.from(f.root, 'hex'));
  }
  return roots;
}

/**
 * The openings a seed (chain randomness) asks for: `params.openings` of them, each a committed file (by its
 * `index`, chosen among `files` sorted by index, so the order of `files` does not matter) and a node in
 * [1, nodes). No committed files → no openings.
 * @throws AilinkError INVALID_INPUT for bad params, or a files list with a non-u32 index, a root that is not
 *   64 lowercase hex, or a repeated index.
 */
export function deriveIdleChallenge(
  seed: Uint8Array,
  files: readonly { index: number; root: string }[],
  params: PoisParams,
): { file: number; node: number }[] {
  checkParams(params);
  const sorted = [...rootsOf(files).keys()].sort((a, b) => a - b);
  if (sorted.length === 0) return [];
  const input = Buffer.alloc(CHALLENGE_TAG.length + seed.byteLength + 4);
  CHALLENGE_TAG.copy(input, 0);
  input.set(seed, CHALLENGE_TAG.length);
  const out: { file: number; node: number }[] = [];
  for (let j = 0; j < params.openings; j++) {
    input.writeUInt32BE(j, input.length - 4);
    const h = sha256(input);
    out.push({
      file: sorted[h.readUInt32BE(0) % sorted.length]!,
      node: 1 + (h.readUInt32BE(4) % (params.nodes - 1)),
    });
  }
  return out;
}

/**
 * Answers a challenge. `labelsOf(fileIndex)` returns that idle file's labels (the miner reads it from disk); a
 * miner that lost the file cannot answer, and whatever `labelsOf` throws propagates. Each distinct file is read
 * and its tree built once, then dropped before the next file.
 * @throws AilinkError INVALID_INPUT for bad params, a challenged node outside [1, nodes), or labels of the wrong
 *   length; anything `labelsOf` throws.
 */
export function proveIdle(
  challenge: readonly { file: number; node: number }[],
  labelsOf: (fileIndex: number) => Uint8Array,
  params: PoisParams,
): IdleProof {
  checkParams(params);
  const byFile = new Map<number, number[]>();
  challenge.forEach((c, j) => {
    if (!isIntIn(c.node, 1, params.nodes - 1)) {
      throw invalid(`PoIS challenge ${j}: expected a node in [1, ${params.nodes}), got ${String(c.node)}`);
    }
    const list = byFile.get(c.file);
    if (list === undefined) byFile.set(c.file, [j]);
    else list.push(j);
  });
  const openings = new Array<IdleOpening>(challenge.length);
  for (const [file, js] of byFile) {
    const labels = labelsOf(file);
    if (labels.byteLength !== params.nodes * LABEL) {
      throw invalid(
        `PoIS idle file ${file}: expected ${params.nodes * LABEL} bytes, got ${labels.byteLength}`,
      );
    }
    const levels = merkleTree(labels);
    const open = (n: number) => ({
      label: labels.slice(n * LABEL, (n + 1) * LABEL),
      path: pathOf(levels, n),
    });
    for (const j of js) {
      const node = challenge[j]!.node;
      openings[j] = { file, node, ...open(node), parents: idleParents(node, params).map(open) };
    }
  }
  return { openings };
}

/**
 * Checks a proof against the committed roots: the proof must answer exactly this challenge (same files and
 * nodes, in order, `params.openings` of them unless nothing is committed), every label's path must lead to its
 * file's root, and every opened label must equal the hash of its opened parents under (owner, file index).
 * Never throws because of the challenge or the proof: anything wrong there is `false`.
 * @throws AilinkError INVALID_INPUT for bad params, an empty owner, or a malformed committed files list
 *   (those are the verifier's own inputs).
 */
export function verifyIdle(
  owner: string,
  files: readonly { index: number; root: string }[],
  challenge: readonly { file: number; node: number }[],
  proof: IdleProof,
  params: PoisParams,
): boolean {
  checkParams(params);
  labelPrefix(owner, 0); // validates the owner up front, whatever the proof holds
  const roots = rootsOf(files);
  const depth = log2(params.nodes);
  const wanted = roots.size === 0 ? 0 : params.openings;
  if (challenge.length !== wanted) return false;
  if (!Array.isArray(proof?.openings) || proof.openings.length !== wanted) return false;
  for (let j = 0; j < wanted; j++) {
    const c = challenge[j]!;
    const o = proof.openings[j] as IdleOpening | undefined;
    if (o === undefined || o.file !== c.file || o.node !== c.node) return false;
    const root = roots.get(c.file);
    if (root === undefined || !isIntIn(c.node, 1, params.nodes - 1)) return false;
    if (!pathLeadsTo(root, c.node, o.label, o.path, depth)) return false;
    const ps = idleParents(c.node, params);
    if (!Array.isArray(o.parents) || o.parents.length !== ps.length) return false;
    for (let k = 0; k < ps.length; k++) {
      const p = o.parents[k]!;
      if (!pathLeadsTo(root, ps[k]!, p?.label, p?.path, depth)) return false;
    }
    const expected = labelFrom(
      labelPrefix(owner, c.file),
      c.node,
      o.parents.map((p) => p.label),
      params.rounds,
    );
    if (!expected.equals(o.label)) return false;
  }
  return true;
}

/** Bytes of one encoded opening under (parents, depth). */
const openingBytes = (parents: number, depth: number): number => 8 + (1 + parents) * LABEL * (1 + depth);

/**
 * Compact binary form of a proof (layout in the header comment). All openings must have the same parent count
 * and path depth, as any proof from `proveIdle` does.
 * @throws AilinkError PROOF_MALFORMED when a label or sibling is not 32 bytes, file/node is not a u32, or the
 *   openings disagree on parent count or path depth.
 */
export function encodeIdleProof(proof: IdleProof): Uint8Array {
  const { openings } = proof;
  const first = openings[0];
  const parents = first?.parents.length ?? 0;
  const depth = first?.path.length ?? 0;
  const per = openingBytes(parents, depth);
  const out = Buffer.alloc(WIRE_HEADER + openings.length * per);
  out[0] = WIRE_VERSION;
  out.writeUInt32BE(openings.length, 1);
  let at = WIRE_HEADER;
  const put = (bytes: Uint8Array, what: string): void => {
    if (bytes.byteLength !== LABEL) throw malformed(`${what}: expected 32 bytes, got ${bytes.byteLength}`);
    out.set(bytes, at);
    at += LABEL;
  };
  const putLeaf = (label: Uint8Array, path: readonly Uint8Array[], what: string): void => {
    if (path.length !== depth) throw malformed(`${what}: expected a path of ${depth}, got ${path.length}`);
    put(label, `${what} label`);
    for (const s of path) put(s, `${what} sibling`);
  };
  openings.forEach((o, j) => {
    if (!isIntIn(o.file, 0, U32_LIMIT - 1) || !isIntIn(o.node, 0, U32_LIMIT - 1)) {
      throw malformed(`idle proof opening ${j}: file and node must be u32, got ${o.file}/${o.node}`);
    }
    if (o.parents.length !== parents) {
      throw malformed(`idle proof opening ${j}: expected ${parents} parents, got ${o.parents.length}`);
    }
    out.writeUInt32BE(o.file, at);
    out.writeUInt32BE(o.node, at + 4);
    at += 8;
    putLeaf(o.label, o.path, `idle proof opening ${j}`);
    o.parents.forEach((p, k) => {
      putLeaf(p.label, p.path, `idle proof opening ${j} parent ${k}`);
    });
  });
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/**
 * Parses `encodeIdleProof` output, checking every count against `params`. Labels are copies, not views into
 * `bytes`. It does not verify anything: pass the result to `verifyIdle`.
 * @throws AilinkError PROOF_MALFORMED on a wrong version, more openings than `params.openings`, a node outside
 *   [1, nodes), truncation or trailing bytes; INVALID_INPUT for bad params.
 */
export function decodeIdleProof(bytes: Uint8Array, params: PoisParams): IdleProof {
  checkParams(params);
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < WIRE_HEADER) {
    throw malformed(`idle proof: expected at least ${WIRE_HEADER} bytes, got ${buf.length}`);
  }
  if (buf[0] !== WIRE_VERSION) throw malformed(`idle proof: expected version ${WIRE_VERSION}, got ${buf[0]}`);
  const count = buf.readUInt32BE(1);
  if (count > params.openings) {
    throw malformed(`idle proof: expected at most ${params.openings} openings, got ${count}`);
  }
  const depth = log2(params.nodes);
  const per = openingBytes(params.parents, depth);
  const want = WIRE_HEADER + count * per;
  if (buf.length !== want) {
    throw malformed(`idle proof with ${count} openings: expected ${want} bytes, got ${buf.length}`);
  }
  let at = WIRE_HEADER;
  const take = (): Uint8Array => {
    const b = new Uint8Array(buf.subarray(at, at + LABEL)); // copy
    at += LABEL;
    return b;
  };
  const leaf = () => {
    const label = take();
    const path = Array.from({ length: depth }, take);
    return { label, path };
  };
  const openings: IdleOpening[] = [];
  for (let j = 0; j < count; j++) {
    const file = buf.readUInt32BE(at);
    const node = buf.readUInt32BE(at + 4);
    if (node < 1 || node >= params.nodes) {
      throw malformed(`idle proof opening ${j}: expected a node in [1, ${params.nodes}), got ${node}`);
    }
    at += 8;
    const own = leaf();
    const parents = Array.from({ length: params.parents }, leaf);
    openings.push({ file, node, label: own.label, path: own.path, parents });
  }
  return { openings };
}
