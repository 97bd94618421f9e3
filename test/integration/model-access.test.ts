import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  connectChain,
  DEV_POT,
  openIndexer,
  parseProtocolConfig,
  retrievalsOf,
} from '../../src/chain/index.ts';
import { runFederatedDemo } from '../../src/cli/fl-demo.ts';
import { loadKeyFile } from '../../src/shared/account.ts';
import { systemRandom } from '../../src/shared/clock.ts';
import { decodeModelBytes, parseManifest } from '../../src/task/index.ts';
import { cli, pulledWeights } from './cli-helpers.ts';

const PRICE = 1_000_000n;

/**
 * A task that keeps its models private (spec `models`), on the real dev chain, miners and libp2p: the participants
 * train from the encrypted initial model (wrapped for them when round 0 opened); a listed researcher pulls the global
 * model free, an unlisted account that agrees to pay nothing is refused, one that pays the price gets it, and the
 * coordinator's access log lists both retrievals.
 */
describe('private global models under market terms', () => {
  it('3 participants, 1 round, models for a listed researcher or for 1000000 planck', async () => {
    const keysDir = mkdtempSync(join(tmpdir(), 'ailink-model-access-keys-'));
    const keys: Record<'researcher' | 'outsider' | 'payer', string> = {
      researcher: join(keysDir, 'researcher.json'),
      outsider: join(keysDir, 'outsider.json'),
      payer: join(keysDir, 'payer.json'),
    };
    for (const path of Object.values(keys)) {
      const made = await cli(['keys', 'new', '--out', path]);
      expect(made.code, made.stderr).toBe(0);
    }
    const researcher = await loadKeyFile(keys.researcher);
    const outsider = await loadKeyFile(keys.outsider);
    const payer = await loadKeyFile(keys.payer);
    let checked = false;
    const lines: string[] = [];
    const result = await runFederatedDemo(
      { random: systemRandom },
      {
        participants: 3,
        rounds: 1,
        alpha: 0.5,
        epochs: 1,
        secagg: false,
        source: { kind: 'fashion-mnist', small: true, model: 'mlp' },
        drops: [],
        models: { readers: [researcher.address], price: PRICE.toString() },
        fundedAccounts: [researcher.address, outsider.address, payer.address],
        say: (line) => lines.push(line),
        async inspect(view) {
          const [anchored] = view.anchored(view.task);
          expect(anchored?.round, lines.join('\n')).toBe(0);
          // The close is one extrinsic: the private model's declaration, its terms after it, the manifest's, the anchor.
          const calls = view.calls().filter((c) => c.outcome === 'applied');
          const anchor = calls.find((c) => c.call === 'provenance.recordRound')!;
          const together = calls
            .filter((c) => c.block === anchor.block && c.extrinsic === anchor.extrinsic)
            .map((c) => c.call);
          expect(together.indexOf('market.setTerms')).toBeGreaterThan(
            together.indexOf('fileBank.uploadDeclaration'),
          );
          expect(together.indexOf('market.setTerms')).toBeGreaterThanOrEqual(0);
          const manifest = parseManifest(await view.get(anchored!.manifest));
          const fid = manifest.model.fid;
          const anchoredWeights = decodeModelBytes(await view.get(fid)).weights;
          const net = join(view.network.dir, 'network.json');
          const coordinator = view.spec.coordinator.account;
          const chain = await connectChain(view.network.file.chain!.endpoint);
          const pull = (key: string, out: string, maxPrice?: bigint) =>
            cli([
              'model',
              'pull',
              '--task',
              view.task,
              '--out',
              out,
              '--network',
              net,
              '--key',
              key,
              ...(maxPrice === undefined ? [] : ['--max-price', maxPrice.toString()]),
              '--json',
            ]);
          try {
            // The stored model is encrypted: a plain read by someone it is not wrapped for is refused.
            const out = (name: string) => join(view.network.dir, 'pulled', name);

            // The listed researcher: free, with the key released by the coordinator's key service.
            const coordinatorBefore = await chain.balance(coordinator);
            const free = await pull(keys.researcher, out('researcher'));
            expect(free.code, free.stderr + free.stdout).toBe(0);
            const freeFee = coordinatorBefore - (await chain.balance(coordinator)); // its grant's fee
            expect(await pulledWeights(out('researcher'))).toEqual(anchoredWeights);

            // Unlisted, paying nothing: refused with the chain's reason, and nothing written.
            const refused = await pull(keys.outsider, out('outsider'), 0n);
            expect(refused.code).toBe(1);
            expect(refused.stdout + refused.stderr).toContain('ACCESS_DENIED');
            expect(refused.stdout + refused.stderr).toContain('--max-price 1000000');
            const written = existsSync(out('outsider')) ? readdirSync(out('outsider')) : [];
            expect(written).toEqual([]);

            // Unlisted, agreeing to the price: pays it into escrow at the pot in the request's extrinsic.
            const [payerBefore, ownerBefore] = await Promise.all([
              chain.balance(payer.address),
              chain.balance(coordinator),
            ]);
            const paid = await pull(keys.payer, out('payer'), PRICE);
            expect(paid.code, paid.stderr + paid.stdout).toBe(0);
            expect(await pulledWeights(out('payer'))).toEqual(anchoredWeights);
            const payerAfter = await chain.balance(payer.address);
            expect(payerBefore - payerAfter).toBeGreaterThanOrEqual(PRICE);
            // The price went into escrow; the key's release made the pot owe it to the coordinator, and the dev
            // network's payout service pays it within a step (5 s) or two. Meanwhile the coordinator's key service paid
            // one grant's fee, as for the researcher (the same call, the same size; the chain's fee multiplier moves it
            // by a few planck between blocks): what is left is the price.
            const riseNow = async () => (await chain.balance(coordinator)) - ownerBefore + freeFee;
            let rise = await riseNow();
            for (
              const until = Date.now() + 60_000;
              rise < PRICE - 1000n && Date.now() < until;
              rise = await riseNow()
            ) {
              await new Promise((r) => setTimeout(r, 500));
            }
            if (!(rise > PRICE - 1000n && rise < PRICE + 1000n)) {
              // What the pot paid and owes, and the retrievals: the message to read when this fails.
              const observer = openIndexer(chain, {
                path: join(view.network.dir, 'rise-observer.sqlite'),
                config: parseProtocolConfig(view.network.file.chain!.protocol),
              });
              await observer.sync();
              const pot = ['pot/paid/', 'pot/debts/', 'pot/flags/'].flatMap((p) => observer.state.scan(p));
              const payoutLog = join(view.network.dir, 'pot', 'payouts.log');
              const seen = JSON.stringify({
                pot,
                retrievals: retrievalsOf(observer.state, fid),
                payouts: existsSync(payoutLog) ? readFileSync(payoutLog, 'utf8') : null,
              });
              observer.close();
              expect.fail(`the coordinator's balance rose by ${rise}, expected ${PRICE}: ${seen}`);
            }

            // The owner's access log: both retrievals, the payer's with the price.
            const asCoordinator = join(view.network.dir, 'keys', 'coordinator.json');
            const log = await cli([
              'model',
              'access-log',
              '--fid',
              fid,
              '--network',
              net,
              '--key',
              asCoordinator,
              '--json',
            ]);
            expect(log.code, log.stderr).toBe(0);
            const rows = JSON.parse(log.stdout) as {
              reader: string;
              paid: string;
              keyReleased: boolean;
              block: number;
            }[];
            expect(rows.map((r) => [r.reader, r.paid, r.keyReleased])).toEqual([
              [researcher.address, '0', true],
              [payer.address, PRICE.toString(), true],
            ]);
            // Exactly the price went into escrow at the pot, in the extrinsic of the payer's request.
            const block = await chain.block(rows[1]!.block);
            const transfers = block.extrinsics
              .filter((x) => x.signer === payer.address)
              .flatMap((x) => x.calls)
              .filter((c) => c.applied && c.call.kind === 'transfer');
            expect(transfers.map((c) => c.call)).toEqual([{ kind: 'transfer', to: DEV_POT, amount: PRICE }]);
            checked = true;
          } finally {
            await chain.close();
          }
        },
      },
    );
    expect(checked, lines.join('\n')).toBe(true);
    expect(result.lineage_verified).toBe(true);
    expect(result.rounds.map((r) => r.survivors)).toEqual([3]);
  }, 600_000);
});
