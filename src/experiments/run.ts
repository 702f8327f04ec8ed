/**
 * One experiment run: data, model, training, evaluation, and everything written
 * to a new run folder. After every epoch the history and a sealed checkpoint are
 * written atomically, so an interrupted run keeps its finished epochs and
 * `resume` continues it to the same result.
 *
 * Order matters for what a failure leaves behind: the config and the model's
 * memory are checked first, then the data is loaded and its split sizes checked,
 * and only then is the folder claimed (runfolder.ts: atomic, locked for the
 * run's life). A run that cannot start leaves no folder; one that fails later
 * leaves run.json saying how. Every failure is a `Left`; nothing here throws.
 */
import * as E from 'fp-ts/lib/Either.js';
import * as t from 'io-ts';
import { randomUUID } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { backend as backendNamed, chooseBackend, createCpuBackend, Key, UnknownBackendError, withBackend, type Backend } from '../core/index.js';
import { ensureCifar100, loadCifar100, type CifarData } from '../data/index.js';
import {
  buildModel,
  evaluate,
  fitAsync,
  jsonChecksum,
  mlp,
  readText,
  saveModel,
  sealJson,
  unsealJson,
  writeFileAtomic,
  type EpochRecord,
  type FitEvent,
  type FitState,
  type Model,
} from '../nn/index.js';
import { describeErrors, Finite } from '../nn/codecs.js';
import { decodeConfig, type ResolvedConfig } from './config.js';
import { checkRunFits } from './budget.js';
import { EpochRecordC, historyProblem, loadCheckpoint, saveCheckpoint, type RunIdentity } from './checkpoint.js';
import { curvesSpec, render } from './plots.js';
import { checkNewFolder, claimFreshFolder, claimNewFolder, fsMessage, liveHolder, lockFolder, whileOpen, type RunLock } from './runfolder.js';

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
  /** Folder for this run: absent or empty (see runfolder.ts). Default: a new runs/<name>-<time>. */
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
  /**
   * With a run to resume: train it to this many epochs instead of its own, in a
   * new folder (`outDir`, else a fresh one), leaving the original as it is.
   */
  readonly extendTo?: number;
  /** A line worth telling the user (a killed run detected, a flag's effect). */
  readonly onNote?: (line: string) => void;
  /** Told which backend the run uses and why, once chosen (for a start-up line). */
  readonly onBackend?: (backend: Backend, reason: string) => void;
}

/** A run whose loss or weights became non-finite: a result (a sweep's row), not a crash. */
export class DivergedError extends Error {
  override readonly name = 'DivergedError';
  constructor(
    readonly dir: string,
    readonly epoch: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The smallest validation and test sets a run accepts: below this, each image
 * moves the accuracy by more than 10 points, and an empty set gives NaN.
 */
export const MIN_EVAL_IMAGES = 10;

const RESULT_FORMAT = 'tapegrad.result';
const ResultC = t.exact(
  t.type({
    format: t.literal(RESULT_FORMAT),
    outcome: t.keyof({ finished: null, diverged: null }),
    name: t.string,
    valAccuracy: t.union([t.null, Finite]),
    testAccuracy: t.union([t.null, Finite]),
    testLoss: t.union([t.null, Finite]),
    bestEpoch: t.number,
    stoppedAt: t.union([t.null, t.number]),
    returnedEpoch: t.number,
    epochsRun: t.number,
    divergedAtEpoch: t.union([t.null, t.number]),
    error: t.union([t.null, t.string]),
    backend: t.string,
    seed: t.number,
    seconds: t.number,
    historySha256: t.string,
  }),
);

// biome-ignore lint/suspicious/noExplicitAny: models built from configs have tree types known only at run time (see AnyLayer)
type AnyModel = Model<any, any>;

/**
 * The config's model: its `layers` spec when it has one (the last layer gives
 * the class scores), else the MLP of `hidden` widths.
 */
export const modelFor = (c: ResolvedConfig, classes: number): E.Either<Error, AnyModel> =>
  c.model.layers !== undefined
    ? buildModel({ kind: 'sequential', input: [...(c.model.input ?? [3072])], layers: [...c.model.layers] })
    : E.right(mlp([3072, ...c.model.hidden, classes], { activation: c.model.activation, init: c.model.init }));

const classesOf = (c: ResolvedConfig): number => (c.data.labels === 'fine' ? 100 : 20);

const dataKey = (c: ResolvedConfig, be: Backend) => JSON.stringify({ ...c.data, seed: c.seed, backend: be.description });

let paperCpu: Backend | undefined;
/**
 * The backend a run uses. The report's runs (the `paper` preset: `npm start`, `tapegrad reproduce`) were
 * recorded on the cpu backend's WebAssembly GEMM, and a native BLAS sums in another order: unless the user
 * chose a BLAS (TAPEGRAD_BLAS), they run on a cpu backend without one, so the report's numbers stay the same
 * to the bit on every machine. Every other run gets the cpu backend as `auto` made it (native where a
 * library loads).
 */
const backendFor = (name: string, c: ResolvedConfig): Backend => {
  if (name !== 'cpu' || c.preset !== 'paper' || process.env.TAPEGRAD_BLAS !== undefined) return backendNamed(name);
  paperCpu ??= createCpuBackend({ blas: 'none' });
  return paperCpu;
};

/** Releases a data set's matrices (its batches already handed out stay valid). */
export const disposeData = (d: CifarData): void => {
  d.train.dispose();
  d.val.dispose();
  d.test.dispose();
};

const loadData = async (c: ResolvedConfig, opts: RunOptions, be: Backend): Promise<E.Either<Error, CifarData>> => {
  const key = dataKey(c, be);
  const cached = opts.dataCache?.get(key);
  if (cached !== undefined) return E.right(cached);
  if (opts.dataCache !== undefined && opts.dataCache.size > 0) {
    // Another data set: free the old one's memory before this one is built.
    for (const d of opts.dataCache.values()) disposeData(d);
    opts.dataCache.clear();
  }
  const dir = await ensureCifar100(opts.dataDir);
  if (E.isLeft(dir)) return dir;
  const data = loadCifar100({ dir: dir.right, seed: c.seed, ...c.data, backend: be });
  if (E.isRight(data)) opts.dataCache?.set(key, data.right);
  return data;
};

/** Refuses sets too small to measure anything (an empty validation set gives NaN%). */
const checkSizes = (d: CifarData, c: ResolvedConfig): E.Either<Error, void> => {
  const { train, val, test } = d;
  const sizes = `${train.n} training, ${val.n} validation, ${test.n} test images`;
  if (train.n < 1 || val.n < MIN_EVAL_IMAGES || test.n < MIN_EVAL_IMAGES) {
    return E.left(
      new Error(
        `the data split gives ${sizes} (limitTrain ${c.data.limitTrain ?? 'all'}, trainFraction ${c.data.trainFraction}, limitTest ${c.data.limitTest ?? 'all'}); ` +
          `validation and test need at least ${MIN_EVAL_IMAGES} images each and training at least 1: raise --limit-train / --limit-test`,
      ),
    );
  }
  return E.right(undefined);
};

const historyCsv = (h: readonly EpochRecord[]): string =>
  `${['epoch,train_loss,train_accuracy,val_loss,val_accuracy,seconds', ...h.map((r) => [r.epoch, r.trainLoss, r.trainAccuracy, r.valLoss, r.valAccuracy, r.seconds.toFixed(3)].join(','))].join('\n')}\n`;

/** Writes accuracy and loss curves (SVG and PNG) of a history into `dir`. */
export const writeCurves = async (dir: string, label: string, history: readonly EpochRecord[], prefix = ''): Promise<void> => {
  for (const metric of ['accuracy', 'loss'] as const) {
    const title = `${label}: training and validation ${metric}`;
    const { svg, png } = await render(curvesSpec([{ label, history }], metric, title));
    writeFileAtomic(join(dir, `${prefix}${metric}.svg`), svg);
    writeFileAtomic(join(dir, `${prefix}${metric}.png`), png);
  }
};

/**
 * A run folder's config.json and its run id (absent in folders written before
 * runs had one): sealed, so a corrupted or edited one is refused rather than
 * trained with.
 */
const readRunFolderConfig = (dir: string): E.Either<Error, { config: ResolvedConfig; run?: RunIdentity }> => {
  const file = join(dir, 'config.json');
  if (!existsSync(file)) return E.left(new Error(`${dir}: no config.json: not a tapegrad run folder`));
  const text = readText(file);
  if (E.isLeft(text)) return text;
  const v = unsealJson(file, text.right, false);
  if (E.isLeft(v)) return E.left(new Error(`${v.left.message}: this run folder cannot be continued; start the run again`));
  const { runId, ...stored } = v.right;
  if (runId !== undefined && typeof runId !== 'string')
    return E.left(new Error(`${file}: runId ${JSON.stringify(runId)} is not a run id: the file is corrupt`));
  return E.map((config: ResolvedConfig) => ({ config, ...(runId !== undefined ? { run: { id: runId, configSha256: jsonChecksum(stored) } } : {}) }))(
    decodeConfig(stored, file),
  );
};

/** A run folder's config.json: sealed, so a corrupted or edited one is refused rather than trained with. */
export const readRunConfig = (dir: string): E.Either<Error, ResolvedConfig> => E.map((r: { config: ResolvedConfig }) => r.config)(readRunFolderConfig(dir));

/** Writes a new run folder's config with a fresh run id; returns the run's identity (which its checkpoints carry). */
const writeRunConfig = (dir: string, c: ResolvedConfig): RunIdentity => {
  // The resolved config is what ran: saved in full, as YAML for people and sealed JSON (with the run's id) for resume.
  const id = randomUUID();
  writeFileAtomic(join(dir, 'config.yaml'), toYaml(c));
  writeFileAtomic(join(dir, 'config.json'), sealJson({ ...(c as unknown as Record<string, unknown>), runId: id }, 2));
  return { id, configSha256: jsonChecksum(c) };
};

/** A run folder's result outcome ('finished', 'diverged', or 'unreadable'), or undefined without a result. */
const resultOutcome = (dir: string): string | undefined => {
  const file = join(dir, 'result.json');
  if (!existsSync(file)) return undefined;
  try {
    const o = (JSON.parse(readFileSync(file, 'utf8')) as { outcome?: unknown }).outcome;
    return typeof o === 'string' ? o : 'finished';
  } catch {
    return 'unreadable';
  }
};

/** Where a resume can begin: a run folder's stored config, and whether it holds a result. */
const resumeTarget = (dir: string, extendTo: number | undefined): E.Either<Error, { config: ResolvedConfig; run?: RunIdentity }> => {
  if (!existsSync(dir)) return E.left(new Error(`${dir}: no such run folder`));
  const c = readRunFolderConfig(dir);
  if (E.isLeft(c)) return c;
  const outcome = resultOutcome(dir);
  if (outcome === 'diverged') {
    return E.left(new Error(`${dir}: this run diverged (see its run.json); continuing it would diverge again: start a new run with a lower learning rate`));
  }
  if (extendTo === undefined && outcome !== undefined) {
    return E.left(
      new Error(`${dir}: this run already finished; nothing to resume (to train it further, add --epochs N: a new folder continues it from its last epoch)`),
    );
  }
  return c;
};

/**
 * Writes a failed run's run.json even on a full disk: atomically when it can;
 * else (ENOSPC: the temporary file gets no block) over the old file in place,
 * compact, in the blocks it already has, so run.json does not stay `running`.
 */
const writeStatusLastResort = (file: string, value: Record<string, unknown>): void => {
  try {
    writeFileAtomic(file, JSON.stringify(value, null, 2));
  } catch (e) {
    const fd = openSync(file, 'r+');
    try {
      const buf = Buffer.from(JSON.stringify(value));
      writeSync(fd, buf, 0, buf.length, 0);
      ftruncateSync(fd, buf.length);
      fsyncSync(fd);
    } catch {
      throw e;
    } finally {
      closeSync(fd);
    }
  }
};

/** Runs (or, with `resumeDir`, continues) one experiment. Never throws: every failure is a `Left`. */
export const runExperiment = async (config: ResolvedConfig | undefined, opts: RunOptions = {}, resumeDir?: string): Promise<E.Either<Error, RunResult>> => {
  let lock: RunLock | undefined;
  let onExit: (() => void) | undefined;
  try {
    return await runUnguarded(config, opts, resumeDir, (l, hook) => {
      lock = l;
      onExit = hook;
    });
  } catch (e) {
    let msg = (e as NodeJS.ErrnoException).code !== undefined ? fsMessage(e, lock?.dir ?? resumeDir ?? opts.outDir ?? 'run folder') : (e as Error).message;
    // The memory check (budget.ts) estimates; should a run still outgrow the backend, say what helps a single run.
    if (e instanceof RangeError)
      msg = `${msg.replace(/:? ?run fewer models[\s\S]*$/, '')}: the run needs more memory than it has; make the model smaller or use fewer images (--limit-train)`;
    if (lock !== undefined) {
      try {
        writeStatusLastResort(join(lock.dir, 'run.json'), { ...readRunJson(lock.dir), status: 'failed', error: msg, failed: new Date().toISOString() });
      } catch {
        /* the error below says it */
      }
    }
    return E.left(new Error(msg.split('\n')[0]!));
  } finally {
    onExit?.();
    lock?.release();
  }
};

const runUnguarded = async (
  config: ResolvedConfig | undefined,
  opts: RunOptions,
  resumeDir: string | undefined,
  hold: (l: RunLock, unhook: () => void) => void,
): Promise<E.Either<Error, RunResult>> => {
  const t0 = performance.now();
  if (config === undefined && resumeDir === undefined) return E.left(new Error('runExperiment: give a config, or a run folder to resume'));
  let c: ResolvedConfig;
  let sourceLock: RunLock | undefined;
  let sourceRun: RunIdentity | undefined;
  const extending = resumeDir !== undefined && opts.extendTo !== undefined;
  if (resumeDir !== undefined) {
    const stored = resumeTarget(resumeDir, opts.extendTo);
    if (E.isLeft(stored)) return stored;
    c = stored.right.config;
    sourceRun = stored.right.run;
    if (extending) {
      if (opts.extendTo! <= c.training.epochs && existsSync(join(resumeDir, 'result.json'))) {
        return E.left(new Error(`${resumeDir} already trained ${c.training.epochs} epochs: --epochs ${opts.extendTo} must be more than that to extend it`));
      }
      c = { ...c, training: { ...c.training, epochs: opts.extendTo! } };
    }
  } else {
    c = config!;
  }
  const fits = checkRunFits(c, classesOf(c), opts.backend ?? c.backend);
  if (E.isLeft(fits)) return fits;
  // Fail on a bad --out now, before minutes of loading data (it is claimed, atomically, later).
  const target = extending || resumeDir === undefined ? opts.outDir : undefined;
  if (target !== undefined) {
    const ok = checkNewFolder(target);
    if (E.isLeft(ok)) return ok;
  }
  if (resumeDir !== undefined) {
    // Held while the run's checkpoint is read (and, when continuing in place, for the whole run).
    const l = lockFolder(resumeDir);
    if (E.isLeft(l)) return l;
    sourceLock = l.right;
    if (l.right.stale !== undefined) {
      const s = l.right.stale;
      writeFileAtomic(
        join(resumeDir, 'run.json'),
        JSON.stringify({ ...readRunJson(resumeDir), status: 'killed', killedProcess: s.pid, detected: new Date().toISOString() }, null, 2),
      );
      opts.onNote?.(`${resumeDir}: its process ${s.pid} ended without finishing (killed); run.json now says so. Continuing from its checkpoint`);
    }
  }
  let ownedData: CifarData | undefined;
  try {
    // --backend on resume, else the config's (the flag on a new run), else TAPEGRAD_BACKEND, else auto-detection.
    let be: Backend, reason: string;
    try {
      const choice = chooseBackend(opts.backend ?? c.backend, opts.backend !== undefined ? '--backend' : 'the config or --backend');
      reason = choice.reason;
      try {
        be = backendFor(choice.name, c);
        if (be === paperCpu) reason += "; without a native BLAS: the report's runs were recorded on the WebAssembly GEMM (TAPEGRAD_BLAS chooses one)";
      } catch (e) {
        return E.left(new Error(`backend '${choice.name}' cannot be used here: ${(e as Error).message.split('\n')[0]} (try --backend cpu)`));
      }
    } catch (e) {
      if (e instanceof UnknownBackendError) return E.left(e);
      throw e;
    }
    opts.onBackend?.(be, reason);
    const data = await loadData(c, opts, be);
    if (E.isLeft(data)) return data;
    // A data set this run loaded for itself goes with it; a shared cache keeps its own.
    if (opts.dataCache === undefined) ownedData = data.right;
    const sized = checkSizes(data.right, c);
    if (E.isLeft(sized)) return sized;
    const built = modelFor(c, data.right.train.classes);
    if (E.isLeft(built)) return built;
    const model = built.right;
    let resume: FitState | undefined;
    if (resumeDir !== undefined && existsSync(join(resumeDir, 'checkpoint.json'))) {
      const st = loadCheckpoint(
        resumeDir,
        model,
        extending ? { ...c, training: { ...c.training, epochs: Math.max(c.training.epochs, opts.extendTo!) } } : c,
        sourceRun,
      );
      if (E.isLeft(st)) return st;
      resume = st.right;
      if (extending && resume.stoppedAt !== undefined) {
        return E.left(
          new Error(
            `${resumeDir}: early stopping ended this run at epoch ${resume.stoppedAt}; more epochs would not train (turn early stopping off in a new run instead)`,
          ),
        );
      }
      if (extending && opts.extendTo! <= resume.epoch) {
        return E.left(new Error(`${resumeDir} has ${resume.epoch} finished epochs: --epochs ${opts.extendTo} must be more than that to extend it`));
      }
    }
    // What the folder said before this session (a resume after `interrupted` or `killed`), for run.json.
    const before = resumeDir !== undefined && !extending ? readRunJson(resumeDir)['status'] : undefined;
    let lock: RunLock;
    let fresh = false;
    if (resumeDir !== undefined && !extending) {
      lock = sourceLock!;
      sourceLock = undefined;
    } else {
      const l = opts.outDir !== undefined ? claimNewFolder(opts.outDir) : claimFreshFolder(opts.runsDir ?? 'runs', c.name);
      if (E.isLeft(l)) return l;
      lock = l.right;
      fresh = true;
    }
    sourceLock?.release();
    sourceLock = undefined;
    const dir = lock.dir;
    const sel = { backend: be, reason };
    const info = {
      seed: c.seed,
      backend: sel.backend.description,
      backendReason: sel.reason,
      node: process.version,
      pid: process.pid,
      started: new Date().toISOString(),
      resumedFromEpoch: resume?.epoch ?? null,
      ...(typeof before === 'string' ? { resumedAfter: before } : {}),
      ...(extending ? { extends: resumeDir } : {}),
    };
    const status = (s: Record<string, unknown>) => writeFileAtomic(join(dir, 'run.json'), JSON.stringify({ ...info, ...s }, null, 2));
    let epochsDone = resume?.epoch ?? 0;
    // Should the process end with this run open (a second Ctrl-C, SIGTERM's exit, an uncaught error), run.json says how.
    const unhook = whileOpen((code) => {
      status({ status: code === 130 || code === 143 ? 'interrupted' : 'failed', epochsFinished: epochsDone, exitCode: code, ended: new Date().toISOString() });
      lock.release();
    });
    // From here the lock is released (and run.json written) however this function ends.
    hold(lock, unhook);
    // A new folder gets its own run id (an extended run's checkpoint is rewritten with it); a resumed one keeps its own.
    let runId = sourceRun;
    if (fresh) {
      runId = writeRunConfig(dir, c);
      if (resume !== undefined) saveCheckpoint(dir, resume, model, runId);
    }
    status({ status: 'running' });

    // A validation loss that is no longer finite means the weights diverged during the epoch: stop, as for a non-finite training loss.
    const diverge = new AbortController();
    let divergedRecord: EpochRecord | undefined;
    const signal = opts.signal === undefined ? diverge.signal : AbortSignal.any([opts.signal, diverge.signal]);
    const es = c.training.earlyStopping;
    const initial = withBackend(be, () => model.layer.init(new Key(c.seed).fold('init')));
    const result = await fitAsync(
      model,
      initial,
      { train: data.right.train, val: data.right.val },
      {
        backend: be,
        epochs: c.training.epochs,
        batchSize: c.training.batchSize,
        optimizer: c.training.optimizer,
        shuffle: c.training.shuffle,
        seed: c.seed,
        reduction: 'mean',
        l2: c.training.l2,
        ...(es === false ? {} : { earlyStopping: es }),
        ...(c.training.schedule !== undefined ? { schedule: c.training.schedule } : {}),
        ...(c.training.clipNorm !== undefined ? { clipNorm: c.training.clipNorm } : {}),
        ...(c.training.jit !== undefined ? { jit: c.training.jit } : {}),
        ...(c.data.augment !== undefined ? { augment: c.data.augment } : {}),
        signal,
        ...(resume ? { resume } : {}),
        onEvent: (e) => {
          if (e.type === 'epoch') {
            if (!Number.isFinite(e.record.valLoss) || !Number.isFinite(e.record.trainLoss)) {
              divergedRecord = e.record;
              diverge.abort();
              return;
            }
            saveCheckpoint(dir, e.state, model, runId);
            writeFileAtomic(join(dir, 'history.json'), JSON.stringify(e.state.history, null, 2));
            writeFileAtomic(join(dir, 'history.csv'), historyCsv(e.state.history));
            epochsDone = e.state.epoch;
          }
          opts.onEvent?.(e);
        },
      },
    );
    // fit reports a non-finite training loss as "the training loss became NaN at epoch E, …".
    const lossDiverged = E.isLeft(result) ? /loss became \S+ at epoch (\d+)/.exec(result.left.message) : null;
    const divergedAt = divergedRecord !== undefined ? divergedRecord.epoch : lossDiverged !== null ? Number(lossDiverged[1]) : undefined;
    if (divergedAt !== undefined) {
      const message = E.isLeft(result)
        ? result.left.message
        : `the validation loss became ${divergedRecord!.valLoss} at epoch ${divergedAt}: the weights diverged. Lower the learning rate (now ${c.training.optimizer.lr}) or the momentum`;
      const history = E.isRight(result) ? result.right.history.filter((r) => r.epoch < divergedAt) : [];
      writeResult(dir, {
        outcome: 'diverged',
        name: c.name,
        valAccuracy: null,
        testAccuracy: null,
        testLoss: null,
        bestEpoch: 0,
        stoppedAt: null,
        returnedEpoch: 0,
        epochsRun: divergedAt - 1,
        divergedAtEpoch: divergedAt,
        error: message,
        backend: sel.backend.description,
        seed: c.seed,
        seconds: (performance.now() - t0) / 1000,
        historySha256: jsonChecksum(readHistory(dir) ?? history),
      });
      status({ status: 'diverged', epoch: divergedAt, error: message, finished: new Date().toISOString() });
      return E.left(new DivergedError(dir, divergedAt, `${message} (run folder ${dir})`));
    }
    if (E.isLeft(result)) {
      status({ status: 'failed', error: result.left.message });
      return result;
    }
    const r = result.right;
    const returned = r.history[r.returnedEpoch - 1];
    const base = {
      dir,
      config: c,
      history: r.history,
      bestEpoch: r.bestEpoch,
      stoppedAt: r.stoppedAt,
      returnedEpoch: r.returnedEpoch,
      valAccuracy: returned?.valAccuracy ?? NaN,
      interrupted: r.interrupted,
      backend: sel.backend.name,
    };
    if (r.interrupted) {
      status({
        status: 'interrupted',
        epochsFinished: r.state.epoch,
        resume: `tapegrad train --resume ${dir}${opts.dataDir !== undefined ? ` --data ${opts.dataDir}` : ''}`,
      });
      return E.right({ ...base, testAccuracy: NaN, testLoss: NaN, seconds: (performance.now() - t0) / 1000 });
    }
    const test = evaluate(model, r.params, data.right.test, { layerState: r.layerState });
    saveModel(join(dir, 'model.json'), model, r.params, { config: c, epoch: r.returnedEpoch }, r.layerState);
    if (opts.plots ?? true) await writeCurves(dir, c.name, r.history);
    const seconds = (performance.now() - t0) / 1000;
    writeResult(dir, {
      outcome: 'finished',
      name: c.name,
      valAccuracy: base.valAccuracy,
      testAccuracy: test.accuracy,
      testLoss: test.loss,
      bestEpoch: r.bestEpoch,
      stoppedAt: r.stoppedAt ?? null,
      returnedEpoch: r.returnedEpoch,
      epochsRun: r.history.length,
      divergedAtEpoch: null,
      error: null,
      backend: sel.backend.description,
      seed: c.seed,
      seconds,
      historySha256: jsonChecksum(r.history),
    });
    status({ status: 'finished', finished: new Date().toISOString() });
    return E.right({ ...base, testAccuracy: test.accuracy, testLoss: test.loss, seconds });
  } finally {
    sourceLock?.release();
    if (ownedData !== undefined) disposeData(ownedData);
  }
};

type ResultFields = Omit<t.TypeOf<typeof ResultC>, 'format'>;
const writeResult = (dir: string, r: ResultFields): void => writeFileAtomic(join(dir, 'result.json'), sealJson({ format: RESULT_FORMAT, ...r }, 2));

const readHistory = (dir: string): unknown => {
  const text = readText(join(dir, 'history.json'));
  if (E.isLeft(text)) return undefined;
  try {
    return JSON.parse(text.right) as unknown;
  } catch {
    return undefined;
  }
};

/** run.json as it stands (for adding to it), or an empty record. */
const readRunJson = (dir: string): Record<string, unknown> => {
  const text = readText(join(dir, 'run.json'));
  if (E.isLeft(text)) return {};
  try {
    const v = JSON.parse(text.right) as unknown;
    return v !== null && typeof v === 'object' ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
};

/** result.json as tapegrad wrote it before results were sealed: exactly these keys, finite numbers. */
const LegacyResultC = t.exact(
  t.type({
    name: t.string,
    valAccuracy: Finite,
    testAccuracy: Finite,
    testLoss: Finite,
    bestEpoch: t.number,
    stoppedAt: t.union([t.null, t.number]),
    returnedEpoch: t.number,
    epochsRun: t.number,
    backend: t.string,
    seed: t.number,
    seconds: t.number,
  }),
);

/**
 * A run finished by an earlier tapegrad (no checksums): read so that continuing an
 * old sweep or report does not redo it, but only when every key is one it wrote
 * (a sealed file whose checksum key was damaged has others, and is refused).
 */
const readLegacyResult = (dir: string, file: string, value: Record<string, unknown>, fix: string): E.Either<Error, RunResult> => {
  const keys = Object.keys(value);
  const want = Object.keys(LegacyResultC.type.props);
  if (keys.length !== want.length || keys.some((k) => !want.includes(k)))
    return E.left(new Error(`${file}: has no checksum (sha256) and is not a result of an earlier tapegrad either: ${fix}`));
  const d = LegacyResultC.decode(value);
  if (E.isLeft(d)) return E.left(new Error(`${file}: not a tapegrad result (${describeErrors(d.left)}): ${fix}`));
  const config = readRunConfig(dir);
  if (E.isLeft(config)) return config;
  const hfile = join(dir, 'history.json');
  const htext = readText(hfile);
  if (E.isLeft(htext)) return htext;
  let hv: unknown;
  try {
    hv = JSON.parse(htext.right);
  } catch {
    return E.left(new Error(`${hfile}: not valid JSON (truncated or corrupt): ${fix}`));
  }
  const hd = t.array(EpochRecordC).decode(hv);
  if (E.isLeft(hd)) return E.left(new Error(`${hfile}: ${describeErrors(hd.left)}: ${fix}`));
  const hp =
    historyProblem(hd.right) ?? (hd.right.length !== d.right.epochsRun ? `${hd.right.length} epochs, but result.json says ${d.right.epochsRun}` : undefined);
  if (hp !== undefined) return E.left(new Error(`${hfile}: ${hp}: ${fix}`));
  const r = d.right;
  return E.right({
    dir,
    config: config.right,
    history: hd.right,
    bestEpoch: r.bestEpoch,
    stoppedAt: r.stoppedAt ?? undefined,
    returnedEpoch: r.returnedEpoch,
    valAccuracy: r.valAccuracy,
    testAccuracy: r.testAccuracy,
    testLoss: r.testLoss,
    interrupted: false,
    backend: r.backend,
    seconds: r.seconds,
  });
};

/**
 * What a finished run folder recorded (sweeps read finished runs back when
 * they are continued): `undefined` when it holds no result yet, a `Left`
 * `DivergedError` for a run that diverged, another `Left` when its files fail
 * their checks (never a stack trace, never numbers from a corrupted file).
 */
export const readFinishedRun = (dir: string): E.Either<Error, RunResult> | undefined => {
  const file = join(dir, 'result.json');
  if (!existsSync(file)) return undefined;
  const fix = 'move the run folder away and run again to redo this run';
  const text = readText(file);
  if (E.isLeft(text)) return text;
  const sealed = unsealJson(file, text.right, false);
  if (E.isLeft(sealed)) return E.left(new Error(`${sealed.left.message}: ${fix}`));
  const legacy = !('sha256' in (JSON.parse(text.right) as object));
  if (legacy) return readLegacyResult(dir, file, sealed.right, fix);
  const d = ResultC.decode(sealed.right);
  if (E.isLeft(d)) return E.left(new Error(`${file}: not a tapegrad result (${describeErrors(d.left)}): ${fix}`));
  const r = d.right;
  const config = readRunConfig(dir);
  if (E.isLeft(config)) return config;
  const hfile = join(dir, 'history.json');
  let history: EpochRecord[] = [];
  if (r.outcome === 'finished' || existsSync(hfile)) {
    const htext = readText(hfile);
    if (E.isLeft(htext)) return htext;
    let hv: unknown;
    try {
      hv = JSON.parse(htext.right);
    } catch {
      return E.left(new Error(`${hfile}: not valid JSON (truncated or corrupt): ${fix}`));
    }
    if (jsonChecksum(hv) !== r.historySha256) return E.left(new Error(`${hfile}: does not match the checksum in result.json (changed or corrupted): ${fix}`));
    const hd = t.array(EpochRecordC).decode(hv);
    if (E.isLeft(hd)) return E.left(new Error(`${hfile}: ${describeErrors(hd.left)}: ${fix}`));
    const hp = historyProblem(hd.right);
    if (hp !== undefined) return E.left(new Error(`${hfile}: ${hp}: ${fix}`));
    history = hd.right;
  }
  if (r.outcome === 'diverged')
    return E.left(new DivergedError(dir, r.divergedAtEpoch ?? history.length + 1, r.error ?? `diverged at epoch ${r.divergedAtEpoch}`));
  return E.right({
    dir,
    config: config.right,
    history,
    bestEpoch: r.bestEpoch,
    stoppedAt: r.stoppedAt ?? undefined,
    returnedEpoch: r.returnedEpoch,
    valAccuracy: r.valAccuracy ?? NaN,
    testAccuracy: r.testAccuracy ?? NaN,
    testLoss: r.testLoss ?? NaN,
    interrupted: false,
    backend: r.backend,
    seconds: r.seconds,
  });
};

/** The epochs a run folder's sealed checkpoint holds (0 without one); a checkpoint failing its checksum is a `Left`. */
const checkpointEpochs = (dir: string): E.Either<Error, number> => {
  const file = join(dir, 'checkpoint.json');
  if (!existsSync(file)) return E.right(0);
  const text = readText(file);
  if (E.isLeft(text)) return text;
  // Version 1 checkpoints had no checksum (as in loadCheckpoint).
  const v = unsealJson(file, text.right, !/"version":1[,}]/.test(text.right.slice(0, 80)));
  if (E.isLeft(v)) return E.left(new Error(`${v.left.message}: resuming it is refused; start the run again`));
  const epoch = v.right['epoch'];
  return typeof epoch === 'number' && Number.isInteger(epoch) && epoch >= 0
    ? E.right(epoch)
    : E.left(new Error(`${file}: epoch ${JSON.stringify(epoch)} is not an epoch count: the file is corrupt`));
};

/**
 * What a run folder is doing, told truthfully: `running` only while a live
 * process holds its lock. A folder whose run.json says `running` but whose
 * process is gone (SIGKILL, power loss) is marked `killed` here, as every
 * command that opens a run folder does.
 */
export const runStatus = (dir: string): E.Either<Error, { readonly status: string; readonly line: string }> => {
  const file = join(dir, 'run.json');
  if (!existsSync(file)) return E.left(new Error(`${dir}: no run.json: not a tapegrad run folder`));
  let run = readRunJson(dir);
  if (run['status'] === 'running') {
    const holder = liveHolder(dir);
    if (holder !== undefined)
      return E.right({
        status: 'running',
        line: `${dir}: running (process ${holder.pid} on ${holder.host}, since ${holder.started}); ${E.getOrElse(() => 0)(checkpointEpochs(dir))} epochs finished`,
      });
    const l = lockFolder(dir);
    if (E.isLeft(l)) return l;
    try {
      run = { ...readRunJson(dir), status: 'killed', killedProcess: l.right.stale?.pid ?? run['pid'] ?? null, detected: new Date().toISOString() };
      writeFileAtomic(file, JSON.stringify(run, null, 2));
    } finally {
      l.right.release();
    }
  }
  // The sealed files, not run.json or history.json (plain, editable), say how far the run got.
  const result = readFinishedRun(dir);
  if (result !== undefined) {
    if (E.isRight(result)) return E.right({ status: 'finished', line: `${dir}: finished after ${result.right.history.length} epochs` });
    if (!(result.left instanceof DivergedError)) return E.left(result.left);
    return E.right({ status: 'diverged', line: `${dir}: diverged at epoch ${result.left.epoch}` });
  }
  const status = typeof run['status'] === 'string' ? run['status'] : 'unknown';
  if (status === 'finished' || status === 'diverged') {
    return E.left(
      new Error(`${dir}: run.json says ${status} but the folder holds no result.json: it is damaged; continue it with tapegrad train --resume ${dir}`),
    );
  }
  const checkpointed = checkpointEpochs(dir);
  if (E.isLeft(checkpointed)) return checkpointed;
  const n = checkpointed.right;
  const again = `tapegrad train --resume ${dir}`;
  const line =
    status === 'killed'
      ? `${dir}: killed (its process ended without finishing) after ${n} epochs; continue with: ${again}`
      : status === 'interrupted'
        ? `${dir}: interrupted after ${n} epochs; continue with: ${again}`
        : status === 'failed'
          ? `${dir}: failed: ${String(run['error'] ?? 'see run.json')}`
          : status === 'diverged'
            ? `${dir}: diverged at epoch ${String(run['epoch'] ?? '?')}`
            : `${dir}: ${status} after ${n} epochs`;
  return E.right({ status, line });
};
