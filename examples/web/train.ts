// The demo's training run, shared by the page's worker (worker.ts) and the
// Node side of the browser test, so both run exactly the same program: parse
// CIFAR-100 bytes, build an MLP, train with momentum, evaluate, and report
// every batch's loss, every epoch, the test accuracy and the confusion matrix
// of the 20 coarse classes.
import * as E from 'fp-ts/lib/Either.js';
import {
  backend,
  cifarSet,
  COARSE_CLASSES,
  confusionMatrix,
  evaluate,
  fit,
  Key,
  mlp,
  parseCifar100,
  predictedClasses,
  tidy,
  type ActivationName,
  type FitEvent,
} from 'tapegrad';

export interface DemoConfig {
  readonly hidden: readonly number[];
  readonly activation: ActivationName;
  readonly epochs: number;
  readonly batchSize: number;
  readonly lr: number;
  readonly momentum: number;
  /** Training images (the first of train.bin); the next `val` are the validation set. */
  readonly train: number;
  readonly val: number;
  /** Test images (the first of test.bin). */
  readonly test: number;
  readonly seed: number;
  readonly backend: 'cpu' | 'gpujs' | 'reference' | 'webgpu';
}

export type DemoEvent =
  | { readonly type: 'start'; readonly backend: string; readonly batches: number; readonly epochs: number }
  | { readonly type: 'batch'; readonly epoch: number; readonly batch: number; readonly batches: number; readonly loss: number; readonly accuracy: number }
  | {
      readonly type: 'epoch';
      readonly epoch: number;
      readonly trainLoss: number;
      readonly trainAccuracy: number;
      readonly valLoss: number;
      readonly valAccuracy: number;
      readonly seconds: number;
    };

export interface DemoResult {
  readonly backend: string;
  readonly losses: readonly number[];
  readonly testAccuracy: number;
  /** confusion[true][predicted], 20×20. */
  readonly confusion: readonly (readonly number[])[];
}

const orThrow = <A>(e: E.Either<Error, A>): A => {
  if (E.isLeft(e)) throw e.left;
  return e.right;
};

/** Trains and evaluates; `emit` sees progress as it happens. */
export const runDemo = (trainBytes: Uint8Array, testBytes: Uint8Array, cfg: DemoConfig, emit: (e: DemoEvent) => void = () => {}): DemoResult => {
  const slice = { expectOfficialSize: false, checkClassCounts: false };
  const trainSplit = orThrow(parseCifar100(trainBytes, 'train', 'train.bin', slice));
  const testSplit = orThrow(parseCifar100(testBytes, 'test', 'test.bin', slice));
  if (trainSplit.n < cfg.train + cfg.val)
    throw new RangeError(`train.bin holds ${trainSplit.n} images; ${cfg.train} training and ${cfg.val} validation images were asked for`);
  if (testSplit.n < cfg.test) throw new RangeError(`test.bin holds ${testSplit.n} images; ${cfg.test} were asked for`);
  const home = backend(cfg.backend);
  const range = (from: number, n: number) => Int32Array.from({ length: n }, (_, i) => from + i);
  const opts = { backend: home };
  const train = cifarSet(trainSplit, range(0, cfg.train), 'coarse', 'per-image', undefined, opts);
  const val = cifarSet(trainSplit, range(cfg.train, cfg.val), 'coarse', 'per-image', undefined, opts);
  const test = cifarSet(testSplit, range(0, cfg.test), 'coarse', 'per-image', undefined, opts);
  const model = mlp([3072, ...cfg.hidden, COARSE_CLASSES], { activation: cfg.activation, init: 'he-uniform' });
  const losses: number[] = [];
  const onEvent = (e: FitEvent): void => {
    if (e.type === 'start') emit({ type: 'start', backend: home.description, batches: e.batchesPerEpoch, epochs: e.epochs });
    else if (e.type === 'batch') {
      losses.push(e.loss);
      emit({ type: 'batch', epoch: e.epoch, batch: e.batch, batches: e.batches, loss: e.loss, accuracy: e.accuracy });
    } else if (e.type === 'epoch') {
      const { record: r } = e;
      emit({
        type: 'epoch',
        epoch: r.epoch,
        trainLoss: r.trainLoss,
        trainAccuracy: r.trainAccuracy,
        valLoss: r.valLoss,
        valAccuracy: r.valAccuracy,
        seconds: r.seconds,
      });
    }
  };
  const result = orThrow(
    fit(
      model,
      model.layer.init(new Key(cfg.seed)),
      { train, val },
      {
        epochs: cfg.epochs,
        batchSize: cfg.batchSize,
        seed: cfg.seed,
        shuffle: true,
        optimizer: { kind: 'momentum', lr: cfg.lr, momentum: cfg.momentum },
        backend: home,
        onEvent,
      },
    ),
  );
  const { accuracy } = evaluate(model, result.params, test);
  const predicted = tidy(() => predictedClasses(model.layer.apply(result.params, test.gather(range(0, test.n), home))));
  const confusion = confusionMatrix(predicted, test.y, COARSE_CLASSES);
  for (const s of [train, val, test]) s.dispose();
  return { backend: home.description, losses, testAccuracy: accuracy, confusion };
};
