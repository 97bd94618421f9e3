import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  auditRecordOf,
  type ChainClient,
  challengeOf,
  type FileInfo,
  fileOf,
  filesOfMiner,
  holdAllowance,
  type Indexer,
  minerOf,
  type ProtocolConfig,
  protocolCall,
  restoralClaimers,
  restoralOrdersOf,
  serviceBytesOf,
  submitProtocol,
  taggedFor,
  verifiersOf,
} from '../../chain/index.ts';
import type { Host, PeerRef } from '../../p2p/index.ts';
import type { Account } from '../../shared/account.ts';
import type { Clock, Random } from '../../shared/clock.ts';
import { AilinkError } from '../../shared/errors.ts';
import type { StorageProfile } from '../object/index.ts';
import { decodeSegment, rebuildColumns, zeroFragmentHash } from '../object/index.ts';
import {
  blocksOf,
  buildAuditProof,
  checkTags,
  idleFileBytes,
  idleRoot,
  labelIdleFileAsync,
} from '../proofs/index.ts';
import type { MinerClient, MinerLog } from '../protocol/index.ts';
import { createVerifierClient, proofDigest, proofParams } from '../protocol/index.ts';
import type { FragmentStore } from './fragment-store.ts';

export interface AuditAgentOptions {
  /** Where idle files live (`<dir>/<index>`). */
  readonly idleDir: string;
  readonly config: ProtocolConfig;
  /** The capacity the miner declared on chain: service data plus idle files never exceed it. */
  readonly capacity: number;
  /** Most bytes of idle files to keep committed (0: no idle-space proofs). */
  readonly idleSpace: number;
  /** How often the agent looks at the chain for work. */
  readonly pollMs: number;
  readonly requestTimeoutMs: number;
  readonly signatureTtlMs: number;
  /** Garbage collection of fragments no file on chain places here. */
  readonly collect: CollectOptions;
}

export interface CollectOptions {
  /** How often the store is swept. */
  readonly everyMs: number;
  /**
   * How long a fragment nothing places here is kept after it was stored: a client stores every fragment of an object
   * before it declares it, so an upload has this long from its first fragment to its declaration.
   */
  readonly graceMs: number;
  /** Accounts whose fragments are never collected (the miner's `--allow` list: they store off chain too). */
  readonly keepOwners: readonly string[];
}

export interface AuditAgent {
  /** One pass over all duties; exposed so tests and the CLI can drive it. */
  tick(): Promise<void>;
  stop(): Promise<void>;
}

/** Idle files labelled (in the background) and then committed together. */
const IDLE_FILES_PER_PASS = 8;

/** Idle files being labelled beside the passes; `roots` once all are written. */
interface IdleJob {
  readonly first: number;
  readonly count: number;
  roots?: string[];
}
/** Columns tagged per pass; their reports share one transaction. */
const REPORTS_PER_PASS = 16;

/**
 * A miner's duties towards the audit module, run as a loop over its own index of the chain:
 * - answer its open challenge: a PoDR2 proof over the challenged blocks and an idle-space proof, checked and signed
 *   by the verifier the chain assigned to the challenge, put on chain before the deadline;
 * - get every column it holds tagged by a verifier and report it (`fileBank.calculateReport`) before the column's
 *   tag deadline (a column left untagged past it is a miss and gets a restoral order);
 * - take restoral orders it may take: claim, rebuild the column from any 4 of the other 11 miners, store, tag,
 *   complete;
 * - keep its idle space committed as labelled idle files, releasing the oldest as service data arrives;
 * - collect the fragments no file on chain places on it any more, once an upload's grace has passed.
 * A duty that fails is logged and tried again on a later pass; nothing here stops the miner.
 *
 * Only the challenge has a deadline, and it is counted in blocks, which come fast when the network is busy: a new
 * challenge is therefore answered before each further column is tagged, and the tag reports of one pass go on chain
 * in one transaction (a transaction per column made the busy miner's own backlog push its challenge past the deadline).
 */
export function startAuditAgent(
  deps: {
    chain: ChainClient;
    indexer: Indexer;
    account: Account;
    store: FragmentStore;
    host: Host;
    miners: MinerClient;
    log: MinerLog;
    clock: Clock;
    random: Random;
  },
  options: AuditAgentOptions,
): AuditAgent {
  const { indexer, account, store, log } = deps;
  const me = account.address;
  const params = proofParams(options.config.audit);
  const fileBytes = idleFileBytes(params.pois);
  const verifierClient = createVerifierClient(deps, options);
  /** Aborted by `stop()`, so a pass waiting for a transaction ends at once rather than at its deadline. */
  const stopping = new AbortController();
  const submit = (calls: Parameters<typeof submitProtocol>[2]) =>
    submitProtocol(deps, account, calls, { deadlineMs: options.requestTimeoutMs, signal: stopping.signal });
  mkdirSync(options.idleDir, { recursive: true });
  const idlePath = (index: number) => join(options.idleDir, String(index));
  /** Attempts at the current challenge: a verifier that was briefly away gets another chance before the deadline. */
  let attempts = { challenge: -1, tries: 0 };

  /**
   * A verifier to tag with: `address` if given (a challenge's assigned verifier), else the first registered one —
   * the network's verifiers share one PoDR2 key (teeWorker.register enforces it), so any of them tags alike.
   */
  function verifier(address?: string): PeerRef & { keyId: string; address: string } {
    const all = verifiersOf(indexer.state);
    const chosen = address === undefined ? all[0] : all.find((v) => v.address === address);
    if (chosen === undefined) {
      throw new AilinkError(
        'VERIFIER_UNAVAILABLE',
        address === undefined
          ? 'no verifier is registered on chain'
          : `verifier ${address} is not registered on chain`,
      );
    }
    return { peerId: chosen.peerId, addrs: chosen.addrs, keyId: chosen.podr2Key, address: chosen.address };
  }

  async function answerChallenge(height: number): Promise<void> {
    const challenge = challengeOf(indexer.state, me);
    if (challenge === undefined || challenge.result !== null || challenge.deadline < height) return;
    if (attempts.challenge !== challenge.issuedAt) attempts = { challenge: challenge.issuedAt, tries: 0 };
    if (attempts.tries >= 3) return;
    attempts.tries += 1;
    // The chain assigned the challenge one verifier (from the block hash): only its signature counts.
    const peer = verifier(challenge.verifier);
    const proof = await buildAuditProof(challenge, params, {
      readBlock: (name, offset, length) => store.readRange(name, offset, length),
      tags(name) {
        const held = store.tagsOf(name);
        if (held === null || held.keyId !== peer.keyId) {
          throw new AilinkError(
            'PROOF_MALFORMED',
            `fragment ${name} has no tags from verifier ${peer.peerId}`,
          );
        }
        return held.tags;
      },
      idleLabels: async (index) => new Uint8Array(await readFile(idlePath(index))),
    });
    const verdict = await verifierClient.verify(peer, challenge.issuedAt, proof);
    await submit([
      protocolCall('audit.submitResult', {
        miner: me,
        challenge: challenge.issuedAt,
        proof: proofDigest(proof),
        verifier: verdict.verifier,
        signature: verdict.signature,
      }),
    ]);
    log.info('challenge-answered', {
      challenge: challenge.issuedAt,
      fragments: challenge.fragments.length,
      idle: challenge.idle.length,
    });
  }

  /** Tags (at the verifier) every fragment of column `index` of `file` that has no tags under its key yet. */
  async function tagColumn(fid: string, file: FileInfo, index: number): Promise<void> {
    const peer = verifier();
    const size = file.profile.segmentSize / file.profile.dataFragments;
    for (const name of file.segments.map((s) => s.fragments[index]!)) {
      if (store.tagsOf(name)?.keyId === peer.keyId) continue;
      const bytes = await store.read(name);
      const { keyId, tags } = await verifierClient.tag(peer, { fid, index }, name, bytes);
      checkTags(tags, blocksOf(size, params.podr2));
      store.putTags(name, keyId, tags);
    }
  }

  /** Answers a challenge no attempt was made at yet; retries of a failed answer wait for the next pass. */
  async function answerNewChallenge(): Promise<void> {
    const height = await indexer.sync();
    const challenge = challengeOf(indexer.state, me);
    if (challenge === undefined || challenge.result !== null || attempts.challenge === challenge.issuedAt)
      return;
    await runDuty('challenge', () => answerChallenge(height));
  }

  async function reportTags(): Promise<void> {
    const pending = filesOfMiner(indexer.state, me)
      .filter(({ fid, index }) => taggedFor(indexer.state, fid, index) !== me && fileOf(indexer.state, fid))
      .slice(0, REPORTS_PER_PASS);
    const reports: ReturnType<typeof protocolCall>[] = [];
    for (const { fid, index } of pending) {
      await answerNewChallenge();
      const file = fileOf(indexer.state, fid);
      if (file === undefined) continue;
      await runDuty('tags', async () => {
        await tagColumn(fid, file, index);
        const report = await verifierClient.certify(verifier(), { fid, index });
        reports.push(protocolCall('fileBank.calculateReport', { fid, index, ...report }));
      });
    }
    if (reports.length === 0) return;
    await answerNewChallenge();
    await submit(reports);
    log.info('columns-tagged', { columns: reports.length });
  }

  async function takeRestoralOrders(height: number): Promise<void> {
    if (minerOf(indexer.state, me)?.state !== 'positive') return;
    for (const { fid, index, order } of restoralOrdersOf(indexer.state)) {
      const file = fileOf(indexer.state, fid);
      if (file === undefined || order.origin === me || file.placements.includes(me)) continue;
      // An order its owner asked for is the owner's client's to drive (it picks the new miner), unless nobody
      // claimed it within a claim window; an order the protocol opened, or a lapsed claim, is anyone's.
      const lapsed = order.claimer !== null && order.deadline !== null && order.deadline < height;
      const unclaimed =
        order.claimer === null &&
        (order.by === null || height > order.generatedAt + options.config.restoralClaimBlocks);
      if (!lapsed && !unclaimed) continue;
      // Where the rules rank restorers, only the ranked miners may claim (the ranking widens while the order waits).
      const claimers = restoralClaimers(indexer.state, options.config, height + 1, fid, index);
      if (claimers !== undefined && !claimers.includes(me)) continue;
      await submit([protocolCall('fileBank.claimRestoralOrder', { fid, index })]);
      log.info('restoral-claimed', { fid, index, origin: order.origin });
      await rebuildColumn(fid, index);
      await answerNewChallenge();
      await tagColumn(fid, file, index);
      await submit([protocolCall('fileBank.restoralComplete', { fid, index })]);
      log.info('restoral-completed', { fid, index });
      return; // one order per pass: the chain (and the others' claims) may have moved meanwhile
    }
  }

  /** Rebuilds column `index` of `fid` from any `dataFragments` of the other columns and stores it here. */
  async function rebuildColumn(fid: string, index: number): Promise<void> {
    const file = fileOf(indexer.state, fid)!;
    const profile: StorageProfile = file.profile;
    const size = profile.segmentSize / profile.dataFragments;
    const holders = file.placements.map((a) => (a === null ? undefined : minerOf(indexer.state, a)));
    for (const [s, segment] of file.segments.entries()) {
      const name = segment.fragments[index]!;
      if (store.has(name) !== null) continue;
      const fragments: (Uint8Array | null)[] = segment.fragments.map(() => null);
      let have = 0;
      for (let c = 0; c < segment.fragments.length && have < profile.dataFragments; c++) {
        const holder = holders[c];
        if (c === index || file.placements[c] === me) continue;
        if (segment.fragments[c] === zeroFragmentHash(size)) {
          fragments[c] = new Uint8Array(size);
          have++;
          continue;
        }
        if (holder === undefined || holder.state !== 'positive') continue;
        try {
          fragments[c] = await deps.miners.get(
            { peerId: holder.peerId, addrs: holder.addrs },
            segment.fragments[c]!,
            { signal: AbortSignal.timeout(options.requestTimeoutMs) },
          );
          have++;
        } catch (err) {
          log.warn('restoral-fetch-failed', { fid, segment: s, column: c, message: (err as Error).message });
        }
      }
      const expected = { hash: segment.hash, fragmentHashes: segment.fragments };
      const decoded = decodeSegment(profile, fragments, expected, s);
      const [bytes] = rebuildColumns(profile, decoded, [index], segment.fragments);
      const prepared = await store.prepare(name, size, me);
      if (prepared.state === 'accept') {
        try {
          await prepared.writer.write(bytes!);
          await prepared.writer.commit();
        } finally {
          await prepared.writer.abort();
        }
      }
    }
  }

  /**
   * Keeps idle files committed up to the room that service data leaves, releasing the oldest first. A released file
   * stays on disk while a challenge issued before the release still covers it.
   */
  let idleJob: IdleJob | undefined;
  async function manageIdle(): Promise<void> {
    const record = auditRecordOf(indexer.state, me);
    const room = Math.max(
      0,
      Math.min(options.idleSpace, options.capacity - serviceBytesOf(indexer.state, me)),
    );
    const want = Math.floor(room / fileBytes);
    const have = record.idleFiles.length;
    // Files labelled for the chain, not yet in the indexer's state: never cleaned up below.
    const pending: { first: number; count: number }[] = [];
    if (have > want) {
      await submit([protocolCall('audit.releaseIdle', { count: have - want })]);
      log.info('idle-released', { count: have - want, serviceBytes: serviceBytesOf(indexer.state, me) });
    } else if (idleJob?.roots !== undefined) {
      // Labelled in the background by an earlier pass: commit it if the chain still expects these indices.
      const { first, roots } = idleJob;
      idleJob = undefined;
      if (first === record.nextIdleIndex) {
        const count = Math.min(roots.length, want - have);
        pending.push({ first, count });
        await submit([protocolCall('audit.commitIdle', { first, roots: roots.slice(0, count) })]);
        log.info('idle-committed', { first, count });
      }
    } else if (have < want && idleJob === undefined) {
      // Labelling is slow on purpose (PoIS rounds: hours for a production-sized file), so it runs beside the passes
      // rather than in one: challenges keep being answered meanwhile, and a later pass commits the result.
      const job: IdleJob = { first: record.nextIdleIndex, count: Math.min(want - have, IDLE_FILES_PER_PASS) };
      idleJob = job;
      void labelIdle(job).catch((err: unknown) => {
        if (idleJob === job) idleJob = undefined;
        if (!stopping.signal.aborted) log.warn('idle-label-failed', { message: (err as Error).message });
      });
      log.info('idle-labelling', { first: job.first, count: job.count });
    }
    const kept = new Set(auditRecordOf(indexer.state, me).idleFiles.map((f) => String(f.index)));
    for (const f of challengeOf(indexer.state, me)?.idle ?? []) kept.add(String(f.index));
    if (idleJob !== undefined) pending.push(idleJob);
    for (const { first, count } of pending) {
      for (let i = first; i < first + count; i++) {
        kept.add(String(i));
        kept.add(`${i}.tmp`);
      }
    }
    for (const name of readdirSync(options.idleDir)) {
      if (!kept.has(name)) rmSync(join(options.idleDir, name), { force: true });
    }
  }

  async function labelIdle(job: IdleJob): Promise<void> {
    const roots: string[] = [];
    for (let i = job.first; i < job.first + job.count; i++) {
      const labels = await labelIdleFileAsync(me, i, params.pois, { signal: stopping.signal });
      await writeFile(`${idlePath(i)}.tmp`, labels);
      await rename(`${idlePath(i)}.tmp`, idlePath(i));
      roots.push(idleRoot(labels, params.pois));
    }
    job.roots = roots;
  }

  let collectedAt = Number.NEGATIVE_INFINITY;
  /**
   * Deletes the fragments no file on chain places here any more — those of deleted files, of columns repaired onto
   * other miners, of uploads never declared (a client or gateway killed mid-upload) — once their grace has passed.
   * Without it a deletion freed the space on chain only, and the bytes stayed on every miner for good. An upload
   * whose uploader holds its placement ticket (`placement.holdTicket`) is under way: the fragments put for that deal
   * wait for it however long it takes (a 1.2 GB update outlasted the dev network's 10 minutes). Only that deal's,
   * oldest first, and no more than one column of the segments the hold reserves of its owner's space: a hold spared
   * all its owner's undeclared fragments once, so one live upload kept every abandoned one, for free.
   */
  async function collectGarbage(height: number): Promise<void> {
    const now = deps.clock.now();
    if (now - collectedAt < options.collect.everyMs) return;
    collectedAt = now;
    const placed = new Set<string>();
    const column = (fid: string, index: number) => {
      for (const segment of fileOf(indexer.state, fid)?.segments ?? []) placed.add(segment.fragments[index]!);
    };
    for (const { fid, index } of filesOfMiner(indexer.state, me)) column(fid, index);
    // A column being rebuilt here is not placed here until the order completes.
    for (const { fid, index, order } of restoralOrdersOf(indexer.state))
      if (order.claimer === me) column(fid, index);
    const spared = new Set(options.collect.keepOwners);
    /** Bytes each live hold still spares here (`holdAllowance`), by owner and deal, spent oldest fragment first. */
    const allowance = new Map<string, number>();
    const held = (account: string, deal: string, size: number) => {
      const key = `${account}/${deal}`;
      const left = allowance.get(key) ?? holdAllowance(indexer.state, account, deal, me, height);
      const keep = left >= size;
      allowance.set(key, keep ? left - size : left);
      return keep;
    };
    const { fragments, bytes } = await store.collect(
      (hash, owners, size) =>
        placed.has(hash) ||
        owners.some((o) => spared.has(o.account) || o.deals.some((deal) => held(o.account, deal, size))),
      now - options.collect.graceMs,
    );
    if (fragments > 0) log.info('collected', { fragments, bytes });
  }

  const duties: [string, (height: number) => Promise<void>][] = [
    ['challenge', answerChallenge],
    ['tags', reportTags],
    ['restoral', takeRestoralOrders],
    ['idle', manageIdle],
    ['collect', collectGarbage],
  ];

  let running: Promise<void> = Promise.resolve();
  /**
   * Runs one duty; a failure is logged (the duty is tried again later), never thrown. After `stop()` the rest of the
   * pass is cut short (its submissions aborted, its chain client closing): that is not worth a warning.
   */
  async function runDuty(name: string, duty: () => Promise<void>): Promise<void> {
    if (stopping.signal.aborted) return;
    try {
      await duty();
    } catch (err) {
      if (stopping.signal.aborted) return;
      log.warn(`audit-${name}-failed`, {
        code: (err as AilinkError).code,
        message: (err as Error).message,
      });
    }
  }

  async function pass(): Promise<void> {
    const height = await indexer.sync();
    for (const [name, duty] of duties) await runDuty(name, () => duty(height));
  }
  const tick = () => {
    running = running.catch(() => {}).then(pass);
    return running;
  };
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const loop = () => {
    if (stopped) return;
    tick()
      .catch((err) => {
        if (!stopped) log.warn('audit-pass-failed', { message: (err as Error).message });
      })
      .finally(() => {
        if (!stopped) timer = setTimeout(loop, options.pollMs);
      });
  };
  timer = setTimeout(loop, 0);
  return {
    tick,
    async stop() {
      stopped = true;
      stopping.abort();
      clearTimeout(timer);
      await running.catch(() => {});
    },
  };
}
