import { createHash } from 'node:crypto';
import { z } from 'zod';
import {
  type BlockExtrinsic,
  type ChainBlock,
  type ChainClient,
  type ChainSource,
  checkBlockEvidence,
  decodeHeader,
  extrinsicsCommitment,
  openIndexer,
  type ProtocolConfig,
  parseProtocolConfig,
  protocolConfigToJson,
  type RawBlock,
} from '../chain/index.ts';
import { fromHex, toHex } from '../shared/bytes.ts';
import { AilinkError, hasCode, isErrorCode } from '../shared/errors.ts';
import { parseManifest } from '../task/index.ts';
import { AuditReportSchema } from './schema.ts';
import type { AuditReport } from './types.ts';
import { auditTask } from './verify.ts';

/**
 * Evidence that travels (issue 19 §4): one file holding everything `audit verify` read — every block the chain state
 * is folded from (SCALE header, the extrinsics as encoded, and their decoded calls), the stored objects the audit
 * fetched (manifests, spec, models, recompute material, preprocessing) and the report — checked later with no chain
 * and no miner. The format, all integers big-endian:
 *
 *   "AILKBNDL" · version (1 byte, now 1) · index length (4 bytes) · index (UTF-8 JSON) · entry bytes, in index order
 *
 * The index lists each entry's name, length and SHA-256; names ascend strictly, entries follow one another with
 * nothing before, between or after them, so a truncated, extended or reordered file is named as such. The bundle's
 * digest is the SHA-256 of the whole file: the model card cites it.
 */

export const BUNDLE_MAGIC = 'AILKBNDL';
export const BUNDLE_VERSION = 1;
/** A bigger index is not one we wrote (a block entry's name is ~20 bytes; 10⁶ blocks stay well below). */
const MAX_INDEX_BYTES = 256 * 1024 * 1024;

const HASH = /^0x[0-9a-f]{64}$/;
const HEX = /^(?:[0-9a-f]{2})*$/;

const EntrySchema = z.strictObject({
  name: z.string().min(1).max(256),
  length: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});

const IndexSchema = z.strictObject({
  format: z.literal('ailink-audit-bundle'),
  version: z.literal(BUNDLE_VERSION),
  task: z.string().min(1).max(64),
  round: z.number().int().nonnegative().nullable(),
  genesisHash: z.string().regex(HASH),
  tip: z.strictObject({ number: z.number().int().nonnegative(), hash: z.string().regex(HASH) }),
  protocol: z.unknown(),
  entries: z.array(EntrySchema),
});
type BundleIndex = z.infer<typeof IndexSchema>;

const CallSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('remark'), payload: z.string().regex(HEX) }),
  z.strictObject({ kind: z.literal('transfer'), to: z.string().min(1), amount: z.string().regex(/^\d+$/) }),
  z.strictObject({ kind: z.literal('other'), name: z.string() }),
]);

const BlockEntrySchema = z.strictObject({
  number: z.number().int().positive(),
  hash: z.string().regex(HASH),
  parentHash: z.string().regex(HASH),
  timestamp: z.number().int().nonnegative(),
  header: z.string().regex(HEX),
  extrinsics: z.array(z.string().regex(HEX)),
  decoded: z.array(
    z.strictObject({
      index: z.number().int().nonnegative(),
      signer: z.string().nullable(),
      calls: z.array(
        z.strictObject({ call: CallSchema, applied: z.boolean(), reason: z.string().optional() }),
      ),
    }),
  ),
});

const MissingSchema = z.strictObject({ code: z.string(), message: z.string() });

/** What the offline check found, each named: code, round (null when not a round's), where (entry and field). */
export const BUNDLE_CODES = [
  /** The file is not a bundle we can read: magic, version, index, truncated, extended, entries out of order. */
  'BUNDLE_MALFORMED',
  /** An entry's bytes do not hash to what the index lists. */
  'BUNDLE_ENTRY_DIGEST',
  /** A block's header, extrinsics or decoded calls do not agree (hash, number, parent, extrinsicsRoot, signer, call). */
  'BLOCK_EVIDENCE',
  /** The blocks are not one chain from genesis to the tip: a gap, a parent hash that is not the block before. */
  'BLOCK_LINK',
  /** The tip is not the one the auditor expected (`--expect-tip`). */
  'TIP_MISMATCH',
  /** The bundled report is not what the audit re-derives from the bundle's blocks and objects. */
  'REPORT_MISMATCH',
] as const;
export type BundleCode = (typeof BUNDLE_CODES)[number];

export interface BundleFinding {
  readonly code: BundleCode;
  readonly round: number | null;
  readonly where: string;
  readonly message: string;
}

export interface BundleVerification {
  /** True only when the bundle checks and the re-derived report has no finding. */
  readonly ok: boolean;
  /** SHA-256 of the whole file (hex). */
  readonly digest: string;
  readonly task: string | null;
  readonly genesisHash: string | null;
  /** The last block: compare its hash with a chain you trust. */
  readonly tip: { readonly number: number; readonly hash: string } | null;
  /** How the headers commit to their extrinsics (`dev-concat`: the embedded dev chain; `trie-v0|1`: Substrate's). */
  readonly commitments: readonly string[];
  /** SHA-256 of the protocol configuration the state was folded with (the network's genesis parameters). */
  readonly protocolDigest: string | null;
  readonly findings: readonly BundleFinding[];
  /** The audit re-derived offline from the bundle (null when the bundle could not be read that far). */
  readonly report: AuditReport | null;
}

export interface BundleContent {
  readonly task: string;
  readonly round: number | null;
  readonly genesisHash: string;
  readonly protocol: ProtocolConfig;
  /** Blocks 1..tip, each decoded and as encoded. */
  readonly blocks: readonly { readonly block: ChainBlock; readonly raw: RawBlock }[];
  /** What the audit read: each object's bytes, or why it could not be read. */
  readonly objects: ReadonlyMap<string, Uint8Array | Error>;
  readonly report: AuditReport;
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const utf8 = (s: string) => new TextEncoder().encode(s);
const blockName = (n: number) => `chain/block/${String(n).padStart(10, '0')}`;

/** Blocks read per request while collecting (well inside the client's MAX_BLOCKS_PER_REQUEST). */
const COLLECT_WINDOW = 256;

/**
 * Collects what a bundle holds after an audit of the live chain: blocks 1..report.atBlock from the chain (decoded and as
 * encoded), and the objects the audit read.
 * @throws as ChainClient.blocks / rawBlocks (NOT_FOUND, CHAIN_UNREACHABLE)
 */
export async function collectBundle(
  chain: Pick<ChainClient, 'genesisHash' | 'blocks' | 'rawBlocks'>,
  input: {
    readonly task: string;
    readonly round: number | null;
    readonly protocol: ProtocolConfig;
    readonly report: AuditReport;
    readonly objects: ReadonlyMap<string, Uint8Array | Error>;
    readonly onProgress?: (e: { blocks: number; of: number }) => void;
  },
): Promise<BundleContent> {
  const blocks: { block: ChainBlock; raw: RawBlock }[] = [];
  const tip = input.report.atBlock;
  for (let from = 1; from <= tip; from += COLLECT_WINDOW) {
    const to = Math.min(tip, from + COLLECT_WINDOW - 1);
    const [decoded, raw] = await Promise.all([chain.blocks(from, to), chain.rawBlocks(from, to)]);
    for (const [i, block] of decoded.entries()) blocks.push({ block, raw: raw[i]! });
    input.onProgress?.({ blocks: blocks.length, of: tip });
  }
  return {
    task: input.task,
    round: input.round,
    genesisHash: chain.genesisHash,
    protocol: input.protocol,
    blocks,
    objects: input.objects,
    report: input.report,
  };
}

/** Writes a bundle (deterministic: the same content gives the same bytes). @throws INVALID_INPUT without blocks */
export function encodeBundle(content: BundleContent): Uint8Array {
  const tip = content.blocks.at(-1);
  if (tip === undefined)
    throw new AilinkError('INVALID_INPUT', 'a bundle needs the chain from block 1 on, got no block');
  const entries = new Map<string, Uint8Array>();
  for (const { block, raw } of content.blocks) entries.set(blockName(block.number), blockEntry(block, raw));
  for (const [fid, v] of content.objects) {
    if (v instanceof Uint8Array) entries.set(`object/${fid}`, v);
    else
      entries.set(
        `missing/${fid}`,
        utf8(JSON.stringify({ code: hasCode(v) ? v.code : 'INTERNAL', message: v.message })),
      );
  }
  entries.set('report.json', utf8(JSON.stringify(content.report)));
  const names = [...entries.keys()].sort();
  const index: BundleIndex = {
    format: 'ailink-audit-bundle',
    version: BUNDLE_VERSION,
    task: content.task,
    round: content.round,
    genesisHash: content.genesisHash,
    tip: { number: tip.block.number, hash: tip.block.hash },
    protocol: protocolConfigToJson(content.protocol),
    entries: names.map((name) => {
      const b = entries.get(name)!;
      return { name, length: b.byteLength, sha256: sha256(b) };
    }),
  };
  const indexBytes = utf8(JSON.stringify(index));
  const head = Buffer.alloc(BUNDLE_MAGIC.length + 5);
  head.write(BUNDLE_MAGIC, 0, 'latin1');
  head.writeUInt8(BUNDLE_VERSION, BUNDLE_MAGIC.length);
  head.writeUInt32BE(indexBytes.byteLength, BUNDLE_MAGIC.length + 1);
  return new Uint8Array(Buffer.concat([head, indexBytes, ...names.map((n) => entries.get(n)!)]));
}

function blockEntry(block: ChainBlock, raw: RawBlock): Uint8Array {
  return utf8(
    JSON.stringify({
      number: block.number,
      hash: block.hash,
      parentHash: block.parentHash,
      timestamp: block.timestamp,
      header: toHex(raw.header),
      extrinsics: raw.extrinsics.map(toHex),
      decoded: block.extrinsics.map((ex) => ({
        index: ex.index,
        signer: ex.signer,
        calls: ex.calls.map(({ call, applied, reason }) => ({
          call:
            call.kind === 'remark'
              ? { kind: 'remark', payload: toHex(call.payload) }
              : call.kind === 'transfer'
                ? { kind: 'transfer', to: call.to, amount: call.amount.toString() }
                : call,
          applied,
          ...(reason === undefined ? {} : { reason }),
        })),
      })),
    }),
  );
}

interface Container {
  readonly index: BundleIndex;
  readonly entries: Map<string, Uint8Array>;
}

/** Reads the container; a bad entry is a finding (and left out), a bad frame ends the reading. */
function readContainer(bytes: Uint8Array, findings: BundleFinding[]): Container | null {
  const bad = (message: string): null => {
    findings.push({ code: 'BUNDLE_MALFORMED', round: null, where: 'bundle', message });
    return null;
  };
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headLength = BUNDLE_MAGIC.length + 5;
  if (buf.byteLength < headLength || buf.toString('latin1', 0, BUNDLE_MAGIC.length) !== BUNDLE_MAGIC)
    return bad(
      `expected an audit bundle (starting "${BUNDLE_MAGIC}"), got ${buf.byteLength} bytes that are not one`,
    );
  const version = buf.readUInt8(BUNDLE_MAGIC.length);
  if (version !== BUNDLE_VERSION) return bad(`expected bundle version ${BUNDLE_VERSION}, got ${version}`);
  const indexLength = buf.readUInt32BE(BUNDLE_MAGIC.length + 1);
  if (indexLength > MAX_INDEX_BYTES || headLength + indexLength > buf.byteLength)
    return bad(
      `truncated: the index is ${indexLength} bytes, ${buf.byteLength - headLength} bytes follow the header`,
    );
  let index: BundleIndex;
  try {
    const parsed = IndexSchema.safeParse(
      JSON.parse(
        new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(headLength, headLength + indexLength)),
      ),
    );
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      return bad(`the index: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
    }
    index = parsed.data;
  } catch (err) {
    return bad(`the index is not UTF-8 JSON (${(err as Error).message})`);
  }
  let at = headLength + indexLength;
  const entries = new Map<string, Uint8Array>();
  let previous = '';
  for (const e of index.entries) {
    if (e.name <= previous)
      return bad(`entries out of order: ${JSON.stringify(e.name)} after ${JSON.stringify(previous)}`);
    previous = e.name;
    if (at + e.length > buf.byteLength)
      return bad(
        `truncated: entry ${e.name} needs ${e.length} bytes at offset ${at}, the file ends at ${buf.byteLength}`,
      );
    const data = new Uint8Array(buf.subarray(at, at + e.length));
    at += e.length;
    const found = sha256(data);
    if (found !== e.sha256) {
      findings.push({
        code: 'BUNDLE_ENTRY_DIGEST',
        round: null,
        where: e.name,
        message: `expected the entry to hash to ${e.sha256} as the index lists, it hashes to ${found}`,
      });
      continue;
    }
    entries.set(e.name, data);
  }
  if (at !== buf.byteLength) return bad(`${buf.byteLength - at} bytes follow the last entry`);
  return { index, entries };
}

/** Decodes and checks the blocks: each against its own header, then the run of them from genesis to the tip. */
function readBlocks(c: Container, findings: BundleFinding[], commitments: Set<string>): ChainBlock[] | null {
  const blocks: ChainBlock[] = [];
  const add = (code: BundleCode, where: string, message: string) =>
    findings.push({ code, round: null, where, message });
  const names = c.index.entries.map((e) => e.name).filter((n) => n.startsWith('chain/block/'));
  for (const name of names) {
    const data = c.entries.get(name);
    if (data === undefined) {
      add('BLOCK_LINK', name, 'the block is unreadable (see its entry), so the chain is not whole');
      return null;
    }
    let parsed: z.infer<typeof BlockEntrySchema>;
    try {
      const r = BlockEntrySchema.safeParse(JSON.parse(new TextDecoder().decode(data)));
      if (!r.success) {
        const issue = r.error.issues[0]!;
        add('BLOCK_EVIDENCE', `${name} · ${issue.path.join('.')}`, issue.message);
        return null;
      }
      parsed = r.data;
    } catch (err) {
      add('BLOCK_EVIDENCE', name, `not JSON (${(err as Error).message})`);
      return null;
    }
    const block: ChainBlock = {
      number: parsed.number,
      hash: parsed.hash,
      parentHash: parsed.parentHash,
      timestamp: parsed.timestamp,
      extrinsics: parsed.decoded.map(
        (ex): BlockExtrinsic => ({
          index: ex.index,
          signer: ex.signer,
          calls: ex.calls.map(({ call, applied, reason }) => ({
            call:
              call.kind === 'remark'
                ? { kind: 'remark', payload: fromHex(call.payload) }
                : call.kind === 'transfer'
                  ? { kind: 'transfer', to: call.to, amount: BigInt(call.amount) }
                  : call,
            applied,
            ...(reason === undefined ? {} : { reason }),
          })),
        }),
      ),
    };
    const raw: RawBlock = {
      number: parsed.number,
      hash: parsed.hash,
      header: fromHex(parsed.header),
      extrinsics: parsed.extrinsics.map((x) => fromHex(x)),
    };
    if (name !== blockName(block.number))
      add('BLOCK_EVIDENCE', `${name} · number`, `the entry holds block ${block.number}`);
    for (const p of checkBlockEvidence(raw, block))
      add('BLOCK_EVIDENCE', `block ${block.number} · ${p.field}`, p.message);
    try {
      const kind = extrinsicsCommitment(raw.extrinsics, decodeHeader(raw.header).extrinsicsRoot);
      if (kind !== null) commitments.add(kind);
    } catch {
      // checkBlockEvidence named the header already.
    }
    const previous = blocks.at(-1);
    const expectedParent = previous?.hash ?? c.index.genesisHash;
    if (block.number !== (previous?.number ?? 0) + 1)
      add('BLOCK_LINK', `block ${block.number}`, `expected block ${(previous?.number ?? 0) + 1} next`);
    else if (block.parentHash !== expectedParent)
      add(
        'BLOCK_LINK',
        `block ${block.number} · parentHash`,
        `expected the parent ${expectedParent} (${previous === undefined ? 'genesis' : `block ${previous.number}`}), the header names ${block.parentHash}`,
      );
    blocks.push(block);
  }
  const tip = blocks.at(-1);
  if (tip === undefined || tip.number !== c.index.tip.number || tip.hash !== c.index.tip.hash)
    add(
      'BLOCK_LINK',
      'tip',
      `the index names tip ${c.index.tip.number} ${c.index.tip.hash}, the blocks end at ${tip === undefined ? 'nothing' : `${tip.number} ${tip.hash}`}`,
    );
  return blocks;
}

export interface VerifyBundleOptions {
  /** The tip hash the auditor trusts (from a chain it runs or trusts); anything else is TIP_MISMATCH. */
  readonly expectTip?: string;
}

/**
 * `ailink audit verify --bundle FILE`: checks a bundle offline — container, blocks and their linkage — then folds the
 * bundle's blocks with the protocol rules (the indexer, in memory) and re-runs the audit over the bundle's objects,
 * and compares the result with the bundled report. Never throws on bad input: every problem is a finding.
 */
export async function verifyBundle(
  bytes: Uint8Array,
  options: VerifyBundleOptions = {},
): Promise<BundleVerification> {
  const findings: BundleFinding[] = [];
  const commitments = new Set<string>();
  const digest = sha256(bytes);
  const c = readContainer(bytes, findings);
  const done = (report: AuditReport | null, protocolDigest: string | null): BundleVerification => ({
    ok: findings.length === 0 && report?.ok === true,
    digest,
    task: c?.index.task ?? null,
    genesisHash: c?.index.genesisHash ?? null,
    tip: c?.index.tip ?? null,
    commitments: [...commitments].sort(),
    protocolDigest,
    findings,
    report: report === null || c === null ? null : { ...report, evidence: { digest, tip: c.index.tip } },
  });
  if (c === null) return done(null, null);
  if (options.expectTip !== undefined && options.expectTip.toLowerCase() !== c.index.tip.hash)
    findings.push({
      code: 'TIP_MISMATCH',
      round: null,
      where: 'tip',
      message: `expected the tip ${options.expectTip}, the bundle ends at block ${c.index.tip.number} ${c.index.tip.hash}`,
    });
  let protocol: ProtocolConfig;
  try {
    protocol = parseProtocolConfig(c.index.protocol, 'the bundle index · protocol');
  } catch (err) {
    findings.push({
      code: 'BUNDLE_MALFORMED',
      round: null,
      where: 'index · protocol',
      message: (err as Error).message,
    });
    return done(null, null);
  }
  const protocolDigest = sha256(utf8(JSON.stringify(c.index.protocol)));
  const blocks = readBlocks(c, findings, commitments);
  if (blocks === null) return done(null, protocolDigest);

  // The chain state, folded from the bundle's blocks by the indexer anyone runs (in memory).
  const source: ChainSource = {
    genesisHash: c.index.genesisHash,
    block: async (n) => {
      const b = blocks[n - 1];
      if (b === undefined) throw new AilinkError('NOT_FOUND', `the bundle has no block ${n}`);
      return b;
    },
    blocks: async (from, to) => blocks.slice(from - 1, to),
    finalizedHeight: async () => blocks.length,
    followFinalized: async () => () => {},
  };
  const indexer = openIndexer(source, { path: ':memory:', config: protocol });
  let report: AuditReport | null;
  try {
    try {
      await indexer.sync(blocks.length);
    } catch (err) {
      findings.push({
        code: 'BLOCK_LINK',
        round: null,
        where: 'blocks',
        message: `the blocks do not fold into one chain state: ${(err as Error).message}`,
      });
      return done(null, protocolDigest);
    }
    const objects = new Map<string, Uint8Array | Error>();
    for (const e of c.index.entries) {
      const data = c.entries.get(e.name);
      if (e.name.startsWith('object/')) {
        const fid = e.name.slice('object/'.length);
        // A corrupted entry is an object the audit could not read: the audit names its round and field.
        objects.set(
          fid,
          data ??
            new AilinkError('BUNDLE_OBJECT_MISSING', `BUNDLE_OBJECT_MISSING: entry ${e.name} is corrupted`),
        );
      } else if (e.name.startsWith('missing/') && data !== undefined) {
        const m = MissingSchema.safeParse(safeJson(data));
        if (m.success)
          objects.set(
            e.name.slice('missing/'.length),
            new AilinkError(isErrorCode(m.data.code) ? m.data.code : 'INTERNAL', m.data.message),
          );
      }
    }
    report = await runAudit(
      () =>
        auditTask(
          {
            state: indexer.state,
            atBlock: indexer.height(),
            fetch: async (fid) => {
              throw new AilinkError(
                'BUNDLE_OBJECT_MISSING',
                `object ${fid} is not in the bundle: the audit needs it and there is no chain or miner to ask`,
              );
            },
          },
          c.index.task,
          { objects, ...(c.index.round === null ? {} : { round: c.index.round }) },
        ),
      findings,
    );
    if (report === null) return done(null, protocolDigest);
  } finally {
    indexer.close();
  }
  compareReports(c, report, findings);
  // A corrupted object's entry is named with the round that relies on it (the audit's own finding says how).
  const rounds = roundsOfObjects(c, report);
  findings.forEach((f, i) => {
    const fid = f.where.startsWith('object/') ? f.where.slice('object/'.length) : undefined;
    const round = fid === undefined ? undefined : rounds.get(fid);
    if (f.code === 'BUNDLE_ENTRY_DIGEST' && round !== undefined) findings[i] = { ...f, round };
  });
  return done(report, protocolDigest);
}

/** The first round each object of the bundle belongs to: its manifest and what the manifest names. */
function roundsOfObjects(c: Container, report: AuditReport): Map<string, number> {
  const out = new Map<string, number>();
  const set = (fid: string | undefined, round: number) => {
    if (fid !== undefined && !out.has(fid)) out.set(fid, round);
  };
  for (const r of report.rounds) {
    set(r.manifest.fid, r.round);
    set(r.model?.fid, r.round);
    for (const u of r.updates) set(u.fid, r.round);
    const bytes = c.entries.get(`object/${r.manifest.fid}`);
    if (bytes === undefined) continue;
    try {
      const m = parseManifest(bytes);
      set(m.aggregation?.fid, r.round);
      set(m.preprocessing?.fid, r.round);
      set(m.startModel.fid, r.round);
    } catch {
      // The audit names a manifest that does not parse.
    }
  }
  return out;
}

/** The audit over bundle content; what it could not digest is a finding, not a crash. */
async function runAudit(
  run: () => Promise<AuditReport>,
  findings: BundleFinding[],
): Promise<AuditReport | null> {
  try {
    return await run();
  } catch (err) {
    findings.push({
      code: 'BUNDLE_MALFORMED',
      round: null,
      where: 'bundle',
      message: `the audit could not run over the bundle's content: ${(err as Error).message}`,
    });
    return null;
  }
}

function safeJson(data: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(data));
  } catch {
    return undefined;
  }
}

/** The bundled report must be exactly the re-derived one; the first difference is named by its path. */
function compareReports(c: Container, again: AuditReport, findings: BundleFinding[]): void {
  const data = c.entries.get('report.json');
  const add = (round: number | null, where: string, message: string) =>
    findings.push({ code: 'REPORT_MISMATCH', round, where, message });
  if (data === undefined) {
    if (!c.index.entries.some((e) => e.name === 'report.json'))
      add(null, 'report.json', 'the bundle has no report');
    return;
  }
  const bundled = safeJson(data);
  if (!AuditReportSchema.safeParse(bundled).success) {
    add(null, 'report.json', 'the bundled report is not an audit report');
    return;
  }
  const diff = firstDifference(bundled, JSON.parse(JSON.stringify(again)), []);
  if (diff === null) return;
  const round =
    diff[0] === 'rounds' && typeof diff[1] === 'number' ? (again.rounds[diff[1]]?.round ?? null) : null;
  add(
    round,
    `report.json · ${diff.join('.')}`,
    'the bundled report says otherwise than the audit re-derived from the bundle',
  );
}

function firstDifference(a: unknown, b: unknown, path: (string | number)[]): (string | number)[] | null {
  if (Object.is(a, b)) return null;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return path;
  if (Array.isArray(a) !== Array.isArray(b)) return path;
  if (Array.isArray(a) && Array.isArray(b)) {
    for (let i = 0; i < Math.max(a.length, b.length); i++) {
      const d = firstDifference(a[i], b[i], [...path, i]);
      if (d !== null) return d;
    }
    return null;
  }
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const k of keys) {
    const d = firstDifference((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], [
      ...path,
      k,
    ]);
    if (d !== null) return d;
  }
  return null;
}

/** Human lines for `audit verify --bundle`. */
export function describeBundle(v: BundleVerification): string[] {
  const lines = [
    `bundle sha256:${v.digest}`,
    v.tip === null
      ? 'chain: unreadable'
      : `chain: genesis ${v.genesisHash} … tip block ${v.tip.number} ${v.tip.hash} (compare it with a chain you trust, or pass --expect-tip)`,
  ];
  if (v.commitments.length > 0) lines.push(`extrinsics committed by: ${v.commitments.join(', ')}`);
  if (v.protocolDigest !== null) lines.push(`protocol configuration sha256:${v.protocolDigest}`);
  for (const f of v.findings)
    lines.push(`  ✗ ${f.code}${f.round === null ? '' : ` round ${f.round}`} ${f.where}: ${f.message}`);
  return lines;
}
