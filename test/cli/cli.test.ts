import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEV_PROTOCOL_CONFIG, protocolCall, protocolConfigToJson } from '../../src/chain/index.ts';
import {
  createHumanOutput,
  createRoundTracker,
  networkProgressLine,
  PLAIN_STAGES,
  roundProgressLine,
  SECAGG_STAGES,
  withNames,
} from '../../src/cli/demo-output.ts';
import { type GatewayInfo, GatewayInfoSchema, openSession, sessionOf } from '../../src/node/index.ts';
import { createKeyFile, isAddress, loadKeyFile } from '../../src/shared/account.ts';
import { systemClock, systemRandom } from '../../src/shared/clock.ts';
import { AilinkError } from '../../src/shared/errors.ts';
import {
  chunks,
  encodeSegment,
  fidOf,
  loadNetworkFile,
  type NetworkFile,
  PRODUCTION_PROFILE,
  type StorageProfile,
  storedSegment,
  TEST_PROFILE,
} from '../../src/storage/index.ts';
import { awsCli } from '../gateway/awscli.ts';
import { seededBytes, sha256Hex } from '../storage/helpers.ts';

// The real `ailink` command, run as child processes exactly as a user runs it: `node bin/ailink.mjs …`.

const BIN = fileURLToPath(new URL('../../bin/ailink.mjs', import.meta.url));
const KiB = 1024;

interface Run {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `ailink ARGS` to completion (killed after `timeoutMs`) and returns its exit status and output. */
function ailink(args: readonly string[], options: { cwd: string; timeoutMs?: number }): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: options.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: options.timeoutMs ?? 90_000,
      killSignal: 'SIGKILL',
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      stdout += s;
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      stderr += s;
    });
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** `ailink ARGS` that must succeed; returns stdout (and shows stderr when it does not succeed). */
/**
 * A network file naming a chain nobody serves (port 1 of loopback), with its operator key: enough for commands that
 * fail before they connect.
 */
async function stubNetwork(dir: string): Promise<void> {
  mkdirSync(dir);
  const network: NetworkFile = {
    version: 1,
    profile: 'test',
    chain: { endpoint: 'ws://127.0.0.1:1', protocol: protocolConfigToJson(DEV_PROTOCOL_CONFIG) },
    operatorKey: 'operator.json',
    processes: [],
  };
  writeFileSync(join(dir, 'network.json'), JSON.stringify(network));
  await createKeyFile(join(dir, 'operator.json'), systemRandom);
}

async function ok(args: readonly string[], cwd: string): Promise<string> {
  const run = await ailink(args, { cwd });
  if (run.code !== 0) {
    throw new Error(`ailink ${args.join(' ')} exited ${run.code ?? run.signal}:\n${run.stderr}`);
  }
  return run.stdout;
}

/** A loopback port nothing listens on (one that was free a moment ago). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  const { port } = server.address() as { port: number };
  await new Promise((res) => server.close(res));
  return port;
}

/**
 * A task file as `ailink task create` and `ailink coordinator --create-task` take it, with the model.json beside it:
 * two numeric columns, two classes, one dense layer (the smallest real task the coordinator accepts).
 */
function writeTaskFile(dir: string, admitted: readonly string[]): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'model.json'),
    JSON.stringify({
      format: 'layers-model',
      modelTopology: {
        class_name: 'Sequential',
        config: {
          name: 'tiny',
          layers: [
            {
              class_name: 'Dense',
              config: { name: 'out', units: 2, activation: 'softmax', batch_input_shape: [null, 2] },
            },
          ],
        },
      },
    }),
  );
  const numeric = (name: string) => ({ name, type: 'numeric', transform: 'none', missing: 'refuse' });
  const task = {
    name: 'cli task',
    model: { path: 'model.json', initialSeed: 'cli' },
    data: {
      kind: 'tabular',
      columns: [numeric('x'), numeric('y'), { name: 'label', type: 'ignore' }],
      label: { column: 'label', classes: ['no', 'yes'] },
      holdout: 0,
    },
    dataset: { name: 'none', description: 'a task nobody trains' },
    training: {
      loss: 'categorical_crossentropy',
      optimizer: { name: 'sgd', learningRate: 0.1 },
      metrics: ['accuracy', 'loss'],
      proximalMu: 0,
    },
    strategy: { name: 'fedavg' },
    local: { epochs: 1, batchSize: 8 },
    rounds: 1,
    cohort: { size: admitted.length, min: 1 },
    deadlines: {
      joinMs: 600_000,
      advertiseMs: 10_000,
      sharesMs: 10_000,
      trainMs: 10_000,
      consistencyMs: 10_000,
      unmaskMs: 10_000,
    },
    secagg: { enabled: false, neighbours: 2, threshold: 2, range: 1, bits: 24, maxWeight: 1000 },
    dp: null,
    admitted: [...admitted],
  };
  const file = join(dir, 'task.json');
  writeFileSync(file, JSON.stringify(task, null, 2));
  return file;
}

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');
const modeOf = (path: string): number => statSync(path).mode & 0o777;

/** The `store hash` answer for `bytes`, computed in-process with the storage module. */
async function hashInProcess(bytes: Uint8Array, profile: StorageProfile) {
  const segments: { hash: string; fragments: string[] }[] = [];
  let index = 0;
  for await (const { bytes: chunk, last } of chunks(bytes, profile.segmentSize)) {
    const { stored, tag } = storedSegment(profile, chunk, { index: index++, last, key: null });
    // A plain segment is stored as is (zero-padded to the segment size) and has no tag.
    expect(tag).toBeNull();
    expect(stored).toHaveLength(profile.segmentSize);
    const e = encodeSegment(profile, stored);
    segments.push({ hash: e.hash, fragments: e.fragmentHashes });
  }
  return { fid: fidOf(segments.map((s) => s.hash)), size: bytes.byteLength, segments };
}

/** CESS's ids for plain bytes, written from the definition: zero-padded segments, SHA-256, Merkle root. */
function cessSegmentHashes(bytes: Uint8Array, segmentSize: number): string[] {
  const count = Math.max(1, Math.ceil(bytes.byteLength / segmentSize));
  return Array.from({ length: count }, (_, i) => {
    const segment = new Uint8Array(segmentSize);
    segment.set(bytes.subarray(i * segmentSize, (i + 1) * segmentSize));
    return sha256(segment);
  });
}
function merkleRoot(hexes: readonly string[]): string {
  let level: Buffer[] = hexes.map((h) => Buffer.from(h, 'hex'));
  do {
    const next: Buffer[] = [];
    for (let i = 0; i < level.length; i += 2) {
      next.push(
        createHash('sha256')
          .update(level[i]!)
          .update(level[i + 1] ?? level[i]!)
          .digest(),
      );
    }
    level = next;
  } while (level.length > 1);
  return level[0]!.toString('hex');
}

interface KeyInfo {
  readonly file: string;
  readonly address: string;
  readonly readerKey: string;
}

describe('what `ailink demo` shows a person (demo-output.ts)', () => {
  const fake = (isTTY: boolean, columns?: number) => {
    const writes: string[] = [];
    return { writes, stream: { isTTY, columns, write: (t: string) => writes.push(t) } };
  };

  it('in a file or a pipe: plain lines, one per live key, never a carriage return or an escape', () => {
    const { writes, stream } = fake(false);
    const out = createHumanOutput(stream);
    out.say('2. starting the dev chain');
    for (const p of [
      { step: 'chain' },
      { step: 'funding', accounts: 18 },
      { step: 'verifier' },
      { step: 'miners', ready: 0, total: 12 },
      { step: 'miners', ready: 7, total: 12 },
      { step: 'miners', ready: 12, total: 12 },
    ] as const) {
      const { line, key } = networkProgressLine(p);
      out.live(line, key);
    }
    out.live('');
    const open = {
      round: 1,
      attempt: 0,
      cohort: 5,
      stage: 'masked',
      answered: 3,
      expected: 5,
      bytes: 2_600_000,
      seconds: 14,
    };
    for (const answered of [3, 4]) {
      const { line, key } = roundProgressLine({ ...open, answered }, { rounds: 6, stages: SECAGG_STAGES });
      out.live(line, key);
    }
    out.say('   masked: 1 dropped (org-05)');
    out.say('       1    68.10%   0.836        4/5     37.6       4.0');
    expect(writes.join('')).toBe(
      [
        '2. starting the dev chain',
        '   starting the dev chain…',
        '   dev chain up; funding 18 accounts from Alice…',
        '   starting the verifier…',
        '   verifier up; starting 12 miners (each registers on chain)…',
        '   round 1 (2/6) ▕██████░░░░▏ masked · 3/5 answered · 2.6 MB of updates · 14 s',
        '   masked: 1 dropped (org-05)',
        '       1    68.10%   0.836        4/5     37.6       4.0',
        '',
      ].join('\n'),
    );
  });

  it('on a terminal: the live line is redrawn in place, and a lasting line goes above it, never into it', () => {
    const { writes, stream } = fake(true, 40);
    const out = createHumanOutput(stream);
    out.live('   miners 7/12 registered…');
    out.live('   miners 7/12 registered…'); // unchanged: nothing written
    out.say('   an event');
    out.live('   round 0 (1/2) ▕██░░░░░░░░▏ advertise · 0/5 answered · 3 s'); // wider than the terminal
    out.live('');
    out.say('       0    67.50%   1.028        3/3     27.0       3.2');
    expect(writes).toEqual([
      '\r\x1b[2K   miners 7/12 registered…',
      '\r\x1b[2K   an event\n   miners 7/12 registered…',
      '\r\x1b[2K   round 0 (1/2) ▕██░░░░░░░░▏ advertis…', // 39 columns
      '\r\x1b[2K',
      '       0    67.50%   1.028        3/3     27.0       3.2\n',
    ]);
  });

  it('the round tracker counts answers per stage against whom the coordinator still expects', () => {
    let now = 0;
    const t = createRoundTracker(() => now);
    expect(t.progress()).toBeUndefined();
    t.attempt(1, 0, 3);
    expect(roundProgressLine(t.progress()!, { rounds: 2, stages: SECAGG_STAGES }).line).toBe(
      '   round 1 (2/2) ▕██░░░░░░░░▏ advertise · cohort of 3 · 0 s',
    );
    t.status({ round: 1, attempt: 0, phase: 'advertise', expecting: ['a', 'b', 'c'] });
    t.submitted('a', 1, 'advertise');
    t.status({ round: 1, attempt: 0, phase: 'advertise', expecting: ['b', 'c'] });
    expect(t.progress()).toMatchObject({ stage: 'advertise', answered: 1, expected: 3 });
    t.phase(1, 0, 'masked');
    t.update('a', 1, 1_000_000);
    t.update('a', 1, 1_000_000); // one update per organisation and attempt
    t.update('b', 1, 1_000_000);
    t.update('c', 1, 1_000_000);
    t.submitted('a', 1, 'masked');
    t.submitted('c', 1, 'masked'); // c's update counts once committed
    t.submitted('b', 1, 'advertise'); // an answer to a closed stage moves nothing
    t.status({ round: 1, attempt: 0, phase: 'masked', expecting: ['b'] });
    now = 14_000;
    // b encoded its update but has not committed to it (it may yet go silent): not counted.
    expect(t.progress()).toEqual({
      round: 1,
      attempt: 0,
      cohort: 3,
      stage: 'masked',
      answered: 2,
      expected: 3,
      bytes: 2_000_000,
      seconds: 14,
    });
    t.status({ round: 0, attempt: 0, phase: 'unmask', expecting: [] }); // another round's status: ignored
    expect(t.progress()?.stage).toBe('masked');
    t.close();
    expect(t.progress()).toBeUndefined();
  });

  it("the live round line: the stage among the task's stages, and what the coordinator does after the last answer", () => {
    const p = {
      round: 0,
      attempt: 2,
      cohort: 5,
      stage: 'masked',
      answered: 4,
      expected: 4,
      bytes: 0,
      seconds: 9.6,
    };
    expect(roundProgressLine(p, { rounds: 2, stages: SECAGG_STAGES }).line).toBe(
      '   round 0 (1/2) attempt 2 ▕██████░░░░▏ masked · all 4 answered · 10 s',
    );
    // A later stage before the coordinator said whom it expects: no count (the cohort is no longer the number).
    expect(
      roundProgressLine(
        { ...p, stage: 'consistency', expected: 0, answered: 0 },
        { rounds: 2, stages: SECAGG_STAGES },
      ).line,
    ).toBe('   round 0 (1/2) attempt 2 ▕████████░░▏ consistency · 10 s');
    expect(roundProgressLine(p, { rounds: 2, stages: PLAIN_STAGES })).toEqual({
      line: '   round 0 (1/2) attempt 2 ▕██████████▏ masked · all 4 answered; aggregating, storing the model, anchoring the round · 10 s',
      key: 'round 0 attempt 2',
    });
  });

  it('log lines name organisations, not addresses', () => {
    const names = [{ address: '5Dsi1rB2xYz7q3Wk9PqRmB8Ze1yP3cN5Hq5a8J2hUfW5bC1d', name: 'org-05' }];
    expect(withNames('  masked: 1 dropped (5Dsi1rB2)', names)).toBe('  masked: 1 dropped (org-05)');
    expect(withNames(`after masked input, ${names[0]!.address} has 1 live neighbours`, names)).toBe(
      'after masked input, org-05 has 1 live neighbours',
    );
    expect(withNames('released the key of 0a1b… to 5Dsi1rB2…', names)).toBe(
      'released the key of 0a1b… to org-05',
    );
  });
});

describe('ailink without a network', () => {
  let work: string;

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'ailink-cli-'));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  describe('keys', () => {
    it('`keys new --out FILE` writes a 0600 key file with the address and reader key it prints', async () => {
      const file = join(work, 'alice.json');
      const printed = JSON.parse(await ok(['keys', 'new', '--out', file], work)) as KeyInfo;
      expect(printed.file).toBe(file);
      expect(isAddress(printed.address)).toBe(true);
      expect(printed.readerKey).toMatch(/^[0-9a-f]{64}$/);

      expect(modeOf(file)).toBe(0o600);
      const stored = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
      expect(stored).toMatchObject({
        kind: 'ailink-account',
        address: printed.address,
        readerKey: printed.readerKey,
      });
      const account = await loadKeyFile(file);
      expect(account.address).toBe(printed.address);
      expect(account.readerKey).toBe(printed.readerKey);
    });

    it('`keys new` refuses to overwrite an existing file: exit 1, KEY_FILE_INVALID, file unchanged', async () => {
      const file = join(work, 'bob.json');
      await ok(['keys', 'new', '--out', file], work);
      const before = readFileSync(file, 'utf8');
      const again = await ailink(['keys', 'new', '--out', file], { cwd: work });
      expect(again.code).toBe(1);
      expect(again.stderr).toContain('KEY_FILE_INVALID');
      expect(again.stderr).toContain(file);
      expect(readFileSync(file, 'utf8')).toBe(before);
      expect(modeOf(file)).toBe(0o600);
    });

    it('`keys new` without --out is a usage error (exit 2)', async () => {
      const run = await ailink(['keys', 'new'], { cwd: work });
      expect(run.code).toBe(2);
      expect(run.stderr).toContain('ailink keys new --out FILE');
    });

    it('loadKeyFile refuses a key file readable by others (0644), and accepts it again at 0600', async () => {
      const file = join(work, 'loose.json');
      const account = await createKeyFile(file, systemRandom);
      chmodSync(file, 0o644);
      const err = await loadKeyFile(file).then(
        () => expect.unreachable('a 0644 key file was loaded'),
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(AilinkError);
      expect((err as AilinkError).code).toBe('KEY_FILE_PERMISSIONS');
      expect((err as AilinkError).message).toContain('0644');
      chmodSync(file, 0o600);
      expect((await loadKeyFile(file)).address).toBe(account.address);
    });

    it('a command that loads a key refuses a 0644 key file (exit 1, KEY_FILE_PERMISSIONS)', async () => {
      // A network file that lists no miners: the key is loaded (and refused) before any miner is needed.
      const dir = join(work, 'loose-net');
      await stubNetwork(dir);
      const loose = join(dir, 'loose.json');
      await createKeyFile(loose, systemRandom);
      chmodSync(loose, 0o644);
      const input = join(dir, 'input.bin');
      writeFileSync(input, seededBytes('loose', 1000));

      const args = ['store', 'put', input, '--network', join(dir, 'network.json'), '--key', loose];
      const run = await ailink(args, { cwd: work });
      expect(run.code).toBe(1);
      expect(run.stderr).toContain('KEY_FILE_PERMISSIONS');
      expect(run.stderr).toContain('chmod 600');
      expect(run.stdout).toBe('');
    });
  });

  describe('store hash (offline)', () => {
    it('--json --profile test: 150 KiB → 3 segments, the same ids as computed in-process', async () => {
      const bytes = seededBytes('cli-hash-150k', 150 * KiB);
      const file = join(work, 'data-150k.bin');
      writeFileSync(file, bytes);
      const out = JSON.parse(await ok(['store', 'hash', file, '--json', '--profile', 'test'], work)) as {
        fid: string;
        size: number;
        profile: StorageProfile;
        segments: { hash: string; fragments: string[] }[];
      };

      const expected = await hashInProcess(bytes, TEST_PROFILE);
      expect(out.segments).toHaveLength(3);
      expect(out.size).toBe(150 * KiB);
      expect(out.profile).toStrictEqual({ ...TEST_PROFILE });
      expect(out.segments).toStrictEqual(expected.segments);
      expect(out.fid).toBe(expected.fid);
      for (const s of out.segments) {
        expect(s.fragments).toHaveLength(12);
        for (const f of [s.hash, ...s.fragments]) expect(f).toMatch(/^[0-9a-f]{64}$/);
      }
      // And from CESS's definition, sharing no code with src: padded segments, SHA-256, Merkle root.
      const segmentHashes = cessSegmentHashes(bytes, TEST_PROFILE.segmentSize);
      expect(out.segments.map((s) => s.hash)).toStrictEqual(segmentHashes);
      expect(out.fid).toBe(merkleRoot(segmentHashes));
      // The first data fragment of a plain segment is the segment's first quarter, as is.
      expect(out.segments[0]!.fragments[0]).toBe(sha256Hex(bytes.subarray(0, TEST_PROFILE.segmentSize / 4)));
    });

    it('without --json prints the fid and every segment and fragment hash', async () => {
      const bytes = seededBytes('cli-hash-text', 70 * KiB);
      const file = join(work, 'data-70k.bin');
      writeFileSync(file, bytes);
      const text = await ok(['store', 'hash', file, '--profile', 'test'], work);
      const expected = await hashInProcess(bytes, TEST_PROFILE);
      expect(text).toContain(`fid ${expected.fid}`);
      expect(text).toContain(`size ${70 * KiB} bytes, 2 segment(s) of ${TEST_PROFILE.segmentSize} bytes`);
      for (const s of expected.segments) {
        expect(text).toContain(s.hash);
        for (const f of s.fragments) expect(text).toContain(f);
      }
    });

    it("a small file: a segment of its own size, as `store put` stores it; --cess: one 32 MiB segment, CESS's fid", async () => {
      const bytes = seededBytes('cli-hash-small', 5000);
      const file = join(work, 'small.bin');
      writeFileSync(file, bytes);
      const [explicit, byDefault, cess] = await Promise.all([
        ok(['store', 'hash', file, '--json', '--profile', 'production'], work),
        ok(['store', 'hash', file, '--json'], work),
        ok(['store', 'hash', file, '--json', '--cess'], work),
      ]);
      const own = JSON.parse(explicit) as { fid: string; profile: StorageProfile };
      expect(JSON.parse(byDefault)).toStrictEqual(own);
      // 5000 bytes round up to 20 × (4 data fragments × 64 bytes): 5120-byte segment, 1280-byte fragments.
      expect(own.profile).toStrictEqual({ ...PRODUCTION_PROFILE, segmentSize: 5120 });
      expect(own).toMatchObject(await hashInProcess(bytes, own.profile));
      const out = JSON.parse(cess) as { fid: string; size: number; segments: { hash: string }[] };
      expect(out.size).toBe(5000);
      expect(out.segments).toHaveLength(1);
      const h = cessSegmentHashes(bytes, PRODUCTION_PROFILE.segmentSize)[0]!;
      expect(out.segments[0]!.hash).toBe(h);
      // A single segment: fid = SHA-256(h‖h).
      expect(out.fid).toBe(sha256(Buffer.concat([Buffer.from(h, 'hex'), Buffer.from(h, 'hex')])));
      expect(out).toMatchObject(await hashInProcess(bytes, PRODUCTION_PROFILE));
      expect(own.fid).not.toBe(out.fid);
    });

    it('a missing file → exit ≠ 0 with a message naming the file', async () => {
      const missing = join(work, 'no-such-file.bin');
      const run = await ailink(['store', 'hash', missing, '--profile', 'test'], { cwd: work });
      expect(run.code).not.toBe(0);
      expect(run.code).not.toBeNull();
      expect(run.stderr).toContain(missing);
      expect(run.stderr).toMatch(/no such file/i);
      expect(run.stdout).toBe('');
    });

    it('a missing file is reported like every other CLI error: `error CODE: …`', async () => {
      const missing = join(work, 'no-such-file.bin');
      const run = await ailink(['store', 'hash', missing], { cwd: work });
      expect(run.stderr).toMatch(/^error [A-Z_]+: /m);
    });

    it('an unknown --profile is a usage error (exit 2)', async () => {
      const file = join(work, 'small-profile.bin');
      writeFileSync(file, 'x');
      const run = await ailink(['store', 'hash', file, '--profile', 'huge'], { cwd: work });
      expect(run.code).toBe(2);
      expect(run.stderr).toContain('--profile');
    });
  });

  describe('usage errors', () => {
    it('`dev --collect-grace` that is not a positive number of seconds → exit 2 before anything starts', async () => {
      const run = await ailink(['dev', '--data-dir', join(work, 'no-dev'), '--collect-grace', 'soon'], {
        cwd: work,
      });
      expect(run.code).toBe(2);
      expect(run.stderr).toContain('--collect-grace');
      expect(existsSync(join(work, 'no-dev'))).toBe(false);
    });

    it('an unknown command → exit 2 and the usage text', async () => {
      const run = await ailink(['frobnicate'], { cwd: work });
      expect(run.code).toBe(2);
      expect(run.stderr).toContain('INVALID_INPUT');
      expect(run.stderr).toContain('"frobnicate"');
      expect(run.stderr).toContain('ailink store get FID --out FILE');
      expect(run.stderr).toContain('Exit codes');
      expect(run.stdout).toBe('');
    });

    it('an unknown flag → exit 2 and the usage text', async () => {
      const run = await ailink(['store', 'hash', 'x', '--frobnicate'], { cwd: work });
      expect(run.code).toBe(2);
      expect(run.stderr).toContain('ailink store hash FILE');
    });

    it('demo: DP flags without --dp-noise, or not a number > 0, are usage errors before anything starts', async () => {
      for (const [flags, named] of [
        [['--dp-clip', '1'], '--dp-noise'],
        [['--dp-noise', '0'], '--dp-noise'],
        [['--dp-noise', '1', '--dp-epsilon', 'ten'], '--dp-epsilon'],
        [['--dp-mechanism', 'skellam'], '--dp-noise'],
        [
          ['--dp-noise', '1', '--dp-mechanism', 'laplace'],
          '--dp-mechanism: expected central-gaussian or skellam',
        ],
      ] as const) {
        const run = await ailink(['demo', ...flags, '--data-dir', join(work, 'no-demo')], { cwd: work });
        expect(run.code, run.stderr).toBe(2);
        expect(run.stderr).toContain(named);
        expect(existsSync(join(work, 'no-demo'))).toBe(false);
      }
    });

    it.each([
      [['--data', 'csv:patients.csv'], '--data csv:FILE needs --label COLUMN'],
      [['--data', 'images:photos'], '--data images:DIR needs --model PATH/model.json'],
      [['--data', 'parquet:x'], '--data: expected full, small, csv:FILE or images:DIR'],
      [['--label', 'y'], '--label goes with --data csv:FILE'],
      [['--model', 'resnet'], 'Fashion-MNIST trains the built-in mlp or cnn'],
    ])('demo %j is a usage error before anything starts', async (flags, message) => {
      const dir = join(work, `no-demo-${flags.join('-').replace(/[^a-z]/g, '')}`);
      const run = await ailink(['demo', ...flags, '--data-dir', dir], { cwd: work });
      expect(run.code, run.stderr).toBe(2);
      expect(run.stderr).toContain(message);
      expect(existsSync(dir)).toBe(false);
    });

    it.each([
      [['report', '--task', 't', '--eval', 'csv:rows.csv'], 'only `audit verify` scores the models'],
      [['verify', '--task', 't', '--eval', ''], '--eval: expected a data spec'],
      [['serve', '--task', 'bad id!'], '--task: expected 1–64 of A–Z a–z 0–9 . _ -'],
      [['serve', '--listen', 'nowhere'], '--listen: expected HOST:PORT'],
      [['serve', '--cache-seconds', '1.5'], '--cache-seconds: expected a whole number of seconds'],
      [['serve', '--round', '1'], 'audit serve: --round and --json are for verify and report'],
      [
        ['verify', '--bundle', 'x.bundle', '--task', 't'],
        '--task, --round and --eval are for the live chain',
      ],
      [
        ['verify', '--task', 't', '--expect-tip', `0x${'1'.repeat(64)}`],
        '--expect-tip: only with --bundle FILE',
      ],
      [['verify', '--bundle', 'x.bundle', '--expect-tip', 'tip'], '--expect-tip: expected a block hash'],
      [['report', '--bundle', 'x.bundle', '--format', 'pdf'], '--format: expected html, md or json'],
      [['export', '--task', 't'], 'audit export: --out FILE is required'],
    ])('audit %j is a usage error before any network is opened', async (args, message) => {
      const run = await ailink(['audit', ...args, '--network', join(work, 'no-network.json')], { cwd: work });
      expect(run.code, run.stderr).toBe(2);
      expect(run.stderr).toContain(message);
    });

    it.each([
      [
        ['dev', '--chain', 'localhost:9944'],
        '--data-dir',
        '--chain: a WebSocket endpoint such as ws://127.0.0.1:9944',
      ],
      [['chain', '--heartbeat-ms', '-5'], '--data-dir', 'heartbeat-ms'],
      [
        [
          'participant',
          '--chain',
          'ws://127.0.0.1:1',
          '--task',
          't',
          '--key',
          'k.json',
          '--data',
          'csv:x.csv',
        ],
        '--state-dir',
        '--wait-chain: expected seconds > 0',
        ['--wait-chain', '0'],
      ],
    ])('%j is a usage error before anything starts', async (args, dirFlag, message, more = []) => {
      const dir = join(work, `no-start-${args[0]}`);
      const run = await ailink([...args, ...more, dirFlag, dir], { cwd: work });
      expect(run.code, run.stderr).toBe(2);
      expect(run.stderr).toContain(message);
      expect(existsSync(dir)).toBe(false);
    });

    it('`help` prints the usage on stdout and exits 0', async () => {
      const run = await ailink(['help'], { cwd: work });
      expect(run.code).toBe(0);
      expect(run.stdout).toContain('ailink keys new --out FILE');
    });

    it('`store get FID` without --out → exit 2 (with a network file present)', async () => {
      const dir = join(work, 'usage-net');
      await stubNetwork(dir);
      const fid = 'ab'.repeat(32);
      const run = await ailink(['store', 'get', fid, '--network', join(dir, 'network.json')], { cwd: work });
      expect(run.code).toBe(2);
      expect(run.stderr).toContain('--out FILE is required');
      expect(run.stderr).toContain('ailink store get FID --out FILE');
    });

    it('`store get FID` without --out → exit 2 even when no network is running', async () => {
      const run = await ailink(['store', 'get', 'ab'.repeat(32)], { cwd: work });
      expect(run.code).toBe(2);
    });

    it('a role config file that does not validate is refused naming the field, before anything starts', async () => {
      const dir = join(work, 'bad-config');
      mkdirSync(dir);
      const config = join(dir, 'coordinator.json');
      writeFileSync(config, JSON.stringify({ 'http-port': 'eighty', listne: '10.0.0.2' }));
      const run = await ailink(['coordinator', '--config', config, '--data-dir', join(dir, 'state')], {
        cwd: work,
      });
      expect(run.code, run.stderr).toBe(2);
      expect(run.stderr).toContain('INVALID_INPUT');
      expect(run.stderr).toContain('http-port');
      expect(run.stderr).toContain('listne: not a flag of `ailink coordinator`');
      expect(existsSync(join(dir, 'state'))).toBe(false);
    });

    it('a chain that does not answer is CHAIN_UNREACHABLE naming the address tried; --chain without --key is a usage error', async () => {
      const dir = join(work, 'no-chain');
      mkdirSync(dir);
      const key = join(dir, 'me.json');
      await createKeyFile(key, systemRandom);
      const args = ['store', 'ls', '--chain', 'ws://127.0.0.1:1', '--state-dir', dir];
      const run = await ailink([...args, '--key', key], { cwd: work });
      expect(run.code, run.stderr).toBe(1);
      expect(run.stderr).toContain('CHAIN_UNREACHABLE');
      expect(run.stderr).toContain('ws://127.0.0.1:1');
      const keyless = await ailink(args, { cwd: work });
      expect(keyless.code).toBe(2);
      expect(keyless.stderr).toContain('--key FILE is required with --chain');
    });

    it('`task create` needs --coordinator URL; a coordinator that does not answer is COORDINATOR_UNREACHABLE naming the URL', async () => {
      const dir = join(work, 'no-coordinator');
      mkdirSync(dir);
      const key = join(dir, 'owner.json');
      const file = writeTaskFile(dir, [(await createKeyFile(key, systemRandom)).address]);
      const args = ['task', 'create', file, '--chain', 'ws://127.0.0.1:1', '--state-dir', dir, '--key', key];
      const noUrl = await ailink(args, { cwd: work });
      expect(noUrl.code, noUrl.stderr).toBe(2);
      expect(noUrl.stderr).toContain('expected --coordinator URL');
      const url = `http://127.0.0.1:${await closedPort()}`;
      const silent = await ailink([...args, '--coordinator', url], { cwd: work });
      expect(silent.code, silent.stderr).toBe(1);
      expect(silent.stderr).toContain('COORDINATOR_UNREACHABLE');
      expect(silent.stderr).toContain(`${url}/v1/info`);
    });

    it('a participant whose chain does not answer says which chain it tried', async () => {
      const dir = join(work, 'lost-participant');
      mkdirSync(dir);
      const key = join(dir, 'org.json');
      await createKeyFile(key, systemRandom);
      const run = await ailink(
        [
          'participant',
          '--chain',
          'ws://127.0.0.1:1',
          '--wait-chain',
          '2',
          '--task',
          't',
          '--key',
          key,
          '--data',
          'csv:x.csv',
        ],
        { cwd: work },
      );
      expect(run.code).toBe(1);
      expect(run.stderr).toContain('CHAIN_UNREACHABLE');
      expect(run.stderr).toContain('ws://127.0.0.1:1');
    });
  });
});

// --- a real local network: `ailink dev` with its dev chain and 13 miner processes on loopback --------------------

interface DevRun {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr: string;
}

const isRunning = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
};

const readNetwork = (path: string): NetworkFile | undefined => {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as NetworkFile;
  } catch {
    return undefined;
  }
};

/**
 * Starts `ailink dev` in the background and waits until it has written a network.json listing none of `stalePids`
 * (a restart finds the previous run's file still there).
 */
async function startDev(
  dir: string,
  args: readonly string[],
  stalePids: ReadonlySet<number>,
): Promise<{ dev: DevRun; network: NetworkFile }> {
  mkdirSync(dir, { recursive: true });
  // 'ipc': should this test's process die before it stops `ailink dev`, the network stops itself (and its miners).
  const child = spawn(process.execPath, [BIN, 'dev', '--data-dir', dir, ...args], {
    cwd: dir,
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  child.channel?.unref();
  const dev: DevRun = {
    child,
    exited: new Promise((res) => child.once('exit', (code, signal) => res({ code, signal }))),
    stderr: '',
  };
  child.once('error', (err) => {
    dev.stderr += `spawn failed: ${err.message}\n`;
  });
  child.stderr!.setEncoding('utf8').on('data', (s: string) => {
    dev.stderr += s;
  });
  const path = join(dir, 'network.json');
  // ≈ 25 s on a quiet 2-core machine (chain, verifier, 13 miners registering); room for a busy one.
  const deadline = Date.now() + 100_000;
  for (;;) {
    const network = readNetwork(path);
    if (network && network.processes.length > 0 && network.processes.every((p) => !stalePids.has(p.pid))) {
      return { dev, network };
    }
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `ailink dev exited (${child.exitCode ?? child.signalCode}) before ready:\n${dev.stderr}`,
      );
    }
    if (Date.now() > deadline) {
      await stopDev(dev);
      throw new Error(`ailink dev wrote no network.json within 100 s:\n${dev.stderr}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** SIGTERM, then wait for exit (SIGKILL after 30 s as a last resort, which the caller's checks will notice). */
async function stopDev(dev: DevRun): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (dev.child.exitCode === null && dev.child.signalCode === null) dev.child.kill('SIGTERM');
  const hard = setTimeout(() => dev.child.kill('SIGKILL'), 30_000);
  try {
    return await dev.exited;
  } finally {
    clearTimeout(hard);
  }
}

/** The chain account of the miner a network file lists (`<its data dir>/account.json`). */
const minerAccount = (networkDir: string, p: NetworkFile['processes'][number]): string =>
  (JSON.parse(readFileSync(join(networkDir, p.dataDir, 'account.json'), 'utf8')) as { address: string })
    .address;

/** Waits (briefly) for every pid to be gone and returns those still alive. */
async function survivors(pids: readonly number[]): Promise<number[]> {
  for (let i = 0; i < 40; i++) {
    const alive = pids.filter(isRunning);
    if (alive.length === 0) return [];
    await new Promise((r) => setTimeout(r, 250));
  }
  return pids.filter(isRunning);
}

describe('ailink store against `ailink dev` (a dev chain and 13 real miner processes)', {
  timeout: 180_000,
}, () => {
  let dir: string;
  let cwd: string;
  let networkPath: string;
  let devArgs: string[];
  let dev: DevRun | undefined;
  let network: NetworkFile;
  let second: KeyInfo;
  let third: KeyInfo;
  let input: Uint8Array;
  let inputPath: string;
  const fids: { plain?: string; sealed?: string; shared?: string; small?: string } = {};
  let firstGateway: GatewayInfo | undefined;

  const net = (): string[] => ['--network', networkPath];

  beforeAll(async () => {
    cwd = mkdtempSync(join(tmpdir(), 'ailink-e2e-'));
    dir = join(cwd, 'net');
    networkPath = join(dir, 'network.json');
    const [a, b] = await Promise.all([
      ok(['keys', 'new', '--out', join(cwd, 'second.json')], cwd),
      ok(['keys', 'new', '--out', join(cwd, 'third.json')], cwd),
    ]);
    second = JSON.parse(a) as KeyInfo;
    third = JSON.parse(b) as KeyInfo;
    input = seededBytes('cli-e2e', 150 * KiB);
    inputPath = join(cwd, 'input.bin');
    writeFileSync(inputPath, input);

    devArgs = [
      '--miners',
      '13',
      '--profile',
      'test',
      '--allow',
      second.address,
      '--allow',
      third.address,
      '--gateway',
    ];
    ({ dev, network } = await startDev(dir, devArgs, new Set()));
  }, 180_000);

  afterAll(async () => {
    if (dev) {
      await stopDev(dev);
      const pids = (readNetwork(networkPath)?.processes ?? []).map((p) => p.pid);
      // Do not leave miners behind even when a test failed; the explicit stop test asserts this properly.
      for (const pid of await survivors(pids)) process.kill(pid, 'SIGKILL');
    }
    rmSync(cwd, { recursive: true, force: true });
  }, 180_000);

  it('network.json names the dev chain and lists 13 running miners and the verifier, each with a peer id and a loopback address', () => {
    expect(network.profile).toBe('test');
    // Its output is for a person: no library's warnings (the bundled @polkadot/* beside chopsticks' copy printed 40
    // lines of "has multiple versions").
    expect(dev!.stderr).not.toMatch(/multiple versions|conflicting packages/);
    // Objects are recorded on the chain.
    expect(network.chain.endpoint).toMatch(/^ws:\/\/(127\.0\.0\.1|localhost):[0-9]+/);
    expect(network.chain.protocol.audit.proofs.challengeBlocks).toBe(47);
    expect(network.processes.filter((p) => p.role === 'miner')).toHaveLength(13);
    expect(network.processes.filter((p) => p.role === 'verifier')).toHaveLength(1);
    expect(new Set(network.processes.map((p) => p.peerId)).size).toBe(14);
    for (const p of network.processes) {
      expect(isRunning(p.pid)).toBe(true);
      expect(p.addrs.some((a) => a.startsWith('/ip4/127.0.0.1/tcp/'))).toBe(true);
    }
    expect(modeOf(join(dir, network.operatorKey))).toBe(0o600);
  });

  it('`ailink dev --gateway`: gateway.json names the operator’s S3 gateway, which awscli stores through and reads back', async () => {
    const infoPath = join(dir, 'gateway', 'gateway.json');
    // The gateway starts once the network is up, a moment after network.json.
    for (const until = Date.now() + 60_000; !existsSync(infoPath) && Date.now() < until; ) {
      await new Promise((r) => setTimeout(r, 250));
    }
    const info = GatewayInfoSchema.parse(JSON.parse(readFileSync(infoPath, 'utf8')));
    firstGateway = info;
    expect(modeOf(infoPath)).toBe(0o600);
    expect(info.url).toMatch(/^http:\/\/127\.0\.0\.1:[0-9]+$/);
    const aws = awsCli(info, join(cwd, 'aws-home'));
    await aws('s3', 'mb', 's3://cli-bucket');
    await aws('s3', 'cp', inputPath, 's3://cli-bucket/input.bin');
    const out = join(cwd, 'via-gateway.bin');
    await aws('s3', 'cp', 's3://cli-bucket/input.bin', out);
    expect(sha256(readFileSync(out))).toBe(sha256(input));
    expect((await aws('s3', 'ls', 's3://cli-bucket')).stdout).toMatch(/\s153600 input\.bin/);
    // Gone again, so that the operator's listing below holds only what `store put` stores.
    await aws('s3', 'rm', 's3://cli-bucket/input.bin');
    await aws('s3', 'rb', 's3://cli-bucket');
  });

  it('a participant of a task the chain does not record, or whose coordinator does not answer, says which', async () => {
    const key = join(cwd, 'org.json');
    if (!existsSync(key)) await createKeyFile(key, systemRandom);
    const participant = (extra: string[]) =>
      ailink(
        ['participant', '--task', 'no-such-task', '--key', key, '--data', 'csv:x.csv', ...net(), ...extra],
        {
          cwd,
        },
      );
    const unknown = await participant([]);
    expect(unknown.code, unknown.stderr).toBe(1);
    expect(unknown.stderr).toContain('TASK_NOT_FOUND');
    expect(unknown.stderr).toContain(`records no task no-such-task`);
    // Waited for 3 s (by default 10 min, so that a coordinator being restarted is not given up on), then named.
    const silent = await participant(['--coordinator', 'http://127.0.0.1:1', '--wait-coordinator', '3']);
    expect(silent.code, silent.stderr).toBe(1);
    expect(silent.stderr).toContain('trying again in 1 s');
    expect(silent.stderr).toContain('COORDINATOR_UNREACHABLE');
    expect(silent.stderr).toContain('http://127.0.0.1:1/v1/info');
  });

  it('`task list | show | admit | remove | stop`: the owner changes who may join on chain; nobody else can', async () => {
    // A task recorded by the network's operator key (the coordinator fills in a real spec; the chain keeps its digest).
    const owner = await loadKeyFile(join(dir, network.operatorKey));
    const session = await openSession(sessionOf(loadNetworkFile(networkPath)), owner, 'cli-test', {
      clock: systemClock,
      random: systemRandom,
    });
    try {
      await session.submit([
        protocolCall('provenance.createTask', {
          task: 'cli-task',
          spec: 'ab'.repeat(32),
          admitted: [second.address],
        }),
      ]);
    } finally {
      await session.close();
    }
    const listed = JSON.parse(await ok(['task', 'list', '--json', ...net()], cwd)) as { id: string }[];
    expect(listed.map((t) => t.id)).toContain('cli-task');
    const admitted = JSON.parse(
      await ok(['task', 'admit', 'cli-task', third.address, '--json', ...net()], cwd),
    );
    expect(admitted.admitted).toEqual([second.address, third.address]);
    const removed = JSON.parse(
      await ok(['task', 'remove', 'cli-task', second.address, '--json', ...net()], cwd),
    );
    expect(removed.admitted).toEqual([third.address]);
    // Not the owner: the chain refuses, and says why.
    const stranger = await ailink(['task', 'stop', 'cli-task', '--key', third.file, ...net()], { cwd });
    expect(stranger.code, stranger.stderr).toBe(1);
    expect(stranger.stderr).toContain('CHAIN_CALL_REJECTED');
    expect(stranger.stderr).toContain('only the coordinator');
    await ok(['task', 'stop', 'cli-task', ...net()], cwd);
    const shown = JSON.parse(await ok(['task', 'show', 'cli-task', '--json', ...net()], cwd));
    expect(shown.stoppedAt).toBeGreaterThan(0);
    const again = await ailink(['task', 'admit', 'cli-task', second.address, ...net()], { cwd });
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('was stopped at block');
    const unknown = await ailink(['task', 'show', 'no-such-task', ...net()], { cwd });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('TASK_NOT_FOUND');
    // Bad arguments are refused before anything connects.
    const bad = await ailink(['task', 'admit', 'cli-task', 'not-an-address', ...net()], { cwd });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('expected SS58 addresses');
  }, 120_000);

  it("`task create FILE --coordinator URL`: the coordinator's own key creates the task through its API; another key cannot", async () => {
    // The coordinator runs as the third account (whose objects no other test lists), not as the network's operator.
    const coordinator = spawn(
      process.execPath,
      [
        BIN,
        'coordinator',
        ...net(),
        '--key',
        third.file,
        '--data-dir',
        join(cwd, 'coordinator'),
        '--http-port',
        '0',
        '--p2p-port',
        '0',
      ],
      { cwd, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    coordinator.stdout!.setEncoding('utf8').on('data', (s: string) => {
      stdout += s;
    });
    coordinator.stderr!.setEncoding('utf8').on('data', (s: string) => {
      stderr += s;
    });
    const exited = new Promise((res) => coordinator.once('exit', res));
    try {
      const deadline = Date.now() + 90_000;
      let ready: { url: string; account: string } | undefined;
      while (ready === undefined) {
        const line = stdout.split('\n').find((l) => l.includes('"event":"ready"'));
        if (line !== undefined) ready = JSON.parse(line) as { url: string; account: string };
        else if (coordinator.exitCode !== null || Date.now() > deadline)
          throw new Error(`the coordinator did not start:\n${stderr}`);
        else await new Promise((r) => setTimeout(r, 250));
      }
      const file = writeTaskFile(join(cwd, 'cli-created'), [second.address, third.address]);

      // Another account's key (here the network operator's, the default --key) is refused before anything is stored.
      const stranger = await ailink(['task', 'create', file, '--coordinator', ready.url, ...net()], { cwd });
      expect(stranger.code, stranger.stderr).toBe(1);
      expect(stranger.stderr).toContain('AUTH_NOT_AUTHORISED');
      expect(stranger.stderr).toContain(ready.account);
      // Nor does the running coordinator take an unsigned request.
      const unsigned = await fetch(`${ready.url}/v1/tasks`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: readFileSync(file),
      });
      expect(unsigned.status).toBe(401);
      expect(((await unsigned.json()) as { error: { code: string } }).error.code).toBe('AUTH_MISSING');

      const created = JSON.parse(
        await ok(
          ['task', 'create', file, '--coordinator', ready.url, '--key', third.file, '--json', ...net()],
          cwd,
        ),
      ) as { id: string; digest: string; spec: { model: { fid: string } } };
      expect(created.spec.model.fid).toMatch(/^[0-9a-f]{64}$/);
      // On chain: created by the coordinator's account, with the digest the coordinator answered, reached at its URL.
      const shown = JSON.parse(await ok(['task', 'show', created.id, '--json', ...net()], cwd));
      expect(shown).toMatchObject({
        coordinator: ready.account,
        spec: created.digest,
        admitted: [second.address, third.address],
        endpoint: { url: ready.url },
      });
    } finally {
      coordinator.kill('SIGTERM');
      await exited;
    }
  }, 180_000);

  it('`store put --plain` prints the same fid as the offline `store hash`', async () => {
    const [put, hash] = await Promise.all([
      ok(['store', 'put', inputPath, '--plain', ...net()], cwd),
      ok(['store', 'hash', inputPath, '--json', '--profile', 'test'], cwd),
    ]);
    fids.plain = put.trim();
    expect(fids.plain).toMatch(/^[0-9a-f]{64}$/);
    expect(fids.plain).toBe((JSON.parse(hash) as { fid: string }).fid);
    expect(fids.plain).toBe((await hashInProcess(input, TEST_PROFILE)).fid);
  });

  it('`store put --plain` of a file under one segment stores it in a segment of its own size: the fid `store hash` gives', async () => {
    const small = join(cwd, 'small.bin');
    writeFileSync(small, input.subarray(0, 3000));
    const [put, hash] = await Promise.all([
      ok(['store', 'put', small, '--plain', ...net()], cwd),
      ok(['store', 'hash', small, '--json', '--profile', 'test'], cwd),
    ]);
    const offline = JSON.parse(hash) as { fid: string; profile: StorageProfile };
    fids.small = put.trim();
    expect(fids.small).toBe(offline.fid);
    expect(offline.profile.segmentSize).toBe(3072);
  });

  it('`store put` (encrypted) prints another fid; `store get` returns identical bytes for both', async () => {
    fids.sealed = (await ok(['store', 'put', inputPath, '--name', 'sealed.bin', ...net()], cwd)).trim();
    expect(fids.sealed).toMatch(/^[0-9a-f]{64}$/);
    expect(fids.sealed).not.toBe(fids.plain);

    for (const fid of [fids.plain!, fids.sealed]) {
      const out = join(cwd, `out-${fid.slice(0, 8)}.bin`);
      await ok(['store', 'get', fid, '--out', out, ...net()], cwd);
      expect(sha256(readFileSync(out))).toBe(sha256(input));
      expect(existsSync(`${out}.part`)).toBe(false);
    }
  });

  it('`store info --json` shows an Active object on chain, with 12 placements on distinct miners of the network', async () => {
    const peerIds = new Set(network.processes.map((p) => p.peerId));
    const accountOf = new Map(network.processes.map((p) => [p.peerId, minerAccount(dir, p)] as const));
    for (const [fid, encrypted] of [
      [fids.sealed!, true],
      [fids.plain!, false],
    ] as const) {
      const info = JSON.parse(await ok(['store', 'info', fid, '--json', ...net()], cwd)) as {
        fid: string;
        size: number;
        state: string;
        declaredAt: number;
        activeAt: number | null;
        restoralOrders: number[];
        encrypted: boolean;
        readers: string[];
        placements: { column: number; miner: string; account: string | null }[];
        segments: unknown[];
      };
      expect(info.fid).toBe(fid);
      // The chain's word: declared and made Active by the same block (one batchAll), no restoral order open.
      expect(info.state).toBe('Active');
      expect(info.declaredAt).toBeGreaterThan(0);
      expect(info.activeAt).toBe(info.declaredAt);
      expect(info.restoralOrders).toStrictEqual([]);
      expect(info.size).toBe(input.byteLength);
      expect(info.encrypted).toBe(encrypted);
      expect(info.segments).toHaveLength(3);
      expect(info.placements.map((p) => p.column)).toStrictEqual([...Array(12).keys()]);
      const miners = info.placements.map((p) => p.miner);
      expect(new Set(miners).size).toBe(12);
      for (const m of miners) expect(peerIds.has(m)).toBe(true);
      // Each column is held by the chain account of the miner process listed with that peer id.
      for (const p of info.placements) expect(p.account).toBe(accountOf.get(p.miner));
      expect(new Set(info.placements.map((p) => p.account)).size).toBe(12);
      // Encrypted objects are readable by the owner (the operator key) alone unless --to adds readers.
      expect(info.readers).toHaveLength(encrypted ? 1 : 0);
    }
  });

  it('`store ls --json` lists the objects; another key, which owns none, lists nothing', async () => {
    const list = JSON.parse(await ok(['store', 'ls', '--json', ...net()], cwd)) as {
      fid: string;
      size: number;
      name?: string;
      encrypted: boolean;
      segments: number;
    }[];
    const byFid = new Map(list.map((o) => [o.fid, o]));
    expect(byFid.get(fids.plain!)).toMatchObject({
      size: input.byteLength,
      encrypted: false,
      segments: 3,
      name: 'input.bin',
    });
    expect(byFid.get(fids.sealed!)).toMatchObject({
      size: input.byteLength,
      encrypted: true,
      segments: 3,
      name: 'sealed.bin',
    });
    expect(byFid.get(fids.small!)).toMatchObject({
      size: 3000,
      encrypted: false,
      segments: 1,
      name: 'small.bin',
    });
    expect(list).toHaveLength(3);
    // The chain lists the files a key owns: the second account has put nothing.
    const theirs = JSON.parse(await ok(['store', 'ls', '--json', '--key', second.file, ...net()], cwd));
    expect(theirs).toStrictEqual([]);
  });

  it('`store get` of an unknown fid → exit 1 with OBJECT_NOT_FOUND, and no output file', async () => {
    const unknown = 'f'.repeat(64);
    const out = join(cwd, 'unknown.bin');
    const run = await ailink(['store', 'get', unknown, '--out', out, ...net()], { cwd });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('OBJECT_NOT_FOUND');
    expect(run.stderr).toContain(unknown);
    expect(existsSync(out)).toBe(false);
    expect(existsSync(`${out}.part`)).toBe(false);
  });

  it('`store put --to READER` lets that reader get it; a third allowed account gets CRYPTO_NOT_A_READER', async () => {
    const args = ['store', 'put', inputPath, '--to', second.readerKey, '--name', 'shared.bin', ...net()];
    fids.shared = (await ok(args, cwd)).trim();
    expect(fids.shared).toMatch(/^[0-9a-f]{64}$/);

    const info = JSON.parse(await ok(['store', 'info', fids.shared, '--json', ...net()], cwd)) as {
      readers: string[];
    };
    expect(info.readers).toHaveLength(2);
    expect(info.readers).toContain(second.readerKey);
    expect(info.readers).not.toContain(third.readerKey);

    const outSecond = join(cwd, 'shared-second.bin');
    await ok(['store', 'get', fids.shared, '--out', outSecond, '--key', second.file, ...net()], cwd);
    expect(sha256(readFileSync(outSecond))).toBe(sha256(input));

    // The third account may talk to the miners (it is --allow'ed) but holds no wrapped data key.
    const outThird = join(cwd, 'shared-third.bin');
    const run = await ailink(
      ['store', 'get', fids.shared, '--out', outThird, '--key', third.file, ...net()],
      {
        cwd,
      },
    );
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('CRYPTO_NOT_A_READER');
    expect(existsSync(outThird)).toBe(false);
    expect(existsSync(`${outThird}.part`)).toBe(false);
  });

  it('SIGTERM stops `ailink dev` and every miner it started', async () => {
    const pids = network.processes.map((p) => p.pid);
    const exit = await stopDev(dev!);
    expect(exit).toStrictEqual({ code: 0, signal: null });
    expect(await survivors(pids)).toStrictEqual([]);
  });

  it('`ailink dev` again on the same data dir: same peer ids and chain, and earlier objects read back identically', async () => {
    const before = network;
    ({ dev, network } = await startDev(dir, devArgs, new Set(before.processes.map((p) => p.pid))));
    const ids = (n: NetworkFile) => n.processes.map((p) => [p.name, p.peerId, minerAccount(dir, p)]);
    expect(ids(network)).toStrictEqual(ids(before));
    expect(network.operatorKey).toBe(before.operatorKey);
    expect(network.chain).toBeDefined();

    // The chain resumed: the objects are still there, Active, on the same miners.
    const info = JSON.parse(await ok(['store', 'info', fids.plain!, '--json', ...net()], cwd)) as {
      state: string;
      placements: { miner: string }[];
    };
    expect(info.state).toBe('Active');
    const peerIds = new Set(network.processes.map((p) => p.peerId));
    for (const p of info.placements) expect(peerIds.has(p.miner)).toBe(true);

    const list = JSON.parse(await ok(['store', 'ls', '--json', ...net()], cwd)) as { fid: string }[];
    expect(list.map((o) => o.fid).sort()).toStrictEqual(
      [fids.plain, fids.sealed, fids.shared, fids.small].sort(),
    );

    for (const fid of [fids.plain!, fids.sealed!]) {
      const out = join(cwd, `after-restart-${fid.slice(0, 8)}.bin`);
      await ok(['store', 'get', fid, '--out', out, ...net()], cwd);
      expect(sha256(readFileSync(out))).toBe(sha256(input));
    }
    const out = join(cwd, 'after-restart-shared.bin');
    await ok(['store', 'get', fids.shared!, '--out', out, '--key', second.file, ...net()], cwd);
    expect(sha256(readFileSync(out))).toBe(sha256(input));

    // The gateway came back with the same access key (tools configured with it keep working), at a new URL.
    const infoPath = join(dir, 'gateway', 'gateway.json');
    const read = () => GatewayInfoSchema.parse(JSON.parse(readFileSync(infoPath, 'utf8')));
    for (const until = Date.now() + 60_000; read().url === firstGateway!.url && Date.now() < until; ) {
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(read().s3).toEqual(firstGateway!.s3);
    expect(modeOf(infoPath)).toBe(0o600);
    // A restart re-reads the chain (13 processes reconnect at once): ≈ 47 s here on a quiet machine.
  }, 120_000);

  it('stopping the restarted network leaves no miner behind', async () => {
    const pids = network.processes.map((p) => p.pid);
    expect(pids.every(isRunning)).toBe(true);
    const exit = await stopDev(dev!);
    dev = undefined;
    expect(exit).toStrictEqual({ code: 0, signal: null });
    expect(await survivors(pids)).toStrictEqual([]);
  });
});
