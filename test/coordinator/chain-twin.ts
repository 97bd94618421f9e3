import { createHash } from 'node:crypto';
import { type FileInfo, type ProtocolCall, seedOf } from '../../src/chain/index.ts';
import { fileKey, ownerFilesPrefix } from '../../src/chain/pallets/file-bank.ts';
import type { ObjectSource } from '../../src/coordinator/round.ts';
import { AilinkError } from '../../src/shared/errors.ts';
import { call, createHarness, makeAccounts, registerMiner } from '../chain/helpers.ts';
import { makeAccount, type World } from './harness.ts';

const sha256Hex = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/**
 * The chain the harness's twins stand for, as the protocol state `auditTask` reads. Every call the coordinator makes
 * on its ledger is also submitted as a remark to the real protocol rules over an in-memory state (so an admission is
 * checked against the participant's own signature, and rounds must come in order), and twelve miners register the
 * same way. Stored objects: the storage twin addresses them by SHA-256, not by the codec's Merkle fid that fileBank's
 * declaration rule recomputes, so the twin writes the record a completed upload leaves — active, one column on each
 * miner, owned by whoever stored it — for every object it holds (`recordObjects`).
 */
export function attachChainTwin(world: World) {
  const h = createHarness();
  const coordinator = makeAccount('coordinator').address;
  const submit = (caller: string, c: ProtocolCall, paidToPot?: bigint) => {
    const outcome = h.submit(caller, c, paidToPot === undefined ? {} : { paidToPot });
    if (outcome.kind !== 'applied')
      throw new AilinkError('CHAIN_CALL_REJECTED', `${c.name} was rejected: ${JSON.stringify(outcome)}`);
  };
  const miners = makeAccounts('explorer/miner', 12);
  for (const m of miners) submit(m.address, registerMiner(m), 1000n);
  // The chain first: a call its rules reject must change the ledger no more than it changes the chain.
  const ledger = world.ledger;
  const { createTask, admitMany, recordRound } = ledger;
  ledger.createTask = async (task, digest, admitted) => {
    submit(coordinator, call('provenance.createTask', { task, spec: digest, admitted: [...admitted] }));
    await createTask(task, digest, admitted);
  };
  // Each admission of a batch is judged by the rules on its own; only those applied reach the ledger.
  ledger.admitMany = async (batch) =>
    Promise.all(
      batch.map(async (a) => {
        const outcome = h.submit(coordinator, call('provenance.admit', { ...a }));
        if (outcome.kind !== 'applied') return { admitted: false as const, reason: JSON.stringify(outcome) };
        return (await admitMany([a]))[0]!;
      }),
    );
  // The graph seed is the hash of the twin's block that recorded the cohort, as on the real chain.
  ledger.drawSeed = async (task, round, attempt, cohort) => {
    submit(coordinator, call('provenance.drawSeed', { task, round, attempt, cohort }));
    return seedOf(h.state, task, round, attempt)!.blockHash;
  };
  // What the coordinator and the participants' view of the chain read.
  ledger.seedOf = (task, round, attempt) => seedOf(h.state, task, round, attempt);
  const owners = new Map<string, string>();
  /** Objects the chain twin has a record of, and whose. */
  const recorded = new Map<string, string>();
  /**
   * Brings the chain's file records in line with the storage twin, as its uploads and deletions would: the record a
   * completed upload leaves for every object it holds and the chain has not seen, and none for an object gone from it
   * (its owner's fileBank.deleteFile). Before each anchor (the rules take only a manifest stored by its coordinator),
   * and again whenever a test wants the chain to see what changed since.
   */
  const recordObjects = () => {
    h.block += 1;
    for (const [fid, owner] of recorded) {
      if (world.objects.objects.has(fid)) continue;
      recorded.delete(fid);
      h.state.apply([
        { key: fileKey(fid), value: null },
        { key: `${ownerFilesPrefix(owner)}${fid}`, value: null },
      ]);
    }
    for (const [fid, bytes] of world.objects.objects) {
      if (h.state.get(fileKey(fid)) !== undefined) continue;
      const owner = owners.get(fid) ?? coordinator;
      const record: FileInfo = {
        owner,
        deal: sha256Hex(new TextEncoder().encode(`deal/${fid}`)),
        name: null,
        size: bytes.byteLength,
        profile: { segmentSize: 1 << 20, dataFragments: 4, parityFragments: 8 },
        segments: [],
        encryption: null,
        state: 'Active',
        declaredAt: h.block,
        declaredTime: 1_700_000_000_000 + h.block * 6000,
        activeAt: h.block,
        placements: miners.map((m) => m.address),
        charged: 0,
      };
      recorded.set(fid, owner);
      h.state.apply([
        { key: fileKey(fid), value: record },
        { key: `${ownerFilesPrefix(owner)}${fid}`, value: h.block },
      ]);
    }
  };
  // The anchor, after the round's objects, and with it the next attempt's seed draw when the close draws it (one
  // extrinsic on the real chain).
  ledger.recordRound = async (task, round, manifest, digest, _batch, next) => {
    recordObjects();
    submit(coordinator, call('provenance.recordRound', { task, round, manifest, digest }));
    if (next !== undefined) submit(coordinator, call('provenance.drawSeed', { task, ...next }));
    await recordRound(task, round, manifest, digest);
  };
  return {
    recordObjects,
    state: h.state,
    atBlock: () => h.block,
    /** The world as one participant sees it: what it uploads is recorded as its own. */
    storingAs(account: string): World {
      const putFor = async (source: ObjectSource, name?: string, owner?: string) => {
        const fid = await world.objects.putFor(source, name, owner);
        owners.set(fid, account);
        return fid;
      };
      return { ...world, objects: { ...world.objects, putFor } };
    },
  };
}
