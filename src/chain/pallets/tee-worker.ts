import type { CallArgs } from '../calls.ts';
import type { StateValue } from '../state.ts';
import { type Rule, reject } from './context.ts';

/** A verifier (CESS's TEE worker role): holds the proof key, tags fragments and checks proofs. */
export interface VerifierInfo {
  [key: string]: StateValue;
  peerId: string;
  addrs: string[];
  podr2Key: string;
  registeredAt: number;
}

export const verifierKey = (address: string) => `teeWorker/workers/${address}`;

const register: Rule<CallArgs<'teeWorker.register'>> = (state, ctx, args) => {
  if (state.get(verifierKey(ctx.caller)) !== undefined)
    reject(`verifier ${ctx.caller} is already registered`);
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
