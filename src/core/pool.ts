/**
 * Host memory for the host backends (reference, and the cpu backend past its
 * kernel memory): typed arrays, with freed large ones kept for reuse.
 *
 * Why reuse: a fresh ArrayBuffer of a few MiB is mapped page by page as it is
 * first written, and on these machines that costs ~0.2-0.6 ms for the 1.5 MB
 * weight matrix of the headline network, against ~0.05 ms for writing the same
 * bytes into memory already mapped. A training step makes several such arrays.
 *
 * How: buffers come back through `free`, which the tensor layer calls when the
 * last tensor using a buffer is disposed (by `dispose`, by `tidy`, or by the
 * garbage-collection safety net in tensor.ts). Nothing here waits for, or asks
 * for, a garbage collection.
 */
import type { Data, DType } from './primitives.js';
import type { MemoryStats } from './backend.js';

/** Arrays smaller than this (bytes) are left to the engine's own allocator (and its collector). */
export const MIN_POOLED_BYTES = 64 * 1024;
/** Free memory kept for reuse, at most; beyond it buffers are left to the collector. */
const MAX_FREE_BYTES = 512 * 1024 * 1024;

export interface HostPool {
  /** A typed array of n elements (zeroed unless `zeroed` is false: then its contents are arbitrary). */
  alloc(dtype: DType, n: number, zeroed: boolean): Data;
  /** Counts an array made elsewhere as live (a buffer handed over without a copy). */
  adopt(data: Data): Data;
  /** Gives an array back; the caller must hold no view of it any more. */
  free(data: Data): void;
  memory(): MemoryStats;
  /** Arrays served from freed memory and freshly allocated (for tests and benchmarks). */
  stats(): { readonly fresh: number; readonly reused: number; readonly freeBytes: number };
}

/** A pool of host typed arrays with its own accounting (one per backend). */
export const createHostPool = (): HostPool => {
  const free = new Map<string, ArrayBuffer[]>();
  let freeBytes = 0,
    fresh = 0,
    reused = 0,
    liveBytes = 0,
    peakBytes = 0,
    buffers = 0;
  const keyOf = (bytes: number) => String(bytes);
  const count = (bytes: number) => {
    liveBytes += bytes;
    buffers++;
    if (liveBytes > peakBytes) peakBytes = liveBytes;
  };
  return {
    alloc: (dtype, n, zeroed) => {
      const Ctor = dtype === 'float32' ? Float32Array : Float64Array;
      const bytes = n * Ctor.BYTES_PER_ELEMENT;
      count(bytes);
      if (bytes < MIN_POOLED_BYTES) return new Ctor(n);
      const recycled = free.get(keyOf(bytes))?.pop();
      if (recycled === undefined) {
        fresh++;
        return new Ctor(n);
      }
      freeBytes -= bytes;
      reused++;
      const view = new Ctor(recycled);
      if (zeroed) view.fill(0);
      return view;
    },
    adopt: (data) => {
      count(data.byteLength);
      return data;
    },
    free: (data) => {
      const bytes = data.byteLength;
      liveBytes -= bytes;
      buffers--;
      // Only whole buffers are reused: a view into a larger one is left to the collector.
      if (bytes < MIN_POOLED_BYTES || data.byteOffset !== 0 || data.buffer.byteLength !== bytes) return;
      if (freeBytes + bytes > MAX_FREE_BYTES || data.buffer instanceof SharedArrayBuffer) return;
      let list = free.get(keyOf(bytes));
      if (list === undefined) {
        list = [];
        free.set(keyOf(bytes), list);
      }
      list.push(data.buffer as ArrayBuffer);
      freeBytes += bytes;
    },
    memory: () => ({ liveBytes, peakBytes, buffers }),
    stats: () => ({ fresh, reused, freeBytes }),
  };
};
