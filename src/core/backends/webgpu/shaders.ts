/**
 * The WGSL of the backend's other kernels: reductions (a workgroup per output
 * element, tree-summed in workgroup memory, when the reduced extent is large;
 * a thread per output otherwise), argmax, pooling and its gradients, the
 * indexing primitives, batch normalization, and the fused optimizer updates.
 * Each function returns the shader's source; index.ts dispatches it.
 */
import type { Pool2dParams } from '../../kernels-nd.js';
import { stridesOf, type Shape } from '../../shape.js';
import { bindings, coordLines, elementMain, f32, indexExpr, WG } from './wgsl.js';

const prod = (s: readonly number[]): number => s.reduce((p, d) => p * d, 1);

/** From output index `o` (the kept shape), the offset of its first element in x; and the offset of reduced element j. */
const reduceIndexing = (shape: Shape, axes: readonly number[]): string => {
  const st = stridesOf(shape);
  const kept = shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const keptUsed = shape.map((_, d) => !axes.includes(d));
  const base = indexExpr(
    shape.map((_, d) => (keptUsed[d] ? st[d]! : 0)),
    kept,
  );
  const red = axes.filter((a) => shape[a] !== 1);
  const redShape = red.map((a) => shape[a]!);
  const redSt = stridesOf(redShape);
  const roff = red.map((a, k) => `((j / ${redSt[k]}u) % ${redShape[k]}u) * ${st[a]}u`);
  return [
    'fn baseOf(i: u32) -> u32 {',
    ...coordLines(kept, keptUsed),
    `  return ${base};`,
    '}',
    `fn offOf(j: u32) -> u32 { return ${roff.length === 0 ? '0u' : roff.join(' + ')}; }`,
  ].join('\n');
};

/**
 * A reduction of x over `axes` to the kept shape: `init`, then acc = combine(acc, value(x, extra…)).
 * `value` is a WGSL expression in `x` (the element) and `k` (its kept-shape output index);
 * `combine` an expression in `p` and `q`.
 */
export const reduceShader = (
  shape: Shape,
  axes: readonly number[],
  inputs: number,
  init: string,
  value: string,
  combine: string,
): { wgsl: string; outputs: number; perGroup: boolean } => {
  const outputs = prod(shape.map((d, i) => (axes.includes(i) ? 1 : d)));
  const count = prod(axes.map((a) => shape[a]!));
  const head = [bindings(inputs), reduceIndexing(shape, axes), `fn comb(p: f32, q: f32) -> f32 { return ${combine}; }`];
  const val = `fn val(k: u32, x: f32) -> f32 { return ${value}; }`;
  if (count < 64) {
    return {
      wgsl: [
        ...head,
        val,
        elementMain(
          outputs,
          [
            '  let base = baseOf(i);',
            `  var acc = ${init};`,
            `  for (var j = 0u; j < ${count}u; j++) { acc = comb(acc, val(i, a0[base + offOf(j)])); }`,
            '  out[i] = acc;',
          ].join('\n'),
        ),
      ].join('\n'),
      outputs,
      perGroup: false,
    };
  }
  return {
    wgsl: [
      ...head,
      val,
      `var<workgroup> part: array<f32, ${WG}>;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = wid.x + wid.y * 65535u;
  let live = i < ${outputs}u;
  var acc = ${init};
  if (live) {
    let base = baseOf(i);
    for (var j = lid.x; j < ${count}u; j += ${WG}u) { acc = comb(acc, val(i, a0[base + offOf(j)])); }
  }
  part[lid.x] = acc;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s = s / 2u) {
    if (lid.x < s) { part[lid.x] = comb(part[lid.x], part[lid.x + s]); }
    workgroupBarrier();
  }
  if (live && lid.x == 0u) { out[i] = part[0]; }
}`,
    ].join('\n'),
    outputs,
    perGroup: true,
  };
};

/** Index of the largest entry along `axis` (first on ties, NaN largest), as f32. */
export const argmaxShader = (xs: Shape, axis: number): string => {
  const outer = prod(xs.slice(0, axis)),
    inner = prod(xs.slice(axis + 1)),
    len = xs[axis]!;
  return [
    bindings(1),
    elementMain(
      outer * inner,
      [
        `  let base = (i / ${inner}u) * ${len * inner}u + i % ${inner}u;`,
        '  var best = 0u;',
        '  var bv = a0[base];',
        `  for (var j = 1u; j < ${len}u; j++) {`,
        '    if (bv != bv) { break; }',
        `    let v = a0[base + j * ${inner}u];`,
        '    if (v > bv || v != v) { bv = v; best = j; }',
        '  }',
        '  out[i] = f32(best);',
      ].join('\n'),
    ),
  ].join('\n');
};

const poolDims = (xs: Shape, { size, stride }: Pool2dParams) => {
  const [N, C, H, W] = xs as [number, number, number, number];
  return { N, C, H, W, OH: Math.floor((H - size) / stride) + 1, OW: Math.floor((W - size) / stride) + 1 };
};

/** `fn win(o) -> u32`: the flat input index of output o's window maximum (first on ties, NaN wins). */
const windowArgmax = (xs: Shape, p: Pool2dParams): string => {
  const { H, W, OH, OW } = poolDims(xs, p);
  return `fn win(o: u32) -> u32 {
  let plane = o / ${OH * OW}u;
  let oh = (o / ${OW}u) % ${OH}u;
  let ow = o % ${OW}u;
  let w0 = plane * ${H * W}u + oh * ${p.stride * W}u + ow * ${p.stride}u;
  var bi = w0;
  var bv = a0[w0];
  for (var a = 0u; a < ${p.size}u; a++) {
    for (var b = 0u; b < ${p.size}u; b++) {
      let k = w0 + a * ${W}u + b;
      let v = a0[k];
      if (bv == bv && (v > bv || v != v)) { bv = v; bi = k; }
    }
  }
  return bi;
}`;
};

/** maxPool2d: each window's maximum. Inputs [x]. */
export const maxPoolShader = (xs: Shape, p: Pool2dParams): string => {
  const { N, C, OH, OW } = poolDims(xs, p);
  return [bindings(1), windowArgmax(xs, p), elementMain(N * C * OH * OW, '  out[i] = a0[win(i)];')].join('\n');
};

/** maxPool2dSelect: each window's value of t at x's maximum. Inputs [x, t]. */
export const maxPoolSelectShader = (xs: Shape, p: Pool2dParams): string => {
  const { N, C, OH, OW } = poolDims(xs, p);
  return [bindings(2), windowArgmax(xs, p), elementMain(N * C * OH * OW, '  out[i] = a1[win(i)];')].join('\n');
};

/**
 * The windows that contain input pixel i: `body` runs per window with `o` its
 * output index (a thread per input element, gathering: no atomics).
 */
const eachWindowOf = (xs: Shape, p: Pool2dParams, body: string): string => {
  const { H, W, OH, OW } = poolDims(xs, p);
  const s = p.stride,
    k = p.size;
  return [
    `  let plane = i / ${H * W}u;`,
    `  let ih = i32((i / ${W}u) % ${H}u);`,
    `  let iw = i32(i % ${W}u);`,
    `  let oh0 = max(0, (ih - ${k - 1} + ${s - 1}) / ${s});`,
    `  let oh1 = min(${OH - 1}, ih / ${s});`,
    `  let ow0 = max(0, (iw - ${k - 1} + ${s - 1}) / ${s});`,
    `  let ow1 = min(${OW - 1}, iw / ${s});`,
    '  var acc = 0.0;',
    '  for (var oh = oh0; oh <= oh1; oh++) {',
    '    for (var ow = ow0; ow <= ow1; ow++) {',
    `      let o = plane * ${OH * OW}u + u32(oh) * ${OW}u + u32(ow);`,
    body,
    '    }',
    '  }',
    '  out[i] = acc;',
  ].join('\n');
};

/** maxPool2dGrad: each output's cotangent to its window's (first) maximum. Inputs [x, ct] (x first: win reads a0). */
export const maxPoolGradShader = (xs: Shape, p: Pool2dParams): string =>
  [bindings(2), windowArgmax(xs, p), elementMain(prod(xs), eachWindowOf(xs, p, '      if (win(o) == i) { acc += a1[o]; }'))].join('\n');

/** avgPool2d: each window's mean. Inputs [x]. */
export const avgPoolShader = (xs: Shape, p: Pool2dParams): string => {
  const { N, C, H, W, OH, OW } = poolDims(xs, p);
  return [
    bindings(1),
    elementMain(
      N * C * OH * OW,
      [
        `  let w0 = (i / ${OH * OW}u) * ${H * W}u + ((i / ${OW}u) % ${OH}u) * ${p.stride * W}u + (i % ${OW}u) * ${p.stride}u;`,
        '  var acc = 0.0;',
        `  for (var a = 0u; a < ${p.size}u; a++) { for (var b = 0u; b < ${p.size}u; b++) { acc += a0[w0 + a * ${W}u + b]; } }`,
        `  out[i] = acc * ${f32(1 / (p.size * p.size))};`,
      ].join('\n'),
    ),
  ].join('\n');
};

/** avgPool2dGrad: each output's cotangent shared over its window. Inputs [ct]. */
export const avgPoolGradShader = (xs: Shape, p: Pool2dParams): string =>
  [bindings(1), elementMain(prod(xs), `${eachWindowOf(xs, p, '      acc += a0[o];')}\n  out[i] = acc * ${f32(1 / (p.size * p.size))};`)].join('\n');

/** out = x's box at `starts` (out has the box's shape). Inputs [x]. */
export const sliceShader = (xs: Shape, starts: readonly number[], sizes: readonly number[]): string => {
  const st = stridesOf(xs);
  const base = starts.reduce((acc, s, d) => acc + s * st[d]!, 0);
  return [
    bindings(1),
    elementMain(
      prod(sizes),
      [
        ...coordLines(
          sizes,
          sizes.map(() => true),
        ),
        `  out[i] = a0[${base}u + ${indexExpr(st, sizes)}];`,
      ].join('\n'),
    ),
  ].join('\n');
};

/** x inside a frame of `value`, out of shape `outShape`. Inputs [x]. */
export const padToShader = (xs: Shape, outShape: Shape, before: readonly number[], value: number): string => {
  const st = stridesOf(xs);
  const lines = coordLines(
    outShape,
    outShape.map(() => true),
  );
  // Axes of length 1 have no c{d}: their coordinate is 0.
  const coord = (d: number) => (outShape[d] === 1 ? '0' : `i32(c${d})`);
  const inside = xs.map((n, d) => `(${coord(d)} - ${before[d]}) >= 0 && (${coord(d)} - ${before[d]}) < ${n}`);
  const idx = xs.map((_, d) => `u32(${coord(d)} - ${before[d]}) * ${st[d]}u`);
  return [
    bindings(1),
    elementMain(
      prod(outShape),
      [
        ...lines,
        `  var v = ${f32(value)};`,
        `  if (${inside.length === 0 ? 'true' : inside.join(' && ')}) { v = a0[${idx.length === 0 ? '0u' : idx.join(' + ')}]; }`,
        '  out[i] = v;',
      ].join('\n'),
    ),
  ].join('\n');
};

/** Copies x (shape `xs`) into the box of `out` (shape `outShape`) starting at `starts`. Inputs [x]; `out` is written in place. */
export const placeShader = (xs: Shape, outShape: Shape, starts: readonly number[]): string => {
  const ost = stridesOf(outShape);
  const base = starts.reduce((acc, s, d) => acc + s * ost[d]!, 0);
  return [
    bindings(1),
    elementMain(
      prod(xs),
      [
        ...coordLines(
          xs,
          xs.map(() => true),
        ),
        `  out[${base}u + ${indexExpr(ost, xs)}] = a0[i];`,
      ].join('\n'),
    ),
  ].join('\n');
};

/** take: entries `indices` (a u32 buffer, binding 0) along `axis` of x (binding 1). */
export const takeShader = (xs: Shape, axis: number, count: number): string => {
  const inner = prod(xs.slice(axis + 1)),
    len = xs[axis]!;
  const outer = prod(xs.slice(0, axis));
  return [
    '@group(0) @binding(0) var<storage, read> idx: array<u32>;',
    '@group(0) @binding(1) var<storage, read> a0: array<f32>;',
    '@group(0) @binding(2) var<storage, read_write> out: array<f32>;',
    elementMain(
      outer * count * inner,
      [`  let p = i / ${count * inner}u;`, `  let j = idx[(i / ${inner}u) % ${count}u];`, `  out[i] = a0[(p * ${len}u + j) * ${inner}u + i % ${inner}u];`].join(
        '\n',
      ),
    ),
  ].join('\n');
};

/** takeGrad: per element of x, the sum of the cotangents gathered from it (indices binding 0, ct binding 1). */
export const takeGradShader = (xs: Shape, axis: number, count: number): string => {
  const inner = prod(xs.slice(axis + 1)),
    len = xs[axis]!;
  return [
    '@group(0) @binding(0) var<storage, read> idx: array<u32>;',
    '@group(0) @binding(1) var<storage, read> a0: array<f32>;',
    '@group(0) @binding(2) var<storage, read_write> out: array<f32>;',
    elementMain(
      prod(xs),
      [
        `  let p = i / ${len * inner}u;`,
        `  let j = (i / ${inner}u) % ${len}u;`,
        `  let q = i % ${inner}u;`,
        '  var acc = 0.0;',
        `  for (var t = 0u; t < ${count}u; t++) { if (idx[t] == j) { acc += a0[(p * ${count}u + t) * ${inner}u + q]; } }`,
        '  out[i] = acc;',
      ].join('\n'),
    ),
  ].join('\n');
};

/** x [N, C, …] as planes: channel of flat index i. */
const planeDims = (xs: Shape) => ({ N: xs[0]!, C: xs[1]!, S: prod(xs.slice(2)) });

/**
 * channelMoments: a workgroup per channel; mean by a strided sum and a tree, then the biased
 * variance by a second pass over (x − mean)² (two passes, as the host does: no cancellation). Output [2, C].
 */
export const channelMomentsShader = (xs: Shape): string => {
  const { N, C, S } = planeDims(xs);
  const M = N * S;
  // Two tree sums in two arrays, inline: with one array reused through a helper, Mesa's GLES gave wrong variances.
  const tree = (arr: string) => `  for (var h = ${WG / 2}u; h > 0u; h = h / 2u) {
    if (lid.x < h) { ${arr}[lid.x] = ${arr}[lid.x] + ${arr}[lid.x + h]; }
    workgroupBarrier();
  }`;
  return `${bindings(1)}
var<workgroup> p0: array<f32, ${WG}>;
var<workgroup> p1: array<f32, ${WG}>;
fn at(c: u32, j: u32) -> f32 { return a0[((j / ${S}u) * ${C}u + c) * ${S}u + j % ${S}u]; }
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let c = wid.x;
  var s = 0.0;
  for (var j = lid.x; j < ${M}u; j += ${WG}u) { s += at(c, j); }
  p0[lid.x] = s;
  workgroupBarrier();
${tree('p0')}
  let mean = p0[0] / ${f32(M)};
  var q = 0.0;
  for (var j = lid.x; j < ${M}u; j += ${WG}u) { let d = at(c, j) - mean; q += d * d; }
  p1[lid.x] = q;
  workgroupBarrier();
${tree('p1')}
  if (lid.x == 0u) { out[c] = mean; out[${C}u + c] = p1[0] / ${f32(M)}; }
}`;
};

/** batchNorm: y = (x − μ_c)·g_c/√(σ²_c + eps) + b_c. Inputs [x, moments, g, b]. */
export const batchNormShader = (xs: Shape, eps: number): string => {
  const { C, S } = planeDims(xs);
  return [
    bindings(4),
    elementMain(prod(xs), [`  let c = (i / ${S}u) % ${C}u;`, `  out[i] = (a0[i] - a1[c]) * (a2[c] / sqrt(a1[${C}u + c] + ${f32(eps)})) + a3[c];`].join('\n')),
  ].join('\n');
};

/** batchNormParamGrad: a workgroup per channel: [Σ ct·x̂ ; Σ ct] as [2, C]. Inputs [x, moments, ct]. */
export const batchNormParamGradShader = (xs: Shape, eps: number): string => {
  const { N, C, S } = planeDims(xs);
  const M = N * S;
  return `${bindings(3)}
var<workgroup> p0: array<f32, ${WG}>;
var<workgroup> p1: array<f32, ${WG}>;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let c = wid.x;
  let mean = a1[c];
  var s = 0.0;
  var sx = 0.0;
  for (var j = lid.x; j < ${M}u; j += ${WG}u) {
    let k = ((j / ${S}u) * ${C}u + c) * ${S}u + j % ${S}u;
    let d = a2[k];
    s += d;
    sx += d * (a0[k] - mean);
  }
  p0[lid.x] = sx;
  p1[lid.x] = s;
  workgroupBarrier();
  for (var h = ${WG / 2}u; h > 0u; h = h / 2u) {
    if (lid.x < h) { p0[lid.x] = p0[lid.x] + p0[lid.x + h]; p1[lid.x] = p1[lid.x] + p1[lid.x + h]; }
    workgroupBarrier();
  }
  if (lid.x == 0u) { out[c] = p0[0] / sqrt(a1[${C}u + c] + ${f32(eps)}); out[${C}u + c] = p1[0]; }
}`;
};

/** batchNormGrad: g·inv·((ct − Σct/M) − x̂·Σct·x̂/M). Inputs [x, moments, g, ct, sums]. */
export const batchNormGradShader = (xs: Shape, eps: number): string => {
  const { N, C, S } = planeDims(xs);
  const M = N * S;
  return [
    bindings(5),
    elementMain(
      prod(xs),
      [
        `  let c = (i / ${S}u) % ${C}u;`,
        `  let inv = 1.0 / sqrt(a1[${C}u + c] + ${f32(eps)});`,
        `  out[i] = (a2[c] * inv) * ((a3[i] - a4[${C}u + c] / ${f32(M)}) - ((a0[i] - a1[c]) * inv) * (a4[c] / ${f32(M)}));`,
      ].join('\n'),
    ),
  ].join('\n');
};

/** momentumStep: inputs [p, v, g], outputs [p', v'], hyperparameters as uniforms (a schedule does not recompile). */
export const momentumShader = (n: number, nesterov: boolean): string => `${bindings(3, 2)}
struct H { lr: f32, gamma: f32, l2: f32, pad: f32 }
@group(0) @binding(5) var<uniform> h: H;
${elementMain(
  n,
  [
    '  let g = a2[i] + h.l2 * a0[i];',
    '  let v = h.gamma * a1[i] + h.lr * g;',
    `  out0[i] = a0[i] - ${nesterov ? '(h.gamma * v + h.lr * g)' : 'v'};`,
    '  out1[i] = v;',
  ].join('\n'),
)}`;

/**
 * adamStep: inputs [p, m, v, g], outputs [p', m', v']; hyperparameters as uniforms, 1 − β1 and 1 − β2
 * among them (computed in float64 on the host: 1 − f32(0.999) is 1.3e-5 off 0.001).
 */
export const adamShader = (n: number): string => `${bindings(4, 3)}
struct H { lr: f32, beta1: f32, beta2: f32, eps: f32, l2: f32, decay: f32, c1: f32, c2: f32, omb1: f32, omb2: f32, pad0: f32, pad1: f32 }
@group(0) @binding(7) var<uniform> h: H;
${elementMain(
  n,
  [
    '  let g = a3[i] + h.l2 * a0[i];',
    '  let m = h.beta1 * a1[i] + h.omb1 * g;',
    '  let v = h.beta2 * a2[i] + h.omb2 * g * g;',
    '  out0[i] = h.decay * a0[i] - (h.lr * (h.c1 * m)) / (sqrt(h.c2 * v) + h.eps);',
    '  out1[i] = m;',
    '  out2[i] = v;',
  ].join('\n'),
)}`;

/**
 * argsort as a bitonic sort, in three kernels over a work area of `rows × P` keys and indices
 * (P: the axis length rounded up to a power of 2; a row per position off the axis):
 * `argsortLoad` copies each row in with its indices (the padding past `len` sorts last),
 * `argsortStage` is one compare-and-swap pass (k, j as uniforms: one shader for all
 * log₂P·(log₂P+1)/2 passes), `argsortStore` writes the indices back along the axis. The order
 * is total (ties by index; NaN last ascending, first descending), so the result is the host's
 * stable sort exactly. O(P log² P) work per row, where the rank-counting kernel it replaces was
 * O(len²).
 */
export const argsortPlan = (
  xs: Shape,
  axis: number,
): { readonly rows: number; readonly p: number; readonly stages: ReadonlyArray<readonly [number, number]> } => {
  const len = xs[axis]!;
  let p = 1;
  while (p < len) p *= 2;
  const stages: Array<[number, number]> = [];
  for (let k = 2; k <= p; k *= 2) for (let j = k / 2; j >= 1; j /= 2) stages.push([k, j]);
  return { rows: prod(xs) / Math.max(len, 1), p, stages };
};

/** argsortLoad: input x; outputs the keys and the indices (as f32: exact below 2^24), rows × P. */
export const argsortLoadShader = (xs: Shape, axis: number, p: number): string => {
  const inner = prod(xs.slice(axis + 1)),
    len = xs[axis]!,
    rows = prod(xs) / len;
  return [
    bindings(1, 2),
    elementMain(
      rows * p,
      [
        `  let r = i / ${p}u;`,
        `  let t = i % ${p}u;`,
        `  let o = r / ${inner}u;`,
        `  let q = r % ${inner}u;`,
        `  out0[i] = select(0.0, a0[min((o * ${len}u + t) * ${inner}u + q, ${prod(xs) - 1}u)], t < ${len}u);`,
        '  out1[i] = f32(t);',
      ].join('\n'),
    ),
  ].join('\n');
};

/** argsortStage: one bitonic pass over the keys (out0) and indices (out1) in place; uniforms k, j. */
export const argsortStageShader = (len: number, rows: number, p: number, descending: boolean): string => {
  const [first, second] = descending ? ['true', 'false'] : ['false', 'true'];
  return [
    bindings(0, 2),
    'struct H { k: f32, j: f32, pad0: f32, pad1: f32 }',
    '@group(0) @binding(2) var<uniform> h: H;',
    // NaN by its bits: SwiftShader (Chromium) folds a != a to false, as WGSL allows an implementation to assume no NaN.
    `fn isnan_bits(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }
fn before(a: f32, ia: f32, b: f32, ib: f32) -> bool {
  if (ia >= ${len}.0) { return false; }
  if (ib >= ${len}.0) { return true; }
  let na = isnan_bits(a);
  let nb = isnan_bits(b);
  if (na && nb) { return ia < ib; }
  if (na) { return ${first}; }
  if (nb) { return ${second}; }
  if (a ${descending ? '>' : '<'} b) { return true; }
  if (a ${descending ? '<' : '>'} b) { return false; }
  return ia < ib;
}`,
    elementMain(
      rows * p,
      [
        '  let k = u32(h.k);',
        '  let j = u32(h.j);',
        `  let t = i % ${p}u;`,
        '  let l = t ^ j;',
        '  if (l <= t) { return; }',
        '  let u = i - t + l;',
        '  let up = (t & k) == 0u;',
        '  let swap = select(before(out0[i], out1[i], out0[u], out1[u]), before(out0[u], out1[u], out0[i], out1[i]), up);',
        '  if (swap) {',
        '    let a = out0[i]; out0[i] = out0[u]; out0[u] = a;',
        '    let b = out1[i]; out1[i] = out1[u]; out1[u] = b;',
        '  }',
      ].join('\n'),
    ),
  ].join('\n');
};

/** argsortStore: input the sorted indices (rows × P); out of x's shape, the indices along the axis. */
export const argsortStoreShader = (xs: Shape, axis: number, p: number): string => {
  const inner = prod(xs.slice(axis + 1)),
    len = xs[axis]!;
  return [
    bindings(1),
    elementMain(
      prod(xs),
      [
        `  let j = (i / ${inner}u) % ${len}u;`,
        `  let q = i % ${inner}u;`,
        `  let o = i / ${len * inner}u;`,
        `  out[i] = a0[(o * ${inner}u + q) * ${p}u + j];`,
      ].join('\n'),
    ),
  ].join('\n');
};

/** An index read from a float buffer, negative ones from the end (as the host's indexAt; out-of-range ones are not checked here). */
/**
 * Index checks on the device: an index that is not an integer in -len..len-1 (what the host
 * kernels throw on) is recorded in the executor's error word (buffer 0, bound after `out`): the
 * first one's op (1 gather, 2 scatterAdd), its value's bits, the axis length and the axis. The
 * executor reads the word with the next read or `finish()` (in the same copy: no extra map) and
 * fails that read with the host's message. The bad entry itself reads NaN (gather) or adds
 * nothing (scatterAdd): never another element's memory.
 */
const indexFn = (len: number, op: number, axis: number, binding: number): string =>
  [
    `@group(0) @binding(${binding}) var<storage, read_write> flag: array<atomic<u32>, 4>;`,
    // NaN by its bits first: an implementation may assume floats are not NaN (SwiftShader folds v != v).
    'fn ok(v: f32) -> bool {',
    `  return (bitcast<u32>(v) & 0x7fffffffu) <= 0x7f800000u && v == round(v) && v >= -${len}.0 && v < ${len}.0;`,
    '}',
    'fn report(v: f32) {',
    `  if (atomicCompareExchangeWeak(&flag[0], 0u, ${op}u).exchanged) {`,
    `    atomicStore(&flag[1], bitcast<u32>(v)); atomicStore(&flag[2], ${len}u); atomicStore(&flag[3], ${axis}u);`,
    '  }',
    '}',
    `fn at(v: f32) -> u32 { let k = i32(round(v)); return u32(select(k, k + ${len}, k < 0)); }`,
  ].join('\n');

/** gather (take_along_axis): inputs [x, idx]; out of idx's shape; a bad index gives NaN and is reported. */
export const gatherShader = (xs: Shape, is: Shape, axis: number): string => {
  const inner = prod(xs.slice(axis + 1)),
    len = xs[axis]!,
    m = is[axis]!;
  return [
    bindings(2),
    indexFn(len, 1, axis, 3),
    elementMain(
      prod(is),
      [
        `  let p = i / ${m * inner}u;`,
        `  let q = i % ${inner}u;`,
        '  let v = a1[i];',
        '  if (!ok(v)) { report(v); out[i] = bitcast<f32>(BITS_NAN); return; }',
        `  out[i] = a0[(p * ${len}u + at(v)) * ${inner}u + q];`,
      ].join('\n'),
    ),
  ].join('\n');
};

/**
 * scatterAdd: inputs [base, idx, src]; a thread per element of base sums the src entries aimed at
 * it (gathering: no atomics). Bad indices are reported by the threads of base's first row along
 * the axis (j = 0), each checking its own column of idx, so each is seen once; they add nothing.
 */
export const scatterAddShader = (bs: Shape, is: Shape, axis: number): string => {
  const inner = prod(bs.slice(axis + 1)),
    len = bs[axis]!,
    m = is[axis]!;
  return [
    bindings(3),
    indexFn(len, 2, axis, 4),
    elementMain(
      prod(bs),
      [
        `  let p = i / ${len * inner}u;`,
        `  let j = (i / ${inner}u) % ${len}u;`,
        `  let q = i % ${inner}u;`,
        '  var acc = a0[i];',
        `  for (var t = 0u; t < ${m}u; t++) {`,
        `    let o = (p * ${m}u + t) * ${inner}u + q;`,
        '    let v = a1[o];',
        '    if (!ok(v)) { if (j == 0u) { report(v); } continue; }',
        '    if (at(v) == j) { acc += a2[o]; }',
        '  }',
        '  out[i] = acc;',
      ].join('\n'),
    ),
  ].join('\n');
};
