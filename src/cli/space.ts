import { parseArgs } from 'node:util';
import {
  formatBytes,
  heldSpaceOf,
  MAX_GIB_PER_PURCHASE,
  mayStore,
  protocolCall,
  spaceOf,
  spacePurchase,
  spaceUseOf,
} from '../chain/index.ts';
import { openSession } from '../node/index.ts';
import { isAddress } from '../shared/account.ts';
import { systemClock, systemRandom } from '../shared/clock.ts';
import { AilinkError } from '../shared/errors.ts';
import { NETWORK_OPTIONS, networkAndKey } from './network-flags.ts';

/**
 * `ailink space`: who may store on the network, and how much, as the chain records it (CESS's storage_handler and oss).
 * Miners accept uploads from an account that bought space, or from an operator that such an account authorised; they
 * look it up on chain, so nothing needs restarting. Space is a quota: each file takes its segments at full size from
 * its owner's space until it is deleted, and a declaration beyond what is left is refused:
 *
 *   ailink space buy GIB [--for ADDRESS]   buy GIB GiB (paying the protocol's price to the pot) for --key's account
 *                                          or for ADDRESS
 *   ailink space show [ADDRESS] [--json]   the space an account bought, what its files take and what is left, and
 *                                          whether miners accept its uploads
 *   ailink space authorize OPERATOR        let OPERATOR (a gateway, a coordinator) store, declare and delete for you
 *   ailink space revoke OPERATOR           take that back
 */

const USAGE =
  'expected `ailink space buy GIB [--for ADDRESS] | show [ADDRESS] | authorize OPERATOR | revoke OPERATOR`';

export async function spaceCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { ...NETWORK_OPTIONS, for: { type: 'string' }, json: { type: 'boolean' } },
    allowPositionals: true,
  });
  const [sub, arg] = positionals;
  // Arguments first: a usage error must not need a running network.
  if (sub === undefined || !['buy', 'show', 'authorize', 'revoke'].includes(sub))
    throw new AilinkError('INVALID_INPUT', `${USAGE}, got ${JSON.stringify(sub ?? '')}`);
  const gib = sub === 'buy' ? Number(arg) : 0;
  if (sub === 'buy' && !(/^[1-9]\d*$/.test(arg ?? '') && gib <= MAX_GIB_PER_PURCHASE))
    throw new AilinkError(
      'INVALID_INPUT',
      `space buy: expected a whole number of GiB from 1 to ${MAX_GIB_PER_PURCHASE}, got ${JSON.stringify(arg ?? '')}`,
    );
  const named = sub === 'buy' ? values.for : arg;
  if ((sub === 'authorize' || sub === 'revoke') && named === undefined)
    throw new AilinkError('INVALID_INPUT', `space ${sub}: expected the operator's SS58 address`);
  if (named !== undefined && !isAddress(named))
    throw new AilinkError(
      'INVALID_INPUT',
      `space ${sub}: expected an SS58 address, got ${JSON.stringify(named)}`,
    );

  const { session: config, account } = await networkAndKey(values);
  const session = await openSession(config, account, 'client', { clock: systemClock, random: systemRandom });
  try {
    const who = sub === 'show' || sub === 'buy' ? (named ?? account.address) : account.address;
    switch (sub) {
      case 'buy': {
        const price = BigInt(gib) * config.protocol.spacePrice;
        await session.submit(spacePurchase(config.protocol, gib, named));
        console.error(`bought ${gib} GiB for ${who} (${price} paid to the pot)`);
        break;
      }
      case 'authorize':
      case 'revoke':
        await session.submit([
          protocolCall(sub === 'authorize' ? 'oss.authorize' : 'oss.cancelAuthorize', { operator: named! }),
        ]);
        console.error(
          sub === 'authorize'
            ? `${named} may now store, declare and delete for ${account.address}`
            : `${named} no longer acts for ${account.address}`,
        );
        return;
      case 'show':
        await session.indexer.sync();
        break;
    }
    const state = session.indexer.state;
    const space = spaceOf(state, who);
    const use = spaceUseOf(state, who);
    const held = heldSpaceOf(state, who);
    const view = {
      account: who,
      gib: space?.gib ?? 0,
      /** Bytes: bought, taken by the account's files and its uploads under way, left. */
      bought: use.bought,
      used: use.used,
      left: use.left,
      /** Bytes of `used` reserved by uploads under way (placement holds), and how many uploads. */
      reserved: held.bytes,
      uploading: held.uploads,
      since: space?.since ?? null,
      mayStore: mayStore(state, who),
      block: session.indexer.height(),
    };
    if (values.json) console.log(JSON.stringify(view));
    else if (sub === 'show')
      console.log(
        `${who}: ${formatBytes(view.used)} used${view.uploading === 0 ? '' : ` (${formatBytes(view.reserved)} of it reserved by ${view.uploading} upload${view.uploading === 1 ? '' : 's'} under way)`} of ${view.gib} GiB${view.since === null ? '' : ` (since block ${view.since})`}, ${formatBytes(view.left)} left; miners ${view.mayStore ? 'accept' : 'refuse'} its uploads${view.gib === 0 && view.mayStore ? ' (as an operator of an account with space)' : ''}`,
      );
  } finally {
    await session.close();
  }
}
