/**
 * Sweeps on many machines: one BullMQ job per run of a sweep, in Redis, taken
 * by `tapegrad worker` processes on any machine that sees the sweep's folder
 * at the same path (a shared file system, as clusters have).
 *
 * Why BullMQ: it is a maintained engine whose semantics are the ones a sweep
 * needs — a job id makes adding idempotent, a worker holds a lock on its job
 * that it renews, and a job whose lock lapses (its worker was killed) is found
 * by the stalled-job check and handed to another worker. What BullMQ does not
 * hold is the work: results, checkpoints and tables live in the sweep folder,
 * written by the same code as local sweeps (run folders, locks, sealed
 * checkpoints), so a lost or restarted Redis loses no finished run.
 *
 * - A job is data, never code: `{sweep folder, row, resolved config, tapegrad
 *   version, data checksum}`, decoded with io-ts, and its config with the
 *   worker's own config decoder; it must equal the row of the folder's sweep.json.
 * - Its id is derived from the sweep and the config, so enqueueing twice adds
 *   nothing; rows whose folder holds a result are not enqueued at all.
 * - A retried job finds its run folder (the same name on every machine) and
 *   resumes from the last checkpoint: a killed worker loses at most one epoch.
 * - The worker that finishes a sweep's last run writes its table, from the
 *   results on disk alone (sweep.ts, `collectOnly`), under the sweep's lock;
 *   a second finisher reads the table back instead of writing it.
 *
 * bullmq and ioredis are optional: they are imported here only, on demand, and
 * the library's entries never import this module.
 */
import * as E from 'fp-ts/lib/Either.js';
import * as t from 'io-ts';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import type { Job, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { ensureCifar100, sha256File } from '../data/index.js';
import { jsonChecksum, writeFileAtomic } from '../nn/index.js';
import { describeErrors } from '../nn/codecs.js';
import { configDiff, decodeConfig, expandGrid, type RawConfig, type ResolvedConfig } from './config.js';
import { createRunPool, type ProgressEvent, type RunPool, type RunTask } from './parallel.js';
import { DivergedError, readFinishedRun, readRunConfig, type RunResult } from './run.js';
import { liveHolder, RUN_LOCK, type LockInfo } from './runfolder.js';
import { finishQueuedReport, REPORT_QUEUE_FILE } from './reproduce.js';
import { prepareSweepFolder, readSweepConfig, runFolderName, runSweep, sweepRecord } from './sweep.js';

/** The BullMQ queue every sweep's jobs go to (jobs name their sweep). */
export const QUEUE_NAME = 'tapegrad-runs';
const JOB_FORMAT = 'tapegrad.job';

/** Attempts for a job that fails for a reason outside the run (a file system, a crashed thread); run-level failures are not retried. */
const ATTEMPTS = 3;

// ---------------------------------------------------------------------------
// Connecting

/** A checked `--queue` URL, and the same with its password hidden (for messages). */
export interface QueueUrl {
  readonly url: string;
  readonly shown: string;
}

/** Accepts `redis://[user][:password]@host:port[/db]` and `rediss://…` (TLS); anything else is refused by name. */
export const parseQueueUrl = (url: string): E.Either<Error, QueueUrl> => {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return E.left(new Error(`--queue '${url}' is not a URL: give redis://HOST:PORT (or rediss://… for TLS)`));
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:')
    return E.left(new Error(`--queue '${u.protocol}…' is not a Redis URL: give redis://HOST:PORT (or rediss://… for TLS)`));
  if (u.hostname === '') return E.left(new Error('--queue names no host: give redis://HOST:PORT'));
  const shown = new URL(u.href);
  if (shown.password !== '') shown.password = '***';
  return E.right({ url: u.href, shown: shown.href.replace(/\/$/, '') });
};

type Bull = typeof import('bullmq');
interface Libs {
  readonly bull: Bull;
  readonly Redis: typeof import('ioredis').Redis;
}

const loadLibs = async (): Promise<E.Either<Error, Libs>> => {
  try {
    const [bull, io] = await Promise.all([import('bullmq'), import('ioredis')]);
    return E.right({ bull, Redis: io.Redis });
  } catch (e) {
    return E.left(new Error(`the queue needs the packages bullmq and ioredis (${(e as Error).message.split('\n')[0]}): npm install bullmq ioredis`));
  }
};

/**
 * A Redis connection that is up now (or a `Left` saying why not within
 * `timeoutMs`). `persistent` connections (workers) reconnect for ever after
 * that, so a restarted Redis is rejoined; others give up at once.
 */
const connect = async (libs: Libs, q: QueueUrl, persistent: boolean, timeoutMs = 5000): Promise<E.Either<Error, Redis>> => {
  let lastError = '';
  const redis = new libs.Redis(q.url, {
    maxRetriesPerRequest: null,
    lazyConnect: true,
    retryStrategy: persistent ? (times: number) => Math.min(times * 200, 2000) : () => null,
  });
  redis.on('error', (e: Error) => {
    lastError = e.message;
  });
  const timer = new Promise<'timeout'>((res) => setTimeout(() => res('timeout'), timeoutMs).unref());
  try {
    const r = await Promise.race([redis.connect().then(() => redis.ping()), timer]);
    if (r === 'timeout') throw new Error(lastError || `no answer in ${timeoutMs / 1000} s`);
    return E.right(redis);
  } catch (e) {
    redis.disconnect();
    const why = (lastError || (e as Error).message).split('\n')[0]!.replace(q.url, q.shown);
    return E.left(
      new Error(`cannot reach Redis at ${q.shown} (${why}): start redis-server there, or check --queue (host, port, password, redis:// or rediss://)`),
    );
  }
};

// ---------------------------------------------------------------------------
// What a job is

/** This tapegrad's version (a job made by another is refused). */
export const tapegradVersion = (): string => (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** One checksum of the data a run reads (train.bin and test.bin), so workers on other data are caught. */
export const dataChecksum = async (dir: string): Promise<string> => {
  const parts = await Promise.all(['train.bin', 'test.bin'].map(async (f) => `${f} ${await sha256File(join(dir, f))}`));
  return createHash('sha256').update(parts.join('\n')).digest('hex');
};

const ValueC = t.union([t.number, t.string, t.boolean]);
/** What a job carries: where, which row, the config to run, and what made it. */
export const JobDataC = t.exact(
  t.type({
    format: t.literal(JOB_FORMAT),
    sweepId: t.string,
    sweepDir: t.string,
    row: t.number,
    values: t.array(ValueC),
    config: t.unknown,
    version: t.string,
    dataSha256: t.string,
  }),
);
export type JobData = t.TypeOf<typeof JobDataC>;

/** A sweep's id: its folder and its config, so the same config into another folder is another sweep. */
export const sweepIdOf = (raw: RawConfig, dir: string): string => jsonChecksum({ dir: resolve(dir), record: sweepRecord(raw) }).slice(0, 16);

/** A job's id: the sweep, the row and the resolved config (BullMQ ignores an add whose id it holds). */
export const jobIdOf = (sweepId: string, row: number, c: ResolvedConfig): string => `${sweepId}-${row + 1}-${jsonChecksum(c).slice(0, 16)}`;

/** A sweep's rows, each decoded: the configs the jobs carry. */
const sweepRows = (raw: RawConfig): E.Either<Error, { values: (number | string | boolean)[]; config: ResolvedConfig }[]> => {
  let combos: ReturnType<typeof expandGrid>;
  try {
    combos = expandGrid(raw);
  } catch (e) {
    return E.left(e as Error);
  }
  const rows: { values: (number | string | boolean)[]; config: ResolvedConfig }[] = [];
  for (const c of combos) {
    const d = decodeConfig(c.config, `${raw.name} with ${c.values.join(', ')}`);
    if (E.isLeft(d)) return d;
    rows.push({ values: c.values, config: d.right });
  }
  return E.right(rows);
};

// ---------------------------------------------------------------------------
// Enqueueing

export interface EnqueueResult {
  readonly dir: string;
  readonly sweepId: string;
  readonly rows: number;
  /** Jobs added now (with those done in the queue whose result is no longer on disk). */
  readonly added: number;
  /** Jobs the queue already held (waiting, running or done). */
  readonly queued: number;
  /** Failed jobs put back to run again. */
  readonly retried: number;
  /** Rows whose folder already holds a result (never enqueued). */
  readonly finished: number;
  /** The table, when every run had finished (written now if it was not yet). */
  readonly table?: string;
}

/**
 * Enqueues one job per row of a sweep whose folder is `dir` (shared by every
 * worker). Idempotent: rows with a result and jobs the queue holds are left
 * alone, failed jobs are put back. Writes the table when every run has finished.
 */
export const enqueueSweep = async (
  raw: RawConfig,
  dir: string,
  queueUrl: string,
  opts: { readonly dataDir?: string } = {},
): Promise<E.Either<Error, EnqueueResult>> => {
  if (raw.sweep === undefined) return E.left(new Error(`config '${raw.name}' has no 'sweep:' section: use 'tapegrad train' for a single run`));
  const q = parseQueueUrl(queueUrl);
  if (E.isLeft(q)) return q;
  const rows = sweepRows(raw);
  if (E.isLeft(rows)) return rows;
  const abs = resolve(dir);
  const prepared = prepareSweepFolder(raw, abs);
  if (E.isLeft(prepared)) return prepared;
  const sweepId = sweepIdOf(raw, abs);
  const base = { dir: abs, sweepId, rows: rows.right.length, added: 0, queued: 0, retried: 0 };
  if (prepared.right.finished) return E.right({ ...base, finished: rows.right.length, table: join(abs, 'table.md') });
  const dataDir = await ensureCifar100(opts.dataDir);
  if (E.isLeft(dataDir)) return dataDir;
  const provenance = { version: tapegradVersion(), dataSha256: await dataChecksum(dataDir.right) };
  const libs = await loadLibs();
  if (E.isLeft(libs)) return libs;
  const redis = await connect(libs.right, q.right, false);
  if (E.isLeft(redis)) return redis;
  const queue = new libs.right.bull.Queue(QUEUE_NAME, { connection: redis.right });
  let added = 0,
    queued = 0,
    retried = 0,
    finished = 0;
  try {
    for (const [row, { values, config }] of rows.right.entries()) {
      if (existsSync(join(abs, runFolderName(row, values), 'result.json'))) {
        finished++;
        continue;
      }
      const id = jobIdOf(sweepId, row, config);
      const held = await queue.getJob(id);
      if (held !== undefined) {
        const state = await held.getState();
        if (state === 'failed') {
          await held.retry('failed');
          retried++;
          continue;
        }
        if (state !== 'completed') {
          queued++;
          continue;
        }
        // Done in the queue, yet no result on disk (the folder was removed and made again): run it again.
        await held.remove();
      }
      const data: JobData = { format: JOB_FORMAT, sweepId, sweepDir: abs, row, values, config, ...provenance };
      // removeOn*: false keeps every job's record, so enqueueing again finds it instead of running the row twice.
      await queue.add('run', data, {
        jobId: id,
        attempts: ATTEMPTS,
        backoff: { type: 'exponential', delay: 5000 },
        removeOnComplete: false,
        removeOnFail: false,
      });
      added++;
    }
  } catch (e) {
    return E.left(new Error(`Redis at ${q.right.shown}: ${(e as Error).message.split('\n')[0]}`));
  } finally {
    await queue.close().catch(() => undefined);
    redis.right.disconnect();
  }
  let table: string | undefined;
  if (finished === rows.right.length) {
    const f = await finishSweep(abs, opts.dataDir);
    if (E.isLeft(f)) return f;
    if (f.right === 'written') table = join(abs, 'table.md');
  }
  return E.right({ ...base, added, queued, retried, finished, ...(table !== undefined ? { table } : {}) });
};

// ---------------------------------------------------------------------------
// Finishing

/**
 * Writes a sweep's table when every run has a result, from the results alone;
 * `pending` while some run has none, `busy` while another process writes it,
 * `already` when it was written before.
 * Then, for a sweep of a report (reproduce --queue), the report likewise.
 */
export const finishSweep = async (dir: string, dataDir?: string): Promise<E.Either<Error, 'written' | 'already' | 'pending' | 'busy'>> => {
  const raw = readSweepConfig(dir);
  if (E.isLeft(raw)) return raw;
  let combos: ReturnType<typeof expandGrid>;
  try {
    combos = expandGrid(raw.right);
  } catch (e) {
    return E.left(e as Error);
  }
  if (combos.some((c, i) => !existsSync(join(dir, runFolderName(i, c.values), 'result.json')))) return E.right('pending');
  // Another finisher holding the sweep's lock is writing the same table: leave it to it.
  const r = await runSweep(raw.right, { outDir: dir, collectOnly: true, reuseFinished: true });
  if (E.isLeft(r)) return /is in use by/.test(r.left.message) ? E.right('busy') : r;
  if (r.right.reused) return E.right('already');
  const report = await finishReport(dirname(dir), dataDir);
  if (E.isLeft(report)) return E.left(new Error(`${dirname(dir)}: the report could not be written: ${report.left.message}`));
  return E.right('written');
};

/** For a sweep of a queued report: the report, once every section's table is written (reproduce.ts decides). */
const finishReport = async (reportDir: string, dataDir: string | undefined): Promise<E.Either<Error, void>> => {
  if (!existsSync(join(reportDir, REPORT_QUEUE_FILE)) || existsSync(join(reportDir, 'report.md'))) return E.right(undefined);
  return finishQueuedReport(reportDir, dataDir);
};

// ---------------------------------------------------------------------------
// Status

export type RowState = 'finished' | 'diverged' | 'running' | 'queued' | 'failed' | 'not queued';
export interface RowStatus {
  readonly row: number;
  readonly values: readonly (number | string | boolean)[];
  readonly state: RowState;
  /** What to show beside the state: accuracies, epoch and worker, or the failure. */
  readonly detail: string;
  /** Epochs done and planned, for a running row. */
  readonly progress?: { readonly epoch: number; readonly epochs: number };
}
export interface SweepStatus {
  readonly dir: string;
  readonly sweepId: string;
  readonly rows: readonly RowStatus[];
  readonly table: string | undefined;
}

const pct = (x: number) => `${(x * 100).toFixed(2)}%`;

/** Where each row of the sweep in `dir` stands: results on disk first, else its job in the queue. */
export const sweepStatus = async (dir: string, queueUrl: string): Promise<E.Either<Error, SweepStatus>> => {
  const q = parseQueueUrl(queueUrl);
  if (E.isLeft(q)) return q;
  const abs = resolve(dir);
  const raw = readSweepConfig(abs);
  if (E.isLeft(raw)) return raw;
  const rows = sweepRows(raw.right);
  if (E.isLeft(rows)) return rows;
  const sweepId = sweepIdOf(raw.right, abs);
  const libs = await loadLibs();
  if (E.isLeft(libs)) return libs;
  const redis = await connect(libs.right, q.right, false);
  if (E.isLeft(redis)) return redis;
  const queue = new libs.right.bull.Queue(QUEUE_NAME, { connection: redis.right });
  try {
    const out: RowStatus[] = [];
    for (const [row, { values, config }] of rows.right.entries()) {
      const done = readFinishedRun(join(abs, runFolderName(row, values)));
      if (done !== undefined) {
        out.push(
          E.isRight(done)
            ? { row, values, state: 'finished', detail: `validation ${pct(done.right.valAccuracy)}, test ${pct(done.right.testAccuracy)}` }
            : done.left instanceof DivergedError
              ? { row, values, state: 'diverged', detail: `diverged at epoch ${done.left.epoch}` }
              : { row, values, state: 'failed', detail: done.left.message },
        );
        continue;
      }
      const job = await queue.getJob(jobIdOf(sweepId, row, config));
      if (job === undefined) {
        out.push({ row, values, state: 'not queued', detail: 'not in the queue: run tapegrad sweep --queue again to enqueue it' });
        continue;
      }
      const state = await job.getState();
      const p = job.progress as { epoch?: unknown; epochs?: unknown };
      const progress =
        typeof p === 'object' && p !== null && typeof p.epoch === 'number' && typeof p.epochs === 'number' ? { epoch: p.epoch, epochs: p.epochs } : undefined;
      if (state === 'active') {
        out.push({
          row,
          values,
          state: 'running',
          detail: `${job.processedBy ?? 'a worker'}${progress ? `, epoch ${progress.epoch}/${progress.epochs}` : ''}`,
          ...(progress ? { progress } : {}),
        });
      } else if (state === 'failed') {
        out.push({ row, values, state: 'failed', detail: `${job.failedReason} (after ${job.attemptsMade} attempts)` });
      } else if (state === 'completed') {
        out.push({
          row,
          values,
          state: 'failed',
          detail: `the queue says done, but ${join(abs, runFolderName(row, values))} holds no result: is the folder shared with the workers?`,
        });
      } else {
        out.push({
          row,
          values,
          state: 'queued',
          detail: `${state}${job.attemptsStarted > 0 ? `, started ${job.attemptsStarted} times so far` : ''}${progress ? `, ${progress.epoch} epochs saved` : ''}`,
        });
      }
    }
    return E.right({ dir: abs, sweepId, rows: out, table: existsSync(join(abs, 'table.md')) ? join(abs, 'table.md') : undefined });
  } catch (e) {
    return E.left(new Error(`Redis at ${q.right.shown}: ${(e as Error).message.split('\n')[0]}`));
  } finally {
    await queue.close().catch(() => undefined);
    redis.right.disconnect();
  }
};

// ---------------------------------------------------------------------------
// Working

export interface WorkerOptions {
  /** Runs side by side in this process (one worker thread each). */
  readonly jobs?: number;
  readonly dataDir?: string;
  readonly backend?: string;
  readonly plots?: boolean;
  /** How long a job's lock lasts without renewal (ms): a killed worker's job is taken over after about this long. */
  readonly lockDurationMs?: number;
  /** How often this worker looks for jobs whose lock lapsed (ms). */
  readonly stalledIntervalMs?: number;
  /** Aborted: stop taking jobs, stop the runs after their batch (checkpoints kept) and put their jobs back. */
  readonly signal?: AbortSignal;
  /** A line worth a log (a job taken, finished, refused; a sweep's table written). */
  readonly onLine?: (line: string) => void;
  /** Progress of one run, labelled. */
  readonly onRunEvent?: (label: string, e: ProgressEvent) => void;
}

export interface WorkerResult {
  /** Runs this process trained to their end (not those it found finished). */
  readonly trained: number;
  /** Runs stopped by the signal; their jobs went back to the queue. */
  readonly interrupted: number;
  /** Set when the worker stopped because a job was made by another tapegrad or for other data. */
  readonly refused?: string;
}

/**
 * Frees a run folder whose holder on another machine lost its job (the queue
 * handed the job out again), so this worker can resume it: run.json says
 * `killed`, as for a dead process here, and the lock goes if it is still that holder's.
 */
const breakLock = (runDir: string, holder: LockInfo): void => {
  const file = join(runDir, 'run.json');
  try {
    const run = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    if (run['status'] === 'running')
      writeFileAtomic(
        file,
        JSON.stringify({ ...run, status: 'killed', killedProcess: holder.pid, killedHost: holder.host, detected: new Date().toISOString() }, null, 2),
      );
  } catch {
    /* no run.json yet: nothing to record */
  }
  try {
    const now = JSON.parse(readFileSync(join(runDir, RUN_LOCK), 'utf8')) as LockInfo;
    if (now.pid === holder.pid && now.host === holder.host && now.started === holder.started) rmSync(join(runDir, RUN_LOCK), { force: true });
  } catch {
    /* gone already */
  }
};

/**
 * Takes jobs from the queue at `queueUrl` and runs them until `opts.signal`
 * aborts (or a job is refused: made by another tapegrad version or for other
 * data; it goes back to the queue for a matching worker).
 */
export const runWorker = async (queueUrl: string, opts: WorkerOptions = {}): Promise<E.Either<Error, WorkerResult>> => {
  const q = parseQueueUrl(queueUrl);
  if (E.isLeft(q)) return q;
  const jobs = opts.jobs ?? 1;
  const lockDuration = opts.lockDurationMs ?? 30_000;
  const dataDir = await ensureCifar100(opts.dataDir);
  if (E.isLeft(dataDir)) return dataDir;
  const here = { version: tapegradVersion(), dataSha256: await dataChecksum(dataDir.right) };
  const libs = await loadLibs();
  if (E.isLeft(libs)) return libs;
  const { UnrecoverableError, DelayedError } = libs.right.bull;
  const redis = await connect(libs.right, q.right, true);
  if (E.isLeft(redis)) return redis;
  const say = (line: string) => opts.onLine?.(line);
  let lastRedisError = '';
  redis.right.on('error', (e: Error) => {
    if (e.message !== lastRedisError) {
      lastRedisError = e.message;
      say(`Redis at ${q.right.shown}: ${e.message.replace(q.right.url, q.right.shown)} (reconnecting)`);
    }
  });
  redis.right.on('ready', () => {
    if (lastRedisError !== '') {
      lastRedisError = '';
      say(`Redis at ${q.right.shown}: connected again`);
    }
  });

  const pool: RunPool = createRunPool(jobs, {
    dataDir: dataDir.right,
    ...(opts.backend !== undefined ? { backend: opts.backend } : {}),
    ...(opts.plots !== undefined ? { plots: opts.plots } : {}),
  });
  let stopping = false;
  let refused: string | undefined;
  let trained = 0,
    interrupted = 0;
  let stop: () => void = () => undefined;
  const stopped = new Promise<void>((res) => {
    stop = () => {
      stopping = true;
      res();
    };
  });
  opts.signal?.addEventListener(
    'abort',
    () => {
      stop();
      pool.abort();
    },
    { once: true },
  );

  /** Puts a job back for another worker (or this one later) without using up an attempt. */
  const putBack = async (job: Job, token: string | undefined, delayMs: number): Promise<never> => {
    await job.moveToDelayed(Date.now() + delayMs, token);
    throw new DelayedError();
  };

  const processor = async (job: Job, token?: string): Promise<{ outcome: string; valAccuracy?: number; testAccuracy?: number }> => {
    if (stopping) return putBack(job, token, 0);
    const d = JobDataC.decode(job.data);
    if (E.isLeft(d)) throw new UnrecoverableError(`job ${job.id} is not a tapegrad job (${describeErrors(d.left)})`);
    const data = d.right;
    if (data.version !== here.version || data.dataSha256 !== here.dataSha256) {
      refused =
        `job ${job.id} of ${data.sweepDir} was made by tapegrad ${data.version} for data ${data.dataSha256.slice(0, 12)}…, but this worker is tapegrad ${here.version} ` +
        `with data ${here.dataSha256.slice(0, 12)}… (${dataDir.right}): start workers with the sweep's tapegrad version and data (--data); the job stays queued for them`;
      stop();
      return putBack(job, token, 2000);
    }
    const decoded = decodeConfig(data.config, `job ${job.id}`);
    if (E.isLeft(decoded)) throw new UnrecoverableError(decoded.left.message.split('\n').join('; '));
    const config = decoded.right;
    if (!isAbsolute(data.sweepDir) || !existsSync(join(data.sweepDir, 'sweep.json'))) {
      throw new Error(`${data.sweepDir}: no sweep folder on ${hostname()}: every worker must see the sweep's folder at the same path (a shared file system)`);
    }
    // The job must be a row of the sweep its folder records: a worker runs no config the sweep did not ask for.
    const raw = readSweepConfig(data.sweepDir);
    if (E.isLeft(raw)) throw new UnrecoverableError(raw.left.message);
    const rows = sweepRows(raw.right);
    if (E.isLeft(rows)) throw new UnrecoverableError(rows.left.message);
    const mine = rows.right[data.row];
    const diff = mine === undefined ? ['row'] : configDiff(mine.config, config);
    if (!Number.isInteger(data.row) || mine === undefined || diff.length > 0) {
      throw new UnrecoverableError(
        `job ${job.id}: its config is not row ${data.row + 1} of the sweep in ${data.sweepDir} (${diff.slice(0, 3).join('; ')}): enqueue the sweep again with tapegrad sweep --queue`,
      );
    }
    const runDir = join(data.sweepDir, runFolderName(data.row, data.values));
    const label = `row ${data.row + 1}/${rows.right.length} (${data.values.join(', ')})`;
    const done = readFinishedRun(runDir);
    const summary = (r: E.Either<Error, RunResult>) =>
      E.isRight(r) ? { outcome: 'finished', valAccuracy: r.right.valAccuracy, testAccuracy: r.right.testAccuracy } : { outcome: 'diverged' };
    const afterRun = async () => {
      const f = await finishSweep(data.sweepDir, dataDir.right);
      if (E.isLeft(f)) say(`${data.sweepDir}: the table could not be written: ${f.left.message}`);
      else if (f.right === 'written') {
        say(`${data.sweepDir}: every run finished; table written: ${join(data.sweepDir, 'table.md')}`);
        const report = join(dirname(data.sweepDir), 'report.md');
        if (existsSync(join(dirname(data.sweepDir), REPORT_QUEUE_FILE)) && existsSync(report))
          say(`every table of the report finished; report written: ${report}`);
      }
    };
    if (done !== undefined) {
      if (E.isLeft(done) && !(done.left instanceof DivergedError)) throw new UnrecoverableError(done.left.message);
      say(`${label}: already finished in ${runDir}; nothing to run`);
      await afterRun();
      return summary(done);
    }
    let task: RunTask;
    if (existsSync(join(runDir, 'config.json'))) {
      const stored = readRunConfig(runDir);
      if (E.isLeft(stored)) throw new UnrecoverableError(stored.left.message);
      const sd = configDiff(stored.right, config);
      if (sd.length > 0) throw new UnrecoverableError(`${runDir} holds a run of another config (${sd.slice(0, 3).join('; ')})`);
      task = { resumeDir: runDir };
    } else {
      task = { config, outDir: runDir };
    }
    // A holder on this machine is checked by its process id (runfolder.ts); one on another machine
    // cannot be, but a job the queue handed out again means that holder lost the job's lock.
    const holder = existsSync(runDir) ? liveHolder(runDir) : undefined;
    if (holder !== undefined && holder.host !== hostname() && (job.attemptsStarted > 1 || job.stalledCounter > 0)) {
      say(`${label}: ${holder.host} (process ${holder.pid}) lost this job; taking its run folder over`);
      breakLock(runDir, holder);
    }
    say(`${label}: ${task.resumeDir !== undefined ? 'resuming' : 'starting'} in ${runDir}`);
    let epochs = config.training.epochs;
    const result = await pool.run({
      ...task,
      onEvent: (e) => {
        if (e.type === 'start') {
          epochs = e.epochs;
          void job.updateProgress({ epoch: e.startEpoch - 1, epochs }).catch(() => undefined);
        }
        if (e.type === 'epoch') {
          // Renewed per epoch besides BullMQ's own timer: a run that still makes progress keeps its job.
          void job.updateProgress({ epoch: e.record.epoch, epochs }).catch(() => undefined);
          if (token !== undefined) void job.extendLock(token, lockDuration).catch(() => undefined);
        }
        opts.onRunEvent?.(label, e);
      },
    });
    if (stopping && (E.isLeft(result) ? !(result.left instanceof DivergedError) : result.right.interrupted)) {
      interrupted++;
      say(`${label}: stopped; its checkpoint is kept and the job goes back to the queue`);
      return putBack(job, token, 0);
    }
    if (E.isLeft(result) && !(result.left instanceof DivergedError)) {
      say(`${label}: failed: ${result.left.message}`);
      throw new Error(result.left.message);
    }
    if (E.isRight(result) && result.right.interrupted) throw new Error(`${runDir}: the run stopped before its end`);
    trained++;
    say(
      E.isRight(result)
        ? `${label}: trained: validation ${pct(result.right.valAccuracy)}, test ${pct(result.right.testAccuracy)} (${result.right.seconds.toFixed(1)} s)`
        : `${label}: trained: diverged at epoch ${(result.left as DivergedError).epoch}`,
    );
    await afterRun();
    return summary(result);
  };

  const worker: Worker = new libs.right.bull.Worker(QUEUE_NAME, processor, {
    connection: redis.right,
    concurrency: jobs,
    lockDuration,
    stalledInterval: opts.stalledIntervalMs ?? 30_000,
    // A job whose worker dies more than this many times is failed rather than tried for ever.
    maxStalledCount: 3,
    name: `${hostname()}:${process.pid}`,
  });
  worker.on('error', (e) => {
    if (e.message !== lastRedisError) {
      lastRedisError = e.message;
      say(`queue: ${e.message.replace(q.right.url, q.right.shown)}`);
    }
  });
  worker.on('failed', (job, err) => {
    if (job !== undefined && err.name !== 'DelayedError')
      say(`job ${job.id}: failed (attempt ${job.attemptsMade} of ${job.opts.attempts ?? 1}): ${err.message}`);
  });
  say(
    `worker ${hostname()}:${process.pid} on ${q.right.shown}: tapegrad ${here.version}, data ${here.dataSha256.slice(0, 12)}… (${dataDir.right}), ${jobs} run${jobs > 1 ? 's' : ''} at a time`,
  );
  await stopped;
  pool.abort();
  await worker.close();
  await pool.close();
  redis.right.disconnect();
  return E.right({ trained, interrupted, ...(refused !== undefined ? { refused } : {}) });
};
