/**
 * The bundle part of `npm run bench:audit` (issue 19 §4 and §6): `ailink audit export` and `ailink audit verify --bundle`
 * on a task of `rounds` real SecAgg+ rounds at a real model size, every round with its recompute material.
 *
 * The chain: every call of the task (miners, space, declarations and their miners' reports, the task, admissions, graph
 * seeds, anchors) goes into a block of its own, laid out as the embedded dev chain seals them — a SCALE header whose
 * hash is the block hash and whose extrinsicsRoot commits to the extrinsics (blake2-256 of them in order, the dev chain's
 * `dev-concat`), a timestamp inherent, the signed extrinsic carrying the call — and the calls are applied with the
 * protocol rules and block hooks as the indexer applies them. No node runs: the blocks are built here, not by a
 * runtime, so an extrinsic's signature is not a real one (the bundle check does not verify extrinsic signatures; the
 * chain it trusts did). The protocol's audits are set off (no verifier, no tag deadline within the run), as on a chain
 * whose miners answer every challenge: otherwise the rules would slash the miners, which answer nothing here.
 *
 * Timed, each once, with no warm-up run (one export and one verify of a long task take many seconds):
 * - export: what `exportCommand` does after the auditor's index is synced — `auditTask` (every check and the
 *   recomputation of every round, objects from memory: downloads excluded), `collectBundle` from the chain (blocks
 *   from memory), `encodeBundle`, the file written.
 * - verify: what `audit verify --bundle` does — the file read, `verifyBundle`: the container and every entry's digest,
 *   every block's evidence and linkage, the chain state folded by the indexer (SQLite in memory), the audit with
 *   recomputation re-run over the bundle's objects, the report compared.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeAddress } from '@polkadot/util-crypto';
import Database from 'better-sqlite3';
import { auditTask, collectBundle, encodeBundle, verifyBundle } from '../src/audit/index.ts';
import {
  applyBlockHooks,
  applyRemark,
  blockHashOf,
  type ChainBlock,
  createSqliteState,
  encodeRemark,
  openIndexer,
  type ProtocolConfig,
  type RawBlock,
  type StateStore,
  scaleCompact,
} from '../src/chain/index.ts';
import { fromHex } from '../src/shared/bytes.ts';
import { strategyOf } from '../src/task/index.ts';
import { buildLineage } from '../test/audit/fixture.ts';
import { runSecAggRound } from '../test/audit/secagg-round.ts';
import { CONFIG, GENESIS_HASH, type Harness } from '../test/chain/helpers.ts';

export interface BundleRow {
  model: string;
  label: string;
  parameters: number;
  rounds: number;
  blocks: number;
  objects: number;
  bundle_mb: number;
  build_s: number;
  /** The auditor's index synced from the blocks (before an export; not counted in it). */
  index_sync_s: number;
  export_s: number;
  /** Of the export: the audit with recomputation. */
  export_audit_s: number;
  verify_s: number;
  /**
   * The same phases in CPU seconds of this process (all its threads, user + system): on a machine shared with other
   * work, wall times stretch with the load while these stay close to the work done.
   */
  build_cpu_s: number;
  index_sync_cpu_s: number;
  export_cpu_s: number;
  verify_cpu_s: number;
  rounds_recomputed: number;
  ok: boolean;
}

/** The bench's protocol configuration: the tests', with the protocol's audits out of the run's reach. */
const BENCH_CONFIG: ProtocolConfig = {
  ...CONFIG,
  audit: { ...CONFIG.audit, tagDeadlineBlocks: 1_000_000_000 },
};

/** CPU seconds this process has used so far, all threads, user and system. */
const cpuSeconds = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
};

const withLength = (body: Uint8Array) => new Uint8Array(Buffer.concat([scaleCompact(body.byteLength), body]));
const concat = (parts: readonly Uint8Array[]) => new Uint8Array(Buffer.concat(parts));
const le64 = (n: bigint) => {
  const b = Buffer.alloc(16);
  b.writeBigUInt64LE(n & 0xffff_ffff_ffff_ffffn, 0);
  b.writeBigUInt64LE(n >> 64n, 8);
  return new Uint8Array(b);
};

/**
 * A harness (test/chain/helpers.ts) whose every call is a block: the block is laid out first (its hash is what the
 * rules see, e.g. for a graph seed), then its hooks and its call applied to `state` as the indexer applies them.
 */
function blockHarness(state: StateStore, config: ProtocolConfig) {
  const blocks: { block: ChainBlock; raw: RawBlock }[] = [];
  let parent = GENESIS_HASH;
  const h: Harness = {
    state,
    block: 0,
    submit(caller, c, options = {}) {
      if (options.block !== undefined && options.block !== h.block + 1)
        throw new Error('bench: the block harness seals one block after another');
      h.block += 1;
      const number = h.block;
      const timestamp = 1_700_000_000_000 + number * 6000;
      const payload = encodeRemark(c.name, c.args);
      const payments =
        options.payments ??
        (options.paidToPot === undefined ? [] : [{ to: config.pot, amount: options.paidToPot }]);
      // The timestamp inherent (unsigned v4: pallet and call index, then the compact moment).
      const inherent = withLength(concat([Uint8Array.of(0x04, 0x03, 0x00), scaleCompact(timestamp)]));
      // The signed extrinsic: v4 signed, MultiAddress::Id(signer), a signature, then a batch of the transfers and the remark.
      const signed = withLength(
        concat([
          Uint8Array.of(0x84, 0x00),
          decodeAddress(caller),
          Uint8Array.of(0x01),
          new Uint8Array(64),
          ...payments.flatMap((p) => [Uint8Array.of(0x00), decodeAddress(p.to), le64(p.amount)]),
          withLength(payload),
        ]),
      );
      const extrinsics = [inherent, signed];
      const extrinsicsRoot = blockHashOf(concat(extrinsics));
      const header = concat([
        fromHex(parent.slice(2)),
        scaleCompact(number),
        new Uint8Array(32),
        fromHex(extrinsicsRoot.slice(2)),
        Uint8Array.of(0),
      ]);
      const hash = blockHashOf(header);
      const blockCtx = { block: { number, hash, timestamp }, genesisHash: GENESIS_HASH, config };
      state.apply([...applyBlockHooks(state, blockCtx)]);
      const paidToPot = payments.filter((p) => p.to === config.pot).reduce((a, p) => a + p.amount, 0n);
      const outcome = applyRemark(state, { ...blockCtx, caller, paidToPot, payments }, payload);
      if (outcome.kind !== 'foreign') state.apply(outcome.writes ?? []);
      blocks.push({
        block: {
          number,
          hash,
          parentHash: parent,
          timestamp,
          extrinsics: [
            { index: 0, signer: null, calls: [] },
            {
              index: 1,
              signer: caller,
              calls: [
                ...payments.map((p) => ({
                  call: { kind: 'transfer' as const, to: p.to, amount: p.amount },
                  applied: true,
                })),
                {
                  call: { kind: 'remark' as const, payload },
                  applied: true,
                },
              ],
            },
          ],
        },
        raw: { number, hash, header, extrinsics },
      });
      parent = hash;
      return outcome;
    },
  };
  return { h, blocks };
}

export async function benchBundle(options: {
  readonly size: { readonly model: string; readonly label: string; readonly parameters: number };
  readonly rounds: number;
  readonly log: (s: string) => void;
}): Promise<BundleRow> {
  const { size, rounds } = options;
  const built = performance.now();
  const cpu0 = cpuSeconds();
  const db = new Database(':memory:');
  const state = createSqliteState(db);
  const { h, blocks } = blockHarness(state, BENCH_CONFIG);
  const f = buildLineage({
    rounds,
    anchored: 0,
    participants: 4,
    label: `bundle-${size.model}-${rounds}-${randomBytes(4).toString('hex')}`,
    state,
    harness: h,
    model: { name: size.model, parameters: size.parameters },
  });
  let start = strategyOf(f.spec).init(new Float32Array(size.parameters));
  let startModel = f.initial;
  let parent: { fid: string; digest: string } | null = null;
  for (let round = 0; round < rounds; round++) {
    const r = await runSecAggRound(f, size, { round, dropout: false, start, startModel, parent });
    start = r.next;
    startModel = r.model;
    parent = { fid: r.manifestFid, digest: r.manifestDigest };
    if ((round + 1) % 25 === 0) options.log(`  bundle task: ${round + 1}/${rounds} rounds built`);
  }
  db.close();
  const buildS = (performance.now() - built) / 1000;
  const cpu1 = cpuSeconds();

  // The auditor's own index, synced from the chain's blocks.
  const chain = {
    genesisHash: GENESIS_HASH,
    block: async (n: number) => blocks[n - 1]!.block,
    blocks: async (from: number, to: number) => blocks.slice(from - 1, to).map((b) => b.block),
    rawBlocks: async (from: number, to: number) => blocks.slice(from - 1, to).map((b) => b.raw),
    finalizedHeight: async () => blocks.length,
    followFinalized: async () => () => {},
  };
  const t0 = performance.now();
  const indexer = openIndexer(chain, { path: ':memory:', config: BENCH_CONFIG });
  await indexer.sync(blocks.length);
  const indexS = (performance.now() - t0) / 1000;
  const cpu2 = cpuSeconds();

  const dir = mkdtempSync(join(tmpdir(), 'ailink-bench-bundle-'));
  const file = join(dir, 'task.bundle');
  try {
    const t1 = performance.now();
    const objects = new Map<string, Uint8Array | Error>();
    const report = await auditTask(
      {
        state: indexer.state,
        atBlock: indexer.height(),
        fetch: async (fid) => {
          const b = f.objects.get(fid);
          if (b === undefined) throw new Error(`bench: no object ${fid}`);
          return b;
        },
      },
      f.task,
      { objects },
    );
    const t2 = performance.now();
    const content = await collectBundle(chain, {
      task: f.task,
      round: null,
      protocol: BENCH_CONFIG,
      report,
      objects,
    });
    const bundle = encodeBundle(content);
    writeFileSync(file, bundle);
    const t3 = performance.now();
    const cpu3 = cpuSeconds();
    indexer.close();
    const recomputed = report.rounds.filter((r) => r.aggregate_recomputed).length;
    if (!report.ok || recomputed !== rounds)
      throw new Error(
        `bench: the bundle's task did not verify (${recomputed}/${rounds} rounds recomputed): ${JSON.stringify([...report.findings, ...report.rounds.flatMap((r) => r.findings)]).slice(0, 800)}`,
      );

    const t4 = performance.now();
    const cpu4 = cpuSeconds();
    const v = await verifyBundle(new Uint8Array(readFileSync(file)));
    const t5 = performance.now();
    const cpu5 = cpuSeconds();
    if (!v.ok)
      throw new Error(
        `bench: the bundle did not verify offline: ${JSON.stringify([...v.findings, ...(v.report?.findings ?? [])]).slice(0, 800)}`,
      );
    const row: BundleRow = {
      model: size.model,
      label: size.label,
      parameters: size.parameters,
      rounds,
      blocks: blocks.length,
      objects: objects.size,
      bundle_mb: Number((bundle.byteLength / 1e6).toFixed(1)),
      build_s: Number(buildS.toFixed(1)),
      index_sync_s: Number(indexS.toFixed(3)),
      export_s: Number(((t3 - t1) / 1000).toFixed(3)),
      export_audit_s: Number(((t2 - t1) / 1000).toFixed(3)),
      verify_s: Number(((t5 - t4) / 1000).toFixed(3)),
      build_cpu_s: Number((cpu1 - cpu0).toFixed(1)),
      index_sync_cpu_s: Number((cpu2 - cpu1).toFixed(3)),
      export_cpu_s: Number((cpu3 - cpu2).toFixed(3)),
      verify_cpu_s: Number((cpu5 - cpu4).toFixed(3)),
      rounds_recomputed: v.report!.rounds.filter((r) => r.aggregate_recomputed).length,
      ok: v.ok,
    };
    options.log(
      `${size.label} bundle: ${rounds} rounds, ${row.blocks} blocks, ${row.objects} objects, ${row.bundle_mb} MB, built in ${row.build_s} s (CPU ${row.build_cpu_s} s), index synced in ${row.index_sync_s} s (CPU ${row.index_sync_cpu_s} s); export ${row.export_s} s (audit ${row.export_audit_s} s; CPU ${row.export_cpu_s} s), verify --bundle ${row.verify_s} s (CPU ${row.verify_cpu_s} s)`,
    );
    return row;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
