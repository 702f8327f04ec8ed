/**
 * Recycles the memory of large tensor arrays.
 *
 * Why: a fresh ArrayBuffer of a few MiB is mapped page by page as it is first
 * written, and on these machines that costs ~0.2-0.6 ms for the 1.5 MB weight
 * matrix of the headline network, against ~0.05 ms for writing the same bytes
 * into memory already mapped. A training step makes several such arrays (the
 * gradient, the new weights, the new velocity), so fresh allocation alone was
 * about a quarter of an epoch.
 *
 * How: `allocData` hands out views whose ArrayBuffer comes from this pool, and
 * registers each view with a FinalizationRegistry. When the garbage collector
 * has collected a view (so no tensor holds it any more), its ArrayBuffer returns
 * to a free list keyed by byte length, and the next array of that length reuses
 * it (zeroed, unless the caller will write every element). Finalizers run
 * between tasks after a full collection (V8 runs one as ArrayBuffer memory
 * grows), so a loop that yields to the event loop (`fitAsync`, the CLI)
 * recycles continuously; a fully synchronous loop simply allocates fresh
 * memory, as before.
 *
 * Why it is safe: the ArrayBuffer is reachable only through the one view the
 * pool handed out. Library code never keeps a second view (`subarray`,
 * `.buffer`) of a tensor's array beyond the call that made it, and the public
 * API hands out copies only (see tensor.ts). The registry holds the buffer, not
 * the view, so registration does not keep tensors alive.
 */

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * V8's gc function, reached without a command-line flag (a new context picks up
 * --expose-gc), or null where that is refused.
 */
let gcFn: (() => void) | null | undefined;

/**
 * A full garbage collection, where the engine allows it (else nothing). The
 * finalizers that recycle collected tensors' memory (here and in the cpu
 * backend's arena) run after it, between tasks. Only a full collection clears
 * FinalizationRegistry targets; a young-generation one does not.
 */
export const collectGarbage = (): void => {
  if (gcFn === undefined) {
    try {
      setFlagsFromString('--expose-gc');
      gcFn = runInNewContext('gc') as typeof gcFn;
    } catch {
      gcFn = null;
    }
  }
  gcFn?.();
};

/**
 * Collects garbage and waits until the finalizers have given collected tensors'
 * memory back: call it after dropping a data set and before loading the next, so
 * the new one takes the old one's place instead of memory beside it (a data set
 * is most of a run's memory; the cpu backend keeps tensors within a cap).
 */
export const reclaimTensorMemory = async (): Promise<void> => {
  collectGarbage();
  for (let i = 0; i < 2; i++) await new Promise((resolve) => setTimeout(resolve, 0));
};

/** Arrays smaller than this (bytes) are left to the engine's own allocator. */
const MIN_POOLED_BYTES = 64 * 1024;
/** Free memory kept for reuse, at most; beyond it buffers are released. */
const MAX_FREE_BYTES = 512 * 1024 * 1024;

const free = new Map<number, ArrayBuffer[]>();
let freeBytes = 0;
let reused = 0;
let fresh = 0;

const registry = new FinalizationRegistry<ArrayBuffer>((buffer) => {
  const n = buffer.byteLength;
  if (freeBytes + n > MAX_FREE_BYTES) return;
  let list = free.get(n);
  if (list === undefined) {
    list = [];
    free.set(n, list);
  }
  list.push(buffer);
  freeBytes += n;
});

const take = (bytes: number): ArrayBuffer | undefined => {
  const list = free.get(bytes);
  const buffer = list?.pop();
  if (buffer === undefined) return undefined;
  freeBytes -= bytes;
  reused++;
  return buffer;
};

/** A backend's own memory: where its kernels read and write without copies. */
export interface KernelMemory {
  alloc(n: number, zeroed: boolean): Float32Array | undefined;
  owns(x: Float32Array): boolean;
}

let kernelMemory: KernelMemory | undefined;

/**
 * Where new large float32 arrays come from first: the selected backend's own
 * memory (backend.ts sets it), so its kernels need no copies; ours when it has none.
 */
export const setKernelMemory = (memory: KernelMemory | undefined): void => {
  kernelMemory = memory;
};

/** Whether the selected backend has memory of its own and `x` is not in it (its kernels would copy `x` in at every use). */
export const outsideKernelMemory = (x: Float32Array): boolean => kernelMemory !== undefined && !kernelMemory.owns(x);

/**
 * A Float32Array of length n: in the backend's memory, else on recycled memory
 * when some is free. Zeroed unless `zeroed` is false (for kernels that write every element).
 */
export const allocFloat32 = (n: number, zeroed = true): Float32Array => {
  const bytes = n * 4;
  if (bytes < MIN_POOLED_BYTES) return new Float32Array(n);
  const inKernel = kernelMemory?.alloc(n, zeroed);
  if (inKernel !== undefined) return inKernel;
  return pooled(Float32Array, n, zeroed);
};

/** A Float64Array of length n, on recycled memory when some is free; zeroed unless `zeroed` is false. */
export const allocFloat64 = (n: number, zeroed = true): Float64Array =>
  n * 8 < MIN_POOLED_BYTES ? new Float64Array(n) : pooled(Float64Array, n, zeroed);

/** A view of n elements on a recycled buffer of its size when one is free, else on a new one; registered for recycling. */
const pooled = <A extends Float32Array | Float64Array>(
  Ctor: { new (n: number): A; new (buffer: ArrayBuffer): A },
  n: number,
  zeroed: boolean,
): A => {
  const recycled = take(n * Ctor.prototype.BYTES_PER_ELEMENT);
  if (recycled === undefined) fresh++;
  const view = recycled === undefined ? new Ctor(n) : new Ctor(recycled);
  if (recycled !== undefined && zeroed) view.fill(0);
  registry.register(view, view.buffer as ArrayBuffer);
  return view;
};

/** What the pool has done so far (for benchmarks and tests). */
export const poolStats = (): { readonly fresh: number; readonly reused: number; readonly freeBytes: number } => ({ fresh, reused, freeBytes });
