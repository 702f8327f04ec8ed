/**
 * The public ops, and `bind`: how one primitive application is dispatched.
 *
 * Every op here ends in `bind(prim, inputs, params)` on primitives
 * (primitives.ts). `bind` hands the application to the innermost running
 * transformation among its inputs' traces (a reverse tape, `jvp`, `vmap`: see
 * src/autodiff), which applies its rule (src/autodiff/rules) and binds again one
 * level down; with no trace left, the backend that holds the inputs runs its
 * kernel (`Backend.kernels`), sized by the primitive's shape rule
 * (abstract.ts). Composite ops (sub, div, mean, logSumExp, softmax,
 * cross-entropy, L2) are plain functions of primitives and get every
 * transformation from them.
 *
 * Adding a primitive: its signature in primitives.ts, its shape rule in
 * abstract.ts, its VJP, JVP and batching rule in src/autodiff/rules, its kernel
 * in each backend's table (kernels.ts for the host backends, backends/gpujs.ts),
 * and a public function here that checks shapes and calls `bind`.
 *
 * Ops throw `ShapeError` on bad shapes (naming both shapes); the `checked`
 * namespace in `checked.ts` offers the same ops returning `Either` instead.
 */
import { shapeRules, type ShapeRule } from './abstract.js';
import {
  backend as backendRef,
  defaultBackend,
  type AdamHyper,
  type Backend,
  type KernelTable,
  type MomentumHyper,
  type Operand,
  type OutSpec,
  storageDType,
} from './backend.js';
import { promoteTypes, weakType } from './dtypes.js';
import './backends/index.js'; // registers the backends and the auto policy
import { plainAlloc } from './kernels.js';
import * as KN from './kernels-nd.js';
import { checkBool, checkInt, checkNumber, checkOptions } from './options.js';
import type { Key } from './random.js';
import type { ArityTuple, CustomRule, DType, KernelPrimitive, Primitive, PrimitiveParams } from './primitives.js';
import { broadcastShapes, makeShape, normalizeAxis, sameShape, ShapeError, showShape, sizeOf, type Shape } from './shape.js';
import { checkDType, internal, scalar, Storage, Tensor, type MainTrace } from './tensor.js';

export type { Primitive, PrimitiveSignatures } from './primitives.js';
export type { CompareOp } from './kernels-nd.js';

type Inputs<P extends Primitive> = ArityTuple<P, Tensor>;

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

/** A kernel's operand: the buffer with its storage dtype (kernels know only float32 and float64: see storageDType). */
const operand = (t: Tensor): Operand<unknown> => ({ buf: internal.storageOf(t).buf, shape: t.shape, dtype: storageDType(t.backend, t.dtype) });

/**
 * The primitives that take int32 and bool operands (all of them, or those at
 * the positions listed); the rest compute on floats, and such an operand is a
 * one-line error naming the fix. The public ops give int32 its own arithmetic
 * (below) before anything reaches a float-only primitive.
 */
const INTEGER_OPERANDS: { readonly [P in Primitive]?: true | readonly number[] } = {
  reshape: true,
  transpose: true,
  broadcastTo: true,
  slice: true,
  pad: true,
  take: true,
  concat: true,
  select: true,
  compare: true,
  cast: true,
  stopGradient: true,
  max: true,
  sum: true,
  argmax: true,
  argsort: true,
  sign: true,
  gather: true,
  custom: true,
  scatterAdd: [1],
};

const checkOperandDTypes = (prim: Primitive, inputs: readonly Tensor[]): void => {
  const ok = INTEGER_OPERANDS[prim];
  if (ok === true) return;
  inputs.forEach((t, i) => {
    if ((t.dtype === 'int32' || t.dtype === 'bool') && !(ok?.includes(i) ?? false)) {
      throw new TypeError(
        `${prim}: an operand of dtype ${t.dtype} (shape ${showShape(t.shape)}): ${prim} computes on floats; cast it first (cast(x, 'float32'))`,
      );
    }
  });
};

/** The innermost transformation tracing any of the inputs (the highest level), if any. */
const innermost = (inputs: readonly Tensor[]): MainTrace | undefined => {
  let top: MainTrace | undefined;
  for (const t of inputs) {
    const m = t.trace?.main;
    if (m !== undefined && (top === undefined || m.level > top.level)) top = m;
  }
  return top;
};

/** Runs a primitive on plain (untraced) inputs: the backend's kernel, or a view, or a custom function's forward. */
const evaluate = <P extends Primitive>(prim: P, inputs: Inputs<P>, params: PrimitiveParams<P>): Tensor => {
  const be = backendOf(prim, inputs);
  if (prim === 'custom') {
    const custom = params as PrimitiveParams<'custom'>;
    const out = custom.forward(inputs as readonly Tensor[]);
    if (!(out instanceof Tensor)) throw new TypeError(`customVjp '${custom.name}': forward must return a Tensor, got ${typeof out}`);
    if (out.backend !== be)
      throw new Error(`customVjp '${custom.name}': forward returned a tensor on '${out.backend.name}', not on its inputs' backend '${be.name}'`);
    return out;
  }
  if (prim === 'stopGradient') return inputs[0] as Tensor;
  checkOperandDTypes(prim, inputs as readonly Tensor[]);
  const spec = (shapeRules[prim] as ShapeRule<P>)(inputs, params);
  if (prim === 'reshape') return internal.share(inputs[0] as Tensor, spec.shape); // a view: buffers are flat and row-major on every backend
  const kernel = (be.kernels as KernelTable<unknown>)[prim as KernelPrimitive] as (i: readonly Operand<unknown>[], p: unknown, o: OutSpec) => unknown;
  const stored = storageDType(be, spec.dtype);
  const buf = kernel((inputs as readonly Tensor[]).map(operand), params, stored === spec.dtype ? spec : { shape: spec.shape, dtype: stored });
  return internal.wrap(new Storage(be, buf), spec.shape, spec.dtype);
};

/**
 * Applies a primitive: through the innermost transformation tracing an input
 * (which binds again one level down), else on the inputs' backend. Public ops
 * check shapes before calling it; `bind` itself trusts them.
 */
export const bind = <P extends Primitive>(prim: P, inputs: Inputs<P>, params: PrimitiveParams<P>): Tensor => {
  const main = innermost(inputs as readonly Tensor[]);
  return main === undefined ? evaluate(prim, inputs, params) : main.process(prim, inputs as readonly Tensor[], params);
};

// ---------------------------------------------------------------------------
// Public ops
// ---------------------------------------------------------------------------

/** A tensor or a plain number (taken as a scalar of the other operand's dtype). */
export type TensorLike = Tensor | number;

/** A tensor argument, checked (JavaScript callers pass anything). */
const tensorArg = (op: string, name: string, x: unknown): Tensor => {
  if (!(x instanceof Tensor))
    throw new TypeError(`${op}: ${name} must be a Tensor, got ${x === null ? 'null' : Array.isArray(x) ? 'an array (make one with tensor())' : typeof x}`);
  return x;
};

/**
 * Numbers become scalars of the other operand's dtype (weakly typed: see
 * `weakType`), on its backend; operands of two dtypes, one of them int32 or
 * bool, are cast to their `promoteTypes` (float32 with float64 stays mixed:
 * the kernels compute such pairs in float64, as they always have).
 */
const lift = (a: TensorLike, b: TensorLike, op: string): [Tensor, Tensor] => {
  for (const [name, v] of [
    ['the first operand', a],
    ['the second operand', b],
  ] as const) {
    if (typeof v !== 'number' && !(v instanceof Tensor)) {
      throw new TypeError(
        `${op}: ${name} must be a Tensor or a number, got ${v === null ? 'null' : Array.isArray(v) ? 'an array (make one with tensor())' : typeof v}`,
      );
    }
  }
  const other = typeof a !== 'number' ? a : typeof b !== 'number' ? b : undefined;
  const be = other?.backend;
  const lifted = (v: TensorLike): Tensor => (typeof v === 'number' ? scalar(v, other === undefined ? 'float32' : weakType(other.dtype, v), be) : v);
  let [x, y] = [lifted(a), lifted(b)];
  if (x.dtype !== y.dtype && !(isFloat(x.dtype) && isFloat(y.dtype))) {
    const d = promoteTypes(x.dtype, y.dtype);
    [x, y] = [cast(x, d), cast(y, d)];
  }
  return [x, y];
};

const isFloat = (d: DType): boolean => d === 'float32' || d === 'float64';

// ---------------------------------------------------------------------------
// int32 arithmetic: NumPy's wraparound (results modulo 2^32, in [-2^31, 2^31)),
// computed exactly in float64 from the float primitives (so every
// transformation and backend has it: on the GPU backends float64 runs on the
// host) and cast back.
// ---------------------------------------------------------------------------

const rawCast = (x: Tensor, dtype: DType): Tensor => (x.dtype === dtype ? x : bind('cast', [x], { dtype }));
const floorOf = (x: Tensor): Tensor => bind('round', [x], { mode: 'floor' });
/** x (float64, integers below 2^53) modulo 2^32 into [-2^31, 2^31): each step exact (powers of two scale exactly). */
const wrapInt32 = (x: Tensor): Tensor => add(x, mul(floorOf(mul(add(x, 2 ** 31), 2 ** -32)), -(2 ** 32)));
/** x modulo 2^16 into [0, 2^16) and its quotient, exact for float64 integers. */
const split16 = (x: Tensor): [Tensor, Tensor] => {
  const hi = floorOf(mul(x, 2 ** -16));
  return [add(x, mul(hi, -(2 ** 16))), hi];
};
const intArith = (op: 'add' | 'mul', x: Tensor, y: Tensor): Tensor => {
  const [a, b] = [rawCast(x, 'float64'), rawCast(y, 'float64')];
  if (op === 'add') return rawCast(wrapInt32(add(a, b)), 'int32');
  // a·b below 2^62 is not exact in float64: a = hi·2^16 + lo, and hi·b is reduced modulo 2^16 before it is scaled back.
  const [lo, hi] = split16(a);
  const [m] = split16(mul(hi, b));
  return rawCast(wrapInt32(add(mul(lo, b), mul(m, 2 ** 16))), 'int32');
};
const noBoolArithmetic = (op: string, x: Tensor): void => {
  if (x.dtype === 'bool')
    throw new TypeError(`${op}: bool operands have no arithmetic: use logicalOr / logicalAnd / logicalNot, or cast to int32 first (cast(x, 'int32'))`);
};

const binaryOp =
  (prim: 'add' | 'mul') =>
  (a: TensorLike, b: TensorLike): Tensor => {
    const [x, y] = lift(a, b, prim);
    if (x.dtype === 'int32' || x.dtype === 'bool') {
      noBoolArithmetic(prim, x);
      return intArith(prim, x, y);
    }
    return bind(prim, [x, y], null);
  };

// Mixed float dtypes promote to float64 (as in NumPy and JAX); the tape casts each
// gradient back to its input's dtype. int32 and bool follow `promoteTypes`.

/** Elementwise a + b with NumPy broadcasting (e.g. a bias row over a batch); int32 wraps around as NumPy's. */
export const add = binaryOp('add');
/** Elementwise a · b with NumPy broadcasting; int32 wraps around as NumPy's. */
export const mul = binaryOp('mul');
/** Elementwise −x (int32: −(−2^31) wraps to −2^31, as NumPy's). */
export const neg = (x: Tensor): Tensor => {
  if (x.dtype === 'int32' || x.dtype === 'bool') {
    noBoolArithmetic('neg', x);
    return rawCast(wrapInt32(neg(rawCast(x, 'float64'))), 'int32');
  }
  return bind('neg', [x], null);
};
/** Elementwise 1/x. */
export const reciprocal = (x: Tensor): Tensor => bind('reciprocal', [x], null);
/** a − b, broadcasting. */
export const sub = (a: TensorLike, b: TensorLike): Tensor => {
  const [x, y] = lift(a, b, 'sub');
  if (x.dtype === 'int32' || x.dtype === 'bool') {
    noBoolArithmetic('sub', x);
    return rawCast(wrapInt32(add(rawCast(x, 'float64'), neg(rawCast(y, 'float64')))), 'int32');
  }
  return add(x, neg(y));
};
/** a / b, broadcasting: true division (int32 and bool operands give float32, as JAX's). */
export const div = (a: TensorLike, b: TensorLike): Tensor => {
  let [x, y] = lift(a, b, 'div');
  if (!isFloat(x.dtype)) [x, y] = [rawCast(x, 'float32'), rawCast(y, 'float32')];
  return mul(x, reciprocal(y));
};
/**
 * ⌊a / b⌋, broadcasting (NumPy's floor_divide). int32: exact, x // 0 = 0 as
 * NumPy's, −2^31 // −1 wraps; floats: floor(a / b).
 */
export const floorDiv = (a: TensorLike, b: TensorLike): Tensor => {
  const [x, y] = lift(a, b, 'floorDiv');
  if (isFloat(x.dtype)) return floorOf(div(x, y));
  noBoolArithmetic('floorDiv', x);
  const [p, q] = [rawCast(x, 'float64'), rawCast(y, 'float64')];
  const zero = equal(q, 0);
  return rawCast(wrapInt32(where(zero, 0, floorQuotient(p, where(zero, 1, q)))), 'int32');
};
/**
 * ⌊p / q⌋ of integers held in floats (q ≠ 0): the floor of the division, then
 * corrected by the remainder r = p − q·⌊p/q⌋, which must lie in [0, q) (or
 * (q, 0]). Where division is correctly rounded in float64 (reference, cpu) the
 * correction is 0: |p|, |q| < 2^31 keep the quotient within half an ulp, far
 * from the next integer. A GPU's division is not (WGSL allows 2.5 ulp in
 * float32: −2045 / −2045 came out below 1); its products of integers under
 * 2^24 are exact, so the remainder says which way to move.
 */
const floorQuotient = (p: Tensor, q: Tensor): Tensor => {
  const f = floorOf(div(p, q));
  const r = mul(sub(p, mul(q, f)), sign(q)); // the remainder in q's direction: should be in [0, |q|)
  const over = rawCast(greaterEqual(r, abs(q)), p.dtype),
    under = rawCast(less(r, 0), p.dtype);
  return add(f, sub(over, under));
};
/** a − b·⌊a / b⌋, broadcasting: the remainder with b's sign (NumPy's mod); int32: exact, x % 0 = 0. */
export const mod = (a: TensorLike, b: TensorLike): Tensor => {
  const [x, y] = lift(a, b, 'mod');
  if (isFloat(x.dtype)) return sub(x, mul(y, floorOf(div(x, y))));
  noBoolArithmetic('mod', x);
  const [p, q] = [rawCast(x, 'float64'), rawCast(y, 'float64')];
  const zero = equal(q, 0);
  const q1 = where(zero, 1, q);
  const r = sub(p, mul(q1, floorQuotient(p, q1)));
  return rawCast(where(zero, 0, r), 'int32');
};
/** Elementwise x², as x·x. */
export const square = (x: Tensor): Tensor => mul(x, x);
/** Elementwise eˣ. */
export const exp = (x: Tensor): Tensor => bind('exp', [x], null);
/** Elementwise natural logarithm (NaN below 0, −∞ at 0). */
export const log = (x: Tensor): Tensor => bind('log', [x], null);
/** Elementwise square root. */
export const sqrt = (x: Tensor): Tensor => bind('sqrt', [x], null);
/** Elementwise hyperbolic tangent. */
export const tanh = (x: Tensor): Tensor => bind('tanh', [x], null);
/**
 * Elementwise 1/(1 + e⁻ˣ), computed without overflow for large |x| (its own primitive for stable
 * gradients).
 */
export const sigmoid = (x: Tensor): Tensor => bind('sigmoid', [x], null);
/** max(x, 0); its gradient at 0 is 0. */
export const relu = (x: Tensor): Tensor => bind('relu', [x], null);

/** true where x > 0 (a bool tensor): a constant (no gradient flows through it), on x's backend. */
export const stepMask = (x: Tensor): Tensor => greater(x, 0);

/**
 * The same values in another dtype, as NumPy's astype: to float32 rounded to
 * nearest; to bool x ≠ 0 (NaN is true); from a float to int32 truncated toward
 * zero, saturated at −2^31 and 2^31 − 1, NaN to 0 (JAX's rule: NumPy leaves
 * these undefined). Differentiable between floats; an int32 or bool result
 * carries no derivative.
 */
export const cast = (x: Tensor, dtype: DType): Tensor => {
  tensorArg('cast', 'x', x);
  checkDType(dtype, 'cast');
  if (x.dtype === dtype) return x;
  if (dtype === 'bool') return notEqual(x, 0);
  if (dtype === 'int32' && isFloat(x.dtype)) {
    const v = rawCast(x, 'float64');
    const truncated = where(less(v, 0), bind('round', [v], { mode: 'ceil' }), floorOf(v));
    const saturated = where(greater(truncated, 2 ** 31 - 1), 2 ** 31 - 1, where(less(truncated, -(2 ** 31)), -(2 ** 31), truncated));
    return rawCast(where(notEqual(v, v), 0, saturated), 'int32');
  }
  return bind('cast', [x], { dtype });
};

/**
 * The same values as a constant for every derivative (`grad`, `jvp` and their
 * nestings): gradients stop here. Under `vmap` it still maps over the batch.
 */
export const stopGradient = (x: Tensor): Tensor => (x.trace === undefined ? x : bind('stopGradient', [x], null));

/** Whether `matmul` uses either operand transposed (read through strides, never materialized). */
export interface MatmulOptions {
  /** Use aᵀ (a stored k×m). */
  readonly transA?: boolean;
  /** Use bᵀ (b stored n×k). */
  readonly transB?: boolean;
}

/** The last two axes swapped (a transposed copy). */
const swapLast = (x: Tensor): Tensor => transpose(x, [...Array(x.rank - 2).keys(), x.rank - 1, x.rank - 2]);

/**
 * Matrix product op(a)·op(b) with NumPy's `matmul` semantics: two matrices
 * (the flags read a transposed operand through strides, never a copy); a
 * vector as a row on the left or a column on the right (its axis dropped from
 * the result); operands of rank > 2 as stacks of matrices whose batch axes
 * broadcast (`batchedMatmul`; the flags then transpose each matrix).
 */
export const matmul = (a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor => {
  checkOptions('matmul', opts, ['transA', 'transB']);
  const transA = opts.transA ?? false;
  const transB = opts.transB ?? false;
  if (typeof transA !== 'boolean' || typeof transB !== 'boolean')
    throw new TypeError(`matmul: transA and transB must be booleans, got ${typeof transA} and ${typeof transB}`);
  if (!(a instanceof Tensor) || !(b instanceof Tensor)) throw new TypeError('matmul: both operands must be tensors');
  if (a.rank === 0 || b.rank === 0) {
    throw new ShapeError(`matmul: a scalar has no matrix product (use mul), got shapes ${showShape(a.shape)} and ${showShape(b.shape)}`);
  }
  if (a.rank !== 2 || b.rank !== 2) {
    const a2 = a.rank === 1 ? reshape(a, [1, a.shape[0]!]) : transA ? swapLast(a) : a;
    const b2 = b.rank === 1 ? reshape(b, [b.shape[0]!, 1]) : transB ? swapLast(b) : b;
    const out = batchedMatmul(a2, b2);
    const s = out.shape.filter((_d, i) => !(a.rank === 1 && i === out.rank - 2) && !(b.rank === 1 && i === out.rank - 1));
    return reshape(out, s);
  }
  const k1 = transA ? a.shape[0] : a.shape[1];
  const k2 = transB ? b.shape[1] : b.shape[0];
  if (k1 !== k2) {
    const ta = transA ? 'ᵀ' : '',
      tb = transB ? 'ᵀ' : '';
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
  if (!Array.isArray(list))
    throw new ShapeError(`${op}: axes must be an integer or an array of integers, got ${typeof axes === 'string' ? JSON.stringify(axes) : typeof axes}`);
  const norm = [...new Set(list.map((a) => normalizeAxis(a, rank, op)))];
  return norm.sort((a, b) => a - b);
};

/**
 * Sum over `axes` (all by default). A bool tensor sums to an int32 count; int32
 * sums wrap around as NumPy's (exact while each sum stays below 2^53 before
 * wrapping: any 2^22 int32 values).
 */
export const sum = (x: Tensor, axes?: Axes, keepDims = false): Tensor => {
  const params = { axes: normalizeAxes(axes, tensorArg('sum', 'x', x).rank, 'sum'), keepDims: checkBool('sum', 'keepDims', keepDims) };
  // A count of up to 2^24 is exact in float32, where bool lives: it stays on the device (fit's correct count on webgpu).
  if (x.dtype === 'bool' && params.axes.reduce((n, a) => n * x.shape[a]!, 1) <= 2 ** 24) return rawCast(bind('sum', [rawCast(x, 'float32')], params), 'int32');
  if (x.dtype === 'int32' || x.dtype === 'bool') return rawCast(wrapInt32(bind('sum', [rawCast(x, 'float64')], params)), 'int32');
  return bind('sum', [x], params);
};

/** Mean over `axes` (all by default); of an int32 or bool tensor, in float32 (JAX's rule). */
export const mean = (x: Tensor, axes?: Axes, keepDims = false): Tensor => {
  if (tensorArg('mean', 'x', x).dtype === 'int32' || x.dtype === 'bool') x = rawCast(x, 'float32');
  const ax = normalizeAxes(axes, x.rank, 'mean');
  const count = ax.reduce((n, a) => n * x.shape[a]!, 1);
  return mul(sum(x, ax, keepDims), 1 / count);
};

/** Maximum over `axes` (all by default); the gradient goes to the maxima, shared among ties. */
export const max = (x: Tensor, axes?: Axes, keepDims = false): Tensor =>
  bind('max', [tensorArg('max', 'x', x)], { axes: normalizeAxes(axes, x.rank, 'max'), keepDims: checkBool('max', 'keepDims', keepDims) });

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
  if (!Array.isArray(p)) throw new TypeError(`transpose: perm must be an array of axes, got ${typeof p}`);
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
  return keepDims
    ? lse
    : reshape(
        lse,
        x.shape.filter((_, i) => i !== normalizeAxis(axis, x.rank, 'logSumExp')),
      );
};

/** x − logSumExp(x): log-probabilities, stable. */
export const logSoftmax = (x: Tensor, axis = -1): Tensor => sub(x, logSumExp(x, axis, true));

/** exp(x) / Σ exp(x) over an axis, computed stably. */
export const softmax = (x: Tensor, axis = -1): Tensor => exp(logSoftmax(x, axis));

/** Σ x²: the L2 penalty's building block. */
export const sumOfSquares = (x: Tensor): Tensor => sum(mul(x, x));

/**
 * Integer labels as one-hot rows of `dtype`: shape [labels.length, classes], on
 * `backend` (default: the default backend). Throws on a label out of range.
 * Labels in an int32 tensor [N] give the rows on its backend (a composite:
 * equal against 0..classes−1, so it runs under jit and vmap; a label out of
 * range gives a row of zeros, as JAX's one_hot).
 */
export const oneHot = (labels: ArrayLike<number> | Tensor, classes: number, dtype: DType = 'float32', backend?: Backend): Tensor => {
  checkDType(dtype, 'oneHot');
  checkInt('oneHot', 'classes', classes, 0);
  if (labels instanceof Tensor) {
    if (labels.dtype !== 'int32' || labels.rank !== 1)
      throw new TypeError(`oneHot: labels in a tensor must be int32 of rank 1, got ${labels.dtype} of shape ${showShape(labels.shape)}`);
    const ids = internal.make(
      Array.from({ length: classes }, (_, i) => i),
      makeShape([1, classes]),
      'int32',
      labels.backend,
      'oneHot',
    );
    return cast(equal(reshape(labels, [labels.shape[0]!, 1]), ids), dtype);
  }
  if (dtype === 'int32' || dtype === 'bool') return cast(oneHot(labels, classes, 'float32', backend), dtype);
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

/** How `softmaxCrossEntropy` reduces over the batch. */
export interface CrossEntropyOptions {
  /** 'mean' over the batch (the report's convention) or 'sum'. */
  readonly reduction?: 'mean' | 'sum';
}

/**
 * Softmax cross-entropy of `logits` [N, C] against integer labels (length N) or
 * one-hot / probability targets [N, C]: −Σ t · logSoftmax(logits), reduced over the batch.
 */
export const softmaxCrossEntropy = (logits: Tensor, labels: Tensor | ArrayLike<number>, opts: CrossEntropyOptions = {}): Tensor => {
  if (!(logits instanceof Tensor)) tensorArg('softmaxCrossEntropy', 'logits', logits);
  if (logits.rank !== 2) {
    throw new ShapeError(`softmaxCrossEntropy: logits must be [batch, classes], got ${showShape(logits.shape)}`);
  }
  checkOptions('softmaxCrossEntropy', opts, ['reduction']);
  if (opts.reduction !== undefined && opts.reduction !== 'mean' && opts.reduction !== 'sum') {
    throw new TypeError(`softmaxCrossEntropy: reduction must be 'mean' or 'sum', got ${JSON.stringify(opts.reduction)}`);
  }
  const [n, c] = logits.shape as [number, number];
  let targets: Tensor;
  if (labels instanceof Tensor && labels.dtype === 'int32') {
    if (labels.rank !== 1 || labels.shape[0] !== n)
      throw new ShapeError(`softmaxCrossEntropy: int32 labels of shape ${showShape(labels.shape)} for logits of shape ${showShape(logits.shape)}: give [${n}]`);
    targets = oneHot(labels, c, logits.dtype, logits.backend);
  } else if (labels instanceof Tensor) {
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
    throw new ShapeError(
      `momentumUpdate: parameter ${showShape(p.shape)}, velocity ${showShape(v.shape)} and gradient ${showShape(g.shape)} must have one shape`,
    );
  }
  if (p.dtype !== v.dtype || p.dtype !== g.dtype) {
    throw new Error(`momentumUpdate: parameter (${p.dtype}), velocity (${v.dtype}) and gradient (${g.dtype}) must have one dtype`);
  }
  const main = innermost([p, v, g]);
  // Inside jit: recorded into the program, computed one level down.
  if (main?.fused !== undefined) return main.fused('momentumStep', [p, v, g], hp, ([p1, v1, g1]) => momentumUpdate(p1!, v1!, g1!, hp)) as [Tensor, Tensor];
  const be = backendOf('momentumUpdate', [p, v, g]);
  const [pb, vb] = be.fused.momentumStep(operand(p), operand(v), operand(g), hp);
  return [internal.wrap(new Storage(be, pb), p.shape, p.dtype), internal.wrap(new Storage(be, vb), p.shape, p.dtype)];
};

/**
 * One fused Adam update of a parameter tensor (not differentiable), on the
 * backend's fused kernel: returns [p', m', v'] (see `FusedKernels.adamStep`).
 */
export const adamUpdate = (p: Tensor, m: Tensor, v: Tensor, g: Tensor, hp: AdamHyper): [Tensor, Tensor, Tensor] => {
  for (const [name, t] of [
    ['first moment', m],
    ['second moment', v],
    ['gradient', g],
  ] as const) {
    if (!sameShape(p.shape, t.shape)) throw new ShapeError(`adamUpdate: parameter ${showShape(p.shape)} and ${name} ${showShape(t.shape)} must have one shape`);
    if (p.dtype !== t.dtype) throw new Error(`adamUpdate: parameter (${p.dtype}) and ${name} (${t.dtype}) must have one dtype`);
  }
  const main = innermost([p, m, v, g]);
  if (main?.fused !== undefined)
    return main.fused('adamStep', [p, m, v, g], hp, ([p1, m1, v1, g1]) => adamUpdate(p1!, m1!, v1!, g1!, hp)) as [Tensor, Tensor, Tensor];
  const be = backendOf('adamUpdate', [p, m, v, g]);
  const [pb, mb, vb] = be.fused.adamStep(operand(p), operand(m), operand(v), operand(g), hp);
  const wrap = (b: unknown) => internal.wrap(new Storage(be, b), p.shape, p.dtype);
  return [wrap(pb), wrap(mb), wrap(vb)];
};

/** max(x, αx) for 0 ≤ α < 1, as relu(x) − α·relu(−x): NaN passes through, as relu's does. */
export const leakyRelu = (x: Tensor, alpha = 0.01): Tensor => sub(relu(x), mul(relu(neg(x)), alpha));

/** GELU, tanh form (Hendrycks & Gimpel): ½x(1 + tanh(√(2/π)(x + 0.044715x³))), from primitives. */
export const gelu = (x: Tensor): Tensor => {
  const inner = mul(add(x, mul(mul(mul(x, x), x), 0.044715)), Math.sqrt(2 / Math.PI));
  return mul(mul(x, 0.5), add(tanh(inner), 1));
};

// ---------------------------------------------------------------------------
// Images (NCHW) and user-defined primitives
// ---------------------------------------------------------------------------

const positiveInt = (n: number) => Number.isInteger(n) && n > 0;

/** conv2d's options: each a positive integer (padding non-negative). */
export interface Conv2dOptions {
  /** Step between windows (default 1). */
  readonly stride?: number;
  /** Zeros added on every side (default 0). */
  readonly padding?: number;
  /** Spacing between the filter's taps (default 1; 2 reads every other pixel: an "atrous" convolution). */
  readonly dilation?: number;
  /** Channel groups (default 1): x's C channels and the F filters split into `groups` parts convolved pairwise; C = groups gives a depthwise convolution. */
  readonly groups?: number;
}

/** Filters [F, C, K, L] with d − 1 zeros between taps: [F, C, (K−1)d+1, (L−1)d+1] (a composite: pad, reshape, slice). */
const dilateFilter = (w: Tensor, d: number): Tensor => {
  const spread = (t: Tensor, axis: 2 | 3): Tensor => {
    const k = t.shape[axis]!;
    const s = t.shape;
    // A length-1 axis after `axis`, padded to d: each tap followed by d − 1 zeros once flattened.
    const wide = pad(
      reshape(t, [...s.slice(0, axis + 1), 1, ...s.slice(axis + 1)]),
      Array.from({ length: 5 }, (_, i) => [0, i === axis + 1 ? d - 1 : 0] as const),
    );
    const flat = reshape(
      wide,
      s.map((n, a) => (a === axis ? n * d : n)),
    );
    return slice(
      flat,
      [0, 0, 0, 0],
      s.map((n, a) => (a === axis ? (k - 1) * d + 1 : n)),
    );
  };
  return spread(spread(w, 2), 3);
};

/**
 * 2-D convolution (cross-correlation, as in every deep-learning library) of
 * images x [N, C, H, W] with filters w [F, C/groups, KH, KW], zero padding on every
 * side: out [N, F, ⌊(H + 2p − d(KH−1) − 1)/s⌋ + 1, ⌊(W + 2p − d(KW−1) − 1)/s⌋ + 1]. Layout NCHW.
 * `dilation` and `groups` are composites (a dilated filter with zeros between its taps; one
 * convolution per group, joined), so every transformation applies to them.
 */
export const conv2d = (x: Tensor, w: Tensor, opts: Conv2dOptions = {}): Tensor => {
  checkOptions('conv2d', opts, ['stride', 'padding', 'dilation', 'groups']);
  const stride = opts.stride ?? 1,
    padding = opts.padding ?? 0,
    dilation = opts.dilation ?? 1,
    groups = opts.groups ?? 1;
  if (!positiveInt(stride) || !Number.isInteger(padding) || padding < 0 || !positiveInt(dilation) || !positiveInt(groups)) {
    throw new ShapeError(
      `conv2d: stride, dilation and groups must be positive integers and padding a non-negative one; got stride ${stride}, padding ${padding}, dilation ${dilation}, groups ${groups}`,
    );
  }
  if (x.rank !== 4 || w.rank !== 4 || x.shape[1] !== w.shape[1]! * groups || w.shape[0]! % groups !== 0) {
    throw new ShapeError(
      `conv2d: images must be [batch, channels, height, width] and filters [out, channels / groups, kh, kw], out divisible by groups (${groups}); ` +
        `got ${showShape(x.shape)} and ${showShape(w.shape)}`,
    );
  }
  const wd = dilation === 1 ? w : dilateFilter(w, dilation);
  if (KN.slidingOut(x.shape[2]!, wd.shape[2]!, stride, padding) < 1 || KN.slidingOut(x.shape[3]!, wd.shape[3]!, stride, padding) < 1) {
    throw new ShapeError(
      `conv2d: filters ${showShape(w.shape)}${dilation > 1 ? ` dilated by ${dilation}` : ''} do not fit images ${showShape(x.shape)} with padding ${padding}`,
    );
  }
  if (groups === 1) return bind('conv2d', [x, wd], { stride, padding });
  const xs = split(x, groups, 1),
    ws = split(wd, groups, 0);
  return concat(
    xs.map((xg, g) => bind('conv2d', [xg, ws[g]!], { stride, padding })),
    1,
  );
};

const pool =
  (prim: 'maxPool2d' | 'avgPool2d') =>
  (x: Tensor, size: number, stride = size): Tensor => {
    checkInt(prim, 'the window size', size, 1);
    checkInt(prim, 'the stride', stride, 1);
    if (x.rank !== 4) throw new ShapeError(`${prim}: images must be [batch, channels, height, width]; got ${showShape(x.shape)}`);
    if (!positiveInt(size) || !positiveInt(stride) || size > x.shape[2]! || size > x.shape[3]!) {
      throw new ShapeError(`${prim}: a ${size}×${size} window (stride ${stride}) does not fit images ${showShape(x.shape)}`);
    }
    return bind(prim, [x], { size, stride });
  };

/** Maximum over size×size windows moved by `stride` (default `size`), no padding; NaN propagates. Layout NCHW. */
export const maxPool2d = pool('maxPool2d');
/** Mean over size×size windows moved by `stride` (default `size`), no padding. Layout NCHW. */
export const avgPool2d = pool('avgPool2d');

/**
 * Declares a differentiable function with its own vector-Jacobian product (like
 * `jax.custom_vjp`): `forward` computes the output from the inputs (on plain
 * tensors: nothing inside it is traced), and `vjp(ct, inputs, output)` returns
 * one cotangent per input, each of its input's shape. The result is used like
 * any op, inside `valueAndGrad` or outside it, and `gradcheck` checks it.
 *
 * @example
 * // softplus, with a VJP that needs no exp of large values
 * const softplus = customVjp('softplus',
 *   ([x]: [Tensor]) => log(add(exp(x), 1)),
 *   (ct, [x]) => [mul(ct, sigmoid(x))]);
 * const y = softplus(x);
 */
export const customVjp = <Xs extends readonly Tensor[]>(
  name: string,
  forward: (inputs: Xs) => Tensor,
  vjp: (ct: Tensor, inputs: Xs, output: Tensor) => { readonly [K in keyof Xs]: Tensor },
): ((...inputs: Xs) => Tensor) => {
  const rule: CustomRule = { name, forward: forward as unknown as CustomRule['forward'], vjp: vjp as unknown as CustomRule['vjp'] };
  return (...inputs: Xs): Tensor => bind('custom', inputs, rule);
};

/**
 * Inverted dropout: each element kept with probability 1 − rate and scaled by
 * 1/(1 − rate), else 0; the mask comes from `key` alone, so a run replays
 * exactly. Differentiable (the gradient is the same mask). The mask is made on
 * the host, where `Key` draws, and uploaded once: no value of x leaves its
 * device. Under `vmap`, every example gets the same mask (as with one key in JAX).
 */
export const dropout = (x: Tensor, rate: number, key: Key): Tensor => {
  if (typeof rate !== 'number' || !(rate >= 0 && rate < 1))
    throw new RangeError(`dropout: rate must be a number in [0, 1), got ${typeof rate === 'string' ? JSON.stringify(rate) : rate}`);
  if (rate === 0) return x;
  // The mask is made on the host from the key's draws (under jit: redone each call from the key passed in).
  const be = x.backend,
    shape = x.shape,
    dtype = x.dtype;
  const mask = internal.draw('dropout', key, (k) => {
    const u = k.uniform(shape, 0, 1, 'float64', backendRef('reference'));
    const m = KN.dropoutMask(plainAlloc, internal.dataOf(u), rate, dtype === 'float32' ? new Float32Array(0) : new Float64Array(0));
    u.dispose();
    return internal.adopt(m, shape, be);
  });
  return mul(x, mask);
};

/** 1/√(v + eps), the normalizers' scale, from primitives. */
export const rsqrtVar = (v: Tensor, eps: number): Tensor => reciprocal(sqrt(add(v, eps)));

const checkChannels = (op: string, x: Tensor) => {
  if (x.rank < 2 || x.shape[1]! < 1) throw new ShapeError(`${op}: input of shape ${showShape(x.shape)} should be [batch, channels, …]`);
};

/**
 * Each channel's (axis 1) mean and biased variance over every other axis, as
 * [2, C] (row 0 the means, row 1 the variances), in one kernel accumulating in
 * float64. Differentiable.
 */
export const channelMoments = (x: Tensor): Tensor => {
  checkChannels('channelMoments', x);
  return bind('channelMoments', [x], null);
};

/**
 * Batch normalization with the batch's own statistics, fused: per channel c of
 * x [N, C, …], (x − μ_c) / √(σ²_c + eps) · gain_c + bias_c, with μ, σ² (biased)
 * over every axis but 1 (accumulated in float64), and the batch's moments as
 * [2, C] constants (for running statistics). Equal to the composite of mean,
 * sub, mul and rsqrtVar up to rounding in three passes over x (and three for
 * its gradient) instead of ~20; the gradient flows through the statistics too.
 */
export const batchNormTrain = (x: Tensor, gain: Tensor, bias: Tensor, eps = 1e-5): { readonly y: Tensor; readonly moments: Tensor } => {
  checkChannels('batchNormalize', x);
  const C = x.shape[1]!;
  for (const [name, t] of [
    ['gain', gain],
    ['bias', bias],
  ] as const) {
    if (t.rank !== 1 || t.shape[0] !== C)
      throw new ShapeError(`batchNormalize: ${name} of shape ${showShape(t.shape)} should be [${C}] for input ${showShape(x.shape)}`);
  }
  if (!(eps >= 0)) throw new RangeError(`batchNormalize: eps must be a non-negative number, got ${eps}`);
  const moments = bind('channelMoments', [stopGradient(x)], null);
  return { y: bind('batchNorm', [x, moments, gain, bias], { eps }), moments };
};

/** `batchNormTrain`'s output alone: x normalized per channel with the batch's statistics, scaled and shifted. */
export const batchNormalize = (x: Tensor, gain: Tensor, bias: Tensor, eps = 1e-5): Tensor => batchNormTrain(x, gain, bias, eps).y;

// ---------------------------------------------------------------------------
// Indexing, joining, selection and comparisons
// ---------------------------------------------------------------------------

const checkAxis = (axis: number, rank: number, op: string) => normalizeAxis(axis, rank, op);

/**
 * The box of `sizes` starting at `starts` (one entry per axis; a negative start
 * counts from the end, as in NumPy; a size of -1 runs to the end). Steps and
 * negative steps: `stridedSlice`.
 */
export const slice = (x: Tensor, starts: readonly number[], sizes: readonly number[]): Tensor => {
  if (!Array.isArray(starts) || !Array.isArray(sizes))
    throw new TypeError(`slice: starts and sizes must be arrays of integers, one per axis of ${showShape(x.shape)}`);
  starts = starts.map((b, a) => (Number.isInteger(b) && b < 0 ? b + (x.shape[a] ?? 0) : b));
  const sz = sizes.map((n, a) => (n === -1 ? x.shape[a]! - starts[a]! : n));
  if (
    starts.length !== x.rank ||
    sz.length !== x.rank ||
    starts.some((b, a) => !Number.isInteger(b) || b < 0 || !Number.isInteger(sz[a]) || sz[a]! < 0 || b + sz[a]! > x.shape[a]!)
  ) {
    throw new ShapeError(`slice: starts ${showShape(starts)} and sizes ${showShape(sizes)} do not fit inside shape ${showShape(x.shape)}`);
  }
  if (sz.every((n, a) => n === x.shape[a])) return x;
  return bind('slice', [x], { starts: [...starts], sizes: sz });
};

/** Pads each axis with `[before, after]` elements of `value` (default 0). */
export const pad = (x: Tensor, widths: readonly (readonly [number, number])[], value = 0): Tensor => {
  if (widths.length !== x.rank || widths.some(([b, a]) => !Number.isInteger(b) || !Number.isInteger(a) || b < 0 || a < 0)) {
    throw new ShapeError(`pad: give one [before, after] pair of non-negative integers per axis of ${showShape(x.shape)}`);
  }
  checkNumber('pad', 'value', value);
  if (widths.every(([b, a]) => b === 0 && a === 0)) return x;
  return bind('pad', [x], { before: widths.map((w) => w[0]), after: widths.map((w) => w[1]), value });
};

/**
 * Gathers the entries `indices` along `axis` (repeats allowed); the gradient
 * adds back into each index. Indices in an int32 tensor (NumPy's take: the
 * result has x's shape with `axis` replaced by the indices' shape; negative
 * ones count from the end, out of range is an error) are a composite of
 * gather, so they run under jit and vmap.
 */
export const take = (x: Tensor, indices: ArrayLike<number> | Tensor, axis = 0): Tensor => {
  if (indices instanceof Tensor) {
    tensorArg('take', 'x', x);
    if (indices.dtype !== 'int32') throw new TypeError(`take: indices in a tensor must be int32, got ${indices.dtype} (cast(indices, 'int32'))`);
    const ax = checkAxis(axis, x.rank, 'take');
    const k = indices.size;
    // Indices along `axis`, length 1 elsewhere: gather broadcasts them over x's other axes.
    const idx = reshape(
      indices,
      x.shape.map((_d, a) => (a === ax ? k : 1)),
    );
    const out = bind(
      'gather',
      [
        x,
        broadcastTo(
          idx,
          x.shape.map((d, a) => (a === ax ? k : d)),
        ),
      ],
      { axis: ax },
    );
    return reshape(out, [...x.shape.slice(0, ax), ...indices.shape, ...x.shape.slice(ax + 1)]);
  }
  if (indices === null || typeof indices !== 'object' || typeof indices.length !== 'number') {
    throw new TypeError(`take: indices must be an array (or typed array) of integers, or an int32 tensor, got ${String(indices)}`);
  }
  const ax = checkAxis(axis, x.rank, 'take');
  const idx = Int32Array.from(indices as ArrayLike<number>);
  const bad = Array.from(indices).findIndex((j) => !Number.isInteger(j) || j < 0 || j >= x.shape[ax]!);
  if (bad >= 0)
    throw new ShapeError(`take: index ${Array.from(indices)[bad]} at position ${bad} is outside 0..${x.shape[ax]! - 1} (axis ${ax} of ${showShape(x.shape)})`);
  return bind('take', [x], { axis: ax, indices: idx });
};

/** Joins tensors along an existing axis; every other length must agree. */
export const concat = (xs: readonly Tensor[], axis = 0): Tensor => {
  if (!Array.isArray(xs as unknown)) throw new TypeError(`concat: give an array of tensors, got ${typeof xs}`);
  for (const [i, x] of xs.entries()) tensorArg('concat', `element ${i}`, x);
  if (xs.length === 0) throw new ShapeError('concat: nothing to join');
  const ax = checkAxis(axis, xs[0]!.rank, 'concat');
  const first = xs[0]!;
  const bad = xs.find((x) => x.rank !== first.rank || x.shape.some((d, a) => a !== ax && d !== first.shape[a]));
  if (bad !== undefined) throw new ShapeError(`concat: shapes ${xs.map((x) => showShape(x.shape)).join(', ')} differ off axis ${ax}`);
  if (xs.length === 1) return first;
  // Mixed dtypes with an int32 or bool among them join in their promoted dtype (float32 with float64 stays mixed, as the kernels take it).
  const d = xs.reduce<DType>((p, x) => promoteTypes(p, x.dtype), 'bool');
  if (!isFloat(d) || xs.some((x) => !isFloat(x.dtype)))
    return bind(
      'concat',
      xs.map((x) => cast(x, d)),
      { axis: ax },
    );
  return bind('concat', xs, { axis: ax });
};

/** Joins same-shape tensors along a new axis. */
export const stack = (xs: readonly Tensor[], axis = 0): Tensor => {
  if (xs.length === 0) throw new ShapeError('stack: nothing to stack');
  const ax = normalizeAxis(axis, xs[0]!.rank + 1, 'stack');
  if (xs.some((x) => !sameShape(x.shape, xs[0]!.shape))) throw new ShapeError(`stack: shapes ${xs.map((x) => showShape(x.shape)).join(', ')} differ`);
  return concat(
    xs.map((x) => reshape(x, [...x.shape.slice(0, ax), 1, ...x.shape.slice(ax)])),
    ax,
  );
};

/** Splits along `axis` into `n` equal parts, or parts of the given lengths. */
export const split = (x: Tensor, parts: number | readonly number[], axis = 0): Tensor[] => {
  if (typeof parts !== 'number' && !Array.isArray(parts)) throw new TypeError(`split: parts must be a count or an array of lengths, got ${typeof parts}`);
  const ax = checkAxis(axis, x.rank, 'split');
  const len = x.shape[ax]!;
  const sizes = typeof parts === 'number' ? (len % parts === 0 ? new Array<number>(parts).fill(len / parts) : undefined) : [...parts];
  if (sizes === undefined || sizes.reduce((a, b) => a + b, 0) !== len) {
    throw new ShapeError(
      `split: axis ${ax} of ${showShape(x.shape)} (length ${len}) cannot be split into ${typeof parts === 'number' ? `${parts} equal parts` : showShape(parts)}`,
    );
  }
  let at = 0;
  return sizes.map((n) => {
    const s = slice(
      x,
      x.shape.map((_d, a) => (a === ax ? at : 0)),
      x.shape.map((d, a) => (a === ax ? n : d)),
    );
    at += n;
    return s;
  });
};

const broadcastAll = (...xs: Tensor[]): Tensor[] => {
  const shape = xs.reduce<Shape>((s, x) => broadcastShapesOf(s, x.shape), xs[0]!.shape);
  return xs.map((x) => broadcastTo(x, shape));
};
const broadcastShapesOf = (a: Shape, b: Shape): Shape => broadcastShapes(a, b, 'where');

/**
 * cond ? a : b elementwise, broadcasting all three: cond a bool tensor (or
 * any other, non-zero read as true); a and b tensors, numbers or booleans,
 * promoted to one dtype. Gradients flow to the chosen side only, never to cond.
 */
export const where = (cond: Tensor, a: TensorLike | boolean, b: TensorLike | boolean): Tensor => {
  tensorArg('where', 'cond', cond);
  const [x, y] = lift(boolValue(a, cond), boolValue(b, cond), 'where');
  const [c, xb, yb] = broadcastAll(stopGradient(cond), x, y);
  return bind('select', [c!, xb!, yb!], null);
};

/** A boolean operand as a bool scalar (on the other operand's backend); anything else as it is. */
const boolValue = (v: TensorLike | boolean, other: TensorLike | boolean): TensorLike =>
  typeof v === 'boolean' ? scalar(v, 'bool', other instanceof Tensor ? other.backend : undefined) : v;

const compareOp =
  (op: KN.CompareOp) =>
  (a: TensorLike | boolean, b: TensorLike | boolean): Tensor => {
    const [x, y] = lift(boolValue(a, b), boolValue(b, a), op);
    // Constants: their inputs' broadcasts need no derivative either.
    const [xb, yb] = broadcastAll(stopGradient(x), stopGradient(y));
    return bind('compare', [xb!, yb!], { op });
  };

/** true where a > b (NaN compares false), broadcasting: a bool constant. */
export const greater = compareOp('greater');
/** true where a ≥ b: a bool constant. */
export const greaterEqual = compareOp('greaterEqual');
/** true where a < b: a bool constant. */
export const less = compareOp('less');
/** true where a ≤ b: a bool constant. */
export const lessEqual = compareOp('lessEqual');
/** true where a = b: a bool constant. */
export const equal = compareOp('equal');
/** true where a ≠ b (and where either is NaN): a bool constant. */
export const notEqual = compareOp('notEqual');

/** true where x is NaN: x ≠ x. */
const isNaNMask = (x: Tensor): Tensor => notEqual(x, x);

/** x as bool (itself, or x ≠ 0 for other dtypes, as NumPy's logical functions read their operands). */
const truth = (op: string, x: TensorLike): Tensor => {
  if (typeof x === 'number') throw new TypeError(`${op}: give tensors (a number has no shape to broadcast against alone)`);
  tensorArg(op, 'x', x);
  return x.dtype === 'bool' ? x : notEqual(x, 0);
};
/** Elementwise a AND b, broadcasting, as bool (non-bool operands are read as x ≠ 0). */
export const logicalAnd = (a: Tensor, b: Tensor): Tensor => where(truth('logicalAnd', a), truth('logicalAnd', b), false);
/** Elementwise a OR b, broadcasting, as bool (non-bool operands are read as x ≠ 0). */
export const logicalOr = (a: Tensor, b: Tensor): Tensor => where(truth('logicalOr', a), true, truth('logicalOr', b));
/** Elementwise a XOR b, broadcasting, as bool (non-bool operands are read as x ≠ 0). */
export const logicalXor = (a: Tensor, b: Tensor): Tensor => notEqual(truth('logicalXor', a), truth('logicalXor', b));
/** Elementwise NOT x, as bool (a non-bool x is read as x ≠ 0). */
export const logicalNot = (x: Tensor): Tensor => equal(truth('logicalNot', x), false);
const or = (p: Tensor, q: Tensor): Tensor => logicalOr(p, q);

/**
 * Elementwise maximum, broadcasting. NaN propagates (either side NaN gives
 * NaN); on ties the gradient goes to b.
 */
export const maximum = (a: TensorLike, b: TensorLike): Tensor => {
  const [x, y] = lift(a, b, 'maximum');
  return where(or(greater(x, y), isNaNMask(x)), x, y);
};

/** Elementwise minimum, broadcasting; NaN propagates; on ties the gradient goes to b. */
export const minimum = (a: TensorLike, b: TensorLike): Tensor => {
  const [x, y] = lift(a, b, 'minimum');
  return where(or(less(x, y), isNaNMask(x)), x, y);
};

/** sign(x): 1, −1, 0 at ±0, NaN for NaN; a constant (no gradient). */
export const sign = (x: Tensor): Tensor => bind('sign', [x], null);

/** |x|; NaN stays NaN; the gradient is sign(x), 0 at 0 (as PyTorch and JAX). */
export const abs = (x: Tensor): Tensor => {
  if (tensorArg('abs', 'x', x).dtype === 'bool') return x; // NumPy's: |true| is true
  return mul(x, bind('sign', [x], null));
};

/** x^p for a constant exponent p (x > 0 for non-integer p, as Math.pow). */
export const pow = (x: Tensor, p: number): Tensor => (checkNumber('pow', 'the exponent', p) === 1 ? x : bind('pow', [x], { p }));

/** x limited to [lo, hi]; NaN stays NaN; the gradient is 1 inside and 0 where clipped. */
export const clip = (x: Tensor, lo: number, hi: number): Tensor => {
  checkNumber('clip', 'lo', lo);
  checkNumber('clip', 'hi', hi);
  if (!(lo <= hi)) throw new RangeError(`clip: lo (${lo}) must not exceed hi (${hi})`);
  return minimum(maximum(x, lo), hi);
};

/**
 * Index of the largest entry along `axis` (first on ties; NaN counts as
 * largest), or, with no axis, into the flattened tensor (NumPy's default): a
 * constant of x's dtype, not differentiable.
 */
export const argmax = (x: Tensor, axis?: number): Tensor => {
  if (axis === undefined) return bind('argmax', [reshape(x, [-1])], { axis: 0 });
  return bind('argmax', [x], { axis: normalizeAxis(checkInt('argmax', 'axis', axis), x.rank, 'argmax') });
};

/**
 * Batched matrix product: a [..., m, k] · b [..., k, n] → [..., m, n], the batch
 * axes broadcast as NumPy's (a batch of 1, or a plain matrix, is shared by every
 * batch entry). A shared right operand is one product with the batch's rows
 * stacked, a shared left one one product with the batch's columns side by side;
 * otherwise each product runs on the backend's matmul. Gradients come from
 * reshape, transpose, slice, stack and matmul.
 */
export const batchedMatmul = (a: Tensor, b: Tensor): Tensor => {
  if (a.rank < 2 || b.rank < 2) throw new ShapeError(`batchedMatmul: operands must have rank ≥ 2, got ${showShape(a.shape)} and ${showShape(b.shape)}`);
  const [m, k] = a.shape.slice(-2) as [number, number];
  const [k2, n] = b.shape.slice(-2) as [number, number];
  if (k !== k2) throw new ShapeError(`batchedMatmul: ${showShape(a.shape)} · ${showShape(b.shape)}: inner lengths ${k} and ${k2} differ`);
  const batchA = a.shape.slice(0, -2),
    batchB = b.shape.slice(0, -2);
  let batch: Shape;
  try {
    batch = broadcastShapes(batchA, batchB, 'batchedMatmul');
  } catch {
    throw new ShapeError(
      `batchedMatmul: ${showShape(a.shape)} · ${showShape(b.shape)}: batch axes ${showShape(batchA)} and ${showShape(batchB)} do not broadcast`,
    );
  }
  const count = batch.reduce((p, d) => p * d, 1);
  if (batchB.every((d) => d === 1)) {
    const rows = reshape(broadcastTo(a, [...batch, m, k]), [count * m, k]);
    return reshape(matmul(rows, reshape(b, [k, n])), [...batch, m, n]);
  }
  if (batchA.every((d) => d === 1)) {
    // a · [b₀ | b₁ | …]: the batch's matrices side by side as columns of one right operand.
    const cols = reshape(transpose(reshape(broadcastTo(b, [...batch, k, n]), [count, k, n]), [1, 0, 2]), [k, count * n]);
    const out = matmul(reshape(a, [m, k]), cols);
    return reshape(transpose(reshape(out, [m, count, n]), [1, 0, 2]), [...batch, m, n]);
  }
  const a3 = reshape(broadcastTo(a, [...batch, m, k]), [count, m, k]),
    b3 = reshape(broadcastTo(b, [...batch, k, n]), [count, k, n]);
  const outs = Array.from({ length: count }, (_, i) =>
    matmul(reshape(slice(a3, [i, 0, 0], [1, m, k]), [m, k]), reshape(slice(b3, [i, 0, 0], [1, k, n]), [k, n])),
  );
  return reshape(stack(outs, 0), [...batch, m, n]);
};
