/**
 * One case per primitive for the transformation properties: random shapes and
 * parameters (broadcasting included), value ranges that keep finite
 * differences away from kinks, and a function of float64 inputs whose only
 * non-trivial step is the primitive (its gradient kernels included, bound
 * directly).
 */
import fc from 'fast-check';
import * as T from '../../src/core/index.js';
import type { Primitive, Tensor } from '../../src/core/index.js';
import { Key } from '../../src/core/index.js';

export interface Range {
  readonly min?: number;
  readonly max?: number;
  /** Values kept `gap` (0.05) away from these points (kinks). */
  readonly avoid?: readonly number[];
  /** Distinct values at least 0.05 apart (max and pooling: no ties within ε). */
  readonly distinct?: boolean;
}

/** A sampled instance: input shapes, per-input ranges, and the function. */
export interface Instance {
  readonly shapes: readonly (readonly number[])[];
  readonly ranges: readonly Range[];
  readonly f: (xs: readonly Tensor[]) => Tensor;
}

export interface Case {
  readonly prim: Primitive;
  readonly name: string;
  readonly instance: fc.Arbitrary<Instance>;
  /** Smooth at the sampled points (false: finite differences of a piecewise-linear function still apply, but its Hessian is zero). */
  readonly smooth?: boolean;
}

const dim = (lo = 1, hi = 4) => fc.integer({ min: lo, max: hi });
const shape = (minRank = 1, maxRank = 3) => fc.array(dim(), { minLength: minRank, maxLength: maxRank });
const any: Range = {};
const positive: Range = { min: 0.5, max: 2 };

/** A shape and a broadcast partner: a suffix of it with some axes set to 1. */
const broadcastPair = shape(1, 3).chain((s) =>
  fc.tuple(fc.integer({ min: 0, max: s.length }), fc.array(fc.boolean(), { minLength: s.length, maxLength: s.length })).map(([drop, ones]) => {
    const t = s.slice(drop).map((d, i) => (ones[i + drop] ? 1 : d));
    return [s, t] as const;
  }),
);

const unary = (prim: Primitive, f: (x: Tensor) => Tensor, range: Range = any, smooth = true): Case => ({
  prim,
  name: prim,
  smooth,
  instance: shape(0, 3).map((s) => ({ shapes: [s], ranges: [range], f: ([x]) => f(x!) })),
});

/** Random axes of a rank (sorted, distinct, possibly none). */
const axesOf = (rank: number) => fc.subarray([...Array(rank).keys()]);

const images = fc.record({
  N: dim(1, 2),
  C: dim(1, 2),
  H: dim(3, 5),
  W: dim(3, 5),
  F: dim(1, 2),
  K: dim(1, 3),
  stride: dim(1, 2),
  padding: fc.integer({ min: 0, max: 1 }),
});
const slid = (n: number, k: number, s: number, p: number) => Math.floor((n + 2 * p - k) / s) + 1;
const pools = fc.record({ N: dim(1, 2), C: dim(1, 2), H: dim(2, 5), W: dim(2, 5), size: dim(1, 2), stride: dim(1, 2) });

export const cases: readonly Case[] = [
  { prim: 'add', name: 'add (broadcasting)', instance: broadcastPair.map(([a, b]) => ({ shapes: [a, b], ranges: [any, any], f: ([x, y]) => T.add(x!, y!) })) },
  { prim: 'mul', name: 'mul (broadcasting)', instance: broadcastPair.map(([a, b]) => ({ shapes: [b, a], ranges: [any, any], f: ([x, y]) => T.mul(x!, y!) })) },
  unary('neg', T.neg),
  unary('reciprocal', T.reciprocal, positive),
  unary('exp', T.exp),
  unary('log', T.log, positive),
  unary('sqrt', T.sqrt, positive),
  unary('tanh', T.tanh),
  unary('sigmoid', T.sigmoid),
  unary('sin', T.sin),
  unary('cos', T.cos),
  unary('erf', T.erf),
  unary('relu', T.relu, { avoid: [0] }, false),
  {
    prim: 'reluGrad',
    name: 'reluGrad',
    smooth: false,
    instance: shape().map((s) => ({ shapes: [s, s], ranges: [{ avoid: [0] }, any], f: ([x, ct]) => T.bind('reluGrad', [x!, ct!], null) })),
  },
  {
    prim: 'pow',
    name: 'pow',
    instance: fc
      .tuple(shape(0, 2), fc.constantFrom(2, 3, 0.5, -1, 0))
      .map(([s, p]) => ({ shapes: [s], ranges: [positive], f: ([x]) => T.bind('pow', [x!], { p }) })),
  },
  {
    prim: 'matmul',
    name: 'matmul (transposes)',
    instance: fc.tuple(dim(), dim(), dim(), fc.boolean(), fc.boolean()).map(([m, k, n, transA, transB]) => ({
      shapes: [transA ? [k, m] : [m, k], transB ? [n, k] : [k, n]],
      ranges: [any, any],
      f: ([a, b]) => T.matmul(a!, b!, { transA, transB }),
    })),
  },
  {
    prim: 'sum',
    name: 'sum',
    instance: shape(1, 3).chain((s) =>
      fc.tuple(axesOf(s.length), fc.boolean()).map(([axes, keepDims]) => ({ shapes: [s], ranges: [any], f: ([x]) => T.bind('sum', [x!], { axes, keepDims }) })),
    ),
  },
  {
    prim: 'max',
    name: 'max',
    smooth: false,
    instance: shape(1, 3).chain((s) =>
      fc
        .tuple(axesOf(s.length), fc.boolean())
        .map(([axes, keepDims]) => ({ shapes: [s], ranges: [{ distinct: true }], f: ([x]) => T.bind('max', [x!], { axes, keepDims }) })),
    ),
  },
  {
    prim: 'maxGrad',
    name: 'maxGrad (max over x, spread ct)',
    smooth: false,
    instance: shape(1, 3).chain((s) =>
      axesOf(s.length).map((axes) => {
        const kept = s.map((d, i) => (axes.includes(i) ? 1 : d));
        return {
          shapes: [s, kept],
          ranges: [{ distinct: true }, any],
          f: ([x, ct]) => T.bind('maxGrad', [x!, T.bind('max', [x!], { axes, keepDims: true }), ct!], { axes }),
        };
      }),
    ),
  },
  {
    prim: 'reshape',
    name: 'reshape',
    instance: shape(1, 3).map((s) => ({ shapes: [s], ranges: [any], f: ([x]) => T.reshape(x!, [...s].reverse()) })),
  },
  {
    prim: 'transpose',
    name: 'transpose',
    instance: shape(1, 3).chain((s) =>
      fc
        .shuffledSubarray([...s.keys()], { minLength: s.length, maxLength: s.length })
        .map((perm) => ({ shapes: [s], ranges: [any], f: ([x]) => T.transpose(x!, perm) })),
    ),
  },
  {
    prim: 'broadcastTo',
    name: 'broadcastTo',
    instance: broadcastPair.map(([to, from]) => ({ shapes: [from], ranges: [any], f: ([x]) => T.broadcastTo(x!, to) })),
  },
  {
    prim: 'slice',
    name: 'slice',
    instance: shape(1, 3).chain((s) =>
      fc.tuple(...s.map((d) => fc.integer({ min: 0, max: d - 1 }).chain((b) => fc.integer({ min: 1, max: d - b }).map((n) => [b, n] as const)))).map((box) => ({
        shapes: [s],
        ranges: [any],
        f: ([x]) => T.bind('slice', [x!], { starts: box.map((b) => b[0]), sizes: box.map((b) => b[1]) }),
      })),
    ),
  },
  {
    prim: 'pad',
    name: 'pad (a constant frame)',
    instance: shape(1, 3).chain((s) =>
      fc
        .tuple(fc.array(fc.tuple(dim(0, 2), dim(0, 2)), { minLength: s.length, maxLength: s.length }), fc.double({ min: -1, max: 1, noNaN: true }))
        .map(([w, value]) => ({
          shapes: [s],
          ranges: [any],
          f: ([x]) => T.bind('pad', [x!], { before: w.map((p) => p[0]), after: w.map((p) => p[1]), value }),
        })),
    ),
  },
  {
    prim: 'take',
    name: 'take (repeats)',
    instance: shape(1, 3).chain((s) =>
      fc.integer({ min: 0, max: s.length - 1 }).chain((axis) =>
        fc.array(fc.integer({ min: 0, max: s[axis]! - 1 }), { minLength: 1, maxLength: 5 }).map((idx) => ({
          shapes: [s],
          ranges: [any],
          f: ([x]) => T.take(x!, idx, axis),
        })),
      ),
    ),
  },
  {
    prim: 'takeGrad',
    name: 'takeGrad (scatter-add)',
    instance: shape(1, 3).chain((s) =>
      fc.integer({ min: 0, max: s.length - 1 }).chain((axis) =>
        fc.array(fc.integer({ min: 0, max: s[axis]! - 1 }), { minLength: 1, maxLength: 5 }).map((idx) => ({
          shapes: [s.map((d, a) => (a === axis ? idx.length : d))],
          ranges: [any],
          f: ([ct]) => T.bind('takeGrad', [ct!], { axis, indices: Int32Array.from(idx), inputShape: s }),
        })),
      ),
    ),
  },
  {
    prim: 'gather',
    name: 'gather (fixed indices, repeats, negative ones)',
    // The indices are made inside, on x's backend (shared by every example under vmap).
    instance: shape(1, 3).chain((s) =>
      fc.integer({ min: 0, max: s.length - 1 }).chain((axis) =>
        dim(1, 4).chain((m) => {
          const is = s.map((d, a) => (a === axis ? m : d));
          return fc
            .array(fc.integer({ min: -s[axis]!, max: s[axis]! - 1 }), { minLength: is.reduce((p, d) => p * d, 1), maxLength: is.reduce((p, d) => p * d, 1) })
            .map((idx) => ({
              shapes: [s],
              ranges: [any],
              f: ([x]) => T.gather(x!, T.toBackend(indexTensor(idx, is), x!.backend), axis),
            }));
        }),
      ),
    ),
  },
  {
    prim: 'gather',
    name: 'gather (indices from argsort of a second input: batched indices under vmap)',
    instance: shape(1, 3).chain((s) =>
      fc.tuple(fc.integer({ min: 0, max: s.length - 1 }), fc.boolean()).map(([axis, descending]) => ({
        shapes: [s, s],
        ranges: [any, { distinct: true }],
        f: ([x, y]) => T.gather(x!, T.argsort(y!, axis, { descending }), axis),
      })),
    ),
  },
  {
    prim: 'scatterAdd',
    name: 'scatterAdd (repeated indices accumulate)',
    instance: shape(1, 3).chain((s) =>
      fc.integer({ min: 0, max: s.length - 1 }).chain((axis) =>
        dim(1, 4).chain((m) => {
          const is = s.map((d, a) => (a === axis ? m : d));
          return fc
            .array(fc.integer({ min: 0, max: s[axis]! - 1 }), { minLength: is.reduce((p, d) => p * d, 1), maxLength: is.reduce((p, d) => p * d, 1) })
            .map((idx) => ({
              shapes: [s, is],
              ranges: [any, any],
              f: ([base, src]) => T.scatterAdd(base!, T.toBackend(indexTensor(idx, is), base!.backend), src!, axis),
            }));
        }),
      ),
    ),
  },
  {
    prim: 'concat',
    name: 'concat',
    instance: shape(1, 3).chain((s) =>
      fc.tuple(fc.integer({ min: 0, max: s.length - 1 }), dim(1, 3)).map(([axis, n]) => ({
        shapes: [s, s.map((d, a) => (a === axis ? n : d))],
        ranges: [any, any],
        f: ([a, b]) => T.concat([a!, b!], axis),
      })),
    ),
  },
  {
    prim: 'select',
    name: 'select (where)',
    // The condition is made inside, on the inputs' backend (shared by every example under vmap).
    instance: fc.tuple(shape(1, 3), fc.integer()).map(([s, seed]) => ({
      shapes: [s, s],
      ranges: [any, any],
      f: ([a, b]) => T.where(T.greater(new Key(seed).normal(a!.shape, a!.dtype, 0, 1, a!.backend), 0), a!, b!),
    })),
  },
  {
    prim: 'conv2d',
    name: 'conv2d (strides, padding)',
    instance: images
      .filter((p) => slid(p.H, p.K, p.stride, p.padding) >= 1 && slid(p.W, p.K, p.stride, p.padding) >= 1)
      .map((p) => ({
        shapes: [
          [p.N, p.C, p.H, p.W],
          [p.F, p.C, p.K, p.K],
        ],
        ranges: [any, any],
        f: ([x, w]) => T.conv2d(x!, w!, { stride: p.stride, padding: p.padding }),
      })),
  },
  {
    prim: 'conv2dGradInput',
    name: 'conv2dGradInput',
    instance: images
      .filter((p) => slid(p.H, p.K, p.stride, p.padding) >= 1 && slid(p.W, p.K, p.stride, p.padding) >= 1)
      .map((p) => ({
        shapes: [
          [p.N, p.F, slid(p.H, p.K, p.stride, p.padding), slid(p.W, p.K, p.stride, p.padding)],
          [p.F, p.C, p.K, p.K],
        ],
        ranges: [any, any],
        f: ([ct, w]) => T.bind('conv2dGradInput', [ct!, w!], { stride: p.stride, padding: p.padding, inputShape: [p.N, p.C, p.H, p.W] }),
      })),
  },
  {
    prim: 'conv2dGradWeight',
    name: 'conv2dGradWeight',
    instance: images
      .filter((p) => slid(p.H, p.K, p.stride, p.padding) >= 1 && slid(p.W, p.K, p.stride, p.padding) >= 1)
      .map((p) => ({
        shapes: [
          [p.N, p.F, slid(p.H, p.K, p.stride, p.padding), slid(p.W, p.K, p.stride, p.padding)],
          [p.N, p.C, p.H, p.W],
        ],
        ranges: [any, any],
        f: ([ct, x]) => T.bind('conv2dGradWeight', [ct!, x!], { stride: p.stride, padding: p.padding, filterShape: [p.F, p.C, p.K, p.K] }),
      })),
  },
  {
    prim: 'maxPool2d',
    name: 'maxPool2d (overlapping windows too)',
    smooth: false,
    instance: pools
      .filter((p) => p.size <= p.H && p.size <= p.W)
      .map((p) => ({ shapes: [[p.N, p.C, p.H, p.W]], ranges: [{ distinct: true }], f: ([x]) => T.maxPool2d(x!, p.size, p.stride) })),
  },
  {
    prim: 'maxPool2dGrad',
    name: 'maxPool2dGrad',
    smooth: false,
    instance: pools
      .filter((p) => p.size <= p.H && p.size <= p.W)
      .map((p) => ({
        shapes: [
          [p.N, p.C, slid(p.H, p.size, p.stride, 0), slid(p.W, p.size, p.stride, 0)],
          [p.N, p.C, p.H, p.W],
        ],
        ranges: [any, { distinct: true }],
        f: ([ct, x]) => T.bind('maxPool2dGrad', [ct!, x!], { size: p.size, stride: p.stride }),
      })),
  },
  {
    prim: 'maxPool2dSelect',
    name: 'maxPool2dSelect',
    smooth: false,
    instance: pools
      .filter((p) => p.size <= p.H && p.size <= p.W)
      .map((p) => ({
        shapes: [
          [p.N, p.C, p.H, p.W],
          [p.N, p.C, p.H, p.W],
        ],
        ranges: [{ distinct: true }, any],
        f: ([x, t]) => T.bind('maxPool2dSelect', [x!, t!], { size: p.size, stride: p.stride }),
      })),
  },
  {
    prim: 'avgPool2d',
    name: 'avgPool2d',
    instance: pools
      .filter((p) => p.size <= p.H && p.size <= p.W)
      .map((p) => ({ shapes: [[p.N, p.C, p.H, p.W]], ranges: [any], f: ([x]) => T.avgPool2d(x!, p.size, p.stride) })),
  },
  {
    prim: 'avgPool2dGrad',
    name: 'avgPool2dGrad',
    instance: pools
      .filter((p) => p.size <= p.H && p.size <= p.W)
      .map((p) => ({
        shapes: [[p.N, p.C, slid(p.H, p.size, p.stride, 0), slid(p.W, p.size, p.stride, 0)]],
        ranges: [any],
        f: ([ct]) => T.bind('avgPool2dGrad', [ct!], { size: p.size, stride: p.stride, inputShape: [p.N, p.C, p.H, p.W] }),
      })),
  },
  {
    prim: 'channelMoments',
    name: 'channelMoments',
    instance: fc.tuple(dim(2, 3), dim(1, 3), dim(1, 3)).map(([N, C, S]) => ({ shapes: [[N, C, S]], ranges: [any], f: ([x]) => T.channelMoments(x!) })),
  },
  {
    prim: 'batchNorm',
    name: 'batchNorm (batch statistics)',
    instance: fc
      .tuple(dim(2, 3), dim(1, 3), dim(1, 3))
      .map(([N, C, S]) => ({ shapes: [[N, C, S], [C], [C]], ranges: [any, any, any], f: ([x, g, b]) => T.batchNormalize(x!, g!, b!) })),
  },
  {
    prim: 'batchNormGrad',
    name: "batchNormGrad (batchNorm's VJP for x)",
    // At least 3 values per channel: with 2, x̂ = ±1 and the gradient is 0 up to rounding (nothing to compare).
    instance: fc.tuple(dim(2, 3), dim(1, 3), dim(2, 3)).map(([N, C, S]) => ({
      shapes: [[N, C, S], [C], [N, C, S]],
      ranges: [any, any, any],
      f: ([x, g, ct]) => {
        const m = T.channelMoments(T.stopGradient(x!));
        return T.bind('batchNormGrad', [x!, m, g!, ct!, T.bind('batchNormParamGrad', [x!, m, ct!], { eps: 1e-5 })], { eps: 1e-5 });
      },
    })),
  },
  {
    prim: 'batchNormParamGrad',
    name: 'batchNormParamGrad',
    instance: fc.tuple(dim(2, 3), dim(1, 3), dim(1, 3)).map(([N, C, S]) => ({
      shapes: [
        [N, C, S],
        [N, C, S],
      ],
      ranges: [any, any],
      f: ([x, ct]) => T.bind('batchNormParamGrad', [x!, T.channelMoments(T.stopGradient(x!)), ct!], { eps: 1e-5 }),
    })),
  },
  {
    prim: 'custom',
    name: 'custom (softplus with its own VJP)',
    instance: shape(1, 2).map((s) => ({ shapes: [s], ranges: [any], f: ([x]) => softplus(x!) })),
  },
];

/** Integer indices as a float64 tensor (the index dtype until int32 exists). */
const indexTensor = (idx: readonly number[], shape: readonly number[]): Tensor => {
  const r = T.fromArray(idx, shape, 'float64');
  if (r._tag === 'Left') throw r.left;
  return r.right;
};

/** softplus with a user VJP that is itself differentiable: σ(x)·ct. */
export const softplus = T.customVjp(
  'softplus',
  ([x]: [Tensor]) => T.log(T.add(T.exp(x), 1)),
  (ct, [x]) => [T.mul(ct, T.sigmoid(x))],
);

/** The constant primitives, for the batching check only (their derivatives are zero by definition). */
export const constantCases: readonly Case[] = [
  {
    prim: 'compare',
    name: 'compare (greaterEqual, broadcasting)',
    instance: broadcastPair.map(([a, b]) => ({ shapes: [a, b], ranges: [any, any], f: ([x, y]) => T.greaterEqual(x!, y!) })),
  },
  unary('sign', T.sign),
  {
    prim: 'argmax',
    name: 'argmax',
    instance: shape(1, 3).chain((s) =>
      fc.integer({ min: 0, max: s.length - 1 }).map((axis) => ({ shapes: [s], ranges: [{ distinct: true }], f: ([x]) => T.argmax(x!, axis) })),
    ),
  },
  unary('round', (x) => T.add(T.add(T.floor(x), T.ceil(x)), T.round(T.mul(x, 2)))),
  {
    prim: 'argsort',
    name: 'argsort (either order)',
    instance: shape(1, 3).chain((s) =>
      fc
        .tuple(fc.integer({ min: 0, max: s.length - 1 }), fc.boolean())
        .map(([axis, descending]) => ({ shapes: [s], ranges: [{ distinct: true }], f: ([x]) => T.argsort(x!, axis, { descending }) })),
    ),
  },
  unary('stopGradient', (x) => T.mul(x, T.stopGradient(x))),
  unary('cast', (x) => T.cast(T.cast(x, 'float32'), 'float64')),
];

/** Values for a shape in a range, drawn from `key` (distinct ones 0.05+ apart, in a random order). */
export const valuesFor = (s: readonly number[], r: Range, key: Key): number[] => {
  const n = s.reduce((a, b) => a * b, 1);
  const u = Array.from(key.uniform([n], 0, 1, 'float64').toTypedArray());
  if (r.distinct === true) {
    const order = u.map((v, i) => [v, i] as const).sort((p, q) => p[0] - q[0]);
    const out = new Array<number>(n);
    order.forEach(([, i], rank) => {
      out[i] = -2 + (4 * rank) / Math.max(n, 1) + 0.01 * u[rank]!;
    });
    return out;
  }
  const lo = r.min ?? -2,
    hi = r.max ?? 2;
  return u.map((v) => {
    let x = lo + (hi - lo) * v;
    for (const a of r.avoid ?? []) if (Math.abs(x - a) < 0.05) x = a + (x >= a ? 0.05 : -0.05);
    return x;
  });
};
