import * as E from 'fp-ts/lib/Either.js';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Key } from '../../src/core/index.js';
import { denseSet, type LabeledSet } from '../../src/data/index.js';
import {
  accuracy,
  confusionMatrix,
  evaluate,
  fit,
  loadModel,
  mlp,
  perClassAccuracy,
  saveModel,
  shouldStop,
  topKAccuracy,
  type FitOptions,
  type FitEvent,
} from '../../src/nn/index.js';
import { sealJson } from '../../src/nn/serialize.js';
import { t64 } from '../helpers.js';
import { left, right } from '../helpers.js';

/** Three Gaussian blobs in 8 dimensions: learnable, not trivially. */
const blobs = (n: number, seed: number, shuffleLabels = false): LabeledSet => {
  const key = new Key(seed);
  const noise = key.normal([n, 8], 'float32').toTypedArray();
  const centers = new Key(99).normal([3, 8], 'float32').toTypedArray();
  const y = Uint8Array.from({ length: n }, (_, i) => i % 3);
  const x = new Float32Array(n * 8);
  for (let i = 0; i < n; i++) for (let j = 0; j < 8; j++) x[i * 8 + j] = 1.5 * centers[y[i]! * 8 + j]! + noise[i * 8 + j]!;
  if (shuffleLabels) {
    const p = key.fold('labels').permutation(n);
    const y2 = y.slice();
    for (let i = 0; i < n; i++) y[i] = y2[p[i]!]!;
  }
  return denseSet(x, y, 8, 3);
};

const base: FitOptions = {
  epochs: 8,
  batchSize: 16,
  optimizer: { kind: 'momentum', lr: 0.05, momentum: 0.9 },
  shuffle: true,
  seed: 3,
};

describe('fit', () => {
  const model = mlp([8, 16, 3], { activation: 'tanh', init: 'glorot-uniform' });
  const init = model.layer.init(new Key(1));
  const data = { train: blobs(300, 1), val: blobs(90, 2) };

  it('drives training loss down and accuracy up on a learnable problem', () => {
    const r = right(fit(model, init, data, base));
    const h = r.history;
    expect(h).toHaveLength(8);
    expect(h[7]!.trainLoss).toBeLessThan(h[0]!.trainLoss * 0.7);
    expect(h[7]!.valAccuracy).toBeGreaterThan(0.8);
    expect(evaluate(model, init, data.val).accuracy).toBeLessThan(0.6); // it really learned
  });

  it('the same seed gives an identical history, bit for bit; another seed does not', () => {
    const strip = (r: ReturnType<typeof fit>) => right(r).history.map(({ seconds: _s, ...rest }) => rest);
    expect(strip(fit(model, init, data, base))).toEqual(strip(fit(model, init, data, base)));
    expect(strip(fit(model, init, data, { ...base, seed: 4 }))).not.toEqual(strip(fit(model, init, data, base)));
  });

  it('emits start, batch and epoch events for progress bars', () => {
    const events: FitEvent['type'][] = [];
    right(fit(model, init, data, { ...base, epochs: 1, onEvent: (e) => events.push(e.type) }));
    expect(events[0]).toBe('start');
    expect(events.filter((t) => t === 'batch')).toHaveLength(Math.ceil(300 / 16));
    expect(events[events.length - 1]).toBe('epoch');
  });

  it('stops on a non-finite loss naming the epoch and batch and suggesting a lower learning rate', () => {
    // A NaN pixel in row 40 poisons batch 3 (rows 32..47) of the first epoch.
    const x = data.train.gather(Int32Array.from({ length: 300 }, (_, i) => i)).toTypedArray() as Float32Array;
    x[40 * 8 + 2] = NaN;
    const poisoned = { ...data, train: denseSet(x, data.train.y, 8, 3) };
    const e = left(fit(model, init, poisoned, { ...base, shuffle: false }));
    expect(e.message).toMatch(/loss became NaN at epoch 1, batch 3 of 19.*Lower the learning rate \(now 0.05\).*check the inputs for NaN/);
    // A learning rate that makes the weights overflow.
    const relu = mlp([8, 16, 3], { activation: 'relu', init: 'glorot-uniform' });
    const e2 = left(fit(relu, relu.layer.init(new Key(1)), data, { ...base, optimizer: { kind: 'sgd', lr: 1e30 } }));
    expect(e2.message).toMatch(/loss became (NaN|Infinity) at epoch \d+, batch \d+ of 19/);
  });

  it('refuses data that does not fit the model', () => {
    expect(left(fit(mlp([5, 3]), mlp([5, 3]).layer.init(new Key(0)), data, base)).message).toMatch(/8 features.*input width is 5/);
  });

  it('returns a Left naming each bad input it can see, never throwing or training on it', () => {
    const run = (d: typeof data, o: Partial<FitOptions>) => {
      let r: ReturnType<typeof fit>;
      try {
        r = fit(model, init, d, { ...base, ...o });
      } catch (e) {
        throw new Error(`fit threw instead of returning a Left: ${(e as Error).message}`);
      }
      return left(r).message;
    };
    expect(run(data, { batchSize: 0 })).toBe('batchSize must be a positive integer, got 0');
    expect(run(data, { batchSize: 2.5 })).toBe('batchSize must be a positive integer, got 2.5');
    expect(run(data, { epochs: NaN })).toBe('epochs must be a positive integer, got NaN');
    expect(run(data, { seed: 0.5 })).toBe('seed must be an integer, got 0.5');
    expect(run(data, { optimizer: { kind: 'sgd', lr: NaN } })).toBe('optimizer.lr must be a finite number ≥ 0, got NaN');
    const rows = (set: LabeledSet, n: number) => set.gather(Int32Array.from({ length: n }, (_, i) => i)).toTypedArray() as Float32Array;
    expect(run({ ...data, train: denseSet(new Float32Array(0), new Uint8Array(0), 8, 3) }, {})).toBe(
      'the training set is empty: give fit at least one training row',
    );
    const y = data.train.y.slice();
    y[7] = 3;
    expect(run({ ...data, train: denseSet(rows(data.train, 300), y, 8, 3) }, {})).toBe(
      "training row 7 has label 3, not a class of 0..2: fix the labels or the set's class count",
    );
    const xv = rows(data.val, 90);
    xv[50 * 8 + 5] = NaN;
    expect(run({ ...data, val: denseSet(xv, data.val.y, 8, 3) }, {})).toBe(
      'validation row 50 holds NaN (feature 5): every validation loss would be NaN; clean or drop that row',
    );
  });

  it('an interrupted run resumes to the same history as an uninterrupted one', () => {
    const full = right(fit(model, init, data, base));
    const ctl = new AbortController();
    const part = right(
      fit(model, init, data, {
        ...base,
        signal: ctl.signal,
        onEvent: (e) => {
          if (e.type === 'batch' && e.epoch === 4 && e.batch === 5) ctl.abort();
        },
      }),
    );
    expect(part.interrupted).toBe(true);
    expect(part.history).toHaveLength(3);
    const resumed = right(fit(model, init, data, { ...base, resume: part.state }));
    const strip = (h: typeof full.history) => h.map(({ seconds: _s, ...rest }) => rest);
    expect(strip(resumed.history)).toEqual(strip(full.history));
  });
});

describe('early stopping', () => {
  it("the report's rule fires the first time the loss exceeds each of the previous five", () => {
    const rule = { patience: 5, rule: 'paper' as const, restoreBest: 'when-stopped' as const };
    const seq = [1.0, 0.9, 0.8, 0.85, 0.82, 0.81, 0.86, 0.87];
    const fired = seq.map((_, i) => shouldStop(seq.slice(0, i + 1), rule));
    // Epoch 7 (0.86) exceeds 0.8? yes, but not 0.9 (epoch 2) — only the previous five count: [0.9,0.8,0.85,0.82,0.81] → no.
    // Epoch 8 (0.87) vs previous five [0.8,0.85,0.82,0.81,0.86] → exceeds each → fires.
    expect(fired).toEqual([false, false, false, false, false, false, false, true]);
  });

  it('the no-improvement rule fires after `patience` epochs without a new best', () => {
    const rule = { patience: 2, rule: 'no-improvement' as const, restoreBest: 'always' as const };
    const seq = [1.0, 0.9, 0.95, 0.91, 0.8];
    // Epoch 4 is the second without beating 0.9; epoch 5 (0.8) is a new best.
    expect(seq.map((_, i) => shouldStop(seq.slice(0, i + 1), rule))).toEqual([false, false, false, true, false]);
  });

  it('fit stops at the right epoch and restores the best weights', () => {
    // Validation labels unrelated to the inputs: validation loss rises while training fits.
    const model = mlp([8, 32, 3], { activation: 'tanh', init: 'glorot-uniform' });
    const init = model.layer.init(new Key(1));
    const data = { train: blobs(300, 1), val: blobs(300, 1, true) };
    const r = right(fit(model, init, data, { ...base, epochs: 40, earlyStopping: { patience: 5, rule: 'paper', restoreBest: 'when-stopped' } }));
    const losses = r.history.map((h) => h.valLoss);
    expect(r.stoppedAt).toBe(losses.length);
    expect(r.stoppedAt).toBeLessThan(40);
    // The rule holds at the stop epoch and at no earlier epoch.
    const rule = { patience: 5, rule: 'paper' as const, restoreBest: 'when-stopped' as const };
    losses.forEach((_, i) => {
      expect(shouldStop(losses.slice(0, i + 1), rule)).toBe(i === losses.length - 1);
    });
    const best = losses.indexOf(Math.min(...losses)) + 1;
    expect(r.bestEpoch).toBe(best);
    expect(r.returnedEpoch).toBe(best);
    expect(evaluate(model, r.params, data.val).loss).toBeCloseTo(losses[best - 1]!, 6);
  });
});

describe('metrics', () => {
  const scores = t64([0.1, 0.7, 0.2, 0.5, 0.3, 0.2, 0.2, 0.3, 0.5], [3, 3]);
  it('accuracy, top-k, confusion matrix and per-class accuracy', () => {
    expect(accuracy(scores, [1, 0, 0])).toBeCloseTo(2 / 3, 12);
    expect(topKAccuracy(scores, [1, 0, 0], 2)).toBeCloseTo(2 / 3, 12);
    expect(topKAccuracy(scores, [1, 0, 0], 3)).toBe(1);
    const cm = confusionMatrix([1, 0, 2], [1, 0, 0], 3);
    expect(cm).toEqual([
      [1, 0, 1],
      [0, 1, 0],
      [0, 0, 0],
    ]);
    expect(perClassAccuracy(cm).slice(0, 2)).toEqual([0.5, 1]);
  });
});

describe('save and load', () => {
  const model = mlp([8, 6, 3], { activation: 'relu', init: 'he-normal' });
  const params = model.layer.init(new Key(4));
  const dir = mkdtempSync(join(tmpdir(), 'tapegrad-model-'));
  const file = join(dir, 'model.json');
  saveModel(file, model, params, { note: 'test' });

  it('gives identical predictions after a round trip', () => {
    const loaded = right(loadModel(file));
    const x = new Key(5).normal([10, 8]);
    expect(loaded.model.layer.apply(loaded.params, x).toTypedArray()).toEqual(model.layer.apply(params, x).toTypedArray());
    expect(loaded.model.spec).toEqual(model.spec);
    expect(loaded.extra).toEqual({ note: 'test' });
  });

  it('rejects a truncated file clearly', () => {
    const bad = join(dir, 'truncated.json');
    writeFileSync(bad, readFileSync(file, 'utf8').slice(0, 500));
    expect(left(loadModel(bad)).message).toMatch(/truncated\.json: is not valid JSON.*truncated or corrupt/);
  });

  it('rejects a file whose tensors do not fit its architecture', () => {
    const obj = JSON.parse(readFileSync(file, 'utf8'));
    obj.architecture.sizes = [8, 7, 3];
    const bad = join(dir, 'mismatch.json');
    // Resealed, so the architecture check is reached (an edit alone fails the checksum).
    delete obj.sha256;
    writeFileSync(bad, sealJson(obj));
    // 8·6 + 6 + 6·3 + 3 weights in the file, 8·7 + 7 + 7·3 + 3 in the architecture: refused before the architecture's are allocated.
    expect(left(loadModel(bad)).message).toMatch(/holds 75 weights but its architecture needs 87: the file is corrupt/);
    // The same count in other shapes is refused by the first tensor that differs.
    obj.architecture.sizes = [8, 6, 3];
    obj.params.find((p: { path: string }) => p.path === '[0].w').shape = [6, 8];
    writeFileSync(bad, sealJson(obj));
    expect(left(loadModel(bad)).message).toMatch(/tensor \[0\]\.w has shape \[6, 8\] but the architecture needs \[8, 6\]/);
  });

  it('rejects a malformed architecture naming the key', () => {
    const obj = JSON.parse(readFileSync(file, 'utf8'));
    obj.architecture.activation = 'swish';
    const bad = join(dir, 'bad-act.json');
    delete obj.sha256;
    writeFileSync(bad, sealJson(obj));
    expect(left(loadModel(bad)).message).toMatch(/architecture\.activation.*"swish"/);
  });

  it('no temporary files are left beside a saved model', () => {
    expect(E.isRight(loadModel(file))).toBe(true);
    expect(readFileSync(file, 'utf8').startsWith('{"format":"tapegrad.model","version":2')).toBe(true);
  });
});
