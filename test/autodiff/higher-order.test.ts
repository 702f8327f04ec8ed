/**
 * Transformations composed, through the layers tapegrad has: grad of grad
 * (second derivatives against central differences of the gradient), the
 * perturbation-confusion case, per-example gradients by vmap(grad) against a
 * loop of grad on the headline MLP and a small CNN, mixed compositions with
 * known answers, and the one-line errors.
 */
import { describe, expect, it } from 'vitest';
import * as T from '../../src/index.js';
import { backend, Key, type Tensor } from '../../src/index.js';
import { batchNorm, conv2dLayer, dense, flatten, layerNorm, maxPool2dLayer, activation, sequential } from '../../src/nn/index.js';
import { expectAllClose, expectGradients } from '../../src/testing/index.js';
import { softplus } from './cases.js';
import { t64 } from '../helpers.js';

const ref = backend('reference');
const onRef = <A>(tree: A): A => T.mapTree(tree as never, (t: Tensor) => T.toBackend(T.cast(t, 'float64'), ref)) as A;
/** Σ of an output weighted by fixed numbers: a scalar in which every element matters. */
const weighted = (y: Tensor): Tensor =>
  T.sum(
    T.mul(
      y,
      T.toBackend(
        t64(
          Array.from({ length: y.size }, (_, i) => Math.cos(i + 1) + 1.25),
          [...y.shape],
        ),
        y.backend,
      ),
    ),
  );
/** A scalar function of params' gradient: checking it by central differences checks the Hessian of f. */
const gradProbe =
  <P extends T.Treelike<P>>(f: (p: P) => Tensor) =>
  (p: P): Tensor =>
    T.leaves(T.grad(f)(p))
      .map(weighted)
      .reduce((a, b) => T.add(a, b));

describe('grad of grad', () => {
  it('perturbations never mix: d/dx [x · d/dy (x + y)] = 1 (the classic confusion gives 2)', () => {
    const x = t64([2.5], [1]),
      y = t64([-1], [1]);
    const f = (x: Tensor) => T.sum(T.mul(x, T.grad((y: Tensor) => T.sum(T.add(x, y)))(y)));
    expect(T.grad(f)(x).item()).toBe(1);
    // And in forward mode over reverse: the same answer.
    expect(T.jvp(f)(x, t64([1], [1])).tangent.item()).toBe(1);
  });

  it('third derivatives of x⁴: 24x', () => {
    const d = (f: (x: Tensor) => Tensor) => (x: Tensor) => T.sum(T.grad(f)(x));
    const x = t64([0.5, -2], [2]);
    const third = T.grad(d(d((x: Tensor) => T.sum(T.pow(x, 4)))))(x);
    expectAllClose(third, [12, -48], { atol: 1e-12, rtol: 1e-12 });
  });

  it('a gradient penalty (grad of a function calling valueAndGrad) matches central differences', () => {
    const x = new Key(3).normal([5, 4], 'float64', 0, 1, ref),
      labels = [0, 2, 1, 1, 0];
    const loss = (p: { w: Tensor; b: Tensor }) => T.softmaxCrossEntropy(T.add(T.matmul(T.tanh(x), p.w), p.b), labels);
    const penalized = (p: { w: Tensor; b: Tensor }) => {
      const { value, grads } = T.valueAndGrad(loss)(p);
      return T.add(value, T.mul(T.add(T.sumOfSquares(grads.w), T.sumOfSquares(grads.b)), 0.3));
    };
    expectGradients(penalized, onRef({ w: new Key(1).normal([4, 3], 'float64'), b: new Key(2).normal([3], 'float64') }));
  });

  it('second derivatives through conv2d, max pooling, batchNorm, layerNorm, softmax cross-entropy and a customVjp function', () => {
    const net = sequential(
      conv2dLayer(2, 3, 3, { padding: 1 }),
      batchNorm(3),
      activation('tanh'),
      maxPool2dLayer(2),
      flatten(),
      dense(12, 6),
      layerNorm(6),
      T.lambda('softplus', (h) => softplus(h)),
      dense(6, 3),
    );
    const params = onRef(net.init(new Key(5)));
    const x = new Key(6).normal([2, 2, 4, 4], 'float64', 0, 1, ref),
      labels = [2, 0];
    const state = onRef(T.initialState(net));
    const loss = (p: typeof params) => T.softmaxCrossEntropy(T.forwardOf(net, p, x, { train: true, key: undefined, state }).y, labels);
    // Order check off: a window's maximum may change within the largest step (1e-3); element-wise at 1e-6 it does not.
    expectGradients(gradProbe(loss), params, { order: false, maxElementsPerInput: 12, rtol: 1e-4, atol: 1e-7 });
  });

  it('conv2d and both its gradient kernels to second order, with the convergence order shown', () => {
    const x = new Key(7).normal([2, 2, 5, 5], 'float64', 0, 1, ref);
    const f = (p: { w: Tensor; b: Tensor }) => weighted(T.tanh(T.add(T.conv2d(x, p.w, { stride: 2, padding: 1 }), T.reshape(p.b, [1, 3, 1, 1]))));
    const r = expectGradients(gradProbe(f), onRef({ w: new Key(8).normal([3, 2, 3, 3], 'float64', 0, 0.5), b: new Key(9).normal([3], 'float64') }));
    expect(r.order.some((o) => o.ratio !== undefined && o.ratio > 3 && o.ratio < 5.5)).toBe(true);
  });
});

describe('per-example gradients: vmap(grad(loss)) equals a loop of grad', () => {
  const perExampleCheck = (
    model: ReturnType<typeof sequential> | T.Model['layer'],
    xShape: number[],
    classes: number,
    dtype: 'float32' | 'float64',
    be: ReturnType<typeof backend>,
    tol: number,
  ) => {
    const params = T.mapTree(model.init(new Key(11)) as never, (t: Tensor) => T.toBackend(T.cast(t, dtype), be)) as T.Tree;
    const B = 6;
    const xs = T.toBackend(T.cast(new Key(12).normal([B, 1, ...xShape], 'float64'), dtype), be);
    const ys = T.toBackend(
      T.cast(
        T.oneHot(
          Array.from({ length: B }, (_, i) => (i * 7) % classes),
          classes,
          'float64',
        ),
        dtype,
      ),
      be,
    );
    const loss = (p: T.Tree, x: Tensor, y: Tensor) => T.softmaxCrossEntropy(model.apply(p as never, x), T.reshape(y, [1, classes]));
    const batched = T.vmap((x: Tensor, y: Tensor) => T.grad((p: T.Tree) => loss(p, x, y))(params))(xs, ys);
    const split = (t: Tensor, i: number) =>
      T.reshape(
        T.slice(
          t,
          t.shape.map((_d, a) => (a === 0 ? i : 0)),
          t.shape.map((d, a) => (a === 0 ? 1 : d)),
        ),
        t.shape.slice(1),
      );
    for (let i = 0; i < B; i++) {
      const one = T.grad((p: T.Tree) => loss(p, split(xs, i), split(ys, i)))(params);
      T.leaves(one).forEach((g, k) => {
        expectAllClose(split(T.leaves(batched)[k]!, i), g, { atol: tol, rtol: tol });
      });
    }
  };

  it('the headline MLP 3072→128→20 (ReLU), float64 on reference, to 1e-12', () => {
    perExampleCheck(T.mlp([3072, 128, 20]).layer, [3072], 20, 'float64', ref, 1e-12);
  });
  it('the headline MLP, float32 on cpu, to 1e-5', () => {
    perExampleCheck(T.mlp([3072, 128, 20]).layer, [3072], 20, 'float32', backend('cpu'), 1e-5);
  });
  const cnn = () =>
    sequential(conv2dLayer(3, 4, 3, { padding: 1 }), activation('relu'), maxPool2dLayer(2), conv2dLayer(4, 4, 3), activation('relu'), flatten(), dense(16, 5));
  it('a small CNN, float64 on reference, to 1e-12', () => perExampleCheck(cnn(), [3, 8, 8], 5, 'float64', ref, 1e-12));
  it('a small CNN, float32 on cpu, to 1e-5', () => perExampleCheck(cnn(), [3, 8, 8], 5, 'float32', backend('cpu'), 1e-5));
});

describe('compositions in any order', () => {
  const f = (x: Tensor) => T.sum(T.mul(T.tanh(x), T.exp(x)));
  it('jvp of grad is the Hessian times v; grad of jvp is the same vector', () => {
    const x = t64([0.3, -1.2, 2], [3]),
      v = t64([1, 0.5, -1], [3]);
    const H = T.hessian(f)(x);
    const hv = T.jvp(T.grad(f))(x, v).tangent;
    expectAllClose(hv, T.matmul(H, T.reshape(v, [3, 1])).toTypedArray(), { atol: 1e-12, rtol: 1e-12 });
    const gj = T.grad((y: Tensor) => T.jvp(f)(y, v).tangent)(x);
    expectAllClose(gj, hv, { atol: 1e-12, rtol: 1e-12 });
  });
  it('vmap of jvp, jvp of vmap and nested vmap agree with the loops they stand for', () => {
    const X = new Key(4).normal([4, 3], 'float64', 0, 1, ref),
      V = new Key(5).normal([4, 3], 'float64', 0, 1, ref);
    const g = (x: Tensor) => T.tanh(T.mul(x, x));
    const a = T.vmap((x: Tensor, v: Tensor) => T.jvp(g)(x, v).tangent)(X, V);
    const b = T.jvp(T.vmap(g))(X, V).tangent;
    const c = T.vmap(T.vmap((x: Tensor, v: Tensor) => T.mul(T.sub(1, T.square(g(x))), T.mul(T.mul(x, 2), v))))(X, V);
    expectAllClose(a, c, { atol: 1e-14, rtol: 1e-14 });
    expectAllClose(b, c, { atol: 1e-14, rtol: 1e-14 });
  });
  it('jacfwd and jacrev give the same Jacobian, of shape [...out, ...in]', () => {
    const W = new Key(8).normal([3, 2], 'float64', 0, 1, ref);
    const g = (x: Tensor) => T.tanh(T.matmul(x, W));
    const x = new Key(9).normal([4, 3], 'float64', 0, 1, ref);
    const jf = T.jacfwd(g)(x),
      jr = T.jacrev(g)(x);
    expect(jf.shape).toEqual([4, 2, 4, 3]);
    expectAllClose(jf, jr, { atol: 1e-14, rtol: 1e-12 });
  });
});

describe('customVjp under every transformation uses the given VJP', () => {
  // A straight-through estimator: the forward rounds (derivative 0 almost everywhere), the VJP passes ct through.
  const ste = T.customVjp(
    'ste',
    ([x]: [Tensor]) => T.stopGradient(T.mul(x, 3)),
    (ct) => [T.mul(ct, 3)],
  );
  const x = t64([2, -1], [2]),
    v = t64([1, 0.5], [2]);
  it('jvp transposes the VJP, so it agrees with grad', () => {
    expect(T.jvp((y: Tensor) => ste(y))(x, v).tangent.toArray()).toEqual([3, 1.5]);
    expect(T.grad((y: Tensor) => T.sum(T.mul(ste(y), v)))(x).toArray()).toEqual([3, 1.5]);
  });
  it('hvp (forward over reverse) equals grad of grad', () => {
    const f = (y: Tensor) => T.sum(T.mul(ste(y), y));
    const gg = T.grad((y: Tensor) => T.sum(T.mul(T.grad(f)(y), v)))(x);
    expectAllClose(T.hvp(f)(x, v), gg, { atol: 0, rtol: 0 });
    expect(gg.toArray()).toEqual([6, 3]); // ∇f = 3y (through the VJP) + ste(y) (the product's other side); its derivative along v: 3v + 3v
  });
  it('the batched function still uses the VJP under vmap(grad) and grad(vmap)', () => {
    const X = t64([1, 2, 3, 4], [2, 2]);
    const per = T.vmap((r: Tensor) => T.grad((y: Tensor) => T.sum(T.mul(ste(y), y)))(r))(X);
    expect(per.toArray()).toEqual([
      [6, 12],
      [18, 24],
    ]); // 3y (the VJP) + 3y (the product rule's other side)
    expect(T.grad((Y: Tensor) => T.sum(T.vmap((r: Tensor) => ste(r))(Y)))(X).toArray()).toEqual([
      [3, 3],
      [3, 3],
    ]);
  });
});

describe('vmap: axes, trees, memory', () => {
  const X = new Key(20).normal([3, 4, 5], 'float64', 0, 1, ref);
  const rowSums = (m: Tensor) => T.sum(m, 1); // [4, 5] → [4]
  const loop = () =>
    T.stack(
      [0, 1, 2].map((i) => rowSums(T.reshape(T.take(X, [i], 0), [4, 5]))),
      0,
    );
  it('inAxes other than 0, negative, and outAxes', () => {
    const Xt = T.transpose(X, [1, 0, 2]); // batch on axis 1
    expectAllClose(T.vmap(rowSums, { inAxes: 1 })(Xt), loop(), { atol: 0, rtol: 0 });
    expectAllClose(T.vmap(rowSums, { inAxes: -2 })(Xt), loop(), { atol: 0, rtol: 0 });
    expectAllClose(T.vmap(rowSums, { outAxes: 1 })(X), T.transpose(loop()), { atol: 0, rtol: 0 });
    expectAllClose(T.vmap(rowSums, { outAxes: -1 })(X), T.transpose(loop()), { atol: 0, rtol: 0 });
  });
  it('tree arguments and tree results, one argument shared', () => {
    const w = new Key(21).normal([5], 'float64', 0, 1, ref);
    const out = T.vmap((p: { a: Tensor; b: Tensor }, shared: Tensor) => ({ s: T.add(p.a, shared), t: [T.mul(p.b, shared)] }), { inAxes: [0, null] })(
      { a: X, b: T.mul(X, 2) },
      w,
    );
    for (let i = 0; i < 3; i++) {
      const xi = T.reshape(T.take(X, [i], 0), [4, 5]);
      expectAllClose(T.reshape(T.take(out.s, [i], 0), [4, 5]), T.add(xi, w), { atol: 0, rtol: 0 });
      expectAllClose(T.reshape(T.take(out.t[0]!, [i], 0), [4, 5]), T.mul(T.mul(xi, 2), w), { atol: 0, rtol: 0 });
    }
  });
  it("a dense layer's per-example weight gradients (both operands batched, one term) are one broadcast product, bit for bit the per-example matmul on cpu", () => {
    const cpu = backend('cpu');
    // Zeros in x against negative ct give −0 products: they must come out as the GEMM's +0.
    const x64 = new Key(22).normal([5, 1, 64], 'float64', 0, 1, ref);
    const xs = T.toBackend(T.cast(T.where(T.greater(x64, 0.5), 0, x64), 'float32'), cpu);
    const ct64 = new Key(23).normal([5, 1, 32], 'float64', 0, 1, ref);
    for (const ct of [T.toBackend(T.cast(ct64, 'float32'), cpu), T.toBackend(T.cast(T.neg(T.abs(ct64)), 'float32'), cpu)]) {
      const got = T.vmap((x: Tensor, c: Tensor) => T.matmul(x, c, { transA: true }))(xs, ct);
      const want = T.stack(
        [0, 1, 2, 3, 4].map((i) => T.matmul(T.reshape(T.take(xs, [i], 0), [1, 64]), T.reshape(T.take(ct, [i], 0), [1, 32]), { transA: true })),
        0,
      );
      expect(Array.from(got.toTypedArray(), (v) => (Object.is(v, -0) ? '-0' : v))).toEqual(
        Array.from(want.toTypedArray(), (v) => (Object.is(v, -0) ? '-0' : v)),
      );
    }
  });
  it('tidy inside vmap, jvp and grad keeps what it returns', () => {
    const x = t64([0.5, -1], [2]),
      v = t64([1, 2], [2]);
    const f = (y: Tensor) => T.tidy(() => T.mul(T.exp(y), 2));
    expectAllClose(T.vmap(f)(T.reshape(x, [2, 1])), T.reshape(f(x), [2, 1]), { atol: 0, rtol: 0 });
    expectAllClose(T.jvp(f)(x, v).tangent, T.mul(T.mul(T.exp(x), 2), v), { atol: 1e-15, rtol: 1e-15 });
    expectAllClose(T.grad((y: Tensor) => T.sum(T.tidy(() => T.mul(y, y))))(x), T.mul(x, 2), { atol: 0, rtol: 0 });
  });
});

describe('errors name the function, the argument and the shapes', () => {
  const x = t64([1, 2, 3], [3]);
  const square = (x: Tensor) => T.mul(x, x);
  it('a tangent of the wrong shape', () => {
    expect(() => T.jvp(square)(x, t64([1, 2], [2]))).toThrow(/^jvp\(square\): the tangent of \(root\) has shape \[2\] but the primal \[3\]$/);
  });
  it('a tangent of the wrong dtype', () => {
    expect(() => T.jvp(square)(x, T.cast(x, 'float32'))).toThrow(/jvp\(square\): the tangent of \(root\) is float32 but the primal float64/);
  });
  it('mismatched vmap batch sizes', () => {
    expect(() => T.vmap((a: Tensor, b: Tensor) => T.add(a, b))(t64([1, 2, 3], [3, 1]), t64([1, 2], [2, 1]))).toThrow(
      /^vmap\(f\): argument 1 of shape \[2, 1\] has 2 examples along axis 0, but argument 0 of shape \[3, 1\] has 3$/,
    );
  });
  it('inAxes of the wrong length, and nothing batched', () => {
    expect(() => T.vmap(square, { inAxes: [0, 0] })(x)).toThrow(/vmap\(square\): inAxes has 2 entries for 1 arguments/);
    expect(() => T.vmap(square, { inAxes: null })(x)).toThrow(/vmap\(square\): no argument has a batch axis/);
    expect(() => T.vmap(square)(t64([], [0, 3]))).toThrow(/^vmap\(square\): argument 0 of shape \[0, 3\] has no examples along its batch axis/);
  });
  it('a traced tensor used after its transformation returned', () => {
    let leaked: Tensor | undefined;
    T.grad((y: Tensor) => {
      leaked = y;
      return T.sum(y);
    })(x);
    expect(() => T.add(leaked!, 1)).toThrow(/^add: one of its inputs was traced by a grad transformation that has already returned/);
    let inside: Tensor | undefined;
    T.vmap((r: Tensor) => {
      inside = r;
      return r;
    })(T.reshape(x, [3, 1]));
    expect(() => T.mul(inside!, 2)).toThrow(/traced by a vmap transformation that has already returned/);
  });
  it('reading values inside vmap', () => {
    expect(() => T.vmap((r: Tensor) => t64([r.item()], [1]))(T.reshape(x, [3, 1]))).toThrow(/inside vmap cannot be read/);
  });
});
