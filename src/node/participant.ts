import { seedOf, taskOf } from '../chain/index.ts';
import { connectCoordinator } from '../participant/link.ts';
import type { LocalData } from '../participant/local-data.ts';
import { createParticipant, type Participant, type ParticipantOptions } from '../participant/runtime.ts';
import { poolTrainer, type TrainingPool } from '../participant/train-pool.ts';
import type { Account } from '../shared/account.ts';
import { type Clock, type Random, systemClock } from '../shared/clock.ts';
import { AilinkError } from '../shared/errors.ts';
import type { CodecPool } from '../storage/index.ts';
import type { TaskSpec } from '../task/index.ts';
import { openSession, putArgs, ROLE_CHAIN_WAIT_MS, type Session, type SessionConfig } from './session.ts';

export interface ParticipantNode {
  readonly participant: Participant;
  run(signal: AbortSignal): Promise<void>;
  stop(): Promise<void>;
}

export interface ParticipantNodeOptions extends ParticipantOptions {
  readonly session: SessionConfig;
  /** The coordinator's HTTP API; default: where the task's record on chain says its coordinator is reached. */
  readonly coordinatorUrl?: string;
  /** How long a coordinator that does not answer is waited for (default COORDINATOR_WAIT_MS, 10 min). */
  readonly coordinatorWaitMs?: number;
  readonly account: Account;
  /** Ed25519 key that signs this participant's round messages; keep it for the task's lifetime. */
  readonly identityKey: Uint8Array;
  /** Reads this organisation's data against the task's schema (e.g. `loadLocalData`). */
  loadData(spec: TaskSpec): Promise<LocalData>;
  log(line: string): void;
}

/**
 * Where the task's coordinator is reached: the URL given, or the endpoint the task's record on chain names (with the
 * peer id the coordinator's server must then have).
 * @throws TASK_NOT_FOUND when the chain knows no such task; TASK_UNVERIFIED when its coordinator recorded no endpoint
 */
async function coordinatorOf(
  session: Session,
  options: Pick<ParticipantNodeOptions, 'coordinatorUrl' | 'task'>,
): Promise<[url: string, peerId?: string]> {
  if (options.coordinatorUrl !== undefined) return [options.coordinatorUrl];
  await session.indexer.sync();
  const record = taskOf(session.indexer.state, options.task);
  if (record === undefined)
    throw new AilinkError(
      'TASK_NOT_FOUND',
      `the chain at ${session.chain.endpoint} records no task ${options.task} (as of block ${session.indexer.height()}): check the task id`,
    );
  const endpoint = record.endpoint ?? null;
  if (endpoint === null)
    throw new AilinkError(
      'TASK_UNVERIFIED',
      `task ${options.task}'s coordinator has recorded no endpoint on chain yet: pass --coordinator URL, or wait until it runs`,
    );
  return [endpoint.url, endpoint.peerId];
}

/** `ailink participant`: an organisation's node, with its own libp2p host, storage client and chain index. */
export async function startParticipantNode(
  deps: { random: Random; clock?: Clock; pool: TrainingPool; codec: CodecPool },
  options: ParticipantNodeOptions,
): Promise<ParticipantNode> {
  const clock = deps.clock ?? systemClock;
  const session = await openSession(
    { ...options.session, chainWaitMs: options.session.chainWaitMs ?? ROLE_CHAIN_WAIT_MS },
    options.account,
    'participant',
    {
      clock,
      random: deps.random,
      codec: deps.codec,
    },
  );
  try {
    const [url, peerId] = await coordinatorOf(session, options);
    const link = await connectCoordinator(session.host, url, peerId, {
      log: options.log,
      ...(options.coordinatorWaitMs === undefined ? {} : { waitMs: options.coordinatorWaitMs }),
    });
    const participant = createParticipant(
      {
        account: options.account,
        identityKey: options.identityKey,
        link,
        chain: {
          genesisHash: session.chain.genesisHash,
          blockTimeMs: session.chain.blockTimeMs,
          task: async (task) => {
            await session.indexer.sync();
            const record = taskOf(session.indexer.state, task);
            return record && { spec: record.spec, coordinator: record.coordinator };
          },
          admitted: async (task) => {
            await session.indexer.sync();
            return session.tasks.admitted(task);
          },
          anchored: async (task) => {
            await session.indexer.sync();
            return session.tasks.anchored(task);
          },
          seed: async (task, round, attempt) => {
            await session.indexer.sync();
            return seedOf(session.indexer.state, task, round, attempt);
          },
        },
        objects: {
          get: (fid, o) => session.get(fid, o),
          read: (fid, o) => session.storage.get(fid, o),
          putFor: (source, reader, name) => session.put(...putArgs(source, { name, readers: [reader] })),
          owned: (prefix) => session.owned(prefix),
          delete: (fids) => session.deleteObjects(fids),
        },
        trainer: poolTrainer(deps.pool),
        loadData: (spec) => options.loadData(spec),
        clock,
        random: deps.random,
        log: options.log,
      },
      options,
    );
    return {
      participant,
      run: (signal) => participant.run(signal),
      stop: () => session.close(),
    };
  } catch (err) {
    await session.close();
    throw err;
  }
}
