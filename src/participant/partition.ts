import { createHash } from 'node:crypto';
import { AilinkError } from '../shared/errors.ts';

/**
 * Splitting one labelled dataset among simulated organisations, as federated-learning papers do: IID, Dirichlet(α)
 * label skew (Hsu et al. 2019; Flower's DirichletPartitioner) and label shards (McMahan et al. 2017). Pure and
 * deterministic in the seed, so a run can be repeated exactly.
 */

/** Uniform floats in [0, 1) from a seed: xoshiro128** seeded by SHA-256(seed). */
export function seededRng(seed: string): () => number {
  const h = createHash('sha256').update(`ailink/partition/${seed}`).digest();
  const s = new Uint32Array([h.readUInt32LE(0), h.readUInt32LE(4), h.readUInt32LE(8), h.readUInt32LE(12)]);
  if (s.every((x) => x === 0)) s[0] = 1;
  return () => {
    const result = Math.imul(rotl(Math.imul(s[1]!, 5), 7), 9) >>> 0;
    const t = s[1]! << 9;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result / 2 ** 32;
  };
}
const rotl = (x: number, k: number) => ((x << k) | (x >>> (32 - k))) >>> 0;

function shuffle<T>(items: T[], rng: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

function checkClients(clients: number, items: number): void {
  if (!Number.isSafeInteger(clients) || clients < 1 || clients > items) {
    throw new AilinkError('INVALID_INPUT', `expected 1 to ${items} clients, got ${clients}`);
  }
}

/** Every index once, shuffled, in near-equal parts (sizes differ by at most one). */
export function partitionIid(count: number, clients: number, rng: () => number): number[][] {
  checkClients(clients, count);
  const order = shuffle([...Array(count).keys()], rng);
  return Array.from({ length: clients }, (_, c) => order.filter((_, i) => i % clients === c));
}

/** Gamma(α, 1) by Marsaglia–Tsang (with the α < 1 boost), from uniforms. */
function gamma(alpha: number, rng: () => number): number {
  if (alpha < 1) return gamma(alpha + 1, rng) * rng() ** (1 / alpha);
  const d = alpha - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      // Box–Muller normal.
      x = Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = rng();
    if (u < 1 - 0.0331 * x ** 4 || Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
  }
}

/**
 * Label skew: for every class, the share each client gets is drawn from Dirichlet(α, …, α); small α gives each client
 * few classes, large α approaches IID. Every index goes to exactly one client; draws are repeated (up to 100 times)
 * until every client has at least `minSize` samples, as Flower's partitioner does.
 * @throws INVALID_INPUT for α ≤ 0, or when no draw gives every client `minSize` samples
 */
export function partitionDirichlet(
  labels: ArrayLike<number>,
  clients: number,
  alpha: number,
  rng: () => number,
  minSize = 1,
): number[][] {
  checkClients(clients, labels.length);
  if (!(alpha > 0) || !Number.isFinite(alpha))
    throw new AilinkError('INVALID_INPUT', `expected α > 0, got ${alpha}`);
  const byClass = new Map<number, number[]>();
  for (let i = 0; i < labels.length; i++) {
    const members = byClass.get(labels[i]!) ?? [];
    members.push(i);
    byClass.set(labels[i]!, members);
  }
  const classes = [...byClass.keys()].sort((a, b) => a - b);
  for (let attempt = 0; attempt < 100; attempt++) {
    const parts: number[][] = Array.from({ length: clients }, () => []);
    for (const k of classes) {
      const members = shuffle([...byClass.get(k)!], rng);
      const draws = Array.from({ length: clients }, () => gamma(alpha, rng));
      const total = draws.reduce((a, b) => a + b, 0);
      // Cumulative cut points; the last client takes the remainder so every member is assigned once.
      let from = 0;
      let acc = 0;
      for (let c = 0; c < clients; c++) {
        acc += draws[c]! / total;
        const to = c === clients - 1 ? members.length : Math.round(acc * members.length);
        parts[c]!.push(...members.slice(from, to));
        from = to;
      }
    }
    if (parts.every((p) => p.length >= minSize)) return parts.map((p) => p.sort((a, b) => a - b));
  }
  throw new AilinkError(
    'INVALID_INPUT',
    `Dirichlet(${alpha}) gave some of ${clients} clients fewer than ${minSize} samples in 100 draws; raise α or lower the minimum`,
  );
}

/**
 * Label shards (McMahan et al.): sort by label, cut into `clients × shardsPerClient` equal shards, give each client
 * `shardsPerClient` random shards — with 2 shards, most clients see 2 classes.
 */
export function partitionShards(
  labels: ArrayLike<number>,
  clients: number,
  shardsPerClient: number,
  rng: () => number,
): number[][] {
  checkClients(clients, labels.length);
  const shards = clients * shardsPerClient;
  if (!Number.isSafeInteger(shardsPerClient) || shardsPerClient < 1 || shards > labels.length) {
    throw new AilinkError(
      'INVALID_INPUT',
      `expected 1 to ${Math.floor(labels.length / clients)} shards per client, got ${shardsPerClient}`,
    );
  }
  // Stable by label, then index: the same dataset always gives the same shards.
  const sorted = [...Array(labels.length).keys()].sort((a, b) => labels[a]! - labels[b]! || a - b);
  const order = shuffle([...Array(shards).keys()], rng);
  const size = labels.length / shards;
  return Array.from({ length: clients }, (_, c) =>
    order
      .slice(c * shardsPerClient, (c + 1) * shardsPerClient)
      .flatMap((s) => sorted.slice(Math.round(s * size), Math.round((s + 1) * size)))
      .sort((a, b) => a - b),
  );
}
