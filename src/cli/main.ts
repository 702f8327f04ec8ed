#!/usr/bin/env node
/**
 * The `tapegrad` command line: train, sweep, gradcheck, stats, reproduce, download.
 *
 * Every failure is one line on stderr, `tapegrad: <what and the fix>`, never a
 * stack trace (TAPEGRAD_DEBUG=1 adds one for internal errors). Exit codes:
 * 0 done; 1 the work failed or was refused (data, run folders, checkpoints,
 * divergence); 2 bad usage (flags, config); 130 interrupted (Ctrl-C or SIGTERM;
 * finished epochs are kept).
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import * as E from 'fp-ts/lib/Either.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { backend as backendNamed, backendSelection, chooseBackend, disposeBackends, setDefaultBackend, UnknownBackendError } from '../core/index.js';
import { cifarSet, downloadCifar100Into, ensureCifar100, readCifar100, sliceRows } from '../data/index.js';
import { ConfigError, decodeConfig, readRawConfig, setPath, type RawConfig, type ResolvedConfig } from '../experiments/config.js';
import { MAX_SEED } from '../nn/codecs.js';
import { runBytes } from '../experiments/budget.js';
import { readRunConfig, runStatus } from '../experiments/run.js';
import { fsMessage } from '../experiments/runfolder.js';
import { paperGradientCheck } from '../experiments/gradcheck-table.js';
import { readReproduceFile, reproduce, SECTIONS, type Section } from '../experiments/reproduce.js';
import { enqueueReport } from '../experiments/report-queue.js';
import { runExperiment } from '../experiments/run.js';
import { paperTable1 } from '../experiments/stats.js';
import { runSweep } from '../experiments/sweep.js';
import { multiProgressReporter, progressReporter } from './progress.js';
import { packageVersion, shippedPath } from './package.js';
import { capJobs, createRunPool, defaultJobs, type RunPool } from '../experiments/parallel.js';
import type { RunOptions } from '../experiments/run.js';
import cliProgress from 'cli-progress';

const BACKENDS = ['auto', 'cpu', 'gpujs', 'reference', 'webgpu'];

/** Exit codes: 0 done, 1 the work failed, 2 bad usage or config, 130 interrupted. */
class UsageError extends Error {}

const int =
  (name: string) =>
  (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n)) throw new InvalidArgumentError(`${name} must be an integer, got '${v}'`);
    return n;
  };
const positive =
  (name: string) =>
  (v: string): number => {
    const n = int(name)(v);
    if (n < 1) throw new InvalidArgumentError(`${name} must be at least 1, got '${v}'`);
    return n;
  };
/** Seeds are exact integers 0..2³²−1: larger ones would alias smaller ones (the generators take 32 bits). */
const seedArg = (v: string): number => {
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n > MAX_SEED)
    throw new InvalidArgumentError(`--seed must be an integer from 0 to ${MAX_SEED}, got '${v}'`);
  return n;
};

/** A message as one line: multi-line causes are joined, so scripts can read stderr line by line. */
const oneLine = (m: string): string =>
  m
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .join('; ');

const fail = (e: Error): never => {
  const usage = e instanceof ConfigError || e instanceof UsageError || e instanceof UnknownBackendError;
  process.stderr.write(`tapegrad: ${oneLine(e.message)}\n`);
  process.exit(usage ? 2 : 1);
};

/**
 * Ctrl-C or SIGTERM stops after the current batch; the finished epochs stay on
 * disk and run.json says `interrupted`. A second signal quits at once (exit
 * 130; run.json is still updated, from the exit hook of runfolder.ts).
 */
const interruptible = (): AbortController => {
  const ctl = new AbortController();
  const stop = (sig: string) => {
    process.stderr.write(`\ntapegrad: ${sig}: stopping after this batch (${sig === 'SIGINT' ? 'Ctrl-C' : 'the signal'} again to quit at once)\n`);
    ctl.abort();
    process.removeAllListeners('SIGINT');
    process.removeAllListeners('SIGTERM');
    process.once('SIGINT', () => process.exit(130));
    process.once('SIGTERM', () => process.exit(130));
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
  return ctl;
};

const announceBackend = () => {
  const s = backendSelection();
  process.stderr.write(`backend: ${s.backend.description} — ${s.reason}\n`);
};

/**
 * The backend a sweep's runs use, chosen as runExperiment chooses it: the
 * config's (which --backend overrides), else TAPEGRAD_BACKEND, else
 * auto-detection. (The command's default backend is not it when either names one.)
 */
const announceRunBackend = (configured: string | undefined, flag: string | undefined): void => {
  const { name, reason } = chooseBackend(configured, flag !== undefined ? '--backend' : 'the config or --backend');
  process.stderr.write(`backend: ${backendNamed(name).description} — ${reason}\n`);
};

/**
 * The command's default backend: --backend, else TAPEGRAD_BACKEND, else
 * auto-detection (a run's config may still name its own; see runExperiment).
 */
const useBackend = (flag: string | undefined): void => {
  const { name, reason } = chooseBackend(flag, '--backend');
  setDefaultBackend(name, reason);
};

/** Config plus command-line overrides, decoded again so overrides are checked too. */
const withOverrides = (raw: RawConfig, o: { backend?: string; seed?: number; epochs?: number; limitTrain?: number; limitTest?: number }): RawConfig => {
  let c: RawConfig = raw;
  if (o.backend !== undefined) c = setPath(c, 'backend', o.backend) as RawConfig;
  if (o.seed !== undefined) c = setPath(c, 'seed', o.seed) as RawConfig;
  if (o.epochs !== undefined) c = setPath(c, 'training.epochs', o.epochs) as RawConfig;
  if (o.limitTrain !== undefined) c = setPath(c, 'data.limitTrain', o.limitTrain) as RawConfig;
  if (o.limitTest !== undefined) c = setPath(c, 'data.limitTest', o.limitTest) as RawConfig;
  return c;
};

/**
 * The pool that runs a sweep's runs side by side, or none (runs in turn): --jobs,
 * else the default, which is one for the GPU backends (gpujs, webgpu: one GPU).
 */
const poolFor = (jobs: number | undefined, backend: string | undefined, opts: RunOptions, perRunBytes: number): RunPool | undefined => {
  const wanted = jobs ?? (backend === 'gpujs' || backend === 'webgpu' ? 1 : defaultJobs());
  const { jobs: n, note } = capJobs(wanted, perRunBytes);
  if (note !== undefined && jobs !== undefined) process.stderr.write(`note: ${note}\n`);
  return n > 1 ? createRunPool(n, opts) : undefined;
};

/** The memory of the largest run a sweep config makes (for capping --jobs). */
const perRunBytesOf = (raw: RawConfig): number => {
  const { sweep: _s, ...single } = raw;
  const d = decodeConfig(single, 'config');
  return E.isRight(d) ? runBytes(d.right, d.right.data.labels === 'fine' ? 100 : 20) : 0.8 * 2 ** 30;
};

const pct = (x: number) => `${(x * 100).toFixed(2)}%`;

/** The training file, found (or downloaded) as every command finds it. */
const readTrainFile = async (dataFlag?: string) => {
  try {
    const dir = await ensureCifar100(dataFlag);
    return E.isLeft(dir) ? fail(dir.left) : E.getOrElseW(fail)(readCifar100(dir.right, 'train'));
  } catch (e) {
    // An unreadable data folder (EACCES) and the like: one line naming the path.
    return fail(new Error(fsMessage(e, dataFlag ?? 'the data folder')));
  }
};

/** The queue's code and its packages, loaded only by the commands that use a queue. */
const queueModule = () => import('../experiments/queue.js');

const checkQueueUrl = async (url: string): Promise<void> => {
  const { parseQueueUrl } = await queueModule();
  const q = parseQueueUrl(url);
  if (E.isLeft(q)) throw new UsageError(q.left.message);
};

/** `sweep --queue URL`: one job per run, then return; the workers write the table. */
const enqueueCommand = async (
  o: { config: string; out?: string; queue: string; data?: string; jobs?: number } & Parameters<typeof withOverrides>[1],
): Promise<void> => {
  await checkQueueUrl(o.queue);
  if (o.out === undefined) throw new UsageError('sweep --queue needs --out DIR: the sweep folder, on a file system every worker sees at the same path');
  if (o.jobs !== undefined) throw new UsageError('--jobs with --queue: say it to each worker instead (tapegrad worker --queue URL --jobs N)');
  const raw = readRawConfig(o.config);
  if (E.isLeft(raw)) return fail(raw.left);
  const cfg = withOverrides(raw.right, o);
  if (cfg.sweep === undefined) return fail(new UsageError(`${o.config} has no 'sweep:' section: use 'tapegrad train' for a single run`));
  const { enqueueSweep, parseQueueUrl } = await queueModule();
  const q = parseQueueUrl(o.queue);
  const shown = E.isRight(q) ? q.right.shown : o.queue;
  const r = await enqueueSweep(cfg, o.out, o.queue, { ...(o.data ? { dataDir: o.data } : {}) });
  if (E.isLeft(r)) return fail(r.left);
  const s = r.right;
  if (s.table !== undefined) {
    process.stdout.write(`every run of ${s.dir} has finished: ${s.table}\n`);
    return;
  }
  const lines = [
    `sweep ${s.sweepId}: ${s.rows} runs in ${s.dir}: ${s.added} enqueued now, ${s.queued} already in the queue, ${s.retried} failed ones put back, ${s.finished} finished`,
    `run workers (any machine that sees ${s.dir}): tapegrad worker --queue ${shown}${shown !== o.queue ? ' (with its password)' : ''}`,
    `follow it: tapegrad sweep --status --out ${s.dir} --queue ${shown}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
};

/** A text bar: progress bars in a log stay readable. */
const textBar = (done: number, total: number, width = 30): string => {
  const n = total === 0 ? width : Math.round((done / total) * width);
  return `[${'#'.repeat(n)}${'-'.repeat(width - n)}]`;
};

/** `sweep --status --out DIR --queue URL`. */
const sweepStatusCommand = async (o: { out?: string; queue?: string }): Promise<void> => {
  if (o.out === undefined || o.queue === undefined) throw new UsageError("sweep --status needs --out DIR (the queued sweep's folder) and --queue URL");
  await checkQueueUrl(o.queue);
  const { sweepStatus } = await queueModule();
  const r = await sweepStatus(o.out, o.queue);
  if (E.isLeft(r)) return fail(r.left);
  const rows = r.right.rows;
  const count = (...states: string[]) => rows.filter((x) => states.includes(x.state)).length;
  const done = count('finished', 'diverged');
  // Running rows count by their finished epochs, so the bar moves during long runs.
  const partial = rows.reduce((a, x) => a + (x.progress !== undefined && x.progress.epochs > 0 ? x.progress.epoch / x.progress.epochs : 0), 0);
  const lines = [
    `${r.right.dir} (sweep ${r.right.sweepId})`,
    `${textBar(done + partial, rows.length)} ${done}/${rows.length} finished, ${count('running')} running, ${count('queued')} queued, ${count('failed')} failed${count('not queued') > 0 ? `, ${count('not queued')} not queued` : ''}`,
    ...rows.map(
      (x) =>
        `row ${x.row + 1}/${rows.length} (${x.values.join(', ')}): ${x.state}${x.progress !== undefined ? ` ${textBar(x.progress.epoch, x.progress.epochs, 10)}` : ''} — ${x.detail}`,
    ),
    r.right.table !== undefined ? `table: ${r.right.table}` : 'table: written when the last run finishes',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
};

const program = new Command()
  .name('tapegrad')
  .description('Train MLPs on CIFAR-100 with a reverse-mode autodiff tape, and reproduce the back-propagation report.')
  .version(packageVersion(), '-V, --version', 'print the version of tapegrad')
  .exitOverride()
  // Commander's own errors (bad flags) as one line too, with where to look.
  .configureOutput({
    writeErr: (s) => process.stderr.write(s),
    outputError: (s, write) => write(`tapegrad: ${oneLine(s.replace(/^error: /, ''))} (run tapegrad --help for usage)\n`),
  });

const common = (cmd: Command) =>
  cmd
    .addOption(new Option('--backend <name>', 'matmul backend').choices(BACKENDS))
    .option('--seed <n>', `seed for every random choice: an integer from 0 to ${MAX_SEED}`, seedArg)
    .option('--data <dir>', 'folder holding train.bin and test.bin (else CIFAR100_DIR, else ./data, downloaded if empty)')
    .option('--epochs <n>', 'override the number of epochs (with train --resume: train the run further, to N epochs, in a new folder)', positive('--epochs'))
    .option('--limit-train <n>', 'use only the first N training images (quick runs)', positive('--limit-train'))
    .option('--limit-test <n>', 'use only the first N test images (quick runs)', positive('--limit-test'));

common(program.command('train').description('one training run, with a progress bar; prints validation and test accuracy'))
  .option('--config <file>', 'experiment config (YAML or JSON); see examples/configs/ (shipped with tapegrad: found there when not here)', shippedPath)
  .option('--out <dir>', 'run folder (default runs/<name>-<time>; a finished run is never overwritten)')
  .option(
    '--resume <dir>',
    'continue an interrupted or killed run from its last finished epoch; with --epochs N, train a run further to N epochs in a new folder',
  )
  .action(async (o) => {
    if (o.config === undefined && o.resume === undefined)
      throw new UsageError('train needs --config FILE (or --resume DIR); e.g. --config examples/configs/headline.yaml');
    let config: ResolvedConfig | undefined;
    let extendTo: number | undefined;
    if (o.resume === undefined) {
      const raw = readRawConfig(o.config);
      if (E.isLeft(raw)) return fail(raw.left);
      const d = decodeConfig(withOverrides(raw.right, o), o.config);
      if (E.isLeft(d)) return fail(d.left);
      config = d.right;
    } else {
      // A resumed run is the stored run: a flag that would change it is refused, never ignored.
      if (o.config !== undefined)
        throw new UsageError('--resume continues a run with its own config: leave out --config (or start a new run with --config and no --resume)');
      const stored = readRunConfig(o.resume);
      if (E.isLeft(stored)) return fail(stored.left);
      const s = stored.right;
      const clash = (
        [
          ['--seed', o.seed, s.seed],
          ['--limit-train', o.limitTrain, s.data.limitTrain],
          ['--limit-test', o.limitTest, s.data.limitTest],
        ] as const
      ).filter(([, given, had]) => given !== undefined && given !== had);
      if (clash.length > 0) {
        const [flag, given, had] = clash[0]!;
        throw new UsageError(
          `${flag} ${given} would change the run in ${o.resume} (it ran with ${had ?? 'none'}): a resumed run keeps its settings; start a new run with --config to change them`,
        );
      }
      if (o.epochs !== undefined && o.epochs !== s.training.epochs) extendTo = o.epochs;
      if (o.out !== undefined && extendTo === undefined)
        throw new UsageError(
          `--out with --resume needs --epochs N (more than ${s.training.epochs}): a resumed run continues in its own folder, an extended one in --out`,
        );
      if (extendTo !== undefined)
        process.stderr.write(
          `note: --epochs ${extendTo}: continuing ${o.resume} to ${extendTo} epochs in ${o.out ?? 'a new folder'}; ${o.resume} stays as it is\n`,
        );
    }
    const ctl = interruptible();
    const progress = progressReporter('train');
    const r = await runExperiment(
      config,
      {
        ...(o.backend ? { backend: o.backend } : {}),
        ...(extendTo !== undefined ? { extendTo } : {}),
        ...(o.data ? { dataDir: o.data } : {}),
        ...(o.out ? { outDir: o.out } : {}),
        signal: ctl.signal,
        onNote: (line) => process.stderr.write(`note: ${line}\n`),
        onBackend: (b, why) => process.stderr.write(`backend: ${b.description} — ${why}\n`),
        onEvent: progress,
      },
      o.resume,
    );
    progress.stop();
    if (E.isLeft(r)) return fail(r.left);
    const res = r.right;
    if (res.interrupted) {
      const again = `tapegrad train --resume ${res.dir}${o.data ? ` --data ${o.data}` : ''}`;
      process.stderr.write(
        res.history.length === 0
          ? `interrupted before the first epoch finished; ${res.dir} keeps the config, and ${again} starts it again\n`
          : `interrupted: ${res.history.length} epochs saved in ${res.dir}; continue with: ${again}\n`,
      );
      process.exit(130);
    }
    const paper = res.config.paper;
    const early =
      res.stoppedAt !== undefined
        ? `${res.returnedEpoch} (stopped at epoch ${res.stoppedAt})`
        : `- (did not trigger in ${res.history.length} epochs; weights of epoch ${res.returnedEpoch})`;
    process.stdout.write(
      `${[
        `run: ${res.dir}`,
        `validation accuracy: ${pct(res.valAccuracy)}${paper?.valAccuracy !== undefined ? `   (paper: ${paper.valAccuracy.toFixed(2)}%)` : ''}`,
        `test accuracy:       ${pct(res.testAccuracy)}${paper?.testAccuracy !== undefined ? `   (paper: ${paper.testAccuracy.toFixed(2)}%)` : ''}`,
        `early stop epoch:    ${early}${paper?.earlyStop !== undefined ? `   (paper: ${paper.earlyStop})` : ''}`,
        `time: ${res.seconds.toFixed(1)} s`,
      ].join('\n')}\n`,
    );
  });

common(program.command('sweep').description("a grid of runs, written as a table in the layout of the report's tables"))
  .option('--config <file>', "config with a 'sweep:' section; see examples/configs/table3.yaml (shipped with tapegrad: found there when not here)", shippedPath)
  .option('--out <dir>', 'sweep folder (never overwritten); with --queue, a folder every worker sees at the same path')
  .option('--jobs <n>', `runs side by side, one core each (default: ${defaultJobs()}, the cores up to 4; 1 runs them in turn on all cores)`, positive('--jobs'))
  .option('--queue <url>', 'enqueue the runs on this Redis (redis://[:PASSWORD@]HOST:PORT, or rediss:// for TLS) for tapegrad worker processes, and return')
  .option('--status', 'with --queue and --out: where each run of a queued sweep stands')
  .action(async (o) => {
    if (o.status === true) return sweepStatusCommand(o);
    if (o.config === undefined) throw new UsageError('sweep needs --config FILE; e.g. --config examples/configs/table3.yaml');
    if (o.queue !== undefined) return enqueueCommand(o);
    const ctl = interruptible();
    const raw = readRawConfig(o.config);
    if (E.isLeft(raw)) return fail(raw.left);
    const cfg = withOverrides(raw.right, o);
    if (cfg.sweep === undefined) return fail(new UsageError(`${o.config} has no 'sweep:' section: use 'tapegrad train' for a single run`));
    const progress = progressReporter('sweep');
    const multi = multiProgressReporter();
    let announced = false;
    const runOpts = { ...(o.data ? { dataDir: o.data } : {}), ...(o.backend ? { backend: o.backend } : {}), signal: ctl.signal };
    const pool = poolFor(o.jobs, cfg.backend ?? o.backend, runOpts, perRunBytesOf(cfg));
    const r = await runSweep(cfg, {
      ...runOpts,
      ...(o.out ? { outDir: o.out } : {}),
      ...(pool ? { pool } : {}),
      onRun: (i, n, values) => {
        if (!pool) process.stderr.write(`run ${i + 1}/${n}: ${values.join(', ')}\n`);
      },
      onEvent: (e) => {
        if (e.type === 'start' && !announced) {
          announceRunBackend(cfg.backend, o.backend);
          announced = true;
        }
        progress(e);
      },
      onRunEvent: (i, n, values, e) => {
        if (pool) multi(`run ${i + 1}/${n} (${values.join(', ')})`, e);
      },
    }).finally(() => pool?.close());
    progress.stop();
    multi.stop();
    if (E.isLeft(r)) return fail(r.left);
    if (r.right.interrupted) {
      process.stderr.write(`interrupted; finished runs are in ${r.right.dir}; continue with the same flags and --out ${r.right.dir}\n`);
      process.exit(130);
    }
    process.stdout.write(`${r.right.markdown}\n\nwritten: ${join(r.right.dir, 'table.md')}, table.csv, table.json, best-accuracy.png, best-loss.png\n`);
  });

program
  .command('gradcheck')
  .description("the report's Table 2: numerical vs back-propagated gradients on a real minibatch")
  .option('--data <dir>', 'folder holding train.bin')
  .option('--seed <n>', 'which weights to check', int('--seed'), 1)
  .action(async (o) => {
    const train = await readTrainFile(o.data);
    const b = sliceRows(
      cifarSet(
        train,
        Int32Array.from({ length: 128 }, (_, i) => i),
        'coarse',
        'per-image',
      ),
      0,
      128,
    );
    const rows = paperGradientCheck(b.x, b.y, { seed: o.seed });
    process.stdout.write('| Weight type | Weight | Numerical | Backprop | Absolute difference |\n|---|---|---|---|---|\n');
    for (const r of rows)
      process.stdout.write(`| ${r.weightType} | ${r.where} | ${r.numerical.toFixed(9)} | ${r.backprop.toFixed(9)} | ${r.absDiff.toExponential(2)} |\n`);
    const worst = Math.max(...rows.map((r) => r.absDiff));
    process.stdout.write(`\nlargest difference ${worst.toExponential(2)}: ${worst < 1e-4 ? 'below' : 'NOT below'} ε² = 1e-4\n`);
    if (worst >= 1e-4) process.exit(1);
  });

program
  .command('stats')
  .description("the report's Table 1: channel statistics of one normalized image")
  .option('--data <dir>', 'folder holding train.bin')
  .option('--seed <n>', 'which image', int('--seed'), 0)
  .action(async (o) => {
    const t = paperTable1(await readTrainFile(o.data), o.seed);
    process.stdout.write(`training image ${t.image}, per-image per-channel z-scoring\n| Channel | Mean | Standard deviation |\n|---|---|---|\n`);
    for (const r of t.rows) process.stdout.write(`| ${r.channel} | ${r.mean.toExponential(2)} | ${r.std.toFixed(6)} |\n`);
  });

common(program.command('reproduce').description('every table and figure of the report into one Markdown page, and the recipes beyond it (section beyond)'))
  .option('--only <sections>', `comma-separated subset of ${SECTIONS.join(',')}`, (v: string) => {
    const list = v
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    const bad = list.filter((s) => !(SECTIONS as readonly string[]).includes(s));
    if (bad.length > 0) throw new InvalidArgumentError(`unknown section${bad.length > 1 ? 's' : ''} ${bad.join(', ')}: choose from ${SECTIONS.join(', ')}`);
    return list as Section[];
  })
  .option('--out <dir>', 'report folder (never overwritten)', `runs/reproduce-${new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15)}`)
  .option('--configs <dir>', 'folder of the table and recipe configs', join('examples', 'configs'))
  .option(
    '--config <file>',
    "sections (and beyond's recipes) to run, e.g. examples/configs/reproduce.yaml; default: all sections, recipes from --configs's reproduce.yaml",
    shippedPath,
  )
  .option('--jobs <n>', `runs side by side, one core each (default: ${defaultJobs()}, the cores up to 4; 1 runs them in turn on all cores)`, positive('--jobs'))
  .option(
    '--queue <url>',
    'enqueue every run on this Redis for tapegrad worker processes, and return; --out must be a folder every worker sees at the same path',
  )
  .action(async (o, cmd: Command) => {
    o.configs = shippedPath(o.configs);
    if (o.seed !== undefined)
      throw new UsageError(
        "reproduce runs the report's configs with their own seeds: leave out --seed (or run one table with tapegrad sweep --config examples/configs/tableN.yaml --seed N)",
      );
    let recipes: string[] | undefined;
    if (o.config !== undefined) {
      const file = readReproduceFile(o.config);
      if (E.isLeft(file)) return fail(file.left);
      if (o.only === undefined) o.only = file.right.sections;
      recipes = file.right.recipes;
    }
    if (o.queue !== undefined) {
      await checkQueueUrl(o.queue);
      if (cmd.getOptionValueSource('out') !== 'cli')
        throw new UsageError(
          'reproduce --queue needs --out DIR: the report folder, on a file system every worker sees at the same path (enqueueing again into it adds nothing)',
        );
      if (o.jobs !== undefined) throw new UsageError('--jobs with --queue: say it to each worker instead (tapegrad worker --queue URL --jobs N)');
      const overrides = {
        ...(o.epochs ? { epochs: o.epochs } : {}),
        ...(o.limitTrain ? { limitTrain: o.limitTrain } : {}),
        ...(o.limitTest ? { limitTest: o.limitTest } : {}),
      };
      const r = await enqueueReport(o.out, o.queue, {
        ...(o.data ? { dataDir: o.data } : {}),
        ...(o.only ? { only: o.only } : {}),
        configDir: o.configs,
        overrides,
      });
      if (E.isLeft(r)) return fail(r.left);
      for (const s of r.right.sections)
        process.stdout.write(
          `${s.section}: ${s.rows} runs: ${s.added} enqueued now, ${s.queued} already in the queue, ${s.finished} finished; follow it: tapegrad sweep --status --out ${join(r.right.dir, s.section)} --queue URL\n`,
        );
      process.stdout.write(
        existsSync(join(r.right.dir, 'report.md'))
          ? `report: ${join(r.right.dir, 'report.md')}\n`
          : `run workers (any machine that sees ${r.right.dir}): tapegrad worker --queue URL; the worker that finishes the last run writes ${join(r.right.dir, 'report.md')}\n`,
      );
      return;
    }
    const ctl = interruptible();
    try {
      useBackend(o.backend);
    } catch (e) {
      if (e instanceof UnknownBackendError) return fail(e);
      return fail(
        new Error(`backend '${o.backend ?? process.env['TAPEGRAD_BACKEND']}' cannot be used here: ${oneLine((e as Error).message)} (try --backend cpu)`),
      );
    }
    announceBackend();
    const progress = progressReporter('reproduce');
    const multi = multiProgressReporter();
    const pool = poolFor(
      o.jobs,
      o.backend,
      { ...(o.data ? { dataDir: o.data } : {}), ...(o.backend ? { backend: o.backend } : {}), signal: ctl.signal },
      0.8 * 2 ** 30,
    );
    if (pool) process.stderr.write(`${pool.jobs} runs side by side, one core each (--jobs 1 runs them in turn on all cores)\n`);
    const overrides = {
      ...(o.epochs ? { epochs: o.epochs } : {}),
      ...(o.limitTrain ? { limitTrain: o.limitTrain } : {}),
      ...(o.limitTest ? { limitTest: o.limitTest } : {}),
    };
    const r = await reproduce(o.out, {
      ...(o.data ? { dataDir: o.data } : {}),
      ...(o.only ? { only: o.only } : {}),
      ...(recipes ? { recipes } : {}),
      configDir: o.configs,
      overrides,
      signal: ctl.signal,
      onSection: (s) => process.stderr.write(`== ${s}\n`),
      onEvent: progress,
      ...(pool ? { pool } : {}),
      onRunEvent: (section, i, n, values, e) => multi(`${section} run ${i + 1}/${n} (${values.join(', ')})`, e),
    }).finally(() => pool?.close());
    progress.stop();
    multi.stop();
    if (ctl.signal.aborted) {
      process.stderr.write(`interrupted: finished runs are kept under ${o.out}\n`);
      process.exit(130);
    }
    if (E.isLeft(r)) return fail(r.left);
    process.stdout.write(`report: ${join(o.out, 'report.md')}\n`);
  });

program
  .command('worker')
  .description('take runs of queued sweeps (tapegrad sweep --queue) from Redis and run them, until Ctrl-C or SIGTERM')
  .requiredOption('--queue <url>', 'the Redis the sweeps were enqueued on: redis://[:PASSWORD@]HOST:PORT, or rediss:// for TLS')
  .option('--jobs <n>', 'runs side by side in this process, one core each (default 1)', positive('--jobs'))
  .option('--data <dir>', 'folder holding train.bin and test.bin (else CIFAR100_DIR, else ./data); must be the data the sweep was enqueued with')
  .addOption(new Option('--backend <name>', 'matmul backend').choices(BACKENDS))
  .addOption(
    new Option('--lock-ms <ms>', "a job's lock: a killed worker's job is taken over after about this long").argParser(positive('--lock-ms')).default(30_000),
  )
  .addOption(new Option('--stalled-ms <ms>', 'how often to look for jobs whose worker was lost').argParser(positive('--stalled-ms')).default(30_000))
  .action(async (o) => {
    await checkQueueUrl(o.queue);
    const ctl = interruptible();
    const { runWorker } = await queueModule();
    const multi = multiProgressReporter();
    const say = (line: string) => process.stderr.write(`${line}\n`);
    const { jobs, note } = capJobs(o.jobs ?? 1, 0.8 * 2 ** 30);
    if (note !== undefined) process.stderr.write(`note: ${note}\n`);
    const r = await runWorker(o.queue, {
      jobs,
      ...(o.data ? { dataDir: o.data } : {}),
      ...(o.backend ? { backend: o.backend } : {}),
      lockDurationMs: o.lockMs,
      stalledIntervalMs: o.stalledMs,
      signal: ctl.signal,
      onLine: say,
      onRunEvent: (label, e) => multi(label, e),
    });
    multi.stop();
    if (E.isLeft(r)) return fail(r.left);
    if (r.right.refused !== undefined) return fail(new Error(r.right.refused));
    say(`worker stopped: ${r.right.trained} runs trained${r.right.interrupted > 0 ? `, ${r.right.interrupted} stopped and put back in the queue` : ''}`);
    process.exit(r.right.interrupted > 0 ? 130 : 0);
  });

program
  .command('status')
  .description('what run folders are doing: running, finished, interrupted, killed (detected and recorded), failed or diverged')
  .argument('<dirs...>', 'run folders')
  .action((dirs: string[]) => {
    let bad = 0;
    for (const d of dirs) {
      const s = runStatus(d);
      if (E.isLeft(s)) {
        process.stderr.write(`tapegrad: ${oneLine(s.left.message)}\n`);
        bad++;
      } else process.stdout.write(`${s.right.line}\n`);
    }
    if (bad > 0) process.exit(1);
  });

program
  .command('download')
  .description('download and verify CIFAR-100 (binary version) into ./data/cifar-100-binary, or --data DIR')
  .option(
    '--data <dir>',
    'the folder to hold train.bin and test.bin (new or empty; else CIFAR100_DIR, else ./data/cifar-100-binary); then pass the same --data to train',
  )
  .action(async (o) => {
    const bar = process.stderr.isTTY
      ? new cliProgress.SingleBar(
          { format: 'download [{bar}] {percentage}% | {value}/{total} bytes | ETA {eta_formatted}' },
          cliProgress.Presets.shades_classic,
        )
      : undefined;
    let started = false;
    const r = await downloadCifar100Into(o.data, {
      onProgress: (got, total) => {
        if (bar && !started && total) {
          bar.start(total, got);
          started = true;
        }
        bar?.update(got);
      },
    });
    bar?.stop();
    if (E.isLeft(r)) return fail(r.left);
    process.stdout.write(`CIFAR-100 ready in ${r.right}\n`);
  });

/** Anything not foreseen is still one line (and exit 1); TAPEGRAD_DEBUG=1 shows where it came from. */
const internalError = (e: unknown): never => {
  const err = e instanceof Error ? e : new Error(String(e));
  process.stderr.write(`tapegrad: ${oneLine(err.message)} (an unexpected error; TAPEGRAD_DEBUG=1 prints where it came from)\n`);
  if (process.env['TAPEGRAD_DEBUG'] === '1' && err.stack !== undefined) process.stderr.write(`${err.stack}\n`);
  process.exit(1);
};
process.on('uncaughtException', internalError);
process.on('unhandledRejection', internalError);

const main = async (): Promise<void> => {
  try {
    await program.parseAsync(process.argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      process.exit(e.exitCode === 0 ? 0 : 2);
    }
    if (e instanceof UsageError || e instanceof ConfigError || e instanceof UnknownBackendError) fail(e);
    internalError(e);
  }
};

// The cpu backend's worker must not outlive a finished command.
void main().then(disposeBackends, internalError);
