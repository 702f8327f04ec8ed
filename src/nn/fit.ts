/**
 * Training: minibatch gradient descent with any optimizer, L2 in either form,
 * per-epoch validation, early stopping that restores the best weights, events
 * for progress bars and loggers, a clean stop on a non-finite loss, and an
 * interruptible, resumable state.
 */
import * as E from 'fp-ts/lib/Either.js';
import { valueAndGradWithAux } from '../autodiff/index.js';
import { defaultBackend, Key, resolveBackend, tidy, toBackend, type Backend, type BackendLike, type Tensor } from '../core/index.js';
import { batchIndices, gatherLabels, type LabeledSet } from '../data/preprocess.js';
import type { MlpParams, Model } from './layers.js';
import { crossEntropy, gradientL2Of, l2Penalty, type L2Options } from './losses.js';
import { correctCount } from './metrics.js';
import { optimizerFromSpec, type OptimizerSpec } from './optimizers.js';
import { leaves, mapTree, type Tree } from '../autodiff/index.js';
import { add } from '../core/index.js';

export interface EarlyStoppingOptions {
  /** How many previous epochs the rule looks at (the report: 5). */
  readonly patience: number;
  /**
   * 'paper': stop the first time the validation loss exceeds each of the previous
   * `patience` values (the report's trigger). 'no-improvement': stop after
   * `patience` epochs without a new lowest validation loss (Keras' rule).
   */
  readonly rule: 'paper' | 'no-improvement';
  /**
   * Which weights `fit` returns: 'always' the lowest-validation-loss epoch's;
   * 'when-stopped' those only if early stopping triggered, else the last epoch's
   * (the report's behaviour).
   */
  readonly restoreBest: 'always' | 'when-stopped';
}

export interface FitOptions {
  readonly epochs: number;
  readonly batchSize: number;
  readonly optimizer: OptimizerSpec;
  /** Reshuffle the training rows every epoch (seeded); false keeps the given order (the report). */
  readonly shuffle: boolean;
  /** Seeds every random choice of training (the shuffles). */
  readonly seed: number;
  /** Batch reduction of the loss and so of the gradient (the report: 'mean'). */
  readonly reduction?: 'mean' | 'sum';
  readonly l2?: L2Options;
  readonly earlyStopping?: EarlyStoppingOptions;
  /** Rows per forward pass when evaluating (default 1000). */
  readonly evalBatchSize?: number;
  /** Progress, logging and checkpoint hooks. */
  readonly onEvent?: (event: FitEvent) => void;
  /** When aborted, training stops after the current batch and returns the last finished epoch's state. */
  readonly signal?: AbortSignal;
  /** Continue from a saved state instead of the initial parameters. */
  readonly resume?: FitState;
  /**
   * Where training runs: parameters (and a resumed state) are moved there and
   * batches are gathered there. Default: the backend holding the initial parameters.
   */
  readonly backend?: BackendLike;
}

/** One finished epoch. */
export interface EpochRecord {
  /** 1-based. */
  readonly epoch: number;
  readonly trainLoss: number;
  readonly trainAccuracy: number;
  readonly valLoss: number;
  readonly valAccuracy: number;
  readonly seconds: number;
}

/** Everything needed to continue a run exactly (saved as a checkpoint). */
export interface FitState {
  /** Epochs finished. */
  readonly epoch: number;
  readonly params: MlpParams;
  readonly optState: Tree;
  readonly history: readonly EpochRecord[];
  /** The epoch with the lowest validation loss so far, and its weights. */
  readonly best: { readonly epoch: number; readonly valLoss: number; readonly params: MlpParams } | undefined;
  /** The epoch at which early stopping triggered, if it did. */
  readonly stoppedAt: number | undefined;
}

export type FitEvent =
  | { readonly type: 'start'; readonly epochs: number; readonly batchesPerEpoch: number; readonly startEpoch: number }
  | { readonly type: 'batch'; readonly epoch: number; readonly batch: number; readonly batches: number; readonly loss: number; readonly accuracy: number }
  /**
   * `state`'s tensors are valid while the handler runs: training frees each
   * step's old parameters (see `fit`), so copy what must outlive the event.
   */
  | { readonly type: 'epoch'; readonly record: EpochRecord; readonly state: FitState; readonly improved: boolean }
  | { readonly type: 'earlyStop'; readonly epoch: number; readonly bestEpoch: number }
  | { readonly type: 'interrupted'; readonly epoch: number };

export interface FitResult {
  /** The returned weights: see `restoreBest`; the last epoch's without early stopping. */
  readonly params: MlpParams;
  readonly history: readonly EpochRecord[];
  /** Epoch (1-based) of the lowest validation loss. */
  readonly bestEpoch: number;
  /** Epoch at which early stopping triggered, if it did. */
  readonly stoppedAt: number | undefined;
  /** Epoch whose weights were returned. */
  readonly returnedEpoch: number;
  /** True when `signal` stopped the run before its end. */
  readonly interrupted: boolean;
  /** For checkpoints and `resume`. */
  readonly state: FitState;
}

/** Training went wrong in a way the user can fix (non-finite loss, bad data). */
export class TrainingError extends Error {
  override readonly name = 'TrainingError';
}

export interface Evaluation {
  readonly loss: number;
  readonly accuracy: number;
}

/** The backend a tree of tensors lives on (the first leaf's), else the default. */
const backendOfTree = (tree: Tree): Backend => leaves(tree)[0]?.backend ?? defaultBackend();

/** Mean cross-entropy and accuracy of a model over a whole set, in chunks, on the parameters' backend. */
export const evaluate = (model: Model, params: MlpParams, set: LabeledSet, batchSize = 1000): Evaluation => {
  let loss = 0, correct = 0;
  const be = backendOfTree(params);
  for (const idx of batchIndices(set.n, batchSize)) {
    // Each chunk frees its batch, activations and logits before the next.
    tidy(() => {
      const y = gatherLabels(set.y, idx);
      const logits = model.layer.apply(params, set.gather(idx, be));
      loss += crossEntropy(logits, y, 'sum').item();
      correct += correctCount(logits, y);
    });
  }
  return { loss: loss / set.n, accuracy: correct / set.n };
};

/** Whether the early-stopping rule fires after the last entry of `valLosses`. */
export const shouldStop = (valLosses: readonly number[], opts: EarlyStoppingOptions): boolean => {
  const i = valLosses.length - 1, p = opts.patience;
  if (i < p) return false;
  if (opts.rule === 'paper') {
    const cur = valLosses[i]!;
    for (let j = i - p; j < i; j++) if (!(cur > valLosses[j]!)) return false;
    return true;
  }
  let bestIdx = 0;
  valLosses.forEach((v, j) => { if (v < valLosses[bestIdx]!) bestIdx = j; });
  return i - bestIdx >= p;
};

type FitData = { readonly train: LabeledSet; readonly val: LabeledSet };

/**
 * Trains `model` from `initial` parameters on `data.train`, validating on
 * `data.val` after every epoch. Returns `Left(TrainingError)` on a non-finite
 * loss, naming the epoch and batch. Runs to the end without yielding; use
 * `fitAsync` where signals (Ctrl-C) or other work must get a turn.
 *
 * Memory: each step runs in a `tidy`, and the parameters and optimizer state it
 * replaces are disposed at once (unless they are the best epoch's, or were
 * passed in: `initial` and `resume` stay the caller's), so a backend's live
 * memory is the same after every step. Everything in the result stays alive.
 */
export const fit = (model: Model, initial: MlpParams, data: FitData, opts: FitOptions): E.Either<TrainingError, FitResult> => {
  const steps = fitSteps(model, initial, data, opts);
  for (;;) {
    const r = steps.next();
    if (r.done === true) return r.value;
  }
};

/** `fit` that lets the event loop run after every batch (so `signal` can be aborted by a SIGINT handler). */
export const fitAsync = async (model: Model, initial: MlpParams, data: FitData, opts: FitOptions): Promise<E.Either<TrainingError, FitResult>> => {
  const steps = fitSteps(model, initial, data, opts);
  for (;;) {
    const r = steps.next();
    if (r.done === true) return r.value;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
};

/** The training loop as a generator that pauses after every batch; `fit` and `fitAsync` drive it. */
function* fitSteps(model: Model, initial: MlpParams, data: FitData, opts: FitOptions): Generator<void, E.Either<TrainingError, FitResult>> {
  const { train, val } = data;
  if (train.features !== model.spec.sizes[0] || val.features !== model.spec.sizes[0]) {
    return E.left(new TrainingError(`the data has ${train.features} features per row but the model's input width is ${model.spec.sizes[0]}`));
  }
  const outWidth = model.spec.sizes[model.spec.sizes.length - 1]!;
  if (train.classes !== outWidth) {
    return E.left(new TrainingError(`the data has ${train.classes} classes but the model has ${outWidth} outputs: set the last width to ${train.classes}`));
  }
  const reduction = opts.reduction ?? 'mean';
  const l2: L2Options = opts.l2 ?? { lambda: 0, mode: 'loss', includeBias: false };
  const optimizer = optimizerFromSpec(opts.optimizer, gradientL2Of(l2));
  const key = new Key(opts.seed).fold('shuffle');
  const be = opts.backend === undefined ? backendOfTree(opts.resume?.params ?? initial) : resolveBackend(opts.backend);
  const moved = <T extends Tree>(t: T): T => mapTree(t, (x) => toBackend(x, be));
  // Tensors the caller passed in: never disposed here.
  const foreign = new Set<Tensor>([...leaves(initial), ...(opts.resume === undefined ? [] : [...leaves(opts.resume.params), ...leaves(opts.resume.optState), ...(opts.resume.best ? leaves(opts.resume.best.params) : [])])]);
  const resumed = opts.resume;
  let state: FitState;
  if (resumed !== undefined) {
    state = { ...resumed, params: moved(resumed.params), optState: moved(resumed.optState), best: resumed.best && { ...resumed.best, params: moved(resumed.best.params) } };
  } else {
    const params = moved(initial);
    state = { epoch: 0, params, optState: optimizer.init(params), history: [], best: undefined, stoppedAt: undefined };
  }
  /** Disposes the tensors of `old` trees that none of `live` holds and that are not the caller's. */
  const release = (old: readonly Tree[], live: readonly Tree[]): void => {
    const keepSet = new Set<Tensor>(live.flatMap((t) => leaves(t)));
    for (const tree of old) for (const t of leaves(tree)) if (!keepSet.has(t) && !foreign.has(t)) t.dispose();
  };
  const emit = opts.onEvent ?? (() => {});
  const batchesPerEpoch = Math.ceil(train.n / opts.batchSize);
  emit({ type: 'start', epochs: opts.epochs, batchesPerEpoch, startEpoch: state.epoch + 1 });

  const step = (params: MlpParams, x: Tensor, y: Uint8Array) =>
    valueAndGradWithAux((p: MlpParams) => {
      const logits = model.layer.apply(p, x);
      const ce = crossEntropy(logits, y, reduction);
      const penalty = l2Penalty(p, l2);
      return [penalty === undefined ? ce : add(ce, penalty), logits] as const;
    })(params);

  let interrupted = false;
  while (state.stoppedAt === undefined && state.epoch < opts.epochs) {
    const epoch = state.epoch + 1;
    const t0 = performance.now();
    const order = batchIndices(train.n, opts.batchSize, opts.shuffle ? key.fold(`epoch-${epoch}`) : undefined);
    let params = state.params, optState = state.optState, lossSum = 0, correct = 0, seen = 0;
    for (let b = 0; b < order.length; b++) {
      if (opts.signal?.aborted) { interrupted = true; break; }
      const idx = order[b]!;
      const y = gatherLabels(train.y, idx);
      // One step; everything it makes but the new parameters and state is freed at its end.
      const r = tidy(() => {
        const { value, grads, aux: logits } = step(params, train.gather(idx, be), y);
        const loss = value.item();
        if (!Number.isFinite(loss)) return { loss, next: undefined, correct: 0 };
        return { loss, next: optimizer.step(optState, params, grads), correct: correctCount(logits, y) };
      });
      if (r.next === undefined) {
        return E.left(new TrainingError(
          `the training loss became ${r.loss} at epoch ${epoch}, batch ${b + 1} of ${order.length}: ` +
            `the weights diverged. Lower the learning rate (now ${opts.optimizer.lr}) or the momentum, or check the inputs for NaN`,
        ));
      }
      // The epoch's starting state stays (an interrupted run returns it), and so do the best weights.
      release([params, optState], [r.next.params, r.next.state, state.params, state.optState, ...(state.best ? [state.best.params] : [])]);
      params = r.next.params;
      optState = r.next.state;
      const bs = idx.length;
      lossSum += reduction === 'mean' ? r.loss * bs : r.loss;
      correct += r.correct;
      seen += bs;
      emit({ type: 'batch', epoch, batch: b + 1, batches: order.length, loss: lossSum / seen, accuracy: correct / seen });
      yield;
    }
    if (interrupted) {
      // The state stays at the last finished epoch: the unfinished epoch's parameters go.
      if (params !== state.params) release([params, optState], [state.params, state.optState, ...(state.best ? [state.best.params] : [])]);
      break;
    }
    const v = evaluate(model, params, val, opts.evalBatchSize);
    const record: EpochRecord = {
      epoch, trainLoss: lossSum / seen, trainAccuracy: correct / seen, valLoss: v.loss, valAccuracy: v.accuracy,
      seconds: (performance.now() - t0) / 1000,
    };
    const improved = state.best === undefined || v.loss < state.best.valLoss;
    const history = [...state.history, record];
    const stop = opts.earlyStopping !== undefined && shouldStop(history.map((h) => h.valLoss), opts.earlyStopping);
    const previous = state;
    state = {
      epoch, params, optState, history,
      best: improved ? { epoch, valLoss: v.loss, params } : state.best,
      stoppedAt: stop ? epoch : undefined,
    };
    release([previous.params, previous.optState, ...(previous.best ? [previous.best.params] : [])], [params, optState, state.best!.params]);
    emit({ type: 'epoch', record, state, improved });
    if (stop) emit({ type: 'earlyStop', epoch, bestEpoch: state.best!.epoch });
  }
  if (interrupted) emit({ type: 'interrupted', epoch: state.epoch });

  const best = state.best;
  // Without early stopping the last epoch's weights are returned.
  const restore = opts.earlyStopping?.restoreBest ?? 'when-stopped';
  const useBest = best !== undefined && (restore === 'always' || state.stoppedAt !== undefined);
  return E.right({
    params: useBest ? best.params : state.params,
    history: state.history,
    bestEpoch: best?.epoch ?? 0,
    stoppedAt: state.stoppedAt,
    returnedEpoch: useBest ? best.epoch : state.epoch,
    interrupted,
    state,
  });
}
