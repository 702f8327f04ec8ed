/**
 * One backend's training run of the benchmark, in its own process (so its peak
 * memory is its own). Prints one JSON line. Slow backends time a few batches
 * and extrapolate to an epoch, and say so.
 *
 * Usage: node --experimental-wasm-relaxed-simd --import tsx bench/epoch.ts BACKEND EPOCHS SPLIT_FILE [MAX_BATCHES]
 */
import { readFileSync } from 'node:fs';
import * as E from 'fp-ts/lib/Either.js';
import { backend as backendNamed, createCpuBackend, Key, withBackend } from '../src/core/index.js';
import { cifarSet, locateDataDir, readCifar100 } from '../src/data/index.js';
import { evaluate, fitAsync, mlp, presets } from '../src/nn/index.js';

const [backend = 'cpu', epochsArg = '3', splitFile = '', maxBatchesArg] = process.argv.slice(2);
const epochs = Number(epochsArg);
const maxBatches = maxBatchesArg === undefined ? undefined : Number(maxBatchesArg);
// BENCH_BLAS_BANDS=0 (bench/run.ts's cpu-whole row): the native products as one call each, the worker idle during them.
const be = backend === 'cpu' && process.env['BENCH_BLAS_BANDS'] === '0' ? createCpuBackend({ blasBands: false }) : backendNamed(backend);

const dir = locateDataDir(process.env['CIFAR100_DIR'] ? undefined : '../shared/data/cifar-100-binary').dir;
const file = readCifar100(dir, 'train');
if (E.isLeft(file)) throw file.left;
const split = new Int32Array(readFileSync(splitFile).buffer.slice(0));
const nTrain = split[0]!;
const trainIdx = split.subarray(1, 1 + nTrain),
  valIdx = split.subarray(1 + nTrain);

const p = presets.paper;
const t0 = performance.now();
const train = cifarSet(file.right, maxBatches ? trainIdx.subarray(0, maxBatches * p.batchSize) : trainIdx, 'coarse', 'per-image', undefined, { backend: be });
const val = cifarSet(file.right, maxBatches ? valIdx.subarray(0, 1000) : valIdx, 'coarse', 'per-image', undefined, { backend: be });
const dataBytes = be.memory().liveBytes;
const loadSeconds = (performance.now() - t0) / 1000;

const model = mlp([3072, 128, 20], { activation: 'relu', init: 'paper' });
// fitAsync, as the CLI trains. Live bytes are sampled after every step.
let maxLiveBytes = 0;
const r = await fitAsync(
  model,
  withBackend(be, () => model.layer.init(new Key(0))),
  { train, val },
  {
    epochs,
    backend: be,
    onEvent: (e) => {
      if (e.type === 'batch') maxLiveBytes = Math.max(maxLiveBytes, be.memory().liveBytes);
    },
    batchSize: p.batchSize,
    shuffle: false,
    seed: 0,
    reduction: 'mean',
    optimizer: { kind: 'momentum', lr: 0.001, momentum: 0.8 },
    l2: { lambda: 0.01, mode: 'gradient', includeBias: true },
  },
);
if (E.isLeft(r)) throw r.left;

let history = r.right.history.map(({ epoch: _e, ...h }) => h);
if (maxBatches !== undefined) {
  // Extrapolate: the training part scales with batches, the validation pass with rows.
  const tv = performance.now();
  evaluate(model, r.right.params, val);
  const valSeconds = (performance.now() - tv) / 1000;
  const batchesPerEpoch = Math.ceil(nTrain / p.batchSize);
  history = history.map((h) => ({
    ...h,
    seconds: (h.seconds - valSeconds) * (batchesPerEpoch / maxBatches) + valSeconds * ((split.length - 1 - nTrain) / 1000),
  }));
}
const mem = be.memory();
console.log(
  JSON.stringify({
    backend,
    description: be.description,
    epochs: history,
    loadSeconds,
    memory: { dataMiB: dataBytes / 2 ** 20, maxLiveDuringTrainingMiB: maxLiveBytes / 2 ** 20, peakMiB: mem.peakBytes / 2 ** 20 },
    extrapolatedFrom: maxBatches === undefined ? null : `${maxBatches} batches`,
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
  }),
);
be.dispose();
