import { beforeAll, describe, expect, it } from 'vitest';
import { admissionMessage } from '../../src/chain/pallets/provenance.ts';
import { applyRemark } from '../../src/chain/protocol.ts';
import { participantsOf } from '../../src/chain/queries.ts';
import { encodeRemark } from '../../src/chain/remark.ts';
import { type Account, accountsReady } from '../../src/shared/account.ts';
import { toHex } from '../../src/shared/bytes.ts';
import {
  call,
  createHarness,
  ctxAt,
  expectApplied,
  expectRejected,
  GENESIS_HASH,
  hex,
  makeAccounts,
} from './helpers.ts';

/** Another network that happens to carry a task with the same id (a fork, a second dev chain, testnet vs main). */
const OTHER_GENESIS = `0x${hex('another chain')}`;

describe('provenance.admit is bound to the chain it was signed for', () => {
  let coordinator: Account;
  let member: Account;
  beforeAll(async () => {
    await accountsReady();
    [coordinator, member] = makeAccounts('admission-genesis', 2) as [Account, Account];
  });

  it('names the network: the signed message carries the genesis hash under a v2 tag', () => {
    const text = new TextDecoder().decode(admissionMessage(GENESIS_HASH, 'fm', hex('identity')));
    expect(text).toBe(`ailink/provenance/admit/v2\n${GENESIS_HASH}\nfm\n${hex('identity')}`);
  });

  it('refuses an admission signed for another network with the same task id, accepts it for this one', () => {
    const h = createHarness();
    const create = call('provenance.createTask', {
      task: 'fm',
      spec: hex('spec'),
      admitted: [member.address],
    });
    expectApplied(h, coordinator.address, create);
    const key = hex('identity');
    const admit = (genesis: string) =>
      call('provenance.admit', {
        task: 'fm',
        account: member.address,
        identityKey: key,
        signature: toHex(member.sign(admissionMessage(genesis, 'fm', key))),
      });
    // Replayed from another network: same task id, same account, same key, a valid signature there.
    expectRejected(
      h,
      coordinator.address,
      admit(OTHER_GENESIS),
      /not signed by .* for this chain, task and key/,
    );
    expectApplied(h, coordinator.address, admit(GENESIS_HASH));
    expect(participantsOf(h.state, 'fm').map((p) => p.account)).toEqual([member.address]);

    // The other network's rules (its own genesis hash in the context) accept what was signed for it.
    const other = createHarness();
    other.submit(coordinator.address, create);
    const ctx = { ...ctxAt(coordinator.address, 2), genesisHash: OTHER_GENESIS };
    const { name, args } = admit(OTHER_GENESIS);
    expect(applyRemark(other.state, ctx, encodeRemark(name, args as never)).kind).toBe('applied');
  });
});
