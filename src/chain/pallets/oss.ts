import type { CallArgs } from '../calls.ts';
import type { StateReader } from '../state.ts';
import { type Rule, reject } from './context.ts';

const authKey = (owner: string, operator: string) => `oss/auth/${owner}/${operator}`;

/** True when `owner` has authorised `operator` to declare and delete files for it. */
export const authorised = (state: StateReader, owner: string, operator: string): boolean =>
  state.get(authKey(owner, operator)) !== undefined;

const authorize: Rule<CallArgs<'oss.authorize'>> = (state, ctx, args) => {
  if (args.operator === ctx.caller) reject('an account needs no authorisation to act for itself');
  if (authorised(state, ctx.caller, args.operator))
    reject(`${args.operator} is already authorised by ${ctx.caller}`);
  state.put(authKey(ctx.caller, args.operator), ctx.block.number);
};

const cancelAuthorize: Rule<CallArgs<'oss.cancelAuthorize'>> = (state, ctx, args) => {
  if (!authorised(state, ctx.caller, args.operator))
    reject(`${args.operator} is not authorised by ${ctx.caller}`);
  state.delete(authKey(ctx.caller, args.operator));
};

export const oss = { authorize, cancelAuthorize };
