/**
 * Training: minibatch gradient descent with any optimizer, L2 in either form,
 * per-epoch validation, early stopping that restores the best weights, events
 * for progress bars and loggers, a clean stop on a non-finite loss, and an
 * interruptible, resumable state.
 */
import * as E from 'fp-ts/lib/Either.js';
import { valueAndGradWithAux } from '../autodiff/index.js';
import { Key, type Tensor } from '../core/index.js';
import { batchIndices, gatherLabels, type LabeledSet } from '../data/preprocess.js';
import { forwardOf, initialState, rolesOf, type Layer, type MlpParams, type Model, type Stateless } from './layers.js';
import { crossEntropy, gradientL2Of, l2Penalty, leafInfos, type L2Options, type LeafInfo, type LeafPredicate } from './losses.js';
import { correctCount } from './metrics.js';
import { optimizerFromSpec, type OptimizerSpec } from './optimizers.js';
import type { Tree, Treelike } from '../autodiff/index.js';
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

/** A loss: model outputs and integer labels to a scalar tensor (a batch mean, unless `reduction: 'sum'`). */
export type LossFn = (outputs: Tensor, labels: Uint8Array) => Tensor;

export interface FitOptions {
  readonly epochs: number;
  readonly batchSize: number;
  readonly optimizer: OptimizerSpec;
  /** Reshuffle the training rows every epoch (seeded); false keeps the given order (the report). */
  readonly shuffle: boolean;
  /** Seeds every random choice of training (the shuffles, dropout). */
  readonly seed: number;
  /**
   * Batch reduction of the loss and so of the gradient (the report: 'mean').
   * With a custom `loss`, says which reduction that loss uses.
   */
  readonly reduction?: 'mean' | 'sum';
  /** The training loss (default: softmax cross-entropy of the outputs as logits). */
  readonly loss?: LossFn;
  readonly l2?: L2Options;
  /** Which leaves decoupled weight decay (`optimizer.weightDecay`) shrinks; default all. */
  readonly weightDecayApplies?: LeafPredicate;
  readonly earlyStopping?: EarlyStoppingOptions;
  /** Rows per forward pass when evaluating (default 1000). */
  readonly evalBatchSize?: number;
  /** Progress, logging and checkpoint hooks. */
  readonly onEvent?: (event: FitEvent) => void;
  /** When aborted, training stops after the current batch and returns the last finished epoch's state. */
  readonly signal?: AbortSignal;
  /** Continue from a saved state instead of the initial parameters. */
  readonly resume?: FitState<any, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
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
export interface FitState<P extends Treelike<P> = MlpParams, S extends Treelike<S> = Stateless> {
  /** Epochs finished. */
  readonly epoch: number;
  readonly params: P;
  readonly optState: Tree;
  /** The layers' state (running statistics), [] for stateless models. */
  readonly layerState: S;
  readonly history: readonly EpochRecord[];
  /** The epoch with the lowest validation loss so far, its weights and state. */
  readonly best: { readonly epoch: number; readonly valLoss: number; readonly params: P; readonly layerState: S } | undefined;
  /** The epoch at which early stopping triggered, if it did. */
  readonly stoppedAt: number | undefined;
}

export type FitEvent<P extends Treelike<P> = any, S extends Treelike<S> = any> = // eslint-disable-line @typescript-eslint/no-explicit-any
  | { readonly type: 'start'; readonly epochs: number; readonly batchesPerEpoch: number; readonly startEpoch: number }
  | { readonly type: 'batch'; readonly epoch: number; readonly batch: number; readonly batches: number; readonly loss: number; readonly accuracy: number }
  | { readonly type: 'epoch'; readonly record: EpochRecord; readonly state: FitState<P, S>; readonly improved: boolean }
  | { readonly type: 'earlyStop'; readonly epoch: number; readonly bestEpoch: number }
  | { readonly type: 'interrupted'; readonly epoch: number };

export interface FitResult<P extends Treelike<P> = MlpParams, S extends Treelike<S> = Stateless> {
  /** The returned weights: see `restoreBest`; the last epoch's without early stopping. */
  readonly params: P;
  /** The layers' state that goes with `params` (running statistics). */
  readonly layerState: S;
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
  readonly state: FitState<P, S>;
}

/** Training went wrong in a way the user can fix (non-finite loss, bad data). */
export class TrainingError extends Error {
  override readonly name = 'TrainingError';
}

export interface Evaluation {
  readonly loss: number;
  readonly accuracy: number;
}

/** What `fit` and `evaluate` train or evaluate: a layer, or a model (a layer with its architecture). */
export type Trainable<P extends Treelike<P>, S extends Treelike<S>> = Layer<P, S> | Model<P, S>;

const layerOf = <P extends Treelike<P>, S extends Treelike<S>>(m: Trainable<P, S>): Layer<P, S> =>
  'layer' in m && typeof (m as Model<P, S>).layer === 'object' ? (m as Model<P, S>).layer : (m as Layer<P, S>);

export interface EvaluateOptions<S> {
  /** Rows per forward pass (default 1000). */
  readonly batchSize?: number;
  /** The layers' state to evaluate with (running statistics); default the initial state. */
  readonly layerState?: S;
  /** A batch-mean loss to report instead of cross-entropy. */
  readonly loss?: LossFn;
}

/**
 * Mean loss (cross-entropy by default) and accuracy of a model over a whole
 * set, in chunks, in eval mode (no dropout; batchNorm uses `layerState`).
 */
export const evaluate = <P extends Treelike<P>, S extends Treelike<S> = Stateless>(
  model: Trainable<P, S>, params: P, set: LabeledSet, opts: number | EvaluateOptions<S> = {},
): Evaluation => {
  const o: EvaluateOptions<S> = typeof opts === 'number' ? { batchSize: opts } : opts;
  const layer = layerOf(model);
  const state = o.layerState ?? initialState(layer);
  let loss = 0, correct = 0;
  for (const idx of batchIndices(set.n, o.batchSize ?? 1000)) {
    const x = set.gather(idx);
    const y = gatherLabels(set.y, idx);
    const logits = layer.apply(params, x, state);
    loss += o.loss === undefined ? crossEntropy(logits, y, 'sum').item() : o.loss(logits, y).item() * idx.length;
    correct += correctCount(logits, y);
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
 * Trains `model` (any layer, or a model built from a spec) from `initial`
 * parameters on `data.train`, validating on `data.val` after every epoch, and
 * returns parameters of the same type. Returns `Left(TrainingError)` on a
 * non-finite loss, naming the epoch and batch, or on data the model cannot
 * take. Runs to the end without yielding; use `fitAsync` where signals
 * (Ctrl-C) or other work must get a turn.
 */
export const fit = <P extends Treelike<P>, S extends Treelike<S> = Stateless>(
  model: Trainable<P, S>, initial: P, data: FitData, opts: FitOptions,
): E.Either<TrainingError, FitResult<P, S>> => {
  const steps = fitSteps(model, initial, data, opts);
  for (;;) {
    const r = steps.next();
    if (r.done === true) return r.value;
  }
};

/** `fit` that lets the event loop run after every batch (so `signal` can be aborted by a SIGINT handler). */
export const fitAsync = async <P extends Treelike<P>, S extends Treelike<S> = Stateless>(
  model: Trainable<P, S>, initial: P, data: FitData, opts: FitOptions,
): Promise<E.Either<TrainingError, FitResult<P, S>>> => {
  const steps = fitSteps(model, initial, data, opts);
  for (;;) {
    const r = steps.next();
    if (r.done === true) return r.value;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
};

/** Checks that the model takes the data's rows and, for cross-entropy, gives one score per class. */
const checkFits = <P extends Treelike<P>, S extends Treelike<S>>(
  model: Trainable<P, S>, params: P, state: S, data: FitData, customLoss: boolean,
): TrainingError | undefined => {
  const { train, val } = data;
  const spec = 'spec' in model ? model.spec : undefined;
  if (spec?.kind === 'mlp') {
    // The MLP's own words: it knows its input and output widths without a trial pass.
    if (train.features !== spec.sizes[0] || val.features !== spec.sizes[0]) {
      return new TrainingError(`the data has ${train.features} features per row but the model's input width is ${spec.sizes[0]}`);
    }
    const outWidth = spec.sizes[spec.sizes.length - 1]!;
    if (train.classes !== outWidth) {
      return new TrainingError(`the data has ${train.classes} classes but the model has ${outWidth} outputs: set the last width to ${train.classes}`);
    }
    return undefined;
  }
  if (val.features !== train.features) return new TrainingError(`the training rows have ${train.features} features but the validation rows ${val.features}`);
  let out: Tensor;
  try {
    out = layerOf(model).apply(params, train.gather(Int32Array.of(0)), state);
  } catch (e) {
    return new TrainingError(`the model cannot take the data's rows (${train.features} features each): ${(e as Error).message}`);
  }
  if (!customLoss && (out.rank !== 2 || out.shape[1] !== train.classes)) {
    return new TrainingError(
      `the data has ${train.classes} classes but the model gives outputs of shape [${out.shape.join(', ')}] per row of one: ` +
        `cross-entropy needs [1, ${train.classes}]; make the last layer give ${train.classes} outputs`,
    );
  }
  return undefined;
};

/** The training loop as a generator that pauses after every batch; `fit` and `fitAsync` drive it. */
function* fitSteps<P extends Treelike<P>, S extends Treelike<S>>(
  model: Trainable<P, S>, initial: P, data: FitData, opts: FitOptions,
): Generator<void, E.Either<TrainingError, FitResult<P, S>>> {
  const { train, val } = data;
  const layer = layerOf(model);
  const resume = opts.resume as FitState<P, S> | undefined;
  const startParams = resume?.params ?? initial;
  const startLayerState = resume?.layerState ?? initialState(layer);
  const bad = checkFits(model, startParams, startLayerState, data, opts.loss !== undefined);
  if (bad !== undefined) return E.left(bad);
  const reduction = opts.reduction ?? 'mean';
  const lossFn: LossFn = opts.loss ?? ((logits, y) => crossEntropy(logits, y, reduction));
  const l2: L2Options = opts.l2 ?? { lambda: 0, mode: 'loss', includeBias: false };
  let infos: LeafInfo[];
  try {
    infos = leafInfos(startParams, rolesOf(layer, startParams));
  } catch (e) {
    return E.left(new TrainingError(`the parameters are not a tree of tensors: ${(e as Error).message}`));
  }
  const roles = infos.map((i) => i.role);
  const decays = opts.weightDecayApplies;
  const optimizer = optimizerFromSpec(
    opts.optimizer, gradientL2Of(l2, infos), decays === undefined ? undefined : (_path, i) => decays(infos[i]!),
  );
  const key = new Key(opts.seed).fold('shuffle');
  const dropKey = new Key(opts.seed).fold('dropout');
  let state: FitState<P, S> = resume ?? {
    epoch: 0, params: initial, optState: optimizer.init(initial), layerState: startLayerState, history: [], best: undefined, stoppedAt: undefined,
  };
  const emit = opts.onEvent ?? (() => {});
  const batchesPerEpoch = Math.ceil(train.n / opts.batchSize);
  emit({ type: 'start', epochs: opts.epochs, batchesPerEpoch, startEpoch: state.epoch + 1 });

  const step = (params: P, layerState: S, x: Tensor, y: Uint8Array, k: Key) =>
    valueAndGradWithAux((p: P) => {
      const out = forwardOf(layer, p, x, { train: true, key: k, state: layerState });
      const loss = lossFn(out.y, y);
      const penalty = l2Penalty(p, l2, roles);
      return [penalty === undefined ? loss : add(loss, penalty), [out.y, out.state]] as const;
    })(params);

  let interrupted = false;
  while (state.stoppedAt === undefined && state.epoch < opts.epochs) {
    const epoch = state.epoch + 1;
    const t0 = performance.now();
    const order = batchIndices(train.n, opts.batchSize, opts.shuffle ? key.fold(`epoch-${epoch}`) : undefined);
    let params = state.params, optState = state.optState, layerState = state.layerState, lossSum = 0, correct = 0, seen = 0;
    for (let b = 0; b < order.length; b++) {
      if (opts.signal?.aborted) { interrupted = true; break; }
      const idx = order[b]!;
      const x = train.gather(idx);
      const y = gatherLabels(train.y, idx);
      const { value, grads, aux: [logits, nextLayerState] } = step(params, layerState, x, y, dropKey.fold(`${epoch}-${b}`));
      const loss = value.item();
      if (!Number.isFinite(loss)) {
        return E.left(new TrainingError(
          `the training loss became ${loss} at epoch ${epoch}, batch ${b + 1} of ${order.length}: ` +
            `the weights diverged. Lower the learning rate (now ${opts.optimizer.lr}) or the momentum, or check the inputs for NaN`,
        ));
      }
      const next = optimizer.step(optState, params, grads);
      params = next.params;
      optState = next.state;
      layerState = nextLayerState as S;
      const bs = idx.length;
      lossSum += reduction === 'mean' ? loss * bs : loss;
      const k = correctCount(logits, y);
      correct += k;
      seen += bs;
      emit({ type: 'batch', epoch, batch: b + 1, batches: order.length, loss: lossSum / seen, accuracy: correct / seen });
      yield;
    }
    if (interrupted) break;
    const v = evaluate(layer, params, val, { batchSize: opts.evalBatchSize ?? 1000, layerState, ...(opts.loss ? { loss: opts.loss } : {}) });
    const record: EpochRecord = {
      epoch, trainLoss: lossSum / seen, trainAccuracy: correct / seen, valLoss: v.loss, valAccuracy: v.accuracy,
      seconds: (performance.now() - t0) / 1000,
    };
    const improved = state.best === undefined || v.loss < state.best.valLoss;
    const history = [...state.history, record];
    const stop = opts.earlyStopping !== undefined && shouldStop(history.map((h) => h.valLoss), opts.earlyStopping);
    state = {
      epoch, params, optState, layerState, history,
      best: improved ? { epoch, valLoss: v.loss, params, layerState } : state.best,
      stoppedAt: stop ? epoch : undefined,
    };
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
    layerState: useBest ? best.layerState : state.layerState,
    history: state.history,
    bestEpoch: best?.epoch ?? 0,
    stoppedAt: state.stoppedAt,
    returnedEpoch: useBest ? best.epoch : state.epoch,
    interrupted,
    state,
  });
}
