/**
 * conv2d and pooling: forward values against a float64 recomputation written
 * independently here (nested arrays, the textbook formula), gradients against
 * central differences at O(ε²) on random shapes, strides and paddings, and NaN
 * propagation through max pooling.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as T from '../../src/core/index.js';
import type { Tensor } from '../../src/core/index.js';
import { expectAllClose, expectGradients, tensorArb } from '../../src/testing/index.js';
import { t64 } from '../helpers.js';

type N4 = number[][][][];

/** Σ of the output weighted by fixed distinct numbers, so every element's gradient matters. */
const weighted = (y: Tensor): Tensor =>
  T.sum(
    T.mul(
      y,
      t64(
        Array.from({ length: y.size }, (_, i) => Math.sin(i + 1) + 1.5),
        [...y.shape],
      ),
    ),
  );

const convRef = (x: N4, w: N4, stride: number, pad: number): N4 => {
  const [H, W, KH, KW] = [x[0]![0]!.length, x[0]![0]![0]!.length, w[0]![0]!.length, w[0]![0]![0]!.length];
  const OH = Math.floor((H + 2 * pad - KH) / stride) + 1,
    OW = Math.floor((W + 2 * pad - KW) / stride) + 1;
  return x.map((img) =>
    w.map((filt) =>
      Array.from({ length: OH }, (_, i) =>
        Array.from({ length: OW }, (_, j) => {
          let s = 0;
          filt.forEach((fc_, c) => {
            fc_.forEach((row, a) => {
              row.forEach((wv, b) => {
                const r = i * stride + a - pad,
                  q = j * stride + b - pad;
                if (r >= 0 && r < H && q >= 0 && q < W) s += img[c]![r]![q]! * wv;
              });
            });
          });
          return s;
        }),
      ),
    ),
  );
};

const poolRef = (x: N4, size: number, stride: number, how: 'max' | 'avg'): N4 =>
  x.map((img) =>
    img.map((ch) => {
      const OH = Math.floor((ch.length - size) / stride) + 1,
        OW = Math.floor((ch[0]!.length - size) / stride) + 1;
      return Array.from({ length: OH }, (_, i) =>
        Array.from({ length: OW }, (_, j) => {
          const win: number[] = [];
          for (let a = 0; a < size; a++) for (let b = 0; b < size; b++) win.push(ch[i * stride + a]![j * stride + b]!);
          return how === 'max' ? Math.max(...win) : win.reduce((p, q) => p + q, 0) / win.length;
        }),
      );
    }),
  );

/** Images and filters that fit: [n, c, h, w] and [f, c, k, k] with stride and padding. */
const convCase = fc
  .record({
    n: fc.integer({ min: 1, max: 2 }),
    c: fc.integer({ min: 1, max: 3 }),
    f: fc.integer({ min: 1, max: 3 }),
    h: fc.integer({ min: 3, max: 6 }),
    w: fc.integer({ min: 3, max: 6 }),
    k: fc.integer({ min: 1, max: 3 }),
    stride: fc.integer({ min: 1, max: 2 }),
    padding: fc.integer({ min: 0, max: 1 }),
  })
  .chain((s) => fc.tuple(fc.constant(s), tensorArb({ shape: [s.n, s.c, s.h, s.w] }), tensorArb({ shape: [s.f, s.c, s.k, s.k] })));

describe('conv2d (NCHW)', () => {
  it('equals the textbook sum, recomputed in float64', () => {
    fc.assert(
      fc.property(convCase, ([s, x, w]) => {
        const y = T.conv2d(x, w, { stride: s.stride, padding: s.padding });
        expectAllClose(y, convRef(x.toArray() as N4, w.toArray() as N4, s.stride, s.padding).flat(3), { atol: 1e-12 });
        expect(y.shape).toEqual([s.n, s.f, Math.floor((s.h + 2 * s.padding - s.k) / s.stride) + 1, Math.floor((s.w + 2 * s.padding - s.k) / s.stride) + 1]);
      }),
      { numRuns: 30 },
    );
  });

  it('gradients with respect to images and filters: central differences at O(ε²)', () => {
    fc.assert(
      fc.property(convCase, ([s, x, w]) => {
        expectGradients((p: { x: Tensor; w: Tensor }) => weighted(T.conv2d(p.x, p.w, { stride: s.stride, padding: s.padding })), { x, w });
      }),
      { numRuns: 20 },
    );
  });

  it('names the shapes when they do not fit', () => {
    expect(() => T.conv2d(T.zeros([1, 3, 4, 4]), T.zeros([2, 2, 3, 3]))).toThrow(
      /filters \[out, channels \/ groups, kh, kw\], out divisible by groups \(1\); got \[1, 3, 4, 4\] and \[2, 2, 3, 3\]/,
    );
    expect(() => T.conv2d(T.zeros([1, 1, 2, 2]), T.zeros([1, 1, 3, 3]))).toThrow(/do not fit images/);
  });
});

/** The definition with dilation d and groups g: out[n,f,i,j] = Σ over f's group's channels and taps of x[n, c, i·s + a·d − p, j·s + b·d − p] · w[f, c − group·C/g, a, b]. */
const convDilatedGroupedRef = (x: N4, w: N4, stride: number, pad: number, d: number, g: number): number[] => {
  const [C, H, W] = [x[0]!.length, x[0]![0]!.length, x[0]![0]![0]!.length];
  const [F, Cg, KH, KW] = [w.length, w[0]!.length, w[0]![0]!.length, w[0]![0]![0]!.length];
  const OH = Math.floor((H + 2 * pad - d * (KH - 1) - 1) / stride) + 1,
    OW = Math.floor((W + 2 * pad - d * (KW - 1) - 1) / stride) + 1;
  const out: number[] = [];
  for (const img of x)
    for (let f = 0; f < F; f++)
      for (let i = 0; i < OH; i++)
        for (let j = 0; j < OW; j++) {
          const group = Math.floor(f / (F / g));
          let s = 0;
          for (let cg = 0; cg < Cg; cg++)
            for (let a = 0; a < KH; a++)
              for (let b = 0; b < KW; b++) {
                const r = i * stride + a * d - pad,
                  q = j * stride + b * d - pad;
                if (r >= 0 && r < H && q >= 0 && q < W) s += img[group * Cg + cg]![r]![q]! * w[f]![cg]![a]![b]!;
              }
          out.push(s);
        }
  expect(C).toBe(Cg * g);
  return out;
};

describe('conv2d with dilation and groups (depthwise included)', () => {
  const dgCase = fc
    .record({
      n: fc.integer({ min: 1, max: 2 }),
      g: fc.integer({ min: 1, max: 3 }),
      cg: fc.integer({ min: 1, max: 2 }),
      fg: fc.integer({ min: 1, max: 2 }),
      h: fc.integer({ min: 4, max: 7 }),
      w: fc.integer({ min: 4, max: 7 }),
      k: fc.integer({ min: 1, max: 3 }),
      d: fc.integer({ min: 1, max: 3 }),
      stride: fc.integer({ min: 1, max: 2 }),
      padding: fc.integer({ min: 0, max: 2 }),
    })
    .filter((s) => s.h + 2 * s.padding - s.d * (s.k - 1) - 1 >= 0 && s.w + 2 * s.padding - s.d * (s.k - 1) - 1 >= 0)
    .chain((s) => fc.tuple(fc.constant(s), tensorArb({ shape: [s.n, s.g * s.cg, s.h, s.w] }), tensorArb({ shape: [s.g * s.fg, s.cg, s.k, s.k] })));
  it('equal the definition in float64, and their gradients converge at O(ε²)', () => {
    fc.assert(
      fc.property(dgCase, ([s, x, w]) => {
        const opts = { stride: s.stride, padding: s.padding, dilation: s.d, groups: s.g };
        const y = T.conv2d(x, w, opts);
        expectAllClose(y, convDilatedGroupedRef(x.toArray() as N4, w.toArray() as N4, s.stride, s.padding, s.d, s.g), { atol: 1e-12 });
        expectGradients((p: { x: Tensor; w: Tensor }) => weighted(T.conv2d(p.x, p.w, opts)), { x, w });
      }),
      { numRuns: 25 },
    );
  });
});

const poolCase = fc
  .record({
    n: fc.integer({ min: 1, max: 2 }),
    c: fc.integer({ min: 1, max: 2 }),
    h: fc.integer({ min: 2, max: 6 }),
    w: fc.integer({ min: 2, max: 6 }),
    size: fc.integer({ min: 1, max: 2 }),
    stride: fc.integer({ min: 1, max: 2 }),
  })
  .chain((s) =>
    fc.tuple(fc.constant(s), fc.integer()).map(([s2, seed]) => {
      // Distinct values, spread apart: each window's maximum is unique and stays so within ε.
      const n = s2.n * s2.c * s2.h * s2.w;
      const perm = new T.Key(seed).permutation(n);
      return [
        s2,
        t64(
          Array.from(perm, (p) => (p - n / 2) * 0.1),
          [s2.n, s2.c, s2.h, s2.w],
        ),
      ] as const;
    }),
  );

describe('max and average pooling', () => {
  for (const how of ['max', 'avg'] as const) {
    const op = how === 'max' ? T.maxPool2d : T.avgPool2d;
    it(`${how}Pool2d equals the window ${how} and its gradient matches central differences`, () => {
      fc.assert(
        fc.property(poolCase, ([s, x]) => {
          const y = op(x, s.size, s.stride);
          expectAllClose(y, poolRef(x.toArray() as N4, s.size, s.stride, how).flat(3), { atol: 1e-12 });
          expectGradients((p: Tensor) => weighted(op(p, s.size, s.stride)), x);
        }),
        { numRuns: 25 },
      );
    });
  }

  it('a NaN in a window makes that window NaN (and only that one)', () => {
    const x = t64([1, 2, NaN, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16], [1, 1, 4, 4]);
    expect(Array.from(T.maxPool2d(x, 2).toTypedArray())).toEqual([6, NaN, 14, 16]); // NaN at row 0, column 2: the second window
    expect(Array.from(T.avgPool2d(x, 2).toTypedArray()).map(Number.isNaN)).toEqual([false, true, false, false]);
  });
});
