import { encodeAddress } from '@polkadot/util-crypto';
import { SS58_PREFIX } from '../shared/account.ts';
import type { CallArgs, CallName } from './calls.ts';
import type { ChainCall } from './client.ts';
import type { ProtocolConfig } from './pallets/context.ts';
import { encodeRemark } from './remark.ts';

/**
 * The pot that collateral is paid to, derived as Substrate derives a pallet's account ("modl" + 8-byte id, zero
 * padded): no one holds its key, so what is paid in stays there.
 */
export function potAddress(id = 'ailink/p'): string {
  const raw = new Uint8Array(32);
  raw.set(new TextEncoder().encode('modl'), 0);
  raw.set(new TextEncoder().encode(id.padEnd(8, '\0').slice(0, 8)), 4);
  return encodeAddress(raw, SS58_PREFIX);
}

/** One ROC: the dev chain's token has 12 decimals. */
export const ROC = 10n ** 12n;

/** The protocol parameters of a local network. */
export const DEV_PROTOCOL_CONFIG: ProtocolConfig = {
  pot: potAddress(),
  minCollateral: ROC,
  restoralClaimBlocks: 20,
};

/** A protocol call as a chain call (a remark), ready for `ChainClient.submit`. */
export function protocolCall<N extends CallName>(name: N, args: CallArgs<N>): ChainCall {
  return { kind: 'remark', payload: encodeRemark(name, args) };
}
