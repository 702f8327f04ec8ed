/**
 * The primitive set: names, arities and parameters, shared by the shape rules
 * (abstract.ts), the differentiation and batching rules (src/autodiff/rules/)
 * and every backend's kernel table (backends/*.ts).
 *
 * Adding a primitive: add its signature here, its shape rule in abstract.ts,
 * its VJP, JVP and batching rule in src/autodiff/rules/, and its kernel to each
 * backend's table. The types make each of them mandatory: a primitive missing
 * from any table does not compile.
 */
import type { CompareOp, Conv2dParams, PadParams, Pool2dParams, RoundMode, SliceParams, TakeParams } from './kernels-nd.js';
import type { Shape } from './shape.js';
import type { Tensor } from './tensor.js';

/**
 * Element type. float32 for training, float64 for references and gradient
 * checks; int32 for indices, labels and counts; bool for masks and comparisons.
 * int32 and bool are logical types: their values live exactly in a backend's
 * float storage (`storageDType` in backend.ts), as in tfjs's WebGL backend.
 */
export type DType = 'float32' | 'float64' | 'int32' | 'bool';
/** The float types: the only ones storage and kernels know, and the only ones derivatives flow through. */
export type FloatDType = 'float32' | 'float64';
/** Every dtype name, in promotion order (bool < int32 < float32 < float64). */
export const DTYPES: readonly DType[] = Object.freeze(['bool', 'int32', 'float32', 'float64']);
/** Whether a dtype is float32 or float64 (derivatives flow only through these). */
export const isFloatDType = (d: DType): d is FloatDType => d === 'float32' || d === 'float64';
/** The host typed array of a storage (float) dtype: what kernels read and write. */
export type Data = Float32Array | Float64Array;
/** What reading a tensor gives: Float32Array, Float64Array, Int32Array (int32) or Uint8Array of 0 and 1 (bool). */
export type HostData = Float32Array | Float64Array | Int32Array | Uint8Array;

/** Each primitive's arity and parameters. */
export interface PrimitiveSignatures {
  add: { arity: 2; params: null };
  mul: { arity: 2; params: null };
  neg: { arity: 1; params: null };
  reciprocal: { arity: 1; params: null };
  exp: { arity: 1; params: null };
  log: { arity: 1; params: null };
  sqrt: { arity: 1; params: null };
  tanh: { arity: 1; params: null };
  /** Its own primitive for stability: the composite 1/(1+exp(-x)) gives NaN gradients where exp overflows. */
  sigmoid: { arity: 1; params: null };
  relu: { arity: 1; params: null };
  sin: { arity: 1; params: null };
  cos: { arity: 1; params: null };
  /** The error function, 2/√π ∫₀ˣ e^(−t²) dt. */
  erf: { arity: 1; params: null };
  /** floor, ceil, or round half to even (NumPy's round): a constant (its derivative is 0 wherever it exists). */
  round: { arity: 1; params: { readonly mode: RoundMode } };
  /** relu's VJP as one pass, ct · (x > 0): inputs [x, ct]. */
  reluGrad: { arity: 2; params: null };
  matmul: { arity: 2; params: { readonly transA: boolean; readonly transB: boolean } };
  sum: { arity: 1; params: { readonly axes: readonly number[]; readonly keepDims: boolean } };
  max: { arity: 1; params: { readonly axes: readonly number[]; readonly keepDims: boolean } };
  /**
   * max's VJP: inputs [x, m, ct] with m and ct of the reduced shape kept as
   * length-1 axes; ct spread onto the maxima of x, shared among ties.
   */
  maxGrad: { arity: 3; params: { readonly axes: readonly number[] } };
  /** A view: every backend stores tensors flat and row-major, so no kernel runs (see ops.ts). */
  reshape: { arity: 1; params: { readonly shape: Shape } };
  transpose: { arity: 1; params: { readonly perm: readonly number[] } };
  /** Repeats along stretched axes (the gradient of sum). */
  broadcastTo: { arity: 1; params: { readonly shape: Shape } };
  /**
   * The same values in another dtype (rounded to float32 where asked). To int32 or bool the values must
   * already be integers in range (0 or 1 for bool): `cast` in ops.ts truncates, saturates and compares first.
   */
  cast: { arity: 1; params: { readonly dtype: DType } };
  /** Images NCHW [N, C, H, W] with filters [F, C, KH, KW]; see kernels-nd.ts. */
  conv2d: { arity: 2; params: Conv2dParams };
  /** conv2d's VJP for its images: inputs [ct, w]. */
  conv2dGradInput: { arity: 2; params: Conv2dParams & { readonly inputShape: Shape } };
  /** conv2d's VJP for its filters: inputs [ct, x]. */
  conv2dGradWeight: { arity: 2; params: Conv2dParams & { readonly filterShape: Shape } };
  maxPool2d: { arity: 1; params: Pool2dParams };
  /** maxPool2d's VJP: inputs [ct, x]. */
  maxPool2dGrad: { arity: 2; params: Pool2dParams };
  avgPool2d: { arity: 1; params: Pool2dParams };
  /** avgPool2d's VJP: inputs [ct]. */
  avgPool2dGrad: { arity: 1; params: Pool2dParams & { readonly inputShape: Shape } };
  /** The box of `sizes` at `starts` (its VJP pads the cotangent back). */
  slice: { arity: 1; params: SliceParams };
  /** A frame of a constant around x (its VJP slices the cotangent). */
  pad: { arity: 1; params: PadParams };
  /** Gathers entries along an axis by integer indices. */
  take: { arity: 1; params: TakeParams };
  /** take's VJP: inputs [ct]. */
  takeGrad: { arity: 1; params: TakeParams & { readonly inputShape: Shape } };
  concat: { arity: 'n'; params: { readonly axis: number } };
  /** cond ≠ 0 ? a : b on inputs [cond, a, b] already broadcast to one shape; no gradient flows to cond. */
  select: { arity: 3; params: null };
  /** true where `a op b` holds (NaN compares false except for notEqual), inputs of one shape and dtype, a bool result: a constant (no gradient). */
  compare: { arity: 2; params: { readonly op: CompareOp } };
  /** 1, −1, 0 at ±0, NaN for NaN: a constant (no gradient; abs is x · sign(x)). */
  sign: { arity: 1; params: null };
  /** Index of the largest entry along `axis` (first on ties, NaN largest), as int32: a constant. */
  argmax: { arity: 1; params: { readonly axis: number } };
  /** Indices that sort x along `axis`, stably (ascending NaN last; descending NaN first), as int32: a constant. */
  argsort: { arity: 1; params: { readonly axis: number; readonly descending: boolean } };
  /**
   * NumPy's take_along_axis on inputs [x, idx]: idx of x's rank and x's lengths off `axis`, holding integers
   * (negative ones from the end); the result has idx's shape. No gradient flows to idx.
   */
  gather: { arity: 2; params: { readonly axis: number } };
  /** gather's transpose on inputs [base, idx, src], idx and src of one shape: base with src added at idx along `axis`. */
  scatterAdd: { arity: 3; params: { readonly axis: number } };
  /**
   * maxPool2d's JVP (the transpose of maxPool2dGrad): inputs [x, t]; each window's value of t at the
   * position of x's (first) maximum.
   */
  maxPool2dSelect: { arity: 2; params: Pool2dParams };
  /** The same values with every transformation's derivative cut (a view: no kernel). */
  stopGradient: { arity: 1; params: null };
  /** x^p for a constant exponent. */
  pow: { arity: 1; params: { readonly p: number } };
  /** Each channel's (axis 1) mean and biased variance over the other axes, as [2, C]. */
  channelMoments: { arity: 1; params: null };
  /**
   * Batch normalization with the batch's own statistics, fused: inputs [x, moments, gain, bias], x [N, C, …],
   * moments = channelMoments(x) as a constant (a cache: the VJP for x accounts for the statistics).
   */
  batchNorm: { arity: 4; params: { readonly eps: number } };
  /**
   * batchNorm's VJP for x: inputs [x, moments, gain, ct, sums], sums = batchNormParamGrad(x, moments, ct)
   * (its float64 sums, read rather than computed again: one pass over x and ct less).
   */
  batchNormGrad: { arity: 5; params: { readonly eps: number } };
  /** batchNorm's VJP for gain and bias as [2, C] in float64 (Σ ct·x̂, Σ ct): inputs [x, moments, ct]. */
  batchNormParamGrad: { arity: 3; params: { readonly eps: number } };
  /** A function with a user-given VJP (`customVjp`): its rule travels in its params; it runs the user's ops, so no backend kernel. */
  custom: { arity: 'n'; params: CustomRule };
}

/** The rule of a user-defined primitive: see `customVjp` in ops.ts. */
export interface CustomRule {
  readonly name: string;
  /** The output from the inputs (plain tensors: nothing inside is traced). */
  readonly forward: (inputs: readonly Tensor[]) => Tensor;
  /** One cotangent per input, each of its shape, from the output's cotangent. */
  readonly vjp: (ct: Tensor, inputs: readonly Tensor[], output: Tensor) => readonly Tensor[];
}

/** The name of a primitive (see `PrimitiveSignatures`). */
export type Primitive = keyof PrimitiveSignatures;
/** A primitive's parameters (`null` when it has none). */
export type PrimitiveParams<P extends Primitive> = PrimitiveSignatures[P]['params'];
/** How many inputs a primitive takes (1, 2, 3, or 'n': any number). */
export type Arity<P extends Primitive> = PrimitiveSignatures[P]['arity'];
/** A tuple of the primitive's arity, of T ('n': any number). */
export type ArityTuple<P extends Primitive, T> =
  Arity<P> extends 'n'
    ? readonly T[]
    : Arity<P> extends 5
      ? readonly [T, T, T, T, T]
      : Arity<P> extends 4
        ? readonly [T, T, T, T]
        : Arity<P> extends 3
          ? readonly [T, T, T]
          : Arity<P> extends 2
            ? readonly [T, T]
            : readonly [T];

/**
 * Primitives whose forward is not a backend kernel: `reshape` and `stopGradient`
 * are views on every backend, and `custom` runs the user's own ops.
 */
export type ViewPrimitive = 'reshape' | 'custom' | 'stopGradient';
/** The primitives every backend implements as a kernel. */
export type KernelPrimitive = Exclude<Primitive, ViewPrimitive>;
