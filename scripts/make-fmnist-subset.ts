/**
 * Writes the small Fashion-MNIST subset shipped in models/data/fashion-mnist-small from the full set shipped in
 * models/data/fashion-mnist: the first TRAIN_PER_CLASS training and TEST_PER_CLASS test images of each class, in
 * file order, so the subset is balanced and anyone can regenerate it byte for byte.
 * Usage: node --import tsx scripts/make-fmnist-subset.ts [fullDir]
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { FASHION_MNIST_DIR, SUBSET_DIR } from '../src/participant/dataset.ts';
import { encodeIdxUint8, type ImageDataset, loadIdxDataset } from '../src/participant/idx.ts';

const TRAIN_PER_CLASS = 600;
const TEST_PER_CLASS = 100;

function balanced(data: ImageDataset, perClass: number): { images: Uint8Array; labels: Uint8Array } {
  const pixels = data.rows * data.cols;
  const taken = new Array<number>(10).fill(0);
  const picked: number[] = [];
  for (let i = 0; i < data.count && picked.length < perClass * 10; i++) {
    const label = data.labels[i]!;
    if (taken[label]! < perClass) {
      taken[label]!++;
      picked.push(i);
    }
  }
  const images = new Uint8Array(picked.length * pixels);
  const labels = new Uint8Array(picked.length);
  picked.forEach((from, to) => {
    images.set(data.images.subarray(from * pixels, (from + 1) * pixels), to * pixels);
    labels[to] = data.labels[from]!;
  });
  return { images, labels };
}

const fullDir = process.argv[2] ?? FASHION_MNIST_DIR;
for (const [split, perClass] of [
  ['train', TRAIN_PER_CLASS],
  ['t10k', TEST_PER_CLASS],
] as const) {
  const full = await loadIdxDataset(
    join(fullDir, `${split}-images-idx3-ubyte.gz`),
    join(fullDir, `${split}-labels-idx1-ubyte.gz`),
  );
  const { images, labels } = balanced(full, perClass);
  const n = labels.length;
  // mtime 0 in the gzip header (level 9, no name): the same input gives the same bytes.
  const gz = (b: Uint8Array) => gzipSync(b, { level: 9 });
  writeFileSync(
    join(SUBSET_DIR, `${split}-images-idx3-ubyte.gz`),
    gz(encodeIdxUint8([n, full.rows, full.cols], images)),
  );
  writeFileSync(join(SUBSET_DIR, `${split}-labels-idx1-ubyte.gz`), gz(encodeIdxUint8([n], labels)));
  console.log(`${split}: ${n} images`);
}
