/**
 * Learning-rate schedules and clipping by global norm against hand-computed
 * values, and in `fit`: a scheduled run equals the same steps taken at the
 * hand-computed rates, clipping bounds the step, and resuming keeps the schedule.
 */
import { describe, expect, it } from 'vitest';
import { Key, sub, type Tensor } from '../../src/core/index.js';
import { leaves } from '../../src/autodiff/index.js';
import { denseSet } from '../../src/data/index.js';
import { clipByGlobalNorm, fit, learningRate, mlp, type FitOptions } from '../../src/nn/index.js';
import { left, right, t32 } from '../helpers.js';

describe('learningRate', () => {
  const clock = { stepsPerEpoch: 4, epochs: 3 };
  it('constant, with a linear warm-up over round(warmupEpochs · stepsPerEpoch) steps', () => {
    expect([0, 1, 5].map((s) => learningRate({ kind: 'constant' }, 0.2, s, clock))).toEqual([0.2, 0.2, 0.2]);
    // warmupEpochs 0.75 of 4 steps: W = 3, rates 0.2·1/3, 0.2·2/3, then 0.2.
    const w = [0, 1, 2, 3].map((s) => learningRate({ kind: 'constant', warmupEpochs: 0.75 }, 0.2, s, clock));
    expect(w[0]).toBeCloseTo(0.2 / 3, 15);
    expect(w[1]).toBeCloseTo(0.4 / 3, 15);
    expect(w.slice(2)).toEqual([0.2, 0.2]);
  });

  it('step: lr · factor^⌊step / (everyEpochs · stepsPerEpoch)⌋', () => {
    const r = (s: number) => learningRate({ kind: 'step', everyEpochs: 1.5, factor: 0.1 }, 1, s, clock);
    // every 6 steps
    expect([0, 5, 6, 11, 12].map(r)).toEqual([1, 1, 0.1, 0.1, 0.1 ** 2]);
    // warm-up multiplies the step schedule: W = 4, step 1 → 2/4.
    expect(learningRate({ kind: 'step', everyEpochs: 1, factor: 0.5, warmupEpochs: 1 }, 1, 1, clock)).toBe(0.5);
  });

  it('cosine from lr to minLr over the steps after the warm-up', () => {
    const c = { stepsPerEpoch: 2, epochs: 2 }; // 4 steps
    const r = (s: number) => learningRate({ kind: 'cosine' }, 1, s, c);
    expect(r(0)).toBe(1);
    expect(r(1)).toBeCloseTo((1 + Math.SQRT1_2) / 2, 15); // progress 1/4: (1 + cos π/4) / 2
    expect(r(2)).toBeCloseTo(0.5, 15);
    expect(r(4)).toBe(0);
    expect(learningRate({ kind: 'cosine', minLr: 0.1 }, 1, 2, c)).toBeCloseTo(0.55, 15);
    // 3 epochs of 2 steps with 1 warm-up epoch: W = 2, the cosine over steps 2…6.
    const w = (s: number) => learningRate({ kind: 'cosine', warmupEpochs: 1 }, 1, s, { stepsPerEpoch: 2, epochs: 3 });
    expect([0, 1, 2, 4, 6].map(w).map((v) => +v.toFixed(12))).toEqual([0.5, 1, 1, 0.5, 0]);
  });
});

describe('clipByGlobalNorm', () => {
  it('scales every leaf by maxNorm / ‖g‖ over all leaves, and leaves small gradients alone', () => {
    const g = { a: t32([3], [1]), b: t32([0, 4], [2]) };
    const c = clipByGlobalNorm(g, 1);
    expect(c.norm).toBe(5);
    expect(Array.from(c.grads.a.toTypedArray())).toEqual([Math.fround(0.6)]);
    expect(Array.from(c.grads.b.toTypedArray())).toEqual([0, Math.fround(0.8)]);
    const same = clipByGlobalNorm(g, 5);
    expect(same.grads).toBe(g);
  });
});

describe('fit with a schedule and clipping', () => {
  const key = new Key(7);
  const x = key.normal([64, 6]).toTypedArray() as Float32Array;
  const y = Uint8Array.from({ length: 64 }, (_, i) => (x[i * 6]! > 0 ? 1 : 0));
  const data = { train: denseSet(x, y, 6, 2), val: denseSet(x.slice(0, 96), y.slice(0, 16), 6, 2) };
  const model = mlp([6, 5, 2], { activation: 'tanh', init: 'glorot-uniform' });
  const init = model.layer.init(new Key(1));
  const base: FitOptions = { epochs: 2, batchSize: 16, optimizer: { kind: 'sgd', lr: 0.1 }, shuffle: true, seed: 2 };
  const bits = (p: unknown) => (leaves(p as never) as Tensor[]).map((t) => Array.from(t.toTypedArray()));

  it('a step schedule takes the rates it names: the same bits as one epoch at lr, then one at lr · factor', () => {
    const scheduled = right(fit(model, init, data, { ...base, schedule: { kind: 'step', everyEpochs: 1, factor: 0.5 } }));
    // sgd has no state: the second epoch from the first's weights, at 0.05, is the same computation.
    const first = right(fit(model, init, data, { ...base, epochs: 1 }));
    const second = right(fit(model, init, data, { ...base, optimizer: { kind: 'sgd', lr: 0.05 }, resume: first.state }));
    expect(bits(scheduled.params)).toEqual(bits(second.params));
    const unscheduled = right(fit(model, init, data, base));
    expect(bits(unscheduled.params)).not.toEqual(bits(scheduled.params));
  });

  it('clipping bounds each step: one sgd step moves the weights by lr · clipNorm in L2 norm', () => {
    const one = { ...base, epochs: 1, batchSize: 64, shuffle: false };
    const r = right(fit(model, init, data, { ...one, clipNorm: 1e-3 }));
    let sq = 0;
    const after = leaves(r.params as never) as Tensor[],
      before = leaves(init as never) as Tensor[];
    for (let i = 0; i < after.length; i++) for (const v of sub(after[i]!, before[i]!).toTypedArray()) sq += v * v;
    expect(Math.sqrt(sq)).toBeCloseTo(0.1 * 1e-3, 6);
  });

  it('a resumed cosine run equals an uninterrupted one; bad settings are refused by name', () => {
    const opts: FitOptions = {
      ...base,
      epochs: 3,
      optimizer: { kind: 'momentum', lr: 0.1, momentum: 0.9 },
      schedule: { kind: 'cosine', warmupEpochs: 1 },
      clipNorm: 0.5,
    };
    const full = right(fit(model, init, data, opts));
    const ctl = new AbortController();
    const part = right(
      fit(model, init, data, {
        ...opts,
        signal: ctl.signal,
        onEvent: (e) => {
          if (e.type === 'batch' && e.epoch === 2 && e.batch === 2) ctl.abort();
        },
      }),
    );
    const resumed = right(fit(model, init, data, { ...opts, resume: part.state }));
    expect(bits(resumed.params)).toEqual(bits(full.params));
    expect(left(fit(model, init, data, { ...base, clipNorm: 0 })).message).toMatch(/clipNorm must be a positive/);
    expect(left(fit(model, init, data, { ...base, schedule: { kind: 'step', everyEpochs: 0, factor: 0.1 } })).message).toMatch(/everyEpochs > 0/);
  });
});
