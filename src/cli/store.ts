// `ailink store`: hash, put, get, info, ls and repair objects on the storage network.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, statSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { finished } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { openSession } from '../node/index.ts';
import { systemClock, systemRandom } from '../shared/clock.ts';
import { AilinkError } from '../shared/errors.ts';
import {
  chunks,
  encodeSegment,
  fidOf,
  PRODUCTION_PROFILE,
  type ProgressEvent,
  profileForSize,
  type StorageProfile,
  storedSegment,
  TEST_PROFILE,
} from '../storage/index.ts';
import { MiB, usageError } from './args.ts';
import { NETWORK_OPTIONS, type NetworkValues, networkAndKey } from './network-flags.ts';

function profileNamed(name: string | undefined): StorageProfile {
  if (name === undefined || name === 'production') return PRODUCTION_PROFILE;
  if (name === 'test') return TEST_PROFILE;
  return usageError(`--profile: expected production or test, got ${JSON.stringify(name)}`);
}

const progressLine = (e: ProgressEvent): string => {
  switch (e.kind) {
    case 'segment-stored':
      return `segment ${e.segment} stored (${(e.bytes / MiB).toFixed(1)} MiB)`;
    case 'segment-read':
      return `segment ${e.segment} read (${(e.bytes / MiB).toFixed(1)} MiB)`;
    case 'column-moved':
      return `column ${e.column} moved ${e.from} → ${e.to} (${e.reason})`;
    case 'column-deferred':
      return `column ${e.column} deferred: ${e.from} failed (${e.reason}) and no spare miner is left; the network restores it`;
    case 'column-repaired':
      return `column ${e.column} repaired: ${e.from} → ${e.to}`;
  }
};

/** A storage session as `--key` on the network the flags name (objects in the network's own profile). */
async function openClient(values: NetworkValues) {
  const { session: config, account } = await networkAndKey(values);
  const session = await openSession(config, account, 'client', { clock: systemClock, random: systemRandom });
  return { client: session.storage, account, registry: session.registry, close: () => session.close() };
}

async function storeHash(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { json: { type: 'boolean' }, profile: { type: 'string' }, cess: { type: 'boolean' } },
    allowPositionals: true,
  });
  const file = positionals[0] ?? usageError('store hash: expected a FILE');
  if (!existsSync(file)) throw new AilinkError('INVALID_INPUT', `store hash: no such file: ${file}`);
  // As `store put --plain` stores it: a file under one segment in a segment of its own size. `--cess`: CESS's ids,
  // which always pad to the full segment.
  const network = profileNamed(values.profile);
  const profile = values.cess ? network : profileForSize(network, statSync(file).size);
  const segments: { hash: string; fragments: string[] }[] = [];
  let size = 0;
  let index = 0;
  for await (const { bytes, last } of chunks(
    createReadStream(file, { highWaterMark: MiB }),
    profile.segmentSize,
  )) {
    size += bytes.byteLength;
    const e = encodeSegment(
      profile,
      storedSegment(profile, bytes, { index: index++, last, key: null }).stored,
    );
    segments.push({ hash: e.hash, fragments: e.fragmentHashes });
  }
  const out = { fid: fidOf(segments.map((s) => s.hash)), size, profile, segments };
  if (values.json) console.log(JSON.stringify(out, null, 2));
  else {
    console.log(
      `fid ${out.fid}\nsize ${size} bytes, ${segments.length} segment(s) of ${profile.segmentSize} bytes`,
    );
    segments.forEach((s, i) => {
      console.log(`segment ${i} ${s.hash}`);
      for (const [c, f] of s.fragments.entries()) console.log(`  fragment ${String(c).padStart(2)} ${f}`);
    });
  }
}

export async function storeCommand(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub === 'hash') return storeHash(rest);
  const { values, positionals } = parseArgs({
    args: rest,
    options: {
      ...NETWORK_OPTIONS,
      json: { type: 'boolean' },
      to: { type: 'string', multiple: true },
      plain: { type: 'boolean' },
      name: { type: 'string' },
      out: { type: 'string' },
    },
    allowPositionals: true,
  });
  if (sub === 'ls') {
    const list = await listObjects(values);
    if (values.json) console.log(JSON.stringify(list, null, 2));
    else
      for (const o of list)
        console.log(
          `${o.fid}  ${String(o.size).padStart(12)}  ${o.encrypted ? 'enc  ' : 'plain'}  ${o.name ?? ''}`,
        );
    return;
  }
  // Arguments first: a usage error must not need a running network.
  if (!['put', 'get', 'info', 'repair'].includes(sub ?? ''))
    usageError(`unknown store command ${JSON.stringify(sub)}`);
  const target = positionals[0] ?? usageError(`store ${sub}: expected a ${sub === 'put' ? 'FILE' : 'FID'}`);
  if (sub === 'put' && !existsSync(target))
    throw new AilinkError('INVALID_INPUT', `store put: no such file: ${target}`);
  if (sub === 'get' && !values.out) usageError('store get: --out FILE is required');
  const { client, close } = await openClient(values);
  const progress = (e: ProgressEvent) => console.error(progressLine(e));
  try {
    switch (sub) {
      case 'put': {
        const file = target;
        const started = performance.now();
        const result = await client.put(createReadStream(file, { highWaterMark: MiB }), {
          // The size up front: a file under one segment is coded in a segment of its own size.
          size: statSync(file).size,
          name: values.name ?? file.split('/').pop()!,
          encrypt: !values.plain,
          readers: values.to ?? [],
          onProgress: progress,
        });
        const secs = (performance.now() - started) / 1000;
        console.error(
          `stored ${result.record.size} bytes in ${secs.toFixed(2)} s on ${result.miners.length} miners`,
        );
        console.log(values.json ? JSON.stringify({ fid: result.fid, miners: result.miners }) : result.fid);
        break;
      }
      case 'get': {
        const outPath = values.out!;
        const tmp = `${outPath}.part`;
        const hash = createHash('sha256');
        const out = createWriteStream(tmp);
        try {
          for await (const bytes of client.get(target, { onProgress: progress })) {
            hash.update(bytes);
            if (!out.write(bytes)) await new Promise<void>((r) => out.once('drain', () => r()));
          }
          out.end();
          await finished(out);
          await rename(tmp, outPath);
        } catch (err) {
          // The stream opens its file asynchronously: close it first, or the file may appear after we removed it.
          out.destroy();
          await finished(out).catch(() => {});
          await rm(tmp, { force: true });
          throw err;
        }
        console.error(`wrote ${statSync(outPath).size} bytes to ${outPath} (sha256 ${hash.digest('hex')})`);
        break;
      }
      case 'info': {
        const fid = target;
        const { record, miners, chain } = await client.info(fid);
        const info = {
          fid,
          name: record.name,
          owner: record.owner,
          size: record.size,
          // Without a chain, the local registry records only fully placed objects.
          state: chain?.state ?? 'Active',
          ...(chain === undefined
            ? {}
            : {
                declaredAt: chain.declaredAt,
                activeAt: chain.activeAt,
                restoralOrders: chain.restoralOrders,
              }),
          encrypted: record.encryption !== null,
          // Reader keys with a wrap of their own; a reader group's key stands for its members (its object lists them).
          readers: record.encryption?.wraps.map((w) => w.recipient) ?? [],
          readerGroups: record.encryption?.groups ?? [],
          profile: record.profile,
          placements: miners.map((miner, column) => ({
            column,
            miner,
            ...(chain === undefined ? {} : { account: chain.accounts[column] }),
          })),
          segments: record.segments,
        };
        if (values.json) console.log(JSON.stringify(info, null, 2));
        else {
          console.log(
            `${fid}  ${record.name ?? ''}\n${record.size} bytes, ${record.segments.length} segment(s), ${info.encrypted ? 'encrypted' : 'plain'}, ${info.state}`,
          );
          for (const p of info.placements)
            console.log(
              `  column ${String(p.column).padStart(2)} → ${p.miner === '' ? '(no miner yet: a restoral order is open)' : p.miner}`,
            );
        }
        break;
      }
      case 'repair': {
        const fid = target;
        const report = await client.repair(fid, { onProgress: progress });
        console.error(
          report.repaired.length === 0
            ? 'all 12 columns are healthy'
            : `repaired ${report.repaired.length} column(s)`,
        );
        console.log(JSON.stringify(report, null, 2));
        break;
      }
    }
  } finally {
    await close();
  }
}

async function listObjects(values: NetworkValues) {
  const { registry, close } = await openClient(values);
  try {
    return await registry.list();
  } finally {
    await close();
  }
}
