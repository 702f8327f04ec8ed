/**
 * Every primitive (and the composites) against central differences, on random
 * shapes and values: the tape's gradient is the independent reference's within
 * float64 tolerance.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { gradcheck } from '../../src/autodiff/index.js';
import * as T from '../../src/core/index.js';
import type { Tensor } from '../../src/core/index.js';
import { right, t64, tensorArb, valuesArb } from '../helpers.js';

const opts = { eps: 1e-6, atol: 1e-7, rtol: 1e-5 };
const runs = { numRuns: 25 };

/** Weighted sum of an op's output, so every output element's gradient matters and differs. */
const weighted = (y: Tensor): Tensor => {
  const w = t64(
    Array.from({ length: y.size }, (_, i) => Math.sin(i + 1) + 1.5),
    [...y.shape],
  );
  return T.sum(T.mul(y, w));
};

const unaryCases: Array<[string, (x: Tensor) => Tensor, { lo?: number; hi?: number; avoid?: number }]> = [
  ['neg', T.neg, {}],
  ['exp', T.exp, {}],
  ['log', T.log, { lo: 0.2, hi: 3 }],
  ['reciprocal', T.reciprocal, { lo: 0.3, hi: 3 }],
  ['sqrt', T.sqrt, { lo: 0.2, hi: 3 }],
  ['tanh', T.tanh, {}],
  ['sigmoid', T.sigmoid, { lo: -6, hi: 6 }],
  ['relu', T.relu, { avoid: 0 }],
  ['square', T.square, {}],
  ['sum', (x) => T.sum(x), {}],
  ['sum over last axis', (x) => T.sum(x, -1), {}],
  ['sum over first axis keepDims', (x) => T.sum(x, 0, true), {}],
  ['mean', (x) => T.mean(x, 0), {}],
  ['transpose', (x) => T.transpose(x), {}],
  ['reshape', (x) => T.reshape(x, [-1]), {}],
  ['logSumExp', (x) => T.logSumExp(x, -1), {}],
  ['softmax', (x) => T.softmax(x, -1), {}],
  ['logSoftmax', (x) => T.logSoftmax(x, 0), {}],
  ['sumOfSquares', T.sumOfSquares, {}],
];

describe('unary primitives and composites: tape gradient = central differences', () => {
  for (const [name, op, range] of unaryCases) {
    it(name, () => {
      fc.assert(
        fc.property(tensorArb(range), (x) => {
          right(gradcheck((p: Tensor) => weighted(op(p)), x, opts));
        }),
        runs,
      );
    });
  }

  it('max (values kept distinct so the maximum is unique)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 5 }), fc.integer(), (r, c, seed) => {
        // A permutation scaled apart: no ties, no kink within eps.
        const perm = new T.Key(seed).permutation(r * c);
        const x = t64(
          Array.from(perm, (v) => v * 0.1),
          [r, c],
        );
        right(gradcheck((p: Tensor) => weighted(T.max(p, 1)), x, opts));
        right(gradcheck((p: Tensor) => weighted(T.max(p)), x, opts));
      }),
      runs,
    );
  });
});

describe('binary primitives with broadcasting', () => {
  const pair = fc
    .tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 }), fc.constantFrom('full', 'row', 'col', 'scalar'))
    .chain(([r, c, kind]) => {
      const bShape = kind === 'full' ? [r, c] : kind === 'row' ? [c] : kind === 'col' ? [r, 1] : [];
      const bn = bShape.reduce((a, b) => a * b, 1);
      return fc.tuple(valuesArb(r * c), valuesArb(bn, 0.3, 2)).map(([a, b]) => [t64(a, [r, c]), t64(b, bShape)] as const);
    });
  const cases: Array<[string, (a: Tensor, b: Tensor) => Tensor]> = [
    ['add', T.add],
    ['sub', T.sub],
    ['mul', T.mul],
    ['div', T.div],
  ];
  for (const [name, op] of cases) {
    it(name, () => {
      fc.assert(
        fc.property(pair, ([a, b]) => {
          right(gradcheck((p: { a: Tensor; b: Tensor }) => weighted(op(p.a, p.b)), { a, b }, opts));
        }),
        runs,
      );
    });
  }

  it('matmul in all four transpose forms', () => {
    const mm = fc
      .tuple(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 5 }), fc.boolean(), fc.boolean())
      .chain(([m, k, n, ta, tb]) =>
        fc.tuple(valuesArb(m * k), valuesArb(k * n)).map(([a, b]) => ({
          a: t64(a, ta ? [k, m] : [m, k]),
          b: t64(b, tb ? [n, k] : [k, n]),
          ta,
          tb,
        })),
      );
    fc.assert(
      fc.property(mm, ({ a, b, ta, tb }) => {
        right(gradcheck((p: { a: Tensor; b: Tensor }) => weighted(T.matmul(p.a, p.b, { transA: ta, transB: tb })), { a, b }, opts));
      }),
      runs,
    );
  });

  it('softmax cross-entropy against integer labels and one-hot targets', () => {
    const arb = fc
      .tuple(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 2, max: 6 }))
      .chain(([n, c]) =>
        fc
          .tuple(valuesArb(n * c, -4, 4), fc.array(fc.integer({ min: 0, max: c - 1 }), { minLength: n, maxLength: n }))
          .map(([v, labels]) => ({ logits: t64(v, [n, c]), labels, c })),
      );
    fc.assert(
      fc.property(arb, ({ logits, labels, c }) => {
        right(gradcheck((p: Tensor) => T.softmaxCrossEntropy(p, labels), logits, opts));
        right(gradcheck((p: Tensor) => T.softmaxCrossEntropy(p, T.oneHot(labels, c, 'float64'), { reduction: 'sum' }), logits, opts));
      }),
      runs,
    );
  });
});

describe('random compositions', () => {
  const unaries = [T.tanh, T.sigmoid, T.exp, (x: Tensor) => T.relu(T.add(x, 0.0123)), T.neg, T.square] as const;
  it('chains of ops and a matmul on the tape agree with central differences', () => {
    const arb = fc.record({
      m: fc.integer({ min: 1, max: 4 }),
      k: fc.integer({ min: 1, max: 4 }),
      n: fc.integer({ min: 1, max: 4 }),
      chain: fc.array(fc.integer({ min: 0, max: unaries.length - 1 }), { minLength: 1, maxLength: 4 }),
      seed: fc.integer(),
    });
    fc.assert(
      fc.property(arb, ({ m, k, n, chain, seed }) => {
        const [k1, k2, k3] = new T.Key(seed).split(3);
        const params = { x: k1!.uniform([m, k], -1, 1, 'float64'), w: k2!.uniform([k, n], -1, 1, 'float64'), b: k3!.uniform([n], -1, 1, 'float64') };
        const f = (p: typeof params): Tensor => {
          let h = T.add(T.matmul(p.x, p.w), p.b);
          for (const c of chain) h = unaries[c]!(T.mul(h, 0.5));
          // Reuse a value twice so cotangents accumulate on the tape.
          return T.add(T.sum(T.mul(h, h)), T.sum(T.mul(h, p.b)));
        };
        // relu's kink: skip draws that land within eps of it.
        const pre = T.add(T.matmul(params.x, params.w), params.b).toTypedArray();
        fc.pre(chain.every((c) => c !== 3) || pre.every((v) => Math.abs(v * 0.5 + 0.0123) > 1e-3));
        right(gradcheck(f, params, { ...opts, atol: 1e-6 }));
      }),
      { numRuns: 40 },
    );
  });
});

describe('finite differences converge at O(eps²)', () => {
  it('halving eps cuts the central-difference error by about 4x on smooth ops', () => {
    const x = t64([0.3, -0.7, 1.1, 0.25, -1.3, 0.8], [2, 3]);
    const w = t64([0.5, -1, 2], [3, 1]);
    const f = (p: Tensor): Tensor => T.sum(T.tanh(T.matmul(T.exp(T.mul(p, 0.5)), w)));
    const g = right(gradcheck(f, x, opts)).comparisons.map((c) => c.analytic);
    // Central-difference error against the tape's exact gradient, for eps and eps/2.
    const errAt = (eps: number): number => {
      const r = gradcheck(f, x, { eps, atol: 1, rtol: 0 });
      const comps = right(r).comparisons;
      return Math.max(...comps.map((c, i) => Math.abs(c.numerical - g[i]!)));
    };
    const ratios = [1e-2, 5e-3, 2.5e-3].map((eps) => errAt(eps) / errAt(eps / 2));
    for (const r of ratios) {
      expect(r).toBeGreaterThan(3.5);
      expect(r).toBeLessThan(4.5);
    }
  });
});
