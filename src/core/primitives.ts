/**
 * The primitive set: names, arities and parameters, shared by the rules (VJPs,
 * in ops.ts) and by every backend's kernel table (backends/*.ts).
 *
 * Adding a primitive: add its signature here, its rule (forward shape and VJP)
 * in ops.ts, and its kernel to each backend's table. The types make each of the
 * three mandatory: a primitive missing from any table does not compile.
 */
import type { Shape } from './shape.js';

/** Element type. float32 for training, float64 for references and gradient checks. */
export type DType = 'float32' | 'float64';
/** The host typed array of a dtype. */
export type Data = Float32Array | Float64Array;

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
  /** The same values in another dtype (rounded to float32 where asked). */
  cast: { arity: 1; params: { readonly dtype: DType } };
}

export type Primitive = keyof PrimitiveSignatures;
export type PrimitiveParams<P extends Primitive> = PrimitiveSignatures[P]['params'];
type Arity<P extends Primitive> = PrimitiveSignatures[P]['arity'];
/** A tuple of the primitive's arity, of T. */
export type ArityTuple<P extends Primitive, T> =
  Arity<P> extends 3 ? readonly [T, T, T] : Arity<P> extends 2 ? readonly [T, T] : readonly [T];

/** Primitives whose forward is not a kernel: `reshape` is a view on every backend. */
export type ViewPrimitive = 'reshape';
export type KernelPrimitive = Exclude<Primitive, ViewPrimitive>;
