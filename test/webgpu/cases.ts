/**
 * The webgpu backend's test cases, shared by the Node tests (test/webgpu/) and
 * the browser test (test/web/webgpu-worker.ts runs them in Chromium on
 * navigator.gpu): every kernel primitive's cases against the float64 reference,
 * and a small CNN trained on a given backend. Imports neither vitest nor Node
 * built-ins, so it bundles for a browser.
 *
 * The case table is typed over every kernel primitive, so a primitive added
 * without a case here does not compile. Shapes are odd on purpose: GEMM sizes
 * that are not multiples of its 64×64 tile, broadcasting from size-1 and missing
 * axes, reductions below and above the workgroup-per-output threshold (64),
 * strided and padded convolutions, overlapping pooling windows.
 */
import * as E from 'fp-ts/lib/Either.js';
import { bind, fromArray, Key, withBackend, type Backend, type KernelPrimitive, type PrimitiveParams, type Tensor } from '../../src/core/index.js';
import { denseSet } from '../../src/data/preprocess.js';
import { fit, type FitOptions } from '../../src/nn/fit.js';
import { buildModel } from '../../src/nn/spec.js';

const right = <A>(e: E.Either<Error, A>): A => {
  if (E.isLeft(e)) throw e.left;
  return e.right;
};

/** Values from a fixed seed in [lo, hi) (a small LCG: no dependence on the library's own random streams). */
export const seeded = (n: number, seed: number, lo = -2, hi = 2): number[] => {
  let s = (seed * 2654435761) >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return lo + ((s >>> 8) / (1 << 24)) * (hi - lo);
  });
};

/** ‖a − b‖ / ‖b‖ (‖a − b‖ when b vanishes). */
export const relNorm = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let d = 0,
    r = 0;
  for (let i = 0; i < b.length; i++) {
    d += (a[i]! - b[i]!) ** 2;
    r += b[i]! ** 2;
  }
  return r === 0 ? Math.sqrt(d) : Math.sqrt(d / r);
};

export type Put = (values: readonly number[], shape: readonly number[]) => Tensor;
export interface Case<P extends KernelPrimitive> {
  readonly label: string;
  readonly params: PrimitiveParams<P>;
  /** The inputs on one backend, from `put` (the same values on both). */
  readonly inputs: (put: Put) => Tensor[];
  /** Exact (indices, comparisons) rather than within float32 rounding. */
  readonly exact?: boolean;
  /** A looser bound than 1e-5, with the reason. */
  readonly tol?: number;
}
export type Cases = { readonly [P in KernelPrimitive]: readonly Case<P>[] };

const size = (s: readonly number[]) => s.reduce((p, d) => p * d, 1);
/** Random values of a shape; `lo`/`hi` for domains (log of positives). */
export const r = (put: Put, shape: readonly number[], seed: number, lo = -2, hi = 2): Tensor => put(seeded(size(shape), seed, lo, hi), shape);
/** Small integers: ties for max and its gradient. */
const ints = (put: Put, shape: readonly number[], seed: number): Tensor => put(seeded(size(shape), seed, 0, 4).map(Math.floor), shape);

/** Primitives without parameters. */
type Plain = { [P in KernelPrimitive]: PrimitiveParams<P> extends null ? P : never }[KernelPrimitive];
const unary = <P extends Plain>(lo = -3, hi = 3): Case<P>[] => [
  { label: '[7, 33]', params: null as PrimitiveParams<P>, inputs: (put) => [r(put, [7, 33], 1, lo, hi)] },
  { label: '[70000] (two grid rows)', params: null as PrimitiveParams<P>, inputs: (put) => [r(put, [70000], 2, lo, hi)] },
];
const binary = <P extends Plain>(): Case<P>[] => [
  { label: 'same shape', params: null as PrimitiveParams<P>, inputs: (put) => [r(put, [5, 6], 1), r(put, [5, 6], 2)] },
  { label: '[3, 1, 4] with [5, 1]', params: null as PrimitiveParams<P>, inputs: (put) => [r(put, [3, 1, 4], 3), r(put, [5, 1], 4)] },
  { label: 'row vector', params: null as PrimitiveParams<P>, inputs: (put) => [r(put, [9, 130], 5), r(put, [130], 6)] },
];
export const mm = (m: number, k: number, n: number, transA: boolean, transB: boolean, seed: number): Case<'matmul'> => ({
  label: `${m}×${k}×${n}${transA ? ' Aᵀ' : ''}${transB ? ' Bᵀ' : ''}`,
  params: { transA, transB },
  inputs: (put) => [r(put, transA ? [k, m] : [m, k], seed), r(put, transB ? [n, k] : [k, n], seed + 1)],
});
const conv = { stride: 1, padding: 1 };
const conv2 = { stride: 2, padding: 1 };
const pool = { size: 2, stride: 2 };
const poolOverlap = { size: 3, stride: 2 };
/** x [N, C, H, W] with its moments (channelMoments on the same backend). */
const bnInputs = (put: Put, xs: number[], seed: number) => {
  const x = r(put, xs, seed, -1, 3);
  const m = bind('channelMoments', [x], null);
  const C = xs[1]!;
  return { x, m, g: r(put, [C], seed + 1, 0.5, 1.5), b: r(put, [C], seed + 2), ct: r(put, xs, seed + 3) };
};

export const cases: Cases = {
  add: binary(),
  mul: binary(),
  reluGrad: [{ label: 'x, ct', params: null, inputs: (put) => [r(put, [6, 40], 1), r(put, [6, 40], 2)] }],
  neg: unary(),
  reciprocal: unary(0.2, 3),
  exp: unary(-10, 10),
  log: unary(0.01, 50),
  sqrt: unary(0, 50),
  tanh: [...unary<'tanh'>(-5, 5), { label: 'large |x| (no overflow)', params: null, inputs: (put) => [put([-100, -50, -1e-3, 0, 1e-3, 50, 100], [7])] }],
  sigmoid: [...unary<'sigmoid'>(-8, 8), { label: 'large |x| (no overflow)', params: null, inputs: (put) => [put([-200, -90, 0, 90, 200], [5])] }],
  relu: unary(),
  // WGSL bounds sin and cos only to an absolute error of 2^-11 on [-π, π]: Mesa's are within 1e-5 in norm, SwiftShader's (Chromium) 1.2e-4.
  sin: unary<'sin'>(-6, 6).map((c) => ({ ...c, tol: 5e-4 })),
  cos: unary<'cos'>(-6, 6).map((c) => ({ ...c, tol: 5e-4 })),
  // The shader's erf is Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7): relative to the vector's norm, well inside 1e-5.
  erf: [...unary<'erf'>(-4, 4), { label: 'near 0 and in the tails', params: null, inputs: (put) => [put([-7, -3, -1e-3, 0, 1e-4, 0.5, 2.5, 7], [8])] }],
  round: (['floor', 'ceil', 'halfEven'] as const).map((mode) => ({
    label: `${mode} (halves, negatives)`,
    params: { mode },
    exact: true,
    inputs: (put: Put) => [put([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.3, -0.7, 3.7, -3.2, 1e7 + 0.5], [11])],
  })),
  argsort: [
    { label: 'axis 1 of [4, 9] with ties, ascending', params: { axis: 1, descending: false }, exact: true, inputs: (put) => [ints(put, [4, 9], 1)] },
    { label: 'axis 0 of [6, 3], descending', params: { axis: 0, descending: true }, exact: true, inputs: (put) => [ints(put, [6, 3], 2)] },
    // Bitonic passes over a padded row (1000 → 1024): ties keep their order, NaN goes last ascending and first descending.
    ...[false, true].map((descending) => ({
      label: `axis 1 of [3, 1000] with ties and NaN, ${descending ? 'descending' : 'ascending'}`,
      params: { axis: 1, descending },
      exact: true,
      inputs: (put: Put) => [
        put(
          seeded(3000, 7, 0, 50).map((v, i) => (i % 97 === 5 ? Number.NaN : Math.floor(v))),
          [3, 1000],
        ),
      ],
    })),
    { label: 'axis 0 of [64, 5] (a power of 2, strided)', params: { axis: 0, descending: false }, exact: true, inputs: (put) => [r(put, [64, 5], 3)] },
    { label: 'axis 1 of [4, 1]', params: { axis: 1, descending: true }, exact: true, inputs: (put) => [r(put, [4, 1], 4)] },
  ],
  gather: [
    {
      label: 'along axis 1, negative indices',
      params: { axis: 1 },
      inputs: (put) => [r(put, [3, 5, 2], 1), put([0, -1, 4, 2, 2, -5, 1, 3, 0, 4, -2, 1], [3, 2, 2])],
    },
  ],
  scatterAdd: [
    {
      label: 'repeats accumulate',
      params: { axis: 0 },
      inputs: (put) => [r(put, [4, 3], 1), put([3, 0, 3, -1, 0, 2], [2, 3]), r(put, [2, 3], 2)],
    },
  ],
  matmul: [
    mm(1, 1, 1, false, false, 1),
    mm(65, 17, 70, false, false, 2),
    mm(65, 17, 70, true, false, 3),
    mm(65, 17, 70, false, true, 4),
    mm(65, 17, 70, true, true, 5),
    mm(128, 300, 64, false, false, 6),
    mm(3, 5, 200, true, true, 7),
    mm(130, 64, 10, true, false, 8),
  ],
  sum: [
    { label: 'all of [33, 70] (per-workgroup)', params: { axes: [0, 1], keepDims: false }, inputs: (put) => [r(put, [33, 70], 1)] },
    { label: 'axis 1 of [5, 3, 7]', params: { axes: [1], keepDims: true }, inputs: (put) => [r(put, [5, 3, 7], 2)] },
    { label: 'axes 0, 2 of [40, 3, 9]', params: { axes: [0, 2], keepDims: false }, inputs: (put) => [r(put, [40, 3, 9], 3)] },
  ],
  max: [
    { label: 'axis 1 of [6, 200]', params: { axes: [1], keepDims: false }, inputs: (put) => [r(put, [6, 200], 1)] },
    { label: 'axis 0 of [5, 3, 2] (ties)', params: { axes: [0], keepDims: true }, inputs: (put) => [ints(put, [5, 3, 2], 2)] },
  ],
  maxGrad: [
    {
      label: 'axis 1 of [4, 9] with ties',
      params: { axes: [1] },
      inputs: (put) => {
        const x = ints(put, [4, 9], 3);
        return [x, bind('max', [x], { axes: [1], keepDims: true }), r(put, [4, 1], 4)];
      },
    },
    {
      label: 'axes 0, 2 of [70, 2, 3]',
      params: { axes: [0, 2] },
      inputs: (put) => {
        const x = ints(put, [70, 2, 3], 5);
        return [x, bind('max', [x], { axes: [0, 2], keepDims: true }), r(put, [1, 2, 1], 6)];
      },
    },
  ],
  transpose: [
    { label: '[3, 4, 5] by [2, 0, 1]', params: { perm: [2, 0, 1] }, inputs: (put) => [r(put, [3, 4, 5], 1)] },
    { label: '[65, 70] by [1, 0]', params: { perm: [1, 0] }, inputs: (put) => [r(put, [65, 70], 2)] },
  ],
  broadcastTo: [{ label: '[3, 1] to [2, 3, 4]', params: { shape: [2, 3, 4] }, inputs: (put) => [r(put, [3, 1], 1)] }],
  cast: [{ label: 'float32 to float32', params: { dtype: 'float32' }, inputs: (put) => [r(put, [4, 5], 1)] }],
  conv2d: [
    { label: '[2, 3, 8, 8] ⊛ [5, 3, 3, 3], pad 1', params: conv, inputs: (put) => [r(put, [2, 3, 8, 8], 1), r(put, [5, 3, 3, 3], 2)] },
    { label: '[2, 3, 9, 7] ⊛ [4, 3, 3, 3], stride 2, pad 1', params: conv2, inputs: (put) => [r(put, [2, 3, 9, 7], 3), r(put, [4, 3, 3, 3], 4)] },
    { label: '[1, 16, 10, 10] ⊛ [70, 16, 1, 1]', params: { stride: 1, padding: 0 }, inputs: (put) => [r(put, [1, 16, 10, 10], 5), r(put, [70, 16, 1, 1], 6)] },
  ],
  conv2dGradInput: [
    { label: 'pad 1', params: { ...conv, inputShape: [2, 3, 8, 8] }, inputs: (put) => [r(put, [2, 5, 8, 8], 1), r(put, [5, 3, 3, 3], 2)] },
    { label: 'stride 2, pad 1', params: { ...conv2, inputShape: [2, 3, 9, 7] }, inputs: (put) => [r(put, [2, 4, 5, 4], 3), r(put, [4, 3, 3, 3], 4)] },
  ],
  conv2dGradWeight: [
    { label: 'pad 1', params: { ...conv, filterShape: [5, 3, 3, 3] }, inputs: (put) => [r(put, [2, 5, 8, 8], 1), r(put, [2, 3, 8, 8], 2)] },
    { label: 'stride 2, pad 1', params: { ...conv2, filterShape: [4, 3, 3, 3] }, inputs: (put) => [r(put, [2, 4, 5, 4], 3), r(put, [2, 3, 9, 7], 4)] },
  ],
  maxPool2d: [
    { label: '2×2 stride 2', params: pool, inputs: (put) => [r(put, [2, 3, 6, 8], 1)] },
    { label: '3×3 stride 2 (overlapping, ties)', params: poolOverlap, inputs: (put) => [ints(put, [2, 2, 7, 9], 2)] },
  ],
  maxPool2dGrad: [
    { label: '2×2 stride 2', params: pool, inputs: (put) => [r(put, [2, 3, 3, 4], 1), r(put, [2, 3, 6, 8], 2)] },
    { label: '3×3 stride 2 (overlapping, ties)', params: poolOverlap, inputs: (put) => [r(put, [2, 2, 3, 4], 3), ints(put, [2, 2, 7, 9], 4)] },
  ],
  maxPool2dSelect: [{ label: '3×3 stride 2', params: poolOverlap, inputs: (put) => [ints(put, [2, 2, 7, 9], 1), r(put, [2, 2, 7, 9], 2)] }],
  avgPool2d: [
    { label: '2×2 stride 2', params: pool, inputs: (put) => [r(put, [2, 3, 6, 8], 1)] },
    { label: '3×3 stride 2', params: poolOverlap, inputs: (put) => [r(put, [1, 2, 7, 9], 2)] },
  ],
  avgPool2dGrad: [
    { label: '2×2 stride 2', params: { ...pool, inputShape: [2, 3, 6, 8] }, inputs: (put) => [r(put, [2, 3, 3, 4], 1)] },
    { label: '3×3 stride 2', params: { ...poolOverlap, inputShape: [1, 2, 7, 9] }, inputs: (put) => [r(put, [1, 2, 3, 4], 2)] },
  ],
  slice: [{ label: 'box of [5, 6, 7]', params: { starts: [1, 0, 2], sizes: [3, 6, 4] }, inputs: (put) => [r(put, [5, 6, 7], 1)] }],
  pad: [{ label: 'frame of 0.5 around [3, 4]', params: { before: [1, 0], after: [2, 3], value: 0.5 }, inputs: (put) => [r(put, [3, 4], 1)] }],
  take: [
    { label: 'rows of [5, 3] with repeats', params: { axis: 0, indices: Int32Array.of(4, 0, 4, 2) }, inputs: (put) => [r(put, [5, 3], 1)] },
    { label: 'axis 1 of [2, 6, 3]', params: { axis: 1, indices: Int32Array.of(5, 1) }, inputs: (put) => [r(put, [2, 6, 3], 2)] },
  ],
  takeGrad: [
    { label: 'repeats accumulate', params: { axis: 0, indices: Int32Array.of(4, 0, 4, 2), inputShape: [5, 3] }, inputs: (put) => [r(put, [4, 3], 1)] },
  ],
  concat: [{ label: 'three along axis 1', params: { axis: 1 }, inputs: (put) => [r(put, [2, 3, 2], 1), r(put, [2, 1, 2], 2), r(put, [2, 4, 2], 3)] }],
  select: [{ label: 'cond, a, b', params: null, inputs: (put) => [ints(put, [4, 5], 1), r(put, [4, 5], 2), r(put, [4, 5], 3)] }],
  compare: (['greater', 'greaterEqual', 'less', 'lessEqual', 'equal', 'notEqual'] as const).map((op) => ({
    label: op,
    params: { op },
    exact: true,
    inputs: (put: Put) => [ints(put, [6, 7], 1), ints(put, [6, 7], 2)],
  })),
  sign: [{ label: 'with zeros', params: null, exact: true, inputs: (put) => [put([-2, -0.5, 0, 0.5, 3, 0], [6])] }],
  argmax: [
    { label: 'axis 1 of [5, 7] (ties: first)', params: { axis: 1 }, exact: true, inputs: (put) => [ints(put, [5, 7], 1)] },
    { label: 'axis 0 of [4, 3, 2]', params: { axis: 0 }, exact: true, inputs: (put) => [r(put, [4, 3, 2], 2)] },
  ],
  pow: [
    { label: 'p = 2', params: { p: 2 }, inputs: (put) => [r(put, [30], 1)] },
    { label: 'p = 3 (odd: sign kept)', params: { p: 3 }, inputs: (put) => [r(put, [30], 2)] },
    { label: 'p = 1.5 of positives', params: { p: 1.5 }, inputs: (put) => [r(put, [30], 3, 0.1, 4)] },
    { label: 'p = −2', params: { p: -2 }, inputs: (put) => [r(put, [30], 4, 0.5, 3)] },
  ],
  channelMoments: [
    { label: '[4, 3, 5, 5]', params: null, inputs: (put) => [r(put, [4, 3, 5, 5], 1, -1, 3)] },
    { label: '[3, 2] (no spatial axes)', params: null, inputs: (put) => [r(put, [3, 2], 2)] },
  ],
  batchNorm: [
    {
      label: '[4, 3, 5, 5]',
      params: { eps: 1e-5 },
      inputs: (put) => {
        const { x, m, g, b } = bnInputs(put, [4, 3, 5, 5], 1);
        return [x, m, g, b];
      },
    },
  ],
  batchNormParamGrad: [
    {
      label: '[4, 3, 5, 5]',
      params: { eps: 1e-5 },
      inputs: (put) => {
        const { x, m, ct } = bnInputs(put, [4, 3, 5, 5], 2);
        return [x, m, ct];
      },
    },
  ],
  batchNormGrad: [
    {
      label: '[4, 3, 5, 5]',
      params: { eps: 1e-5 },
      inputs: (put) => {
        const { x, m, g, ct } = bnInputs(put, [4, 3, 5, 5], 3);
        return [x, m, g, ct, bind('batchNormParamGrad', [x, m, ct], { eps: 1e-5 })];
      },
    },
  ],
};

export const putOn =
  (be: Backend, dtype: 'float32' | 'float64'): Put =>
  (values, shape) =>
    right(fromArray(values.map(Math.fround), [...shape], dtype, be));

/** One case on both backends: the results (webgpu's float32 inputs, the reference's float64 ones, both float32-rounded). */
export const runCase = <P extends KernelPrimitive>(gpu: Backend, reference: Backend, prim: P, c: Case<P>): { got: Tensor; want: Tensor } => ({
  got: bind(prim, c.inputs(putOn(gpu, 'float32')) as never, c.params),
  want: bind(prim, c.inputs(putOn(reference, 'float64')) as never, c.params),
});

/** A small CNN (conv, batch norm, relu, max pooling, a strided conv, dense) trained 2 epochs on `on`: each epoch's losses. */
export const trainSmallCnn = (
  on: Backend,
  reference: Backend,
  optimizer: FitOptions['optimizer'],
): Array<{ readonly trainLoss: number; readonly valLoss: number }> => {
  const model = right(
    buildModel({
      kind: 'sequential',
      input: [3, 8, 8],
      layers: [
        { type: 'conv2d', filters: 8, kernel: 3, padding: 1 },
        { type: 'batchNorm' },
        { type: 'relu' },
        { type: 'maxPool2d', size: 2 },
        { type: 'conv2d', filters: 6, kernel: 3, stride: 2, padding: 1 },
        { type: 'relu' },
        { type: 'flatten' },
        { type: 'dense', units: 4 },
      ],
    }),
  );
  const xs = new Key(11).normal([96, 192], 'float32', 0, 1, reference).toTypedArray() as Float32Array;
  const ys = Uint8Array.from({ length: 96 }, (_, i) => (i * 5) % 4);
  // withBackend: the batch-norm layer's running statistics (and Adam's step counter) are made on the default
  // backend, and `fit`'s `backend` option moves the parameters but not that state (a gap of fit's, not this backend's).
  const result = withBackend(on, () =>
    right(
      fit(
        model,
        model.layer.init(new Key(3)),
        {
          train: denseSet(xs.slice(0, 64 * 192), ys.slice(0, 64), 192, 4, on),
          val: denseSet(xs.slice(64 * 192), ys.slice(64), 192, 4, on),
        },
        { epochs: 2, batchSize: 16, shuffle: true, seed: 2, optimizer, backend: on },
      ),
    ),
  );
  return result.history.map((h) => ({ trainLoss: h.trainLoss, valLoss: h.valLoss }));
};
