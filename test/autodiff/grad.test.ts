import { describe, expect, it } from 'vitest';
import { countParams, grad, gradcheck, checkGradsDirectional, GradcheckError, valueAndGrad, valueAndGradWithAux, vjp } from '../../src/autodiff/index.js';
import * as T from '../../src/core/index.js';
import { Key, type Tensor } from '../../src/core/index.js';
import { expectAllClose, left, right, t64 } from '../helpers.js';

describe('valueAndGrad over trees', () => {
  it('returns gradients in the structure of the parameters', () => {
    const params = { layers: [{ w: t64([1, 2, 3, 4], [2, 2]), b: t64([0.5, -0.5], [2]) }], scale: t64([3], []) };
    const x = t64([1, -1], [1, 2]);
    const f = (p: typeof params): Tensor => T.mul(T.sum(T.add(T.matmul(x, p.layers[0]!.w), p.layers[0]!.b)), p.scale);
    const { value, grads } = valueAndGrad(f)(params);
    // f = scale * sum(x W + b): x W = [1-3, 2-4] = [-2, -2], + b = [-1.5, -2.5], sum = -4, × 3 = -12.
    expect(value.item()).toBeCloseTo(-12, 12);
    // ∂f/∂W[i,j] = scale * x[i]; ∂f/∂b = scale; ∂f/∂scale = -4.
    expect(grads.layers[0]!.w.toArray()).toEqual([
      [3, 3],
      [-3, -3],
    ]);
    expect(grads.layers[0]!.b.toArray()).toEqual([3, 3]);
    expect(grads.scale.item()).toBeCloseTo(-4, 12);
  });

  it('gives zero gradients for parameters the function ignores', () => {
    const g = grad((p: { a: Tensor; b: Tensor }) => T.sum(T.exp(p.a)))({ a: t64([0], [1]), b: t64([1, 2], [2]) });
    expect(g.b.toArray()).toEqual([0, 0]);
    expect(g.a.toArray()).toEqual([1]);
  });

  it('refuses a non-scalar output and says what to do', () => {
    expect(() => valueAndGrad((x: Tensor) => T.exp(x))(t64([1, 2], [2]))).toThrow(/single number.*vjp/);
  });

  it('returns aux values detached from the tape', () => {
    const r = valueAndGradWithAux((x: Tensor) => {
      const y = T.exp(x);
      return [T.sum(y), { y }] as const;
    })(t64([0, 1], [2]));
    expect(r.aux.y.trace).toBeUndefined();
    expectAllClose(r.grads.toTypedArray(), [1, Math.E], 1e-15);
  });
});

describe('no global tape', () => {
  it('nested calls on independent values do not corrupt each other', () => {
    const outer = valueAndGrad((x: Tensor) => {
      const inner = grad((y: Tensor) => T.sum(T.mul(y, y)))(t64([3], [1]));
      expect(inner.item()).toBe(6);
      return T.sum(T.mul(T.mul(x, x), x));
    })(t64([2], [1]));
    expect(outer.grads.item()).toBe(12);
  });

  it('interleaved calls (one traced value kept alive across another call) stay separate', () => {
    const a = vjp((x: Tensor) => T.mul(x, x))(t64([1, 2], [2]));
    const b = vjp((x: Tensor) => T.exp(x))(t64([0, 0], [2]));
    expect(b.vjp(t64([1, 1], [2])).toArray()).toEqual([1, 1]);
    expect(a.vjp(t64([1, 1], [2])).toArray()).toEqual([2, 4]);
    expect(a.vjp(t64([0, 1], [2])).toArray()).toEqual([0, 4]); // the tape can be pulled back twice
  });

  it("an inner tape over an outer tape's value nests: d/dx Σ ∂/∂y Σ(y·x) = d/dx Σ x = 1", () => {
    const { value, grads } = valueAndGrad((x: Tensor) => T.sum(grad((y: Tensor) => T.sum(T.mul(y, x)))(t64([1], [1]))))(t64([3], [1]));
    expect(value.item()).toBe(3);
    expect(grads.item()).toBe(1);
  });
});

describe('gradcheck', () => {
  it('passes a correct gradient and reports the worst element', () => {
    const r = right(gradcheck((p: Tensor) => T.sum(T.tanh(p)), t64([0.1, 0.2, -0.3], [3])));
    expect(r.checked).toBe(3);
    expect(r.worst.absDiff).toBeLessThan(1e-8);
  });

  it('catches a wrong gradient and names input, index and both values', () => {
    // A function whose tape gradient is deliberately wrong: stopGradient hides a dependency.
    const f = (p: { w: Tensor }): Tensor => T.sum(T.mul(p.w, T.stopGradient(p.w)));
    const e = left(gradcheck(f, { w: t64([1, 2, 3, 4], [2, 2]) }));
    expect(e).toBeInstanceOf(GradcheckError);
    expect(e.message).toMatch(/input w at index \[1, 1\]: numerical (7\.9999|8).* vs analytic 4 /);
  });

  it('the directional check scales to a large tensor and catches errors', () => {
    const w = new Key(1).uniform([300, 200], -1, 1, 'float64');
    right(checkGradsDirectional((p: Tensor) => T.sum(T.tanh(p)), w));
    expect(left(checkGradsDirectional((p: Tensor) => T.sum(T.mul(p, T.stopGradient(p))), w)).message).toMatch(/directional/);
  });

  it('countParams counts scalars in a tree', () => {
    expect(countParams({ a: T.zeros([3, 4]), b: [T.zeros([2])] })).toBe(14);
  });
});

describe('tree order', () => {
  it('does not depend on the order record keys were created in', async () => {
    const { leaves, leafPaths } = await import('../../src/autodiff/index.js');
    const a = { w: t64([1], [1]), b: t64([2], [1]) };
    const b = { b: t64([2], [1]), w: t64([1], [1]) };
    expect(leafPaths(a)).toEqual(['b', 'w']);
    expect(leaves(a).map((t) => t.item())).toEqual(leaves(b).map((t) => t.item()));
  });
});
