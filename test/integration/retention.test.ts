import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileOf, liveHold } from '../../src/chain/index.ts';
import {
  type DevNetwork,
  openSession,
  type Session,
  sessionOf,
  startDevNetwork,
} from '../../src/node/index.ts';
import { type Account, accountFromSeeds, accountsReady } from '../../src/shared/account.ts';
import { systemClock, systemRandom } from '../../src/shared/clock.ts';
import { hasCode } from '../../src/shared/errors.ts';
import { loadNetworkFile } from '../../src/storage/index.ts';
import {
  expiredRoundObjects,
  MATERIAL_OBJECT_LEAF,
  materialObjectName,
  roundObjectsPrefix,
  updateObjectLeaf,
  updateObjectName,
} from '../../src/task/index.ts';

// Retention (issue 17 item 9) on a real dev network (the chain, 12 miner processes): an organisation and a
// coordinator each store a task's round objects under the names the runtime gives them, list their own from the
// chain, and delete what the task's retention says has expired (`Session.owned` / `deleteObjects`, what the
// participant and coordinator nodes are wired to). The deletion is fileBank.deleteFile, refused to anyone but the
// owner; the miners then drop the fragments. The round logic over these calls is test/audit/retention.test.ts.

const TASK = 'gc-0123456789ab';
const RETENTION = { updateRounds: 1 };
/** Rounds 0..2 are anchored: 0 and 1 are past a 1-round retention. */
const LATEST = 2;

const GRACE_MS = 4000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const accountOf = (label: string): Account =>
  accountFromSeeds(
    new Uint8Array(createHash('sha256').update(`retention-it/sr/${label}`).digest()),
    new Uint8Array(createHash('sha256').update(`retention-it/x/${label}`).digest()),
  );

describe('retention on a dev network: owners delete their expired round objects, miners drop them', () => {
  let dir: string;
  let network: DevNetwork;
  let org: Account;
  let coordinator: Account;
  let orgSession: Session;
  let coordinatorSession: Session;
  const updates: string[] = [];
  const materials: string[] = [];
  let model: string;

  /** The fragment hashes every miner of the network holds on disk. */
  const heldOnDisk = () => {
    const out = new Set<string>();
    for (const miner of readdirSync(join(dir, 'miners'))) {
      const fragments = join(dir, 'miners', miner, 'fragments');
      if (!existsSync(fragments)) continue;
      for (const shard of readdirSync(fragments))
        for (const h of readdirSync(join(fragments, shard))) out.add(h);
    }
    return out;
  };
  const fragmentsOf = (session: Session, fid: string) =>
    (fileOf(session.indexer.state, fid)?.segments ?? []).flatMap((s) => s.fragments);

  beforeAll(async () => {
    await accountsReady();
    dir = mkdtempSync(join(tmpdir(), 'ailink-retention-it-'));
    org = accountOf('org');
    coordinator = accountOf('coordinator');
    network = await startDevNetwork(
      { random: systemRandom },
      {
        dataDir: dir,
        miners: 12,
        profile: 'test',
        verifier: false,
        allow: [org.address, coordinator.address],
        // Miners drop fragments no file places on them after 4 s (10 minutes by default on a dev network).
        collectGraceMs: GRACE_MS,
      },
    );
    const config = sessionOf(loadNetworkFile(network.path));
    const deps = { clock: systemClock, random: systemRandom };
    orgSession = await openSession(config, org, 'participant', deps);
    coordinatorSession = await openSession(config, coordinator, 'coordinator', deps);
    for (let round = 0; round <= LATEST; round++) {
      // As the participant runtime stores an update: sealed for the coordinator's reader key.
      updates.push(
        await orgSession.put(systemRandom(70_000), {
          name: updateObjectName(TASK, round, org.address),
          readers: [coordinator.readerKey],
        }),
      );
      materials.push(
        await coordinatorSession.put(systemRandom(50_000), {
          name: materialObjectName(TASK, round),
          encrypt: false,
        }),
      );
    }
    model = await coordinatorSession.put(systemRandom(30_000), {
      name: `${TASK}/round-0/model.ailm`,
      encrypt: false,
    });
  }, 240_000);

  afterAll(async () => {
    await orgSession?.close();
    await coordinatorSession?.close();
    await network?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('each owner lists its own round objects from the chain, by the names it gave them', async () => {
    const mine = await orgSession.owned(roundObjectsPrefix(TASK));
    expect(mine.map((o) => o.fid).sort()).toEqual([...updates].sort());
    const theirs = await coordinatorSession.owned(roundObjectsPrefix(TASK));
    expect(theirs.map((o) => o.fid).sort()).toEqual([...materials, model].sort());
  });

  it('the coordinator cannot delete an organisation’s update: fileBank refuses anyone but the owner', async () => {
    const err = await coordinatorSession.deleteObjects([updates[0]!]).catch((e: unknown) => e);
    expect(hasCode(err, 'CHAIN_CALL_REJECTED')).toBe(true);
    expect((err as Error).message).toMatch(/may not delete .*only its owner/);
    await orgSession.indexer.sync();
    expect(fileOf(orgSession.indexer.state, updates[0]!)?.state).toBe('Active');
  }, 60_000);

  it('expired updates and material are deleted for good, idempotently; the rest stays readable; miners drop the fragments', async () => {
    const expiredUpdates = expiredRoundObjects(
      await orgSession.owned(roundObjectsPrefix(TASK)),
      TASK,
      updateObjectLeaf(org.address),
      RETENTION,
      LATEST,
    );
    const expiredMaterial = expiredRoundObjects(
      await coordinatorSession.owned(roundObjectsPrefix(TASK)),
      TASK,
      MATERIAL_OBJECT_LEAF,
      RETENTION,
      LATEST,
    );
    expect(expiredUpdates.sort()).toEqual(updates.slice(0, 2).sort());
    expect(expiredMaterial.sort()).toEqual(materials.slice(0, 2).sort());
    const gone = [...expiredUpdates, ...expiredMaterial];
    const kept = [updates[2]!, materials[2]!, model];
    const keptFragments = kept.flatMap((fid) => fragmentsOf(orgSession, fid));
    // A fragment a kept object shares (the same bytes, e.g. the zero padding of a last segment) stays placed.
    const goneFragments = gone
      .flatMap((fid) => fragmentsOf(orgSession, fid))
      .filter((h) => !keptFragments.includes(h));
    expect(goneFragments.length).toBeGreaterThan(0);

    await orgSession.deleteObjects(expiredUpdates);
    await coordinatorSession.deleteObjects(expiredMaterial);
    // A sweep run again (a restart before it noted its work): already gone is no error, and nothing else changes.
    await orgSession.deleteObjects(expiredUpdates);
    await coordinatorSession.deleteObjects([expiredMaterial[0]!, expiredMaterial[0]!]);

    await orgSession.indexer.sync();
    for (const fid of gone) expect(fileOf(orgSession.indexer.state, fid)).toBeUndefined();
    for (const fid of kept) expect(fileOf(orgSession.indexer.state, fid)?.state).toBe('Active');
    expect((await orgSession.owned(roundObjectsPrefix(TASK))).map((o) => o.fid)).toEqual([updates[2]]);
    const read = await orgSession
      .get(expiredUpdates[0]!, { signal: AbortSignal.timeout(30_000) })
      .catch((e: unknown) => e);
    expect(hasCode(read)).toBe(true);
    expect((await coordinatorSession.get(updates[2]!)).byteLength).toBe(70_000);

    // The miners' collection: every fragment of the deleted objects leaves their disks, the kept ones stay.
    const deadline = Date.now() + 90_000;
    while (goneFragments.some((h) => heldOnDisk().has(h)) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 1000));
    const onDisk = heldOnDisk();
    expect(goneFragments.filter((h) => onDisk.has(h))).toEqual([]);
    expect(keptFragments.filter((h) => !onDisk.has(h))).toEqual([]);
  }, 180_000);

  it("an upload under way keeps its fragments past the miners' grace: it holds its draw, and the miners wait — for that upload only", async () => {
    // The first segment goes out, then the source stalls until the hold is on chain and three graces more: without
    // the hold the miners collected the first segment's fragments, and the put failed at its receipts.
    const segment = 64 * 1024; // the test profile's
    /** The deals the organisation holds a live ticket for. */
    const holding = async () => {
      const height = await orgSession.indexer.sync();
      return orgSession.indexer.state
        .scan(`placement/holds/${org.address}/`)
        .map(([key]) => key.split('/').at(-1)!)
        .filter((deal) => liveHold(orgSession.indexer.state, org.address, deal, height) !== undefined);
    };
    // The attack on a per-account rule: while one upload is under way, fragments the same account put for other
    // uploads it never declares (abandoned, or never meant to be) stay on the miners for as long as it keeps any hold.
    const [miner] = await orgSession.registry.directory();
    const fragment = (size: number) => {
      const bytes = systemRandom(size);
      return { bytes, hash: createHash('sha256').update(bytes).digest('hex') };
    };
    const abandoned = [fragment(4096), fragment(4096)];
    // And the attack on an unbounded hold: more fragments under the held deal than the segments it reserves of the
    // account's space. The put reserves 2 segments after its first (its size is unknown): one column fragment of each
    // (16 KiB) per miner, and the first segment's own fragment is the older one.
    const extra = [fragment(16 * 1024), fragment(16 * 1024), fragment(16 * 1024)];
    const onDisk = (fs: { hash: string }[]) => fs.map((f) => f.hash).filter((h) => heldOnDisk().has(h));
    let held: string[] = [];
    async function* stalling() {
      yield systemRandom(segment + 1);
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline) {
        held = await holding();
        if (held.length > 0) break;
        await sleep(200);
      }
      await orgSession.miners.put(miner!, abandoned[0]!.hash, abandoned[0]!.bytes, { deal: 'ab'.repeat(16) });
      await orgSession.miners.put(miner!, abandoned[1]!.hash, abandoned[1]!.bytes);
      for (const f of extra) await orgSession.miners.put(miner!, f.hash, f.bytes, { deal: held[0]! });
      expect(onDisk([...abandoned, ...extra])).toHaveLength(5);
      await sleep(3 * GRACE_MS);
      // Still under way: the hold keeps its reserve's worth, oldest first, and nothing of other uploads.
      expect(onDisk(extra)).toEqual([extra[0]!.hash]);
      expect(onDisk(abandoned)).toEqual([]);
      yield systemRandom(segment);
    }
    const fid = await orgSession.put(stalling(), { name: 'uploads/stalled' });
    expect(held).toHaveLength(1);
    await orgSession.indexer.sync();
    expect(fileOf(orgSession.indexer.state, fid)).toMatchObject({ state: 'Active', size: 2 * segment + 1 });
    // The declaration took the hold.
    expect(await holding()).toEqual([]);
    expect((await orgSession.get(fid)).byteLength).toBe(2 * segment + 1);
    expect(onDisk(abandoned)).toEqual([]);
  }, 120_000);
});
