/**
 * The figures of a soak (issue 18 §3, `CHAOS_PROFILE=soak npm run chaos`): each process's resident memory and open
 * files sampled from /proc over the run, and their growth after warm-up; the latency percentiles of gets.
 *
 * Growth is the least-squares slope of the samples after warm-up, per hour, not last minus first: one sample taken
 * during a garbage collection or a burst of open sockets moves an endpoint a lot and a slope little.
 */
import { readdirSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';

export interface Sample {
  /** Seconds since the run started. */
  readonly at: number;
  readonly rssMiB: number;
  /**
   * Resident MiB of the `[heap]` mapping: the memory glibc's malloc takes with brk for its main arena (small native
   * allocations of the main thread), apart from V8's heap and large buffers, which are mmapped. Other allocators
   * (jemalloc) leave it near 0.
   */
  readonly brkMiB: number;
  readonly fds: number;
}

/** One sample of a live process from /proc, or undefined when it is gone (or this is not Linux). */
export function sampleProcess(pid: number, at: number): Sample | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
    if (kb === undefined) return undefined; // a zombie has no memory line
    return {
      at,
      rssMiB: Number(kb) / 1024,
      brkMiB: brkResidentKiB(readFileSync(`/proc/${pid}/smaps`, 'utf8')) / 1024,
      fds: readdirSync(`/proc/${pid}/fd`).length,
    };
  } catch {
    return undefined;
  }
}

/** The resident KiB of the `[heap]` mapping in the text of /proc/PID/smaps (0 when it has none). */
export function brkResidentKiB(smaps: string): number {
  const at = smaps.indexOf(' [heap]\n');
  if (at < 0) return 0;
  const kb = /^Rss:\s+(\d+) kB/m.exec(smaps.slice(at))?.[1];
  return kb === undefined ? 0 : Number(kb);
}

/**
 * The pid of a process in process group `pgid` that runs the executable `exe`, or undefined: the node process that a
 * wrapper (heaptrack's script) leading the group started. The executable, not the command line, tells them apart:
 * the wrapper's command line names the same script.
 */
export function processInGroup(pgid: number, exe: string): number | undefined {
  const want = realpathSync(exe);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // Field 5 of stat is the process group; the command (field 2) may hold spaces, so count after its ')'.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const group = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
      if (group === pgid && readlinkSync(`/proc/${entry}/exe`) === want) return Number(entry);
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return undefined;
}

/** The least-squares slope of y over x, or null with fewer than two distinct x. */
export function slope(points: readonly (readonly [number, number])[]): number | null {
  const n = points.length;
  if (n < 2) return null;
  const mx = points.reduce((a, [x]) => a + x, 0) / n;
  const my = points.reduce((a, [, y]) => a + y, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (const [x, y] of points) {
    sxy += (x - mx) * (y - my);
    sxx += (x - mx) ** 2;
  }
  return sxx === 0 ? null : sxy / sxx;
}

export interface Growth {
  readonly samples: number;
  /** At the first sample after warm-up, and at the last. */
  readonly rssStartMiB: number;
  readonly rssEndMiB: number;
  readonly rssMaxMiB: number;
  /** MiB per hour after warm-up (null: too few samples). */
  readonly rssMiBPerH: number | null;
  /** The `[heap]` mapping's growth, MiB per hour (null: too few samples). */
  readonly brkMiBPerH: number | null;
  readonly fdsStart: number;
  readonly fdsEnd: number;
  readonly fdsMax: number;
  readonly fdsPerH: number | null;
}

/** The growth of one process over its samples taken at or after `warmupS`; undefined when none was. */
export function growthOf(samples: readonly Sample[], warmupS: number): Growth | undefined {
  const after = samples.filter((s) => s.at >= warmupS);
  const first = after[0];
  const last = after.at(-1);
  if (first === undefined || last === undefined) return undefined;
  const perHour = (pick: (s: Sample) => number) => {
    const m = slope(after.map((s) => [s.at, pick(s)] as const));
    return m === null ? null : m * 3600;
  };
  return {
    samples: after.length,
    rssStartMiB: first.rssMiB,
    rssEndMiB: last.rssMiB,
    rssMaxMiB: Math.max(...after.map((s) => s.rssMiB)),
    rssMiBPerH: perHour((s) => s.rssMiB),
    brkMiBPerH: perHour((s) => s.brkMiB),
    fdsStart: first.fds,
    fdsEnd: last.fds,
    fdsMax: Math.max(...after.map((s) => s.fds)),
    fdsPerH: perHour((s) => s.fds),
  };
}

/** The nearest-rank percentile `p` (0–100] of `xs`, or null when empty. */
export function percentile(xs: readonly number[], p: number): number | null {
  if (xs.length === 0) return null;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length))) - 1]!;
}
