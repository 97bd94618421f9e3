import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Keyring } from '@polkadot/keyring';
import { bnToU8a, hexToU8a, u8aConcat, u8aToBigInt, u8aToHex } from '@polkadot/util';
import { blake2AsU8a, xxhashAsU8a } from '@polkadot/util-crypto';
import Database from 'better-sqlite3';
import { accountsReady, offChainMessage, SS58_PREFIX } from '../shared/account.ts';
import { AilinkError } from '../shared/errors.ts';
import { makePrivateDir } from '../shared/private-files.ts';

/** The well-known development accounts, funded at genesis. */
export const DEV_ACCOUNTS = ['Alice', 'Bob', 'Charlie', 'Dave', 'Eve', 'Ferdie'] as const;
export type DevAccountName = (typeof DEV_ACCOUNTS)[number];

/** 10^6 ROC (12 decimals) per dev account: enough to fund every miner and organisation of a local network. */
const DEV_FUNDS = 10n ** 18n;

export interface DevChainOptions {
  /** 0 picks a free port. */
  readonly port: number;
  /** The address to bind (default 127.0.0.1): another host's address, e.g. inside a network namespace. */
  readonly host?: string;
  /** Where blocks are kept; a second start on the same folder resumes at the same head. Absent: in memory only. */
  readonly dataDir?: string;
  /** `batch` seals the transactions that arrive within ~100 ms into one block; `instant` one block per transaction. */
  readonly blockMode?: 'batch' | 'instant';
  /**
   * Seal an empty block when none was sealed for this long, as a real chain's slots do. chopsticks only builds blocks
   * for transactions; without a heartbeat, block-timed rules (audit deadlines, restoral claims) stand still.
   */
  readonly heartbeatMs?: number;
}

export interface DevChain {
  /** ws://127.0.0.1:PORT */
  readonly endpoint: string;
  /** The head's number right after start: 1 on a new chain (genesis mode seals #1 at start), the saved height on a resumed one. */
  readonly startHeight: number;
  readonly resumed: boolean;
  /** Seals a block now (for tests that need time to pass on chain). */
  newBlock(): Promise<void>;
  /** Waits for blocks being built and their write to the data dir, then stops serving. */
  close(): Promise<void>;
}

/**
 * A real Substrate runtime (the Rococo Asset Hub wasm shipped in @substrate/connect-known-chains) executed by
 * chopsticks in genesis mode: no upstream node, no network. Bound to 127.0.0.1 unless `host` says otherwise.
 *
 * Persistence: chopsticks' `db` + `resume`. Dev balances live in the genesis state (see `withDevBalances`). Genesis
 * mode builds a fresh block #1 at every start, which on a resume would overwrite the saved #1 and orphan block #2, so
 * that block is neither saved nor kept. Closing first awaits `upcomingBlocks()`: chopsticks announces a block before
 * it has written it, so closing straight away could lose the newest block.
 */
export async function startDevChain(options: DevChainOptions): Promise<DevChain> {
  // chopsticks reads its log level once, when it is first loaded; it logs every block at info level.
  process.env.LOG_LEVEL ??= 'error';
  // chopsticks also draws a ` ⠋ Fetching` spinner on stdout whenever it reads storage, decided once when its logger
  // module loads: `process.stdout.isTTY && !CI && !TEST`. That spinner is for its own CLI; in ours it scribbles over
  // the demo's table, so stdout looks like no terminal while chopsticks loads (setting CI or TEST would tell every
  // other library the same).
  const tty = Object.getOwnPropertyDescriptor(process.stdout, 'isTTY');
  Object.defineProperty(process.stdout, 'isTTY', { value: false, configurable: true });
  const [{ setupWithServer }, { chainSpec }] = await Promise.all([
    import('@acala-network/chopsticks'),
    import('@substrate/connect-known-chains/rococo_v2_2_asset_hub'),
  ]).finally(() => {
    if (tty) Object.defineProperty(process.stdout, 'isTTY', tty);
    else delete (process.stdout as { isTTY?: boolean }).isTTY;
  });
  const genesis = await withDevBalances(JSON.parse(chainSpec));
  const genesisCode = genesis.genesis.raw.top[CODE_KEY];
  let db: string | undefined;
  let resume = false;
  if (options.dataDir !== undefined) {
    makePrivateDir(resolve(options.dataDir));
    db = join(resolve(options.dataDir), 'chain.sqlite');
    resume = existsSync(db);
    // A data dir saved before blocks were stored without their runtime: drop it now, before chopsticks loads them.
    if (resume && genesisCode !== undefined) dropUnchangedCode(db, genesisCode);
  }
  const config: Parameters<typeof setupWithServer>[0] = {
    genesis,
    port: options.port,
    host: options.host ?? '127.0.0.1',
    'build-block-mode': options.blockMode === 'instant' ? 'Instant' : 'Batch',
    ...(db === undefined ? {} : { db }),
    // Genesis mode always builds a block #1 at start; on a resume that block must not replace the saved #1.
    ...(resume ? { resume: true, 'save-blocks': false } : {}),
  } as Parameters<typeof setupWithServer>[0];
  const ctx = await setupWithServer(config);
  const chain = ctx.chain;
  const store = chain.db;
  if (store !== undefined) {
    // Every block is saved without a runtime equal to its parent's (see `dropUnchangedCode`).
    const save = store.saveBlock.bind(store);
    store.saveBlock = async (block) => {
      const code = block.storageDiff?.[CODE_KEY];
      if (code === undefined || block.storageDiff === null) return save(block);
      const parent = block.parentHash === null ? undefined : await chain.getBlock(block.parentHash);
      const parentCode = parent === undefined ? genesisCode : await parent.wasm;
      if (code !== parentCode) return save(block); // a runtime upgrade: that block must carry its new code
      const { [CODE_KEY]: _unchanged, ...rest } = block.storageDiff;
      return save({ ...block, storageDiff: rest });
    };
  }
  // Durable before announced: chopsticks makes a block the head (telling every subscriber it is final) and only then
  // writes it, so a crash in between took back a block clients had seen finalized (bench:chaos kills the chain).
  // Written first, a crash at worst loses a block nobody was told of.
  chain.onNewBlock = async (block) => {
    await chain.saveBlockToDB(block);
    await chain.setHead(block);
  };
  if (resume) {
    // Saving was off only for the start-up block; the field is typed read-only but is a plain property.
    (chain as { saveBlocks: boolean }).saveBlocks = true;
    const stray = await chain.getBlockAt(1);
    const saved = await chain.db?.queryBlockByNumber(1);
    if (stray !== undefined && saved && stray.hash !== saved.hash && stray.hash !== chain.head.hash) {
      await chain.unregisterBlock(stray);
    }
  }
  let heartbeat: NodeJS.Timeout | undefined;
  if (options.heartbeatMs !== undefined) {
    let seen = chain.head.number;
    let sealing = false;
    heartbeat = setInterval(() => {
      if (sealing) return;
      if (chain.head.number !== seen) {
        seen = chain.head.number;
        return;
      }
      sealing = true;
      chain
        .newBlock()
        .catch(() => {})
        .finally(() => {
          seen = chain.head.number;
          sealing = false;
        });
    }, options.heartbeatMs);
  }
  return {
    endpoint: `ws://${ctx.addr}`,
    startHeight: chain.head.number,
    resumed: resume,
    async newBlock() {
      await chain.newBlock();
    },
    async close() {
      clearInterval(heartbeat);
      await chain.upcomingBlocks();
      await ctx.close();
    },
  };
}

/** The storage key of the runtime's wasm: hex of `:code`. */
const CODE_KEY = '0x3a636f6465';

/**
 * Removes, from every saved block of a chopsticks database, a runtime (`:code`) equal to the one its parent runs, and
 * returns how many blocks it rewrote.
 *
 * Why (issue 18 §0, measured here): chopsticks saved the 1.2 MB runtime (hex) with every block that carried a
 * transaction — 275 of a demo's 282 blocks, none of 60 empty ones; its storage layers keep values read from a parent
 * in the block's own layer (`StorageLayer#cacheParentValue`), so a read ends up in the saved diff. The demo's 226
 * blocks made a 268 MB chain.sqlite. On resume chopsticks takes each block whose diff holds `:code` for a runtime
 * upgrade (it drops the runtime version and metadata inherited from the parent), and the first runtime call at the
 * head then took 35–45 s instead of 0.1–0.2 s: every connecting client's `state_getMetadata`, past the 15 s connect
 * deadline. The cost grows with the number of such blocks (10: 1.2 s; 282: 35–45 s); with `:code` removed, 0.2 s.
 * A block then reads `:code` from its parent, the same bytes; a block whose runtime differs from its parent's keeps
 * it. Tracked per parent hash, so forks saved in the database are handled too. A demo's 282 blocks: 1.7 s.
 * @throws INVALID_INPUT when the database cannot be rewritten (e.g. another process holds it)
 */
function dropUnchangedCode(path: string, genesisCode: string): number {
  let db: Database.Database | undefined;
  try {
    db = new Database(path);
    return dropIn(db, genesisCode);
  } catch (cause) {
    throw new AilinkError(
      'INVALID_INPUT',
      `expected a chain database at ${path} that this process can rewrite, got: ${(cause as Error).message}; is another \`ailink dev\` or \`ailink chain\` running on this data dir?`,
      { cause },
    );
  } finally {
    db?.close();
  }
}

function dropIn(db: Database.Database, genesisCode: string): number {
  const columns = db.prepare("SELECT name FROM pragma_table_info('block')").all() as { name: string }[];
  if (!columns.some((c) => c.name === 'storageDiff')) return 0; // not the chopsticks schema we know: leave it
  // One diff in memory at a time: an old data dir holds hundreds of them, 1.2 MB each.
  const rows = db
    .prepare(
      `SELECT hash, parentHash, instr(storageDiff, '"${CODE_KEY}"') > 0 AS withCode FROM block ORDER BY number`,
    )
    .all() as { hash: string; parentHash: string | null; withCode: number | null }[];
  const diffOf = db.prepare('SELECT storageDiff FROM block WHERE hash = ?').pluck();
  const update = db.prepare('UPDATE block SET storageDiff = ? WHERE hash = ?');
  // Distinct runtimes seen, and which one each block runs (an index, not a 1.2 MB string per block).
  const codes = [genesisCode];
  const runs = new Map<string, number>();
  let rewritten = 0;
  db.transaction(() => {
    for (const row of rows) {
      const parentRuns = (row.parentHash === null ? undefined : runs.get(row.parentHash)) ?? 0;
      runs.set(row.hash, parentRuns);
      if (!row.withCode) continue;
      const diff = JSON.parse(diffOf.get(row.hash) as string) as Record<string, string | null>;
      const code = diff[CODE_KEY];
      if (code === undefined) continue;
      if (code !== codes[parentRuns]) {
        runs.set(row.hash, codes.push(code ?? '') - 1);
        continue;
      }
      delete diff[CODE_KEY];
      update.run(JSON.stringify(diff), row.hash);
      rewritten++;
    }
  })();
  // Give the space back once (measured: 341 MB → 8 MB in 0.1 s); later starts find nothing to rewrite.
  if (rewritten > 0) db.exec('VACUUM');
  return rewritten;
}

/**
 * Writes the dev accounts' balances into the genesis state itself. chopsticks' `import-storage` would put them in a
 * block it never saves, so a resumed chain would lose every balance that no later block touched, and would report a
 * different genesis hash than the runtime checks transactions against.
 */
async function withDevBalances(spec: { genesis: { raw: { top: Record<string, string> } } }) {
  await accountsReady();
  const keyring = new Keyring({ type: 'sr25519', ss58Format: SS58_PREFIX });
  const top = { ...spec.genesis.raw.top };
  const u32 = (n: number) => bnToU8a(n, { bitLength: 32 });
  const u128 = (n: bigint) => bnToU8a(n, { bitLength: 128 });
  for (const name of DEV_ACCOUNTS) {
    const id = keyring.addFromUri(`//${name}`).publicKey;
    const key = u8aConcat(xxhashAsU8a('System', 128), xxhashAsU8a('Account', 128), blake2AsU8a(id, 128), id);
    // AccountInfo { nonce, consumers, providers: 1, sufficients, data: { free, reserved, frozen, flags } }
    top[u8aToHex(key)] = u8aToHex(
      u8aConcat(u32(0), u32(0), u32(1), u32(0), u128(DEV_FUNDS), u128(0n), u128(0n), u128(0n)),
    );
  }
  const issuanceKey = u8aToHex(u8aConcat(xxhashAsU8a('Balances', 128), xxhashAsU8a('TotalIssuance', 128)));
  const issued =
    top[issuanceKey] === undefined ? 0n : u8aToBigInt(hexToU8a(top[issuanceKey]), { isLe: true });
  top[issuanceKey] = u8aToHex(u128(issued + DEV_FUNDS * BigInt(DEV_ACCOUNTS.length)));
  return { ...spec, genesis: { ...spec.genesis, raw: { ...spec.genesis.raw, top } } };
}

/**
 * A dev account (`//Alice` …) as a transaction signer (`signTransaction`) and an off-chain signer (`sign`, over
 * `<Bytes>…</Bytes>` as an `Account` signs). Call `accountsReady()` first.
 */
export function devSigner(name: DevAccountName): {
  address: string;
  sign(message: Uint8Array): Uint8Array;
  signTransaction(payload: Uint8Array): Uint8Array;
} {
  const pair = new Keyring({ type: 'sr25519', ss58Format: SS58_PREFIX }).addFromUri(`//${name}`);
  return {
    address: pair.address,
    sign: (message) => pair.sign(offChainMessage(message)),
    signTransaction: (payload) => pair.sign(payload),
  };
}
