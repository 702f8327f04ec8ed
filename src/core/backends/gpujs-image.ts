/**
 * gpu.js kernel sources for the image primitives (conv2d, its two VJPs, max and
 * average pooling and their VJPs) on the `gpujs` backend: one output element
 * per thread, direct loops (no im2col), every shape and parameter baked in as a
 * literal so the loops have the constant bounds GLSL ES 1.0 requires. The
 * backend compiles each source once per (shapes, params) and caches it.
 *
 * Each source is a plain JS function of `this.thread.x` and flat arrays, so it
 * also runs as JavaScript (test/core/gpujs-image.test.ts checks the sources
 * against the host kernels in kernels-nd.ts without a GPU). Semantics follow
 * kernels-nd.ts exactly: NCHW, zero padding, and max pooling's tie-break (the
 * first maximum in window order wins; a NaN wins and stays). Sums accumulate in
 * float32 on the GPU (the host sums in float64 and rounds once).
 *
 * Gradients are gathers, not scatters (a fragment shader writes one output):
 * the input gradient loops over the filter taps whose output position lands on
 * it, and max pooling's gradient recomputes the argmax of each window that
 * contains the element, which picks the same element the forward pass did.
 *
 * Coordinates come from flat indices as floor((r + 0.5) / stride), as in
 * gpujs.ts: the half keeps GPU division (a multiply by a reciprocal) off the
 * integer boundary. Integer equality tests compare exact small integers held
 * in floats.
 */
import type { Shape } from '../shape.js';
import type { Conv2dParams, Pool2dParams } from '../kernels-nd.js';
import { slidingOut } from '../kernels-nd.js';

/** Lines binding `names[d]` to the coordinates of thread index i in a row-major box of `dims`. */
const unravel = (names: readonly string[], dims: readonly number[]): string[] => {
  const lines = ['const i = this.thread.x;', 'let r = i;'];
  let stride = dims.reduce((p, d) => p * d, 1);
  names.forEach((name, d) => {
    stride /= dims[d]!;
    if (d === names.length - 1) lines.push(`const ${name} = r;`);
    else lines.push(`const ${name} = Math.floor((r + 0.5) / ${stride});`, `r = r - ${name} * ${stride};`);
  });
  return lines;
};

/**
 * Lines that open a block for each window offset `k` (0 ≤ k < size) whose window
 * start `pos + pad − k` is a multiple of `stride` landing on an output index
 * `o` in [0, outLen): the taps of a sliding window that reach input position
 * `pos`. Where stride ≥ size at most one window reaches it, so there is no loop
 * (o = ⌊(pos + pad) / stride⌋ and k the remainder): max pooling's usual 2/2 ran
 * its gradient 16 comparisons per element instead of 4 (llvmpipe runs both
 * sides of a branch). Returns the lines and the braces to close.
 */
const tapLines = (pos: string, k: string, o: string, size: number, stride: number, pad: number, outLen: number): { open: string[]; close: number } => {
  const t = `t${o}`;
  const shifted = pad === 0 ? pos : `${pos} + ${pad}`;
  if (stride >= size) {
    return {
      open: [
        stride === 1 ? `const ${o} = ${shifted};` : `const ${o} = Math.floor((${shifted} + 0.5) / ${stride});`,
        `const ${k} = ${shifted} - ${o} * ${stride};`,
        `if (${k} < ${size} && ${o} < ${outLen}) {`,
      ],
      close: 1,
    };
  }
  return {
    open: [
      `for (let ${k} = 0; ${k} < ${size}; ${k}++) {`,
      `const ${t} = ${shifted} - ${k};`,
      stride === 1 ? `const ${o} = ${t};` : `const ${o} = Math.floor((${t} + 0.5) / ${stride});`,
      stride === 1 ? `if (${t} >= 0 && ${o} < ${outLen}) {` : `if (${t} >= 0 && ${o} * ${stride} === ${t} && ${o} < ${outLen}) {`,
    ],
    close: 2,
  };
};
/** The lines of nested taps over rows then columns around `body`. */
const tapsAround = (rows: ReturnType<typeof tapLines>, cols: ReturnType<typeof tapLines>, body: readonly string[]): string[] => [
  ...rows.open,
  ...cols.open,
  ...body,
  ...Array<string>(rows.close + cols.close).fill('}'),
];

/** The output shape of conv2d. */
export const conv2dOutShape = (xs: Shape, ws: Shape, { stride, padding }: Conv2dParams): [number, number, number, number] => [
  xs[0]!,
  ws[0]!,
  slidingOut(xs[2]!, ws[2]!, stride, padding),
  slidingOut(xs[3]!, ws[3]!, stride, padding),
];

/** conv2d: a0 = x [N, C, H, W], a1 = w [F, C, KH, KW]; one thread per output [N, F, OH, OW]. */
export const conv2dSource = (xs: Shape, ws: Shape, p: Conv2dParams): string => {
  const [, C, H, W] = xs as [number, number, number, number];
  const [F, , KH, KW] = ws as [number, number, number, number];
  const [N, , OH, OW] = conv2dOutShape(xs, ws, p);
  const { stride: s, padding: pad } = p;
  return [
    'function(a0, a1) {',
    ...unravel(['n', 'f', 'oi', 'oj'], [N, F, OH, OW]),
    'let acc = 0;',
    `for (let c = 0; c < ${C}; c++) {`,
    `for (let a = 0; a < ${KH}; a++) {`,
    `const y = oi * ${s} + a - ${pad};`,
    `if (y >= 0 && y < ${H}) {`,
    `for (let b = 0; b < ${KW}; b++) {`,
    `const x = oj * ${s} + b - ${pad};`,
    `if (x >= 0 && x < ${W}) {`,
    `acc += a0[((n * ${C} + c) * ${H} + y) * ${W} + x] * a1[((f * ${C} + c) * ${KH} + a) * ${KW} + b];`,
    '}',
    '}',
    '}',
    '}',
    '}',
    'return acc;',
    '}',
  ].join('\n');
};

/** conv2d's VJP for its images: a0 = ct [N, F, OH, OW], a1 = w [F, C, KH, KW]; one thread per input element [N, C, H, W]. */
export const conv2dGradInputSource = (xs: Shape, ws: Shape, p: Conv2dParams): string => {
  const [N, C, H, W] = xs as [number, number, number, number];
  const [F, , KH, KW] = ws as [number, number, number, number];
  const [, , OH, OW] = conv2dOutShape(xs, ws, p);
  const { stride: s, padding: pad } = p;
  return [
    'function(a0, a1) {',
    ...unravel(['n', 'c', 'y', 'x'], [N, C, H, W]),
    'let acc = 0;',
    `for (let f = 0; f < ${F}; f++) {`,
    ...tapsAround(tapLines('y', 'a', 'oi', KH, s, pad, OH), tapLines('x', 'b', 'oj', KW, s, pad, OW), [
      `acc += a0[((n * ${F} + f) * ${OH} + oi) * ${OW} + oj] * a1[((f * ${C} + c) * ${KH} + a) * ${KW} + b];`,
    ]),
    '}',
    'return acc;',
    '}',
  ].join('\n');
};

/** conv2d's VJP for its filters: a0 = ct [N, F, OH, OW], a1 = x [N, C, H, W]; one thread per filter element [F, C, KH, KW]. */
export const conv2dGradWeightSource = (xs: Shape, ws: Shape, p: Conv2dParams): string => {
  const [N, C, H, W] = xs as [number, number, number, number];
  const [F, , KH, KW] = ws as [number, number, number, number];
  const [, , OH, OW] = conv2dOutShape(xs, ws, p);
  const { stride: s, padding: pad } = p;
  return [
    'function(a0, a1) {',
    ...unravel(['f', 'c', 'a', 'b'], [F, C, KH, KW]),
    'let acc = 0;',
    `for (let n = 0; n < ${N}; n++) {`,
    `for (let oi = 0; oi < ${OH}; oi++) {`,
    `const y = oi * ${s} + a - ${pad};`,
    `if (y >= 0 && y < ${H}) {`,
    `for (let oj = 0; oj < ${OW}; oj++) {`,
    `const x = oj * ${s} + b - ${pad};`,
    `if (x >= 0 && x < ${W}) {`,
    `acc += a0[((n * ${F} + f) * ${OH} + oi) * ${OW} + oj] * a1[((n * ${C} + c) * ${H} + y) * ${W} + x];`,
    '}',
    '}',
    '}',
    '}',
    '}',
    'return acc;',
    '}',
  ].join('\n');
};

/** The output shape of a pooling. */
export const pool2dOutShape = (xs: Shape, { size, stride }: Pool2dParams): [number, number, number, number] => [
  xs[0]!,
  xs[1]!,
  slidingOut(xs[2]!, size, stride, 0),
  slidingOut(xs[3]!, size, stride, 0),
];

/**
 * Lines that leave in `bv` the maximum of a0's window starting at flat index
 * `base` and in `bi` its flat index: kernels-nd.ts's maxPoolArgmax, comparison
 * for comparison (the first maximum wins; a NaN wins and then nothing replaces it).
 */
const argmaxLines = (arr: string, base: string, size: number, W: number): string[] => [
  `let bi = ${base};`,
  `let bv = ${arr}[${base}];`,
  `for (let wa = 0; wa < ${size}; wa++) {`,
  `for (let wb = 0; wb < ${size}; wb++) {`,
  `const k = ${base} + wa * ${W} + wb;`,
  `const v = ${arr}[k];`,
  'if (bv === bv && (v > bv || v !== v)) {',
  'bv = v;',
  'bi = k;',
  '}',
  '}',
  '}',
];

/** maxPool2d (`kind` 'max') or avgPool2d ('avg'): a0 = x [N, C, H, W]; one thread per output [N, C, OH, OW]. */
export const pool2dSource = (kind: 'max' | 'avg', xs: Shape, p: Pool2dParams): string => {
  const [N, C, H, W] = xs as [number, number, number, number];
  const [, , OH, OW] = pool2dOutShape(xs, p);
  const { size, stride: s } = p;
  const base = `nc * ${H * W} + oi * ${s * W} + oj * ${s}`;
  const body =
    kind === 'max'
      ? [...argmaxLines('a0', 'base', size, W), 'return bv;']
      : [
          'let acc = 0;',
          `for (let wa = 0; wa < ${size}; wa++) {`,
          `for (let wb = 0; wb < ${size}; wb++) {`,
          `acc += a0[base + wa * ${W} + wb];`,
          '}',
          '}',
          `return acc / ${size * size};`,
        ];
  return ['function(a0) {', ...unravel(['nc', 'oi', 'oj'], [N * C, OH, OW]), `const base = ${base};`, ...body, '}'].join('\n');
};

/**
 * The VJP of maxPool2d (`kind` 'max': a0 = ct [N, C, OH, OW], a1 = x) or
 * avgPool2d ('avg': a0 = ct): one thread per input element, summing the
 * cotangents of the windows that contain it (for max, those whose argmax it is).
 */
export const pool2dGradSource = (kind: 'max' | 'avg', xs: Shape, p: Pool2dParams): string => {
  const [N, C, H, W] = xs as [number, number, number, number];
  const [, , OH, OW] = pool2dOutShape(xs, p);
  const { size, stride: s } = p;
  const ct = `a0[(nc * ${OH} + oi) * ${OW} + oj]`;
  const add =
    kind === 'max'
      ? [`const base = nc * ${H * W} + oi * ${s * W} + oj * ${s};`, ...argmaxLines('a1', 'base', size, W), 'if (bi === i) {', `acc += ${ct};`, '}']
      : [`acc += ${ct};`];
  return [
    `function(${kind === 'max' ? 'a0, a1' : 'a0'}) {`,
    ...unravel(['nc', 'y', 'x'], [N * C, H, W]),
    'let acc = 0;',
    ...tapsAround(tapLines('y', 'a', 'oi', size, s, 0, OH), tapLines('x', 'b', 'oj', size, s, 0, OW), add),
    kind === 'max' ? 'return acc;' : `return acc / ${size * size};`,
    '}',
  ].join('\n');
};
