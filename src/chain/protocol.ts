import type { CallName, ProtocolCall } from './calls.ts';
import { audit, auditOnBlock } from './pallets/audit.ts';
import type { BlockContext, CallContext, Payment, Rule } from './pallets/context.ts';
import { CallRejected } from './pallets/context.ts';
import { fileBank, getFile } from './pallets/file-bank.ts';
import { market, marketOnBlock, marketOnDelete } from './pallets/market.ts';
import { oss } from './pallets/oss.ts';
import { placement, placementOnBlock } from './pallets/placement.ts';
import { flagPayment, openDebt, paidToPotDirectly, pot } from './pallets/pot.ts';
import { provenance } from './pallets/provenance.ts';
import { sminer } from './pallets/sminer.ts';
import { storageHandler } from './pallets/storage-handler.ts';
import { teeWorker } from './pallets/tee-worker.ts';
import { decodeRemark } from './remark.ts';
import { Overlay, type StateReader, type StateWrite } from './state.ts';

const RULES: { [N in CallName]: Rule<Extract<ProtocolCall, { name: N }>['args']> } = {
  'sminer.register': sminer.register,
  'sminer.updateAddrs': sminer.updateAddrs,
  'sminer.exit': sminer.exit,
  'oss.authorize': oss.authorize,
  'oss.cancelAuthorize': oss.cancelAuthorize,
  'storageHandler.buySpace': storageHandler.buySpace,
  // A declaration that replaced an incomplete one of the same fid also clears that one's market state.
  'fileBank.uploadDeclaration': (state, ctx, args) => {
    const replaced = getFile(state, args.fid) !== undefined;
    fileBank.uploadDeclaration(state, ctx, args);
    if (replaced) marketOnDelete(state, ctx, args.fid);
  },
  // A completed upload that replaced the object under its key takes that object's market state with it.
  'fileBank.transferReport': (state, ctx, args) => {
    const replaced = fileBank.transferReport(state, ctx, args);
    if (replaced !== undefined) marketOnDelete(state, ctx, replaced);
  },
  'fileBank.declareSegments': fileBank.declareSegments,
  'placement.holdTicket': placement.holdTicket,
  'fileBank.createBucket': fileBank.createBucket,
  'fileBank.deleteBucket': fileBank.deleteBucket,
  'fileBank.putRetention': fileBank.putRetention,
  'fileBank.putObjectLock': fileBank.putObjectLock,
  'fileBank.putLegalHold': fileBank.putLegalHold,
  'fileBank.putVersioning': fileBank.putVersioning,
  // A suspended bucket's marker replaces the key's "null" version; a replaced object takes its market state along.
  'fileBank.putDeleteMarker': (state, ctx, args) => {
    const replaced = fileBank.putDeleteMarker(state, ctx, args);
    if (replaced !== undefined) marketOnDelete(state, ctx, replaced);
  },
  'fileBank.removeDeleteMarker': fileBank.removeDeleteMarker,
  // A deleted file takes its market state (terms, retrievals, requests, grants) with it.
  'fileBank.deleteFile': (state, ctx, args) => {
    fileBank.deleteFile(state, ctx, args);
    marketOnDelete(state, ctx, args.fid);
  },
  'fileBank.generateRestoralOrder': fileBank.generateRestoralOrder,
  'fileBank.claimRestoralOrder': fileBank.claimRestoralOrder,
  'fileBank.restoralComplete': fileBank.restoralComplete,
  'fileBank.calculateReport': fileBank.calculateReport,
  'teeWorker.register': teeWorker.register,
  'teeWorker.updateAddrs': teeWorker.updateAddrs,
  'audit.submitResult': audit.submitResult,
  'audit.commitIdle': audit.commitIdle,
  'audit.releaseIdle': audit.releaseIdle,
  'provenance.createTask': provenance.createTask,
  'provenance.admit': provenance.admit,
  'provenance.recordRound': provenance.recordRound,
  'provenance.setEndpoint': provenance.setEndpoint,
  'provenance.setAdmitted': provenance.setAdmitted,
  'provenance.stopTask': provenance.stopTask,
  'provenance.drawSeed': provenance.drawSeed,
  'market.setTerms': market.setTerms,
  'market.request': market.request,
  'market.grant': market.grant,
  'pot.payout': pot.payout,
};

export type RemarkOutcome =
  | { readonly kind: 'foreign' }
  | { readonly kind: 'applied'; readonly call: CallName; readonly writes: readonly StateWrite[] }
  | {
      readonly kind: 'rejected';
      readonly call: string | null;
      readonly reason: string;
      /**
       * Only when the rejected call was paid for (transfers to the pot directly before it): the refund debt the pot
       * now owes the caller (pallets/pot.ts). The rule's own writes are discarded, as for every rejection.
       */
      readonly writes?: readonly StateWrite[];
    };

/**
 * Applies one protocol call to the state, all or nothing: the rule runs on an overlay, and a rejection (a broken
 * rule) leaves no write of the rule's — only, when the call was paid for, the pot's debt to refund the caller.
 * Pure apart from reading `state`; the caller applies the returned writes.
 */
export function applyCall(state: StateReader, ctx: CallContext, call: ProtocolCall): RemarkOutcome {
  const overlay = new Overlay(state);
  try {
    (RULES[call.name] as Rule<unknown>)(overlay, ctx, call.args);
  } catch (err) {
    if (err instanceof CallRejected) return rejected(state, ctx, call.name, err.message);
    throw err;
  }
  // The pot pays only through payouts: its transfers before any other call are flagged.
  if (ctx.caller === ctx.config.pot && call.name !== 'pot.payout') flagPotPayments(overlay, ctx, call.name);
  return { kind: 'applied', call: call.name, writes: overlay.writes() };
}

/** A rejection; a call that was paid for gets the payment back as a debt of the pot's. */
function rejected(state: StateReader, ctx: CallContext, call: string | null, reason: string): RemarkOutcome {
  const overlay = new Overlay(state);
  const paid = ctx.caller === ctx.config.pot ? 0n : paidToPotDirectly(ctx);
  openDebt(overlay, ctx, ctx.caller, paid, `refund: ${call ?? 'an invalid call'} was rejected`);
  if (ctx.caller === ctx.config.pot) flagPotPayments(overlay, ctx, call ?? 'an invalid call');
  const writes = overlay.writes();
  return writes.length === 0
    ? { kind: 'rejected', call, reason }
    : { kind: 'rejected', call, reason, writes };
}

function flagPotPayments(state: Overlay, ctx: CallContext, call: string): void {
  for (const p of ctx.payments) flagPayment(state, ctx, p, null, `the pot paid before ${call}, not a payout`);
}

/**
 * The pot's transfers that no remark followed in their extrinsic (the indexer hands them over at its end): money out
 * of the pot outside a payout, flagged.
 */
export function flagUnexplainedPotPayments(
  state: StateReader,
  ctx: BlockContext,
  payments: readonly Payment[],
): readonly StateWrite[] {
  const overlay = new Overlay(state);
  for (const p of payments) flagPayment(overlay, ctx, p, null, 'the pot paid with no payout naming a debt');
  return overlay.writes();
}

/**
 * What the runtime does at the start of every block before any call (Substrate's `on_initialize`): the audit hook
 * settles challenges past their deadline and issues new ones, and market requests past theirs expire. Returns its
 * writes, like a call.
 */
export function applyBlockHooks(state: StateReader, ctx: BlockContext): readonly StateWrite[] {
  const overlay = new Overlay(state);
  auditOnBlock(overlay, ctx);
  marketOnBlock(overlay, ctx);
  placementOnBlock(overlay, ctx);
  return overlay.writes();
}

/** Decodes a remark and applies it when it is ours and well-formed. */
export function applyRemark(state: StateReader, ctx: CallContext, payload: Uint8Array): RemarkOutcome {
  const decoded = decodeRemark(payload);
  if (decoded.kind === 'foreign') return decoded;
  if (decoded.kind === 'invalid') return rejected(state, ctx, decoded.call, decoded.reason);
  return applyCall(state, ctx, decoded.call);
}
