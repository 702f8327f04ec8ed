/**
 * Any model, end to end on a CIFAR-100 slice: a residual MLP with layerNorm, a
 * CNN (conv → pool → conv → pool → dense) and a model with a user layer built
 * on a user-defined primitive are each trained with `fit`, saved, loaded and
 * evaluated to the same accuracy and loss, and they learn (beat their own
 * untrained weights on the training data).
 */
import * as E from 'fp-ts/lib/Either.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  activation,
  add,
  customVjp,
  dense,
  evaluate,
  fit,
  fromArray,
  Key,
  loadCifar100,
  loadModel,
  matmul,
  modelFromSpec,
  mul,
  saveModel,
  sequential,
  sub,
  tanh,
  type FitOptions,
  type Layer,
  type SequentialSpec,
  type Tensor,
} from '../../src/index.js';
import { right } from '../helpers.js';
import { CIFAR_DIR } from '../data/location.js';

const data = right(loadCifar100({ dir: CIFAR_DIR, labels: 'coarse', normalization: 'per-image', seed: 0, limitTrain: 1000, limitTest: 300 }));
const { train, val, test } = data;
const dir = mkdtempSync(join(tmpdir(), 'tapegrad-models-'));

const opts: FitOptions = {
  epochs: 3,
  batchSize: 50,
  seed: 0,
  shuffle: true,
  optimizer: { kind: 'adam', lr: 0.003 },
  l2: { lambda: 1e-4, mode: 'loss', includeBias: false },
};

/** Trains, saves, loads, and checks that the loaded model evaluates exactly as the trained one. */
const roundTrip = (name: string, spec: SequentialSpec) => {
  const model = modelFromSpec(spec);
  const init = model.layer.init(new Key(1));
  const r = right(fit(model, init, { train, val }, opts));
  expect(r.history).toHaveLength(3);
  const trained = evaluate(model, r.params, test, { layerState: r.layerState });
  const file = join(dir, `${name}.json`);
  saveModel(file, model, r.params, { name }, r.layerState);
  const loaded = right(loadModel(file));
  expect(loaded.model.spec).toEqual(spec);
  expect(loaded.extra).toEqual({ name });
  const again = evaluate(loaded.model, loaded.params, test, { layerState: loaded.layerState });
  expect(again).toEqual(trained);
  // It learned: the training loss fell, and beats the untrained weights on held-out data.
  expect(r.history[2]!.trainLoss).toBeLessThan(r.history[0]!.trainLoss);
  expect(trained.loss).toBeLessThan(evaluate(model, init, test).loss);
  return { r, trained };
};

describe('models from specs, end to end on CIFAR-100', () => {
  it('a residual MLP with layerNorm (and dropout, gelu)', () => {
    roundTrip('residual-mlp', {
      kind: 'sequential',
      input: [3072],
      layers: [
        { type: 'dense', units: 64 },
        { type: 'relu' },
        { type: 'residual', layers: [{ type: 'layerNorm' }, { type: 'dense', units: 64 }, { type: 'gelu' }, { type: 'dropout', rate: 0.1 }] },
        { type: 'residual', layers: [{ type: 'layerNorm' }, { type: 'dense', units: 64 }, { type: 'tanh' }] },
        { type: 'layerNorm' },
        { type: 'dense', units: 20 },
      ],
    });
  });

  it('a CNN: conv → pool → conv → pool → dense, with batchNorm state saved and restored', () => {
    const { r } = roundTrip('cnn', {
      kind: 'sequential',
      input: [3, 32, 32],
      layers: [
        { type: 'avgPool2d', size: 2 }, // 16×16: keeps the test fast on two cores
        { type: 'conv2d', filters: 8, kernel: 3, padding: 1 },
        { type: 'batchNorm' },
        { type: 'relu' },
        { type: 'maxPool2d', size: 2 },
        { type: 'conv2d', filters: 8, kernel: 3, padding: 1 },
        { type: 'relu' },
        { type: 'maxPool2d', size: 2 },
        { type: 'flatten' },
        { type: 'dense', units: 20 },
      ],
    });
    // The running statistics moved away from their initial (0, 1).
    const bn = (r.layerState as readonly unknown[])[3] as { mean: Tensor; var: Tensor };
    expect(Math.max(...Array.from(bn.mean.toTypedArray(), Math.abs))).toBeGreaterThan(1e-3);
  });
});

const fromData = (d: ArrayLike<number>, like: Tensor) => fromArray(Array.from(d), [...like.shape], like.dtype);

describe('a layer written in code, on a user-defined primitive', () => {
  // softsign(x) = x / (1 + |x|), its VJP 1 / (1 + |x|)², declared by hand.
  const softsign = customVjp<[Tensor]>(
    'softsign',
    ([x]) => {
      const a = x.toTypedArray().map((v) => v / (1 + Math.abs(v)));
      return right(fromData(a, x));
    },
    (ct, [x]) => {
      const d = x.toTypedArray().map((v) => 1 / (1 + Math.abs(v)) ** 2);
      return [mul(ct, right(fromData(d, x)))];
    },
  );
  interface Gated {
    readonly w: Tensor;
    readonly b: Tensor;
    readonly gate: Tensor;
  }
  const gatedSoftsign = (nIn: number, nOut: number): Layer<Gated> => ({
    describe: `gatedSoftsign(${nIn} → ${nOut})`,
    init: (key) => ({
      w: key.uniform([nIn, nOut], -Math.sqrt(6 / nIn), Math.sqrt(6 / nIn)),
      b: key.fold('b').uniform([nOut], -0.01, 0.01),
      gate: key.fold('g').uniform([nOut], 0.5, 1),
    }),
    apply: (p, x) => {
      const z = add(matmul(x, p.w), p.b);
      return add(mul(softsign(z), p.gate), mul(tanh(z), sub(1, p.gate)));
    },
    roles: () => ['bias', 'other', 'weight'], // leaves sorted: b, gate, w
  });

  it('trains with fit, saves and loads when the layer is passed, and evaluates the same', () => {
    const layer = sequential(gatedSoftsign(3072, 32), activation('identity'), dense(32, 20));
    const init = layer.init(new Key(2));
    const r = right(fit(layer, init, { train, val }, opts));
    const trained = evaluate(layer, r.params, test);
    expect(r.history[2]!.trainLoss).toBeLessThan(r.history[0]!.trainLoss);
    const file = join(dir, 'user.json');
    saveModel(file, layer, r.params);
    // Without the layer the file cannot be rebuilt, and says so.
    const noLayer = loadModel(file);
    expect(E.isLeft(noLayer) && noLayer.left.message).toMatch(/layer written in code \(gatedSoftsign\(3072 → 32\).*pass that layer/);
    const loaded = right(loadModel(file, layer));
    expect(evaluate(loaded.model, loaded.params, test)).toEqual(trained);
    // The parameters kept their structure and type: the gate is there, changed by training.
    expect(loaded.params[0].gate.toTypedArray()).toEqual(r.params[0].gate.toTypedArray());
    expect(loaded.params[0].gate.toTypedArray()).not.toEqual(init[0].gate.toTypedArray());
  });
});
