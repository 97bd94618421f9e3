/**
 * What a Node process's heap holds, and what grew between two moments (issue 18 §3: the soak's miners grow, and
 * resident memory alone cannot tell a leak from a heap growing towards its limit, or the JS heap from native memory).
 *
 * A process started with `--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=DIR` (NODE_OPTIONS) writes a V8 heap
 * snapshot into DIR on SIGUSR2 (`takeHeapSnapshot`). `summarizeHeapSnapshot` adds up its nodes' own sizes by kind: a
 * constructor's name for objects and native objects, the node type for the rest ("(string)", "(closure)", ...).
 * `heapGrowth` compares two summaries; the kinds that grew most come first.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

export interface HeapKind {
  readonly count: number;
  readonly bytes: number;
}

export interface HeapSummary {
  /** The sum of every node's own size: the live JS heap the snapshot saw (after the full GC a snapshot makes). */
  readonly totalBytes: number;
  readonly nodes: number;
  readonly byKind: ReadonlyMap<string, HeapKind>;
}

/** The parts of V8's heap snapshot format this reads (its `snapshot.meta` says where each field sits). */
interface SnapshotJson {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

/** Node types whose name says what they are: the constructor of an object, the class of a native object. */
const NAMED_TYPES = new Set(['object', 'native']);

export function summarizeHeapSnapshot(snapshot: string | SnapshotJson): HeapSummary {
  const s: SnapshotJson = typeof snapshot === 'string' ? JSON.parse(snapshot) : snapshot;
  const fields = s.snapshot.meta.node_fields;
  const typeNames = s.snapshot.meta.node_types[0];
  const width = fields.length;
  const at = (name: string) => {
    const i = fields.indexOf(name);
    if (i < 0) throw new Error(`heap snapshot: no node field "${name}" (fields: ${fields.join(', ')})`);
    return i;
  };
  const [typeAt, nameAt, sizeAt] = [at('type'), at('name'), at('self_size')];
  const byKind = new Map<string, { count: number; bytes: number }>();
  let totalBytes = 0;
  for (let i = 0; i < s.nodes.length; i += width) {
    const type = typeNames[s.nodes[i + typeAt]!] ?? 'unknown';
    const bytes = s.nodes[i + sizeAt]!;
    const kind = NAMED_TYPES.has(type) ? (s.strings[s.nodes[i + nameAt]!] ?? '?') : `(${type})`;
    const k = byKind.get(kind) ?? { count: 0, bytes: 0 };
    k.count++;
    k.bytes += bytes;
    byKind.set(kind, k);
    totalBytes += bytes;
  }
  return { totalBytes, nodes: s.nodes.length / width, byKind };
}

export interface HeapDelta {
  readonly kind: string;
  readonly countDelta: number;
  readonly bytesDelta: number;
}

/** The `top` kinds whose bytes grew most from `before` to `after`, largest first (a kind that shrank is not listed). */
export function heapGrowth(before: HeapSummary, after: HeapSummary, top: number): HeapDelta[] {
  const deltas: HeapDelta[] = [];
  for (const [kind, a] of after.byKind) {
    const b = before.byKind.get(kind) ?? { count: 0, bytes: 0 };
    if (a.bytes > b.bytes)
      deltas.push({ kind, countDelta: a.count - b.count, bytesDelta: a.bytes - b.bytes });
  }
  return deltas.sort((x, y) => y.bytesDelta - x.bytesDelta || x.kind.localeCompare(y.kind)).slice(0, top);
}

/** The NODE_OPTIONS with which a process writes a heap snapshot into `dir` when it gets SIGUSR2. */
export function heapSnapshotOptions(dir: string): string {
  return `--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${dir}`;
}

/**
 * Asks process `pid` (started with `heapSnapshotOptions(dir)`) for a heap snapshot and waits, up to `timeoutMs`, for
 * the file to be whole: its name carries the pid, and V8 writes it at once, the process doing nothing else meanwhile.
 * Returns its path, or undefined when none came in time.
 */
export async function takeHeapSnapshot(
  pid: number,
  dir: string,
  timeoutMs: number,
): Promise<string | undefined> {
  const mine = (f: string) => f.endsWith('.heapsnapshot') && f.split('.').includes(String(pid));
  const known = new Set(readdirSync(dir).filter(mine));
  process.kill(pid, 'SIGUSR2');
  const deadline = Date.now() + timeoutMs;
  let lastSize = -1;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 1000));
    const file = readdirSync(dir).find((f) => mine(f) && !known.has(f));
    if (file === undefined) continue;
    const path = join(dir, file);
    const size = statSync(path).size;
    // Whole once its size holds still and it ends the way the format does (the strings array, then the object).
    if (size > 0 && size === lastSize && readFileSync(path).subarray(-2).toString() === ']}') return path;
    lastSize = size;
  }
  return undefined;
}
