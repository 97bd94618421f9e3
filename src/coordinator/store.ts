import Database from 'better-sqlite3';
import type { StrategyState } from '../aggregation/index.ts';
import { fromLE32InPlace, LITTLE_ENDIAN, leBytes, MiB } from '../shared/bytes.ts';
import { type Clock, systemClock } from '../shared/clock.ts';
import { AilinkError } from '../shared/errors.ts';
import { createSqliteNonceLedger, type NonceLedger } from '../storage/protocol/index.ts';
import type { EvaluationSummary, Preprocessing, RoundKind, TaskSpec } from '../task/index.ts';

/**
 * The coordinator's durable state, one SQLite file. Every accepted message and every stage transition is written
 * before it is acted on, and a finished round (its record and the new global state) in one transaction, so a
 * coordinator killed at any point resumes the same attempt, from the same messages, and never loses or repeats a
 * completed round.
 */

export interface TaskRow {
  readonly id: string;
  readonly spec: TaskSpec;
  readonly digest: string;
  /** The spec stored as a public object (its canonical JSON), named in every manifest. */
  readonly specFid: string;
  readonly createdAt: number;
  readonly status: 'running' | 'finished';
}

export interface ParticipantRow {
  readonly task: string;
  readonly account: string;
  readonly identityKey: string;
  /** X25519 key (hex) the participant reads private models with: they are wrapped for it. '' for rows from before. */
  readonly readerKey: string;
  /** When the accepted join was signed (participant's clock, ms): an older one is a replay. 0 for rows from before. */
  readonly joinSignedAt: number;
  readonly peer: { peerId: string; addrs: string[] };
  readonly joinedAt: number;
  readonly lastSeen: number;
}

/** The round number a task's statistics attempts are stored under: before round 0, and never anchored. */
export const STATISTICS_ROUND = -1;

export interface AttemptSetup {
  /** What the round's vectors carry (src/task/layout.ts); rows from before round kinds are 'train'. */
  readonly kind?: RoundKind;
  readonly cohort: { account: string; identityKey: string }[];
  readonly graphSeed: string;
  readonly k: number;
  readonly t: number;
  readonly dimension: number;
  readonly startModel: { fid: string; hash: string };
  /** The federated preprocessing the round's organisations apply, null when the task needs none. */
  readonly preprocessing?: { fid: string; digest: string } | null;
}

/** The outcome of a task's statistics round: the federated preprocessing, stored as a public object. */
export interface StatisticsRow {
  readonly task: string;
  readonly attempt: number;
  readonly fid: string;
  readonly digest: string;
  readonly preprocessing: Preprocessing;
  readonly survivors: number;
  readonly finishedAt: number;
}

export interface AttemptRow {
  readonly task: string;
  readonly round: number;
  readonly attempt: number;
  readonly phase: string;
  readonly deadline: number;
  readonly setup: AttemptSetup;
  readonly startedAt: number;
  readonly reason: string | null;
}

/** An attempt's place in its task, without its setup. */
export type AttemptHead = Pick<AttemptRow, 'round' | 'attempt' | 'phase' | 'deadline'>;

export interface RoundRow {
  readonly task: string;
  readonly round: number;
  readonly attempt: number;
  readonly modelFid: string;
  readonly modelHash: string;
  readonly manifestFid: string;
  readonly manifestDigest: string;
  /** 'evaluation' for the closing round that only scored the final model; absent (older rows) means 'train'. */
  readonly kind?: 'train' | 'evaluation';
  /** The round's model on the coordinator's test set (null without one). */
  readonly accuracy: number | null;
  readonly loss: number | null;
  /** The organisations' client-side evaluation of the round's start model (null when nothing is held out). */
  readonly evaluation?: EvaluationSummary | null;
  readonly survivors: number;
  readonly cohort: number;
  readonly seconds: number;
  readonly bytes: number;
  readonly finishedAt: number;
  /**
   * When the task's models are private: the X25519 reader keys (besides the coordinator's) the model's data key is
   * wrapped for — every participant joined when it was stored. The next round's cohort is drawn among them.
   */
  readonly modelReaders?: string[];
}

export interface CoordinatorStore {
  addTask(row: TaskRow): void;
  task(id: string): TaskRow | undefined;
  tasks(): TaskRow[];
  finishTask(id: string): void;

  upsertParticipant(row: ParticipantRow): void;
  participant(task: string, account: string): ParticipantRow | undefined;
  participants(task: string): ParticipantRow[];
  touch(task: string, account: string, at: number): void;

  /** The open attempt of a task (at most one), if any. */
  openAttempt(task: string): AttemptRow | undefined;
  /**
   * Where a task stands — its open attempt, else its latest — without the attempt's setup: what every participant's
   * poll needs, read without parsing a cohort list per request.
   */
  attemptHead(task: string): AttemptHead | undefined;
  attempts(task: string, round?: number): AttemptRow[];
  addAttempt(row: AttemptRow): void;
  setPhase(
    task: string,
    round: number,
    attempt: number,
    phase: string,
    deadline: number,
    reason?: string,
  ): void;

  addAnnouncement(task: string, round: number, attempt: number, phase: string, wire: unknown): void;
  announcement(task: string, round: number, attempt: number, phase: string): unknown;

  /** Stores a stage message; false when the sender already has one for that stage (the first one stands). */
  addMessage(
    task: string,
    round: number,
    attempt: number,
    stage: string,
    sender: string,
    body: unknown,
  ): boolean;
  message(task: string, round: number, attempt: number, stage: string, sender: string): unknown;
  messages(task: string, round: number, attempt: number, stage: string): { sender: string; body: unknown }[];
  /** Who has a message stored for the stage, in order, without the messages (checked after every submission). */
  senders(task: string, round: number, attempt: number, stage: string): string[];

  /** Records a finished round and the strategy state after it, atomically. */
  finishRound(row: RoundRow, state: StrategyState): void;
  rounds(task: string): RoundRow[];
  /** The strategy state after the last finished round; undefined before round 0 finishes. */
  strategyState(task: string): StrategyState | undefined;
  /** Records a finished statistics round (its attempt becomes done), atomically. */
  finishStatistics(row: StatisticsRow): void;
  statistics(task: string): StatisticsRow | undefined;
  /** Nonces of signed HTTP requests (task creation) until they expire: kept here so a restart reopens no replay. */
  readonly requestNonces: NonceLedger;
  close(): void;
}

/** The first bytes of a strategy state's bytes (`stateParts`). */
const STATE_MAGIC = 'AILS';

/**
 * The most bytes of a strategy state in one SQLite row. A state was one blob, which SQLite caps at 1e9 bytes: the
 * FedAdam family (the global f32 weights and two f64 buffers, 20 bytes a weight) stopped at ≈ 50M weights. In rows of
 * 64 MiB a state of any size fits, and neither side ever holds the state's bytes whole beside the state itself.
 */
export const STATE_PART_BYTES = 64 * MiB;

/**
 * A strategy's state as bytes, in consecutive parts of at most `partBytes` (the first, the header, may be longer):
 * 'AILS' ‖ u32 LE header length ‖ header JSON (strategy, round, and each array's name and length) ‖ the global weights
 * (f32 LE) ‖ each buffer (f64 LE), in the header's order. It was JSON with each array in base64, which cannot hold a
 * model of 100.7M weights at all: the base64 of its 403 MB is longer than the longest string V8 makes (2^29 − 24
 * characters). The array parts are views of the state's own arrays on a little-endian machine: write each before the
 * state changes.
 */
export function* stateParts(state: StrategyState, partBytes = STATE_PART_BYTES): Generator<Uint8Array> {
  if (!Number.isSafeInteger(partBytes) || partBytes < 8)
    throw new RangeError(`expected a part size of at least 8 bytes, got ${partBytes}`);
  const buffers = Object.entries(state.buffers);
  const header = Buffer.from(
    JSON.stringify({
      strategy: state.strategy,
      round: state.round,
      global: state.global.length,
      buffers: buffers.map(([name, values]) => [name, values.length]),
    }),
  );
  const prefix = Buffer.alloc(8);
  prefix.write(STATE_MAGIC, 0, 'latin1');
  prefix.writeUInt32LE(header.byteLength, 4);
  yield Buffer.concat([prefix, header]);
  for (const values of [state.global, ...buffers.map(([, v]) => v)]) {
    const perPart = Math.floor(partBytes / values.BYTES_PER_ELEMENT);
    for (let at = 0; at < values.length; at += perPart)
      yield leArrayBytes(values.subarray(at, Math.min(values.length, at + perPart)));
  }
}

/** A strategy state's bytes whole (`stateParts` joined): for tests and small states. */
export function encodeState(state: StrategyState): Buffer {
  return Buffer.concat([...stateParts(state)]);
}

/** An array's bytes little-endian (a view on a little-endian machine). */
function leArrayBytes(values: Float32Array | Float64Array): Uint8Array {
  if (values instanceof Float32Array) return leBytes(values);
  if (LITTLE_ENDIAN) return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const out = Buffer.alloc(values.byteLength);
  for (let i = 0; i < values.length; i++) out.writeDoubleLE(values[i]!, 8 * i);
  return out;
}

/** Reads a stream of byte parts as one sequence, whatever their boundaries. */
class PartReader {
  private at = 0;
  /** Bytes handed out so far. */
  read = 0;
  constructor(
    private part: Uint8Array,
    private readonly parts: Iterator<Uint8Array>,
  ) {}

  /** Fills `into` whole; false if the parts ended first. */
  fill(into: Uint8Array): boolean {
    let filled = 0;
    while (filled < into.byteLength) {
      if (this.at === this.part.byteLength) {
        const next = this.parts.next();
        if (next.done) return false;
        this.part = next.value;
        this.at = 0;
        continue;
      }
      const n = Math.min(into.byteLength - filled, this.part.byteLength - this.at);
      into.set(this.part.subarray(this.at, this.at + n), filled);
      this.at += n;
      filled += n;
      this.read += n;
    }
    return true;
  }

  /** How many bytes are left (reads them all). */
  drain(): number {
    let left = this.part.byteLength - this.at;
    for (let next = this.parts.next(); !next.done; next = this.parts.next()) left += next.value.byteLength;
    this.part = new Uint8Array(0);
    this.at = 0;
    return left;
  }
}

/**
 * A state from its stored parts: `first` as the store's `strategy` row holds it, then the rest in order. `first` is
 * either the whole state in one blob or its header (parts of `stateParts`, joined any way), or JSON with base64 arrays
 * (databases from before the blob).
 */
export function decodeState(first: string | Uint8Array, rest: Iterable<Uint8Array> = []): StrategyState {
  const parts = rest[Symbol.iterator]();
  try {
    return typeof first === 'string' ? decodeJsonState(first) : readState(new PartReader(first, parts));
  } finally {
    // A store's rows come from a live query: ended early (a broken state), it must still close.
    parts.return?.();
  }
}

function readState(reader: PartReader): StrategyState {
  const broken = (why: string) => new AilinkError('INTERNAL', `the stored strategy state is broken: ${why}`);
  const prefix = Buffer.alloc(8);
  if (!reader.fill(prefix) || prefix.toString('latin1', 0, 4) !== STATE_MAGIC)
    throw broken('expected the AILS magic');
  const headerBytes = Buffer.alloc(prefix.readUInt32LE(4));
  if (!reader.fill(headerBytes))
    throw broken(
      `its header of ${headerBytes.byteLength} bytes runs past its ${reader.read + reader.drain()} bytes`,
    );
  let header: { strategy: string; round: number; global: number; buffers: [string, number][] };
  try {
    header = JSON.parse(headerBytes.toString('utf8'));
  } catch {
    throw broken('its header is not JSON');
  }
  const size =
    8 + headerBytes.byteLength + 4 * header.global + 8 * header.buffers.reduce((a, [, n]) => a + n, 0);
  const fillAll = (values: Float32Array | Float64Array) => {
    if (!reader.fill(new Uint8Array(values.buffer, values.byteOffset, values.byteLength)))
      throw broken(`${reader.read} bytes, its header says ${size}`);
  };
  const global = new Float32Array(header.global);
  fillAll(global);
  fromLE32InPlace(global);
  const buffers: Record<string, Float64Array> = {};
  for (const [name, count] of header.buffers) {
    const values = new Float64Array(count);
    fillAll(values);
    if (!LITTLE_ENDIAN) {
      const view = new DataView(values.buffer);
      for (let i = 0; i < count; i++) values[i] = view.getFloat64(8 * i, true);
    }
    buffers[name] = values;
  }
  const left = reader.drain();
  if (left > 0) throw broken(`${reader.read + left} bytes, its header says ${size}`);
  return { strategy: header.strategy, round: header.round, global, buffers };
}

/** A state stored as JSON with base64 arrays, as databases from before the blob hold it. */
function decodeJsonState(stored: string): StrategyState {
  const raw = JSON.parse(stored) as {
    strategy: string;
    round: number;
    global: string;
    buffers: Record<string, string>;
  };
  const bytes = (s: string) => {
    const b = Buffer.from(s, 'base64');
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
  };
  return {
    strategy: raw.strategy,
    round: raw.round,
    global: new Float32Array(bytes(raw.global)),
    buffers: Object.fromEntries(Object.entries(raw.buffers).map(([k, v]) => [k, new Float64Array(bytes(v))])),
  };
}

/** `clock` only decides when remembered request nonces have expired and may be pruned. */
export function openCoordinatorStore(
  path: string,
  clock: Clock = systemClock,
  { statePartBytes = STATE_PART_BYTES }: { statePartBytes?: number } = {},
): CoordinatorStore {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec(`
    CREATE TABLE IF NOT EXISTS tasks (id TEXT PRIMARY KEY, spec TEXT NOT NULL, digest TEXT NOT NULL,
      spec_fid TEXT NOT NULL, created_at INTEGER NOT NULL, status TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS participants (task TEXT NOT NULL, account TEXT NOT NULL, identity_key TEXT NOT NULL,
      peer TEXT NOT NULL, joined_at INTEGER NOT NULL, last_seen INTEGER NOT NULL, PRIMARY KEY (task, account));
    CREATE TABLE IF NOT EXISTS attempts (task TEXT NOT NULL, round INTEGER NOT NULL, attempt INTEGER NOT NULL,
      phase TEXT NOT NULL, deadline INTEGER NOT NULL, setup TEXT NOT NULL, started_at INTEGER NOT NULL, reason TEXT,
      PRIMARY KEY (task, round, attempt));
    CREATE TABLE IF NOT EXISTS announcements (task TEXT NOT NULL, round INTEGER NOT NULL, attempt INTEGER NOT NULL,
      phase TEXT NOT NULL, wire TEXT NOT NULL, PRIMARY KEY (task, round, attempt, phase));
    CREATE TABLE IF NOT EXISTS messages (task TEXT NOT NULL, round INTEGER NOT NULL, attempt INTEGER NOT NULL,
      stage TEXT NOT NULL, sender TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (task, round, attempt, stage, sender));
    CREATE TABLE IF NOT EXISTS rounds (task TEXT NOT NULL, round INTEGER NOT NULL, record TEXT NOT NULL,
      PRIMARY KEY (task, round));
    CREATE TABLE IF NOT EXISTS strategy (task TEXT PRIMARY KEY, state TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS strategy_parts (task TEXT NOT NULL, part INTEGER NOT NULL, bytes BLOB NOT NULL,
      PRIMARY KEY (task, part));
    CREATE TABLE IF NOT EXISTS statistics (task TEXT PRIMARY KEY, record TEXT NOT NULL);
  `);
  // Stores from before reader keys and signed joins: the columns are added, empty until the participant joins again.
  const participantColumns = db.prepare<[], { name: string }>('PRAGMA table_info(participants)').all();
  if (!participantColumns.some((c) => c.name === 'reader_key'))
    db.exec("ALTER TABLE participants ADD COLUMN reader_key TEXT NOT NULL DEFAULT ''");
  if (!participantColumns.some((c) => c.name === 'join_signed_at'))
    db.exec('ALTER TABLE participants ADD COLUMN join_signed_at INTEGER NOT NULL DEFAULT 0');
  type AttemptDb = {
    task: string;
    round: number;
    attempt: number;
    phase: string;
    deadline: number;
    setup: string;
    started_at: number;
    reason: string | null;
  };
  const attemptOf = (r: AttemptDb): AttemptRow => ({
    task: r.task,
    round: r.round,
    attempt: r.attempt,
    phase: r.phase,
    deadline: r.deadline,
    setup: JSON.parse(r.setup) as AttemptSetup,
    startedAt: r.started_at,
    reason: r.reason,
  });
  type TaskDb = {
    id: string;
    spec: string;
    digest: string;
    spec_fid: string;
    created_at: number;
    status: TaskRow['status'];
  };
  // A task's spec never changes (its digest names it), and every request reads its task: each spec is parsed once.
  const specs = new Map<string, TaskSpec>();
  const specOf = (r: TaskDb): TaskSpec => {
    let spec = specs.get(r.digest);
    if (spec === undefined) {
      spec = JSON.parse(r.spec) as TaskSpec;
      specs.set(r.digest, spec);
    }
    return spec;
  };
  const taskOf = (r: TaskDb): TaskRow => ({
    id: r.id,
    spec: specOf(r),
    digest: r.digest,
    specFid: r.spec_fid,
    createdAt: r.created_at,
    status: r.status,
  });
  type ParticipantDb = {
    task: string;
    account: string;
    identity_key: string;
    reader_key: string;
    join_signed_at: number;
    peer: string;
    joined_at: number;
    last_seen: number;
  };
  const participantOf = (r: ParticipantDb): ParticipantRow => ({
    task: r.task,
    account: r.account,
    identityKey: r.identity_key,
    readerKey: r.reader_key,
    joinSignedAt: r.join_signed_at,
    peer: JSON.parse(r.peer) as ParticipantRow['peer'],
    joinedAt: r.joined_at,
    lastSeen: r.last_seen,
  });
  const q = {
    addTask: db.prepare(
      'INSERT INTO tasks (id, spec, digest, spec_fid, created_at, status) VALUES (?, ?, ?, ?, ?, ?)',
    ),
    task: db.prepare<[string], TaskDb>('SELECT * FROM tasks WHERE id = ?'),
    tasks: db.prepare<[], TaskDb>('SELECT * FROM tasks ORDER BY created_at, id'),
    finishTask: db.prepare("UPDATE tasks SET status = 'finished' WHERE id = ?"),
    upsertParticipant: db.prepare(
      `INSERT INTO participants (task, account, identity_key, reader_key, join_signed_at, peer, joined_at, last_seen)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (task, account) DO UPDATE SET reader_key = excluded.reader_key,
         join_signed_at = excluded.join_signed_at, peer = excluded.peer, last_seen = excluded.last_seen`,
    ),
    participant: db.prepare<[string, string], ParticipantDb>(
      'SELECT * FROM participants WHERE task = ? AND account = ?',
    ),
    participants: db.prepare<[string], ParticipantDb>(
      'SELECT * FROM participants WHERE task = ? ORDER BY account',
    ),
    touch: db.prepare('UPDATE participants SET last_seen = max(last_seen, ?) WHERE task = ? AND account = ?'),
    openAttempt: db.prepare<[string], AttemptDb>(
      "SELECT * FROM attempts WHERE task = ? AND phase NOT IN ('done', 'aborted') ORDER BY round DESC, attempt DESC LIMIT 1",
    ),
    attempts: db.prepare<[string], AttemptDb>(
      'SELECT * FROM attempts WHERE task = ? ORDER BY round, attempt',
    ),
    attemptHead: db.prepare<[string], AttemptHead>(
      `SELECT round, attempt, phase, deadline FROM attempts WHERE task = ?
       ORDER BY phase NOT IN ('done', 'aborted') DESC, round DESC, attempt DESC LIMIT 1`,
    ),
    addAttempt: db.prepare(
      'INSERT INTO attempts (task, round, attempt, phase, deadline, setup, started_at, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    ),
    setPhase: db.prepare(
      'UPDATE attempts SET phase = ?, deadline = ?, reason = coalesce(?, reason) WHERE task = ? AND round = ? AND attempt = ?',
    ),
    addAnnouncement: db.prepare(
      'INSERT OR REPLACE INTO announcements (task, round, attempt, phase, wire) VALUES (?, ?, ?, ?, ?)',
    ),
    announcement: db.prepare<[string, number, number, string], { wire: string }>(
      'SELECT wire FROM announcements WHERE task = ? AND round = ? AND attempt = ? AND phase = ?',
    ),
    addMessage: db.prepare(
      'INSERT OR IGNORE INTO messages (task, round, attempt, stage, sender, body) VALUES (?, ?, ?, ?, ?, ?)',
    ),
    message: db.prepare<[string, number, number, string, string], { body: string }>(
      'SELECT body FROM messages WHERE task = ? AND round = ? AND attempt = ? AND stage = ? AND sender = ?',
    ),
    messages: db.prepare<[string, number, number, string], { sender: string; body: string }>(
      'SELECT sender, body FROM messages WHERE task = ? AND round = ? AND attempt = ? AND stage = ? ORDER BY sender',
    ),
    senders: db
      .prepare<[string, number, number, string], string>(
        'SELECT sender FROM messages WHERE task = ? AND round = ? AND attempt = ? AND stage = ? ORDER BY sender',
      )
      .pluck(),
    addRound: db.prepare('INSERT INTO rounds (task, round, record) VALUES (?, ?, ?)'),
    rounds: db.prepare<[string], { record: string }>(
      'SELECT record FROM rounds WHERE task = ? ORDER BY round',
    ),
    setState: db.prepare(
      'INSERT INTO strategy (task, state) VALUES (?, ?) ON CONFLICT (task) DO UPDATE SET state = excluded.state',
    ),
    state: db.prepare<[string], { state: string | Buffer }>('SELECT state FROM strategy WHERE task = ?'),
    dropStateParts: db.prepare('DELETE FROM strategy_parts WHERE task = ?'),
    addStatePart: db.prepare('INSERT INTO strategy_parts (task, part, bytes) VALUES (?, ?, ?)'),
    stateParts: db
      .prepare<[string], Buffer>('SELECT bytes FROM strategy_parts WHERE task = ? ORDER BY part')
      .pluck(),
    addStatistics: db.prepare('INSERT INTO statistics (task, record) VALUES (?, ?)'),
    statistics: db.prepare<[string], { record: string }>('SELECT record FROM statistics WHERE task = ?'),
  };
  const finishStatistics = db.transaction((row: StatisticsRow) => {
    q.addStatistics.run(row.task, JSON.stringify(row));
    q.setPhase.run('done', row.finishedAt, null, row.task, STATISTICS_ROUND, row.attempt);
  });
  const finishRound = db.transaction((row: RoundRow, state: StrategyState) => {
    q.addRound.run(row.task, row.round, JSON.stringify(row));
    // The state's header in its `strategy` row, its arrays in `strategy_parts` (a store from before the parts has the
    // whole state in the row and no parts: decodeState reads both the same way).
    const parts = stateParts(state, statePartBytes);
    const asBuffer = (part: Uint8Array) => Buffer.from(part.buffer, part.byteOffset, part.byteLength);
    q.setState.run(row.task, asBuffer(parts.next().value!));
    q.dropStateParts.run(row.task);
    let index = 1;
    for (const part of parts) q.addStatePart.run(row.task, index++, asBuffer(part));
    q.setPhase.run('done', row.finishedAt, null, row.task, row.round, row.attempt);
  });

  return {
    addTask: (r) =>
      void q.addTask.run(r.id, JSON.stringify(r.spec), r.digest, r.specFid, r.createdAt, r.status),
    task: (id) => {
      const r = q.task.get(id);
      return r && taskOf(r);
    },
    tasks: () => q.tasks.all().map(taskOf),
    finishTask: (id) => void q.finishTask.run(id),
    upsertParticipant: (r) =>
      void q.upsertParticipant.run(
        r.task,
        r.account,
        r.identityKey,
        r.readerKey,
        r.joinSignedAt,
        JSON.stringify(r.peer),
        r.joinedAt,
        r.lastSeen,
      ),
    participant: (task, account) => {
      const r = q.participant.get(task, account);
      return r && participantOf(r);
    },
    participants: (task) => q.participants.all(task).map(participantOf),
    touch: (task, account, at) => void q.touch.run(at, task, account),
    openAttempt: (task) => {
      const r = q.openAttempt.get(task);
      return r && attemptOf(r);
    },
    attemptHead: (task) => q.attemptHead.get(task),
    attempts: (task, round) =>
      q.attempts
        .all(task)
        .map(attemptOf)
        .filter((a) => round === undefined || a.round === round),
    addAttempt: (r) =>
      void q.addAttempt.run(
        r.task,
        r.round,
        r.attempt,
        r.phase,
        r.deadline,
        JSON.stringify(r.setup),
        r.startedAt,
        r.reason,
      ),
    setPhase: (task, round, attempt, phase, deadline, reason) =>
      void q.setPhase.run(phase, deadline, reason ?? null, task, round, attempt),
    addAnnouncement: (task, round, attempt, phase, wire) =>
      void q.addAnnouncement.run(task, round, attempt, phase, JSON.stringify(wire)),
    announcement: (task, round, attempt, phase) => {
      const r = q.announcement.get(task, round, attempt, phase);
      return r && (JSON.parse(r.wire) as unknown);
    },
    addMessage: (task, round, attempt, stage, sender, body) =>
      q.addMessage.run(task, round, attempt, stage, sender, JSON.stringify(body)).changes === 1,
    message: (task, round, attempt, stage, sender) => {
      const r = q.message.get(task, round, attempt, stage, sender);
      return r && (JSON.parse(r.body) as unknown);
    },
    messages: (task, round, attempt, stage) =>
      q.messages
        .all(task, round, attempt, stage)
        .map((r) => ({ sender: r.sender, body: JSON.parse(r.body) as unknown })),
    senders: (task, round, attempt, stage) => q.senders.all(task, round, attempt, stage),
    finishRound: (row, state) => finishRound(row, state),
    rounds: (task) => q.rounds.all(task).map((r) => JSON.parse(r.record) as RoundRow),
    strategyState: (task) => {
      const r = q.state.get(task);
      return r && decodeState(r.state, q.stateParts.iterate(task));
    },
    finishStatistics: (row) => finishStatistics(row),
    statistics: (task) => {
      const r = q.statistics.get(task);
      return r && (JSON.parse(r.record) as StatisticsRow);
    },
    requestNonces: createSqliteNonceLedger(db, clock),
    close: () => db.close(),
  };
}
