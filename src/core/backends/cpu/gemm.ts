/**
 * The cpu backend's products, out = op(a)·op(b): a system BLAS's sgemm where
 * one is loaded (blas.ts; on the typed arrays wherever they live, no staging),
 * else the WebAssembly SIMD GEMM (wasm/gemm.wat.mjs) on both threads.
 *
 * The WebAssembly split follows shared/docs/perf-notes.md: K for X·W, M for
 * Xᵀ·Δ, N for Δ·Wᵀ; small products stay on one thread. K chunks are whole KC
 * blocks whose partial products are joined in order, so the result depends on
 * the shape alone, not on threads or timing; row and column bands compute each
 * element exactly as the whole product does, so one thread runs those as one
 * product.
 */
import type { NativeBlas } from './blas.js';
import type { CpuMemory } from './memory.js';
import { chunkOf, PARALLEL_MIN_MACS, type CpuThreads } from './threads.js';

/** out = op(a)·op(b) in float32 (out is m×n; a is m×k, or k×m when transposed; b likewise). */
export type GemmInto = (a: Float32Array, b: Float32Array, m: number, k: number, n: number, transA: boolean, transB: boolean, out: Float32Array) => void;

/** gemmChunks' split codes, and the kernel's panel width. */
const SPLIT_K = 0,
  SPLIT_M = 1,
  SPLIT_N = 2,
  NR = 8;

/** The WebAssembly GEMM over the kernel's memory: operands there are read in place, others staged. */
export const wasmGemm = (mem: CpuMemory, threads: CpuThreads): GemmInto => {
  const { arena } = mem;
  const gemm = mem.fn('gemm');
  const addParts = mem.fn('addParts');
  const MC = mem.constant('MC'),
    KC = mem.constant('KC'),
    NC = mem.constant('NC'),
    MR = mem.constant('MR');
  /** A thread's packed-A, packed-B and scratch-tile addresses in its work buffer. */
  const packs = (t: number) => ({ ap: t, bp: t + MC * KC * 4, scratch: t + (MC * KC + KC * NC) * 4 });
  const [own, theirs] = mem.ownBuffers.map(packs) as [ReturnType<typeof packs>, ReturnType<typeof packs>];
  return (a, b, m, k, n, transA, transB, out) => {
    if (m === 0 || n === 0) return;
    if (k === 0) {
      out.fill(0);
      return;
    }
    const staged: Array<[number, number]> = [];
    const temporary = (bytes: number, off = arena.malloc(bytes)): number => {
      staged.push([off, bytes]);
      return off;
    };
    const place = (x: Float32Array, copy: boolean): number => (arena.owns(x) ? x.byteOffset : temporary(x.length * 4, copy ? mem.stage(x) : undefined));
    const A = place(a, true),
      B = place(b, true),
      C = place(out, false);
    // A(i, p) and B(p, j) as strides, in elements.
    const sai = transA ? 1 : k,
      sap = transA ? m : 1;
    const sbp = transB ? 1 : n,
      sbj = transB ? k : 1;
    const split = k >= m && k >= n ? SPLIT_K : m >= n ? SPLIT_M : SPLIT_N;
    if (m * n * k < PARALLEL_MIN_MACS || (!threads.parallel && split !== SPLIT_K)) {
      gemm(m, n, k, A, sai, sap, B, sbp, sbj, C, n, own.ap, own.bp, own.scratch);
    } else {
      const dim = split === SPLIT_K ? k : split === SPLIT_M ? m : n;
      const unit = split === SPLIT_K ? KC : split === SPLIT_M ? MR : NR;
      const count = Math.ceil(dim / chunkOf(dim, unit));
      const parts = split === SPLIT_K && count > 1 ? temporary((count - 1) * m * n * 4) : 0;
      threads.chunked('gemm', { m, n, k, a: A, sai, sap, b: B, sbp, sbj, c: C, ldc: n, ...theirs, split, parts }, dim, unit, own);
      if (parts !== 0) addParts(C, parts, count - 1, m * n);
    }
    if (!arena.owns(out)) out.set(arena.view().subarray(C / 4, C / 4 + m * n));
    for (const [off, bytes] of staged) arena.release(off, bytes);
  };
};

/** How often a product ran as two bands, one per thread (the tests check the path they mean to test ran). */
export const gemmStats = { bands: 0 };

/**
 * The native library's sgemm on `blasThreads` of its own threads. The backend's
 * worker is idle during the call (it sleeps after a bounded spin), so the two
 * never run more busy threads than cores between them.
 *
 * On one BLAS thread with a worker, a large product runs as two bands, one
 * per thread, each a call of the library on one thread: rows of the result
 * when it has at least as many rows as columns, else columns (the worker binds
 * the library itself: cpu-worker.mjs). The split is cut from the shape alone,
 * and where the worker cannot take its band (not started yet, failed, operands
 * outside the shared memory) this thread makes the same two calls, so a run
 * repeats exactly whatever the timing. Whether the bands' bits equal one whole
 * call's depends on the library's kernel (OpenBLAS 0.3.21's Cooperlake kernel:
 * equal at the shapes tested; its Haswell kernel: not), as with the library's
 * own threads.
 */
export const nativeGemm = (blas: NativeBlas, blasThreads: number, mem: CpuMemory, threads: CpuThreads, bands: boolean): GemmInto => {
  // Bands need the library held to one thread per call (two calls, two busy threads): a library whose thread
  // count cannot be set (Accelerate, an unknown file) runs whole. A worker that fails its band (its binding)
  // leaves every band to this thread from then on.
  const banded = bands && blasThreads === 1 && threads.parallel && blas.threadsSettable;
  let workerOk = true;
  return (a, b, m, k, n, transA, transB, out) => {
    if (m === 0 || n === 0) return;
    if (k === 0) {
      out.fill(0);
      return;
    }
    blas.useThreads(blasThreads);
    const rows = m >= n,
      dim = rows ? m : n;
    // Whether a product runs as bands depends on its shape alone (never on where its operands live or on the worker).
    if (!banded || m * n * k < PARALLEL_MIN_MACS || dim < 2 * BAND_QUANTUM) {
      blas.sgemm(m, n, k, a, transA, b, transB, out);
      return;
    }
    // This thread: the first h rows (or columns); the second band starts `a`, `b`, `c` elements into the operands.
    const h = Math.ceil(dim / 2 / BAND_QUANTUM) * BAND_QUANTUM;
    const lda = transA ? m : k,
      ldb = transB ? k : n;
    const second = rows ? { m: m - h, n, a: transA ? h : h * k, b: 0, c: h * n } : { m, n: n - h, a: 0, b: transB ? h * k : h, c: h };
    const mine = () => blas.sgemmBand(rows ? h : m, rows ? n : h, k, a, lda, transA, b, ldb, transB, out, n);
    // The second band computed here instead (the worker not started yet, or failed): the same two calls, so
    // the result never depends on when the worker came up.
    const theirsHere = () =>
      blas.sgemmBand(second.m, second.n, k, a.subarray(second.a), lda, transA, b.subarray(second.b), ldb, transB, out.subarray(second.c), n);
    const job = {
      ta: transA ? 1 : 0,
      tb: transB ? 1 : 0,
      m: second.m,
      n: second.n,
      k,
      a: a.byteOffset + second.a * 4,
      lda,
      b: b.byteOffset + second.b * 4,
      ldb,
      c: out.byteOffset + second.c * 4,
      ldc: n,
    };
    // The worker reaches only the shared kernel memory: operands elsewhere leave both bands to this thread.
    const shared = mem.inArena(a) && mem.inArena(b) && mem.inArena(out);
    const ran = workerOk && shared ? threads.offload('sgemm', job, mine) : 'alone';
    if (ran === 'done') gemmStats.bands++;
    else {
      if (ran === 'failed') workerOk = false;
      else mine();
      theirsHere();
    }
  };
};

/** Bands are whole multiples of this many rows or columns (the libraries' register tiles divide it). */
const BAND_QUANTUM = 16;
