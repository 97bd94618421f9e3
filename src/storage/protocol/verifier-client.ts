import { setMaxListeners } from 'node:events';
import type { Host, PeerRef } from '../../p2p/index.ts';
import type { Account } from '../../shared/account.ts';
import { fromHex } from '../../shared/bytes.ts';
import type { Clock, Random } from '../../shared/clock.ts';
import { AilinkError, hasCode } from '../../shared/errors.ts';
import { bodyDigest, decodeReply, encodeJson, MAX_FRAME_BYTES } from './fragment-protocol.ts';
import { signRequest } from './request-auth.ts';
import { proofDigest, SignedReplySchema, TagReplySchema, VERIFIER_PROTOCOL } from './verifier-protocol.ts';

/** A miner's side of the verifier protocol. Every call has a deadline and answers with a coded error. */
export interface VerifierClient {
  /** Sends a fragment of a column the miner holds (or restores) and returns its tags. */
  tag(
    peer: PeerRef,
    column: { fid: string; index: number },
    name: string,
    bytes: Uint8Array,
  ): Promise<{ keyId: string; tags: Uint8Array }>;
  /** A signed tag report for a column whose fragments were all tagged. */
  certify(
    peer: PeerRef,
    column: { fid: string; index: number },
  ): Promise<{ verifier: string; signature: string }>;
  /** A signed passing result for the miner's open challenge. @throws PROOF_INVALID, PROOF_MALFORMED, NOT_FOUND */
  verify(
    peer: PeerRef,
    challenge: number,
    proof: Uint8Array,
  ): Promise<{ verifier: string; signature: string }>;
}

export function createVerifierClient(
  deps: { host: Host; account: Account; clock: Clock; random: Random },
  options: { requestTimeoutMs: number; signatureTtlMs: number },
): VerifierClient {
  async function call<T>(
    peer: PeerRef,
    request: { op: string; fragment: string; size: number } & Record<string, unknown>,
    body: Uint8Array | null,
    read: (frame: Uint8Array) => T,
  ): Promise<T> {
    const signal = AbortSignal.timeout(options.requestTimeoutMs);
    setMaxListeners(0, signal);
    const auth = signRequest(
      deps.account,
      { op: request.op, fragment: request.fragment, size: request.size, audience: peer.peerId },
      deps,
      options.signatureTtlMs,
    );
    let channel: Awaited<ReturnType<Host['open']>>;
    try {
      channel = await deps.host.open(peer, VERIFIER_PROTOCOL, { signal });
    } catch (err) {
      throw new AilinkError(
        'VERIFIER_UNAVAILABLE',
        `verifier ${peer.peerId} could not be dialled: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
    const { size, ...fields } = request;
    const frame = request.op === 'certify' ? fields : { ...fields, size };
    try {
      await channel.writeFrame(encodeJson({ ...frame, audience: peer.peerId, auth }), { signal });
      if (body !== null) await channel.write(body, { signal });
      await channel.closeWrite({ signal });
      return read(await channel.readFrame(MAX_FRAME_BYTES, { signal }));
    } catch (err) {
      channel.abort(
        err instanceof Error ? err : new AilinkError('ABORTED', `the exchange failed with ${String(err)}`),
      );
      if (hasCode(err)) throw err;
      throw new AilinkError(
        signal.aborted ? 'TIMEOUT' : 'VERIFIER_UNAVAILABLE',
        `verifier ${peer.peerId} failed ${request.op}: ${(err as Error).message}`,
        { cause: err },
      );
    }
  }
  const from = (peer: PeerRef) => `verifier ${peer.peerId}`;

  return {
    async tag(peer, column, name, bytes) {
      const reply = await call(
        peer,
        { op: 'tag', fid: column.fid, index: column.index, fragment: name, size: bytes.byteLength },
        bytes,
        (f) => decodeReply(f, TagReplySchema, from(peer)),
      );
      return { keyId: reply.keyId, tags: fromHex(reply.tags) };
    },
    async certify(peer, column) {
      const reply = await call(
        peer,
        {
          op: 'certify',
          fid: column.fid,
          index: column.index,
          fragment: bodyDigest(['certify', column.fid, column.index]),
          size: 0,
        },
        null,
        (f) => decodeReply(f, SignedReplySchema, from(peer)),
      );
      return { verifier: reply.verifier, signature: reply.signature };
    },
    async verify(peer, challenge, proof) {
      const reply = await call(
        peer,
        {
          op: 'verify',
          challenge,
          fragment: bodyDigest(['verify', challenge, proofDigest(proof)]),
          size: proof.byteLength,
        },
        proof,
        (f) => decodeReply(f, SignedReplySchema, from(peer)),
      );
      return { verifier: reply.verifier, signature: reply.signature };
    },
  };
}
