/**
 * Abstract evaluation: the shape and dtype of every primitive's result from its
 * inputs' shapes and dtypes (no values). `bind` (ops.ts) sizes each kernel's
 * output with these; the transformations in src/autodiff reuse them through
 * `bind`. The table is typed over every primitive name: a primitive without a
 * shape rule does not compile.
 */
import type { OutSpec } from './backend.js';
import { matmulDims, reducedShape } from './kernels.js';
import * as KN from './kernels-nd.js';
import { DTYPES, type ArityTuple, type DType, type Primitive, type PrimitiveParams } from './primitives.js';
import { broadcastShapes, makeShape, type Shape } from './shape.js';

/** What abstract evaluation knows of a tensor. */
export interface Abstract {
  readonly shape: Shape;
  readonly dtype: DType;
}

/** A primitive's result shape and dtype from its inputs'. */
export type ShapeRule<P extends Primitive> = (inputs: ArityTuple<P, Abstract>, params: PrimitiveParams<P>) => OutSpec;

/** The inputs' common dtype by `promoteTypes` (float64 when any input is: NumPy's and JAX's promotion between the two float types). */
export const promote = (...xs: readonly Abstract[]): DType => xs.reduce<DType>((d, x) => (DTYPES.indexOf(x.dtype) > DTYPES.indexOf(d) ? x.dtype : d), 'bool');
const same = ([x]: readonly [Abstract]): OutSpec => ({ shape: x.shape, dtype: x.dtype });
const broadcast =
  (op: string) =>
  ([a, b]: readonly [Abstract, Abstract]): OutSpec => ({ shape: broadcastShapes(a.shape, b.shape, op), dtype: promote(a, b) });
/** A pooling window's output shape, [N, C, OH, OW]. */
const poolShape = (s: Shape, size: number, stride: number): Shape =>
  Object.freeze([s[0]!, s[1]!, KN.slidingOut(s[2]!, size, stride, 0), KN.slidingOut(s[3]!, size, stride, 0)]);
const reduced = ([x]: readonly [Abstract], { axes, keepDims }: { readonly axes: readonly number[]; readonly keepDims: boolean }): OutSpec => ({
  shape: reducedShape(x.shape, axes, keepDims),
  dtype: x.dtype,
});

/** Every primitive's result shape and dtype. */
export const shapeRules: { readonly [P in Primitive]: ShapeRule<P> } = {
  add: broadcast('add'),
  mul: broadcast('mul'),
  neg: same,
  reciprocal: same,
  exp: same,
  log: same,
  sqrt: same,
  tanh: same,
  sigmoid: same,
  relu: same,
  sin: same,
  cos: same,
  erf: same,
  round: same,
  reluGrad: ([x, ct]) => ({ shape: x.shape, dtype: promote(x, ct) }),
  matmul: ([a, b], { transA, transB }) => {
    const { m, n } = matmulDims(a.shape, b.shape, transA, transB);
    return { shape: makeShape([m, n]), dtype: promote(a, b) };
  },
  sum: reduced,
  max: reduced,
  maxGrad: ([x, , ct]) => ({ shape: x.shape, dtype: promote(x, ct) }),
  reshape: ([x], { shape }) => ({ shape, dtype: x.dtype }),
  transpose: ([x], { perm }) => ({ shape: Object.freeze(perm.map((p) => x.shape[p]!)), dtype: x.dtype }),
  broadcastTo: ([x], { shape }) => ({ shape, dtype: x.dtype }),
  cast: ([x], { dtype }) => ({ shape: x.shape, dtype }),
  conv2d: ([x, w], { stride, padding }) => ({
    shape: Object.freeze([
      x.shape[0]!,
      w.shape[0]!,
      KN.slidingOut(x.shape[2]!, w.shape[2]!, stride, padding),
      KN.slidingOut(x.shape[3]!, w.shape[3]!, stride, padding),
    ]),
    dtype: promote(x, w),
  }),
  conv2dGradInput: ([ct], { inputShape }) => ({ shape: inputShape, dtype: ct.dtype }),
  conv2dGradWeight: ([ct], { filterShape }) => ({ shape: filterShape, dtype: ct.dtype }),
  maxPool2d: ([x], { size, stride }) => ({ shape: poolShape(x.shape, size, stride), dtype: x.dtype }),
  maxPool2dGrad: ([ct, x]) => ({ shape: x.shape, dtype: promote(ct, x) }),
  maxPool2dSelect: ([x, t], { size, stride }) => ({ shape: poolShape(x.shape, size, stride), dtype: promote(x, t) }),
  avgPool2d: ([x], { size, stride }) => ({ shape: poolShape(x.shape, size, stride), dtype: x.dtype }),
  avgPool2dGrad: ([ct], { inputShape }) => ({ shape: inputShape, dtype: ct.dtype }),
  slice: ([x], { sizes }) => ({ shape: Object.freeze([...sizes]), dtype: x.dtype }),
  pad: ([x], { before, after }) => ({ shape: Object.freeze(x.shape.map((d, a) => d + before[a]! + after[a]!)), dtype: x.dtype }),
  take: ([x], { axis, indices }) => ({ shape: Object.freeze(x.shape.map((d, a) => (a === axis ? indices.length : d))), dtype: x.dtype }),
  takeGrad: ([ct], { inputShape }) => ({ shape: inputShape, dtype: ct.dtype }),
  concat: (xs, { axis }) => ({
    shape: Object.freeze(xs[0]!.shape.map((d, a) => (a === axis ? xs.reduce((n, x) => n + x.shape[a]!, 0) : d))),
    dtype: promote(...xs),
  }),
  select: ([, a, b]) => ({ shape: a.shape, dtype: promote(a, b) }),
  compare: ([a]) => ({ shape: a.shape, dtype: 'bool' }),
  sign: same,
  argsort: ([x]) => ({ shape: x.shape, dtype: 'int32' }),
  gather: ([x, idx]) => ({ shape: idx.shape, dtype: x.dtype }),
  scatterAdd: ([base, , src]) => ({ shape: base.shape, dtype: promote(base, src) }),
  argmax: ([x], { axis }) => ({ shape: Object.freeze(x.shape.filter((_d, a) => a !== axis)), dtype: 'int32' }),
  pow: same,
  channelMoments: ([x]) => ({ shape: Object.freeze([2, x.shape[1]!]), dtype: x.dtype }),
  batchNorm: ([x, , g, b]) => ({ shape: x.shape, dtype: promote(x, g, b) }),
  batchNormGrad: ([x, , g, ct]) => ({ shape: x.shape, dtype: promote(x, g, ct) }),
  // float64 whatever x's dtype: batchNormGrad reads these sums as they were summed (the gain's and bias's gradients round them once, by cast).
  batchNormParamGrad: ([x]) => ({ shape: Object.freeze([2, x.shape[1]!]), dtype: 'float64' }),
  stopGradient: same,
  custom: () => {
    // Its forward runs the user's ops (see bind); the shape is the one it returns.
    throw new Error('custom primitives have no shape rule: bind runs their forward');
  },
};
