/**
 * The cpu backend's second thread and the one way work is shared with it.
 *
 * Following shared/docs/perf-notes.md: one worker (never more busy threads than
 * cores), a bounded spin on an Atomics flag before sleeping in Atomics.wait.
 * Every parallel kernel is a "chunks" kernel: its work is cut into at most
 * MAX_CHUNKS chunks that both threads take from a shared counter, so a thread
 * that starts late or is preempted (this machine's vCPUs are) leaves its share
 * to the other instead of making it wait. Chunks are cut from the shape alone
 * and each writes apart (or, for K chunks of a product, into partial products
 * joined in a fixed order), so results do not depend on threads or timing.
 */
import { CTRL_WORDS, DONE, FAILED, JOBS, READY, SEQ, writeJob, type Job } from '../cpu-protocol.mjs';
import { coreCount, envVar, startKernelWorker, type KernelWorker } from '../platform.js';
import type { CpuMemory } from './memory.js';

/** Below this many multiply-adds a second thread costs more than it saves. */
export const PARALLEL_MIN_MACS = 1 << 20;
/** Element-wise work on fewer elements than this stays on one thread. */
export const PARALLEL_MIN_ELEMENTS = 1 << 16;
/** Work is cut into at most this many chunks (see `chunked` in wasm/wat.mjs). */
export const MAX_CHUNKS = 16;

/** The thread count: the option, else TAPEGRAD_THREADS, else what the machine has (at most 2). */
export const threadsFrom = (opt: 1 | 2 | undefined): 1 | 2 => {
  if (opt !== undefined) return opt;
  const env = envVar('TAPEGRAD_THREADS');
  if (env !== undefined && env !== '') {
    if (env !== '1' && env !== '2') throw new Error(`TAPEGRAD_THREADS=${env}: the cpu backend runs 1 or 2 threads per product`);
    return env === '1' ? 1 : 2;
  }
  return coreCount() >= 2 ? 2 : 1;
};

/** A job's arguments without the two the dispatch fills in (the chunk size and the counter). */
export type JobArgs<K extends Job['kind']> = Omit<Extract<Job, { kind: K }>['args'], 'chunk' | 'counter'>;

export interface CpuThreads {
  /** Whether a worker was started (it may not be running yet: see `both`). */
  readonly parallel: boolean;
  /** For the description: the worker's kind, or why one thread runs. */
  readonly summary: string;
  /**
   * Runs job `kind` over `units` units of work, cut into chunks of whole
   * `quantum`s (at most MAX_CHUNKS of them), on both threads where a worker
   * runs, else all on this one: the same chunks either way. `args` are the
   * worker's; `mine` overrides this thread's own buffers; `fn` is this thread's
   * function where it is not the backend's compiled kernel (a fused chain).
   */
  chunked<K extends Job['kind']>(kind: K, args: JobArgs<K>, units: number, quantum: number, mine?: Partial<JobArgs<K>>, fn?: (...args: number[]) => void): void;
  /**
   * Posts one job the worker runs whole while this thread runs `mine`, and
   * waits for both: 'done'; 'alone' (nothing posted, `mine` not run) where no
   * worker runs yet; 'failed' (`mine` ran) where the worker's job threw. The
   * caller does the worker's share itself in the last two.
   */
  offload<K extends Job['kind']>(kind: K, args: Extract<Job, { kind: K }>['args'], mine: () => void): 'done' | 'alone' | 'failed';
  workerRunning(): boolean;
  dispose(): void;
}

/** The chunk size: whole quanta, at most MAX_CHUNKS chunks. */
export const chunkOf = (units: number, quantum: number): number => quantum * Math.max(1, Math.ceil(units / quantum / MAX_CHUNKS));

/**
 * `native`: the BLAS the worker may bind to take a band of a product (`offload`
 * job 'sgemm'; Node only, where koffi loaded it on this thread).
 */
export const startThreads = (mem: CpuMemory, threads: 1 | 2, native?: { readonly koffi: string; readonly file: string }): CpuThreads => {
  let worker: KernelWorker | undefined;
  /** Why one thread runs where two were asked for (a browser page that is not cross-origin isolated, or its main thread). */
  let oneThreadReason = '';
  const sab = new SharedArrayBuffer(CTRL_WORDS * 4);
  const ctrl = new Int32Array(sab),
    ctrlF = new Float32Array(sab);
  let seq = 0;
  if (threads === 2) {
    const started = startKernelWorker(mem.module, mem.memory, sab, native);
    if ('reason' in started) oneThreadReason = `: ${started.reason}`;
    else worker = started;
  }

  /**
   * Posts `job` to the worker, runs `mine` (the same job with this thread's own
   * buffers) here, and waits for both. Before the worker runs (a Web Worker
   * starts only once this thread returns to its event loop) `mine` takes every
   * chunk: the same chunks, so the same result. True where the worker's part
   * threw (it says so in FAILED and still stores DONE).
   */
  const both = (job: Job, mine: () => void): boolean => {
    if (worker === undefined || Atomics.load(ctrl, READY) !== 1) {
      mine();
      return false;
    }
    writeJob(ctrl, ctrlF, job.kind, job.args);
    seq = seq + 1 > 0x3fffffff ? 1 : seq + 1;
    Atomics.store(ctrl, SEQ, seq);
    Atomics.notify(ctrl, SEQ);
    mine();
    let spins = 0;
    while (Atomics.load(ctrl, DONE) !== seq) {
      if (++spins > 200000) {
        Atomics.wait(ctrl, DONE, Atomics.load(ctrl, DONE), 1);
        spins = 0;
      }
    }
    return Atomics.exchange(ctrl, FAILED, 0) === 1;
  };

  return {
    parallel: worker !== undefined,
    summary: worker ? `2 threads (${worker.kind})` : `1 thread${oneThreadReason}`,
    // `fn`: this thread's function where it is not the backend's compiled kernel (a fused chain's module).
    chunked: (kind, args, units, quantum, mine, fn) => {
      const chunk = chunkOf(units, quantum);
      Atomics.store(new Int32Array(mem.memory.buffer, mem.counter, 1), 0, 0);
      const full = { ...args, chunk, counter: mem.counter } as Record<string, number>;
      const own = { ...full, ...mine } as Record<string, number>;
      // The worker runs the kernel with the fields in the protocol's order: so does this thread.
      const { kernel, fields } = JOBS[kind];
      const run = fn ?? mem.fn(kernel);
      if (both({ kind, args: full } as Job, () => run(...fields.map((f) => own[f]!))))
        throw new Error(`cpu backend: the worker thread failed its part of a '${kind}' job; run with TAPEGRAD_THREADS=1 and report it`);
    },
    offload: (kind, args, mine) => {
      if (worker === undefined || Atomics.load(ctrl, READY) !== 1) return 'alone';
      return both({ kind, args } as Job, mine) ? 'failed' : 'done';
    },
    workerRunning: () => worker !== undefined && Atomics.load(ctrl, READY) === 1,
    dispose: () => {
      if (worker !== undefined) {
        Atomics.store(ctrl, SEQ, -1);
        Atomics.notify(ctrl, SEQ);
        worker.terminate();
        worker = undefined;
      }
    },
  };
};
