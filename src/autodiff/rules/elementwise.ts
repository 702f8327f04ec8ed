/**
 * Rules of the element-wise primitives: arithmetic, the activations, pow,
 * cast, select, and the constants (compare, sign, stopGradient).
 */
import { add, bind, broadcastTo, cast, cos, exp, mul, neg, pow, reciprocal, sin, sub, type Tensor } from '../../core/index.js';
import { addAll, expandAfterBatch, mapBatch, sameShapeBatch, unbroadcast, zerosLike, type BatchRule, type Maybe, type RuleTable } from './types.js';

type Elementwise =
  | 'add'
  | 'mul'
  | 'neg'
  | 'reciprocal'
  | 'exp'
  | 'log'
  | 'sqrt'
  | 'tanh'
  | 'sigmoid'
  | 'sin'
  | 'cos'
  | 'erf'
  | 'round'
  | 'relu'
  | 'reluGrad'
  | 'pow'
  | 'cast'
  | 'select'
  | 'compare'
  | 'sign'
  | 'stopGradient';

/** add and mul broadcast in their kernels: a batched input needs only its axes lined up behind the batch axis. */
const broadcastingBatch =
  (prim: 'add' | 'mul'): BatchRule<'add' | 'mul'> =>
  ([a, b], [ba, bb]) => {
    const r = Math.max(ba ? a.rank - 1 : a.rank, bb ? b.rank - 1 : b.rank);
    return bind(prim, [ba ? expandAfterBatch(a, r) : a, bb ? expandAfterBatch(b, r) : b], null);
  };

/** A unary primitive with derivative y' = f'(…): t·f' forward, ct·f' backward. */
const pointwise = <P extends 'neg' | 'reciprocal' | 'exp' | 'log' | 'sqrt' | 'tanh' | 'sigmoid' | 'sin' | 'cos' | 'erf'>(
  prim: P,
  times: (g: Tensor, x: Tensor, y: Tensor) => Tensor,
) => ({
  vjp: (ct: Tensor, [x]: readonly [Tensor], y: Tensor) => [() => times(ct, x, y)] as const,
  jvp: ([t]: readonly [Maybe], [x]: readonly [Tensor], y: Tensor) => (t === null ? null : times(t, x, y)),
  batch: mapBatch(prim),
});

export const elementwiseRules: RuleTable<Elementwise> = {
  add: {
    vjp: (ct, [a, b]) => [() => unbroadcast(ct, a.shape), () => unbroadcast(ct, b.shape)],
    jvp: ([ta, tb], _ab, y) =>
      addAll(
        [ta, tb].map((t) => (t === null ? null : broadcastTo(t, y.shape))),
        add,
      ),
    batch: broadcastingBatch('add') as BatchRule<'add'>,
  },
  mul: {
    vjp: (ct, [a, b]) => [() => unbroadcast(mul(ct, b), a.shape), () => unbroadcast(mul(ct, a), b.shape)],
    jvp: ([ta, tb], [a, b], y) => {
      const t = addAll([ta === null ? null : mul(ta, b), tb === null ? null : mul(a, tb)], add);
      return t === null ? null : broadcastTo(t, y.shape);
    },
    batch: broadcastingBatch('mul') as BatchRule<'mul'>,
  },
  neg: pointwise('neg', (g) => neg(g)),
  // d(1/x) = -1/x² = -y²
  reciprocal: pointwise('reciprocal', (g, _x, y) => neg(mul(g, mul(y, y)))),
  exp: pointwise('exp', (g, _x, y) => mul(g, y)),
  log: pointwise('log', (g, x) => mul(g, reciprocal(x))),
  // 1 / (2√x)
  sqrt: pointwise('sqrt', (g, _x, y) => mul(g, mul(reciprocal(y), 0.5))),
  // 1 - y²
  tanh: pointwise('tanh', (g, _x, y) => mul(g, sub(1, mul(y, y)))),
  // y (1 - y)
  sigmoid: pointwise('sigmoid', (g, _x, y) => mul(g, mul(y, sub(1, y)))),
  sin: pointwise('sin', (g, x) => mul(g, cos(x))),
  cos: pointwise('cos', (g, x) => neg(mul(g, sin(x)))),
  // 2/√π · e^(−x²)
  erf: pointwise('erf', (g, x) => mul(g, mul(exp(neg(mul(x, x))), 2 / Math.sqrt(Math.PI)))),
  // Piecewise constant: no derivative flows (as JAX's floor and round).
  round: { constant: true, batch: mapBatch('round') },
  relu: {
    // The gradient at exactly 0 is taken as 0 (as in PyTorch and JAX).
    vjp: (ct, [x]) => [() => bind('reluGrad', [x, ct], null)],
    jvp: ([t], [x]) => (t === null ? null : bind('reluGrad', [x, t], null)),
    batch: mapBatch('relu'),
  },
  reluGrad: {
    // ct · (x > 0): linear in ct; x only chooses where (its derivative is zero almost everywhere).
    vjp: (g, [x]) => [() => null, () => bind('reluGrad', [x, g], null)],
    jvp: ([, t], [x]) => (t === null ? null : bind('reluGrad', [x, t], null)),
    batch: sameShapeBatch('reluGrad'),
  },
  pow: {
    vjp: (ct, [x], _y, { p }) => [() => (p === 0 ? mul(ct, 0) : mul(ct, mul(pow(x, p - 1), p)))],
    jvp: ([t], [x], _y, { p }) => (t === null || p === 0 ? null : mul(t, mul(pow(x, p - 1), p))),
    batch: mapBatch('pow'),
  },
  cast: {
    vjp: (ct, [x]) => [() => cast(ct, x.dtype)],
    jvp: ([t], _x, _y, { dtype }) => (t === null ? null : cast(t, dtype)),
    batch: mapBatch('cast'),
  },
  select: {
    // Selecting the cotangent (never multiplying it by a 0/1 mask) keeps a NaN on the unchosen side out of the gradient.
    vjp: (ct, [c]) => [() => null, () => bind('select', [c, ct, zerosLike(ct)], null), () => bind('select', [c, zerosLike(ct), ct], null)],
    jvp: ([, ta, tb], [c, a, b]) => (ta === null && tb === null ? null : bind('select', [c, ta ?? zerosLike(a), tb ?? zerosLike(b)], null)),
    batch: sameShapeBatch('select'),
  },
  compare: { constant: true, batch: sameShapeBatch('compare') },
  sign: { constant: true, batch: mapBatch('sign') },
  stopGradient: { constant: true, batch: mapBatch('stopGradient') },
};
