// `ailink demo`: federated training end to end on loopback, and `demo storage`, the storage network end to end.
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { openSession, sessionOf, startDevNetwork } from '../node/index.ts';
import { loadKeyFile } from '../shared/account.ts';
import { systemClock, systemRandom } from '../shared/clock.ts';
import { hasCode } from '../shared/errors.ts';
import { loadNetworkFile, type StorageClient } from '../storage/index.ts';
import { MiB, positiveInt, usageError } from './args.ts';
import type { DemoSource } from './demo-data.ts';
import { createHumanOutput } from './demo-output.ts';
import { runFederatedDemo } from './fl-demo.ts';

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

/**
 * `--data`: full | small (Fashion-MNIST, with `--model mlp|cnn`), `csv:FILE` (with `--label COLUMN`, and optionally
 * `--model PATH/model.json`), or `images:DIR` (with `--model PATH/model.json`).
 */
function demoSourceOf(data: string, model: string | undefined, label: string | undefined): DemoSource {
  if (data === 'full' || data === 'small') {
    const name = model ?? 'mlp';
    if (name !== 'mlp' && name !== 'cnn')
      usageError(`--model: Fashion-MNIST trains the built-in mlp or cnn, got ${JSON.stringify(name)}`);
    if (label !== undefined) usageError('--label goes with --data csv:FILE');
    return { kind: 'fashion-mnist', small: data === 'small', model: name };
  }
  if (data.startsWith('csv:')) {
    if (label === undefined) usageError('--data csv:FILE needs --label COLUMN (the column to predict)');
    return { kind: 'csv', file: data.slice(4), label, ...(model === undefined ? {} : { model }) };
  }
  if (data.startsWith('images:')) {
    if (model === undefined)
      usageError('--data images:DIR needs --model PATH/model.json (it sets the image size)');
    return { kind: 'images', dir: data.slice(7), model };
  }
  return usageError(`--data: expected full, small, csv:FILE or images:DIR, got ${JSON.stringify(data)}`);
}

export async function demoCommand(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      'data-dir': { type: 'string' },
      participants: { type: 'string' },
      rounds: { type: 'string' },
      model: { type: 'string' },
      alpha: { type: 'string' },
      epochs: { type: 'string' },
      secagg: { type: 'string' },
      dropout: { type: 'string' },
      data: { type: 'string' },
      label: { type: 'string' },
      json: { type: 'boolean' },
      'dp-noise': { type: 'string' },
      'dp-clip': { type: 'string' },
      'dp-epsilon': { type: 'string' },
      'dp-delta': { type: 'string' },
      'dp-mechanism': { type: 'string' },
    },
    allowPositionals: true,
  });
  if (positionals[0] === 'storage') return runStorageDemo({ dataDir: values['data-dir'] });
  if (positionals.length > 0) usageError(`unknown demo ${JSON.stringify(positionals[0])}`);
  const onOff = (v: string | undefined, name: string) => {
    if (v === undefined || v === 'on') return true;
    if (v === 'off') return false;
    return usageError(`--${name}: expected on or off, got ${JSON.stringify(v)}`);
  };
  const source = demoSourceOf(values.data ?? 'full', values.model, values.label);
  // Fashion-MNIST's demo is label-skewed by default (the README's figures); a person's own data is split IID
  // unless they ask for skew.
  const alphaFlag = values.alpha ?? (source.kind === 'fashion-mnist' ? '0.5' : undefined);
  const alpha = alphaFlag === undefined ? null : Number(alphaFlag);
  if (alpha !== null && (!(alpha > 0) || !Number.isFinite(alpha)))
    usageError(`--alpha: expected a number > 0, got ${values.alpha}`);
  const participants = positiveInt(values.participants, 'participants', 10);
  if (participants < 3) usageError('--participants: secure aggregation needs at least 3');
  const json = values.json ?? false;
  const positive = (v: string | undefined, name: string, fallback: number) => {
    const n = Number(v ?? fallback);
    if (!(n > 0) || !Number.isFinite(n)) usageError(`--${name}: expected a number > 0, got ${v}`);
    return n;
  };
  const dpFlags = ['dp-clip', 'dp-epsilon', 'dp-delta', 'dp-mechanism'] as const;
  if (values['dp-noise'] === undefined && dpFlags.some((f) => values[f] !== undefined))
    usageError(
      '--dp-clip, --dp-epsilon, --dp-delta and --dp-mechanism need --dp-noise Z (the noise multiplier) to turn DP on',
    );
  const mechanism = values['dp-mechanism'];
  if (mechanism !== undefined && mechanism !== 'central-gaussian' && mechanism !== 'skellam')
    usageError(`--dp-mechanism: expected central-gaussian or skellam, got ${mechanism}`);
  const dp =
    values['dp-noise'] === undefined
      ? undefined
      : {
          noiseMultiplier: positive(values['dp-noise'], 'dp-noise', 1),
          clipNorm: positive(values['dp-clip'], 'dp-clip', 1),
          epsilonBudget: positive(values['dp-epsilon'], 'dp-epsilon', 10),
          delta: positive(values['dp-delta'], 'dp-delta', 1e-5),
          // Absent: central (the spec then has no mechanism field, as every spec before it).
          ...(mechanism === 'skellam' ? { mechanism: 'skellam' as const } : {}),
        };
  // Everything for a person goes to one stream, in order (stderr under --json, whose stdout is the JSON line alone):
  // a live line redrawn in place when that stream is a terminal, plain lines when it is a file or a pipe.
  const human = createHumanOutput(json ? process.stderr : process.stdout);
  const result = await runFederatedDemo(
    { random: systemRandom },
    {
      dataDir: values['data-dir'],
      participants,
      rounds: positiveInt(values.rounds, 'rounds', source.kind === 'fashion-mnist' ? 6 : 10),
      alpha,
      ...(values.epochs === undefined ? {} : { epochs: positiveInt(values.epochs, 'epochs', 1) }),
      secagg: onOff(values.secagg, 'secagg'),
      // The last organisation goes silent in round 1's first attempt. From 5 organisations on, SecAgg+ (k = 4,
      // t = 3) finishes the round without it; with 4 or 3 (k = t = 2) its neighbours fall under the threshold, the
      // attempt aborts, and the next one takes it back (the task's floor is the whole cohort: SecAgg survives no
      // dropout there). One that stayed silent would end the task after its maxAttempts, with the reason.
      drops: onOff(values.dropout, 'dropout')
        ? [{ participant: participants - 1, round: 1, stage: 'masked', attempt: 0 }]
        : [],
      source,
      ...(dp === undefined ? {} : { dp }),
      say: human.say,
      progress: human.live,
    },
  );
  if (json) console.log(JSON.stringify(result));
  if (!result.lineage_verified) process.exitCode = 1;
}
