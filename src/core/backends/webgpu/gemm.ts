/**
 * GEMM tiled through workgroup memory, and the convolutions as implicit GEMMs
 * on the same template.
 *
 * The template computes, per batch b, out_b[r, c] = Σ_k A_b(r, k)·B_b(k, c) for
 * r < M, c < N, k < K: a workgroup of 16×16 threads owns a 64×64 block of the
 * output, each thread 4×4 of it (rows ty + 16i, columns tx + 16j: neighbouring
 * threads touch neighbouring columns); per step it loads a 64×16 panel of A and
 * a 16×64 panel of B into workgroup memory (4 values per thread each), waits,
 * and runs 16 rank-1 updates from registers. How A and B are read and where the
 * result goes are WGSL functions the caller gives (`loadA`, `loadB`, `store`):
 * - matmul: plain row-major reads, a transpose being only another index;
 * - conv2d (per image): A the filters [F, C·KH·KW], B the image's patches read
 *   in place (no im2col buffer), out the image's [F, OH·OW] plane;
 * - conv2dGradInput (per image): A the filters seen as [C, F·KH·KW], B the
 *   cotangent at the output positions each input pixel feeds (stride holes read 0);
 * - conv2dGradWeight: A the cotangent [F, N·OH·OW], B the patches transposed.
 * Accumulation is float32 (the reference backend's is float64: the tests allow
 * float32 rounding).
 */
import type { Conv2dParams } from '../../kernels-nd.js';
import type { Shape } from '../../shape.js';

const BM = 64,
  BN = 64,
  BK = 16;

/** A GEMM's sizes and its three access functions (WGSL, each with the signature the template calls). */
export interface GemmSpec {
  readonly batch: number;
  readonly m: number;
  readonly n: number;
  readonly k: number;
  readonly inputs: number;
  /** fn loadA(b: u32, r: u32, k: u32) -> f32, called only with r < M, k < K. */
  readonly loadA: string;
  /** fn loadB(b: u32, k: u32, c: u32) -> f32, called only with k < K, c < N. */
  readonly loadB: string;
  /** fn store(b: u32, r: u32, c: u32, v: f32), called only with r < M, c < N. */
  readonly store: string;
}

/** The shader and its workgroup counts. */
export interface GemmShader {
  readonly wgsl: string;
  readonly groups: readonly [number, number, number];
}

export const gemmShader = (s: GemmSpec): GemmShader => {
  const ins = Array.from({ length: s.inputs }, (_, k) => `@group(0) @binding(${k}) var<storage, read> a${k}: array<f32>;`);
  const wgsl = `${ins.join('\n')}
@group(0) @binding(${s.inputs}) var<storage, read_write> out: array<f32>;
const M = ${s.m}u;
const N = ${s.n}u;
const K = ${s.k}u;
${s.loadA}
${s.loadB}
${s.store}
var<workgroup> As: array<f32, ${BK * BM}>;
var<workgroup> Bs: array<f32, ${BK * BN}>;
@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let b = wid.z;
  let row0 = wid.y * ${BM}u;
  let col0 = wid.x * ${BN}u;
  let tid = lid.y * 16u + lid.x;
  var acc: array<f32, 16>;
  for (var i = 0u; i < 16u; i++) { acc[i] = 0.0; }
  for (var k0 = 0u; k0 < K; k0 += ${BK}u) {
    for (var l = 0u; l < 4u; l++) {
      let e = tid + l * 256u;
      // A panel: e → (row e / BK, k e % BK); B panel: e → (k e / BN, column e % BN).
      let ar = row0 + e / ${BK}u;
      let ak = k0 + e % ${BK}u;
      var av = 0.0;
      if (ar < M && ak < K) { av = loadA(b, ar, ak); }
      As[(e % ${BK}u) * ${BM}u + e / ${BK}u] = av;
      let bk = k0 + e / ${BN}u;
      let bc = col0 + e % ${BN}u;
      var bv = 0.0;
      if (bk < K && bc < N) { bv = loadB(b, bk, bc); }
      Bs[e] = bv;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${BK}u; kk++) {
      var ar: array<f32, 4>;
      var br: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) {
        ar[i] = As[kk * ${BM}u + lid.y + 16u * i];
        br[i] = Bs[kk * ${BN}u + lid.x + 16u * i];
      }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) { acc[i * 4u + j] = fma(ar[i], br[j], acc[i * 4u + j]); }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let r = row0 + lid.y + 16u * i;
    for (var j = 0u; j < 4u; j++) {
      let c = col0 + lid.x + 16u * j;
      if (r < M && c < N) { store(b, r, c, acc[i * 4u + j]); }
    }
  }
}`;
  return { wgsl, groups: [Math.ceil(s.n / BN), Math.ceil(s.m / BM), s.batch] };
};

/**
 * out[r, c] = Σ_p A[r, p]·B[p, c] for each of `batch` pairs laid one after
 * another (a: batch × m×k, or k×m when transA; b: batch × k×n, or n×k when transB).
 */
export const matmulShader = (batch: number, m: number, k: number, n: number, transA: boolean, transB: boolean): GemmShader =>
  gemmShader({
    batch,
    m,
    n,
    k,
    inputs: 2,
    loadA: `fn loadA(b: u32, r: u32, p: u32) -> f32 { return a0[b * ${m * k}u + ${transA ? `p * ${m}u + r` : `r * ${k}u + p`}]; }`,
    loadB: `fn loadB(b: u32, p: u32, c: u32) -> f32 { return a1[b * ${k * n}u + ${transB ? `c * ${k}u + p` : `p * ${n}u + c`}]; }`,
    store: `fn store(b: u32, r: u32, c: u32, v: f32) { out[b * ${m * n}u + r * ${n}u + c] = v; }`,
  });

/** Output height and width of a convolution. */
const convOut = (h: number, w: number, kh: number, kw: number, { stride, padding }: Conv2dParams): [number, number] => [
  Math.floor((h + 2 * padding - kh) / stride) + 1,
  Math.floor((w + 2 * padding - kw) / stride) + 1,
];

/** x's value at image b, channel c, row ih, column iw (signed: the padding reads 0). */
const pixel = (name: string, C: number, H: number, W: number): string => `fn ${name}(b: u32, c: u32, ih: i32, iw: i32) -> f32 {
  if (ih < 0 || iw < 0 || ih >= ${H} || iw >= ${W}) { return 0.0; }
  return a1[((b * ${C}u + c) * ${H}u + u32(ih)) * ${W}u + u32(iw)];
}`;

/** conv2d of x [N, C, H, W] with w [F, C, KH, KW]: per image, W[F, C·KH·KW] · patches[C·KH·KW, OH·OW]. Inputs [w, x]. */
export const conv2dShader = (xs: Shape, ws: Shape, p: Conv2dParams): GemmShader => {
  const [N, C, H, W] = xs as [number, number, number, number];
  const [F, , KH, KW] = ws as [number, number, number, number];
  const [OH, OW] = convOut(H, W, KH, KW, p);
  return gemmShader({
    batch: N,
    m: F,
    n: OH * OW,
    k: C * KH * KW,
    inputs: 2,
    loadA: `fn loadA(b: u32, f: u32, q: u32) -> f32 { return a0[f * ${C * KH * KW}u + q]; }`,
    loadB: `${pixel('px', C, H, W)}
fn loadB(b: u32, q: u32, o: u32) -> f32 {
  let c = q / ${KH * KW}u;
  let kh = (q / ${KW}u) % ${KH}u;
  let kw = q % ${KW}u;
  let oh = o / ${OW}u;
  let ow = o % ${OW}u;
  return px(b, c, i32(oh * ${p.stride}u + kh) - ${p.padding}, i32(ow * ${p.stride}u + kw) - ${p.padding});
}`,
    store: `fn store(b: u32, f: u32, o: u32, v: f32) { out[(b * ${F}u + f) * ${OH * OW}u + o] = v; }`,
  });
};

/**
 * conv2d's VJP for the images: dx[n, c, ih, iw] = Σ_{f, kh, kw} w[f, c, kh, kw]·ct[n, f, oh, ow]
 * where ih = oh·stride + kh − padding (and likewise for columns); per image a GEMM of
 * w seen as [C, F·KH·KW] with the cotangent gathered at those (oh, ow). Inputs [w, ct].
 */
export const conv2dGradInputShader = (ctShape: Shape, ws: Shape, inputShape: Shape, p: Conv2dParams): GemmShader => {
  const [N, F, OH, OW] = ctShape as [number, number, number, number];
  const [, C, KH, KW] = ws as [number, number, number, number];
  const [, , H, W] = inputShape as [number, number, number, number];
  const s = p.stride;
  return gemmShader({
    batch: N,
    m: C,
    n: H * W,
    k: F * KH * KW,
    inputs: 2,
    loadA: `fn loadA(b: u32, c: u32, q: u32) -> f32 { return a0[((q / ${KH * KW}u) * ${C}u + c) * ${KH * KW}u + q % ${KH * KW}u]; }`,
    loadB: `fn loadB(b: u32, q: u32, o: u32) -> f32 {
  let f = q / ${KH * KW}u;
  let kh = i32((q / ${KW}u) % ${KH}u);
  let kw = i32(q % ${KW}u);
  let th = i32(o / ${W}u) + ${p.padding} - kh;
  let tw = i32(o % ${W}u) + ${p.padding} - kw;
  if (th < 0 || tw < 0 || th % ${s} != 0 || tw % ${s} != 0) { return 0.0; }
  let oh = th / ${s};
  let ow = tw / ${s};
  if (oh >= ${OH} || ow >= ${OW}) { return 0.0; }
  return a1[((b * ${F}u + f) * ${OH}u + u32(oh)) * ${OW}u + u32(ow)];
}`,
    store: `fn store(b: u32, c: u32, o: u32, v: f32) { out[(b * ${C}u + c) * ${H * W}u + o] = v; }`,
  });
};

/**
 * conv2d's VJP for the filters: dw[f, q] = Σ_{n, oh, ow} ct[n, f, oh, ow]·patch(n, q, oh, ow),
 * q = (c, kh, kw): one GEMM of the cotangent [F, N·OH·OW] with the patches transposed. Inputs [ct, x].
 */
export const conv2dGradWeightShader = (ctShape: Shape, xs: Shape, filterShape: Shape, p: Conv2dParams): GemmShader => {
  const [N, F, OH, OW] = ctShape as [number, number, number, number];
  const [, C, H, W] = xs as [number, number, number, number];
  const [, , KH, KW] = filterShape as [number, number, number, number];
  const P = OH * OW;
  return gemmShader({
    batch: 1,
    m: F,
    n: C * KH * KW,
    k: N * P,
    inputs: 2,
    loadA: `fn loadA(b: u32, f: u32, t: u32) -> f32 { return a0[((t / ${P}u) * ${F}u + f) * ${P}u + t % ${P}u]; }`,
    loadB: `${pixel('px', C, H, W)}
fn loadB(b: u32, t: u32, q: u32) -> f32 {
  let n = t / ${P}u;
  let o = t % ${P}u;
  let c = q / ${KH * KW}u;
  let kh = (q / ${KW}u) % ${KH}u;
  let kw = q % ${KW}u;
  return px(n, c, i32((o / ${OW}u) * ${p.stride}u + kh) - ${p.padding}, i32((o % ${OW}u) * ${p.stride}u + kw) - ${p.padding});
}`,
    store: `fn store(b: u32, f: u32, q: u32, v: f32) { out[f * ${C * KH * KW}u + q] = v; }`,
  });
};
