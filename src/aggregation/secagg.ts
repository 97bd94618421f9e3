import { createCipheriv, createDecipheriv, createHash } from 'node:crypto';
import { AggregationError, type RandomBytes } from './errors.ts';
import { neighbourGraph } from './graph.ts';
import { agreementKeyPair, type RawKeyPair, sharedSecret, signMessage, verifyMessage } from './keys.ts';
import { applyMask } from './prg.ts';
import { addInto } from './quantize.ts';
import { combineShares, splitSecret } from './shares.ts';

/**
 * SecAgg+ (Bell et al. 2020, on Bonawitz et al. 2017) as two pure state machines. The client and the server take
 * messages and return messages; moving them and enforcing deadlines is the caller's job, so "a client dropped out"
 * is simply a message that never arrived. Every message is signed with the sender's identity key over
 * (stage, context, sender, body digest), so replayed, re-addressed, forged or malformed messages are refused.
 *
 * Stages: advertise keys → share keys → masked input → consistency check → unmask. The unmasked sum equals the sum of
 * the survivors' inputs in Z_2^32, bit for bit.
 */

export interface SecAggParams {
  /** Binds every key, share and signature to one task and round. */
  readonly context: string;
  /** The cohort: client ids, each with its Ed25519 identity key. */
  readonly identities: ReadonlyMap<string, Uint8Array>;
  /** Neighbours per client (even, < n) and the share threshold (k/2 < t ≤ k). */
  readonly k: number;
  readonly t: number;
  /** Public randomness (e.g. a block hash) that fixes the neighbour graph. */
  readonly graphSeed: Uint8Array;
  /** The server's Ed25519 key: its abort reasons are signed with it, so anyone can check why a round ended. */
  readonly serverKey?: Uint8Array;
  /** Length of the input vectors, in Z_2^32 words. */
  readonly dimension: number;
}

export interface Signed<T> {
  readonly stage: Stage;
  readonly context: string;
  readonly from: string;
  readonly body: T;
  readonly signature: Uint8Array;
}

export type Stage = 'advertise' | 'shares' | 'masked' | 'consistency' | 'unmask' | 'abort';

export interface AdvertiseBody {
  readonly cPk: Uint8Array;
  readonly sPk: Uint8Array;
}
export interface SharesBody {
  readonly sealed: readonly { readonly to: string; readonly ciphertext: Uint8Array }[];
}
export interface MaskedBody {
  readonly masked: Uint32Array;
}
export interface ConsistencyBody {
  readonly survivors: readonly string[];
}
export interface AbortBody {
  readonly reason: string;
  readonly client: string | null;
}
export interface UnmaskBody {
  readonly revealed: readonly {
    readonly of: string;
    readonly kind: 'self' | 'secret';
    readonly share: Uint8Array;
  }[];
}

/** Checks the parameters once, for both sides. */
export function checkSecAggParams(params: SecAggParams): Map<string, string[]> {
  const n = params.identities.size;
  if (!(Number.isInteger(params.t) && params.t > params.k / 2 && params.t <= params.k)) {
    throw new AggregationError(
      'SECAGG_INVALID_PARAMETERS',
      `expected k/2 < t ≤ k, got k = ${params.k}, t = ${params.t} (t ≤ k/2 would let two disjoint halves of a neighbourhood both pass)`,
    );
  }
  if (!Number.isSafeInteger(params.dimension) || params.dimension < 1) {
    throw new AggregationError(
      'SECAGG_INVALID_PARAMETERS',
      `expected a positive dimension, got ${params.dimension}`,
    );
  }
  if (n < 3) throw new AggregationError('SECAGG_INVALID_PARAMETERS', `expected at least 3 clients, got ${n}`);
  return neighbourGraph([...params.identities.keys()], params.k, params.graphSeed);
}

// --- signing -----------------------------------------------------------------------------------------------------

function digestOf(stage: Stage, context: string, from: string, body: unknown): Uint8Array {
  const h = createHash('sha256').update(`ailink/secagg/v1\n${stage}\n${context}\n${from}\n`);
  feed(h, body);
  return new Uint8Array(h.digest());
}

/** A canonical, unambiguous walk over message bodies (typed arrays, strings, numbers, arrays, plain objects). */
function feed(h: ReturnType<typeof createHash>, value: unknown): void {
  if (value instanceof Uint8Array || value instanceof Uint32Array) {
    const bytes = new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
    h.update(`b${value instanceof Uint32Array ? 'w' : 'y'}${bytes.byteLength}:`).update(bytes);
  } else if (typeof value === 'string') {
    h.update(`s${Buffer.byteLength(value)}:${value}`);
  } else if (typeof value === 'number') {
    h.update(`n${value};`);
  } else if (Array.isArray(value)) {
    h.update(`a${value.length}[`);
    for (const v of value) feed(h, v);
    h.update(']');
  } else if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value).sort();
    h.update(`o${keys.length}{`);
    for (const key of keys) {
      h.update(`s${key.length}:${key}`);
      feed(h, (value as Record<string, unknown>)[key]);
    }
    h.update('}');
  } else {
    throw new AggregationError('SECAGG_BAD_MESSAGE', `cannot sign a value of type ${typeof value}`);
  }
}

/** Signs a protocol message (the state machines use it; so may a transport that relays or a test that forges). */
export function signed<T>(
  stage: Stage,
  context: string,
  from: string,
  identity: Uint8Array,
  body: T,
): Signed<T> {
  return {
    stage,
    context,
    from,
    body,
    signature: signMessage(identity, digestOf(stage, context, from, body)),
  };
}

/**
 * Whether `signature` is `from`'s consistency-stage signature, in `context`, on exactly `survivors` (sorted, as the
 * client signs them): what an auditor checks of the survivor list a round's manifest reports.
 */
export function verifyConsistency(
  publicKey: Uint8Array,
  context: string,
  from: string,
  survivors: readonly string[],
  signature: Uint8Array,
): boolean {
  try {
    return verifyMessage(publicKey, digestOf('consistency', context, from, { survivors }), signature);
  } catch {
    return false;
  }
}

/**
 * Checks one message on arrival, before the server collects it (a transport uses it so a forged message never takes
 * the place of the real one).
 * @throws SECAGG_BAD_MESSAGE unless the message is of `stage`, for this context, from a known sender, validly signed.
 */
export function verified<T>(params: SecAggParams, stage: Stage, message: Signed<T>): Signed<T> {
  const key = params.identities.get(message.from);
  if (message.stage !== stage || message.context !== params.context || key === undefined) {
    throw new AggregationError(
      'SECAGG_BAD_MESSAGE',
      `expected a ${stage} message of ${params.context} from a cohort member, got ${message.stage} of ${message.context} from ${message.from}`,
      { from: message.from },
    );
  }
  let ok = false;
  try {
    ok = verifyMessage(key, digestOf(stage, params.context, message.from, message.body), message.signature);
  } catch {
    ok = false;
  }
  if (!ok) {
    throw new AggregationError(
      'SECAGG_BAD_MESSAGE',
      `the ${stage} message from ${message.from} is not validly signed`,
      {
        from: message.from,
      },
    );
  }
  // A cohort member can sign nonsense: the body's shape is checked too, so that it fails here with a code and not
  // later with a TypeError halfway through a stage.
  if (!wellFormed(stage, message.body)) {
    throw new AggregationError(
      'SECAGG_BAD_MESSAGE',
      `the ${stage} message from ${message.from} is malformed`,
      {
        from: message.from,
      },
    );
  }
  return message;
}

const isBytes = (v: unknown, length?: number): v is Uint8Array =>
  v instanceof Uint8Array && (length === undefined || v.byteLength === length);
const isArrayOf = (v: unknown, item: (x: Record<string, unknown>) => boolean): boolean =>
  Array.isArray(v) &&
  v.every((x) => x !== null && typeof x === 'object' && item(x as Record<string, unknown>));

function wellFormed(stage: Stage, body: unknown): boolean {
  if (body === null || typeof body !== 'object') return false;
  const b = body as Record<string, unknown>;
  switch (stage) {
    case 'advertise':
      return isBytes(b.cPk, 32) && isBytes(b.sPk, 32);
    case 'shares':
      return isArrayOf(b.sealed, (x) => typeof x.to === 'string' && isBytes(x.ciphertext));
    case 'masked':
      return b.masked instanceof Uint32Array;
    case 'consistency':
      return Array.isArray(b.survivors) && b.survivors.every((x) => typeof x === 'string');
    case 'unmask':
      return isArrayOf(
        b.revealed,
        (x) => typeof x.of === 'string' && (x.kind === 'self' || x.kind === 'secret') && isBytes(x.share),
      );
    case 'abort':
      return typeof b.reason === 'string';
  }
}

// --- share sealing ------------------------------------------------------------------------------------------------

/**
 * The key for the shares `from` sends `to`. The X25519 agreement is the same both ways, so the direction goes into
 * the HKDF info: A→B and B→A must never seal under one key, since both use the zero nonce (GCM with a reused key and
 * nonce leaks the XOR of the plaintexts, and its authentication key).
 */
export function shareKey(
  own: { privateKey: Uint8Array; publicKey: Uint8Array },
  peerPublic: Uint8Array,
  context: string,
  from: string,
  to: string,
): Uint8Array {
  return sharedSecret(own.privateKey, own.publicKey, peerPublic, `${context}/shares/${from}->${to}`);
}

function sealShares(
  key: Uint8Array,
  from: string,
  to: string,
  context: string,
  plaintext: Uint8Array,
): Uint8Array {
  // The key is derived for this direction of this pair and round, and used once: a zero nonce is safe. The AAD
  // names both ends, so a share forwarded to another client does not open.
  const cipher = createCipheriv('aes-256-gcm', key, Buffer.alloc(12));
  cipher.setAAD(Buffer.from(`${context}\n${from}\n${to}`));
  return new Uint8Array(Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]));
}

function openShares(
  key: Uint8Array,
  from: string,
  to: string,
  context: string,
  sealed: Uint8Array,
): Uint8Array {
  if (sealed.byteLength < 16)
    throw new AggregationError(
      'SECAGG_BAD_MESSAGE',
      `the shares from ${from} to ${to} do not open: expected at least the 16-byte tag, got ${sealed.byteLength} bytes`,
      { from },
    );
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.alloc(12), { authTagLength: 16 });
    decipher.setAAD(Buffer.from(`${context}\n${from}\n${to}`));
    decipher.setAuthTag(sealed.subarray(sealed.byteLength - 16));
    return new Uint8Array(
      Buffer.concat([decipher.update(sealed.subarray(0, sealed.byteLength - 16)), decipher.final()]),
    );
  } catch {
    throw new AggregationError('SECAGG_BAD_MESSAGE', `the shares from ${from} to ${to} do not open`, {
      from,
    });
  }
}

const SECRET_BYTES = 32;

/** Mask of the pair (a, b) as a's contribution: + when a sorts before b, − otherwise; the two cancel. */
function applyPairMask(
  target: Uint32Array,
  seed: Uint8Array,
  own: string,
  other: string,
  sign: 1 | -1,
): void {
  applyMask(target, seed, own < other ? sign : (-sign as 1 | -1));
}

function abort(reason: string, details?: Record<string, unknown>): never {
  throw new AggregationError('SECAGG_ABORTED', reason, details);
}

// --- client -------------------------------------------------------------------------------------------------------

export interface SecAggClient {
  advertise(): Signed<AdvertiseBody>;
  shareKeys(neighbourAdverts: readonly Signed<AdvertiseBody>[]): Promise<Signed<SharesBody>>;
  /**
   * Masks `input` (the quantized update) with the self mask and a pair mask per neighbour it got shares from.
   * `inPlace`: mask `input` itself rather than a copy, for a caller that no longer needs it (a copy of a 100M-parameter
   * update is 400 MB).
   */
  maskedInput(
    incoming: readonly { from: string; ciphertext: Uint8Array }[],
    input: Uint32Array,
    options?: { readonly inPlace?: boolean },
  ): Signed<MaskedBody>;
  consistency(survivors: readonly string[]): Signed<ConsistencyBody>;
  unmask(signatures: readonly Signed<ConsistencyBody>[]): Signed<UnmaskBody>;
}

/**
 * One client's side. Calls must come in stage order; each stage runs once.
 * @throws SECAGG_BAD_MESSAGE for a bad message from a peer, SECAGG_ABORTED when continuing would be unsafe.
 */
export function createSecAggClient(
  id: string,
  deps: { identityKey: Uint8Array; random: RandomBytes },
  params: SecAggParams,
): SecAggClient {
  const graph = checkSecAggParams(params);
  const neighbours = new Set(graph.get(id) ?? abort(`${id} is not in the cohort`));
  let stage: Stage | 'start' = 'start';
  const step = (from: Stage | 'start', to: Stage) => {
    if (stage !== from)
      throw new AggregationError('SECAGG_BAD_MESSAGE', `${id}: ${to} called during ${stage}`);
    stage = to;
  };
  let c: RawKeyPair;
  let s: RawKeyPair;
  const adverts = new Map<string, AdvertiseBody>();
  let selfSeed: Uint8Array;
  const received = new Map<string, { secretShare: Uint8Array; selfShare: Uint8Array }>();
  let survivors: string[] = [];

  return {
    advertise() {
      step('start', 'advertise');
      c = agreementKeyPair(deps.random);
      s = agreementKeyPair(deps.random);
      return signed('advertise', params.context, id, deps.identityKey, {
        cPk: c.publicKey,
        sPk: s.publicKey,
      });
    },

    async shareKeys(neighbourAdverts) {
      step('advertise', 'shares');
      for (const m of neighbourAdverts) {
        verified(params, 'advertise', m);
        if (!neighbours.has(m.from)) abort(`${id} was sent the keys of ${m.from}, who is not its neighbour`);
        if (adverts.has(m.from)) abort(`${id} was sent the keys of ${m.from} twice`);
        adverts.set(m.from, m.body);
      }
      if (adverts.size < params.t) {
        abort(`${id} has ${adverts.size} live neighbours, below the threshold ${params.t}`);
      }
      selfSeed = deps.random(SECRET_BYTES);
      const holders = [...adverts.keys()].sort();
      const shareContext = (kind: string) => `${params.context}/${id}/${kind}`;
      const secretShares = await splitSecret(s.privateKey, holders.length, params.t, shareContext('secret'));
      const selfShares = await splitSecret(selfSeed, holders.length, params.t, shareContext('self'));
      const sealed = holders.map((to, i) => {
        const key = shareKey(c, adverts.get(to)!.cPk, params.context, id, to);
        const a = secretShares[i]!;
        const b = selfShares[i]!;
        const plaintext = new Uint8Array(2 + a.byteLength + b.byteLength);
        plaintext[0] = a.byteLength;
        plaintext.set(a, 1);
        plaintext[1 + a.byteLength] = b.byteLength;
        plaintext.set(b, 2 + a.byteLength);
        return { to, ciphertext: sealShares(key, id, to, params.context, plaintext) };
      });
      return signed('shares', params.context, id, deps.identityKey, { sealed });
    },

    maskedInput(incoming, input, options = {}) {
      step('shares', 'masked');
      if (input.length !== params.dimension) {
        throw new AggregationError(
          'AGG_INVALID_INPUT',
          `expected ${params.dimension} words, got ${input.length}`,
        );
      }
      for (const { from, ciphertext } of incoming) {
        const advert = adverts.get(from);
        if (advert === undefined) abort(`${id} got shares from ${from}, whose keys it never saw`);
        if (received.has(from)) abort(`${id} got shares from ${from} twice`);
        const key = shareKey(c, advert.cPk, params.context, from, id);
        const plain = openShares(key, from, id, params.context, ciphertext);
        const aLen = plain[0] ?? 0;
        const bLen = plain[1 + aLen] ?? 0;
        if (plain.byteLength !== 2 + aLen + bLen) {
          throw new AggregationError('SECAGG_BAD_MESSAGE', `the shares from ${from} are malformed`, { from });
        }
        received.set(from, { secretShare: plain.slice(1, 1 + aLen), selfShare: plain.slice(2 + aLen) });
      }
      if (received.size < params.t) {
        abort(`${id} got shares from ${received.size} neighbours, below the threshold ${params.t}`);
      }
      const masked = options.inPlace === true ? input : input.slice();
      applyMask(masked, selfSeed, 1);
      for (const other of received.keys()) {
        const seed = sharedSecret(
          s.privateKey,
          s.publicKey,
          adverts.get(other)!.sPk,
          `${params.context}/mask`,
        );
        applyPairMask(masked, seed, id, other, 1);
      }
      return signed('masked', params.context, id, deps.identityKey, { masked });
    },

    consistency(list) {
      step('masked', 'consistency');
      survivors = [...new Set(list)].sort();
      if (survivors.length !== list.length) abort(`${id} was sent a survivor list with repeated ids`);
      if (!survivors.includes(id)) abort(`${id} sent its masked input but is not among the survivors`);
      const live = survivors.filter((x) => received.has(x)).length;
      if (live < params.t) abort(`${id} has ${live} surviving neighbours, below the threshold ${params.t}`);
      return signed('consistency', params.context, id, deps.identityKey, { survivors });
    },

    unmask(signatures) {
      step('consistency', 'unmask');
      // Every signer must have seen exactly our survivor list: a server showing different lists to different clients
      // is caught here, before any share is revealed.
      const signers = new Set<string>();
      for (const m of signatures) {
        // A relay may leave the list out and pass this client's own: a signature on another list then fails here.
        try {
          verified(params, 'consistency', m);
        } catch {
          abort(
            `${m.from}'s confirmation does not verify on the survivor list ${id} was shown: the server equivocates or forged it`,
            { from: m.from },
          );
        }
        if (!sameList(m.body.survivors, survivors)) {
          abort(`${m.from} signed a different survivor list than ${id} was shown: the server equivocates`, {
            from: m.from,
          });
        }
        if (neighbours.has(m.from) || m.from === id) signers.add(m.from);
      }
      const neighbourSigners = [...signers].filter((x) => x !== id).length;
      if (neighbourSigners < params.t - 1) {
        abort(`${id} saw ${neighbourSigners} neighbours confirm the survivors, needs ${params.t - 1}`);
      }
      const inSurvivors = new Set(survivors);
      // For each neighbour: its self-mask share if it survived, its mask secret if it dropped — never both.
      const revealed = [...received.entries()].map(([of, shares]) =>
        inSurvivors.has(of)
          ? { of, kind: 'self' as const, share: shares.selfShare }
          : { of, kind: 'secret' as const, share: shares.secretShare },
      );
      return signed('unmask', params.context, id, deps.identityKey, { revealed });
    },
  };
}

/** The sender name of the server's own messages. */
export const SERVER = 'server';

/** True when `message` is an abort of this round validly signed by the server key in `params`. */
export function verifyAbort(params: SecAggParams, message: Signed<AbortBody>): boolean {
  if (params.serverKey === undefined || message.stage !== 'abort' || message.context !== params.context)
    return false;
  if (message.from !== SERVER) return false;
  return verifyMessage(
    params.serverKey,
    digestOf('abort', params.context, SERVER, message.body),
    message.signature,
  );
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

// --- server -------------------------------------------------------------------------------------------------------

export interface SecAggServer {
  /** Who the next `collect…` call waits for: the caller's deadline decides when to stop waiting for the rest. */
  expecting(): string[];
  /** A client's neighbours in the attempt's graph (empty for an id outside it). */
  neighbours(id: string): readonly string[];
  /** Verifies the adverts and returns, per client, the adverts of its live neighbours. */
  collectAdverts(messages: readonly Signed<AdvertiseBody>[]): Map<string, Signed<AdvertiseBody>[]>;
  /** Verifies the shares and returns, per client, the sealed shares addressed to it. */
  collectShares(
    messages: readonly Signed<SharesBody>[],
  ): Map<string, { from: string; ciphertext: Uint8Array }[]>;
  /**
   * Verifies one masked input and adds it into the running sum at once, so the server holds O(d) words however many
   * arrive (a refused one goes to `rejected`). Returns whether it was added.
   */
  addMasked(message: Signed<MaskedBody>): boolean;
  /** Ends the masked stage: those added are the survivors, returned as the list every client must confirm. */
  closeMasked(): string[];
  /** `addMasked` for each, then `closeMasked`. */
  collectMasked(messages: readonly Signed<MaskedBody>[]): string[];
  /** Verifies the confirmations; returns them, to be sent to every survivor with the unmask request. */
  collectConsistency(messages: readonly Signed<ConsistencyBody>[]): Signed<ConsistencyBody>[];
  /**
   * Rebuilds the masks from the revealed shares and returns Σ input over the survivors: the server's own running sum,
   * unmasked in place and handed over (once; a second call is refused).
   */
  unmask(messages: readonly Signed<UnmaskBody>[]): Promise<{ sum: Uint32Array; survivors: string[] }>;
}

/**
 * The server's side. A message that fails verification is dropped and its sender treated as a dropout (its error is
 * kept in `rejected`); the protocol aborts only when a neighbourhood falls below the threshold.
 */
export function createSecAggServer(
  params: SecAggParams,
  deps: { identityKey?: Uint8Array } = {},
): SecAggServer & { readonly rejected: AggregationError[] } {
  const graph = checkSecAggParams(params);
  const rejected: AggregationError[] = [];
  const adverts = new Map<string, Signed<AdvertiseBody>>();
  const sharesFrom = new Set<string>();
  /** The running sum of the masked inputs; null once `unmask` has handed it over. */
  let sum: Uint32Array | null = new Uint32Array(params.dimension);
  const maskedFrom = new Set<string>();
  let maskedClosed = false;
  let survivors: string[] = [];

  const accept = <T>(stage: Stage, messages: readonly Signed<T>[], allowed: (id: string) => boolean) => {
    const kept = new Map<string, Signed<T>>();
    for (const m of messages) {
      try {
        verified(params, stage, m);
        if (!allowed(m.from)) abort(`${m.from} is not expected at ${stage}`);
        if (kept.has(m.from))
          throw new AggregationError('SECAGG_BAD_MESSAGE', `${m.from} sent ${stage} twice`);
        kept.set(m.from, m);
      } catch (err) {
        if (err instanceof AggregationError) rejected.push(err);
        else throw err;
      }
    }
    return kept;
  };

  /** Ends the round: a typed error carrying the reason signed by the server (when it has a key). */
  const end = (reason: string, client: string | null): never => {
    const body: AbortBody = { reason, client };
    const signedReason = deps.identityKey
      ? signed('abort', params.context, SERVER, deps.identityKey, body)
      : undefined;
    throw new AggregationError('SECAGG_ABORTED', reason, { client, signedReason });
  };

  const requireNeighbourhoods = (live: ReadonlySet<string>, stage: string) => {
    for (const id of live) {
      const count = graph.get(id)!.filter((x) => live.has(x)).length;
      if (count < params.t) {
        end(`after ${stage}, ${id} has ${count} live neighbours, below the threshold ${params.t}`, id);
      }
    }
  };

  let expected: string[] = [...graph.keys()].sort();

  return {
    rejected,
    expecting: () => [...expected],
    neighbours: (id) => graph.get(id) ?? [],
    collectAdverts(messages) {
      for (const [id, m] of accept('advertise', messages, () => true)) adverts.set(id, m);
      requireNeighbourhoods(new Set(adverts.keys()), 'advertise');
      expected = [...adverts.keys()].sort();
      return new Map(
        [...adverts.keys()].map((id) => [
          id,
          graph
            .get(id)!
            .filter((x) => adverts.has(x))
            .map((x) => adverts.get(x)!),
        ]),
      );
    },

    collectShares(messages) {
      const kept = accept('shares', messages, (id) => adverts.has(id));
      const routed = new Map<string, { from: string; ciphertext: Uint8Array }[]>();
      for (const [from, m] of kept) {
        sharesFrom.add(from);
        for (const { to, ciphertext } of m.body.sealed) {
          if (!graph.get(from)!.includes(to)) continue; // a share for a non-neighbour goes nowhere
          routed.set(to, [...(routed.get(to) ?? []), { from, ciphertext }]);
        }
      }
      requireNeighbourhoods(sharesFrom, 'share keys');
      expected = [...sharesFrom].sort();
      return routed;
    },

    addMasked(m) {
      try {
        if (maskedClosed || sum === null)
          throw new AggregationError(
            'SECAGG_BAD_MESSAGE',
            `${m.from} sent its masked input after the stage closed`,
          );
        verified(params, 'masked', m);
        if (!sharesFrom.has(m.from)) abort(`${m.from} is not expected at masked`);
        if (maskedFrom.has(m.from))
          throw new AggregationError('SECAGG_BAD_MESSAGE', `${m.from} sent masked twice`);
        if (m.body.masked.length !== params.dimension)
          throw new AggregationError('SECAGG_BAD_MESSAGE', `${m.from} sent ${m.body.masked.length} words`);
      } catch (err) {
        if (err instanceof AggregationError) {
          rejected.push(err);
          return false;
        }
        throw err;
      }
      maskedFrom.add(m.from);
      addInto(sum!, m.body.masked);
      return true;
    },

    closeMasked() {
      maskedClosed = true;
      survivors = [...maskedFrom].sort();
      requireNeighbourhoods(new Set(survivors), 'masked input');
      expected = [...survivors];
      return [...survivors];
    },

    collectMasked(messages) {
      for (const m of messages) this.addMasked(m);
      return this.closeMasked();
    },

    collectConsistency(messages) {
      const kept = accept('consistency', messages, (id) => survivors.includes(id));
      const confirmed = [...kept.values()].filter((m) => sameList(m.body.survivors, survivors));
      expected = confirmed.map((m) => m.from).sort();
      return confirmed;
    },

    async unmask(messages) {
      const kept = accept('unmask', messages, (id) => survivors.includes(id));
      const selfShares = new Map<string, Uint8Array[]>();
      const secretShares = new Map<string, Uint8Array[]>();
      const live = new Set(survivors);
      for (const [from, m] of kept) {
        for (const r of m.body.revealed) {
          if (!graph.get(from)!.includes(r.of)) continue;
          // A reveal must match what the survivor list implies; anything else is a confused or malicious client.
          if ((r.kind === 'self') !== live.has(r.of)) continue;
          const into = r.kind === 'self' ? selfShares : secretShares;
          into.set(r.of, [...(into.get(r.of) ?? []), r.share]);
        }
      }
      if (sum === null)
        throw new AggregationError('SECAGG_BAD_MESSAGE', 'the sum was already unmasked (unmask runs once)');
      // Every secret is recovered before the sum is touched: a failure leaves it as it was, and success unmasks it in
      // place and hands it over (a copy would be one more vector of the model's size: 400 MB at 100M weights).
      const selfSeeds: Uint8Array[] = [];
      for (const id of survivors)
        selfSeeds.push(
          await combineShares(selfShares.get(id) ?? [], `${params.context}/${id}/self`).catch(() =>
            end(`too few valid self-mask shares of ${id} to unmask the sum`, id),
          ),
        );
      const pairs: { seed: Uint8Array; other: string; dropped: string }[] = [];
      for (const dropped of [...sharesFrom].filter((x) => !live.has(x))) {
        const secret = await combineShares(
          secretShares.get(dropped) ?? [],
          `${params.context}/${dropped}/secret`,
        ).catch(() => end(`too few valid mask-secret shares of ${dropped}, who dropped out`, dropped));
        const droppedPk = adverts.get(dropped)!.body.sPk;
        for (const other of graph.get(dropped)!.filter((x) => live.has(x)))
          pairs.push({
            // `other` added its pair mask with `dropped`; take it out again (same seed, opposite sign).
            seed: sharedSecret(secret, droppedPk, adverts.get(other)!.body.sPk, `${params.context}/mask`),
            other,
            dropped,
          });
      }
      const result = sum;
      sum = null;
      for (const seed of selfSeeds) applyMask(result, seed, -1);
      for (const { seed, other, dropped } of pairs) applyPairMask(result, seed, other, dropped, -1);
      return { sum: result, survivors: [...survivors] };
    },
  };
}
