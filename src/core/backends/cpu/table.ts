/**
 * The cpu backend's kernel table: the host kernels (kernels.ts, kernels-nd.ts)
 * for every primitive, with the hot ones overridden by the paths in this
 * folder when their operands allow (float32, in the kernel's memory). Each
 * override equals bit for bit the host kernel it replaces, except the products
 * (and so the convolutions) on a native BLAS, which sum in the library's order.
 * A new primitive needs nothing here: the spread host table carries it; add an
 * override below only with a measured reason.
 */
import type { FusedKernels, KernelTable, Operand } from '../../backend.js';
import { hostFused, hostKernels, like, matmulDims } from '../../kernels.js';
import * as KN from '../../kernels-nd.js';
import type { Data } from '../../primitives.js';
import type { ConvKernels } from './conv.js';
import type { GemmInto } from './gemm.js';
import type { ImageKernels } from './image.js';
import { align, type CpuMemory } from './memory.js';
import { PARALLEL_MIN_ELEMENTS, type CpuThreads } from './threads.js';

export interface TableParts {
  readonly mem: CpuMemory;
  readonly threads: CpuThreads;
  readonly gemm: GemmInto;
  /** float64 products on a native BLAS's dgemm, where one is loaded (else the host's float64 loops). */
  readonly dgemm?: (a: Float64Array, b: Float64Array, m: number, k: number, n: number, transA: boolean, transB: boolean, out: Float64Array) => void;
  /** The float32 convolutions (undefined: the host's direct loops, for benchmarks that compare). */
  readonly conv?: ConvKernels;
  /** The image kernels in WebAssembly (undefined: the host's TypeScript loops everywhere). */
  readonly image?: ImageKernels;
}

/** b of shape [1, C, 1, …] against a of [N, C, …] (rank ≥ 3). */
const isChannelBias = (a: Operand<Data>, b: Operand<Data>): boolean =>
  a.shape.length >= 3 && b.shape.length === a.shape.length && b.buf.length === a.shape[1] && b.shape.every((d, i) => (i === 1 ? d === a.shape[1] : d === 1));
/** Sum over every axis but 1 of [N, C, …] (rank ≥ 3). */
const isChannelSum = (x: Operand<Data>, axes: readonly number[]): boolean =>
  x.shape.length >= 3 && axes.length === x.shape.length - 1 && [...axes].sort((p, q) => p - q).every((a, i) => a === (i === 0 ? 0 : i + 1));
const isRowBias = (a: Operand<Data>, b: Operand<Data>): boolean =>
  a.shape.length === 2 && b.buf.length === a.shape[1] && b.shape.length <= 2 && (b.shape.length < 2 || b.shape[0] === 1);
const sameShape = (a: Operand<Data>, b: Operand<Data>): boolean =>
  a.buf.length === b.buf.length && a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]);

export const cpuKernelTable = ({ mem, threads, gemm, dgemm, conv, image }: TableParts): { kernels: KernelTable<Data>; fused: FusedKernels<Data> } => {
  const { alloc, arena, inArena, arenaOut, memory, pool } = mem;
  const host = hostKernels(alloc);
  const [addRowK, sumRowsK, momentumK] = [mem.fn('addRow'), mem.fn('sumRows'), mem.fn('momentumStep')];
  const elementK = [mem.fn('relu'), mem.fn('reluGrad'), mem.fn('mul'), mem.fn('add')] as const;
  /**
   * An element-wise kernel over n floats of the kernel's memory (op 0 relu(a),
   * 1 reluGrad(x = a, ct = b), 2 mul(a, b)), split in chunks of whole cache
   * lines where it is large: each element is computed alone.
   */
  const elementwise = (op: 0 | 1 | 2 | 3, a: Float32Array, b: Float32Array | undefined, n: number): Float32Array | undefined => {
    const out = arenaOut(n);
    if (out === undefined) return undefined;
    const [ap, bp, op2] = [a.byteOffset, b?.byteOffset ?? 0, out.byteOffset];
    if (!threads.parallel || n < PARALLEL_MIN_ELEMENTS) elementK[op](ap, ...(op === 0 ? [] : [bp]), op2, n);
    else threads.chunked('elements', { op, a: ap, b: bp, out: op2, n }, n, 16);
    return out;
  };
  const convOn = (x: Data, w: Data, dtype: string): x is Float32Array =>
    conv !== undefined && x instanceof Float32Array && w instanceof Float32Array && dtype === 'float32';

  const kernels: KernelTable<Data> = {
    ...host,
    matmul: (inputs, params, spec) => {
      const [a, b] = inputs;
      const { m, k, n } = matmulDims(a.shape, b.shape, params.transA, params.transB);
      if (a.buf instanceof Float32Array && b.buf instanceof Float32Array && spec.dtype === 'float32') {
        const out = alloc('float32', m * n, false) as Float32Array;
        gemm(a.buf, b.buf, m, k, n, params.transA, params.transB, out);
        return out;
      }
      if (dgemm !== undefined && a.buf instanceof Float64Array && b.buf instanceof Float64Array && spec.dtype === 'float64') {
        const out = alloc('float64', m * n, k === 0) as Float64Array;
        if (m * n * k > 0) dgemm(a.buf, b.buf, m, k, n, params.transA, params.transB, out);
        return out;
      }
      return host.matmul(inputs, params, spec);
    },
    // float32 convolutions on the GEMM (float64 ones are for checking: the host loops).
    conv2d: (inputs, params, spec) => {
      const [x, w] = inputs;
      return convOn(x.buf, w.buf, spec.dtype) ? conv!.conv2d(x.buf, x.shape, w.buf as Float32Array, w.shape, params) : host.conv2d(inputs, params, spec);
    },
    conv2dGradInput: (inputs, params, spec) => {
      const [ct, w] = inputs;
      return convOn(ct.buf, w.buf, spec.dtype)
        ? conv!.gradInput(ct.buf, w.buf as Float32Array, w.shape, params.inputShape, params)
        : host.conv2dGradInput(inputs, params, spec);
    },
    conv2dGradWeight: (inputs, params, spec) => {
      const [ct, x] = inputs;
      return convOn(ct.buf, x.buf, spec.dtype)
        ? conv!.gradWeight(ct.buf, x.buf as Float32Array, x.shape, params.filterShape, params)
        : host.conv2dGradWeight(inputs, params, spec);
    },
    maxPool2d: (inputs, params, spec) => {
      const [x] = inputs,
        [N, C, H, W] = x.shape as [number, number, number, number];
      const OH = KN.slidingOut(H, params.size, params.stride, 0),
        OW = KN.slidingOut(W, params.size, params.stride, 0);
      const out = image !== undefined && inArena(x.buf) ? arenaOut(N * C * OH * OW) : undefined;
      if (out === undefined) return host.maxPool2d(inputs, params, spec);
      image!.maxPool(x.buf.byteOffset, 0, out.byteOffset, N * C, H, W, params.size, params.stride, OH, OW, 0);
      return out;
    },
    maxPool2dGrad: (inputs, params, spec) => {
      const [ct, x] = inputs,
        [N, C, H, W] = x.shape as [number, number, number, number];
      // Windows that overlap accumulate (the host kernel's float64 sums).
      if (image === undefined || params.stride < params.size || !inArena(x.buf) || !inArena(ct.buf) || spec.dtype !== 'float32')
        return host.maxPool2dGrad(inputs, params, spec);
      const OH = KN.slidingOut(H, params.size, params.stride, 0),
        OW = KN.slidingOut(W, params.size, params.stride, 0);
      // 2×2 windows at stride 2 tiling x, rows of 4k outputs: the kernel writes every element (no zeroing first).
      const whole = params.size === 2 && params.stride === 2 && H === 2 * OH && W === 2 * OW && OW % 4 === 0;
      const out = alloc('float32', x.buf.length, !whole);
      if (!inArena(out)) {
        pool.free(out);
        return host.maxPool2dGrad(inputs, params, spec);
      }
      image.maxPool(x.buf.byteOffset, ct.buf.byteOffset, out.byteOffset, N * C, H, W, params.size, params.stride, OH, OW, whole ? 2 : 1);
      return out;
    },
    channelMoments: ([x]) => KN.channelMoments(alloc, x.buf, x.shape, image?.bnPasses ?? KN.jsPasses).data,
    batchNorm: ([x, m, g, b], { eps }, out) =>
      KN.batchNorm(alloc, x.buf, x.shape, m.buf, g.buf, b.buf, eps, like(out.dtype), image?.bnPasses ?? KN.jsPasses).data,
    batchNormGrad: ([x, m, g, ct, sums], { eps }, out) =>
      KN.batchNormGrad(alloc, x.buf, x.shape, m.buf, g.buf, ct.buf, sums.buf, eps, like(out.dtype), image?.bnPasses ?? KN.jsPasses).data,
    batchNormParamGrad: ([x, m, ct], { eps }, out) =>
      KN.batchNormParamGrad(alloc, x.buf, x.shape, m.buf, ct.buf, eps, like(out.dtype), image?.bnPasses ?? KN.jsPasses).data,
    add: (inputs, params, spec) => {
      const [a, b] = inputs;
      // A value per channel over [N, C, …] (the conv bias): x + b as ((x − 0)·1 + b) in float64, the host's sum.
      if (image !== undefined && isChannelBias(a, b) && inArena(a.buf) && b.buf instanceof Float32Array) {
        const out = arenaOut(a.buf.length);
        if (out !== undefined) {
          const [N, C] = a.shape as [number, number],
            S = a.buf.length / (N * C);
          const coef = new Float64Array(5 * C);
          for (let c = 0; c < C; c++) coef.set([0, 1, b.buf[c]!], 5 * c);
          image.applyPlanes(a.buf, undefined, out, coef, N, C, S);
          return out;
        }
      }
      if (isRowBias(a, b) && inArena(a.buf) && b.buf instanceof Float32Array) {
        const out = arenaOut(a.buf.length);
        if (out !== undefined) {
          const owned = arena.owns(b.buf);
          const B = owned ? b.buf.byteOffset : mem.stage(b.buf);
          addRowK(a.buf.byteOffset, B, out.byteOffset, a.shape[0]!, a.shape[1]!);
          if (!owned) arena.release(B, b.buf.length * 4);
          return out;
        }
      }
      // Operands of one shape (a gradient's two terms), both in the kernel's memory.
      if (inArena(a.buf) && inArena(b.buf) && sameShape(a, b)) return elementwise(3, a.buf, b.buf, a.buf.length) ?? host.add(inputs, params, spec);
      return host.add(inputs, params, spec);
    },
    // Operands of one shape (the dropout mask and its gradient), both in the kernel's memory.
    mul: (inputs, params, spec) => {
      const [a, b] = inputs;
      return (inArena(a.buf) && inArena(b.buf) && sameShape(a, b) ? elementwise(2, a.buf, b.buf, a.buf.length) : undefined) ?? host.mul(inputs, params, spec);
    },
    relu: (inputs, params, spec) => {
      const [x] = inputs;
      return (inArena(x.buf) ? elementwise(0, x.buf, undefined, x.buf.length) : undefined) ?? host.relu(inputs, params, spec);
    },
    reluGrad: (inputs, params, spec) => {
      const [x, ct] = inputs;
      return (inArena(x.buf) && inArena(ct.buf) ? elementwise(1, x.buf, ct.buf, x.buf.length) : undefined) ?? host.reluGrad(inputs, params, spec);
    },
    sum: (inputs, params, spec) => {
      const [x] = inputs;
      // Column sums (the bias gradient), float64 accumulation in row order as the host kernel.
      if (x.shape.length === 2 && params.axes.length === 1 && params.axes[0] === 0 && inArena(x.buf)) {
        const [rows, cols] = x.shape as [number, number];
        const out = alloc('float32', cols, false);
        const acc = arena.malloc(cols * 8);
        new Float64Array(memory.buffer, acc, cols).fill(0);
        sumRowsK(x.buf.byteOffset, acc, rows, cols);
        out.set(new Float64Array(memory.buffer, acc, cols));
        arena.release(acc, cols * 8);
        return out;
      }
      // Per-channel sums over [N, C, …] (the conv bias's gradient): the host's float64 chain per channel.
      if (image !== undefined && isChannelSum(x, params.axes) && inArena(x.buf)) {
        const [N, C] = x.shape as [number, number],
          S = x.buf.length / (N * C);
        // One chain a channel, through its planes in image order: C chains of N segments, C·S floats apart.
        const [acc] = image.chainSums(x.buf, undefined, undefined, C, C, S, N, C * S * 4, 0) as [Float64Array];
        const out = alloc('float32', C, false);
        out.set(acc);
        return out;
      }
      return host.sum(inputs, params, spec);
    },
  };
  return { kernels, fused: { momentumStep: momentumStep(mem, threads, momentumK), adamStep: hostFused(alloc).adamStep } };
};

/** The fused momentum update: SIMD over the kernel's memory (both threads where large), else through the private memory. */
const momentumStep = (mem: CpuMemory, threads: CpuThreads, shared: (...args: number[]) => void): FusedKernels<Data>['momentumStep'] => {
  const { alloc, inArena } = mem;
  const hostMomentum = hostFused(alloc).momentumStep;
  const local = mem.localFn('momentumStep');
  return (p, v, g, hp) => {
    if (!(p.buf instanceof Float32Array && v.buf instanceof Float32Array && g.buf instanceof Float32Array)) return hostMomentum(p, v, g, hp);
    const n = p.buf.length;
    const pOut = alloc('float32', n, false) as Float32Array,
      vOut = alloc('float32', n, false) as Float32Array;
    const nesterov = hp.nesterov ? 1 : 0;
    if (inArena(p.buf) && inArena(v.buf) && inArena(g.buf) && inArena(pOut) && inArena(vOut)) {
      const ptrs = { p: p.buf.byteOffset, v: v.buf.byteOffset, g: g.buf.byteOffset, pOut: pOut.byteOffset, vOut: vOut.byteOffset, n };
      if (!threads.parallel || n < PARALLEL_MIN_ELEMENTS) shared(ptrs.p, ptrs.v, ptrs.g, ptrs.pOut, ptrs.vOut, n, hp.lr, hp.gamma, hp.l2, nesterov);
      // Memory-bound: both cores' loads in flight, in chunks of whole cache lines.
      else threads.chunked('momentum', { ...ptrs, lr: hp.lr, gamma: hp.gamma, l2: hp.l2, nesterov }, n, 16);
      return [pOut, vOut];
    }
    // Some array is outside the kernel's memory: copy through the private one, in place there.
    const P = 0,
      V = align(n * 4),
      G = align(V + n * 4);
    const local32 = mem.local32(G + n * 4);
    local32.set(p.buf, P / 4);
    local32.set(v.buf, V / 4);
    local32.set(g.buf, G / 4);
    local(P, V, G, P, V, n, hp.lr, hp.gamma, hp.l2, nesterov);
    pOut.set(local32.subarray(P / 4, P / 4 + n));
    vOut.set(local32.subarray(V / 4, V / 4 + n));
    return [pOut, vOut];
  };
};
