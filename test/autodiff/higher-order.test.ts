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
const weighted = (y: Tensor): Tensor => T.sum(T.mul(y, T.toBackend(t64(Array.from({ length: y.size }, (_, i) => Math.cos(i + 1) + 1.25), [...y.shape]), y.backend)));
/** A scalar function of params' gradient: checking it by central differences checks the Hessian of f. */
const gradProbe = <P extends T.Treelike<P>>(f: (p: P) => Tensor) => (p: P): Tensor =>
  T.leaves(T.grad(f)(p)).map(weighted).reduce((a, b) => T.add(a, b));

describe('grad of grad', () => {
  it('perturbations never mix: d/dx [x · d/dy (x + y)] = 1 (the classic confusion gives 2)', () => {
    const x = t64([2.5], [1]), y = t64([-1], [1]);
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
    const x = new Key(3).normal([5, 4], 'float64', 0, 1, ref), labels = [0, 2, 1, 1, 0];
    const loss = (p: { w: Tensor; b: Tensor }) => T.softmaxCrossEntropy(T.add(T.matmul(T.tanh(x), p.w), p.b), labels);
    const penalized = (p: { w: Tensor; b: Tensor }) => {
      const { value, grads } = T.valueAndGrad(loss)(p);
      return T.add(value, T.mul(T.add(T.sumOfSquares(grads.w), T.sumOfSquares(grads.b)), 0.3));
    };
    expectGradients(penalized, onRef({ w: new Key(1).normal([4, 3], 'float64'), b: new Key(2).normal([3], 'float64') }));
  });

  it('second derivatives through conv2d, max pooling, batchNorm, layerNorm, softmax cross-entropy and a customVjp function', () => {
    const net = sequential(
      conv2dLayer(2, 3, 3, { padding: 1 }), batchNorm(3), activation('tanh'), maxPool2dLayer(2),
      flatten(), dense(12, 6), layerNorm(6), T.lambda('softplus', (h) => softplus(h)), dense(6, 3),
    );
    const params = onRef(net.init(new Key(5)));
    const x = new Key(6).normal([2, 2, 4, 4], 'float64', 0, 1, ref), labels = [2, 0];
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
  const perExampleCheck = (model: ReturnType<typeof sequential> | T.Model['layer'], xShape: number[], classes: number, dtype: 'float32' | 'float64', be: ReturnType<typeof backend>, tol: number) => {
    const params = T.mapTree(model.init(new Key(11)) as never, (t: Tensor) => T.toBackend(T.cast(t, dtype), be)) as T.Tree;
    const B = 6;
    const xs = T.toBackend(T.cast(new Key(12).normal([B, 1, ...xShape], 'float64'), dtype), be);
    const ys = T.toBackend(T.cast(T.oneHot(Array.from({ length: B }, (_, i) => (i * 7) % classes), classes, 'float64'), dtype), be);
    const loss = (p: T.Tree, x: Tensor, y: Tensor) => T.softmaxCrossEntropy(model.apply(p as never, x), T.reshape(y, [1, classes]));
    const batched = T.vmap((x: Tensor, y: Tensor) => T.grad((p: T.Tree) => loss(p, x, y))(params))(xs, ys);
    const split = (t: Tensor, i: number) => T.reshape(T.slice(t, t.shape.map((_d, a) => (a === 0 ? i : 0)), t.shape.map((d, a) => (a === 0 ? 1 : d))), t.shape.slice(1));
    for (let i = 0; i < B; i++) {
      const one = T.grad((p: T.Tree) => loss(p, split(xs, i), split(ys, i)))(params);
      T.leaves(one).forEach((g, k) => expectAllClose(split(T.leaves(batched)[k]!, i), g, { atol: tol, rtol: tol }));
    }
  };

  it('the headline MLP 3072→128→20 (ReLU), float64 on reference, to 1e-12', () => {
    perExampleCheck(T.mlp([3072, 128, 20]).layer, [3072], 20, 'float64', ref, 1e-12);
  });
  it('the headline MLP, float32 on cpu, to 1e-5', () => {
    perExampleCheck(T.mlp([3072, 128, 20]).layer, [3072], 20, 'float32', backend('cpu'), 1e-5);
  });
  const cnn = () => sequential(conv2dLayer(3, 4, 3, { padding: 1 }), activation('relu'), maxPool2dLayer(2), conv2dLayer(4, 4, 3), activation('relu'), flatten(), dense(16, 5));
  it('a small CNN, float64 on reference, to 1e-12', () => perExampleCheck(cnn(), [3, 8, 8], 5, 'float64', ref, 1e-12));
  it('a small CNN, float32 on cpu, to 1e-5', () => perExampleCheck(cnn(), [3, 8, 8], 5, 'float32', backend('cpu'), 1e-5));
});

describe('compositions in any order', () => {
  const f = (x: Tensor) => T.sum(T.mul(T.tanh(x), T.exp(x)));
  it('jvp of grad is the Hessian times v; grad of jvp is the same vector', () => {
    const x = t64([0.3, -1.2, 2], [3]), v = t64([1, 0.5, -1], [3]);
    const H = T.hessian(f)(x);
    const hv = T.jvp(T.grad(f))(x, v).tangent;
    expectAllClose(hv, T.matmul(H, T.reshape(v, [3, 1])).toTypedArray(), { atol: 1e-12, rtol: 1e-12 });
    const gj = T.grad((y: Tensor) => T.jvp(f)(y, v).tangent)(x);
    expectAllClose(gj, hv, { atol: 1e-12, rtol: 1e-12 });
  });
  it('vmap of jvp, jvp of vmap and nested vmap agree with the loops they stand for', () => {
    const X = new Key(4).normal([4, 3], 'float64', 0, 1, ref), V = new Key(5).normal([4, 3], 'float64', 0, 1, ref);
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
    const jf = T.jacfwd(g)(x), jr = T.jacrev(g)(x);
    expect(jf.shape).toEqual([4, 2, 4, 3]);
    expectAllClose(jf, jr, { atol: 1e-14, rtol: 1e-12 });
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
  });
  it('reading values inside vmap', () => {
    expect(() => T.vmap((r: Tensor) => t64([r.item()], [1]))(T.reshape(x, [3, 1]))).toThrow(/inside vmap cannot be read/);
  });
});
