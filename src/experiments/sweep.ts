/**
 * A grid of runs written as a table in the layout of the report's tables, with
 * the report's numbers beside ours, in Markdown, CSV and JSON, plus the curves
 * of the best row (the report's figures).
 */
import * as E from 'fp-ts/lib/Either.js';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic, type FitEvent } from '../nn/index.js';
import { decodeConfig, expandGrid, sweepKeys, type RawConfig, type ResolvedConfig } from './config.js';
import { readFinishedRun, runExperiment, writeCurves, type RunOptions, type RunResult } from './run.js';
import type { ProgressEvent, RunPool } from './parallel.js';

export interface SweepRow {
  readonly values: readonly (number | string | boolean)[];
  readonly valAccuracy: number;
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
  readonly best: SweepRow;
  readonly bestRun: RunResult;
  readonly markdown: string;
  readonly interrupted: boolean;
  /** Read back from a folder that already held the finished sweep (nothing ran). */
  readonly reused: boolean;
}

const pct = (x: number) => `${(x * 100).toFixed(2)}%`;

/** The Markdown table: varied values, ours, the report's. */
export const sweepMarkdown = (headers: readonly string[], rows: readonly SweepRow[]): string => {
  const hasPaper = rows.some((r) => r.paper !== undefined);
  const cols = [...headers, 'Validation accuracy', 'Early stop epoch', 'Test accuracy', ...(hasPaper ? ['Paper: validation accuracy', 'Paper: early stop epoch'] : [])];
  const lines = [`| ${cols.join(' | ')} |`, `|${cols.map(() => '---').join('|')}|`];
  for (const r of rows) {
    const p = r.paper;
    lines.push(`| ${[...r.values.map(String), pct(r.valAccuracy), String(r.earlyStop), pct(r.testAccuracy),
      ...(hasPaper ? [p ? `${p.valAccuracy.toFixed(2)}%` : '', p?.earlyStop !== undefined ? String(p.earlyStop) : ''] : [])].join(' | ')} |`);
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
}

/**
 * Runs every combination of a config's grid: in order, or side by side on
 * `opts.pool`. Run again with the same folder after an interruption, it keeps
 * the finished runs, resumes the interrupted ones from their checkpoints and
 * runs the rest.
 */
export const runSweep = async (raw: RawConfig, opts: SweepOptions): Promise<E.Either<Error, SweepResult>> => {
  if (raw.sweep === undefined) return E.left(new Error(`config '${raw.name}' has no 'sweep:' section: use 'tapegrad train' for a single run`));
  let combos: ReturnType<typeof expandGrid>;
  try { combos = expandGrid(raw); } catch (e) { return E.left(e as Error); }
  const decoded = combos.map((c) => decodeConfig(c.config, `${raw.name} with ${c.values.join(', ')}`));
  const bad = decoded.find(E.isLeft);
  if (bad !== undefined && E.isLeft(bad)) return bad;
  const dir = opts.outDir ?? join(opts.runsDir ?? 'runs', `${raw.name}-${new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15)}`);
  const finishedBefore = existsSync(join(dir, 'table.md'));
  if (finishedBefore && opts.reuseFinished !== true) return E.left(new Error(`${dir} holds a finished sweep, which is never overwritten: choose another --out`));
  mkdirSync(dir, { recursive: true });
  const keys = sweepKeys(raw.sweep);
  const headers = keys.map((k) => raw.sweep?.columns?.[k] ?? k);
  const rows: SweepRow[] = [];
  const results: RunResult[] = [];
  const runDirOf = (i: number) => join(dir, `run-${i + 1}-${combos[i]!.values.join('-')}`);
  const runOne = async (i: number): Promise<E.Either<Error, RunResult>> => {
    const combo = combos[i]!;
    const runDir = runDirOf(i);
    const finished = readFinishedRun(runDir);
    if (finished !== undefined) return E.right(finished);
    opts.onRun?.(i, combos.length, combo.values);
    const onEvent = (e: ProgressEvent) => opts.onRunEvent?.(i, combos.length, combo.values, e);
    const resume = existsSync(join(runDir, 'checkpoint.json'));
    const cfg = (decoded[i] as E.Right<ResolvedConfig>).right;
    if (opts.pool !== undefined) return opts.pool.run(resume ? { resumeDir: runDir, onEvent } : { config: cfg, outDir: runDir, onEvent });
    const local = { ...opts, onEvent: (e: FitEvent) => { opts.onEvent?.(e); onEvent(e); } };
    return resume ? runExperiment(undefined, local, runDir) : runExperiment(cfg, { ...local, outDir: runDir });
  };
  const outcomes: E.Either<Error, RunResult>[] = [];
  if (opts.pool !== undefined) {
    outcomes.push(...await Promise.all(combos.map((_, i) => runOne(i))));
  } else {
    for (let i = 0; i < combos.length; i++) {
      const r = await runOne(i);
      outcomes.push(r);
      if (E.isLeft(r) || r.right.interrupted) break;
    }
  }
  for (let i = 0; i < outcomes.length; i++) {
    const r = outcomes[i]!;
    if (E.isLeft(r)) {
      // Runs the pool never started because of an interruption are simply not there yet.
      if (opts.signal?.aborted === true) continue;
      return r;
    }
    const combo = combos[i]!;
    results.push(r.right);
    const paper = raw.sweep.paper?.find((p) => p.values.length === combo.values.length && p.values.every((v, j) => String(v) === String(combo.values[j])));
    rows.push({
      values: combo.values, valAccuracy: r.right.valAccuracy, testAccuracy: r.right.testAccuracy, epochsRun: r.right.history.length,
      earlyStop: r.right.stoppedAt !== undefined ? r.right.returnedEpoch : '-', dir: r.right.dir,
      ...(paper ? { paper: { valAccuracy: paper.valAccuracy, ...(paper.earlyStop !== undefined ? { earlyStop: paper.earlyStop } : {}), ...(paper.testAccuracy !== undefined ? { testAccuracy: paper.testAccuracy } : {}) } } : {}),
    });
  }
  if (results.length === 0) return E.left(new Error(`interrupted before any run of ${dir} finished an epoch`));
  const interrupted = results.some((r) => r.interrupted) || results.length < combos.length;
  const bestIdx = rows.reduce((b, r, i) => (r.valAccuracy > rows[b]!.valAccuracy ? i : b), 0);
  const markdown = sweepMarkdown(headers, rows);
  if (!interrupted && !finishedBefore) {
    writeFileAtomic(join(dir, 'table.md'), `# ${raw.sweep.title ?? raw.name}\n\n${markdown}\n`);
    writeFileAtomic(join(dir, 'table.json'), JSON.stringify({ name: raw.name, headers, rows }, null, 2));
    writeFileAtomic(join(dir, 'table.csv'), [
      [...headers, 'val_accuracy', 'early_stop_epoch', 'test_accuracy', 'epochs_run', 'paper_val_accuracy', 'paper_early_stop'].join(','),
      ...rows.map((r) => [...r.values, r.valAccuracy, r.earlyStop, r.testAccuracy, r.epochsRun, r.paper?.valAccuracy ?? '', r.paper?.earlyStop ?? ''].join(',')),
    ].join('\n') + '\n');
    await writeCurves(dir, `${raw.sweep.title ?? raw.name}, best: ${rows[bestIdx]!.values.join(', ')}`, results[bestIdx]!.history, 'best-');
  }
  return E.right({
    dir, name: raw.name, title: raw.sweep.title ?? raw.name, headers, rows, best: rows[bestIdx]!, bestRun: results[bestIdx]!, markdown, interrupted, reused: finishedBefore,
  });
};
