import type { CallArgs } from '../calls.ts';
import type { StateReader } from '../state.ts';
import { type Rule, reject } from './context.ts';

const authKey = (owner: string, operator: string) => `oss/auth/${owner}/${operator}`;
/** The same authorisation keyed by operator first: miners ask "whom does this account act for?" on every upload. */
const ownersPrefix = (operator: string) => `oss/owners/${operator}/`;

/** True when `owner` has authorised `operator` to declare and delete files for it. */
export const authorised = (state: StateReader, owner: string, operator: string): boolean =>
  state.get(authKey(owner, operator)) !== undefined;

/** Every account that has authorised `operator`. */
export const ownersOf = (state: StateReader, operator: string): string[] =>
  state.scan(ownersPrefix(operator)).map(([key]) => key.slice(ownersPrefix(operator).length));

const authorize: Rule<CallArgs<'oss.authorize'>> = (state, ctx, args) => {
  if (args.operator === ctx.caller) reject('an account needs no authorisation to act for itself');
  if (authorised(state, ctx.caller, args.operator))
    reject(`${args.operator} is already authorised by ${ctx.caller}`);
  state.put(authKey(ctx.caller, args.operator), ctx.block.number);
  state.put(`${ownersPrefix(args.operator)}${ctx.caller}`, ctx.block.number);
};

const cancelAuthorize: Rule<CallArgs<'oss.cancelAuthorize'>> = (state, ctx, args) => {
  if (!authorised(state, ctx.caller, args.operator))
    reject(`${args.operator} is not authorised by ${ctx.caller}`);
  state.delete(authKey(ctx.caller, args.operator));
  state.delete(`${ownersPrefix(args.operator)}${ctx.caller}`);
};

export const oss = { authorize, cancelAuthorize };
