/**
 * The property-testing kit catches what it promises to: a wrong gradient by
 * tolerance, a slightly wrong one (inside a loose tolerance) by the O(ε²)
 * order check, and it names the worst element; the arbitraries give the
 * shapes, dtypes, ranges and tree structures asked for.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { customVjp, exp, fromArray, leaves, mul, sum, tanh, type Tensor } from '../../src/index.js';
import { expectAllClose, expectGradients, shapeArb, tensorArb, treeArb, unwrap } from '../../src/testing/index.js';

/** exp with a chosen VJP: exp(x)·(1 + bias), so bias = 0 is right and anything else is wrong. */
const expWithVjp = (bias: number) =>
  customVjp(
    'exp',
    ([x]: [Tensor]) => exp(x),
    (ct, [x]) => [mul(ct, mul(exp(x), 1 + bias))],
  );

const right = (values: number[]): Tensor => unwrap(fromArray(values, [values.length], 'float64'));

describe('expectGradients', () => {
  it('passes a right gradient, on random trees, and shows the ratio near 4', () => {
    fc.assert(
      fc.property(treeArb({ a: [2, 3], b: [[3]] } as const), (p) => {
        const f = (q: typeof p) => sum(mul(tanh(q.a), exp(q.b[0])));
        const rep = expectGradients(f, p);
        for (const o of rep.order) if (o.ratio !== undefined) expect(Math.abs(o.ratio - 4)).toBeLessThan(0.5);
      }),
      { numRuns: 20 },
    );
  });

  it('a gradient off by 10% fails the element-wise tolerance, naming the input and index', () => {
    const x = [0.3, -0.5, 1.2];
    const f = (p: Tensor) => sum(expWithVjp(0.1)(p));
    expect(() => expectGradients(f, right(x))).toThrow(/input \(root\) at index \[\d\]: numerical .* vs analytic/);
  });

  it('a gradient off by 1e-5 (relative) passes the default tolerance but fails the convergence order', () => {
    const f = (p: Tensor) => sum(expWithVjp(1e-5)(p));
    const x = right([0.3, -0.5, 1.2]);
    expect(() => expectGradients(f, x, { order: false })).not.toThrow();
    expect(() => expectGradients(f, x)).toThrow(/convergence order.*a ratio of \d+\.\d\d; O\(ε²\) needs about 4/);
    // The right VJP passes both.
    expect(() => expectGradients((p: Tensor) => sum(expWithVjp(0)(p)), x)).not.toThrow();
  });
});

describe('arbitraries', () => {
  it('tensorArb honours shape, dtype, range and the points to avoid', () => {
    fc.assert(
      fc.property(tensorArb({ minRank: 2, maxRank: 2, maxDim: 3, dtype: 'float32', min: -1, max: 1, avoid: [0], gap: 0.1 }), (t) => {
        expect(t.rank).toBe(2);
        expect(t.dtype).toBe('float32');
        for (const v of t.toTypedArray()) {
          expect(Math.abs(v)).toBeLessThanOrEqual(1.1);
          expect(Math.abs(v)).toBeGreaterThanOrEqual(0.1 - 1e-7);
        }
      }),
      { numRuns: 30 },
    );
    fc.assert(
      fc.property(shapeArb({ minRank: 0, maxRank: 4, maxDim: 2 }), (s) => {
        expect(s.length).toBeLessThanOrEqual(4);
        expect(s.every((d) => d >= 1 && d <= 2)).toBe(true);
      }),
    );
  });

  it('treeArb follows its template: records, arrays, shapes (scalars included)', () => {
    fc.assert(
      fc.property(treeArb({ w: [3, 2], layers: [{ g: [4] }, []] } as const), (t) => {
        expect(t.w.shape).toEqual([3, 2]);
        expect(t.layers[0].g.shape).toEqual([4]);
        expect(t.layers[1].shape).toEqual([]);
        expect(leaves(t)).toHaveLength(3);
      }),
      { numRuns: 10 },
    );
  });
});

describe('expectAllClose', () => {
  it('accepts values within tolerance and NaN against NaN, and names the worst element otherwise', () => {
    expectAllClose([1, NaN, 3], [1 + 1e-9, NaN, 3]);
    expect(() => expectAllClose([1, 2.1, 3.5], [1, 2, 3])).toThrow(/element 2: 3\.5 vs expected 3/);
    expect(() => expectAllClose([1, NaN], [1, 2])).toThrow(/element 1: NaN vs expected 2.*one is NaN/);
    expect(() => expectAllClose(right([1, 2]), right([1, 2, 3]))).toThrow(/shapes differ/);
  });
});
