/**
 * Primitives and the ops built from them.
 *
 * Every primitive is one entry of `rules`: the shape and dtype of its result and
 * its vector-Jacobian product, side by side. The table's type maps every name in
 * `PrimitiveSignatures` (primitives.ts) to a rule, so a primitive without a VJP
 * does not compile; its forward computation is each backend's kernel
 * (`Backend.kernels`, typed the same way), run by `bind` on the backend that
 * holds the inputs. Composite ops (sub, div, mean, logSumExp, softmax,
 * cross-entropy, L2) are plain functions of primitives and get their gradients
 * from them.
 *
 * Adding a primitive: its signature in primitives.ts, its rule here, its kernel
 * in each backend's table (kernels.ts for the host backends, backends/gpujs.ts),
 * and a public function that checks shapes and calls `bind`.
 *
 * Ops throw `ShapeError` on bad shapes (naming both shapes); the `checked`
 * namespace in `checked.ts` offers the same ops returning `Either` instead.
 */
import { defaultBackend, type Backend, type KernelTable, type MomentumHyper, type Operand, type OutSpec } from './backend.js';
import './backends/index.js'; // registers the backends and the auto policy
import { matmulDims, reducedShape, resultDType } from './kernels.js';
import type { ArityTuple, Data, DType, KernelPrimitive, Primitive, PrimitiveParams } from './primitives.js';
import { broadcastedAxes, broadcastShapes, makeShape, normalizeAxis, sameShape, ShapeError, showShape, sizeOf, type Shape } from './shape.js';
import { internal, scalar, Storage, Tensor, untraced, type TapeLike } from './tensor.js';

export type { Primitive, PrimitiveSignatures } from './primitives.js';

type Inputs<P extends Primitive> = ArityTuple<P, Tensor>;
type Thunks<P extends Primitive> = ArityTuple<P, () => Tensor>;

/** A primitive's result type (from its inputs' shapes and dtypes) and its VJP (lazy per input: only needed gradients are computed). */
export interface Rule<P extends Primitive> {
  out(inputs: Inputs<P>, params: PrimitiveParams<P>): OutSpec;
  vjp(ct: Tensor, inputs: Inputs<P>, output: Tensor, params: PrimitiveParams<P>): Thunks<P>;
}

/** The gradient of a broadcast input: sum the cotangent over the stretched axes. */
const unbroadcast = (g: Tensor, to: Shape): Tensor => {
  if (sameShape(g.shape, to)) return g;
  const axes = broadcastedAxes(to, g.shape);
  return reshape(sum(g, axes, true), to);
};

const dtypeOf2 = (a: Tensor, b: Tensor): DType => (a.dtype === 'float64' || b.dtype === 'float64' ? 'float64' : 'float32');
const same = ([x]: readonly [Tensor]): OutSpec => ({ shape: x.shape, dtype: x.dtype });
const broadcast = (op: string) => ([a, b]: readonly [Tensor, Tensor]): OutSpec => ({ shape: broadcastShapes(a.shape, b.shape, op), dtype: dtypeOf2(a, b) });
const notDifferentiable = (prim: string) => (): never => {
  throw new Error(`${prim} is not differentiable (it is a gradient's kernel): higher-order differentiation is not supported`);
};

export const rules: { readonly [P in Primitive]: Rule<P> } = {
  add: {
    out: broadcast('add'),
    vjp: (ct, [a, b]) => [() => unbroadcast(ct, a.shape), () => unbroadcast(ct, b.shape)],
  },
  mul: {
    out: broadcast('mul'),
    vjp: (ct, [a, b]) => [() => unbroadcast(mul(ct, b), a.shape), () => unbroadcast(mul(ct, a), b.shape)],
  },
  neg: { out: same, vjp: (ct) => [() => neg(ct)] },
  reciprocal: {
    out: same,
    // d(1/x) = -1/x² = -y²
    vjp: (ct, _x, y) => [() => neg(mul(ct, mul(y, y)))],
  },
  exp: { out: same, vjp: (ct, _x, y) => [() => mul(ct, y)] },
  log: { out: same, vjp: (ct, [x]) => [() => mul(ct, reciprocal(x))] },
  sqrt: {
    out: same,
    // 1 / (2√x)
    vjp: (ct, _x, y) => [() => mul(ct, mul(reciprocal(y), 0.5))],
  },
  tanh: {
    out: same,
    // 1 - y²
    vjp: (ct, _x, y) => [() => mul(ct, sub(1, mul(y, y)))],
  },
  sigmoid: {
    out: same,
    // y (1 - y)
    vjp: (ct, _x, y) => [() => mul(ct, mul(y, sub(1, y)))],
  },
  relu: {
    out: same,
    // The gradient at exactly 0 is taken as 0 (as in PyTorch and JAX).
    vjp: (ct, [x]) => [() => bind('reluGrad', [x, ct], null)],
  },
  reluGrad: {
    out: ([x, ct]) => ({ shape: x.shape, dtype: dtypeOf2(x, ct) }),
    vjp: notDifferentiable('reluGrad'),
  },
  matmul: {
    out: ([a, b], { transA, transB }) => {
      const { m, n } = matmulDims(a.shape, b.shape, transA, transB);
      return { shape: makeShape([m, n]), dtype: dtypeOf2(a, b) };
    },
    vjp: (ct, [a, b], _y, { transA, transB }) => [
      // C = op(A)·op(B). dop(A) = ct·op(B)ᵀ, dop(B) = op(A)ᵀ·ct; undo the op on each.
      () => (transA ? matmul(b, ct, { transA: transB, transB: true }) : matmul(ct, b, { transA: false, transB: !transB })),
      () => (transB ? matmul(ct, a, { transA: true, transB: transA }) : matmul(a, ct, { transA: !transA, transB: false })),
    ],
  },
  sum: {
    out: ([x], { axes, keepDims }) => ({ shape: reducedShape(x.shape, axes, keepDims), dtype: x.dtype }),
    vjp: (ct, [x], _y, { axes }) => [() => broadcastTo(reshape(ct, reducedShape(x.shape, axes, true)), x.shape)],
  },
  max: {
    out: ([x], { axes, keepDims }) => ({ shape: reducedShape(x.shape, axes, keepDims), dtype: x.dtype }),
    vjp: (ct, [x], y, { axes }) => {
      const kept = reducedShape(x.shape, axes, true);
      return [() => bind('maxGrad', [x, reshape(y, kept), reshape(ct, kept)], { axes })];
    },
  },
  maxGrad: {
    out: ([x, , ct]) => ({ shape: x.shape, dtype: dtypeOf2(x, ct) }),
    vjp: notDifferentiable('maxGrad'),
  },
  reshape: {
    out: ([x], { shape }) => ({ shape, dtype: x.dtype }),
    vjp: (ct, [x]) => [() => reshape(ct, x.shape)],
  },
  transpose: {
    out: ([x], { perm }) => ({ shape: Object.freeze(perm.map((p) => x.shape[p]!)), dtype: x.dtype }),
    vjp: (ct, _x, _y, { perm }) => {
      const inv = new Array<number>(perm.length);
      perm.forEach((p, i) => (inv[p] = i));
      return [() => transpose(ct, inv)];
    },
  },
  broadcastTo: {
    out: ([x], { shape }) => ({ shape, dtype: x.dtype }),
    vjp: (ct, [x]) => [() => unbroadcast(ct, x.shape)],
  },
  cast: {
    out: ([x], { dtype }) => ({ shape: x.shape, dtype }),
    vjp: (ct, [x]) => [() => cast(ct, x.dtype)],
  },
};

/** Which tape, if any, the inputs are recorded on; mixing two tapes is an error. */
const tapeOf = (inputs: readonly Tensor[]): TapeLike | undefined => {
  let tape: TapeLike | undefined;
  for (const t of inputs) {
    const tt = t.trace?.tape;
    if (tt === undefined || tt === tape) continue;
    if (tape !== undefined) {
      throw new Error(
        'an op mixes tensors traced by two different valueAndGrad calls; higher-order ' +
          'differentiation (grad of grad) is not supported: pass plain tensors into the inner call',
      );
    }
    tape = tt;
  }
  return tape;
};

/** The backend all inputs live on; tensors on two backends are an error naming both. */
const backendOf = (prim: string, inputs: readonly Tensor[]): Backend => {
  const b = inputs[0]!.backend;
  for (const t of inputs) {
    if (t.backend !== b) {
      throw new Error(
        `${prim}: its inputs live on two backends, '${b.name}' and '${t.backend.name}': ` +
          `move one with toBackend(t, '${b.name}') (ops run where their inputs are)`,
      );
    }
  }
  return b;
};

const operand = (t: Tensor): Operand<unknown> => ({ buf: internal.storageOf(t).buf, shape: t.shape, dtype: t.dtype });

/** Runs a primitive on its inputs' backend, recording it on the inputs' tape when they are traced. */
export const bind = <P extends Primitive>(prim: P, inputs: Inputs<P>, params: PrimitiveParams<P>): Tensor => {
  const rule = rules[prim] as Rule<P>;
  const tape = tapeOf(inputs);
  const be = backendOf(prim, inputs);
  const spec = rule.out(inputs, params);
  let out: Tensor;
  if (prim === 'reshape') {
    out = internal.share(untraced(inputs[0]), spec.shape); // a view: buffers are flat and row-major on every backend
  } else {
    const kernel = (be.kernels as KernelTable<unknown>)[prim as KernelPrimitive] as (i: readonly Operand<unknown>[], p: unknown, o: OutSpec) => unknown;
    const buf = kernel((inputs as readonly Tensor[]).map(operand), params, spec);
    out = internal.wrap(new Storage(be, buf), spec.shape, spec.dtype);
  }
  return tape === undefined ? out : tape.record(prim, inputs, out, params);
};

// ---------------------------------------------------------------------------
// Public ops
// ---------------------------------------------------------------------------

/** A tensor or a plain number (taken as a scalar of the other operand's dtype). */
export type TensorLike = Tensor | number;

/** Numbers become scalars of the other operand's dtype, on its backend. */
const lift = (a: TensorLike, b: TensorLike): [Tensor, Tensor] => {
  const other = typeof a !== 'number' ? a : typeof b !== 'number' ? b : undefined;
  const dt: DType = other?.dtype ?? 'float32';
  const be = other?.backend;
  return [typeof a === 'number' ? scalar(a, dt, be) : a, typeof b === 'number' ? scalar(b, dt, be) : b];
};

const binaryOp = (prim: 'add' | 'mul') => (a: TensorLike, b: TensorLike): Tensor => {
  const [x, y] = lift(a, b);
  return bind(prim, [x, y], null);
};

// Mixed dtypes promote to float64 (as in NumPy and JAX); the tape casts each
// gradient back to its input's dtype.

/** Elementwise a + b with NumPy broadcasting (e.g. a bias row over a batch). */
export const add = binaryOp('add');
/** Elementwise a · b with NumPy broadcasting. */
export const mul = binaryOp('mul');
export const neg = (x: Tensor): Tensor => bind('neg', [x], null);
export const reciprocal = (x: Tensor): Tensor => bind('reciprocal', [x], null);
/** a − b, broadcasting. */
export const sub = (a: TensorLike, b: TensorLike): Tensor => {
  const [x, y] = lift(a, b);
  return add(x, neg(y));
};
/** a / b, broadcasting. */
export const div = (a: TensorLike, b: TensorLike): Tensor => {
  const [x, y] = lift(a, b);
  return mul(x, reciprocal(y));
};
export const square = (x: Tensor): Tensor => mul(x, x);
export const exp = (x: Tensor): Tensor => bind('exp', [x], null);
export const log = (x: Tensor): Tensor => bind('log', [x], null);
export const sqrt = (x: Tensor): Tensor => bind('sqrt', [x], null);
export const tanh = (x: Tensor): Tensor => bind('tanh', [x], null);
export const sigmoid = (x: Tensor): Tensor => bind('sigmoid', [x], null);
/** max(x, 0); its gradient at 0 is 0. */
export const relu = (x: Tensor): Tensor => bind('relu', [x], null);

/** 1 where x > 0, else 0: a constant (no gradient flows through it), on x's backend. */
export const stepMask = (x: Tensor): Tensor => {
  const d = internal.dataOf(x);
  const out = x.dtype === 'float32' ? new Float32Array(d.length) : new Float64Array(d.length);
  for (let i = 0; i < d.length; i++) out[i] = d[i]! > 0 ? 1 : 0;
  return internal.adopt(out, x.shape, x.backend);
};

/** The same values in another dtype (rounded to float32 where asked); differentiable. */
export const cast = (x: Tensor, dtype: DType): Tensor => (x.dtype === dtype ? x : bind('cast', [x], { dtype }));

/** The same values as a constant: gradients stop here. */
export const stopGradient = (x: Tensor): Tensor => untraced(x);

export interface MatmulOptions {
  /** Use aᵀ (a stored k×m). */
  readonly transA?: boolean;
  /** Use bᵀ (b stored n×k). */
  readonly transB?: boolean;
}

/** Matrix product op(a)·op(b) of two rank-2 tensors, on the current backend. */
export const matmul = (a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor => {
  const transA = opts.transA ?? false;
  const transB = opts.transB ?? false;
  if (a.rank !== 2 || b.rank !== 2) {
    throw new ShapeError(`matmul: both operands must be matrices, got shapes ${showShape(a.shape)} and ${showShape(b.shape)}`);
  }
  const k1 = transA ? a.shape[0] : a.shape[1];
  const k2 = transB ? b.shape[1] : b.shape[0];
  if (k1 !== k2) {
    const ta = transA ? 'ᵀ' : '', tb = transB ? 'ᵀ' : '';
    throw new ShapeError(
      `matmul: inner dimensions differ: a${ta} of shape ${showShape(a.shape)}${ta ? ' (transposed)' : ''} has ${k1} columns ` +
        `but b${tb} of shape ${showShape(b.shape)}${tb ? ' (transposed)' : ''} has ${k2} rows`,
    );
  }
  return bind('matmul', [a, b], { transA, transB });
};

/** Axes argument: one axis, several, or all when omitted. Negative axes count from the end. */
export type Axes = number | readonly number[] | undefined;

const normalizeAxes = (axes: Axes, rank: number, op: string): number[] => {
  if (axes === undefined) return [...Array(rank).keys()];
  const list = typeof axes === 'number' ? [axes] : axes;
  const norm = [...new Set(list.map((a) => normalizeAxis(a, rank, op)))];
  return norm.sort((a, b) => a - b);
};

/** Sum over `axes` (all by default). */
export const sum = (x: Tensor, axes?: Axes, keepDims = false): Tensor =>
  bind('sum', [x], { axes: normalizeAxes(axes, x.rank, 'sum'), keepDims });

/** Mean over `axes` (all by default). */
export const mean = (x: Tensor, axes?: Axes, keepDims = false): Tensor => {
  const ax = normalizeAxes(axes, x.rank, 'mean');
  const count = ax.reduce((n, a) => n * x.shape[a]!, 1);
  return mul(sum(x, ax, keepDims), 1 / count);
};

/** Maximum over `axes` (all by default); the gradient goes to the maxima, shared among ties. */
export const max = (x: Tensor, axes?: Axes, keepDims = false): Tensor =>
  bind('max', [x], { axes: normalizeAxes(axes, x.rank, 'max'), keepDims });

/** The same values in a new shape; one length may be -1 (inferred). */
export const reshape = (x: Tensor, shape: readonly number[]): Tensor => {
  const inferred = shape.indexOf(-1);
  const target = [...shape];
  if (inferred >= 0) {
    const known = shape.reduce((n, d, i) => (i === inferred ? n : n * d), 1);
    if (known === 0 || x.size % known !== 0) {
      throw new ShapeError(`reshape: cannot reshape ${showShape(x.shape)} (${x.size} elements) to ${showShape(shape)}`);
    }
    target[inferred] = x.size / known;
  }
  const s = makeShape(target);
  if (sizeOf(s) !== x.size) {
    throw new ShapeError(`reshape: cannot reshape ${showShape(x.shape)} (${x.size} elements) to ${showShape(s)} (${sizeOf(s)} elements)`);
  }
  if (sameShape(s, x.shape)) return x;
  return bind('reshape', [x], { shape: s });
};

/** Permutes axes; reverses them by default (the matrix transpose for rank 2). */
export const transpose = (x: Tensor, perm?: readonly number[]): Tensor => {
  const p = perm ?? [...Array(x.rank).keys()].reverse();
  if (p.length !== x.rank || [...p].sort((a, b) => a - b).some((v, i) => v !== i)) {
    throw new ShapeError(`transpose: ${showShape(p)} is not a permutation of the axes of shape ${showShape(x.shape)}`);
  }
  return bind('transpose', [x], { perm: p });
};

/** Repeats x along its length-1 (or missing leading) axes to reach `shape`. */
export const broadcastTo = (x: Tensor, shape: readonly number[]): Tensor => {
  const s = makeShape(shape);
  const ok = x.rank <= s.length && x.shape.every((d, i) => d === 1 || d === s[s.length - x.rank + i]);
  if (!ok) throw new ShapeError(`broadcastTo: shape ${showShape(x.shape)} cannot be broadcast to ${showShape(s)}`);
  if (sameShape(s, x.shape)) return x;
  return bind('broadcastTo', [x], { shape: s });
};

/** log Σ exp(x) over an axis, stable: the max is subtracted first (as a constant: the gradient is still exact). */
export const logSumExp = (x: Tensor, axis = -1, keepDims = false): Tensor => {
  const m = stopGradient(max(x, axis, true));
  const lse = add(log(sum(exp(sub(x, m)), axis, true)), m);
  return keepDims ? lse : reshape(lse, x.shape.filter((_, i) => i !== normalizeAxis(axis, x.rank, 'logSumExp')));
};

/** x − logSumExp(x): log-probabilities, stable. */
export const logSoftmax = (x: Tensor, axis = -1): Tensor => sub(x, logSumExp(x, axis, true));

/** exp(x) / Σ exp(x) over an axis, computed stably. */
export const softmax = (x: Tensor, axis = -1): Tensor => exp(logSoftmax(x, axis));

/** Σ x²: the L2 penalty's building block. */
export const sumOfSquares = (x: Tensor): Tensor => sum(mul(x, x));

/** Integer labels as one-hot rows: shape [labels.length, classes], on `backend` (default: the default backend). Throws on a label out of range. */
export const oneHot = (labels: ArrayLike<number>, classes: number, dtype: DType = 'float32', backend?: Backend): Tensor => {
  const out = dtype === 'float32' ? new Float32Array(labels.length * classes) : new Float64Array(labels.length * classes);
  for (let i = 0; i < labels.length; i++) {
    const c = labels[i]!;
    if (!Number.isInteger(c) || c < 0 || c >= classes) {
      throw new ShapeError(`oneHot: label ${c} at position ${i} is outside 0..${classes - 1}`);
    }
    out[i * classes + c] = 1;
  }
  return internal.adopt(out, makeShape([labels.length, classes]), backend ?? defaultBackend());
};

export interface CrossEntropyOptions {
  /** 'mean' over the batch (the report's convention) or 'sum'. */
  readonly reduction?: 'mean' | 'sum';
}

/**
 * Softmax cross-entropy of `logits` [N, C] against integer labels (length N) or
 * one-hot / probability targets [N, C]: −Σ t · logSoftmax(logits), reduced over the batch.
 */
export const softmaxCrossEntropy = (
  logits: Tensor,
  labels: Tensor | ArrayLike<number>,
  opts: CrossEntropyOptions = {},
): Tensor => {
  if (logits.rank !== 2) {
    throw new ShapeError(`softmaxCrossEntropy: logits must be [batch, classes], got ${showShape(logits.shape)}`);
  }
  const [n, c] = logits.shape as [number, number];
  let targets: Tensor;
  if (labels instanceof Tensor) {
    if (!sameShape(labels.shape, logits.shape)) {
      throw new ShapeError(`softmaxCrossEntropy: targets of shape ${showShape(labels.shape)} do not match logits of shape ${showShape(logits.shape)}`);
    }
    targets = labels;
  } else {
    if (labels.length !== n) {
      throw new ShapeError(`softmaxCrossEntropy: ${labels.length} labels for logits of shape ${showShape(logits.shape)}`);
    }
    targets = oneHot(labels, c, logits.dtype, logits.backend);
  }
  const total = neg(sum(mul(targets, logSoftmax(logits, 1))));
  return (opts.reduction ?? 'mean') === 'mean' ? mul(total, 1 / n) : total;
};

/**
 * One fused momentum update of a parameter tensor (not differentiable: an
 * optimizer's arithmetic), on the backend's fused kernel. Returns [p', v'] with
 * g' = g + l2·p, v' = γv + lr·g', p' = p − v' (or − (γv' + lr·g') for Nesterov).
 */
export const momentumUpdate = (p: Tensor, v: Tensor, g: Tensor, hp: MomentumHyper): [Tensor, Tensor] => {
  if (!sameShape(p.shape, v.shape) || !sameShape(p.shape, g.shape)) {
    throw new ShapeError(`momentumUpdate: parameter ${showShape(p.shape)}, velocity ${showShape(v.shape)} and gradient ${showShape(g.shape)} must have one shape`);
  }
  if (p.dtype !== v.dtype || p.dtype !== g.dtype) {
    throw new Error(`momentumUpdate: parameter (${p.dtype}), velocity (${v.dtype}) and gradient (${g.dtype}) must have one dtype`);
  }
  const be = backendOf('momentumUpdate', [p, v, g]);
  const [pb, vb] = be.fused.momentumStep(operand(p), operand(v), operand(g), hp);
  return [internal.wrap(new Storage(be, pb), p.shape, p.dtype), internal.wrap(new Storage(be, vb), p.shape, p.dtype)];
};
