/**
 * The cpu backend's WebAssembly image kernels (im2col / col2im rows, max
 * pooling and its gradient, batch normalization's passes) against the
 * TypeScript loops they replace, bit for bit: the same backend built with
 * `imageKernels: 'typescript'` runs the host kernels' loops on the same
 * memory. Operands are larger than MIN_KERNEL_MEMORY_BYTES, so they live in the
 * kernel's memory and the WebAssembly paths run (smaller ones stay on the host
 * loops by design). Ties and NaNs in the pooling windows check the order rules.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { valueAndGrad } from '../../src/autodiff/index.js';
import {
  add,
  bind,
  batchNormalize,
  reshape,
  channelMoments,
  conv2d,
  createCpuBackend,
  createReferenceBackend,
  fromArray,
  full,
  Key,
  maxPool2d,
  sum,
  mul,
  toBackend,
  type Backend,
  type Tensor,
} from '../../src/core/index.js';
import { MIN_KERNEL_MEMORY_BYTES } from '../../src/core/backends/cpu.js';
import { slidingOut } from '../../src/core/kernels-nd.js';

// On the WebAssembly GEMM, whose results do not depend on the thread count (a native BLAS's may).
const wasm = createCpuBackend({ threads: 1, blas: 'none' });
const ts = createCpuBackend({ threads: 1, imageKernels: 'typescript', blas: 'none' });
/** Two threads: batch normalization's chains and passes split between them in chunks. */
const two = createCpuBackend({ threads: 2, blas: 'none' });
const reference = createReferenceBackend();
afterAll(() => {
  wasm.dispose();
  ts.dispose();
  two.dispose();
});
// The worker thread takes chunks only once it runs: wait for it, so the split paths run.
beforeAll(async () => {
  for (let i = 0; i < 500 && !two.workerRunning(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(two.workerRunning()).toBe(true);
});

const bits = (t: Tensor): string => {
  const d = t.toTypedArray();
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString('base64');
};
const big = (shape: readonly number[]) => expect(shape.reduce((a, d) => a * d, 1) * 4).toBeGreaterThanOrEqual(MIN_KERNEL_MEMORY_BYTES);
const on = (be: Backend, ...ts_: Tensor[]) => ts_.map((t) => toBackend(t, be));

describe('cpu image kernels: WebAssembly equals TypeScript, bit for bit', () => {
  const convCases = [
    { n: 8, c: 3, h: 32, w: 32, f: 16, k: 3, stride: 1, padding: 1 },
    { n: 4, c: 5, h: 27, w: 31, f: 6, k: 5, stride: 2, padding: 2 },
    { n: 8, c: 4, h: 25, w: 23, f: 3, k: 3, stride: 3, padding: 0 },
    { n: 6, c: 8, h: 20, w: 22, f: 7, k: 1, stride: 1, padding: 0 },
    // Stride 1 with rows of 8k outputs: the direct kernel (conv.wat) against im2col + GEMM. 288 taps: two KC blocks;
    // 7 and 13 filters: a last tile of 1 filter of 6; a 5×5 window; no padding.
    { n: 16, c: 32, h: 12, w: 16, f: 7, k: 3, stride: 1, padding: 1 },
    { n: 12, c: 4, h: 20, w: 24, f: 13, k: 5, stride: 1, padding: 2 },
    { n: 100, c: 2, h: 9, w: 10, f: 6, k: 3, stride: 1, padding: 0 },
  ];
  it.each(convCases)('conv2d and both gradients: %o', (c) => {
    big([c.n, c.c, c.h, c.w]);
    const oh = slidingOut(c.h, c.k, c.stride, c.padding),
      ow = slidingOut(c.w, c.k, c.stride, c.padding);
    const [kx, kw, kc] = new Key(c.n * 100 + c.k).split(3);
    const x = kx!.uniform([c.n, c.c, c.h, c.w], -1, 1, 'float32', reference);
    const w = kw!.uniform([c.f, c.c, c.k, c.k], -1, 1, 'float32', reference);
    const ct = kc!.uniform([c.n, c.f, oh, ow], -1, 1, 'float32', reference);
    const p = { stride: c.stride, padding: c.padding };
    const out = (be: Backend) => {
      const [xb, wb, cb] = on(be, x, w, ct) as [Tensor, Tensor, Tensor];
      return [
        conv2d(xb, wb, p),
        bind('conv2dGradInput', [cb, wb], { ...p, inputShape: x.shape }),
        bind('conv2dGradWeight', [cb, xb], { ...p, filterShape: w.shape }),
      ].map(bits);
    };
    const a = out(wasm);
    expect(a).toEqual(out(ts));
    expect(out(two)).toEqual(a);
  });

  /** Values with many ties (few distinct levels), a NaN now and then, and -0 beside +0. */
  const pooled = (shape: number[], seed: number): Tensor => {
    const u = new Key(seed).uniform(shape, 0, 1, 'float64').toTypedArray();
    const v = Array.from(u, (r, i) => (i % 97 === 5 ? NaN : i % 13 === 0 ? -0 : Math.floor(r * 4) - 2));
    const t = fromArray(v, shape, 'float32');
    if (t._tag === 'Left') throw t.left;
    return t.right;
  };
  it.each([
    { shape: [8, 8, 32, 32], size: 2, stride: 2 },
    { shape: [4, 6, 31, 29], size: 3, stride: 3 },
    { shape: [4, 6, 30, 30], size: 3, stride: 2 },
    { shape: [2, 16, 24, 24], size: 2, stride: 1 },
    { shape: [6, 8, 30, 27], size: 2, stride: 2 }, // 13 outputs a row: the SIMD path's scalar tail
  ])('max pooling and its gradient (ties, NaN, overlapping windows): %o', ({ shape, size, stride }) => {
    big(shape);
    const x = pooled(shape, size * 10 + stride);
    const oh = slidingOut(shape[2]!, size, stride, 0),
      ow = slidingOut(shape[3]!, size, stride, 0);
    const ct = new Key(7).uniform([shape[0]!, shape[1]!, oh, ow], -1, 1, 'float32');
    const out = (be: Backend) => {
      const [xb, cb] = on(be, x, ct) as [Tensor, Tensor];
      // Leave a freed block of x's size full of sevens: the gradient's output may be handed it, and must write every element.
      full(shape, 7, 'float32', be).dispose();
      return [maxPool2d(xb, size, stride), bind('maxPool2dGrad', [cb, xb], { size, stride })].map(bits);
    };
    const [a, b] = [out(wasm), out(ts)];
    expect(a).toEqual(b);
    // And both equal the reference backend's (pure host) kernels, and two threads' (planes split between them).
    expect(a).toEqual(out(reference));
    expect(out(two)).toEqual(a);
  });

  it.each([
    { shape: [16, 8, 16, 16] },
    { shape: [32, 5, 11, 13] },
    { shape: [4096, 12] },
    { shape: [6, 3, 33, 35] },
    // Large enough for two threads to share the passes (PARALLEL_MIN_ELEMENTS), one with a plane not a multiple of 4.
    { shape: [32, 6, 24, 20] },
    { shape: [40, 7, 17, 15] },
    // Rows (one value a plane, batchNorm after a dense layer): lanes over channels, split by channel pairs; an odd C's last lane.
    { shape: [6000, 13] },
    { shape: [300, 258] },
  ])('batch normalization, forward and gradients: %o', ({ shape }) => {
    big(shape);
    const C = shape[1]!;
    const x = new Key(1).normal(shape, 'float32', 0.7, 1.9);
    const g = new Key(2).uniform([C], 0.5, 2, 'float32'),
      b = new Key(3).uniform([C], -1, 1, 'float32');
    const w = new Key(4).normal(shape, 'float32');
    const out = (be: Backend) => {
      const [xb, gb, bb, wb] = on(be, x, g, b, w) as [Tensor, Tensor, Tensor, Tensor];
      const r = valueAndGrad((p: { x: Tensor; g: Tensor; b: Tensor }) => sum(mul(batchNormalize(p.x, p.g, p.b), wb)))({ x: xb, g: gb, b: bb });
      return [channelMoments(xb), batchNormalize(xb, gb, bb), r.grads.x, r.grads.g, r.grads.b].map(bits);
    };
    const [a, b2] = [out(wasm), out(ts)];
    expect(a).toEqual(b2);
    expect(a).toEqual(out(reference));
    expect(out(two)).toEqual(a);
  });

  it.each([{ shape: [16, 8, 16, 16] }, { shape: [9, 5, 13, 31] }, { shape: [4, 3, 2, 40, 41] }, { shape: [6, 13, 40, 41] }])(
    'the conv bias: per-channel add and its gradient (sum over every axis but 1): %o',
    ({ shape }) => {
      big(shape);
      const C = shape[1]!,
        stat = shape.map((d, i) => (i === 1 ? d : 1));
      const x = new Key(8).normal(shape, 'float32', 0.3, 3),
        b = new Key(9).normal([C], 'float32');
      const out = (be: Backend) => {
        const [xb, bb] = on(be, x, b) as [Tensor, Tensor];
        const axes = shape.map((_d, i) => i).filter((i) => i !== 1);
        return [add(xb, reshape(bb, stat)), bind('sum', [xb], { axes, keepDims: true })].map(bits);
      };
      const [a, b2] = [out(wasm), out(ts)];
      expect(a).toEqual(b2);
      expect(a).toEqual(out(reference));
      expect(out(two)).toEqual(a);
    },
  );

  it("batch normalization's sums are one float64 chain a plane, in element order (vectors run several planes, never several elements of one)", () => {
    // Plane (0, 0) holds [1, 2^80, 1, −2^80, 0, …]: its chain gives 1 + 2^80 = 2^80 (the 1 is lost), + 1 lost again,
    // − 2^80 = 0. Sums split by element (even and odd lanes) would give 2. Every other plane is zero.
    const [N, C, S] = [64, 3, 512];
    const v = new Array<number>(N * C * S).fill(0);
    [1, 2 ** 80, 1, -(2 ** 80)].forEach((e, j) => {
      v[j] = e;
    });
    big([N, C, S]);
    const x = fromArray(v, [N, C, S], 'float32');
    if (x._tag === 'Left') throw x.left;
    for (const be of [wasm, two, ts, reference]) {
      const [xb] = on(be, x.right) as [Tensor];
      const m = channelMoments(xb);
      expect((m.toArray() as number[][])[0], be.name).toEqual([0, 0, 0]);
      // The gradient sums: with ct = x, Σ ct (row 1 of the parameter gradient) is the same chain.
      expect((bind('batchNormParamGrad', [xb, m, xb], { eps: 1e-5 }).toArray() as number[][])[1], be.name).toEqual([0, 0, 0]);
    }
    // Rows [N, C] (one value a plane): channel 1's chain runs down the rows, [1, 2^80, 1, −2^80, 0, …] giving 0 in order.
    const [R, K] = [16000, 5];
    const rows = new Array<number>(R * K).fill(0);
    [1, 2 ** 80, 1, -(2 ** 80)].forEach((e, n) => {
      rows[n * K + 1] = e;
    });
    const xr = fromArray(rows, [R, K], 'float32');
    if (xr._tag === 'Left') throw xr.left;
    for (const be of [wasm, two, ts, reference]) {
      const [xb] = on(be, xr.right) as [Tensor];
      const m = channelMoments(xb);
      expect((m.toArray() as number[][])[0], be.name).toEqual([0, 0, 0, 0, 0]);
      expect((bind('batchNormParamGrad', [xb, m, xb], { eps: 1e-5 }).toArray() as number[][])[1], be.name).toEqual([0, 0, 0, 0, 0]);
    }
  });

  it("the per-channel sum keeps one chain through the planes (the host reduce's order), not a sum per plane", () => {
    // Channel 0 over two planes: [1, 0, …] then [2^80, 1, −2^80, 0, …]. One float64 chain: 1 + 2^80 loses the 1,
    // + 1 is lost too, − 2^80 gives 0. A sum per plane then added would give 1 + 0 = 1.
    const S = 16384,
      v = new Array<number>(2 * S).fill(0);
    v[0] = 1;
    v[S] = 2 ** 80;
    v[S + 1] = 1;
    v[S + 2] = -(2 ** 80);
    big([2, 1, S]);
    const x = fromArray(v, [2, 1, S], 'float32');
    if (x._tag === 'Left') throw x.left;
    for (const be of [wasm, two, ts, reference]) {
      const [xb] = on(be, x.right) as [Tensor];
      expect(bind('sum', [xb], { axes: [0, 2], keepDims: true }).toArray()).toEqual([[[0]]]);
    }
  });
});
