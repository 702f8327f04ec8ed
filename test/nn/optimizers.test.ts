/** Each optimizer's step against an update computed by hand on a two-element example. */
import { describe, expect, it } from 'vitest';
import { adam, momentum, sgd } from '../../src/nn/index.js';
import type { Tensor } from '../../src/core/index.js';
import { expectAllClose, t64 } from '../helpers.js';

const p0 = { w: t64([1, -2], [2]) };
const g1 = { w: t64([0.5, 0.25], [2]) };
const g2 = { w: t64([-1, 2], [2]) };
const vals = (p: { w: Tensor }) => p.w.toTypedArray();

describe('optimizers equal hand-computed updates', () => {
  it('sgd: p - lr g', () => {
    const o = sgd({ lr: 0.1 });
    const r = o.step(o.init(p0), p0, g1);
    expectAllClose(vals(r.params), [1 - 0.05, -2 - 0.025], 1e-15);
  });

  it('sgd with decoupled weight decay: p (1 - lr wd) - lr g', () => {
    const o = sgd({ lr: 0.1, weightDecay: 0.5 });
    const r = o.step(o.init(p0), p0, g1);
    expectAllClose(vals(r.params), [1 * 0.95 - 0.05, -2 * 0.95 - 0.025], 1e-15);
  });

  it("momentum (the report's form): v = γv + αg, p = p - v, over two steps", () => {
    const o = momentum({ lr: 0.1, momentum: 0.8 });
    const s1 = o.step(o.init(p0), p0, g1);
    // v1 = 0.1 g1 = [0.05, 0.025]; p1 = [0.95, -2.025]
    expectAllClose(vals(s1.params), [0.95, -2.025], 1e-15);
    const s2 = o.step(s1.state, s1.params, g2);
    // v2 = 0.8 v1 + 0.1 g2 = [0.04 - 0.1, 0.02 + 0.2] = [-0.06, 0.22]; p2 = p1 - v2
    expectAllClose(vals(s2.params), [0.95 + 0.06, -2.025 - 0.22], 1e-15);
  });

  it('nesterov: p = p - (γ v_new + α g)', () => {
    const o = momentum({ lr: 0.1, momentum: 0.8, nesterov: true });
    const s1 = o.step(o.init(p0), p0, g1);
    // v1 = [0.05, 0.025]; step = 0.8 v1 + 0.1 g1 = [0.09, 0.045]
    expectAllClose(vals(s1.params), [1 - 0.09, -2 - 0.045], 1e-15);
  });

  it('adam: bias-corrected moments', () => {
    const o = adam({ lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8 });
    const s1 = o.step(o.init(p0), p0, g1);
    // t=1: m̂ = g, v̂ = g², step = lr g / (|g| + eps) ≈ lr·sign(g)
    expectAllClose(vals(s1.params), [1 - (0.01 * 0.5) / (0.5 + 1e-8), -2 - (0.01 * 0.25) / (0.25 + 1e-8)], 1e-14);
    const s2 = o.step(s1.state, s1.params, g2);
    const m = [0.9 * 0.05 + 0.1 * -1, 0.9 * 0.025 + 0.1 * 2].map((x) => x / (1 - 0.81));
    const v = [0.999 * 0.001 * 0.25 + 0.001 * 1, 0.999 * 0.001 * 0.0625 + 0.001 * 4].map((x) => x / (1 - 0.999 ** 2));
    const p1 = vals(s1.params);
    expectAllClose(
      vals(s2.params),
      [0, 1].map((i) => p1[i]! - (0.01 * m[i]!) / (Math.sqrt(v[i]!) + 1e-8)),
      1e-12,
    );
  });

  it('adamW with gradient L2: decayed parameters, the L2 term in both moments', () => {
    const o = adam({ lr: 0.01, weightDecay: 0.5, gradientL2: () => 0.1 });
    const s1 = o.step(o.init(p0), p0, g1);
    // g' = g + 0.1 p = [0.6, 0.05]; t=1: m̂ = g', v̂ = g'²; p' = p (1 − 0.005) − lr g'/(|g'| + eps)
    const g = [0.5 + 0.1 * 1, 0.25 + 0.1 * -2];
    expectAllClose(
      vals(s1.params),
      [0, 1].map((i) => [1, -2][i]! * (1 - 0.01 * 0.5) - (0.01 * g[i]!) / (Math.abs(g[i]!) + 1e-8)),
      1e-14,
    );
    const st = s1.state as { m: { w: Tensor }; v: { w: Tensor } };
    expectAllClose(
      vals(st.m),
      g.map((x) => 0.1 * x),
      1e-15,
    );
    expectAllClose(
      vals(st.v),
      g.map((x) => 0.001 * x * x),
      1e-15,
    );
  });

  it('steps never modify their inputs', () => {
    const o = momentum({ lr: 0.1, momentum: 0.9 });
    const st = o.init(p0);
    o.step(st, p0, g1);
    expect([...vals(p0)]).toEqual([1, -2]);
    expect([...vals(g1)]).toEqual([0.5, 0.25]);
  });
});
