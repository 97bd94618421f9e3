import {
  type ChainClient,
  fileOf,
  type Indexer,
  minerOf,
  type ProtocolConfig,
  peerRegistrationMessage,
  protocolCall,
  submitProtocol,
} from '../../chain/index.ts';
import type { Account } from '../../shared/account.ts';
import { toHex } from '../../shared/bytes.ts';
import { AilinkError } from '../../shared/errors.ts';
import type { MinerChainActions } from './miner-service.ts';

export interface MinerRegistration {
  readonly peerId: string;
  readonly addrs: readonly string[];
  readonly capacity: number;
  readonly collateral: bigint;
  /** Signs with the miner's libp2p key: the registration proves the peer id is the miner's own. */
  readonly signWithPeerKey: (message: Uint8Array) => Promise<Uint8Array>;
}

/**
 * Puts the miner on chain: registers it (paying its collateral to the pot in the same `batchAll`) the first time,
 * and updates its addresses when they changed since (a restart on new ports).
 * @throws CHAIN_CALL_REJECTED, CHAIN_CALL_FAILED (e.g. the account cannot pay the collateral)
 */
export async function joinChain(
  deps: { chain: ChainClient; indexer: Indexer; account: Account; config: ProtocolConfig },
  miner: MinerRegistration,
): Promise<'registered' | 'updated' | 'unchanged'> {
  await deps.indexer.sync();
  const known = minerOf(deps.indexer.state, deps.account.address);
  const addrs = [...miner.addrs];
  if (known === undefined) {
    const message = peerRegistrationMessage(
      'sminer.register',
      deps.chain.genesisHash,
      deps.account.address,
      miner.peerId,
    );
    const peerSignature = toHex(await miner.signWithPeerKey(message));
    await submitProtocol(deps, deps.account, [
      { kind: 'transfer', to: deps.config.pot, amount: miner.collateral },
      protocolCall('sminer.register', {
        peerId: miner.peerId,
        addrs,
        capacity: miner.capacity,
        collateral: miner.collateral.toString(),
        peerSignature,
      }),
    ]);
    return 'registered';
  }
  if (known.state !== 'positive') {
    throw new AilinkError(
      'CHAIN_CALL_REJECTED',
      `miner ${deps.account.address} has exited; register a new account`,
    );
  }
  if (known.peerId !== miner.peerId) {
    throw new AilinkError(
      'CHAIN_CALL_REJECTED',
      `account ${deps.account.address} is registered for peer ${known.peerId}, not ${miner.peerId}`,
    );
  }
  if (JSON.stringify(known.addrs) === JSON.stringify(addrs)) return 'unchanged';
  await submitProtocol(deps, deps.account, [protocolCall('sminer.updateAddrs', { addrs })]);
  return 'updated';
}

/** The miner's side of restoral orders: claim and complete with its own account, checked against the rules. */
export function minerChainActions(deps: {
  chain: ChainClient;
  indexer: Indexer;
  account: Account;
}): MinerChainActions {
  const me = deps.account.address;
  return {
    account: deps.account,
    restoral: {
      async claim(fid, index) {
        const { block } = await submitProtocol(deps, deps.account, [
          protocolCall('fileBank.claimRestoralOrder', { fid, index }),
        ]);
        return block;
      },
      async complete(fid, index) {
        const { block } = await submitProtocol(deps, deps.account, [
          protocolCall('fileBank.restoralComplete', { fid, index }),
        ]);
        if (fileOf(deps.indexer.state, fid)?.placements[index] !== me) {
          throw new AilinkError(
            'CHAIN_CALL_REJECTED',
            `column ${index} of ${fid} is not recorded as held by ${me}`,
          );
        }
        return block;
      },
    },
  };
}
