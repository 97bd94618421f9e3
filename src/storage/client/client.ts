import type { ChainCall, ObjectEntry } from '../../chain/index.ts';
import type { PeerRef } from '../../p2p/index.ts';
import type { Account } from '../../shared/account.ts';
import { fromHex, toHex } from '../../shared/bytes.ts';
import type { Clock, Random } from '../../shared/clock.ts';
import { AilinkError, describeError, hasCode } from '../../shared/errors.ts';
import { failpoint } from '../../shared/failpoint.ts';
import type {
  CodecPool,
  FragmentBody,
  ObjectRecord,
  ObjectRegistry,
  Placement,
  PreparedDeclaration,
} from '../object/index.ts';
import {
  checkProfile,
  columnsOf,
  decryptSegmentPart,
  fidOf,
  fragmentBody,
  fragmentHash,
  fragmentSizeOf,
  MAX_GROUP_MEMBERS,
  newDataKey,
  openReaderGroup,
  plaintextLength,
  profileForSize,
  type StorageProfile,
  sealReaderGroup,
  unwrapDataKey,
  wrapDataKey,
  zeroFragmentHash,
} from '../object/index.ts';
import type { MinerClient } from '../protocol/index.ts';

export interface StorageClientDeps {
  readonly miners: MinerClient;
  /** Where objects are recorded and miners listed (column i goes to the i-th miner of its directory, which a chain registry draws by free space). */
  readonly registry: ObjectRegistry;
  readonly account: Account;
  readonly codec: CodecPool;
  readonly clock: Clock;
  readonly random: Random;
}

export interface StorageClientOptions {
  readonly profile: StorageProfile;
  /** A fragment transfer that takes longer than this moves its column to another miner. */
  readonly fragmentDeadlineMs: number;
}

export interface PutOptions {
  readonly name?: string;
  /** Encrypt (default) or store the bytes as they are (e.g. public data, or `store hash` checks). */
  readonly encrypt?: boolean;
  /** X25519 public keys (hex) of further readers; the owner can always read. */
  readonly readers?: readonly string[];
  /**
   * X25519 public keys (hex) of readers reached through one reader group (object/group-key.ts): the declaration then
   * holds one wrap for all of them, however many. Puts with the same member set share one group object.
   */
  readonly readerGroup?: readonly string[];
  readonly signal?: AbortSignal;
  readonly onProgress?: (event: ProgressEvent) => void;
  /**
   * Files the object under a key of one of the owner's buckets (chain registries only). A function is called once
   * every byte was read, before the declaration: it may carry what reading measured, such as an MD5 for the ETag.
   */
  readonly entry?: ObjectEntry | (() => ObjectEntry);
  /**
   * The object's size, when known before its bytes are read: one smaller than a segment is then coded in a segment of
   * its own size (profileForSize) instead of a whole one. A source of another length is refused.
   */
  readonly size?: number;
  /**
   * Declare the object later, with the batch's other puts (`StorageClient.declareAll`), instead of before the put
   * returns: the put places its fragments and returns the fid, and the object is readable once the batch is declared.
   * A registry that cannot batch (no chain) declares at once.
   */
  readonly batch?: DeclarationBatch;
}

/**
 * Puts whose declarations wait to go on chain together, in one extrinsic with other calls (`declareAll`): one block
 * for all of them rather than one each, where every block costs every node of the network its indexing.
 */
export interface DeclarationBatch {
  readonly pending: PreparedDeclaration[];
  /** Calls that go after the declarations, in the same extrinsic (market terms naming a batched object, say). */
  readonly calls: ChainCall[];
}

export const declarationBatch = (): DeclarationBatch => ({ pending: [], calls: [] });

export interface GetOptions {
  readonly signal?: AbortSignal;
  readonly onProgress?: (e: ProgressEvent) => void;
  readonly maxBytes?: number;
  readonly range?: ByteRange;
}

/** A reader group object is fetched only up to this size: ≈ 240 bytes a member. */
const MAX_GROUP_OBJECT_BYTES = MAX_GROUP_MEMBERS * 256;

/** Bytes decrypted and handed out at a time when a segment is read from its data columns. */
const PIECE = 1024 * 1024;

/** A byte range of an object, both ends included (HTTP's `bytes=start-end`). */
export interface ByteRange {
  readonly start: number;
  readonly end: number;
}

export type ProgressEvent =
  | { kind: 'segment-stored'; segment: number; bytes: number }
  | { kind: 'column-moved'; column: number; from: string; to: string; reason: string }
  /** No spare miner was left for the column: the object is declared without it, and the registry repairs it. */
  | { kind: 'column-deferred'; column: number; from: string; reason: string }
  | { kind: 'segment-read'; segment: number; bytes: number }
  | { kind: 'column-repaired'; column: number; from: string; to: string };

export interface PutResult {
  readonly fid: string;
  readonly record: ObjectRecord;
  readonly miners: readonly string[];
}

export interface RepairReport {
  readonly fid: string;
  /** Columns whose miner was unreachable or had lost fragments, and where they are now. */
  readonly repaired: readonly { column: number; from: string; to: string; reason: string }[];
}

export interface StorageClient {
  put(source: Uint8Array | AsyncIterable<Uint8Array>, options?: PutOptions): Promise<PutResult>;
  /**
   * Streams the original bytes; every fragment and segment is verified before a byte is yielded. `maxBytes`: the
   * most the caller will take; a larger record (whatever its owner declared) is OBJECT_TOO_LARGE before any fragment
   * moves. `range`: only those bytes, fetching only the segments they lie in.
   * @throws RANGE_NOT_SATISFIABLE for a range outside the object
   */
  get(fid: string, options?: GetOptions): AsyncIterable<Uint8Array>;
  info(fid: string): Promise<Placement>;
  /** Rebuilds every column whose miner lost it (or is gone) from any 4 survivors and places it on a new miner. */
  repair(
    fid: string,
    options?: { signal?: AbortSignal; onProgress?: (e: ProgressEvent) => void },
  ): Promise<RepairReport>;
  /**
   * Declares the batch's puts, and then submits its calls and `alongside` (calls that may name those objects), in one
   * extrinsic; the batch is empty afterwards. A declaration the chain refused there is made again on its own
   * (`declareTogether`).
   * @throws INVALID_INPUT when there are calls to submit and the registry keeps no chain
   */
  declareAll(batch: DeclarationBatch, alongside?: readonly ChainCall[]): Promise<void>;
}

/**
 * The storage data path: put (seal → Reed-Solomon 4+8 → one column per miner, concurrently, moving a column when its
 * miner fails or stalls), get (any 4 fragments per segment, every hash verified, decrypted, streamed) and repair.
 */
export function createStorageClient(deps: StorageClientDeps, options: StorageClientOptions): StorageClient {
  const profile = checkProfile(options.profile);
  /** Reader groups this client made, by member set; and group keys it opened, by group public key. */
  const readerGroups = new Map<string, Promise<{ recipient: string; fid: string }>>();
  const groupKeys = new Map<string, Uint8Array>();
  const columns = columnsOf(profile);
  /** Peers by id; a `departed` one left the directory but may still hold its columns (reads ask it last). */
  type Peers = ReadonlyMap<string, PeerRef & { readonly departed?: true }>;
  const peersNow = async (): Promise<Peers> =>
    new Map((await deps.registry.directory()).map((p) => [p.peerId, p] as const));
  /** Every peer a read may ask: the directory's, then the departed ones the directory no longer lists. */
  const readablePeers = async (): Promise<Peers> => {
    const [listed, departed] = await Promise.all([peersNow(), deps.registry.departed?.() ?? []]);
    const peers = new Map(listed);
    for (const p of departed) if (!peers.has(p.peerId)) peers.set(p.peerId, { ...p, departed: true });
    return peers;
  };
  const deadline = (signal?: AbortSignal) =>
    signal
      ? AbortSignal.any([signal, AbortSignal.timeout(options.fragmentDeadlineMs)])
      : AbortSignal.timeout(options.fragmentDeadlineMs);

  /** Fetches ≥ dataFragments fragments of one segment, data columns first, then parity; null where not fetched. */
  async function fetchSegment(
    record: Pick<ObjectRecord, 'fid' | 'profile' | 'segments'>,
    miners: readonly string[],
    peers: Peers,
    index: number,
    skip: ReadonlySet<number>,
    signal: AbortSignal | undefined,
  ): Promise<(Uint8Array | null)[]> {
    const seg = record.segments[index]!;
    const size = fragmentSizeOf(record.profile);
    const width = record.profile.dataFragments + record.profile.parityFragments;
    const got: (Uint8Array | null)[] = new Array(width).fill(null);
    const failures: string[] = [];
    // Departed miners last: a column of theirs is asked for only when listed miners cannot make up the segment.
    const departedLast = (c: number) => (peers.get(miners[c]!)?.departed ? 1 : 0);
    const order = [...Array(width).keys()]
      .filter((c) => !skip.has(c))
      .sort((a, b) => departedLast(a) - departedLast(b));
    let next = 0;
    let have = 0;
    const fetchOne = async (c: number): Promise<void> => {
      const hash = seg.fragments[c]!;
      if (hash === zeroFragmentHash(size)) {
        got[c] = new Uint8Array(size);
        have++;
        return;
      }
      const peer = peers.get(miners[c]!);
      try {
        if (!peer)
          throw new AilinkError('MINER_UNREACHABLE', `miner ${miners[c]} is not in the network directory`);
        got[c] = await deps.miners.get(peer, hash, { signal: deadline(signal) });
        have++;
      } catch (err) {
        if (signal?.aborted) throw err;
        failures.push(`fragment ${c} (${hash.slice(0, 12)}…) on miner ${miners[c]}: ${describeError(err)}`);
      }
    };
    // Ask for exactly as many as still needed, in waves, so a healthy network costs 4 transfers per segment.
    while (have < record.profile.dataFragments && next < order.length) {
      const wave = order.slice(next, next + (record.profile.dataFragments - have));
      next += wave.length;
      await Promise.all(wave.map(fetchOne));
    }
    if (have < record.profile.dataFragments) {
      throw new AilinkError(
        'OBJECT_UNAVAILABLE',
        `expected ≥ ${record.profile.dataFragments} of ${width} fragments of segment ${index} of ${record.fid}, got ${have}; missing: ${failures.join('; ')}`,
        { details: { fid: record.fid, segment: index, missing: failures } },
      );
    }
    return got;
  }

  /**
   * Fetches a segment and hands the fragments to `use` (a decode or rebuild in the codec worker, which checks every
   * hash). A miner whose bytes do not match their hash is skipped and the segment fetched again from the others.
   */
  async function withVerifiedFragments<T>(
    record: Pick<ObjectRecord, 'fid' | 'profile' | 'segments'>,
    miners: readonly string[],
    peers: Peers,
    index: number,
    skip: ReadonlySet<number>,
    signal: AbortSignal | undefined,
    use: (fragments: (Uint8Array | null)[]) => Promise<T>,
  ): Promise<T> {
    const excluded = new Set(skip);
    for (;;) {
      const fragments = await fetchSegment(record, miners, peers, index, excluded, signal);
      try {
        return await use(fragments);
      } catch (err) {
        const column = hasCode(err, 'CODEC_HASH_MISMATCH') ? err.details?.column : undefined;
        if (typeof column !== 'number' || excluded.has(column)) throw err;
        excluded.add(column);
      }
    }
  }

  /** Rebuilds `lost` columns of every given segment and stores them on `targets` (column → new miner). */
  async function rebuildOnto(
    record: Pick<ObjectRecord, 'fid' | 'profile' | 'segments'>,
    miners: readonly string[],
    peers: Peers,
    targets: ReadonlyMap<number, PeerRef>,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const lost = [...targets.keys()];
    for (let index = 0; index < record.segments.length; index++) {
      const seg = record.segments[index]!;
      const expected = { hash: seg.hash, fragmentHashes: seg.fragments };
      const rebuilt = await withVerifiedFragments(
        record,
        miners,
        peers,
        index,
        new Set(lost),
        signal,
        (fragments) =>
          deps.codec.rebuild({ profile: record.profile, fragments, expected, index, columns: lost }),
      );
      await Promise.all(
        lost.map((c, k) =>
          deps.miners.put(targets.get(c)!, seg.fragments[c]!, rebuilt[k]!, { signal: deadline(signal) }),
        ),
      );
    }
  }

  async function put(
    source: Uint8Array | AsyncIterable<Uint8Array>,
    putOptions: PutOptions = {},
  ): Promise<PutResult> {
    const { signal, onProgress } = putOptions;
    const encrypt = putOptions.encrypt ?? true;
    if (putOptions.size !== undefined && !(Number.isSafeInteger(putOptions.size) && putOptions.size >= 0)) {
      throw new AilinkError(
        'INVALID_INPUT',
        `size: expected a whole number of bytes ≥ 0, got ${JSON.stringify(putOptions.size)}`,
      );
    }
    const objectProfile = profileForSize(profile, putOptions.size);
    const readers = [deps.account.readerKey, ...(putOptions.readers ?? [])];
    for (const r of [...readers, ...(putOptions.readerGroup ?? [])]) {
      if (!/^[0-9a-f]{64}$/.test(r)) {
        throw new AilinkError(
          'INVALID_INPUT',
          `reader key: expected 64 hex characters (an X25519 public key), got ${JSON.stringify(r)}`,
        );
      }
    }
    const key = encrypt ? newDataKey(deps.random) : null;
    const group =
      key === null || putOptions.readerGroup === undefined || putOptions.readerGroup.length === 0
        ? null
        : await readerGroupFor(putOptions.readerGroup, signal);
    // Room for the whole object's column when its size is known, else for one segment's fragment.
    const columnBytes =
      putOptions.size === undefined
        ? fragmentSizeOf(objectProfile)
        : Math.max(1, Math.ceil(putOptions.size / objectProfile.segmentSize)) * fragmentSizeOf(objectProfile);
    const deal = toHex(deps.random(16));
    const candidates = [...(await deps.registry.directory({ columns, columnBytes, deal }))];
    const peers: Peers = new Map(candidates.map((p) => [p.peerId, p] as const));
    if (candidates.length < columns) {
      throw new AilinkError(
        'NOT_ENOUGH_MINERS',
        `expected ≥ ${columns} miners, the network lists ${candidates.length}`,
      );
    }
    const assigned: PeerRef[] = candidates.slice(0, columns);
    const spares: PeerRef[] = candidates.slice(columns);
    // Columns no miner could take; each is declared without a miner, for the registry to repair.
    const deferred = new Set<number>();
    const maxDeferred = deps.registry.deferrableColumns?.(objectProfile) ?? 0;
    const placedMiners = () => assigned.map((p, c) => (deferred.has(c) ? '' : p.peerId));
    const segments: { hash: string; fragments: string[] }[] = [];
    const tags: string[] = [];
    let size = 0;

    /**
     * Puts one fragment of `column`, moving the column to a spare miner when its miner fails or stalls, or deferring
     * the column when no spare is left (a network of exactly 12 miners with one down) and the registry allows it.
     */
    const placeFragment = async (
      index: number,
      column: number,
      hash: string,
      bytes: FragmentBody,
    ): Promise<void> => {
      for (;;) {
        if (deferred.has(column)) return;
        const peer = assigned[column]!;
        try {
          await deps.miners.put(peer, hash, bytes, { signal: deadline(signal), deal });
          return;
        } catch (err) {
          if (signal?.aborted) throw new AilinkError('ABORTED', 'put cancelled', { cause: err });
          const spare = spares.shift();
          const reason = describeError(err);
          if (spare === undefined && deferred.size < maxDeferred) {
            deferred.add(column);
            onProgress?.({ kind: 'column-deferred', column, from: peer.peerId, reason });
            return;
          }
          if (spare === undefined) {
            throw new AilinkError(
              'PUT_FAILED',
              `column ${column} could not be placed: ${reason}; no spare miner is left${maxDeferred > 0 ? ` and ${deferred.size} columns (the most allowed) are already deferred` : ''}`,
              {
                cause: err,
                details: { column, deferred: [...deferred] },
              },
            );
          }
          assigned[column] = spare;
          onProgress?.({ kind: 'column-moved', column, from: peer.peerId, to: spare.peerId, reason });
          // Earlier segments of this column went to the failed miner: rebuild them onto the new one.
          if (index > 0) {
            // Segments before `index` are fully placed (segment i starts only after i−1 is done).
            const sofar = {
              fid: '(being stored)',
              profile: objectProfile,
              segments: segments.slice(0, index),
            };
            await rebuildOnto(sofar, placedMiners(), peers, new Map([[column, spare]]), signal);
          }
        }
      }
    };

    /**
     * The miners' signed receipts, column by column, each asked for as soon as that column's last fragment is placed
     * (its miner then holds the whole column), while other columns are still on the wire: asked for only after every
     * column was placed, they were a second round trip to 12 miners in every put (≈ 0.3 s of a small put's 2.9 s).
     */
    let receipts: Promise<(Awaited<ReturnType<MinerClient['receipt']>> | undefined)[]> | undefined;

    let index = 0;
    /** Why the object can never be declared, learnt while storing it (its owner's space is short of it). */
    let doomed: unknown;
    // Encode segment i+1 on a worker while segment i's fragments are on the wire.
    let inFlight: Promise<void> | undefined;
    // A placed segment's buffer is filled again with the next chunk: two segment buffers serve the whole put. A new
    // one per segment left each placed segment (32 MiB) to the collector, and the gateway's peak RSS held one more.
    const freeBuffers: Uint8Array[] = [];
    const segmentBuffer = () => freeBuffers.pop() ?? new Uint8Array(objectProfile.segmentSize);
    for await (const { bytes, last } of chunks(
      source,
      objectProfile.segmentSize,
      putOptions.size,
      segmentBuffer,
    )) {
      const at = index++;
      const length = bytes.byteLength;
      size += length;
      // A source longer than it said is refused at once, before its extra bytes are coded and sent.
      if (putOptions.size !== undefined && size > putOptions.size) {
        throw new AilinkError(
          'INVALID_INPUT',
          `the source held more than the ${putOptions.size} bytes its size said; nothing was declared`,
        );
      }
      const encoded = await deps.codec.encode({
        profile: objectProfile,
        plaintext: bytes,
        index: at,
        last,
        key,
      });
      await inFlight;
      // Stop sending what the chain will refuse to declare.
      if (doomed !== undefined) throw doomed;
      segments[at] = { hash: encoded.hash, fragments: encoded.fragmentHashes };
      if (encoded.tag !== null) tags[at] = encoded.tag;
      const placed = encoded.fragmentHashes.map((hash, c) =>
        placeFragment(at, c, hash, fragmentBody(objectProfile, encoded.stored, c)),
      );
      if (last && deps.registry.needsReceipts) {
        // Every segment is encoded: the fid is known. A source found longer or shorter than its size afterwards is
        // refused before the declaration; receipts asked for meanwhile are signatures nothing on chain will use.
        const fid = fidOf(segments.map((s) => s.hash));
        receipts = Promise.all(
          placed.map(async (done, c) => {
            await done;
            // Placed means on assigned[c] for good: a column moves only while one of its fragments is being placed.
            if (deferred.has(c)) return undefined;
            const column = { fid, deal, index: c, fragments: segments.map((s) => s.fragments[c]!) };
            return deps.miners.receipt(assigned[c]!, column, { signal: deadline(signal) });
          }),
        );
        receipts.catch(() => {});
      }
      inFlight = Promise.all(placed).then(() => {
        // Every miner has answered for this segment: nothing reads its buffer any more.
        if (encoded.stored.byteOffset === 0 && encoded.stored.buffer.byteLength === objectProfile.segmentSize)
          freeBuffers.push(new Uint8Array(encoded.stored.buffer as ArrayBuffer));
        onProgress?.({ kind: 'segment-stored', segment: at, bytes: length });
        // More segments to come: the placed fragments wait for a declaration that is not close (keepDraw). The hold
        // reserves the whole object when its size is known, else twice what is stored: a renewal per doubling.
        if (!last)
          deps.registry
            .keepDraw?.(
              deal,
              putOptions.size === undefined
                ? { profile: objectProfile, segments: 2 * (at + 1), stored: at + 1 }
                : {
                    profile: objectProfile,
                    segments: Math.max(at + 2, Math.ceil(putOptions.size / objectProfile.segmentSize)),
                    whole: true,
                  },
            )
            .catch((err: unknown) => {
              doomed ??= err;
            });
      });
      // A failure surfaces at the next await; keep it from being reported as unhandled meanwhile.
      inFlight.catch(() => {});
    }
    await inFlight;
    if (putOptions.size !== undefined && size !== putOptions.size) {
      throw new AilinkError(
        'INVALID_INPUT',
        `the source held ${size} bytes, not the ${putOptions.size} its size said; nothing was declared`,
      );
    }
    failpoint('storage.fragments-placed');
    const fid = fidOf(segments.map((s) => s.hash));
    const binding = { fid, owner: deps.account.address };
    const record: ObjectRecord = {
      version: 1,
      fid,
      size,
      ...(putOptions.name === undefined ? {} : { name: putOptions.name }),
      owner: deps.account.address,
      createdAt: deps.clock.now(),
      profile: { ...objectProfile },
      segments,
      encryption:
        key === null
          ? null
          : {
              alg: 'aes-256-gcm',
              wraps: [...readers, ...(group === null ? [] : [group.recipient])].map((r) =>
                wrapDataKey(key, fromHex(r), binding),
              ),
              tags,
              ...(group === null ? {} : { groups: [group] }),
            },
    };
    const miners = placedMiners();
    const signed = await receipts;
    const entry = typeof putOptions.entry === 'function' ? putOptions.entry() : putOptions.entry;
    const placed = assigned.map((peer, i) => {
      if (deferred.has(i)) return null;
      const receipt = signed?.[i];
      return receipt === undefined ? { peer } : { peer, receipt };
    });
    const { batch } = putOptions;
    if (batch !== undefined && deps.registry.prepare !== undefined) {
      batch.pending.push(await deps.registry.prepare(record, deal, placed, entry));
    } else {
      await deps.registry.declare(record, deal, placed, entry);
    }
    return { fid: record.fid, record, miners };
  }

  async function info(fid: string): Promise<Placement> {
    const p = await deps.registry.get(fid);
    if (p === null)
      throw new AilinkError(
        'OBJECT_NOT_FOUND',
        `no object ${fid} is recorded; check the fid or the --network you use`,
      );
    return p;
  }

  async function* get(fid: string, getOptions: GetOptions = {}): AsyncIterable<Uint8Array> {
    const { record, miners } = await info(fid);
    const range = getOptions.range;
    if (
      range !== undefined &&
      !(
        Number.isInteger(range.start) &&
        range.start >= 0 &&
        range.start <= range.end &&
        range.end < record.size
      )
    ) {
      throw new AilinkError(
        'RANGE_NOT_SATISFIABLE',
        `bytes ${range.start}-${range.end} are not within ${fid}, which holds ${record.size} bytes (0-${record.size - 1})`,
        { details: { size: record.size } },
      );
    }
    if (getOptions.maxBytes !== undefined && record.size > getOptions.maxBytes) {
      throw new AilinkError(
        'OBJECT_TOO_LARGE',
        `${fid} is recorded as ${record.size} bytes; at most ${getOptions.maxBytes} were expected here, so it was not fetched`,
      );
    }
    const peers = await readablePeers();
    const recomputed = fidOf(record.segments.map((seg) => seg.hash));
    if (recomputed !== fid) {
      throw new AilinkError(
        'CODEC_HASH_MISMATCH',
        `the record's segments hash to ${recomputed}, not to the fid ${fid}`,
      );
    }
    // The key before any fragment: a reader who may not read costs the miners nothing.
    const key =
      record.encryption === null ? null : await dataKeyOf(record.fid, record.owner, record.encryption);
    const count = record.segments.length;
    // A range reads only the segments it touches: every segment but the last holds exactly segmentSize bytes.
    const segmentSize = record.profile.segmentSize;
    const fragmentSize = fragmentSizeOf(record.profile);
    const first = range === undefined ? 0 : Math.floor(range.start / segmentSize);
    const end = range === undefined ? count : Math.floor(range.end / segmentSize) + 1;
    /** The plaintext bytes [from, to) of segment `index` that the read hands out. */
    const wanted = (index: number) => {
      const at = index * segmentSize;
      const length = plaintextLength(record, index);
      return range === undefined
        ? { from: 0, to: length }
        : { from: Math.max(0, range.start - at), to: Math.min(length, range.end + 1 - at) };
    };
    // A segment of an object we declared ourselves is read from the data fragments its part lies in alone (the data
    // columns are the stored segment, cut in dataFragments pieces), each checked against its hash and decrypted with
    // the segment's keystream (decryptSegmentPart), a piece at a time: no Reed-Solomon, no whole segment held, and a
    // range's first bytes wait for one fragment, not four (a player's `bytes=N-`). Why only our own: the fid binds
    // the segment hashes, and a segment hash binds its fragments only once the whole segment is rebuilt; a record we
    // declared binds them because we hashed the fragments we sent. Someone else's record could pair a genuine fid with
    // another object's fragments, so its segments are always rebuilt whole and checked on a worker.
    const ownRecord = record.owner === deps.account.address;
    const decode = async (index: number) => {
      const seg = record.segments[index]!;
      const tag = record.encryption === null ? null : fromHex(record.encryption.tags[index] ?? '', 'tag');
      const open = { length: plaintextLength(record, index), last: index === count - 1, key, tag };
      const expected = { hash: seg.hash, fragmentHashes: seg.fragments };
      return withVerifiedFragments(record, miners, peers, index, new Set(), getOptions.signal, (fragments) =>
        deps.codec.decode({ profile: record.profile, fragments, expected, index, open }),
      );
    };
    const fetchDataColumn = async (hash: string, minerId: string): Promise<Uint8Array> => {
      if (hash === zeroFragmentHash(fragmentSize)) return new Uint8Array(fragmentSize);
      const peer = peers.get(minerId);
      if (!peer)
        throw new AilinkError('MINER_UNREACHABLE', `miner ${minerId} is not in the network directory`);
      // A departed miner is asked only when the listed ones cannot make up a segment: the segment is then decoded.
      if (peer.departed)
        throw new AilinkError('MINER_UNREACHABLE', `miner ${minerId} has left the network directory`);
      const bytes = await deps.miners.get(peer, hash, { signal: deadline(getOptions.signal) });
      if (bytes.byteLength !== fragmentSize || fragmentHash(bytes) !== hash) {
        throw new AilinkError(
          'CODEC_HASH_MISMATCH',
          `miner ${minerId} served bytes that are not fragment ${hash}`,
        );
      }
      return bytes;
    };
    /** The data columns segment `index`'s wanted part lies in. */
    const dataColumnsOf = (index: number): number[] => {
      const { from, to } = wanted(index);
      const low = Math.floor(from / fragmentSize);
      const high = to === 0 ? low : Math.floor((to - 1) / fragmentSize);
      return Array.from({ length: high - low + 1 }, (_, k) => low + k);
    };
    // Our own objects: every data column the read needs, in order, with one segment's worth (dataFragments) fetched
    // ahead of the one handed out — a sliding window, so at most that many fragments wait in memory.
    const plan = ownRecord
      ? Array.from({ length: end - first }, (_, k) => first + k).flatMap((index) =>
          dataColumnsOf(index).map((column) => ({ index, column })),
        )
      : [];
    let planned = 0;
    const fetching: Promise<Uint8Array>[] = [];
    const nextColumn = (): Promise<Uint8Array> => {
      while (fetching.length <= record.profile.dataFragments && planned < plan.length) {
        const { index, column } = plan[planned++]!;
        const p = fetchDataColumn(record.segments[index]!.fragments[column]!, miners[column]!);
        p.catch(() => {});
        fetching.push(p);
      }
      return fetching.shift()!;
    };
    /** Segment `index`'s wanted part from its data columns, in pieces, each column handed out once it is checked. */
    async function* readDataColumns(index: number): AsyncGenerator<Uint8Array> {
      const { from, to } = wanted(index);
      let at = from;
      let failed = false;
      for (const column of dataColumnsOf(index)) {
        const next = nextColumn(); // taken even after a failure: the window stays in step with the plan
        if (failed) continue;
        const fragment = await next.catch((err: unknown) => {
          if (getOptions.signal?.aborted) throw err;
          return null;
        });
        if (fragment === null) {
          failed = true;
          continue;
        }
        const base = column * fragmentSize;
        const upTo = Math.min(to, base + fragmentSize);
        for (let piece = at; piece < upTo; piece += PIECE) {
          const stored = fragment.subarray(piece - base, Math.min(upTo, piece + PIECE) - base);
          yield key === null ? stored : decryptSegmentPart(key, index, stored, piece);
        }
        at = upTo;
      }
      // A column that could not be read as is (miner gone, bytes not matching): the rest from any 4 fragments.
      if (at < to) yield (await decode(index)).subarray(at, to);
    }
    // Others' objects: two whole segments ahead of the one handed out, decoded on a worker.
    const ahead: Promise<Uint8Array>[] = [];
    const prefetch = (index: number) => {
      if (ownRecord || index >= end) return;
      const whole = decode(index);
      whole.catch(() => {});
      ahead.push(whole);
    };
    prefetch(first);
    prefetch(first + 1);
    for (let index = first; index < end; index++) {
      prefetch(index + 2);
      const { from, to } = wanted(index);
      if (ownRecord) yield* readDataColumns(index);
      else {
        const bytes = await ahead.shift()!;
        yield from === 0 && to === bytes.byteLength ? bytes : bytes.subarray(from, to);
      }
      getOptions.onProgress?.({ kind: 'segment-read', segment: index, bytes: to - from });
    }
  }

  /**
   * The data key: from the record's wraps when the owner wrapped it for this reader at put time, or through a reader
   * group the reader is a member of (the group object names its key), else from a key
   * the owner released to it later through the registry's marketplace (an accepted `market.request`).
   * @throws CRYPTO_NOT_A_READER (the object has no access terms), ACCESS_DENIED (the key was not released to us)
   */
  async function dataKeyOf(
    fid: string,
    owner: string,
    encryption: NonNullable<ObjectRecord['encryption']>,
  ): Promise<Uint8Array> {
    const { wraps } = encryption;
    const me = deps.account.readerKey;
    const binding = { fid, owner };
    if (wraps.some((w) => w.recipient === me))
      return unwrapDataKey(wraps, deps.account.x25519PrivateKey, binding);
    for (const group of encryption.groups ?? []) {
      const groupKey = await groupKeyOf(group, owner);
      if (groupKey !== null) return unwrapDataKey(wraps, groupKey, binding);
    }
    if (deps.registry.access === undefined)
      return unwrapDataKey(wraps, deps.account.x25519PrivateKey, binding);
    const { terms, grant } = await deps.registry.access(fid, {
      address: deps.account.address,
      readerKey: me,
    });
    if (grant !== null) return unwrapDataKey([grant], deps.account.x25519PrivateKey, binding);
    // No access terms: the owner chose its readers at put time, and a request would be refused.
    if (!terms) return unwrapDataKey(wraps, deps.account.x25519PrivateKey, binding);
    throw new AilinkError(
      'ACCESS_DENIED',
      `${deps.account.address} may not read ${fid} yet: its data key is neither wrapped for reader key ${me} nor released to it; request access: ailink object request ${fid}`,
      { details: { fid, reader: deps.account.address } },
    );
  }

  /**
   * The group object for `members` of this account: the one made earlier for the same set, else a new one, stored
   * plain (it holds only sealed keys). A failed store is forgotten, so the next put tries again.
   */
  function readerGroupFor(
    members: readonly string[],
    signal: AbortSignal | undefined,
  ): Promise<{ recipient: string; fid: string }> {
    const set = [...new Set(members)].sort().join(',');
    let made = readerGroups.get(set);
    if (made === undefined) {
      const sealed = sealReaderGroup(members, deps.account.address);
      made = put(sealed.bytes, {
        name: `reader-group/${sealed.publicKey.slice(0, 16)}`,
        encrypt: false,
        size: sealed.bytes.byteLength,
        ...(signal === undefined ? {} : { signal }),
      }).then((r) => ({ recipient: sealed.publicKey, fid: r.fid }));
      made.catch(() => readerGroups.delete(set));
      readerGroups.set(set, made);
    }
    return made;
  }

  /**
   * This account's key of a reader group (fetched once and kept), or null when the account is not a member.
   * @throws CRYPTO_DECRYPT_FAILED when the group object is not the group the declaration names, or is encrypted
   */
  async function groupKeyOf(
    group: { recipient: string; fid: string },
    owner: string,
  ): Promise<Uint8Array | null> {
    const held = groupKeys.get(group.recipient);
    if (held !== undefined) return held;
    // A group object holds only sealed keys and is stored plain. One that is encrypted would need a data key of its
    // own, possibly through a group: declarations naming each other would send the reader round for ever.
    if ((await info(group.fid)).record.encryption !== null) {
      throw new AilinkError(
        'CRYPTO_DECRYPT_FAILED',
        `expected the reader group object ${group.fid} to be stored plain, as group objects are; it is encrypted`,
      );
    }
    const chunks: Uint8Array[] = [];
    for await (const chunk of get(group.fid, { maxBytes: MAX_GROUP_OBJECT_BYTES })) chunks.push(chunk);
    try {
      const key = openReaderGroup(
        Buffer.concat(chunks),
        { publicKey: group.recipient, owner },
        deps.account.x25519PrivateKey,
      );
      groupKeys.set(group.recipient, key);
      return key;
    } catch (err) {
      if (hasCode(err, 'CRYPTO_NOT_A_READER')) return null;
      throw err;
    }
  }

  async function repair(
    fid: string,
    repairOptions: { signal?: AbortSignal; onProgress?: (e: ProgressEvent) => void } = {},
  ): Promise<RepairReport> {
    const { record, miners } = await info(fid);
    const peers = await peersNow();
    const size = fragmentSizeOf(record.profile);
    const lost = new Map<number, string>();
    await Promise.all(
      miners.map(async (minerId, column) => {
        const peer = peers.get(minerId);
        if (!peer) return void lost.set(column, 'not in the network directory');
        try {
          for (const seg of record.segments) {
            const hash = seg.fragments[column]!;
            const held = await deps.miners.has(peer, hash, { signal: deadline(repairOptions.signal) });
            if (held !== size) return void lost.set(column, `fragment ${hash} is missing`);
          }
        } catch (err) {
          lost.set(column, describeError(err));
        }
      }),
    );
    if (lost.size === 0) return { fid, repaired: [] };
    const inUse = new Set(miners);
    const ranked = await deps.registry.restorers?.(fid, lost.size);
    const spares = (
      ranked === undefined ? [...peers.values()] : ranked.flatMap((id) => peers.get(id) ?? [])
    ).filter((p) => !inUse.has(p.peerId));
    if (spares.length < lost.size) {
      throw new AilinkError(
        'NOT_ENOUGH_MINERS',
        `expected ${lost.size} spare miners to take columns ${[...lost.keys()].join(', ')}, found ${spares.length}${ranked === undefined ? '' : ` reachable among the ${ranked.length} the chain ranks to restore ${fid}; repair again once more of them are reachable`}`,
      );
    }
    const targets = new Map([...lost.keys()].map((column, i) => [column, spares[i]!] as const));
    await deps.registry.reassign(fid, targets, () =>
      rebuildOnto(record, miners, peers, targets, repairOptions.signal),
    );
    const repaired = [...targets].map(([column, to]) => {
      repairOptions.onProgress?.({ kind: 'column-repaired', column, from: miners[column]!, to: to.peerId });
      return { column, from: miners[column]!, to: to.peerId, reason: lost.get(column)! };
    });
    return { fid, repaired };
  }

  async function declareAll(batch: DeclarationBatch, alongside: readonly ChainCall[] = []): Promise<void> {
    const pending = batch.pending.splice(0);
    const calls = [...batch.calls.splice(0), ...alongside];
    if (deps.registry.declareTogether !== undefined) {
      await deps.registry.declareTogether(pending, calls);
      return;
    }
    // Without `prepare` every put of the batch was declared at once: nothing is pending.
    if (calls.length > 0) {
      throw new AilinkError(
        'INVALID_INPUT',
        `expected a chain registry to submit ${calls.length} calls with the declarations; this registry keeps no chain`,
      );
    }
  }

  return { put, get, info, repair, declareAll };
}

/**
 * Cuts a byte source into segment-sized chunks, each in a buffer of its own (so it can move to a worker), and marks
 * the last one. Without `total` that needs one chunk of look-ahead (a whole segment held); with it, a chunk that
 * reaches `total` is the last. A source that runs past `total` then gives more chunks (the caller refuses them), and one
 * that ends short gives its rest as the last. An empty source gives one empty last chunk.
 * `buffer` gives the buffer of `size` bytes each chunk is filled in (a fresh one by default; the caller may hand one
 * back that it is done with). Bytes past a short last chunk's end are whatever the buffer held.
 */
export async function* chunks(
  source: Uint8Array | AsyncIterable<Uint8Array>,
  size: number,
  total?: number,
  buffer: () => Uint8Array = () => new Uint8Array(size),
): AsyncGenerator<{ bytes: Uint8Array; last: boolean }> {
  const input = source instanceof Uint8Array ? slowly(source) : source;
  let current = buffer();
  let filled = 0;
  let taken = 0;
  let full: Uint8Array | undefined;
  for await (const piece of input) {
    let off = 0;
    while (off < piece.byteLength) {
      if (full !== undefined) {
        yield { bytes: full, last: false };
        full = undefined;
      }
      const n = Math.min(size - filled, piece.byteLength - off);
      current.set(piece.subarray(off, off + n), filled);
      filled += n;
      off += n;
      taken += n;
      if (filled === size) {
        if (total === undefined) full = current;
        else yield { bytes: current, last: taken === total };
        current = buffer();
        filled = 0;
      }
    }
  }
  if (full !== undefined) {
    if (filled === 0) {
      yield { bytes: full, last: true };
      return;
    }
    yield { bytes: full, last: false };
  }
  // With a total, a source ending on a chunk boundary already had its last chunk (unless it was empty or short).
  if (total !== undefined && filled === 0 && taken > 0 && taken === total) return;
  yield { bytes: current.subarray(0, filled), last: true };
}

/** Hands out a large buffer in 1 MiB pieces, yielding to the event loop between them so copying never stalls it. */
async function* slowly(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  const piece = 1024 * 1024;
  for (let off = 0; off < bytes.byteLength; off += piece) {
    yield bytes.subarray(off, off + piece);
    if (off + piece < bytes.byteLength) await new Promise<void>((r) => setImmediate(r));
  }
}
