/**
 * The `cpu` backend: a WebAssembly SIMD GEMM (see wasm/gemm.wat.mjs) on this
 * thread plus one worker thread sharing its memory, so both cores work on one
 * product. float64 products go to the reference loops (they are for checking,
 * not speed).
 *
 * Threading follows the measurements in shared/docs/perf-notes.md: one worker
 * (never more busy threads than cores), a bounded spin on an Atomics flag
 * before sleeping in Atomics.wait, and the split chosen per shape: K for X·W,
 * M for Xᵀ·Δ, N for Δ·Wᵀ; small products stay on one thread. A product is cut
 * into up to 16 chunks that both threads take from a shared counter, so a thread
 * that starts late or is preempted (this machine's vCPUs are) leaves its share to
 * the other instead of making it wait; K chunks' partial products are joined in
 * a fixed order, and one thread runs the same chunks, so results do not depend
 * on threads or timing.
 *
 * Large float32 tensors live in the shared memory itself (arena.ts), where the
 * GEMM, the fused momentum update and the element-wise kernels of a training
 * step read and write them without copies; others are staged per call.
 */
import type { KernelTable, MomentumHyper, Operand } from '../backend.js';
import { hostFused, hostKernels, like, matmulDims, type Alloc } from '../kernels.js';
import * as KN from '../kernels-nd.js';
import { createHostPool, MIN_POOLED_BYTES } from '../pool.js';
import type { Data } from '../primitives.js';
import type { Shape } from '../shape.js';
import { createArena, type Arena } from './arena.js';
import { col2im, columnBounds, convGemmKernels, im2col, regroup, type Geometry } from './conv-gemm.js';
import { CTRL_WORDS, DONE, READY, SEQ, writeJob, type Job } from './cpu-protocol.mjs';
import { coreCount, envVar, sharedMemoryError, startKernelWorker, wasmBytes, type KernelWorker } from './platform.js';
import type { HostBackend } from './reference.js';

/** Below this many multiply-adds a second thread costs more than it saves. */
const PARALLEL_MIN_MACS = 1 << 20;
/** Element-wise work on fewer elements than this stays on one thread. */
const PARALLEL_MIN_ELEMENTS = 1 << 16;
/** A large product is cut into at most this many chunks (see gemmChunks in gemm.wat.mjs). */
const MAX_CHUNKS = 16;
/** gemmChunks' split codes, and the kernel's panel width. */
const SPLIT_K = 0, SPLIT_M = 1, SPLIT_N = 2, NR = 8;
const PAGE = 65536;
const MAX_PAGES = 32768; // 2 GiB: shared memories must declare a maximum
/** The most bytes the cpu backend's kernel memory can hold (tensors past it use ordinary memory). */
export const CPU_KERNEL_MEMORY_BYTES = MAX_PAGES * PAGE;

const loadWasm = wasmBytes;

/**
 * Compiles the relaxed-SIMD kernels where the engine accepts them, else the
 * plain SIMD ones: the GEMM over a shared memory, the element-wise kernels over
 * a private one. Node 20 accepts relaxed SIMD only when started with
 * `--experimental-wasm-relaxed-simd` (the tapegrad command line does that;
 * Node 22 and later need no flag). A library must not change its host's V8
 * flags, so without it the plain SIMD kernels run: the same algorithm with a
 * separate multiply and add, so results differ in the last bits from FMA runs.
 */
const compileKernels = (): { shared: WebAssembly.Module; local: WebAssembly.Module; relaxed: boolean } => {
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    bytes = loadWasm('gemm-relaxed.wasm');
  } catch {
    throw new Error("the cpu backend's kernels are not built: run 'npm run build' (or 'npm ci', which builds them)");
  }
  const relaxed = WebAssembly.validate(bytes);
  const variant = relaxed ? 'relaxed' : 'simd';
  return {
    shared: new WebAssembly.Module(relaxed ? bytes : loadWasm('gemm-simd.wasm')),
    local: new WebAssembly.Module(loadWasm(`local-${variant}.wasm`)),
    relaxed,
  };
};

type GemmFn = (
  m: number, n: number, k: number,
  a: number, sai: number, sap: number,
  b: number, sbp: number, sbj: number,
  c: number, ldc: number, ap: number, bp: number, scratch: number,
) => void;

const align = (x: number): number => (x + 63) & ~63;

/**
 * Live tensor memory kept in the kernel's memory, at most (beyond it tensors use
 * ordinary memory): room for the CIFAR-100 training, validation and test
 * matrices (0.74 GB) and a training loop's working set.
 */
const TENSOR_CAP = 1280 * 1024 * 1024;
/** Kernel memory kept for the backend's own blocks (pack buffers, staged operands), out of reach of tensors. */
const OWN_SPACE = 256 * 1024 * 1024;
/** float32 tensors smaller than this (bytes) stay in ordinary memory: a product stages them in one memcpy. */
export const MIN_KERNEL_MEMORY_BYTES = 64 * 1024;

/** Options of `createCpuBackend`. */
export interface CpuBackendOptions {
  /**
   * Threads per product: 2 puts the second core to work on every large product,
   * 1 leaves it free (for a second run beside this one: `--jobs 2`). Default:
   * the TAPEGRAD_THREADS environment variable, else 2 where the machine has two
   * cores or more. The results are bit for bit the same either way.
   */
  readonly threads?: 1 | 2;
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

/** The thread count: the option, else TAPEGRAD_THREADS, else what the machine has (at most 2). */
const threadsFrom = (opt: 1 | 2 | undefined): 1 | 2 => {
  if (opt !== undefined) return opt;
  const env = envVar('TAPEGRAD_THREADS');
  if (env !== undefined && env !== '') {
    if (env !== '1' && env !== '2') throw new Error(`TAPEGRAD_THREADS=${env}: the cpu backend runs 1 or 2 threads per product`);
    return env === '1' ? 1 : 2;
  }
  return coreCount() >= 2 ? 2 : 1;
};

/** Creates the `cpu` backend. */
export const createCpuBackend = (opts: CpuBackendOptions = {}): HostBackend & {
  /** Whether the kernels use relaxed-SIMD FMA. */
  readonly relaxed: boolean;
  /** Threads per product. */
  readonly threads: number;
  /** The kernel memory's own accounting (tensor blocks, fresh and recycled). */
  readonly arenaStats: Arena['stats'];
  /** Whether a buffer lies in the kernel's memory (where the WebAssembly kernels read it in place). */
  inKernelMemory(buf: Data): boolean;
  /** Whether the second thread has started (a Web Worker starts once the thread that made it yields to its event loop). */
  workerRunning(): boolean;
} => {
  const noShared = sharedMemoryError();
  if (noShared !== undefined) throw new Error(`the cpu backend cannot run: ${noShared}`);
  const { shared: module, local, relaxed } = compileKernels();
  const memory = new WebAssembly.Memory({ initial: 64, maximum: MAX_PAGES, shared: true });
  const inst = new WebAssembly.Instance(module, { env: { memory } });
  // The element-wise kernels run on this thread over a private memory: copies in
  // and out of it run at memcpy speed (see gemm.wat.mjs).
  const localMemory = new WebAssembly.Memory({ initial: 1, maximum: MAX_PAGES });
  const localInst = new WebAssembly.Instance(local, { env: { memory: localMemory } });
  const gemm = inst.exports['gemm'] as GemmFn;
  const gemmChunks = inst.exports['gemmChunks'] as (...args: [...Parameters<GemmFn>, split: number, chunk: number, counter: number, parts: number]) => void;
  const addParts = inst.exports['addParts'] as (dst: number, parts: number, count: number, n: number) => void;
  // The kernel's blocking decides the pack buffers' sizes: read it from the module.
  const global = (name: string) => (inst.exports[name] as WebAssembly.Global).value as number;
  const BLOCK = { NC: global('NC'), KC: global('KC'), MC: global('MC'), MR: global('MR') };
  /** Work buffers each thread owns: packed A, packed B, a scratch tile (MR×8 ≤ 64 floats). */
  const PER_THREAD_BYTES = (BLOCK.MC * BLOCK.KC + BLOCK.KC * BLOCK.NC + 64) * 4;
  type MomentumFn = (p: number, v: number, g: number, pOut: number, vOut: number, n: number, lr: number, gamma: number, l2: number, nesterov: number) => void;
  const momentumShared = inst.exports['momentumStep'] as MomentumFn;
  const momentumLocal = localInst.exports['momentumStep'] as MomentumFn;
  const momentumChunks = inst.exports['momentumChunks'] as (...args: [...Parameters<MomentumFn>, chunk: number, counter: number]) => void;
  const zero = inst.exports['zero'] as (ptr: number, bytes: number) => void;
  const threads = threadsFrom(opts.threads);

  let worker: KernelWorker | undefined;
  /** Why one thread runs where two were asked for (a browser page that is not cross-origin isolated, or its main thread). */
  let oneThreadReason = '';
  let ctrl: Int32Array | undefined, ctrlF: Float32Array | undefined;
  let seq = 0;
  if (threads === 2) {
    const sab = new SharedArrayBuffer(CTRL_WORDS * 4);
    ctrl = new Int32Array(sab);
    ctrlF = new Float32Array(sab);
    const started = startKernelWorker(module, memory, sab);
    if ('reason' in started) oneThreadReason = `: ${started.reason}`;
    else worker = started;
  }

  // Tensors live in the kernel's memory where they can (see arena.ts); the pack
  // buffers and staged operands of products are blocks of it too. float64
  // tensors, small ones, and those past the arena's cap use host memory.
  const arena = createArena(memory, { tensorCap: TENSOR_CAP, tensorSpace: MAX_PAGES * PAGE - OWN_SPACE, maxPages: MAX_PAGES, zero });
  const pool = createHostPool();
  const alloc: Alloc = (dtype, n, zeroed) =>
    (dtype === 'float32' && n * 4 >= MIN_KERNEL_MEMORY_BYTES ? arena.allocFloat32(n, zeroed) : undefined) ?? pool.alloc(dtype, n, zeroed);
  const inArena = (x: Data): x is Float32Array => x instanceof Float32Array && arena.owns(x);
  const t0 = arena.malloc(PER_THREAD_BYTES), t1 = arena.malloc(PER_THREAD_BYTES);
  /** The chunked calls' counter, on a cache line of its own. */
  const counter = arena.malloc(64);
  const resetCounter = (): void => void Atomics.store(new Int32Array(memory.buffer, counter, 1), 0, 0);

  let local32 = new Float32Array(localMemory.buffer);
  const ensureLocal = (bytes: number): void => {
    const have = localMemory.buffer.byteLength;
    if (bytes > have) {
      const pages = Math.ceil((bytes - have) / PAGE);
      if (have / PAGE + pages > MAX_PAGES) throw new RangeError(`cpu backend: an update needing ${bytes} bytes exceeds the 2 GiB kernel memory`);
      localMemory.grow(pages);
      local32 = new Float32Array(localMemory.buffer);
    }
  };

  /**
   * Posts `job` to the worker, runs `mine` (the same job with this thread's own
   * buffers) here, and waits for both. Before the worker runs (a Web Worker
   * starts only once this thread returns to its event loop) `mine` takes every
   * chunk: the same chunks, so the same result.
   */
  const both = (job: Job, mine: () => void): void => {
    const c = ctrl!;
    if (Atomics.load(c, READY) !== 1) { mine(); return; }
    writeJob(c, ctrlF!, job.kind, job.args);
    seq = seq + 1 > 0x3fffffff ? 1 : seq + 1;
    Atomics.store(c, SEQ, seq);
    Atomics.notify(c, SEQ);
    mine();
    let spins = 0;
    while (Atomics.load(c, DONE) !== seq) {
      if (++spins > 200000) { Atomics.wait(c, DONE, Atomics.load(c, DONE), 1); spins = 0; }
    }
  };

  /** A copy of `x` in a temporary block of the kernel's memory (give it back with arena.release). */
  const stage = (x: Float32Array): number => {
    const off = arena.malloc(x.length * 4);
    arena.view().set(x, off / 4);
    return off;
  };

  /** out = op(a)·op(b) in float32 on the GEMM, operands in the kernel's memory read in place, others staged. */
  const gemmInto = (a: Float32Array, b: Float32Array, m: number, k: number, n: number, transA: boolean, transB: boolean, out: Float32Array): void => {
    if (m === 0 || n === 0) return;
    if (k === 0) { out.fill(0); return; }
    const staged: Array<[number, number]> = [];
    const temporary = (bytes: number, off = arena.malloc(bytes)): number => {
      staged.push([off, bytes]);
      return off;
    };
    const place = (x: Float32Array, copy: boolean): number =>
      arena.owns(x) ? x.byteOffset : temporary(x.length * 4, copy ? stage(x) : undefined);
    const A = place(a, true), B = place(b, true), C = place(out, false);
    // A(i, p) and B(p, j) as strides, in elements.
    const sai = transA ? 1 : k, sap = transA ? m : 1;
    const sbp = transB ? 1 : n, sbj = transB ? k : 1;
    const scratch = (t: number) => t + (BLOCK.MC * BLOCK.KC + BLOCK.KC * BLOCK.NC) * 4;
    const packs = (t: number) => [t, t + BLOCK.MC * BLOCK.KC * 4, scratch(t)] as const;
    const [ap0, bp0, s0] = packs(t0);
    const [ap1, bp1, s1] = packs(t1);

    // Chunks along K for X·W, M for Xᵀ·Δ, N for Δ·Wᵀ, taken by whichever thread is
    // free (gemmChunks). K chunks are whole KC blocks, at most MAX_CHUNKS, their
    // partial products joined in order: the result depends on the shape alone, not
    // on threads or timing. Row and column bands compute each element exactly as
    // the whole product does, so one thread runs those as one product.
    const split = k >= m && k >= n ? SPLIT_K : m >= n ? SPLIT_M : SPLIT_N;
    if (m * n * k < PARALLEL_MIN_MACS || (worker === undefined && split !== SPLIT_K)) {
      gemm(m, n, k, A, sai, sap, B, sbp, sbj, C, n, ap0, bp0, s0);
    } else {
      const dim = split === SPLIT_K ? k : split === SPLIT_M ? m : n;
      const unit = split === SPLIT_K ? BLOCK.KC : split === SPLIT_M ? BLOCK.MR : NR;
      const chunk = unit * Math.max(1, Math.ceil(dim / unit / MAX_CHUNKS));
      const count = Math.ceil(dim / chunk);
      const parts = split === SPLIT_K && count > 1 ? temporary((count - 1) * m * n * 4) : 0;
      resetCounter();
      const mine = () => gemmChunks(m, n, k, A, sai, sap, B, sbp, sbj, C, n, ap0, bp0, s0, split, chunk, counter, parts);
      if (worker === undefined) mine();
      else both({ kind: 'gemm', args: { m, n, k, a: A, sai, sap, b: B, sbp, sbj, c: C, ldc: n, ap: ap1, bp: bp1, scratch: s1, split, chunk, counter, parts } }, mine);
      if (parts !== 0) addParts(C, parts, count - 1, m * n);
    }
    if (!arena.owns(out)) out.set(arena.view().subarray(C / 4, C / 4 + m * n));
    for (const [off, bytes] of staged) arena.release(off, bytes);
  };

  type Fn = (...args: number[]) => void;
  const fn = (name: string) => inst.exports[name] as Fn;
  const [reluK, reluGradK, mulK, addRowK, sumRowsK, elementChunksK, poolChunksK] =
    [fn('relu'), fn('reluGrad'), fn('mul'), fn('addRow'), fn('sumRows'), fn('elementChunks'), fn('poolChunks')];
  /**
   * An element-wise kernel over n floats of the kernel's memory (op 0 relu(a),
   * 1 reluGrad(x = a, ct = b), 2 mul(a, b)), split between the threads in chunks
   * of whole cache lines where it is large: each element is computed alone, so
   * the split never changes a result.
   */
  const elementwise = (op: 0 | 1 | 2, a: number, b: number, out: number, n: number): void => {
    if (worker === undefined || n < PARALLEL_MIN_ELEMENTS) {
      if (op === 0) reluK(a, out, n);
      else if (op === 1) reluGradK(a, b, out, n);
      else mulK(a, b, out, n);
      return;
    }
    const chunk = 16 * Math.ceil(n / 16 / MAX_CHUNKS);
    resetCounter();
    both({ kind: 'elements', args: { op, a, b, out, n, chunk, counter } }, () => elementChunksK(op, a, b, out, n, chunk, counter));
  };
  const host = hostKernels(alloc);
  /** A float32 output in the kernel's memory, or undefined where it has no room. */
  const arenaOut = (n: number): Float32Array | undefined => {
    const out = alloc('float32', n, false);
    if (inArena(out)) return out;
    pool.free(out);
    return undefined;
  };
  const [unrollK, unrollChunksK, regroupK, regroupChunksK, maxPoolK, chainSumsK, chainChunksK, bnApplyK, applyChunksK] =
    [fn('unroll'), fn('unrollChunks'), fn('regroup'), fn('regroupChunks'), fn('maxPool'), fn('chainSums'), fn('chainChunks'), fn('bnApply'), fn('applyChunks')];
  const [rowSumsK, rowSumsChunksK, applyRowsK, applyRowsChunksK] = [fn('rowSums'), fn('rowSumsChunks'), fn('applyRows'), fn('applyRowsChunks')];
  /**
   * Runs f on copies of small float64 arrays placed in the kernel's memory (their
   * addresses), then copies them back (the kernels accumulate into some).
   */
  const withF64 = (arrays: readonly Float64Array[], f: (ptrs: number[]) => void): void => {
    const sizes = arrays.map((a) => align(a.length * 8)), bytes = sizes.reduce((p, q) => p + q, 0);
    const base = arena.malloc(Math.max(bytes, 8));
    const ptrs = sizes.map((_z, i) => base + sizes.slice(0, i).reduce((p, q) => p + q, 0));
    arrays.forEach((a, i) => new Float64Array(memory.buffer, ptrs[i]!, a.length).set(a));
    f(ptrs);
    arrays.forEach((a, i) => a.set(new Float64Array(memory.buffer, ptrs[i]!, a.length)));
    arena.release(base, Math.max(bytes, 8));
  };
  /**
   * image.wat's chainSums: float64 chains over `chains` runs of float32 data in
   * the kernel's memory (chain q: `steps` segments of S floats from x + 4·q·S,
   * `stride` bytes apart), each from zero; `mode` 0
   * sums x, 1 sums (x − mean[q mod C])², 2 sums ct and ct·(x − mean[q mod C]).
   * Returns the sums (two arrays of `chains` in mode 2).
   */
  const chainSums = (x: Float32Array, ct: Float32Array | undefined, mean: Float64Array | undefined, chains: number, C: number, S: number,
    steps: number, stride: number, mode: 0 | 1 | 2): Float64Array[] => {
    const pad = 4 * Math.ceil(chains / 4), sums = mode === 2 ? 2 : 1;
    const outBytes = 8 * pad * sums, bytes = outBytes + 8 * C;
    const base = arena.malloc(bytes);
    const out = new Float64Array(memory.buffer, base, pad * sums);
    out.fill(0);
    if (mean !== undefined) new Float64Array(memory.buffer, base + outBytes, C).set(mean);
    const args = [x.byteOffset, ct?.byteOffset ?? 0, base + outBytes, base] as const;
    if (worker === undefined || chains < 8 || chains * steps * S < PARALLEL_MIN_ELEMENTS) chainSumsK(...args, 0, chains, chains, C, S, steps, stride, mode);
    else {
      // Chunks of whole vectors of chains, at most MAX_CHUNKS, taken by whichever thread is free.
      const chunk = 4 * Math.ceil(chains / 4 / MAX_CHUNKS);
      resetCounter();
      const [xp, cp, mp, op] = args;
      both({ kind: 'chains', args: { x: xp, ct: cp, mean: mp, out: op, chains, C, S, steps, stride, mode, chunk, counter } },
        () => chainChunksK(...args, chains, C, S, steps, stride, mode, chunk, counter));
    }
    const result = Array.from({ length: sums }, (_z, k) => out.slice(k * pad, k * pad + chains));
    arena.release(base, bytes);
    return result;
  };
  /**
   * image.wat's bnApply over the N·C planes of x [N, C, S] (and ct, mode 1) into
   * out, with 5 float64 coefficients a channel: element-wise, so split between
   * the threads in chunks of planes.
   */
  const applyPlanes = (x: Float32Array, ct: Float32Array | undefined, out: Float32Array, coef: Float64Array, N: number, C: number, S: number): void =>
    withF64([coef], ([pc]) => {
      const planes = N * C, mode = ct === undefined ? 0 : 1;
      const args = [x.byteOffset, ct?.byteOffset ?? 0, out.byteOffset, pc!] as const;
      if (worker === undefined || planes < 2 || planes * S < PARALLEL_MIN_ELEMENTS) { bnApplyK(...args, 0, planes, C, S, mode); return; }
      const chunk = Math.ceil(planes / MAX_CHUNKS);
      resetCounter();
      const [xp, cp, op, kp] = args;
      both({ kind: 'apply', args: { x: xp, ct: cp, out: op, coef: kp, planes, C, S, mode, chunk, counter } },
        () => applyChunksK(...args, planes, C, S, mode, chunk, counter));
    });
  /** image.wat's maxPool over `planes` planes (its arguments), split between the threads in chunks of planes. */
  const maxPool = (x: number, ct: number, out: number, planes: number, H: number, W: number, size: number, stride: number, OH: number, OW: number, grad: 0 | 1 | 2): void => {
    if (worker === undefined || planes < 2 || planes * H * W < PARALLEL_MIN_ELEMENTS) { maxPoolK(x, ct, out, planes, H, W, size, stride, OH, OW, grad); return; }
    const chunk = Math.ceil(planes / MAX_CHUNKS);
    resetCounter();
    both({ kind: 'pool', args: { x, ct, out, planes, H, W, size, stride, OH, OW, grad, chunk, counter } },
      () => poolChunksK(x, ct, out, planes, H, W, size, stride, OH, OW, grad, chunk, counter));
  };
  /**
   * Batch normalization's sums over rows x [N, C] (one value a plane), image.wat's
   * rowSums: each channel's chain on one thread, split by channel pairs. mode 0/1
   * add onto acc1 (mean given for 1), mode 2 onto acc1 (Σ ct) and acc2 (Σ ct·x̂).
   */
  const rowSums = (x: Float32Array, ct: Float32Array | undefined, mean: Float64Array | undefined, inv: Float64Array | undefined,
    acc1: Float64Array, acc2: Float64Array | undefined, N: number, C: number, mode: 0 | 1 | 2): void => {
    const none = new Float64Array(0);
    withF64([mean ?? none, inv ?? none, acc1, acc2 ?? none], ([pm, pi, p1, p2]) => {
      const args = [x.byteOffset, ct?.byteOffset ?? 0, pm!, pi!, p1!, p2!, N, C] as const;
      if (worker === undefined || C < 4 || N * C < PARALLEL_MIN_ELEMENTS) { rowSumsK(...args, 0, C, mode); return; }
      const chunk = 2 * Math.ceil(C / 2 / MAX_CHUNKS);
      resetCounter();
      both({ kind: 'rowSums', args: { x: args[0], ct: args[1], mean: pm!, inv: pi!, acc1: p1!, acc2: p2!, N, C, mode, chunk, counter } },
        () => rowSumsChunksK(...args, mode, chunk, counter));
    });
  };
  /** bnApply over rows x [N, C]: the coefficients laid out per coefficient ([5][C]) so channel pairs load as vectors; split by rows. */
  const applyRows = (x: Float32Array, ct: Float32Array | undefined, out: Float32Array, coef: Float64Array, N: number, C: number): void => {
    const coefT = new Float64Array(5 * C);
    for (let c = 0; c < C; c++) for (let i = 0; i < 5; i++) coefT[i * C + c] = coef[5 * c + i]!;
    withF64([coefT], ([pc]) => {
      const mode = ct === undefined ? 0 : 1;
      const args = [x.byteOffset, ct?.byteOffset ?? 0, out.byteOffset, pc!] as const;
      if (worker === undefined || N < 2 || N * C < PARALLEL_MIN_ELEMENTS) { applyRowsK(...args, 0, N, C, mode); return; }
      const chunk = Math.ceil(N / MAX_CHUNKS);
      resetCounter();
      both({ kind: 'applyRows', args: { x: args[0], ct: args[1], out: args[2], coefT: pc!, N, C, mode, chunk, counter } },
        () => applyRowsChunksK(...args, N, C, mode, chunk, counter));
    });
  };
  // Batch normalization's passes in WebAssembly when the arrays are in the kernel's memory (KN.jsPasses otherwise):
  // each plane's chain there, the planes' sums added per channel here in plane order, as jsPasses does; rows
  // (one value a plane) have their own kernels, a lane a channel.
  const imagesInWasm = opts.imageKernels !== 'typescript';
  const bnPasses: KN.BatchNormPasses = !imagesInWasm ? KN.jsPasses : {
    sums: (x, mean, acc, N, C, S) => {
      if (!inArena(x)) return KN.jsPasses.sums(x, mean, acc, N, C, S);
      if (S === 1) return rowSums(x, undefined, mean, undefined, acc, undefined, N, C, mean === undefined ? 0 : 1);
      const [planes] = chainSums(x, undefined, mean, N * C, C, S, 1, 0, mean === undefined ? 0 : 1) as [Float64Array];
      for (let q = 0; q < N * C; q++) acc[q % C]! += planes[q]!;
    },
    gradSums: (x, ct, mean, inv, sumCt, sumCtXhat, N, C, S) => {
      if (!inArena(x) || !inArena(ct)) return KN.jsPasses.gradSums(x, ct, mean, inv, sumCt, sumCtXhat, N, C, S);
      if (S === 1) return rowSums(x, ct, mean, inv, sumCt, sumCtXhat, N, C, 2);
      const [s, sx] = chainSums(x, ct, mean, N * C, C, S, 1, 0, 2) as [Float64Array, Float64Array];
      for (let q = 0; q < N * C; q++) {
        const c = q % C;
        sumCt[c]! += s[q]!;
        sumCtXhat[c]! += sx[q]! * inv[c]!;
      }
    },
    apply: (x, ct, out, coef, N, C, S) => {
      if (!inArena(x) || !inArena(out) || (ct !== undefined && !inArena(ct))) return KN.jsPasses.apply(x, ct, out, coef, N, C, S);
      if (S === 1) return applyRows(x, ct as Float32Array | undefined, out, coef, N, C);
      applyPlanes(x, ct as Float32Array | undefined, out, coef, N, C, S);
    },
  };
  /**
   * conv-gemm's unrolling of images n0… (or rolling back onto dx, mode 1) in
   * WebAssembly, when the images and the columns are in the kernel's memory:
   * image.wat's unroll, split between the threads in units of rows that write
   * apart (im2col: rows (c, a); col2im: channels, each dx element's additions
   * on one thread in row order), so the split never changes a result.
   */
  const unrollRows = (mode: 0 | 1, g: Geometry, n0: number, count: number, imgs: Float32Array, cols: Float32Array): void => {
    const bounds = columnBounds(g);
    const bp = arena.malloc(bounds.byteLength);
    new Int32Array(memory.buffer, bp, bounds.length).set(bounds);
    const x = imgs.byteOffset + n0 * g.C * g.H * g.W * 4, planeStep = g.C * g.H * g.W * 4;
    const units = mode === 0 ? g.C * g.KH : g.C;
    const args = [mode, x, cols.byteOffset, bp, planeStep, count, g.C, g.H, g.W, g.KH, g.KW, g.OH, g.OW, g.stride, g.padding] as const;
    if (worker === undefined || units < 2 || count * g.ckk * g.ohw < PARALLEL_MIN_ELEMENTS) unrollK(...args, 0, units);
    else {
      const chunk = Math.ceil(units / MAX_CHUNKS);
      resetCounter();
      both({
        kind: 'unroll',
        args: { mode, x, col: cols.byteOffset, bounds: bp, planeStep, count, C: g.C, H: g.H, W: g.W, KH: g.KH, KW: g.KW, OH: g.OH, OW: g.OW, stride: g.stride, pad: g.padding, units, chunk, counter },
      }, () => unrollChunksK(...args, units, chunk, counter));
    }
    arena.release(bp, bounds.byteLength);
  };
  /** conv-gemm's regroup in WebAssembly (one memory.copy a plane), split between the threads by filter. */
  const regroupPlanes = (nchw: Float32Array, mat: Float32Array, g: Geometry, n0: number, count: number, toMatrix: boolean): void => {
    const args = [nchw.byteOffset, mat.byteOffset, g.F, count, n0, g.ohw, toMatrix ? 1 : 0] as const;
    if (worker === undefined || g.F < 2 || g.F * count * g.ohw < PARALLEL_MIN_ELEMENTS) { regroupK(...args, 0, g.F); return; }
    const chunk = Math.ceil(g.F / MAX_CHUNKS);
    resetCounter();
    const [np, mp, F, , , ohw, tm] = args;
    both({ kind: 'regroup', args: { nchw: np, mat: mp, F, count, n0, ohw, toMatrix: tm, chunk, counter } }, () => regroupChunksK(...args, chunk, counter));
  };
  const conv = convGemmKernels({
    unroll: !imagesInWasm ? { im2col, col2im } : {
      im2col: (x, g, n0, count, col) => (inArena(x) && inArena(col) ? unrollRows(0, g, n0, count, x, col) : im2col(x, g, n0, count, col)),
      col2im: (col, g, n0, count, dx) => (inArena(dx) && inArena(col) ? unrollRows(1, g, n0, count, dx, col) : col2im(col, g, n0, count, dx)),
      regroup: (nchw, mat, g, n0, count, toMatrix) => (inArena(nchw) && inArena(mat)
        ? regroupPlanes(nchw, mat, g, n0, count, toMatrix) : regroup(nchw, mat, g, n0, count, toMatrix)),
    },
    gemm: gemmInto,
    scratch: (n) => {
      const off = arena.malloc(n * 4);
      return arena.view().subarray(off / 4, off / 4 + n);
    },
    release: (x) => arena.release(x.byteOffset, x.length * 4),
    alloc: (n, zeroed) => alloc('float32', n, zeroed) as Float32Array,
  });
  const convOnGemm = opts.convolution !== 'loops';
  const CONV_ROWS = global('CONV_ROWS');
  const [convImagesK, convChunksK] = [fn('convImages'), fn('convChunks')];
  /**
   * conv2d at stride 1 straight from the images (conv.wat): the GEMM path's
   * values without the column matrix or the regrouping. Where it does not apply
   * (another stride, rows not a multiple of 8 outputs, operands outside the
   * kernel's memory), undefined: the GEMM path runs.
   */
  const directConv = (x: Float32Array, xs: Shape, w: Float32Array, ws: Shape, { stride, padding }: KN.Conv2dParams): Float32Array | undefined => {
    const [N, C, H, W] = xs as [number, number, number, number], [F, , KH, KW] = ws as [number, number, number, number];
    const HP = H + 2 * padding, WP = W + 2 * padding, OH = HP - KH + 1, OW = WP - KW + 1;
    if (!imagesInWasm || stride !== 1 || !inArena(x) || OH <= 0 || OW % 8 !== 0 || C * HP * WP * 4 > PER_THREAD_BYTES) return undefined;
    const out = arenaOut(N * F * OH * OW);
    if (out === undefined) return undefined;
    // Filters in blocks of CONV_ROWS, [block][tap][row] (zero past F); each tap's byte offset in a padded image.
    const ckk = C * KH * KW, blocks = Math.ceil(F / CONV_ROWS);
    const wpBytes = blocks * ckk * CONV_ROWS * 4, bytes = wpBytes + ckk * 4;
    const base = arena.malloc(bytes), offs = base + wpBytes;
    const packed = new Float32Array(memory.buffer, base, blocks * ckk * CONV_ROWS);
    packed.fill(0);
    for (let f = 0; f < F; f++) for (let t = 0; t < ckk; t++) packed[(Math.floor(f / CONV_ROWS) * ckk + t) * CONV_ROWS + (f % CONV_ROWS)] = w[f * ckk + t]!;
    const tapOffsets = new Int32Array(memory.buffer, offs, ckk);
    for (let c = 0; c < C; c++) for (let a = 0; a < KH; a++) for (let b = 0; b < KW; b++) tapOffsets[(c * KH + a) * KW + b] = ((c * HP + a) * WP + b) * 4;
    const shape = [C, H, W, padding, F, ckk, OH, OW] as const;
    if (worker === undefined || N < 2) convImagesK(x.byteOffset, base, offs, out.byteOffset, t0, 0, N, ...shape);
    else {
      const chunk = Math.ceil(N / MAX_CHUNKS);
      resetCounter();
      both({ kind: 'conv', args: { x: x.byteOffset, wp: base, offs, out: out.byteOffset, xp: t1, N, C, H, W, pad: padding, F, ckk, OH, OW, chunk, counter } },
        () => convChunksK(x.byteOffset, base, offs, out.byteOffset, t0, N, ...shape, chunk, counter));
    }
    arena.release(base, bytes);
    return out;
  };
  /** b of shape [1, C, 1, …] against a of [N, C, …] (rank ≥ 3). */
  const isChannelBias = (a: Operand<Data>, b: Operand<Data>): boolean =>
    a.shape.length >= 3 && b.shape.length === a.shape.length && b.buf.length === a.shape[1] && b.shape.every((d, i) => (i === 1 ? d === a.shape[1] : d === 1));
  /** Sum over every axis but 1 of [N, C, …] (rank ≥ 3). */
  const isChannelSum = (x: Operand<Data>, axes: readonly number[]): boolean =>
    x.shape.length >= 3 && axes.length === x.shape.length - 1 && [...axes].sort((p, q) => p - q).every((a, i) => a === (i === 0 ? 0 : i + 1));
  const isRowBias = (a: Operand<Data>, b: Operand<Data>): boolean =>
    a.shape.length === 2 && b.buf.length === a.shape[1] && b.shape.length <= 2 && (b.shape.length < 2 || b.shape[0] === 1);

  // The training step's kernels run as SIMD loops over the kernel's memory when
  // their operands are there, each equal bit for bit to the host kernel it
  // replaces (so results never depend on where a tensor happens to live); the
  // other primitives run the host kernels on the same memory.
  const kernels: KernelTable<Data> = {
    ...host,
    matmul: (inputs, params, spec) => {
      const [a, b] = inputs;
      if (!(a.buf instanceof Float32Array) || !(b.buf instanceof Float32Array) || spec.dtype !== 'float32') return host.matmul(inputs, params, spec);
      const { m, k, n } = matmulDims(a.shape, b.shape, params.transA, params.transB);
      const out = alloc('float32', m * n, false) as Float32Array;
      gemmInto(a.buf, b.buf, m, k, n, params.transA, params.transB, out);
      return out;
    },
    // float32 convolutions on the GEMM (float64 ones are for checking: the host loops).
    conv2d: (inputs, params, spec) => {
      const [x, w] = inputs;
      if (!convOnGemm || !(x.buf instanceof Float32Array) || !(w.buf instanceof Float32Array) || spec.dtype !== 'float32') return host.conv2d(inputs, params, spec);
      return directConv(x.buf, x.shape, w.buf, w.shape, params) ?? conv.conv2d(x.buf, x.shape, w.buf, w.shape, params);
    },
    conv2dGradInput: (inputs, params, spec) => {
      const [ct, w] = inputs;
      if (!convOnGemm || !(ct.buf instanceof Float32Array) || !(w.buf instanceof Float32Array) || spec.dtype !== 'float32') return host.conv2dGradInput(inputs, params, spec);
      return conv.gradInput(ct.buf, w.buf, w.shape, params.inputShape, params);
    },
    conv2dGradWeight: (inputs, params, spec) => {
      const [ct, x] = inputs;
      if (!convOnGemm || !(ct.buf instanceof Float32Array) || !(x.buf instanceof Float32Array) || spec.dtype !== 'float32') return host.conv2dGradWeight(inputs, params, spec);
      return conv.gradWeight(ct.buf, x.buf, x.shape, params.filterShape, params);
    },
    maxPool2d: (inputs, params, spec) => {
      const [x] = inputs, [N, C, H, W] = x.shape as [number, number, number, number];
      const OH = KN.slidingOut(H, params.size, params.stride, 0), OW = KN.slidingOut(W, params.size, params.stride, 0);
      const out = imagesInWasm && inArena(x.buf) ? arenaOut(N * C * OH * OW) : undefined;
      if (out === undefined) return host.maxPool2d(inputs, params, spec);
      maxPool(x.buf.byteOffset, 0, out.byteOffset, N * C, H, W, params.size, params.stride, OH, OW, 0);
      return out;
    },
    maxPool2dGrad: (inputs, params, spec) => {
      const [ct, x] = inputs, [N, C, H, W] = x.shape as [number, number, number, number];
      // Windows that overlap accumulate (the host kernel's float64 sums).
      if (!imagesInWasm || params.stride < params.size || !inArena(x.buf) || !inArena(ct.buf) || spec.dtype !== 'float32') return host.maxPool2dGrad(inputs, params, spec);
      const OH = KN.slidingOut(H, params.size, params.stride, 0), OW = KN.slidingOut(W, params.size, params.stride, 0);
      // 2×2 windows at stride 2 tiling x, rows of 4k outputs: the kernel writes every element (no zeroing first).
      const whole = params.size === 2 && params.stride === 2 && H === 2 * OH && W === 2 * OW && OW % 4 === 0;
      const out = alloc('float32', x.buf.length, !whole);
      if (!inArena(out)) { pool.free(out); return host.maxPool2dGrad(inputs, params, spec); }
      maxPool(x.buf.byteOffset, ct.buf.byteOffset, out.byteOffset, N * C, H, W, params.size, params.stride, OH, OW, whole ? 2 : 1);
      return out;
    },
    channelMoments: ([x]) => KN.channelMoments(alloc, x.buf, x.shape, bnPasses).data,
    batchNorm: ([x, m, g, b], { eps }, out) => KN.batchNorm(alloc, x.buf, x.shape, m.buf, g.buf, b.buf, eps, like(out.dtype), bnPasses).data,
    batchNormGrad: ([x, m, g, ct, sums], { eps }, out) => KN.batchNormGrad(alloc, x.buf, x.shape, m.buf, g.buf, ct.buf, sums.buf, eps, like(out.dtype), bnPasses).data,
    batchNormParamGrad: ([x, m, ct], { eps }, out) => KN.batchNormParamGrad(alloc, x.buf, x.shape, m.buf, ct.buf, eps, like(out.dtype), bnPasses).data,
    add: (inputs, params, spec) => {
      const [a, b] = inputs;
      // A value per channel over [N, C, …] (the conv bias): x + b as ((x − 0)·1 + b) in float64, the host's sum.
      if (imagesInWasm && isChannelBias(a, b) && inArena(a.buf) && b.buf instanceof Float32Array) {
        const out = arenaOut(a.buf.length);
        if (out !== undefined) {
          const [N, C] = a.shape as [number, number], S = a.buf.length / (N * C);
          const coef = new Float64Array(5 * C);
          for (let c = 0; c < C; c++) coef.set([0, 1, b.buf[c]!], 5 * c);
          applyPlanes(a.buf, undefined, out, coef, N, C, S);
          return out;
        }
      }
      if (isRowBias(a, b) && inArena(a.buf) && b.buf instanceof Float32Array) {
        const out = arenaOut(a.buf.length);
        if (out !== undefined) {
          const owned = arena.owns(b.buf);
          const B = owned ? b.buf.byteOffset : stage(b.buf);
          addRowK(a.buf.byteOffset, B, out.byteOffset, a.shape[0]!, a.shape[1]!);
          if (!owned) arena.release(B, b.buf.length * 4);
          return out;
        }
      }
      return host.add(inputs, params, spec);
    },
    mul: (inputs, params, spec) => {
      const [a, b] = inputs;
      // Operands of one shape (the dropout mask and its gradient), both in the kernel's memory.
      if (inArena(a.buf) && inArena(b.buf) && a.buf.length === b.buf.length && a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i])) {
        const out = arenaOut(a.buf.length);
        if (out !== undefined) { elementwise(2, a.buf.byteOffset, b.buf.byteOffset, out.byteOffset, a.buf.length); return out; }
      }
      return host.mul(inputs, params, spec);
    },
    relu: (inputs, params, spec) => {
      const [x] = inputs;
      if (inArena(x.buf)) {
        const out = arenaOut(x.buf.length);
        if (out !== undefined) { elementwise(0, x.buf.byteOffset, 0, out.byteOffset, x.buf.length); return out; }
      }
      return host.relu(inputs, params, spec);
    },
    reluGrad: (inputs, params, spec) => {
      const [x, ct] = inputs;
      if (inArena(x.buf) && inArena(ct.buf)) {
        const out = arenaOut(x.buf.length);
        if (out !== undefined) { elementwise(1, x.buf.byteOffset, ct.buf.byteOffset, out.byteOffset, x.buf.length); return out; }
      }
      return host.reluGrad(inputs, params, spec);
    },
    sum: (inputs, params, spec) => {
      const [x] = inputs;
      // Column sums (the bias gradient), float64 accumulation in row order as the host kernel.
      if (x.shape.length === 2 && params.axes.length === 1 && params.axes[0] === 0 && inArena(x.buf)) {
        const [rows, cols] = x.shape as [number, number];
        const out = alloc('float32', cols, false);
        const acc = arena.malloc(cols * 8);
        zero(acc, cols * 8);
        sumRowsK(x.buf.byteOffset, acc, rows, cols);
        out.set(new Float64Array(memory.buffer, acc, cols));
        arena.release(acc, cols * 8);
        return out;
      }
      // Per-channel sums over [N, C, …] (the conv bias's gradient): the host's float64 chain per channel.
      if (imagesInWasm && isChannelSum(x, params.axes) && inArena(x.buf)) {
        const [N, C] = x.shape as [number, number], S = x.buf.length / (N * C);
        // One chain a channel, through its planes in image order: C chains of N segments, C·S floats apart.
        const [acc] = chainSums(x.buf, undefined, undefined, C, C, S, N, C * S * 4, 0) as [Float64Array];
        const out = alloc('float32', C, false);
        out.set(acc);
        return out;
      }
      return host.sum(inputs, params, spec);
    },
  };

  const hostMomentum = hostFused(alloc).momentumStep;
  const momentumStep = (p: Operand<Data>, v: Operand<Data>, g: Operand<Data>, hp: MomentumHyper): readonly [Data, Data] => {
    if (!(p.buf instanceof Float32Array && v.buf instanceof Float32Array && g.buf instanceof Float32Array)) return hostMomentum(p, v, g, hp);
    const n = p.buf.length;
    const pOut = alloc('float32', n, false) as Float32Array, vOut = alloc('float32', n, false) as Float32Array;
    const hyper = [hp.lr, hp.gamma, hp.l2, hp.nesterov ? 1 : 0] as const;
    if (inArena(p.buf) && inArena(v.buf) && inArena(g.buf) && inArena(pOut) && inArena(vOut)) {
      const ptrs = [p.buf.byteOffset, v.buf.byteOffset, g.buf.byteOffset, pOut.byteOffset, vOut.byteOffset, n] as const;
      if (worker === undefined || n < PARALLEL_MIN_ELEMENTS) {
        momentumShared(...ptrs, ...hyper);
        return [pOut, vOut];
      }
      // Memory-bound: both cores' loads in flight, in chunks of whole cache lines.
      const chunk = 16 * Math.ceil(n / 16 / MAX_CHUNKS);
      resetCounter();
      const [pp, vp, gp, po, vo] = ptrs;
      both(
        { kind: 'momentum', args: { p: pp, v: vp, g: gp, pOut: po, vOut: vo, n, lr: hp.lr, gamma: hp.gamma, l2: hp.l2, nesterov: hyper[3], chunk, counter } },
        () => momentumChunks(...ptrs, ...hyper, chunk, counter),
      );
      return [pOut, vOut];
    }
    // Some array is outside the kernel's memory: copy through the private one, in place there.
    const P = 0, V = align(n * 4), G = align(V + n * 4);
    ensureLocal(G + n * 4);
    local32.set(p.buf, P / 4);
    local32.set(v.buf, V / 4);
    local32.set(g.buf, G / 4);
    momentumLocal(P, V, G, P, V, n, ...hyper);
    pOut.set(local32.subarray(P / 4, P / 4 + n));
    vOut.set(local32.subarray(V / 4, V / 4 + n));
    return [pOut, vOut];
  };

  return {
    name: 'cpu',
    description: `cpu: WebAssembly SIMD GEMM (${relaxed ? 'relaxed-SIMD FMA' : 'SIMD mul+add; Node 20 needs --experimental-wasm-relaxed-simd for FMA'}), ${worker ? `2 threads (${worker.kind})` : `1 thread${oneThreadReason}`}`,
    host: true,
    relaxed,
    threads: worker ? 2 : 1,
    kernels,
    fused: { momentumStep, adamStep: hostFused(alloc).adamStep },
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
    memory: () => {
      const a = arena.stats(), h = pool.memory();
      return { liveBytes: a.tensorBytes + h.liveBytes, peakBytes: Math.max(a.peakTensorBytes + h.peakBytes, 0), buffers: a.tensorBlocks + h.buffers };
    },
    arenaStats: arena.stats,
    inKernelMemory: inArena,
    workerRunning: () => worker !== undefined && ctrl !== undefined && Atomics.load(ctrl, READY) === 1,
    dispose: () => {
      if (worker !== undefined && ctrl !== undefined) {
        Atomics.store(ctrl, SEQ, -1);
        Atomics.notify(ctrl, SEQ);
        worker.terminate();
        worker = undefined;
      }
    },
  };
};
