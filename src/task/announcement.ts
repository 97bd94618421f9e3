import { createHash } from 'node:crypto';
import { z } from 'zod';
import { signMessage, verifyMessage } from '../aggregation/index.ts';
import { fromHex, toHex } from '../shared/bytes.ts';
import { canonicalJson } from '../shared/canonical.ts';
import { AilinkError } from '../shared/errors.ts';
import {
  AdvertSchema,
  account,
  hash,
  hexOf,
  hexUpTo,
  invalid,
  MAX_COHORT,
  nat,
  type Phase,
  roundNumber,
  STAGES,
  taskId,
} from './messages.ts';

/**
 * A stage announcement of the round protocol, cut so that no message grows with n² and none comes near the 1 MiB
 * frame limit at the 1,000-member cap.
 *
 * Three stages address most of their body to single members: each member needs only its neighbours' adverts
 * (shares), the shares sealed to it (masked), and its neighbours' confirmations (unmask): n·k entries in all. The
 * coordinator signs one **header** per announcement: its place (task, round, attempt, phase, deadline), the SHA-256 of
 * the part everyone gets (`shared`) and the Merkle root over the per-member parts (`parts`, leaves in account order).
 * - Gossip carries only the header (a few hundred bytes, the same for everyone): a member that sees a new one asks for
 *   its **view** over a direct stream. A phase without per-member parts (the cohort, the survivors, the outcome) is
 *   the same view for everyone, and gossip carries it whole.
 * - A view is the header, the shared body and the member's own part with its Merkle path: O(n) for the cohort and the
 *   survivor list, O(k·log n) for the rest.
 * One signature covers every member's view, so a coordinator that tells members different things signs different
 * headers for the same stage, and anyone holding two can show it.
 */

/** The body field that holds one entry per member, for the phases that have one; the rest of a body is shared. */
const PER_MEMBER = { shares: 'adverts', masked: 'inbox', unmask: 'signatures' } as const satisfies Partial<
  Record<Phase, string>
>;
type PerMemberPhase = keyof typeof PER_MEMBER;
const perMemberField = (phase: Phase): string | undefined => PER_MEMBER[phase as PerMemberPhase];

const modelRef = z.object({ fid: hash, hash }).strict();
/** A member's consistency signature as the unmask stage relays it: the survivor list it signed is the member's own. */
const Confirmation = z.object({ from: account, signature: hexOf(64) }).strict();
/** The bodies as a member reads them: a per-member field holds only the member's own entry. */
const BODY_SCHEMAS = {
  advertise: z
    .object({
      cohort: z
        .array(z.object({ account, identityKey: hash }).strict())
        .min(1)
        .max(MAX_COHORT),
      secagg: z.boolean(),
      graphSeed: hash,
      k: nat,
      t: nat,
      /** What the round's vector carries (layout.ts), and its length in 32-bit words. */
      kind: z.enum(['statistics', 'train', 'evaluation']),
      dimension: nat,
      /** The model the round starts from (training rounds train it, evaluation rounds score it). */
      model: modelRef,
      /** The federated preprocessing every organisation applies (a stored object), null when the task needs none. */
      preprocessing: z.object({ fid: hash, digest: hash }).strict().nullable(),
    })
    .strict(),
  shares: z.object({ adverts: z.record(account, z.array(AdvertSchema).max(MAX_COHORT)) }).strict(),
  masked: z
    .object({
      inbox: z.record(
        account,
        z.array(z.object({ from: account, ciphertext: hexUpTo(4096) }).strict()).max(MAX_COHORT),
      ),
    })
    .strict(),
  consistency: z.object({ survivors: z.array(account).max(MAX_COHORT) }).strict(),
  /** Each survivor's neighbours' confirmations of the survivor list (the list itself was the consistency stage's). */
  unmask: z.object({ signatures: z.record(account, z.array(Confirmation).max(MAX_COHORT)) }).strict(),
  done: z
    .object({
      model: modelRef,
      /** The anchored manifest; null for a statistics round, which anchors nothing (round 0's manifest names it). */
      manifest: z.object({ fid: hash, digest: hash }).strict().nullable(),
      /** The round's model's accuracy and loss, when anything measured them (coordinator test set). */
      accuracy: z.number().nullable(),
      loss: z.number().nullable(),
    })
    .strict(),
  aborted: z
    .object({
      reason: z.string().max(2000),
      /** The round used its last attempt: the task ends (its coordinator stops it on chain with this reason). */
      final: z.literal(true).optional(),
      /**
       * The cohort members that dropped out of the attempt: silent at a stage, or whose update never arrived whole.
       * They sit out the rest of the round. Absent from announcements from before the field.
       */
      dropouts: z.array(account).max(MAX_COHORT).optional(),
    })
    .strict(),
} as const satisfies Record<Phase, z.ZodType>;

export type AnnouncementBody<P extends Phase> = z.infer<(typeof BODY_SCHEMAS)[P]>;

/** What the coordinator signs for one stage: gossip carries exactly this. */
export interface AnnouncementHeader {
  readonly task: string;
  readonly round: number;
  readonly attempt: number;
  readonly phase: Phase;
  /** When the coordinator stops waiting for this stage's answers (ms since the epoch). */
  readonly deadline: number;
  /** SHA-256 of the shared body's canonical JSON. */
  readonly shared: string;
  /** Merkle root over the per-member parts, null for a phase without them. */
  readonly parts: string | null;
  /** How many per-member parts the root covers. */
  readonly count: number;
  readonly signature: string;
}

/** An announcement as the coordinator keeps it: the header and the whole body, in wire form (hex bytes). */
export interface WireAnnouncement extends AnnouncementHeader {
  readonly body: unknown;
}

/** One member's part of a body, with the path that ties it to the header's root. */
export interface AnnouncementPart {
  readonly to: string;
  readonly index: number;
  readonly value: unknown;
  readonly proof: readonly string[];
}

/** What a member fetches: the header, the shared body, and its own part (null when the body has none for it). */
export interface AnnouncementView extends AnnouncementHeader {
  readonly body: unknown;
  readonly part: AnnouncementPart | null;
}

/** A parsed, verified view: the body as a member reads it (per-member fields hold only its own entry). */
export type Announcement = {
  [P in Phase]: {
    readonly task: string;
    readonly round: number;
    readonly attempt: number;
    readonly phase: P;
    readonly deadline: number;
    readonly body: AnnouncementBody<P>;
  };
}[Phase];

/** Names one announcement: what a member holds, sent back with `view` so an unchanged reply carries nothing. */
export const announcementKey = (a: { round: number; attempt: number; phase: Phase }) =>
  `${a.round}/${a.attempt}/${a.phase}`;

const sha256 = (...chunks: (string | Uint8Array)[]) => {
  const h = createHash('sha256');
  for (const c of chunks) h.update(c);
  return h.digest();
};
const sharedDigest = (shared: unknown) =>
  sha256('ailink/round/announcement/shared/v1\n', canonicalJson(shared)).toString('hex');
const leafOf = (to: string, value: unknown) =>
  sha256('ailink/round/announcement/part/v1\n', to, '\n', canonicalJson(value));
const nodeOf = (left: Uint8Array, right: Uint8Array) => sha256(new Uint8Array([1]), left, right);

/** The levels of the tree, leaves first; an odd node at the end of a level is carried up as it is. */
function merkleLevels(leaves: Uint8Array[]): Uint8Array[][] {
  const levels = [leaves];
  while (levels.at(-1)!.length > 1) {
    const below = levels.at(-1)!;
    const above: Uint8Array[] = [];
    for (let i = 0; i < below.length; i += 2)
      above.push(i + 1 < below.length ? nodeOf(below[i]!, below[i + 1]!) : below[i]!);
    levels.push(above);
  }
  return levels;
}

const EMPTY_ROOT = sha256('ailink/round/announcement/no-parts/v1');

/** The root a leaf at `index` of `count` reaches through `proof`; null when the proof has the wrong length. */
function rootThrough(leaf: Uint8Array, index: number, count: number, proof: readonly Uint8Array[]) {
  let node = leaf;
  let at = index;
  let width = count;
  let used = 0;
  while (width > 1) {
    if (at % 2 === 1) node = nodeOf(proof[used++] ?? new Uint8Array(), node);
    else if (at + 1 < width) node = nodeOf(node, proof[used++] ?? new Uint8Array());
    at = Math.floor(at / 2);
    width = Math.ceil(width / 2);
  }
  return used === proof.length ? node : null;
}

/** Splits a body into what everyone gets and the per-member parts (in account order). */
function split(phase: Phase, body: unknown): { shared: unknown; parts: [string, unknown][] | null } {
  const field = perMemberField(phase);
  if (field === undefined) return { shared: body, parts: null };
  const { [field]: record, ...shared } = body as Record<string, unknown>;
  const parts = Object.entries((record ?? {}) as Record<string, unknown>).sort(([a], [b]) =>
    a < b ? -1 : a > b ? 1 : 0,
  );
  return { shared, parts };
}

const headerBytes = (h: Omit<AnnouncementHeader, 'signature'>) =>
  new TextEncoder().encode(
    `ailink/round/announcement/v2\n${canonicalJson({ task: h.task, round: h.round, attempt: h.attempt, phase: h.phase, deadline: h.deadline, shared: h.shared, parts: h.parts, count: h.count })}`,
  );

/** Signs a stage's whole body (already in wire form, see `toWire`): the coordinator stores the result. */
export function signAnnouncement(
  unsigned: {
    task: string;
    round: number;
    attempt: number;
    phase: Phase;
    deadline: number;
    body: unknown;
  },
  serverPrivateKey: Uint8Array,
): WireAnnouncement {
  const { shared, parts } = split(unsigned.phase, unsigned.body);
  const header = {
    task: unsigned.task,
    round: unsigned.round,
    attempt: unsigned.attempt,
    phase: unsigned.phase,
    deadline: unsigned.deadline,
    shared: sharedDigest(shared),
    parts:
      parts === null
        ? null
        : toHex(merkleLevels(parts.map(([to, v]) => leafOf(to, v))).at(-1)![0] ?? EMPTY_ROOT),
    count: parts?.length ?? 0,
  };
  return {
    ...header,
    signature: toHex(signMessage(serverPrivateKey, headerBytes(header))),
    body: unsigned.body,
  };
}

/** The header alone: what gossip carries of a phase with per-member parts. */
export function headerOf(a: WireAnnouncement): AnnouncementHeader {
  const { body: _body, ...header } = a;
  return header;
}

/**
 * What gossip carries: a phase without per-member parts goes whole (every member's view of it is the same, at most
 * ≈ 170 KB at the cohort cap), so nobody needs to ask for it; any other phase as its header alone.
 */
export function gossipOf(a: WireAnnouncement): AnnouncementHeader | AnnouncementView {
  return perMemberField(a.phase) === undefined ? { ...headerOf(a), body: a.body, part: null } : headerOf(a);
}

/**
 * Cuts views of one stored announcement. The tree is built once, so a coordinator keeps the returned function for as
 * long as the announcement is current.
 */
export function viewsOf(a: WireAnnouncement): (member: string) => AnnouncementView {
  const header = headerOf(a);
  const { shared, parts } = split(a.phase, a.body);
  if (parts === null) return () => ({ ...header, body: shared, part: null });
  const levels = merkleLevels(parts.map(([to, v]) => leafOf(to, v)));
  const index = new Map(parts.map(([to], i) => [to, i]));
  return (member) => {
    const i = index.get(member);
    if (i === undefined) return { ...header, body: shared, part: null };
    const proof: string[] = [];
    let at = i;
    for (const level of levels.slice(0, -1)) {
      const sibling = at % 2 === 1 ? level[at - 1] : level[at + 1];
      if (sibling !== undefined) proof.push(toHex(sibling));
      at = Math.floor(at / 2);
    }
    return { ...header, body: shared, part: { to: member, index: i, value: parts[i]![1], proof } };
  };
}

const HeaderSchema = z
  .object({
    task: taskId,
    round: roundNumber,
    attempt: nat,
    phase: z.enum([...STAGES, 'done', 'aborted']),
    deadline: nat,
    shared: hash,
    parts: hash.nullable(),
    count: nat.max(MAX_COHORT),
    signature: z.string().regex(/^[0-9a-f]{128}$/),
  })
  .strict();
const ViewSchema = HeaderSchema.extend({
  body: z.unknown(),
  part: z
    .object({
      to: account,
      index: nat.max(MAX_COHORT),
      value: z.unknown(),
      proof: z.array(hash).max(32),
    })
    .strict()
    .nullable(),
}).strict();

function verifiedHeader(h: z.infer<typeof HeaderSchema>, serverKey: Uint8Array): void {
  if (!verifyMessage(serverKey, headerBytes(h), fromHex(h.signature))) {
    throw new AilinkError(
      'ROUND_SIGNATURE_INVALID',
      `announcement of ${h.task} round ${h.round} ${h.phase} is not signed by the task's server key`,
    );
  }
  if ((h.parts !== null) !== (perMemberField(h.phase) !== undefined))
    throw new AilinkError(
      'ROUND_MESSAGE_INVALID',
      `a ${h.phase} announcement ${h.parts === null ? 'needs' : 'has no'} per-member parts, the header says otherwise`,
    );
}

/**
 * Checks a gossiped header: signed by the task's server key. It only says that a stage opened; its body is fetched.
 * @throws ROUND_MESSAGE_INVALID for anything malformed, ROUND_SIGNATURE_INVALID for a bad signature
 */
export function parseHeader(raw: unknown, serverKey: Uint8Array): AnnouncementHeader {
  const h = HeaderSchema.safeParse(raw);
  if (!h.success) throw invalid('announcement header', h.error);
  verifiedHeader(h.data, serverKey);
  return h.data;
}

/**
 * Checks `member`'s view: the header's signature, the shared body against its digest, the member's part against the
 * root, then the body against its phase's schema.
 * @throws ROUND_MESSAGE_INVALID for anything malformed or a part addressed to someone else, ROUND_SIGNATURE_INVALID
 *   for a bad signature or a body the signature does not cover
 */
export function parseAnnouncement(raw: unknown, serverKey: Uint8Array, member: string): Announcement {
  const parsed = ViewSchema.safeParse(raw);
  if (!parsed.success) throw invalid('announcement', parsed.error);
  const { body, part, ...header } = parsed.data;
  verifiedHeader(header, serverKey);
  const where = `${header.phase} announcement of ${header.task} round ${header.round}`;
  const uncovered = (what: string) =>
    new AilinkError(
      'ROUND_SIGNATURE_INVALID',
      `the ${what} of the ${where} is not what its signed header covers`,
    );
  if (sharedDigest(body) !== header.shared) throw uncovered('shared body');
  const field = perMemberField(header.phase);
  let whole = body;
  if (field !== undefined) {
    if (body === null || typeof body !== 'object' || Array.isArray(body) || field in body)
      throw new AilinkError(
        'ROUND_MESSAGE_INVALID',
        `the ${where} carries its ${field} outside the member's part`,
      );
    if (part !== null) {
      if (part.to !== member)
        throw new AilinkError(
          'ROUND_MESSAGE_INVALID',
          `${member} was sent the part of ${part.to} of the ${where}`,
        );
      const root = rootThrough(
        leafOf(part.to, part.value),
        part.index,
        header.count,
        part.proof.map((p) => fromHex(p)),
      );
      if (part.index >= header.count || root === null || toHex(root) !== header.parts)
        throw uncovered('part');
    }
    whole = { ...body, [field]: part === null ? {} : { [member]: part.value } };
  } else if (part !== null) {
    throw new AilinkError('ROUND_MESSAGE_INVALID', `the ${where} has no per-member parts, yet one was sent`);
  }
  const checked = BODY_SCHEMAS[header.phase].safeParse(whole);
  if (!checked.success) throw invalid(`${header.phase} announcement body`, checked.error);
  const { task, round, attempt, phase, deadline } = header;
  return { task, round, attempt, phase, deadline, body: checked.data } as Announcement;
}
