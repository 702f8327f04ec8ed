/**
 * The cpu backend's float32 convolutions: im2col / col2im around the product
 * (conv-gemm.ts), with the unrolling and regrouping as image.wat's loops over
 * the kernel's memory, and, on the WebAssembly path, conv.wat's direct stride-1
 * convolution that skips the column matrix. With a native BLAS the columns go
 * to its sgemm instead (the direct loops are WebAssembly SIMD, slower than the
 * library's wide vectors).
 */
import type { Conv2dParams } from '../../kernels-nd.js';
import type { Shape } from '../../shape.js';
import { col2im, columnBounds, convGemmKernels, im2col, regroup, type Geometry } from '../conv-gemm.js';
import type { GemmInto } from './gemm.js';
import type { CpuMemory } from './memory.js';
import { PARALLEL_MIN_ELEMENTS, type CpuThreads } from './threads.js';

export interface ConvKernels {
  conv2d(x: Float32Array, xs: Shape, w: Float32Array, ws: Shape, p: Conv2dParams): Float32Array;
  gradInput(ct: Float32Array, w: Float32Array, ws: Shape, inputShape: Shape, p: Conv2dParams): Float32Array;
  gradWeight(ct: Float32Array, x: Float32Array, xs: Shape, filterShape: Shape, p: Conv2dParams): Float32Array;
}

/**
 * `inWasm`: the unrolling in WebAssembly (else conv-gemm's TypeScript loops,
 * the same values); `direct`: conv.wat's stride-1 forward where it applies.
 */
export const convKernels = (mem: CpuMemory, threads: CpuThreads, gemm: GemmInto, inWasm: boolean, direct: boolean): ConvKernels => {
  const { arena, memory, inArena } = mem;
  const [unrollK, regroupK, convImagesK] = [mem.fn('unroll'), mem.fn('regroup'), mem.fn('convImages')];
  /**
   * Unrolls images n0… into columns (mode 0), or rolls columns back onto dx
   * (mode 1), split between the threads in units of rows that write apart
   * (im2col: rows (c, a); col2im: channels, each dx element's additions on one
   * thread in row order), so the split never changes a result.
   */
  const unrollRows = (mode: 0 | 1, g: Geometry, n0: number, count: number, imgs: Float32Array, cols: Float32Array): void => {
    const bounds = columnBounds(g);
    const bp = arena.malloc(bounds.byteLength);
    new Int32Array(memory.buffer, bp, bounds.length).set(bounds);
    const x = imgs.byteOffset + n0 * g.C * g.H * g.W * 4,
      planeStep = g.C * g.H * g.W * 4;
    const units = mode === 0 ? g.C * g.KH : g.C;
    const args = {
      mode,
      x,
      col: cols.byteOffset,
      bounds: bp,
      planeStep,
      count,
      C: g.C,
      H: g.H,
      W: g.W,
      KH: g.KH,
      KW: g.KW,
      OH: g.OH,
      OW: g.OW,
      stride: g.stride,
      pad: g.padding,
      units,
    };
    if (!threads.parallel || units < 2 || count * g.ckk * g.ohw < PARALLEL_MIN_ELEMENTS) {
      unrollK(mode, x, cols.byteOffset, bp, planeStep, count, g.C, g.H, g.W, g.KH, g.KW, g.OH, g.OW, g.stride, g.padding, 0, units);
    } else threads.chunked('unroll', args, units, 1);
    arena.release(bp, bounds.byteLength);
  };
  /** conv-gemm's regroup in WebAssembly (one memory.copy a plane), split between the threads by filter. */
  const regroupPlanes = (nchw: Float32Array, mat: Float32Array, g: Geometry, n0: number, count: number, toMatrix: boolean): void => {
    const tm = toMatrix ? 1 : 0;
    if (!threads.parallel || g.F < 2 || g.F * count * g.ohw < PARALLEL_MIN_ELEMENTS)
      regroupK(nchw.byteOffset, mat.byteOffset, g.F, count, n0, g.ohw, tm, 0, g.F);
    else threads.chunked('regroup', { nchw: nchw.byteOffset, mat: mat.byteOffset, F: g.F, count, n0, ohw: g.ohw, toMatrix: tm }, g.F, 1);
  };
  const viaGemm = convGemmKernels({
    unroll: !inWasm
      ? { im2col, col2im }
      : {
          im2col: (x, g, n0, count, col) => (inArena(x) && inArena(col) ? unrollRows(0, g, n0, count, x, col) : im2col(x, g, n0, count, col)),
          col2im: (col, g, n0, count, dx) => (inArena(dx) && inArena(col) ? unrollRows(1, g, n0, count, dx, col) : col2im(col, g, n0, count, dx)),
          regroup: (nchw, mat, g, n0, count, toMatrix) =>
            inArena(nchw) && inArena(mat) ? regroupPlanes(nchw, mat, g, n0, count, toMatrix) : regroup(nchw, mat, g, n0, count, toMatrix),
        },
    gemm,
    scratch: (n) => {
      const off = arena.malloc(n * 4);
      return arena.view().subarray(off / 4, off / 4 + n);
    },
    release: (x) => arena.release(x.byteOffset, x.length * 4),
    alloc: (n, zeroed) => mem.alloc('float32', n, zeroed) as Float32Array,
  });

  const CONV_ROWS = mem.constant('CONV_ROWS');
  /**
   * conv2d at stride 1 straight from the images (conv.wat): the GEMM path's
   * values without the column matrix or the regrouping. Where it does not apply
   * (another stride, rows not a multiple of 8 outputs, operands outside the
   * kernel's memory), undefined: the GEMM path runs.
   */
  const directConv = (x: Float32Array, xs: Shape, w: Float32Array, ws: Shape, { stride, padding }: Conv2dParams): Float32Array | undefined => {
    const [N, C, H, W] = xs as [number, number, number, number],
      [F, , KH, KW] = ws as [number, number, number, number];
    const HP = H + 2 * padding,
      WP = W + 2 * padding,
      OH = HP - KH + 1,
      OW = WP - KW + 1;
    if (!direct || stride !== 1 || !inArena(x) || OH <= 0 || OW % 8 !== 0 || C * HP * WP * 4 > mem.perThreadBytes) return undefined;
    const out = mem.arenaOut(N * F * OH * OW);
    if (out === undefined) return undefined;
    // Filters in blocks of CONV_ROWS, [block][tap][row] (zero past F); each tap's byte offset in a padded image.
    const ckk = C * KH * KW,
      blocks = Math.ceil(F / CONV_ROWS);
    const wpBytes = blocks * ckk * CONV_ROWS * 4,
      bytes = wpBytes + ckk * 4;
    const base = arena.malloc(bytes),
      offs = base + wpBytes;
    const packed = new Float32Array(memory.buffer, base, blocks * ckk * CONV_ROWS);
    packed.fill(0);
    for (let f = 0; f < F; f++) for (let t = 0; t < ckk; t++) packed[(Math.floor(f / CONV_ROWS) * ckk + t) * CONV_ROWS + (f % CONV_ROWS)] = w[f * ckk + t]!;
    const tapOffsets = new Int32Array(memory.buffer, offs, ckk);
    for (let c = 0; c < C; c++) for (let a = 0; a < KH; a++) for (let b = 0; b < KW; b++) tapOffsets[(c * KH + a) * KW + b] = ((c * HP + a) * WP + b) * 4;
    const [own, theirs] = mem.ownBuffers;
    if (!threads.parallel || N < 2) convImagesK(x.byteOffset, base, offs, out.byteOffset, own, 0, N, C, H, W, padding, F, ckk, OH, OW);
    else
      threads.chunked('conv', { x: x.byteOffset, wp: base, offs, out: out.byteOffset, xp: theirs, N, C, H, W, pad: padding, F, ckk, OH, OW }, N, 1, {
        xp: own,
      });
    arena.release(base, bytes);
    return out;
  };

  return {
    conv2d: (x, xs, w, ws, p) => directConv(x, xs, w, ws, p) ?? viaGemm.conv2d(x, xs, w, ws, p),
    gradInput: viaGemm.gradInput,
    gradWeight: viaGemm.gradWeight,
  };
};
