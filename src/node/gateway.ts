import { existsSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { MAX_DECLARED_SEGMENTS } from '../chain/index.ts';
import {
  ALTDA_PREFIX,
  buildS3App,
  createChainNamespace,
  DEFAULT_MAX_BLOB_BYTES,
  DEFAULT_MAX_OPEN_UPLOADS,
  DEFAULT_MAX_STAGED_BYTES,
  DEFAULT_UPLOAD_EXPIRY_MS,
  diskUploadStore,
  MARKET_PREFIX,
  registerAltDa,
  registerDeoss,
  registerMarket,
  type S3Credentials,
  WEB_PREFIX,
} from '../gateway/index.ts';
import type { Account } from '../shared/account.ts';
import { toHex } from '../shared/bytes.ts';
import type { Clock, Random } from '../shared/clock.ts';
import { AilinkError } from '../shared/errors.ts';
import { makePrivateDir, readPrivateFileSync, writePrivateFileSync } from '../shared/private-files.ts';
import { createCodecPool, createGrantService } from '../storage/index.ts';
import { openSession, ROLE_CHAIN_WAIT_MS, SESSION_DEADLINES, type SessionConfig } from './session.ts';

/**
 * `ailink gateway`: the account's objects over HTTP for ordinary tools (issue 16), run where the account's keys are,
 * so objects are sealed and opened here and no key leaves the organisation. One S3 access key per data dir, made at
 * the first start; once the server listens, DIR/gateway.json tells clients where and how (0600: it holds the secret).
 * The DeOSS API is served by the same server under /deoss (signed by the account itself), its resumable uploads
 * staged in DIR/deoss; the drive page at /_ailink/ (buildS3App serves it).
 */

export interface GatewayNodeOptions {
  readonly session: SessionConfig;
  readonly account: Account;
  readonly dataDir: string;
  readonly host: string;
  readonly port: number;
  /** The region clients sign for (default "ailink"). */
  readonly region?: string;
  /** Virtual-host requests address `<bucket>.<domain>` (default "localhost"). */
  readonly domain?: string;
  /** The Alt-DA API under /altda (always served; these settle who may put and how much). */
  readonly altda?: {
    /** Remote addresses puts are taken from (default loopback only); "*" for any. */
    readonly putFrom?: readonly string[];
    /** When set, puts must carry `Authorization: Bearer <token>`. */
    readonly putToken?: string;
    /** The largest blob (default 16 MiB). */
    readonly maxBlobBytes?: number;
  };
  /** The largest object one DeOSS upload takes (default 5 GiB). */
  readonly maxObjectBytes?: number;
  /** S3 multipart uploads staged in DIR/uploads until completed. */
  readonly multipart?: {
    /** The most bytes their parts may hold together, on this gateway (default 16 GiB). */
    readonly maxStagedBytes?: number;
    /** The most uploads open at once, on this gateway (default 1,000). */
    readonly maxOpenUploads?: number;
    /** Uploads with no part and no ListParts for this long are aborted (default 7 days). */
    readonly expiryMs?: number;
  };
  /**
   * Run the account's key service, releasing the data keys of its objects to accepted marketplace requests (default
   * true: what the /market API sells is then delivered without `ailink object serve-keys` beside it).
   */
  readonly serveKeys?: boolean;
}

export interface GatewayNode {
  readonly url: string;
  /** The Alt-DA DA-server base URL (op-node's --altda.da-server). */
  readonly altda: string;
  /** The drive page: a browser signs in with the S3 access key. */
  readonly drive: string;
  readonly infoPath: string;
  readonly credentials: S3Credentials;
  stop(): Promise<void>;
}

/** What DIR/gateway.json holds: where the gateway listens and the S3 settings a client needs. */
export const GatewayInfoSchema = z
  .object({
    url: z.string().url(),
    /** The Alt-DA DA-server base URL; absent in files written before it was served. */
    altda: z.string().url().optional(),
    /** The drive page (browse, upload, share, play), signed in with `s3`'s key; absent in older files. */
    drive: z.string().url().optional(),
    /** The marketplace API's base URL (`<url>/market`), signed with `s3`'s key; absent in older files. */
    market: z.string().url().optional(),
    s3: z.object({ accessKeyId: z.string(), secretAccessKey: z.string(), region: z.string() }).strict(),
    /** The DeOSS API's base URL (`<url>/deoss`); its requests are signed by the gateway's account. */
    deoss: z.object({ url: z.string().url(), account: z.string() }).strict(),
  })
  .strict();
export type GatewayInfo = z.infer<typeof GatewayInfoSchema>;

const CredentialsSchema = z
  .object({ accessKeyId: z.string().min(16), secretAccessKey: z.string().min(32) })
  .strict();

/** The data dir's access key, made once: tools configured with it keep working across restarts. */
function credentialsIn(dataDir: string, random: Random): S3Credentials {
  const path = join(dataDir, 's3-credentials.json');
  if (existsSync(path)) {
    const parsed = CredentialsSchema.safeParse(JSON.parse(readPrivateFileSync(path).toString('utf8')));
    if (!parsed.success) {
      throw new AilinkError(
        'KEY_FILE_INVALID',
        `${path} is not a gateway access key file; remove it to make a new key`,
      );
    }
    return parsed.data;
  }
  const credentials = {
    accessKeyId: `AKAL${toHex(random(8)).toUpperCase()}`,
    secretAccessKey: Buffer.from(random(30)).toString('base64url'),
  };
  writePrivateFileSync(path, `${JSON.stringify(credentials, null, 2)}\n`);
  return credentials;
}

export async function startGatewayNode(
  deps: { clock: Clock; random: Random; log?: (line: string) => void },
  options: GatewayNodeOptions,
): Promise<GatewayNode> {
  makePrivateDir(options.dataDir);
  const credentials = credentialsIn(options.dataDir, deps.random);
  const region = options.region ?? 'ailink';
  // One codec worker, not one per core: the gateway reads its own account's objects from their data columns (no
  // worker), and one worker codes a 32 MiB segment in well under a second, faster than miners take it; each further
  // worker is ≈ 25 MiB and a segment more of the memory budget (issue 16 §8: ≤ 256 MiB).
  const codec = createCodecPool({ threads: 1 });
  // Its index of the chain lives in its own data dir: two gateways of one account never share an index file.
  const session = await openSession(
    {
      ...options.session,
      stateDir: options.dataDir,
      chainWaitMs: options.session.chainWaitMs ?? ROLE_CHAIN_WAIT_MS,
    },
    options.account,
    'gateway',
    { ...deps, codec },
  ).catch(async (err: unknown) => {
    await codec.close();
    throw err;
  });
  try {
    const namespace = createChainNamespace(session, { deadlineMs: SESSION_DEADLINES.chainCallMs });
    // Every API refuses up front what one declaration could not name.
    const declarable = MAX_DECLARED_SEGMENTS * options.session.profile.segmentSize;
    const app = buildS3App({
      storage: session.storage,
      namespace,
      uploads: diskUploadStore(join(options.dataDir, 'uploads'), deps.random, {
        maxStagedBytes: options.multipart?.maxStagedBytes ?? DEFAULT_MAX_STAGED_BYTES,
        maxOpenUploads: options.multipart?.maxOpenUploads ?? DEFAULT_MAX_OPEN_UPLOADS,
        expiry: { afterMs: options.multipart?.expiryMs ?? DEFAULT_UPLOAD_EXPIRY_MS, clock: deps.clock },
      }),
      maxObjectBytes: declarable,
      domain: options.domain ?? 'localhost',
      credentials,
      region,
      clock: deps.clock,
      random: deps.random,
      ...(deps.log === undefined ? {} : { log: deps.log }),
    });
    // Same port as S3: DA clients use base URL <url>/altda; the S3 routes are untouched beside it.
    registerAltDa(app, {
      storage: session.storage,
      namespace,
      indexer: session.indexer,
      ...options.altda,
      maxBlobBytes: Math.min(options.altda?.maxBlobBytes ?? DEFAULT_MAX_BLOB_BYTES, declarable),
      ...(deps.log === undefined ? {} : { log: deps.log }),
    });
    // Its staging dir and used messages live in the data dir: a restart resumes uploads and still refuses replays.
    registerDeoss(app, {
      storage: session.storage,
      namespace,
      clock: deps.clock,
      stateDir: join(options.dataDir, 'deoss'),
      chainDeadlineMs: SESSION_DEADLINES.chainCallMs,
      maxObjectBytes: Math.min(options.maxObjectBytes ?? 5 * 1024 ** 3, declarable),
      ...(deps.log === undefined ? {} : { log: deps.log }),
    });
    // The marketplace under /market, with the S3 API's credentials: this account sells, shares and buys.
    registerMarket(app, {
      ...session,
      credentials,
      region,
      clock: deps.clock,
      random: deps.random,
      chainDeadlineMs: SESSION_DEADLINES.chainCallMs,
      ...(deps.log === undefined ? {} : { log: deps.log }),
    });
    const address = await app.listen({ host: options.host, port: options.port });
    const url = address.replace('[::1]', 'localhost');
    const infoPath = join(options.dataDir, 'gateway.json');
    const altda = `${url}${ALTDA_PREFIX}`;
    const drive = `${url}${WEB_PREFIX}`;
    const info: GatewayInfo = {
      url,
      altda,
      drive,
      market: `${url}${MARKET_PREFIX}`,
      s3: { ...credentials, region },
      deoss: { url: `${url}/deoss`, account: options.account.address },
    };
    // Replaced whole on every start (the URL's port may change): written aside, then renamed over the old one.
    const aside = `${infoPath}.${process.pid}.tmp`;
    rmSync(aside, { force: true });
    writePrivateFileSync(aside, `${JSON.stringify(info, null, 2)}\n`);
    renameSync(aside, infoPath);
    // Started last: nothing after it can fail and leave it running.
    const keyService =
      options.serveKeys === false
        ? undefined
        : createGrantService({ ...session, clock: deps.clock }).start((pass) => {
            for (const g of pass.granted)
              deps.log?.(`key released: ${g.fid} to ${g.reader} (block ${g.block})`);
            for (const f of pass.failed) deps.log?.(`key not released: ${f.fid} to ${f.reader}: ${f.reason}`);
          });
    return {
      url,
      altda,
      drive,
      infoPath,
      credentials,
      async stop() {
        await keyService?.stop();
        await app.close();
        await session.close();
        await codec.close();
      },
    };
  } catch (err) {
    await session.close();
    await codec.close();
    throw err;
  }
}
