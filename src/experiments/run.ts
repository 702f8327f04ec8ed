/**
 * One experiment run: data, model, training, evaluation, and everything written
 * to a new run folder. A finished run is never overwritten; after every epoch the
 * history and a checkpoint are written atomically, so an interrupted run keeps
 * its finished epochs and `resume` continues it to the same result.
 */
import * as E from 'fp-ts/lib/Either.js';
import * as t from 'io-ts';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { backendSelection, Key, reclaimTensorMemory, setBackend } from '../core/index.js';
import { ensureCifar100, loadCifar100, type CifarData } from '../data/index.js';
import {
  buildModel, decodeTreeLike, encodeTree, evaluate, fitAsync, initialState, mlp, optimizerFromSpec, saveModel, writeFileAtomic,
  type EpochRecord, type FitEvent, type FitState, type Model,
} from '../nn/index.js';
import type { Tree } from '../autodiff/index.js';
import { decodeConfig, type ResolvedConfig } from './config.js';
import { curvesSpec, render } from './plots.js';

export interface RunResult {
  readonly dir: string;
  readonly config: ResolvedConfig;
  readonly history: readonly EpochRecord[];
  readonly bestEpoch: number;
  /** Epoch at which early stopping triggered (the report's "early stop epoch" is the best epoch then). */
  readonly stoppedAt: number | undefined;
  readonly returnedEpoch: number;
  /** Validation accuracy of the returned weights. */
  readonly valAccuracy: number;
  readonly testAccuracy: number;
  readonly testLoss: number;
  readonly interrupted: boolean;
  readonly backend: string;
  readonly seconds: number;
}

export interface RunOptions {
  /** --data DIR (else CIFAR100_DIR, else ./data, downloading there if empty). */
  readonly dataDir?: string;
  /** Folder for this run (must not hold a finished run). Default: runs/<name>-<time>. */
  readonly outDir?: string;
  /** Parent folder for default run folders (default `runs`). */
  readonly runsDir?: string;
  readonly signal?: AbortSignal;
  readonly onEvent?: (e: FitEvent) => void;
  /** Reuse already loaded data (sweeps share it across runs). */
  readonly dataCache?: Map<string, CifarData>;
  /** Writes plots (default true). */
  readonly plots?: boolean;
  /** A backend chosen on the command line, over the config's (used on resume). */
  readonly backend?: string;
}

const CHECKPOINT_FORMAT = 'tapegrad.checkpoint';

const EpochRecordC = t.type({ epoch: t.number, trainLoss: t.number, trainAccuracy: t.number, valLoss: t.number, valAccuracy: t.number, seconds: t.number });
const EncodedC = t.array(t.type({ path: t.string, shape: t.array(t.number), data: t.string }));
const CheckpointC = t.intersection([t.type({
  format: t.literal(CHECKPOINT_FORMAT),
  version: t.literal(1),
  epoch: t.number,
  history: t.array(EpochRecordC),
  best: t.union([t.null, t.type({ epoch: t.number, valLoss: t.number, params: EncodedC })]),
  stoppedAt: t.union([t.null, t.number]),
  params: EncodedC,
  optState: EncodedC,
}), t.partial({
  /** The model's architecture (checked on resume); absent in older checkpoints. */
  architecture: t.unknown,
  /** The layers' state (running statistics); absent for stateless models. */
  layerState: EncodedC,
  bestLayerState: EncodedC,
})]);

const stamp = (): string => new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);

/** A folder name that does not exist yet. */
const freshDir = (parent: string, name: string): string => {
  const base = join(parent, `${name}-${stamp()}`);
  let dir = base;
  for (let i = 2; existsSync(dir); i++) dir = `${base}-${i}`;
  return dir;
};

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyModel = Model<any, any>;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyState = FitState<any, any>;

/**
 * The config's model: its `layers` spec when it has one (the last layer gives
 * the class scores), else the MLP of `hidden` widths.
 */
export const modelFor = (c: ResolvedConfig, classes: number): E.Either<Error, AnyModel> =>
  c.model.layers !== undefined
    ? buildModel({ kind: 'sequential', input: [...(c.model.input ?? [3072])], layers: [...c.model.layers] })
    : E.right(mlp([3072, ...c.model.hidden, classes], { activation: c.model.activation, init: c.model.init }));

const dataKey = (c: ResolvedConfig) => JSON.stringify({ ...c.data, seed: c.seed });

const loadData = async (c: ResolvedConfig, opts: RunOptions): Promise<E.Either<Error, CifarData>> => {
  const key = dataKey(c);
  const cached = opts.dataCache?.get(key);
  if (cached !== undefined) return E.right(cached);
  if (opts.dataCache !== undefined && opts.dataCache.size > 0) {
    // Another data set: let it go, and its memory come back, before this one is built.
    opts.dataCache.clear();
    await reclaimTensorMemory();
  }
  const dir = await ensureCifar100(opts.dataDir);
  if (E.isLeft(dir)) return dir;
  const data = loadCifar100({ dir: dir.right, seed: c.seed, ...c.data });
  if (E.isRight(data)) opts.dataCache?.set(key, data.right);
  return data;
};

const historyCsv = (h: readonly EpochRecord[]): string =>
  ['epoch,train_loss,train_accuracy,val_loss,val_accuracy,seconds', ...h.map((r) => [r.epoch, r.trainLoss, r.trainAccuracy, r.valLoss, r.valAccuracy, r.seconds.toFixed(3)].join(','))].join('\n') + '\n';

const saveCheckpoint = (dir: string, s: AnyState, model: AnyModel): void =>
  writeFileAtomic(join(dir, 'checkpoint.json'), JSON.stringify({
    format: CHECKPOINT_FORMAT, version: 1, epoch: s.epoch, history: s.history, architecture: model.spec ?? null,
    best: s.best === undefined ? null : { epoch: s.best.epoch, valLoss: s.best.valLoss, params: encodeTree(s.best.params) },
    stoppedAt: s.stoppedAt ?? null, params: encodeTree(s.params), optState: encodeTree(s.optState),
    ...(encodeTree(s.layerState).length > 0
      ? { layerState: encodeTree(s.layerState), ...(s.best !== undefined ? { bestLayerState: encodeTree(s.best.layerState) } : {}) }
      : {}),
  }));

const loadCheckpoint = (dir: string, model: AnyModel, c: ResolvedConfig): E.Either<Error, AnyState> => {
  const file = join(dir, 'checkpoint.json');
  if (!existsSync(file)) return E.left(new Error(`${dir}: no checkpoint.json, so nothing to resume (the run stopped before its first epoch finished: start it again)`));
  let json: unknown;
  try { json = JSON.parse(readFileSync(file, 'utf8')); } catch (e) { return E.left(new Error(`${file}: unreadable (${(e as Error).message})`)); }
  const d = CheckpointC.decode(json);
  if (E.isLeft(d)) return E.left(new Error(`${file}: not a tapegrad checkpoint`));
  const ck = d.right;
  if (ck.architecture !== undefined && ck.architecture !== null && JSON.stringify(ck.architecture) !== JSON.stringify(model.spec)) {
    return E.left(new Error(`${file}: the checkpoint was written by another architecture than ${dir}/config.json describes; start the run again`));
  }
  const like = model.layer.init(new Key(0));
  const optLike = optimizerFromSpec(c.training.optimizer).init(like);
  const params = decodeTreeLike(file, like, ck.params);
  const opt = decodeTreeLike(file, optLike as Tree, ck.optState);
  const stateLike = initialState(model.layer);
  const layerState = ck.layerState === undefined ? E.right(stateLike) : decodeTreeLike(file, stateLike, ck.layerState);
  const bestLayerState = ck.bestLayerState === undefined ? layerState : decodeTreeLike(file, stateLike, ck.bestLayerState);
  if (E.isLeft(layerState)) return layerState;
  if (E.isLeft(bestLayerState)) return bestLayerState;
  const best = ck.best === null ? E.right(undefined)
    : E.map((p: unknown) => ({ epoch: ck.best!.epoch, valLoss: ck.best!.valLoss, params: p, layerState: bestLayerState.right }))(decodeTreeLike(file, like, ck.best.params));
  if (E.isLeft(params)) return params;
  if (E.isLeft(opt)) return opt;
  if (E.isLeft(best)) return best;
  return E.right({
    epoch: ck.epoch, params: params.right, optState: opt.right, layerState: layerState.right, history: ck.history, best: best.right,
    stoppedAt: ck.stoppedAt ?? undefined,
  } as AnyState);
};

/** Writes accuracy and loss curves (SVG and PNG) of a history into `dir`. */
export const writeCurves = async (dir: string, label: string, history: readonly EpochRecord[], prefix = ''): Promise<void> => {
  for (const metric of ['accuracy', 'loss'] as const) {
    const title = `${label}: training and validation ${metric}`;
    const { svg, png } = await render(curvesSpec([{ label, history }], metric, title));
    writeFileAtomic(join(dir, `${prefix}${metric}.svg`), svg);
    writeFileAtomic(join(dir, `${prefix}${metric}.png`), png);
  }
};

/** Runs (or, with `resumeDir`, continues) one experiment. */
export const runExperiment = async (config: ResolvedConfig | undefined, opts: RunOptions = {}, resumeDir?: string): Promise<E.Either<Error, RunResult>> => {
  const t0 = performance.now();
  if (config === undefined && resumeDir === undefined) return E.left(new Error('runExperiment: give a config, or a run folder to resume'));
  let c = config!;
  let dir: string;
  let resume: AnyState | undefined;
  if (resumeDir !== undefined) {
    dir = resumeDir;
    if (existsSync(join(dir, 'result.json'))) return E.left(new Error(`${dir}: this run already finished; nothing to resume`));
    const cfgFile = join(dir, 'config.json');
    if (!existsSync(cfgFile)) return E.left(new Error(`${dir}: no config.json: not a tapegrad run folder`));
    const dc = decodeConfig(JSON.parse(readFileSync(cfgFile, 'utf8')), cfgFile);
    if (E.isLeft(dc)) return dc;
    c = dc.right;
  } else if (opts.outDir !== undefined) {
    dir = opts.outDir;
    if (existsSync(join(dir, 'result.json'))) return E.left(new Error(`${dir} holds a finished run, which is never overwritten: choose another --out`));
    if (existsSync(join(dir, 'checkpoint.json'))) return E.left(new Error(`${dir} holds an unfinished run: continue it with --resume ${dir}, or choose another --out`));
  } else {
    dir = freshDir(opts.runsDir ?? 'runs', c.name);
  }
  mkdirSync(dir, { recursive: true });

  const backendName = opts.backend ?? c.backend;
  setBackend(backendName, backendName === 'auto' ? undefined : `chosen in the config or with --backend ('${backendName}')`);
  const data = await loadData(c, opts);
  if (E.isLeft(data)) return data;
  const built = modelFor(c, data.right.train.classes);
  if (E.isLeft(built)) return built;
  const model = built.right;
  if (resumeDir !== undefined) {
    const st = loadCheckpoint(dir, model, c);
    if (E.isLeft(st)) return st;
    resume = st.right;
  } else {
    // The resolved config is what ran: saved in full, as YAML for people and JSON for resume.
    writeFileAtomic(join(dir, 'config.yaml'), toYaml(c));
    writeFileAtomic(join(dir, 'config.json'), JSON.stringify(c, null, 2));
  }
  const sel = backendSelection();
  const info = {
    seed: c.seed, backend: sel.backend.description, backendReason: sel.reason,
    node: process.version, started: new Date().toISOString(), resumedFromEpoch: resume?.epoch ?? null,
  };
  const status = (s: Record<string, unknown>) => writeFileAtomic(join(dir, 'run.json'), JSON.stringify({ ...info, ...s }, null, 2));
  status({ status: 'running' });

  const es = c.training.earlyStopping;
  const result = await fitAsync(model, model.layer.init(new Key(c.seed).fold('init')), { train: data.right.train, val: data.right.val }, {
    epochs: c.training.epochs, batchSize: c.training.batchSize, optimizer: c.training.optimizer, shuffle: c.training.shuffle,
    seed: c.seed, reduction: 'mean', l2: c.training.l2, ...(es === false ? {} : { earlyStopping: es }),
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(resume ? { resume } : {}),
    onEvent: (e) => {
      if (e.type === 'epoch') {
        saveCheckpoint(dir, e.state, model);
        writeFileAtomic(join(dir, 'history.json'), JSON.stringify(e.state.history, null, 2));
        writeFileAtomic(join(dir, 'history.csv'), historyCsv(e.state.history));
      }
      opts.onEvent?.(e);
    },
  });
  if (E.isLeft(result)) {
    status({ status: 'failed', error: result.left.message });
    return result;
  }
  const r = result.right;
  const returned = r.history[r.returnedEpoch - 1];
  const base = {
    dir, config: c, history: r.history, bestEpoch: r.bestEpoch, stoppedAt: r.stoppedAt, returnedEpoch: r.returnedEpoch,
    valAccuracy: returned?.valAccuracy ?? NaN, interrupted: r.interrupted, backend: sel.backend.name,
  };
  if (r.interrupted) {
    status({ status: 'interrupted', epochsFinished: r.state.epoch, resume: `tapegrad train --resume ${dir}` });
    return E.right({ ...base, testAccuracy: NaN, testLoss: NaN, seconds: (performance.now() - t0) / 1000 });
  }
  const test = evaluate(model, r.params, data.right.test, { layerState: r.layerState });
  saveModel(join(dir, 'model.json'), model, r.params, { config: c, epoch: r.returnedEpoch }, r.layerState);
  if (opts.plots ?? true) await writeCurves(dir, c.name, r.history);
  const seconds = (performance.now() - t0) / 1000;
  const summary = {
    name: c.name, valAccuracy: base.valAccuracy, testAccuracy: test.accuracy, testLoss: test.loss,
    bestEpoch: r.bestEpoch, stoppedAt: r.stoppedAt ?? null, returnedEpoch: r.returnedEpoch, epochsRun: r.history.length,
    backend: sel.backend.description, seed: c.seed, seconds,
  };
  writeFileAtomic(join(dir, 'result.json'), JSON.stringify(summary, null, 2));
  status({ status: 'finished', finished: new Date().toISOString() });
  return E.right({ ...base, testAccuracy: test.accuracy, testLoss: test.loss, seconds });
};

/**
 * What a finished run folder recorded, as a RunResult (sweeps skip finished
 * runs when they are continued). Undefined when the folder holds no finished run.
 */
export const readFinishedRun = (dir: string): RunResult | undefined => {
  const file = join(dir, 'result.json');
  if (!existsSync(file)) return undefined;
  const r = JSON.parse(readFileSync(file, 'utf8')) as {
    valAccuracy: number; testAccuracy: number; testLoss: number; bestEpoch: number; stoppedAt: number | null;
    returnedEpoch: number; backend: string; seconds: number;
  };
  const config = decodeConfig(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')), join(dir, 'config.json'));
  if (E.isLeft(config)) throw config.left;
  return {
    dir, config: config.right, history: JSON.parse(readFileSync(join(dir, 'history.json'), 'utf8')) as EpochRecord[],
    bestEpoch: r.bestEpoch, stoppedAt: r.stoppedAt ?? undefined, returnedEpoch: r.returnedEpoch, valAccuracy: r.valAccuracy,
    testAccuracy: r.testAccuracy, testLoss: r.testLoss, interrupted: false, backend: r.backend, seconds: r.seconds,
  };
};
