/**
 * The gpujs backend's image kernel sources (gpujs-image.ts), run as plain
 * JavaScript (one call per thread index) against the host kernels of
 * kernels-nd.ts, in float64: the generated loops, bounds, taps and max
 * pooling's tie-break, checked without a GPU. test/core/gpujs-conv.test.ts runs
 * the same sources on WebGL.
 */
import { describe, expect, it } from 'vitest';
import * as KN from '../../src/core/kernels-nd.js';
import type { Alloc } from '../../src/core/kernels.js';
import {
  conv2dGradInputSource,
  conv2dGradWeightSource,
  conv2dOutShape,
  conv2dSource,
  pool2dGradSource,
  pool2dOutShape,
  pool2dSource,
} from '../../src/core/backends/gpujs-image.js';

type Shape = readonly number[];
const size = (s: Shape): number => s.reduce((p, d) => p * d, 1);
const alloc: Alloc = (dtype, n) => (dtype === 'float32' ? new Float32Array(n) : new Float64Array(n));

/** Every thread of a kernel source, run as JS. */
const runSource = (source: string, n: number, ...args: Float64Array[]): Float64Array => {
  // The kernel's source as gpu.js generates it, run as plain JavaScript: the point of this test (Function, not eval: no local scope).
  const f = new Function(`return ${source}`)() as (this: { thread: { x: number } }, ...a: Float64Array[]) => number;
  return Float64Array.from({ length: n }, (_, i) => f.call({ thread: { x: i } }, ...args));
};

let seed = 7;
const rand = (n: number): Float64Array =>
  Float64Array.from({ length: n }, () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return (seed / 2147483648) * 2 - 1;
  });
/** Small integers: many ties in every pooling window. */
const ints = (n: number, k: number): Float64Array => Float64Array.from(rand(n), (v) => Math.floor(((v + 1) / 2) * k));

const expectNear = (got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string): void => {
  expect(got.length, what).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const ok = Object.is(got[i], want[i]) || Math.abs(got[i]! - want[i]!) <= tol * (1 + Math.abs(want[i]!));
    if (!ok) expect(`element ${i}: got ${got[i]}, want ${want[i]}`, what).toBe('ok');
  }
};

/** [x shape, w shape, stride, padding]: stride 1 and 2, padding 0 and 1, non-square, C, F and N > 1, 1×1 and wide filters. */
const convCases: Array<[Shape, Shape, number, number]> = [
  [[1, 1, 4, 4], [1, 1, 3, 3], 1, 0],
  [[2, 3, 5, 4], [4, 3, 3, 3], 1, 1],
  [[2, 2, 7, 6], [3, 2, 3, 2], 2, 0],
  [[1, 3, 6, 7], [2, 3, 3, 3], 2, 1],
  [[3, 2, 5, 5], [2, 2, 1, 1], 1, 0],
  [[2, 1, 4, 6], [2, 1, 2, 4], 2, 1],
  [[2, 2, 5, 6], [3, 2, 1, 1], 2, 1], // stride > filter: pixels no output reads
];
/** [x shape, size, stride]: overlapping (stride < size), disjoint, and ragged edges. */
const poolCases: Array<[Shape, number, number]> = [
  [[1, 1, 4, 4], 2, 2],
  [[2, 3, 5, 6], 2, 2],
  [[2, 2, 5, 5], 3, 1],
  [[1, 2, 6, 7], 3, 2],
  [[2, 1, 3, 4], 1, 1],
  [[1, 2, 7, 8], 2, 3], // gaps between windows (stride > size)
];

describe('gpujs image kernel sources, run as JS, equal the host kernels', () => {
  for (const [xs, ws, stride, padding] of convCases) {
    it(`conv2d and both VJPs: x ${xs}, w ${ws}, stride ${stride}, padding ${padding}`, () => {
      const p = { stride, padding };
      const ys = conv2dOutShape(xs, ws, p);
      const x = rand(size(xs)),
        w = rand(size(ws)),
        ct = rand(size(ys));
      const y = KN.conv2d(alloc, x, xs, w, ws, p);
      expect(y.shape).toEqual(ys);
      expectNear(runSource(conv2dSource(xs, ws, p), size(ys), x, w), y.data, 1e-12, 'conv2d');
      expectNear(runSource(conv2dGradInputSource(xs, ws, p), size(xs), ct, w), KN.conv2dGradInput(alloc, ct, w, ws, xs, p, x).data, 1e-12, 'gradInput');
      expectNear(runSource(conv2dGradWeightSource(xs, ws, p), size(ws), ct, x), KN.conv2dGradWeight(alloc, ct, x, xs, ws, p, x).data, 1e-12, 'gradWeight');
    });
  }

  for (const [xs, sz, stride] of poolCases) {
    it(`pooling and its VJPs with ties: x ${xs}, size ${sz}, stride ${stride}`, () => {
      const p = { size: sz, stride };
      const ys = pool2dOutShape(xs, p);
      const x = ints(size(xs), 3),
        ct = rand(size(ys));
      expectNear(runSource(pool2dSource('max', xs, p), size(ys), x), KN.maxPool2d(alloc, x, xs, p).data, 0, 'maxPool2d');
      // Ties: exactly the host's choice of element gets each cotangent.
      expectNear(runSource(pool2dGradSource('max', xs, p), size(xs), ct, x), KN.maxPool2dGrad(alloc, ct, x, xs, p).data, 1e-15, 'maxPool2dGrad');
      expectNear(runSource(pool2dSource('avg', xs, p), size(ys), x), KN.avgPool2d(alloc, x, xs, p).data, 1e-15, 'avgPool2d');
      expectNear(runSource(pool2dGradSource('avg', xs, p), size(xs), ct), KN.avgPool2dGrad(alloc, ct, xs, p, x).data, 1e-15, 'avgPool2dGrad');
    });
  }

  it('max pooling propagates NaN and routes the gradient to the first NaN, as the host does', () => {
    const xs = [1, 1, 4, 4],
      p = { size: 2, stride: 1 };
    const x = ints(16, 3);
    x[5] = NaN;
    x[10] = NaN;
    const ct = rand(size(pool2dOutShape(xs, p)));
    expectNear(runSource(pool2dSource('max', xs, p), 9, x), KN.maxPool2d(alloc, x, xs, p).data, 0, 'maxPool2d NaN');
    expectNear(runSource(pool2dGradSource('max', xs, p), 16, ct, x), KN.maxPool2dGrad(alloc, ct, x, xs, p).data, 1e-15, 'maxPool2dGrad NaN');
  });
});
