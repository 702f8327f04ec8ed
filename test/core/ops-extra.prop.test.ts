/**
 * Indexing, joining, selection, comparisons, maximum/minimum/abs/pow/clip,
 * argmax and batched matmul: values against plain-array recomputations here,
 * gradients against float64 central differences at O(ε²) (expectGradients),
 * and NaN propagation through every elementwise one.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as T from '../../src/core/index.js';
import type { Tensor } from '../../src/core/index.js';
import { expectAllClose, expectGradients, tensorArb } from '../../src/testing/index.js';
import { t64 } from '../helpers.js';
import { grad } from '../../src/autodiff/index.js';

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
const vals = (t: Tensor) => Array.from(t.toTypedArray());
type Nest = number | Nest[];

/** A tensor of rank 1..3 and a valid box inside it. */
const boxCase = tensorArb({ minRank: 1, maxRank: 3, maxDim: 4 }).chain((x) =>
  fc.tuple(
    fc.constant(x),
    fc.tuple(...x.shape.map((d) => fc.integer({ min: 0, max: d - 1 }).chain((s) => fc.tuple(fc.constant(s), fc.integer({ min: 1, max: d - s }))))),
  ),
);

describe('slice and pad', () => {
  it('slice picks the box (recomputed with nested arrays) and its gradient converges', () => {
    fc.assert(
      fc.property(boxCase, ([x, box]) => {
        const starts = box.map((b) => b[0]),
          sizes = box.map((b) => b[1]);
        const pick = (a: Nest, ax: number): Nest =>
          ax === starts.length ? a : (a as Nest[]).slice(starts[ax]!, starts[ax]! + sizes[ax]!).map((c) => pick(c, ax + 1));
        expect(T.slice(x, starts, sizes).toArray()).toEqual(pick(x.toArray() as Nest, 0));
        expectGradients((p: Tensor) => weighted(T.slice(p, starts, sizes)), x);
      }),
      { numRuns: 30 },
    );
  });

  it('pad frames x with the value; slicing the frame off gives x back; gradients converge', () => {
    fc.assert(
      fc.property(
        tensorArb({ maxRank: 3 }).chain((x) =>
          fc.tuple(fc.constant(x), fc.tuple(...x.shape.map(() => fc.tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 2 }))))),
        ),
        ([x, w]) => {
          const y = T.pad(x, w, -7);
          expect(y.shape).toEqual(x.shape.map((d, a) => d + w[a]![0] + w[a]![1]));
          expect(
            vals(
              T.slice(
                y,
                w.map((p) => p[0]),
                [...x.shape],
              ),
            ),
          ).toEqual(vals(x));
          expect(vals(y).filter((v) => v === -7)).toHaveLength(y.size - x.size);
          expectGradients((p: Tensor) => weighted(T.pad(p, w)), x);
        },
      ),
      { numRuns: 30 },
    );
  });
});

describe('take, concat, stack, split', () => {
  it('take gathers rows with repeats; its gradient adds back into each index', () => {
    const x = t64([1, 2, 3, 4, 5, 6], [3, 2]);
    expect(T.take(x, [2, 0, 2], 0).toArray()).toEqual([
      [5, 6],
      [1, 2],
      [5, 6],
    ]);
    expect(T.take(x, [1], 1).toArray()).toEqual([[2], [4], [6]]);
    fc.assert(
      fc.property(tensorArb({ minRank: 2, maxRank: 3 }), fc.array(fc.nat(), { minLength: 1, maxLength: 5 }), (t, raw) => {
        const idx = raw.map((j) => j % t.shape[1]!);
        expectGradients((p: Tensor) => weighted(T.take(p, idx, 1)), t);
      }),
      { numRuns: 25 },
    );
    expect(() => T.take(x, [3])).toThrow(/index 3 at position 0 is outside 0\.\.2/);
  });

  it('concat, stack and split agree with array joins, invert each other, and pass gradients to every input', () => {
    fc.assert(
      fc.property(tensorArb({ shape: [2, 3] }), tensorArb({ shape: [2, 1] }), tensorArb({ shape: [2, 3] }), (a, b, c) => {
        const j = T.concat([a, b, c], 1);
        expect(j.toArray()).toEqual((a.toArray() as number[][]).map((r, i) => [...r, ...(b.toArray() as number[][])[i]!, ...(c.toArray() as number[][])[i]!]));
        const [a2, b2, c2] = T.split(j, [3, 1, 3], 1);
        expect([vals(a2!), vals(b2!), vals(c2!)]).toEqual([vals(a), vals(b), vals(c)]);
        expect(T.stack([a, c], 1).toArray()).toEqual((a.toArray() as number[][]).map((r, i) => [r, (c.toArray() as number[][])[i]]));
        expectGradients((p: { a: Tensor; b: Tensor; c: Tensor }) => weighted(T.tanh(T.concat([p.a, p.b, p.c], 1))), { a, b, c });
        expectGradients((p: { a: Tensor; c: Tensor }) => weighted(T.stack([p.a, p.c], 0)), { a, c });
        expectGradients((p: Tensor) => weighted(T.mul(T.split(p, 3, 1)[1]!, T.split(p, 3, 1)[2]!)), a);
      }),
      { numRuns: 20 },
    );
    expect(() => T.split(t64([1, 2, 3], [3]), 2)).toThrow(/cannot be split into 2 equal parts/);
  });
});

describe('where, comparisons, maximum, minimum, abs, pow, clip', () => {
  it('comparisons give 0/1 constants with NaN comparing false (true for notEqual)', () => {
    const a = t64([1, 2, NaN, 3], [4]),
      b = t64([2, 2, 1, NaN], [4]);
    expect(vals(T.greater(a, b))).toEqual([0, 0, 0, 0]);
    expect(vals(T.greaterEqual(a, b))).toEqual([0, 1, 0, 0]);
    expect(vals(T.less(a, b))).toEqual([1, 0, 0, 0]);
    expect(vals(T.lessEqual(a, 2))).toEqual([1, 1, 0, 0]);
    expect(vals(T.equal(a, b))).toEqual([0, 1, 0, 0]);
    expect(vals(T.notEqual(a, b))).toEqual([1, 0, 1, 1]);
  });

  it('where picks by condition (broadcasting) and sends each gradient to the chosen side only, NaN on the other side included', () => {
    const c = t64([1, 0, 1], [3]);
    expect(vals(T.where(c, t64([1, 2, 3], [3]), 9))).toEqual([1, 9, 3]);
    const g = grad((p: { a: Tensor; b: Tensor }) => T.sum(T.where(c, p.a, p.b)))({ a: t64([1, NaN, 3], [3]), b: t64([NaN, 5, 6], [3]) });
    expect([vals(g.a), vals(g.b)]).toEqual([
      [1, 0, 1],
      [0, 1, 0],
    ]);
    fc.assert(
      fc.property(tensorArb({ shape: [2, 3] }), tensorArb({ shape: [3] }), (a, b) => {
        const cond = T.greater(a, 0);
        expectGradients((p: { a: Tensor; b: Tensor }) => weighted(T.where(cond, T.tanh(p.a), T.mul(p.b, p.b))), { a, b });
      }),
      { numRuns: 20 },
    );
  });

  it('maximum, minimum, abs, pow and clip equal Math.*; their gradients converge away from ties and kinks', () => {
    fc.assert(
      fc.property(tensorArb({ shape: [3, 4], avoid: [0, 0.5, -0.5] }), tensorArb({ shape: [4], min: 0.3, max: 2 }), (x, y) => {
        const xs = vals(x),
          ys = vals(y);
        fc.pre(xs.every((v, i) => Math.abs(v - ys[i % 4]!) > 0.05));
        expectAllClose(
          T.maximum(x, y),
          xs.map((v, i) => Math.max(v, ys[i % 4]!)),
          { atol: 0 },
        );
        expectAllClose(
          T.minimum(x, y),
          xs.map((v, i) => Math.min(v, ys[i % 4]!)),
          { atol: 0 },
        );
        expectAllClose(T.abs(x), xs.map(Math.abs), { atol: 0 });
        expectAllClose(
          T.pow(y, 2.5),
          ys.map((v) => v ** 2.5),
          { atol: 1e-15 },
        );
        expectAllClose(
          T.clip(x, -0.5, 0.5),
          xs.map((v) => Math.min(Math.max(v, -0.5), 0.5)),
          { atol: 0 },
        );
        expectGradients((p: { x: Tensor; y: Tensor }) => weighted(T.add(T.maximum(p.x, p.y), T.minimum(p.x, p.y))), { x, y });
        expectGradients((p: Tensor) => weighted(T.add(T.abs(p), T.clip(p, -0.5, 0.5))), x);
        expectGradients((p: Tensor) => weighted(T.pow(p, 2.5)), y);
        expectGradients((p: Tensor) => weighted(T.pow(p, 3)), x);
      }),
      { numRuns: 25 },
    );
  });

  it('NaN propagates through maximum, minimum, abs, pow and clip (either operand)', () => {
    const x = t64([NaN, 1, -2], [3]),
      y = t64([0, NaN, 1], [3]);
    expect(vals(T.maximum(x, y)).map(Number.isNaN)).toEqual([true, true, false]);
    expect(vals(T.minimum(x, y)).map(Number.isNaN)).toEqual([true, true, false]);
    expect(vals(T.maximum(x, 0)).map(Number.isNaN)).toEqual([true, false, false]);
    expect(vals(T.abs(x)).map(Number.isNaN)).toEqual([true, false, false]);
    expect(vals(T.pow(x, 2)).map(Number.isNaN)).toEqual([true, false, false]);
    expect(vals(T.clip(x, -1, 1))).toEqual([NaN, 1, -1]);
  });
});

describe('argmax and batched matmul', () => {
  it('argmax along any axis: the first maximum, NaN counting as the largest', () => {
    const x = t64([1, 5, 5, 2, NaN, 0], [2, 3]);
    expect(vals(T.argmax(x, 1))).toEqual([1, 1]);
    expect(vals(T.argmax(x, 0))).toEqual([1, 1, 0]);
  });

  it('batchedMatmul equals each product recomputed, shared or batched b, and its gradients converge', () => {
    fc.assert(
      fc.property(tensorArb({ shape: [2, 3, 2, 4] }), tensorArb({ shape: [2, 3, 4, 3] }), tensorArb({ shape: [4, 3] }), (a, b, w) => {
        const y = T.batchedMatmul(a, b);
        expect(y.shape).toEqual([2, 3, 2, 3]);
        const A = a.toArray() as number[][][][],
          B = b.toArray() as number[][][][];
        const want = A.map((r, i) => r.map((m, j) => m.map((row) => [0, 1, 2].map((c) => row.reduce((s, v, k) => s + v * B[i]![j]![k]![c]!, 0)))));
        expectAllClose(y, want.flat(3), { atol: 1e-12 });
        expect(T.batchedMatmul(a, w).shape).toEqual([2, 3, 2, 3]);
        expectGradients((p: { a: Tensor; b: Tensor }) => weighted(T.batchedMatmul(p.a, p.b)), { a, b });
        expectGradients((p: { a: Tensor; w: Tensor }) => weighted(T.batchedMatmul(p.a, p.w)), { a, w });
      }),
      { numRuns: 10 },
    );
  });
});
