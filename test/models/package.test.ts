import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildModel,
  builtinModel,
  decodeModelPackage,
  encodeModelPackage,
  flattenWeights,
  type ModelPackage,
  modelPackageDigest,
  packageWeights,
  readModelJson,
  specOf,
  type Tf,
} from '../../models/index.ts';
import { loadTf } from '../../src/participant/tf.ts';
import { createTrainingPool, type TrainingPool } from '../../src/participant/train-pool.ts';

let tf: Tf;
let pool: TrainingPool;
beforeAll(async () => {
  ({ tf } = await loadTf({ prefer: 'cpu' }));
  pool = createTrainingPool({ threads: 1 });
});
afterAll(() => pool.close());

/** A small model saved by tfjs itself, as a person would hand it over: model.json + weights.bin in a folder. */
async function savedModel(): Promise<{ dir: string; weights: Float32Array }> {
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [5], units: 4, activation: 'relu', name: 'hidden' }),
      tf.layers.dense({ units: 3, activation: 'softmax', name: 'out' }),
    ],
  });
  const dir = await mkdtemp(join(tmpdir(), 'ailink-package-'));
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      await writeFile(
        join(dir, 'model.json'),
        JSON.stringify({
          format: 'layers-model',
          modelTopology: a.modelTopology,
          weightsManifest: [{ paths: ['weights.bin'], weights: a.weightSpecs }],
        }),
      );
      await writeFile(join(dir, 'weights.bin'), new Uint8Array(a.weightData as ArrayBuffer));
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  const weights = new Float32Array(model.weights.flatMap((w) => [...(w.read().dataSync() as Float32Array)]));
  model.dispose();
  return { dir, weights };
}

describe('model packages: a model.json and its weights as one stored object', () => {
  it('a saved tfjs model reads back with its own weights, in the canonical order, through a stable package', async () => {
    const { dir, weights } = await savedModel();
    const pkg = await readModelJson(join(dir, 'model.json'));
    const bytes = encodeModelPackage(pkg);
    expect(decodeModelPackage(bytes)).toEqual(pkg);
    expect(modelPackageDigest(decodeModelPackage(bytes))).toBe(modelPackageDigest(pkg));
    const model = await buildModel(tf, pkg.topology, 'ignored');
    expect(specOf(model)).toMatchObject({
      inputShape: [5],
      outputUnits: 3,
      output: 'probabilities',
      parameters: 39,
    });
    expect(packageWeights(specOf(model), pkg)).toEqual(weights);
    model.dispose();
    // The pool starts round 0 from the package's weights, not from the seed.
    expect((await pool.describe(pkg, 'seed')).initial).toEqual(weights);
  });

  it('weights that do not fit the topology are refused, naming the tensor', async () => {
    const { dir } = await savedModel();
    const pkg = await readModelJson(join(dir, 'model.json'));
    const model = await buildModel(tf, pkg.topology, 's');
    const spec = specOf(model);
    model.dispose();
    const specs = pkg.weights!.specs;
    const renamed: ModelPackage = {
      ...pkg,
      weights: {
        ...pkg.weights!,
        specs: specs.map((w, i) => (i === 2 ? { ...w, name: 'other/kernel' } : w)),
      },
    };
    expect(() => packageWeights(spec, renamed)).toThrow(/no tensor out\/kernel/);
    const reshaped: ModelPackage = {
      ...pkg,
      weights: { ...pkg.weights!, specs: specs.map((w, i) => (i === 0 ? { ...w, shape: [4, 5] } : w)) },
    };
    expect(() => packageWeights(spec, reshaped)).toThrow(
      /hidden\/kernel has shape \[4, 5\], the topology needs \[5, 4\]/,
    );
    await expect(pool.describe(reshaped, null)).rejects.toMatchObject({ code: 'MODEL_SHAPE_MISMATCH' });
    // A weights file shorter than its manifest says.
    await writeFile(join(dir, 'weights.bin'), new Uint8Array(12));
    await expect(readModelJson(join(dir, 'model.json'))).rejects.toMatchObject({
      code: 'MODEL_INVALID',
      message: expect.stringContaining('describes 156 bytes of weights, the files hold 12'),
    });
  });

  it('model.json files that are not layers models, or reach outside their folder, are refused', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ailink-package-bad-'));
    const write = async (name: string, body: string) => {
      await writeFile(join(dir, name), body);
      return readModelJson(join(dir, name)).catch((e: { code: string; message: string }) => e);
    };
    expect(await write('a.json', '{ not json')).toMatchObject({ code: 'MODEL_INVALID' });
    expect(await write('b.json', JSON.stringify({ modelTopology: { class_name: 'Graph' } }))).toMatchObject({
      code: 'MODEL_INVALID',
      message: expect.stringContaining('Sequential or functional'),
    });
    const topology = (await builtinModel('mlp')).topology;
    expect(
      await write(
        'c.json',
        JSON.stringify({ modelTopology: topology, weightsManifest: [{ paths: ['../x.bin'], weights: [] }] }),
      ),
    ).toMatchObject({ code: 'MODEL_INVALID', message: expect.stringContaining('beside model.json') });
    expect(
      await write(
        'd.json',
        JSON.stringify({
          modelTopology: topology,
          weightsManifest: [{ paths: [], weights: [{ name: 'w', shape: [1], dtype: 'int32' }] }],
        }),
      ),
    ).toMatchObject({ code: 'MODEL_INVALID', message: expect.stringContaining('only float32') });
    // Found by `npm run fuzz` (file:model.json): a config that is a list passed `typeof === 'object'` and was read.
    expect(
      await write('e.json', JSON.stringify({ modelTopology: { class_name: 'Sequential', config: [] } })),
    ).toMatchObject({ code: 'MODEL_INVALID', message: expect.stringContaining('no config') });
  });

  it('property: any package bytes with a flipped or cut byte decode as the same package or are refused, never crash', () => {
    const bytes = encodeModelPackage({
      topology: {
        class_name: 'Sequential',
        config: { layers: [{ class_name: 'Dense', config: { units: 2 } }] },
      },
      weights: { specs: [{ name: 'd/kernel', shape: [2], dtype: 'float32' }], data: new Uint8Array(8) },
    });
    fc.assert(
      fc.property(
        fc.nat(bytes.length - 1),
        fc.integer({ min: 1, max: 255 }),
        fc.boolean(),
        (at, flip, cut) => {
          const changed = cut ? bytes.slice(0, at) : bytes.slice();
          if (!cut) changed[at]! ^= flip;
          try {
            decodeModelPackage(changed);
          } catch (err) {
            expect((err as { code?: string }).code).toBe('MODEL_INVALID');
          }
        },
      ),
    );
  });

  it('the same seed gives the same initial weights for a model.json without weights; another seed others', async () => {
    const pkg = await builtinModel('mlp');
    const [a, b, c] = await Promise.all(['s', 's', 't'].map((seed) => buildModel(tf, pkg.topology, seed)));
    expect(flattenWeights(a!)).toEqual(flattenWeights(b!));
    expect(flattenWeights(a!)).not.toEqual(flattenWeights(c!));
    for (const m of [a, b, c]) m!.dispose();
  });

  it('a hand-written model.json that leaves out initializers and layer names is seeded all the same', async () => {
    // tfjs fills in a missing initializer (Glorot uniform, unseeded) and a missing name (from a global counter): a
    // coordinator recomputing round 0 after a restart, or in its loop, got other weights than at task creation.
    const topology = {
      class_name: 'Sequential',
      config: {
        name: 'sparse',
        layers: [
          // relu: a linear Conv2D is fused by tfjs even under gradients, and the fused gradient needs the
          // Conv2DBackpropFilter kernel, which the wasm backend lacks (its trial step refuses such a model).
          {
            class_name: 'Conv2D',
            config: {
              filters: 2,
              kernel_size: [3, 3],
              activation: 'relu',
              batch_input_shape: [null, 6, 6, 1],
            },
          },
          { class_name: 'Flatten', config: {} },
          {
            class_name: 'Dense',
            config: { units: 3, kernel_initializer: { class_name: 'RandomNormal', config: {} } },
          },
        ],
      },
    };
    const built = [];
    for (const seed of ['s', 's', 't']) built.push(await buildModel(tf, topology, seed));
    expect(flattenWeights(built[0]!)).toEqual(flattenWeights(built[1]!));
    expect(flattenWeights(built[0]!)).not.toEqual(flattenWeights(built[2]!));
    for (const m of built) m.dispose();
    // And through the worker pool, as the coordinator computes them.
    const pkg: ModelPackage = { topology, weights: null };
    expect((await pool.describe(pkg, 's')).initial).toEqual((await pool.describe(pkg, 's')).initial);
  });
});
