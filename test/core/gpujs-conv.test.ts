/**
 * The gpujs backend's image kernels (conv2d, its two VJPs, max and average
 * pooling and their VJPs) on WebGL against the reference backend's kernels
 * (kernels-nd.ts) recomputed in float64, over strides 1 and 2, paddings 0 and
 * 1, non-square images and filters, several channels, filters and images; a
 * small conv → relu → pool network's gradients through the tape against the
 * reference backend; and a conv step that stays on the GPU. Needs headless-gl
 * and an X display (`xvfb-run -a npx vitest run test/core/gpujs-conv.test.ts`);
 * without one it says why and skips, except in CI (CI=true), where it fails.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { valueAndGrad } from '../../src/autodiff/index.js';
import type { Operand } from '../../src/core/backend.js';
import { createGpujsBackend, type GpuBuffer } from '../../src/core/backends/gpujs.js';
import { detectGpu } from '../../src/core/backends/detect.js';
import { add, avgPool2d, conv2d, createReferenceBackend, Key, maxPool2d, mul, relu, sum, toBackend, type Tensor } from '../../src/core/index.js';
import * as KN from '../../src/core/kernels-nd.js';
import type { Alloc } from '../../src/core/kernels.js';
import type { Data } from '../../src/core/primitives.js';
import { requireSystem } from '../system.js';

const gpuReport = detectGpu();
const run = requireSystem({ suite: 'gpujs image kernel tests (test/core/gpujs-conv.test.ts)', found: gpuReport.context, missing: gpuReport.summary });

type Shape = readonly number[];
const size = (s: Shape): number => s.reduce((p, d) => p * d, 1);
const alloc64: Alloc = (_dtype, n) => new Float64Array(n);

/** mulberry32: seeded, so a failure reproduces. */
const rng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
let seed = 100;
const rand = (n: number): Float32Array => {
  const r = rng(seed++);
  return Float32Array.from({ length: n }, () => 2 * r() - 1);
};
/** Small integers: ties in every pooling window. */
const ints = (n: number, k: number): Float32Array => {
  const r = rng(seed++);
  return Float32Array.from({ length: n }, () => Math.floor(r() * k));
};
const wide = (x: Float32Array): Float64Array => Float64Array.from(x);

const expectClose = (got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string) => {
  expect(got.length, `${what}: length`).toBe(want.length);
  let worst = -1,
    worstErr = 0;
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i]! - want[i]!) - tol * (1 + Math.abs(want[i]!));
    if (!(err <= 0) && !Object.is(got[i], want[i]) && (worst < 0 || err > worstErr)) [worst, worstErr] = [i, err];
  }
  expect(worst < 0 ? 'ok' : `element ${worst}: got ${got[worst]}, want ${want[worst]}`, what).toBe('ok');
};
/** float32 accumulation of k terms of size ≤ 1: error grows like √k · 2⁻²⁴ (the matmul tests' bound). */
const sumTol = (k: number): number => 2e-5 * Math.sqrt(k) + 1e-6;

/** [x shape, w shape, stride, padding]. */
const convCases: Array<[Shape, Shape, number, number]> = [
  [[1, 1, 4, 4], [1, 1, 3, 3], 1, 0],
  [[2, 3, 5, 4], [4, 3, 3, 3], 1, 1], // non-square image, C, F, N > 1
  [[2, 2, 7, 6], [3, 2, 3, 2], 2, 0], // non-square filter, stride 2
  [[1, 3, 6, 7], [2, 3, 3, 3], 2, 1],
  [[3, 2, 5, 5], [2, 2, 1, 1], 1, 0], // 1×1
  [[2, 2, 5, 6], [3, 2, 1, 1], 2, 1], // stride > filter: pixels no output reads
  [[4, 3, 8, 8], [8, 3, 3, 3], 1, 1], // a small CNN layer
];
/** [x shape, size, stride]. */
const poolCases: Array<[Shape, number, number]> = [
  [[1, 1, 4, 4], 2, 2],
  [[2, 3, 5, 6], 2, 2], // ragged edge
  [[2, 2, 5, 5], 3, 1], // overlapping windows
  [[1, 2, 6, 7], 3, 2],
  [[2, 1, 3, 4], 1, 1],
  [[1, 2, 7, 8], 2, 3], // gaps between windows (stride > size)
];

describe.skipIf(!run)('gpujs image kernels on WebGL', () => {
  let be: ReturnType<typeof createGpujsBackend>;
  const made: GpuBuffer[] = [];
  let baseline = 0;
  const keep = (b: GpuBuffer): GpuBuffer => {
    made.push(b);
    return b;
  };
  const op = (data: Float32Array, shape: Shape): Operand<GpuBuffer> => ({ buf: keep(be.upload(data)), shape, dtype: 'float32' });
  const read = (b: GpuBuffer): Data => be.read(keep(b), 'float32', b.n);
  const out = (shape: Shape) => ({ shape, dtype: 'float32' as const });

  beforeAll(() => {
    be = createGpujsBackend();
    baseline = be.memory().liveBytes;
  });
  afterEach(() => {
    for (const b of made.splice(0)) be.free(b);
    expect(be.memory().liveBytes).toBe(baseline);
  });
  afterAll(() => be?.dispose());

  for (const [xs, ws, stride, padding] of convCases) {
    it(`conv2d, conv2dGradInput, conv2dGradWeight: x ${xs}, w ${ws}, stride ${stride}, padding ${padding}`, () => {
      const p = { stride, padding };
      const x = rand(size(xs)),
        w = rand(size(ws));
      const y64 = KN.conv2d(alloc64, wide(x), xs, wide(w), ws, p);
      const ys = y64.shape;
      const ct = rand(size(ys));
      const [N, C, ,] = xs as [number, number, number, number];
      const [F, , KH, KW] = ws as [number, number, number, number];
      expectClose(read(be.kernels.conv2d([op(x, xs), op(w, ws)], p, out(ys))), y64.data, sumTol(C * KH * KW), 'conv2d');
      expectClose(
        read(be.kernels.conv2dGradInput([op(ct, ys), op(w, ws)], { ...p, inputShape: xs }, out(xs))),
        KN.conv2dGradInput(alloc64, wide(ct), wide(w), ws, xs, p, new Float64Array(0)).data,
        sumTol(F * KH * KW),
        'conv2dGradInput',
      );
      expectClose(
        read(be.kernels.conv2dGradWeight([op(ct, ys), op(x, xs)], { ...p, filterShape: ws }, out(ws))),
        KN.conv2dGradWeight(alloc64, wide(ct), wide(x), xs, ws, p, new Float64Array(0)).data,
        sumTol(N * ys[2]! * ys[3]!),
        'conv2dGradWeight',
      );
    });
  }

  for (const [xs, sz, stride] of poolCases) {
    it(`maxPool2d, avgPool2d and their VJPs, with ties: x ${xs}, size ${sz}, stride ${stride}`, () => {
      const p = { size: sz, stride };
      const x = ints(size(xs), 3);
      const m64 = KN.maxPool2d(alloc64, wide(x), xs, p);
      const ys = m64.shape;
      const ct = rand(size(ys));
      expectClose(read(be.kernels.maxPool2d([op(x, xs)], p, out(ys))), m64.data, 0, 'maxPool2d');
      // Ties: the cotangent goes to the element the host picks (the first maximum in window order), nowhere else.
      expectClose(
        read(be.kernels.maxPool2dGrad([op(ct, ys), op(x, xs)], p, out(xs))),
        KN.maxPool2dGrad(alloc64, wide(ct), wide(x), xs, p).data,
        1e-6,
        'maxPool2dGrad',
      );
      const xr = rand(size(xs));
      expectClose(read(be.kernels.avgPool2d([op(xr, xs)], p, out(ys))), KN.avgPool2d(alloc64, wide(xr), xs, p).data, sumTol(sz * sz), 'avgPool2d');
      expectClose(
        read(be.kernels.avgPool2dGrad([op(ct, ys)], { ...p, inputShape: xs }, out(xs))),
        KN.avgPool2dGrad(alloc64, wide(ct), xs, p, new Float64Array(0)).data,
        sumTol(sz * sz),
        'avgPool2dGrad',
      );
    });
  }

  it('max pooling propagates NaN and sends the gradient to the first NaN, as the host does', () => {
    const xs = [1, 1, 4, 4],
      p = { size: 2, stride: 1 },
      ys = [1, 1, 3, 3];
    const x = ints(16, 3);
    x[5] = NaN;
    x[10] = NaN;
    const ct = rand(9);
    expectClose(read(be.kernels.maxPool2d([op(x, xs)], p, out(ys))), KN.maxPool2d(alloc64, wide(x), xs, p).data, 0, 'maxPool2d NaN');
    expectClose(
      read(be.kernels.maxPool2dGrad([op(ct, ys), op(x, xs)], p, out(xs))),
      KN.maxPool2dGrad(alloc64, wide(ct), wide(x), xs, p).data,
      1e-6,
      'maxPool2dGrad NaN',
    );
  });

  it('float64 image kernels still run on the host, in float64', () => {
    const xs = [1, 2, 4, 5],
      ws = [2, 2, 3, 3],
      p = { stride: 1, padding: 1 };
    const x = Float64Array.from(rand(size(xs)), (v) => v + 1e-10),
      w = Float64Array.from(rand(size(ws)));
    const o = (d: Float64Array, shape: Shape): Operand<GpuBuffer> => ({ buf: keep(be.upload(d)), shape, dtype: 'float64' });
    const want = KN.conv2d(alloc64, x, xs, w, ws, p);
    const got = be.kernels.conv2d([o(x, xs), o(w, ws)], p, { shape: want.shape, dtype: 'float64' });
    expect(got.host).toBeInstanceOf(Float64Array);
    expect(Array.from(be.read(keep(got), 'float64', got.n))).toEqual(Array.from(want.data));
  });
});

describe.skipIf(!run)('a conv → relu → pool network on gpujs', () => {
  const reference = createReferenceBackend();
  let be: ReturnType<typeof createGpujsBackend>;
  beforeAll(() => {
    be = createGpujsBackend();
  });
  afterAll(() => be?.dispose());

  /** Weighted sums of a max-pooled and an average-pooled conv → relu, so every gradient element matters. */
  const net =
    (stride: number, padding: number, wmax: Tensor, wavg: Tensor) =>
    (p: { x: Tensor; w: Tensor }): Tensor => {
      const h = relu(conv2d(p.x, p.w, { stride, padding }));
      return add(sum(mul(maxPool2d(h, 2), wmax)), sum(mul(avgPool2d(h, 2, 1), wavg)));
    };
  const cases: Array<[Shape, Shape, number, number]> = [
    [[2, 3, 6, 6], [4, 3, 3, 3], 1, 1],
    [[1, 2, 9, 7], [3, 2, 3, 2], 2, 1],
    [[3, 1, 5, 6], [2, 1, 2, 2], 1, 0],
  ];
  for (const [xs, ws, stride, padding] of cases) {
    it(`value and gradients equal the reference backend's: x ${xs}, w ${ws}, stride ${stride}, padding ${padding}`, () => {
      const key = new Key(size(xs) + size(ws) + stride);
      const [kx, kw] = key.split(2);
      const x = kx!.uniform(xs, -1, 1, 'float32', reference),
        w = kw!.uniform(ws, -1, 1, 'float32', reference);
      const hs = KN.conv2d(alloc64, new Float64Array(size(xs)), xs, new Float64Array(size(ws)), ws, { stride, padding }).shape;
      const [, , OH, OW] = hs as [number, number, number, number];
      const wmax = new Key(1).uniform([hs[0]!, hs[1]!, Math.floor(OH / 2), Math.floor(OW / 2)], 0.5, 1.5, 'float32', reference);
      const wavg = new Key(2).uniform([hs[0]!, hs[1]!, OH - 1, OW - 1], 0.5, 1.5, 'float32', reference);
      const want = valueAndGrad(net(stride, padding, wmax, wavg))({ x, w });
      const got = valueAndGrad(net(stride, padding, toBackend(wmax, be), toBackend(wavg, be)))({ x: toBackend(x, be), w: toBackend(w, be) });
      expect(got.grads.x.backend).toBe(be);
      expect(got.grads.w.backend).toBe(be);
      expectClose(Float32Array.of(got.value.item()), [want.value.item()], 1e-5, 'loss');
      expectClose(got.grads.x.toTypedArray(), want.grads.x.toTypedArray(), 1e-5, 'dL/dx');
      expectClose(got.grads.w.toTypedArray(), want.grads.w.toTypedArray(), 1e-5, 'dL/dw');
    });
  }

  it('a conv → maxPool forward and backward moves nothing between host and GPU until the loss is read', () => {
    const x = toBackend(new Key(5).uniform([2, 3, 8, 8], -1, 1), be),
      w = toBackend(new Key(6).uniform([4, 3, 3, 3], -1, 1), be);
    const before = be.transfers();
    const r = valueAndGrad((p: { x: Tensor; w: Tensor }) => sum(maxPool2d(relu(conv2d(p.x, p.w, { padding: 1 })), 2)))({ x, w });
    const after = be.transfers();
    expect({ uploads: after.uploads - before.uploads, downloads: after.downloads - before.downloads }).toEqual({ uploads: 0, downloads: 0 });
    r.value.item();
    expect(be.transfers().downloads - after.downloads, 'the loss, and nothing else').toBe(1);
    expect(r.grads.w.backend).toBe(be);
  });
});
