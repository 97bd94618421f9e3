// Byte counts on the command line: pure, so tests import it without the argv helpers (whose IPC watch would end a
// test worker).

/** A byte count: a whole number, or one with a binary suffix (K, M, G, T: 1024-based, as `16G` or `512MiB`); undefined for anything else. */
export function parseByteCount(text: string): number | undefined {
  const m = /^(\d+)([KMGT]?)(i?B)?$/i.exec(text.trim());
  const n = m === null ? Number.NaN : Number(m[1]) * 1024 ** ' KMGT'.indexOf((m[2] || ' ').toUpperCase());
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}
