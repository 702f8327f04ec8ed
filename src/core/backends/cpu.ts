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
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { Worker } from 'node:worker_threads';
import type { Backend, ElementwiseKernels, MomentumHyper } from '../backend.js';
import { referenceBackend } from './reference.js';
import { createArena, type Arena } from './arena.js';
import type { Data } from '../tensor.js';

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

const loadWasm = (name: string): Uint8Array<ArrayBuffer> => new Uint8Array(readFileSync(new URL(`./wasm/${name}`, import.meta.url)));

/**
 * Compiles the relaxed-SIMD kernels where V8 supports them, else the plain SIMD
 * ones: the GEMM over a shared memory, the element-wise kernels over a private one.
 */
const compileKernels = (): { shared: WebAssembly.Module; local: WebAssembly.Module; relaxed: boolean } => {
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    bytes = loadWasm('gemm-relaxed.wasm');
  } catch {
    throw new Error("the cpu backend's kernels are not built: run 'npm run build' (or 'npm ci', which builds them)");
  }
  try {
    setFlagsFromString('--experimental-wasm-relaxed-simd');
  } catch {
    /* older engines: fall through to validation */
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

// The worker: instantiate the same module on the same memory, then take part in
// the chunked calls posted through a shared Int32Array: [seq, done, job, args…],
// the momentum job's float arguments (slots 9-11) written and read as float32.
const JOB_GEMM = 0, JOB_MOMENTUM = 1;
const CTRL_INTS = 24;
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { module, memory, ctrl } = workerData;
const inst = new WebAssembly.Instance(module, { env: { memory } });
const { gemmChunks, momentumChunks } = inst.exports;
const c = new Int32Array(ctrl), f = new Float32Array(ctrl);
let seen = 0;
for (;;) {
  // Spin a few milliseconds before sleeping: a training step calls again within
  // that time, and waking from Atomics.wait costs 50-120 µs each call.
  let spins = 0;
  while (Atomics.load(c, 0) === seen) {
    if (++spins > 4000000) { Atomics.wait(c, 0, seen); spins = 0; }
  }
  seen = Atomics.load(c, 0);
  if (seen < 0) break;
  if (c[2] === ${JOB_GEMM}) {
    gemmChunks(c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11], c[12], c[13], c[14], c[15], c[16], c[17], c[18], c[19], c[20]);
  } else {
    momentumChunks(c[3], c[4], c[5], c[6], c[7], c[8], f[9], f[10], f[11], c[12], c[13], c[14]);
  }
  Atomics.store(c, 1, seen);
  Atomics.notify(c, 1);
}
parentPort.postMessage('bye');
`;

const align = (x: number): number => (x + 63) & ~63;

/**
 * Live tensor memory kept in the kernel's memory, at most (beyond it tensors use
 * ordinary memory): room for the CIFAR-100 training, validation and test
 * matrices (0.74 GB) and a training loop's working set.
 */
const TENSOR_CAP = 1280 * 1024 * 1024;
/** Kernel memory kept for the backend's own blocks (pack buffers, staged operands), out of reach of tensors. */
const OWN_SPACE = 256 * 1024 * 1024;

export interface CpuBackendOptions {
  /**
   * Threads per product: 2 puts the second core to work on every large product,
   * 1 leaves it free (for a second run beside this one: `--jobs 2`). Default:
   * the TAPEGRAD_THREADS environment variable, else 2 where the machine has two
   * cores or more. The results are bit for bit the same either way.
   */
  readonly threads?: 1 | 2;
}

/** The thread count: the option, else TAPEGRAD_THREADS, else what the machine has (at most 2). */
const threadsFrom = (opt: 1 | 2 | undefined): 1 | 2 => {
  if (opt !== undefined) return opt;
  const env = process.env['TAPEGRAD_THREADS'];
  if (env !== undefined && env !== '') {
    if (env !== '1' && env !== '2') throw new Error(`TAPEGRAD_THREADS=${env}: the cpu backend runs 1 or 2 threads per product`);
    return env === '1' ? 1 : 2;
  }
  return availableParallelism() >= 2 ? 2 : 1;
};

/** Creates the `cpu` backend. */
export const createCpuBackend = (opts: CpuBackendOptions = {}): Backend & {
  readonly relaxed: boolean; readonly threads: number; readonly memoryStats: Arena['stats'];
} => {
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

  let worker: Worker | undefined;
  let ctrl: Int32Array | undefined, ctrlF: Float32Array | undefined;
  let seq = 0;
  if (threads === 2) {
    const sab = new SharedArrayBuffer(CTRL_INTS * 4);
    ctrl = new Int32Array(sab);
    ctrlF = new Float32Array(sab);
    worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { module, memory, ctrl: sab } });
    worker.unref();
  }

  // Tensors live in the kernel's memory where they can (see arena.ts); the pack
  // buffers and staged operands of products are blocks of it too.
  const arena = createArena(memory, { tensorCap: TENSOR_CAP, tensorSpace: MAX_PAGES * PAGE - OWN_SPACE, maxPages: MAX_PAGES, zero });
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
   * Posts a job to the worker (its arguments from slot 3 on; those listed in
   * `floats` as float32), runs `mine`, the same call with this thread's own
   * buffers, here; waits for both.
   */
  const both = (job: number, args: readonly number[], mine: () => void, floats: readonly number[] = []): void => {
    const c = ctrl!;
    c[2] = job;
    for (let i = 0; i < args.length; i++) {
      if (floats.includes(i)) ctrlF![3 + i] = args[i]!;
      else c[3 + i] = args[i]!;
    }
    seq = seq + 1 > 0x3fffffff ? 1 : seq + 1;
    Atomics.store(c, 0, seq);
    Atomics.notify(c, 0);
    mine();
    let spins = 0;
    while (Atomics.load(c, 1) !== seq) {
      if (++spins > 200000) { Atomics.wait(c, 1, Atomics.load(c, 1), 1); spins = 0; }
    }
  };

  /** A copy of `x` in a temporary block of the kernel's memory (give it back with arena.release). */
  const stage = (x: Float32Array): number => {
    const off = arena.malloc(x.length * 4);
    arena.view().set(x, off / 4);
    return off;
  };

  const matmul = (a: Data, b: Data, m: number, k: number, n: number, transA: boolean, transB: boolean, out: Data): void => {
    if (!(a instanceof Float32Array) || !(b instanceof Float32Array) || !(out instanceof Float32Array)) {
      referenceBackend.matmul(a, b, m, k, n, transA, transB, out);
      return;
    }
    if (m === 0 || n === 0) return;
    if (k === 0) { out.fill(0); return; }
    // Operands in the kernel's memory are read in place; others are staged there.
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
      else both(JOB_GEMM, [m, n, k, A, sai, sap, B, sbp, sbj, C, n, ap1, bp1, s1, split, chunk, counter, parts], mine);
      if (parts !== 0) addParts(C, parts, count - 1, m * n);
    }
    if (!arena.owns(out)) out.set(arena.view().subarray(C / 4, C / 4 + m * n));
    for (const [off, bytes] of staged) arena.release(off, bytes);
  };

  type Fn = (...args: number[]) => void;
  const k = (name: string) => inst.exports[name] as Fn;
  const [reluK, reluGradK, addRowK, sumRowsK] = [k('relu'), k('reluGrad'), k('addRow'), k('sumRows')];
  const elementwise: ElementwiseKernels = {
    relu: (x, out) => {
      if (!arena.owns(x) || !arena.owns(out)) return false;
      reluK(x.byteOffset, out.byteOffset, x.length);
      return true;
    },
    reluGrad: (x, ct, out) => {
      if (!arena.owns(x) || !arena.owns(ct) || !arena.owns(out)) return false;
      reluGradK(x.byteOffset, ct.byteOffset, out.byteOffset, x.length);
      return true;
    },
    addRow: (a, b, out, rows, cols) => {
      if (!arena.owns(a) || !arena.owns(out)) return false;
      const owned = arena.owns(b);
      const B = owned ? b.byteOffset : stage(b);
      addRowK(a.byteOffset, B, out.byteOffset, rows, cols);
      if (!owned) arena.release(B, b.length * 4);
      return true;
    },
    sumRows: (x, out, rows, cols) => {
      if (!arena.owns(x)) return false;
      const acc = arena.malloc(cols * 8);
      zero(acc, cols * 8);
      sumRowsK(x.byteOffset, acc, rows, cols);
      out.set(new Float64Array(memory.buffer, acc, cols));
      arena.release(acc, cols * 8);
      return true;
    },
  };

  const momentumStep = (p: Float32Array, v: Float32Array, g: Float32Array, hp: MomentumHyper, pOut: Float32Array, vOut: Float32Array): void => {
    const n = p.length;
    const args = [hp.lr, hp.gamma, hp.l2, hp.nesterov ? 1 : 0] as const;
    if (arena.owns(p) && arena.owns(v) && arena.owns(g) && arena.owns(pOut) && arena.owns(vOut)) {
      const ptrs = [p.byteOffset, v.byteOffset, g.byteOffset, pOut.byteOffset, vOut.byteOffset, n] as const;
      if (worker === undefined || n < PARALLEL_MIN_ELEMENTS) {
        momentumShared(...ptrs, ...args);
        return;
      }
      // Memory-bound: both cores' loads in flight, in chunks of whole cache lines.
      const chunk = 16 * Math.ceil(n / 16 / MAX_CHUNKS);
      resetCounter();
      both(JOB_MOMENTUM, [...ptrs, ...args, chunk, counter], () => momentumChunks(...ptrs, ...args, chunk, counter), [6, 7, 8]);
      return;
    }
    // Some array is outside the kernel's memory: copy through the private one, in place there.
    const P = 0, V = align(n * 4), G = align(V + n * 4);
    ensureLocal(G + n * 4);
    local32.set(p, P / 4);
    local32.set(v, V / 4);
    local32.set(g, G / 4);
    momentumLocal(P, V, G, P, V, n, ...args);
    pOut.set(local32.subarray(P / 4, P / 4 + n));
    vOut.set(local32.subarray(V / 4, V / 4 + n));
  };

  return {
    name: 'cpu',
    description: `cpu: WebAssembly SIMD GEMM (${relaxed ? 'relaxed-SIMD FMA' : 'SIMD mul+add'}), ${worker ? '2 threads' : '1 thread'}`,
    relaxed,
    threads: worker ? 2 : 1,
    matmul,
    momentumStep,
    allocFloat32: arena.allocFloat32,
    owns: arena.owns,
    elementwise,
    memoryStats: arena.stats,
    dispose: () => {
      if (worker !== undefined && ctrl !== undefined) {
        Atomics.store(ctrl, 0, -1);
        Atomics.notify(ctrl, 0);
        void worker.terminate();
        worker = undefined;
      }
    },
  };
};
