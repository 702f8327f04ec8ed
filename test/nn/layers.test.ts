/**
 * The layers beyond dense, regularization by role, trees typed as interfaces,
 * NaN propagation, and architectures as data: values against float64
 * recomputations, gradients against central differences at O(ε²).
 */
import * as E from 'fp-ts/lib/Either.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  activation,
  add,
  batchNorm,
  buildModel,
  cast,
  conv2dLayer,
  customVjp,
  dense,
  denseSet,
  dropout,
  dropoutLayer,
  evaluate,
  fit,
  forwardOf,
  gelu,
  gradcheck,
  grad,
  initialState,
  Key,
  l2Penalty,
  layerNorm,
  leafInfos,
  leakyRelu,
  leaves,
  mapTree,
  mlp,
  mul,
  relu,
  residual,
  rolesOf,
  sequential,
  sum,
  sumOfSquares,
  tanh,
  valueAndGrad,
  withBackend,
  type BatchNormState,
  type ModelArchitecture,
  type NormParams,
  type SequentialSpec,
  type Tensor,
} from '../../src/index.js';
import { decodeModel, outputShape } from '../../src/nn/spec.js';
import { expectAllClose, expectGradients, tensorArb, treeArb, unwrap } from '../../src/testing/index.js';
import { left, t64 } from '../helpers.js';

const weighted = (y: Tensor): Tensor =>
  sum(
    mul(
      y,
      t64(
        Array.from({ length: y.size }, (_, i) => Math.sin(i + 1) + 1.5),
        [...y.shape],
      ),
    ),
  );

describe('activations', () => {
  it('leakyRelu and gelu equal their formulas in float64, and their gradients converge at O(ε²)', () => {
    fc.assert(
      fc.property(tensorArb({ avoid: [0], gap: 0.05 }), (x) => {
        const xs = Array.from(x.toTypedArray());
        expectAllClose(
          leakyRelu(x, 0.1),
          xs.map((v) => (v > 0 ? v : 0.1 * v)),
          { atol: 1e-15 },
        );
        expectAllClose(
          gelu(x),
          xs.map((v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)))),
          { atol: 1e-14 },
        );
        expectGradients((p: Tensor) => weighted(leakyRelu(p, 0.1)), x);
        expectGradients((p: Tensor) => weighted(gelu(p)), x);
      }),
      { numRuns: 25 },
    );
  });

  it('NaN propagates: relu, leakyRelu and the activation layers give NaN for NaN, on every backend', () => {
    for (const backend of ['reference', 'cpu']) {
      withBackend(backend, () => {
        // Long enough for the cpu backend's WASM kernel (arrays in its memory), with NaN in the SIMD body and the scalar tail.
        const values = Array.from({ length: 4099 }, (_, i) => (i % 1000 === 7 ? NaN : Math.sin(i)));
        const y = relu(cast(t64(values, [4099]), 'float32')).toTypedArray();
        values.forEach((v, i) => {
          expect(Number.isNaN(y[i]!), `${backend} relu at ${i}`).toBe(Number.isNaN(v));
        });
      });
    }
    const nan = t64([NaN, -1, 2], [3]);
    for (const name of ['relu', 'tanh', 'sigmoid', 'leakyRelu', 'gelu'] as const) {
      expect(Number.isNaN(activation(name).apply([], nan).toTypedArray()[0]!), name).toBe(true);
    }
  });
});

describe('layerNorm', () => {
  it('normalizes each row to mean 0 and variance 1 before the gain and bias (float64 recomputation)', () => {
    const ln = layerNorm(4);
    const x = t64([1, 2, 3, 4, -2, 0, 5, 1], [2, 4]);
    const p = { g: t64([1, 2, 0.5, -1], [4]), b: t64([0, 1, 0, 2], [4]) };
    const rows = [
      [1, 2, 3, 4],
      [-2, 0, 5, 1],
    ];
    const want = rows.flatMap((r) => {
      const m = r.reduce((a, b) => a + b) / 4,
        v = r.reduce((a, b) => a + (b - m) ** 2, 0) / 4;
      return r.map((xi, j) => ((xi - m) / Math.sqrt(v + 1e-5)) * [1, 2, 0.5, -1][j]! + [0, 1, 0, 2][j]!);
    });
    expectAllClose(ln.apply(p, x), want, { atol: 1e-12 });
  });

  it('gradients for the input, gain and bias', () => {
    const ln = layerNorm(3);
    fc.assert(
      fc.property(treeArb({ g: [3], b: [3] } as const), tensorArb({ shape: [4, 3] }), (p, x) => {
        expectGradients((q: NormParams) => weighted(ln.apply(q, x)), p);
        expectGradients((xi: Tensor) => weighted(ln.apply(p, xi)), x);
      }),
      { numRuns: 20, seed: 20261130 },
    ); // fixed: a row of near-equal values makes the O(ε²) check ill-conditioned
  });
});

describe('batchNorm', () => {
  const bn = batchNorm(2, { momentum: 0.1 });
  const x = t64([1, 10, 2, 20, 4, 40, 5, 50], [4, 2]); // channel 0: 1,2,4,5; channel 1: 10,20,40,50
  const p = { g: t64([1, 1], [2]), b: t64([0, 0], [2]) };

  it('training normalizes with the batch statistics and moves the running ones by the momentum', () => {
    const { y, state } = forwardOf(bn, p, x, { train: true, key: undefined, state: initialState(bn) });
    const col = (t: Tensor, c: number) => Array.from(t.toTypedArray()).filter((_, i) => i % 2 === c);
    for (const c of [0, 1]) {
      const ys = col(y, c);
      expect(Math.abs(ys.reduce((a, b) => a + b) / 4)).toBeLessThan(1e-12);
      expect(ys.reduce((a, b) => a + b * b, 0) / 4).toBeCloseTo(1, 4);
    }
    // Batch means 3 and 30; unbiased variances 10/3 and 1000/3.
    expectAllClose(state.mean, [0.9 * 0 + 0.1 * 3, 0.1 * 30], { atol: 1e-12 });
    expectAllClose(state.var, [0.9 + (0.1 * 10) / 3, 0.9 + (0.1 * 1000) / 3], { atol: 1e-9 });
  });

  it('eval mode uses the running statistics it is given, and changes no state', () => {
    const s: BatchNormState = { mean: t64([3, 30], [2]), var: t64([2, 200], [2]) };
    const { y, state } = forwardOf(bn, p, x, { train: false, key: undefined, state: s });
    expect(state).toBe(s);
    expectAllClose(
      y,
      [1, 10, 2, 20, 4, 40, 5, 50].map((v, i) => (v - [3, 30][i % 2]!) / Math.sqrt([2, 200][i % 2]! + 1e-5)),
      { atol: 1e-12 },
    );
    expectAllClose(bn.apply(p, x, s), y);
  });

  it('gradients in training mode (through the batch statistics) for images and parameters', () => {
    const bn4 = batchNorm(2);
    fc.assert(
      fc.property(treeArb({ g: [2], b: [2] } as const), tensorArb({ shape: [3, 2, 2, 2] }), (q, xi) => {
        const f = (pp: NormParams, xx: Tensor) => weighted(forwardOf(bn4, pp, xx, { train: true, key: undefined, state: initialState(bn4) }).y);
        expectGradients((pp: NormParams) => f(pp, xi), q);
        expectGradients((xx: Tensor) => f(q, xx), xi);
      }),
      { numRuns: 15 },
    );
  });
});

describe('dropout', () => {
  it('drops about `rate` of the elements, scales the rest by 1/(1 − rate), replays from the key, and is the identity in eval mode', () => {
    const x = t64(
      Array.from({ length: 10000 }, () => 1),
      [100, 100],
    );
    const a = dropout(x, 0.3, new Key(5)).toTypedArray();
    const kept = a.filter((v) => v !== 0);
    expect(Math.abs(kept.length / 10000 - 0.7)).toBeLessThan(0.03);
    for (const v of kept) expect(v).toBeCloseTo(1 / 0.7, 12);
    expect(dropout(x, 0.3, new Key(5)).toTypedArray()).toEqual(a);
    expect(dropout(x, 0.3, new Key(6)).toTypedArray()).not.toEqual(a);
    const layer = dropoutLayer(0.3);
    expect(layer.apply([], x)).toBe(x);
    expect(forwardOf(layer, [], x, { train: true, key: new Key(5), state: [] }).y.toTypedArray()).toEqual(a);
  });

  it('its gradient is the mask (a fixed key makes it a fixed linear map)', () => {
    fc.assert(
      fc.property(tensorArb({ shape: [3, 4] }), (x) => {
        expectGradients((p: Tensor) => weighted(dropout(p, 0.4, new Key(1))), x);
      }),
      { numRuns: 10 },
    );
  });
});

describe('residual, conv2d layer, sequential', () => {
  it('residual(f)(x) = x + f(x), with gradients through both paths', () => {
    const inner = sequential(dense(3, 3), activation('tanh'));
    const r = residual(inner);
    const params = mapTree(r.init(new Key(1)), (t) => cast(t, 'float64'));
    const x = t64([0.1, -0.2, 0.3, 0.5, 0.4, -0.9], [2, 3]);
    expectAllClose(r.apply(params, x), add(x, inner.apply(params, x)), { atol: 0 });
    expectGradients((p: typeof params) => weighted(r.apply(p, x)), params);
    expect(() => residual(dense(3, 2)).apply(residual(dense(3, 2)).init(new Key(0)), x)).toThrow(
      /the inner layers map \[2, 3\] to \[2, 2\]; a skip connection needs the same shape/,
    );
  });

  it('the conv2d layer adds one bias per output channel; gradients for filters and biases', () => {
    const layer = conv2dLayer(2, 3, 3, { padding: 1 });
    fc.assert(
      fc.property(treeArb({ w: [3, 2, 3, 3], b: [3] } as const), tensorArb({ shape: [1, 2, 4, 4] }), (p, x) => {
        expectGradients((q: typeof p) => weighted(layer.apply(q, x)), p);
      }),
      { numRuns: 10 },
    );
  });
});

describe('regularization by role', () => {
  const model = sequential(dense(4, 3), layerNorm(3), activation('relu'), dense(3, 2));
  // Biases and gains shifted off their initial 0 and 1, so a penalty on them shows.
  const params = mapTree(model.init(new Key(2)), (t) => add(t, 0.1));

  it('layers declare roles: dense weights and biases, norm gains', () => {
    expect(rolesOf(model, params)).toEqual(['bias', 'weight', 'bias', 'gain', 'bias', 'weight']);
    expect(leafInfos(params, rolesOf(model, params)).map((l) => l.path)).toEqual(['[0].b', '[0].w', '[1].b', '[1].g', '[3].b', '[3].w']);
  });

  it('loss-form L2 sums the weights (biases when asked, gains never by default, or any predicate)', () => {
    const roles = rolesOf(model, params);
    const sq = leaves(params).map((t) => sumOfSquares(t).item());
    const pen = (o: Parameters<typeof l2Penalty>[1]) => l2Penalty(params, o, roles)!.item();
    expect(pen({ lambda: 0.5, mode: 'loss', includeBias: false })).toBeCloseTo(0.5 * (sq[1]! + sq[5]!), 6);
    expect(pen({ lambda: 0.5, mode: 'loss', includeBias: true })).toBeCloseTo(0.5 * (sq[0]! + sq[1]! + sq[2]! + sq[4]! + sq[5]!), 6);
    expect(pen({ lambda: 0.5, mode: 'loss', includeBias: false, applies: (l) => l.role === 'gain' })).toBeCloseTo(0.5 * sq[3]!, 6);
  });

  it('gradient-form L2 and weight decay follow the same roles inside fit', () => {
    // One sgd step at lr 1 on zero data gradient: what moves is exactly the regularization.
    const x = new Float32Array(4 * 8);
    const data = { train: denseSet(x, new Uint8Array(8), 4, 2), val: denseSet(x, new Uint8Array(8), 4, 2) };
    const zeroLoss = () => mul(sum(leaves(params)[0]!), 0);
    const step = (extra: object) =>
      unwrap(
        fit(model, params, data, {
          epochs: 1,
          batchSize: 8,
          optimizer: { kind: 'sgd', lr: 1, weightDecay: 0 },
          shuffle: false,
          seed: 0,
          loss: zeroLoss,
          ...extra,
        }),
      ).params;
    const moved = (next: typeof params) => leaves(next).map((t, i) => t.toTypedArray().some((v, j) => v !== leaves(params)[i]!.toTypedArray()[j]));
    expect(moved(step({ l2: { lambda: 0.1, mode: 'gradient', includeBias: false } }))).toEqual([false, true, false, false, false, true]);
    expect(moved(step({ l2: { lambda: 0.1, mode: 'gradient', includeBias: true } }))).toEqual([true, true, true, false, true, true]);
    const wd = (applies?: (l: { role: string }) => boolean) =>
      unwrap(
        fit(model, params, data, {
          epochs: 1,
          batchSize: 8,
          optimizer: { kind: 'sgd', lr: 0.5, weightDecay: 0.1 },
          shuffle: false,
          seed: 0,
          loss: zeroLoss,
          ...(applies ? { weightDecayApplies: applies } : {}),
        }),
      ).params;
    expect(moved(wd((l) => l.role === 'weight'))).toEqual([false, true, false, false, false, true]);
    expectAllClose(leaves(wd((l) => l.role === 'weight'))[1]!, mul(leaves(params)[1]!, 1 - 0.5 * 0.1), { atol: 0 });
  });
});

describe('trees', () => {
  interface Affine {
    readonly w: Tensor;
    readonly b: Tensor;
  }
  it('parameters typed as an interface or a readonly record differentiate and train', () => {
    const p: Affine = { w: t64([1, 2, 3, 4], [2, 2]), b: t64([0.5, -0.5], [2]) };
    const g = grad((q: Affine) => sum(mul(add(q.w, q.b), q.w)))(p);
    expectAllClose(g.w, [2 * 1 + 0.5, 2 * 2 - 0.5, 2 * 3 + 0.5, 2 * 4 - 0.5], { atol: 0 });
    const rec: Readonly<Record<string, Tensor>> = { a: t64([3], [1]) };
    expectAllClose(grad((q: Readonly<Record<string, Tensor>>) => sumOfSquares(q['a']!))(rec)['a']!, [6]);
  });

  it('a class instance is refused with its class name, never turned into a plain object', () => {
    class Params {
      constructor(readonly w: Tensor) {}
    }
    const bad = new Params(t64([1], [1])) as unknown as { w: Tensor };
    expect(() => valueAndGrad((q: { w: Tensor }) => sum(q.w))(bad)).toThrow(/instance of Params at the root: class instances are not trees.*plain object/);
    expect(() => leaves({ layers: [bad] } as never)).toThrow(/instance of Params at layers\[0\]/);
  });
});

describe('NaN inputs in training', () => {
  it('fit on a relu MLP with a NaN pixel returns the non-finite-loss error', () => {
    const x = Float32Array.from({ length: 64 * 6 }, (_, i) => Math.sin(i));
    const val = denseSet(
      x.slice(),
      Uint8Array.from({ length: 64 }, (_, i) => i % 3),
      6,
      3,
    );
    x[10] = NaN;
    const set = denseSet(
      x,
      Uint8Array.from({ length: 64 }, (_, i) => i % 3),
      6,
      3,
    );
    const model = mlp([6, 8, 3], { activation: 'relu' });
    const r = fit(
      model,
      model.layer.init(new Key(0)),
      { train: set, val },
      { epochs: 1, batchSize: 16, optimizer: { kind: 'sgd', lr: 0.1 }, shuffle: false, seed: 0 },
    );
    expect(E.isLeft(r) && r.left.name).toBe('TrainingError');
    expect(E.isLeft(r) && r.left.message).toMatch(/loss became NaN at epoch 1, batch 1 of 4.*check the inputs for NaN/);
  });
});

describe('user-defined primitives', () => {
  it('gradcheck and valueAndGrad use the declared VJP, and a wrong cotangent shape is named', () => {
    const cube = customVjp(
      'cube',
      ([x]: [Tensor]) => mul(mul(x, x), x),
      (ct, [x]) => [mul(ct, mul(mul(x, x), 3))],
    );
    fc.assert(
      fc.property(tensorArb(), (x) => {
        unwrap(gradcheck((p: Tensor) => weighted(cube(p)), x, { atol: 1e-6, rtol: 1e-5 }));
      }),
      { numRuns: 20 },
    );
    const two = customVjp(
      'affine',
      ([a, b]: [Tensor, Tensor]) => add(mul(a, 2), b),
      (ct) => [mul(ct, 2), ct],
    );
    // b is broadcast by the forward; this VJP forgets to sum its cotangent back to b's shape, and is told so.
    expect(() => grad((p: { a: Tensor; b: Tensor }) => sum(tanh(two(p.a, p.b))))({ a: t64([0.1, 0.2], [2]), b: t64([0.3], [1]) })).toThrow(
      /customVjp 'affine': the cotangent of input 1 has shape \[2\] but the input \[1\]/,
    );
  });
});

describe('architectures as data', () => {
  const cnn: SequentialSpec = {
    kind: 'sequential',
    input: [3, 8, 8],
    layers: [{ type: 'conv2d', filters: 4, kernel: 3, padding: 1 }, { type: 'maxPool2d', size: 2 }, { type: 'flatten' }, { type: 'dense', units: 5 }],
  };
  it('infers every shape, and names the layer that does not fit', () => {
    expect(unwrap(outputShape(cnn))).toEqual([5]);
    const bad = { ...cnn, layers: [{ type: 'dense', units: 3 }] } as SequentialSpec;
    expect(E.isLeft(buildModel(bad)) && (buildModel(bad) as E.Left<Error>).left.message).toMatch(
      /layers\[0\] \(dense\): takes vectors but gets examples of shape \[3, 8, 8\]: put a flatten before it/,
    );
    const res = { kind: 'sequential', input: [6], layers: [{ type: 'residual', layers: [{ type: 'dense', units: 4 }] }] } as SequentialSpec;
    expect((buildModel(res) as E.Left<Error>).left.message).toMatch(/layers\[0\] \(residual\): its layers map \[6\] to \[4\]/);
  });

  it('decodes untrusted specs with io-ts, naming the bad key', () => {
    // buildModel decodes too: an untyped spec (parsed JSON) with an unknown layer type or key is refused, not dropped or sized NaN.
    const untyped = JSON.parse(
      '{"kind":"sequential","input":[3,8,8],"layers":[{"type":"conv2D","filters":4,"kernel":3},{"type":"flatten"},{"type":"dense","units":2}]}',
    ) as ModelArchitecture;
    expect(left(buildModel(untyped)).message).toMatch(/^invalid model architecture:\nlayers\[0\]\.type: expected one of "dense", "conv2d", .*got "conv2D"$/);
    const typo = JSON.parse(
      '{"kind":"sequential","input":[3,8,8],"layers":[{"type":"conv2d","filtres":4,"filters":4,"kernel":3},{"type":"flatten"},{"type":"dense","units":2}]}',
    ) as ModelArchitecture;
    expect(left(buildModel(typo)).message).toBe("invalid model architecture: unknown key 'layers[0].filtres' (check the spelling)");
    const missing = JSON.parse('{"kind":"sequential","input":[3,8,8],"layers":[{"type":"conv2d","filtres":4,"kernel":3}]}') as ModelArchitecture;
    expect(left(buildModel(missing)).message).toMatch(/^invalid model architecture:\nlayers\[0\]\.filters: missing/);
    const r = decodeModel({ kind: 'sequential', input: [4], layers: [{ type: 'dense', units: -1 }] });
    expect(E.isLeft(r) && r.left.message).toBe('invalid model architecture:\nlayers[0].units: expected a positive integer, got -1');
    const u = decodeModel({ kind: 'sequential', input: [4], layers: [{ type: 'dense', units: 3 }, { type: 'swish' }] });
    expect(E.isLeft(u) && u.left.message).toMatch(
      /^invalid model architecture:\nlayers\[1\]\.type: expected one of "dense", "conv2d", maxPool2d, avgPool2d, .*"residual", got "swish"$/,
    );
    const m = unwrap(decodeModel(cnn));
    const y = m.layer.apply(m.layer.init(new Key(0)), new Key(1).normal([2, 3 * 8 * 8]));
    expect(y.shape).toEqual([2, 5]);
  });
});

describe('fit with a stateful model (batchNorm, dropout)', () => {
  const n = 120;
  const x = Float32Array.from({ length: n * 6 }, (_, i) => Math.sin(i * 1.3) + (i % 6 === 0 ? Math.floor(i / 6) % 3 : 0));
  const y = Uint8Array.from({ length: n }, (_, i) => i % 3);
  const data = { train: denseSet(x, y, 6, 3), val: denseSet(x.slice(0, 60 * 6), y.slice(0, 60), 6, 3) };
  const model = sequential(dense(6, 8), batchNorm(8), activation('relu'), dropoutLayer(0.2), dense(8, 3));
  const init = model.init(new Key(3));
  const opts = { epochs: 6, batchSize: 20, optimizer: { kind: 'momentum' as const, lr: 0.05, momentum: 0.9 }, shuffle: true, seed: 1 };

  it('early stopping restores the best epoch’s parameters and running statistics together', () => {
    const seen = new Map<number, { params: unknown; layerState: unknown }>();
    const r = unwrap(
      fit(model, init, data, {
        ...opts,
        earlyStopping: { patience: 2, rule: 'no-improvement', restoreBest: 'always' },
        onEvent: (e) => {
          if (e.type === 'epoch') seen.set(e.record.epoch, { params: e.state.params, layerState: e.state.layerState });
        },
      }),
    );
    const best = seen.get(r.bestEpoch)!;
    expect(r.returnedEpoch).toBe(r.bestEpoch);
    expect(r.params).toBe(best.params);
    expect(r.layerState).toBe(best.layerState);
    // And they evaluate to the best epoch's recorded validation loss.
    expect(evaluate(model, r.params, data.val, { layerState: r.layerState }).loss).toBeCloseTo(r.history[r.bestEpoch - 1]!.valLoss, 6);
  });

  it('an interrupted run resumes (state, dropout keys and all) to the same history', () => {
    const strip = (h: readonly { seconds: number }[]) => h.map(({ seconds: _s, ...rest }) => rest);
    const full = unwrap(fit(model, init, data, opts));
    const ctl = new AbortController();
    const part = unwrap(
      fit(model, init, data, {
        ...opts,
        signal: ctl.signal,
        onEvent: (e) => {
          if (e.type === 'batch' && e.epoch === 3 && e.batch === 2) ctl.abort();
        },
      }),
    );
    expect(part.interrupted).toBe(true);
    const resumed = unwrap(fit(model, init, data, { ...opts, resume: part.state }));
    expect(strip(resumed.history)).toEqual(strip(full.history));
  });
});
