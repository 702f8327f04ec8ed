/**
 * fit's jitted steps against its eager ones (the reference here: the path the
 * report's guards were recorded on): the same histories and weights, bit for
 * bit, for the headline MLP (the report's L2 in the loss) and for cnn-coarse's
 * network (batchNorm state, max pools, Nesterov momentum with weight decay,
 * a cosine schedule, dropout drawn from each step's key), with a smaller last
 * batch (a second program); a layer that reads values on the host falls back to
 * eager steps, says so, and still gives the eager numbers.
 */
import * as E from 'fp-ts/lib/Either.js';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { backend, createCpuBackend, Key, leaves, withBackend, type Backend, type Tensor, type Tree } from '../../src/index.js';
import { denseSet } from '../../src/data/index.js';
import { fit, mlp, modelFromSpec, type FitEvent, type FitOptions, type SequentialSpec } from '../../src/nn/index.js';

const bits = (t: Tensor): string[] => Array.from(t.toTypedArray(), (v) => (Object.is(v, -0) ? '-0' : String(v)));

const dataOf = (be: Backend, n: number, features: number, classes: number) => {
  const key = new Key(3);
  const x = key.normal([n, features], 'float32', 0, 1, 'reference').toTypedArray() as Float32Array;
  const y = Uint8Array.from({ length: n }, (_, i) => (i * 7 + 3) % classes);
  const cut = Math.floor(n * 0.8);
  return {
    train: denseSet(x.slice(0, cut * features), y.slice(0, cut), features, classes, be),
    val: denseSet(x.slice(cut * features), y.slice(cut), features, classes, be),
  };
};

type AnyModel = ReturnType<typeof mlp>;
const both = (model: AnyModel, be: Backend, data: ReturnType<typeof dataOf>, opts: FitOptions) => {
  const run = (jit: boolean) => {
    const events: FitEvent[] = [];
    // withBackend: the initial weights and the layers' state (batchNorm) are made there too.
    const r = withBackend(be, () =>
      fit(model, model.layer.init(new Key(0)) as never, data, {
        ...opts,
        backend: be,
        jit,
        onEvent: (e) => {
          if (e.type !== 'batch' && e.type !== 'epoch') events.push(e);
        },
      }),
    );
    if (E.isLeft(r)) throw r.left;
    return { r: r.right, events };
  };
  return { eager: run(false), jitted: run(true) };
};

const expectSame = (a: ReturnType<typeof both>['eager'], b: ReturnType<typeof both>['eager']) => {
  const strip = (h: readonly { seconds: number }[]) => h.map(({ seconds: _s, ...rest }) => rest);
  expect(strip(b.r.history)).toEqual(strip(a.r.history));
  const pa = leaves(a.r.params as Tree),
    pb = leaves(b.r.params as Tree);
  expect(pb.length).toBe(pa.length);
  pa.forEach((t, i) => {
    expect(bits(pb[i]!)).toEqual(bits(t));
  });
  const sa = leaves(a.r.layerState as Tree),
    sb = leaves(b.r.layerState as Tree);
  sa.forEach((t, i) => {
    expect(bits(sb[i]!)).toEqual(bits(t));
  });
};

describe('fit: jitted steps equal eager steps bit for bit', () => {
  it.each([
    ['cpu, 2 threads', () => createCpuBackend({ threads: 2 })],
    ['reference', () => backend('reference')],
  ] as const)('the headline MLP (3072→128→20 ReLU, momentum, L2 in the loss), 2 epochs (%s)', (_n, make) => {
    const be = make();
    const model = mlp([3072, 128, 20], { activation: 'relu', init: 'glorot-uniform' });
    const data = dataOf(be, 300, 3072, 20);
    const { eager, jitted } = both(model, be, data, {
      epochs: 2,
      batchSize: 100,
      shuffle: true,
      seed: 4,
      optimizer: { kind: 'momentum', lr: 0.01, momentum: 0.8 },
      l2: { lambda: 0.01, mode: 'loss', includeBias: false },
    });
    expect(jitted.events[0]).toMatchObject({ type: 'start', step: { path: 'jit' } });
    expect(jitted.events.some((e) => e.type === 'stepPath')).toBe(false);
    expect(eager.events[0]).toMatchObject({ type: 'start', step: { path: 'eager', reason: 'jit: false' } });
    expectSame(eager, jitted);
    if (be.name === 'cpu') be.dispose();
  });

  const coarse = (parse(readFileSync(new URL('../../examples/configs/cnn-coarse.yaml', import.meta.url), 'utf8')) as { model: Omit<SequentialSpec, 'kind'> })
    .model;
  const spec: SequentialSpec = { kind: 'sequential', ...coarse } as SequentialSpec;
  const noDropout: SequentialSpec = { ...spec, layers: spec.layers.filter((l) => l.type !== 'dropout') };
  const cnnOpts: FitOptions = {
    epochs: 2,
    batchSize: 16,
    shuffle: true,
    seed: 1,
    optimizer: { kind: 'momentum', lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 0.0005 },
    schedule: { kind: 'cosine', warmupEpochs: 1 },
    l2: { lambda: 0, mode: 'loss', includeBias: false },
  };

  it("cnn-coarse's network without its dropout: conv, batchNorm (state), ReLU, max pool, Nesterov, cosine, 2 epochs on cpu", () => {
    const be = createCpuBackend({ threads: 2 });
    const { eager, jitted } = both(modelFromSpec(noDropout) as unknown as AnyModel, be, dataOf(be, 45, 3072, 20), cnnOpts);
    expect(jitted.events[0]).toMatchObject({ type: 'start', step: { path: 'jit' } });
    expect(jitted.events.some((e) => e.type === 'stepPath')).toBe(false);
    expectSame(eager, jitted);
    be.dispose();
  });

  it("cnn-coarse as configured (dropout 0.3, its masks drawn from each step's key): jitted, the eager numbers", () => {
    const be = createCpuBackend({ threads: 1 });
    const { eager, jitted } = both(modelFromSpec(spec) as unknown as AnyModel, be, dataOf(be, 40, 3072, 20), { ...cnnOpts, epochs: 2 });
    expect(jitted.events[0]).toMatchObject({ type: 'start', step: { path: 'jit' } });
    expect(jitted.events.some((e) => e.type === 'stepPath')).toBe(false);
    expectSame(eager, jitted);
    be.dispose();
  });

  it("fit's backend option puts the layers' initial state (batchNorm's running statistics) there too, not on the default backend", () => {
    const be = createCpuBackend({ threads: 1 });
    const model = modelFromSpec(noDropout) as unknown as AnyModel;
    // Initial weights made on the default backend and moved by fit; no withBackend around the call.
    const r = fit(model, model.layer.init(new Key(0)) as never, dataOf(be, 20, 3072, 20), { ...cnnOpts, epochs: 1, backend: be });
    expect(E.isRight(r)).toBe(true);
    if (E.isRight(r)) for (const t of leaves(r.right.layerState as Tree)) expect(t.backend).toBe(be);
    be.dispose();
  });

  it('a layer that reads values on the host inside the step: fit falls back to eager steps, says why, same numbers', () => {
    const be = backend('reference');
    const model = mlp([8, 4, 3], { activation: 'tanh' });
    // A layer whose forward branches on data (a host read): no program can hold it.
    const peeking = {
      ...model,
      layer: {
        ...model.layer,
        apply: (p: never, x: Tensor, ...rest: never[]) => x.toArray() && (model.layer.apply as (...a: unknown[]) => Tensor)(p, x, ...rest),
      },
    };
    const { eager, jitted } = both(peeking as unknown as AnyModel, be, dataOf(be, 30, 8, 3), {
      epochs: 1,
      batchSize: 10,
      shuffle: false,
      seed: 0,
      optimizer: { kind: 'sgd', lr: 0.1 },
    });
    const fallback = jitted.events.find((e) => e.type === 'stepPath');
    expect(fallback).toMatchObject({ type: 'stepPath', step: { path: 'eager' } });
    expect(fallback?.type === 'stepPath' && fallback.step.reason).toMatch(/cannot be read inside a jitted function/);
    expectSame(eager, jitted);
  });
});
