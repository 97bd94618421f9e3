/**
 * Edges: every kind of protocol remark, run through the chain's rules as the indexer runs them. A state is built by
 * valid calls (miners, a verifier, space, an operator, files placed by 12 miners' receipts, a restoral order, market
 * terms and a request, a task with an admission, a seed and a round), then each bad call — malformed arguments or
 * encoding, the wrong caller, replayed, out of order, unsigned or wrongly signed, duplicated — is applied to it. A
 * rejected call must change nothing (the digest covers the whole protocol state).
 *
 * Two shells over the same cases: `chain:rules` calls `applyRemark` (the function the indexer folds every remark
 * with) and commits writes exactly as the indexer does; `chain:indexer` feeds each call as a block to the real
 * indexer (`openIndexer`, SQLite) through an in-memory chain source. Neither starts a dev chain.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import type { CallArgs, CallName } from '../../src/chain/calls.ts';
import { CALL_SCHEMAS } from '../../src/chain/calls.ts';
import type { ChainBlock } from '../../src/chain/client.ts';
import { type Indexer, openIndexer } from '../../src/chain/indexer.ts';
import type { Payment, ProtocolConfig } from '../../src/chain/pallets/context.ts';
import { admissionMessage } from '../../src/chain/pallets/provenance.ts';
import { applyRemark } from '../../src/chain/protocol.ts';
import { MAX_REMARK_BYTES, REMARK_MAGIC, REMARK_VERSION } from '../../src/chain/remark.ts';
import { createMemoryState, type StateReader, type StateStore } from '../../src/chain/state.ts';
import { type Account, accountsReady } from '../../src/shared/account.ts';
import { toHex } from '../../src/shared/bytes.ts';
import { AilinkError } from '../../src/shared/errors.ts';
import {
  CONFIG,
  ctxAt,
  GENESIS_HASH,
  hex,
  makeAccounts,
  makeDeclaration,
  makeReceipt,
  peerIdOf,
  peerSignatureOf,
} from '../../test/chain/helpers.ts';
import type { Edge, FuzzCase, Variant } from './harness.ts';
import { fuzzCase, type Json, otherType, pathsOf, withPath } from './mutate.ts';

/** One extrinsic: its signer, the transfers before the remark, and the remark's bytes. */
export interface ChainInput {
  readonly caller: string;
  readonly payload: Uint8Array;
  readonly payments?: readonly Payment[];
}

/** A remark body encoded as the codec does, but without its validation (so that bad arguments reach the decoder). */
export function rawRemark(body: unknown, version = REMARK_VERSION): Uint8Array {
  const json = new TextEncoder().encode(typeof body === 'string' ? body : JSON.stringify(body));
  const out = new Uint8Array(REMARK_MAGIC.length + 1 + json.byteLength);
  out.set(REMARK_MAGIC, 0);
  out[REMARK_MAGIC.length] = version;
  out.set(json, REMARK_MAGIC.length + 1);
  return out;
}

const remark = <N extends CallName>(name: N, args: CallArgs<N>): Uint8Array =>
  rawRemark({ call: name, args });

/** Where the calls go: a shell that applies one extrinsic and says what became of its remark. */
interface ChainShell {
  readonly genesisHash: string;
  /** @throws CHAIN_CALL_REJECTED (with the rule's reason) when the call was rejected or not ours */
  submit(input: ChainInput): Promise<void>;
  state(): StateReader;
  snapshot(): Promise<void>;
  restore(): Promise<void>;
  close(): Promise<void>;
}

const rejectedError = (reason: string) => new AilinkError('CHAIN_CALL_REJECTED', reason);

/** The pure core: `applyRemark` over an in-memory state, writes committed as the indexer commits them. */
async function rulesShell(config: ProtocolConfig): Promise<ChainShell> {
  let store: StateStore = createMemoryState();
  let saved: [string, Json][] = [];
  let block = 0;
  return {
    genesisHash: GENESIS_HASH,
    async submit({ caller, payload, payments = [] }) {
      block++;
      const paidToPot = payments.reduce((a, p) => (p.to === config.pot ? a + p.amount : a), 0n);
      const outcome = applyRemark(store, ctxAt(caller, block, paidToPot, payments, config), payload);
      if (outcome.kind === 'foreign') throw rejectedError('not a protocol remark: ignored');
      store.apply(outcome.writes ?? []);
      if (outcome.kind === 'rejected') throw rejectedError(outcome.reason);
    },
    state: () => store,
    async snapshot() {
      saved = store.scan('') as [string, Json][];
    },
    async restore() {
      store = createMemoryState();
      store.apply(saved.map(([key, value]) => ({ key, value })));
    },
    async close() {},
  };
}

/**
 * The real indexer over an in-memory chain: each extrinsic is a block of its own. Block hooks run as on a real chain,
 * so the configuration must keep them quiet (no verifiers, deadlines out of reach) for digests to compare.
 */
async function indexerShell(config: ProtocolConfig): Promise<ChainShell> {
  const dir = mkdtempSync(join(tmpdir(), 'ailink-fuzz-indexer-'));
  let blocks: ChainBlock[] = [];
  let generation = 0;
  const source = {
    genesisHash: GENESIS_HASH,
    block: async (n: number) => {
      const b = blocks[n - 1];
      if (b === undefined) throw new AilinkError('NOT_FOUND', `no block ${n}`);
      return b;
    },
    blocks: async (from: number, to: number) => {
      if (to > blocks.length) throw new AilinkError('NOT_FOUND', `no block ${to}`);
      return blocks.slice(from - 1, to);
    },
    finalizedHeight: async () => blocks.length,
    followFinalized: async () => () => {},
  };
  let indexer: Indexer = openIndexer(source, { path: join(dir, `index-${generation}.sqlite`), config });
  let savedBlocks: ChainBlock[] = [];
  return {
    genesisHash: GENESIS_HASH,
    async submit({ caller, payload, payments = [] }) {
      const number = blocks.length + 1;
      const hash = `0x${hex(`fuzz/${generation}/${number}`)}`;
      blocks.push({
        number,
        hash,
        parentHash: blocks[number - 2]?.hash ?? `0x${'0'.repeat(64)}`,
        timestamp: 1_700_000_000_000 + number * 6000,
        extrinsics: [
          {
            index: 1,
            signer: caller,
            calls: [
              ...payments.map((p) => ({
                call: { kind: 'transfer' as const, to: p.to, amount: p.amount },
                applied: true,
              })),
              { call: { kind: 'remark' as const, payload }, applied: true },
            ],
          },
        ],
      });
      await indexer.sync(number);
      const record = indexer.calls({ fromBlock: number })[0];
      if (record === undefined) throw rejectedError('not a protocol remark: ignored');
      if (record.outcome === 'rejected') throw rejectedError(record.reason ?? '');
    },
    state: () => indexer.state,
    async snapshot() {
      savedBlocks = [...blocks];
    },
    // A fresh index replays the saved blocks: what anyone joining later would do.
    async restore() {
      indexer.close();
      generation++;
      blocks = [...savedBlocks];
      indexer = openIndexer(source, { path: join(dir, `index-${generation}.sqlite`), config });
      await indexer.sync(blocks.length);
    },
    async close() {
      indexer.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** SHA-256 over the whole protocol state (leaving out keys under `except`). */
/**
 * The real dev chain (chopsticks running the Rococo Asset Hub runtime) and the real indexer following it: each input
 * is a signed extrinsic (transfers, then the remark) in a block of its own. Slow (a block ≈ 0.6 s): the long profile's
 * (`--devchain`). A chain cannot be rolled back, so an accepted noise input stays (the next inputs compare against it).
 */
async function devChainShell(config: ProtocolConfig, accounts: readonly Account[]): Promise<ChainShell> {
  const { connectChain, devSigner, startDevChain, ROC } = await import('../../src/chain/index.ts');
  const dir = mkdtempSync(join(tmpdir(), 'ailink-fuzz-devchain-'));
  const chain = await startDevChain({ port: 0, blockMode: 'instant' });
  const client = await connectChain(chain.endpoint);
  const byAddress = new Map(accounts.map((a) => [a.address, a]));
  await client.submit(
    devSigner('Alice'),
    accounts.map((a) => ({ kind: 'transfer' as const, to: a.address, amount: 1000n * ROC })),
  );
  const indexer = openIndexer(client, { path: join(dir, 'index.sqlite'), config });
  return {
    genesisHash: client.genesisHash,
    async submit({ caller, payload, payments = [] }) {
      const signer = byAddress.get(caller);
      if (signer === undefined) throw new Error(`no key for ${caller}`);
      const inclusion = await client.submit(signer, [
        ...payments.map((p) => ({ kind: 'transfer' as const, to: p.to, amount: p.amount })),
        { kind: 'remark' as const, payload },
      ]);
      await indexer.sync(inclusion.blockNumber);
      const record = indexer
        .calls({ fromBlock: inclusion.blockNumber })
        .find((c) => c.block === inclusion.blockNumber && c.extrinsic === inclusion.extrinsicIndex);
      if (record === undefined) throw rejectedError('not a protocol remark: ignored');
      if (record.outcome === 'rejected') throw rejectedError(record.reason ?? '');
    },
    state: () => indexer.state,
    async snapshot() {},
    async restore() {},
    async close() {
      indexer.close();
      await client.close();
      await chain.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const stateDigest = (state: StateReader, except?: string): string => {
  const h = createHash('sha256');
  for (const [key, value] of state.scan('')) {
    if (except !== undefined && key.startsWith(except)) continue;
    h.update(`${key}\n${JSON.stringify(value)}\n`);
  }
  return h.digest('hex');
};

/** The accounts and objects of the valid state. */
interface World {
  readonly miners: Account[];
  readonly owner: Account;
  readonly operator: Account;
  readonly reader: Account;
  readonly verifier: Account;
  readonly org: Account;
  readonly org2: Account;
  readonly stranger: Account;
  readonly config: ProtocolConfig;
  /** The chain's genesis hash: admissions and peer registrations are signed for it. */
  readonly genesisHash: string;
}

const TASK = 'fuzz-task';
/** Calls whose exact repetition is valid (see the replayed cases). */
const REPEATABLE: ReadonlySet<CallName> = new Set<CallName>([
  'provenance.setEndpoint',
  'market.setTerms',
  'storageHandler.buySpace',
  'market.request',
]);
const decl = (label: string, owner: string, encrypted = false) =>
  makeDeclaration(label, owner, {
    data: 4,
    parity: 8,
    segments: 1,
    segmentSize: 1024,
    size: 1000,
    encrypted,
  });

/** The valid calls that build the state, in order; each must apply. */
function scenario(w: World): { caller: Account; name: CallName; args: unknown; payments?: Payment[] }[] {
  const { miners, owner, operator, reader, verifier, org, config } = w;
  const [sold, restored, kept, pending] = [
    decl('fuzz/sold', owner.address, true),
    decl('fuzz/restored', owner.address),
    decl('fuzz/kept', owner.address),
    decl('fuzz/pending', owner.address),
  ];
  const pot = config.pot;
  const steps: { caller: Account; name: CallName; args: unknown; payments?: Payment[] }[] = [];
  const add = <N extends CallName>(caller: Account, name: N, args: CallArgs<N>, payments?: Payment[]) =>
    steps.push({ caller, name, args, ...(payments ? { payments } : {}) });
  for (const m of miners.slice(0, 12))
    add(
      m,
      'sminer.register',
      {
        peerId: peerIdOf(m),
        addrs: ['/ip4/127.0.0.1/tcp/4001'],
        capacity: 1 << 30,
        collateral: config.minCollateral.toString(),
        peerSignature: peerSignatureOf(m, 'sminer.register', { genesisHash: w.genesisHash }),
      },
      [{ to: pot, amount: config.minCollateral }],
    );
  if (config.verifiers.includes(verifier.address))
    add(verifier, 'teeWorker.register', {
      peerId: peerIdOf(verifier),
      addrs: [],
      podr2Key: 'cd'.repeat(32),
      peerSignature: peerSignatureOf(verifier, 'teeWorker.register', { genesisHash: w.genesisHash }),
    });
  add(owner, 'storageHandler.buySpace', { gib: 1 }, [{ to: pot, amount: config.spacePrice }]);
  add(owner, 'oss.authorize', { operator: operator.address });
  for (const d of [sold, restored, kept, pending]) add(owner, 'fileBank.uploadDeclaration', d);
  for (const d of [sold, restored, kept])
    add(owner, 'fileBank.transferReport', {
      fid: d.fid,
      receipts: miners.slice(0, 12).map((m, i) => makeReceipt(m, d, i)),
    });
  add(owner, 'fileBank.generateRestoralOrder', { fid: restored.fid, index: 0 });
  add(owner, 'market.setTerms', { fid: sold.fid, readers: [], price: '5' });
  add(reader, 'market.request', { fid: sold.fid, readerKey: hex('fuzz/reader-key') }, [
    { to: owner.address, amount: 5n },
  ]);
  add(owner, 'provenance.createTask', {
    task: TASK,
    spec: hex('fuzz/spec'),
    admitted: [org.address, w.org2.address],
  });
  add(owner, 'provenance.setEndpoint', {
    task: TASK,
    url: 'http://127.0.0.1:8700',
    peerId: peerIdOf(owner),
    addrs: ['/ip4/127.0.0.1/tcp/8701'],
  });
  add(owner, 'provenance.admit', {
    task: TASK,
    account: org.address,
    identityKey: hex('fuzz/identity'),
    signature: toHex(org.sign(admissionMessage(w.genesisHash, TASK, hex('fuzz/identity')))),
  });
  add(owner, 'provenance.drawSeed', { task: TASK, round: 0, attempt: 0, cohort: hex('fuzz/cohort') });
  add(owner, 'provenance.recordRound', {
    task: TASK,
    round: 0,
    manifest: kept.fid, // the rules anchor only a manifest its coordinator stored
    digest: hex('fuzz/d0'),
  });
  add(miners[0]!, 'audit.commitIdle', { first: 0, roots: [hex('fuzz/idle')] });
  return steps;
}

/** The bad calls, built from the valid state's objects. */
function chainCases(w: World): fc.Arbitrary<FuzzCase<ChainInput>> {
  const steps = scenario(w);
  const { miners, owner, stranger, org2, verifier, reader, config } = w;
  const [sold, restored, kept, pending] = [
    decl('fuzz/sold', owner.address, true),
    decl('fuzz/restored', owner.address),
    decl('fuzz/kept', owner.address),
    decl('fuzz/pending', owner.address),
  ];
  const newMiner = miners[12]!;
  const c = <N extends CallName>(
    variant: Variant,
    label: string,
    caller: Account,
    name: N,
    args: CallArgs<N>,
    payments?: Payment[],
  ): FuzzCase<ChainInput> =>
    fuzzCase(variant, `${name}: ${label}`, {
      caller: caller.address,
      payload: remark(name, args),
      ...(payments ? { payments } : {}),
    });
  /** A round anchored by `caller`, naming `manifest`, of the fuzz task unless `task` says otherwise. */
  const anchor = (
    variant: Variant,
    label: string,
    caller: Account,
    round: number,
    manifest: string,
    task = TASK,
  ) =>
    c(variant, label, caller, 'provenance.recordRound', { task, round, manifest, digest: hex(`d${round}`) });
  const receipts = (d: typeof pending, sign: (m: Account, i: number) => ReturnType<typeof makeReceipt>) => ({
    fid: d.fid,
    receipts: miners.slice(0, 12).map((m, i) => sign(m, i)),
  });
  const admitArgs = (signer: Account, o: { genesis?: string; task?: string; key?: string } = {}) => ({
    task: TASK,
    account: org2.address,
    identityKey: hex('fuzz/identity2'),
    signature: toHex(
      signer.sign(
        admissionMessage(o.genesis ?? w.genesisHash, o.task ?? TASK, o.key ?? hex('fuzz/identity2')),
      ),
    ),
  });
  const zeros = '0'.repeat(128);
  const register = (signer?: Account) => ({
    peerId: peerIdOf(newMiner),
    addrs: ['/ip4/127.0.0.1/tcp/4002'],
    capacity: 1 << 30,
    collateral: config.minCollateral.toString(),
    peerSignature:
      signer === undefined
        ? zeros
        : peerSignatureOf(newMiner, 'sminer.register', { signer, genesisHash: w.genesisHash }),
  });
  const collateral = [{ to: config.pot, amount: config.minCollateral }];
  const targeted: FuzzCase<ChainInput>[] = [
    // Replayed: every valid call of the state again, by the same caller with the same payment. Some calls are
    // repeatable by design and only noise here: an endpoint or terms set again, space bought again, a key requested
    // again (each paid request is a retrieval of its own), and a declaration of a file not yet complete (it replaces it).
    ...steps.map((s) =>
      fuzzCase(
        'replayed',
        `${s.name} again${s.name === 'fileBank.uploadDeclaration' ? ` (${(s.args as { name: string }).name})` : ''}`,
        {
          caller: s.caller.address,
          payload: rawRemark({ call: s.name, args: s.args }),
          ...(s.payments ? { payments: s.payments } : {}),
        },
        !REPEATABLE.has(s.name) && (s.args as { fid?: string }).fid !== pending.fid,
      ),
    ),
    // The wrong caller.
    c('wrong-caller', 'a stranger deletes a file', stranger, 'fileBank.deleteFile', { fid: kept.fid }),
    c('wrong-caller', 'a miner deletes a file', miners[1]!, 'fileBank.deleteFile', { fid: kept.fid }),
    anchor('wrong-caller', 'a stranger records a round', stranger, 1, kept.fid),
    c('wrong-caller', 'a stranger moves the endpoint', stranger, 'provenance.setEndpoint', {
      task: TASK,
      url: 'http://evil.example',
      peerId: peerIdOf(stranger),
      addrs: ['/ip4/10.0.0.1/tcp/1'],
    }),
    c('wrong-caller', 'a stranger stops the task', stranger, 'provenance.stopTask', { task: TASK }),
    c('wrong-caller', 'a stranger admits itself', stranger, 'provenance.setAdmitted', {
      task: TASK,
      add: [stranger.address],
      remove: [],
    }),
    c('wrong-caller', 'a stranger draws a seed', stranger, 'provenance.drawSeed', {
      task: TASK,
      round: 1,
      attempt: 0,
      cohort: hex('c'),
    }),
    c('wrong-caller', 'a stranger sets terms', stranger, 'market.setTerms', {
      fid: sold.fid,
      readers: [stranger.address],
      price: null,
    }),
    c('wrong-caller', 'a stranger grants the key', stranger, 'market.grant', {
      fid: sold.fid,
      reader: reader.address,
      wrap: { recipient: hex('fuzz/reader-key'), ephemeral: hex('e'), sealed: 'ab'.repeat(48) },
    }),
    c('wrong-caller', 'a stranger updates miner addresses', stranger, 'sminer.updateAddrs', { addrs: [] }),
    c('wrong-caller', 'a stranger exits as a miner', stranger, 'sminer.exit', {}),
    c('wrong-caller', 'a stranger updates verifier addresses', stranger, 'teeWorker.updateAddrs', {
      addrs: [],
    }),
    c('wrong-caller', 'a stranger registers as a verifier', stranger, 'teeWorker.register', {
      peerId: peerIdOf(stranger),
      addrs: [],
      podr2Key: 'cd'.repeat(32),
      peerSignature: peerSignatureOf(stranger, 'teeWorker.register', { genesisHash: w.genesisHash }),
    }),
    c('wrong-caller', 'a stranger claims a restoral order', stranger, 'fileBank.claimRestoralOrder', {
      fid: restored.fid,
      index: 0,
    }),
    c(
      'wrong-caller',
      'the column-0 miner claims its own lost column',
      miners[0]!,
      'fileBank.claimRestoralOrder',
      {
        fid: restored.fid,
        index: 0,
      },
    ),
    c('wrong-caller', 'a stranger orders a restoral', stranger, 'fileBank.generateRestoralOrder', {
      fid: kept.fid,
      index: 1,
    }),
    c('wrong-caller', 'a stranger holds a legal hold', stranger, 'fileBank.putLegalHold', {
      fid: kept.fid,
      on: true,
    }),
    c('wrong-caller', 'a stranger creates a bucket for the owner', stranger, 'fileBank.createBucket', {
      name: 'fuzz-bucket',
      owner: owner.address,
    }),
    c('wrong-caller', 'a stranger authorises itself for the owner', stranger, 'oss.cancelAuthorize', {
      operator: w.operator.address,
    }),
    c('wrong-caller', 'a stranger pays out the pot', stranger, 'pot.payout', { debts: ['0000000000'] }),
    c('wrong-caller', 'a stranger releases idle space', stranger, 'audit.releaseIdle', { count: 1 }),
    // Unsigned: signatures of zeros where a key's signature belongs.
    c(
      'unsigned',
      'receipts of zeros',
      owner,
      'fileBank.transferReport',
      receipts(pending, (m, i) => ({ index: i, miner: m.address, signature: zeros })),
    ),
    c('unsigned', 'an admission of zeros', owner, 'provenance.admit', {
      ...admitArgs(org2),
      signature: zeros,
    }),
    c(
      'unsigned',
      'a registration without a peer signature',
      newMiner,
      'sminer.register',
      register(),
      collateral,
    ),
    c('unsigned', 'a tag report of zeros', miners[1]!, 'fileBank.calculateReport', {
      fid: kept.fid,
      index: 1,
      verifier: verifier.address,
      signature: zeros,
    }),
    c('unsigned', 'an audit result of zeros', verifier, 'audit.submitResult', {
      miner: miners[0]!.address,
      challenge: 0,
      proof: hex('p'),
      verifier: verifier.address,
      signature: zeros,
    }),
    // Wrongly signed: a valid signature by another key, or of another message.
    c('wrongly-signed', 'an admission signed by a stranger', owner, 'provenance.admit', admitArgs(stranger)),
    c(
      'wrongly-signed',
      'an admission for another chain',
      owner,
      'provenance.admit',
      admitArgs(org2, { genesis: `0x${hex('other chain')}` }),
    ),
    c(
      'wrongly-signed',
      'an admission for another task',
      owner,
      'provenance.admit',
      admitArgs(org2, { task: 'other-task' }),
    ),
    c(
      'wrongly-signed',
      'an admission of another key',
      owner,
      'provenance.admit',
      admitArgs(org2, { key: hex('other key') }),
    ),
    c(
      'wrongly-signed',
      'receipts signed by the next miner',
      owner,
      'fileBank.transferReport',
      receipts(pending, (_m, i) => ({
        ...makeReceipt(miners[(i + 1) % 12]!, pending, i),
        miner: miners[i]!.address,
      })),
    ),
    c(
      'wrongly-signed',
      'receipts for another file',
      owner,
      'fileBank.transferReport',
      receipts(pending, (m, i) => makeReceipt(m, pending, i, { fid: kept.fid })),
    ),
    c(
      'wrongly-signed',
      'receipts of other columns',
      owner,
      'fileBank.transferReport',
      receipts(pending, (m, i) => makeReceipt(m, pending, i, { index: (i + 1) % 12 })),
    ),
    c(
      'wrongly-signed',
      "a registration signed by another miner's peer key",
      newMiner,
      'sminer.register',
      register(miners[1]!),
      collateral,
    ),
    c('wrongly-signed', 'a tag report signed by a miner', miners[1]!, 'fileBank.calculateReport', {
      fid: kept.fid,
      index: 1,
      verifier: verifier.address,
      signature: toHex(miners[1]!.sign(new TextEncoder().encode('tag report'))),
    }),
    // Out of order: a step before the one it needs.
    anchor('out-of-order', 'round 2 before round 1', owner, 2, kept.fid),
    // A round named after a manifest the network does not hold, or not as the coordinator's own.
    anchor('out-of-order', 'a round whose manifest nobody stored', owner, 1, hex('m1')),
    anchor('out-of-order', 'a round whose manifest no miner reported yet', owner, 1, pending.fid),
    c('out-of-order', 'a seed for round 3', owner, 'provenance.drawSeed', {
      task: TASK,
      round: 3,
      attempt: 0,
      cohort: hex('c3'),
    }),
    c('out-of-order', 'a statistics seed after round 0', owner, 'provenance.drawSeed', {
      task: TASK,
      round: -1,
      attempt: 0,
      cohort: hex('c'),
    }),
    anchor('out-of-order', 'a round of a task never created', owner, 0, kept.fid, 'no-such-task'),
    c(
      'out-of-order',
      'an admission to a task never created',
      owner,
      'provenance.admit',
      admitArgs(org2, { task: 'no-such-task' }),
    ),
    c(
      'out-of-order',
      'a report of a file never declared',
      owner,
      'fileBank.transferReport',
      receipts(decl('fuzz/never', owner.address), (m, i) =>
        makeReceipt(m, decl('fuzz/never', owner.address), i),
      ),
    ),
    c('out-of-order', 'a claim of an order never opened', miners[12]!, 'fileBank.claimRestoralOrder', {
      fid: kept.fid,
      index: 2,
    }),
    c('out-of-order', 'a restoral completed before its claim', miners[12]!, 'fileBank.restoralComplete', {
      fid: restored.fid,
      index: 0,
    }),
    c('out-of-order', 'a grant with no request', owner, 'market.grant', {
      fid: sold.fid,
      reader: w.org.address,
      wrap: { recipient: hex('r'), ephemeral: hex('e'), sealed: 'ab'.repeat(48) },
    }),
    c('out-of-order', 'a request for an unencrypted file', reader, 'market.request', {
      fid: kept.fid,
      readerKey: hex('k'),
    }),
    c('out-of-order', 'a terms change of a file never declared', owner, 'market.setTerms', {
      fid: hex('nothing'),
      readers: [],
      price: null,
    }),
    c('out-of-order', 'a deletion of a file never declared', owner, 'fileBank.deleteFile', {
      fid: hex('nothing'),
    }),
    c('out-of-order', 'releasing more idle space than committed', miners[0]!, 'audit.releaseIdle', {
      count: 5,
    }),
    c('out-of-order', 'idle files committed out of sequence', miners[0]!, 'audit.commitIdle', {
      first: 7,
      roots: [hex('i7')],
    }),
    c('out-of-order', 'a payout of a debt never owed', owner, 'pot.payout', { debts: ['0000009999'] }),
    c('out-of-order', 'an audit result for no challenge', verifier, 'audit.submitResult', {
      miner: miners[0]!.address,
      challenge: 99,
      proof: hex('p'),
      verifier: verifier.address,
      signature: toHex(verifier.sign(new TextEncoder().encode('result'))),
    }),
    c('out-of-order', 'a retention on a file never declared', owner, 'fileBank.putRetention', {
      fid: hex('nothing'),
      retention: { mode: 'GOVERNANCE', until: 2_000_000_000_000 },
    }),
    c('out-of-order', 'segments for a declaration never made', owner, 'fileBank.declareSegments', {
      fid: hex('nothing'),
      deal: hex('deal').slice(0, 32),
      segments: pending.segments,
    }),
    c('out-of-order', 'a delete marker in a bucket never created', owner, 'fileBank.putDeleteMarker', {
      bucket: 'no-bucket',
      key: 'k',
    }),
    c('out-of-order', 'a bucket deleted before it exists', owner, 'fileBank.deleteBucket', {
      name: 'no-bucket',
    }),
    c('out-of-order', 'versioning of a bucket never created', owner, 'fileBank.putVersioning', {
      name: 'no-bucket',
      status: 'Enabled',
    }),
    c('out-of-order', 'object lock of a bucket never created', owner, 'fileBank.putObjectLock', {
      name: 'no-bucket',
      defaultRetention: null,
    }),
    c('out-of-order', 'a delete marker removed that never was', owner, 'fileBank.removeDeleteMarker', {
      bucket: 'no-bucket',
      key: 'k',
      versionId: 'v1',
    }),
    // Duplicated: one thing twice inside one call.
    c(
      'duplicated',
      'every receipt for column 0',
      owner,
      'fileBank.transferReport',
      receipts(pending, (m) => makeReceipt(m, pending, 0)),
    ),
    c(
      'duplicated',
      "one miner's receipt for every column",
      owner,
      'fileBank.transferReport',
      receipts(pending, (_m, i) => makeReceipt(miners[0]!, pending, i)),
    ),
    c('duplicated', 'an account added and removed', owner, 'provenance.setAdmitted', {
      task: TASK,
      add: [stranger.address],
      remove: [stranger.address],
    }),
    c('duplicated', 'a file declared again under a new deal', owner, 'fileBank.uploadDeclaration', {
      ...kept,
      deal: hex('other deal').slice(0, 32),
    }),
    // Unpaid: a call whose price was not paid in the same extrinsic.
    c('unsigned', 'space bought without paying', stranger, 'storageHandler.buySpace', { gib: 1 }),
    c('unsigned', 'a miner registered without collateral', newMiner, 'sminer.register', {
      ...register(),
      peerSignature: peerSignatureOf(newMiner, 'sminer.register', { genesisHash: w.genesisHash }),
    }),
    c('unsigned', 'a paid request without paying', stranger, 'market.request', {
      fid: sold.fid,
      readerKey: hex('k'),
    }),
  ];
  // Malformed arguments: each valid call with one field of another type or one unknown field (every schema is strict).
  const malformedArgs = fc.constantFrom(...steps).chain((s) => {
    const args = s.args as Json;
    const paths = pathsOf(args);
    const objects: (readonly (string | number)[])[] = [
      [],
      ...paths.filter((p) => {
        let at: Json = args;
        for (const k of p) at = (at as Record<string, Json>)[k] as Json;
        return at !== null && typeof at === 'object' && !Array.isArray(at);
      }),
    ];
    type Mutation = { label: string; args: Json; strict: boolean };
    const arbs: fc.Arbitrary<Mutation>[] = [
      fc
        .tuple(fc.constantFrom(...objects), fc.string({ minLength: 1, maxLength: 8 }))
        .filter(([, k]) => k !== '__proto__')
        .map(([p, k]) => ({
          label: `unknown field ${JSON.stringify(k)} in ${p.join('.') || 'args'}`,
          args: withPath(args, [...p, k], 1),
          strict: true,
        })),
    ];
    if (paths.length > 0)
      arbs.push(
        fc.constantFrom(...paths).chain((p) => {
          let at: Json = args;
          for (const k of p) at = (at as Record<string, Json>)[k] as Json;
          // null may be a valid value of a nullable field (price, encryption): noise then.
          return otherType(at).map((v) => ({
            label: `${p.join('.')} = ${JSON.stringify(v).slice(0, 40)}`,
            args: withPath(args, p, v),
            strict: v !== null,
          }));
        }),
      );
    return fc.oneof(...arbs).map((m) =>
      fuzzCase(
        'malformed',
        `${s.name}: ${m.label}`,
        {
          caller: s.caller.address,
          payload: rawRemark({ call: s.name, args: m.args }),
          ...(s.payments ? { payments: s.payments } : {}),
        },
        m.strict,
      ),
    );
  });
  const good = remark('provenance.recordRound', {
    task: TASK,
    round: 1,
    manifest: kept.fid,
    digest: hex('d1'),
  });
  const encoding: fc.Arbitrary<FuzzCase<ChainInput>> = fc.oneof(
    fc.integer({ min: 0, max: good.byteLength - 2 }).map((k) =>
      fuzzCase('truncated', `remark cut at ${k} bytes`, {
        caller: owner.address,
        payload: good.slice(0, k),
      }),
    ),
    fc
      .integer({ min: 0, max: 255 })
      .filter((v) => v !== REMARK_VERSION)
      .map((v) =>
        fuzzCase('malformed', `version ${v}`, {
          caller: owner.address,
          payload: rawRemark(JSON.parse(new TextDecoder().decode(good.subarray(5))), v),
        }),
      ),
    fc.integer({ min: MAX_REMARK_BYTES + 1 - 200, max: MAX_REMARK_BYTES * 2 }).map((n) =>
      fuzzCase('oversized', `a ${n}-byte remark`, {
        caller: owner.address,
        payload: rawRemark({ call: 'provenance.stopTask', args: { task: TASK, reason: 'x'.repeat(n) } }),
      }),
    ),
    fc.uint8Array({ maxLength: 64 }).map((b) =>
      fuzzCase('malformed', 'not UTF-8', {
        caller: owner.address,
        payload: new Uint8Array([...rawRemark(''), 0xff, 0xfe, ...b]),
      }),
    ),
    fc
      .constantFrom('[]', 'null', '"x"', '{"call":1}', '{"args":{}}', '{"call":"provenance.recordRound"}')
      .map((t) => fuzzCase('malformed', `body ${t}`, { caller: owner.address, payload: rawRemark(t) })),
    fc.constant(
      fuzzCase('malformed', 'an extra field beside call and args', {
        caller: owner.address,
        payload: rawRemark({ call: 'provenance.stopTask', args: { task: TASK }, extra: 1 }),
      }),
    ),
    fc
      .string({ maxLength: 40 })
      .filter((n) => !Object.hasOwn(CALL_SCHEMAS, n))
      .map((n) =>
        fuzzCase('malformed', `unknown call ${JSON.stringify(n)}`, {
          caller: owner.address,
          payload: rawRemark({ call: n, args: {} }),
        }),
      ),
    fc.constantFrom('__proto__', 'constructor', 'toString', 'hasOwnProperty').map((n) =>
      fuzzCase('malformed', `call named ${n}`, {
        caller: owner.address,
        payload: rawRemark({ call: n, args: {} }),
      }),
    ),
    // Noise: any call with random arguments from anyone (may by chance be valid).
    fc
      .tuple(
        fc.constantFrom(...(Object.keys(CALL_SCHEMAS) as CallName[])),
        fc.jsonValue(),
        fc.constantFrom(owner, stranger, miners[0]!, verifier),
      )
      .map(([name, args, who]) =>
        fuzzCase(
          'malformed',
          `${name} with random arguments`,
          { caller: who.address, payload: rawRemark({ call: name, args }) },
          false,
        ),
      ),
  );
  return fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...targeted) },
    { weight: 2, arbitrary: malformedArgs },
    { weight: 2, arbitrary: encoding },
  );
}

function chainEdge(
  name: string,
  makeShell: (config: ProtocolConfig, accounts: readonly Account[]) => Promise<ChainShell>,
  config: (w: Omit<World, 'config' | 'genesisHash'>) => ProtocolConfig,
): Edge<ChainInput> {
  let shell: ChainShell | undefined;
  let world: World | undefined;
  // A rejected call that paid the pot leaves one write by design: the pot's debt to refund it (pallets/pot.ts).
  let paidPot = false;
  return {
    name,
    cases: () => chainCases(world!),
    async setup() {
      await accountsReady();
      const miners = makeAccounts('fuzz/miner', 13);
      const [owner, operator, reader, verifier, org, org2, stranger] = makeAccounts('fuzz/user', 7) as [
        Account,
        Account,
        Account,
        Account,
        Account,
        Account,
        Account,
      ];
      const base = { miners, owner, operator, reader, verifier, org, org2, stranger };
      const protocol = config(base);
      shell = await makeShell(protocol, [...miners, owner, operator, reader, verifier, org, org2, stranger]);
      world = { ...base, config: protocol, genesisHash: shell.genesisHash };
      for (const s of scenario(world)) {
        try {
          await shell.submit({
            caller: s.caller.address,
            payload: rawRemark({ call: s.name, args: s.args }),
            ...(s.payments ? { payments: s.payments } : {}),
          });
        } catch (err) {
          throw new Error(
            `${name}: the valid state could not be built: ${s.name} was refused (${(err as Error).message})`,
          );
        }
      }
      await shell.snapshot();
    },
    async stage(input) {
      paidPot = (input.payments ?? []).some((p) => p.to === world!.config.pot && p.amount > 0n);
    },
    apply: (input) => shell!.submit(input),
    digest: async () => stateDigest(shell!.state(), paidPot ? 'pot/' : undefined),
    restore: () => shell!.restore(),
    async teardown() {
      await shell?.close();
    },
  };
}

/** Hooks kept quiet (no verifiers, so no challenges; deadlines out of reach), for shells that run them. */
const quietConfig = (): ProtocolConfig => ({
  ...CONFIG,
  requestExpiryBlocks: 1_000_000,
  restoralClaimBlocks: 1_000_000,
  audit: { ...CONFIG.audit, tagDeadlineBlocks: 1_000_000 },
});

/** The remark edges through the real dev chain (long profile only: `npm run fuzz -- --devchain`). */
export const devChainEdge = (): Edge<ChainInput> => chainEdge('chain:devchain', devChainShell, quietConfig);

export const chainEdges = (): Edge<ChainInput>[] => [
  chainEdge('chain:rules', rulesShell, (w) => ({ ...CONFIG, verifiers: [w.verifier.address] })),
  // Block hooks run on the indexer: no verifiers (no challenges) and deadlines out of reach keep them quiet.
  chainEdge('chain:indexer', indexerShell, quietConfig),
];
