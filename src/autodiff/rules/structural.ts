/**
 * Rules of the primitives that move, reduce or contract values: matmul, the
 * reductions (sum, max and max's gradient kernel, argmax), the views and
 * layouts (reshape, transpose, broadcastTo), and indexing (slice, pad, take,
 * concat).
 */
import { add, bind, broadcastTo, concat, mul, ones, pad, reshape, slice, transpose, type Tensor } from '../../core/index.js';
import { reducedShape } from '../../core/internal.js';
import { asBatch, bilinearJvp, batchShape, expandAfterBatch, perExample, shiftAxes, unbroadcast, zerosLike, type Maybe, type RuleTable } from './types.js';

type Structural =
  | 'matmul'
  | 'sum'
  | 'max'
  | 'maxGrad'
  | 'argmax'
  | 'argsort'
  | 'gather'
  | 'scatterAdd'
  | 'reshape'
  | 'transpose'
  | 'broadcastTo'
  | 'slice'
  | 'pad'
  | 'take'
  | 'takeGrad'
  | 'concat';

/** Each maximum's share of its reduction (1 / ties), x's shape, from the maxima m in kept shape: max's derivative as weights. */
const maxWeights = (x: Tensor, m: Tensor, axes: readonly number[]): Tensor => bind('maxGrad', [x, m, ones(m.shape, m.dtype, m.backend)], { axes });

export const structuralRules: RuleTable<Structural> = {
  matmul: {
    vjp: (ct, [a, b], _y, { transA, transB }) => [
      // C = op(A)·op(B). dop(A) = ct·op(B)ᵀ, dop(B) = op(A)ᵀ·ct; undo the op on each (flags, never a transposed copy).
      () => (transA ? bind('matmul', [b, ct], { transA: transB, transB: true }) : bind('matmul', [ct, b], { transA: false, transB: !transB })),
      () => (transB ? bind('matmul', [ct, a], { transA: true, transB: transA }) : bind('matmul', [a, ct], { transA: !transA, transB: false })),
    ],
    jvp: bilinearJvp('matmul'),
    batch: (values, batched, p, size) => {
      const [a, b] = values;
      // A batch of left operands against one right operand is one product with B·m rows.
      if (batched[0] && !batched[1] && !p.transA) {
        const out = bind('matmul', [reshape(a, [size * a.shape[1]!, a.shape[2]!]), b], p);
        return reshape(out, [size, a.shape[1]!, out.shape[1]!]);
      }
      // Both batched with one term (k = 1, the weight gradient of a dense layer on one example): an outer product
      // per example, one broadcast multiply; + 0 turns −0 into +0 as the products' sum from 0 does.
      const k = p.transA ? a.shape[a.rank - 2]! : a.shape[a.rank - 1]!;
      if (batched[0] && batched[1] && k === 1) {
        const m = a.size / size,
          n = b.size / size;
        return add(mul(reshape(a, [size, m, 1]), reshape(b, [size, 1, n])), 0);
      }
      return perExample('matmul')(values, batched, p, size);
    },
  },
  sum: {
    vjp: (ct, [x], _y, { axes }) => [() => broadcastTo(reshape(ct, reducedShape(x.shape, axes, true)), x.shape)],
    jvp: ([t], _x, _y, p) => (t === null ? null : bind('sum', [t], p)),
    batch: ([x], _b, { axes, keepDims }) => bind('sum', [x], { axes: shiftAxes(axes), keepDims }),
  },
  max: {
    vjp: (ct, [x], y, { axes }) => {
      const kept = reducedShape(x.shape, axes, true);
      return [() => bind('maxGrad', [x, reshape(y, kept), reshape(ct, kept)], { axes })];
    },
    // The tangent at the maxima, shared among ties: the transpose of the VJP.
    jvp: ([t], [x], y, { axes, keepDims }) =>
      t === null ? null : bind('sum', [mul(t, maxWeights(x, reshape(y, reducedShape(x.shape, axes, true)), axes))], { axes, keepDims }),
    batch: ([x], _b, { axes, keepDims }) => bind('max', [x], { axes: shiftAxes(axes), keepDims }),
  },
  maxGrad: {
    // ct spread onto the maxima: linear in ct; x and the max only choose where.
    vjp: (g, [x, m], _y, { axes }) => [() => null, () => null, () => bind('sum', [mul(g, maxWeights(x, m, axes))], { axes, keepDims: true })],
    jvp: ([, , t], [x, m], _y, p) => (t === null ? null : bind('maxGrad', [x, m, t], p)),
    batch: ([x, m, ct], [bx, bm, bc], { axes }, size) =>
      bind('maxGrad', [asBatch(x, bx, size), asBatch(m, bm, size), asBatch(ct, bc, size)], { axes: shiftAxes(axes) }),
  },
  argmax: { constant: true, batch: ([x], _b, { axis }) => bind('argmax', [x], { axis: axis + 1 }) },
  argsort: { constant: true, batch: ([x], _b, { axis, descending }) => bind('argsort', [x], { axis: axis + 1, descending }) },
  gather: {
    // Linear in x; the indices only choose where (no gradient to them).
    vjp: (ct, [x, idx], _y, { axis }) => [() => bind('scatterAdd', [zerosLike(x), idx, ct], { axis }), () => null],
    jvp: ([t], [, idx], _y, p) => (t === null ? null : bind('gather', [t, idx], p)),
    batch: ([x, idx], [bx, bi], { axis }, size) => bind('gather', [asBatch(x, bx, size), asBatch(idx, bi, size)], { axis: axis + 1 }),
  },
  scatterAdd: {
    // Linear in base and src: base's cotangent passes through, src's is gathered back from where it was added.
    vjp: (ct, [, idx], _y, { axis }) => [() => ct, () => null, () => bind('gather', [ct, idx], { axis })],
    jvp: ([tb, , ts], [base, idx, src], _y, p) =>
      tb === null && ts === null ? null : bind('scatterAdd', [tb ?? zerosLike(base), idx, ts ?? zerosLike(src)], p),
    batch: ([base, idx, src], [bb, bi, bs], { axis }, size) =>
      bind('scatterAdd', [asBatch(base, bb, size), asBatch(idx, bi, size), asBatch(src, bs, size)], { axis: axis + 1 }),
  },
  reshape: {
    vjp: (ct, [x]) => [() => reshape(ct, x.shape)],
    jvp: ([t], _x, _y, p) => (t === null ? null : bind('reshape', [t], p)),
    batch: ([x], _b, { shape }, size) => bind('reshape', [x], { shape: batchShape(size, shape) }),
  },
  transpose: {
    vjp: (ct, _x, _y, { perm }) => {
      const inv = new Array<number>(perm.length);
      perm.forEach((p, i) => {
        inv[p] = i;
      });
      return [() => transpose(ct, inv)];
    },
    jvp: ([t], _x, _y, p) => (t === null ? null : bind('transpose', [t], p)),
    batch: ([x], _b, { perm }) => bind('transpose', [x], { perm: [0, ...shiftAxes(perm)] }),
  },
  broadcastTo: {
    vjp: (ct, [x]) => [() => unbroadcast(ct, x.shape)],
    jvp: ([t], _x, _y, p) => (t === null ? null : bind('broadcastTo', [t], p)),
    batch: ([x], _b, { shape }, size) => bind('broadcastTo', [expandAfterBatch(x, shape.length)], { shape: batchShape(size, shape) }),
  },
  slice: {
    vjp: (ct, [x], _y, { starts, sizes }) => [
      () =>
        pad(
          ct,
          starts.map((b, a) => [b, x.shape[a]! - b - sizes[a]!] as const),
        ),
    ],
    jvp: ([t], _x, _y, p) => (t === null ? null : bind('slice', [t], p)),
    batch: ([x], _b, { starts, sizes }, size) => bind('slice', [x], { starts: [0, ...starts], sizes: [size, ...sizes] }),
  },
  pad: {
    vjp: (ct, [x], _y, { before }) => [() => slice(ct, before, x.shape)],
    // The frame is a constant: its tangent is zero.
    jvp: ([t], _x, _y, p) => (t === null ? null : bind('pad', [t], { ...p, value: 0 })),
    batch: ([x], _b, { before, after, value }) => bind('pad', [x], { before: [0, ...before], after: [0, ...after], value }),
  },
  take: {
    vjp: (ct, [x], _y, p) => [() => bind('takeGrad', [ct], { ...p, inputShape: x.shape })],
    jvp: ([t], _x, _y, p) => (t === null ? null : bind('take', [t], p)),
    batch: ([x], _b, { axis, indices }) => bind('take', [x], { axis: axis + 1, indices }),
  },
  takeGrad: {
    // Linear: its transpose gathers again.
    vjp: (g, _ct, _y, { axis, indices }) => [() => bind('take', [g], { axis, indices })],
    jvp: ([t], _ct, _y, p) => (t === null ? null : bind('takeGrad', [t], p)),
    batch: ([ct], _b, { axis, indices, inputShape }, size) => bind('takeGrad', [ct], { axis: axis + 1, indices, inputShape: batchShape(size, inputShape) }),
  },
  concat: {
    vjp: (ct, xs, _y, { axis }) => {
      const starts: number[] = [];
      xs.reduce((at, x) => {
        starts.push(at);
        return at + x.shape[axis]!;
      }, 0);
      return xs.map(
        (x, k) => () =>
          slice(
            ct,
            ct.shape.map((_d, a) => (a === axis ? starts[k]! : 0)),
            x.shape,
          ),
      );
    },
    jvp: (ts, xs, _y, p) =>
      ts.every((t) => t === null)
        ? null
        : bind(
            'concat',
            ts.map((t: Maybe, i) => t ?? zerosLike(xs[i]!)),
            p,
          ),
    batch: (xs, batched, { axis }, size) =>
      concat(
        xs.map((x, i) => asBatch(x, batched[i]!, size)),
        axis + 1,
      ),
  },
};
