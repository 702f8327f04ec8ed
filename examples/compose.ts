// Compose your own model: a CNN as data, a residual MLP in code, each trained with fit,
// saved and loaded back; then the gradient of a layer checked with tapegrad/testing.
import * as E from 'fp-ts/lib/Either.js';
import fc from 'fast-check';
import {
  activation,
  buildModel,
  dense,
  ensureCifar100,
  evaluate,
  fit,
  Key,
  layerNorm,
  loadCifar100,
  loadModel,
  residual,
  saveModel,
  sequential,
  sum,
  type FitOptions,
  type SequentialSpec,
} from 'tapegrad';
import { expectGradients, tensorArb, treeArb } from 'tapegrad/testing';

const dir = await ensureCifar100();
if (E.isLeft(dir)) throw dir.left;
const data = loadCifar100({ dir: dir.right, labels: 'coarse', normalization: 'per-image', seed: 0, limitTrain: 1500, limitTest: 1000 });
if (E.isLeft(data)) throw data.left;
const { train, val, test } = data.right;
const opts: FitOptions = {
  epochs: 3,
  batchSize: 50,
  seed: 0,
  shuffle: true,
  optimizer: { kind: 'adam', lr: 0.003 },
  l2: { lambda: 1e-4, mode: 'loss', includeBias: false }, // weights only: each layer declares its parameters' roles
};

// 1. A CNN as data (what configs and model files hold). Images are NCHW: [3, 32, 32].
const spec: SequentialSpec = {
  kind: 'sequential',
  input: [3, 32, 32],
  layers: [
    { type: 'avgPool2d', size: 4 }, // 8×8 images: small enough for a README example
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
};
const cnn = buildModel(spec);
if (E.isLeft(cnn)) throw cnn.left;
const trained = fit(cnn.right, cnn.right.layer.init(new Key(0)), { train, val }, opts);
if (E.isLeft(trained)) throw trained.left;
const { params, layerState } = trained.right; // layerState: batchNorm's running statistics
console.log('cnn test accuracy', evaluate(cnn.right, params, test, { layerState }).accuracy);
saveModel('runs/compose-cnn.json', cnn.right, params, null, layerState);
const loaded = loadModel('runs/compose-cnn.json'); // rebuilt from the spec in the file
if (E.isLeft(loaded)) throw loaded.left;
const l = loaded.right;
console.log('reloaded cnn test accuracy', evaluate(l.model, l.params, test, { layerState: l.layerState }).accuracy);

// 2. A residual MLP in code: layers are values, and the parameter types flow through fit.
const block = residual(sequential(layerNorm(64), dense(64, 64), activation('gelu')));
const net = sequential(dense(3072, 64), activation('relu'), block, block, dense(64, 20));
const run = fit(net, net.init(new Key(1)), { train, val }, opts);
if (E.isLeft(run)) throw run.left;
console.log('residual mlp test accuracy', evaluate(net, run.right.params, test).accuracy);

// 3. Property-test a layer's gradients: random parameters and inputs, central differences at O(ε²).
fc.assert(
  fc.property(treeArb({ g: [4], b: [4] } as const), tensorArb({ shape: [3, 4] }), (p, x) => {
    expectGradients((q: typeof p) => sum(layerNorm(4).apply(q, x)), p);
  }),
  { numRuns: 20 },
);
console.log('layerNorm gradients: 20 random cases agree with central differences');
