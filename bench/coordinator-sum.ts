/**
 * One child of `npm run bench:scale` (issue 17 item 5): the coordinator's path from the survivors' masked updates to
 * the unmasked sum and the stored recompute material, for ORGS organisations and DIM words, in a process of its own so
 * that its peak RSS is this path's alone. `node --import tsx bench/coordinator-sum.ts MODE ORGS DIM` prints one JSON
 * line: { mode, orgs, dimension, peakMib, seconds, materialBytes }.
 * - streaming (the coordinator now): each update, as the storage would hand it over, is spooled to disk and added
 *   into the SecAgg server's running sum (`createUpdateSpool`, `addMasked`), then dropped; the material is streamed
 *   from the spool (`aggregationMaterialStream`) into a hash, as `storeMaterial` streams it into storage.
 * - held (before): every update's bytes and words kept in Maps until the stage closed (`collectMasked` over all), the
 *   material built whole as one JSON object with each update in base64 (format 1).
 * Both unmask the same sum from the same real SecAgg+ clients (no dropout); the run checks that they agree.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSecAggClient, createSecAggServer, signingKeyPair } from '../src/aggregation/index.ts';
import { createUpdateSpool } from '../src/coordinator/spool.ts';
import { accountFromSeeds, accountsReady } from '../src/shared/account.ts';
import { canonicalJson } from '../src/shared/canonical.ts';
import {
  aggregationMaterialStream,
  decodeStoredUpdate,
  encodeStoredUpdate,
  roundContext,
  secAggShape,
  toWire,
} from '../src/task/index.ts';

const [mode, orgsArg, dimArg] = process.argv.slice(2);
if (mode !== 'streaming' && mode !== 'held')
  throw new Error(`expected the mode streaming or held, got ${mode}`);
const orgs = Number(orgsArg);
const dimension = Number(dimArg);

await accountsReady();
// Deterministic keys and masks, so that both modes unmask the same sum.
let counter = 0;
const random = (n: number) => {
  const out = new Uint8Array(n);
  for (let at = 0; at < n; at += 32)
    out.set(
      createHash('sha256')
        .update(`bench/${counter++}`)
        .digest()
        .subarray(0, Math.min(32, n - at)),
      at,
    );
  return out;
};
const ids = Array.from({ length: orgs }, (_, i) => {
  const seed = (s: string) => new Uint8Array(createHash('sha256').update(`${s}/${i}`).digest());
  return accountFromSeeds(seed('sr'), seed('x')).address;
}).sort();
const keys = new Map(ids.map((id) => [id, signingKeyPair(random)]));
const { k, t } = secAggShape({ secagg: { neighbours: 2 * Math.ceil(Math.log2(orgs)), threshold: 0 } }, orgs);
const context = roundContext('scale', 0, 0);
const params = {
  context,
  identities: new Map(ids.map((id) => [id, keys.get(id)!.publicKey])),
  k,
  t,
  graphSeed: random(32),
  dimension,
};
const clients = ids.map((id) =>
  createSecAggClient(id, { identityKey: keys.get(id)!.privateKey, random }, params),
);
const server = createSecAggServer(params);
const adverts = server.collectAdverts(clients.map((c) => c.advertise()));
const sharesIn = await Promise.all(clients.map((c, i) => c.shareKeys(adverts.get(ids[i]!)!)));
const inbox = server.collectShares(sharesIn);

/** Organisation i's stored update, made when the storage hands it over (a random-looking input of DIM words). */
const storedUpdate = (i: number): Uint8Array => {
  const input = new Uint32Array(dimension);
  for (let j = 0; j < dimension; j++) input[j] = (i * 2654435761 + j * 40503) >>> 0;
  const masked = clients[i]!.maskedInput(inbox.get(ids[i]!) ?? [], input, { inPlace: true });
  return encodeStoredUpdate({
    context,
    from: ids[i]!,
    signature: masked.signature,
    words: masked.body.masked,
  });
};
const asMessage = (bytes: Uint8Array) => {
  const u = decodeStoredUpdate(bytes, dimension);
  return {
    stage: 'masked' as const,
    context,
    from: u.from,
    body: { masked: u.words },
    signature: u.signature!,
  };
};

const t0 = performance.now();
const spoolRoot = mkdtempSync(join(tmpdir(), 'ailink-bench-spool-'));
let survivors: string[];
let writeMaterial: () => Promise<number>;
if (mode === 'streaming') {
  const spool = createUpdateSpool(spoolRoot, context);
  for (let i = 0; i < orgs; i++) {
    const bytes = storedUpdate(i);
    await spool.write(
      ids[i]!,
      (async function* () {
        yield bytes;
      })(),
    );
    if (!server.addMasked(asMessage(bytes))) throw new Error(`bench: update ${i} refused`);
  }
  survivors = server.closeMasked();
  writeMaterial = async () => {
    let n = 0;
    const hash = createHash('sha256');
    const head = { context, adverts: [], shares: sharesIn.map(toWire), consistency: [], unmask: [] };
    const { chunks } = aggregationMaterialStream(
      head,
      survivors.map((a) => spool.source(a)),
    );
    for await (const chunk of chunks) {
      hash.update(chunk);
      n += chunk.byteLength;
    }
    hash.digest();
    await spool.close();
    return n;
  };
} else {
  const bytesOf = new Map<string, Uint8Array>();
  const words = new Map<string, ReturnType<typeof asMessage>>();
  for (let i = 0; i < orgs; i++) {
    const bytes = storedUpdate(i);
    bytesOf.set(ids[i]!, bytes);
    words.set(ids[i]!, asMessage(bytes));
  }
  survivors = server.collectMasked([...words.values()]);
  writeMaterial = async () => {
    const json = canonicalJson({
      version: 1,
      context,
      adverts: [],
      shares: sharesIn.map(toWire),
      masked: survivors.map((a) => ({ account: a, update: Buffer.from(bytesOf.get(a)!).toString('base64') })),
      consistency: [],
      unmask: [],
    });
    const bytes = new TextEncoder().encode(json);
    createHash('sha256').update(bytes).digest();
    return bytes.byteLength;
  };
}
const signatures = server.collectConsistency(clients.map((c) => c.consistency(survivors)));
const { sum } = await server.unmask(clients.map((c) => c.unmask(signatures)));
const materialBytes = await writeMaterial();
const seconds = (performance.now() - t0) / 1000;
rmSync(spoolRoot, { recursive: true, force: true });
console.log(
  JSON.stringify({
    mode,
    orgs,
    dimension,
    peakMib: Math.round(process.resourceUsage().maxRSS / 1024),
    seconds: Number(seconds.toFixed(2)),
    materialBytes,
    sumDigest: createHash('sha256').update(sum).digest('hex'),
  }),
);
