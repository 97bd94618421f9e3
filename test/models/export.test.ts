import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  BUILTIN_MODELS,
  buildModel,
  builtinModel,
  flattenWeights,
  specOf,
  tfjsModelFiles,
} from '../../models/index.ts';
import { writeTfjsModel } from '../../src/cli/model-files.ts';
import { loadTf } from '../../src/participant/tf.ts';

const { tf } = await loadTf({ prefer: 'cpu' });

/** What tfjs-node's file:// loader does: model.json, then the weight files it names, from the same folder. */
async function loadFromDir(dir: string) {
  const json = JSON.parse(await readFile(join(dir, 'model.json'), 'utf8'));
  return tf.loadLayersModel({
    load: () =>
      tf.io.getModelArtifactsForJSON(json, async (manifest) => {
        const paths = manifest.flatMap((group) => group.paths);
        const data = await Promise.all(paths.map((p) => readFile(join(dir, p))));
        const bytes = new Uint8Array(Buffer.concat(data));
        return [manifest.flatMap((group) => group.weights), bytes.buffer];
      }),
  });
}

describe('TensorFlow.js export', () => {
  it.each(Object.keys(BUILTIN_MODELS))(
    '%s: written files load with tf.loadLayersModel and predict as the weights say',
    async (name) => {
      const { topology } = await builtinModel(name);
      const source = await buildModel(tf, topology, 'export-test');
      const weights = flattenWeights(source);
      const dir = await mkdtemp(join(tmpdir(), 'ailink-export-'));
      try {
        expect(await writeTfjsModel(dir, topology, weights)).toBe(join(dir, 'model.json'));
        const loaded = await loadFromDir(dir);
        const flat = new Float32Array(
          loaded.weights.flatMap((w) => [...(w.read().dataSync() as Float32Array)]),
        );
        expect(flat).toEqual(weights);
        const input = tf.randomUniform([2, ...specOf(source).inputShape], 0, 1, 'float32', 7);
        const want = (source.predict(input) as ReturnType<typeof tf.tensor>).dataSync();
        const got = (loaded.predict(input) as ReturnType<typeof tf.tensor>).dataSync();
        expect([...got]).toEqual([...want]);
        tf.dispose([input]);
        loaded.dispose();
      } finally {
        source.dispose();
        await rm(dir, { recursive: true, force: true });
      }
    },
  );

  it('refuses weights of the wrong length or with NaN, writing nothing', async () => {
    const { topology } = await builtinModel('mlp');
    const n = 199_210;
    await expect(tfjsModelFiles(tf, topology, new Float32Array(n - 1))).rejects.toMatchObject({
      code: 'MODEL_SHAPE_MISMATCH',
    });
    const bad = new Float32Array(n);
    bad[5] = Number.NaN;
    const dir = await mkdtemp(join(tmpdir(), 'ailink-export-'));
    try {
      await expect(writeTfjsModel(join(dir, 'out'), topology, bad)).rejects.toMatchObject({
        code: 'MODEL_WEIGHTS_INVALID',
      });
      await expect(readFile(join(dir, 'out', 'model.json'))).rejects.toThrow();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
