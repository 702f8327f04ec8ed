/**
 * The everyday ops (src/core/ops-everyday.ts and the numpy-semantics changes in
 * ops.ts) against float64 references written here with plain loops, NumPy's
 * semantics spelled out (never the op itself), their gradients against central
 * differences at O(ε²) (expectGradients), and one-line errors for bad input
 * from JavaScript. The primitives among them are also checked under every
 * transformation in test/autodiff/transforms.prop.test.ts.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as T from '../../src/core/index.js';
import type { Tensor } from '../../src/core/index.js';
import { expectGradients, tensorArb } from '../../src/testing/index.js';
import { expectAllClose, t64 } from '../helpers.js';

const vals = (t: Tensor) => Array.from(t.toTypedArray());
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
const size = (s: readonly number[]) => s.reduce((p, d) => p * d, 1);
const unravel = (i: number, s: readonly number[]): number[] => {
  const out = new Array<number>(s.length);
  for (let a = s.length - 1; a >= 0; a--) {
    out[a] = i % s[a]!;
    i = Math.floor(i / s[a]!);
  }
  return out;
};
const ravel = (idx: readonly number[], s: readonly number[]): number => idx.reduce((o, v, a) => o * s[a]! + v, 0);
/** Distinct values (no ties: finite differences of max-like ops stay on one side). */
const distinctArb = (o: { minRank?: number; maxRank?: number } = {}) =>
  tensorArb({ minRank: o.minRank ?? 1, maxRank: o.maxRank ?? 3, maxDim: 4 }).map((x) => {
    const v = vals(x).map((u, i) => u + i * 1e-3);
    return t64(
      v.map((u, i) => u + 0.05 * i),
      [...x.shape],
    );
  });
const withAxis = (x: Tensor) => fc.tuple(fc.constant(x), fc.integer({ min: 0, max: x.rank - 1 }));

/** The lines of x along `axis`: for each position of the other axes, the flat indices along it. */
const lines = (s: readonly number[], axis: number): number[][] => {
  const others = s.map((d, a) => (a === axis ? 1 : d));
  return Array.from({ length: size(others) }, (_, o) => {
    const base = unravel(o, others);
    return Array.from({ length: s[axis]! }, (_, j) =>
      ravel(
        base.map((v, a) => (a === axis ? j : v)),
        s,
      ),
    );
  });
};

describe('reductions: min, argmin, prod, variance, std', () => {
  it('equal loops over each line, and their gradients converge at O(ε²)', () => {
    fc.assert(
      fc.property(distinctArb().chain(withAxis), ([x, axis]) => {
        const v = vals(x);
        const L = lines(x.shape, axis).map((l) => l.map((i) => v[i]!));
        expect(vals(T.min(x, axis))).toEqual(L.map((l) => Math.min(...l)));
        expect(vals(T.argmin(x, axis))).toEqual(L.map((l) => l.indexOf(Math.min(...l))));
        expectAllClose(
          vals(T.prod(x, axis)),
          L.map((l) => l.reduce((p, u) => p * u, 1)),
          1e-12,
          1e-12,
        );
        const mean = (l: number[]) => l.reduce((p, u) => p + u, 0) / l.length;
        const vr = (l: number[], ddof: number) => l.reduce((p, u) => p + (u - mean(l)) ** 2, 0) / (l.length - ddof);
        expectAllClose(
          vals(T.variance(x, axis)),
          L.map((l) => vr(l, 0)),
          1e-12,
          1e-10,
        );
        if (x.shape[axis]! > 1)
          expectAllClose(
            vals(T.std(x, axis, { ddof: 1 })),
            L.map((l) => Math.sqrt(vr(l, 1))),
            1e-12,
            1e-10,
          );
        expect(T.min(x, axis, true).shape).toEqual(x.shape.map((d, a) => (a === axis ? 1 : d)));
        expectGradients((p: Tensor) => weighted(T.min(p, axis)), x);
        expectGradients((p: Tensor) => weighted(T.prod(p, axis)), x);
        expectGradients((p: Tensor) => weighted(T.variance(p, axis)), x);
      }),
      { numRuns: 25 },
    );
  });

  it('with no axis they reduce everything, argmin into the flattened tensor (numpy), and prod is 1 over nothing', () => {
    const x = t64([3, -1, 2, -1, 5, 0], [2, 3]);
    expect(T.min(x).item()).toBe(-1);
    expect(T.argmin(x).item()).toBe(1);
    expect(T.argmax(x).item()).toBe(4);
    expect(T.prod(x).item()).toBe(0);
    expect(T.prod(T.zeros([2, 0], 'float64'), 1).toArray()).toEqual([1, 1]);
    expect(T.argmin(t64([1, NaN, NaN], [3])).item()).toBe(1); // NaN first, as numpy
  });

  it("prod's gradient at zeros is the product of the others (no division by x)", () => {
    const x = t64([0, 2, 3, 0, 0, 5, 1, 4], [2, 4]);
    expectGradients((p: Tensor) => weighted(T.prod(p, 1)), x);
    const g = vals(T.mul(T.prod(x, 1), 0)); // values: [0, 0]
    expect(g).toEqual([0, 0]);
  });
});

describe('shapes: squeeze, unsqueeze, flip, tile, repeat, stridedSlice', () => {
  it('flip reverses each line; squeeze and unsqueeze only move length-1 axes', () => {
    fc.assert(
      fc.property(distinctArb().chain(withAxis), ([x, axis]) => {
        const v = vals(x);
        const want = new Array<number>(v.length);
        for (let i = 0; i < v.length; i++) {
          const ix = unravel(i, x.shape);
          ix[axis] = x.shape[axis]! - 1 - ix[axis]!;
          want[ravel(ix, x.shape)] = v[i]!;
        }
        expect(vals(T.flip(x, axis))).toEqual(want);
        expect(vals(T.flip(T.flip(x)))).toEqual(v);
        const u = T.unsqueeze(x, axis);
        expect(u.shape).toEqual([...x.shape.slice(0, axis), 1, ...x.shape.slice(axis)]);
        expect(T.squeeze(u, axis).shape).toEqual(x.shape);
        expect(T.squeeze(x).shape).toEqual(x.shape.filter((d) => d !== 1));
        expectGradients((p: Tensor) => weighted(T.flip(p, axis)), x);
      }),
      { numRuns: 20 },
    );
  });

  it("tile: out[i] = x[i mod shape] (numpy's tile, reps and shape padded with leading 1s)", () => {
    fc.assert(
      fc.property(tensorArb({ minRank: 1, maxRank: 2, maxDim: 3 }), fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 3 }), (x, reps) => {
        const rank = Math.max(x.rank, reps.length);
        const s = [...new Array<number>(rank - x.rank).fill(1), ...x.shape];
        const r = [...new Array<number>(rank - reps.length).fill(1), ...reps];
        const os = s.map((d, i) => d * r[i]!);
        const v = vals(x);
        const want = Array.from(
          { length: size(os) },
          (_, i) =>
            v[
              ravel(
                unravel(i, os).map((j, a) => j % s[a]!),
                s,
              )
            ]!,
        );
        const y = T.tile(x, reps);
        expect(y.shape).toEqual(os);
        expect(vals(y)).toEqual(want);
        if (y.size > 0) expectGradients((p: Tensor) => weighted(T.tile(p, reps)), x);
      }),
      { numRuns: 20 },
    );
  });

  it('repeat: each element n times along the axis (or per-element counts; flattened with no axis)', () => {
    fc.assert(
      fc.property(tensorArb({ minRank: 1, maxRank: 3, maxDim: 3 }).chain(withAxis), fc.integer({ min: 0, max: 3 }), ([x, axis], n) => {
        const v = vals(x);
        const os = x.shape.map((d, a) => (a === axis ? d * n : d));
        const want = Array.from({ length: size(os) }, (_, i) => {
          const ix = unravel(i, os);
          ix[axis] = Math.floor(ix[axis]! / n);
          return v[ravel(ix, x.shape)]!;
        });
        expect(vals(T.repeat(x, n, axis))).toEqual(want);
        expect(vals(T.repeat(x, n))).toEqual(v.flatMap((u) => new Array<number>(n).fill(u)));
        const counts = Array.from({ length: x.shape[axis]! }, (_, j) => (j + n) % 3);
        const rows = lines(x.shape, axis);
        const byLine = rows.map((l) => l.flatMap((i, j) => new Array<number>(counts[j]!).fill(v[i]!)));
        const got = T.repeat(x, counts, axis);
        // Compare line by line: the repeated axis holds each line's values, counts[j] times each.
        for (const [k, l] of lines(got.shape, axis).entries()) expect(l.map((i) => vals(got)[i]!)).toEqual(byLine[k]);
        if (n > 0) expectGradients((p: Tensor) => weighted(T.repeat(p, n, axis)), x);
      }),
      { numRuns: 20 },
    );
  });

  it("stridedSlice follows Python's start:stop:step (negative starts and steps included)", () => {
    const pick = (n: number, start: number | undefined, stop: number | undefined, step: number): number[] => {
      // Python's rule, by enumeration: every i in range(n) that range(start', stop', step) would visit.
      const norm = (v: number | undefined, d: number) => (v === undefined ? d : v < 0 ? v + n : v);
      const out: number[] = [];
      if (step > 0) {
        const b = Math.max(0, norm(start, 0)),
          e = Math.min(n, norm(stop, n));
        for (let i = 0; i < n; i++) if (i >= b && i < e && (i - b) % step === 0) out.push(i);
      } else {
        const b = Math.min(n - 1, norm(start, n - 1)),
          e = stop === undefined ? -1 : Math.max(-1, norm(stop, -1));
        for (let i = n - 1; i >= 0; i--) if (i <= b && i > e && (b - i) % -step === 0) out.push(i);
      }
      return out;
    };
    const opt = fc.option(fc.integer({ min: -6, max: 6 }), { nil: undefined });
    fc.assert(
      fc.property(
        tensorArb({ minRank: 1, maxRank: 2, maxDim: 5 }),
        opt,
        opt,
        fc.integer({ min: -3, max: 3 }).filter((s) => s !== 0),
        (x, start, stop, step) => {
          const idx = pick(x.shape[0]!, start, stop, step);
          const y = T.stridedSlice(x, [{ ...(start === undefined ? {} : { start }), ...(stop === undefined ? {} : { stop }), step }]);
          expect(y.shape).toEqual([idx.length, ...x.shape.slice(1)]);
          const inner = size(x.shape.slice(1)),
            v = vals(x);
          expect(vals(y)).toEqual(idx.flatMap((i) => v.slice(i * inner, (i + 1) * inner)));
          if (y.size > 0) expectGradients((p: Tensor) => weighted(T.stridedSlice(p, [{ ...(start === undefined ? {} : { start }), step }])), x);
        },
      ),
      { numRuns: 40 },
    );
    const x = t64([0, 1, 2, 3, 4, 5], [2, 3]);
    expect(T.slice(x, [-1, -2], [1, 2]).toArray()).toEqual([[4, 5]]);
    expect(T.stridedSlice(x, [{ step: -1 }, { start: -1, step: -2 }]).toArray()).toEqual([
      [5, 3],
      [2, 0],
    ]);
  });
});

describe('constructors: arange, linspace, eye', () => {
  it('as numpy: values, lengths, endpoint, diagonals', () => {
    expect(vals(T.arange(4))).toEqual([0, 1, 2, 3]);
    expect(vals(T.arange(2, -1, -1, { dtype: 'float64' }))).toEqual([2, 1, 0]);
    expect(vals(T.arange(0, 1, 0.3, { dtype: 'float64' }))).toEqual([0, 0.3, 0.6, 0.8999999999999999]);
    expect(T.arange(3, 3).size).toBe(0);
    expect(vals(T.linspace(0, 1, 5, { dtype: 'float64' }))).toEqual([0, 0.25, 0.5, 0.75, 1]);
    expect(vals(T.linspace(0, 1, 4, { endpoint: false, dtype: 'float64' }))).toEqual([0, 0.25, 0.5, 0.75]);
    expect(vals(T.linspace(2, 3, 1))).toEqual([2]);
    expect(T.eye(3, 2, -1).toArray()).toEqual([
      [0, 0],
      [1, 0],
      [0, 1],
    ]);
    expect(T.eye(2).toArray()).toEqual([
      [1, 0],
      [0, 1],
    ]);
  });
});

describe('scans: cumsum, cumprod', () => {
  it('equal running sums and products of each line (float64 loops), and their gradients converge', () => {
    fc.assert(
      fc.property(tensorArb({ minRank: 1, maxRank: 3, maxDim: 6 }).chain(withAxis), ([x, axis]) => {
        const v = vals(x);
        const s = new Array<number>(v.length),
          p = new Array<number>(v.length);
        for (const l of lines(x.shape, axis)) {
          let a = 0,
            m = 1;
          for (const i of l) {
            a += v[i]!;
            m *= v[i]!;
            s[i] = a;
            p[i] = m;
          }
        }
        expectAllClose(vals(T.cumsum(x, axis)), s, 1e-12, 1e-12);
        expectAllClose(vals(T.cumprod(x, axis)), p, 1e-12, 1e-12);
        expectGradients((q: Tensor) => weighted(T.cumsum(q, axis)), x);
        expectGradients((q: Tensor) => weighted(T.cumprod(q, axis)), x);
      }),
      { numRuns: 25 },
    );
    expect(vals(T.cumsum(t64([1, 2, 3, 4], [2, 2])))).toEqual([1, 3, 6, 10]); // no axis: flattened, as numpy
  });
});

describe('sorting: sort, argsort, topk', () => {
  it('sort is argsort applied, in order, a permutation, stable on ties, NaN last (first descending)', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(-1, 0, 0.5, 2, Number.NaN), { minLength: 1, maxLength: 12 }), fc.boolean(), (v, descending) => {
        const x = t64(v, [v.length]);
        const idx = vals(T.argsort(x, 0, { descending }));
        expect([...idx].sort((a, b) => a - b)).toEqual(v.map((_u, i) => i));
        const key = (u: number) => (Number.isNaN(u) ? (descending ? -Infinity : Infinity) : descending ? -u : u);
        for (let i = 1; i < idx.length; i++) {
          const a = key(v[idx[i - 1]!]!),
            b = key(v[idx[i]!]!);
          expect(a <= b).toBe(true);
          if (a === b) expect(idx[i - 1]! < idx[i]!).toBe(true); // stable
        }
        expect(vals(T.sort(x, 0, { descending }))).toEqual(idx.map((i) => v[i]!));
        const k = Math.ceil(v.length / 2);
        const top = T.topk(x, k);
        expect(vals(top.indices)).toEqual(vals(T.argsort(x, 0, { descending: true })).slice(0, k));
      }),
      { numRuns: 60 },
    );
  });

  it('along any axis, with gradients flowing back to each value', () => {
    fc.assert(
      fc.property(distinctArb().chain(withAxis), ([x, axis]) => {
        const v = vals(x);
        const got = vals(T.sort(x, axis));
        for (const l of lines(x.shape, axis)) expect(l.map((i) => got[i]!)).toEqual(l.map((i) => v[i]!).sort((a, b) => a - b));
        expectGradients((p: Tensor) => weighted(T.sort(p, axis)), x);
        expectGradients((p: Tensor) => weighted(T.topk(p, 1, axis).values), x);
      }),
      { numRuns: 20 },
    );
  });
});

describe('indexing by a tensor: gather, scatterAdd', () => {
  const indexCase = distinctArb()
    .chain(withAxis)
    .chain(([x, axis]) =>
      fc.integer({ min: 1, max: 4 }).chain((m) => {
        const is = x.shape.map((d, a) => (a === axis ? m : d));
        return fc.array(fc.integer({ min: 0, max: x.shape[axis]! - 1 }), { minLength: size(is), maxLength: size(is) }).map((idx) => ({ x, axis, is, idx }));
      }),
    );

  it("gather is numpy's take_along_axis and scatterAdd torch's scatter_add (loops over multi-indices); gradients converge", () => {
    fc.assert(
      fc.property(indexCase, ({ x, axis, is, idx }) => {
        const v = vals(x),
          I = t64(idx, is);
        const g = Array.from({ length: size(is) }, (_, o) => {
          const ix = unravel(o, is);
          ix[axis] = idx[o]!;
          return v[ravel(ix, x.shape)]!;
        });
        expect(vals(T.gather(x, I, axis))).toEqual(g);
        const src = t64(
          idx.map((_u, i) => i + 0.5),
          is,
        );
        const acc = [...v];
        idx.forEach((j, o) => {
          const ix = unravel(o, is);
          ix[axis] = j;
          acc[ravel(ix, x.shape)]! += o + 0.5;
        });
        expectAllClose(vals(T.scatterAdd(x, I, src, axis)), acc, 1e-12, 1e-12);
        expectGradients((p: Tensor) => weighted(T.gather(p, I, axis)), x);
        expectGradients((p: { b: Tensor; s: Tensor }) => weighted(T.scatterAdd(p.b, I, p.s, axis)), { b: x, s: src });
      }),
      { numRuns: 25 },
    );
  });

  it('negative indices count from the end; out of range is one line naming the index', () => {
    const x = t64([1, 2, 3, 4, 5, 6], [2, 3]);
    expect(T.gather(x, t64([-1, 0], [2, 1]), 1).toArray()).toEqual([[3], [4]]);
    expect(() => T.gather(x, t64([3, 0], [2, 1]), 1)).toThrow(/^gather: index 3 is not an integer in -3\.\.2 \(axis 1 has length 3\)$/);
    expect(() => T.gather(x, t64([0.5, 0], [2, 1]), 1)).toThrow(/index 0\.5 is not an integer/);
    expect(() => T.gather(x, [0, 1] as never, 1)).toThrow(/^gather: indices must be a Tensor of integers/);
    expect(() => T.gather(x, t64([0], [1]), 1)).toThrow(/must have the rank of \[2, 3\]/);
  });
});

describe('einsum', () => {
  /** einsum by its definition: a sum over every assignment of the labels. */
  const byLoops = (spec: string, ops: readonly Tensor[]): { shape: number[]; values: number[] } => {
    const [lhs, out] = spec.split('->') as [string, string];
    const ins = lhs.split(',');
    const dims = new Map<string, number>();
    for (const [i, l] of ins.entries()) for (const [a, c] of [...l].entries()) dims.set(c, ops[i]!.shape[a]!);
    const labels = [...dims.keys()];
    const shape = [...out].map((c) => dims.get(c)!);
    const values = new Array<number>(size(shape)).fill(0);
    const data = ops.map(vals);
    const all = labels.map((c) => dims.get(c)!);
    for (let i = 0; i < size(all); i++) {
      const at = new Map(unravel(i, all).map((v, k) => [labels[k]!, v] as const));
      let p = 1;
      ins.forEach((l, k) => {
        p *=
          data[k]![
            ravel(
              [...l].map((c) => at.get(c)!),
              ops[k]!.shape,
            )
          ]!;
      });
      values[
        ravel(
          [...out].map((c) => at.get(c)!),
          shape,
        )
      ]! += p;
    }
    return { shape, values };
  };
  const specs = [
    'ij,jk->ik',
    'bij,bjk->bik',
    'ij->ji',
    'ij->',
    'i,j->ij',
    'ij,ij->i',
    'ijk,jl->lik',
    'ab,bc,cd->ad',
    'abc,cd->',
    'i,i->',
    'ii->i',
    'ii->',
    'iji,j->ij',
    'bii,bi->b',
  ];
  it.each(specs)('%s equals the sum over every label assignment, and its gradients converge', (spec) => {
    const ins = spec.split('->')[0]!.split(',');
    const dims: Record<string, number> = { a: 2, b: 3, c: 2, d: 3, i: 3, j: 2, k: 4, l: 2 };
    fc.assert(
      fc.property(fc.tuple(...ins.map((l) => tensorArb({ shape: [...l].map((c) => dims[c]!) }))), (ops) => {
        const want = byLoops(spec, ops);
        const got = T.einsum(spec, ...ops);
        expect(got.shape).toEqual(want.shape);
        expectAllClose(vals(got), want.values, 1e-12, 1e-12);
        expectGradients((ps: Tensor[]) => weighted(T.einsum(spec, ...ps)), [...ops]);
      }),
      { numRuns: 5 },
    );
  });
  it("the implicit form sums repeated labels and orders the rest alphabetically (numpy's rule); bad specs are one line", () => {
    const a = t64([1, 2, 3, 4, 5, 6], [2, 3]),
      b = t64([1, 0, 2, 1, 0, 3], [3, 2]);
    expect(T.einsum('ij,jk', a, b).toArray()).toEqual(T.matmul(a, b).toArray());
    expect(T.einsum('ji', a).shape).toEqual([3, 2]);
    expect(T.einsum('ii', t64([1, 2, 3, 4], [2, 2])).item()).toBe(5); // implicit: a trace
    expect(() => T.einsum('ii->i', T.zeros([2, 3]))).toThrow(/^einsum: label 'i' has length 2 in one operand and 3 in operand 0$/);
    expect(() => T.einsum('ij,jk->ik', a, a)).toThrow(/^einsum: label 'j' has length 3 in one operand and 2 in operand 1$/);
    expect(() => T.einsum('ij->ik', a)).toThrow(/^einsum: output label 'k' appears in no operand$/);
    expect(() => T.einsum('ij', a, b)).toThrow(/names 1 operand, got 2/);
    expect(() => T.einsum('i...', a)).toThrow(/ellipses are not supported/);
  });
});

describe("matmul with numpy's semantics", () => {
  /** numpy.matmul by loops: vectors promoted, batch axes broadcast. */
  const npMatmul = (a: Tensor, b: Tensor): { shape: number[]; values: number[] } => {
    const A = a.rank === 1 ? [1, a.shape[0]!] : [...a.shape],
      B = b.rank === 1 ? [b.shape[0]!, 1] : [...b.shape];
    const [m, k] = A.slice(-2) as [number, number],
      n = B[B.length - 1]!;
    const ba = A.slice(0, -2),
      bb = B.slice(0, -2),
      r = Math.max(ba.length, bb.length);
    const pa = [...new Array<number>(r - ba.length).fill(1), ...ba],
      pb = [...new Array<number>(r - bb.length).fill(1), ...bb];
    const batch = pa.map((d, i) => Math.max(d, pb[i]!));
    const va = vals(a),
      vb = vals(b);
    const values: number[] = [];
    for (let t = 0; t < size(batch); t++) {
      const bi = unravel(t, batch);
      const oa =
          ravel(
            bi.map((v, i) => (pa[i] === 1 ? 0 : v)),
            pa,
          ) *
          m *
          k,
        ob =
          ravel(
            bi.map((v, i) => (pb[i] === 1 ? 0 : v)),
            pb,
          ) *
          k *
          n;
      for (let i = 0; i < m; i++)
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let p = 0; p < k; p++) s += va[oa + i * k + p]! * vb[ob + p * n + j]!;
          values.push(s);
        }
    }
    const shape = [...batch, ...(a.rank === 1 ? [] : [m]), ...(b.rank === 1 ? [] : [n])];
    return { shape, values };
  };
  const batchArb = fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 2 });
  it('vectors, stacks, and batch axes broadcast (a batch of 1 included), with gradients', () => {
    fc.assert(
      fc.property(
        batchArb,
        batchArb,
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 3 }),
        fc.boolean(),
        fc.boolean(),
        (ba, bb, m, k, n, va, vb) => {
          // Make the two batches broadcastable: where both have an axis, one of them is 1 or they agree.
          const r = Math.min(ba.length, bb.length);
          const bb2 = bb.map((d, i) => {
            const j = i - (bb.length - r),
              ai = ba.length - r + j;
            return j >= 0 && ba[ai] !== 1 && d !== 1 ? ba[ai]! : d;
          });
          const as = va ? [k] : [...ba, m, k],
            bs = vb ? [k] : [...bb2, k, n];
          const a = t64(
              Array.from({ length: size(as) }, (_, i) => Math.cos(i + m)),
              as,
            ),
            b = t64(
              Array.from({ length: size(bs) }, (_, i) => Math.sin(i + n)),
              bs,
            );
          const want = npMatmul(a, b);
          const got = T.matmul(a, b);
          expect(got.shape).toEqual(want.shape);
          expectAllClose(vals(got), want.values, 1e-12, 1e-12);
          expectGradients((p: { a: Tensor; b: Tensor }) => weighted(T.matmul(p.a, p.b)), { a, b });
        },
      ),
      { numRuns: 40 },
    );
  });
  it('refuses scalars, mismatched inner lengths and batches that do not broadcast in one line', () => {
    expect(() => T.matmul(T.scalar(2), T.zeros([2]))).toThrow(/^matmul: a scalar has no matrix product \(use mul\)/);
    expect(() => T.matmul(T.zeros([2, 3, 4]), T.zeros([3, 4, 2]))).toThrow(
      /^batchedMatmul: \[2, 3, 4\] · \[3, 4, 2\]: batch axes \[2\] and \[3\] do not broadcast$/,
    );
    expect(() => T.matmul(T.zeros([3]), T.zeros([2]))).toThrow(/inner lengths 3 and 2 differ/);
    expect(() => T.matmul(T.zeros([2, 2]), T.zeros([2, 2]), { trans: true } as never)).toThrow(/^matmul: unknown option 'trans'/);
  });
});

describe('element-wise: sin, cos, erf, floor, ceil, round', () => {
  it('erf equals 2/√π ∫₀ˣ e^(−t²) dt by Simpson quadrature (2000 intervals), to 1e-12', () => {
    const simpson = (x: number) => {
      const n = 2000,
        h = x / n,
        f = (t: number) => Math.exp(-t * t);
      let s = f(0) + f(x);
      for (let i = 1; i < n; i++) s += (i % 2 ? 4 : 2) * f(i * h);
      return ((2 / Math.sqrt(Math.PI)) * s * h) / 3;
    };
    const xs = [-5, -3.2, -2.9, -1, -0.3, 0, 1e-8, 0.5, 1.7, 2.99, 3.01, 4.5, 5.9];
    const got = vals(T.erf(t64(xs, [xs.length])));
    for (const [i, x] of xs.entries()) expect(Math.abs(got[i]! - simpson(x))).toBeLessThan(1e-12);
    expect(vals(T.erf(t64([7, -7, Number.NaN], [3])))).toEqual([1, -1, Number.NaN]);
  });
  it('sin and cos are Math.sin and Math.cos; gradients converge', () => {
    fc.assert(
      fc.property(tensorArb({ maxRank: 2 }), (x) => {
        expect(vals(T.sin(x))).toEqual(vals(x).map(Math.sin));
        expect(vals(T.cos(x))).toEqual(vals(x).map(Math.cos));
        expectGradients((p: Tensor) => weighted(T.mul(T.sin(p), T.erf(p))), x);
      }),
      { numRuns: 15 },
    );
  });
  it('floor and ceil as Math, round half to even as numpy (round(0.5) = 0, round(2.5) = 2, round(-0.5) = -0)', () => {
    const xs = [-2.5, -1.5, -0.5, -0.4, 0.5, 1.5, 2.5, 2.6, 3, Number.POSITIVE_INFINITY, Number.NaN];
    const t = t64(xs, [xs.length]);
    // Half to even, by parity of the truncation (an independent spelling of numpy's rule).
    const halfEven = (v: number) => {
      if (!Number.isFinite(v)) return v;
      const tr = Math.trunc(v),
        fr = v - tr;
      if (Math.abs(fr) !== 0.5) return Math.round(v) === 0 && v < 0 ? -0 : Math.round(v);
      return tr % 2 === 0 ? (tr === 0 && v < 0 ? -0 : tr) : tr + Math.sign(v);
    };
    expect(vals(T.round(t))).toEqual(xs.map(halfEven));
    expect(vals(T.floor(t))).toEqual(xs.map(Math.floor));
    expect(vals(T.ceil(t))).toEqual(xs.map(Math.ceil));
  });
});

describe('checked: the shape-changing everyday ops return Left on shapes that do not fit', () => {
  it('einsum, gather, scatterAdd, squeeze, tile, repeat, stridedSlice, conv2d, batchedMatmul', () => {
    const x = t64([1, 2, 3, 4, 5, 6], [2, 3]);
    const left = (e: { _tag: string; left?: Error }) => {
      expect(e._tag).toBe('Left');
      return (e.left as Error).message;
    };
    expect(left(T.checked.einsum('ij,jk->ik', x, x))).toMatch(/label 'j' has length 3/);
    expect(left(T.checked.gather(x, t64([0], [1]), 0))).toMatch(/must have the rank/);
    expect(left(T.checked.squeeze(x, 1))).toMatch(/has length 3, not 1/);
    expect(left(T.checked.batchedMatmul(T.zeros([2, 2, 3]), T.zeros([3, 3, 2])))).toMatch(/do not broadcast/);
    expect(left(T.checked.conv2d(T.zeros([1, 1, 2, 2]), T.zeros([1, 1, 3, 3])))).toMatch(/do not fit/);
    expect(T.checked.einsum('ij->ji', x)._tag).toBe('Right');
  });
});

describe('JavaScript callers: wrong options and index types are one-line errors', () => {
  const x = t64([1, 2, 3, 4], [2, 2]);
  it.each([
    [() => T.variance(x, 0, { dof: 1 } as never), /^variance: unknown option 'dof' \(it takes ddof, keepDims\)$/],
    [() => T.variance(x, 0, { ddof: -1 }), /^variance: ddof must be an integer ≥ 0, got -1$/],
    [() => T.sort(x, 0, { reverse: true } as never), /^sort: unknown option 'reverse'/],
    [() => T.sort(x, 1.5), /^sort: axis must be an integer, got 1\.5$/],
    [() => T.argsort(T.scalar(1)), /^argsort: a scalar has no axis to sort$/],
    [() => T.topk(x, 3), /^topk: k = 3 exceeds the length 2 of axis 1/],
    [() => T.squeeze(x, 0), /^squeeze: axis 0 of \[2, 2\] has length 2, not 1$/],
    [() => T.tile(x, [2, -1]), /^tile: each repetition must be an integer ≥ 0, got -1$/],
    [() => T.repeat(x, [1, 2, 3], 0), /^repeat: give one count, or one per element of axis 0 \(2\), got 3 counts$/],
    [() => T.stridedSlice(x, [{ step: 0 }]), /^stridedSlice: step of axis 0 is 0/],
    [() => T.stridedSlice(x, [{ begin: 1 } as never]), /^stridedSlice: unknown option 'begin'/],
    [() => T.arange(0, 1, 0), /^arange: step must not be 0$/],
    [() => T.linspace(0, 1, 3, { endpoints: false } as never), /^linspace: unknown option 'endpoints'/],
    [() => T.eye(2, 2, 0, { dtype: 'int8' as never }), /dtype 'int8' is not one of/],
    [() => T.sin([1, 2] as never), /^sin: x must be a Tensor, got an array/],
    [() => T.scatterAdd(x, t64([0, 1], [2, 1]), t64([1], [1, 1]), 1), /^scatterAdd: src \[1, 1\] and indices \[2, 1\] must have one shape$/],
    [() => T.argmax(x, 0.5), /^argmax: axis must be an integer, got 0\.5$/],
    [() => T.sum(x, 'rows' as never), /^sum: axes must be an integer or an array of integers, got "rows"$/],
    [() => T.max(x, ['0'] as never), /^max: an axis must be an integer, got "0"$/],
    [() => T.softmaxCrossEntropy(x, [0, 1], { reduce: 'sum' } as never), /^softmaxCrossEntropy: unknown option 'reduce' \(it takes reduction\)$/],
    [() => T.softmaxCrossEntropy(x, [0, 1], { reduction: 'none' } as never), /^softmaxCrossEntropy: reduction must be 'mean' or 'sum', got "none"$/],
    [() => T.add(x, 'a' as never), /^add: the second operand must be a Tensor or a number, got string$/],
    [() => T.sub(null as never, x), /^sub: the first operand must be a Tensor or a number, got null$/],
    [() => T.where(x, [1] as never, 0), /^where: the first operand must be a Tensor or a number, got an array \(make one with tensor\(\)\)$/],
    [() => T.greater(x, '0' as never), /^greater: the second operand/],
    [() => T.transpose(x, 'ab' as never), /^transpose: perm must be an array of axes, got string$/],
    [() => T.concat('ab' as never), /^concat: give an array of tensors, got string$/],
    [() => T.concat([x, 1] as never), /^concat: element 1 must be a Tensor, got number$/],
    [() => T.split(x, 'a' as never), /^split: parts must be a count or an array of lengths, got string$/],
    [
      () =>
        T.pad(
          x,
          [
            [1, 1],
            [0, 0],
          ],
          'a' as never,
        ),
      /^pad: value must be a number, got "a"$/,
    ],
    [() => T.pow(x, 'a' as never), /^pow: the exponent must be a number, got "a"$/],
    [() => T.clip(x, 'a' as never, 1), /^clip: lo must be a number, got "a"$/],
    [() => T.dropout(x, '0.5' as never, new T.Key(0)), /^dropout: rate must be a number in \[0, 1\), got "0\.5"$/],
    [() => T.sum(x, 0, 'yes' as never), /^sum: keepDims must be true or false, got "yes"$/],
    [() => T.maxPool2d(T.zeros([1, 1, 4, 4]), '2' as never), /^maxPool2d: the window size must be an integer ≥ 1, got string$/],
  ] as const)('%#', (f, message) => {
    expect(f).toThrow(message);
    try {
      f();
    } catch (e) {
      expect((e as Error).message).not.toContain('\n');
    }
  });
});
