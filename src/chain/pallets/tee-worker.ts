import type { CallArgs } from '../calls.ts';
import type { StateReader, StateValue } from '../state.ts';
import { type Rule, reject } from './context.ts';
import { requirePeerProof } from './peer-key.ts';

/** A verifier (CESS's TEE worker role): holds the proof key, tags fragments and checks proofs. */
export interface VerifierInfo {
  [key: string]: StateValue;
  peerId: string;
  addrs: string[];
  podr2Key: string;
  registeredAt: number;
}

export const VERIFIERS_PREFIX = 'teeWorker/workers/';
export const verifierKey = (address: string) => `${VERIFIERS_PREFIX}${address}`;

/** The registered verifiers' accounts, in key (address) order: the list challenges draw their verifier from. */
export const registeredVerifiers = (state: StateReader): string[] =>
  state.scan(VERIFIERS_PREFIX).map(([key]) => key.slice(VERIFIERS_PREFIX.length));

/**
 * Only an account of the network's verifier set (`ProtocolConfig.verifiers`, fixed at genesis) may register: with
 * registration open to anyone, a miner registered a verifier of its own and signed its own passing audit results.
 * Every verifier registers the same PoDR2 key commitment — the first one fixes it — because the chain assigns each
 * challenge to a random verifier, which must be able to check tags that another verifier made (CESS's TEE workers
 * share one PoDR2 key likewise). The peer id is proven by its own key (`peerSignature`), as in `sminer.register`.
 */
const register: Rule<CallArgs<'teeWorker.register'>> = (state, ctx, args) => {
  if (!ctx.config.verifiers.includes(ctx.caller)) {
    reject(
      ctx.config.verifiers.length === 0
        ? `${ctx.caller} is not in the network's verifier set: the protocol configuration names no verifiers`
        : `${ctx.caller} is not in the network's verifier set (${ctx.config.verifiers.length} accounts named by the protocol configuration)`,
    );
  }
  if (state.get(verifierKey(ctx.caller)) !== undefined)
    reject(`verifier ${ctx.caller} is already registered`);
  requirePeerProof('teeWorker.register', ctx, args.peerId, args.peerSignature);
  const [first] = state.scan(VERIFIERS_PREFIX) as [string, VerifierInfo][];
  if (first !== undefined && first[1].podr2Key !== args.podr2Key) {
    reject(
      `the network's verifiers share one PoDR2 key, committed as ${first[1].podr2Key}; ${ctx.caller} registers ${args.podr2Key}`,
    );
  }
  state.put(verifierKey(ctx.caller), {
    peerId: args.peerId,
    addrs: args.addrs,
    podr2Key: args.podr2Key,
    registeredAt: ctx.block.number,
  } satisfies VerifierInfo);
};

const updateAddrs: Rule<CallArgs<'teeWorker.updateAddrs'>> = (state, ctx, args) => {
  const worker = state.get<VerifierInfo>(verifierKey(ctx.caller));
  if (worker === undefined) reject(`${ctx.caller} is not a registered verifier`);
  state.put(verifierKey(ctx.caller), { ...worker, addrs: args.addrs });
};

export const teeWorker = { register, updateAddrs };
