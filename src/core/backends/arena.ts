/**
 * Tensor memory inside the cpu backend's WebAssembly memory.
 *
 * Why: the GEMM can only read WebAssembly memory. With tensors in ordinary
 * ArrayBuffers every product copied both operands in and the result out (V8
 * copies into a SharedArrayBuffer element by element), and every momentum
 * update copied five arrays: about a fifth of a training epoch. Tensors whose
 * values already live in the kernel's memory are read and written in place.
 *
 * How: a bump allocator whose freed blocks merge with free neighbours (and give
 * the end of the used space back to the bump pointer); a request takes a free
 * block of its exact size (a training loop asks for the same few sizes over and
 * over), else the front of the smallest larger one, else new space. So memory
 * freed in one shape serves any other. Tensor blocks are given back explicitly
 * (`freeFloat32`), when the tensor layer releases a buffer (dispose, tidy, or
 * its garbage-collection safety net); nothing here asks for a collection.
 * Tensor blocks are capped in live bytes (`tensorCap`) and in address space
 * (`tensorSpace`): past either, `allocFloat32` returns undefined and the
 * backend uses ordinary memory, so code that never disposes degrades to copies
 * instead of failing. Blocks the backend uses for itself (pack buffers, staged
 * operands) are released explicitly too.
 */

const PAGE = 65536;
/** Memory is grown in steps of this many bytes (each grow call costs a little). */
const GROW_STEP = 32 * 1024 * 1024;
const ALIGN = 64;

const alignUp = (x: number): number => Math.ceil(x / ALIGN) * ALIGN;

export interface ArenaOptions {
  /** At most this many bytes of live tensor blocks. */
  readonly tensorCap: number;
  /** The memory's declared maximum, in pages. */
  readonly maxPages: number;
  /** Tensor blocks end below this address; the rest is kept for the backend's own blocks (pack buffers, staged operands). */
  readonly tensorSpace: number;
  /** Zeroes `bytes` at `offset` (the kernel's memory.fill: a typed-array fill over shared memory is slow). */
  readonly zero: (offset: number, bytes: number) => void;
}

export interface Arena {
  /** Offset of a block of at least `bytes` (backend-internal; give it back with `release`). */
  malloc(bytes: number): number;
  release(offset: number, bytes: number): void;
  /** A Float32Array view for a tensor (zeroed unless `zeroed` is false), or undefined past the tensor cap. */
  allocFloat32(n: number, zeroed?: boolean): Float32Array | undefined;
  /** Gives back a block `allocFloat32` handed out. */
  freeFloat32(x: Float32Array): void;
  /** Whether `x` is a view into this memory (then `x.byteOffset` is its address). */
  owns(x: Float32Array): boolean;
  /** A Float32Array over the whole memory as it is now (rebuild after any malloc). */
  view(): Float32Array;
  /** Live tensor bytes, and blocks handed out fresh and recycled (for benchmarks and tests). */
  stats(): {
    readonly tensorBytes: number;
    readonly peakTensorBytes: number;
    readonly tensorBlocks: number;
    readonly fresh: number;
    readonly recycled: number;
    readonly committedBytes: number;
  };
}

export const createArena = (memory: WebAssembly.Memory, opts: ArenaOptions): Arena => {
  let top = ALIGN; // offset 0 stays unused: a null address is never a block
  /** Everything below this has been handed out at some time: not known to be zero. */
  let highWater = top;
  // Free blocks, indexed by start, by end (to merge neighbours) and by size (to reuse exactly).
  const freeAt = new Map<number, number>();
  const freeEnd = new Map<number, number>();
  const bySize = new Map<number, Set<number>>();
  let tensorBytes = 0,
    peakTensorBytes = 0,
    tensorBlocks = 0,
    fresh = 0,
    recycled = 0;
  // Every buffer object the memory has handed out (a grown shared memory hands out a new one).
  const buffers = new WeakSet<ArrayBufferLike>();
  let whole = new Float32Array(memory.buffer);
  buffers.add(memory.buffer);

  const grow = (end: number): void => {
    const have = memory.buffer.byteLength;
    if (end <= have) return;
    const want = Math.min(opts.maxPages * PAGE, Math.max(end, have + GROW_STEP));
    if (end > want) {
      throw new RangeError(
        `cpu backend: ${end} bytes of kernel memory needed, more than its ${(opts.maxPages * PAGE) / 2 ** 30} GiB maximum ` +
          `(${tensorBytes} bytes of live tensors): run fewer models or data sets in one process, or use --jobs 1`,
      );
    }
    memory.grow(Math.ceil((want - have) / PAGE));
    buffers.add(memory.buffer);
    whole = new Float32Array(memory.buffer);
  };

  const addFree = (offset: number, size: number): void => {
    freeAt.set(offset, size);
    freeEnd.set(offset + size, offset);
    let starts = bySize.get(size);
    if (starts === undefined) {
      starts = new Set();
      bySize.set(size, starts);
    }
    starts.add(offset);
  };
  const removeFree = (offset: number): number => {
    const size = freeAt.get(offset)!;
    freeAt.delete(offset);
    freeEnd.delete(offset + size);
    const starts = bySize.get(size)!;
    starts.delete(offset);
    if (starts.size === 0) bySize.delete(size);
    return size;
  };

  /**
   * A block of `size` bytes ending by `limit`: a free block of exactly that size,
   * else the front of the smallest larger one (the rest stays free), else new
   * space from the bump pointer. Free blocks of any size serve any request, so
   * memory freed in one shape (an old data set) is reused in another.
   */
  const take = (size: number, limit = Infinity): { offset: number; reused: boolean } | undefined => {
    for (const offset of bySize.get(size) ?? []) {
      if (offset + size > limit) continue;
      removeFree(offset);
      return { offset, reused: true };
    }
    let best = -1,
      bestSize = Infinity;
    for (const [offset, blockSize] of freeAt) {
      if (blockSize > size && blockSize < bestSize && offset + size <= limit) {
        best = offset;
        bestSize = blockSize;
      }
    }
    if (best >= 0) {
      removeFree(best);
      addFree(best + size, bestSize - size);
      return { offset: best, reused: true };
    }
    if (top + size > limit) return undefined;
    grow(top + size);
    const offset = top;
    top += size;
    const reused = offset < highWater;
    highWater = Math.max(highWater, top);
    return { offset, reused };
  };

  /** Frees a block, merged with free neighbours; at the end of the used space it lowers the bump pointer. */
  const release = (offset: number, bytes: number): void => {
    let start = offset,
      size = alignUp(bytes);
    if (freeAt.has(start + size)) size += removeFree(start + size);
    const before = freeEnd.get(start);
    if (before !== undefined) {
      size += removeFree(before);
      start = before;
    }
    if (start + size === top) top = start;
    else addFree(start, size);
  };

  return {
    malloc: (bytes) => take(alignUp(bytes))!.offset,
    release,
    allocFloat32: (n, zeroed = true) => {
      const size = alignUp(n * 4);
      if (tensorBytes + size > opts.tensorCap) return undefined;
      // Never past the cap in address space either: freed blocks of other sizes
      // (an old data set) must not push the memory to its maximum.
      const block = take(size, opts.tensorSpace);
      if (block === undefined) return undefined;
      const { offset, reused } = block;
      // Fresh memory from the bump pointer has never been written; recycled blocks have.
      if (reused) {
        if (zeroed) opts.zero(offset, n * 4);
        recycled++;
      } else fresh++;
      tensorBytes += size;
      tensorBlocks++;
      if (tensorBytes > peakTensorBytes) peakTensorBytes = tensorBytes;
      const view = new Float32Array(memory.buffer, offset, n);
      buffers.add(view.buffer);
      return view;
    },
    freeFloat32: (x) => {
      const size = alignUp(x.length * 4);
      tensorBytes -= size;
      tensorBlocks--;
      release(x.byteOffset, size);
    },
    owns: (x) => buffers.has(x.buffer),
    view: () => {
      if (whole.buffer.byteLength !== memory.buffer.byteLength) whole = new Float32Array(memory.buffer);
      return whole;
    },
    stats: () => ({ tensorBytes, peakTensorBytes, tensorBlocks, fresh, recycled, committedBytes: highWater }),
  };
};
