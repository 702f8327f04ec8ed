// Build, train, evaluate, save and reload an MLP on CIFAR-100 (a 2,000-image slice for speed).
import * as E from 'fp-ts/lib/Either.js';
import { ensureCifar100, evaluate, fit, Key, loadCifar100, loadModel, mlp, saveModel } from 'tapegrad';

const dir = await ensureCifar100(); // CIFAR100_DIR, else ./data/cifar-100-binary, else download
if (E.isLeft(dir)) throw dir.left;
const data = loadCifar100({ dir: dir.right, labels: 'coarse', normalization: 'per-image', seed: 0, limitTrain: 2000 });
if (E.isLeft(data)) throw data.left;
const { train, val, test } = data.right;

const model = mlp([3072, 128, 20], { activation: 'relu', init: 'he-uniform' });
const run = fit(
  model,
  model.layer.init(new Key(0)),
  { train, val },
  {
    epochs: 5,
    batchSize: 128,
    seed: 0,
    shuffle: true,
    optimizer: { kind: 'momentum', lr: 0.01, momentum: 0.9 },
    earlyStopping: { patience: 5, rule: 'no-improvement', restoreBest: 'always' },
  },
);
if (E.isLeft(run)) throw run.left;
console.log('test accuracy', evaluate(model, run.right.params, test).accuracy);

saveModel('runs/quickstart-model.json', model, run.right.params);
const reloaded = loadModel('runs/quickstart-model.json');
if (E.isLeft(reloaded)) throw reloaded.left;
console.log('reloaded test accuracy', evaluate(reloaded.right.model, reloaded.right.params, test).accuracy);
