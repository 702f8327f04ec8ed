/**
 * What a primitive's transformation rules are, and the helpers the rule files
 * share (unbroadcasting, symbolic zeros, moving batch axes).
 *
 * Every primitive has, side by side in one table (rules/index.ts):
 * - `vjp`: cotangents of its inputs from its output's, lazily per input (only
 *   the inputs a tape traces are asked), each written in differentiable ops so
 *   an outer tape records the backward pass (grad of grad);
 * - `jvp`: its output's tangent from its inputs' tangents (`null` is a
 *   symbolic zero: an input no transformation perturbs);
 * - `batch`: its application to a batch (`vmap`), inputs batched along axis 0
 *   or not at all, the result batched along axis 0.
 * A `constant` primitive (comparisons, sign, argmax, stopGradient) has an
 * output no derivative flows through: transformations evaluate it on their
 * primal values and never record it; it still needs its batching rule.
 */
import {
  add,
  bind,
  broadcastedAxes,
  broadcastTo,
  concat,
  makeShape,
  reshape,
  sameShape,
  slice,
  sum,
  zeros,
  type ArityTuple,
  type Primitive,
  type PrimitiveParams,
  type Shape,
  type Tensor,
} from '../../core/index.js';

export type Inputs<P extends Primitive> = ArityTuple<P, Tensor>;
/** A cotangent or tangent, or `null`: a symbolic zero (nothing to add). */
export type Maybe = Tensor | null;

/** Reverse mode: one lazy cotangent per input. */
export type VjpRule<P extends Primitive> = (ct: Tensor, inputs: Inputs<P>, output: Tensor, params: PrimitiveParams<P>) => ArityTuple<P, () => Maybe>;
/** Forward mode: the output's tangent (of the output's shape), or null when it is zero. */
export type JvpRule<P extends Primitive> = (tangents: ArityTuple<P, Maybe>, inputs: Inputs<P>, output: Tensor, params: PrimitiveParams<P>) => Maybe;
/**
 * Batching: inputs each batched along axis 0 (`batched[i]`) or shared by every
 * example; returns the batched result, batch along axis 0. `size` is the batch.
 */
export type BatchRule<P extends Primitive> = (values: Inputs<P>, batched: ArityTuple<P, boolean>, params: PrimitiveParams<P>, size: number) => Tensor;

/** A differentiable primitive's rules. */
export interface DifferentiableRule<P extends Primitive> {
  readonly constant?: false;
  readonly vjp: VjpRule<P>;
  readonly jvp: JvpRule<P>;
  readonly batch: BatchRule<P>;
}

/** A primitive whose output is a constant for every derivative. */
export interface ConstantRule<P extends Primitive> {
  readonly constant: true;
  readonly batch: BatchRule<P>;
}

export type AdRule<P extends Primitive> = DifferentiableRule<P> | ConstantRule<P>;

/** Rules for a family of primitives, typed over its names (a name without a rule does not compile). */
export type RuleTable<F extends Primitive> = { readonly [P in F]: AdRule<P> };

// ---------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------

/** The gradient of a broadcast input: sum the cotangent over the stretched axes. */
export const unbroadcast = (g: Tensor, to: Shape): Tensor => {
  if (sameShape(g.shape, to)) return g;
  const axes = broadcastedAxes(to, g.shape);
  return reshape(sum(g, axes, true), to);
};

/** Zeros of t's shape and dtype on its backend (t may be traced: only its shape is read). */
export const zerosLike = (t: Tensor): Tensor => zeros(t.shape, t.dtype, t.backend);

/** The sum of the non-zero terms, or null when all are zero. */
export const addAll = (terms: readonly Maybe[], add: (a: Tensor, b: Tensor) => Tensor): Maybe =>
  terms.reduce<Maybe>((acc, t) => (t === null ? acc : acc === null ? t : add(acc, t)), null);

/** x [B, …s] with length-1 axes inserted after the batch axis up to rank 1 + r. */
export const expandAfterBatch = (x: Tensor, r: number): Tensor => {
  const s = x.shape.slice(1);
  return s.length >= r ? x : reshape(x, [x.shape[0]!, ...new Array<number>(r - s.length).fill(1), ...s]);
};

/** The input as a batch: itself when batched, else repeated `size` times along a new axis 0. */
export const asBatch = (x: Tensor, batched: boolean, size: number): Tensor => (batched ? x : broadcastTo(x, [size, ...x.shape]));

/** The i-th example of a batch (axis 0 removed). */
export const example = (x: Tensor, i: number): Tensor =>
  reshape(
    slice(
      x,
      x.shape.map((_d, a) => (a === 0 ? i : 0)),
      x.shape.map((d, a) => (a === 0 ? 1 : d)),
    ),
    x.shape.slice(1),
  );

/** Joins per-example results along a new axis 0. */
export const stackBatch = (xs: readonly Tensor[]): Tensor =>
  xs.length === 1
    ? reshape(xs[0]!, [1, ...xs[0]!.shape])
    : concat(
        xs.map((x) => reshape(x, [1, ...x.shape])),
        0,
      );

/**
 * The batching rule of last resort: the primitive once per example, results
 * stacked. Each example runs exactly the kernel an unbatched call runs, so the
 * results are the per-example ones bit for bit; used where no single kernel
 * call covers the batch (a per-example reduction over the batch axis of the
 * primitive itself, as in batch normalization's statistics).
 */
export const perExample =
  <P extends Primitive>(prim: P): BatchRule<P> =>
  (values, batched, params, size) => {
    const outs: Tensor[] = [];
    for (let i = 0; i < size; i++) {
      const xs = (values as readonly Tensor[]).map((v, k) => ((batched as readonly boolean[])[k] ? example(v, i) : v));
      outs.push(bind(prim, xs as unknown as Inputs<P>, params));
    }
    return stackBatch(outs);
  };

/** Unary primitives (and any whose one input is the batch): the kernel on the batch as it is. */
export const mapBatch =
  <P extends Primitive>(prim: P): BatchRule<P> =>
  (values, _b, params) =>
    bind(prim, values, params);

/** Element-wise primitives whose inputs must share one shape: shared inputs repeated over the batch. */
export const sameShapeBatch =
  <P extends Primitive>(prim: P): BatchRule<P> =>
  (values, batched, params, size) =>
    bind(prim, (values as readonly Tensor[]).map((v, i) => asBatch(v, (batched as readonly boolean[])[i]!, size)) as unknown as Inputs<P>, params);

/** [B, N, …] → [B·N, …]: a batch of image batches as one image batch. */
export const mergeBatch = (x: Tensor): Tensor => reshape(x, [x.shape[0]! * x.shape[1]!, ...x.shape.slice(2)]);
/** [B·N, …] → [B, N, …]. */
export const splitBatch = (x: Tensor, size: number): Tensor => reshape(x, [size, x.shape[0]! / size, ...x.shape.slice(1)]);

/** A shape with the batch axis in front. */
export const batchShape = (size: number, s: Shape): Shape => makeShape([size, ...s]);
/** Axes moved one place by the batch axis in front. */
export const shiftAxes = (axes: readonly number[]): number[] => axes.map((a) => a + 1);

/** The JVP of a primitive bilinear in its two inputs (matmul, the convolutions): f(ta, b) + f(a, tb). */
export const bilinearJvp =
  <P extends 'matmul' | 'conv2d' | 'conv2dGradInput' | 'conv2dGradWeight'>(prim: P): JvpRule<P> =>
  ([ta, tb], [a, b], _y, p) =>
    addAll([ta === null ? null : bind(prim, [ta, b] as never, p), tb === null ? null : bind(prim, [a, tb] as never, p)], add);
