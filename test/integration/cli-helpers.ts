import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadTf } from '../../src/participant/tf.ts';

/** Runs the ailink CLI as a user would; resolves with its exit code and output (never rejects). */
export function cli(
  args: string[],
  timeoutMs = 240_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('node', ['bin/ailink.mjs', ...args], { timeout: timeoutMs }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/**
 * Loads a pulled TensorFlow.js model (model.json + the weight files it names) with `tf.loadLayersModel`, as tfjs-node's
 * file:// loader would, and returns its weights as one flat vector.
 */
export async function pulledWeights(dir: string): Promise<Float32Array> {
  const { tf } = await loadTf({ prefer: 'cpu' });
  const json = JSON.parse(await readFile(join(dir, 'model.json'), 'utf8'));
  const model = await tf.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: json.modelTopology,
      weightSpecs: json.weightsManifest[0].weights,
      weightData: new Uint8Array(await readFile(join(dir, 'weights.bin'))).buffer,
    }),
  );
  const flat = new Float32Array(model.weights.flatMap((w) => [...(w.read().dataSync() as Float32Array)]));
  model.dispose();
  return flat;
}
