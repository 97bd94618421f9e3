import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSession, sessionOf, startDevNetwork } from '../node/index.ts';
import { loadKeyFile } from '../shared/account.ts';
import { systemClock, systemRandom } from '../shared/clock.ts';
import { hasCode } from '../shared/errors.ts';
import { loadNetworkFile, type StorageClient } from '../storage/index.ts';

const MiB = 1024 * 1024;
const say = (line: string) => console.log(line);

async function sha256Of(
  client: StorageClient,
  fid: string,
): Promise<{ hex: string; bytes: number; secs: number }> {
  const started = performance.now();
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of client.get(fid)) {
    hash.update(chunk);
    bytes += chunk.byteLength;
  }
  return { hex: hash.digest('hex'), bytes, secs: (performance.now() - started) / 1000 };
}

/**
 * The storage network end to end on loopback: 14 real miner processes and a verifier, an encrypted 80 MiB object in 32 MiB segments,
 * reads with 8 of its 12 miners down, a clear refusal with 9 down, and a repair after two miners are lost for good.
 */
export async function runStorageDemo(options: { dataDir?: string | undefined }): Promise<void> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'ailink-demo-'));
  say(`1. starting the dev chain, a verifier and 14 miner processes (12 columns + 2 spares) in ${dataDir}`);
  const network = await startDevNetwork(
    { random: systemRandom },
    { dataDir, miners: 14, profile: 'production' },
  );
  const account = await loadKeyFile(network.operatorKeyPath);
  // The chain is the registry: miners and placements are read from it, and the put is recorded on it.
  const session = await openSession(sessionOf(loadNetworkFile(network.path)), account, 'client', {
    clock: systemClock,
    random: systemRandom,
  });
  try {
    const client = session.storage;

    const data = systemRandom(80 * MiB);
    const original = createHash('sha256').update(data).digest('hex');
    say(`2. storing an encrypted 80 MiB object (sha256 ${original.slice(0, 16)}…)`);
    let started = performance.now();
    const { fid, miners: placed } = await client.put(data, {
      name: 'demo.bin',
      onProgress: (e) =>
        e.kind === 'segment-stored' && say(`   segment ${e.segment} coded into 12 fragments and stored`),
    });
    let secs = (performance.now() - started) / 1000;
    say(`   fid ${fid}  (${(80 / secs).toFixed(1)} MB/s, 3 segments × 12 fragments of 8 MiB on 12 miners)`);

    let read = await sha256Of(client, fid);
    say(
      `3. read back: ${read.hex === original ? 'identical' : 'DIFFERENT'} (${(read.bytes / MiB / read.secs).toFixed(1)} MB/s)`,
    );

    const holders = network.miners.filter((m) => placed.includes(m.peerId));
    say('4. stopping 8 of the 12 miners that hold it');
    await Promise.all(holders.slice(0, 8).map((m) => m.stop()));
    read = await sha256Of(client, fid);
    say(`   read with 4 of 12 left: ${read.hex === original ? 'identical' : 'DIFFERENT'}`);

    say('5. stopping a 9th');
    await holders[8]!.stop();
    try {
      await sha256Of(client, fid);
      say('   unexpectedly readable');
    } catch (err) {
      say(
        `   refused as it must be: ${hasCode(err) ? err.code : ''} ${(err as Error).message.slice(0, 160)}…`,
      );
    }

    say('6. restarting those 9 (their fragments survived), then losing 2 holders for good');
    await Promise.all(holders.slice(0, 9).map((m) => m.restart()));
    await Promise.all(holders.slice(10, 12).map((m) => m.stop()));
    started = performance.now();
    const report = await client.repair(fid, {
      onProgress: (e) =>
        e.kind === 'column-repaired' &&
        say(`   column ${e.column} rebuilt from 4 survivors onto ${e.to.slice(-8)}`),
    });
    secs = (performance.now() - started) / 1000;
    say(`   repaired ${report.repaired.length} columns in ${secs.toFixed(1)} s`);
    read = await sha256Of(client, fid);
    say(
      `7. read after repair: ${read.hex === original ? 'identical' : 'DIFFERENT'}; all 12 columns are placed again`,
    );
    if (read.hex !== original) process.exitCode = 1;
  } finally {
    await session.close();
    await network.stop();
  }
  say(`done. data in ${dataDir}`);
}
