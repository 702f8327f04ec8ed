/**
 * Forward and gradient kernels of the image primitives (conv2d, pooling), as
 * pure functions over typed arrays and shapes: `(alloc, x, shape, params) → { data, shape }`.
 * They allocate their output with `alloc` (the backend's memory) and touch
 * nothing else, so any host backend lists them in its kernel table as they are
 * (`hostKernels` in kernels.ts).
 *
 * Layout: NCHW. Images are [batch, channels, height, width]; conv2d filters
 * are [outChannels, inChannels, kernelHeight, kernelWidth] (PyTorch's layout).
 * CIFAR-100's binary rows are 1024 red, 1024 green, 1024 blue values, so a
 * [batch, 3072] matrix reshaped to [batch, 3, 32, 32] is already NCHW.
 *
 * Sums accumulate in a JS number (float64) and round once when stored.
 */
import type { Alloc } from './kernels.js';
import type { Data, FloatDType } from './primitives.js';
import { sizeOf, type Shape } from './shape.js';

/** conv2d's stride and zero padding (the same on both axes and every side). */
export interface Conv2dParams {
  readonly stride: number;
  readonly padding: number;
}

/** A pooling window's size and stride (no padding). */
export interface Pool2dParams {
  /** Window height and width. */
  readonly size: number;
  readonly stride: number;
}

interface Out {
  readonly data: Data;
  readonly shape: Shape;
}

const dtypeOf = (...xs: Data[]): FloatDType => (xs.some((x) => x instanceof Float64Array) ? 'float64' : 'float32');

/** Output length of a window sliding over `n` with padding `p` on both sides. */
export const slidingOut = (n: number, k: number, stride: number, padding: number): number => Math.floor((n + 2 * padding - k) / stride) + 1;

/** y[n, f, i, j] = Σ_{c, a, b} x[n, c, i·s + a − p, j·s + b − p] · w[f, c, a, b] (zero outside x). */
export const conv2d = (alloc: Alloc, x: Data, xs: Shape, w: Data, ws: Shape, { stride, padding }: Conv2dParams): Out => {
  const [N, C, H, W] = xs as [number, number, number, number];
  const [F, , KH, KW] = ws as [number, number, number, number];
  const OH = slidingOut(H, KH, stride, padding),
    OW = slidingOut(W, KW, stride, padding);
  const out = alloc(dtypeOf(x, w), N * F * OH * OW, false);
  let o = 0;
  for (let n = 0; n < N; n++) {
    for (let f = 0; f < F; f++) {
      for (let i = 0; i < OH; i++) {
        for (let j = 0; j < OW; j++) {
          let acc = 0;
          for (let c = 0; c < C; c++) {
            const xb = (n * C + c) * H,
              wb = (f * C + c) * KH;
            for (let a = 0; a < KH; a++) {
              const r = i * stride + a - padding;
              if (r < 0 || r >= H) continue;
              const xr = (xb + r) * W,
                wr = (wb + a) * KW;
              for (let b = 0; b < KW; b++) {
                const col = j * stride + b - padding;
                if (col < 0 || col >= W) continue;
                acc += x[xr + col]! * w[wr + b]!;
              }
            }
          }
          out[o++] = acc;
        }
      }
    }
  }
  return { data: out, shape: Object.freeze([N, F, OH, OW]) };
};

/**
 * conv2d's two VJPs share one walk over every (output, channel, tap) pair with a
 * nonzero cotangent g: into the images, acc[x index] += g·w[w index]; into the
 * filters, acc[w index] += g·x[x index]. `other` is w or x accordingly.
 */
const conv2dBackward = (into: 'input' | 'weight', ct: Data, other: Data, xs: Shape, ws: Shape, { stride, padding }: Conv2dParams): Float64Array => {
  const [N, C, H, W] = xs as [number, number, number, number];
  const [F, , KH, KW] = ws as [number, number, number, number];
  const OH = slidingOut(H, KH, stride, padding),
    OW = slidingOut(W, KW, stride, padding);
  const toInput = into === 'input';
  const acc = new Float64Array(toInput ? N * C * H * W : F * C * KH * KW);
  for (let n = 0; n < N; n++) {
    for (let f = 0; f < F; f++) {
      for (let i = 0; i < OH; i++) {
        for (let j = 0; j < OW; j++) {
          const g = ct[((n * F + f) * OH + i) * OW + j]!;
          if (g === 0) continue;
          for (let c = 0; c < C; c++) {
            const xb = (n * C + c) * H,
              wb = (f * C + c) * KH;
            for (let a = 0; a < KH; a++) {
              const r = i * stride + a - padding;
              if (r < 0 || r >= H) continue;
              for (let b = 0; b < KW; b++) {
                const col = j * stride + b - padding;
                if (col < 0 || col >= W) continue;
                const xi = (xb + r) * W + col,
                  wi = (wb + a) * KW + b;
                if (toInput) acc[xi]! += g * other[wi]!;
                else acc[wi]! += g * other[xi]!;
              }
            }
          }
        }
      }
    }
  }
  return acc;
};

/** ∂L/∂x of conv2d: every output's cotangent spread back over its window, weighted by w. */
export const conv2dGradInput = (alloc: Alloc, ct: Data, w: Data, ws: Shape, xs: Shape, p: Conv2dParams, dtypeLike: Data): Out => {
  const acc = conv2dBackward('input', ct, w, xs, ws, p);
  const out = alloc(dtypeOf(dtypeLike), acc.length, false);
  out.set(acc);
  return { data: out, shape: xs };
};

/** ∂L/∂w of conv2d: Σ over the batch and positions of cotangent × input window. */
export const conv2dGradWeight = (alloc: Alloc, ct: Data, x: Data, xs: Shape, ws: Shape, p: Conv2dParams, dtypeLike: Data): Out => {
  const acc = conv2dBackward('weight', ct, x, xs, ws, p);
  const out = alloc(dtypeOf(dtypeLike), acc.length, false);
  out.set(acc);
  return { data: out, shape: ws };
};

/**
 * For each output of a max pool, the flat input index of its window's maximum
 * (the first on ties; a NaN in the window wins, so NaN propagates).
 */
const maxPoolArgmax = (x: Data, xs: Shape, { size, stride }: Pool2dParams): { idx: Int32Array; shape: Shape } => {
  const [N, C, H, W] = xs as [number, number, number, number];
  const OH = slidingOut(H, size, stride, 0),
    OW = slidingOut(W, size, stride, 0);
  const idx = new Int32Array(N * C * OH * OW);
  let o = 0;
  for (let base = 0; base < N * C * H * W; base += H * W) {
    for (let i = 0; i < OH; i++) {
      for (let j = 0, w0 = base + i * stride * W; j < OW; j++, w0 += stride) {
        // Window order, row by row: the first maximum wins a tie.
        let bi = w0,
          bv = x[w0]!;
        for (let a = 0, r = w0; a < size; a++, r += W) {
          for (let k = r; k < r + size; k++) {
            const v = x[k]!;
            if (!Number.isNaN(bv) && (v > bv || Number.isNaN(v))) {
              bv = v;
              bi = k;
            }
          }
        }
        idx[o++] = bi;
      }
    }
  }
  return { idx, shape: Object.freeze([N, C, OH, OW]) };
};

/** y[n, c, i, j] = max over the size×size window at (i·stride, j·stride). */
export const maxPool2d = (alloc: Alloc, x: Data, xs: Shape, p: Pool2dParams): Out => {
  const { idx, shape } = maxPoolArgmax(x, xs, p);
  const out = alloc(dtypeOf(x), idx.length, false);
  for (let o = 0; o < idx.length; o++) out[o] = x[idx[o]!]!;
  return { data: out, shape };
};

/** ∂L/∂x of maxPool2d: each output's cotangent goes to its window's (first) maximum. */
export const maxPool2dGrad = (alloc: Alloc, ct: Data, x: Data, xs: Shape, p: Pool2dParams): Out => {
  const { idx } = maxPoolArgmax(x, xs, p);
  if (p.stride >= p.size) {
    // Windows that do not overlap send each input at most one cotangent: no accumulator needed.
    const out = alloc(dtypeOf(x), x.length, true);
    for (let o = 0; o < idx.length; o++) out[idx[o]!] = ct[o]!;
    return { data: out, shape: xs };
  }
  const acc = new Float64Array(x.length);
  for (let o = 0; o < idx.length; o++) acc[idx[o]!]! += ct[o]!;
  const out = alloc(dtypeOf(x), x.length, false);
  out.set(acc);
  return { data: out, shape: xs };
};

/** maxPool2d's JVP: each window's value of t at the position of x's (first) maximum, the same positions maxPool2dGrad sends cotangents to. */
export const maxPool2dSelect = (alloc: Alloc, x: Data, xs: Shape, t: Data, p: Pool2dParams): Out => {
  const { idx, shape } = maxPoolArgmax(x, xs, p);
  const out = alloc(dtypeOf(x, t), idx.length, false);
  for (let o = 0; o < idx.length; o++) out[o] = t[idx[o]!]!;
  return { data: out, shape };
};

/** y[n, c, i, j] = mean over the size×size window at (i·stride, j·stride). */
export const avgPool2d = (alloc: Alloc, x: Data, xs: Shape, { size, stride }: Pool2dParams): Out => {
  const [N, C, H, W] = xs as [number, number, number, number];
  const OH = slidingOut(H, size, stride, 0),
    OW = slidingOut(W, size, stride, 0);
  const out = alloc(dtypeOf(x), N * C * OH * OW, false);
  const inv = 1 / (size * size);
  let o = 0;
  for (let nc = 0; nc < N * C; nc++) {
    for (let i = 0; i < OH; i++) {
      for (let j = 0; j < OW; j++) {
        let acc = 0;
        for (let a = 0; a < size; a++) for (let b = 0; b < size; b++) acc += x[nc * H * W + (i * stride + a) * W + j * stride + b]!;
        out[o++] = acc * inv;
      }
    }
  }
  return { data: out, shape: Object.freeze([N, C, OH, OW]) };
};

/** ∂L/∂x of avgPool2d: each output's cotangent shared equally over its window. */
export const avgPool2dGrad = (alloc: Alloc, ct: Data, xs: Shape, { size, stride }: Pool2dParams, dtypeLike: Data): Out => {
  const [N, C, H, W] = xs as [number, number, number, number];
  const OH = slidingOut(H, size, stride, 0),
    OW = slidingOut(W, size, stride, 0);
  const acc = new Float64Array(N * C * H * W);
  const inv = 1 / (size * size);
  let o = 0;
  for (let nc = 0; nc < N * C; nc++) {
    for (let i = 0; i < OH; i++) {
      for (let j = 0; j < OW; j++) {
        const g = ct[o++]! * inv;
        for (let a = 0; a < size; a++) for (let b = 0; b < size; b++) acc[nc * H * W + (i * stride + a) * W + j * stride + b]! += g;
      }
    }
  }
  const out = alloc(dtypeOf(dtypeLike), acc.length, false);
  out.set(acc);
  return { data: out, shape: xs };
};

// ---------------------------------------------------------------------------
// Indexing, joining and selection (any rank, row-major)
// ---------------------------------------------------------------------------

const stridesFor = (s: Shape): number[] => {
  const st = new Array<number>(s.length);
  let acc = 1;
  for (let i = s.length - 1; i >= 0; i--) {
    st[i] = acc;
    acc *= s[i]!;
  }
  return st;
};
const count = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** Calls `visit(outFlat, inFlat)` for every element of a box of `sizes` starting at `starts` inside `shape`. */
const eachInBox = (shape: Shape, starts: readonly number[], sizes: readonly number[], visit: (o: number, i: number) => void): void => {
  const st = stridesFor(shape),
    rank = shape.length,
    n = count(sizes);
  const idx = new Array<number>(rank).fill(0);
  let base = 0;
  for (let a = 0; a < rank; a++) base += starts[a]! * st[a]!;
  for (let o = 0; o < n; o++) {
    let off = base;
    for (let a = 0; a < rank; a++) off += idx[a]! * st[a]!;
    visit(o, off);
    for (let a = rank - 1; a >= 0; a--) {
      if (++idx[a]! < sizes[a]!) break;
      idx[a] = 0;
    }
  }
};

/** Where a slice starts and how long it is, per axis. */
export interface SliceParams {
  readonly starts: readonly number[];
  readonly sizes: readonly number[];
}
/** How many elements of `value` go before and after each axis. */
export interface PadParams {
  readonly before: readonly number[];
  readonly after: readonly number[];
  readonly value: number;
}

/** The box of `sizes` at `starts`. */
export const slice = (alloc: Alloc, x: Data, xs: Shape, { starts, sizes }: SliceParams): Out => {
  const out = alloc(dtypeOf(x), count(sizes), false);
  eachInBox(xs, starts, sizes, (o, i) => {
    out[o] = x[i]!;
  });
  return { data: out, shape: Object.freeze([...sizes]) };
};

/** x inside a frame of `value`: `before[a]` and `after[a]` extra elements on each axis. */
export const pad = (alloc: Alloc, x: Data, xs: Shape, { before, after, value }: PadParams): Out => {
  const shape = Object.freeze(xs.map((d, a) => d + before[a]! + after[a]!));
  const out = alloc(dtypeOf(x), count(shape), false);
  out.fill(value);
  eachInBox(shape, before, xs, (o, i) => {
    out[i] = x[o]!;
  });
  return { data: out, shape };
};

/** Inputs joined along `axis` (all other lengths equal). */
export const concat = (alloc: Alloc, xs: readonly Data[], shapes: readonly Shape[], axis: number): Out => {
  const shape = Object.freeze(shapes[0]!.map((d, a) => (a === axis ? shapes.reduce((n, s) => n + s[a]!, 0) : d)));
  const out = alloc(dtypeOf(...xs), count(shape), false);
  let at = 0;
  xs.forEach((x, k) => {
    const starts = shape.map((_d, a) => (a === axis ? at : 0));
    eachInBox(shape, starts, shapes[k]!, (o, i) => {
      out[i] = x[o]!;
    });
    at += shapes[k]![axis]!;
  });
  return { data: out, shape };
};

/** The axis and the indices `take` gathers. */
export interface TakeParams {
  readonly axis: number;
  readonly indices: Int32Array;
}

/** Gathers the entries `indices` along `axis` (repeats allowed): out.shape[axis] = indices.length. */
export const take = (alloc: Alloc, x: Data, xs: Shape, { axis, indices }: TakeParams): Out => {
  const outer = count(xs.slice(0, axis)),
    inner = count(xs.slice(axis + 1)),
    len = xs[axis]!;
  const out = alloc(dtypeOf(x), outer * indices.length * inner, false);
  let o = 0;
  for (let p = 0; p < outer; p++) {
    for (const j of indices) {
      const base = (p * len + j) * inner;
      for (let q = 0; q < inner; q++) out[o++] = x[base + q]!;
    }
  }
  return { data: out, shape: Object.freeze(xs.map((d, a) => (a === axis ? indices.length : d))) };
};

/** ∂L/∂x of take: each gathered entry's cotangent added back at its index (repeats accumulate). */
export const takeGrad = (alloc: Alloc, ct: Data, xs: Shape, { axis, indices }: TakeParams, dtypeLike: Data): Out => {
  const outer = count(xs.slice(0, axis)),
    inner = count(xs.slice(axis + 1)),
    len = xs[axis]!;
  const acc = new Float64Array(count(xs));
  let o = 0;
  for (let p = 0; p < outer; p++) {
    for (const j of indices) {
      const base = (p * len + j) * inner;
      for (let q = 0; q < inner; q++) acc[base + q]! += ct[o++]!;
    }
  }
  const out = alloc(dtypeOf(dtypeLike), acc.length, false);
  out.set(acc);
  return { data: out, shape: xs };
};

/** out[i] = cond[i] ≠ 0 ? a[i] : b[i], all of one shape. */
export const select = (alloc: Alloc, cond: Data, a: Data, b: Data): Data => {
  const out = alloc(dtypeOf(a, b), a.length, false);
  for (let i = 0; i < a.length; i++) out[i] = cond[i] !== 0 ? a[i]! : b[i]!;
  return out;
};

/** The element-wise comparisons of the `compare` primitive (greater, less, equal, … as their names say). */
export type CompareOp = 'greater' | 'greaterEqual' | 'less' | 'lessEqual' | 'equal' | 'notEqual';

/** 1 where the comparison holds, else 0 (so NaN compares false, except notEqual), all of one shape. */
export const compare = (alloc: Alloc, op: CompareOp, a: Data, b: Data, dtype: FloatDType = dtypeOf(a, b)): Data => {
  const out = alloc(dtype, a.length, false);
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!,
      y = b[i]!;
    out[i] = (
      op === 'greater'
        ? x > y
        : op === 'greaterEqual'
          ? x >= y
          : op === 'less'
            ? x < y
            : op === 'lessEqual'
              ? x <= y
              : op === 'equal'
                ? x === y
                : x !== y
    )
      ? 1
      : 0;
  }
  return out;
};

/** x^p elementwise (Math.pow: NaN in, NaN out, except p = 0). */
export const pow = (alloc: Alloc, x: Data, p: number): Data => {
  const out = alloc(dtypeOf(x), x.length, false);
  for (let i = 0; i < x.length; i++) out[i] = x[i]! ** p;
  return out;
};

/** Index of the largest entry along `axis` (the first on ties; a NaN counts as largest, as in NumPy). */
export const argmax = (alloc: Alloc, x: Data, xs: Shape, axis: number, dtype: FloatDType = dtypeOf(x)): Out => {
  const outer = count(xs.slice(0, axis)),
    inner = count(xs.slice(axis + 1)),
    len = xs[axis]!;
  const out = alloc(dtype, outer * inner, false);
  for (let p = 0; p < outer; p++) {
    for (let q = 0; q < inner; q++) {
      let best = 0,
        bv = x[p * len * inner + q]!;
      for (let j = 1; j < len && !Number.isNaN(bv); j++) {
        const v = x[(p * len + j) * inner + q]!;
        if (v > bv || Number.isNaN(v)) {
          bv = v;
          best = j;
        }
      }
      out[p * inner + q] = best;
    }
  }
  return { data: out, shape: Object.freeze(xs.filter((_d, a) => a !== axis)) };
};

/** sign(x): 1, −1, 0 at ±0, NaN for NaN (abs's gradient, and its factor). */
export const sign = (alloc: Alloc, x: Data): Data => {
  const out = alloc(dtypeOf(x), x.length, false);
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    out[i] = v > 0 ? 1 : v < 0 ? -1 : v === 0 ? 0 : NaN;
  }
  return out;
};

/** How `round` rounds: down, up, or to the nearest integer with halves to the even one (NumPy's `round`). */
export type RoundMode = 'floor' | 'ceil' | 'halfEven';

/** x rounded to an integer by `mode`; NaN and ±∞ pass through, and the sign of a zero result is x's (as NumPy's). */
export const round = (alloc: Alloc, x: Data, mode: RoundMode): Data => {
  const out = alloc(dtypeOf(x), x.length, false);
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    let r: number;
    if (!Number.isFinite(v)) r = v;
    else if (mode === 'floor') r = Math.floor(v);
    else if (mode === 'ceil') r = Math.ceil(v);
    else {
      const f = Math.floor(v),
        d = v - f;
      r = d < 0.5 ? f : d > 0.5 ? f + 1 : f % 2 === 0 ? f : f + 1;
    }
    out[i] = r === 0 && (v < 0 || Object.is(v, -0)) ? -0 : r;
  }
  return out;
};

/**
 * erf(x) to about 1e-16 relative in float64: for |x| < 3 the series
 * erf x = 2/√π · e^(−x²) · Σ 2ⁿx^(2n+1) / (1·3·…·(2n+1)) (positive terms: no
 * cancellation); beyond, 1 − erfc x with erfc's continued fraction (Lentz);
 * ±1 past |x| = 6 (erfc < 2e-17).
 */
export const erf = (x: number): number => {
  if (Number.isNaN(x)) return x;
  const a = Math.abs(x);
  if (a >= 6) return Math.sign(x);
  if (a < 3) {
    let term = a,
      sum = a;
    for (let n = 1; n < 200 && term > sum * 1e-17; n++) {
      term *= (2 * a * a) / (2 * n + 1);
      sum += term;
    }
    const r = (2 / Math.sqrt(Math.PI)) * Math.exp(-a * a) * sum;
    return x < 0 ? -r : r;
  }
  // erfc(a) = e^(−a²)/√π · 1/(a + (1/2)/(a + 1/(a + (3/2)/(a + 2/(a + …))))), by modified Lentz.
  const tiny = 1e-300;
  let f = a,
    c = a,
    d = 0;
  for (let n = 1; n < 300; n++) {
    const an = n / 2;
    d = a + an * d;
    d = d === 0 ? tiny : d;
    d = 1 / d;
    c = a + an / c;
    c = c === 0 ? tiny : c;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  const erfc = Math.exp(-a * a) / Math.sqrt(Math.PI) / f;
  return x < 0 ? erfc - 1 : 1 - erfc;
};

/** An index read from a float tensor: an integer in −len..len−1 (negative ones count from the end, as NumPy's). */
const indexAt = (v: number, len: number, op: string, axis: number): number => {
  if (!Number.isInteger(v) || v < -len || v >= len) {
    throw new RangeError(`${op}: index ${v} is not an integer in ${-len}..${len - 1} (axis ${axis} has length ${len})`);
  }
  return v < 0 ? v + len : v;
};

/**
 * NumPy's take_along_axis: out[…, i, …] = x[…, idx[…, i, …], …] along `axis`,
 * idx of x's rank and x's lengths off the axis; out has idx's shape.
 */
export const gather = (alloc: Alloc, x: Data, xs: Shape, idx: Data, is: Shape, axis: number): Out => {
  const outer = count(xs.slice(0, axis)),
    inner = count(xs.slice(axis + 1)),
    len = xs[axis]!,
    m = is[axis]!;
  for (const v of idx) indexAt(v, len, 'gather', axis); // refused before the output exists, which would leak
  const out = alloc(dtypeOf(x), idx.length, false);
  for (let p = 0; p < outer; p++) {
    for (let i = 0; i < m; i++) {
      for (let q = 0; q < inner; q++) {
        const o = (p * m + i) * inner + q;
        out[o] = x[(p * len + indexAt(idx[o]!, len, 'gather', axis)) * inner + q]!;
      }
    }
  }
  return { data: out, shape: is };
};

/** base with src[…, i, …] added at […, idx[…, i, …], …] along `axis` (repeats accumulate, in float64): gather's transpose. */
export const scatterAdd = (alloc: Alloc, base: Data, bs: Shape, idx: Data, is: Shape, src: Data, axis: number, dtypeLike: Data): Out => {
  const outer = count(bs.slice(0, axis)),
    inner = count(bs.slice(axis + 1)),
    len = bs[axis]!,
    m = is[axis]!;
  const acc = Float64Array.from(base);
  for (let p = 0; p < outer; p++) {
    for (let i = 0; i < m; i++) {
      for (let q = 0; q < inner; q++) {
        const o = (p * m + i) * inner + q;
        acc[(p * len + indexAt(idx[o]!, len, 'scatterAdd', axis)) * inner + q]! += src[o]!;
      }
    }
  }
  const out = alloc(dtypeOf(dtypeLike), acc.length, false);
  out.set(acc);
  return { data: out, shape: bs };
};

/**
 * The indices that sort x along `axis`, stably (equal values keep their order):
 * ascending with NaN last (NumPy's argsort), or descending with NaN first (the
 * largest, as PyTorch's sort), in x's dtype.
 */
export const argsort = (alloc: Alloc, x: Data, xs: Shape, axis: number, descending: boolean, dtype: FloatDType = dtypeOf(x)): Data => {
  const outer = count(xs.slice(0, axis)),
    inner = count(xs.slice(axis + 1)),
    len = xs[axis]!;
  const out = alloc(dtype, x.length, false);
  const order = Array.from({ length: len }, (_, j) => j);
  const vals = new Float64Array(len);
  const sign = descending ? -1 : 1;
  const cmp = (i: number, j: number): number => {
    const a = vals[i]!,
      b = vals[j]!;
    const na = Number.isNaN(a),
      nb = Number.isNaN(b);
    if (na || nb) return na && nb ? 0 : (na ? 1 : -1) * sign;
    return a < b ? -sign : a > b ? sign : 0;
  };
  for (let p = 0; p < outer; p++) {
    for (let q = 0; q < inner; q++) {
      for (let j = 0; j < len; j++) {
        vals[j] = x[(p * len + j) * inner + q]!;
        order[j] = j;
      }
      order.sort(cmp);
      for (let j = 0; j < len; j++) out[(p * len + j) * inner + q] = order[j]!;
    }
  }
  return out;
};

/** Inverted dropout's mask from uniform draws u: 1/(1 − rate) where u ≥ rate, else 0, in `like`'s dtype. */
export const dropoutMask = (alloc: Alloc, u: Data, rate: number, like: Data): Data => {
  const out = alloc(dtypeOf(like), u.length, false);
  const scale = 1 / (1 - rate);
  for (let i = 0; i < u.length; i++) out[i] = u[i]! >= rate ? scale : 0;
  return out;
};

// ---------------------------------------------------------------------------
// Batch normalization, fused: per channel (axis 1) over every other axis.
// The composite (mean, sub, mul, sum and their broadcasts) made ~20 passes over
// a CNN's activations and half of a training step; these make 3–4 each.
// ---------------------------------------------------------------------------

/** x [N, C, …] as N·C contiguous planes of S elements; statistics per channel over M = N·S values. */
const planes = (xs: Shape): { N: number; C: number; S: number; M: number } => {
  const N = xs[0]!,
    C = xs[1]!;
  const S = sizeOf(xs.slice(2));
  return { N, C, S, M: N * S };
};

/**
 * The passes over memory of batch normalization: the kernels below compute
 * per-channel coefficients (C numbers) and leave every pass over the N·C·S
 * values to these. `jsPasses` is their definition; a backend may run them
 * elsewhere (the cpu backend's WebAssembly) with the same arithmetic in the same
 * order, so the results are the same bits.
 */
export interface BatchNormPasses {
  /** acc[c] += Σ over each plane of channel c of x (mean undefined) or of (x − mean[c])², each plane a float64 chain. */
  sums(x: Data, mean: Float64Array | undefined, acc: Float64Array, N: number, C: number, S: number): void;
  /** Per plane of channel c: sumCt[c] += Σ ct, sumCtXhat[c] += (Σ ct·(x − mean[c]))·inv[c]. */
  gradSums(x: Data, ct: Data, mean: Float64Array, inv: Float64Array, sumCt: Float64Array, sumCtXhat: Float64Array, N: number, C: number, S: number): void;
  /**
   * out = (x − k0)·k1 + k2 (forward, ct undefined) or k0·((ct − k1) − ((x − k2)·k3)·k4)
   * (gradient), in float64, with channel c's k0…k4 at coef[5c…5c+4].
   */
  apply(x: Data, ct: Data | undefined, out: Data, coef: Float64Array, N: number, C: number, S: number): void;
}

export const jsPasses: BatchNormPasses = {
  sums: (x, mean, acc, N, C, S) => {
    for (let n = 0, o = 0; n < N; n++) {
      for (let c = 0; c < C; c++, o += S) {
        let s = 0;
        if (mean === undefined) for (let j = 0; j < S; j++) s += x[o + j]!;
        else {
          const m = mean[c]!;
          for (let j = 0; j < S; j++) {
            const d = x[o + j]! - m;
            s += d * d;
          }
        }
        acc[c]! += s;
      }
    }
  },
  gradSums: (x, ct, mean, inv, sumCt, sumCtXhat, N, C, S) => {
    for (let n = 0, o = 0; n < N; n++) {
      for (let c = 0; c < C; c++, o += S) {
        const m = mean[c]!;
        let s = 0,
          sx = 0;
        for (let j = 0; j < S; j++) {
          const d = ct[o + j]!;
          s += d;
          sx += d * (x[o + j]! - m);
        }
        sumCt[c]! += s;
        sumCtXhat[c]! += sx * inv[c]!;
      }
    }
  },
  apply: (x, ct, out, coef, N, C, S) => {
    for (let n = 0, o = 0; n < N; n++) {
      for (let c = 0; c < C; c++, o += S) {
        const k0 = coef[5 * c]!,
          k1 = coef[5 * c + 1]!,
          k2 = coef[5 * c + 2]!,
          k3 = coef[5 * c + 3]!,
          k4 = coef[5 * c + 4]!;
        if (ct === undefined) for (let j = 0; j < S; j++) out[o + j] = (x[o + j]! - k0) * k1 + k2;
        else for (let j = 0; j < S; j++) out[o + j] = k0 * (ct[o + j]! - k1 - (x[o + j]! - k2) * k3 * k4);
      }
    }
  },
};

/** Each channel's mean and biased variance, in float64, by two passes (no cancellation). */
const channelStats = (x: Data, xs: Shape, passes: BatchNormPasses): { mean: Float64Array; variance: Float64Array } => {
  const { N, C, S, M } = planes(xs);
  const mean = new Float64Array(C),
    variance = new Float64Array(C);
  passes.sums(x, undefined, mean, N, C, S);
  for (let c = 0; c < C; c++) mean[c]! /= M;
  passes.sums(x, mean, variance, N, C, S);
  for (let c = 0; c < C; c++) variance[c]! /= M;
  return { mean, variance };
};

/** [2, C]: each channel's mean (row 0) and biased variance (row 1) over axis 0 and axes 2…. */
export const channelMoments = (alloc: Alloc, x: Data, xs: Shape, passes: BatchNormPasses = jsPasses): Out => {
  const { mean, variance } = channelStats(x, xs, passes);
  const C = xs[1]!;
  const out = alloc(dtypeOf(x), 2 * C, false);
  out.set(mean, 0);
  out.set(variance, C);
  return { data: out, shape: Object.freeze([2, C]) };
};

/** y = (x − μ_c) / √(σ²_c + eps) · g_c + b_c, μ and σ² (biased) given per channel as `m` [2, C] (channelMoments of x). */
export const batchNorm = (
  alloc: Alloc,
  x: Data,
  xs: Shape,
  m: Data,
  g: Data,
  b: Data,
  eps: number,
  dtypeLike: Data,
  passes: BatchNormPasses = jsPasses,
): Out => {
  const { N, C, S } = planes(xs);
  const coef = new Float64Array(5 * C);
  for (let c = 0; c < C; c++) coef.set([m[c]!, g[c]! / Math.sqrt(m[C + c]! + eps), b[c]!], 5 * c);
  const out = alloc(dtypeOf(dtypeLike), x.length, false);
  passes.apply(x, undefined, out, coef, N, C, S);
  return { data: out, shape: xs };
};

/** 1/√(σ² + eps) of channel c, from moments [2, C] (row 1 the variances). */
const invStd = (m: Data, C: number, c: number, eps: number): number => 1 / Math.sqrt(m[C + c]! + eps);

/**
 * batchNorm's VJP for x: g·inv·(ct − mean(ct) − x̂·mean(ct·x̂)) per channel, the
 * batch statistics differentiated too (inputs x, its moments, g, ct, and
 * batchNormParamGrad's float64 sums of ct·x̂ and ct): one pass.
 */
export const batchNormGrad = (
  alloc: Alloc,
  x: Data,
  xs: Shape,
  m: Data,
  g: Data,
  ct: Data,
  sums: Data,
  eps: number,
  dtypeLike: Data,
  passes: BatchNormPasses = jsPasses,
): Out => {
  const { N, C, S, M } = planes(xs);
  const coef = new Float64Array(5 * C);
  for (let c = 0; c < C; c++) {
    const inv = invStd(m, C, c, eps);
    coef.set([g[c]! * inv, sums[C + c]! / M, m[c]!, inv, sums[c]! / M], 5 * c);
  }
  const out = alloc(dtypeOf(dtypeLike), x.length, false);
  passes.apply(x, ct, out, coef, N, C, S);
  return { data: out, shape: xs };
};

/**
 * batchNorm's VJP for g and b, as [2, C] (float64 when the output is): row 0
 * Σ ct·x̂ (the gain's), row 1 Σ ct (the bias's), x̂ = (x − μ)/√(σ² + eps). One pass.
 */
export const batchNormParamGrad = (
  alloc: Alloc,
  x: Data,
  xs: Shape,
  m: Data,
  ct: Data,
  eps: number,
  dtypeLike: Data,
  passes: BatchNormPasses = jsPasses,
): Out => {
  const { N, C, S } = planes(xs);
  const mean = Float64Array.from({ length: C }, (_, c) => m[c]!);
  const inv = Float64Array.from({ length: C }, (_, c) => invStd(m, C, c, eps));
  const sumCt = new Float64Array(C),
    sumCtXhat = new Float64Array(C);
  passes.gradSums(x, ct, mean, inv, sumCt, sumCtXhat, N, C, S);
  const out = alloc(dtypeOf(dtypeLike), 2 * C, false);
  out.set(sumCtXhat, 0);
  out.set(sumCt, C);
  return { data: out, shape: Object.freeze([2, C]) };
};
