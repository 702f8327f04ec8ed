/**
 * The host kernels: plain TypeScript over typed arrays, the complete
 * implementation of every primitive (`hostKernels` builds the table over any
 * allocator: the reference backend's pool, the cpu backend's kernel memory).
 * Each allocates its output and never writes to its inputs. Hot paths (same
 * shape, row-vector broadcast, last-axis reductions) get their own loops; the
 * general cases use index maps. matmul accumulates in float64 (the reference).
 */
import type { AdamHyper, FusedKernels, KernelTable, MomentumHyper, Operand } from './backend.js';
import type { Data, DType, FloatDType } from './primitives.js';
import * as KN from './kernels-nd.js';
import { broadcastShapes, sameShape, sizeOf, stridesOf, type Shape } from './shape.js';

/** Where a kernel's output comes from: n elements of dtype, zeroed unless `zeroed` is false. */
export type Alloc = (dtype: DType, n: number, zeroed: boolean) => Data;

export const resultDType = (a: Data, b: Data): DType => (a instanceof Float64Array || b instanceof Float64Array ? 'float64' : 'float32');

/** Strides of `inShape` read as `outShape` under broadcasting: 0 on stretched (and missing) axes. */
const stretchedStrides = (inShape: Shape, outShape: Shape): number[] => {
  const offset = outShape.length - inShape.length,
    st = stridesOf(inShape);
  return outShape.map((_, ax) => (ax < offset || inShape[ax - offset] === 1 ? 0 : st[ax - offset]!));
};

/**
 * Walks `shape` in row-major order as runs along its innermost axis (after
 * merging axes that both stride patterns keep contiguous, and dropping length-1
 * ones): `run(o, p1, p2, len, i1, i2)` for each run, where o is the run's
 * first flat index, p1, p2 its first positions under strides `s1` and `s2`,
 * len its length and i1, i2 the strides along it. Replaces per-element index maps, which
 * took 60% of a CNN step in batchNorm's channel broadcasts (measured: the maps'
 * construction alone was slower than the arithmetic); the visiting order is
 * the same, so results are the same bits.
 */
const forEachRun = (
  shape: Shape,
  s1: readonly number[],
  s2: readonly number[],
  run: (o: number, p1: number, p2: number, len: number, i1: number, i2: number) => void,
): void => {
  const dims: number[] = [],
    t1: number[] = [],
    t2: number[] = [];
  for (let ax = 0; ax < shape.length; ax++) {
    const d = shape[ax]!;
    if (d === 1) continue;
    const last = dims.length - 1;
    if (last >= 0 && t1[last] === s1[ax]! * d && t2[last] === s2[ax]! * d) {
      dims[last]! *= d;
      t1[last] = s1[ax]!;
      t2[last] = s2[ax]!;
    } else {
      dims.push(d);
      t1.push(s1[ax]!);
      t2.push(s2[ax]!);
    }
  }
  if (dims.length === 0) {
    dims.push(1);
    t1.push(0);
    t2.push(0);
  }
  const rank = dims.length,
    len = dims[rank - 1]!,
    i1 = t1[rank - 1]!,
    i2 = t2[rank - 1]!;
  const runs = sizeOf(dims) / len;
  const counter = new Array<number>(rank).fill(0);
  let p1 = 0,
    p2 = 0;
  for (let r = 0, o = 0; r < runs; r++, o += len) {
    run(o, p1, p2, len, i1, i2);
    for (let ax = rank - 2; ax >= 0; ax--) {
      counter[ax]!++;
      p1 += t1[ax]!;
      p2 += t2[ax]!;
      if (counter[ax]! < dims[ax]!) break;
      p1 -= t1[ax]! * dims[ax]!;
      p2 -= t2[ax]! * dims[ax]!;
      counter[ax] = 0;
    }
  }
};

export type BinaryOp = 'add' | 'mul';

/** Elementwise add or mul with NumPy broadcasting. */
export const binary = (alloc: Alloc, op: BinaryOp, a: Data, as: Shape, b: Data, bs: Shape): { data: Data; shape: Shape } => {
  const shape = broadcastShapes(as, bs, op);
  const n = sizeOf(shape);
  const out = alloc(resultDType(a, b), n, false);
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
    // The general case, as strided runs (see forEachRun).
    forEachRun(shape, stretchedStrides(as, shape), stretchedStrides(bs, shape), (o, pa, pb, len, sa, sb) => {
      // A channel's plane against its one value (batchNorm's broadcasts): no strides in the loop.
      if (sa === 1 && sb === 0) {
        const v = b[pb]!;
        if (add) for (let j = 0; j < len; j++) out[o + j] = a[pa + j]! + v;
        else for (let j = 0; j < len; j++) out[o + j] = a[pa + j]! * v;
      } else if (sa === 0 && sb === 1) {
        const v = a[pa]!;
        if (add) for (let j = 0; j < len; j++) out[o + j] = v + b[pb + j]!;
        else for (let j = 0; j < len; j++) out[o + j] = v * b[pb + j]!;
      } else if (add) for (let j = 0; j < len; j++) out[o + j] = a[pa + j * sa]! + b[pb + j * sb]!;
      else for (let j = 0; j < len; j++) out[o + j] = a[pa + j * sa]! * b[pb + j * sb]!;
    });
  }
  return { data: out, shape };
};

export type UnaryOp = 'neg' | 'reciprocal' | 'exp' | 'log' | 'sqrt' | 'tanh' | 'sigmoid' | 'relu' | 'sin' | 'cos' | 'erf';

const dtypeOf = (x: Data): DType => (x instanceof Float64Array ? 'float64' : 'float32');

/** Elementwise unary functions, one loop each (no per-element closure). */
export const unary = (alloc: Alloc, op: UnaryOp, x: Data): Data => {
  const n = x.length;
  const out = alloc(dtypeOf(x), n, false);
  switch (op) {
    case 'neg':
      for (let i = 0; i < n; i++) out[i] = -x[i]!;
      break;
    case 'reciprocal':
      for (let i = 0; i < n; i++) out[i] = 1 / x[i]!;
      break;
    case 'exp':
      for (let i = 0; i < n; i++) out[i] = Math.exp(x[i]!);
      break;
    case 'log':
      for (let i = 0; i < n; i++) out[i] = Math.log(x[i]!);
      break;
    case 'sqrt':
      for (let i = 0; i < n; i++) out[i] = Math.sqrt(x[i]!);
      break;
    case 'tanh':
      for (let i = 0; i < n; i++) out[i] = Math.tanh(x[i]!);
      break;
    case 'sin':
      for (let i = 0; i < n; i++) out[i] = Math.sin(x[i]!);
      break;
    case 'cos':
      for (let i = 0; i < n; i++) out[i] = Math.cos(x[i]!);
      break;
    case 'erf':
      for (let i = 0; i < n; i++) out[i] = KN.erf(x[i]!);
      break;
    case 'sigmoid':
      // Split by sign so exp never overflows.
      for (let i = 0; i < n; i++) {
        const v = x[i]!;
        if (v >= 0) out[i] = 1 / (1 + Math.exp(-v));
        else {
          const e = Math.exp(v);
          out[i] = e / (1 + e);
        }
      }
      break;
    // NaN stays NaN (as in PyTorch and JAX): `v > 0` is false for NaN, so test `v <= 0` instead.
    case 'relu':
      for (let i = 0; i < n; i++) {
        const v = x[i]!;
        // biome-ignore lint/complexity/useMathMinMax: relu's NaN (kept) and −0 (to +0) spelled out, as the WebAssembly kernel does them
        out[i] = v <= 0 ? 0 : v;
      }
      break;
  }
  return out;
};

/** Shape after reducing `axes` (kept as length-1 axes when keepDims). */
export const reducedShape = (s: Shape, axes: readonly number[], keepDims: boolean): Shape =>
  Object.freeze(keepDims ? s.map((d, i) => (axes.includes(i) ? 1 : d)) : s.filter((_, i) => !axes.includes(i)));

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
export const reduce = (alloc: Alloc, op: ReduceOp, x: Data, s: Shape, axes: readonly number[], keepDims: boolean): { data: Data; shape: Shape } => {
  const shape = reducedShape(s, axes, keepDims);
  const outN = sizeOf(shape);
  const out = alloc(dtypeOf(x), outN, true);
  const n = x.length;
  const isSum = op === 'sum';
  if (axes.length === 0) {
    out.set(x);
  } else if (axes.length === s.length) {
    // Everything: accumulate in float64.
    let acc = isSum ? 0 : -Infinity;
    if (isSum) for (let i = 0; i < n; i++) acc += x[i]!;
    else
      for (let i = 0; i < n; i++) {
        const v = x[i]!;
        if (v > acc || Number.isNaN(v)) acc = v;
      }
    out[0] = acc;
  } else if (axes.length === 1 && axes[0] === s.length - 1) {
    // Last axis: one contiguous row per output element.
    const w = s[s.length - 1]!;
    for (let r = 0; r < outN; r++) {
      const o = r * w;
      let acc = isSum ? 0 : -Infinity;
      if (isSum) for (let j = 0; j < w; j++) acc += x[o + j]!;
      else
        for (let j = 0; j < w; j++) {
          const v = x[o + j]!;
          if (v > acc || Number.isNaN(v)) acc = v;
        }
      out[r] = acc;
    }
  } else if (isSum && s.length === 2 && axes.length === 1 && axes[0] === 0) {
    // Column sums (the bias gradient): rows added in order, in float64.
    const [r, c] = s as [number, number];
    const acc = new Float64Array(c);
    for (let i = 0, o = 0; i < r; i++, o += c) for (let j = 0; j < c; j++) acc[j]! += x[o + j]!;
    out.set(acc);
  } else {
    if (isSum) {
      // Input elements in row-major order (as an index map would visit them), as strided runs.
      const acc = new Float64Array(outN);
      const kept = reducedShape(s, axes, true);
      const outStrides = stridesOf(kept).map((st, i) => (axes.includes(i) ? 0 : st));
      forEachRun(s, outStrides, outStrides, (o, po, _p, len, so) => {
        if (so === 0) {
          // A whole run into one sum (batchNorm's per-channel sums): the same additions in the same order.
          let t = acc[po]!;
          for (let j = 0; j < len; j++) t += x[o + j]!;
          acc[po] = t;
        } else for (let j = 0; j < len; j++) acc[po + j * so]! += x[o + j]!;
      });
      out.set(acc);
    } else {
      const map = reduceIndex(s, axes);
      out.fill(-Infinity);
      for (let i = 0; i < n; i++) {
        const v = x[i]!;
        const o = map[i]!;
        if (v > out[o]! || Number.isNaN(v)) out[o] = v;
      }
    }
  }
  return { data: out, shape };
};

/**
 * The gradient of a max reduction: `ct` spread back onto the positions that hold
 * the maximum, shared equally among ties (as JAX does).
 */
export const maxGrad = (alloc: Alloc, x: Data, s: Shape, axes: readonly number[], max: Data, ct: Data): Data => {
  const map = reduceIndex(s, axes);
  const n = x.length;
  const counts = new Float64Array(max.length);
  for (let i = 0; i < n; i++) if (x[i] === max[map[i]!]) counts[map[i]!]!++;
  const out = alloc(x instanceof Float64Array || ct instanceof Float64Array ? 'float64' : 'float32', n, true);
  for (let i = 0; i < n; i++) {
    const o = map[i]!;
    if (x[i] === max[o]) out[i] = ct[o]! / counts[o]!;
  }
  return out;
};

/** `ct` copied to every position of shape `s` that reduced into it (the sum's gradient). */
export const broadcastTo = (alloc: Alloc, x: Data, from: Shape, to: Shape): Data => {
  const out = alloc(dtypeOf(x), sizeOf(to), false);
  if (x.length === 1) out.fill(x[0]!);
  else {
    const st = stretchedStrides(from, to);
    forEachRun(to, st, st, (o, p, _p, len, sx) => {
      for (let j = 0; j < len; j++) out[o + j] = x[p + j * sx]!;
    });
  }
  return out;
};

/** Permutes axes. Rank-2 `[1, 0]` is the common case and gets a blocked loop. */
export const transpose = (alloc: Alloc, x: Data, s: Shape, perm: readonly number[]): { data: Data; shape: Shape } => {
  const shape = Object.freeze(perm.map((p) => s[p]!));
  const out = alloc(dtypeOf(x), x.length, false);
  if (s.length === 2 && perm[0] === 1) {
    const r = s[0]!,
      c = s[1]!;
    const B = 32;
    for (let i0 = 0; i0 < r; i0 += B) {
      for (let j0 = 0; j0 < c; j0 += B) {
        const i1 = Math.min(i0 + B, r),
          j1 = Math.min(j0 + B, c);
        for (let i = i0; i < i1; i++) for (let j = j0; j < j1; j++) out[j * r + i] = x[i * c + j]!;
      }
    }
  } else {
    const inStrides = stridesOf(s);
    const idx = broadcastIndexWithStrides(
      shape,
      perm.map((p) => inStrides[p]!),
    );
    for (let i = 0; i < out.length; i++) out[i] = x[idx[i]!]!;
  }
  return { data: out, shape };
};

/**
 * The momentum update in one pass (instead of six tensor ops, each a full pass
 * and an allocation): g' = g + l2·p; v' = γ·v + lr·g'; p' = p − (nesterov ? γ·v' + lr·g' : v').
 */
export const momentumStep = (p: Data, v: Data, g: Data, hp: MomentumHyper, pOut: Data, vOut: Data): void => {
  const { lr, gamma, l2, nesterov } = hp;
  for (let i = 0; i < p.length; i++) {
    const pi = p[i]!;
    const gi = g[i]! + l2 * pi;
    const vi = gamma * v[i]! + lr * gi;
    vOut[i] = vi;
    pOut[i] = pi - (nesterov ? gamma * vi + lr * gi : vi);
  }
};

/** The Adam update in one pass (see `FusedKernels.adamStep`): each element in float64, rounded once when stored. */
export const adamStep = (p: Data, m: Data, v: Data, g: Data, hp: AdamHyper, pOut: Data, mOut: Data, vOut: Data): void => {
  const { lr, beta1, beta2, eps, l2, decay, c1, c2 } = hp;
  const b1 = 1 - beta1,
    b2 = 1 - beta2;
  for (let i = 0; i < p.length; i++) {
    const pi = p[i]!;
    const gi = g[i]! + l2 * pi;
    const mi = beta1 * m[i]! + b1 * gi;
    const vi = beta2 * v[i]! + b2 * gi * gi;
    mOut[i] = mi;
    vOut[i] = vi;
    pOut[i] = decay * pi - (lr * (c1 * mi)) / (Math.sqrt(c2 * vi) + eps);
  }
};

/** relu's VJP: ct · (x > 0 ? 1 : 0), as the product (so −0 and NaN cotangents behave as multiplication does). */
export const reluGrad = (alloc: Alloc, x: Data, ct: Data): Data => {
  const out = alloc(resultDType(x, ct), x.length, false);
  for (let i = 0; i < x.length; i++) out[i] = ct[i]! * (x[i]! > 0 ? 1 : 0);
  return out;
};

/**
 * out[m×n] = op(a) · op(b) with op(a) of shape m×k and op(b) k×n, row-major;
 * `transA`: a is stored k×m; `transB`: b is stored n×k. Accumulates in float64:
 * the trusted path. Loop order keeps the innermost access contiguous for every
 * transpose form.
 */
export const referenceMatmul = (a: Data, b: Data, m: number, k: number, n: number, transA: boolean, transB: boolean, out: Data): void => {
  if (!transB) {
    // Row i of C accumulates a[i,p] * row p of B: contiguous over j.
    const acc = new Float64Array(n);
    for (let i = 0; i < m; i++) {
      acc.fill(0);
      for (let p = 0; p < k; p++) {
        const aip = transA ? a[p * m + i]! : a[i * k + p]!;
        if (aip === 0) continue;
        const bo = p * n;
        for (let j = 0; j < n; j++) acc[j]! += aip * b[bo + j]!;
      }
      out.set(acc, i * n);
    }
  } else {
    // B stored n×k: C[i,j] is a dot product of two contiguous rows (when !transA).
    const col = new Float64Array(k);
    for (let i = 0; i < m; i++) {
      for (let p = 0; p < k; p++) col[p] = transA ? a[p * m + i]! : a[i * k + p]!;
      for (let j = 0; j < n; j++) {
        let s = 0;
        const bo = j * k;
        for (let p = 0; p < k; p++) s += col[p]! * b[bo + p]!;
        out[i * n + j] = s;
      }
    }
  }
};

/** The shape of matmul's result, m×n. */
export const matmulDims = (a: Shape, b: Shape, transA: boolean, transB: boolean): { m: number; k: number; n: number } => ({
  m: transA ? a[1]! : a[0]!,
  k: transA ? a[0]! : a[1]!,
  n: transB ? b[0]! : b[1]!,
});

/**
 * Every primitive's kernel over host typed arrays, allocating outputs with
 * `alloc`: the reference backend's whole table, and the cpu backend's for what
 * it does not run in WebAssembly.
 */
export const hostKernels = (alloc: Alloc): KernelTable<Data> => {
  const un =
    (op: UnaryOp) =>
    ([x]: readonly [Operand<Data>]): Data =>
      unary(alloc, op, x.buf);
  return {
    add: ([a, b]) => binary(alloc, 'add', a.buf, a.shape, b.buf, b.shape).data,
    mul: ([a, b]) => binary(alloc, 'mul', a.buf, a.shape, b.buf, b.shape).data,
    neg: un('neg'),
    reciprocal: un('reciprocal'),
    exp: un('exp'),
    log: un('log'),
    sqrt: un('sqrt'),
    tanh: un('tanh'),
    sigmoid: un('sigmoid'),
    relu: un('relu'),
    sin: un('sin'),
    cos: un('cos'),
    erf: un('erf'),
    round: ([x], { mode }) => KN.round(alloc, x.buf, mode),
    reluGrad: ([x, ct]) => reluGrad(alloc, x.buf, ct.buf),
    matmul: ([a, b], { transA, transB }, out) => {
      const { m, k, n } = matmulDims(a.shape, b.shape, transA, transB);
      const c = alloc(out.dtype, m * n, false);
      referenceMatmul(a.buf, b.buf, m, k, n, transA, transB, c);
      return c;
    },
    sum: ([x], { axes, keepDims }) => reduce(alloc, 'sum', x.buf, x.shape, axes, keepDims).data,
    max: ([x], { axes, keepDims }) => reduce(alloc, 'max', x.buf, x.shape, axes, keepDims).data,
    maxGrad: ([x, m, ct], { axes }) => maxGrad(alloc, x.buf, x.shape, axes, m.buf, ct.buf),
    transpose: ([x], { perm }) => transpose(alloc, x.buf, x.shape, perm).data,
    broadcastTo: ([x], { shape }) => broadcastTo(alloc, x.buf, x.shape, shape),
    // The output's storage dtype (an int32 or bool cast stores its exact values in float: see storageDType).
    cast: ([x], _p, spec) => {
      const out = alloc(spec.dtype, x.buf.length, false);
      out.set(x.buf);
      return out;
    },
    conv2d: ([x, w], p) => KN.conv2d(alloc, x.buf, x.shape, w.buf, w.shape, p).data,
    conv2dGradInput: ([ct, w], p, out) => KN.conv2dGradInput(alloc, ct.buf, w.buf, w.shape, p.inputShape, p, like(out.dtype)).data,
    conv2dGradWeight: ([ct, x], p, out) => KN.conv2dGradWeight(alloc, ct.buf, x.buf, x.shape, p.filterShape, p, like(out.dtype)).data,
    maxPool2d: ([x], p) => KN.maxPool2d(alloc, x.buf, x.shape, p).data,
    maxPool2dGrad: ([ct, x], p) => KN.maxPool2dGrad(alloc, ct.buf, x.buf, x.shape, p).data,
    avgPool2d: ([x], p) => KN.avgPool2d(alloc, x.buf, x.shape, p).data,
    avgPool2dGrad: ([ct], p, out) => KN.avgPool2dGrad(alloc, ct.buf, p.inputShape, p, like(out.dtype)).data,
    slice: ([x], p) => KN.slice(alloc, x.buf, x.shape, p).data,
    pad: ([x], p) => KN.pad(alloc, x.buf, x.shape, p).data,
    take: ([x], p) => KN.take(alloc, x.buf, x.shape, p).data,
    takeGrad: ([ct], p, out) => KN.takeGrad(alloc, ct.buf, p.inputShape, p, like(out.dtype)).data,
    concat: (xs, { axis }) =>
      KN.concat(
        alloc,
        xs.map((x) => x.buf),
        xs.map((x) => x.shape),
        axis,
      ).data,
    select: ([c, a, b]) => KN.select(alloc, c.buf, a.buf, b.buf),
    compare: ([a, b], { op }, out) => KN.compare(alloc, op, a.buf, b.buf, storage(out.dtype)),
    sign: ([x]) => KN.sign(alloc, x.buf),
    argmax: ([x], { axis }, out) => KN.argmax(alloc, x.buf, x.shape, axis, storage(out.dtype)).data,
    argsort: ([x], { axis, descending }, out) => KN.argsort(alloc, x.buf, x.shape, axis, descending, storage(out.dtype)),
    gather: ([x, idx], { axis }) => KN.gather(alloc, x.buf, x.shape, idx.buf, idx.shape, axis).data,
    scatterAdd: ([base, idx, src], { axis }, out) => KN.scatterAdd(alloc, base.buf, base.shape, idx.buf, idx.shape, src.buf, axis, like(out.dtype)).data,
    maxPool2dSelect: ([x, t], p) => KN.maxPool2dSelect(alloc, x.buf, x.shape, t.buf, p).data,
    pow: ([x], { p }) => KN.pow(alloc, x.buf, p),
    channelMoments: ([x]) => KN.channelMoments(alloc, x.buf, x.shape).data,
    batchNorm: ([x, m, g, b], { eps }, out) => KN.batchNorm(alloc, x.buf, x.shape, m.buf, g.buf, b.buf, eps, like(out.dtype)).data,
    batchNormGrad: ([x, m, g, ct, sums], { eps }, out) => KN.batchNormGrad(alloc, x.buf, x.shape, m.buf, g.buf, ct.buf, sums.buf, eps, like(out.dtype)).data,
    batchNormParamGrad: ([x, m, ct], { eps }, out) => KN.batchNormParamGrad(alloc, x.buf, x.shape, m.buf, ct.buf, eps, like(out.dtype)).data,
  };
};

/** A kernel's output dtype as storage (kernels are given storage dtypes; a logical one here would be a caller's bug: float64, which holds any). */
const storage = (d: DType): FloatDType => (d === 'float32' ? 'float32' : 'float64');

/** An empty array of a dtype: how kernels-nd's gradient kernels are told their output dtype. */
export const like = (dtype: DType): Data => (dtype === 'float32' ? new Float32Array(0) : new Float64Array(0));

/** Host arrays from the engine's allocator (values computed on the host, then handed to a backend). */
export const plainAlloc: Alloc = (dtype, n) => (dtype === 'float32' ? new Float32Array(n) : new Float64Array(n));

/** The fused kernels over host arrays. */
export const hostFused = (alloc: Alloc): FusedKernels<Data> => ({
  momentumStep: (p, v, g, hp) => {
    const pOut = alloc(p.dtype, p.buf.length, false),
      vOut = alloc(p.dtype, p.buf.length, false);
    momentumStep(p.buf, v.buf, g.buf, hp, pOut, vOut);
    return [pOut, vOut];
  },
  adamStep: (p, m, v, g, hp) => {
    const n = p.buf.length;
    const pOut = alloc(p.dtype, n, false),
      mOut = alloc(p.dtype, n, false),
      vOut = alloc(p.dtype, n, false);
    adamStep(p.buf, m.buf, v.buf, g.buf, hp, pOut, mOut, vOut);
    return [pOut, mOut, vOut];
  },
});
