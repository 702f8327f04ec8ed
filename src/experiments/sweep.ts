/**
 * A grid of runs written as a table in the layout of the report's tables, with
 * the report's numbers beside ours, in Markdown, CSV and JSON, plus the curves
 * of the best row (the report's figures).
 */
import * as E from 'fp-ts/lib/Either.js';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { readText, sealJson, unsealJson, writeFileAtomic, type FitEvent } from '../nn/index.js';
import { configDiff, decodeConfig, expandGrid, sweepKeys, type RawConfig, type ResolvedConfig } from './config.js';
import { DivergedError, readFinishedRun, readRunConfig, runExperiment, writeCurves, type RunOptions, type RunResult } from './run.js';
import { claimFreshFolder, claimNewFolder, fsMessage, lockFolder, sanitizeName, SWEEP_LOCK, tryFs, whileOpen, type RunLock } from './runfolder.js';
import type { ProgressEvent, RunPool } from './parallel.js';

export interface SweepRow {
  readonly values: readonly (number | string | boolean)[];
  /** NaN for a run that diverged (see `divergedAt`). */
  readonly valAccuracy: number;
  /** The epoch at which the run's loss became non-finite; the row then reads "diverged at epoch E". */
  readonly divergedAt?: number;
  /** The returned epoch when early stopping triggered, else '-' (as the report prints it). */
  readonly earlyStop: number | '-';
  readonly testAccuracy: number;
  readonly epochsRun: number;
  readonly dir: string;
  readonly paper?: { readonly valAccuracy: number; readonly earlyStop?: number | string; readonly testAccuracy?: number };
}

export interface SweepResult {
  readonly dir: string;
  readonly name: string;
  readonly title: string;
  readonly headers: readonly string[];
  readonly rows: readonly SweepRow[];
  /** The row with the best validation accuracy; undefined when every run diverged. */
  readonly best: SweepRow | undefined;
  readonly bestRun: RunResult | undefined;
  readonly markdown: string;
  readonly interrupted: boolean;
  /** Read back from a folder that already held the finished sweep (nothing ran). */
  readonly reused: boolean;
}

const pct = (x: number) => `${(x * 100).toFixed(2)}%`;

/** The Markdown table: varied values, ours, the report's. */
export const sweepMarkdown = (headers: readonly string[], rows: readonly SweepRow[]): string => {
  const hasPaper = rows.some((r) => r.paper !== undefined);
  const cols = [
    ...headers,
    'Validation accuracy',
    'Early stop epoch',
    'Test accuracy',
    ...(hasPaper ? ['Paper: validation accuracy', 'Paper: early stop epoch'] : []),
  ];
  const lines = [`| ${cols.join(' | ')} |`, `|${cols.map(() => '---').join('|')}|`];
  for (const r of rows) {
    const p = r.paper;
    const d = r.divergedAt !== undefined ? `diverged at epoch ${r.divergedAt}` : undefined;
    lines.push(
      `| ${[
        ...r.values.map(String),
        d ?? pct(r.valAccuracy),
        d !== undefined ? '-' : String(r.earlyStop),
        d ?? pct(r.testAccuracy),
        ...(hasPaper ? [p ? `${p.valAccuracy.toFixed(2)}%` : '', p?.earlyStop !== undefined ? String(p.earlyStop) : ''] : []),
      ].join(' | ')} |`,
    );
  }
  return lines.join('\n');
};

export interface SweepOptions extends RunOptions {
  /** A run starts (i counts from 0). */
  readonly onRun?: (i: number, total: number, values: readonly unknown[]) => void;
  /** Progress of one run, with which run it is (with a pool, runs report side by side). */
  readonly onRunEvent?: (i: number, total: number, values: readonly unknown[], e: ProgressEvent) => void;
  /** Runs the grid's runs side by side on this pool (parallel.ts); without one, one after another here. */
  readonly pool?: RunPool;
  /**
   * A folder holding a finished sweep is read back instead of refused (reproduce
   * continuing an interrupted report); its files are left as they are.
   */
  readonly reuseFinished?: boolean;
  /**
   * Writes the table from the runs' results on disk alone, training nothing: a
   * run without a result is an error (a queue's finisher, queue.ts).
   */
  readonly collectOnly?: boolean;
}

/** How `runInFolder` runs: a run's options, a pool to run on, and who to tell. */
export interface FolderRunOptions extends RunOptions {
  readonly pool?: RunPool;
  /** The run starts or continues (not called for a finished run read back). */
  readonly onStart?: () => void;
  /** Progress of the run, here or on the pool. */
  readonly onProgress?: (e: ProgressEvent) => void;
  /** Only read a finished run back; one without a result is an error (a queue's finisher, see queue.ts). */
  readonly collectOnly?: boolean;
}

/**
 * One run in its own folder, as a sweep's rows and reproduce's recipes run: a
 * finished run is read back (never run again or overwritten), an unfinished one
 * is continued from its checkpoint (only with the same config: another is
 * refused, naming the difference), else the run starts there; on `opts.pool`
 * when given. `what` names the whole (e.g. 'the sweep') in the refusal.
 */
export const runInFolder = async (runDir: string, cfg: ResolvedConfig, opts: FolderRunOptions, what: string): Promise<E.Either<Error, RunResult>> => {
  if (existsSync(join(runDir, 'config.json'))) {
    // A run folder from an earlier invocation: only the same config may continue it.
    const stored = readRunConfig(runDir);
    if (E.isLeft(stored)) return stored;
    const diff = configDiff(stored.right, cfg);
    if (diff.length > 0) {
      return E.left(
        new Error(
          `${runDir} holds a run of another config (${diff.slice(0, 3).join('; ')}): continue ${what} with the same config and flags, or choose another --out`,
        ),
      );
    }
  }
  const finished = readFinishedRun(runDir);
  if (finished !== undefined) return finished;
  if (opts.collectOnly === true) return E.left(new Error(`${runDir} has no result yet: the sweep's table is written once every run has finished`));
  opts.onStart?.();
  const onEvent = (e: ProgressEvent) => opts.onProgress?.(e);
  const resume = existsSync(join(runDir, 'config.json'));
  if (opts.pool !== undefined) return opts.pool.run(resume ? { resumeDir: runDir, onEvent } : { config: cfg, outDir: runDir, onEvent });
  const { pool: _p, onStart: _s, onProgress: _o, ...runOpts } = opts;
  const local = {
    ...runOpts,
    onEvent: (e: FitEvent) => {
      opts.onEvent?.(e);
      onEvent(e);
    },
  };
  return resume ? runExperiment(undefined, local, runDir) : runExperiment(cfg, { ...local, outDir: runDir });
};

const SWEEP_FORMAT = 'tapegrad.sweep';

/** Files a sweep folder holds besides its runs. */
const SWEEP_FILES = new Set(['sweep.json', 'table.md', 'table.json', 'table.csv', 'best-accuracy.png', 'best-accuracy.svg', 'best-loss.png', 'best-loss.svg']);

/**
 * Claims the sweep's folder: a new or empty one (sweep.json records the config
 * it runs), or one holding this same sweep, unfinished (continued), or finished
 * (with `reuseFinished`). Anything else is refused.
 */
const claimSweepFolder = (raw: RawConfig, opts: SweepOptions): E.Either<Error, { lock: RunLock; finishedBefore: boolean; fresh: boolean }> => {
  const record = sweepRecord(raw);
  if (opts.outDir === undefined)
    return E.map((lock: RunLock) => ({ lock, finishedBefore: false, fresh: true }))(claimFreshFolder(opts.runsDir ?? 'runs', raw.name, 'sweep'));
  const dir = opts.outDir;
  const listing = tryFs(dir, () =>
    existsSync(dir) && statSync(dir).isDirectory() ? readdirSync(dir).filter((f) => !f.endsWith('.lock') && !f.startsWith('.')) : undefined,
  );
  if (E.isLeft(listing)) return listing;
  const files = listing.right;
  const isSweep = files !== undefined && files.length > 0 && files.every((f) => SWEEP_FILES.has(f) || /^run-\d+-/.test(f));
  if (!isSweep) return E.map((lock: RunLock) => ({ lock, finishedBefore: false, fresh: true }))(claimNewFolder(dir, 'sweep'));
  const finishedBefore = files.includes('table.md');
  if (finishedBefore && opts.reuseFinished !== true)
    return E.left(new Error(`${dir} holds a finished sweep, which is never overwritten: choose another --out`));
  const l = lockFolder(dir, SWEEP_LOCK);
  if (E.isLeft(l)) return l;
  if (files.includes('sweep.json')) {
    const file = join(dir, 'sweep.json');
    const stored = E.chain((text: string) => unsealJson(file, text))(readText(file));
    if (E.isLeft(stored)) {
      l.right.release();
      return E.left(new Error(`${stored.left.message}: this sweep folder cannot be continued; choose another --out`));
    }
    const diff = configDiff(stored.right, record);
    if (diff.length > 0) {
      l.right.release();
      return E.left(
        new Error(
          `${dir} holds a sweep of another config (${diff.slice(0, 3).join('; ')}): continue it with the same config and flags, or choose another --out`,
        ),
      );
    }
  }
  return E.right({ lock: l.right, finishedBefore, fresh: false });
};

/** What sweep.json records: the config a sweep folder runs, so a continuation with other settings is caught. */
export const sweepRecord = (raw: RawConfig): Record<string, unknown> => {
  const { sweep: _s, ...rest } = raw;
  return { format: SWEEP_FORMAT, config: rest, sweep: raw.sweep };
};

/** The sweep config a folder's sweep.json records (checked against its seal). */
export const readSweepConfig = (dir: string): E.Either<Error, RawConfig> => {
  const file = join(dir, 'sweep.json');
  if (!existsSync(file)) return E.left(new Error(`${dir}: no sweep.json: not a tapegrad sweep folder`));
  const stored = E.chain((text: string) => unsealJson(file, text))(readText(file));
  if (E.isLeft(stored)) return stored;
  const { config, sweep } = stored.right as { config?: unknown; sweep?: unknown };
  if (stored.right['format'] !== SWEEP_FORMAT || config === null || typeof config !== 'object')
    return E.left(new Error(`${file}: not a tapegrad sweep record`));
  return E.right({ ...(config as RawConfig), sweep: sweep as RawConfig['sweep'] });
};

/** A run's folder inside its sweep folder: the same name wherever (and by whichever process) the run is made. */
export const runFolderName = (i: number, values: readonly unknown[]): string => sanitizeName(`run-${i + 1}-${values.join('-')}`);

/**
 * Makes `dir` a sweep folder for `raw` without running anything (a queue
 * sweep's start, queue.ts): a new or empty folder gets sweep.json; one holding
 * this same sweep is kept as it is; anything else is refused, as by runSweep.
 * `finished` says whether its table is already written.
 */
export const prepareSweepFolder = (raw: RawConfig, dir: string): E.Either<Error, { readonly finished: boolean }> => {
  const claimed = claimSweepFolder(raw, { outDir: dir, reuseFinished: true });
  if (E.isLeft(claimed)) return claimed;
  const { lock, finishedBefore, fresh } = claimed.right;
  try {
    if (fresh) writeFileAtomic(join(lock.dir, 'sweep.json'), sealJson(sweepRecord(raw), 2));
    return E.right({ finished: finishedBefore });
  } catch (e) {
    return E.left(new Error(fsMessage(e, dir)));
  } finally {
    lock.release();
  }
};

/**
 * Runs every combination of a config's grid: in order, or side by side on
 * `opts.pool`. Run again with the same folder after an interruption, it keeps
 * the finished runs, resumes the interrupted ones from their checkpoints and
 * runs the rest; a config or flag that differs from the stored one is refused.
 * A run that diverges is a row ("diverged at epoch E"), and the table is still written.
 */
export const runSweep = async (raw: RawConfig, opts: SweepOptions): Promise<E.Either<Error, SweepResult>> => {
  if (raw.sweep === undefined) return E.left(new Error(`config '${raw.name}' has no 'sweep:' section: use 'tapegrad train' for a single run`));
  let combos: ReturnType<typeof expandGrid>;
  try {
    combos = expandGrid(raw);
  } catch (e) {
    return E.left(e as Error);
  }
  const decoded = combos.map((c) => decodeConfig(c.config, `${raw.name} with ${c.values.join(', ')}`));
  const bad = decoded.find(E.isLeft);
  if (bad !== undefined && E.isLeft(bad)) return bad;
  const claimed = claimSweepFolder(raw, opts);
  if (E.isLeft(claimed)) return claimed;
  const { lock, finishedBefore, fresh } = claimed.right;
  // A process that exits mid-sweep (a second Ctrl-C) frees the folder too.
  const unhook = whileOpen(() => lock.release());
  try {
    if (fresh) writeFileAtomic(join(lock.dir, 'sweep.json'), sealJson(sweepRecord(raw), 2));
    return await sweepIn(lock.dir, finishedBefore, raw, combos, decoded as E.Right<ResolvedConfig>[], opts);
  } catch (e) {
    return E.left(new Error((e as NodeJS.ErrnoException).code !== undefined ? fsMessage(e, lock.dir) : (e as Error).message.split('\n')[0]!));
  } finally {
    unhook();
    lock.release();
  }
};

const sweepIn = async (
  dir: string,
  finishedBefore: boolean,
  raw: RawConfig,
  combos: ReturnType<typeof expandGrid>,
  decoded: E.Right<ResolvedConfig>[],
  opts: SweepOptions,
): Promise<E.Either<Error, SweepResult>> => {
  const sweep = raw.sweep!;
  const keys = sweepKeys(sweep);
  const headers = keys.map((k) => sweep.columns?.[k] ?? k);
  const rows: SweepRow[] = [];
  const results: (RunResult | undefined)[] = [];
  const runDirOf = (i: number) => join(dir, runFolderName(i, combos[i]!.values));
  const runOne = (i: number): Promise<E.Either<Error, RunResult>> => {
    const combo = combos[i]!;
    const onEvent = (e: ProgressEvent) => opts.onRunEvent?.(i, combos.length, combo.values, e);
    return runInFolder(
      runDirOf(i),
      decoded[i]!.right,
      { ...opts, onStart: () => opts.onRun?.(i, combos.length, combo.values), onProgress: onEvent },
      'the sweep',
    );
  };
  const outcomes: E.Either<Error, RunResult>[] = [];
  if (opts.pool !== undefined) {
    outcomes.push(...(await Promise.all(combos.map((_, i) => runOne(i)))));
  } else {
    for (let i = 0; i < combos.length; i++) {
      const r = await runOne(i);
      outcomes.push(r);
      if ((E.isLeft(r) && !(r.left instanceof DivergedError)) || (E.isRight(r) && r.right.interrupted)) break;
    }
  }
  for (let i = 0; i < outcomes.length; i++) {
    const r = outcomes[i]!;
    const combo = combos[i]!;
    const paper = sweep.paper?.find((p) => p.values.length === combo.values.length && p.values.every((v, j) => String(v) === String(combo.values[j])));
    const paperPart = paper
      ? {
          paper: {
            valAccuracy: paper.valAccuracy,
            ...(paper.earlyStop !== undefined ? { earlyStop: paper.earlyStop } : {}),
            ...(paper.testAccuracy !== undefined ? { testAccuracy: paper.testAccuracy } : {}),
          },
        }
      : {};
    if (E.isLeft(r)) {
      if (r.left instanceof DivergedError) {
        results.push(undefined);
        rows.push({
          values: combo.values,
          valAccuracy: NaN,
          testAccuracy: NaN,
          epochsRun: r.left.epoch - 1,
          earlyStop: '-',
          divergedAt: r.left.epoch,
          dir: r.left.dir,
          ...paperPart,
        });
        continue;
      }
      // Runs the pool never started because of an interruption are simply not there yet.
      if (opts.signal?.aborted === true) continue;
      return r;
    }
    results.push(r.right);
    rows.push({
      values: combo.values,
      valAccuracy: r.right.valAccuracy,
      testAccuracy: r.right.testAccuracy,
      epochsRun: r.right.history.length,
      earlyStop: r.right.stoppedAt !== undefined ? r.right.returnedEpoch : '-',
      dir: r.right.dir,
      ...paperPart,
    });
  }
  if (results.length === 0) return E.left(new Error(`interrupted before any run of ${dir} finished an epoch`));
  const interrupted = results.some((r) => r?.interrupted === true) || results.length < combos.length;
  const bestIdx = rows.reduce<number | undefined>(
    (b, r, i) => (Number.isNaN(r.valAccuracy) ? b : b === undefined || r.valAccuracy > rows[b]!.valAccuracy ? i : b),
    undefined,
  );
  const markdown = sweepMarkdown(headers, rows);
  if (!interrupted && !finishedBefore) {
    writeFileAtomic(join(dir, 'table.md'), `# ${sweep.title ?? raw.name}\n\n${markdown}\n`);
    writeFileAtomic(join(dir, 'table.json'), JSON.stringify({ name: raw.name, headers, rows }, null, 2));
    writeFileAtomic(
      join(dir, 'table.csv'),
      `${[
        [...headers, 'val_accuracy', 'early_stop_epoch', 'test_accuracy', 'epochs_run', 'diverged_at_epoch', 'paper_val_accuracy', 'paper_early_stop'].join(
          ',',
        ),
        ...rows.map((r) =>
          [
            ...r.values,
            Number.isNaN(r.valAccuracy) ? '' : r.valAccuracy,
            r.earlyStop,
            Number.isNaN(r.testAccuracy) ? '' : r.testAccuracy,
            r.epochsRun,
            r.divergedAt ?? '',
            r.paper?.valAccuracy ?? '',
            r.paper?.earlyStop ?? '',
          ].join(','),
        ),
      ].join('\n')}\n`,
    );
    if (bestIdx !== undefined)
      await writeCurves(dir, `${sweep.title ?? raw.name}, best: ${rows[bestIdx]!.values.join(', ')}`, results[bestIdx]!.history, 'best-');
  }
  return E.right({
    dir,
    name: raw.name,
    title: sweep.title ?? raw.name,
    headers,
    rows,
    best: bestIdx === undefined ? undefined : rows[bestIdx],
    bestRun: bestIdx === undefined ? undefined : results[bestIdx],
    markdown,
    interrupted,
    reused: finishedBefore,
  });
};
