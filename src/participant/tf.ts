import type * as Tfjs from '@tensorflow/tfjs';
import type { Tf } from '../../models/index.ts';
import { AilinkError } from '../shared/errors.ts';

/**
 * Loading TensorFlow.js in Node (DESIGN.md §7, research/deps.md §1). Best first:
 *  - `tensorflow`: @tensorflow/tfjs-node, native libtensorflow. An optional dependency that cannot install offline,
 *    so usually absent;
 *  - `wasm`: @tensorflow/tfjs + @tensorflow/tfjs-backend-wasm (XNNPACK, SIMD; single-threaded in Node, so one
 *    instance per worker thread). It lacks the Conv2DBackpropFilter kernel and its transposed matMul is about 10×
 *    slower, so `installWasmGradients` replaces the Conv2D and BatchMatMul gradients with ones built from forward ops;
 *  - `cpu`: plain JavaScript, always there, far too slow for the CNN (≈1 training sample/s against ≈345 on wasm,
 *    bench/train.ts).
 */

export type BackendName = 'tensorflow' | 'wasm' | 'cpu';
export const BACKENDS: readonly BackendName[] = ['tensorflow', 'wasm', 'cpu'];

// A variable, so that TypeScript does not try to resolve a package that is normally not installed.
const TFJS_NODE = '@tensorflow/tfjs-node';

/** tfjs packages are CommonJS: Node usually finds their named exports, but fall back to the default export. */
const namespaceOf = (module: { default?: unknown }): Tf =>
  (typeof (module as Partial<Tf>).setBackend === 'function' ? module : module.default) as Tf;

const importers: Record<BackendName, () => Promise<Tf>> = {
  tensorflow: async () => namespaceOf(await import(TFJS_NODE)),
  async wasm() {
    const tf = namespaceOf(await import('@tensorflow/tfjs'));
    await import('@tensorflow/tfjs-backend-wasm'); // registers the 'wasm' backend with tfjs-core
    return tf;
  },
  cpu: async () => namespaceOf(await import('@tensorflow/tfjs')),
};

/**
 * Loads TensorFlow.js and makes the best available backend (or `prefer`, when it loads) the active one. Call it
 * once per thread: tfjs is one global engine per thread, so a second call with another preference switches the
 * backend for everything on this thread.
 * @throws TRAINING_BACKEND_UNAVAILABLE when no backend loads (cpu always should)
 */
export async function loadTf(
  options: { prefer?: BackendName } = {},
): Promise<{ tf: Tf; backend: BackendName }> {
  const order = options.prefer ? [options.prefer, ...BACKENDS.filter((b) => b !== options.prefer)] : BACKENDS;
  const failures: string[] = [];
  for (const backend of order) {
    let tf: Tf;
    try {
      tf = await importers[backend]();
    } catch (err) {
      failures.push(`${backend}: ${(err as Error).message.split('\n')[0]}`);
      continue;
    }
    quiet(tf);
    if (backend === 'wasm') installWasmGradients(tf);
    // setBackend initialises the backend and answers false (after logging) when it cannot.
    if (await withoutNewProcessHandlers(() => tf.setBackend(backend))) return { tf, backend };
    failures.push(`${backend}: initialisation failed`);
  }
  throw new AilinkError(
    'TRAINING_BACKEND_UNAVAILABLE',
    `no TensorFlow.js backend loaded: ${failures.join('; ')}`,
  );
}

/**
 * Production mode only silences tfjs's warnings, among them the cpu backend's "Hi, looks like you are running
 * TensorFlow.js in Node.js…" banner, which would otherwise land in every participant's output.
 */
function quiet(tf: Tf): void {
  tf.env().set('PROD', true);
}

/**
 * The wasm backend's Emscripten glue adds process-wide 'uncaughtException' and 'unhandledRejection' listeners that
 * rethrow, so that any later uncaught error in the process is reported from inside its one-line, 30 kB minified file
 * (the whole line is printed). Node's own default does the same without that noise, so drop what initialisation added.
 */
async function withoutNewProcessHandlers<T>(init: () => Promise<T>): Promise<T> {
  // Typed loosely: the overloads of process.listeners/removeListener do not take a union of event names.
  const events: string[] = ['uncaughtException', 'unhandledRejection'];
  const emitter = process as unknown as NodeJS.EventEmitter;
  const before = events.map((e) => new Set(emitter.listeners(e)));
  try {
    return await init();
  } finally {
    events.forEach((event, i) => {
      for (const listener of emitter.listeners(event)) {
        if (!before[i]!.has(listener))
          emitter.removeListener(event, listener as (...args: unknown[]) => void);
      }
    });
  }
}

// Marks our gradient configs, so that installing twice does not wrap our own gradient as the "original".
const OURS = Symbol.for('ailink.wasmGradient');

/**
 * Replaces the registered gradients of Conv2D and BatchMatMul with ones that use only forward ops when the active
 * backend is wasm, and defer to tfjs's own gradients on every other backend (tfjs-node has fast native kernels, and
 * the cpu backend stays the untouched reference the tests compare against). The gradient registry is global, so
 * ordinary tf.layers models train on wasm unchanged. Idempotent.
 */
export function installWasmGradients(tf: Tf): void {
  for (const make of [conv2dGradient, matMulGradient]) {
    const current = tf.getGradient(make.kernel) as Tfjs.GradConfig & { [OURS]?: true };
    if (current[OURS]) continue;
    tf.registerGradient(Object.assign(make(tf, current), { [OURS]: true }));
  }
}

type Tensor4D = Tfjs.Tensor4D;
type GradResult = Record<string, () => Tfjs.Tensor>;

const allOnes = (v: number | readonly number[] | undefined) =>
  v === undefined || (typeof v === 'number' ? v === 1 : v.every((x) => x === 1));

/**
 * Conv2D (NHWC, stride 1, no dilation — the CNN's case; anything else defers to tfjs), with the kernel padded as
 * tfjs pads it (top/bottom/left/right from computeConv2DInfo):
 *  - dx: the full correlation of dy with the kernel turned 180° and its in/out channels swapped, i.e. a forward conv
 *    of dy padded by k−1−pad on each side (≈9× faster than wasm's own Conv2DBackpropInput kernel on the CNN's conv2);
 *  - dW[i,j,c,o] = Σ_{n,y,x} xpad[n,y+i,x+j,c]·dy[n,y,x,o]: a forward 'valid' conv with the batch axis playing the
 *    channel role — xpad as [c, H+pads, W+pads, n] convolved with dy as [y, x, n, o] gives [c, kh, kw, o].
 */
function conv2dGradient(tf: Tf, original: Tfjs.GradConfig): Tfjs.GradConfig {
  return {
    kernelName: 'Conv2D',
    inputsToSave: ['x', 'filter'],
    gradFunc(dy, saved, attrs) {
      const [x, filter] = saved as [Tensor4D, Tensor4D];
      const { strides, dilations, pad, dataFormat, dimRoundingMode } = attrs as unknown as Tfjs.Conv2DAttrs;
      if (tf.getBackend() !== 'wasm' || !allOnes(strides) || !allOnes(dilations) || dataFormat !== 'NHWC') {
        return original.gradFunc(dy, saved, attrs);
      }
      const info = tf.backend_util.computeConv2DInfo(
        x.shape,
        filter.shape,
        strides,
        dilations,
        pad,
        dimRoundingMode,
      );
      const { top, bottom, left, right } = info.padInfo;
      const [kh, kw] = filter.shape;
      // dy needs k−1−pad more rows/columns on each side; where that is negative (padding wider than the kernel),
      // pad by zero and crop the surplus from the result instead.
      const [lo, hi, leftPad, rightPad] = [kh - 1 - top, kh - 1 - bottom, kw - 1 - left, kw - 1 - right];
      const g = dy as Tensor4D;
      return {
        x: () => {
          const rotated = tf.transpose(tf.reverse(filter, [0, 1]), [0, 1, 3, 2]);
          const dx = tf.conv2d(g, rotated, 1, [
            [0, 0],
            [Math.max(lo, 0), Math.max(hi, 0)],
            [Math.max(leftPad, 0), Math.max(rightPad, 0)],
            [0, 0],
          ]);
          return Math.min(lo, hi, leftPad, rightPad) >= 0
            ? dx
            : tf.slice(dx, [0, Math.max(-lo, 0), Math.max(-leftPad, 0), 0], x.shape);
        },
        filter: () => {
          const padded = tf.pad(x, [
            [0, 0],
            [top, bottom],
            [left, right],
            [0, 0],
          ]);
          const dw = tf.conv2d(tf.transpose(padded, [3, 1, 2, 0]), tf.transpose(g, [1, 2, 0, 3]), 1, 'valid');
          return tf.transpose(dw, [1, 2, 0, 3]);
        },
      } satisfies GradResult;
    },
  };
}
conv2dGradient.kernel = 'Conv2D';

/**
 * BatchMatMul of two matrices (dense layers; batched products defer to tfjs): the same algebra as tfjs's gradient,
 * with every transpose done explicitly, since wasm's BatchMatMul with transposeA/B set runs ≈10× slower than a
 * transpose followed by a plain product.
 */
function matMulGradient(tf: Tf, original: Tfjs.GradConfig): Tfjs.GradConfig {
  return {
    kernelName: 'BatchMatMul',
    inputsToSave: ['a', 'b'],
    gradFunc(dy, saved, attrs) {
      const [a, b] = saved as [Tfjs.Tensor2D, Tfjs.Tensor2D];
      if (tf.getBackend() !== 'wasm' || a.rank !== 2 || b.rank !== 2)
        return original.gradFunc(dy, saved, attrs);
      const { transposeA, transposeB } = attrs as unknown as Tfjs.BatchMatMulAttrs;
      const g = dy as Tfjs.Tensor2D;
      const t = (m: Tfjs.Tensor2D) => tf.transpose(m);
      const mm = (p: Tfjs.Tensor2D, q: Tfjs.Tensor2D) => tf.matMul(p, q) as Tfjs.Tensor2D;
      // y = op(a)·op(b) with op the transpose or not; each case is the textbook derivative.
      // A dense layer's case: da = g·bᵀ is made as (b·gᵀ)ᵀ. wasm packs a product's right operand into a buffer of its
      // own (kept while that tensor lives), so g·bᵀ would hold the transposed kernel and its packed copy (two copies
      // of the layer's weights) where b·gᵀ packs only the small gᵀ; the MLP trains ≈ 35 % faster too (bench:train).
      if (!transposeA && !transposeB)
        return { a: () => t(mm(b, t(g))), b: () => mm(t(a), g) } satisfies GradResult;
      if (!transposeA && transposeB) return { a: () => mm(g, b), b: () => mm(t(g), a) } satisfies GradResult;
      if (transposeA && !transposeB) return { a: () => mm(b, t(g)), b: () => mm(a, g) } satisfies GradResult;
      return { a: () => mm(t(b), t(g)), b: () => mm(t(g), t(a)) } satisfies GradResult;
    },
  };
}
matMulGradient.kernel = 'BatchMatMul';
