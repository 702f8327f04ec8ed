/**
 * Forward and gradient kernels of the image primitives (conv2d, pooling), as
 * pure functions over typed arrays and shapes: `(x, shape, params) → { data, shape }`.
 * They allocate their output and touch nothing else, so any backend can list
 * them in its kernel table as they are.
 *
 * Layout: NCHW. Images are [batch, channels, height, width]; conv2d filters
 * are [outChannels, inChannels, kernelHeight, kernelWidth] (PyTorch's layout).
 * CIFAR-100's binary rows are 1024 red, 1024 green, 1024 blue values, so a
 * [batch, 3072] matrix reshaped to [batch, 3, 32, 32] is already NCHW.
 *
 * Sums accumulate in a JS number (float64) and round once when stored.
 */
import type { Shape } from './shape.js';
import { allocData, type Data } from './tensor.js';

export interface Conv2dParams {
  readonly stride: number;
  readonly padding: number;
}

export interface Pool2dParams {
  /** Window height and width. */
  readonly size: number;
  readonly stride: number;
}

interface Out { readonly data: Data; readonly shape: Shape }

const dtypeOf = (...xs: Data[]) => (xs.some((x) => x instanceof Float64Array) ? 'float64' : 'float32');

/** Output length of a window sliding over `n` with padding `p` on both sides. */
export const slidingOut = (n: number, k: number, stride: number, padding: number): number => Math.floor((n + 2 * padding - k) / stride) + 1;

/** y[n, f, i, j] = Σ_{c, a, b} x[n, c, i·s + a − p, j·s + b − p] · w[f, c, a, b] (zero outside x). */
export const conv2d = (x: Data, xs: Shape, w: Data, ws: Shape, { stride, padding }: Conv2dParams): Out => {
  const [N, C, H, W] = xs as [number, number, number, number];
  const [F, , KH, KW] = ws as [number, number, number, number];
  const OH = slidingOut(H, KH, stride, padding), OW = slidingOut(W, KW, stride, padding);
  const out = allocData(dtypeOf(x, w), N * F * OH * OW, false);
  let o = 0;
  for (let n = 0; n < N; n++) {
    for (let f = 0; f < F; f++) {
      for (let i = 0; i < OH; i++) {
        for (let j = 0; j < OW; j++) {
          let acc = 0;
          for (let c = 0; c < C; c++) {
            const xb = (n * C + c) * H, wb = (f * C + c) * KH;
            for (let a = 0; a < KH; a++) {
              const r = i * stride + a - padding;
              if (r < 0 || r >= H) continue;
              const xr = (xb + r) * W, wr = (wb + a) * KW;
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

/** ∂L/∂x of conv2d: every output's cotangent spread back over its window, weighted by w. */
export const conv2dGradInput = (ct: Data, w: Data, ws: Shape, xs: Shape, { stride, padding }: Conv2dParams, dtypeLike: Data): Out => {
  const [N, C, H, W] = xs as [number, number, number, number];
  const [F, , KH, KW] = ws as [number, number, number, number];
  const OH = slidingOut(H, KH, stride, padding), OW = slidingOut(W, KW, stride, padding);
  const acc = new Float64Array(N * C * H * W);
  for (let n = 0; n < N; n++) {
    for (let f = 0; f < F; f++) {
      for (let i = 0; i < OH; i++) {
        for (let j = 0; j < OW; j++) {
          const g = ct[((n * F + f) * OH + i) * OW + j]!;
          if (g === 0) continue;
          for (let c = 0; c < C; c++) {
            const xb = (n * C + c) * H, wb = (f * C + c) * KH;
            for (let a = 0; a < KH; a++) {
              const r = i * stride + a - padding;
              if (r < 0 || r >= H) continue;
              for (let b = 0; b < KW; b++) {
                const col = j * stride + b - padding;
                if (col < 0 || col >= W) continue;
                acc[(xb + r) * W + col]! += g * w[(wb + a) * KW + b]!;
              }
            }
          }
        }
      }
    }
  }
  const out = allocData(dtypeOf(dtypeLike), acc.length, false);
  out.set(acc);
  return { data: out, shape: xs };
};

/** ∂L/∂w of conv2d: Σ over the batch and positions of cotangent × input window. */
export const conv2dGradWeight = (ct: Data, x: Data, xs: Shape, ws: Shape, { stride, padding }: Conv2dParams, dtypeLike: Data): Out => {
  const [N, C, H, W] = xs as [number, number, number, number];
  const [F, , KH, KW] = ws as [number, number, number, number];
  const OH = slidingOut(H, KH, stride, padding), OW = slidingOut(W, KW, stride, padding);
  const acc = new Float64Array(F * C * KH * KW);
  for (let n = 0; n < N; n++) {
    for (let f = 0; f < F; f++) {
      for (let i = 0; i < OH; i++) {
        for (let j = 0; j < OW; j++) {
          const g = ct[((n * F + f) * OH + i) * OW + j]!;
          if (g === 0) continue;
          for (let c = 0; c < C; c++) {
            const xb = (n * C + c) * H, wb = (f * C + c) * KH;
            for (let a = 0; a < KH; a++) {
              const r = i * stride + a - padding;
              if (r < 0 || r >= H) continue;
              for (let b = 0; b < KW; b++) {
                const col = j * stride + b - padding;
                if (col < 0 || col >= W) continue;
                acc[(wb + a) * KW + b]! += g * x[(xb + r) * W + col]!;
              }
            }
          }
        }
      }
    }
  }
  const out = allocData(dtypeOf(dtypeLike), acc.length, false);
  out.set(acc);
  return { data: out, shape: ws };
};

/**
 * For each output of a max pool, the flat input index of its window's maximum
 * (the first on ties; a NaN in the window wins, so NaN propagates).
 */
const maxPoolArgmax = (x: Data, xs: Shape, { size, stride }: Pool2dParams): { idx: Int32Array; shape: Shape } => {
  const [N, C, H, W] = xs as [number, number, number, number];
  const OH = slidingOut(H, size, stride, 0), OW = slidingOut(W, size, stride, 0);
  const idx = new Int32Array(N * C * OH * OW);
  let o = 0;
  for (let nc = 0; nc < N * C; nc++) {
    for (let i = 0; i < OH; i++) {
      for (let j = 0; j < OW; j++) {
        let bi = nc * H * W + i * stride * W + j * stride, bv = x[bi]!;
        for (let a = 0; a < size; a++) {
          for (let b = 0; b < size; b++) {
            const k = nc * H * W + (i * stride + a) * W + j * stride + b, v = x[k]!;
            if (bv === bv && (v > bv || v !== v)) { bv = v; bi = k; }
          }
        }
        idx[o++] = bi;
      }
    }
  }
  return { idx, shape: Object.freeze([N, C, OH, OW]) };
};

/** y[n, c, i, j] = max over the size×size window at (i·stride, j·stride). */
export const maxPool2d = (x: Data, xs: Shape, p: Pool2dParams): Out => {
  const { idx, shape } = maxPoolArgmax(x, xs, p);
  const out = allocData(dtypeOf(x), idx.length, false);
  for (let o = 0; o < idx.length; o++) out[o] = x[idx[o]!]!;
  return { data: out, shape };
};

/** ∂L/∂x of maxPool2d: each output's cotangent goes to its window's (first) maximum. */
export const maxPool2dGrad = (ct: Data, x: Data, xs: Shape, p: Pool2dParams): Out => {
  const { idx } = maxPoolArgmax(x, xs, p);
  const acc = new Float64Array(x.length);
  for (let o = 0; o < idx.length; o++) acc[idx[o]!]! += ct[o]!;
  const out = allocData(dtypeOf(x), x.length, false);
  out.set(acc);
  return { data: out, shape: xs };
};

/** y[n, c, i, j] = mean over the size×size window at (i·stride, j·stride). */
export const avgPool2d = (x: Data, xs: Shape, { size, stride }: Pool2dParams): Out => {
  const [N, C, H, W] = xs as [number, number, number, number];
  const OH = slidingOut(H, size, stride, 0), OW = slidingOut(W, size, stride, 0);
  const out = allocData(dtypeOf(x), N * C * OH * OW, false);
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
export const avgPool2dGrad = (ct: Data, xs: Shape, { size, stride }: Pool2dParams, dtypeLike: Data): Out => {
  const [N, C, H, W] = xs as [number, number, number, number];
  const OH = slidingOut(H, size, stride, 0), OW = slidingOut(W, size, stride, 0);
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
  const out = allocData(dtypeOf(dtypeLike), acc.length, false);
  out.set(acc);
  return { data: out, shape: xs };
};
