/**
 * Plain-TypeScript kernels for everything but matmul. Each allocates its output
 * and never writes to its inputs. Hot paths (same shape, row-vector broadcast,
 * last-axis reductions) get their own loops; the general cases use index maps.
 */
import { broadcastIndex, broadcastShapes, sameShape, sizeOf, stridesOf, type Shape } from './shape.js';
import { allocData, type Data, type DType } from './tensor.js';

export const resultDType = (a: Data, b: Data): DType =>
  a instanceof Float64Array || b instanceof Float64Array ? 'float64' : 'float32';

export type BinaryOp = 'add' | 'mul';

/** Elementwise add or mul with NumPy broadcasting. */
export const binary = (op: BinaryOp, a: Data, as: Shape, b: Data, bs: Shape): { data: Data; shape: Shape } => {
  const shape = broadcastShapes(as, bs, op);
  const n = sizeOf(shape);
  const out = allocData(resultDType(a, b), n, false);
  const add = op === 'add';
  if (sameShape(as, bs)) {
    if (add) for (let i = 0; i < n; i++) out[i] = a[i]! + b[i]!;
    else for (let i = 0; i < n; i++) out[i] = a[i]! * b[i]!;
  } else if (b.length === 1 && sameShape(as, shape)) {
    const v = b[0]!;
    if (add) for (let i = 0; i < n; i++) out[i] = a[i]! + v;
    else for (let i = 0; i < n; i++) out[i] = a[i]! * v;
  } else if (a.length === 1 && sameShape(bs, shape)) {
    const v = a[0]!;
    if (add) for (let i = 0; i < n; i++) out[i] = v + b[i]!;
    else for (let i = 0; i < n; i++) out[i] = v * b[i]!;
  } else if (as.length === 2 && sameShape(as, shape) && bs.length === 2 && bs[1] === 1 && bs[0] === as[0]) {
    // A column over every column: logits − logSumExp in the cross-entropy.
    const w = as[1]!;
    for (let r = 0, o = 0; r < as[0]!; r++, o += w) {
      const v = b[r]!;
      if (add) for (let j = 0; j < w; j++) out[o + j] = a[o + j]! + v;
      else for (let j = 0; j < w; j++) out[o + j] = a[o + j]! * v;
    }
  } else if (sameShape(as, shape) && bs.length >= 1 && b.length === bs[bs.length - 1] && b.length === shape[shape.length - 1]) {
    // The bias add: a row vector over every row of a batch.
    const w = b.length;
    for (let r = 0; r < n; r += w) {
      if (add) for (let j = 0; j < w; j++) out[r + j] = a[r + j]! + b[j]!;
      else for (let j = 0; j < w; j++) out[r + j] = a[r + j]! * b[j]!;
    }
  } else {
    const ia = broadcastIndex(as, shape);
    const ib = broadcastIndex(bs, shape);
    if (add) for (let i = 0; i < n; i++) out[i] = a[ia[i]!]! + b[ib[i]!]!;
    else for (let i = 0; i < n; i++) out[i] = a[ia[i]!]! * b[ib[i]!]!;
  }
  return { data: out, shape };
};

export type UnaryOp = 'neg' | 'reciprocal' | 'exp' | 'log' | 'sqrt' | 'tanh' | 'sigmoid' | 'relu';

/** Elementwise unary functions, one loop each (no per-element closure). */
export const unary = (op: UnaryOp, x: Data): Data => {
  const n = x.length;
  const out = allocData(x instanceof Float64Array ? 'float64' : 'float32', n, false);
  switch (op) {
    case 'neg': for (let i = 0; i < n; i++) out[i] = -x[i]!; break;
    case 'reciprocal': for (let i = 0; i < n; i++) out[i] = 1 / x[i]!; break;
    case 'exp': for (let i = 0; i < n; i++) out[i] = Math.exp(x[i]!); break;
    case 'log': for (let i = 0; i < n; i++) out[i] = Math.log(x[i]!); break;
    case 'sqrt': for (let i = 0; i < n; i++) out[i] = Math.sqrt(x[i]!); break;
    case 'tanh': for (let i = 0; i < n; i++) out[i] = Math.tanh(x[i]!); break;
    case 'sigmoid':
      // Split by sign so exp never overflows.
      for (let i = 0; i < n; i++) {
        const v = x[i]!;
        if (v >= 0) out[i] = 1 / (1 + Math.exp(-v));
        else { const e = Math.exp(v); out[i] = e / (1 + e); }
      }
      break;
    // NaN passes through (as in IEEE max and in PyTorch/JAX); -0 still gives +0.
    case 'relu': for (let i = 0; i < n; i++) { const v = x[i]!; out[i] = v > 0 || v !== v ? v : 0; } break;
  }
  return out;
};

/** Shape after reducing `axes` (kept as length-1 axes when keepDims). */
export const reducedShape = (s: Shape, axes: readonly number[], keepDims: boolean): Shape =>
  Object.freeze(
    keepDims ? s.map((d, i) => (axes.includes(i) ? 1 : d)) : s.filter((_, i) => !axes.includes(i)),
  );

/** For each input element, the flat index of the output element it reduces into. */
const reduceIndex = (s: Shape, axes: readonly number[]): Int32Array => {
  const kept = reducedShape(s, axes, true);
  const outStrides = stridesOf(kept).map((st, i) => (axes.includes(i) ? 0 : st));
  return broadcastIndexWithStrides(s, outStrides);
};

const broadcastIndexWithStrides = (s: Shape, strides: readonly number[]): Int32Array => {
  const n = sizeOf(s);
  const idx = new Int32Array(n);
  const rank = s.length;
  const counter = new Array<number>(rank).fill(0);
  let pos = 0;
  for (let k = 0; k < n; k++) {
    idx[k] = pos;
    for (let ax = rank - 1; ax >= 0; ax--) {
      counter[ax]!++;
      pos += strides[ax]!;
      if (counter[ax]! < s[ax]!) break;
      pos -= strides[ax]! * s[ax]!;
      counter[ax] = 0;
    }
  }
  return idx;
};

export type ReduceOp = 'sum' | 'max';

/** Sum or max over a set of axes (sorted, distinct, in range). */
export const reduce = (op: ReduceOp, x: Data, s: Shape, axes: readonly number[], keepDims: boolean): { data: Data; shape: Shape } => {
  const shape = reducedShape(s, axes, keepDims);
  const outN = sizeOf(shape);
  const out = allocData(x instanceof Float64Array ? 'float64' : 'float32', outN);
  const n = x.length;
  const isSum = op === 'sum';
  if (axes.length === 0) {
    out.set(x);
  } else if (axes.length === s.length) {
    // Everything: accumulate in float64.
    let acc = isSum ? 0 : -Infinity;
    if (isSum) for (let i = 0; i < n; i++) acc += x[i]!;
    else for (let i = 0; i < n; i++) { const v = x[i]!; if (v > acc || Number.isNaN(v)) acc = v; }
    out[0] = acc;
  } else if (axes.length === 1 && axes[0] === s.length - 1) {
    // Last axis: one contiguous row per output element.
    const w = s[s.length - 1]!;
    for (let r = 0; r < outN; r++) {
      const o = r * w;
      let acc = isSum ? 0 : -Infinity;
      if (isSum) for (let j = 0; j < w; j++) acc += x[o + j]!;
      else for (let j = 0; j < w; j++) { const v = x[o + j]!; if (v > acc || Number.isNaN(v)) acc = v; }
      out[r] = acc;
    }
  } else if (isSum && s.length === 2 && axes.length === 1 && axes[0] === 0) {
    // Column sums (the bias gradient): rows added in order, in float64.
    const [r, c] = s as [number, number];
    const acc = new Float64Array(c);
    for (let i = 0, o = 0; i < r; i++, o += c) for (let j = 0; j < c; j++) acc[j]! += x[o + j]!;
    out.set(acc);
  } else {
    const map = reduceIndex(s, axes);
    if (isSum) {
      const acc = new Float64Array(outN);
      for (let i = 0; i < n; i++) acc[map[i]!]! += x[i]!;
      out.set(acc);
    } else {
      out.fill(-Infinity);
      for (let i = 0; i < n; i++) { const v = x[i]!; const o = map[i]!; if (v > out[o]! || Number.isNaN(v)) out[o] = v; }
    }
  }
  return { data: out, shape };
};

/**
 * The gradient of a max reduction: `ct` spread back onto the positions that hold
 * the maximum, shared equally among ties (as JAX does).
 */
export const maxGrad = (x: Data, s: Shape, axes: readonly number[], max: Data, ct: Data): Data => {
  const map = reduceIndex(s, axes);
  const n = x.length;
  const counts = new Float64Array(max.length);
  for (let i = 0; i < n; i++) if (x[i] === max[map[i]!]) counts[map[i]!]!++;
  const out = allocData(x instanceof Float64Array || ct instanceof Float64Array ? 'float64' : 'float32', n);
  for (let i = 0; i < n; i++) {
    const o = map[i]!;
    if (x[i] === max[o]) out[i] = ct[o]! / counts[o]!;
  }
  return out;
};

/** `ct` copied to every position of shape `s` that reduced into it (the sum's gradient). */
export const broadcastTo = (x: Data, from: Shape, to: Shape): Data => {
  const out = allocData(x instanceof Float64Array ? 'float64' : 'float32', sizeOf(to), false);
  if (x.length === 1) out.fill(x[0]!);
  else {
    const idx = broadcastIndex(from, to);
    for (let i = 0; i < out.length; i++) out[i] = x[idx[i]!]!;
  }
  return out;
};

/** Permutes axes. Rank-2 `[1, 0]` is the common case and gets a blocked loop. */
export const transpose = (x: Data, s: Shape, perm: readonly number[]): { data: Data; shape: Shape } => {
  const shape = Object.freeze(perm.map((p) => s[p]!));
  const out = allocData(x instanceof Float64Array ? 'float64' : 'float32', x.length, false);
  if (s.length === 2 && perm[0] === 1) {
    const r = s[0]!, c = s[1]!;
    const B = 32;
    for (let i0 = 0; i0 < r; i0 += B) {
      for (let j0 = 0; j0 < c; j0 += B) {
        const i1 = Math.min(i0 + B, r), j1 = Math.min(j0 + B, c);
        for (let i = i0; i < i1; i++) for (let j = j0; j < j1; j++) out[j * r + i] = x[i * c + j]!;
      }
    }
  } else {
    const inStrides = stridesOf(s);
    const idx = broadcastIndexWithStrides(shape, perm.map((p) => inStrides[p]!));
    for (let i = 0; i < out.length; i++) out[i] = x[idx[i]!]!;
  }
  return { data: out, shape };
};

/**
 * The momentum update in one pass (instead of six tensor ops, each a full pass
 * and an allocation): g' = g + l2·p; v' = γ·v + lr·g'; p' = p − (nesterov ? γ·v' + lr·g' : v').
 */
export const momentumStep = (
  p: Data, v: Data, g: Data,
  hp: { readonly lr: number; readonly gamma: number; readonly l2: number; readonly nesterov: boolean },
  pOut: Data, vOut: Data,
): void => {
  const { lr, gamma, l2, nesterov } = hp;
  for (let i = 0; i < p.length; i++) {
    const pi = p[i]!;
    const gi = g[i]! + l2 * pi;
    const vi = gamma * v[i]! + lr * gi;
    vOut[i] = vi;
    pOut[i] = pi - (nesterov ? gamma * vi + lr * gi : vi);
  }
};
