/**
 * The `webgpu` backend: every primitive as a WGSL compute shader, tensors
 * resident in GPU storage buffers (float32), run through Dawn's Node bindings
 * (the optional `webgpu` package) in an executor thread (executor.ts).
 *
 * - dtype: the GPU computes in float32 (WGSL has no f64). float64 tensors made
 *   from host values (uploads, `full`, a cast to float64) live on the host, exact,
 *   and any kernel with a host operand runs the host kernel (kernels.ts) there,
 *   downloading its device operands (counted in `transfers()`): slow, and never on a
 *   float32 training step's path. The cast between the two is the explicit move.
 *   (Adam's step counter is such a scalar.) A float64 tensor the device computes from
 *   float32 ones (batchNorm's parameter-gradient sums, typed float64 by the primitive)
 *   stays on the device, at float32 precision.
 * - Reads: `read` (what `toArray()`, `item()`, `toTypedArray()` use) blocks until
 *   the values are on the host: the executor is another thread, so waiting is
 *   allowed (Atomics.wait) and the device keeps running. `readAsync`
 *   (`await tensor.data()`) does not block. Every other call only queues work.
 * - Memory: each tensor's buffer is a storage buffer of its own; freed buffers go
 *   to the executor's pool by size and are reused.
 * - Transfers are counted (`transfers()`): a resident training step uploads its
 *   batch (and labels) and downloads the loss it reports, nothing else.
 */
import type { AdamHyper, Backend, FusedKernels, KernelTable, MemoryStats, MomentumHyper, Operand, OutSpec } from '../../backend.js';
import type { CompareOp } from '../../kernels-nd.js';
import { hostFused, hostKernels, type Alloc } from '../../kernels.js';
import type { Data, DType, KernelPrimitive } from '../../primitives.js';
import { sizeOf } from '../../shape.js';
import { isNode } from '../platform.js';
import { type AdapterReport, type Executor, isHardwareAdapter, startBrowserExecutor, startNodeExecutor, type WebgpuOptions } from './executor.js';
import { conv2dGradInputShader, conv2dGradWeightShader, conv2dShader, type GemmShader, matmulShader } from './gemm.js';
import * as S from './shaders.js';
import { type Access, broadcastAccess, f32, grid1d, mapShader, transposeAccess } from './wgsl.js';

export { isHardwareAdapter, parseWebgpuEnv, findWebgpuPackage, type AdapterReport, type WebgpuOptions } from './executor.js';

/** A tensor's memory on this backend: a storage buffer held by the executor (none for an empty tensor). */
export interface WebgpuBuffer {
  /** The executor's buffer id; -1 for an empty tensor or one on the host. */
  readonly id: number;
  /** Elements (float32 each on the device). */
  readonly n: number;
  /** A float64 tensor made from host values: its values, on the host. */
  readonly host?: Float64Array;
}

/** Values moved between host and GPU so far. */
export interface WebgpuTransfers {
  readonly uploads: number;
  readonly uploadBytes: number;
  readonly downloads: number;
  readonly downloadBytes: number;
}

/** The webgpu backend, with what it runs on and its transfer counts. */
export interface WebgpuBackend extends Backend<WebgpuBuffer> {
  /** The adapter it runs on, as Dawn reports it, and the options that found it. */
  readonly adapter: AdapterReport;
  /** Whether the adapter is a real GPU (not a software rasterizer or Dawn's fallback). */
  readonly hardware: boolean;
  /** Values moved between host and GPU so far (a training step: its batch up, its loss down). */
  transfers(): WebgpuTransfers;
  /** The values without blocking: resolves once the device has them. */
  readAsync(buf: WebgpuBuffer, dtype: DType, n: number): Promise<Data>;
  /** Waits until every kernel queued so far has run (for timing), throwing a device error if one failed. */
  finish(): void;
}

type Op = Operand<WebgpuBuffer>;

const COMPARE: Readonly<Record<CompareOp, string>> = {
  greater: 'v0 > v1',
  greaterEqual: 'v0 >= v1',
  less: 'v0 < v1',
  lessEqual: 'v0 <= v1',
  equal: 'v0 == v1',
  notEqual: 'v0 != v1',
};

/** Stable forms: exp only of non-positive arguments, so nothing overflows. */
const HELPERS = `fn erf_s(x: f32) -> f32 {
  // Abramowitz and Stegun 7.1.26 (|error| < 1.5e-7), odd by symmetry.
  let a = abs(x);
  let t = 1.0 / (1.0 + 0.3275911 * a);
  let y = 1.0 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp(-a * a);
  return select(y, -y, x < 0.0);
}
fn round_even(x: f32) -> f32 { let r = round(x); return select(r, x, x != x || abs(x) > 8388608.0); }
fn tanh_s(x: f32) -> f32 { let e = exp(-2.0 * abs(x)); let t = (1.0 - e) / (1.0 + e); return select(t, -t, x < 0.0); }
fn sigmoid_s(x: f32) -> f32 { let e = exp(-abs(x)); return select(e / (1.0 + e), 1.0 / (1.0 + e), x >= 0.0); }`;

const UNARY = {
  neg: '-v0',
  reciprocal: '1.0 / v0',
  exp: 'exp(v0)',
  log: 'log(v0)',
  sqrt: 'sqrt(v0)',
  tanh: 'tanh_s(v0)',
  sigmoid: 'sigmoid_s(v0)',
  // NaN kept, −0 to +0, as the host's relu.
  relu: 'select(v0, 0.0, v0 <= 0.0)',
  sin: 'sin(v0)',
  cos: 'cos(v0)',
  erf: 'erf_s(v0)',
} as const;

/** x^p as WGSL: small integer powers by multiplication (exact like the host's), others through exp2·log2 with the sign of odd powers. */
const powExpr = (p: number): string => {
  if (p === 0) return '1.0';
  if (p === 1) return 'v0';
  if (p === 2) return 'v0 * v0';
  if (p === 3) return 'v0 * v0 * v0';
  if (p === -1) return '1.0 / v0';
  if (p === 0.5) return 'sqrt(v0)';
  const mag = `exp2(${f32(p)} * log2(abs(v0)))`;
  if (Number.isInteger(p)) return Math.abs(p) % 2 === 1 ? `select(${mag}, -${mag}, v0 < 0.0)` : mag;
  // A fractional power of a negative number is NaN, as on the host.
  return `select(${mag}, bitcast<f32>(BITS_NAN), v0 < 0.0)`;
};

/**
 * Creates the webgpu backend under Node: starts Dawn in an executor thread and waits for its
 * adapter. Throws one line naming what is missing (the package, an adapter) and how to get it.
 * In a browser the adapter comes asynchronously: use `createWebgpuBackendAsync` (or `startWebgpu`).
 */
export const createWebgpuBackend = (options: WebgpuOptions = {}): WebgpuBackend => {
  if (!isNode()) {
    throw new Error(
      "the webgpu backend starts asynchronously in a browser (navigator.gpu's adapter is a promise): await startWebgpu() first, then backend('webgpu') is that backend",
    );
  }
  return backendOn(startNodeExecutor(options));
};

/**
 * Creates the webgpu backend without blocking: in a browser on `navigator.gpu` (the executor
 * in a Web Worker; see executor.ts for which threads may read synchronously), under Node as
 * `createWebgpuBackend`. Rejects with one line when there is no adapter.
 */
export const createWebgpuBackendAsync = async (options: WebgpuOptions = {}): Promise<WebgpuBackend> =>
  isNode() ? createWebgpuBackend(options) : backendOn(await startBrowserExecutor(options));

/** The backend on a started executor. */
const backendOn = (exec: Executor): WebgpuBackend => {
  const hardware = isHardwareAdapter(exec.adapter);
  let nextId = 1;
  let liveBytes = 0,
    peakBytes = 0,
    buffers = 0;
  let uploads = 0,
    uploadBytes = 0,
    downloads = 0,
    downloadBytes = 0;
  let disposed = false;
  /** Shader source → the executor's key (the source goes over once). */
  const shaders = new Map<string, number>();

  const EMPTY: WebgpuBuffer = { id: -1, n: 0 };
  const alloc = (n: number): WebgpuBuffer => {
    if (n === 0) return EMPTY;
    const id = nextId++;
    exec.send(['alloc', id, n * 4]);
    liveBytes += n * 4;
    buffers++;
    if (liveBytes > peakBytes) peakBytes = liveBytes;
    return { id, n };
  };
  const dispatch = (wgsl: string, ids: readonly number[], groups: readonly [number, number, number], uniforms?: Float32Array): void => {
    let key = shaders.get(wgsl);
    let source: string | null = null;
    if (key === undefined) {
      key = shaders.size + 1;
      shaders.set(wgsl, key);
      source = wgsl;
    }
    const u = uniforms === undefined ? null : uniforms.slice().buffer;
    exec.send(['run', key, source, ids, u, ...groups], u ?? undefined);
  };
  const grid = (n: number): [number, number, number] => {
    const g = grid1d(n);
    return [g.gx, g.gy, 1];
  };
  /** Runs a one-thread-per-output-element shader into a new buffer of n elements. */
  const runInto = (n: number, wgsl: string, inputs: readonly WebgpuBuffer[], groups = grid(n), after: readonly number[] = []): WebgpuBuffer => {
    const out = alloc(n);
    if (n === 0) return out;
    dispatch(wgsl, [...inputs.map((b) => b.id), out.id, ...after], groups);
    return out;
  };
  /** The executor's error word (buffer 0), bound after `out` by the kernels that check indices on the device. */
  const FLAG = 0;
  const idsOf = (ops: readonly Op[]) => ops.map((o) => o.buf);
  const toFloats = (bytes: Uint8Array, n: number): Float32Array => new Float32Array(bytes.buffer, bytes.byteOffset, n);
  /** A device buffer's values on the host (a counted download). */
  const downloadFloats = (buf: WebgpuBuffer): Float32Array => {
    if (buf.n === 0) return new Float32Array(0);
    const bytes = exec.readSync(buf.id, buf.n * 4);
    downloads++;
    downloadBytes += buf.n * 4;
    return toFloats(bytes, buf.n);
  };

  /** A float64 tensor on the host (see the module comment). */
  const onHostBuffer = (values: Float64Array): WebgpuBuffer => {
    liveBytes += values.byteLength;
    buffers++;
    if (liveBytes > peakBytes) peakBytes = liveBytes;
    return { id: -1, n: values.length, host: values };
  };
  const upload = (data: Data): WebgpuBuffer => {
    if (data instanceof Float64Array) return onHostBuffer(Float64Array.from(data));
    const out = alloc(data.length);
    if (out.n === 0) return out;
    const bytes = data.slice().buffer;
    exec.send(['write', out.id, bytes], bytes);
    uploads++;
    uploadBytes += bytes.byteLength;
    return out;
  };
  const fill = (n: number, value: number): WebgpuBuffer => runInto(n, mapShader([n], [], f32(value)), []);
  const full = (dtype: DType, n: number, value: number): WebgpuBuffer => {
    if (dtype === 'float64') return onHostBuffer(new Float64Array(n).fill(value));
    return fill(n, value);
  };
  /** A small u32 array (take's indices) as a buffer for one kernel: an upload, freed after use. */
  const uploadIndices = (indices: Int32Array): WebgpuBuffer => {
    const id = nextId++;
    const bytes = Uint32Array.from(indices).buffer;
    exec.send(['alloc', id, bytes.byteLength]);
    exec.send(['write', id, bytes], bytes);
    uploads++;
    uploadBytes += bytes.byteLength;
    return { id, n: indices.length };
  };

  const map = (inputs: readonly Op[], access: readonly Access[], out: OutSpec, expr: string): WebgpuBuffer => {
    const n = sizeOf(out.shape);
    if (n === 0) return EMPTY;
    return runInto(n, mapShader(out.shape, access, expr, HELPERS), idsOf(inputs));
  };
  const unary =
    (prim: keyof typeof UNARY) =>
    ([x]: readonly [Op], _p: null, out: OutSpec) =>
      map([x], [null], out, UNARY[prim]);
  const binary =
    (expr: string) =>
    ([a, b]: readonly [Op, Op], _p: null, out: OutSpec) =>
      map([a, b], [broadcastAccess(a.shape, out.shape), broadcastAccess(b.shape, out.shape)], out, expr);
  const gemm = (out: OutSpec, s: GemmShader, inputs: readonly WebgpuBuffer[]): WebgpuBuffer => {
    const n = sizeOf(out.shape);
    if (n === 0) return EMPTY;
    // An empty operand under a non-empty result (k = 0, or no channels) sums nothing.
    if (inputs.some((b) => b.n === 0)) return fill(n, 0);
    return runInto(n, s.wgsl, inputs, s.groups as [number, number, number]);
  };
  const reduce = (
    x: Op,
    axes: readonly number[],
    out: OutSpec,
    init: string,
    value: string,
    combine: string,
    extra: readonly WebgpuBuffer[] = [],
  ): WebgpuBuffer => {
    const n = sizeOf(out.shape);
    if (n === 0) return EMPTY;
    const r = S.reduceShader(x.shape, axes, 1 + extra.length, init, value, combine);
    const groups: [number, number, number] = r.perGroup ? [Math.min(r.outputs, 65535), Math.ceil(r.outputs / 65535), 1] : grid(r.outputs);
    return runInto(n, r.wgsl, [x.buf, ...extra], groups);
  };
  const image = (out: OutSpec, wgsl: string, inputs: readonly WebgpuBuffer[]): WebgpuBuffer => {
    const n = sizeOf(out.shape);
    if (n === 0) return EMPTY;
    if (inputs.some((b) => b.n === 0)) return fill(n, 0);
    return runInto(n, wgsl, inputs);
  };

  const kernels: KernelTable<WebgpuBuffer> = {
    add: binary('v0 + v1'),
    mul: binary('v0 * v1'),
    // ct · (x > 0), as a product: a −0 or NaN cotangent behaves as multiplication does (the host's rule).
    reluGrad: binary('v1 * select(0.0, 1.0, v0 > 0.0)'),
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
    erf: unary('erf'),
    // WGSL's round is half to even, as NumPy's; floor and ceil keep −0 where the host does (floor(−0.5) is −1, ceil(−0.5) is −0).
    round: ([x], { mode }, out) => map([x], [null], out, mode === 'floor' ? 'floor(v0)' : mode === 'ceil' ? 'ceil(v0)' : 'round_even(v0)'),
    argsort: ([x], { axis, descending }, out) => {
      const n = sizeOf(out.shape);
      if (n === 0) return EMPTY;
      const { rows, p, stages } = S.argsortPlan(x.shape, axis);
      const keys = alloc(rows * p),
        order = alloc(rows * p);
      dispatch(S.argsortLoadShader(x.shape, axis, p), [x.buf.id, keys.id, order.id], grid(rows * p));
      const stage = S.argsortStageShader(x.shape[axis]!, rows, p, descending);
      for (const [k, j] of stages) dispatch(stage, [keys.id, order.id], grid(rows * p), Float32Array.of(k, j, 0, 0));
      const r = runInto(n, S.argsortStoreShader(x.shape, axis, p), [order]);
      free(keys);
      free(order);
      return r;
    },
    // Indices are checked as the kernel runs, and a bad one fails the next read (shaders.ts: indexFn).
    gather: ([x, idx], { axis }, out) => {
      const n = sizeOf(out.shape);
      if (n === 0) return EMPTY;
      if (x.buf.n === 0) return fill(n, Number.NaN);
      return runInto(n, S.gatherShader(x.shape, idx.shape, axis), [x.buf, idx.buf], grid(n), [FLAG]);
    },
    scatterAdd: ([base, idx, src], { axis }, out) => {
      const n = sizeOf(out.shape);
      if (n === 0) return EMPTY;
      if (idx.buf.n === 0) return map([base], [null], out, 'v0');
      return runInto(n, S.scatterAddShader(base.shape, idx.shape, axis), [base.buf, idx.buf, src.buf], grid(n), [FLAG]);
    },
    matmul: ([a, b], { transA, transB }, out) => {
      const [m, n] = out.shape as [number, number];
      const k = transA ? a.shape[0]! : a.shape[1]!;
      return gemm(out, matmulShader(1, m, k, n, transA, transB), [a.buf, b.buf]);
    },
    sum: ([x], { axes }, out) => {
      if (axes.reduce((p, a) => p * x.shape[a]!, 1) === 0) return fill(sizeOf(out.shape), 0);
      return reduce(x, axes, out, '0.0', 'x', 'p + q');
    },
    max: ([x], { axes }, out) => {
      if (axes.reduce((p, a) => p * x.shape[a]!, 1) === 0 && sizeOf(out.shape) > 0) {
        throw new Error(`webgpu: max over an empty axis of shape [${x.shape.join(', ')}] has no value`);
      }
      // NaN wins, as the host's Math.max.
      return reduce(x, axes, out, f32(-Infinity), 'x', 'select(max(p, q), bitcast<f32>(BITS_NAN), p != p || q != q)');
    },
    maxGrad: ([x, m, ct], { axes }, out) => {
      const n = sizeOf(out.shape);
      if (n === 0) return EMPTY;
      // Two passes: how many positions tie for each maximum, then ct shared among them.
      const count = reduce(x, axes, { shape: m.shape, dtype: 'float32' }, '0.0', 'select(0.0, 1.0, x == a1[k])', 'p + q', [m.buf]);
      const bc = broadcastAccess(m.shape, x.shape);
      const r = runInto(n, mapShader(x.shape, [null, bc, bc, bc], 'select(0.0, v2 / v3, v0 == v1)'), [x.buf, m.buf, ct.buf, count]);
      free(count);
      return r;
    },
    transpose: ([x], { perm }, out) => map([x], [transposeAccess(x.shape, perm)], out, 'v0'),
    broadcastTo: ([x], _p, out) => map([x], [broadcastAccess(x.shape, out.shape)], out, 'v0'),
    // To the output's storage dtype (an int32 or bool cast is given its float storage: see storageDType).
    cast: ([x], _p, out) => {
      const dtype = out.dtype;
      // The explicit move between the two memories: a host float64 tensor goes up rounded, a device one comes down widened.
      if (x.buf.host !== undefined) return dtype === 'float64' ? onHostBuffer(x.buf.host.slice()) : upload(Float32Array.from(x.buf.host));
      if (dtype === 'float64') return onHostBuffer(Float64Array.from(downloadFloats(x.buf)));
      return map([x], [null], out, 'v0');
    },
    conv2d: ([x, w], p, out) => gemm(out, conv2dShader(x.shape, w.shape, p), [w.buf, x.buf]),
    conv2dGradInput: ([ct, w], p, out) => gemm(out, conv2dGradInputShader(ct.shape, w.shape, p.inputShape, p), [w.buf, ct.buf]),
    conv2dGradWeight: ([ct, x], p, out) => gemm(out, conv2dGradWeightShader(ct.shape, x.shape, p.filterShape, p), [ct.buf, x.buf]),
    maxPool2d: ([x], p, out) => image(out, S.maxPoolShader(x.shape, p), [x.buf]),
    maxPool2dGrad: ([ct, x], p, out) => image(out, S.maxPoolGradShader(x.shape, p), [x.buf, ct.buf]),
    maxPool2dSelect: ([x, t], p, out) => image(out, S.maxPoolSelectShader(x.shape, p), [x.buf, t.buf]),
    avgPool2d: ([x], p, out) => image(out, S.avgPoolShader(x.shape, p), [x.buf]),
    avgPool2dGrad: ([ct], p, out) => image(out, S.avgPoolGradShader(p.inputShape, p), [ct.buf]),
    slice: ([x], { starts, sizes }, out) => image(out, S.sliceShader(x.shape, starts, sizes), [x.buf]),
    pad: ([x], { before, value }, out) => {
      if (x.buf.n === 0) return fill(sizeOf(out.shape), value);
      return image(out, S.padToShader(x.shape, out.shape, before, value), [x.buf]);
    },
    take: ([x], { axis, indices }, out) => {
      const n = sizeOf(out.shape);
      if (n === 0) return EMPTY;
      const idx = uploadIndices(indices);
      const r = runInto(n, S.takeShader(x.shape, axis, indices.length), [idx, x.buf]);
      exec.send(['free', idx.id]);
      return r;
    },
    takeGrad: ([ct], { axis, indices, inputShape }, out) => {
      const n = sizeOf(out.shape);
      if (n === 0) return EMPTY;
      if (indices.length === 0) return fill(n, 0);
      const idx = uploadIndices(indices);
      const r = runInto(n, S.takeGradShader(inputShape, axis, indices.length), [idx, ct.buf]);
      exec.send(['free', idx.id]);
      return r;
    },
    concat: (xs, { axis }, out) => {
      const r = alloc(sizeOf(out.shape));
      if (r.n === 0) return r;
      let at = 0;
      // One copy per input into its box of the output: any number of inputs, each its own binding.
      for (const x of xs) {
        const starts = out.shape.map((_, a) => (a === axis ? at : 0));
        at += x.shape[axis]!;
        if (x.buf.n === 0) continue;
        dispatch(S.placeShader(x.shape, out.shape, starts), [x.buf.id, r.id], grid(x.buf.n));
      }
      return r;
    },
    select: ([c, a, b], _p, out) => map([c, a, b], [null, null, null], out, 'select(v2, v1, v0 != 0.0)'),
    compare: ([a, b], { op }, out) => map([a, b], [null, null], out, `select(0.0, 1.0, ${COMPARE[op]})`),
    sign: ([x], _p, out) => map([x], [null], out, 'select(select(select(v0, 0.0, v0 == 0.0), -1.0, v0 < 0.0), 1.0, v0 > 0.0)'),
    argmax: ([x], { axis }, out) => image(out, S.argmaxShader(x.shape, axis), [x.buf]),
    pow: ([x], { p }, out) => map([x], [null], out, powExpr(p)),
    channelMoments: ([x], _p, out) => {
      const C = x.shape[1]!;
      if (sizeOf(out.shape) === 0) return EMPTY;
      if (x.buf.n === 0) return fill(2 * C, Number.NaN);
      const r = alloc(2 * C);
      dispatch(S.channelMomentsShader(x.shape), [x.buf.id, r.id], [C, 1, 1]);
      return r;
    },
    batchNorm: ([x, m, g, b], { eps }, out) => image(out, S.batchNormShader(x.shape, eps), [x.buf, m.buf, g.buf, b.buf]),
    batchNormGrad: ([x, m, g, ct, sums], { eps }, out) => image(out, S.batchNormGradShader(x.shape, eps), [x.buf, m.buf, g.buf, ct.buf, sums.buf]),
    batchNormParamGrad: ([x, m, ct], { eps }) => {
      const C = x.shape[1]!;
      if (C === 0) return EMPTY;
      if (x.buf.n === 0) return fill(2 * C, 0);
      const r = alloc(2 * C);
      dispatch(S.batchNormParamGradShader(x.shape, eps), [x.buf.id, m.buf.id, ct.buf.id, r.id], [C, 1, 1]);
      return r;
    },
  };

  // Kernels with an operand on the host run there (float64 made from host values: see the module comment).
  const hostAlloc: Alloc = (dtype, n) => (dtype === 'float32' ? new Float32Array(n) : new Float64Array(n));
  const hostTable = hostKernels(hostAlloc);
  const hostFusedTable = hostFused(hostAlloc);
  const onHost = (op: Op): Operand<Data> => ({ buf: op.buf.host ?? downloadFloats(op.buf), shape: op.shape, dtype: op.dtype });
  const fromHostResult = (d: Data): WebgpuBuffer => (d instanceof Float64Array ? onHostBuffer(d) : upload(d));
  type AnyKernel = (inputs: readonly Op[], params: unknown, out: OutSpec) => WebgpuBuffer;
  const table = Object.fromEntries(
    (Object.keys(kernels) as KernelPrimitive[]).map((prim) => {
      const device = kernels[prim] as unknown as AnyKernel;
      if (prim === 'cast') return [prim, device];
      const host = hostTable[prim] as unknown as (i: readonly Operand<Data>[], p: unknown, o: OutSpec) => Data;
      const either: AnyKernel = (inputs, params, out) =>
        inputs.some((x) => x.buf.host !== undefined) ? fromHostResult(host(inputs.map(onHost), params, out)) : device(inputs, params, out);
      return [prim, either];
    }),
  ) as unknown as KernelTable<WebgpuBuffer>;

  const fused: FusedKernels<WebgpuBuffer> = {
    momentumStep(p, v, g, hp: MomentumHyper) {
      if (p.buf.host !== undefined) {
        const [np, nv] = hostFusedTable.momentumStep(onHost(p), onHost(v), onHost(g), hp);
        return [fromHostResult(np), fromHostResult(nv)];
      }
      const n = p.buf.n;
      const np = alloc(n),
        nv = alloc(n);
      if (n > 0) dispatch(S.momentumShader(n, hp.nesterov), [p.buf.id, v.buf.id, g.buf.id, np.id, nv.id], grid(n), Float32Array.of(hp.lr, hp.gamma, hp.l2, 0));
      return [np, nv];
    },
    adamStep(p, m, v, g, hp: AdamHyper) {
      if (p.buf.host !== undefined) {
        const [np, nm, nv] = hostFusedTable.adamStep(onHost(p), onHost(m), onHost(v), onHost(g), hp);
        return [fromHostResult(np), fromHostResult(nm), fromHostResult(nv)];
      }
      const n = p.buf.n;
      const np = alloc(n),
        nm = alloc(n),
        nv = alloc(n);
      if (n > 0) {
        dispatch(
          S.adamShader(n),
          [p.buf.id, m.buf.id, v.buf.id, g.buf.id, np.id, nm.id, nv.id],
          grid(n),
          Float32Array.of(hp.lr, hp.beta1, hp.beta2, hp.eps, hp.l2, hp.decay, hp.c1, hp.c2, 1 - hp.beta1, 1 - hp.beta2, 0, 0),
        );
      }
      return [np, nm, nv];
    },
  };

  const free = (buf: WebgpuBuffer): void => {
    if (disposed) return;
    if (buf.host !== undefined) {
      liveBytes -= buf.host.byteLength;
      buffers--;
      return;
    }
    if (buf.id < 0) return;
    exec.send(['free', buf.id]);
    liveBytes -= buf.n * 4;
    buffers--;
  };
  const widen = (f: Float32Array, dtype: DType): Data => (dtype === 'float64' ? Float64Array.from(f) : f);

  const a = exec.adapter;
  const name =
    [a.device, a.description].filter((s) => s !== undefined && s !== '').join(', ') || [a.vendor, a.architecture].join(' ').trim() || 'an unnamed adapter';
  return {
    name: 'webgpu',
    description: `webgpu: ${a.attempt === 'navigator.gpu' ? 'navigator.gpu' : `Dawn (${a.attempt})`} on ${name}${hardware ? '' : ' (software: slow)'}${a.setSurfaceless ? ' [EGL_PLATFORM=surfaceless while the adapter was made]' : ''}`,
    adapter: a,
    hardware,
    kernels: table,
    fused,
    // int32 in float32 storage buffers: exact within ±2^24 (uploads beyond are refused).
    int32Storage: 'float32',
    upload,
    full,
    read(buf, dtype, n) {
      if (buf.host !== undefined) return buf.host;
      if (buf.n === 0 || n === 0) return dtype === 'float64' ? new Float64Array(0) : new Float32Array(0);
      const bytes = exec.readSync(buf.id, n * 4);
      downloads++;
      downloadBytes += n * 4;
      return widen(toFloats(bytes, n), dtype);
    },
    async readAsync(buf, dtype, n) {
      if (buf.host !== undefined) return buf.host.slice();
      if (buf.n === 0 || n === 0) return dtype === 'float64' ? new Float64Array(0) : new Float32Array(0);
      downloads++;
      downloadBytes += n * 4;
      return widen(toFloats(await exec.readAsync(buf.id, n * 4), n), dtype);
    },
    free,
    memory: (): MemoryStats => ({ liveBytes, peakBytes, buffers }),
    transfers: () => ({ uploads, uploadBytes, downloads, downloadBytes }),
    finish: () => exec.finish(),
    dispose() {
      if (disposed) return;
      disposed = true;
      exec.dispose();
    },
  };
};
