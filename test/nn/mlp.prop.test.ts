/** Whole MLPs of random depth, widths and activation, with both L2 forms, pass gradcheck. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { gradcheck, mapTree, valueAndGrad } from '../../src/autodiff/index.js';
import { add, cast, Key, type Tensor } from '../../src/core/index.js';
import {
  crossEntropy,
  dense,
  activation,
  gradientL2Of,
  l2Penalty,
  leafInfos,
  rolesOf,
  mlp,
  mlpParamCount,
  paperUniform,
  sequential,
  sgd,
  momentum,
  type MlpParams,
  countParams,
} from '../../src/index.js';
import { expectAllClose, right } from '../helpers.js';

describe('MLPs', () => {
  it('gradcheck passes on random architectures with the L2 loss term', () => {
    const arb = fc.record({
      widths: fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 2, maxLength: 5 }),
      act: fc.constantFrom('tanh' as const, 'sigmoid' as const, 'relu' as const),
      batch: fc.integer({ min: 1, max: 4 }),
      lambda: fc.constantFrom(0, 0.01, 0.3),
      includeBias: fc.boolean(),
      seed: fc.integer(),
    });
    fc.assert(
      fc.property(arb, ({ widths, act, batch, lambda, includeBias, seed }) => {
        const sizes = [...widths, 3];
        const model = mlp(sizes, { activation: act, init: 'glorot-normal' });
        const [kp, kx] = new Key(seed).split(2);
        const params = mapTree(model.layer.init(kp!), (t) => cast(t, 'float64')) as MlpParams;
        const x = kx!.normal([batch, sizes[0]!], 'float64');
        const labels = Array.from({ length: batch }, (_, i) => i % 3);
        if (act === 'relu') {
          // Keep relu's inputs away from the kink, where central differences are meaningless.
          let h = x;
          for (const p of params.slice(0, -1)) {
            const z = add(dense(p.w.shape[0]!, p.w.shape[1]!).apply(p, h), 0);
            fc.pre(z.toTypedArray().every((v) => Math.abs(v) > 1e-4));
            h = activation('relu').apply([], z);
          }
        }
        const l2 = { lambda, mode: 'loss' as const, includeBias };
        const loss = (p: MlpParams): Tensor => {
          const ce = crossEntropy(model.layer.apply(p, x), labels);
          const pen = l2Penalty(p, l2, rolesOf(model.layer, p));
          return pen === undefined ? ce : add(ce, pen);
        };
        right(gradcheck(loss, params, { atol: 1e-6, rtol: 1e-4 }));
      }),
      { numRuns: 40 },
    );
  });

  it("the gradient-form L2 adds exactly λ·W to the gradient (the report's convention), biases only when asked", () => {
    const model = mlp([4, 3, 2], { activation: 'tanh', init: 'glorot-uniform' });
    const params = mapTree(model.layer.init(new Key(1)), (t) => cast(t, 'float64')) as MlpParams;
    const x = cast(new Key(2).normal([5, 4]), 'float64');
    const { grads } = valueAndGrad((p: MlpParams) => crossEntropy(model.layer.apply(p, x), [0, 1, 0, 1, 1]))(params);
    for (const includeBias of [true, false]) {
      const l2 = gradientL2Of({ lambda: 0.1, mode: 'gradient', includeBias }, leafInfos(params, rolesOf(model.layer, params)));
      // With lr 1 the sgd step is p − (g + λp): read the penalized gradient back off it.
      const next = sgd({ lr: 1, gradientL2: l2 }).step([], params, grads).params;
      const w = params[0]!.w.toTypedArray(),
        g = grads[0]!.w.toTypedArray();
      expectAllClose(
        next[0]!.w.toTypedArray(),
        Array.from(w, (v, i) => v - (g[i]! + 0.1 * v)),
        1e-15,
      );
      const b = params[1]!.b.toTypedArray(),
        gb = grads[1]!.b.toTypedArray();
      expectAllClose(
        next[1]!.b.toTypedArray(),
        Array.from(b, (v, i) => v - (gb[i]! + (includeBias ? 0.1 * v : 0))),
        1e-15,
      );
      // The fused momentum update applies the same penalty: its first step is p − lr·(g + λp).
      const m = momentum({ lr: 0.5, momentum: 0.9, gradientL2: l2 });
      const mn = m.step(m.init(params), params, grads).params;
      expectAllClose(
        mn[0]!.w.toTypedArray(),
        Array.from(w, (v, i) => v - 0.5 * (g[i]! + 0.1 * v)),
        1e-15,
      );
    }
    expect(gradientL2Of({ lambda: 0.1, mode: 'loss', includeBias: true }, leafInfos(params, rolesOf(model.layer, params)))('[0].w', 1)).toBe(0);
  });

  it("parameter count: the report's 3072→128→20 has 395,924 and 3072→120→120→20 has 385,700", () => {
    expect(mlpParamCount([3072, 128, 20])).toBe(395924);
    expect(mlpParamCount([3072, 120, 120, 20])).toBe(385700);
    expect(countParams(mlp([3072, 128, 20]).layer.init(new Key(0)))).toBe(395924);
  });

  it("the paper initializer is NumPy's seed-42 uniform[0, 0.01) draw, bias as row 0, same for every layer", () => {
    const p = paperUniform()(new Key(123), 3, 2);
    // np.random.seed(42); np.random.uniform(0, 0.01, (4, 2)) — printed by NumPy 2.4:
    const numpy = [
      0.003745401188473625, 0.009507143064099163, 0.007319939418114051, 0.005986584841970366, 0.0015601864044243652, 0.0015599452033620265,
      0.0005808361216819946, 0.008661761457749353,
    ];
    expectAllClose(p.b.toTypedArray(), numpy.slice(0, 2), 1e-9, 1e-7);
    expectAllClose(p.w.toTypedArray(), numpy.slice(2), 1e-9, 1e-7);
  });

  it('sequential composes any layers; parameters follow the layers', () => {
    const net = sequential(dense(3, 4, 'he-normal'), activation('relu'), dense(4, 2, 'he-normal'));
    const params = net.init(new Key(0));
    expect(params[0].w.shape).toEqual([3, 4]);
    expect(params[1]).toEqual([]);
    expect(net.apply(params, new Key(1).normal([6, 3])).shape).toEqual([6, 2]);
  });
});
