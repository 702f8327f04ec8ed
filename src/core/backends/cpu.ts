/**
 * The `cpu` backend: tensors in a shared WebAssembly memory, the heavy kernels
 * on this thread plus one worker sharing it, so both cores work on one step.
 * Its parts, each a file in cpu/:
 * - memory.ts: the compiled kernels, the shared memory, the arena and pool;
 * - threads.ts: the worker and the one chunked dispatch every parallel kernel uses;
 * - blas.ts: a system BLAS loaded at run time (koffi), when there is one;
 * - gemm.ts: the products, on that BLAS or on the WebAssembly SIMD GEMM;
 * - conv.ts, image.ts: convolutions (im2col around the products), batch norm, pooling;
 * - table.ts: the kernel table, the host kernels with the hot ones overridden.
 * float64 products go to the native dgemm where a BLAS is loaded, else to the
 * reference loops (they are for checking, not speed).
 */
import { hostChain } from '../chains.js';
import { wasmChain } from './cpu/chains.js';
import type { Data } from '../primitives.js';
import { MIN_POOLED_BYTES } from '../pool.js';
import type { Arena } from './arena.js';
import { envVar, sharedMemoryError } from './platform.js';
import type { HostBackend } from './reference.js';
import { blasChoice, findBlas, type BlasChoice, type NativeBlas } from './cpu/blas.js';
import { convKernels } from './cpu/conv.js';
import { nativeGemm, wasmGemm } from './cpu/gemm.js';
import { imageKernels } from './cpu/image.js';
import { createCpuMemory } from './cpu/memory.js';
import { cpuKernelTable } from './cpu/table.js';
import { startThreads, threadsFrom } from './cpu/threads.js';

export { CPU_KERNEL_MEMORY_BYTES, MIN_KERNEL_MEMORY_BYTES } from './cpu/memory.js';
export type { BlasChoice, BlasFamily, NativeBlas } from './cpu/blas.js';

/** Options of `createCpuBackend`. */
export interface CpuBackendOptions {
  /**
   * Threads per product: 2 puts the second core to work on every large product,
   * 1 leaves it free (for a second run beside this one: `--jobs 2`). Default:
   * the TAPEGRAD_THREADS environment variable, else 2 where the machine has two
   * cores or more. On the WebAssembly kernels the results are bit for bit the
   * same either way; a native BLAS is given the same number of threads.
   */
  readonly threads?: 1 | 2;
  /**
   * The products' library: 'auto' (the first system BLAS that loads: OpenBLAS,
   * BLIS, MKL, Accelerate), 'none' (the WebAssembly GEMM, the path the paper's
   * numbers were recorded on), a family name, or a path to a library file.
   * Default: the TAPEGRAD_BLAS environment variable, else 'auto'. Where the
   * library does not load, the WebAssembly GEMM runs and `description` says why.
   */
  readonly blas?: BlasChoice;
  /**
   * The native library's own threads. Default: TAPEGRAD_BLAS_THREADS, else 1,
   * with the worker running the rest: OpenBLAS's idle threads spin between
   * calls, so its second thread and the worker would be three busy threads on
   * two cores. On this 2-core machine, shared, 3 interleaved rounds of the
   * headline epoch: 1 BLAS thread + worker 0.95 / 4.59 / 1.02 s, 2 BLAS threads
   * without the worker 2.66 / 3.84 / 1.62 s; 2 BLAS threads + worker 10.4 / 3.0 s.
   */
  readonly blasThreads?: number;
  /**
   * With one BLAS thread and the worker running: whether the worker takes a
   * band of each large product (its own call of the library), so products use
   * both cores (default true; see nativeGemm in cpu/gemm.ts).
   */
  readonly blasBands?: boolean;
  /**
   * How float32 conv2d and its gradients run: 'gemm' (default) unrolls images
   * into columns for the GEMM (conv-gemm.ts); 'loops' keeps the host kernels'
   * direct loops, for benchmarks that measure the difference.
   */
  readonly convolution?: 'gemm' | 'loops';
  /**
   * Where the image kernels' passes run (im2col / col2im, max pooling, batch
   * normalization): 'wasm' (default) or 'typescript', the host kernels' loops.
   * The results are bit for bit the same; for tests and benchmarks that compare them.
   */
  readonly imageKernels?: 'wasm' | 'typescript';
}

const blasThreadsFrom = (env: string | undefined): number => {
  if (env === undefined || env === '') return 1;
  const n = Number(env);
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new Error(`TAPEGRAD_BLAS_THREADS=${env}: give the native BLAS's thread count, 1 to 64`);
  return n;
};

/** Creates the `cpu` backend. */
export const createCpuBackend = (
  opts: CpuBackendOptions = {},
): HostBackend & {
  /** Whether the kernels use relaxed-SIMD FMA. */
  readonly relaxed: boolean;
  /** Threads per product. */
  readonly threads: number;
  /** The native BLAS the products run on, or undefined (the WebAssembly GEMM) with `blasReason` saying why. */
  readonly blas: Pick<NativeBlas, 'family' | 'file' | 'summary'> | undefined;
  readonly blasReason: string;
  /** The kernel memory's own accounting (tensor blocks, fresh and recycled). */
  readonly arenaStats: Arena['stats'];
  /** Whether a buffer lies in the kernel's memory (where the WebAssembly kernels read it in place). */
  inKernelMemory(buf: Data): boolean;
  /** Whether the second thread has started (a Web Worker starts once the thread that made it yields to its event loop). */
  workerRunning(): boolean;
} => {
  const noShared = sharedMemoryError();
  if (noShared !== undefined) throw new Error(`the cpu backend cannot run: ${noShared}`);
  const mem = createCpuMemory();
  const found = findBlas(blasChoice(opts.blas));
  const blas = 'blas' in found ? found.blas : undefined;
  const blasThreads = opts.blasThreads ?? blasThreadsFrom(envVar('TAPEGRAD_BLAS_THREADS'));
  // On one BLAS thread, the worker binds the library too and takes half of each large product.
  const bands = blas !== undefined && blasThreads === 1 && blas.threadsSettable && opts.blasBands !== false;
  const threads = startThreads(mem, threadsFrom(opts.threads), bands ? blas.binding : undefined);
  const count = threads.parallel ? 2 : 1;
  const gemm = blas !== undefined ? nativeGemm(blas, blasThreads, mem, threads, bands) : wasmGemm(mem, threads);
  const imagesInWasm = opts.imageKernels !== 'typescript';
  const { kernels, fused } = cpuKernelTable({
    mem,
    threads,
    gemm,
    dgemm:
      blas === undefined
        ? undefined
        : (a, b, m, k, n, ta, tb, out) => {
            blas.useThreads(blasThreads);
            blas.dgemm(m, n, k, a, ta, b, tb, out);
          },
    conv: opts.convolution === 'loops' ? undefined : convKernels(mem, threads, gemm, imagesInWasm, imagesInWasm && blas === undefined),
    image: imagesInWasm ? imageKernels(mem, threads) : undefined,
  });
  const { arena, pool, alloc, inArena } = mem;
  const simd = mem.relaxed ? 'relaxed-SIMD FMA' : 'SIMD mul+add; Node 20 needs --experimental-wasm-relaxed-simd for FMA';
  const products =
    blas !== undefined
      ? `native BLAS ${blas.summary} (${blas.file}) on ${blasThreads} BLAS thread${blasThreads === 1 ? '' : 's'}${bands && threads.parallel ? ' a band (the worker takes the other)' : ''} for products and convolutions, WebAssembly SIMD (${simd}) for the rest`
      : `WebAssembly SIMD GEMM (${simd}; no native BLAS: ${'none' in found ? found.none : ''})`;

  return {
    name: 'cpu',
    description: `cpu: ${products}, ${threads.summary}`,
    host: true,
    relaxed: mem.relaxed,
    threads: count,
    blas: blas === undefined ? undefined : { family: blas.family, file: blas.file, summary: blas.summary },
    blasReason: 'none' in found ? found.none : `loaded ${blas!.file}`,
    kernels,
    fused,
    alloc,
    upload: (data) => {
      const out = alloc(data instanceof Float32Array ? 'float32' : 'float64', data.length, false);
      out.set(data);
      return out;
    },
    full: (dtype, n, value) => {
      const out = alloc(dtype, n, value === 0);
      if (value !== 0) out.fill(value);
      return out;
    },
    read: (buf) => buf,
    needsRelease: (buf) => buf.byteLength >= MIN_POOLED_BYTES,
    free: (buf) => (inArena(buf) ? arena.freeFloat32(buf) : pool.free(buf)),
    // A view of a matrix outside the kernel's memory would be staged at every product: a copy in is cheaper.
    view: (buf, offset, n) => (inArena(buf) ? buf.subarray(offset, offset + n) : undefined),
    // jit's fused chains: WebAssembly SIMD over the kernel's memory where the operands are there, else a JavaScript loop.
    fuse: (chain) => wasmChain(mem, threads, chain, hostChain(alloc, chain)),
    memory: () => {
      const a = arena.stats(),
        h = pool.memory();
      return { liveBytes: a.tensorBytes + h.liveBytes, peakBytes: Math.max(a.peakTensorBytes + h.peakBytes, 0), buffers: a.tensorBlocks + h.buffers };
    },
    arenaStats: arena.stats,
    inKernelMemory: inArena,
    workerRunning: threads.workerRunning,
    dispose: threads.dispose,
  };
};
