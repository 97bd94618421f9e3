import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BUNDLE_MAGIC, type BundleVerification, verifyBundle } from '../../src/audit/index.ts';
import { runFederatedDemo } from '../../src/cli/fl-demo.ts';
import { systemRandom } from '../../src/shared/clock.ts';
import { parseManifest } from '../../src/task/index.ts';
import { launchChromium, openWatchedPage } from '../browser.ts';
import { cli } from './cli-helpers.ts';

/**
 * `ailink audit serve` on the live network, as an auditor runs it (issue 19 §5): its own process, chain connection,
 * index and fetches. In Chromium, the task's page verifies every round itself, and once loaded it asks nothing of any
 * origin but the auditor's. Returns what the page showed; the server must stop cleanly on SIGTERM.
 */
async function auditServeInBrowser(task: string, network: string, rounds: number) {
  const server = spawn(
    process.execPath,
    ['bin/ailink.mjs', 'audit', 'serve', '--task', task, '--network', network, '--listen', '127.0.0.1:0'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  server.stdout.setEncoding('utf8').on('data', (s: string) => {
    out += s;
  });
  server.stderr.setEncoding('utf8').on('data', (s: string) => {
    err += s;
  });
  const exited = new Promise<number | null>((res) => server.once('exit', (code) => res(code)));
  const browser = await launchChromium();
  let shown: { url: string; rows: number; verified: number; requests: string[]; errors: string[] };
  let stopped: unknown;
  try {
    const deadline = Date.now() + 120_000;
    let url: string | undefined;
    while (url === undefined) {
      url = / for \S+: (http:\/\/\S+)/.exec(out)?.[1];
      if (server.exitCode !== null || Date.now() > deadline)
        throw new Error(`audit serve did not say its URL within 120 s:\n${out}\n${err}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const { page, errors } = await openWatchedPage(browser, `${url}#task=${encodeURIComponent(task)}`);
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    await page.locator('[data-testid="task-verdict"][data-state="verified"]').waitFor({ timeout: 180_000 });
    const rows = await page.getByTestId('round-row').count();
    const verified = await page.locator('[data-testid="round-row"] [data-testid="badge-verified"]').count();
    shown = { url, rows, verified, requests, errors: [...errors] };
    await page.close();
  } finally {
    await browser.close();
    server.kill('SIGTERM');
    stopped = await Promise.race([exited, new Promise((r) => setTimeout(() => r('timeout'), 30_000))]);
    // A server that ignored SIGTERM must not outlive the test.
    if (stopped === 'timeout') server.kill('SIGKILL');
  }
  expect(stopped, err).toBe(0);
  expect(shown.rows).toBe(rounds);
  return shown;
}

/**
 * Evidence that travels (issue 19 §4): a task run on the real dev chain with 12 miner processes, exported through the
 * CLI into one bundle while the network runs, then checked with the network stopped — no chain, no miner. Then the
 * bundle is attacked: every kind of entry rewritten (with its index digest fixed up, as a forger would), truncated,
 * reordered, stripped of recompute material; each attack is named by code, round and field.
 */

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** The container as the format says (src/audit/bundle.ts), read independently of the code under test. */
interface Parsed {
  index: { entries: { name: string; length: number; sha256: string }[]; tip: { hash: string } } & Record<
    string,
    unknown
  >;
  entries: Map<string, Uint8Array>;
}

function parse(bytes: Uint8Array): Parsed {
  const buf = Buffer.from(bytes);
  expect(buf.toString('latin1', 0, 8)).toBe(BUNDLE_MAGIC);
  expect(buf.readUInt8(8)).toBe(1);
  const length = buf.readUInt32BE(9);
  const index = JSON.parse(buf.toString('utf8', 13, 13 + length));
  const entries = new Map<string, Uint8Array>();
  let at = 13 + length;
  for (const e of index.entries) {
    entries.set(e.name, new Uint8Array(buf.subarray(at, at + e.length)));
    at += e.length;
  }
  expect(at).toBe(buf.byteLength);
  return { index, entries };
}

/** Writes a container back, each entry's length and digest made to fit: what a forger who edits the file does. */
function forge(p: Parsed, edit: (entries: Map<string, Uint8Array>) => void): Uint8Array {
  const entries = new Map(p.entries);
  edit(entries);
  const names = [...entries.keys()].sort();
  const index = {
    ...p.index,
    entries: names.map((name) => ({
      name,
      length: entries.get(name)!.byteLength,
      sha256: sha(entries.get(name)!),
    })),
  };
  const json = Buffer.from(JSON.stringify(index));
  const head = Buffer.alloc(13);
  head.write(BUNDLE_MAGIC, 0, 'latin1');
  head.writeUInt8(1, 8);
  head.writeUInt32BE(json.byteLength, 9);
  return new Uint8Array(Buffer.concat([head, json, ...names.map((n) => entries.get(n)!)]));
}

const codes = (v: BundleVerification) => [
  ...v.findings.map((f) => `${f.code}@${f.round}`),
  ...(v.report?.findings ?? []).map((f) => `${f.code}@${f.round}`),
  ...(v.report?.rounds ?? []).flatMap((r) => r.findings.map((f) => `${f.code}@${f.round}`)),
];

describe('audit export and verify --bundle: evidence checked with no chain and no miner', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ailink-bundle-'));
  const file = join(dir, 'task.bundle');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  let task = '';

  it('a task served by `audit serve` and exported while the network runs verifies offline once the network is stopped; any attack on the bundle is named', async () => {
    let exported: { code: number; stdout: string; stderr: string } | undefined;
    let served: Awaited<ReturnType<typeof auditServeInBrowser>> | undefined;
    await runFederatedDemo(
      { random: systemRandom },
      {
        participants: 3,
        rounds: 2,
        alpha: null,
        epochs: 1,
        secagg: true,
        source: { kind: 'fashion-mnist', small: true, model: 'mlp' },
        drops: [],
        say: () => {},
        async inspect(view) {
          task = view.task;
          const net = join(view.network.dir, 'network.json');
          exported = await cli([
            'audit',
            'export',
            '--task',
            view.task,
            '--out',
            file,
            '--network',
            net,
            '--json',
          ]);
          served = await auditServeInBrowser(view.task, net, 2);
        },
      },
    );
    // The explorer the auditor served verified both rounds in the browser, from its own origin only.
    expect(served?.verified).toBe(2);
    expect(served?.errors).toEqual([]);
    expect(served!.requests.length).toBeGreaterThan(0);
    for (const r of served!.requests) expect(r.startsWith(served!.url), r).toBe(true);
    // The network (chain, miners, coordinator) is stopped now.
    expect(exported?.code, exported?.stderr).toBe(0);
    const line = JSON.parse(exported!.stdout.trim().split('\n').at(-1)!);
    const bytes = new Uint8Array(readFileSync(file));
    expect(line.digest).toBe(sha(bytes));

    const offline = await cli(['audit', 'verify', '--bundle', file, '--json']);
    expect(offline.code, offline.stderr).toBe(0);
    const v = JSON.parse(offline.stdout.trim().split('\n').at(-1)!) as BundleVerification;
    expect(v.ok).toBe(true);
    expect(v.findings).toEqual([]);
    expect(v.digest).toBe(line.digest);
    expect(v.commitments).toEqual(['dev-concat']);
    expect(v.report!.rounds.map((r) => r.aggregate_recomputed)).toEqual([true, true]);

    // The card cites the bundle's digest and tip.
    const card = await cli(['audit', 'report', '--bundle', file, '--format', 'md']);
    expect(card.code, card.stderr).toBe(0);
    expect(card.stdout).toContain(line.digest);
    expect(card.stdout).toContain(v.tip!.hash);

    // The tip the auditor trusts: the bundle's passes, any other is named.
    const tipOk = await verifyBundle(bytes, { expectTip: v.tip!.hash });
    expect(tipOk.ok).toBe(true);
    const otherTip = await verifyBundle(bytes, { expectTip: `0x${'11'.repeat(32)}` });
    expect(codes(otherTip)).toEqual(['TIP_MISMATCH@null']);

    const p = parse(bytes);
    const manifestFids = v.report!.rounds.map((r) => r.manifest.fid);
    const manifests = manifestFids.map((fid) => parseManifest(p.entries.get(`object/${fid}`)!));
    const material = manifests[1]!.aggregation!.fid;
    const blocks = [...p.entries.keys()].filter((n) => n.startsWith('chain/block/'));

    // Any byte flipped in any entry: that entry is named, and what the audit then lacks is named by round.
    for (const name of [`object/${manifestFids[1]}`, `object/${material}`, 'report.json', blocks.at(-1)!]) {
      const flipped = new Uint8Array(bytes);
      // The entry's first byte, wherever it sits in the file.
      let at = 13 + Buffer.from(bytes).readUInt32BE(9);
      for (const e of p.index.entries) {
        if (e.name === name) break;
        at += e.length;
      }
      flipped[at]! ^= 1;
      const t = await verifyBundle(flipped);
      expect(t.ok, name).toBe(false);
      expect(t.findings[0], name).toMatchObject({
        code: 'BUNDLE_ENTRY_DIGEST',
        where: name,
        round: name.startsWith('object/') ? 1 : null,
      });
    }
    // … the flipped manifest and material: the audit says which round lost what.
    {
      const flipAt = (name: string) => {
        const out = new Uint8Array(bytes);
        let at = 13 + Buffer.from(bytes).readUInt32BE(9);
        for (const e of p.index.entries) {
          if (e.name === name) break;
          at += e.length;
        }
        out[at]! ^= 1;
        return out;
      };
      expect(codes(await verifyBundle(flipAt(`object/${manifestFids[1]}`)))).toContain(
        'OBJECT_UNAVAILABLE@1',
      );
      expect(codes(await verifyBundle(flipAt(`object/${material}`)))).toContain('AGGREGATE_MATERIAL@1');
    }

    // Attacks with the index fixed up to fit (a consistent container): the chain and the audit catch them.
    // 1. The manifests swapped: they no longer match the digests the blocks anchored.
    const swapped = await verifyBundle(
      forge(p, (e) => {
        const [a, b] = manifestFids.map((fid) => e.get(`object/${fid}`)!);
        e.set(`object/${manifestFids[0]}`, b!);
        e.set(`object/${manifestFids[1]}`, a!);
      }),
    );
    expect(codes(swapped)).toEqual(expect.arrayContaining(['MANIFEST_DIGEST@0', 'MANIFEST_DIGEST@1']));
    // 2. A manifest rewritten to claim another accuracy.
    const claimed = await verifyBundle(
      forge(p, (e) => {
        const m = JSON.parse(new TextDecoder().decode(e.get(`object/${manifestFids[0]}`)));
        m.metrics = { ...m.metrics, accuracy: 0.99 };
        e.set(`object/${manifestFids[0]}`, new TextEncoder().encode(JSON.stringify(m)));
      }),
    );
    expect(codes(claimed)).toContain('MANIFEST_DIGEST@0');
    // 3. The report rewritten (a better accuracy than the manifest's): the re-derived report differs there.
    const report = await verifyBundle(
      forge(p, (e) => {
        const r = JSON.parse(new TextDecoder().decode(e.get('report.json')));
        r.rounds[1].metrics.accuracy = 0.999;
        e.set('report.json', new TextEncoder().encode(JSON.stringify(r)));
      }),
    );
    expect(report.findings).toEqual([
      expect.objectContaining({
        code: 'REPORT_MISMATCH',
        round: 1,
        where: 'report.json · rounds.1.metrics.accuracy',
      }),
    ]);
    // 4. A block's decoded anchor rewritten to name another digest: not what the header committed to.
    const anchor = blocks.find((n) =>
      new TextDecoder()
        .decode(p.entries.get(n))
        .includes(Buffer.from('provenance.recordRound').toString('hex')),
    )!;
    const forgedAnchor = await verifyBundle(
      forge(p, (e) => {
        const b = JSON.parse(new TextDecoder().decode(e.get(anchor)));
        for (const ex of b.decoded)
          for (const c of ex.calls)
            if (c.call.kind === 'remark') c.call.payload = `${c.call.payload.slice(0, -2)}7e`;
        e.set(anchor, new TextEncoder().encode(JSON.stringify(b)));
      }),
    );
    expect(forgedAnchor.findings[0]).toMatchObject({ code: 'BLOCK_EVIDENCE' });
    expect(forgedAnchor.findings[0]!.where).toMatch(/^block \d+ · extrinsics\[\d+\]\.calls\[\d+\]$/);
    // 5. A raw extrinsic changed with its decoded view: the header's extrinsicsRoot no longer fits.
    const rawChanged = await verifyBundle(
      forge(p, (e) => {
        const b = JSON.parse(new TextDecoder().decode(e.get(anchor)));
        const i = b.extrinsics.length - 1;
        b.extrinsics[i] = b.extrinsics[i].slice(0, -2) + (b.extrinsics[i].endsWith('00') ? '01' : '00');
        e.set(anchor, new TextEncoder().encode(JSON.stringify(b)));
      }),
    );
    expect(rawChanged.findings.map((f) => f.where)).toContain(
      `block ${Number(anchor.split('/').at(-1))} · extrinsicsRoot`,
    );
    // 6. A block left out: the chain has a gap.
    const gap = await verifyBundle(forge(p, (e) => e.delete(blocks[3]!)));
    expect(gap.findings[0]).toMatchObject({ code: 'BLOCK_LINK', where: 'block 5' });
    // 7. Recompute material missing for round 1.
    const noMaterial = await verifyBundle(forge(p, (e) => e.delete(`object/${material}`)));
    expect(codes(noMaterial)).toContain('AGGREGATE_MATERIAL@1');
    expect(noMaterial.ok).toBe(false);

    // Bad input, never a crash: truncated, reordered, extended, not a bundle.
    const truncated = await verifyBundle(bytes.subarray(0, bytes.byteLength - 7));
    expect(truncated.findings[0]).toMatchObject({ code: 'BUNDLE_MALFORMED' });
    expect(truncated.findings[0]!.message).toMatch(/^truncated/);
    for (const cut of [0, 5, 12, 40]) {
      expect((await verifyBundle(bytes.subarray(0, cut))).findings[0]).toMatchObject({
        code: 'BUNDLE_MALFORMED',
      });
    }
    const reorderedIndex = (() => {
      const q = { ...p, index: { ...p.index, entries: [...p.index.entries] } };
      [q.index.entries[0], q.index.entries[1]] = [q.index.entries[1]!, q.index.entries[0]!];
      const json = Buffer.from(JSON.stringify(q.index));
      const head = Buffer.alloc(13);
      head.write(BUNDLE_MAGIC, 0, 'latin1');
      head.writeUInt8(1, 8);
      head.writeUInt32BE(json.byteLength, 9);
      return new Uint8Array(
        Buffer.concat([head, json, ...q.index.entries.map((e) => p.entries.get(e.name)!)]),
      );
    })();
    const reordered = await verifyBundle(reorderedIndex);
    expect(reordered.findings[0]).toMatchObject({ code: 'BUNDLE_MALFORMED' });
    expect(reordered.findings[0]!.message).toMatch(/out of order/);
    // Two entries' bytes swapped under an index left as it was.
    const e0 = p.index.entries[0]!;
    const e1 = p.index.entries[1]!;
    const headEnd = 13 + Buffer.from(bytes).readUInt32BE(9);
    const swappedBytes = new Uint8Array(
      Buffer.concat([
        bytes.subarray(0, headEnd),
        p.entries.get(e1.name)!.subarray(0, e0.length),
        p.entries.get(e0.name)!.subarray(0, e1.length),
        bytes.subarray(headEnd + e0.length + e1.length),
      ]),
    );
    expect((await verifyBundle(swappedBytes)).findings.map((f) => f.code)).toContain('BUNDLE_ENTRY_DIGEST');
    const extended = await verifyBundle(Buffer.concat([bytes, Buffer.from('x')]));
    expect(extended.findings[0]!.message).toMatch(/follow the last entry/);
    // Through the CLI: a named failure, exit 1.
    const bad = join(dir, 'bad.bundle');
    writeFileSync(bad, bytes.subarray(0, bytes.byteLength - 7));
    const refused = await cli(['audit', 'verify', '--bundle', bad]);
    expect(refused.code).toBe(1);
    expect(refused.stdout + refused.stderr).toContain('BUNDLE_MALFORMED');
    expect(task).not.toBe('');
  }, 900_000);
});
