/**
 * The cpu backend's image kernels other than convolution: batch
 * normalization's passes and max pooling, as image.wat's SIMD loops over the
 * kernel's memory, split between the threads where the work is large. Each
 * equals the host kernel it replaces bit for bit (float64 sums in the host's
 * order), so results never depend on where a tensor lives.
 */
import * as KN from '../../kernels-nd.js';
import type { CpuMemory } from './memory.js';
import { PARALLEL_MIN_ELEMENTS, type CpuThreads } from './threads.js';

export interface ImageKernels {
  /** Batch normalization's passes (KN.jsPasses where the arrays are not in the kernel's memory). */
  readonly bnPasses: KN.BatchNormPasses;
  /** image.wat's maxPool over `planes` planes (grad 0: forward; 1: gradient, accumulating; 2: gradient, writing every element). */
  maxPool(
    x: number,
    ct: number,
    out: number,
    planes: number,
    H: number,
    W: number,
    size: number,
    stride: number,
    OH: number,
    OW: number,
    grad: 0 | 1 | 2,
  ): void;
  /**
   * image.wat's chainSums: float64 chains over `chains` runs of float32 data in
   * the kernel's memory (chain q: `steps` segments of S floats from x + 4·q·S,
   * `stride` bytes apart), each from zero; `mode` 0 sums x, 1 sums
   * (x − mean[q mod C])², 2 sums ct and ct·(x − mean[q mod C]). Returns the
   * sums (two arrays of `chains` in mode 2).
   */
  chainSums(
    x: Float32Array,
    ct: Float32Array | undefined,
    mean: Float64Array | undefined,
    chains: number,
    C: number,
    S: number,
    steps: number,
    stride: number,
    mode: 0 | 1 | 2,
  ): Float64Array[];
  /** image.wat's bnApply over the N·C planes of x [N, C, S] (and ct) into out, with 5 float64 coefficients a channel. */
  applyPlanes(x: Float32Array, ct: Float32Array | undefined, out: Float32Array, coef: Float64Array, N: number, C: number, S: number): void;
}

export const imageKernels = (mem: CpuMemory, threads: CpuThreads): ImageKernels => {
  const { arena, memory, inArena, withF64 } = mem;
  const [maxPoolK, chainSumsK, bnApplyK, rowSumsK, applyRowsK] = ['maxPool', 'chainSums', 'bnApply', 'rowSums', 'applyRows'].map(mem.fn) as [
    ReturnType<typeof mem.fn>,
    ReturnType<typeof mem.fn>,
    ReturnType<typeof mem.fn>,
    ReturnType<typeof mem.fn>,
    ReturnType<typeof mem.fn>,
  ];
  /** Whether work of `units` units and `elements` elements stays on this thread. */
  const alone = (units: number, minUnits: number, elements: number): boolean => !threads.parallel || units < minUnits || elements < PARALLEL_MIN_ELEMENTS;

  const chainSums: ImageKernels['chainSums'] = (x, ct, mean, chains, C, S, steps, stride, mode) => {
    const pad = 4 * Math.ceil(chains / 4),
      sums = mode === 2 ? 2 : 1;
    const outBytes = 8 * pad * sums,
      bytes = outBytes + 8 * C;
    const base = arena.malloc(bytes);
    const out = new Float64Array(memory.buffer, base, pad * sums);
    out.fill(0);
    if (mean !== undefined) new Float64Array(memory.buffer, base + outBytes, C).set(mean);
    const [xp, cp, mp, op] = [x.byteOffset, ct?.byteOffset ?? 0, base + outBytes, base];
    // Chunks of whole vectors of chains.
    if (alone(chains, 8, chains * steps * S)) chainSumsK(xp, cp, mp, op, 0, chains, chains, C, S, steps, stride, mode);
    else threads.chunked('chains', { x: xp, ct: cp, mean: mp, out: op, chains, C, S, steps, stride, mode }, chains, 4);
    const result = Array.from({ length: sums }, (_z, k) => out.slice(k * pad, k * pad + chains));
    arena.release(base, bytes);
    return result;
  };

  const applyPlanes: ImageKernels['applyPlanes'] = (x, ct, out, coef, N, C, S) =>
    withF64([coef], ([pc]) => {
      const planes = N * C,
        mode = ct === undefined ? 0 : 1;
      const [xp, cp, op] = [x.byteOffset, ct?.byteOffset ?? 0, out.byteOffset];
      if (alone(planes, 2, planes * S)) bnApplyK(xp, cp, op, pc!, 0, planes, C, S, mode);
      else threads.chunked('apply', { x: xp, ct: cp, out: op, coef: pc!, planes, C, S, mode }, planes, 1);
    });

  /**
   * Sums over rows x [N, C] (one value a plane), image.wat's rowSums: each
   * channel's chain on one thread, split by channel pairs. mode 0/1 add onto
   * acc1 (mean given for 1), mode 2 onto acc1 (Σ ct) and acc2 (Σ ct·x̂).
   */
  const rowSums = (
    x: Float32Array,
    ct: Float32Array | undefined,
    mean: Float64Array | undefined,
    inv: Float64Array | undefined,
    acc1: Float64Array,
    acc2: Float64Array | undefined,
    N: number,
    C: number,
    mode: 0 | 1 | 2,
  ): void => {
    const none = new Float64Array(0);
    withF64([mean ?? none, inv ?? none, acc1, acc2 ?? none], ([pm, pi, p1, p2]) => {
      const [xp, cp] = [x.byteOffset, ct?.byteOffset ?? 0];
      if (alone(C, 4, N * C)) rowSumsK(xp, cp, pm!, pi!, p1!, p2!, N, C, 0, C, mode);
      else threads.chunked('rowSums', { x: xp, ct: cp, mean: pm!, inv: pi!, acc1: p1!, acc2: p2!, N, C, mode }, C, 2);
    });
  };

  /** bnApply over rows x [N, C]: the coefficients laid out per coefficient ([5][C]) so channel pairs load as vectors; split by rows. */
  const applyRows = (x: Float32Array, ct: Float32Array | undefined, out: Float32Array, coef: Float64Array, N: number, C: number): void => {
    const coefT = new Float64Array(5 * C);
    for (let c = 0; c < C; c++) for (let i = 0; i < 5; i++) coefT[i * C + c] = coef[5 * c + i]!;
    withF64([coefT], ([pc]) => {
      const mode = ct === undefined ? 0 : 1;
      const [xp, cp, op] = [x.byteOffset, ct?.byteOffset ?? 0, out.byteOffset];
      if (alone(N, 2, N * C)) applyRowsK(xp, cp, op, pc!, 0, N, C, mode);
      else threads.chunked('applyRows', { x: xp, ct: cp, out: op, coefT: pc!, N, C, mode }, N, 1);
    });
  };

  // Each plane's chain in WebAssembly, the planes' sums added per channel here in
  // plane order, as jsPasses does; rows (one value a plane) have their own
  // kernels, a lane a channel.
  const bnPasses: KN.BatchNormPasses = {
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

  return {
    bnPasses,
    chainSums,
    applyPlanes,
    maxPool: (x, ct, out, planes, H, W, size, stride, OH, OW, grad) => {
      if (alone(planes, 2, planes * H * W)) maxPoolK(x, ct, out, planes, H, W, size, stride, OH, OW, grad);
      else threads.chunked('pool', { x, ct, out, planes, H, W, size, stride, OH, OW, grad }, planes, 1);
    },
  };
};
