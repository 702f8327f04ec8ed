/**
 * The fused batch normalization (batchNormalize, channelMoments and their
 * gradient kernels): values against a float64 recomputation written here from
 * the textbook formula over nested arrays, gradients against central
 * differences at O(ε²), float32 on the cpu backend against float64, and the
 * batchNorm layer against the composite it replaced (mean, sub, mul, rsqrtVar).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as T from '../../src/core/index.js';
import type { Tensor } from '../../src/core/index.js';
import { valueAndGrad } from '../../src/autodiff/index.js';
import { batchNorm } from '../../src/nn/index.js';
import { expectAllClose, expectGradients, tensorArb } from '../../src/testing/index.js';
import { t64 } from '../helpers.js';

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

/** x [N, C, S…] flattened, per channel: the values of channel c, in any order. */
const channelValues = (x: Tensor, c: number): number[] => {
  const [N, C] = [x.shape[0]!, x.shape[1]!],
    S = x.size / (N * C),
    v = x.toTypedArray();
  const out: number[] = [];
  for (let n = 0; n < N; n++) for (let j = 0; j < S; j++) out.push(v[(n * C + c) * S + j]!);
  return out;
};

/** The textbook: μ = Σx/M, σ² = Σ(x − μ)²/M, y = (x − μ)/√(σ² + eps)·g + b, element by element in float64. */
const reference = (x: Tensor, g: readonly number[], b: readonly number[], eps: number): { y: number[]; mean: number[]; variance: number[] } => {
  const [N, C] = [x.shape[0]!, x.shape[1]!],
    S = x.size / (N * C),
    v = x.toTypedArray();
  const mean: number[] = [],
    variance: number[] = [];
  for (let c = 0; c < C; c++) {
    const vals = channelValues(x, c);
    const m = vals.reduce((p, q) => p + q, 0) / vals.length;
    mean.push(m);
    variance.push(vals.reduce((p, q) => p + (q - m) ** 2, 0) / vals.length);
  }
  const y = Array.from(v, (xv, i) => {
    const c = Math.floor(i / S) % C;
    return ((xv - mean[c]!) / Math.sqrt(variance[c]! + eps)) * g[c]! + b[c]!;
  });
  return { y, mean, variance };
};

/** x [n, c] or [n, c, h, w] with gain and bias of [c]; at least two values per channel. */
const bnCase = fc
  .record({
    n: fc.integer({ min: 1, max: 3 }),
    c: fc.integer({ min: 1, max: 3 }),
    hw: fc.constantFrom<readonly number[]>([], [2, 2], [1, 3], [3, 2]),
    eps: fc.constantFrom(1e-5, 0.1),
  })
  .filter((s) => s.n * s.hw.reduce((a, d) => a * d, 1) >= 2)
  .chain((s) =>
    fc.tuple(
      fc.constant(s),
      tensorArb({ shape: [s.n, s.c, ...s.hw], min: -3, max: 3 }),
      tensorArb({ shape: [s.c], min: 0.5, max: 2 }),
      tensorArb({ shape: [s.c], min: -1, max: 1 }),
    ),
  );

describe('batchNormalize (fused)', () => {
  it('equals the textbook formula, recomputed in float64', () => {
    fc.assert(
      fc.property(bnCase, ([s, x, g, b]) => {
        const want = reference(x, Array.from(g.toTypedArray()), Array.from(b.toTypedArray()), s.eps);
        expectAllClose(T.batchNormalize(x, g, b, s.eps), want.y, { atol: 1e-12 });
        const m = T.channelMoments(x);
        expect(m.shape).toEqual([2, s.c]);
        expectAllClose(m, [...want.mean, ...want.variance], { atol: 1e-12 });
      }),
      { numRuns: 40 },
    );
  });

  it('gradients with respect to x, gain and bias (through the batch statistics): central differences at O(ε²)', () => {
    // Three or more values per channel and eps ≥ 0.01: with two nearly equal values and a tiny eps the
    // normalized output is a step, whose curvature no finite difference resolves (the gradient itself is
    // checked there too, against the composite, in the layer's test below).
    fc.assert(
      fc.property(
        bnCase.filter(([s, x]) => x.size / s.c >= 3),
        fc.constantFrom(0.01, 0.1),
        ([, x, g, b], eps) => {
          expectGradients((p: { x: Tensor; g: Tensor; b: Tensor }) => weighted(T.batchNormalize(p.x, p.g, p.b, eps)), { x, g, b });
        },
      ),
      { numRuns: 25 },
    );
  });

  it("channelMoments' gradient: central differences at O(ε²)", () => {
    fc.assert(
      fc.property(bnCase, ([, x]) => {
        expectGradients((p: Tensor) => weighted(T.channelMoments(p)), x);
      }),
      { numRuns: 20 },
    );
  });

  it('float32 on the cpu backend agrees with float64 (large planes, many channels)', () => {
    const cpu = T.backend('cpu');
    const x = new T.Key(3).normal([16, 8, 12, 12], 'float64', 0.5, 2);
    const g = new T.Key(4).uniform([8], 0.5, 2, 'float64'),
      b = new T.Key(5).uniform([8], -1, 1, 'float64');
    const ct = new T.Key(6).normal([16, 8, 12, 12], 'float64');
    const loss = (p: { x: Tensor; g: Tensor; b: Tensor }) =>
      T.sum(T.mul(T.batchNormalize(p.x, p.g, p.b), p.x.dtype === 'float64' ? ct : T.toBackend(T.cast(ct, 'float32'), cpu)));
    const want = valueAndGrad(loss)({ x, g, b });
    const on = (t: Tensor) => T.toBackend(T.cast(t, 'float32'), cpu);
    const got = valueAndGrad(loss)({ x: on(x), g: on(g), b: on(b) });
    expect(got.value.backend.name).toBe('cpu');
    expectAllClose(got.grads.x, want.grads.x.toTypedArray(), { atol: 1e-5, rtol: 1e-4 });
    expectAllClose(got.grads.g, want.grads.g.toTypedArray(), { atol: 1e-3, rtol: 1e-4 });
    expectAllClose(got.grads.b, want.grads.b.toTypedArray(), { atol: 1e-3, rtol: 1e-4 });
  });

  it('names the shapes when they do not fit', () => {
    expect(() => T.batchNormalize(T.zeros([4]), T.ones([4]), T.zeros([4]))).toThrow(/\[4\] should be \[batch, channels/);
    expect(() => T.batchNormalize(T.zeros([2, 3, 4, 4]), T.ones([4]), T.zeros([3]))).toThrow(/gain of shape \[4\] should be \[3\]/);
    expect(() => T.batchNormalize(T.zeros([2, 3]), T.ones([3]), T.zeros([3, 1]))).toThrow(/bias of shape \[3, 1\] should be \[3\]/);
  });
});

describe('the batchNorm layer', () => {
  /** The composite the layer used before the fused kernels: the same formula as separate ops. */
  const composite = (x: Tensor, g: Tensor, b: Tensor, eps: number): Tensor => {
    const axes = x.shape.map((_d, i) => i).filter((i) => i !== 1),
      stat = x.shape.map((d, i) => (i === 1 ? d : 1));
    const c = T.sub(x, T.mean(x, axes, true));
    const xhat = T.mul(c, T.rsqrtVar(T.mean(T.mul(c, c), axes, true), eps));
    return T.add(T.mul(xhat, T.reshape(g, stat)), T.reshape(b, stat));
  };

  it('trains like the composite: output, gradients and running statistics', () => {
    fc.assert(
      fc.property(bnCase, ([s, x, g, b]) => {
        const layer = batchNorm(s.c, { eps: s.eps, momentum: 0.3 });
        const state = { mean: new T.Key(1).normal([s.c], 'float64'), var: new T.Key(2).uniform([s.c], 0.5, 2, 'float64') };
        const f = (p: { g: Tensor; b: Tensor; x: Tensor }) => weighted(layer.forward!(p, p.x, { train: true, key: undefined, state }).y);
        const fused = valueAndGrad(f)({ g, b, x });
        const want = valueAndGrad((p: { g: Tensor; b: Tensor; x: Tensor }) => weighted(composite(p.x, p.g, p.b, s.eps)))({ g, b, x });
        expect(Math.abs(fused.value.item() - want.value.item())).toBeLessThan(1e-10);
        for (const k of ['g', 'b', 'x'] as const) expectAllClose(fused.grads[k], want.grads[k].toTypedArray(), { atol: 1e-10 });
        // Running statistics: r ← (1 − m)·r + m·batch, the batch variance unbiased.
        const next = layer.forward!({ g, b }, x, { train: true, key: undefined, state }).state;
        const ref = reference(x, Array.from(g.toTypedArray()), Array.from(b.toTypedArray()), s.eps),
          M = x.size / s.c;
        expectAllClose(
          next.mean,
          ref.mean.map((m, c) => 0.7 * state.mean.toTypedArray()[c]! + 0.3 * m),
          { atol: 1e-12 },
        );
        expectAllClose(
          next.var,
          ref.variance.map((v, c) => 0.7 * state.var.toTypedArray()[c]! + 0.3 * v * (M > 1 ? M / (M - 1) : 1)),
          { atol: 1e-12 },
        );
      }),
      { numRuns: 25 },
    );
  });

  it('eval mode normalizes with the running statistics', () => {
    fc.assert(
      fc.property(bnCase, ([s, x, g, b]) => {
        const layer = batchNorm(s.c, { eps: s.eps });
        const mean = Array.from({ length: s.c }, (_, c) => 0.3 * c - 0.2),
          variance = Array.from({ length: s.c }, (_, c) => 0.5 + c);
        const y = layer.forward!({ g, b }, x, { train: false, key: undefined, state: { mean: t64(mean, [s.c]), var: t64(variance, [s.c]) } }).y;
        const S = x.size / (s.n * s.c),
          gv = g.toTypedArray(),
          bv = b.toTypedArray();
        expectAllClose(
          y,
          Array.from(x.toTypedArray(), (v, i) => {
            const c = Math.floor(i / S) % s.c;
            return ((v - mean[c]!) / Math.sqrt(variance[c]! + s.eps)) * gv[c]! + bv[c]!;
          }),
          { atol: 1e-12 },
        );
      }),
      { numRuns: 25 },
    );
  });
});
