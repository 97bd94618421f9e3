import type { CallName, ProtocolCall } from './calls.ts';
import { audit, auditOnBlock } from './pallets/audit.ts';
import type { BlockContext, CallContext, Rule } from './pallets/context.ts';
import { CallRejected } from './pallets/context.ts';
import { fileBank } from './pallets/file-bank.ts';
import { market, marketOnDelete } from './pallets/market.ts';
import { oss } from './pallets/oss.ts';
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
  'fileBank.uploadDeclaration': fileBank.uploadDeclaration,
  'fileBank.transferReport': fileBank.transferReport,
  // A deleted file takes its market state (terms, retrievals, requests, grants) with it.
  'fileBank.deleteFile': (state, ctx, args) => {
    fileBank.deleteFile(state, ctx, args);
    marketOnDelete(state, args.fid);
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
};

export type RemarkOutcome =
  | { readonly kind: 'foreign' }
  | { readonly kind: 'applied'; readonly call: CallName; readonly writes: readonly StateWrite[] }
  | { readonly kind: 'rejected'; readonly call: string | null; readonly reason: string };

/**
 * Applies one protocol call to the state, all or nothing: the rule runs on an overlay, and a rejection (a broken
 * rule) leaves no write. Pure apart from reading `state`; the caller applies the returned writes.
 */
export function applyCall(state: StateReader, ctx: CallContext, call: ProtocolCall): RemarkOutcome {
  const overlay = new Overlay(state);
  try {
    (RULES[call.name] as Rule<unknown>)(overlay, ctx, call.args);
  } catch (err) {
    if (err instanceof CallRejected) return { kind: 'rejected', call: call.name, reason: err.message };
    throw err;
  }
  return { kind: 'applied', call: call.name, writes: overlay.writes() };
}

/**
 * What the runtime does at the start of every block before any call (Substrate's `on_initialize`): the audit hook
 * settles challenges past their deadline and issues new ones. Returns its writes, like a call.
 */
export function applyBlockHooks(state: StateReader, ctx: BlockContext): readonly StateWrite[] {
  const overlay = new Overlay(state);
  auditOnBlock(overlay, ctx);
  return overlay.writes();
}

/** Decodes a remark and applies it when it is ours and well-formed. */
export function applyRemark(state: StateReader, ctx: CallContext, payload: Uint8Array): RemarkOutcome {
  const decoded = decodeRemark(payload);
  if (decoded.kind === 'foreign') return decoded;
  if (decoded.kind === 'invalid') return { kind: 'rejected', call: decoded.call, reason: decoded.reason };
  return applyCall(state, ctx, decoded.call);
}
