/**
 * conv2d and its two gradients in float32 as im2col / col2im around the cpu
 * backend's WebAssembly GEMM (the host kernels in kernels-nd.ts are direct
 * loops, ~1 GFLOP/s at best; the GEMM runs at 30–50 on two threads).
 *
 * A group of G images is unrolled into one column matrix col[C·KH·KW, G·OH·OW]
 * (row (c, a, b), column (image, i, j)) in a block of the kernel's memory, so
 * the products read it in place:
 * - forward:      y_g[F, G·OH·OW]  = w[F, CKK] · col
 * - input grad:   dcol             = wᵀ · ct_g[F, G·OH·OW], then added back onto dx (col2im)
 * - filter grad:  dw[F, CKK]      += ct_g · colᵀ (groups summed in order)
 * G is the most images whose columns fit in COL_BYTES, so it depends on the
 * shapes alone: with the GEMM's own guarantee, results are bit for bit the
 * same on 1 thread and 2.
 */
import type { Conv2dParams } from '../kernels-nd.js';
import { slidingOut } from '../kernels-nd.js';
import type { Shape } from '../shape.js';

/** Column blocks are at most this large: 32 MiB keeps a batch of 128 CIFAR images per group for the first layers. */
const COL_BYTES = 32 * 1024 * 1024;

export interface ConvGemmDeps {
  /** out = op(a)·op(b) in float32 (cpu.ts's gemmInto). */
  readonly gemm: (a: Float32Array, b: Float32Array, m: number, k: number, n: number, transA: boolean, transB: boolean, out: Float32Array) => void;
  /** A float32 block of the kernel's memory, contents undefined; give it back with `release`. */
  readonly scratch: (n: number) => Float32Array;
  readonly release: (x: Float32Array) => void;
  /** A float32 output buffer of the backend (zeroed when asked). */
  readonly alloc: (n: number, zeroed: boolean) => Float32Array;
  /** The unrolling loops, when the backend runs them elsewhere (the same values): else `im2col` and `col2im` here. */
  readonly unroll?: { readonly im2col: typeof im2col; readonly col2im: typeof col2im; readonly regroup?: typeof regroup };
}

export interface Geometry {
  readonly N: number;
  readonly C: number;
  readonly H: number;
  readonly W: number;
  readonly F: number;
  readonly KH: number;
  readonly KW: number;
  readonly OH: number;
  readonly OW: number;
  readonly stride: number;
  readonly padding: number;
  /** Rows of a column matrix (C·KH·KW), output positions per image (OH·OW), images per group. */
  readonly ckk: number;
  readonly ohw: number;
  readonly group: number;
}

const geometry = (xs: Shape, ws: Shape, { stride, padding }: Conv2dParams): Geometry => {
  const [N, C, H, W] = xs as [number, number, number, number];
  const [F, , KH, KW] = ws as [number, number, number, number];
  const OH = slidingOut(H, KH, stride, padding),
    OW = slidingOut(W, KW, stride, padding);
  const ckk = C * KH * KW,
    ohw = OH * OW;
  const group = Math.max(1, Math.min(N, Math.floor(COL_BYTES / 4 / Math.max(1, ckk * ohw))));
  return { N, C, H, W, F, KH, KW, OH, OW, stride, padding, ckk, ohw, group };
};

/** The columns j of an output row whose input column j·s + b − p lies inside [0, W). */
const validCols = (g: Geometry, b: number): [number, number] => {
  const lo = Math.max(0, Math.ceil((g.padding - b) / g.stride));
  const hi = Math.min(g.OW, Math.floor((g.W - 1 + g.padding - b) / g.stride) + 1);
  return [lo, Math.max(lo, hi)];
};

/** Each b's [lo, hi) of validCols, as [lo₀, hi₀, lo₁, hi₁, …] (the cpu backend's WebAssembly unrolling reads it). */
export const columnBounds = (g: Geometry): Int32Array => Int32Array.from({ length: 2 * g.KW }, (_z, i) => validCols(g, i >> 1)[i & 1]!);

/**
 * The rows (c, a, b) of a column matrix of images n0… in order, as element
 * offsets: `row`, the row's start in the columns; `plane`, image n0's plane c in
 * x; `rowOff` = a − p and `colOff` = b − p; [lo, hi), the output columns whose
 * input column lies inside x (validCols). The unrolling loops here and the cpu
 * backend's WebAssembly row kernels walk the same rows.
 */
export const forEachColumnRow = (
  g: Geometry,
  n0: number,
  count: number,
  visit: (row: number, plane: number, rowOff: number, colOff: number, lo: number, hi: number) => void,
): void => {
  const { C, H, W, KH, KW, padding, ohw } = g;
  for (let c = 0; c < C; c++) {
    for (let a = 0; a < KH; a++) {
      for (let b = 0; b < KW; b++) {
        const [lo, hi] = validCols(g, b);
        visit(((c * KH + a) * KW + b) * count * ohw, (n0 * C + c) * H * W, a - padding, b - padding, lo, hi);
      }
    }
  }
};

/** col[(c, a, b), (image − n0, i, j)] = x[image, c, i·s + a − p, j·s + b − p], zero outside x. */
export const im2col = (x: Float32Array, g: Geometry, n0: number, count: number, col: Float32Array): void => {
  const { C, H, W, OH, OW, stride, ohw } = g;
  forEachColumnRow(g, n0, count, (row, plane, rowOff, colOff, lo, hi) => {
    for (let img = 0; img < count; img++) {
      const xb = plane + img * C * H * W;
      for (let i = 0; i < OH; i++) {
        const d = row + img * ohw + i * OW;
        const r = i * stride + rowOff;
        if (r < 0 || r >= H) {
          col.fill(0, d, d + OW);
          continue;
        }
        const xr = xb + r * W + colOff;
        for (let j = 0; j < lo; j++) col[d + j] = 0;
        for (let j = lo; j < hi; j++) col[d + j] = x[xr + j * stride]!;
        for (let j = hi; j < OW; j++) col[d + j] = 0;
      }
    }
  });
};

/** dx[image, c, i·s + a − p, j·s + b − p] += col[(c, a, b), (image − n0, i, j)] inside x (col2im). */
export const col2im = (col: Float32Array, g: Geometry, n0: number, count: number, dx: Float32Array): void => {
  const { C, H, W, OH, OW, stride, ohw } = g;
  forEachColumnRow(g, n0, count, (row, plane, rowOff, colOff, lo, hi) => {
    for (let img = 0; img < count; img++) {
      const xb = plane + img * C * H * W;
      for (let i = 0; i < OH; i++) {
        const r = i * stride + rowOff;
        if (r < 0 || r >= H) continue;
        const s = row + img * ohw + i * OW,
          xr = xb + r * W + colOff;
        for (let j = lo; j < hi; j++) dx[xr + j * stride] = dx[xr + j * stride]! + col[s + j]!;
      }
    }
  });
};

/**
 * Moves images' [F, OH·OW] planes between NCHW (`nchw`, images n0…) and one
 * [F, count·OH·OW] matrix (`mat`): `toMatrix` gathers, else scatters.
 */
export const regroup = (nchw: Float32Array, mat: Float32Array, g: Geometry, n0: number, count: number, toMatrix: boolean): void => {
  const { F, ohw } = g;
  for (let f = 0; f < F; f++) {
    for (let img = 0; img < count; img++) {
      const src = ((n0 + img) * F + f) * ohw,
        dst = (f * count + img) * ohw;
      if (toMatrix) mat.set(nchw.subarray(src, src + ohw), dst);
      else nchw.set(mat.subarray(dst, dst + ohw), src);
    }
  }
};

/** The three conv2d kernels over `deps`' GEMM, for float32 operands. */
export const convGemmKernels = (deps: ConvGemmDeps) => {
  const { gemm, scratch, release, alloc } = deps;
  const { im2col: unroll, col2im: roll } = deps.unroll ?? { im2col, col2im };
  const move = deps.unroll?.regroup ?? regroup;
  const groups = (g: Geometry, f: (n0: number, count: number) => void): void => {
    for (let n0 = 0; n0 < g.N; n0 += g.group) f(n0, Math.min(g.group, g.N - n0));
  };

  /** y = conv2d(x, w), NCHW. */
  const conv2d = (x: Float32Array, xs: Shape, w: Float32Array, ws: Shape, p: Conv2dParams): Float32Array => {
    const g = geometry(xs, ws, p);
    const out = alloc(g.N * g.F * g.ohw, false);
    const col = scratch(g.ckk * g.group * g.ohw);
    // One image: its [F, OH·OW] output is already NCHW, written in place.
    const y = g.group > 1 ? scratch(g.F * g.group * g.ohw) : undefined;
    groups(g, (n0, count) => {
      const L = count * g.ohw;
      unroll(x, g, n0, count, col);
      if (y === undefined) gemm(w, col, g.F, g.ckk, L, false, false, out.subarray(n0 * g.F * g.ohw, (n0 + 1) * g.F * g.ohw));
      else {
        const yg = y.subarray(0, g.F * L);
        gemm(w, col.subarray(0, g.ckk * L), g.F, g.ckk, L, false, false, yg);
        move(out, yg, g, n0, count, false);
      }
    });
    if (y !== undefined) release(y);
    release(col);
    return out;
  };

  /** ∂L/∂x from the cotangent ct [N, F, OH, OW] and the filters. */
  const gradInput = (ct: Float32Array, w: Float32Array, ws: Shape, xs: Shape, p: Conv2dParams): Float32Array => {
    const g = geometry(xs, ws, p);
    const dx = alloc(g.N * g.C * g.H * g.W, true);
    const dcol = scratch(g.ckk * g.group * g.ohw);
    const ctg = g.group > 1 ? scratch(g.F * g.group * g.ohw) : undefined;
    groups(g, (n0, count) => {
      const L = count * g.ohw;
      let c: Float32Array;
      if (ctg === undefined) c = ct.subarray(n0 * g.F * g.ohw, (n0 + 1) * g.F * g.ohw);
      else {
        c = ctg.subarray(0, g.F * L);
        move(ct, c, g, n0, count, true);
      }
      const d = dcol.subarray(0, g.ckk * L);
      gemm(w, c, g.ckk, g.F, L, true, false, d);
      roll(d, g, n0, count, dx);
    });
    if (ctg !== undefined) release(ctg);
    release(dcol);
    return dx;
  };

  /** ∂L/∂w from the cotangent ct [N, F, OH, OW] and the images. */
  const gradWeight = (ct: Float32Array, x: Float32Array, xs: Shape, ws: Shape, p: Conv2dParams): Float32Array => {
    const g = geometry(xs, ws, p);
    const size = g.F * g.ckk;
    const dw = alloc(size, false);
    const col = scratch(g.ckk * g.group * g.ohw);
    const ctg = g.group > 1 ? scratch(g.F * g.group * g.ohw) : undefined;
    const part = g.group < g.N ? scratch(size) : undefined;
    groups(g, (n0, count) => {
      const L = count * g.ohw;
      let c: Float32Array;
      if (ctg === undefined) c = ct.subarray(n0 * g.F * g.ohw, (n0 + 1) * g.F * g.ohw);
      else {
        c = ctg.subarray(0, g.F * L);
        move(ct, c, g, n0, count, true);
      }
      const cl = col.subarray(0, g.ckk * L);
      unroll(x, g, n0, count, cl);
      if (n0 === 0) gemm(c, cl, g.F, L, g.ckk, false, true, dw);
      else {
        gemm(c, cl, g.F, L, g.ckk, false, true, part!);
        for (let i = 0; i < size; i++) dw[i] = dw[i]! + part![i]!;
      }
    });
    if (part !== undefined) release(part);
    if (ctg !== undefined) release(ctg);
    release(col);
    return dw;
  };

  return { conv2d, gradInput, gradWeight };
};
