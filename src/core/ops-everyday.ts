/**
 * The everyday ops a NumPy, PyTorch or JAX user expects, with NumPy's
 * semantics: more element-wise functions, reductions (min, argmin, prod, var,
 * std), shape ops (squeeze, unsqueeze, flip, tile, repeat, strided slices),
 * constructors (arange, linspace, eye), scans (cumsum, cumprod), sorting
 * (sort, argsort, topk), indexing by a tensor (gather, scatterAdd) and einsum.
 *
 * Most are composites of primitives, and so get every transformation (grad,
 * jvp, vmap and their nestings) from them; the primitives among them (sin,
 * cos, erf, round, argsort, gather, scatterAdd) have their rules in
 * src/autodiff/rules and their kernels on every backend.
 */
import { defaultBackend, int32Limit, resolveBackend, type BackendLike } from './backend.js';
import {
  add,
  argmax,
  bind,
  cast,
  broadcastTo,
  matmul,
  max,
  mean,
  mul,
  neg,
  pad,
  reshape,
  slice,
  sqrt,
  square,
  sub,
  sum,
  take,
  transpose,
  type Axes,
} from './ops.js';
import { checkInt, checkOptions } from './options.js';
import type { DType } from './primitives.js';
import { broadcastShapes, makeShape, normalizeAxis, ShapeError, showShape } from './shape.js';
import { checkDType, internal, Tensor } from './tensor.js';

const isTensor = (op: string, name: string, x: unknown): Tensor => {
  if (!(x instanceof Tensor))
    throw new TypeError(`${op}: ${name} must be a Tensor, got ${x === null ? 'null' : Array.isArray(x) ? 'an array (make one with tensor())' : typeof x}`);
  return x;
};

/** Sorted, distinct, non-negative axes (all when omitted). */
const axesOf = (axes: Axes, rank: number, op: string): number[] => {
  if (axes === undefined) return [...Array(rank).keys()];
  const list = typeof axes === 'number' ? [axes] : axes;
  if (!Array.isArray(list)) throw new TypeError(`${op}: axes must be an integer or an array of integers, got ${typeof axes}`);
  return [...new Set(list.map((a) => normalizeAxis(checkInt(op, 'axis', a), rank, op)))].sort((p, q) => p - q);
};

// ---------------------------------------------------------------------------
// Element-wise
// ---------------------------------------------------------------------------

/** Elementwise sine. */
export const sin = (x: Tensor): Tensor => bind('sin', [isTensor('sin', 'x', x)], null);
/** Elementwise cosine. */
export const cos = (x: Tensor): Tensor => bind('cos', [isTensor('cos', 'x', x)], null);
/** Elementwise error function, 2/√π ∫₀ˣ e^(−t²) dt. */
export const erf = (x: Tensor): Tensor => bind('erf', [isTensor('erf', 'x', x)], null);
/** The largest integer ≤ x, elementwise: a constant (no gradient, as JAX's). */
export const floor = (x: Tensor): Tensor => bind('round', [isTensor('floor', 'x', x)], { mode: 'floor' });
/** The smallest integer ≥ x, elementwise: a constant. */
export const ceil = (x: Tensor): Tensor => bind('round', [isTensor('ceil', 'x', x)], { mode: 'ceil' });
/** The nearest integer, halves to the even one (NumPy's `round`: round(0.5) = 0, round(1.5) = 2): a constant. */
export const round = (x: Tensor): Tensor => bind('round', [isTensor('round', 'x', x)], { mode: 'halfEven' });

// ---------------------------------------------------------------------------
// Reductions
// ---------------------------------------------------------------------------

/** x negated exactly: int32 and bool in float64 (−(−2^31) would wrap in int32). */
const negExact = (x: Tensor): Tensor => (x.dtype === 'int32' || x.dtype === 'bool' ? neg(cast(x, 'float64')) : neg(x));

/** Minimum over `axes` (all by default), as −max(−x); the gradient goes to the minima, shared among ties. */
export const min = (x: Tensor, axes?: Axes, keepDims = false): Tensor => {
  const m = neg(max(negExact(isTensor('min', 'x', x)), axesOf(axes, x.rank, 'min'), keepDims));
  return m.dtype === x.dtype ? m : cast(m, x.dtype);
};

/** Index of the smallest entry along `axis` (first on ties, NaN first as NumPy's), or into the flattened tensor with no axis: an int32 constant. */
export const argmin = (x: Tensor, axis?: number): Tensor => argmax(negExact(isTensor('argmin', 'x', x)), axis);

/**
 * Product over `axes` (all by default; 1 over an empty axis). A composite: the
 * reduced values are multiplied pairwise in halves (⌈log₂ n⌉ multiplications
 * deep), so the gradient is the exact product rule, zeros included (no
 * division by x).
 */
export const prod = (x: Tensor, axes?: Axes, keepDims = false): Tensor => {
  isTensor('prod', 'x', x);
  const ax = axesOf(axes, x.rank, 'prod');
  const keptAxes = [...Array(x.rank).keys()].filter((a) => !ax.includes(a));
  const keptShape = keptAxes.map((a) => x.shape[a]!);
  const outShape = keepDims ? x.shape.map((d, a) => (ax.includes(a) ? 1 : d)) : keptShape;
  const rows = keptShape.reduce((p, d) => p * d, 1);
  let n = ax.reduce((p, a) => p * x.shape[a]!, 1);
  if (n === 0) return reshape(broadcastTo(add(mul(sum(x), 0), 1), [rows]), outShape);
  let y = reshape(transpose(x, [...keptAxes, ...ax]), [rows, n]);
  while (n > 1) {
    if (n % 2 === 1) {
      y = pad(
        y,
        [
          [0, 0],
          [0, 1],
        ],
        1,
      );
      n++;
    }
    y = mul(slice(y, [0, 0], [rows, n / 2]), slice(y, [0, n / 2], [rows, n / 2]));
    n /= 2;
  }
  return reshape(y, outShape);
};

/** Options of `variance` and `std`. */
export interface VarianceOptions {
  /** Delta degrees of freedom: divide by N − ddof (0, the default, as NumPy; 1 for the unbiased estimate, PyTorch's default). */
  readonly ddof?: number;
  /** Keep the reduced axes as length 1. */
  readonly keepDims?: boolean;
}

/** Variance over `axes` (all by default): Σ(x − mean)² / (N − ddof), NumPy's `var`. */
export const variance = (x: Tensor, axes?: Axes, opts: VarianceOptions = {}): Tensor => {
  isTensor('variance', 'x', x);
  checkOptions('variance', opts, ['ddof', 'keepDims']);
  const ddof = checkInt('variance', 'ddof', opts.ddof ?? 0, 0);
  const ax = axesOf(axes, x.rank, 'variance');
  const n = ax.reduce((p, a) => p * x.shape[a]!, 1);
  return mul(sum(square(sub(x, mean(x, ax, true))), ax, opts.keepDims ?? false), 1 / (n - ddof));
};

/** Standard deviation over `axes`: √variance (NumPy's `std`, ddof 0 by default). */
export const std = (x: Tensor, axes?: Axes, opts: VarianceOptions = {}): Tensor => sqrt(variance(x, axes, opts));

// ---------------------------------------------------------------------------
// Shapes
// ---------------------------------------------------------------------------

/** x without its length-1 axes (all of them, or those named; naming an axis longer than 1 is an error). */
export const squeeze = (x: Tensor, axes?: Axes): Tensor => {
  isTensor('squeeze', 'x', x);
  const ax = axes === undefined ? [...x.shape.keys()].filter((a) => x.shape[a] === 1) : axesOf(axes, x.rank, 'squeeze');
  const bad = ax.find((a) => x.shape[a] !== 1);
  if (bad !== undefined) throw new ShapeError(`squeeze: axis ${bad} of ${showShape(x.shape)} has length ${x.shape[bad]}, not 1`);
  return reshape(
    x,
    x.shape.filter((_d, a) => !ax.includes(a)),
  );
};

/** x with a new length-1 axis at `axis` (−1: last), NumPy's expand_dims. */
export const unsqueeze = (x: Tensor, axis: number): Tensor => {
  isTensor('unsqueeze', 'x', x);
  const a = normalizeAxis(checkInt('unsqueeze', 'axis', axis), x.rank + 1, 'unsqueeze');
  return reshape(x, [...x.shape.slice(0, a), 1, ...x.shape.slice(a)]);
};

/** x reversed along `axes` (all by default, as NumPy's flip). */
export const flip = (x: Tensor, axes?: Axes): Tensor =>
  axesOf(axes, isTensor('flip', 'x', x).rank, 'flip').reduce(
    (y, a) =>
      y.shape[a]! < 2
        ? y
        : take(
            y,
            Int32Array.from({ length: y.shape[a]! }, (_, i) => y.shape[a]! - 1 - i),
            a,
          ),
    x,
  );

/** x repeated `reps[i]` times along each axis (NumPy's tile: the shorter of x's shape and reps is padded with leading 1s). */
export const tile = (x: Tensor, reps: readonly number[]): Tensor => {
  isTensor('tile', 'x', x);
  const rs = (typeof reps === 'number' ? [reps] : reps) as readonly number[];
  if (!Array.isArray(rs)) throw new TypeError('tile: reps must be an array of non-negative integers');
  for (const r of rs) checkInt('tile', 'each repetition', r, 0);
  const rank = Math.max(x.rank, rs.length);
  const s = [...new Array<number>(rank - x.rank).fill(1), ...x.shape];
  const r = [...new Array<number>(rank - rs.length).fill(1), ...rs];
  const spread = reshape(
    x,
    s.flatMap((d) => [1, d]),
  );
  return reshape(
    broadcastTo(
      spread,
      s.flatMap((d, i) => [r[i]!, d]),
    ),
    s.map((d, i) => d * r[i]!),
  );
};

/**
 * Each element repeated `repeats` times along `axis` (NumPy's repeat: [1, 2] →
 * [1, 1, 2, 2]; with no axis, of the flattened tensor); `repeats` may give one
 * count per element of the axis.
 */
export const repeat = (x: Tensor, repeats: number | readonly number[], axis?: number): Tensor => {
  isTensor('repeat', 'x', x);
  const y = axis === undefined ? reshape(x, [-1]) : x;
  const a = axis === undefined ? 0 : normalizeAxis(checkInt('repeat', 'axis', axis), x.rank, 'repeat');
  const len = y.shape[a]!;
  if (typeof repeats === 'number') {
    checkInt('repeat', 'repeats', repeats, 0);
    const spread = reshape(y, [...y.shape.slice(0, a + 1), 1, ...y.shape.slice(a + 1)]);
    const wide = broadcastTo(spread, [...y.shape.slice(0, a + 1), repeats, ...y.shape.slice(a + 1)]);
    return reshape(
      wide,
      y.shape.map((d, i) => (i === a ? d * repeats : d)),
    );
  }
  if (!Array.isArray(repeats) || repeats.length !== len) {
    throw new ShapeError(
      `repeat: give one count, or one per element of axis ${a} (${len}), got ${Array.isArray(repeats) ? `${repeats.length} counts` : typeof repeats}`,
    );
  }
  for (const r of repeats) checkInt('repeat', 'each count', r, 0);
  return take(y, Int32Array.from(repeats.flatMap((r, i) => new Array<number>(r).fill(i))), a);
};

/** One axis of a strided slice, as Python's `start:stop:step` (each may be omitted; negatives count from the end). */
export interface SliceSpec {
  readonly start?: number;
  readonly stop?: number;
  readonly step?: number;
}

/** The indices Python's slice(start, stop, step) picks from a length `n` (as `slice.indices`). */
const sliceIndices = (n: number, { start, stop, step = 1 }: SliceSpec, axis: number): number[] => {
  checkInt('stridedSlice', `step of axis ${axis}`, step);
  if (step === 0) throw new RangeError(`stridedSlice: step of axis ${axis} is 0 (it must be a non-zero integer)`);
  const clamp = (v: number | undefined, dflt: number, lo: number, hi: number) => {
    if (v === undefined) return dflt;
    checkInt('stridedSlice', `start and stop of axis ${axis}`, v);
    const w = v < 0 ? v + n : v;
    return Math.min(Math.max(w, lo), hi);
  };
  const out: number[] = [];
  if (step > 0) {
    const b = clamp(start, 0, 0, n),
      e = clamp(stop, n, 0, n);
    for (let i = b; i < e; i += step) out.push(i);
  } else {
    const b = clamp(start, n - 1, -1, n - 1),
      e = clamp(stop, -1, -1, n - 1);
    for (let i = b; i > e; i += step) out.push(i);
  }
  return out;
};

/**
 * NumPy's basic slicing, one `{ start, stop, step }` per leading axis (missing
 * axes taken whole): `stridedSlice(x, [{ step: -1 }])` is x[::-1],
 * `[{ start: -3 }, { step: 2 }]` is x[-3:, ::2]. Differentiable (slice, or take
 * where the step is not 1).
 */
export const stridedSlice = (x: Tensor, specs: readonly SliceSpec[]): Tensor => {
  isTensor('stridedSlice', 'x', x);
  if (!Array.isArray(specs) || specs.length > x.rank)
    throw new ShapeError(`stridedSlice: give at most one { start, stop, step } per axis of ${showShape(x.shape)}`);
  let y = x;
  specs.forEach((spec, a) => {
    checkOptions('stridedSlice', spec, ['start', 'stop', 'step']);
    const idx = sliceIndices(x.shape[a]!, spec, a);
    const contiguous = idx.length > 0 && idx.every((v, i) => v === idx[0]! + i);
    if (contiguous)
      y = slice(
        y,
        y.shape.map((_d, b) => (b === a ? idx[0]! : 0)),
        y.shape.map((d, b) => (b === a ? idx.length : d)),
      );
    else if (idx.length === 0)
      y = slice(
        y,
        y.shape.map(() => 0),
        y.shape.map((d, b) => (b === a ? 0 : d)),
      );
    else y = take(y, Int32Array.from(idx), a);
  });
  return y;
};

// ---------------------------------------------------------------------------
// Constructors
// ---------------------------------------------------------------------------

const placed = (b: BackendLike | undefined) => (b === undefined ? defaultBackend() : resolveBackend(b));
const made = (values: ArrayLike<number>, shape: readonly number[], dtype: DType, backend: BackendLike | undefined, who: string): Tensor => {
  const d = checkDType(dtype, who);
  return d === 'float32' || d === 'float64'
    ? internal.adopt(d === 'float32' ? Float32Array.from(values) : Float64Array.from(values), makeShape(shape), placed(backend))
    : internal.make(values, makeShape(shape), d, placed(backend), who);
};

/** Options of the constructors below. */
export interface MakeOptions {
  readonly dtype?: DType;
  readonly backend?: BackendLike;
}

/**
 * NumPy's arange: start, start + step, … below stop (above it for a negative
 * step); `arange(n)` is 0..n−1. Values start + i·step, computed in float64.
 */
export const arange = (start: number, stop?: number, step = 1, opts: MakeOptions = {}): Tensor => {
  checkOptions('arange', opts, ['dtype', 'backend']);
  const [b, e] = stop === undefined ? [0, start] : [start, stop];
  for (const [name, v] of [
    ['start', b],
    ['stop', e],
    ['step', step],
  ] as const) {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new TypeError(`arange: ${name} must be a finite number, got ${String(v)}`);
  }
  if (step === 0) throw new RangeError('arange: step must not be 0');
  const n = Math.max(0, Math.ceil((e - b) / step));
  return made(
    Array.from({ length: n }, (_, i) => b + i * step),
    [n],
    opts.dtype ?? 'float32',
    opts.backend,
    'arange',
  );
};

/** NumPy's linspace: `num` evenly spaced values from start to stop (stop included unless `endpoint` is false). */
export const linspace = (start: number, stop: number, num = 50, opts: MakeOptions & { readonly endpoint?: boolean } = {}): Tensor => {
  checkOptions('linspace', opts, ['dtype', 'backend', 'endpoint']);
  for (const [name, v] of [
    ['start', start],
    ['stop', stop],
  ] as const) {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new TypeError(`linspace: ${name} must be a finite number, got ${String(v)}`);
  }
  checkInt('linspace', 'num', num, 0);
  const endpoint = opts.endpoint ?? true;
  const div = endpoint ? num - 1 : num;
  const step = div > 0 ? (stop - start) / div : 0;
  const v = Array.from({ length: num }, (_, i) => start + i * step);
  if (endpoint && num > 1) v[num - 1] = stop;
  return made(v, [num], opts.dtype ?? 'float32', opts.backend, 'linspace');
};

/** The n×m matrix (m = n by default) with ones on diagonal k (0: the main one; k > 0 above it), NumPy's eye. */
export const eye = (n: number, m?: number, k = 0, opts: MakeOptions = {}): Tensor => {
  checkOptions('eye', opts, ['dtype', 'backend']);
  checkInt('eye', 'n', n, 0);
  const cols = m === undefined ? n : checkInt('eye', 'm', m, 0);
  checkInt('eye', 'k', k);
  const v = new Float64Array(n * cols);
  for (let i = 0; i < n; i++) if (i + k >= 0 && i + k < cols) v[i * cols + i + k] = 1;
  return made(v, [n, cols], opts.dtype ?? 'float32', opts.backend, 'eye');
};

// ---------------------------------------------------------------------------
// Scans
// ---------------------------------------------------------------------------

/**
 * An inclusive scan along `axis` by doubling (Hillis–Steele): ⌈log₂ n⌉ steps,
 * each combining the running result with itself shifted by 2^s (the shift
 * filled with the identity): a composite of pad, slice and the combining op.
 */
const scan =
  (op: string, combine: (a: Tensor, b: Tensor) => Tensor, identity: number) =>
  (x: Tensor, axis?: number): Tensor => {
    isTensor(op, 'x', x);
    if (x.dtype === 'bool') x = cast(x, 'int32'); // NumPy's: a running count
    const y0 = axis === undefined ? reshape(x, [-1]) : x;
    const a = axis === undefined ? 0 : normalizeAxis(checkInt(op, 'axis', axis), x.rank, op);
    const n = y0.shape[a]!;
    let y = y0;
    for (let s = 1; s < n; s *= 2) {
      const shifted = slice(
        pad(
          y,
          y.shape.map((_d, b) => [b === a ? s : 0, 0] as const),
          identity,
        ),
        y.shape.map(() => 0),
        y.shape,
      );
      y = combine(y, shifted);
    }
    return y;
  };

/** Running sums along `axis` (of the flattened tensor with no axis, as NumPy's cumsum). Differentiable. */
export const cumsum = scan('cumsum', add, 0);
/** Running products along `axis` (of the flattened tensor with no axis). Differentiable, zeros included. */
export const cumprod = scan('cumprod', mul, 1);

// ---------------------------------------------------------------------------
// Sorting and indexing by a tensor
// ---------------------------------------------------------------------------

/** Options of sort, argsort. */
export interface SortOptions {
  /** Largest first (NaN first); default ascending with NaN last (NumPy's). */
  readonly descending?: boolean;
}

const checkSortAxis = (op: string, x: Tensor, axis: number, opts: SortOptions): { axis: number; descending: boolean } => {
  isTensor(op, 'x', x);
  checkOptions(op, opts, ['descending']);
  if (x.rank === 0) throw new ShapeError(`${op}: a scalar has no axis to sort`);
  const a = normalizeAxis(checkInt(op, 'axis', axis), x.rank, op);
  if (x.shape[a]! > int32Limit(x.backend))
    throw new RangeError(`${op}: an axis of ${x.shape[a]} is longer than the int32 indices the ${x.backend.name} backend holds exactly (±2^24)`);
  const descending = opts.descending ?? false;
  if (typeof descending !== 'boolean') throw new TypeError(`${op}: descending must be a boolean`);
  return { axis: a, descending };
};

/** The indices that sort x along `axis` (last by default), stably: an int32 constant. */
export const argsort = (x: Tensor, axis = -1, opts: SortOptions = {}): Tensor => bind('argsort', [x], checkSortAxis('argsort', x, axis, opts));

/** x sorted along `axis` (last by default), stably; the gradient flows back to each value's place. */
export const sort = (x: Tensor, axis = -1, opts: SortOptions = {}): Tensor => {
  const p = checkSortAxis('sort', x, axis, opts);
  return bind('gather', [x, bind('argsort', [x], p)], { axis: p.axis });
};

/** The k largest entries along `axis` (last by default), largest first, and their indices (PyTorch's topk). */
export const topk = (x: Tensor, k: number, axis = -1): { readonly values: Tensor; readonly indices: Tensor } => {
  const p = checkSortAxis('topk', x, axis, { descending: true });
  const n = x.shape[p.axis]!;
  checkInt('topk', 'k', k, 0);
  if (k > n) throw new RangeError(`topk: k = ${k} exceeds the length ${n} of axis ${p.axis} of ${showShape(x.shape)}`);
  const order = bind('argsort', [x], p);
  const indices = slice(
    order,
    x.shape.map(() => 0),
    x.shape.map((d, a) => (a === p.axis ? k : d)),
  );
  return { values: bind('gather', [x, indices], { axis: p.axis }), indices };
};

const checkIndexTensor = (op: string, x: Tensor, idx: unknown, axis: number): { idx: Tensor; axis: number } => {
  isTensor(op, 'x', x);
  if (!(idx instanceof Tensor)) {
    throw new TypeError(
      `${op}: indices must be a Tensor of integers with x's rank (for a list of indices along one axis, use take), got ${idx === null ? 'null' : Array.isArray(idx) ? 'an array' : typeof idx}`,
    );
  }
  if (idx.rank !== x.rank) throw new ShapeError(`${op}: indices of shape ${showShape(idx.shape)} must have the rank of ${showShape(x.shape)}`);
  if (idx.dtype === 'bool') throw new TypeError(`${op}: indices must be int32 (or integers in a float tensor), got bool: for a mask use where`);
  return { idx, axis: normalizeAxis(checkInt(op, 'axis', axis), x.rank, op) };
};

/**
 * NumPy's take_along_axis: out[…, i, …] = x[…, indices[…, i, …], …] along
 * `axis`, the other axes of x and indices broadcast against each other;
 * indices hold integers (negative ones from the end; out of range is an error).
 * Differentiable in x (its gradient is scatterAdd), not in the indices.
 */
export const gather = (x: Tensor, indices: Tensor, axis: number): Tensor => {
  const { idx, axis: a } = checkIndexTensor('gather', x, indices, axis);
  const off = (s: readonly number[]) => s.map((d, b) => (b === a ? 1 : d));
  let both: readonly number[];
  try {
    both = broadcastShapes(off(x.shape), off(idx.shape), 'gather');
  } catch {
    throw new ShapeError(`gather: x ${showShape(x.shape)} and indices ${showShape(idx.shape)} differ off axis ${a} (and do not broadcast)`);
  }
  const xb = broadcastTo(
    x,
    both.map((d, b) => (b === a ? x.shape[a]! : d)),
  );
  const ib = broadcastTo(
    idx,
    both.map((d, b) => (b === a ? idx.shape[a]! : d)),
  );
  return bind('gather', [xb, ib], { axis: a });
};

/**
 * `base` with each src[…, i, …] added at […, indices[…, i, …], …] along `axis`
 * (repeated indices accumulate; PyTorch's scatter_add, out of place): indices
 * and src of one shape, equal to base's off the axis. Differentiable in base
 * and src.
 */
export const scatterAdd = (base: Tensor, indices: Tensor, src: Tensor, axis: number): Tensor => {
  const { idx, axis: a } = checkIndexTensor('scatterAdd', base, indices, axis);
  isTensor('scatterAdd', 'src', src);
  if (src.rank !== idx.rank || src.shape.some((d, b) => d !== idx.shape[b]))
    throw new ShapeError(`scatterAdd: src ${showShape(src.shape)} and indices ${showShape(idx.shape)} must have one shape`);
  if (idx.shape.some((d, b) => b !== a && d !== base.shape[b]))
    throw new ShapeError(`scatterAdd: indices ${showShape(idx.shape)} must match base ${showShape(base.shape)} off axis ${a}`);
  return bind('scatterAdd', [base, idx, src], { axis: a });
};

// ---------------------------------------------------------------------------
// einsum
// ---------------------------------------------------------------------------

/** Contracts a and b over labels: a composite of transpose, reshape, sum and matmul. */
const contractPair = (a: Tensor, la: string, b: Tensor, lb: string, keep: string): { t: Tensor; labels: string } => {
  // Labels only one side has and nobody keeps are summed away first.
  const sumOwn = (x: Tensor, l: string, other: string): { x: Tensor; l: string } => {
    const drop = [...l].map((c, i) => (!other.includes(c) && !keep.includes(c) ? i : -1)).filter((i) => i >= 0);
    return drop.length === 0 ? { x, l } : { x: sum(x, drop), l: [...l].filter((_c, i) => !drop.includes(i)).join('') };
  };
  ({ x: a, l: la } = sumOwn(a, la, lb));
  ({ x: b, l: lb } = sumOwn(b, lb, la));
  const batch = [...la].filter((c) => lb.includes(c) && keep.includes(c));
  const contracted = [...la].filter((c) => lb.includes(c) && !keep.includes(c));
  const freeA = [...la].filter((c) => !lb.includes(c));
  const freeB = [...lb].filter((c) => !la.includes(c));
  const dim = (x: Tensor, l: string, c: string) => x.shape[l.indexOf(c)]!;
  const size = (x: Tensor, l: string, cs: string[]) => cs.reduce((p, c) => p * dim(x, l, c), 1);
  const a3 = reshape(
    transpose(
      a,
      [...batch, ...freeA, ...contracted].map((c) => la.indexOf(c)),
    ),
    [size(a, la, batch), size(a, la, freeA), size(a, la, contracted)],
  );
  const b3 = reshape(
    transpose(
      b,
      [...batch, ...contracted, ...freeB].map((c) => lb.indexOf(c)),
    ),
    [size(b, lb, batch), size(b, lb, contracted), size(b, lb, freeB)],
  );
  const out = matmul(a3, b3);
  const labels = [...batch, ...freeA, ...freeB].join('');
  const shape = [...batch.map((c) => dim(a, la, c)), ...freeA.map((c) => dim(a, la, c)), ...freeB.map((c) => dim(b, lb, c))];
  return { t: reshape(out, shape), labels };
};

/**
 * Einstein summation over lowercase or uppercase letter labels, NumPy's
 * explicit and implicit forms: `einsum('ij,jk->ik', a, b)`, `einsum('bij,bjk', a, b)`,
 * diagonals and traces (`'ii->i'`, `'ii'`). Operands are contracted left to
 * right, each pair as one (batched) matmul; a composite, so every
 * transformation applies. No ellipsis (`...`).
 */
export const einsum = (spec: string, ...operands: Tensor[]): Tensor => {
  if (typeof spec !== 'string') throw new TypeError(`einsum: the first argument must be a spec string such as 'ij,jk->ik', got ${typeof spec}`);
  for (const [i, t] of operands.entries()) isTensor('einsum', `operand ${i}`, t);
  const clean = spec.replace(/\s+/g, '');
  const m = /^([a-zA-Z]*(?:,[a-zA-Z]*)*)(?:->([a-zA-Z]*))?$/.exec(clean);
  if (m === null)
    throw new SyntaxError(`einsum: '${spec}' is not a spec of letters, commas and one optional '->' (e.g. 'ij,jk->ik'); ellipses are not supported`);
  const inputs = m[1]!.split(',');
  if (inputs.length !== operands.length)
    throw new TypeError(`einsum: '${spec}' names ${inputs.length} operand${inputs.length === 1 ? '' : 's'}, got ${operands.length}`);
  const sizes = new Map<string, number>();
  const xs = [...operands];
  inputs.forEach((l, i) => {
    const t = operands[i]!;
    if (l.length !== t.rank) throw new ShapeError(`einsum: operand ${i} of shape ${showShape(t.shape)} has ${t.rank} axes but '${l}' names ${l.length}`);
    [...l].forEach((c, a) => {
      const d = t.shape[a]!;
      if (sizes.has(c) && sizes.get(c) !== d) throw new ShapeError(`einsum: label '${c}' has length ${sizes.get(c)} in one operand and ${d} in operand ${i}`);
      sizes.set(c, d);
    });
  });
  // Implicit output: the labels that appear once, in alphabetical order (NumPy's rule).
  const counts = new Map<string, number>();
  for (const c of inputs.join('')) counts.set(c, (counts.get(c) ?? 0) + 1);
  // A label twice in one operand takes its diagonal ('ii->i', 'ii->'): x times the identity on those two axes, summed over the second.
  inputs.forEach((l0, i) => {
    let l = l0,
      x = xs[i]!;
    for (let q = 1; q < l.length; q++) {
      const p = l.indexOf(l[q]!);
      if (p === q) continue;
      const d = x.shape[q]!;
      const mask = reshape(
        eye(d, d, 0, { dtype: x.dtype, backend: x.backend }),
        x.shape.map((_n, a) => (a === p || a === q ? d : 1)),
      );
      x = sum(mul(x, mask), q);
      l = l.slice(0, q) + l.slice(q + 1);
      q--;
    }
    xs[i] = x;
    inputs[i] = l;
  });
  const output =
    m[2] ??
    [...counts.keys()]
      .filter((c) => counts.get(c) === 1)
      .sort()
      .join('');
  if (new Set(output).size !== output.length) throw new SyntaxError(`einsum: output '${output}' repeats a label`);
  const missing = [...output].find((c) => !sizes.has(c));
  if (missing !== undefined) throw new SyntaxError(`einsum: output label '${missing}' appears in no operand`);
  let acc = xs[0]!,
    labels = inputs[0]!;
  for (let i = 1; i < xs.length; i++) {
    const later = inputs.slice(i + 1).join('') + output;
    ({ t: acc, labels } = contractPair(acc, labels, xs[i]!, inputs[i]!, later));
  }
  const drop = [...labels].map((c, i) => (output.includes(c) ? -1 : i)).filter((i) => i >= 0);
  if (drop.length > 0) {
    acc = sum(acc, drop);
    labels = [...labels].filter((_c, i) => !drop.includes(i)).join('');
  }
  const perm = [...output].map((c) => labels.indexOf(c));
  return perm.every((p, i) => p === i) ? acc : transpose(acc, perm);
};
