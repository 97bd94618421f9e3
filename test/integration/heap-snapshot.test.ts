import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  heapGrowth,
  heapSnapshotOptions,
  summarizeHeapSnapshot,
  takeHeapSnapshot,
} from '../../bench/heap.ts';

// The soak's heap snapshots (bench/heap.ts): a real Node process, asked by SIGUSR2, writes one; what it allocated
// in between is what the comparison names first.

const dir = mkdtempSync(join(tmpdir(), 'ailink-heap-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A process that keeps 20,000 objects of its own class once told to on stdin, and says when it has. */
const CHILD = `
class RetainedByTheTest { constructor(i) { this.i = i; this.payload = 'x'.repeat(64) + i; } }
const kept = [];
process.stdin.on('data', () => {
  for (let i = 0; i < 20000; i++) kept.push(new RetainedByTheTest(i));
  process.stdout.write('kept\\n');
});
process.stdout.write('ready\\n');
`;

describe('heap snapshots', () => {
  it('name the class whose objects a process kept between two snapshots', async () => {
    const child = spawn(process.execPath, ['-e', CHILD], {
      env: { ...process.env, NODE_OPTIONS: heapSnapshotOptions(dir) },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    try {
      const said = (word: string) =>
        new Promise<void>((res) =>
          child.stdout!.on('data', (b: Buffer) => {
            if (b.toString().includes(word)) res();
          }),
        );
      await said('ready');
      const first = await takeHeapSnapshot(child.pid!, dir, 60_000);
      expect(first).toBeDefined();
      const kept = said('kept');
      child.stdin!.write('go\n');
      await kept;
      const second = await takeHeapSnapshot(child.pid!, dir, 60_000);
      expect(second).toBeDefined();
      expect(second).not.toBe(first);

      const before = summarizeHeapSnapshot(readFileSync(first!, 'utf8'));
      const after = summarizeHeapSnapshot(readFileSync(second!, 'utf8'));
      const sum = [...after.byKind.values()].reduce((a, k) => a + k.bytes, 0);
      expect(sum).toBe(after.totalBytes);
      expect(after.totalBytes).toBeGreaterThan(before.totalBytes);
      const grown = heapGrowth(before, after, 5);
      const retained = grown.find((d) => d.kind === 'RetainedByTheTest');
      expect(retained?.countDelta).toBe(20_000);
      // Each object's string (64 + up to 5 characters) was made by concatenation, then kept: strings grew too.
      expect(grown.some((d) => d.kind.includes('string'))).toBe(true);
    } finally {
      child.kill('SIGKILL');
    }
  }, 120_000);

  it('refuses a snapshot whose nodes lack a field it needs, saying which', () => {
    const bad = {
      snapshot: { meta: { node_fields: ['type', 'name'], node_types: [['object']] } },
      nodes: [],
      strings: [],
    };
    expect(() => summarizeHeapSnapshot(bad as never)).toThrow(/no node field "self_size"/);
  });
});
