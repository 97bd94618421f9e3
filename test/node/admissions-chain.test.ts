import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEV_PROTOCOL_CONFIG, protocolCall } from '../../src/chain/config.ts';
import { devSigner } from '../../src/chain/devchain.ts';
import { type Indexer, openIndexer } from '../../src/chain/indexer.ts';
import { admissionMessage } from '../../src/chain/pallets/provenance.ts';
import { participantsOf } from '../../src/chain/queries.ts';
import { submitProtocol, submitProtocolEach } from '../../src/chain/submit.ts';
import { type Admission, createAdmissionQueue } from '../../src/coordinator/admissions.ts';
import { admitOnChain } from '../../src/node/coordinator.ts';
import { accountsReady } from '../../src/shared/account.ts';
import { toHex } from '../../src/shared/bytes.ts';
import type { AilinkError } from '../../src/shared/errors.ts';
import { useDevChain } from '../chain/fixture.ts';
import { makeAccounts } from '../chain/helpers.ts';

const hex = (label: string) => createHash('sha256').update(label).digest('hex');

// The admission queue over the real dev chain (chopsticks, batch mode) and the coordinator node's `admitOnChain`:
// 40 organisations join within about a second, and one more joins with a signature made for another network.
describe('admissions in batches on the dev chain', () => {
  const dev = useDevChain();
  let dir: string;
  let indexer: Indexer;

  beforeAll(async () => {
    await accountsReady();
    dir = mkdtempSync(join(tmpdir(), 'ailink-admit-'));
    indexer = openIndexer(dev.client(), { path: join(dir, 'index.sqlite'), config: DEV_PROTOCOL_CONFIG });
  });
  // Registered after useDevChain's hooks, so it runs before the chain is closed.
  afterAll(() => {
    indexer?.close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('records 40 concurrent joins in a few extrinsics, and a bad one is refused alone', async () => {
    // What a participant sizes its join deadline by: the Asset Hub runtime's 12 s slot (2 × timestamp.minimumPeriod).
    expect(dev.client().blockTimeMs).toBe(12_000);
    const coordinator = devSigner('Alice');
    const deps = { chain: dev.client(), indexer };
    const members = makeAccounts('admissions-chain', 41);
    const task = 'batched-admissions';
    await submitProtocol(deps, coordinator, [
      protocolCall('provenance.createTask', {
        task,
        spec: hex('spec/batched'),
        admitted: members.map((m) => m.address),
      }),
    ]);
    const from = indexer.height() + 1;
    const queue = createAdmissionQueue({
      submit: admitOnChain({
        submitEach: async (calls) => (await submitProtocolEach(deps, coordinator, calls)).outcomes,
      }),
    });
    const admissionOf = (i: number, genesis = dev.client().genesisHash): Admission => {
      const identityKey = hex(`identity/${i}`);
      return {
        task,
        account: members[i]!.address,
        identityKey,
        signature: toHex(members[i]!.sign(admissionMessage(genesis, task, identityKey))),
      };
    };
    const started = performance.now();
    // Joins arrive over ~1 s, as HTTP requests would, not in one tick.
    const joins = Array.from(
      { length: 40 },
      (_, i) =>
        new Promise<void>((resolve, reject) => {
          setTimeout(() => queue.admit(admissionOf(i)).then(resolve, reject), i * 25);
        }),
    );
    // Its answer is taken at once (as the HTTP route would), so its refusal is never an unhandled rejection.
    const replayed = new Promise<void>((resolve) => setTimeout(resolve, 500))
      .then(() => queue.admit(admissionOf(40, `0x${hex('another chain')}`)))
      .then(
        () => undefined,
        (err: AilinkError) => err,
      );
    await Promise.all(joins);
    const seconds = (performance.now() - started) / 1000;
    expect(await replayed).toMatchObject({
      code: 'CHAIN_CALL_REJECTED',
      message: expect.stringContaining('not signed by'),
    });

    const admitted = new Set(participantsOf(indexer.state, task).map((p) => p.account));
    expect(admitted.size).toBe(40);
    for (const m of members.slice(0, 40)) expect(admitted.has(m.address), m.address).toBe(true);
    // Which extrinsics carried the admissions: one each, one at a time, would be 41.
    const carriers = new Set(
      indexer
        .calls({ fromBlock: from })
        .filter((r) => r.call === 'provenance.admit')
        .map((r) => `${r.block}/${r.extrinsic}`),
    );
    console.log(
      `admissions on the dev chain: 41 in ${carriers.size} extrinsics, ${seconds.toFixed(1)} s (${(40 / seconds).toFixed(1)} admissions/s)`,
    );
    expect(carriers.size).toBeLessThanOrEqual(8);
  }, 60_000);
});
