import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tfjsModelFiles } from '../../models/index.ts';
import { loadTf } from '../participant/tf.ts';

/**
 * Writes a flat weight vector as a TensorFlow.js layers model (`model.json` + `weights.bin`) into `dir`, which
 * `tf.loadLayersModel('file://DIR/model.json')` (tfjs-node) or any loader of the format reads. Files appear whole:
 * each is written aside and renamed. Returns the path of model.json.
 */
export async function writeTfjsModel(
  dir: string,
  topology: Record<string, unknown>,
  weights: Float32Array,
): Promise<string> {
  // Serialising needs no speed: the cpu backend, which always loads, keeps this thread's tfjs predictable.
  const { tf } = await loadTf({ prefer: 'cpu' });
  const files = await tfjsModelFiles(tf, topology, weights);
  await mkdir(dir, { recursive: true });
  const put = async (file: string, data: string | Uint8Array) => {
    await writeFile(join(dir, `${file}.part`), data);
    await rename(join(dir, `${file}.part`), join(dir, file));
  };
  await put(files.weightsPath, files.weights);
  await put('model.json', JSON.stringify(files.modelJson));
  return join(dir, 'model.json');
}
