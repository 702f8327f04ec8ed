/**
 * The `gpujs` backend: every primitive as a gpu.js kernel on WebGL (headless-gl
 * under Node), with tensors resident on the GPU as textures.
 *
 * Buffers (`GpuBuffer`):
 * - float32 tensors live in a gpu.js texture (pipeline mode, `immutable`: each
 *   kernel call yields a new texture) and stay there across kernels and steps;
 *   only `read` downloads them.
 * - float64 tensors live on the host (`host`): gpu.js computes in float32 only,
 *   so float64 kernels run the host kernels (kernels.ts) on the host. This is the
 *   backend's one explicit transfer: `cast` moves a tensor between the two
 *   (download + widen, or round + upload), and a float64 kernel handed a
 *   float32 texture downloads it first. float32 kernels refuse float64 operands
 *   (cast first) rather than upload silently.
 * - Empty tensors (n = 0) hold an empty host array: WebGL has no empty texture.
 * - `memory()` counts the buffers handed out (a float32 texture at its real
 *   size: texels × RGBA × 4 bytes, about 4× the values on a non-square n).
 *   Not counted: each cached kernel keeps its last output texture to render
 *   into next time (immutable mode re-renders into it once our copy is freed),
 *   and upload kernels keep a staging texture; `dispose` frees both.
 *
 * Kernels are generated per (primitive, shapes, params) as JS source strings
 * with every shape baked in as a literal (constant loop bounds, as GLSL ES 1.0
 * requires), compiled on first use, cached, and destroyed by `dispose`. Every
 * output is 1-D ([n]): gpu.js lays a 1-D output out on a near-square texture
 * (`closestSquareDimensions`), so 393,216 elements use a 627×628 texture, far
 * inside WebGL's size limit, and kernels address operands by flat row-major
 * index. Flat indices stay exact in float32 (n < 2^24 is checked), and a
 * coordinate is recovered as floor((i + 0.5) / stride): the half keeps the
 * quotient off the integer boundary, where GPU division (a multiply by a
 * reciprocal) can land one ulp low.
 *
 * gpu.js would silently fall back to its CPU mode when WebGL is unavailable;
 * this backend refuses instead and says why.
 */
import type { GPU, IKernelRunShortcut } from 'gpu.js';
import type { Backend, FusedKernels, KernelTable, MemoryStats, AdamHyper, MomentumHyper, Operand, OutSpec } from '../backend.js';
import type { Data, DType, KernelPrimitive } from '../primitives.js';
import { sizeOf, stridesOf, type Shape } from '../shape.js';
import { hostFused, hostKernels, type Alloc } from '../kernels.js';
import { detectGpu } from './detect.js';
import { loadGpuJs } from './platform.js';
import { conv2dGradInputSource, conv2dGradWeightSource, conv2dSource, pool2dGradSource, pool2dSource } from './gpujs-image.js';
import type { CompareOp } from '../kernels-nd.js';
import type { ChainKernel, FusedChain } from '../chains.js';

/** A gpu.js texture, as far as a buffer needs one (structural: the declarations need no gpu.js). */
export interface GpuTexture {
  /** The values, downloaded. */
  toArray(): unknown;
  /** Frees the texture. */
  delete(): void;
}

/** A tensor's memory on this backend: a texture (float32) or host data (float64, empty). */
export interface GpuBuffer {
  readonly dtype: DType;
  /** Number of elements. */
  readonly n: number;
  /** float32 with n > 0: the values, R channel of a float texture, flat row-major. */
  readonly tex?: GpuTexture;
  /** float64, or n = 0: the values on the host. */
  readonly host?: Data;
  /** Bytes it holds (a texture: its texels × 4 channels × 4 bytes). */
  readonly bytes: number;
}

type Op = Operand<GpuBuffer>;

/** Largest element count whose flat indices are exact in float32 (2^24). */
const MAX_ELEMENTS = 1 << 24;

// ---------------------------------------------------------------------------
// Kernel sources (GPU, float32). Variables: a0.. operands, v0.. their values.

/**
 * Per operand, how its flat index follows from the output's coordinates:
 * `null` reads element i itself (same shape as the output); otherwise one
 * stride per output axis (0 where broadcasting stretches the operand).
 */
type Access = readonly number[] | null;

/** Strides over `outShape`'s axes for an operand of `inShape` broadcast to it (NumPy rules). */
const broadcastAccess = (inShape: Shape, outShape: Shape): Access => {
  if (inShape.length === outShape.length && inShape.every((d, i) => d === outShape[i])) return null;
  const st = stridesOf(inShape);
  const off = outShape.length - inShape.length;
  return outShape.map((_, d) => (d < off || inShape[d - off] === 1 ? 0 : st[d - off]!));
};

/** Source lines binding c0..c{r-1}, the coordinates of flat index `i` in `shape` (axes of length 1 skipped). */
const coordLines = (shape: Shape, used: readonly boolean[]): string[] => {
  const st = stridesOf(shape);
  const lines = ['let r = i;'];
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1 || !used[d]) {
      // Still consume the axis: later axes read the remainder.
      if (shape[d] !== 1 && st[d] !== 1) lines.push(`r = r - Math.floor((r + 0.5) / ${st[d]}) * ${st[d]};`);
      continue;
    }
    if (st[d] === 1) lines.push(`const c${d} = r;`);
    else lines.push(`const c${d} = Math.floor((r + 0.5) / ${st[d]});`, `r = r - c${d} * ${st[d]};`);
  }
  return lines;
};

/** Flat-index expression for `access` given coordinates c0.. (see coordLines). */
const indexExpr = (access: readonly number[], shape: Shape): string => {
  const terms = access.flatMap((s, d) => (s === 0 || shape[d] === 1 ? [] : [s === 1 ? `c${d}` : `c${d} * ${s}`]));
  return terms.length === 0 ? '0' : terms.join(' + ');
};

/**
 * An element-wise kernel over an output of `outShape`: operand k is read at the
 * index its access gives and bound to v{k}; `body` ends in a return.
 */
const mapSource = (outShape: Shape, access: readonly Access[], body: string, uniforms: readonly string[] = []): string => {
  const used = outShape.map((_, d) => access.some((a) => a !== null && a[d] !== 0));
  const needCoords = used.some((u) => u);
  const args = [...access.map((_, k) => `a${k}`), ...uniforms].join(', ');
  const reads = access.map((a, k) => `const v${k} = a${k}[${a === null ? 'i' : indexExpr(a, outShape)}];`);
  return [`function(${args}) {`, 'const i = this.thread.x;', ...(needCoords ? coordLines(outShape, used) : []), ...reads, body, '}'].join('\n');
};

/** Kept-shape of a reduction (reduced axes as length 1). */
const keptShape = (shape: Shape, axes: readonly number[]): number[] => shape.map((d, i) => (axes.includes(i) ? 1 : d));

/**
 * A reduction of x (shape `shape`) over `axes` to the kept shape, one output
 * element per thread: nested loops with literal bounds over the reduced axes.
 * `kind` 'count' counts the elements equal to a1 (the max, in kept shape).
 */
const reduceSource = (shape: Shape, axes: readonly number[], kind: 'sum' | 'max' | 'count'): string => {
  const kept = keptShape(shape, axes);
  const st = stridesOf(shape);
  const keptAxes = shape.map((_, d) => !axes.includes(d));
  // Output coordinates over the kept shape; the base index in x uses x's strides.
  const base = indexExpr(
    shape.map((_, d) => (keptAxes[d] ? st[d]! : 0)),
    kept,
  );
  const loops = axes.filter((a) => shape[a] !== 1);
  const inner = ['base', ...loops.map((a) => (st[a] === 1 ? `j${a}` : `j${a} * ${st[a]}`))].join(' + ');
  const lines = [`function(a0${kind === 'count' ? ', a1' : ''}) {`, 'const i = this.thread.x;', ...coordLines(kept, keptAxes), `const base = ${base};`];
  if (kind === 'count') lines.push('const m = a1[i];');
  // max starts from the slice's first element (offset 0 from base), so no -Infinity literal is needed.
  lines.push(`let acc = ${kind === 'max' ? 'a0[base]' : '0'};`);
  for (const a of loops) lines.push(`for (let j${a} = 0; j${a} < ${shape[a]}; j${a}++) {`);
  lines.push(`const x = a0[${inner}];`);
  if (kind === 'sum') lines.push('acc += x;');
  else if (kind === 'max') lines.push('acc = Math.max(acc, x);');
  else lines.push('if (x === m) { acc += 1; }');
  for (let k = 0; k < loops.length; k++) lines.push('}');
  lines.push('return acc;', '}');
  return lines.join('\n');
};

/** out[r, c] = Σ_p A[r, p]·B[p, c], summed in float32; a is k×m when transA, b is n×k when transB. */
const matmulSource = (m: number, k: number, n: number, transA: boolean, transB: boolean): string =>
  [
    'function(a0, a1) {',
    'const i = this.thread.x;',
    `const r = Math.floor((i + 0.5) / ${n});`,
    `const c = i - r * ${n};`,
    'let s = 0;',
    `for (let p = 0; p < ${k}; p++) {`,
    `s += a0[${transA ? `p * ${m} + r` : `r * ${k} + p`}] * a1[${transB ? `c * ${k} + p` : `p * ${n} + c`}];`,
    '}',
    'return s;',
    '}',
  ].join('\n');

/** The comparisons as shader conditions on v0 and v1 (NaN as GLSL compares it: a GPU may differ from IEEE there). */
const COMPARE_GPU: Readonly<Record<CompareOp, string>> = {
  greater: 'v0 > v1',
  greaterEqual: 'v0 >= v1',
  less: 'v0 < v1',
  lessEqual: 'v0 <= v1',
  equal: 'v0 === v1',
  notEqual: 'v0 !== v1',
};

/** Unary element-wise bodies on v0 (float32 on the GPU). */
const UNARY_GPU = {
  neg: 'return -v0;',
  reciprocal: 'return 1 / v0;',
  exp: 'return Math.exp(v0);',
  log: 'return Math.log(v0);',
  sqrt: 'return Math.sqrt(v0);',
  // GLSL ES 1.0 has no tanh, and gpu.js's (e^2x − 1)/(e^2x + 1) is NaN once e^2x overflows (x > 44): use e^−2|x| ≤ 1.
  tanh: 'const e = Math.exp(-2 * Math.abs(v0));\nconst t = (1 - e) / (1 + e);\nif (v0 < 0) { return -t; }\nreturn t;',
  // exp of a non-positive argument only, so neither branch overflows.
  sigmoid: 'if (v0 >= 0) { return 1 / (1 + Math.exp(-v0)); }\nconst e = Math.exp(v0);\nreturn e / (1 + e);',
  relu: 'if (v0 > 0) { return v0; }\nreturn 0;',
  sin: 'return Math.sin(v0);',
  cos: 'return Math.cos(v0);',
} as const;

type UnaryPrim = keyof typeof UNARY_GPU;

// ---------------------------------------------------------------------------

/** Access strides of a transpose: output axis d reads input axis perm[d]. */
const transposeAccess = (inShape: Shape, perm: readonly number[]): Access => {
  const st = stridesOf(inShape);
  return perm.every((p, d) => p === d) ? null : perm.map((p) => st[p]!);
};

/** Values moved between host and GPU memory so far (a resident training step moves its batch in and its loss and logits out). */
export interface TransferStats {
  readonly uploads: number;
  readonly uploadBytes: number;
  readonly downloads: number;
  readonly downloadBytes: number;
}

/**
 * Creates the `gpujs` backend on WebGL (headless-gl under Node): tensors stay on the GPU as
 * textures. Throws, saying why, where no WebGL context can be made.
 */
export const createGpujsBackend = (): Backend<GpuBuffer> & {
  /** The OpenGL renderer it runs on. */
  readonly renderer: string;
  /** Values moved between host and GPU so far. */
  transfers(): TransferStats;
} => {
  const report = detectGpu();
  if (!report.context) {
    throw new Error(`the gpujs backend cannot run: ${report.summary}`);
  }
  // Loaded here, not at import: other backends' processes then never hold
  // gpu.js (a few MB of code that every full garbage collection would mark).
  // headless-gl under Node, the page's WebGL 2 in a browser (platform.ts).
  const {
    mod: { GPU: GPUClass },
    mode,
  } = loadGpuJs();
  const gpu = new GPUClass({ mode }) as GPU;
  if (gpu.mode !== mode) {
    throw new Error(`gpu.js chose mode '${gpu.mode}' instead of ${mode}: ${report.summary}`);
  }
  const renderer = report.renderer ?? 'unknown renderer';

  // --- memory ---------------------------------------------------------------
  const live = new Set<GpuBuffer>();
  let liveBytes = 0;
  let peakBytes = 0;
  let disposed = false;
  const track = (b: GpuBuffer): GpuBuffer => {
    live.add(b);
    liveBytes += b.bytes;
    if (liveBytes > peakBytes) peakBytes = liveBytes;
    return b;
  };
  const fromTexture = (tex: GpuTexture): GpuBuffer => {
    const size = (tex as unknown as { size: ArrayLike<number> }).size;
    const n = (tex as unknown as { output: ArrayLike<number> }).output[0]!;
    return track({ dtype: 'float32', n, tex, bytes: size[0]! * size[1]! * 16 });
  };
  const fromHost = (host: Data): GpuBuffer =>
    track({ dtype: host instanceof Float64Array ? 'float64' : 'float32', n: host.length, host, bytes: host.byteLength });

  // --- kernels ----------------------------------------------------------------
  const kernels = new Map<string, IKernelRunShortcut>();
  /** The kernel of `source` with an output of n elements, compiled on first use. */
  const kernelFor = (source: string, n: number, loopMax = 1): IKernelRunShortcut => {
    const key = `${n}\n${source}`;
    let kern = kernels.get(key);
    if (kern === undefined) {
      if (disposed) throw new Error('the gpujs backend was disposed: create a new one');
      if (n > MAX_ELEMENTS) {
        throw new Error(
          `gpujs: a tensor of ${n} elements is over the ${MAX_ELEMENTS} this backend indexes exactly in float32; split it or use the cpu backend`,
        );
      }
      kern = gpu
        .createKernel(source as never)
        .setOutput([n])
        .setPipeline(true)
        .setImmutable(true)
        .setPrecision('single')
        .setTactic('precision')
        // Loops have literal bounds; gpu.js still caps them at loopMaxIterations.
        .setLoopMaxIterations(Math.max(loopMax, 1));
      kernels.set(key, kern);
    }
    return kern;
  };
  const run = (source: string, n: number, args: readonly (GpuTexture | number | Float32Array)[], loopMax?: number): GpuBuffer =>
    fromTexture(kernelFor(source, n, loopMax)(...(args as never[])) as GpuTexture);

  const empty = (dtype: DType): GpuBuffer => fromHost(dtype === 'float64' ? new Float64Array(0) : new Float32Array(0));

  let uploads = 0,
    uploadBytes = 0,
    downloads = 0,
    downloadBytes = 0;
  const download = (tex: GpuTexture): Float32Array => {
    const values = tex.toArray() as Float32Array;
    downloads++;
    downloadBytes += values.byteLength;
    return values;
  };
  const upload = (data: Data): GpuBuffer => {
    if (data instanceof Float64Array) return fromHost(Float64Array.from(data));
    if (data.length === 0) return empty('float32');
    uploads++;
    uploadBytes += data.byteLength;
    return run('function(a0) {\nreturn a0[this.thread.x];\n}', data.length, [data]);
  };
  const full = (dtype: DType, n: number, value: number): GpuBuffer => {
    if (dtype === 'float64') return fromHost(new Float64Array(n).fill(value));
    if (n === 0) return empty('float32');
    return run('function(v) {\nreturn v;\n}', n, [Math.fround(value)]);
  };
  /** The values on the host, as float64 (downloads a texture: used by float64 kernels only). */
  const hostOf = (op: Op): Data => {
    const b = op.buf;
    if (b.host !== undefined) return b.host;
    return download(b.tex!);
  };
  /** The texture of a float32 operand; float64 ones are refused (the transfer must be an explicit cast). */
  const texOf = (op: Op, prim: string): GpuTexture => {
    if (op.buf.tex !== undefined) return op.buf.tex;
    throw new Error(
      op.buf.dtype === 'float64'
        ? `gpujs: ${prim} computes in float32 but got a float64 operand of shape [${op.shape.join(', ')}]: cast it to float32 first`
        : `gpujs: ${prim} got an empty operand for a non-empty result`,
    );
  };

  /** An element-wise kernel on the GPU (float32). */
  const map = (prim: string, inputs: readonly Op[], access: readonly Access[], out: OutSpec, body: string): GpuBuffer => {
    const n = sizeOf(out.shape);
    if (n === 0) return empty(out.dtype);
    return run(
      mapSource(out.shape, access, body),
      n,
      inputs.map((x) => texOf(x, prim)),
    );
  };
  const unary =
    (prim: UnaryPrim) =>
    ([x]: readonly [Op], _p: null, out: OutSpec): GpuBuffer =>
      map(prim, [x], [null], out, UNARY_GPU[prim]);
  const binary =
    (prim: string, body: string) =>
    ([a, b]: readonly [Op, Op], _p: null, out: OutSpec): GpuBuffer =>
      map(prim, [a, b], [broadcastAccess(a.shape, out.shape), broadcastAccess(b.shape, out.shape)], out, body);

  const reduce =
    (kind: 'sum' | 'max') =>
    ([x]: readonly [Op], { axes }: { readonly axes: readonly number[] }, out: OutSpec): GpuBuffer => {
      const n = sizeOf(out.shape);
      if (n === 0) return empty(out.dtype);
      const reduced = axes.reduce((p, a) => p * x.shape[a]!, 1);
      if (reduced === 0) {
        if (kind === 'max') throw new Error(`gpujs: max over an empty axis of shape [${x.shape.join(', ')}] has no value`);
        return full(out.dtype, n, 0);
      }
      return run(reduceSource(x.shape, axes, kind), n, [texOf(x, kind)], reduced);
    };

  /**
   * An image kernel (conv2d, pooling and their VJPs) on the GPU: `source` bakes
   * in the shapes; `work` is the longest loop nest it runs per element. An empty
   * operand under a non-empty result (a zero-channel conv) sums nothing: zeros.
   */
  const image = (prim: string, inputs: readonly Op[], out: OutSpec, source: string, work: number): GpuBuffer => {
    const n = sizeOf(out.shape);
    if (n === 0) return empty(out.dtype);
    if (inputs.some((x) => x.buf.n === 0)) return full(out.dtype, n, 0);
    return run(
      source,
      n,
      inputs.map((x) => texOf(x, prim)),
      work,
    );
  };

  /**
   * A kernel run on the host: the operands are downloaded, the host kernel
   * (kernels.ts) runs, and the result is uploaded. The explicit transfer for
   * primitives this backend has no shader for yet (the indexing primitives,
   * select and pow): correct everywhere, and the place a shader replaces when one is
   * written. Each call counts in `transfers()`.
   */
  const viaHost =
    (prim: KernelPrimitive) =>
    (inputs: readonly Op[], params: unknown, out: OutSpec): GpuBuffer => {
      const host = (hostTable as unknown as Record<string, (i: readonly Operand<Data>[], p: unknown, o: OutSpec) => Data>)[prim]!;
      const r = host(inputs.map(onHost), params, out);
      return r instanceof Float32Array ? upload(r) : fromHost(r);
    };

  const gpuKernels: KernelTable<GpuBuffer> = {
    add: binary('add', 'return v0 + v1;'),
    mul: binary('mul', 'return v0 * v1;'),
    reluGrad: binary('reluGrad', 'if (v0 > 0) { return v1; }\nreturn 0;'),
    neg: unary('neg'),
    reciprocal: unary('reciprocal'),
    exp: unary('exp'),
    log: unary('log'),
    sqrt: unary('sqrt'),
    tanh: unary('tanh'),
    sigmoid: unary('sigmoid'),
    relu: unary('relu'),
    sin: unary('sin'),
    cos: unary('cos'),
    // erf, rounding and the data-dependent indexing on the host (counted in transfers()), until shaders are written.
    erf: viaHost('erf'),
    round: viaHost('round'),
    argsort: viaHost('argsort'),
    gather: viaHost('gather'),
    scatterAdd: viaHost('scatterAdd'),
    matmul: ([a, b], { transA, transB }, out) => {
      const [m, n] = out.shape as [number, number];
      const k = transA ? a.shape[0]! : a.shape[1]!;
      if (m * n === 0) return empty(out.dtype);
      if (k === 0) return full(out.dtype, m * n, 0);
      return run(matmulSource(m, k, n, transA, transB), m * n, [texOf(a, 'matmul'), texOf(b, 'matmul')], k);
    },
    sum: reduce('sum'),
    max: reduce('max'),
    maxGrad: ([x, m, ct], { axes }, out) => {
      const n = sizeOf(out.shape);
      if (n === 0) return empty(out.dtype);
      // Two passes: how many positions tie for each max, then ct shared among them.
      const count = run(
        reduceSource(x.shape, axes, 'count'),
        m.buf.n,
        [texOf(x, 'maxGrad'), texOf(m, 'maxGrad')],
        axes.reduce((p, a) => p * x.shape[a]!, 1),
      );
      try {
        const kept = m.shape;
        const bc = broadcastAccess(kept, x.shape);
        return run(mapSource(x.shape, [null, bc, bc, bc], 'if (v0 === v1) { return v2 / v3; }\nreturn 0;'), n, [
          texOf(x, 'maxGrad'),
          texOf(m, 'maxGrad'),
          texOf(ct, 'maxGrad'),
          count.tex!,
        ]);
      } finally {
        free(count);
      }
    },
    transpose: ([x], { perm }, out) => map('transpose', [x], [transposeAccess(x.shape, perm)], out, 'return v0;'),
    broadcastTo: ([x], _p, out) => map('broadcastTo', [x], [broadcastAccess(x.shape, out.shape)], out, 'return v0;'),
    // To the output's storage dtype (an int32 or bool cast is given its float storage: see storageDType).
    cast: ([x], _p, out) => {
      const dtype = out.dtype;
      if (x.dtype === dtype) return dtype === 'float64' ? fromHost(Float64Array.from(hostOf(x))) : map('cast', [x], [null], out, 'return v0;');
      if (x.buf.n === 0) return empty(dtype);
      // The explicit transfer between the two memories: download and widen, or round and upload.
      if (dtype === 'float64') return fromHost(Float64Array.from(hostOf(x)));
      return upload(Float32Array.from(hostOf(x)));
    },
    // The image primitives: direct loops, one output element per thread (gpujs-image.ts).
    conv2d: ([x, w], p, out) => image('conv2d', [x, w], out, conv2dSource(x.shape, w.shape, p), x.shape[1]! * w.shape[2]! * w.shape[3]!),
    conv2dGradInput: ([ct, w], p, out) =>
      image('conv2dGradInput', [ct, w], out, conv2dGradInputSource(p.inputShape, w.shape, p), w.shape[0]! * w.shape[2]! * w.shape[3]!),
    conv2dGradWeight: ([ct, x], p, out) =>
      image('conv2dGradWeight', [ct, x], out, conv2dGradWeightSource(x.shape, p.filterShape, p), x.shape[0]! * ct.shape[2]! * ct.shape[3]!),
    maxPool2d: ([x], p, out) => image('maxPool2d', [x], out, pool2dSource('max', x.shape, p), p.size * p.size),
    maxPool2dGrad: ([ct, x], p, out) => image('maxPool2dGrad', [ct, x], out, pool2dGradSource('max', x.shape, p), p.size ** 4),
    avgPool2d: ([x], p, out) => image('avgPool2d', [x], out, pool2dSource('avg', x.shape, p), p.size * p.size),
    avgPool2dGrad: ([ct], p, out) => image('avgPool2dGrad', [ct], out, pool2dGradSource('avg', p.inputShape, p), p.size * p.size),
    slice: viaHost('slice'),
    pad: viaHost('pad'),
    take: viaHost('take'),
    takeGrad: viaHost('takeGrad'),
    concat: viaHost('concat'),
    select: ([c, a, b], _p, out) => map('select', [c, a, b], [null, null, null], out, 'if (v0 !== 0) { return v1; }\nreturn v2;'),
    compare: ([a, b], { op }, out) => map(`compare_${op}`, [a, b], [null, null], out, `if (${COMPARE_GPU[op]}) { return 1; }\nreturn 0;`),
    sign: ([x], _p, out) => map('sign', [x], [null], out, 'if (v0 > 0) { return 1; }\nif (v0 < 0) { return -1; }\nreturn v0;'),
    // An index per row: a reduction with a data-dependent position, run on the host (counted in transfers()).
    argmax: viaHost('argmax'),
    maxPool2dSelect: viaHost('maxPool2dSelect'),
    pow: viaHost('pow'),
    channelMoments: viaHost('channelMoments'),
    batchNorm: viaHost('batchNorm'),
    batchNormGrad: viaHost('batchNormGrad'),
    batchNormParamGrad: viaHost('batchNormParamGrad'),
  };

  // float64 runs the host kernels (kernels.ts) on host copies: gpu.js computes in float32 only.
  const hostAlloc: Alloc = (dtype, n) => (dtype === 'float32' ? new Float32Array(n) : new Float64Array(n));
  const hostTable = hostKernels(hostAlloc);
  const hostFusedKernels = hostFused(hostAlloc);
  const onHost = (op: Op): Operand<Data> => ({ buf: hostOf(op), shape: op.shape, dtype: op.dtype });
  type AnyKernel = (inputs: readonly Operand<unknown>[], params: unknown, out: OutSpec) => unknown;
  const kernelTable = Object.fromEntries(
    Object.entries(gpuKernels).map(([prim, gpuKernel]) => {
      const hostKernel = (hostTable as unknown as Record<string, AnyKernel>)[prim]!;
      const onGpu = gpuKernel as AnyKernel;
      // A float64 result runs on the host, and so does a comparison of float64 values (its bool result is float32: see
      // storageDType); other float32 kernels refuse a float64 operand, naming the cast.
      const hostOperands = prim === 'compare';
      const either: AnyKernel = (inputs, params, out) => {
        if (sizeOf(out.shape) === 0 || (out.dtype !== 'float64' && !(hostOperands && (inputs as readonly Op[]).some((x) => x.buf.dtype === 'float64'))))
          return onGpu(inputs, params, out);
        const r = hostKernel((inputs as readonly Op[]).map(onHost), params, out) as Data;
        return r instanceof Float32Array ? upload(r) : fromHost(r);
      };
      return [prim, prim === 'cast' ? gpuKernel : either];
    }),
  ) as unknown as KernelTable<GpuBuffer>;

  const fused: FusedKernels<GpuBuffer> = {
    momentumStep(p, v, g, hp: MomentumHyper) {
      if (p.buf.n === 0) return [empty(p.dtype), empty(p.dtype)];
      const { lr, gamma, l2, nesterov } = hp;
      if (p.dtype === 'float64') {
        const [np, nv] = hostFusedKernels.momentumStep(onHost(p), onHost(v), onHost(g), hp);
        return [fromHost(np), fromHost(nv)];
      }
      // Two kernels (the p' one recomputes v'), not a kernel map: WEBGL_draw_buffers is not guaranteed under headless-gl.
      // Hyperparameters are uniforms, so a learning-rate schedule does not recompile.
      const same: Access[] = [null, null, null];
      const velocity = 'const g1 = v2 + l2 * v0;\nconst v1n = gamma * v1 + lr * g1;\n';
      const args = [texOf(p, 'momentumStep'), texOf(v, 'momentumStep'), texOf(g, 'momentumStep'), lr, gamma, l2];
      const uniforms = ['lr', 'gamma', 'l2'];
      const shape = [p.buf.n];
      const nv = run(mapSource(shape, same, `${velocity}return v1n;`, uniforms), p.buf.n, args);
      const np = run(mapSource(shape, same, `${velocity}return v0 - ${nesterov ? '(gamma * v1n + lr * g1)' : 'v1n'};`, uniforms), p.buf.n, args);
      return [np, nv];
    },
    adamStep(p, m, v, g, hp: AdamHyper) {
      if (p.buf.n === 0) return [empty(p.dtype), empty(p.dtype), empty(p.dtype)];
      if (p.dtype === 'float64') {
        const [np, nm, nv] = hostFusedKernels.adamStep(onHost(p), onHost(m), onHost(v), onHost(g), hp);
        return [fromHost(np), fromHost(nm), fromHost(nv)];
      }
      // Three kernels (m', v', then p' recomputing both), hyperparameters as uniforms (a schedule does not recompile).
      const same: Access[] = [null, null, null, null];
      const moments = 'const g1 = v3 + l2 * v0;\nconst m1 = beta1 * v1 + (1.0 - beta1) * g1;\nconst w1 = beta2 * v2 + (1.0 - beta2) * g1 * g1;\n';
      const args = [
        texOf(p, 'adamStep'),
        texOf(m, 'adamStep'),
        texOf(v, 'adamStep'),
        texOf(g, 'adamStep'),
        hp.lr,
        hp.beta1,
        hp.beta2,
        hp.eps,
        hp.l2,
        hp.decay,
        hp.c1,
        hp.c2,
      ];
      const uniforms = ['lr', 'beta1', 'beta2', 'eps', 'l2', 'decay', 'c1', 'c2'];
      const shape = [p.buf.n];
      const nm = run(mapSource(shape, same, `${moments}return m1;`, uniforms), p.buf.n, args);
      const nv = run(mapSource(shape, same, `${moments}return w1;`, uniforms), p.buf.n, args);
      const np = run(mapSource(shape, same, `${moments}return decay * v0 - (lr * (c1 * m1)) / (Math.sqrt(c2 * w1) + eps);`, uniforms), p.buf.n, args);
      return [np, nm, nv];
    },
  };

  const free = (buf: GpuBuffer): void => {
    if (disposed) return; // dispose() already deleted every texture; tensors released later have nothing left to free
    if (!live.delete(buf)) throw new Error('gpujs: free of a buffer this backend does not hold (freed twice, or from another backend)');
    liveBytes -= buf.bytes;
    buf.tex?.delete();
  };

  /**
   * jit's fused chains as one shader: each op the statements of its own
   * kernel's shader (UNARY_GPU and the bodies above), in registers, one texture
   * written. float32 only; pow (a host kernel here) is not fused, and a chain
   * with several results or a sum is declined (a shader writes one texture;
   * jit then fuses the chain's single-result parts).
   */
  const chainStatements: Readonly<Record<string, (t: string, a: readonly string[]) => string>> = {
    add: (t, [a, b]) => `const ${t} = ${a} + ${b};`,
    mul: (t, [a, b]) => `const ${t} = ${a} * ${b};`,
    neg: (t, [a]) => `const ${t} = -${a};`,
    reciprocal: (t, [a]) => `const ${t} = 1 / ${a};`,
    exp: (t, [a]) => `const ${t} = Math.exp(${a});`,
    log: (t, [a]) => `const ${t} = Math.log(${a});`,
    sqrt: (t, [a]) => `const ${t} = Math.sqrt(${a});`,
    sin: (t, [a]) => `const ${t} = Math.sin(${a});`,
    cos: (t, [a]) => `const ${t} = Math.cos(${a});`,
    tanh: (t, [a]) => `const ${t}e = Math.exp(-2 * Math.abs(${a}));\nlet ${t} = (1 - ${t}e) / (1 + ${t}e);\nif (${a} < 0) { ${t} = -${t}; }`,
    sigmoid: (t, [a]) =>
      `let ${t} = 0;\nif (${a} >= 0) { ${t} = 1 / (1 + Math.exp(-${a})); } else { const ${t}e = Math.exp(${a}); ${t} = ${t}e / (1 + ${t}e); }`,
    relu: (t, [a]) => `let ${t} = 0;\nif (${a} > 0) { ${t} = ${a}; }`,
    reluGrad: (t, [x, ct]) => `let ${t} = 0;\nif (${x} > 0) { ${t} = ${ct}; }`,
    select: (t, [c, a, b]) => `let ${t} = ${b};\nif (${c} !== 0) { ${t} = ${a}; }`,
  };
  const fuse = (chain: FusedChain): ChainKernel<GpuBuffer> | undefined => {
    const last = chain.ops.length - 1;
    if (chain.sum !== undefined || chain.outputs.length !== 1 || chain.outputs[0] !== last) return undefined;
    if (chain.dtype !== 'float32' || chain.n === 0 || chain.ops.some((o) => chainStatements[o.prim] === undefined)) return undefined;
    // Over [rows, row]: a full input reads element i, a row input its column, a scalar element 0.
    const grid = [chain.n / chain.row, chain.row];
    const access: Access[] = chain.inputs.map((kind) => (kind === 'full' ? null : kind === 'row' ? [0, 1] : [0, 0]));
    const name = (k: number) => (k < chain.inputs.length ? `v${k}` : `t${k - chain.inputs.length}`);
    const body = [...chain.ops.map((o, j) => chainStatements[o.prim]!(`t${j}`, o.args.map(name))), `return t${last};`].join('\n');
    const source = mapSource(grid, access, body);
    return (bufs) => [
      run(
        source,
        chain.n,
        bufs.map((b) => texOf({ buf: b, shape: [b.n], dtype: b.dtype }, 'a fused chain')),
      ),
    ];
  };

  return {
    name: 'gpujs',
    description: `gpujs: gpu.js ${gpu.mode} on ${renderer}${report.hardware ? '' : ' (software rendering: slow)'}`,
    renderer,
    kernels: kernelTable,
    fused,
    // int32 in float32 textures: exact within ±2^24 (uploads beyond are refused).
    int32Storage: 'float32',
    fuse,
    upload,
    full,
    read(buf: GpuBuffer, _dtype: DType, n: number): Data {
      if (buf.host !== undefined) return buf.host;
      const values = download(buf.tex!);
      return values.length === n ? values : values.subarray(0, n);
    },
    free,
    memory(): MemoryStats {
      return { liveBytes, peakBytes, buffers: live.size };
    },
    transfers: () => ({ uploads, uploadBytes, downloads, downloadBytes }),
    dispose() {
      if (disposed) return;
      disposed = true;
      for (const b of live) b.tex?.delete();
      live.clear();
      liveBytes = 0;
      // Kernels first (each releases its program, framebuffer and output texture), then the context.
      for (const k of kernels.values()) k.destroy();
      kernels.clear();
      const context = (gpu as unknown as { context?: { getExtension(n: string): { destroy?(): void } | null } }).context;
      context?.getExtension('STACKGL_destroy_context')?.destroy?.();
      void gpu.destroy();
    },
  };
};
