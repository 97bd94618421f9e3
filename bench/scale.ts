/**
 * npm run bench:scale — issue 17's scale figures for placement (item 6) and audits (item 7) at 10,000 miners, each
 * against today's behaviour measured in the same run.
 * - Placement: PUTS puts of one 8 MiB column × 12 over MINERS miners of equal capacity (1 TiB, = the default per-miner
 *   cap), each drawn by `drawPlacement` from the miners' free space as the chain registry does, against the address
 *   order the client used before (the first 12 miners). Spread = max / mean columns per miner.
 * - Audits: the block hook (`applyBlockHooks`) over an SQLite state as the indexer keeps it, with MINERS miners each
 *   holding 2 tagged columns and a verifier: the old all-miner draw (every 4th block, one miner) against a per-miner
 *   period (`audit.challengePeriodBlocks` = PERIOD blocks, so ~MINERS/PERIOD challenges a block). Cost per block =
 *   hook time averaged over the blocks measured (the old hook costs nothing on 3 blocks of 4).
 * - Index sync (item 8): a fresh indexer folds SYNC_BLOCKS blocks of the real dev chain, mostly empty (a transfer
 *   every 25th block, as a quiet network's chain is), against today's fetch in the same run: each block on its own,
 *   checked against finality and read with its events (`ChainClient.block`), 16 in flight — what the indexer did
 *   before `ChainClient.blocks` (hashes in one request, events only where a signed extrinsic is, windows of 64).
 * - Private models (item 1): a model read by SCALE_READERS (1000) organisations, its data key wrapped for each in the
 *   declaration (as before; the chain takes 64) against one wrap for a reader group sealed once per membership.
 * - Round announcements (item 2): one real SecAgg+ attempt among SCALE_ORGS organisations, what each member got
 *   before (the whole body) against its view now, and what gossip carries.
 * - Coordinator memory (item 5): the path from SCALE_SUM_ORGS organisations' masked updates of SCALE_SUM_DIM words to
 *   the unmasked sum and the stored recompute material, each mode in a child process of its own
 *   (bench/coordinator-sum.ts): every update held until the stage closes (before) against each one spooled and added
 *   into the running sum as it arrives (now). Peak RSS of each child; both must unmask the same sum.
 * - Simulation: `ailink simulate --organisations SCALE_SIM_ORGS --rounds SCALE_SIM_ROUNDS` in a child process (its
 *   peak RSS is the simulation's alone): N virtual organisations through the real round protocol and SecAgg+, chain
 *   and storage as in-memory twins, the stand-in trainer of 10,000 weights (or SCALE_SIM_MODEL on SCALE_SIM_DATA:
 *   `ailink simulate`'s --model and --data, e.g. mlp on fashion-mnist-small, with the final accuracy beside).
 *   Baseline: the same with 10 organisations, compared per organisation. Seconds per round are wall time (a busy
 *   machine stretches them) with CPU seconds beside.
 * Flags (environment): SCALE_SIM_ORGS (100; 1000 for the issue's aim; 0 skips), SCALE_SIM_ROUNDS (2), SCALE_SIM_MODEL
 * and SCALE_SIM_DATA (the stand-in's defaults), SCALE_MINERS (10000), SCALE_PUTS (20000), SCALE_PERIOD (600), SCALE_AUDIT_BLOCKS (40),
 * SCALE_SYNC_BLOCKS (300; 0 skips index sync, which builds its chain at ~0.3–0.6 s a block), SCALE_ORGS (1000; 0 skips),
 * SCALE_READERS (1000), SCALE_SUM_ORGS (100; 0 skips), SCALE_SUM_DIM (1000000).
 * Prints a table, then one JSON line.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WsProvider } from '@polkadot/api';
import Database from 'better-sqlite3';
import { createSecAggClient, createSecAggServer, signingKeyPair } from '../src/aggregation/index.ts';
import {
  applyBlockHooks,
  type ChainClient,
  connectChain,
  createSqliteState,
  DEV_PROTOCOL_CONFIG,
  devSigner,
  drawPlacement,
  openIndexer,
  placementSeed,
  ROC,
  rankRestorers,
  startDevChain,
} from '../src/chain/index.ts';
import { dueKey } from '../src/chain/pallets/audit.ts';
import type { ProtocolConfig } from '../src/chain/pallets/context.ts';
import { fileKey, minerFilesPrefix, taggedKey } from '../src/chain/pallets/file-bank.ts';
import { drawnMiners } from '../src/chain/pallets/placement.ts';
import { minerKey } from '../src/chain/pallets/sminer.ts';
import { verifierKey } from '../src/chain/pallets/tee-worker.ts';
import type { StateWrite } from '../src/chain/state.ts';
import { unmaskBody } from '../src/coordinator/round.ts';
import { accountFromSeeds, accountsReady } from '../src/shared/account.ts';
import { fromHex, toHex } from '../src/shared/bytes.ts';
import { generateX25519, sealReaderGroup, wrapDataKey } from '../src/storage/index.ts';
import {
  gossipOf,
  parseAnnouncement,
  roundContext,
  secAggShape,
  signAnnouncement,
  toWire,
  viewsOf,
} from '../src/task/index.ts';

const MINERS = Number(process.env.SCALE_MINERS ?? 10_000);
const PUTS = Number(process.env.SCALE_PUTS ?? 20_000);
const PERIOD = Number(process.env.SCALE_PERIOD ?? 600);
const AUDIT_BLOCKS = Number(process.env.SCALE_AUDIT_BLOCKS ?? 40);
const SYNC_BLOCKS = Number(process.env.SCALE_SYNC_BLOCKS ?? 300);
const COLUMNS = 12;
const COLUMN_BYTES = 8 * 2 ** 20;
const CAPACITY = 2 ** 40;
const log = (s: string) => process.stderr.write(`${s}\n`);
const hex = (s: string) => createHash('sha256').update(s).digest('hex');
const ids = Array.from({ length: MINERS }, (_, i) => `5miner${String(i).padStart(6, '0')}`);

// --- placement ---------------------------------------------------------------------------------------------------
function spread(load: Int32Array): number {
  let max = 0;
  let sum = 0;
  for (const l of load) {
    max = Math.max(max, l);
    sum += l;
  }
  return max / (sum / load.length);
}

log(`placement: ${PUTS} puts over ${MINERS} miners …`);
const baseline = new Int32Array(MINERS);
// Before: column i went to the i-th positive miner in address order (`candidates.slice(0, columns)`), every put.
for (let p = 0; p < PUTS; p++) for (let c = 0; c < COLUMNS; c++) baseline[c]! += 1;
const drawn = new Int32Array(MINERS);
const t0 = performance.now();
for (let p = 0; p < PUTS; p++) {
  const candidates = ids.map((id, i) => ({ id, free: CAPACITY - drawn[i]! * COLUMN_BYTES }));
  const placed = drawPlacement(candidates, hex(`block/${p}`), {
    columns: COLUMNS,
    spares: COLUMNS,
    columnBytes: COLUMN_BYTES,
    capBytes: CAPACITY,
  });
  for (const id of placed.slice(0, COLUMNS)) drawn[Number(id.slice(6))]! += 1;
}
const drawMs = (performance.now() - t0) / PUTS;
const placement = {
  baseline: spread(baseline),
  drawn: spread(drawn),
  idleBaseline: baseline.filter((l) => l === 0).length,
  idleDrawn: drawn.filter((l) => l === 0).length,
};

// --- audits ------------------------------------------------------------------------------------------------------
/** MINERS miners with 2 tagged columns each (files of 12 columns, one 1 KiB segment), a verifier, in SQLite. */
function auditState(config: ProtocolConfig) {
  const db = new Database(':memory:');
  const state = createSqliteState(db);
  const writes: StateWrite[] = [{ key: verifierKey('5verifier'), value: { podr2Key: hex('k') } }];
  for (const [i, id] of ids.entries()) {
    writes.push({
      key: minerKey(id),
      value: {
        peerId: `peer${i}`,
        addrs: [],
        capacity: CAPACITY,
        collateral: '1000',
        state: 'positive',
        registeredAt: 1,
      },
    });
    // The schedule `sminer.register` would have made: due blocks spread over one period.
    if (config.audit.challengePeriodBlocks !== undefined) {
      writes.push({ key: dueKey(2 + (i % PERIOD), id), value: 1 });
    }
  }
  const files = Math.ceil((MINERS * 2) / COLUMNS);
  for (let f = 0; f < files; f++) {
    const fid = hex(`file/${f}`);
    const holders = Array.from({ length: COLUMNS }, (_, c) => ids[(f * COLUMNS + c) % MINERS]!);
    writes.push({
      key: fileKey(fid),
      value: {
        owner: '5owner',
        deal: hex(`deal/${f}`).slice(0, 32),
        name: null,
        size: 1024,
        profile: { segmentSize: 1024, dataFragments: 4, parityFragments: 8 },
        segments: [{ hash: hex(`seg/${f}`), fragments: holders.map((_, c) => hex(`frag/${f}/${c}`)) }],
        encryption: null,
        state: 'Active',
        declaredAt: 1,
        declaredTime: 0,
        activeAt: 1,
        placements: holders,
        charged: 0,
      },
    });
    for (const [c, miner] of holders.entries()) {
      writes.push({ key: `${minerFilesPrefix(miner)}${fid}`, value: c });
      writes.push({ key: taggedKey(fid, c), value: miner });
    }
  }
  db.transaction(() => state.apply(writes))();
  return { db, state };
}

function auditCost(config: ProtocolConfig, from: number, blocks: number) {
  const { db, state } = auditState(config);
  let ms = 0;
  let issued = 0;
  for (let n = from; n < from + blocks; n++) {
    const ctx = {
      block: { number: n, hash: `0x${hex(`b/${n}`)}`, timestamp: n * 6000 },
      genesisHash: '0x',
      config,
    };
    const t = performance.now();
    const writes = applyBlockHooks(state, ctx);
    ms += performance.now() - t;
    issued += writes.filter((w) => w.key.startsWith('audit/challenges/') && w.value !== null).length;
    db.transaction(() => state.apply(writes))();
  }
  db.close();
  return { msPerBlock: ms / blocks, challengesPerBlock: issued / blocks };
}

// Without the placement draw: its snapshot (written by the first block a hook sees) is measured on its own below.
const { placement: RULES, ...devAudit } = DEV_PROTOCOL_CONFIG;
const base: ProtocolConfig = { ...devAudit, verifiers: ['5verifier'] };
const { challengePeriodBlocks: _, ...oldAudit } = base.audit;
log(`audits: the old all-miner draw over ${AUDIT_BLOCKS} blocks …`);
const before = auditCost({ ...base, audit: oldAudit }, 2, AUDIT_BLOCKS);
log(`audits: a per-miner period of ${PERIOD} blocks over ${AUDIT_BLOCKS} blocks …`);
const after = auditCost(
  { ...base, audit: { ...base.audit, challengePeriodBlocks: PERIOD } },
  2,
  AUDIT_BLOCKS,
);
/** Blocks between two challenges of one miner: the old draw picks one of all every `challengeInterval`. */
const oldPeriod = MINERS * base.audit.challengeInterval;

// --- placement as a rule ---------------------------------------------------------------------------------------
// What the rules pay (item 6 enforced, src/chain/pallets/placement.ts) on MINERS miners in SQLite: the snapshot the
// first block of an epoch writes, and the draw recomputed for each report. What an uploader can still choose: the best
// of its draws per epoch (slotsPerEpoch × (epochsValid + 1)) for a coalition holding a share of the miners, each draw
// counting the coalition's miners among its 12 + spares (12 at most are placed); before the rule, it placed all 12.
const rules = RULES!;
function placementRuleCost() {
  const { db, state } = auditState(base);
  const config: ProtocolConfig = { ...base, placement: rules };
  const ctx = (n: number) => ({
    block: { number: n, hash: `0x${hex(`b/${n}`)}`, timestamp: n * 6000 },
    genesisHash: '0x',
    config,
  });
  let t = performance.now();
  const writes = applyBlockHooks(state, ctx(rules.epochBlocks));
  const snapshotMs = performance.now() - t;
  const snapshotBytes = writes
    .filter((w) => w.key.startsWith('placement/'))
    .reduce((n, w) => n + Buffer.byteLength(JSON.stringify(w.value)), 0);
  db.transaction(() => state.apply(writes))();
  // The first check of an epoch reads and prepares its snapshot; the others find it prepared.
  const check = (slot: number) =>
    drawnMiners(
      state,
      ctx(rules.epochBlocks + 1),
      'f',
      { epoch: 1, slot, by: '5uploader', restoralSeed: '' },
      COLUMNS,
    );
  t = performance.now();
  check(0);
  const firstCheckMs = performance.now() - t;
  const checks = 1000;
  t = performance.now();
  for (let slot = 1; slot <= checks; slot++) check(slot);
  const checkMs = (performance.now() - t) / checks;
  db.close();
  return { snapshotMs, snapshotBytes, firstCheckMs, checkMs };
}
function grinding(share: number) {
  const miners = ids.map((id) => ({ id, free: CAPACITY }));
  const coalition = new Set(ids.slice(0, Math.round(MINERS * share)));
  const draws = rules.slotsPerEpoch * (rules.epochsValid + 1);
  const epochs = 3;
  let best = 0;
  let honest = 0;
  for (let e = 0; e < epochs; e++) {
    let most = 0;
    for (let slot = 0; slot < draws; slot++) {
      const drawn = drawPlacement(miners, placementSeed(hex(`epoch/${e}`), '5uploader', slot), {
        columns: COLUMNS,
        spares: rules.spares,
        columnBytes: 1,
        capBytes: CAPACITY,
      });
      most = Math.max(most, Math.min(COLUMNS, drawn.filter((id) => coalition.has(id)).length));
      honest += drawn.slice(0, COLUMNS).filter((id) => coalition.has(id)).length;
    }
    best += most;
  }
  return { share, draws, best: best / epochs, honest: honest / (epochs * draws) };
}
log(`placement rule: snapshot and checks over ${MINERS} miners, an uploader's choice …`);
const placementRule = { ...placementRuleCost(), grinding: [0.05, 0.1, 0.3].map(grinding) };

// Restorals as a rule: what the claim check costs (the file's ranking over an epoch's snapshot, the first of an epoch
// hashing every miner's id), and how many of its 12 columns an owner gets onto a coalition by ordering restorals of its
// own columns. Its best strategy: order every column an honest miner holds at once (which admits spares + open − 1 of
// the ranking per order), let the coalition's admitted miners claim, the rest go to the honest miners ranked first;
// again until no coalition miner is admitted. Before the rule any miner could claim: all 12.
function restoralCheckCost() {
  const candidates = Object.freeze(ids.map((id) => Object.freeze({ id, free: CAPACITY })));
  const rank = (file: number) =>
    rankRestorers(candidates, `file/${file}`, {
      count: rules.spares,
      columnBytes: 8 << 20,
      capBytes: rules.capBytes,
      exclude: new Set(),
    });
  let t = performance.now();
  rank(0);
  const firstMs = performance.now() - t;
  const checks = 200;
  t = performance.now();
  for (let f = 1; f <= checks; f++) rank(f);
  return { firstMs, ms: (performance.now() - t) / checks };
}
function restoralReach(share: number) {
  const candidates = Object.freeze(ids.map((id) => Object.freeze({ id, free: CAPACITY })));
  const coalition = new Set(ids.slice(0, Math.round(MINERS * share)));
  const files = 200;
  let taken = 0;
  let rounds = 0;
  for (let f = 0; f < files; f++) {
    const opts = { columns: COLUMNS, spares: rules.spares, columnBytes: 1, capBytes: CAPACITY };
    const holders = drawPlacement(candidates, placementSeed(hex(`restoral/${f}`), '5owner', 0), opts).slice(
      0,
      COLUMNS,
    );
    for (;;) {
      const honest = holders.flatMap((h, column) => (coalition.has(h) ? [] : [column]));
      if (honest.length === 0) break;
      const admitted = rankRestorers(candidates, `file/${f}`, {
        count: rules.spares + honest.length - 1,
        columnBytes: 1,
        capBytes: CAPACITY,
        exclude: new Set(holders),
      });
      const colluders = admitted.filter((id) => coalition.has(id));
      if (colluders.length === 0) break;
      rounds++;
      const others = admitted.filter((id) => !coalition.has(id));
      for (const [i, column] of honest.entries())
        holders[column] = colluders[i] ?? others[i - colluders.length]!;
    }
    taken += holders.filter((h) => coalition.has(h)).length;
  }
  return { share, columns: taken / files, rounds: rounds / files };
}
log('restorals: the ranking check and what an owner re-ordering restorals reaches …');
const restoral = { ...restoralCheckCost(), reach: [0.05, 0.1, 0.3].map(restoralReach) };

// --- index sync --------------------------------------------------------------------------------------------------

/** Builds `blocks` blocks on a fresh dev chain, a transfer in every 25th, then times two fresh indexers over them. */
async function indexSync(blocks: number) {
  const dir = mkdtempSync(join(tmpdir(), 'ailink-bench-sync-'));
  const dev = await startDevChain({ port: 0 });
  // dev_newBlock needs no decorated API: a bare provider (no metadata fetch, no start-up noise).
  const provider = new WsProvider(dev.endpoint);
  await provider.isReady;
  const chain = await connectChain(dev.endpoint);
  try {
    const alice = devSigner('Alice');
    const bob = devSigner('Bob');
    for (let built = 0; built < blocks; ) {
      if (built % 25 === 0) {
        await chain.submit(alice, [{ kind: 'transfer', to: bob.address, amount: ROC }]);
        built++;
      }
      const count = Math.min(24, blocks - built);
      if (count > 0) await provider.send('dev_newBlock', [{ count }]);
      built += count;
      log(`index sync: built ${built}/${blocks} blocks`);
    }
    const height = await chain.finalizedHeight();
    const time = async (
      source: Pick<ChainClient, 'genesisHash' | 'block' | 'blocks' | 'finalizedHeight' | 'followFinalized'>,
      name: string,
      prefetch?: number,
    ) => {
      const indexer = openIndexer(source, {
        path: join(dir, `${name}.sqlite`),
        config: DEV_PROTOCOL_CONFIG,
        ...(prefetch === undefined ? {} : { prefetch }),
      });
      const t = performance.now();
      await indexer.sync(height);
      const s = (performance.now() - t) / 1000;
      const digest = indexer.digest();
      indexer.close();
      return { blocksPerS: height / s, digest };
    };
    // Today's fetch: each block on its own (finality check, hash, body and events), 16 in flight.
    const oneByOne = {
      ...chain,
      blocks: (from: number, to: number) =>
        Promise.all(Array.from({ length: to - from + 1 }, (_, i) => chain.block(from + i))),
    };
    log('index sync: one block at a time (baseline) …');
    const baseline = await time(oneByOne, 'baseline', 16);
    log('index sync: windows of blocks …');
    const windows = await time(chain, 'windows');
    if (windows.digest !== baseline.digest)
      throw new Error('the two indexers reached different state digests');
    return { height, baseline: baseline.blocksPerS, windows: windows.blocksPerS };
  } finally {
    await chain.close();
    await provider.disconnect();
    await dev.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
const sync = SYNC_BLOCKS > 0 ? await indexSync(SYNC_BLOCKS) : null;

// --- private models (item 1) -------------------------------------------------------------------------------------

/**
 * A private model read by READERS organisations: before, its data key was wrapped in the declaration for each
 * (the chain takes at most 64); now for the coordinator and one reader group, whose key is sealed for each member in
 * a group object stored once per membership. Sizes are the declaration's `encryption` as JSON, as the remark holds it.
 */
function privateModel(readers: number) {
  const members = Array.from({ length: readers }, () => toHex(generateX25519().publicKey));
  const owner = toHex(generateX25519().publicKey);
  const binding = { fid: hex('model'), owner: '5owner' };
  const dataKey = new Uint8Array(32).fill(7);
  const t0 = performance.now();
  const direct = [owner, ...members].map((r) => wrapDataKey(dataKey, fromHex(r), binding));
  const directMs = performance.now() - t0;
  const t1 = performance.now();
  const group = sealReaderGroup(members, '5owner');
  const sealMs = performance.now() - t1;
  const t2 = performance.now();
  const wraps = [owner, group.publicKey].map((r) => wrapDataKey(dataKey, fromHex(r), binding));
  const groupedMs = performance.now() - t2;
  const encryption = (w: unknown[], groups?: unknown[]) =>
    Buffer.byteLength(
      JSON.stringify({ alg: 'aes-256-gcm', wraps: w, tags: [hex('tag').slice(0, 32)], groups }),
    );
  return {
    readers,
    wrapsBefore: direct.length,
    wrapsAfter: wraps.length,
    declarationBytesBefore: encryption(direct),
    declarationBytesAfter: encryption(wraps, [{ recipient: group.publicKey, fid: hex('group') }]),
    groupObjectBytes: group.bytes.byteLength,
    directMs,
    groupedMs,
    sealMs,
  };
}
const privateModels = privateModel(Number(process.env.SCALE_READERS ?? 1000));

// --- round announcements (item 2) ---------------------------------------------------------------------------------

/**
 * One real SecAgg+ attempt among ORGS organisations (k and t as a task's spec gives them, no dropout, 4 words a
 * vector: announcement sizes do not depend on the model), its stage announcements built as the coordinator builds
 * them. Before: the whole body went to everyone (gossip and `view`), the unmask stage relaying every survivor's
 * signature with its survivor list. After: gossip carries a view that is the same for everyone (cohort, survivors)
 * whole, else the signed header, and each member fetches its own view.
 */
async function announcements(orgs: number) {
  await accountsReady();
  const random = (n: number) => new Uint8Array(randomBytes(n));
  const ids = Array.from({ length: orgs }, (_, i) => {
    const seed = (s: string) => new Uint8Array(createHash('sha256').update(`${s}/${i}`).digest());
    return accountFromSeeds(seed('sr'), seed('x')).address;
  }).sort();
  const keys = new Map(ids.map((id) => [id, signingKeyPair(random)]));
  const { k, t } = secAggShape(
    { secagg: { neighbours: 2 * Math.ceil(Math.log2(orgs)), threshold: 0 } },
    orgs,
  );
  const params = {
    context: roundContext('scale', 0, 0),
    identities: new Map(ids.map((id) => [id, keys.get(id)!.publicKey])),
    k,
    t,
    graphSeed: random(32),
    dimension: 4,
  };
  const clients = ids.map((id) =>
    createSecAggClient(id, { identityKey: keys.get(id)!.privateKey, random }, params),
  );
  const server = createSecAggServer(params);
  const wire = <T>(m: Map<string, T[]>) =>
    Object.fromEntries([...m].map(([id, list]) => [id, list.map(toWire)]));
  const adverts = server.collectAdverts(clients.map((c) => c.advertise()));
  const shares = server.collectShares(
    await Promise.all(clients.map((c, i) => c.shareKeys(adverts.get(ids[i]!)!))),
  );
  const survivors = server.collectMasked(
    clients.map((c, i) => c.maskedInput(shares.get(ids[i]!) ?? [], new Uint32Array(4))),
  );
  const confirmations = server.collectConsistency(clients.map((c) => c.consistency(survivors)));
  const cohort = ids.map((account) => ({ account, identityKey: toHex(keys.get(account)!.publicKey) }));
  const ref = { fid: hex('model'), hash: hex('model') };
  const stages = [
    {
      phase: 'advertise' as const,
      before: null,
      body: {
        cohort,
        secagg: true,
        graphSeed: toHex(params.graphSeed),
        k,
        t,
        kind: 'train',
        dimension: 4,
        model: ref,
        preprocessing: null,
      },
    },
    { phase: 'shares' as const, before: null, body: { adverts: wire(adverts) } },
    { phase: 'masked' as const, before: null, body: { inbox: wire(shares) } },
    { phase: 'consistency' as const, before: null, body: { survivors } },
    {
      phase: 'unmask' as const,
      before: { signatures: confirmations.map(toWire) },
      body: unmaskBody(server, confirmations),
    },
  ];
  const serverKey = signingKeyPair(random);
  const bytes = (v: unknown) => Buffer.byteLength(JSON.stringify(v));
  return {
    orgs,
    k,
    t,
    stages: stages.map(({ phase, before, body }) => {
      const t0 = performance.now();
      const signedWhole = signAnnouncement(
        { task: 'scale', round: 0, attempt: 0, phase, deadline: 0, body },
        serverKey.privateKey,
      );
      const view = viewsOf(signedWhole);
      const views = ids.map((id) => bytes(view(id)));
      const cutMs = performance.now() - t0;
      const t1 = performance.now();
      for (const id of ids.slice(0, 50))
        parseAnnouncement(JSON.parse(JSON.stringify(view(id))), serverKey.publicKey, id);
      const parseMs = (performance.now() - t1) / 50;
      const gossip = gossipOf(signedWhole);
      return {
        phase,
        beforeBytes: bytes(before ?? body),
        gossipBytes: bytes(gossip),
        maxViewBytes: Math.max(...views),
        // What members ask for over streams: nothing when gossip carried the view itself.
        fetchedBytes: 'body' in gossip ? 0 : views.reduce((a, b) => a + b, 0),
        cutMs,
        parseMs,
      };
    }),
  };
}
const ORGS = Number(process.env.SCALE_ORGS ?? 1000);
log(`announcements: one SecAgg+ attempt among ${ORGS} organisations …`);
const announced = ORGS > 0 ? await announcements(ORGS) : null;
const maxBefore = announced === null ? 0 : Math.max(...announced.stages.map((s) => s.beforeBytes));
const maxAfter = announced === null ? 0 : Math.max(...announced.stages.map((s) => s.maxViewBytes));
const kib = (b: number) => `${(b / 1024).toFixed(0)} KiB`;

const SUM_ORGS = Number(process.env.SCALE_SUM_ORGS ?? 100);
const SUM_DIM = Number(process.env.SCALE_SUM_DIM ?? 1_000_000);
/** One mode of the coordinator's sum path in a child process (its peak RSS is the path's alone). */
function coordinatorSum(mode: 'held' | 'streaming') {
  const r = spawnSync(
    process.execPath,
    [
      '--import',
      'tsx',
      fileURLToPath(new URL('./coordinator-sum.ts', import.meta.url)),
      mode,
      String(SUM_ORGS),
      String(SUM_DIM),
    ],
    { encoding: 'utf8', maxBuffer: 1 << 20 },
  );
  if (r.status !== 0) throw new Error(`bench/coordinator-sum.ts ${mode} failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as {
    peakMib: number;
    seconds: number;
    materialBytes: number;
    sumDigest: string;
  };
}
log(`coordinator memory: ${SUM_ORGS} masked updates of ${SUM_DIM} words, held then streaming …`);
const sums = SUM_ORGS > 0 ? { held: coordinatorSum('held'), streaming: coordinatorSum('streaming') } : null;
if (sums !== null && sums.held.sumDigest !== sums.streaming.sumDigest)
  throw new Error('bench: the streaming sum differs from the held one');

const SIM_ORGS = Number(process.env.SCALE_SIM_ORGS ?? 100);
const SIM_ROUNDS = Number(process.env.SCALE_SIM_ROUNDS ?? 2);
const SIM_FLAGS = [
  ...(process.env.SCALE_SIM_MODEL ? ['--model', process.env.SCALE_SIM_MODEL] : []),
  ...(process.env.SCALE_SIM_DATA ? ['--data', process.env.SCALE_SIM_DATA] : []),
];
/** `ailink simulate` in a child process: its JSON line. */
function simulation(orgs: number) {
  const r = spawnSync(
    process.execPath,
    [
      fileURLToPath(new URL('../bin/ailink.mjs', import.meta.url)),
      'simulate',
      '--organisations',
      String(orgs),
      '--rounds',
      String(SIM_ROUNDS),
      '--seed',
      'bench',
      ...SIM_FLAGS,
      '--json',
    ],
    { encoding: 'utf8', maxBuffer: 1 << 24, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  if (r.status !== 0) throw new Error(`ailink simulate --organisations ${orgs} failed (exit ${r.status})`);
  const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as {
    round_s: number[];
    round_cpu_s: number[];
    mean_round_s: number;
    peak_mib: number;
    model: string;
    final_accuracy?: number | null;
  };
  const meanCpu = out.round_cpu_s.reduce((a, b) => a + b, 0) / out.round_cpu_s.length;
  return { ...out, meanCpu };
}
log(`simulate: 10 then ${SIM_ORGS} organisations × ${SIM_ROUNDS} rounds ${SIM_FLAGS.join(' ')}…`);
const sim = SIM_ORGS > 0 ? { small: simulation(10), large: simulation(SIM_ORGS) } : null;

const rows: [string, string, string, string][] = [
  ['', 'before (same run)', 'after', 'ratio'],
  [
    `placement max/mean load, ${MINERS} miners`,
    placement.baseline.toFixed(1),
    placement.drawn.toFixed(3),
    `${(placement.baseline / placement.drawn).toFixed(0)}× more even`,
  ],
  ['miners left with no column', String(placement.idleBaseline), String(placement.idleDrawn), ''],
  ['placement draw per put (ms)', '–', drawMs.toFixed(2), ''],
  [
    `placement snapshot, first block of an epoch (ms / KiB)`,
    '–',
    `${placementRule.snapshotMs.toFixed(0)} / ${(placementRule.snapshotBytes / 1024).toFixed(0)}`,
    '',
  ],
  [
    'placement check per transfer report (ms)',
    '–',
    placementRule.checkMs.toFixed(3),
    `the epoch's first: ${placementRule.firstCheckMs.toFixed(0)} ms`,
  ],
  ...placementRule.grinding.map((g): [string, string, string, string] => [
    `uploader's columns (of 12) on a ${g.share * 100} % coalition`,
    '12 (no check)',
    g.best.toFixed(1),
    `best of its ${g.draws} draws; an honest draw ${g.honest.toFixed(1)}`,
  ]),
  [
    'restoral claim check (ms)',
    '–',
    restoral.ms.toFixed(3),
    `the epoch's first: ${restoral.firstMs.toFixed(0)} ms`,
  ],
  ...restoral.reach.map((r): [string, string, string, string] => [
    `owner's columns (of 12) moved onto a ${r.share * 100} % coalition`,
    '12 (any claimer)',
    r.columns.toFixed(1),
    `re-ordering all it can, ${r.rounds.toFixed(1)} rounds a file`,
  ]),
  [
    `audit hook per block (ms), ${MINERS} miners`,
    before.msPerBlock.toFixed(2),
    after.msPerBlock.toFixed(2),
    `${(before.msPerBlock / after.msPerBlock).toFixed(1)}× cheaper`,
  ],
  [
    'challenges issued per block',
    before.challengesPerBlock.toFixed(2),
    after.challengesPerBlock.toFixed(2),
    '',
  ],
  [
    'audit hook per challenge (ms)',
    (before.msPerBlock / before.challengesPerBlock).toFixed(1),
    (after.msPerBlock / after.challengesPerBlock).toFixed(2),
    `${(before.msPerBlock / before.challengesPerBlock / (after.msPerBlock / after.challengesPerBlock)).toFixed(0)}×`,
  ],
  ['blocks between challenges of one miner', String(oldPeriod), `~${PERIOD}`, ''],
  [
    `private model, ${privateModels.readers} readers: wraps in its declaration`,
    `${privateModels.wrapsBefore} (max 64)`,
    String(privateModels.wrapsAfter),
    '',
  ],
  [
    'private model: declaration encryption bytes',
    String(privateModels.declarationBytesBefore),
    String(privateModels.declarationBytesAfter),
    `${(privateModels.declarationBytesBefore / privateModels.declarationBytesAfter).toFixed(0)}× smaller`,
  ],
  [
    'private model: wrapping per model stored (ms)',
    privateModels.directMs.toFixed(1),
    privateModels.groupedMs.toFixed(2),
    '',
  ],
  [
    'reader group, once per membership (bytes / ms)',
    '–',
    `${privateModels.groupObjectBytes} / ${privateModels.sealMs.toFixed(0)}`,
    '',
  ],
  ...(announced === null
    ? []
    : announced.stages.map(
        (a) =>
          [
            `${a.phase} announcement, bytes per member (${announced.orgs} orgs)`,
            kib(a.beforeBytes),
            kib(a.maxViewBytes),
            `gossip ${a.gossipBytes} B, fetched in all ${kib(a.fetchedBytes)}, sign+serialise ${a.cutMs.toFixed(0)} ms, check ${a.parseMs.toFixed(1)} ms`,
          ] as [string, string, string, string],
      )),
  ...(sums === null
    ? []
    : [
        [
          `coordinator peak RSS (MiB), ${SUM_ORGS} updates × ${SUM_DIM} words`,
          String(sums.held.peakMib),
          String(sums.streaming.peakMib),
          `${(sums.held.peakMib / sums.streaming.peakMib).toFixed(1)}× less; ${sums.held.seconds.toFixed(1)} s → ${sums.streaming.seconds.toFixed(1)} s`,
        ] as [string, string, string, string],
        [
          'recompute material (MiB)',
          (sums.held.materialBytes / 2 ** 20).toFixed(0),
          (sums.streaming.materialBytes / 2 ** 20).toFixed(0),
          'format 1 (base64 JSON) → 2 (raw updates)',
        ] as [string, string, string, string],
      ]),
  ...(sim === null
    ? []
    : [
        [
          `simulate, 10 → ${SIM_ORGS} organisations: s per round`,
          sim.small.mean_round_s.toFixed(1),
          sim.large.mean_round_s.toFixed(1),
          `${(sim.large.mean_round_s / SIM_ORGS / (sim.small.mean_round_s / 10) || 0).toFixed(2)}× per organisation`,
        ] as [string, string, string, string],
        [
          `simulate, 10 → ${SIM_ORGS} organisations: CPU s per round`,
          sim.small.meanCpu.toFixed(1),
          sim.large.meanCpu.toFixed(1),
          `${(sim.large.meanCpu / SIM_ORGS / (sim.small.meanCpu / 10)).toFixed(2)}× per organisation`,
        ] as [string, string, string, string],
        [
          `simulate, 10 → ${SIM_ORGS} organisations: peak RSS (MiB)`,
          String(sim.small.peak_mib),
          String(sim.large.peak_mib),
          `${(sim.large.peak_mib / sim.small.peak_mib).toFixed(1)}×`,
        ] as [string, string, string, string],
        ...(sim.large.final_accuracy == null
          ? []
          : [
              [
                `simulate, 10 → ${SIM_ORGS} organisations: final accuracy (${sim.large.model})`,
                `${((sim.small.final_accuracy ?? 0) * 100).toFixed(2)} %`,
                `${(sim.large.final_accuracy * 100).toFixed(2)} %`,
                '',
              ] as [string, string, string, string],
            ]),
      ]),
  ...(sync === null
    ? []
    : [
        [
          `index sync, ${sync.height} mostly empty blocks (blocks/s)`,
          sync.baseline.toFixed(1),
          sync.windows.toFixed(1),
          `${(sync.windows / sync.baseline).toFixed(1)}× faster`,
        ] as [string, string, string, string],
      ]),
];
console.log(
  `scale: ${MINERS} miners, ${PUTS} puts of 12 × 8 MiB columns, audits over ${AUDIT_BLOCKS} blocks\n`,
);
for (const r of rows) console.log(`${r[0].padEnd(54)} ${r[1].padEnd(18)} ${r[2].padEnd(10)} ${r[3]}`);
console.log(
  JSON.stringify({
    miners: MINERS,
    puts: PUTS,
    placement_max_over_mean: Number(placement.drawn.toFixed(3)),
    placement_baseline_max_over_mean: Number(placement.baseline.toFixed(1)),
    placement_draw_ms: Number(drawMs.toFixed(3)),
    placement_snapshot_ms: Number(placementRule.snapshotMs.toFixed(1)),
    placement_snapshot_bytes: placementRule.snapshotBytes,
    placement_check_ms: Number(placementRule.checkMs.toFixed(3)),
    placement_first_check_ms: Number(placementRule.firstCheckMs.toFixed(1)),
    placement_grinding: placementRule.grinding.map((g) => ({
      coalition_share: g.share,
      draws: g.draws,
      best_columns: Number(g.best.toFixed(2)),
      honest_columns: Number(g.honest.toFixed(2)),
    })),
    restoral_check_ms: Number(restoral.ms.toFixed(3)),
    restoral_first_check_ms: Number(restoral.firstMs.toFixed(1)),
    restoral_reach: restoral.reach.map((r) => ({
      coalition_share: r.share,
      columns: Number(r.columns.toFixed(2)),
      rounds: Number(r.rounds.toFixed(2)),
    })),
    audit_ms_per_block: Number(after.msPerBlock.toFixed(3)),
    audit_baseline_ms_per_block: Number(before.msPerBlock.toFixed(3)),
    audit_challenges_per_block: after.challengesPerBlock,
    audit_baseline_challenges_per_block: before.challengesPerBlock,
    audit_ms_per_challenge: Number((after.msPerBlock / after.challengesPerBlock).toFixed(3)),
    audit_baseline_ms_per_challenge: Number((before.msPerBlock / before.challengesPerBlock).toFixed(3)),
    audit_period_blocks: PERIOD,
    audit_baseline_period_blocks: oldPeriod,
    ...(announced === null
      ? {}
      : {
          participants: announced.orgs,
          announcement_max_bytes: maxAfter,
          announcement_baseline_max_bytes: maxBefore,
          announcement_gossip_max_bytes: Math.max(...announced.stages.map((s) => s.gossipBytes)),
        }),
    ...(sums === null
      ? {}
      : {
          coordinator_sum_orgs: SUM_ORGS,
          coordinator_sum_dimension: SUM_DIM,
          coordinator_peak_mib: sums.streaming.peakMib,
          coordinator_baseline_peak_mib: sums.held.peakMib,
        }),
    private_model_readers: privateModels.readers,
    private_model_wraps: privateModels.wrapsAfter,
    private_model_baseline_wraps: privateModels.wrapsBefore,
    private_model_declaration_bytes: privateModels.declarationBytesAfter,
    private_model_baseline_declaration_bytes: privateModels.declarationBytesBefore,
    reader_group_bytes: privateModels.groupObjectBytes,
    simulate_orgs: sim === null ? null : SIM_ORGS,
    simulate_rounds: sim === null ? null : SIM_ROUNDS,
    simulate_model: sim?.large.model ?? null,
    simulate_final_accuracy: sim?.large.final_accuracy ?? null,
    simulate_peak_mib: sim?.large.peak_mib ?? null,
    simulate_round_s: sim?.large.mean_round_s ?? null,
    simulate_round_cpu_s: sim === null ? null : Number(sim.large.meanCpu.toFixed(2)),
    simulate_baseline_orgs: sim === null ? null : 10,
    simulate_baseline_peak_mib: sim?.small.peak_mib ?? null,
    simulate_baseline_round_s: sim?.small.mean_round_s ?? null,
    index_sync_blocks: sync?.height ?? null,
    index_sync_blocks_per_s: sync === null ? null : Number(sync.windows.toFixed(1)),
    index_sync_baseline_blocks_per_s: sync === null ? null : Number(sync.baseline.toFixed(1)),
  }),
);
