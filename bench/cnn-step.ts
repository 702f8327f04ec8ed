/**
 * tapegrad's side of the CNN bench: a training step of examples/configs/cnn.yaml's
 * architecture (Adam, lr 1e-3), or cnn-coarse.yaml's (the recipe users run: its
 * SGD with Nesterov momentum and weight decay; no augmentation, which is data
 * work outside the step) at batch 128 on real CIFAR-100 rows, through `fit`,
 * timed over BATCHES batches after one warm-up batch and extrapolated to an epoch
 * of 40,000 images. The same step as bench/reference/cnn_{torch,jax}.py.
 *
 * bench/cnn-epoch.ts imports `cnnStepTimer` (gemm against loops, in one process);
 * `npm run bench` runs this file as its own process, on the cpu backend as the CLI
 * gets it (the default convolution path), and reads its one JSON line:
 *
 *   node --experimental-wasm-relaxed-simd --import tsx bench/cnn-step.ts DATA_DIR [BATCHES=12] [cnn|cnn-coarse]
 */
import * as E from 'fp-ts/lib/Either.js';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parse } from 'yaml';
import { backend as backendNamed, Key, withBackend, type Backend } from '../src/core/index.js';
import { cifarSet, readCifar100, type CifarSplit } from '../src/data/index.js';
import { fit, modelFromSpec, type OptimizerSpec, type SequentialSpec } from '../src/nn/index.js';

export const CNN_BATCH = 128;
export const EPOCH_IMAGES = 40000;
export const BATCHES_PER_EPOCH = Math.ceil(EPOCH_IMAGES / CNN_BATCH);

/** The networks the bench times: examples/configs/NAME.yaml. */
export type CnnName = 'cnn' | 'cnn-coarse';
/** examples/configs/NAME.yaml's model as a spec, and the optimizer the step uses. */
export const cnnSpec = (name: CnnName = 'cnn'): SequentialSpec => {
  const cfg = parse(readFileSync(new URL(`../examples/configs/${name}.yaml`, import.meta.url), 'utf8')) as { model: Omit<SequentialSpec, 'kind'> };
  return { kind: 'sequential', ...cfg.model } as SequentialSpec;
};
const optimizerOf = (name: CnnName): OptimizerSpec =>
  name === 'cnn' ? { kind: 'adam', lr: 0.001 } : { kind: 'momentum', lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 0.0005 };

/**
 * A timer of the CNN step on `be`: each call trains `batches + 1` batches with
 * `fit` from a fresh init and returns the seconds per batch, timed from the end
 * of the first batch (warm-up) to the end of the last.
 */
export const cnnStepTimer = (file: CifarSplit, be: Backend, batches: number, name: CnnName = 'cnn'): { secondsPerBatch: () => number; dispose: () => void } => {
  const model = modelFromSpec(cnnSpec(name));
  const idx = Array.from({ length: (batches + 1) * CNN_BATCH }, (_, i) => i);
  const train = cifarSet(file, idx, 'coarse', 'per-image', undefined, { backend: be });
  const val = cifarSet(file, idx.slice(0, CNN_BATCH), 'coarse', 'per-image', undefined, { backend: be });
  return {
    secondsPerBatch: () => {
      const stamps: number[] = [];
      // fit is synchronous: withBackend puts the layers' initial state there too.
      const r = withBackend(be, () =>
        fit(
          model,
          model.layer.init(new Key(0)),
          { train, val },
          {
            epochs: 1,
            batchSize: CNN_BATCH,
            shuffle: false,
            seed: 0,
            backend: be,
            optimizer: optimizerOf(name),
            onEvent: (e) => {
              if (e.type === 'batch') stamps.push(performance.now());
            },
          },
        ),
      );
      if (E.isLeft(r)) throw r.left;
      return (stamps[stamps.length - 1]! - stamps[0]!) / 1000 / (stamps.length - 1);
    },
    dispose: () => {
      train.dispose();
      val.dispose();
    },
  };
};

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const [dir, batchesArg = '12', nameArg = 'cnn'] = process.argv.slice(2);
  if (dir === undefined || (nameArg !== 'cnn' && nameArg !== 'cnn-coarse')) throw new Error('usage: bench/cnn-step.ts DATA_DIR [BATCHES] [cnn|cnn-coarse]');
  const file = readCifar100(dir, 'train');
  if (E.isLeft(file)) throw file.left;
  const be = backendNamed('cpu');
  const timer = cnnStepTimer(file.right, be, Number(batchesArg), nameArg);
  const s = timer.secondsPerBatch();
  timer.dispose();
  console.log(
    JSON.stringify({
      system: 'cpu',
      description: `tapegrad ${be.description}, default convolution path`,
      secondsPerBatch: s,
      secondsPerEpoch: s * BATCHES_PER_EPOCH,
    }),
  );
}
