/**
 * Training: minibatch gradient descent with any optimizer, L2 in either form,
 * per-epoch validation, early stopping that restores the best weights, events
 * for progress bars and loggers, a clean stop on a non-finite loss, and an
 * interruptible, resumable state.
 */
import * as E from 'fp-ts/lib/Either.js';
import { jit, valueAndGradWithAux } from '../autodiff/index.js';
import { defaultBackend, Key, resolveBackend, tidy, toBackend, withBackend, type Backend, type BackendLike, type Tensor } from '../core/index.js';
import { batchIndices, gatherLabels, type LabeledSet } from '../data/preprocess.js';
import { forwardOf, initialState, rolesOf, type Layer, type MlpParams, type Model, type Stateless } from './layers.js';
import { crossEntropy, gradientL2Of, l2Penalty, leafInfos, type L2Options, type LeafInfo, type LeafPredicate } from './losses.js';
import { correctCount } from './metrics.js';
import { optimizerFromSpec, type OptimizerSpec } from './optimizers.js';
import { augmentRows, drawAugmentations, type AugmentOptions } from '../data/augment.js';
import { clipByGlobalNorm, learningRate, type ScheduleSpec } from './schedules.js';
import { leaves, mapTree, type Tree, type Treelike } from '../autodiff/index.js';
import { add, argmax, cast, concat, equal, fromArray, oneHot, reshape, softmaxCrossEntropy, sum } from '../core/index.js';
import { internal } from '../core/internal.js';

/** When training stops early, and which epoch's weights `fit` returns. */
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

/**
 * How `fit` trains: epochs, batch size, optimizer, shuffling and seed, loss and L2, early
 * stopping, events, interruption, resume, and the backend.
 */
export interface FitOptions {
  readonly epochs: number;
  readonly batchSize: number;
  readonly optimizer: OptimizerSpec;
  /** The learning rate per step, from `optimizer.lr` (see schedules.ts); default constant. */
  readonly schedule?: ScheduleSpec;
  /**
   * Random crops (zero padding of `crop` pixels) and horizontal flips of the
   * training batches, drawn per epoch and batch from `seed` (see data/augment.ts).
   * `image` is one row's [channels, height, width] (default CIFAR's [3, 32, 32]).
   */
  readonly augment?: AugmentOptions & { readonly image?: readonly [number, number, number] };
  /** Scale each step's gradients down to this global L2 norm when they exceed it (see `clipByGlobalNorm`); default none. */
  readonly clipNorm?: number;
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
  // biome-ignore lint/suspicious/noExplicitAny: a state read from a checkpoint has tree types known only at run time; fit checks it against the model
  readonly resume?: FitState<any, any>;
  /**
   * Where training runs: parameters (and a resumed state) are moved there and
   * batches are gathered there. Default: the backend holding the initial parameters.
   */
  readonly backend?: BackendLike;
  /**
   * Run each step's forward and backward pass as a jitted program (`jit`):
   * traced on the first batch of each size, replayed after, the same numbers
   * bit for bit (dropout's masks are drawn from each step's key, as eagerly).
   * Default true; it applies when the loss is the built-in cross-entropy (a
   * custom `loss` takes host labels, which a program would freeze): otherwise,
   * or with `jit: false`, steps run eagerly. The `start` event says which path
   * runs, and a `stepPath` event says why when tracing fell back to eager (a
   * layer that reads values on the host, or draws from a key of its own).
   */
  readonly jit?: boolean;
}

/** How `fit` runs its steps: as a jitted program, or eagerly (and why). */
export interface StepPath {
  readonly path: 'jit' | 'eager';
  readonly reason: string;
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

/**
 * What `fit` reports as it goes (`onEvent`): the start, every batch, every epoch (with the state a
 * checkpoint needs), an early stop, an interruption.
 */
// biome-ignore lint/suspicious/noExplicitAny: defaults for listeners that do not look at the state's trees (progress bars); FitEvent<unknown> would not be one
export type FitEvent<P extends Treelike<P> = any, S extends Treelike<S> = any> =
  | { readonly type: 'start'; readonly epochs: number; readonly batchesPerEpoch: number; readonly startEpoch: number; readonly step: StepPath }
  /** Tracing the first step failed (a layer reading values on the host, or drawing from a key of its own): steps run eagerly from then on. */
  | { readonly type: 'stepPath'; readonly step: StepPath }
  | { readonly type: 'batch'; readonly epoch: number; readonly batch: number; readonly batches: number; readonly loss: number; readonly accuracy: number }
  /**
   * `state`'s tensors are valid while the handler runs: training frees each
   * step's old parameters (see `fit`), so copy what must outlive the event.
   */
  | { readonly type: 'epoch'; readonly record: EpochRecord; readonly state: FitState<P, S>; readonly improved: boolean }
  | { readonly type: 'earlyStop'; readonly epoch: number; readonly bestEpoch: number }
  | { readonly type: 'interrupted'; readonly epoch: number };

/**
 * What `fit` returns: the chosen epoch's parameters and layer state, the history, the
 * early-stopping epochs, and the state to resume from.
 */
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

/** Mean loss and accuracy over a whole set. */
export interface Evaluation {
  readonly loss: number;
  readonly accuracy: number;
}

/** What `fit` and `evaluate` train or evaluate: a layer, or a model (a layer with its architecture). */
export type Trainable<P extends Treelike<P>, S extends Treelike<S>> = Layer<P, S> | Model<P, S>;

const layerOf = <P extends Treelike<P>, S extends Treelike<S>>(m: Trainable<P, S>): Layer<P, S> =>
  'layer' in m && typeof (m as Model<P, S>).layer === 'object' ? (m as Model<P, S>).layer : (m as Layer<P, S>);

/** The backend a tree of tensors lives on (the first leaf's), else the default. */
const backendOfTree = (tree: Tree): Backend => leaves(tree)[0]?.backend ?? defaultBackend();

/**
 * How `evaluate` runs: rows per forward pass, the layer state (running statistics), and the loss
 * to report.
 */
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
  model: Trainable<P, S>,
  params: P,
  set: LabeledSet,
  opts: number | EvaluateOptions<S> = {},
): Evaluation => {
  const o: EvaluateOptions<S> = typeof opts === 'number' ? { batchSize: opts } : opts;
  const layer = layerOf(model);
  const state = o.layerState ?? initialState(layer);
  const be = backendOfTree(params as Tree);
  let loss = 0,
    correct = 0;
  for (const idx of batchIndices(set.n, o.batchSize ?? 1000)) {
    // Each chunk frees its batch, activations and logits before the next.
    tidy(() => {
      const y = gatherLabels(set.y, idx);
      const logits = layer.apply(params, set.gather(idx, be), state);
      loss += o.loss === undefined ? crossEntropy(logits, y, 'sum').item() : o.loss(logits, y).item() * idx.length;
      correct += correctCount(logits, y);
    });
  }
  return { loss: loss / set.n, accuracy: correct / set.n };
};

/** Whether the early-stopping rule fires after the last entry of `valLosses`. */
export const shouldStop = (valLosses: readonly number[], opts: EarlyStoppingOptions): boolean => {
  const i = valLosses.length - 1,
    p = opts.patience;
  if (i < p) return false;
  if (opts.rule === 'paper') {
    const cur = valLosses[i]!;
    for (let j = i - p; j < i; j++) if (!(cur > valLosses[j]!)) return false;
    return true;
  }
  let bestIdx = 0;
  valLosses.forEach((v, j) => {
    if (v < valLosses[bestIdx]!) bestIdx = j;
  });
  return i - bestIdx >= p;
};

/** What `fit` trains on and validates with. */
export type FitData = { readonly train: LabeledSet; readonly val: LabeledSet };

/**
 * A step's loss and how many rows it classified right. On a backend whose reads
 * wait on a device (one with `readAsync`: webgpu) the count is made there
 * (argmax against the labels, uploaded with the batch) and one download of two
 * numbers brings both: the loss is then the step's only read. Elsewhere the
 * logits are read where they are (a host backend's memory: no copy).
 */
const readStep = (value: Tensor, logits: Tensor, y: Uint8Array): { loss: number; correct: number } => {
  const be = logits.backend;
  if (be.readAsync === undefined || logits.rank !== 2) return { loss: value.item(), correct: correctCount(logits, y) };
  const labels = E.getOrElseW((e: Error) => {
    throw e;
  })(fromArray(y, [y.length], 'int32', be));
  const hits = sum(equal(argmax(logits, 1), labels));
  const both = concat([reshape(value, [1]), reshape(cast(hits, value.dtype), [1])]).toTypedArray();
  return { loss: both[0]!, correct: both[1]! };
};

/**
 * Trains `model` (any layer, or a model built from a spec) from `initial`
 * parameters on `data.train`, validating on `data.val` after every epoch, and
 * returns parameters of the same type. Returns `Left(TrainingError)` on a
 * non-finite loss, naming the epoch and batch, or on data the model cannot
 * take. Runs to the end without yielding; use `fitAsync` where signals
 * (Ctrl-C) or other work must get a turn.
 *
 * Memory: each step runs in a `tidy`, and the parameters, optimizer and layer
 * state it replaces are disposed at once (unless they are the best epoch's or
 * the epoch's starting ones, or were passed in: `initial` and `resume` stay the
 * caller's), so a backend's live memory is the same after every step. Everything
 * in the result stays alive.
 */
export const fit = <P extends Treelike<P>, S extends Treelike<S> = Stateless>(
  model: Trainable<P, S>,
  initial: P,
  data: FitData,
  opts: FitOptions,
): E.Either<TrainingError, FitResult<P, S>> => {
  const steps = fitSteps(model, initial, data, opts);
  for (;;) {
    const r = steps.next();
    if (r.done === true) return r.value;
  }
};

/** `fit` that lets the event loop run after every batch (so `signal` can be aborted by a SIGINT handler). */
export const fitAsync = async <P extends Treelike<P>, S extends Treelike<S> = Stateless>(
  model: Trainable<P, S>,
  initial: P,
  data: FitData,
  opts: FitOptions,
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
  model: Trainable<P, S>,
  params: P,
  state: S,
  data: FitData,
  customLoss: boolean,
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
  let outShape: readonly number[];
  try {
    outShape = tidy(() => layerOf(model).apply(params, train.gather(Int32Array.of(0), backendOfTree(params as Tree)), state).shape);
  } catch (e) {
    return new TrainingError(`the model cannot take the data's rows (${train.features} features each): ${(e as Error).message}`);
  }
  if (!customLoss && (outShape.length !== 2 || outShape[1] !== train.classes)) {
    return new TrainingError(
      `the data has ${train.classes} classes but the model gives outputs of shape [${outShape.join(', ')}] per row of one: ` +
        `cross-entropy needs [1, ${train.classes}]; make the last layer give ${train.classes} outputs`,
    );
  }
  return undefined;
};

/**
 * Checks the options and data `fit` can see before training (configs decode
 * most of them already; API callers may pass anything), so each bad input is a
 * `Left` naming it rather than a throw mid-run or a `Right` full of NaN.
 */
const checkInputs = (data: FitData, opts: FitOptions): TrainingError | undefined => {
  const { train, val } = data;
  if (!(Number.isInteger(opts.epochs) && opts.epochs >= 1)) return new TrainingError(`epochs must be a positive integer, got ${opts.epochs}`);
  if (!(Number.isInteger(opts.batchSize) && opts.batchSize >= 1)) return new TrainingError(`batchSize must be a positive integer, got ${opts.batchSize}`);
  if (!Number.isInteger(opts.seed)) return new TrainingError(`seed must be an integer, got ${opts.seed}`);
  const lr = opts.optimizer.lr;
  if (!(Number.isFinite(lr) && lr >= 0)) return new TrainingError(`optimizer.lr must be a finite number ≥ 0, got ${lr}`);
  if (train.n === 0) return new TrainingError('the training set is empty: give fit at least one training row');
  if (val.n === 0)
    return new TrainingError('the validation set is empty: fit validates after every epoch (early stopping, the best epoch); give it at least one row');
  if (val.classes !== train.classes)
    return new TrainingError(`the training set has ${train.classes} classes but the validation set ${val.classes}: split both from one data set`);
  for (const [name, set] of [
    ['training', train],
    ['validation', val],
  ] as const) {
    if (set.y.length !== set.n) return new TrainingError(`the ${name} set has ${set.n} rows but ${set.y.length} labels`);
    const i = set.y.findIndex((label) => label >= set.classes);
    if (i >= 0)
      return new TrainingError(`${name} row ${i} has label ${set.y[i]}, not a class of 0..${set.classes - 1}: fix the labels or the set's class count`);
  }
  // Training inputs that are not finite make the loss NaN (reported with its batch); validation ones would only make every
  // validation loss NaN, so they are looked for here, a chunk at a time, once.
  for (let s = 0; s < val.n; s += 1000) {
    const x = val.gather(Int32Array.from({ length: Math.min(1000, val.n - s) }, (_, i) => s + i));
    try {
      const d = x.toTypedArray();
      const j = d.findIndex((v) => !Number.isFinite(v));
      if (j >= 0)
        return new TrainingError(
          `validation row ${s + Math.floor(j / val.features)} holds ${d[j]} (feature ${j % val.features}): every validation loss would be NaN; clean or drop that row`,
        );
    } finally {
      x.dispose();
    }
  }
  return undefined;
};

/** Checks `schedule` and `clipNorm` (configs decode them already; API callers may pass anything). */
const checkSchedule = (opts: FitOptions): TrainingError | undefined => {
  const c = opts.clipNorm,
    sch = opts.schedule;
  if (c !== undefined && !(c > 0 && Number.isFinite(c)))
    return new TrainingError(`clipNorm must be a positive finite number, got ${c}: leave it out for no clipping`);
  if (sch === undefined) return undefined;
  const w = sch.warmupEpochs ?? 0;
  if (!(w >= 0 && Number.isFinite(w))) return new TrainingError(`schedule.warmupEpochs must be a number ≥ 0, got ${w}`);
  if (sch.kind === 'step' && !(sch.everyEpochs > 0 && sch.factor > 0 && Number.isFinite(sch.everyEpochs) && Number.isFinite(sch.factor))) {
    return new TrainingError(
      `a step schedule needs everyEpochs > 0 and factor > 0, got everyEpochs ${sch.everyEpochs} and factor ${sch.factor} (e.g. { kind: 'step', everyEpochs: 10, factor: 0.1 })`,
    );
  }
  if (sch.kind === 'cosine' && sch.minLr !== undefined && !(sch.minLr >= 0 && sch.minLr <= opts.optimizer.lr)) {
    return new TrainingError(`schedule.minLr must lie between 0 and optimizer.lr (${opts.optimizer.lr}), got ${sch.minLr}`);
  }
  return undefined;
};

/** Checks `augment` against the rows it will rearrange. */
const checkAugment = (opts: FitOptions, features: number): TrainingError | undefined => {
  const a = opts.augment;
  if (a === undefined) return undefined;
  const [c, h, w] = a.image ?? [3, 32, 32];
  if (c * h * w !== features)
    return new TrainingError(
      `augment: rows of ${features} features are not images of [${c}, ${h}, ${w}]: set augment.image to one row's [channels, height, width]`,
    );
  const crop = a.crop ?? 0;
  if (!(Number.isInteger(crop) && crop >= 0 && crop < Math.min(h, w)))
    return new TrainingError(`augment.crop must be an integer from 0 to ${Math.min(h, w) - 1} (pixels of padding), got ${crop}`);
  return undefined;
};

/** The training loop as a generator that pauses after every batch; `fit` and `fitAsync` drive it. */
function* fitSteps<P extends Treelike<P>, S extends Treelike<S>>(
  model: Trainable<P, S>,
  initial: P,
  data: FitData,
  opts: FitOptions,
): Generator<void, E.Either<TrainingError, FitResult<P, S>>> {
  const { train, val } = data;
  const layer = layerOf(model);
  const given = opts.resume as FitState<P, S> | undefined;
  const be = opts.backend === undefined ? backendOfTree((given?.params ?? initial) as Tree) : resolveBackend(opts.backend);
  const moved = <T extends Treelike<T>>(t: T): T => mapTree(t, (x) => toBackend(x, be));
  // Tensors the caller passed in: never disposed here.
  const foreign = new Set<Tensor>(
    [initial, given?.params, given?.optState, given?.layerState, given?.best?.params, given?.best?.layerState].flatMap((t) =>
      t === undefined ? [] : leaves(t as Tree),
    ),
  );
  const resume: FitState<P, S> | undefined = given && {
    ...given,
    params: moved(given.params),
    optState: moved(given.optState),
    layerState: moved(given.layerState),
    best: given.best && { ...given.best, params: moved(given.best.params), layerState: moved(given.best.layerState) },
  };
  const start = resume?.params ?? moved(initial);
  // Made where training runs (batchNorm's running statistics), as the parameters are moved there.
  const startLayerState = resume?.layerState ?? withBackend(be, () => initialState(layer));
  const bad =
    checkInputs(data, opts) ??
    checkFits(model, start, startLayerState, data, opts.loss !== undefined) ??
    checkSchedule(opts) ??
    checkAugment(opts, train.features);
  if (bad !== undefined) return E.left(bad);
  /** Disposes the tensors of `old` trees that none of `live` holds and that are not the caller's. */
  const release = (old: readonly unknown[], live: readonly unknown[]): void => {
    const keepSet = new Set<Tensor>(live.flatMap((t) => leaves(t as Tree)));
    for (const tree of old) for (const t of leaves(tree as Tree)) if (!keepSet.has(t) && !foreign.has(t)) t.dispose();
  };
  const reduction = opts.reduction ?? 'mean';
  const lossFn: LossFn = opts.loss ?? ((logits, y) => crossEntropy(logits, y, reduction));
  const l2: L2Options = opts.l2 ?? { lambda: 0, mode: 'loss', includeBias: false };
  let infos: LeafInfo[];
  try {
    infos = leafInfos(start, rolesOf(layer, start));
  } catch (e) {
    return E.left(new TrainingError(`the parameters are not a tree of tensors: ${(e as Error).message}`));
  }
  const roles = infos.map((i) => i.role);
  const decays = opts.weightDecayApplies;
  const optimizerAt = (spec: OptimizerSpec) =>
    optimizerFromSpec(spec, gradientL2Of(l2, infos), decays === undefined ? undefined : (_path, i) => decays(infos[i]!));
  const optimizer = optimizerAt(opts.optimizer);
  const key = new Key(opts.seed).fold('shuffle');
  const dropKey = new Key(opts.seed).fold('dropout');
  const augKey = new Key(opts.seed).fold('augment');
  const aug = opts.augment;
  /** A training batch, augmented with the draws of (epoch, batch) where asked. */
  const batchOf = (idx: ArrayLike<number>, epoch: number, b: number): Tensor => {
    const x = train.gather(idx, be);
    if (aug === undefined || ((aug.crop ?? 0) === 0 && aug.flip !== true)) return x;
    const image = aug.image ?? [3, 32, 32];
    const out = augmentRows(x.toTypedArray(), image, aug.crop ?? 0, drawAugmentations(augKey.fold(`${epoch}-${b}`), idx.length, aug));
    return internal.adopt(out, x.shape, x.backend);
  };
  let state: FitState<P, S> = resume ?? {
    epoch: 0,
    params: start,
    optState: optimizer.init(start),
    layerState: startLayerState,
    history: [],
    best: undefined,
    stoppedAt: undefined,
  };
  /** What must stay alive besides a step's result: the epoch's starting state (an interrupted run returns it) and the best weights. */
  const held = (): unknown[] => [state.params, state.optState, state.layerState, ...(state.best ? [state.best.params, state.best.layerState] : [])];
  const emit = opts.onEvent ?? (() => {});
  const batchesPerEpoch = Math.ceil(train.n / opts.batchSize);
  /** The optimizer of a step: without a schedule the one built above, so runs without one are unchanged. */
  const schedule = opts.schedule;
  const optimizerOf = (step: number) =>
    schedule === undefined
      ? optimizer
      : optimizerAt({ ...opts.optimizer, lr: learningRate(schedule, opts.optimizer.lr, step, { stepsPerEpoch: batchesPerEpoch, epochs: opts.epochs }) });
  let stepPath: StepPath =
    opts.jit === false
      ? { path: 'eager', reason: 'jit: false' }
      : opts.loss !== undefined
        ? { path: 'eager', reason: 'a custom loss takes host labels, which a program would freeze' }
        : { path: 'jit', reason: 'forward and backward traced once per batch size, then replayed' };
  emit({ type: 'start', epochs: opts.epochs, batchesPerEpoch, startEpoch: state.epoch + 1, step: stepPath });

  /** One step's loss (the data term from the logits, plus L2) and its gradient, with the logits and the layers' next state. */
  const gradStep = (params: P, layerState: S, x: Tensor, k: Key, dataLoss: (logits: Tensor) => Tensor) =>
    valueAndGradWithAux((p: P) => {
      const out = forwardOf(layer, p, x, { train: true, key: k, state: layerState });
      const loss = dataLoss(out.y);
      const penalty = l2Penalty(p, l2, roles);
      return [penalty === undefined ? loss : add(loss, penalty), [out.y, out.state]] as const;
    })(params);
  const eagerStep = (params: P, layerState: S, x: Tensor, y: Uint8Array, k: Key) => gradStep(params, layerState, x, k, (logits) => lossFn(logits, y));
  // The jitted step: the labels enter as one-hot targets (a tensor argument: the built-in loss gives the same bits from either).
  // The step's key is an argument too: dropout's masks are drawn from it each call, as eagerly.
  const jitted = jit((params: P, layerState: S, x: Tensor, targets: Tensor, k: Key) =>
    gradStep(params, layerState, x, k, (logits) => softmaxCrossEntropy(logits, targets, { reduction })),
  );
  const paramDType = leaves(start as Tree)[0]?.dtype ?? 'float32';
  const step = (params: P, layerState: S, x: Tensor, y: Uint8Array, k: Key) => {
    if (stepPath.path === 'jit') {
      try {
        // Its own tidy: a trace that fails frees what it made before the eager step runs (no doubled peak).
        return tidy(() => jitted(params, layerState, x, oneHot(y, train.classes, paramDType, be), k));
      } catch (e) {
        if (jitted.traces > 1 || jitted.cached > 0) throw e; // a program ran before: this is not a tracing problem
        stepPath = { path: 'eager', reason: `tracing the step failed (${(e as Error).message.split('\n')[0]})` };
        emit({ type: 'stepPath', step: stepPath });
      }
    }
    return eagerStep(params, layerState, x, y, k);
  };

  // The programs hold constants (kept tensors): free them when training ends, however it ends.
  try {
    let interrupted = false;
    while (state.stoppedAt === undefined && state.epoch < opts.epochs) {
      const epoch = state.epoch + 1;
      const t0 = performance.now();
      const order = batchIndices(train.n, opts.batchSize, opts.shuffle ? key.fold(`epoch-${epoch}`) : undefined);
      let params = state.params,
        optState = state.optState,
        layerState = state.layerState,
        lossSum = 0,
        correct = 0,
        seen = 0;
      for (let b = 0; b < order.length; b++) {
        if (opts.signal?.aborted) {
          interrupted = true;
          break;
        }
        const idx = order[b]!;
        const y = gatherLabels(train.y, idx);
        // One step; everything it makes but the new parameters and states is freed at its end.
        const r = tidy(() => {
          const {
            value,
            grads,
            aux: [logits, nextLayerState],
          } = step(params, layerState, batchOf(idx, epoch, b), y, dropKey.fold(`${epoch}-${b}`));
          const { loss, correct } = readStep(value, logits as Tensor, y);
          if (!Number.isFinite(loss)) return { loss, next: undefined, layerState: undefined, correct: 0 };
          const g = opts.clipNorm === undefined ? grads : clipByGlobalNorm(grads, opts.clipNorm).grads;
          const next = optimizerOf((epoch - 1) * batchesPerEpoch + b).step(optState, params, g);
          return { loss, next, layerState: nextLayerState as S, correct };
        });
        if (r.next === undefined) {
          return E.left(
            new TrainingError(
              `the training loss became ${r.loss} at epoch ${epoch}, batch ${b + 1} of ${order.length}: ` +
                `the weights diverged. Lower the learning rate (now ${opts.optimizer.lr}) or the momentum, or check the inputs for NaN`,
            ),
          );
        }
        release([params, optState, layerState], [r.next.params, r.next.state, r.layerState, ...held()]);
        params = r.next.params;
        optState = r.next.state;
        layerState = r.layerState!;
        const loss = r.loss;
        const bs = idx.length;
        lossSum += reduction === 'mean' ? loss * bs : loss;
        correct += r.correct;
        seen += bs;
        emit({ type: 'batch', epoch, batch: b + 1, batches: order.length, loss: lossSum / seen, accuracy: correct / seen });
        yield;
      }
      if (interrupted) {
        // The state stays at the last finished epoch: the unfinished epoch's parameters go.
        release([params, optState, layerState], held());
        break;
      }
      const v = evaluate(layer, params, val, { batchSize: opts.evalBatchSize ?? 1000, layerState, ...(opts.loss ? { loss: opts.loss } : {}) });
      const record: EpochRecord = {
        epoch,
        trainLoss: lossSum / seen,
        trainAccuracy: correct / seen,
        valLoss: v.loss,
        valAccuracy: v.accuracy,
        seconds: (performance.now() - t0) / 1000,
      };
      const improved = state.best === undefined || v.loss < state.best.valLoss;
      const history = [...state.history, record];
      const stop =
        opts.earlyStopping !== undefined &&
        shouldStop(
          history.map((h) => h.valLoss),
          opts.earlyStopping,
        );
      const previous = held();
      state = {
        epoch,
        params,
        optState,
        layerState,
        history,
        best: improved ? { epoch, valLoss: v.loss, params, layerState } : state.best,
        stoppedAt: stop ? epoch : undefined,
      };
      release(previous, held());
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
  } finally {
    jitted.clear();
  }
}
