/**
 * Runs of a sweep side by side: a pool of worker threads, each training one run
 * at a time on one core (TAPEGRAD_THREADS=1), fed from one queue.
 *
 * Why: on two cores, two one-thread runs train ~1.4x as many epochs per second
 * as one run on two threads (the second thread of a product waits on the first,
 * and the element-wise work between products runs on one core). The numbers do
 * not change: the cpu backend gives bit-identical products on one thread and two.
 *
 * Each worker keeps the data it loaded for its next run (one data set at a
 * time), reports progress as events, and stops after its current batch when the
 * pool is aborted; runs still queued then are reported as interrupted, not run.
 */
import * as E from 'fp-ts/lib/Either.js';
import { availableParallelism, totalmem } from 'node:os';
import { Worker } from 'node:worker_threads';
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { whileOpen } from './runfolder.js';
import type { EpochRecord, FitEvent } from '../nn/index.js';
import type { ResolvedConfig } from './config.js';
import { DivergedError, type RunOptions, type RunResult } from './run.js';

/** A fit event as it crosses threads: the epoch's state (tensors) stays behind. */
export type ProgressEvent =
  | Exclude<FitEvent, { readonly type: 'epoch' }>
  | { readonly type: 'epoch'; readonly record: EpochRecord; readonly improved: boolean };

/** One run for the pool: a new one from a config, or one to continue from its folder. */
export interface RunTask {
  readonly config?: ResolvedConfig;
  readonly outDir?: string;
  readonly resumeDir?: string;
  /** Progress of this run. */
  readonly onEvent?: (e: ProgressEvent) => void;
}

/** What crosses into a worker of RunOptions (functions and caches stay here). */
export type PortableOptions = Pick<RunOptions, 'dataDir' | 'plots' | 'backend' | 'runsDir'>;

/** What the pool sends a worker (run-worker.ts). */
export type ToWorker =
  | {
      readonly type: 'run';
      readonly id: number;
      readonly config?: ResolvedConfig;
      readonly outDir?: string;
      readonly resumeDir?: string;
      readonly opts: PortableOptions;
    }
  | { readonly type: 'abort' };
export type FromWorker =
  | { readonly type: 'event'; readonly id: number; readonly event: ProgressEvent }
  | {
      readonly type: 'done';
      readonly id: number;
      readonly result: E.Either<{ readonly message: string; readonly diverged?: { readonly dir: string; readonly epoch: number } }, RunResult>;
    };

/** The default number of runs side by side: the cores, at most 4 (each run holds its own copy of the data, ~0.7 GiB). */
export const defaultJobs = (): number => Math.max(1, Math.min(availableParallelism(), 4));

/**
 * `--jobs` as the machine can take it: at most one run per core (a second run
 * on a core only halves both), and only as many as fit in 80% of the memory at
 * `perRunBytes` each. `note` says what was capped and why.
 */
export const capJobs = (requested: number, perRunBytes: number, cores = availableParallelism(), memory = totalmem()): { jobs: number; note?: string } => {
  const byMemory = Math.max(1, Math.floor((memory * 0.8) / Math.max(perRunBytes, 1)));
  const jobs = Math.max(1, Math.min(requested, cores, byMemory));
  if (jobs === requested) return { jobs };
  const why =
    jobs === cores && cores <= byMemory
      ? `${cores} cores`
      : `memory for ${byMemory} runs of ~${(perRunBytes / 2 ** 30).toFixed(1)} GiB in 80% of ${(memory / 2 ** 30).toFixed(1)} GiB`;
  return { jobs, note: `--jobs ${requested}: running ${jobs} side by side (this machine has ${why})` };
};

/**
 * Starts a worker on run-worker: the built .js, or, when this module runs from
 * its TypeScript source (tests), the .ts through tsx's loader.
 */
const startWorker = (env: NodeJS.ProcessEnv): Worker => {
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./run-worker.js', import.meta.url), { env });
  const url = new URL('./run-worker.ts', import.meta.url).href;
  // tsx resolved from here, not from the process's working folder (a queue worker runs anywhere).
  const tsx = import.meta.resolve('tsx/esm/api');
  const source = `import(${JSON.stringify(tsx)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(url)}); });`;
  return new Worker(source, { eval: true, env });
};

interface Slot {
  worker: Worker;
  busy: { readonly id: number; readonly task: RunTask; readonly resolve: (r: E.Either<Error, RunResult>) => void } | undefined;
}

export interface RunPool {
  readonly jobs: number;
  /** Queues a run; resolves when it has finished, failed or been interrupted. */
  run(task: RunTask): Promise<E.Either<Error, RunResult>>;
  /** Stops every run after its current batch (checkpoints kept) and drops the queue. */
  abort(): void;
  /** Ends the workers. */
  close(): Promise<void>;
}

/** An interrupted run that never started: the sweep sees it as unfinished. */
const notStarted = (task: RunTask): E.Either<Error, RunResult> => E.left(new Error(`interrupted before ${task.outDir ?? task.resumeDir ?? 'a run'} started`));

/**
 * A pool of `jobs` worker threads training runs with `opts` (data folder,
 * backend, plots). An aborted `signal` aborts the pool.
 */
export const createRunPool = (jobs: number, opts: RunOptions = {}): RunPool => {
  if (!Number.isInteger(jobs) || jobs < 1) throw new RangeError(`jobs must be a whole number ≥ 1, got ${jobs}`);
  const portable: PortableOptions = {
    ...(opts.dataDir !== undefined ? { dataDir: opts.dataDir } : {}),
    ...(opts.plots !== undefined ? { plots: opts.plots } : {}),
    ...(opts.backend !== undefined ? { backend: opts.backend } : {}),
    ...(opts.runsDir !== undefined ? { runsDir: opts.runsDir } : {}),
  };
  // One core per run, unless the user asked for threads explicitly.
  const env = { ...process.env, TAPEGRAD_THREADS: process.env['TAPEGRAD_THREADS'] ?? (jobs > 1 ? '1' : '') };
  const queue: Array<{ id: number; task: RunTask; resolve: (r: E.Either<Error, RunResult>) => void }> = [];
  let nextId = 1;
  let aborted = false;

  const slots: Slot[] = [];
  const dispatch = (): void => {
    for (const slot of slots) {
      if (slot.busy !== undefined) continue;
      const job = queue.shift();
      if (job === undefined) return;
      slot.busy = job;
      const { config, outDir, resumeDir } = job.task;
      const msg: ToWorker = {
        type: 'run',
        id: job.id,
        opts: portable,
        ...(config !== undefined ? { config } : {}),
        ...(outDir !== undefined ? { outDir } : {}),
        ...(resumeDir !== undefined ? { resumeDir } : {}),
      };
      slot.worker.postMessage(msg);
    }
  };

  let closing = false;
  /** Listens to `slot`'s thread; one that fails is replaced, so a long-lived pool (a queue worker) keeps its size. */
  const wire = (slot: Slot): void => {
    const worker = slot.worker;
    worker.on('message', (m: FromWorker) => {
      const job = slot.busy;
      if (job === undefined || m.id !== job.id) return;
      if (m.type === 'event') {
        job.task.onEvent?.(m.event);
      } else {
        slot.busy = undefined;
        const res = m.result;
        job.resolve(
          E.isLeft(res)
            ? E.left(
                res.left.diverged !== undefined
                  ? new DivergedError(res.left.diverged.dir, res.left.diverged.epoch, res.left.message)
                  : new Error(res.left.message),
              )
            : res,
        );
        dispatch();
      }
    });
    worker.on('error', (err) => {
      const job = slot.busy;
      slot.busy = undefined;
      job?.resolve(E.left(new Error(`a worker thread failed during ${job.task.outDir ?? job.task.resumeDir}: ${err.message}`)));
      if (!closing) {
        void worker.terminate();
        slot.worker = startWorker(env);
        wire(slot);
        dispatch();
      }
    });
  };
  for (let i = 0; i < jobs; i++) {
    const slot: Slot = { worker: startWorker(env), busy: undefined };
    wire(slot);
    slots.push(slot);
  }

  // Workers die with the process without running their exit hooks: a process ending with runs
  // still busy (a second Ctrl-C) records them here as interrupted and frees their folders.
  const unhook = whileOpen((code) => {
    for (const slot of slots) {
      const dir = slot.busy?.task.outDir ?? slot.busy?.task.resumeDir;
      if (dir === undefined) continue;
      try {
        const lock = JSON.parse(readFileSync(join(dir, 'run.lock'), 'utf8')) as { pid?: number };
        if (lock.pid !== process.pid) continue;
        const run = JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')) as Record<string, unknown>;
        if (run['status'] === 'running') {
          writeFileSync(
            join(dir, '.run.json.exit.tmp'),
            JSON.stringify({ ...run, status: code === 130 ? 'interrupted' : 'failed', exitCode: code, ended: new Date().toISOString() }, null, 2),
          );
          renameSync(join(dir, '.run.json.exit.tmp'), join(dir, 'run.json'));
        }
        rmSync(join(dir, 'run.lock'), { force: true });
      } catch {
        /* not started yet, or already finished: nothing to record */
      }
    }
  });

  const pool: RunPool = {
    jobs,
    run: (task) =>
      new Promise((resolve) => {
        if (aborted) {
          resolve(notStarted(task));
          return;
        }
        queue.push({ id: nextId++, task, resolve });
        dispatch();
      }),
    abort: () => {
      aborted = true;
      for (const job of queue.splice(0)) job.resolve(notStarted(job.task));
      for (const slot of slots) slot.worker.postMessage({ type: 'abort' } satisfies ToWorker);
    },
    close: async () => {
      closing = true;
      unhook();
      pool.abort();
      await Promise.all(slots.map((s) => s.worker.terminate()));
    },
  };
  opts.signal?.addEventListener('abort', () => pool.abort(), { once: true });
  return pool;
};
