import { AilinkError, hasCode } from '../shared/errors.ts';

/** One `provenance.admit`: the coordinator records that `account` joined `task` with the round key `identityKey`. */
export interface Admission {
  readonly task: string;
  readonly account: string;
  readonly identityKey: string;
  /** The account's signature of `admissionMessage(genesisHash, task, identityKey)` (hex). */
  readonly signature: string;
}

/** What the chain's rules made of one admission of a batch: recorded, or refused with the rule's reason. */
export type AdmissionOutcome =
  | { readonly admitted: true }
  | { readonly admitted: false; readonly reason: string };

/**
 * Admissions per extrinsic. Each `provenance.admit` is a remark of about 300 bytes, so 128 of them (≈ 40 KiB) sit far
 * below a block's length and weight limits on any Substrate chain, with room for the coordinator's other calls in the
 * same block. The cap is for the failure path rather than the fit: `utility.batchAll` is all or nothing, and a batch
 * the chain refuses is bisected, which costs up to 2·log2(cap) more submissions for one bad call; 128 keeps that to
 * 14 while 1,000 organisations still need only 8 batches.
 */
export const ADMISSION_BATCH = 128;

/**
 * Admissions that may wait behind the one in flight: 8 batches. Beyond it a join is refused with JOIN_QUEUE_FULL at
 * once rather than held for minutes on an HTTP request; a task admits at most 1,024 accounts, so a coordinator of one
 * full task never refuses anyone it could admit, and a flood of joins for many tasks cannot grow its memory without end.
 */
export const MAX_QUEUED_ADMISSIONS = 1024;

export interface AdmissionQueueOptions {
  /**
   * Records a batch as one extrinsic and says, in order, what became of each admission. Throws when the extrinsic
   * as a whole failed (nothing of it was recorded).
   */
  submit(batch: readonly Admission[]): Promise<readonly AdmissionOutcome[]>;
  /** At most this many admissions per submission (default ADMISSION_BATCH). */
  readonly maxBatch?: number;
  /** At most this many admissions waiting to be submitted (default MAX_QUEUED_ADMISSIONS). */
  readonly maxQueued?: number;
}

export interface AdmissionQueue {
  /**
   * Queues an admission; resolves once it is recorded on chain. A second admission of the same account to the same
   * task while the first waits or is in flight shares the first's answer (a participant that retried its join).
   * @throws JOIN_QUEUE_FULL when maxQueued admissions already wait; ROUND_NOT_ADMITTED when the same account is being
   *   admitted with another round key; CHAIN_CALL_REJECTED with the rule's reason; what `submit` throws for the
   *   submission that carried this admission alone
   */
  admit(admission: Admission): Promise<void>;
  /** Admissions waiting (not yet submitted) and in flight, and the batch size: how long a new join would wait. */
  load(): { readonly queued: number; readonly inFlight: number; readonly batch: number };
}

interface Entry {
  readonly admission: Admission;
  readonly done: Promise<void>;
  resolve(): void;
  reject(err: unknown): void;
}

/**
 * Errors of a whole submission that one admission in it may have caused (the chain refused or failed the extrinsic):
 * worth splitting the batch for. Anything else (the chain unreachable, a timeout) would fail every half the same
 * way, so each admission of the batch gets that error at once.
 */
const splittable = (err: unknown) => hasCode(err, 'CHAIN_CALL_FAILED') || hasCode(err, 'CHAIN_TX_REJECTED');

/**
 * Admissions in batches: while one submission is in flight the next joins wait, and then go out together, up to
 * maxBatch in one extrinsic. No timer: an admission that arrives when nothing is in flight goes out at once, so a lone
 * join waits no longer than before. Pure apart from calling `submit`: it reads no clock and touches no chain.
 */
export function createAdmissionQueue(options: AdmissionQueueOptions): AdmissionQueue {
  const maxBatch = options.maxBatch ?? ADMISSION_BATCH;
  const maxQueued = options.maxQueued ?? MAX_QUEUED_ADMISSIONS;
  if (!Number.isInteger(maxBatch) || maxBatch < 1 || !Number.isInteger(maxQueued) || maxQueued < 1)
    throw new AilinkError(
      'INVALID_INPUT',
      `admission queue: expected maxBatch and maxQueued as positive integers, got ${maxBatch} and ${maxQueued}`,
    );
  const queue: Entry[] = [];
  /** Every admission queued or in flight, by task and account. */
  const pending = new Map<string, Entry>();
  let inFlight = 0;
  const keyOf = (a: Admission) => `${a.task}\n${a.account}`;

  const settle = (entry: Entry, outcome: AdmissionOutcome | { error: unknown }) => {
    pending.delete(keyOf(entry.admission));
    if ('error' in outcome) entry.reject(outcome.error);
    else if (outcome.admitted) entry.resolve();
    else
      entry.reject(
        new AilinkError(
          'CHAIN_CALL_REJECTED',
          `the chain refused to admit ${entry.admission.account} to ${entry.admission.task}: ${outcome.reason}`,
          { details: { reason: outcome.reason } },
        ),
      );
  };

  /** Submits `batch`; when the extrinsic as a whole fails, each half again, down to single admissions. */
  async function send(batch: readonly Entry[]): Promise<void> {
    let outcomes: readonly AdmissionOutcome[];
    try {
      outcomes = await options.submit(batch.map((e) => e.admission));
      if (outcomes.length !== batch.length)
        throw new AilinkError(
          'INTERNAL',
          `admission queue: expected ${batch.length} outcomes for a batch, the ledger gave ${outcomes.length}`,
        );
    } catch (err) {
      if (batch.length === 1 || !splittable(err)) {
        for (const e of batch) settle(e, { error: err });
        return;
      }
      const half = Math.ceil(batch.length / 2);
      await send(batch.slice(0, half));
      await send(batch.slice(half));
      return;
    }
    for (const [i, e] of batch.entries()) settle(e, outcomes[i]!);
  }

  /** Whether a loop is taking batches off the queue; set and cleared synchronously, so no admission is missed. */
  let pumping = false;
  async function pump(): Promise<void> {
    pumping = true;
    try {
      // Admissions queued in the same tick (joins answered together) go out together.
      await Promise.resolve();
      while (queue.length > 0) {
        const batch = queue.splice(0, maxBatch);
        inFlight = batch.length;
        await send(batch);
        inFlight = 0;
      }
    } catch (err) {
      // `send` settles every admission it takes, whatever `submit` does: reaching here is a bug. No admission may be
      // left without an answer, so each one still waiting gets it.
      const bug = new AilinkError('INTERNAL', `admission queue: ${(err as Error).message}`, { cause: err });
      for (const e of queue.splice(0)) settle(e, { error: bug });
    } finally {
      pumping = false;
      inFlight = 0;
    }
  }

  return {
    admit(admission) {
      const same = pending.get(keyOf(admission));
      if (same !== undefined) {
        if (same.admission.identityKey === admission.identityKey) return same.done;
        return Promise.reject(
          new AilinkError(
            'ROUND_NOT_ADMITTED',
            `${admission.account} is being admitted to ${admission.task} with another round key (${same.admission.identityKey.slice(0, 16)}…); keys are not swapped mid-task: wait for that join's answer`,
          ),
        );
      }
      if (queue.length >= maxQueued)
        return Promise.reject(
          new AilinkError(
            'JOIN_QUEUE_FULL',
            `${queue.length} admissions already wait to be recorded on chain (at most ${maxQueued}, ${maxBatch} per block): join again in a few blocks`,
            { details: { queued: queue.length, batch: maxBatch } },
          ),
        );
      let resolve!: () => void;
      let reject!: (err: unknown) => void;
      const done = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      const entry: Entry = { admission, done, resolve, reject };
      queue.push(entry);
      pending.set(keyOf(admission), entry);
      // One loop at a time: admissions that arrive while a batch is in flight are taken by the running one.
      if (!pumping) void pump();
      return done;
    },
    load: () => ({ queued: queue.length, inFlight, batch: maxBatch }),
  };
}
