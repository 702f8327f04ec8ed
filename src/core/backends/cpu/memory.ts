/**
 * The cpu backend's memory: the compiled WebAssembly kernels, the shared
 * WebAssembly.Memory they (and the worker) run over, the arena that keeps large
 * float32 tensors in it, the host pool for the rest, and the small helpers that
 * place data there for a kernel call.
 */
import { createHostPool } from '../../pool.js';
import type { Alloc } from '../../kernels.js';
import type { Data } from '../../primitives.js';
import { createArena, type Arena } from '../arena.js';
import { wasmBytes } from '../platform.js';

export const PAGE = 65536;
export const MAX_PAGES = 32768; // 2 GiB: shared memories must declare a maximum
/** The most bytes the cpu backend's kernel memory can hold (tensors past it use ordinary memory). */
export const CPU_KERNEL_MEMORY_BYTES = MAX_PAGES * PAGE;
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

export const align = (x: number): number => (x + 63) & ~63;

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
    bytes = wasmBytes('gemm-relaxed.wasm');
  } catch {
    throw new Error("the cpu backend's kernels are not built: run 'npm run build' (or 'npm ci', which builds them)");
  }
  const relaxed = WebAssembly.validate(bytes);
  const variant = relaxed ? 'relaxed' : 'simd';
  return {
    shared: new WebAssembly.Module(relaxed ? bytes : wasmBytes('gemm-simd.wasm')),
    local: new WebAssembly.Module(wasmBytes(`local-${variant}.wasm`)),
    relaxed,
  };
};

/** A WebAssembly kernel: byte offsets and sizes in, nothing out. */
export type KernelFn = (...args: number[]) => void;

/** The kernels and the memory every part of the cpu backend works on. */
export interface CpuMemory {
  readonly module: WebAssembly.Module;
  readonly memory: WebAssembly.Memory;
  readonly relaxed: boolean;
  /** An exported kernel of the shared module, and one of the private (this thread's) module. */
  readonly fn: (name: string) => KernelFn;
  readonly localFn: (name: string) => KernelFn;
  /** An exported constant of the shared module (its blocking). */
  readonly constant: (name: string) => number;
  readonly arena: Arena;
  readonly pool: ReturnType<typeof createHostPool>;
  /** The backend's allocator: float32 tensors of 64 KiB and more in the arena while it has room, the rest on the host. */
  readonly alloc: Alloc;
  readonly inArena: (x: Data) => x is Float32Array;
  /** A float32 output in the kernel's memory, or undefined where it has no room. */
  readonly arenaOut: (n: number) => Float32Array | undefined;
  /** A copy of `x` in a temporary block of the kernel's memory (give it back with arena.release). */
  readonly stage: (x: Float32Array) => number;
  /** Runs f on copies of small float64 arrays placed in the kernel's memory (their addresses), then copies them back. */
  readonly withF64: (arrays: readonly Float64Array[], f: (ptrs: number[]) => void) => void;
  /** The private memory as floats, at least `bytes` long (grown on demand). */
  readonly local32: (bytes: number) => Float32Array;
  /** Each thread's work buffers (packed A, packed B, a scratch tile), bytes. */
  readonly perThreadBytes: number;
  /** This thread's and the worker's work buffers. */
  readonly ownBuffers: readonly [number, number];
  /** The chunked calls' counter, on a cache line of its own. */
  readonly counter: number;
}

export const createCpuMemory = (): CpuMemory => {
  const { shared: module, local, relaxed } = compileKernels();
  const memory = new WebAssembly.Memory({ initial: 64, maximum: MAX_PAGES, shared: true });
  const inst = new WebAssembly.Instance(module, { env: { memory } });
  // The element-wise kernels run on this thread over a private memory: copies in
  // and out of it run at memcpy speed (see gemm.wat.mjs).
  const localMemory = new WebAssembly.Memory({ initial: 1, maximum: MAX_PAGES });
  const localInst = new WebAssembly.Instance(local, { env: { memory: localMemory } });
  const fn = (name: string) => inst.exports[name] as KernelFn;
  const constant = (name: string) => (inst.exports[name] as WebAssembly.Global).value as number;
  // The kernel's blocking decides the pack buffers' sizes: read it from the module.
  const perThreadBytes = (constant('MC') * constant('KC') + constant('KC') * constant('NC') + 64) * 4;

  // Tensors live in the kernel's memory where they can (see arena.ts); the pack
  // buffers and staged operands of products are blocks of it too. float64
  // tensors, small ones, and those past the arena's cap use host memory.
  const arena = createArena(memory, { tensorCap: TENSOR_CAP, tensorSpace: MAX_PAGES * PAGE - OWN_SPACE, maxPages: MAX_PAGES, zero: fn('zero') });
  const pool = createHostPool();
  const alloc: Alloc = (dtype, n, zeroed) =>
    (dtype === 'float32' && n * 4 >= MIN_KERNEL_MEMORY_BYTES ? arena.allocFloat32(n, zeroed) : undefined) ?? pool.alloc(dtype, n, zeroed);
  // Only tensors of MIN_KERNEL_MEMORY_BYTES or more live there: the size test first spares small arrays
  // `x.buffer`, which V8 must materialize for a typed array kept on its heap (a third of a tiny op's time).
  const inArena = (x: Data): x is Float32Array => x instanceof Float32Array && x.length * 4 >= MIN_KERNEL_MEMORY_BYTES && arena.owns(x);
  const ownBuffers = [arena.malloc(perThreadBytes), arena.malloc(perThreadBytes)] as const;
  const counter = arena.malloc(64);

  let local32 = new Float32Array(localMemory.buffer);
  const ensureLocal = (bytes: number): Float32Array => {
    const have = localMemory.buffer.byteLength;
    if (bytes > have) {
      const pages = Math.ceil((bytes - have) / PAGE);
      if (have / PAGE + pages > MAX_PAGES) throw new RangeError(`cpu backend: an update needing ${bytes} bytes exceeds the 2 GiB kernel memory`);
      localMemory.grow(pages);
      local32 = new Float32Array(localMemory.buffer);
    }
    return local32;
  };

  return {
    module,
    memory,
    relaxed,
    fn,
    constant,
    arena,
    pool,
    alloc,
    inArena,
    perThreadBytes,
    ownBuffers,
    counter,
    localFn: (name) => localInst.exports[name] as KernelFn,
    arenaOut: (n) => {
      const out = alloc('float32', n, false);
      if (inArena(out)) return out;
      pool.free(out);
      return undefined;
    },
    stage: (x) => {
      const off = arena.malloc(x.length * 4);
      arena.view().set(x, off / 4);
      return off;
    },
    withF64: (arrays, f) => {
      const sizes = arrays.map((a) => align(a.length * 8)),
        bytes = sizes.reduce((p, q) => p + q, 0);
      const base = arena.malloc(Math.max(bytes, 8));
      const ptrs = sizes.map((_z, i) => base + sizes.slice(0, i).reduce((p, q) => p + q, 0));
      arrays.forEach((a, i) => {
        new Float64Array(memory.buffer, ptrs[i]!, a.length).set(a);
      });
      f(ptrs);
      arrays.forEach((a, i) => {
        a.set(new Float64Array(memory.buffer, ptrs[i]!, a.length));
      });
      arena.release(base, Math.max(bytes, 8));
    },
    local32: ensureLocal,
  };
};
