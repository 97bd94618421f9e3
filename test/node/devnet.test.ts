import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  connectChain,
  DEV_POT,
  DEV_PROTOCOL_CONFIG,
  DEV_VERIFIER,
  DEV_VERIFIER_SEED,
  devSigner,
  openIndexer,
  potAddress,
  protocolConfigToJson,
} from '../../src/chain/index.ts';
import { startDevNetwork } from '../../src/node/devnet.ts';
import { accountFromSeeds, accountsReady } from '../../src/shared/account.ts';
import { fromHex } from '../../src/shared/bytes.ts';
import { systemRandom } from '../../src/shared/clock.ts';
import { AilinkError } from '../../src/shared/errors.ts';

// What `ailink dev` refuses before it starts anything. A full start is covered by the integration tests
// (test/integration/market.test.ts pays the pot's debts with the network's payout service).

let dir: string | undefined;
beforeAll(accountsReady);
afterEach(() => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

const start = () =>
  startDevNetwork({ random: systemRandom }, { dataDir: dir!, miners: 1, profile: 'test', verifier: false });

it('the dev pot is the well-known dev account Ferdie, whose key `ailink dev` pays its debts with', () => {
  expect(devSigner('Ferdie').address).toBe(DEV_POT);
  expect(DEV_PROTOCOL_CONFIG.pot).toBe(DEV_POT);
});

it('the dev verifier is the account of its public seed, and the only one the dev parameters name', () => {
  expect(accountFromSeeds(fromHex(DEV_VERIFIER_SEED), new Uint8Array(32)).address).toBe(DEV_VERIFIER);
  expect(DEV_PROTOCOL_CONFIG.verifiers).toEqual([DEV_VERIFIER]);
});

// Found by the one-hour soak: a client given `--chain` alone indexes with the dev parameters. When they named no
// verifier it refused the verifier's registration, never saw a column tagged, and 600 blocks later fined every miner
// out of its directory, while the miners, reading protocol.json, saw another state.
it('a client with the dev parameters alone sees the dev network’s verifier registered, as the network does', async () => {
  dir = mkdtempSync(join(tmpdir(), 'ailink-devnet-'));
  const network = await startDevNetwork(
    { random: systemRandom },
    { dataDir: dir, miners: 1, profile: 'test', verifier: true },
  );
  try {
    expect(network.verifier).toBeDefined();
    expect(network.protocol).toEqual(DEV_PROTOCOL_CONFIG);
    const chain = await connectChain(network.chainEndpoint);
    const index = openIndexer(chain, { path: join(dir, 'client.sqlite'), config: DEV_PROTOCOL_CONFIG });
    try {
      await index.sync();
      expect(index.calls({ outcome: 'rejected' }).filter((c) => c.call === 'teeWorker.register')).toEqual([]);
      expect(index.state.get(`teeWorker/workers/${DEV_VERIFIER}`)).toBeDefined();
    } finally {
      index.close();
      await chain.close();
    }
  } finally {
    await network.stop();
  }
}, 180_000);

describe('ailink dev on a data dir made by an older version', () => {
  it('one whose pot nobody held a key to is refused, naming the data dir and what to do', async () => {
    dir = mkdtempSync(join(tmpdir(), 'ailink-devnet-'));
    const older = { ...DEV_PROTOCOL_CONFIG, pot: potAddress() }; // the keyless pot dev networks used before
    writeFileSync(join(dir!, 'protocol.json'), JSON.stringify(protocolConfigToJson(older)));
    const err = await start().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AilinkError);
    expect((err as AilinkError).code).toBe('INVALID_INPUT');
    expect((err as AilinkError).message).toContain(`${dir} was made by an older \`ailink dev\`, whose pot`);
    expect((err as AilinkError).message).toContain('start with another --data-dir');
  });

  it('one from before the verifier set is refused too', async () => {
    dir = mkdtempSync(join(tmpdir(), 'ailink-devnet-'));
    const { verifiers: _v, ...older } = protocolConfigToJson(DEV_PROTOCOL_CONFIG);
    writeFileSync(join(dir!, 'protocol.json'), JSON.stringify(older));
    await expect(start()).rejects.toThrow(/register as a verifier/);
  });

  it('one from before the rules drew placements is refused too', async () => {
    dir = mkdtempSync(join(tmpdir(), 'ailink-devnet-'));
    const { placement: _p, ...older } = protocolConfigToJson(DEV_PROTOCOL_CONFIG);
    writeFileSync(join(dir!, 'protocol.json'), JSON.stringify(older));
    await expect(start()).rejects.toThrow(/let an uploader choose its miners/);
  });
});
